/* pbpack v2 content: records transposed into columns, each column stored with the transform that makes it
 * smallest (constant, varints of values/deltas/delta-of-deltas, runs, or XOR/delta byte planes), decimal-scaled
 * when floating values are exact decimals. Spec: docs/FORMAT_V2.md.
 *
 *   +-------------+-------+-------+--------------------------+---------------------------------------+
 *   | 00 54 43 32 | count | ncols | ncols x descriptor       | bodies, in descriptor order, to the end |
 *   +-------------+-------+-------+--------------------------+---------------------------------------+
 *     magic "\0TC2"  varint  varint  field varint | code u8 | length varint
 *                                   code = transform (bits 0-2) | scale code << 3
 *
 *   body of a column of n units, by transform: const = 1 varint; raw / delta / delta2 = n varints;
 *   runs = (value, length) varint pairs; xor-planes / delta-planes = W planes of n bytes (W = 8 or 4).
 */
#include "codec/colpack.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared helpers ---- */

static const double pow10_f64[TP_COLPACK_MAX_SCALE + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
static const float pow10_f32[TP_COLPACK_MAX_SCALE + 1] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f,
                                                          1e5f, 1e6f, 1e7f, 1e8f, 1e9f};
/* The nearest binary64 / binary32 values to 10^-d, for producers that quantise by multiplying (k * 1e-6). */
static const double pow10neg_f64[TP_COLPACK_MAX_SCALE + 1] = {1e-0, 1e-1, 1e-2, 1e-3, 1e-4,
                                                              1e-5, 1e-6, 1e-7, 1e-8, 1e-9};
static const float pow10neg_f32[TP_COLPACK_MAX_SCALE + 1] = {1e-0f, 1e-1f, 1e-2f, 1e-3f, 1e-4f,
                                                             1e-5f, 1e-6f, 1e-7f, 1e-8f, 1e-9f};

/* The schema: field number -> column type. Index = field number - 1. */
static const uint8_t field_type[9] = {TP_COLT_UINT64, TP_COLT_INT64,  TP_COLT_UINT64,
                                      TP_COLT_DOUBLE, TP_COLT_DOUBLE, TP_COLT_FLOAT,
                                      TP_COLT_FLOAT,  TP_COLT_FLOAT,  TP_COLT_INT32};

static inline uint64_t zz_enc(uint64_t v) { return (v << 1) ^ (uint64_t)-(int64_t)(v >> 63); }
static inline uint64_t zz_dec(uint64_t v) { return (v >> 1) ^ (uint64_t)-(int64_t)(v & 1); }

/* Varint length by the number of leading zero bits: (64 - clz + 6) / 7, tabulated (the encoder's chooser calls
 * it five times per value). */
static const uint8_t varint_len_by_clz[64] = {
    10, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6, 6, 5, 5, 5,
    5,  5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1};
static inline size_t varint_len(uint64_t v) { return varint_len_by_clz[__builtin_clzll(v | 1)]; }

static inline uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Reads one varint from src[*pos..len): at most 10 bytes, the 10th at most 1. */
static inline tp_err varint_get(const uint8_t *src, size_t len, size_t *pos, uint64_t *out)
{
    size_t p = *pos;
    if (p < len && src[p] < 0x80) { /* fast path: one byte */
        *out = src[p];
        *pos = p + 1;
        return TP_OK;
    }
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p >= len)
            return TP_ERR_TRUNCATED;
        uint8_t b = src[p++];
        if (i == 9 && b > 1)
            return TP_ERR_VARINT_OVERFLOW;
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (b < 0x80) {
            *out = v;
            *pos = p;
            return TP_OK;
        }
    }
    return TP_ERR_VARINT_OVERFLOW;
}

static int plane_width(uint8_t type) { return (type == TP_COLT_FLOAT || type == TP_COLT_INT32) ? 4 : 8; }

static bool type_is_signed(uint8_t type, uint8_t scale)
{
    return type == TP_COLT_INT64 || type == TP_COLT_INT32 || scale != TP_COLPACK_SCALE_NONE;
}

