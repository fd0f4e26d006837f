/* Pack metadata <-> named text values (include/telepack/pack_meta.h): the compact "tp" header and the full set. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "telepack/pack_meta.h"

const char *tp_layout_name(tp_layout layout)
{
    switch (layout) {
    case TP_LAYOUT_ROWS: return "rows";
    case TP_LAYOUT_COLUMNS: return "columns";
    }
    return NULL;
}

const char *tp_codec_name(tp_codec codec)
{
    switch (codec) {
    case TP_CODEC_NONE: return "none";
    case TP_CODEC_ZSTD: return "zstd";
    }
    return NULL;
}

/* Appends name = the NUL-terminated text at *t (advancing *t past it). */
static void put(tp_header *out, size_t *n, const char *name, char **t, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void put(tp_header *out, size_t *n, const char *name, char **t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(*t, 16, fmt, ap); /* every value fits: names below 16 bytes, numbers 10 digits */
    va_end(ap);
    out[*n] = (tp_header){name, *t, (size_t)len};
    (*n)++;
    *t += len + 1;
}

tp_err tp_pack_meta_to_header_list(const tp_pack_meta *meta, tp_header_form form, tp_header *out, size_t *n,
                                   char *text)
{
    if (!meta || !out || !n || !text)
        return TP_ERR_INVALID_ARG;
    *n = 0;
    char *t = text;
    if (form == TP_HEADERS_COMPACT) {
        tp_layout want = meta->format_version == 1 ? TP_LAYOUT_ROWS : TP_LAYOUT_COLUMNS;
        if (meta->codec != TP_CODEC_ZSTD || meta->schema_version != TP_SCHEMA_VERSION ||
            meta->format_version < 1 || meta->format_version > 3 || meta->layout != want)
            return TP_ERR_INVALID_ARG;
        /* "<version>,<records>", and ",<dict id>" for a pack with a dictionary (at most 32 characters) */
        int len = meta->dict_id ? snprintf(t, 40, "%" PRIu32 ",%" PRIu32 ",%" PRIu32, meta->format_version,
                                           meta->record_count, meta->dict_id)
                                : snprintf(t, 40, "%" PRIu32 ",%" PRIu32, meta->format_version, meta->record_count);
        out[(*n)++] = (tp_header){TP_HEADER_COMPACT, t, (size_t)len};
        return TP_OK;
    }
    const char *layout = tp_layout_name(meta->layout), *codec = tp_codec_name(meta->codec);
    if (form != TP_HEADERS_FULL || !layout || !codec)
        return TP_ERR_INVALID_ARG;
    out[(*n)++] = (tp_header){TP_HEADER_FORMAT, TP_PACK_FORMAT_NAME, strlen(TP_PACK_FORMAT_NAME)};
    put(out, n, TP_HEADER_VERSION, &t, "%" PRIu32, meta->format_version);
    out[(*n)++] = (tp_header){TP_HEADER_LAYOUT, layout, strlen(layout)};
    out[(*n)++] = (tp_header){TP_HEADER_CODEC, codec, strlen(codec)};
    out[(*n)++] = (tp_header){TP_HEADER_SCHEMA, TP_SCHEMA_NAME, strlen(TP_SCHEMA_NAME)};
    put(out, n, TP_HEADER_SCHEMA_VERSION, &t, "%" PRIu32, meta->schema_version);
    put(out, n, TP_HEADER_RECORDS, &t, "%" PRIu32, meta->record_count);
    put(out, n, TP_HEADER_DICT_ID, &t, "%" PRIu32, meta->dict_id);
    return TP_OK;
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static tp_err fail(tp_err e, char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return e;
}

/* A printable rendering of a header value for error sentences: at most 40 bytes, other bytes as '?'. */
static void show(const void *v, size_t n, char out[48])
{
    const unsigned char *p = v;
    size_t k = 0;
    for (size_t i = 0; i < n && k < 40; i++)
        out[k++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    if (n > 40) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = 0;
}

/* How many of h[0..n) are named `name`; the first one's value into *v, *len. */
static size_t find(const tp_header *h, size_t n, const char *name, const void **v, size_t *len)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i].name && !strcmp(h[i].name, name)) {
            if (!count) {
                *v = h[i].value;
                *len = h[i].value ? h[i].len : 0; /* a NULL value is an empty one */
            }
            count++;
        }
    }
    return count;
}

