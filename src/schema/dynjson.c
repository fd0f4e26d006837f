/* A dynamic row as one line of JSON, per protobuf's JSON mapping (docs/SCHEMA.md, "NDJSON"): nested objects,
 * 64-bit integers as strings, enums by name, Timestamps in RFC 3339, bytes in base64, shortest round-trip floats. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dynrow.h"
#include "schema/schema_internal.h"

typedef struct jw {
    tp_dyn_text *t;
    bool oom;
} jw;

void tp_dyn_text_free(tp_dyn_text *t)
{
    free(t->p);
    t->p = NULL;
    t->len = t->cap = 0;
}

static bool reserve(jw *w, size_t n)
{
    tp_dyn_text *t = w->t;
    if (w->oom)
        return false;
    if (t->cap - t->len > n)
        return true;
    size_t cap = t->cap ? t->cap : 1024;
    while (cap - t->len <= n)
        cap *= 2;
    char *p = realloc(t->p, cap);
    if (!p) {
        w->oom = true;
        return false;
    }
    t->p = p;
    t->cap = cap;
    return true;
}

static void put(jw *w, const char *s, size_t n)
{
    if (!reserve(w, n))
        return;
    memcpy(w->t->p + w->t->len, s, n);
    w->t->len += n;
    w->t->p[w->t->len] = 0;
}

static void puts_(jw *w, const char *s) { put(w, s, strlen(s)); }

static void put_quoted(jw *w, const uint8_t *s, size_t n)
{
    puts_(w, "\"");
    for (size_t i = 0; i < n; i++) {
        char esc[8];
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(w, esc, 2);
        } else if (c == '\n') {
            puts_(w, "\\n");
        } else if (c == '\t') {
            puts_(w, "\\t");
        } else if (c == '\r') {
            puts_(w, "\\r");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            puts_(w, esc);
        } else {
            put(w, (const char *)&s[i], 1);
        }
    }
    puts_(w, "\"");
}

static void put_double(jw *w, double d, bool is_float)
{
    char buf[40];
    if (isnan(d)) {
        puts_(w, "\"NaN\"");
        return;
    }
    if (isinf(d)) {
        puts_(w, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) { /* the shortest text that reads back to the same value */
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (is_float ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d)
            break;
    }
    puts_(w, buf);
}

static void put_base64(jw *w, const uint8_t *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    puts_(w, "\"");
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        put(w, q, 4);
    }
    puts_(w, "\"");
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's algorithm). */
static void civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void put_timestamp(jw *w, int64_t ns)
{
    int64_t s = ns / 1000000000, n = ns % 1000000000;
    if (n < 0) {
        n += 1000000000;
        s -= 1;
    }
    int64_t days = s / 86400, sod = s % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t y;
    unsigned mo, d;
    civil(days, &y, &mo, &d);
    char buf[64];
    int k = snprintf(buf, sizeof buf, "\"%04lld-%02u-%02uT%02d:%02d:%02d", (long long)y, mo, d, (int)(sod / 3600),
                     (int)(sod / 60 % 60), (int)(sod % 60));
    if (n % 1000000 == 0 && n)
        k += snprintf(buf + k, sizeof buf - (size_t)k, ".%03d", (int)(n / 1000000));
    else if (n % 1000 == 0 && n)
        k += snprintf(buf + k, sizeof buf - (size_t)k, ".%06d", (int)(n / 1000));
    else if (n)
        k += snprintf(buf + k, sizeof buf - (size_t)k, ".%09d", (int)n);
    snprintf(buf + k, sizeof buf - (size_t)k, "Z\"");
    puts_(w, buf);
}

