/* Operations HTTP endpoint on libmicrohttpd: /metrics, /healthz, /readyz. We bind the socket ourselves (to report
 * bind errors with errno and the port the OS picked) and hand it to MHD, which serves it from one internal thread. */
#include "ops/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/hostport.h"
#include "common/log.h"

struct tp_http_server {
    struct MHD_Daemon *daemon;
    tp_metrics *metrics;
    tp_ready_fn ready;
    void *ready_ud;
    uint16_t port;
};

static void set_detail(char *detail, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_detail(char *detail, size_t cap, const char *fmt, ...)
{
    if (!detail || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, cap, fmt, ap);
    va_end(ap);
}

tp_err tp_http_parse_listen(const char *listen, char *host, size_t host_cap, uint16_t *port)
{
    return tp_hostport_parse(listen, host, host_cap, port, NULL, 0);
}

/* ---- requests ---- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *ctype, char *body, size_t len,
                               enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    return respond(c, status, "text/plain; charset=utf-8", (char *)text, strlen(text), MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)req_cls;
    tp_http_server *s = cls;
    if (*upload_size) { /* a body we do not want: drop it, answer after it */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are supported\n");

    if (!strcmp(url, "/metrics")) {
        char *text = NULL;
        size_t len = 0;
        if (!s->metrics) {
            return respond(c, MHD_HTTP_OK, TP_METRICS_CONTENT_TYPE, (char *)"", 0, MHD_RESPMEM_PERSISTENT);
        }
        if (tp_metrics_render(s->metrics, &text, &len))
            return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory rendering metrics\n");
        return respond(c, MHD_HTTP_OK, TP_METRICS_CONTENT_TYPE, text, len, MHD_RESPMEM_MUST_FREE);
    }
    if (!strcmp(url, "/healthz"))
        return respond_text(c, MHD_HTTP_OK, "ok\n");
    if (!strcmp(url, "/readyz")) {
        char reason[256] = "";
        if (!s->ready || s->ready(s->ready_ud, reason, sizeof reason))
            return respond_text(c, MHD_HTTP_OK, "ok\n");
        reason[sizeof reason - 1] = '\0';
        char *body = NULL;
        int n = asprintf(&body, "not ready: %s\n", reason[0] ? reason : "(no reason given)");
        if (n < 0)
            return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
        return respond(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", body, (size_t)n,
                       MHD_RESPMEM_MUST_FREE);
    }
    if (!strcmp(url, "/"))
        return respond_text(c, MHD_HTTP_OK, "telepack: /metrics /healthz /readyz\n");
    return respond_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n");
}

/* libmicrohttpd hands us its own printf-style format. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) /* MHD ends its messages with a newline */
        msg[--n] = '\0';
    tp_log(TP_LOG_WARN, "http", "%s", msg);
}

/* ---- start / stop ---- */

tp_err tp_http_server_start(const tp_http_server_opts *opts, tp_http_server **out, char *detail, size_t detail_cap)
{
    if (!opts || !out || !opts->listen) {
        set_detail(detail, detail_cap, "no listen address given");
        return TP_ERR_INVALID_ARG;
    }
    *out = NULL;
    char host[256];
    uint16_t port;
    tp_err e = tp_http_parse_listen(opts->listen, host, sizeof host, &port);
    if (e) {
        set_detail(detail, detail_cap,
                   "listen address '%s' is not HOST:PORT (PORT 0..65535; IPv6 as [ADDR]:PORT, ':PORT' for all "
                   "interfaces)",
                   opts->listen);
        return TP_ERR_PARSE;
    }

    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    int gai = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &ai);
    if (gai) {
        set_detail(detail, detail_cap, "cannot resolve listen host '%s': %s", host, gai_strerror(gai));
        return TP_ERR_IO;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int family = ai->ai_family;
    int err = 0;
    if (fd < 0) {
        err = errno;
    } else {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64))
            err = errno;
    }
    freeaddrinfo(ai);
    if (err) {
        set_detail(detail, detail_cap, "cannot listen on %s: %s%s", opts->listen, strerror(err),
                   err == EADDRINUSE ? " (pick another port, or 0 to let the system choose)" : "");
        if (fd >= 0)
            close(fd);
        return TP_ERR_IO;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    uint16_t bound = port;
    if (!getsockname(fd, (struct sockaddr *)&ss, &sl))
        bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);

    tp_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        set_detail(detail, detail_cap, "out of memory");
        return TP_ERR_NOMEM;
    }
    s->metrics = opts->metrics;
    s->ready = opts->ready;
    s->ready_ud = opts->ready_ud;
    s->port = bound;
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The logger goes first: MHD reports anything before it through its own stderr logger. */
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                 MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!s->daemon) {
        close(fd);
        free(s);
        set_detail(detail, detail_cap, "cannot start the HTTP server on %s (libmicrohttpd refused)", opts->listen);
        return TP_ERR_IO;
    }
    *out = s;
    return TP_OK;
}

uint16_t tp_http_server_port(const tp_http_server *s)
{
    return s ? s->port : 0;
}

void tp_http_server_stop(tp_http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
