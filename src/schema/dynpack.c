/* Packs of a run-time schema (schema/dynpack.h): key text, the per-key grouper, compression, and a bounded reader
 * of layout-rows packs that hands back frames without knowing their message type. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "schema/dyncols.h"
#include "schema/dynpack.h"
#include "telepack/varint.h"

/* ---- keys and time ---- */

tp_err tp_dyn_key_text(const tp_dyn_batch *b, size_t row, char key[TP_DYN_KEY_MAX + 1], size_t *len, char *why,
                       size_t why_cap)
{
    const tp_schema_roles *r = tp_schema_get_roles(b->schema);
    if (r->key < 0 || row >= b->count) {
        if (why && why_cap)
            snprintf(why, why_cap, "the schema has no key column; give --key-field");
        return TP_ERR_INVALID_ARG;
    }
    const tp_dyn_column *c = &b->columns[r->key];
    const tp_dyn_value *v = &c->cells[row];
    int n;
    switch (c->def->kind) {
    case TP_COL_I64:
        n = snprintf(key, TP_DYN_KEY_MAX + 1, "%" PRId64, v->i);
        break;
    case TP_COL_U64:
    case TP_COL_BOOL:
        n = snprintf(key, TP_DYN_KEY_MAX + 1, "%" PRIu64, v->u);
        break;
    case TP_COL_STRING:
    case TP_COL_BYTES:
        if (v->s.len == 0 || v->s.len > TP_DYN_KEY_MAX || memchr(b->bytes + v->s.off, 0, v->s.len)) {
            if (why && why_cap)
                snprintf(why, why_cap, "key %s is %s", c->def->name,
                         v->s.len == 0 ? "empty: every record needs its vehicle"
                         : v->s.len > TP_DYN_KEY_MAX ? "longer than 255 bytes"
                                                     : "holding a NUL byte");
            return TP_ERR_DECODE;
        }
        memcpy(key, b->bytes + v->s.off, v->s.len);
        key[v->s.len] = 0;
        n = (int)v->s.len;
        break;
    default:
        if (why && why_cap)
            snprintf(why, why_cap, "key column %s is neither an integer nor a string", c->def->name);
        return TP_ERR_INVALID_ARG;
    }
    *len = (size_t)n;
    return TP_OK;
}

uint64_t tp_dyn_key_hash(const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)key[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

bool tp_dyn_time_ns(const tp_dyn_batch *b, size_t row, int64_t *ns)
{
    const tp_schema_roles *r = tp_schema_get_roles(b->schema);
    if (r->time < 0 || row >= b->count)
        return false;
    const tp_dyn_column *c = &b->columns[r->time];
    if (c->def->kind == TP_COL_TIMESTAMP_NS) {
        if (!c->present[row])
            return false;
        *ns = c->cells[row].i;
        return true;
    }
    int64_t v;
    if (c->def->kind == TP_COL_U64) {
        if (c->cells[row].u > (uint64_t)INT64_MAX)
            return false;
        v = (int64_t)c->cells[row].u;
    } else {
        v = c->cells[row].i;
    }
    int64_t mul = r->time_unit == TP_TIME_S ? 1000000000 : r->time_unit == TP_TIME_MS ? 1000000
                : r->time_unit == TP_TIME_US ? 1000 : 1;
    if (v > INT64_MAX / mul || v < INT64_MIN / mul)
        return false;
    *ns = v * mul;
    return true;
}

/* ---- grouper ---- */

struct tp_dyn_grouper {
    const tp_schema *schema;
    uint32_t batch_records;
    size_t max_record_bytes;
    tp_dyn_batch *row;
    uint8_t *scratch;      /* a JSON record's protobuf encoding: max_record_bytes + 5 x TP_SCHEMA_MAX_DEPTH */
    tp_dyn_group **groups; /* every group ever opened */
    size_t ngroups, cap_groups;
    uint32_t *slots;       /* open addressing: index + 1 into groups, 0 = empty; power of two */
    size_t nslots;
    uint64_t arrivals, buffered;
    tp_dyn_group *last; /* the group of the last add */
    char error[512];
};

tp_err tp_dyn_grouper_new(const tp_schema *s, uint32_t batch_records, size_t max_record_bytes, tp_dyn_grouper **out)
{
    if (!s || !out || batch_records == 0 || max_record_bytes == 0 || max_record_bytes > (UINT32_MAX - 64) / 9)
        return TP_ERR_INVALID_ARG;
    tp_dyn_grouper *g = calloc(1, sizeof *g);
    if (!g)
        return TP_ERR_NOMEM;
    g->schema = s;
    g->batch_records = batch_records;
    g->max_record_bytes = max_record_bytes;
    g->nslots = 64;
    g->slots = calloc(g->nslots, sizeof *g->slots);
    /* A message of n bytes holds at most n string bytes and n array elements of 8 bytes each. */
    g->scratch = malloc(max_record_bytes + 5 * TP_SCHEMA_MAX_DEPTH);
    tp_err e = g->slots && g->scratch ? tp_dyn_batch_new(s, 1, 9 * max_record_bytes + 64, &g->row) : TP_ERR_NOMEM;
    if (e) {
        tp_dyn_grouper_free(g);
        return e;
    }
    *out = g;
    return TP_OK;
}

void tp_dyn_grouper_free(tp_dyn_grouper *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->ngroups; i++) {
        free(g->groups[i]->content);
        free(g->groups[i]);
    }
    free(g->groups);
    free(g->slots);
    free(g->scratch);
    tp_dyn_batch_free(g->row);
    free(g);
}

