/* Column layout (pbpack v2 content): bit-exact round trips over random and adversarial values, transform choice on
 * realistic GPS data, and every malformed-input path as an error value. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codec/colpack.h"
#include "telepack/pack.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static uint64_t dbits(double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    return u;
}
static double bitsd(uint64_t u)
{
    double v;
    memcpy(&v, &u, 8);
    return v;
}
static uint32_t fbits(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}
static float bitsf(uint32_t u)
{
    float v;
    memcpy(&v, &u, 4);
    return v;
}

static bool same_record(const tp_record *a, const tp_record *b)
{
    return a->vehicle_id == b->vehicle_id && a->sampled_at_ms == b->sampled_at_ms && a->seq == b->seq &&
           dbits(a->latitude) == dbits(b->latitude) && dbits(a->longitude) == dbits(b->longitude) &&
           fbits(a->speed_kmh) == fbits(b->speed_kmh) && fbits(a->heading_deg) == fbits(b->heading_deg) &&
           fbits(a->accuracy_m) == fbits(b->accuracy_m) && a->meter_status == b->meter_status;
}

/* A row batch built by hand, so this test depends on nothing but the column module. */
static tp_row_batch *batch_new(size_t cap)
{
    tp_row_batch *b = calloc(1, sizeof *b);
    b->capacity = cap;
    b->vehicle_id = calloc(cap, 8);
    b->sampled_at_ms = calloc(cap, 8);
    b->seq = calloc(cap, 8);
    b->latitude = calloc(cap, 8);
    b->longitude = calloc(cap, 8);
    b->speed_kmh = calloc(cap, 4);
    b->heading_deg = calloc(cap, 4);
    b->accuracy_m = calloc(cap, 4);
    b->meter_status = calloc(cap, 4);
    b->kafka_partition = calloc(cap, 4);
    b->kafka_offset = calloc(cap, 8);
    return b;
}
static void batch_free(tp_row_batch *b)
{
    free(b->vehicle_id), free(b->sampled_at_ms), free(b->seq), free(b->latitude), free(b->longitude);
    free(b->speed_kmh), free(b->heading_deg), free(b->accuracy_m), free(b->meter_status);
    free(b->kafka_partition), free(b->kafka_offset), free(b);
}
static void batch_row(const tp_row_batch *b, size_t i, tp_record *r)
{
    r->vehicle_id = b->vehicle_id[i];
    r->sampled_at_ms = b->sampled_at_ms[i];
    r->seq = b->seq[i];
    r->latitude = b->latitude[i];
    r->longitude = b->longitude[i];
    r->speed_kmh = b->speed_kmh[i];
    r->heading_deg = b->heading_deg[i];
    r->accuracy_m = b->accuracy_m[i];
    r->meter_status = b->meter_status[i];
}

static tp_colpack_encoder *enc;

/* Encodes, decodes through both paths (records in uneven chunks; rows), and checks every bit. Returns the content
 * size. */
static size_t roundtrip(const tp_record *recs, size_t n)
{
    const uint8_t *content;
    size_t len = 0;
    CHECK_ERR(tp_colpack_encode(enc, recs, n, &content, &len), TP_OK);
    CHECK(len <= tp_colpack_bound(n));
    CHECK(tp_colpack_sniff(content, len));
    uint8_t *copy = malloc(len);
    memcpy(copy, content, len);

    tp_colpack_reader rd;
    CHECK_ERR(tp_colpack_open(&rd, copy, len, n), TP_OK);
    CHECK_INT(rd.count, n);
    tp_record *out = calloc(n, sizeof *out);
    size_t at = 0, step = 1;
    while (at < n) {
        size_t k = step < n - at ? step : n - at;
        CHECK_ERR(tp_colpack_read_records(&rd, out + at, k), TP_OK);
        at += k;
        step = step * 3 + 1;
    }
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += !same_record(&recs[i], &out[i]);
    CHECK_INT(bad, 0);

    tp_row_batch *b = batch_new(n + 3);
    b->count = 3; /* rows already present stay */
    CHECK_ERR(tp_colpack_open(&rd, copy, len, n), TP_OK);
    CHECK_ERR(tp_colpack_read_rows(&rd, b, 7, 4242), TP_OK);
    CHECK_INT(b->count, n + 3);
    bad = 0;
    for (size_t i = 0; i < n; i++) {
        tp_record r;
        batch_row(b, i + 3, &r);
        bad += !same_record(&recs[i], &r) || b->kafka_partition[i + 3] != 7 || b->kafka_offset[i + 3] != 4242;
    }
    CHECK_INT(bad, 0);
    batch_free(b);
    free(out);
    free(copy);
    return len;
}

/* Finds the descriptor of field f in content; returns false if absent. */
static bool find_desc(const uint8_t *c, size_t len, unsigned f, uint8_t *transform, uint8_t *scale)
{
    tp_colpack_reader rd;
    if (tp_colpack_open(&rd, c, len, UINT32_MAX))
        return false;
    if (rd.cols[f - 1].transform == 0xFF)
        return false;
    *transform = rd.cols[f - 1].transform;
    *scale = rd.cols[f - 1].scale;
    return true;
}

static void fill_gps(tp_record *r, size_t n, double quantum, int noisy)
{
    double lat = 35.6812, lon = 139.7671, vlat = 0.00005, vlon = 0.00007;
    int64_t t = 1700000000000;
    for (size_t i = 0; i < n; i++) {
        vlat += ((double)(rnd() % 2001) - 1000) * 1e-8;
        vlon += ((double)(rnd() % 2001) - 1000) * 1e-8;
        lat += vlat;
        lon += vlon;
        t += 1000 + (int64_t)(rnd() % 41) - 20;
        r[i].vehicle_id = 123456;
        r[i].sampled_at_ms = t;
        r[i].seq = 1000 + i;
        if (noisy) {
            r[i].latitude = lat + (double)(rnd() % 1000000) * 1e-13;
            r[i].longitude = lon + (double)(rnd() % 1000000) * 1e-13;
        } else {
            double p = quantum == 1e-6 ? 1e6 : 1e7; /* exact powers of ten */
            r[i].latitude = round(lat * p) * quantum;  /* a producer multiplying by 1e-6 */
            r[i].longitude = (double)llround(lon * p) / p; /* one dividing, as strtod("35.681234") does */
        }
        r[i].speed_kmh = (float)(rnd() % 1200) / 10.0f;
        r[i].heading_deg = (float)(rnd() % 3600) / 10.0f;
        r[i].accuracy_m = (float)(3 + rnd() % 20);
        r[i].meter_status = (int32_t)(1 + (i / 37) % 4);
    }
}

