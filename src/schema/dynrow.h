/* Dynamic rows: protobuf messages of a run-time schema (schema.h) decoded into a reusable column batch, encoded
 * back to protobuf, and written as NDJSON per protobuf's JSON mapping. docs/SCHEMA.md, "Decoding". */
#ifndef TELEPACK_SCHEMA_DYNROW_H
#define TELEPACK_SCHEMA_DYNROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema/schema.h"
#include "telepack/error.h"

/* One cell: which member is valid follows from the column's kind (schema.h, tp_col_kind). */
typedef union tp_dyn_value {
    int64_t i;  /* TP_COL_I64, TP_COL_TIMESTAMP_NS */
    uint64_t u; /* TP_COL_U64, TP_COL_BOOL (0 or 1) */
    double d;   /* TP_COL_F64 */
    float f;    /* TP_COL_F32 */
    struct {
        uint32_t off, len;
    } s;        /* TP_COL_STRING, TP_COL_BYTES: the batch's bytes[off .. off + len) */
    struct {
        uint32_t off, count;
    } a;        /* a repeated column's cell: its elems[off .. off + count), each a value of the column's kind */
} tp_dyn_value;

typedef struct tp_dyn_column {
    const tp_schema_column *def;
    tp_dyn_value *cells; /* [capacity] */
    uint8_t *present;    /* [capacity]: 1 when the field was on the wire (a repeated one: at least one element);
                          * 0 leaves the cell zero, which is also what an absent implicit (proto3) field means */
    tp_dyn_value *elems; /* repeated columns: the elements of all rows, row after row */
    size_t elems_len, elems_cap;
} tp_dyn_column;

/* A batch of rows of one schema, as columns. Memory: capacity x columns x 9 bytes fixed, plus the string bytes
 * and array elements of the rows (8 bytes an element), which grow up to max_bytes together and are kept across
 * tp_dyn_batch_clear: a warmed-up batch allocates nothing. Not thread-safe. */
typedef struct tp_dyn_batch {
    const tp_schema *schema; /* not owned: must outlive the batch */
    size_t count, capacity;
    size_t ncolumns;
    tp_dyn_column *columns;
    uint8_t *bytes;
    size_t bytes_len, bytes_cap;
    size_t max_bytes, used;  /* budget for bytes + 8 x elements, and what the rows use of it */
    uint64_t unknown_fields; /* fields skipped because the schema does not know their number */
    char error[320];         /* the last decode error as a sentence naming the field */
} tp_dyn_batch;

/* max_bytes: 1 .. UINT32_MAX. */
tp_err tp_dyn_batch_new(const tp_schema *s, size_t capacity, size_t max_bytes, tp_dyn_batch **out);
void tp_dyn_batch_free(tp_dyn_batch *b);
/* Empties the batch, keeping its memory; resets unknown_fields. */
void tp_dyn_batch_clear(tp_dyn_batch *b);

/* Decodes one message occupying exactly src[0..len) and appends it as a row. Accepts what protobuf accepts (fields
 * in any order, the last value of a singular field wins, repeated scalars packed or not, nested messages merged)
 * and skips unknown fields of wire types 0, 1, 2, 5 (counted). Errors (b->error says which field): TP_ERR_FULL
 * (count == capacity, or the rows' bytes would pass max_bytes: flush and retry), TP_ERR_TRUNCATED,
 * TP_ERR_VARINT_OVERFLOW, TP_ERR_DECODE (wrong wire type for a known field, field number 0, a tag longer than 5
 * bytes, groups, wire types 6 and 7, a string that is not UTF-8, a Timestamp outside the ns range or with nanos
 * outside 0..999999999). On error the batch is as it was. */
tp_err tp_dyn_decode(tp_dyn_batch *b, const uint8_t *src, size_t len);

/* Encodes row (< count) as protobuf into dst[0..cap): fields in number order, proto3 implicit fields only when
 * non-zero (floating point: a non-zero bit pattern, so -0.0 is written), explicit ones when present, repeated
 * numerics packed as the schema says, a nested message only when one of its fields is written. TP_ERR_FULL when
 * cap is too small; while writing, each open nested message reserves 5 bytes for its length, so give cap at least
 * the result's size + 5 x the schema's depth. */
tp_err tp_dyn_encode(const tp_dyn_batch *b, size_t row, uint8_t *dst, size_t cap, size_t *out_len);

/* Whether s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF): the check
 * every string cell of a batch has passed. */
bool tp_dyn_utf8_valid(const uint8_t *s, size_t n);

/* A growable text buffer the JSON writer appends to (reuse it: it keeps its memory). */
typedef struct tp_dyn_text {
    char *p;
    size_t len, cap;
} tp_dyn_text;
void tp_dyn_text_free(tp_dyn_text *t);

#define TP_DYN_JSON_PROTO_NAMES 1 /* field names as in the .proto instead of lowerCamelCase (json_name) */

/* Appends row as one JSON object and a newline, per protobuf's JSON mapping: nested messages as objects,
 * 64-bit integers as strings, enums by name (a number unknown to the enum as a number), Timestamp as RFC 3339
 * ("2024-05-01T12:00:00.250Z"), bytes in base64, NaN and infinities as "NaN", "Infinity", "-Infinity", fields
 * not present (and implicit ones equal to zero) left out. TP_ERR_NOMEM only. */
tp_err tp_dyn_row_json(const tp_dyn_batch *b, size_t row, int flags, tp_dyn_text *out);

/* ---- reading NDJSON ---- */

#define TP_DYN_JSON_IGNORE_UNKNOWN 2 /* skip keys that name no field (and enum names the enum lacks) */
#define TP_DYN_JSON_MAX_NESTING 64   /* JSON nesting of a skipped value (under TP_DYN_JSON_IGNORE_UNKNOWN) */

/* Parses text[0..len) as one JSON object per protobuf's JSON mapping and appends it as a row (the inverse of
 * tp_dyn_row_json): keys are the fields' JSON names (lowerCamelCase or json_name) or .proto names; a flattened
 * message is a nested object; integers are JSON numbers or decimal strings (an exponent form must be integral),
 * checked against their type's range; enums by name or number; Timestamps as RFC 3339 with Z or an offset and 0-9
 * fraction digits; bytes as base64 (standard or URL-safe, padding optional); floats as numbers or strings, "NaN",
 * "Infinity", "-Infinity"; null leaves a field absent; repeated fields are arrays. Strings must be UTF-8 (escaped
 * surrogates paired). Whitespace may surround the object, nothing else. Errors: TP_ERR_PARSE with a sentence in
 * b->error naming the column and the key or field ("at column 17: unknown key \"lat\" in the top level: ..."):
 * unknown keys (unless TP_DYN_JSON_IGNORE_UNKNOWN), duplicate keys (also a field's JSON and .proto name together),
 * a value of the wrong kind or out of range; TP_ERR_FULL (as tp_dyn_decode), TP_ERR_NOMEM. On error the batch is as
 * it was. No allocation once the batch's arena and arrays have grown; the stack holds at most the schema's depth
 * of objects (plus TP_DYN_JSON_MAX_NESTING levels for a skipped value). flags: TP_DYN_JSON_IGNORE_UNKNOWN. */
tp_err tp_dyn_json_read(tp_dyn_batch *b, const char *text, size_t len, int flags);

#endif
