/* ClickHouse tables of a run-time schema (opts.schema): the table is generated from the schema's flattened columns
 * (type map in docs/WAREHOUSES.md, "Tables of your own schema"), ENGINE = ReplacingMergeTree ORDER BY the identity
 * roles, PARTITION BY the day of the time role; rows go in as RowBinary, and each load's Kafka positions go into the
 * kafka_offsets table after the rows were acknowledged, as in wh_clickhouse.c, whose connection (URL, credentials,
 * TLS, gzip, error classification) this backend shares through wh_clickhouse.h.
 *
 * RowBinary per row, columns in schema order, then kafka_partition Int32, kafka_offset Int64: integers little-endian
 * at their width, Float32/Float64 IEEE bits, UInt8 0/1, String varint length + bytes, Nullable(T) a byte (1 = NULL)
 * then T when not NULL, Array(T) varint count + the elements. A Timestamp is Int64 nanoseconds on every version
 * (DateTime64(9) on 20.1 and newer, whose RowBinary form is the same Int64). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dynrow.h"
#include "warehouse/wh_clickhouse.h"

typedef struct wh_ch_schema {
    char *insert_url; /* ?query=INSERT INTO db.t (columns...) FORMAT RowBinary */
    int major;        /* the server's version: DateTime64 from 20 on */
    tp_wh_buf body;   /* RowBinary of a load, reused */
    tp_wh_buf text;   /* DDL and sentences, reused */
} wh_ch_schema;

static wh_ch_schema *st(tp_warehouse *w)
{
    return *tp_ch_ext(w);
}

static tp_err chs_open(tp_warehouse *w, const char *rest)
{
    tp_err e = tp_ch_open(w, rest);
    if (e)
        return e;
    wh_ch_schema *s = calloc(1, sizeof *s);
    if (!s)
        return TP_ERR_NOMEM;
    *tp_ch_ext(w) = s;
    return TP_OK;
}

static void chs_close(tp_warehouse *w)
{
    if (w->impl) {
        wh_ch_schema *s = st(w);
        if (s) {
            free(s->insert_url);
            tp_wh_buf_free(&s->body);
            tp_wh_buf_free(&s->text);
            free(s);
            *tp_ch_ext(w) = NULL;
        }
    }
    tp_ch_close(w);
}

/* ---- types ---- */

/* The ClickHouse type of a column's values (without Nullable / Array). Enums are Int32 (the number): protobuf
 * enums are open, and an Enum8/16 column would refuse the whole insert for a number the table does not list. */
static const char *base_type(const tp_schema_column *c, int major)
{
    switch (c->type) {
    case TP_PB_INT32:
    case TP_PB_SINT32:
    case TP_PB_SFIXED32:
    case TP_PB_ENUM: return "Int32";
    case TP_PB_INT64:
    case TP_PB_SINT64:
    case TP_PB_SFIXED64: return "Int64";
    case TP_PB_UINT32:
    case TP_PB_FIXED32: return "UInt32";
    case TP_PB_UINT64:
    case TP_PB_FIXED64: return "UInt64";
    case TP_PB_BOOL: return "UInt8";
    case TP_PB_FLOAT: return "Float32";
    case TP_PB_DOUBLE: return "Float64";
    case TP_PB_STRING:
    case TP_PB_BYTES: return "String";
    case TP_PB_TIMESTAMP: return major >= 20 ? "DateTime64(9, 'UTC')" : "Int64"; /* 18.16 has no DateTime64 */
    default: return "String";
    }
}

static int is_identity(const tp_schema_roles *r, size_t col)
{
    for (size_t i = 0; i < r->identity_count; i++)
        if ((size_t)r->identity[i] == col)
            return 1;
    return 0;
}

/* Explicit presence outside the identity: Nullable (the ORDER BY columns cannot be Nullable; an absent identity
 * value loads as zero). */
static int nullable(const tp_schema *sc, size_t col)
{
    const tp_schema_column *c = tp_schema_column_at(sc, col);
    return (c->label == TP_LABEL_OPTIONAL || c->label == TP_LABEL_REQUIRED) && !is_identity(tp_schema_get_roles(sc), col);
}

