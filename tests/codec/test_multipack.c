/* Multi-vehicle column packs (format version 3, docs/FORMAT_V2.md "Version 3"): the writer sorts by (vehicle,
 * time), stable; the reader gives the sorted records back, checks the order, and tells v2 and v3 apart. */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "check.h"
#include "codec/colpack.h"
#include "sim/fleet.h"
#include "telepack/pack.h"

static tp_record rec(uint64_t v, int64_t t, uint64_t seq)
{
    tp_record r = {0};
    r.vehicle_id = v;
    r.sampled_at_ms = t;
    r.seq = seq;
    r.latitude = 35.0 + (double)v * 1e-3;
    r.longitude = 139.0 + (double)seq * 1e-6;
    r.speed_kmh = 10.5f;
    r.meter_status = 2;
    return r;
}

static tp_pack_writer *writer(int multi, tp_codec codec)
{
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    o.layout = TP_LAYOUT_COLUMNS;
    o.multi_vehicle = multi;
    o.codec = codec;
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_OK);
    return w;
}

static int before(const tp_record *a, const tp_record *b)
{
    return a->vehicle_id < b->vehicle_id || (a->vehicle_id == b->vehicle_id && a->sampled_at_ms <= b->sampled_at_ms);
}

/* Records of 50 vehicles over 20 ticks, time-major as a gateway sends them; the pack gives them back sorted by
 * vehicle then time, every record once, both through next() and read_all(). */
static void test_roundtrip_sorted(void)
{
    tp_fleet_opts fo;
    tp_fleet_opts_init(&fo);
    fo.vehicles = 50;
    fo.seconds = 20;
    tp_fleet *f = NULL;
    CHECK_ERR(tp_fleet_new(&fo, &f), TP_OK);
    enum { N = 1000 };
    tp_record *in = calloc(N, sizeof *in), *out = calloc(N, sizeof *out);
    size_t n = 0;
    while (n < N && tp_fleet_next(f, &in[n]) == TP_OK)
        n++;
    tp_fleet_free(f);
    CHECK(n > 900);

    tp_pack_writer *w = writer(1, TP_CODEC_ZSTD);
    for (size_t i = 0; i < n; i++)
        CHECK_ERR(tp_pack_writer_add(w, &in[i]), TP_OK);
    size_t cap = tp_pack_writer_bound(w), len = 0;
    uint8_t *buf = malloc(cap);
    tp_pack_meta meta;
    CHECK_ERR(tp_pack_writer_finish(w, buf, cap, &len, &meta), TP_OK);
    CHECK_INT(meta.format_version, 3);
    CHECK_INT(meta.layout, TP_LAYOUT_COLUMNS);
    CHECK_INT(meta.record_count, n);
    CHECK_INT(meta.vehicle_id, 0);

    tp_pack_reader *r = NULL;
    CHECK_ERR(tp_pack_reader_new(NULL, &r), TP_OK);
    CHECK_ERR(tp_pack_reader_open(r, &meta, buf, len), TP_OK);
    size_t k = 0;
    tp_err e;
    while ((e = tp_pack_reader_next(r, &out[k])) == TP_OK && k < N)
        k++;
    CHECK_ERR(e, TP_ERR_END);
    CHECK_INT(k, n);
    int sorted = 1;
    for (size_t i = 1; i < k; i++)
        sorted &= before(&out[i - 1], &out[i]);
    CHECK(sorted);
    /* the same multiset: every input record is found in the output */
    size_t found = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++)
            if (memcmp(&in[i], &out[j], sizeof in[i]) == 0) {
                found++;
                break;
            }
    CHECK_INT(found, n);
    CHECK_INT(tp_pack_reader_meta(r)->format_version, 3);

    /* without metadata (file form): sniffed as v3 from the content */
    tp_row_batch *rows = NULL;
    CHECK_ERR(tp_row_batch_new(N, &rows), TP_OK);
    CHECK_ERR(tp_pack_reader_open(r, NULL, buf, len), TP_OK);
    CHECK_ERR(tp_pack_reader_read_all(r, rows, 3, 77), TP_OK);
    CHECK_INT(rows->count, n);
    int same = 1;
    for (size_t i = 0; i < n; i++) {
        tp_record x;
        tp_row_batch_get(rows, i, &x);
        same &= memcmp(&x, &out[i], sizeof x) == 0;
    }
    CHECK(same);
    tp_row_batch_free(rows);
    tp_pack_reader_free(r);
    tp_pack_writer_free(w);
    free(buf);
    free(in);
    free(out);
}

