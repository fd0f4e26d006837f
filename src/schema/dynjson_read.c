/* NDJSON -> dynamic row: one JSON object per protobuf's JSON mapping, parsed by hand straight into a tp_dyn_batch
 * row (no tree, no allocation once the batch is warm). Keys by json_name (lowerCamelCase) or .proto name, nested
 * objects for flattened messages, 64-bit integers as numbers or strings, enums by name or number, Timestamps in
 * RFC 3339 with offsets, bytes in base64 (standard or URL-safe), "NaN"/"Infinity"/"-Infinity", null = absent,
 * arrays for repeated fields. Duplicate keys and (unless TP_DYN_JSON_IGNORE_UNKNOWN) unknown keys are refused.
 * Bounded: the input is the caller's (one line), nesting of skipped values is capped at TP_DYN_JSON_MAX_NESTING,
 * nesting of known fields is the schema's. docs/SCHEMA.md, "Reading NDJSON". */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dynrow.h"
#include "schema/schema_internal.h"

/* Timestamps as int64 ns, as dynrow.c: INT64_MIN .. INT64_MAX ns is 1677-09-21T00:12:43.145224192Z ..
 * 2262-04-11T23:47:16.854775807Z, seconds within these bounds (nanos checked at each end). */
#define TS_MIN_S (-9223372037LL)
#define TS_MAX_S 9223372036LL

/* Longest number text (a JSON number or a string holding one) read as a floating-point value. */
#define MAX_NUMBER_TEXT 400

typedef struct jr {
    tp_dyn_batch *b;
    size_t row;
    const char *start, *p, *end;
    int flags;
    const tp_schema_member *stack[TP_SCHEMA_MAX_DEPTH]; /* the objects we are in, for error sentences */
    size_t nstack;
} jr;

