/* The ingest worker of a run-time schema: a grouper (schema/dynpack.h) behind one lock, packs compressed and sent on
 * the thread that fills or flushes a group, a linger thread packing groups older than linger_ms, and tickets that
 * count each submitter's records as their packs' delivery reports come in. Each open group carries the tickets of
 * its records (tp_dyn_group.user); a pack takes them over as its delivery opaque. Locks: `mu` (grouper, sending)
 * before `tmu` (tickets); delivery reports take only `tmu`, so a report served on a sending thread cannot deadlock. */
#include "ingest/dyn_ingest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "common/clock.h"
#include "common/log.h"
#include "kafka/kafka_stats.h"
#include "kafka/producer.h"
#include "kafka/schema_headers.h"
#include "schema/dynpack.h"
#include "telepack/pack.h"
#include "telepack/varint.h"

struct tp_dyn_ticket {
    uint64_t records, durable;
    int failed;
    int refs; /* the submitter's + one per tref naming it */
};

typedef struct tref {
    tp_dyn_ticket *t; /* a submitter's records, or NULL: a gateway's, by tag */
    uint32_t n;
    tp_batch_tag tag;
} tref;

/* What an open group carries besides its records (tp_dyn_group.user). */
typedef struct gside {
    int64_t first_ms;
    size_t bytes; /* record bytes */
    tref *refs;
    size_t n, cap;
} gside;

/* One pack on its way: the delivery report's opaque. */
typedef struct packctx {
    tp_dyn_ingest *d;
    tref *refs;
    size_t n;
    uint32_t records;
    size_t bytes, pack_bytes;
    int64_t sent_us; /* tp_mono_us at produce */
} packctx;

/* A pack built under `mu`, sent after. */
typedef struct outpack {
    packctx *ctx;
    uint8_t *pack;
    size_t len;
    rd_kafka_headers_t *h;
    char key[TP_DYN_KEY_MAX + 1];
    size_t key_len;
} outpack;

struct tp_dyn_ingest {
    tp_dyn_ingest_opts o;
    tp_producer *p;
    tp_dyn_grouper *g;
    tp_dyn_colwriter *cw; /* opts.columns */
    ZSTD_CCtx *cctx;
    pthread_mutex_t mu, tmu;
    pthread_cond_t cv; /* tickets progressed (with tmu) */
    pthread_t linger;
    int linger_started;
    atomic_int stopping;
    atomic_size_t buffered;
    size_t open_bytes;  /* record bytes in open groups (with mu) */
    atomic_int failed;
    char why[1024]; /* with tmu */
    tp_batch_tag *done; /* gateway records delivered, for tp_dyn_ingest_drain (with tmu) */
    size_t ndone, done_cap;
    void (*notify)(void *ctx);
    void *notify_ctx;
    _Atomic uint64_t records_in, bytes_in, packs_out, records_out, pack_bytes_out, delivery_failures;
    _Atomic uint64_t in_flight, open_groups;
    tp_kafka_stats_exporter *kstats; /* with opts.kafka_metrics */
    atomic_int brokers_up;           /* brokers UP in the last statistics (1 after a delivery); -1 = none yet */
};

void tp_dyn_ingest_opts_init(tp_dyn_ingest_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch_records = 200;
    o->linger_ms = 500;
    o->max_record_bytes = 65536;
    o->max_buffered_bytes = 256u << 20;
    o->level = 3;
    o->columns = 1;
}

/* ---- tickets ---- */

static void ticket_put_locked(tp_dyn_ticket *t)
{
    if (--t->refs == 0)
        free(t);
}

