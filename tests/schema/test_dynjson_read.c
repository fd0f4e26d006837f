/* The NDJSON reader of the dynamic row (tp_dyn_json_read) on fleet.ev.v1.EvTelemetry: what tp_dyn_row_json writes
 * reads back to the same row (protoc's messages, lowerCamelCase and .proto names), the other forms protobuf's JSON
 * mapping accepts, and hostile lines (deep nesting, huge numbers, int32 overflow, bad UTF-8, bad base64, bad
 * Timestamps, duplicate and unknown keys), each refused with a sentence and the batch unchanged. Argument: the build
 * directory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "schema/dynrow.h"
#include "schema/schema.h"

static const char *dir;

static uint8_t *slurp(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    uint8_t *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static tp_schema *ev_schema(void)
{
    size_t len;
    uint8_t *src = slurp("ev_telemetry.pb", &len);
    tp_schema *s = NULL;
    char err[256];
    CHECK_ERR(tp_schema_load(src, len, "fleet.ev.v1.EvTelemetry", &s, err, sizeof err), TP_OK);
    free(src);
    return s;
}

static const tp_dyn_column *col(const tp_dyn_batch *b, const char *name)
{
    long i = tp_schema_find(b->schema, name);
    if (i < 0) {
        fprintf(stderr, "no column %s\n", name);
        exit(1);
    }
    return &b->columns[i];
}

static const char *str(const tp_dyn_batch *b, tp_dyn_value v, char *buf, size_t cap)
{
    size_t n = v.s.len < cap - 1 ? v.s.len : cap - 1;
    memcpy(buf, b->bytes + v.s.off, n);
    buf[n] = 0;
    return buf;
}

static tp_err rd(tp_dyn_batch *b, const char *json, int flags)
{
    return tp_dyn_json_read(b, json, strlen(json), flags);
}

/* Row `row` of b as JSON (flags), read back into c, must encode to the same protobuf bytes and print the same. */
static void json_round_trip(tp_dyn_batch *b, size_t row, tp_dyn_batch *c, int flags)
{
    tp_dyn_text t1 = {0}, t2 = {0};
    uint8_t e1[4096], e2[4096];
    size_t n1 = 0, n2 = 0;
    CHECK_ERR(tp_dyn_row_json(b, row, flags, &t1), TP_OK);
    size_t crow = c->count;
    tp_err e = tp_dyn_json_read(c, t1.p, t1.len, 0);
    CHECK_ERR(e, TP_OK);
    if (e) {
        fprintf(stderr, "  %s  for %s", c->error, t1.p);
    } else {
        CHECK_ERR(tp_dyn_encode(b, row, e1, sizeof e1, &n1), TP_OK);
        CHECK_ERR(tp_dyn_encode(c, crow, e2, sizeof e2, &n2), TP_OK);
        CHECK_INT(n1, n2);
        CHECK(n1 == n2 && memcmp(e1, e2, n1) == 0);
        CHECK_ERR(tp_dyn_row_json(c, crow, flags, &t2), TP_OK);
        CHECK_STR(t2.p, t1.p);
        /* and the decoder takes what the encoder wrote (Timestamps at the ends of the range included) */
        CHECK_ERR(tp_dyn_decode(c, e1, n1), TP_OK);
    }
    tp_dyn_text_free(&t1);
    tp_dyn_text_free(&t2);
}

