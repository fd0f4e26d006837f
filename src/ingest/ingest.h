/* The ingest worker as an object: gateway server -> per-vehicle batcher -> compression pool -> Kafka producer,
 * with delivery reports driving the gateways' acks (docs/INGEST.md). `telepack ingest` and `telepack demo` run it. */
#ifndef TELEPACK_INGEST_H
#define TELEPACK_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/batcher.h"
#include "ingest/gateway_server.h"
#include "ops/worker_metrics.h"
#include "telepack/error.h"
#include "telepack/pack.h"

/* How records are grouped into packs (docs/INGEST.md, "Packing by partition"). */
typedef enum tp_pack_by {
    TP_PACK_BY_PARTITION = 0, /* one open batch per Kafka partition: packs of many vehicles (format version 3), sent
                               * to that partition with no key; layout columns only: with layout rows the worker
                               * packs per vehicle whatever pack_by says (a rows pack holds one vehicle) */
    TP_PACK_BY_VEHICLE = 1,   /* one open batch per vehicle: one-vehicle packs keyed by the vehicle id */
} tp_pack_by;

typedef struct tp_ingest_opts {
    const char *brokers;            /* bootstrap.servers (may be NULL if kafka_conf configures a mock cluster) */
    const char *topic;              /* required */
    const char *listen;             /* "HOST:PORT" for gateways, or NULL (then feed it with tp_ingest_add_fd) */
    const char *const *kafka_conf;  /* "key=value" librdkafka properties (-X), applied last */
    size_t nkafka_conf;
    tp_pack_by pack_by;             /* default TP_PACK_BY_PARTITION; set it with tp_ingest_opts_pack_by */
    tp_batcher_opts batch;          /* flush rules (per pack) and the buffered-bytes cap */
    int compact_headers;            /* default 1: the one header "tp" (docs/FORMAT.md section 5); 0: the full set */
    int threads;                    /* compression threads (default: online CPUs) */
    int level;                      /* zstd level (default 3) */
    tp_codec codec;                 /* default TP_CODEC_ZSTD */
    const tp_dict *dict;            /* zstd dictionary for every pack, loaded at `level` (borrowed); default NULL */
    tp_layout layout;               /* default TP_LAYOUT_COLUMNS (pbpack v2); TP_LAYOUT_ROWS = standard protobuf */
    int coded_columns;              /* layout columns: coded columns (docs/FORMAT_V2.md), default 0 */
    size_t max_record_bytes;        /* default TP_DEFAULT_MAX_RECORD_BYTES */
    uint32_t max_connections;       /* default 4096 */
    uint32_t max_conns_per_ip;      /* connections from one source address (default 64) */
    int idle_timeout_ms;            /* close silent gateway connections (default 60000; 0 = never) */
    int gateway_flush_ms;           /* pack a gateway's records now, not at linger, once it sent nothing for this
                                       long (the batches holding only its records) or passed half its window
                                       (every batch holding its records); default 20; 0 = linger and size only */
    const tp_gateway_auth *auth;    /* gateway authentication, or NULL (gateway_server.h); must outlive the worker */
    struct tp_tls_server *tls;      /* TLS on the gateway listener, or NULL (gateway_tls.h); must outlive the worker */
    const tp_ingest_metrics *metrics; /* Prometheus handles to update (worker_metrics.h), or NULL; must outlive
                                         the worker */
    tp_metrics *kafka_metrics;      /* registry for the producer's librdkafka statistics (kafka_stats.h,
                                       telepack_kafka_*{role="producer"}), or NULL; turns on
                                       statistics.interval.ms=5000 (a -X value wins), which tp_ingest_ready reads
                                       the broker connections from; must outlive the worker */
} tp_ingest_opts;

void tp_ingest_opts_init(tp_ingest_opts *o);

/* Sets o->pack_by and the flush rules that suit it: per partition 10000 records or 1 MiB of wire bytes a pack, per
 * vehicle 200 records or 256 KiB (each pack stays well below Kafka's 1 MB message limit whatever the values). Call
 * it before setting batch.max_records / batch.max_bytes explicitly. */