static void test_gps(void)
{
    enum { N = 200 };
    tp_record r[N];
    const uint8_t *c;
    size_t len;
    uint8_t t, s;

    fill_gps(r, N, 1e-6, 0);
    size_t sz = roundtrip(r, N);
    CHECK(sz < N * 12); /* before zstd; the point is zstd after */
    CHECK_ERR(tp_colpack_encode(enc, r, N, &c, &len), TP_OK);
    CHECK(find_desc(c, len, 4, &t, &s));
    CHECK_INT(s, TP_COLPACK_SCALE_MUL + 6); /* round(x / 1e-6) * 1e-6: the multiplying decimal scale */
    CHECK(find_desc(c, len, 5, &t, &s));
    CHECK_INT(s, 6); /* llround(x * 1e6) / 1e6: the dividing one */
    CHECK(t != TP_COLX_XOR_PLANES && t != TP_COLX_DELTA_PLANES);
    CHECK(find_desc(c, len, 1, &t, &s));
    CHECK_INT(t, TP_COLX_CONST);
    CHECK(find_desc(c, len, 3, &t, &s));
    CHECK(t == TP_COLX_DELTA || t == TP_COLX_DELTA2);
    CHECK(find_desc(c, len, 6, &t, &s));
    CHECK_INT(s, 1);
    CHECK(find_desc(c, len, 9, &t, &s));
    CHECK_INT(t, TP_COLX_RUNS);

    fill_gps(r, N, 1e-7, 0);
    roundtrip(r, N);
    CHECK_ERR(tp_colpack_encode(enc, r, N, &c, &len), TP_OK);
    CHECK(find_desc(c, len, 5, &t, &s));
    CHECK_INT(s, 7);

    fill_gps(r, N, 0, 1);
    roundtrip(r, N);
    CHECK_ERR(tp_colpack_encode(enc, r, N, &c, &len), TP_OK);
    CHECK(find_desc(c, len, 4, &t, &s));
    CHECK_INT(s, TP_COLPACK_SCALE_NONE);
    CHECK(t == TP_COLX_XOR_PLANES || t == TP_COLX_DELTA_PLANES);

    /* all-zero accuracy: the column is omitted and decodes as zeros */
    fill_gps(r, N, 1e-6, 0);
    for (int i = 0; i < N; i++)
        r[i].accuracy_m = 0.0f;
    roundtrip(r, N);
    CHECK_ERR(tp_colpack_encode(enc, r, N, &c, &len), TP_OK);
    CHECK(!find_desc(c, len, 8, &t, &s));
    /* -0.0 is not zero: kept bit-exact */
    r[5].accuracy_m = -0.0f;
    roundtrip(r, N);
}

static void test_random_bits(void)
{
    enum { N = 1000 };
    static tp_record r[N];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            r[i].vehicle_id = rnd();
            r[i].sampled_at_ms = (int64_t)rnd();
            r[i].seq = rnd();
            r[i].latitude = bitsd(rnd());
            r[i].longitude = bitsd(rnd());
            r[i].speed_kmh = bitsf((uint32_t)rnd());
            r[i].heading_deg = bitsf((uint32_t)rnd());
            r[i].accuracy_m = bitsf((uint32_t)rnd());
            r[i].meter_status = (int32_t)(uint32_t)rnd();
            if (round >= 2 && (rnd() & 1)) /* half the values small, half random */
                r[i].latitude = (double)(int64_t)(rnd() % 1000) / 100.0;
        }
        roundtrip(r, N);
    }
    /* tiny packs of random bits: constants of 10-byte varints, the tightest case for tp_colpack_bound */
    for (size_t n = 1; n <= 5; n++)
        for (int rep = 0; rep < 20; rep++)
            roundtrip(r + rep * 5, n);
    for (int i = 0; i < 8; i++) { /* every unit at its widest */
        r[i].vehicle_id = UINT64_MAX - (uint64_t)i;
        r[i].sampled_at_ms = i % 2 ? INT64_MIN : INT64_MAX;
        r[i].seq = i % 2 ? UINT64_MAX : 0;
        r[i].latitude = bitsd(i % 2 ? 0xFFFFFFFFFFFFFFFFull : 0x7FFFFFFFFFFFFFFFull);
        r[i].longitude = i % 2 ? 9007199254740991.0 : -9007199254740991.0;
        r[i].speed_kmh = i % 2 ? 16777215.0f : -16777215.0f;
        r[i].heading_deg = bitsf(i % 2 ? 0xFFFFFFFFu : 0x7FFFFFFFu);
        r[i].accuracy_m = bitsf(0xFFFFFFFFu);
        r[i].meter_status = i % 2 ? INT32_MIN : INT32_MAX;
    }
    for (size_t n = 1; n <= 8; n++)
        roundtrip(r, n);
}

/* The varint chooser on crafted columns: below TP_UNITS_EST_MIN units by exact size (ties: raw first), from it on
 * by estimated compressed size among the candidates within 1.5x of the smallest. */
static void test_chooser(void)
{
    enum { N = 200 };
    static uint64_t u[N];
    tp_units_plan p;
    /* a counter 0, 1, 2, ... 99: raw and delta are both one byte a unit, but only delta's bytes (all 02) compress */
    for (int i = 0; i < N; i++)
        u[i] = (uint64_t)i;
    tp_units_plan_varints(u, 100, false, &p);
    CHECK_INT(p.transform, TP_COLX_DELTA);
    CHECK_INT(p.body_len, 100);
    tp_units_plan_varints(u, TP_UNITS_EST_MIN - 1, false, &p); /* short: exact size, the tie goes to raw */
    CHECK_INT(p.transform, TP_COLX_RAW);
    tp_units_plan_varints(u, TP_UNITS_EST_MIN, false, &p);
    CHECK_INT(p.transform, TP_COLX_DELTA);
    /* a step of 15000 (time every 15 s): delta2 of zeros, by size and by estimate */
    for (int i = 0; i < N; i++)
        u[i] = 1372636858000u + 15000u * (uint64_t)i;
    tp_units_plan_varints(u, N, true, &p);
    CHECK_INT(p.transform, TP_COLX_DELTA2);
    /* a walk over 0..127 in steps of 19: raw is one byte a unit, each byte different; the deltas (+19 or -109: 1
     * or 2 bytes) are 15 % longer but of three byte values, so they win by estimate */
    for (int i = 0; i < N; i++)
        u[i] = (uint64_t)(i * 19 % 128);
    tp_units_plan_varints(u, N, false, &p);
    CHECK_INT(p.transform, TP_COLX_DELTA);
    CHECK(p.body_len > N);
    /* uniform random bytes below 128: raw (delta is longer and no less random) */
    for (int i = 0; i < N; i++)
        u[i] = rnd() % 128;
    tp_units_plan_varints(u, N, false, &p);
    CHECK_INT(p.transform, TP_COLX_RAW);
    /* long runs of large values: runs */
    for (int i = 0; i < N; i++)
        u[i] = 1000000u * (uint64_t)(1 + i / 50);
    tp_units_plan_varints(u, N, false, &p);
    CHECK_INT(p.transform, TP_COLX_RUNS);
    /* all equal: const, whatever the length */
    for (int i = 0; i < N; i++)
        u[i] = 7;
    tp_units_plan_varints(u, N, false, &p);
    CHECK_INT(p.transform, TP_COLX_CONST);
    /* far from any tie the exact size still decides: a random walk of large steps keeps delta */
    uint64_t x = 1u << 30;
    for (int i = 0; i < N; i++)
        u[i] = x += rnd() % 4096;
    tp_units_plan_varints(u, N, false, &p);
    CHECK_INT(p.transform, TP_COLX_DELTA);

    /* version 3's for-planes: latitudes of different vehicles side by side (scattered over 0.2 degrees at 1e-6)
     * take planes, at any length (above 1536 units the planes are estimated from 1024 of them); one vehicle's
     * smooth track keeps its varints */
    static uint64_t big[5000];
    for (size_t n = 300; n <= 5000; n += 4700) {
        for (size_t i = 0; i < n; i++)
            big[i] = tp_zz_dec(tp_zz_enc(35000000 + (uint64_t)(rnd() % 200000)));
        tp_units_plan_varints(big, n, true, &p);
        tp_units_plan_for(big, n, true, NULL, &p);
        CHECK_INT(p.transform, TP_COLX_FOR_PLANES);
        CHECK_INT(p.body_len, 4 + 1 + 3 * n); /* base 35000000 zigzagged: 4 bytes; offsets below 2^24: 3 planes */
        for (size_t i = 0; i < n; i++)
            big[i] = 35000000 + 3 * i + (uint64_t)(rnd() % 2);
        tp_units_plan_varints(big, n, true, &p);
        tp_units_plan_for(big, n, true, NULL, &p);
        CHECK(p.transform == TP_COLX_DELTA || p.transform == TP_COLX_DELTA2);
    }

    /* through the record codec: a trip's seq counter takes delta, and columns of every shape round-trip, each
     * varint transform chosen at least once */
    static tp_record r[N];
    for (int i = 0; i < N; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].vehicle_id = 20000589;
        r[i].sampled_at_ms = 1372636858000 + 15000 * (int64_t)i;
        r[i].seq = (uint64_t)i;
        r[i].latitude = 41.141412 + 1e-6 * (double)(i * 97 % 500);
        r[i].longitude = -8.618643;
    }
    const uint8_t *c;
    size_t len;
    uint8_t t, sc;
    CHECK_ERR(tp_colpack_encode(enc, r, 100, &c, &len), TP_OK); /* seq 0..99: a tie by size */
    CHECK(find_desc(c, len, 3, &t, &sc));
    CHECK_INT(t, TP_COLX_DELTA);
    roundtrip(r, N);
    int seen[TP_COLX__COUNT] = {0};
    for (int round = 0; round < 400; round++) {
        size_t n = TP_UNITS_EST_MIN + rnd() % (N - TP_UNITS_EST_MIN);
        int shape = (int)(rnd() % 5);
        uint64_t v = rnd() >> (rnd() % 64), d = rnd() >> (rnd() % 64), dd = 0;
        for (size_t i = 0; i < n; i++) {
            switch (shape) {
            case 0: v = rnd() >> (rnd() % 64); break;                 /* raw-like, any width */
            case 1: v += d + (rnd() % 3) - 1; break;                  /* steady steps (delta2), wrapping */
            case 2: v += rnd() % 300; break;                          /* walk (delta) */
            case 3: v = rnd() % 4 ? v : rnd() >> (rnd() % 64); break; /* runs */
            default: dd += rnd() % 5 - 2, v += dd; break;             /* curving */
            }
            r[i].seq = v;
            r[i].sampled_at_ms = (int64_t)(v * 7);
            r[i].vehicle_id = round % 2 ? v : 1;
        }
        CHECK_ERR(tp_colpack_encode(enc, r, n, &c, &len), TP_OK);
        CHECK(find_desc(c, len, 3, &t, &sc));
        if (t < TP_COLX__COUNT)
            seen[t]++;
        roundtrip(r, n);
    }
    for (int k = TP_COLX_RAW; k <= TP_COLX_RUNS; k++)
        CHECK(seen[k] > 0);
}

