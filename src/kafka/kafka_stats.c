/* Parsing librdkafka's statistics JSON (field names as in librdkafka's STATISTICS.md, checked against what 2.0.2
 * emits) and exporting it as telepack_kafka_* / telepack_sink_consumer_lag* gauges. */
#include "kafka/kafka_stats.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/worker_metrics.h"

/* ---- parsing ---- */

static int64_t get_int(const json_t *obj, const char *key, int64_t dflt)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    return dflt;
}

/* librdkafka marks unknown offsets and lags with negative values (-1, -1001). */
static int64_t get_known(const json_t *obj, const char *key)
{
    int64_t v = get_int(obj, key, -1);
    return v < 0 ? TP_KAFKA_STATS_UNKNOWN : v;
}

static void get_str(const json_t *obj, const char *key, char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(obj, key));
    snprintf(out, cap, "%s", s ? s : "");
}

void tp_kafka_stats_clear(tp_kafka_stats *s)
{
    if (!s)
        return;
    free(s->brokers);
    free(s->partitions);
    memset(s, 0, sizeof *s);
}

static tp_err parse_brokers(const json_t *brokers, tp_kafka_stats *out)
{
    if (!json_is_object(brokers))
        return TP_OK;
    size_t n = json_object_size(brokers);
    if (n > TP_KAFKA_STATS_MAX_BROKERS)
        return TP_ERR_FULL;
    if (!n)
        return TP_OK;
    out->brokers = calloc(n, sizeof *out->brokers);
    if (!out->brokers)
        return TP_ERR_NOMEM;
    const char *key;
    json_t *b;
    json_object_foreach((json_t *)brokers, key, b)
    {
        if (!json_is_object(b))
            continue;
        char source[32];
        get_str(b, "source", source, sizeof source);
        int64_t nodeid = get_int(b, "nodeid", -1);
        /* Bootstrap and internal brokers have no node id; "logical" ones (GroupCoordinator) repeat a real one. */
        if (nodeid < 0 || !strcmp(source, "logical") || !strcmp(source, "internal"))
            continue;
        tp_kafka_broker_stats *bs = &out->brokers[out->n_brokers++];
        get_str(b, "name", bs->name, sizeof bs->name);
        if (!bs->name[0])
            snprintf(bs->name, sizeof bs->name, "%s", key);
        bs->nodeid = (int32_t)nodeid;
        char state[32];
        get_str(b, "state", state, sizeof state);
        bs->up = !strcmp(state, "UP");
        const json_t *rtt = json_object_get(b, "rtt");
        bs->rtt_avg_us = get_int(rtt, "avg", 0);
        bs->rtt_p99_us = get_int(rtt, "p99", 0);
        bs->rtt_cnt = get_int(rtt, "cnt", 0);
        bs->outbuf_cnt = get_int(b, "outbuf_cnt", 0);
        bs->waitresp_cnt = get_int(b, "waitresp_cnt", 0);
        bs->connects = get_int(b, "connects", 0);
        bs->disconnects = get_int(b, "disconnects", 0);
    }
    return TP_OK;
}

static tp_err parse_topics(const json_t *topics, tp_kafka_stats *out)
{
    if (!json_is_object(topics))
        return TP_OK;
    size_t n = 0;
    const char *tkey;
    json_t *t;
    json_object_foreach((json_t *)topics, tkey, t)
    {
        n += json_object_size(json_object_get(t, "partitions"));
        if (n > TP_KAFKA_STATS_MAX_PARTITIONS)
            return TP_ERR_FULL;
    }
    if (!n)
        return TP_OK;
    out->partitions = calloc(n, sizeof *out->partitions);
    if (!out->partitions)
        return TP_ERR_NOMEM;
    json_object_foreach((json_t *)topics, tkey, t)
    {
        const json_t *parts = json_object_get(t, "partitions");
        if (!json_is_object(parts))
            continue;
        const char *pkey;
        json_t *p;
        json_object_foreach((json_t *)parts, pkey, p)
        {
            int64_t id = get_int(p, "partition", -1);
            if (!json_is_object(p) || id < 0 || id > INT32_MAX) /* -1: the internal UnAssigned partition */
                continue;
            tp_kafka_partition_stats *ps = &out->partitions[out->n_partitions++];
            char topic[256];
            get_str(t, "topic", topic, sizeof topic);
            snprintf(ps->topic, sizeof ps->topic, "%s", topic[0] ? topic : tkey);
            ps->partition = (int32_t)id;
            ps->hi_offset = get_known(p, "hi_offset");
            ps->lo_offset = get_known(p, "lo_offset");
            ps->committed_offset = get_known(p, "committed_offset");
            ps->consumer_lag = get_known(p, "consumer_lag");
            ps->consumer_lag_stored = get_known(p, "consumer_lag_stored");
            ps->msgq_cnt = get_int(p, "msgq_cnt", 0) + get_int(p, "xmit_msgq_cnt", 0);
            ps->msgq_bytes = get_int(p, "msgq_bytes", 0) + get_int(p, "xmit_msgq_bytes", 0);
            ps->txmsgs = get_int(p, "txmsgs", 0);
            ps->rxmsgs = get_int(p, "rxmsgs", 0);
        }
    }
    return TP_OK;
}