void tp_ingest_opts_pack_by(tp_ingest_opts *o, tp_pack_by by);

/* Counters, readable from any thread at any time (each one atomic; together a near-consistent snapshot). */
typedef struct tp_ingest_stats {
    uint64_t records_in;         /* records taken from gateways */
    uint64_t bytes_in;           /* their wire bytes */
    uint64_t packs_out;          /* packs Kafka acknowledged */
    uint64_t records_out;        /* records in those packs */
    uint64_t pack_bytes_out;     /* compressed bytes of those packs */
    uint64_t records_acked;      /* records acknowledged to gateways */
    uint64_t buffered_bytes;     /* wire bytes not yet delivered (open batches, compression, Kafka) */
    uint64_t buffered_records;
    uint64_t in_flight;          /* packs handed to Kafka, not yet reported */
    uint64_t connections;        /* gateway connections open */
    uint64_t connections_closed_on_error;
    uint64_t delivery_retries;   /* packs sent again after a retriable delivery failure */
    uint64_t delivery_failures;  /* packs that failed for good (the worker then stops) */
    uint64_t paused;             /* 1 while reading is paused for backpressure */
} tp_ingest_stats;

typedef struct tp_ingest tp_ingest;

/* Validates opts, creates the producer, binds the listen address; nothing runs until tp_ingest_start.
 * Errors: TP_ERR_INVALID_ARG, TP_ERR_IO, TP_ERR_KAFKA, TP_ERR_NOMEM; errbuf receives a sentence. */
tp_err tp_ingest_new(const tp_ingest_opts *opts, tp_ingest **out, char *errbuf, size_t errlen);

/* The bound gateway port (with listen port 0), or 0. */
int tp_ingest_port(const tp_ingest *ing);

/* Hands an already connected stream socket to the worker as one more gateway connection (the worker owns fd). It
 * is trusted: gateway authentication (opts.auth) does not apply (the HTTP endpoint and replay use it, having
 * checked their records already). Thread-safe; works before and after start. */
tp_err tp_ingest_add_fd(tp_ingest *ing, int fd);

/* Starts the network thread and the compression threads. */
tp_err tp_ingest_start(tp_ingest *ing);

/* Graceful stop: stop accepting and reading, flush every batch, wait up to timeout_ms (-1 = no limit) for Kafka's
 * delivery reports, send the last acks, close connections. TP_OK when everything taken was delivered and acked;
 * TP_ERR_AGAIN if the timeout left packs undelivered (they were not acked); TP_ERR_KAFKA after a fatal error. */
tp_err tp_ingest_stop(tp_ingest *ing, int timeout_ms);

/* Makes a running tp_ingest_stop give up waiting for deliveries now (as if its timeout passed): a second Ctrl-C.
 * Thread-safe and async-signal-safe. */
void tp_ingest_hurry(tp_ingest *ing);

/* Non-zero once the worker failed for good (librdkafka fatal error, a pack refused for good); buf gets the reason.
 * The worker then stops reading, closes its connections (gateways keep their unacked records) and winds down;
 * call tp_ingest_stop. Thread-safe. */
int tp_ingest_failed(tp_ingest *ing, char *buf, size_t len);

void tp_ingest_stats_get(tp_ingest *ing, tp_ingest_stats *st);

/* Readiness for /readyz: non-zero while the worker can take records: not failed, not stopping, not held back by
 * the memory cap and (with kafka_metrics) its producer has a broker connection: the last statistics showed a
 * broker UP, or a pack was delivered since. Otherwise 0 and a one-line reason in reason[0..cap). Thread-safe,
 * does not block. */
int tp_ingest_ready(tp_ingest *ing, char *reason, size_t cap);

/* Stops (as tp_ingest_stop with a 10 s limit) if still running, then frees everything. */
void tp_ingest_free(tp_ingest *ing);

/* The producer's librdkafka handle (e.g. to reach a mock cluster created with test.mock.num.brokers). */
struct rd_kafka_s *tp_ingest_kafka_handle(tp_ingest *ing);

#endif
