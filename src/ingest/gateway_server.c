/* Gateway protocol server (docs/GATEWAY.md): one epoll loop, non-blocking sockets, a bounded read buffer per
 * connection, and a per-connection ack watermark.
 *
 * Watermark: a connection's records are numbered in arrival order and grouped into arrival blocks of at most
 * block_records records (a block is also sealed at the end of every read event). A ring holds the open blocks:
 *
 *     head_no                                  head_no + nblocks
 *       v                                              v
 *     [ count=1024 pending=0 | count=1024 pending=17 | count=300 pending=300 (open) ]
 *
 * Every record's tag names its block; a delivered pack reports (block, n) for each run of its records, which
 * subtracts n from that block's pending count. The ack is the number of records in the sealed blocks popped from the
 * head once their pending count is zero: exact, and O(1) amortized per record whatever order packs complete in.
 * A rejected record (v2) joins its block without a pending count: it is settled at once and acked in order.
 *
 * Protocol: a connection starts undecided; the first bytes choose v1 (a varint length prefix) or v2 (the magic,
 * then a hello). Server frames (acks, rejects, heartbeats, a goodbye) go through a small per-connection output
 * buffer; a reject needs room in it before its record is parsed, so a gateway that does not read its rejects stops
 * being read instead of growing memory. A sweep every 250 ms applies the idle timeout and sends heartbeats.
 *
 * TLS (opts.tls): an accepted connection starts in ST_TLS. Its first byte is peeked: anything but a TLS handshake
 * record (0x16) is plaintext and is refused; then SSL_do_handshake runs non-blocking on the socket's events. From
 * then on every read and write goes through conn_recv/conn_send (SSL_read/SSL_write), whose WANT_WRITE/WANT_READ
 * turn the other epoll direction on. Decrypted bytes OpenSSL holds beyond the read buffer raise no epoll event, so
 * a connection that stopped reading with such bytes is marked and read again at the end of the next poll. */
#include "ingest/gateway_server.h"

#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/hostport.h"
#include "common/log.h"
#include "ingest/gateway_tls.h"
#include "telepack/pack.h"
#include "telepack/varint.h"

#define EV_LISTEN 0u
#define EV_WAKE 1u
#define EV_CONN0 2u
/* A connection's epoll tag: slot + EV_CONN0 in the low half, its generation in the high half, so an event still
 * queued for a connection closed earlier in the same round never reaches a new one in the same slot. */
#define EV_TAG(s, c) (((uint64_t)(s)->slots[(c)->slot].generation << 32) | (EV_CONN0 + (c)->slot))
#define MAX_EVENTS 64
#define OUT_CAP 2048u          /* server frames not yet written, per connection */
#define OUT_RESERVE 160u       /* kept free for a goodbye; rejects need OUT_RESERVE + REJECT_MAX of room */
#define REJECT_MAX 140u        /* type + length + record number + code + reason (<= 120) */
#define REASON_MAX 120u
#define SWEEP_MS 250
#define CLOSE_GRACE_MS 2000    /* a closing connection's goodbye may take this long to leave */

enum { ST_NEW, ST_HELLO, ST_V1, ST_V2, ST_TLS };

typedef struct block {
    uint32_t count;
    uint32_t pending;
    uint64_t bytes;         /* wire bytes of its taken records */
} block;

typedef struct conn {
    int fd;
    uint32_t slot;
    uint8_t *buf;
    size_t len;             /* bytes buffered, buf[0..len) */
    int eof;                /* peer closed its side: only acks flow now */
    uint32_t events;        /* what epoll watches now */
    block *ring;
    uint32_t ring_cap;      /* power of two */
    uint32_t head_pos;      /* ring index of block head_no */
    uint32_t head_no;       /* block number of the oldest unacked block */
    uint32_t nblocks;
    int block_open;         /* the newest block still takes records */
    uint64_t received, acked, ack_sent;
    uint64_t unacked_bytes; /* wire bytes of taken records not yet acked */
    uint64_t window;        /* the gateway's window (bytes): what the v2 hello suggested, else an assumption */
    int quiet_armed;        /* took records since the last quiet report: in s->quiet */
    int stall_reported;     /* reported stalled; re-armed below a quarter of the window */
    int state;              /* ST_* */
    int closing;            /* goodbye or refusal queued: close once written (or after CLOSE_GRACE_MS) */
    int draining;           /* closing, all written, our side shut down: discard what still comes until the peer
                               closes (or CLOSE_GRACE_MS), so close() does not reset the connection before the
                               gateway has read our last frame */
    int out_blocked;        /* parsing stopped until the gateway reads our frames */
    int identity;           /* auth identity (-1: none) */
    void *auth_ctx;         /* ctx of find/allows for this connection (a reference when auth->acquire is set) */
    int local;              /* adopted with tp_gateway_server_add_trusted_fd: no authentication */
    SSL *ssl;               /* TLS session, or NULL */
    int tls_want_out;       /* the last SSL call needs the socket writable */
    int tls_want_in;        /* an SSL_write needs the socket readable */
    int tls_more;           /* OpenSSL holds decrypted bytes we did not read yet */
    uint32_t nrejected;     /* rejects of this connection (the first 10 are logged at warn) */
    uint64_t skip;          /* v2: bytes of a too large record still to skip */
    int64_t last_rx, last_tx, opened, closing_since;
    uint8_t family;         /* AF_INET / AF_INET6 / 0 for the per-address cap */
    uint8_t addr[16];
    uint8_t out[OUT_CAP];
    uint32_t out_len, out_off;
    int dirty;
    struct conn *dirty_next;
    char peer[256];         /* address, the certificate CN and the gateway id once known */
    char gw_id[65];
} conn;

typedef struct slot {
    conn *c;
    uint32_t generation;
} slot;