const char *tp_dyn_grouper_error(const tp_dyn_grouper *g)
{
    return g->error;
}

const tp_dyn_batch *tp_dyn_grouper_row(const tp_dyn_grouper *g)
{
    return g->row;
}

uint64_t tp_dyn_grouper_buffered(const tp_dyn_grouper *g)
{
    return g->buffered;
}

static tp_err grow_slots(tp_dyn_grouper *g)
{
    size_t n = g->nslots * 2;
    uint32_t *s = calloc(n, sizeof *s);
    if (!s)
        return TP_ERR_NOMEM;
    for (size_t i = 0; i < g->ngroups; i++) {
        size_t k = (size_t)g->groups[i]->hash & (n - 1);
        while (s[k])
            k = (k + 1) & (n - 1);
        s[k] = (uint32_t)(i + 1);
    }
    free(g->slots);
    g->slots = s;
    g->nslots = n;
    return TP_OK;
}

/* The group of key (created when new); NULL when out of memory. */
static tp_dyn_group *group_of(tp_dyn_grouper *g, const char *key, size_t len)
{
    uint64_t h = tp_dyn_key_hash(key, len);
    size_t k = (size_t)h & (g->nslots - 1);
    for (; g->slots[k]; k = (k + 1) & (g->nslots - 1)) {
        tp_dyn_group *grp = g->groups[g->slots[k] - 1];
        if (grp->hash == h && grp->key_len == len && !memcmp(grp->key, key, len))
            return grp;
    }
    if (g->ngroups >= UINT32_MAX - 1)
        return NULL;
    if (g->ngroups == g->cap_groups) {
        size_t n = g->cap_groups ? g->cap_groups * 2 : 64;
        tp_dyn_group **p = realloc(g->groups, n * sizeof *p);
        if (!p)
            return NULL;
        g->groups = p;
        g->cap_groups = n;
    }
    tp_dyn_group *grp = calloc(1, sizeof *grp);
    if (!grp)
        return NULL;
    memcpy(grp->key, key, len);
    grp->key_len = len;
    grp->hash = h;
    g->groups[g->ngroups++] = grp;
    g->slots[k] = (uint32_t)g->ngroups;
    if (g->ngroups * 2 > g->nslots && grow_slots(g)) {
        /* the group is in; the table is only fuller than we like */
    }
    return grp;
}

static tp_err append(tp_dyn_group *grp, const uint8_t *p, size_t n)
{
    if (grp->cap - grp->len < n) {
        size_t cap = grp->cap ? grp->cap : 4096;
        while (cap - grp->len < n)
            cap *= 2;
        uint8_t *c = realloc(grp->content, cap);
        if (!c)
            return TP_ERR_NOMEM;
        grp->content = c;
        grp->cap = cap;
    }
    memcpy(grp->content + grp->len, p, n);
    grp->len += n;
    return TP_OK;
}

