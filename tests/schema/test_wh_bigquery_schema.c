/* BigQuery tables of a run-time schema (src/warehouse/wh_bigquery_schema.c) against tests/support/bigquery_fake.py
 * (a local stand-in that checks each request's documented shape, per field of the table's schema; not the real
 * service): the generated table schema (types, modes, partitioning), every value's JSON form (int64 and uint64 as
 * strings, enum names, RFC 3339 with microseconds, base64 bytes, NaN strings, REPEATED arrays, NULLABLE left out),
 * insertIds from the identity, resends of rows that failed once, rows refused as invalid named relative to a loaded
 * range, and a table of another version refused with a sentence naming the column.
 * Usage: test_wh_bigquery_schema DATA_DIR PATH/bigquery_fake.py */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "check.h"
#include "schema/dynrow.h"
#include "schema/schema.h"
#include "warehouse/warehouse.h"

#define TOKEN "test-token-456"
#define MSG "fleet.ev.v1.EvTelemetry"

static const char *data_dir;
static pid_t fake_pid;
static char endpoint[64];
static char token_path[256];

static uint8_t *slurp(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", data_dir, name);
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

static tp_schema *load_schema(const char *file)
{
    size_t len;
    uint8_t *src = slurp(file, &len);
    tp_schema *s = NULL;
    char err[256];
    CHECK_ERR(tp_schema_load(src, len, MSG, &s, err, sizeof err), TP_OK);
    free(src);
    if (!s)
        exit(1);
    return s;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    fwrite(p, size, n, ud);
    return size * n;
}

static json_t *control(const char *path, const char *post)
{
    char url[128], *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    snprintf(url, sizeof url, "%s%s", endpoint, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (post)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    fclose(mem);
    json_t *j = rc == CURLE_OK ? json_loads(buf, 0, NULL) : NULL;
    free(buf);
    CHECK(j != NULL);
    return j;
}

static void start_fake(const char *script)
{
    int fd[2];
    if (pipe(fd))
        abort();
    fake_pid = fork();
    if (fake_pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execlp("python3", "python3", script, "--project", "proj-2", "--dataset", "fleet", "--token", TOKEN,
               (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    int port = 0;
    if (!f || fscanf(f, "PORT %d", &port) != 1 || port <= 0) {
        fprintf(stderr, "the fake BigQuery did not start\n");
        exit(1);
    }
    fclose(f);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", port);
}

static tp_warehouse *open_wh(const tp_schema *s, const char *table, int create)
{
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.create_table = create;
    o.token_file = token_path;
    o.endpoint = endpoint;
    o.timeout_ms = 10000;
    o.schema = s;
    o.table = table;
    tp_warehouse *w = NULL;
    char msg[512];
    tp_err e = tp_warehouse_open("bigquery://proj-2/fleet", &o, &w, msg, sizeof msg);
    CHECK_ERR(e, TP_OK);
    if (e) {
        fprintf(stderr, "%s\n", msg);
        exit(1);
    }
    return w;
}

/* n rows: ev_full and ev_sparse alternately, each with its own seq (i + 1) so identities differ. */
static tp_dyn_batch *rows(const tp_schema *s, size_t n)
{
    size_t lf, ls;
    uint8_t *full = slurp("ev_full.bin", &lf), *sparse = slurp("ev_sparse.bin", &ls);
    tp_dyn_batch *b = NULL;
    CHECK_ERR(tp_dyn_batch_new(s, n, 1 << 20, &b), TP_OK);
    long seq = tp_schema_find(s, "seq");
    for (size_t i = 0; i < n; i++) {
        CHECK_ERR(tp_dyn_decode(b, i % 2 ? sparse : full, i % 2 ? ls : lf), TP_OK);
        b->columns[seq].cells[i].u = i + 1;
        b->columns[seq].present[i] = 1;
    }
    if (n > 4)
        b->columns[tp_schema_find(s, "battery_current_a")].present[4] = 0;
    free(full);
    free(sparse);
    return b;
}

static const char *field_of(json_t *fields, const char *name, const char *what)
{
    size_t k;
    json_t *f;
    json_array_foreach(fields, k, f)
    if (!strcmp(json_string_value(json_object_get(f, "name")), name))
        return json_string_value(json_object_get(f, what));
    return "(absent)";
}

static void test_table_and_rows(const tp_schema *s)
{
    /* No table, no --create-table. */
    tp_warehouse *w = open_wh(s, "ev_telemetry", 0);
    CHECK_STR(tp_warehouse_kind(w), "bigquery");
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "proj-2:fleet.ev_telemetry does not exist; run with --create-table"));
    tp_warehouse_close(w);

    w = open_wh(s, "ev_telemetry", 1);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK); /* 409: exists, and matches */
    json_t *log = control("/_fake/log", NULL);
    CHECK_INT(json_array_size(json_object_get(log, "violations")), 0);
    json_t *fields = json_object_get(json_object_get(log, "schemas"), "ev_telemetry");
    CHECK_INT(json_array_size(fields), tp_schema_column_count(s) + 2);
    CHECK_STR(field_of(fields, "vin", "type"), "STRING");
    CHECK_STR(field_of(fields, "vin", "mode"), "REQUIRED");
    CHECK_STR(field_of(fields, "recorded_at", "type"), "TIMESTAMP");
    CHECK_STR(field_of(fields, "recorded_at", "mode"), "REQUIRED"); /* identity: never NULL */
    CHECK_STR(field_of(fields, "seq", "type"), "NUMERIC");          /* uint64 */
    CHECK_STR(field_of(fields, "battery_current_a", "mode"), "NULLABLE");
    CHECK_STR(field_of(fields, "battery_cell_voltages_v", "mode"), "REPEATED");
    CHECK_STR(field_of(fields, "battery_cell_voltages_v", "type"), "FLOAT");
    CHECK_STR(field_of(fields, "drive_state", "type"), "STRING");
    CHECK_STR(field_of(fields, "raw_frame", "type"), "BYTES");
    CHECK_STR(field_of(fields, "can_hv_interlock", "type"), "BOOLEAN");
    CHECK_STR(field_of(fields, "can_wheel_speed_fl", "type"), "INTEGER");
    CHECK_STR(field_of(fields, "kafka_offset", "type"), "INTEGER");
    json_decref(log);

    /* Every 3rd row of a request fails once: resent alone, every row in once. */
    size_t n = 30;
    tp_dyn_batch *b = rows(s, n);
    int32_t part[30];
    int64_t off[30];
    for (size_t i = 0; i < n; i++)
        part[i] = 2, off[i] = 100 + (int64_t)i;
    json_decref(control("/_fake/config", "{\"fail_once_every\": 3}"));
    CHECK_ERR(tp_warehouse_load_dyn(w, b, part, off, "ev", NULL, 0), TP_OK);
    log = control("/_fake/log", NULL);
    CHECK_INT(json_array_size(json_object_get(log, "violations")), 0);
    json_t *inserted = json_object_get(log, "inserted"), *got = json_object_get(log, "rows");
    CHECK_INT(json_object_size(inserted), n);
    CHECK_INT(json_array_size(json_object_get(log, "requests")), 2); /* the first, then the 10 that failed */
    const char *k;
    json_t *v;
    json_object_foreach(inserted, k, v) CHECK_INT(json_integer_value(v), 1);
    /* Row 0 (ev_full): every edge value in BigQuery's JSON form. */
    json_t *r = json_object_get(got, "WVWZZZ1JZXW000001-1714564800250000000-1");
    CHECK(r != NULL);
    if (r) {
        CHECK_STR(json_string_value(json_object_get(r, "recorded_at")), "2024-05-01T12:00:00.250000Z");
        CHECK_STR(json_string_value(json_object_get(r, "seq")), "1");
        CHECK_STR(json_string_value(json_object_get(r, "ecu_serial")), "18446744073709551614");
        CHECK_STR(json_string_value(json_object_get(r, "drive_state")), "DRIVE_STATE_CHARGING");
        CHECK_STR(json_string_value(json_object_get(r, "odometer_m")), "-42");
        CHECK_STR(json_string_value(json_object_get(r, "raw_frame")), "AAH+/yJxdW90ZWQi");
        CHECK_STR(json_string_value(json_object_get(r, "can_torque_nmm")), "-9223372036854775808");
        CHECK_STR(json_string_value(json_object_get(r, "can_wheel_speed_fl")), "4294967295");
        CHECK(json_is_true(json_object_get(r, "can_hv_interlock")));
        json_t *td = json_object_get(r, "trip_deltas");
        CHECK_INT(json_array_size(td), 4);
        CHECK_STR(json_string_value(json_array_get(td, 2)), "9223372036854775807");
        json_t *tags = json_object_get(r, "tags");
        CHECK_INT(json_array_size(tags), 3);
        CHECK_STR(json_string_value(json_array_get(tags, 2)), "Z\xc3\xbcrich \xe2\x98\x83 \t tab");
        CHECK(json_is_number(json_object_get(r, "battery_current_a"))); /* explicit zero: present */
        CHECK(json_real_value(json_object_get(r, "battery_state_of_charge_pct")) == 87.5);
        CHECK_STR(json_string_value(json_object_get(r, "kafka_offset")), "100");
        CHECK_INT(json_integer_value(json_object_get(r, "kafka_partition")), 2);
    }
    /* Row 1 (ev_sparse): no Timestamp (the identity's zero), arrays empty; row 4's current_a made absent: NULL. */
    r = json_object_get(got, "5YJ3E1EA7KF000002-0-2");
    CHECK(r != NULL);
    if (r) {
        CHECK_STR(json_string_value(json_object_get(r, "recorded_at")), "1970-01-01T00:00:00.000000Z");
        CHECK(json_real_value(json_object_get(r, "battery_current_a")) == -12.5);
        CHECK_INT(json_array_size(json_object_get(r, "trip_deltas")), 0);
        CHECK(json_is_array(json_object_get(r, "trip_deltas")));
        CHECK_STR(json_string_value(json_object_get(r, "drive_state")), "DRIVE_STATE_PARKED");
        CHECK_STR(json_string_value(json_object_get(r, "raw_frame")), "");
    }
    r = json_object_get(got, "WVWZZZ1JZXW000001-1714564800250000000-5");
    CHECK(r != NULL && json_object_get(r, "battery_current_a") == NULL);
    json_decref(log);

    /* A row BigQuery refuses as invalid in a loaded range: named relative to the range's first row. */
    json_decref(control("/_fake/config", "{\"invalid_ids\": [\"WVWZZZ1JZXW000001-1714564800250000000-9\"], "
                                         "\"invalid_message\": \"value out of range\"}"));
    CHECK_ERR(tp_warehouse_load_dyn_range(w, b, 6, 10, part, off, "ev", NULL, 0), TP_ERR_REJECTED);
    CHECK_INT(tp_warehouse_rejected_count(w), 1);
    size_t row = 99;
    const char *why = NULL;
    CHECK_ERR(tp_warehouse_rejected(w, 0, &row, &why), TP_OK);
    CHECK_INT(row, 2); /* batch row 8 (seq 9) is the range's third */
    CHECK(why && strstr(why, "value out of range"));
    json_decref(control("/_fake/config", "{\"status_once\": 503}"));
    CHECK_ERR(tp_warehouse_load_dyn_range(w, b, 0, 2, part, off, "ev", NULL, 0), TP_ERR_UNAVAILABLE);
    json_decref(control("/_fake/config", "{}"));
    CHECK_ERR(tp_warehouse_load_dyn_range(w, b, 0, n + 1, part, off, "ev", NULL, 0), TP_ERR_INVALID_ARG);
    int64_t stored = 5;
    CHECK_ERR(tp_warehouse_stored_offset(w, "ev", 2, &stored), TP_OK);
    CHECK_INT(stored, -1);
    tp_row_batch *none = NULL;
    CHECK_ERR(tp_row_batch_new(1, &none), TP_OK);
    none->count = 1;
    CHECK_ERR(tp_warehouse_load(w, none, "ev", NULL, 0), TP_ERR_INVALID_ARG); /* built-in rows into this table */
    tp_row_batch_free(none);
    tp_dyn_batch_free(b);
    tp_warehouse_close(w);
}

/* A table made for ev_telemetry, opened with ev_added (one more column): refused naming it. */
static void test_other_version(void)
{
    tp_schema *added = load_schema("ev_added.pb");
    tp_warehouse *w = open_wh(added, "ev_telemetry", 0);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    fprintf(stderr, "other version: %s\n", tp_warehouse_last_error(w));
    CHECK(strstr(tp_warehouse_last_error(w), "has no column tire_pressure_kpa (REQUIRED FLOAT) of schema " MSG));
    tp_warehouse_close(w);
    tp_schema_free(added);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DATA_DIR PATH/bigquery_fake.py\n", argv[0]);
        return 2;
    }
    data_dir = argv[1];
    signal(SIGPIPE, SIG_IGN);
    snprintf(token_path, sizeof token_path, "/tmp/tp_bqs_token_%d", (int)getpid());
    FILE *f = fopen(token_path, "w");
    fprintf(f, "%s\n", TOKEN);
    fclose(f);
    start_fake(argv[2]);
    tp_schema *s = load_schema("ev_telemetry.pb");
    test_table_and_rows(s);
    test_other_version();
    tp_schema_free(s);
    json_decref(control("/_fake/quit", "{}"));
    int st;
    waitpid(fake_pid, &st, 0);
    unlink(token_path);
    return check_exit();
}
