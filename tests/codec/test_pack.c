/* Pack writer and reader: round trips (levels, codec none, sizes) and every hostile-input error path. */
#include <stdlib.h>
#include <zstd.h>

#include "check.h"
#include "telepack/pack.h"
#include "telepack/varint.h"

static tp_record make(uint64_t vehicle, uint64_t i)
{
    tp_record r = {.vehicle_id = vehicle, .sampled_at_ms = 1700000000000 + (int64_t)i * 1000, .seq = i + 1,
                   .latitude = 52.5 + (double)(i % 1000) * 1e-6, .longitude = 13.4 - (double)(i % 777) * 1e-6,
                   .speed_kmh = (float)(i % 120), .heading_deg = (float)(i % 360), .accuracy_m = 3.0f,
                   .meter_status = (int32_t)(i % 5)};
    return r;
}

static int same(const tp_record *a, const tp_record *b)
{
    return a->vehicle_id == b->vehicle_id && a->sampled_at_ms == b->sampled_at_ms && a->seq == b->seq &&
           a->latitude == b->latitude && a->longitude == b->longitude && a->speed_kmh == b->speed_kmh &&
           a->heading_deg == b->heading_deg && a->accuracy_m == b->accuracy_m && a->meter_status == b->meter_status;
}

/* Writes n records of one vehicle into a malloc'd pack. */
static uint8_t *write_pack(tp_codec codec, int level, size_t n, size_t *len, tp_pack_meta *meta)
{
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    CHECK_INT(o.layout, TP_LAYOUT_COLUMNS); /* the library's default is the commands' default */
    o.layout = TP_LAYOUT_ROWS;              /* this file tests pbpack v1; test_colpack.c tests v2 */
    o.codec = codec;
    o.level = level;
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_OK);
    if (!w)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        tp_record r = make(77, i);
        CHECK_ERR(tp_pack_writer_add(w, &r), TP_OK);
    }
    CHECK_INT(tp_pack_writer_count(w), n);
    size_t cap = tp_pack_writer_bound(w);
    uint8_t *dst = malloc(cap ? cap : 1);
    CHECK_ERR(tp_pack_writer_finish(w, dst, cap, len, meta), TP_OK);
    CHECK_INT(tp_pack_writer_count(w), 0);
    tp_pack_writer_free(w);
    return dst;
}

static void roundtrip(tp_codec codec, int level, size_t n)
{
    size_t len = 0;
    tp_pack_meta meta;
    uint8_t *pack = write_pack(codec, level, n, &len, &meta);
    CHECK_INT(meta.record_count, n);
    CHECK_INT(meta.format_version, 1);
    CHECK_INT(meta.layout, TP_LAYOUT_ROWS);
    CHECK_INT(meta.codec, codec);
    CHECK_INT(meta.vehicle_id, 77);
    tp_pack_reader *r = NULL;
    CHECK_ERR(tp_pack_reader_new(NULL, &r), TP_OK);

    /* next(), with and without meta */
    for (int with_meta = 0; with_meta < 2; with_meta++) {
        CHECK_ERR(tp_pack_reader_open(r, with_meta ? &meta : NULL, pack, len), TP_OK);
        CHECK_INT(tp_pack_reader_meta(r)->codec, codec);
        CHECK_INT(tp_pack_reader_meta(r)->content_size, meta.content_size);
        tp_record got;
        size_t i = 0;
        tp_err e;
        while ((e = tp_pack_reader_next(r, &got)) == TP_OK) {
            tp_record want = make(77, i++);
            if (!same(&got, &want)) {
                CHECK(same(&got, &want));
                break;
            }
        }
        CHECK_ERR(e, TP_ERR_END);
        CHECK_INT(i, n);
        CHECK_INT(tp_pack_reader_meta(r)->record_count, n);
        CHECK_INT(tp_pack_reader_meta(r)->vehicle_id, 77);
    }

    /* read_all into a batch that already holds a row */
    tp_row_batch *b = NULL;
    CHECK_ERR(tp_row_batch_new(n + 1, &b), TP_OK);
    tp_record first = make(5, 0);
    CHECK_ERR(tp_row_batch_append(b, &first, -1, -1), TP_OK);
    CHECK_ERR(tp_pack_reader_open(r, &meta, pack, len), TP_OK);
    CHECK_ERR(tp_pack_reader_read_all(r, b, 3, 12345), TP_OK);
    CHECK_INT(b->count, n + 1);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        tp_record got, want = make(77, i);
        tp_row_batch_get(b, i + 1, &got);
        bad += !same(&got, &want) || b->kafka_partition[i + 1] != 3 || b->kafka_offset[i + 1] != 12345;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(b->kafka_partition[0], -1);
    tp_row_batch_free(b);
    tp_pack_reader_free(r);
    free(pack);
}

