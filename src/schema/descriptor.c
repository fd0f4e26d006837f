/* A bounded parser of serialized google.protobuf.FileDescriptorSet messages, hand-written on tp_varint_decode:
 * every length is checked against the bytes that remain, nesting, counts and names are capped (schema.h), and
 * only what the flattener needs is kept (names, numbers, labels, types, type names, packed, oneof index,
 * proto3_optional, map_entry, syntax, extensions). Everything else (options, source info, services) is skipped. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_internal.h"
#include "telepack/varint.h"

/* ---- arena ---- */

struct tp_arena_chunk {
    tp_arena_chunk *next;
    size_t cap;
    _Alignas(8) unsigned char data[];
};

void *tp_arena_alloc(tp_arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (!a->head || a->cap - a->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        tp_arena_chunk *c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->next = a->head;
        c->cap = cap;
        a->head = c;
        a->used = 0;
        a->cap = cap;
    }
    void *p = a->head->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

char *tp_arena_strndup(tp_arena *a, const char *s, size_t n)
{
    char *p = tp_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

void tp_arena_free(tp_arena *a)
{
    tp_arena_chunk *c = a->head;
    while (c) {
        tp_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = a->cap = 0;
}

void tp_schema_errf(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* ---- wire reader ---- */

typedef struct pctx {
    const uint8_t *base;
    pd_set *set;
    char *err;
    size_t err_cap;
    tp_err rc;
} pctx;

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static int fail(pctx *c, tp_err rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(pctx *c, tp_err rc, const char *fmt, ...)
{
    if (c->rc == TP_OK) {
        c->rc = rc;
        if (c->err && c->err_cap) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err, c->err_cap, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

/* "the descriptor set is malformed at byte N: ..." (TP_ERR_PARSE). */
static int malformed(pctx *c, const uint8_t *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int malformed(pctx *c, const uint8_t *at, const char *fmt, ...)
{
    if (c->rc == TP_OK) {
        c->rc = TP_ERR_PARSE;
        if (c->err && c->err_cap) {
            int n = snprintf(c->err, c->err_cap, "the descriptor set is malformed at byte %zu: ",
                             (size_t)(at - c->base));
            if (n > 0 && (size_t)n < c->err_cap) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(c->err + n, c->err_cap - (size_t)n, fmt, ap);
                va_end(ap);
            }
        }
    }
    return -1;
}

/* Reads the next field of r: 1 with *num, and *val (wire types 0, 1, 5) or *sub (wire type 2); 0 at the end of r;
 * -1 on malformed input (error set). *wt gets the wire type. */
static int rd_next(pctx *c, rd *r, uint32_t *num, int *wt, uint64_t *val, rd *sub)
{
    if (r->p == r->end)
        return 0;
    const uint8_t *at = r->p;
    uint64_t tag;
    size_t used;
    if (tp_varint_decode(r->p, (size_t)(r->end - r->p), &tag, &used) != TP_OK)
        return malformed(c, at, "a field tag is cut short or longer than 10 bytes");
    r->p += used;
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return malformed(c, at, "field number %llu is outside 1..536870911", (unsigned long long)(tag >> 3));
    *num = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    size_t left = (size_t)(r->end - r->p);
    switch (*wt) {
    case 0:
        if (tp_varint_decode(r->p, left, val, &used) != TP_OK)
            return malformed(c, r->p, "the varint of field %u is cut short or too long", *num);
        r->p += used;
        return 1;
    case 1:
    case 5: {
        size_t w = *wt == 1 ? 8 : 4;
        if (left < w)
            return malformed(c, r->p, "field %u needs %zu bytes, %zu left", *num, w, left);
        uint64_t v = 0;
        for (size_t i = 0; i < w; i++)
            v |= (uint64_t)r->p[i] << (8 * i);
        *val = v;
        r->p += w;
        return 1;
    }
    case 2: {
        uint64_t n;
        if (tp_varint_decode(r->p, left, &n, &used) != TP_OK)
            return malformed(c, r->p, "the length of field %u is cut short or too long", *num);
        r->p += used;
        left -= used;
        if (n > left)
            return malformed(c, r->p, "field %u claims %llu bytes, %zu left", *num, (unsigned long long)n, left);
        sub->p = r->p;
        sub->end = r->p + n;
        r->p += n;
        return 1;
    }
    default:
        return malformed(c, at, "field %u has wire type %d (groups and types 6, 7 do not occur in descriptors)",
                         *num, *wt);
    }
}

/* Field (num) must have wire type want; else malformed. */
static int want_wt(pctx *c, const rd *r, uint32_t num, int wt, int want, const char *what)
{
    if (wt != want)
        return malformed(c, r->p, "%s (field %u) has wire type %d, not %d", what, num, wt, want);
    return 0;
}

/* Copies a name (no NUL inside, at most TP_SCHEMA_MAX_NAME bytes) into the arena. */
static int take_name(pctx *c, const rd *s, const char *what, const char **out)
{
    size_t n = (size_t)(s->end - s->p);
    if (n > TP_SCHEMA_MAX_NAME)
        return malformed(c, s->p, "a %s of %zu bytes is longer than the limit of %d", what, n, TP_SCHEMA_MAX_NAME);
    if (memchr(s->p, 0, n))
        return malformed(c, s->p, "a %s contains a NUL byte", what);
    char *p = tp_arena_strndup(c->set->arena, (const char *)s->p, n);
    if (!p)
        return fail(c, TP_ERR_NOMEM, "out of memory while reading the descriptor set");
    *out = p;
    return 0;
}

/* prefix + "." + name (or name alone when prefix is empty), capped. */
static int join_name(pctx *c, const rd *at, const char *prefix, const char *name, const char **out)
{
    size_t a = strlen(prefix), b = strlen(name), n = a ? a + 1 + b : b;
    if (n > TP_SCHEMA_MAX_NAME)
        return malformed(c, at->p, "the full name %s.%s is longer than the limit of %d bytes", prefix, name,
                         TP_SCHEMA_MAX_NAME);
    char *p = tp_arena_alloc(c->set->arena, n + 1);
    if (!p)
        return fail(c, TP_ERR_NOMEM, "out of memory while reading the descriptor set");
    if (a) {
        memcpy(p, prefix, a);
        p[a] = '.';
        memcpy(p + a + 1, name, b);
    } else {
        memcpy(p, name, b);
    }
    p[n] = 0;
    *out = p;
    return 0;
}

static int count_field(pctx *c, const rd *at, size_t add)
{
    if (c->set->nfields + add > TP_SCHEMA_MAX_FIELDS || add > TP_SCHEMA_MAX_FIELDS)
        return malformed(c, at->p, "more than %d fields and enum values in the set", TP_SCHEMA_MAX_FIELDS);
    c->set->nfields += add;
    return 0;
}

static int push(pctx *c, void ***arr, size_t *n, size_t *cap, void *item)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        void **p = realloc(*arr, ncap * sizeof *p);
        if (!p)
            return fail(c, TP_ERR_NOMEM, "out of memory while reading the descriptor set");
        *arr = p;
        *cap = ncap;
    }
    (*arr)[(*n)++] = item;
    return 0;
}

static int count_types(pctx *c, const rd *at)
{
    if (c->set->nmsgs + c->set->nenums >= TP_SCHEMA_MAX_TYPES)
        return malformed(c, at->p, "more than %d message and enum types in the set", TP_SCHEMA_MAX_TYPES);
    return 0;
}

/* ---- descriptor messages ---- */

static int parse_field(pctx *c, rd r, pd_field *f)
{
    uint32_t num;
    int wt;
    uint64_t v;
    rd s;
    int k;
    f->oneof_index = -1;
    while ((k = rd_next(c, &r, &num, &wt, &v, &s)) > 0) {
        switch (num) {
        case 1: /* name */
        case 2: /* extendee */
        case 6: /* type_name */
        case 10: /* json_name */
            if (want_wt(c, &r, num, wt, 2, "a field's name or type name") ||
                take_name(c, &s, "field or type name",
                          num == 1 ? &f->name : num == 2 ? &f->extendee : num == 6 ? &f->type_name : &f->json_name))
                return -1;
            break;
        case 3: /* number */
            if (want_wt(c, &r, num, wt, 0, "a field number"))
                return -1;
            f->number = (uint32_t)v; /* validated by the flattener: 1..2^29-1 */
            if (v > 0x1fffffff)
                f->number = 0;
            break;
        case 4: /* label */
        case 5: /* type */
            if (want_wt(c, &r, num, wt, 0, "a field label or type"))
                return -1;
            if (num == 4)
                f->label = v <= 3 ? (int)v : 0;
            else
                f->type = v <= 18 ? (int)v : 0;
            break;
        case 7: /* default_value */
            if (want_wt(c, &r, num, wt, 2, "a default value"))
                return -1;
            f->has_default = true;
            break;
        case 8: { /* FieldOptions: packed = 2 */
            if (want_wt(c, &r, num, wt, 2, "field options"))
                return -1;
            uint32_t on;
            int owt;
            uint64_t ov;
            rd os;
            while ((k = rd_next(c, &s, &on, &owt, &ov, &os)) > 0)
                if (on == 2 && owt == 0) {
                    f->has_packed = true;
                    f->packed = ov != 0;
                }
            if (k < 0)
                return -1;
            break;
        }
        case 9: /* oneof_index */
            if (want_wt(c, &r, num, wt, 0, "a oneof index"))
                return -1;
            f->oneof_index = v > 0x7fffffff ? 0x7fffffff : (int32_t)v;
            break;
        case 17: /* proto3_optional */
            if (want_wt(c, &r, num, wt, 0, "proto3_optional"))
                return -1;
            f->proto3_optional = v != 0;
            break;
        default:
            break;
        }
    }
    return k;
}

static int add_ext(pctx *c, rd s)
{
    pd_field *f = tp_arena_alloc(c->set->arena, sizeof *f);
    if (!f)
        return fail(c, TP_ERR_NOMEM, "out of memory while reading the descriptor set");
    if (count_field(c, &s, 1) || parse_field(c, s, f))
        return -1;
    return push(c, (void ***)&c->set->exts, &c->set->nexts, &c->set->exts_cap, f);
}

static int parse_enum(pctx *c, rd r, const char *prefix)
{
    uint32_t num;
    int wt;
    uint64_t v;
    rd s;
    int k;
    rd r0 = r;
    const char *name = NULL;
    size_t nvalues = 0;
    if (count_types(c, &r))
        return -1;
    while ((k = rd_next(c, &r, &num, &wt, &v, &s)) > 0) {
        if (num == 1 && (want_wt(c, &r, num, wt, 2, "an enum name") || take_name(c, &s, "enum name", &name)))
            return -1;
        if (num == 2) {
            if (want_wt(c, &r, num, wt, 2, "an enum value"))
                return -1;
            nvalues++;
        }
    }
    if (k < 0)
        return -1;
    if (!name || !*name)
        return malformed(c, r0.p, "an enum has no name");
    if (count_field(c, &r0, nvalues))
        return -1;
    tp_schema_enum *e = tp_arena_alloc(c->set->arena, sizeof *e);
    const char **names = tp_arena_alloc(c->set->arena, (nvalues ? nvalues : 1) * sizeof *names);
    int32_t *numbers = tp_arena_alloc(c->set->arena, (nvalues ? nvalues : 1) * sizeof *numbers);
    if (!e || !names || !numbers)
        return fail(c, TP_ERR_NOMEM, "out of memory while reading the descriptor set");
    if (join_name(c, &r0, prefix, name, &e->full_name))
        return -1;
    e->names = names;
    e->numbers = numbers;
    r = r0;
    while ((k = rd_next(c, &r, &num, &wt, &v, &s)) > 0) {
        if (num != 2)
            continue;
        uint32_t vn;
        int vwt;
        uint64_t vv;
        rd vs;
        const char *vname = NULL;
        int32_t vnum = 0;
        while ((k = rd_next(c, &s, &vn, &vwt, &vv, &vs)) > 0) {
            if (vn == 1 && (want_wt(c, &s, vn, vwt, 2, "an enum value name") ||
                            take_name(c, &vs, "enum value name", &vname)))
                return -1;
            if (vn == 2) {
                if (want_wt(c, &s, vn, vwt, 0, "an enum value number"))
                    return -1;
                vnum = (int32_t)(uint32_t)vv;
            }
        }
        if (k < 0)
            return -1;
        if (!vname || !*vname)
            return malformed(c, s.p, "a value of enum %s has no name", e->full_name);
        names[e->count] = vname;
        numbers[e->count] = vnum;
        e->count++;
    }
    if (k < 0)
        return -1;
    return push(c, (void ***)&c->set->enums, &c->set->nenums, &c->set->enums_cap, e);
}

static int parse_message(pctx *c, rd r, const char *prefix, const char *file, bool proto3, int depth)
{
    uint32_t num;
    int wt;
    uint64_t v;
    rd s;
    int k;
    rd r0 = r;
    const char *name = NULL;
    size_t nfields = 0;
    bool map_entry = false;
    if (depth > TP_SCHEMA_MAX_NESTING)
        return malformed(c, r.p, "message types are nested more than %d deep", TP_SCHEMA_MAX_NESTING);
    if (count_types(c, &r))
        return -1;
    /* Pass 1: name, options, the number of fields. */
    while ((k = rd_next(c, &r, &num, &wt, &v, &s)) > 0) {
        if (num == 1 && (want_wt(c, &r, num, wt, 2, "a message name") || take_name(c, &s, "message name", &name)))
            return -1;
        if (num == 2) {
            if (want_wt(c, &r, num, wt, 2, "a field"))
                return -1;
            nfields++;
        }
        if (num == 7) { /* MessageOptions: map_entry = 7 */
            if (want_wt(c, &r, num, wt, 2, "message options"))
                return -1;
            uint32_t on;
            int owt;
            uint64_t ov;
            rd os;
            while ((k = rd_next(c, &s, &on, &owt, &ov, &os)) > 0)
                if (on == 7 && owt == 0)
                    map_entry = ov != 0;
            if (k < 0)
                return -1;
        }
    }
    if (k < 0)
        return -1;
    if (!name || !*name)
        return malformed(c, r0.p, "a message type has no name");
    if (count_field(c, &r0, nfields))
        return -1;
    pd_message *m = tp_arena_alloc(c->set->arena, sizeof *m);
    pd_field *fields = tp_arena_alloc(c->set->arena, (nfields ? nfields : 1) * sizeof *fields);
    if (!m || !fields)
        return fail(c, TP_ERR_NOMEM, "out of memory while reading the descriptor set");
    if (join_name(c, &r0, prefix, name, &m->full_name))
        return -1;
    m->file = file;
    m->proto3 = proto3;
    m->map_entry = map_entry;
    m->fields = fields;
    if (push(c, (void ***)&c->set->msgs, &c->set->nmsgs, &c->set->msgs_cap, m))
        return -1;
    /* Pass 2: fields, nested types, enums, extensions. */
    r = r0;
    while ((k = rd_next(c, &r, &num, &wt, &v, &s)) > 0) {
        if (num == 2 && parse_field(c, s, &fields[m->nfields++]))
            return -1;
        if (num == 3 && (want_wt(c, &r, num, wt, 2, "a nested type") ||
                         parse_message(c, s, m->full_name, file, proto3, depth + 1)))
            return -1;
        if (num == 4 && (want_wt(c, &r, num, wt, 2, "a nested enum") || parse_enum(c, s, m->full_name)))
            return -1;
        if (num == 6 && (want_wt(c, &r, num, wt, 2, "an extension") || add_ext(c, s)))
            return -1;
    }
    return k;
}

static int parse_file(pctx *c, rd r)
{
    uint32_t num;
    int wt;
    uint64_t v;
    rd s;
    int k;
    rd r0 = r;
    const char *name = "(unnamed file)", *package = "", *syntax = "proto2";
    while ((k = rd_next(c, &r, &num, &wt, &v, &s)) > 0) {
        if (num == 1 && (want_wt(c, &r, num, wt, 2, "a file name") || take_name(c, &s, "file name", &name)))
            return -1;
        if (num == 2 && (want_wt(c, &r, num, wt, 2, "a package") || take_name(c, &s, "package", &package)))
            return -1;
        if (num == 12 && (want_wt(c, &r, num, wt, 2, "the syntax") || take_name(c, &s, "syntax", &syntax)))
            return -1;
        if (num == 14) /* edition (protobuf editions) */
            syntax = "editions";
    }
    if (k < 0)
        return -1;
    bool proto3;
    if (!strcmp(syntax, "proto3"))
        proto3 = true;
    else if (!strcmp(syntax, "proto2") || !*syntax)
        proto3 = false;
    else
        return fail(c, TP_ERR_INVALID_ARG,
                    "file %s has syntax \"%s\": only proto2 and proto3 files are supported", name, syntax);
    r = r0;
    while ((k = rd_next(c, &r, &num, &wt, &v, &s)) > 0) {
        if (num == 4 && (want_wt(c, &r, num, wt, 2, "a message type") ||
                         parse_message(c, s, package, name, proto3, 1)))
            return -1;
        if (num == 5 && (want_wt(c, &r, num, wt, 2, "an enum type") || parse_enum(c, s, package)))
            return -1;
        if (num == 7 && (want_wt(c, &r, num, wt, 2, "an extension") || add_ext(c, s)))
            return -1;
    }
    return k;
}

tp_err tp_pd_parse(const uint8_t *src, size_t len, pd_set *set, char *err, size_t err_cap)
{
    pctx c = {.base = src, .set = set, .err = err, .err_cap = err_cap, .rc = TP_OK};
    if (len > TP_SCHEMA_MAX_INPUT) {
        fail(&c, TP_ERR_PARSE, "the descriptor set is %zu bytes, above the limit of %u", len,
             (unsigned)TP_SCHEMA_MAX_INPUT);
        return c.rc;
    }
    rd r = {src, src + len};
    uint32_t num;
    int wt;
    uint64_t v;
    rd s;
    int k;
    while ((k = rd_next(&c, &r, &num, &wt, &v, &s)) > 0) {
        if (num != 1)
            continue; /* FileDescriptorSet has only field 1; skip anything else like protobuf does */
        if (wt != 2) {
            malformed(&c, r.p, "field 1 (a file) has wire type %d, not 2", wt);
            break;
        }
        if (++set->nfiles > TP_SCHEMA_MAX_FILES) {
            malformed(&c, s.p, "more than %d files in the set", TP_SCHEMA_MAX_FILES);
            break;
        }
        if (parse_file(&c, s))
            break;
    }
    if (c.rc == TP_OK && set->nfiles == 0)
        fail(&c, TP_ERR_PARSE, "the descriptor set holds no file: write it with protoc --include_imports "
                               "--descriptor_set_out=FILE");
    return c.rc;
}

void tp_pd_set_free(pd_set *set)
{
    free(set->msgs);
    free(set->enums);
    free(set->exts);
    set->msgs = NULL;
    set->enums = NULL;
    set->exts = NULL;
}
