/* Inside the ClickHouse backends: the connection helpers of wh_clickhouse.c (URL, credentials, TLS, the HTTP
 * exchange and its error classification, the kafka_offsets table) that wh_clickhouse_schema.c shares. Every
 * function takes the tp_warehouse whose impl tp_ch_open made. */
#ifndef TELEPACK_WH_CLICKHOUSE_H
#define TELEPACK_WH_CLICKHOUSE_H

#include "warehouse/warehouse_impl.h"

/* Opens the connection for rest = HOST[:PORT][/DB][?gzip=0|1] (sets w->impl); tp_ch_close frees it. */
tp_err tp_ch_open(tp_warehouse *w, const char *rest);
void tp_ch_close(tp_warehouse *w);
/* A slot for the state of the backend built on the connection (freed by that backend before tp_ch_close). */
void **tp_ch_ext(tp_warehouse *w);
const char *tp_ch_where(tp_warehouse *w); /* "ClickHouse at HOST:PORT", for sentences */
const char *tp_ch_db(tp_warehouse *w);
/* SELECT version() once; *major (may be NULL) gets its first number. Refuses servers older than 18. */
tp_err tp_ch_version(tp_warehouse *w, int *major);
/* Runs one statement (printf-style); non-200 answers become sentences classified as wh_clickhouse.c does
 * (TP_ERR_UNAVAILABLE retry later, TP_ERR_REJECTED too many partitions for one insert, TP_ERR_WAREHOUSE).
 * tp_ch_answer is the answer's body. */
tp_err tp_ch_sql(tp_warehouse *w, const char *doing, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *tp_ch_answer(tp_warehouse *w);
/* The URL that runs `query` with the request body as its data (curl-escaped); NULL when out of memory. */
char *tp_ch_query_url(tp_warehouse *w, const char *query);
/* Posts body[0..len) to url (an INSERT's URL), gzip-compressed with ?gzip=1. */
tp_err tp_ch_insert(tp_warehouse *w, const char *url, const void *body, size_t len, const char *doing);
/* The kafka_offsets table: created if missing, and the positions of a load written to it (after its rows). */
tp_err tp_ch_offsets_table(tp_warehouse *w);
tp_err tp_ch_store_offsets(tp_warehouse *w, const char *topic, const tp_partition_offset *offsets, size_t n);
tp_err tp_ch_stored_offset(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset);
tp_err tp_ch_ping(tp_warehouse *w);
/* Appends an unsigned LEB128 varint (RowBinary lengths) at p; returns the end. */
uint8_t *tp_ch_put_varint(uint8_t *p, uint64_t v);

#endif