/* The detail sentence mentions `needle`. */
#define CHECK_DETAIL(r, needle)                                                                             \
    do {                                                                                                    \
        const char *d_ = tp_pack_reader_error_detail(r);                                                    \
        CHECK(strstr(d_, needle) != NULL);                                                                  \
        if (!strstr(d_, needle))                                                                            \
            fprintf(stderr, "  detail was: %s\n", d_);                                                      \
    } while (0)

/* Opens data with meta (may be NULL) using small limits and drains it with next(); returns the first error. */
static tp_err drain(tp_pack_reader *r, const tp_pack_meta *meta, const uint8_t *data, size_t len)
{
    tp_err e = tp_pack_reader_open(r, meta, data, len);
    if (e)
        return e;
    tp_record rec;
    while ((e = tp_pack_reader_next(r, &rec)) == TP_OK) {
    }
    return e == TP_ERR_END ? TP_OK : e;
}

static tp_pack_meta none_meta(uint32_t count)
{
    tp_pack_meta m = {.format_version = 1, .layout = TP_LAYOUT_ROWS, .codec = TP_CODEC_NONE,
                      .schema_version = TP_SCHEMA_VERSION, .record_count = count};
    return m;
}

static void reader_errors(void)
{
    tp_pack_reader_opts o;
    tp_pack_reader_opts_init(&o);
    o.max_record_bytes = 64;
    o.max_pack_bytes = 1 << 20;
    tp_pack_reader *r = NULL;
    CHECK_ERR(tp_pack_reader_new(&o, &r), TP_OK);
    size_t len;
    tp_pack_meta meta;
    uint8_t *pack = write_pack(TP_CODEC_ZSTD, 3, 50, &len, &meta);

    /* Trailing garbage after the frame. */
    uint8_t *big = malloc(len + 3);
    memcpy(big, pack, len);
    memcpy(big + len, "xyz", 3);
    CHECK_ERR(tp_pack_reader_open(r, &meta, big, len + 3), TP_ERR_TRAILING_GARBAGE);
    CHECK_DETAIL(r, "3 bytes follow the zstd frame");
    /* Two frames back to back are not one pack either. */
    uint8_t *twice = malloc(2 * len);
    memcpy(twice, pack, len);
    memcpy(twice + len, pack, len);
    CHECK_ERR(tp_pack_reader_open(r, &meta, twice, 2 * len), TP_ERR_TRAILING_GARBAGE);
    free(twice);

    /* Truncated anywhere: copied to the heap so ASan sees any overread. */
    int wrong = 0;
    for (size_t k = 0; k < len; k++) {
        uint8_t *cut = malloc(k ? k : 1);
        memcpy(cut, pack, k);
        tp_err e = tp_pack_reader_open(r, &meta, cut, k);
        wrong += e != TP_ERR_TRUNCATED && !(k >= 4 && k < 6 && e == TP_ERR_CORRUPT);
        if (e != TP_ERR_TRUNCATED && !(k >= 4 && k < 6 && e == TP_ERR_CORRUPT))
            fprintf(stderr, "cut at %zu: %s (%s)\n", k, tp_strerror(e), tp_pack_reader_error_detail(r));
        free(cut);
    }
    CHECK_INT(wrong, 0);

    /* Checksum: flip a bit of the frame's 4-byte XXH64 checksum at the end. */
    memcpy(big, pack, len);
    big[len - 1] ^= 0x01;
    CHECK_ERR(tp_pack_reader_open(r, &meta, big, len), TP_ERR_CHECKSUM);
    CHECK_DETAIL(r, "checksum");
    /* A flipped bit inside the compressed data is caught one way or another, or (rarely: a bit zstd's entropy
     * decoder does not use) yields the very same content, which the checksum then vouches for. */
    int altered = 0, caught = 0;
    tp_row_batch *check_rows = NULL;
    CHECK_ERR(tp_row_batch_new(50, &check_rows), TP_OK);
    for (size_t k = 6; k + 4 < len; k++) {
        memcpy(big, pack, len);
        big[k] ^= 0x10;
        check_rows->count = 0;
        if (tp_pack_reader_open(r, &meta, big, len) || tp_pack_reader_read_all(r, check_rows, 0, 0)) {
            caught++;
            continue;
        }
        for (size_t i = 0; i < check_rows->count; i++) {
            tp_record got, want = make(77, i);
            tp_row_batch_get(check_rows, i, &got);
            altered += !same(&got, &want);
        }
    }
    CHECK_INT(altered, 0);
    CHECK(caught > 0);
    tp_row_batch_free(check_rows);

    /* A frame whose declared content size is wrong: the single-segment frame of a 2-record pack declares its size
     * in one byte (offset 5); one less or one more than the truth is corrupt either way. */
    {
        size_t l2;
        tp_pack_meta m2;
        uint8_t *p2 = write_pack(TP_CODEC_ZSTD, 3, 2, &l2, &m2);
        CHECK_INT(p2[4] & 0xe0, 0x20); /* single segment, 1-byte content size */
        CHECK_INT(p2[5], m2.content_size);
        p2[5]--;
        CHECK_ERR(tp_pack_reader_open(r, NULL, p2, l2), TP_ERR_CORRUPT);
        p2[5] += 2;
        CHECK_ERR(tp_pack_reader_open(r, NULL, p2, l2), TP_ERR_CORRUPT);
        free(p2);
    }

    /* Not a zstd frame although the metadata says zstd; a skippable frame is not a pack either. */
    CHECK_ERR(tp_pack_reader_open(r, &meta, (const uint8_t *)"hello world", 11), TP_ERR_CORRUPT);
    CHECK_DETAIL(r, "magic");
    const uint8_t skippable[] = {0x50, 0x2a, 0x4d, 0x18, 0x00, 0x00, 0x00, 0x00};
    CHECK_ERR(tp_pack_reader_open(r, &meta, skippable, sizeof skippable), TP_ERR_CORRUPT);

    /* Metadata the reader does not know. */
    tp_pack_meta m = meta;
    m.codec = (tp_codec)7;
    CHECK_ERR(tp_pack_reader_open(r, &m, pack, len), TP_ERR_UNKNOWN_CODEC);
    CHECK_DETAIL(r, "codec 7");
    m = meta;
    m.format_version = 3;
    CHECK_ERR(tp_pack_reader_open(r, &m, pack, len), TP_ERR_UNKNOWN_VERSION);
    CHECK_DETAIL(r, "version 3");
    m = meta;
    m.format_version = 2;
    m.layout = TP_LAYOUT_COLUMNS;
    CHECK_ERR(tp_pack_reader_open(r, &m, pack, len), TP_ERR_UNKNOWN_VERSION);
    m = meta;
    m.layout = (tp_layout)9;
    CHECK_ERR(tp_pack_reader_open(r, &m, pack, len), TP_ERR_UNKNOWN_VERSION);
    CHECK_DETAIL(r, "layout 9");
    m = meta;
    m.schema_version = 2;
    CHECK_ERR(tp_pack_reader_open(r, &m, pack, len), TP_ERR_UNKNOWN_VERSION);
    m = meta;
    m.dict_id = 12; /* the metadata names a dictionary its frame does not (tests/codec/test_dict.c: the rest) */
    CHECK_ERR(tp_pack_reader_open(r, &m, pack, len), TP_ERR_CORRUPT);
    CHECK_DETAIL(r, "dictionary 12");

    /* Record count differs from the metadata: fewer and more records than it says. The length prefixes are
     * counted when the pack is opened, so the open fails before anything is sized from the header. */
    m = meta;
    m.record_count = 51;
    CHECK_ERR(drain(r, &m, pack, len), TP_ERR_COUNT_MISMATCH);
    CHECK_DETAIL(r, "holds 50 records but its metadata says 51");
    m.record_count = 49;
    CHECK_ERR(drain(r, &m, pack, len), TP_ERR_COUNT_MISMATCH);
    CHECK_DETAIL(r, "holds 50 records but its metadata says 49");
    tp_row_batch *rows = NULL;
    CHECK_ERR(tp_row_batch_new(100, &rows), TP_OK);
    CHECK_ERR(tp_pack_reader_open(r, &m, pack, len), TP_ERR_COUNT_MISMATCH);
    CHECK_ERR(tp_pack_reader_read_all(r, rows, 0, 0), TP_ERR_INVALID_ARG);
    CHECK_INT(rows->count, 0);
    m.record_count = 1000000000; /* a header count far above the content: refused at open, nothing sized */
    CHECK_ERR(tp_pack_reader_open(r, &m, pack, len), TP_ERR_COUNT_MISMATCH);
    CHECK_DETAIL(r, "holds 50 records but its metadata says 1000000000");
    /* Without metadata the count comes from the content alone, before any record is decoded. */
    CHECK_ERR(tp_pack_reader_open(r, NULL, pack, len), TP_OK);
    CHECK_INT(tp_pack_reader_meta(r)->record_count, 50);

    /* read_all: a batch without room appends nothing, with or without a count to check against; after making
     * room the same pack reads whole. */
    tp_row_batch *small = NULL;
    CHECK_ERR(tp_row_batch_new(49, &small), TP_OK);
    CHECK_ERR(tp_pack_reader_open(r, &meta, pack, len), TP_OK);
    CHECK_ERR(tp_pack_reader_read_all(r, small, 0, 0), TP_ERR_FULL);
    CHECK_INT(small->count, 0);
    CHECK_ERR(tp_pack_reader_open(r, NULL, pack, len), TP_OK);
    CHECK_ERR(tp_pack_reader_read_all(r, small, 0, 0), TP_ERR_FULL);
    CHECK_INT(small->count, 0);
    CHECK_ERR(tp_row_batch_reserve(small, 50), TP_OK);
    CHECK_ERR(tp_pack_reader_read_all(r, small, 0, 0), TP_OK);
    CHECK_INT(small->count, 50);
    tp_row_batch_free(small);

    /* Codec none: crafted contents. */
    uint8_t c[64];
    /* length prefix past the end */
    const uint8_t past[] = {0x02, 0x08, 0x01, 0x05, 0x08, 0x01};
    tp_pack_meta nm = none_meta(2);
    CHECK_ERR(drain(r, &nm, past, sizeof past), TP_ERR_TRUNCATED);
    CHECK_DETAIL(r, "record 1 at content offset 3: length prefix 5 runs past the end");
    /* length prefix above max_record_bytes (64 here) */
    const uint8_t huge[] = {0x02, 0x08, 0x01, 0xe8, 0x07};
    CHECK_ERR(drain(r, &nm, huge, sizeof huge), TP_ERR_RECORD_TOO_LARGE);
    CHECK_DETAIL(r, "record 1 at content offset 3: length prefix 1000 above max_record_bytes 64");
    /* length prefix cut short, and one that is not a varint */
    const uint8_t cutlen[] = {0x02, 0x08, 0x01, 0x80};
    CHECK_ERR(drain(r, &nm, cutlen, sizeof cutlen), TP_ERR_TRUNCATED);
    memset(c, 0xff, sizeof c); /* after the first record: 11 bytes of 0xff, a varint that never ends */
    c[0] = 0x02, c[1] = 0x08, c[2] = 0x01;
    CHECK_ERR(drain(r, &nm, c, 14), TP_ERR_VARINT_OVERFLOW);
    /* a record that is not a VehicleRecord, reported with its index and offset; next() stays on it */
    const uint8_t notrec[] = {0x02, 0x08, 0x01, 0x02, 0x0a, 0x00};
    CHECK_ERR(drain(r, &nm, notrec, sizeof notrec), TP_ERR_DECODE);
    CHECK_DETAIL(r, "record 1 at content offset 3");
    tp_record rec;
    CHECK_ERR(tp_pack_reader_next(r, &rec), TP_ERR_DECODE);
    CHECK_ERR(tp_pack_reader_open(r, &nm, notrec, sizeof notrec), TP_OK);
    rows->count = 7;
    CHECK_ERR(tp_pack_reader_read_all(r, rows, 0, 0), TP_ERR_DECODE);
    CHECK_INT(rows->count, 7);
    /* two vehicles in one pack */
    const uint8_t two[] = {0x02, 0x08, 0x01, 0x02, 0x08, 0x02};
    CHECK_ERR(drain(r, &nm, two, sizeof two), TP_ERR_CORRUPT);
    CHECK_DETAIL(r, "vehicle_id 2 differs");
    nm.vehicle_id = 9; /* the Kafka key said vehicle 9 */
    CHECK_ERR(drain(r, &nm, two, sizeof two), TP_ERR_CORRUPT);
    nm.vehicle_id = 0;
    /* an empty record is a valid (all-zero) record when the metadata says v1 ... */
    const uint8_t empty_first[] = {0x00, 0x00};
    CHECK_ERR(drain(r, &nm, empty_first, sizeof empty_first), TP_OK);
    /* ... but without metadata a leading 00 marks layout columns (v2) */
    CHECK_ERR(tp_pack_reader_open(r, NULL, empty_first, sizeof empty_first), TP_ERR_UNKNOWN_VERSION);
    CHECK_DETAIL(r, "version 2");
    /* an empty pack, as codec none and as a zstd frame of nothing */
    nm.record_count = 0;
    CHECK_ERR(drain(r, &nm, empty_first, 0), TP_ERR_CORRUPT);
    CHECK_DETAIL(r, "no records");
    uint8_t zframe[64];
    size_t zlen = ZSTD_compress(zframe, sizeof zframe, "", 0, 3);
    CHECK_ERR(drain(r, NULL, zframe, zlen), TP_ERR_CORRUPT);
    CHECK_ERR(tp_pack_reader_open(r, NULL, zframe, zlen), TP_OK);
    CHECK_ERR(tp_pack_reader_read_all(r, rows, 0, 0), TP_ERR_CORRUPT);
    nm.record_count = 2;
    /* next() and read_all after a failed open */
    CHECK_ERR(tp_pack_reader_open(r, NULL, (const uint8_t *)"\x00", 1), TP_ERR_UNKNOWN_VERSION);
    CHECK_ERR(tp_pack_reader_read_all(r, rows, 0, 0), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_pack_reader_next(r, &rec), TP_ERR_INVALID_ARG);
    /* codec none above max_pack_bytes */
    uint8_t *large = calloc(1, (1 << 20) + 1);
    CHECK_ERR(tp_pack_reader_open(r, &nm, large, (1 << 20) + 1), TP_ERR_PACK_TOO_LARGE);
    free(large);

    free(big);
    free(pack);
    tp_row_batch_free(rows);
    tp_pack_reader_free(r);
}

