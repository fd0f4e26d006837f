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

#include "codec/colcoder.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The schema: field number -> column type. Index = field number - 1. */
static const uint8_t field_type[9] = {TP_COLT_UINT64, TP_COLT_INT64,  TP_COLT_UINT64,
                                      TP_COLT_DOUBLE, TP_COLT_DOUBLE, TP_COLT_FLOAT,
                                      TP_COLT_FLOAT,  TP_COLT_FLOAT,  TP_COLT_INT32};

static int plane_width(uint8_t type) { return (type == TP_COLT_FLOAT || type == TP_COLT_INT32) ? 4 : 8; }

static bool type_is_signed(uint8_t type, uint8_t scale)
{
    return type == TP_COLT_INT64 || type == TP_COLT_INT32 || scale != TP_COLPACK_SCALE_NONE;
}

/* ---- identification ---- */

bool tp_colpack_sniff(const uint8_t *content, size_t len)
{
    return content && len >= TP_COLPACK_MAGIC_LEN && memcmp(content, TP_COLPACK_MAGIC, TP_COLPACK_MAGIC_LEN) == 0;
}

int tp_colpack_version(const uint8_t *content, size_t len)
{
    if (!content || len < TP_COLPACK_MAGIC_LEN || content[0] != 0 || content[1] != 'T' ||
        (content[2] != 'C' && content[2] != 'c') || (content[3] != '2' && content[3] != '3'))
        return 0;
    return content[3] - '0';
}

bool tp_colpack_is_coded(const uint8_t *content, size_t len)
{
    return tp_colpack_version(content, len) && content[2] == 'c';
}

/* ---- encoder ---- */

struct tp_colpack_encoder {
    uint64_t *units[9]; /* one scratch column per field */
    uint64_t *scaled;   /* the scaled integers of a decimal column, swapped into units[] when a scale fits */
    size_t units_cap;
    uint8_t *out;
    size_t out_cap;
    bool coded;      /* write coded columns (docs/FORMAT_V2.md, "Coded columns") */
    uint8_t *coded_out; /* the coded form of the content in out, when it is smaller */
    size_t coded_cap;
    uint64_t *vals;  /* one column's stored values */
    uint64_t *gaps;  /* a gridded column's gaps */
    uint8_t *zero[2]; /* zero flags of the previous and the current coded column */
    tp_cc_model model;
};

void tp_colpack_encoder_set_coded(tp_colpack_encoder *e, bool on)
{
    if (e)
        e->coded = on;
}

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
    free(e->coded_out);
    free(e->vals);
    free(e->gaps);
    free(e->zero[0]);
    free(e->zero[1]);
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
    if (e->coded && need > e->coded_cap) {
        uint8_t *g = realloc(e->coded_out, need);
        if (!g)
            return TP_ERR_NOMEM;
        e->coded_out = g;
        for (int i = 0; i < 2; i++) {
            uint64_t **slot = i ? &e->gaps : &e->vals, *v = realloc(*slot, e->units_cap * sizeof *v);
            if (!v)
                return TP_ERR_NOMEM;
            *slot = v;
        }
        for (int i = 0; i < 2; i++) {
            uint8_t *z = realloc(e->zero[i], e->units_cap);
            if (!z)
                return TP_ERR_NOMEM;
            e->zero[i] = z;
        }
        e->coded_cap = need;
    }
    return TP_OK;
}

static bool transform_is_coded(uint8_t tr) { return tr == TP_COLX_RAW || tr == TP_COLX_DELTA || tr == TP_COLX_DELTA2; }

/* The coded form of the pack (docs/FORMAT_V2.md, "Coded columns") whose plain content plain[0..plain_len) was
 * just written from plan[] over the units u[]: the same header with the coded magic; every raw, delta or delta2
 * column becomes a coded one (transform by tp_cc_choose, body length 0), the other bodies stay; then one
 * range-coded stream of the coded columns in descriptor order. Returns its length, or 0 when it would not be
 * smaller than the plain content. */
