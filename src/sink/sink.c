/* The sink worker: consumer group -> pack reader -> column batch -> warehouse, offsets stored after the load.
 *
 * One thread owns everything here (the consumer, the batch, the warehouse); librdkafka's rebalance callback runs
 * inside rd_kafka_consumer_poll on that thread. Per partition we remember `pending_next`, the offset after the
 * last message whose fate is settled but not yet stored: its rows are in the batch, or it was dead-lettered and
 * the DLQ delivery was confirmed. Messages of one partition are taken strictly in order and a dead-letter
 * delivery is waited for before the next message, so `pending_next` only ever covers settled messages, and it is
 * stored only after the warehouse acknowledged the batch holding every row below it (docs/SINK.md). */
#include "sink/sink.h"
#include "common/clock.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka/kafka_stats.h"
#include "common/log.h"
#include "kafka/kafka_conf.h"
#include "kafka/log_rdkafka.h"
#include "kafka/pack_headers.h"
#include "kafka/schema_headers.h"
#include "ops/worker_metrics.h"
#include "telepack/pack.h"
#include "schema/dynpack.h"
#include "schema/dynrow.h"
#include "schema/schema_dir.h"
#include "telepack/rows.h"

#define MAX_PARTITIONS 100000 /* bound of the per-partition table (partition ids come from the broker) */
#define POLL_MS 100           /* longest consumer poll, so stop requests and timers are noticed quickly */
#define ROW_BYTES 68          /* bytes of one row in a tp_row_batch (its eleven columns) */
#define NOMEM_ATTEMPTS 3      /* a pack that cannot be decoded for lack of memory this many times is dead-lettered */

/* A pack whose rows are in the batch: its message is kept until the rows are loaded, so that a pack the warehouse
 * refuses can still be dead-lettered as it came. */
typedef struct held_pack {
    rd_kafka_message_t *msg;
    size_t row_start, rows;
    int state;        /* during a split: 0 not settled, 1 loaded, 2 refused */
    size_t n_refused; /* rows the warehouse named (0: the pack as a whole) */
    char why[384];    /* the warehouse's first reason */
} held_pack;

typedef struct part_state {
    int assigned;
    int64_t pending_next; /* offset after the last settled-but-unstored message, -1 = none */
    int64_t taken_next;   /* offset after the last message taken or rewound to, -1 = none yet */
    int64_t assigned_at;  /* offset the warehouse said to start at, -1 = the group's committed offset */
    uint64_t pending_packs;
} part_state;

struct tp_sink {
    char *brokers, *topic, *group, *dlq_topic;
    char **props;
    size_t n_props;
    size_t batch_rows;
    long flush_ms, min_insert_ms, backoff_min_ms, backoff_max_ms, progress_ms;
    size_t min_insert_rows; /* a caught-up load of this many rows does not wait for min_insert_ms */
    size_t last_load_rows;  /* rows of the last successful load */
    size_t max_pack_bytes;
    void (*progress)(void *, const tp_sink_stats *);
    void *progress_ctx;
    tp_err (*load_hook)(void *, size_t);
    void *load_hook_ctx;
    tp_err (*reserve_hook)(void *, size_t);
    void *reserve_hook_ctx;
    void (*on_loaded)(void *, const tp_row_batch *);
    void *on_loaded_ctx;

    tp_warehouse *wh;
    int own_wh;
    rd_kafka_t *rk;  /* consumer */
    rd_kafka_t *dlq; /* idempotent producer for the dead-letter topic */
    tp_pack_reader *reader;
    tp_row_batch *batch;
    tp_row_batch *sub;      /* a part of the batch, while a refused batch is split */
    held_pack *packs;       /* the packs of the batch, in row order */
    size_t n_packs, cap_packs;
    int settling;           /* inside settle_rejected: a revoke drops instead of loading */
    int64_t max_event_age_ms, max_event_ahead_ms;
    /* A run-time schema (config.schema): packs decode into `dyn` (row i from Kafka dyn_part[i] @ dyn_off[i]) instead
     * of `batch`; writers are the other versions whose packs it accepts (compatible ones). */
    const tp_schema *schema;
    const tp_schema **writers;
    size_t n_writers;
    tp_schema_dir *writer_dir; /* more writer versions, looked up by fingerprint (--schema-dir) */
    tp_dyn_batch *dyn;
    int32_t *dyn_part;
    int64_t *dyn_off;
    size_t *dyn_mark_elems; /* per column: elems_len before the pack being decoded */
    size_t dyn_mark_count, dyn_mark_bytes, dyn_mark_used;
    tp_dyn_pack_reader *dynreader;
    part_state *parts;
    size_t n_parts;
    tp_partition_offset *offs;
    uint64_t pending_packs;
    int64_t first_pending_ms; /* when the oldest unstored settled message was taken; 0 = none */
    int64_t last_load_ms;     /* when the last load (successful or not) returned; 0 = none yet */
    int32_t nomem_partition;  /* the message whose decoding last ran out of memory, and how often in a row */
    int64_t nomem_offset;
    int nomem_attempts;

    int outage;          /* the warehouse said "unavailable": partitions paused, load retried at retry_at_ms */
    int dlq_paused;      /* partitions paused while waiting for a dead-letter delivery */
    int closing;         /* inside the final close: revokes only drop */
    int table_pending;   /* the warehouse was unavailable at start: ensure the table in tp_sink_run */
    int attempt;
    int hook_failed;     /* the last load failure came from the test hook, not the warehouse */
    uint64_t generation; /* +1 per revoke: a message taken before a revoke must not advance anything after it */
    long backoff_ms;
    int64_t retry_at_ms;
    int64_t outage_since_ms;
    tp_err fatal;
    char last_error[1024];
    char hook_error[256];

    tp_sink_metrics m;                 /* all NULL without a registry */
    tp_kafka_stats_exporter *stats;    /* NULL without a registry */
    atomic_int joined, warehouse_ok;

    atomic_int stop;
    _Atomic uint64_t packs_dict; /* of packs_dlq: naming a zstd dictionary the sink does not have */
    _Atomic uint64_t rows_loaded, packs_loaded, packs_dlq, packs_rejected, load_splits, dlq_retries, bytes_consumed, loads, loads_caught_up, load_retries, rows_dropped,
        rebalances, pending_rows;
    _Atomic int64_t lag;
    atomic_int paused;
};

/* Rows decoded and not loaded: of the row batch, or of the dynamic batch with a run-time schema. */
static size_t nrows(const tp_sink *s)
{
    return s->dyn ? s->dyn->count : s->batch->count;
}

/* Remembers where the dynamic batch stands before a pack is decoded, and goes back there (the pack's rows gone). */
static void dyn_mark(tp_sink *s)
{
    if (!s->dyn)
        return;
    s->dyn_mark_count = s->dyn->count;
    s->dyn_mark_bytes = s->dyn->bytes_len;
    s->dyn_mark_used = s->dyn->used;
    for (size_t i = 0; i < s->dyn->ncolumns; i++)
        s->dyn_mark_elems[i] = s->dyn->columns[i].elems_len;
}

static void rows_rollback(tp_sink *s, size_t rows_before)
{
    if (!s->dyn) {
        s->batch->count = rows_before;
        return;
    }
    s->dyn->count = s->dyn_mark_count;
    s->dyn->bytes_len = s->dyn_mark_bytes;
    s->dyn->used = s->dyn_mark_used;
    for (size_t i = 0; i < s->dyn->ncolumns; i++)
        s->dyn->columns[i].elems_len = s->dyn_mark_elems[i];
}

static void set_pending_rows(tp_sink *s)
{
    atomic_store(&s->pending_rows, nrows(s));
    tp_gauge_set(s->m.pending_rows, (double)nrows(s));
}

static void set_assigned_gauge(tp_sink *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_parts; i++)
        n += s->parts[i].assigned != 0;
    tp_gauge_set(s->m.assigned_partitions, (double)n);
}

__attribute__((format(printf, 2, 3))) static void set_error(tp_sink *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
    va_end(ap);
}

void tp_sink_config_init(tp_sink_config *c)
{
    memset(c, 0, sizeof *c);
    tp_warehouse_opts_init(&c->warehouse_opts);
    c->batch_rows = TP_SINK_DEFAULT_BATCH_ROWS;
    c->flush_ms = 1000;
    c->min_insert_interval_ms = 200;
    c->max_pack_bytes = TP_DEFAULT_MAX_PACK_BYTES;
    c->backoff_min_ms = 100;
    c->backoff_max_ms = 10000;
    c->max_event_age_ms = TP_SINK_DEFAULT_EVENT_RANGE_MS;
    c->max_event_ahead_ms = TP_SINK_DEFAULT_EVENT_RANGE_MS;
}

/* ---- per-partition state ---- */

static part_state *part_get(tp_sink *s, int32_t partition)
{
    if (partition < 0 || partition >= MAX_PARTITIONS)
        return NULL;
    if ((size_t)partition >= s->n_parts) {
        size_t n = (size_t)partition + 1 > s->n_parts * 2 ? (size_t)partition + 1 : s->n_parts * 2;
        part_state *p = realloc(s->parts, n * sizeof *p);
        if (!p)
            return NULL;
        tp_partition_offset *o = realloc(s->offs, n * sizeof *o);
        if (!o) {
            s->parts = p;
            return NULL;
        }
        for (size_t i = s->n_parts; i < n; i++)
            p[i] = (part_state){0, -1, -1, -1, 0};
        s->parts = p;
        s->offs = o;
        s->n_parts = n;
    }
    return &s->parts[partition];
}

static int anything_pending(const tp_sink *s)
{
    if (nrows(s))
        return 1;
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].assigned && s->parts[i].pending_next >= 0)
            return 1;
    return 0;
}

/* ---- the packs of the batch ---- */

static void release_packs(tp_sink *s)
{
    for (size_t i = 0; i < s->n_packs; i++)
        rd_kafka_message_destroy(s->packs[i].msg);
    s->n_packs = 0;
}

/* Keeps m (owned from now on) as the pack of rows [row_start, row_start + rows). */
static tp_err hold_pack(tp_sink *s, rd_kafka_message_t *m, size_t row_start, size_t rows)
{
    if (s->n_packs == s->cap_packs) {
        size_t n = s->cap_packs ? s->cap_packs * 2 : 64;
        held_pack *p = realloc(s->packs, n * sizeof *p);
        if (!p)
            return TP_ERR_NOMEM;
        s->packs = p;
        s->cap_packs = n;
    }
    held_pack *h = &s->packs[s->n_packs++];
    h->msg = m;
    h->row_start = row_start;
    h->rows = rows;
    h->state = 0;
    h->n_refused = 0;
    h->why[0] = 0;
    return TP_OK;
}