/* Bombs: a frame whose declared size is above the cap, and frames of unknown size that grow past it. */
static void size_caps(void)
{
    size_t n = 300000;
    uint8_t *content = malloc(n);
    for (size_t i = 0; i < n; i += 2) {
        content[i] = 0x01; /* 1-byte records holding... not valid, but the cap trips first */
        content[i + 1] = 0x00;
    }
    /* Declared size. */
    size_t cap = ZSTD_compressBound(n);
    uint8_t *frame = malloc(cap);
    size_t flen = ZSTD_compress(frame, cap, content, n, 1);
    CHECK(!ZSTD_isError(flen));
    tp_pack_reader_opts o;
    tp_pack_reader_opts_init(&o);
    o.max_pack_bytes = 100000;
    tp_pack_reader *r = NULL;
    CHECK_ERR(tp_pack_reader_new(&o, &r), TP_OK);
    CHECK_ERR(tp_pack_reader_open(r, NULL, frame, flen), TP_ERR_PACK_TOO_LARGE);
    CHECK_DETAIL(r, "declares 300000 content bytes");

    /* Unknown size (streamed without a pledged size): the output is capped while decompressing. */
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, 16);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
    ZSTD_outBuffer out = {frame, cap, 0};
    ZSTD_inBuffer in = {content, n, 0};
    size_t left;
    do {
        left = ZSTD_compressStream2(cctx, &out, &in, ZSTD_e_end);
        CHECK(!ZSTD_isError(left));
    } while (left > 0 && !ZSTD_isError(left));
    CHECK(ZSTD_getFrameContentSize(frame, out.pos) == ZSTD_CONTENTSIZE_UNKNOWN);
    CHECK_ERR(tp_pack_reader_open(r, NULL, frame, out.pos), TP_ERR_PACK_TOO_LARGE);
    CHECK_DETAIL(r, "exceeds max_pack_bytes 100000");
    /* The same frame under a cap exactly its size decompresses (the buffer grows from its first guess), but its
     * 150,000 two-byte records are above the default record cap (max_pack_bytes / 16 = 18,750): a content of tiny
     * records must not decode into 68-byte rows without bound. */
    tp_pack_reader_free(r);
    o.max_pack_bytes = n;
    CHECK_ERR(tp_pack_reader_new(&o, &r), TP_OK);
    CHECK_ERR(tp_pack_reader_open(r, NULL, frame, out.pos), TP_ERR_PACK_TOO_LARGE);
    CHECK_DETAIL(r, "more than 18750 records (max_pack_records = max_pack_bytes / 16)");
    tp_pack_reader_free(r);
    o.max_pack_records = n / 2;
    CHECK_ERR(tp_pack_reader_new(&o, &r), TP_OK);
    CHECK_ERR(tp_pack_reader_open(r, NULL, frame, out.pos), TP_OK);
    CHECK_INT(tp_pack_reader_meta(r)->content_size, n);
    CHECK_INT(tp_pack_reader_meta(r)->record_count, n / 2);
    tp_pack_reader_free(r);
    o.max_pack_records = 0;
    /* A window far larger than the cap is refused before zstd allocates it. */
    o.max_pack_bytes = 4096;
    CHECK_ERR(tp_pack_reader_new(&o, &r), TP_OK);
    CHECK_ERR(tp_pack_reader_open(r, NULL, frame, out.pos), TP_ERR_PACK_TOO_LARGE);
    tp_pack_reader_free(r);
    ZSTD_freeCCtx(cctx);
    free(frame);
    free(content);
}

