/* Batcher: flush on record count, on bytes and on linger; flush-all; the buffered-bytes cap answering AGAIN;
 * tag coalescing; many vehicles (hash map growth and deletion) keep every record exactly once, in order. */
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
    o.max_buffered_bytes = 100;
    o.max_records = 2;
    tp_batcher *b;
    CHECK_ERR(tp_batcher_new(&o, &b), TP_OK);
    tp_batch *l[8];
    tp_record r = rec(1, 0), s = rec(2, 0);
    CHECK_ERR(tp_batcher_add(b, &r, 40, NULL, 0), TP_OK);
    CHECK_ERR(tp_batcher_add(b, &r, 40, NULL, 0), TP_OK); /* full: ready, still counted */
    CHECK_ERR(tp_batcher_add(b, &s, 30, NULL, 0), TP_ERR_AGAIN);
    CHECK_ERR(tp_batcher_add(b, &s, 20, NULL, 0), TP_OK);
    CHECK_ERR(tp_batcher_add(b, &s, 1, NULL, 0), TP_ERR_AGAIN);
    tp_batcher_stats st;
    tp_batcher_stats_get(b, &st);
    CHECK_INT(st.buffered_bytes, 100);
    CHECK_INT(count_ready(b, l, 8), 1);
    CHECK_INT(l[0]->count, 2);
    tp_batcher_release(b, l[0]); /* draining makes room */
    CHECK_ERR(tp_batcher_add(b, &s, 30, NULL, 0), TP_OK);
    CHECK_INT(count_ready(b, l, 8), 1);
    tp_batcher_release(b, l[0]);
    /* with nothing buffered a record larger than the cap is still accepted (no deadlock) */
    CHECK_ERR(tp_batcher_add(b, &r, 1000, NULL, 0), TP_OK);
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

int main(void)
{
    test_invalid();
    test_flush_on_records();
    test_flush_on_bytes();
    test_linger();
    test_cap();
    test_tags();
    test_many_vehicles();
    return check_exit();
}
