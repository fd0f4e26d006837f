/* The ingest worker: the network thread owns the gateway server and the batcher; compression threads turn ready
 * batches into packs and hand them to the producer; delivery reports come back to the network thread through a
 * completion list (mutex + eventfd wake-up), which acks the records and releases the batches. One owner per data
 * structure, queues between threads. */
#include "ingest/ingest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingest/compress_pool.h"
#include "ingest/gateway_server.h"
#include "kafka/kafka_stats.h"
#include "common/log.h"
#include "kafka/producer.h"

enum { RES_OK = 0, RES_RETRY = 1, RES_FAIL = 2 };

/* pack_by partition: the partition of recently seen vehicles, so the decimal key and its hash (librdkafka's
 * partitioner, ~200 instructions, 5 % of a replay's CPU) are computed once per vehicle, not per record.
 * Direct-mapped by vehicle id; an entry is valid for the partition count it was computed with. */
#define PART_MEMO 4096u
typedef struct part_memo {
    uint64_t vehicle_id;
    int32_t partition;
    int32_t partitions; /* 0: empty */
} part_memo;

struct tp_ingest {
    tp_ingest_opts o;
    tp_batcher *batcher;
    tp_gateway_server *srv;
    tp_compress_pool *pool;
    tp_producer *prod;
    atomic_int partitions;    /* the topic's partition count with pack_by partition; 0 until the network thread
                                 read it from the cluster's metadata (records wait meanwhile: backpressure) */
    int64_t partitions_logged; /* when the last "cannot read the partition count" warning was logged */
    part_memo memo[PART_MEMO]; /* network thread */
    pthread_t thread;
    int started;
    int64_t now;

    pthread_mutex_t mu;       /* guards done list, pending fds, failure message */
    tp_batch *done_head, *done_tail;
    int *fds;
    size_t nfds, fds_cap;
    char fail_msg[512];

    atomic_int stop_req;
    atomic_llong stop_deadline; /* monotonic ms; LLONG_MAX = none */
    atomic_int failed;
    atomic_int undelivered;     /* packs given up at shutdown */
    tp_kafka_stats_exporter *kstats; /* with o.kafka_metrics */
    atomic_int brokers_up;      /* brokers UP in the last statistics (raised to 1 by a delivery); -1 = none yet */

    atomic_ullong records_in, bytes_in, packs_out, records_out, pack_bytes_out, records_acked, buffered_bytes,
        buffered_records, in_flight, connections, conn_errors, retries, failures, paused;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tp_ingest_opts_init(tp_ingest_opts *o)
{
    memset(o, 0, sizeof *o);
    tp_batcher_opts_init(&o->batch);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = n > 0 ? (int)n : 1;
    o->level = 3;
    o->codec = TP_CODEC_ZSTD;
    o->layout = TP_LAYOUT_COLUMNS;
    o->coded_columns = 0;
    o->max_record_bytes = TP_DEFAULT_MAX_RECORD_BYTES;
    o->max_connections = 4096;
    o->max_conns_per_ip = 64;
    o->idle_timeout_ms = 60000;
    o->gateway_flush_ms = 20;
    /* 500 ms: on the measured front of a live fleet whose records arrive evenly (docs/BENCHMARKS.md), p99 latency
     * 1264 -> 780 ms for 10.7 -> 11.8 B/record in the broker's log; 250 ms: 546 ms for 14.0 B/record */
    o->batch.linger_ms = 500;
    o->compact_headers = 1;
    tp_ingest_opts_pack_by(o, TP_PACK_BY_PARTITION);
}

void tp_ingest_opts_pack_by(tp_ingest_opts *o, tp_pack_by by)
{
    o->pack_by = by;
    /* Per partition: 10000 records of 250 vehicles keep ~40-record runs per vehicle in a replay (4.2 B/record,
     * fewer than per-vehicle packs of 200), and a pack's column content is at most 260 + 63 x 10000 bytes, so its
     * message stays below Kafka's 1 MB limit whatever the records hold. */
    o->batch.max_records = by == TP_PACK_BY_PARTITION ? 10000 : 200;
    o->batch.max_bytes = by == TP_PACK_BY_PARTITION ? 1024u * 1024u : 256u * 1024u;
}

/* "vehicle 4711" or "partition 3": what a batch's key is, for log lines. */
static const char *batch_name(const tp_ingest *ing, const tp_batch *b, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s %llu", ing->o.pack_by == TP_PACK_BY_PARTITION ? "partition" : "vehicle",
             (unsigned long long)b->vehicle_id);
    return buf;
}

