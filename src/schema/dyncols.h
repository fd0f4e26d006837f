/* Column packs of a run-time schema ("pbpack v4", docs/FORMAT_SCHEMA.md): the rows of a tp_dyn_batch transposed
 * into columns identified by field-number path (4.1), each with its type code and label from the schema, an
 * optional presence stream, array lengths, and the values through the unit transforms the built-in record's
 * columns use (codec/colunits.h): decimal-scaled floats, delta2 timestamps, dictionary or raw strings. */
#ifndef TELEPACK_SCHEMA_DYNCOLS_H
#define TELEPACK_SCHEMA_DYNCOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema/dynrow.h"
#include "telepack/error.h"

#define TP_DYNCOL_MAGIC "\0TCS" /* 00 54 43 53 */
#define TP_DYNCOL_MAGIC_LEN 4
#define TP_DYNCOL_FORMAT_VERSION 4 /* the tp-version header of such a pack (with tp-layout: columns) */
#define TP_DYNCOL_F_MULTI_KEY 1    /* header flag: records of several keys, sorted by (key, time) */

/* Whether content[0..len) starts with the magic. */
bool tp_dyncol_sniff(const uint8_t *content, size_t len);

/* ---- encoder ---- */

typedef struct tp_dyncol_encoder tp_dyncol_encoder;

tp_err tp_dyncol_encoder_new(tp_dyncol_encoder **out);
void tp_dyncol_encoder_free(tp_dyncol_encoder *e);

/* Encodes the rows [0, b->count) of b as column-pack content into the encoder's buffer (*out valid until the next
 * call). Lossless for what the batch holds: every cell, presence byte, array and string; an absent cell must be
 * zero (as tp_dyn_decode leaves it). TP_ERR_INVALID_ARG when b holds no row or more than 2^32-1, or when
 * b->unknown_fields is non-zero: the batch lost fields the schema does not know, so the caller writes the records'
 * original bytes as rows (pbpack v1) instead. TP_ERR_NOMEM. Memory kept across calls: about 8 bytes per value
 * of the largest column plus the output; nothing is allocated per record once warmed up. */
tp_err tp_dyncol_encode(tp_dyncol_encoder *e, const tp_dyn_batch *b, const uint8_t **out, size_t *out_len);

/* A pack of several keys (header flag TP_DYNCOL_F_MULTI_KEY, docs/FORMAT_SCHEMA.md "Several keys"): as
 * tp_dyncol_encode, for a batch already in (key, time) order (tp_dyncol_row_cmp); TP_ERR_INVALID_ARG also when it
 * is not, or the schema has no key role. */
tp_err tp_dyncol_encode_multi(tp_dyncol_encoder *e, const tp_dyn_batch *b, const uint8_t **out, size_t *out_len);

/* Rows i and j of b in the order of a multi-key pack: the key role's value (absent first; integers by their type's
 * sign, strings bytewise, a prefix first), then the time role's the same way (<0, 0, >0). */
int tp_dyncol_row_cmp(const tp_dyn_batch *b, size_t i, size_t j);

/* ---- decoder ---- */

typedef struct tp_dyncol_decoder tp_dyncol_decoder;

tp_err tp_dyncol_decoder_new(tp_dyncol_decoder **out);
void tp_dyncol_decoder_free(tp_dyncol_decoder *d);

/* The record count of content's header (checked against max_records as tp_dyncol_decode does), without decoding. */
tp_err tp_dyncol_count(tp_dyncol_decoder *d, const uint8_t *content, size_t len, uint64_t max_records,
                       uint32_t *count);

/* Decodes content[0..len) and appends its records to b as rows (columns matched by field-number path; columns
 * the batch's schema does not know are skipped; the schema's columns the pack lacks are absent/zero). Every
 * record count, length, dictionary index, unit range, UTF-8 string and presence/array agreement is checked before
 * it is used. On error b is as it was and tp_dyncol_decoder_error says why: TP_ERR_UNKNOWN_VERSION (no magic,
 * flags other than TP_DYNCOL_F_MULTI_KEY), TP_ERR_TRUNCATED, TP_ERR_VARINT_OVERFLOW, TP_ERR_PACK_TOO_LARGE (more than
 * max_records), TP_ERR_FULL (the batch's rows or byte budget are used up: load it, clear, retry),
 * TP_ERR_TRAILING_GARBAGE, TP_ERR_CORRUPT (anything else, including a column whose type or label differs from
 * the schema's), TP_ERR_NOMEM. Memory: the batch's own (bounded by its capacity and max_bytes) plus the
 * decoder's scratch, at most 8 bytes per dictionary entry of one column (entries <= that column's values <=
 * max(capacity, max_bytes / 8)) and 9 bytes per schema column. */
tp_err tp_dyncol_decode(tp_dyncol_decoder *d, const uint8_t *content, size_t len, uint64_t max_records,
                        tp_dyn_batch *b);
const char *tp_dyncol_decoder_error(const tp_dyncol_decoder *d);
/* Whether the last pack decoded (or counted) holds several keys; tp_dyncol_decode then checked their order (a
 * record out of (key, time) order is TP_ERR_CORRUPT; flag set without a key role in the reader's schema too). A
 * reader of one key per pack (checking each record against the Kafka key) must check them by their column. */
bool tp_dyncol_decoder_multi_key(const tp_dyncol_decoder *d);

#endif
