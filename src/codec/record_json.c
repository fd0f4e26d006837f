/* NDJSON <-> tp_record: a hand-written writer (no allocation, exact round trip of doubles and floats); a parser
 * with a fast path for the plain lines `telepack gen` writes and a jansson path that decides everything else (and
 * gives the field-level error messages), so both behave the same; plus a bounded line reader. */
#include "telepack/record_json.h"
#include "codec/record_json_full.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- meter status names ---- */

static const char *const meter_names[] = {
    "METER_STATUS_UNKNOWN", "METER_STATUS_VACANT", "METER_STATUS_HIRED", "METER_STATUS_PICKUP",
    "METER_STATUS_OUT_OF_SERVICE",
};
#define METER_NAME_COUNT ((int32_t)(sizeof meter_names / sizeof meter_names[0]))

const char *tp_meter_status_name(int32_t status)
{
    if (status < 0 || status >= METER_NAME_COUNT)
        return NULL;
    return meter_names[status];
}

tp_err tp_meter_status_parse(const char *name, int32_t *out)
{
    if (!name || !out)
        return TP_ERR_INVALID_ARG;
    for (int32_t i = 0; i < METER_NAME_COUNT; i++)
        if (!strcmp(name, meter_names[i])) {
            *out = i;
            return TP_OK;
        }
    return TP_ERR_PARSE;
}

/* ---- writer ---- */

static const double pow10_tab[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
#define MAX_FIXED_DECIMALS 9
/* Integers below 2^53 are exact in a double; keep the scaled value under it. */
#define FIXED_LIMIT 9.0e15

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return put_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return put_u64(p, (uint64_t)v);
}

/* Writes r/10^k (r an integer-valued double < 2^53) in fixed point with exactly k decimals, trailing zeros
 * already excluded by the caller's choice of the smallest k. */
static char *put_fixed(char *p, bool neg, double r, int k)
{
    uint64_t u = (uint64_t)r, scale = 1;
    for (int i = 0; i < k; i++)
        scale *= 10;
    if (neg)
        *p++ = '-';
    p = put_u64(p, u / scale);
    if (k > 0) {
        uint64_t frac = u % scale;
        *p++ = '.';
        for (int i = k - 1; i >= 0; i--) {
            p[i] = (char)('0' + frac % 10);
            frac /= 10;
        }
        p += k;
    }
    return p;
}

