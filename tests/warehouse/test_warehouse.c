/* Warehouse dispatch without any server: option defaults, URL parsing of every scheme, and "retry later" from a
 * ClickHouse URL where nothing listens. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "warehouse/warehouse.h"
#include "wh_fixture.h"

/* A loopback port nothing listens on: bound by us, then closed. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len))
        return 1;
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* A one-connection-at-a-time HTTP responder that answers every request with `canned` (then closes). It keeps the
 * last request's first line and body (captured_line, captured_body) for the tests that check what was sent. */
static const char *volatile canned;
static const char *(*volatile canned_fn)(void); /* when set, picks the answer from the captured request */
static int canned_fd;
static char captured_line[4096];
static unsigned char *captured_body;
static size_t captured_len;

static void *responder(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(canned_fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[65536];
        size_t got = 0;
        ssize_t n;
        char *end = NULL;
        while (!end && got < sizeof buf - 1 && (n = read(c, buf + got, sizeof buf - 1 - got)) > 0) {
            got += (size_t)n;
            buf[got] = '\0';
            end = strstr(buf, "\r\n\r\n");
        }
        snprintf(captured_line, sizeof captured_line, "%.*s", (int)strcspn(buf, "\r\n"), buf);
        const char *cl = strcasestr(buf, "Content-Length:");
        size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0, have = end ? got - (size_t)(end + 4 - buf) : 0;
        free(captured_body);
        captured_body = malloc(body + 1);
        captured_len = 0;
        if (captured_body && have)
            memcpy(captured_body, end + 4, have < body ? have : body);
        while (have < body && (n = read(c, buf, sizeof buf)) > 0) {
            if (captured_body)
                memcpy(captured_body + have, buf, (size_t)n < body - have ? (size_t)n : body - have);
            have += (size_t)n;
        }
        captured_len = captured_body ? (have < body ? have : body) : 0;
        if (captured_body)
            captured_body[captured_len] = '\0';
        const char *r = canned_fn ? canned_fn() : canned;
        if (write(c, r, strlen(r)) < 0)
            perror("write");
        close(c);
    }
}

static int listen_port(int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 8) ||
        getsockname(fd, (struct sockaddr *)&a, &len))
        abort();
    *fd_out = fd;
    return ntohs(a.sin_port);
}

