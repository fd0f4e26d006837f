/* HTTP ingest endpoint: libmicrohttpd in thread-per-connection mode. A request is checked in order (path, method,
 * token, content type, size, memory), its whole body validated and re-encoded as varint-delimited records (nothing
 * is taken when any record is bad or outside the token's vehicles), then written into one end of a socketpair whose
 * other end the worker adopts as a gateway connection; the handler thread answers 200 once the connection's
 * cumulative ack reaches the request's record count, 503 when the worker closes it first or the timeout passes. */
#include "ingest/http_ingest.h"
#include "common/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "ingest/auth_tokens.h"
#include "ingest/dyn_ingest.h"
#include "schema/dynpack.h"
#include "schema/dynrow.h"
#include "ops/http_server.h"
#include "telepack/pack.h"
#include "telepack/record.h"
#include "telepack/record_json.h"
#include "telepack/varint.h"

/* Status codes counted by telepack_ingest_http_requests_total{code}. */
static const unsigned k_codes[] = {200, 400, 401, 403, 404, 405, 413, 415, 500, 503};
#define NCODES (sizeof k_codes / sizeof k_codes[0])
enum { AUTH_MISSING, AUTH_MALFORMED, AUTH_UNKNOWN, AUTH_VEHICLE, NAUTH };
static const char *const k_auth_reasons[NAUTH] = {"missing", "malformed", "unknown", "vehicle"};

struct tp_http_ingest {
    tp_http_ingest_opts o;
    tp_ingest *ing;
    struct MHD_Daemon *daemon;
    uint16_t port;
    char *cert, *key;           /* PEM text, for MHD */
    tp_auth_store *tokens;      /* NULL without a token file */
    int own_tokens;             /* loaded here from o.tokens_path (else o.tokens, shared) */
    atomic_size_t reserved;     /* body and encoded bytes held by requests in progress */
    atomic_int closing;         /* tp_http_ingest_quiesce: new requests get 503 */
    tp_counter *requests[NCODES];
    tp_counter *records, *bytes;
    tp_counter *auth[NAUTH];
    tp_counter *rejected;
    atomic_ullong nrejected;   /* the same, without a registry */
};

enum { FMT_NDJSON = 1, FMT_PROTO = 2 };

typedef struct req {
    const tp_auth_tokens *tok; /* a reference (tp_auth_store_acquire), with the token's index */
    int token;
    int fmt;
    uint8_t *body;
    size_t len, cap;
    size_t reserved;     /* what this request counts in h->reserved */
    int refused;         /* a response was queued before the body: discard what still comes */
    unsigned late;       /* refused while the body arrived (413, 503): answered after it, the rest discarded */
    size_t discarded;
} req;

static void say(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *msg, size_t cap, const char *fmt, ...)
{
    if (!msg || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
}

void tp_http_ingest_opts_init(tp_http_ingest_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_body_bytes = TP_HTTP_INGEST_DEFAULT_MAX_BODY;
    o->max_buffered_bytes = 256u << 20;
    o->timeout_ms = TP_HTTP_INGEST_DEFAULT_TIMEOUT_MS;
    o->max_connections = TP_HTTP_INGEST_DEFAULT_CONNECTIONS;
    o->max_record_bytes = TP_DEFAULT_MAX_RECORD_BYTES;
    o->max_event_skew_ms = 3653ll * 86400 * 1000;
}

int tp_http_ingest_is_loopback(const char *host)
{
    if (!host || !host[0])
        return 0;
    if (!strcasecmp(host, "localhost"))
        return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(&a6))
            return a6.s6_addr[12] == 127;
    }
    return 0;
}

tp_err tp_http_ingest_check_opts(const tp_http_ingest_opts *o, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (!o || !o->listen || tp_http_parse_listen(o->listen, host, sizeof host, &port)) {
        say(err, errlen,
            "--http-listen '%s' is not HOST:PORT (PORT 0..65535; IPv6 as [ADDR]:PORT, ':PORT' for all interfaces)",
            o && o->listen ? o->listen : "");
        return TP_ERR_INVALID_ARG;
    }
    if (!o->tls_cert != !o->tls_key) {
        say(err, errlen, "--http-tls-cert and --http-tls-key go together; give both files or neither");
        return TP_ERR_INVALID_ARG;
    }
    if (!o->tls_cert && !o->insecure && !tp_http_ingest_is_loopback(host)) {
        say(err, errlen,
            "refusing plain HTTP on %s, which is not a loopback address: tokens and records would cross the network "
            "in clear; give --http-tls-cert FILE --http-tls-key FILE, or --insecure if a TLS proxy sits in front",
            o->listen);
        return TP_ERR_INVALID_ARG;
    }
    if (o->max_body_bytes == 0 || o->timeout_ms <= 0 || o->max_connections == 0) {
        say(err, errlen, "the HTTP ingest's body limit, timeout and connection limit must be above 0");
        return TP_ERR_INVALID_ARG;
    }
    return TP_OK;
}

/* ---- tokens ---- */

static const tp_auth_tokens *tok_get(tp_http_ingest *h)
{
    return h->tokens ? tp_auth_store_acquire(h->tokens) : NULL;
}

