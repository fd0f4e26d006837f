/* Pack writer: buffers one vehicle's records as varint length-prefixed protobuf frames and compresses them into
 * one zstd frame (docs/FORMAT.md); layout columns (v2, docs/FORMAT_V2.md) transposes them at build_content(). */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "codec/colpack.h"
#include "codec/dict_impl.h"
#include "codec/record_codec.h"
#include "telepack/pack.h"

struct sort_key {
    uint64_t vehicle_id;
    int64_t sampled_at_ms;
    uint32_t index; /* arrival order: the tie-break that makes the sort stable */
};

struct vgroup {
    uint64_t vehicle_id;
    int64_t last_ms;   /* sampled_at_ms of its latest record so far */
    uint32_t count;
    uint32_t start;    /* first position in idx */
    uint32_t unsorted; /* its records arrived out of time order */
};

struct vorder {
    uint64_t vehicle_id;
    uint32_t group;
};

struct tp_pack_writer {
    tp_pack_writer_opts opts;
    ZSTD_CCtx *cctx;       /* NULL for codec none */
    uint8_t *content;      /* layout rows: the open pack's v1 content, [varint len][record]... */
    size_t len, cap;
    uint32_t count;
    uint64_t vehicle_id;   /* of the first record */
    tp_record *records;    /* the records themselves, kept only for layouts that transpose them (columns) */
    size_t records_cap;
    tp_colpack_encoder *colenc; /* layout columns: transposes records into v2 content */
    /* multi_vehicle: the buffers that find the records' (vehicle_id, sampled_at_ms, arrival) order, all reused
     * across packs and sized for sorted_cap records (O(records) memory, none per record) */
    struct sort_key *keys;      /* a vehicle's records that arrived out of time order */
    uint32_t *grp;              /* per record: its vehicle's group */
    uint32_t *idx;              /* record indices, grouped by vehicle: the order the encoder reads them in */
    uint32_t *slots;            /* open-addressing table vehicle_id -> group, 2 x sorted_cap entries */
    struct vgroup *groups;      /* one per vehicle in the pack */
    struct vorder *order;       /* the groups in vehicle_id order */
    size_t sorted_cap;
    const uint8_t *col;         /* v2 content of the open pack, valid while col_valid */
    size_t col_len;
    int col_valid;
};

void tp_pack_writer_opts_init(tp_pack_writer_opts *o)
{
    o->codec = TP_CODEC_ZSTD;
    o->level = 3;
    o->layout = TP_LAYOUT_COLUMNS;
    o->max_pack_bytes = TP_DEFAULT_MAX_PACK_BYTES;
    o->multi_vehicle = 0;
    o->dict = NULL;
    o->coded_columns = 0;
}

tp_err tp_pack_writer_new(const tp_pack_writer_opts *opts, tp_pack_writer **out)
{
    if (!out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_pack_writer_opts o;
    if (opts)
        o = *opts;
    else
        tp_pack_writer_opts_init(&o);
    if (o.codec != TP_CODEC_NONE && o.codec != TP_CODEC_ZSTD)
        return TP_ERR_UNKNOWN_CODEC;
    if (o.layout != TP_LAYOUT_ROWS && o.layout != TP_LAYOUT_COLUMNS)
        return TP_ERR_UNKNOWN_VERSION;
    if (o.max_pack_bytes == 0 || ((o.multi_vehicle || o.coded_columns) && o.layout != TP_LAYOUT_COLUMNS))
        return TP_ERR_INVALID_ARG;
    if (o.codec == TP_CODEC_ZSTD && (o.level < ZSTD_minCLevel() || o.level > ZSTD_maxCLevel()))
        return TP_ERR_INVALID_ARG;
    if (o.dict && (o.codec != TP_CODEC_ZSTD || !tp_dict_cdict(o.dict) || tp_dict_level(o.dict) != o.level))
        return TP_ERR_INVALID_ARG; /* a dictionary needs zstd and was prepared at this level */

    tp_pack_writer *w = calloc(1, sizeof *w);
    if (!w)
        return TP_ERR_NOMEM;
    w->opts = o;
    if (o.layout == TP_LAYOUT_COLUMNS && tp_colpack_encoder_new(&w->colenc)) {
        free(w);
        return TP_ERR_NOMEM;
    }
    tp_colpack_encoder_set_coded(w->colenc, o.coded_columns != 0);
    if (o.codec == TP_CODEC_ZSTD) {
        w->cctx = ZSTD_createCCtx();
        if (!w->cctx) {
            free(w);
            return TP_ERR_NOMEM;
        }
        /* Parameters stick to the context across ZSTD_compress2 calls. Content size is written because
         * ZSTD_compress2 knows it (ZSTD_c_contentSizeFlag defaults to 1); we set it anyway to say so. */
        if (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, o.level)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1)) ||
            /* A dictionary (shared, read-only) sticks too; its id goes into every frame (ZSTD_c_dictIDFlag). */
            (o.dict && (ZSTD_isError(ZSTD_CCtx_refCDict(w->cctx, tp_dict_cdict(o.dict))) ||
                        ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_dictIDFlag, 1))))) {
            tp_pack_writer_free(w);
            return TP_ERR_COMPRESS;
        }
    }
    *out = w;
    return TP_OK;
}

