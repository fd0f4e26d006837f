/* The ingest side of the gateway protocol (docs/GATEWAY.md): one epoll loop over non-blocking TCP connections that
 * reads VehicleRecord messages (v1: varint length-prefixed; v2: a handshake, then typed frames), hands each decoded
 * record to a callback with a tag, and sends each connection a cumulative ack once every record up to it has been
 * reported durable. v2 connections also get per-record rejects, heartbeats and a goodbye with a reason; every
 * connection is subject to the idle timeout and the per-address cap. */
#ifndef TELEPACK_GATEWAY_SERVER_H
#define TELEPACK_GATEWAY_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/batcher.h"
#include "telepack/error.h"
#include "telepack/record.h"

/* Protocol v2 codes (docs/GATEWAY.md). */
#define TP_GW_MAGIC0 0xD4u
#define TP_GW_MAGIC1 0xD0u
#define TP_GW_MAGIC2 0xC7u
#define TP_GW_MAGIC3 0x57u
#define TP_GW_VERSION 2u
#define TP_GW_HELLO_MAX 1024u        /* largest hello body, both directions */
#define TP_GW_HELLO_TIMEOUT_MS 10000 /* a gateway's hello must arrive within this (or the idle timeout) */

#define TP_GW_FRAME_RECORD 0x01u
#define TP_GW_FRAME_HEARTBEAT 0x02u
#define TP_GW_FRAME_ACK 0x81u
#define TP_GW_FRAME_REJECT 0x82u
#define TP_GW_FRAME_SERVER_HEARTBEAT 0x83u
#define TP_GW_FRAME_GOODBYE 0x84u

typedef enum tp_gw_reject { /* REJECT codes */
    TP_GW_REJECT_MALFORMED = 1,
    TP_GW_REJECT_TOO_LARGE = 2,
    TP_GW_REJECT_VEHICLE = 3,
    TP_GW_REJECT_EVENT_TIME = 4,
    TP_GW_REJECT__COUNT
} tp_gw_reject;

typedef enum tp_gw_refusal { /* ServerHello status */
    TP_GW_HELLO_OK = 0,
    TP_GW_REFUSE_VERSION = 1,
    TP_GW_REFUSE_BAD_HELLO = 2,
    TP_GW_REFUSE_AUTH_REQUIRED = 3,
    TP_GW_REFUSE_AUTH_FAILED = 4,
    TP_GW_REFUSE_SHUTTING_DOWN = 5,
    TP_GW_REFUSE_V1 = 6,        /* not a wire code: a v1 connection while authentication is required */
    TP_GW_REFUSE__COUNT
} tp_gw_refusal;

typedef enum tp_gw_goodbye { /* GOODBYE codes */
    TP_GW_BYE_PROTOCOL = 1,
    TP_GW_BYE_IDLE = 2,
    TP_GW_BYE_SHUTTING_DOWN = 3
} tp_gw_goodbye;

/* Why connections were closed by the server (telepack_ingest_connections_closed_total{reason}). */
typedef enum tp_gw_close {
    TP_GW_CLOSE_IDLE = 0,        /* idle timeout, or no hello in time */
    TP_GW_CLOSE_PER_IP,          /* --max-conns-per-ip */
    TP_GW_CLOSE_MAX_CONNS,       /* the connection limit */
    TP_GW_CLOSE_PROTOCOL,        /* a framing error (v2) or a bad record (v1) */
    TP_GW_CLOSE_REFUSED,         /* handshake refused */
    TP_GW_CLOSE_IO,              /* read/write failure, or the peer went away mid-frame */
    TP_GW_CLOSE_TLS,             /* TLS: a failed handshake, plaintext on a TLS port, TLS on a plain port */
    TP_GW_CLOSE__COUNT
} tp_gw_close;

/* Why TLS did not start (telepack_ingest_gateway_tls_failures_total{reason}). */
typedef enum tp_gw_tls_fail {
    TP_GW_TLS_PLAINTEXT = 0,     /* plaintext (v1 or a v2 hello) sent to the TLS port */
    TP_GW_TLS_TO_PLAIN,          /* a TLS handshake sent to a port without TLS */
    TP_GW_TLS_HANDSHAKE,         /* the handshake failed (protocol versions, ciphers, the peer went away) */
    TP_GW_TLS_CLIENT_CERT,       /* mutual TLS: no client certificate, or one the client CA did not sign */
    TP_GW_TLS__COUNT
} tp_gw_tls_fail;

const char *tp_gw_tls_fail_name(tp_gw_tls_fail r); /* "plaintext", "tls_to_plain_port", ... */
const char *tp_gw_reject_name(tp_gw_reject r);   /* "malformed", "too_large", ... */
const char *tp_gw_refusal_name(tp_gw_refusal r); /* "unsupported_version", ..., "v1_not_allowed" */
const char *tp_gw_close_name(tp_gw_close r);     /* "idle_timeout", "per_ip_limit", ... */