static void test_round_trip(tp_schema *s)
{
    tp_dyn_batch *b = NULL, *c = NULL;
    CHECK_ERR(tp_dyn_batch_new(s, 4, 1 << 16, &b), TP_OK);
    CHECK_ERR(tp_dyn_batch_new(s, 64, 1 << 16, &c), TP_OK);
    const char *files[] = {"ev_full.bin", "ev_sparse.bin"};
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        uint8_t *msg = slurp(files[i], &len);
        CHECK_ERR(tp_dyn_decode(b, msg, len), TP_OK);
        json_round_trip(b, b->count - 1, c, 0);
        json_round_trip(b, b->count - 1, c, TP_DYN_JSON_PROTO_NAMES);
        free(msg);
    }
    /* The values themselves, from the lowerCamelCase form of ev_full. */
    char buf[128];
    CHECK_STR(str(c, col(c, "vin")->cells[0], buf, sizeof buf), "WVWZZZ1JZXW000001");
    CHECK_INT(col(c, "recorded_at")->cells[0].i, 1714564800250000000LL);
    CHECK(col(c, "seq")->cells[0].u == UINT64_MAX);
    CHECK(col(c, "can_torque_nmm")->cells[0].i == INT64_MIN);
    CHECK_INT(col(c, "ambient_temp_c")->cells[0].i, INT32_MIN);
    CHECK_INT(col(c, "raw_frame")->cells[0].s.len, 12);
    CHECK(signbit(col(c, "latitude")->cells[0].d));
    const tp_dyn_column *tags = col(c, "tags");
    CHECK_STR(str(c, tags->elems[tags->cells[0].a.off + 2], buf, sizeof buf), "Zürich \xe2\x98\x83 \t tab");

    /* Generated rows with the special values: NaN, infinities, extremes, empty arrays, absent Timestamp. */
    tp_dyn_batch_clear(b);
    tp_dyn_batch_clear(c);
    const char *lines[] = {
        "{\"vin\":\"A\",\"latitude\":\"NaN\",\"battery\":{\"cellVoltagesV\":[\"Infinity\",\"-Infinity\",1e-45,"
        "3.40282347e38]}}",
        "{\"vin\":\"B\",\"recordedAt\":\"1677-09-21T00:12:43.145224192Z\",\"seq\":\"0\",\"odometerM\":"
        "\"9223372036854775807\"}",
        "{\"vin\":\"C\",\"recordedAt\":\"2262-04-11T23:47:16.854775807Z\",\"latitude\":4.9e-324,\"rawFrame\":\"\"}",
        "{\"vin\":\"D\",\"tags\":[],\"tripDeltas\":[],\"driveState\":7,\"can\":{}}",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        tp_err e = rd(b, lines[i], 0);
        CHECK_ERR(e, TP_OK);
        if (e)
            fprintf(stderr, "  line %zu: %s\n", i, b->error);
    }
    for (size_t i = 0; i < b->count; i++) {
        json_round_trip(b, i, c, 0);
        json_round_trip(b, i, c, TP_DYN_JSON_PROTO_NAMES);
    }
    CHECK(isnan(col(b, "latitude")->cells[0].d));
    CHECK_INT(col(b, "recorded_at")->cells[1].i, INT64_MIN);
    CHECK_INT(col(b, "recorded_at")->cells[2].i, INT64_MAX);
    CHECK_INT(col(b, "drive_state")->cells[3].i, 7);
    tp_dyn_batch_free(b);
    tp_dyn_batch_free(c);
}

