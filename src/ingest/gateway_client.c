/* Gateway protocol client: a linear resend buffer of framed records,
 *
 *     buf: [ acked, dropped | unacked, written | unacked, not yet written | free ]
 *          0               start              sent                      end      cap
 *
 * An ack A (records of this connection durable) drops records from `start`; a reconnect rewinds `sent` to `start`.
 * v2 frames are `01 len record`; a rejected record's type byte is overwritten with 00 (a tombstone), and a reconnect
 * removes tombstones before resending, so a rejected record is never sent twice. Server frames are parsed from a
 * small receive buffer. With TLS the handshake and the hello run blocking (with a 10 s socket timeout) right after
 * connect; then the socket turns non-blocking and reads and writes go through SSL_read/SSL_write. */
#include "ingest/gateway_client.h"
#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ingest/gateway_server.h"
#include "ingest/gateway_tls.h"
#include "common/log.h"
#include "telepack/varint.h"

#define WRITE_CHUNK (16u * 1024u)
#define RX_CAP 2048u
#define TOMBSTONE 0x00u

struct tp_gateway_client {
    tp_gateway_client_opts o;
    char host[256], port[16];
    int fixed_fd;             /* the caller gave the socket: never reconnect */
    int fd;
    int broken;               /* fixed fd failed */
    uint8_t *buf;
    size_t cap, start, sent, end;
    uint64_t unacked;         /* records in [start, end) */
    uint64_t conn_acked;      /* last ack value on this connection */
    uint64_t written_here;    /* records queued for this connection: the most it can ack */
    uint64_t ack_acc;         /* partial ack varint being read */
    int ack_shift;
    int backoff_ms;
    int64_t next_attempt_ms;
    int64_t last_write_ms;
    uint64_t write_try_bytes; /* sent_bytes at the last write attempt of send (the chunk rule counts from it) */
    uint64_t write_calls;
    uint64_t sent_records, sent_bytes, acked_records, resent, connects;
    /* v2 */
    uint8_t rx[RX_CAP];
    size_t rx_len;
    int hello_done;           /* the server's hello arrived on this connection */
    int refused;              /* refusal status needing an operator */
    int heartbeat_ms, idle_ms;
    int64_t last_rx_ms, last_tx_ms;
    uint64_t rejected;
    size_t window;            /* current bound of unacked bytes */
    char reason[128];
    SSL_CTX *tls;             /* with opts.tls_ca */
    SSL *ssl;                 /* the connection's TLS session */
};

static int send_hello(tp_gateway_client *c);

void tp_gateway_client_opts_init(tp_gateway_client_opts *o)
{
    o->connect = NULL;
    o->fd = -1;
    o->max_unacked_bytes = 4u * 1024u * 1024u;
    o->backoff_min_ms = 100;
    o->backoff_max_ms = 5000;
    o->stop = NULL;
    o->protocol = 2;
    o->token = NULL;
    o->gateway_id = NULL;
    o->vehicles = 0;
    o->max_window_bytes = 64u << 20;
    o->tls_ca = o->tls_cert = o->tls_key = o->tls_server_name = NULL;
}

tp_err tp_gateway_client_new(const tp_gateway_client_opts *opts, tp_gateway_client **out)
{
    return tp_gateway_client_new_err(opts, out, NULL, 0);
}

