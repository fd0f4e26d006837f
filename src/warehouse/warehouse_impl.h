/* Inside the warehouses: the small vtable every backend fills (wh_sqlite.c, wh_clickhouse.c, wh_bigquery.c,
 * wh_null.c), the
 * shared handle with its last-error buffer, and the growable buffer + HTTP helper the HTTP backends share. */
#ifndef TELEPACK_WAREHOUSE_IMPL_H
#define TELEPACK_WAREHOUSE_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <curl/curl.h>

#include "warehouse/warehouse.h"

/* Identifiers we put into SQL (database and table names) are restricted to [A-Za-z0-9_], 1..64 bytes. */
#define TP_WH_NAME_MAX 64
#define TP_WH_ERR_CAP 1024

/* One backend. `open` gets the part of the URL after the scheme ("PATH" of sqlite:PATH, "HOST:PORT/DB" of
 * clickhouse://HOST:PORT/DB) and sets w->impl; every other entry point may assume open succeeded. On failure each
 * entry point returns the error after writing a sentence with tp_wh_fail. */
typedef struct tp_wh_ops {
    const char *kind;
    tp_err (*open)(tp_warehouse *w, const char *rest);
    tp_err (*ensure_table)(tp_warehouse *w);
    tp_err (*load)(tp_warehouse *w, const tp_row_batch *rows, const char *topic, const tp_partition_offset *offsets,
                   size_t n_offsets);
    tp_err (*stored_offset)(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset);
    tp_err (*ping)(tp_warehouse *w);
    void (*close)(tp_warehouse *w); /* frees w->impl (which may be half built when open failed) */
    /* Backends of run-time schemas (opts.schema) only: */
    /* rows [first, first + count) of the batch; partition[] and offset[] indexed by the batch's row */
    tp_err (*load_dyn)(tp_warehouse *w, const struct tp_dyn_batch *rows, size_t first, size_t count,
                       const int32_t *partition, const int64_t *offset, const char *topic,
                       const tp_partition_offset *offsets, size_t n_offsets);
} tp_wh_ops;

struct tp_warehouse {
    const tp_wh_ops *ops;
    void *impl;
    /* Options, copied at open. */
    char table[TP_WH_NAME_MAX + 1];
    int create_table;
    tp_wh_lineage lineage_columns;
    char *user;
    char *password;
    char *token_file;
    char *endpoint;
    char *ca_file;
    int tls;        /* the URL's scheme asked for TLS (clickhouses://) */
    long timeout_ms;
    const struct tp_schema *schema; /* opts.schema: a backend of run-time schemas serves it */
    char err[TP_WH_ERR_CAP];
    /* Rows the last load refused as invalid (TP_ERR_REJECTED); reused across loads. */
    struct tp_wh_rejection *rejected;
    size_t n_rejected, cap_rejected;
};

#define TP_WH_REASON_CAP 240
typedef struct tp_wh_rejection {
    size_t row;
    char reason[TP_WH_REASON_CAP];
} tp_wh_rejection;

/* Records that the current load refused row `row` with a reason
 * sentence. TP_ERR_NOMEM when the list cannot grow. */
tp_err tp_wh_reject(tp_warehouse *w, size_t row, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

extern const tp_wh_ops tp_wh_sqlite_ops;
extern const tp_wh_ops tp_wh_clickhouse_ops;
extern const tp_wh_ops tp_wh_bigquery_ops;
extern const tp_wh_ops tp_wh_null_ops;
extern const tp_wh_ops tp_wh_sqlite_schema_ops;     /* wh_sqlite_schema.c: sqlite: with opts.schema */
extern const tp_wh_ops tp_wh_clickhouse_schema_ops; /* wh_clickhouse_schema.c: clickhouse(s):// with opts.schema */
extern const tp_wh_ops tp_wh_bigquery_schema_ops;   /* wh_bigquery_schema.c: bigquery:// with opts.schema */

/* Writes a sentence into w->err (printf-style) and returns e, so backends can `return tp_wh_fail(w, e, ...)`. */
tp_err tp_wh_fail(tp_warehouse *w, tp_err e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Whether s is a usable SQL identifier for us: 1..TP_WH_NAME_MAX bytes of [A-Za-z0-9_]. */
int tp_wh_valid_name(const char *s, size_t len);

/* A growable byte buffer, reused across loads (grows, never shrinks until freed). */
typedef struct tp_wh_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} tp_wh_buf;

tp_err tp_wh_buf_reserve(tp_wh_buf *b, size_t extra); /* room for `extra` more bytes after len */
tp_err tp_wh_buf_append(tp_wh_buf *b, const void *p, size_t n);
const char *tp_wh_buf_cstr(tp_wh_buf *b); /* NUL-terminates (not counted in len); "" when allocation fails */
void tp_wh_buf_free(tp_wh_buf *b);

/* One reused libcurl easy handle (keep-alive across requests) and its response buffer. */
typedef struct tp_wh_http {
    CURL *curl;
    tp_wh_buf resp;
    long status;
    char curl_err[CURL_ERROR_SIZE];
} tp_wh_http;

tp_err tp_wh_http_init(tp_wh_http *h);
void tp_wh_http_free(tp_wh_http *h);

/* Sends one request (method "GET" or "POST"; body may be NULL for GET) and reads the whole answer into h->resp and
 * its status into h->status. Returns TP_OK whenever an HTTP answer arrived, whatever its status; a transport
 * failure (refused, timeout, reset) is TP_ERR_UNAVAILABLE with a sentence naming `what` ("ClickHouse at
 * 127.0.0.1:8123") written through tp_wh_fail. */
tp_err tp_wh_http_request(tp_warehouse *w, tp_wh_http *h, const char *what, const char *method, const char *url,
                          const struct curl_slist *headers, const void *body, size_t body_len);

/* Appends p[0..n) in standard base64 with padding, between double quotes when `quoted` (JSON). */
tp_err tp_wh_base64(tp_wh_buf *b, const uint8_t *p, size_t n, int quoted);

/* Store little-endian values at p (RowBinary, and anything else that wants a fixed byte order). */
/* Little-endian stores: one unaligned store on a little-endian host (GCC -O2 left the byte loop a loop: a third of
 * the sink's CPU went into writing the Native body byte by byte), the byte loop elsewhere. */
static inline void tp_wh_put_le64(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
#endif
}
static inline void tp_wh_put_le32(uint8_t *p, uint32_t v)
{
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 4);
#else
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
#endif
}

#endif