static tp_err jerr(jr *r, tp_err rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static tp_err jerr(jr *r, tp_err rc, const char *fmt, ...)
{
    int n = snprintf(r->b->error, sizeof r->b->error, "at column %zu: ", (size_t)(r->p - r->start) + 1);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof r->b->error)
        vsnprintf(r->b->error + n, sizeof r->b->error - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

/* A printable, shortened copy of text for error sentences (at most 40 characters, then "..."). */
static const char *shown(const char *s, size_t n, char out[48])
{
    size_t k = 0;
    for (; k < n && k < 40; k++)
        out[k] = ((unsigned char)s[k] >= 0x20 && (unsigned char)s[k] < 0x7f && s[k] != '"') ? s[k] : '?';
    if (n > 40) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = 0;
    return out;
}

/* The dotted .proto path of the object being read ("battery"), or "the top level". */
static const char *where(const jr *r, char *buf, size_t cap)
{
    if (r->nstack == 0)
        return "the top level";
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < r->nstack && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "." : "", r->stack[i]->name);
    return buf;
}

static void ws(jr *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                                                                       : -1;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Scans the JSON string at r->p (on its opening quote): checks escapes (surrogates paired), control characters and
 * UTF-8, sets [*raw, *raw + *n) to the text between the quotes, and moves past the closing quote. */
static tp_err scan_string(jr *r, const char **raw, size_t *n)
{
    const char *s = ++r->p;
    while (r->p < r->end && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20)
            return jerr(r, TP_ERR_PARSE, "a string holds control character 0x%02x; escape it (\\u%04x)", c, c);
        if (c != '\\') {
            r->p++;
            continue;
        }
        if (r->end - r->p < 2)
            break;
        char e = r->p[1];
        if (e == 'u') {
            int v = r->end - r->p >= 6 ? hex4(r->p + 2) : -1;
            if (v < 0)
                return jerr(r, TP_ERR_PARSE, "a \\u escape needs four hex digits");
            r->p += 6;
            if (v >= 0xdc00 && v <= 0xdfff)
                return jerr(r, TP_ERR_PARSE, "a string holds a lone low surrogate \\u%04x", v);
            if (v >= 0xd800 && v <= 0xdbff) {
                int lo = r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u' ? hex4(r->p + 2) : -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return jerr(r, TP_ERR_PARSE, "a string holds a high surrogate \\u%04x without its low half", v);
                r->p += 6;
            }
            continue;
        }
        if (!strchr("\"\\/bfnrt", e) || e == 0)
            return jerr(r, TP_ERR_PARSE, "a string holds the unknown escape \\%c", e >= 0x20 && e < 0x7f ? e : '?');
        r->p += 2;
    }
    if (r->p >= r->end)
        return jerr(r, TP_ERR_PARSE, "a string is not closed before the end of the line");
    *raw = s;
    *n = (size_t)(r->p - s);
    r->p++;
    if (!tp_dyn_utf8_valid((const uint8_t *)s, *n)) {
        r->p = s;
        return jerr(r, TP_ERR_PARSE, "a string is not valid UTF-8");
    }
    return TP_OK;
}

/* Decodes the checked content of a JSON string into dst (room for n bytes: the result is never longer). */
static size_t unescape(const char *s, size_t n, uint8_t *dst)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            dst[k++] = (uint8_t)s[i++];
            continue;
        }
        char e = s[i + 1];
        i += 2;
        if (e != 'u') {
            dst[k++] = (uint8_t)(e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r'
                                 : e == 't' ? '\t' : e);
            continue;
        }
        uint32_t cp = (uint32_t)hex4(s + i);
        i += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)hex4(s + i + 2) - 0xdc00);
            i += 6;
        }
        if (cp < 0x80) {
            dst[k++] = (uint8_t)cp;
        } else if (cp < 0x800) {
            dst[k++] = (uint8_t)(0xc0 | cp >> 6);
            dst[k++] = (uint8_t)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            dst[k++] = (uint8_t)(0xe0 | cp >> 12);
            dst[k++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            dst[k++] = (uint8_t)(0x80 | (cp & 0x3f));
        } else {
            dst[k++] = (uint8_t)(0xf0 | cp >> 18);
            dst[k++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
            dst[k++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            dst[k++] = (uint8_t)(0x80 | (cp & 0x3f));
        }
    }
    return k;
}

/* Whether s[0..n) is a JSON number; *integral when it has no fraction and no exponent. */
static bool is_number(const char *s, size_t n, bool *integral)
{
    size_t i = 0;
    *integral = true;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return false;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        *integral = false;
        if (++i >= n || s[i] < '0' || s[i] > '9')
            return false;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        *integral = false;
        if (++i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || s[i] < '0' || s[i] > '9')
            return false;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return i == n;
}

/* One scalar token: a number (raw text), a string (raw text between the quotes), true, false or null. */
typedef enum { TK_NUM, TK_STR, TK_TRUE, TK_FALSE, TK_NULL, TK_OBJ, TK_ARR } tk_kind;
typedef struct tok {
    tk_kind kind;
    const char *s;
    size_t n;
    bool escaped; /* a string with a backslash in it */
    const char *at; /* where the token starts (errors point there) */
} tok;

static tp_err next_token(jr *r, tok *t)
{
    ws(r);
    if (r->p >= r->end)
        return jerr(r, TP_ERR_PARSE, "the line ends where a value should be");
    t->at = r->p;
    char c = *r->p;
    if (c == '{' || c == '[') {
        t->kind = c == '{' ? TK_OBJ : TK_ARR;
        return TP_OK;
    }
    if (c == '"') {
        tp_err e = scan_string(r, &t->s, &t->n);
        t->kind = TK_STR;
        t->escaped = !e && memchr(t->s, '\\', t->n) != NULL;
        return e;
    }
    static const struct {
        const char *w;
        tk_kind k;
    } lits[] = {{"true", TK_TRUE}, {"false", TK_FALSE}, {"null", TK_NULL}};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(lits[i].w);
        if ((size_t)(r->end - r->p) >= n && !memcmp(r->p, lits[i].w, n)) {
            t->kind = lits[i].k;
            t->s = r->p;
            t->n = n;
            r->p += n;
            return TP_OK;
        }
    }
    const char *s = r->p;
    while (r->p < r->end && (strchr("+-.eE", *r->p) || (*r->p >= '0' && *r->p <= '9')) && *r->p)
        r->p++;
    bool integral;
    if (r->p == s || !is_number(s, (size_t)(r->p - s), &integral)) {
        char b[48];
        r->p = s;
        return jerr(r, TP_ERR_PARSE, "\"%s\" is not a JSON value", shown(s, (size_t)(r->end - s), b));
    }
    t->kind = TK_NUM;
    t->s = s;
    t->n = (size_t)(r->p - s);
    t->escaped = false;
    return TP_OK;
}