/* Non-finite values and zeros, shared by doubles and floats; returns NULL when v is an ordinary number. */
static char *put_special(char *p, double v)
{
    if (isnan(v))
        return put_str(p, "\"NaN\"");
    if (isinf(v))
        return put_str(p, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    if (v == 0)
        return put_str(p, signbit(v) ? "-0.0" : "0");
    return NULL;
}

static char *put_double(char *p, double v)
{
    char *q = put_special(p, v);
    if (q)
        return q;
    double av = fabs(v);
    /* The decimal D = r / 10^k parses (correctly rounded) to the double nearest D, and IEEE division r / 10^k
     * (both operands exact) also yields the double nearest D: so the equality test below proves D round-trips. */
    for (int k = 0; k <= MAX_FIXED_DECIMALS; k++) {
        double scaled = av * pow10_tab[k];
        if (scaled >= FIXED_LIMIT)
            break;
        double r = nearbyint(scaled);
        if (r != 0 && r / pow10_tab[k] == av)
            return put_fixed(p, v < 0, r, k);
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        int n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (prec == 17 || strtod(tmp, NULL) == v) {
            memcpy(p, tmp, (size_t)n);
            return p + n;
        }
    }
    return p; /* not reached */
}

static char *put_float(char *p, float f)
{
    double v = f;
    char *q = put_special(p, v);
    if (q)
        return q;
    double av = fabs(v);
    /* The parser reads a float as strtod() then a cast to float; this test mirrors exactly that path. */
    for (int k = 0; k <= MAX_FIXED_DECIMALS; k++) {
        double scaled = av * pow10_tab[k];
        if (scaled >= FIXED_LIMIT)
            break;
        double r = nearbyint(scaled);
        if (r != 0 && (float)(r / pow10_tab[k]) == fabsf(f))
            return put_fixed(p, f < 0, r, k);
    }
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%.9g", v);
    memcpy(p, tmp, (size_t)n);
    return p + n;
}

/* uint64 above INT64_MAX as a string: jansson (and many parsers) cannot read such integer literals. */
static char *put_u64_json(char *p, uint64_t v)
{
    if (v > (uint64_t)INT64_MAX) {
        *p++ = '"';
        p = put_u64(p, v);
        *p++ = '"';
        return p;
    }
    return put_u64(p, v);
}

tp_err tp_record_json_write(const tp_record *r, char *dst, size_t cap, size_t *out_len)
{
    if (!r || !dst || !out_len)
        return TP_ERR_INVALID_ARG;
    char tmp[TP_RECORD_JSON_MAX];
    /* Write straight into dst when it is certainly large enough, else into tmp and copy. */
    char *start = cap >= TP_RECORD_JSON_MAX ? dst : tmp;
    char *p = start;
    p = put_str(p, "{\"vehicle_id\":");
    p = put_u64_json(p, r->vehicle_id);
    p = put_str(p, ",\"sampled_at_ms\":");
    p = put_i64(p, r->sampled_at_ms);
    p = put_str(p, ",\"seq\":");
    p = put_u64_json(p, r->seq);
    p = put_str(p, ",\"latitude\":");
    p = put_double(p, r->latitude);
    p = put_str(p, ",\"longitude\":");
    p = put_double(p, r->longitude);
    p = put_str(p, ",\"speed_kmh\":");
    p = put_float(p, r->speed_kmh);
    p = put_str(p, ",\"heading_deg\":");
    p = put_float(p, r->heading_deg);
    p = put_str(p, ",\"accuracy_m\":");
    p = put_float(p, r->accuracy_m);
    p = put_str(p, ",\"meter_status\":");
    const char *name = tp_meter_status_name(r->meter_status);
    if (name) {
        *p++ = '"';
        p = put_str(p, name);
        *p++ = '"';
    } else {
        p = put_i64(p, r->meter_status);
    }
    *p++ = '}';
    size_t n = (size_t)(p - start);
    if (start == tmp) {
        if (n > cap)
            return TP_ERR_FULL;
        memcpy(dst, tmp, n);
    }
    *out_len = n;
    return TP_OK;
}

/* ---- parser ---- */

typedef enum field_kind { F_U64, F_I64, F_DOUBLE, F_FLOAT, F_ENUM } field_kind;

typedef struct field_def {
    const char *name;
    const char *camel;
    field_kind kind;
    size_t offset;
} field_def;

static const field_def fields[] = {
    {"vehicle_id", "vehicleId", F_U64, offsetof(tp_record, vehicle_id)},
    {"sampled_at_ms", "sampledAtMs", F_I64, offsetof(tp_record, sampled_at_ms)},
    {"seq", "seq", F_U64, offsetof(tp_record, seq)},
    {"latitude", "latitude", F_DOUBLE, offsetof(tp_record, latitude)},
    {"longitude", "longitude", F_DOUBLE, offsetof(tp_record, longitude)},
    {"speed_kmh", "speedKmh", F_FLOAT, offsetof(tp_record, speed_kmh)},
    {"heading_deg", "headingDeg", F_FLOAT, offsetof(tp_record, heading_deg)},
    {"accuracy_m", "accuracyM", F_FLOAT, offsetof(tp_record, accuracy_m)},
    {"meter_status", "meterStatus", F_ENUM, offsetof(tp_record, meter_status)},
};
#define FIELD_COUNT (sizeof fields / sizeof fields[0])
#define REQUIRED_MASK ((1u << 0) | (1u << 1)) /* vehicle_id, sampled_at_ms */

__attribute__((format(printf, 3, 4))) static tp_err fail(char *msg, size_t cap, const char *fmt, ...)
{
    if (msg && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return TP_ERR_PARSE;
}

/* A short description of a JSON value for error messages: the value itself for scalars (strings quoted and
 * truncated), the type for containers. */
static const char *describe(const json_t *v, char *buf, size_t cap)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    case JSON_INTEGER: snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return buf;
    case JSON_REAL: snprintf(buf, cap, "%.17g", json_real_value(v)); return buf;
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n > 40)
            snprintf(buf, cap, "\"%.40s...\"", s);
        else
            snprintf(buf, cap, "\"%s\"", s);
        /* Control characters would garble a terminal: replace them. */
        for (char *c = buf; *c; c++)
            if ((unsigned char)*c < 0x20)
                *c = '?';
        return buf;
    }
    }
    return "a value";
}