/* Settles a pack's trefs (with tmu held). */
static void settle_locked(tp_dyn_ingest *d, tref *refs, size_t n, int ok)
{
    int tags = 0;
    for (size_t i = 0; i < n; i++) {
        if (!refs[i].t) { /* a gateway's: acked by the loop thread (a failure stops the worker) */
            if (!ok)
                continue;
            if (d->ndone == d->done_cap) {
                size_t nc = d->done_cap ? d->done_cap * 2 : 64;
                tp_batch_tag *q = realloc(d->done, nc * sizeof *q);
                if (!q) {
                    atomic_store(&d->failed, 1);
                    snprintf(d->why, sizeof d->why, "out of memory for the gateways' acks");
                    continue;
                }
                d->done = q;
                d->done_cap = nc;
            }
            d->done[d->ndone++] = refs[i].tag;
            tags = 1;
            continue;
        }
        if (ok)
            refs[i].t->durable += refs[i].n;
        else
            refs[i].t->failed = 1;
        ticket_put_locked(refs[i].t);
    }
    pthread_cond_broadcast(&d->cv);
    if (tags && d->notify)
        d->notify(d->notify_ctx);
}

static void fail_worker(tp_dyn_ingest *d, const char *why)
{
    pthread_mutex_lock(&d->tmu);
    if (!atomic_exchange(&d->failed, 1))
        snprintf(d->why, sizeof d->why, "%s", why);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->tmu);
}

static void on_dr(void *ctx, void *opaque, tp_err err, int retriable, const char *detail)
{
    (void)ctx;
    (void)retriable;
    packctx *pc = opaque;
    tp_dyn_ingest *d = pc->d;
    const tp_ingest_metrics *im = d->o.metrics; /* counted before the records are settled (acked, answered) */
    if (im && err == TP_OK) {
        tp_histogram_observe(im->produce_latency, (double)(tp_mono_us() - pc->sent_us) / 1e6);
        tp_histogram_observe(im->pack_bytes, (double)pc->pack_bytes);
        tp_histogram_observe(im->records_per_pack, (double)pc->records);
    } else if (im) {
        tp_counter_inc(im->delivery_errors);
    }
    if (err == TP_OK) {
        int none = 0, unknown = -1; /* a delivered pack proves a broker connection */
        if (!atomic_compare_exchange_strong(&d->brokers_up, &none, 1))
            atomic_compare_exchange_strong(&d->brokers_up, &unknown, 1);
        atomic_fetch_add(&d->packs_out, 1);
        atomic_fetch_add(&d->records_out, pc->records);
        atomic_fetch_add(&d->pack_bytes_out, pc->pack_bytes);
    } else {
        atomic_fetch_add(&d->delivery_failures, 1);
    }
    atomic_fetch_sub(&d->in_flight, 1);
    atomic_fetch_sub(&d->buffered, pc->bytes);
    pthread_mutex_lock(&d->tmu);
    settle_locked(d, pc->refs, pc->n, err == TP_OK);
    pthread_mutex_unlock(&d->tmu);
    if (err != TP_OK) {
        char m[900];
        snprintf(m, sizeof m, "a pack of %u records was not delivered: %.800s", pc->records,
                 detail ? detail : tp_strerror(err));
        tp_log(TP_LOG_ERROR, "ingest", "%s", m);
        fail_worker(d, m);
    }
    free(pc->refs);
    free(pc);
}

/* ---- packing (with mu held) ---- */