/* Appends msg[0..len), decoded into g->row, to its key's group. */
static tp_err add_decoded(tp_dyn_grouper *g, const uint8_t *msg, size_t len, tp_dyn_group **full)
{
    tp_err e;
    char key[TP_DYN_KEY_MAX + 1];
    size_t klen;
    if ((e = tp_dyn_key_text(g->row, 0, key, &klen, g->error, sizeof g->error)) != TP_OK)
        return e;
    tp_dyn_group *grp = group_of(g, key, klen);
    if (!grp)
        return TP_ERR_NOMEM;
    uint8_t pre[TP_VARINT_MAX_BYTES + 4];
    size_t pn;
    const tp_schema_roles *r = tp_schema_get_roles(g->schema);
    const tp_schema_column *kc = tp_schema_column_at(g->schema, (size_t)r->key);
    if (grp->count == 0 && len == 0) {
        /* docs/FORMAT.md section 2: v1 content never starts with 00. An empty message opening a pack (only possible
         * with an integer key equal to 0: a string key is never empty) gets its key field written, as zero. */
        uint32_t wt = kc->kind == TP_COL_STRING || kc->kind == TP_COL_BYTES ? 2 : 0;
        uint8_t body[TP_VARINT_MAX_BYTES + 1];
        size_t bn = tp_varint_encode((uint64_t)kc->numbers[0] << 3 | wt, body);
        body[bn++] = 0;
        if (kc->depth != 1) {
            snprintf(g->error, sizeof g->error, "an empty record cannot open a pack when the key %s is nested",
                     kc->name);
            return TP_ERR_DECODE;
        }
        pn = tp_varint_encode(bn, pre);
        if ((e = append(grp, pre, pn)) || (e = append(grp, body, bn)))
            return e;
    } else {
        pn = tp_varint_encode(len, pre);
        size_t old = grp->len;
        if ((e = append(grp, pre, pn)) || (len && (e = append(grp, msg, len)))) {
            grp->len = old;
            return e;
        }
    }
    if (grp->count == 0) {
        grp->opened = g->arrivals;
        grp->has_time = false;
    }
    int64_t t;
    if (tp_dyn_time_ns(g->row, 0, &t)) {
        if (!grp->has_time || t < grp->time_lo_ns)
            grp->time_lo_ns = t;
        if (!grp->has_time || t > grp->time_hi_ns)
            grp->time_hi_ns = t;
        grp->has_time = true;
    }
    grp->count++;
    g->last = grp;
    g->arrivals++;
    g->buffered++;
    if (grp->count >= g->batch_records)
        *full = grp;
    return TP_OK;
}

tp_err tp_dyn_grouper_add(tp_dyn_grouper *g, const uint8_t *msg, size_t len, tp_dyn_group **full)
{
    *full = NULL;
    g->error[0] = 0;
    if (len > g->max_record_bytes) {
        snprintf(g->error, sizeof g->error, "a record of %zu bytes is above the limit of %zu bytes", len,
                 g->max_record_bytes);
        return TP_ERR_RECORD_TOO_LARGE;
    }
    tp_dyn_batch_clear(g->row);
    tp_err e = tp_dyn_decode(g->row, msg, len);
    if (e) {
        snprintf(g->error, sizeof g->error, "it does not decode as %s: %s", tp_schema_message_name(g->schema),
                 g->row->error);
        return e == TP_ERR_FULL ? TP_ERR_RECORD_TOO_LARGE : e;
    }
    return add_decoded(g, msg, len, full);
}

tp_err tp_dyn_grouper_add_json(tp_dyn_grouper *g, const char *text, size_t len, int flags, tp_dyn_group **full)
{
    *full = NULL;
    g->error[0] = 0;
    tp_dyn_batch_clear(g->row);
    tp_err e = tp_dyn_json_read(g->row, text, len, flags);
    if (e == TP_ERR_FULL) {
        snprintf(g->error, sizeof g->error, "its strings and arrays are above what a record of %zu bytes holds",
                 g->max_record_bytes);
        return TP_ERR_RECORD_TOO_LARGE;
    }
    if (e) {
        snprintf(g->error, sizeof g->error, "it is not a record of %s: %s", tp_schema_message_name(g->schema),
                 g->row->error);
        return e;
    }
    size_t n = 0;
    e = tp_dyn_encode(g->row, 0, g->scratch, g->max_record_bytes + 5 * TP_SCHEMA_MAX_DEPTH, &n);
    if (e == TP_ERR_FULL || (!e && n > g->max_record_bytes)) {
        snprintf(g->error, sizeof g->error, "it encodes to more than the limit of %zu bytes a record",
                 g->max_record_bytes);
        return TP_ERR_RECORD_TOO_LARGE;
    }
    if (e)
        return e;
    return add_decoded(g, g->scratch, n, full);
}

