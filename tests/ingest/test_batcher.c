/* Batcher: flush on record count, on bytes and on linger; flush-all; the buffered-bytes cap answering AGAIN;
 * tag coalescing; many vehicles (hash map growth and deletion) keep every record exactly once, in order. */
#include <malloc.h>

#include "ingest/batcher.h"
#include "check.h"

static tp_record rec(uint64_t vid, uint64_t seq)
{
    tp_record r = {0};
    r.vehicle_id = vid;
    r.seq = seq;
    r.sampled_at_ms = 1700000000000 + (int64_t)seq;
    return r;
}

static int count_ready(tp_batcher *b, tp_batch **list, int max)
{
    int n = 0;
    tp_batch *x;
    while (tp_batcher_next_ready(b, &x) == TP_OK) {
        if (n < max)
            list[n] = x;
        n++;
    }
    return n;
}

static void test_invalid(void)
{
    tp_batcher *b = NULL;
    tp_batcher_opts o;
    tp_batcher_opts_init(&o);
    o.max_records = 0;
    CHECK_ERR(tp_batcher_new(&o, &b), TP_ERR_INVALID_ARG);
    CHECK(b == NULL);
    CHECK_ERR(tp_batcher_new(NULL, NULL), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_batcher_new(NULL, &b), TP_OK);
    CHECK_ERR(tp_batcher_add(b, NULL, 10, NULL, 0), TP_ERR_INVALID_ARG);
    tp_batcher_free(b);
}

static void test_flush_on_records(void)
{
    tp_batcher_opts o;
    tp_batcher_opts_init(&o);
    o.max_records = 3;
    tp_batcher *b;
    CHECK_ERR(tp_batcher_new(&o, &b), TP_OK);
    tp_batch *l[8];
    for (uint64_t i = 0; i < 2; i++) {
        tp_record r = rec(7, i);
        CHECK_ERR(tp_batcher_add(b, &r, 20, NULL, 0), TP_OK);
    }
    CHECK_INT(count_ready(b, l, 8), 0);
    tp_record r = rec(7, 2);
    CHECK_ERR(tp_batcher_add(b, &r, 20, NULL, 0), TP_OK);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->count, 3);
    CHECK_INT(l[0]->vehicle_id, 7);
    CHECK_INT(l[0]->bytes, 60);
    CHECK_INT(l[0]->records[2].seq, 2);
    tp_batcher_stats st;
    tp_batcher_stats_get(b, &st);
    CHECK_INT(st.buffered_bytes, 60);
    CHECK_INT(st.open_batches, 0);
    tp_batcher_release(b, l[0]);
    tp_batcher_stats_get(b, &st);
    CHECK_INT(st.buffered_bytes, 0);
    CHECK_INT(st.buffered_records, 0);
    tp_batcher_free(b);
}

static void test_flush_on_bytes(void)
{
    tp_batcher_opts o;
    tp_batcher_opts_init(&o);
    o.max_bytes = 100;
    tp_batcher *b;
    CHECK_ERR(tp_batcher_new(&o, &b), TP_OK);
    tp_batch *l[8];
    tp_record r = rec(1, 0);
    CHECK_ERR(tp_batcher_add(b, &r, 40, NULL, 0), TP_OK);
    CHECK_ERR(tp_batcher_add(b, &r, 40, NULL, 0), TP_OK);
    CHECK_INT(count_ready(b, l, 8), 0);
    /* 40 more would make 120 > 100: the open batch is flushed first and the record opens a new one */
    CHECK_ERR(tp_batcher_add(b, &r, 40, NULL, 0), TP_OK);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->count, 2);
    CHECK_INT(l[0]->bytes, 80);
    tp_batcher_release(b, l[0]);
    /* exactly reaching max_bytes flushes at once */
    CHECK_ERR(tp_batcher_add(b, &r, 60, NULL, 0), TP_OK);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->count, 2);
    CHECK_INT(l[0]->bytes, 100);
    tp_batcher_release(b, l[0]);
    /* a record larger than max_bytes still goes out, alone */
    CHECK_ERR(tp_batcher_add(b, &r, 500, NULL, 0), TP_OK);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->count, 1);
    tp_batcher_release(b, l[0]);
    tp_batcher_free(b);
}

