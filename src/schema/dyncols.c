/* Column packs of a run-time schema (schema/dyncols.h); the byte layout is specified in docs/FORMAT_SCHEMA.md.
 *
 *   +-------------+-------+-------+-------+------------------------------+-----------------------------------+
 *   | 00 54 43 53 | count | flags | ncols | ncols x column descriptor    | column bodies, in descriptor order |
 *   +-------------+-------+-------+-------+------------------------------+-----------------------------------+
 *     descriptor: depth varint, depth x field number varint, type u8, label u8, flags u8, body length varint
 *     body: [presence stream] [lengths stream] values: numeric stream | string lengths stream + blob |
 *           D varint + dictionary lengths stream + blob + index stream
 *     stream: code u8 (transform | scale code << 3), body length varint, body (codec/colunits.h)
 *
 * The transforms themselves (const, raw, delta, delta2, runs, planes, for-planes) are colunits.c's, shared with the
 * built-in record's columns. */
#include "schema/dyncols.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/colunits.h"

#define F_PRESENCE 1u /* column flag: a presence stream comes first */
#define F_DICT 2u     /* column flag: string values by dictionary */
#define F_KNOWN (F_PRESENCE | F_DICT)

#define TS_LO_NS (INT64_MIN + 1000000000) /* the Timestamp range tp_dyn_decode accepts, in ns */
#define TS_HI_NS (INT64_MAX - 1000000000)

bool tp_dyncol_sniff(const uint8_t *content, size_t len)
{
    return content && len >= TP_DYNCOL_MAGIC_LEN && memcmp(content, TP_DYNCOL_MAGIC, TP_DYNCOL_MAGIC_LEN) == 0;
}

/* ---- what a column's kind means for its units ---- */

static bool kind_signed(tp_col_kind k) { return k == TP_COL_I64 || k == TP_COL_TIMESTAMP_NS; }
static bool kind_string(tp_col_kind k) { return k == TP_COL_STRING || k == TP_COL_BYTES; }
static bool kind_float(tp_col_kind k) { return k == TP_COL_F64 || k == TP_COL_F32; }

static uint64_t unit_of(tp_col_kind k, tp_dyn_value v)
{
    switch (k) {
    case TP_COL_F64: return tp_bits_f64(v.d);
    case TP_COL_F32: return tp_bits_f32(v.f);
    default: return v.u;
    }
}

static bool value_zero(tp_col_kind k, tp_dyn_value v)
{
    return kind_string(k) ? v.s.len == 0 : unit_of(k, v) == 0;
}

/* ---- encoder ---- */

typedef struct col_out {
    size_t column; /* schema column index */
    uint8_t flags;
    size_t body_len;
} col_out;

struct tp_dyncol_encoder {
    uint64_t *units, *scaled, *aux; /* one column's value units; its scaled integers; lengths and presence */
    tp_dyn_value *strs;             /* one column's string values */
    size_t units_cap;
    uint32_t *slots;                /* dictionary hash table: index + 1, 0 = empty */
    uint32_t *dict;                 /* dictionary entry -> index into strs of its first use */
    size_t slots_cap;
    uint8_t *scratch;               /* for-planes estimate: 10 bytes a unit */
    size_t scratch_cap;
    uint8_t *body, *out;
    size_t body_len, body_cap, out_cap;
    col_out *cols;
    size_t cols_cap;
};

tp_err tp_dyncol_encoder_new(tp_dyncol_encoder **out)
{
    if (!out)
        return TP_ERR_INVALID_ARG;
    *out = calloc(1, sizeof **out);
    return *out ? TP_OK : TP_ERR_NOMEM;
}