static void set_failed(tp_ingest *ing, const char *msg)
{
    pthread_mutex_lock(&ing->mu);
    if (!ing->fail_msg[0])
        snprintf(ing->fail_msg, sizeof ing->fail_msg, "%s", msg);
    pthread_mutex_unlock(&ing->mu);
    atomic_store(&ing->failed, 1);
}

/* Any thread: a batch finished an attempt; the network thread takes it from here. */
static void push_done(tp_ingest *ing, tp_batch *b, int result)
{
    b->result = result;
    b->next = NULL;
    pthread_mutex_lock(&ing->mu);
    if (ing->done_tail)
        ing->done_tail->next = b;
    else
        ing->done_head = b;
    ing->done_tail = b;
    pthread_mutex_unlock(&ing->mu);
    tp_gateway_server_wake(ing->srv);
}

/* Producer's poll thread. */
static void on_delivery(void *ctx, void *opaque, tp_err err, int retriable, const char *detail)
{
    tp_ingest *ing = ctx;
    tp_batch *b = opaque;
    atomic_fetch_sub(&ing->in_flight, 1);
    const tp_ingest_metrics *m = ing->o.metrics;
    if (m)
        tp_histogram_observe(m->produce_latency, (double)(mono_us() - b->sent_us) / 1e6);
    if (!err) {
        int none = 0, unknown = -1; /* a delivered pack proves a broker connection */
        if (!atomic_compare_exchange_strong(&ing->brokers_up, &none, 1))
            atomic_compare_exchange_strong(&ing->brokers_up, &unknown, 1);
        if (m) {
            tp_counter_inc(m->packs);
            tp_counter_add(m->bytes_out, b->pack_bytes);
            tp_histogram_observe(m->pack_bytes, (double)b->pack_bytes);
            tp_histogram_observe(m->records_per_pack, (double)b->count);
        }
        atomic_fetch_add(&ing->packs_out, 1);
        atomic_fetch_add(&ing->records_out, b->count);
        atomic_fetch_add(&ing->pack_bytes_out, b->pack_bytes);
        push_done(ing, b, RES_OK);
        return;
    }
    if (m)
        tp_counter_inc(m->delivery_errors);
    char name[48];
    if (retriable) {
        tp_log(TP_LOG_WARN, "ingest", "%s; %s, %u records: sending the pack again", detail,
               batch_name(ing, b, name, sizeof name), b->count);
        push_done(ing, b, RES_RETRY);
        return;
    }
    tp_log(TP_LOG_ERROR, "ingest", "%s; %s, %u records not acked", detail, batch_name(ing, b, name, sizeof name),
           b->count);
    push_done(ing, b, RES_FAIL);
}

/* Compression thread: a pack is ready (or failed). */
static void on_packed(void *ctx, tp_batch *b, uint8_t *pack, size_t len, const tp_pack_meta *meta, tp_err err)
{
    tp_ingest *ing = ctx;
    char why[512], name[48];
    if (err) {
        snprintf(why, sizeof why, "compressing a pack of %u records for %s failed: %s", b->count,
                 batch_name(ing, b, name, sizeof name), tp_strerror(err));
        tp_log(TP_LOG_ERROR, "ingest", "%s", why);
        set_failed(ing, why);
        push_done(ing, b, RES_FAIL);
        return;
    }
    b->pack_bytes = len;
    b->attempts++;
    b->sent_us = mono_us();
    atomic_fetch_add(&ing->in_flight, 1);
    int32_t partition = ing->o.pack_by == TP_PACK_BY_PARTITION ? (int32_t)b->vehicle_id : -1;
    tp_err e = tp_producer_send(ing->prod, b->vehicle_id, partition, pack, len, meta, b, why, sizeof why);
    if (e) {
        atomic_fetch_sub(&ing->in_flight, 1);
        free(pack);
        tp_log(TP_LOG_ERROR, "ingest", "%s", why);
        set_failed(ing, why);
        push_done(ing, b, RES_FAIL);
    }
}

