/* Unit columns (codec/colunits.h): planning, writing and reading the transforms of one column of 64-bit units.
 * The byte forms are specified in docs/FORMAT_V2.md ("Units, scale and transforms", "Version 3"). */
#include "codec/colunits.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static const double pow10_f64[TP_COLPACK_MAX_SCALE + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
static const float pow10_f32[TP_COLPACK_MAX_SCALE + 1] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f, 1e6f, 1e7f, 1e8f, 1e9f};
/* The nearest binary64 / binary32 values to 10^-d, for producers that quantise by multiplying (k * 1e-6). */
static const double pow10neg_f64[TP_COLPACK_MAX_SCALE + 1] = {1e-0, 1e-1, 1e-2, 1e-3, 1e-4,
                                                              1e-5, 1e-6, 1e-7, 1e-8, 1e-9};
static const float pow10neg_f32[TP_COLPACK_MAX_SCALE + 1] = {1e-0f, 1e-1f, 1e-2f, 1e-3f, 1e-4f,
                                                             1e-5f, 1e-6f, 1e-7f, 1e-8f, 1e-9f};

/* Hot loops have a second copy built for x86-64 CPUs with AVX-512, where the compiler vectorizes them (varint
 * lengths by vplzcntq, double <-> int64 conversions); have_avx512 chooses at run time. The copies compute the same
 * numbers: integer arithmetic, or the same IEEE operations one by one (no contraction into fused multiply-adds). */
#if defined(__x86_64__) && defined(__GNUC__)
#define UNITS_AVX512 1
#if defined(__clang__)
#define UNITS_AVX512_ATTR __attribute__((target("avx512f,avx512cd,avx512vl,avx512dq,avx512bw")))
#else
#define UNITS_AVX512_ATTR                                                                                              \
    __attribute__((target("avx512f,avx512cd,avx512vl,avx512dq,avx512bw"),                                              \
                   optimize("tree-vectorize", "vect-cost-model=dynamic", "fp-contract=off")))
#endif

/* The CPU runs AVX-512 F, CD, VL, DQ and BW (the features the copies above are built for). */
static bool have_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw");
}
#endif

/* Descriptor scale codes (5 bits): 0 none, 1..10 divide by 10^(c-1), 11..20 multiply by 1e-(c-11). The scale
 * inside this file is TP_COLPACK_SCALE_NONE, d, or TP_COLPACK_SCALE_MUL + d. */
uint8_t tp_units_scale_code(uint8_t scale)
{
    if (scale == TP_COLPACK_SCALE_NONE)
        return 0;
    return (uint8_t)(scale & TP_COLPACK_SCALE_MUL ? 11 + (scale & 0x0F) : 1 + scale);
}
int tp_units_scale_from_code(uint8_t code)
{
    if (code == 0)
        return TP_COLPACK_SCALE_NONE;
    if (code <= 10)
        return code - 1;
    if (code <= 20)
        return TP_COLPACK_SCALE_MUL + (code - 11);
    return -1;
}

const char *tp_units_transform_name(uint8_t t)
{
    static const char *const names[TP_COLX__COUNT] = {"const", "raw",        "delta",        "delta2",
                                                      "runs",  "xor-planes", "delta-planes", "for-planes"};
    return t < TP_COLX__COUNT ? names[t] : "unknown";
}

/* The bytes W (1..8) that hold every unit minus lo, for units from lo to hi. */
static int frame_width(uint64_t lo, uint64_t hi)
{
    uint64_t range = hi - lo;
    int w = 1;
    while (w < 8 && (range >> (8 * w)))
        w++;
    return w;
}

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
    *base = lo;
    *width = frame_width(lo, hi);
}

/* Order-0 entropy of a byte histogram, in bytes: what a Huffman coder such as zstd's literals coder needs at best. */
#define LOG2_MEMO 64
/* lg memoizes log2(n / c) for the counts c < LOG2_MEMO (a negative entry: not yet computed; the caller sets them
 * all negative for each n): the many bins of equal small counts cost one libm call, not one each. Bins are visited
 * in ascending order, eight empty ones skipped at once, so the sum is the same number as a plain loop's. */
static double entropy_bytes(const uint32_t hist[256], size_t n, double lg[LOG2_MEMO])
{
    double bits = 0;
    for (int b = 0; b < 256; b += 8) {
        uint64_t any[4];
        memcpy(any, hist + b, sizeof any);
        if (!(any[0] | any[1] | any[2] | any[3]))
            continue;
        for (int j = b; j < b + 8; j++) {
            uint32_t c = hist[j];
            if (!c)
                continue;
            double l;
            if (c < LOG2_MEMO) {
                if (lg[c] < 0)
                    lg[c] = log2((double)n / (double)c);
                l = lg[c];
            } else {
                l = log2((double)n / (double)c);
            }
            bits += (double)c * l;
        }
    }
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
    return tp_bits_f64(scaled_f64(r, s)) == tp_bits_f64(v);
}

