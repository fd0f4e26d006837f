/* The ClickHouse warehouse against a real server (TP_TEST_CLICKHOUSE_URL=http://127.0.0.1:PORT): create, load 100k
 * rows, read them back bit for bit, reload (each record once after FINAL), offsets, and the refusals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "check.h"
#include "warehouse/warehouse.h"
#include "wh_fixture.h"

#define N_ROWS 100000
#define SALT 3

static char http[256];   /* http://HOST:PORT */
static char hostport[256];
static char db[64];
static char url[400];

typedef struct {
    char *data;
    size_t len;
} answer;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    answer *a = ud;
    char *q = realloc(a->data, a->len + size * n + 1);
    if (!q)
        return 0;
    memcpy(q + a->len, p, size * n);
    a->data = q;
    a->len += size * n;
    a->data[a->len] = '\0';
    return size * n;
}

/* Runs one statement through the HTTP interface; returns the HTTP status and the answer in *a. */
static long sql(const char *q, answer *a)
{
    CURL *c = curl_easy_init();
    a->data = NULL;
    a->len = 0;
    char u[300];
    snprintf(u, sizeof u, "%s/", http);
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, q);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (!a->data)
        a->data = calloc(1, 1);
    return status;
}

static long long sql_int(const char *q)
{
    answer a;
    long st = sql(q, &a);
    long long v = st == 200 ? atoll(a.data) : -999;
    if (st != 200)
        fprintf(stderr, "query failed (%ld): %s\n%s\n", st, q, a.data);
    free(a.data);
    return v;
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads the whole table back (FINAL) in RowBinary and compares every field of every row with the fixture; a table
 * without the lineage columns (lineage 0) has every field but kafka_partition and kafka_offset. */
static void check_read_back_shape(const tp_row_batch *b, const char *table, uint64_t salt, int lineage)
{
    char q[512];
    snprintf(q, sizeof q,
             "SELECT vehicle_id, sampled_at_ms, seq, latitude, longitude, speed_kmh, heading_deg, accuracy_m, "
             "meter_status, %s toUnixTimestamp(sampled_at) FROM %s.%s FINAL FORMAT RowBinary",
             lineage ? "kafka_partition, kafka_offset," : "", db, table);
    answer a;
    CHECK_INT(sql(q, &a), 200);
    const size_t lin = lineage ? 12 : 0, row = 56 + lin + 4;
    CHECK_INT(a.len, b->count * row);
    unsigned char *seen = calloc(b->count, 1);
    size_t bad = 0, dup = 0;
    for (size_t off = 0; off + row <= a.len; off += row) {
        const unsigned char *p = (const unsigned char *)a.data + off;
        uint64_t seq = le64(p + 16);
        size_t i = seq == UINT64_MAX - 1 - salt ? 1 : (size_t)(seq - salt * 100000000);
        if (i >= b->count) {
            bad++;
            continue;
        }
        if (seen[i]++)
            dup++;
        double lat, lon;
        float sp, hd, acc;
        uint64_t u64;
        uint32_t u32;
        u64 = le64(p + 24);
        memcpy(&lat, &u64, 8);
        u64 = le64(p + 32);
        memcpy(&lon, &u64, 8);
        u32 = le32(p + 40);
        memcpy(&sp, &u32, 4);
        u32 = le32(p + 44);
        memcpy(&hd, &u32, 4);
        u32 = le32(p + 48);
        memcpy(&acc, &u32, 4);
        /* Floats bit for bit (NaN is NaN, -0.0 keeps its sign, ±inf). */
        int ok = le64(p) == b->vehicle_id[i] && (int64_t)le64(p + 8) == b->sampled_at_ms[i] && seq == b->seq[i] &&
                 wh_fixture_same(lat, b->latitude[i], 0) && wh_fixture_same(lon, b->longitude[i], 0) &&
                 wh_fixture_same(sp, b->speed_kmh[i], 0) && wh_fixture_same(hd, b->heading_deg[i], 0) &&
                 wh_fixture_same(acc, b->accuracy_m[i], 0) && (int32_t)le32(p + 52) == b->meter_status[i] &&
                 (!lineage ||
                  ((int32_t)le32(p + 56) == b->kafka_partition[i] && (int64_t)le64(p + 60) == b->kafka_offset[i])) &&
                 (int64_t)le32(p + 56 + lin) == b->sampled_at_ms[i] / 1000;
        if (!ok && bad++ < 5)
            fprintf(stderr, "row %zu differs\n", i);
    }
    size_t missing = 0;
    for (size_t i = 0; i < b->count; i++)
        missing += !seen[i];
    CHECK_INT(bad, 0);
    CHECK_INT(dup, 0);
    CHECK_INT(missing, 0);
    free(seen);
    free(a.data);
}

static void check_read_back(const tp_row_batch *b, const char *table, uint64_t salt)
{
    check_read_back_shape(b, table, salt, 1);
}

/* Opens u; with create, tables are made with the lineage columns unless lineage says otherwise. */
static tp_warehouse *open_wh_lineage(const char *u, int create, const char *table, tp_wh_lineage lineage)
{
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.create_table = create;
    o.lineage_columns = lineage;
    if (table)
        o.table = table;
    o.timeout_ms = 20000;
    tp_warehouse *w = NULL;
    char msg[512];
    tp_err e = tp_warehouse_open(u, &o, &w, msg, sizeof msg);
    CHECK_ERR(e, TP_OK);
    if (e) {
        fprintf(stderr, "%s\n", msg);
        exit(1);
    }
    return w;
}

static tp_warehouse *open_wh(const char *u, int create, const char *table)
{
    return open_wh_lineage(u, create, table, TP_WH_LINEAGE_YES);
}

/* A table without the lineage columns (--create-table's default): made without them, loaded in both formats (9
 * columns), each record once after a reload, offsets kept; an existing table with them keeps them; a table with one
 * of the two is refused. */
static void test_lineage_free(void)
{
    tp_warehouse *w = open_wh_lineage(url, 1, "no_lineage", TP_WH_LINEAGE_DEFAULT);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    char q[512];
    snprintf(q, sizeof q,
             "SELECT count() FROM system.columns WHERE database = '%s' AND table = 'no_lineage' AND name LIKE 'kafka%%'",
             db);
    CHECK_INT(sql_int(q), 0);
    tp_row_batch *b = wh_fixture_new(20000, 5, 2, 40);
    tp_partition_offset po = {2, 240};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK); /* re-delivered */
    check_read_back_shape(b, "no_lineage", 5, 0);
    int64_t off = 0;
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 2, &off), TP_OK);
    CHECK_INT(off, 240);
    tp_warehouse_close(w);
    /* RowBinary into the same table, asked for with the lineage columns: the table's shape decides. */
    char rb_url[450];
    snprintf(rb_url, sizeof rb_url, "%s?format=rowbinary", url);
    w = open_wh_lineage(rb_url, 1, "no_lineage", TP_WH_LINEAGE_YES);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    tp_partition_offset po2 = {2, 260};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po2, 1), TP_OK);
    check_read_back_shape(b, "no_lineage", 5, 0);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 2, &off), TP_OK);
    CHECK_INT(off, 260);
    tp_warehouse_close(w);
    /* The table made with them (vehicle_positions, by main) keeps them under --lineage-columns no. */
    w = open_wh_lineage(url, 1, "with_lineage", TP_WH_LINEAGE_YES);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    tp_warehouse_close(w);
    w = open_wh_lineage(url, 1, "with_lineage", TP_WH_LINEAGE_NO);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    check_read_back_shape(b, "with_lineage", 5, 1);
    tp_warehouse_close(w);
    /* One of the two: refused, naming the one to add. */
    answer a;
    snprintf(q, sizeof q,
             "CREATE TABLE %s.half_lineage (vehicle_id UInt64, sampled_at_ms Int64, seq UInt64, latitude Float64, "
             "longitude Float64, speed_kmh Float32, heading_deg Float32, accuracy_m Float32, meter_status Int32, "
             "kafka_offset Int64) ENGINE = ReplacingMergeTree ORDER BY (vehicle_id, sampled_at_ms, seq)",
             db);
    CHECK_INT(sql(q, &a), 200);
    free(a.data);
    w = open_wh_lineage(url, 1, "half_lineage", TP_WH_LINEAGE_DEFAULT);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    fprintf(stderr, "half lineage: %s\n", tp_warehouse_last_error(w));
    CHECK(strstr(tp_warehouse_last_error(w), "ADD COLUMN kafka_partition Int32) or drop the one it has") != NULL);
    tp_warehouse_close(w);
    wh_fixture_free(b);
}