static void tok_put(const tp_auth_tokens *t)
{
    tp_auth_store_release(t);
}

tp_err tp_http_ingest_reload_tokens(tp_http_ingest *h, char *err, size_t errlen)
{
    if (!h || !h->tokens) {
        say(err, errlen, "no token file to reload (start with --auth-tokens FILE)");
        return TP_ERR_INVALID_ARG;
    }
    return tp_auth_store_reload(h->tokens, err, errlen);
}

/* ---- memory ---- */

/* Counts n more bytes for this request against the worker's cap; 0, or -1 when the cap would be exceeded. */
/* What the worker holds (record bytes not yet in Kafka), and whether it holds back (paused). */
static size_t worker_held(tp_http_ingest *h, int *paused)
{
    if (h->o.dyn) {
        size_t b = tp_dyn_ingest_buffered(h->o.dyn);
        if (paused)
            *paused = b >= h->o.max_buffered_bytes;
        return b;
    }
    tp_ingest_stats st;
    tp_ingest_stats_get(h->ing, &st);
    if (paused)
        *paused = st.paused != 0;
    return st.buffered_bytes;
}

static int worker_failed(tp_http_ingest *h, char *why, size_t cap)
{
    return h->o.dyn ? tp_dyn_ingest_failed(h->o.dyn, why, cap) : tp_ingest_failed(h->ing, why, cap);
}

static int reserve(tp_http_ingest *h, req *q, size_t n)
{
    size_t held = worker_held(h, NULL);
    size_t before = atomic_fetch_add(&h->reserved, n);
    /* like the batcher, take one request whatever its size when nothing else is held */
    size_t others = before - q->reserved;
    if (before + n + held > h->o.max_buffered_bytes && (others > 0 || held > 0)) {
        atomic_fetch_sub(&h->reserved, n);
        return -1;
    }
    q->reserved += n;
    return 0;
}

/* ---- responses ---- */

static void count_code(tp_http_ingest *h, unsigned status)
{
    for (size_t i = 0; i < NCODES; i++)
        if (k_codes[i] == status)
            tp_counter_inc(h->requests[i]);
}

/* Appends s as a JSON string body (without quotes) to dst[*n..cap). */
static void json_str(char *dst, size_t cap, size_t *n, const char *s)
{
    for (; *s && *n + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[(*n)++] = '\\';
            dst[(*n)++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            *n += (size_t)snprintf(dst + *n, cap - *n, "\\u%04x", c);
        } else if (c >= 0x80) { /* keep the body ASCII: a message may quote bytes that are not UTF-8 */
            *n += (size_t)snprintf(dst + *n, cap - *n, "\\u%04x", 0xfffd);
        } else {
            dst[(*n)++] = (char)c;
        }
    }
    dst[*n] = '\0';
}

/* Queues a JSON answer: {"error": msg, <extra>} or, for 200, the body given in msg verbatim. */
static enum MHD_Result answer(tp_http_ingest *h, struct MHD_Connection *c, unsigned status, const char *msg,
                              const char *extra)
{
    char body[1200];
    size_t n = 0;
    if (status == MHD_HTTP_OK) {
        n = (size_t)snprintf(body, sizeof body, "%s\n", msg);
    } else {
        n = (size_t)snprintf(body, sizeof body, "{\"status\":%u,\"error\":\"", status);
        json_str(body, sizeof body - 64, &n, msg);
        n += (size_t)snprintf(body + n, sizeof body - n, "\"%s%s}\n", extra && *extra ? "," : "", extra ? extra : "");
    }
    if (n >= sizeof body)
        n = sizeof body - 1;
    struct MHD_Response *r = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"telepack\"");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    count_code(h, status);
    return ret;
}

/* ---- validation ---- */

typedef struct parsed {
    uint8_t *out;        /* varint-delimited records */
    size_t len, cap;
    uint64_t records;
} parsed;

static int out_append(tp_http_ingest *h, req *q, parsed *p, const tp_record *r)
{
    if (p->cap - p->len < TP_VARINT_MAX_BYTES + TP_RECORD_MAX_ENCODED) {
        size_t nc = p->cap ? p->cap * 2 : 4096;
        if (reserve(h, q, nc - p->cap))
            return -1;
        uint8_t *nb = realloc(p->out, nc);
        if (!nb)
            return -2;
        p->out = nb;
        p->cap = nc;
    }
    uint8_t tmp[TP_RECORD_MAX_ENCODED];
    size_t n = 0;
    if (tp_record_encode(r, tmp, sizeof tmp, &n))
        return -2;
    p->len += tp_varint_encode(n, p->out + p->len);
    memcpy(p->out + p->len, tmp, n);
    p->len += n;
    p->records++;
    return 0;
}

/* Result of validating a body: status 0 = good; else the HTTP status and a message. */
typedef struct verdict {
    unsigned status;
    char msg[600];
    char extra[64];
} verdict;

