/* Gateway protocol v2 against the server, driven by hand over socketpairs and loopback TCP: the documented worked
 * example byte for byte (hellos, a record, a reject, the ack past it), refusals (old version, malformed hello,
 * missing or unknown token, v1 while authentication is required), a vehicle outside the token's allowance, a bad
 * record among good ones (rejected, the rest acked exactly once), a too-large record skipped, a framing error
 * answered with a goodbye, the idle timeout (v2 and v1), many idle connections not blocking a good gateway, the
 * per-address cap, server heartbeats, and the client's handling of rejects (never resent). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ingest/gateway_client.h"
#include "common/log.h"
#include "ingest/gateway_server.h"
#include "telepack/varint.h"

#define MAXREC 4096

typedef struct sink {
    tp_batch_tag tags[MAXREC];
    tp_record recs[MAXREC];
    size_t n;
} sink;

static tp_err on_rec(void *ctx, const tp_record *r, size_t wire_len, const tp_batch_tag *tag)
{
    sink *k = ctx;
    (void)wire_len;
    if (k->n < MAXREC) {
        k->tags[k->n] = *tag;
        k->recs[k->n] = *r;
    }
    k->n++;
    return TP_OK;
}

/* A token file stand-in: "k7Qp2xVb9LmN4rTs" may send every vehicle, "only-vehicles-1-to-9" vehicles 1..9. */
static int t_find(void *ctx, const char *tok, size_t len)
{
    (void)ctx;
    if (len == 16 && !memcmp(tok, "k7Qp2xVb9LmN4rTs", 16))
        return 0;
    if (len == 20 && !memcmp(tok, "only-vehicles-1-to-9", 20))
        return 1;
    return -1;
}

static int t_allows(void *ctx, int id, uint64_t vehicle)
{
    (void)ctx;
    return id == 0 || (vehicle >= 1 && vehicle <= 9);
}

static const tp_gateway_auth test_auth = {NULL, t_find, t_allows};

static tp_gateway_server *server(sink *k, const tp_gateway_auth *auth, const char *listen, int idle_ms,
                                 uint32_t per_ip)
{
    tp_gateway_server_opts o;
    tp_gateway_server_opts_init(&o);
    o.listen = listen;
    o.auth = auth;
    if (idle_ms >= 0)
        o.idle_timeout_ms = idle_ms;
    o.max_conns_per_ip = per_ip;
    tp_gateway_server *s = NULL;
    char err[256];
    CHECK_ERR(tp_gateway_server_new(&o, on_rec, k, &s, err, sizeof err), TP_OK);
    return s;
}

static void pump(tp_gateway_server *s, int rounds)
{
    for (int i = 0; i < rounds; i++)
        tp_gateway_server_poll(s, 5);
}

/* Reads what fd has within ms milliseconds (pumping the server meanwhile). */
static size_t drain_fd(tp_gateway_server *s, int fd, uint8_t *buf, size_t cap, int ms, int *eof)
{
    size_t have = 0;
    *eof = 0;
    for (int t = 0; t < ms / 5 && have < cap; t++) {
        if (s)
            pump(s, 1);
        ssize_t n = recv(fd, buf + have, cap - have, MSG_DONTWAIT);
        if (n == 0) {
            *eof = 1;
            break;
        }
        if (n > 0)
            have += (size_t)n;
        else if (!s)
            usleep(5000);
    }
    return have;
}

static const uint8_t doc_hello[] = {
    0xd4, 0xd0, 0xc7, 0x57, 0x02, 0x23, 0x0a, 0x10, 0x6b, 0x37, 0x51, 0x70, 0x32, 0x78, 0x56, 0x62, 0x39, 0x4c,
    0x6d, 0x4e, 0x34, 0x72, 0x54, 0x73, 0x12, 0x0d, 0x64, 0x65, 0x70, 0x6f, 0x74, 0x2d, 0x33, 0x2f, 0x67, 0x77,
    0x2d, 0x31, 0x37, 0x18, 0x78};
