/* Tests for the NDJSON record writer/parser and the line reader: exact round trips of random and edge values,
 * the accepted input forms, and every error path with its message. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "codec/record_json_full.h"
#include "telepack/record_json.h"

static uint64_t rng_state = 0x1234567887654321ull;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double bits_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static float bits_float(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Same value, bit for bit, except that every NaN equals every NaN (JSON carries no NaN payload). */
static int same_double(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

static int same_float(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

static int same_record(const tp_record *a, const tp_record *b)
{
    return a->vehicle_id == b->vehicle_id && a->sampled_at_ms == b->sampled_at_ms && a->seq == b->seq &&
           same_double(a->latitude, b->latitude) && same_double(a->longitude, b->longitude) &&
           same_float(a->speed_kmh, b->speed_kmh) && same_float(a->heading_deg, b->heading_deg) &&
           same_float(a->accuracy_m, b->accuracy_m) && a->meter_status == b->meter_status;
}

/* The fast path of tp_record_json_parse and the jansson-only parser give the same result and record. */
static int agree(const char *text, size_t len)
{
    tp_record a, b;
    char ma[256], mb[256];
    tp_err ea = tp_record_json_parse(text, len, &a, ma, sizeof ma);
    tp_err eb = tp_record_json_parse_full(text, len, 0, &b, mb, sizeof mb);
    if (ea != eb || (ea == TP_OK && !same_record(&a, &b)) || (ea != TP_OK && strcmp(ma, mb))) {
        fprintf(stderr, "fast and full parsers disagree on %.*s: %s / %s\n", (int)len, text, ma, mb);
        return 0;
    }
    return 1;
}

static int round_trip(const tp_record *r)
{
    char buf[TP_RECORD_JSON_MAX];
    size_t n = 0;
    if (tp_record_json_write(r, buf, sizeof buf, &n) != TP_OK)
        return 0;
    tp_record back;
    char msg[256];
    if (!agree(buf, n))
        return 0;
    tp_err e = tp_record_json_parse(buf, n, &back, msg, sizeof msg);
    if (e != TP_OK) {
        fprintf(stderr, "parse of %.*s failed: %s\n", (int)n, buf, msg);
        return 0;
    }
    if (!same_record(r, &back)) {
        fprintf(stderr, "round trip changed %.*s\n", (int)n, buf);
        return 0;
    }
    return 1;
}

static void test_known_output(void)
{
    tp_record r = {10001, 1767225600003, 1, 35.681234, 139.767052, 37.4f, 118.2f, 4.5f, TP_METER_HIRED};
    char buf[TP_RECORD_JSON_MAX];
    size_t n;
    CHECK_ERR(tp_record_json_write(&r, buf, sizeof buf, &n), TP_OK);
    buf[n] = 0;
    CHECK_STR(buf, "{\"vehicle_id\":10001,\"sampled_at_ms\":1767225600003,\"seq\":1,\"latitude\":35.681234,"
                   "\"longitude\":139.767052,\"speed_kmh\":37.4,\"heading_deg\":118.2,\"accuracy_m\":4.5,"
                   "\"meter_status\":\"METER_STATUS_HIRED\"}");

    tp_record z = {0};
    CHECK_ERR(tp_record_json_write(&z, buf, sizeof buf, &n), TP_OK);
    buf[n] = 0;
    CHECK_STR(buf, "{\"vehicle_id\":0,\"sampled_at_ms\":0,\"seq\":0,\"latitude\":0,\"longitude\":0,\"speed_kmh\":0,"
                   "\"heading_deg\":0,\"accuracy_m\":0,\"meter_status\":\"METER_STATUS_UNKNOWN\"}");

    /* Big unsigned values as strings, negatives, specials, unnamed enum numbers. */
    tp_record e = {UINT64_MAX, INT64_MIN, (uint64_t)INT64_MAX + 1, -0.0, -180.0, NAN, INFINITY, -INFINITY, 7};
    CHECK_ERR(tp_record_json_write(&e, buf, sizeof buf, &n), TP_OK);
    buf[n] = 0;
    CHECK_STR(buf, "{\"vehicle_id\":\"18446744073709551615\",\"sampled_at_ms\":-9223372036854775808,"
                   "\"seq\":\"9223372036854775808\",\"latitude\":-0.0,\"longitude\":-180,\"speed_kmh\":\"NaN\","
                   "\"heading_deg\":\"Infinity\",\"accuracy_m\":\"-Infinity\",\"meter_status\":7}");
    CHECK(round_trip(&e));

    tp_record m = {1, 2, (uint64_t)INT64_MAX, 0.1, -35.5, 0.1f, 359.9f, 3.0f, -1};
    CHECK_ERR(tp_record_json_write(&m, buf, sizeof buf, &n), TP_OK);
    buf[n] = 0;
    CHECK_STR(buf, "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"seq\":9223372036854775807,\"latitude\":0.1,"
                   "\"longitude\":-35.5,\"speed_kmh\":0.1,\"heading_deg\":359.9,\"accuracy_m\":3,"
                   "\"meter_status\":-1}");
    CHECK(round_trip(&m));
}

static void test_edge_round_trips(void)
{
    static const double doubles[] = {
        0.0, -0.0, 1.0, -1.0, 0.1, 1e-7, 35.6812345, 139.7670521, -90.0, 90.0, -180.0, 180.0, 1e15, 9.0e15,
        9007199254740993.0, 1e16, 1e300, -1e-300, DBL_MAX, -DBL_MAX, DBL_MIN, 4.9406564584124654e-324,
        2.2250738585072009e-308, 0.30000000000000004, 123456789.123456789, 1.0 / 3.0, M_PI, -M_E,
        35.681234000000003, 35.68123400000001,
    };
    static const float floats[] = {
        0.0f, -0.0f, 0.1f, 37.4f, 359.9f, 1e-7f, 16777217.0f, 3.4028235e38f, -3.4028235e38f, 1.17549435e-38f,
        1.4e-45f, 1.0f / 3.0f, 123456.789f, 4.5f, 15.0f,
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++) {
        tp_record r = {1, 1, 1, doubles[i], -doubles[i], 0, 0, 0, 0};
        ok &= round_trip(&r);
    }
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        tp_record r = {1, 1, 1, 0, 0, floats[i], -floats[i], floats[i] * 0.5f, 0};
        ok &= round_trip(&r);
    }
    CHECK(ok);
    tp_record ints[] = {
        {UINT64_MAX, INT64_MAX, UINT64_MAX, 0, 0, 0, 0, 0, INT32_MAX},
        {(uint64_t)INT64_MAX, INT64_MIN, (uint64_t)INT64_MAX + 1, 0, 0, 0, 0, 0, INT32_MIN},
        {0, -1, 0, 0, 0, 0, 0, 0, TP_METER_OUT_OF_SERVICE},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        CHECK(round_trip(&ints[i]));
}

static void test_random_round_trips(void)
{
    int ok = 1;
    char buf[TP_RECORD_JSON_MAX];
    size_t longest = 0;
    for (int i = 0; i < 20000 && ok; i++) {
        tp_record r;
        r.vehicle_id = rnd() >> (rnd() % 64);
        r.sampled_at_ms = (int64_t)(rnd() >> (rnd() % 64));
        r.seq = rnd() >> (rnd() % 64);
        if (i % 2) {
            /* Any bit pattern, NaNs and subnormals included. */
            r.latitude = bits_double(rnd());
            r.longitude = bits_double(rnd());
            r.speed_kmh = bits_float((uint32_t)rnd());
            r.heading_deg = bits_float((uint32_t)rnd());
            r.accuracy_m = bits_float((uint32_t)rnd());
        } else {
            /* Values like a receiver's: quantized coordinates, tenths. */
            r.latitude = (double)(int64_t)(rnd() % 180000000 - 90000000) / 1e6;
            r.longitude = (double)(int64_t)(rnd() % 3600000000u - 1800000000) / 1e7;
            r.speed_kmh = (float)((double)(rnd() % 2000) / 10.0);
            r.heading_deg = (float)((double)(rnd() % 3600) / 10.0);
            r.accuracy_m = (float)((double)(rnd() % 1000) / 10.0);
        }
        r.meter_status = (int32_t)(rnd() % 8) - 1;
        size_t n;
        if (tp_record_json_write(&r, buf, sizeof buf, &n) != TP_OK) {
            ok = 0;
            break;
        }
        if (n > longest)
            longest = n;
        ok &= round_trip(&r);
    }
    CHECK(ok);
    CHECK(longest <= TP_RECORD_JSON_MAX);
}

/* The shortest form is used for quantized coordinates: 6 decimals stay 6 decimals. */
static void test_shortest_form(void)
{
    char buf[TP_RECORD_JSON_MAX];
    size_t n;
    int ok = 1;
    for (int i = 0; i < 2000; i++) {
        int64_t units = (int64_t)(rnd() % 360000000) - 180000000;
        tp_record r = {1, 1, 1, (double)units / 1e6, 0, 0, 0, 0, 0};
        CHECK_ERR(tp_record_json_write(&r, buf, sizeof buf, &n), TP_OK);
        buf[n] = 0;
        const char *lat = strstr(buf, "\"latitude\":") + 11;
        const char *end = strchr(lat, ',');
        const char *dot = memchr(lat, '.', (size_t)(end - lat));
        if (dot && end - dot - 1 > 6) {
            fprintf(stderr, "not shortest: %s\n", buf);
            ok = 0;
        }
    }
    CHECK(ok);
}

static void test_write_errors(void)
{
    tp_record r = {10001, 1767225600003, 1, 35.681234, 139.767052, 37.4f, 118.2f, 4.5f, TP_METER_HIRED};
    char buf[TP_RECORD_JSON_MAX];
    size_t n = 0, full;
    CHECK_ERR(tp_record_json_write(&r, buf, sizeof buf, &full), TP_OK);
    CHECK_ERR(tp_record_json_write(&r, buf, full - 1, &n), TP_ERR_FULL);
    CHECK_ERR(tp_record_json_write(&r, buf, full, &n), TP_OK);
    CHECK_INT(n, full);
    CHECK_ERR(tp_record_json_write(NULL, buf, sizeof buf, &n), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_record_json_write(&r, NULL, sizeof buf, &n), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_record_json_write(&r, buf, sizeof buf, NULL), TP_ERR_INVALID_ARG);
}

static tp_err parse(const char *s, tp_record *r, char *msg, size_t cap)
{
    check_count++;
    if (!agree(s, strlen(s)))
        check_failures++;
    return tp_record_json_parse(s, strlen(s), r, msg, cap);
}

/* Inputs near the edges of the fast path's grammar: each must give what the jansson parser gives. */
static void test_fast_path_edges(void)
{
    static const char *const inputs[] = {
        "{\"vehicle_id\":1,\"sampled_at_ms\":2}",
        " { \"vehicle_id\" : 1 ,\n\t\"sampled_at_ms\" : -2 } \r\n",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2}}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2} x",
        "{\"vehicle_id\":1 \"sampled_at_ms\":2}",
        "{\"vehicle_id\":01,\"sampled_at_ms\":2}",
        "{\"vehicle_id\":-0,\"sampled_at_ms\":2}",
        "{\"vehicle_id\":9223372036854775807,\"sampled_at_ms\":-9223372036854775808}",
        "{\"vehicle_id\":9223372036854775808,\"sampled_at_ms\":2}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":-9223372036854775809}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":-0}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":-0.0}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":1.}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":.5}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":1e}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":1E+2}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":1e400}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":-1e400}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":1e-400}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":123456789012345678901234567890}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":0.1000000000000000055511151231257827021181583404541015625}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"latitude\":0.10000000000000000555111512312578270211815834045410156250000000000000000000001}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"speed_kmh\":3.4028235677973366e38}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"speed_kmh\":3.4028235677973362e38}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"speed_kmh\":16777217}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"meter_status\":\"METER_STATUS_HIRED\"}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"meter_status\":\"METER_STATUS_HIRED2\"}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"meter_status\":\"METER_STATUS_\\u0048IRED\"}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"meter_status\":-2147483649}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"meter_status\":2.0}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"meter_status\":\"METER_STATUS_HIRED}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"seq\":1,\"seq\":2}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"seq\":null}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"seq\":1.0}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"v\\u0065hicle\":1}",
        "{\"vehicle_\\u0069d\":1,\"sampled_at_ms\":2}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"seq\":-}",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"seq\"",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"seq\":",
        "{\"vehicle_id\":1,\"sampled_at_ms\"",
        "{\"vehicle_id\":1,\"sampled_at_ms\":2",
        "{\"vehicle_id",
        "{",
        "{}",
        "{\"vehicle_id\":1}",
        "",
        "   ",
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
        ok &= agree(inputs[i], strlen(inputs[i]));
    /* Every prefix of a canonical line. */
    const char *line = "{\"vehicle_id\":10001,\"sampled_at_ms\":1767225600003,\"seq\":1,\"latitude\":35.681234,"
                       "\"longitude\":-139.767052,\"speed_kmh\":37.4,\"heading_deg\":118.2,\"accuracy_m\":4.5e0,"
                       "\"meter_status\":\"METER_STATUS_HIRED\"}";
    for (size_t n = 0; n <= strlen(line); n++)
        ok &= agree(line, n);
    CHECK(ok);
}

