/* The dynamic decoder and encoder: protobuf bytes of a run-time schema <-> a row of a tp_dyn_batch, walking the
 * schema's message tree (fields sorted by number). Bounded: nesting is the schema's (at most TP_SCHEMA_MAX_DEPTH),
 * every length is checked against what remains, string bytes and array elements count against max_bytes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dynrow.h"
#include "schema/schema_internal.h"
#include "telepack/varint.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "dynrow.c copies IEEE 754 values as little-endian bytes; add byte swapping for this target"
#endif

/* Timestamps as int64 ns: INT64_MIN .. INT64_MAX ns is 1677-09-21T00:12:43.145224192Z ..
 * 2262-04-11T23:47:16.854775807Z, seconds within these bounds (nanos checked at each end). */
#define TS_MIN_S (-9223372037LL)
#define TS_MAX_S 9223372036LL

tp_err tp_dyn_batch_new(const tp_schema *s, size_t capacity, size_t max_bytes, tp_dyn_batch **out)
{
    if (!s || !out || capacity == 0 || max_bytes == 0 || max_bytes > UINT32_MAX)
        return TP_ERR_INVALID_ARG;
    tp_dyn_batch *b = calloc(1, sizeof *b);
    if (!b)
        return TP_ERR_NOMEM;
    b->schema = s;
    b->capacity = capacity;
    b->max_bytes = max_bytes;
    b->ncolumns = tp_schema_column_count(s);
    b->columns = calloc(b->ncolumns, sizeof *b->columns);
    if (!b->columns)
        goto nomem;
    for (size_t i = 0; i < b->ncolumns; i++) {
        tp_dyn_column *c = &b->columns[i];
        c->def = tp_schema_column_at(s, i);
        c->cells = calloc(capacity, sizeof *c->cells);
        c->present = calloc(capacity, 1);
        if (!c->cells || !c->present)
            goto nomem;
    }
    *out = b;
    return TP_OK;
nomem:
    tp_dyn_batch_free(b);
    return TP_ERR_NOMEM;
}

void tp_dyn_batch_free(tp_dyn_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; b->columns && i < b->ncolumns; i++) {
        free(b->columns[i].cells);
        free(b->columns[i].present);
        free(b->columns[i].elems);
    }
    free(b->columns);
    free(b->bytes);
    free(b);
}

void tp_dyn_batch_clear(tp_dyn_batch *b)
{
    b->count = 0;
    b->bytes_len = 0;
    b->used = 0;
    b->unknown_fields = 0;
    for (size_t i = 0; i < b->ncolumns; i++)
        b->columns[i].elems_len = 0;
}

/* ---- decoding ---- */

typedef struct dctx {
    tp_dyn_batch *b;
    size_t row;
    const uint8_t *base;
} dctx;

