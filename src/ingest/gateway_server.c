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
 * head once their pending count is zero: exact, and O(1) amortized per record whatever order packs complete in. */
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
#include <unistd.h>

#include "common/log.h"
#include "telepack/pack.h"
#include "telepack/varint.h"

#define EV_LISTEN 0u
#define EV_WAKE 1u
#define EV_CONN0 2u
/* A connection's epoll tag: slot + EV_CONN0 in the low half, its generation in the high half, so an event still
 * queued for a connection closed earlier in the same round never reaches a new one in the same slot. */
#define EV_TAG(s, c) (((uint64_t)(s)->slots[(c)->slot].generation << 32) | (EV_CONN0 + (c)->slot))
#define MAX_EVENTS 64

typedef struct block {
    uint32_t count;
    uint32_t pending;
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
    uint8_t out[10];
    uint8_t out_len, out_off;
    int dirty;
    struct conn *dirty_next;
    char peer[64];
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
};

void tp_gateway_server_opts_init(tp_gateway_server_opts *o)
{
    o->listen = NULL;
    o->max_record_bytes = TP_DEFAULT_MAX_RECORD_BYTES;
    o->conn_buffer_bytes = 64u * 1024u;
    o->max_connections = 4096;
    o->block_records = 1024;
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
    if (!s || !host || !port || !hostlen || !portlen)
        return TP_ERR_INVALID_ARG;
    const char *colon, *hs = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return TP_ERR_PARSE;
        hs = s + 1;
        hl = (size_t)(close - hs);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return TP_ERR_PARSE;
        hl = (size_t)(colon - s);
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (pl == 0 || pl >= portlen || hl >= hostlen || strspn(p, "0123456789") != pl || atol(p) > 65535)
        return TP_ERR_PARSE;
    memcpy(host, hs, hl);
    host[hl] = 0;
    memcpy(port, p, pl + 1);
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
    if (s->o.conn_buffer_bytes < s->o.max_record_bytes + 10)
        s->o.conn_buffer_bytes = s->o.max_record_bytes + 10;
    if (s->o.max_connections == 0)
        s->o.max_connections = 4096;
    if (s->o.block_records == 0)
        s->o.block_records = 1024;
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
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    s->slots[c->slot].c = NULL;
    s->slots[c->slot].generation++;
    s->free_slots[s->nfree++] = c->slot;
    s->nconns--;
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

static int conn_reading(const tp_gateway_server *s, const conn *c)
{
    return !s->paused && !s->stopped && !c->eof;
}

static void conn_update_events(tp_gateway_server *s, conn *c)
{
    uint32_t want = (conn_reading(s, c) ? EPOLLIN | EPOLLRDHUP : 0) | (c->out_off < c->out_len ? EPOLLOUT : 0);
    if (want == c->events)
        return;
    struct epoll_event ev = {.events = want, .data.u64 = EV_TAG(s, c)};
    epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = want;
}

tp_err tp_gateway_server_add_fd(tp_gateway_server *s, int fd)
{
    if (!s || fd < 0)
        return TP_ERR_INVALID_ARG;
    if (s->nconns >= s->o.max_connections) {
        tp_log(TP_LOG_WARN, "gateway", "refusing a connection: %u connections already open (the maximum)",
               s->nconns);
        close(fd);
        return TP_ERR_FULL;
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
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "fd %d", fd);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 && (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
        char h[48], p[8];
        if (getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, p, sizeof p, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            snprintf(c->peer, sizeof c->peer, "%s:%s", h, p);
    }
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
        tp_gateway_server_add_fd(s, fd);
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
    *ring_at(c, c->nblocks) = (block){0, 0};
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
        s->acked += h->count;
        s->pending -= h->count;
        c->head_pos = (c->head_pos + 1) & (c->ring_cap - 1);
        c->head_no++;
        c->nblocks--;
    }
    if (c->acked > c->ack_sent || (c->eof && c->acked == c->received))
        mark_dirty(s, c);
}

static void seal(tp_gateway_server *s, conn *c)
{
    if (c->block_open) {
        c->block_open = 0;
        advance(s, c);
    }
}

/* Offers every complete frame in c's buffer. Returns 0, or -1 if c was closed. */
static int conn_parse(tp_gateway_server *s, conn *c)
{
    size_t pos = 0;
    char why[160];
    while (!s->paused && pos < c->len) {
        uint64_t v;
        size_t h;
        tp_err ve = tp_varint_decode(c->buf + pos, c->len - pos, &v, &h);
        if (ve == TP_ERR_TRUNCATED)
            break;
        if (ve) {
            snprintf(why, sizeof why, "length prefix of record %llu is not a varint of at most 10 bytes",
                     (unsigned long long)c->received + 1);
            conn_close(s, c, 1, why);
            return -1;
        }
        if (v > s->o.max_record_bytes) {
            snprintf(why, sizeof why, "record %llu has length prefix %llu, above the maximum record size %zu",
                     (unsigned long long)c->received + 1, (unsigned long long)v, s->o.max_record_bytes);
            conn_close(s, c, 1, why);
            return -1;
        }
        if (h + v > c->len - pos)
            break;
        tp_record r;
        tp_err e = tp_record_decode(c->buf + pos + h, (size_t)v, &r);
        if (e) {
            snprintf(why, sizeof why, "record %llu (%llu bytes) is not a VehicleRecord: %s",
                     (unsigned long long)c->received + 1, (unsigned long long)v, tp_strerror(e));
            conn_close(s, c, 1, why);
            return -1;
        }
        uint32_t next_no = c->head_no + c->nblocks;
        int fresh = !(c->block_open && ring_at(c, c->nblocks - 1)->count < s->o.block_records);
        tp_batch_tag tag = {c->slot, s->slots[c->slot].generation, fresh ? next_no : next_no - 1, 1};
        if (fresh && ring_reserve(c) != 0) { /* the push below must not fail once the record is taken */
            conn_close(s, c, 1, "out of memory");
            return -1;
        }
        e = s->on_record(s->ctx, &r, (size_t)h + (size_t)v, &tag);
        if (e == TP_ERR_AGAIN) {
            s->paused = 1;
            s->pauses++;
            break;
        }
        if (e) {
            snprintf(why, sizeof why, "record %llu could not be taken: %s", (unsigned long long)c->received + 1,
                     tp_strerror(e));
            conn_close(s, c, 1, why);
            return -1;
        }
        if (fresh)
            ring_push(c);
        block *b = ring_at(c, c->nblocks - 1);
        b->count++;
        b->pending++;
        c->received++;
        s->pending++;
        s->records_in++;
        s->bytes_in += (size_t)h + (size_t)v;
        pos += (size_t)h + (size_t)v;
    }
    if (pos) {
        memmove(c->buf, c->buf + pos, c->len - pos);
        c->len -= pos;
    }
    return 0;
}

static void conn_eof(tp_gateway_server *s, conn *c)
{
    char why[160];
    if (c->len > 0) {
        snprintf(why, sizeof why, "peer closed in the middle of record %llu (%zu bytes of it received)",
                 (unsigned long long)c->received + 1, c->len);
        conn_close(s, c, 1, why);
        return;
    }
    c->eof = 1;
    seal(s, c);
    if (c->acked == c->received) {
        conn_close(s, c, 0, "end of stream, everything acked");
        return;
    }
    conn_update_events(s, c);
}

static void conn_read(tp_gateway_server *s, conn *c)
{
    if (!conn_reading(s, c))
        return;
    size_t room = s->o.conn_buffer_bytes - c->len;
    ssize_t n = room ? read(c->fd, c->buf + c->len, room) : 0;
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        char why[128];
        snprintf(why, sizeof why, "read failed: %s", strerror(errno));
        conn_close(s, c, 1, why);
        return;
    }
    if (n == 0) {
        conn_eof(s, c);
        return;
    }
    c->len += (size_t)n;
    if (conn_parse(s, c) != 0)
        return;
    seal(s, c);
    if (s->paused) { /* backpressure: stop reading every connection */
        for (uint32_t i = 0; i < s->nslots; i++)
            if (s->slots[i].c)
                conn_update_events(s, s->slots[i].c);
    }
}

