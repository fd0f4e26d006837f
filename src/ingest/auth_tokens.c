/* The HTTP ingest's token file: a strict line parser (every refusal names its line), a flat immutable table of
 * fixed-width tokens compared in constant time, and per-token sorted vehicle ranges searched by bisection. */
#include "ingest/auth_tokens.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct range {
    uint64_t lo, hi;
} range;

typedef struct entry {
    unsigned char tok[TP_AUTH_TOKEN_MAX]; /* zero-padded */
    size_t len;
    int all;                              /* every vehicle */
    size_t first, n;                      /* ranges[first .. first+n), sorted, merged */
} entry;

struct tp_auth_tokens {
    atomic_int refs;      /* references taken through a store (1 = the store's own, or none: a plain parse) */
    entry *e;
    size_t n, cap;
    range *r;
    size_t nr, rcap;
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

static int tok_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

void tp_auth_tokens_free(tp_auth_tokens *t)
{
    if (!t)
        return;
    if (t->e) /* wipe the secrets before giving the memory back */
        memset(t->e, 0, t->cap * sizeof *t->e);
    free(t->e);
    free(t->r);
    free(t);
}

size_t tp_auth_tokens_count(const tp_auth_tokens *t)
{
    return t ? t->n : 0;
}

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Parses "1000-1999,2500" (s[0..n)) into t->r; 0 or -1 with msg. */
static int parse_ranges(tp_auth_tokens *t, entry *en, const char *s, size_t n, uint64_t line, char *msg, size_t cap)
{
    en->first = t->nr;
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && s[j] != ',')
            j++;
        /* one item s[i..j) */
        uint64_t v[2] = {0, 0};
        int nv = 0;
        size_t k = i;
        if (k == j) {
            say(msg, cap, "line %llu: empty vehicle range in '%.*s'; write ids like 1000-1999,2500",
                (unsigned long long)line, (int)(n > 80 ? 80 : n), s);
            return -1;
        }
        for (;;) {
            size_t d = k;
            uint64_t x = 0;
            while (k < j && s[k] >= '0' && s[k] <= '9') {
                unsigned dig = (unsigned)(s[k] - '0');
                if (x > (UINT64_MAX - dig) / 10) {
                    say(msg, cap, "line %llu: vehicle id '%.*s' is above 18446744073709551615",
                        (unsigned long long)line, (int)(j - i > 40 ? 40 : j - i), s + i);
                    return -1;
                }
                x = x * 10 + dig;
                k++;
            }
            if (k == d || nv == 2) {
                say(msg, cap, "line %llu: '%.*s' is not a vehicle id or range; write ids like 1000-1999,2500",
                    (unsigned long long)line, (int)(j - i > 40 ? 40 : j - i), s + i);
                return -1;
            }
            v[nv++] = x;
            if (k == j)
                break;
            if (s[k] != '-' || nv == 2) {
                say(msg, cap, "line %llu: '%.*s' is not a vehicle id or range; write ids like 1000-1999,2500",
                    (unsigned long long)line, (int)(j - i > 40 ? 40 : j - i), s + i);
                return -1;
            }
            k++;
        }
        range r = {v[0], nv == 2 ? v[1] : v[0]};
        if (r.hi < r.lo) {
            say(msg, cap, "line %llu: range %llu-%llu ends before it starts", (unsigned long long)line,
                (unsigned long long)r.lo, (unsigned long long)r.hi);
            return -1;
        }
        if (t->nr == TP_AUTH_MAX_RANGES) {
            say(msg, cap, "line %llu: more than %d vehicle ranges in the file", (unsigned long long)line,
                TP_AUTH_MAX_RANGES);
            return -1;
        }
        if (t->nr == t->rcap) {
            size_t nc = t->rcap ? t->rcap * 2 : 16;
            range *nr = realloc(t->r, nc * sizeof *nr);
            if (!nr)
                return -2;
            t->r = nr;
            t->rcap = nc;
        }
        t->r[t->nr++] = r;
        i = j + 1;
    }
    en->n = t->nr - en->first;
    /* sort and merge this token's ranges */
    range *rs = en->n ? t->r + en->first : NULL;
    if (en->n)
        qsort(rs, en->n, sizeof *rs, cmp_range);
    size_t m = 0;
    for (size_t q = 0; q < en->n; q++) {
        if (m && (rs[q].lo <= rs[m - 1].hi || rs[q].lo - 1 == rs[m - 1].hi)) {
            if (rs[q].hi > rs[m - 1].hi)
                rs[m - 1].hi = rs[q].hi;
        } else {
            rs[m++] = rs[q];
        }
    }
    en->n = m;
    t->nr = en->first + m;
    return 0;
}