struct tp_gateway_server {
    tp_gateway_server_opts o;
    tp_gateway_record_fn on_record;
    void *ctx;
    int ep, lfd, wfd;
    int port;
    slot *slots;
    uint32_t nslots;
    uint32_t *free_slots;
    uint32_t nfree;
    uint32_t nconns;
    conn *dirty;
    int paused, stopped;
    uint64_t accepted, closed_err, records_in, bytes_in, acked, pending, pauses;
    uint64_t rejected[TP_GW_REJECT__COUNT], refused[TP_GW_REFUSE__COUNT], closed[TP_GW_CLOSE__COUNT];
    uint64_t heartbeats_in;
    uint64_t tls_sessions, tls_fail[TP_GW_TLS__COUNT];
    int tls_more;               /* some connection has tls_more set */
    uint32_t nv2;               /* connections past a v2 handshake */
    tp_gateway_sent_fn on_sent;
    tp_gateway_raw_fns raw;     /* records of a run-time schema: take bytes, not tp_record */
    const uint8_t *raw_msg;     /* the record conn_take offers to raw.take */
    size_t raw_len;
    uint64_t *quiet;            /* (generation << 32 | slot) of connections that took records since their last
                                   quiet report: checked for quiet_ms of silence after each round */
    uint32_t nquiet, quiet_cap;
    int64_t last_cap_log;
    int64_t now, last_sweep;    /* monotonic ms */
    int64_t wall_now;           /* wall clock ms, for the event-time check */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *tp_gw_reject_name(tp_gw_reject r)
{
    static const char *const n[] = {"none", "malformed", "too_large", "vehicle_not_allowed", "event_time"};
    return (unsigned)r < TP_GW_REJECT__COUNT ? n[r] : "unknown";
}

const char *tp_gw_refusal_name(tp_gw_refusal r)
{
    static const char *const n[] = {"ok", "unsupported_version", "bad_hello", "auth_required", "auth_failed",
                                    "shutting_down", "v1_not_allowed"};
    return (unsigned)r < TP_GW_REFUSE__COUNT ? n[r] : "unknown";
}

const char *tp_gw_tls_fail_name(tp_gw_tls_fail r)
{
    static const char *const n[] = {"plaintext", "tls_to_plain_port", "handshake", "client_certificate"};
    return (unsigned)r < TP_GW_TLS__COUNT ? n[r] : "unknown";
}

const char *tp_gw_close_name(tp_gw_close r)
{
    static const char *const n[] = {"idle_timeout", "per_ip_limit", "max_connections", "protocol_error",
                                    "refused", "io_error", "tls_error"};
    return (unsigned)r < TP_GW_CLOSE__COUNT ? n[r] : "unknown";
}

void tp_gateway_server_opts_init(tp_gateway_server_opts *o)
{
    o->listen = NULL;
    o->max_record_bytes = TP_DEFAULT_MAX_RECORD_BYTES;
    o->conn_buffer_bytes = 64u * 1024u;
    o->max_connections = 4096;
    o->block_records = 1024;
    o->max_conns_per_ip = 64;
    o->idle_timeout_ms = 60000;
    o->heartbeat_ms = 0;
    o->max_event_skew_ms = 3653ll * 86400 * 1000;
    o->batch_records = 200;
    o->linger_ms = 1000;
    o->max_window_bytes = 64u << 20;
    o->auth = NULL;
    o->tls = NULL;
    o->quiet_ms = 20;
}

void tp_gateway_server_on_sent(tp_gateway_server *s, tp_gateway_sent_fn fn)
{
    s->on_sent = fn;
}

void tp_gateway_server_on_raw(tp_gateway_server *s, const tp_gateway_raw_fns *fns)
{
    s->raw = *fns;
}

static void seterr(char *errbuf, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

tp_err tp_gateway_parse_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    uint16_t p;
    if (!port || !portlen)
        return TP_ERR_INVALID_ARG;
    tp_err e = tp_hostport_parse(s, host, hostlen, &p, NULL, 0);
    if (e)
        return e == TP_ERR_FULL ? TP_ERR_PARSE : e;
    if ((size_t)snprintf(port, portlen, "%u", (unsigned)p) >= portlen)
        return TP_ERR_PARSE;
    return TP_OK;
}

static int listen_on(const char *spec, int *port_out, char *errbuf, size_t errlen)
{
    char host[256], port[16];
    if (tp_gateway_parse_hostport(spec, host, sizeof host, port, sizeof port) != TP_OK) {
        seterr(errbuf, errlen, "listen address '%s' is not HOST:PORT; use e.g. 127.0.0.1:7070", spec);
        return -2;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc) {
        seterr(errbuf, errlen, "cannot resolve listen address '%s': %s", spec, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 512) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        seterr(errbuf, errlen, "cannot listen on '%s': %s; pick another --listen address or port", spec,
               strerror(saved));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *port_out = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

tp_err tp_gateway_server_new(const tp_gateway_server_opts *opts, tp_gateway_record_fn on_record, void *ctx,
                             tp_gateway_server **out, char *errbuf, size_t errlen)
{
    if (!out || !on_record)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_gateway_server *s = calloc(1, sizeof *s);
    if (!s)
        return TP_ERR_NOMEM;
    if (opts)
        s->o = *opts;
    else
        tp_gateway_server_opts_init(&s->o);
    if (s->o.max_record_bytes == 0)
        s->o.max_record_bytes = TP_DEFAULT_MAX_RECORD_BYTES;
    if (s->o.max_record_bytes > (1u << 20))
        s->o.max_record_bytes = 1u << 20; /* the v2 magic relies on it (docs/GATEWAY.md) */
    if (s->o.conn_buffer_bytes < s->o.max_record_bytes + 16)
        s->o.conn_buffer_bytes = s->o.max_record_bytes + 16;
    if (s->o.conn_buffer_bytes < TP_GW_HELLO_MAX + 16)
        s->o.conn_buffer_bytes = TP_GW_HELLO_MAX + 16;
    if (s->o.max_connections == 0)
        s->o.max_connections = 4096;
    if (s->o.block_records == 0)
        s->o.block_records = 1024;
    if (s->o.idle_timeout_ms < 0)
        s->o.idle_timeout_ms = 0;
    if (s->o.heartbeat_ms <= 0)
        s->o.heartbeat_ms = s->o.idle_timeout_ms ? s->o.idle_timeout_ms / 3 : 20000;
    if (s->o.heartbeat_ms < 10)
        s->o.heartbeat_ms = 10;
    if (s->o.batch_records == 0)
        s->o.batch_records = 200;
    if (s->o.max_window_bytes < 64u * 1024u)
        s->o.max_window_bytes = 64u * 1024u;
    s->now = s->last_sweep = mono_ms();
    s->wall_now = wall_ms();
    s->on_record = on_record;
    s->ctx = ctx;
    s->lfd = s->wfd = -1;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    s->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->ep < 0 || s->wfd < 0) {
        seterr(errbuf, errlen, "cannot create epoll/eventfd: %s", strerror(errno));
        tp_gateway_server_free(s);
        return TP_ERR_IO;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_WAKE};
    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wfd, &ev);
    if (s->o.listen) {
        int lfd = listen_on(s->o.listen, &s->port, errbuf, errlen);
        if (lfd < 0) {
            tp_gateway_server_free(s);
            return lfd == -2 ? TP_ERR_INVALID_ARG : TP_ERR_IO;
        }
        s->lfd = lfd;
        ev.events = EPOLLIN;
        ev.data.u64 = EV_LISTEN;
        epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev);
    }
    *out = s;
    return TP_OK;
}

static void conn_free(tp_gateway_server *s, conn *c)
{
    if (c->ssl) {
        if (c->state != ST_TLS && !c->draining) { /* best effort close_notify; never blocks */
            ERR_clear_error();
            SSL_shutdown(c->ssl);
        }
        ERR_clear_error();
        SSL_free(c->ssl);
    }
    if (c->auth_ctx && s->o.auth && s->o.auth->release)
        s->o.auth->release(s->o.auth->ctx, c->auth_ctx);
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    s->slots[c->slot].c = NULL;
    s->slots[c->slot].generation++;
    s->free_slots[s->nfree++] = c->slot;
    s->nconns--;
    if (c->state == ST_V2)
        s->nv2--;
    if (c->dirty) { /* unlink from the dirty list */
        for (conn **pp = &s->dirty; *pp; pp = &(*pp)->dirty_next)
            if (*pp == c) {
                *pp = c->dirty_next;
                break;
            }
    }
    free(c->ring);
    free(c->buf);
    free(c);
}

void tp_gateway_server_free(tp_gateway_server *s)
{
    if (!s)
        return;
    tp_gateway_server_close_all(s);
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->wfd >= 0)
        close(s->wfd);
    if (s->ep >= 0)
        close(s->ep);
    free(s->slots);
    free(s->free_slots);
    free(s->quiet);
    free(s);
}

int tp_gateway_server_port(const tp_gateway_server *s)
{
    return s->port;
}

static void conn_close(tp_gateway_server *s, conn *c, int error, const char *why)
{
    uint64_t unacked = c->received - c->acked;
    s->pending -= unacked;
    if (error) {
        s->closed_err++;
        tp_log(TP_LOG_WARN, "gateway", "closing connection from %s: %s (%llu records received, %llu acked)",
               c->peer, why, (unsigned long long)c->received, (unsigned long long)c->acked);
    } else {
        tp_log(TP_LOG_DEBUG, "gateway", "connection from %s closed: %s (%llu records, %llu unacked)", c->peer, why,
               (unsigned long long)c->received, (unsigned long long)unacked);
    }
    conn_free(s, c);
}

/* Closes c at once for `reason` (counted), logging why. */
static void conn_fail(tp_gateway_server *s, conn *c, tp_gw_close reason, const char *why)
{
    s->closed[reason]++;
    conn_close(s, c, 1, why);
}

static int conn_reading(const tp_gateway_server *s, const conn *c)
{
    return !s->paused && !s->stopped && !c->eof && !c->closing && !c->out_blocked;
}

static void conn_update_events(tp_gateway_server *s, conn *c)
{
    uint32_t want = (conn_reading(s, c) || c->tls_want_in || c->draining ? EPOLLIN | EPOLLRDHUP : 0) |
                    (c->out_off < c->out_len || c->tls_want_out ? EPOLLOUT : 0);
    if (want == c->events)
        return;
    struct epoll_event ev = {.events = want, .data.u64 = EV_TAG(s, c)};
    epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = want;
}

static void update_all_events(tp_gateway_server *s)
{
    for (uint32_t i = 0; i < s->nslots; i++)
        if (s->slots[i].c)
            conn_update_events(s, s->slots[i].c);
}

/* ---- socket I/O, plain or TLS ---- */

/* Reads up to n bytes: > 0 bytes read, 0 end of stream, -1 nothing now, -2 failed (why says why). */
static ssize_t conn_recv(conn *c, void *buf, size_t n, char *why, size_t wl)
{
    if (!c->ssl) {
        ssize_t r = read(c->fd, buf, n);
        if (r >= 0)
            return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return -1;
        snprintf(why, wl, "read failed: %s", strerror(errno));
        return -2;
    }
    c->tls_want_out = 0;
    ERR_clear_error();
    int r = SSL_read(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ: return -1;
    case SSL_ERROR_WANT_WRITE: c->tls_want_out = 1; return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default: break;
    }
    char t[200];
    tp_tls_error_text(c->ssl, r, t, sizeof t);
    snprintf(why, wl, "TLS read failed: %s", t);
    return -2;
}