/* The one value of header `name` into *v, *len (NULL, 0 when absent and optional); absent-and-required and
 * repeated headers are TP_ERR_PARSE. */
static tp_err get_one(const tp_header *h, size_t n, const char *name, int required, const void **v, size_t *len,
                      char *err, size_t cap)
{
    *v = NULL;
    *len = 0;
    size_t count = find(h, n, name, v, len);
    if (count == 0) {
        if (!required)
            return TP_OK;
        return fail(TP_ERR_PARSE, err, cap,
                    "pack header %s is missing: the message was not written by a telepack producer", name);
    }
    if (count > 1)
        return fail(TP_ERR_PARSE, err, cap, "pack header %s appears more than once", name);
    return TP_OK;
}

static int equals(const void *v, size_t n, const char *s)
{
    return n == strlen(s) && (n == 0 || memcmp(v, s, n) == 0);
}

/* A plain decimal number p[0..n) (digits only, no leading zeros, within 32 bits) into *out; 0 if malformed. */
static int parse_u32(const unsigned char *p, size_t n, uint32_t *out)
{
    uint64_t x = 0;
    int ok = n > 0 && n <= 10 && !(n > 1 && p[0] == '0');
    for (size_t i = 0; ok && i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            ok = 0;
        else
            x = x * 10 + (uint64_t)(p[i] - '0');
    }
    if (!ok || x > UINT32_MAX)
        return 0;
    *out = (uint32_t)x;
    return 1;
}

/* The compact header's value "<version>,<records>" or "<version>,<records>,<dict id>" (the id not 0) into *m. */
static tp_err parse_compact(const void *v, size_t n, tp_pack_meta *m, char *err, size_t cap)
{
    const unsigned char *p = v;
    size_t c1 = 0, c2;
    while (c1 < n && p[c1] != ',')
        c1++;
    c2 = c1 + 1;
    while (c2 < n && p[c2] != ',')
        c2++;
    if (c2 > n)
        c2 = n;
    char shown[48];
    m->dict_id = 0;
    if (c1 == n || !parse_u32(p, c1, &m->format_version) || !parse_u32(p + c1 + 1, c2 - c1 - 1, &m->record_count) ||
        (c2 < n && (!parse_u32(p + c2 + 1, n - c2 - 1, &m->dict_id) || m->dict_id == 0))) {
        show(v, n, shown);
        return fail(TP_ERR_PARSE, err, cap,
                    "pack header %s has value \"%s\", expected \"<format version>,<record count>\" or \"<format "
                    "version>,<record count>,<dictionary id>\" in decimal, e.g. \"3,250\"", TP_HEADER_COMPACT, shown);
    }
    m->layout = m->format_version == 1 ? TP_LAYOUT_ROWS : TP_LAYOUT_COLUMNS;
    m->codec = TP_CODEC_ZSTD;
    m->schema_version = TP_SCHEMA_VERSION;
    return TP_OK; /* an unknown version number is tp_pack_reader_open's to reject, as with the full headers */
}

static tp_err get_u32(const tp_header *h, size_t n, const char *name, int required, uint32_t *out, char *err,
                      size_t cap)
{
    const void *v;
    size_t len;
    tp_err e = get_one(h, n, name, required, &v, &len, err, cap);
    if (e)
        return e;
    if (!v && !required) {
        *out = 0;
        return TP_OK;
    }
    if (!parse_u32(v, len, out)) {
        char shown[48];
        show(v, len, shown);
        return fail(TP_ERR_PARSE, err, cap,
                    "pack header %s has value \"%s\", expected a decimal number from 0 to 4294967295", name, shown);
    }
    return TP_OK;
}