static void put_value(jw *w, const tp_dyn_batch *b, const tp_schema_column *def, tp_dyn_value v)
{
    char buf[32];
    switch (def->type) {
    case TP_PB_INT64: case TP_PB_SINT64: case TP_PB_SFIXED64:
        snprintf(buf, sizeof buf, "\"%lld\"", (long long)v.i);
        break;
    case TP_PB_UINT64: case TP_PB_FIXED64:
        snprintf(buf, sizeof buf, "\"%llu\"", (unsigned long long)v.u);
        break;
    case TP_PB_INT32: case TP_PB_SINT32: case TP_PB_SFIXED32:
        snprintf(buf, sizeof buf, "%lld", (long long)v.i);
        break;
    case TP_PB_UINT32: case TP_PB_FIXED32:
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)v.u);
        break;
    case TP_PB_BOOL:
        snprintf(buf, sizeof buf, "%s", v.u ? "true" : "false");
        break;
    case TP_PB_ENUM: {
        const tp_schema_enum *e = def->enum_type;
        for (size_t i = 0; i < e->count; i++)
            if (e->numbers[i] == v.i) {
                put_quoted(w, (const uint8_t *)e->names[i], strlen(e->names[i]));
                return;
            }
        snprintf(buf, sizeof buf, "%lld", (long long)v.i);
        break;
    }
    case TP_PB_DOUBLE: put_double(w, v.d, false); return;
    case TP_PB_FLOAT: put_double(w, v.f, true); return;
    case TP_PB_STRING: put_quoted(w, b->bytes + v.s.off, v.s.len); return;
    case TP_PB_BYTES: put_base64(w, b->bytes + v.s.off, v.s.len); return;
    case TP_PB_TIMESTAMP: put_timestamp(w, v.i); return;
    default: snprintf(buf, sizeof buf, "null"); break;
    }
    puts_(w, buf);
}

static bool is_default(const tp_dyn_column *col, tp_dyn_value v)
{
    if (col->def->kind == TP_COL_STRING || col->def->kind == TP_COL_BYTES)
        return v.s.len == 0;
    if (col->def->kind == TP_COL_F64)
        return v.d == 0 && !signbit(v.d);
    if (col->def->kind == TP_COL_F32)
        return v.f == 0 && !signbit(v.f);
    return v.u == 0;
}

static void put_key(jw *w, bool *first, const char *name)
{
    if (!*first)
        puts_(w, ",");
    *first = false;
    put_quoted(w, (const uint8_t *)name, strlen(name));
    puts_(w, ":");
}

static void put_node(jw *w, const tp_dyn_batch *b, const tp_schema_node *node, size_t row, int flags)
{
    bool first = true;
    puts_(w, "{");
    for (size_t i = 0; i < node->count; i++) {
        const tp_schema_member *m = &node->members[i];
        const char *name = flags & TP_DYN_JSON_PROTO_NAMES ? m->name : m->json_name;
        if (m->child) {
            size_t mark = w->t->len;
            bool was_first = first;
            put_key(w, &first, name);
            size_t open = w->t->len;
            put_node(w, b, m->child, row, flags);
            if (!w->oom && w->t->len == open + 2) { /* "{}": nothing below was written */
                w->t->len = mark;
                w->t->p[mark] = 0;
                first = was_first;
            }
            continue;
        }
        const tp_dyn_column *col = &b->columns[m->column];
        tp_dyn_value v = col->cells[row];
        if (col->def->label == TP_LABEL_REPEATED) {
            if (v.a.count == 0)
                continue;
            put_key(w, &first, name);
            puts_(w, "[");
            for (uint32_t k = 0; k < v.a.count; k++) {
                if (k)
                    puts_(w, ",");
                put_value(w, b, col->def, col->elems[v.a.off + k]);
            }
            puts_(w, "]");
            continue;
        }
        if (!col->present[row] || (col->def->label == TP_LABEL_IMPLICIT && is_default(col, v)))
            continue;
        put_key(w, &first, name);
        put_value(w, b, col->def, v);
    }
    puts_(w, "}");
}

tp_err tp_dyn_row_json(const tp_dyn_batch *b, size_t row, int flags, tp_dyn_text *out)
{
    if (!b || !out || row >= b->count)
        return TP_ERR_INVALID_ARG;
    jw w = {out, false};
    put_node(&w, b, &b->schema->root, row, flags);
    puts_(&w, "\n");
    return w.oom ? TP_ERR_NOMEM : TP_OK;
}