static void test_adversarial(void)
{
    static const uint64_t d_special[] = {
        0x7FF0000000000001ull, /* signalling NaN, payload 1 */
        0xFFF8DEADBEEF0001ull, /* negative quiet NaN with a payload */
        0x7FF8000000000000ull, /* the default NaN */
        0x8000000000000000ull, /* -0.0 */
        0x0000000000000000ull, /* +0.0 */
        0x0000000000000001ull, /* smallest subnormal */
        0x800FFFFFFFFFFFFFull, /* largest negative subnormal */
        0x7FF0000000000000ull, /* +inf */
        0xFFF0000000000000ull, /* -inf */
        0x7FEFFFFFFFFFFFFFull, /* DBL_MAX */
    };
    static const uint32_t f_special[] = {0x7F800001u, 0xFFC0BEEFu, 0x80000000u, 0x00000000u, 0x00000001u,
                                         0x7F800000u, 0xFF800000u, 0x7F7FFFFFu, 0x3DCCCCCDu /* 0.1f */};
    enum { N = 64 };
    tp_record r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) {
        r[i].vehicle_id = UINT64_MAX - (uint64_t)(i % 3);
        r[i].sampled_at_ms = i % 2 ? INT64_MIN + i : INT64_MAX - i;
        r[i].seq = UINT64_MAX - 5 + (uint64_t)i; /* wraps through 0 */
        r[i].latitude = bitsd(d_special[i % 10]);
        r[i].longitude = i % 4 == 0 ? 1e308 : i % 4 == 1 ? 0.1 + 0.2 : i % 4 == 2 ? 52.123456789012345 : -1e-308;
        r[i].speed_kmh = bitsf(f_special[i % 9]);
        r[i].heading_deg = i % 2 ? 359.9f : FLT_MIN / 4;
        r[i].accuracy_m = (float)i * 0.5f;
        r[i].meter_status = i % 3 == 0 ? INT32_MIN : i % 3 == 1 ? INT32_MAX : -1;
    }
    roundtrip(r, N);
    roundtrip(r, 1); /* a single record */
    roundtrip(r + 3, 1);

    /* mixed decimal scales in one column: 1, 0.5, 0.25, 0.123456789 */
    double mix[] = {1.0, 0.5, 0.25, 0.123456789, -47.5, 1e6, -0.000000001};
    for (int i = 0; i < N; i++) {
        r[i].latitude = mix[i % 7];
        r[i].longitude = (double)(i * 7) / 1000.0;
        r[i].meter_status = 2;
    }
    roundtrip(r, N);
    const uint8_t *c;
    size_t len;
    uint8_t t, s;
    CHECK_ERR(tp_colpack_encode(enc, r, N, &c, &len), TP_OK);
    CHECK(find_desc(c, len, 4, &t, &s));
    CHECK_INT(s, 9);
    CHECK(find_desc(c, len, 5, &t, &s));
    CHECK_INT(s, 3);
    CHECK(find_desc(c, len, 9, &t, &s));
    CHECK_INT(t, TP_COLX_CONST);

    /* 17-significant-digit doubles: no decimal scale up to 9 fits, bit planes keep them exact */
    for (int i = 0; i < N; i++)
        r[i].latitude = 1.0 / 3.0 + i * 1e-15;
    roundtrip(r, N);
    CHECK_ERR(tp_colpack_encode(enc, r, N, &c, &len), TP_OK);
    CHECK(find_desc(c, len, 4, &t, &s));
    CHECK_INT(s, TP_COLPACK_SCALE_NONE);

    /* a value just above 2^53 at its scale must not use decimals (k would not be exact) */
    for (int i = 0; i < N; i++)
        r[i].latitude = 9007199254740993.0 + 2.0 * i;
    roundtrip(r, N);
    /* floats quantised by multiplying (k * 0.1f) and by dividing (k / 10.0f): decimal either way, exact */
    for (int i = 0; i < N; i++) {
        r[i].speed_kmh = (float)(i * 37 % 1200) * 0.1f;
        r[i].heading_deg = (float)(i * 53 % 3600) / 10.0f;
    }
    roundtrip(r, N);
    CHECK_ERR(tp_colpack_encode(enc, r, N, &c, &len), TP_OK);
    CHECK(find_desc(c, len, 6, &t, &s));
    CHECK(s != TP_COLPACK_SCALE_NONE);
    CHECK(find_desc(c, len, 7, &t, &s));
    CHECK_INT(s, 1);
    /* float decimals near the 2^24 bound */
    for (int i = 0; i < N; i++)
        r[i].speed_kmh = 16777215.0f - (float)i;
    roundtrip(r, N);
}

static void test_large(void)
{
    size_t n = 100000;
    tp_record *r = calloc(n, sizeof *r);
    for (size_t base = 0; base < n; base += 1000)
        fill_gps(r + base, 1000, 1e-6, 0);
    for (size_t i = 0; i < n; i++)
        r[i].seq = i;
    size_t len = roundtrip(r, n);
    CHECK(len < n * 12);
    free(r);
}

/* ---- malformed input ---- */