/* The text of a number or short string token, unescaped and NUL-terminated in buf[0..cap); NULL when longer. */
static const char *token_text(const tok *t, char *buf, size_t cap)
{
    if (t->n >= cap)
        return NULL;
    size_t n = t->escaped ? unescape(t->s, t->n, (uint8_t *)buf) : t->n;
    if (!t->escaped)
        memcpy(buf, t->s, n);
    buf[n] = 0;
    return buf;
}

static const char *type_word(const tp_schema_column *def) { return tp_pb_type_name(def->type); }

/* An integer of def's type from a number or a string holding one (exact below 2^64; an exponent form must be
 * integral, such as 1e3). */
static tp_err read_int(jr *r, const tp_schema_column *def, const tok *t, tp_dyn_value *out)
{
    char buf[MAX_NUMBER_TEXT + 1], b[48];
    const char *s = (t->kind == TK_NUM || t->kind == TK_STR) ? token_text(t, buf, sizeof buf) : NULL;
    bool integral, neg = s && s[0] == '-';
    if (!s || !is_number(s, strlen(s), &integral))
        return jerr(r, TP_ERR_PARSE, "field %s (%s): %s is not an integer; write a JSON number or a decimal string",
                    def->path, type_word(def), t->kind == TK_STR ? "the string" : "the value");
    uint64_t mag = 0;
    bool over = false;
    if (integral) {
        for (const char *q = s + neg; *q; q++) {
            unsigned d = (unsigned)(*q - '0');
            if (mag > (UINT64_MAX - d) / 10)
                over = true;
            else
                mag = mag * 10 + d;
        }
    } else {
        errno = 0;
        double d = strtod(s, NULL);
        if (!isfinite(d) || d != floor(d))
            return jerr(r, TP_ERR_PARSE, "field %s (%s): %s is not an integer", def->path, type_word(def),
                        shown(s, strlen(s), b));
        double a = fabs(d);
        if (a >= 18446744073709551616.0)
            over = true;
        else
            mag = (uint64_t)a;
        neg = d < 0;
    }
    bool is_signed = def->kind == TP_COL_I64;
    bool is32 = def->type == TP_PB_INT32 || def->type == TP_PB_SINT32 || def->type == TP_PB_SFIXED32 ||
                def->type == TP_PB_ENUM || def->type == TP_PB_UINT32 || def->type == TP_PB_FIXED32;
    uint64_t max_pos = is_signed ? (is32 ? INT32_MAX : INT64_MAX) : (is32 ? UINT32_MAX : UINT64_MAX);
    uint64_t max_neg = is_signed ? (is32 ? (uint64_t)INT32_MAX + 1 : (uint64_t)INT64_MAX + 1) : 0;
    if (over || (neg ? mag > max_neg : mag > max_pos))
        return jerr(r, TP_ERR_PARSE, "field %s (%s): %s is outside the %s range", def->path, type_word(def),
                    shown(s, strlen(s), b), def->type == TP_PB_ENUM ? "int32" : type_word(def));
    if (is_signed)
        out->i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    else
        out->u = mag;
    return TP_OK;
}

static tp_err read_float(jr *r, const tp_schema_column *def, const tok *t, tp_dyn_value *out)
{
    char buf[MAX_NUMBER_TEXT + 1], b[48];
    const char *s = (t->kind == TK_NUM || t->kind == TK_STR) ? token_text(t, buf, sizeof buf) : NULL;
    double d;
    bool integral;
    if (s && t->kind == TK_STR && !strcmp(s, "NaN")) {
        d = NAN;
    } else if (s && t->kind == TK_STR && !strcmp(s, "Infinity")) {
        d = INFINITY;
    } else if (s && t->kind == TK_STR && !strcmp(s, "-Infinity")) {
        d = -INFINITY;
    } else if (s && is_number(s, strlen(s), &integral)) {
        errno = 0;
        d = strtod(s, NULL);
        if (isinf(d) || (def->kind == TP_COL_F32 && isinf((float)d)))
            return jerr(r, TP_ERR_PARSE, "field %s (%s): %s is outside the %s range", def->path, type_word(def),
                        shown(s, strlen(s), b), type_word(def));
    } else {
        return jerr(r, TP_ERR_PARSE, "field %s (%s): %s is not a number; write a JSON number, or \"NaN\", "
                    "\"Infinity\", \"-Infinity\"", def->path, type_word(def),
                    s ? shown(s, strlen(s), b) : t->kind == TK_STR ? "a long string" : "the value");
    }
    if (def->kind == TP_COL_F32)
        out->f = (float)d;
    else
        out->d = d;
    return TP_OK;
}

