/* Registration of the ingest and sink workers' metric sets: names, help texts and bucket layouts in one place
 * (docs/OPERATIONS.md is the operator's view of the same list). */
#include "ops/worker_metrics.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "telepack/version.h"

/* Bucket layouts. */
static const double pack_bytes_buckets[] = {64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
                                            131072, 262144, 524288, 1048576, 4194304};
static const double records_per_pack_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
static const double latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,   0.5,   1,      2.5,   5,    10,    30,    60};
static const double batch_age_buckets[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300};
static const double batch_rows_buckets[] = {10, 100, 1000, 5000, 10000, 50000, 100000, 500000, 1000000};
static const double event_lag_buckets[] = {0.1, 0.25, 0.5, 1,   2.5,  5,    10,   30,    60,
                                           120, 300,  600, 1800, 3600, 7200, 21600, 86400};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void register_process(tp_metrics *m, const char *worker)
{
    char labels[128];
    tp_metrics_labels(labels, sizeof labels, "version", TP_VERSION_STRING, "worker", worker, NULL);
    tp_gauge_set(tp_metrics_gauge(m, TP_M_BUILD_INFO, "Always 1; labels say the version and the worker.", labels),
                 1.0);
    tp_gauge *start = tp_metrics_gauge(m, TP_M_START_TIME, "Start time of the process, in seconds since the epoch.",
                                       NULL);
    if (start && tp_gauge_value(start) == 0.0)
        tp_gauge_set(start, (double)time(NULL));
}