/* ClickHouse answers that are not 200: transient ones are "retry later", the rest permanent. */
static void test_clickhouse_answers(void)
{
    int port = listen_port(&canned_fd);
    pthread_t t;
    pthread_create(&t, NULL, responder, NULL);
    char url[128];
    snprintf(url, sizeof url, "clickhouse://127.0.0.1:%d/telemetry", port);
    tp_warehouse *w = NULL;
    CHECK_ERR(tp_warehouse_open(url, NULL, &w, NULL, 0), TP_OK);
    tp_row_batch *b = wh_fixture_new(10, 0, 0, 0);
    static const struct {
        const char *answer;
        tp_err want;
        const char *says;
    } cases[] = {
        {"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", TP_ERR_UNAVAILABLE,
         "answered HTTP 503 to the insert (no details); retry later"},
        {"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 5\r\n\r\nproxy", TP_ERR_UNAVAILABLE,
         "answered HTTP 502 to the insert (proxy); retry later"},
        {"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 114\r\n\r\n"
         "Code: 252, e.displayText() = DB::Exception: Too many parts (300). Merges are slower than inserts, e.wh"
         "at() = DB::E",
         TP_ERR_UNAVAILABLE, "refused the insert (code 252: Too many parts (300). Merges are slower than inserts); retry"},
        /* 252 on 19.x+ also means "too many partitions in one INSERT": the data, not the server; never retried. */
        {"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 180\r\n\r\n"
         "Code: 252, e.displayText() = DB::Exception: Too many partitions for single INSERT block (more than 100). "
         "The limit is controlled by 'max_partitions_per_insert_block' setting., e.wh",
         TP_ERR_REJECTED, "(code 252: Too many partitions for single INSERT block (more than 100). The limit"},
        {"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 139\r\n\r\n"
         "Code: 252. DB::Exception: Too many partitions for a single INSERT block (101 partitions, limit is 100). "
         "(TOO_MANY_PARTS) (version 24.3.1.1)",
         TP_ERR_REJECTED, "spans too many partitions (days) for one INSERT: split it"},
        {"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 84\r\n\r\n"
         "Code: 33. DB::Exception: Cannot read all data. (CANNOT_READ_ALL_DATA) (version 23.8)",
         TP_ERR_WAREHOUSE, "(code 33: Cannot read all data. (CANNOT_READ_ALL_DATA) (version 23.8)); the table's columns"},
        {"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", TP_ERR_WAREHOUSE,
         "answered HTTP 403 to the insert (no details); check the URL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        canned = cases[i].answer;
        CHECK_ERR(tp_warehouse_load(w, b, "positions", NULL, 0), cases[i].want);
        int says = strstr(tp_warehouse_last_error(w), cases[i].says) != NULL;
        CHECK(says);
        if (!says) {
            fprintf(stderr, "case %zu: %s\n", i, tp_warehouse_last_error(w));
        }
    }
    /* A server too old for us. */
    canned = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 10\r\n\r\n1.1.54394\n";
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "runs ClickHouse 1.1.54394; telepack needs 18.16 or newer") != NULL);
    /* An answer to the offsets query that is not two numbers. */
    int64_t off = 3;
    canned = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\nhello\n";
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "unexpected answer to the offsets query: \"hello") != NULL);
    CHECK_INT(off, -1);
    /* A server that accepts but never answers: the request times out, retry later. */
    tp_warehouse_close(w);
    int silent_fd;
    int silent = listen_port(&silent_fd);
    snprintf(url, sizeof url, "clickhouse://127.0.0.1:%d/telemetry", silent);
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.timeout_ms = 300;
    CHECK_ERR(tp_warehouse_open(url, &o, &w, NULL, 0), TP_OK);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", NULL, 0), TP_ERR_UNAVAILABLE);
    CHECK(strstr(tp_warehouse_last_error(w), "unreachable (Operation timed out") != NULL);
    fprintf(stderr, "timeout: %s\n", tp_warehouse_last_error(w));
    tp_warehouse_close(w);
    close(silent_fd);
    shutdown(canned_fd, SHUT_RDWR);
    close(canned_fd);
    pthread_join(t, NULL);
    wh_fixture_free(b);
}

/* ---- what a load sends: one Native block, rows in key order; or RowBinary as the rows arrived ---- */