/* ---- the batch: bytes and elements against its budget (as dynrow.c) ---- */

static bool budget(tp_dyn_batch *b, size_t n)
{
    if (n > b->max_bytes - b->used)
        return false;
    b->used += n;
    return true;
}

/* Room for n more bytes in the arena (not yet counted: the caller counts what it keeps). */
static tp_err arena_room(jr *r, const tp_schema_column *def, size_t n)
{
    tp_dyn_batch *b = r->b;
    if (n > b->max_bytes - b->used)
        return jerr(r, TP_ERR_FULL, "field %s: the batch's %zu bytes for strings and arrays are used up", def->path,
                    b->max_bytes);
    if (b->bytes_len + n > b->bytes_cap) {
        size_t cap = b->bytes_cap ? b->bytes_cap : 4096;
        while (cap < b->bytes_len + n)
            cap *= 2;
        if (cap > b->max_bytes)
            cap = b->max_bytes;
        if (cap < b->bytes_len + n)
            return jerr(r, TP_ERR_FULL, "field %s: the batch's %zu bytes for strings and arrays are used up",
                        def->path, b->max_bytes);
        uint8_t *q = realloc(b->bytes, cap);
        if (!q)
            return jerr(r, TP_ERR_NOMEM, "out of memory for field %s", def->path);
        b->bytes = q;
        b->bytes_cap = cap;
    }
    return TP_OK;
}