static size_t encode_coded(tp_colpack_encoder *e, const tp_units_plan *plan, uint64_t *const *u, size_t n,
                           int ncols, const uint8_t *plain, size_t plain_len, size_t body_at)
{
    uint8_t cc[9];
    bool any = false;
    for (int c = 0; c < 9; c++) {
        /* varint columns, and for-planes ones (a live partition's wide coordinates: the grid with a step of 0 is
         * their offsets, coded by value) */
        bool codable = plan[c].transform != 0xFF &&
                       (transform_is_coded(plan[c].transform) || plan[c].transform == TP_COLX_FOR_PLANES ||
                        plan[c].transform == TP_COLX_RUNS);
        double bits = 0;
        cc[c] = codable ? tp_cc_choose(u[c], n, e->gaps, e->vals, &bits) : 0;
        if (plan[c].transform == TP_COLX_RUNS && bits / 8 >= (double)plan[c].body_len)
            cc[c] = 0; /* runs stay when coding them would not be smaller than their body */
        any |= cc[c] != 0;
    }
    if (!any)
        return 0;
    uint8_t *p = e->coded_out;
    memcpy(p, plain, TP_COLPACK_MAGIC_LEN);
    p[2] = 'c';
    p = tp_units_varint_put(p + TP_COLPACK_MAGIC_LEN, n);
    p = tp_units_varint_put(p, (uint64_t)ncols);
    for (int c = 0; c < 9; c++) {
        if (plan[c].transform == 0xFF)
            continue;
        p = tp_units_varint_put(p, (uint64_t)(c + 1));
        *p++ = (uint8_t)((cc[c] ? cc[c] : plan[c].transform) | tp_units_scale_code(plan[c].scale) << 3);
        if (!cc[c]) /* a coded column's descriptor has no body length: it has no body */
            p = tp_units_varint_put(p, plan[c].body_len);
    }
    const uint8_t *body = plain + body_at;
    for (int c = 0; c < 9; c++) {
        if (plan[c].transform == 0xFF)
            continue;
        if (!cc[c]) {
            memcpy(p, body, plan[c].body_len);
            p += plan[c].body_len;
        }
        body += plan[c].body_len;
    }
    size_t head = (size_t)(p - e->coded_out);
    if (head >= plain_len)
        return 0;
    tp_cc_encoder enc;
    tp_cc_enc_init(&enc, p, plain_len - head - 1);
    const uint8_t *prev_zero = NULL;
    int zi = 0;
    for (int c = 0; c < 9; c++) {
        if (!cc[c])
            continue;
        if (cc[c] == TP_COLX_RAW) { /* the grid: base, step, gaps when the step is positive, then residuals */
            uint64_t base, step;
            bool gridded = tp_cc_grid(u[c], n, &base, &step, e->gaps, e->vals);
            tp_cc_enc_word(&enc, base);
            tp_cc_enc_word(&enc, tp_zz_enc(step));
            if (gridded)
                tp_cc_enc_column(&enc, &e->model, e->gaps, n, NULL, NULL);
        } else {
            tp_cc_deltas(u[c], n, cc[c], e->vals);
        }
        tp_cc_enc_column(&enc, &e->model, e->vals, n, prev_zero, e->zero[zi]);
        prev_zero = e->zero[zi];
        zi ^= 1;
        if (enc.overflow)
            return 0;
    }
    size_t slen = tp_cc_enc_finish(&enc);
    return slen == SIZE_MAX ? 0 : head + slen;
}

tp_err tp_colpack_encode(tp_colpack_encoder *e, const tp_record *recs, size_t n, const uint8_t **out,
                         size_t *out_len)
{
    return tp_colpack_encode_version(e, recs, n, 2, out, out_len);
}

tp_err tp_colpack_encode_version(tp_colpack_encoder *e, const tp_record *recs, size_t n, int version,
                                 const uint8_t **out, size_t *out_len)
{
    return tp_colpack_encode_gather(e, recs, NULL, n, version, out, out_len);
}