static uint64_t get_varint(const unsigned char **p, const unsigned char *end)
{
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    return v;
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int key_before(const tp_row_batch *b, size_t i, size_t j) /* row i strictly before row j */
{
    if (b->vehicle_id[i] != b->vehicle_id[j])
        return b->vehicle_id[i] < b->vehicle_id[j];
    if (b->sampled_at_ms[i] != b->sampled_at_ms[j])
        return b->sampled_at_ms[i] < b->sampled_at_ms[j];
    return b->seq[i] < b->seq[j];
}

/* Decodes the captured Native body and checks it holds exactly the rows of b (seq is unique in b and names the
 * row), every field bit for bit, in (vehicle_id, sampled_at_ms, seq) order. */
static void check_native_body_cols(const tp_row_batch *b, const char *what, int n_cols)
{
    static const char *const names[] = {"vehicle_id", "sampled_at_ms", "seq", "latitude", "longitude", "speed_kmh",
                                        "heading_deg", "accuracy_m", "meter_status", "kafka_partition",
                                        "kafka_offset"};
    static const char *const types[] = {"UInt64", "Int64", "UInt64", "Float64", "Float64", "Float32", "Float32",
                                        "Float32", "Int32", "Int32", "Int64"};
    static const int width[] = {8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 8};
    int ok = strstr(captured_line, "FORMAT%20Native") != NULL;
    const unsigned char *p = captured_body, *end = captured_body + captured_len;
    ok = ok && get_varint(&p, end) == (uint64_t)n_cols && get_varint(&p, end) == b->count;
    const unsigned char *col[11] = {0};
    for (int k = 0; ok && k < n_cols; k++) {
        for (int t = 0; t < 2 && ok; t++) {
            const char *want = t ? types[k] : names[k];
            uint64_t n = get_varint(&p, end);
            ok = n == strlen(want) && (size_t)(end - p) >= n && !memcmp(p, want, n);
            p += ok ? n : 0;
        }
        ok = ok && (size_t)(end - p) >= b->count * (size_t)width[k];
        col[k] = p;
        p += ok ? b->count * (size_t)width[k] : 0;
    }
    ok = ok && p == end;
    if (!ok) {
        fprintf(stderr, "%s: not one Native block of our columns (%zu bytes, %s)\n", what, captured_len, captured_line);
        CHECK(0);
        return;
    }
    size_t bad = 0, unordered = 0, prev = 0;
    unsigned char *seen = calloc(b->count, 1);
    for (size_t r = 0; r < b->count; r++) {
        uint64_t seq = get_le(col[2] + 8 * r, 8);
        size_t i = (size_t)seq; /* the test batches use seq = row index */
        if (i >= b->count || seen[i]++) {
            bad++;
            continue;
        }
        uint64_t u;
        double lat, lon;
        uint32_t f[3];
        float sp, hd, acc;
        u = get_le(col[3] + 8 * r, 8), memcpy(&lat, &u, 8);
        u = get_le(col[4] + 8 * r, 8), memcpy(&lon, &u, 8);
        for (int k = 0; k < 3; k++)
            f[k] = (uint32_t)get_le(col[5 + k] + 4 * r, 4);
        memcpy(&sp, &f[0], 4), memcpy(&hd, &f[1], 4), memcpy(&acc, &f[2], 4);
        int same = get_le(col[0] + 8 * r, 8) == b->vehicle_id[i] &&
                   (int64_t)get_le(col[1] + 8 * r, 8) == b->sampled_at_ms[i] &&
                   wh_fixture_same(lat, b->latitude[i], 0) && wh_fixture_same(lon, b->longitude[i], 0) &&
                   wh_fixture_same(sp, b->speed_kmh[i], 0) && wh_fixture_same(hd, b->heading_deg[i], 0) &&
                   wh_fixture_same(acc, b->accuracy_m[i], 0) &&
                   (int32_t)get_le(col[8] + 4 * r, 4) == b->meter_status[i] &&
                   (n_cols < 11 || ((int32_t)get_le(col[9] + 4 * r, 4) == b->kafka_partition[i] &&
                                    (int64_t)get_le(col[10] + 8 * r, 8) == b->kafka_offset[i]));
        bad += !same;
        if (r && key_before(b, i, prev))
            unordered++;
        prev = i;
    }
    free(seen);
    if (bad || unordered)
        fprintf(stderr, "%s: %zu rows differ or repeat, %zu out of key order\n", what, bad, unordered);
    CHECK_INT(bad, 0);
    CHECK_INT(unordered, 0);
}

/* A batch of n rows, seq = row index; vehicle and time per row from the callback. */
static tp_row_batch *keyed_batch(size_t n, void (*key)(size_t i, uint64_t *vehicle, int64_t *t))
{
    tp_row_batch *b = wh_fixture_new(n, 0, 2, 40);
    for (size_t i = 0; i < n; i++) {
        key(i, &b->vehicle_id[i], &b->sampled_at_ms[i]);
        b->seq[i] = i;
        b->kafka_offset[i] = 40 + (int64_t)(i / 10);
    }
    if (n > 7) {
        b->meter_status[3] = INT32_MIN, b->meter_status[4] = INT32_MAX;
        b->kafka_offset[5] = INT64_MAX, b->kafka_partition[6] = INT32_MAX;
    }
    return b;
}

/* 30 packs of 10 records, vehicles in falling order, each pack in time order: the runs just need reordering. */
static void key_packs_reversed(size_t i, uint64_t *v, int64_t *t)
{
    *v = 1000 - i / 10, *t = 1700000000000 + (int64_t)(i % 10) * 1000;
}
/* One vehicle, three packs whose times interleave (0,3,6.. / 1,4,7.. / 2,5,8..): the runs must be merged. */
static void key_interleaved(size_t i, uint64_t *v, int64_t *t)
{
    *v = 77, *t = 1700000000000 + (int64_t)((i % 100) * 3 + i / 100);
}
/* Per-partition packs as ingest makes them: 4 partitions x 3 packs in batch order (partition 0..3 of the first
 * linger, then of the second, ...); a pack holds its partition's 5 vehicles (vehicle % 4 = partition) by vehicle,
 * 5 records each in time order, later packs later. Packs overlap each other; a vehicle's runs do not. */
static void key_partition_packs(size_t i, uint64_t *v, int64_t *t)
{
    size_t pack = i / 25, j = i % 25, k = pack / 4, part = pack % 4;
    *v = 100 + part + 4 * (j / 5), *t = 1700000000000 + (int64_t)(k * 5 + j % 5) * 1000;
}
/* The same, with each vehicle's first record of the last packs older than its records of the pack before: its
 * runs overlap, and must be merged. */
static void key_partition_packs_late(size_t i, uint64_t *v, int64_t *t)
{
    key_partition_packs(i, v, t);
    if (i / 25 / 4 == 2 && i % 5 == 0)
        *t = 1700000000000 + 5500;
}
/* Already in key order. */
static void key_sorted(size_t i, uint64_t *v, int64_t *t)
{
    *v = 5 + i / 50, *t = 1700000000000 + (int64_t)(i % 50);
}
/* Pseudo-random keys with many ties of (vehicle, time): seq decides. */
static void key_random(size_t i, uint64_t *v, int64_t *t)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15u;
    x ^= x >> 29;
    *v = i == 7 ? UINT64_MAX : x % 5, *t = i == 9 ? INT64_MIN : 1700000000000 + (int64_t)((x >> 8) % 20);
}