/* The full column type into out. */
static void col_type(const tp_schema *sc, size_t col, int major, char *out, size_t cap)
{
    const tp_schema_column *c = tp_schema_column_at(sc, col);
    const char *t = base_type(c, major);
    if (c->label == TP_LABEL_REPEATED)
        snprintf(out, cap, "Array(%s)", t);
    else if (nullable(sc, col))
        snprintf(out, cap, "Nullable(%s)", t);
    else
        snprintf(out, cap, "%s", t);
}

/* The partition key: the day of the time role. */
static void partition_expr(const tp_schema *sc, int major, char *out, size_t cap)
{
    const tp_schema_roles *r = tp_schema_get_roles(sc);
    const tp_schema_column *t = tp_schema_column_at(sc, (size_t)r->time);
    if (t->type == TP_PB_TIMESTAMP && major >= 20) {
        snprintf(out, cap, "toYYYYMMDD(%s)", t->name);
        return;
    }
    const char *div = r->time_unit == TP_TIME_S ? NULL : r->time_unit == TP_TIME_MS ? "1000"
                      : r->time_unit == TP_TIME_US                                    ? "1000000"
                                                                                      : "1000000000";
    if (div)
        snprintf(out, cap, "toYYYYMMDD(toDateTime(intDiv(%s, %s)))", t->name, div);
    else
        snprintf(out, cap, "toYYYYMMDD(toDateTime(%s))", t->name);
}

static tp_err put(tp_wh_buf *b, const char *s)
{
    return tp_wh_buf_append(b, s, strlen(s));
}

/* "a, b, c": the identity columns, the table's ORDER BY. */
static tp_err identity_list(const tp_schema *sc, tp_wh_buf *b)
{
    const tp_schema_roles *r = tp_schema_get_roles(sc);
    tp_err e = TP_OK;
    for (size_t i = 0; !e && i < r->identity_count; i++) {
        if (i)
            e = put(b, ", ");
        if (!e)
            e = put(b, tp_schema_column_at(sc, (size_t)r->identity[i])->name);
    }
    return e;
}

static tp_err create_table(tp_warehouse *w, wh_ch_schema *s)
{
    const tp_schema *sc = w->schema;
    tp_wh_buf *b = &s->text;
    b->len = 0;
    char tmp[400];
    snprintf(tmp, sizeof tmp, "CREATE TABLE IF NOT EXISTS %s.%s (", tp_ch_db(w), w->table);
    tp_err e = put(b, tmp);
    for (size_t i = 0; !e && i < tp_schema_column_count(sc); i++) {
        char t[64];
        col_type(sc, i, s->major, t, sizeof t);
        snprintf(tmp, sizeof tmp, "%s %s, ", tp_schema_column_at(sc, i)->name, t);
        e = put(b, tmp);
    }
    if (!e)
        e = put(b, "kafka_partition Int32, kafka_offset Int64) ENGINE = ReplacingMergeTree PARTITION BY ");
    if (!e) {
        partition_expr(sc, s->major, tmp, sizeof tmp);
        e = put(b, tmp);
    }
    if (!e)
        e = put(b, " ORDER BY (");
    if (!e)
        e = identity_list(sc, b);
    if (!e)
        e = put(b, ")");
    if (e)
        return e;
    return tp_ch_sql(w, "CREATE TABLE", "%s", tp_wh_buf_cstr(b));
}

/* The line "name\ttype" of system.columns' answer for name, or NULL; *type_len its type's length. */
static const char *find_column(const char *ans, const char *name, size_t *type_len)
{
    size_t n = strlen(name);
    for (const char *l = ans; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] ? 1 : 0))
        if (!strncmp(l, name, n) && l[n] == '\t') {
            *type_len = strcspn(l + n + 1, "\n");
            return l + n + 1;
        }
    return NULL;
}

/* Whether a column's type on the server is what we send: exactly ours, or for a Timestamp either of its forms
 * (a table made on 18.16 keeps Int64 after an upgrade; both are Int64 in RowBinary). */
