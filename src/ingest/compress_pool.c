/* Compression workers: N threads, each with its own mutex/condvar FIFO of batches (linked through tp_batch.next)
 * and its own reusable tp_pack_writer. A vehicle's batches always go to the same worker (hash of the vehicle id),
 * so they reach the producer, and so Kafka, in the order they were flushed. */
#include "ingest/compress_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct worker_q {
    struct tp_compress_pool *p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tp_batch *head, *tail;
    size_t pending;            /* queued + in work */
    int stopping;
    pthread_t thread;
    int started;
    tp_pack_writer *writer;
} worker_q;

struct tp_compress_pool {
    tp_compress_pool_opts o;
    tp_compress_done_fn done;
    void *ctx;
    worker_q *q;
};

void tp_compress_pool_opts_init(tp_compress_pool_opts *o)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = n > 0 ? (int)n : 1;
    tp_pack_writer_opts_init(&o->writer);
}

static void compress_one(tp_compress_pool *p, tp_pack_writer *w, tp_batch *b)
{
    tp_pack_writer_reset(w);
    tp_err e = TP_OK;
    for (uint32_t i = 0; i < b->count && !e; i++)
        e = tp_pack_writer_add(w, &b->records[i]);
    uint8_t *buf = NULL;
    size_t len = 0;
    tp_pack_meta meta = {0};
    size_t cap = 0;
    if (!e) {
        cap = tp_pack_writer_bound(w);
        buf = malloc(cap);
        if (!buf)
            e = TP_ERR_NOMEM;
        else
            e = tp_pack_writer_finish(w, buf, cap, &len, &meta);
    }
    if (e) {
        free(buf);
        buf = NULL;
        tp_pack_writer_reset(w);
    } else if (len > 0 && len < cap / 2) {
        uint8_t *small = realloc(buf, len); /* the pack waits in librdkafka: keep its size, not the bound's */
        if (small)
            buf = small;
    }
    p->done(p->ctx, b, buf, len, &meta, e);
}

static void *worker(void *arg)
{
    worker_q *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        tp_batch *b = q->head;
        if (!b)
            break; /* stopping and drained */
        q->head = b->next;
        if (!q->head)
            q->tail = NULL;
        b->next = NULL;
        pthread_mutex_unlock(&q->mu);
        compress_one(q->p, q->writer, b);
        pthread_mutex_lock(&q->mu);
        q->pending--;
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

tp_err tp_compress_pool_new(const tp_compress_pool_opts *opts, tp_compress_done_fn done, void *ctx,
                            tp_compress_pool **out)
{
    if (!done || !out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_compress_pool *p = calloc(1, sizeof *p);
    if (!p)
        return TP_ERR_NOMEM;
    if (opts)
        p->o = *opts;
    else
        tp_compress_pool_opts_init(&p->o);
    if (p->o.threads <= 0)
        p->o.threads = 1;
    p->done = done;
    p->ctx = ctx;
    p->q = calloc((size_t)p->o.threads, sizeof *p->q);
    if (!p->q) {
        free(p);
        return TP_ERR_NOMEM;
    }
    tp_err e = TP_OK;
    for (int i = 0; i < p->o.threads; i++) {
        worker_q *q = &p->q[i];
        q->p = p;
        pthread_mutex_init(&q->mu, NULL);
        pthread_cond_init(&q->cv, NULL);
        if (!e)
            e = tp_pack_writer_new(&p->o.writer, &q->writer);
        if (!e) {
            if (pthread_create(&q->thread, NULL, worker, q) != 0)
                e = TP_ERR_NOMEM;
            else
                q->started = 1;
        }
    }
    if (e) {
        tp_compress_pool_free(p);
        return e;
    }
    *out = p;
    return TP_OK;
}

void tp_compress_pool_submit(tp_compress_pool *p, tp_batch *b)
{
    uint64_t h = b->vehicle_id * 0x9e3779b97f4a7c15ULL;
    worker_q *q = &p->q[(h >> 32) % (uint64_t)p->o.threads];
    b->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->pending++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

size_t tp_compress_pool_pending(tp_compress_pool *p)
{
    size_t n = 0;
    for (int i = 0; i < p->o.threads; i++) {
        pthread_mutex_lock(&p->q[i].mu);
        n += p->q[i].pending;
        pthread_mutex_unlock(&p->q[i].mu);
    }
    return n;
}

void tp_compress_pool_free(tp_compress_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->o.threads; i++) {
        worker_q *q = &p->q[i];
        pthread_mutex_lock(&q->mu);
        q->stopping = 1;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
    }
    for (int i = 0; i < p->o.threads; i++) {
        worker_q *q = &p->q[i];
        if (q->started)
            pthread_join(q->thread, NULL);
        tp_pack_writer_free(q->writer);
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
    }
    free(p->q);
    free(p);
}
