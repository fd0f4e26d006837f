/* Pack reader: checks and decompresses one pack into a reused buffer, then walks its length-prefixed records
 * (docs/FORMAT.md). Every length comes from outside and is checked against what remains and the configured caps. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "codec/colpack.h"
#include "codec/dict_impl.h"
#include "codec/record_codec.h"
#include "telepack/pack.h"
#include "telepack/varint.h"

struct tp_pack_reader {
    tp_pack_reader_opts opts;
    ZSTD_DCtx *dctx;
    uint8_t *buf;             /* decompressed content, reused across packs */
    size_t buf_cap;
    const uint8_t *content;   /* buf, or the caller's data for codec none */
    size_t len, pos;
    uint32_t index;           /* records returned so far */
    int open;                 /* a pack is open (open succeeded) */
    int have_expect;
    tp_pack_meta expect;      /* what the Kafka headers said */
    tp_pack_meta meta;        /* what the pack itself says */
    int columns;              /* the open pack is layout columns (v2): records come from col */
    tp_colpack_reader col;
    tp_colpack_scratch colscratch; /* coded columns of the packs read, reused */
    tp_record chunk[64];      /* v2 records decoded ahead for next(): columns decode fastest in runs */
    uint32_t chunk_pos, chunk_len;
    char detail[256];
};

void tp_pack_reader_opts_init(tp_pack_reader_opts *o)
{
    o->max_record_bytes = TP_DEFAULT_MAX_RECORD_BYTES;
    o->max_pack_bytes = TP_DEFAULT_MAX_PACK_BYTES;
    o->max_pack_records = 0;
    o->dicts = NULL;
}

/* Smallest window log whose window holds max bytes, within zstd's limits: a frame asking for a larger window
 * cannot be a pack this reader accepts, and zstd must not allocate for it. */
static int window_log_for(size_t max)
{
    int log = 10, top = sizeof(size_t) == 4 ? 30 : 31; /* zstd's ZSTD_WINDOWLOG_ABSOLUTEMIN and _MAX */
    while (log < top && ((size_t)1 << log) < max)
        log++;
    return log;
}

tp_err tp_pack_reader_new(const tp_pack_reader_opts *opts, tp_pack_reader **out)
{
    if (!out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_pack_reader_opts o;
    if (opts)
        o = *opts;
    else
        tp_pack_reader_opts_init(&o);
    if (o.max_record_bytes == 0 || o.max_pack_bytes == 0)
        return TP_ERR_INVALID_ARG;
    if (o.max_pack_records == 0)
        o.max_pack_records = o.max_pack_bytes / TP_PACK_BYTES_PER_RECORD ? o.max_pack_bytes / TP_PACK_BYTES_PER_RECORD
                                                                         : 1;
    tp_pack_reader *r = calloc(1, sizeof *r);
    if (!r)
        return TP_ERR_NOMEM;
    r->opts = o;
    r->dctx = ZSTD_createDCtx();
    if (!r->dctx) {
        free(r);
        return TP_ERR_NOMEM;
    }
    if (ZSTD_isError(ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax, window_log_for(o.max_pack_bytes)))) {
        tp_pack_reader_free(r);
        return TP_ERR_INVALID_ARG;
    }
    *out = r;
    return TP_OK;
}

