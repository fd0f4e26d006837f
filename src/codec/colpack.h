/* The columnar pack content ("pbpack v2", layout=columns): one vehicle's records transposed into columns with a
 * per-column transform, before zstd. Internal module; the byte layout is specified in docs/FORMAT_V2.md. */
#ifndef TELEPACK_COLPACK_H
#define TELEPACK_COLPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/colunits.h"
#include "telepack/error.h"
#include "telepack/record.h"
#include "telepack/rows.h"

/* Content starts with these 4 bytes: 00 54 43 32. The leading 00 is the mark of v2 content that the row-layout
 * reader sniffs (a v1 writer never starts a pack with an empty record); read as v1 content the bytes would be an
 * empty record followed by a record whose first tag (0x43) has the group wire type, which no VehicleRecord holds. */
#define TP_COLPACK_MAGIC "\0TC2"
#define TP_COLPACK_MAGIC_LEN 4
/* Format version 3 (docs/FORMAT_V2.md, "Version 3"): the same columns, records of several vehicles sorted by
 * (vehicle_id, sampled_at_ms). Only the magic's last byte differs, so a version-2 reader rejects it as unknown. */
#define TP_COLPACK_MAGIC_V3 "\0TC3"

/* Limits a reader enforces on the header. */
#define TP_COLPACK_MAX_COLUMNS 64

/* Column value types: implied by the field number (the schema), not stored. */
enum tp_colpack_type {
    TP_COLT_UINT64 = 1,
    TP_COLT_INT64 = 2,
    TP_COLT_DOUBLE = 3,
    TP_COLT_FLOAT = 4,
    TP_COLT_INT32 = 5,
};

/* ---- encoder ---- */

/* Reusable encoder: owns scratch columns and the output buffer, which grow to the largest pack seen (no allocation
 * per record, none at all once warmed up). Not thread-safe; one per thread. */
typedef struct tp_colpack_encoder tp_colpack_encoder;

tp_err tp_colpack_encoder_new(tp_colpack_encoder **out);
void tp_colpack_encoder_free(tp_colpack_encoder *e);

/* Encodes recs[0..n) (n >= 1, n <= UINT32_MAX) as v2 content. On success *out and *out_len point into the encoder's
 * buffer, valid until the next call on e. Lossless for every bit pattern of every field. Records need not share a
 * vehicle_id (the format allows it; the pack writer enforces one vehicle per pack). Errors: TP_ERR_INVALID_ARG,
 * TP_ERR_NOMEM. */
tp_err tp_colpack_encode(tp_colpack_encoder *e, const tp_record *recs, size_t n, const uint8_t **out,
                         size_t *out_len);

/* The same for format version 2 or 3. Version 3 requires recs sorted by (vehicle_id, sampled_at_ms) ascending
 * (TP_ERR_INVALID_ARG otherwise): the pack writer sorts them. */
tp_err tp_colpack_encode_version(tp_colpack_encoder *e, const tp_record *recs, size_t n, int version,
                                 const uint8_t **out, size_t *out_len);

/* The same over recs[idx[0]], recs[idx[1]], ..., recs[idx[n-1]] (idx NULL: recs in order), so a caller that
 * orders the records need not move them. */
tp_err tp_colpack_encode_gather(tp_colpack_encoder *e, const tp_record *recs, const uint32_t *idx, size_t n,
                                int version, const uint8_t **out, size_t *out_len);

/* Upper bound of tp_colpack_encode's output for n records: 260 + 63 n bytes, whatever the values. Thread-safe. */
size_t tp_colpack_bound(size_t n);

/* Whether one protobuf VehicleRecord message (the raw bytes a gateway sent) can be carried by the column layout
 * without losing anything: true when it parses and holds only fields 1..9, each with its schema's wire type.
 * False for unknown fields (a newer schema), wrong wire types, or malformed bytes. A writer that receives raw
 * messages must check every record of a pack and write the pack in the row layout (v1) if any check is false. */
bool tp_colpack_can_represent(const uint8_t *msg, size_t len);

/* True when content[0..len) starts with the v2 magic. */
bool tp_colpack_sniff(const uint8_t *content, size_t len);

/* 2 or 3 when content[0..len) starts with the magic of that format version (plain or coded), else 0. */
int tp_colpack_version(const uint8_t *content, size_t len);