static inline bool dec_try_f32(float v, uint8_t s, int64_t *k)
{
    double x = (double)v * pow10_f64[s & 0x0F];
    if (!(fabs(x) < 16777216.0)) /* |k| < 2^24: k converts to float exactly */
        return false;
    int64_t r = (int64_t)(x < 0 ? x - 0.5 : x + 0.5);
    *k = r;
    return tp_bits_f32(scaled_f32(r, s)) == tp_bits_f32(v);
}

static inline bool dec_try(uint64_t u, bool is_f32, uint8_t s, int64_t *k)
{
    return is_f32 ? dec_try_f32(tp_f32_bits((uint32_t)u), s, k) : dec_try_f64(tp_f64_bits(u), s, k);
}

/* The m values from u checked at scale s as dec_try does, without branches: their scaled integers go to k and
 * bad[j] is 1 where value j does not round-trip. Out-of-range values take 0 before the conversion (undefined for
 * them in C) and are bad. */
#define SCALE_CHUNK(FLOAT, LIMIT, POW, POWNEG, BITS, BACKBITS)                                                         \
    do {                                                                                                               \
        double p_ = pow10_f64[s & 0x0F];                                                                               \
        FLOAT q_ = s & TP_COLPACK_SCALE_MUL ? POWNEG[s & 0x0F] : POW[s & 0x0F];                                        \
        if (s & TP_COLPACK_SCALE_MUL) {                                                                                \
            for (size_t j = 0; j < m; j++) {                                                                           \
                double x = (double)BITS(u[j]) * p_;                                                                    \
                bool in = fabs(x) < (LIMIT);                                                                           \
                double xs = tp_f64_bits(tp_bits_f64(x) & (0 - (uint64_t)in));                                          \
                double xr = xs + copysign(0.5, xs); /* -0.0 - 0.5 truncates to 0 as -0.0 + 0.5 did */                  \
                int64_t r = (int64_t)xr;                                                                               \
                FLOAT back = (FLOAT)r * q_;                                                                            \
                k[j] = (uint64_t)r;                                                                                    \
                bad[j] = (uint8_t)(!in | (BACKBITS(back) != BACKBITS(BITS(u[j]))));                                    \
            }                                                                                                          \
        } else {                                                                                                       \
            for (size_t j = 0; j < m; j++) {                                                                           \
                double x = (double)BITS(u[j]) * p_;                                                                    \
                bool in = fabs(x) < (LIMIT);                                                                           \
                double xs = tp_f64_bits(tp_bits_f64(x) & (0 - (uint64_t)in));                                          \
                double xr = xs + copysign(0.5, xs); /* -0.0 - 0.5 truncates to 0 as -0.0 + 0.5 did */                  \
                int64_t r = (int64_t)xr;                                                                               \
                FLOAT back = (FLOAT)r / q_;                                                                            \
                k[j] = (uint64_t)r;                                                                                    \
                bad[j] = (uint8_t)(!in | (BACKBITS(back) != BACKBITS(BITS(u[j]))));                                    \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)
#define F64_OF(b) tp_f64_bits(b)
#define F32_OF(b) tp_f32_bits((uint32_t)(b))

static void scale_chunk_f64(const uint64_t *u, size_t m, uint8_t s, uint64_t *k, uint8_t *bad)
{
    SCALE_CHUNK(double, 9007199254740992.0, pow10_f64, pow10neg_f64, F64_OF, tp_bits_f64);
}
static void scale_chunk_f32(const uint64_t *u, size_t m, uint8_t s, uint64_t *k, uint8_t *bad)
{
    SCALE_CHUNK(float, 16777216.0, pow10_f32, pow10neg_f32, F32_OF, tp_bits_f32);
}
#ifdef UNITS_AVX512
UNITS_AVX512_ATTR static void scale_chunk_f64_avx512(const uint64_t *u, size_t m, uint8_t s, uint64_t *k, uint8_t *bad)
{
    SCALE_CHUNK(double, 9007199254740992.0, pow10_f64, pow10neg_f64, F64_OF, tp_bits_f64);
}
UNITS_AVX512_ATTR static void scale_chunk_f32_avx512(const uint64_t *u, size_t m, uint8_t s, uint64_t *k, uint8_t *bad)
{
    SCALE_CHUNK(float, 16777216.0, pow10_f32, pow10neg_f32, F32_OF, tp_bits_f32);
}
#endif

/* The values u[i..n) checked at scale s in chunks (16 values, doubling to 256 while they pass), their scaled
 * integers written to k: returns the index of the first value that fails (n if none does). k past it holds trial
 * integers, which the caller overwrites. */
#define SCALE_CHUNK_MAX 256
static size_t scale_run(const uint64_t *u, size_t i, size_t n, bool is_f32, uint8_t s, uint64_t *k, bool simd)
{
    uint8_t bad[SCALE_CHUNK_MAX];
    for (size_t m = 16; i < n; i += m, m = m < SCALE_CHUNK_MAX ? 2 * m : m) {
        if (m > n - i)
            m = n - i;
#ifdef UNITS_AVX512
        if (simd) {
            if (is_f32)
                scale_chunk_f32_avx512(u + i, m, s, k + i, bad);
            else
                scale_chunk_f64_avx512(u + i, m, s, k + i, bad);
        } else
#endif
        {
            (void)simd;
            if (is_f32)
                scale_chunk_f32(u + i, m, s, k + i, bad);
            else
                scale_chunk_f64(u + i, m, s, k + i, bad);
        }
        size_t j = 0;
        for (; j + 8 <= m; j += 8) {
            uint64_t w;
            memcpy(&w, bad + j, 8);
            if (w)
                return i + j + (size_t)__builtin_ctzll(w) / 8;
        }
        for (; j < m; j++)
            if (bad[j])
                return i + j;
    }
    return n;
}

/* Finds the scale byte for a floating column (values given as bits in u) with the given mode (0 divide,
 * TP_COLPACK_SCALE_MUL multiply), writing the scaled integers to k; -1 if no scale fits. One pass in the usual
 * case: values are checked at the scale found so far (in blocks, scale_run), and only the values before the last
 * increase of the scale are checked again at the final one (round-tripping at a smaller scale almost always
 * implies it at a larger one, but the check is what makes the transform lossless). */
int tp_units_find_scale(const uint64_t *u, size_t n, bool is_f32, uint8_t mode, uint64_t *k)
{
    uint8_t d = 0;
    size_t changed = 0; /* values [0, changed) were checked at a smaller scale */
    bool simd = false;
#ifdef UNITS_AVX512
    simd = n >= 64 && have_avx512();
#endif
    int64_t x;
    for (size_t i = 0; i < n; i++) {
        i = scale_run(u, i, n, is_f32, (uint8_t)(mode | d), k, simd);
        if (i == n)
            break;
        while (!dec_try(u[i], is_f32, (uint8_t)(mode | d), &x)) {
            if (++d > TP_COLPACK_MAX_SCALE)
                return -1;
            changed = i;
        }
        k[i] = (uint64_t)x;
    }
    uint8_t s = (uint8_t)(mode | d);
    if (changed && scale_run(u, 0, changed, is_f32, s, k, simd) != changed)
        return -1;
    return s;
}

/* A byte histogram that remembers which bins it touched, so its entropy costs the distinct bytes, not 256 bins. */
typedef struct byte_hist {
    uint32_t n[256];
    uint8_t seen[256];
    int distinct;
} byte_hist;

static inline void hist_byte(byte_hist *h, uint8_t b)
{
    if (!h->n[b]++)
        h->seen[h->distinct++] = b;
}

/* Counts v's varint bytes into h; returns how many. */
static inline size_t hist_varint(byte_hist *h, uint64_t v)
{
    size_t k = 1;
    for (; v >= 0x80; v >>= 7, k++)
        hist_byte(h, (uint8_t)(v | 0x80));
    hist_byte(h, (uint8_t)v);
    return k;
}

/* Units the estimates below look at, at most: a column's bytes are sampled at evenly spaced units, so a long
 * column costs little more to plan than a short one. The varint chooser compares bodies of alike bytes
 * (EST_SAMPLE: 64 units, and one more for every 64 of a long column, where a bigger sample pays);
 * for-planes compares planes of up to 256 byte values each with a varint body (FOR_SAMPLE, where a small sample
 * would understate the entropy of near-uniform planes). */
#define EST_SAMPLE(n) (64 + (n) / 64)
#define FOR_SAMPLE 1024

/* log2(x) for x >= 1 within 0.005: the exponent, and a parabola through the mantissa's ends (a planning estimate
 * needs no more, and libm's log2 per distinct byte cost as much as the rest of the estimate). */
static inline double approx_log2(double x)
{
    uint64_t b = tp_bits_f64(x);
    double e = (double)((int)((b >> 52) & 0x7FF) - 1023);
    double m = tp_f64_bits((b & 0xFFFFFFFFFFFFFull) | 0x3FF0000000000000ull) - 1; /* mantissa - 1, in [0, 1) */
    return e + m * (1.3466 - 0.3466 * m);
}

/* Units i = k n / m for k = 0..m-1, stepped without dividing; BODY sees i. */
#define FOR_SAMPLED(n, m, BODY)                                                                                        \
    do {                                                                                                               \
        size_t step_ = (n) / (m), frac_ = (n) % (m), acc_ = 0, i = 0;                                                  \
        for (size_t k_ = 0; k_ < (m); k_++, i += step_, acc_ += frac_) {                                               \
            if (acc_ >= (m))                                                                                           \
                acc_ -= (m), i++;                                                                                      \
            BODY                                                                                                       \
        }                                                                                                              \
    } while (0)

/* Estimated compressed size, in bytes, of the varint body of transform t over u (len bytes long): the order-0
 * entropy per byte (what zstd's literal coder gets at best) of the bytes that at most `sample` evenly spaced units
 * (1.5 x sample and fewer: all) contribute, times len. Runs are counted whole (their pairs are few whenever runs
 * come near the others' size). Computed from the units, without writing the body; h is cleared after use. */
static double varint_body_entropy(const uint64_t *u, size_t n, bool sgn, uint8_t t, size_t len, byte_hist *h,
                                  size_t sample)
{
    size_t m = n <= sample + sample / 2 || t == TP_COLX_RUNS ? n : sample, bytes = 0;
    switch (t) {
    case TP_COLX_RAW: FOR_SAMPLED(n, m, { bytes += hist_varint(h, sgn ? tp_zz_enc(u[i]) : u[i]); }); break;
    case TP_COLX_DELTA: FOR_SAMPLED(n, m, { bytes += hist_varint(h, tp_zz_enc(i ? u[i] - u[i - 1] : u[i])); }); break;
    case TP_COLX_DELTA2:
        FOR_SAMPLED(n, m, {
            uint64_t d = i >= 2 ? (u[i] - u[i - 1]) - (u[i - 1] - u[i - 2]) : i ? u[1] - u[0] : u[0];
            bytes += hist_varint(h, tp_zz_enc(d));
        });
        break;
    default: /* runs: (unit, length) at the end of each run */
        for (size_t i = 0, start = 0; i < n; i++) {
            if (i + 1 < n && u[i + 1] == u[i])
                continue;
            bytes += hist_varint(h, sgn ? tp_zz_enc(u[i]) : u[i]);
            bytes += hist_varint(h, i - start + 1);
            start = i + 1;
        }
        break;
    }
    double bits = (double)bytes * approx_log2((double)bytes);
    for (int k = 0; k < h->distinct; k++) {
        uint32_t c = h->n[h->seen[k]];
        bits -= (double)c * approx_log2((double)c);
        h->n[h->seen[k]] = 0;
    }
    h->distinct = 0;
    return bits / 8 * ((double)len / (double)bytes);
}

/* The exact size of the runs body: (unit, run length) at the end of each run. */
static size_t runs_size(const uint64_t *u, size_t n, bool sgn)
{
    size_t runs = 0;
    for (size_t i = 0, start = 0; i < n; i++) {
        if (i + 1 < n && u[i + 1] == u[i])
            continue;
        runs += tp_units_varint_len(sgn ? tp_zz_enc(u[i]) : u[i]) + tp_units_varint_len(i - start + 1);
        start = i + 1;
    }
    return runs;
}

/* ---- one pass over a column's units for the varint chooser ----
 * The sizes of the raw, delta and delta2 bodies, the number of places where a unit differs from the one before, and
 * the smallest and largest unit (the frame of for-planes). The bulk loop, from unit 2 on, has no loop-carried
 * state but its sums, so a compiler vectorizes it; on x86-64 CPUs with AVX-512 (vplzcntq counts the varint
 * lengths of eight units at once) a copy built for them runs instead, chosen at run time. Both give the same
 * integers. */
typedef struct unit_stats {
    size_t raw, delta, delta2, changes;
    uint64_t lo, hi;
} unit_stats;

/* Bytes of v as a varint without a table or a branch: (9 x significant bits + 64) / 64, which is
 * 1 + (bits - 1) / 7 for 1..64 bits. */
static inline size_t varint_len_alu(uint64_t v)
{
    return (size_t)(640 - 9 * __builtin_clzll(v | 1)) >> 6;
}

#define STATS_LOOP(SGN, LEN)                                                                                           \
    do {                                                                                                               \
        size_t raw = 0, delta = 0, delta2 = 0, changes = 0;                                                            \
        uint64_t ulo = st->lo, uhi = st->hi;                                                                           \
        int64_t slo = (int64_t)st->lo, shi = (int64_t)st->hi;                                                          \
        for (size_t i = 2; i < n; i++) {                                                                               \
            uint64_t v = u[i], d = v - u[i - 1], pd = u[i - 1] - u[i - 2];                                             \
            raw += LEN((SGN) ? tp_zz_enc(v) : v);                                                                      \
            delta += LEN(tp_zz_enc(d));                                                                                \
            delta2 += LEN(tp_zz_enc(d - pd));                                                                          \
            changes += d != 0;                                                                                         \
            if (SGN) {                                                                                                 \
                int64_t sv = (int64_t)v;                                                                               \
                slo = sv < slo ? sv : slo;                                                                             \
                shi = sv > shi ? sv : shi;                                                                             \
            } else {                                                                                                   \
                ulo = v < ulo ? v : ulo;                                                                               \
                uhi = v > uhi ? v : uhi;                                                                               \
            }                                                                                                          \
        }                                                                                                              \
        st->raw += raw;                                                                                                \
        st->delta += delta;                                                                                            \
        st->delta2 += delta2;                                                                                          \
        st->changes += changes;                                                                                        \
        st->lo = (SGN) ? (uint64_t)slo : ulo;                                                                          \
        st->hi = (SGN) ? (uint64_t)shi : uhi;                                                                          \
    } while (0)

static void stats_bulk(const uint64_t *u, size_t n, bool sgn, unit_stats *st)
{
    if (sgn)
        STATS_LOOP(true, tp_units_varint_len);
    else
        STATS_LOOP(false, tp_units_varint_len);
}

#ifdef UNITS_AVX512
UNITS_AVX512_ATTR static void stats_bulk_avx512(const uint64_t *u, size_t n, bool sgn, unit_stats *st)
{
    if (sgn)
        STATS_LOOP(true, varint_len_alu);
    else
        STATS_LOOP(false, varint_len_alu);
}
#endif

static void unit_stats_of(const uint64_t *u, size_t n, bool sgn, unit_stats *st)
{
    uint64_t u0 = u[0];
    st->raw = tp_units_varint_len(sgn ? tp_zz_enc(u0) : u0);
    st->delta = st->delta2 = tp_units_varint_len(tp_zz_enc(u0));
    st->changes = 0;
    st->lo = st->hi = u0;
    if (n < 2)
        return;
    uint64_t u1 = u[1], d = u1 - u0; /* unit 1: its delta2 is its delta */
    st->raw += tp_units_varint_len(sgn ? tp_zz_enc(u1) : u1);
    st->delta += tp_units_varint_len(tp_zz_enc(d));
    st->delta2 += tp_units_varint_len(tp_zz_enc(d));
    st->changes += d != 0;
    if (sgn ? (int64_t)u1 < (int64_t)u0 : u1 < u0)
        st->lo = u1;
    else
        st->hi = u1;
#ifdef UNITS_AVX512
    if (n >= 64 && have_avx512()) {
        stats_bulk_avx512(u, n, sgn, st);
        return;
    }
#endif
    stats_bulk(u, n, sgn, st);
}

/* Chooses among the varint transforms: const when every unit is equal; otherwise the smallest by exact encoded
 * size, or, for columns of at least TP_UNITS_EST_MIN units, the one of smallest estimated compressed size (order-0
 * entropy of a sample of its bytes) among those at most 1.25 times as long as the smallest. The runs body is
 * sized only when it can be among those: it takes at least 2 bytes a run. */
void tp_units_plan_varints(const uint64_t *u, size_t n, bool sgn, tp_units_plan *p)
{
    unit_stats st;
    unit_stats_of(u, n, sgn, &st);
    size_t raw = st.raw, delta = st.delta, delta2 = st.delta2, changes = st.changes;
    p->lo = st.lo;
    p->hi = st.hi;
    if (changes == 0) {
        p->transform = TP_COLX_CONST;
        p->body_len = tp_units_varint_len(sgn ? tp_zz_enc(u[0]) : u[0]);
        return;
    }
    size_t min3 = raw < delta ? raw : delta;
    min3 = delta2 < min3 ? delta2 : min3;
    /* runs >= 2 (changes + 1); above 1.25 x min3 it is neither the smallest nor near the smallest */
    bool runs_may = 8 * (changes + 1) <= 5 * min3;
    size_t runs = runs_may ? runs_size(u, n, sgn) : SIZE_MAX;
    const size_t size[TP_COLX_RUNS + 1] = {0, raw, delta, delta2, runs};
    uint8_t best = TP_COLX_RAW;
    for (uint8_t t = TP_COLX_DELTA; t <= TP_COLX_RUNS; t++)
        if (size[t] < size[best])
            best = t;
    uint8_t near[TP_COLX_RUNS + 1];
    int nnear = 0;
    for (uint8_t t = TP_COLX_RAW; t <= (runs_may ? TP_COLX_RUNS : TP_COLX_DELTA2) && n >= TP_UNITS_EST_MIN; t++)
        if (t != best && 4 * size[t] <= 5 * size[best])
            near[nnear++] = t;
    if (nnear > 0) {
        /* zstd follows: the candidates within 1.25x of the smallest are compared by their estimated compressed size
         * (a counter 0, 1, 2, ... is as long raw as its deltas, but only the deltas' one repeated byte compresses) */
        byte_hist h;
        memset(h.n, 0, sizeof h.n);
        h.distinct = 0;
        double best_est = varint_body_entropy(u, n, sgn, best, size[best], &h, EST_SAMPLE(n));
        for (int k = 0; k < nnear; k++) {
            uint8_t t = near[k];
            double e = varint_body_entropy(u, n, sgn, t, size[t], &h, EST_SAMPLE(n));
            bool smaller = size[t] < size[best] || (size[t] == size[best] && t < best);
            if (e < best_est || (e == best_est && smaller)) {
                best = t;
                best_est = e;
            }
        }
    }
    p->transform = best;
    p->body_len = size[best];
}

/* Bit patterns with no decimal scale: constant, or XOR / delta byte planes, whichever leaves fewer significant
 * bytes (zstd then squeezes the all-zero planes). */
void tp_units_plan_bits(const uint64_t *u, size_t n, int w, tp_units_plan *p)
{
    bool all_same = true;
    size_t xor_bytes = 0, delta_bytes = 0;
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = u[i] ^ prev;
        uint64_t d =
            w == 8 ? tp_zz_enc(u[i] - prev)
                   : (uint64_t)(((uint32_t)(u[i] - prev) << 1) ^ (uint32_t) - (int32_t)((uint32_t)(u[i] - prev) >> 31));
        xor_bytes += x ? (size_t)(8 - __builtin_clzll(x) / 8) : 0;
        delta_bytes += d ? (size_t)(8 - __builtin_clzll(d) / 8) : 0;
        if (i > 0 && u[i] != prev)
            all_same = false;
        prev = u[i];
    }
    if (all_same) {
        p->transform = TP_COLX_CONST;
        p->body_len = tp_units_varint_len(u[0]);
        return;
    }
    p->transform = delta_bytes < xor_bytes ? TP_COLX_DELTA_PLANES : TP_COLX_XOR_PLANES;
    p->body_len = (size_t)w * n;
}

uint8_t *tp_units_write(uint8_t *p, const uint64_t *u, size_t n, bool sgn, int w, uint8_t transform)
{
    uint64_t prev = 0, prevd = 0;
    switch (transform) {
    case TP_COLX_CONST: return tp_units_varint_put(p, sgn ? tp_zz_enc(u[0]) : u[0]);
    case TP_COLX_RAW:
        for (size_t i = 0; i < n; i++)
            p = tp_units_varint_put(p, sgn ? tp_zz_enc(u[i]) : u[i]);
        return p;
    case TP_COLX_DELTA:
        for (size_t i = 0; i < n; i++) {
            p = tp_units_varint_put(p, tp_zz_enc(u[i] - prev));
            prev = u[i];
        }
        return p;
    case TP_COLX_DELTA2:
        p = tp_units_varint_put(p, tp_zz_enc(u[0]));
        prev = u[0];
        for (size_t i = 1; i < n; i++) {
            uint64_t d = u[i] - prev;
            p = tp_units_varint_put(p, tp_zz_enc(d - prevd));
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
            p = tp_units_varint_put(p, sgn ? tp_zz_enc(u[i]) : u[i]);
            p = tp_units_varint_put(p, j - i);
            i = j;
        }
        return p;
    }
    case TP_COLX_FOR_PLANES: {
        uint64_t base;
        int fw;
        for_frame(u, n, sgn, &base, &fw);
        p = tp_units_varint_put(p, sgn ? tp_zz_enc(base) : base);
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
                x = tp_zz_enc(u[i] - prev);
            } else {
                uint32_t d32 = (uint32_t)(u[i] - prev);
                x = (uint32_t)((d32 << 1) ^ (uint32_t) - (int32_t)(d32 >> 31));
            }
            prev = u[i];
            for (int b = 0; b < w; b++)
                p[(size_t)b * n + i] = (uint8_t)(x >> (8 * b));
        }
        return p + (size_t)w * n;
    default: return p;
    }
}

