/* BigQuery tables of a run-time schema (opts.schema): the table's schema JSON is generated from the flattened
 * columns (type map in docs/WAREHOUSES.md, "Tables of your own schema"), day-partitioned on a Timestamp time role
 * and clustered by the key; rows go in through wh_bigquery.c's insertAll loop (chunks, per-row resends, rows
 * refused as invalid named to the sink), each with an insertId made of its identity columns, so BigQuery drops
 * resends on a best-effort basis as for the built-in table. BigQuery keeps no offsets (stored_offset says -1). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "schema/dynrow.h"
#include "warehouse/wh_bigquery.h"

/* The BigQuery type of a column's values (legacy names, as tables.get answers). uint64 is NUMERIC: INTEGER is
 * int64 and would turn values above 2^63 negative. Enums are STRING, the value's name. */
static const char *bq_type(const tp_schema_column *c)
{
    switch (c->type) {
    case TP_PB_UINT64:
    case TP_PB_FIXED64: return "NUMERIC";
    case TP_PB_ENUM:
    case TP_PB_STRING: return "STRING";
    case TP_PB_BYTES: return "BYTES";
    case TP_PB_BOOL: return "BOOLEAN";
    case TP_PB_FLOAT:
    case TP_PB_DOUBLE: return "FLOAT";
    case TP_PB_TIMESTAMP: return "TIMESTAMP";
    default: return "INTEGER";
    }
}

static int is_identity(const tp_schema_roles *r, size_t col)
{
    for (size_t i = 0; i < r->identity_count; i++)
        if ((size_t)r->identity[i] == col)
            return 1;
    return 0;
}

static const char *bq_mode(const tp_schema *sc, size_t col)
{
    const tp_schema_column *c = tp_schema_column_at(sc, col);
    if (c->label == TP_LABEL_REPEATED)
        return "REPEATED";
    if ((c->label == TP_LABEL_OPTIONAL || c->label == TP_LABEL_REQUIRED) && !is_identity(tp_schema_get_roles(sc), col))
        return "NULLABLE";
    return "REQUIRED";
}

/* Standard SQL spellings tables.get may give for a legacy type. */
static int same_type(const char *have, const char *want)
{
    static const char *const alias[][2] = {{"INTEGER", "INT64"}, {"FLOAT", "FLOAT64"}, {"BOOLEAN", "BOOL"}};
    if (!strcmp(have, want))
        return 1;
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (!strcmp(want, alias[i][0]) && !strcmp(have, alias[i][1]))
            return 1;
    return 0;
}

static json_t *schema_json(const tp_schema *sc)
{
    json_t *fields = json_array();
    for (size_t i = 0; fields && i < tp_schema_column_count(sc); i++) {
        const tp_schema_column *c = tp_schema_column_at(sc, i);
        json_array_append_new(fields, json_pack("{s:s, s:s, s:s, s:s}", "name", c->name, "type", bq_type(c), "mode",
                                                bq_mode(sc, i), "description", c->path));
    }
    json_array_append_new(fields, json_pack("{s:s, s:s, s:s}", "name", "kafka_partition", "type", "INTEGER", "mode",
                                            "REQUIRED"));
    json_array_append_new(fields, json_pack("{s:s, s:s, s:s}", "name", "kafka_offset", "type", "INTEGER", "mode",
                                            "REQUIRED"));
    return json_pack("{s:o}", "fields", fields);
}

static tp_err create_table(tp_warehouse *w, wh_bigquery *q)
{
    const tp_schema *sc = w->schema;
    const tp_schema_roles *r = tp_schema_get_roles(sc);
    const tp_schema_column *t = tp_schema_column_at(sc, (size_t)r->time), *k = tp_schema_column_at(sc, (size_t)r->key);
    char desc[400];
    snprintf(desc, sizeof desc, "telepack table of %s (schema %s)", tp_schema_message_name(sc),
             tp_schema_fingerprint_hex(sc));
    json_t *req = json_pack("{s:{s:s, s:s, s:s}, s:o, s:s}", "tableReference", "projectId", q->project, "datasetId",
                            q->dataset, "tableId", w->table, "schema", schema_json(sc), "description", desc);
    if (!req)
        return TP_ERR_NOMEM;
    /* Day partitions need a TIMESTAMP (an integer time has no day for BigQuery); clustering by the vehicle. */
    if (t->type == TP_PB_TIMESTAMP)
        json_object_set_new(req, "timePartitioning", json_pack("{s:s, s:s}", "type", "DAY", "field", t->name));
    if (strcmp(bq_type(k), "BYTES"))
        json_object_set_new(req, "clustering", json_pack("{s:[s]}", "fields", k->name));
    tp_err e = tp_bq_dump(q, req);
    json_decref(req);
    if (!e)
        e = tp_bq_request(w, "POST", q->tables_url, q->body.data, q->body.len, "tables.insert", 0, 1);
    return e;
}