/* Builds grp's pack into *op and closes the group. TP_ERR_NOMEM, TP_ERR_COMPRESS, TP_ERR_KAFKA (headers). */
static tp_err build_pack(tp_dyn_ingest *d, tp_dyn_group *grp, outpack *op)
{
    gside *side = grp->user;
    memset(op, 0, sizeof *op);
    op->ctx = calloc(1, sizeof *op->ctx);
    if (!op->ctx)
        return TP_ERR_NOMEM;
    /* Columns where the group allows (no field unknown to the schema), else the rows that keep every byte. */
    const uint8_t *content = grp->content, *cols = NULL;
    size_t clen = grp->len, cn = 0;
    tp_err e = d->cw ? tp_dyn_colwriter_convert(d->cw, grp->content, grp->len, &cols, &cn) : TP_OK;
    if (cols) {
        content = cols;
        clen = cn;
    }
    if (!e)
        e = tp_dyn_pack_compress(d->cctx, d->o.level, TP_CODEC_ZSTD, content, clen, &op->pack, &op->len);
    tp_pack_meta meta = {.format_version = cols ? 4 : 1, .layout = cols ? TP_LAYOUT_COLUMNS : TP_LAYOUT_ROWS,
                         .codec = TP_CODEC_ZSTD, .schema_version = TP_SCHEMA_VERSION, .record_count = grp->count};
    op->h = e ? NULL : rd_kafka_headers_new(10);
    if (!e && !op->h)
        e = TP_ERR_NOMEM;
    if (!e)
        e = tp_schema_pack_headers(&meta, tp_schema_message_name(d->o.schema), tp_schema_fingerprint_hex(d->o.schema),
                                   op->h);
    if (e) {
        if (op->h)
            rd_kafka_headers_destroy(op->h);
        free(op->pack);
        free(op->ctx);
        memset(op, 0, sizeof *op);
        return e;
    }
    op->ctx->d = d;
    op->ctx->refs = side->refs;
    op->ctx->n = side->n;
    op->ctx->records = grp->count;
    op->ctx->bytes = side->bytes;
    op->ctx->pack_bytes = op->len;
    memcpy(op->key, grp->key, grp->key_len + 1);
    op->key_len = grp->key_len;
    side->refs = NULL;
    side->n = side->cap = 0;
    d->open_bytes -= side->bytes;
    side->bytes = 0;
    atomic_fetch_sub(&d->open_groups, 1);
    tp_dyn_grouper_release(d->g, grp);
    return TP_OK;
}

/* Sends a built pack (without mu: a delivery report may run on this thread). */
static void send_pack(tp_dyn_ingest *d, outpack *op)
{
    char err[512];
    atomic_fetch_add(&d->in_flight, 1);
    op->ctx->sent_us = tp_mono_us();
    if (tp_producer_send_keyed(d->p, op->key, op->key_len, op->pack, op->len, op->h, op->ctx, err, sizeof err) ==
        TP_OK)
        return;
    atomic_fetch_sub(&d->in_flight, 1);
    rd_kafka_headers_destroy(op->h);
    free(op->pack);
    char m[900];
    snprintf(m, sizeof m, "the pack of key %s could not be produced: %s", op->key, err);
    tp_log(TP_LOG_ERROR, "ingest", "%s", m);
    pthread_mutex_lock(&d->tmu);
    settle_locked(d, op->ctx->refs, op->ctx->n, 0);
    pthread_mutex_unlock(&d->tmu);
    atomic_fetch_sub(&d->buffered, op->ctx->bytes);
    fail_worker(d, m);
    free(op->ctx->refs);
    free(op->ctx);
}

/* Packs groups into out[] (room for cap): those that are due (full, older than linger, or the oldest while above
 * the byte cap; every one with `all`). Returns how many. */
typedef struct due {
    outpack *out;
    size_t n, cap;
} due;

/* Why a group is packed (telepack_ingest_flushes_total{reason}). */
enum { WHY_RECORDS, WHY_BYTES, WHY_LINGER, WHY_SHUTDOWN, WHY_GATEWAY };

static tp_err queue_group(tp_dyn_ingest *d, tp_dyn_group *grp, due *q, int why)
{
    const tp_ingest_metrics *m = d->o.metrics;
    if (m)
        tp_counter_inc(why == WHY_RECORDS ? m->flush_records : why == WHY_BYTES ? m->flush_bytes
                       : why == WHY_LINGER ? m->flush_linger : why == WHY_SHUTDOWN ? m->flush_shutdown
                       : m->flush_gateway);
    if (q->n == q->cap) {
        size_t nc = q->cap ? q->cap * 2 : 8;
        outpack *p = realloc(q->out, nc * sizeof *p);
        if (!p)
            return TP_ERR_NOMEM;
        q->out = p;
        q->cap = nc;
    }
    tp_err e = build_pack(d, grp, &q->out[q->n]);
    if (!e)
        q->n++;
    return e;
}