/* Strict decimal: optional '-' (when allow_neg), digits only, no spaces, no '+', no leading zeros beyond "0". */
static bool parse_dec_u64(const char *s, bool *neg, uint64_t *out)
{
    *neg = false;
    if (*s == '-') {
        *neg = true;
        s++;
    }
    if (!*s || (s[0] == '0' && s[1]))
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static tp_err get_u64(const field_def *f, const json_t *v, uint64_t *out, char *msg, size_t cap)
{
    char d[64];
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return fail(msg, cap, "field %s: %s is negative; it must be an integer from 0 to 18446744073709551615",
                        f->name, describe(v, d, sizeof d));
        *out = (uint64_t)i;
        return TP_OK;
    }
    if (json_is_string(v)) {
        bool neg;
        uint64_t u;
        if (!parse_dec_u64(json_string_value(v), &neg, &u))
            return fail(msg, cap,
                        "field %s: %s is not a decimal integer from 0 to 18446744073709551615; write digits only, "
                        "as a number or a string",
                        f->name, describe(v, d, sizeof d));
        if (neg && u != 0)
            return fail(msg, cap, "field %s: %s is negative; it must be an integer from 0 to 18446744073709551615",
                        f->name, describe(v, d, sizeof d));
        *out = u;
        return TP_OK;
    }
    return fail(msg, cap, "field %s: %s is not an integer; write a whole number such as 10001 (or a decimal string)",
                f->name, describe(v, d, sizeof d));
}

static tp_err get_i64(const field_def *f, const json_t *v, int64_t *out, char *msg, size_t cap)
{
    char d[64];
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return TP_OK;
    }
    if (json_is_string(v)) {
        bool neg;
        uint64_t u;
        if (!parse_dec_u64(json_string_value(v), &neg, &u) ||
            (!neg && u > (uint64_t)INT64_MAX) || (neg && u > (uint64_t)INT64_MAX + 1))
            return fail(msg, cap,
                        "field %s: %s is not a decimal integer from -9223372036854775808 to 9223372036854775807; "
                        "write an optional '-' and digits, as a number or a string",
                        f->name, describe(v, d, sizeof d));
        *out = neg ? (int64_t)((uint64_t)0 - u) : (int64_t)u;
        return TP_OK;
    }
    return fail(msg, cap,
                "field %s: %s is not an integer; write a whole number such as 1767225600000 (or a decimal string)",
                f->name, describe(v, d, sizeof d));
}

static tp_err get_double(const field_def *f, const json_t *v, double *out, char *msg, size_t cap)
{
    char d[64];
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return TP_OK;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "NaN")) {
            *out = NAN;
            return TP_OK;
        }
        if (!strcmp(s, "Infinity")) {
            *out = INFINITY;
            return TP_OK;
        }
        if (!strcmp(s, "-Infinity")) {
            *out = -INFINITY;
            return TP_OK;
        }
        /* A JSON-style number in a string: no spaces, hex, "inf" or "nan" spellings that strtod would take. */
        bool ok = *s != 0 && strspn(s, "0123456789+-.eE") == strlen(s);
        if (ok) {
            char *end;
            errno = 0;
            double x = strtod(s, &end);
            if (*end == 0 && end != s && errno != ERANGE) {
                *out = x;
                return TP_OK;
            }
        }
        return fail(msg, cap,
                    "field %s: %s is not a number; write a JSON number such as 42.5 (or \"NaN\", \"Infinity\", "
                    "\"-Infinity\")",
                    f->name, describe(v, d, sizeof d));
    }
    return fail(msg, cap, "field %s: %s is not a number; write a JSON number such as 42.5", f->name,
                describe(v, d, sizeof d));
}

/* FLT_MAX plus half an ulp: doubles below it round to a finite float. */
#define FLOAT_ROUND_LIMIT 3.4028235677973366e38

static tp_err get_float(const field_def *f, const json_t *v, float *out, char *msg, size_t cap)
{
    double x;
    tp_err e = get_double(f, v, &x, msg, cap);
    if (e)
        return e;
    if (isfinite(x) && fabs(x) >= FLOAT_ROUND_LIMIT) {
        char d[64];
        return fail(msg, cap, "field %s: %s is outside the range of a 32-bit float (about 3.4e38)", f->name,
                    describe(v, d, sizeof d));
    }
    *out = (float)x;
    return TP_OK;
}