void tp_pack_writer_free(tp_pack_writer *w)
{
    if (!w)
        return;
    ZSTD_freeCCtx(w->cctx);
    free(w->content);
    free(w->records);
    free(w->keys);
    free(w->grp);
    free(w->idx);
    free(w->slots);
    free(w->groups);
    free(w->order);
    tp_colpack_encoder_free(w->colenc);
    free(w);
}

void tp_pack_writer_reset(tp_pack_writer *w)
{
    if (!w)
        return;
    w->len = 0;
    w->count = 0;
    w->vehicle_id = 0;
    w->col_valid = 0;
}

static tp_err ensure(tp_pack_writer *w, size_t need)
{
    if (need <= w->cap)
        return TP_OK;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(w->content, cap);
    if (!p)
        return TP_ERR_NOMEM;
    w->content = p;
    w->cap = cap;
    return TP_OK;
}

tp_err tp_pack_writer_add(tp_pack_writer *w, const tp_record *r)
{
    if (!w || !r)
        return TP_ERR_INVALID_ARG;
    if (w->count > 0 && r->vehicle_id != w->vehicle_id && !w->opts.multi_vehicle)
        return TP_ERR_INVALID_ARG;
    if (w->count == UINT32_MAX)
        return TP_ERR_FULL;
    size_t n;
    uint8_t *p = NULL;
    if (w->opts.layout == TP_LAYOUT_COLUMNS) {
        n = tp_record_encoded_len(r); /* the v1 size bounds the pack; the v1 bytes themselves are not needed */
    } else {
        tp_err e = ensure(w, w->len + 1 + TP_RECORD_MAX_ENCODED);
        if (e)
            return e;
        p = w->content + w->len;
        n = tp_record_encode_unchecked(r, p + 1); /* always < 128 bytes: a one-byte length prefix */
    }
    if (n == 0 && w->len == 0) {
        /* An all-zero record encodes to nothing, and content starting 00 marks v2 (docs/FORMAT.md, section 8).
         * Opening a pack it is written with its vehicle_id present and zero (02 08 00): valid protobuf that decodes
         * to the same record, so the writer takes every record in every position. */
        if (p) {
            p[1] = 0x08;
            p[2] = 0x00;
        }
        n = 2;
    }
    if (w->len + 1 + n > w->opts.max_pack_bytes)
        return TP_ERR_FULL;
    if (w->opts.layout == TP_LAYOUT_COLUMNS) {
        /* Columns: keep *r for finish to transpose. The v1 size above still bounds the pack (a v2 pack never
         * holds more records than its v1 form would fit in max_pack_bytes; readers rely on it). */
        if (w->count == w->records_cap) {
            size_t cap = w->records_cap ? w->records_cap * 2 : 256;
            tp_record *g = realloc(w->records, cap * sizeof *g);
            if (!g)
                return TP_ERR_NOMEM;
            w->records = g;
            w->records_cap = cap;
        }
        w->records[w->count] = *r;
        w->col_valid = 0;
    }
    if (p)
        p[0] = (uint8_t)n;
    w->len += 1 + n;
    if (w->count++ == 0)
        w->vehicle_id = r->vehicle_id;
    return TP_OK;
}

uint32_t tp_pack_writer_count(const tp_pack_writer *w)
{
    return w ? w->count : 0;
}

size_t tp_pack_writer_content_size(const tp_pack_writer *w)
{
    return w ? w->len : 0;
}