/* Equal (vehicle, time) keep their arrival order (stable): told apart by seq. */
static void test_stable(void)
{
    tp_record in[] = {rec(7, 100, 1), rec(3, 100, 2), rec(7, 50, 3), rec(7, 100, 4), rec(3, 100, 5), rec(3, 90, 6)};
    uint64_t want[] = {6, 2, 5, 3, 1, 4};
    tp_pack_writer *w = writer(1, TP_CODEC_NONE);
    for (size_t i = 0; i < 6; i++)
        CHECK_ERR(tp_pack_writer_add(w, &in[i]), TP_OK);
    uint8_t buf[4096];
    size_t len;
    tp_pack_meta meta;
    CHECK_ERR(tp_pack_writer_finish(w, buf, sizeof buf, &len, &meta), TP_OK);
    CHECK_INT(tp_colpack_version(buf, len), 3);
    tp_colpack_reader cr;
    CHECK_ERR(tp_colpack_open(&cr, buf, len, 100), TP_OK);
    tp_record out[6];
    CHECK_ERR(tp_colpack_read_records(&cr, out, 6), TP_OK);
    for (size_t i = 0; i < 6; i++)
        CHECK_INT(out[i].seq, want[i]);
    tp_pack_writer_free(w);
}

/* Hostile and mismatched input: out-of-order v3 content, v3 content under v2 metadata (and back), several
 * vehicles in a v2 pack, a v3 encode of unsorted records, rows with multi_vehicle. */
static void test_hostile(void)
{
    tp_record unsorted[] = {rec(9, 100, 1), rec(4, 100, 2), rec(4, 101, 3)};
    tp_colpack_encoder *enc = NULL;
    CHECK_ERR(tp_colpack_encoder_new(&enc), TP_OK);
    const uint8_t *c;
    size_t clen;
    CHECK_ERR(tp_colpack_encode_version(enc, unsorted, 3, 3, &c, &clen), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_colpack_encode_version(enc, unsorted, 3, 4, &c, &clen), TP_ERR_INVALID_ARG);
    /* v2 content of unsorted records with the magic patched to v3: the order check must refuse it */
    CHECK_ERR(tp_colpack_encode(enc, unsorted, 3, &c, &clen), TP_OK);
    uint8_t bad[512];
    memcpy(bad, c, clen);
    bad[3] = '3';
    tp_colpack_reader cr;
    CHECK_ERR(tp_colpack_open(&cr, bad, clen, 10), TP_OK);
    tp_record out[3];
    CHECK_ERR(tp_colpack_read_records(&cr, out, 3), TP_ERR_CORRUPT);
    CHECK(strstr(cr.detail, "sorted by vehicle_id") != NULL);
    /* the same one record at a time: the check carries across calls */
    CHECK_ERR(tp_colpack_open(&cr, bad, clen, 10), TP_OK);
    CHECK_ERR(tp_colpack_read_records(&cr, out, 1), TP_OK);
    CHECK_ERR(tp_colpack_read_records(&cr, out + 1, 1), TP_ERR_CORRUPT);
    /* and into rows: all or nothing */
    tp_row_batch *rows = NULL;
    CHECK_ERR(tp_row_batch_new(10, &rows), TP_OK);
    CHECK_ERR(tp_colpack_open(&cr, bad, clen, 10), TP_OK);
    CHECK_ERR(tp_colpack_read_rows(&cr, rows, 0, 0), TP_ERR_CORRUPT);
    CHECK_INT(rows->count, 0);
    /* same time, vehicles out of order is refused too; same vehicle, time going back likewise */
    tp_record back[] = {rec(4, 101, 1), rec(4, 100, 2)};
    CHECK_ERR(tp_colpack_encode(enc, back, 2, &c, &clen), TP_OK);
    memcpy(bad, c, clen);
    bad[3] = '3';
    CHECK_ERR(tp_colpack_open(&cr, bad, clen, 10), TP_OK);
    CHECK_ERR(tp_colpack_read_rows(&cr, rows, 0, 0), TP_ERR_CORRUPT);

    tp_pack_reader *r = NULL;
    CHECK_ERR(tp_pack_reader_new(NULL, &r), TP_OK);
    /* through the pack reader with codec none and no metadata: sniffed as v3, refused for its order */
    CHECK_ERR(tp_pack_reader_open(r, NULL, bad, clen), TP_OK);
    CHECK_ERR(tp_pack_reader_read_all(r, rows, 0, 0), TP_ERR_CORRUPT);
    CHECK_INT(rows->count, 0);

    /* a good v3 pack under metadata saying version 2, and a v2 pack under metadata saying 3 */
    tp_record sorted[] = {rec(4, 100, 2), rec(4, 101, 3), rec(9, 100, 1)};
    CHECK_ERR(tp_colpack_encode_version(enc, sorted, 3, 3, &c, &clen), TP_OK);
    tp_pack_meta m = {3, TP_LAYOUT_COLUMNS, TP_CODEC_NONE, TP_SCHEMA_VERSION, 3, 0, 0, 0};
    CHECK_ERR(tp_pack_reader_open(r, &m, c, clen), TP_OK);
    CHECK_ERR(tp_pack_reader_read_all(r, rows, 0, 0), TP_OK);
    CHECK_INT(rows->count, 3);
    m.format_version = 2;
    CHECK_ERR(tp_pack_reader_open(r, &m, c, clen), TP_ERR_UNKNOWN_VERSION);
    m.format_version = 3;
    m.layout = TP_LAYOUT_ROWS;
    CHECK_ERR(tp_pack_reader_open(r, &m, c, clen), TP_ERR_UNKNOWN_VERSION);
    m.layout = TP_LAYOUT_COLUMNS;
    m.format_version = 4;
    CHECK_ERR(tp_pack_reader_open(r, &m, c, clen), TP_ERR_UNKNOWN_VERSION);
    CHECK_ERR(tp_colpack_encode(enc, sorted, 3, &c, &clen), TP_OK); /* v2 content, two vehicles */
    m.format_version = 3;
    CHECK_ERR(tp_pack_reader_open(r, &m, c, clen), TP_ERR_UNKNOWN_VERSION);
    m.format_version = 2;
    CHECK_ERR(tp_pack_reader_open(r, &m, c, clen), TP_OK);
    rows->count = 0;
    CHECK_ERR(tp_pack_reader_read_all(r, rows, 0, 0), TP_ERR_CORRUPT); /* v2 still holds one vehicle */
    tp_row_batch_free(rows);
    tp_pack_reader_free(r);
    tp_colpack_encoder_free(enc);

    /* the writer: multi_vehicle is for layout columns only; without it a second vehicle is refused */
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    o.multi_vehicle = 1;
    o.layout = TP_LAYOUT_ROWS;
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_ERR_INVALID_ARG);
    w = writer(0, TP_CODEC_ZSTD);
    CHECK_ERR(tp_pack_writer_add(w, &sorted[0]), TP_OK);
    CHECK_ERR(tp_pack_writer_add(w, &sorted[2]), TP_ERR_INVALID_ARG);
    tp_pack_writer_free(w);
}

