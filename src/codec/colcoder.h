/* Entropy coding of column values (docs/FORMAT_V2.md, "Coded columns"): an adaptive binary range coder (LZMA's
 * carry-less encoder with 16-bit probabilities whose adaptation rate starts fast and settles at 1/64) and the
 * binarization of one 64-bit stored value per record: its bit length in unary, the three bits below the top bit
 * modeled, the rest direct. Columns are coded one after the other into one stream per pack, each with fresh
 * contexts; whether a value is 0 is coded in a context chosen by whether the column's previous value, and the
 * previous coded column's value of the same record, were zero. Internal. */
#ifndef TELEPACK_CODEC_COLCODER_H
#define TELEPACK_CODEC_COLCODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telepack/error.h"

/* One binary context: the probability of a 0 bit in 1/65536 and how many bits it has seen. */
typedef struct {
    uint16_t p;
    uint8_t seen; /* bits seen, up to 62 */
} tp_cc_prob;

/* The contexts of one column: "is the value 0" by the zero flags, the further length bits by position, the top
 * mantissa bits by (length, position). */
#define TP_CC_LEN_CTX 65
typedef struct {
    tp_cc_prob zero[4];
    tp_cc_prob len[64];
    tp_cc_prob mant[TP_CC_LEN_CTX][3];
} tp_cc_model;

void tp_cc_model_reset(tp_cc_model *m);

/* ---- encoder: writes into a caller's buffer of cap bytes; never past it ---- */
typedef struct {
    uint64_t low;
    uint32_t range;
    uint8_t cache;
    uint64_t cache_size;
    uint8_t *out;
    size_t len, cap;
    bool lead;     /* the coder's first byte (always 0) is still to come: it is not stored */
    bool overflow; /* the output did not fit cap: the caller writes the column uncoded instead */
} tp_cc_encoder;

void tp_cc_enc_init(tp_cc_encoder *e, uint8_t *out, size_t cap);
/* Codes v[0..n) of one column with fresh contexts m; prev_zero[i] says whether the previous coded column's value of
 * record i was zero (NULL for the first coded column); on return zero[i] says the same of this column (may be
 * NULL when no column follows). */
void tp_cc_enc_column(tp_cc_encoder *e, tp_cc_model *m, const uint64_t *v, size_t n, const uint8_t *prev_zero,
                      uint8_t *zero);
/* Flushes the coder; the stream's trailing zero bytes are dropped (the decoder reads zeros past the end). Returns
 * the stream's length, or SIZE_MAX if it did not fit. */
size_t tp_cc_enc_finish(tp_cc_encoder *e);

/* ---- decoder: reads src[0..len), zeros past its end ---- */
typedef struct {
    uint32_t range, code;
    const uint8_t *src;
    size_t len, pos;
} tp_cc_decoder;

void tp_cc_dec_init(tp_cc_decoder *d, const uint8_t *src, size_t len);
/* Decodes n values of one column (the mirror of tp_cc_enc_column) into v[0..n). */
void tp_cc_dec_column(tp_cc_decoder *d, tp_cc_model *m, uint64_t *v, size_t n, const uint8_t *prev_zero,
                      uint8_t *zero);
/* A value of up to 64 bits with direct bits (7 for its bit length, then the bits below its top bit). */
void tp_cc_enc_word(tp_cc_encoder *e, uint64_t v);
uint64_t tp_cc_dec_word(tp_cc_decoder *d);

/* ---- the writer's choice ---- */

/* The grid of a raw coded column (docs/FORMAT_V2.md, "Coded columns"): step = the median of up to 65 evenly
 * spaced differences; when it is positive (returns true) record i sits on grid point k[i], the one nearest to
 * (u[i] - u[0]) / step, gaps[i] = zz(k[i] - k[i-1] - 1) (k[-1] = -1); otherwise k[i] = i and gaps[] is not
 * written. res[i] = u[i] - base - k[i] * step, base chosen so that every residual is at least 0 as int64. */
bool tp_cc_grid(const uint64_t *u, size_t n, uint64_t *base, uint64_t *step, uint64_t *gaps, uint64_t *res);
/* The values of transform 2 (zigzag deltas) or 3 (zigzag delta-of-deltas), as the plain transform's varints. */
void tp_cc_deltas(const uint64_t *u, size_t n, uint8_t transform, uint64_t *v);
/* Picks the transform (1 grid, 2 delta, 3 delta2) whose values cost the fewest estimated bits (in *bits when
 * not NULL); gaps and res are scratch of n values. */
uint8_t tp_cc_choose(const uint64_t *u, size_t n, uint64_t *gaps, uint64_t *res, double *bits);

#endif