/* Authentication of v2 gateways (a token file: find = token -> identity index or -1; allows = may that identity
 * send records of this vehicle). With an auth set, v1 connections and hellos without a known token are refused
 * (sockets adopted with tp_gateway_server_add_trusted_fd are exempt: the HTTP endpoint checked its requests).
 * acquire (optional) returns a reference to the credentials in force, which a connection keeps from its hello to
 * its close and passes to find and allows as their ctx (so a reload never changes what its identity means); release
 * gives it back. Without acquire, find and allows get ctx. */
typedef struct tp_gateway_auth {
    void *ctx;
    int (*find)(void *ctx, const char *token, size_t len);
    int (*allows)(void *ctx, int identity, uint64_t vehicle_id);
    void *(*acquire)(void *ctx);
    void (*release)(void *ctx, void *ref);
} tp_gateway_auth;

struct tp_tls_server; /* gateway_tls.h */

typedef struct tp_gateway_server_opts {
    const char *listen;         /* "HOST:PORT" (port 0: any free port); NULL: no listening socket */
    size_t max_record_bytes;    /* largest record accepted (default TP_DEFAULT_MAX_RECORD_BYTES) */
    size_t conn_buffer_bytes;   /* read buffer per connection (default 64 KiB, at least max_record_bytes + 10) */
    uint32_t max_connections;   /* connections beyond this are refused with a log line (default 4096) */
    uint32_t block_records;     /* records per arrival block of the ack watermark (default 1024) */
    uint32_t max_conns_per_ip;  /* connections from one source address (default 64; AF_UNIX fds are exempt) */
    int idle_timeout_ms;        /* close connections silent this long (default 60000; v1 only when all acked) */
    int heartbeat_ms;           /* v2: send a heartbeat after this long without sending (default idle / 3) */
    int64_t max_event_skew_ms;  /* v2: reject records sampled further than this from now (default 3653 days;
                                   negative: no bound) */
    uint32_t batch_records;     /* advertised in the ServerHello and used for the suggested window (default 200) */
    uint32_t linger_ms;         /* advertised (default 1000) */
    size_t max_window_bytes;    /* cap of the suggested window (default 64 MiB) */
    const tp_gateway_auth *auth; /* NULL: no authentication; must outlive the server */
    struct tp_tls_server *tls;  /* NULL: plain TCP; else every accepted connection starts with a TLS handshake
                                   (within the hello deadline); adopted sockets stay plain. Must outlive the server */
    int quiet_ms;               /* with on_sent: a connection with unacked records that sent nothing for this long
                                   is reported once (default 20; 0 = never) */
} tp_gateway_server_opts;

void tp_gateway_server_opts_init(tp_gateway_server_opts *o);

/* Receives one decoded record of a connection. `tag` says where it came from (copy it into the batch). Return
 * TP_OK when taken, TP_ERR_AGAIN to refuse it for now: the server then pauses reading every connection (the record
 * stays buffered) until tp_gateway_server_resume. Any other error closes that connection. Runs on the loop thread. */
typedef tp_err (*tp_gateway_record_fn)(void *ctx, const tp_record *r, size_t wire_len, const tp_batch_tag *tag);

/* A connection (source, generation: as in its tags) has sent what it will send for now: `stalled` = 0 when it went
 * quiet for quiet_ms with records not yet acked (the end of an upload or of a replay), 1 when its unacked record
 * bytes passed half its window (the gateway stops sending at its window until acks come). Each is reported once,
 * again after the connection sent more (quiet) or fell below a quarter of its window (stalled). The window: what
 * the v2 hello suggested, max_window_bytes for adopted trusted sockets (the replay's window), 4 MiB (the gateway
 * client's default) for v1 connections. Loop thread. */
typedef void (*tp_gateway_sent_fn)(void *ctx, uint32_t source, uint32_t generation, int stalled);

typedef struct tp_gateway_server tp_gateway_server;

typedef struct tp_gateway_server_stats {
    uint32_t connections;       /* open now */
    uint64_t accepted;          /* connections accepted so far */
    uint64_t closed_on_error;   /* connections closed for a protocol violation or an I/O error */
    uint64_t records_in;        /* records decoded and taken */
    uint64_t bytes_in;          /* wire bytes of those records */
    uint64_t records_acked;     /* records acknowledged to gateways (sum over connections) */
    uint64_t records_pending;   /* records of open connections taken but not yet acknowledged */
    int paused;                 /* reading paused for backpressure */
    uint64_t pauses;            /* times reading was paused for backpressure */
    uint32_t connections_v2;    /* open connections past a v2 handshake */
    uint64_t rejected[TP_GW_REJECT__COUNT];     /* records set aside (v2) or closing their connection (v1), by code */
    uint64_t refused[TP_GW_REFUSE__COUNT];      /* handshakes refused, by status */
    uint64_t closed[TP_GW_CLOSE__COUNT];        /* connections closed by the server, by reason */
    uint64_t heartbeats_in;     /* v2 heartbeat frames received */
    uint64_t tls_sessions;      /* TLS handshakes completed */
    uint64_t tls_failures[TP_GW_TLS__COUNT]; /* connections that did not get through TLS, by reason */
} tp_gateway_server_stats;

