/* The HTTP ingest's token file and option checks: the documented syntax (comments, ranges, '*', CRLF), every
 * refusal with its line number, constant-width lookup (prefixes, longer strings and the empty string never match),
 * vehicle ranges (merged, bisected, boundaries), loading from a file; loopback detection and the rule that plain
 * HTTP off loopback needs --insecure; the shared store: a reload swaps the tokens for new users while a reference
 * taken before it (a gateway connection's, through the gateway hook) keeps the old ones, and a bad file keeps the old
 * tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ingest/auth_tokens.h"
#include "ingest/http_ingest.h"

#define T1 "abcdefghijklmnop"           /* 16 characters: the shortest accepted */
#define T2 "Zm9vYmFyLWJhei1xdXV4LTEyMzQ=" /* base64-ish, with '=' and '-' */
#define T3 "0123456789abcdef0123456789abcdef"

static void test_good(void)
{
    const char *text = "# tokens of depot A\r\n"
                       "\n"
                       "   " T1 "\t2500,1000-1999 # trailing comment\r\n"
                       T2 " *\n"
                       T3 " 7,5,6,10-12,9,0-0,18446744073709551615"; /* no final newline */
    tp_auth_tokens *t = NULL;
    char msg[256];
    CHECK_ERR(tp_auth_tokens_parse(text, strlen(text), &t, msg, sizeof msg), TP_OK);
    CHECK_INT(tp_auth_tokens_count(t), 3);
    CHECK_INT(tp_auth_tokens_find(t, T1, strlen(T1)), 0);
    CHECK_INT(tp_auth_tokens_find(t, T2, strlen(T2)), 1);
    CHECK_INT(tp_auth_tokens_find(t, T3, strlen(T3)), 2);
    CHECK_INT(tp_auth_tokens_find(t, T1, strlen(T1) - 1), -1); /* a prefix */
    CHECK_INT(tp_auth_tokens_find(t, T1 "q", strlen(T1) + 1), -1);
    CHECK_INT(tp_auth_tokens_find(t, "", 0), -1);
    CHECK_INT(tp_auth_tokens_find(t, "abcdefghijklmnoP", 16), -1); /* one bit off at the end */
    char longtok[600];
    memset(longtok, 'a', sizeof longtok);
    CHECK_INT(tp_auth_tokens_find(t, longtok, sizeof longtok), -1);
    /* T1: 1000..1999 and 2500 */
    CHECK(!tp_auth_tokens_allows(t, 0, 999));
    CHECK(tp_auth_tokens_allows(t, 0, 1000));
    CHECK(tp_auth_tokens_allows(t, 0, 1999));
    CHECK(!tp_auth_tokens_allows(t, 0, 2000));
    CHECK(tp_auth_tokens_allows(t, 0, 2500));
    CHECK(!tp_auth_tokens_allows(t, 0, 2501));
    /* T2: every vehicle */
    CHECK(tp_auth_tokens_allows(t, 1, 0));
    CHECK(tp_auth_tokens_allows(t, 1, UINT64_MAX));
    /* T3: 0, 5..7, 9..12, 2^64-1 (merged from unsorted, adjacent items) */
    static const uint64_t yes[] = {0, 5, 6, 7, 9, 10, 12, UINT64_MAX};
    static const uint64_t no[] = {1, 4, 8, 13, UINT64_MAX - 1};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        CHECK(tp_auth_tokens_allows(t, 2, yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        CHECK(!tp_auth_tokens_allows(t, 2, no[i]));
    CHECK(!tp_auth_tokens_allows(t, -1, 5));
    CHECK(!tp_auth_tokens_allows(t, 3, 5));
    tp_auth_tokens_free(t);
}

static void refused(const char *text, const char *want)
{
    tp_auth_tokens *t = (tp_auth_tokens *)1;
    char msg[300] = "";
    CHECK_ERR(tp_auth_tokens_parse(text, strlen(text), &t, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(t == NULL);
    if (!strstr(msg, want)) {
        fprintf(stderr, "for %s: message '%s' lacks '%s'\n", text, msg, want);
        check_failures++;
    }
    CHECK(strstr(msg, "abcdefghijklmno") == NULL); /* a message never quotes a secret */
}

static void test_refused(void)
{
    refused("", "no token in the file");
    refused("# only a comment\n\n", "no token in the file");
    refused(T2 "\nshort\n", "line 2: the token has 5 characters; use 16 to 256");
    refused(T2 "\n\nabcdefghijklmno!p\n", "line 3: the token has a character (byte 0x21 at column 16)");
    refused(T1 "\n" T2 "\n" T1 " 5\n", "line 3: the same token as an earlier line");
    refused(T1 " 10-5\n", "line 1: range 10-5 ends before it starts");
    refused(T1 " 1,,2\n", "line 1: empty vehicle range");
    refused(T1 " 1,\n", "line 1: empty vehicle range");
    refused(T1 " 1-2-3\n", "line 1: '1-2-3' is not a vehicle id or range");
    refused(T1 " x\n", "line 1: 'x' is not a vehicle id or range");
    refused(T1 " -5\n", "line 1: '-5' is not a vehicle id or range");
    refused(T1 " 18446744073709551616\n", "line 1: vehicle id '18446744073709551616' is above");
    refused(T1 " 1 2\n", "line 1: unexpected text after the vehicle list at column 20");
    char nul[] = T1 "\n" T2 "X\0\n";
    tp_auth_tokens *t = NULL;
    char msg[200];
    CHECK_ERR(tp_auth_tokens_parse(nul, sizeof nul - 1, &t, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "line 2: holds a NUL byte") != NULL);
    /* a token of 257 characters, and one of 256 (accepted) */
    char buf[600];
    memset(buf, 'k', 257);
    strcpy(buf + 257, "\n");
    refused(buf, "line 1: the token has 257 characters");
    buf[256] = '\n';
    buf[257] = '\0';
    CHECK_ERR(tp_auth_tokens_parse(buf, strlen(buf), &t, msg, sizeof msg), TP_OK);
    memset(buf, 'k', 256);
    CHECK_INT(tp_auth_tokens_find(t, buf, 256), 0);
    tp_auth_tokens_free(t);
}

static void test_load(void)
{
    char path[] = "/tmp/test_auth_tokens_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "# x\n" T1 " 1-3\n" T3 "\n";
    CHECK_INT(write(fd, text, strlen(text)), (long)strlen(text));
    close(fd);
    tp_auth_tokens *t = NULL;
    char msg[300];
    CHECK_ERR(tp_auth_tokens_load(path, &t, msg, sizeof msg), TP_OK);
    CHECK_INT(tp_auth_tokens_count(t), 2);
    tp_auth_tokens_free(t);
    FILE *f = fopen(path, "w");
    fputs(T1 "\nbad token here\n", f);
    fclose(f);
    CHECK_ERR(tp_auth_tokens_load(path, &t, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, path) != NULL && strstr(msg, "line 2:") != NULL);
    unlink(path);
    CHECK_ERR(tp_auth_tokens_load(path, &t, msg, sizeof msg), TP_ERR_IO);
    CHECK(strstr(msg, "cannot open the token file") != NULL);
}

static void test_listen_rules(void)
{
    CHECK(tp_http_ingest_is_loopback("127.0.0.1"));
    CHECK(tp_http_ingest_is_loopback("127.5.6.7"));
    CHECK(tp_http_ingest_is_loopback("::1"));
    CHECK(tp_http_ingest_is_loopback("::ffff:127.0.0.1"));
    CHECK(tp_http_ingest_is_loopback("localhost"));
    CHECK(!tp_http_ingest_is_loopback(""));
    CHECK(!tp_http_ingest_is_loopback("0.0.0.0"));
    CHECK(!tp_http_ingest_is_loopback("::"));
    CHECK(!tp_http_ingest_is_loopback("10.1.2.3"));
    CHECK(!tp_http_ingest_is_loopback("128.0.0.1"));
    CHECK(!tp_http_ingest_is_loopback("example.com"));

    tp_http_ingest_opts o;
    tp_http_ingest_opts_init(&o);
    char err[400];
    o.listen = "127.0.0.1:8080";
    CHECK_ERR(tp_http_ingest_check_opts(&o, err, sizeof err), TP_OK);
    o.listen = "[::1]:0";
    CHECK_ERR(tp_http_ingest_check_opts(&o, err, sizeof err), TP_OK);
    o.listen = "10.0.0.5:8080";
    CHECK_ERR(tp_http_ingest_check_opts(&o, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "refusing plain HTTP on 10.0.0.5:8080") != NULL);
    o.insecure = 1;
    CHECK_ERR(tp_http_ingest_check_opts(&o, err, sizeof err), TP_OK);
    o.insecure = 0;
    o.tls_cert = "c.pem";
    CHECK_ERR(tp_http_ingest_check_opts(&o, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "go together") != NULL);
    o.tls_key = "k.pem";
    CHECK_ERR(tp_http_ingest_check_opts(&o, err, sizeof err), TP_OK);
    o.listen = "nowhere";
    CHECK_ERR(tp_http_ingest_check_opts(&o, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "'nowhere' is not HOST:PORT") != NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_store(void)
{
    char path[] = "/tmp/test_auth_store_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    write_file(path, T1 " 1-3\n");
    tp_auth_store *s = NULL;
    char msg[300];
    CHECK_ERR(tp_auth_store_load(path, &s, msg, sizeof msg), TP_OK);
    tp_gateway_auth ga;
    tp_auth_store_gateway_auth(s, &ga);
    void *old = ga.acquire(ga.ctx); /* a connection authenticated before the reload */
    int id = ga.find(old, T1, strlen(T1));
    CHECK(id >= 0);
    CHECK(ga.allows(old, id, 2));
    CHECK(!ga.allows(old, id, 4));
    write_file(path, T3 " 4\n");
    CHECK_ERR(tp_auth_store_reload(s, msg, sizeof msg), TP_OK);
    void *cur = ga.acquire(ga.ctx);
    CHECK_INT(ga.find(cur, T1, strlen(T1)), -1); /* new connections: the old token is gone */
    int nid = ga.find(cur, T3, strlen(T3));
    CHECK(nid >= 0 && ga.allows(cur, nid, 4) && !ga.allows(cur, nid, 2));
    CHECK(ga.allows(old, id, 2)); /* the old connection keeps what it authenticated against */
    ga.release(ga.ctx, old);
    write_file(path, "short\n");
    CHECK_ERR(tp_auth_store_reload(s, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "line 1:") != NULL);
    const tp_auth_tokens *t = tp_auth_store_acquire(s); /* a bad file keeps the tokens in force */
    CHECK(tp_auth_tokens_find(t, T3, strlen(T3)) >= 0);
    tp_auth_store_release(t);
    tp_auth_store_free(s);
    CHECK(ga.find(cur, T3, strlen(T3)) >= 0); /* a reference outlives the store */
    ga.release(ga.ctx, cur);
    unlink(path);
}

int main(void)
{
    test_good();
    test_store();
    test_refused();
    test_load();
    test_listen_rules();
    return check_exit();
}
