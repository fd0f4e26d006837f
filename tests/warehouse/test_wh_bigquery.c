/* The BigQuery warehouse against tests/support/bigquery_fake.py (a local stand-in that checks each request's documented
 * shape; not the real service): insertIds from the record identity, chunking, per-row retries of partial
 * failures, permanent refusals, tokens and unreachable endpoints. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "check.h"
#include "warehouse/warehouse.h"
#include "wh_fixture.h"

#define TOKEN "test-token-123"

static pid_t fake_pid;
static char endpoint[64];
static char token_path[256];

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    fwrite(p, size, n, ud);
    return size * n;
}

/* A request to the fake's control endpoints; returns the parsed answer (NULL on failure). */
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
        execlp("python3", "python3", script, "--project", "proj-1", "--dataset", "telemetry", "--token", TOKEN,
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

static void stop_fake(void)
{
    json_decref(control("/_fake/quit", "{}"));
    int st;
    waitpid(fake_pid, &st, 0);
}

static tp_warehouse *open_wh(const char *url, int create, const char *token_file, const char *ep)
{
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.create_table = create;
    o.token_file = token_file;
    o.endpoint = ep ? ep : endpoint;
    o.timeout_ms = 10000;
    tp_warehouse *w = NULL;
    char msg[512];
    tp_err e = tp_warehouse_open(url, &o, &w, msg, sizeof msg);
    CHECK_ERR(e, TP_OK);
    if (e) {
        fprintf(stderr, "%s\n", msg);
        exit(1);
    }
    return w;
}

static void id_of(const tp_row_batch *b, size_t i, char *out, size_t cap)
{
    snprintf(out, cap, "%" PRIu64 "-%" PRId64 "-%" PRIu64, b->vehicle_id[i], b->sampled_at_ms[i], b->seq[i]);
}

static long long int_field(json_t *row, const char *name)
{
    json_t *v = json_object_get(row, name);
    return json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : (long long)json_integer_value(v);
}

/* A FLOAT value as it arrived: a JSON number, or one of the strings BigQuery takes for non-finite FLOAT64. */
static double float_field(json_t *row, const char *name)
{
    json_t *v = json_object_get(row, name);
    if (json_is_number(v))
        return json_number_value(v);
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "NaN"))
        return NAN;
    if (s && !strcmp(s, "Infinity"))
        return INFINITY;
    if (s && !strcmp(s, "-Infinity"))
        return -INFINITY;
    return 12345.678; /* missing or anything else: matches no fixture value */
}

/* Every row of b arrived and was inserted exactly once, with every value exact. */
static void check_inserted_once(json_t *log, const tp_row_batch *b)
{
    json_t *inserted = json_object_get(log, "inserted"), *rows = json_object_get(log, "rows");
    size_t missing = 0, twice = 0, wrong = 0;
    for (size_t i = 0; i < b->count; i++) {
        char id[80];
        id_of(b, i, id, sizeof id);
        json_int_t n = json_integer_value(json_object_get(inserted, id));
        missing += n == 0;
        twice += n > 1;
        json_t *r = json_object_get(rows, id);
        int ok = r && (uint64_t)int_field(r, "vehicle_id") == b->vehicle_id[i] &&
                 int_field(r, "sampled_at_ms") == b->sampled_at_ms[i] && (uint64_t)int_field(r, "seq") == b->seq[i] &&
                 wh_fixture_same(float_field(r, "latitude"), b->latitude[i], 0) &&
                 wh_fixture_same(float_field(r, "longitude"), b->longitude[i], 0) &&
                 wh_fixture_same((float)float_field(r, "speed_kmh"), b->speed_kmh[i], 0) &&
                 wh_fixture_same((float)float_field(r, "heading_deg"), b->heading_deg[i], 0) &&
                 wh_fixture_same((float)float_field(r, "accuracy_m"), b->accuracy_m[i], 0) &&
                 int_field(r, "meter_status") == b->meter_status[i] &&
                 int_field(r, "kafka_partition") == b->kafka_partition[i] &&
                 int_field(r, "kafka_offset") == b->kafka_offset[i];
        if (!ok && wrong++ < 3)
            fprintf(stderr, "row %zu (%s) arrived with other values\n", i, id);
    }
    CHECK_INT(missing, 0);
    CHECK_INT(twice, 0);
    CHECK_INT(wrong, 0);
}

