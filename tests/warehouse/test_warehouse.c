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

/* A one-connection-at-a-time HTTP responder that answers every request with `canned` (then closes). */
static const char *volatile canned;
static int canned_fd;

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
        const char *cl = strcasestr(buf, "Content-Length:");
        size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0, have = end ? got - (size_t)(end + 4 - buf) : 0;
        while (have < body && (n = read(c, buf, sizeof buf)) > 0)
            have += (size_t)n;
        const char *r = canned;
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
    return check_exit();
}