/* Version 3: replaces the varint plan of a column by for-planes when the planes' estimated compressed size is
 * smaller. Different vehicles' values side by side (a live fleet's pack: one sample per vehicle) differ by as much
 * as the values themselves: their deltas are as wide as the values and signed, and their varints mix high and low
 * bits in every byte, while planes of the offsets from the smallest value keep the few significant high bits in a
 * plane of their own that zstd squeezes. The estimate is each candidate's order-0 entropy (per plane for planes),
 * the varint body written into scratch; nothing changes for short columns or constant and run columns. */
void tp_units_plan_for(const uint64_t *u, size_t n, bool sgn, uint8_t *scratch, tp_units_plan *p)
{
    (void)scratch; /* the varint body is estimated from the units, no longer written */
    if (n < 16 || p->transform == TP_COLX_CONST || p->transform == TP_COLX_RUNS)
        return;
    uint64_t base;
    int w;
    base = p->lo; /* the frame tp_units_plan_varints found in its pass over the units */
    w = frame_width(p->lo, p->hi);
    size_t for_len = tp_units_varint_len(sgn ? tp_zz_enc(base) : base) + 1 + (size_t)w * n;
    /* the planes' entropy over at most FOR_SAMPLE evenly spaced units, scaled to n */
    size_t m = n <= FOR_SAMPLE + FOR_SAMPLE / 2 ? n : FOR_SAMPLE;
    static const uint32_t zero[256];
    uint32_t hist[8][256];
    for (int b = 0; b < w; b++)
        memcpy(hist[b], zero, sizeof zero);
    size_t step = n / m, frac = n % m, acc = 0, i = 0;
    for (size_t k = 0; k < m; k++, i += step, acc += frac) {
        if (acc >= m)
            acc -= m, i++;
        uint64_t x = u[i] - base;
        for (int b = 0; b < w; b++)
            hist[b][(uint8_t)(x >> (8 * b))]++;
    }
    double est_for = (double)(for_len - (size_t)w * n), lg[LOG2_MEMO];
    for (int c = 0; c < LOG2_MEMO; c++)
        lg[c] = -1;
    for (int b = 0; b < w; b++)
        est_for += entropy_bytes(hist[b], m, lg) * ((double)n / (double)m);
    byte_hist h;
    memset(h.n, 0, sizeof h.n);
    h.distinct = 0;
    double est_var = varint_body_entropy(u, n, sgn, p->transform, p->body_len, &h, FOR_SAMPLE);
    if (est_for < est_var * 0.95) { /* a margin: the estimate is rough, and the known transforms are the default */
        p->transform = TP_COLX_FOR_PLANES;
        p->body_len = for_len;
    }
}