static void test_load_with_partial_failures(const char *url)
{
    tp_warehouse *w = open_wh(url, 0, token_path, NULL);
    CHECK_STR(tp_warehouse_kind(w), "bigquery");
    int64_t off = 7;
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_OK);
    CHECK_INT(off, -1);

    /* No table yet, no --create-table. */
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    fprintf(stderr, "missing table: %s\n", tp_warehouse_last_error(w));
    CHECK(strstr(tp_warehouse_last_error(w), "proj-1:telemetry.positions does not exist") != NULL);
    CHECK(strstr(tp_warehouse_last_error(w), "--create-table") != NULL);
    tp_row_batch *b = wh_fixture_new(1234, 0, 1, 40);
    CHECK_ERR(tp_warehouse_load(w, b, "t", NULL, 0), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "HTTP 404") != NULL);
    tp_warehouse_close(w);

    w = open_wh(url, 1, token_path, NULL);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK); /* 409 Already Exists is fine */
    CHECK_ERR(tp_warehouse_ping(w), TP_OK);

    /* Every 7th row of each request fails on its first arrival. */
    json_decref(control("/_fake/config", "{\"fail_once_every\": 7}"));
    tp_partition_offset po = {1, 53};
    CHECK_ERR(tp_warehouse_load(w, b, "t", &po, 1), TP_OK);
    json_t *log = control("/_fake/log", NULL);
    CHECK_INT(json_array_size(json_object_get(log, "violations")), 0);
    check_inserted_once(log, b);
    /* Retries resent only the failed rows: each first request fails floor(n/7) rows, its retry sends just those. */
    json_t *reqs = json_object_get(log, "requests");
    size_t sent = 0, k;
    json_t *r;
    json_array_foreach(reqs, k, r)
    {
        sent += json_array_size(r);
        CHECK(json_array_size(r) <= 500);
    }
    size_t failed = 500 / 7 + 500 / 7 + 234 / 7;
    CHECK_INT(json_array_size(reqs), 6);
    CHECK_INT(sent, 1234 + failed);
    CHECK_INT(json_array_size(json_array_get(reqs, 0)), 500);
    CHECK_INT(json_array_size(json_array_get(reqs, 1)), 500 / 7);
    /* The retry's first row is the first request's 7th row. */
    CHECK_STR(json_string_value(json_array_get(json_array_get(reqs, 1), 0)),
              json_string_value(json_array_get(json_array_get(reqs, 0), 6)));
    json_decref(log);

    /* HTTP 503 once: "retry later"; the caller's retry then lands every row once. */
    json_decref(control("/_fake/config", "{\"status_once\": 503}"));
    tp_row_batch *b2 = wh_fixture_new(300, 2, 1, 60);
    CHECK_ERR(tp_warehouse_load(w, b2, "t", &po, 1), TP_ERR_UNAVAILABLE);
    CHECK(strstr(tp_warehouse_last_error(w), "HTTP 503") != NULL);
    CHECK(strstr(tp_warehouse_last_error(w), "retry later") != NULL);
    CHECK_ERR(tp_warehouse_load(w, b2, "t", &po, 1), TP_OK);
    log = control("/_fake/log", NULL);
    check_inserted_once(log, b2);
    json_decref(log);

    /* An invalid row: permanent, named in the sentence, not resent forever. */
    tp_row_batch *b3 = wh_fixture_new(20, 3, 1, 70);
    char bad_id[80], cfg[200];
    id_of(b3, 5, bad_id, sizeof bad_id);
    snprintf(cfg, sizeof cfg, "{\"invalid_ids\": [\"%s\"]}", bad_id);
    json_decref(control("/_fake/config", cfg));
    CHECK_ERR(tp_warehouse_load(w, b3, "t", &po, 1), TP_ERR_WAREHOUSE);
    fprintf(stderr, "invalid row: %s\n", tp_warehouse_last_error(w));
    CHECK(strstr(tp_warehouse_last_error(w), bad_id) != NULL);
    CHECK(strstr(tp_warehouse_last_error(w), "invalid") != NULL);

    /* Rows BigQuery refuses as data (a timestamp outside years 1..9999: microseconds sent as milliseconds):
     * TP_ERR_REJECTED naming exactly those rows with BigQuery's reason; every other row of the batch, in the
     * refused rows' request and the others, inserted exactly once (the stopped ones resent without them). */
    json_decref(control("/_fake/config", "{}"));
    tp_row_batch *b4 = wh_fixture_new(700, 4, 2, 80);
    const size_t bad_rows[] = {3, 517, 518};
    for (size_t i = 0; i < 3; i++)
        b4->sampled_at_ms[bad_rows[i]] = INT64_C(1795000000000) * 1000 + (int64_t)i; /* year ~58,900 */
    CHECK_ERR(tp_warehouse_load(w, b4, "t", &po, 1), TP_ERR_REJECTED);
    fprintf(stderr, "rejected rows: %s\n", tp_warehouse_last_error(w));
    CHECK(strstr(tp_warehouse_last_error(w), "3 of 700 rows refused as invalid, the others were loaded") != NULL);
    CHECK_INT(tp_warehouse_rejected_count(w), 3);
    for (size_t i = 0; i < 3 && i < tp_warehouse_rejected_count(w); i++) {
        size_t row = 99;
        const char *why = NULL;
        CHECK_ERR(tp_warehouse_rejected(w, i, &row, &why), TP_OK);
        CHECK_INT(row, bad_rows[i]);
        char id[80];
        id_of(b4, row, id, sizeof id);
        CHECK(why && strstr(why, id) && strstr(why, "invalid in sampled_at: Timestamp field value is out of range"));
    }
    CHECK_ERR(tp_warehouse_rejected(w, 3, NULL, NULL), TP_ERR_INVALID_ARG);
    log = control("/_fake/log", NULL);
    CHECK_INT(json_array_size(json_object_get(log, "violations")), 0);
    json_t *ins = json_object_get(log, "inserted");
    size_t missing = 0, twice = 0, bad_in = 0;
    for (size_t i = 0; i < b4->count; i++) {
        char id[80];
        id_of(b4, i, id, sizeof id);
        json_int_t got = json_integer_value(json_object_get(ins, id));
        int is_bad = i == 3 || i == 517 || i == 518;
        bad_in += is_bad && got;
        missing += !is_bad && got == 0;
        twice += got > 1;
    }
    CHECK_INT(bad_in, 0);
    CHECK_INT(missing, 0);
    CHECK_INT(twice, 0);
    json_decref(log);
    /* A load that succeeds clears the list. */
    CHECK_ERR(tp_warehouse_load(w, b2, "t", &po, 1), TP_OK);
    CHECK_INT(tp_warehouse_rejected_count(w), 0);
    wh_fixture_free(b4);

    /* A row that keeps failing with a retryable reason: given up after a few attempts. */
    snprintf(cfg, sizeof cfg, "{\"always_fail_ids\": [\"%s\"]}", bad_id);
    json_decref(control("/_fake/config", cfg));
    CHECK_ERR(tp_warehouse_load(w, b3, "t", &po, 1), TP_ERR_UNAVAILABLE);
    fprintf(stderr, "retries exhausted: %s\n", tp_warehouse_last_error(w));
    CHECK(strstr(tp_warehouse_last_error(w), "1 rows after 5 attempts") != NULL);
    log = control("/_fake/log", NULL);
    reqs = json_object_get(log, "requests");
    size_t n = json_array_size(reqs);
    CHECK_INT(json_array_size(json_array_get(reqs, n - 1)), 1); /* the last 4 requests resent only that row */
    CHECK_INT(json_array_size(json_array_get(reqs, n - 4)), 1);
    CHECK_INT(json_array_size(json_array_get(reqs, n - 5)), 20);
    json_decref(log);
    json_decref(control("/_fake/config", "{}"));

    tp_warehouse_close(w);
    wh_fixture_free(b);
    wh_fixture_free(b2);
    wh_fixture_free(b3);
}