static int b64val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decodes base64 (standard or URL-safe alphabet, padding optional) in place: p[0..n) -> p[0..*out). */
static bool base64_inplace(uint8_t *p, size_t n, size_t *out)
{
    size_t pad = 0;
    while (n && p[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if ((pad && (n + pad) % 4) || n % 4 == 1)
        return false;
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(p[i]);
        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            p[k++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *out = k;
    return true;
}

static tp_err read_bytes(jr *r, const tp_schema_column *def, const tok *t, tp_dyn_value *out)
{
    if (t->kind != TK_STR)
        return jerr(r, TP_ERR_PARSE, "field %s (%s) needs a JSON string%s", def->path, type_word(def),
                    def->kind == TP_COL_BYTES ? " in base64" : "");
    tp_err e = arena_room(r, def, t->n);
    if (e)
        return e;
    tp_dyn_batch *b = r->b;
    uint8_t *dst = b->bytes + b->bytes_len;
    size_t n = unescape(t->s, t->n, dst);
    if (def->kind == TP_COL_BYTES && !base64_inplace(dst, n, &n))
        return jerr(r, TP_ERR_PARSE, "field %s (bytes): the string is not base64 (standard or URL-safe alphabet, "
                    "padding optional)", def->path);
    budget(b, n);
    out->s.off = (uint32_t)b->bytes_len;
    out->s.len = (uint32_t)n;
    b->bytes_len += n;
    return TP_OK;
}

/* Days from 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|+HH:MM|-HH:MM), into ns since the epoch. */
static bool parse_rfc3339(const char *s, int64_t *ns)
{
    size_t n = strlen(s);
    int y, mo, d, h, mi, se;
    if (n < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) || s[13] != ':' ||
        !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
        return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) || h > 23 ||
        mi > 59 || se > 59)
        return false;
    size_t i = 19;
    int64_t frac = 0;
    if (s[i] == '.') {
        int k = 0;
        for (i++; s[i] >= '0' && s[i] <= '9'; i++, k++)
            if (k < 9)
                frac = frac * 10 + (s[i] - '0');
        if (k < 1 || k > 9)
            return false;
        for (; k < 9; k++)
            frac *= 10;
    }
    int64_t off = 0;
    if ((s[i] == 'Z' || s[i] == 'z') && s[i + 1] == 0) {
        off = 0;
    } else if ((s[i] == '+' || s[i] == '-') && n - i == 6) {
        int oh, om;
        if (!digits(s + i + 1, 2, &oh) || s[i + 3] != ':' || !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return false;
        off = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    } else {
        return false;
    }
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    if (secs < TS_MIN_S || secs > TS_MAX_S || (secs == TS_MAX_S && frac > 854775807) ||
        (secs == TS_MIN_S && frac < 145224192))
        return false;
    /* at the low end seconds x 1e9 alone would overflow */
    *ns = secs >= 0 ? secs * 1000000000 + frac : (secs + 1) * 1000000000 + (frac - 1000000000);
    return true;
}

static tp_err read_timestamp(jr *r, const tp_schema_column *def, const tok *t, tp_dyn_value *out)
{
    char buf[64], b[48];
    const char *s = t->kind == TK_STR ? token_text(t, buf, sizeof buf) : NULL;
    if (!s || !parse_rfc3339(s, &out->i))
        return jerr(r, TP_ERR_PARSE, "field %s (Timestamp): %s is not an RFC 3339 time within "
                    "1677-09-21..2262-04-11, such as \"2024-05-01T12:00:00.250Z\" or \"2024-05-01T14:00:00+02:00\"",
                    def->path, t->kind == TK_STR ? shown(t->s, t->n, b) : "the value");
    return TP_OK;
}

/* One scalar of def's type. *skip is set for an enum name the enum lacks under TP_DYN_JSON_IGNORE_UNKNOWN (as
 * protobuf's parser: the field is left out). */
static tp_err convert(jr *r, const tp_schema_column *def, const tok *t, tp_dyn_value *out, bool *skip);

static tp_err read_scalar(jr *r, const tp_schema_column *def, const tok *t, tp_dyn_value *out, bool *skip)
{
    const char *after = r->p;
    r->p = t->at; /* an error names the value's column */
    tp_err e = convert(r, def, t, out, skip);
    if (!e)
        r->p = after;
    return e;
}

static tp_err convert(jr *r, const tp_schema_column *def, const tok *t, tp_dyn_value *out, bool *skip)
{
    char b[48];
    out->u = 0;
    *skip = false;
    switch (def->type) {
    case TP_PB_BOOL:
        if (t->kind != TK_TRUE && t->kind != TK_FALSE)
            return jerr(r, TP_ERR_PARSE, "field %s (bool) needs true or false", def->path);
        out->u = t->kind == TK_TRUE;
        return TP_OK;
    case TP_PB_DOUBLE: case TP_PB_FLOAT:
        return read_float(r, def, t, out);
    case TP_PB_STRING: case TP_PB_BYTES:
        return read_bytes(r, def, t, out);
    case TP_PB_TIMESTAMP:
        return read_timestamp(r, def, t, out);
    case TP_PB_ENUM:
        if (t->kind == TK_STR) {
            char buf[TP_SCHEMA_MAX_NAME + 1];
            const char *s = token_text(t, buf, sizeof buf);
            const tp_schema_enum *en = def->enum_type;
            for (size_t i = 0; s && i < en->count; i++)
                if (!strcmp(s, en->names[i])) {
                    out->i = en->numbers[i];
                    return TP_OK;
                }
            if (r->flags & TP_DYN_JSON_IGNORE_UNKNOWN) {
                *skip = true;
                return TP_OK;
            }
            return jerr(r, TP_ERR_PARSE, "field %s: \"%s\" is not a value of enum %s; write one of its names or a "
                        "number", def->path, shown(t->s, t->n, b), en->full_name);
        }
        if (t->kind != TK_NUM)
            return jerr(r, TP_ERR_PARSE, "field %s (enum %s) needs a value name or a number", def->path,
                        def->enum_type->full_name);
        return read_int(r, def, t, out);
    default:
        if (t->kind != TK_NUM && t->kind != TK_STR)
            return jerr(r, TP_ERR_PARSE, "field %s (%s) needs a number", def->path, type_word(def));
        return read_int(r, def, t, out);
    }
}

static tp_err append_elem(jr *r, tp_dyn_column *col, tp_dyn_value v)
{
    if (!budget(r->b, sizeof v))
        return jerr(r, TP_ERR_FULL, "field %s: the batch's %zu bytes for strings and arrays are used up",
                    col->def->path, r->b->max_bytes);
    if (col->elems_len == col->elems_cap) {
        size_t cap = col->elems_cap ? col->elems_cap * 2 : 64;
        tp_dyn_value *p = realloc(col->elems, cap * sizeof *p);
        if (!p)
            return jerr(r, TP_ERR_NOMEM, "out of memory for field %s", col->def->path);
        col->elems = p;
        col->elems_cap = cap;
    }
    col->elems[col->elems_len++] = v;
    col->cells[r->row].a.count++;
    col->present[r->row] = 1;
    return TP_OK;
}

/* Skips one JSON value of any shape (an unknown key's), at most TP_DYN_JSON_MAX_NESTING deep. */
static tp_err skip_value(jr *r, int depth)
{
    tok t;
    tp_err e = next_token(r, &t);
    if (e || (t.kind != TK_OBJ && t.kind != TK_ARR))
        return e;
    if (depth >= TP_DYN_JSON_MAX_NESTING)
        return jerr(r, TP_ERR_PARSE, "values are nested more than %d deep", TP_DYN_JSON_MAX_NESTING);
    char close = t.kind == TK_OBJ ? '}' : ']';
    r->p++;
    ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return TP_OK;
    }
    for (;;) {
        if (t.kind == TK_OBJ) {
            const char *raw;
            size_t n;
            ws(r);
            if (r->p >= r->end || *r->p != '"')
                return jerr(r, TP_ERR_PARSE, "an object key must be a string");
            if ((e = scan_string(r, &raw, &n)))
                return e;
            ws(r);
            if (r->p >= r->end || *r->p != ':')
                return jerr(r, TP_ERR_PARSE, "a ':' must follow an object key");
            r->p++;
        }
        if ((e = skip_value(r, depth + 1)))
            return e;
        ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == close) {
            r->p++;
            return TP_OK;
        }
        return jerr(r, TP_ERR_PARSE, "expected ',' or '%c'", close);
    }
}