static int type_ok(const tp_schema *sc, size_t col, const char *have, size_t n)
{
    char want[64];
    for (int major = 18; major <= 20; major += 2) {
        col_type(sc, col, major, want, sizeof want);
        if (strlen(want) == n && !strncmp(have, want, n))
            return 1;
    }
    return 0;
}

/* Removes spaces and backquotes, for comparing keys as system.tables prints them. */
static void squeeze(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && *in != '\n' && o + 1 < cap; in++)
        if (*in != ' ' && *in != '`')
            out[o++] = *in;
    out[o] = '\0';
}

static tp_err check_table(tp_warehouse *w, wh_ch_schema *s)
{
    const tp_schema *sc = w->schema;
    const char *where = tp_ch_where(w), *db = tp_ch_db(w), *msg = tp_schema_message_name(sc);
    tp_err e = tp_ch_sql(w, "a query of system.columns",
                         "SELECT name, type FROM system.columns WHERE database = '%s' AND table = '%s' "
                         "FORMAT TabSeparated", db, w->table);
    if (e)
        return e;
    const char *ans = tp_ch_answer(w);
    if (!ans[0])
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s has no table %s.%s; run with --create-table or create it",
                          where, db, w->table);
    size_t n = tp_schema_column_count(sc);
    for (size_t i = 0; i < n + 2; i++) {
        char want[64];
        const char *name = i < n ? tp_schema_column_at(sc, i)->name : i == n ? "kafka_partition" : "kafka_offset";
        if (i < n)
            col_type(sc, i, s->major, want, sizeof want);
        else
            snprintf(want, sizeof want, "%s", i == n ? "Int32" : "Int64");
        size_t tl = 0;
        const char *have = find_column(ans, name, &tl);
        if (!have)
            return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s: table %s.%s has no column %s of schema %s (%s); add it "
                              "(ALTER TABLE %s.%s ADD COLUMN %s %s) or load into another table (--table)", where, db,
                              w->table, name, msg, tp_schema_fingerprint_hex(sc), db, w->table, name, want);
        if (i < n ? !type_ok(sc, i, have, tl) : strlen(want) != tl || strncmp(have, want, tl))
            return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s: table %s.%s has column %s of type %.*s, but schema %s (%s) "
                              "makes it %s; load into another table (--table)", where, db, w->table, name, (int)tl,
                              have, msg, tp_schema_fingerprint_hex(sc), want);
    }
    /* Idempotency: ReplacingMergeTree, ORDER BY exactly the identity, partitions computed from the identity. */
    if ((e = tp_ch_sql(w, "a query of system.tables",
                       "SELECT engine, sorting_key FROM system.tables WHERE database = '%s' AND name = '%s' "
                       "FORMAT TabSeparated", db, w->table)))
        return e;
    char engine[128], key[1024], want_key[1024];
    snprintf(engine, sizeof engine, "%.*s", (int)strcspn(tp_ch_answer(w), "\t\n"), tp_ch_answer(w));
    const char *tab = strchr(tp_ch_answer(w), '\t');
    squeeze(tab ? tab + 1 : "", key, sizeof key);
    s->text.len = 0;
    if ((e = identity_list(sc, &s->text)))
        return e;
    squeeze(tp_wh_buf_cstr(&s->text), want_key, sizeof want_key);
    if (strcmp(engine, "ReplacingMergeTree") && strcmp(engine, "ReplicatedReplacingMergeTree") &&
        strcmp(engine, "SharedReplacingMergeTree"))
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s: table %s.%s has ENGINE = %s, which does not collapse "
                          "re-delivered records; telepack needs ReplacingMergeTree ORDER BY (%s): recreate it "
                          "(--create-table on a new table) or load into another table (--table)", where, db, w->table,
                          engine[0] ? engine : "(unknown)", tp_wh_buf_cstr(&s->text));
    if (strcmp(key, want_key))
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s: table %s.%s is ORDER BY (%s), not the identity of schema %s (%s): "
                          "ReplacingMergeTree would merge distinct records or keep copies of one; recreate it or "
                          "load into another table (--table)", where, db, w->table, key, msg,
                          tp_wh_buf_cstr(&s->text));
    if ((e = tp_ch_sql(w, "a query of system.columns",
                       "SELECT name FROM system.columns WHERE database = '%s' AND table = '%s' AND "
                       "is_in_partition_key FORMAT TabSeparated", db, w->table)))
        return e;
    for (const char *l = tp_ch_answer(w); *l;) {
        size_t len = strcspn(l, "\n");
        char name[300];
        snprintf(name, sizeof name, "%.*s", (int)len, l);
        long col = tp_schema_find(sc, name);
        if (col < 0 || !is_identity(tp_schema_get_roles(sc), (size_t)col))
            return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s: table %s.%s is partitioned by column %s, which is not an "
                              "identity column (%s): two copies of a record could land in different partitions and "
                              "never merge; recreate it or load into another table (--table)", where, db, w->table,
                              name, tp_wh_buf_cstr(&s->text));
        l += len + (l[len] == '\n');
    }
    return TP_OK;
}