tp_err tp_colpack_encode_gather(tp_colpack_encoder *e, const tp_record *recs, const uint32_t *idx, size_t n,
                                int version, const uint8_t **out, size_t *out_len)
{
    if (!e || !recs || !out || !out_len || n == 0 || n > UINT32_MAX || n > (SIZE_MAX - 400) / 200 ||
        (version != 2 && version != 3))
        return TP_ERR_INVALID_ARG;
    tp_err err = ensure_cap(e, n);
    if (err)
        return err;

    /* the transpose, with the version-3 order check and each column's "any nonzero" in the same pass (locals, so
     * the compiler keeps them in registers) */
    uint64_t **u = e->units;
    uint64_t *u0 = u[0], *u1 = u[1], *u2 = u[2], *u3 = u[3], *u4 = u[4], *u5 = u[5], *u6 = u[6], *u7 = u[7],
             *u8 = u[8];
    uint64_t nz0 = 0, nz1 = 0, nz2 = 0, nz3 = 0, nz4 = 0, nz5 = 0, nz6 = 0, nz7 = 0, nz8 = 0;
    bool disorder = false;
    const tp_record *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        const tp_record *r = idx ? &recs[idx[i]] : &recs[i];
        if (version == 3 && prev)
            disorder |= r->vehicle_id < prev->vehicle_id ||
                        (r->vehicle_id == prev->vehicle_id && r->sampled_at_ms < prev->sampled_at_ms);
        prev = r;
        nz0 |= u0[i] = r->vehicle_id;
        nz1 |= u1[i] = (uint64_t)r->sampled_at_ms;
        nz2 |= u2[i] = r->seq;
        nz3 |= u3[i] = tp_bits_f64(r->latitude);
        nz4 |= u4[i] = tp_bits_f64(r->longitude);
        nz5 |= u5[i] = tp_bits_f32(r->speed_kmh);
        nz6 |= u6[i] = tp_bits_f32(r->heading_deg);
        nz7 |= u7[i] = tp_bits_f32(r->accuracy_m);
        nz8 |= u8[i] = (uint64_t)(int64_t)r->meter_status;
    }
    if (disorder)
        return TP_ERR_INVALID_ARG;
    const uint64_t nonzero[9] = {nz0, nz1, nz2, nz3, nz4, nz5, nz6, nz7, nz8};

    tp_units_plan plan[9];
    int ncols = 0;
    for (int c = 0; c < 9; c++) {
        plan[c].transform = 0xFF;
        if (!nonzero[c]) /* every value zero (+0.0 for floating): the column is omitted */
            continue;
        ncols++;
        uint8_t type = field_type[c];
        plan[c].scale = TP_COLPACK_SCALE_NONE;
        if (type == TP_COLT_DOUBLE || type == TP_COLT_FLOAT) {
            int d = tp_units_find_scale(u[c], n, type == TP_COLT_FLOAT, 0, e->scaled);
            if (d < 0)
                d = tp_units_find_scale(u[c], n, type == TP_COLT_FLOAT, TP_COLPACK_SCALE_MUL, e->scaled);
            if (d < 0) {
                tp_units_plan_bits(u[c], n, plane_width(type), &plan[c]);
                continue;
            }
            plan[c].scale = (uint8_t)d;
            uint64_t *bits = u[c]; /* the column's units are now the scaled integers */
            u[c] = e->scaled;
            e->scaled = bits;
        }
        tp_units_plan_varints(u[c], n, type_is_signed(type, plan[c].scale), &plan[c]);
        if (version == 3)
            tp_units_plan_for(u[c], n, type_is_signed(type, plan[c].scale), NULL, &plan[c]);
    }

    uint8_t *p = e->out;
    memcpy(p, version == 3 ? TP_COLPACK_MAGIC_V3 : TP_COLPACK_MAGIC, TP_COLPACK_MAGIC_LEN);
    p += TP_COLPACK_MAGIC_LEN;
    p = tp_units_varint_put(p, n);
    p = tp_units_varint_put(p, (uint64_t)ncols);
    for (int c = 0; c < 9; c++) {
        if (plan[c].transform == 0xFF)
            continue;
        p = tp_units_varint_put(p, (uint64_t)(c + 1));
        *p++ = (uint8_t)(plan[c].transform | tp_units_scale_code(plan[c].scale) << 3);
        p = tp_units_varint_put(p, plan[c].body_len);
    }
    size_t body_at = (size_t)(p - e->out);
    for (int c = 0; c < 9; c++) {
        if (plan[c].transform == 0xFF)
            continue;
        uint8_t type = field_type[c];
        p = tp_units_write(p, u[c], n, type_is_signed(type, plan[c].scale), plane_width(type), plan[c].transform);
    }
    *out = e->out;
    *out_len = (size_t)(p - e->out);
    if (e->coded) {
        size_t clen = encode_coded(e, plan, u, n, ncols, e->out, *out_len, body_at);
        if (clen) {
            *out = e->coded_out;
            *out_len = clen;
        }
    }
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
        if (tp_units_varint_get(msg, len, &pos, &tag))
            return false;
        uint64_t field = tag >> 3;
        unsigned wt = (unsigned)(tag & 7);
        if (field < 1 || field > 9 || want[field] != wt)
            return false;
        if (wt == 0) {
            if (tp_units_varint_get(msg, len, &pos, &v))
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
                    "content of %zu bytes does not start with a pbpack v2 or v3 magic (00 54 43 32 / 33, coded 00 54 "
                    "63 32 / 33); it is "
                    "not column-layout content this reader knows",
                    len);
    r->version = (uint8_t)version;
    *pos = TP_COLPACK_MAGIC_LEN;
    uint64_t count;
    tp_err err;
    if ((err = tp_units_varint_get(content, len, pos, &count)))
        return fail(r, err, "header: record count varint at content offset %zu is %s", *pos,
                    err == TP_ERR_TRUNCATED ? "cut off" : "longer than 10 bytes");
    if (count == 0)
        return fail(r, TP_ERR_CORRUPT, "header: record count 0; a pack holds at least one record");
    if (count > max_records || count > UINT32_MAX)
        return fail(r, TP_ERR_PACK_TOO_LARGE,
                    "header: record count %" PRIu64 " above the reader's limit of %" PRIu64
                    " records; raise max_pack_bytes if the pack is legitimate",
                    count, max_records < UINT32_MAX ? max_records : (uint64_t)UINT32_MAX);
    if ((err = tp_units_varint_get(content, len, pos, ncols)))
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
        if ((err = tp_units_varint_get(content, len, pos, &desc[i].field)))
            return fail(r, err, "column descriptor %" PRIu64 " at content offset %zu: field number %s", i, at,
                        err == TP_ERR_TRUNCATED ? "cut off" : "varint longer than 10 bytes");
        if (*pos >= len)
            return fail(r, TP_ERR_TRUNCATED, "column descriptor %" PRIu64 " at content offset %zu is cut off", i,
                        at);
        desc[i].code = content[(*pos)++];
        desc[i].blen = 0;
        if (r->coded && transform_is_coded(desc[i].code & 7))
            continue; /* a coded column: no body length, no body */
        if ((err = tp_units_varint_get(content, len, pos, &desc[i].blen)))
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
    int sci = tp_units_scale_from_code((uint8_t)(d->code >> 3));
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
                    tp_units_transform_name(tr));
    /* Body size bounds per transform: a lying record count is caught here, before decoding. */
    bool bad = !tp_units_body_fits(tr, plane_width(type), blen, count);
    if (bad)
        return fail(r, TP_ERR_CORRUPT,
                    "column %" PRIu64 " (field %" PRIu64 "): %s body of %" PRIu64 " bytes cannot hold %" PRIu64
                    " records",
                    i, f, tp_units_transform_name(tr), blen, count);
    *tr_out = tr;
    *sc_out = sc;
    return TP_OK;
}

