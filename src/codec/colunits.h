/* Unit columns: the transforms of pbpack's column layout over one column of n 64-bit units (docs/FORMAT_V2.md,
 * "Units, scale and transforms"), independent of what the units mean. The built-in record's codec (colpack.c) and
 * the codec of run-time schemas both plan, write and read their columns through this module. Internal. */
#ifndef TELEPACK_CODEC_COLUNITS_H
#define TELEPACK_CODEC_COLUNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "telepack/error.h"

#define TP_COLPACK_MAX_SCALE 9

/* Column transforms (low 3 bits of a descriptor's code byte; 7 only from version 3 on). */
enum tp_colpack_transform {
    TP_COLX_CONST = 0,        /* one unit for every record */
    TP_COLX_RAW = 1,          /* one varint per record */
    TP_COLX_DELTA = 2,        /* zigzag varint of u[i] - u[i-1] */
    TP_COLX_DELTA2 = 3,       /* first unit, first delta, then zigzag varints of delta-of-delta */
    TP_COLX_RUNS = 4,         /* (unit, run length) varint pairs */
    TP_COLX_XOR_PLANES = 5,   /* u[i] ^ u[i-1], fixed width, byte planes */
    TP_COLX_DELTA_PLANES = 6, /* zigzag(u[i] - u[i-1]), fixed width, byte planes */
    TP_COLX_FOR_PLANES = 7,   /* version 3 only: base, width W, then W byte planes of u[i] - base */
    TP_COLX__COUNT
};

/* Decimal scale as the decoder state holds it (a descriptor stores a 5-bit code, FORMAT_V2.md):
 * 0..9 = value is k / 10^s; TP_COLPACK_SCALE_MUL + d = value is k * 1e-d (d 0..9). */
#define TP_COLPACK_SCALE_MUL 0x10
/* Scale byte meaning "no decimal scaling": the unit is the value (integers) or its IEEE bit pattern (floating). */
#define TP_COLPACK_SCALE_NONE 0xFF

/* ---- small shared pieces ---- */

static inline uint64_t tp_zz_enc(uint64_t v)
{
    return (v << 1) ^ (uint64_t) - (int64_t)(v >> 63);
}
static inline uint64_t tp_zz_dec(uint64_t v)
{
    return (v >> 1) ^ (uint64_t) - (int64_t)(v & 1);
}

/* Bytes of v as a varint (1..10), by the number of leading zero bits (the chooser calls it per value). */
static inline size_t tp_units_varint_len(uint64_t v)
{
    static const uint8_t by_clz[64] = {10, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 7, 7, 7, 7, 7, 7, 7,
                                       6,  6, 6, 6, 6, 6, 6, 5, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 3,
                                       3,  3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1};
    return by_clz[__builtin_clzll(v | 1)];
}

/* Writes v as a varint at p (at most 10 bytes); returns the end. */
static inline uint8_t *tp_units_varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Reads one varint from src[*pos..len): at most 10 bytes, the 10th at most 1. TP_ERR_TRUNCATED or
 * TP_ERR_VARINT_OVERFLOW. */
static inline tp_err tp_units_varint_get(const uint8_t *src, size_t len, size_t *pos, uint64_t *out)
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