tp_err tp_kafka_stats_parse(const char *json, size_t len, tp_kafka_stats *out)
{
    if (!json || !out)
        return TP_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    if (len > TP_KAFKA_STATS_MAX_JSON)
        return TP_ERR_FULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root)
        return TP_ERR_PARSE;
    tp_err e = TP_OK;
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!json_is_object(root) || !type) {
        e = TP_ERR_PARSE;
        goto out;
    }
    snprintf(out->type, sizeof out->type, "%s", type);
    get_str(root, "name", out->name, sizeof out->name);
    out->time = get_int(root, "time", 0);
    out->replyq = get_int(root, "replyq", 0);
    out->msg_cnt = get_int(root, "msg_cnt", 0);
    out->msg_size = get_int(root, "msg_size", 0);
    out->msg_max = get_int(root, "msg_max", 0);
    out->msg_size_max = get_int(root, "msg_size_max", 0);
    out->txmsgs = get_int(root, "txmsgs", 0);
    out->txmsg_bytes = get_int(root, "txmsg_bytes", 0);
    out->rxmsgs = get_int(root, "rxmsgs", 0);
    out->rxmsg_bytes = get_int(root, "rxmsg_bytes", 0);
    out->tx = get_int(root, "tx", 0);
    out->rx = get_int(root, "rx", 0);
    const json_t *cgrp = json_object_get(root, "cgrp");
    if (json_is_object(cgrp)) {
        out->has_cgrp = 1;
        get_str(cgrp, "state", out->cgrp_state, sizeof out->cgrp_state);
        out->rebalance_cnt = get_int(cgrp, "rebalance_cnt", 0);
        out->assignment_size = get_int(cgrp, "assignment_size", 0);
    }
    if ((e = parse_brokers(json_object_get(root, "brokers"), out)))
        goto out;
    e = parse_topics(json_object_get(root, "topics"), out);
out:
    json_decref(root);
    if (e)
        tp_kafka_stats_clear(out);
    return e;
}

/* ---- export ---- */

#define ROLES 3 /* producer, consumer, anything else */

typedef struct tracked {
    tp_gauge *g;
    int role;
    uint64_t gen; /* the role's generation that last set it */
} tracked;

struct tp_kafka_stats_exporter {
    tp_metrics *m;
    pthread_mutex_t lock;
    uint64_t gen[ROLES];
    tracked *t;
    size_t n, cap;
};

tp_err tp_kafka_stats_exporter_new(tp_metrics *m, tp_kafka_stats_exporter **out)
{
    if (!m || !out)
        return TP_ERR_INVALID_ARG;
    tp_kafka_stats_exporter *e = calloc(1, sizeof *e);
    if (!e)
        return TP_ERR_NOMEM;
    e->m = m;
    pthread_mutex_init(&e->lock, NULL);
    *out = e;
    return TP_OK;
}

void tp_kafka_stats_exporter_free(tp_kafka_stats_exporter *e)
{
    if (!e)
        return;
    pthread_mutex_destroy(&e->lock);
    free(e->t);
    free(e);
}

