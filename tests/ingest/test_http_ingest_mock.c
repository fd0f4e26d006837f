/* The HTTP ingest's 503 paths on librdkafka's mock cluster, with a minimal HTTP/1.1 client on a raw socket:
 * Kafka down past --http-timeout-ms (503, Retry-After, nothing claimed durable; the same request after the brokers
 * are back is 200), the memory cap (503 before anything is taken while the worker is held back), and the worker
 * shutting down under a waiting request (503, not 200; after tp_http_ingest_quiesce no new connection). */
#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "ingest/http_ingest.h"
#include "ingest/ingest.h"

typedef struct reply {
    int status;
    char text[2048];
} reply;

/* POSTs body to /v1/records on 127.0.0.1:port and reads the whole answer (Connection: close). */
static void post(uint16_t port, const char *body, size_t len, reply *r)
{
    memset(r, 0, sizeof *r);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return;
    }
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST /v1/records HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-ndjson\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     len);
    if (write(fd, head, (size_t)n) != n || write(fd, body, len) != (ssize_t)len) {
        close(fd);
        return;
    }
    size_t got = 0;
    ssize_t k;
    while (got < sizeof r->text - 1 && (k = read(fd, r->text + got, sizeof r->text - 1 - got)) > 0)
        got += (size_t)k;
    r->text[got] = '\0';
    close(fd);
    sscanf(r->text, "HTTP/1.1 %d", &r->status);
}

static char *records(int n, int first_seq)
{
    char *b = malloc((size_t)n * 96 + 1);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)sprintf(b + len, "{\"vehicle_id\":%d,\"sampled_at_ms\":1767225600000,\"seq\":%d}\n",
                               1 + i % 10, first_seq + i);
    return b;
}

typedef struct bg {
    uint16_t port;
    const char *body;
    reply r;
} bg;

static void *post_bg(void *arg)
{
    bg *g = arg;
    post(g->port, g->body, strlen(g->body), &g->r);
    return NULL;
}

static tp_ingest *start_ingest(rd_kafka_mock_cluster_t *mc, const char *topic, size_t cap)
{
    tp_ingest_opts o;
    tp_ingest_opts_init(&o);
    o.brokers = rd_kafka_mock_cluster_bootstraps(mc);
    o.topic = topic;
    o.threads = 1;
    o.batch.linger_ms = 10;
    o.batch.max_buffered_bytes = cap;
    static const char *kconf[] = {"log_level=0", "reconnect.backoff.max.ms=100"};
    o.kafka_conf = kconf;
    o.nkafka_conf = 2;
    tp_ingest *ing = NULL;
    char err[512];
    CHECK_ERR(tp_ingest_new(&o, &ing, err, sizeof err), TP_OK);
    CHECK_ERR(tp_ingest_start(ing), TP_OK);
    /* Packing per partition (the default), the worker takes records once it has read the topic's partition count:
     * wait for it, so that the tests below that take the brokers down meet a worker that was running. */
    char reason[256] = "";
    for (int i = 0; i < 500 && !tp_ingest_ready(ing, reason, sizeof reason); i++)
        usleep(10000);
    CHECK(tp_ingest_ready(ing, reason, sizeof reason));
    return ing;
}

static tp_http_ingest *start_http(tp_ingest *ing, size_t cap, int timeout_ms)
{
    tp_http_ingest_opts ho;
    tp_http_ingest_opts_init(&ho);
    ho.listen = "127.0.0.1:0";
    ho.max_buffered_bytes = cap;
    ho.timeout_ms = timeout_ms;
    tp_http_ingest *h = NULL;
    char err[512];
    CHECK_ERR(tp_http_ingest_start(&ho, ing, &h, err, sizeof err), TP_OK);
    return h;
}

static void brokers(rd_kafka_mock_cluster_t *mc, int up)
{
    for (int b = 1; b <= 3; b++)
        up ? rd_kafka_mock_broker_set_up(mc, b) : rd_kafka_mock_broker_set_down(mc, b);
}

