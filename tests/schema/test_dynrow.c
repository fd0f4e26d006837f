/* The dynamic decoder/encoder and the NDJSON writer on fleet.ev.v1.EvTelemetry: messages protoc encoded (build time)
 * decode to the expected values, encode back byte for byte, and print per protobuf's JSON mapping; packed and
 * unpacked forms, unknown fields, bad wire types, truncation at every length, bad UTF-8, bad Timestamps, the byte
 * budget and the row capacity (the batch is unchanged after every error). Argument: the build directory. */
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

/* Decodes msg, checks it encodes back to exactly msg. */
static void round_trip(tp_dyn_batch *b, const uint8_t *msg, size_t len)
{
    size_t row = b->count;
    CHECK_ERR(tp_dyn_decode(b, msg, len), TP_OK);
    if (b->count != row + 1)
        return;
    uint8_t out[4096];
    size_t n = 0;
    CHECK_ERR(tp_dyn_encode(b, row, out, sizeof out, &n), TP_OK);
    CHECK_INT(n, len);
    CHECK(n == len && memcmp(out, msg, n) == 0);
    /* Too small a buffer: TP_ERR_FULL at every size below. */
    for (size_t cap = 0; cap < n; cap += 7)
        CHECK_ERR(tp_dyn_encode(b, row, out, cap, &n), TP_ERR_FULL);
}