/* Writes up to n (> 0) bytes: >= 0 bytes written, -1 nothing now, -2 failed (why says why). */
static ssize_t conn_send(conn *c, const void *buf, size_t n, char *why, size_t wl)
{
    if (!c->ssl) {
        ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r >= 0)
            return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return -1;
        snprintf(why, wl, "sending to the gateway failed: %s", strerror(errno));
        return -2;
    }
    c->tls_want_in = 0;
    c->tls_want_out = 0;
    ERR_clear_error();
    int r = SSL_write(c->ssl, buf, (int)n);
    if (r > 0)
        return r;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_WRITE: return -1;
    case SSL_ERROR_WANT_READ: c->tls_want_in = 1; return -1;
    default: break;
    }
    char t[200];
    tp_tls_error_text(c->ssl, r, t, sizeof t);
    snprintf(why, wl, "sending to the gateway over TLS failed: %s", t);
    return -2;
}

/* ---- the output buffer: server frames ---- */

static size_t out_free(conn *c)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_off && c->out_len + 64 > OUT_CAP) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    return OUT_CAP - (c->out_len - c->out_off) - c->out_off;
}

/* Appends a frame: type, varint length, a[0..an), text[0..tn). The caller made sure it fits. */
static void out_frame(conn *c, uint8_t type, const uint8_t *a, size_t an, const char *text, size_t tn)
{
    if (out_free(c) < 1 + TP_VARINT_MAX_BYTES + an + tn) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    uint8_t *p = c->out + c->out_len;
    *p++ = type;
    p += tp_varint_encode(an + tn, p);
    if (an)
        memcpy(p, a, an);
    p += an;
    if (tn)
        memcpy(p, text, tn);
    p += tn;
    c->out_len = (uint32_t)(p - c->out);
}

static size_t out_used(const conn *c)
{
    return c->out_len - c->out_off;
}

/* Queues the ack if it advanced and fits. */
static void out_ack(conn *c)
{
    if (c->acked <= c->ack_sent || c->closing)
        return;
    if (OUT_CAP - out_used(c) < 1 + 1 + TP_VARINT_MAX_BYTES)
        return;
    uint8_t v[TP_VARINT_MAX_BYTES];
    size_t n = tp_varint_encode(c->acked, v);
    if (c->state == ST_V2) {
        out_frame(c, TP_GW_FRAME_ACK, v, n, NULL, 0);
    } else {
        out_free(c);
        if (OUT_CAP - c->out_len < n) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        memcpy(c->out + c->out_len, v, n);
        c->out_len += (uint32_t)n;
    }
    c->ack_sent = c->acked;
}

static int conn_parse(tp_gateway_server *s, conn *c);
static void seal(tp_gateway_server *s, conn *c);

/* Parses what c has buffered and seals the block; -1 if c was closed. */
static int conn_parse_seal(tp_gateway_server *s, conn *c)
{
    if (conn_parse(s, c) != 0)
        return -1;
    seal(s, c);
    if (s->paused) /* backpressure: stop reading every connection */
        update_all_events(s);
    return 0;
}

/* Writes c's queued frames (and its latest ack); returns -1 if c was closed. */
static int conn_flush_out(tp_gateway_server *s, conn *c)
{
    for (;;) {
        out_ack(c);
        if (c->out_off == c->out_len)
            break;
        char why[256];
        ssize_t n = conn_send(c, c->out + c->out_off, c->out_len - c->out_off, why, sizeof why);
        if (n == -1)
            break;
        if (n < 0) {
            if (c->eof || c->closing)
                conn_close(s, c, 0, why);
            else
                conn_fail(s, c, TP_GW_CLOSE_IO, why);
            return -1;
        }
        c->out_off += (uint32_t)n;
        c->last_tx = s->now;
    }
    if (c->out_off == c->out_len) {
        if (c->closing && !c->draining) {
            c->draining = 1;
            if (c->ssl && c->state != ST_TLS) { /* close_notify first; conn_free does not repeat it */
                ERR_clear_error();
                SSL_shutdown(c->ssl);
            }
            shutdown(c->fd, SHUT_WR);
        }
        if (c->eof && c->acked == c->received) {
            conn_close(s, c, 0, "end of stream, everything acked");
            return -1;
        }
    }
    if (c->out_blocked && OUT_CAP - out_used(c) >= OUT_RESERVE + REJECT_MAX) {
        c->out_blocked = 0;
        c->last_rx = s->now; /* we did not read it meanwhile: its silence was ours */
        if (c->len && conn_reading(s, c) && conn_parse_seal(s, c) != 0)
            return -1;
    }
    conn_update_events(s, c);
    return 0;
}

/* v2: queues a GOODBYE (after the latest ack), stops reading and closes once it is written. Counted and logged.
 * Returns -1 if c was closed already. */
static int conn_goodbye(tp_gateway_server *s, conn *c, tp_gw_goodbye code, tp_gw_close reason, const char *why)
{
    s->closed[reason]++;
    s->closed_err++;
    tp_log(TP_LOG_WARN, "gateway", "closing connection from %s: %s (%llu records received, %llu acked)", c->peer,
           why, (unsigned long long)c->received, (unsigned long long)c->acked);
    if (c->state == ST_V2 && !c->closing) {
        out_ack(c);
        uint8_t v[TP_VARINT_MAX_BYTES];
        size_t n = tp_varint_encode((uint64_t)code, v);
        size_t tl = strlen(why);
        size_t room = OUT_CAP - out_used(c);
        if (room >= 1 + 2 + n) {
            if (tl > REASON_MAX)
                tl = REASON_MAX;
            if (tl > room - (1 + 2 + n))
                tl = room - (1 + 2 + n);
            out_frame(c, TP_GW_FRAME_GOODBYE, v, n, why, tl);
        }
    }
    c->closing = 1;
    c->closing_since = s->now;
    c->len = 0;
    return conn_flush_out(s, c);
}

static size_t pb_varint(uint8_t *p, unsigned field, uint64_t v)
{
    size_t n = tp_varint_encode((uint64_t)field << 3, p);
    return n + tp_varint_encode(v, p + n);
}

/* Queues a ServerHello: magic, version, length, body. */
static void out_hello(conn *c, const uint8_t *body, size_t blen)
{
    out_free(c);
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
    uint8_t *p = c->out + c->out_len;
    *p++ = TP_GW_MAGIC0;
    *p++ = TP_GW_MAGIC1;
    *p++ = TP_GW_MAGIC2;
    *p++ = TP_GW_MAGIC3;
    *p++ = TP_GW_VERSION;
    p += tp_varint_encode(blen, p);
    memcpy(p, body, blen);
    p += blen;
    c->out_len = (uint32_t)(p - c->out);
}

/* Refuses a handshake: a ServerHello with the status and reason, then close. -1 if c was closed. */
static int conn_refuse(tp_gateway_server *s, conn *c, tp_gw_refusal code, const char *why)
{
    s->refused[code]++;
    s->closed[TP_GW_CLOSE_REFUSED]++;
    s->closed_err++;
    tp_log(TP_LOG_WARN, "gateway", "refusing the handshake of %s: %s (%s)", c->peer, why, tp_gw_refusal_name(code));
    uint8_t body[8 + REASON_MAX + 8];
    size_t n = pb_varint(body, 1, (uint64_t)code);
    size_t tl = strlen(why);
    if (tl > REASON_MAX)
        tl = REASON_MAX;
    body[n++] = (2 << 3) | 2;
    n += tp_varint_encode(tl, body + n);
    memcpy(body + n, why, tl);
    n += tl;
    out_hello(c, body, n);
    c->closing = 1;
    c->closing_since = s->now;
    c->len = 0;
    return conn_flush_out(s, c);
}

/* ---- connections ---- */

enum { ADD_ADOPTED, ADD_ACCEPTED, ADD_TRUSTED };
static tp_err add_conn(tp_gateway_server *s, int fd, int how);

tp_err tp_gateway_server_add_fd(tp_gateway_server *s, int fd)
{
    if (!s || fd < 0)
        return TP_ERR_INVALID_ARG;
    return add_conn(s, fd, ADD_ADOPTED);
}