static void send_due(tp_dyn_ingest *d, due *q)
{
    for (size_t i = 0; i < q->n; i++)
        send_pack(d, &q->out[i]);
    free(q->out);
    q->out = NULL;
    q->n = q->cap = 0;
}

/* With mu: packs the groups older than linger (all: every open one), and the oldest while the open groups hold
 * more than half the byte cap (packs in flight are not packed again: only waited for). */
static tp_err collect_due(tp_dyn_ingest *d, bool all, due *q)
{
    int64_t now = tp_mono_ms();
    tp_dyn_group *grp;
    tp_err e = TP_OK;
    while (!e && (grp = tp_dyn_grouper_oldest(d->g))) {
        gside *side = grp->user;
        bool over = d->open_bytes > d->o.max_buffered_bytes / 2 && side->bytes > 0;
        if (!all && !over && side->first_ms + d->o.linger_ms > now)
            break;
        e = queue_group(d, grp, q, all ? WHY_SHUTDOWN : over ? WHY_BYTES : WHY_LINGER);
    }
    return e;
}

static void *linger_main(void *arg)
{
    tp_dyn_ingest *d = arg;
    int step = d->o.linger_ms / 4 > 50 ? 50 : d->o.linger_ms / 4 > 1 ? d->o.linger_ms / 4 : 1;
    while (!atomic_load(&d->stopping)) {
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        due q = {0};
        pthread_mutex_lock(&d->mu);
        tp_err e = collect_due(d, false, &q);
        pthread_mutex_unlock(&d->mu);
        send_due(d, &q);
        if (e)
            fail_worker(d, "out of memory while packing");
    }
    return NULL;
}

/* Producer's poll thread: one librdkafka statistics document -> telepack_kafka_* metrics and the broker count. */
static void on_stats(void *ctx, const char *json, size_t len)
{
    tp_dyn_ingest *d = ctx;
    tp_kafka_stats ks = {0};
    if (tp_kafka_stats_parse(json, len, &ks) != TP_OK)
        return;
    int up = 0;
    for (size_t i = 0; i < ks.n_brokers; i++)
        up += ks.brokers[i].nodeid >= 0 && ks.brokers[i].up;
    atomic_store(&d->brokers_up, up);
    tp_kafka_stats_exporter_apply(d->kstats, &ks);
    tp_kafka_stats_clear(&ks);
}

/* ---- the API ---- */

tp_err tp_dyn_ingest_new(const tp_dyn_ingest_opts *o, tp_dyn_ingest **out, char *err, size_t errlen)
{
    if (!o || !out || !o->schema || !o->topic || o->batch_records == 0 || o->linger_ms <= 0 ||
        o->max_record_bytes == 0) {
        snprintf(err, errlen, "the custom-schema ingest needs a schema, a topic, and batch, linger and record limits "
                 "above 0");
        return TP_ERR_INVALID_ARG;
    }
    *out = NULL;
    tp_dyn_ingest *d = calloc(1, sizeof *d);
    if (!d)
        return TP_ERR_NOMEM;
    d->o = *o;
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->tmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_store(&d->brokers_up, -1);
    tp_producer_opts po = {.brokers = o->brokers, .topic = o->topic, .kafka_conf = o->kafka_conf,
                           .nkafka_conf = o->nkafka_conf};
    tp_err e = TP_OK;
    if (o->kafka_metrics) {
        if ((e = tp_kafka_stats_exporter_new(o->kafka_metrics, &d->kstats)))
            snprintf(err, errlen, "cannot set up the Kafka statistics exporter: %s", tp_strerror(e));
        po.on_stats = on_stats;
    }
    if (!e)
        e = tp_producer_new(&po, on_dr, d, &d->p, err, errlen);
    if (!e && (e = tp_dyn_grouper_new(o->schema, o->batch_records, o->max_record_bytes, &d->g)))
        snprintf(err, errlen, "cannot make the grouper: %s", tp_strerror(e));
    if (!e && o->columns &&
        (e = tp_dyn_colwriter_new(o->schema, o->batch_records, o->max_record_bytes, &d->cw)))
        snprintf(err, errlen, "cannot make the column writer: %s", tp_strerror(e));
    if (!e && !(d->cctx = ZSTD_createCCtx())) {
        e = TP_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
    }
    if (!e) {
        if (pthread_create(&d->linger, NULL, linger_main, d)) {
            e = TP_ERR_NOMEM;
            snprintf(err, errlen, "cannot start the linger thread");
        } else {
            d->linger_started = 1;
        }
    }
    if (e) {
        tp_dyn_ingest_stop(d, 0, NULL);
        return e;
    }
    *out = d;
    return TP_OK;
}