static void check_vehicle(tp_http_ingest *h, req *q, const tp_record *r, const char *where, const char *key,
                          uint64_t num, verdict *v)
{
    if (!q->tok || tp_auth_tokens_allows(q->tok, q->token, r->vehicle_id))
        return;
    v->status = MHD_HTTP_FORBIDDEN;
    say(v->msg, sizeof v->msg, "%s: vehicle %llu is not among the vehicles this token may send for; nothing taken",
        where, (unsigned long long)r->vehicle_id);
    snprintf(v->extra, sizeof v->extra, "\"%s\":%llu", key, (unsigned long long)num);
    tp_counter_inc(h->auth[AUTH_VEHICLE]);
}

static void mem_refusal(verdict *v, int rc)
{
    v->status = rc == -1 ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_INTERNAL_SERVER_ERROR;
    say(v->msg, sizeof v->msg, "%s",
        rc == -1 ? "memory cap reached (--max-buffered-bytes): Kafka is behind; retry later" : "out of memory");
}

static void validate_ndjson(tp_http_ingest *h, req *q, parsed *p, verdict *v)
{
    const char *s = (const char *)q->body;
    size_t pos = 0;
    uint64_t line = 0;
    while (pos < q->len && !v->status) {
        line++;
        const char *nl = memchr(s + pos, '\n', q->len - pos);
        size_t n = nl ? (size_t)(nl - (s + pos)) : q->len - pos;
        const char *l = s + pos;
        pos += n + (nl != NULL);
        size_t k = 0;
        while (k < n && (l[k] == ' ' || l[k] == '\t' || l[k] == '\r'))
            k++;
        if (k == n)
            continue;
        tp_record r;
        char m[400];
        char where[48];
        snprintf(where, sizeof where, "line %llu", (unsigned long long)line);
        if (tp_record_json_parse(l, n, &r, m, sizeof m) != TP_OK) {
            v->status = MHD_HTTP_BAD_REQUEST;
            say(v->msg, sizeof v->msg, "%s: %s; nothing taken", where, m);
            snprintf(v->extra, sizeof v->extra, "\"line\":%llu", (unsigned long long)line);
            return;
        }
        check_vehicle(h, q, &r, where, "line", line, v);
        if (v->status)
            return;
        int rc = out_append(h, q, p, &r);
        if (rc)
            mem_refusal(v, rc);
    }
}

static void validate_proto(tp_http_ingest *h, req *q, parsed *p, verdict *v)
{
    size_t pos = 0;
    uint64_t rec = 0;
    while (pos < q->len && !v->status) {
        rec++;
        char where[80];
        snprintf(where, sizeof where, "record %llu at byte %zu", (unsigned long long)rec, pos);
        uint64_t n;
        size_t used;
        tp_err e = tp_varint_decode(q->body + pos, q->len - pos, &n, &used);
        const char *why = NULL;
        if (e == TP_ERR_TRUNCATED)
            why = "the body ends inside its length prefix";
        else if (e)
            why = "its length prefix is not a valid varint";
        else if (n > h->o.max_record_bytes)
            why = "its length prefix is above the largest record accepted";
        else if (n > q->len - pos - used)
            why = "the body ends inside it (a truncated upload?)";
        tp_record r;
        if (!why && tp_record_decode(q->body + pos + used, (size_t)n, &r) != TP_OK)
            why = "not a valid telepack.v1.VehicleRecord";
        if (why) {
            v->status = MHD_HTTP_BAD_REQUEST;
            say(v->msg, sizeof v->msg, "%s: %s; nothing taken", where, why);
            snprintf(v->extra, sizeof v->extra, "\"record\":%llu", (unsigned long long)rec);
            return;
        }
        pos += used + (size_t)n;
        check_vehicle(h, q, &r, where, "record", rec, v);
        if (v->status)
            return;
        int rc = out_append(h, q, p, &r);
        if (rc)
            mem_refusal(v, rc);
    }
}

/* ---- delivery: one gateway connection per request ---- */

/* Writes buf into the worker and waits until `records` are acked. 0: all durable; 1: timeout; 2: the worker closed
 * the connection first (failed or stopping); 3: socket error. *acked gets the last ack. */
static int deliver(tp_http_ingest *h, const uint8_t *buf, size_t len, uint64_t records, uint64_t *acked)
{
    *acked = 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv))
        return 3;
    if (tp_ingest_add_fd(h->ing, sv[0]) != TP_OK) { /* it owns sv[0] now, also on error */
        close(sv[1]);
        return 2;
    }
    int fd = sv[1], rc = 1;
    size_t off = 0;
    uint8_t ab[64];
    size_t alen = 0;
    int64_t deadline = tp_mono_ms() + h->o.timeout_ms;
    int wr_closed = 0;
    for (;;) {
        if (off == len && !wr_closed) {
            shutdown(fd, SHUT_WR); /* the worker answers the last ack, then closes */
            wr_closed = 1;
        }
        int64_t left = deadline - tp_mono_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {fd, (short)(POLLIN | (off < len ? POLLOUT : 0)), 0};
        int pr = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
        if (pr < 0 && errno != EINTR) {
            rc = 3;
            break;
        }
        if (pr <= 0)
            continue;
        if ((pfd.revents & POLLOUT) && off < len) {
            ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                rc = 2;
                break;
            }
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, ab + alen, sizeof ab - alen, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                rc = 2;
                break;
            }
            if (r > 0) {
                alen += (size_t)r;
                size_t p = 0;
                for (;;) {
                    uint64_t a;
                    size_t used;
                    if (tp_varint_decode(ab + p, alen - p, &a, &used) != TP_OK)
                        break;
                    *acked = a;
                    p += used;
                }
                memmove(ab, ab + p, alen - p);
                alen -= p;
                if (alen == sizeof ab) { /* not varints: cannot happen with our worker */
                    rc = 3;
                    break;
                }
                if (*acked >= records) {
                    rc = 0;
                    break;
                }
            }
        }
    }
    close(fd);
    return rc;
}