tp_dyn_group *tp_dyn_grouper_last(const tp_dyn_grouper *g)
{
    return g->last;
}

void tp_dyn_grouper_each(tp_dyn_grouper *g, void (*fn)(void *ctx, tp_dyn_group *grp), void *ctx)
{
    for (size_t i = 0; i < g->ngroups; i++)
        fn(ctx, g->groups[i]);
}

tp_dyn_group *tp_dyn_grouper_oldest(tp_dyn_grouper *g)
{
    tp_dyn_group *best = NULL;
    for (size_t i = 0; i < g->ngroups; i++)
        if (g->groups[i]->count && (!best || g->groups[i]->opened < best->opened))
            best = g->groups[i];
    return best;
}

void tp_dyn_grouper_release(tp_dyn_grouper *g, tp_dyn_group *grp)
{
    g->buffered -= grp->count;
    grp->count = 0;
    grp->len = 0;
    grp->has_time = false;
}

/* ---- compression ---- */

tp_err tp_dyn_pack_compress(void *cctx, int level, tp_codec codec, const uint8_t *content, size_t len,
                            uint8_t **out, size_t *out_len)
{
    size_t cap = codec == TP_CODEC_ZSTD ? ZSTD_compressBound(len) : len;
    uint8_t *dst = malloc(cap ? cap : 1);
    if (!dst)
        return TP_ERR_NOMEM;
    if (codec != TP_CODEC_ZSTD) {
        memcpy(dst, content, len);
        *out = dst;
        *out_len = len;
        return TP_OK;
    }
    ZSTD_CCtx *c = cctx;
    if (!c || ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1))) {
        free(dst);
        return TP_ERR_COMPRESS;
    }
    size_t n = ZSTD_compress2(c, dst, cap, content, len);
    if (ZSTD_isError(n)) {
        free(dst);
        return TP_ERR_COMPRESS;
    }
    *out = dst;
    *out_len = n;
    return TP_OK;
}

/* ---- reader ---- */

struct tp_dyn_pack_reader {
    ZSTD_DCtx *dctx;
    size_t max_pack_bytes, max_record_bytes, max_records;
    uint8_t *buf;
    size_t buf_cap;
    const uint8_t *content;
    size_t content_len, pos;
    uint32_t count;
    bool columns;            /* the open pack is a column pack (docs/FORMAT_SCHEMA.md) */
    tp_dyncol_decoder *cols;
    char error[384];
};

static tp_err rfail(tp_dyn_pack_reader *r, tp_err e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static tp_err rfail(tp_dyn_pack_reader *r, tp_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    return e;
}

tp_err tp_dyn_pack_reader_new(size_t max_pack_bytes, size_t max_record_bytes, tp_dyn_pack_reader **out)
{
    if (!out || max_pack_bytes < 16 || max_record_bytes == 0)
        return TP_ERR_INVALID_ARG;
    tp_dyn_pack_reader *r = calloc(1, sizeof *r);
    if (!r)
        return TP_ERR_NOMEM;
    r->max_pack_bytes = max_pack_bytes;
    r->max_record_bytes = max_record_bytes;
    r->max_records = max_pack_bytes / TP_PACK_BYTES_PER_RECORD;
    r->dctx = ZSTD_createDCtx();
    if (tp_dyncol_decoder_new(&r->cols)) {
        tp_dyn_pack_reader_free(r);
        return TP_ERR_NOMEM;
    }
    int log = 10;
    while (log < (sizeof(size_t) == 4 ? 30 : 31) && ((size_t)1 << log) < max_pack_bytes)
        log++;
    if (!r->dctx || ZSTD_isError(ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax, log))) {
        tp_dyn_pack_reader_free(r);
        return TP_ERR_NOMEM;
    }
    *out = r;
    return TP_OK;
}