/* NaN, +inf, -inf and -0.0 in every float column load and read back bit for bit; a reload is absorbed. */
static void test_nonfinite(void)
{
    tp_warehouse *w = open_wh(url, 1, "nonfinite");
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    tp_row_batch *b = wh_fixture_new(40, 9, 0, 0);
    wh_fixture_nonfinite(b);
    tp_partition_offset po = {0, 1};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    check_read_back(b, "nonfinite", 9);
    char q[300];
    snprintf(q, sizeof q, "SELECT countIf(isNaN(latitude)), countIf(isInfinite(speed_kmh)) FROM %s.nonfinite FINAL",
             db);
    CHECK_INT(sql_int(q), 2);
    tp_warehouse_close(w);
    wh_fixture_free(b);
}

#define OUR_COLUMNS                                                                                                \
    "vehicle_id UInt64, sampled_at_ms Int64, seq UInt64, latitude Float64, longitude Float64, speed_kmh Float32, " \
    "heading_deg Float32, accuracy_m Float32, meter_status Int32, kafka_partition Int32, kafka_offset Int64, "     \
    "sampled_at DateTime MATERIALIZED toDateTime(intDiv(sampled_at_ms, 1000))"

/* Tables with all our columns whose engine, ORDER BY or partition key would keep duplicates or merge distinct
 * records are refused before any load, with what is wrong and what to change; sound variants are accepted. */
