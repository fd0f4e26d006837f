/* Pack metadata <-> Kafka headers: round trip and strict parsing, on librdkafka's header lists (no broker). */
#include <librdkafka/rdkafka.h>

#include "check.h"
#include "kafka/pack_headers.h"

static tp_pack_meta sample(void)
{
    tp_pack_meta m = {.format_version = 1, .layout = TP_LAYOUT_ROWS, .codec = TP_CODEC_ZSTD,
                      .schema_version = TP_SCHEMA_VERSION, .record_count = 200, .dict_id = 0,
                      .vehicle_id = 42, .content_size = 5000};
    return m;
}

/* Headers of sample() with header `name` replaced by value (NULL: removed; "" with dup=1: added twice). */
static rd_kafka_headers_t *with(const char *name, const char *value, int dup)
{
    tp_pack_meta m = sample();
    rd_kafka_headers_t *all = rd_kafka_headers_new(8), *h = rd_kafka_headers_new(8);
    CHECK_ERR(tp_pack_meta_to_headers(&m, all), TP_OK);
    const char *n;
    const void *v;
    size_t sz;
    for (size_t i = 0; rd_kafka_header_get_all(all, i, &n, &v, &sz) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        if (name && !strcmp(n, name)) {
            if (value)
                rd_kafka_header_add(h, n, -1, value, (ssize_t)strlen(value));
            if (dup)
                rd_kafka_header_add(h, n, -1, v, (ssize_t)sz);
        } else {
            rd_kafka_header_add(h, n, -1, v, (ssize_t)sz);
        }
    }
    rd_kafka_headers_destroy(all);
    return h;
}

/* The compact header with `value` (twice with dup) and, with full, the full set beside it. */
static void expect_compact(const char *value, int dup, int full, tp_err want, const char *needle)
{
    rd_kafka_headers_t *h = full ? with(NULL, NULL, 0) : rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "tp", -1, value, (ssize_t)strlen(value));
    if (dup)
        rd_kafka_header_add(h, "tp", -1, value, (ssize_t)strlen(value));
    tp_pack_meta got;
    char err[256] = "";
    CHECK_ERR(tp_pack_meta_from_headers(h, &got, err, sizeof err), want);
    if (needle && !strstr(err, needle)) {
        check_failures++;
        fprintf(stderr, "compact header \"%s\": error \"%s\" lacks \"%s\"\n", value, err, needle);
    }
    rd_kafka_headers_destroy(h);
}

