/* zstd dictionaries (include/telepack/dict.h): training, packs written with one and read back (both layouts), the
 * id in the metadata, the compact header and the frame agreeing, unknown ids, hostile dictionary files and
 * directories, the caps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "check.h"
#include "dict_fixture.h"
#include "telepack/pack_meta.h"

static uint8_t dict_bytes[8192];
static size_t dict_len;

/* Packs rec[0..n) (one vehicle) with writer options wo; returns the frame length, meta filled. */
static size_t pack(const tp_pack_writer_opts *wo, const tp_record *rec, size_t n, uint8_t *out, size_t cap,
                   tp_pack_meta *meta)
{
    tp_pack_writer *w;
    CHECK_ERR(tp_pack_writer_new(wo, &w), TP_OK);
    if (!w)
        return 0;
    for (size_t i = 0; i < n; i++)
        CHECK_ERR(tp_pack_writer_add(w, &rec[i]), TP_OK);
    size_t len = 0;
    CHECK_ERR(tp_pack_writer_finish(w, out, cap, &len, meta), TP_OK);
    tp_pack_writer_free(w);
    return len;
}

/* Reads the pack back with reader options ro and compares every record. */
static void read_back(const tp_pack_reader_opts *ro, const tp_pack_meta *meta, const uint8_t *p, size_t len,
                      const tp_record *rec, size_t n)
{
    tp_pack_reader *r;
    CHECK_ERR(tp_pack_reader_new(ro, &r), TP_OK);
    CHECK_ERR(tp_pack_reader_open(r, meta, p, len), TP_OK);
    CHECK_INT(tp_pack_reader_meta(r)->dict_id, meta ? meta->dict_id : ZSTD_getDictID_fromFrame(p, len));
    tp_record got;
    size_t k = 0;
    tp_err e;
    while ((e = tp_pack_reader_next(r, &got)) == TP_OK) {
        CHECK(k < n && !memcmp(&got, &rec[k], sizeof got));
        k++;
    }
    CHECK_ERR(e, TP_ERR_END);
    CHECK_INT(k, n);
    tp_pack_reader_free(r);
}

/* One vehicle's first n records out of the time-major records. */
static size_t one_vehicle(const tp_record *all, size_t total, uint64_t vid, tp_record *out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < total && k < n; i++)
        if (all[i].vehicle_id == vid)
            out[k++] = all[i];
    return k;
}