static void test_linger(void)
{
    tp_batcher_opts o;
    tp_batcher_opts_init(&o);
    o.linger_ms = 1000;
    tp_batcher *b;
    CHECK_ERR(tp_batcher_new(&o, &b), TP_OK);
    tp_batch *l[8];
    CHECK_INT(tp_batcher_next_deadline(b, 0), -1);
    tp_record r1 = rec(1, 0), r2 = rec(2, 0);
    CHECK_ERR(tp_batcher_add(b, &r1, 10, NULL, 5000), TP_OK);
    CHECK_ERR(tp_batcher_add(b, &r2, 10, NULL, 5400), TP_OK);
    CHECK_ERR(tp_batcher_add(b, &r1, 10, NULL, 5900), TP_OK); /* appending does not restart the clock */
    CHECK_INT(tp_batcher_next_deadline(b, 5500), 500);
    tp_batcher_expire(b, 5999);
    CHECK_INT(count_ready(b, l, 8), 0);
    tp_batcher_expire(b, 6000);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->vehicle_id, 1);
    CHECK_INT(l[0]->count, 2);
    tp_batcher_release(b, l[0]);
    CHECK_INT(tp_batcher_next_deadline(b, 6000), 400);
    CHECK_INT(tp_batcher_next_deadline(b, 9000), 0);
    /* vehicle 1 opens a fresh batch with a fresh clock */
    CHECK_ERR(tp_batcher_add(b, &r1, 10, NULL, 6100), TP_OK);
    tp_batcher_expire(b, 6500);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->vehicle_id, 2);
    tp_batcher_release(b, l[0]);
    tp_batcher_flush_all(b);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->vehicle_id, 1);
    CHECK_INT(l[0]->opened_ms, 6100);
    tp_batcher_release(b, l[0]);
    CHECK_INT(tp_batcher_next_deadline(b, 7000), -1);
    tp_batcher_free(b);
}

static void test_cap(void)
{
    tp_batcher_opts o;
    tp_batcher_opts_init(&o);
    /* wire sizes large against a batch's memory (~500 B), so the wire-byte cap is the one that binds */
    o.max_buffered_bytes = 100000;
    o.max_records = 2;
    tp_batcher *b;
    CHECK_ERR(tp_batcher_new(&o, &b), TP_OK);
    tp_batch *l[8];
    tp_record r = rec(1, 0), s = rec(2, 0);
    CHECK_ERR(tp_batcher_add(b, &r, 40000, NULL, 0), TP_OK);
    CHECK_ERR(tp_batcher_add(b, &r, 40000, NULL, 0), TP_OK); /* full: ready, still counted */
    CHECK_ERR(tp_batcher_add(b, &s, 30000, NULL, 0), TP_ERR_AGAIN);
    CHECK_ERR(tp_batcher_add(b, &s, 20000, NULL, 0), TP_OK);
    CHECK_ERR(tp_batcher_add(b, &s, 1, NULL, 0), TP_ERR_AGAIN);
    tp_batcher_stats st;
    tp_batcher_stats_get(b, &st);
    CHECK_INT(st.buffered_bytes, 100000);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->count, 2);
    tp_batcher_release(b, l[0]); /* draining makes room */
    CHECK_ERR(tp_batcher_add(b, &s, 30000, NULL, 0), TP_OK);
    CHECK_INT(count_ready(b, l, 8), 1);
    tp_batcher_release(b, l[0]);
    /* with nothing buffered a record larger than the cap is still accepted (no deadlock) */
    CHECK_ERR(tp_batcher_add(b, &r, 1000000, NULL, 0), TP_OK);
    tp_batcher_free(b); /* frees the open batch too */
}

