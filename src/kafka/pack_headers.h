/* Pack metadata as Kafka message headers (docs/FORMAT.md, "Kafka message"): names, encodings, strict parsing. */
#ifndef TELEPACK_PACK_HEADERS_H
#define TELEPACK_PACK_HEADERS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "telepack/pack.h"

/* Header names. Values are ASCII: names for format/layout/codec/schema, decimal numbers for the rest. */
#define TP_HEADER_FORMAT "tp-format"               /* "pbpack" */
#define TP_HEADER_VERSION "tp-version"             /* "1" (rows) or "2" (columns) */
#define TP_HEADER_LAYOUT "tp-layout"               /* "rows" or "columns" */
#define TP_HEADER_CODEC "tp-codec"                 /* "zstd" or "none" */
#define TP_HEADER_SCHEMA "tp-schema"               /* "telepack.v1.VehicleRecord" */
#define TP_HEADER_SCHEMA_VERSION "tp-schema-version" /* "1" */
#define TP_HEADER_RECORDS "tp-records"             /* record count, e.g. "200" */
#define TP_HEADER_DICT_ID "tp-dict-id"             /* zstd dictionary id, "0" = none; optional when reading */

/* The compact form: one header instead of the eight above, value "<format version>,<record count>" in decimal
 * (e.g. "3,250"). It implies format pbpack, the layout of that version (1 rows, 2 and 3 columns), codec zstd,
 * schema telepack.v1.VehicleRecord version 1 and no dictionary. Packs with codec none use the full headers. */
#define TP_HEADER_COMPACT "tp"

/* Dead-letter topic: the sink copies a pack it cannot read there, with this header added holding the reader's
 * error sentence (UTF-8 text), next to the original headers. */
#define TP_HEADER_ERROR "tp-error"

/* Adds the eight headers describing *meta to hdrs (librdkafka copies names and values). TP_ERR_INVALID_ARG for
 * a layout or codec without a name; TP_ERR_KAFKA if librdkafka refuses a header. */
tp_err tp_pack_meta_to_headers(const tp_pack_meta *meta, rd_kafka_headers_t *hdrs);

/* Adds the one compact header describing *meta (see TP_HEADER_COMPACT). TP_ERR_INVALID_ARG when *meta is not
 * expressible in it (codec none, a dictionary, another schema version, a layout that does not match the version);
 * then use tp_pack_meta_to_headers. TP_ERR_KAFKA if librdkafka refuses the header. */
tp_err tp_pack_meta_to_compact_header(const tp_pack_meta *meta, rd_kafka_headers_t *hdrs);

/* Fills *meta from hdrs: the compact header when present (then tp-format may not be: a repeated or mixed form is
 * TP_ERR_PARSE), else the full set below. Full set: fills *meta from hdrs (vehicle_id and content_size are not headers: they are left 0; the vehicle is the message
 * key). Strict: every header above but tp-dict-id must be present exactly once, numbers are plain decimal
 * (digits only, no sign or spaces, no leading zeros, within 32 bits), names are exact. Errors, each with a
 * sentence in err[0..cap) naming the header and the value: TP_ERR_PARSE (missing, repeated, malformed),
 * TP_ERR_UNKNOWN_VERSION (another format or schema name, unknown layout name), TP_ERR_UNKNOWN_CODEC (unknown codec
 * name). A format version number the reader does not know is not an error here: tp_pack_reader_open rejects it.
 * err may be NULL when cap is 0. */
tp_err tp_pack_meta_from_headers(const rd_kafka_headers_t *hdrs, tp_pack_meta *meta, char *err, size_t cap);

/* "rows"/"columns" and "none"/"zstd", or NULL for values without a name. */
const char *tp_layout_name(tp_layout layout);
const char *tp_codec_name(tp_codec codec);

#endif
