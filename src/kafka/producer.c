/* Kafka producer glue: configuration, zero-copy produce with pack headers, a poll thread for delivery reports,
 * and librdkafka's fatal-error state (docs/E2E.md: the idempotent producer of librdkafka 2.0.2 after a broker
 * restart). */
#include "kafka/producer.h"

#include "kafka/kafka_conf.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "kafka/pack_headers.h"

struct tp_producer {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    tp_producer_dr_fn dr;
    int compact_headers;
    int hash;                     /* 0 crc32 (consistent), 1 murmur2, 2 fnv1a: see tp_producer_vehicle_partition */
    void (*on_fatal)(void *ctx);
    void (*on_stats)(void *ctx, const char *json, size_t len);
    void *ctx;
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    atomic_int fatal;
    pthread_mutex_t mu;
    char fatal_msg[512];
};

static int retriable_err(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
        return 1;
    default:
        return 0;
    }
}

static const char *status_name(rd_kafka_msg_status_t s)
{
    switch (s) {
    case RD_KAFKA_MSG_STATUS_NOT_PERSISTED:
        return "not persisted";
    case RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED:
        return "possibly persisted (a resend may duplicate it; the dedup key absorbs that)";
    case RD_KAFKA_MSG_STATUS_PERSISTED:
        return "persisted";
    }
    return "unknown";
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    tp_producer *p = opaque;
    if (!m->err) {
        p->dr(p->ctx, m->_private, TP_OK, 0, NULL);
        return;
    }
    char detail[384];
    snprintf(detail, sizeof detail, "delivery of a %zu-byte pack to %s [%" PRId32 "] failed: %s (message %s)",
             m->len, m->rkt ? rd_kafka_topic_name(m->rkt) : "?", m->partition, rd_kafka_err2str(m->err),
             status_name(rd_kafka_message_status(m)));
    p->dr(p->ctx, m->_private, TP_ERR_KAFKA, retriable_err(m->err) && !tp_producer_fatal(p, NULL, 0), detail);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    tp_producer *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[256];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
        pthread_mutex_lock(&p->mu);
        snprintf(p->fatal_msg, sizeof p->fatal_msg, "librdkafka raised a fatal error: %s (%s)", buf,
                 rd_kafka_err2name(orig));
        pthread_mutex_unlock(&p->mu);
        atomic_store(&p->fatal, 1);
        tp_log(TP_LOG_ERROR, "kafka", "fatal error: %s (%s)", buf, rd_kafka_err2name(orig));
        if (p->on_fatal)
            p->on_fatal(p->ctx);
        return;
    }
    if (tp_kafka_err_is_config(err)) {
        /* Not let in (credentials, TLS, ACLs): retrying with the same settings cannot deliver anything. */
        pthread_mutex_lock(&p->mu);
        snprintf(p->fatal_msg, sizeof p->fatal_msg,
                 "Kafka did not let the producer in: %s (%s); check security.protocol and the sasl.* and ssl.* "
                 "settings", reason, rd_kafka_err2name((rd_kafka_resp_err_t)err));
        pthread_mutex_unlock(&p->mu);
        atomic_store(&p->fatal, 1);
        tp_log(TP_LOG_ERROR, "kafka", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
        if (p->on_fatal)
            p->on_fatal(p->ctx);
        return;
    }
    tp_log(TP_LOG_WARN, "kafka", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static int on_stats_json(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    tp_producer *p = opaque;
    p->on_stats(p->ctx, json, len);
    return 0; /* librdkafka frees json */
}

static void *poll_thread(void *arg)
{
    tp_producer *p = arg;
    while (!atomic_load(&p->stop))
        rd_kafka_poll(p->rk, 100);
    return NULL;
}

static tp_err conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errbuf, size_t errlen)
{
    return tp_kafka_conf_set(conf, k, v, errbuf, errlen);
}

tp_err tp_producer_new(const tp_producer_opts *opts, tp_producer_dr_fn dr, void *ctx, tp_producer **out,
                       char *errbuf, size_t errlen)
{
    if (!opts || !dr || !out || !opts->topic || !opts->topic[0]) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "no Kafka topic given: tp_producer_opts.topic is empty");
        return TP_ERR_INVALID_ARG;
    }
    *out = NULL;
    tp_producer *p = calloc(1, sizeof *p);
    if (!p)
        return TP_ERR_NOMEM;
    p->dr = dr;
    p->compact_headers = opts->compact_headers;
    p->on_fatal = opts->on_fatal;
    p->on_stats = opts->on_stats;
    p->ctx = ctx;
    pthread_mutex_init(&p->mu, NULL);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    tp_err e = TP_OK;
    if (opts->brokers)
        e = conf_set(conf, "bootstrap.servers", opts->brokers, errbuf, errlen);
    if (!e)
        e = conf_set(conf, "enable.idempotence", "true", errbuf, errlen);
    if (!e)
        e = conf_set(conf, "acks", "all", errbuf, errlen);
    if (!e)
        e = conf_set(conf, "compression.codec", "none", errbuf, errlen);
    if (!e && opts->on_stats) {
        char iv[16];
        snprintf(iv, sizeof iv, "%d", opts->stats_interval_ms > 0 ? opts->stats_interval_ms : 5000);
        e = conf_set(conf, "statistics.interval.ms", iv, errbuf, errlen);
    }
    if (!e)
        e = tp_kafka_conf_apply(conf, opts->kafka_conf, opts->nkafka_conf, errbuf, errlen);
    if (!e) { /* the partitioner a one-vehicle pack's key goes through, for tp_producer_vehicle_partition */
        char part[64] = "";
        size_t plen = sizeof part;
        if (rd_kafka_conf_get(conf, "partitioner", part, &plen) == RD_KAFKA_CONF_OK)
            p->hash = !strncmp(part, "murmur2", 7) ? 1 : !strncmp(part, "fnv1a", 5) ? 2 : 0;
    }
    if (e) {
        rd_kafka_conf_destroy(conf);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return e;
    }
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_error_cb(conf, on_error);
    tp_kafka_conf_log(conf); /* librdkafka errors as ERROR, warnings as WARN, notices as INFO */
    if (opts->on_stats)
        rd_kafka_conf_set_stats_cb(conf, on_stats_json);
    char err[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "cannot create the Kafka producer: %s", err);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return TP_ERR_KAFKA;
    }
    p->rkt = rd_kafka_topic_new(p->rk, opts->topic, NULL);
    if (!p->rkt || pthread_create(&p->thread, NULL, poll_thread, p) != 0) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "cannot set up topic '%s': %s", opts->topic,
                     rd_kafka_err2str(rd_kafka_last_error()));
        tp_producer_free(p);
        return TP_ERR_KAFKA;
    }
    p->thread_started = 1;
    *out = p;
    return TP_OK;
}

