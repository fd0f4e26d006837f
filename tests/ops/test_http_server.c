/* Tests of the operations endpoint: start on port 0, fetch /metrics, /healthz and /readyz with libcurl, flip
 * readiness, and the error paths of address parsing and binding. */
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ops/http_server.h"
#include "ops/metrics.h"
#include "telepack/error.h"

typedef struct body {
    char data[65536];
    size_t len;
} body;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    body *b = ud;
    size_t k = size * n;
    if (b->len + k >= sizeof b->data)
        return 0;
    memcpy(b->data + b->len, p, k);
    b->len += k;
    b->data[b->len] = '\0';
    return k;
}

/* GETs (or sends `method` to) http://127.0.0.1:port/path; returns the status, -1 on a transport error. */
static long fetch(uint16_t port, const char *path, const char *method, body *b, char *ctype, size_t ctype_cap)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    b->len = 0;
    b->data[0] = '\0';
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ctype)
            snprintf(ctype, ctype_cap, "%s", ct ? ct : "");
    }
    curl_easy_cleanup(c);
    return status;
}

typedef struct readiness {
    atomic_int ready;
    atomic_int calls;
} readiness;

static bool is_ready(void *ud, char *reason, size_t cap)
{
    readiness *r = ud;
    atomic_fetch_add(&r->calls, 1);
    if (atomic_load(&r->ready))
        return true;
    snprintf(reason, cap, "kafka: no broker connected");
    return false;
}

static body b; /* large: off the stack */

static void test_endpoints(void)
{
    tp_metrics *m = NULL;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    tp_counter *c = tp_metrics_counter(m, "telepack_test_requests_total", "Test counter.", "kind=\"a\"");
    tp_counter_add(c, 17);
    readiness r;
    atomic_init(&r.ready, 1);
    atomic_init(&r.calls, 0);
    tp_http_server_opts o = {"127.0.0.1:0", m, is_ready, &r};
    tp_http_server *s = NULL;
    char detail[256] = "";
    CHECK_ERR(tp_http_server_start(&o, &s, detail, sizeof detail), TP_OK);
    if (!s) {
        fprintf(stderr, "start failed: %s\n", detail);
        tp_metrics_free(m);
        return;
    }
    uint16_t port = tp_http_server_port(s);
    CHECK(port != 0);

    char ctype[128] = "";
    CHECK_INT(fetch(port, "/metrics", NULL, &b, ctype, sizeof ctype), 200);
    CHECK(strstr(ctype, "text/plain") && strstr(ctype, "version=0.0.4"));
    CHECK(strstr(b.data, "# TYPE telepack_test_requests_total counter\n") != NULL);
    CHECK(strstr(b.data, "telepack_test_requests_total{kind=\"a\"} 17\n") != NULL);
    tp_counter_inc(c); /* every scrape renders the current values */
    CHECK_INT(fetch(port, "/metrics", NULL, &b, NULL, 0), 200);
    CHECK(strstr(b.data, "telepack_test_requests_total{kind=\"a\"} 18\n") != NULL);

    CHECK_INT(fetch(port, "/healthz", NULL, &b, NULL, 0), 200);
    CHECK_STR(b.data, "ok\n");
    CHECK_INT(fetch(port, "/readyz", NULL, &b, NULL, 0), 200);
    CHECK_STR(b.data, "ok\n");
    atomic_store(&r.ready, 0);
    CHECK_INT(fetch(port, "/readyz", NULL, &b, NULL, 0), 503);
    CHECK_STR(b.data, "not ready: kafka: no broker connected\n");
    CHECK_INT(fetch(port, "/healthz", NULL, &b, NULL, 0), 200); /* liveness does not follow readiness */
    atomic_store(&r.ready, 1);
    CHECK_INT(fetch(port, "/readyz", NULL, &b, NULL, 0), 200);
    CHECK_INT(atomic_load(&r.calls), 3);

    CHECK_INT(fetch(port, "/nope", NULL, &b, NULL, 0), 404);
    CHECK(strstr(b.data, "/metrics") != NULL);
    CHECK_INT(fetch(port, "/metrics", "POST", &b, NULL, 0), 405);
    CHECK_INT(fetch(port, "/", NULL, &b, NULL, 0), 200);

    /* A second server on the same port fails with a sentence naming the address. */
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)port);
    tp_http_server_opts o2 = {listen, NULL, NULL, NULL};
    tp_http_server *s2 = NULL;
    CHECK_ERR(tp_http_server_start(&o2, &s2, detail, sizeof detail), TP_ERR_IO);
    CHECK(s2 == NULL);
    CHECK(strstr(detail, listen) && strstr(detail, "in use"));

    tp_http_server_stop(s);
    CHECK_INT(fetch(port, "/healthz", NULL, &b, NULL, 0), -1); /* stopped: nothing listens */
    tp_metrics_free(m);
}