tp_err tp_gateway_server_add_trusted_fd(tp_gateway_server *s, int fd)
{
    if (!s || fd < 0)
        return TP_ERR_INVALID_ARG;
    return add_conn(s, fd, ADD_TRUSTED);
}

/* Sockets we accepted may start with TLS; adopted ones are plain. */
static tp_err add_conn(tp_gateway_server *s, int fd, int how)
{
    if (s->nconns >= s->o.max_connections) {
        s->closed[TP_GW_CLOSE_MAX_CONNS]++;
        if (s->now - s->last_cap_log >= 1000) {
            s->last_cap_log = s->now;
            tp_log(TP_LOG_WARN, "gateway", "refusing a connection: %u connections already open (the maximum)",
                   s->nconns);
        }
        close(fd);
        return TP_ERR_FULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    uint8_t family = 0, addr[16] = {0};
    char peer[64];
    snprintf(peer, sizeof peer, "fd %d", fd);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 && (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
        char h[48], p[8];
        if (getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, p, sizeof p, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            snprintf(peer, sizeof peer, "%s:%s", h, p);
        family = (uint8_t)ss.ss_family;
        if (family == AF_INET)
            memcpy(addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        else
            memcpy(addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    }
    if (family && s->o.max_conns_per_ip) {
        uint32_t same = 0;
        for (uint32_t i = 0; i < s->nslots; i++) {
            const conn *o = s->slots[i].c;
            same += o && o->family == family && !memcmp(o->addr, addr, sizeof addr);
        }
        if (same >= s->o.max_conns_per_ip) {
            s->closed[TP_GW_CLOSE_PER_IP]++;
            if (s->now - s->last_cap_log >= 1000) {
                s->last_cap_log = s->now;
                tp_log(TP_LOG_WARN, "gateway",
                       "refusing a connection from %s: %u connections from that address already open "
                       "(--max-conns-per-ip)",
                       peer, same);
            }
            close(fd);
            return TP_ERR_FULL;
        }
    }
    if (s->nfree == 0) { /* grow the slot table */
        uint32_t n = s->nslots ? s->nslots * 2 : 64;
        slot *ns = realloc(s->slots, n * sizeof *ns);
        if (!ns) {
            close(fd);
            return TP_ERR_NOMEM;
        }
        s->slots = ns;
        uint32_t *nf = realloc(s->free_slots, n * sizeof *nf);
        if (!nf) {
            close(fd);
            return TP_ERR_NOMEM;
        }
        s->free_slots = nf;
        for (uint32_t i = n; i > s->nslots; i--) {
            s->slots[i - 1] = (slot){NULL, 0};
            s->free_slots[s->nfree++] = i - 1;
        }
        s->nslots = n;
    }
    conn *c = calloc(1, sizeof *c);
    if (c) {
        c->buf = malloc(s->o.conn_buffer_bytes);
        c->ring_cap = 16;
        c->ring = malloc(c->ring_cap * sizeof *c->ring);
    }
    if (!c || !c->buf || !c->ring) {
        if (c) {
            free(c->buf);
            free(c->ring);
        }
        free(c);
        close(fd);
        return TP_ERR_NOMEM;
    }
    int fl = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &fl, sizeof fl); /* acks are tiny: send them now (fails on AF_UNIX) */
    memcpy(c->peer, peer, sizeof peer);
    c->family = family;
    memcpy(c->addr, addr, sizeof addr);
    c->identity = -1;
    c->local = how == ADD_TRUSTED;
    c->window = c->local ? s->o.max_window_bytes : 4u << 20; /* the replay's window; v1: the client's default */
    if (how == ADD_ACCEPTED && s->o.tls)
        c->state = ST_TLS;
    c->opened = c->last_rx = c->last_tx = s->now;
    c->fd = fd;
    c->slot = s->free_slots[--s->nfree];
    s->slots[c->slot].c = c;
    s->nconns++;
    s->accepted++;
    c->events = conn_reading(s, c) ? EPOLLIN | EPOLLRDHUP : 0;
    struct epoll_event ev = {.events = c->events, .data.u64 = EV_TAG(s, c)};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        tp_log(TP_LOG_ERROR, "gateway", "epoll_ctl failed for %s: %s", c->peer, strerror(errno));
        conn_free(s, c);
        return TP_ERR_IO;
    }
    tp_log(TP_LOG_DEBUG, "gateway", "connection from %s", c->peer);
    return TP_OK;
}

static void do_accept(tp_gateway_server *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                tp_log(TP_LOG_WARN, "gateway", "accept failed: %s", strerror(errno));
            return;
        }
        add_conn(s, fd, ADD_ACCEPTED);
    }
}

static block *ring_at(const conn *c, uint32_t idx)
{
    return &c->ring[(c->head_pos + idx) & (c->ring_cap - 1)];
}

static int ring_reserve(conn *c)
{
    if (c->nblocks == c->ring_cap) {
        uint32_t n = c->ring_cap * 2;
        block *r = malloc(n * sizeof *r);
        if (!r)
            return -1;
        for (uint32_t i = 0; i < c->nblocks; i++)
            r[i] = *ring_at(c, i);
        free(c->ring);
        c->ring = r;
        c->ring_cap = n;
        c->head_pos = 0;
    }
    return 0;
}

/* Opens a new block; ring_reserve must have made room. */
static void ring_push(conn *c)
{
    *ring_at(c, c->nblocks) = (block){0, 0, 0};
    c->nblocks++;
    c->block_open = 1;
}

static void mark_dirty(tp_gateway_server *s, conn *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        c->dirty_next = s->dirty;
        s->dirty = c;
    }
}

/* Pops every completed sealed block off the head and advances the ack. */
static void advance(tp_gateway_server *s, conn *c)
{
    while (c->nblocks > 0 && !(c->nblocks == 1 && c->block_open)) {
        block *h = ring_at(c, 0);
        if (h->pending)
            break;
        c->acked += h->count;
        c->unacked_bytes -= h->bytes;
        s->acked += h->count;
        s->pending -= h->count;
        c->head_pos = (c->head_pos + 1) & (c->ring_cap - 1);
        c->head_no++;
        c->nblocks--;
    }
    if (c->acked > c->ack_sent || (c->eof && c->acked == c->received))
        mark_dirty(s, c);
    if (c->stall_reported && c->unacked_bytes < c->window / 4)
        c->stall_reported = 0;
}

static void seal(tp_gateway_server *s, conn *c)
{
    if (c->block_open) {
        c->block_open = 0;
        advance(s, c);
    }
}

/* The block the next record joins; opens one if needed. NULL (c closed) when out of memory. */
static int next_block(tp_gateway_server *s, conn *c, int *fresh, uint32_t *no)
{
    uint32_t next_no = c->head_no + c->nblocks;
    *fresh = !(c->block_open && ring_at(c, c->nblocks - 1)->count < s->o.block_records);
    *no = *fresh ? next_no : next_no - 1;
    if (*fresh && ring_reserve(c) != 0) { /* the push must not fail once the record is taken */
        conn_fail(s, c, TP_GW_CLOSE_IO, "out of memory");
        return -1;
    }
    return 0;
}

/* Offers r to the callback. 0 taken, 1 refused for now (backpressure: paused), -1 c closed. */
static int conn_take(tp_gateway_server *s, conn *c, const tp_record *r, size_t wire_len)
{
    int fresh;
    uint32_t no;
    if (next_block(s, c, &fresh, &no) != 0)
        return -1;
    tp_batch_tag tag = {c->slot, s->slots[c->slot].generation, no, 1};
    tp_err e = s->raw.take ? s->raw.take(s->ctx, s->raw_msg, s->raw_len, wire_len, &tag)
                           : s->on_record(s->ctx, r, wire_len, &tag);
    if (e == TP_ERR_AGAIN) {
        s->paused = 1;
        s->pauses++;
        return 1;
    }
    if (e) {
        char why[160];
        snprintf(why, sizeof why, "record %llu could not be taken: %s", (unsigned long long)c->received + 1,
                 tp_strerror(e));
        conn_fail(s, c, TP_GW_CLOSE_IO, why);
        return -1;
    }
    if (fresh)
        ring_push(c);
    block *b = ring_at(c, c->nblocks - 1);
    b->count++;
    b->pending++;
    b->bytes += wire_len;
    c->unacked_bytes += wire_len;
    c->received++;
    s->pending++;
    s->records_in++;
    s->bytes_in += wire_len;
    if (s->on_sent) {
        if (!c->quiet_armed && s->o.quiet_ms > 0) {
            if (s->nquiet == s->quiet_cap) {
                uint32_t n = s->quiet_cap ? s->quiet_cap * 2 : 64;
                uint64_t *q = realloc(s->quiet, n * sizeof *q);
                if (q) {
                    s->quiet = q;
                    s->quiet_cap = n;
                }
            }
            if (s->nquiet < s->quiet_cap) { /* out of memory: this quiet period goes unreported (linger) */
                s->quiet[s->nquiet++] = (uint64_t)s->slots[c->slot].generation << 32 | c->slot;
                c->quiet_armed = 1;
            }
        }
        if (!c->stall_reported && c->unacked_bytes >= c->window / 2) {
            c->stall_reported = 1;
            s->on_sent(s->ctx, c->slot, s->slots[c->slot].generation, 1);
        }
    }
    return 0;
}

