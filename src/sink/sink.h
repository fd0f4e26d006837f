/* The sink worker: a Kafka consumer group member that decodes packs into column batches and loads them into a
 * warehouse, storing Kafka offsets only after the warehouse acknowledged (docs/SINK.md has the argument). */
#ifndef TELEPACK_SINK_H
#define TELEPACK_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "ops/metrics.h"
#include "telepack/error.h"
#include "telepack/rows.h"
#include "warehouse/warehouse.h"

/* Name of the DLQ header that says where a dead-lettered message came from: "TOPIC/PARTITION@OFFSET". The reason
 * sentence travels in the error header named by src/kafka/pack_headers.h. */
#define TP_SINK_DLQ_SOURCE_HEADER "tp-source"

/* Default accepted event time around now, each way: 10 years (3653 days). */
#define TP_SINK_DEFAULT_EVENT_RANGE_MS (INT64_C(3653) * 86400000)

/* Counters, read with tp_sink_stats_get() from any thread while the sink runs. */
typedef struct tp_sink_stats {
    uint64_t rows_loaded;      /* rows the warehouse acknowledged */
    uint64_t packs_loaded;     /* messages whose rows the warehouse acknowledged */
    uint64_t packs_dlq;        /* messages delivered to the dead-letter topic */
    uint64_t packs_rejected;   /* of those, packs whose rows the warehouse refused as invalid */
    uint64_t packs_dict;       /* of those, packs naming a zstd dictionary the sink does not have */
    uint64_t load_splits;      /* loads split because the warehouse refused a batch as a whole */
    uint64_t dlq_retries;      /* dead-letter deliveries that failed and were retried */
    uint64_t bytes_consumed;   /* message payload bytes taken from Kafka */
    uint64_t loads;            /* successful warehouse loads */
    uint64_t loads_caught_up;  /* of those, loads started because the sink had read every assigned partition up
                                * to its high watermark (the others: a full batch, --flush-ms, a revoke, stop) */
    uint64_t load_retries;     /* loads that failed with "unavailable" and were retried */
    uint64_t rows_dropped;     /* rows dropped from the batch at a revoke (re-read by the next owner, not lost) */
    uint64_t rebalances;       /* assign + revoke events */
    uint64_t pending_rows;     /* rows decoded and waiting for the next load */
    int64_t lag;               /* messages behind the high watermarks of the assigned partitions; -1 unknown */
    int paused;                /* 1 while partitions are paused because the warehouse is unavailable */
} tp_sink_stats;

/* Rows a load waits for by default. 300,000: ClickHouse spends about half the server CPU per row on inserts of
 * 300k rows than of 100k (fewer parts, fewer merges; docs/BENCHMARKS.md), for ~17 MB more sink memory. A sink of a
 * run-time schema allocates its batch's cells up front (9 bytes a column a row), so its default is smaller. */
#define TP_SINK_DEFAULT_BATCH_ROWS 300000
#define TP_SINK_DEFAULT_SCHEMA_BATCH_ROWS 100000

