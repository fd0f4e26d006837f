/* SQLite tables of a run-time schema (opts.schema): the table is generated from the schema's flattened columns
 * (type map in docs/WAREHOUSES.md, "Tables of your own schema"), PRIMARY KEY on the identity roles, and every load
 * is one transaction holding the rows and the Kafka offsets (the kafka_offsets table of the built-in backend,
 * keyed by table, topic and partition), so loads are all-or-nothing and idempotent as in wh_sqlite.c. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "schema/dynrow.h"
#include "warehouse/sqlite_common.h"

typedef struct wh_sq_schema {
    tp_sq_conn c; /* the file, its offsets statements */
    sqlite3_stmt *insert_row;
    tp_wh_buf json; /* repeated columns as JSON text, reused */
} wh_sq_schema;

static wh_sq_schema *impl(tp_warehouse *w)
{
    return w->impl;
}

static tp_err fail_db(tp_warehouse *w, int rc, const char *doing)
{
    return tp_sq_fail(w, &impl(w)->c, rc, doing);
}

static tp_err exec(tp_warehouse *w, const char *sql, const char *doing)
{
    return tp_sq_exec(w, &impl(w)->c, sql, doing);
}

static tp_err sqs_open(tp_warehouse *w, const char *rest)
{
    wh_sq_schema *s = calloc(1, sizeof *s);
    if (!s)
        return TP_ERR_NOMEM;
    w->impl = s;
    return tp_sq_open(w, &s->c, rest);
}

/* The SQLite type of a column (docs/WAREHOUSES.md): repeated columns are JSON text. */
static const char *sql_type(const tp_schema_column *c)
{
    if (c->label == TP_LABEL_REPEATED)
        return "TEXT";
    switch (c->kind) {
    case TP_COL_F64:
    case TP_COL_F32: return "REAL";
    case TP_COL_STRING: return "TEXT";
    case TP_COL_BYTES: return "BLOB";
    default: return "INTEGER"; /* integers, enums (the number), bools (0/1), Timestamps (ns since the epoch) */
    }
}

/* Nullable: floats (NaN is NULL, as in the built-in table) and explicit-presence fields (absent is NULL). */
static int nullable(const tp_schema_column *c)
{
    return c->label == TP_LABEL_OPTIONAL || c->label == TP_LABEL_REQUIRED ||
           (c->label != TP_LABEL_REPEATED && (c->kind == TP_COL_F64 || c->kind == TP_COL_F32));
}

static int is_identity(const tp_schema_roles *r, size_t col)
{
    for (size_t i = 0; i < r->identity_count; i++)
        if ((size_t)r->identity[i] == col)
            return 1;
    return 0;
}

static tp_err ddl(tp_warehouse *w, tp_wh_buf *b)
{
    const tp_schema *sc = w->schema;
    const tp_schema_roles *r = tp_schema_get_roles(sc);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "CREATE TABLE IF NOT EXISTS %s (", w->table);
    tp_err e = tp_wh_buf_append(b, tmp, strlen(tmp));
    for (size_t i = 0; !e && i < tp_schema_column_count(sc); i++) {
        const tp_schema_column *c = tp_schema_column_at(sc, i);
        snprintf(tmp, sizeof tmp, "%s %s%s, ", c->name, sql_type(c),
                 nullable(c) && !is_identity(r, i) ? "" : " NOT NULL");
        e = tp_wh_buf_append(b, tmp, strlen(tmp));
    }
    if (!e)
        e = tp_wh_buf_append(b, "kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL, PRIMARY KEY (",
                             strlen("kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL, PRIMARY KEY ("));
    for (size_t i = 0; !e && i < r->identity_count; i++) {
        snprintf(tmp, sizeof tmp, "%s%s", i ? ", " : "", tp_schema_column_at(sc, (size_t)r->identity[i])->name);
        e = tp_wh_buf_append(b, tmp, strlen(tmp));
    }
    if (!e)
        e = tp_wh_buf_append(b, ")) WITHOUT ROWID", strlen(")) WITHOUT ROWID") + 1);
    return e;
}

