/* Packs of a run-time schema: pbpack v1 (layout rows, docs/FORMAT.md sections 2-3) is schema-agnostic, varint-
 * delimited protobuf frames in one zstd frame, so a message type of the user's own travels in it unchanged. This
 * file has the three parts the commands share: the record key as text (the Kafka key), a grouper that collects
 * each key's frames (the original bytes, validated by the dynamic decoder) into packs, and a bounded reader that
 * hands back the frames of a pack. docs/SCHEMA.md, "The pipeline". */
#ifndef TELEPACK_SCHEMA_DYNPACK_H
#define TELEPACK_SCHEMA_DYNPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema/dynrow.h"
#include "schema/schema.h"
#include "telepack/error.h"
#include "telepack/pack.h"

/* Longest key text: a string key (a VIN) of up to this many bytes; integers take at most 20. */
#define TP_DYN_KEY_MAX 255

/* Writes row `row`'s key column (the schema's key role) as text into key[0..TP_DYN_KEY_MAX + 1): an integer in
 * decimal (signed for int/sint/sfixed types), a string as its bytes; NUL-terminated, *len without the NUL.
 * TP_ERR_INVALID_ARG when the schema has no key role; TP_ERR_DECODE (with a sentence in why) for a string key
 * that is empty, longer than TP_DYN_KEY_MAX or holds a NUL byte. */
tp_err tp_dyn_key_text(const tp_dyn_batch *b, size_t row, char key[TP_DYN_KEY_MAX + 1], size_t *len, char *why,
                       size_t why_cap);

/* 64-bit FNV-1a of the key text: the grouping hash (the batcher's uint64 key); the exact text stays the Kafka key
 * and groups compare it, so two keys with one hash are never mixed. */
uint64_t tp_dyn_key_hash(const char *key, size_t len);

/* Row `row`'s time column as nanoseconds since the epoch; false when the schema has no time role or the row has
 * no time (absent optional field), or the value does not fit int64 nanoseconds. */
bool tp_dyn_time_ns(const tp_dyn_batch *b, size_t row, int64_t *ns);

/* ---- grouper: the records of each key, in arrival order, as pack content ---- */

typedef struct tp_dyn_group {
    char key[TP_DYN_KEY_MAX + 1]; /* the exact key text (the Kafka key) */
    size_t key_len;
    uint64_t hash;
    uint8_t *content;   /* varint-delimited frames: a v1 pack's content */
    size_t len, cap;    /* kept across packs: a warmed-up group allocates nothing */
    uint32_t count;     /* records in content; 0 = closed */
    uint64_t opened;    /* arrival number of its first record (the oldest open group goes first) */
    int64_t time_lo_ns, time_hi_ns; /* event-time span of its records (when the schema has a time role) */
    bool has_time;
    void *user;         /* the caller's: NULL when the group is made, then left alone */
} tp_dyn_group;

typedef struct tp_dyn_grouper tp_dyn_grouper;

/* batch_records: records per pack (1..2^32-1); max_record_bytes: the largest message accepted (its frame is
 * refused above it). Memory: one group per distinct key seen (~300 bytes + its content buffer, which holds at
 * most batch_records frames), plus one decoding row of about 9 x max_record_bytes and one record's encoding. */
tp_err tp_dyn_grouper_new(const tp_schema *s, uint32_t batch_records, size_t max_record_bytes, tp_dyn_grouper **out);
void tp_dyn_grouper_free(tp_dyn_grouper *g);

/* Decodes msg[0..len) under the schema (refusing it, with a sentence in tp_dyn_grouper_error, when it does not
 * decode or its key is bad: TP_ERR_DECODE and the decoder's codes, TP_ERR_RECORD_TOO_LARGE) and appends the
 * original bytes to its key's group. *full is set to the group when it reached batch_records (pack it, then
 * tp_dyn_grouper_release), else NULL. TP_ERR_NOMEM. */
tp_err tp_dyn_grouper_add(tp_dyn_grouper *g, const uint8_t *msg, size_t len, tp_dyn_group **full);
/* As tp_dyn_grouper_add for one NDJSON record text[0..len) (tp_dyn_json_read with flags, TP_DYN_JSON_*): the
 * record is read per protobuf's JSON mapping and its protobuf encoding (tp_dyn_encode, canonical) is what the
 * group holds. TP_ERR_PARSE (a sentence naming the key or field in tp_dyn_grouper_error), TP_ERR_RECORD_TOO_LARGE
 * (the encoding is above max_record_bytes), TP_ERR_DECODE (a bad key), TP_ERR_NOMEM. The row it read is
 * tp_dyn_grouper_row. */