/* One line s[0..n) (no newline). 0, -1 (msg set) or -2 (no memory). */
static int parse_line(tp_auth_tokens *t, const char *s, size_t n, uint64_t line, char *msg, size_t cap)
{
    if (n && s[n - 1] == '\r')
        n--;
    size_t i = 0;
    while (i < n && is_blank(s[i]))
        i++;
    if (i == n || s[i] == '#')
        return 0;
    /* field 1: the token */
    size_t ts = i;
    while (i < n && !is_blank(s[i]) && s[i] != '#')
        i++;
    size_t tl = i - ts;
    for (size_t k = ts; k < ts + tl; k++) {
        if (!tok_char((unsigned char)s[k])) {
            say(msg, cap,
                "line %llu: the token has a character (byte 0x%02x at column %zu) outside A-Z a-z 0-9 - . _ ~ + / =",
                (unsigned long long)line, (unsigned)(unsigned char)s[k], k + 1);
            return -1;
        }
    }
    if (tl < TP_AUTH_TOKEN_MIN || tl > TP_AUTH_TOKEN_MAX) { /* never print the secret itself */
        say(msg, cap,
            "line %llu: the token has %zu characters; use %d to %d (e.g. the output of 'openssl rand -hex 32')",
            (unsigned long long)line, tl, TP_AUTH_TOKEN_MIN, TP_AUTH_TOKEN_MAX);
        return -1;
    }
    /* field 2 (optional): vehicles */
    while (i < n && is_blank(s[i]))
        i++;
    size_t vs = i;
    while (i < n && !is_blank(s[i]) && s[i] != '#')
        i++;
    size_t vl = i - vs;
    while (i < n && is_blank(s[i]))
        i++;
    if (i < n && s[i] != '#') {
        say(msg, cap,
            "line %llu: unexpected text after the vehicle list at column %zu; write 'TOKEN [IDS]' with ids like "
            "1000-1999,2500 (no spaces inside the list)",
            (unsigned long long)line, i + 1);
        return -1;
    }
    for (size_t k = 0; k < t->n; k++) {
        if (t->e[k].len == tl && !memcmp(t->e[k].tok, s + ts, tl)) {
            say(msg, cap, "line %llu: the same token as an earlier line; give each token one line",
                (unsigned long long)line);
            return -1;
        }
    }
    if (t->n == TP_AUTH_MAX_TOKENS) {
        say(msg, cap, "line %llu: more than %d tokens in the file", (unsigned long long)line, TP_AUTH_MAX_TOKENS);
        return -1;
    }
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 8;
        entry *ne = calloc(nc, sizeof *ne);
        if (!ne)
            return -2;
        if (t->n)
            memcpy(ne, t->e, t->n * sizeof *ne);
        if (t->e)
            memset(t->e, 0, t->cap * sizeof *t->e);
        free(t->e);
        t->e = ne;
        t->cap = nc;
    }
    entry *en = &t->e[t->n];
    memset(en, 0, sizeof *en);
    memcpy(en->tok, s + ts, tl);
    en->len = tl;
    if (vl == 0 || (vl == 1 && s[vs] == '*')) {
        en->all = 1;
    } else {
        int rc = parse_ranges(t, en, s + vs, vl, line, msg, cap);
        if (rc) {
            memset(en, 0, sizeof *en);
            return rc;
        }
    }
    t->n++;
    return 0;
}

tp_err tp_auth_tokens_parse(const char *text, size_t len, tp_auth_tokens **out, char *msg, size_t msg_cap)
{
    if (!out || (!text && len))
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    if (msg && msg_cap)
        msg[0] = '\0';
    tp_auth_tokens *t = calloc(1, sizeof *t);
    if (!t)
        return TP_ERR_NOMEM;
    uint64_t line = 0;
    size_t pos = 0;
    while (pos < len) {
        line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (n > TP_AUTH_MAX_LINE) {
            say(msg, msg_cap, "line %llu: longer than %d bytes", (unsigned long long)line, TP_AUTH_MAX_LINE);
            tp_auth_tokens_free(t);
            return TP_ERR_PARSE;
        }
        if (memchr(text + pos, '\0', n)) {
            say(msg, msg_cap, "line %llu: holds a NUL byte; is this a text file?", (unsigned long long)line);
            tp_auth_tokens_free(t);
            return TP_ERR_PARSE;
        }
        int rc = parse_line(t, text + pos, n, line, msg, msg_cap);
        if (rc) {
            tp_auth_tokens_free(t);
            return rc == -2 ? TP_ERR_NOMEM : TP_ERR_PARSE;
        }
        pos += n + (nl != NULL);
    }
    if (t->n == 0) {
        say(msg, msg_cap, "no token in the file; write one token a line, optionally followed by vehicle ids");
        tp_auth_tokens_free(t);
        return TP_ERR_PARSE;
    }
    *out = t;
    return TP_OK;
}

tp_err tp_auth_tokens_load(const char *path, tp_auth_tokens **out, char *msg, size_t msg_cap)
{
    if (!path || !out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        say(msg, msg_cap, "cannot open the token file %s: %s", path, strerror(errno));
        return TP_ERR_IO;
    }
    const size_t limit = 16u << 20;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    tp_err e = buf ? TP_OK : TP_ERR_NOMEM;
    while (!e) {
        if (len == cap) {
            if (cap >= limit + 1) {
                say(msg, msg_cap, "the token file %s is larger than 16 MiB", path);
                e = TP_ERR_PARSE;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                e = TP_ERR_NOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                say(msg, msg_cap, "cannot read the token file %s: %s", path, strerror(errno));
                e = TP_ERR_IO;
            }
            break;
        }
    }
    fclose(f);
    if (!e && len > limit) {
        say(msg, msg_cap, "the token file %s is larger than 16 MiB", path);
        e = TP_ERR_PARSE;
    }
    if (!e) {
        char m[400] = "";
        e = tp_auth_tokens_parse(buf, len, out, m, sizeof m);
        if (e == TP_ERR_PARSE)
            say(msg, msg_cap, "token file %s: %s", path, m);
    }
    if (buf)
        memset(buf, 0, len);
    free(buf);
    return e;
}