/* A v3 pack of one vehicle sent in order needs no sort and is as small as its v2 pack but for nothing. */
static void test_one_vehicle_same_size(void)
{
    tp_pack_writer *w2 = writer(0, TP_CODEC_NONE), *w3 = writer(1, TP_CODEC_NONE);
    for (uint64_t i = 0; i < 100; i++) {
        tp_record x = rec(42, 1000 * (int64_t)i, i);
        CHECK_ERR(tp_pack_writer_add(w2, &x), TP_OK);
        CHECK_ERR(tp_pack_writer_add(w3, &x), TP_OK);
    }
    uint8_t a[8192], b[8192];
    size_t la, lb;
    CHECK_ERR(tp_pack_writer_finish(w2, a, sizeof a, &la, NULL), TP_OK);
    CHECK_ERR(tp_pack_writer_finish(w3, b, sizeof b, &lb, NULL), TP_OK);
    CHECK_INT(la, lb);
    CHECK(memcmp(a + 4, b + 4, la - 4) == 0); /* only the magic's last byte differs */
    CHECK_INT(a[3], '2');
    CHECK_INT(b[3], '3');
    tp_pack_writer_free(w2);
    tp_pack_writer_free(w3);
}

/* One sample of each of 300 vehicles scattered over a city (a live fleet's partition pack): latitude and
 * longitude differ from vehicle to vehicle by as much as the values themselves, so version 3 stores them as
 * for-planes; the records come back bit for bit, negative and mixed-sign values included, and the pack is smaller
 * than the same records with only version 2's transforms. */