typedef struct builder {
    uint8_t b[4096];
    size_t n;
} builder;
static void put(builder *b, const void *p, size_t n)
{
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void put_u8(builder *b, uint8_t v) { b->b[b->n++] = v; }
static void put_var(builder *b, uint64_t v)
{
    while (v >= 0x80) {
        put_u8(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_u8(b, (uint8_t)v);
}
static void head(builder *b, uint64_t count, uint64_t ncols)
{
    b->n = 0;
    put(b, TP_COLPACK_MAGIC, 4);
    put_var(b, count);
    put_var(b, ncols);
}
/* A descriptor with a raw code byte. */
static void desc_code(builder *b, uint64_t field, uint8_t code, uint64_t blen)
{
    put_var(b, field);
    put_u8(b, code);
    put_var(b, blen);
}
/* A descriptor from a transform and a scale as the decoder holds it (0xFF none, d, TP_COLPACK_SCALE_MUL + d). The
 * type argument documents the column's type in the calls below; the format does not store it. */
static void desc(builder *b, uint64_t field, uint8_t type, uint8_t tr, uint8_t scale, uint64_t blen)
{
    (void)type;
    uint8_t sc = scale == 0xFF ? 0 : scale & TP_COLPACK_SCALE_MUL ? 11 + (scale & 0x0F) : 1 + scale;
    desc_code(b, field, (uint8_t)(tr | sc << 3), blen);
}

/* Opens and decodes b fully through both paths; returns the first error (both paths must agree). */
static tp_err decode_all(const builder *b, uint64_t max)
{
    tp_colpack_reader rd;
    tp_err e = tp_colpack_open(&rd, b->b, b->n, max);
    if (e) {
        CHECK(rd.detail[0] != '\0');
        return e;
    }
    tp_record *out = calloc(rd.count, sizeof *out);
    tp_err e1 = tp_colpack_read_records(&rd, out, rd.count);
    if (e1)
        CHECK(rd.detail[0] != '\0');
    free(out);
    tp_row_batch *rows = batch_new(rd.count + 1);
    rows->count = 1;
    CHECK_ERR(tp_colpack_open(&rd, b->b, b->n, max), TP_OK);
    tp_err e2 = tp_colpack_read_rows(&rd, rows, 0, 0);
    CHECK_INT(e1, e2);
    if (e2)
        CHECK_INT(rows->count, 1); /* all-or-nothing */
    batch_free(rows);
    return e1;
}

static void test_malformed(void)
{
    builder b;
    tp_colpack_reader rd;

    /* a valid minimal pack: 2 records, seq raw 5, 6 */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_RAW, 0xFF, 2);
    put_u8(&b, 5), put_u8(&b, 6);
    CHECK_ERR(decode_all(&b, 10), TP_OK);

    /* v1 content / garbage / empty: no magic */
    CHECK_ERR(tp_colpack_open(&rd, (const uint8_t *)"\x05\x08\x01\x10\x02\x18", 6, 10), TP_ERR_UNKNOWN_VERSION);
    CHECK_ERR(tp_colpack_open(&rd, (const uint8_t *)"T", 1, 10), TP_ERR_UNKNOWN_VERSION);
    CHECK_ERR(tp_colpack_open(&rd, NULL, 0, 10), TP_ERR_UNKNOWN_VERSION);
    CHECK_ERR(tp_colpack_open(NULL, b.b, b.n, 10), TP_ERR_INVALID_ARG);

    /* header varints */
    b.n = 0, put(&b, TP_COLPACK_MAGIC, 4);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED);
    put_u8(&b, 0x80);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED);
    b.n = 4;
    for (int i = 0; i < 10; i++)
        put_u8(&b, 0xFF);
    put_u8(&b, 0x01);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_VARINT_OVERFLOW);
    b.n = 4;
    for (int i = 0; i < 9; i++)
        put_u8(&b, 0xFF);
    put_u8(&b, 0x02); /* 10th byte above 1: above 2^64-1 */
    CHECK_ERR(decode_all(&b, 10), TP_ERR_VARINT_OVERFLOW);
    head(&b, 0, 0);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT);
    head(&b, 11, 0); /* count lies above the caller's bound */
    CHECK_ERR(decode_all(&b, 10), TP_ERR_PACK_TOO_LARGE);
    head(&b, (uint64_t)UINT32_MAX + 1, 0);
    CHECK_ERR(decode_all(&b, UINT64_MAX), TP_ERR_PACK_TOO_LARGE);
    b.n = 0, put(&b, TP_COLPACK_MAGIC, 4), put_u8(&b, 2);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED); /* no column count */
    b.n = 0, put(&b, TP_COLPACK_MAGIC, 4), put_u8(&b, 2), put_u8(&b, 0x80);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED);
    head(&b, 2, 65);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT);

    /* no columns at all: every record is all zero (proto3 defaults) */
    head(&b, 3, 0);
    CHECK_ERR(decode_all(&b, 10), TP_OK);
    CHECK_ERR(tp_colpack_open(&rd, b.b, b.n, 10), TP_OK);
    tp_record z[3];
    memset(z, 0xAB, sizeof z);
    CHECK_ERR(tp_colpack_read_records(&rd, z, 3), TP_OK);
    CHECK_INT(z[2].seq, 0);
    CHECK(dbits(z[1].latitude) == 0);
    CHECK_ERR(tp_colpack_read_records(&rd, z, 1), TP_ERR_INVALID_ARG); /* past the end */

    /* descriptors */
    head(&b, 2, 1);
    put_u8(&b, 3);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED); /* cut inside the descriptor */
    head(&b, 2, 1);
    put_u8(&b, 0x83);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED); /* cut inside the field varint */
    head(&b, 2, 1);
    put_u8(&b, 3), put_u8(&b, TP_COLX_RAW), put_u8(&b, 0x80);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED); /* cut inside the body length */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_RAW, 0xFF, 3);
    put_u8(&b, 5), put_u8(&b, 6);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED); /* body past the end */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_RAW, 0xFF, UINT64_MAX);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED); /* huge body length */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_RAW, 0xFF, 2);
    put_u8(&b, 5), put_u8(&b, 6), put_u8(&b, 7);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRAILING_GARBAGE);
    head(&b, 2, 1);
    desc(&b, 0, TP_COLT_UINT64, TP_COLX_RAW, 0xFF, 2);
    put_u8(&b, 5), put_u8(&b, 6);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* field 0 */
    head(&b, 2, 2);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_RAW, 0xFF, 2);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_RAW, 0xFF, 2);
    put_u8(&b, 5), put_u8(&b, 6), put_u8(&b, 5), put_u8(&b, 6);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* duplicate field */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_FOR_PLANES, 0xFF, 2);
    put_u8(&b, 5), put_u8(&b, 6);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_UNKNOWN_VERSION); /* transform 7 is reserved in version 2 */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_RAW, 2, 2);
    put_u8(&b, 5), put_u8(&b, 6);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* decimal scale on an integer */
    for (unsigned code = 21; code < 32; code++) {
        head(&b, 2, 1);
        desc_code(&b, 4, (uint8_t)(TP_COLX_RAW | code << 3), 2);
        put_u8(&b, 5), put_u8(&b, 6);
        CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* scale code out of range */
    }
    head(&b, 2, 1);
    desc_code(&b, 4, (uint8_t)(TP_COLX_RAW | 20 << 3), 2); /* the largest valid code: k * 1e-9 */
    put_u8(&b, 5), put_u8(&b, 6);
    CHECK_ERR(decode_all(&b, 10), TP_OK);
    head(&b, 2, 1);
    desc(&b, 4, TP_COLT_DOUBLE, TP_COLX_XOR_PLANES, 6, 16);
    for (int i = 0; i < 16; i++)
        put_u8(&b, 0);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* planes with a scale */
    head(&b, 2, 1);
    desc(&b, 4, TP_COLT_DOUBLE, TP_COLX_XOR_PLANES, 0xFF, 15);
    for (int i = 0; i < 15; i++)
        put_u8(&b, 0);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* plane size not 8 x count */
    head(&b, 100, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_RAW, 0xFF, 2);
    put_u8(&b, 5), put_u8(&b, 6);
    CHECK_ERR(decode_all(&b, 1000), TP_ERR_CORRUPT); /* count lies: 2 bytes cannot hold 100 varints */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_CONST, 0xFF, 2);
    put_u8(&b, 5), put_u8(&b, 6);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* constant of two varints */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_CONST, 0xFF, 1);
    put_u8(&b, 0x85);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED); /* constant cut off */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_CONST, 0xFF, 0);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* empty constant */

    /* unknown field columns are skipped; a known column after it still decodes */
    head(&b, 2, 2);
    desc_code(&b, 10, 0xFF, 3); /* code means nothing to this reader: not looked at */
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_DELTA, 0xFF, 2);
    put_u8(&b, 1), put_u8(&b, 2), put_u8(&b, 3);
    put_u8(&b, 10), put_u8(&b, 2);
    CHECK_ERR(decode_all(&b, 10), TP_OK);
    CHECK_ERR(tp_colpack_open(&rd, b.b, b.n, 10), TP_OK);
    CHECK_ERR(tp_colpack_read_records(&rd, z, 2), TP_OK);
    CHECK_INT(z[0].seq, 5);
    CHECK_INT(z[1].seq, 6);
    head(&b, 2, 1);
    desc(&b, 536870912, 1, 1, 0xFF, 2); /* field number above 2^29-1 */
    put_u8(&b, 1), put_u8(&b, 2);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT);

    /* bodies */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_RAW, 0xFF, 2);
    put_u8(&b, 5), put_u8(&b, 0x86);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED); /* last varint cut off */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_DELTA, 0xFF, 11);
    for (int i = 0; i < 10; i++)
        put_u8(&b, 0xFF);
    put_u8(&b, 0x7F);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_VARINT_OVERFLOW);
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_DELTA2, 0xFF, 3);
    put_u8(&b, 5), put_u8(&b, 6), put_u8(&b, 7);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* a byte left over */
    head(&b, 3, 1);
    desc(&b, 9, TP_COLT_INT32, TP_COLX_RUNS, 0xFF, 2);
    put_u8(&b, 4), put_u8(&b, 0);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* run of 0 */
    head(&b, 3, 1);
    desc(&b, 9, TP_COLT_INT32, TP_COLX_RUNS, 0xFF, 2);
    put_u8(&b, 4), put_u8(&b, 4);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* run past the last record */
    head(&b, 3, 1);
    desc(&b, 9, TP_COLT_INT32, TP_COLX_RUNS, 0xFF, 6);
    put_u8(&b, 4), put_u8(&b, 2), put_u8(&b, 2), put_u8(&b, 1), put_u8(&b, 2), put_u8(&b, 1);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT); /* a run left over after the last record */
    head(&b, 3, 1);
    desc(&b, 9, TP_COLT_INT32, TP_COLX_RUNS, 0xFF, 3);
    put_u8(&b, 4), put_u8(&b, 2), put_u8(&b, 2);
    CHECK_ERR(decode_all(&b, 10), TP_ERR_TRUNCATED); /* the second run's length is missing */
    head(&b, 3, 1);
    desc(&b, 9, TP_COLT_INT32, TP_COLX_RUNS, 0xFF, 4);
    put_u8(&b, 4), put_u8(&b, 2), put_u8(&b, 3), put_u8(&b, 1);
    CHECK_ERR(decode_all(&b, 10), TP_OK);
    head(&b, 1, 1);
    desc(&b, 9, TP_COLT_INT32, TP_COLX_RAW, 0xFF, 5);
    put_var(&b, (uint64_t)1 << 32); /* zigzag 2^32 = 2^31: above INT32_MAX */
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT);
    head(&b, 1, 1);
    desc(&b, 6, TP_COLT_FLOAT, TP_COLX_RAW, 0xFF, 5);
    put_var(&b, (uint64_t)1 << 32); /* a float bit pattern wider than 32 bits */
    CHECK_ERR(decode_all(&b, 10), TP_ERR_CORRUPT);
    head(&b, 1, 1);
    desc(&b, 6, TP_COLT_FLOAT, TP_COLX_RAW, 3, 5);
    put_var(&b, (uint64_t)1 << 32); /* as a decimal any 64-bit k is allowed */
    CHECK_ERR(decode_all(&b, 10), TP_OK);

    /* planes with 4-byte units: int32 sign-extends, float keeps its bits */
    head(&b, 2, 1);
    desc(&b, 9, TP_COLT_INT32, TP_COLX_DELTA_PLANES, 0xFF, 8);
    put(&b, "\x01\x02\x00\x00\x00\x00\x00\x00", 8); /* zz32 deltas 1, 2 -> -1, then 0 */
    CHECK_ERR(tp_colpack_open(&rd, b.b, b.n, 10), TP_OK);
    CHECK_ERR(tp_colpack_read_records(&rd, z, 2), TP_OK);
    CHECK_INT(z[0].meter_status, -1);
    CHECK_INT(z[1].meter_status, 0);
    head(&b, 2, 1);
    desc(&b, 6, TP_COLT_FLOAT, TP_COLX_XOR_PLANES, 0xFF, 8);
    put(&b, "\x00\x00\x00\x00\x80\x80\x00\x00", 8); /* 0x00800000 (FLT_MIN), then xor with itself -> 0 */
    CHECK_ERR(tp_colpack_open(&rd, b.b, b.n, 10), TP_OK);
    CHECK_ERR(tp_colpack_read_records(&rd, z, 2), TP_OK);
    CHECK(fbits(z[0].speed_kmh) == 0x00800000u);
    CHECK(fbits(z[1].speed_kmh) == 0);

    /* batch too small: nothing appended */
    head(&b, 2, 1);
    desc(&b, 3, TP_COLT_UINT64, TP_COLX_RAW, 0xFF, 2);
    put_u8(&b, 5), put_u8(&b, 6);
    tp_row_batch *rows = batch_new(2);
    rows->count = 1;
    CHECK_ERR(tp_colpack_open(&rd, b.b, b.n, 10), TP_OK);
    CHECK_ERR(tp_colpack_read_rows(&rd, rows, 0, 0), TP_ERR_FULL);
    CHECK_INT(rows->count, 1);
    batch_free(rows);

    /* encoder arguments */
    const uint8_t *c;
    size_t len;
    tp_record one = {0};
    CHECK_ERR(tp_colpack_encode(enc, &one, 0, &c, &len), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_colpack_encode(NULL, &one, 1, &c, &len), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_colpack_encode(enc, NULL, 1, &c, &len), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_colpack_encoder_new(NULL), TP_ERR_INVALID_ARG);
    roundtrip(&one, 1); /* an all-zero record: no columns at all */
}