static void test_table_definition_checked(void)
{
    static const struct {
        const char *name, *engine, *want; /* want NULL: accepted */
    } cases[] = {
        {"plain_mt", "MergeTree ORDER BY (vehicle_id, sampled_at_ms, seq)", "has ENGINE = MergeTree"},
        {"no_seq", "ReplacingMergeTree ORDER BY (vehicle_id, sampled_at_ms)",
         "is ORDER BY (vehicle_id, sampled_at_ms), not the record identity"},
        {"by_second", "ReplacingMergeTree ORDER BY (vehicle_id, intDiv(sampled_at_ms, 1000), seq)",
         "merge distinct records that share the shorter key"},
        {"wide_key", "ReplacingMergeTree ORDER BY (vehicle_id, sampled_at_ms, seq, kafka_offset)",
         "keep copies of a record that differ in the other key columns"},
        {"by_partition", "ReplacingMergeTree PARTITION BY kafka_partition ORDER BY (vehicle_id, sampled_at_ms, seq)",
         "partitioned by column kafka_partition"},
        {"log", "Log", "has ENGINE = Log"},
        {"ok_variant",
         "ReplacingMergeTree(kafka_offset) PARTITION BY toYYYYMM(sampled_at) ORDER BY (intDiv(sampled_at_ms, "
         "86400000), seq, vehicle_id, sampled_at_ms)",
         NULL},
    };
    char q[1024];
    answer a;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(q, sizeof q, "CREATE TABLE %s.%s (" OUR_COLUMNS ") ENGINE = %s", db, cases[i].name, cases[i].engine);
        long st = sql(q, &a);
        CHECK_INT(st, 200);
        if (st != 200)
            fprintf(stderr, "%s\n", a.data);
        free(a.data);
        tp_warehouse *w = open_wh(url, 1, cases[i].name); /* --create-table does not paper over it */
        if (!cases[i].want) {
            CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
        } else {
            CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
            if (!strstr(tp_warehouse_last_error(w), cases[i].want)) {
                fprintf(stderr, "%s: got \"%s\"\n", cases[i].name, tp_warehouse_last_error(w));
                CHECK(0);
            }
            CHECK(strstr(tp_warehouse_last_error(w), "ReplacingMergeTree") != NULL);
            if (i < 2 || i == 4)
                fprintf(stderr, "%s: %s\n", cases[i].name, tp_warehouse_last_error(w));
        }
        tp_warehouse_close(w);
    }
}