static void writer_cases(void)
{
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    o.layout = TP_LAYOUT_ROWS;
    tp_pack_writer *w = NULL;
    o.level = 99;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_ERR_INVALID_ARG);
    o.level = 3;
    o.layout = (tp_layout)3;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_ERR_UNKNOWN_VERSION);
    o.layout = TP_LAYOUT_ROWS;
    o.codec = (tp_codec)5;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_ERR_UNKNOWN_CODEC);
    o.codec = TP_CODEC_ZSTD;
    o.max_pack_bytes = 0;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_pack_writer_new(NULL, NULL), TP_ERR_INVALID_ARG);
    tp_pack_reader_opts ro;
    tp_pack_reader_opts_init(&ro);
    ro.max_record_bytes = 0;
    tp_pack_reader *rd = NULL;
    CHECK_ERR(tp_pack_reader_new(&ro, &rd), TP_ERR_INVALID_ARG);
    CHECK(rd == NULL);
    o.max_pack_bytes = 100;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_OK);

    uint8_t dst[4096];
    size_t len;
    CHECK_ERR(tp_pack_writer_finish(w, dst, sizeof dst, &len, NULL), TP_ERR_INVALID_ARG); /* empty */
    tp_record zero = {0};
    tp_record a = make(1, 0), b = make(2, 0);
    CHECK_ERR(tp_pack_writer_add(w, &a), TP_OK);
    CHECK_ERR(tp_pack_writer_add(w, &b), TP_ERR_INVALID_ARG); /* another vehicle */
    zero.vehicle_id = 1;
    CHECK_ERR(tp_pack_writer_add(w, &zero), TP_OK);
    size_t before = tp_pack_writer_content_size(w);
    tp_err e;
    int added = 0;
    while ((e = tp_pack_writer_add(w, &a)) == TP_OK)
        added++;
    CHECK_ERR(e, TP_ERR_FULL);
    CHECK(tp_pack_writer_content_size(w) <= 100);
    CHECK(tp_pack_writer_content_size(w) > before);
    uint32_t count = tp_pack_writer_count(w);
    CHECK_INT(count, 2 + added);
    /* Too small a destination: TP_ERR_FULL and the pack stays open. */
    CHECK_ERR(tp_pack_writer_finish(w, dst, 8, &len, NULL), TP_ERR_FULL);
    CHECK_INT(tp_pack_writer_count(w), count);
    tp_pack_meta meta;
    CHECK(tp_pack_writer_bound(w) <= sizeof dst);
    CHECK_ERR(tp_pack_writer_finish(w, dst, sizeof dst, &len, &meta), TP_OK);
    CHECK_INT(meta.record_count, count);
    /* The frame has content size and checksum set, as docs/FORMAT.md says. */
    CHECK(ZSTD_getFrameContentSize(dst, len) == meta.content_size);
    CHECK(dst[4] & 0x04); /* Frame_Header_Descriptor: Content_Checksum_flag */
    /* reset discards an open pack */
    CHECK_ERR(tp_pack_writer_add(w, &b), TP_OK);
    tp_pack_writer_reset(w);
    CHECK_INT(tp_pack_writer_count(w), 0);
    CHECK_ERR(tp_pack_writer_add(w, &a), TP_OK); /* a new vehicle is fine after reset */
    tp_pack_writer_free(w);
    tp_pack_writer_free(NULL);

    /* codec none: finish copies the content; too small a destination is TP_ERR_FULL. */
    o.codec = TP_CODEC_NONE;
    o.max_pack_bytes = TP_DEFAULT_MAX_PACK_BYTES;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_OK);
    CHECK_ERR(tp_pack_writer_add(w, &a), TP_OK);
    CHECK_INT(tp_pack_writer_bound(w), tp_pack_writer_content_size(w));
    CHECK_ERR(tp_pack_writer_finish(w, dst, 3, &len, NULL), TP_ERR_FULL);
    CHECK_ERR(tp_pack_writer_finish(w, dst, sizeof dst, &len, &meta), TP_OK);
    CHECK_INT(len, meta.content_size);
    CHECK_INT(dst[0], len - 1); /* one length prefix, then the record */
    tp_pack_writer_free(w);
}