static void test_for_planes(void)
{
    enum { N = 300 };
    static tp_record in[N], out[N];
    uint64_t x = 88172645463325252ull; /* xorshift: scattered, reproducible */
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        in[i] = rec(1000 + 3 * i, 1767225600000 + (int64_t)(x % 7), 100);
        in[i].latitude = (double)(35600000 + (int64_t)(x % 90000)) / 1e6;
        in[i].longitude = -(double)(139700000 + (int64_t)((x >> 20) % 90000)) / 1e6; /* negative: signed units */
        in[i].speed_kmh = (float)((x >> 40) % 600) / 10.0f;
        in[i].heading_deg = (float)((int64_t)((x >> 50) % 3600) - 1800) / 10.0f; /* mixed signs */
    }
    tp_colpack_encoder *enc = NULL;
    CHECK_ERR(tp_colpack_encoder_new(&enc), TP_OK);
    const uint8_t *c;
    size_t len3, len2;
    CHECK_ERR(tp_colpack_encode(enc, in, N, &c, &len2), TP_OK);
    CHECK_ERR(tp_colpack_encode_version(enc, in, N, 3, &c, &len3), TP_OK);
    CHECK(len3 <= tp_colpack_bound(N));
    tp_colpack_reader cr;
    CHECK_ERR(tp_colpack_open(&cr, c, len3, N), TP_OK);
    CHECK_INT(cr.cols[3].transform, TP_COLX_FOR_PLANES); /* latitude */
    CHECK_INT(cr.cols[4].transform, TP_COLX_FOR_PLANES); /* longitude */
    CHECK_INT(cr.cols[3].width, 3);                       /* 90000 units of 1e-6 */
    CHECK_INT(cr.cols[0].transform, TP_COLX_DELTA);       /* vehicle ids 3 apart: small deltas stay varints */
    for (size_t k = 0; k < N; k += 7) /* uneven chunks: the planes are addressed by record index */
        CHECK_ERR(tp_colpack_read_records(&cr, out + k, k + 7 <= N ? 7 : N - k), TP_OK);
    CHECK(memcmp(in, out, sizeof in) == 0);
    tp_row_batch *rows = NULL;
    CHECK_ERR(tp_row_batch_new(N, &rows), TP_OK);
    CHECK_ERR(tp_colpack_open(&cr, c, len3, N), TP_OK);
    CHECK_ERR(tp_colpack_read_rows(&cr, rows, 0, 0), TP_OK);
    int same = 1;
    for (size_t i = 0; i < N; i++) {
        tp_record y;
        tp_row_batch_get(rows, i, &y);
        same &= memcmp(&y, &in[i], sizeof y) == 0;
    }
    CHECK(same);
    tp_row_batch_free(rows);
    /* compressed, the version-3 pack is smaller than version 2's (what the planes are for) */
    tp_pack_writer *w3 = writer(1, TP_CODEC_ZSTD);
    for (size_t i = 0; i < N; i++)
        CHECK_ERR(tp_pack_writer_add(w3, &in[i]), TP_OK);
    uint8_t z3[32768], z2[32768];
    size_t l3, l2;
    CHECK_ERR(tp_pack_writer_finish(w3, z3, sizeof z3, &l3, NULL), TP_OK);
    tp_pack_writer_free(w3);
    CHECK_ERR(tp_colpack_encode(enc, in, N, &c, &len2), TP_OK);
    l2 = ZSTD_compress(z2, sizeof z2, c, len2, 3);
    CHECK(!ZSTD_isError(l2) && l3 + 40 < l2);
    fprintf(stderr, "for-planes: %zu B zstd (v3) vs %zu B (v2 transforms) for %d scattered records\n", l3, l2, N);

    /* hostile for-planes bodies in v3 content: width 0 and 9, planes one byte short; and in v2 content */
    uint8_t b[64];
    size_t n = 0;
    memcpy(b, TP_COLPACK_MAGIC_V3, 4), n = 4;
    b[n++] = 2;                    /* 2 records */
    b[n++] = 1;                    /* 1 column */
    b[n++] = 3, b[n++] = TP_COLX_FOR_PLANES, b[n++] = 6; /* seq, for-planes, 6 body bytes */
    size_t body = n;
    b[n++] = 10, b[n++] = 2, b[n++] = 1, b[n++] = 2, b[n++] = 0, b[n++] = 0; /* base 10, width 2, planes */
    CHECK_ERR(tp_colpack_open(&cr, b, n, 10), TP_OK);
    CHECK_ERR(tp_colpack_read_records(&cr, out, 2), TP_OK);
    CHECK_INT(out[0].seq, 11);
    CHECK_INT(out[1].seq, 12);
    b[body + 1] = 0;
    CHECK_ERR(tp_colpack_open(&cr, b, n, 10), TP_ERR_CORRUPT);
    CHECK(strstr(cr.detail, "for-planes width 0") != NULL);
    b[body + 1] = 9;
    CHECK_ERR(tp_colpack_open(&cr, b, n, 10), TP_ERR_CORRUPT);
    b[body + 1] = 3; /* 3 x 2 plane bytes needed, 4 given */
    CHECK_ERR(tp_colpack_open(&cr, b, n, 10), TP_ERR_CORRUPT);
    b[body + 1] = 2;
    b[3] = '2'; /* the same column in version-2 content */
    CHECK_ERR(tp_colpack_open(&cr, b, n, 10), TP_ERR_UNKNOWN_VERSION);
    tp_colpack_encoder_free(enc);
}

int main(void)
{
    test_roundtrip_sorted();
    test_stable();
    test_hostile();
    test_one_vehicle_same_size();
    test_for_planes();
    return check_exit();
}