/* INSERT INTO db.t (every column) FORMAT RowBinary, as a URL. */
static tp_err make_insert(tp_warehouse *w, wh_ch_schema *s)
{
    const tp_schema *sc = w->schema;
    tp_wh_buf *b = &s->text;
    b->len = 0;
    char tmp[400];
    snprintf(tmp, sizeof tmp, "INSERT INTO %s.%s (", tp_ch_db(w), w->table);
    tp_err e = put(b, tmp);
    for (size_t i = 0; !e && i < tp_schema_column_count(sc); i++) {
        e = put(b, tp_schema_column_at(sc, i)->name);
        if (!e)
            e = put(b, ", ");
    }
    if (!e)
        e = put(b, "kafka_partition, kafka_offset) FORMAT RowBinary");
    if (e)
        return e;
    free(s->insert_url);
    s->insert_url = tp_ch_query_url(w, tp_wh_buf_cstr(b));
    return s->insert_url ? TP_OK : TP_ERR_NOMEM;
}

static tp_err chs_ensure_table(tp_warehouse *w)
{
    wh_ch_schema *s = st(w);
    const tp_schema *sc = w->schema;
    const tp_schema_roles *r = tp_schema_get_roles(sc);
    if (r->identity_count == 0 || r->time < 0)
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "schema %s has no identity (key and time): give --key-field and "
                          "--time-field", tp_schema_message_name(sc));
    tp_err e = tp_ch_version(w, &s->major);
    if (e)
        return e;
    if (w->create_table) {
        if ((e = tp_ch_sql(w, "CREATE DATABASE", "CREATE DATABASE IF NOT EXISTS %s", tp_ch_db(w))) ||
            (e = create_table(w, s)))
            return e;
    }
    if ((e = check_table(w, s)) || (e = tp_ch_offsets_table(w)))
        return e;
    return make_insert(w, s);
}

/* ---- RowBinary ---- */

static uint8_t *put_value(uint8_t *p, const tp_dyn_batch *b, const tp_schema_column *c, const tp_dyn_value *v)
{
    switch (c->type) {
    case TP_PB_INT32:
    case TP_PB_SINT32:
    case TP_PB_SFIXED32:
    case TP_PB_ENUM: tp_wh_put_le32(p, (uint32_t)v->i); return p + 4;
    case TP_PB_UINT32:
    case TP_PB_FIXED32: tp_wh_put_le32(p, (uint32_t)v->u); return p + 4;
    case TP_PB_BOOL: *p = v->u ? 1 : 0; return p + 1;
    case TP_PB_FLOAT: {
        uint32_t u;
        memcpy(&u, &v->f, 4);
        tp_wh_put_le32(p, u);
        return p + 4;
    }
    case TP_PB_DOUBLE: {
        uint64_t u;
        memcpy(&u, &v->d, 8);
        tp_wh_put_le64(p, u);
        return p + 8;
    }
    case TP_PB_STRING:
    case TP_PB_BYTES:
        p = tp_ch_put_varint(p, v->s.len);
        if (v->s.len)
            memcpy(p, b->bytes + v->s.off, v->s.len);
        return p + v->s.len;
    case TP_PB_UINT64:
    case TP_PB_FIXED64: tp_wh_put_le64(p, v->u); return p + 8;
    default: tp_wh_put_le64(p, (uint64_t)v->i); return p + 8; /* int64 kinds, Timestamp ns */
    }
}