static void test_parse_forms(void)
{
    tp_record r;
    char msg[256];
    /* camelCase names, strings for 64-bit integers, numeric enum. */
    CHECK_ERR(parse("{\"vehicleId\":\"18446744073709551615\",\"sampledAtMs\":\"-5\",\"seq\":\"0\",\"latitude\":35,"
                    "\"longitude\":\"-139.5\",\"speedKmh\":\"1e1\",\"headingDeg\":90,\"accuracyM\":null,"
                    "\"meterStatus\":3}",
                    &r, msg, sizeof msg),
              TP_OK);
    CHECK(r.vehicle_id == UINT64_MAX);
    CHECK_INT(r.sampled_at_ms, -5);
    CHECK_INT(r.seq, 0);
    CHECK(r.latitude == 35.0);
    CHECK(r.longitude == -139.5);
    CHECK(r.speed_kmh == 10.0f);
    CHECK(r.heading_deg == 90.0f);
    CHECK(r.accuracy_m == 0.0f);
    CHECK_INT(r.meter_status, TP_METER_PICKUP);

    /* Only the identity is required; every other field defaults to zero. */
    CHECK_ERR(parse(" {\"vehicle_id\":7,\"sampled_at_ms\":8} ", &r, msg, sizeof msg), TP_OK);
    CHECK_INT(r.vehicle_id, 7);
    CHECK_INT(r.sampled_at_ms, 8);
    CHECK_INT(r.seq, 0);
    CHECK(r.latitude == 0 && r.speed_kmh == 0);
    CHECK_INT(r.meter_status, 0);

    CHECK_ERR(parse("{\"vehicle_id\":1,\"sampled_at_ms\":\"9223372036854775807\",\"meter_status\":"
                    "\"METER_STATUS_OUT_OF_SERVICE\",\"latitude\":\"NaN\",\"longitude\":\"-Infinity\"}",
                    &r, msg, sizeof msg),
              TP_OK);
    CHECK_INT(r.sampled_at_ms, INT64_MAX);
    CHECK_INT(r.meter_status, TP_METER_OUT_OF_SERVICE);
    CHECK(isnan(r.latitude));
    CHECK(isinf(r.longitude) && r.longitude < 0);
    CHECK_ERR(parse("{\"vehicle_id\":1,\"sampled_at_ms\":\"-9223372036854775808\",\"meter_status\":-2147483648}",
                    &r, msg, sizeof msg),
              TP_OK);
    CHECK_INT(r.sampled_at_ms, INT64_MIN);
    CHECK_INT(r.meter_status, INT32_MIN);
    /* The largest double that still rounds to a finite float. */
    CHECK_ERR(parse("{\"vehicle_id\":1,\"sampled_at_ms\":1,\"speed_kmh\":3.40282356e38}", &r, msg, sizeof msg),
              TP_OK);
    CHECK(r.speed_kmh == FLT_MAX);
    /* "-0" as a string is zero for unsigned fields. */
    CHECK_ERR(parse("{\"vehicle_id\":\"-0\",\"sampled_at_ms\":1}", &r, msg, sizeof msg), TP_OK);
    CHECK_INT(r.vehicle_id, 0);

    CHECK_STR(tp_meter_status_name(TP_METER_VACANT), "METER_STATUS_VACANT");
    CHECK(tp_meter_status_name(5) == NULL);
    CHECK(tp_meter_status_name(-1) == NULL);
    int32_t st;
    CHECK_ERR(tp_meter_status_parse("METER_STATUS_PICKUP", &st), TP_OK);
    CHECK_INT(st, 3);
    CHECK_ERR(tp_meter_status_parse("HIRED", &st), TP_ERR_PARSE);
    CHECK_ERR(tp_meter_status_parse(NULL, &st), TP_ERR_INVALID_ARG);
}