static void test_tags(void)
{
    tp_batcher *b;
    CHECK_ERR(tp_batcher_new(NULL, &b), TP_OK);
    tp_batch *l[8];
    tp_record r = rec(9, 0);
    tp_batch_tag t1 = {3, 1, 10, 99}, t2 = {3, 1, 11, 99}, t3 = {4, 1, 11, 99};
    CHECK_ERR(tp_batcher_add(b, &r, 10, &t1, 0), TP_OK);
    CHECK_ERR(tp_batcher_add(b, &r, 10, &t1, 0), TP_OK);
    CHECK_ERR(tp_batcher_add(b, &r, 10, &t2, 0), TP_OK);
    CHECK_ERR(tp_batcher_add(b, &r, 10, &t3, 0), TP_OK);
    CHECK_ERR(tp_batcher_add(b, &r, 10, &t1, 0), TP_OK);
    tp_batcher_flush_all(b);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->ntags, 4);
    CHECK_INT(l[0]->tags[0].block, 10);
    CHECK_INT(l[0]->tags[0].count, 2);
    CHECK_INT(l[0]->tags[1].count, 1);
    CHECK_INT(l[0]->tags[2].source, 4);
    CHECK_INT(l[0]->tags[3].count, 1);
    tp_batcher_release(b, l[0]);
    tp_batcher_free(b);
}

/* 5000 vehicles x 30 records interleaved, batches of 7: every record comes out once, per-vehicle order kept. */
static void test_many_vehicles(void)
{
    enum { V = 5000, N = 30 };
    tp_batcher_opts o;
    tp_batcher_opts_init(&o);
    o.max_records = 7;
    tp_batcher *b;
    CHECK_ERR(tp_batcher_new(&o, &b), TP_OK);
    static uint64_t next_seq[V];
    memset(next_seq, 0, sizeof next_seq);
    uint64_t out = 0, bad = 0;
    for (uint64_t s = 0; s < N; s++) {
        for (uint64_t v = 0; v < V; v++) {
            tp_record r = rec(v * 7919 + 1, s);
            if (tp_batcher_add(b, &r, 25, NULL, (int64_t)s) != TP_OK)
                bad++;
        }
        if (s == N - 1)
            tp_batcher_flush_all(b);
        tp_batch *x;
        while (tp_batcher_next_ready(b, &x) == TP_OK) {
            uint64_t v = (x->vehicle_id - 1) / 7919;
            for (uint32_t i = 0; i < x->count; i++) {
                if (x->records[i].vehicle_id != x->vehicle_id || x->records[i].seq != next_seq[v])
                    bad++;
                next_seq[v]++;
                out++;
            }
            tp_batcher_release(b, x);
        }
    }
    CHECK_INT(bad, 0);
    CHECK_INT(out, (uint64_t)V * N);
    tp_batcher_stats st;
    tp_batcher_stats_get(b, &st);
    CHECK_INT(st.open_batches, 0);
    CHECK_INT(st.buffered_records, 0);
    tp_batcher_free(b);
}

/* --max-open-vehicles: a new vehicle beyond the cap flushes the oldest open batch first; a known one does not. */
static void test_open_cap(void)
{
    tp_batcher_opts o;
    tp_batcher_opts_init(&o);
    o.max_open = 3;
    tp_batcher *b;
    CHECK_ERR(tp_batcher_new(&o, &b), TP_OK);
    tp_batch *l[8];
    for (uint64_t v = 1; v <= 3; v++) {
        tp_record r = rec(v, 0);
        CHECK_ERR(tp_batcher_add(b, &r, 10, NULL, (int64_t)v), TP_OK);
    }
    tp_record r = rec(2, 1);
    CHECK_ERR(tp_batcher_add(b, &r, 10, NULL, 5), TP_OK); /* vehicle 2 is open: nothing flushed */
    CHECK_INT(count_ready(b, l, 8), 0);
    r = rec(4, 0);
    CHECK_ERR(tp_batcher_add(b, &r, 10, NULL, 6), TP_OK);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->vehicle_id, 1); /* the oldest */
    tp_batcher_stats st;
    tp_batcher_stats_get(b, &st);
    CHECK_INT(st.open_batches, 3);
    CHECK_INT(st.flushed_open, 1);
    CHECK_INT(st.batches_flushed, 1);
    tp_batcher_release(b, l[0]);
    tp_batcher_flush_all(b);
    CHECK_INT(count_ready(b, l, 8), 3);
    for (int i = 0; i < 3; i++)
        tp_batcher_release(b, l[i]);
    o.max_open = 0;
    tp_batcher *bad = NULL;
    CHECK_ERR(tp_batcher_new(&o, &bad), TP_ERR_INVALID_ARG);
    tp_batcher_free(b);
}

