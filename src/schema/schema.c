/* A message type from a descriptor set, flattened into columns: type-name resolution, what is refused (maps,
 * oneofs, groups, repeated messages, recursion, extensions of the message), the message tree the decoder walks,
 * roles, and the fingerprint of the normalized form. docs/SCHEMA.md is the specification. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_internal.h"

#define TIMESTAMP_NAME "google.protobuf.Timestamp"

typedef struct fctx {
    tp_schema *s;
    pd_set *set;
    char *err;
    size_t err_cap;
    tp_err rc;
    size_t cols_cap;
    const pd_message *stack[TP_SCHEMA_MAX_DEPTH + 1];
    const char *names[TP_SCHEMA_MAX_DEPTH], *json[TP_SCHEMA_MAX_DEPTH];
    uint32_t numbers[TP_SCHEMA_MAX_DEPTH];
    size_t nvisited, visited_cap;
    const pd_message **visited; /* every message type in the tree, for the extension check */
} fctx;

static int refuse(fctx *c, tp_err rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(fctx *c, tp_err rc, const char *fmt, ...)
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

static int by_msg_name(const void *a, const void *b)
{
    return strcmp((*(const pd_message *const *)a)->full_name, (*(const pd_message *const *)b)->full_name);
}

static int by_enum_name(const void *a, const void *b)
{
    return strcmp((*(const tp_schema_enum *const *)a)->full_name, (*(const tp_schema_enum *const *)b)->full_name);
}

static const pd_message *find_msg(const pd_set *set, const char *name)
{
    size_t lo = 0, hi = set->nmsgs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(name, set->msgs[mid]->full_name);
        if (!d)
            return set->msgs[mid];
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static const tp_schema_enum *find_enum(const pd_set *set, const char *name)
{
    size_t lo = 0, hi = set->nenums;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(name, set->enums[mid]->full_name);
        if (!d)
            return set->enums[mid];
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* The dotted path of the field being looked at (for messages), into buf. */
static const char *path_of(const fctx *c, size_t depth, const char *leaf, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < depth && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s.", c->names[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "%s", leaf);
    return buf;
}

static bool is_identifier(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* protobuf's default JSON name: underscores dropped, the letter after each one upper-cased. */
static const char *camel(tp_arena *a, const char *name)
{
    size_t n = strlen(name);
    char *p = tp_arena_alloc(a, n + 1), *q = p;
    if (!p)
        return NULL;
    bool up = false;
    for (const char *s = name; *s; s++) {
        if (*s == '_') {
            up = true;
            continue;
        }
        *q++ = up && *s >= 'a' && *s <= 'z' ? (char)(*s - 'a' + 'A') : *s;
        up = false;
    }
    *q = 0;
    return p;
}

static char *join(tp_arena *a, const char *const *parts, size_t n, char sep)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(parts[i]) + 1;
    char *p = tp_arena_alloc(a, len + 1), *q = p;
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (i)
            *q++ = sep;
        size_t k = strlen(parts[i]);
        memcpy(q, parts[i], k);
        q += k;
    }
    *q = 0;
    return p;
}

static tp_col_kind kind_of(int type)
{
    switch (type) {
    case TP_PB_DOUBLE: return TP_COL_F64;
    case TP_PB_FLOAT: return TP_COL_F32;
    case TP_PB_UINT64: case TP_PB_UINT32: case TP_PB_FIXED64: case TP_PB_FIXED32: return TP_COL_U64;
    case TP_PB_BOOL: return TP_COL_BOOL;
    case TP_PB_STRING: return TP_COL_STRING;
    case TP_PB_BYTES: return TP_COL_BYTES;
    case TP_PB_TIMESTAMP: return TP_COL_TIMESTAMP_NS;
    default: return TP_COL_I64;
    }
}

/* A google.protobuf.Timestamp must look like the real one: int64 seconds = 1, int32 nanos = 2. */
static bool timestamp_shape(const pd_message *m)
{
    if (m->nfields != 2)
        return false;
    for (size_t i = 0; i < 2; i++) {
        const pd_field *f = &m->fields[i];
        if (f->label == 3 || !f->name)
            return false;
        if (!(f->number == 1 && f->type == TP_PB_INT64 && !strcmp(f->name, "seconds")) &&
            !(f->number == 2 && f->type == TP_PB_INT32 && !strcmp(f->name, "nanos")))
            return false;
    }
    return true;
}

static int by_number(const void *a, const void *b)
{
    uint32_t x = ((const tp_schema_member *)a)->number, y = ((const tp_schema_member *)b)->number;
    return x < y ? -1 : x > y;
}

static int add_column(fctx *c, size_t depth, const pd_field *f, int type, tp_col_label label, bool packed,
                      const tp_schema_enum *en)
{
    tp_schema *s = c->s;
    char pb[1024];
    if (s->ncolumns >= TP_SCHEMA_MAX_COLUMNS)
        return refuse(c, TP_ERR_INVALID_ARG, "message %s has more than %d leaf columns (at field %s)",
                      s->message, TP_SCHEMA_MAX_COLUMNS, path_of(c, depth, f->name, pb, sizeof pb));
    if (s->ncolumns == c->cols_cap) {
        size_t cap = c->cols_cap ? c->cols_cap * 2 : 32;
        tp_schema_column *p = realloc(s->columns, cap * sizeof *p);
        if (!p)
            return refuse(c, TP_ERR_NOMEM, "out of memory while flattening %s", s->message);
        s->columns = p;
        c->cols_cap = cap;
    }
    tp_schema_column *col = &s->columns[s->ncolumns];
    memset(col, 0, sizeof *col);
    col->depth = depth + 1;
    memcpy(col->numbers, c->numbers, (depth + 1) * sizeof col->numbers[0]);
    col->name = join(&s->arena, c->names, depth + 1, '_');
    col->path = join(&s->arena, c->names, depth + 1, '.');
    col->json_path = join(&s->arena, c->json, depth + 1, '.');
    if (!col->name || !col->path || !col->json_path)
        return refuse(c, TP_ERR_NOMEM, "out of memory while flattening %s", s->message);
    if (strlen(col->name) > TP_SCHEMA_MAX_NAME)
        return refuse(c, TP_ERR_INVALID_ARG, "the column name of field %s is longer than %d bytes", col->path,
                      TP_SCHEMA_MAX_NAME);
    for (size_t i = 0; i < s->ncolumns; i++)
        if (!strcmp(s->columns[i].name, col->name))
            return refuse(c, TP_ERR_INVALID_ARG,
                          "fields %s and %s both flatten to the column name %s: rename one of them",
                          s->columns[i].path, col->path, col->name);
    col->type = (tp_pb_type)type;
    col->kind = kind_of(type);
    col->label = label;
    col->packed = packed;
    col->enum_type = en;
    return (int)s->ncolumns++;
}

static int by_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* NDJSON writes an enum value by name and reads the name back: the names must be identifiers and distinct (protoc
 * ensures both; a hand-made set need not). Each enum is checked once, at its first column. */
static int check_enum_names(fctx *c, const tp_schema_enum *en)
{
    for (size_t i = 0; i < c->s->ncolumns; i++)
        if (c->s->columns[i].enum_type == en)
            return 0;
    for (size_t i = 0; i < en->count; i++)
        if (!en->names[i] || !is_identifier(en->names[i]))
            return refuse(c, TP_ERR_INVALID_ARG, "enum %s has a value (number %d) whose name is not an identifier",
                          en->full_name, (int)en->numbers[i]);
    const char **sorted = malloc(en->count * sizeof *sorted);
    if (!sorted)
        return refuse(c, TP_ERR_NOMEM, "out of memory while flattening %s", c->s->message);
    memcpy(sorted, en->names, en->count * sizeof *sorted);
    qsort(sorted, en->count, sizeof *sorted, by_name);
    for (size_t i = 1; i < en->count; i++)
        if (!strcmp(sorted[i], sorted[i - 1])) {
            int rc = refuse(c, TP_ERR_INVALID_ARG, "enum %s has two values named %s", en->full_name, sorted[i]);
            free(sorted);
            return rc;
        }
    free(sorted);
    return 0;
}

static int flatten(fctx *c, const pd_message *m, size_t depth, tp_schema_node *node);

static int flatten_field(fctx *c, const pd_message *m, const pd_field *f, size_t depth, tp_schema_member *mem)
{
    char pb[1024];
    const char *where = path_of(c, depth, f->name ? f->name : "?", pb, sizeof pb);
    if (!f->name || !is_identifier(f->name))
        return refuse(c, TP_ERR_INVALID_ARG, "message %s has a field named \"%s\": field names must be identifiers",
                      m->full_name, f->name ? f->name : "");
    if (f->number < 1 || f->number > 0x1fffffff || (f->number >= 19000 && f->number <= 19999))
        return refuse(c, TP_ERR_INVALID_ARG, "field %s has number %u, outside protobuf's valid numbers", where,
                      f->number);
    if (f->label < 1 || f->label > 3 || f->type < 1)
        return refuse(c, TP_ERR_INVALID_ARG, "field %s has an unknown label or type", where);
    if (f->extendee)
        return refuse(c, TP_ERR_INVALID_ARG, "field %s is an extension inside a message's fields", where);
    if (f->type == TP_PB_GROUP)
        return refuse(c, TP_ERR_INVALID_ARG, "field %s is a group: groups are not supported (use a message field)",
                      where);
    if (f->oneof_index >= 0 && !f->proto3_optional)
        return refuse(c, TP_ERR_INVALID_ARG,
                      "field %s is part of a oneof: oneofs are not supported yet (make the members plain "
                      "optional fields)", where);
    if (f->json_name) { /* NDJSON keys: written unescaped, read back by name */
        bool ok = f->json_name[0] && tp_dyn_utf8_valid((const uint8_t *)f->json_name, strlen(f->json_name));
        for (const char *q = f->json_name; ok && *q; q++)
            ok = (unsigned char)*q >= 0x20 && *q != '"' && *q != '\\' && *q != 0x7f;
        if (!ok)
            return refuse(c, TP_ERR_INVALID_ARG, "field %s has a json_name that is empty, not UTF-8 or holds a "
                          "quote, backslash or control character", where);
    }
    c->names[depth] = f->name;
    c->json[depth] = f->json_name ? f->json_name : camel(&c->s->arena, f->name);
    c->numbers[depth] = f->number;
    if (!c->json[depth])
        return refuse(c, TP_ERR_NOMEM, "out of memory while flattening %s", c->s->message);
    mem->number = f->number;
    mem->name = f->name;
    mem->json_name = c->json[depth];
    mem->column = -1;
    bool repeated = f->label == 3;
    tp_col_label label = repeated          ? TP_LABEL_REPEATED
                         : f->label == 2   ? TP_LABEL_REQUIRED
                         : !m->proto3      ? TP_LABEL_OPTIONAL
                         : f->proto3_optional ? TP_LABEL_OPTIONAL
                                              : TP_LABEL_IMPLICIT;
    if (f->type == TP_PB_MESSAGE || f->type == TP_PB_ENUM) {
        if (!f->type_name || f->type_name[0] != '.')
            return refuse(c, TP_ERR_INVALID_ARG,
                          "field %s has type name \"%s\", not a full name starting with '.': write the set with "
                          "protoc --descriptor_set_out", where, f->type_name ? f->type_name : "");
    }
    if (f->type == TP_PB_ENUM) {
        const tp_schema_enum *en = find_enum(c->set, f->type_name + 1);
        if (!en)
            return refuse(c, TP_ERR_INVALID_ARG,
                          "field %s has enum type %s, which the descriptor set does not define (was it written "
                          "with --include_imports?)", where, f->type_name + 1);
        if (en->count == 0)
            return refuse(c, TP_ERR_INVALID_ARG, "field %s has enum type %s, which has no values", where,
                          en->full_name);
        if (check_enum_names(c, en))
            return -1;
        int col = add_column(c, depth, f, f->type, label, repeated && m->proto3 ? !f->has_packed || f->packed
                                                                                : f->has_packed && f->packed, en);
        if (col < 0)
            return -1;
        mem->column = col;
        return 0;
    }
    if (f->type != TP_PB_MESSAGE) {
        bool len_delim = f->type == TP_PB_STRING || f->type == TP_PB_BYTES;
        bool packed = repeated && !len_delim && (m->proto3 ? !f->has_packed || f->packed : f->has_packed && f->packed);
        int col = add_column(c, depth, f, f->type, label, packed, NULL);
        if (col < 0)
            return -1;
        mem->column = col;
        return 0;
    }
    const pd_message *sub = find_msg(c->set, f->type_name + 1);
    if (!sub)
        return refuse(c, TP_ERR_INVALID_ARG,
                      "field %s has message type %s, which the descriptor set does not define (was it written "
                      "with --include_imports?)", where, f->type_name + 1);
    if (sub->map_entry)
        return refuse(c, TP_ERR_INVALID_ARG, "field %s is a map: maps are not supported (no fixed set of columns)",
                      where);
    if (repeated)
        return refuse(c, TP_ERR_INVALID_ARG,
                      "field %s is a repeated message (%s): only repeated scalars become (array) columns", where,
                      sub->full_name);
    if (!strcmp(sub->full_name, TIMESTAMP_NAME)) {
        if (!timestamp_shape(sub))
            return refuse(c, TP_ERR_INVALID_ARG,
                          "field %s has type google.protobuf.Timestamp, but that type's definition in the set is "
                          "not the standard one (int64 seconds = 1; int32 nanos = 2)", where);
        int col = add_column(c, depth, f, TP_PB_TIMESTAMP, label == TP_LABEL_REQUIRED ? label : TP_LABEL_OPTIONAL,
                             false, NULL);
        if (col < 0)
            return -1;
        mem->column = col;
        return 0;
    }
    for (size_t i = 0; i <= depth; i++)
        if (c->stack[i] == sub)
            return refuse(c, TP_ERR_INVALID_ARG,
                          "field %s makes message %s contain itself: recursive messages have no fixed set of "
                          "columns", where, sub->full_name);
    if (depth + 1 >= TP_SCHEMA_MAX_DEPTH)
        return refuse(c, TP_ERR_INVALID_ARG, "field %s nests messages more than %d deep", where,
                      TP_SCHEMA_MAX_DEPTH);
    tp_schema_node *child = tp_arena_alloc(&c->s->arena, sizeof *child);
    if (!child)
        return refuse(c, TP_ERR_NOMEM, "out of memory while flattening %s", c->s->message);
    mem->child = child;
    return flatten(c, sub, depth + 1, child);
}

static int flatten(fctx *c, const pd_message *m, size_t depth, tp_schema_node *node)
{
    c->stack[depth] = m;
    if (c->nvisited == c->visited_cap) {
        size_t cap = c->visited_cap ? c->visited_cap * 2 : 16;
        const pd_message **p = realloc(c->visited, cap * sizeof *p);
        if (!p)
            return refuse(c, TP_ERR_NOMEM, "out of memory while flattening %s", c->s->message);
        c->visited = p;
        c->visited_cap = cap;
    }
    c->visited[c->nvisited++] = m;
    node->count = m->nfields;
    node->members = tp_arena_alloc(&c->s->arena, (m->nfields ? m->nfields : 1) * sizeof *node->members);
    if (!node->members)
        return refuse(c, TP_ERR_NOMEM, "out of memory while flattening %s", c->s->message);
    for (size_t i = 0; i < m->nfields; i++)
        if (flatten_field(c, m, &m->fields[i], depth, &node->members[i]))
            return -1;
    if (node->count)
        qsort(node->members, node->count, sizeof *node->members, by_number);
    for (size_t i = 1; i < node->count; i++)
        if (node->members[i].number == node->members[i - 1].number)
            return refuse(c, TP_ERR_INVALID_ARG, "message %s has two fields numbered %u (%s and %s)", m->full_name,
                          node->members[i].number, node->members[i - 1].name, node->members[i].name);
    for (size_t i = 0; i < m->nfields; i++)
        for (size_t j = i + 1; j < m->nfields; j++)
            if (!strcmp(m->fields[i].name, m->fields[j].name))
                return refuse(c, TP_ERR_INVALID_ARG, "message %s has two fields named %s", m->full_name,
                              m->fields[i].name);
    /* NDJSON keys are either name: one key must name one field (protoc refuses json_name conflicts too). */
    for (size_t i = 0; i < node->count; i++)
        for (size_t j = i + 1; j < node->count; j++) {
            const tp_schema_member *a = &node->members[i], *b = &node->members[j];
            if (!strcmp(a->json_name, b->json_name) || !strcmp(a->json_name, b->name) ||
                !strcmp(a->name, b->json_name))
                return refuse(c, TP_ERR_INVALID_ARG, "fields %s and %s of message %s have the same JSON name or a "
                              "JSON name equal to the other's name: NDJSON keys would be ambiguous", a->name,
                              b->name, m->full_name);
        }
    return 0;
}

static tp_err build_normal_form(tp_schema *s);

tp_err tp_schema_load(const uint8_t *src, size_t len, const char *message, tp_schema **out, char *err,
                      size_t err_cap)
{
    if (err && err_cap)
        err[0] = 0;
    if ((!src && len) || !message || !out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_schema *s = calloc(1, sizeof *s);
    if (!s)
        return TP_ERR_NOMEM;
    pd_set set = {.arena = &s->arena};
    fctx c = {.s = s, .set = &set, .err = err, .err_cap = err_cap, .rc = TP_OK};
    if (message[0] == '.')
        message++;
    tp_err rc = tp_pd_parse(src, len, &set, err, err_cap);
    if (rc)
        goto done;
    if (set.nmsgs) /* qsort's base may not be NULL, even for zero elements */
        qsort(set.msgs, set.nmsgs, sizeof *set.msgs, by_msg_name);
    if (set.nenums)
        qsort(set.enums, set.nenums, sizeof *set.enums, by_enum_name);
    for (size_t i = 1; i < set.nmsgs; i++)
        if (!strcmp(set.msgs[i]->full_name, set.msgs[i - 1]->full_name)) {
            refuse(&c, TP_ERR_INVALID_ARG, "message type %s is defined twice (in %s and %s)", set.msgs[i]->full_name,
                   set.msgs[i - 1]->file, set.msgs[i]->file);
            goto flat_done;
        }
    const pd_message *root = find_msg(&set, message);
    if (!root) {
        refuse(&c, TP_ERR_INVALID_ARG,
               "the descriptor set has no message named %s (give the full name with its package, e.g. pkg.v1.Msg)",
               message);
        goto flat_done;
    }
    if (root->map_entry) {
        refuse(&c, TP_ERR_INVALID_ARG, "%s is a map entry, not a message to decode", message);
        goto flat_done;
    }
    s->message = tp_arena_strndup(&s->arena, root->full_name, strlen(root->full_name));
    if (!s->message) {
        refuse(&c, TP_ERR_NOMEM, "out of memory");
        goto flat_done;
    }
    if (flatten(&c, root, 0, &s->root))
        goto flat_done;
    for (size_t i = 0; i < set.nexts; i++) {
        const char *ext = set.exts[i]->extendee;
        if (!ext)
            continue;
        for (size_t j = 0; j < c.nvisited; j++)
            if (ext[0] == '.' && !strcmp(ext + 1, c.visited[j]->full_name)) {
                refuse(&c, TP_ERR_INVALID_ARG,
                       "extension %s extends %s: extensions are not supported (declare the field in the message)",
                       set.exts[i]->name ? set.exts[i]->name : "?", c.visited[j]->full_name);
                goto flat_done;
            }
    }
    if (s->ncolumns == 0)
        refuse(&c, TP_ERR_INVALID_ARG, "message %s has no fields: nothing to make columns of", s->message);
flat_done:
    free(c.visited);
    rc = c.rc;
    if (!rc)
        rc = build_normal_form(s);
    if (!rc)
        tp_schema_roles_default(s);
done:
    tp_pd_set_free(&set);
    if (rc) {
        tp_schema_free(s);
        return rc;
    }
    *out = s;
    return TP_OK;
}

void tp_schema_free(tp_schema *s)
{
    if (!s)
        return;
    free(s->columns);
    free(s->normal_form);
    tp_arena_free(&s->arena);
    free(s);
}

const char *tp_schema_message_name(const tp_schema *s) { return s->message; }
size_t tp_schema_column_count(const tp_schema *s) { return s->ncolumns; }
const tp_schema_column *tp_schema_column_at(const tp_schema *s, size_t i)
{
    return i < s->ncolumns ? &s->columns[i] : NULL;
}

long tp_schema_find(const tp_schema *s, const char *name)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < s->ncolumns; i++)
        if (!strcmp(s->columns[i].name, name) || !strcmp(s->columns[i].path, name))
            return (long)i;
    return -1;
}

const char *tp_pb_type_name(tp_pb_type t)
{
    switch (t) {
    case TP_PB_DOUBLE: return "double";
    case TP_PB_FLOAT: return "float";
    case TP_PB_INT64: return "int64";
    case TP_PB_UINT64: return "uint64";
    case TP_PB_INT32: return "int32";
    case TP_PB_FIXED64: return "fixed64";
    case TP_PB_FIXED32: return "fixed32";
    case TP_PB_BOOL: return "bool";
    case TP_PB_STRING: return "string";
    case TP_PB_GROUP: return "group";
    case TP_PB_MESSAGE: return "message";
    case TP_PB_BYTES: return "bytes";
    case TP_PB_UINT32: return "uint32";
    case TP_PB_ENUM: return "enum";
    case TP_PB_SFIXED32: return "sfixed32";
    case TP_PB_SFIXED64: return "sfixed64";
    case TP_PB_SINT32: return "sint32";
    case TP_PB_SINT64: return "sint64";
    case TP_PB_TIMESTAMP: return "timestamp";
    }
    return "?";
}

const char *tp_col_label_name(tp_col_label l)
{
    switch (l) {
    case TP_LABEL_IMPLICIT: return "implicit";
    case TP_LABEL_OPTIONAL: return "optional";
    case TP_LABEL_REQUIRED: return "required";
    case TP_LABEL_REPEATED: return "repeated";
    }
    return "?";
}

/* ---- roles ---- */

const char *tp_time_unit_name(tp_time_unit u)
{
    switch (u) {
    case TP_TIME_S: return "s";
    case TP_TIME_MS: return "ms";
    case TP_TIME_US: return "us";
    case TP_TIME_NS: return "ns";
    }
    return "?";
}

static bool is_integer(const tp_schema_column *c)
{
    return (c->kind == TP_COL_I64 || c->kind == TP_COL_U64) && c->type != TP_PB_ENUM;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && !strcmp(s + a - b, suffix);
}

static bool unit_from_name(const char *name, tp_time_unit *u)
{
    static const struct { const char *suffix; tp_time_unit unit; } tab[] = {
        {"_ms", TP_TIME_MS}, {"_us", TP_TIME_US}, {"_ns", TP_TIME_NS}, {"_s", TP_TIME_S}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (ends_with(name, tab[i].suffix)) {
            *u = tab[i].unit;
            return true;
        }
    return false;
}

static const char *key_problem(const tp_schema_column *c)
{
    if (c->label == TP_LABEL_REPEATED)
        return "it is repeated";
    if (!is_integer(c) && c->kind != TP_COL_STRING)
        return "the key must be an integer or a string";
    return NULL;
}

tp_err tp_schema_set_roles(tp_schema *s, const char *key, const char *time, const char *time_unit,
                           const char *const *identity, size_t identity_count, char *err, size_t err_cap)
{
    tp_schema_roles r = {.key = -1, .time = -1};
    if (!key || !time) {
        tp_schema_errf(err, err_cap, "both a key column and a time column are needed");
        return TP_ERR_INVALID_ARG;
    }
    long k = tp_schema_find(s, key), t = tp_schema_find(s, time);
    if (k < 0) {
        tp_schema_errf(err, err_cap, "the key column %s is not a column of %s", key, s->message);
        return TP_ERR_INVALID_ARG;
    }
    const char *why = key_problem(&s->columns[k]);
    if (why) {
        tp_schema_errf(err, err_cap, "column %s (%s) cannot be the key: %s", key,
                       tp_pb_type_name(s->columns[k].type), why);
        return TP_ERR_INVALID_ARG;
    }
    if (t < 0) {
        tp_schema_errf(err, err_cap, "the time column %s is not a column of %s", time, s->message);
        return TP_ERR_INVALID_ARG;
    }
    const tp_schema_column *tc = &s->columns[t];
    if (tc->label == TP_LABEL_REPEATED || (!is_integer(tc) && tc->kind != TP_COL_TIMESTAMP_NS)) {
        tp_schema_errf(err, err_cap, "column %s (%s%s) cannot be the time: it must be a singular integer or a "
                                     "google.protobuf.Timestamp", time,
                       tc->label == TP_LABEL_REPEATED ? "repeated " : "", tp_pb_type_name(tc->type));
        return TP_ERR_INVALID_ARG;
    }
    if (t == k) {
        tp_schema_errf(err, err_cap, "column %s cannot be both the key and the time", key);
        return TP_ERR_INVALID_ARG;
    }
    r.key = (int)k;
    r.time = (int)t;
    if (tc->kind == TP_COL_TIMESTAMP_NS) {
        r.time_unit = TP_TIME_NS;
        if (time_unit && strcmp(time_unit, "ns")) {
            tp_schema_errf(err, err_cap, "column %s is a Timestamp: its unit is fixed (ns), not %s", time,
                           time_unit);
            return TP_ERR_INVALID_ARG;
        }
    } else if (time_unit) {
        static const char *const units[] = {"s", "ms", "us", "ns"};
        for (int i = 0; i < 4; i++)
            if (!strcmp(time_unit, units[i]))
                r.time_unit = (tp_time_unit)(TP_TIME_S + i);
        if (!r.time_unit) {
            tp_schema_errf(err, err_cap, "time unit '%s' is not one of s, ms, us, ns", time_unit);
            return TP_ERR_INVALID_ARG;
        }
    } else if (!unit_from_name(tc->name, &r.time_unit)) {
        tp_schema_errf(err, err_cap, "the unit of time column %s is unknown: give it (s, ms, us or ns), or use a "
                                     "name ending in _s, _ms, _us or _ns", time);
        return TP_ERR_INVALID_ARG;
    }
    r.identity[r.identity_count++] = r.key;
    r.identity[r.identity_count++] = r.time;
    if (!identity) {
        long q = tp_schema_find(s, "seq");
        if (q >= 0 && is_integer(&s->columns[q]) && s->columns[q].label != TP_LABEL_REPEATED && q != k && q != t)
            r.identity[r.identity_count++] = (int)q;
    } else {
        for (size_t i = 0; i < identity_count; i++) {
            long q = tp_schema_find(s, identity[i]);
            if (q < 0) {
                tp_schema_errf(err, err_cap, "identity column %s is not a column of %s", identity[i], s->message);
                return TP_ERR_INVALID_ARG;
            }
            if (s->columns[q].label == TP_LABEL_REPEATED || s->columns[q].kind == TP_COL_F64 ||
                s->columns[q].kind == TP_COL_F32) {
                tp_schema_errf(err, err_cap, "column %s cannot be part of the identity: it is %s", identity[i],
                               s->columns[q].label == TP_LABEL_REPEATED ? "repeated" : "floating point");
                return TP_ERR_INVALID_ARG;
            }
            if (q == k || q == t)
                continue; /* key and time are always in, first */
            for (size_t j = 0; j < r.identity_count; j++)
                if (r.identity[j] == q) {
                    tp_schema_errf(err, err_cap, "identity column %s is named twice", identity[i]);
                    return TP_ERR_INVALID_ARG;
                }
            if (r.identity_count == TP_SCHEMA_MAX_IDENTITY) {
                tp_schema_errf(err, err_cap, "the identity has more than %d columns", TP_SCHEMA_MAX_IDENTITY);
                return TP_ERR_INVALID_ARG;
            }
            r.identity[r.identity_count++] = (int)q;
        }
    }
    s->roles = r;
    return TP_OK;
}

void tp_schema_roles_default(tp_schema *s)
{
    static const char *const keys[] = {"vehicle_id", "vin", "vehicle", "device_id"};
    tp_schema_roles r = {.key = -1, .time = -1};
    for (size_t i = 0; i < 4 && r.key < 0; i++) {
        long k = tp_schema_find(s, keys[i]);
        if (k >= 0 && s->columns[k].depth == 1 && !key_problem(&s->columns[k]))
            r.key = (int)k;
    }
    for (size_t i = 0; i < s->ncolumns && r.time < 0; i++)
        if (s->columns[i].kind == TP_COL_TIMESTAMP_NS && s->columns[i].depth == 1) {
            r.time = (int)i;
            r.time_unit = TP_TIME_NS;
        }
    for (size_t i = 0; i < s->ncolumns && r.time < 0; i++)
        if (s->columns[i].depth == 1 && is_integer(&s->columns[i]) && s->columns[i].label != TP_LABEL_REPEATED &&
            (int)i != r.key && unit_from_name(s->columns[i].name, &r.time_unit))
            r.time = (int)i;
    if (r.key >= 0 && r.time >= 0) {
        char ignored[8];
        if (tp_schema_set_roles(s, s->columns[r.key].name, s->columns[r.time].name, tp_time_unit_name(r.time_unit),
                                NULL, 0, ignored, sizeof ignored) == TP_OK)
            return;
    }
    r.identity_count = 0;
    s->roles = r;
}

const tp_schema_roles *tp_schema_get_roles(const tp_schema *s) { return &s->roles; }

/* ---- fingerprint ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        if (b->oom)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap : 256) * 2;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static int cmp_numbers(const tp_schema_column *a, const tp_schema_column *b)
{
    for (size_t i = 0; i < a->depth && i < b->depth; i++)
        if (a->numbers[i] != b->numbers[i])
            return a->numbers[i] < b->numbers[i] ? -1 : 1;
    return a->depth < b->depth ? -1 : a->depth > b->depth;
}

static int by_column_numbers(const void *a, const void *b)
{
    return cmp_numbers(*(const tp_schema_column *const *)a, *(const tp_schema_column *const *)b);
}

typedef struct enum_value {
    int32_t number;
    const char *name;
} enum_value;

static int by_enum_value(const void *a, const void *b)
{
    const enum_value *x = a, *y = b;
    if (x->number != y->number)
        return x->number < y->number ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void put_column_line(sbuf *b, const tp_schema_column *c)
{
    for (size_t i = 0; i < c->depth; i++)
        sb_printf(b, "%s%u", i ? "." : "", c->numbers[i]);
    sb_printf(b, "\t%s\t%s\t%s", c->path, tp_pb_type_name(c->type), tp_col_label_name(c->label));
    if (c->enum_type) {
        const tp_schema_enum *e = c->enum_type;
        enum_value *v = malloc(e->count * sizeof *v);
        if (!v) {
            b->oom = true;
            return;
        }
        for (size_t i = 0; i < e->count; i++)
            v[i] = (enum_value){e->numbers[i], e->names[i]};
        if (e->count)
            qsort(v, e->count, sizeof *v, by_enum_value);
        sb_printf(b, "\t");
        for (size_t i = 0; i < e->count; i++)
            sb_printf(b, "%s%s=%d", i ? "," : "", v[i].name, (int)v[i].number);
        free(v);
    }
    sb_printf(b, "\n");
}

static tp_err build_normal_form(tp_schema *s)
{
    const tp_schema_column **order = malloc(s->ncolumns * sizeof *order);
    if (!order)
        return TP_ERR_NOMEM;
    for (size_t i = 0; i < s->ncolumns; i++)
        order[i] = &s->columns[i];
    if (s->ncolumns)
        qsort(order, s->ncolumns, sizeof *order, by_column_numbers);
    sbuf b = {0};
    sb_printf(&b, "tp-schema-normal-form 1\n");
    for (size_t i = 0; i < s->ncolumns; i++)
        put_column_line(&b, order[i]);
    free(order);
    if (b.oom) {
        free(b.p);
        return TP_ERR_NOMEM;
    }
    s->normal_form = b.p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < b.len; i++) {
        h ^= (unsigned char)b.p[i];
        h *= 0x100000001b3ull;
    }
    s->fingerprint = h;
    snprintf(s->fingerprint_hex, sizeof s->fingerprint_hex, "%016llx", (unsigned long long)h);
    return TP_OK;
}

const char *tp_schema_normal_form(const tp_schema *s) { return s->normal_form; }
uint64_t tp_schema_fingerprint(const tp_schema *s) { return s->fingerprint; }
const char *tp_schema_fingerprint_hex(const tp_schema *s) { return s->fingerprint_hex; }

static void numbers_text(const tp_schema_column *c, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < c->depth && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%u", i ? "." : "", c->numbers[i]);
}

tp_schema_compat tp_schema_compare(const tp_schema *w, const tp_schema *r, char *why, size_t why_cap)
{
    char nb[128];
    if (why && why_cap)
        why[0] = 0;
    if (!strcmp(w->normal_form, r->normal_form))
        return TP_SCHEMA_IDENTICAL;
    for (size_t i = 0; i < w->ncolumns; i++) {
        const tp_schema_column *a = &w->columns[i], *b = NULL;
        for (size_t j = 0; j < r->ncolumns && !b; j++)
            if (!cmp_numbers(a, &r->columns[j]))
                b = &r->columns[j];
        numbers_text(a, nb, sizeof nb);
        if (!b) {
            tp_schema_errf(why, why_cap, "field %s (number %s) of the writer's schema is missing in the reader's: "
                                         "its column would be lost", a->path, nb);
            return TP_SCHEMA_INCOMPATIBLE;
        }
        if (strcmp(a->path, b->path)) {
            tp_schema_errf(why, why_cap, "field number %s is %s in the writer's schema and %s in the reader's: a "
                                         "renamed field renames its column", nb, a->path, b->path);
            return TP_SCHEMA_INCOMPATIBLE;
        }
        if (a->type != b->type || a->label != b->label) {
            tp_schema_errf(why, why_cap, "field %s is %s %s in the writer's schema and %s %s in the reader's",
                           a->path, tp_col_label_name(a->label), tp_pb_type_name(a->type),
                           tp_col_label_name(b->label), tp_pb_type_name(b->type));
            return TP_SCHEMA_INCOMPATIBLE;
        }
        if (a->enum_type) {
            for (size_t x = 0; x < a->enum_type->count; x++) {
                const char *name = a->enum_type->names[x];
                int32_t num = a->enum_type->numbers[x];
                bool found = false;
                for (size_t y = 0; y < b->enum_type->count && !found; y++)
                    found = !strcmp(b->enum_type->names[y], name) && b->enum_type->numbers[y] == num;
                if (!found) {
                    tp_schema_errf(why, why_cap, "enum value %s = %d of field %s is missing or renumbered in the "
                                                 "reader's schema", name, (int)num, a->path);
                    return TP_SCHEMA_INCOMPATIBLE;
                }
            }
        }
    }
    for (size_t j = 0; j < r->ncolumns; j++) {
        bool found = false;
        for (size_t i = 0; i < w->ncolumns && !found; i++)
            found = !cmp_numbers(&w->columns[i], &r->columns[j]);
        if (!found) {
            numbers_text(&r->columns[j], nb, sizeof nb);
            tp_schema_errf(why, why_cap, "the reader's schema adds field %s (number %s); rows written without it "
                                         "read it as absent", r->columns[j].path, nb);
            return TP_SCHEMA_COMPATIBLE;
        }
    }
    tp_schema_errf(why, why_cap, "the reader's schema adds enum values; the writer's values read unchanged");
    return TP_SCHEMA_COMPATIBLE;
}
