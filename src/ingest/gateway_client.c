/* Gateway protocol client: a linear resend buffer of framed records,
 *
 *     buf: [ acked, dropped | unacked, written | unacked, not yet written | free ]
 *          0               start              sent                      end      cap
 *
 * An ack A (records of this connection durable) drops records from `start`; a reconnect rewinds `sent` to `start`. */
#include "ingest/gateway_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ingest/gateway_server.h"
#include "common/log.h"
#include "telepack/varint.h"

#define WRITE_CHUNK (16u * 1024u)

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
    uint64_t sent_records, sent_bytes, acked_records, resent, connects;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tp_gateway_client_opts_init(tp_gateway_client_opts *o)
{
    o->connect = NULL;
    o->fd = -1;
    o->max_unacked_bytes = 4u * 1024u * 1024u;
    o->backoff_min_ms = 100;
    o->backoff_max_ms = 5000;
    o->stop = NULL;
}

tp_err tp_gateway_client_new(const tp_gateway_client_opts *opts, tp_gateway_client **out)
{
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
    c->cap = c->o.max_unacked_bytes + TP_RECORD_MAX_ENCODED + 10 + 64 * 1024;
    c->buf = malloc(c->cap);
    if (!c->buf) {
        free(c);
        return TP_ERR_NOMEM;
    }
    *out = c;
    return TP_OK;
}

void tp_gateway_client_free(tp_gateway_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
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
    close(c->fd);
    c->fd = -1;
    if (c->fixed_fd)
        c->broken = 1;
    c->next_attempt_ms = now_ms() + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > c->o.backoff_max_ms ? c->o.backoff_max_ms : c->backoff_ms * 2;
}

void tp_gateway_client_disconnect(tp_gateway_client *c)
{
    drop_conn(c, "closed by the caller");
    if (!c->fixed_fd)
        c->next_attempt_ms = 0;
}

static void try_connect(tp_gateway_client *c)
{
    if (c->fixed_fd || c->fd >= 0 || now_ms() < c->next_attempt_ms)
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
        c->next_attempt_ms = now_ms() + c->backoff_ms;
        c->backoff_ms = c->backoff_ms * 2 > c->o.backoff_max_ms ? c->o.backoff_max_ms : c->backoff_ms * 2;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->connects++;
    if (c->connects > 1)
        c->resent += c->unacked;
    c->sent = c->start;
    c->conn_acked = 0;
    c->written_here = c->unacked;
    c->ack_acc = 0;
    c->ack_shift = 0;
    c->backoff_ms = c->o.backoff_min_ms;
}

/* Length of the frame at buf[off] (the buffer only holds frames we built). */
static size_t frame_len(const uint8_t *p, size_t avail)
{
    uint64_t v = 0;
    size_t used = 0;
    tp_varint_decode(p, avail, &v, &used); /* cannot fail: we wrote it */
    return used + (size_t)v;
}

static int apply_ack(tp_gateway_client *c, uint64_t a)
{
    if (a < c->conn_acked || a > c->written_here)
        return -1;
    for (uint64_t n = a - c->conn_acked; n > 0; n--) {
        size_t fl = frame_len(c->buf + c->start, c->end - c->start);
        if (c->start + fl > c->sent)
            return -1; /* an ack for bytes not written yet */
        c->start += fl;
        c->unacked--;
        c->acked_records++;
    }
    c->conn_acked = a;
    if (c->start == c->end) {
        c->start = c->sent = c->end = 0;
    }
    return 0;
}

static void do_read(tp_gateway_client *c)
{
    uint8_t tmp[256];
    ssize_t n = recv(c->fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            drop_conn(c, strerror(errno));
        return;
    }
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
}

static void do_write(tp_gateway_client *c)
{
    ssize_t n = send(c->fd, c->buf + c->sent, c->end - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            drop_conn(c, strerror(errno));
        return;
    }
    c->sent += (size_t)n;
}

tp_err tp_gateway_client_pump(tp_gateway_client *c, int timeout_ms)
{
    if (c->broken)
        return TP_ERR_UNAVAILABLE;
    try_connect(c);
    if (c->fd < 0) {
        int64_t wait = c->next_attempt_ms - now_ms();
        if (wait > timeout_ms)
            wait = timeout_ms;
        if (wait > 0) {
            struct timespec ts = {wait / 1000, (wait % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        return TP_OK;
    }
    struct pollfd p = {.fd = c->fd, .events = POLLIN | (c->sent < c->end ? POLLOUT : 0)};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0)
        return TP_OK;
    if (p.revents & POLLOUT)
        do_write(c);
    if (c->fd >= 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)))
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
    uint8_t hdr[TP_VARINT_MAX_BYTES];
    size_t hl = tp_varint_encode(len, hdr);
    while (c->unacked > 0 && c->end - c->start + hl + len > c->o.max_unacked_bytes) {
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
    /* Write in chunks (one syscall per record would dominate), but never hold a record back for long. */
    if (c->fd >= 0 && c->sent < c->end) {
        int64_t t = now_ms();
        if (c->end - c->sent >= WRITE_CHUNK || t - c->last_write_ms >= 2) {
            c->last_write_ms = t;
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
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
    while (c->unacked > 0) {
        if (stopped(c) || now_ms() >= deadline)
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
}
