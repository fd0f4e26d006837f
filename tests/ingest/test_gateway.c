/* Gateway protocol: the server's cumulative acks over socketpairs (exact watermark with out-of-order completion,
 * end of stream, backpressure), hostile inputs (giant length prefix, varint garbage, a bad message, half a frame then
 * close) closing only the offending connection, and the client over loopback TCP with a reconnect and resend. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "ingest/gateway_client.h"
#include "ingest/gateway_server.h"
#include "telepack/varint.h"

#define MAXTAGS 100000

typedef struct sink {
    tp_batch_tag tags[MAXTAGS];
    tp_record recs[MAXTAGS];
    size_t n;
    int refuse;               /* answer AGAIN while non-zero */
    int quiet, stalled;       /* on_sent reports */
    tp_batch_tag sent_tag;    /* source and generation of the last report */
} sink;

static void on_sent(void *ctx, uint32_t source, uint32_t generation, int stalled)
{
    sink *k = ctx;
    if (stalled)
        k->stalled++;
    else
        k->quiet++;
    k->sent_tag.source = source;
    k->sent_tag.generation = generation;
}

static tp_err on_rec(void *ctx, const tp_record *r, size_t wire_len, const tp_batch_tag *tag)
{
    sink *k = ctx;
    (void)wire_len;
    if (k->refuse)
        return TP_ERR_AGAIN;
    if (k->n < MAXTAGS) {
        k->tags[k->n] = *tag;
        k->recs[k->n] = *r;
    }
    k->n++;
    return TP_OK;
}

static size_t frame(uint64_t vid, uint64_t seq, uint8_t *out)
{
    tp_record r = {0};
    r.vehicle_id = vid;
    r.seq = seq;
    r.sampled_at_ms = 1700000000000;
    r.latitude = 22.3;
    uint8_t body[TP_RECORD_MAX_ENCODED];
    size_t n;
    tp_record_encode(&r, body, sizeof body, &n);
    size_t h = tp_varint_encode(n, out);
    memcpy(out + h, body, n);
    return h + n;
}

static void send_frames(int fd, uint64_t vid, uint64_t from, uint64_t to)
{
    uint8_t buf[8192];
    size_t len = 0;
    for (uint64_t s = from; s < to; s++) {
        len += frame(vid, s, buf + len);
        if (len > sizeof buf - 200) {
            CHECK(write(fd, buf, len) == (ssize_t)len);
            len = 0;
        }
    }
    if (len)
        CHECK(write(fd, buf, len) == (ssize_t)len);
}

static void pump(tp_gateway_server *s, int rounds)
{
    for (int i = 0; i < rounds; i++)
        tp_gateway_server_poll(s, 5);
}

/* Reads every ack available on fd (non-blocking) and returns the last one, or -1 if none; *eof set on EOF. */
static long long last_ack(int fd, int *eof)
{
    uint8_t buf[256];
    long long last = -1;
    *eof = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            break;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) {
            *eof = 1;
            break;
        }
        size_t off = 0;
        while (off < (size_t)n) {
            uint64_t v;
            size_t used;
            if (tp_varint_decode(buf + off, (size_t)n - off, &v, &used) != TP_OK)
                return -2;
            last = (long long)v;
            off += used;
        }
    }
    return last;
}

static tp_gateway_server *new_server(sink *k, uint32_t block_records, const char *listen)
{
    tp_gateway_server_opts o;
    tp_gateway_server_opts_init(&o);
    o.block_records = block_records;
    o.listen = listen;
    tp_gateway_server *s = NULL;
    char err[256];
    CHECK_ERR(tp_gateway_server_new(&o, on_rec, k, &s, err, sizeof err), TP_OK);
    return s;
}

static void complete_range(tp_gateway_server *s, sink *k, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        tp_batch_tag t = k->tags[i];
        t.count = 1;
        tp_gateway_server_complete(s, &t);
    }
    tp_gateway_server_flush_acks(s);
}