/* ---- records of a run-time schema (o.dyn) ---- */

/* Appends one record's protobuf bytes to p as a frame, counting the growth against the memory cap. */
static int out_frame(tp_http_ingest *h, req *q, parsed *p, const uint8_t *m, size_t n)
{
    if (p->cap - p->len < TP_VARINT_MAX_BYTES + n) {
        size_t nc = p->cap ? p->cap * 2 : 4096;
        while (nc - p->len < TP_VARINT_MAX_BYTES + n)
            nc *= 2;
        if (reserve(h, q, nc - p->cap))
            return -1;
        uint8_t *nb = realloc(p->out, nc);
        if (!nb)
            return -2;
        p->out = nb;
        p->cap = nc;
    }
    p->len += tp_varint_encode(n, p->out + p->len);
    memcpy(p->out + p->len, m, n);
    p->len += n;
    p->records++;
    return 0;
}

/* The key of the row just read: good (0), or a 400/403 verdict. A string key (a VIN) is allowed only by a token
 * whose list covers every vehicle id (no list, or *): the lists hold numbers. */
static int dyn_key_ok(tp_http_ingest *h, req *q, const tp_dyn_batch *row, const char *where, const char *kind,
                      uint64_t num, verdict *v)
{
    char key[TP_DYN_KEY_MAX + 1], why[300];
    size_t klen;
    if (tp_dyn_key_text(row, 0, key, &klen, why, sizeof why)) {
        v->status = MHD_HTTP_BAD_REQUEST;
        say(v->msg, sizeof v->msg, "%s: %s; nothing taken", where, why);
        snprintf(v->extra, sizeof v->extra, "\"%s\":%llu", kind, (unsigned long long)num);
        return -1;
    }
    if (!q->tok)
        return 0;
    const tp_dyn_column *kc = &row->columns[tp_schema_get_roles(h->o.schema)->key];
    int allowed;
    if (kc->def->kind == TP_COL_STRING || kc->def->kind == TP_COL_BYTES)
        allowed = tp_auth_tokens_allows(q->tok, q->token, 0) && tp_auth_tokens_allows(q->tok, q->token, UINT64_MAX);
    else
        allowed = kc->cells[0].i >= 0 && tp_auth_tokens_allows(q->tok, q->token, kc->cells[0].u);
    if (allowed)
        return 0;
    v->status = MHD_HTTP_FORBIDDEN;
    say(v->msg, sizeof v->msg, "%s: vehicle %s is not among the vehicles this token may send for%s; nothing taken",
        where, key, kc->def->kind == TP_COL_STRING || kc->def->kind == TP_COL_BYTES
                        ? " (a string key needs a token for every vehicle: its id list cannot name it)" : "");
    snprintf(v->extra, sizeof v->extra, "\"%s\":%llu", kind, (unsigned long long)num);
    tp_counter_inc(h->auth[AUTH_VEHICLE]);
    return -1;
}

static void dyn_bad(tp_http_ingest *h, verdict *v, const char *kind, uint64_t num, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void dyn_bad(tp_http_ingest *h, verdict *v, const char *kind, uint64_t num, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof v->msg, fmt, ap);
    va_end(ap);
    v->status = MHD_HTTP_BAD_REQUEST;
    snprintf(v->extra, sizeof v->extra, "\"%s\":%llu", kind, (unsigned long long)num);
    tp_counter_inc(h->rejected);
    atomic_fetch_add(&h->nrejected, 1);
}

/* Reads every record of the body under the schema into p (protobuf frames: an NDJSON record's canonical encoding,
 * a protobuf record's own bytes); the first bad one makes the verdict. */