void tp_dyncol_encoder_free(tp_dyncol_encoder *e)
{
    if (!e)
        return;
    free(e->units);
    free(e->scaled);
    free(e->aux);
    free(e->strs);
    free(e->slots);
    free(e->dict);
    free(e->scratch);
    free(e->body);
    free(e->out);
    free(e->cols);
    free(e);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

static tp_err ensure_units(tp_dyncol_encoder *e, size_t n)
{
    if (n <= e->units_cap)
        return TP_OK;
    size_t c = e->units_cap ? e->units_cap : 64;
    while (c < n)
        c *= 2;
    uint64_t *a = realloc(e->units, c * 8), *b2 = a ? realloc(e->scaled, c * 8) : NULL;
    if (a)
        e->units = a;
    if (b2)
        e->scaled = b2;
    uint64_t *x = b2 ? realloc(e->aux, c * 8) : NULL;
    if (x)
        e->aux = x;
    tp_dyn_value *s = x ? realloc(e->strs, c * sizeof *s) : NULL;
    if (s)
        e->strs = s;
    uint8_t *sc = s ? realloc(e->scratch, c * 10) : NULL;
    if (!sc)
        return TP_ERR_NOMEM;
    e->scratch = sc;
    e->units_cap = c;
    e->scratch_cap = c * 10;
    return TP_OK;
}

static tp_err reserve_body(tp_dyncol_encoder *e, size_t extra)
{
    size_t cap = e->body_cap;
    if (!grow((void **)&e->body, &cap, e->body_len + extra, 1))
        return TP_ERR_NOMEM;
    e->body_cap = cap;
    return TP_OK;
}

/* Plans a stream of n units (n >= 1): integers by the varint chooser (then for-planes when smaller), floating
 * columns (fw = 4 or 8) by a decimal scale when every value round-trips through one, else their bit planes. *u
 * may be swapped for the scaled integers; *sgn says whether units are zigzagged. */
static void plan_units(tp_dyncol_encoder *e, uint64_t **u, size_t n, bool sgn0, int fw, tp_units_plan *p, bool *sgn)
{
    p->scale = TP_COLPACK_SCALE_NONE;
    *sgn = sgn0;
    if (fw) {
        int d = tp_units_find_scale(*u, n, fw == 4, 0, e->scaled);
        if (d < 0)
            d = tp_units_find_scale(*u, n, fw == 4, TP_COLPACK_SCALE_MUL, e->scaled);
        if (d < 0) {
            tp_units_plan_bits(*u, n, fw, p);
            *sgn = false;
            return;
        }
        p->scale = (uint8_t)d;
        *u = e->scaled;
        *sgn = true;
    }
    tp_units_plan_varints(*u, n, *sgn, p);
    tp_units_plan_for(*u, n, *sgn, e->scratch, p);
}

/* Appends one stream: code byte, body length, body. */
static tp_err put_stream(tp_dyncol_encoder *e, uint64_t *u, size_t n, bool sgn0, int fw)
{
    tp_units_plan p;
    bool sgn;
    plan_units(e, &u, n, sgn0, fw, &p, &sgn);
    tp_err err = reserve_body(e, 11 + p.body_len);
    if (err)
        return err;
    uint8_t *q = e->body + e->body_len;
    *q++ = (uint8_t)(p.transform | tp_units_scale_code(p.scale) << 3);
    q = tp_units_varint_put(q, p.body_len);
    q = tp_units_write(q, u, n, sgn, fw ? fw : 8, p.transform);
    e->body_len = (size_t)(q - e->body);
    return TP_OK;
}

static uint32_t str_hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* String values strs[0..v): by dictionary when the distinct values take fewer bytes than the values (estimated
 * from the lengths' varints, the bytes and an index of varint_len(D - 1) bytes a value), else raw. */
static tp_err put_strings(tp_dyncol_encoder *e, const tp_dyn_batch *b, size_t v, uint8_t *flags)
{
    const tp_dyn_value *s = e->strs;
    size_t slots = 64;
    while (slots < 2 * v)
        slots *= 2;
    size_t cap = e->slots_cap;
    if (!grow((void **)&e->slots, &cap, slots, sizeof *e->slots))
        return TP_ERR_NOMEM;
    size_t dcap = e->slots_cap;
    if (!grow((void **)&e->dict, &dcap, slots, sizeof *e->dict))
        return TP_ERR_NOMEM;
    e->slots_cap = cap < dcap ? cap : dcap;
    memset(e->slots, 0, slots * sizeof *e->slots);
    size_t raw = 0, dict_bytes = 0, nd = 0;
    uint64_t *idx = e->units;
    for (size_t i = 0; i < v; i++) {
        const uint8_t *p = b->bytes + s[i].s.off;
        uint32_t len = s[i].s.len;
        raw += len + tp_units_varint_len(len);
        size_t k = str_hash(p, len) & (slots - 1);
        for (;; k = (k + 1) & (slots - 1)) {
            uint32_t d = e->slots[k];
            if (!d) {
                e->dict[nd] = (uint32_t)i;
                e->slots[k] = (uint32_t)++nd;
                idx[i] = nd - 1;
                dict_bytes += len + tp_units_varint_len(len);
                break;
            }
            const tp_dyn_value *o = &s[e->dict[d - 1]];
            if (o->s.len == len && !memcmp(b->bytes + o->s.off, p, len)) {
                idx[i] = d - 1;
                break;
            }
        }
    }
    tp_err err;
    if (dict_bytes + v * tp_units_varint_len(nd - 1) < raw) {
        *flags |= F_DICT;
        size_t total = 0;
        for (size_t j = 0; j < nd; j++) {
            e->aux[j] = s[e->dict[j]].s.len;
            total += s[e->dict[j]].s.len;
        }
        if ((err = reserve_body(e, 10)))
            return err;
        e->body_len = (size_t)(tp_units_varint_put(e->body + e->body_len, nd) - e->body);
        if ((err = put_stream(e, e->aux, nd, false, 0)) || (err = reserve_body(e, 10 + total)))
            return err;
        uint8_t *q = tp_units_varint_put(e->body + e->body_len, total);
        for (size_t j = 0; j < nd; j++) {
            const tp_dyn_value *o = &s[e->dict[j]];
            if (o->s.len)
                memcpy(q, b->bytes + o->s.off, o->s.len);
            q += o->s.len;
        }
        e->body_len = (size_t)(q - e->body);
        return put_stream(e, idx, v, false, 0);
    }
    size_t total = 0;
    for (size_t i = 0; i < v; i++) {
        e->aux[i] = s[i].s.len;
        total += s[i].s.len;
    }
    if ((err = put_stream(e, e->aux, v, false, 0)) || (err = reserve_body(e, 10 + total)))
        return err;
    uint8_t *q = tp_units_varint_put(e->body + e->body_len, total);
    for (size_t i = 0; i < v; i++) {
        if (s[i].s.len)
            memcpy(q, b->bytes + s[i].s.off, s[i].s.len);
        q += s[i].s.len;
    }
    e->body_len = (size_t)(q - e->body);
    return TP_OK;
}

/* One column's body into e->body; *omit when every row is absent and zero (the column is left out). */
static tp_err encode_column(tp_dyncol_encoder *e, const tp_dyn_batch *b, size_t ci, col_out *co, bool *omit)
{
    const tp_dyn_column *col = &b->columns[ci];
    const tp_schema_column *def = col->def;
    tp_col_kind kind = def->kind;
    bool rep = def->label == TP_LABEL_REPEATED, implicit = def->label == TP_LABEL_IMPLICIT;
    size_t n = b->count;
    bool presence = false, any = false;
    size_t nelems = 0;
    for (size_t i = 0; i < n; i++) {
        tp_dyn_value v = col->cells[i];
        bool derived = rep ? v.a.count > 0 : implicit ? !value_zero(kind, v) : true;
        if ((col->present[i] != 0) != derived)
            presence = true;
        if (col->present[i] || (rep ? v.a.count > 0 : !value_zero(kind, v)))
            any = true;
        if (rep)
            nelems += v.a.count;
    }
    *omit = !any;
    if (!any)
        return TP_OK;
    tp_err err = ensure_units(e, n > nelems ? n : nelems);
    if (err)
        return err;
    size_t start = e->body_len;
    co->column = ci;
    co->flags = 0;
    if (presence) {
        co->flags |= F_PRESENCE;
        for (size_t i = 0; i < n; i++)
            e->aux[i] = col->present[i] != 0;
        if ((err = put_stream(e, e->aux, n, false, 0)))
            return err;
    }
    size_t v = 0;
    if (rep) {
        for (size_t i = 0; i < n; i++)
            e->aux[i] = col->cells[i].a.count;
        if ((err = put_stream(e, e->aux, n, false, 0)))
            return err;
        for (size_t i = 0; i < n; i++) {
            const tp_dyn_value *el = col->elems + col->cells[i].a.off;
            for (uint32_t k = 0; k < col->cells[i].a.count; k++, v++) {
                if (kind_string(kind))
                    e->strs[v] = el[k];
                else
                    e->units[v] = unit_of(kind, el[k]);
            }
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (presence && !col->present[i])
                continue;
            if (kind_string(kind))
                e->strs[v] = col->cells[i];
            else
                e->units[v] = unit_of(kind, col->cells[i]);
            v++;
        }
    }
    if (v > 0) {
        if (kind_string(kind))
            err = put_strings(e, b, v, &co->flags);
        else
            err = put_stream(e, e->units, v, kind_signed(kind), kind == TP_COL_F64 ? 8 : kind == TP_COL_F32 ? 4 : 0);
        if (err)
            return err;
    }
    co->body_len = e->body_len - start;
    return TP_OK;
}

/* ---- the order of a multi-key pack ---- */

/* One cell of a singular column compared by value: absent first, then integers by their type's sign, strings and
 * bytes bytewise (a prefix first). */
static int cell_cmp(const tp_dyn_batch *b, int col, size_t i, size_t j)
{
    const tp_dyn_column *c = &b->columns[col];
    if (c->present[i] != c->present[j])
        return c->present[i] < c->present[j] ? -1 : 1;
    tp_dyn_value x = c->cells[i], y = c->cells[j];
    switch (c->def->kind) {
    case TP_COL_I64:
    case TP_COL_TIMESTAMP_NS: return x.i < y.i ? -1 : x.i > y.i;
    case TP_COL_STRING:
    case TP_COL_BYTES: {
        uint32_t n = x.s.len < y.s.len ? x.s.len : y.s.len;
        int r = n ? memcmp(b->bytes + x.s.off, b->bytes + y.s.off, n) : 0;
        return r ? (r < 0 ? -1 : 1) : x.s.len < y.s.len ? -1 : x.s.len > y.s.len;
    }
    default: return x.u < y.u ? -1 : x.u > y.u;
    }
}

int tp_dyncol_row_cmp(const tp_dyn_batch *b, size_t i, size_t j)
{
    const tp_schema_roles *r = tp_schema_get_roles(b->schema);
    int c = r->key >= 0 ? cell_cmp(b, r->key, i, j) : 0;
    return c || r->time < 0 ? c : cell_cmp(b, r->time, i, j);
}

/* ---- encoder, continued ---- */

static tp_err encode(tp_dyncol_encoder *e, const tp_dyn_batch *b, uint8_t hflags, const uint8_t **out,
                     size_t *out_len);

tp_err tp_dyncol_encode(tp_dyncol_encoder *e, const tp_dyn_batch *b, const uint8_t **out, size_t *out_len)
{
    return encode(e, b, 0, out, out_len);
}

tp_err tp_dyncol_encode_multi(tp_dyncol_encoder *e, const tp_dyn_batch *b, const uint8_t **out, size_t *out_len)
{
    if (!b || tp_schema_get_roles(b->schema)->key < 0)
        return TP_ERR_INVALID_ARG;
    for (size_t i = 1; i < b->count; i++)
        if (tp_dyncol_row_cmp(b, i - 1, i) > 0)
            return TP_ERR_INVALID_ARG;
    return encode(e, b, TP_DYNCOL_F_MULTI_KEY, out, out_len);
}

static tp_err encode(tp_dyncol_encoder *e, const tp_dyn_batch *b, uint8_t hflags, const uint8_t **out,
                     size_t *out_len)
{
    if (!e || !b || !out || !out_len || b->count == 0 || b->count > UINT32_MAX || b->unknown_fields)
        return TP_ERR_INVALID_ARG;
    size_t cc = e->cols_cap;
    if (!grow((void **)&e->cols, &cc, b->ncolumns, sizeof *e->cols))
        return TP_ERR_NOMEM;
    e->cols_cap = cc;
    e->body_len = 0;
    size_t ncols = 0;
    tp_err err;
    for (size_t ci = 0; ci < b->ncolumns; ci++) {
        bool omit;
        if ((err = encode_column(e, b, ci, &e->cols[ncols], &omit)))
            return err;
        if (!omit)
            ncols++;
    }
    /* magic, count, flags, column count; per descriptor at most 1 + 8 x 5 numbers + 3 + 10 */
    size_t need = 4 + 10 + 1 + 10 + ncols * 54 + e->body_len;
    size_t oc = e->out_cap;
    if (!grow((void **)&e->out, &oc, need, 1))
        return TP_ERR_NOMEM;
    e->out_cap = oc;
    uint8_t *q = e->out;
    memcpy(q, TP_DYNCOL_MAGIC, TP_DYNCOL_MAGIC_LEN);
    q += TP_DYNCOL_MAGIC_LEN;
    q = tp_units_varint_put(q, b->count);
    *q++ = hflags; /* flags */
    q = tp_units_varint_put(q, ncols);
    for (size_t i = 0; i < ncols; i++) {
        const tp_schema_column *def = b->columns[e->cols[i].column].def;
        q = tp_units_varint_put(q, def->depth);
        for (size_t k = 0; k < def->depth; k++)
            q = tp_units_varint_put(q, def->numbers[k]);
        *q++ = (uint8_t)def->type;
        *q++ = (uint8_t)def->label;
        *q++ = e->cols[i].flags;
        q = tp_units_varint_put(q, e->cols[i].body_len);
    }
    if (e->body_len)
        memcpy(q, e->body, e->body_len);
    *out = e->out;
    *out_len = (size_t)(q - e->out) + e->body_len;
    return TP_OK;
}

/* ---- decoder ---- */

struct tp_dyncol_decoder {
    uint8_t *seen;   /* per schema column: its column appeared in the pack */
    size_t *marks;   /* per schema column: elems_len before the pack */
    size_t seen_cap; /* columns both arrays hold */
    tp_dyn_value *dict;
    size_t dict_cap;
    bool multi_key; /* the last pack decoded had flag TP_DYNCOL_F_MULTI_KEY */
    char error[384];
};

bool tp_dyncol_decoder_multi_key(const tp_dyncol_decoder *d)
{
    return d->multi_key;
}

tp_err tp_dyncol_decoder_new(tp_dyncol_decoder **out)
{
    if (!out)
        return TP_ERR_INVALID_ARG;
    *out = calloc(1, sizeof **out);
    return *out ? TP_OK : TP_ERR_NOMEM;
}

void tp_dyncol_decoder_free(tp_dyncol_decoder *d)
{
    if (!d)
        return;
    free(d->seen);
    free(d->marks);
    free(d->dict);
    free(d);
}

const char *tp_dyncol_decoder_error(const tp_dyncol_decoder *d)
{
    return d->error;
}

static tp_err fail(tp_dyncol_decoder *d, tp_err err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static tp_err fail(tp_dyncol_decoder *d, tp_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->error, sizeof d->error, fmt, ap);
    va_end(ap);
    return err;
}

static const char *varint_problem(tp_err e) { return e == TP_ERR_TRUNCATED ? "cut off" : "longer than 10 bytes"; }

/* The header: magic, count (1..max_records), flags (0), column count (0..TP_SCHEMA_MAX_COLUMNS). */
static tp_err read_header(tp_dyncol_decoder *d, const uint8_t *c, size_t len, uint64_t max_records, size_t *pos,
                          uint64_t *count, uint64_t *ncols)
{
    d->multi_key = false;
    if (!tp_dyncol_sniff(c, len))
        return fail(d, TP_ERR_UNKNOWN_VERSION, "content of %zu bytes does not start with the schema column-pack "
                    "magic 00 54 43 53", len);
    *pos = TP_DYNCOL_MAGIC_LEN;
    uint64_t flags;
    tp_err err;
    if ((err = tp_units_varint_get(c, len, pos, count)))
        return fail(d, err, "header: the record count varint is %s", varint_problem(err));
    if (*count == 0)
        return fail(d, TP_ERR_CORRUPT, "header: record count 0; a pack holds at least one record");
    if (*count > max_records || *count > UINT32_MAX)
        return fail(d, TP_ERR_PACK_TOO_LARGE, "header: record count %" PRIu64 " above the reader's limit of %" PRIu64
                    " records; raise the pack size limit if the pack is legitimate", *count,
                    max_records < UINT32_MAX ? max_records : (uint64_t)UINT32_MAX);
    if ((err = tp_units_varint_get(c, len, pos, &flags)))
        return fail(d, err, "header: the flags varint is %s", varint_problem(err));
    if (flags & ~(uint64_t)TP_DYNCOL_F_MULTI_KEY)
        return fail(d, TP_ERR_UNKNOWN_VERSION, "header: flags %" PRIu64 " unknown to this reader (it knows 0 and 1, "
                    "several keys)", flags);
    d->multi_key = flags & TP_DYNCOL_F_MULTI_KEY;
    if ((err = tp_units_varint_get(c, len, pos, ncols)))
        return fail(d, err, "header: the column count varint is %s", varint_problem(err));
    if (*ncols > TP_SCHEMA_MAX_COLUMNS)
        return fail(d, TP_ERR_CORRUPT, "header: %" PRIu64 " columns, above the limit of %d", *ncols,
                    TP_SCHEMA_MAX_COLUMNS);
    return TP_OK;
}

tp_err tp_dyncol_count(tp_dyncol_decoder *d, const uint8_t *content, size_t len, uint64_t max_records,
                       uint32_t *count)
{
    size_t pos;
    uint64_t n, ncols;
    tp_err err = read_header(d, content, len, max_records, &pos, &n, &ncols);
    if (!err)
        *count = (uint32_t)n;
    return err;
}

typedef struct desc {
    size_t depth;
    uint32_t numbers[TP_SCHEMA_MAX_DEPTH];
    uint8_t type, label, flags;
    uint64_t blen;
    char path[TP_SCHEMA_MAX_DEPTH * 11]; /* "4.1" for sentences: made by path_of when one needs it */
} desc;

/* The column's field-number path as text ("4.1"), formatted only for an error sentence (not per pack). */
static const char *path_of(const desc *o)
{
    char *p = (char *)o->path; /* every desc is a local, non-const object; the pointer is const for its readers */
    size_t pl = 0;
    p[0] = 0;
    for (size_t k = 0; k < o->depth && pl < sizeof o->path; k++)
        pl += (size_t)snprintf(p + pl, sizeof o->path - pl, "%s%" PRIu32, k ? "." : "", o->numbers[k]);
    return p;
}

static tp_err read_desc(tp_dyncol_decoder *d, const uint8_t *c, size_t len, size_t *pos, uint64_t i, desc *o)
{
    size_t at = *pos;
    uint64_t v;
    tp_err err;
    if ((err = tp_units_varint_get(c, len, pos, &v)))
        return fail(d, err, "column descriptor %" PRIu64 " at content offset %zu: the depth varint is %s", i, at,
                    varint_problem(err));
    if (v < 1 || v > TP_SCHEMA_MAX_DEPTH)
        return fail(d, TP_ERR_CORRUPT, "column descriptor %" PRIu64 " at content offset %zu: depth %" PRIu64
                    " outside 1..%d", i, at, v, TP_SCHEMA_MAX_DEPTH);
    o->depth = (size_t)v;
    for (size_t k = 0; k < o->depth; k++) {
        if ((err = tp_units_varint_get(c, len, pos, &v)))
            return fail(d, err, "column descriptor %" PRIu64 " at content offset %zu: a field number varint is %s",
                        i, at, varint_problem(err));
        if (v < 1 || v > 536870911u)
            return fail(d, TP_ERR_CORRUPT, "column descriptor %" PRIu64 " at content offset %zu: field number %"
                        PRIu64 " outside 1..2^29-1", i, at, v);
        o->numbers[k] = (uint32_t)v;
    }
    if (len - *pos < 3)
        return fail(d, TP_ERR_TRUNCATED, "column %s (descriptor %" PRIu64 ") is cut off at its type", path_of(o), i);
    o->type = c[(*pos)++];
    o->label = c[(*pos)++];
    o->flags = c[(*pos)++];
    if ((err = tp_units_varint_get(c, len, pos, &o->blen)))
        return fail(d, err, "column %s: the body length varint is %s", path_of(o), varint_problem(err));
    return TP_OK;
}

/* The batch's column with this number path, or -1. */
static long find_column(const tp_dyn_batch *b, const desc *o)
{
    for (size_t i = 0; i < b->ncolumns; i++) {
        const tp_schema_column *def = b->columns[i].def;
        if (def->depth == o->depth && !memcmp(def->numbers, o->numbers, o->depth * sizeof o->numbers[0]))
            return (long)i;
    }
    return -1;
}

/* Decoding one column's body. */
typedef struct cdec {
    tp_dyncol_decoder *d;
    tp_dyn_batch *b;
    tp_dyn_column *col;
    const desc *o;
    const uint8_t *body;
    size_t len, pos;
    size_t row0, n;
} cdec;

#define CHUNK 256

/* Opens the next stream of count units (count >= 1) at x->pos: code, length, body; fw = plane width (4 for a
 * float's bits, else 8); scale only when floating. */
static tp_err open_stream(cdec *x, const char *what, uint64_t count, bool sgn, int fw, bool floating,
                          tp_units_col *c)
{
    tp_dyncol_decoder *d = x->d;
    if (x->pos >= x->len)
        return fail(d, TP_ERR_TRUNCATED, "column %s: its %s stream is missing (the body ends at %zu bytes)",
                    path_of(x->o), what, x->len);
    uint8_t code = x->body[x->pos++];
    uint64_t blen;
    tp_err err = tp_units_varint_get(x->body, x->len, &x->pos, &blen);
    if (err)
        return fail(d, err, "column %s: the %s stream's length varint is %s", path_of(x->o), what, varint_problem(err));
    if (blen > x->len - x->pos)
        return fail(d, TP_ERR_TRUNCATED, "column %s: the %s stream claims %" PRIu64 " bytes, %zu left", path_of(x->o),
                    what, blen, x->len - x->pos);
    uint8_t tr = code & 7;
    int sci = tp_units_scale_from_code((uint8_t)(code >> 3));
    if (sci < 0 || (sci != TP_COLPACK_SCALE_NONE && !floating))
        return fail(d, TP_ERR_CORRUPT, "column %s: the %s stream has scale code %u (0, or 1..20 for floating values "
                    "only)", path_of(x->o), what, code >> 3);
    bool planes = tr == TP_COLX_XOR_PLANES || tr == TP_COLX_DELTA_PLANES;
    if (planes && sci != TP_COLPACK_SCALE_NONE)
        return fail(d, TP_ERR_CORRUPT, "column %s: the %s stream is %s with a decimal scale", path_of(x->o), what,
                    tp_units_transform_name(tr));
    if (!tp_units_body_fits(tr, fw, blen, count))
        return fail(d, TP_ERR_CORRUPT, "column %s: a %s body of %" PRIu64 " bytes cannot hold %" PRIu64
                    " %s units", path_of(x->o), tp_units_transform_name(tr), blen, count, what);
    memset(c, 0, sizeof *c);
    c->body = x->body + x->pos;
    c->len = (size_t)blen;
    c->field = x->o->numbers[x->o->depth - 1];
    c->transform = tr;
    c->scale = (uint8_t)sci;
    c->signed_units = sgn || sci != TP_COLPACK_SCALE_NONE;
    c->plane_w = (uint8_t)fw;
    x->pos += (size_t)blen;
    char why[200];
    if ((err = tp_units_open_body(c, count, why, sizeof why)))
        return fail(d, err, "column %s, %s stream: %s", path_of(x->o), what, why);
    return TP_OK;
}

static tp_err next_units(cdec *x, tp_units_col *c, const char *what, uint64_t count, uint64_t done, uint64_t *u,
                         size_t k)
{
    char why[200];
    tp_err err = tp_units_next(c, (uint32_t)count, (uint32_t)done, u, k, why, sizeof why);
    if (err)
        return fail(x->d, err, "column %s, %s stream: %s", path_of(x->o), what, why);
    if (done + k == count && !tp_units_consumed(c))
        return fail(x->d, TP_ERR_CORRUPT, "column %s: %zu bytes of its %s stream left after the last unit",
                    path_of(x->o), c->len - c->pos, what);
    return TP_OK;
}

/* A varint at x->pos (dictionary size, blob length). */
static tp_err body_varint(cdec *x, const char *what, uint64_t *v)
{
    tp_err err = tp_units_varint_get(x->body, x->len, &x->pos, v);
    return err ? fail(x->d, err, "column %s: the %s varint is %s", path_of(x->o), what, varint_problem(err)) : TP_OK;
}

/* Copies a blob (length varint, bytes) into the batch's arena under its budget; *off is where it starts. */
static tp_err take_blob(cdec *x, const char *what, uint64_t *blen, size_t *off)
{
    tp_err err = body_varint(x, what, blen);
    if (err)
        return err;
    tp_dyn_batch *b = x->b;
    if (*blen > x->len - x->pos)
        return fail(x->d, TP_ERR_TRUNCATED, "column %s: the %s claims %" PRIu64 " bytes, %zu left", path_of(x->o), what,
                    *blen, x->len - x->pos);
    size_t n = (size_t)*blen;
    if (n > b->max_bytes - b->used)
        return fail(x->d, TP_ERR_FULL, "column %s: the batch's %zu bytes for strings and arrays are used up",
                    path_of(x->o), b->max_bytes);
    if (b->bytes_len + n > b->bytes_cap) {
        size_t cap = b->bytes_cap ? b->bytes_cap : 4096;
        while (cap < b->bytes_len + n)
            cap *= 2;
        if (cap > b->max_bytes)
            cap = b->max_bytes;
        uint8_t *q = realloc(b->bytes, cap);
        if (!q)
            return fail(x->d, TP_ERR_NOMEM, "out of memory for column %s", path_of(x->o));
        b->bytes = q;
        b->bytes_cap = cap;
    }
    if (n)
        memcpy(b->bytes + b->bytes_len, x->body + x->pos, n);
    *off = b->bytes_len;
    b->bytes_len += n;
    b->used += n;
    x->pos += n;
    return TP_OK;
}

/* Where value j goes: an element slot or a row's cell. */
typedef struct sink_t {
    tp_dyn_value *dst; /* elements: contiguous; rows: cells, via rows[] */
    bool rep, presence;
    size_t row; /* next row (non-repeated): the next present row when presence */
} sink_t;

static tp_dyn_value *slot(cdec *x, sink_t *s)
{
    if (s->rep)
        return s->dst++;
    size_t r = s->row;
    if (s->presence)
        while (!x->col->present[x->row0 + r])
            r++;
    s->row = r + 1;
    return &x->col->cells[x->row0 + r];
}

/* A unit checked against the column's type, as a value. */
static tp_err unit_value(cdec *x, uint64_t u, uint8_t scale, uint64_t j, tp_dyn_value *v)
{
    const tp_schema_column *def = x->col->def;
    bool bad = false;
    v->u = 0;
    switch (def->type) {
    case TP_PB_INT32: case TP_PB_SINT32: case TP_PB_SFIXED32: case TP_PB_ENUM:
        bad = (int64_t)u != (int64_t)(int32_t)(uint32_t)u;
        v->i = (int64_t)u;
        break;
    case TP_PB_UINT32: case TP_PB_FIXED32: bad = u >> 32; v->u = u; break;
    case TP_PB_BOOL: bad = u > 1; v->u = u; break;
    case TP_PB_TIMESTAMP: bad = (int64_t)u < TS_LO_NS || (int64_t)u > TS_HI_NS; v->i = (int64_t)u; break;
    case TP_PB_DOUBLE: v->d = tp_units_f64(u, scale); break;
    case TP_PB_FLOAT:
        bad = scale == TP_COLPACK_SCALE_NONE && (u >> 32);
        v->f = tp_units_f32(u, scale);
        break;
    default: v->u = u; break;
    }
    if (bad)
        return fail(x->d, TP_ERR_CORRUPT, "column %s (%s): value %" PRIu64 " of the column is 0x%" PRIx64
                    ", outside the type's range", path_of(x->o), tp_pb_type_name(def->type), j, u);
    return TP_OK;
}

static tp_err numeric_values(cdec *x, uint64_t v, sink_t *s)
{
    tp_col_kind kind = x->col->def->kind;
    tp_units_col c;
    tp_err err = open_stream(x, "value", v, kind_signed(kind), kind == TP_COL_F32 ? 4 : 8, kind_float(kind), &c);
    uint64_t u[CHUNK];
    for (uint64_t done = 0; !err && done < v;) {
        size_t k = v - done < CHUNK ? (size_t)(v - done) : CHUNK;
        if ((err = next_units(x, &c, "value", v, done, u, k)))
            break;
        for (size_t j = 0; j < k && !err; j++)
            err = unit_value(x, u[j], c.scale, done + j, slot(x, s));
        done += k;
    }
    return err;
}

static tp_err check_utf8(cdec *x, size_t off, size_t len, uint64_t j)
{
    if (x->col->def->kind == TP_COL_STRING && !tp_dyn_utf8_valid(x->b->bytes + off, len))
        return fail(x->d, TP_ERR_CORRUPT, "column %s: string %" PRIu64 " (%zu bytes) is not UTF-8", path_of(x->o), j,
                    len);
    return TP_OK;
}

/* Lengths stream of count units summing to exactly the blob that follows it; fills off/len into each value (dst
 * when given, else the dictionary). */
static tp_err strings_of(cdec *x, const char *what, uint64_t count, sink_t *s, tp_dyn_value *dict)
{
    tp_units_col c;
    tp_err err = open_stream(x, what, count, false, 8, false, &c);
    uint64_t blen = 0;
    size_t off = 0;
    if (err || (err = take_blob(x, "string bytes", &blen, &off)))
        return err;
    uint64_t u[CHUNK], at = 0;
    for (uint64_t done = 0; done < count;) {
        size_t k = count - done < CHUNK ? (size_t)(count - done) : CHUNK;
        if ((err = next_units(x, &c, what, count, done, u, k)))
            return err;
        for (size_t j = 0; j < k; j++) {
            if (u[j] > blen - at)
                return fail(x->d, TP_ERR_CORRUPT, "column %s: string %" PRIu64 " of %" PRIu64 " bytes runs past the "
                            "%" PRIu64 " string bytes", path_of(x->o), done + j, u[j], blen);
            if ((err = check_utf8(x, off + (size_t)at, (size_t)u[j], done + j)))
                return err;
            tp_dyn_value *v = dict ? &dict[done + j] : slot(x, s);
            v->s.off = (uint32_t)(off + at);
            v->s.len = (uint32_t)u[j];
            at += u[j];
        }
        done += k;
    }
    if (at != blen)
        return fail(x->d, TP_ERR_CORRUPT, "column %s: the string lengths sum to %" PRIu64 " bytes, the bytes are %"
                    PRIu64, path_of(x->o), at, blen);
    return TP_OK;
}

static tp_err string_values(cdec *x, uint64_t v, sink_t *s)
{
    if (!(x->o->flags & F_DICT))
        return strings_of(x, "string length", v, s, NULL);
    uint64_t nd;
    tp_err err = body_varint(x, "dictionary size", &nd);
    if (err)
        return err;
    if (nd < 1 || nd > v)
        return fail(x->d, TP_ERR_CORRUPT, "column %s: a dictionary of %" PRIu64 " entries for %" PRIu64 " values "
                    "(1..values)", path_of(x->o), nd, v);
    tp_dyncol_decoder *d = x->d;
    size_t cap = d->dict_cap;
    if (!grow((void **)&d->dict, &cap, (size_t)nd, sizeof *d->dict))
        return fail(d, TP_ERR_NOMEM, "out of memory for a dictionary of %" PRIu64 " entries", nd);
    d->dict_cap = cap;
    if ((err = strings_of(x, "dictionary length", nd, NULL, d->dict)))
        return err;
    tp_units_col c;
    if ((err = open_stream(x, "dictionary index", v, false, 8, false, &c)))
        return err;
    uint64_t u[CHUNK];
    for (uint64_t done = 0; done < v;) {
        size_t k = v - done < CHUNK ? (size_t)(v - done) : CHUNK;
        if ((err = next_units(x, &c, "dictionary index", v, done, u, k)))
            return err;
        for (size_t j = 0; j < k; j++) {
            if (u[j] >= nd)
                return fail(d, TP_ERR_CORRUPT, "column %s: value %" PRIu64 " is dictionary entry %" PRIu64 " of %"
                            PRIu64, path_of(x->o), done + j, u[j], nd);
            *slot(x, s) = d->dict[u[j]];
        }
        done += k;
    }
    return TP_OK;
}

/* One column's body into rows [row0, row0 + n) of the batch (elements appended after elems_len). */
static tp_err decode_column(cdec *x)
{
    tp_dyn_column *col = x->col;
    const tp_schema_column *def = col->def;
    tp_dyn_batch *b = x->b;
    bool rep = def->label == TP_LABEL_REPEATED, presence = x->o->flags & F_PRESENCE;
    size_t n = x->n, r0 = x->row0;
    uint64_t u[CHUNK], v = 0;
    tp_err err;
    for (size_t i = 0; i < n; i++) {
        col->cells[r0 + i].u = 0;
        col->present[r0 + i] = 0;
    }
    if (presence) {
        tp_units_col c;
        if ((err = open_stream(x, "presence", n, false, 8, false, &c)))
            return err;
        for (size_t done = 0; done < n;) {
            size_t k = n - done < CHUNK ? n - done : CHUNK;
            if ((err = next_units(x, &c, "presence", n, done, u, k)))
                return err;
            for (size_t j = 0; j < k; j++) {
                if (u[j] > 1)
                    return fail(x->d, TP_ERR_CORRUPT, "column %s: presence unit %" PRIu64 " of record %zu is not 0 "
                                "or 1", path_of(x->o), u[j], done + j);
                col->present[r0 + done + j] = (uint8_t)u[j];
                v += u[j];
            }
            done += k;
        }
    } else {
        v = n;
    }
    sink_t s = {.rep = rep, .presence = presence};
    if (rep) {
        tp_units_col c;
        if ((err = open_stream(x, "array length", n, false, 8, false, &c)))
            return err;
        uint64_t total = 0;
        for (size_t done = 0; done < n;) {
            size_t k = n - done < CHUNK ? n - done : CHUNK;
            if ((err = next_units(x, &c, "array length", n, done, u, k)))
                return err;
            for (size_t j = 0; j < k; j++) {
                size_t i = done + j;
                if (u[j] > (b->max_bytes - b->used) / sizeof(tp_dyn_value) - total)
                    return fail(x->d, TP_ERR_FULL, "column %s: record %zu's array of %" PRIu64 " elements passes the "
                                "batch's %zu bytes for strings and arrays", path_of(x->o), i, u[j], b->max_bytes);
                if (presence && !col->present[r0 + i] && u[j])
                    return fail(x->d, TP_ERR_CORRUPT, "column %s: record %zu is absent but has an array of %" PRIu64
                                " elements", path_of(x->o), i, u[j]);
                col->cells[r0 + i].a.off = (uint32_t)(col->elems_len + total);
                col->cells[r0 + i].a.count = (uint32_t)u[j];
                if (!presence)
                    col->present[r0 + i] = u[j] > 0;
                total += u[j];
            }
            done += k;
        }
        if (col->elems_len + total > UINT32_MAX)
            return fail(x->d, TP_ERR_FULL, "column %s: more than 2^32-1 array elements in the batch", path_of(x->o));
        size_t cap = col->elems_cap;
        if (!grow((void **)&col->elems, &cap, col->elems_len + (size_t)total, sizeof *col->elems))
            return fail(x->d, TP_ERR_NOMEM, "out of memory for column %s's %" PRIu64 " elements", path_of(x->o), total);
        col->elems_cap = cap;
        b->used += (size_t)total * sizeof(tp_dyn_value);
        s.dst = col->elems + col->elems_len;
        s.presence = false;
        v = total;
    } else if (presence) {
        /* absent rows stay zero: values are the present rows' */
    } else {
        for (size_t i = 0; i < n; i++)
            col->present[r0 + i] = 1;
    }
    if (v > 0) {
        err = kind_string(def->kind) ? string_values(x, v, &s) : numeric_values(x, v, &s);
        if (err)
            return err;
    } else if (x->o->flags & F_DICT) {
        return fail(x->d, TP_ERR_CORRUPT, "column %s: a dictionary for no values", path_of(x->o));
    }
    if (rep)
        col->elems_len += (size_t)v;
    else if (!presence && def->label == TP_LABEL_IMPLICIT)
        for (size_t i = 0; i < n; i++)
            col->present[r0 + i] = !value_zero(def->kind, col->cells[r0 + i]);
    if (x->pos != x->len)
        return fail(x->d, TP_ERR_CORRUPT, "column %s: %zu bytes of its %zu-byte body left after its streams",
                    path_of(x->o), x->len - x->pos, x->len);
    return TP_OK;
}

static tp_err check_desc(tp_dyncol_decoder *d, const desc *o, const tp_schema_column *def)
{
    if (o->type != (uint8_t)def->type || o->label != (uint8_t)def->label)
        return fail(d, TP_ERR_CORRUPT, "column %s (%s) is type %u label %u in the pack but %s %s (type %u label %u) "
                    "in the reader's schema: the pack was written with an incompatible schema", path_of(o), def->path,
                    o->type, o->label, tp_col_label_name(def->label), tp_pb_type_name(def->type), (unsigned)def->type,
                    (unsigned)def->label);
    if (o->flags & ~F_KNOWN || ((o->flags & F_DICT) && !kind_string(def->kind)))
        return fail(d, TP_ERR_CORRUPT, "column %s: flags 0x%02x are not valid for a %s column", path_of(o), o->flags,
                    tp_pb_type_name(def->type));
    return TP_OK;
}

static void rollback(tp_dyncol_decoder *d, tp_dyn_batch *b, size_t bytes_len, size_t used)
{
    b->bytes_len = bytes_len;
    b->used = used;
    for (size_t i = 0; i < b->ncolumns; i++)
        b->columns[i].elems_len = d->marks[i];
}

tp_err tp_dyncol_decode(tp_dyncol_decoder *d, const uint8_t *content, size_t len, uint64_t max_records,
                        tp_dyn_batch *b)
{
    if (!d || !b || (!content && len))
        return TP_ERR_INVALID_ARG;
    d->error[0] = 0;
    size_t pos;
    uint64_t count, ncols;
    tp_err err = read_header(d, content, len, max_records, &pos, &count, &ncols);
    if (err)
        return err;
    if (count > b->capacity - b->count)
        return fail(d, TP_ERR_FULL, "the pack holds %" PRIu64 " records, the batch has room for %zu", count,
                    b->capacity - b->count);
    if (tp_dyn_batch_reserve(b, b->count + (size_t)count))
        return fail(d, TP_ERR_NOMEM, "out of memory for %" PRIu64 " rows", count);
    size_t cap = d->seen_cap, cap2 = d->seen_cap;
    if (!grow((void **)&d->seen, &cap, b->ncolumns + 1, 1) ||
        !grow((void **)&d->marks, &cap2, b->ncolumns + 1, sizeof *d->marks))
        return fail(d, TP_ERR_NOMEM, "out of memory");
    d->seen_cap = cap < cap2 ? cap : cap2;
    memset(d->seen, 0, b->ncolumns);
    for (size_t i = 0; i < b->ncolumns; i++)
        d->marks[i] = b->columns[i].elems_len;
    /* Pass 1: the descriptors, to find where the bodies start and that they fit. */
    desc o;
    size_t dpos = pos;
    uint64_t total = 0;
    for (uint64_t i = 0; i < ncols; i++) {
        if ((err = read_desc(d, content, len, &pos, i, &o)))
            return err;
        if (o.blen > len - total) /* no overflow below */
            return fail(d, TP_ERR_TRUNCATED, "column %s: a body of %" PRIu64 " bytes in content of %zu", path_of(&o),
                        o.blen, len);
        total += o.blen;
    }
    if (total > len - pos)
        return fail(d, TP_ERR_TRUNCATED, "the column bodies take %" PRIu64 " bytes, %zu are left after the "
                    "descriptors", total, len - pos);
    if (total < len - pos)
        return fail(d, TP_ERR_TRAILING_GARBAGE, "%zu bytes after the last column body", (size_t)(len - pos - total));
    /* Pass 2: each known column's body into the batch. */
    size_t body_at = pos, bytes_len = b->bytes_len, used = b->used;
    pos = dpos;
    for (uint64_t i = 0; i < ncols; i++) {
        read_desc(d, content, len, &pos, i, &o); /* read once already */
        const uint8_t *body = content + body_at;
        body_at += (size_t)o.blen;
        long ci = find_column(b, &o);
        if (ci < 0)
            continue; /* a column of a newer schema: skipped */
        if (d->seen[ci]) {
            rollback(d, b, bytes_len, used);
            return fail(d, TP_ERR_CORRUPT, "column %s appears twice", path_of(&o));
        }
        d->seen[ci] = 1;
        cdec x = {.d = d, .b = b, .col = &b->columns[ci], .o = &o, .body = body, .len = (size_t)o.blen,
                  .row0 = b->count, .n = (size_t)count};
        if ((err = check_desc(d, &o, x.col->def)) || (err = decode_column(&x))) {
            rollback(d, b, bytes_len, used);
            return err;
        }
    }
    if (d->multi_key && tp_schema_get_roles(b->schema)->key < 0) {
        rollback(d, b, bytes_len, used);
        return fail(d, TP_ERR_CORRUPT, "a pack of several keys, but the reader's schema has no key role to order "
                    "them by");
    }
    for (size_t ci = 0; ci < b->ncolumns; ci++) {
        if (d->seen[ci])
            continue;
        tp_dyn_column *col = &b->columns[ci];
        for (size_t i = 0; i < count; i++) {
            col->cells[b->count + i].u = 0;
            if (col->def->label == TP_LABEL_REPEATED)
                col->cells[b->count + i].a.off = (uint32_t)col->elems_len;
            col->present[b->count + i] = 0;
        }
    }
    /* Several keys: sorted by (key, time), checked one comparison a record (docs/FORMAT_SCHEMA.md) */
    for (size_t i = 1; d->multi_key && i < count; i++) {
        size_t r = b->count + i;
        if (tp_dyncol_row_cmp(b, r - 1, r) > 0) {
            rollback(d, b, bytes_len, used);
            return fail(d, TP_ERR_CORRUPT, "record %zu comes before record %zu in (key, time) order: a pack of "
                        "several keys is sorted by key, then time", i, i - 1);
        }
    }
    b->count += (size_t)count;
    return TP_OK;
}