/* Each bad input fails with TP_ERR_PARSE and a message holding every word of `want`. */
static void expect_error(const char *input, const char *want1, const char *want2)
{
    tp_record r;
    char msg[256] = "unset";
    tp_err e = parse(input, &r, msg, sizeof msg);
    check_count++;
    if (e != TP_ERR_PARSE || !strstr(msg, want1) || (want2 && !strstr(msg, want2))) {
        check_failures++;
        fprintf(stderr, "input %s: got %s / \"%s\", want message with \"%s\" \"%s\"\n", input, tp_strerror(e), msg,
                want1, want2 ? want2 : "");
    }
}

#define ID "\"vehicle_id\":1,\"sampled_at_ms\":1"

static void test_parse_errors(void)
{
    expect_error("", "empty", NULL);
    expect_error("{\"vehicle_id\":1,", "not valid JSON", "column");
    expect_error("{\"vehicle_id\":1} trailing", "not valid JSON", NULL);
    expect_error("[1,2]", "must be a JSON object", "an array");
    expect_error("42", "must be a JSON object", NULL);
    expect_error("{\"sampled_at_ms\":1}", "vehicle_id is missing", NULL);
    expect_error("{\"vehicle_id\":1}", "sampled_at_ms is missing", NULL);
    expect_error("{\"vehicle_id\":1,\"vehicleId\":2,\"sampled_at_ms\":1}", "vehicle_id is given twice", NULL);
    expect_error("{\"vehicle_id\":1,\"vehicle_id\":2,\"sampled_at_ms\":1}", "not valid JSON", "duplicate");
    expect_error("{\"vehicle_id\":18446744073709551615,\"sampled_at_ms\":1}", "not valid JSON", "too big");
    /* uint64 */
    expect_error("{\"vehicle_id\":-1,\"sampled_at_ms\":1}", "field vehicle_id: -1 is negative", NULL);
    expect_error("{\"vehicle_id\":\"-3\",\"sampled_at_ms\":1}", "field vehicle_id: \"-3\" is negative", NULL);
    expect_error("{\"seq\":\"12a\"," ID "}", "field seq: \"12a\" is not a decimal integer", NULL);
    expect_error("{\"seq\":\" 1\"," ID "}", "field seq", "not a decimal integer");
    expect_error("{\"seq\":\"+1\"," ID "}", "field seq", "not a decimal integer");
    expect_error("{\"seq\":\"01\"," ID "}", "field seq", "not a decimal integer");
    expect_error("{\"seq\":\"\"," ID "}", "field seq", "not a decimal integer");
    expect_error("{\"seq\":\"18446744073709551616\"," ID "}", "field seq", "not a decimal integer");
    expect_error("{\"seq\":1.5," ID "}", "field seq: 1.5 is not an integer", NULL);
    expect_error("{\"seq\":true," ID "}", "field seq: true is not an integer", NULL);
    expect_error("{\"seq\":\"1\\u00002\"," ID "}", "not valid JSON", "u0000");
    /* int64 */
    expect_error("{\"vehicle_id\":1,\"sampled_at_ms\":\"9223372036854775808\"}", "field sampled_at_ms", "not a decimal");
    expect_error("{\"vehicle_id\":1,\"sampled_at_ms\":\"-9223372036854775809\"}", "field sampled_at_ms", NULL);
    expect_error("{\"vehicle_id\":1,\"sampled_at_ms\":{}}", "field sampled_at_ms: an object is not an integer",
                 NULL);
    expect_error("{\"vehicle_id\":1,\"sampled_at_ms\":1e3}", "field sampled_at_ms: 1000 is not an integer", NULL);
    /* double / float */
    expect_error("{\"latitude\":false," ID "}", "field latitude: false is not a number", NULL);
    expect_error("{\"latitude\":\"abc\"," ID "}", "field latitude: \"abc\" is not a number", NULL);
    expect_error("{\"latitude\":\"0x10\"," ID "}", "field latitude", "not a number");
    expect_error("{\"latitude\":\"inf\"," ID "}", "field latitude", "not a number");
    expect_error("{\"latitude\":\"1e999\"," ID "}", "field latitude", "not a number");
    expect_error("{\"latitude\":\"1.5 \"," ID "}", "field latitude", "not a number");
    expect_error("{\"longitude\":[1]," ID "}", "field longitude: an array is not a number", NULL);
    expect_error("{\"speed_kmh\":1e39," ID "}", "field speed_kmh", "outside the range of a 32-bit float");
    expect_error("{\"heading_deg\":\"-1e39\"," ID "}", "field heading_deg", "outside the range");
    expect_error("{\"accuracy_m\":\"fast\"," ID "}", "field accuracy_m: \"fast\" is not a number", NULL);
    expect_error("{\"accuracy_m\":\"0123456789012345678901234567890123456789xyz\"," ID "}", "field accuracy_m",
                 "...\"");
    /* enum */
    expect_error("{\"meter_status\":\"HIRED\"," ID "}", "field meter_status: \"HIRED\" is not a meter status",
                 "METER_STATUS_HIRED");
    expect_error("{\"meter_status\":2.5," ID "}", "field meter_status: 2.5 is not a meter status", NULL);
    expect_error("{\"meter_status\":2147483648," ID "}", "field meter_status", "32-bit");
    expect_error("{\"meter_status\":[]," ID "}", "field meter_status", "not a meter status");

    /* A NULL or empty message buffer is fine. */
    tp_record r;
    CHECK_ERR(parse("[]", &r, NULL, 0), TP_ERR_PARSE);
    char one[1] = {'x'};
    CHECK_ERR(parse("[]", &r, one, sizeof one), TP_ERR_PARSE);
    CHECK_INT(one[0], 0);
    CHECK_ERR(tp_record_json_parse(NULL, 0, &r, NULL, 0), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_record_json_parse("{}", 2, NULL, NULL, 0), TP_ERR_INVALID_ARG);
}