void tp_pack_reader_free(tp_pack_reader *r)
{
    if (!r)
        return;
    ZSTD_freeDCtx(r->dctx);
    tp_colpack_scratch_free(&r->colscratch);
    free(r->buf);
    free(r);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static tp_err fail(tp_pack_reader *r, tp_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    return e;
}

static tp_err grow_buf(tp_pack_reader *r, size_t need)
{
    if (need <= r->buf_cap)
        return TP_OK;
    uint8_t *p = realloc(r->buf, need);
    if (!p)
        return TP_ERR_NOMEM;
    r->buf = p;
    r->buf_cap = need;
    return TP_OK;
}

static tp_err zstd_fail(tp_pack_reader *r, size_t code, const char *what)
{
    ZSTD_ErrorCode c = ZSTD_getErrorCode(code);
    tp_err e = TP_ERR_CORRUPT;
    if (c == ZSTD_error_checksum_wrong)
        e = TP_ERR_CHECKSUM;
    else if (c == ZSTD_error_srcSize_wrong)
        e = TP_ERR_TRUNCATED;
    else if (c == ZSTD_error_frameParameter_windowTooLarge)
        e = TP_ERR_PACK_TOO_LARGE;
    else if (c == ZSTD_error_memory_allocation)
        e = TP_ERR_NOMEM;
    else if (c == ZSTD_error_dictionary_wrong)
        e = TP_ERR_UNKNOWN_CODEC;
    return fail(r, e, "%s: zstd says \"%s\"", what, ZSTD_getErrorName(code));
}

/* Decompresses the one zstd frame data[0..len) into r->buf, at most max_pack_bytes. The frame's content size is
 * only a hint for the first allocation: the output is capped whatever the header claims. */
static tp_err decompress(tp_pack_reader *r, const uint8_t *data, size_t len)
{
    size_t max = r->opts.max_pack_bytes;
    if (len < 4)
        return fail(r, TP_ERR_TRUNCATED, "pack of %zu bytes is too short for a zstd frame (at least 4 bytes)", len);
    uint32_t magic = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
    if (magic != ZSTD_MAGICNUMBER)
        return fail(r, TP_ERR_CORRUPT,
                    "pack does not start with the zstd frame magic 28 b5 2f fd (found %02x %02x %02x %02x)",
                    data[0], data[1], data[2], data[3]);
    size_t fsize = ZSTD_findFrameCompressedSize(data, len);
    if (ZSTD_isError(fsize))
        return zstd_fail(r, fsize, "zstd frame is malformed or cut short");
    if (fsize < len)
        return fail(r, TP_ERR_TRAILING_GARBAGE,
                    "%zu bytes follow the zstd frame, which ends at byte offset %zu of %zu: a pack is one frame",
                    len - fsize, fsize, len);
    /* The dictionary: the frame's Dictionary_ID (0 = none), which the metadata must repeat (docs/FORMAT_V2.md). */
    unsigned dict = ZSTD_getDictID_fromFrame(data, len);
    if (r->have_expect && r->expect.dict_id != dict)
        return fail(r, TP_ERR_CORRUPT,
                    "pack metadata names zstd dictionary %" PRIu32 " but its zstd frame names %u (0 = none); the "
                    "two must agree", r->expect.dict_id, dict);
    const ZSTD_DDict *ddict = NULL;
    if (dict != 0) {
        const tp_dict *d = tp_dict_set_find(r->opts.dicts, dict);
        if (!d)
            return fail(r, TP_ERR_UNKNOWN_DICT,
                        "pack names zstd dictionary %u, which this reader does not have (%zu loaded)", dict,
                        tp_dict_set_count(r->opts.dicts));
        ddict = tp_dict_ddict(d);
    }
    unsigned long long declared = ZSTD_getFrameContentSize(data, len);
    if (declared == ZSTD_CONTENTSIZE_ERROR)
        return fail(r, TP_ERR_CORRUPT, "zstd frame header is malformed");
    size_t want = 64 * 1024; /* first allocation when the frame does not say its size */
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN) {
        if (declared > max)
            return fail(r, TP_ERR_PACK_TOO_LARGE,
                        "zstd frame declares %llu content bytes, above max_pack_bytes %zu", declared, max);
        want = declared ? (size_t)declared : 1;
    }
    if (want > max)
        want = max;
    if (grow_buf(r, want))
        return fail(r, TP_ERR_NOMEM, "out of memory for %zu content bytes", want);

    ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
    size_t ref = ZSTD_DCtx_refDDict(r->dctx, ddict); /* NULL: no dictionary, whatever the last pack used */
    if (ZSTD_isError(ref))
        return zstd_fail(r, ref, "zstd dictionary cannot be used");
    r->meta.dict_id = dict;
    ZSTD_inBuffer in = {data, len, 0};
    ZSTD_outBuffer outb = {r->buf, r->buf_cap < max ? r->buf_cap : max, 0};
    for (;;) {
        size_t ret = ZSTD_decompressStream(r->dctx, &outb, &in);
        if (ZSTD_isError(ret))
            return zstd_fail(r, ret, "zstd frame does not decompress");
        if (ret == 0)
            break; /* frame complete, checksum verified */
        if (outb.pos < outb.size) {
            if (in.pos == in.size)
                return fail(r, TP_ERR_TRUNCATED, "zstd frame ends before its last block");
            continue;
        }
        /* Output full and the frame goes on: grow up to the cap, and a byte past it to tell "exactly max". */
        if (outb.size >= max) {
            uint8_t probe;
            ZSTD_outBuffer one = {&probe, 1, 0};
            ret = ZSTD_decompressStream(r->dctx, &one, &in);
            if (ZSTD_isError(ret))
                return zstd_fail(r, ret, "zstd frame does not decompress");
            if (one.pos > 0)
                return fail(r, TP_ERR_PACK_TOO_LARGE, "decompressed pack exceeds max_pack_bytes %zu", max);
            if (ret == 0)
                break;
            if (in.pos == in.size)
                return fail(r, TP_ERR_TRUNCATED, "zstd frame ends before its last block");
            continue;
        }
        size_t next = outb.size * 2 < max ? outb.size * 2 : max;
        if (grow_buf(r, next))
            return fail(r, TP_ERR_NOMEM, "out of memory for %zu content bytes", next);
        outb.dst = r->buf;
        outb.size = next;
    }
    if (in.pos != in.size)
        return fail(r, TP_ERR_TRAILING_GARBAGE, "%zu bytes follow the zstd frame", in.size - in.pos);
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && outb.pos != declared)
        return fail(r, TP_ERR_CORRUPT, "zstd frame declares %llu content bytes but holds %zu", declared, outb.pos);
    r->content = r->buf;
    r->len = outb.pos;
    return TP_OK;
}

