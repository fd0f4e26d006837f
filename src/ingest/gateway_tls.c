/* OpenSSL contexts of the gateway protocol: a server context swapped whole on reload under a mutex (an SSL object
 * holds a reference to the context it was made from, so open connections keep theirs), and client contexts. Error
 * texts come from the verification result or OpenSSL's per-thread error queue. */
#include "ingest/gateway_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

struct tp_tls_server {
    pthread_mutex_t mu;
    SSL_CTX *ctx;
    char *cert, *key, *ca;
    unsigned generation;
};

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

/* OpenSSL's oldest queued error as text ("" when none); empties the queue. */
static void ssl_errq(char *out, size_t cap)
{
    unsigned long e = ERR_get_error();
    out[0] = 0;
    if (e)
        ERR_error_string_n(e, out, cap);
    ERR_clear_error();
}

static tp_err load_ctx(const char *cert, const char *key, const char *ca, SSL_CTX **out, char *err, size_t errlen)
{
    char q[256];
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return TP_ERR_NOMEM;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF); /* the protocol's frames tell a cut stream */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_errq(q, sizeof q);
        say(err, errlen, "cannot use the TLS certificate %s (%s); give a PEM certificate (chain) file", cert, q);
        SSL_CTX_free(ctx);
        return TP_ERR_IO;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        int mismatch = ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH;
        ssl_errq(q, sizeof q);
        if (mismatch)
            say(err, errlen, "the TLS key %s does not belong to the certificate %s; give the matching pair", key,
                cert);
        else
            say(err, errlen, "cannot use the TLS key %s (%s); give the certificate's PEM private key, unencrypted",
                key, q);
        SSL_CTX_free(ctx);
        return mismatch ? TP_ERR_INVALID_ARG : TP_ERR_IO;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        say(err, errlen, "the TLS key %s does not belong to the certificate %s; give the matching pair", key, cert);
        SSL_CTX_free(ctx);
        return TP_ERR_INVALID_ARG;
    }
    if (ca) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 || !names) {
            ssl_errq(q, sizeof q);
            say(err, errlen, "cannot use the client CA file %s (%s); give the PEM certificate(s) of the CA that "
                             "signs the gateways' certificates", ca, q);
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            SSL_CTX_free(ctx);
            return TP_ERR_IO;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    *out = ctx;
    return TP_OK;
}