/* Sets a per-broker or per-partition gauge and remembers it for this role's generation. */
static tp_err set_tracked(tp_kafka_stats_exporter *e, int role, const char *name, const char *help,
                          const char *labels, double v)
{
    tp_gauge *g = tp_metrics_gauge(e->m, name, help, labels);
    if (!g)
        return tp_metrics_status(e->m, NULL);
    tp_gauge_set(g, v);
    for (size_t i = 0; i < e->n; i++)
        if (e->t[i].g == g) {
            e->t[i].role = role;
            e->t[i].gen = e->gen[role];
            return TP_OK;
        }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        tracked *nt = realloc(e->t, cap * sizeof *nt);
        if (!nt)
            return TP_ERR_NOMEM;
        e->t = nt;
        e->cap = cap;
    }
    e->t[e->n++] = (tracked){g, role, e->gen[role]};
    return TP_OK;
}

static tp_err set_plain(tp_kafka_stats_exporter *e, const char *name, const char *help, const char *labels,
                        double v)
{
    tp_gauge *g = tp_metrics_gauge(e->m, name, help, labels);
    if (!g)
        return tp_metrics_status(e->m, NULL);
    tp_gauge_set(g, v);
    return TP_OK;
}

static tp_err set_total(tp_kafka_stats_exporter *e, const char *name, const char *help, const char *labels,
                        int64_t v)
{
    tp_counter *c = tp_metrics_counter(e->m, name, help, labels);
    if (!c)
        return tp_metrics_status(e->m, NULL);
    tp_counter_set(c, v > 0 ? (uint64_t)v : 0);
    return TP_OK;
}

