/* The BigQuery warehouse: tabledata.insertAll over HTTPS (libcurl, one keep-alive handle; JSON with jansson).
 * Each row carries an insertId derived from the record identity, so BigQuery drops resends on a best-effort basis;
 * rows BigQuery failed to insert (insertErrors) are resent alone with capped backoff. BigQuery cannot hold our Kafka
 * offsets in the same transaction as the rows, so stored_offset always says -1. See docs/WAREHOUSES.md. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "warehouse/wh_bigquery.h"

#define BQ_DEFAULT_ENDPOINT "https://bigquery.googleapis.com"
#define BQ_MAX_ATTEMPTS 5       /* first try + 4 resends of the rows that failed */
#define BQ_BACKOFF_FIRST_MS 100
#define BQ_BACKOFF_MAX_MS 2000
#define BQ_TOKEN_MAX 16384

/* Our columns and their BigQuery types (standard SQL names). */
static const struct {
    const char *name, *type;
} columns[] = {
    {"vehicle_id", "INTEGER"},  {"sampled_at_ms", "INTEGER"},   {"seq", "INTEGER"},         {"sampled_at", "TIMESTAMP"},
    {"latitude", "FLOAT"},      {"longitude", "FLOAT"},         {"speed_kmh", "FLOAT"},     {"heading_deg", "FLOAT"},
    {"accuracy_m", "FLOAT"},    {"meter_status", "INTEGER"},    {"kafka_partition", "INTEGER"},
    {"kafka_offset", "INTEGER"},
};
#define N_COLUMNS (sizeof columns / sizeof columns[0])


static wh_bigquery *impl(tp_warehouse *w)
{
    return w->impl;
}

static int valid_project(const char *s, size_t n)
{
    if (n == 0 || n >= sizeof((wh_bigquery *)0)->project)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == ':' || c == '_'))
            return 0;
    }
    return 1;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", a, b);
    return s;
}

/* Reads the bearer token (token_file, else $TP_BIGQUERY_TOKEN) and (re)builds the request headers. */
static tp_err load_token(tp_warehouse *w)
{
    wh_bigquery *q = impl(w);
    char tok[BQ_TOKEN_MAX + 1] = "";
    size_t n = 0;
    if (w->token_file) {
        FILE *f = fopen(w->token_file, "rb");
        if (!f)
            return tp_wh_fail(w, TP_ERR_IO, "%s: cannot read the token file %s; check the path (--token-file)",
                              q->where, w->token_file);
        n = fread(tok, 1, sizeof tok, f);
        fclose(f);
        if (n > BQ_TOKEN_MAX)
            return tp_wh_fail(w, TP_ERR_PARSE, "%s: the token file %s is larger than %d bytes; it should hold "
                                               "one OAuth access token",
                              q->where, w->token_file, BQ_TOKEN_MAX);
        tok[n] = '\0';
    } else {
        const char *env = getenv("TP_BIGQUERY_TOKEN"); /* the caller chose this source by passing no token_file */
        if (env) {
            n = strlen(env);
            if (n > BQ_TOKEN_MAX)
                return tp_wh_fail(w, TP_ERR_PARSE, "%s: $TP_BIGQUERY_TOKEN is longer than %d bytes", q->where,
                                  BQ_TOKEN_MAX);
            memcpy(tok, env, n + 1);
        }
    }
    char *t = tok;
    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r')
        t++;
    n = strcspn(t, " \t\r\n");
    t[n] = '\0';
    if (n == 0)
        return tp_wh_fail(w, TP_ERR_INVALID_ARG,
                          "%s: no OAuth token; pass --token-file FILE or set TP_BIGQUERY_TOKEN (for example to the "
                          "output of `gcloud auth print-access-token`)",
                          q->where);
    curl_slist_free_all(q->headers);
    q->headers = NULL;
    char line[BQ_TOKEN_MAX + 32];
    snprintf(line, sizeof line, "Authorization: Bearer %s", t);
    struct curl_slist *h = curl_slist_append(NULL, line);
    if (h)
        q->headers = h;
    if (h)
        h = curl_slist_append(q->headers, "Content-Type: application/json");
    if (h)
        h = curl_slist_append(q->headers, "Expect:");
    return h ? TP_OK : TP_ERR_NOMEM;
}