/* Forms the mapping accepts besides the writer's own. */
static void test_accepted_forms(tp_schema *s)
{
    tp_dyn_batch *b = NULL;
    CHECK_ERR(tp_dyn_batch_new(s, 8, 1 << 16, &b), TP_OK);
    const char *line =
        " {\"vin\" : \"V\\u00fc\\ud83d\\ude00\\/x\", \"recorded_at\":\"2024-05-01T14:00:00.5+02:00\","
        "\"seq\":18446744073709551615,\"battery\":{\"state_of_charge_pct\":\"87.5\",\"minCellTempDc\":\"-105\","
        "\"current_a\":null,\"cell_voltages_v\":null},\"drive_state\":2,\"odometerM\":-42,"
        "\"raw_frame\":\"AAH-_yJxdW90ZWQi\",\"can\":{\"wheel_speed_fl\":1e3,\"torqueNmm\":\"-9223372036854775808\","
        "\"hv_interlock\":false},\"fault_codes\":[1,\"2\",3.0],\"ecuSerial\":\"18446744073709551615\","
        "\"ambient_temp_c\":-2147483648,\"tags\":[\"a\",\"\"],\"latitude\":\"-1.5e2\"}\r\n";
    tp_err e = rd(b, line, 0);
    CHECK_ERR(e, TP_OK);
    if (e)
        fprintf(stderr, "  %s\n", b->error);
    char buf[64];
    CHECK_STR(str(b, col(b, "vin")->cells[0], buf, sizeof buf), "V\xc3\xbc\xf0\x9f\x98\x80/x");
    CHECK_INT(col(b, "recorded_at")->cells[0].i, 1714564800500000000LL); /* 14:00+02:00 = 12:00Z */
    CHECK(col(b, "seq")->cells[0].u == UINT64_MAX);
    CHECK(col(b, "battery_state_of_charge_pct")->cells[0].f == 87.5f);
    CHECK_INT(col(b, "battery_min_cell_temp_dc")->cells[0].i, -105);
    CHECK_INT(col(b, "battery_current_a")->present[0], 0);
    CHECK_INT(col(b, "battery_cell_voltages_v")->cells[0].a.count, 0);
    CHECK_INT(col(b, "drive_state")->cells[0].i, 2);
    CHECK_INT(col(b, "odometer_m")->cells[0].i, -42);
    CHECK_INT(col(b, "raw_frame")->cells[0].s.len, 12); /* URL-safe, unpadded: 00 01 fe ff "quoted" */
    CHECK(memcmp(b->bytes + col(b, "raw_frame")->cells[0].s.off, "\x00\x01\xfe\xff\"quoted\"", 12) == 0);
    CHECK(col(b, "can_wheel_speed_fl")->cells[0].u == 1000);
    CHECK(col(b, "can_torque_nmm")->cells[0].i == INT64_MIN);
    CHECK_INT(col(b, "can_hv_interlock")->present[0], 1);
    const tp_dyn_column *fc = col(b, "fault_codes");
    CHECK_INT(fc->cells[0].a.count, 3);
    CHECK(fc->elems[fc->cells[0].a.off + 2].u == 3);
    CHECK(col(b, "ecu_serial")->cells[0].u == UINT64_MAX);
    CHECK(col(b, "latitude")->cells[0].d == -150.0);

    /* Timestamps: 0-9 fraction digits, offsets, lower-case t/z, a leap day. */
    static const struct {
        const char *ts;
        long long ns;
    } ts[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"1970-01-01T00:00:00.1Z", 100000000},
        {"1970-01-01t00:00:00.123456789z", 123456789},
        {"1970-01-01T01:00:00+01:00", 0},
        {"1969-12-31T23:59:59.999999999Z", -1},
        {"1969-12-31T19:00:00-05:00", 0},
        {"2024-02-29T12:00:00Z", 1709208000000000000LL},
    };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        char l[128];
        snprintf(l, sizeof l, "{\"vin\":\"x\",\"recordedAt\":\"%s\"}", ts[i].ts);
        tp_dyn_batch_clear(b);
        CHECK_ERR(rd(b, l, 0), TP_OK);
        CHECK_INT(col(b, "recorded_at")->cells[0].i, ts[i].ns);
    }
    /* Base64: standard padded and unpadded, URL-safe. */
    static const char *const b64[] = {"\"+/8=\"", "\"+/8\"", "\"-_8\"", "\"-_8=\""};
    for (size_t i = 0; i < 4; i++) {
        char l[128];
        snprintf(l, sizeof l, "{\"vin\":\"x\",\"rawFrame\":%s}", b64[i]);
        tp_dyn_batch_clear(b);
        CHECK_ERR(rd(b, l, 0), TP_OK);
        CHECK_INT(col(b, "raw_frame")->cells[0].s.len, 2);
        CHECK(memcmp(b->bytes + col(b, "raw_frame")->cells[0].s.off, "\xfb\xff", 2) == 0);
    }
    /* Unknown keys and enum names skipped with TP_DYN_JSON_IGNORE_UNKNOWN, nested values of any shape included. */
    tp_dyn_batch_clear(b);
    CHECK_ERR(rd(b, "{\"vin\":\"x\",\"newField\":{\"a\":[1,{\"b\":null}],\"c\":\"d\"},\"battery\":{\"extra\":1},"
                    "\"driveState\":\"DRIVE_STATE_FLYING\"}", TP_DYN_JSON_IGNORE_UNKNOWN), TP_OK);
    CHECK_INT(b->count, 1);
    CHECK_INT(col(b, "drive_state")->present[0], 0);
    tp_dyn_batch_free(b);
}