/* ---- decoder side ---- */

static tp_err fail(char *why, size_t cap, tp_err err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static tp_err fail(char *why, size_t cap, tp_err err, const char *fmt, ...)
{
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return err;
}

bool tp_units_body_fits(uint8_t tr, int w, uint64_t blen, uint64_t count)
{
    bool planes = tr == TP_COLX_XOR_PLANES || tr == TP_COLX_DELTA_PLANES;
    if (planes)
        return blen == (uint64_t)w * count;
    if (tr == TP_COLX_CONST)
        return blen >= 1 && blen <= 10;
    if (tr == TP_COLX_RUNS)
        return blen >= 2 && blen <= 20 * count;
    if (tr == TP_COLX_FOR_PLANES) /* base varint, width byte, 1..8 planes */
        return blen >= 2 + count && blen <= 11 + 8 * count;
    return blen >= count && blen <= 10 * count;
}

tp_err tp_units_open_body(tp_units_col *c, uint64_t count, char *why, size_t why_cap)
{
    const uint8_t *body = c->body;
    tp_err err;
    c->pos = 0;
    c->prev = c->prevd = c->run_left = 0;
    if (c->transform == TP_COLX_CONST) {
        size_t p = 0;
        uint64_t v;
        if ((err = tp_units_varint_get(body, c->len, &p, &v)) || p != c->len)
            return fail(why, why_cap, err ? err : TP_ERR_CORRUPT, "field %u: constant is not exactly one varint",
                        c->field);
        c->run_val = c->signed_units ? tp_zz_dec(v) : v;
    }
    if (c->transform == TP_COLX_FOR_PLANES) {
        size_t p = 0;
        uint64_t v;
        if ((err = tp_units_varint_get(body, c->len, &p, &v)) || p >= c->len)
            return fail(why, why_cap, err ? err : TP_ERR_CORRUPT,
                        "field %u: for-planes base is not a varint followed by a width", c->field);
        uint8_t fw = body[p++];
        if (fw < 1 || fw > 8 || c->len - p != (size_t)fw * count)
            return fail(why, why_cap, TP_ERR_CORRUPT,
                        "field %u: for-planes width %u with %zu plane bytes for %" PRIu64 " records (the width "
                        "must be 1..8 and the planes width x records)",
                        c->field, fw, c->len - p, count);
        c->run_val = c->signed_units ? tp_zz_dec(v) : v;
        c->width = fw;
        c->planes = body + p;
    }
    return TP_OK;
}

bool tp_units_consumed(const tp_units_col *c)
{
    if (c->transform == TP_COLX_CONST || c->transform == TP_COLX_XOR_PLANES || c->transform == TP_COLX_DELTA_PLANES ||
        c->transform == TP_COLX_FOR_PLANES)
        return true;
    return c->pos == c->len && !c->run_left;
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
        tp_err err = tp_units_varint_get(b, len, &p, &u[i]);
        if (err) {
            *pos = p;
            return err;
        }
    }
    *pos = p;
    return TP_OK;
}

