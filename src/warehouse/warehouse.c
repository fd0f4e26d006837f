/* Warehouses: URL parsing, option defaults and dispatch to the backend named by the URL's scheme, plus the buffer
 * and HTTP helpers the HTTP backends share. Backends live in wh_sqlite.c, wh_clickhouse.c, wh_bigquery.c,
 * wh_null.c. */
#include "warehouse/warehouse_impl.h"

#include "schema/dynrow.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TP_WH_DEFAULT_TABLE "vehicle_positions"
#define TP_WH_DEFAULT_TIMEOUT_MS 30000L

void tp_warehouse_opts_init(tp_warehouse_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->table = TP_WH_DEFAULT_TABLE;
    o->timeout_ms = TP_WH_DEFAULT_TIMEOUT_MS;
}

tp_err tp_wh_fail(tp_warehouse *w, tp_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    return e;
}

tp_err tp_wh_reject(tp_warehouse *w, size_t row, const char *fmt, ...)
{
    if (w->n_rejected == w->cap_rejected) {
        size_t n = w->cap_rejected ? w->cap_rejected * 2 : 16;
        tp_wh_rejection *p = realloc(w->rejected, n * sizeof *p);
        if (!p)
            return TP_ERR_NOMEM;
        w->rejected = p;
        w->cap_rejected = n;
    }
    tp_wh_rejection *r = &w->rejected[w->n_rejected++];
    r->row = row;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    return TP_OK;
}

size_t tp_warehouse_rejected_count(const tp_warehouse *w)
{
    return w ? w->n_rejected : 0;
}

tp_err tp_warehouse_rejected(const tp_warehouse *w, size_t i, size_t *row, const char **reason)
{
    if (!w || i >= w->n_rejected)
        return TP_ERR_INVALID_ARG;
    if (row)
        *row = w->rejected[i].row;
    if (reason)
        *reason = w->rejected[i].reason;
    return TP_OK;
}

int tp_wh_valid_name(const char *s, size_t len)
{
    if (len == 0 || len > TP_WH_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static const struct {
    const char *prefix;
    const tp_wh_ops *ops;
    int tls;
} schemes[] = {
    {"sqlite:", &tp_wh_sqlite_ops, 0},
    {"clickhouse://", &tp_wh_clickhouse_ops, 0},
    {"clickhouses://", &tp_wh_clickhouse_ops, 1},
    {"bigquery://", &tp_wh_bigquery_ops, 1},
    {"null:", &tp_wh_null_ops, 0},
};

static void free_handle(tp_warehouse *w)
{
    free(w->user);
    free(w->password);
    free(w->token_file);
    free(w->endpoint);
    free(w->ca_file);
    free(w->rejected);
    free(w);
}

tp_err tp_warehouse_open(const char *url, const tp_warehouse_opts *opts, tp_warehouse **out, char *err_msg,
                         size_t err_cap)
{
    if (out)
        *out = NULL;
    if (err_msg && err_cap)
        err_msg[0] = '\0';
    if (!url || !out) {
        if (err_msg && err_cap)
            snprintf(err_msg, err_cap, "warehouse: no URL given; use sqlite:PATH, clickhouse://HOST:PORT/DB or "
                                       "bigquery://PROJECT/DATASET/TABLE (or null: to discard rows)");
        return TP_ERR_INVALID_ARG;
    }
    tp_warehouse_opts defaults;
    if (!opts) {
        tp_warehouse_opts_init(&defaults);
        opts = &defaults;
    }
    const tp_wh_ops *ops = NULL;
    const char *rest = NULL;
    int tls = 0;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i].prefix);
        if (!strncmp(url, schemes[i].prefix, n)) {
            ops = schemes[i].ops;
            tls = schemes[i].tls;
            rest = url + n;
            break;
        }
    }
    if (!ops) {
        if (err_msg && err_cap)
            snprintf(err_msg, err_cap,
                     "warehouse URL \"%s\" has an unknown scheme; use sqlite:PATH, clickhouse://HOST:PORT/DB or "
                     "bigquery://PROJECT/DATASET/TABLE (or null: to discard rows)",
                     url);
        return TP_ERR_PARSE;
    }
    if (opts->schema && ops == &tp_wh_null_ops) {
        if (err_msg && err_cap)
            snprintf(err_msg, err_cap, "warehouse URL \"%s\": tables of a schema of your own (--schema) load into "
                     "sqlite:PATH, clickhouse://HOST:PORT/DB or bigquery://PROJECT/DATASET/TABLE, not null:", url);
        return TP_ERR_INVALID_ARG;
    }
    if (opts->lineage_columns == TP_WH_LINEAGE_NO && (ops != &tp_wh_clickhouse_ops || opts->schema)) {
        if (err_msg && err_cap)
            snprintf(err_msg, err_cap, "warehouse URL \"%s\": tables without the lineage columns (--lineage-columns "
                     "no) are made only for the built-in ClickHouse table (clickhouse://, without --schema); drop "
                     "the option", url);
        return TP_ERR_INVALID_ARG;
    }
    /* A run-time schema: the same URL, served by the backend of generated tables. */
    if (opts->schema)
        ops = ops == &tp_wh_sqlite_ops       ? &tp_wh_sqlite_schema_ops
              : ops == &tp_wh_clickhouse_ops ? &tp_wh_clickhouse_schema_ops
                                             : &tp_wh_bigquery_schema_ops;
    const char *table = opts->table && opts->table[0] ? opts->table : TP_WH_DEFAULT_TABLE;
    if (!tp_wh_valid_name(table, strlen(table))) {
        if (err_msg && err_cap)
            snprintf(err_msg, err_cap,
                     "warehouse table name \"%s\" is not usable; use 1 to %d letters, digits or underscores", table,
                     TP_WH_NAME_MAX);
        return TP_ERR_INVALID_ARG;
    }

    tp_warehouse *w = calloc(1, sizeof *w);
    if (!w)
        return TP_ERR_NOMEM;
    w->ops = ops;
    w->tls = tls;
    memcpy(w->table, table, strlen(table) + 1);
    w->create_table = opts->create_table;
    w->lineage_columns = opts->lineage_columns;
    w->schema = opts->schema;
    w->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : TP_WH_DEFAULT_TIMEOUT_MS;
    w->user = dup_or_null(opts->user);
    w->password = dup_or_null(opts->password);
    w->token_file = dup_or_null(opts->token_file);
    w->endpoint = dup_or_null(opts->endpoint);
    w->ca_file = dup_or_null(opts->ca_file);
    if ((opts->user && !w->user) || (opts->password && !w->password) || (opts->token_file && !w->token_file) ||
        (opts->endpoint && !w->endpoint) || (opts->ca_file && !w->ca_file)) {
        free_handle(w);
        return TP_ERR_NOMEM;
    }
    tp_err e = ops->open(w, rest);
    if (e) {
        if (err_msg && err_cap)
            snprintf(err_msg, err_cap, "%s", w->err[0] ? w->err : tp_strerror(e));
        ops->close(w);
        free_handle(w);
        return e;
    }
    *out = w;
    return TP_OK;
}