/* ---- librdkafka configuration ---- */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t cap)
{
    return tp_kafka_conf_set(conf, key, value, err, cap) ? -1 : 0;
}

/* Applies the user's pass-through properties ("key=value"). */
static int conf_apply_props(const tp_sink *s, rd_kafka_conf_t *conf, char *err, size_t cap)
{
    return tp_kafka_conf_apply(conf, (const char *const *)s->props, s->n_props, err, cap) ? -1 : 0;
}

/* librdkafka statistics (statistics.interval.ms) into the metrics registry; the opaque is the sink. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    tp_sink *s = opaque;
    if (s && s->stats)
        tp_kafka_stats_exporter_update(s->stats, json, len);
    return 0; /* librdkafka frees json */
}

/* Sets the statistics interval (unless -X set one) and the callback when metrics are on. */
static int conf_stats(tp_sink *s, rd_kafka_conf_t *conf, char *err, size_t cap)
{
    if (!s->stats)
        return 0;
    char v[32];
    size_t n = sizeof v;
    if (rd_kafka_conf_get(conf, "statistics.interval.ms", v, &n) == RD_KAFKA_CONF_OK && strcmp(v, "0") == 0 &&
        conf_set(conf, "statistics.interval.ms", "5000", err, cap))
        return -1;
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    return 0;
}

/* Delivery report of one dead-letter message: its opaque is the waiting dlq_wait. */
typedef struct dlq_wait {
    int done;
    rd_kafka_resp_err_t err;
} dlq_wait;

static void dlq_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    dlq_wait *w = m->_private;
    if (w) {
        w->err = m->err;
        w->done = 1;
    }
}

/* librdkafka's error callback for the consumer and the dead-letter producer. Both are served on the sink's thread
 * (rd_kafka_consumer_poll, rd_kafka_poll of the DLQ producer), so setting fatal here is safe. Being refused entry
 * (credentials, TLS, ACLs) stops the sink: retrying with the same settings cannot help. */
static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    tp_sink *s = opaque;
    if (tp_kafka_err_is_config(err)) {
        if (!s->fatal) {
            s->fatal = TP_ERR_KAFKA;
            set_error(s, "Kafka did not let the %s in: %s (%s); check security.protocol and the sasl.* and ssl.* "
                      "settings", rd_kafka_type(rk) == RD_KAFKA_CONSUMER ? "consumer" : "dead-letter producer",
                      reason, rd_kafka_err2name((rd_kafka_resp_err_t)err));
        }
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[256];
        rd_kafka_fatal_error(rk, buf, sizeof buf);
        if (!s->fatal) {
            s->fatal = TP_ERR_KAFKA;
            set_error(s, "librdkafka raised a fatal error: %s", buf);
        }
        return;
    }
    tp_log(TP_LOG_WARN, "kafka", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static rd_kafka_t *make_producer(tp_sink *s, char *err, size_t cap, tp_err *code)
{
    *code = TP_ERR_INVALID_ARG;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    if (conf_set(conf, "bootstrap.servers", s->brokers, err, cap) ||
        conf_set(conf, "enable.idempotence", "true", err, cap) || conf_set(conf, "acks", "all", err, cap) ||
        conf_set(conf, "message.timeout.ms", "10000", err, cap) || conf_set(conf, "linger.ms", "0", err, cap) ||
        conf_apply_props(s, conf, err, cap) || conf_stats(s, conf, err, cap)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    tp_kafka_conf_log(conf);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_dr_msg_cb(conf, dlq_delivered);
    rd_kafka_conf_set_opaque(conf, s);
    *code = TP_ERR_KAFKA;
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!p) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, cap, "cannot create the dead-letter producer: %s", errstr);
    }
    return p;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque);

static rd_kafka_t *make_consumer(tp_sink *s, char *err, size_t cap, tp_err *code)
{
    *code = TP_ERR_INVALID_ARG;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    if (conf_set(conf, "bootstrap.servers", s->brokers, err, cap) || conf_set(conf, "group.id", s->group, err, cap) ||
        conf_set(conf, "auto.offset.reset", "earliest", err, cap) ||
        conf_set(conf, "check.crcs", "true", err, cap) || conf_apply_props(s, conf, err, cap) ||
        /* not overridable: offsets are stored by us after the warehouse ack, and committed by librdkafka */
        conf_set(conf, "enable.auto.offset.store", "false", err, cap) ||
        conf_set(conf, "enable.auto.commit", "true", err, cap) ||
        conf_set(conf, "enable.partition.eof", "false", err, cap) || conf_stats(s, conf, err, cap)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    tp_kafka_conf_log(conf);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, s);
    *code = TP_ERR_KAFKA;
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!c) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, cap, "cannot create the Kafka consumer: %s", errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(c);
    return c;
}

/* ---- pausing ---- */

static void pause_all(tp_sink *s, int resume)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(s->rk, &a) || !a)
        return;
    if (a->cnt)
        resume ? rd_kafka_resume_partitions(s->rk, a) : rd_kafka_pause_partitions(s->rk, a);
    rd_kafka_topic_partition_list_destroy(a);
}

static void update_paused(tp_sink *s)
{
    atomic_store(&s->paused, s->outage || s->dlq_paused);
}

/* A message we cannot take now (blocked, or no room): rewind its partition so it is fetched again after resume.
 * The seek purges what was prefetched for the partition. rdkafka.h warns that storing offsets after a seek may
 * interfere with resuming a paused partition: here a stored offset is never past a rewound message (nothing of
 * that partition is taken before it comes back), so at worst the fetch position moves back to messages already
 * taken, which handle_message drops as stale (offset below taken_next). */
static void defer_message(tp_sink *s, rd_kafka_message_t *m)
{
    part_state *ps = part_get(s, m->partition);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, s->topic, m->partition)->offset = m->offset;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(s->rk, l, 0);
    if (e) {
        tp_log(TP_LOG_WARN, "sink", "cannot rewind %s/%" PRId32 " to %" PRId64 ": %s", s->topic, m->partition,
               m->offset, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (ps)
        ps->taken_next = m->offset;
    rd_kafka_message_destroy(m);
}

/* ---- loading ---- */

/* Loads the batch and records the offsets of every partition with settled messages, then stores those offsets
 * in the consumer. Returns the warehouse's result; on anything but TP_OK nothing is stored and the batch is kept. */
static tp_err load_pending(tp_sink *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].assigned && s->parts[i].pending_next >= 0)
            s->offs[n++] = (tp_partition_offset){(int32_t)i, s->parts[i].pending_next};
    size_t loaded = nrows(s);
    if (loaded == 0 && n == 0)
        return TP_OK;
    int64_t t0 = tp_mono_ms();
    tp_err err = s->load_hook ? s->load_hook(s->load_hook_ctx, loaded) : TP_OK;
    s->hook_failed = err != TP_OK;
    if (!err)
        err = s->dyn ? tp_warehouse_load_dyn(s->wh, s->dyn, s->dyn_part, s->dyn_off, s->topic, s->offs, n)
                     : tp_warehouse_load(s->wh, s->batch, s->topic, s->offs, n);
    s->last_load_ms = tp_mono_ms();
    atomic_store(&s->warehouse_ok, err == TP_OK);
    tp_gauge_set(s->m.warehouse_up, err == TP_OK);
    if (err) {
        tp_counter_inc(s->m.load_errors);
        return err;
    }
    tp_counter_inc(s->m.loads);
    tp_counter_add(s->m.rows_loaded, loaded);
    tp_histogram_observe(s->m.load_latency, (double)(tp_mono_ms() - t0) / 1000.0);
    if (s->dyn && loaded) {
        tp_histogram_observe(s->m.batch_rows, (double)loaded);
        double now = (double)tp_wall_ms() / 1e3;
        int64_t ns;
        for (size_t i = 0; i < loaded; i += loaded / 16 + 1)
            if (tp_dyn_time_ns(s->dyn, i, &ns))
                tp_histogram_observe(s->m.event_time_lag, now - (double)ns / 1e9);
    } else if (s->batch->count) {
        tp_histogram_observe(s->m.batch_rows, (double)s->batch->count);
        /* Event-time lag, sampled: up to 16 rows spread over the batch. */
        double now = (double)tp_wall_ms() / 1e3;
        size_t step = s->batch->count / 16 + 1;
        for (size_t i = 0; i < s->batch->count; i += step)
            tp_histogram_observe(s->m.event_time_lag, now - (double)s->batch->sampled_at_ms[i] / 1000.0);
    }
    if (n) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
        for (size_t i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(l, s->topic, s->offs[i].partition)->offset = s->offs[i].next_offset;
        rd_kafka_resp_err_t kerr = rd_kafka_offsets_store(s->rk, l);
        if (kerr)
            tp_log(TP_LOG_WARN, "sink", "storing offsets in the consumer failed (%s); the warehouse holds them",
                   rd_kafka_err2str(kerr));
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (s->on_loaded && s->batch->count)
        s->on_loaded(s->on_loaded_ctx, s->batch);
    release_packs(s);
    atomic_fetch_add(&s->rows_loaded, loaded);
    atomic_fetch_add(&s->packs_loaded, s->pending_packs);
    atomic_fetch_add(&s->loads, 1);
    s->last_load_rows = loaded;
    tp_row_batch_clear(s->batch);
    if (s->dyn)
        tp_dyn_batch_clear(s->dyn);
    set_pending_rows(s);
    s->pending_packs = 0;
    for (size_t i = 0; i < s->n_parts; i++) {
        s->parts[i].pending_next = -1;
        s->parts[i].pending_packs = 0;
    }
    s->first_pending_ms = 0;
    return TP_OK;
}

/* The sentence for a failed load. */
static const char *load_error(tp_sink *s, tp_err err)
{
    if (!s->hook_failed)
        return tp_warehouse_last_error(s->wh);
    snprintf(s->hook_error, sizeof s->hook_error, "warehouse %s: %s (test hook)", tp_warehouse_kind(s->wh),
             tp_strerror(err));
    return s->hook_error;
}

/* ---- data the warehouse refuses ---- */