/* Memory accounting: tiny records of distinct vehicles hit the memory cap (TP_BATCHER_MEMORY_FACTOR x the cap)
 * long before the wire-byte cap; released batches go to a pool of at most a quarter of the cap, the rest is freed;
 * the stats add up. */
static void test_memory_cap(void)
{
    tp_batcher_opts o;
    tp_batcher_opts_init(&o);
    o.max_buffered_bytes = 64 * 1024;
    tp_batcher *b;
    CHECK_ERR(tp_batcher_new(&o, &b), TP_OK);
    tp_batcher_stats st;
    tp_batcher_stats_get(b, &st);
    CHECK_INT(st.held_memory, 0);
    size_t empty = st.memory; /* the hash map alone */
    uint64_t n = 0;
    tp_err e;
    for (;;) {
        tp_record r = rec(1000 + n, 0);
        if ((e = tp_batcher_add(b, &r, 5, NULL, 0)) != TP_OK)
            break;
        n++;
    }
    CHECK_ERR(e, TP_ERR_AGAIN);
    tp_batcher_stats_get(b, &st);
    CHECK_INT(st.buffered_bytes, n * 5); /* far below the wire cap ... */
    CHECK(st.buffered_bytes < o.max_buffered_bytes / 10);
    CHECK(st.held_memory <= TP_BATCHER_MEMORY_FACTOR * o.max_buffered_bytes); /* ... the memory cap binds */
    CHECK(st.held_memory > TP_BATCHER_MEMORY_FACTOR * o.max_buffered_bytes - 1024);
    CHECK_INT(st.open_batches, n);
    CHECK(st.memory >= st.held_memory + empty);
    /* an open vehicle still takes records while its arrays have room (no memory added) */
    tp_record again = rec(1000, 1);
    CHECK_ERR(tp_batcher_add(b, &again, 5, NULL, 0), TP_OK);
    tp_batcher_flush_all(b);
    tp_batch *x;
    while (tp_batcher_next_ready(b, &x) == TP_OK)
        tp_batcher_release(b, x);
    tp_batcher_stats_get(b, &st);
    CHECK_INT(st.held_memory, 0);
    CHECK_INT(st.buffered_bytes, 0);
    CHECK(st.pooled_batches > 0);
    CHECK(st.pooled_batches < n);                                    /* most were freed ... */
    CHECK(st.pooled_memory <= o.max_buffered_bytes / 4); /* ... the pool is capped */
    CHECK(st.pooled_memory > o.max_buffered_bytes / 4 - 1024);
    CHECK(st.memory > st.pooled_memory && st.memory - st.pooled_memory <= 4 * n * sizeof(void *) + empty);
    tp_batcher_free(b);
}

static size_t malloc_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* A million distinct vehicles, one 5-byte record each, under a 16 MiB cap: the batcher's memory (its own count
 * and malloc's) stays below the documented bound, 4.25 x the cap + 32 B x --max-open-vehicles, and falls back to
 * the pool's quarter of the cap once everything is delivered. Before the accounting it reached ~1.5 GB here (each
 * vehicle an open batch of ~1.5 KB, the wire cap never reached). Deliveries are simulated: taken batches stay out
 * for a while (up to 1024 of them), backpressure waits for the linger. */