/* After a round: connections that took records and then sent nothing for quiet_ms (reading not paused by us). */
static void check_quiet(tp_gateway_server *s)
{
    uint32_t keep = 0;
    for (uint32_t i = 0; i < s->nquiet; i++) {
        uint32_t sl = (uint32_t)s->quiet[i], gen = (uint32_t)(s->quiet[i] >> 32);
        conn *c = sl < s->nslots && s->slots[sl].generation == gen ? s->slots[sl].c : NULL;
        if (!c)
            continue; /* closed */
        if (s->paused || s->now - c->last_rx < s->o.quiet_ms) {
            s->quiet[keep++] = s->quiet[i];
            continue;
        }
        c->quiet_armed = 0;
        if (c->acked < c->received)
            s->on_sent(s->ctx, sl, gen, 0);
    }
    s->nquiet = keep;
}

/* v2: sets record c->received + 1 aside and tells the gateway (the caller made room). -1 if c was closed. */
static int conn_reject(tp_gateway_server *s, conn *c, tp_gw_reject code, const char *why)
{
    int fresh;
    uint32_t no;
    if (next_block(s, c, &fresh, &no) != 0)
        return -1;
    if (fresh)
        ring_push(c);
    ring_at(c, c->nblocks - 1)->count++; /* settled at once: nothing pending */
    c->received++;
    s->pending++;
    s->rejected[code]++;
    uint8_t p[2 * TP_VARINT_MAX_BYTES];
    size_t n = tp_varint_encode(c->received, p);
    n += tp_varint_encode((uint64_t)code, p + n);
    size_t tl = strlen(why);
    if (tl > REASON_MAX)
        tl = REASON_MAX;
    out_frame(c, TP_GW_FRAME_REJECT, p, n, why, tl);
    c->nrejected++;
    tp_log(c->nrejected <= 10 ? TP_LOG_WARN : TP_LOG_DEBUG, "gateway",
           "rejected record %llu from %s: %s (%s)%s", (unsigned long long)c->received, c->peer, why,
           tp_gw_reject_name(code), c->nrejected == 10 ? "; further rejects of this connection are logged at debug" : "");
    return 0;
}

/* A record of a run-time schema: checked by raw.check (a reject, v2, or the connection closed, v1), the token's
 * vehicles checked, then offered as conn_take offers a decoded one. 0 taken or rejected, 1 refused for now, -1 c
 * closed. */
static int conn_take_raw(tp_gateway_server *s, conn *c, const uint8_t *msg, size_t len, size_t wire_len, int v1)
{
    char why[REASON_MAX + 1] = "";
    int has_id = 0;
    uint64_t id = 0;
    int code = s->raw.check(s->ctx, msg, len, &has_id, &id, why, sizeof why);
    if (!code && s->o.auth && s->o.auth->allows && c->identity >= 0 &&
        !(has_id ? s->o.auth->allows(c->auth_ctx, c->identity, id)
                 : s->o.auth->allows(c->auth_ctx, c->identity, 0) &&
                       s->o.auth->allows(c->auth_ctx, c->identity, UINT64_MAX))) {
        code = TP_GW_REJECT_VEHICLE;
        snprintf(why, sizeof why, "%s", has_id ? "the vehicle is not allowed for this gateway's credentials"
                                               : "a string key needs credentials for every vehicle");
    }
    if (code) {
        if (code < 1 || code >= TP_GW_REJECT__COUNT)
            code = TP_GW_REJECT_MALFORMED;
        if (!v1)
            return conn_reject(s, c, (tp_gw_reject)code, why) ? -1 : 0;
        char m[300];
        snprintf(m, sizeof m, "record %llu is refused: %s", (unsigned long long)c->received + 1, why);
        s->rejected[code]++;
        conn_fail(s, c, TP_GW_CLOSE_PROTOCOL, m);
        return -1;
    }
    s->raw_msg = msg;
    s->raw_len = len;
    return conn_take(s, c, NULL, wire_len);
}

static int hello_id_ok(const uint8_t *p, size_t n)
{
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == ':' || ch == '/' || ch == '-'))
            return 0;
    }
    return 1;
}

/* Parses a gateway hello after the magic: version byte, varint length, GatewayHello. 0: incomplete; 1: accepted
 * (*used bytes consumed); -1: refused (c closing or closed; *closed set when closed). */
static int conn_hello(tp_gateway_server *s, conn *c, const uint8_t *p, size_t avail, size_t *used, int *closed)
{
    *closed = 0;
    if (avail < 1)
        return 0;
    uint64_t blen;
    size_t h;
    tp_err ve = tp_varint_decode(p + 1, avail - 1, &blen, &h);
    if (ve == TP_ERR_TRUNCATED)
        return 0;
    char why[200];
    if (ve || blen > TP_GW_HELLO_MAX) {
        snprintf(why, sizeof why, "the hello's length is not a varint of at most %u", TP_GW_HELLO_MAX);
        *closed = conn_refuse(s, c, TP_GW_REFUSE_BAD_HELLO, why) != 0;
        return -1;
    }
    if (1 + h + blen > avail)
        return 0;
    *used = 1 + h + (size_t)blen;
    if (p[0] < TP_GW_VERSION) {
        snprintf(why, sizeof why, "protocol version %u is not supported; this server speaks version %u", p[0],
                 TP_GW_VERSION);
        *closed = conn_refuse(s, c, TP_GW_REFUSE_VERSION, why) != 0;
        return -1;
    }
    const uint8_t *b = p + 1 + h, *end = b + blen, *tok = NULL, *id = NULL;
    size_t toklen = 0, idlen = 0;
    uint64_t vehicles = 0;
    const char *bad = NULL;
    while (b < end && !bad) {
        uint64_t key, v;
        size_t u;
        if (tp_varint_decode(b, (size_t)(end - b), &key, &u) != TP_OK) {
            bad = "a field key is not a varint";
            break;
        }
        b += u;
        unsigned wt = (unsigned)(key & 7);
        uint64_t field = key >> 3;
        const uint8_t *val = b;
        if (wt == 0 || wt == 2) {
            if (tp_varint_decode(b, (size_t)(end - b), &v, &u) != TP_OK) {
                bad = "a field value is not a varint";
                break;
            }
            b += u;
            if (wt == 2) {
                if (v > (uint64_t)(end - b)) {
                    bad = "a field is longer than the hello";
                    break;
                }
                val = b;
                b += v;
            }
        } else if (wt == 1 || wt == 5) {
            size_t k = wt == 1 ? 8 : 4;
            if ((size_t)(end - b) < k) {
                bad = "a fixed-size field is cut off";
                break;
            }
            b += k;
            v = 0;
        } else {
            bad = "a field has wire type 3, 4, 6 or 7";
            break;
        }
        if (field == 1 || field == 2) {
            if (wt != 2) {
                bad = "token or gateway_id is not length-delimited";
            } else if (field == 1) {
                tok = val;
                toklen = (size_t)v;
            } else {
                id = val;
                idlen = (size_t)v;
            }
        } else if (field == 3) {
            if (wt != 0)
                bad = "vehicles is not a varint";
            else
                vehicles = v;
        }
    }
    if (!bad && id && !hello_id_ok(id, idlen))
        bad = "gateway_id must be 1..64 characters of A-Z a-z 0-9 . _ : / -";
    if (bad) {
        snprintf(why, sizeof why, "malformed hello: %s", bad);
        *closed = conn_refuse(s, c, TP_GW_REFUSE_BAD_HELLO, why) != 0;
        return -1;
    }
    if (id) {
        memcpy(c->gw_id, id, idlen);
        c->gw_id[idlen] = 0;
        size_t pl = strlen(c->peer);
        snprintf(c->peer + pl, sizeof c->peer - pl, " (gateway %s)", c->gw_id);
    }
    if (s->o.auth && !c->local) {
        if (!tok || !toklen) {
            *closed = conn_refuse(s, c, TP_GW_REFUSE_AUTH_REQUIRED,
                                  "this server requires authentication: send a token in the hello") != 0;
            return -1;
        }
        if (!c->auth_ctx)
            c->auth_ctx = s->o.auth->acquire ? s->o.auth->acquire(s->o.auth->ctx) : s->o.auth->ctx;
        c->identity = s->o.auth->find(c->auth_ctx, (const char *)tok, toklen);
        if (c->identity < 0) {
            *closed = conn_refuse(s, c, TP_GW_REFUSE_AUTH_FAILED, "unknown token") != 0;
            return -1;
        }
    }
    /* the suggested window: a batch per vehicle in flight, within 64 KiB .. max_window_bytes */
    if (vehicles == 0)
        vehicles = 64;
    if (vehicles > 1000000000u)
        vehicles = 1000000000u;
    uint64_t wb = vehicles * s->o.batch_records * 100u;
    if (wb < 64u * 1024u)
        wb = 64u * 1024u;
    if (wb > s->o.max_window_bytes)
        wb = s->o.max_window_bytes;
    uint8_t body[128];
    size_t n = 0;
    n += pb_varint(body + n, 1, 0);
    n += pb_varint(body + n, 3, s->o.max_record_bytes);
    n += pb_varint(body + n, 4, wb / 100u);
    n += pb_varint(body + n, 5, wb);
    n += pb_varint(body + n, 6, s->o.batch_records);
    n += pb_varint(body + n, 7, s->o.linger_ms);
    n += pb_varint(body + n, 8, (uint64_t)s->o.heartbeat_ms);
    n += pb_varint(body + n, 9, (uint64_t)s->o.idle_timeout_ms);
    out_hello(c, body, n);
    c->window = wb;
    c->state = ST_V2;
    s->nv2++;
    tp_log(TP_LOG_DEBUG, "gateway", "protocol v2 session with %s", c->peer);
    return 1;
}