static void test_full_message(tp_schema *s)
{
    size_t len;
    uint8_t *msg = slurp("ev_full.bin", &len);
    tp_dyn_batch *b = NULL;
    CHECK_ERR(tp_dyn_batch_new(s, 4, 1 << 16, &b), TP_OK);
    round_trip(b, msg, len);
    char buf[128];
    CHECK_INT(b->count, 1);
    CHECK_STR(str(b, col(b, "vin")->cells[0], buf, sizeof buf), "WVWZZZ1JZXW000001");
    CHECK_INT(col(b, "recorded_at")->cells[0].i, 1714564800250000000LL);
    CHECK(col(b, "seq")->cells[0].u == UINT64_MAX);
    CHECK(col(b, "battery_state_of_charge_pct")->cells[0].f == 87.5f);
    CHECK_INT(col(b, "battery_min_cell_temp_dc")->cells[0].i, -105);
    const tp_dyn_column *cv = col(b, "battery_cell_voltages_v");
    CHECK_INT(cv->cells[0].a.count, 5);
    CHECK(cv->elems[cv->cells[0].a.off + 0].f == 3.901f);
    CHECK(cv->elems[cv->cells[0].a.off + 4].f == 0 && signbit(cv->elems[cv->cells[0].a.off + 4].f));
    CHECK_INT(col(b, "battery_current_a")->present[0], 1); /* optional, set to 0: present */
    CHECK(col(b, "battery_current_a")->cells[0].d == 0);
    CHECK_INT(col(b, "drive_state")->cells[0].i, 3);
    CHECK_INT(col(b, "odometer_m")->cells[0].i, -42);
    CHECK_INT(col(b, "raw_frame")->cells[0].s.len, 12);
    CHECK(col(b, "can_wheel_speed_fl")->cells[0].u == 4294967295u);
    CHECK(col(b, "can_torque_nmm")->cells[0].i == INT64_MIN);
    CHECK_INT(col(b, "can_hv_interlock")->cells[0].u, 1);
    const tp_dyn_column *td = col(b, "trip_deltas");
    CHECK_INT(td->cells[0].a.count, 4);
    CHECK(td->elems[td->cells[0].a.off + 2].i == INT64_MAX);
    CHECK_INT(col(b, "fault_codes")->cells[0].a.count, 3);
    CHECK_INT(col(b, "ambient_temp_c")->cells[0].i, INT32_MIN);
    CHECK_INT(col(b, "altitude_dm")->cells[0].i, -1);
    const tp_dyn_column *tags = col(b, "tags");
    CHECK_INT(tags->cells[0].a.count, 3);
    CHECK_STR(str(b, tags->elems[tags->cells[0].a.off + 2], buf, sizeof buf), "Zürich \xe2\x98\x83 \t tab");
    CHECK(signbit(col(b, "latitude")->cells[0].d));
    CHECK_INT(b->unknown_fields, 0);

    tp_dyn_text t = {0};
    CHECK_ERR(tp_dyn_row_json(b, 0, 0, &t), TP_OK);
    CHECK_STR(t.p,
              "{\"vin\":\"WVWZZZ1JZXW000001\",\"recordedAt\":\"2024-05-01T12:00:00.250Z\","
              "\"seq\":\"18446744073709551615\",\"battery\":{\"stateOfChargePct\":87.5,\"packVoltageV\":398.25,"
              "\"minCellTempDc\":-105,\"maxCellTempDc\":312,\"cellVoltagesV\":[3.901,3.899,3.9,0,-0],\"currentA\":0},"
              "\"driveState\":\"DRIVE_STATE_CHARGING\",\"odometerM\":\"-42\",\"rawFrame\":\"AAH+/yJxdW90ZWQi\","
              "\"can\":{\"wheelSpeedFl\":4294967295,\"brakeFlags\":2863311530,\"torqueNmm\":\"-9223372036854775808\","
              "\"hvInterlock\":true},\"tripDeltas\":[\"-1\",\"0\",\"9223372036854775807\",\"-9223372036854775808\"],"
              "\"faultCodes\":[7,0,4000000000],\"ecuSerial\":\"18446744073709551614\",\"ambientTempC\":-2147483648,"
              "\"altitudeDm\":-1,\"flags\":\"1\",\"tags\":[\"rain\",\"\",\"Zürich \xe2\x98\x83 \\t tab\"],"
              "\"latitude\":-0}\n");
    t.len = 0;
    CHECK_ERR(tp_dyn_row_json(b, 0, TP_DYN_JSON_PROTO_NAMES, &t), TP_OK);
    CHECK(strstr(t.p, "\"battery\":{\"state_of_charge_pct\":87.5,") != NULL);
    CHECK(strstr(t.p, "\"recorded_at\":\"2024-05-01T12:00:00.250Z\"") != NULL);

    /* Truncated at every length: each prefix decodes or fails cleanly, the batch unchanged by failures. */
    tp_dyn_batch *c = NULL;
    CHECK_ERR(tp_dyn_batch_new(s, 1, 1 << 16, &c), TP_OK);
    int failures = 0;
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, msg, n);
        tp_dyn_batch_clear(c);
        tp_err rc = tp_dyn_decode(c, cut, n);
        if (rc) {
            failures++;
            CHECK_INT(c->count, 0);
            CHECK_INT(c->bytes_len, 0);
            CHECK_INT(c->used, 0);
            CHECK(c->error[0] != 0);
        }
        free(cut);
    }
    CHECK(failures > (int)len / 2);
    tp_dyn_batch_free(c);
    tp_dyn_text_free(&t);
    tp_dyn_batch_free(b);
    free(msg);
}

static void test_sparse(tp_schema *s)
{
    size_t len;
    uint8_t *msg = slurp("ev_sparse.bin", &len);
    tp_dyn_batch *b = NULL;
    CHECK_ERR(tp_dyn_batch_new(s, 2, 4096, &b), TP_OK);
    round_trip(b, msg, len);
    CHECK_INT(col(b, "recorded_at")->present[0], 0);
    CHECK_INT(col(b, "can_hv_interlock")->present[0], 0);
    CHECK_INT(col(b, "battery_current_a")->present[0], 1);
    CHECK_INT(col(b, "battery_cell_voltages_v")->cells[0].a.count, 0);
    tp_dyn_text t = {0};
    CHECK_ERR(tp_dyn_row_json(b, 0, 0, &t), TP_OK);
    CHECK_STR(t.p, "{\"vin\":\"5YJ3E1EA7KF000002\",\"seq\":\"1\",\"battery\":{\"currentA\":-12.5},"
                   "\"driveState\":\"DRIVE_STATE_PARKED\"}\n");
    /* Capacity: the third row does not fit; the batch is as it was. */
    round_trip(b, msg, len);
    CHECK_ERR(tp_dyn_decode(b, msg, len), TP_ERR_FULL);
    CHECK_INT(b->count, 2);
    tp_dyn_batch_clear(b);
    CHECK_INT(b->count, 0);
    round_trip(b, msg, len);
    tp_dyn_text_free(&t);
    tp_dyn_batch_free(b);
    free(msg);
}