/* Updates the peaks of the batcher's own count and of malloc's bytes in use (above base); returns the latter. */
static size_t sample(const tp_batcher *b, size_t base, size_t *peak_memory, size_t *peak_malloc)
{
    tp_batcher_stats st;
    tp_batcher_stats_get(b, &st);
    size_t m = malloc_in_use() - base;
    if (st.memory > *peak_memory)
        *peak_memory = st.memory;
    if (m > *peak_malloc)
        *peak_malloc = m;
    return m;
}

static void test_million_vehicles(uint32_t max_open)
{
    const size_t cap = 16u << 20;
    tp_batcher_opts o;
    tp_batcher_opts_init(&o);
    o.max_buffered_bytes = cap;
    if (max_open)
        o.max_open = max_open;
    tp_batcher *b;
    CHECK_ERR(tp_batcher_new(&o, &b), TP_OK);
    /* the hash map: at most 4 slots of 8 B per open batch, and no more batches than the memory cap holds */
    size_t opens = TP_BATCHER_MEMORY_FACTOR * cap / sizeof(tp_batch);
    if (opens > o.max_open)
        opens = o.max_open;
    const size_t bound = cap * TP_BATCHER_MEMORY_FACTOR + cap / 4 + 32u * opens;
    size_t base = malloc_in_use(), peak_malloc = 0, peak_memory = 0;
    enum { OUT = 1024 };
    static tp_batch *out[OUT];
    size_t nout = 0, head = 0;
    uint64_t again = 0;
    int64_t now = 0;
    tp_batcher_stats st;
    for (uint64_t id = 1; id <= 1000000; id++) {
        tp_record r = {.vehicle_id = id};
        tp_err e;
        while ((e = tp_batcher_add(b, &r, 5, NULL, now)) == TP_ERR_AGAIN) {
            again++;
            sample(b, base, &peak_memory, &peak_malloc); /* the high point: the cap was reached */
            now += 100; /* paused: the linger runs out, deliveries come back */
            tp_batcher_expire(b, now);
            tp_batch *x;
            while (nout) {
                tp_batcher_release(b, out[head]);
                head = (head + 1) % OUT;
                nout--;
            }
            while (tp_batcher_next_ready(b, &x) == TP_OK)
                tp_batcher_release(b, x);
        }
        CHECK_ERR(e, TP_OK);
        if (id % 1000 == 0) {
            now += 1;
            tp_batcher_expire(b, now);
            tp_batch *x;
            while (tp_batcher_next_ready(b, &x) == TP_OK) {
                if (nout == OUT) { /* the oldest delivery completes */
                    tp_batcher_release(b, out[head]);
                    head = (head + 1) % OUT;
                    nout--;
                }
                out[(head + nout++) % OUT] = x;
            }
            /* mallinfo2 walks malloc's free lists: every 10000 records is enough between the high points */
            if (id % 10000 == 0 && sample(b, base, &peak_memory, &peak_malloc) > 2 * bound)
                break; /* stop early rather than take gigabytes when the bound does not hold */
        }
    }
    tp_batcher_stats_get(b, &st);
    fprintf(stderr,
            "1M vehicles x 5 B under a %zu MiB cap: peak batcher memory %.1f MiB (%.2fx the cap), peak malloc in use "
            "%.1f MiB (%.2fx), %llu backpressure waits, %llu flushed for open vehicles, bound %.1f MiB\n",
            cap >> 20, (double)peak_memory / 1048576.0, (double)peak_memory / (double)cap,
            (double)peak_malloc / 1048576.0, (double)peak_malloc / (double)cap, (unsigned long long)again,
            (unsigned long long)st.flushed_open, (double)bound / 1048576.0);
    CHECK(peak_memory <= bound);
    CHECK(peak_malloc <= bound + bound / 8); /* malloc's own bookkeeping beyond the headers counted */
    if (max_open) /* the memory cap binds, not the open-vehicle cap: backpressure */
        CHECK(again > 0);
    else
        CHECK_INT(st.flushed_open, 1000000 - o.max_open);
    /* everything delivered: the memory goes back */
    tp_batcher_flush_all(b);
    tp_batch *x;
    while (nout) {
        tp_batcher_release(b, out[head]);
        head = (head + 1) % OUT;
        nout--;
    }
    while (tp_batcher_next_ready(b, &x) == TP_OK)
        tp_batcher_release(b, x);
    tp_batcher_stats_get(b, &st);
    CHECK_INT(st.buffered_records, 0);
    CHECK_INT(st.held_memory, 0);
    CHECK(st.memory <= cap / 4 + 32u * opens);
    CHECK(malloc_in_use() - base <= cap / 4 + 32u * opens + cap / 16);
    tp_batcher_free(b);
}