static tp_err apply_locked(tp_kafka_stats_exporter *e, const tp_kafka_stats *s)
{
    int role = !strcmp(s->type, "producer") ? 0 : !strcmp(s->type, "consumer") ? 1 : 2;
    bool consumer = role == 1;
    e->gen[role]++;
    char rl[128], l[512], pbuf[16], nbuf[16];
    tp_err err;
#define TRY(x)                                                                                                   \
    do {                                                                                                         \
        if ((err = (x)))                                                                                         \
            return err;                                                                                          \
    } while (0)
    TRY(tp_metrics_labels(rl, sizeof rl, "role", s->type, NULL));
    tp_counter *updates = tp_metrics_counter(e->m, "telepack_kafka_stats_updates_total",
                                             "Statistics snapshots received from librdkafka.", rl);
    if (!updates)
        return tp_metrics_status(e->m, NULL);
    tp_counter_inc(updates);
    TRY(set_plain(e, "telepack_kafka_replyq", "librdkafka ops waiting for the application to poll.", rl,
                  (double)s->replyq));
    TRY(set_total(e, "telepack_kafka_requests_total", "Requests sent to Kafka brokers.", rl, s->tx));
    if (!consumer) {
        TRY(set_plain(e, "telepack_kafka_queue_messages", "Messages in the producer's queues (msg_cnt).", rl,
                      (double)s->msg_cnt));
        TRY(set_plain(e, "telepack_kafka_queue_bytes", "Bytes of messages in the producer's queues (msg_size).", rl,
                      (double)s->msg_size));
        TRY(set_plain(e, "telepack_kafka_queue_max_messages", "Producer queue limit in messages (msg_max).", rl,
                      (double)s->msg_max));
        TRY(set_total(e, "telepack_kafka_tx_messages_total", "Messages transmitted to Kafka brokers (txmsgs).", rl,
                      s->txmsgs));
        TRY(set_total(e, "telepack_kafka_tx_bytes_total", "Message bytes transmitted, framing included.", rl,
                      s->txmsg_bytes));
    } else {
        TRY(set_total(e, "telepack_kafka_rx_messages_total", "Messages consumed from Kafka brokers (rxmsgs).", rl,
                      s->rxmsgs));
        TRY(set_total(e, "telepack_kafka_rx_bytes_total", "Message bytes consumed, framing included.", rl,
                      s->rxmsg_bytes));
    }
    if (s->has_cgrp) {
        TRY(set_total(e, "telepack_kafka_cgrp_rebalances_total", "Consumer group rebalances (assign or revoke).",
                      rl, s->rebalance_cnt));
        TRY(set_plain(e, "telepack_kafka_cgrp_assignment_size", "Partitions assigned to this consumer.", rl,
                      (double)s->assignment_size));
        TRY(set_plain(e, "telepack_kafka_cgrp_up", "1 while the consumer group handler's state is \"up\".", rl,
                      !strcmp(s->cgrp_state, "up") ? 1.0 : 0.0));
    }
    for (size_t i = 0; i < s->n_brokers; i++) {
        const tp_kafka_broker_stats *b = &s->brokers[i];
        snprintf(nbuf, sizeof nbuf, "%d", (int)b->nodeid);
        TRY(tp_metrics_labels(l, sizeof l, "role", s->type, "broker", nbuf, NULL));
        TRY(set_tracked(e, role, "telepack_kafka_broker_up", "1 while the connection to the broker is UP.", l,
                        b->up ? 1.0 : 0.0));
        if (b->rtt_cnt > 0) {
            TRY(set_tracked(e, role, "telepack_kafka_broker_rtt_avg_seconds",
                            "Broker round-trip time, average over librdkafka's window.", l,
                            (double)b->rtt_avg_us / 1e6));
            TRY(set_tracked(e, role, "telepack_kafka_broker_rtt_p99_seconds",
                            "Broker round-trip time, 99th percentile over librdkafka's window.", l,
                            (double)b->rtt_p99_us / 1e6));
        }
        TRY(set_tracked(e, role, "telepack_kafka_broker_inflight_requests",
                        "Requests sent to the broker and awaiting a response.", l, (double)b->waitresp_cnt));
    }
    for (size_t i = 0; i < s->n_partitions; i++) {
        const tp_kafka_partition_stats *p = &s->partitions[i];
        snprintf(pbuf, sizeof pbuf, "%d", (int)p->partition);
        TRY(tp_metrics_labels(l, sizeof l, "role", s->type, "topic", p->topic, "partition", pbuf, NULL));
        if (p->hi_offset != TP_KAFKA_STATS_UNKNOWN)
            TRY(set_tracked(e, role, "telepack_kafka_partition_hi_offset", "Partition high watermark offset.", l,
                            (double)p->hi_offset));
        if (p->lo_offset != TP_KAFKA_STATS_UNKNOWN)
            TRY(set_tracked(e, role, "telepack_kafka_partition_lo_offset", "Partition low watermark offset.", l,
                            (double)p->lo_offset));
        if (!consumer) {
            TRY(set_tracked(e, role, "telepack_kafka_partition_queue_messages",
                            "Producer: messages queued for the partition (msgq_cnt + xmit_msgq_cnt).", l,
                            (double)p->msgq_cnt));
            continue;
        }
        if (p->committed_offset != TP_KAFKA_STATS_UNKNOWN)
            TRY(set_tracked(e, role, "telepack_kafka_partition_committed_offset",
                            "Consumer: last committed offset of the partition.", l, (double)p->committed_offset));
        TRY(tp_metrics_labels(l, sizeof l, "topic", p->topic, "partition", pbuf, NULL));
        if (p->consumer_lag != TP_KAFKA_STATS_UNKNOWN)
            TRY(set_tracked(e, role, TP_M_SINK_CONSUMER_LAG,
                            "Messages between the high watermark and the consumer's position.", l,
                            (double)p->consumer_lag));
        if (p->consumer_lag_stored != TP_KAFKA_STATS_UNKNOWN)
            TRY(set_tracked(e, role, TP_M_SINK_CONSUMER_LAG "_stored",
                            "Messages between the high watermark and the stored offset (not yet loaded).", l,
                            (double)p->consumer_lag_stored));
    }
#undef TRY
    /* Hide what this role's snapshot no longer mentions (revoked partitions, lags that became unknown). */
    for (size_t i = 0; i < e->n; i++)
        if (e->t[i].role == role && e->t[i].gen != e->gen[role])
            tp_gauge_unset(e->t[i].g);
    return TP_OK;
}

tp_err tp_kafka_stats_exporter_apply(tp_kafka_stats_exporter *e, const tp_kafka_stats *s)
{
    if (!e || !s)
        return TP_ERR_INVALID_ARG;
    pthread_mutex_lock(&e->lock);
    tp_err err = apply_locked(e, s);
    pthread_mutex_unlock(&e->lock);
    return err;
}

tp_err tp_kafka_stats_exporter_update(tp_kafka_stats_exporter *e, const char *json, size_t len)
{
    if (!e)
        return TP_ERR_INVALID_ARG;
    tp_kafka_stats s;
    tp_err err = tp_kafka_stats_parse(json, len, &s);
    if (err)
        return err;
    err = tp_kafka_stats_exporter_apply(e, &s);
    tp_kafka_stats_clear(&s);
    return err;
}