static const uint8_t doc_server_hello[] = {0xd4, 0xd0, 0xc7, 0x57, 0x02, 0x1c, 0x08, 0x00, 0x18, 0x80, 0x20,
                                           0x20, 0xc0, 0xbb, 0x01, 0x28, 0x80, 0xbe, 0x92, 0x01, 0x30, 0xc8,
                                           0x01, 0x38, 0xe8, 0x07, 0x40, 0xa0, 0x9c, 0x01, 0x48, 0xe0, 0xd4, 0x03};
static const uint8_t doc_records[] = {0x01, 0x09, 0x08, 0x2a, 0x10, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31,
                                      0x01, 0x01, 0xff};
static const uint8_t doc_reject[] = {0x82, 0x15, 0x02, 0x01, 0x6e, 0x6f, 0x74, 0x20, 0x61, 0x20, 0x56, 0x65,
                                     0x68, 0x69, 0x63, 0x6c, 0x65, 0x52, 0x65, 0x63, 0x6f, 0x72, 0x64};
static const uint8_t doc_refusal[] = {0xd4, 0xd0, 0xc7, 0x57, 0x02, 0x11, 0x08, 0x04, 0x12, 0x0d, 0x75, 0x6e,
                                      0x6b, 0x6e, 0x6f, 0x77, 0x6e, 0x20, 0x74, 0x6f, 0x6b, 0x65, 0x6e};

/* docs/GATEWAY.md "Worked example", byte for byte. */
static void test_worked_example(void)
{
    static sink k;
    memset(&k, 0, sizeof k);
    tp_gateway_server *s = server(&k, &test_auth, NULL, -1, 64);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK_ERR(tp_gateway_server_add_fd(s, sv[0]), TP_OK);
    CHECK(write(sv[1], doc_hello, sizeof doc_hello) == (ssize_t)sizeof doc_hello);
    CHECK(write(sv[1], doc_records, sizeof doc_records) == (ssize_t)sizeof doc_records);
    uint8_t buf[512];
    int eof;
    size_t n = drain_fd(s, sv[1], buf, sizeof buf, 100, &eof);
    CHECK_INT(n, sizeof doc_server_hello + sizeof doc_reject);
    CHECK(!memcmp(buf, doc_server_hello, sizeof doc_server_hello));
    CHECK(!memcmp(buf + sizeof doc_server_hello, doc_reject, sizeof doc_reject));
    CHECK_INT(k.n, 1);
    CHECK_INT(k.recs[0].vehicle_id, 42);
    tp_gateway_server_complete(s, &k.tags[0]);
    tp_gateway_server_flush_acks(s);
    n = drain_fd(s, sv[1], buf, sizeof buf, 50, &eof);
    CHECK_INT(n, 3);
    CHECK(buf[0] == 0x81 && buf[1] == 0x01 && buf[2] == 0x02);
    tp_gateway_server_stats st;
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.rejected[TP_GW_REJECT_MALFORMED], 1);
    CHECK_INT(st.connections_v2, 1);
    CHECK_INT(st.records_acked, 2);
    close(sv[1]);
    pump(s, 3);

    /* the same hello with an unknown token: the documented refusal, then the server closes */
    uint8_t bad[sizeof doc_hello];
    memcpy(bad, doc_hello, sizeof bad);
    bad[8] = 'X';
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK_ERR(tp_gateway_server_add_fd(s, sv[0]), TP_OK);
    CHECK(write(sv[1], bad, sizeof bad) == (ssize_t)sizeof bad);
    n = drain_fd(s, sv[1], buf, sizeof buf, 200, &eof);
    CHECK_INT(n, sizeof doc_refusal);
    CHECK(!memcmp(buf, doc_refusal, sizeof doc_refusal));
    CHECK(eof);
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.refused[TP_GW_REFUSE_AUTH_FAILED], 1);
    close(sv[1]);
    tp_gateway_server_free(s);
}

/* Sends raw bytes as a fresh connection and returns the ServerHello status (or -1 if none came), and whether the
 * server closed. */
