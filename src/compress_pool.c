/* Compression workers: a mutex/condvar FIFO of batches (linked through tp_batch.next) and N threads that pack and
 * compress them with their own reusable tp_pack_writer. */
#include "compress_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct tp_compress_pool {
    tp_compress_pool_opts o;
    tp_compress_done_fn done;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tp_batch *head, *tail;
    size_t pending;            /* queued + in work */
    int stopping;
    int nthreads;
    pthread_t *threads;
    tp_pack_writer **writers;
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
    if (!e) {
        size_t cap = tp_pack_writer_bound(w);
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
    }
    p->done(p->ctx, b, buf, len, &meta, e);
}

static void *worker(void *arg)
{
    void **a = arg;
    tp_compress_pool *p = a[0];
    tp_pack_writer *w = a[1];
    free(a);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        tp_batch *b = p->head;
        if (!b)
            break; /* stopping and drained */
        p->head = b->next;
        if (!p->head)
            p->tail = NULL;
        b->next = NULL;
        pthread_mutex_unlock(&p->mu);
        compress_one(p, w, b);
        pthread_mutex_lock(&p->mu);
        p->pending--;
    }
    pthread_mutex_unlock(&p->mu);
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
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = calloc((size_t)p->o.threads, sizeof *p->threads);
    p->writers = calloc((size_t)p->o.threads, sizeof *p->writers);
    tp_err e = (p->threads && p->writers) ? TP_OK : TP_ERR_NOMEM;
    for (int i = 0; !e && i < p->o.threads; i++)
        e = tp_pack_writer_new(&p->o.writer, &p->writers[i]);
    for (int i = 0; !e && i < p->o.threads; i++) {
        void **a = malloc(2 * sizeof *a);
        if (!a) {
            e = TP_ERR_NOMEM;
            break;
        }
        a[0] = p;
        a[1] = p->writers[i];
        if (pthread_create(&p->threads[i], NULL, worker, a) != 0) {
            free(a);
            e = TP_ERR_NOMEM;
            break;
        }
        p->nthreads++;
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
    b->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = b;
    else
        p->head = b;
    p->tail = b;
    p->pending++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

size_t tp_compress_pool_pending(tp_compress_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->pending;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void tp_compress_pool_free(tp_compress_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    for (int i = 0; p->writers && i < p->o.threads; i++)
        tp_pack_writer_free(p->writers[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p->writers);
    free(p);
}