static int source2_done;
static int done_fn(void *ctx, uint32_t source, uint32_t generation)
{
    (void)ctx;
    return source == 2 && generation == 3 ? source2_done : 0;
}

/* flush_source with `done`: only the batches whose other sources are done too; with NULL every batch holding one of
 * its records (another generation of the same slot is another source). */
static void test_flush_source(void)
{
    tp_batcher *b;
    CHECK_ERR(tp_batcher_new(NULL, &b), TP_OK);
    tp_batch_tag a = {1, 7, 0, 1}, a2 = {1, 7, 1, 1}, c = {2, 3, 0, 1}, old = {1, 6, 0, 1};
    tp_record r = rec(100, 0);
    CHECK_ERR(tp_batcher_add_keyed(b, 0, &r, 20, &a, 0), TP_OK);   /* partition 0: a only (two blocks) */
    CHECK_ERR(tp_batcher_add_keyed(b, 0, &r, 20, &a2, 0), TP_OK);
    CHECK_ERR(tp_batcher_add_keyed(b, 1, &r, 20, &a, 0), TP_OK);   /* partition 1: a and c */
    CHECK_ERR(tp_batcher_add_keyed(b, 1, &r, 20, &c, 0), TP_OK);
    CHECK_ERR(tp_batcher_add_keyed(b, 2, &r, 20, &old, 0), TP_OK); /* partition 2: slot 1 of another generation */
    CHECK_ERR(tp_batcher_add_keyed(b, 3, &r, 20, &c, 0), TP_OK);   /* partition 3: c only */
    tp_batch *l[8];
    source2_done = 0;
    CHECK_INT(tp_batcher_flush_source(b, 1, 7, done_fn, NULL), 1);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->vehicle_id, 0);
    CHECK_INT(l[0]->count, 2);
    tp_batcher_release(b, l[0]);
    CHECK_INT(tp_batcher_flush_source(b, 1, 7, done_fn, NULL), 0); /* partition 1 holds c's records, c sends */
    source2_done = 1;
    CHECK_INT(tp_batcher_flush_source(b, 1, 7, done_fn, NULL), 1); /* c is done too */
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->vehicle_id, 1);
    tp_batcher_release(b, l[0]);
    CHECK_INT(tp_batcher_flush_source(b, 2, 3, NULL, NULL), 1); /* partition 3 */
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->vehicle_id, 3);
    tp_batcher_release(b, l[0]);
    tp_batcher_stats st;
    tp_batcher_stats_get(b, &st);
    CHECK_INT(st.flushed_source, 3);
    CHECK_INT(st.batches_flushed, 3);
    CHECK_INT(st.open_batches, 1);
    CHECK_INT(tp_batcher_flush_source(b, 9, 9, NULL, NULL), 0);
    tp_batcher_free(b);
}

int main(void)
{
    test_flush_source();
    test_open_cap();
    test_memory_cap();
    test_million_vehicles(0);       /* default --max-open-vehicles (100000) binds first */
    test_million_vehicles(2000000); /* the memory cap binds */
    test_invalid();
    test_flush_on_records();
    test_flush_on_bytes();
    test_linger();
    test_cap();
    test_tags();
    test_many_vehicles();
    return check_exit();
}