static int hello_status(tp_gateway_server *s, const uint8_t *bytes, size_t len, int *closed)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK_ERR(tp_gateway_server_add_fd(s, sv[0]), TP_OK);
    CHECK(write(sv[1], bytes, len) == (ssize_t)len);
    uint8_t buf[512];
    size_t n = drain_fd(s, sv[1], buf, sizeof buf, 150, closed);
    close(sv[1]);
    pump(s, 2);
    if (n < 8 || buf[0] != 0xd4 || buf[6] != 0x08)
        return -1;
    return buf[7];
}

static void test_refusals(void)
{
    static sink k;
    memset(&k, 0, sizeof k);
    tp_gateway_server *s = server(&k, &test_auth, NULL, -1, 64);
    int closed;
    static const uint8_t v1_hello[] = {0xd4, 0xd0, 0xc7, 0x57, 0x01, 0x00};
    CHECK_INT(hello_status(s, v1_hello, sizeof v1_hello, &closed), TP_GW_REFUSE_VERSION);
    CHECK(closed);
    static const uint8_t no_token[] = {0xd4, 0xd0, 0xc7, 0x57, 0x02, 0x02, 0x18, 0x05};
    CHECK_INT(hello_status(s, no_token, sizeof no_token, &closed), TP_GW_REFUSE_AUTH_REQUIRED);
    CHECK(closed);
    static const uint8_t bad_id[] = {0xd4, 0xd0, 0xc7, 0x57, 0x02, 0x04, 0x12, 0x02, 'a', ' '};
    CHECK_INT(hello_status(s, bad_id, sizeof bad_id, &closed), TP_GW_REFUSE_BAD_HELLO);
    static const uint8_t group[] = {0xd4, 0xd0, 0xc7, 0x57, 0x02, 0x01, 0x0b};
    CHECK_INT(hello_status(s, group, sizeof group, &closed), TP_GW_REFUSE_BAD_HELLO);
    static const uint8_t too_long[] = {0xd4, 0xd0, 0xc7, 0x57, 0x02, 0x81, 0x08};
    CHECK_INT(hello_status(s, too_long, sizeof too_long, &closed), TP_GW_REFUSE_BAD_HELLO);
    /* a v1 stream (a record's length prefix first) while authentication is required: closed, counted */
    static const uint8_t v1[] = {0x02, 0x08, 0x01};
    CHECK_INT(hello_status(s, v1, sizeof v1, &closed), -1);
    CHECK(closed);
    tp_gateway_server_stats st;
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.refused[TP_GW_REFUSE_V1], 1);
    CHECK_INT(st.refused[TP_GW_REFUSE_BAD_HELLO], 3);
    CHECK_INT(st.records_in, 0);
    CHECK_INT(k.n, 0);
    tp_gateway_server_free(s);

    /* without authentication the same v1 bytes are a record, and a hello without a token is accepted */
    memset(&k, 0, sizeof k);
    s = server(&k, NULL, NULL, -1, 64);
    CHECK_INT(hello_status(s, no_token, sizeof no_token, &closed), 0);
    CHECK(!closed);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK_ERR(tp_gateway_server_add_fd(s, sv[0]), TP_OK);
    CHECK(write(sv[1], v1, sizeof v1) == (ssize_t)sizeof v1);
    pump(s, 3);
    CHECK_INT(k.n, 1);
    close(sv[1]);
    tp_gateway_server_free(s);
}

static size_t rec_frame(uint64_t vid, uint64_t seq, int64_t at, uint8_t *out)
{
    tp_record r = {0};
    r.vehicle_id = vid;
    r.seq = seq;
    r.sampled_at_ms = at;
    uint8_t body[TP_RECORD_MAX_ENCODED];
    size_t n;
    tp_record_encode(&r, body, sizeof body, &n);
    out[0] = 0x01;
    size_t h = tp_varint_encode(n, out + 1);
    memcpy(out + 1 + h, body, n);
    return 1 + h + n;
}