tp_err tp_gateway_client_new_err(const tp_gateway_client_opts *opts, tp_gateway_client **out, char *err,
                                 size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!opts || !out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_gateway_client *c = calloc(1, sizeof *c);
    if (!c)
        return TP_ERR_NOMEM;
    c->o = *opts;
    c->fd = -1;
    if (opts->fd >= 0) {
        c->fixed_fd = 1;
        c->fd = opts->fd;
        c->connects = 1;
    } else if (!opts->connect ||
               tp_gateway_parse_hostport(opts->connect, c->host, sizeof c->host, c->port, sizeof c->port) != TP_OK ||
               !c->host[0]) {
        free(c);
        return TP_ERR_INVALID_ARG;
    }
    if (c->o.max_unacked_bytes < 1024)
        c->o.max_unacked_bytes = 1024;
    if (c->o.backoff_min_ms <= 0)
        c->o.backoff_min_ms = 100;
    if (c->o.backoff_max_ms < c->o.backoff_min_ms)
        c->o.backoff_max_ms = c->o.backoff_min_ms;
    c->backoff_ms = c->o.backoff_min_ms;
    if (c->o.protocol != 1)
        c->o.protocol = 2;
    if (c->o.max_window_bytes < c->o.max_unacked_bytes)
        c->o.max_window_bytes = c->o.max_unacked_bytes;
    if (c->o.token && (strlen(c->o.token) == 0 || strlen(c->o.token) > 256)) {
        free(c);
        return TP_ERR_INVALID_ARG;
    }
    if (c->o.gateway_id && (strlen(c->o.gateway_id) == 0 || strlen(c->o.gateway_id) > 64)) {
        free(c);
        return TP_ERR_INVALID_ARG;
    }
    c->window = c->o.max_unacked_bytes;
    c->heartbeat_ms = 20000;
    c->idle_ms = 60000;
    c->cap = c->o.max_unacked_bytes + TP_RECORD_MAX_ENCODED + 11 + 64 * 1024;
    c->buf = malloc(c->cap);
    if (!c->buf) {
        free(c);
        return TP_ERR_NOMEM;
    }
    if (c->o.tls_ca || c->o.tls_cert || c->o.tls_key) {
        char e2[512];
        tp_err te = c->fixed_fd ? TP_ERR_INVALID_ARG
                                : tp_tls_client_ctx(c->o.tls_ca, c->o.tls_cert, c->o.tls_key, &c->tls, e2, sizeof e2);
        if (te) {
            if (err && errlen)
                snprintf(err, errlen, "%s", c->fixed_fd ? "TLS needs an address to connect to, not a socket" : e2);
            free(c->buf);
            free(c);
            return te == TP_ERR_NOMEM ? te : TP_ERR_INVALID_ARG;
        }
    }
    if (c->fixed_fd && c->o.protocol == 2 && send_hello(c) != 0) {
        free(c->buf);
        free(c);
        return TP_ERR_IO;
    }
    *out = c;
    return TP_OK;
}

void tp_gateway_client_free(tp_gateway_client *c)
{
    if (!c)
        return;
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    SSL_CTX_free(c->tls);
    free(c->buf);
    free(c);
}

static void drop_conn(tp_gateway_client *c, const char *why)
{
    if (c->fd < 0)
        return;
    if (c->fixed_fd)
        tp_log(TP_LOG_INFO, "gateway-client", "connection on the given socket lost (%s); %llu records not acked",
               why, (unsigned long long)c->unacked);
    else
        tp_log(TP_LOG_INFO, "gateway-client", "connection to %s:%s lost (%s); %llu unacked records will be resent",
               c->host, c->port, why, (unsigned long long)c->unacked);
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->fd);
    c->fd = -1;
    c->rx_len = 0;
    c->hello_done = 0;
    if (c->fixed_fd)
        c->broken = 1;
    c->next_attempt_ms = tp_mono_ms() + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > c->o.backoff_max_ms ? c->o.backoff_max_ms : c->backoff_ms * 2;
}

/* A TLS call failed. Certificate problems and alerts from the server need an operator: the client stops (every
 * call then returns TP_ERR_UNAVAILABLE) instead of reconnecting forever. Anything else is a lost connection. */
static void tls_failed(tp_gateway_client *c, int ret, const char *when)
{
    char t[256], why[700];
    unsigned long e = ERR_peek_error();
    int reason = e ? ERR_GET_REASON(e) : 0;
    int alert = reason >= SSL_AD_REASON_OFFSET;
    int cert = tp_tls_error_text(c->ssl, ret, t, sizeof t);
    snprintf(why, sizeof why, "TLS %s with %s:%s failed: %s%s", when, c->host, c->port, t,
             reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE
                 ? " (does the server speak TLS on this port? its log says why)"
                 : "");
    if (cert || alert) {
        snprintf(c->reason, sizeof c->reason, "%.127s", t);
        tp_log(TP_LOG_ERROR, "gateway-client", "%s; not retrying: check the CA file, the certificates and the address",
               why);
        c->refused = -1;
        c->broken = 1;
    }
    drop_conn(c, why);
}