/* A TLS ClientHello on a port without TLS: answer with a plaintext TLS alert (fatal, handshake_failure), so the
 * client's TLS library reports a failure at once instead of waiting, then close. -1 if c was closed. */
static int conn_tls_to_plain(tp_gateway_server *s, conn *c)
{
    static const uint8_t alert[7] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};
    s->tls_fail[TP_GW_TLS_TO_PLAIN]++;
    s->closed[TP_GW_CLOSE_TLS]++;
    s->closed_err++;
    tp_log(TP_LOG_WARN, "gateway",
           "closing connection from %s: it started a TLS handshake on a port without TLS; give the ingest "
           "--tls-cert/--tls-key, or connect without TLS", c->peer);
    out_free(c);
    memcpy(c->out + c->out_len, alert, sizeof alert);
    c->out_len += sizeof alert;
    c->closing = 1;
    c->closing_since = s->now;
    c->len = 0;
    return conn_flush_out(s, c);
}

/* Offers every complete frame in c's buffer. Returns 0, or -1 if c was closed. */
static int conn_parse(tp_gateway_server *s, conn *c)
{
    static const uint8_t magic[4] = {TP_GW_MAGIC0, TP_GW_MAGIC1, TP_GW_MAGIC2, TP_GW_MAGIC3};
    size_t pos = 0;
    char why[200];
    while (!s->paused && !c->closing && !c->out_blocked && pos < c->len) {
        const uint8_t *p = c->buf + pos;
        size_t avail = c->len - pos;
        if (c->skip) { /* the rest of a too large record */
            size_t n = avail < c->skip ? avail : (size_t)c->skip;
            c->skip -= n;
            pos += n;
            continue;
        }
        if (c->state == ST_NEW) {
            size_t k = 0;
            while (k < avail && k < 4 && p[k] == magic[k])
                k++;
            if (k == 4) {
                c->state = ST_HELLO;
                pos += 4;
                continue;
            }
            if (k == avail)
                break; /* a prefix of the magic so far */
            if (p[0] == 0x16 && !c->ssl) { /* a TLS record header (handshake, version 3.x)? */
                if (avail < 2)
                    break;
                if (p[1] == 0x03) /* never a v1 record: its first byte would be protobuf field 0 */
                    return conn_tls_to_plain(s, c) ? -1 : 0;
            }
            if (s->o.auth && !c->local) {
                s->refused[TP_GW_REFUSE_V1]++;
                conn_fail(s, c, TP_GW_CLOSE_REFUSED,
                          "protocol v1 (no handshake) is refused because authentication is required; the gateway "
                          "must speak protocol v2 with a token");
                return -1;
            }
            c->state = ST_V1;
            continue;
        }
        if (c->state == ST_HELLO) {
            size_t used = 0;
            int closed;
            int r = conn_hello(s, c, p, avail, &used, &closed);
            if (r == 0)
                break;
            if (r < 0)
                return closed ? -1 : 0;
            pos += used;
            continue;
        }
        if (c->state == ST_V1) {
            uint64_t v;
            size_t h;
            tp_err ve = tp_varint_decode(p, avail, &v, &h);
            if (ve == TP_ERR_TRUNCATED)
                break;
            if (ve) {
                snprintf(why, sizeof why, "length prefix of record %llu is not a varint of at most 10 bytes",
                         (unsigned long long)c->received + 1);
                conn_fail(s, c, TP_GW_CLOSE_PROTOCOL, why);
                return -1;
            }
            if (v > s->o.max_record_bytes) {
                snprintf(why, sizeof why, "record %llu has length prefix %llu, above the maximum record size %zu",
                         (unsigned long long)c->received + 1, (unsigned long long)v, s->o.max_record_bytes);
                s->rejected[TP_GW_REJECT_TOO_LARGE]++;
                conn_fail(s, c, TP_GW_CLOSE_PROTOCOL, why);
                return -1;
            }
            if (h + v > avail)
                break;
            if (s->raw.take) { /* a run-time schema */
                int t = conn_take_raw(s, c, p + h, (size_t)v, h + (size_t)v, 1);
                if (t < 0)
                    return -1;
                if (t > 0)
                    break;
                pos += h + (size_t)v;
                continue;
            }
            tp_record r;
            tp_err e = tp_record_decode(p + h, (size_t)v, &r);
            if (e) {
                snprintf(why, sizeof why, "record %llu (%llu bytes) is not a VehicleRecord: %s",
                         (unsigned long long)c->received + 1, (unsigned long long)v, tp_strerror(e));
                s->rejected[TP_GW_REJECT_MALFORMED]++;
                conn_fail(s, c, TP_GW_CLOSE_PROTOCOL, why);
                return -1;
            }
            int t = conn_take(s, c, &r, h + (size_t)v);
            if (t < 0)
                return -1;
            if (t > 0)
                break;
            pos += h + (size_t)v;
            continue;
        }
        /* ST_V2: [type][varint length][payload] */
        uint64_t v;
        size_t h;
        tp_err ve = tp_varint_decode(p + 1, avail - 1, &v, &h);
        if (ve == TP_ERR_TRUNCATED)
            break;
        if (ve) {
            snprintf(why, sizeof why, "protocol error: the length of frame %llu+ is not a varint of at most 10 bytes",
                     (unsigned long long)c->received + 1);
            return conn_goodbye(s, c, TP_GW_BYE_PROTOCOL, TP_GW_CLOSE_PROTOCOL, why) ? -1 : 0;
        }
        if (p[0] == TP_GW_FRAME_HEARTBEAT) {
            if (v != 0)
                return conn_goodbye(s, c, TP_GW_BYE_PROTOCOL, TP_GW_CLOSE_PROTOCOL,
                                    "protocol error: a heartbeat frame with a payload") ? -1 : 0;
            s->heartbeats_in++;
            pos += 1 + h;
            continue;
        }
        if (p[0] != TP_GW_FRAME_RECORD) {
            snprintf(why, sizeof why, "protocol error: unknown frame type 0x%02x after record %llu", p[0],
                     (unsigned long long)c->received);
            return conn_goodbye(s, c, TP_GW_BYE_PROTOCOL, TP_GW_CLOSE_PROTOCOL, why) ? -1 : 0;
        }
        if (OUT_CAP - out_used(c) < OUT_RESERVE + REJECT_MAX) {
            c->out_blocked = 1; /* a reject might not fit: wait until the gateway reads */
            break;
        }
        if (v > s->o.max_record_bytes) {
            snprintf(why, sizeof why, "record of %llu bytes, above the maximum record size %zu",
                     (unsigned long long)v, s->o.max_record_bytes);
            if (conn_reject(s, c, TP_GW_REJECT_TOO_LARGE, why) != 0)
                return -1;
            pos += 1 + h;
            c->skip = v;
            continue;
        }
        if (1 + h + v > avail)
            break;
        if (s->raw.take) { /* a run-time schema */
            int t = conn_take_raw(s, c, p + 1 + h, (size_t)v, tp_varint_size(v) + (size_t)v, 0);
            if (t < 0)
                return -1;
            if (t > 0)
                break;
            pos += 1 + h + (size_t)v;
            continue;
        }
        tp_record r;
        tp_err e = tp_record_decode(p + 1 + h, (size_t)v, &r);
        int rj = 0;
        if (e) {
            rj = conn_reject(s, c, TP_GW_REJECT_MALFORMED, "not a VehicleRecord");
        } else if (s->o.max_event_skew_ms >= 0 && (r.sampled_at_ms < s->wall_now - s->o.max_event_skew_ms ||
                                                   r.sampled_at_ms > s->wall_now + s->o.max_event_skew_ms)) {
            snprintf(why, sizeof why, "sampled_at_ms %lld is more than %lld days from now",
                     (long long)r.sampled_at_ms, (long long)(s->o.max_event_skew_ms / 86400000));
            rj = conn_reject(s, c, TP_GW_REJECT_EVENT_TIME, why);
        } else if (s->o.auth && s->o.auth->allows && c->identity >= 0 &&
                   !s->o.auth->allows(c->auth_ctx, c->identity, r.vehicle_id)) {
            snprintf(why, sizeof why, "vehicle %llu is not allowed for this gateway's credentials",
                     (unsigned long long)r.vehicle_id);
            rj = conn_reject(s, c, TP_GW_REJECT_VEHICLE, why);
        } else {
            int t = conn_take(s, c, &r, tp_varint_size(v) + (size_t)v);
            if (t < 0)
                return -1;
            if (t > 0)
                break;
        }
        if (rj)
            return -1;
        pos += 1 + h + (size_t)v;
    }
    if (c->closing)
        return 0;
    if (pos) {
        memmove(c->buf, c->buf + pos, c->len - pos);
        c->len -= pos;
    }
    return 0;
}

