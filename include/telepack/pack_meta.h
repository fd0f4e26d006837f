/* Pack metadata as named text values: how a pack travels in Kafka message headers (docs/FORMAT.md, "Kafka
 * message"), as plain name/value pairs any transport can carry. Thread-safe: no state. */
#ifndef TELEPACK_PACK_META_H
#define TELEPACK_PACK_META_H

#include <stddef.h>
#include <stdint.h>

#include "telepack/api.h"
#include "telepack/error.h"
#include "telepack/pack.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The compact form (the default): one header "tp" whose value is "<format version>,<record count>", e.g. "3,250",
 * or "<format version>,<record count>,<dictionary id>" for a pack compressed with a zstd dictionary (the id is not
 * 0); it implies codec zstd, schema version 1, and the layout of the version (1 rows, 2 and 3 columns). */
#define TP_HEADER_COMPACT "tp"

/* The full form: eight headers, values in ASCII (names for format, layout, codec and schema; decimal numbers for
 * the rest). */
#define TP_HEADER_FORMAT "tp-format"                 /* "pbpack" */
#define TP_HEADER_VERSION "tp-version"               /* "1" (rows), "2" (columns), "3" (columns, many vehicles) */
#define TP_HEADER_LAYOUT "tp-layout"                 /* "rows" or "columns" */
#define TP_HEADER_CODEC "tp-codec"                   /* "zstd" or "none" */
#define TP_HEADER_SCHEMA "tp-schema"                 /* "telepack.v1.VehicleRecord" */
#define TP_HEADER_SCHEMA_VERSION "tp-schema-version" /* "1" */
#define TP_HEADER_RECORDS "tp-records"               /* record count, e.g. "200" */
#define TP_HEADER_DICT_ID "tp-dict-id"               /* zstd dictionary id, "0" = none; optional when reading */

/* Added by a sink to a message it dead-letters: the reason, a UTF-8 sentence. */
#define TP_HEADER_ERROR "tp-error"

/* One header: a name and a value of len bytes (not NUL-terminated; NULL with len 0 is an empty value). */
typedef struct tp_header {
    const char *name;
    const void *value;
    size_t len;
} tp_header;

typedef enum tp_header_form { TP_HEADERS_COMPACT = 0, TP_HEADERS_FULL = 1 } tp_header_form;

/* Most headers tp_pack_meta_to_header_list writes, and the text space they need. */
#define TP_PACK_META_MAX_HEADERS 8
#define TP_PACK_META_TEXT_BYTES 128

/* "rows"/"columns" and "none"/"zstd" (the names the full form uses), or NULL for values without a name. */
TP_API const char *tp_layout_name(tp_layout layout);
TP_API const char *tp_codec_name(tp_codec codec);

/* Writes the headers describing *meta in the given form into out[0..*n): names are static strings, values point
 * into text[0..TP_PACK_META_TEXT_BYTES), which the caller provides and keeps while it uses out. out must have room
 * for TP_PACK_META_MAX_HEADERS. TP_ERR_INVALID_ARG for a layout or codec without a name, or for metadata the compact
 * form cannot say (codec none, another schema version, a layout that is not the version's). */
TP_API tp_err tp_pack_meta_to_header_list(const tp_pack_meta *meta, tp_header_form form, tp_header *out, size_t *n,
                                          char *text);

/* Reads pack metadata from the headers h[0..n) of one message, ignoring headers of other names. Strict: either the
 * compact header alone, or every full header but tp-dict-id exactly once; numbers are plain decimal (digits only,
 * no sign or spaces, no leading zeros, within 32 bits); names are exact. vehicle_id and content_size are left 0.
 * Errors, each with a sentence in err[0..cap) naming the header and the value (at most 40 bytes of it shown):
 * TP_ERR_PARSE (missing, repeated, malformed, both forms), TP_ERR_UNKNOWN_VERSION (another format or schema name,
 * an unknown layout name), TP_ERR_UNKNOWN_CODEC. An unknown format version number is not an error here:
 * tp_pack_reader_open rejects it. err may be NULL when cap is 0. */
TP_API tp_err tp_pack_meta_from_header_list(const tp_header *h, size_t n, tp_pack_meta *meta, char *err, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