void tp_dyn_pack_reader_free(tp_dyn_pack_reader *r)
{
    if (!r)
        return;
    ZSTD_freeDCtx(r->dctx);
    tp_dyncol_decoder_free(r->cols);
    free(r->buf);
    free(r);
}

const char *tp_dyn_pack_reader_error(const tp_dyn_pack_reader *r)
{
    return r->error;
}

uint32_t tp_dyn_pack_reader_count(const tp_dyn_pack_reader *r)
{
    return r->count;
}

size_t tp_dyn_pack_reader_content_size(const tp_dyn_pack_reader *r)
{
    return r->content_len;
}

static tp_err decompress(tp_dyn_pack_reader *r, const uint8_t *data, size_t len)
{
    size_t fsize = ZSTD_findFrameCompressedSize(data, len);
    if (ZSTD_isError(fsize))
        return rfail(r, len < 18 ? TP_ERR_TRUNCATED : TP_ERR_CORRUPT, "the zstd frame is malformed or cut short (%s)",
                     ZSTD_getErrorName(fsize));
    if (fsize != len)
        return rfail(r, TP_ERR_TRAILING_GARBAGE, "%zu bytes follow the pack's zstd frame of %zu bytes", len - fsize,
                     fsize);
    if (ZSTD_getDictID_fromFrame(data, len))
        return rfail(r, TP_ERR_UNKNOWN_CODEC, "the zstd frame needs a dictionary, which this reader does not have");
    unsigned long long declared = ZSTD_getFrameContentSize(data, len);
    if (declared == ZSTD_CONTENTSIZE_ERROR)
        return rfail(r, TP_ERR_CORRUPT, "the zstd frame header is malformed");
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > r->max_pack_bytes)
        return rfail(r, TP_ERR_PACK_TOO_LARGE, "the pack declares %llu content bytes, above the limit of %zu",
                     declared, r->max_pack_bytes);
    size_t want = declared != ZSTD_CONTENTSIZE_UNKNOWN ? (size_t)declared + 1 : 1 << 16;
    ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {data, len, 0};
    size_t pos = 0;
    for (;;) {
        if (r->buf_cap - pos == 0 || r->buf_cap < want) {
            size_t cap = r->buf_cap ? r->buf_cap * 2 : 1 << 16;
            while (cap < want)
                cap *= 2;
            if (cap > r->max_pack_bytes + 1)
                cap = r->max_pack_bytes + 1;
            if (cap <= r->buf_cap)
                return rfail(r, TP_ERR_PACK_TOO_LARGE, "the pack decompresses to more than %zu bytes",
                             r->max_pack_bytes);
            uint8_t *b = realloc(r->buf, cap);
            if (!b)
                return rfail(r, TP_ERR_NOMEM, "out of memory for %zu content bytes", cap);
            r->buf = b;
            r->buf_cap = cap;
        }
        ZSTD_outBuffer o = {r->buf, r->buf_cap, pos};
        size_t ret = ZSTD_decompressStream(r->dctx, &o, &in);
        pos = o.pos;
        if (ZSTD_isError(ret)) {
            ZSTD_ErrorCode c = ZSTD_getErrorCode(ret);
            return rfail(r, c == ZSTD_error_checksum_wrong ? TP_ERR_CHECKSUM
                            : c == ZSTD_error_frameParameter_windowTooLarge ? TP_ERR_PACK_TOO_LARGE
                                                                            : TP_ERR_CORRUPT,
                         "zstd says \"%s\"", ZSTD_getErrorName(ret));
        }
        if (pos > r->max_pack_bytes)
            return rfail(r, TP_ERR_PACK_TOO_LARGE, "the pack decompresses to more than %zu bytes", r->max_pack_bytes);
        if (ret == 0)
            break;
        if (in.pos == in.size && o.pos < o.size)
            return rfail(r, TP_ERR_TRUNCATED, "the zstd frame ends before its content does");
    }
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && pos != declared)
        return rfail(r, TP_ERR_CORRUPT, "the frame declares %llu content bytes but holds %zu", declared, pos);
    r->content = r->buf;
    r->content_len = pos;
    return TP_OK;
}