static void test_round_trip(const tp_record *all, size_t total)
{
    tp_dict *cd = NULL;
    char err[512];
    CHECK_ERR(tp_dict_new(dict_bytes, dict_len, 3, &cd, err, sizeof err), TP_OK);
    uint32_t id = tp_dict_id(cd);
    CHECK(id >= TP_DICT_MIN_ID && id <= TP_DICT_MAX_ID);
    CHECK_INT(tp_dict_size(cd), dict_len);
    CHECK(tp_dict_header_size(cd) > 0 && tp_dict_header_size(cd) < dict_len);

    /* readers: one with the dictionary (loaded for decompression only), one with none */
    tp_dict_set *set;
    tp_dict *dd;
    CHECK_ERR(tp_dict_set_new(&set), TP_OK);
    CHECK_ERR(tp_dict_new(dict_bytes, dict_len, 0, &dd, err, sizeof err), TP_OK);
    CHECK_ERR(tp_dict_set_add(set, dd, err, sizeof err), TP_OK);
    CHECK(tp_dict_set_find(set, id) == dd);
    CHECK(tp_dict_set_find(set, id + 1) == NULL);
    tp_pack_reader_opts with, without;
    tp_pack_reader_opts_init(&with);
    tp_pack_reader_opts_init(&without);
    with.dicts = set;

    tp_record rec[60];
    size_t n = one_vehicle(all, total, all[7].vehicle_id, rec, 40); /* a test vehicle (training used all) */
    CHECK(n == 40);
    static uint8_t plain[65536], withd[65536];
    for (int layout = TP_LAYOUT_ROWS; layout <= TP_LAYOUT_COLUMNS; layout++) {
        tp_pack_writer_opts wo;
        tp_pack_writer_opts_init(&wo);
        wo.layout = (tp_layout)layout;
        tp_pack_meta m0, m1;
        size_t l0 = pack(&wo, rec, n, plain, sizeof plain, &m0);
        wo.dict = cd;
        size_t l1 = pack(&wo, rec, n, withd, sizeof withd, &m1);
        /* without: unchanged on the wire (no id in the frame, meta 0, compact header of two numbers) */
        CHECK_INT(m0.dict_id, 0);
        CHECK_INT(ZSTD_getDictID_fromFrame(plain, l0), 0);
        /* with: the id in the metadata equals the frame's, and the pack is smaller */
        CHECK_INT(m1.dict_id, id);
        CHECK_INT(ZSTD_getDictID_fromFrame(withd, l1), id);
        if (layout == TP_LAYOUT_COLUMNS)
            CHECK(l1 < l0);
        read_back(&with, &m0, plain, l0, rec, n);
        read_back(&without, &m0, plain, l0, rec, n);
        read_back(&with, &m1, withd, l1, rec, n);
        read_back(&with, NULL, withd, l1, rec, n); /* the file form: the id from the frame */
        read_back(&with, &m0, plain, l0, rec, n);  /* a plain pack after a dictionary one: the reader lets go */

        /* headers, both forms, carry the id and come back */
        tp_header h[TP_PACK_META_MAX_HEADERS];
        char text[TP_PACK_META_TEXT_BYTES];
        size_t nh;
        tp_pack_meta back;
        CHECK_ERR(tp_pack_meta_to_header_list(&m1, TP_HEADERS_COMPACT, h, &nh, text), TP_OK);
        CHECK_INT(nh, 1);
        char want[64];
        snprintf(want, sizeof want, "%u,%u,%u", m1.format_version, m1.record_count, id);
        CHECK(h[0].len == strlen(want) && !memcmp(h[0].value, want, h[0].len));
        CHECK_ERR(tp_pack_meta_from_header_list(h, nh, &back, err, sizeof err), TP_OK);
        CHECK_INT(back.dict_id, id);
        CHECK_INT(back.record_count, n);
        read_back(&with, &back, withd, l1, rec, n);
        CHECK_ERR(tp_pack_meta_to_header_list(&m1, TP_HEADERS_FULL, h, &nh, text), TP_OK);
        CHECK_ERR(tp_pack_meta_from_header_list(h, nh, &back, err, sizeof err), TP_OK);
        CHECK_INT(back.dict_id, id);
        CHECK_ERR(tp_pack_meta_to_header_list(&m0, TP_HEADERS_COMPACT, h, &nh, text), TP_OK);
        snprintf(want, sizeof want, "%u,%u", m0.format_version, m0.record_count);
        CHECK(h[0].len == strlen(want) && !memcmp(h[0].value, want, h[0].len));

        /* unknown id: a reader without it refuses with the id named, and whatever the metadata says */
        tp_pack_reader *r;
        CHECK_ERR(tp_pack_reader_new(&without, &r), TP_OK);
        CHECK_ERR(tp_pack_reader_open(r, &m1, withd, l1), TP_ERR_UNKNOWN_DICT);
        snprintf(want, sizeof want, "zstd dictionary %u", id);
        CHECK(strstr(tp_pack_reader_error_detail(r), want) != NULL);
        CHECK_ERR(tp_pack_reader_open(r, NULL, withd, l1), TP_ERR_UNKNOWN_DICT);
        tp_pack_reader_free(r);
        /* metadata and frame disagree: either way round, and a wrong id */
        CHECK_ERR(tp_pack_reader_new(&with, &r), TP_OK);
        tp_pack_meta bad = m1;
        bad.dict_id = 0;
        CHECK_ERR(tp_pack_reader_open(r, &bad, withd, l1), TP_ERR_CORRUPT);
        bad.dict_id = id + 1;
        CHECK_ERR(tp_pack_reader_open(r, &bad, withd, l1), TP_ERR_CORRUPT);
        bad = m0;
        bad.dict_id = id;
        CHECK_ERR(tp_pack_reader_open(r, &bad, plain, l0), TP_ERR_CORRUPT);
        bad.codec = TP_CODEC_NONE;
        CHECK_ERR(tp_pack_reader_open(r, &bad, plain, l0), TP_ERR_UNKNOWN_CODEC);
        tp_pack_reader_free(r);
    }

    /* writer refusals: a dictionary prepared at another level, or for decompression only, or with codec none */
    tp_pack_writer_opts wo;
    tp_pack_writer_opts_init(&wo);
    tp_pack_writer *w = NULL;
    wo.dict = cd;
    wo.level = 5;
    CHECK_ERR(tp_pack_writer_new(&wo, &w), TP_ERR_INVALID_ARG);
    wo.level = 3;
    wo.dict = dd;
    CHECK_ERR(tp_pack_writer_new(&wo, &w), TP_ERR_INVALID_ARG);
    wo.dict = cd;
    wo.codec = TP_CODEC_NONE;
    wo.layout = TP_LAYOUT_ROWS;
    CHECK_ERR(tp_pack_writer_new(&wo, &w), TP_ERR_INVALID_ARG);
    CHECK(w == NULL);
    tp_dict_free(cd);
    tp_dict_set_free(set);
}