static tp_err sqs_ensure_table(tp_warehouse *w)
{
    wh_sq_schema *s = impl(w);
    const tp_schema *sc = w->schema;
    const tp_schema_roles *r = tp_schema_get_roles(sc);
    tp_err e;
    if (r->identity_count == 0)
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "schema %s has no identity (key and time): give --key-field and "
                          "--time-field", tp_schema_message_name(sc));
    if (w->create_table) {
        tp_wh_buf b = {0};
        if ((e = ddl(w, &b))) {
            tp_wh_buf_free(&b);
            return e;
        }
        e = exec(w, (const char *)b.data, "creating the table");
        tp_wh_buf_free(&b);
        if (e)
            return e;
    }
    /* The offsets table of the built-in backend (same layout, shared by every table of the file). */
    if ((e = exec(w, "CREATE TABLE IF NOT EXISTS kafka_offsets" TP_SQ_OFFSETS_COLUMNS,
                  "creating the kafka_offsets table")))
        return e;
    /* The table must have every column with the type the schema gives it, and the identity as its primary key. */
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT name, type, pk FROM pragma_table_info('%s')", w->table);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->c.db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail_db(w, rc, "reading the table's columns");
    size_t ncols = tp_schema_column_count(sc), seen = 0, rows = 0;
    int pk_ok = 1, pk_count = 0;
    char bad[512] = "";
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0), *type = (const char *)sqlite3_column_text(st, 1);
        int pk = sqlite3_column_int(st, 2);
        rows++;
        if (!name)
            continue;
        if (pk)
            pk_count++;
        long col = tp_schema_find(sc, name);
        if (col >= 0 && strchr(name, '.') == NULL) {
            const tp_schema_column *c = tp_schema_column_at(sc, (size_t)col);
            seen++;
            if (!bad[0] && (!type || strcasecmp(type, sql_type(c))))
                snprintf(bad, sizeof bad, "column %s is %s, the schema makes it %s (%s %s)", name, type ? type : "untyped",
                         sql_type(c), tp_col_label_name(c->label), tp_pb_type_name(c->type));
            if (pk) {
                /* pk is the 1-based position in the key: it must be the identity's position */
                if ((size_t)pk > r->identity_count || r->identity[pk - 1] != col)
                    pk_ok = 0;
            }
        } else if (pk) {
            pk_ok = 0;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail_db(w, rc, "reading the table's columns");
    if (rows == 0)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "SQLite database %s has no table %s; run with --create-table",
                          s->c.path, w->table);
    if (bad[0])
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "SQLite table %s in %s does not match schema %s (%s): %s; load into "
                          "another table (--table)", w->table, s->c.path, tp_schema_message_name(sc),
                          tp_schema_fingerprint_hex(sc), bad);
    if (seen != ncols) {
        for (size_t i = 0; i < ncols; i++) {
            /* name the first missing column */
            char q[400];
            snprintf(q, sizeof q, "SELECT 1 FROM pragma_table_info('%s') WHERE name = '%s'", w->table,
                     tp_schema_column_at(sc, i)->name);
            int found = 0;
            if (sqlite3_prepare_v2(s->c.db, q, -1, &st, NULL) == SQLITE_OK) {
                found = sqlite3_step(st) == SQLITE_ROW;
                sqlite3_finalize(st);
            }
            if (!found)
                return tp_wh_fail(w, TP_ERR_WAREHOUSE, "SQLite table %s in %s has no column %s of schema %s (%s); "
                                  "add it (ALTER TABLE %s ADD COLUMN %s %s) or load into another table (--table)",
                                  w->table, s->c.path, tp_schema_column_at(sc, i)->name, tp_schema_message_name(sc),
                                  tp_schema_fingerprint_hex(sc), w->table, tp_schema_column_at(sc, i)->name,
                                  sql_type(tp_schema_column_at(sc, i)));
        }
    }
    if (!pk_ok || (size_t)pk_count != r->identity_count)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "SQLite table %s in %s does not have exactly the identity columns as "
                          "its PRIMARY KEY, so a re-delivered record would be stored twice or distinct ones refused; "
                          "load into another table (--table) or recreate it with --create-table", w->table, s->c.path);
    return TP_OK;
}