static void test_ack_watermark(void)
{
    static sink k;
    memset(&k, 0, sizeof k);
    tp_gateway_server *s = new_server(&k, 2, NULL);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK_ERR(tp_gateway_server_add_fd(s, sv[0]), TP_OK);
    send_frames(sv[1], 42, 0, 5);
    pump(s, 3);
    CHECK_INT(k.n, 5);
    CHECK_INT(k.recs[4].seq, 4);
    /* blocks of 2: [0,1] [2,3] [4]; completing the second block alone acks nothing */
    CHECK_INT(k.tags[0].block, k.tags[1].block);
    CHECK(k.tags[2].block != k.tags[1].block);
    int eof;
    complete_range(s, &k, 2, 4);
    pump(s, 1);
    CHECK_INT(last_ack(sv[1], &eof), -1);
    complete_range(s, &k, 4, 5); /* the last block complete, the first still pending */
    CHECK_INT(last_ack(sv[1], &eof), -1);
    complete_range(s, &k, 0, 1); /* half of the first block */
    CHECK_INT(last_ack(sv[1], &eof), -1);
    complete_range(s, &k, 1, 2); /* now everything: one coalesced ack of 5 */
    CHECK_INT(last_ack(sv[1], &eof), 5);
    CHECK_INT(eof, 0);
    tp_gateway_server_stats st;
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.records_acked, 5);
    CHECK_INT(st.records_pending, 0);
    /* more records, completed in order one by one: acks advance per block */
    size_t base = k.n;
    send_frames(sv[1], 42, 5, 9);
    pump(s, 3);
    CHECK_INT(k.n, base + 4);
    complete_range(s, &k, base, base + 2);
    CHECK_INT(last_ack(sv[1], &eof), 7);
    /* end of stream with records pending: the connection stays until they are acked, then closes */
    CHECK(shutdown(sv[1], SHUT_WR) == 0);
    pump(s, 3);
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.connections, 1);
    complete_range(s, &k, base + 2, base + 4);
    CHECK_INT(last_ack(sv[1], &eof), 9);
    pump(s, 2);
    last_ack(sv[1], &eof);
    CHECK_INT(eof, 1);
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.connections, 0);
    CHECK_INT(st.closed_on_error, 0);
    /* a completion for a closed connection is ignored */
    complete_range(s, &k, 0, 1);
    close(sv[1]);
    tp_gateway_server_free(s);
}

/* Opens a connection, sends `bad` after 3 good records, checks it is closed with an error while a second
 * connection keeps working and already acked records stay acked. */
static void hostile(const uint8_t *bad, size_t badlen, int half_close)
{
    static sink k;
    memset(&k, 0, sizeof k);
    tp_gateway_server *s = new_server(&k, 1024, NULL);
    int a[2], b[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0);
    CHECK_ERR(tp_gateway_server_add_fd(s, a[0]), TP_OK);
    CHECK_ERR(tp_gateway_server_add_fd(s, b[0]), TP_OK);
    send_frames(a[1], 1, 0, 3);
    pump(s, 3);
    CHECK_INT(k.n, 3);
    complete_range(s, &k, 0, 3);
    int eof;
    CHECK_INT(last_ack(a[1], &eof), 3);
    CHECK(write(a[1], bad, badlen) == (ssize_t)badlen);
    if (half_close)
        shutdown(a[1], SHUT_WR);
    send_frames(b[1], 2, 0, 4);
    pump(s, 4);
    tp_gateway_server_stats st;
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.closed_on_error, 1);
    CHECK_INT(st.connections, 1);
    last_ack(a[1], &eof);
    CHECK_INT(eof, 1);
    CHECK_INT(k.n, 7); /* nothing of the bad frame was taken; the other connection's four were */
    complete_range(s, &k, 3, 7);
    CHECK_INT(last_ack(b[1], &eof), 4);
    CHECK_INT(st.records_acked, 3);
    close(a[1]);
    close(b[1]);
    tp_gateway_server_free(s);
}

static void test_hostile(void)
{
    uint8_t giant[10];
    size_t n = tp_varint_encode(1000000, giant);
    hostile(giant, n, 0);
    uint8_t max64[10];
    n = tp_varint_encode(UINT64_MAX, max64);
    hostile(max64, n, 0);
    uint8_t garbage[12];
    memset(garbage, 0xff, sizeof garbage);
    hostile(garbage, sizeof garbage, 0);
    uint8_t badmsg[] = {3, 0x0f, 0x01, 0x02}; /* field 1 with wire type 7 */
    hostile(badmsg, sizeof badmsg, 0);
    uint8_t half[40];
    n = frame(1, 99, half);
    hostile(half, n - 5, 1); /* half a frame, then close */
    uint8_t halfvarint[] = {0x80};
    hostile(halfvarint, 1, 1);
}