static void validate_dyn(tp_http_ingest *h, req *q, tp_dyn_batch *row, uint8_t *enc, size_t enc_cap, parsed *p,
                         verdict *v)
{
    const char *name = tp_schema_message_name(h->o.schema);
    size_t max = h->o.max_record_bytes, pos = 0;
    uint64_t num = 0;
    while (pos < q->len && !v->status) {
        char where[80];
        const uint8_t *m;
        size_t n;
        tp_err e;
        int rc;
        num++;
        tp_dyn_batch_clear(row);
        if (q->fmt == FMT_NDJSON) {
            const char *s = (const char *)q->body + pos;
            const char *nl = memchr(s, '\n', q->len - pos);
            size_t ln = nl ? (size_t)(nl - s) : q->len - pos, k = 0;
            pos += ln + (nl != NULL);
            while (k < ln && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r'))
                k++;
            if (k == ln)
                continue;
            snprintf(where, sizeof where, "line %llu", (unsigned long long)num);
            if ((e = tp_dyn_json_read(row, s, ln, h->o.json_flags))) {
                if (e == TP_ERR_FULL)
                    dyn_bad(h, v, "line", num, "%s: its strings and arrays are above what a record of %zu bytes "
                            "holds; nothing taken", where, max);
                else
                    dyn_bad(h, v, "line", num, "%s: it is not a record of %s: %s; nothing taken", where, name,
                            row->error);
                return;
            }
            if (tp_dyn_encode(row, 0, enc, enc_cap, &n) || n > max) {
                dyn_bad(h, v, "line", num, "%s: the record encodes to more than the limit of %zu bytes; nothing "
                        "taken", where, max);
                return;
            }
            m = enc;
            if (dyn_key_ok(h, q, row, where, "line", num, v)) {
                if (v->status == MHD_HTTP_BAD_REQUEST) {
                    tp_counter_inc(h->rejected);
                    atomic_fetch_add(&h->nrejected, 1);
                }
                return;
            }
        } else {
            snprintf(where, sizeof where, "record %llu at byte %zu", (unsigned long long)num, pos);
            uint64_t len;
            size_t used;
            e = tp_varint_decode(q->body + pos, q->len - pos, &len, &used);
            const char *why = e == TP_ERR_TRUNCATED ? "the body ends inside its length prefix"
                              : e                   ? "its length prefix is not a valid varint"
                              : len > max           ? "its length prefix is above the largest record accepted"
                              : len > q->len - pos - used ? "the body ends inside it (a truncated upload?)"
                                                          : NULL;
            if (why) {
                dyn_bad(h, v, "record", num, "%s: %s; nothing taken", where, why);
                return;
            }
            m = q->body + pos + used;
            n = (size_t)len;
            if ((e = tp_dyn_decode(row, m, n))) {
                dyn_bad(h, v, "record", num, "%s: it does not decode as %s: %s; nothing taken", where, name,
                        row->error);
                return;
            }
            pos += used + n;
            if (dyn_key_ok(h, q, row, where, "record", num, v)) {
                if (v->status == MHD_HTTP_BAD_REQUEST) {
                    tp_counter_inc(h->rejected);
                    atomic_fetch_add(&h->nrejected, 1);
                }
                return;
            }
        }
        char why[200];
        if (tp_dyn_event_time_out(row, 0, tp_wall_ms(), h->o.max_event_skew_ms, why, sizeof why)) {
            dyn_bad(h, v, q->fmt == FMT_NDJSON ? "line" : "record", num, "%s: %s (a clock or unit error?); nothing "
                    "taken", where, why);
            return;
        }
        if ((rc = out_frame(h, q, p, m, n)))
            mem_refusal(v, rc);
    }
}

static enum MHD_Result finish_dyn(tp_http_ingest *h, struct MHD_Connection *c, req *q)
{
    parsed p = {0};
    verdict v = {0};
    tp_dyn_batch *row = NULL;
    size_t enc_cap = h->o.max_record_bytes + 5 * TP_SCHEMA_MAX_DEPTH;
    uint8_t *enc = malloc(enc_cap);
    /* one request's decoding row: a record of n bytes holds at most n string bytes and n elements of 8 */
    if (!enc || tp_dyn_batch_new(h->o.schema, 1, 9 * h->o.max_record_bytes + 64, &row)) {
        free(enc);
        return answer(h, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
    }
    validate_dyn(h, q, row, enc, enc_cap, &p, &v);
    tp_dyn_batch_free(row);
    free(enc);
    if (!v.status && p.records == 0) {
        v.status = MHD_HTTP_BAD_REQUEST;
        say(v.msg, sizeof v.msg, "the body holds no records");
    }
    if (v.status) {
        free(p.out);
        return answer(h, c, v.status, v.msg, v.extra);
    }
    free(q->body);
    q->body = NULL;
    tp_dyn_ticket *t = NULL;
    char m[700], why[512] = "";
    uint64_t durable = 0;
    tp_err e = tp_dyn_ingest_submit(h->o.dyn, p.out, p.len, p.records, &t, why, sizeof why);
    free(p.out);
    int rc = e ? 2 : tp_dyn_ingest_wait(h->o.dyn, t, h->o.timeout_ms, &durable);
    tp_dyn_ticket_release(h->o.dyn, t);
    if (rc == 0) {
        tp_counter_add(h->records, p.records);
        tp_counter_add(h->bytes, q->len);
        snprintf(m, sizeof m, "{\"records\":%llu,\"bytes\":%zu}", (unsigned long long)p.records, q->len);
        return answer(h, c, MHD_HTTP_OK, m, NULL);
    }
    if (rc == 1)
        say(m, sizeof m,
            "Kafka did not confirm the records within %d ms (%llu of %llu durable); retry the whole request "
            "(records delivered twice are removed downstream)",
            h->o.timeout_ms, (unsigned long long)durable, (unsigned long long)p.records);
    else if (worker_failed(h, why, sizeof why) || e)
        say(m, sizeof m, "the ingest worker failed (%.500s) before the records were durable; retry against another "
            "worker", why);
    else
        say(m, sizeof m, "the ingest worker is shutting down (%llu of %llu records durable); retry the whole request",
            (unsigned long long)durable, (unsigned long long)p.records);
    tp_log(TP_LOG_WARN, "http", "answering 503: %s", m);
    return answer(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, m, NULL);
}

/* ---- the request handler ---- */

static int media_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, want, n))
        return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