static void test_compact_header_forms(void)
{
    char err[512];
    tp_pack_meta m;
    static const char *const good[] = {"2,40,32768", "3,1,2147483647"};
    for (size_t i = 0; i < 2; i++) {
        tp_header h = {TP_HEADER_COMPACT, good[i], strlen(good[i])};
        CHECK_ERR(tp_pack_meta_from_header_list(&h, 1, &m, err, sizeof err), TP_OK);
        CHECK(m.dict_id != 0);
    }
    static const char *const bad[] = {"2,40,0", "2,40,", "2,40,7,1", "2,40,01", "2,40,x", "2,40,4294967296",
                                      ",40,5", "2,,5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tp_header h = {TP_HEADER_COMPACT, bad[i], strlen(bad[i])};
        CHECK_ERR(tp_pack_meta_from_header_list(&h, 1, &m, err, sizeof err), TP_ERR_PARSE);
        CHECK(strstr(err, "dictionary id") != NULL);
    }
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static void test_hostile_dicts(void)
{
    char err[512];
    tp_dict *d = (tp_dict *)1;
    static uint8_t big[TP_DICT_MAX_BYTES + 1];
    memcpy(big, dict_bytes, dict_len);
    CHECK_ERR(tp_dict_new(big, sizeof big, 0, &d, err, sizeof err), TP_ERR_PACK_TOO_LARGE);
    CHECK(d == NULL && strstr(err, "1 MiB"));
    CHECK_ERR(tp_dict_new(dict_bytes, 7, 0, &d, err, sizeof err), TP_ERR_CORRUPT);
    CHECK_ERR(tp_dict_new(NULL, 0, 0, &d, err, sizeof err), TP_ERR_CORRUPT);
    CHECK(strstr(err, "not a zstd dictionary") != NULL);
    uint8_t copy[sizeof dict_bytes];
    memcpy(copy, dict_bytes, dict_len);
    copy[0] ^= 1; /* no magic: raw content, no id */
    CHECK_ERR(tp_dict_new(copy, dict_len, 0, &d, err, sizeof err), TP_ERR_CORRUPT);
    CHECK(strstr(err, "37 a4 30 ec") != NULL);
    static const uint32_t bad_ids[] = {0, 1, 32767, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        memcpy(copy, dict_bytes, dict_len);
        put_u32(copy + 4, bad_ids[i]);
        CHECK_ERR(tp_dict_new(copy, dict_len, 0, &d, err, sizeof err), TP_ERR_CORRUPT);
        CHECK(strstr(err, "outside 32768..2147483647") != NULL);
    }
    /* entropy tables cut short or garbled: zstd's parser refuses, with the id named; never a crash */
    CHECK_ERR(tp_dict_new(dict_bytes, dict_len, 0, &d, err, sizeof err), TP_OK);
    size_t header = tp_dict_header_size(d);
    tp_dict_free(d);
    for (size_t cut = 8; cut < header; cut += 7) {
        d = NULL;
        tp_err e = tp_dict_new(dict_bytes, cut, 3, &d, err, sizeof err);
        CHECK_ERR(e, TP_ERR_CORRUPT);
        tp_dict_free(d);
    }
    size_t refused = 0;
    for (size_t pos = 8; pos < 120; pos++) {
        memcpy(copy, dict_bytes, dict_len);
        copy[pos] ^= 0xff;
        d = NULL;
        tp_err e = tp_dict_new(copy, dict_len, 3, &d, err, sizeof err);
        CHECK(e == TP_OK || e == TP_ERR_CORRUPT);
        refused += e == TP_ERR_CORRUPT;
        if (!e) /* tables zstd accepts (a garbled byte it cannot tell): the id is still the header's */
            CHECK_INT(tp_dict_id(d), ZSTD_getDictID_fromDict(dict_bytes, dict_len));
        tp_dict_free(d);
    }
    CHECK(refused > 0);
    CHECK_ERR(tp_dict_new(dict_bytes, dict_len, 99, &d, err, sizeof err), TP_ERR_INVALID_ARG);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK_INT(fwrite(p, 1, n, f), n);
        fclose(f);
    }
}