tp_err tp_warehouse_load_dyn(tp_warehouse *w, const struct tp_dyn_batch *rows, const int32_t *partition,
                             const int64_t *offset, const char *topic, const tp_partition_offset *offsets,
                             size_t n_offsets)
{
    return tp_warehouse_load_dyn_range(w, rows, 0, rows ? rows->count : 0, partition, offset, topic, offsets,
                                       n_offsets);
}

tp_err tp_warehouse_load_dyn_range(tp_warehouse *w, const struct tp_dyn_batch *rows, size_t first, size_t count,
                                   const int32_t *partition, const int64_t *offset, const char *topic,
                                   const tp_partition_offset *offsets, size_t n_offsets)
{
    if (!w)
        return TP_ERR_INVALID_ARG;
    w->err[0] = '\0';
    w->n_rejected = 0;
    if (!w->ops->load_dyn || !w->schema)
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: this warehouse was opened for the built-in record, not for "
                          "rows of a schema of your own", w->ops->kind);
    if (!rows || !partition || !offset || (n_offsets && (!offsets || !topic)))
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: load_dyn needs rows, their Kafka positions, and a topic when "
                          "offsets are given", w->ops->kind);
    if (first > rows->count || count > rows->count - first)
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: rows [%zu, %zu) are not all in the batch of %zu", w->ops->kind,
                          first, first + count, rows->count);
    if (count == 0 && n_offsets == 0)
        return TP_OK;
    tp_err e = w->ops->load_dyn(w, rows, first, count, partition, offset, topic, offsets, n_offsets);
    if (e != TP_ERR_REJECTED)
        w->n_rejected = 0;
    return e;
}

tp_err tp_warehouse_ensure_table(tp_warehouse *w)
{
    if (!w)
        return TP_ERR_INVALID_ARG;
    w->err[0] = '\0';
    return w->ops->ensure_table(w);
}

tp_err tp_warehouse_load(tp_warehouse *w, const tp_row_batch *rows, const char *topic,
                         const tp_partition_offset *offsets, size_t n_offsets)
{
    if (!w)
        return TP_ERR_INVALID_ARG;
    w->err[0] = '\0';
    w->n_rejected = 0;
    if (!rows || (n_offsets && (!offsets || !topic)))
        return tp_wh_fail(w, TP_ERR_INVALID_ARG,
                          "%s: load needs a row batch, and a topic when offsets are given", w->ops->kind);
    if (rows->count > rows->capacity)
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: row batch count %zu is above its capacity %zu", w->ops->kind,
                          rows->count, rows->capacity);
    if (rows->count == 0 && n_offsets == 0)
        return TP_OK;
    tp_err e = w->ops->load(w, rows, topic, offsets, n_offsets);
    if (e != TP_ERR_REJECTED)
        w->n_rejected = 0;
    return e;
}

tp_err tp_warehouse_stored_offset(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset)
{
    if (next_offset)
        *next_offset = -1;
    if (!w)
        return TP_ERR_INVALID_ARG;
    w->err[0] = '\0';
    if (!topic || !next_offset)
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: stored_offset needs a topic and an output", w->ops->kind);
    return w->ops->stored_offset(w, topic, partition, next_offset);
}