/* The column layout bounds a pack by its records' v1 size without encoding them: the same sizes, and the same
 * record refused as full, as the rows layout that writes them (a zero record first, negative and wide values). */
static void layouts_count_alike(void)
{
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    o.max_pack_bytes = 4000;
    tp_pack_writer *rows, *cols;
    o.layout = TP_LAYOUT_ROWS;
    CHECK_ERR(tp_pack_writer_new(&o, &rows), TP_OK);
    o.layout = TP_LAYOUT_COLUMNS;
    CHECK_ERR(tp_pack_writer_new(&o, &cols), TP_OK);
    uint64_t x = 88172645463325252u;
    for (int pack = 0; pack < 20; pack++) {
        tp_err er = TP_OK, ec = TP_OK;
        for (uint64_t i = 0; er == TP_OK; i++) {
            tp_record r = make(pack % 2 ? 7 : 0, i * 7919); /* even packs: vehicle 0, a zero record first */
            if (i == 0 && pack % 2 == 0)
                r = (tp_record){0};
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            switch (x % 6) {
            case 0: r.sampled_at_ms = -(int64_t)(x >> 20); break;
            case 1: r.meter_status = -(int32_t)(x % 1000); break;
            case 2: r.seq = x; break;
            case 3: r.latitude = -0.0, r.speed_kmh = 0; break;
            default: break;
            }
            er = tp_pack_writer_add(rows, &r);
            ec = tp_pack_writer_add(cols, &r);
            CHECK_ERR(ec, er);
            CHECK_INT(tp_pack_writer_content_size(cols), tp_pack_writer_content_size(rows));
        }
        CHECK_ERR(er, TP_ERR_FULL);
        CHECK_INT(tp_pack_writer_count(cols), tp_pack_writer_count(rows));
        CHECK(tp_pack_writer_count(rows) > 40);
        tp_pack_writer_reset(rows);
        tp_pack_writer_reset(cols);
    }
    tp_pack_writer_free(rows);
    tp_pack_writer_free(cols);
}

