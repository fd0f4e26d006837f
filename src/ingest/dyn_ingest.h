/* The ingest worker of a run-time schema (docs/SCHEMA.md, "The pipeline"): records already checked under the schema
 * (their protobuf bytes) are grouped per key (schema/dynpack.h's grouper), each group a pbpack v1 pack sent to Kafka
 * keyed by the exact key text with the tp-schema headers, and a submitter learns when every one of its records is
 * durable (a ticket), or a gateway connection learns it by its records' tags. Used under `telepack ingest --schema`
 * by the HTTP endpoint (--http-listen) and the gateway listener (--listen). A separate path from
 * the built-in record's worker (ingest.h): simple and bounded, not tuned for speed (one lock; packs are compressed
 * on the submitting or flushing thread). */
#ifndef TELEPACK_DYN_INGEST_H
#define TELEPACK_DYN_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/batcher.h"
#include "ops/worker_metrics.h"
#include "schema/dynrow.h"
#include "schema/schema.h"
#include "telepack/error.h"

typedef struct tp_dyn_ingest_opts {
    const char *brokers;           /* bootstrap.servers (may be NULL when kafka_conf sets it, e.g. a mock cluster) */
    const char *topic;             /* required */
    const char *const *kafka_conf; /* "key=value" librdkafka properties (-X) */
    size_t nkafka_conf;
    const tp_schema *schema;       /* required; must outlive the worker */
    uint32_t batch_records;        /* records per pack (default 200) */
    int linger_ms;                 /* a group is packed this long after its first record at the latest (default 500) */
    size_t max_record_bytes;       /* largest record (default 65536) */
    size_t max_buffered_bytes;     /* record bytes held in open groups and in flight: at it gateway records are
                                      refused for now (TP_ERR_AGAIN) and the HTTP endpoint answers 503; while
                                      open groups hold more than half of it the oldest is packed at once
                                      (default 256 MiB) */
    int level;                     /* zstd level (default 3) */
    int columns;                   /* 1: column packs (pbpack v4) where the group allows, else rows (pbpack v1);
                                      default 1 */
    tp_metrics *kafka_metrics;     /* NULL, or a registry for the producer's librdkafka statistics (telepack_kafka_*,
                                      as the built-in worker's); then readiness also needs a broker up. Must outlive
                                      the worker */
    const tp_ingest_metrics *metrics; /* NULL, or the built-in worker's handles (ops/worker_metrics.h): each pack
                                      delivered observes pack_bytes, records_per_pack, produce_latency; each
                                      packing counts flush_* by why; delivery_errors. The caller mirrors the
                                      totals (tp_dyn_ingest_stats_get). Must outlive the worker */
} tp_dyn_ingest_opts;

void tp_dyn_ingest_opts_init(tp_dyn_ingest_opts *o);

typedef struct tp_dyn_ingest tp_dyn_ingest;

/* Creates the producer and the grouper and starts the linger thread. TP_ERR_INVALID_ARG, TP_ERR_KAFKA,
 * TP_ERR_NOMEM; err gets a sentence. */
tp_err tp_dyn_ingest_new(const tp_dyn_ingest_opts *o, tp_dyn_ingest **out, char *err, size_t errlen);

typedef struct tp_dyn_ticket tp_dyn_ticket;

/* Takes `count` varint-delimited records frames[0..len), each already checked under the schema (tp_dyn_decode and
 * tp_dyn_key_text succeed on it). On TP_OK *ticket follows them (tp_dyn_ingest_wait, then tp_dyn_ticket_release).
 * TP_ERR_DECODE (a frame does not decode after all: nothing of this call is taken... except the frames before it,
 * which the ticket then does not cover: callers check first), TP_ERR_KAFKA (the worker failed), TP_ERR_NOMEM. */
tp_err tp_dyn_ingest_submit(tp_dyn_ingest *d, const uint8_t *frames, size_t len, uint64_t count,
                            tp_dyn_ticket **ticket, char *err, size_t errlen);