static tp_err read_array(jr *r, tp_dyn_column *col)
{
    r->p++; /* '[' */
    ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return TP_OK;
    }
    for (;;) {
        tok t;
        tp_dyn_value v;
        bool skip;
        tp_err e = next_token(r, &t);
        if (e)
            return e;
        if (t.kind == TK_OBJ || t.kind == TK_ARR || t.kind == TK_NULL)
            return jerr(r, TP_ERR_PARSE, "field %s: an element of a repeated %s must be a %s, not %s", col->def->path,
                        type_word(col->def), col->def->type == TP_PB_BOOL ? "boolean" : "scalar",
                        t.kind == TK_NULL ? "null" : t.kind == TK_OBJ ? "an object" : "an array");
        if ((e = read_scalar(r, col->def, &t, &v, &skip)))
            return e;
        if (!skip && (e = append_elem(r, col, v)))
            return e;
        ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return TP_OK;
        }
        return jerr(r, TP_ERR_PARSE, "field %s: expected ',' or ']' in the array", col->def->path);
    }
}

/* The member named key (JSON or .proto name), searched from *index on (round the end): keys usually come in the
 * fields' order, as tp_dyn_row_json writes them, so the first comparison mostly hits. */
static const tp_schema_member *find_member(const tp_schema_node *node, const char *key, size_t *index)
{
    for (size_t k = 0, i = *index < node->count ? *index : 0; k < node->count; k++, i = i + 1 < node->count ? i + 1 : 0)
        if (!strcmp(key, node->members[i].json_name) || !strcmp(key, node->members[i].name)) {
            *index = i;
            return &node->members[i];
        }
    return NULL;
}