static void test_backpressure(void)
{
    static sink k;
    memset(&k, 0, sizeof k);
    tp_gateway_server *s = new_server(&k, 1024, NULL);
    int a[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
    CHECK_ERR(tp_gateway_server_add_fd(s, a[0]), TP_OK);
    k.refuse = 1;
    send_frames(a[1], 5, 0, 50);
    pump(s, 3);
    CHECK_INT(k.n, 0);
    CHECK(tp_gateway_server_paused(s));
    k.refuse = 0;
    tp_gateway_server_resume(s);
    pump(s, 3);
    CHECK(!tp_gateway_server_paused(s));
    CHECK_INT(k.n, 50);
    int ordered = 1;
    for (size_t i = 0; i < k.n; i++)
        ordered &= k.recs[i].seq == i;
    CHECK(ordered);
    complete_range(s, &k, 0, k.n);
    int eof;
    CHECK_INT(last_ack(a[1], &eof), 50);
    close(a[1]);
    tp_gateway_server_free(s);
}

static void test_parse_hostport(void)
{
    char h[64], p[8];
    CHECK_ERR(tp_gateway_parse_hostport("127.0.0.1:7070", h, sizeof h, p, sizeof p), TP_OK);
    CHECK_STR(h, "127.0.0.1");
    CHECK_STR(p, "7070");
    CHECK_ERR(tp_gateway_parse_hostport("[::1]:9", h, sizeof h, p, sizeof p), TP_OK);
    CHECK_STR(h, "::1");
    CHECK_ERR(tp_gateway_parse_hostport(":80", h, sizeof h, p, sizeof p), TP_OK);
    CHECK_STR(h, "");
    CHECK_ERR(tp_gateway_parse_hostport("localhost", h, sizeof h, p, sizeof p), TP_ERR_PARSE);
    CHECK_ERR(tp_gateway_parse_hostport("host:99999", h, sizeof h, p, sizeof p), TP_ERR_PARSE);
    CHECK_ERR(tp_gateway_parse_hostport("host:x1", h, sizeof h, p, sizeof p), TP_ERR_PARSE);
    CHECK_ERR(tp_gateway_parse_hostport("::1:7070", h, sizeof h, p, sizeof p), TP_ERR_PARSE); /* brackets needed */
    tp_gateway_server_opts o;
    tp_gateway_server_opts_init(&o);
    o.listen = "nonsense";
    tp_gateway_server *s = NULL;
    char err[256] = "";
    CHECK_ERR(tp_gateway_server_new(&o, on_rec, NULL, &s, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "nonsense") != NULL);
    tp_gateway_client_opts co;
    tp_gateway_client_opts_init(&co);
    co.connect = "no-port";
    tp_gateway_client *c = NULL;
    CHECK_ERR(tp_gateway_client_new(&co, &c), TP_ERR_INVALID_ARG);
}

/* Client and server over loopback TCP; the client drops its connection mid-way and resends the unacked rest. */
static void test_client_loopback(int protocol)
{
    static sink k;
    memset(&k, 0, sizeof k);
    tp_gateway_server *s = new_server(&k, 64, "127.0.0.1:0");
    int port = tp_gateway_server_port(s);
    CHECK(port > 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    tp_gateway_client_opts co;
    tp_gateway_client_opts_init(&co);
    co.connect = addr;
    co.backoff_min_ms = 1;
    co.max_unacked_bytes = 64 * 1024;
    co.protocol = protocol;
    tp_gateway_client *c;
    CHECK_ERR(tp_gateway_client_new(&co, &c), TP_OK);
    enum { N = 3000 };
    size_t completed = 0;
    for (uint64_t i = 0; i < N; i++) {
        tp_record r = {0};
        r.vehicle_id = 1 + i % 10;
        r.seq = i;
        r.sampled_at_ms = 1700000000000 + (int64_t)i;
        CHECK_ERR(tp_gateway_client_send(c, &r), TP_OK);
        if (i == N / 2) {
            /* take what arrived, ack none of it, then break the connection: it must all come again */
            pump(s, 3);
            completed = k.n;
            tp_gateway_client_disconnect(c);
            pump(s, 3);
        }
        if (i % 100 == 99) {
            tp_gateway_client_pump(c, 0);
            pump(s, 1);
            complete_range(s, &k, completed, k.n);
            completed = k.n;
        }
    }
    for (int round = 0; round < 500; round++) {
        tp_gateway_client_stats cs;
        tp_gateway_client_stats_get(c, &cs);
        if (cs.unacked_records == 0)
            break;
        tp_gateway_client_pump(c, 1);
        pump(s, 1);
        complete_range(s, &k, completed, k.n);
        completed = k.n;
    }
    tp_gateway_client_stats cs;
    tp_gateway_client_stats_get(c, &cs);
    CHECK_INT(cs.unacked_records, 0);
    CHECK_INT(cs.records_acked, N);
    CHECK_INT(cs.records_sent, N);
    CHECK(cs.connects >= 2);
    CHECK(cs.resent > 0);
    /* every seq arrived at least once; the duplicates are exactly the resends */
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    size_t dup = 0;
    for (size_t i = 0; i < k.n && i < MAXTAGS; i++) {
        if (k.recs[i].seq < N) {
            dup += seen[k.recs[i].seq];
            seen[k.recs[i].seq] = 1;
        }
    }
    size_t missing = 0;
    for (size_t i = 0; i < N; i++)
        missing += !seen[i];
    CHECK_INT(missing, 0);
    CHECK(dup > 0 && dup <= cs.resent);
    CHECK_ERR(tp_gateway_client_drain(c, 100), TP_OK);
    tp_gateway_client_free(c);
    tp_gateway_server_free(s);
}

static void test_max_connections(void)
{
    static sink k;
    memset(&k, 0, sizeof k);
    tp_gateway_server_opts o;
    tp_gateway_server_opts_init(&o);
    o.max_connections = 1;
    tp_gateway_server *s;
    CHECK_ERR(tp_gateway_server_new(&o, on_rec, &k, &s, NULL, 0), TP_OK);
    int a[2], b[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0);
    CHECK_ERR(tp_gateway_server_add_fd(s, a[0]), TP_OK);
    CHECK_ERR(tp_gateway_server_add_fd(s, b[0]), TP_ERR_FULL); /* refused and closed */
    int eof;
    last_ack(b[1], &eof);
    CHECK_INT(eof, 1);
    tp_gateway_server_stats st;
    tp_gateway_server_stats_get(s, &st);
    CHECK_INT(st.connections, 1);
    CHECK_ERR(tp_gateway_server_add_fd(s, -1), TP_ERR_INVALID_ARG);
    close(a[1]);
    close(b[1]);
    tp_gateway_server_free(s);
}

/* The client against a hand-driven peer: acks that go backwards or beyond what was sent break the connection; with
 * a caller-given socket that is final (TP_ERR_UNAVAILABLE). A valid ack frees the buffer. */
static void test_client_bad_acks(void)
{
    uint8_t buf[4096];
    for (int variant = 0; variant < 3; variant++) {
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        tp_gateway_client_opts co;
        tp_gateway_client_opts_init(&co);
        co.fd = sv[0];
        co.protocol = 1; /* a hand-driven v1 peer */
        tp_gateway_client *c;
        CHECK_ERR(tp_gateway_client_new(&co, &c), TP_OK);
        tp_record r = {0};
        r.vehicle_id = 3;
        for (int i = 0; i < 3; i++) {
            r.seq = (uint64_t)i;
            CHECK_ERR(tp_gateway_client_send(c, &r), TP_OK);
        }
        tp_gateway_client_pump(c, 10);
        CHECK(read(sv[1], buf, sizeof buf) > 0);
        uint8_t ack[10];
        size_t n;
        if (variant == 0) {
            n = tp_varint_encode(2, ack); /* valid: frees two records */
            CHECK(write(sv[1], ack, n) == (ssize_t)n);
            tp_gateway_client_pump(c, 50);
            tp_gateway_client_stats cs;
            tp_gateway_client_stats_get(c, &cs);
            CHECK_INT(cs.records_acked, 2);
            CHECK_INT(cs.unacked_records, 1);
            close(sv[1]); /* the worker goes away: with a given socket that is final */
            CHECK_ERR(tp_gateway_client_drain(c, 1000), TP_ERR_UNAVAILABLE);
        } else {
            uint64_t bad = variant == 1 ? 4 : 0; /* beyond what was sent; or backwards after 2 */
            if (variant == 2) {
                n = tp_varint_encode(2, ack);
                CHECK(write(sv[1], ack, n) == (ssize_t)n);
                tp_gateway_client_pump(c, 50);
            }
            n = tp_varint_encode(bad, ack);
            CHECK(write(sv[1], ack, n) == (ssize_t)n);
            CHECK_ERR(tp_gateway_client_drain(c, 1000), TP_ERR_UNAVAILABLE);
            tp_gateway_client_stats cs;
            tp_gateway_client_stats_get(c, &cs);
            CHECK_INT(cs.unacked_records, variant == 1 ? 3 : 1);
            close(sv[1]);
        }
        tp_gateway_client_free(c);
    }
}

/* A connection that went quiet with records unacked is reported once per quiet period (not while acked, not twice);
 * one whose unacked bytes pass half its window is reported at once, again after acks took it below a quarter. */
static void test_quiet_and_stalled(void)
{
    static sink k;
    memset(&k, 0, sizeof k);
    tp_gateway_server_opts o;
    tp_gateway_server_opts_init(&o);
    o.quiet_ms = 300;
    o.max_window_bytes = 64 * 1024; /* the window of trusted (replay) sockets */
    tp_gateway_server *s = NULL;
    CHECK_ERR(tp_gateway_server_new(&o, on_rec, &k, &s, NULL, 0), TP_OK);
    tp_gateway_server_on_sent(s, on_sent);
    CHECK_INT(tp_gateway_server_quiet_pending(s), -1);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK_ERR(tp_gateway_server_add_trusted_fd(s, sv[0]), TP_OK);
    send_frames(sv[1], 42, 0, 5);
    pump(s, 1);
    CHECK_INT(k.n, 5);
    CHECK_INT(k.quiet, 0); /* not quiet yet */
    CHECK_INT(tp_gateway_server_quiet(s, k.tags[0].source, k.tags[0].generation), 0);
    CHECK_INT(tp_gateway_server_quiet(s, k.tags[0].source + 1, k.tags[0].generation), 1); /* no such connection */
    CHECK_INT(tp_gateway_server_quiet_pending(s), 300);
    usleep(350 * 1000);
    pump(s, 1);
    CHECK_INT(k.quiet, 1);
    CHECK_INT(k.stalled, 0);
    CHECK_INT(tp_gateway_server_quiet(s, k.tags[0].source, k.tags[0].generation), 1);
    CHECK_INT(k.sent_tag.source, k.tags[0].source);
    CHECK_INT(k.sent_tag.generation, k.tags[0].generation);
    usleep(350 * 1000);
    pump(s, 1);
    CHECK_INT(k.quiet, 1); /* once per quiet period */
    /* records acked before the connection goes quiet: nothing to report */
    send_frames(sv[1], 42, 5, 8);
    pump(s, 1);
    complete_range(s, &k, 0, 8);
    usleep(350 * 1000);
    pump(s, 1);
    CHECK_INT(k.quiet, 1);
    /* half the window (32 KiB) unacked: reported at once, once */
    size_t base = k.n;
    send_frames(sv[1], 42, 8, 2008);
    int eof;
    for (int i = 0; i < 50 && k.n < base + 2000; i++) {
        pump(s, 1);
        last_ack(sv[1], &eof);
    }
    CHECK_INT(k.n, base + 2000);
    CHECK_INT(k.stalled, 1);
    /* acked below a quarter of the window: armed again */
    complete_range(s, &k, base, base + 2000);
    send_frames(sv[1], 42, 2008, 4008);
    for (int i = 0; i < 50 && k.n < base + 4000; i++) {
        pump(s, 1);
        last_ack(sv[1], &eof);
    }
    CHECK_INT(k.stalled, 2);
    close(sv[1]);
    tp_gateway_server_free(s);
}

int main(void)
{
    test_quiet_and_stalled();
    test_ack_watermark();
    test_hostile();
    test_backpressure();
    test_parse_hostport();
    test_client_loopback(1);
    test_client_loopback(2);
    test_max_connections();
    test_client_bad_acks();
    return check_exit();
}