static tp_err dlq_send(tp_sink *s, const rd_kafka_message_t *m, const char *reason);
static void dlq_unblock(tp_sink *s);

/* Loads packs [lo, hi) of the batch without offsets (a part of a refused batch). */
static tp_err load_part(tp_sink *s, size_t lo, size_t hi)
{
    size_t from = s->packs[lo].row_start, n = s->packs[hi - 1].row_start + s->packs[hi - 1].rows - from;
    if (s->dyn) {
        tp_err err = s->load_hook ? s->load_hook(s->load_hook_ctx, n) : TP_OK;
        s->hook_failed = err != TP_OK;
        if (!err)
            err = tp_warehouse_load_dyn_range(s->wh, s->dyn, from, n, s->dyn_part, s->dyn_off, s->topic, NULL, 0);
        if (err && err != TP_ERR_REJECTED)
            tp_counter_inc(s->m.load_errors);
        return err;
    }
    if (s->sub->capacity < n && tp_row_batch_reserve(s->sub, n))
        return TP_ERR_NOMEM;
    const tp_row_batch *b = s->batch;
    tp_row_batch *d = s->sub;
    memcpy(d->vehicle_id, b->vehicle_id + from, n * sizeof *d->vehicle_id);
    memcpy(d->sampled_at_ms, b->sampled_at_ms + from, n * sizeof *d->sampled_at_ms);
    memcpy(d->seq, b->seq + from, n * sizeof *d->seq);
    memcpy(d->latitude, b->latitude + from, n * sizeof *d->latitude);
    memcpy(d->longitude, b->longitude + from, n * sizeof *d->longitude);
    memcpy(d->speed_kmh, b->speed_kmh + from, n * sizeof *d->speed_kmh);
    memcpy(d->heading_deg, b->heading_deg + from, n * sizeof *d->heading_deg);
    memcpy(d->accuracy_m, b->accuracy_m + from, n * sizeof *d->accuracy_m);
    memcpy(d->meter_status, b->meter_status + from, n * sizeof *d->meter_status);
    memcpy(d->kafka_partition, b->kafka_partition + from, n * sizeof *d->kafka_partition);
    memcpy(d->kafka_offset, b->kafka_offset + from, n * sizeof *d->kafka_offset);
    d->count = n;
    tp_err err = s->load_hook ? s->load_hook(s->load_hook_ctx, n) : TP_OK;
    s->hook_failed = err != TP_OK;
    if (!err)
        err = tp_warehouse_load(s->wh, d, s->topic, NULL, 0);
    if (err && err != TP_ERR_REJECTED)
        tp_counter_inc(s->m.load_errors);
    return err;
}

/* The pack (index in [lo, hi)) holding batch row `row`. */
static size_t pack_of_row(const tp_sink *s, size_t lo, size_t hi, size_t row)
{
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->packs[mid].row_start <= row)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* A load of packs [lo, hi) (rows from packs[lo].row_start) returned TP_ERR_REJECTED: settle each of those packs as
 * loaded or refused. Rows the warehouse named mark their packs refused and every other row was loaded; a refusal
 * of the whole is split in halves down to single packs. TP_OK, or a load error (unavailable, permanent). */
static tp_err classify(tp_sink *s, size_t lo, size_t hi)
{
    size_t base = s->packs[lo].row_start, named = s->hook_failed ? 0 : tp_warehouse_rejected_count(s->wh);
    if (named) {
        for (size_t i = 0; i < named; i++) {
            size_t row;
            const char *why;
            if (tp_warehouse_rejected(s->wh, i, &row, &why))
                continue;
            held_pack *h = &s->packs[pack_of_row(s, lo, hi, base + row)];
            if (h->state != 2)
                snprintf(h->why, sizeof h->why, "%s", why);
            h->state = 2;
            h->n_refused++;
        }
        for (size_t p = lo; p < hi; p++)
            if (s->packs[p].state != 2)
                s->packs[p].state = 1;
        return TP_OK;
    }
    if (hi - lo == 1) {
        s->packs[lo].state = 2;
        snprintf(s->packs[lo].why, sizeof s->packs[lo].why, "%s", load_error(s, TP_ERR_REJECTED));
        return TP_OK;
    }
    atomic_fetch_add(&s->load_splits, 1);
    tp_counter_inc(s->m.load_splits);
    size_t mid = lo + (hi - lo) / 2;
    for (int half = 0; half < 2; half++) {
        size_t a = half ? mid : lo, b = half ? hi : mid;
        tp_err err = load_part(s, a, b);
        if (err == TP_ERR_REJECTED)
            err = classify(s, a, b);
        else if (!err)
            for (size_t p = a; p < b; p++)
                s->packs[p].state = 1;
        if (err)
            return err;
    }
    return TP_OK;
}

/* load_pending returned TP_ERR_REJECTED: find the refused packs (the rest gets loaded on the way), dead-letter them
 * with the warehouse's reason, then record the offsets with a load of no rows. TP_ERR_AGAIN when a rebalance
 * happened during a dead-letter delivery (the next flush starts over; a pack may reach the DLQ twice). */
static tp_err settle_rejected(tp_sink *s)
{
    if (s->n_packs == 0)
        return TP_ERR_REJECTED; /* only offsets were loaded: nothing to set aside */
    for (size_t i = 0; i < s->n_packs; i++)
        s->packs[i].state = 0, s->packs[i].n_refused = 0;
    s->settling = 1;
    tp_err err = classify(s, 0, s->n_packs);
    for (size_t i = 0; !err && i < s->n_packs; i++) {
        held_pack *h = &s->packs[i];
        if (h->state != 2)
            continue;
        rd_kafka_message_t *m = h->msg;
        char full[1024];
        if (h->n_refused)
            snprintf(full, sizeof full, "message %s/%" PRId32 "@%" PRId64 " (%zu bytes): the warehouse refused %zu of "
                     "its %zu records as invalid (%s); its other %zu records were loaded", s->topic, m->partition,
                     m->offset, m->len, h->n_refused, h->rows, h->why, h->rows - h->n_refused);
        else
            snprintf(full, sizeof full, "message %s/%" PRId32 "@%" PRId64 " (%zu bytes): the warehouse refused its %zu "
                     "records, even alone in a load (%s); none of them was loaded", s->topic, m->partition,
                     m->offset, m->len, h->rows, h->why);
        tp_log(TP_LOG_WARN, "sink", "%s; sending it to %s", full, s->dlq_topic);
        uint64_t generation = s->generation;
        tp_err derr = dlq_send(s, m, full);
        dlq_unblock(s);
        if (s->generation != generation) {
            err = TP_ERR_AGAIN; /* the batch and its packs changed under us: start over at the next flush */
            break;
        }
        if (derr) {
            err = TP_ERR_AGAIN;
            break;
        }
        atomic_fetch_add(&s->packs_dlq, 1);
        atomic_fetch_add(&s->packs_rejected, 1);
        tp_counter_inc(s->m.dlq);
        tp_counter_inc(s->m.dlq_rejected);
        tp_counter_add(s->m.rows_rejected, h->n_refused ? h->n_refused : h->rows);
        h->state = 3; /* delivered */
    }
    s->settling = 0;
    if (err)
        return err;
    /* Every pack is now loaded or in the dead-letter topic: count the loaded rows, empty the batch, and let a load
     * of no rows record the offsets (settled messages: the batch's and the dead-lettered ones). */
    size_t loaded = 0, packs = 0;
    for (size_t i = 0; i < s->n_packs; i++) {
        held_pack *h = &s->packs[i];
        loaded += h->state == 1 ? h->rows : h->n_refused ? h->rows - h->n_refused : 0;
        packs += h->state == 1;
    }
    atomic_fetch_add(&s->rows_loaded, loaded);
    atomic_fetch_add(&s->packs_loaded, packs);
    tp_counter_add(s->m.rows_loaded, loaded);
    tp_row_batch_clear(s->batch);
    if (s->dyn)
        tp_dyn_batch_clear(s->dyn);
    release_packs(s);
    s->pending_packs = 0;
    set_pending_rows(s);
    err = load_pending(s);
    return err == TP_ERR_REJECTED ? TP_ERR_WAREHOUSE : err;
}

/* Loads what is pending and handles the outcome: on "unavailable" pauses every partition and schedules a retry
 * with capped exponential backoff; on a permanent error records it (the run loop stops). */
static tp_err flush(tp_sink *s)
{
    tp_err err = load_pending(s);
    if (err == TP_ERR_REJECTED) {
        tp_log(TP_LOG_WARN, "sink", "%s; setting the refused packs aside", load_error(s, err));
        err = settle_rejected(s);
        if (err == TP_ERR_AGAIN)
            return err;
    }
    if (!err) {
        if (s->outage) {
            tp_log(TP_LOG_INFO, "sink", "warehouse %s available again after %d retries (%.1f s); resuming",
                   tp_warehouse_kind(s->wh), s->attempt, (double)(tp_mono_ms() - s->outage_since_ms) / 1000.0);
            s->outage = 0;
            if (!s->dlq_paused)
                pause_all(s, 1);
            update_paused(s);
        }
        return TP_OK;
    }
    if (err == TP_ERR_UNAVAILABLE) {
        if (!s->outage) {
            s->outage = 1;
            s->attempt = 0;
            s->backoff_ms = s->backoff_min_ms;
            s->outage_since_ms = tp_mono_ms();
            pause_all(s, 0);
            update_paused(s);
        }
        s->attempt++;
        atomic_fetch_add(&s->load_retries, 1);
        tp_counter_inc(s->m.retries);
        tp_log(TP_LOG_WARN, "sink", "%s; %zu rows kept, partitions paused, retry %d in %ld ms",
               load_error(s, err), nrows(s), s->attempt, s->backoff_ms);
        s->retry_at_ms = tp_mono_ms() + s->backoff_ms;
        s->backoff_ms = s->backoff_ms * 2 > s->backoff_max_ms ? s->backoff_max_ms : s->backoff_ms * 2;
        return err;
    }
    s->fatal = err;
    set_error(s, "warehouse %s failed permanently: %s; stopping without storing the offsets of the %zu rows not "
                 "loaded (they will be read again after the problem is fixed)",
              tp_warehouse_kind(s->wh), load_error(s, err), nrows(s));
    tp_log(TP_LOG_ERROR, "sink", "%s", s->last_error);
    return err;
}

/* ---- rebalancing ---- */

static int is_cooperative(rd_kafka_t *rk)
{
    const char *p = rd_kafka_rebalance_protocol(rk);
    return p && !strcmp(p, "COOPERATIVE");
}

