/* Inside the BigQuery backends: the connection of wh_bigquery.c (URL, token, HTTP exchange and its error
 * classification) and its insertAll loop (chunks, per-row resends, rows refused as invalid), which
 * wh_bigquery_schema.c shares. */
#ifndef TELEPACK_WH_BIGQUERY_H
#define TELEPACK_WH_BIGQUERY_H

#include <jansson.h>

#include "warehouse/warehouse_impl.h"

#define BQ_ROWS_PER_REQUEST 500 /* documented limits: 50,000 rows and 10 MB per request */
#define TP_BQ_ID_CAP 129        /* insertId: at most 128 bytes */

typedef struct wh_bigquery {
    tp_wh_http http;
    struct curl_slist *headers; /* Authorization, Content-Type, Expect */
    char where[400];            /* "BigQuery table P:D.T", for sentences */
    char project[128];
    char dataset[TP_WH_NAME_MAX + 1];
    char *tables_url;           /* {endpoint}/bigquery/v2/projects/P/datasets/D/tables */
    char *table_url;            /* ... /T */
    char *insert_url;           /* ... /T/insertAll */
    tp_wh_buf body;             /* request bodies, reused */
    size_t pending[BQ_ROWS_PER_REQUEST];
} wh_bigquery;

/* The rows an insert sends, numbered 0..count: row(i) makes the row's "json" object (NULL: out of memory), id(i)
 * writes its insertId (at most TP_BQ_ID_CAP - 1 bytes). */
typedef struct tp_bq_source {
    json_t *(*row)(const void *ctx, size_t i);
    void (*id)(const void *ctx, size_t i, char *out, size_t cap);
    const void *ctx;
} tp_bq_source;

tp_err tp_bq_open(tp_warehouse *w, const char *rest); /* rest = PROJECT/DATASET[/TABLE]; sets w->impl */
void tp_bq_close(tp_warehouse *w);
tp_err tp_bq_ping(tp_warehouse *w);
tp_err tp_bq_stored_offset(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset);
/* One API request; see wh_bigquery.c (ok_404 / ok_409: those statuses are TP_OK, kept in q->http.status). */
tp_err tp_bq_request(tp_warehouse *w, const char *method, const char *url, const void *body, size_t len,
                     const char *doing, int ok_404, int ok_409);
tp_err tp_bq_dump(wh_bigquery *q, json_t *j); /* j as compact JSON into q->body */
/* Sends rows 0..count of src with insertAll until every valid one is in; TP_ERR_REJECTED with the refused rows
 * recorded (tp_wh_reject, numbered as in src) when BigQuery refused some as invalid. */
tp_err tp_bq_insert(tp_warehouse *w, const tp_bq_source *src, size_t count);
/* INTEGER as a decimal string (JSON numbers stop at 2^53); FLOAT as a number or "NaN" / "Infinity" / "-Infinity". */
json_t *tp_bq_int(int64_t v);
json_t *tp_bq_float(double v);

#endif