/* True when content[0..len) starts with a coded magic ("\0Tc2", "\0Tc3": docs/FORMAT_V2.md, "Coded columns"). */
bool tp_colpack_is_coded(const uint8_t *content, size_t len);

/* Coded columns on (off by default): the encoder then writes the raw, delta and delta2 columns' values through
 * an adaptive range coder (the coded magic) whenever that makes the content smaller, else the plain content. */
void tp_colpack_encoder_set_coded(tp_colpack_encoder *e, bool on);

/* ---- decoder ---- */

/* Memory for decoding coded content, reusable across packs: at most 10 + 10 x (coded columns) bytes a record of
 * the largest pack (the record count is bounded by the reader's max_records). Zero-initialize it; free it with
 * tp_colpack_scratch_free. */
typedef struct tp_colpack_scratch {
    uint8_t *buf;
    size_t cap;
} tp_colpack_scratch;

void tp_colpack_scratch_free(tp_colpack_scratch *s);

/* Decoder state for one content buffer. Declare it on the stack or embed it. It reads `content` in place, which
 * must outlive it. Decoding is resumable: records come out in any chunk sizes. Plain content needs no memory;
 * coded content is decoded at open into a scratch (the caller's, or the reader's own, freed by
 * tp_colpack_reader_release). */
typedef struct tp_colpack_reader {
    uint32_t count;          /* records in the pack */
    uint32_t done;           /* records decoded so far */
    uint8_t version;         /* 2, or 3: several vehicles, sorted by (vehicle_id, sampled_at_ms), checked */
    uint64_t last_vehicle;   /* version 3: the last record decoded, for the order check */
    int64_t last_sampled;
    int ncols;
    tp_units_col cols[9];     /* known fields 1..9 in field order; transform 0xFF = column absent (all zero) */
    bool coded;               /* coded content: the coded columns' bodies are in the scratch */
    tp_colpack_scratch *scratch; /* where coded columns are decoded: the caller's or own */
    tp_colpack_scratch own;
    char detail[200];
} tp_colpack_reader;

/* Frees the scratch a reader allocated for itself (tp_colpack_open on coded content); a no-op for plain content
 * or a caller's scratch. Call it before reopening, or dropping, a reader that may have read coded content with
 * tp_colpack_open (opening forgets the reader's previous state, scratch included); readers that decode many
 * packs use tp_colpack_open_with and one scratch. */
void tp_colpack_reader_release(tp_colpack_reader *r);

/* Parses and checks the header of content[0..len) (format version 2 or 3) (the decompressed pack content). max_records bounds the record
 * count the header may claim (callers derive it from their memory budget: a pack claiming more is refused before
 * anything is decoded). Columns of unknown field numbers are skipped, as protobuf skips unknown fields.
 * Errors (r->detail says what and where): TP_ERR_UNKNOWN_VERSION (no magic, unknown transform), TP_ERR_TRUNCATED,
 * TP_ERR_VARINT_OVERFLOW, TP_ERR_PACK_TOO_LARGE (count above max_records), TP_ERR_TRAILING_GARBAGE,
 * TP_ERR_CORRUPT (anything else malformed). */
tp_err tp_colpack_open(tp_colpack_reader *r, const uint8_t *content, size_t len, uint64_t max_records);

/* The same, decoding coded content into the caller's reusable scratch (NULL: the reader's own). */
tp_err tp_colpack_open_with(tp_colpack_reader *r, const uint8_t *content, size_t len, uint64_t max_records,
                            tp_colpack_scratch *scratch);

/* Decodes the next k records (k <= count - done) into out[0..k). After the last record the columns are checked
 * to have been consumed exactly. Errors as for open; a failing call leaves the reader unusable. */
tp_err tp_colpack_read_records(tp_colpack_reader *r, tp_record *out, size_t k);

/* Decodes every remaining record straight into the batch's columns, tagging rows with (partition, offset).
 * TP_ERR_FULL (nothing appended) if the batch lacks room. All-or-nothing: on error b->count is unchanged. */
tp_err tp_colpack_read_rows(tp_colpack_reader *r, tp_row_batch *b, int32_t partition, int64_t offset);

#endif