static inline uint64_t bits_f64(double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    return u;
}
static inline uint32_t bits_f32(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}
static inline double f64_bits(uint64_t u)
{
    double v;
    memcpy(&v, &u, 8);
    return v;
}
static inline float f32_bits(uint32_t u)
{
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* Descriptor scale codes (5 bits): 0 none, 1..10 divide by 10^(c-1), 11..20 multiply by 1e-(c-11). The scale
 * inside this file is TP_COLPACK_SCALE_NONE, d, or TP_COLPACK_SCALE_MUL + d. */
static uint8_t scale_code(uint8_t scale)
{
    if (scale == TP_COLPACK_SCALE_NONE)
        return 0;
    return (uint8_t)(scale & TP_COLPACK_SCALE_MUL ? 11 + (scale & 0x0F) : 1 + scale);
}
static int scale_from_code(uint8_t code)
{
    if (code == 0)
        return TP_COLPACK_SCALE_NONE;
    if (code <= 10)
        return code - 1;
    if (code <= 20)
        return TP_COLPACK_SCALE_MUL + (code - 11);
    return -1;
}

bool tp_colpack_sniff(const uint8_t *content, size_t len)
{
    return content && len >= TP_COLPACK_MAGIC_LEN && memcmp(content, TP_COLPACK_MAGIC, TP_COLPACK_MAGIC_LEN) == 0;
}

int tp_colpack_version(const uint8_t *content, size_t len)
{
    if (tp_colpack_sniff(content, len))
        return 2;
    if (content && len >= TP_COLPACK_MAGIC_LEN && memcmp(content, TP_COLPACK_MAGIC_V3, TP_COLPACK_MAGIC_LEN) == 0)
        return 3;
    return 0;
}

/* ---- encoder ---- */

struct tp_colpack_encoder {
    uint64_t *units[9]; /* one scratch column per field */
    uint64_t *scaled;   /* the scaled integers of a decimal column, swapped into units[] when a scale fits */
    size_t units_cap;
    uint8_t *out;
    size_t out_cap;
    uint8_t *scratch;   /* version 3: a varint body written to estimate its compressed size */
    size_t scratch_cap;
};

tp_err tp_colpack_encoder_new(tp_colpack_encoder **out)
{
    if (!out)
        return TP_ERR_INVALID_ARG;
    *out = calloc(1, sizeof **out);
    return *out ? TP_OK : TP_ERR_NOMEM;
}

void tp_colpack_encoder_free(tp_colpack_encoder *e)
{
    if (!e)
        return;
    for (int i = 0; i < 9; i++)
        free(e->units[i]);
    free(e->scaled);
    free(e->out);
    free(e->scratch);
    free(e);
}

size_t tp_colpack_bound(size_t n)
{
    /* Every column's chosen body is at most its raw form (the chooser takes the smallest, raw included) or its
     * planes: per record 10 (vehicle_id) + 10 (sampled_at) + 10 (seq) + 8 + 8 (decimal k below 2^53, or 8-byte
     * planes) + 3 x 4 (float k below 2^24, or 4-byte planes) + 5 (int32 zigzag) = 63 bytes. A constant column
     * can exceed its per-record share by at most 2 bytes, a for-planes column (version 3) by 11 (its base and
     * width; its planes are never wider than the per-record share); magic, count, column count and nine
     * descriptors take at most 4 + 5 + 1 + 9 x 12. */
    return 260 + 63 * n;
}

typedef struct col_plan {
    uint8_t transform, scale;
    size_t body_len;
} col_plan;

/* Frame of reference of a column: the smallest unit (as int64 when signed) and the bytes W (1..8) that hold every
 * u[i] - base. */
static void for_frame(const uint64_t *u, size_t n, bool sgn, uint64_t *base, int *width)
{
    uint64_t lo = u[0], hi = u[0];
    for (size_t i = 1; i < n; i++) {
        if (sgn ? (int64_t)u[i] < (int64_t)lo : u[i] < lo)
            lo = u[i];
        if (sgn ? (int64_t)u[i] > (int64_t)hi : u[i] > hi)
            hi = u[i];
    }
    uint64_t range = hi - lo;
    int w = 1;
    while (w < 8 && (range >> (8 * w)))
        w++;
    *base = lo;
    *width = w;
}

/* Order-0 entropy of a byte histogram, in bytes: what a Huffman coder such as zstd's literals coder needs at best. */
static double entropy_bytes(const uint32_t hist[256], size_t n)
{
    double bits = 0;
    for (int b = 0; b < 256; b++)
        if (hist[b])
            bits += (double)hist[b] * log2((double)n / (double)hist[b]);
    return bits / 8;
}

/* Decimal scaling of floating columns. Scale byte s: 0..9 means value = (double)k / 10^s, the correctly rounded
 * quotient, which is what parsing the decimal text "k e-s" gives (strtod, NMEA receivers); 0x10+d means
 * value = (double)k * 1e-d, what a producer computing round(x * 1e6) * 1e-6 gets. k is the column's unit as a
 * signed 64-bit integer; float columns use binary32 arithmetic on (float)k. The encoder picks the smallest d at which
 * every value of the column round-trips bit-exactly; non-finite values and -0.0 never do (the column then keeps
 * its bit patterns). */
static inline double scaled_f64(int64_t k, uint8_t s)
{
    return s & TP_COLPACK_SCALE_MUL ? (double)k * pow10neg_f64[s & 0x0F] : (double)k / pow10_f64[s];
}
static inline float scaled_f32(int64_t k, uint8_t s)
{
    return s & TP_COLPACK_SCALE_MUL ? (float)k * pow10neg_f32[s & 0x0F] : (float)k / pow10_f32[s];
}

static inline bool dec_try_f64(double v, uint8_t s, int64_t *k)
{
    double x = v * pow10_f64[s & 0x0F];
    if (!(fabs(x) < 9007199254740992.0)) /* |k| < 2^53, so k converts exactly; also false for NaN */
        return false;
    int64_t r = (int64_t)(x < 0 ? x - 0.5 : x + 0.5);
    *k = r;
    return bits_f64(scaled_f64(r, s)) == bits_f64(v);
}

static inline bool dec_try_f32(float v, uint8_t s, int64_t *k)
{
    double x = (double)v * pow10_f64[s & 0x0F];
    if (!(fabs(x) < 16777216.0)) /* |k| < 2^24: k converts to float exactly */
        return false;
    int64_t r = (int64_t)(x < 0 ? x - 0.5 : x + 0.5);
    *k = r;
    return bits_f32(scaled_f32(r, s)) == bits_f32(v);
}

static inline bool dec_try(uint64_t u, bool is_f32, uint8_t s, int64_t *k)
{
    return is_f32 ? dec_try_f32(f32_bits((uint32_t)u), s, k) : dec_try_f64(f64_bits(u), s, k);
}

/* Finds the scale byte for a floating column (values given as bits in u) with the given mode (0 divide,
 * TP_COLPACK_SCALE_MUL multiply), writing the scaled integers to k; -1 if no scale fits. One pass in the usual
 * case: values are checked at the scale found so far, and only the values before the last increase of the scale
 * are checked again at the final one (round-tripping at a smaller scale almost always implies it at a larger one,
 * but the check is what makes the transform lossless). */
static int find_scale(const uint64_t *u, size_t n, bool is_f32, uint8_t mode, uint64_t *k)
{
    uint8_t d = 0;
    size_t changed = 0; /* values [0, changed) were checked at a smaller scale */
    int64_t x;
    for (size_t i = 0; i < n; i++) {
        while (!dec_try(u[i], is_f32, (uint8_t)(mode | d), &x)) {
            if (++d > TP_COLPACK_MAX_SCALE)
                return -1;
            changed = i;
        }
        k[i] = (uint64_t)x;
    }
    uint8_t s = (uint8_t)(mode | d);
    for (size_t i = 0; i < changed; i++) {
        if (!dec_try(u[i], is_f32, s, &x))
            return -1;
        k[i] = (uint64_t)x;
    }
    return s;
}

/* Chooses among the varint transforms by exact encoded size. */
static void plan_varints(const uint64_t *u, size_t n, bool sgn, col_plan *p)
{
    size_t raw = 0, delta = 0, delta2 = 0, runs = 0;
    uint64_t prev = 0, prevd = 0;
    bool all_same = true;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = u[i];
        raw += varint_len(sgn ? zz_enc(v) : v);
        uint64_t d = v - prev;
        delta += varint_len(zz_enc(d));
        if (i == 0) {
            delta2 += varint_len(zz_enc(v));
        } else {
            delta2 += varint_len(zz_enc(d - prevd));
            prevd = d;
        }
        if (i > 0 && v == prev) {
            run++;
        } else {
            if (i > 0) {
                runs += varint_len(sgn ? zz_enc(prev) : prev) + varint_len(run);
                all_same = false;
            }
            run = 1;
        }
        prev = v;
    }
    runs += varint_len(sgn ? zz_enc(prev) : prev) + varint_len(run);
    if (all_same) {
        p->transform = TP_COLX_CONST;
        p->body_len = varint_len(sgn ? zz_enc(u[0]) : u[0]);
        return;
    }
    p->transform = TP_COLX_RAW;
    p->body_len = raw;
    if (delta < p->body_len) {
        p->transform = TP_COLX_DELTA;
        p->body_len = delta;
    }
    if (delta2 < p->body_len) {
        p->transform = TP_COLX_DELTA2;
        p->body_len = delta2;
    }
    if (runs < p->body_len) {
        p->transform = TP_COLX_RUNS;
        p->body_len = runs;
    }
}