/* rest = PROJECT/DATASET[/TABLE]; the URL's table wins over opts.table. */
tp_err tp_bq_open(tp_warehouse *w, const char *rest)
{
    wh_bigquery *q = calloc(1, sizeof *q);
    if (!q)
        return TP_ERR_NOMEM;
    w->impl = q;
    size_t pn = strcspn(rest, "/");
    const char *ds = rest + pn + (rest[pn] ? 1 : 0);
    size_t dn = strcspn(ds, "/");
    const char *tb = ds + dn + (ds[dn] ? 1 : 0);
    size_t tn = strlen(tb);
    if (tn && tb[tn - 1] == '/')
        tn--;
    if (!valid_project(rest, pn) || !tp_wh_valid_name(ds, dn) || (tn && !tp_wh_valid_name(tb, tn)) ||
        memchr(tb, '/', tn))
        return tp_wh_fail(w, TP_ERR_PARSE,
                          "BigQuery URL \"bigquery://%s\" is not bigquery://PROJECT/DATASET/TABLE (dataset and table: "
                          "letters, digits, underscores)",
                          rest);
    memcpy(q->project, rest, pn);
    memcpy(q->dataset, ds, dn);
    if (tn) {
        memcpy(w->table, tb, tn);
        w->table[tn] = '\0';
    }
    snprintf(q->where, sizeof q->where, "BigQuery table %s:%s.%s", q->project, q->dataset, w->table);

    tp_err e = tp_wh_http_init(&q->http);
    if (e)
        return e;
    if ((e = load_token(w)))
        return e;
    const char *ep = w->endpoint && w->endpoint[0] ? w->endpoint : BQ_DEFAULT_ENDPOINT;
    size_t epn = strlen(ep);
    while (epn && ep[epn - 1] == '/')
        epn--;
    if (epn > 1000)
        return tp_wh_fail(w, TP_ERR_PARSE, "%s: the endpoint URL is longer than 1000 bytes", q->where);
    char buf[1400];
    snprintf(buf, sizeof buf, "%.*s/bigquery/v2/projects/%s/datasets/%s/tables", (int)epn, ep, q->project,
             q->dataset);
    q->tables_url = strdup(buf);
    snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "/%s", w->table);
    q->table_url = strdup(buf);
    q->insert_url = q->table_url ? join(q->table_url, "/insertAll") : NULL;
    if (!q->tables_url || !q->table_url || !q->insert_url)
        return TP_ERR_NOMEM;
    return TP_OK;
}

/* The "error.message" of a Google API error answer, or the start of the body. */
static void api_message(wh_bigquery *q, char *out, size_t cap)
{
    const char *body = tp_wh_buf_cstr(&q->http.resp);
    json_t *root = json_loads(body, 0, NULL);
    const char *m = NULL;
    if (root)
        m = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    snprintf(out, cap, "%.300s", m ? m : body[0] ? body : "no details");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    json_decref(root);
}

/* Sends a request; 401 re-reads the token once (tokens expire hourly) and tries again. Non-2xx answers become
 * sentences: 429/5xx TP_ERR_UNAVAILABLE, others TP_ERR_WAREHOUSE. 409 is returned as TP_OK with the status kept
 * in q->http.status when `ok_409` (tables.insert of an existing table). */
tp_err tp_bq_request(tp_warehouse *w, const char *method, const char *url, const void *body, size_t len,
                         const char *doing, int ok_404, int ok_409)
{
    wh_bigquery *q = impl(w);
    tp_err e;
    for (int attempt = 0;; attempt++) {
        e = tp_wh_http_request(w, &q->http, q->where, method, url, q->headers, body, len);
        if (e)
            return e;
        if (q->http.status == 401 && attempt == 0 && w->token_file) {
            if ((e = load_token(w)))
                return e;
            continue;
        }
        break;
    }
    long st = q->http.status;
    if ((st >= 200 && st < 300) || (st == 404 && ok_404) || (st == 409 && ok_409))
        return TP_OK;
    char msg[400];
    api_message(q, msg, sizeof msg);
    if (st == 429 || st >= 500)
        return tp_wh_fail(w, TP_ERR_UNAVAILABLE, "%s: %s answered HTTP %ld (%s); retry later", q->where, doing, st,
                          msg);
    const char *advice = st == 401   ? "the OAuth token was refused; renew it (--token-file / TP_BIGQUERY_TOKEN)"
                         : st == 403 ? "grant the account bigquery.tables.updateData (and create with "
                                       "--create-table) or check quotas"
                         : st == 404 ? "check the project and dataset, or run with --create-table"
                                     : "see the message";
    return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s: %s answered HTTP %ld (%s); %s", q->where, doing, st, msg, advice);
}