static tp_err derr(dctx *c, tp_err rc, const uint8_t *at, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static tp_err derr(dctx *c, tp_err rc, const uint8_t *at, const char *fmt, ...)
{
    int n = snprintf(c->b->error, sizeof c->b->error, "at byte %zu: ", (size_t)(at - c->base));
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof c->b->error)
        vsnprintf(c->b->error + n, sizeof c->b->error - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

static int wire_type_of(tp_pb_type t)
{
    switch (t) {
    case TP_PB_DOUBLE: case TP_PB_FIXED64: case TP_PB_SFIXED64: return 1;
    case TP_PB_FLOAT: case TP_PB_FIXED32: case TP_PB_SFIXED32: return 5;
    case TP_PB_STRING: case TP_PB_BYTES: case TP_PB_MESSAGE: case TP_PB_TIMESTAMP: return 2;
    default: return 0;
    }
}

bool tp_dyn_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* Reserves n bytes of the budget; false when the rows would pass max_bytes. */
static bool budget(tp_dyn_batch *b, size_t n)
{
    if (n > b->max_bytes - b->used)
        return false;
    b->used += n;
    return true;
}

static tp_err copy_bytes(dctx *c, const tp_schema_column *def, const uint8_t *p, size_t n, tp_dyn_value *out)
{
    tp_dyn_batch *b = c->b;
    if (def->kind == TP_COL_STRING && !tp_dyn_utf8_valid(p, n))
        return derr(c, TP_ERR_DECODE, p, "field %s is a string but its %zu bytes are not UTF-8", def->path, n);
    if (!budget(b, n))
        return derr(c, TP_ERR_FULL, p, "field %s: the batch's %zu bytes for strings and arrays are used up",
                    def->path, b->max_bytes);
    if (b->bytes_len + n > b->bytes_cap) {
        size_t cap = b->bytes_cap ? b->bytes_cap : 4096;
        while (cap < b->bytes_len + n)
            cap *= 2;
        if (cap > b->max_bytes)
            cap = b->max_bytes;
        uint8_t *q = realloc(b->bytes, cap);
        if (!q)
            return derr(c, TP_ERR_NOMEM, p, "out of memory for field %s", def->path);
        b->bytes = q;
        b->bytes_cap = cap;
    }
    if (n)
        memcpy(b->bytes + b->bytes_len, p, n);
    out->s.off = (uint32_t)b->bytes_len;
    out->s.len = (uint32_t)n;
    b->bytes_len += n;
    return TP_OK;
}

/* Reads one value of def's type with wire type wt from *p (advanced), into *out. */
static tp_err read_value(dctx *c, const tp_schema_column *def, int wt, const uint8_t **p, const uint8_t *end,
                         tp_dyn_value *out)
{
    const uint8_t *at = *p;
    size_t left = (size_t)(end - at);
    uint64_t v = 0;
    size_t used;
    tp_err rc;
    out->u = 0;
    switch (wt) {
    case 0:
        if (left && at[0] < 0x80) { /* one-byte varint, inline */
            v = at[0];
            *p += 1;
            break;
        }
        if ((rc = tp_varint_decode(at, left, &v, &used)))
            return derr(c, rc, at, "the varint of field %s is cut short or too long", def->path);
        *p += used;
        break;
    case 1:
    case 5: {
        size_t w = wt == 1 ? 8 : 4;
        if (left < w)
            return derr(c, TP_ERR_TRUNCATED, at, "field %s needs %zu bytes, %zu left", def->path, w, left);
        for (size_t i = 0; i < w; i++)
            v |= (uint64_t)at[i] << (8 * i);
        *p += w;
        break;
    }
    case 2: {
        if ((rc = tp_varint_decode(at, left, &v, &used)) || used > 5)
            return derr(c, rc ? rc : TP_ERR_DECODE, at, "the length of field %s is cut short or too long",
                        def->path);
        if (v > left - used)
            return derr(c, TP_ERR_TRUNCATED, at, "field %s claims %llu bytes, %zu left", def->path,
                        (unsigned long long)v, left - used);
        *p += used + v;
        return copy_bytes(c, def, at + used, (size_t)v, out);
    }
    default:
        return derr(c, TP_ERR_DECODE, at, "field %s has wire type %d", def->path, wt);
    }
    switch (def->type) {
    case TP_PB_INT32: case TP_PB_ENUM: case TP_PB_SFIXED32: out->i = (int32_t)(uint32_t)v; break;
    case TP_PB_INT64: case TP_PB_SFIXED64: out->i = (int64_t)v; break;
    case TP_PB_UINT32: case TP_PB_FIXED32: out->u = (uint32_t)v; break;
    case TP_PB_UINT64: case TP_PB_FIXED64: out->u = v; break;
    case TP_PB_BOOL: out->u = v != 0; break;
    case TP_PB_SINT32: {
        uint32_t n = (uint32_t)v;
        out->i = (int32_t)((n >> 1) ^ (0u - (n & 1)));
        break;
    }
    case TP_PB_SINT64: out->i = (int64_t)((v >> 1) ^ (0ull - (v & 1))); break;
    case TP_PB_DOUBLE: memcpy(&out->d, &v, 8); break;
    case TP_PB_FLOAT: {
        uint32_t bits = (uint32_t)v;
        memcpy(&out->f, &bits, 4);
        break;
    }
    default: break;
    }
    return TP_OK;
}

/* Reads a tag at *p: field number and wire type. */
static tp_err read_tag(dctx *c, const uint8_t **p, const uint8_t *end, uint32_t *num, int *wt)
{
    uint64_t tag;
    size_t used;
    if (*p < end && **p < 0x80 && **p >= 8) { /* one-byte tag (fields 1..15): the common case, inline */
        *num = **p >> 3;
        *wt = **p & 7;
        *p += 1;
        return TP_OK;
    }
    tp_err rc = tp_varint_decode(*p, (size_t)(end - *p), &tag, &used);
    if (rc)
        return derr(c, rc, *p, "a field tag is cut short or too long");
    if (used > 5 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return derr(c, TP_ERR_DECODE, *p, "a field tag is invalid (field number %llu, %zu bytes)",
                    (unsigned long long)(tag >> 3), used);
    *num = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    *p += used;
    return TP_OK;
}

static tp_err skip_field(dctx *c, uint32_t num, int wt, const uint8_t **p, const uint8_t *end)
{
    size_t left = (size_t)(end - *p), used;
    uint64_t v;
    tp_err rc;
    switch (wt) {
    case 0:
        if ((rc = tp_varint_decode(*p, left, &v, &used)))
            return derr(c, rc, *p, "unknown field %u: its varint is cut short or too long", num);
        *p += used;
        return TP_OK;
    case 1:
    case 5:
        if (left < (wt == 1 ? 8u : 4u))
            return derr(c, TP_ERR_TRUNCATED, *p, "unknown field %u is cut short", num);
        *p += wt == 1 ? 8 : 4;
        return TP_OK;
    case 2:
        if ((rc = tp_varint_decode(*p, left, &v, &used)) || used > 5)
            return derr(c, rc ? rc : TP_ERR_DECODE, *p, "the length of unknown field %u is cut short or too long",
                        num);
        if (v > left - used)
            return derr(c, TP_ERR_TRUNCATED, *p, "unknown field %u claims %llu bytes, %zu left", num,
                        (unsigned long long)v, left - used);
        *p += used + v;
        return TP_OK;
    default:
        return derr(c, TP_ERR_DECODE, *p, "field %u has wire type %d (groups and types 6, 7 are not accepted)", num,
                    wt);
    }
}

static tp_err read_timestamp(dctx *c, const tp_schema_column *def, const uint8_t *p, const uint8_t *end,
                             int64_t *out)
{
    int64_t seconds = 0, nanos = 0;
    const uint8_t *start = p;
    while (p < end) {
        uint32_t num;
        int wt;
        tp_err rc = read_tag(c, &p, end, &num, &wt);
        if (rc)
            return rc;
        if ((num == 1 || num == 2) && wt == 0) {
            uint64_t v;
            size_t used;
            if ((rc = tp_varint_decode(p, (size_t)(end - p), &v, &used)))
                return derr(c, rc, p, "the Timestamp %s is cut short", def->path);
            p += used;
            if (num == 1)
                seconds = (int64_t)v;
            else
                nanos = (int32_t)(uint32_t)v;
        } else if (num == 1 || num == 2) {
            return derr(c, TP_ERR_DECODE, p, "the Timestamp %s has wire type %d for its field %u", def->path, wt, num);
        } else if ((rc = skip_field(c, num, wt, &p, end))) {
            return rc;
        }
    }
    if (nanos < 0 || nanos > 999999999 || seconds < TS_MIN_S || seconds > TS_MAX_S ||
        (seconds == TS_MAX_S && nanos > 854775807) || (seconds == TS_MIN_S && nanos < 145224192))
        return derr(c, TP_ERR_DECODE, start,
                    "the Timestamp %s (seconds %lld, nanos %lld) is outside 1677-09-21..2262-04-11 or has nanos "
                    "outside 0..999999999", def->path, (long long)seconds, (long long)nanos);
    /* at the low end seconds x 1e9 alone would overflow */
    *out = seconds >= 0 ? seconds * 1000000000 + nanos : (seconds + 1) * 1000000000 + (nanos - 1000000000);
    return TP_OK;
}

static tp_err append_elem(dctx *c, tp_dyn_column *col, const uint8_t *at, tp_dyn_value v)
{
    tp_dyn_batch *b = c->b;
    if (!budget(b, sizeof v))
        return derr(c, TP_ERR_FULL, at, "field %s: the batch's %zu bytes for strings and arrays are used up",
                    col->def->path, b->max_bytes);
    if (col->elems_len == col->elems_cap) {
        size_t cap = col->elems_cap ? col->elems_cap * 2 : 64;
        tp_dyn_value *p = realloc(col->elems, cap * sizeof *p);
        if (!p)
            return derr(c, TP_ERR_NOMEM, at, "out of memory for field %s", col->def->path);
        col->elems = p;
        col->elems_cap = cap;
    }
    col->elems[col->elems_len++] = v;
    col->cells[c->row].a.count++;
    col->present[c->row] = 1;
    return TP_OK;
}

static tp_err decode_msg(dctx *c, const tp_schema_node *node, const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        uint32_t num;
        int wt;
        const uint8_t *at = p;
        tp_err rc = read_tag(c, &p, end, &num, &wt);
        if (rc)
            return rc;
        const tp_schema_member *m = NULL;
        size_t lo = 0, hi = node->count;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (node->members[mid].number == num) {
                m = &node->members[mid];
                break;
            }
            if (node->members[mid].number < num)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (!m) {
            if ((rc = skip_field(c, num, wt, &p, end)))
                return rc;
            c->b->unknown_fields++;
            continue;
        }
        if (m->child || (m->column >= 0 && c->b->columns[m->column].def->type == TP_PB_TIMESTAMP)) {
            const char *what = m->child ? m->name : c->b->columns[m->column].def->path;
            if (wt != 2)
                return derr(c, TP_ERR_DECODE, at, "field %s (number %u) is a message but has wire type %d", what, num,
                            wt);
            uint64_t n;
            size_t used;
            if ((rc = tp_varint_decode(p, (size_t)(end - p), &n, &used)) || used > 5)
                return derr(c, rc ? rc : TP_ERR_DECODE, p, "the length of field %s is cut short or too long", what);
            p += used;
            if (n > (size_t)(end - p))
                return derr(c, TP_ERR_TRUNCATED, p, "field %s claims %llu bytes, %zu left", what,
                            (unsigned long long)n, (size_t)(end - p));
            if (m->child) {
                rc = decode_msg(c, m->child, p, p + n);
            } else {
                tp_dyn_column *col = &c->b->columns[m->column];
                rc = read_timestamp(c, col->def, p, p + n, &col->cells[c->row].i);
                col->present[c->row] = 1;
            }
            if (rc)
                return rc;
            p += n;
            continue;
        }
        tp_dyn_column *col = &c->b->columns[m->column];
        const tp_schema_column *def = col->def;
        int want = wire_type_of(def->type);
        if (def->label == TP_LABEL_REPEATED && wt == 2 && want != 2) { /* packed */
            uint64_t n;
            size_t used;
            if ((rc = tp_varint_decode(p, (size_t)(end - p), &n, &used)) || used > 5)
                return derr(c, rc ? rc : TP_ERR_DECODE, p, "the length of packed field %s is cut short or too long",
                            def->path);
            p += used;
            if (n > (size_t)(end - p))
                return derr(c, TP_ERR_TRUNCATED, p, "packed field %s claims %llu bytes, %zu left", def->path,
                            (unsigned long long)n, (size_t)(end - p));
            const uint8_t *q = p, *qend = p + n;
            while (q < qend) {
                tp_dyn_value v;
                const uint8_t *vat = q;
                if ((rc = read_value(c, def, want, &q, qend, &v)) || (rc = append_elem(c, col, vat, v)))
                    return rc;
            }
            col->present[c->row] = 1; /* an empty packed run is still the field on the wire */
            p = qend;
            continue;
        }
        if (wt != want)
            return derr(c, TP_ERR_DECODE, at, "field %s (number %u, %s) has wire type %d, not %d", def->path, num,
                        tp_pb_type_name(def->type), wt, want);
        tp_dyn_value v;
        if ((rc = read_value(c, def, wt, &p, end, &v)))
            return rc;
        if (def->label == TP_LABEL_REPEATED) {
            if ((rc = append_elem(c, col, at, v)))
                return rc;
        } else {
            col->cells[c->row] = v;
            col->present[c->row] = 1;
        }
    }
    return TP_OK;
}

tp_err tp_dyn_decode(tp_dyn_batch *b, const uint8_t *src, size_t len)
{
    if (!b || (!src && len))
        return TP_ERR_INVALID_ARG;
    b->error[0] = 0;
    if (b->count == b->capacity) {
        snprintf(b->error, sizeof b->error, "the batch is full (%zu rows)", b->capacity);
        return TP_ERR_FULL;
    }
    size_t row = b->count, bytes_mark = b->bytes_len, used_mark = b->used;
    uint64_t unknown_mark = b->unknown_fields;
    for (size_t i = 0; i < b->ncolumns; i++) {
        tp_dyn_column *col = &b->columns[i];
        col->cells[row].u = 0;
        col->present[row] = 0;
        if (col->def->label == TP_LABEL_REPEATED)
            col->cells[row].a.off = (uint32_t)col->elems_len;
    }
    dctx c = {.b = b, .row = row, .base = src};
    tp_err rc = decode_msg(&c, &b->schema->root, src, src + len);
    if (rc) {
        for (size_t i = 0; i < b->ncolumns; i++)
            if (b->columns[i].def->label == TP_LABEL_REPEATED)
                b->columns[i].elems_len = b->columns[i].cells[row].a.off;
        b->bytes_len = bytes_mark;
        b->used = used_mark;
        b->unknown_fields = unknown_mark;
        return rc;
    }
    b->count++;
    return TP_OK;
}

/* ---- encoding ---- */

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool full;
} wbuf;

static void put(wbuf *w, const void *src, size_t n)
{
    if (w->full || n > w->cap - w->len) {
        w->full = true;
        return;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_varint(wbuf *w, uint64_t v)
{
    uint8_t tmp[TP_VARINT_MAX_BYTES];
    put(w, tmp, tp_varint_encode(v, tmp));
}

static void put_tag(wbuf *w, uint32_t num, int wt) { put_varint(w, (uint64_t)num << 3 | (uint64_t)wt); }

/* The value's wire bits: a varint's value or the fixed-width pattern. */
static uint64_t wire_bits(tp_pb_type t, tp_dyn_value v)
{
    switch (t) {
    case TP_PB_INT32: case TP_PB_ENUM: case TP_PB_INT64: return (uint64_t)v.i; /* negative int32: 10 bytes */
    case TP_PB_SFIXED32: return (uint32_t)v.i;
    case TP_PB_SFIXED64: return (uint64_t)v.i;
    case TP_PB_SINT32: {
        int32_t x = (int32_t)v.i;
        return (uint32_t)(((uint32_t)x << 1) ^ (uint32_t)(x >> 31));
    }
    case TP_PB_SINT64: return ((uint64_t)v.i << 1) ^ (uint64_t)(v.i >> 63);
    case TP_PB_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v.d, 8);
        return bits;
    }
    case TP_PB_FLOAT: {
        uint32_t bits;
        memcpy(&bits, &v.f, 4);
        return bits;
    }
    default: return v.u;
    }
}

static void put_value(wbuf *w, const tp_dyn_batch *b, tp_pb_type t, tp_dyn_value v)
{
    uint64_t bits = wire_bits(t, v);
    switch (wire_type_of(t)) {
    case 1: {
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)(bits >> (8 * i));
        put(w, le, 8);
        break;
    }
    case 5: {
        uint8_t le[4];
        for (int i = 0; i < 4; i++)
            le[i] = (uint8_t)(bits >> (8 * i));
        put(w, le, 4);
        break;
    }
    case 2:
        put_varint(w, v.s.len);
        put(w, b->bytes + v.s.off, v.s.len);
        break;
    default:
        put_varint(w, bits);
    }
}

