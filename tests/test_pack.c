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

int main(void)
{
    roundtrip(TP_CODEC_ZSTD, 1, 1);
    roundtrip(TP_CODEC_ZSTD, 3, 100);
    roundtrip(TP_CODEC_ZSTD, 19, 2000);
    roundtrip(TP_CODEC_NONE, 0, 100);
    roundtrip(TP_CODEC_ZSTD, 3, 100000);
    return check_exit();
}
