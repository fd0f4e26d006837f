/* The gateway side of the gateway protocol (docs/GATEWAY.md): sends VehicleRecord messages over TCP or TLS (v2: after a
 * hello with a token and the gateway id, as typed frames; v1: varint length-prefixed), reads cumulative acks (and in
 * v2 rejects, heartbeats, a goodbye), keeps every unacked record in a bounded buffer (send blocks when it is full),
 * and after a disconnect reconnects with backoff and resends what was not acked and not rejected. */
#ifndef TELEPACK_GATEWAY_CLIENT_H
#define TELEPACK_GATEWAY_CLIENT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "telepack/error.h"
#include "telepack/record.h"

typedef struct tp_gateway_client_opts {
    const char *connect;          /* "HOST:PORT" of an ingest worker; ignored when fd >= 0 */
    int fd;                       /* >= 0: an already connected stream socket, owned by the client; no reconnects
                                     (a disconnect is then final: TP_ERR_UNAVAILABLE). Default -1 */
    size_t max_unacked_bytes;     /* bound of the resend buffer (default 4 MiB) */
    int backoff_min_ms;           /* first reconnect delay (default 100), doubled up to backoff_max_ms */
    int backoff_max_ms;           /* default 5000 */
    volatile sig_atomic_t *stop;  /* optional: when *stop becomes non-zero, blocking calls return TP_ERR_AGAIN */
    int protocol;                 /* 2 (default) or 1 */
    const char *token;            /* v2: authentication token sent in the hello, or NULL */
    const char *gateway_id;       /* v2: name in the server's logs (1..64 of A-Z a-z 0-9 . _ : / -), or NULL */
    uint64_t vehicles;            /* v2: vehicles this connection carries (sizes the server's suggested window) */
    size_t max_window_bytes;      /* v2: the resend buffer grows to the server's suggested window up to this
                                     (default 64 MiB; never below max_unacked_bytes) */
    const char *tls_ca;           /* PEM CA file: connect with TLS and verify the server's certificate against it,
                                     and that it names the host of `connect` (DNS name or IP address); NULL: plain
                                     TCP. Not with fd. The process must ignore SIGPIPE (gateway_tls.h) */
    const char *tls_cert;         /* client certificate (PEM) for mutual TLS, with tls_key; NULL: none */
    const char *tls_key;
    const char *tls_server_name;  /* the name to expect in the server's certificate instead of connect's host */
} tp_gateway_client_opts;

void tp_gateway_client_opts_init(tp_gateway_client_opts *o);

typedef struct tp_gateway_client tp_gateway_client;

typedef struct tp_gateway_client_stats {
    uint64_t records_sent;        /* records handed to send (each counted once, resends not counted) */
    uint64_t bytes_sent;          /* their framed bytes (length prefix included) */
    uint64_t records_acked;       /* records the server acknowledged as durable (rejected ones not counted) */
    uint64_t resent;              /* records written again after a reconnect */
    uint64_t connects;            /* successful connections */
    uint64_t unacked_records;     /* in the resend buffer now */
    size_t unacked_bytes;
    uint64_t records_rejected;    /* v2: records the server rejected (dropped, never resent) */
    size_t window_bytes;          /* the resend buffer's bound now (grown to the server's suggestion) */
    uint64_t write_calls;         /* writes of record data attempted (system calls; each may take many records) */
    int refused;                  /* v2: the last handshake refusal status (0 = none) */
    char last_reason[128];        /* v2: the last reject, goodbye or refusal reason */
} tp_gateway_client_stats;

/* Does not connect yet (the first send or pump does). TP_ERR_INVALID_ARG for a bad address or TLS options (a CA,
 * certificate or key that cannot be used); not thread-safe. tp_gateway_client_new_err also says why in err. */
tp_err tp_gateway_client_new(const tp_gateway_client_opts *opts, tp_gateway_client **out);
tp_err tp_gateway_client_new_err(const tp_gateway_client_opts *opts, tp_gateway_client **out, char *err,
                                 size_t errlen);
void tp_gateway_client_free(tp_gateway_client *c);

/* Encodes *r and queues it (it is written at once when 16 KiB are pending or 2 ms passed since the last write,
 * measured on the coarse clock: up to a kernel tick; pump, drain or the next send writes the rest); blocks (pumping
 * the connection, reconnecting as needed) while the resend buffer is full.
 * TP_ERR_AGAIN if *opts.stop was raised while blocked, TP_ERR_UNAVAILABLE if a caller-given fd broke. */
tp_err tp_gateway_client_send(tp_gateway_client *c, const tp_record *r);

/* Same for an already encoded VehicleRecord message msg[0..len) (the client adds the length prefix). */
tp_err tp_gateway_client_send_encoded(tp_gateway_client *c, const uint8_t *msg, size_t len);

/* Writes what it can and reads acks, waiting up to timeout_ms (0 = do not wait). */
tp_err tp_gateway_client_pump(tp_gateway_client *c, int timeout_ms);

/* Blocks until every queued record is acked (TP_OK) or timeout_ms passed (TP_ERR_AGAIN; -1 = no timeout). */
tp_err tp_gateway_client_drain(tp_gateway_client *c, int timeout_ms);

/* After a refusal that needs an operator (v2 status 1-4: version, bad hello, authentication; or a TLS failure about
 * certificates or a TLS alert from the server: wrong CA, host name mismatch, client certificate refused, no TLS on
 * that port), every call returns TP_ERR_UNAVAILABLE; stats.refused (-1 for TLS) and stats.last_reason say why. */

/* Drops the connection now (unacked records stay queued and are resent on the next connection). For tests. */
void tp_gateway_client_disconnect(tp_gateway_client *c);

void tp_gateway_client_stats_get(const tp_gateway_client *c, tp_gateway_client_stats *st);

/* A gateway's window (max_unacked_bytes) sized for what it carries: want clamped to 4..64 MiB. Records are acked
 * once their pack is in Kafka, so a window smaller than a full batch of each of the gateway's vehicles stalls it
 * until the ingest's linger timer flushes; the cap bounds the gateway's resend buffer. */
#define TP_GATEWAY_WINDOW_MIN ((size_t)4 << 20)
#define TP_GATEWAY_WINDOW_MAX ((size_t)64 << 20)
static inline size_t tp_gateway_window(uint64_t want)
{
    return want < TP_GATEWAY_WINDOW_MIN ? TP_GATEWAY_WINDOW_MIN
           : want > TP_GATEWAY_WINDOW_MAX ? TP_GATEWAY_WINDOW_MAX
                                          : (size_t)want;
}

#endif