static void on_assign(tp_sink *s, rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        part_state *ps = part_get(s, p->partition);
        if (!ps) {
            tp_log(TP_LOG_ERROR, "sink", "partition %" PRId32 " out of range or out of memory", p->partition);
            continue;
        }
        *ps = (part_state){1, -1, -1, -1, 0};
        int64_t next = -1;
        tp_err err = tp_warehouse_stored_offset(s->wh, s->topic, p->partition, &next);
        if (err) {
            tp_log(TP_LOG_WARN, "sink",
                   "cannot read the loaded offset of %s/%" PRId32 " from the warehouse (%s); starting from the "
                   "group's committed offset",
                   s->topic, p->partition, tp_warehouse_last_error(s->wh));
            next = -1;
        }
        if (next >= 0) {
            p->offset = next;
            ps->assigned_at = next;
        }
        if (next >= 0)
            tp_log(TP_LOG_INFO, "sink", "assigned %s/%" PRId32 " at offset %" PRId64 " (from the warehouse)",
                   s->topic, p->partition, next);
        else
            tp_log(TP_LOG_INFO, "sink", "assigned %s/%" PRId32 " at the group's committed offset", s->topic,
                   p->partition);
    }
    if (is_cooperative(s->rk)) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(s->rk, parts);
        if (e) {
            tp_log(TP_LOG_ERROR, "sink", "incremental assign failed: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_resp_err_t e = rd_kafka_assign(s->rk, parts);
        if (e)
            tp_log(TP_LOG_ERROR, "sink", "assign failed: %s", rd_kafka_err2str(e));
    }
    atomic_store(&s->joined, 1);
    set_assigned_gauge(s);
    /* librdkafka keeps a partition's application pause across unassign/assign: set it explicitly either way. */
    if (s->outage || s->dlq_paused)
        rd_kafka_pause_partitions(s->rk, parts);
    else
        rd_kafka_resume_partitions(s->rk, parts);
}

/* Removes from the batch every row whose partition is no longer assigned (order of the others is kept). */
static void drop_unassigned_rows_dyn(tp_sink *s)
{
    tp_dyn_batch *b = s->dyn;
    size_t j = 0;
    for (size_t i = 0; i < b->count; i++) {
        int32_t p = s->dyn_part[i];
        if (p >= 0 && (size_t)p < s->n_parts && s->parts[p].assigned) {
            if (i != j) {
                /* cells point into the arena and element arrays, which stay where they are */
                for (size_t c = 0; c < b->ncolumns; c++) {
                    b->columns[c].cells[j] = b->columns[c].cells[i];
                    b->columns[c].present[j] = b->columns[c].present[i];
                }
                s->dyn_part[j] = s->dyn_part[i];
                s->dyn_off[j] = s->dyn_off[i];
            }
            j++;
        }
    }
    atomic_fetch_add(&s->rows_dropped, b->count - j);
    b->count = j;
}

static void drop_unassigned_rows(tp_sink *s)
{
    tp_row_batch *b = s->batch;
    size_t j = 0;
    if (s->dyn)
        drop_unassigned_rows_dyn(s);
    for (size_t i = 0; i < b->count; i++) {
        int32_t p = b->kafka_partition[i];
        if (p >= 0 && (size_t)p < s->n_parts && s->parts[p].assigned) {
            if (i != j) {
                b->vehicle_id[j] = b->vehicle_id[i];
                b->sampled_at_ms[j] = b->sampled_at_ms[i];
                b->seq[j] = b->seq[i];
                b->latitude[j] = b->latitude[i];
                b->longitude[j] = b->longitude[i];
                b->speed_kmh[j] = b->speed_kmh[i];
                b->heading_deg[j] = b->heading_deg[i];
                b->accuracy_m[j] = b->accuracy_m[i];
                b->meter_status[j] = b->meter_status[i];
                b->kafka_partition[j] = b->kafka_partition[i];
                b->kafka_offset[j] = b->kafka_offset[i];
            }
            j++;
        }
    }
    atomic_fetch_add(&s->rows_dropped, b->count - j);
    b->count = j;
    set_pending_rows(s);
    size_t k = 0, row = 0;
    for (size_t i = 0; i < s->n_packs; i++) {
        held_pack *h = &s->packs[i];
        int32_t p = h->msg->partition;
        if (p >= 0 && (size_t)p < s->n_parts && s->parts[p].assigned) {
            s->packs[k] = *h;
            s->packs[k++].row_start = row;
            row += h->rows;
        } else {
            rd_kafka_message_destroy(h->msg);
        }
    }
    s->n_packs = k;
}

/* Revoke: load once what is pending (unless the warehouse is known down or we are closing); whatever could not be
 * loaded for the revoked partitions is dropped, unstored, so the next owner reads it again. Either way no row of
 * a revoked partition is lost (not stored => re-read) or doubled (stored only with its rows loaded). */
static void on_revoke(tp_sink *s, rd_kafka_topic_partition_list_t *parts)
{
    int pending = 0;
    for (int i = 0; i < parts->cnt; i++) {
        part_state *ps = part_get(s, parts->elems[i].partition);
        if (ps && ps->assigned && ps->pending_next >= 0)
            pending = 1;
    }
    if (pending && !s->outage && !s->closing && !s->fatal && !s->settling && flush(s) == TP_OK) {
        rd_kafka_resp_err_t e = rd_kafka_commit(s->rk, NULL, 0);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
            tp_log(TP_LOG_WARN, "sink", "commit at revoke failed: %s", rd_kafka_err2str(e));
    }
    for (int i = 0; i < parts->cnt; i++) {
        part_state *ps = part_get(s, parts->elems[i].partition);
        if (!ps)
            continue;
        if (ps->pending_packs)
            s->pending_packs -= ps->pending_packs;
        *ps = (part_state){0, -1, -1, -1, 0};
    }
    drop_unassigned_rows(s);
    set_assigned_gauge(s);
    if (!anything_pending(s)) {
        if (s->outage && !s->dlq_paused)
            pause_all(s, 1); /* partitions kept (cooperative) must not stay paused with nothing to retry */
        s->outage = 0;
        s->first_pending_ms = 0;
        update_paused(s);
    }
    if (is_cooperative(s->rk)) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(s->rk, parts);
        if (e) {
            tp_log(TP_LOG_ERROR, "sink", "incremental unassign failed: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(s->rk, NULL);
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    tp_sink *s = opaque;
    atomic_fetch_add(&s->rebalances, 1);
    tp_counter_inc(s->m.rebalances);
    if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        s->generation++;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(s, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(s, parts);
    } else {
        tp_log(TP_LOG_ERROR, "sink", "rebalance error: %s", rd_kafka_err2str(err));
        if (is_cooperative(rk))
            rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
    }
}

/* ---- dead letters ---- */

/* While blocked (waiting for a DLQ delivery): keep the consumer in the group without taking messages. */
static void poll_blocked(tp_sink *s, int timeout_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, timeout_ms);
    if (!m)
        return;
    if (m->err)
        rd_kafka_message_destroy(m);
    else
        defer_message(s, m);
}

/* Sends message m with its key, value and headers plus the error and source headers to the dead-letter topic and
 * waits for the delivery. TP_OK once delivered; TP_ERR_AGAIN when a stop was requested before it was. */
static tp_err dlq_send(tp_sink *s, const rd_kafka_message_t *m, const char *reason)
{
    char source[300];
    snprintf(source, sizeof source, "%s/%" PRId32 "@%" PRId64, s->topic, m->partition, m->offset);
    long backoff = s->backoff_min_ms;
    int64_t started = tp_mono_ms();
    for (int attempt = 1;; attempt++) {
        rd_kafka_headers_t *orig = NULL, *h;
        if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig)
            h = rd_kafka_headers_copy(orig);
        else
            h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, TP_HEADER_ERROR, -1, reason, -1);
        rd_kafka_header_add(h, TP_SINK_DLQ_SOURCE_HEADER, -1, source, -1);
        dlq_wait w = {0, RD_KAFKA_RESP_ERR_NO_ERROR};
        rd_kafka_resp_err_t e = rd_kafka_producev(
            s->dlq, RD_KAFKA_V_TOPIC(s->dlq_topic), RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_OPAQUE(&w), RD_KAFKA_V_END);
        if (e) {
            rd_kafka_headers_destroy(h);
            w.done = 1;
            w.err = e;
        }
        while (!w.done) {
            rd_kafka_poll(s->dlq, 20);
            if (!w.done && tp_mono_ms() - started > 1000) {
                if (!s->dlq_paused) {
                    s->dlq_paused = 1;
                    if (!s->outage)
                        pause_all(s, 0);
                    update_paused(s);
                }
                poll_blocked(s, 0);
            }
        }
        if (!w.err)
            return TP_OK;
        char fatal[256] = "";
        if (rd_kafka_fatal_error(s->dlq, fatal, sizeof fatal)) {
            char errbuf[512];
            tp_log(TP_LOG_WARN, "sink", "dead-letter producer hit a fatal error (%s); recreating it", fatal);
            rd_kafka_purge(s->dlq, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_flush(s->dlq, 1000);
            rd_kafka_destroy(s->dlq);
            tp_err code;
            s->dlq = make_producer(s, errbuf, sizeof errbuf, &code);
            if (!s->dlq) {
                s->fatal = TP_ERR_KAFKA;
                set_error(s, "%s", errbuf);
                return TP_ERR_KAFKA;
            }
        }
        if (atomic_load(&s->stop))
            return TP_ERR_AGAIN;
        atomic_fetch_add(&s->dlq_retries, 1);
        tp_log(TP_LOG_WARN, "sink",
               "dead-letter topic %s: delivery of %s failed (%s); partitions paused, retry %d in %ld ms (check "
               "that the topic exists and this sink may write to it, or set --dlq-topic)",
               s->dlq_topic, source, rd_kafka_err2str(w.err), attempt, backoff);
        if (!s->dlq_paused) {
            s->dlq_paused = 1;
            if (!s->outage)
                pause_all(s, 0);
            update_paused(s);
        }
        for (int64_t until = tp_mono_ms() + backoff; tp_mono_ms() < until && !atomic_load(&s->stop);)
            poll_blocked(s, 50);
        backoff = backoff * 2 > s->backoff_max_ms ? s->backoff_max_ms : backoff * 2;
    }
}

