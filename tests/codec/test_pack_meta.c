/* Pack metadata as name/value pairs (include/telepack/pack_meta.h): both forms round trip, the strict reading
 * refuses what is missing, repeated, malformed or mixed, and headers of other names are ignored. */
#include <string.h>

#include "check.h"
#include "telepack/pack_meta.h"

static tp_pack_meta meta(uint32_t version, uint32_t records)
{
    tp_pack_meta m = {0};
    m.format_version = version;
    m.layout = version == 1 ? TP_LAYOUT_ROWS : TP_LAYOUT_COLUMNS;
    m.codec = TP_CODEC_ZSTD;
    m.schema_version = TP_SCHEMA_VERSION;
    m.record_count = records;
    return m;
}

static void round_trips(void)
{
    tp_header h[TP_PACK_META_MAX_HEADERS];
    char text[TP_PACK_META_TEXT_BYTES];
    size_t n = 99;
    tp_pack_meta in = meta(3, 250), out;
    char err[256];
    CHECK_ERR(tp_pack_meta_to_header_list(&in, TP_HEADERS_COMPACT, h, &n, text), TP_OK);
    CHECK_INT(n, 1);
    CHECK_STR(h[0].name, "tp");
    CHECK(h[0].len == 5 && !memcmp(h[0].value, "3,250", 5));
    CHECK_ERR(tp_pack_meta_from_header_list(h, n, &out, err, sizeof err), TP_OK);
    CHECK(!memcmp(&in, &out, sizeof in));

    in = meta(1, 7);
    CHECK_ERR(tp_pack_meta_to_header_list(&in, TP_HEADERS_FULL, h, &n, text), TP_OK);
    CHECK_INT(n, 8);
    CHECK_STR(h[0].name, TP_HEADER_FORMAT);
    CHECK_STR(h[2].name, TP_HEADER_LAYOUT);
    CHECK(h[2].len == 4 && !memcmp(h[2].value, "rows", 4));
    CHECK(h[6].len == 1 && !memcmp(h[6].value, "7", 1));
    CHECK_ERR(tp_pack_meta_from_header_list(h, n, &out, err, sizeof err), TP_OK);
    CHECK(!memcmp(&in, &out, sizeof in));

    /* codec none cannot be said compactly, only in full */
    in.codec = TP_CODEC_NONE;
    CHECK_ERR(tp_pack_meta_to_header_list(&in, TP_HEADERS_COMPACT, h, &n, text), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_pack_meta_to_header_list(&in, TP_HEADERS_FULL, h, &n, text), TP_OK);
    CHECK_ERR(tp_pack_meta_from_header_list(h, n, &out, err, sizeof err), TP_OK);
    CHECK_INT(out.codec, TP_CODEC_NONE);
    CHECK_STR(tp_layout_name(TP_LAYOUT_COLUMNS), "columns");
    CHECK_STR(tp_codec_name(TP_CODEC_ZSTD), "zstd");
    CHECK(tp_layout_name((tp_layout)9) == NULL);
}

static void strict(void)
{
    tp_pack_meta out;
    char err[256];
    tp_header other[] = {{"traceparent", "00-abc", 6}, {"tp", "2,60", 4}, {"x-app", NULL, 0}};
    CHECK_ERR(tp_pack_meta_from_header_list(other, 3, &out, err, sizeof err), TP_OK);
    CHECK_INT(out.record_count, 60);
    CHECK_INT(out.layout, TP_LAYOUT_COLUMNS);

    tp_header twice[] = {{"tp", "2,60", 4}, {"tp", "2,61", 4}};
    CHECK_ERR(tp_pack_meta_from_header_list(twice, 2, &out, err, sizeof err), TP_ERR_PARSE);
    CHECK(strstr(err, "more than once") != NULL);
    tp_header mixed[] = {{"tp", "2,60", 4}, {"tp-format", "pbpack", 6}};
    CHECK_ERR(tp_pack_meta_from_header_list(mixed, 2, &out, err, sizeof err), TP_ERR_PARSE);
    CHECK(strstr(err, "both present") != NULL);
    const char *bad[] = {"2", "2,", ",5", "02,5", "2,-5", "2,5 ", "2,4294967296", "x,1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tp_header one = {"tp", bad[i], strlen(bad[i])};
        CHECK_ERR(tp_pack_meta_from_header_list(&one, 1, &out, err, sizeof err), TP_ERR_PARSE);
        CHECK(strstr(err, "expected \"<format version>,<record count>\"") != NULL);
    }
    CHECK_ERR(tp_pack_meta_from_header_list(NULL, 0, &out, err, sizeof err), TP_ERR_PARSE);
    CHECK(strstr(err, "tp-format is missing") != NULL);

    /* the full form: a missing header, an unknown codec, another schema */
    tp_header h[TP_PACK_META_MAX_HEADERS];
    char text[TP_PACK_META_TEXT_BYTES];
    size_t n;
    tp_pack_meta in = meta(2, 9);
    CHECK_ERR(tp_pack_meta_to_header_list(&in, TP_HEADERS_FULL, h, &n, text), TP_OK);
    CHECK_ERR(tp_pack_meta_from_header_list(h, n - 2, &out, err, sizeof err), TP_ERR_PARSE); /* no tp-records */
    CHECK(strstr(err, "tp-records is missing") != NULL);
    h[3].value = "lz77";
    h[3].len = 4;
    CHECK_ERR(tp_pack_meta_from_header_list(h, n, &out, err, sizeof err), TP_ERR_UNKNOWN_CODEC);
    CHECK(strstr(err, "\"lz77\"") != NULL);
    h[3].value = "zstd";
    h[4].value = "fleet.ev.v1.EvTelemetry";
    h[4].len = strlen(h[4].value);
    CHECK_ERR(tp_pack_meta_from_header_list(h, n, &out, err, sizeof err), TP_ERR_UNKNOWN_VERSION);
}

int main(void)
{
    round_trips();
    strict();
    return check_exit();
}