typedef struct tp_sink_config {
    const char *brokers;            /* bootstrap.servers (required) */
    const char *topic;              /* topic to consume (required) */
    const char *group;              /* group.id (required) */
    const char *dlq_topic;          /* dead-letter topic; NULL = "<topic>.dlq" */
    const char *warehouse_url;      /* see tp_warehouse_open; ignored when `warehouse` is set */
    tp_warehouse_opts warehouse_opts;
    tp_warehouse *warehouse;        /* optional open warehouse to use instead of warehouse_url: borrowed, the
                                     * caller closes it after tp_sink_free */
    size_t batch_rows;              /* load when this many rows are decoded; default TP_SINK_DEFAULT_BATCH_ROWS */
    long flush_ms;                  /* load decoded rows at the latest this long after the first; default 1000 */
    /* Load decoded rows as soon as every assigned partition has been read up to its high watermark (nothing more
     * to wait for), but not sooner than this long after the previous load (protects the warehouse from many small
     * inserts: ClickHouse's parts). 0 = as soon as caught up; at or above flush_ms = only by count or age.
     * Default 200. */
    long min_insert_interval_ms;
    /* A caught-up load of at least this many rows, or right after a load of at least this many rows, starts at
     * once, without waiting for min_insert_interval_ms: an insert that large is not one of the small ones the
     * interval protects the warehouse from, and waiting only delays the rest of a backlog. 0 = default, a quarter
     * of batch_rows; above any load's size (e.g. 100000000) every caught-up load waits. Not applied when
     * min_insert_interval_ms >= flush_ms (loads by count or age only). */
    size_t min_insert_interval_rows;
    size_t max_pack_bytes;          /* bound of a message and of its decompressed content; default 64 MiB */
    const char *const *kafka_props; /* "key=value" librdkafka properties for the consumer and the DLQ producer */
    size_t n_kafka_props;
    long backoff_min_ms;            /* first retry delay while the warehouse is unavailable; default 100 */
    long backoff_max_ms;            /* cap of the doubling retry delay; default 10000 */
    /* Accepted event time: a pack with a record whose sampled_at_ms is more than max_event_age_ms before now or
     * more than max_event_ahead_ms after now is dead-lettered whole. Default 10 years each; -1 = no bound. */
    int64_t max_event_age_ms;
    int64_t max_event_ahead_ms;
    /* Optional metrics registry (borrowed, must outlive the sink): the sink registers its set
     * (src/ops/worker_metrics.h) and librdkafka's statistics of its consumer and DLQ producer (src/kafka/kafka_stats.h). */
    tp_metrics *metrics;
    /* Called from tp_sink_run's thread about every progress_ms (0 = never) with the current counters. */
    void (*progress)(void *ctx, const tp_sink_stats *stats);
    void *progress_ctx;
    long progress_ms;
    /* Test hook: called before every warehouse load; a non-TP_OK result is taken as the load's result and the
     * warehouse is not called. NULL in production. */
    tp_err (*load_hook)(void *ctx, size_t rows);
    void *load_hook_ctx;
    /* Test hook: called before the batch grows for a pack larger than what it has left; a non-TP_OK result fails
     * the growth as an allocation failure would. NULL in production. */
    tp_err (*reserve_hook)(void *ctx, size_t rows);
    void *reserve_hook_ctx;
    /* Called from tp_sink_run's thread after the warehouse acknowledged a batch, with the rows it holds (valid only
     * during the call), e.g. for end-to-end latency figures. NULL in most uses. */
    void (*on_loaded)(void *ctx, const tp_row_batch *rows);
    void *on_loaded_ctx;
    /* A run-time schema (schema/schema.h; borrowed, must outlive the sink): packs must carry tp-schema = its message
     * name and tp-schema-fp = its fingerprint or one of writer_schemas' that tp_schema_compare finds compatible
     * (others go to the DLQ with both fingerprints and the reason); they decode with the dynamic decoder into a
     * batch of batch_rows rows loaded with tp_warehouse_load_dyn (set warehouse_opts.schema too). on_loaded is not
     * called. NULL = the built-in record. */
    const struct tp_schema *schema;
    const struct tp_schema *const *writer_schemas;
    size_t n_writer_schemas;
    /* With schema: a directory of descriptor sets (schema/schema_dir.h; borrowed, must outlive the sink) where a
     * fingerprint that is neither the schema's nor a writer_schemas' is looked up; found and compatible: loaded. */
    struct tp_schema_dir *writer_dir;
    /* zstd dictionaries packs may name (borrowed, must outlive the sink; loaded by `sink --dict-dir`). A pack naming
     * one not here goes to the DLQ (reason "dict"), never blocks its partition. NULL = none. */
    const struct tp_dict_set *dicts;
} tp_sink_config;

/* Fills *c with the defaults above (everything else zero/NULL). */
void tp_sink_config_init(tp_sink_config *c);

typedef struct tp_sink tp_sink;

/* Validates the configuration, opens (or adopts) the warehouse and ensures its table, creates the consumer and the
 * DLQ producer. Does not join the group yet. A warehouse that is unavailable (TP_ERR_UNAVAILABLE) is not an error
 * here: tp_sink_run retries ensuring its table with the load backoff before it joins the group. The sink copies what it keeps from c. On failure *out is NULL and a
 * sentence saying what to fix is written to err[0..cap) when err is not NULL: TP_ERR_INVALID_ARG for a bad
 * configuration (missing field, value out of range, -X property librdkafka rejects), the warehouse's error when it
 * cannot be opened or its table is missing, TP_ERR_KAFKA when librdkafka cannot create a client. */
tp_err tp_sink_new(const tp_sink_config *c, tp_sink **out, char *err, size_t cap);

/* Runs the consumer loop in the calling thread until tp_sink_stop() is called or a permanent error happens.
 * On stop: loads what is decoded, stores its offsets, closes the consumer (which commits them). Returns TP_OK after
 * a clean stop; TP_ERR_WAREHOUSE (permanent warehouse error: the failed batch's offsets are not stored) or
 * TP_ERR_KAFKA (fatal consumer error); tp_sink_last_error() then has the sentence. Call at most once. */
tp_err tp_sink_run(tp_sink *s);

/* Asks tp_sink_run to finish. Thread-safe and async-signal-safe (one atomic store). */
void tp_sink_stop(tp_sink *s);

/* Current counters; thread-safe. */
void tp_sink_stats_get(const tp_sink *s, tp_sink_stats *out);

/* Readiness for /readyz: true once the sink has joined its group (first assignment) and while its last warehouse
 * call succeeded; otherwise false with a one-line reason in reason[0..cap). Thread-safe, never blocks. */
int tp_sink_ready(const tp_sink *s, char *reason, size_t cap);

/* The last error as a sentence; "" when none. Valid until tp_sink_free. */
const char *tp_sink_last_error(const tp_sink *s);

/* Frees the sink (after tp_sink_run returned, or without running it). NULL is a no-op. */
void tp_sink_free(tp_sink *s);

#endif