size_t tp_pack_writer_bound(const tp_pack_writer *w)
{
    if (!w)
        return 0;
    /* Layout columns: the v2 content's bound from the record count alone, so bound stays cheap to call often. */
    size_t len = w->opts.layout == TP_LAYOUT_COLUMNS && w->count > 0 ? tp_colpack_bound(w->count) : w->len;
    return w->opts.codec == TP_CODEC_ZSTD ? ZSTD_compressBound(len) : len;
}

static int key_cmp(const void *a, const void *b)
{
    const struct sort_key *x = a, *y = b;
    if (x->vehicle_id != y->vehicle_id)
        return x->vehicle_id < y->vehicle_id ? -1 : 1;
    if (x->sampled_at_ms != y->sampled_at_ms)
        return x->sampled_at_ms < y->sampled_at_ms ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int order_cmp(const void *a, const void *b)
{
    const struct vorder *x = a, *y = b;
    return x->vehicle_id < y->vehicle_id ? -1 : x->vehicle_id > y->vehicle_id;
}

static tp_err grow_sort_buffers(tp_pack_writer *w, uint32_t n)
{
    if (n <= w->sorted_cap)
        return TP_OK;
    size_t cap = w->sorted_cap ? w->sorted_cap : 256;
    while (cap < n)
        cap *= 2;
#define GROW(field, count)                                                                                     \
    do {                                                                                                       \
        void *p_ = realloc(w->field, (count) * sizeof *w->field);                                              \
        if (!p_)                                                                                               \
            return TP_ERR_NOMEM;                                                                               \
        w->field = p_;                                                                                         \
    } while (0)
    GROW(keys, cap);
    GROW(grp, cap);
    GROW(idx, cap);
    GROW(slots, 2 * cap);
    GROW(groups, cap);
    GROW(order, cap);
#undef GROW
    w->sorted_cap = cap; /* only once every buffer has the new size */
    return TP_OK;
}

/* multi_vehicle: the open pack's records' (vehicle_id, sampled_at_ms, arrival) order as indices into w->records
 * (NULL when they are in that order already), in reused buffers; the encoder gathers through it. A
 * gateway's records arrive time-major (each second, every vehicle once), so each vehicle's records are already a
 * run in time order: they are grouped by vehicle (a hash table, one pass), the vehicles sorted (a few hundred keys
 * instead of thousands of records), and only a vehicle whose records came out of time order has its own records
 * sorted. The result is the order of a stable sort by (vehicle_id, sampled_at_ms). */
static tp_err sort_records(tp_pack_writer *w, const uint32_t **out)
{
    const tp_record *r = w->records;
    uint32_t n = w->count, i = 1;
    while (i < n && (r[i].vehicle_id > r[i - 1].vehicle_id ||
                     (r[i].vehicle_id == r[i - 1].vehicle_id && r[i].sampled_at_ms >= r[i - 1].sampled_at_ms)))
        i++;
    if (i >= n) { /* already in order (one vehicle sending in time order): no index */
        *out = NULL;
        return TP_OK;
    }
    tp_err e = grow_sort_buffers(w, n);
    if (e)
        return e;
    size_t nslots = 256; /* a power of two, at least 2n (load <= 1/2), at most 2 x sorted_cap */
    while (nslots < 2 * (size_t)n)
        nslots *= 2;
    size_t mask = nslots - 1;
    memset(w->slots, 0xff, nslots * sizeof *w->slots);
    uint32_t ng = 0;
    for (i = 0; i < n; i++) {
        uint64_t v = r[i].vehicle_id;
        size_t h = (size_t)((v * 0x9E3779B97F4A7C15ull) >> 32) & mask;
        uint32_t g;
        while ((g = w->slots[h]) != UINT32_MAX && w->groups[g].vehicle_id != v)
            h = (h + 1) & mask;
        if (g == UINT32_MAX) {
            g = w->slots[h] = ng++;
            w->groups[g] = (struct vgroup){v, r[i].sampled_at_ms, 0, 0, 0};
        }
        struct vgroup *gr = &w->groups[g];
        if (r[i].sampled_at_ms < gr->last_ms)
            gr->unsorted = 1;
        else
            gr->last_ms = r[i].sampled_at_ms;
        gr->count++;
        w->grp[i] = g;
    }
    bool ascending = true; /* time-major input meets its vehicles in id order: usually nothing to sort */
    for (uint32_t g = 0; g < ng; g++) {
        w->order[g] = (struct vorder){w->groups[g].vehicle_id, g};
        ascending &= g == 0 || w->groups[g].vehicle_id > w->groups[g - 1].vehicle_id;
    }
    if (!ascending)
        qsort(w->order, ng, sizeof *w->order, order_cmp);
    uint32_t at = 0;
    for (uint32_t k = 0; k < ng; k++) {
        struct vgroup *gr = &w->groups[w->order[k].group];
        gr->start = at;
        at += gr->count;
        gr->count = 0; /* now the fill position */
    }
    for (i = 0; i < n; i++) { /* stable: arrival order within each vehicle */
        struct vgroup *gr = &w->groups[w->grp[i]];
        w->idx[gr->start + gr->count++] = i;
    }
    for (uint32_t g = 0; g < ng; g++) {
        const struct vgroup *gr = &w->groups[g];
        if (!gr->unsorted)
            continue;
        uint32_t *ix = w->idx + gr->start;
        for (uint32_t k = 0; k < gr->count; k++)
            w->keys[k] = (struct sort_key){gr->vehicle_id, r[ix[k]].sampled_at_ms, ix[k]};
        qsort(w->keys, gr->count, sizeof *w->keys, key_cmp);
        for (uint32_t k = 0; k < gr->count; k++)
            ix[k] = w->keys[k].index;
    }
    *out = w->idx; /* the encoder reads the records through it: nothing is moved */
    return TP_OK;
}

/* The bytes to compress for the open pack. Layout rows: the length-prefixed frames as buffered. Layout columns
 * (format version 2, src/codec/colpack.c) transposes w->records here into its own buffer instead. */
static tp_err build_content(tp_pack_writer *w, const uint8_t **content, size_t *len)
{
    switch (w->opts.layout) {
    case TP_LAYOUT_ROWS:
        *content = w->content;
        *len = w->len;
        return TP_OK;
    case TP_LAYOUT_COLUMNS:
        if (!w->col_valid) { /* built once per pack: a finish that failed for lack of room keeps it */
            const uint32_t *order = NULL;
            tp_err e = w->opts.multi_vehicle ? sort_records(w, &order) : TP_OK;
            if (!e)
                e = tp_colpack_encode_gather(w->colenc, w->records, order, w->count, w->opts.multi_vehicle ? 3 : 2,
                                             &w->col, &w->col_len);
            if (e)
                return e;
            w->col_valid = 1;
        }
        *content = w->col;
        *len = w->col_len;
        return TP_OK;
    }
    return TP_ERR_UNKNOWN_VERSION;
}

tp_err tp_pack_writer_finish(tp_pack_writer *w, uint8_t *dst, size_t cap, size_t *out_len, tp_pack_meta *meta)
{
    if (!w || !dst || !out_len)
        return TP_ERR_INVALID_ARG;
    if (w->count == 0)
        return TP_ERR_INVALID_ARG;
    const uint8_t *content;
    size_t content_len, n;
    tp_err e = build_content(w, &content, &content_len);
    if (e)
        return e;
    if (w->opts.codec == TP_CODEC_ZSTD) {
        n = ZSTD_compress2(w->cctx, dst, cap, content, content_len);
        if (ZSTD_isError(n))
            return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? TP_ERR_FULL : TP_ERR_COMPRESS;
    } else {
        if (cap < content_len)
            return TP_ERR_FULL;
        memcpy(dst, content, content_len);
        n = content_len;
    }
    *out_len = n;
    if (meta) {
        memset(meta, 0, sizeof *meta);
        meta->format_version = w->opts.layout == TP_LAYOUT_ROWS ? 1 : w->opts.multi_vehicle ? 3 : 2;
        meta->layout = w->opts.layout;
        meta->codec = w->opts.codec;
        meta->schema_version = TP_SCHEMA_VERSION;
        meta->record_count = w->count;
        meta->dict_id = w->opts.dict ? tp_dict_id(w->opts.dict) : 0;
        meta->vehicle_id = w->opts.multi_vehicle ? 0 : w->vehicle_id;
        meta->content_size = content_len;
    }
    tp_pack_writer_reset(w);
    return TP_OK;
}