/* With mu and tmu: counts one record of t (or, t NULL, of tag) in grp. */
static tp_err add_ref(tp_dyn_group *grp, tp_dyn_ticket *t, const tp_batch_tag *tag, size_t bytes)
{
    gside *side = grp->user;
    if (!side) {
        if (!(side = calloc(1, sizeof *side)))
            return TP_ERR_NOMEM;
        grp->user = side;
    }
    tref *last = side->n ? &side->refs[side->n - 1] : NULL;
    if (last && last->t == t && (t || (last->tag.source == tag->source && last->tag.generation == tag->generation &&
                                       last->tag.block == tag->block))) {
        last->n++;
        if (!t)
            last->tag.count++;
    } else {
        if (side->n == side->cap) {
            size_t nc = side->cap ? side->cap * 2 : 4;
            tref *r = realloc(side->refs, nc * sizeof *r);
            if (!r)
                return TP_ERR_NOMEM;
            side->refs = r;
            side->cap = nc;
        }
        tref r = {t, 1, {0, 0, 0, 0}};
        if (t) {
            t->refs++;
        } else {
            r.tag = *tag;
            r.tag.count = 1;
        }
        side->refs[side->n++] = r;
    }
    if (grp->count == 1)
        side->first_ms = tp_mono_ms();
    side->bytes += bytes;
    return TP_OK;
}

/* With mu: adds one record (of ticket t, or of tag) to its group, queueing the group when full. */
static tp_err add_one(tp_dyn_ingest *d, const uint8_t *msg, size_t n, tp_dyn_ticket *t, const tp_batch_tag *tag,
                      due *q, char *err, size_t errlen)
{
    tp_dyn_group *full = NULL;
    tp_err e = tp_dyn_grouper_add(d->g, msg, n, &full);
    if (e) {
        snprintf(err, errlen, "%s", tp_dyn_grouper_error(d->g));
        return e;
    }
    tp_dyn_group *grp = tp_dyn_grouper_last(d->g);
    pthread_mutex_lock(&d->tmu);
    e = grp ? add_ref(grp, t, tag, n) : TP_ERR_NOMEM;
    pthread_mutex_unlock(&d->tmu);
    if (e) {
        snprintf(err, errlen, "out of memory");
        return e; /* the record is in its group without a ref: the worker fails below */
    }
    atomic_fetch_add(&d->buffered, n);
    d->open_bytes += n;
    atomic_fetch_add(&d->records_in, 1);
    atomic_fetch_add(&d->bytes_in, n);
    if (grp->count == 1)
        atomic_fetch_add(&d->open_groups, 1);
    return full ? queue_group(d, full, q, WHY_RECORDS) : TP_OK;
}

