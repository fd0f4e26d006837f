/* Entropy coding of column values: the adaptive binary range coder and the binarization of one stored value per
 * record. Spec: docs/FORMAT_V2.md, "Coded columns"; the coder is LZMA's (a 32-bit range, carries propagated
 * through a cached byte) with 16-bit probabilities, its first output byte (always 0) not stored and its trailing
 * zero bytes dropped. */
#include "codec/colcoder.h"

#include "codec/colunits.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOP (1u << 24)

void tp_cc_model_reset(tp_cc_model *m)
{
    const tp_cc_prob half = {32768, 0};
    for (int z = 0; z < 4; z++)
        m->zero[z] = half;
    for (int q = 0; q < 64; q++)
        m->len[q] = half;
    for (int n = 0; n < TP_CC_LEN_CTX; n++)
        for (int j = 0; j < 3; j++)
            m->mant[n][j] = half;
}

/* The adaptation rate after `seen` bits: 65536 / (seen + 2), so that the first bits count as in the
 * Krichevsky-Trofimov estimator (a context's probability is its bits' frequency plus one half), settling at 1/64
 * (seen stops at 62) so that long columns keep adapting. */
static const uint16_t rate[63] = {
    32768, 21845, 16384, 13107, 10922, 9362, 8192, 7281, 6553,
    5957, 5461, 5041, 4681, 4369, 4096, 3855, 3640, 3449,
    3276, 3120, 2978, 2849, 2730, 2621, 2520, 2427, 2340,
    2259, 2184, 2114, 2048, 1985, 1927, 1872, 1820, 1771,
    1724, 1680, 1638, 1598, 1560, 1524, 1489, 1456, 1424,
    1394, 1365, 1337, 1310, 1285, 1260, 1236, 1213, 1191,
    1170, 1149, 1129, 1110, 1092, 1074, 1057, 1040, 1024,
};

static inline void adapt(tp_cc_prob *c, unsigned bit)
{
    uint32_t r = rate[c->seen], p = c->p; /* p stays in 1..65535: r < 65536 */
    c->seen = (uint8_t)(c->seen + (c->seen < 62));
    p = bit ? p - ((p * r) >> 16) : p + (((65536u - p) * r) >> 16);
    c->p = (uint16_t)p;
}

static inline unsigned bit_length(uint64_t v) { return v ? 64u - (unsigned)__builtin_clzll(v) : 0u; }

/* ---- encoder ---- */

void tp_cc_enc_init(tp_cc_encoder *e, uint8_t *out, size_t cap)
{
    e->low = 0;
    e->range = 0xFFFFFFFFu;
    e->cache = 0;
    e->cache_size = 1; /* as LZMA: a pending 0 byte, which is always 0 and is not stored */
    e->lead = true;
    e->out = out;
    e->len = 0;
    e->cap = cap;
    e->overflow = false;
}

static inline void put(tp_cc_encoder *e, uint8_t b)
{
    if (e->lead)
        e->lead = false;
    else if (e->len < e->cap)
        e->out[e->len++] = b;
    else
        e->overflow = true;
}

static void shift_low(tp_cc_encoder *e)
{
    if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32) != 0) {
        uint8_t carry = (uint8_t)(e->low >> 32), temp = e->cache;
        for (; e->cache_size; e->cache_size--) {
            put(e, (uint8_t)(temp + carry));
            temp = 0xFF;
        }
        e->cache = (uint8_t)(e->low >> 24);
    }
    e->cache_size++;
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

static inline void enc_bit(tp_cc_encoder *e, tp_cc_prob *c, unsigned bit)
{
    uint32_t bound = (e->range >> 16) * c->p;
    if (bit) {
        e->low += bound;
        e->range -= bound;
    } else {
        e->range = bound;
    }
    adapt(c, bit);
    while (e->range < TOP) {
        e->range <<= 8;
        shift_low(e);
    }
}

static inline void enc_direct(tp_cc_encoder *e, unsigned bit)
{
    e->range >>= 1;
    if (bit)
        e->low += e->range;
    while (e->range < TOP) {
        e->range <<= 8;
        shift_low(e);
    }
}