static void test_no_metrics_no_ready(void)
{
    tp_http_server_opts o = {":0", NULL, NULL, NULL};
    tp_http_server *s = NULL;
    /* A normal start, scrape and stop log nothing (stderr goes to a file meanwhile). */
    fflush(stderr);
    FILE *cap = tmpfile();
    int saved = dup(2);
    dup2(fileno(cap), 2);
    CHECK_ERR(tp_http_server_start(&o, &s, NULL, 0), TP_OK);
    if (s)
        CHECK_INT(fetch(tp_http_server_port(s), "/healthz", NULL, &b, NULL, 0), 200);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CHECK_INT(ftell(cap), 0);
    fclose(cap);
    if (!s)
        return;
    uint16_t port = tp_http_server_port(s);
    CHECK_INT(fetch(port, "/metrics", NULL, &b, NULL, 0), 200);
    CHECK_INT(b.len, 0);
    CHECK_INT(fetch(port, "/readyz", NULL, &b, NULL, 0), 200);
    tp_http_server_stop(s);
    tp_http_server_stop(NULL);
}

static void test_parse_listen(void)
{
    char host[64];
    uint16_t port = 1;
    CHECK_ERR(tp_http_parse_listen("127.0.0.1:9100", host, sizeof host, &port), TP_OK);
    CHECK_STR(host, "127.0.0.1");
    CHECK_INT(port, 9100);
    CHECK_ERR(tp_http_parse_listen(":0", host, sizeof host, &port), TP_OK);
    CHECK_STR(host, "");
    CHECK_INT(port, 0);
    CHECK_ERR(tp_http_parse_listen("[::1]:65535", host, sizeof host, &port), TP_OK);
    CHECK_STR(host, "::1");
    CHECK_INT(port, 65535);
    CHECK_ERR(tp_http_parse_listen("localhost:80", host, sizeof host, &port), TP_OK);
    CHECK_STR(host, "localhost");
    const char *bad[] = {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "h:12a", "::1:80",
                         "[::1:80", "[::1]80", "h:123456"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tp_err e = tp_http_parse_listen(bad[i], host, sizeof host, &port);
        CHECK_ERR(e, TP_ERR_PARSE);
        if (e != TP_ERR_PARSE)
            fprintf(stderr, "accepted '%s'\n", bad[i]);
    }
    char tiny[4];
    CHECK_ERR(tp_http_parse_listen("example.com:80", tiny, sizeof tiny, &port), TP_ERR_FULL);
    CHECK_ERR(tp_http_parse_listen(NULL, host, sizeof host, &port), TP_ERR_INVALID_ARG);

    /* Start-up errors carry the address in the detail. */
    char detail[256];
    tp_http_server *s = NULL;
    tp_http_server_opts o = {"nonsense", NULL, NULL, NULL};
    CHECK_ERR(tp_http_server_start(&o, &s, detail, sizeof detail), TP_ERR_PARSE);
    CHECK(strstr(detail, "'nonsense'") != NULL);
    o.listen = "no-such-host.invalid:0";
    CHECK_ERR(tp_http_server_start(&o, &s, detail, sizeof detail), TP_ERR_IO);
    CHECK(strstr(detail, "no-such-host.invalid") != NULL);
    o.listen = "192.0.2.1:0"; /* TEST-NET-1: not an address of this machine */
    CHECK_ERR(tp_http_server_start(&o, &s, detail, sizeof detail), TP_ERR_IO);
    CHECK(strstr(detail, "192.0.2.1:0") != NULL);
    CHECK_ERR(tp_http_server_start(NULL, &s, detail, sizeof detail), TP_ERR_INVALID_ARG);
    CHECK(s == NULL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_parse_listen();
    test_endpoints();
    test_no_metrics_no_ready();
    curl_global_cleanup();
    return check_exit();
}