/* Binds and listens (when opts->listen is set). Errors: TP_ERR_INVALID_ARG (bad HOST:PORT), TP_ERR_IO (bind/listen
 * failed; errbuf says why), TP_ERR_NOMEM. errbuf (may be NULL) receives a sentence on failure. */
tp_err tp_gateway_server_new(const tp_gateway_server_opts *opts, tp_gateway_record_fn on_record, void *ctx,
                             tp_gateway_server **out, char *errbuf, size_t errlen);
void tp_gateway_server_free(tp_gateway_server *s);
/* Sets the callback of quiet and stalled connections (NULL: none). Before the loop runs. */
void tp_gateway_server_on_sent(tp_gateway_server *s, tp_gateway_sent_fn fn);
/* Records of a run-time schema (`ingest --schema --listen`, docs/SCHEMA.md): the server does not decode
 * VehicleRecord but hands each record's bytes to `check`, which returns 0 when the record is valid (setting
 * *has_id and *id to an integer key for the token check; a string key sets *has_id = 0, and then only a token
 * allowing every vehicle may send it), else a reject code with a reason in why[0..cap) (v2: a REJECT frame, the
 * record settled; v1: the connection is closed). A valid, allowed record goes to `take`, which answers as the
 * record callback does. The event-time bound (max_event_skew_ms) is not applied: check may apply its own. Loop
 * thread. Set before the loop runs; the record callback is then not called. */
typedef struct tp_gateway_raw_fns {
    int (*check)(void *ctx, const uint8_t *msg, size_t len, int *has_id, uint64_t *id, char *why, size_t cap);
    tp_err (*take)(void *ctx, const uint8_t *msg, size_t len, size_t wire_len, const tp_batch_tag *tag);
} tp_gateway_raw_fns;
void tp_gateway_server_on_raw(tp_gateway_server *s, const tp_gateway_raw_fns *fns);

/* 1 when the connection (source, generation as in its tags) has sent nothing for quiet_ms (or is gone), else 0. */
int tp_gateway_server_quiet(const tp_gateway_server *s, uint32_t source, uint32_t generation);
/* quiet_ms while some connection may go quiet (the longest the caller's poll timeout should be), else -1. */
int tp_gateway_server_quiet_pending(const tp_gateway_server *s);

/* The bound TCP port (useful with port 0), or 0 without a listening socket. */
int tp_gateway_server_port(const tp_gateway_server *s);

/* Adopts an already connected stream socket (e.g. one end of a socketpair) as a gateway connection; the server
 * owns fd from then on, also on error. Loop thread only (or before the loop runs). */
tp_err tp_gateway_server_add_fd(tp_gateway_server *s, int fd);

/* The same for a socket whose records were authenticated already (the HTTP endpoint's requests, a local replay):
 * no authentication applies to it, whatever opts.auth says. */
tp_err tp_gateway_server_add_trusted_fd(tp_gateway_server *s, int fd);

/* One round of the loop: waits up to timeout_ms (-1 = forever) for sockets or a wake-up, then accepts, reads,
 * decodes and writes acks. TP_ERR_IO only if epoll itself fails. */
tp_err tp_gateway_server_poll(tp_gateway_server *s, int timeout_ms);

/* Makes a blocked or future tp_gateway_server_poll return soon. Thread-safe, async-signal-safe. */
void tp_gateway_server_wake(tp_gateway_server *s);

/* Reports tag->count records of tag's block durable. Tags of closed connections are ignored. Acks are queued,
 * then sent by tp_gateway_server_flush_acks. Loop thread only. */
void tp_gateway_server_complete(tp_gateway_server *s, const tp_batch_tag *tag);

/* Sends every ack that advanced (one varint per connection, the latest value only). Loop thread only. */
void tp_gateway_server_flush_acks(tp_gateway_server *s);

/* Resumes reading after a TP_ERR_AGAIN from the callback; records already buffered are offered first. */
void tp_gateway_server_resume(tp_gateway_server *s);
int tp_gateway_server_paused(const tp_gateway_server *s);

/* Closes the listening socket; open connections carry on. */
void tp_gateway_server_stop_accepting(tp_gateway_server *s);

/* Stops reading from every connection (shutdown): they only receive acks from now on. */
void tp_gateway_server_stop_reading(tp_gateway_server *s);

/* Closes every connection (their pending acks are dropped). */
void tp_gateway_server_close_all(tp_gateway_server *s);

void tp_gateway_server_stats_get(const tp_gateway_server *s, tp_gateway_server_stats *st);

/* Splits "HOST:PORT" or "[V6]:PORT" (also ":PORT" = all interfaces; host "") into host and port, by
 * tp_hostport_parse (common/hostport.h): a bare IPv6 address such as "::1:7070" is refused. */
tp_err tp_gateway_parse_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen);

#endif