/* The table must have every column with its type and mode (mode absent = NULLABLE). */
static tp_err check_table(tp_warehouse *w, wh_bigquery *q)
{
    const tp_schema *sc = w->schema;
    json_t *root = json_loads(tp_wh_buf_cstr(&q->http.resp), 0, NULL);
    json_t *fields = json_object_get(json_object_get(root, "schema"), "fields");
    size_t n = tp_schema_column_count(sc);
    tp_err e = TP_OK;
    for (size_t i = 0; !e && i < n + 2; i++) {
        const char *name = i < n ? tp_schema_column_at(sc, i)->name : i == n ? "kafka_partition" : "kafka_offset";
        const char *type = i < n ? bq_type(tp_schema_column_at(sc, i)) : "INTEGER";
        const char *mode = i < n ? bq_mode(sc, i) : "REQUIRED";
        json_t *f = NULL, *x;
        size_t k;
        json_array_foreach(fields, k, x)
        {
            const char *nm = json_string_value(json_object_get(x, "name"));
            if (nm && !strcmp(nm, name))
                f = x;
        }
        if (!f) {
            e = tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s has no column %s (%s %s) of schema %s (%s); add it or load into "
                           "another table (--table)", q->where, name, mode, type, tp_schema_message_name(sc),
                           tp_schema_fingerprint_hex(sc));
            break;
        }
        const char *ht = json_string_value(json_object_get(f, "type"));
        const char *hm = json_string_value(json_object_get(f, "mode"));
        if (!hm)
            hm = "NULLABLE";
        if (!ht || !same_type(ht, type) || strcmp(hm, mode))
            e = tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s has column %s as %s %s, but schema %s (%s) makes it %s %s; load "
                           "into another table (--table)", q->where, name, hm, ht ? ht : "(no type)",
                           tp_schema_message_name(sc), tp_schema_fingerprint_hex(sc), mode, type);
    }
    json_decref(root);
    return e;
}

static tp_err bqs_ensure_table(tp_warehouse *w)
{
    wh_bigquery *q = w->impl;
    const tp_schema_roles *r = tp_schema_get_roles(w->schema);
    if (r->identity_count == 0 || r->time < 0 || r->key < 0)
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "schema %s has no identity (key and time): give --key-field and "
                          "--time-field", tp_schema_message_name(w->schema));
    tp_err e;
    if (w->create_table && (e = create_table(w, q)))
        return e;
    if ((e = tp_bq_request(w, "GET", q->table_url, NULL, 0, "tables.get", 1, 0)))
        return e;
    if (q->http.status == 404)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s does not exist; run with --create-table or create it", q->where);
    return check_table(w, q);
}

/* ---- rows ---- */

typedef struct dyn_source {
    const tp_dyn_batch *b;
    size_t first;
    const int32_t *partition;
    const int64_t *offset;
    tp_wh_buf *scratch; /* base64 of bytes cells, reused over the load */
} dyn_source;

/* RFC 3339 UTC with microseconds (BigQuery's precision: the nanoseconds below a microsecond are dropped). A time
 * gmtime cannot break down is sent as text BigQuery refuses, so the row goes to the DLQ with BigQuery's reason. */
static json_t *timestamp_json(int64_t ns)
{
    int64_t s = ns / 1000000000, r = ns % 1000000000;
    if (r < 0) {
        r += 1000000000;
        s--;
    }
    time_t t = (time_t)s;
    struct tm tm;
    char out[80];
    if (!gmtime_r(&t, &tm))
        snprintf(out, sizeof out, "out-of-range:%" PRId64 "ns", ns);
    else
        snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(r / 1000));
    return json_string(out);
}

static json_t *value_json(const dyn_source *d, const tp_schema_column *c, const tp_dyn_value *v)
{
    const tp_dyn_batch *b = d->b;
    char t[32];
    switch (c->type) {
    case TP_PB_UINT64:
    case TP_PB_FIXED64:
        snprintf(t, sizeof t, "%" PRIu64, v->u);
        return json_string(t);
    case TP_PB_UINT32:
    case TP_PB_FIXED32: return tp_bq_int((int64_t)v->u);
    case TP_PB_ENUM:
        for (size_t i = 0; c->enum_type && i < c->enum_type->count; i++)
            if (c->enum_type->numbers[i] == v->i)
                return json_string(c->enum_type->names[i]);
        snprintf(t, sizeof t, "%" PRId64, v->i); /* a number the enum does not name (open enums) */
        return json_string(t);
    case TP_PB_BOOL: return json_boolean(v->u);
    case TP_PB_FLOAT: return tp_bq_float((double)v->f);
    case TP_PB_DOUBLE: return tp_bq_float(v->d);
    case TP_PB_STRING: return json_stringn((const char *)b->bytes + v->s.off, v->s.len);
    case TP_PB_BYTES: {
        d->scratch->len = 0;
        if (tp_wh_base64(d->scratch, b->bytes + v->s.off, v->s.len, 0))
            return NULL;
        return json_stringn((const char *)d->scratch->data, d->scratch->len);
    }
    case TP_PB_TIMESTAMP: return timestamp_json(v->i);
    default: return tp_bq_int(v->i);
    }
}