static void frame_sizes(void)
{
    size_t l1, l2;
    tp_pack_meta m;
    uint8_t *p1 = write_pack(TP_CODEC_ZSTD, 1, 10, &l1, &m);
    uint8_t *p2 = write_pack(TP_CODEC_ZSTD, 3, 300, &l2, &m);
    uint8_t *file = malloc(l1 + l2);
    memcpy(file, p1, l1);
    memcpy(file + l1, p2, l2);
    size_t fs = 0;
    CHECK_ERR(tp_pack_frame_size(file, l1 + l2, &fs), TP_OK);
    CHECK_INT(fs, l1);
    CHECK_ERR(tp_pack_frame_size(file + l1, l2, &fs), TP_OK);
    CHECK_INT(fs, l2);
    CHECK_ERR(tp_pack_frame_size(file + l1, l2 - 1, &fs), TP_ERR_TRUNCATED);
    CHECK_ERR(tp_pack_frame_size(file, 3, &fs), TP_ERR_TRUNCATED);
    CHECK_ERR(tp_pack_frame_size((const uint8_t *)"not zstd", 8, &fs), TP_ERR_CORRUPT);
    CHECK_ERR(tp_pack_frame_size(file, l1, NULL), TP_ERR_INVALID_ARG);
    free(file);
    free(p1);
    free(p2);
}