static size_t value_size(tp_pb_type t, tp_dyn_value v)
{
    int wt = wire_type_of(t);
    return wt == 1 ? 8 : wt == 5 ? 4 : tp_varint_size(wire_bits(t, v));
}

/* Writes a length-delimited body produced by fn after the tag, moving it to close the length's gap. */
static void encode_msg(wbuf *w, const tp_dyn_batch *b, const tp_schema_node *node, size_t row);

static void put_nested(wbuf *w, const tp_dyn_batch *b, uint32_t num, const tp_schema_node *child, size_t row,
                       const tp_dyn_column *ts)
{
    size_t start = w->len;
    put_tag(w, num, 2);
    size_t body = w->len + 5; /* room for the longest length varint */
    if (w->full || body > w->cap) {
        w->full = true;
        return;
    }
    wbuf sub = {w->p + body, 0, w->cap - body, false};
    if (child) {
        encode_msg(&sub, b, child, row);
    } else {
        int64_t ns = ts->cells[row].i, s = ns / 1000000000, n = ns % 1000000000;
        if (n < 0) {
            n += 1000000000;
            s -= 1;
        }
        if (s) {
            put_tag(&sub, 1, 0);
            put_varint(&sub, (uint64_t)s);
        }
        if (n) {
            put_tag(&sub, 2, 0);
            put_varint(&sub, (uint64_t)n);
        }
    }
    if (sub.full) {
        w->full = true;
        return;
    }
    if (child && sub.len == 0) { /* a nested message with nothing written is left out */
        w->len = start;
        return;
    }
    uint8_t lv[TP_VARINT_MAX_BYTES];
    size_t k = tp_varint_encode(sub.len, lv);
    memcpy(w->p + w->len, lv, k);
    memmove(w->p + w->len + k, w->p + body, sub.len);
    w->len += k + sub.len;
}