static json_t *schema_json(void)
{
    json_t *fields = json_array();
    for (size_t i = 0; i < N_COLUMNS; i++)
        json_array_append_new(fields, json_pack("{s:s, s:s, s:s}", "name", columns[i].name, "type", columns[i].type,
                                                "mode", "REQUIRED"));
    return json_pack("{s:o}", "fields", fields);
}


static tp_err bq_ensure_table(tp_warehouse *w)
{
    wh_bigquery *q = impl(w);
    tp_err e;
    if (w->create_table) {
        /* tables.insert: day partitions on sampled_at, clustered by vehicle; the dataset must exist. */
        json_t *req = json_pack("{s:{s:s, s:s, s:s}, s:o, s:{s:s, s:s}, s:{s:[s]}, s:s}", "tableReference",
                                "projectId", q->project, "datasetId", q->dataset, "tableId", w->table, "schema",
                                schema_json(), "timePartitioning", "type", "DAY", "field", "sampled_at", "clustering",
                                "fields", "vehicle_id", "description",
                                "telepack vehicle positions; identity (vehicle_id, sampled_at_ms, seq)");
        if (!req)
            return TP_ERR_NOMEM;
        e = tp_bq_dump(q, req);
        json_decref(req);
        if (e)
            return e;
        if ((e = tp_bq_request(w, "POST", q->tables_url, q->body.data, q->body.len, "tables.insert", 0, 1)))
            return e;
    }
    /* tables.get: the table exists and has our columns. */
    if ((e = tp_bq_request(w, "GET", q->table_url, NULL, 0, "tables.get", 1, 0)))
        return e;
    if (q->http.status == 404)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s does not exist; run with --create-table or create it", q->where);
    json_t *root = json_loads(tp_wh_buf_cstr(&q->http.resp), 0, NULL);
    json_t *fields = json_object_get(json_object_get(root, "schema"), "fields");
    const char *missing = NULL;
    for (size_t i = 0; i < N_COLUMNS && !missing; i++) {
        int found = 0;
        size_t k;
        json_t *f;
        json_array_foreach(fields, k, f)
        {
            const char *name = json_string_value(json_object_get(f, "name"));
            if (name && !strcmp(name, columns[i].name))
                found = 1;
        }
        if (!found)
            missing = columns[i].name;
    }
    tp_err r = TP_OK;
    if (missing)
        r = tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s has no column %s; recreate it or load into another table (--table)",
                       q->where, missing);
    json_decref(root);
    return r;
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    return tp_wh_buf_append(data, buf, size) ? -1 : 0;
}

tp_err tp_bq_dump(wh_bigquery *q, json_t *j)
{
    q->body.len = 0;
    return json_dump_callback(j, dump_cb, &q->body, JSON_COMPACT) ? TP_ERR_NOMEM : TP_OK;
}

/* insertId: the record identity, "vehicle_id-sampled_at_ms-seq" (ids as unsigned decimals). */
static void insert_id(const void *ctx, size_t i, char *out, size_t cap)
{
    const tp_row_batch *b = ctx;
    snprintf(out, cap, "%" PRIu64 "-%" PRId64 "-%" PRIu64, b->vehicle_id[i], b->sampled_at_ms[i], b->seq[i]);
}

/* sampled_at as RFC 3339 UTC with milliseconds. */
static void timestamp(int64_t ms, char *out, size_t cap)
{
    int64_t s = ms / 1000, r = ms % 1000;
    if (r < 0) {
        r += 1000;
        s--;
    }
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        /* Not representable: send a value BigQuery refuses, so the row goes to the DLQ with BigQuery's reason
         * instead of loading as a plausible 1970 (sampled_at_ms itself still travels exact). */
        snprintf(out, cap, "out-of-range:%" PRId64 "ms", ms);
        return;
    }
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)r);
}

