/* The workers' operations endpoint (libmicrohttpd): /metrics in the Prometheus text format, /healthz (liveness)
 * and /readyz (readiness from a callback), on --metrics-listen HOST:PORT. */
#ifndef TELEPACK_HTTP_SERVER_H
#define TELEPACK_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/metrics.h"
#include "telepack/error.h"

/* Readiness: returns true when the worker can do its job; when not, writes a short reason (one line, e.g.
 * "kafka: no broker connected") into reason[0..cap). Called from the server's thread on each /readyz request:
 * it must be thread-safe and quick (read flags the worker sets; do not block). */
typedef bool (*tp_ready_fn)(void *ud, char *reason, size_t cap);

typedef struct tp_http_server_opts {
    const char *listen;   /* "HOST:PORT", "[IPv6]:PORT" or ":PORT" (all interfaces); PORT 0 = the OS picks */
    tp_metrics *metrics;  /* served at /metrics; NULL serves an empty exposition. Not owned; must outlive the
                             server. */
    tp_ready_fn ready;    /* NULL = always ready */
    void *ready_ud;
} tp_http_server_opts;

typedef struct tp_http_server tp_http_server;

/* Parses "HOST:PORT" into host[0..host_cap) (empty for ":PORT") and *port, by tp_hostport_parse
 * (common/hostport.h): TP_ERR_PARSE for a missing or out-of-range port, an unbalanced IPv6 bracket or a bare IPv6
 * address; TP_ERR_FULL if the host does not fit. */
tp_err tp_http_parse_listen(const char *listen, char *host, size_t host_cap, uint16_t *port);

/* Binds and starts serving on a thread of its own. On failure returns TP_ERR_PARSE (bad address), TP_ERR_IO
 * (cannot resolve or bind) or TP_ERR_NOMEM, and writes a sentence with the address and the reason into
 * detail[0..detail_cap) (detail may be NULL). */
tp_err tp_http_server_start(const tp_http_server_opts *opts, tp_http_server **out, char *detail, size_t detail_cap);

/* The port actually bound (what port 0 turned into). */
uint16_t tp_http_server_port(const tp_http_server *s);

/* Stops serving (closes the socket, joins the thread) and frees s. NULL is a no-op. */
void tp_http_server_stop(tp_http_server *s);

#endif