/* Parses server frames after the hello: fills the rejected record numbers and codes, returns the last ack. */
static long long frames(const uint8_t *b, size_t n, uint64_t *rej, int *codes, int *nrej, int *bye)
{
    size_t pos = 0;
    long long ack = -1;
    *nrej = 0;
    *bye = 0;
    if (n >= 6 && b[0] == 0xd4)
        pos = 6 + b[5];
    while (pos + 2 <= n) {
        uint64_t len, v, c;
        size_t h, u;
        CHECK_ERR(tp_varint_decode(b + pos + 1, n - pos - 1, &len, &h), TP_OK);
        const uint8_t *p = b + pos + 1 + h;
        if (b[pos] == 0x81) {
            tp_varint_decode(p, len, &v, &u);
            ack = (long long)v;
        } else if (b[pos] == 0x82) {
            tp_varint_decode(p, len, &v, &u);
            tp_varint_decode(p + u, len - u, &c, &h);
            rej[*nrej] = v;
            codes[(*nrej)++] = (int)c;
        } else if (b[pos] == 0x84) {
            *bye = p[0];
        }
        pos += 1 + h + len;
        pos = (size_t)(p - b) + len;
    }
    return ack;
}

/* A bad record of each kind among good ones: each rejected with its number and code, the good ones taken once,
 * the ack passes every one of them exactly once. */
static void test_rejects_among_good(void)
{
    static sink k;
    memset(&k, 0, sizeof k);
    tp_gateway_server *s = server(&k, &test_auth, NULL, -1, 64);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK_ERR(tp_gateway_server_add_fd(s, sv[0]), TP_OK);
    static const uint8_t hello[] = {0xd4, 0xd0, 0xc7, 0x57, 0x02, 0x16, 0x0a, 0x14, 'o', 'n', 'l', 'y', '-', 'v',
                                    'e',  'h',  'i',  'c',  'l',  'e',  's',  '-',  '1', '-', 't', 'o', '-', '9'};
    uint8_t out[16384];
    size_t len = 0;
    memcpy(out, hello, sizeof hello);
    len = sizeof hello;
    int64_t now = (int64_t)time(NULL) * 1000;
    len += rec_frame(1, 1, now, out + len);                 /* 1 good */
    len += rec_frame(50, 2, now, out + len);                /* 2 vehicle outside the allowance */
    len += rec_frame(2, 3, now, out + len);                 /* 3 good */
    out[len++] = 0x01, out[len++] = 0x02, out[len++] = 0x0a, out[len++] = 0x05; /* 4 malformed */
    len += rec_frame(3, 4, 5, out + len);                   /* 5 sampled in 1970 */
    out[len++] = 0x01, out[len++] = 0x80, out[len++] = 0x40; /* 6 8192 bytes: too large, skipped */
    memset(out + len, 0xee, 8192);
    len += 8192;
    len += rec_frame(4, 5, now, out + len);                 /* 7 good */
    out[len++] = 0x02, out[len++] = 0x00;                   /* a heartbeat */
    len += rec_frame(5, 6, now, out + len);                 /* 8 good */
    size_t off = 0;
    uint8_t buf[4096];
    size_t got = 0;
    while (off < len) { /* the socketpair's buffer is small: write as the server reads */
        ssize_t w = send(sv[1], out + off, len - off, MSG_DONTWAIT);
        if (w > 0)
            off += (size_t)w;
        pump(s, 1);
        ssize_t r = recv(sv[1], buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
    }
    int eof;
    got += drain_fd(s, sv[1], buf + got, sizeof buf - got, 50, &eof);
    CHECK_INT(k.n, 4);
    for (size_t i = 0; i < k.n && i < 4; i++)
        tp_gateway_server_complete(s, &k.tags[i]);
    tp_gateway_server_flush_acks(s);
    got += drain_fd(s, sv[1], buf + got, sizeof buf - got, 50, &eof);
    uint64_t rej[16];
    int codes[16], nrej, bye;
    long long ack = frames(buf, got, rej, codes, &nrej, &bye);
    CHECK_INT(nrej, 4);
    CHECK_INT(rej[0], 2);
    CHECK_INT(codes[0], TP_GW_REJECT_VEHICLE);
    CHECK_INT(rej[1], 4);
    CHECK_INT(codes[1], TP_GW_REJECT_MALFORMED);
    CHECK_INT(rej[2], 5);
    CHECK_INT(codes[2], TP_GW_REJECT_EVENT_TIME);
    CHECK_INT(rej[3], 6);
    CHECK_INT(codes[3], TP_GW_REJECT_TOO_LARGE);
    CHECK_INT(ack, 8);
    CHECK_INT(bye, 0);
    tp_gateway_server_stats st;
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.records_in, 4);
    CHECK_INT(st.records_acked, 8);
    CHECK_INT(st.heartbeats_in, 1);
    CHECK_INT(st.connections, 1);
    /* a framing error: a goodbye with code 1, then the server closes */
    static const uint8_t junk[] = {0x07, 0x00};
    CHECK(write(sv[1], junk, sizeof junk) == 2);
    got = drain_fd(s, sv[1], buf, sizeof buf, 200, &eof);
    CHECK(got >= 3 && buf[0] == 0x84 && buf[2] == TP_GW_BYE_PROTOCOL);
    CHECK(eof);
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.closed[TP_GW_CLOSE_PROTOCOL], 1);
    close(sv[1]);
    tp_gateway_server_free(s);
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