static void check_native_body(const tp_row_batch *b, const char *what)
{
    check_native_body_cols(b, what, 11);
}

/* ---- tables with and without the lineage columns (kafka_partition, kafka_offset) ---- */

static const char *table_columns; /* the answer to ensure_table's system.columns query */
static char created[2048];         /* the last CREATE TABLE of vehicle_positions */

#define REC_COLS                                                                                                  \
    "vehicle_id\tUInt64\nsampled_at_ms\tInt64\nseq\tUInt64\nlatitude\tFloat64\nlongitude\tFloat64\n"                   \
    "speed_kmh\tFloat32\nheading_deg\tFloat32\naccuracy_m\tFloat32\nmeter_status\tInt32\n"
#define LIN_COLS "kafka_partition\tInt32\nkafka_offset\tInt64\n"

/* A ClickHouse 18.16 as ensure_table and load see it, the table's columns being table_columns. */
static const char *scripted_server(void)
{
    static char answer[4096];
    const char *q = captured_body ? (const char *)captured_body : "", *text = "";
    if (strstr(q, "SELECT version()"))
        text = "18.16.1\n";
    else if (strstr(q, "SELECT name, type FROM system.columns"))
        text = table_columns;
    else if (strstr(q, "SELECT engine, sorting_key FROM system.tables"))
        text = "ReplacingMergeTree\tvehicle_id, sampled_at_ms, seq\n";
    else if (strstr(q, "is_in_partition_key"))
        text = "sampled_at\tMATERIALIZED\ttoDateTime(intDiv(sampled_at_ms, 1000))\n";
    else if (strstr(q, "CREATE TABLE IF NOT EXISTS telemetry.vehicle_positions"))
        snprintf(created, sizeof created, "%s", q);
    snprintf(answer, sizeof answer, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(text), text);
    return answer;
}