static void dlq_unblock(tp_sink *s)
{
    if (!s->dlq_paused)
        return;
    s->dlq_paused = 0;
    if (!s->outage)
        pause_all(s, 1);
    update_paused(s);
}

/* ---- decoding ---- */

/* Whether packs written with fingerprint fp load under the sink's schema: its own, or a writer version it was given
 * (--writer-schema) or finds in its schema directory (--schema-dir) that tp_schema_compare found compatible.
 * Otherwise writes the sentence (both fingerprints). */
static int schema_accepts(const tp_sink *s, const char *fp, char *reason, size_t cap)
{
    const char *own = tp_schema_fingerprint_hex(s->schema);
    if (!strcmp(fp, own))
        return 1;
    const tp_schema *writer = NULL;
    const char *file = NULL;
    for (size_t i = 0; i < s->n_writers && !writer; i++)
        if (!strcmp(fp, tp_schema_fingerprint_hex(s->writers[i])))
            writer = s->writers[i];
    if (!writer && s->writer_dir)
        writer = tp_schema_dir_find(s->writer_dir, fp, &file);
    if (writer) {
        char why[512] = "";
        tp_schema_compat k = tp_schema_compare(writer, s->schema, why, sizeof why);
        if (k != TP_SCHEMA_INCOMPATIBLE)
            return 1;
        snprintf(reason, cap, "written with schema %s fingerprint %s%s%s%s, incompatible with this sink's %s: %s",
                 tp_schema_message_name(s->schema), fp, file ? " (" : "", file ? file : "", file ? ")" : "", own,
                 why);
        return 0;
    }
    if (s->writer_dir)
        snprintf(reason, cap, "written with schema %s fingerprint %s, but this sink loads fingerprint %s and knows no "
                 "writer schema with that fingerprint, neither given nor in --schema-dir %s (add its descriptor set "
                 "there to accept a compatible version)", tp_schema_message_name(s->schema), fp, own,
                 tp_schema_dir_path(s->writer_dir));
    else
        snprintf(reason, cap, "written with schema %s fingerprint %s, but this sink loads fingerprint %s and knows no "
                 "writer schema with that fingerprint (give its descriptor set with --writer-schema to accept a "
                 "compatible version)", tp_schema_message_name(s->schema), fp, own);
    return 0;
}

/* A column pack of the schema (version 4, docs/FORMAT_SCHEMA.md), opened by s->dynreader: its records into s->dyn,
 * each record's key checked against the message's; a pack of several keys (--pack-by partition) has no Kafka key
 * and its order was checked by the decoder, as for the built-in version 3. */
static tp_err decode_columns_schema(tp_sink *s, const rd_kafka_message_t *m, char *reason, size_t cap)
{
    size_t first = s->dyn->count;
    tp_err err = tp_dyn_pack_reader_read_columns(s->dynreader, s->dyn);
    if (err == TP_ERR_FULL && first > 0)
        return TP_ERR_FULL; /* the rows' bytes budget: load first */
    if (err) {
        snprintf(reason, cap, "%s: %s", tp_strerror(err), tp_dyn_pack_reader_error(s->dynreader));
        return err == TP_ERR_FULL ? TP_ERR_PACK_TOO_LARGE : err;
    }
    char detail[512] = "";
    bool multi = tp_dyn_pack_reader_multi_key(s->dynreader);
    for (size_t row = first; row < s->dyn->count; row++) {
        char key[TP_DYN_KEY_MAX + 1];
        size_t klen;
        if (!multi && (tp_dyn_key_text(s->dyn, row, key, &klen, detail, sizeof detail) || klen != m->key_len ||
                       memcmp(key, m->key, klen))) {
            if (!detail[0])
                snprintf(detail, sizeof detail, "its key is %s, the message's key %.*s", key,
                         (int)(m->key_len > 64 ? 64 : m->key_len), m->key ? (const char *)m->key : "");
            rows_rollback(s, 0);
            snprintf(reason, cap, "record %zu does not belong to the pack: %s", row - first, detail);
            return TP_ERR_CORRUPT;
        }
        s->dyn_part[row] = m->partition;
        s->dyn_off[row] = m->offset;
    }
    return TP_OK;
}

/* decode_pack for a run-time schema: headers with tp-schema and tp-schema-fp, a v1 pack (each frame through the
 * dynamic decoder) or a column pack (decode_columns_schema) into s->dyn. Same results as decode_pack. */
static tp_err decode_pack_schema(tp_sink *s, const rd_kafka_message_t *m, rd_kafka_headers_t *h, char *reason,
                                 size_t cap)
{
    char detail[512] = "", name[256], fp[TP_SCHEMA_FP_HEX_LEN + 1];
    tp_pack_meta meta;
    tp_err err = tp_schema_pack_meta_from_headers(h, &meta, name, sizeof name, fp, detail, sizeof detail);
    if (err) {
        snprintf(reason, cap, "bad pack headers: %s", detail);
        return err;
    }
    if (strcmp(name, tp_schema_message_name(s->schema))) {
        snprintf(reason, cap, "a pack of %s, but this sink loads %s (fingerprint %s)", name,
                 tp_schema_message_name(s->schema), tp_schema_fingerprint_hex(s->schema));
        return TP_ERR_UNKNOWN_VERSION;
    }
    if (!fp[0]) {
        snprintf(reason, cap, "pack header %s is missing: the writer's schema is unknown", TP_HEADER_SCHEMA_FP);
        return TP_ERR_PARSE;
    }
    if (!schema_accepts(s, fp, reason, cap))
        return TP_ERR_UNKNOWN_VERSION;
    if ((err = tp_dyn_pack_reader_open(s->dynreader, &meta, m->payload, m->len))) {
        snprintf(reason, cap, "%s: %s", tp_strerror(err), tp_dyn_pack_reader_error(s->dynreader));
        return err;
    }
    size_t want = tp_dyn_pack_reader_count(s->dynreader);
    if (s->dyn->capacity - s->dyn->count < want) {
        if (s->dyn->count > 0)
            return TP_ERR_FULL;
        snprintf(reason, cap, "the pack holds %zu records, more than --batch-rows %zu", want, s->dyn->capacity);
        return TP_ERR_PACK_TOO_LARGE;
    }
    dyn_mark(s);
    if (tp_dyn_pack_reader_is_columns(s->dynreader))
        return decode_columns_schema(s, m, reason, cap);
    const uint8_t *msg;
    size_t len;
    for (uint32_t i = 0; tp_dyn_pack_reader_next(s->dynreader, &msg, &len) == TP_OK; i++) {
        size_t row = s->dyn->count;
        err = tp_dyn_decode(s->dyn, msg, len);
        char key[TP_DYN_KEY_MAX + 1];
        size_t klen;
        if (!err && (tp_dyn_key_text(s->dyn, row, key, &klen, detail, sizeof detail) ||
                     klen != m->key_len || memcmp(key, m->key, klen))) {
            if (!detail[0])
                snprintf(detail, sizeof detail, "its key is %s, the message's key %.*s", key,
                         (int)(m->key_len > 64 ? 64 : m->key_len), m->key ? (const char *)m->key : "");
            rows_rollback(s, 0);
            snprintf(reason, cap, "record %" PRIu32 " does not belong to the pack: %s", i, detail);
            return TP_ERR_CORRUPT;
        }
        if (err) {
            rows_rollback(s, 0);
            if (err == TP_ERR_FULL && s->dyn_mark_count > 0)
                return TP_ERR_FULL; /* the rows' bytes budget: load first */
            snprintf(reason, cap, "record %" PRIu32 " does not decode as %s: %s (%s)", i,
                     tp_schema_message_name(s->schema), s->dyn->error, tp_strerror(err));
            return err == TP_ERR_FULL ? TP_ERR_PACK_TOO_LARGE : TP_ERR_DECODE;
        }
        s->dyn_part[row] = m->partition;
        s->dyn_off[row] = m->offset;
    }
    return TP_OK;
}

/* Decodes m's pack into the batch. TP_OK: rows appended. TP_ERR_FULL: the batch holds rows and lacks room (load
 * first). TP_ERR_NOMEM. Any other error: the pack is bad, `reason` says why. */
static tp_err decode_pack(tp_sink *s, const rd_kafka_message_t *m, char *reason, size_t cap)
{
    char detail[512] = "";
    if (!m->payload || m->len == 0) {
        snprintf(reason, cap, "empty message: a pack has at least a frame header");
        return TP_ERR_TRUNCATED;
    }
    if (m->len > s->max_pack_bytes) {
        snprintf(reason, cap, "message of %zu bytes above --max-pack-bytes %zu", m->len, s->max_pack_bytes);
        return TP_ERR_PACK_TOO_LARGE;
    }
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || !h) {
        snprintf(reason, cap, "the message has no headers; a pack carries %s, %s, %s and the others of "
                 "docs/FORMAT.md", TP_HEADER_FORMAT, TP_HEADER_VERSION, TP_HEADER_CODEC);
        return TP_ERR_PARSE;
    }
    if (s->schema)
        return decode_pack_schema(s, m, h, reason, cap);
    tp_pack_meta meta;
    tp_err err = tp_pack_meta_from_headers(h, &meta, detail, sizeof detail);
    if (err) {
        snprintf(reason, cap, "bad pack headers: %s", detail);
        return err;
    }
    err = tp_pack_reader_open(s->reader, &meta, m->payload, m->len);
    if (!err) {
        /* The batch is sized from what the content holds (the reader counted the records of a row pack and
         * checked a column pack's count against its bodies, both capped at max_pack_bytes / 16), never from the
         * header alone. A pack larger than what the batch has left: load the batch first, or grow it for the
         * pack when the batch is empty. */
        size_t want = tp_pack_reader_meta(s->reader)->record_count;
        if (s->batch->capacity - s->batch->count < want) {
            if (s->batch->count > 0)
                return TP_ERR_FULL;
            tp_err rerr = s->reserve_hook ? s->reserve_hook(s->reserve_hook_ctx, want) : TP_OK;
            if (rerr || tp_row_batch_reserve(s->batch, want)) {
                snprintf(reason, cap, "out of memory for the %zu rows of the pack (%zu bytes)", want,
                         want * (size_t)ROW_BYTES);
                return TP_ERR_NOMEM;
            }
        }
        err = tp_pack_reader_read_all(s->reader, s->batch, m->partition, m->offset);
    }
    if (err == TP_ERR_FULL && s->batch->count == 0) {
        snprintf(reason, cap, "pack holds more records than its header's count %" PRIu32, meta.record_count);
        return TP_ERR_COUNT_MISMATCH;
    }
    if (err && err != TP_ERR_FULL)
        snprintf(reason, cap, "%s: %s%s", tp_strerror(err), tp_pack_reader_error_detail(s->reader),
                 err == TP_ERR_UNKNOWN_DICT ? "; put that dictionary's file in the sinks' --dict-dir, restart them, "
                                              "then replay the dead letters" : "");
    return err;
}