/* Largest coded-column scratch a reader keeps between packs: 16 MiB, about 150,000 records. */
#define TP_COLSCRATCH_KEEP ((size_t)16 << 20)

/* Layout columns: the v2 header gives the record count up front. A v2 pack may hold at most max_pack_records
 * records (max_pack_bytes / 16 by default): a column pack of equal records takes a few bytes whatever its count,
 * so the content size does not bound the rows it decodes to; tp_colpack_open checks every column can hold that
 * many records. */
static tp_err open_columns(tp_pack_reader *r, tp_codec codec)
{
    /* The coded-column scratch is kept for the next pack, unless an unusually large pack grew it (a hostile
     * pack at the record cap takes 108 B a record): then it goes back, and the next coded pack takes what it
     * needs. */
    if (r->colscratch.cap > TP_COLSCRATCH_KEEP)
        tp_colpack_scratch_free(&r->colscratch);
    tp_err e = tp_colpack_open_with(&r->col, r->content, r->len, r->opts.max_pack_records, &r->colscratch);
    if (e == TP_ERR_PACK_TOO_LARGE)
        return fail(r, e, "layout columns (format version 2 or 3): %s (max_pack_records %zu = max_pack_bytes / %u)",
                    r->col.detail, r->opts.max_pack_records, TP_PACK_BYTES_PER_RECORD);
    if (e)
        return fail(r, e, "layout columns (format version 2 or 3): %s", r->col.detail);
    if (r->have_expect && r->expect.format_version != r->col.version)
        return fail(r, TP_ERR_UNKNOWN_VERSION, "pack content is format version %u but its metadata says %" PRIu32,
                    r->col.version, r->expect.format_version);
    if (r->have_expect && r->expect.record_count != r->col.count)
        return fail(r, TP_ERR_COUNT_MISMATCH, "pack holds %" PRIu32 " records but its metadata says %" PRIu32,
                    r->col.count, r->expect.record_count);
    r->meta.format_version = r->col.version;
    r->meta.layout = TP_LAYOUT_COLUMNS;
    r->meta.codec = codec;
    r->meta.schema_version = TP_SCHEMA_VERSION;
    r->meta.content_size = r->len;
    r->meta.record_count = r->col.count;
    r->open = 1;
    return TP_OK;
}

/* Layout rows: counts the records by walking their length prefixes (one byte each for schema 1), so a caller can
 * size its batch from the content rather than from a header. Stops at the first prefix that is malformed or runs
 * past the end, counting that record too (reading it reports the precise error). More than max_pack_records
 * records is TP_ERR_PACK_TOO_LARGE; a count the metadata contradicts, TP_ERR_COUNT_MISMATCH. */