/* The head of column i's body for the transforms that have one: const's one varint, for-planes' base varint and
 * width byte (then exactly width x count plane bytes). */
static tp_err read_body_head(tp_colpack_reader *r, tp_units_col *c, uint64_t i, uint64_t count)
{
    char why[sizeof r->detail - 24];
    tp_err err = tp_units_open_body(c, count, why, sizeof why);
    return err ? fail(r, err, "column %" PRIu64 " (%s)", i, why) : TP_OK;
}

/* Grows the reader's scratch to need bytes. */
static tp_err scratch_reserve(tp_colpack_reader *r, size_t need)
{
    tp_colpack_scratch *s = r->scratch;
    if (need <= s->cap)
        return TP_OK;
    uint8_t *g = realloc(s->buf, need);
    if (!g)
        return fail(r, TP_ERR_NOMEM, "no memory for the %zu-byte scratch of a coded pack", need);
    s->buf = g;
    s->cap = need;
    return TP_OK;
}

/* Coded columns (docs/FORMAT_V2.md): decodes the stream content[at..len) into each coded column's values, in
 * descriptor order, and gives every known coded column a body of those values as varints in the scratch, read from
 * then on as the plain transform's body. */
static tp_err decode_coded(tp_colpack_reader *r, const uint8_t *content, size_t len, size_t at,
                           const col_desc *desc, uint64_t ncols)
{
    size_t n = r->count, known = 0;
    for (uint64_t i = 0; i < ncols; i++)
        known += transform_is_coded(desc[i].code & 7) && desc[i].field <= 9;
    /* values and gaps of one column (16 n), zero flags of two (2 n), the known columns' varints (at most 10 n
     * each) */
    if (n > (SIZE_MAX / 2 - 64) / (18 + 10 * (known + 1)))
        return fail(r, TP_ERR_PACK_TOO_LARGE, "a coded pack of %zu records is too large for this machine", n);
    tp_err err = scratch_reserve(r, 18 * n + 10 * n * known + 16);
    if (err)
        return err;
    uint8_t *buf = r->scratch->buf;
    uint64_t *vals = (uint64_t *)(void *)buf, *gaps = vals + n;
    uint8_t *zero[2] = {buf + 16 * n, buf + 17 * n}, *out = buf + 18 * n;
    const uint8_t *prev_zero = NULL;
    int zi = 0;
    tp_cc_model model;
    tp_cc_decoder dec;
    tp_cc_dec_init(&dec, content + at, len - at);
    for (uint64_t i = 0; i < ncols; i++) {
        if (!transform_is_coded(desc[i].code & 7))
            continue;
        bool grid = (desc[i].code & 7) == TP_COLX_RAW, gridded = false;
        uint64_t base = 0, step = 0;
        if (grid) {
            base = tp_cc_dec_word(&dec);
            step = tp_zz_dec(tp_cc_dec_word(&dec));
            gridded = (int64_t)step > 0;
            if (gridded)
                tp_cc_dec_column(&dec, &model, gaps, n, NULL, NULL);
        }
        tp_cc_dec_column(&dec, &model, vals, n, prev_zero, zero[zi]);
        prev_zero = zero[zi];
        zi ^= 1;
        if (desc[i].field > 9)
            continue; /* a newer schema's column: its values are skipped */
        tp_units_col *c = &r->cols[desc[i].field - 1];
        uint8_t *p = out;
        if (grid) { /* units on the grid, then as the plain raw transform stores them */
            uint64_t k = (uint64_t)-1;
            for (size_t j = 0; j < n; j++) {
                k = gridded ? k + 1 + tp_zz_dec(gaps[j]) : (uint64_t)j;
                uint64_t unit = base + k * step + vals[j];
                p = tp_units_varint_put(p, c->signed_units ? tp_zz_enc(unit) : unit);
            }
        }
        else
            for (size_t j = 0; j < n; j++)
                p = tp_units_varint_put(p, vals[j]);
        c->body = out;
        c->len = (size_t)(p - out);
        out = p;
        if ((err = read_body_head(r, c, i, n)))
            return err;
    }
    return TP_OK;
}