static void row_batches(void)
{
    tp_row_batch *b = NULL;
    CHECK_ERR(tp_row_batch_new(0, &b), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_row_batch_new(2, &b), TP_OK);
    tp_record a = make(1, 1), got;
    CHECK_ERR(tp_row_batch_append(b, &a, 1, 2), TP_OK);
    CHECK_ERR(tp_row_batch_append(b, &a, 1, 3), TP_OK);
    CHECK_ERR(tp_row_batch_append(b, &a, 1, 4), TP_ERR_FULL);
    CHECK_ERR(tp_row_batch_reserve(b, 1), TP_OK); /* never shrinks */
    CHECK_INT(b->capacity, 2);
    CHECK_ERR(tp_row_batch_reserve(b, 1000), TP_OK);
    CHECK_INT(b->capacity, 1000);
    CHECK_INT(b->count, 2);
    tp_row_batch_get(b, 1, &got);
    CHECK(same(&got, &a));
    CHECK_INT(b->kafka_offset[1], 3);
    tp_row_batch_clear(b);
    CHECK_INT(b->count, 0);
    tp_row_batch_free(b);
    tp_row_batch_free(NULL);
}

/* An all-zero record (vehicle 0) opening a rows pack: taken (one such record from a gateway used to stop the
 * ingest worker), written as 02 08 00 so the content does not start with the v2 mark, and read back as itself,
 * with and without metadata. Then a later all-zero record stays an empty message, as before. */
