/* The metric names of the ingest and sink workers and one call per worker that registers its whole set
 * (docs/OPERATIONS.md describes every metric). Workers keep the returned struct of handles and update them. */
#ifndef TELEPACK_WORKER_METRICS_H
#define TELEPACK_WORKER_METRICS_H

#include "ops/metrics.h"

/* ---- process (both workers) ---- */
#define TP_M_BUILD_INFO "telepack_build_info"                       /* gauge 1 {version,worker} */
#define TP_M_START_TIME "telepack_process_start_time_seconds"       /* gauge, unix time */

/* ---- ingest ---- */
#define TP_M_INGEST_RECORDS "telepack_ingest_records_total"
#define TP_M_INGEST_RECORDS_REJECTED "telepack_ingest_records_rejected_total" /* {reason} */
#define TP_M_INGEST_GATEWAY_TLS_FAILURES "telepack_ingest_gateway_tls_failures_total" /* {reason} */
#define TP_M_INGEST_GATEWAY_TLS_SESSIONS "telepack_ingest_gateway_tls_sessions_total"
#define TP_M_INGEST_GATEWAY_CLOSES "telepack_ingest_gateway_closes_total"       /* {reason} */
#define TP_M_INGEST_GATEWAY_REFUSALS "telepack_ingest_gateway_refusals_total"   /* {reason} */
#define TP_M_INGEST_GATEWAYS_V2 "telepack_ingest_gateways_v2"
#define TP_M_INGEST_PACKS "telepack_ingest_packs_total"
#define TP_M_INGEST_BYTES_IN "telepack_ingest_bytes_in_total"
#define TP_M_INGEST_BYTES_OUT "telepack_ingest_bytes_out_total"
#define TP_M_INGEST_FLUSHES "telepack_ingest_flushes_total"         /* {reason=records|bytes|linger|shutdown} */
#define TP_M_INGEST_PACK_BYTES "telepack_ingest_pack_bytes"
#define TP_M_INGEST_RECORDS_PER_PACK "telepack_ingest_records_per_pack"
#define TP_M_INGEST_BATCH_AGE "telepack_ingest_batch_age_seconds"
#define TP_M_INGEST_PRODUCE_LATENCY "telepack_ingest_produce_latency_seconds"
#define TP_M_INGEST_DELIVERY_ERRORS "telepack_ingest_delivery_errors_total"
#define TP_M_INGEST_PRODUCER_RESTARTS "telepack_ingest_producer_restarts_total"
#define TP_M_INGEST_BACKPRESSURE "telepack_ingest_backpressure_total"
#define TP_M_INGEST_BUFFERED_BYTES "telepack_ingest_buffered_bytes"
#define TP_M_INGEST_OPEN_BATCHES "telepack_ingest_open_batches"
#define TP_M_INGEST_BATCHER_MEMORY "telepack_ingest_batcher_memory_bytes"
#define TP_M_INGEST_INFLIGHT_PACKS "telepack_ingest_inflight_packs"
#define TP_M_INGEST_GATEWAYS "telepack_ingest_gateways"

/* ---- sink ---- */
#define TP_M_SINK_PACKS "telepack_sink_packs_total"
#define TP_M_SINK_RECORDS "telepack_sink_records_total"
#define TP_M_SINK_ROWS_LOADED "telepack_sink_rows_loaded_total"           /* {warehouse} */
#define TP_M_SINK_LOADS "telepack_sink_loads_total"                       /* {warehouse} */
#define TP_M_SINK_LOAD_LATENCY "telepack_sink_load_latency_seconds"       /* {warehouse} */
#define TP_M_SINK_BATCH_ROWS "telepack_sink_batch_rows"                   /* {warehouse} */
#define TP_M_SINK_LOAD_ERRORS "telepack_sink_load_errors_total"           /* {warehouse} */
#define TP_M_SINK_RETRIES "telepack_sink_retries_total"                   /* {warehouse} */
#define TP_M_SINK_WAREHOUSE_UP "telepack_sink_warehouse_up"               /* {warehouse} */
#define TP_M_SINK_DLQ "telepack_sink_dlq_total"
#define TP_M_SINK_DECODE_ERRORS "telepack_sink_decode_errors_total"
#define TP_M_SINK_ROWS_REJECTED "telepack_sink_rows_rejected_total"       /* {warehouse} */
#define TP_M_SINK_LOAD_SPLITS "telepack_sink_load_splits_total"           /* {warehouse} */
/* {reason=decode|memory|event_time|rejected|dict} */
#define TP_M_SINK_DLQ_REASON "telepack_sink_dlq_reason_total"
#define TP_M_SINK_PENDING_ROWS "telepack_sink_pending_rows"
#define TP_M_SINK_ASSIGNED_PARTITIONS "telepack_sink_assigned_partitions"
#define TP_M_SINK_REBALANCES "telepack_sink_rebalances_total"
#define TP_M_SINK_EVENT_TIME_LAG "telepack_sink_event_time_lag_seconds"
#define TP_M_SINK_CONSUMER_LAG "telepack_sink_consumer_lag"                /* {topic,partition}, kafka_stats.c */