/* Opens url with the lineage option, ensures the table (whose columns are cols) and loads 300 rows; returns what
 * ensure_table said (the load only when it succeeded). */
static tp_err lineage_case(const char *url, tp_wh_lineage lineage, int create, const char *cols, tp_row_batch *b)
{
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.lineage_columns = lineage;
    o.create_table = create;
    tp_warehouse *w = NULL;
    CHECK_ERR(tp_warehouse_open(url, &o, &w, NULL, 0), TP_OK);
    if (!w)
        return TP_ERR_INVALID_ARG;
    table_columns = cols;
    created[0] = '\0';
    tp_err e = tp_warehouse_ensure_table(w);
    if (e)
        fprintf(stderr, "refused: %s\n", tp_warehouse_last_error(w));
    else
        CHECK_ERR(tp_warehouse_load(w, b, "positions", NULL, 0), TP_OK);
    tp_warehouse_close(w);
    return e;
}

static void test_lineage_columns(void)
{
    int port = listen_port(&canned_fd);
    pthread_t th;
    canned_fn = scripted_server;
    pthread_create(&th, NULL, responder, NULL);
    char url[160], rb_url[200];
    snprintf(url, sizeof url, "clickhouse://127.0.0.1:%d/telemetry", port);
    snprintf(rb_url, sizeof rb_url, "%s?format=rowbinary", url);
    tp_row_batch *b = keyed_batch(300, key_interleaved);
    const char *with = REC_COLS LIN_COLS "sampled_at\tDateTime\n", *without = REC_COLS "sampled_at\tDateTime\n";

    /* --create-table by default makes the table without them, and the load sends the 9 record columns. */
    CHECK_ERR(lineage_case(url, TP_WH_LINEAGE_DEFAULT, 1, without, b), TP_OK);
    CHECK(strstr(created, "meter_status Int32, sampled_at DateTime MATERIALIZED") != NULL);
    CHECK(strstr(created, "kafka_") == NULL);
    CHECK(strstr(captured_line, "meter_status%29%20FORMAT%20Native") != NULL);
    check_native_body_cols(b, "without lineage", 9);
    CHECK_ERR(lineage_case(url, TP_WH_LINEAGE_NO, 1, without, b), TP_OK);
    CHECK(strstr(created, "kafka_") == NULL);
    check_native_body_cols(b, "without lineage (no)", 9);
    /* ... with yes, with them, and the load sends all 11. */
    CHECK_ERR(lineage_case(url, TP_WH_LINEAGE_YES, 1, with, b), TP_OK);
    CHECK(strstr(created, "meter_status Int32, kafka_partition Int32, kafka_offset Int64, sampled_at") != NULL);
    CHECK(strstr(captured_line, "kafka_offset%29%20FORMAT%20Native") != NULL);
    check_native_body(b, "with lineage");
    /* An existing table loads in its own shape, whatever the option says. */
    CHECK_ERR(lineage_case(url, TP_WH_LINEAGE_NO, 0, with, b), TP_OK);
    check_native_body(b, "existing table with lineage, option no");
    CHECK_ERR(lineage_case(url, TP_WH_LINEAGE_YES, 0, without, b), TP_OK);
    check_native_body_cols(b, "existing table without lineage, option yes", 9);
    /* RowBinary: 56 bytes per row without them, 68 with, each row as it came. */
    CHECK_ERR(lineage_case(rb_url, TP_WH_LINEAGE_DEFAULT, 0, without, b), TP_OK);
    CHECK(strstr(captured_line, "meter_status%29%20FORMAT%20RowBinary") != NULL);
    CHECK_INT(captured_len, 300 * 56);
    size_t bad = 0;
    for (size_t i = 0; captured_len == 300 * 56 && i < 300; i++)
        bad += get_le(captured_body + 56 * i, 8) != b->vehicle_id[i] || get_le(captured_body + 56 * i + 16, 8) != i ||
               (int32_t)get_le(captured_body + 56 * i + 52, 4) != b->meter_status[i];
    CHECK_INT(bad, 0);
    CHECK_ERR(lineage_case(rb_url, TP_WH_LINEAGE_DEFAULT, 0, with, b), TP_OK);
    CHECK_INT(captured_len, 300 * 68);
    /* Refused: one lineage column without the other, one of another type, a record column missing. */
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    tp_warehouse *w = NULL;
    CHECK_ERR(tp_warehouse_open(url, &o, &w, NULL, 0), TP_OK);
    static const struct {
        const char *cols, *says;
    } refused[] = {
        {REC_COLS "kafka_partition\tInt32\n", "has only one of the lineage columns kafka_partition and kafka_offset; "
                                              "add the other (ALTER TABLE telemetry.vehicle_positions ADD COLUMN "
                                              "kafka_offset Int64)"},
        {REC_COLS "kafka_offset\tInt64\n", "ADD COLUMN kafka_partition Int32) or drop the one it has"},
        {REC_COLS "kafka_partition\tInt32\nkafka_offset\tString\n", "has no column kafka_offset of type Int64"},
        {REC_COLS "kafka_partition\tInt64\nkafka_offset\tInt64\n", "has no column kafka_partition of type Int32"},
        {"vehicle_id\tUInt64\nsampled_at_ms\tInt64\nseq\tUInt64\n" LIN_COLS, "has no column latitude of type Float64"},
        {"vehicle_id\tUInt64\nsampled_at_ms\tInt64\nseq\tUInt64\nlatitude\tFloat64X\n", "has no column latitude"},
    };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        table_columns = refused[k].cols;
        CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
        int says = strstr(tp_warehouse_last_error(w), refused[k].says) != NULL;
        CHECK(says);
        if (!says)
            fprintf(stderr, "refusal %zu: %s\n", k, tp_warehouse_last_error(w));
    }
    tp_warehouse_close(w);
    /* Only the built-in ClickHouse table can be made without them. */
    char msg[512];
    o.lineage_columns = TP_WH_LINEAGE_NO;
    CHECK_ERR(tp_warehouse_open("sqlite:/nonexistent/x.db", &o, &w, msg, sizeof msg), TP_ERR_INVALID_ARG);
    CHECK(strstr(msg, "are made only for the built-in ClickHouse table") != NULL);
    CHECK_ERR(tp_warehouse_open("null:", &o, &w, msg, sizeof msg), TP_ERR_INVALID_ARG);
    o.lineage_columns = TP_WH_LINEAGE_YES;
    CHECK_ERR(tp_warehouse_open("null:", &o, &w, msg, sizeof msg), TP_OK);
    tp_warehouse_close(w);
    wh_fixture_free(b);
    canned_fn = NULL;
    shutdown(canned_fd, SHUT_RDWR);
    close(canned_fd);
    pthread_join(th, NULL);
    free(captured_body);
    captured_body = NULL;
}