void tp_colpack_scratch_free(tp_colpack_scratch *s)
{
    if (!s)
        return;
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

void tp_colpack_reader_release(tp_colpack_reader *r)
{
    if (r)
        tp_colpack_scratch_free(&r->own);
}

tp_err tp_colpack_open(tp_colpack_reader *r, const uint8_t *content, size_t len, uint64_t max_records)
{
    return tp_colpack_open_with(r, content, len, max_records, NULL);
}

tp_err tp_colpack_open_with(tp_colpack_reader *r, const uint8_t *content, size_t len, uint64_t max_records,
                            tp_colpack_scratch *scratch)
{
    if (!r)
        return TP_ERR_INVALID_ARG;
    memset(r, 0, sizeof *r);
    r->scratch = scratch ? scratch : &r->own;
    for (int c = 0; c < 9; c++)
        r->cols[c].transform = COL_ABSENT;
    if (!content && len)
        return fail(r, TP_ERR_INVALID_ARG, "no content buffer given");
    size_t pos = 0;
    uint64_t ncols = 0;
    col_desc desc[TP_COLPACK_MAX_COLUMNS];
    tp_err err;
    r->coded = tp_colpack_is_coded(content, len);
    if ((err = read_header(r, content, len, max_records, &pos, &ncols)) ||
        (err = read_descriptors(r, content, len, &pos, ncols, desc)))
        return err;
    uint64_t count = r->count;
    size_t body_at = pos;
    bool any_coded = false;
    for (uint64_t i = 0; i < ncols; i++) {
        uint64_t f = desc[i].field, blen = desc[i].blen;
        bool coded = r->coded && transform_is_coded(desc[i].code & 7);
        any_coded |= coded;
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
        tp_units_col *c = &r->cols[f - 1];
        if (c->transform != COL_ABSENT)
            return fail(r, TP_ERR_CORRUPT, "column %" PRIu64 ": field %" PRIu64 " appears twice", i, f);
        uint8_t type = field_type[f - 1], tr = 0, sc = 0;
        col_desc checked = desc[i];
        if (coded)
            checked.blen = count; /* the body is made from the stream below: n varints */
        if ((err = check_transform(r, i, &checked, type, count, &tr, &sc)))
            return err;
        c->body = body;
        c->len = (size_t)blen;
        c->field = (uint32_t)f;
        c->type = type;
        c->transform = tr;
        c->scale = sc;
        c->signed_units = type_is_signed(type, sc);
        c->plane_w = (uint8_t)plane_width(type);
        c->sext32 = type == TP_COLT_INT32;
        if (!coded && (err = read_body_head(r, c, i, count)))
            return err;
    }
    if (any_coded) {
        if ((err = decode_coded(r, content, len, body_at, desc, ncols)))
            return err;
    } else if (body_at != len) {
        return fail(r, TP_ERR_TRAILING_GARBAGE, "%zu bytes after the last column body (content offset %zu)",
                    len - body_at, body_at);
    }
    r->ncols = 9;
    return TP_OK;
}

/* Checks a unit fits its column's type; for int32 and float bit patterns the unit must fit 32 bits. */
static tp_err check_units32(tp_colpack_reader *r, const tp_units_col *c, const uint64_t *u, size_t k)
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
        tp_units_col *c = &r->cols[f];
        if (c->transform != COL_ABSENT && !tp_units_consumed(c))
            return fail(r, TP_ERR_CORRUPT, "field %u: %zu bytes of its %zu-byte body left after the last record",
                        c->field, c->len - c->pos, c->len);
    }
    return TP_OK;
}