static tp_err get_enum(const field_def *f, const json_t *v, int32_t *out, char *msg, size_t cap)
{
    char d[64];
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < INT32_MIN || i > INT32_MAX)
            return fail(msg, cap, "field %s: %s is outside the range of an enum (32-bit signed integer)", f->name,
                        describe(v, d, sizeof d));
        *out = (int32_t)i;
        return TP_OK;
    }
    if (json_is_string(v)) {
        if (tp_meter_status_parse(json_string_value(v), out) == TP_OK)
            return TP_OK;
        return fail(msg, cap,
                    "field %s: %s is not a meter status; use METER_STATUS_UNKNOWN, METER_STATUS_VACANT, "
                    "METER_STATUS_HIRED, METER_STATUS_PICKUP, METER_STATUS_OUT_OF_SERVICE or a number",
                    f->name, describe(v, d, sizeof d));
    }
    return fail(msg, cap, "field %s: %s is not a meter status; write a name such as \"METER_STATUS_HIRED\" or a number",
                f->name, describe(v, d, sizeof d));
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

/* The error for a key that names no field: the key (printable, shortened), a field it may abbreviate, the list. */
static tp_err unknown_key(const char *key, char *msg, size_t cap)
{
    char shown[48]; /* at most 40 characters, then "..." */
    size_t n = 0, klen = strlen(key);
    for (; n < klen && n < 40; n++)
        shown[n] = (key[n] >= 0x20 && key[n] < 0x7f && key[n] != '"') ? key[n] : '?';
    if (klen > 40) {
        memcpy(shown + n, "...", 3);
        n += 3;
    }
    shown[n] = 0;
    const char *hint = NULL;
    for (size_t i = 0; i < FIELD_COUNT && !hint && klen >= 2; i++)
        if (!strncmp(key, fields[i].name, klen) || !strncmp(key, fields[i].camel, klen))
            hint = fields[i].name;
    char dym[64] = "";
    if (hint)
        snprintf(dym, sizeof dym, " (did you mean %s?)", hint);
    return fail(msg, cap,
                "unknown field \"%s\"%s; a record has vehicle_id, sampled_at_ms, seq, latitude, longitude, "
                "speed_kmh, heading_deg, accuracy_m and meter_status (or their lowerCamelCase names); rename it, or "
                "ignore unknown fields (--ignore-unknown-fields) if a newer producer added it",
                shown, dym);
}

static tp_err parse_object(json_t *root, unsigned flags, tp_record *out, char *msg, size_t cap)
{
    if (!json_is_object(root))
        return fail(msg, cap, "a record must be a JSON object, got %s", type_name(root));
    memset(out, 0, sizeof *out);
    unsigned seen = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        size_t i;
        for (i = 0; i < FIELD_COUNT; i++)
            if (!strcmp(key, fields[i].name) || !strcmp(key, fields[i].camel))
                break;
        if (i == FIELD_COUNT) {
            /* As protobuf's JSON parser: an unknown key is an error (a misspelt field would otherwise read as
             * zero), unless the caller asked to skip them (a newer producer may add fields). */
            if (flags & TP_RECORD_JSON_IGNORE_UNKNOWN)
                continue;
            return unknown_key(key, msg, cap);
        }
        const field_def *f = &fields[i];
        if (seen & (1u << i))
            return fail(msg, cap, "field %s is given twice (as %s and %s); keep one", f->name, f->name, f->camel);
        seen |= 1u << i;
        if (json_is_null(v))
            continue;
        char *base = (char *)out + f->offset;
        tp_err e = TP_OK;
        switch (f->kind) {
        case F_U64: e = get_u64(f, v, (uint64_t *)(void *)base, msg, cap); break;
        case F_I64: e = get_i64(f, v, (int64_t *)(void *)base, msg, cap); break;
        case F_DOUBLE: e = get_double(f, v, (double *)(void *)base, msg, cap); break;
        case F_FLOAT: e = get_float(f, v, (float *)(void *)base, msg, cap); break;
        case F_ENUM: e = get_enum(f, v, (int32_t *)(void *)base, msg, cap); break;
        }
        if (e)
            return e;
    }
    for (size_t i = 0; i < FIELD_COUNT; i++)
        if ((REQUIRED_MASK & (1u << i)) && !(seen & (1u << i)))
            return fail(msg, cap, "field %s is missing; every record needs vehicle_id and sampled_at_ms",
                        fields[i].name);
    return TP_OK;
}