tp_err tp_producer_send(tp_producer *p, uint64_t vehicle_id, int32_t partition, uint8_t *pack, size_t len,
                        const tp_pack_meta *meta, void *opaque, char *errbuf, size_t errlen)
{
    char key[24];
    int kl = snprintf(key, sizeof key, "%" PRIu64, vehicle_id);
    for (;;) {
        if (tp_producer_fatal(p, errbuf, errlen))
            return TP_ERR_KAFKA;
        rd_kafka_headers_t *h = rd_kafka_headers_new(8);
        tp_err he = TP_OK;
        if (meta && (!p->compact_headers || tp_pack_meta_to_compact_header(meta, h) != TP_OK))
            he = tp_pack_meta_to_headers(meta, h);
        if (he) {
            rd_kafka_headers_destroy(h);
            if (errbuf && errlen)
                snprintf(errbuf, errlen, "cannot build the pack headers: %s", tp_strerror(he));
            return he;
        }
        rd_kafka_resp_err_t err =
            partition >= 0
                ? rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(p->rkt), RD_KAFKA_V_PARTITION(partition),
                                    RD_KAFKA_V_VALUE(pack, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                    RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END)
                : rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(p->rkt), RD_KAFKA_V_KEY(key, (size_t)kl),
                                    RD_KAFKA_V_VALUE(pack, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                    RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (!err)
            return TP_OK;
        rd_kafka_headers_destroy(h);
        if (err == RD_KAFKA_RESP_ERR__FATAL && tp_producer_fatal(p, errbuf, errlen))
            return TP_ERR_KAFKA;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (errbuf && errlen) {
                if (partition >= 0)
                    snprintf(errbuf, errlen, "librdkafka refused a %zu-byte pack for partition %" PRId32 ": %s",
                             len, partition, rd_kafka_err2str(err));
                else
                    snprintf(errbuf, errlen, "librdkafka refused a %zu-byte pack for vehicle %" PRIu64 ": %s",
                             len, vehicle_id, rd_kafka_err2str(err));
            }
            return TP_ERR_KAFKA;
        }
        struct timespec ts = {0, 2 * 1000 * 1000}; /* queue full: the poll thread drains it */
        nanosleep(&ts, NULL);
    }
}

tp_err tp_producer_send_keyed(tp_producer *p, const char *key, size_t key_len, uint8_t *pack, size_t len,
                              rd_kafka_headers_t *hdrs, void *opaque, char *errbuf, size_t errlen)
{
    return tp_producer_send_keyed_to(p, key, key_len, RD_KAFKA_PARTITION_UA, pack, len, hdrs, opaque, errbuf, errlen);
}