/* The compact form: one header "tp: <version>,<records>" for codec zstd, read back to the same metadata. */
static void test_compact(void)
{
    tp_pack_meta m = sample(), got;
    for (uint32_t v = 1; v <= 3; v++) {
        m.format_version = v;
        m.layout = v == 1 ? TP_LAYOUT_ROWS : TP_LAYOUT_COLUMNS;
        m.record_count = 250 * v;
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        CHECK_ERR(tp_pack_meta_to_compact_header(&m, h), TP_OK);
        CHECK_INT(rd_kafka_header_cnt(h), 1);
        const void *val;
        size_t n;
        CHECK(rd_kafka_header_get_last(h, "tp", &val, &n) == RD_KAFKA_RESP_ERR_NO_ERROR);
        char want[16];
        snprintf(want, sizeof want, "%u,%u", v, 250 * v);
        CHECK(n == strlen(want) && !memcmp(val, want, n));
        CHECK_ERR(tp_pack_meta_from_headers(h, &got, NULL, 0), TP_OK);
        CHECK_INT(got.format_version, v);
        CHECK_INT(got.layout, m.layout);
        CHECK_INT(got.codec, TP_CODEC_ZSTD);
        CHECK_INT(got.schema_version, TP_SCHEMA_VERSION);
        CHECK_INT(got.record_count, 250 * v);
        CHECK_INT(got.dict_id, 0);
        rd_kafka_headers_destroy(h);
    }
    /* what the compact form cannot say is refused, so the writer falls back to the full set */
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    m = sample();
    m.codec = TP_CODEC_NONE;
    CHECK_ERR(tp_pack_meta_to_compact_header(&m, h), TP_ERR_INVALID_ARG);
    m = sample();
    m.layout = TP_LAYOUT_COLUMNS; /* version 1 is rows */
    CHECK_ERR(tp_pack_meta_to_compact_header(&m, h), TP_ERR_INVALID_ARG);
    CHECK_INT(rd_kafka_header_cnt(h), 0);
    rd_kafka_headers_destroy(h);
    /* a zstd dictionary's id is the third number (docs/FORMAT.md section 5) */
    h = rd_kafka_headers_new(1);
    m = sample();
    m.format_version = 3;
    m.layout = TP_LAYOUT_COLUMNS;
    m.record_count = 42;
    m.dict_id = 1482392424;
    CHECK_ERR(tp_pack_meta_to_compact_header(&m, h), TP_OK);
    const void *dv;
    size_t dn;
    CHECK(rd_kafka_header_get_last(h, "tp", &dv, &dn) == RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK(dn == strlen("3,42,1482392424") && !memcmp(dv, "3,42,1482392424", dn));
    CHECK_ERR(tp_pack_meta_from_headers(h, &got, NULL, 0), TP_OK);
    CHECK_INT(got.dict_id, 1482392424);
    CHECK_INT(got.record_count, 42);
    rd_kafka_headers_destroy(h);

    expect_compact("3,250", 0, 0, TP_OK, NULL);
    expect_compact("9,1", 0, 0, TP_OK, NULL); /* a number: the pack reader decides whether it knows it */
    expect_compact("3,250", 1, 0, TP_ERR_PARSE, "more than once");
    expect_compact("3,250", 0, 1, TP_ERR_PARSE, "both present");
    expect_compact("3", 0, 0, TP_ERR_PARSE, "\"3\"");
    expect_compact("3,", 0, 0, TP_ERR_PARSE, NULL);
    expect_compact(",250", 0, 0, TP_ERR_PARSE, NULL);
    expect_compact("03,250", 0, 0, TP_ERR_PARSE, NULL);
    expect_compact("3,250,1", 0, 0, TP_OK, NULL);     /* dictionary 1: whether the reader holds it is its business */
    expect_compact("3,250,0", 0, 0, TP_ERR_PARSE, NULL); /* no dictionary is said by leaving the number out */
    expect_compact("3,250,1,1", 0, 0, TP_ERR_PARSE, NULL);
    expect_compact("3,4294967296", 0, 0, TP_ERR_PARSE, NULL);
    expect_compact("3;250", 0, 0, TP_ERR_PARSE, NULL);
    expect_compact("", 0, 0, TP_ERR_PARSE, NULL);
}

static void expect(const char *name, const char *value, int dup, tp_err want, const char *needle)
{
    rd_kafka_headers_t *h = with(name, value, dup);
    tp_pack_meta m;
    char err[256] = "";
    CHECK_ERR(tp_pack_meta_from_headers(h, &m, err, sizeof err), want);
    if (needle) {
        CHECK(strstr(err, needle) != NULL);
        if (!strstr(err, needle))
            fprintf(stderr, "  %s=%s: message was \"%s\"\n", name, value ? value : "(none)", err);
    }
    rd_kafka_headers_destroy(h);
}

int main(void)
{
    tp_pack_meta m = sample(), got;
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    CHECK_ERR(tp_pack_meta_to_headers(&m, h), TP_OK);
    CHECK_INT(rd_kafka_header_cnt(h), 8);
    const void *v;
    size_t n;
    CHECK(rd_kafka_header_get_last(h, "tp-records", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && n == 3 &&
          !memcmp(v, "200", 3));
    CHECK(rd_kafka_header_get_last(h, "tp-format", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && n == 6 &&
          !memcmp(v, "pbpack", 6));
    char err[256];
    CHECK_ERR(tp_pack_meta_from_headers(h, &got, err, sizeof err), TP_OK);
    CHECK_INT(got.format_version, 1);
    CHECK_INT(got.layout, TP_LAYOUT_ROWS);
    CHECK_INT(got.codec, TP_CODEC_ZSTD);
    CHECK_INT(got.schema_version, 1);
    CHECK_INT(got.record_count, 200);
    CHECK_INT(got.dict_id, 0);
    CHECK_INT(got.vehicle_id, 0); /* the key carries it, not the headers */
    rd_kafka_headers_destroy(h);

    /* Other values round trip too. */
    m.format_version = 2;
    m.layout = TP_LAYOUT_COLUMNS;
    m.codec = TP_CODEC_NONE;
    m.record_count = UINT32_MAX;
    m.dict_id = 123456;
    h = rd_kafka_headers_new(8);
    CHECK_ERR(tp_pack_meta_to_headers(&m, h), TP_OK);
    CHECK_ERR(tp_pack_meta_from_headers(h, &got, NULL, 0), TP_OK);
    CHECK_INT(got.format_version, 2);
    CHECK_INT(got.layout, TP_LAYOUT_COLUMNS);
    CHECK_INT(got.codec, TP_CODEC_NONE);
    CHECK(got.record_count == UINT32_MAX);
    CHECK_INT(got.dict_id, 123456);
    rd_kafka_headers_destroy(h);

    /* A layout or codec without a name cannot be written. */
    h = rd_kafka_headers_new(8);
    m = sample();
    m.codec = (tp_codec)9;
    CHECK_ERR(tp_pack_meta_to_headers(&m, h), TP_ERR_INVALID_ARG);
    m = sample();
    m.layout = (tp_layout)0;
    CHECK_ERR(tp_pack_meta_to_headers(&m, h), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_pack_meta_to_headers(NULL, h), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_pack_meta_from_headers(NULL, &got, err, sizeof err), TP_ERR_INVALID_ARG);
    rd_kafka_headers_destroy(h);

    /* Strict parsing: every way a header can be wrong. */
    expect("tp-dict-id", NULL, 0, TP_OK, NULL); /* optional */
    expect("tp-format", NULL, 0, TP_ERR_PARSE, "tp-format is missing");
    expect("tp-format", "avro", 0, TP_ERR_UNKNOWN_VERSION, "\"avro\"");
    expect("tp-format", "", 1, TP_ERR_PARSE, "more than once");
    expect("tp-version", NULL, 0, TP_ERR_PARSE, "tp-version is missing");
    expect("tp-version", "", 0, TP_ERR_PARSE, "tp-version has value \"\"");
    expect("tp-version", "01", 0, TP_ERR_PARSE, "\"01\"");
    expect("tp-version", "+1", 0, TP_ERR_PARSE, "\"+1\"");
    expect("tp-version", "-1", 0, TP_ERR_PARSE, NULL);
    expect("tp-version", " 1", 0, TP_ERR_PARSE, NULL);
    expect("tp-version", "1x", 0, TP_ERR_PARSE, NULL);
    expect("tp-version", "3", 0, TP_OK, NULL); /* a number: the reader decides whether it knows it */
    expect("tp-records", "4294967295", 0, TP_OK, NULL);
    expect("tp-records", "4294967296", 0, TP_ERR_PARSE, "4294967296");
    expect("tp-records", "99999999999", 0, TP_ERR_PARSE, NULL);
    expect("tp-records", NULL, 0, TP_ERR_PARSE, "tp-records is missing");
    expect("tp-records", "", 1, TP_ERR_PARSE, "tp-records appears more than once");
    expect("tp-layout", "ROWS", 0, TP_ERR_UNKNOWN_VERSION, "\"ROWS\"");
    expect("tp-layout", NULL, 0, TP_ERR_PARSE, NULL);
    expect("tp-codec", "gzip", 0, TP_ERR_UNKNOWN_CODEC, "\"gzip\"");
    expect("tp-codec", "zstd ", 0, TP_ERR_UNKNOWN_CODEC, NULL);
    expect("tp-codec", NULL, 0, TP_ERR_PARSE, NULL);
    expect("tp-schema", "telepack.v2.VehicleRecord", 0, TP_ERR_UNKNOWN_VERSION, "telepack.v2.VehicleRecord");
    expect("tp-schema", NULL, 0, TP_ERR_PARSE, NULL);
    expect("tp-schema-version", "x", 0, TP_ERR_PARSE, "tp-schema-version");
    expect("tp-schema-version", NULL, 0, TP_ERR_PARSE, NULL);
    expect("tp-dict-id", "0x1", 0, TP_ERR_PARSE, NULL);
    expect("tp-version", "1\x01\x02", 0, TP_ERR_PARSE, "\"1??\"");

    /* A header with a NULL value is an empty value. */
    h = with("tp-records", NULL, 0);
    rd_kafka_header_add(h, "tp-records", -1, NULL, 0);
    CHECK_ERR(tp_pack_meta_from_headers(h, &got, err, sizeof err), TP_ERR_PARSE);
    rd_kafka_headers_destroy(h);

    test_compact();

    CHECK_STR(tp_layout_name(TP_LAYOUT_COLUMNS), "columns");
    CHECK_STR(tp_codec_name(TP_CODEC_NONE), "none");
    CHECK(tp_codec_name((tp_codec)3) == NULL);
    return check_exit();
}