static void test_wire_forms(tp_schema *s)
{
    tp_dyn_batch *b = NULL;
    CHECK_ERR(tp_dyn_batch_new(s, 8, 64, &b), TP_OK);
    uint8_t out[256];
    size_t n;
    /* fault_codes (10, unpacked in the schema) sent packed; trip_deltas (9, packed) sent unpacked; both read. */
    static const uint8_t forms[] = {0x52, 0x02, 0x07, 0x08, 0x48, 0x03, 0x48, 0x04};
    CHECK_ERR(tp_dyn_decode(b, forms, sizeof forms), TP_OK);
    const tp_dyn_column *fc = col(b, "fault_codes"), *td = col(b, "trip_deltas");
    CHECK_INT(fc->cells[0].a.count, 2);
    CHECK_INT(fc->elems[fc->cells[0].a.off + 1].u, 8);
    CHECK_INT(td->cells[0].a.count, 2);
    CHECK_INT(td->elems[td->cells[0].a.off + 0].i, -2);
    CHECK_INT(td->elems[td->cells[0].a.off + 1].i, 2);
    /* ... and encode in the schema's form: trip_deltas packed first (field 9), fault_codes unpacked. */
    CHECK_ERR(tp_dyn_encode(b, 0, out, sizeof out, &n), TP_OK);
    static const uint8_t canon[] = {0x4a, 0x02, 0x03, 0x04, 0x50, 0x07, 0x50, 0x08};
    CHECK(n == sizeof canon && !memcmp(out, canon, n));

    /* Unknown fields of every wire type are skipped and counted; a last value wins; nested messages merge. */
    static const uint8_t unk[] = {0x18, 0x01, 0xf8, 0x06, 0x05, 0xf9, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 0xfa, 0x06, 0x01,
                                  0x00, 0xfd, 0x06, 1, 2, 3, 4, 0x18, 0x02, 0x22, 0x02, 0x18, 0x05, 0x22, 0x02, 0x20,
                                  0x06};
    CHECK_ERR(tp_dyn_decode(b, unk, sizeof unk), TP_OK);
    CHECK_INT(b->unknown_fields, 4);
    CHECK_INT(col(b, "seq")->cells[1].u, 2);
    CHECK_INT(col(b, "battery_min_cell_temp_dc")->cells[1].i, -3);
    CHECK_INT(col(b, "battery_max_cell_temp_dc")->cells[1].i, 3);

    struct {
        const char *what;
        const uint8_t *bytes;
        size_t len;
        tp_err want;
        const char *needle;
    } bad[] = {
        {"vin as a varint", (const uint8_t *)"\x08\x01", 2, TP_ERR_DECODE, "field vin (number 1, string) has wire type 0"},
        {"battery as a varint", (const uint8_t *)"\x20\x01", 2, TP_ERR_DECODE, "field battery (number 4) is a message"},
        {"field number 0", (const uint8_t *)"\x00\x01", 2, TP_ERR_DECODE, "field tag is invalid"},
        {"a group", (const uint8_t *)"\xfb\x06", 2, TP_ERR_DECODE, "wire type 3"},
        {"wire type 7", (const uint8_t *)"\xff\x06", 2, TP_ERR_DECODE, "wire type 7"},
        {"a 6-byte tag", (const uint8_t *)"\x98\x80\x80\x80\x80\x00\x01", 7, TP_ERR_DECODE, "field tag is invalid"},
        {"vin not UTF-8", (const uint8_t *)"\x0a\x02\xc3\x28", 4, TP_ERR_DECODE, "field vin is a string but"},
        {"tags surrogate", (const uint8_t *)"\x7a\x03\xed\xa0\x80", 5, TP_ERR_DECODE, "field tags is a string but"},
        {"a length past the end", (const uint8_t *)"\x0a\x05\x41", 3, TP_ERR_TRUNCATED, "field vin claims 5 bytes"},
        {"nested past the end", (const uint8_t *)"\x22\x05\x18\x01", 4, TP_ERR_TRUNCATED, "field battery claims"},
        {"inside nested", (const uint8_t *)"\x22\x02\x0d\x00", 4, TP_ERR_TRUNCATED,
         "field battery.state_of_charge_pct needs 4 bytes"},
        {"negative nanos", (const uint8_t *)"\x12\x0b\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 13, TP_ERR_DECODE,
         "the Timestamp recorded_at (seconds 0, nanos -1)"},
        {"year 3000", (const uint8_t *)"\x12\x06\x08\x80\xa0\xc3\xc7\x7f", 8, TP_ERR_DECODE, "outside 1677-09-21"},
        {"an 11-byte varint", (const uint8_t *)"\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12,
         TP_ERR_VARINT_OVERFLOW, "field seq"},
        {"packed past the end", (const uint8_t *)"\x4a\x03\x01", 3, TP_ERR_TRUNCATED, "packed field trip_deltas"},
        {"packed value cut", (const uint8_t *)"\x4a\x01\x80", 3, TP_ERR_TRUNCATED, "field trip_deltas"},
        {"over the byte budget", (const uint8_t *)"\x0a\x41"
                                                  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
         67, TP_ERR_FULL, "bytes for strings and arrays are used up"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t count = b->count, used = b->used, bytes = b->bytes_len;
        uint64_t unknown = b->unknown_fields;
        uint8_t *copy = malloc(bad[i].len);
        memcpy(copy, bad[i].bytes, bad[i].len);
        CHECK_ERR(tp_dyn_decode(b, copy, bad[i].len), bad[i].want);
        free(copy);
        if (!strstr(b->error, bad[i].needle)) {
            fprintf(stderr, "%s: error \"%s\" does not mention \"%s\"\n", bad[i].what, b->error, bad[i].needle);
            CHECK(0);
        }
        CHECK_INT(b->count, count);
        CHECK_INT(b->used, used);
        CHECK_INT(b->bytes_len, bytes);
        CHECK_INT(b->unknown_fields, unknown);
    }
    /* The rows before the errors are intact, and an array budget failure rolls its elements back. */
    CHECK_INT(fc->elems[fc->cells[0].a.off + 1].u, 8);
    size_t elems = td->elems_len;
    uint8_t many[2 + 16];
    many[0] = 0x4a;
    many[1] = 16;
    memset(many + 2, 1, 16); /* 16 elements x 8 bytes > the 64-byte budget */
    CHECK_ERR(tp_dyn_decode(b, many, sizeof many), TP_ERR_FULL);
    CHECK_INT(td->elems_len, elems);
    /* Timestamps before 1970 and at the edges of the ns range print and round-trip. */
    static const uint8_t old[] = {0x12, 0x0d, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                                  0x10, 0x01}; /* seconds -1, nanos 1 */
    tp_dyn_batch_clear(b);
    round_trip(b, old, sizeof old);
    tp_dyn_text t = {0};
    CHECK_ERR(tp_dyn_row_json(b, 0, 0, &t), TP_OK);
    CHECK_STR(t.p, "{\"recordedAt\":\"1969-12-31T23:59:59.000000001Z\"}\n");
    CHECK_INT(col(b, "recorded_at")->cells[0].i, -999999999);
    tp_dyn_text_free(&t);
    tp_dyn_batch_free(b);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_dynrow DATA_DIR\n");
        return 2;
    }
    dir = argv[1];
    tp_schema *s = ev_schema();
    if (!s)
        return check_exit();
    test_full_message(s);
    test_sparse(s);
    test_wire_forms(s);
    tp_schema_free(s);
    return check_exit();
}