/* Packs of 30 records in falling vehicle order (a sink's batch: the Native block reorders whole runs), with the
 * extreme values of every integer column, loaded as Native twice (one copy of each record after FINAL) and as
 * RowBinary (?format=rowbinary) into another table: both read back bit for bit. */
static void test_formats(void)
{
    tp_row_batch *b = wh_fixture_new(3000, 5, 1, 10);
    for (size_t i = 0; i < b->count; i++)
        if (i != 1) /* row 1 keeps vehicle UINT64_MAX */
            b->vehicle_id[i] = 500000 + (b->count - i) / 30;
    b->vehicle_id[7] = 0;
    b->meter_status[3] = INT32_MIN;
    b->meter_status[4] = INT32_MAX;
    b->kafka_offset[5] = INT64_MAX;
    b->kafka_offset[6] = INT64_MIN;
    b->kafka_partition[8] = INT32_MAX;
    b->kafka_partition[9] = INT32_MIN;
    tp_partition_offset po = {1, 40};
    tp_warehouse *w = open_wh(url, 1, "native_packs");
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    check_read_back(b, "native_packs", 5);
    char q[1024];
    snprintf(q, sizeof q, "SELECT count() FROM %s.native_packs FINAL", db);
    CHECK_INT(sql_int(q), 3000);
    tp_warehouse_close(w);
    char rb_url[450];
    snprintf(rb_url, sizeof rb_url, "%s?format=rowbinary", url);
    w = open_wh(rb_url, 1, "rowbinary");
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    check_read_back(b, "rowbinary", 5);
    int64_t off = 0;
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 1, &off), TP_OK);
    CHECK_INT(off, 40);
    tp_warehouse_close(w);
    /* The offsets carry the sink's load time. */
    snprintf(q, sizeof q, "SELECT countIf(abs(toInt64(loaded_at) - toInt64(now())) < 600) = count() AND count() > 0 "
             "FROM %s.kafka_offsets", db);
    CHECK_INT(sql_int(q), 1);
    wh_fixture_free(b);
}