static tp_err count_rows(tp_pack_reader *r)
{
    const uint8_t *p = r->content;
    size_t pos = 0, len = r->len, max = r->opts.max_pack_records;
    uint64_t n = 0;
    int complete = 1;
    while (pos < len) {
        if (n >= max || n >= UINT32_MAX)
            return fail(r, TP_ERR_PACK_TOO_LARGE,
                        "pack holds more than %zu records (max_pack_records = max_pack_bytes / %u); the record at "
                        "content offset %zu is one too many",
                        max < UINT32_MAX ? max : (size_t)UINT32_MAX, TP_PACK_BYTES_PER_RECORD, pos);
        uint64_t rec = 0;
        size_t used = 0;
        if (p[pos] < 0x80) {
            rec = p[pos];
            used = 1;
        } else if (tp_varint_decode(p + pos, len - pos, &rec, &used)) {
            complete = 0;
        }
        n++;
        if (!complete || rec > len - pos - used) {
            complete = 0;
            break;
        }
        pos += used + (size_t)rec;
    }
    r->meta.record_count = (uint32_t)n;
    if (complete && n > 0 && r->have_expect && r->expect.record_count != n)
        return fail(r, TP_ERR_COUNT_MISMATCH, "pack holds %" PRIu64 " records but its metadata says %" PRIu32, n,
                    r->expect.record_count);
    return TP_OK;
}

/* Every decoded row of a v2 pack must carry the pack's vehicle (the first record's, and the key's if given). A v3
 * pack holds several vehicles (their order is checked by colpack), and its meta.vehicle_id stays 0. */
static tp_err check_vehicles(tp_pack_reader *r, const uint64_t *ids, size_t n)
{
    if (n == 0 || r->col.version == 3)
        return TP_OK;
    if (r->index == 0) {
        if (r->have_expect && r->expect.vehicle_id != 0 && ids[0] != r->expect.vehicle_id)
            return fail(r, TP_ERR_CORRUPT, "record 0: vehicle_id %" PRIu64 " differs from the pack's %" PRIu64,
                        ids[0], r->expect.vehicle_id);
        r->meta.vehicle_id = ids[0];
    }
    uint64_t want = r->meta.vehicle_id, diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= ids[i] ^ want;
    if (!diff)
        return TP_OK;
    size_t i = 0;
    while (ids[i] == want)
        i++;
    return fail(r, TP_ERR_CORRUPT,
                "record %" PRIu32 ": vehicle_id %" PRIu64 " differs from the pack's %" PRIu64
                " (a pack holds one vehicle)",
                r->index + (uint32_t)i, ids[i], want);
}

static tp_err next_columns(tp_pack_reader *r, tp_record *out)
{
    if (r->chunk_pos == r->chunk_len) {
        if (r->col.done == r->col.count) {
            r->meta.record_count = r->col.count;
            return TP_ERR_END;
        }
        if (r->col.ncols == 0)
            return fail(r, TP_ERR_CORRUPT, "layout columns: %s", r->col.detail); /* an earlier call failed */
        uint32_t k = r->col.count - r->col.done;
        if (k > sizeof r->chunk / sizeof r->chunk[0])
            k = sizeof r->chunk / sizeof r->chunk[0];
        tp_err e = tp_colpack_read_records(&r->col, r->chunk, k);
        if (e)
            return fail(r, e, "layout columns: %s", r->col.detail);
        r->chunk_pos = 0;
        r->chunk_len = k;
    }
    tp_err e = check_vehicles(r, &r->chunk[r->chunk_pos].vehicle_id, 1);
    if (e)
        return e; /* stays at the failing record */
    *out = r->chunk[r->chunk_pos++];
    r->index++;
    return TP_OK;
}

static tp_err read_all_columns(tp_pack_reader *r, tp_row_batch *rows, int32_t partition, int64_t offset)
{
    size_t start = rows->count;
    uint64_t start_vehicle = r->meta.vehicle_id;
    if (r->col.ncols == 0 && r->col.done < r->col.count)
        return fail(r, TP_ERR_CORRUPT, "layout columns: %s", r->col.detail);
    /* Records next() decoded ahead come first, then the rest of the columns. */
    size_t ahead = r->chunk_len - r->chunk_pos, left = ahead + (r->col.count - r->col.done);
    if (rows->capacity - rows->count < left) /* nothing consumed: the caller can drain the batch and call again */
        return fail(r, TP_ERR_FULL, "row batch has room for %zu rows, the pack holds %zu more",
                    rows->capacity - rows->count, left);
    tp_err e = TP_OK;
    for (size_t j = 0; j < ahead && !e; j++)
        e = tp_row_batch_append(rows, &r->chunk[r->chunk_pos + j], partition, offset);
    if (!e && (e = tp_colpack_read_rows(&r->col, rows, partition, offset)))
        e = fail(r, e, "layout columns: %s", r->col.detail);
    if (!e)
        e = check_vehicles(r, rows->vehicle_id + start, rows->count - start);
    if (e) {
        rows->count = start;
        r->meta.vehicle_id = start_vehicle;
        return e;
    }
    r->chunk_pos = r->chunk_len;
    r->index += (uint32_t)(rows->count - start);
    r->meta.record_count = r->col.count;
    return TP_OK;
}