static json_t *dyn_row(const void *ctx, size_t i)
{
    const dyn_source *d = ctx;
    const tp_dyn_batch *b = d->b;
    const tp_schema *sc = b->schema;
    size_t row = d->first + i;
    json_t *j = json_object();
    for (size_t k = 0; j && k < b->ncolumns; k++) {
        const tp_dyn_column *col = &b->columns[k];
        const tp_schema_column *c = col->def;
        const tp_dyn_value *v = &col->cells[row];
        json_t *x;
        if (c->label == TP_LABEL_REPEATED) {
            x = json_array();
            for (uint32_t e = 0; x && col->present[row] && e < v->a.count; e++)
                json_array_append_new(x, value_json(d, c, &col->elems[v->a.off + e]));
        } else if (!col->present[row] && !strcmp(bq_mode(sc, k), "NULLABLE")) {
            continue; /* absent: NULL */
        } else {
            x = value_json(d, c, v);
        }
        if (!x || json_object_set_new(j, c->name, x)) {
            json_decref(j);
            return NULL;
        }
    }
    if (j) {
        json_object_set_new(j, "kafka_partition", json_integer(d->partition[row]));
        json_object_set_new(j, "kafka_offset", tp_bq_int(d->offset[row]));
    }
    return j;
}

static uint64_t fnv1a(const char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* insertId: the identity columns' values joined by '-' (integers in decimal, Timestamps in ns, strings with '-'
 * and '\\' escaped by a '\\', so two identities never give one text); above 128 bytes, "h" and 32 hex digits of two 64-bit FNV-1a hashes of that text. */
static void dyn_id(const void *ctx, size_t i, char *out, size_t cap)
{
    const dyn_source *d = ctx;
    const tp_dyn_batch *b = d->b;
    const tp_schema_roles *r = tp_schema_get_roles(b->schema);
    size_t row = d->first + i;
    char text[TP_SCHEMA_MAX_IDENTITY * 540];
    size_t n = 0;
    for (size_t k = 0; k < r->identity_count; k++) {
        const tp_dyn_column *col = &b->columns[r->identity[k]];
        const tp_dyn_value *v = &col->cells[row];
        if (k)
            text[n++] = '-';
        switch (col->def->kind) {
        case TP_COL_U64:
        case TP_COL_BOOL: n += (size_t)snprintf(text + n, sizeof text - n, "%" PRIu64, v->u); break;
        case TP_COL_STRING:
        case TP_COL_BYTES: {
            const uint8_t *p = b->bytes + v->s.off;
            for (size_t j = 0; j < v->s.len && j < 256; j++) {
                if (p[j] == '-' || p[j] == '\\')
                    text[n++] = '\\';
                text[n++] = (char)p[j];
            }
            break;
        }
        default: n += (size_t)snprintf(text + n, sizeof text - n, "%" PRId64, v->i); break;
        }
    }
    if (n < cap && n <= 128) {
        memcpy(out, text, n);
        out[n] = '\0';
    } else {
        snprintf(out, cap, "h%016" PRIx64 "%016" PRIx64, fnv1a(text, n, 0xcbf29ce484222325ULL),
                 fnv1a(text, n, 0x84222325cbf29ce4ULL));
    }
}

static tp_err bqs_load_dyn(tp_warehouse *w, const tp_dyn_batch *b, size_t first, size_t count,
                           const int32_t *partition, const int64_t *offset, const char *topic,
                           const tp_partition_offset *offsets, size_t n_offsets)
{
    (void)topic;
    (void)offsets;
    (void)n_offsets; /* BigQuery keeps no offsets: the consumer group's committed offsets apply */
    tp_wh_buf scratch = {0};
    dyn_source d = {b, first, partition, offset, &scratch};
    tp_bq_source src = {dyn_row, dyn_id, &d};
    tp_err e = tp_bq_insert(w, &src, count);
    tp_wh_buf_free(&scratch);
    return e;
}

static tp_err bqs_load(tp_warehouse *w, const tp_row_batch *rows, const char *topic, const tp_partition_offset *offsets,
                       size_t n_offsets)
{
    (void)rows;
    (void)topic;
    (void)offsets;
    (void)n_offsets;
    return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s holds rows of schema %s: load them with tp_warehouse_load_dyn, not "
                      "as built-in records", ((wh_bigquery *)w->impl)->where, tp_schema_message_name(w->schema));
}

const tp_wh_ops tp_wh_bigquery_schema_ops = {
    .kind = "bigquery",
    .open = tp_bq_open,
    .ensure_table = bqs_ensure_table,
    .load = bqs_load,
    .stored_offset = tp_bq_stored_offset,
    .ping = tp_bq_ping,
    .close = tp_bq_close,
    .load_dyn = bqs_load_dyn,
};