static inline uint64_t tp_bits_f64(double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    return u;
}
static inline uint32_t tp_bits_f32(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}
static inline double tp_f64_bits(uint64_t u)
{
    double v;
    memcpy(&v, &u, 8);
    return v;
}
static inline float tp_f32_bits(uint32_t u)
{
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* Descriptor scale code (5 bits) <-> the scale byte: 0 none, 1..10 divide by 10^(c-1), 11..20 multiply by
 * 1e-(c-11). tp_units_scale_from_code returns -1 for codes above 20. */
uint8_t tp_units_scale_code(uint8_t scale);
int tp_units_scale_from_code(uint8_t code);

/* The name of a transform ("delta2"), "unknown" outside the enum. */
const char *tp_units_transform_name(uint8_t transform);

/* ---- encoder side ---- */

typedef struct tp_units_plan {
    uint8_t transform, scale;
    size_t body_len;
    uint64_t lo, hi; /* set by tp_units_plan_varints: the smallest and largest unit (as int64 when signed) */
} tp_units_plan;

/* Finds the decimal scale of a floating column (values as bit patterns in u: binary32 in the low half when
 * is_f32) with the given mode (0 divide, TP_COLPACK_SCALE_MUL multiply): the smallest d at which every value
 * round-trips bit-exactly, writing the scaled integers to k[0..n). Returns the scale byte, or -1 when none fits
 * (non-finite values and -0.0 never do). */
int tp_units_find_scale(const uint64_t *u, size_t n, bool is_f32, uint8_t mode, uint64_t *k);

/* Columns of at least this many units are planned by estimated compressed size (below, fewer: by exact size). */
#define TP_UNITS_EST_MIN 16

/* Chooses among const, raw, delta, delta2 and runs (sgn: units are signed, zigzag them): const when all units are
 * equal; else by exact encoded size (ties: raw, delta, delta2, runs), and from TP_UNITS_EST_MIN units on, among the
 * candidates at most 1.25 times the smallest, the one of smallest order-0 entropy of its body's bytes (the estimate
 * of what zstd makes of it; ties by exact size). */
void tp_units_plan_varints(const uint64_t *u, size_t n, bool sgn, tp_units_plan *p);

/* Bit patterns of width w (4 or 8 bytes) with no decimal scale: constant, or XOR / delta byte planes, whichever
 * leaves fewer significant bytes. */
void tp_units_plan_bits(const uint64_t *u, size_t n, int w, tp_units_plan *p);

/* Version 3: replaces a varint plan by for-planes when the planes' estimated compressed size (order-0 entropy, over
 * at most 1024 evenly spaced units) is at least 5 % smaller. p is tp_units_plan_varints' plan of the same units
 * (its transform and frame are used). scratch is not used (it may be NULL); it stays in the
 * signature for the callers that pass it. */
void tp_units_plan_for(const uint64_t *u, size_t n, bool sgn, uint8_t *scratch, tp_units_plan *p);

/* Writes the body of transform over u[0..n) at p (plane transforms: width w, 4 or 8); returns the end. The body
 * is exactly the plan's body_len. */
uint8_t *tp_units_write(uint8_t *p, const uint64_t *u, size_t n, bool sgn, int w, uint8_t transform);

/* ---- decoder side ---- */

/* One column's decoding state. Fill body/len/transform/scale/signed_units/plane_w/sext32, then
 * tp_units_open_body; then tp_units_next hands out units in any chunk sizes. */
typedef struct tp_units_col {
    const uint8_t *body;
    size_t len, pos; /* body bytes; read position (bytes, or units for plane transforms) */
    uint64_t prev, prevd;
    uint64_t run_val, run_left;
    uint32_t field; /* for messages only */
    uint8_t type, transform, scale, signed_units;
    uint8_t width;         /* for-planes: bytes per unit offset (1..8) */
    uint8_t plane_w;       /* xor/delta planes: bytes per unit (4 or 8) */
    uint8_t sext32;        /* 4-byte delta planes of a signed 32-bit column: units are sign-extended */
    const uint8_t *planes; /* for-planes: the first plane (run_val holds the base) */
} tp_units_col;

/* Whether a body of blen bytes can hold count units with this transform (plane width w): the bound that catches a
 * lying record count before anything is decoded. */
bool tp_units_body_fits(uint8_t transform, int w, uint64_t blen, uint64_t count);

/* Reads the head of the body for the transforms that have one (const's varint, for-planes' base and width).
 * TP_ERR_CORRUPT / TP_ERR_TRUNCATED with a sentence in why. */
tp_err tp_units_open_body(tp_units_col *c, uint64_t count, char *why, size_t why_cap);

/* Decodes units [done, done + k) of a column of count units into u[0..k); calls must come in order. Errors with a
 * sentence in why (naming c->field). */
tp_err tp_units_next(tp_units_col *c, uint32_t count, uint32_t done, uint64_t *u, size_t k, char *why, size_t why_cap);

/* After the last unit: whether a varint or runs body was consumed exactly (plane and const bodies always are). */
bool tp_units_consumed(const tp_units_col *c);

/* Units to floating values (scale as above), m at a time. */
void tp_units_to_f64(const uint64_t *u, size_t m, uint8_t scale, double *dst);
void tp_units_to_f32(const uint64_t *u, size_t m, uint8_t scale, float *dst);
double tp_units_f64(uint64_t u, uint8_t scale);
float tp_units_f32(uint64_t u, uint8_t scale);

#endif