tp_err tp_dyn_ingest_submit(tp_dyn_ingest *d, const uint8_t *frames, size_t len, uint64_t count,
                            tp_dyn_ticket **ticket, char *err, size_t errlen)
{
    *ticket = NULL;
    if (atomic_load(&d->failed) || atomic_load(&d->stopping)) {
        snprintf(err, errlen, "the ingest worker %s", atomic_load(&d->failed) ? "failed" : "is stopping");
        return TP_ERR_KAFKA;
    }
    tp_dyn_ticket *t = calloc(1, sizeof *t);
    if (!t)
        return TP_ERR_NOMEM;
    t->refs = 1;
    t->records = count;
    tp_err e = TP_OK;
    due q = {0};
    size_t pos = 0;
    uint64_t taken = 0;
    char why[600];
    pthread_mutex_lock(&d->mu);
    while (!e && pos < len) {
        uint64_t n;
        size_t used;
        if (tp_varint_decode(frames + pos, len - pos, &n, &used) || n > len - pos - used) {
            e = TP_ERR_DECODE;
            snprintf(err, errlen, "record %llu: its frame is cut short", (unsigned long long)taken);
            break;
        }
        if ((e = add_one(d, frames + pos + used, (size_t)n, t, NULL, &q, why, sizeof why))) {
            snprintf(err, errlen, "record %llu: %s", (unsigned long long)taken, why);
            break;
        }
        pos += used + (size_t)n;
        taken++;
    }
    if (!e)
        e = collect_due(d, false, &q);
    pthread_mutex_unlock(&d->mu);
    send_due(d, &q);
    if (e == TP_ERR_NOMEM)
        fail_worker(d, "out of memory while grouping");
    if (e && taken < count) {
        pthread_mutex_lock(&d->tmu);
        t->records = taken; /* what the ticket covers */
        pthread_mutex_unlock(&d->tmu);
    }
    *ticket = t;
    return e;
}

tp_err tp_dyn_ingest_take(tp_dyn_ingest *d, const uint8_t *msg, size_t len, const tp_batch_tag *tag, char *err,
                          size_t errlen)
{
    if (atomic_load(&d->failed) || atomic_load(&d->stopping)) {
        snprintf(err, errlen, "the ingest worker %s", atomic_load(&d->failed) ? "failed" : "is stopping");
        return TP_ERR_KAFKA;
    }
    if (atomic_load(&d->buffered) >= d->o.max_buffered_bytes)
        return TP_ERR_AGAIN;
    due q = {0};
    pthread_mutex_lock(&d->mu);
    tp_err e = add_one(d, msg, len, NULL, tag, &q, err, errlen);
    if (!e)
        e = collect_due(d, false, &q);
    pthread_mutex_unlock(&d->mu);
    send_due(d, &q);
    if (e == TP_ERR_NOMEM)
        fail_worker(d, "out of memory while grouping");
    return e;
}

void tp_dyn_ingest_flush(tp_dyn_ingest *d)
{
    due q = {0};
    pthread_mutex_lock(&d->mu);
    tp_err e = collect_due(d, true, &q);
    pthread_mutex_unlock(&d->mu);
    send_due(d, &q);
    if (e)
        fail_worker(d, "out of memory while packing");
}

typedef struct flush_ctx {
    tp_dyn_ingest *d;
    uint32_t source, generation;
    due *q;
    tp_err e;
} flush_ctx;

static void flush_if_source(void *ctx, tp_dyn_group *grp)
{
    flush_ctx *f = ctx;
    gside *side = grp->user;
    if (f->e || !grp->count || !side)
        return;
    for (size_t i = 0; i < side->n; i++)
        if (!side->refs[i].t && side->refs[i].tag.source == f->source &&
            side->refs[i].tag.generation == f->generation) {
            f->e = queue_group(f->d, grp, f->q, WHY_GATEWAY);
            return;
        }
}