tp_err tp_pack_reader_open(tp_pack_reader *r, const tp_pack_meta *meta, const uint8_t *data, size_t len)
{
    if (!r)
        return TP_ERR_INVALID_ARG;
    r->open = 0;
    r->detail[0] = 0;
    r->content = NULL;
    r->len = r->pos = 0;
    r->index = 0;
    r->columns = 0;
    r->chunk_pos = r->chunk_len = 0;
    memset(&r->meta, 0, sizeof r->meta);
    if (!data && len)
        return fail(r, TP_ERR_INVALID_ARG, "pack data is NULL with length %zu", len);

    tp_codec codec;
    r->have_expect = meta != NULL;
    if (meta) {
        r->expect = *meta;
        if (meta->format_version < 1 || meta->format_version > 3)
            return fail(r, TP_ERR_UNKNOWN_VERSION,
                        "pack format version %" PRIu32 " is unknown; this reader knows versions 1 (rows), 2 and 3 "
                        "(columns)",
                        meta->format_version);
        if (meta->format_version >= 2 && meta->layout != TP_LAYOUT_COLUMNS)
            return fail(r, TP_ERR_UNKNOWN_VERSION, "pack layout %d is unknown for format version %" PRIu32
                        " (columns)", (int)meta->layout, meta->format_version);
        if (meta->format_version == 1 && meta->layout != TP_LAYOUT_ROWS)
            return fail(r, TP_ERR_UNKNOWN_VERSION, "pack layout %d is unknown for format version 1 (rows)",
                        (int)meta->layout);
        if (meta->schema_version != TP_SCHEMA_VERSION)
            return fail(r, TP_ERR_UNKNOWN_VERSION, "schema version %" PRIu32 " is unknown; this reader knows %d",
                        meta->schema_version, TP_SCHEMA_VERSION);
        if (meta->codec != TP_CODEC_NONE && meta->codec != TP_CODEC_ZSTD)
            return fail(r, TP_ERR_UNKNOWN_CODEC, "pack codec %d is unknown; this reader knows none and zstd",
                        (int)meta->codec);
        if (meta->dict_id != 0 && meta->codec != TP_CODEC_ZSTD)
            return fail(r, TP_ERR_UNKNOWN_CODEC, "pack names zstd dictionary %" PRIu32 " but codec none; a "
                        "dictionary needs codec zstd", meta->dict_id);
        codec = meta->codec;
    } else {
        codec = len >= 4 && data[0] == 0x28 && data[1] == 0xb5 && data[2] == 0x2f && data[3] == 0xfd
                    ? TP_CODEC_ZSTD
                    : TP_CODEC_NONE;
    }

    if (codec == TP_CODEC_ZSTD) {
        tp_err e = decompress(r, data, len);
        if (e)
            return e;
    } else {
        if (len > r->opts.max_pack_bytes)
            return fail(r, TP_ERR_PACK_TOO_LARGE, "pack of %zu bytes (codec none) is above max_pack_bytes %zu",
                        len, r->opts.max_pack_bytes);
        r->content = data;
        r->len = len;
    }
    r->columns = meta ? meta->format_version >= 2 : r->len > 0 && r->content[0] == 0x00;
    if (r->columns)
        return open_columns(r, codec);

    r->meta.format_version = 1;
    r->meta.layout = TP_LAYOUT_ROWS;
    r->meta.codec = codec;
    r->meta.schema_version = TP_SCHEMA_VERSION;
    r->meta.content_size = r->len;
    tp_err e = count_rows(r);
    if (e)
        return e;
    r->open = 1;
    return TP_OK;
}