tp_err tp_dyn_grouper_add_json(tp_dyn_grouper *g, const char *text, size_t len, int flags, tp_dyn_group **full);
/* The group the last successful add went to (it may be the *full one), or NULL. */
tp_dyn_group *tp_dyn_grouper_last(const tp_dyn_grouper *g);
/* Calls fn for every group ever made (open or closed), e.g. to free what .user points to. */
void tp_dyn_grouper_each(tp_dyn_grouper *g, void (*fn)(void *ctx, tp_dyn_group *grp), void *ctx);
/* The open group whose first record arrived longest ago, or NULL when none is open. */
tp_dyn_group *tp_dyn_grouper_oldest(tp_dyn_grouper *g);
/* Records held in open groups. */
uint64_t tp_dyn_grouper_buffered(const tp_dyn_grouper *g);
/* Closes a group (its memory is kept for the key's next records). */
void tp_dyn_grouper_release(tp_dyn_grouper *g, tp_dyn_group *grp);
const char *tp_dyn_grouper_error(const tp_dyn_grouper *g);
/* The decoded row of the last tp_dyn_grouper_add (valid until the next add). */
const tp_dyn_batch *tp_dyn_grouper_row(const tp_dyn_grouper *g);

/* ---- writing and reading packs ---- */

/* Compresses content[0..len) as one pack (codec zstd: a standard frame with checksum and content size; none: a
 * copy) into a malloc'd *out (the caller owns it: it can go to librdkafka with RD_KAFKA_MSG_F_FREE). cctx is a
 * ZSTD_CCtx the caller reuses (NULL for codec none). TP_ERR_NOMEM, TP_ERR_COMPRESS. */
tp_err tp_dyn_pack_compress(void *cctx, int level, tp_codec codec, const uint8_t *content, size_t len,
                            uint8_t **out, size_t *out_len);

/* The column layout of a group (docs/FORMAT_SCHEMA.md): its frames decoded into a batch of batch_records rows and
 * encoded as column content. */
typedef struct tp_dyn_colwriter tp_dyn_colwriter;
tp_err tp_dyn_colwriter_new(const tp_schema *s, uint32_t batch_records, size_t max_record_bytes,
                            tp_dyn_colwriter **out);
void tp_dyn_colwriter_free(tp_dyn_colwriter *w);
/* Converts a group's rows content (varint-delimited frames, as the grouper holds them) into column content at
 * *out (valid until the next call). *out is NULL when the group must stay rows (pbpack v1), which keeps every byte:
 * a record holds a field the schema does not know (tp_dyn_decode counted it), or the group is above the batch. */
tp_err tp_dyn_colwriter_convert(tp_dyn_colwriter *w, const uint8_t *rows, size_t len, const uint8_t **out,
                                size_t *out_len);

typedef struct tp_dyn_pack_reader tp_dyn_pack_reader;

/* Bounds as tp_pack_reader's (docs/FORMAT.md section 6): the decompressed content (bomb guard, also the zstd
 * window), one frame, and the records of one pack (max_pack_bytes / TP_PACK_BYTES_PER_RECORD). */
tp_err tp_dyn_pack_reader_new(size_t max_pack_bytes, size_t max_record_bytes, tp_dyn_pack_reader **out);
void tp_dyn_pack_reader_free(tp_dyn_pack_reader *r);

/* Opens one pack data[0..len): codec from `meta` when given (else sniffed from the zstd magic), layout rows
 * (version 1) or the schema's columns (version 4; without meta: content starting with 00; other versions
 * TP_ERR_UNKNOWN_VERSION), every length prefix walked and bounded, the count checked against meta->record_count when
 * meta is given. data must outlive the iteration for codec none. Errors with a sentence in
 * tp_dyn_pack_reader_error: TP_ERR_CORRUPT, TP_ERR_TRUNCATED, TP_ERR_PACK_TOO_LARGE, TP_ERR_RECORD_TOO_LARGE,
 * TP_ERR_CHECKSUM, TP_ERR_TRAILING_GARBAGE, TP_ERR_COUNT_MISMATCH, TP_ERR_VARINT_OVERFLOW, TP_ERR_NOMEM. */
tp_err tp_dyn_pack_reader_open(tp_dyn_pack_reader *r, const tp_pack_meta *meta, const uint8_t *data, size_t len);
/* Records of the open pack, and its content size. */
uint32_t tp_dyn_pack_reader_count(const tp_dyn_pack_reader *r);
size_t tp_dyn_pack_reader_content_size(const tp_dyn_pack_reader *r);
/* Whether the open pack is a column pack of the schema (tp-version 4, layout columns; without meta: content
 * starting with 00, docs/FORMAT_SCHEMA.md). Its records come from tp_dyn_pack_reader_read_columns, not _next. */
bool tp_dyn_pack_reader_is_columns(const tp_dyn_pack_reader *r);
/* Decodes the open column pack's records into b (appended; on error b is unchanged), with the errors of
 * tp_dyncol_decode (TP_ERR_FULL: b lacks rows or bytes) and a sentence in tp_dyn_pack_reader_error. */
tp_err tp_dyn_pack_reader_read_columns(tp_dyn_pack_reader *r, tp_dyn_batch *b);
/* The next frame of the open pack (pointing into the reader's buffer or data); TP_ERR_END after the last. */
tp_err tp_dyn_pack_reader_next(tp_dyn_pack_reader *r, const uint8_t **msg, size_t *len);
const char *tp_dyn_pack_reader_error(const tp_dyn_pack_reader *r);

#endif