static void zero_record_first(tp_codec codec)
{
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    o.layout = TP_LAYOUT_ROWS;
    o.codec = codec;
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_OK);
    tp_record zero = {0}, other = make(0, 5);
    CHECK_ERR(tp_pack_writer_add(w, &zero), TP_OK);
    CHECK_ERR(tp_pack_writer_add(w, &zero), TP_OK);
    CHECK_ERR(tp_pack_writer_add(w, &other), TP_OK);
    uint8_t dst[1024];
    size_t len = 0;
    tp_pack_meta meta;
    CHECK_ERR(tp_pack_writer_finish(w, dst, sizeof dst, &len, &meta), TP_OK);
    CHECK_INT(meta.record_count, 3);
    CHECK_INT(meta.format_version, 1);
    if (codec == TP_CODEC_NONE) {
        CHECK_INT(dst[0], 0x02);
        CHECK_INT(dst[1], 0x08);
        CHECK_INT(dst[2], 0x00);
        CHECK_INT(dst[3], 0x00); /* the second zero record: an empty message */
    }
    tp_pack_reader *r = NULL;
    CHECK_ERR(tp_pack_reader_new(NULL, &r), TP_OK);
    for (int with_meta = 0; with_meta < 2; with_meta++) {
        CHECK_ERR(tp_pack_reader_open(r, with_meta ? &meta : NULL, dst, len), TP_OK);
        CHECK_INT(tp_pack_reader_meta(r)->format_version, 1);
        tp_record got;
        CHECK_ERR(tp_pack_reader_next(r, &got), TP_OK);
        CHECK(same(&got, &zero));
        CHECK_ERR(tp_pack_reader_next(r, &got), TP_OK);
        CHECK(same(&got, &zero));
        CHECK_ERR(tp_pack_reader_next(r, &got), TP_OK);
        CHECK(same(&got, &other));
        CHECK_ERR(tp_pack_reader_next(r, &got), TP_ERR_END);
    }
    /* A pack of the zero record alone. */
    CHECK_ERR(tp_pack_writer_add(w, &zero), TP_OK);
    CHECK_ERR(tp_pack_writer_finish(w, dst, sizeof dst, &len, &meta), TP_OK);
    CHECK_ERR(tp_pack_reader_open(r, NULL, dst, len), TP_OK);
    tp_record got;
    CHECK_ERR(tp_pack_reader_next(r, &got), TP_OK);
    CHECK(same(&got, &zero));
    CHECK_ERR(tp_pack_reader_next(r, &got), TP_ERR_END);
    tp_pack_reader_free(r);
    tp_pack_writer_free(w);
}

int main(void)
{
    zero_record_first(TP_CODEC_NONE);
    zero_record_first(TP_CODEC_ZSTD);
    reader_errors();
    size_caps();
    writer_cases();
    layouts_count_alike();
    frame_sizes();
    row_batches();
    roundtrip(TP_CODEC_ZSTD, 1, 1);
    roundtrip(TP_CODEC_ZSTD, 3, 100);
    roundtrip(TP_CODEC_ZSTD, 19, 2000);
    roundtrip(TP_CODEC_NONE, 0, 100);
    roundtrip(TP_CODEC_ZSTD, 3, 100000);
    return check_exit();
}