void tp_dyn_ingest_flush_source(tp_dyn_ingest *d, uint32_t source, uint32_t generation)
{
    due q = {0};
    flush_ctx f = {d, source, generation, &q, TP_OK};
    pthread_mutex_lock(&d->mu);
    tp_dyn_grouper_each(d->g, flush_if_source, &f);
    pthread_mutex_unlock(&d->mu);
    send_due(d, &q);
    if (f.e)
        fail_worker(d, "out of memory while packing");
}

void tp_dyn_ingest_set_notify(tp_dyn_ingest *d, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&d->tmu);
    d->notify = fn;
    d->notify_ctx = ctx;
    pthread_mutex_unlock(&d->tmu);
}

size_t tp_dyn_ingest_drain(tp_dyn_ingest *d, tp_batch_tag *out, size_t cap)
{
    pthread_mutex_lock(&d->tmu);
    size_t n = d->ndone < cap ? d->ndone : cap;
    if (n) { /* d->done is NULL until the first delivery: no memcpy from NULL, even of 0 bytes */
        memcpy(out, d->done, n * sizeof *out);
        memmove(d->done, d->done + n, (d->ndone - n) * sizeof *out);
        d->ndone -= n;
    }
    pthread_mutex_unlock(&d->tmu);
    return n;
}

int tp_dyn_ingest_wait(tp_dyn_ingest *d, tp_dyn_ticket *t, int timeout_ms, uint64_t *durable)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    int rc = 1;
    pthread_mutex_lock(&d->tmu);
    for (;;) {
        if (t->durable >= t->records) {
            rc = 0;
            break;
        }
        if (t->failed || atomic_load(&d->failed)) {
            rc = 2;
            break;
        }
        if (pthread_cond_timedwait(&d->cv, &d->tmu, &dl))
            break;
    }
    *durable = t->durable;
    pthread_mutex_unlock(&d->tmu);
    return rc;
}

void tp_dyn_ticket_release(tp_dyn_ingest *d, tp_dyn_ticket *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&d->tmu);
    ticket_put_locked(t);
    pthread_mutex_unlock(&d->tmu);
}

size_t tp_dyn_ingest_buffered(tp_dyn_ingest *d)
{
    return atomic_load(&d->buffered);
}

int tp_dyn_ingest_failed(tp_dyn_ingest *d, char *buf, size_t len)
{
    if (!atomic_load(&d->failed)) {
        char why[512];
        if (d->p && tp_producer_fatal(d->p, why, sizeof why)) {
            fail_worker(d, why);
        } else {
            return 0;
        }
    }
    pthread_mutex_lock(&d->tmu);
    snprintf(buf, len, "%s", d->why);
    pthread_mutex_unlock(&d->tmu);
    return 1;
}

void tp_dyn_ingest_stats_get(tp_dyn_ingest *d, tp_dyn_ingest_stats *st)
{
    st->records_in = atomic_load(&d->records_in);
    st->bytes_in = atomic_load(&d->bytes_in);
    st->in_flight = atomic_load(&d->in_flight);
    st->open_groups = atomic_load(&d->open_groups);
    st->packs_out = atomic_load(&d->packs_out);
    st->records_out = atomic_load(&d->records_out);
    st->pack_bytes_out = atomic_load(&d->pack_bytes_out);
    st->delivery_failures = atomic_load(&d->delivery_failures);
}

int tp_dyn_ingest_ready(tp_dyn_ingest *d, char *reason, size_t cap)
{
    char why[1024];
    if (tp_dyn_ingest_failed(d, why, sizeof why)) {
        snprintf(reason, cap, "ingest failed: %s", why);
        return 0;
    }
    if (atomic_load(&d->stopping)) {
        snprintf(reason, cap, "shutting down");
        return 0;
    }
    int up = atomic_load(&d->brokers_up);
    if (d->kstats && up <= 0) {
        snprintf(reason, cap, "%s", up < 0 ? "kafka: no broker connection yet (the producer's statistics report it)"
                                           : "kafka: no broker connected");
        return 0;
    }
    if (atomic_load(&d->buffered) >= d->o.max_buffered_bytes) {
        snprintf(reason, cap, "memory cap reached: %zu bytes not yet in Kafka (--max-buffered-bytes %zu); gateways "
                 "are held back", atomic_load(&d->buffered), d->o.max_buffered_bytes);
        return 0;
    }
    return 1;
}