/* Idle connections (no hello, a silent v2 session, a v1 connection with everything acked) are closed after the
 * idle timeout; 60 idle ones do not stop a good gateway; the per-address cap closes the 61st at once. */
static void test_idle_and_caps(void)
{
    static sink k;
    memset(&k, 0, sizeof k);
    tp_gateway_server *s = server(&k, NULL, "127.0.0.1:0", 400, 62);
    int port = tp_gateway_server_port(s);
    enum { NIDLE = 60 };
    int idle[NIDLE];
    for (int i = 0; i < NIDLE; i++)
        idle[i] = tcp_connect(port);
    pump(s, 5);
    int extra = tcp_connect(port); /* 61 */
    pump(s, 3);
    int over = tcp_connect(port); /* 62: still within the cap, and 63 is refused */
    int refused = tcp_connect(port);
    pump(s, 5);
    uint8_t b[256];
    int eof;
    drain_fd(s, refused, b, sizeof b, 50, &eof);
    CHECK(eof);
    tp_gateway_server_stats st;
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.closed[TP_GW_CLOSE_PER_IP], 1);
    CHECK_INT(st.connections, NIDLE + 2);
    /* a good v2 gateway on "extra" is served while the others idle */
    static const uint8_t hello[] = {0xd4, 0xd0, 0xc7, 0x57, 0x02, 0x00};
    uint8_t out[256];
    size_t len = sizeof hello;
    memcpy(out, hello, len);
    len += rec_frame(7, 1, (int64_t)time(NULL) * 1000, out + len);
    CHECK(write(extra, out, len) == (ssize_t)len);
    pump(s, 5);
    CHECK_INT(k.n, 1);
    /* a v1 gateway on "over" sends one record, acked: then idle like the rest */
    len = 0;
    uint8_t body[TP_RECORD_MAX_ENCODED];
    size_t bl;
    tp_record r = {0};
    r.vehicle_id = 8;
    tp_record_encode(&r, body, sizeof body, &bl);
    out[0] = (uint8_t)bl;
    memcpy(out + 1, body, bl);
    CHECK(write(over, out, 1 + bl) == (ssize_t)(1 + bl));
    pump(s, 5);
    CHECK_INT(k.n, 2);
    tp_gateway_server_complete(s, &k.tags[1]);
    tp_gateway_server_flush_acks(s);
    /* keep the v2 gateway alive with heartbeats while the timeout passes; the server sends heartbeats too */
    size_t got = 0;
    uint8_t buf[1024];
    /* At least 120 rounds; more while the idle connections are not all closed yet (slow runs: valgrind). */
    for (int t = 0; t < 3000; t++) {
        pump(s, 1);
        if (t % 10 == 0) {
            static const uint8_t hb[] = {0x02, 0x00};
            CHECK(write(extra, hb, 2) == 2);
        }
        ssize_t n = recv(extra, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (n > 0 && got + (size_t)n < sizeof buf)
            got += (size_t)n;
        tp_gateway_server_stats_get(s, &st);
        if (t >= 120 && st.connections == 1 && st.closed[TP_GW_CLOSE_IDLE] >= NIDLE + 1)
            break;
    }
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.connections, 1); /* only the gateway that sent heartbeats */
    CHECK(st.closed[TP_GW_CLOSE_IDLE] >= NIDLE + 1);
    int server_hb = 0;
    for (size_t i = 0; i + 1 < got; i++) /* after the hello: frames 83 00 */
        server_hb += buf[i] == 0x83 && buf[i + 1] == 0x00;
    CHECK(server_hb >= 1);
    drain_fd(s, over, b, sizeof b, 20, &eof);
    CHECK(eof);
    for (int i = 0; i < NIDLE; i++)
        close(idle[i]);
    close(extra);
    close(over);
    close(refused);
    tp_gateway_server_free(s);
}