static void free_req(tp_http_ingest *h, req *q)
{
    if (!q)
        return;
    atomic_fetch_sub(&h->reserved, q->reserved);
    tok_put(q->tok);
    free(q->body);
    free(q);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    free_req(cls, *req_cls);
    *req_cls = NULL;
}

/* First call of a request: everything that can be decided from the headers. 0 = go on, else a response was
 * queued (its result in *ret). */
static int check_headers(tp_http_ingest *h, struct MHD_Connection *c, const char *url, const char *method, req *q,
                         enum MHD_Result *ret)
{
    if (strcmp(url, "/v1/records")) {
        *ret = answer(h, c, MHD_HTTP_NOT_FOUND, "not found: records go to POST /v1/records", NULL);
        return 1;
    }
    if (strcmp(method, MHD_HTTP_METHOD_POST)) {
        *ret = answer(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, "only POST is supported on /v1/records", NULL);
        return 1;
    }
    q->tok = tok_get(h);
    if (q->tok) {
        const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        int why = -1;
        if (!a) {
            why = AUTH_MISSING;
        } else if (strncasecmp(a, "Bearer ", 7)) {
            why = AUTH_MALFORMED;
        } else {
            a += 7;
            while (*a == ' ')
                a++;
            size_t n = strlen(a);
            while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
                n--;
            q->token = tp_auth_tokens_find(q->tok, a, n);
            if (q->token < 0)
                why = AUTH_UNKNOWN;
        }
        if (why >= 0) {
            tp_counter_inc(h->auth[why]);
            *ret = answer(h, c, MHD_HTTP_UNAUTHORIZED,
                          why == AUTH_MISSING     ? "missing Authorization header; send 'Authorization: Bearer TOKEN'"
                          : why == AUTH_MALFORMED ? "the Authorization header is not 'Bearer TOKEN'"
                                                  : "unknown token",
                          NULL);
            return 1;
        }
    }
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct && (media_is(ct, "application/x-ndjson") || media_is(ct, "application/ndjson")))
        q->fmt = FMT_NDJSON;
    else if (ct && (media_is(ct, "application/x-protobuf") || media_is(ct, "application/protobuf")))
        q->fmt = FMT_PROTO;
    if (!q->fmt) {
        char m[300];
        say(m, sizeof m, "content type '%.100s' is not application/x-ndjson or application/x-protobuf",
            ct ? ct : "(none)");
        *ret = answer(h, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, m, NULL);
        return 1;
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long want = cl ? strtoull(cl, NULL, 10) : 0;
    if (want > h->o.max_body_bytes) {
        char m[200];
        say(m, sizeof m, "the body has %llu bytes, above the limit of %zu (--http-max-body); split it", want,
            h->o.max_body_bytes);
        *ret = answer(h, c, MHD_HTTP_CONTENT_TOO_LARGE, m, NULL);
        return 1;
    }
    if (atomic_load(&h->closing)) {
        *ret = answer(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, "the ingest worker is shutting down; retry against another",
                      NULL);
        return 1;
    }
    char why[512];
    if (worker_failed(h, why, sizeof why)) {
        char m[600];
        say(m, sizeof m, "the ingest worker failed (%.500s); retry against another worker", why);
        *ret = answer(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, m, NULL);
        return 1;
    }
    int paused = 0;
    worker_held(h, &paused);
    if (paused || (want && reserve(h, q, (size_t)want))) {
        *ret = answer(h, c, MHD_HTTP_SERVICE_UNAVAILABLE,
                      "memory cap reached (--max-buffered-bytes): Kafka is behind; retry later", NULL);
        return 1;
    }
    if (want) {
        q->body = malloc((size_t)want);
        if (!q->body) {
            *ret = answer(h, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
            return 1;
        }
        q->cap = (size_t)want;
    }
    return 0;
}

static enum MHD_Result finish_dyn(tp_http_ingest *h, struct MHD_Connection *c, req *q);

static enum MHD_Result finish(tp_http_ingest *h, struct MHD_Connection *c, req *q)
{
    if (h->o.dyn)
        return finish_dyn(h, c, q); /* a run-time schema: its own path, below */
    parsed p = {0};
    verdict v = {0};
    if (q->fmt == FMT_NDJSON)
        validate_ndjson(h, q, &p, &v);
    else
        validate_proto(h, q, &p, &v);
    if (!v.status && p.records == 0) {
        v.status = MHD_HTTP_BAD_REQUEST;
        say(v.msg, sizeof v.msg, "the body holds no records");
    }
    enum MHD_Result ret;
    if (v.status) {
        ret = answer(h, c, v.status, v.msg, v.extra);
        free(p.out);
        return ret;
    }
    free(q->body); /* only the encoded records are needed from here on */
    q->body = NULL;
    uint64_t acked = 0;
    int rc = deliver(h, p.out, p.len, p.records, &acked);
    free(p.out);
    char m[600];
    if (rc == 0) {
        tp_counter_add(h->records, p.records);
        tp_counter_add(h->bytes, q->len);
        snprintf(m, sizeof m, "{\"records\":%llu,\"bytes\":%zu}", (unsigned long long)p.records, q->len);
        return answer(h, c, MHD_HTTP_OK, m, NULL);
    }
    char why[512] = "";
    if (rc == 1)
        say(m, sizeof m,
            "Kafka did not confirm the records within %d ms (%llu of %llu durable); retry the whole request "
            "(records delivered twice are removed downstream)",
            h->o.timeout_ms, (unsigned long long)acked, (unsigned long long)p.records);
    else if (tp_ingest_failed(h->ing, why, sizeof why))
        say(m, sizeof m, "the ingest worker failed (%s) before the records were durable; retry against another worker",
            why);
    else
        say(m, sizeof m, "the ingest worker is shutting down (%llu of %llu records durable); retry the whole request",
            (unsigned long long)acked, (unsigned long long)p.records);
    tp_log(TP_LOG_WARN, "http", "answering 503: %s", m);
    return answer(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, m, NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_size, void **req_cls)
{
    (void)version;
    tp_http_ingest *h = cls;
    req *q = *req_cls;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q)
            return MHD_NO;
        *req_cls = q;
        q->token = -1;
        enum MHD_Result ret;
        if (check_headers(h, c, url, method, q, &ret)) {
            q->refused = 1;
            return ret;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (q->refused)
            return MHD_YES;
        if (q->late) { /* libmicrohttpd answers only after the body: drop it, up to a bound */
            q->discarded += n;
            return q->discarded > 4 * h->o.max_body_bytes ? MHD_NO : MHD_YES;
        }
        if (q->len + n > h->o.max_body_bytes) {
            q->late = MHD_HTTP_CONTENT_TOO_LARGE;
            free(q->body);
            q->body = NULL;
            q->len = q->cap = 0;
            return MHD_YES;
        }
        if (q->len + n > q->cap) { /* no Content-Length (chunked), or more than it said */
            size_t nc = q->cap ? q->cap : 65536;
            while (nc < q->len + n)
                nc *= 2;
            if (nc > h->o.max_body_bytes)
                nc = h->o.max_body_bytes;
            uint8_t *nb = reserve(h, q, nc - q->cap) ? NULL : realloc(q->body, nc);
            if (!nb) {
                q->late = MHD_HTTP_SERVICE_UNAVAILABLE;
                return MHD_YES;
            }
            q->body = nb;
            q->cap = nc;
        }
        memcpy(q->body + q->len, upload_data, n);
        q->len += n;
        return MHD_YES;
    }
    if (q->refused)
        return MHD_YES;
    q->refused = 1; /* answered from here on */
    if (q->late == MHD_HTTP_CONTENT_TOO_LARGE) {
        char m[200];
        say(m, sizeof m, "the body is larger than the limit of %zu bytes (--http-max-body); split it",
            h->o.max_body_bytes);
        return answer(h, c, MHD_HTTP_CONTENT_TOO_LARGE, m, NULL);
    }
    if (q->late)
        return answer(h, c, MHD_HTTP_SERVICE_UNAVAILABLE,
                      "memory cap reached (--max-buffered-bytes): Kafka is behind; retry later", NULL);
    return finish(h, c, q);
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    tp_log(TP_LOG_WARN, "http", "%s", msg);
}

/* ---- start / stop ---- */

static char *slurp_text(const char *path, const char *what, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        say(err, errlen, "cannot open the %s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    size_t cap = 8192, len = 0;
    char *b = malloc(cap);
    while (b) {
        if (len + 1 >= cap) {
            if (cap > (1u << 20)) {
                say(err, errlen, "the %s %s is larger than 1 MiB; is it really PEM?", what, path);
                free(b);
                b = NULL;
                break;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + len, 1, cap - 1 - len, f);
        len += got;
        if (!got)
            break;
    }
    fclose(f);
    if (b)
        b[len] = '\0';
    return b;
}

static int bind_listen(const char *addr, uint16_t *bound, int *family, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    tp_http_parse_listen(addr, host, sizeof host, &port);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", (unsigned)port);
    int gai = getaddrinfo(host[0] ? host : NULL, ps, &hints, &ai);
    if (gai) {
        say(err, errlen, "cannot resolve --http-listen host '%s': %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int e = fd < 0 ? errno : 0;
    *family = ai->ai_family;
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128))
            e = errno;
    }
    freeaddrinfo(ai);
    if (e) {
        say(err, errlen, "cannot listen on --http-listen %s: %s%s", addr, strerror(e),
            e == EADDRINUSE ? " (pick another port, or 0 to let the system choose)" : "");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *bound = port;
    if (!getsockname(fd, (struct sockaddr *)&ss, &sl))
        *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void register_metrics(tp_http_ingest *h)
{
    tp_metrics *m = h->o.metrics;
    if (!m)
        return;
    char labels[64];
    for (size_t i = 0; i < NCODES; i++) {
        snprintf(labels, sizeof labels, "code=\"%u\"", k_codes[i]);
        h->requests[i] = tp_metrics_counter(m, TP_M_HTTP_REQUESTS, "HTTP ingest requests by response status",
                                            labels);
    }
    h->records = tp_metrics_counter(m, TP_M_HTTP_RECORDS, "records of HTTP requests answered 200 (durable in Kafka)",
                                    NULL);
    h->bytes = tp_metrics_counter(m, TP_M_HTTP_BYTES, "request body bytes of HTTP requests answered 200", NULL);
    h->rejected = tp_metrics_counter(m, TP_M_HTTP_REJECTED,
                                     "records refused with 400 (not valid: a bad line, frame or key); their request "
                                     "was refused whole", NULL);
    for (int i = 0; i < NAUTH; i++) {
        snprintf(labels, sizeof labels, "reason=\"%s\"", k_auth_reasons[i]);
        h->auth[i] = tp_metrics_counter(m, TP_M_HTTP_AUTH_FAILURES,
                                        "HTTP ingest requests refused by authentication (401) or vehicle allowance "
                                        "(403)",
                                        labels);
    }
}

tp_err tp_http_ingest_metrics_register(tp_metrics *m)
{
    tp_http_ingest h;
    memset(&h, 0, sizeof h);
    h.o.metrics = m;
    register_metrics(&h);
    return tp_metrics_status(m, NULL);
}

tp_err tp_http_ingest_start(const tp_http_ingest_opts *o, tp_ingest *ing, tp_http_ingest **out, char *err,
                            size_t errlen)
{
    if (!o || (!ing && !o->dyn) || (o->dyn && !o->schema) || !out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_err e = tp_http_ingest_check_opts(o, err, errlen);
    if (e)
        return e;
    if (o->tls_cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        say(err, errlen,
            "this libmicrohttpd (%s) was built without TLS support, so --http-tls-cert cannot be served; install a "
            "build with GnuTLS or put a TLS proxy in front (with --insecure on loopback)",
            MHD_get_version());
        return TP_ERR_INVALID_ARG;
    }
    tp_http_ingest *h = calloc(1, sizeof *h);
    if (!h)
        return TP_ERR_NOMEM;
    h->o = *o;
    h->ing = ing;
    if (o->tokens) {
        h->tokens = o->tokens;
    } else if (o->tokens_path) {
        if ((e = tp_auth_store_load(o->tokens_path, &h->tokens, err, errlen))) {
            tp_http_ingest_stop(h);
            return e;
        }
        h->own_tokens = 1;
    }
    if (o->tls_cert) {
        h->cert = slurp_text(o->tls_cert, "TLS certificate", err, errlen);
        h->key = h->cert ? slurp_text(o->tls_key, "TLS key", err, errlen) : NULL;
        if (!h->key) {
            tp_http_ingest_stop(h);
            return TP_ERR_IO;
        }
    }
    register_metrics(h);
    int family = AF_INET;
    int fd = bind_listen(o->listen, &h->port, &family, err, errlen);
    if (fd < 0) {
        tp_http_ingest_stop(h);
        return TP_ERR_IO;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                     MHD_USE_AUTO | MHD_USE_ITC; /* ITC: tp_http_ingest_quiesce */
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (h->cert)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->key},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                 MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_NOTIFY_COMPLETED,
                                 on_completed, h, MHD_OPTION_ARRAY, h->cert ? tls : none, MHD_OPTION_END);
    if (!h->daemon) {
        close(fd);
        say(err, errlen, "cannot start the HTTP ingest on %s (libmicrohttpd refused%s)", o->listen,
            h->cert ? "; are the certificate and key valid PEM and a matching pair?" : "");
        tp_http_ingest_stop(h);
        return TP_ERR_IO;
    }
    *out = h;
    return TP_OK;
}

uint64_t tp_http_ingest_rejected(tp_http_ingest *h)
{
    return h ? atomic_load(&h->nrejected) : 0;
}

uint16_t tp_http_ingest_port(const tp_http_ingest *h)
{
    return h ? h->port : 0;
}

void tp_http_ingest_quiesce(tp_http_ingest *h)
{
    if (!h || atomic_exchange(&h->closing, 1))
        return;
    int fd = MHD_quiesce_daemon(h->daemon);
    if (fd >= 0)
        close(fd);
}

void tp_http_ingest_stop(tp_http_ingest *h)
{
    if (!h)
        return;
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    if (h->own_tokens)
        tp_auth_store_free(h->tokens);
    if (h->key)
        memset(h->key, 0, strlen(h->key));
    free(h->key);
    free(h->cert);
    free(h);
}