int tp_dyn_event_time_out(const tp_dyn_batch *b, size_t row, int64_t now_ms, int64_t skew_ms, char *why, size_t cap)
{
    const tp_schema_roles *r = tp_schema_get_roles(b->schema);
    if (skew_ms < 0 || r->time < 0 || row >= b->count)
        return 0;
    const tp_dyn_column *c = &b->columns[r->time];
    if (c->def->kind == TP_COL_TIMESTAMP_NS && !c->present[row])
        return 0; /* no time: nothing to check (as the sink) */
    const char *name = tp_schema_column_at(b->schema, (size_t)r->time)->name;
    int64_t ns;
    if (!tp_dyn_time_ns(b, row, &ns)) { /* beyond int64 nanoseconds: centuries away */
        snprintf(why, cap, "%s is beyond what int64 nanoseconds since the epoch hold, more than %lld days from now",
                 name, (long long)(skew_ms / 86400000));
        return 1;
    }
    int64_t ms = ns / 1000000;
    if (ms >= now_ms - skew_ms && ms <= now_ms + skew_ms)
        return 0;
    snprintf(why, cap, "%s is %lld ms since the epoch, more than %lld days %s now", name, (long long)ms,
             (long long)(skew_ms / 86400000), ms > now_ms ? "after" : "before");
    return 1;
}

/* A group's side at the end: records never packed (after a failure) fail their tickets. */
static void free_side(void *ctx, tp_dyn_group *grp)
{
    tp_dyn_ingest *d = ctx;
    gside *side = grp->user;
    if (!side)
        return;
    pthread_mutex_lock(&d->tmu);
    settle_locked(d, side->refs, side->n, 0);
    pthread_mutex_unlock(&d->tmu);
    free(side->refs);
    free(side);
    grp->user = NULL;
}

tp_err tp_dyn_ingest_stop(tp_dyn_ingest *d, int timeout_ms, tp_dyn_ingest_stats *final)
{
    if (!d)
        return TP_OK;
    atomic_store(&d->stopping, 1);
    if (d->linger_started)
        pthread_join(d->linger, NULL);
    tp_err rc = TP_OK;
    if (d->g && d->p) {
        due q = {0};
        pthread_mutex_lock(&d->mu);
        if (collect_due(d, true, &q))
            rc = TP_ERR_NOMEM;
        pthread_mutex_unlock(&d->mu);
        send_due(d, &q);
    }
    if (d->p) {
        if (tp_producer_flush(d->p, timeout_ms) != TP_OK) {
            tp_producer_purge(d->p);
            rc = TP_ERR_AGAIN;
        }
        tp_producer_free(d->p); /* serves the remaining reports */
    }
    tp_kafka_stats_exporter_free(d->kstats); /* after the producer: its statistics callback uses it */
    if (!rc && atomic_load(&d->failed))
        rc = TP_ERR_KAFKA;
    if (final)
        tp_dyn_ingest_stats_get(d, final);
    if (d->g) {
        for (tp_dyn_group *grp; (grp = tp_dyn_grouper_oldest(d->g));) /* only after a failure to pack */
            tp_dyn_grouper_release(d->g, grp);
        tp_dyn_grouper_each(d->g, free_side, d);
    }
    tp_dyn_grouper_free(d->g);
    tp_dyn_colwriter_free(d->cw);
    ZSTD_freeCCtx(d->cctx);
    free(d->done);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->tmu);
    pthread_cond_destroy(&d->cv);
    free(d);
    return rc;
}