static void test_dir(void)
{
    char dir[] = "/tmp/tp-test-dict-XXXXXX", path[256], err[512];
    CHECK(mkdtemp(dir) != NULL);
    tp_dict_set *s;
    /* empty directory: nothing loaded, no error */
    CHECK_ERR(tp_dict_set_new(&s), TP_OK);
    CHECK_ERR(tp_dict_set_load_dir(s, dir, err, sizeof err), TP_OK);
    CHECK_INT(tp_dict_set_count(s), 0);
    tp_dict_set_free(s);
    /* one dictionary, and files of other names skipped */
    snprintf(path, sizeof path, "%s/a.zdict", dir);
    write_file(path, dict_bytes, dict_len);
    snprintf(path, sizeof path, "%s/README", dir);
    write_file(path, "not a dictionary", 16);
    CHECK_ERR(tp_dict_set_new(&s), TP_OK);
    CHECK_ERR(tp_dict_set_load_dir(s, dir, err, sizeof err), TP_OK);
    CHECK_INT(tp_dict_set_count(s), 1);
    CHECK_INT(tp_dict_id(tp_dict_set_at(s, 0)), ZSTD_getDictID_fromDict(dict_bytes, dict_len));
    tp_dict_set_free(s);
    /* the same dictionary under a second name: refused, both names in the sentence */
    snprintf(path, sizeof path, "%s/b.zdict", dir);
    write_file(path, dict_bytes, dict_len);
    CHECK_ERR(tp_dict_set_new(&s), TP_OK);
    CHECK_ERR(tp_dict_set_load_dir(s, dir, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "b.zdict") && strstr(err, "loaded twice"));
    tp_dict_set_free(s);
    /* a corrupt file: refused at load, named */
    uint8_t copy[sizeof dict_bytes];
    memcpy(copy, dict_bytes, dict_len);
    put_u32(copy + 4, 5);
    write_file(path, copy, dict_len);
    CHECK_ERR(tp_dict_set_new(&s), TP_OK);
    CHECK_ERR(tp_dict_set_load_dir(s, dir, err, sizeof err), TP_ERR_CORRUPT);
    CHECK(strstr(err, "b.zdict") && strstr(err, "id 5"));
    tp_dict_set_free(s);
    /* a directory named *.zdict is not a file */
    CHECK(unlink(path) == 0);
    CHECK(mkdir(path, 0700) == 0);
    CHECK_ERR(tp_dict_set_new(&s), TP_OK);
    CHECK_ERR(tp_dict_set_load_dir(s, dir, err, sizeof err), TP_ERR_IO);
    CHECK(strstr(err, "not a regular file") != NULL);
    tp_dict_set_free(s);
    CHECK(rmdir(path) == 0);
    /* more than TP_DICT_MAX_COUNT files: refused before any is read */
    for (unsigned i = 0; i < TP_DICT_MAX_COUNT; i++) {
        snprintf(path, sizeof path, "%s/x%02u.zdict", dir, i);
        write_file(path, "", 0);
    }
    CHECK_ERR(tp_dict_set_new(&s), TP_OK);
    CHECK_ERR(tp_dict_set_load_dir(s, dir, err, sizeof err), TP_ERR_FULL);
    CHECK(strstr(err, "more than 64") != NULL);
    tp_dict_set_free(s);
    for (unsigned i = 0; i < TP_DICT_MAX_COUNT; i++) {
        snprintf(path, sizeof path, "%s/x%02u.zdict", dir, i);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/a.zdict", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/README", dir);
    unlink(path);
    CHECK(rmdir(dir) == 0);
    CHECK_ERR(tp_dict_set_new(&s), TP_OK);
    CHECK_ERR(tp_dict_set_load_dir(s, dir, err, sizeof err), TP_ERR_IO); /* gone */
    CHECK(strstr(err, dir) != NULL);
    /* the set's own cap, whatever the source */
    for (unsigned i = 0; i <= TP_DICT_MAX_COUNT; i++) {
        uint8_t c[sizeof dict_bytes];
        memcpy(c, dict_bytes, dict_len);
        put_u32(c + 4, TP_DICT_MIN_ID + i);
        tp_dict *d;
        CHECK_ERR(tp_dict_new(c, dict_len, 0, &d, err, sizeof err), TP_OK);
        tp_err e = tp_dict_set_add(s, d, err, sizeof err);
        CHECK_ERR(e, i < TP_DICT_MAX_COUNT ? TP_OK : TP_ERR_FULL);
        if (e)
            tp_dict_free(d);
    }
    CHECK_INT(tp_dict_set_count(s), TP_DICT_MAX_COUNT);
    tp_dict_set_free(s);
}

