/* Kafka headers of packs of a run-time schema (docs/FORMAT.md section 5, docs/SCHEMA.md "The pipeline"): the eight
 * pack headers with tp-schema set to the message's full name, plus tp-schema-fp, the schema's fingerprint. Readers
 * that do not know tp-schema-fp ignore it; a built-in reader refuses such a pack by its tp-schema name. */
#ifndef TELEPACK_KAFKA_SCHEMA_HEADERS_H
#define TELEPACK_KAFKA_SCHEMA_HEADERS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "telepack/pack.h"

#define TP_HEADER_SCHEMA_FP "tp-schema-fp" /* 16 lowercase hex digits (tp_schema_fingerprint_hex) */
#define TP_SCHEMA_FP_HEX_LEN 16

/* Adds the pack headers of *meta (tp_pack_meta_to_headers) with tp-schema = `message` and tp-schema-fp = fp_hex.
 * TP_ERR_INVALID_ARG for a name that is empty or longer than 255 bytes or a fingerprint that is not 16 lowercase
 * hex digits; TP_ERR_KAFKA. */
tp_err tp_schema_pack_headers(const tp_pack_meta *meta, const char *message, const char *fp_hex,
                              rd_kafka_headers_t *hdrs);

/* Reads the pack headers as tp_pack_meta_from_headers does (same strictness) but for any tp-schema name, which
 * goes to name[0..name_cap) (255 bytes at most, printable ASCII), and tp-schema-fp to fp[0..17) ("" when absent:
 * a built-in pack). Errors as tp_pack_meta_from_headers, plus TP_ERR_PARSE for a repeated or malformed
 * tp-schema-fp or a schema name that is empty, too long or not printable. */
tp_err tp_schema_pack_meta_from_headers(const rd_kafka_headers_t *hdrs, tp_pack_meta *meta, char *name,
                                        size_t name_cap, char fp[TP_SCHEMA_FP_HEX_LEN + 1], char *err, size_t cap);

#endif