static void test_load_body(void)
{
    int port = listen_port(&canned_fd);
    pthread_t th;
    pthread_create(&th, NULL, responder, NULL);
    canned = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    char url[160];
    snprintf(url, sizeof url, "clickhouse://127.0.0.1:%d/telemetry", port);
    tp_warehouse *w = NULL;
    CHECK_ERR(tp_warehouse_open(url, NULL, &w, NULL, 0), TP_OK);
    static const struct {
        const char *what;
        size_t n;
        void (*key)(size_t, uint64_t *, int64_t *);
    } cases[] = {
        {"packs in falling vehicle order", 300, key_packs_reversed},
        {"interleaved packs", 300, key_interleaved},
        {"per-partition packs", 300, key_partition_packs},
        {"per-partition packs, late records", 300, key_partition_packs_late},
        {"sorted", 300, key_sorted},
        {"random keys", 5000, key_random},
        {"one row", 1, key_random},
        {"two rows reversed", 2, key_packs_reversed},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tp_row_batch *b = keyed_batch(cases[k].n, cases[k].key);
        if (cases[k].n == 2)
            b->vehicle_id[1] = b->vehicle_id[0] - 1;
        CHECK_ERR(tp_warehouse_load(w, b, "positions", NULL, 0), TP_OK);
        check_native_body(b, cases[k].what);
        wh_fixture_free(b);
    }
    tp_warehouse_close(w);
    /* ?format=rowbinary: the former body, 68 bytes per row in the order they came. */
    snprintf(url, sizeof url, "clickhouse://127.0.0.1:%d/telemetry?gzip=0&format=rowbinary", port);
    CHECK_ERR(tp_warehouse_open(url, NULL, &w, NULL, 0), TP_OK);
    tp_row_batch *b = keyed_batch(300, key_packs_reversed);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", NULL, 0), TP_OK);
    CHECK(strstr(captured_line, "FORMAT%20RowBinary") != NULL);
    CHECK_INT(captured_len, 300 * 68);
    size_t bad = 0;
    for (size_t i = 0; captured_len == 300 * 68 && i < 300; i++)
        bad += get_le(captured_body + 68 * i, 8) != b->vehicle_id[i] || get_le(captured_body + 68 * i + 16, 8) != i;
    CHECK_INT(bad, 0);
    wh_fixture_free(b);
    tp_warehouse_close(w);
    shutdown(canned_fd, SHUT_RDWR);
    close(canned_fd);
    pthread_join(th, NULL);
    free(captured_body);
    captured_body = NULL;
}