static bool is_zero(const tp_dyn_column *col, tp_dyn_value v)
{
    switch (col->def->kind) {
    case TP_COL_STRING: case TP_COL_BYTES: return v.s.len == 0;
    case TP_COL_F32: {
        uint32_t bits;
        memcpy(&bits, &v.f, 4);
        return bits == 0;
    }
    default: return v.u == 0;
    }
}

static void encode_msg(wbuf *w, const tp_dyn_batch *b, const tp_schema_node *node, size_t row)
{
    for (size_t i = 0; i < node->count && !w->full; i++) {
        const tp_schema_member *m = &node->members[i];
        if (m->child) {
            put_nested(w, b, m->number, m->child, row, NULL);
            continue;
        }
        const tp_dyn_column *col = &b->columns[m->column];
        const tp_schema_column *def = col->def;
        tp_dyn_value v = col->cells[row];
        if (def->type == TP_PB_TIMESTAMP) {
            if (col->present[row])
                put_nested(w, b, m->number, NULL, row, col);
            continue;
        }
        if (def->label == TP_LABEL_REPEATED) {
            if (v.a.count == 0)
                continue;
            const tp_dyn_value *e = col->elems + v.a.off; /* not before: elems may be NULL */
            if (def->packed) {
                size_t n = 0;
                for (uint32_t k = 0; k < v.a.count; k++)
                    n += value_size(def->type, e[k]);
                put_tag(w, m->number, 2);
                put_varint(w, n);
                for (uint32_t k = 0; k < v.a.count; k++)
                    put_value(w, b, def->type, e[k]);
            } else {
                for (uint32_t k = 0; k < v.a.count; k++) {
                    put_tag(w, m->number, wire_type_of(def->type));
                    put_value(w, b, def->type, e[k]);
                }
            }
            continue;
        }
        if (def->label == TP_LABEL_IMPLICIT ? is_zero(col, v) : !col->present[row])
            continue;
        put_tag(w, m->number, wire_type_of(def->type));
        put_value(w, b, def->type, v);
    }
}

tp_err tp_dyn_encode(const tp_dyn_batch *b, size_t row, uint8_t *dst, size_t cap, size_t *out_len)
{
    if (!b || !dst || !out_len || row >= b->count)
        return TP_ERR_INVALID_ARG;
    wbuf w = {dst, 0, cap, false};
    encode_msg(&w, b, &b->schema->root, row);
    if (w.full)
        return TP_ERR_FULL;
    *out_len = w.len;
    return TP_OK;
}