/* INTEGER columns travel as decimal strings (BigQuery's JSON rule for int64; JSON numbers stop at 2^53). uint64
 * ids are sent as their int64 bit pattern, as in SQLite: ids above 2^63 read back negative. */
json_t *tp_bq_int(int64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRId64, v);
    return json_string(s);
}

/* FLOAT columns: a JSON number, or for what JSON has no number for, the strings BigQuery's JSON accepts for FLOAT64
 * (Google's JSON mapping of doubles; BigQuery returns them the same way): "NaN", "Infinity", "-Infinity".
 * jansson's json_real refuses non-finite values (returns NULL), which left the field out of the row. */
json_t *tp_bq_float(double v)
{
    if (isnan(v))
        return json_string("NaN");
    if (isinf(v))
        return json_string(v > 0 ? "Infinity" : "-Infinity");
    return json_real(v);
}

static json_t *row_values(const void *ctx, size_t i)
{
    const tp_row_batch *b = ctx;
    char ts[96];
    timestamp(b->sampled_at_ms[i], ts, sizeof ts);
    json_t *j = json_object();
    if (!j)
        return NULL;
    json_object_set_new(j, "vehicle_id", tp_bq_int((int64_t)b->vehicle_id[i]));
    json_object_set_new(j, "sampled_at_ms", tp_bq_int(b->sampled_at_ms[i]));
    json_object_set_new(j, "seq", tp_bq_int((int64_t)b->seq[i]));
    json_object_set_new(j, "sampled_at", json_string(ts));
    /* jansson writes reals with 17 significant digits: doubles round-trip exactly (-0.0 as -0.0). */
    json_object_set_new(j, "latitude", tp_bq_float(b->latitude[i]));
    json_object_set_new(j, "longitude", tp_bq_float(b->longitude[i]));
    json_object_set_new(j, "speed_kmh", tp_bq_float(b->speed_kmh[i]));
    json_object_set_new(j, "heading_deg", tp_bq_float(b->heading_deg[i]));
    json_object_set_new(j, "accuracy_m", tp_bq_float(b->accuracy_m[i]));
    json_object_set_new(j, "meter_status", json_integer(b->meter_status[i]));
    json_object_set_new(j, "kafka_partition", json_integer(b->kafka_partition[i]));
    json_object_set_new(j, "kafka_offset", tp_bq_int(b->kafka_offset[i]));
    return j;
}

/* {"insertId": ..., "json": {...}} of row i of the source. */
static json_t *row_json(const tp_bq_source *src, size_t i)
{
    char id[TP_BQ_ID_CAP];
    src->id(src->ctx, i, id, sizeof id);
    json_t *j = src->row(src->ctx, i);
    return j ? json_pack("{s:s, s:o}", "insertId", id, "json", j) : NULL;
}

/* Reasons BigQuery gives for rows it did not insert that are worth resending ("stopped": the row was fine but
 * another row of the request was invalid — never the case here without an invalid row, which is permanent). */
static int retryable_reason(const char *r)
{
    return r && (!strcmp(r, "backendError") || !strcmp(r, "internalError") || !strcmp(r, "timeout") ||
                 !strcmp(r, "stopped") || !strcmp(r, "rateLimitExceeded"));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1)
        ;
}

/* Posts rows pending[0..n) of b as one insertAll request. */
static tp_err post_chunk(tp_warehouse *w, const tp_bq_source *b, size_t n)
{
    wh_bigquery *q = impl(w);
    json_t *rows = json_array();
    json_t *req = json_pack("{s:s, s:b, s:b, s:o}", "kind", "bigquery#tableDataInsertAllRequest",
                            "skipInvalidRows", 0, "ignoreUnknownValues", 0, "rows", rows);
    if (!req)
        return TP_ERR_NOMEM;
    for (size_t k = 0; k < n; k++)
        if (json_array_append_new(rows, row_json(b, q->pending[k]))) {
            json_decref(req);
            return TP_ERR_NOMEM;
        }
    tp_err e = tp_bq_dump(q, req);
    json_decref(req);
    if (e)
        return e;
    return tp_bq_request(w, "POST", q->insert_url, q->body.data, q->body.len, "insertAll", 0, 0);
}