static tp_err read_object(jr *r, const tp_schema_node *node)
{
    uint64_t seen[(TP_SCHEMA_MAX_COLUMNS + 63) / 64] = {0}; /* a node has at most one member per column */
    char wb[256], b[48];
    size_t hint = 0; /* where the next key is looked for first */
    r->p++; /* '{' */
    ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return TP_OK;
    }
    for (;;) {
        const char *raw;
        size_t n;
        ws(r);
        if (r->p >= r->end || *r->p != '"')
            return jerr(r, TP_ERR_PARSE, "an object key must be a string (in %s)", where(r, wb, sizeof wb));
        tp_err e = scan_string(r, &raw, &n);
        if (e)
            return e;
        const char *key_at = raw - 1;
        char key[TP_SCHEMA_MAX_NAME + 1];
        size_t index = hint;
        const tp_schema_member *m = NULL;
        if (n < sizeof key) {
            size_t k = unescape(raw, n, (uint8_t *)key);
            key[k] = 0;
            if (strlen(key) == k) /* a key holding \u0000 names no field */
                m = find_member(node, key, &index);
        }
        if (m)
            hint = index + 1;
        ws(r);
        if (r->p >= r->end || *r->p != ':')
            return jerr(r, TP_ERR_PARSE, "a ':' must follow the key \"%s\"", shown(raw, n, b));
        r->p++;
        if (!m) {
            if (!(r->flags & TP_DYN_JSON_IGNORE_UNKNOWN)) {
                r->p = key_at;
                return jerr(r, TP_ERR_PARSE, "unknown key \"%s\" in %s: it names no field of %s (keys are the "
                            "fields' JSON names or .proto names)", shown(raw, n, b), where(r, wb, sizeof wb),
                            tp_schema_message_name(r->b->schema));
            }
            if ((e = skip_value(r, (int)r->nstack + 1)))
                return e;
        } else {
            if (seen[index / 64] >> (index % 64) & 1) {
                r->p = key_at;
                return jerr(r, TP_ERR_PARSE, "the key \"%s\" in %s repeats field %s (a duplicate key)",
                            shown(raw, n, b), where(r, wb, sizeof wb), m->name);
            }
            seen[index / 64] |= 1ull << (index % 64);
            tok t;
            if ((e = next_token(r, &t)))
                return e;
            if (t.kind == TK_NULL) {
                /* null: the field is absent */
            } else if (m->child) {
                if (t.kind != TK_OBJ)
                    return jerr(r, TP_ERR_PARSE, "field %s is a message: it needs a JSON object or null", m->name);
                r->stack[r->nstack++] = m;
                e = read_object(r, m->child);
                r->nstack--;
                if (e)
                    return e;
            } else {
                tp_dyn_column *col = &r->b->columns[m->column];
                if (col->def->label == TP_LABEL_REPEATED) {
                    if (t.kind != TK_ARR)
                        return jerr(r, TP_ERR_PARSE, "field %s is repeated: it needs a JSON array or null",
                                    col->def->path);
                    if ((e = read_array(r, col)))
                        return e;
                } else {
                    tp_dyn_value v;
                    bool skip;
                    if (t.kind == TK_OBJ || t.kind == TK_ARR)
                        return jerr(r, TP_ERR_PARSE, "field %s (%s) needs a scalar, not %s", col->def->path,
                                    type_word(col->def), t.kind == TK_OBJ ? "an object" : "an array");
                    if ((e = read_scalar(r, col->def, &t, &v, &skip)))
                        return e;
                    if (!skip) {
                        col->cells[r->row] = v;
                        col->present[r->row] = 1;
                    }
                }
            }
        }
        ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            return TP_OK;
        }
        return jerr(r, TP_ERR_PARSE, "expected ',' or '}' after the value of \"%s\"", shown(raw, n, b));
    }
}

tp_err tp_dyn_json_read(tp_dyn_batch *b, const char *text, size_t len, int flags)
{
    if (!b || (!text && len))
        return TP_ERR_INVALID_ARG;
    b->error[0] = 0;
    if (b->count == b->capacity) {
        snprintf(b->error, sizeof b->error, "the batch is full (%zu rows)", b->capacity);
        return TP_ERR_FULL;
    }
    size_t row = b->count, bytes_mark = b->bytes_len, used_mark = b->used;
    for (size_t i = 0; i < b->ncolumns; i++) {
        tp_dyn_column *col = &b->columns[i];
        col->cells[row].u = 0;
        col->present[row] = 0;
        if (col->def->label == TP_LABEL_REPEATED)
            col->cells[row].a.off = (uint32_t)col->elems_len;
    }
    jr r = {.b = b, .row = row, .start = text, .p = text, .end = text + len, .flags = flags};
    ws(&r);
    tp_err e;
    if (r.p >= r.end || *r.p != '{') {
        char sb[48];
        e = jerr(&r, TP_ERR_PARSE, "a record is one JSON object per line, and this line starts with \"%s\"",
                 shown(r.p, (size_t)(r.end - r.p), sb));
    } else if (!(e = read_object(&r, &b->schema->root))) {
        ws(&r);
        if (r.p < r.end)
            e = jerr(&r, TP_ERR_PARSE, "text follows the record's closing '}'");
    }
    if (e) {
        for (size_t i = 0; i < b->ncolumns; i++)
            if (b->columns[i].def->label == TP_LABEL_REPEATED)
                b->columns[i].elems_len = b->columns[i].cells[row].a.off;
        b->bytes_len = bytes_mark;
        b->used = used_mark;
        return e;
    }
    b->count++;
    return TP_OK;
}