/* Bit patterns with no decimal scale: constant, or XOR / delta byte planes, whichever leaves fewer significant
 * bytes (zstd then squeezes the all-zero planes). */
static void plan_bits(const uint64_t *u, size_t n, int w, col_plan *p)
{
    bool all_same = true;
    size_t xor_bytes = 0, delta_bytes = 0;
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = u[i] ^ prev;
        uint64_t d = w == 8 ? zz_enc(u[i] - prev) : (uint64_t)(((uint32_t)(u[i] - prev) << 1) ^
                                                                (uint32_t) - (int32_t)((uint32_t)(u[i] - prev) >> 31));
        xor_bytes += x ? (size_t)(8 - __builtin_clzll(x) / 8) : 0;
        delta_bytes += d ? (size_t)(8 - __builtin_clzll(d) / 8) : 0;
        if (i > 0 && u[i] != prev)
            all_same = false;
        prev = u[i];
    }
    if (all_same) {
        p->transform = TP_COLX_CONST;
        p->body_len = varint_len(u[0]);
        return;
    }
    p->transform = delta_bytes < xor_bytes ? TP_COLX_DELTA_PLANES : TP_COLX_XOR_PLANES;
    p->body_len = (size_t)w * n;
}

static uint8_t *write_body(uint8_t *p, const uint64_t *u, size_t n, bool sgn, int w, uint8_t transform)
{
    uint64_t prev = 0, prevd = 0;
    switch (transform) {
    case TP_COLX_CONST:
        return varint_put(p, sgn ? zz_enc(u[0]) : u[0]);
    case TP_COLX_RAW:
        for (size_t i = 0; i < n; i++)
            p = varint_put(p, sgn ? zz_enc(u[i]) : u[i]);
        return p;
    case TP_COLX_DELTA:
        for (size_t i = 0; i < n; i++) {
            p = varint_put(p, zz_enc(u[i] - prev));
            prev = u[i];
        }
        return p;
    case TP_COLX_DELTA2:
        p = varint_put(p, zz_enc(u[0]));
        prev = u[0];
        for (size_t i = 1; i < n; i++) {
            uint64_t d = u[i] - prev;
            p = varint_put(p, zz_enc(d - prevd));
            prevd = d;
            prev = u[i];
        }
        return p;
    case TP_COLX_RUNS: {
        size_t i = 0;
        while (i < n) {
            size_t j = i + 1;
            while (j < n && u[j] == u[i])
                j++;
            p = varint_put(p, sgn ? zz_enc(u[i]) : u[i]);
            p = varint_put(p, j - i);
            i = j;
        }
        return p;
    }
    case TP_COLX_FOR_PLANES: {
        uint64_t base;
        int fw;
        for_frame(u, n, sgn, &base, &fw);
        p = varint_put(p, sgn ? zz_enc(base) : base);
        *p++ = (uint8_t)fw;
        for (size_t i = 0; i < n; i++)
            for (int b = 0; b < fw; b++)
                p[(size_t)b * n + i] = (uint8_t)((u[i] - base) >> (8 * b));
        return p + (size_t)fw * n;
    }
    case TP_COLX_XOR_PLANES:
    case TP_COLX_DELTA_PLANES:
        for (size_t i = 0; i < n; i++) {
            uint64_t x;
            if (transform == TP_COLX_XOR_PLANES) {
                x = u[i] ^ prev;
            } else if (w == 8) {
                x = zz_enc(u[i] - prev);
            } else {
                uint32_t d32 = (uint32_t)(u[i] - prev);
                x = (uint32_t)((d32 << 1) ^ (uint32_t) - (int32_t)(d32 >> 31));
            }
            prev = u[i];
            for (int b = 0; b < w; b++)
                p[(size_t)b * n + i] = (uint8_t)(x >> (8 * b));
        }
        return p + (size_t)w * n;
    default:
        return p;
    }
}

/* Version 3: replaces the varint plan of a column by for-planes when the planes' estimated compressed size is
 * smaller. Different vehicles' values side by side (a live fleet's pack: one sample per vehicle) differ by as much
 * as the values themselves: their deltas are as wide as the values and signed, and their varints mix high and low
 * bits in every byte, while planes of the offsets from the smallest value keep the few significant high bits in a
 * plane of their own that zstd squeezes. The estimate is each candidate's order-0 entropy (per plane for planes),
 * the varint body written into scratch; nothing changes for short columns or constant and run columns. */
static void plan_for(tp_colpack_encoder *e, const uint64_t *u, size_t n, bool sgn, col_plan *p)
{
    if (n < 16 || p->transform == TP_COLX_CONST || p->transform == TP_COLX_RUNS)
        return;
    uint64_t base;
    int w;
    for_frame(u, n, sgn, &base, &w);
    size_t for_len = varint_len(sgn ? zz_enc(base) : base) + 1 + (size_t)w * n;
    double est_for = (double)(for_len - (size_t)w * n);
    uint32_t hist[256];
    for (int b = 0; b < w; b++) {
        memset(hist, 0, sizeof hist);
        for (size_t i = 0; i < n; i++)
            hist[(uint8_t)((u[i] - base) >> (8 * b))]++;
        est_for += entropy_bytes(hist, n);
    }
    uint8_t *end = write_body(e->scratch, u, n, sgn, 8, p->transform);
    size_t vlen = (size_t)(end - e->scratch);
    memset(hist, 0, sizeof hist);
    for (size_t i = 0; i < vlen; i++)
        hist[e->scratch[i]]++;
    double est_var = entropy_bytes(hist, vlen);
    if (est_for < est_var * 0.95) { /* a margin: the estimate is rough, and the known transforms are the default */
        p->transform = TP_COLX_FOR_PLANES;
        p->body_len = for_len;
    }
}

static tp_err ensure_cap(tp_colpack_encoder *e, size_t n)
{
    if (n > e->units_cap) {
        size_t cap = e->units_cap ? e->units_cap : 64;
        while (cap < n)
            cap *= 2;
        for (int i = 0; i < 10; i++) {
            uint64_t **slot = i < 9 ? &e->units[i] : &e->scaled;
            uint64_t *g = realloc(*slot, cap * sizeof(uint64_t));
            if (!g)
                return TP_ERR_NOMEM;
            *slot = g;
        }
        e->units_cap = cap;
    }
    size_t need = tp_colpack_bound(n);
    if (need > e->out_cap) {
        uint8_t *g = realloc(e->out, need);
        if (!g)
            return TP_ERR_NOMEM;
        e->out = g;
        e->out_cap = need;
    }
    if (10 * n > e->scratch_cap) { /* one varint body: at most 10 bytes a unit */
        uint8_t *g = realloc(e->scratch, 10 * n);
        if (!g)
            return TP_ERR_NOMEM;
        e->scratch = g;
        e->scratch_cap = 10 * n;
    }
    return TP_OK;
}