/* NaN, +inf, -inf and -0.0 in every FLOAT column arrive as BigQuery accepts them ("NaN", "Infinity", "-Infinity",
 * -0.0) and every row is inserted; jansson's json_real(NaN) is NULL, which dropped the field and BigQuery refused
 * the row (the fake checks the same). */
static void test_nonfinite(const char *url)
{
    tp_warehouse *w = open_wh(url, 1, token_path, NULL);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    tp_row_batch *b = wh_fixture_new(40, 8, 2, 90);
    wh_fixture_nonfinite(b);
    tp_partition_offset po = {2, 91};
    CHECK_ERR(tp_warehouse_load(w, b, "t", &po, 1), TP_OK);
    json_t *log = control("/_fake/log", NULL);
    json_t *violations = json_object_get(log, "violations");
    CHECK_INT(json_array_size(violations), 0);
    if (json_array_size(violations))
        fprintf(stderr, "first violation: %s\n", json_string_value(json_array_get(violations, 0)));
    check_inserted_once(log, b);
    /* The exact encodings: row 0 latitude NaN, row 5 longitude +inf, row 10 speed -inf, row 15 heading -0.0. */
    char id[80];
    id_of(b, 0, id, sizeof id);
    json_t *row = json_object_get(json_object_get(log, "rows"), id);
    CHECK_STR(json_string_value(json_object_get(row, "latitude")), "NaN");
    id_of(b, 5, id, sizeof id);
    row = json_object_get(json_object_get(log, "rows"), id);
    CHECK_STR(json_string_value(json_object_get(row, "longitude")), "Infinity");
    id_of(b, 10, id, sizeof id);
    row = json_object_get(json_object_get(log, "rows"), id);
    CHECK_STR(json_string_value(json_object_get(row, "speed_kmh")), "-Infinity");
    id_of(b, 15, id, sizeof id);
    row = json_object_get(json_object_get(log, "rows"), id);
    CHECK(json_is_real(json_object_get(row, "heading_deg")));
    CHECK(signbit(json_real_value(json_object_get(row, "heading_deg"))));
    json_decref(log);
    tp_warehouse_close(w);
    wh_fixture_free(b);
}