/* Reads insertAll's insertErrors (for a request of n rows) into mark[]: 0 = inserted, 1 = resend, 2 = refused as
 * invalid; *failed = how many to resend, *retryable = a failure other than "stopped" (back off before resending).
 * Fails on an answer naming a row that was not sent and on a refusal that says the table's schema differs. */
static tp_err mark_errors(tp_warehouse *w, const tp_bq_source *b, size_t n, json_t *errs, unsigned char *mark,
                          size_t *failed, int *retryable)
{
    wh_bigquery *q = impl(w);
    size_t k;
    json_t *ie;
    json_array_foreach(errs, k, ie)
    {
        json_int_t index = json_integer_value(json_object_get(ie, "index"));
        if (index < 0 || (size_t)index >= n)
            return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s: insertAll gave %s; giving up", q->where,
                              "an answer naming a row that was not sent");
        /* A row may carry several errors: any non-retryable one refuses it. */
        const char *reason = NULL, *msg = NULL;
        size_t j;
        json_t *one;
        json_array_foreach(json_object_get(ie, "errors"), j, one)
        {
            const char *r = json_string_value(json_object_get(one, "reason"));
            if (!reason || (retryable_reason(reason) && !retryable_reason(r))) {
                reason = r ? r : "no reason";
                msg = json_string_value(json_object_get(one, "message"));
            }
        }
        if (!reason)
            reason = "no reason";
        if (retryable_reason(reason)) {
            if (!mark[index])
                (*failed)++;
            mark[index] = mark[index] ? mark[index] : 1;
            *retryable |= strcmp(reason, "stopped") != 0;
            continue;
        }
        if (msg && strstr(msg, "no such field")) {
            char id[TP_BQ_ID_CAP];
            b->id(b->ctx, q->pending[index], id, sizeof id);
            return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s rejected row %s (%s: %s); the table's schema "
                              "differs from telepack's: recreate it or load into another table (--table)",
                              q->where, id, reason, msg);
        }
        if (mark[index] == 1)
            (*failed)--;
        mark[index] = 2;
    }
    return TP_OK;
}

/* Records the rows mark[] says were refused, with BigQuery's words. */
static tp_err reject_refused(tp_warehouse *w, const tp_bq_source *b, size_t n, json_t *errs,
                             const unsigned char *mark)
{
    wh_bigquery *q = impl(w);
    for (size_t i = 0; i < n; i++) {
        if (mark[i] != 2)
            continue;
        const char *reason = "invalid", *msg = "no message", *loc = "";
        size_t k;
        json_t *ie;
        json_array_foreach(errs, k, ie)
        {
            if (json_integer_value(json_object_get(ie, "index")) != (json_int_t)i)
                continue;
            size_t j;
            json_t *one;
            json_array_foreach(json_object_get(ie, "errors"), j, one)
            {
                const char *r = json_string_value(json_object_get(one, "reason"));
                if (r && !retryable_reason(r)) {
                    reason = r;
                    const char *m = json_string_value(json_object_get(one, "message"));
                    const char *l = json_string_value(json_object_get(one, "location"));
                    msg = m && m[0] ? m : "no message";
                    loc = l ? l : "";
                    break;
                }
            }
            break;
        }
        char id[TP_BQ_ID_CAP];
        b->id(b->ctx, q->pending[i], id, sizeof id);
        if (tp_wh_reject(w, q->pending[i], "%s rejected row %s (%s%s%s: %.120s)", q->where, id, reason,
                         loc[0] ? " in " : "", loc, msg))
            return TP_ERR_NOMEM;
    }
    return TP_OK;
}

/* Sends rows q->pending[0..n) until BigQuery took every valid one, resending only the failed ones. A row BigQuery
 * names with a non-retryable reason ("invalid": a value out of range, a bad timestamp) is recorded with tp_wh_reject
 * and not sent again; the rows it stopped (skipInvalidRows=false fails the whole request) are resent without it,
 * so each valid row is inserted once. An "invalid" naming an unknown field is the table's schema, not the data:
 * permanent. */