tp_err tp_colpack_encode(tp_colpack_encoder *e, const tp_record *recs, size_t n, const uint8_t **out,
                         size_t *out_len)
{
    return tp_colpack_encode_version(e, recs, n, 2, out, out_len);
}

tp_err tp_colpack_encode_version(tp_colpack_encoder *e, const tp_record *recs, size_t n, int version,
                                 const uint8_t **out, size_t *out_len)
{
    if (!e || !recs || !out || !out_len || n == 0 || n > UINT32_MAX || n > (SIZE_MAX - 400) / 200 ||
        (version != 2 && version != 3))
        return TP_ERR_INVALID_ARG;
    if (version == 3)
        for (size_t i = 1; i < n; i++)
            if (recs[i].vehicle_id < recs[i - 1].vehicle_id ||
                (recs[i].vehicle_id == recs[i - 1].vehicle_id && recs[i].sampled_at_ms < recs[i - 1].sampled_at_ms))
                return TP_ERR_INVALID_ARG;
    tp_err err = ensure_cap(e, n);
    if (err)
        return err;

    uint64_t **u = e->units;
    uint64_t nonzero[9] = {0};
    for (size_t i = 0; i < n; i++) {
        const tp_record *r = &recs[i];
        u[0][i] = r->vehicle_id;
        u[1][i] = (uint64_t)r->sampled_at_ms;
        u[2][i] = r->seq;
        u[3][i] = bits_f64(r->latitude);
        u[4][i] = bits_f64(r->longitude);
        u[5][i] = bits_f32(r->speed_kmh);
        u[6][i] = bits_f32(r->heading_deg);
        u[7][i] = bits_f32(r->accuracy_m);
        u[8][i] = (uint64_t)(int64_t)r->meter_status;
        for (int c = 0; c < 9; c++)
            nonzero[c] |= u[c][i];
    }

    col_plan plan[9];
    int ncols = 0;
    for (int c = 0; c < 9; c++) {
        plan[c].transform = 0xFF;
        if (!nonzero[c]) /* every value zero (+0.0 for floating): the column is omitted */
            continue;
        ncols++;
        uint8_t type = field_type[c];
        plan[c].scale = TP_COLPACK_SCALE_NONE;
        if (type == TP_COLT_DOUBLE || type == TP_COLT_FLOAT) {
            int d = find_scale(u[c], n, type == TP_COLT_FLOAT, 0, e->scaled);
            if (d < 0)
                d = find_scale(u[c], n, type == TP_COLT_FLOAT, TP_COLPACK_SCALE_MUL, e->scaled);
            if (d < 0) {
                plan_bits(u[c], n, plane_width(type), &plan[c]);
                continue;
            }
            plan[c].scale = (uint8_t)d;
            uint64_t *bits = u[c]; /* the column's units are now the scaled integers */
            u[c] = e->scaled;
            e->scaled = bits;
        }
        plan_varints(u[c], n, type_is_signed(type, plan[c].scale), &plan[c]);
        if (version == 3)
            plan_for(e, u[c], n, type_is_signed(type, plan[c].scale), &plan[c]);
    }

    uint8_t *p = e->out;
    memcpy(p, version == 3 ? TP_COLPACK_MAGIC_V3 : TP_COLPACK_MAGIC, TP_COLPACK_MAGIC_LEN);
    p += TP_COLPACK_MAGIC_LEN;
    p = varint_put(p, n);
    p = varint_put(p, (uint64_t)ncols);
    for (int c = 0; c < 9; c++) {
        if (plan[c].transform == 0xFF)
            continue;
        p = varint_put(p, (uint64_t)(c + 1));
        *p++ = (uint8_t)(plan[c].transform | scale_code(plan[c].scale) << 3);
        p = varint_put(p, plan[c].body_len);
    }
    for (int c = 0; c < 9; c++) {
        if (plan[c].transform == 0xFF)
            continue;
        uint8_t type = field_type[c];
        p = write_body(p, u[c], n, type_is_signed(type, plan[c].scale), plane_width(type), plan[c].transform);
    }
    *out = e->out;
    *out_len = (size_t)(p - e->out);
    return TP_OK;
}

/* Walks one protobuf message checking that it holds only fields 1..9 with the schema's wire types. */
bool tp_colpack_can_represent(const uint8_t *msg, size_t len)
{
    if (!msg && len)
        return false;
    /* wire types: 0 varint (1,2,3,9), 1 fixed64 (4,5), 5 fixed32 (6,7,8) */
    static const uint8_t want[10] = {0xFF, 0, 0, 0, 1, 1, 5, 5, 5, 0};
    size_t pos = 0;
    while (pos < len) {
        uint64_t tag, v;
        if (varint_get(msg, len, &pos, &tag))
            return false;
        uint64_t field = tag >> 3;
        unsigned wt = (unsigned)(tag & 7);
        if (field < 1 || field > 9 || want[field] != wt)
            return false;
        if (wt == 0) {
            if (varint_get(msg, len, &pos, &v))
                return false;
        } else {
            size_t w = wt == 1 ? 8 : 4;
            if (len - pos < w)
                return false;
            pos += w;
        }
    }
    return true;
}

/* ---- decoder ---- */

#define COL_ABSENT 0xFF