void tp_cc_enc_column(tp_cc_encoder *e, tp_cc_model *m, const uint64_t *v, size_t n, const uint8_t *prev_zero,
                      uint8_t *zero)
{
    tp_cc_model_reset(m);
    unsigned own = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = v[i];
        unsigned nb = bit_length(x);
        tp_cc_prob *z = &m->zero[(prev_zero ? prev_zero[i] * 2u : 0u) + own];
        for (unsigned q = 0; q < 64; q++) {
            unsigned more = nb > q;
            enc_bit(e, q ? &m->len[q] : z, more);
            if (!more)
                break;
        }
        for (int b = (int)nb - 2; b >= 0; b--) {
            unsigned j = nb - 2u - (unsigned)b, bit = (unsigned)(x >> b) & 1u;
            if (j < 3)
                enc_bit(e, &m->mant[nb][j], bit);
            else
                enc_direct(e, bit);
        }
        own = x == 0;
        if (zero)
            zero[i] = (uint8_t)own;
    }
}

size_t tp_cc_enc_finish(tp_cc_encoder *e)
{
    for (int i = 0; i < 5; i++)
        shift_low(e);
    if (e->overflow)
        return SIZE_MAX;
    while (e->len && e->out[e->len - 1] == 0)
        e->len--;
    return e->len;
}

/* ---- decoder ---- */

static inline uint8_t next_byte(tp_cc_decoder *d) { return d->pos < d->len ? d->src[d->pos++] : (d->pos++, 0); }

void tp_cc_dec_init(tp_cc_decoder *d, const uint8_t *src, size_t len)
{
    d->src = src;
    d->len = len;
    d->pos = 0;
    d->range = 0xFFFFFFFFu;
    d->code = 0;
    for (int i = 0; i < 4; i++)
        d->code = d->code << 8 | next_byte(d);
}

static inline void dec_normalize(tp_cc_decoder *d)
{
    if (d->range < TOP) { /* at most twice: a bound is at least range / 2^16 */
        d->range <<= 8;
        d->code = d->code << 8 | next_byte(d);
        if (d->range < TOP) {
            d->range <<= 8;
            d->code = d->code << 8 | next_byte(d);
        }
    }
}

static inline unsigned dec_bit(tp_cc_decoder *d, tp_cc_prob *c)
{
    uint32_t bound = (d->range >> 16) * c->p;
    uint32_t one = d->code >= bound, mask = 0u - one; /* without a branch: the bits are what is unpredictable */
    d->code -= bound & mask;
    d->range = ((d->range - bound) & mask) | (bound & ~mask);
    adapt(c, one);
    dec_normalize(d);
    return one;
}

static inline unsigned dec_direct(tp_cc_decoder *d)
{
    d->range >>= 1;
    uint32_t one = d->code >= d->range;
    d->code -= d->range & (0u - one);
    dec_normalize(d);
    return one;
}

void tp_cc_dec_column(tp_cc_decoder *d, tp_cc_model *m, uint64_t *v, size_t n, const uint8_t *prev_zero,
                      uint8_t *zero)
{
    tp_cc_model_reset(m);
    unsigned own = 0;
    for (size_t i = 0; i < n; i++) {
        tp_cc_prob *z = &m->zero[(prev_zero ? prev_zero[i] * 2u : 0u) + own];
        unsigned nb = 0;
        if (dec_bit(d, z))
            for (nb = 1; nb < 64 && dec_bit(d, &m->len[nb]);)
                nb++;
        uint64_t x = nb ? 1 : 0;
        for (int b = (int)nb - 2; b >= 0; b--) {
            unsigned j = nb - 2u - (unsigned)b;
            x = x << 1 | (j < 3 ? dec_bit(d, &m->mant[nb][j]) : dec_direct(d));
        }
        v[i] = x;
        own = x == 0;
        if (zero)
            zero[i] = (uint8_t)own;
    }
}

/* ---- values coded whole, with direct bits: the line's base and step ---- */

void tp_cc_enc_word(tp_cc_encoder *e, uint64_t v)
{
    unsigned nb = bit_length(v);
    for (int b = 6; b >= 0; b--)
        enc_direct(e, (nb >> b) & 1u);
    for (int b = (int)nb - 2; b >= 0; b--)
        enc_direct(e, (unsigned)(v >> b) & 1u);
}

uint64_t tp_cc_dec_word(tp_cc_decoder *d)
{
    unsigned nb = 0;
    for (int b = 6; b >= 0; b--)
        nb = nb << 1 | dec_direct(d);
    if (nb > 64)
        nb = 64; /* 65..127 never written: read as 64 (the content's checksum catches damage) */
    uint64_t v = nb ? 1 : 0;
    for (int b = (int)nb - 2; b >= 0; b--)
        v = v << 1 | dec_direct(d);
    return v;
}

/* ---- the writer's choice (informative) ---- */

/* The cost in bits of coding v by bit length (order-0 over the lengths) plus the bits below each top bit: close
 * to what the adaptive coder spends, without its learning. */