static tp_err prepare_insert(tp_warehouse *w)
{
    wh_sq_schema *s = impl(w);
    if (s->insert_row)
        return TP_OK;
    const tp_schema *sc = w->schema;
    const tp_schema_roles *r = tp_schema_get_roles(sc);
    tp_wh_buf b = {0}, v = {0};
    char tmp[400];
    snprintf(tmp, sizeof tmp, "INSERT INTO %s (", w->table);
    tp_err e = tp_wh_buf_append(&b, tmp, strlen(tmp));
    for (size_t i = 0; !e && i < tp_schema_column_count(sc); i++) {
        snprintf(tmp, sizeof tmp, "%s, ", tp_schema_column_at(sc, i)->name);
        if (!(e = tp_wh_buf_append(&b, tmp, strlen(tmp))))
            e = tp_wh_buf_append(&v, "?, ", 3);
    }
    if (!e)
        e = tp_wh_buf_append(&b, "kafka_partition, kafka_offset) VALUES (", 39);
    if (!e)
        e = tp_wh_buf_append(&b, v.data, v.len);
    /* A record already present (a resend, a re-delivered pack) is absorbed by a conflict on the identity only. */
    if (!e)
        e = tp_wh_buf_append(&b, "?, ?) ON CONFLICT (", 19);
    for (size_t i = 0; !e && i < r->identity_count; i++) {
        snprintf(tmp, sizeof tmp, "%s%s", i ? ", " : "", tp_schema_column_at(sc, (size_t)r->identity[i])->name);
        e = tp_wh_buf_append(&b, tmp, strlen(tmp));
    }
    if (!e)
        e = tp_wh_buf_append(&b, ") DO NOTHING", 13);
    if (!e)
        e = tp_sq_prepare(w, &s->c, &s->insert_row, (const char *)b.data, "preparing the insert");
    tp_wh_buf_free(&b);
    tp_wh_buf_free(&v);
    return e;
}

/* ---- values ---- */

static void put_json_string(tp_wh_buf *j, const uint8_t *p, size_t n)
{
    tp_wh_buf_append(j, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char esc[8];
        if (p[i] == '"' || p[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)p[i];
            tp_wh_buf_append(j, esc, 2);
        } else if (p[i] < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", p[i]);
            tp_wh_buf_append(j, esc, 6);
        } else {
            tp_wh_buf_append(j, &p[i], 1);
        }
    }
    tp_wh_buf_append(j, "\"", 1);
}

/* One element of a repeated column as JSON: numbers as numbers (NaN and infinities as null, as JSON has none),
 * strings escaped, bytes in base64. */
static void put_elem(tp_wh_buf *j, const tp_dyn_batch *b, const tp_schema_column *c, const tp_dyn_value *v)
{
    char t[40];
    int n = 0;
    switch (c->kind) {
    case TP_COL_I64:
    case TP_COL_TIMESTAMP_NS: n = snprintf(t, sizeof t, "%" PRId64, v->i); break;
    case TP_COL_U64: n = snprintf(t, sizeof t, "%" PRIu64, v->u); break;
    case TP_COL_BOOL: n = snprintf(t, sizeof t, "%s", v->u ? "true" : "false"); break;
    case TP_COL_F64: n = isfinite(v->d) ? snprintf(t, sizeof t, "%.17g", v->d) : snprintf(t, sizeof t, "null"); break;
    case TP_COL_F32: n = isfinite(v->f) ? snprintf(t, sizeof t, "%.9g", (double)v->f) : snprintf(t, sizeof t, "null"); break;
    case TP_COL_STRING: put_json_string(j, b->bytes + v->s.off, v->s.len); return;
    case TP_COL_BYTES: tp_wh_base64(j, b->bytes + v->s.off, v->s.len, 1); return;
    }
    tp_wh_buf_append(j, t, (size_t)n);
}