/* Each line is refused with TP_ERR_PARSE, a sentence holding `want`, and the batch as it was. */
static void test_hostile(tp_schema *s)
{
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"", "starts with"},
        {"[]", "one JSON object"},
        {"{\"vin\":\"x\"} x", "follows the record"},
        {"{\"vin\":\"x\"", "expected ',' or '}'"},
        {"{\"lat\":1}", "unknown key \"lat\" in the top level"},
        {"{\"battery\":{\"soc\":1}}", "unknown key \"soc\" in battery"},
        {"{\"vin\":\"a\",\"vin\":\"b\"}", "duplicate key"},
        {"{\"odometerM\":1,\"odometer_m\":2}", "duplicate key"},
        {"{\"battery\":{},\"battery\":null}", "duplicate key"},
        {"{\"vin\":\"\xff\"}", "not valid UTF-8"},
        {"{\"vin\":\"\xc0\xaf\"}", "not valid UTF-8"},
        {"{\"vin\":\"\xed\xa0\x80\"}", "not valid UTF-8"},
        {"{\"vin\":\"\\ud800\"}", "without its low half"},
        {"{\"vin\":\"\\udc00\"}", "lone low surrogate"},
        {"{\"vin\":\"\\x\"}", "unknown escape"},
        {"{\"vin\":\"a\tb\"}", "control character"},
        {"{\"vin\":1}", "needs a JSON string"},
        {"{\"ambientTempC\":2147483648}", "outside the int32 range"},
        {"{\"ambientTempC\":-2147483649}", "outside the int32 range"},
        {"{\"ambientTempC\":\"99999999999999999999999\"}", "outside the int32 range"},
        {"{\"altitudeDm\":1e10}", "outside the sfixed32 range"},
        {"{\"ambientTempC\":1.5}", "not an integer"},
        {"{\"ambientTempC\":\"12abc\"}", "not an integer"},
        {"{\"ambientTempC\":true}", "needs a number"},
        {"{\"seq\":-1}", "outside the uint64 range"},
        {"{\"seq\":18446744073709551616}", "outside the uint64 range"},
        {"{\"odometerM\":9223372036854775808}", "outside the int64 range"},
        {"{\"can\":{\"wheelSpeedFl\":4294967296}}", "outside the uint32 range"},
        {"{\"odometerM\":1e400}", "not an integer"},
        {"{\"latitude\":1e400}", "outside the double range"},
        {"{\"battery\":{\"stateOfChargePct\":1e39}}", "outside the float range"},
        {"{\"latitude\":\"nan\"}", "not a number"},
        {"{\"latitude\":01}", "not a JSON value"},
        {"{\"latitude\":.5}", "not a JSON value"},
        {"{\"latitude\":1.}", "not a JSON value"},
        {"{\"latitude\":NaN}", "not a JSON value"},
        {"{\"latitude\":-}", "not a JSON value"},
        {"{\"can\":{\"hvInterlock\":\"true\"}}", "needs true or false"},
        {"{\"driveState\":\"PARKED\"}", "not a value of enum fleet.ev.v1.DriveState"},
        {"{\"driveState\":2147483648}", "outside the int32 range"},
        {"{\"driveState\":true}", "needs a value name or a number"},
        {"{\"rawFrame\":\"a\"}", "not base64"},
        {"{\"rawFrame\":\"ab=c\"}", "not base64"},
        {"{\"rawFrame\":\"ab!c\"}", "not base64"},
        {"{\"rawFrame\":\"abc==\"}", "not base64"},
        {"{\"rawFrame\":\"a===\"}", "not base64"},
        {"{\"recordedAt\":\"2024-05-01 12:00:00Z\"}", "not an RFC 3339 time"},
        {"{\"recordedAt\":\"2024-05-01T12:00:00\"}", "not an RFC 3339 time"},
        {"{\"recordedAt\":\"2024-02-30T12:00:00Z\"}", "not an RFC 3339 time"},
        {"{\"recordedAt\":\"2023-02-29T12:00:00Z\"}", "not an RFC 3339 time"},
        {"{\"recordedAt\":\"2024-05-01T24:00:00Z\"}", "not an RFC 3339 time"},
        {"{\"recordedAt\":\"2024-05-01T12:00:60Z\"}", "not an RFC 3339 time"},
        {"{\"recordedAt\":\"2024-05-01T12:00:00.1234567890Z\"}", "not an RFC 3339 time"},
        {"{\"recordedAt\":\"2024-05-01T12:00:00.Z\"}", "not an RFC 3339 time"},
        {"{\"recordedAt\":\"2024-05-01T12:00:00+0200\"}", "not an RFC 3339 time"},
        {"{\"recordedAt\":\"1677-09-21T00:12:43.145224191Z\"}", "not an RFC 3339 time within"},
        {"{\"recordedAt\":\"1677-09-21T00:12:42Z\"}", "not an RFC 3339 time within"},
        {"{\"recordedAt\":\"2262-04-11T23:47:16.854775808Z\"}", "not an RFC 3339 time within"},
        {"{\"recordedAt\":\"9999-12-31T23:59:59Z\"}", "not an RFC 3339 time within"},
        {"{\"recordedAt\":1714564800}", "not an RFC 3339 time"},
        {"{\"recordedAt\":{\"seconds\":1}}", "needs a scalar"},
        {"{\"battery\":1}", "needs a JSON object or null"},
        {"{\"battery\":[]}", "needs a JSON object or null"},
        {"{\"tags\":\"a\"}", "needs a JSON array or null"},
        {"{\"tags\":[null]}", "not null"},
        {"{\"tags\":[[\"a\"]]}", "not an array"},
        {"{\"faultCodes\":[1,-1]}", "outside the uint32 range"},
        {"{\"vin\":\"x\",}", "object key must be a string"},
        {"{1:2}", "object key must be a string"},
        {"{\"vin\" \"x\"}", "':' must follow"},
        {"{\"vin\":tru}", "not a JSON value"},
    };
    tp_dyn_batch *b = NULL;
    CHECK_ERR(tp_dyn_batch_new(s, 4, 1 << 16, &b), TP_OK);
    CHECK_ERR(rd(b, "{\"vin\":\"keep\",\"tags\":[\"t\"]}", 0), TP_OK);
    size_t bytes = b->bytes_len, used = b->used, elems = col(b, "tags")->elems_len;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tp_err e = rd(b, bad[i].json, 0);
        CHECK_ERR(e, TP_ERR_PARSE);
        if (!strstr(b->error, bad[i].want)) {
            CHECK(!"the sentence names the fault");
            fprintf(stderr, "  %s\n  -> %s (want \"%s\")\n", bad[i].json, b->error, bad[i].want);
        }
        CHECK_INT(b->count, 1);
        CHECK_INT(b->bytes_len, bytes);
        CHECK_INT(b->used, used);
        CHECK_INT(col(b, "tags")->elems_len, elems);
    }
    /* A NUL byte inside the line is not whitespace. */
    CHECK_ERR(tp_dyn_json_read(b, "{\"vin\":\"x\"}\0", 12, 0), TP_ERR_PARSE);

    /* Deep nesting: under a known key it is a type error at the first level; in a skipped value it is capped. */
    size_t deep = 100000;
    char *d = malloc(2 * deep + 64);
    size_t n = (size_t)sprintf(d, "{\"vin\":\"x\",\"u\":");
    memset(d + n, '[', deep);
    memset(d + n + deep, ']', deep);
    strcpy(d + n + 2 * deep, "}");
    CHECK_ERR(rd(b, d, TP_DYN_JSON_IGNORE_UNKNOWN), TP_ERR_PARSE);
    CHECK(strstr(b->error, "nested more than 64 deep") != NULL);
    n = (size_t)sprintf(d, "{\"battery\":");
    memset(d + n, '{', deep);
    d[n + deep] = 0;
    CHECK_ERR(rd(b, d, 0), TP_ERR_PARSE);
    CHECK(strstr(b->error, "object key must be a string") != NULL);
    /* Nesting just under the cap is fine. */
    n = (size_t)sprintf(d, "{\"vin\":\"x\",\"u\":");
    memset(d + n, '[', 60);
    memset(d + n + 60, ']', 60);
    strcpy(d + n + 120, "}");
    CHECK_ERR(rd(b, d, TP_DYN_JSON_IGNORE_UNKNOWN), TP_OK);
    /* A huge number: an integer of 100000 digits is out of range, a long float text is refused. */
    n = (size_t)sprintf(d, "{\"seq\":");
    memset(d + n, '9', deep);
    strcpy(d + n + deep, "}");
    CHECK_ERR(rd(b, d, 0), TP_ERR_PARSE);
    CHECK(strstr(b->error, "not an integer") != NULL || strstr(b->error, "outside") != NULL);
    n = (size_t)sprintf(d, "{\"latitude\":0.");
    memset(d + n, '1', deep);
    strcpy(d + n + deep, "}");
    CHECK_ERR(rd(b, d, 0), TP_ERR_PARSE);
    free(d);
    CHECK_INT(b->count, 2);

    /* The budget: strings and elements beyond max_bytes are TP_ERR_FULL, the batch unchanged. */
    tp_dyn_batch *small = NULL;
    CHECK_ERR(tp_dyn_batch_new(s, 2, 64, &small), TP_OK);
    CHECK_ERR(rd(small, "{\"vin\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}", 0),
              TP_ERR_FULL);
    CHECK_ERR(rd(small, "{\"faultCodes\":[1,2,3,4,5,6,7,8,9]}", 0), TP_ERR_FULL);
    CHECK_INT(small->used, 0);
    CHECK_ERR(rd(small, "{\"vin\":\"ok\"}", 0), TP_OK);
    CHECK_ERR(rd(small, "{\"vin\":\"ok\"}", 0), TP_OK);
    CHECK_ERR(rd(small, "{\"vin\":\"ok\"}", 0), TP_ERR_FULL); /* capacity 2 */
    tp_dyn_batch_free(small);
    tp_dyn_batch_free(b);
}