static tp_err insert_chunk(tp_warehouse *w, const tp_bq_source *b, size_t n)
{
    wh_bigquery *q = impl(w);
    long backoff = BQ_BACKOFF_FIRST_MS;
    for (int attempt = 1;; attempt++) {
        tp_err e = post_chunk(w, b, n);
        if (e)
            return e;
        json_t *root = json_loads(tp_wh_buf_cstr(&q->http.resp), 0, NULL);
        if (!root)
            return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s: insertAll answered HTTP %ld with a body that is not JSON",
                              q->where, q->http.status);
        json_t *errs = json_object_get(root, "insertErrors");
        size_t failed = 0;
        int retryable = 0;
        /* Indexes refer to this request's rows. */
        unsigned char mark[BQ_ROWS_PER_REQUEST] = {0};
        e = mark_errors(w, b, n, errs, mark, &failed, &retryable);
        if (!e)
            e = reject_refused(w, b, n, errs, mark);
        json_decref(root);
        if (e)
            return e;
        if (failed && attempt >= BQ_MAX_ATTEMPTS)
            return tp_wh_fail(w, TP_ERR_UNAVAILABLE, "%s failed to insert %zu rows after %d attempts; retry later",
                              q->where, failed, attempt);
        if (!failed)
            return TP_OK;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (mark[i] == 1)
                q->pending[m++] = q->pending[i];
        n = m;
        if (retryable) {
            sleep_ms(backoff);
            backoff = backoff * 2 > BQ_BACKOFF_MAX_MS ? BQ_BACKOFF_MAX_MS : backoff * 2;
        }
    }
}

static tp_err bq_load(tp_warehouse *w, const tp_row_batch *b, const char *topic, const tp_partition_offset *offsets,
                      size_t n_offsets)
{
    (void)topic;
    (void)offsets;
    (void)n_offsets; /* BigQuery keeps no offsets: the consumer group's committed offsets apply */
    tp_bq_source src = {row_values, insert_id, b};
    return tp_bq_insert(w, &src, b->count);
}

tp_err tp_bq_insert(tp_warehouse *w, const tp_bq_source *b, size_t count)
{
    wh_bigquery *q = impl(w);
    for (size_t start = 0; start < count; start += BQ_ROWS_PER_REQUEST) {
        size_t n = count - start < BQ_ROWS_PER_REQUEST ? count - start : BQ_ROWS_PER_REQUEST;
        for (size_t k = 0; k < n; k++)
            q->pending[k] = start + k;
        tp_err e = insert_chunk(w, b, n);
        if (e)
            return e;
    }
    if (w->n_rejected) {
        const tp_wh_rejection *first = &w->rejected[0];
        return tp_wh_fail(w, TP_ERR_REJECTED, "%s; %zu of %zu rows refused as invalid, the others were loaded "
                          "(first: %.300s)", q->where, w->n_rejected, count, first->reason);
    }
    return TP_OK;
}

tp_err tp_bq_stored_offset(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset)
{
    (void)w;
    (void)topic;
    (void)partition;
    *next_offset = -1;
    return TP_OK;
}

tp_err tp_bq_ping(tp_warehouse *w)
{
    wh_bigquery *q = impl(w);
    return tp_bq_request(w, "GET", q->table_url, NULL, 0, "tables.get", 0, 0);
}

void tp_bq_close(tp_warehouse *w)
{
    wh_bigquery *q = impl(w);
    if (!q)
        return;
    tp_wh_http_free(&q->http);
    curl_slist_free_all(q->headers);
    free(q->tables_url);
    free(q->table_url);
    free(q->insert_url);
    tp_wh_buf_free(&q->body);
    free(q);
    w->impl = NULL;
}

const tp_wh_ops tp_wh_bigquery_ops = {
    .kind = "bigquery",
    .open = tp_bq_open,
    .ensure_table = bq_ensure_table,
    .load = bq_load,
    .stored_offset = tp_bq_stored_offset,
    .ping = tp_bq_ping,
    .close = tp_bq_close,
};