/* Writes c's pending ack; returns -1 if c was closed. */
static int conn_write_ack(tp_gateway_server *s, conn *c)
{
    for (;;) {
        if (c->out_off == c->out_len) {
            if (c->acked <= c->ack_sent)
                break;
            c->out_len = (uint8_t)tp_varint_encode(c->acked, c->out);
            c->out_off = 0;
            c->ack_sent = c->acked;
        }
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            char why[128];
            snprintf(why, sizeof why, "sending an ack failed: %s", strerror(errno));
            conn_close(s, c, !c->eof, why);
            return -1;
        }
        c->out_off += (uint8_t)n;
    }
    if (c->eof && c->acked == c->received && c->out_off == c->out_len) {
        conn_close(s, c, 0, "end of stream, everything acked");
        return -1;
    }
    conn_update_events(s, c);
    return 0;
}

void tp_gateway_server_flush_acks(tp_gateway_server *s)
{
    while (s->dirty) {
        conn *c = s->dirty;
        s->dirty = c->dirty_next;
        c->dirty = 0;
        conn_write_ack(s, c);
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

tp_err tp_gateway_server_poll(tp_gateway_server *s, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(s->ep, evs, MAX_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? TP_OK : TP_ERR_IO;
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
        if ((e & EPOLLOUT) && conn_write_ack(s, c) != 0)
            continue;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            if (conn_reading(s, c)) {
                conn_read(s, c);
            } else if (e & (EPOLLHUP | EPOLLERR)) {
                conn_close(s, c, 0, "peer went away before all acks were sent; it resends what was not acked");
            }
        }
    }
    return TP_OK;
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
    for (uint32_t i = 0; i < s->nslots && !s->paused; i++) {
        conn *c = s->slots[i].c;
        if (c && c->len && !c->eof && !s->stopped) {
            if (conn_parse(s, c) == 0)
                seal(s, c);
        }
    }
    for (uint32_t i = 0; i < s->nslots; i++)
        if (s->slots[i].c)
            conn_update_events(s, s->slots[i].c);
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
    for (uint32_t i = 0; i < s->nslots; i++)
        if (s->slots[i].c)
            conn_update_events(s, s->slots[i].c);
}

void tp_gateway_server_close_all(tp_gateway_server *s)
{
    for (uint32_t i = 0; i < s->nslots; i++)
        if (s->slots[i].c)
            conn_close(s, s->slots[i].c, 0, "server shutting down");
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
}