tp_err tp_dyn_pack_reader_open(tp_dyn_pack_reader *r, const tp_pack_meta *meta, const uint8_t *data, size_t len)
{
    r->error[0] = 0;
    r->content = NULL;
    r->content_len = r->pos = 0;
    r->count = 0;
    r->columns = false;
    if (!data || len == 0)
        return rfail(r, TP_ERR_TRUNCATED, "the pack is empty");
    bool rows = meta && meta->layout == TP_LAYOUT_ROWS && meta->format_version == 1;
    bool cols = meta && meta->layout == TP_LAYOUT_COLUMNS && meta->format_version == TP_DYNCOL_FORMAT_VERSION;
    if (meta && !rows && !cols)
        return rfail(r, TP_ERR_UNKNOWN_VERSION, "the pack is version %" PRIu32 " (layout %s); a custom schema "
                     "travels as version 1 (layout rows) or %d (layout columns)", meta->format_version,
                     meta->layout == TP_LAYOUT_COLUMNS ? "columns" : meta->layout == TP_LAYOUT_ROWS ? "rows" : "unknown",
                     TP_DYNCOL_FORMAT_VERSION);
    bool zstd = meta ? meta->codec == TP_CODEC_ZSTD
                     : len >= 4 && data[0] == 0x28 && data[1] == 0xb5 && data[2] == 0x2f && data[3] == 0xfd;
    tp_err e;
    if (zstd) {
        if ((e = decompress(r, data, len)))
            return e;
    } else {
        if (len > r->max_pack_bytes)
            return rfail(r, TP_ERR_PACK_TOO_LARGE, "the pack is %zu bytes, above the limit of %zu", len,
                         r->max_pack_bytes);
        r->content = data;
        r->content_len = len;
    }
    if (r->content_len == 0)
        return rfail(r, TP_ERR_CORRUPT, "the pack holds no record");
    if (!meta)
        cols = r->content[0] == 0;
    if (cols && !tp_dyncol_sniff(r->content, r->content_len))
        return rfail(r, TP_ERR_UNKNOWN_VERSION, "the content starts with 00 but not with the magic 00 54 43 53 (a "
                     "built-in column pack is 00 54 43 32 or 33); a custom schema travels as version 1 (layout rows) "
                     "or %d (layout columns)", TP_DYNCOL_FORMAT_VERSION);
    if (cols) {
        /* Column content: the header's count, bounded as for rows; the columns are decoded by read_batch. */
        uint32_t n;
        if ((e = tp_dyncol_count(r->cols, r->content, r->content_len, r->max_records, &n)))
            return rfail(r, e, "%s", tp_dyncol_decoder_error(r->cols));
        if (meta && meta->record_count != n)
            return rfail(r, TP_ERR_COUNT_MISMATCH, "the headers say %" PRIu32 " records, the pack holds %" PRIu32,
                         meta->record_count, n);
        r->count = n;
        r->columns = true;
        return TP_OK;
    }
    /* Walk the length prefixes: count and bound before anything is decoded. */
    size_t pos = 0;
    uint64_t n = 0;
    while (pos < r->content_len) {
        uint64_t v;
        size_t used;
        e = tp_varint_decode(r->content + pos, r->content_len - pos, &v, &used);
        if (e)
            return rfail(r, e, "record %" PRIu64 " at content offset %zu: the length prefix is %s", n, pos,
                         e == TP_ERR_TRUNCATED ? "cut short" : "longer than 10 bytes");
        if (v > r->max_record_bytes)
            return rfail(r, TP_ERR_RECORD_TOO_LARGE, "record %" PRIu64 " at content offset %zu: length prefix %" PRIu64
                         " above the limit of %zu bytes", n, pos, v, r->max_record_bytes);
        if (v > r->content_len - pos - used)
            return rfail(r, TP_ERR_TRUNCATED, "record %" PRIu64 " at content offset %zu: %" PRIu64 " bytes claimed, %zu "
                         "left", n, pos, v, r->content_len - pos - used);
        pos += used + (size_t)v;
        if (++n > r->max_records)
            return rfail(r, TP_ERR_PACK_TOO_LARGE, "the pack holds more than %zu records", r->max_records);
    }
    if (n > UINT32_MAX)
        return rfail(r, TP_ERR_PACK_TOO_LARGE, "the pack holds more than 4294967295 records");
    if (meta && meta->record_count != n)
        return rfail(r, TP_ERR_COUNT_MISMATCH, "the headers say %" PRIu32 " records, the pack holds %" PRIu64,
                     meta->record_count, n);
    r->count = (uint32_t)n;
    return TP_OK;
}