tp_err tp_warehouse_ping(tp_warehouse *w)
{
    if (!w)
        return TP_ERR_INVALID_ARG;
    w->err[0] = '\0';
    return w->ops->ping(w);
}

const char *tp_warehouse_last_error(const tp_warehouse *w)
{
    if (!w)
        return "no warehouse";
    return w->err;
}

const char *tp_warehouse_kind(const tp_warehouse *w)
{
    return w ? w->ops->kind : "none";
}

void tp_warehouse_close(tp_warehouse *w)
{
    if (!w)
        return;
    w->ops->close(w);
    free_handle(w);
}

/* ---- growable buffer ---- */

tp_err tp_wh_buf_reserve(tp_wh_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return TP_ERR_NOMEM;
    size_t need = b->len + extra + 1; /* +1: room for tp_wh_buf_cstr's NUL */
    if (need <= b->cap)
        return TP_OK;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return TP_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return TP_OK;
}

tp_err tp_wh_buf_append(tp_wh_buf *b, const void *p, size_t n)
{
    tp_err e = tp_wh_buf_reserve(b, n);
    if (e)
        return e;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return TP_OK;
}

const char *tp_wh_buf_cstr(tp_wh_buf *b)
{
    if (tp_wh_buf_reserve(b, 0))
        return "";
    b->data[b->len] = '\0';
    return (const char *)b->data;
}

void tp_wh_buf_free(tp_wh_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

tp_err tp_wh_base64(tp_wh_buf *b, const uint8_t *p, size_t n, int quoted)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    tp_err e = tp_wh_buf_reserve(b, (n + 2) / 3 * 4 + 2);
    if (e)
        return e;
    uint8_t *o = b->data + b->len;
    if (quoted)
        *o++ = '"';
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *o++ = (uint8_t)a[v >> 18 & 63];
        *o++ = (uint8_t)a[v >> 12 & 63];
        *o++ = i + 1 < n ? (uint8_t)a[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? (uint8_t)a[v & 63] : '=';
    }
    if (quoted)
        *o++ = '"';
    b->len = (size_t)(o - b->data);
    return TP_OK;
}

/* ---- HTTP (libcurl) ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_OK;

static void curl_global(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    tp_wh_buf *b = ud;
    (void)size; /* always 1 */
    /* Answers are bounded: a warehouse never needs to tell us more than 64 MiB. */
    if (b->len + n > (size_t)64 << 20 || tp_wh_buf_append(b, p, n))
        return 0;
    return n;
}

tp_err tp_wh_http_init(tp_wh_http *h)
{
    memset(h, 0, sizeof *h);
    pthread_once(&curl_once, curl_global);
    if (curl_init_result != CURLE_OK)
        return TP_ERR_NOMEM;
    h->curl = curl_easy_init();
    return h->curl ? TP_OK : TP_ERR_NOMEM;
}

void tp_wh_http_free(tp_wh_http *h)
{
    if (h->curl)
        curl_easy_cleanup(h->curl);
    h->curl = NULL;
    tp_wh_buf_free(&h->resp);
}

tp_err tp_wh_http_request(tp_warehouse *w, tp_wh_http *h, const char *what, const char *method, const char *url,
                          const struct curl_slist *headers, const void *body, size_t body_len)
{
    CURL *c = h->curl;
    h->resp.len = 0;
    h->status = 0;
    h->curl_err[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &h->resp);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->curl_err);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, w->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, w->timeout_ms < 10000 ? w->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    /* HTTPS: the server's certificate and name are always verified; ca_file replaces the system's CA store. */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (w->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, w->ca_file);
    if (!strcmp(method, "GET")) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        const char *detail = h->curl_err[0] ? h->curl_err : curl_easy_strerror(rc);
        if (rc == CURLE_OUT_OF_MEMORY)
            return tp_wh_fail(w, TP_ERR_NOMEM, "%s: out of memory while talking to it", what);
        if (rc == CURLE_WRITE_ERROR)
            return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s sent an answer above 64 MiB; refusing to read it", what);
        /* TLS set-up failures are configuration, not an outage: retrying would not help. */
        if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM ||
            rc == CURLE_SSL_CIPHER || rc == CURLE_SSL_ISSUER_ERROR)
            return tp_wh_fail(w, TP_ERR_WAREHOUSE,
                              "%s: TLS verification failed (%s); give the CA that signed the server's certificate "
                              "(ca_file)%s",
                              what, detail, w->ca_file ? "" : " or add it to the system's CA store");
        if (rc == CURLE_SSL_CONNECT_ERROR)
            return tp_wh_fail(w, TP_ERR_UNAVAILABLE,
                              "%s: the TLS handshake failed (%s); check that the port speaks HTTPS", what, detail);
        return tp_wh_fail(w, TP_ERR_UNAVAILABLE, "%s is unreachable (%s); check that it runs and the URL", what,
                          detail);
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status);
    return TP_OK;
}