/* One gateway record (tag as the gateway server gave it, count 1), already checked under the schema. TP_OK,
 * TP_ERR_AGAIN while the worker holds max_buffered_bytes or more (refuse it for now: backpressure), TP_ERR_KAFKA
 * (the worker failed or stops), TP_ERR_NOMEM, or the grouper's refusal (err says why). Once its pack is durable
 * its tag comes out of tp_dyn_ingest_drain (counts merged per block). */
tp_err tp_dyn_ingest_take(tp_dyn_ingest *d, const uint8_t *msg, size_t len, const tp_batch_tag *tag, char *err,
                          size_t errlen);
/* fn(ctx) is called (on a delivery thread, with a lock held: keep it short, e.g. tp_gateway_server_wake) when tags
 * become ready to drain. */
void tp_dyn_ingest_set_notify(tp_dyn_ingest *d, void (*fn)(void *ctx), void *ctx);
/* Moves up to cap delivered tags into out; returns how many. Thread-safe. */
size_t tp_dyn_ingest_drain(tp_dyn_ingest *d, tp_batch_tag *out, size_t cap);

/* Waits until every record of the ticket is durable in Kafka (0), timeout_ms passed (1), or a pack holding some of
 * them failed or the worker stopped (2). *durable gets the records delivered so far. */
int tp_dyn_ingest_wait(tp_dyn_ingest *d, tp_dyn_ticket *t, int timeout_ms, uint64_t *durable);
void tp_dyn_ticket_release(tp_dyn_ingest *d, tp_dyn_ticket *t);

/* Packs every open group holding records of the gateway connection (source, generation as in its tags) now: it
 * went quiet or is at its window (tp_gateway_sent_fn), so its acks need not wait for the linger. */
void tp_dyn_ingest_flush_source(tp_dyn_ingest *d, uint32_t source, uint32_t generation);

/* Packs every open group now (shutdown: then wait for tp_dyn_ingest_buffered to reach 0). Thread-safe. */
void tp_dyn_ingest_flush(tp_dyn_ingest *d);

/* Record bytes held (open groups and packs not yet delivered). Thread-safe. */
size_t tp_dyn_ingest_buffered(tp_dyn_ingest *d);
/* Non-zero once a pack failed for good or librdkafka raised a fatal error; buf gets the reason. */
int tp_dyn_ingest_failed(tp_dyn_ingest *d, char *buf, size_t len);

/* Readiness for /readyz: 1 when the worker has not failed, is not stopping, and (with kafka_metrics) its producer's
 * last statistics saw a broker up (or a pack was delivered); else 0 with a sentence in reason. Thread-safe. */
int tp_dyn_ingest_ready(tp_dyn_ingest *d, char *reason, size_t cap);

typedef struct tp_dyn_ingest_stats {
    uint64_t records_in, bytes_in; /* records taken and their protobuf bytes */
    uint64_t packs_out, records_out, pack_bytes_out, delivery_failures;
    uint64_t in_flight;            /* packs produced, not yet reported */
    uint64_t open_groups;          /* keys with an open group */
} tp_dyn_ingest_stats;
void tp_dyn_ingest_stats_get(tp_dyn_ingest *d, tp_dyn_ingest_stats *st);

/* Packs every open group, waits up to timeout_ms for the deliveries, frees everything; *final (may be NULL) gets
 * the last counters. TP_OK when all was delivered; TP_ERR_AGAIN on timeout (the rest is purged: not delivered,
 * their tickets fail); TP_ERR_KAFKA after a failure. */
tp_err tp_dyn_ingest_stop(tp_dyn_ingest *d, int timeout_ms, tp_dyn_ingest_stats *final);

/* The event-time bound of gateway protocol v2 (docs/GATEWAY.md, reject code 4) for a record of a run-time schema:
 * row `row` of b (decoded) holds a time (the time role) more than skew_ms from now_ms (wall clock, ms)? Then 1 and
 * a sentence naming the field, the value and the bound in why[0..cap); else 0 (also without a time role, without a
 * time in the row, or skew_ms < 0). */
int tp_dyn_event_time_out(const tp_dyn_batch *b, size_t row, int64_t now_ms, int64_t skew_ms, char *why, size_t cap);

#endif