static void test_can_represent(void)
{
    /* vehicle_id=1, sampled_at=2, seq=3, lat (fixed64), speed (fixed32), meter_status=2 */
    static const uint8_t ok[] = {0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x21, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F,
                                 0x35, 0, 0, 0x80, 0x3F, 0x48, 0x02};
    CHECK(tp_colpack_can_represent(ok, sizeof ok));
    CHECK(tp_colpack_can_represent(ok, 0)); /* the empty message: all defaults */
    static const uint8_t unknown[] = {0x08, 0x01, 0x50, 0x01};  /* field 10 varint */
    static const uint8_t badwire[] = {0x08, 0x01, 0x22, 0x00}; /* field 4 as length-delimited */
    static const uint8_t cut[] = {0x21, 0, 0, 0};                /* fixed64 cut off */
    static const uint8_t cutv[] = {0x08, 0x81};                  /* varint cut off */
    static const uint8_t field0[] = {0x00, 0x01};
    CHECK(!tp_colpack_can_represent(unknown, sizeof unknown));
    CHECK(!tp_colpack_can_represent(badwire, sizeof badwire));
    CHECK(!tp_colpack_can_represent(cut, sizeof cut));
    CHECK(!tp_colpack_can_represent(cutv, sizeof cutv));
    CHECK(!tp_colpack_can_represent(field0, sizeof field0));
    CHECK(!tp_colpack_can_represent(NULL, 3));
    /* the magic read as v1 content: an empty record, then one that starts with a group tag */
    CHECK(tp_colpack_can_represent((const uint8_t *)TP_COLPACK_MAGIC, 0));
    CHECK(!tp_colpack_can_represent((const uint8_t *)TP_COLPACK_MAGIC + 2, 2));
    CHECK(!tp_colpack_sniff((const uint8_t *)"\0TC", 3));
    CHECK(!tp_colpack_sniff((const uint8_t *)"\0TC3", 4));
}