tp_err tp_record_json_parse_full(const char *text, size_t len, unsigned flags, tp_record *out, char *msg,
                                 size_t msg_cap)
{
    if (msg && msg_cap > 0)
        msg[0] = 0;
    if (!text || !out)
        return TP_ERR_INVALID_ARG;
    json_error_t jerr;
    /* Without JSON_ALLOW_NUL jansson rejects \u0000 in strings, so the strings below are plain C strings. */
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        if (jerr.position == 0 && len == 0)
            return fail(msg, msg_cap, "empty input is not a record; write one JSON object per line");
        return fail(msg, msg_cap, "not valid JSON at column %d: %s", jerr.column, jerr.text);
    }
    tp_err e = parse_object(root, flags, out, msg, msg_cap);
    json_decref(root);
    return e;
}

/* ---- fast path ----
 * Most input is what tp_record_json_write (or a similar producer) writes: a flat object of the known fields with
 * plain numbers and enum names. fast_parse handles exactly that without building a jansson tree, about ten times
 * faster; on anything else (unknown keys, escapes, strings for numbers, null, a missing required field, a value
 * out of range, malformed JSON) it gives up and the jansson path below decides, so errors and every unusual form
 * behave the same either way. Numbers are converted as jansson converts them: integer literals with strtoll (then
 * to double for float fields), others with strtod. */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Scans a JSON number at p; returns its end (NULL if not a valid number) and whether it is an integer literal. */
static const char *scan_number(const char *p, const char *end, bool *is_int)
{
    const char *q = p;
    *is_int = true;
    if (q < end && *q == '-')
        q++;
    if (q >= end)
        return NULL;
    if (*q == '0')
        q++;
    else if (*q >= '1' && *q <= '9')
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    else
        return NULL;
    if (q < end && *q == '.') {
        *is_int = false;
        q++;
        if (q >= end || *q < '0' || *q > '9')
            return NULL;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        *is_int = false;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || *q < '0' || *q > '9')
            return NULL;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    return q;
}

/* An integer literal [p, q) as int64, false on overflow (jansson rejects those literals too). */
static bool literal_i64(const char *p, const char *q, int64_t *out)
{
    bool neg = *p == '-';
    if (neg)
        p++;
    uint64_t v = 0;
    for (; p < q; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? (int64_t)((uint64_t)0 - v) : (int64_t)v;
    return true;
}

static bool literal_double(const char *p, const char *q, bool is_int, double *out)
{
    if (is_int) {
        int64_t i;
        if (!literal_i64(p, q, &i))
            return false;
        *out = (double)i;
        return true;
    }
    char tmp[64];
    size_t n = (size_t)(q - p);
    if (n >= sizeof tmp)
        return false;
    memcpy(tmp, p, n);
    tmp[n] = 0;
    errno = 0;
    double v = strtod(tmp, NULL);
    if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL))
        return false;
    *out = v;
    return true;
}