static void test_tokens_and_errors(const char *url)
{
    char msg[512];
    tp_warehouse *w = (tp_warehouse *)1;
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.endpoint = endpoint;

    /* No token anywhere. */
    unsetenv("TP_BIGQUERY_TOKEN");
    CHECK_ERR(tp_warehouse_open(url, &o, &w, msg, sizeof msg), TP_ERR_INVALID_ARG);
    CHECK(w == NULL);
    CHECK(strstr(msg, "TP_BIGQUERY_TOKEN") != NULL);
    /* A token file that is not there. */
    o.token_file = "/nonexistent-telepack/token";
    CHECK_ERR(tp_warehouse_open(url, &o, &w, msg, sizeof msg), TP_ERR_IO);
    CHECK(strstr(msg, "/nonexistent-telepack/token") != NULL);
    o.token_file = NULL;
    /* A refused token from the environment. */
    setenv("TP_BIGQUERY_TOKEN", "  wrong-token\n", 1);
    CHECK_ERR(tp_warehouse_open(url, &o, &w, msg, sizeof msg), TP_OK);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "HTTP 401") != NULL);
    CHECK(strstr(tp_warehouse_last_error(w), "renew it") != NULL);
    tp_warehouse_close(w);
    /* The right token from the environment (whitespace trimmed). */
    setenv("TP_BIGQUERY_TOKEN", " " TOKEN "\n", 1);
    CHECK_ERR(tp_warehouse_open(url, &o, &w, msg, sizeof msg), TP_OK);
    CHECK_ERR(tp_warehouse_ping(w), TP_OK);
    tp_warehouse_close(w);

    /* URLs. */
    CHECK_ERR(tp_warehouse_open("bigquery://proj-1", &o, &w, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "bigquery://PROJECT/DATASET/TABLE") != NULL);
    CHECK_ERR(tp_warehouse_open("bigquery://proj-1/telemetry/a/b", &o, &w, msg, sizeof msg), TP_ERR_PARSE);
    CHECK_ERR(tp_warehouse_open("bigquery://proj 1/telemetry/a", &o, &w, msg, sizeof msg), TP_ERR_PARSE);
    /* No table in the URL: opts.table names it. */
    o.table = "positions";
    CHECK_ERR(tp_warehouse_open("bigquery://proj-1/telemetry", &o, &w, msg, sizeof msg), TP_OK);
    CHECK_ERR(tp_warehouse_ping(w), TP_OK);
    tp_warehouse_close(w);

    /* Nothing listening: retry later. */
    o.endpoint = "http://127.0.0.1:1";
    CHECK_ERR(tp_warehouse_open(url, &o, &w, msg, sizeof msg), TP_OK);
    CHECK_ERR(tp_warehouse_ping(w), TP_ERR_UNAVAILABLE);
    tp_row_batch *b = wh_fixture_new(3, 0, 0, 0);
    CHECK_ERR(tp_warehouse_load(w, b, "t", NULL, 0), TP_ERR_UNAVAILABLE);
    fprintf(stderr, "unreachable: %s\n", tp_warehouse_last_error(w));
    CHECK(strstr(tp_warehouse_last_error(w), "unreachable") != NULL);
    tp_warehouse_close(w);
    wh_fixture_free(b);
    unsetenv("TP_BIGQUERY_TOKEN");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/bigquery_fake.py\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    start_fake(argv[1]);
    const char *tmp = getenv("TMPDIR");
    snprintf(token_path, sizeof token_path, "%s/tp-bq-token-%d", tmp && tmp[0] ? tmp : "/tmp", (int)getpid());
    FILE *f = fopen(token_path, "w");
    if (!f)
        abort();
    fputs(TOKEN "\n", f);
    fclose(f);

    const char *url = "bigquery://proj-1/telemetry/positions";
    test_load_with_partial_failures(url);
    test_nonfinite(url);
    test_tokens_and_errors(url);

    unlink(token_path);
    stop_fake();
    curl_global_cleanup();
    return check_exit();
}
