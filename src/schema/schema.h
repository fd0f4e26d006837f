/* Run-time schemas: a protobuf message type loaded from a FileDescriptorSet (protoc --include_imports
 * --descriptor_set_out), flattened into one column per leaf scalar, with roles (key, time, identity) and a
 * fingerprint. Internal API for now (tp_schema_*); docs/SCHEMA.md is the specification. */
#ifndef TELEPACK_SCHEMA_SCHEMA_H
#define TELEPACK_SCHEMA_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telepack/error.h"

/* Limits of the loader (docs/SCHEMA.md, "Limits"). Anything above them is refused with a sentence. */
#define TP_SCHEMA_MAX_INPUT (16u << 20)   /* bytes of a serialized FileDescriptorSet */
#define TP_SCHEMA_MAX_FILES 1024          /* files in the set */
#define TP_SCHEMA_MAX_TYPES 16384         /* messages + enums, nested ones included, over the whole set */
#define TP_SCHEMA_MAX_FIELDS 65536        /* fields + enum values over the whole set */
#define TP_SCHEMA_MAX_NESTING 32          /* nested_type inside nested_type inside ... in one file */
#define TP_SCHEMA_MAX_NAME 255            /* bytes of one name, full type names and flattened column names */
#define TP_SCHEMA_MAX_DEPTH 8             /* message levels from the root to a leaf column (root = 1) */
#define TP_SCHEMA_MAX_COLUMNS 1024        /* leaf columns of the flattened message */

/* The protobuf field types, numbered as in descriptor.proto (FieldDescriptorProto.Type). TP_PB_TIMESTAMP is ours:
 * a google.protobuf.Timestamp field, one column. */
typedef enum tp_pb_type {
    TP_PB_DOUBLE = 1, TP_PB_FLOAT = 2, TP_PB_INT64 = 3, TP_PB_UINT64 = 4, TP_PB_INT32 = 5, TP_PB_FIXED64 = 6,
    TP_PB_FIXED32 = 7, TP_PB_BOOL = 8, TP_PB_STRING = 9, TP_PB_GROUP = 10, TP_PB_MESSAGE = 11, TP_PB_BYTES = 12,
    TP_PB_UINT32 = 13, TP_PB_ENUM = 14, TP_PB_SFIXED32 = 15, TP_PB_SFIXED64 = 16, TP_PB_SINT32 = 17,
    TP_PB_SINT64 = 18,
    TP_PB_TIMESTAMP = 32,
} tp_pb_type;

/* How a column's values are held in memory (tp_dyn_value): the storage class of its protobuf type. */
typedef enum tp_col_kind {
    TP_COL_I64 = 1,       /* int32, int64, sint32, sint64, sfixed32, sfixed64, enum (the number) */
    TP_COL_U64,           /* uint32, uint64, fixed32, fixed64 */
    TP_COL_F64,           /* double */
    TP_COL_F32,           /* float */
    TP_COL_BOOL,          /* bool, as 0 or 1 in u */
    TP_COL_STRING,        /* string (UTF-8, checked), bytes in the batch's arena */
    TP_COL_BYTES,         /* bytes */
    TP_COL_TIMESTAMP_NS,  /* google.protobuf.Timestamp as int64 nanoseconds since the Unix epoch, UTC */
} tp_col_kind;

/* Field presence, as protobuf defines it; also the label in the fingerprint. */
typedef enum tp_col_label {
    TP_LABEL_IMPLICIT = 1, /* proto3 singular scalar: zero is not written, absent reads as zero */
    TP_LABEL_OPTIONAL,     /* explicit presence: proto2 optional, proto3 `optional`, Timestamp */
    TP_LABEL_REQUIRED,     /* proto2 required (not enforced by the decoder, docs/SCHEMA.md) */
    TP_LABEL_REPEATED,     /* an array column */
} tp_col_label;

typedef struct tp_schema_enum {
    const char *full_name; /* "fleet.ev.v1.DriveState" */
    size_t count;
    const char **names;    /* value names, in declaration order */
    const int32_t *numbers;
} tp_schema_enum;

/* One leaf column of the flattened message. */
typedef struct tp_schema_column {
    const char *name;       /* flattened: "battery_soc_pct" (path components joined by '_') */
    const char *path;       /* dotted proto field names: "battery.soc_pct" */
    const char *json_path;  /* dotted JSON names (lowerCamelCase or json_name): "battery.socPct" */
    size_t depth;           /* components of the path, 1..TP_SCHEMA_MAX_DEPTH */
    uint32_t numbers[TP_SCHEMA_MAX_DEPTH]; /* field numbers along the path */
    tp_pb_type type;
    tp_col_kind kind;
    tp_col_label label;
    bool packed;            /* repeated numeric: written packed (proto3 default, proto2 [packed=true]) */
    const tp_schema_enum *enum_type; /* for TP_PB_ENUM, else NULL */
} tp_schema_column;