static tp_err fail(tp_colpack_reader *r, tp_err err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static tp_err fail(tp_colpack_reader *r, tp_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    return err;
}

static const char *transform_name(uint8_t t)
{
    static const char *const names[TP_COLX__COUNT] = {"const", "raw", "delta", "delta2", "runs", "xor-planes",
                                                      "delta-planes", "for-planes"};
    return t < TP_COLX__COUNT ? names[t] : "unknown";
}

/* A column descriptor: its bodies follow the last descriptor, in order. */
typedef struct {
    uint64_t field, blen;
    uint8_t code;
} col_desc;

/* The header after the magic: the version, the record count (1..max_records, at most 2^32-1) and the column
 * count (at most TP_COLPACK_MAX_COLUMNS); *pos ends after it. */
static tp_err read_header(tp_colpack_reader *r, const uint8_t *content, size_t len, uint64_t max_records,
                          size_t *pos, uint64_t *ncols)
{
    int version = tp_colpack_version(content, len);
    if (!version)
        return fail(r, TP_ERR_UNKNOWN_VERSION,
                    "content of %zu bytes does not start with the pbpack v2 or v3 magic 00 54 43 32 / 33; it is "
                    "not column-layout content this reader knows",
                    len);
    r->version = (uint8_t)version;
    *pos = TP_COLPACK_MAGIC_LEN;
    uint64_t count;
    tp_err err;
    if ((err = varint_get(content, len, pos, &count)))
        return fail(r, err, "header: record count varint at content offset %zu is %s", *pos,
                    err == TP_ERR_TRUNCATED ? "cut off" : "longer than 10 bytes");
    if (count == 0)
        return fail(r, TP_ERR_CORRUPT, "header: record count 0; a pack holds at least one record");
    if (count > max_records || count > UINT32_MAX)
        return fail(r, TP_ERR_PACK_TOO_LARGE,
                    "header: record count %" PRIu64 " above the reader's limit of %" PRIu64
                    " records; raise max_pack_bytes if the pack is legitimate",
                    count, max_records < UINT32_MAX ? max_records : (uint64_t)UINT32_MAX);
    if ((err = varint_get(content, len, pos, ncols)))
        return fail(r, err, "header: column count varint at content offset %zu is %s", *pos,
                    err == TP_ERR_TRUNCATED ? "cut off" : "longer than 10 bytes");
    if (*ncols > TP_COLPACK_MAX_COLUMNS)
        return fail(r, TP_ERR_CORRUPT, "header: %" PRIu64 " columns, above the limit of %d", *ncols,
                    TP_COLPACK_MAX_COLUMNS);
    r->count = (uint32_t)count;
    return TP_OK;
}

/* The ncols column descriptors (field varint, code byte, body length varint) from *pos into desc. */
static tp_err read_descriptors(tp_colpack_reader *r, const uint8_t *content, size_t len, size_t *pos,
                               uint64_t ncols, col_desc *desc)
{
    tp_err err;
    for (uint64_t i = 0; i < ncols; i++) {
        size_t at = *pos;
        if ((err = varint_get(content, len, pos, &desc[i].field)))
            return fail(r, err, "column descriptor %" PRIu64 " at content offset %zu: field number %s", i, at,
                        err == TP_ERR_TRUNCATED ? "cut off" : "varint longer than 10 bytes");
        if (*pos >= len)
            return fail(r, TP_ERR_TRUNCATED, "column descriptor %" PRIu64 " at content offset %zu is cut off", i,
                        at);
        desc[i].code = content[(*pos)++];
        if ((err = varint_get(content, len, pos, &desc[i].blen)))
            return fail(r, err, "column descriptor %" PRIu64 " at content offset %zu: body length %s", i, at,
                        err == TP_ERR_TRUNCATED ? "cut off" : "varint longer than 10 bytes");
    }
    return TP_OK;
}

/* Column i's transform and scale (from its descriptor d, for a field of this type) exist in the reader's version
 * and fit the type, and its body length can hold count records with that transform. */
static tp_err check_transform(tp_colpack_reader *r, uint64_t i, const col_desc *d, uint8_t type, uint64_t count,
                              uint8_t *tr_out, uint8_t *sc_out)
{
    uint64_t f = d->field, blen = d->blen;
    uint8_t tr = d->code & 7;
    int sci = scale_from_code((uint8_t)(d->code >> 3));
    if (tr == TP_COLX_FOR_PLANES && r->version < 3)
        return fail(r, TP_ERR_UNKNOWN_VERSION,
                    "column %" PRIu64 " (field %" PRIu64 "): transform %u is reserved in version 2 (0..6); "
                    "for-planes exists from version 3 on",
                    i, f, tr);
    bool floating = type == TP_COLT_DOUBLE || type == TP_COLT_FLOAT;
    if (sci < 0 || (sci != TP_COLPACK_SCALE_NONE && !floating))
        return fail(r, TP_ERR_CORRUPT,
                    "column %" PRIu64 " (field %" PRIu64 "): scale code %u invalid (0, or 1..20 for floating "
                    "fields only)",
                    i, f, d->code >> 3);
    uint8_t sc = (uint8_t)sci;
    bool planes = tr == TP_COLX_XOR_PLANES || tr == TP_COLX_DELTA_PLANES;
    if (planes && sc != TP_COLPACK_SCALE_NONE)
        return fail(r, TP_ERR_CORRUPT, "column %" PRIu64 " (field %" PRIu64 "): %s with a decimal scale", i, f,
                    transform_name(tr));
    /* Body size bounds per transform: a lying record count is caught here, before decoding. */
    uint64_t w = (uint64_t)plane_width(type);
    bool bad = false;
    if (planes)
        bad = blen != w * count;
    else if (tr == TP_COLX_CONST)
        bad = blen < 1 || blen > 10;
    else if (tr == TP_COLX_RUNS)
        bad = blen < 2 || blen > 20 * count;
    else if (tr == TP_COLX_FOR_PLANES) /* base varint, width byte, 1..8 planes */
        bad = blen < 2 + count || blen > 11 + 8 * count;
    else
        bad = blen < count || blen > 10 * count;
    if (bad)
        return fail(r, TP_ERR_CORRUPT,
                    "column %" PRIu64 " (field %" PRIu64 "): %s body of %" PRIu64 " bytes cannot hold %" PRIu64
                    " records",
                    i, f, transform_name(tr), blen, count);
    *tr_out = tr;
    *sc_out = sc;
    return TP_OK;
}

/* The head of column i's body for the transforms that have one: const's one varint, for-planes' base varint and
 * width byte (then exactly width x count plane bytes). */
static tp_err read_body_head(tp_colpack_reader *r, tp_colpack_col *c, uint64_t i, uint64_t count)
{
    uint64_t f = c->field;
    const uint8_t *body = c->body;
    tp_err err;
    if (c->transform == TP_COLX_CONST) {
        size_t p = 0;
        uint64_t v;
        if ((err = varint_get(body, c->len, &p, &v)) || p != c->len)
            return fail(r, err ? err : TP_ERR_CORRUPT,
                        "column %" PRIu64 " (field %" PRIu64 "): constant is not exactly one varint", i, f);
        c->run_val = c->signed_units ? zz_dec(v) : v;
    }
    if (c->transform == TP_COLX_FOR_PLANES) {
        size_t p = 0;
        uint64_t v;
        if ((err = varint_get(body, c->len, &p, &v)) || p >= c->len)
            return fail(r, err ? err : TP_ERR_CORRUPT,
                        "column %" PRIu64 " (field %" PRIu64 "): for-planes base is not a varint followed by a "
                        "width", i, f);
        uint8_t fw = body[p++];
        if (fw < 1 || fw > 8 || c->len - p != (size_t)fw * count)
            return fail(r, TP_ERR_CORRUPT,
                        "column %" PRIu64 " (field %" PRIu64 "): for-planes width %u with %zu plane bytes "
                        "for %" PRIu64 " records (the width must be 1..8 and the planes width x records)",
                        i, f, fw, c->len - p, count);
        c->run_val = c->signed_units ? zz_dec(v) : v;
        c->width = fw;
        c->planes = body + p;
    }
    return TP_OK;
}

tp_err tp_colpack_open(tp_colpack_reader *r, const uint8_t *content, size_t len, uint64_t max_records)
{
    if (!r)
        return TP_ERR_INVALID_ARG;
    memset(r, 0, sizeof *r);
    for (int c = 0; c < 9; c++)
        r->cols[c].transform = COL_ABSENT;
    if (!content && len)
        return fail(r, TP_ERR_INVALID_ARG, "no content buffer given");
    size_t pos = 0;
    uint64_t ncols = 0;
    col_desc desc[TP_COLPACK_MAX_COLUMNS];
    tp_err err;
    if ((err = read_header(r, content, len, max_records, &pos, &ncols)) ||
        (err = read_descriptors(r, content, len, &pos, ncols, desc)))
        return err;
    uint64_t count = r->count;
    size_t body_at = pos;
    for (uint64_t i = 0; i < ncols; i++) {
        uint64_t f = desc[i].field, blen = desc[i].blen;
        if (blen > len - body_at)
            return fail(r, TP_ERR_TRUNCATED,
                        "column %" PRIu64 " (field %" PRIu64 "): body of %" PRIu64
                        " bytes at content offset %zu runs past the end of the %zu-byte content",
                        i, f, blen, body_at, len);
        const uint8_t *body = content + body_at;
        body_at += (size_t)blen;
        if (f == 0 || f > 536870911u)
            return fail(r, TP_ERR_CORRUPT, "column %" PRIu64 ": field number %" PRIu64 " outside 1..2^29-1", i, f);
        if (f > 9)
            continue; /* a newer schema's field: skipped, as protobuf skips unknown fields */
        tp_colpack_col *c = &r->cols[f - 1];
        if (c->transform != COL_ABSENT)
            return fail(r, TP_ERR_CORRUPT, "column %" PRIu64 ": field %" PRIu64 " appears twice", i, f);
        uint8_t type = field_type[f - 1], tr = 0, sc = 0;
        if ((err = check_transform(r, i, &desc[i], type, count, &tr, &sc)))
            return err;
        c->body = body;
        c->len = (size_t)blen;
        c->field = (uint32_t)f;
        c->type = type;
        c->transform = tr;
        c->scale = sc;
        c->signed_units = type_is_signed(type, sc);
        if ((err = read_body_head(r, c, i, count)))
            return err;
    }
    if (body_at != len)
        return fail(r, TP_ERR_TRAILING_GARBAGE, "%zu bytes after the last column body (content offset %zu)",
                    len - body_at, body_at);
    r->ncols = 9;
    return TP_OK;
}

/* Reads k varints from b[*pos..len) into u. While 10 or more bytes remain no varint can run past the end, so the
 * loop checks bounds only near the end of the body. */
static tp_err get_varints(const uint8_t *b, size_t len, size_t *pos, uint64_t *u, size_t k)
{
    size_t p = *pos, i = 0;
    while (i < k && len - p >= 10) {
        if (k - i >= 8) { /* eight one-byte varints at once: the usual case for small deltas */
            uint64_t w;
            memcpy(&w, b + p, 8);
            if (!(w & 0x8080808080808080ull)) {
                for (int j = 0; j < 8; j++)
                    u[i + j] = b[p + j];
                i += 8;
                p += 8;
                continue;
            }
        }
        uint64_t v = b[p++];
        if (v >= 0x80) {
            v &= 0x7F;
            for (int shift = 7;; shift += 7) {
                uint64_t x = b[p++];
                if (shift == 63 && x > 1) {
                    *pos = p - 10;
                    return TP_ERR_VARINT_OVERFLOW;
                }
                v |= (x & 0x7F) << shift;
                if (x < 0x80)
                    break;
                if (shift == 63) {
                    *pos = p - 10;
                    return TP_ERR_VARINT_OVERFLOW;
                }
            }
        }
        u[i++] = v;
    }
    for (; i < k; i++) {
        tp_err err = varint_get(b, len, &p, &u[i]);
        if (err) {
            *pos = p;
            return err;
        }
    }
    *pos = p;
    return TP_OK;
}

/* Decodes the next k units of column c into u[0..k). */
static tp_err col_units(tp_colpack_reader *r, tp_colpack_col *c, uint64_t *u, size_t k)
{
    tp_err err = TP_OK;
    uint64_t v, prev = c->prev, prevd = c->prevd;
    size_t pos = c->pos;
    const uint8_t *b = c->body;
    size_t len = c->len;
    switch (c->transform) {
    case TP_COLX_CONST:
        for (size_t i = 0; i < k; i++)
            u[i] = c->run_val;
        return TP_OK;
    case TP_COLX_RAW:
        if ((err = get_varints(b, len, &pos, u, k)))
            goto bad_varint;
        if (c->signed_units)
            for (size_t i = 0; i < k; i++)
                u[i] = zz_dec(u[i]);
        break;
    case TP_COLX_DELTA:
        if ((err = get_varints(b, len, &pos, u, k)))
            goto bad_varint;
        for (size_t i = 0; i < k; i++) {
            prev += zz_dec(u[i]);
            u[i] = prev;
        }
        break;
    case TP_COLX_DELTA2: {
        if ((err = get_varints(b, len, &pos, u, k)))
            goto bad_varint;
        size_t i = 0;
        if (r->done == 0 && k > 0) {
            prev = zz_dec(u[0]);
            u[i++] = prev;
        }
        for (; i < k; i++) {
            prevd += zz_dec(u[i]);
            prev += prevd;
            u[i] = prev;
        }
        break;
    }
    case TP_COLX_RUNS:
        for (size_t i = 0; i < k;) {
            if (c->run_left == 0) {
                uint64_t rl;
                if ((err = varint_get(b, len, &pos, &v)))
                    goto bad_varint;
                if ((err = varint_get(b, len, &pos, &rl)))
                    goto bad_varint;
                if (rl == 0 || rl > (uint64_t)(r->count - r->done - i))
                    return fail(r, TP_ERR_CORRUPT,
                                "field %u: run of %" PRIu64 " records at record %zu, where %zu records remain",
                                c->field, rl, (size_t)r->done + i, (size_t)(r->count - r->done - i));
                c->run_val = c->signed_units ? zz_dec(v) : v;
                c->run_left = rl;
            }
            size_t take = c->run_left < k - i ? (size_t)c->run_left : k - i;
            for (size_t j = 0; j < take; j++)
                u[i + j] = c->run_val;
            i += take;
            c->run_left -= take;
        }
        break;
    case TP_COLX_FOR_PLANES: {
        size_t n = r->count, at = r->done;
        for (size_t i = 0; i < k; i++) {
            uint64_t x = 0;
            for (int j = 0; j < c->width; j++)
                x |= (uint64_t)c->planes[(size_t)j * n + at + i] << (8 * j);
            u[i] = c->run_val + x;
        }
        break;
    }
    case TP_COLX_XOR_PLANES:
    case TP_COLX_DELTA_PLANES: {
        int w = plane_width(c->type);
        size_t n = r->count, at = r->done;
        for (size_t i = 0; i < k; i++) {
            uint64_t x = 0;
            for (int j = 0; j < w; j++)
                x |= (uint64_t)b[(size_t)j * n + at + i] << (8 * j);
            if (c->transform == TP_COLX_XOR_PLANES)
                prev ^= x;
            else if (w == 8)
                prev += zz_dec(x);
            else
                prev = (uint32_t)((uint32_t)prev + (uint32_t)((x >> 1) ^ (uint32_t) - (uint32_t)(x & 1)));
            /* prev stays within 32 bits for W = 4; an int32 unit is its sign extension */
            u[i] = c->type == TP_COLT_INT32 ? (uint64_t)(int64_t)(int32_t)(uint32_t)prev : prev;
        }
        pos = (at + k) * (size_t)w; /* informational; planes are addressed by record index */
        break;
    }
    default:
        return fail(r, TP_ERR_CORRUPT, "field %u: transform %u", c->field, c->transform);
    }
    c->pos = pos;
    c->prev = prev;
    c->prevd = prevd;
    return TP_OK;
bad_varint:
    return fail(r, err, "field %u: %s varint at body offset %zu (records %zu..%zu)", c->field,
                err == TP_ERR_TRUNCATED ? "cut-off" : "over-long", pos, (size_t)r->done, (size_t)r->done + k - 1);
}

/* Checks a unit fits its column's type; for int32 and float bit patterns the unit must fit 32 bits. */
static tp_err check_units32(tp_colpack_reader *r, const tp_colpack_col *c, const uint64_t *u, size_t k)
{
    uint64_t bad = 0;
    size_t at = 0;
    if (c->type == TP_COLT_INT32) {
        for (size_t i = 0; i < k; i++)
            if ((int64_t)u[i] != (int64_t)(int32_t)(uint32_t)u[i]) {
                bad = 1, at = i;
                break;
            }
    } else if (c->type == TP_COLT_FLOAT && c->scale == TP_COLPACK_SCALE_NONE) {
        for (size_t i = 0; i < k; i++)
            if (u[i] >> 32) {
                bad = 1, at = i;
                break;
            }
    }
    if (bad)
        return fail(r, TP_ERR_CORRUPT, "field %u: value 0x%" PRIx64 " of record %zu does not fit 32 bits", c->field,
                    u[at], (size_t)r->done + at);
    return TP_OK;
}

static inline double unit_f64(uint64_t u, uint8_t scale)
{
    return scale == TP_COLPACK_SCALE_NONE ? f64_bits(u) : scaled_f64((int64_t)u, scale);
}
static inline float unit_f32(uint64_t u, uint8_t scale)
{
    return scale == TP_COLPACK_SCALE_NONE ? f32_bits((uint32_t)u) : scaled_f32((int64_t)u, scale);
}

/* Units to values into a contiguous array, with the scale decided once per chunk so the loops stay simple. */
static void units_to_f64(const uint64_t *u, size_t m, uint8_t scale, double *dst)
{
    if (scale == TP_COLPACK_SCALE_NONE) {
        memcpy(dst, u, m * sizeof *dst);
    } else if (scale & TP_COLPACK_SCALE_MUL) {
        double q = pow10neg_f64[scale & 0x0F];
        for (size_t j = 0; j < m; j++)
            dst[j] = (double)(int64_t)u[j] * q;
    } else {
        double q = pow10_f64[scale];
        for (size_t j = 0; j < m; j++)
            dst[j] = (double)(int64_t)u[j] / q;
    }
}
static void units_to_f32(const uint64_t *u, size_t m, uint8_t scale, float *dst)
{
    if (scale == TP_COLPACK_SCALE_NONE) {
        for (size_t j = 0; j < m; j++)
            dst[j] = f32_bits((uint32_t)u[j]);
    } else if (scale & TP_COLPACK_SCALE_MUL) {
        float q = pow10neg_f32[scale & 0x0F];
        for (size_t j = 0; j < m; j++)
            dst[j] = (float)(int64_t)u[j] * q;
    } else {
        float q = pow10_f32[scale];
        for (size_t j = 0; j < m; j++)
            dst[j] = (float)(int64_t)u[j] / q;
    }
}

#define CHUNK 256

/* Version 3: records ascend by (vehicle_id, sampled_at_ms); ids/times are the next m records decoded. */
static tp_err check_order(tp_colpack_reader *r, const uint64_t *ids, const int64_t *times, size_t stride, size_t m)
{
    if (r->version != 3)
        return TP_OK;
    uint64_t lv = r->last_vehicle;
    int64_t lt = r->last_sampled;
    for (size_t j = 0; j < m; j++) {
        uint64_t v = *(const uint64_t *)((const char *)ids + j * stride);
        int64_t t = *(const int64_t *)((const char *)times + j * stride);
        if ((r->done > 0 || j > 0) && (v < lv || (v == lv && t < lt)))
            return fail(r, TP_ERR_CORRUPT,
                        "record %zu (vehicle_id %" PRIu64 ", sampled_at_ms %" PRId64 ") comes after (%" PRIu64
                        ", %" PRId64 "): a version-3 pack is sorted by vehicle_id, then sampled_at_ms",
                        (size_t)r->done + j, v, t, lv, lt);
        lv = v;
        lt = t;
    }
    r->last_vehicle = lv;
    r->last_sampled = lt;
    return TP_OK;
}

/* After the last record: every variable-length column must have been consumed exactly. */
static tp_err check_consumed(tp_colpack_reader *r)
{
    for (int f = 0; f < 9; f++) {
        tp_colpack_col *c = &r->cols[f];
        if (c->transform == COL_ABSENT || c->transform == TP_COLX_CONST || c->transform == TP_COLX_XOR_PLANES ||
            c->transform == TP_COLX_DELTA_PLANES || c->transform == TP_COLX_FOR_PLANES)
            continue;
        if (c->pos != c->len || c->run_left)
            return fail(r, TP_ERR_CORRUPT, "field %u: %zu bytes of its %zu-byte body left after the last record",
                        c->field, c->len - c->pos, c->len);
    }
    return TP_OK;
}

tp_err tp_colpack_read_records(tp_colpack_reader *r, tp_record *out, size_t k)
{
    if (!r || (!out && k) || r->ncols == 0 || k > (size_t)(r->count - r->done))
        return TP_ERR_INVALID_ARG;
    uint64_t u[CHUNK];
    for (size_t base = 0; base < k; base += CHUNK) {
        size_t m = k - base < CHUNK ? k - base : CHUNK;
        tp_record *o = out + base;
        for (int f = 0; f < 9; f++) {
            tp_colpack_col *c = &r->cols[f];
            if (c->transform == COL_ABSENT) {
                memset(u, 0, m * sizeof u[0]);
            } else {
                tp_err err = col_units(r, c, u, m);
                if (!err)
                    err = check_units32(r, c, u, m);
                if (err) {
                    r->ncols = 0;
                    return err;
                }
            }
            switch (f) {
            case 0: for (size_t j = 0; j < m; j++) o[j].vehicle_id = u[j]; break;
            case 1: for (size_t j = 0; j < m; j++) o[j].sampled_at_ms = (int64_t)u[j]; break;
            case 2: for (size_t j = 0; j < m; j++) o[j].seq = u[j]; break;
            case 3: for (size_t j = 0; j < m; j++) o[j].latitude = unit_f64(u[j], c->scale); break;
            case 4: for (size_t j = 0; j < m; j++) o[j].longitude = unit_f64(u[j], c->scale); break;
            case 5: for (size_t j = 0; j < m; j++) o[j].speed_kmh = unit_f32(u[j], c->scale); break;
            case 6: for (size_t j = 0; j < m; j++) o[j].heading_deg = unit_f32(u[j], c->scale); break;
            case 7: for (size_t j = 0; j < m; j++) o[j].accuracy_m = unit_f32(u[j], c->scale); break;
            default: for (size_t j = 0; j < m; j++) o[j].meter_status = (int32_t)(uint32_t)u[j]; break;
            }
        }
        tp_err err = check_order(r, &o[0].vehicle_id, &o[0].sampled_at_ms, sizeof o[0], m);
        if (err) {
            r->ncols = 0;
            return err;
        }
        r->done += (uint32_t)m;
    }
    if (r->done == r->count) {
        tp_err err = check_consumed(r);
        if (err) {
            r->ncols = 0;
            return err;
        }
    }
    return TP_OK;
}

tp_err tp_colpack_read_rows(tp_colpack_reader *r, tp_row_batch *b, int32_t partition, int64_t offset)
{
    if (!r || !b || r->ncols == 0)
        return TP_ERR_INVALID_ARG;
    size_t k = r->count - r->done;
    if (b->capacity - b->count < k)
        return fail(r, TP_ERR_FULL, "row batch has room for %zu rows, the pack holds %zu", b->capacity - b->count,
                    k);
    size_t at = b->count;
    uint32_t done0 = r->done;
    /* Column at a time: each column's chunk loop stays in the cache and the inner loops vectorise. */
    for (int f = 0; f < 9; f++) {
        tp_colpack_col *c = &r->cols[f];
        r->done = done0;
        for (size_t base = 0; base < k; base += CHUNK) {
            size_t m = k - base < CHUNK ? k - base : CHUNK;
            size_t d = at + base;
            if (c->transform == COL_ABSENT || c->transform == TP_COLX_CONST) {
                /* One value for the whole chunk: convert it once (absent columns are all zero). */
                uint64_t one = c->transform == COL_ABSENT ? 0 : c->run_val;
                tp_err err = c->transform == COL_ABSENT ? TP_OK : check_units32(r, c, &one, 1);
                if (err) {
                    r->ncols = 0;
                    return err;
                }
                switch (f) {
                case 0: for (size_t j = 0; j < m; j++) b->vehicle_id[d + j] = one; break;
                case 1: for (size_t j = 0; j < m; j++) b->sampled_at_ms[d + j] = (int64_t)one; break;
                case 2: for (size_t j = 0; j < m; j++) b->seq[d + j] = one; break;
                case 3: case 4: {
                    double v = unit_f64(one, c->scale), *dst = f == 3 ? b->latitude + d : b->longitude + d;
                    for (size_t j = 0; j < m; j++)
                        dst[j] = v;
                    break;
                }
                case 5: case 6: case 7: {
                    float v = unit_f32(one, c->scale);
                    float *dst = f == 5 ? b->speed_kmh + d : f == 6 ? b->heading_deg + d : b->accuracy_m + d;
                    for (size_t j = 0; j < m; j++)
                        dst[j] = v;
                    break;
                }
                default: for (size_t j = 0; j < m; j++) b->meter_status[d + j] = (int32_t)(uint32_t)one; break;
                }
                r->done += (uint32_t)m;
                continue;
            }
            uint64_t u[CHUNK];
            uint64_t *dst = f == 0 ? b->vehicle_id + d : f == 1 ? (uint64_t *)(b->sampled_at_ms + d)
                                                     : f == 2 ? b->seq + d
                                                              : u;
            tp_err err = col_units(r, c, dst, m);
            if (!err)
                err = check_units32(r, c, dst, m);
            if (err) {
                r->ncols = 0;
                return err;
            }
            switch (f) {
            case 3: units_to_f64(u, m, c->scale, b->latitude + d); break;
            case 4: units_to_f64(u, m, c->scale, b->longitude + d); break;
            case 5: units_to_f32(u, m, c->scale, b->speed_kmh + d); break;
            case 6: units_to_f32(u, m, c->scale, b->heading_deg + d); break;
            case 7: units_to_f32(u, m, c->scale, b->accuracy_m + d); break;
            case 8: for (size_t j = 0; j < m; j++) b->meter_status[d + j] = (int32_t)(uint32_t)u[j]; break;
            default: break;
            }
            r->done += (uint32_t)m;
        }
    }
    r->done = done0;
    tp_err err = check_order(r, b->vehicle_id + at, b->sampled_at_ms + at, sizeof(uint64_t), k);
    r->done = done0 + (uint32_t)k;
    if (!err)
        err = check_consumed(r);
    if (err) {
        r->ncols = 0;
        return err;
    }
    for (size_t j = 0; j < k; j++) {
        b->kafka_partition[at + j] = partition;
        b->kafka_offset[at + j] = offset;
    }
    b->count = at + k;
    return TP_OK;
}
