/* The ingest side of the gateway protocol (docs/GATEWAY.md): one epoll loop over non-blocking TCP connections that
 * reads varint length-prefixed VehicleRecord messages, hands each decoded record to a callback with a tag, and
 * sends each connection a cumulative ack once every record up to it has been reported durable. */
#ifndef TELEPACK_GATEWAY_SERVER_H
#define TELEPACK_GATEWAY_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/batcher.h"
#include "telepack/error.h"
#include "telepack/record.h"

typedef struct tp_gateway_server_opts {
    const char *listen;         /* "HOST:PORT" (port 0: any free port); NULL: no listening socket */
    size_t max_record_bytes;    /* largest record accepted (default TP_DEFAULT_MAX_RECORD_BYTES) */
    size_t conn_buffer_bytes;   /* read buffer per connection (default 64 KiB, at least max_record_bytes + 10) */
    uint32_t max_connections;   /* connections beyond this are refused with a log line (default 4096) */
    uint32_t block_records;     /* records per arrival block of the ack watermark (default 1024) */
} tp_gateway_server_opts;

void tp_gateway_server_opts_init(tp_gateway_server_opts *o);

/* Receives one decoded record of a connection. `tag` says where it came from (copy it into the batch). Return
 * TP_OK when taken, TP_ERR_AGAIN to refuse it for now: the server then pauses reading every connection (the record
 * stays buffered) until tp_gateway_server_resume. Any other error closes that connection. Runs on the loop thread. */
typedef tp_err (*tp_gateway_record_fn)(void *ctx, const tp_record *r, size_t wire_len, const tp_batch_tag *tag);

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
} tp_gateway_server_stats;

/* Binds and listens (when opts->listen is set). Errors: TP_ERR_INVALID_ARG (bad HOST:PORT), TP_ERR_IO (bind/listen
 * failed; errbuf says why), TP_ERR_NOMEM. errbuf (may be NULL) receives a sentence on failure. */
tp_err tp_gateway_server_new(const tp_gateway_server_opts *opts, tp_gateway_record_fn on_record, void *ctx,
                             tp_gateway_server **out, char *errbuf, size_t errlen);
void tp_gateway_server_free(tp_gateway_server *s);

/* The bound TCP port (useful with port 0), or 0 without a listening socket. */
int tp_gateway_server_port(const tp_gateway_server *s);

/* Adopts an already connected stream socket (e.g. one end of a socketpair) as a gateway connection; the server
 * owns fd from then on, also on error. Loop thread only (or before the loop runs). */
tp_err tp_gateway_server_add_fd(tp_gateway_server *s, int fd);

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

/* Splits "HOST:PORT" or "[V6]:PORT" (also ":PORT" = all interfaces) into host (NULL for any) and port. */
tp_err tp_gateway_parse_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen);

#endif