tp_err tp_units_next(tp_units_col *c, uint32_t count, uint32_t done, uint64_t *u, size_t k, char *why, size_t why_cap)
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
                u[i] = tp_zz_dec(u[i]);
        break;
    case TP_COLX_DELTA:
        if ((err = get_varints(b, len, &pos, u, k)))
            goto bad_varint;
        for (size_t i = 0; i < k; i++) {
            prev += tp_zz_dec(u[i]);
            u[i] = prev;
        }
        break;
    case TP_COLX_DELTA2: {
        if ((err = get_varints(b, len, &pos, u, k)))
            goto bad_varint;
        size_t i = 0;
        if (done == 0 && k > 0) {
            prev = tp_zz_dec(u[0]);
            u[i++] = prev;
        }
        for (; i < k; i++) {
            prevd += tp_zz_dec(u[i]);
            prev += prevd;
            u[i] = prev;
        }
        break;
    }
    case TP_COLX_RUNS:
        for (size_t i = 0; i < k;) {
            if (c->run_left == 0) {
                uint64_t rl;
                if ((err = tp_units_varint_get(b, len, &pos, &v)))
                    goto bad_varint;
                if ((err = tp_units_varint_get(b, len, &pos, &rl)))
                    goto bad_varint;
                if (rl == 0 || rl > (uint64_t)(count - done - i))
                    return fail(why, why_cap, TP_ERR_CORRUPT,
                                "field %u: run of %" PRIu64 " records at record %zu, where %zu records remain",
                                c->field, rl, (size_t)done + i, (size_t)(count - done - i));
                c->run_val = c->signed_units ? tp_zz_dec(v) : v;
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
        size_t n = count, at = done;
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
        int w = c->plane_w;
        size_t n = count, at = done;
        for (size_t i = 0; i < k; i++) {
            uint64_t x = 0;
            for (int j = 0; j < w; j++)
                x |= (uint64_t)b[(size_t)j * n + at + i] << (8 * j);
            if (c->transform == TP_COLX_XOR_PLANES)
                prev ^= x;
            else if (w == 8)
                prev += tp_zz_dec(x);
            else
                prev = (uint32_t)((uint32_t)prev + (uint32_t)((x >> 1) ^ (uint32_t) - (uint32_t)(x & 1)));
            /* prev stays within 32 bits for W = 4; an int32 unit is its sign extension */
            u[i] = c->sext32 ? (uint64_t)(int64_t)(int32_t)(uint32_t)prev : prev;
        }
        pos = (at + k) * (size_t)w; /* informational; planes are addressed by record index */
        break;
    }
    default: return fail(why, why_cap, TP_ERR_CORRUPT, "field %u: transform %u", c->field, c->transform);
    }
    c->pos = pos;
    c->prev = prev;
    c->prevd = prevd;
    return TP_OK;
bad_varint:
    return fail(why, why_cap, err, "field %u: %s varint at body offset %zu (records %zu..%zu)", c->field,
                err == TP_ERR_TRUNCATED ? "cut-off" : "over-long", pos, (size_t)done, (size_t)done + k - 1);
}

double tp_units_f64(uint64_t u, uint8_t scale)
{
    return scale == TP_COLPACK_SCALE_NONE ? tp_f64_bits(u) : scaled_f64((int64_t)u, scale);
}
float tp_units_f32(uint64_t u, uint8_t scale)
{
    return scale == TP_COLPACK_SCALE_NONE ? tp_f32_bits((uint32_t)u) : scaled_f32((int64_t)u, scale);
}

/* Units to values into a contiguous array, with the scale decided once per chunk so the loops stay simple. */
void tp_units_to_f64(const uint64_t *u, size_t m, uint8_t scale, double *dst)
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
void tp_units_to_f32(const uint64_t *u, size_t m, uint8_t scale, float *dst)
{
    if (scale == TP_COLPACK_SCALE_NONE) {
        for (size_t j = 0; j < m; j++)
            dst[j] = tp_f32_bits((uint32_t)u[j]);
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
