/* TLS for the gateway protocol (docs/GATEWAY.md, "TLS"), with OpenSSL: the server's certificates (reloadable: new
 * connections get the files in force, open ones keep theirs), optional client certificates checked against a CA
 * (mutual TLS, identity = the certificate's subject CN), and the client's context that verifies the server's
 * certificate and its host name or IP address. The sockets stay the caller's: these helpers only make SSL objects.
 * OpenSSL writes with write(2): a process using them ignores SIGPIPE (telepack's commands do). */
#ifndef TELEPACK_GATEWAY_TLS_H
#define TELEPACK_GATEWAY_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "telepack/error.h"

typedef struct tp_tls_server tp_tls_server;

/* Loads the PEM certificate (chain) and key, and with client_ca (may be NULL) requires and verifies client
 * certificates. TP_ERR_IO (a file cannot be read or is not PEM), TP_ERR_INVALID_ARG (key and certificate do not
 * match), TP_ERR_NOMEM; err names the file and what to do. The paths are copied for reloads. */
tp_err tp_tls_server_new(const char *cert, const char *key, const char *client_ca, tp_tls_server **out, char *err,
                         size_t errlen);

/* Reads the files again; connections accepted from now on use them. On error the old ones stay and err says why.
 * Thread-safe against tp_tls_server_ssl. */
tp_err tp_tls_server_reload(tp_tls_server *t, char *err, size_t errlen);

/* A new server-side SSL in accept state on fd, with the certificates in force (NULL when out of memory).
 * Thread-safe. */
SSL *tp_tls_server_ssl(tp_tls_server *t, int fd);

/* Non-zero when client certificates are required (client_ca was given). */
int tp_tls_server_mutual(const tp_tls_server *t);

/* Times the certificates were loaded (1 after new; +1 per successful reload). */
unsigned tp_tls_server_generation(tp_tls_server *t);

void tp_tls_server_free(tp_tls_server *t);

/* A client context: verifies the server against the PEM CA file ca (required), presents cert/key when both are
 * given (mutual TLS). TP_ERR_IO / TP_ERR_INVALID_ARG / TP_ERR_NOMEM with a sentence in err. Free with SSL_CTX_free. */
tp_err tp_tls_client_ctx(const char *ca, const char *cert, const char *key, SSL_CTX **out, char *err, size_t errlen);

/* Makes ssl check that the server's certificate names host (a DNS name, or an IPv4/IPv6 address matched against
 * the certificate's IP subjectAltNames) and sends it as SNI when it is a name. 0, or -1 when out of memory. */
int tp_tls_client_expect_host(SSL *ssl, const char *host);

/* The subject CN of the peer's certificate into out ("" without one). */
void tp_tls_peer_cn(SSL *ssl, char *out, size_t cap);

/* Describes why an SSL call returned ret (after SSL_get_error said SSL_ERROR_SSL or SSL_ERROR_SYSCALL): the
 * certificate verification result when it failed, else OpenSSL's error queue (emptied), else errno or "the peer
 * closed the connection". Returns 1 when our verification of the peer's certificate failed or the peer sent none
 * while one is required, 2 when the peer's alert says it refused ours, else 0. */
int tp_tls_error_text(SSL *ssl, int ret, char *out, size_t cap);

#endif