static void conn_eof(tp_gateway_server *s, conn *c)
{
    char why[160];
    if (c->len > 0 || c->skip) {
        snprintf(why, sizeof why, "peer closed in the middle of %s %llu (%zu bytes of it received)",
                 c->state == ST_NEW || c->state == ST_HELLO ? "the hello, before record" : "record",
                 (unsigned long long)c->received + 1, c->len);
        conn_fail(s, c, TP_GW_CLOSE_IO, why);
        return;
    }
    c->eof = 1;
    seal(s, c);
    if (c->acked == c->received && c->out_off == c->out_len && c->acked <= c->ack_sent) {
        conn_close(s, c, 0, "end of stream, everything acked");
        return;
    }
    conn_flush_out(s, c);
}

static void conn_tls_step(tp_gateway_server *s, conn *c);

static void conn_read(tp_gateway_server *s, conn *c)
{
    if (c->state == ST_TLS) {
        conn_tls_step(s, c);
        return;
    }
    c->tls_more = 0;
    for (;;) {
        if (!conn_reading(s, c))
            break;
        size_t room = s->o.conn_buffer_bytes - c->len;
        char why[256];
        ssize_t n = room ? conn_recv(c, c->buf + c->len, room, why, sizeof why) : 0;
        if (n == -1)
            break;
        if (n == -2) {
            conn_fail(s, c, TP_GW_CLOSE_IO, why);
            return;
        }
        if (n == 0) {
            conn_eof(s, c);
            return;
        }
        c->last_rx = s->now;
        c->len += (size_t)n;
        if (conn_parse_seal(s, c) != 0)
            return;
        if (!c->ssl || !SSL_has_pending(c->ssl))
            break; /* plain sockets: epoll says when there is more */
    }
    if (c->ssl && SSL_has_pending(c->ssl) && !c->closing) {
        c->tls_more = 1; /* read again once reading resumes: no epoll event will say so */
        s->tls_more = 1;
    }
    if (c->out_off < c->out_len) /* a hello or rejects to send */
        conn_flush_out(s, c);
    else
        conn_update_events(s, c);
}

/* ST_TLS: the first byte decides plaintext or TLS, then the handshake advances as the socket allows. */
static void conn_tls_step(tp_gateway_server *s, conn *c)
{
    char why[400];
    if (!c->ssl) {
        uint8_t b;
        ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            snprintf(why, sizeof why, "read failed before the TLS handshake: %s", strerror(errno));
            conn_fail(s, c, TP_GW_CLOSE_IO, why);
            return;
        }
        if (n == 0) {
            conn_close(s, c, 0, "closed before the TLS handshake");
            return;
        }
        if (b != 0x16) {
            s->tls_fail[TP_GW_TLS_PLAINTEXT]++;
            if (b == TP_GW_MAGIC0) { /* a plaintext v2 hello: a refusal it can read says why */
                uint8_t junk[4096];
                for (int i = 0; i < 16 && recv(c->fd, junk, sizeof junk, MSG_DONTWAIT) > 0; i++) {
                }
                conn_refuse(s, c, TP_GW_REFUSE_AUTH_REQUIRED,
                            "this port requires TLS: connect with TLS (telepack gen --tls-ca FILE)");
                return;
            }
            conn_fail(s, c, TP_GW_CLOSE_TLS,
                      "plaintext (not a TLS handshake) sent to the TLS gateway port; the gateway must connect with "
                      "TLS");
            return;
        }
        c->ssl = tp_tls_server_ssl(s->o.tls, c->fd);
        if (!c->ssl) {
            conn_fail(s, c, TP_GW_CLOSE_IO, "out of memory for a TLS session");
            return;
        }
    }
    c->tls_want_out = 0;
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            c->tls_want_out = e == SSL_ERROR_WANT_WRITE;
            conn_update_events(s, c);
            return;
        }
        char t[256];
        int cert = tp_tls_error_text(c->ssl, r, t, sizeof t);
        s->tls_fail[cert == 1 ? TP_GW_TLS_CLIENT_CERT : TP_GW_TLS_HANDSHAKE]++;
        snprintf(why, sizeof why, "TLS handshake failed: %s%s", t,
                 cert == 1   ? " (the gateway needs a certificate signed by --tls-client-ca)"
                 : cert == 2 ? " (the gateway does not accept this server's certificate: check its CA file and the "
                               "address it connects to)"
                             : "");
        conn_fail(s, c, TP_GW_CLOSE_TLS, why);
        return;
    }
    s->tls_sessions++;
    c->state = ST_NEW;
    char cn[128];
    tp_tls_peer_cn(c->ssl, cn, sizeof cn);
    if (cn[0]) {
        size_t pl = strlen(c->peer);
        snprintf(c->peer + pl, sizeof c->peer - pl, " [CN=%.64s]", cn);
    }
    tp_log(cn[0] ? TP_LOG_INFO : TP_LOG_DEBUG, "gateway", "TLS session with %s (%s%s)", c->peer,
           SSL_get_version(c->ssl), cn[0] ? ", client certificate verified" : "");
    conn_read(s, c); /* the gateway's first bytes may have come with the handshake */
}

void tp_gateway_server_flush_acks(tp_gateway_server *s)
{
    while (s->dirty) {
        conn *c = s->dirty;
        s->dirty = c->dirty_next;
        c->dirty = 0;
        conn_flush_out(s, c);
    }
}

void tp_gateway_server_complete(tp_gateway_server *s, const tp_batch_tag *t)
{
    if (t->source >= s->nslots || s->slots[t->source].generation != t->generation || !s->slots[t->source].c)
        return;
    conn *c = s->slots[t->source].c;
    uint32_t idx = t->block - c->head_no;
    if (idx >= c->nblocks)
        return;
    block *b = ring_at(c, idx);
    b->pending = b->pending >= t->count ? b->pending - t->count : 0;
    if (idx == 0 && b->pending == 0)
        advance(s, c);
}