static void test_kafka_down(rd_kafka_mock_cluster_t *mc)
{
    size_t cap = 64u << 20;
    tp_ingest *ing = start_ingest(mc, "tp-http-down", cap);
    tp_http_ingest *h = start_http(ing, cap, 700);
    uint16_t port = tp_http_ingest_port(h);
    char *body = records(50, 0);
    reply r;
    post(port, body, strlen(body), &r);
    CHECK_INT(r.status, 200);
    brokers(mc, 0);
    char *body2 = records(50, 1000);
    post(port, body2, strlen(body2), &r);
    CHECK_INT(r.status, 503);
    CHECK(strstr(r.text, "Retry-After: 1") != NULL);
    CHECK(strstr(r.text, "did not confirm the records within 700 ms (0 of 50 durable)") != NULL);
    brokers(mc, 1);
    int ok = 0;
    for (int i = 0; i < 20 && !ok; i++) { /* the retry: 200 once librdkafka has reconnected */
        post(port, body2, strlen(body2), &r);
        ok = r.status == 200;
    }
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "last answer: %s\n", r.text);
    CHECK_ERR(tp_ingest_stop(ing, 5000), TP_OK);
    tp_http_ingest_stop(h);
    tp_ingest_free(ing);
    free(body);
    free(body2);
}

static void test_memory_cap(rd_kafka_mock_cluster_t *mc)
{
    size_t cap = 4096; /* about 100 records of this test */
    tp_ingest *ing = start_ingest(mc, "tp-http-cap", cap);
    tp_http_ingest *h = start_http(ing, cap, 60000);
    uint16_t port = tp_http_ingest_port(h);
    brokers(mc, 0);
    char *big = records(400, 0);
    bg g = {port, big, {0}};
    pthread_t t;
    pthread_create(&t, NULL, post_bg, &g);
    tp_ingest_stats st = {0};
    for (int i = 0; i < 200 && !st.paused; i++) { /* the first request fills the cap: the worker pauses */
        usleep(10000);
        tp_ingest_stats_get(ing, &st);
    }
    CHECK(st.paused);
    char *small = records(5, 5000);
    reply r;
    post(port, small, strlen(small), &r);
    CHECK_INT(r.status, 503);
    CHECK(strstr(r.text, "memory cap reached") != NULL);
    CHECK(strstr(r.text, "Retry-After: 1") != NULL);
    brokers(mc, 1); /* the waiting request completes */
    pthread_join(t, NULL);
    CHECK_INT(g.r.status, 200);
    CHECK(strstr(g.r.text, "{\"records\":400,") != NULL);
    CHECK_ERR(tp_ingest_stop(ing, 5000), TP_OK);
    tp_http_ingest_stop(h);
    tp_ingest_free(ing);
    free(big);
    free(small);
}

static void test_shutdown(rd_kafka_mock_cluster_t *mc)
{
    size_t cap = 64u << 20;
    tp_ingest *ing = start_ingest(mc, "tp-http-stop", cap);
    tp_http_ingest *h = start_http(ing, cap, 60000);
    brokers(mc, 0);
    char *body = records(30, 0);
    bg g = {tp_http_ingest_port(h), body, {0}};
    pthread_t t;
    pthread_create(&t, NULL, post_bg, &g);
    tp_ingest_stats st = {0};
    for (int i = 0; i < 200 && st.records_in < 30; i++) {
        usleep(10000);
        tp_ingest_stats_get(ing, &st);
    }
    CHECK_INT(st.records_in, 30);
    tp_http_ingest_quiesce(h); /* as telepack ingest does on SIGINT: no new request from here on */
    reply late;
    post(g.port, body, strlen(body), &late);
    CHECK_INT(late.status, 0); /* the listening socket is closed */
    CHECK_ERR(tp_ingest_stop(ing, 300), TP_ERR_AGAIN); /* gives up on Kafka: the request must not get 200 */
    pthread_join(t, NULL);
    CHECK_INT(g.r.status, 503);
    CHECK(strstr(g.r.text, "shutting down (0 of 30 records durable)") != NULL);
    if (g.r.status != 503)
        fprintf(stderr, "answer: %s\n", g.r.text);
    tp_http_ingest_stop(h);
    tp_ingest_free(ing);
    brokers(mc, 1);
    free(body);
}

int main(void)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rd_kafka_t *holder = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    CHECK(holder != NULL);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(holder, 3);
    CHECK(mc != NULL);
    test_kafka_down(mc);
    test_memory_cap(mc);
    test_shutdown(mc);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(holder);
    return check_exit();
}