/* Handles of the ingest worker. Every field may be NULL (metrics disabled): the update functions ignore NULL. */
typedef struct tp_ingest_metrics {
    tp_counter *records;          /* records accepted from gateways (and replay) */
    tp_counter *records_rejected[5]; /* records refused, by tp_gw_reject code 1..4: malformed, too_large,
                                        vehicle_not_allowed, event_time ([0] unused) */
    tp_counter *gateway_closes[7];   /* connections closed by the server, by tp_gw_close reason */
    tp_counter *gateway_tls_failures[4]; /* connections that did not get through TLS, by tp_gw_tls_fail reason */
    tp_counter *gateway_tls_sessions;    /* TLS handshakes completed on the gateway listener */
    tp_counter *gateway_refusals[7]; /* handshakes refused, by tp_gw_refusal status 1..6 ([0] unused) */
    tp_gauge *gateways_v2;           /* connected gateways past a v2 handshake */
    tp_counter *packs;            /* packs handed to the producer */
    tp_counter *bytes_in;         /* encoded record bytes (varint-delimited protobuf) before compression */
    tp_counter *bytes_out;        /* pack bytes after compression (the Kafka message values) */
    tp_counter *flush_records;    /* flushes because the batch reached max records */
    tp_counter *flush_bytes;      /* ... max bytes */
    tp_counter *flush_linger;     /* ... linger time */
    tp_counter *flush_shutdown;   /* ... shutdown / drain */
    tp_counter *flush_open;       /* ... a new vehicle at --max-open-vehicles (the oldest open batch) */
    tp_counter *flush_gateway;    /* ... a gateway went quiet with unacked records, or passed half its window */
    tp_histogram *pack_bytes;         /* compressed size of each pack */
    tp_histogram *records_per_pack;   /* records in each pack */
    tp_histogram *batch_age;          /* seconds from a batch's first record to its flush */
    tp_histogram *produce_latency;    /* seconds from produce() to the delivery report */
    tp_counter *delivery_errors;      /* failed delivery reports */
    tp_counter *producer_restarts;    /* producer recreated after a fatal error */
    tp_counter *backpressure;         /* times the memory cap made the ingest stop reading */
    tp_gauge *buffered_bytes;         /* bytes held in open batches and unacknowledged packs */
    tp_gauge *open_batches;           /* vehicles with an open batch */
    tp_gauge *batcher_memory;         /* memory the batcher holds: batches, pool, hash map */
    tp_gauge *inflight_packs;         /* packs produced and not yet acknowledged */
    tp_gauge *gateways;               /* connected gateways */
} tp_ingest_metrics;

/* Handles of the sink worker (warehouse-labelled series carry warehouse="<name>"). */
typedef struct tp_sink_metrics {
    tp_counter *packs;            /* packs consumed */
    tp_counter *records;          /* records decoded from packs */
    tp_counter *rows_loaded;      /* rows the warehouse acknowledged */
    tp_counter *loads;            /* successful load calls */
    tp_histogram *load_latency;   /* seconds per successful load call */
    tp_histogram *batch_rows;     /* rows per load call */
    tp_counter *load_errors;      /* failed load calls */
    tp_counter *retries;          /* load calls retried after a failure */
    tp_gauge *warehouse_up;       /* 1 while the last load (or open) succeeded, 0 after a failure */
    tp_counter *dlq;              /* packs sent to the dead-letter topic */
    tp_counter *decode_errors;    /* packs that failed to decode (each also goes to the DLQ when one is set) */
    tp_counter *dlq_decode;       /* packs dead-lettered because they are not valid packs (incl. too many records) */
    tp_counter *dlq_memory;       /* ... because decoding ran out of memory several times */
    tp_counter *dlq_event_time;   /* ... because a record's sampled_at_ms is outside the accepted range */
    tp_counter *dlq_rejected;     /* ... because the warehouse refused their rows as invalid */
    tp_counter *dlq_dict;         /* ... because they name a zstd dictionary the sink does not have */
    tp_counter *rows_rejected;    /* rows the warehouse refused as invalid (their packs went to the DLQ) */
    tp_counter *load_splits;      /* loads split in two because the warehouse refused a batch as a whole */
    tp_gauge *pending_rows;       /* rows decoded, not yet loaded */
    tp_gauge *assigned_partitions;
    tp_counter *rebalances;
    tp_histogram *event_time_lag; /* seconds between a record's sampled_at and its load (sampled per load) */
} tp_sink_metrics;

/* Register the whole set in m and fill *out. Also registers telepack_build_info and the start time.
 * Returns tp_metrics_status(m) (TP_OK, or the first registration error). The handles live as long as m. */
tp_err tp_ingest_metrics_register(tp_metrics *m, tp_ingest_metrics *out);
/* warehouse: "sqlite", "clickhouse", "bigquery" (any label-safe text). */
tp_err tp_sink_metrics_register(tp_metrics *m, const char *warehouse, tp_sink_metrics *out);

#endif