int tp_auth_tokens_find(const tp_auth_tokens *t, const char *tok, size_t len)
{
    if (!t || !tok)
        return -1;
    /* Copy the candidate into a fixed-width buffer so every comparison reads the same TP_AUTH_TOKEN_MAX bytes; a
     * candidate of another length can never match (its length takes part in the comparison). */
    unsigned char cand[TP_AUTH_TOKEN_MAX] = {0};
    size_t cl = len <= TP_AUTH_TOKEN_MAX ? len : 0;
    if (cl)
        memcpy(cand, tok, cl);
    int found = -1;
    for (size_t k = 0; k < t->n; k++) {
        volatile unsigned diff = (unsigned)(t->e[k].len ^ cl) | (unsigned)(cl == 0);
        for (size_t i = 0; i < TP_AUTH_TOKEN_MAX; i++)
            diff |= (unsigned)(t->e[k].tok[i] ^ cand[i]);
        /* branch-free select: mask is all ones when diff == 0 */
        unsigned mask = (unsigned)(((diff | (0u - diff)) >> (sizeof(unsigned) * 8 - 1)) ^ 1u);
        mask = 0u - mask;
        found = (int)(((unsigned)found & ~mask) | ((unsigned)k & mask));
    }
    memset(cand, 0, sizeof cand);
    return found;
}

int tp_auth_tokens_allows(const tp_auth_tokens *t, int index, uint64_t vehicle_id)
{
    if (!t || index < 0 || (size_t)index >= t->n)
        return 0;
    const entry *en = &t->e[index];
    if (en->all)
        return 1;
    const range *r = t->r + en->first;
    size_t lo = 0, hi = en->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (vehicle_id < r[mid].lo)
            hi = mid;
        else if (vehicle_id > r[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* ---- the store: the tokens in force, swapped whole on reload ---- */

struct tp_auth_store {
    pthread_mutex_t mu;
    tp_auth_tokens *cur; /* holds one reference */
    char *path;
};

tp_err tp_auth_store_load(const char *path, tp_auth_store **out, char *msg, size_t msg_cap)
{
    if (!path || !out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_auth_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return TP_ERR_NOMEM;
    }
    tp_err e = tp_auth_tokens_load(path, &s->cur, msg, msg_cap);
    if (e) {
        free(s->path);
        free(s);
        return e;
    }
    atomic_store(&s->cur->refs, 1);
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return TP_OK;
}

tp_err tp_auth_store_reload(tp_auth_store *s, char *msg, size_t msg_cap)
{
    if (!s)
        return TP_ERR_INVALID_ARG;
    tp_auth_tokens *t;
    tp_err e = tp_auth_tokens_load(s->path, &t, msg, msg_cap);
    if (e)
        return e;
    atomic_store(&t->refs, 1);
    pthread_mutex_lock(&s->mu);
    tp_auth_tokens *old = s->cur;
    s->cur = t;
    pthread_mutex_unlock(&s->mu);
    tp_auth_store_release(old);
    return TP_OK;
}

const tp_auth_tokens *tp_auth_store_acquire(tp_auth_store *s)
{
    pthread_mutex_lock(&s->mu);
    tp_auth_tokens *t = s->cur;
    atomic_fetch_add(&t->refs, 1);
    pthread_mutex_unlock(&s->mu);
    return t;
}

void tp_auth_store_release(const tp_auth_tokens *t)
{
    tp_auth_tokens *m = (tp_auth_tokens *)t;
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        tp_auth_tokens_free(m);
}

const char *tp_auth_store_path(const tp_auth_store *s)
{
    return s ? s->path : NULL;
}

void tp_auth_store_free(tp_auth_store *s)
{
    if (!s)
        return;
    tp_auth_store_release(s->cur);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

static void *gw_acquire(void *ctx)
{
    return (void *)tp_auth_store_acquire(ctx);
}

static void gw_release(void *ctx, void *ref)
{
    (void)ctx;
    tp_auth_store_release(ref);
}

static int gw_find(void *ref, const char *tok, size_t len)
{
    return tp_auth_tokens_find(ref, tok, len);
}

static int gw_allows(void *ref, int identity, uint64_t vehicle_id)
{
    return tp_auth_tokens_allows(ref, identity, vehicle_id);
}

void tp_auth_store_gateway_auth(tp_auth_store *s, tp_gateway_auth *out)
{
    out->ctx = s;
    out->find = gw_find;
    out->allows = gw_allows;
    out->acquire = gw_acquire;
    out->release = gw_release;
}