/* The worked example of docs/FORMAT_V2.md, both ways: the spec and the code must agree byte for byte. */
static void test_spec_example(void)
{
    static const uint8_t hex[] = {
        0x00, 0x54, 0x43, 0x32, 0x03, 0x09, 0x01, 0x00, 0x02, 0x02, 0x03, 0x09, 0x03, 0x01, 0x03, 0x04,
        0x3b, 0x07, 0x05, 0x3a, 0x07, 0x06, 0x12, 0x04, 0x07, 0x12, 0x04, 0x08, 0x11, 0x03, 0x09, 0x00,
        0x01, 0x91, 0x4e, 0x86, 0xa0, 0xd5, 0xed, 0xee, 0x66, 0xd4, 0x0f, 0x0b, 0x01, 0x02, 0x03, 0xa4,
        0xcf, 0x83, 0x22, 0x86, 0x01, 0x02, 0xb2, 0xb3, 0xa5, 0x85, 0x01, 0x66, 0x68, 0xe6, 0x03, 0x04,
        0x02, 0x92, 0x0e, 0x00, 0x0a, 0x54, 0x54, 0x56, 0x04};
    const tp_record want[3] = {
        {10001, 1767225600003, 1, 35.681234, 139.767001, 24.3f, 90.5f, 4.2f, 2},
        {10001, 1767225601005, 2, 35.681301, 139.767052, 24.5f, 90.5f, 4.2f, 2},
        {10001, 1767225602001, 3, 35.681369, 139.767104, 24.6f, 91.0f, 4.3f, 2},
    };
    const uint8_t *c;
    size_t len;
    CHECK_ERR(tp_colpack_encode(enc, want, 3, &c, &len), TP_OK);
    CHECK_INT(len, sizeof hex);
    CHECK(len == sizeof hex && memcmp(c, hex, len) == 0);
    tp_colpack_reader rd;
    tp_record got[3];
    CHECK_ERR(tp_colpack_open(&rd, hex, sizeof hex, 3), TP_OK);
    CHECK_ERR(tp_colpack_read_records(&rd, got, 3), TP_OK);
    for (int i = 0; i < 3; i++)
        CHECK(same_record(&want[i], &got[i]));
    /* every prefix of the example is an error, never a crash or a success */
    for (size_t cut = 0; cut < sizeof hex; cut++) {
        tp_err e = tp_colpack_open(&rd, hex, cut, 3);
        if (!e)
            e = tp_colpack_read_records(&rd, got, 3);
        CHECK(e != TP_OK);
    }
}