/* Idle timeout, hello timeout, heartbeats, closing connections that do not read their goodbye. */
static void sweep(tp_gateway_server *s)
{
    int64_t idle = s->o.idle_timeout_ms;
    for (uint32_t i = 0; i < s->nslots; i++) {
        conn *c = s->slots[i].c;
        if (!c)
            continue;
        if (c->closing) {
            if (s->now - c->closing_since > CLOSE_GRACE_MS)
                conn_close(s, c, 0, "the gateway did not read our last frame in time");
            continue;
        }
        if (!c->family)
            continue; /* adopted local sockets (--from replay) have no timeouts */
        char why[160];
        if (c->state == ST_NEW || c->state == ST_HELLO || c->state == ST_TLS) {
            int64_t lim = TP_GW_HELLO_TIMEOUT_MS;
            if (idle && idle < lim)
                lim = idle;
            if (s->now - c->opened > lim && !s->paused && !s->stopped) {
                snprintf(why, sizeof why, "%s within %lld ms",
                         c->state == ST_TLS ? "no TLS handshake" : "no hello and no record", (long long)lim);
                conn_fail(s, c, TP_GW_CLOSE_IDLE, why);
            }
            continue;
        }
        if (idle && !s->paused && !s->stopped && !c->out_blocked && !c->eof && s->now - c->last_rx > idle) {
            if (c->state == ST_V2) {
                snprintf(why, sizeof why, "idle timeout: nothing received for %lld ms (send heartbeats)",
                         (long long)idle);
                conn_goodbye(s, c, TP_GW_BYE_IDLE, TP_GW_CLOSE_IDLE, why);
                continue;
            }
            if (c->acked == c->received && c->len == 0) {
                snprintf(why, sizeof why, "idle timeout: nothing received for %lld ms", (long long)idle);
                conn_fail(s, c, TP_GW_CLOSE_IDLE, why);
                continue;
            }
        }
        if (c->state == ST_V2 && s->now - c->last_tx >= s->o.heartbeat_ms && out_used(c) == 0) {
            out_frame(c, TP_GW_FRAME_SERVER_HEARTBEAT, NULL, 0, NULL, 0);
            conn_flush_out(s, c);
        }
    }
}

tp_err tp_gateway_server_poll(tp_gateway_server *s, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    if (timeout_ms < 0 || timeout_ms > SWEEP_MS)
        timeout_ms = SWEEP_MS;
    int n = epoll_wait(s->ep, evs, MAX_EVENTS, timeout_ms);
    if (n < 0 && errno != EINTR)
        return TP_ERR_IO;
    s->now = mono_ms();
    s->wall_now = wall_ms();
    for (int i = 0; i < n; i++) {
        uint64_t id = evs[i].data.u64;
        if (id == EV_WAKE) {
            uint64_t v;
            ssize_t r = read(s->wfd, &v, sizeof v);
            (void)r;
            continue;
        }
        if (id == EV_LISTEN) {
            if (s->lfd >= 0)
                do_accept(s);
            continue;
        }
        uint32_t sl = (uint32_t)(id & 0xffffffffu) - EV_CONN0, gen = (uint32_t)(id >> 32);
        conn *c = sl < s->nslots && s->slots[sl].generation == gen ? s->slots[sl].c : NULL;
        if (!c)
            continue; /* closed earlier in this round */
        uint32_t e = evs[i].events;
        if (c->closing) { /* our last frame leaves, then what the peer still sends is discarded */
            if ((e & EPOLLOUT) && !c->draining && conn_flush_out(s, c) != 0)
                continue;
            if (c->draining && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                uint8_t junk[4096];
                ssize_t r;
                int k = 0;
                while ((r = recv(c->fd, junk, sizeof junk, MSG_DONTWAIT)) > 0 && ++k < 16) {
                }
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                    conn_close(s, c, 0, "goodbye sent");
            }
            continue;
        }
        if (c->state == ST_TLS) {
            conn_tls_step(s, c);
            continue;
        }
        if (c->ssl && (c->tls_want_in || c->tls_want_out)) { /* OpenSSL wanted the other direction: retry both */
            if (c->out_off < c->out_len && conn_flush_out(s, c) != 0)
                continue;
            if (conn_reading(s, c)) {
                conn_read(s, c);
                continue;
            }
        }
        if ((e & EPOLLOUT) && conn_flush_out(s, c) != 0)
            continue;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            if (conn_reading(s, c)) {
                conn_read(s, c);
            } else if (e & (EPOLLHUP | EPOLLERR)) {
                conn_close(s, c, 0, "peer went away before all acks were sent; it resends what was not acked");
            }
        }
    }
    if (s->tls_more) { /* decrypted bytes waiting inside OpenSSL, where epoll cannot see them */
        s->tls_more = 0;
        for (uint32_t i = 0; i < s->nslots; i++) {
            conn *c = s->slots[i].c;
            if (c && c->tls_more) {
                if (conn_reading(s, c))
                    conn_read(s, c);
                else
                    s->tls_more = 1;
            }
        }
    }
    if (s->nquiet)
        check_quiet(s);
    if (s->now - s->last_sweep >= SWEEP_MS) {
        s->last_sweep = s->now;
        sweep(s);
    }
    return TP_OK;
}

int tp_gateway_server_quiet(const tp_gateway_server *s, uint32_t source, uint32_t generation)
{
    const conn *c = source < s->nslots && s->slots[source].generation == generation ? s->slots[source].c : NULL;
    return !c || (!s->paused && s->now - c->last_rx >= s->o.quiet_ms);
}

int tp_gateway_server_quiet_pending(const tp_gateway_server *s)
{
    return s->nquiet > 0 && s->on_sent && s->o.quiet_ms > 0 ? s->o.quiet_ms : -1;
}

void tp_gateway_server_wake(tp_gateway_server *s)
{
    uint64_t one = 1;
    ssize_t r = write(s->wfd, &one, sizeof one);
    (void)r;
}

void tp_gateway_server_resume(tp_gateway_server *s)
{
    if (!s->paused)
        return;
    s->paused = 0;
    s->now = mono_ms();
    for (uint32_t i = 0; i < s->nslots; i++)
        if (s->slots[i].c)
            s->slots[i].c->last_rx = s->now; /* silence while we did not read is ours */
    for (uint32_t i = 0; i < s->nslots && !s->paused; i++) {
        conn *c = s->slots[i].c;
        if (c && c->len && conn_reading(s, c)) {
            if (conn_parse(s, c) == 0) {
                seal(s, c);
                if (c->out_off < c->out_len)
                    conn_flush_out(s, c);
            }
        }
    }
    update_all_events(s);
}

int tp_gateway_server_paused(const tp_gateway_server *s)
{
    return s->paused;
}

void tp_gateway_server_stop_accepting(tp_gateway_server *s)
{
    if (s->lfd >= 0) {
        epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lfd, NULL);
        close(s->lfd);
        s->lfd = -1;
    }
}

void tp_gateway_server_stop_reading(tp_gateway_server *s)
{
    s->stopped = 1;
    update_all_events(s);
}

void tp_gateway_server_close_all(tp_gateway_server *s)
{
    for (uint32_t i = 0; i < s->nslots; i++) {
        conn *c = s->slots[i].c;
        if (!c)
            continue;
        if (c->state == ST_V2 && !c->closing && OUT_CAP - out_used(c) >= 64) { /* best effort, never blocks */
            out_ack(c);
            uint8_t v = TP_GW_BYE_SHUTTING_DOWN;
            static const char why[] = "server shutting down";
            out_frame(c, TP_GW_FRAME_GOODBYE, &v, 1, why, sizeof why - 1);
            char err[256];
            ssize_t n = conn_send(c, c->out + c->out_off, c->out_len - c->out_off, err, sizeof err);
            (void)n;
        }
        conn_close(s, c, 0, "server shutting down");
    }
}

void tp_gateway_server_stats_get(const tp_gateway_server *s, tp_gateway_server_stats *st)
{
    memset(st, 0, sizeof *st);
    st->connections = s->nconns;
    st->accepted = s->accepted;
    st->closed_on_error = s->closed_err;
    st->records_in = s->records_in;
    st->bytes_in = s->bytes_in;
    st->records_acked = s->acked;
    st->records_pending = s->pending;
    st->paused = s->paused;
    st->pauses = s->pauses;
    st->connections_v2 = s->nv2;
    memcpy(st->rejected, s->rejected, sizeof st->rejected);
    memcpy(st->refused, s->refused, sizeof st->refused);
    memcpy(st->closed, s->closed, sizeof st->closed);
    st->heartbeats_in = s->heartbeats_in;
    st->tls_sessions = s->tls_sessions;
    memcpy(st->tls_failures, s->tls_fail, sizeof st->tls_failures);
}