/* The client against a real server with authentication: a rejected record (vehicle outside the allowance) is not
 * resent after a reconnect, and the rest is acked; an unknown token is a final refusal. */
static void test_client_rejects(void)
{
    static sink k;
    memset(&k, 0, sizeof k);
    tp_gateway_server *s = server(&k, &test_auth, "127.0.0.1:0", -1, 64);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tp_gateway_server_port(s));
    tp_gateway_client_opts co;
    tp_gateway_client_opts_init(&co);
    co.connect = addr;
    co.backoff_min_ms = 1;
    co.token = "only-vehicles-1-to-9";
    co.gateway_id = "test-gw";
    tp_gateway_client *c;
    CHECK_ERR(tp_gateway_client_new(&co, &c), TP_OK);
    int64_t now = (int64_t)time(NULL) * 1000;
    for (uint64_t i = 0; i < 20; i++) {
        tp_record r = {0};
        r.vehicle_id = i == 7 ? 99 : 1 + i % 9;
        r.seq = i;
        r.sampled_at_ms = now;
        CHECK_ERR(tp_gateway_client_send(c, &r), TP_OK);
    }
    for (int t = 0; t < 50; t++) {
        tp_gateway_client_pump(c, 1);
        pump(s, 1);
    }
    tp_gateway_client_stats cs;
    tp_gateway_client_stats_get(c, &cs);
    CHECK_INT(cs.records_rejected, 1);
    CHECK_INT(k.n, 19);
    tp_gateway_client_disconnect(c); /* nothing acked yet: 19 resent, not the rejected one */
    for (int t = 0; t < 50; t++) {
        tp_gateway_client_pump(c, 1);
        pump(s, 1);
    }
    CHECK_INT(k.n, 38);
    for (size_t i = 0; i < k.n; i++) {
        CHECK(k.recs[i].vehicle_id != 99);
        tp_gateway_server_complete(s, &k.tags[i]);
    }
    tp_gateway_server_flush_acks(s);
    for (int t = 0; t < 20; t++) {
        tp_gateway_client_pump(c, 1);
        pump(s, 1);
    }
    tp_gateway_client_stats_get(c, &cs);
    CHECK_INT(cs.unacked_records, 0);
    CHECK_INT(cs.records_acked, 19); /* + 1 rejected = the 20 sent */
    CHECK_INT(cs.records_sent, 20);
    tp_gateway_client_free(c);

    co.token = "not-a-known-token-at-all";
    CHECK_ERR(tp_gateway_client_new(&co, &c), TP_OK);
    tp_record r = {0};
    r.vehicle_id = 1;
    r.sampled_at_ms = now;
    CHECK_ERR(tp_gateway_client_send(c, &r), TP_OK);
    tp_err e = TP_OK;
    for (int t = 0; t < 50 && !e; t++) {
        e = tp_gateway_client_pump(c, 1);
        pump(s, 1);
    }
    CHECK_ERR(e, TP_ERR_UNAVAILABLE);
    tp_gateway_client_stats_get(c, &cs);
    CHECK_INT(cs.refused, TP_GW_REFUSE_AUTH_FAILED);
    CHECK(strstr(cs.last_reason, "unknown token") != NULL);
    tp_gateway_client_free(c);
    tp_gateway_server_free(s);
}

int main(void)
{
    tp_log_configure(TP_LOG_ERROR, TP_LOG_TEXT);
    test_worked_example();
    test_refusals();
    test_rejects_among_good();
    test_idle_and_caps();
    test_client_rejects();
    return check_exit();
}