/* Producer's poll thread: one librdkafka statistics document -> telepack_kafka_* metrics and the broker count
 * readiness looks at. */
static void on_stats(void *ctx, const char *json, size_t len)
{
    tp_ingest *ing = ctx;
    tp_kafka_stats ks = {0};
    if (tp_kafka_stats_parse(json, len, &ks) != TP_OK)
        return;
    int up = 0;
    for (size_t i = 0; i < ks.n_brokers; i++)
        up += ks.brokers[i].nodeid >= 0 && ks.brokers[i].up;
    atomic_store(&ing->brokers_up, up);
    tp_kafka_stats_exporter_apply(ing->kstats, &ks);
    tp_kafka_stats_clear(&ks);
}

/* Producer's poll thread: wake the network thread so it stops at once. */
static void on_fatal(void *ctx)
{
    tp_ingest *ing = ctx;
    tp_gateway_server_wake(ing->srv);
}

static int source_quiet(void *ctx, uint32_t source, uint32_t generation)
{
    tp_ingest *ing = ctx;
    return tp_gateway_server_quiet(ing->srv, source, generation);
}

/* Network thread: a gateway sent what it will send for now (quiet) or is near its window (stalled): its records
 * leave now instead of at linger. Quiet: the batches holding its records whose other gateways are quiet too (the
 * end of a replay, of an upload, of a burst of samples taken at the same second; batches shared with gateways still
 * sending keep their linger, so packs do not shrink). Stalled: every batch holding its records, since it sends
 * nothing more until they are acked. */
static void on_sent(void *ctx, uint32_t source, uint32_t generation, int stalled)
{
    tp_ingest *ing = ctx;
    tp_batcher_flush_source(ing->batcher, source, generation, stalled ? NULL : source_quiet, ing);
}

/* Network thread: one record from a gateway. */
static tp_err on_record(void *ctx, const tp_record *r, size_t wire_len, const tp_batch_tag *tag)
{
    tp_ingest *ing = ctx;
    struct timespec ts; /* the coarse clock is a few ns: good enough for linger, fresh for every record */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (ing->o.pack_by == TP_PACK_BY_PARTITION) {
        int32_t n = atomic_load_explicit(&ing->partitions, memory_order_relaxed);
        if (n <= 0)
            return TP_ERR_AGAIN; /* partition count not known yet: hold the gateways back */
        part_memo *pm = &ing->memo[(r->vehicle_id ^ (r->vehicle_id >> 12)) & (PART_MEMO - 1)];
        if (pm->partitions != n || pm->vehicle_id != r->vehicle_id)
            *pm = (part_memo){r->vehicle_id, tp_producer_vehicle_partition(ing->prod, r->vehicle_id, n), n};
        return tp_batcher_add_keyed(ing->batcher, (uint64_t)pm->partition, r, wire_len, tag, now);
    }
    return tp_batcher_add(ing->batcher, r, wire_len, tag, now);
}