static tp_err try_open(const char *url, char *msg, size_t cap)
{
    tp_warehouse *w = (tp_warehouse *)1;
    tp_err e = tp_warehouse_open(url, NULL, &w, msg, cap);
    if (e)
        CHECK(w == NULL);
    else
        CHECK_STR(tp_warehouse_kind(w), "clickhouse");
    tp_warehouse_close(e ? NULL : w);
    return e;
}

int main(void)
{
    tp_warehouse_opts o;
    memset(&o, 0x5a, sizeof o);
    tp_warehouse_opts_init(&o);
    CHECK_STR(o.table, "vehicle_positions");
    CHECK_INT(o.timeout_ms, 30000);
    CHECK_INT(o.create_table, 0);
    CHECK(o.user == NULL && o.password == NULL && o.token_file == NULL && o.endpoint == NULL);
    tp_warehouse_opts_init(NULL);

    char msg[512];
    /* ClickHouse URLs: HOST[:PORT][/DB]. Opening contacts nobody. */
    CHECK_ERR(try_open("clickhouse://127.0.0.1:8123/telemetry", msg, sizeof msg), TP_OK);
    CHECK_ERR(try_open("clickhouse://localhost", msg, sizeof msg), TP_OK);
    CHECK_ERR(try_open("clickhouse://localhost/", msg, sizeof msg), TP_OK);
    CHECK_ERR(try_open("clickhouse://[::1]:8123/db_1", msg, sizeof msg), TP_OK);
    CHECK_ERR(try_open("clickhouse://127.0.0.1:8123/telemetry?gzip=1", msg, sizeof msg), TP_OK);
    CHECK_ERR(try_open("clickhouse://127.0.0.1:8123/telemetry?gzip=0", msg, sizeof msg), TP_OK);
    CHECK_ERR(try_open("clickhouse://127.0.0.1:8123/telemetry?zstd=1", msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "\"zstd=1\" is unknown") != NULL);
    CHECK_ERR(try_open("clickhouse://127.0.0.1:8123/telemetry?format=native", msg, sizeof msg), TP_OK);
    CHECK_ERR(try_open("clickhouse://127.0.0.1:8123/telemetry?format=rowbinary&gzip=1", msg, sizeof msg), TP_OK);
    CHECK_ERR(try_open("clickhouse://127.0.0.1:8123/telemetry?gzip=1&format=csv", msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "\"format=csv\" is unknown") != NULL && strstr(msg, "format=native|rowbinary") != NULL);
    CHECK_ERR(try_open("clickhouse://", msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "HOST[:PORT][/DATABASE]") != NULL);
    CHECK_ERR(try_open("clickhouse://host:0/db", msg, sizeof msg), TP_ERR_PARSE);
    CHECK_ERR(try_open("clickhouse://host:65536/db", msg, sizeof msg), TP_ERR_PARSE);
    CHECK_ERR(try_open("clickhouse://host:12ab/db", msg, sizeof msg), TP_ERR_PARSE);
    CHECK_ERR(try_open("clickhouse://[::1/db", msg, sizeof msg), TP_ERR_PARSE);
    CHECK_ERR(try_open("clickhouse://host/db/extra", msg, sizeof msg), TP_ERR_INVALID_ARG);
    CHECK_ERR(try_open("clickhouse://host/bad-name", msg, sizeof msg), TP_ERR_INVALID_ARG);
    CHECK(strstr(msg, "\"bad-name\"") != NULL);
    CHECK_ERR(try_open("mysql://host/db", msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "unknown scheme") != NULL);
    /* Credentials cannot smuggle headers. */
    tp_warehouse *w = NULL;
    tp_warehouse_opts_init(&o);
    o.user = "default";
    o.password = "x\r\nX-Other: 1";
    CHECK_ERR(tp_warehouse_open("clickhouse://h/db", &o, &w, msg, sizeof msg), TP_ERR_INVALID_ARG);
    CHECK(strstr(msg, "password") != NULL);
    o.password = "secret";
    CHECK_ERR(tp_warehouse_open("clickhouse://h/db", &o, &w, msg, sizeof msg), TP_OK);
    tp_warehouse_close(w);
    /* err_msg is optional. */
    CHECK_ERR(tp_warehouse_open("clickhouse://", NULL, &w, NULL, 0), TP_ERR_PARSE);
    CHECK_ERR(tp_warehouse_open("clickhouse://h", NULL, NULL, msg, sizeof msg), TP_ERR_INVALID_ARG);

    /* Nothing listens: every call that talks to the server says "retry later". */
    char url[128];
    int port = free_port();
    snprintf(url, sizeof url, "clickhouse://127.0.0.1:%d/telemetry", port);
    tp_warehouse_opts_init(&o);
    o.timeout_ms = 2000;
    o.create_table = 1;
    CHECK_ERR(tp_warehouse_open(url, &o, &w, msg, sizeof msg), TP_OK);
    CHECK_ERR(tp_warehouse_ping(w), TP_ERR_UNAVAILABLE);
    char where[64];
    snprintf(where, sizeof where, "ClickHouse at 127.0.0.1:%d is unreachable", port);
    CHECK(strstr(tp_warehouse_last_error(w), where) != NULL);
    fprintf(stderr, "wrong port: %s\n", tp_warehouse_last_error(w));
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_UNAVAILABLE);
    tp_row_batch *b = wh_fixture_new(100, 0, 0, 0);
    tp_partition_offset po = {0, 1};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_ERR_UNAVAILABLE);
    int64_t off = 5;
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_ERR_UNAVAILABLE);
    CHECK_INT(off, -1);
    /* Topic names are checked before they reach SQL. */
    CHECK_ERR(tp_warehouse_load(w, b, "x'; DROP TABLE t; --", &po, 1), TP_ERR_INVALID_ARG);
    CHECK(strstr(tp_warehouse_last_error(w), "not a Kafka topic name") != NULL);
    /* A batch whose count is above its capacity is refused before anything is sent. */
    b->count = b->capacity + 1;
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_ERR_INVALID_ARG);
    b->count = 0;
    CHECK_ERR(tp_warehouse_load(w, b, "positions", NULL, 0), TP_OK); /* nothing to do, nothing sent */
    tp_warehouse_close(w);
    wh_fixture_free(b);
    test_clickhouse_answers();
    test_load_body();
    test_lineage_columns();
    return check_exit();
}