/* Whether a row of the pack just decoded (rows from `first`) lies outside the accepted event time; if so, writes
 * the sentence. One pass over the pack's timestamps, no allocation. */
static int event_time_check(tp_sink *s, size_t first, char *reason, size_t cap)
{
    if (s->max_event_age_ms < 0 && s->max_event_ahead_ms < 0)
        return 0;
    int64_t now = tp_wall_ms();
    int64_t lo = s->max_event_age_ms < 0 ? INT64_MIN : now - s->max_event_age_ms;
    int64_t hi = s->max_event_ahead_ms < 0 ? INT64_MAX : now + s->max_event_ahead_ms;
    if (s->dyn) {
        for (size_t i = first; i < s->dyn->count; i++) {
            int64_t ns, ms;
            if (!tp_dyn_time_ns(s->dyn, i, &ns))
                continue; /* no time: nothing to check */
            ms = ns / 1000000;
            if (ms >= lo && ms <= hi)
                continue;
            snprintf(reason, cap, "record %zu has event time %" PRId64 " ms since the epoch (%s), %.0f days %s now, "
                     "beyond the accepted %s", i - first, ms,
                     tp_schema_column_at(s->schema, (size_t)tp_schema_get_roles(s->schema)->time)->name,
                     ((double)ms - (double)now) / 86400000.0 * (ms > hi ? 1 : -1), ms > hi ? "after" : "before",
                     ms > hi ? "--max-event-ahead" : "--max-event-age");
            return 1;
        }
        return 0;
    }
    const int64_t *t = s->batch->sampled_at_ms;
    for (size_t i = first; i < s->batch->count; i++) {
        if (t[i] >= lo && t[i] <= hi)
            continue;
        int ahead = t[i] > hi;
        snprintf(reason, cap, "record %zu has sampled_at_ms %" PRId64 ", %.0f days %s now, beyond the accepted %s "
                 "(%s %" PRId64 " days; microseconds or seconds sent as milliseconds, or a device clock?)",
                 i - first, t[i], ((double)t[i] - (double)now) / 86400000.0 * (ahead ? 1 : -1),
                 ahead ? "after" : "before", ahead ? "--max-event-ahead" : "--max-event-age",
                 ahead ? "--max-event-ahead" : "--max-event-age",
                 (ahead ? s->max_event_ahead_ms : s->max_event_age_ms) / 86400000);
        return 1;
    }
    return 0;
}

/* A consumer event instead of a message: fatal errors and refused credentials stop the sink, others are logged.
 * Consumes m. */
static void consumer_error(tp_sink *s, rd_kafka_message_t *m)
{
    char buf[256];
    if (rd_kafka_fatal_error(s->rk, buf, sizeof buf)) {
        s->fatal = TP_ERR_KAFKA;
        set_error(s, "Kafka consumer fatal error: %s", buf);
    } else if (tp_kafka_err_is_config(m->err)) {
        /* Not let in (credentials, TLS, ACLs): retrying with the same settings cannot help. */
        s->fatal = TP_ERR_KAFKA;
        set_error(s, "Kafka did not let the consumer in: %s (%s); check security.protocol and the sasl.* and "
                  "ssl.* settings", rd_kafka_message_errstr(m), rd_kafka_err2name(m->err));
    } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        tp_log(TP_LOG_WARN, "kafka", "consumer: %s", rd_kafka_message_errstr(m));
    }
    rd_kafka_message_destroy(m);
}

/* The first message of an assignment is not where the warehouse stopped: librdkafka reset the position
 * (auto.offset.reset) because the warehouse's offset is out of the log's range. Says which way. */
static void warn_position_reset(const tp_sink *s, const part_state *ps, const rd_kafka_message_t *m)
{
    if (m->offset < ps->assigned_at)
        tp_log(TP_LOG_WARN, "sink", "%s/%" PRId32 ": the warehouse has loaded up to offset %" PRId64 " but the "
               "log restarts at %" PRId64 " (topic recreated?); reading from there", s->topic, m->partition,
               ps->assigned_at, m->offset);
    else
        tp_log(TP_LOG_WARN, "sink", "%s/%" PRId32 ": the log has no message at offsets %" PRId64 "..%" PRId64
               " where the warehouse stopped (deleted by retention before they were loaded? then raise "
               "retention.ms or add sinks)", s->topic, m->partition, ps->assigned_at, m->offset - 1);
}

/* The pack could not be decoded for lack of memory. Memory may come back (the batch was just loaded, another
 * process let go): retries a few times with a growing pause (returns 1: m deferred), then returns 0 with the
 * dead-letter reason in reason[0..cap) rather than loop on the pack forever. */