static void bind_cell(wh_sq_schema *s, sqlite3_stmt *st, int i, const tp_dyn_batch *b, const tp_dyn_column *col,
                      size_t row)
{
    const tp_schema_column *c = col->def;
    const tp_dyn_value *v = &col->cells[row];
    if (c->label == TP_LABEL_REPEATED) {
        s->json.len = 0;
        tp_wh_buf_append(&s->json, "[", 1);
        for (uint32_t k = 0; col->present[row] && k < v->a.count; k++) {
            if (k)
                tp_wh_buf_append(&s->json, ",", 1);
            put_elem(&s->json, b, c, &col->elems[v->a.off + k]);
        }
        tp_wh_buf_append(&s->json, "]", 1);
        sqlite3_bind_text(st, i, (const char *)s->json.data, (int)s->json.len, SQLITE_TRANSIENT);
        return;
    }
    if (!col->present[row] && c->label != TP_LABEL_IMPLICIT) {
        sqlite3_bind_null(st, i);
        return;
    }
    switch (c->kind) {
    case TP_COL_I64:
    case TP_COL_TIMESTAMP_NS: sqlite3_bind_int64(st, i, v->i); break;
    case TP_COL_U64:
    case TP_COL_BOOL: sqlite3_bind_int64(st, i, (sqlite3_int64)v->u); break; /* uint64: the same 64 bits */
    case TP_COL_F64: isnan(v->d) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v->d); break;
    case TP_COL_F32: isnan(v->f) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, (double)v->f); break;
    case TP_COL_STRING: sqlite3_bind_text(st, i, (const char *)b->bytes + v->s.off, (int)v->s.len, SQLITE_STATIC); break;
    case TP_COL_BYTES: sqlite3_bind_blob(st, i, b->bytes + v->s.off, (int)v->s.len, SQLITE_STATIC); break;
    }
}

static tp_err sqs_load_dyn(tp_warehouse *w, const tp_dyn_batch *b, size_t first, size_t count,
                           const int32_t *partition, const int64_t *offset, const char *topic,
                           const tp_partition_offset *offsets, size_t n_offsets)
{
    wh_sq_schema *s = impl(w);
    tp_err e = prepare_insert(w);
    if (!e)
        e = tp_sq_prepare_offsets(w, &s->c);
    if (e || (e = tp_sq_begin(w, &s->c)))
        return e;
    sqlite3_stmt *ins = s->insert_row;
    int rc = SQLITE_OK, ncol = (int)b->ncolumns;
    const char *doing = "inserting rows";
    for (size_t row = first; row < first + count && rc == SQLITE_OK; row++) {
        for (int i = 0; i < ncol; i++)
            bind_cell(s, ins, i + 1, b, &b->columns[i], row);
        sqlite3_bind_int(ins, ncol + 1, partition[row]);
        sqlite3_bind_int64(ins, ncol + 2, offset[row]);
        rc = sqlite3_step(ins);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(ins);
    }
    sqlite3_clear_bindings(ins); /* drop pointers into the batch */
    if (rc == SQLITE_OK)
        rc = tp_sq_store_offsets(w, &s->c, topic, offsets, n_offsets, &doing);
    return tp_sq_finish(w, &s->c, rc, doing);
}

static tp_err sqs_load(tp_warehouse *w, const tp_row_batch *rows, const char *topic, const tp_partition_offset *offsets,
                       size_t n_offsets)
{
    (void)topic;
    (void)offsets;
    if (rows && rows->count == 0 && n_offsets == 0)
        return TP_OK;
    return tp_wh_fail(w, TP_ERR_INVALID_ARG, "SQLite table %s holds rows of schema %s: load them with "
                      "tp_warehouse_load_dyn, not as built-in records", w->table, tp_schema_message_name(w->schema));
}

static tp_err sqs_stored_offset(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset)
{
    return tp_sq_stored_offset(w, &impl(w)->c, topic, partition, next_offset);
}

static tp_err sqs_ping(tp_warehouse *w)
{
    return tp_sq_ping(w, &impl(w)->c);
}

static void sqs_close(tp_warehouse *w)
{
    wh_sq_schema *s = impl(w);
    if (!s)
        return;
    sqlite3_finalize(s->insert_row);
    tp_sq_close(&s->c);
    tp_wh_buf_free(&s->json);
    free(s);
    w->impl = NULL;
}

const tp_wh_ops tp_wh_sqlite_schema_ops = {
    .kind = "sqlite",
    .open = sqs_open,
    .ensure_table = sqs_ensure_table,
    .load = sqs_load,
    .stored_offset = sqs_stored_offset,
    .ping = sqs_ping,
    .close = sqs_close,
    .load_dyn = sqs_load_dyn,
};