static void test_reader(void)
{
    static char input[] = "{\"vehicle_id\":1,\"sampled_at_ms\":10}\n"
                          "\n"
                          "   \t\r\n"
                          "{\"vehicle_id\":2,\"sampled_at_ms\":20}\r\n"
                          "{\"vehicle_id\":3}\n"
                          "{\"vehicle_id\":4,\"sampled_at_ms\":40,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n"
                          "{\"vehicle_id\":5,\"sampled_at_ms\":50}";
    FILE *f = fmemopen(input, strlen(input), "r");
    CHECK(f != NULL);
    if (!f)
        return;
    tp_ndjson_reader *rd;
    CHECK_ERR(tp_ndjson_reader_new(f, 80, &rd), TP_OK);
    tp_record r;
    char msg[256];
    CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_OK);
    CHECK_INT(r.vehicle_id, 1);
    CHECK_INT(tp_ndjson_reader_line(rd), 1);
    CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_OK);
    CHECK_INT(r.vehicle_id, 2);
    CHECK_INT(r.sampled_at_ms, 20);
    CHECK_INT(tp_ndjson_reader_line(rd), 4);
    CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "line 5: field sampled_at_ms is missing") != NULL);
    CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "line 6 is longer than 80 bytes") != NULL);
    CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_OK);
    CHECK_INT(r.vehicle_id, 5);
    CHECK_INT(tp_ndjson_reader_line(rd), 7);
    CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_ERR_END);
    CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_ERR_END);
    CHECK_INT(tp_ndjson_reader_bytes(rd), strlen(input));
    tp_ndjson_reader_free(rd);
    fclose(f);

    /* A long line much larger than the buffer, at the very end without a newline. */
    size_t big = 300000;
    char *huge = malloc(big + 64);
    CHECK(huge != NULL);
    if (!huge)
        return;
    strcpy(huge, "{\"vehicle_id\":9,\"sampled_at_ms\":9}\n{\"x\":\"");
    size_t len = strlen(huge);
    memset(huge + len, 'a', big - len);
    f = fmemopen(huge, big, "r");
    CHECK_ERR(tp_ndjson_reader_new(f, 0, &rd), TP_OK);
    CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_OK);
    CHECK_INT(r.vehicle_id, 9);
    CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "line 2 is longer than 65536 bytes") != NULL);
    CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_ERR_END);
    CHECK_INT(tp_ndjson_reader_bytes(rd), big);
    tp_ndjson_reader_free(rd);
    fclose(f);
    free(huge);

    /* Empty input. */
    static char empty[] = "";
    f = fmemopen(empty, 0, "r");
    if (f) {
        CHECK_ERR(tp_ndjson_reader_new(f, 0, &rd), TP_OK);
        CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_ERR_END);
        tp_ndjson_reader_free(rd);
        fclose(f);
    }
    CHECK_ERR(tp_ndjson_reader_new(NULL, 0, &rd), TP_ERR_INVALID_ARG);
    tp_ndjson_reader_free(NULL);
}