/* Writes up to n (> 0) bytes: >= 0 written, -1 nothing now, -2 the connection was dropped. */
static ssize_t io_send(tp_gateway_client *c, const void *b, size_t n)
{
    if (!c->ssl) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            return w;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return -1;
        /* A reset before the hello is what a v1-only server's close looks like when our hello was unread. */
        if ((errno == ECONNRESET || errno == EPIPE) && c->o.protocol == 2 && !c->hello_done)
            drop_conn(c, "reset by the server before its hello (a v1-only server, or over its connection limits)");
        else
            drop_conn(c, strerror(errno));
        return -2;
    }
    ERR_clear_error();
    int r = SSL_write(c->ssl, b, (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return -1;
    tls_failed(c, r, "write");
    return -2;
}

/* Reads up to n bytes: > 0 read, 0 end of stream, -1 nothing now, -2 the connection was dropped. */
static ssize_t io_recv(tp_gateway_client *c, void *b, size_t n)
{
    if (!c->ssl) {
        ssize_t r = recv(c->fd, b, n, MSG_DONTWAIT);
        if (r >= 0)
            return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return -1;
        if (errno == ECONNRESET && c->o.protocol == 2 && !c->hello_done)
            drop_conn(c, "reset by the server before its hello (a v1-only server, or over its connection limits)");
        else
            drop_conn(c, strerror(errno));
        return -2;
    }
    ERR_clear_error();
    int r = SSL_read(c->ssl, b, (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return -1;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    tls_failed(c, r, "read");
    return -2;
}

/* The TLS handshake on the fresh blocking socket c->fd, bounded by a 10 s socket timeout. -1: dropped. */
static int tls_start(tp_gateway_client *c)
{
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    c->ssl = SSL_new(c->tls);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 ||
        tp_tls_client_expect_host(c->ssl, c->o.tls_server_name ? c->o.tls_server_name : c->host) != 0) {
        drop_conn(c, "out of memory for a TLS session");
        return -1;
    }
    ERR_clear_error();
    int r = SSL_connect(c->ssl);
    if (r != 1) {
        tls_failed(c, r, "handshake");
        return -1;
    }
    return 0;
}

void tp_gateway_client_disconnect(tp_gateway_client *c)
{
    drop_conn(c, "closed by the caller");
    if (!c->fixed_fd)
        c->next_attempt_ms = 0;
}

/* v2: the gateway hello (docs/GATEWAY.md): magic, version, length, GatewayHello. */
static size_t build_hello(const tp_gateway_client *c, uint8_t *out)
{
    uint8_t body[600];
    size_t n = 0;
    if (c->o.token) {
        size_t l = strlen(c->o.token);
        body[n++] = (1 << 3) | 2;
        n += tp_varint_encode(l, body + n);
        memcpy(body + n, c->o.token, l);
        n += l;
    }
    if (c->o.gateway_id) {
        size_t l = strlen(c->o.gateway_id);
        body[n++] = (2 << 3) | 2;
        n += tp_varint_encode(l, body + n);
        memcpy(body + n, c->o.gateway_id, l);
        n += l;
    }
    if (c->o.vehicles) {
        body[n++] = 3 << 3;
        n += tp_varint_encode(c->o.vehicles, body + n);
    }
    size_t k = 0;
    out[k++] = TP_GW_MAGIC0;
    out[k++] = TP_GW_MAGIC1;
    out[k++] = TP_GW_MAGIC2;
    out[k++] = TP_GW_MAGIC3;
    out[k++] = TP_GW_VERSION;
    k += tp_varint_encode(n, out + k);
    memcpy(out + k, body, n);
    return k + n;
}

/* Removes tombstoned (rejected) frames from the unacked part before it is resent. */
static void drop_tombstones(tp_gateway_client *c)
{
    size_t r = c->start, w = c->start;
    while (r < c->end) {
        uint64_t v = 0;
        size_t used = 0;
        tp_varint_decode(c->buf + r + 1, c->end - r - 1, &v, &used);
        size_t fl = 1 + used + (size_t)v;
        if (c->buf[r] == TOMBSTONE) {
            c->unacked--;
        } else {
            if (w != r)
                memmove(c->buf + w, c->buf + r, fl);
            w += fl;
        }
        r += fl;
    }
    c->end = w;
    c->sent = c->start;
}

/* Sends the hello on a fresh connection (blocking: it is small and the socket buffer is empty). */
static int send_hello(tp_gateway_client *c)
{
    uint8_t h[700];
    size_t n = build_hello(c, h), off = 0;
    while (off < n) {
        ssize_t w;
        if (c->ssl) { /* still blocking here */
            ERR_clear_error();
            int r = SSL_write(c->ssl, h + off, (int)(n - off));
            if (r <= 0) {
                tls_failed(c, r, "write of the hello");
                return -1;
            }
            w = r;
        } else {
            w = send(c->fd, h + off, n - off, MSG_NOSIGNAL);
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += (size_t)w;
    }
    c->last_tx_ms = c->last_rx_ms = tp_mono_ms();
    return 0;
}

static void try_connect(tp_gateway_client *c)
{
    if (c->fixed_fd || c->fd >= 0 || tp_mono_ms() < c->next_attempt_ms)
        return;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int fd = -1;
    if (getaddrinfo(c->host, c->port, &hints, &res) == 0) {
        for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
            if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
                close(fd);
                fd = -1;
            }
        }
        freeaddrinfo(res);
    }
    if (fd < 0) {
        c->next_attempt_ms = tp_mono_ms() + c->backoff_ms;
        c->backoff_ms = c->backoff_ms * 2 > c->o.backoff_max_ms ? c->o.backoff_max_ms : c->backoff_ms * 2;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    if (c->tls && tls_start(c) != 0)
        return;
    c->connects++;
    if (c->o.protocol == 2) {
        drop_tombstones(c);
        if (send_hello(c) != 0) {
            drop_conn(c, "sending the hello failed");
            return;
        }
    }
    if (c->ssl) { /* from now on SSL_read/SSL_write must not block: the loop polls */
        int fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    if (c->connects > 1)
        c->resent += c->unacked;
    c->sent = c->start;
    c->conn_acked = 0;
    c->written_here = c->unacked;
    c->ack_acc = 0;
    c->ack_shift = 0;
    /* The backoff is reset only once the connection proved useful (the server's hello, or a first ack): a server
     * that accepts and closes at once (a v1-only server, a full one) must not be hammered every backoff_min_ms. */
}

/* Length of the frame at buf[off] (the buffer only holds frames we built). */
static size_t frame_len(const tp_gateway_client *c, const uint8_t *p, size_t avail)
{
    uint64_t v = 0;
    size_t used = 0;
    size_t t = c->o.protocol == 2;
    if (p[t] < 0x80) /* a record under 128 bytes: the usual length prefix, one byte */
        return t + 1 + p[t];
    tp_varint_decode(p + t, avail - t, &v, &used); /* cannot fail: we wrote it */
    return t + used + (size_t)v;
}

static int apply_ack(tp_gateway_client *c, uint64_t a)
{
    if (a < c->conn_acked || a > c->written_here)
        return -1;
    for (uint64_t n = a - c->conn_acked; n > 0; n--) {
        size_t fl = frame_len(c, c->buf + c->start, c->end - c->start);
        if (c->start + fl > c->sent)
            return -1; /* an ack for bytes not written yet */
        c->acked_records += c->o.protocol == 1 || c->buf[c->start] != TOMBSTONE; /* rejects are not "acked" */
        c->start += fl;
        c->unacked--;
    }
    if (a > c->conn_acked)
        c->backoff_ms = c->o.backoff_min_ms;
    c->conn_acked = a;
    if (c->start == c->end) {
        c->start = c->sent = c->end = 0;
    }
    return 0;
}

/* v2: marks record n of this connection rejected (a tombstone: never resent). */
static int apply_reject(tp_gateway_client *c, uint64_t n)
{
    if (n <= c->conn_acked || n > c->written_here)
        return -1;
    size_t pos = c->start;
    for (uint64_t k = c->conn_acked + 1; k < n; k++) {
        if (pos >= c->sent)
            return -1;
        pos += frame_len(c, c->buf + pos, c->end - pos);
    }
    if (pos >= c->sent)
        return -1;
    if (c->buf[pos] != TOMBSTONE) {
        c->buf[pos] = TOMBSTONE;
        c->rejected++;
    }
    return 0;
}

static uint64_t pb_get(const uint8_t *b, const uint8_t *end, unsigned want, uint64_t dflt, const uint8_t **str,
                       size_t *slen)
{
    uint64_t out = dflt;
    while (b < end) {
        uint64_t key, v = 0;
        size_t u;
        if (tp_varint_decode(b, (size_t)(end - b), &key, &u) != TP_OK)
            break;
        b += u;
        unsigned wt = (unsigned)(key & 7);
        if (wt == 0 || wt == 2) {
            if (tp_varint_decode(b, (size_t)(end - b), &v, &u) != TP_OK)
                break;
            b += u;
            if (wt == 2) {
                if (v > (uint64_t)(end - b))
                    break;
                if ((key >> 3) == want && str) {
                    *str = b;
                    *slen = (size_t)v;
                }
                b += v;
                continue;
            }
        } else if (wt == 1 || wt == 5) {
            b += wt == 1 ? 8 : 4;
            continue;
        } else {
            break;
        }
        if ((key >> 3) == want)
            out = v;
    }
    return out;
}

/* v2: the server's hello in rx[0..len). Returns bytes used, 0 if incomplete, -1 if the connection was dropped. */
static long take_server_hello(tp_gateway_client *c, const uint8_t *p, size_t len)
{
    static const uint8_t magic[4] = {TP_GW_MAGIC0, TP_GW_MAGIC1, TP_GW_MAGIC2, TP_GW_MAGIC3};
    for (size_t i = 0; i < 4 && i < len; i++)
        if (p[i] != magic[i]) {
            drop_conn(c, "the server does not speak protocol v2 (no v2 hello); use protocol 1");
            return -1;
        }
    if (len < 6)
        return 0;
    uint64_t blen;
    size_t h;
    tp_err ve = tp_varint_decode(p + 5, len - 5, &blen, &h);
    if (ve == TP_ERR_TRUNCATED)
        return 0;
    if (ve || blen > TP_GW_HELLO_MAX) {
        drop_conn(c, "malformed server hello");
        return -1;
    }
    if (5 + h + blen > len)
        return 0;
    const uint8_t *b = p + 5 + h, *end = b + blen, *rs = NULL;
    size_t rl = 0;
    uint64_t status = pb_get(b, end, 1, 0, NULL, NULL);
    pb_get(b, end, 2, 0, &rs, &rl);
    if (status != 0) {
        snprintf(c->reason, sizeof c->reason, "%.*s", (int)(rl < 120 ? rl : 120), rs ? (const char *)rs : "");
        tp_log(TP_LOG_ERROR, "gateway-client", "the server refused the handshake (status %llu): %s",
               (unsigned long long)status, c->reason);
        if (status >= 1 && status <= 4) {
            c->refused = (int)status;
            c->broken = 1;
        }
        drop_conn(c, "handshake refused");
        if (status == 5 && !c->fixed_fd) /* shutting down: come back later */
            c->next_attempt_ms = tp_mono_ms() + c->o.backoff_max_ms;
        return -1;
    }
    uint64_t hb = pb_get(b, end, 8, 20000, NULL, NULL), idle = pb_get(b, end, 9, 60000, NULL, NULL);
    c->heartbeat_ms = hb >= 10 && hb < 3600000 ? (int)hb : 20000;
    c->idle_ms = idle < 86400000 ? (int)idle : 0;
    uint64_t wb = pb_get(b, end, 5, 0, NULL, NULL);
    if (wb > c->window) { /* grow the resend buffer to the suggested window, within our own bound */
        size_t want = wb > c->o.max_window_bytes ? c->o.max_window_bytes : (size_t)wb;
        size_t cap = want + TP_RECORD_MAX_ENCODED + 11 + 64 * 1024;
        if (cap > c->cap) {
            uint8_t *nb = realloc(c->buf, cap);
            if (nb) {
                c->buf = nb;
                c->cap = cap;
                c->window = want;
            }
        } else {
            c->window = want;
        }
    }
    c->hello_done = 1;
    c->backoff_ms = c->o.backoff_min_ms;
    return (long)(5 + h + blen);
}

/* v2: parses server frames from rx. Returns -1 if the connection was dropped. */
static int take_frames(tp_gateway_client *c)
{
    size_t pos = 0;
    int rc = 0;
    while (pos < c->rx_len) {
        const uint8_t *p = c->rx + pos;
        size_t len = c->rx_len - pos;
        if (!c->hello_done) {
            long u = take_server_hello(c, p, len);
            if (u < 0)
                return -1;
            if (u == 0)
                break;
            pos += (size_t)u;
            continue;
        }
        if (len < 2)
            break;
        uint64_t v;
        size_t h;
        tp_err ve = tp_varint_decode(p + 1, len - 1, &v, &h);
        if (ve == TP_ERR_TRUNCATED)
            break;
        if (ve || v > 512) {
            drop_conn(c, "malformed frame from the server");
            return -1;
        }
        if (1 + h + v > len)
            break;
        const uint8_t *pl = p + 1 + h, *pend = pl + v;
        uint64_t a = 0, code = 0;
        size_t u1 = 0, u2 = 0;
        switch (p[0]) {
        case TP_GW_FRAME_ACK:
            if (tp_varint_decode(pl, v, &a, &u1) != TP_OK || apply_ack(c, a) != 0) {
                drop_conn(c, "ack out of range from the server");
                return -1;
            }
            break;
        case TP_GW_FRAME_REJECT:
            if (tp_varint_decode(pl, v, &a, &u1) != TP_OK ||
                tp_varint_decode(pl + u1, v - u1, &code, &u2) != TP_OK || apply_reject(c, a) != 0) {
                drop_conn(c, "reject out of range from the server");
                return -1;
            }
            snprintf(c->reason, sizeof c->reason, "%.*s", (int)(pend - pl - u1 - u2), (const char *)pl + u1 + u2);
            if (c->rejected <= 10)
                tp_log(TP_LOG_WARN, "gateway-client", "the server rejected record %llu (code %llu): %s; not resent",
                       (unsigned long long)a, (unsigned long long)code, c->reason);
            break;
        case TP_GW_FRAME_SERVER_HEARTBEAT:
            break;
        case TP_GW_FRAME_GOODBYE: {
            size_t tl = 0;
            if (tp_varint_decode(pl, v, &code, &u1) == TP_OK)
                tl = (size_t)(pend - pl - u1);
            snprintf(c->reason, sizeof c->reason, "%.*s", (int)tl, (const char *)pl + u1);
            char why[200];
            snprintf(why, sizeof why, "goodbye from the server (code %llu): %s", (unsigned long long)code,
                     c->reason);
            drop_conn(c, why);
            return -1;
        }
        default:
            drop_conn(c, "unknown frame type from the server");
            return -1;
        }
        pos += 1 + h + (size_t)v;
    }
    memmove(c->rx, c->rx + pos, c->rx_len - pos);
    c->rx_len -= pos;
    return rc;
}

static void do_read(tp_gateway_client *c)
{
    if (c->o.protocol == 2) {
        for (;;) {
            ssize_t n = io_recv(c, c->rx + c->rx_len, RX_CAP - c->rx_len);
            if (n < 0)
                return;
            if (n == 0) {
                drop_conn(c, c->hello_done ? "closed by the server"
                                           : "closed by the server before its hello (a v1-only server, or over its "
                                             "connection limits)");
                return;
            }
            c->last_rx_ms = tp_mono_ms();
            c->rx_len += (size_t)n;
            if (take_frames(c) != 0 || c->fd < 0 || !c->ssl || !SSL_has_pending(c->ssl))
                return; /* TLS: OpenSSL may hold more than rx took; poll would not see it */
        }
    }
    for (;;) {
        uint8_t tmp[256];
        ssize_t n = io_recv(c, tmp, sizeof tmp);
        if (n < 0)
            return;
        if (n == 0) {
            drop_conn(c, "closed by the server");
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (c->ack_shift >= 63 && tmp[i] > 1) {
                drop_conn(c, "malformed ack from the server");
                return;
            }
            c->ack_acc |= (uint64_t)(tmp[i] & 0x7f) << c->ack_shift;
            c->ack_shift += 7;
            if (!(tmp[i] & 0x80)) {
                uint64_t a = c->ack_acc;
                c->ack_acc = 0;
                c->ack_shift = 0;
                if (apply_ack(c, a) != 0) {
                    drop_conn(c, "ack out of range from the server");
                    return;
                }
            }
        }
        if (!c->ssl || !SSL_has_pending(c->ssl))
            return;
    }
}

static void do_write(tp_gateway_client *c)
{
    c->write_calls++;
    ssize_t n = io_send(c, c->buf + c->sent, c->end - c->sent);
    if (n < 0)
        return;
    c->sent += (size_t)n;
    c->last_tx_ms = tp_mono_ms();
}

/* v2 liveness: a heartbeat when we sent nothing for heartbeat_ms; drop a server silent for its idle timeout. */
static void liveness(tp_gateway_client *c)
{
    if (c->o.protocol != 2 || c->fd < 0)
        return;
    int64_t t = tp_mono_ms();
    int64_t dead = c->hello_done ? c->idle_ms : 10000 + c->idle_ms;
    if (dead > 0 && t - c->last_rx_ms > dead) {
        drop_conn(c, "nothing from the server for its idle timeout");
        return;
    }
    if (c->hello_done && c->sent == c->end && t - c->last_tx_ms >= c->heartbeat_ms) {
        static const uint8_t hb[2] = {TP_GW_FRAME_HEARTBEAT, 0};
        if (io_send(c, hb, 2) == 2)
            c->last_tx_ms = t;
    }
}

tp_err tp_gateway_client_pump(tp_gateway_client *c, int timeout_ms)
{
    if (c->broken)
        return TP_ERR_UNAVAILABLE;
    try_connect(c);
    if (c->fd < 0) {
        int64_t wait = c->next_attempt_ms - tp_mono_ms();
        if (wait > timeout_ms)
            wait = timeout_ms;
        if (wait > 0) {
            struct timespec ts = {wait / 1000, (wait % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        return TP_OK;
    }
    liveness(c);
    if (c->fd < 0)
        return c->broken ? TP_ERR_UNAVAILABLE : TP_OK;
    int held = c->ssl && SSL_has_pending(c->ssl); /* decrypted bytes poll cannot see */
    struct pollfd p = {.fd = c->fd, .events = POLLIN | (c->sent < c->end ? POLLOUT : 0)};
    int r = poll(&p, 1, held ? 0 : timeout_ms);
    if (r < 0 || (r == 0 && !held))
        return TP_OK;
    if (p.revents & POLLOUT)
        do_write(c);
    if (c->fd >= 0 && (held || (p.revents & (POLLIN | POLLHUP | POLLERR))))
        do_read(c);
    return c->broken ? TP_ERR_UNAVAILABLE : TP_OK;
}

static int stopped(const tp_gateway_client *c)
{
    return c->o.stop && *c->o.stop;
}

tp_err tp_gateway_client_send_encoded(tp_gateway_client *c, const uint8_t *msg, size_t len)
{
    if (!c || (!msg && len) || len > c->o.max_unacked_bytes)
        return TP_ERR_INVALID_ARG;
    if (c->broken)
        return TP_ERR_UNAVAILABLE;
    uint8_t hdr[TP_VARINT_MAX_BYTES + 1];
    size_t hl = 0;
    if (c->o.protocol == 2)
        hdr[hl++] = TP_GW_FRAME_RECORD;
    hl += tp_varint_encode(len, hdr + hl);
    while (c->unacked > 0 && c->end - c->start + hl + len > c->window) {
        if (stopped(c))
            return TP_ERR_AGAIN;
        tp_err e = tp_gateway_client_pump(c, 100);
        if (e)
            return e;
    }
    if (c->end + hl + len > c->cap) { /* compact */
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->sent -= c->start;
        c->end -= c->start;
        c->start = 0;
    }
    memcpy(c->buf + c->end, hdr, hl);
    memcpy(c->buf + c->end + hl, msg, len);
    c->end += hl + len;
    c->unacked++;
    c->sent_records++;
    c->sent_bytes += hl + len;
    /* The server can only ack records it received: count this one for the ack bound of this connection as soon as
     * it is queued (it is written before any later one). */
    c->written_here = c->conn_acked + c->unacked;
    /* The first send connects, as does a send after a disconnect once the backoff passed: without this a client
     * that is never pumped only connected when its resend buffer filled or at drain, so N clients fed by one
     * thread (telepack gen --gateways N) were not N concurrent connections. */
    if (c->fd < 0)
        try_connect(c);
    /* Write in chunks (one syscall per record would dominate), but never hold a record back for long: the coarse
     * clock (a kernel tick, 1-10 ms) because a precise one per record was 5 % of a replay's CPU. */
    if (c->fd >= 0 && c->sent < c->end) {
        int64_t t = tp_mono_coarse_ms();
        /* 16 KiB queued since the last attempt, not 16 KiB pending: while the server reads slower than we queue,
         * the socket stays full and "pending" stays above 16 KiB, and a send per record (EAGAIN, or a few bytes)
         * was 8 % of a replay's CPU. When the window fills, pump waits for the socket instead. */
        if (c->sent_bytes - c->write_try_bytes >= WRITE_CHUNK || t - c->last_write_ms >= 2) {
            c->last_write_ms = t;
            c->write_try_bytes = c->sent_bytes;
            do_write(c);
        }
    }
    return c->broken ? TP_ERR_UNAVAILABLE : TP_OK;
}

tp_err tp_gateway_client_send(tp_gateway_client *c, const tp_record *r)
{
    uint8_t tmp[TP_RECORD_MAX_ENCODED];
    size_t n;
    tp_err e = tp_record_encode(r, tmp, sizeof tmp, &n);
    if (e)
        return e;
    return tp_gateway_client_send_encoded(c, tmp, n);
}

tp_err tp_gateway_client_drain(tp_gateway_client *c, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : tp_mono_ms() + timeout_ms;
    while (c->unacked > 0) {
        if (stopped(c) || tp_mono_ms() >= deadline)
            return TP_ERR_AGAIN;
        tp_err e = tp_gateway_client_pump(c, 50);
        if (e)
            return e;
    }
    return TP_OK;
}

void tp_gateway_client_stats_get(const tp_gateway_client *c, tp_gateway_client_stats *st)
{
    st->records_sent = c->sent_records;
    st->bytes_sent = c->sent_bytes;
    st->records_acked = c->acked_records;
    st->resent = c->resent;
    st->connects = c->connects;
    st->unacked_records = c->unacked;
    st->unacked_bytes = c->end - c->start;
    st->records_rejected = c->rejected;
    st->window_bytes = c->window;
    st->write_calls = c->write_calls;
    st->refused = c->refused;
    snprintf(st->last_reason, sizeof st->last_reason, "%s", c->reason);
}