int main(void)
{
    const char *env = getenv("TP_TEST_CLICKHOUSE_URL");
    if (!env || !env[0]) {
        const char *req = getenv("TP_REQUIRE_INTEGRATION");
        fprintf(stderr, "TP_TEST_CLICKHOUSE_URL is not set: skipping\n");
        return req && !strcmp(req, "1") ? 1 : 77;
    }
    if (strncmp(env, "http://", 7) || strlen(env) > 200) {
        fprintf(stderr, "TP_TEST_CLICKHOUSE_URL must be http://HOST:PORT, not %s\n", env);
        return 1;
    }
    snprintf(http, sizeof http, "%s", env);
    size_t n = strlen(http);
    while (n && http[n - 1] == '/')
        http[--n] = '\0';
    snprintf(hostport, sizeof hostport, "%s", http + 7);
    snprintf(db, sizeof db, "tp_test_wh_%ld_%d", (long)time(NULL), (int)getpid());
    snprintf(url, sizeof url, "clickhouse://%s/%s", hostport, db);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    /* Before the database exists, without --create-table: a clear refusal. */
    tp_warehouse *w = open_wh(url, 0, NULL);
    CHECK_STR(tp_warehouse_kind(w), "clickhouse");
    CHECK_ERR(tp_warehouse_ping(w), TP_OK);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    fprintf(stderr, "missing table: %s\n", tp_warehouse_last_error(w));
    CHECK(strstr(tp_warehouse_last_error(w), "--create-table") != NULL);
    CHECK(strstr(tp_warehouse_last_error(w), hostport) != NULL);
    tp_row_batch *b = wh_fixture_new(N_ROWS, SALT, 3, 1000);
    tp_partition_offset po = {3, 1000 + N_ROWS / 100};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_ERR_WAREHOUSE);
    fprintf(stderr, "load into a missing table: %s\n", tp_warehouse_last_error(w));
    CHECK(strstr(tp_warehouse_last_error(w), "refused the insert (code 81") != NULL);
    CHECK(strstr(tp_warehouse_last_error(w), "--create-table") != NULL);
    tp_warehouse_close(w);

    /* Create, load 100k rows, read back. */
    w = open_wh(url, 1, NULL);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    int64_t off = 0;
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 3, &off), TP_OK);
    CHECK_INT(off, -1);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    check_read_back(b, "vehicle_positions", SALT);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 3, &off), TP_OK);
    CHECK_INT(off, 1000 + N_ROWS / 100);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 4, &off), TP_OK);
    CHECK_INT(off, -1);
    CHECK_ERR(tp_warehouse_stored_offset(w, "other", 3, &off), TP_OK);
    CHECK_INT(off, -1);
    CHECK_ERR(tp_warehouse_stored_offset(w, "bad'topic", 3, &off), TP_ERR_INVALID_ARG);

    /* The same batch again (re-delivery): each record once after FINAL, and after the merge. */
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    char q[300];
    snprintf(q, sizeof q, "SELECT count() FROM %s.vehicle_positions FINAL", db);
    CHECK_INT(sql_int(q), N_ROWS);
    check_read_back(b, "vehicle_positions", SALT);
    snprintf(q, sizeof q, "OPTIMIZE TABLE %s.vehicle_positions FINAL", db);
    answer a;
    CHECK_INT(sql(q, &a), 200);
    free(a.data);
    snprintf(q, sizeof q, "SELECT count() FROM %s.vehicle_positions", db);
    CHECK_INT(sql_int(q), N_ROWS);
    /* A later load moves the stored offset forward. */
    tp_partition_offset po2 = {3, 5000};
    b->count = 10;
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po2, 1), TP_OK);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 3, &off), TP_OK);
    CHECK_INT(off, 5000);
    b->count = N_ROWS;
    CHECK_ERR(tp_warehouse_load(w, b, "bad topic", &po2, 1), TP_ERR_INVALID_ARG);
    tp_warehouse_close(w);

    /* gzip request bodies (?gzip=1) load the same bits. */
    char gz_url[450];
    snprintf(gz_url, sizeof gz_url, "%s?gzip=1", url);
    w = open_wh(gz_url, 1, "gzipped");
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    tp_row_batch *g = wh_fixture_new(20000, 4, 0, 7);
    tp_partition_offset gpo = {0, 207};
    CHECK_ERR(tp_warehouse_load(w, g, "positions", &gpo, 1), TP_OK);
    CHECK_ERR(tp_warehouse_load(w, g, "positions", &gpo, 1), TP_OK); /* the reused stream, again */
    check_read_back(g, "gzipped", 4);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_OK);
    CHECK_INT(off, 207);
    tp_warehouse_close(w);
    wh_fixture_free(g);

    /* A table of our name with other column types: refused before any load. */
    snprintf(q, sizeof q, "CREATE TABLE %s.wrong (vehicle_id String, x Int8) ENGINE = Memory", db);
    CHECK_INT(sql(q, &a), 200);
    free(a.data);
    w = open_wh(url, 0, "wrong");
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    fprintf(stderr, "wrong columns: %s\n", tp_warehouse_last_error(w));
    CHECK(strstr(tp_warehouse_last_error(w), "no column vehicle_id of type UInt64") != NULL);
    /* And the insert into it is refused with ClickHouse's own words. */
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_ERR_WAREHOUSE);
    fprintf(stderr, "insert into wrong columns: %s\n", tp_warehouse_last_error(w));
    CHECK(strstr(tp_warehouse_last_error(w), "refused the insert (code ") != NULL);
    tp_warehouse_close(w);

    test_nonfinite();
    test_formats();
    test_lineage_free();
    test_table_definition_checked();

    /* Wrong credentials: a permanent refusal naming what to check. */
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.user = "telepack_no_such_user";
    o.password = "x";
    CHECK_ERR(tp_warehouse_open(url, &o, &w, NULL, 0), TP_OK);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "--user") != NULL);
    tp_warehouse_close(w);

    snprintf(q, sizeof q, "DROP DATABASE %s", db);
    CHECK_INT(sql(q, &a), 200);
    free(a.data);
    wh_fixture_free(b);
    curl_global_cleanup();
    return check_exit();
}