bool tp_dyn_pack_reader_is_columns(const tp_dyn_pack_reader *r)
{
    return r->columns;
}

tp_err tp_dyn_pack_reader_read_columns(tp_dyn_pack_reader *r, tp_dyn_batch *b)
{
    if (!r->columns || !r->content)
        return rfail(r, TP_ERR_INVALID_ARG, "the open pack is not a column pack");
    tp_err e = tp_dyncol_decode(r->cols, r->content, r->content_len, r->max_records, b);
    if (e)
        return rfail(r, e, "%s", tp_dyncol_decoder_error(r->cols));
    r->pos = r->content_len;
    return TP_OK;
}

tp_err tp_dyn_pack_reader_next(tp_dyn_pack_reader *r, const uint8_t **msg, size_t *len)
{
    if (!r->content || r->columns || r->pos >= r->content_len)
        return TP_ERR_END;
    uint64_t v;
    size_t used;
    if (tp_varint_decode(r->content + r->pos, r->content_len - r->pos, &v, &used))
        return TP_ERR_CORRUPT; /* walked at open: cannot happen */
    *msg = r->content + r->pos + used;
    *len = (size_t)v;
    r->pos += used + (size_t)v;
    return TP_OK;
}

/* ---- the column layout of a group ---- */

struct tp_dyn_colwriter {
    tp_dyn_batch *b;
    tp_dyncol_encoder *enc;
};

tp_err tp_dyn_colwriter_new(const tp_schema *s, uint32_t batch_records, size_t max_record_bytes,
                            tp_dyn_colwriter **out)
{
    if (!s || !out || batch_records == 0 || max_record_bytes == 0)
        return TP_ERR_INVALID_ARG;
    tp_dyn_colwriter *w = calloc(1, sizeof *w);
    if (!w)
        return TP_ERR_NOMEM;
    /* A message of n bytes holds at most n string bytes and n elements of 8 bytes: 9 n for the group. */
    double budget = 9.0 * (double)batch_records * (double)(max_record_bytes + 10) + 64;
    tp_err e = tp_dyncol_encoder_new(&w->enc);
    if (!e)
        e = tp_dyn_batch_new(s, batch_records, budget > UINT32_MAX ? UINT32_MAX : (size_t)budget, &w->b);
    if (e) {
        tp_dyn_colwriter_free(w);
        return e;
    }
    *out = w;
    return TP_OK;
}

void tp_dyn_colwriter_free(tp_dyn_colwriter *w)
{
    if (!w)
        return;
    tp_dyn_batch_free(w->b);
    tp_dyncol_encoder_free(w->enc);
    free(w);
}

tp_err tp_dyn_colwriter_convert(tp_dyn_colwriter *w, const uint8_t *rows, size_t len, const uint8_t **out,
                                size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    tp_dyn_batch_clear(w->b);
    size_t pos = 0;
    while (pos < len) {
        uint64_t v;
        size_t used;
        if (tp_varint_decode(rows + pos, len - pos, &v, &used) || v > len - pos - used)
            return TP_ERR_CORRUPT; /* the grouper wrote it: cannot happen */
        tp_err e = tp_dyn_decode(w->b, rows + pos + used, (size_t)v);
        if (e == TP_ERR_FULL)
            return TP_OK; /* more than the batch holds: the rows layout takes it */
        if (e)
            return e;
        if (w->b->unknown_fields)
            return TP_OK; /* a field the schema does not know: only the rows keep it */
        pos += used + (size_t)v;
    }
    if (w->b->count == 0)
        return TP_ERR_INVALID_ARG;
    return tp_dyncol_encode(w->enc, w->b, out, out_len);
}
