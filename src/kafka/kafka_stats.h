/* librdkafka's statistics JSON (statistics.interval.ms + stats_cb) parsed with jansson into the few numbers we
 * export, and an exporter that turns each snapshot into gauges of a tp_metrics registry (docs/OPERATIONS.md). */
#ifndef TELEPACK_KAFKA_STATS_H
#define TELEPACK_KAFKA_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "ops/metrics.h"
#include "telepack/error.h"

/* Bounds on what a snapshot may hold (the JSON comes from librdkafka, but we bound it anyway). */
#define TP_KAFKA_STATS_MAX_JSON (64u * 1024u * 1024u)
#define TP_KAFKA_STATS_MAX_BROKERS 1024
#define TP_KAFKA_STATS_MAX_PARTITIONS 65536

/* Offsets and lags librdkafka does not know are negative (-1, -1001): TP_KAFKA_STATS_UNKNOWN marks them here. */
#define TP_KAFKA_STATS_UNKNOWN INT64_MIN

typedef struct tp_kafka_broker_stats {
    char name[128];          /* "host:port/nodeid" */
    int32_t nodeid;          /* -1 for bootstrap and internal brokers */
    int up;                  /* state == "UP" */
    int64_t rtt_avg_us;      /* round-trip time, rolling window, microseconds */
    int64_t rtt_p99_us;
    int64_t rtt_cnt;         /* samples in the window (0: the rtt fields mean nothing) */
    int64_t outbuf_cnt;      /* requests waiting to be sent */
    int64_t waitresp_cnt;    /* requests in flight */
    int64_t connects, disconnects;
} tp_kafka_broker_stats;

typedef struct tp_kafka_partition_stats {
    char topic[256];
    int32_t partition;       /* never -1: the internal UA partition is skipped */
    int64_t hi_offset;       /* high watermark, or TP_KAFKA_STATS_UNKNOWN */
    int64_t lo_offset;
    int64_t committed_offset;
    int64_t consumer_lag;        /* hi - max(app, committed); TP_KAFKA_STATS_UNKNOWN when librdkafka says -1 */
    int64_t consumer_lag_stored; /* hi - stored offset: what is not yet loaded (we store after the load) */
    int64_t msgq_cnt;        /* producer: messages queued for this partition (first-level + transmit queue) */
    int64_t msgq_bytes;
    int64_t txmsgs, rxmsgs;
} tp_kafka_partition_stats;

typedef struct tp_kafka_stats {
    char name[128];          /* handle name, "rdkafka#producer-1" */
    char type[16];           /* "producer" or "consumer" */
    int64_t time;            /* wall clock, seconds since the epoch */
    int64_t replyq;          /* ops waiting for the application to poll */
    int64_t msg_cnt, msg_size; /* producer queue: messages and bytes */
    int64_t msg_max, msg_size_max;
    int64_t txmsgs, txmsg_bytes, rxmsgs, rxmsg_bytes;
    int64_t tx, rx;          /* requests sent, responses received */
    int has_cgrp;            /* the fields below are valid */
    char cgrp_state[32];
    int64_t rebalance_cnt;
    int64_t assignment_size;
    tp_kafka_broker_stats *brokers; /* owned; brokers[0..n_brokers) */
    size_t n_brokers;
    tp_kafka_partition_stats *partitions; /* owned */
    size_t n_partitions;
} tp_kafka_stats;

/* Parses one statistics JSON document into *out (which must be zeroed or previously cleared; the arrays are
 * allocated). TP_ERR_PARSE when it is not JSON or not an object with a "type"; TP_ERR_FULL above the bounds
 * above; TP_ERR_NOMEM. On error *out holds nothing that needs clearing. */
tp_err tp_kafka_stats_parse(const char *json, size_t len, tp_kafka_stats *out);

/* Frees the arrays and zeroes *s. */
void tp_kafka_stats_clear(tp_kafka_stats *s);

/* The exporter keeps the gauges of each client role ("producer", "consumer") in a registry up to date: call
 * tp_kafka_stats_exporter_update from the stats_cb of every rd_kafka_t of the process. Series of brokers or
 * partitions that vanish from a role's snapshot (revoked partitions) are hidden. Thread-safe (one mutex). */
typedef struct tp_kafka_stats_exporter tp_kafka_stats_exporter;

/* m is not owned and must outlive the exporter. */
tp_err tp_kafka_stats_exporter_new(tp_metrics *m, tp_kafka_stats_exporter **out);
void tp_kafka_stats_exporter_free(tp_kafka_stats_exporter *e);

/* Parses json and updates the registry. Errors as tp_kafka_stats_parse (the registry is then untouched), or
 * the registry's registration error. */
tp_err tp_kafka_stats_exporter_update(tp_kafka_stats_exporter *e, const char *json, size_t len);

/* Exports an already-parsed snapshot. */
tp_err tp_kafka_stats_exporter_apply(tp_kafka_stats_exporter *e, const tp_kafka_stats *s);

#endif