tp_err tp_ingest_new(const tp_ingest_opts *opts, tp_ingest **out, char *errbuf, size_t errlen)
{
    if (!opts || !out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    char scratch[8];
    if (!errbuf || !errlen) {
        errbuf = scratch;
        errlen = sizeof scratch;
    }
    if (!opts->topic || !opts->topic[0]) {
        snprintf(errbuf, errlen, "no Kafka topic given: tp_ingest_opts.topic is empty");
        return TP_ERR_INVALID_ARG;
    }
    if (opts->pack_by != TP_PACK_BY_PARTITION && opts->pack_by != TP_PACK_BY_VEHICLE) {
        snprintf(errbuf, errlen, "pack grouping %d is unknown; use partition or vehicle", (int)opts->pack_by);
        return TP_ERR_INVALID_ARG;
    }

    tp_ingest *ing = calloc(1, sizeof *ing);
    if (!ing)
        return TP_ERR_NOMEM;
    ing->o = *opts;
    if (ing->o.layout == TP_LAYOUT_ROWS)
        ing->o.pack_by = TP_PACK_BY_VEHICLE; /* a rows pack (pbpack v1) holds one vehicle */
    if (ing->o.threads <= 0)
        ing->o.threads = 1;
    pthread_mutex_init(&ing->mu, NULL);
    atomic_store(&ing->stop_deadline, INT64_MAX);
    atomic_store(&ing->brokers_up, -1);
    tp_err e = tp_batcher_new(&ing->o.batch, &ing->batcher);
    if (e) {
        snprintf(errbuf, errlen,
                 "invalid batching options (records %u, bytes %zu, linger %lld ms, cap %zu, open vehicles %u): %s",
                 ing->o.batch.max_records, ing->o.batch.max_bytes, (long long)ing->o.batch.linger_ms,
                 ing->o.batch.max_buffered_bytes, ing->o.batch.max_open, tp_strerror(e));
        tp_ingest_free(ing);
        return e;
    }
    tp_gateway_server_opts so;
    tp_gateway_server_opts_init(&so);
    so.listen = ing->o.listen;
    so.max_record_bytes = ing->o.max_record_bytes;
    so.max_connections = ing->o.max_connections;
    so.max_conns_per_ip = ing->o.max_conns_per_ip;
    so.idle_timeout_ms = ing->o.idle_timeout_ms;
    so.batch_records = ing->o.batch.max_records ? ing->o.batch.max_records : so.batch_records;
    so.linger_ms = ing->o.batch.linger_ms >= 0 ? (uint32_t)ing->o.batch.linger_ms : so.linger_ms;
    so.max_window_bytes = ing->o.batch.max_buffered_bytes ? ing->o.batch.max_buffered_bytes / 4 : so.max_window_bytes;
    so.auth = ing->o.auth;
    so.tls = ing->o.tls;
    so.quiet_ms = ing->o.gateway_flush_ms;
    e = tp_gateway_server_new(&so, on_record, ing, &ing->srv, errbuf, errlen);
    if (e) {
        tp_ingest_free(ing);
        return e;
    }
    if (ing->o.gateway_flush_ms > 0)
        tp_gateway_server_on_sent(ing->srv, on_sent);
    tp_producer_opts po = {ing->o.brokers, ing->o.topic, ing->o.kafka_conf, ing->o.nkafka_conf, on_fatal, NULL, 0,
                           ing->o.compact_headers};
    if (ing->o.kafka_metrics) {
        if ((e = tp_kafka_stats_exporter_new(ing->o.kafka_metrics, &ing->kstats))) {
            snprintf(errbuf, errlen, "cannot set up the Kafka statistics exporter: %s", tp_strerror(e));
            tp_ingest_free(ing);
            return e;
        }
        po.on_stats = on_stats;
    }
    e = tp_producer_new(&po, on_delivery, ing, &ing->prod, errbuf, errlen);
    if (e) {
        tp_ingest_free(ing);
        return e;
    }
    *out = ing;
    return TP_OK;
}

int tp_ingest_port(const tp_ingest *ing)
{
    return tp_gateway_server_port(ing->srv);
}

tp_err tp_ingest_add_fd(tp_ingest *ing, int fd)
{
    if (!ing || fd < 0)
        return TP_ERR_INVALID_ARG;
    pthread_mutex_lock(&ing->mu);
    if (ing->nfds == ing->fds_cap) {
        size_t n = ing->fds_cap ? ing->fds_cap * 2 : 8;
        int *f = realloc(ing->fds, n * sizeof *f);
        if (!f) {
            pthread_mutex_unlock(&ing->mu);
            close(fd);
            return TP_ERR_NOMEM;
        }
        ing->fds = f;
        ing->fds_cap = n;
    }
    ing->fds[ing->nfds++] = fd;
    pthread_mutex_unlock(&ing->mu);
    tp_gateway_server_wake(ing->srv);
    return TP_OK;
}

static void publish_stats(tp_ingest *ing)
{
    tp_gateway_server_stats gs;
    tp_batcher_stats bs;
    tp_gateway_server_stats_get(ing->srv, &gs);
    tp_batcher_stats_get(ing->batcher, &bs);
    atomic_store(&ing->records_in, gs.records_in);
    atomic_store(&ing->bytes_in, gs.bytes_in);
    atomic_store(&ing->records_acked, gs.records_acked);
    atomic_store(&ing->connections, gs.connections);
    atomic_store(&ing->conn_errors, gs.closed_on_error);
    atomic_store(&ing->paused, (unsigned long long)gs.paused);
    atomic_store(&ing->buffered_bytes, bs.buffered_bytes);
    atomic_store(&ing->buffered_records, bs.buffered_records);
    const tp_ingest_metrics *m = ing->o.metrics;
    if (m) { /* totals kept here are mirrored into the counters */
        tp_counter_set(m->records, gs.records_in);
        tp_counter_set(m->bytes_in, gs.bytes_in);
        for (int i = 1; i < TP_GW_REJECT__COUNT; i++)
            tp_counter_set(m->records_rejected[i], gs.rejected[i]);
        for (int i = 0; i < TP_GW_CLOSE__COUNT; i++)
            tp_counter_set(m->gateway_closes[i], gs.closed[i]);
        for (int i = 1; i < TP_GW_REFUSE__COUNT; i++)
            tp_counter_set(m->gateway_refusals[i], gs.refused[i]);
        for (int i = 0; i < TP_GW_TLS__COUNT; i++)
            tp_counter_set(m->gateway_tls_failures[i], gs.tls_failures[i]);
        tp_counter_set(m->gateway_tls_sessions, gs.tls_sessions);
        tp_gauge_set(m->gateways_v2, (double)gs.connections_v2);
        tp_counter_set(m->backpressure, gs.pauses);
        tp_counter_set(m->flush_records, bs.flushed_records);
        tp_counter_set(m->flush_bytes, bs.flushed_bytes);
        tp_counter_set(m->flush_linger, bs.flushed_linger);
        tp_counter_set(m->flush_shutdown, bs.flushed_all);
        tp_counter_set(m->flush_open, bs.flushed_open);
        tp_counter_set(m->flush_gateway, bs.flushed_source);
        tp_gauge_set(m->buffered_bytes, (double)bs.buffered_bytes);
        tp_gauge_set(m->open_batches, (double)bs.open_batches);
        tp_gauge_set(m->batcher_memory, (double)bs.memory);
        tp_gauge_set(m->inflight_packs, (double)atomic_load(&ing->in_flight));
        tp_gauge_set(m->gateways, (double)gs.connections);
    }
}

/* Network thread: applies finished attempts. */
static void take_done(tp_ingest *ing, int stopping_hard)
{
    pthread_mutex_lock(&ing->mu);
    tp_batch *b = ing->done_head;
    ing->done_head = ing->done_tail = NULL;
    pthread_mutex_unlock(&ing->mu);
    while (b) {
        tp_batch *next = b->next;
        b->next = NULL;
        if (b->result == RES_OK) {
            for (uint32_t i = 0; i < b->ntags; i++)
                tp_gateway_server_complete(ing->srv, &b->tags[i]);
            tp_batcher_release(ing->batcher, b);
        } else if (b->result == RES_RETRY && !stopping_hard && !atomic_load(&ing->failed)) {
            atomic_fetch_add(&ing->retries, 1);
            tp_compress_pool_submit(ing->pool, b);
        } else {
            if (b->result != RES_OK)
                atomic_fetch_add(&ing->failures, 1);
            if (b->result == RES_FAIL && !stopping_hard) {
                char why[512], name[48];
                if (!tp_producer_fatal(ing->prod, why, sizeof why)) /* a fatal error is the reason to report */
                    snprintf(why, sizeof why, "a pack of %u records for %s could not be delivered", b->count,
                             batch_name(ing, b, name, sizeof name));
                set_failed(ing, why);
            }
            if (stopping_hard)
                atomic_fetch_add(&ing->undelivered, 1);
            tp_batcher_release(ing->batcher, b);
        }
        b = next;
    }
}

static void submit_ready(tp_ingest *ing)
{
    tp_batch *b;
    while (tp_batcher_next_ready(ing->batcher, &b) == TP_OK) {
        if (ing->o.metrics)
            tp_histogram_observe(ing->o.metrics->batch_age, (double)(ing->now - b->opened_ms) / 1e3);
        tp_compress_pool_submit(ing->pool, b);
    }
}

/* Network thread, pack_by partition: reads the topic's partition count until it is known (at most ~100 ms per
 * call, so the loop keeps serving acks and stop requests; a warning every 10 s while it cannot). */
static void learn_partitions(tp_ingest *ing)
{
    if (ing->o.pack_by != TP_PACK_BY_PARTITION || atomic_load(&ing->partitions) > 0)
        return;
    int32_t n = 0;
    char why[512];
    if (tp_producer_partition_count(ing->prod, 100, &n, why, sizeof why) == TP_OK) {
        atomic_store(&ing->partitions, n);
        tp_log(TP_LOG_INFO, "ingest", "topic %s has %d partitions: packs group records by partition", ing->o.topic,
               (int)n);
        tp_gateway_server_resume(ing->srv);
        return;
    }
    int64_t now = mono_ms();
    if (now - ing->partitions_logged >= 10000) {
        ing->partitions_logged = now;
        tp_log(TP_LOG_WARN, "ingest", "%s; gateways wait until it is known", why);
    }
}

static void *net_thread(void *arg)
{
    tp_ingest *ing = arg;
    int stopping = 0, failing = 0;
    size_t cap = ing->o.batch.max_buffered_bytes;
    for (;;) {
        pthread_mutex_lock(&ing->mu);
        int *fds = ing->fds;
        size_t nfds = ing->nfds;
        ing->fds = NULL;
        ing->nfds = ing->fds_cap = 0;
        pthread_mutex_unlock(&ing->mu);
        for (size_t i = 0; i < nfds; i++) {
            if (stopping || failing)
                close(fds[i]);
            else
                tp_gateway_server_add_trusted_fd(ing->srv, fds[i]); /* HTTP requests, replay: checked already */
        }
        free(fds);

        learn_partitions(ing);
        ing->now = mono_ms();
        int64_t dl = tp_batcher_next_deadline(ing->batcher, ing->now);
        int timeout = (dl < 0 || dl > 100) ? 100 : (int)dl;
        int quiet = tp_gateway_server_quiet_pending(ing->srv);
        if (quiet >= 0 && quiet < timeout)
            timeout = quiet;
        if (tp_gateway_server_poll(ing->srv, timeout) != TP_OK) {
            set_failed(ing, "the gateway server's epoll loop failed");
        }
        ing->now = mono_ms();
        int hard = stopping && ing->now >= atomic_load(&ing->stop_deadline);
        take_done(ing, hard || failing);
        tp_gateway_server_flush_acks(ing->srv);

        if (!failing && (atomic_load(&ing->failed) || tp_producer_fatal(ing->prod, NULL, 0))) {
            char why[512];
            if (tp_producer_fatal(ing->prod, why, sizeof why))
                set_failed(ing, why);
            failing = 1;
            tp_log(TP_LOG_ERROR, "ingest", "stopping: unacked records stay with their gateways");
            tp_gateway_server_stop_accepting(ing->srv);
            tp_gateway_server_stop_reading(ing->srv);
            tp_gateway_server_close_all(ing->srv);
            tp_batcher_flush_all(ing->batcher);
            tp_batch *b;
            while (tp_batcher_next_ready(ing->batcher, &b) == TP_OK)
                tp_batcher_release(ing->batcher, b); /* never sent: nothing to ack */
            tp_producer_purge(ing->prod);
        }
        if (!stopping && atomic_load(&ing->stop_req)) {
            stopping = 1;
            tp_gateway_server_stop_accepting(ing->srv);
            tp_gateway_server_stop_reading(ing->srv);
            if (!failing)
                tp_batcher_flush_all(ing->batcher);
        }
        if (!failing) {
            tp_batcher_expire(ing->batcher, ing->now);
            submit_ready(ing);
            if (tp_gateway_server_paused(ing->srv)) {
                tp_batcher_stats bs;
                tp_batcher_stats_get(ing->batcher, &bs);
                /* resume below three quarters of both caps: wire bytes and the batches' memory */
                if (bs.buffered_bytes <= cap - cap / 4 &&
                    bs.held_memory <= (cap - cap / 4) * (size_t)TP_BATCHER_MEMORY_FACTOR) {
                    tp_gateway_server_resume(ing->srv);
                    submit_ready(ing);
                }
            }
        } else {
            tp_batch *b;
            while (tp_batcher_next_ready(ing->batcher, &b) == TP_OK)
                tp_batcher_release(ing->batcher, b);
        }
        if (hard || failing)
            tp_producer_purge(ing->prod);
        publish_stats(ing);
        if (stopping || failing) {
            tp_batcher_stats bs;
            tp_batcher_stats_get(ing->batcher, &bs);
            if (bs.buffered_records == 0)
                break;
        }
    }
    tp_gateway_server_flush_acks(ing->srv);
    tp_gateway_server_close_all(ing->srv);
    publish_stats(ing);
    return NULL;
}

tp_err tp_ingest_start(tp_ingest *ing)
{
    if (!ing || ing->started)
        return TP_ERR_INVALID_ARG;
    tp_compress_pool_opts co;
    tp_compress_pool_opts_init(&co);
    co.threads = ing->o.threads;
    co.writer.level = ing->o.level;
    co.writer.codec = ing->o.codec;
    co.writer.layout = ing->o.layout;
    co.writer.dict = ing->o.dict;
    co.writer.multi_vehicle = ing->o.pack_by == TP_PACK_BY_PARTITION;
    co.writer.coded_columns = ing->o.layout == TP_LAYOUT_COLUMNS && ing->o.coded_columns;
    if (co.writer.max_pack_bytes < ing->o.batch.max_bytes + ing->o.max_record_bytes + 16)
        co.writer.max_pack_bytes = ing->o.batch.max_bytes + ing->o.max_record_bytes + 16;
    tp_err e = tp_compress_pool_new(&co, on_packed, ing, &ing->pool);
    if (e)
        return e;
    ing->partitions_logged = mono_ms(); /* the first warning after 10 s without the partition count */
    if (pthread_create(&ing->thread, NULL, net_thread, ing) != 0) {
        tp_compress_pool_free(ing->pool);
        ing->pool = NULL;
        return TP_ERR_NOMEM;
    }
    ing->started = 1;
    return TP_OK;
}

tp_err tp_ingest_stop(tp_ingest *ing, int timeout_ms)
{
    if (!ing || !ing->started)
        return TP_ERR_INVALID_ARG;
    if (atomic_load(&ing->stop_deadline) != 0) /* not hurried already */
        atomic_store(&ing->stop_deadline, timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms);
    atomic_store(&ing->stop_req, 1);
    tp_gateway_server_wake(ing->srv);
    pthread_join(ing->thread, NULL);
    ing->started = 0;
    tp_compress_pool_free(ing->pool); /* every batch came back, so the workers are idle */
    ing->pool = NULL;
    tp_producer_flush(ing->prod, 1000);
    if (atomic_load(&ing->failed))
        return TP_ERR_KAFKA;
    return atomic_load(&ing->undelivered) ? TP_ERR_AGAIN : TP_OK;
}

void tp_ingest_hurry(tp_ingest *ing)
{
    atomic_store(&ing->stop_deadline, 0);
    tp_gateway_server_wake(ing->srv);
}

int tp_ingest_failed(tp_ingest *ing, char *buf, size_t len)
{
    if (!atomic_load(&ing->failed))
        return 0;
    if (buf && len) {
        pthread_mutex_lock(&ing->mu);
        snprintf(buf, len, "%s", ing->fail_msg);
        pthread_mutex_unlock(&ing->mu);
    }
    return 1;
}

void tp_ingest_stats_get(tp_ingest *ing, tp_ingest_stats *st)
{
    st->records_in = atomic_load(&ing->records_in);
    st->bytes_in = atomic_load(&ing->bytes_in);
    st->packs_out = atomic_load(&ing->packs_out);
    st->records_out = atomic_load(&ing->records_out);
    st->pack_bytes_out = atomic_load(&ing->pack_bytes_out);
    st->records_acked = atomic_load(&ing->records_acked);
    st->buffered_bytes = atomic_load(&ing->buffered_bytes);
    st->buffered_records = atomic_load(&ing->buffered_records);
    st->in_flight = atomic_load(&ing->in_flight);
    st->connections = atomic_load(&ing->connections);
    st->connections_closed_on_error = atomic_load(&ing->conn_errors);
    st->delivery_retries = atomic_load(&ing->retries);
    st->delivery_failures = atomic_load(&ing->failures);
    st->paused = atomic_load(&ing->paused);
}

int tp_ingest_ready(tp_ingest *ing, char *reason, size_t cap)
{
    char why[512];
    if (tp_ingest_failed(ing, why, sizeof why)) {
        snprintf(reason, cap, "ingest failed: %s", why);
        return 0;
    }
    if (atomic_load(&ing->stop_req)) {
        snprintf(reason, cap, "shutting down: no new gateway connections");
        return 0;
    }
    int up = atomic_load(&ing->brokers_up);
    if (ing->kstats && up <= 0) {
        if (up < 0)
            snprintf(reason, cap, "kafka: no broker connection yet (the producer's statistics report it)");
        else
            snprintf(reason, cap, "kafka: no broker connected");
        return 0;
    }
    if (ing->o.pack_by == TP_PACK_BY_PARTITION && atomic_load(&ing->partitions) <= 0) {
        snprintf(reason, cap, "kafka: the partition count of topic %s is not known yet (needed by --pack-by "
                 "partition)", ing->o.topic);
        return 0;
    }
    if (atomic_load(&ing->paused)) {
        snprintf(reason, cap,
                 "memory cap reached: %llu bytes not yet in Kafka (--max-buffered-bytes %zu); gateways are held "
                 "back",
                 (unsigned long long)atomic_load(&ing->buffered_bytes), ing->o.batch.max_buffered_bytes);
        return 0;
    }
    return 1;
}

void tp_ingest_free(tp_ingest *ing)
{
    if (!ing)
        return;
    if (ing->started)
        tp_ingest_stop(ing, 10000);
    tp_producer_free(ing->prod);
    tp_kafka_stats_exporter_free(ing->kstats); /* after the producer: its statistics callback uses it */
    tp_gateway_server_free(ing->srv);
    tp_batcher_free(ing->batcher);
    for (size_t i = 0; i < ing->nfds; i++)
        close(ing->fds[i]);
    free(ing->fds);
    pthread_mutex_destroy(&ing->mu);
    free(ing);
}

struct rd_kafka_s *tp_ingest_kafka_handle(tp_ingest *ing)
{
    return tp_producer_handle(ing->prod);
}