/* Writer and reader with layout columns, codec zstd and none, with and without metadata. */
static void test_pack_layer(void)
{
    enum { N = 300 };
    static tp_record r[N], got[N];
    fill_gps(r, N, 1e-6, 0);
    for (int codec = 0; codec < 2; codec++) {
        tp_pack_writer_opts o;
        tp_pack_writer_opts_init(&o);
        o.layout = TP_LAYOUT_COLUMNS;
        o.codec = codec ? TP_CODEC_ZSTD : TP_CODEC_NONE;
        tp_pack_writer *w = NULL;
        CHECK_ERR(tp_pack_writer_new(&o, &w), TP_OK);
        for (int i = 0; i < N; i++)
            CHECK_ERR(tp_pack_writer_add(w, &r[i]), TP_OK);
        size_t cap = tp_pack_writer_bound(w), len = 0;
        uint8_t *pack = malloc(cap);
        tp_pack_meta meta;
        CHECK_ERR(tp_pack_writer_finish(w, pack, 1, &len, &meta), TP_ERR_FULL); /* pack stays open */
        CHECK_ERR(tp_pack_writer_finish(w, pack, cap, &len, &meta), TP_OK);
        CHECK_INT(meta.format_version, 2);
        CHECK_INT(meta.layout, TP_LAYOUT_COLUMNS);
        CHECK_INT(meta.record_count, N);
        CHECK_INT(meta.vehicle_id, r[0].vehicle_id);
        CHECK(codec == 0 || len < N * 8); /* 1e-6 GPS at 1 s: well under 8 bytes a record */

        tp_pack_reader *rd = NULL;
        CHECK_ERR(tp_pack_reader_new(NULL, &rd), TP_OK);
        for (int with_meta = 0; with_meta < 2; with_meta++) {
            CHECK_ERR(tp_pack_reader_open(rd, with_meta ? &meta : NULL, pack, len), TP_OK);
            int i = 0;
            tp_err e;
            while ((e = tp_pack_reader_next(rd, &got[i])) == TP_OK && i < N)
                i++;
            CHECK_ERR(e, TP_ERR_END);
            CHECK_INT(i, N);
            int bad = 0;
            for (int j = 0; j < N; j++)
                bad += !same_record(&r[j], &got[j]);
            CHECK_INT(bad, 0);
            CHECK_INT(tp_pack_reader_meta(rd)->format_version, 2);
            CHECK_INT(tp_pack_reader_meta(rd)->record_count, N);
            CHECK_INT(tp_pack_reader_meta(rd)->vehicle_id, r[0].vehicle_id);

            tp_row_batch *rows = NULL;
            CHECK_ERR(tp_row_batch_new(N + 10, &rows), TP_OK);
            rows->count = 11;
            CHECK_ERR(tp_pack_reader_open(rd, with_meta ? &meta : NULL, pack, len), TP_OK);
            CHECK_ERR(tp_pack_reader_read_all(rd, rows, 3, 99), TP_ERR_FULL);
            CHECK_INT(rows->count, 11);
            rows->count = 10;
            CHECK_ERR(tp_pack_reader_read_all(rd, rows, 3, 99), TP_OK);
            CHECK_INT(rows->count, N + 10);
            bad = 0;
            for (int j = 0; j < N; j++) {
                tp_record x;
                tp_row_batch_get(rows, (size_t)j + 10, &x);
                bad += !same_record(&r[j], &x) || rows->kafka_offset[j + 10] != 99;
            }
            CHECK_INT(bad, 0);
            CHECK_ERR(tp_pack_reader_next(rd, &got[0]), TP_ERR_END);
            tp_row_batch_free(rows);
        }
        /* a few records by next(), the rest by read_all: the records decoded ahead are not lost */
        for (int first = 1; first < N; first += 97) {
            tp_row_batch *rows = NULL;
            CHECK_ERR(tp_row_batch_new(N, &rows), TP_OK);
            CHECK_ERR(tp_pack_reader_open(rd, &meta, pack, len), TP_OK);
            for (int j = 0; j < first; j++)
                CHECK_ERR(tp_pack_reader_next(rd, &got[j]), TP_OK);
            CHECK_ERR(tp_pack_reader_read_all(rd, rows, 1, 2), TP_OK);
            CHECK_INT(rows->count, N - first);
            int bad = 0;
            for (int j = 0; j < first; j++)
                bad += !same_record(&r[j], &got[j]);
            for (size_t j = 0; j < rows->count; j++) {
                tp_record x;
                tp_row_batch_get(rows, j, &x);
                bad += !same_record(&r[(size_t)first + j], &x);
            }
            CHECK_INT(bad, 0);
            CHECK_ERR(tp_pack_reader_next(rd, &got[0]), TP_ERR_END);
            tp_row_batch_free(rows);
        }
        /* metadata that disagrees with the pack */
        tp_pack_meta m = meta;
        m.record_count = N + 1;
        CHECK_ERR(tp_pack_reader_open(rd, &m, pack, len), TP_ERR_COUNT_MISMATCH);
        m = meta;
        m.layout = TP_LAYOUT_ROWS;
        CHECK_ERR(tp_pack_reader_open(rd, &m, pack, len), TP_ERR_UNKNOWN_VERSION);
        m = meta;
        m.vehicle_id = 77;
        CHECK_ERR(tp_pack_reader_open(rd, &m, pack, len), TP_OK);
        CHECK_ERR(tp_pack_reader_next(rd, &got[0]), TP_ERR_CORRUPT);
        CHECK(strstr(tp_pack_reader_error_detail(rd), "vehicle_id") != NULL);
        /* v1 content under v2 metadata */
        m = meta;
        m.format_version = 1;
        m.layout = TP_LAYOUT_ROWS;
        CHECK(tp_pack_reader_open(rd, &m, pack, len) != TP_OK || tp_pack_reader_next(rd, &got[0]) != TP_OK);
        tp_pack_reader_free(rd);
        free(pack);

        /* an all-zero first record is fine in layout columns (the 00 mark only matters for rows) */
        tp_record zero = {0};
        CHECK_ERR(tp_pack_writer_add(w, &zero), TP_OK);
        cap = tp_pack_writer_bound(w);
        pack = malloc(cap);
        CHECK_ERR(tp_pack_writer_finish(w, pack, cap, &len, &meta), TP_OK);
        CHECK_ERR(tp_pack_reader_new(NULL, &rd), TP_OK);
        CHECK_ERR(tp_pack_reader_open(rd, NULL, pack, len), TP_OK);
        CHECK_ERR(tp_pack_reader_next(rd, &got[0]), TP_OK);
        CHECK(same_record(&zero, &got[0]));
        CHECK_ERR(tp_pack_reader_next(rd, &got[0]), TP_ERR_END);
        tp_pack_reader_free(rd);
        free(pack);
        tp_pack_writer_free(w);
    }

    /* codec none, crafted content: two vehicles in one pack, a count above the reader's bound, no magic */
    const uint8_t *c0;
    size_t len0;
    tp_pack_reader *rd0 = NULL;
    static tp_record mixed[150];
    for (int i = 0; i < 150; i++)
        mixed[i] = (tp_record){.vehicle_id = i < 100 ? 5 : 6, .seq = (uint64_t)i};
    CHECK_ERR(tp_colpack_encode(enc, mixed, 150, &c0, &len0), TP_OK);
    CHECK_ERR(tp_pack_reader_new(NULL, &rd0), TP_OK);
    CHECK_ERR(tp_pack_reader_open(rd0, NULL, c0, len0), TP_OK);
    int delivered = 0;
    while (tp_pack_reader_next(rd0, &got[0]) == TP_OK)
        delivered++;
    CHECK_INT(delivered, 100); /* every record before the other vehicle's first, then an error */
    CHECK(strstr(tp_pack_reader_error_detail(rd0), "record 100") != NULL);
    CHECK_ERR(tp_pack_reader_next(rd0, &got[0]), TP_ERR_CORRUPT); /* and it stays there */
    tp_pack_reader_free(rd0);

    tp_record two[2] = {{.vehicle_id = 1, .seq = 1}, {.vehicle_id = 2, .seq = 2}};
    const uint8_t *c;
    size_t len;
    CHECK_ERR(tp_colpack_encode(enc, two, 2, &c, &len), TP_OK);
    tp_pack_reader *rd = NULL;
    tp_pack_reader_opts ro;
    tp_pack_reader_opts_init(&ro);
    ro.max_pack_bytes = 1000;
    CHECK_ERR(tp_pack_reader_new(&ro, &rd), TP_OK);
    CHECK_ERR(tp_pack_reader_open(rd, NULL, c, len), TP_OK);
    CHECK_ERR(tp_pack_reader_next(rd, &got[0]), TP_OK);
    CHECK_ERR(tp_pack_reader_next(rd, &got[1]), TP_ERR_CORRUPT);
    tp_row_batch *rows = NULL;
    CHECK_ERR(tp_row_batch_new(4, &rows), TP_OK);
    CHECK_ERR(tp_pack_reader_open(rd, NULL, c, len), TP_OK);
    CHECK_ERR(tp_pack_reader_read_all(rd, rows, 0, 0), TP_ERR_CORRUPT);
    CHECK_INT(rows->count, 0);
    tp_row_batch_free(rows);
    const uint8_t liar[] = {0x00, 'T', 'C', '2', 0xE9, 0x07, 0x00}; /* 1001 records, no columns */
    CHECK_ERR(tp_pack_reader_open(rd, NULL, liar, sizeof liar), TP_ERR_PACK_TOO_LARGE);
    CHECK(strstr(tp_pack_reader_error_detail(rd), "1001") != NULL);
    const uint8_t nomagic[] = {0x00, 'T', 'C', '4', 0x01, 0x00};
    CHECK_ERR(tp_pack_reader_open(rd, NULL, nomagic, sizeof nomagic), TP_ERR_UNKNOWN_VERSION);
    CHECK(strstr(tp_pack_reader_error_detail(rd), "version 2") != NULL);
    tp_pack_reader_free(rd);
}


/* ---- the chooser's passes against plain references (the encoder's loops are blocked and vectorized; they must
 * decide exactly as these one-value-at-a-time versions do) ---- */

static bool ref_dec_try(uint64_t u, bool is_f32, uint8_t s, int64_t *k)
{
    static const double p10[10] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    static const double n10[10] = {1e-0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9};
    static const float p10f[10] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f, 1e6f, 1e7f, 1e8f, 1e9f};
    static const float n10f[10] = {1e-0f, 1e-1f, 1e-2f, 1e-3f, 1e-4f, 1e-5f, 1e-6f, 1e-7f, 1e-8f, 1e-9f};
    bool mul = s & TP_COLPACK_SCALE_MUL;
    int d = s & 0x0F;
    double x = (is_f32 ? (double)bitsf((uint32_t)u) : bitsd(u)) * p10[d];
    if (!(fabs(x) < (is_f32 ? 16777216.0 : 9007199254740992.0)))
        return false;
    int64_t r = (int64_t)(x < 0 ? x - 0.5 : x + 0.5);
    *k = r;
    if (is_f32)
        return fbits(mul ? (float)r * n10f[d] : (float)r / p10f[d]) == (uint32_t)u;
    return dbits(mul ? (double)r * n10[d] : (double)r / p10[d]) == u;
}

