/* HTTP ingest endpoint (docs/HTTP_INGEST.md): `POST /v1/records` with NDJSON or varint-delimited protobuf records,
 * answered only once every record of the request is durable in Kafka. libmicrohttpd, one thread per connection,
 * optional TLS and bearer tokens (auth_tokens.h). Each request's records enter the worker as one gateway connection
 * (a socketpair given to tp_ingest_add_fd), so they follow the gateway path exactly: batching, backpressure, and
 * the ack watermark that says when they are in Kafka. */
#ifndef TELEPACK_HTTP_INGEST_H
#define TELEPACK_HTTP_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/ingest.h"
#include "ops/metrics.h"
#include "telepack/error.h"

#define TP_HTTP_INGEST_DEFAULT_MAX_BODY (4u << 20)
#define TP_HTTP_INGEST_DEFAULT_TIMEOUT_MS 30000
#define TP_HTTP_INGEST_DEFAULT_CONNECTIONS 64

/* Metric names (docs/OPERATIONS.md). */
#define TP_M_HTTP_REQUESTS "telepack_ingest_http_requests_total"           /* {code} */
#define TP_M_HTTP_RECORDS "telepack_ingest_http_records_total"
#define TP_M_HTTP_BYTES "telepack_ingest_http_bytes_total"
#define TP_M_HTTP_AUTH_FAILURES "telepack_ingest_http_auth_failures_total" /* {reason} */
#define TP_M_HTTP_REJECTED "telepack_ingest_http_records_rejected_total" /* records refused (400): not valid */

typedef struct tp_http_ingest_opts {
    const char *listen;         /* "HOST:PORT", "[V6]:PORT", ":PORT" (every interface); port 0 = any free port */
    const char *tls_cert;       /* PEM certificate (chain) file, with tls_key; NULL = plain HTTP */
    const char *tls_key;        /* PEM private key file */
    int insecure;               /* allow plain HTTP on an address other than loopback */
    const char *tokens_path;    /* token file (auth_tokens.h); NULL = no authentication (unless tokens) */
    struct tp_auth_store *tokens; /* tokens shared with the gateway listener (auth_tokens.h), or NULL: then
                                     tokens_path is loaded here; must outlive the endpoint */
    size_t max_body_bytes;      /* largest request body (default TP_HTTP_INGEST_DEFAULT_MAX_BODY); larger: 413 */
    size_t max_buffered_bytes;  /* the worker's --max-buffered-bytes: request bodies held count against it too */
    int timeout_ms;             /* longest a request waits for Kafka before 503 (default 30000) */
    unsigned max_connections;   /* concurrent connections, one thread each (default 64) */
    size_t max_record_bytes;    /* largest protobuf record (default TP_DEFAULT_MAX_RECORD_BYTES, as the gateways) */
    tp_metrics *metrics;        /* registry for the telepack_ingest_http_* metrics, or NULL; must outlive it */
    struct tp_dyn_ingest *dyn;  /* records of a run-time schema (dyn_ingest.h) instead of the built-in record: each
                                   is read under `schema` (NDJSON per protobuf's JSON mapping, or delimited
                                   protobuf) and goes to this worker (then `ing` of tp_http_ingest_start may be
                                   NULL); must outlive the endpoint */
    const struct tp_schema *schema; /* with dyn */
    int json_flags;             /* with dyn: TP_DYN_JSON_IGNORE_UNKNOWN to skip unknown NDJSON keys */
    int64_t max_event_skew_ms;  /* with dyn: a record whose time (the time role) is further than this from now is
                                   answered 400 (default 3653 days, as the gateways' v2 bound; negative: none) */
} tp_http_ingest_opts;

void tp_http_ingest_opts_init(tp_http_ingest_opts *o);

/* Checks the options without binding or reading files: a parseable listen address, cert and key given together,
 * and TLS or `insecure` on an address that is not loopback. TP_ERR_INVALID_ARG with a sentence in err. */
tp_err tp_http_ingest_check_opts(const tp_http_ingest_opts *o, char *err, size_t errlen);

/* Non-zero when the host part of a listen address is a loopback address (127.0.0.0/8, ::1, localhost). An empty
 * host (":PORT", every interface) is not. */
int tp_http_ingest_is_loopback(const char *host);

/* Registers the telepack_ingest_http_* families in m (tp_http_ingest_start does it with o->metrics); for tests that
 * list every metric. TP_OK or the registry's first error. */
tp_err tp_http_ingest_metrics_register(tp_metrics *m);

typedef struct tp_http_ingest tp_http_ingest;

/* Checks the options, loads the token file and the TLS files, binds and starts serving records into ing (which
 * must outlive the endpoint), or into o->dyn. TP_ERR_INVALID_ARG (options, or TLS missing from libmicrohttpd), TP_ERR_PARSE (token
 * file), TP_ERR_IO (files, bind), TP_ERR_NOMEM; err gets a sentence. */
tp_err tp_http_ingest_start(const tp_http_ingest_opts *o, tp_ingest *ing, tp_http_ingest **out, char *err,
                            size_t errlen);

uint16_t tp_http_ingest_port(const tp_http_ingest *h);

/* Records refused with 400 so far (with o.dyn: a record that is not valid under the schema; counted also in
 * telepack_ingest_http_records_rejected_total). Thread-safe. */
uint64_t tp_http_ingest_rejected(tp_http_ingest *h);

/* Reads the token file again (the shared store's, with opts.tokens) and uses it for the requests that start from now on; on error the old tokens stay
 * and err says why. TP_ERR_INVALID_ARG without a token file. Thread-safe. */
tp_err tp_http_ingest_reload_tokens(tp_http_ingest *h, char *err, size_t errlen);

/* Before stopping the worker: closes the listening socket and answers 503 to every request that starts from now
 * on (also on open keep-alive connections); requests already past their headers carry on. Idempotent. */
void tp_http_ingest_quiesce(tp_http_ingest *h);

/* Stops serving: waits for the requests in progress (each at most timeout_ms), then frees h. NULL is a no-op. */
void tp_http_ingest_stop(tp_http_ingest *h);

#endif