tp_err tp_pack_meta_from_header_list(const tp_header *h, size_t n, tp_pack_meta *meta, char *err, size_t cap)
{
    if ((!h && n) || !meta)
        return fail(TP_ERR_INVALID_ARG, err, cap, "no headers or no metadata to fill");
    if (err && cap)
        err[0] = 0;
    tp_pack_meta m = {0};
    const void *v;
    size_t len;
    char shown[48];
    tp_err e;

    if (find(h, n, TP_HEADER_COMPACT, &v, &len)) {
        if ((e = get_one(h, n, TP_HEADER_COMPACT, 1, &v, &len, err, cap)))
            return e;
        const void *fv;
        size_t fl;
        if (find(h, n, TP_HEADER_FORMAT, &fv, &fl))
            return fail(TP_ERR_PARSE, err, cap, "pack headers %s and %s are both present: a pack carries the "
                        "compact header or the full set, not both", TP_HEADER_COMPACT, TP_HEADER_FORMAT);
        if ((e = parse_compact(v, len, &m, err, cap)))
            return e;
        *meta = m;
        return TP_OK;
    }
    if ((e = get_one(h, n, TP_HEADER_FORMAT, 1, &v, &len, err, cap)))
        return e;
    if (!equals(v, len, TP_PACK_FORMAT_NAME)) {
        show(v, len, shown);
        return fail(TP_ERR_UNKNOWN_VERSION, err, cap, "pack header %s is \"%s\"; this reader reads \"%s\"",
                    TP_HEADER_FORMAT, shown, TP_PACK_FORMAT_NAME);
    }
    if ((e = get_u32(h, n, TP_HEADER_VERSION, 1, &m.format_version, err, cap)))
        return e;

    if ((e = get_one(h, n, TP_HEADER_LAYOUT, 1, &v, &len, err, cap)))
        return e;
    if (equals(v, len, "rows"))
        m.layout = TP_LAYOUT_ROWS;
    else if (equals(v, len, "columns"))
        m.layout = TP_LAYOUT_COLUMNS;
    else {
        show(v, len, shown);
        return fail(TP_ERR_UNKNOWN_VERSION, err, cap,
                    "pack header %s is \"%s\"; known layouts are \"rows\" and \"columns\"", TP_HEADER_LAYOUT, shown);
    }

    if ((e = get_one(h, n, TP_HEADER_CODEC, 1, &v, &len, err, cap)))
        return e;
    if (equals(v, len, "zstd"))
        m.codec = TP_CODEC_ZSTD;
    else if (equals(v, len, "none"))
        m.codec = TP_CODEC_NONE;
    else {
        show(v, len, shown);
        return fail(TP_ERR_UNKNOWN_CODEC, err, cap,
                    "pack header %s is \"%s\"; known codecs are \"zstd\" and \"none\"", TP_HEADER_CODEC, shown);
    }

    if ((e = get_one(h, n, TP_HEADER_SCHEMA, 1, &v, &len, err, cap)))
        return e;
    if (!equals(v, len, TP_SCHEMA_NAME)) {
        show(v, len, shown);
        return fail(TP_ERR_UNKNOWN_VERSION, err, cap, "pack header %s is \"%s\"; this reader reads \"%s\"",
                    TP_HEADER_SCHEMA, shown, TP_SCHEMA_NAME);
    }
    if ((e = get_u32(h, n, TP_HEADER_SCHEMA_VERSION, 1, &m.schema_version, err, cap)) ||
        (e = get_u32(h, n, TP_HEADER_RECORDS, 1, &m.record_count, err, cap)) ||
        (e = get_u32(h, n, TP_HEADER_DICT_ID, 0, &m.dict_id, err, cap)))
        return e;
    *meta = m;
    return TP_OK;
}