static bool fast_parse(const char *text, size_t len, tp_record *out)
{
    const char *p = text, *end = text + len;
    unsigned seen = 0;
    memset(out, 0, sizeof *out);
    p = skip_ws(p, end);
    if (p >= end || *p++ != '{')
        return false;
    p = skip_ws(p, end);
    if (p < end && *p == '}')
        return false; /* empty object: missing fields, let the full path explain */
    for (;;) {
        /* key: a plain string matched against the snake_case names */
        if (p >= end || *p++ != '"')
            return false;
        const char *k = p;
        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p >= end || *p != '"')
            return false;
        size_t klen = (size_t)(p - k);
        p++;
        size_t i;
        for (i = 0; i < FIELD_COUNT; i++)
            if (strlen(fields[i].name) == klen && !memcmp(fields[i].name, k, klen))
                break;
        if (i == FIELD_COUNT || (seen & (1u << i)))
            return false;
        seen |= 1u << i;
        p = skip_ws(p, end);
        if (p >= end || *p++ != ':')
            return false;
        p = skip_ws(p, end);
        if (p >= end)
            return false;
        const field_def *f = &fields[i];
        char *base = (char *)out + f->offset;
        if (f->kind == F_ENUM && *p == '"') {
            const char *v = ++p;
            while (p < end && *p != '"' && *p != '\\')
                p++;
            if (p >= end || *p != '"')
                return false;
            int32_t st = -1;
            for (int32_t m = 0; m < METER_NAME_COUNT; m++)
                if (strlen(meter_names[m]) == (size_t)(p - v) && !memcmp(meter_names[m], v, (size_t)(p - v)))
                    st = m;
            if (st < 0)
                return false;
            memcpy(base, &st, sizeof st);
            p++;
        } else {
            bool is_int;
            const char *q = scan_number(p, end, &is_int);
            if (!q)
                return false;
            int64_t iv;
            double dv;
            switch (f->kind) {
            case F_U64:
                if (!is_int || *p == '-' || !literal_i64(p, q, &iv))
                    return false;
                *(uint64_t *)(void *)base = (uint64_t)iv;
                break;
            case F_I64:
                if (!is_int || !literal_i64(p, q, &iv))
                    return false;
                *(int64_t *)(void *)base = iv;
                break;
            case F_DOUBLE:
                if (!literal_double(p, q, is_int, &dv))
                    return false;
                *(double *)(void *)base = dv;
                break;
            case F_FLOAT:
                if (!literal_double(p, q, is_int, &dv) || fabs(dv) >= FLOAT_ROUND_LIMIT)
                    return false;
                *(float *)(void *)base = (float)dv;
                break;
            case F_ENUM:
                if (!is_int || !literal_i64(p, q, &iv) || iv < INT32_MIN || iv > INT32_MAX)
                    return false;
                *(int32_t *)(void *)base = (int32_t)iv;
                break;
            }
            p = q;
        }
        p = skip_ws(p, end);
        if (p >= end)
            return false;
        if (*p == '}')
            break;
        if (*p++ != ',')
            return false;
        p = skip_ws(p, end);
    }
    p = skip_ws(p + 1, end);
    return p == end && (seen & REQUIRED_MASK) == REQUIRED_MASK;
}

tp_err tp_record_json_parse_flags(const char *text, size_t len, unsigned flags, tp_record *out, char *msg,
                                  size_t msg_cap)
{
    if (msg && msg_cap > 0)
        msg[0] = 0;
    if (!text || !out)
        return TP_ERR_INVALID_ARG;
    if (fast_parse(text, len, out)) /* known keys only: the same under every flag */
        return TP_OK;
    return tp_record_json_parse_full(text, len, flags, out, msg, msg_cap);
}

tp_err tp_record_json_parse(const char *text, size_t len, tp_record *out, char *msg, size_t msg_cap)
{
    return tp_record_json_parse_flags(text, len, 0, out, msg, msg_cap);
}

/* ---- line reader ---- */

#define READ_CHUNK (64u * 1024u)

struct tp_ndjson_reader {
    FILE *in;
    size_t max_line;
    char *buf;
    size_t cap;
    size_t start, end; /* unconsumed bytes are buf[start..end) */
    bool eof;
    bool io_error;
    unsigned flags;    /* TP_RECORD_JSON_* for every line */
    uint64_t line;
    uint64_t bytes;
};

tp_err tp_ndjson_reader_new(FILE *in, size_t max_line, tp_ndjson_reader **out)
{
    if (!in || !out)
        return TP_ERR_INVALID_ARG;
    if (max_line == 0)
        max_line = TP_NDJSON_DEFAULT_MAX_LINE;
    tp_ndjson_reader *r = calloc(1, sizeof *r);
    if (!r)
        return TP_ERR_NOMEM;
    r->in = in;
    r->max_line = max_line;
    r->cap = max_line + 1 + READ_CHUNK;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        free(r);
        return TP_ERR_NOMEM;
    }
    *out = r;
    return TP_OK;
}