/* Rows [first, first + count) as RowBinary into s->body. */
static tp_err rowbinary(tp_warehouse *w, wh_ch_schema *s, const tp_dyn_batch *b, size_t first, size_t count,
                        const int32_t *partition, const int64_t *offset)
{
    const tp_schema *sc = w->schema;
    size_t ncol = b->ncolumns, elems = 0;
    for (size_t i = 0; i < ncol; i++)
        elems += b->columns[i].elems_len;
    /* A bound for the whole body: per cell a null byte + 8 bytes + a 10-byte length; per element 8 + 10; strings. */
    if (count > (SIZE_MAX / 2) / (ncol * 19 + 16) || elems > SIZE_MAX / 4 / 18)
        return TP_ERR_NOMEM;
    size_t bound = count * (ncol * 19 + 16) + elems * 18 + b->bytes_len;
    s->body.len = 0;
    tp_err e = tp_wh_buf_reserve(&s->body, bound);
    if (e)
        return e;
    uint8_t *p = s->body.data;
    for (size_t row = first; row < first + count; row++) {
        for (size_t i = 0; i < ncol; i++) {
            const tp_dyn_column *col = &b->columns[i];
            const tp_schema_column *c = col->def;
            const tp_dyn_value *v = &col->cells[row];
            if (c->label == TP_LABEL_REPEATED) {
                uint32_t k = col->present[row] ? v->a.count : 0;
                p = tp_ch_put_varint(p, k);
                for (uint32_t j = 0; j < k; j++)
                    p = put_value(p, b, c, &col->elems[v->a.off + j]);
                continue;
            }
            if (nullable(sc, i)) {
                *p++ = col->present[row] ? 0 : 1;
                if (!col->present[row])
                    continue;
            }
            p = put_value(p, b, c, v); /* absent implicit (or identity) fields: the zero cell */
        }
        tp_wh_put_le32(p, (uint32_t)partition[row]);
        tp_wh_put_le64(p + 4, (uint64_t)offset[row]);
        p += 12;
    }
    s->body.len = (size_t)(p - s->body.data);
    return TP_OK;
}

static tp_err chs_load_dyn(tp_warehouse *w, const tp_dyn_batch *b, size_t first, size_t count,
                           const int32_t *partition, const int64_t *offset, const char *topic,
                           const tp_partition_offset *offsets, size_t n_offsets)
{
    wh_ch_schema *s = st(w);
    if (!s->insert_url)
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: load before ensure_table", tp_ch_where(w));
    tp_err e;
    if (count) {
        if ((e = rowbinary(w, s, b, first, count, partition, offset)) ||
            (e = tp_ch_insert(w, s->insert_url, s->body.data, s->body.len, "the insert")))
            return e;
    }
    /* Only now, with the rows acknowledged, the positions: never ahead of the rows (wh_clickhouse.c). */
    return tp_ch_store_offsets(w, topic, offsets, n_offsets);
}

static tp_err chs_load(tp_warehouse *w, const tp_row_batch *rows, const char *topic, const tp_partition_offset *offsets,
                       size_t n_offsets)
{
    (void)rows;
    (void)topic;
    (void)offsets;
    (void)n_offsets;
    return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: table %s holds rows of schema %s: load them with "
                      "tp_warehouse_load_dyn, not as built-in records", tp_ch_where(w), w->table,
                      tp_schema_message_name(w->schema));
}

const tp_wh_ops tp_wh_clickhouse_schema_ops = {
    .kind = "clickhouse",
    .open = chs_open,
    .ensure_table = chs_ensure_table,
    .load = chs_load,
    .stored_offset = tp_ch_stored_offset,
    .ping = tp_ch_ping,
    .close = chs_close,
    .load_dyn = chs_load_dyn,
};