tp_err tp_ingest_metrics_register(tp_metrics *m, tp_ingest_metrics *o)
{
    if (!m || !o)
        return TP_ERR_INVALID_ARG;
    memset(o, 0, sizeof *o);
    register_process(m, "ingest");
    o->records = tp_metrics_counter(m, TP_M_INGEST_RECORDS, "Records accepted from gateways or replay.", NULL);
    static const char *const rej[] = {"", "malformed", "too_large", "vehicle_not_allowed", "event_time"};
    static const char *const clo[] = {"idle_timeout", "per_ip_limit", "max_connections", "protocol_error",
                                      "refused", "io_error", "tls_error"};
    static const char *const tlsf[] = {"plaintext", "tls_to_plain_port", "handshake", "client_certificate"};
    static const char *const ref[] = {"", "unsupported_version", "bad_hello", "auth_required", "auth_failed",
                                      "shutting_down", "v1_not_allowed"};
    char lb[64];
    for (int i = 1; i < 5; i++) {
        snprintf(lb, sizeof lb, "reason=\"%s\"", rej[i]);
        o->records_rejected[i] = tp_metrics_counter(
            m, TP_M_INGEST_RECORDS_REJECTED,
            "Gateway records refused, by reason (v2: set aside and acked past; v1: the connection is closed).", lb);
    }
    for (int i = 0; i < 7; i++) {
        snprintf(lb, sizeof lb, "reason=\"%s\"", clo[i]);
        o->gateway_closes[i] = tp_metrics_counter(m, TP_M_INGEST_GATEWAY_CLOSES,
                                                  "Gateway connections closed by the server, by reason.", lb);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(lb, sizeof lb, "reason=\"%s\"", tlsf[i]);
        o->gateway_tls_failures[i] = tp_metrics_counter(
            m, TP_M_INGEST_GATEWAY_TLS_FAILURES,
            "Gateway connections closed because TLS did not start (plaintext on the TLS port, TLS on a plain port, "
            "a failed handshake, a missing or unknown client certificate), by reason.", lb);
    }
    o->gateway_tls_sessions = tp_metrics_counter(m, TP_M_INGEST_GATEWAY_TLS_SESSIONS,
                                                 "TLS handshakes completed on the gateway listener.", NULL);
    for (int i = 1; i < 7; i++) {
        snprintf(lb, sizeof lb, "reason=\"%s\"", ref[i]);
        o->gateway_refusals[i] = tp_metrics_counter(m, TP_M_INGEST_GATEWAY_REFUSALS,
                                                    "Gateway handshakes refused, by reason.", lb);
    }
    o->gateways_v2 = tp_metrics_gauge(m, TP_M_INGEST_GATEWAYS_V2, "Connected gateways past a protocol v2 handshake.",
                                      NULL);
    o->packs = tp_metrics_counter(m, TP_M_INGEST_PACKS, "Packs handed to the Kafka producer.", NULL);
    o->bytes_in = tp_metrics_counter(m, TP_M_INGEST_BYTES_IN,
                                     "Encoded record bytes (varint-delimited protobuf) before compression.", NULL);
    o->bytes_out = tp_metrics_counter(m, TP_M_INGEST_BYTES_OUT, "Pack bytes after compression (Kafka values).",
                                      NULL);
    const char *fl = "Batches flushed into packs, by the reason of the flush.";
    o->flush_records = tp_metrics_counter(m, TP_M_INGEST_FLUSHES, fl, "reason=\"records\"");
    o->flush_bytes = tp_metrics_counter(m, TP_M_INGEST_FLUSHES, fl, "reason=\"bytes\"");
    o->flush_linger = tp_metrics_counter(m, TP_M_INGEST_FLUSHES, fl, "reason=\"linger\"");
    o->flush_shutdown = tp_metrics_counter(m, TP_M_INGEST_FLUSHES, fl, "reason=\"shutdown\"");
    o->flush_open = tp_metrics_counter(m, TP_M_INGEST_FLUSHES, fl, "reason=\"open_vehicles\"");
    o->flush_gateway = tp_metrics_counter(m, TP_M_INGEST_FLUSHES, fl, "reason=\"gateway\"");
    o->pack_bytes = tp_metrics_histogram(m, TP_M_INGEST_PACK_BYTES, "Compressed size of each pack, in bytes.", NULL,
                                         pack_bytes_buckets, N(pack_bytes_buckets));
    o->records_per_pack = tp_metrics_histogram(m, TP_M_INGEST_RECORDS_PER_PACK, "Records in each pack.", NULL,
                                               records_per_pack_buckets, N(records_per_pack_buckets));
    o->batch_age = tp_metrics_histogram(m, TP_M_INGEST_BATCH_AGE,
                                        "Seconds from a batch's first record to its flush (the linger paid).", NULL,
                                        batch_age_buckets, N(batch_age_buckets));
    o->produce_latency = tp_metrics_histogram(m, TP_M_INGEST_PRODUCE_LATENCY,
                                              "Seconds from handing a pack to the producer to its delivery report.",
                                              NULL, latency_buckets, N(latency_buckets));
    o->delivery_errors = tp_metrics_counter(m, TP_M_INGEST_DELIVERY_ERRORS,
                                            "Delivery reports with an error (the pack is retried or the gateway "
                                            "is not acknowledged).",
                                            NULL);
    o->producer_restarts = tp_metrics_counter(m, TP_M_INGEST_PRODUCER_RESTARTS,
                                              "Producers destroyed and recreated after a fatal error.", NULL);
    o->backpressure = tp_metrics_counter(m, TP_M_INGEST_BACKPRESSURE,
                                         "Times the memory cap made the ingest stop reading from gateways.", NULL);
    o->buffered_bytes = tp_metrics_gauge(m, TP_M_INGEST_BUFFERED_BYTES,
                                         "Bytes held in open batches and unacknowledged packs.", NULL);
    o->open_batches = tp_metrics_gauge(m, TP_M_INGEST_OPEN_BATCHES, "Vehicles with an open batch.", NULL);
    o->batcher_memory = tp_metrics_gauge(m, TP_M_INGEST_BATCHER_MEMORY,
                                         "Memory the batcher holds: batches not yet delivered, the pool of "
                                         "released ones, the hash map.",
                                         NULL);
    o->inflight_packs = tp_metrics_gauge(m, TP_M_INGEST_INFLIGHT_PACKS,
                                         "Packs produced and not yet acknowledged by Kafka.", NULL);
    o->gateways = tp_metrics_gauge(m, TP_M_INGEST_GATEWAYS, "Connected gateway sessions.", NULL);
    return tp_metrics_status(m, NULL);
}