/* The next k units of column c, with the reader's position. */
static tp_err col_units(tp_colpack_reader *r, tp_units_col *c, uint64_t *u, size_t k)
{
    return tp_units_next(c, r->count, r->done, u, k, r->detail, sizeof r->detail);
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
            tp_units_col *c = &r->cols[f];
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
            case 3: for (size_t j = 0; j < m; j++) o[j].latitude = tp_units_f64(u[j], c->scale); break;
            case 4: for (size_t j = 0; j < m; j++) o[j].longitude = tp_units_f64(u[j], c->scale); break;
            case 5: for (size_t j = 0; j < m; j++) o[j].speed_kmh = tp_units_f32(u[j], c->scale); break;
            case 6: for (size_t j = 0; j < m; j++) o[j].heading_deg = tp_units_f32(u[j], c->scale); break;
            case 7: for (size_t j = 0; j < m; j++) o[j].accuracy_m = tp_units_f32(u[j], c->scale); break;
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
        tp_units_col *c = &r->cols[f];
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
                    double v = tp_units_f64(one, c->scale), *dst = f == 3 ? b->latitude + d : b->longitude + d;
                    for (size_t j = 0; j < m; j++)
                        dst[j] = v;
                    break;
                }
                case 5: case 6: case 7: {
                    float v = tp_units_f32(one, c->scale);
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
            case 3: tp_units_to_f64(u, m, c->scale, b->latitude + d); break;
            case 4: tp_units_to_f64(u, m, c->scale, b->longitude + d); break;
            case 5: tp_units_to_f32(u, m, c->scale, b->speed_kmh + d); break;
            case 6: tp_units_to_f32(u, m, c->scale, b->heading_deg + d); break;
            case 7: tp_units_to_f32(u, m, c->scale, b->accuracy_m + d); break;
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