static int nomem_retry(tp_sink *s, rd_kafka_message_t *m, char *reason, size_t cap)
{
    if (s->nomem_partition == m->partition && s->nomem_offset == m->offset) {
        s->nomem_attempts++;
    } else {
        s->nomem_partition = m->partition;
        s->nomem_offset = m->offset;
        s->nomem_attempts = 1;
    }
    if (s->nomem_attempts < NOMEM_ATTEMPTS) {
        long pause = s->backoff_min_ms << s->nomem_attempts;
        tp_log(TP_LOG_WARN, "sink", "%s/%" PRId32 "@%" PRId64 ": %s; retry %d of %d in %ld ms", s->topic,
               m->partition, m->offset, reason, s->nomem_attempts, NOMEM_ATTEMPTS - 1, pause);
        struct timespec ts = {pause / 1000, (pause % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        defer_message(s, m);
        return 1;
    }
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%.600s, %d times in a row; lower --max-pack-bytes (a pack's rows take at most "
             "68 bytes x max-pack-bytes / %u) or give the sink more memory", reason, NOMEM_ATTEMPTS,
             TP_PACK_BYTES_PER_RECORD);
    snprintf(reason, cap, "%.767s", tmp);
    s->nomem_attempts = 0;
    return 0;
}

/* Marks m's partition as read up to m (taken and, once the batch is loaded, stored). */
static void advance(tp_sink *s, part_state *ps, int64_t offset)
{
    ps->pending_next = offset + 1;
    ps->taken_next = offset + 1;
    if (!s->first_pending_ms)
        s->first_pending_ms = tp_mono_ms();
}

/* Sends a pack that failed with err (reason says why) to the dead-letter topic and moves past it; a failed send
 * defers it, a revoke meanwhile drops it. Consumes m. */
static void dead_letter(tp_sink *s, rd_kafka_message_t *m, tp_err err, const char *reason)
{
    if (err != TP_ERR_REJECTED)
        tp_counter_inc(s->m.decode_errors);
    char full[1024];
    snprintf(full, sizeof full, "message %s/%" PRId32 "@%" PRId64 " (%zu bytes) %s: %s", s->topic,
             m->partition, m->offset, m->len,
             err == TP_ERR_NOMEM      ? "could not be decoded"
             : err == TP_ERR_REJECTED ? "holds a record outside the accepted event time"
                                      : "is not a valid pack",
             reason);
    tp_log(TP_LOG_WARN, "sink", "%s; sending it to %s", full, s->dlq_topic);
    uint64_t generation = s->generation;
    s->settling = 1; /* a revoke meanwhile must not start a load (and its own dead letters) */
    tp_err derr = dlq_send(s, m, full);
    s->settling = 0;
    dlq_unblock(s);
    part_state *ps = part_get(s, m->partition); /* the table may have grown, the partition may be gone */
    if (s->generation != generation || !ps || !ps->assigned) {
        rd_kafka_message_destroy(m); /* revoked meanwhile: its new owner starts from the stored offset */
        return;
    }
    if (derr) {
        defer_message(s, m);
        return;
    }
    atomic_fetch_add(&s->packs_dlq, 1);
    if (err == TP_ERR_UNKNOWN_DICT)
        atomic_fetch_add(&s->packs_dict, 1);
    tp_counter_inc(s->m.dlq);
    tp_counter_inc(err == TP_ERR_NOMEM          ? s->m.dlq_memory
                   : err == TP_ERR_REJECTED     ? s->m.dlq_event_time
                   : err == TP_ERR_UNKNOWN_DICT ? s->m.dlq_dict
                                                : s->m.dlq_decode);
    advance(s, ps, m->offset);
    rd_kafka_message_destroy(m);
    if (nrows(s) >= s->batch_rows)
        flush(s);
}

/* Keeps a decoded pack (its rows from rows_before on) until its rows are loaded; when it cannot be kept, its rows
 * go and it is taken again later. Consumes m. */
static void take_pack(tp_sink *s, part_state *ps, rd_kafka_message_t *m, size_t rows_before)
{
    if (hold_pack(s, m, rows_before, nrows(s) - rows_before)) {
        rows_rollback(s, rows_before);
        set_pending_rows(s);
        defer_message(s, m);
        return;
    }
    int64_t off = m->offset; /* m is held from here on */
    ps->pending_packs++;
    s->pending_packs++;
    tp_counter_add(s->m.records, nrows(s) - rows_before);
    set_pending_rows(s);
    advance(s, ps, off);
    if (nrows(s) >= s->batch_rows)
        flush(s);
}

/* Takes one message: its rows into the batch, or the message into the dead-letter topic. Consumes m. */
static void handle_message(tp_sink *s, rd_kafka_message_t *m)
{
    if (m->err) {
        consumer_error(s, m);
        return;
    }
    part_state *ps = part_get(s, m->partition);
    if (!ps || !ps->assigned || (ps->taken_next >= 0 && m->offset < ps->taken_next)) {
        rd_kafka_message_destroy(m); /* stale: from before a revoke, a seek or a redelivery */
        return;
    }
    if (s->outage || s->dlq_paused) {
        defer_message(s, m);
        return;
    }
    if (ps->taken_next < 0 && ps->assigned_at >= 0 && m->offset != ps->assigned_at)
        warn_position_reset(s, ps, m);
    char reason[768] = "";
    size_t rows_before = nrows(s);
    tp_err err = decode_pack(s, m, reason, sizeof reason);
    if (err == TP_ERR_FULL) {
        if (flush(s)) {
            defer_message(s, m);
            return;
        }
        rows_before = nrows(s);
        err = decode_pack(s, m, reason, sizeof reason);
    }
    if (err == TP_ERR_FULL) {
        defer_message(s, m);
        return;
    }
    if (err == TP_ERR_NOMEM && nomem_retry(s, m, reason, sizeof reason))
        return;
    if (!err && event_time_check(s, rows_before, reason, sizeof reason)) {
        rows_rollback(s, rows_before); /* the pack goes to the DLQ whole */
        set_pending_rows(s);
        err = TP_ERR_REJECTED;
    }
    atomic_fetch_add(&s->bytes_consumed, m->len);
    tp_counter_inc(s->m.packs);
    if (err)
        dead_letter(s, m, err, reason);
    else
        take_pack(s, ps, m, rows_before);
}

/* ---- lifecycle ---- */

static char *dup_str(const char *p)
{
    return p ? strdup(p) : NULL;
}

/* The checks of tp_sink_new that need nothing but the configuration. */
static tp_err check_config(const tp_sink_config *c, char *err, size_t cap)
{
    if (!c->brokers || !*c->brokers || !c->topic || !*c->topic || !c->group || !*c->group) {
        snprintf(err, cap, "sink: tp_sink_config needs brokers, topic and group");
        return TP_ERR_INVALID_ARG;
    }
    if (c->dlq_topic && !strcmp(c->dlq_topic, c->topic)) {
        snprintf(err, cap, "sink: --dlq-topic %s is the topic being consumed; a bad pack would come back forever. "
                 "Use another topic (default %s.dlq)", c->dlq_topic, c->topic);
        return TP_ERR_INVALID_ARG;
    }
    if (!c->warehouse && (!c->warehouse_url || !*c->warehouse_url)) {
        snprintf(err, cap, "sink: --warehouse is required (e.g. sqlite:telemetry.db)");
        return TP_ERR_INVALID_ARG;
    }
    if (c->batch_rows == 0 || c->batch_rows > 100000000 || c->flush_ms <= 0 || c->max_pack_bytes == 0 ||
        c->backoff_min_ms <= 0 || c->backoff_max_ms < c->backoff_min_ms || c->min_insert_interval_ms < 0) {
        snprintf(err, cap,
                 "sink: batch rows %zu, flush %ld ms, min insert interval %ld ms, max pack bytes %zu or backoff "
                 "%ld..%ld ms out of range; use batch rows 1..100000000, flush > 0 ms, min insert interval >= 0 ms, "
                 "max pack bytes > 0",
                 c->batch_rows, c->flush_ms, c->min_insert_interval_ms, c->max_pack_bytes, c->backoff_min_ms,
                 c->backoff_max_ms);
        return TP_ERR_INVALID_ARG;
    }
    return TP_OK;
}

/* Copies what the sink keeps of c: its own copies of the strings and -X properties, the settings and hooks by
 * value (the hooks' contexts and the schema stay borrowed, as tp_sink_config says). Returns 0, or -1 when a copy
 * could not be allocated (the caller frees s). */
static int copy_config(tp_sink *s, const tp_sink_config *c)
{
    s->brokers = dup_str(c->brokers);
    s->topic = dup_str(c->topic);
    s->group = dup_str(c->group);
    if (c->dlq_topic && *c->dlq_topic) {
        s->dlq_topic = dup_str(c->dlq_topic);
    } else if (s->topic) {
        size_t n = strlen(s->topic) + 5;
        s->dlq_topic = malloc(n);
        if (s->dlq_topic)
            snprintf(s->dlq_topic, n, "%s.dlq", s->topic);
    }
    s->props = c->n_kafka_props ? calloc(c->n_kafka_props, sizeof *s->props) : NULL;
    s->n_props = s->props ? c->n_kafka_props : 0;
    int oom = !s->brokers || !s->topic || !s->group || !s->dlq_topic || (c->n_kafka_props && !s->props);
    for (size_t i = 0; i < s->n_props; i++)
        if (!(s->props[i] = dup_str(c->kafka_props[i])))
            oom = 1;
    s->batch_rows = c->batch_rows;
    s->flush_ms = c->flush_ms;
    s->min_insert_ms = c->min_insert_interval_ms;
    s->min_insert_rows = c->min_insert_interval_rows ? c->min_insert_interval_rows
                                                     : (c->batch_rows / 4 ? c->batch_rows / 4 : 1);
    s->max_pack_bytes = c->max_pack_bytes;
    s->backoff_min_ms = c->backoff_min_ms;
    s->backoff_max_ms = c->backoff_max_ms;
    s->progress = c->progress;
    s->progress_ctx = c->progress_ctx;
    s->progress_ms = c->progress_ms;
    s->load_hook = c->load_hook;
    s->load_hook_ctx = c->load_hook_ctx;
    s->reserve_hook = c->reserve_hook;
    s->reserve_hook_ctx = c->reserve_hook_ctx;
    s->max_event_age_ms = c->max_event_age_ms;
    s->max_event_ahead_ms = c->max_event_ahead_ms;
    s->schema = c->schema;
    s->on_loaded = c->on_loaded;
    s->on_loaded_ctx = c->on_loaded_ctx;
    return oom ? -1 : 0;
}

/* Opens (or adopts) the warehouse and ensures its table; an unavailable warehouse is left for tp_sink_run. */
static tp_err open_warehouse(tp_sink *s, const tp_sink_config *c, char *err, size_t cap)
{
    tp_err e;
    if (c->warehouse) {
        s->wh = c->warehouse;
    } else {
        e = tp_warehouse_open(c->warehouse_url, &c->warehouse_opts, &s->wh, err, cap);
        if (e)
            return e;
        s->own_wh = 1;
    }
    e = tp_warehouse_ensure_table(s->wh);
    if (e == TP_ERR_UNAVAILABLE) {
        tp_log(TP_LOG_WARN, "sink", "%s; will retry when the sink runs", tp_warehouse_last_error(s->wh));
        s->table_pending = 1;
        atomic_store(&s->warehouse_ok, 0);
        e = TP_OK;
    }
    if (e)
        snprintf(err, cap, "%s", tp_warehouse_last_error(s->wh));
    return e;
}

/* Registers the sink's metrics and librdkafka's statistics exporter when c has a registry. */
static tp_err register_metrics(tp_sink *s, const tp_sink_config *c, char *err, size_t cap)
{
    if (!c->metrics)
        return TP_OK;
    const char *detail = NULL;
    tp_err e;
    if ((e = tp_sink_metrics_register(c->metrics, tp_warehouse_kind(s->wh), &s->m)) ||
        (e = tp_kafka_stats_exporter_new(c->metrics, &s->stats))) {
        tp_metrics_status(c->metrics, &detail);
        snprintf(err, cap, "sink: cannot register metrics: %s", detail ? detail : tp_strerror(e));
        return e;
    }
    tp_gauge_set(s->m.warehouse_up, !s->table_pending);
    return TP_OK;
}

/* Allocates the pack reader and the row batches, and with a run-time schema the dynamic batch and reader. */
static tp_err make_batches(tp_sink *s, const tp_sink_config *c, char *err, size_t cap)
{
    tp_pack_reader_opts ro;
    tp_pack_reader_opts_init(&ro);
    ro.max_pack_bytes = c->max_pack_bytes;
    ro.dicts = c->dicts;
    size_t initial = c->batch_rows < 1000000 ? c->batch_rows : 1000000; /* grows to batch_rows when needed */
    tp_err e;
    if ((e = tp_pack_reader_new(&ro, &s->reader)) || (e = tp_row_batch_new(initial, &s->batch)) ||
        (e = tp_row_batch_new(1, &s->sub))) {
        snprintf(err, cap, "sink: cannot allocate the pack reader or a batch of %zu rows: %s", initial,
                 tp_strerror(e));
        return e;
    }
    if (s->schema) {
        /* The dynamic batch: batch_rows rows of cells allocated now (9 bytes a column), strings and arrays up to
         * 4 x max_pack_bytes (a pack's frames hold at most max_pack_bytes string bytes and elements). */
        size_t budget = c->max_pack_bytes > UINT32_MAX / 4 ? UINT32_MAX : c->max_pack_bytes * 4;
        if (c->n_writer_schemas && !(s->writers = calloc(c->n_writer_schemas, sizeof *s->writers)))
            e = TP_ERR_NOMEM;
        for (size_t i = 0; !e && i < c->n_writer_schemas; i++)
            s->writers[i] = c->writer_schemas[i];
        s->n_writers = c->n_writer_schemas;
        s->writer_dir = c->writer_dir;
        if (!e)
            e = tp_dyn_batch_new(s->schema, c->batch_rows, budget, &s->dyn);
        if (!e)
            e = tp_dyn_pack_reader_new(c->max_pack_bytes, c->max_pack_bytes, &s->dynreader);
        if (!e && (!(s->dyn_part = calloc(c->batch_rows, sizeof *s->dyn_part)) ||
                   !(s->dyn_off = calloc(c->batch_rows, sizeof *s->dyn_off)) ||
                   !(s->dyn_mark_elems = calloc(s->dyn->ncolumns + 1, sizeof *s->dyn_mark_elems))))
            e = TP_ERR_NOMEM;
    }
    if (e)
        snprintf(err, cap, "sink: cannot allocate the pack reader or a batch of %zu rows: %s", initial,
                 tp_strerror(e));
    return e;
}

tp_err tp_sink_new(const tp_sink_config *c, tp_sink **out, char *err, size_t cap)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        cap = sizeof dummy;
    }
    if (!out || !c)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_err e = check_config(c, err, cap);
    if (e)
        return e;
    tp_sink *s = calloc(1, sizeof *s);
    if (!s)
        return TP_ERR_NOMEM;
    int oom = copy_config(s, c);
    s->nomem_partition = -1;
    atomic_store(&s->lag, -1);
    atomic_store(&s->warehouse_ok, 1);
    if (oom || part_get(s, 0) == NULL) {
        tp_sink_free(s);
        return TP_ERR_NOMEM;
    }
    if ((e = open_warehouse(s, c, err, cap)) || (e = register_metrics(s, c, err, cap)) ||
        (e = make_batches(s, c, err, cap))) {
        tp_sink_free(s);
        return e;
    }
    if (!(s->dlq = make_producer(s, err, cap, &e)) || !(s->rk = make_consumer(s, err, cap, &e))) {
        tp_sink_free(s);
        return e;
    }
    *out = s;
    return TP_OK;
}