typedef struct {
    uint32_t h[65];
    uint64_t mant;
} cost_acc;

static inline void cost_add(cost_acc *a, uint64_t v)
{
    unsigned nb = bit_length(v);
    a->h[nb]++;
    a->mant += nb > 1 ? nb - 1 : 0;
}

static double cost_bits(const cost_acc *a, size_t n)
{
    double bits = (double)a->mant;
    for (int i = 0; i < 65; i++)
        if (a->h[i])
            bits += (double)a->h[i] * log2((double)n / (double)a->h[i]);
    return bits;
}

/* The k-th smallest of d[0..n) (Hoare's selection; d is reordered). */
static int64_t select_kth(int64_t *d, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t pivot = d[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (d[i] < pivot)
                i++;
            while (d[j] > pivot)
                j--;
            if (i <= j) {
                int64_t t = d[i];
                d[i] = d[j];
                d[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return d[k];
}

/* floor(x / s) for s > 0 */
static inline int64_t floor_div(int64_t x, int64_t s)
{
    int64_t q = x / s;
    return q - (x % s != 0 && x < 0);
}

bool tp_cc_grid(const uint64_t *u, size_t n, uint64_t *base, uint64_t *step, uint64_t *gaps, uint64_t *res)
{
    int64_t d[65];
    size_t k = 0;
    if (n >= 2) {
        size_t m = n - 1 < 65 ? n - 1 : 65;
        for (size_t j = 0; j < m; j++) {
            size_t i = 1 + j * (n - 1) / m;
            d[k++] = (int64_t)(u[i] - u[i - 1]);
        }
    }
    int64_t s = k ? select_kth(d, k, k / 2) : 0;
    bool gridded = s > 0; /* as the reader decides: a positive step has gaps */
    /* grid points: k[i] nearest to (u[i] - u[0]) / s, residuals from them, then the base moved to the smallest */
    int64_t kprev = -1, lo = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t ki = (int64_t)i;
        if (gridded) {
            int64_t x = (int64_t)(u[i] - u[0]);
            ki = x > INT64_MAX - s / 2 ? x / s : floor_div(x + s / 2, s);
            gaps[i] = tp_zz_enc((uint64_t)ki - (uint64_t)kprev - 1u);
            kprev = ki;
        }
        res[i] = u[i] - u[0] - (uint64_t)ki * (uint64_t)s;
        if (i == 0 || (int64_t)res[i] < lo)
            lo = (int64_t)res[i];
    }
    for (size_t i = 0; i < n; i++)
        res[i] -= (uint64_t)lo;
    *base = u[0] + (uint64_t)lo;
    *step = (uint64_t)s;
    return gridded;
}

void tp_cc_deltas(const uint64_t *u, size_t n, uint8_t transform, uint64_t *v)
{
    uint64_t prev = 0, pd = 0;
    if (transform == 2) {
        for (size_t i = 0; i < n; i++) {
            v[i] = tp_zz_enc(u[i] - prev);
            prev = u[i];
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t dd = i ? u[i] - prev : 0;
        v[i] = i ? tp_zz_enc(dd - pd) : tp_zz_enc(u[0]);
        pd = dd;
        prev = u[i];
    }
}

uint8_t tp_cc_choose(const uint64_t *u, size_t n, uint64_t *gaps, uint64_t *res, double *bits)
{
    cost_acc a[4];
    memset(a, 0, sizeof a);
    uint64_t base, step;
    bool gridded = tp_cc_grid(u, n, &base, &step, gaps, res);
    uint64_t prev = 0, pd = 0;
    for (size_t i = 0; i < n; i++) {
        if (gridded)
            cost_add(&a[3], gaps[i]);
        cost_add(&a[0], res[i]);
        cost_add(&a[1], tp_zz_enc(u[i] - prev));
        uint64_t dd = i ? u[i] - prev : 0;
        cost_add(&a[2], i ? tp_zz_enc(dd - pd) : tp_zz_enc(u[0]));
        pd = dd;
        prev = u[i];
    }
    /* the grid's base and step cost their bits up front; deltas pay for their first values in the column */
    double c[3] = {cost_bits(&a[0], n) + (gridded ? cost_bits(&a[3], n) : 0) + 14 + bit_length(base) +
                       bit_length(tp_zz_enc(step)),
                   cost_bits(&a[1], n), cost_bits(&a[2], n)};
    int best = 0;
    for (int t = 1; t < 3; t++)
        if (c[t] < c[best])
            best = t;
    if (bits)
        *bits = c[best];
    return (uint8_t)(best + 1);
}