tp_err tp_sink_metrics_register(tp_metrics *m, const char *warehouse, tp_sink_metrics *o)
{
    if (!m || !o || !warehouse)
        return TP_ERR_INVALID_ARG;
    memset(o, 0, sizeof *o);
    char wh[160];
    tp_err e = tp_metrics_labels(wh, sizeof wh, "warehouse", warehouse, NULL);
    if (e)
        return e;
    register_process(m, "sink");
    o->packs = tp_metrics_counter(m, TP_M_SINK_PACKS, "Packs consumed from Kafka.", NULL);
    o->records = tp_metrics_counter(m, TP_M_SINK_RECORDS, "Records decoded from packs.", NULL);
    o->rows_loaded = tp_metrics_counter(m, TP_M_SINK_ROWS_LOADED, "Rows the warehouse acknowledged.", wh);
    o->loads = tp_metrics_counter(m, TP_M_SINK_LOADS, "Successful load calls to the warehouse.", wh);
    o->load_latency = tp_metrics_histogram(m, TP_M_SINK_LOAD_LATENCY, "Seconds per successful warehouse load call.",
                                           wh, latency_buckets, N(latency_buckets));
    o->batch_rows = tp_metrics_histogram(m, TP_M_SINK_BATCH_ROWS, "Rows per warehouse load call.", wh,
                                         batch_rows_buckets, N(batch_rows_buckets));
    o->load_errors = tp_metrics_counter(m, TP_M_SINK_LOAD_ERRORS, "Failed warehouse load calls.", wh);
    o->retries = tp_metrics_counter(m, TP_M_SINK_RETRIES, "Warehouse load calls retried after a failure.", wh);
    o->warehouse_up = tp_metrics_gauge(m, TP_M_SINK_WAREHOUSE_UP,
                                       "1 while the last warehouse call succeeded, 0 after a failure.", wh);
    o->dlq = tp_metrics_counter(m, TP_M_SINK_DLQ, "Packs sent to the dead-letter topic.", NULL);
    o->decode_errors = tp_metrics_counter(m, TP_M_SINK_DECODE_ERRORS, "Packs that failed to decode.", NULL);
    static const char *const help_reason = "Packs sent to the dead-letter topic, by reason.";
    o->dlq_decode = tp_metrics_counter(m, TP_M_SINK_DLQ_REASON, help_reason, "reason=\"decode\"");
    o->dlq_memory = tp_metrics_counter(m, TP_M_SINK_DLQ_REASON, help_reason, "reason=\"memory\"");
    o->dlq_event_time = tp_metrics_counter(m, TP_M_SINK_DLQ_REASON, help_reason, "reason=\"event_time\"");
    o->dlq_rejected = tp_metrics_counter(m, TP_M_SINK_DLQ_REASON, help_reason, "reason=\"rejected\"");
    o->dlq_dict = tp_metrics_counter(m, TP_M_SINK_DLQ_REASON, help_reason, "reason=\"dict\"");
    o->rows_rejected = tp_metrics_counter(m, TP_M_SINK_ROWS_REJECTED,
                                          "Rows the warehouse refused as invalid (their packs went to the DLQ).", wh);
    o->load_splits = tp_metrics_counter(m, TP_M_SINK_LOAD_SPLITS,
                                        "Loads split in two because the warehouse refused a batch as a whole.", wh);
    o->pending_rows = tp_metrics_gauge(m, TP_M_SINK_PENDING_ROWS, "Rows decoded and not yet loaded.", NULL);
    o->assigned_partitions = tp_metrics_gauge(m, TP_M_SINK_ASSIGNED_PARTITIONS,
                                              "Kafka partitions assigned to this sink.", NULL);
    o->rebalances = tp_metrics_counter(m, TP_M_SINK_REBALANCES, "Consumer group rebalances seen.", NULL);
    o->event_time_lag = tp_metrics_histogram(m, TP_M_SINK_EVENT_TIME_LAG,
                                             "Seconds between a record's sampled_at and its load into the warehouse.",
                                             NULL, event_lag_buckets, N(event_lag_buckets));
    return tp_metrics_status(m, NULL);
}