static void publish_lag(tp_sink *s)
{
    int64_t lag = 0;
    int known = 0;
    for (size_t i = 0; i < s->n_parts; i++) {
        if (!s->parts[i].assigned || s->parts[i].taken_next < 0)
            continue;
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(s->rk, s->topic, (int32_t)i, &lo, &hi) == 0 && hi >= 0) {
            lag += hi > s->parts[i].taken_next ? hi - s->parts[i].taken_next : 0;
            known = 1;
        }
    }
    atomic_store(&s->lag, known ? lag : -1);
}

/* Whether the sink has taken every message the broker had for its assigned partitions when librdkafka last
 * fetched them (taken_next at the high watermark of the last fetch response; no network round trip): waiting longer
 * would only add latency, as the rows are not there. A partition nothing was taken from yet counts as caught up
 * unless the warehouse's offset is known to be below its watermark; an unknown watermark (no fetch answered yet)
 * counts as caught up. Stops at the first partition behind, so during a backlog it costs one lookup. */
static int caught_up(tp_sink *s)
{
    for (size_t i = 0; i < s->n_parts; i++) {
        const part_state *ps = &s->parts[i];
        if (!ps->assigned)
            continue;
        int64_t next = ps->taken_next >= 0 ? ps->taken_next : ps->assigned_at;
        if (next < 0)
            continue;
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(s->rk, s->topic, (int32_t)i, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0)
            continue;
        if (next < hi)
            return 0;
    }
    return 1;
}

/* The warehouse was down when the sink was created: retry ensuring the table with the load backoff before joining
 * the group (not a member yet, so nothing needs polling). TP_OK when ready or stopped, else the permanent error. */
static tp_err wait_for_table(tp_sink *s)
{
    long backoff = s->backoff_min_ms;
    for (int attempt = 1; s->table_pending && !atomic_load(&s->stop); attempt++) {
        tp_log(TP_LOG_WARN, "sink", "warehouse %s unavailable at start, retry %d in %ld ms", tp_warehouse_kind(s->wh),
               attempt, backoff);
        atomic_fetch_add(&s->load_retries, 1);
        tp_counter_inc(s->m.retries);
        for (int64_t until = tp_mono_ms() + backoff; tp_mono_ms() < until && !atomic_load(&s->stop);) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
        backoff = backoff * 2 > s->backoff_max_ms ? s->backoff_max_ms : backoff * 2;
        if (atomic_load(&s->stop))
            break;
        tp_err e = tp_warehouse_ensure_table(s->wh);
        if (e == TP_ERR_UNAVAILABLE)
            continue;
        if (e) {
            s->fatal = e;
            set_error(s, "%s", tp_warehouse_last_error(s->wh));
            return e;
        }
        s->table_pending = 0;
        atomic_store(&s->warehouse_ok, 1);
        tp_gauge_set(s->m.warehouse_up, 1);
        tp_log(TP_LOG_INFO, "sink", "warehouse %s available after %d retries", tp_warehouse_kind(s->wh), attempt);
    }
    return TP_OK;
}

/* How long after the previous load a caught-up load may start: the minimum interval, unless the batch or the
 * previous load holds min_insert_rows rows. A large insert need not wait, nor the rest of a backlog after one (the
 * small inserts the interval is against are those that follow each other: each one that does not wait follows a
 * large one). With the interval at or above flush_ms the sink loads by count or age only, and it always waits. */
static int64_t caught_up_wait_ms(const tp_sink *s)
{
    return s->min_insert_ms < s->flush_ms && (nrows(s) >= s->min_insert_rows || s->last_load_rows >= s->min_insert_rows)
               ? 0
               : s->min_insert_ms;
}

tp_err tp_sink_run(tp_sink *s)
{
    if (!s)
        return TP_ERR_INVALID_ARG;
    tp_err werr = wait_for_table(s);
    if (werr || atomic_load(&s->stop)) {
        rd_kafka_consumer_close(s->rk);
        return werr;
    }
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, s->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(s->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (kerr) {
        set_error(s, "cannot subscribe to topic %s: %s", s->topic, rd_kafka_err2str(kerr));
        return TP_ERR_KAFKA;
    }
    tp_log(TP_LOG_INFO, "sink", "consuming %s as group %s from %s into %s; loads at %zu rows or %ld ms; dead letters to %s",
           s->topic, s->group, s->brokers, tp_warehouse_kind(s->wh), s->batch_rows, s->flush_ms, s->dlq_topic);
    int64_t next_progress = tp_mono_ms() + s->progress_ms, next_lag = tp_mono_ms() + 1000;
    while (!atomic_load(&s->stop) && !s->fatal) {
        int64_t now = tp_mono_ms();
        if (s->outage) {
            if (now >= s->retry_at_ms)
                flush(s);
            else
                poll_blocked(s, (int)(s->retry_at_ms - now < POLL_MS ? s->retry_at_ms - now : POLL_MS));
        } else {
            int timeout = POLL_MS;
            if (s->first_pending_ms) {
                /* Wake at the age limit, or when a caught-up load may start (the minimum interval is over). */
                int64_t due = s->first_pending_ms + s->flush_ms;
                int64_t wait = caught_up_wait_ms(s);
                if (s->last_load_ms + wait < due && caught_up(s))
                    due = s->last_load_ms + wait;
                int64_t left = due - now;
                timeout = left <= 0 ? 0 : left < POLL_MS ? (int)left : POLL_MS;
            }
            rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, timeout);
            if (m)
                handle_message(s, m);
            if (!s->outage && !s->fatal && s->first_pending_ms) {
                int64_t t = tp_mono_ms();
                if (t - s->first_pending_ms >= s->flush_ms) {
                    flush(s);
                } else if (t - s->last_load_ms >= caught_up_wait_ms(s) && caught_up(s)) {
                    if (flush(s) == TP_OK)
                        atomic_fetch_add(&s->loads_caught_up, 1);
                }
            }
        }
        rd_kafka_poll(s->dlq, 0);
        if (tp_mono_ms() >= next_lag) {
            publish_lag(s);
            next_lag = tp_mono_ms() + 1000;
        }
        if (s->progress && s->progress_ms > 0 && tp_mono_ms() >= next_progress) {
            publish_lag(s);
            tp_sink_stats st;
            tp_sink_stats_get(s, &st);
            s->progress(s->progress_ctx, &st);
            next_progress = tp_mono_ms() + s->progress_ms;
        }
    }
    /* Stop: load what is decoded (one attempt), store its offsets, close (librdkafka commits what is stored). */
    if (!s->fatal && anything_pending(s)) {
        if (s->outage)
            s->outage = 0; /* one last attempt even during an outage */
        if (flush(s) != TP_OK && !s->fatal)
            tp_log(TP_LOG_WARN, "sink", "%zu decoded rows could not be loaded before exit; they were not "
                   "acknowledged and will be read again on restart", nrows(s));
    }
    s->closing = 1;
    release_packs(s); /* what was not loaded is not acknowledged: read again on restart */
    publish_lag(s);
    kerr = rd_kafka_consumer_close(s->rk);
    if (kerr)
        tp_log(TP_LOG_WARN, "sink", "closing the consumer: %s", rd_kafka_err2str(kerr));
    rd_kafka_flush(s->dlq, 5000);
    return s->fatal;
}

void tp_sink_stop(tp_sink *s)
{
    if (s)
        atomic_store(&s->stop, 1);
}

void tp_sink_stats_get(const tp_sink *s, tp_sink_stats *o)
{
    tp_sink *m = (tp_sink *)s; /* atomics are read-only here; C11 atomic_load wants a non-const pointer */
    o->rows_loaded = atomic_load(&m->rows_loaded);
    o->packs_loaded = atomic_load(&m->packs_loaded);
    o->packs_dlq = atomic_load(&m->packs_dlq);
    o->packs_rejected = atomic_load(&m->packs_rejected);
    o->packs_dict = atomic_load(&m->packs_dict);
    o->load_splits = atomic_load(&m->load_splits);
    o->dlq_retries = atomic_load(&m->dlq_retries);
    o->bytes_consumed = atomic_load(&m->bytes_consumed);
    o->loads = atomic_load(&m->loads);
    o->loads_caught_up = atomic_load(&m->loads_caught_up);
    o->load_retries = atomic_load(&m->load_retries);
    o->rows_dropped = atomic_load(&m->rows_dropped);
    o->rebalances = atomic_load(&m->rebalances);
    o->pending_rows = atomic_load(&m->pending_rows);
    o->lag = atomic_load(&m->lag);
    o->paused = atomic_load(&m->paused);
}

int tp_sink_ready(const tp_sink *s, char *reason, size_t cap)
{
    tp_sink *m = (tp_sink *)s;
    if (!atomic_load(&m->joined)) {
        snprintf(reason, cap, "not yet assigned partitions by consumer group %s", s->group);
        return 0;
    }
    if (!atomic_load(&m->warehouse_ok)) {
        snprintf(reason, cap, "the last warehouse load failed; retrying with partitions paused");
        return 0;
    }
    return 1;
}

const char *tp_sink_last_error(const tp_sink *s)
{
    return s ? s->last_error : "";
}

void tp_sink_free(tp_sink *s)
{
    if (!s)
        return;
    release_packs(s); /* messages go back to librdkafka before its handle */
    free(s->packs);
    if (s->rk)
        rd_kafka_destroy(s->rk);
    if (s->dlq) {
        rd_kafka_flush(s->dlq, 2000);
        rd_kafka_destroy(s->dlq);
    }
    if (s->own_wh)
        tp_warehouse_close(s->wh);
    tp_kafka_stats_exporter_free(s->stats);
    tp_pack_reader_free(s->reader);
    tp_row_batch_free(s->batch);
    tp_row_batch_free(s->sub);
    tp_dyn_batch_free(s->dyn);
    tp_dyn_pack_reader_free(s->dynreader);
    free(s->dyn_part);
    free(s->dyn_off);
    free(s->dyn_mark_elems);
    free(s->writers);
    for (size_t i = 0; i < s->n_props; i++)
        free(s->props[i]);
    free(s->props);
    free(s->parts);
    free(s->offs);
    free(s->brokers);
    free(s->topic);
    free(s->group);
    free(s->dlq_topic);
    free(s);
}