static int ref_find_scale(const uint64_t *u, size_t n, bool is_f32, uint8_t mode, uint64_t *k)
{
    uint8_t d = 0;
    size_t changed = 0;
    int64_t x;
    for (size_t i = 0; i < n; i++) {
        while (!ref_dec_try(u[i], is_f32, (uint8_t)(mode | d), &x)) {
            if (++d > TP_COLPACK_MAX_SCALE)
                return -1;
            changed = i;
        }
        k[i] = (uint64_t)x;
    }
    for (size_t i = 0; i < changed; i++) {
        if (!ref_dec_try(u[i], is_f32, (uint8_t)(mode | d), &x))
            return -1;
        k[i] = (uint64_t)x;
    }
    return mode | d;
}

/* A value that is exactly a decimal of d places in the given mode (or, now and then, an awkward one). */
static uint64_t scale_value(bool is_f32, uint8_t mode, int d)
{
    static const double edge[] = {0.0, -0.0, 1e300, -1e300, 5e-324, 1e-310, 9007199254740991.0, 0.1 + 0.2,
                                  3.0e-5, -123456.789012345, 0.5, -0.5, 1e15, 4503599627370495.5};
    if (rnd() % 97 == 0) {
        if (rnd() % 5 == 0)
            return is_f32 ? fbits(rnd() % 2 ? NAN : -INFINITY) : dbits(rnd() % 2 ? NAN : INFINITY);
        double e = edge[rnd() % (sizeof edge / sizeof *edge)];
        return is_f32 ? fbits((float)e) : dbits(e);
    }
    static const double p10[10] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    int64_t k = (int64_t)(rnd() % (is_f32 ? 2000000u : 400000000000u)) - (is_f32 ? 1000000 : 200000000000);
    if (is_f32)
        return fbits(mode ? (float)k * (float)(1 / p10[d]) : (float)k / (float)p10[d]);
    return dbits(mode ? (double)k * (1 / p10[d]) : (double)k / p10[d]);
}

static void test_scale_search(void)
{
    enum { N = 700 };
    static uint64_t u[N], k[N], kref[N];
    static const size_t lens[] = {1, 2, 15, 16, 17, 47, 48, 63, 64, 65, 100, 200, 255, 256, 257, 496, 497, 700};
    int found = 0, none = 0;
    for (int round = 0; round < 600; round++) {
        size_t n = lens[round % (sizeof lens / sizeof *lens)];
        bool is_f32 = round % 2;
        uint8_t mode = (round / 2) % 2 ? TP_COLPACK_SCALE_MUL : 0;
        int d = (int)(rnd() % 10);
        for (size_t i = 0; i < n; i++)
            u[i] = scale_value(is_f32, mode, d);
        /* a later, finer value here and there: the scale rises in the middle of a block */
        if (round % 3 == 0 && d < 9)
            u[rnd() % n] = scale_value(is_f32, mode, d + 1);
        int want = ref_find_scale(u, n, is_f32, mode, kref);
        int got = tp_units_find_scale(u, n, is_f32, mode, k);
        CHECK_INT(got, want);
        if (got >= 0 && got == want) {
            found++;
            CHECK(memcmp(k, kref, n * sizeof *k) == 0);
        } else {
            none++;
        }
    }
    CHECK(found > 100 && none > 50); /* both outcomes were exercised */
}

static size_t ref_vlen(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80)
        v >>= 7, n++;
    return n;
}

static void test_plan_pass(void)
{
    enum { N = 600 };
    static uint64_t u[N];
    for (int round = 0; round < 400; round++) {
        size_t n = 1 + rnd() % N;
        bool sgn = round % 2;
        int kind = round % 5;
        uint64_t x = rnd();
        for (size_t i = 0; i < n; i++) {
            if (kind == 0)
                x = rnd() >> (rnd() % 64); /* any width */
            else if (kind == 1)
                x += rnd() % 3 == 0 ? rnd() % 1000 : 0; /* runs */
            else if (kind == 2)
                x = (uint64_t)((int64_t)(rnd() % 2001) - 1000); /* small signed */
            else if (kind == 3)
                x = 1767225600000ull + 1000 * i + rnd() % 5; /* a clock */
            else
                x = i % 7 == 0 ? rnd() : x; /* long runs of wide values */
            u[i] = x;
        }
        /* the sizes and frame the plan must agree with */
        size_t raw = 0, delta = 0, delta2 = 0, runs = 0, nruns = 1;
        uint64_t lo = u[0], hi = u[0], prev = 0, prevd = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t v = u[i], d = v - prev;
            raw += ref_vlen(sgn ? tp_zz_enc(v) : v);
            delta += ref_vlen(tp_zz_enc(d));
            delta2 += ref_vlen(tp_zz_enc(i ? d - prevd : v));
            if (i)
                prevd = d;
            if (sgn ? (int64_t)v < (int64_t)lo : v < lo)
                lo = v;
            if (sgn ? (int64_t)v > (int64_t)hi : v > hi)
                hi = v;
            if (i && v != prev)
                nruns++;
            prev = v;
        }
        for (size_t i = 0, start = 0; i < n; i++)
            if (i + 1 == n || u[i + 1] != u[i]) {
                runs += ref_vlen(sgn ? tp_zz_enc(u[i]) : u[i]) + ref_vlen(i - start + 1);
                start = i + 1;
            }
        tp_units_plan p;
        tp_units_plan_varints(u, n, sgn, &p);
        CHECK(p.lo == lo && p.hi == hi);
        size_t size[5] = {0, raw, delta, delta2, runs};
        if (nruns == 1) {
            CHECK_INT(p.transform, TP_COLX_CONST);
            continue;
        }
        CHECK(p.transform >= TP_COLX_RAW && p.transform <= TP_COLX_RUNS);
        if (p.transform >= TP_COLX_RAW && p.transform <= TP_COLX_RUNS)
            CHECK_INT(p.body_len, size[p.transform]);
        size_t min = raw;
        for (int t = 2; t <= 4; t++)
            min = size[t] < min ? size[t] : min;
        if (n < TP_UNITS_EST_MIN) /* by exact size, ties to the lower transform */
            CHECK_INT(p.body_len, min);
        else
            CHECK(4 * p.body_len <= 5 * min);
        size_t min3 = raw < delta ? raw : delta;
        min3 = delta2 < min3 ? delta2 : min3;
        if (5 * runs < 4 * min3) /* runs is the only candidate */
            CHECK_INT(p.transform, TP_COLX_RUNS);
    }
    /* runs about 1.1 times as long as raw (one-byte values of 16 kinds 8 apart, runs of 1 or 2: 2 bytes a run) but of
     * fewer distinct bytes: runs is a candidate (2 bytes a run is within 1.25x of the smallest), and wins */
    uint64_t v = 0;
    size_t nruns = 0;
    for (size_t i = 0; i < N; nruns++) {
        v = (v + 1 + rnd() % 15) % 16;
        for (int len = rnd() % 100 < 82 ? 2 : 1; len > 0 && i < N; len--)
            u[i++] = 8 * v;
    }
    tp_units_plan p;
    tp_units_plan_varints(u, N, false, &p);
    CHECK(8 * nruns > 4 * N && 8 * nruns <= 5 * N);
    CHECK_INT(p.transform, TP_COLX_RUNS);
    CHECK_INT(p.body_len, 2 * nruns);
}

int main(void)
{
    CHECK_ERR(tp_colpack_encoder_new(&enc), TP_OK);
    test_gps();
    test_random_bits();
    test_chooser();
    test_scale_search();
    test_plan_pass();
    test_adversarial();
    test_large();
    test_malformed();
    test_can_represent();
    test_pack_layer();
    test_spec_example();
    tp_colpack_encoder_free(enc);
    return check_exit();
}