/* A read error surfaces as TP_ERR_IO: reading a directory fails with EISDIR. */
static void test_reader_io_error(void)
{
    FILE *f = fopen(".", "r");
    CHECK(f != NULL);
    if (!f)
        return;
    tp_ndjson_reader *rd;
    CHECK_ERR(tp_ndjson_reader_new(f, 0, &rd), TP_OK);
    tp_record r;
    char msg[256];
    CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_ERR_IO);
    CHECK(strstr(msg, "reading line 1 failed") != NULL);
    tp_ndjson_reader_free(rd);
    fclose(f);
}

/* Unknown keys are errors naming the key (protobuf's JSON parser does the same), unless ignoring them is asked
 * for; both spellings of every field stay accepted. Without this "lat"/"lon" packed as latitude 0, longitude 0. */
static void test_unknown_keys(void)
{
    tp_record r;
    char msg[512];
    const char *lat = "{\"vehicle_id\":5,\"sampled_at_ms\":1767225600000,\"lat\":35.6,\"lon\":139.7}";
    CHECK_ERR(parse(lat, &r, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "unknown field \"lat\" (did you mean latitude?)") != NULL);
    CHECK(strstr(msg, "--ignore-unknown-fields") != NULL);
    CHECK_ERR(tp_record_json_parse_flags(lat, strlen(lat), TP_RECORD_JSON_IGNORE_UNKNOWN, &r, msg, sizeof msg), TP_OK);
    CHECK_INT(r.vehicle_id, 5);
    CHECK(r.latitude == 0 && r.longitude == 0);
    /* every type of value, skipped when asked; the fast path and jansson agree under both settings */
    const char *extra = "{\"vehicle_id\":1,\"sampled_at_ms\":2,\"extra\":{\"a\":[1,2]},\"note\":\"x\",\"flag\":true,"
                        "\"latitude\":3.5}";
    CHECK_ERR(parse(extra, &r, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "unknown field \"extra\";") != NULL);
    tp_record full;
    CHECK_ERR(tp_record_json_parse_flags(extra, strlen(extra), TP_RECORD_JSON_IGNORE_UNKNOWN, &r, msg, sizeof msg),
              TP_OK);
    CHECK_ERR(tp_record_json_parse_full(extra, strlen(extra), TP_RECORD_JSON_IGNORE_UNKNOWN, &full, msg, sizeof msg),
              TP_OK);
    CHECK(r.latitude == 3.5 && full.latitude == 3.5 && r.vehicle_id == 1);
    /* both names of every field, mixed */
    CHECK_ERR(parse("{\"vehicleId\":1,\"sampled_at_ms\":2,\"speedKmh\":3,\"heading_deg\":4,\"accuracyM\":5,"
                    "\"meter_status\":1,\"seq\":6,\"longitude\":7}",
                    &r, msg, sizeof msg),
              TP_OK);
    CHECK(r.speed_kmh == 3.0f && r.heading_deg == 4.0f && r.accuracy_m == 5.0f && r.longitude == 7.0);
    /* case matters, as in protobuf: VehicleId is not a field name */
    CHECK_ERR(parse("{\"VehicleId\":1,\"vehicle_id\":1,\"sampled_at_ms\":2}", &r, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "unknown field \"VehicleId\"") != NULL);
    /* a long or unprintable key is shown shortened and printable */
    CHECK_ERR(parse("{\"vehicle_id\":1,\"sampled_at_ms\":2,\"a\\nb\\\"c0123456789012345678901234567890123456789\":1}", &r,
                    msg, sizeof msg),
              TP_ERR_PARSE);
    CHECK(strstr(msg, "unknown field \"a?b?c01234567890123456789012345678901234...\";") != NULL);

    /* The line reader: the error names the line and the key; with the flag the line is a record. */
    char input[] = "{\"vehicle_id\":1,\"sampled_at_ms\":10}\n"
                   "{\"vehicle_id\":2,\"sampled_at_ms\":20,\"lon\":1}\n";
    for (int ignore = 0; ignore < 2; ignore++) {
        FILE *f = fmemopen(input, strlen(input), "r");
        CHECK(f != NULL);
        if (!f)
            return;
        tp_ndjson_reader *rd;
        CHECK_ERR(tp_ndjson_reader_new(f, 0, &rd), TP_OK);
        if (ignore)
            tp_ndjson_reader_set_flags(rd, TP_RECORD_JSON_IGNORE_UNKNOWN);
        CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_OK);
        if (ignore) {
            CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_OK);
            CHECK_INT(r.vehicle_id, 2);
        } else {
            CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_ERR_PARSE);
            CHECK(strstr(msg, "line 2: unknown field \"lon\" (did you mean longitude?)") != NULL);
        }
        CHECK_ERR(tp_ndjson_reader_next(rd, &r, msg, sizeof msg), TP_ERR_END);
        tp_ndjson_reader_free(rd);
        fclose(f);
    }
}

int main(void)
{
    test_unknown_keys();
    test_known_output();
    test_edge_round_trips();
    test_random_round_trips();
    test_shortest_form();
    test_write_errors();
    test_parse_forms();
    test_fast_path_edges();
    test_parse_errors();
    test_reader();
    test_reader_io_error();
    return check_exit();
}