tp_err tp_tls_server_new(const char *cert, const char *key, const char *client_ca, tp_tls_server **out, char *err,
                         size_t errlen)
{
    if (!cert || !key || !out) {
        say(err, errlen, "TLS needs both a certificate and a key file");
        return TP_ERR_INVALID_ARG;
    }
    *out = NULL;
    tp_tls_server *t = calloc(1, sizeof *t);
    if (!t)
        return TP_ERR_NOMEM;
    t->cert = strdup(cert);
    t->key = strdup(key);
    t->ca = client_ca ? strdup(client_ca) : NULL;
    if (!t->cert || !t->key || (client_ca && !t->ca)) {
        tp_tls_server_free(t);
        return TP_ERR_NOMEM;
    }
    tp_err e = load_ctx(cert, key, client_ca, &t->ctx, err, errlen);
    if (e) {
        tp_tls_server_free(t);
        return e;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->generation = 1;
    *out = t;
    return TP_OK;
}

tp_err tp_tls_server_reload(tp_tls_server *t, char *err, size_t errlen)
{
    SSL_CTX *ctx;
    tp_err e = load_ctx(t->cert, t->key, t->ca, &ctx, err, errlen);
    if (e)
        return e;
    pthread_mutex_lock(&t->mu);
    SSL_CTX *old = t->ctx;
    t->ctx = ctx;
    t->generation++;
    pthread_mutex_unlock(&t->mu);
    SSL_CTX_free(old); /* open connections hold their own reference */
    return TP_OK;
}

SSL *tp_tls_server_ssl(tp_tls_server *t, int fd)
{
    pthread_mutex_lock(&t->mu);
    SSL *ssl = SSL_new(t->ctx);
    pthread_mutex_unlock(&t->mu);
    if (!ssl)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

int tp_tls_server_mutual(const tp_tls_server *t)
{
    return t && t->ca != NULL;
}

unsigned tp_tls_server_generation(tp_tls_server *t)
{
    pthread_mutex_lock(&t->mu);
    unsigned g = t->generation;
    pthread_mutex_unlock(&t->mu);
    return g;
}

void tp_tls_server_free(tp_tls_server *t)
{
    if (!t)
        return;
    if (t->ctx) {
        SSL_CTX_free(t->ctx);
        pthread_mutex_destroy(&t->mu);
    }
    free(t->cert);
    free(t->key);
    free(t->ca);
    free(t);
}

tp_err tp_tls_client_ctx(const char *ca, const char *cert, const char *key, SSL_CTX **out, char *err, size_t errlen)
{
    char q[256];
    if (!ca || !out) {
        say(err, errlen, "TLS to the gateway port needs the CA file that signed the server's certificate");
        return TP_ERR_INVALID_ARG;
    }
    if (!cert != !key) {
        say(err, errlen, "a client certificate needs its key, and a key its certificate; give both or neither");
        return TP_ERR_INVALID_ARG;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return TP_ERR_NOMEM;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        ssl_errq(q, sizeof q);
        say(err, errlen, "cannot use the CA file %s (%s); give the PEM certificate of the CA that signed the "
                         "ingest server's certificate", ca, q);
        SSL_CTX_free(ctx);
        return TP_ERR_IO;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            ssl_errq(q, sizeof q);
            say(err, errlen, "cannot use the client certificate %s with the key %s (%s); give PEM files", cert, key,
                q);
            SSL_CTX_free(ctx);
            return TP_ERR_IO;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            say(err, errlen, "the key %s does not belong to the client certificate %s; give the matching pair", key,
                cert);
            SSL_CTX_free(ctx);
            return TP_ERR_INVALID_ARG;
        }
    }
    *out = ctx;
    return TP_OK;
}

int tp_tls_client_expect_host(SSL *ssl, const char *host)
{
    unsigned char buf[16];
    int is_ip = inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
    if (is_ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, host) != 1)
        return -1;
    SSL_set_tlsext_host_name(ssl, host);
    return 0;
}

void tp_tls_peer_cn(SSL *ssl, char *out, size_t cap)
{
    out[0] = 0;
    X509 *x = SSL_get1_peer_certificate(ssl);
    if (!x)
        return;
    X509_NAME *n = X509_get_subject_name(x);
    int len = n ? X509_NAME_get_text_by_NID(n, NID_commonName, out, (int)cap) : -1;
    if (len < 0)
        out[0] = 0;
    for (char *p = out; *p; p++) /* it goes into log lines */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    X509_free(x);
}

int tp_tls_error_text(SSL *ssl, int ret, char *out, size_t cap)
{
    int saved = errno;
    long vr = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_error();
    int reason = e ? ERR_GET_REASON(e) : 0;
    int cert = 0;
    if (vr != X509_V_OK && (reason == SSL_R_CERTIFICATE_VERIFY_FAILED || reason == 0)) {
        say(out, cap, "certificate verification failed: %s", X509_verify_cert_error_string(vr));
        cert = 1;
    } else if (e) {
        char q[256];
        ERR_error_string_n(e, q, sizeof q);
        if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE || reason == SSL_R_CERTIFICATE_VERIFY_FAILED)
            cert = 1;
        else if (reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA || reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
                 reason == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN || reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
                 reason == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED || reason == SSL_R_TLSV1_ALERT_ACCESS_DENIED)
            cert = 2;
        say(out, cap, "%s", q);
    } else if (ret == 0 || saved == 0) {
        say(out, cap, "the peer closed the connection during TLS");
    } else {
        say(out, cap, "%s", strerror(saved));
    }
    ERR_clear_error();
    return cert;
}