void tp_ndjson_reader_free(tp_ndjson_reader *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

void tp_ndjson_reader_set_flags(tp_ndjson_reader *r, unsigned flags)
{
    if (r)
        r->flags = flags;
}

uint64_t tp_ndjson_reader_line(const tp_ndjson_reader *r) { return r->line; }
uint64_t tp_ndjson_reader_bytes(const tp_ndjson_reader *r) { return r->bytes; }

/* Reads more input after the unconsumed bytes (compacting first); false at EOF or on error. */
static bool fill(tp_ndjson_reader *r)
{
    if (r->eof)
        return false;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    size_t room = r->cap - r->end;
    if (room == 0)
        return false;
    size_t n = fread(r->buf + r->end, 1, room, r->in);
    r->end += n;
    if (n == 0) {
        if (ferror(r->in))
            r->io_error = true;
        r->eof = true;
        return false;
    }
    return true;
}

/* The next line as [*line, *line + *len) (newline excluded). Returns TP_OK, TP_ERR_END, TP_ERR_IO, or
 * TP_ERR_FULL for an over-long line (skipped entirely). */
static tp_err next_line(tp_ndjson_reader *r, const char **line, size_t *len)
{
    size_t scanned = 0; /* bytes of buf[start..) known to hold no newline */
    for (;;) {
        char *nl = memchr(r->buf + r->start + scanned, '\n', r->end - r->start - scanned);
        if (nl) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - *line);
            r->bytes += *len + 1;
            r->start += *len + 1;
            r->line++;
            return *len > r->max_line ? TP_ERR_FULL : TP_OK;
        }
        scanned = r->end - r->start;
        if (scanned > r->max_line) {
            /* Too long: drop everything up to the next newline without storing it. */
            r->line++;
            r->bytes += scanned;
            r->start = r->end = 0;
            for (;;) {
                if (!fill(r))
                    return r->io_error ? TP_ERR_IO : TP_ERR_FULL;
                nl = memchr(r->buf, '\n', r->end);
                if (nl) {
                    size_t skip = (size_t)(nl - r->buf) + 1;
                    r->bytes += skip;
                    r->start = skip;
                    return TP_ERR_FULL;
                }
                r->bytes += r->end;
                r->start = r->end = 0;
            }
        }
        if (!fill(r)) {
            if (r->io_error)
                return TP_ERR_IO;
            if (r->end > r->start) { /* a last line without a newline */
                *line = r->buf + r->start;
                *len = r->end - r->start;
                r->bytes += *len;
                r->start = r->end;
                r->line++;
                return TP_OK;
            }
            return TP_ERR_END;
        }
    }
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

tp_err tp_ndjson_reader_next_line(tp_ndjson_reader *r, const char **line, size_t *len, char *msg, size_t msg_cap)
{
    if (msg && msg_cap > 0)
        msg[0] = 0;
    if (!r || !line || !len)
        return TP_ERR_INVALID_ARG;
    for (;;) {
        tp_err e = next_line(r, line, len);
        if (e == TP_ERR_END)
            return e;
        if (e == TP_ERR_IO) {
            fail(msg, msg_cap, "reading line %" PRIu64 " failed: %s", r->line + 1, strerror(errno));
            return TP_ERR_IO;
        }
        if (e == TP_ERR_FULL)
            return fail(msg, msg_cap, "line %" PRIu64 " is longer than %zu bytes", r->line, r->max_line);
        if (blank(*line, *len))
            continue;
        if (*len > 0 && (*line)[*len - 1] == '\r')
            (*len)--;
        return TP_OK;
    }
}

tp_err tp_ndjson_reader_next(tp_ndjson_reader *r, tp_record *out, char *msg, size_t msg_cap)
{
    if (msg && msg_cap > 0)
        msg[0] = 0;
    if (!r || !out)
        return TP_ERR_INVALID_ARG;
    for (;;) {
        const char *line;
        size_t len;
        tp_err e = next_line(r, &line, &len);
        if (e == TP_ERR_END)
            return e;
        if (e == TP_ERR_IO) {
            fail(msg, msg_cap, "reading line %" PRIu64 " failed: %s", r->line + 1, strerror(errno));
            return TP_ERR_IO;
        }
        if (e == TP_ERR_FULL)
            return fail(msg, msg_cap,
                        "line %" PRIu64 " is longer than %zu bytes; a record is a few hundred bytes, so this input "
                        "is probably not NDJSON records",
                        r->line, r->max_line);
        if (blank(line, len))
            continue;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        char why[256];
        e = tp_record_json_parse_flags(line, len, r->flags, out, why, sizeof why);
        if (e)
            return fail(msg, msg_cap, "line %" PRIu64 ": %s", r->line, why);
        return TP_OK;
    }
}