/* One record at r->pos into *out, without moving; *next is where the following record starts. */
static inline tp_err decode_at(tp_pack_reader *r, tp_record *out, size_t *next)
{
    const uint8_t *p = r->content + r->pos;
    size_t avail = r->len - r->pos;
    uint64_t n;
    size_t used;
    if (*p < 0x80) {
        n = *p;
        used = 1;
    } else {
        tp_err e = tp_varint_decode(p, avail, &n, &used);
        if (e)
            return fail(r, e, "record %" PRIu32 " at content offset %zu: length prefix %s", r->index, r->pos,
                        e == TP_ERR_TRUNCATED ? "cut short by the end of the pack" : "is not a valid varint");
    }
    if (n > r->opts.max_record_bytes)
        return fail(r, TP_ERR_RECORD_TOO_LARGE,
                    "record %" PRIu32 " at content offset %zu: length prefix %" PRIu64
                    " above max_record_bytes %zu", r->index, r->pos, n, r->opts.max_record_bytes);
    if (n > avail - used)
        return fail(r, TP_ERR_TRUNCATED,
                    "record %" PRIu32 " at content offset %zu: length prefix %" PRIu64
                    " runs past the end of the pack (%zu bytes left)", r->index, r->pos, n, avail - used);
    tp_err e = tp_record_decode(p + used, (size_t)n, out);
    if (e)
        return fail(r, e, "record %" PRIu32 " at content offset %zu (%" PRIu64 " bytes): %s", r->index, r->pos,
                    n, tp_strerror(e));
    if (r->index == 0) {
        if (r->have_expect && r->expect.vehicle_id != 0 && out->vehicle_id != r->expect.vehicle_id)
            return fail(r, TP_ERR_CORRUPT,
                        "record 0 at content offset 0: vehicle_id %" PRIu64 " differs from the pack's %" PRIu64,
                        out->vehicle_id, r->expect.vehicle_id);
    } else if (out->vehicle_id != r->meta.vehicle_id) {
        return fail(r, TP_ERR_CORRUPT,
                    "record %" PRIu32 " at content offset %zu: vehicle_id %" PRIu64
                    " differs from the pack's %" PRIu64 " (a pack holds one vehicle)",
                    r->index, r->pos, out->vehicle_id, r->meta.vehicle_id);
    }
    *next = r->pos + used + (size_t)n;
    return TP_OK;
}

/* Called when the content is exhausted: checks the count against the headers. */
static tp_err at_end(tp_pack_reader *r)
{
    if (r->index == 0)
        return fail(r, TP_ERR_CORRUPT, "pack holds no records (its content is empty); a pack holds at least one");
    r->meta.record_count = r->index;
    if (r->have_expect && r->expect.record_count != r->index)
        return fail(r, TP_ERR_COUNT_MISMATCH, "pack holds %" PRIu32 " records but its metadata says %" PRIu32,
                    r->index, r->expect.record_count);
    return TP_ERR_END;
}

static tp_err too_many(tp_pack_reader *r)
{
    return fail(r, TP_ERR_COUNT_MISMATCH,
                "record %" PRIu32 " at content offset %zu is beyond the %" PRIu32 " records the metadata says",
                r->index, r->pos, r->expect.record_count);
}

tp_err tp_pack_reader_next(tp_pack_reader *r, tp_record *out)
{
    if (!r || !out)
        return TP_ERR_INVALID_ARG;
    if (!r->open)
        return fail(r, TP_ERR_INVALID_ARG, "no pack is open: tp_pack_reader_open failed or was not called");
    if (r->columns)
        return next_columns(r, out);
    if (r->pos >= r->len)
        return at_end(r);
    if (r->have_expect && r->index >= r->expect.record_count)
        return too_many(r);
    if (r->index == UINT32_MAX)
        return fail(r, TP_ERR_CORRUPT, "pack holds more than %" PRIu32 " records", UINT32_MAX);
    size_t next;
    tp_err e = decode_at(r, out, &next);
    if (e)
        return e;
    if (r->index == 0)
        r->meta.vehicle_id = out->vehicle_id;
    r->pos = next;
    r->index++;
    return TP_OK;
}

