/* Shared plumbing of the end-to-end baselines (bench/baseline_json.c, bench/baseline_proto.c): record input, a
 * one-message-per-record Kafka producer loop, a consumer loop that flushes by count or age, and a ClickHouse HTTP
 * insert with libcurl. Benchmark code: it prints and exits. */
#ifndef TELEPACK_BENCH_BASELINE_H
#define TELEPACK_BENCH_BASELINE_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "telepack/record.h"

/* A growable byte buffer (the consumer's insert body, one per process, reused). */
typedef struct bl_buf {
    uint8_t *p;
    size_t len, cap;
} bl_buf;

void bl_buf_reserve(bl_buf *b, size_t more);

/* What a baseline does with one record (producer: value bytes to send; consumer: append one message to the body). */
typedef struct bl_codec {
    const char *name;          /* "json" or "proto" */
    const char *insert_format; /* ClickHouse input format: JSONEachRow or RowBinary */
    const char *table_ddl;     /* what follows CREATE TABLE db.table: columns, engine */
    /* encode r into dst[0..cap) and return its length (0 = failure) */
    size_t (*encode)(const tp_record *r, uint8_t *dst, size_t cap);
    /* append the message payload to the insert body; 0 on success, -1 for a message that is not a record */
    int (*append)(const uint8_t *payload, size_t len, bl_buf *body);
    const char **producer_defaults; /* NULL-terminated key, value pairs set before the -X properties */
} bl_codec;

/* Parses argv and runs the producer (`produce`) or consumer (`consume`) mode; returns the exit status. */
int bl_main(const bl_codec *codec, int argc, char **argv);

#endif
