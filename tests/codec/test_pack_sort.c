/* The multi-vehicle pack writer's order (format version 3): whatever the arrival order, the records come out as a
 * stable sort by (vehicle_id, sampled_at_ms) would put them, checked against a reference sort on many random
 * packs through one reused writer (large packs then small ones, vehicles whose ids collide in a hash, vehicles
 * whose records arrive out of time order, equal times). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codec/colpack.h"
#include "telepack/pack.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static const tp_record *ref_base;

static int ref_cmp(const void *a, const void *b) /* (vehicle, time, arrival): a stable sort's order */
{
    const tp_record *x = &ref_base[*(const uint32_t *)a], *y = &ref_base[*(const uint32_t *)b];
    if (x->vehicle_id != y->vehicle_id)
        return x->vehicle_id < y->vehicle_id ? -1 : 1;
    if (x->sampled_at_ms != y->sampled_at_ms)
        return x->sampled_at_ms < y->sampled_at_ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One pack of n records of nv vehicles: ids by `ids` (0 sequential, 1 multiples of 2^32: equal low bits, 2
 * random), time-major ticks; disorder = chance in 1000 that a record's time goes back. Returns mismatches. */
static int one_pack(tp_pack_writer *w, tp_record *in, uint32_t *ref, tp_record *out, uint32_t n, uint32_t nv,
                    int ids, int disorder)
{
    uint64_t vid[1024];
    for (uint32_t v = 0; v < nv; v++)
        vid[v] = ids == 0 ? 10001 + v : ids == 1 ? ((uint64_t)(v + 1) << 32) : next_rand() >> 1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)(next_rand() % 1000) < 900 ? i % nv : (uint32_t)(next_rand() % nv);
        int64_t t = 1767225600000 + 1000 * (int64_t)(i / nv);
        if ((int)(next_rand() % 1000) < disorder)
            t -= (int64_t)(next_rand() % 5000);
        if (next_rand() % 10 == 0)
            t = 1767225600000; /* equal times: arrival order decides */
        memset(&in[i], 0, sizeof in[i]);
        in[i].vehicle_id = vid[v];
        in[i].sampled_at_ms = t;
        in[i].seq = i + 1; /* arrival order, to tell equal keys apart */
        in[i].latitude = 35.6 + (double)(next_rand() % 1000) * 1e-6;
        in[i].meter_status = (int32_t)(next_rand() % 4);
        CHECK_ERR(tp_pack_writer_add(w, &in[i]), TP_OK);
        ref[i] = i;
    }
    ref_base = in;
    qsort(ref, n, sizeof *ref, ref_cmp);
    size_t cap = tp_pack_writer_bound(w), len = 0;
    uint8_t *buf = malloc(cap);
    tp_pack_meta meta;
    CHECK_ERR(tp_pack_writer_finish(w, buf, cap, &len, &meta), TP_OK);
    tp_colpack_reader cr;
    CHECK_ERR(tp_colpack_open(&cr, buf, len, n), TP_OK);
    CHECK_ERR(tp_colpack_read_records(&cr, out, n), TP_OK);
    int bad = 0;
    for (uint32_t i = 0; i < n; i++)
        bad += memcmp(&out[i], &in[ref[i]], sizeof out[i]) != 0;
    free(buf);
    return bad;
}

int main(void)
{
    enum { MAX = 12000 };
    tp_record *in = malloc(MAX * sizeof *in), *out = malloc(MAX * sizeof *out);
    uint32_t *ref = malloc(MAX * sizeof *ref);
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    o.layout = TP_LAYOUT_COLUMNS;
    o.multi_vehicle = 1;
    o.codec = TP_CODEC_NONE;
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_OK);
    static const uint32_t sizes[] = {MAX, 2, 3, 10000, 257, 1, 4000, 600, 12000, 50};
    int bad = 0, packs = 0;
    for (int round = 0; round < 3; round++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (int ids = 0; ids < 3; ids++) {
                uint32_t n = sizes[s], nv = 1 + (uint32_t)(next_rand() % 1024);
                int disorder = round == 0 ? 0 : round == 1 ? 5 : 300;
                bad += one_pack(w, in, ref, out, n, nv > n ? n : nv, ids, disorder);
                packs++;
            }
    CHECK_INT(bad, 0);
    CHECK_INT(packs, 90);
    tp_pack_writer_free(w);
    free(in);
    free(out);
    free(ref);
    return check_exit();
}