/* Steady state: once the arena and arrays have grown, reading the same kind of row again grows nothing. */
static void test_no_growth(tp_schema *s)
{
    tp_dyn_batch *b = NULL;
    CHECK_ERR(tp_dyn_batch_new(s, 1, 1 << 16, &b), TP_OK);
    const char *line = "{\"vin\":\"WVWZZZ1JZXW000001\",\"tags\":[\"a\",\"b\"],\"tripDeltas\":[\"1\",\"2\"],"
                       "\"rawFrame\":\"AAH+/w==\"}";
    CHECK_ERR(rd(b, line, 0), TP_OK);
    uint8_t *bytes = b->bytes;
    size_t cap = b->bytes_cap, ecap = col(b, "tags")->elems_cap;
    for (int i = 0; i < 1000; i++) {
        tp_dyn_batch_clear(b);
        CHECK_ERR(rd(b, line, 0), TP_OK);
    }
    CHECK(b->bytes == bytes);
    CHECK_INT(b->bytes_cap, cap);
    CHECK_INT(col(b, "tags")->elems_cap, ecap);
    tp_dyn_batch_free(b);
}

/* JSON names are keys: the loader refuses one that is not UTF-8 (the writer would print it, the reader refuse it) or
 * that names two fields (protoc refuses that too, a hand-made set need not). */
