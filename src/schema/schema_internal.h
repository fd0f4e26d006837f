/* Inside the schema area: the arena, the parsed descriptor set, and the message tree the decoder walks. */
#ifndef TELEPACK_SCHEMA_INTERNAL_H
#define TELEPACK_SCHEMA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema/schema.h"

/* A bump allocator in chunks; everything of a schema lives in one and goes with tp_schema_free. */
typedef struct tp_arena_chunk tp_arena_chunk;
typedef struct tp_arena {
    tp_arena_chunk *head;
    size_t used, cap;
} tp_arena;

void *tp_arena_alloc(tp_arena *a, size_t n); /* zeroed, 8-byte aligned; NULL when out of memory */
char *tp_arena_strndup(tp_arena *a, const char *s, size_t n);
void tp_arena_free(tp_arena *a);

/* ---- the parsed FileDescriptorSet (descriptor.c) ---- */

typedef struct pd_field {
    const char *name, *json_name, *type_name, *extendee; /* json_name, type_name, extendee may be NULL */
    uint32_t number;
    int label, type;
    int32_t oneof_index; /* -1 when absent */
    bool proto3_optional, has_packed, packed, has_default;
} pd_field;

typedef struct pd_message {
    const char *full_name;
    const char *file;
    bool proto3, map_entry;
    size_t nfields;
    pd_field *fields;
} pd_message;

typedef struct pd_set {
    tp_arena *arena;
    size_t nfiles;
    size_t nmsgs, msgs_cap;
    pd_message **msgs;
    size_t nenums, enums_cap;
    tp_schema_enum **enums;
    size_t nexts, exts_cap;
    pd_field **exts;
    size_t nfields; /* fields + enum values, against TP_SCHEMA_MAX_FIELDS */
} pd_set;

/* Parses src into *set (allocating names and fields in set->arena, the arrays with malloc: pd_set_free). */
tp_err tp_pd_parse(const uint8_t *src, size_t len, pd_set *set, char *err, size_t err_cap);
void tp_pd_set_free(pd_set *set);

/* ---- the flattened message ---- */

typedef struct tp_schema_node tp_schema_node;
typedef struct tp_schema_member {
    uint32_t number;
    const char *name, *json_name;
    int column;                 /* leaf: the column index; -1 for a nested message */
    const tp_schema_node *child;
} tp_schema_member;

/* One message level: its fields sorted by number (the decoder searches them, the encoder writes in this order). */
struct tp_schema_node {
    size_t count;
    tp_schema_member *members;
};

struct tp_schema {
    tp_arena arena;
    char *message;
    size_t ncolumns;
    tp_schema_column *columns;
    tp_schema_node root;
    tp_schema_roles roles;
    char *normal_form;
    uint64_t fingerprint;
    char fingerprint_hex[17];
};

/* Whether s[0..n) is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF). */
bool tp_dyn_utf8_valid(const uint8_t *s, size_t n);

void tp_schema_errf(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