tp_err tp_producer_send_keyed_to(tp_producer *p, const char *key, size_t key_len, int32_t partition, uint8_t *pack,
                                 size_t len, rd_kafka_headers_t *hdrs, void *opaque, char *errbuf, size_t errlen)
{
    for (;;) {
        if (tp_producer_fatal(p, errbuf, errlen))
            return TP_ERR_KAFKA;
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_RKT(p->rkt), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE(pack, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque),
            RD_KAFKA_V_END);
        if (!err)
            return TP_OK;
        if (err == RD_KAFKA_RESP_ERR__FATAL && tp_producer_fatal(p, errbuf, errlen))
            return TP_ERR_KAFKA;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (errbuf && errlen)
                snprintf(errbuf, errlen, "librdkafka refused a %zu-byte pack for key %.*s (partition %d): %s", len,
                         (int)key_len, key ? key : "", (int)partition, rd_kafka_err2str(err));
            return TP_ERR_KAFKA;
        }
        struct timespec ts = {0, 2 * 1000 * 1000}; /* queue full: the poll thread drains it */
        nanosleep(&ts, NULL);
    }
}

tp_err tp_producer_partition_count(tp_producer *p, int timeout_ms, int32_t *count, char *errbuf, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, p->rkt, &md, timeout_ms);
    if (err) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "cannot read the partition count of topic '%s' from the cluster within %d ms: "
                     "%s", rd_kafka_topic_name(p->rkt), timeout_ms, rd_kafka_err2str(err));
        return TP_ERR_KAFKA;
    }
    int32_t n = 0;
    rd_kafka_resp_err_t terr = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (md->topic_cnt == 1) {
        n = md->topics[0].partition_cnt;
        terr = md->topics[0].err;
    }
    rd_kafka_metadata_destroy(md);
    if (terr || n <= 0) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "topic '%s' has no partitions the cluster knows of (%s); create it first "
                     "(e.g. tools/kafka create-topic NAME PARTITIONS), or use --pack-by vehicle",
                     rd_kafka_topic_name(p->rkt), rd_kafka_err2str(terr));
        return TP_ERR_KAFKA;
    }
    *count = n;
    return TP_OK;
}

int32_t tp_producer_vehicle_partition(const tp_producer *p, uint64_t vehicle_id, int32_t partition_count)
{
    char key[24];
    size_t kl = 0;
    do { /* the decimal key, as tp_producer_send writes it, without snprintf's cost per record */
        key[sizeof key - 1 - kl++] = (char)('0' + vehicle_id % 10);
        vehicle_id /= 10;
    } while (vehicle_id);
    return tp_producer_key_partition(p, key + sizeof key - kl, kl, partition_count);
}

int32_t tp_producer_key_partition(const tp_producer *p, const char *k, size_t kl, int32_t partition_count)
{
    switch (p->hash) {
    case 1: return rd_kafka_msg_partitioner_murmur2(NULL, k, kl, partition_count, NULL, NULL);
    case 2: return rd_kafka_msg_partitioner_fnv1a(NULL, k, kl, partition_count, NULL, NULL);
    default: return rd_kafka_msg_partitioner_consistent(NULL, k, kl, partition_count, NULL, NULL);
    }
}

int tp_producer_fatal(tp_producer *p, char *buf, size_t len)
{
    /* Ask librdkafka itself: a produce call can see the fatal state before the error callback was served. */
    char reason[256];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(p->rk, reason, sizeof reason);
    if (!orig && !atomic_load(&p->fatal))
        return 0;
    if (buf && len) {
        if (orig) {
            snprintf(buf, len, "librdkafka raised a fatal error: %s (%s)", reason, rd_kafka_err2name(orig));
        } else {
            pthread_mutex_lock(&p->mu);
            snprintf(buf, len, "%s", p->fatal_msg);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return 1;
}

int tp_producer_in_flight(tp_producer *p)
{
    return rd_kafka_outq_len(p->rk);
}

tp_err tp_producer_flush(tp_producer *p, int timeout_ms)
{
    return rd_kafka_flush(p->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR ? TP_OK : TP_ERR_AGAIN;
}

void tp_producer_purge(tp_producer *p)
{
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
}

void tp_producer_free(tp_producer *p)
{
    if (!p)
        return;
    if (p->thread_started) {
        atomic_store(&p->stop, 1);
        pthread_join(p->thread, NULL);
    }
    if (p->rk) {
        if (rd_kafka_outq_len(p->rk) > 0) {
            rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            for (int i = 0; i < 100 && rd_kafka_outq_len(p->rk) > 0; i++)
                rd_kafka_poll(p->rk, 50);
        }
        if (p->rkt)
            rd_kafka_topic_destroy(p->rkt);
        rd_kafka_destroy(p->rk);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

rd_kafka_t *tp_producer_handle(tp_producer *p)
{
    return p->rk;
}