static void test_json_names(void)
{
    size_t len;
    uint8_t *src = slurp("ev_telemetry.pb", &len);
    uint8_t *at = NULL;
    for (size_t i = 0; i + 10 <= len && !at; i++)
        if (!memcmp(src + i, "R\x08rawFrame", 10))
            at = src + i;
    CHECK(at != NULL);
    if (!at) {
        free(src);
        return;
    }
    static const struct {
        const char *name, *want;
    } bad[] = {{"rawFr\x9f\x90" "e", "json_name that is empty, not UTF-8"},
               {"raw\"Fram", "json_name that is empty, not UTF-8"},
               {"latitude", "fields raw_frame and latitude of message fleet.ev.v1.EvTelemetry have the same JSON name"}};
    for (size_t i = 0; i < 3; i++) {
        memcpy(at + 2, bad[i].name, 8);
        tp_schema *s = NULL;
        char err[512] = "";
        CHECK_ERR(tp_schema_load(src, len, "fleet.ev.v1.EvTelemetry", &s, err, sizeof err), TP_ERR_INVALID_ARG);
        if (!strstr(err, bad[i].want)) {
            CHECK(!"the sentence names the json_name");
            fprintf(stderr, "  %s\n", err);
        }
        tp_schema_free(s);
    }
    memcpy(at + 2, "rawFrame", 8);
    /* an enum value name that is not an identifier (NDJSON would print it and fail to read it back) */
    at = NULL;
    for (size_t i = 0; i + 18 <= len && !at; i++)
        if (!memcmp(src + i, "DRIVE_STATE_PARKED", 18))
            at = src + i;
    CHECK(at != NULL);
    if (at) {
        at[5] = '-';
        tp_schema *s = NULL;
        char err[512] = "";
        CHECK_ERR(tp_schema_load(src, len, "fleet.ev.v1.EvTelemetry", &s, err, sizeof err), TP_ERR_INVALID_ARG);
        CHECK(strstr(err, "enum fleet.ev.v1.DriveState has a value (number 1) whose name is not an identifier"));
        tp_schema_free(s);
    }
    free(src);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_dynjson_read DATA_DIR\n");
        return 2;
    }
    dir = argv[1];
    tp_schema *s = ev_schema();
    if (!s)
        return check_exit();
    test_round_trip(s);
    test_accepted_forms(s);
    test_hostile(s);
    test_no_growth(s);
    test_json_names();
    tp_schema_free(s);
    return check_exit();
}