typedef struct tp_schema tp_schema;

/* Parses a serialized FileDescriptorSet (src[0..len), len <= TP_SCHEMA_MAX_INPUT) and flattens the message whose
 * full name is `message` ("fleet.ev.v1.EvTelemetry", a leading '.' allowed). On failure returns TP_ERR_PARSE
 * (malformed set or limit exceeded), TP_ERR_INVALID_ARG (message not found, or a feature refused) or
 * TP_ERR_NOMEM, and writes a sentence naming the bad field or value into err[0..err_cap). The schema keeps no
 * pointer into src. Default roles are set (tp_schema_roles_default); a schema is immutable after that except for
 * tp_schema_set_roles, and may then be shared between threads. */
tp_err tp_schema_load(const uint8_t *src, size_t len, const char *message, tp_schema **out, char *err,
                      size_t err_cap);
void tp_schema_free(tp_schema *s);

const char *tp_schema_message_name(const tp_schema *s); /* full name, no leading dot */
size_t tp_schema_column_count(const tp_schema *s);
const tp_schema_column *tp_schema_column_at(const tp_schema *s, size_t i);
/* Index of the column named `name` (flattened form, or the dotted path), or -1. */
long tp_schema_find(const tp_schema *s, const char *name);

/* Names of the types and labels as the fingerprint and the CLI print them ("sint64", "timestamp", "repeated"). */
const char *tp_pb_type_name(tp_pb_type t);
const char *tp_col_label_name(tp_col_label l);

/* ---- roles ---- */

typedef enum tp_time_unit { TP_TIME_S = 1, TP_TIME_MS, TP_TIME_US, TP_TIME_NS } tp_time_unit;

#define TP_SCHEMA_MAX_IDENTITY 8

/* Which columns are the vehicle (key), the event time and the identity (the deduplication key downstream). */
typedef struct tp_schema_roles {
    int key;                 /* column index: a singular integer or string column; -1 = none */
    int time;                /* column index: a singular integer column with time_unit, or a Timestamp; -1 = none */
    tp_time_unit time_unit;  /* TP_TIME_NS for a Timestamp column */
    size_t identity_count;
    int identity[TP_SCHEMA_MAX_IDENTITY]; /* column indexes, key and time first */
} tp_schema_roles;

/* Sets the roles by column name (flattened or dotted). `time_unit` is "s", "ms", "us", "ns" or NULL (then taken from
 * a name ending in _s, _ms, _us or _ns; a Timestamp needs none). `identity` NULL means key + time (+ a singular
 * integer column named "seq" if there is one). Refused with a sentence (TP_ERR_INVALID_ARG): unknown names, a
 * repeated or floating key, a time column that is not an integer or Timestamp, an integer time without a unit,
 * identity without key and time, duplicates, more than TP_SCHEMA_MAX_IDENTITY. On failure the roles stay as
 * they were. */
tp_err tp_schema_set_roles(tp_schema *s, const char *key, const char *time, const char *time_unit,
                           const char *const *identity, size_t identity_count, char *err, size_t err_cap);
/* The defaults tp_schema_load sets: key = the first of "vehicle_id", "vin", "vehicle", "device_id" that exists as a
 * valid key column; time = the first top-level Timestamp column, else the first singular integer column whose
 * name ends in _ms, _us, _ns or _s; identity = key + time (+ seq). A role not found is -1 (unset). */
void tp_schema_roles_default(tp_schema *s);
const tp_schema_roles *tp_schema_get_roles(const tp_schema *s);
const char *tp_time_unit_name(tp_time_unit u);

/* ---- fingerprint and compatibility ---- */

/* The normalized form (docs/SCHEMA.md, "Fingerprint"): one line per column, sorted by field-number path, holding
 * numbers, names, type, label and enum values. Owned by the schema. */
const char *tp_schema_normal_form(const tp_schema *s);
/* 64-bit FNV-1a of the normalized form, and its 16 lowercase hex digits. */
uint64_t tp_schema_fingerprint(const tp_schema *s);
const char *tp_schema_fingerprint_hex(const tp_schema *s);

typedef enum tp_schema_compat {
    TP_SCHEMA_IDENTICAL = 0,   /* same normalized form */
    TP_SCHEMA_COMPATIBLE,      /* `reader` reads everything `writer` writes into the same columns */
    TP_SCHEMA_INCOMPATIBLE,
} tp_schema_compat;

/* Compares the schema data was written with against the one a reader uses. COMPATIBLE: the reader only adds
 * columns or enum values. Anything else (a column removed, renamed, retyped, relabelled, an enum value renumbered
 * or renamed) is INCOMPATIBLE. why (may be NULL) gets a sentence naming the first difference. */
tp_schema_compat tp_schema_compare(const tp_schema *writer, const tp_schema *reader, char *why, size_t why_cap);

#endif