tp_err tp_pack_reader_read_all(tp_pack_reader *r, tp_row_batch *rows, int32_t partition, int64_t offset)
{
    if (!r || !rows)
        return TP_ERR_INVALID_ARG;
    if (!r->open)
        return fail(r, TP_ERR_INVALID_ARG, "no pack is open: tp_pack_reader_open failed or was not called");
    if (r->columns)
        return read_all_columns(r, rows, partition, offset);
    size_t start_count = rows->count, start_pos = r->pos;
    uint32_t start_index = r->index;
    uint64_t start_vehicle = r->meta.vehicle_id;
    /* meta.record_count was counted from the content at open (records before a malformed prefix, plus one). */
    if (r->meta.record_count >= r->index && rows->capacity - rows->count < r->meta.record_count - r->index)
        return fail(r, TP_ERR_FULL, "row batch has room for %zu rows, the pack holds %" PRIu32 " more",
                    rows->capacity - rows->count, r->meta.record_count - r->index);
    /* Column pointers in locals: a store into a uint64_t column could alias rows->count (size_t), which would make
     * the compiler reload every pointer for every row. */
    uint64_t *c_vehicle = rows->vehicle_id, *c_seq = rows->seq;
    int64_t *c_sampled = rows->sampled_at_ms, *c_offset = rows->kafka_offset;
    double *c_lat = rows->latitude, *c_lon = rows->longitude;
    float *c_speed = rows->speed_kmh, *c_heading = rows->heading_deg, *c_accuracy = rows->accuracy_m;
    int32_t *c_meter = rows->meter_status, *c_partition = rows->kafka_partition;
    size_t i = rows->count, cap = rows->capacity;
    tp_err e = TP_OK;
    while (r->pos < r->len) {
        if (r->have_expect && r->index >= r->expect.record_count) {
            e = too_many(r);
            break;
        }
        if (i >= cap || r->index == UINT32_MAX) {
            e = i >= cap ? fail(r, TP_ERR_FULL, "row batch of %zu rows is full before the pack's end "
                                                           "(record %" PRIu32 ")", rows->capacity, r->index)
                                    : fail(r, TP_ERR_CORRUPT, "pack holds more than %" PRIu32 " records",
                                           UINT32_MAX);
            break;
        }
        tp_record rec;
        size_t next;
        if ((e = decode_at(r, &rec, &next)))
            break;
        if (r->index == 0)
            r->meta.vehicle_id = rec.vehicle_id;
        c_vehicle[i] = rec.vehicle_id;
        c_sampled[i] = rec.sampled_at_ms;
        c_seq[i] = rec.seq;
        c_lat[i] = rec.latitude;
        c_lon[i] = rec.longitude;
        c_speed[i] = rec.speed_kmh;
        c_heading[i] = rec.heading_deg;
        c_accuracy[i] = rec.accuracy_m;
        c_meter[i] = rec.meter_status;
        c_partition[i] = partition;
        c_offset[i] = offset;
        i++;
        r->pos = next;
        r->index++;
    }
    if (!e) {
        e = at_end(r);
        if (e == TP_ERR_END) {
            rows->count = i;
            return TP_OK;
        }
    }
    rows->count = start_count;
    if (e == TP_ERR_FULL) { /* nothing consumed: the caller can drain the batch and call again */
        r->pos = start_pos;
        r->index = start_index;
        r->meta.vehicle_id = start_vehicle;
    }
    return e;
}

const tp_pack_meta *tp_pack_reader_meta(const tp_pack_reader *r)
{
    return r ? &r->meta : NULL;
}

const char *tp_pack_reader_error_detail(const tp_pack_reader *r)
{
    if (!r)
        return "no reader";
    return r->detail[0] ? r->detail : "no error";
}

tp_err tp_pack_frame_size(const uint8_t *data, size_t len, size_t *frame_size)
{
    if (!frame_size || (!data && len))
        return TP_ERR_INVALID_ARG;
    if (len < 4)
        return TP_ERR_TRUNCATED;
    if (!(data[0] == 0x28 && data[1] == 0xb5 && data[2] == 0x2f && data[3] == 0xfd))
        return TP_ERR_CORRUPT;
    size_t n = ZSTD_findFrameCompressedSize(data, len);
    if (ZSTD_isError(n))
        return ZSTD_getErrorCode(n) == ZSTD_error_srcSize_wrong ? TP_ERR_TRUNCATED : TP_ERR_CORRUPT;
    *frame_size = n;
    return TP_OK;
}