static void test_train_refusals(void)
{
    char err[512];
    size_t sizes[TP_DICT_MIN_SAMPLES] = {0}, len;
    uint8_t samples[16] = {0}, out[2048];
    CHECK_ERR(tp_dict_train(samples, sizes, TP_DICT_MIN_SAMPLES - 1, out, sizeof out, &len, err, sizeof err),
              TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "too few") != NULL);
    CHECK_ERR(tp_dict_train(samples, sizes, TP_DICT_MIN_SAMPLES, out, 512, &len, err, sizeof err),
              TP_ERR_INVALID_ARG);
    /* a hundred empty samples: nothing to learn, zstd says so and we pass it on as a sentence */
    CHECK_ERR(tp_dict_train(samples, sizes, TP_DICT_MIN_SAMPLES, out, sizeof out, &len, err, sizeof err),
              TP_ERR_CORRUPT);
    CHECK(strstr(err, "could not train") != NULL);
}

int main(void)
{
    size_t total;
    tp_record *all = dict_fixture_records(100, 300, 7, &total);
    CHECK(all != NULL && total > 20000);
    CHECK_ERR(dict_fixture_train(all, total, 20, dict_bytes, sizeof dict_bytes, &dict_len), TP_OK);
    CHECK(dict_len > 1000);
    if (!check_failures) {
        test_round_trip(all, total);
        test_hostile_dicts();
        test_dir();
    }
    test_compact_header_forms();
    test_train_refusals();
    free(all);
    return check_exit();
}
