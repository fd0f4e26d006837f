/* Packs: one vehicle's records in one zstd frame (or raw, codec none), in either layout: rows (pbpack v1, varint
 * length-prefixed protobuf records, docs/FORMAT.md) or columns (pbpack v2, the default, docs/FORMAT_V2.md). A
 * writer builds packs, a reader decodes both layouts into records or row batches. */
#ifndef TELEPACK_PACK_H
#define TELEPACK_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "telepack/api.h"
#include "telepack/dict.h"
#include "telepack/error.h"
#include "telepack/record.h"
#include "telepack/rows.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- metadata (carried in Kafka headers; see docs/FORMAT.md for the header names and encodings) ---- */

typedef enum tp_codec { TP_CODEC_NONE = 0, TP_CODEC_ZSTD = 1 } tp_codec;
typedef enum tp_layout { TP_LAYOUT_ROWS = 1, TP_LAYOUT_COLUMNS = 2 } tp_layout;

#define TP_SCHEMA_NAME "telepack.v1.VehicleRecord"
#define TP_SCHEMA_VERSION 1
#define TP_PACK_FORMAT_NAME "pbpack"

/* Default bounds for readers. */
#define TP_DEFAULT_MAX_RECORD_BYTES 4096u              /* one encoded record; a real one is < 100 B */
#define TP_DEFAULT_MAX_PACK_BYTES (64u * 1024u * 1024u) /* decompressed pack content */
/* A reader accepts at most max_pack_bytes / TP_PACK_BYTES_PER_RECORD records per pack (unless max_pack_records
 * says otherwise), whatever the layout: a record with a vehicle id, a timestamp and a position takes more than 30
 * bytes in its row form, and a column pack of equal records can be far smaller than one byte per record, so the
 * content size alone does not bound what decoding it costs (68 bytes per row in a tp_row_batch). */
#define TP_PACK_BYTES_PER_RECORD 16u

typedef struct tp_pack_meta {
    uint32_t format_version;   /* 1 = rows (pbpack v1); 2 = columns (pbpack v2); 3 = columns of several vehicles */
    tp_layout layout;
    tp_codec codec;
    uint32_t schema_version;   /* TP_SCHEMA_VERSION */
    uint32_t record_count;
    uint32_t dict_id;          /* zstd dictionary id, 0 = none */
    uint64_t vehicle_id;       /* the vehicle all records belong to (also the Kafka key); 0 for version 3 */
    uint64_t content_size;     /* uncompressed content bytes */
} tp_pack_meta;

/* ---- writer ---- */

typedef struct tp_pack_writer_opts {
    tp_codec codec;            /* default TP_CODEC_ZSTD */
    int level;                 /* zstd level, default 3 */
    tp_layout layout;          /* default TP_LAYOUT_COLUMNS (pbpack v2), as every command */
    size_t max_pack_bytes;     /* content bytes one pack may hold before add says TP_ERR_FULL; default 64 MiB */
    int multi_vehicle;         /* layout columns only: a pack may hold several vehicles; finish sorts the records by
                                * (vehicle_id, sampled_at_ms), stable, and writes format version 3. Default 0 */
    const tp_dict *dict;       /* codec zstd only: compress every pack with this dictionary (borrowed: it outlives
                                * the writer; loaded with the writer's level, else tp_pack_writer_new says
                                * TP_ERR_INVALID_ARG). The frame and meta.dict_id carry its id. Default NULL */
    int coded_columns;         /* layout columns only: code the raw, delta and delta2 columns' values with an adaptive
                                * range coder (docs/FORMAT_V2.md, "Coded columns") when that makes a pack smaller:
                                * fewer bytes, more CPU to write and read. Default 0 */
} tp_pack_writer_opts;

/* Fills *o with the defaults above. */
TP_API void tp_pack_writer_opts_init(tp_pack_writer_opts *o);

/* A pack writer owns a reusable zstd context and content buffer: create one per thread and reuse it for every
 * pack (no allocation per record; the buffer grows to the largest pack seen). Not thread-safe. */
typedef struct tp_pack_writer tp_pack_writer;

/* opts may be NULL for defaults; the writer copies what it needs. */
TP_API tp_err tp_pack_writer_new(const tp_pack_writer_opts *opts, tp_pack_writer **out);
TP_API void tp_pack_writer_free(tp_pack_writer *w);

/* Discards any records added since the last finish and starts an empty pack. */
TP_API void tp_pack_writer_reset(tp_pack_writer *w);

/* Appends one record. All records of a pack must have the same vehicle_id (TP_ERR_INVALID_ARG otherwise), unless
 * the writer is multi_vehicle. Any
 * record is accepted in any position: a record whose every field is zero (it encodes to zero bytes) opening a
 * layout-rows pack is written as `08 00` (vehicle_id present and zero), since content starting with byte 00 marks
 * format version 2 (docs/FORMAT.md, sections 2 and 8).
 * TP_ERR_FULL when the pack would exceed max_pack_bytes: finish it and add the record to the next pack. */
TP_API tp_err tp_pack_writer_add(tp_pack_writer *w, const tp_record *r);

/* Records and content bytes added to the open pack so far. */
TP_API uint32_t tp_pack_writer_count(const tp_pack_writer *w);
TP_API size_t tp_pack_writer_content_size(const tp_pack_writer *w);

/* Upper bound of the bytes tp_pack_writer_finish writes for the pack as it stands now. */
TP_API size_t tp_pack_writer_bound(const tp_pack_writer *w);

/* Compresses the open pack into dst[0..cap) (cap >= tp_pack_writer_bound() always suffices), writes its length
 * to *out_len and its metadata to *meta (may be NULL), then starts an empty pack. The caller owns dst: it can hand
 * a malloc'd dst to librdkafka with RD_KAFKA_MSG_F_FREE. TP_ERR_INVALID_ARG for an empty pack,
 * TP_ERR_FULL if cap is too small (the pack stays open). */
TP_API tp_err tp_pack_writer_finish(tp_pack_writer *w, uint8_t *dst, size_t cap, size_t *out_len, tp_pack_meta *meta);

/* ---- reader ---- */

typedef struct tp_pack_reader_opts {
    size_t max_record_bytes;   /* default TP_DEFAULT_MAX_RECORD_BYTES */
    size_t max_pack_bytes;     /* default TP_DEFAULT_MAX_PACK_BYTES: decompressed content cap (bomb guard) */
    size_t max_pack_records;   /* records one pack may hold; 0 (default) = max_pack_bytes / TP_PACK_BYTES_PER_RECORD */
    const tp_dict_set *dicts;  /* the zstd dictionaries packs may name (borrowed: it outlives the reader); a pack
                                * naming another is TP_ERR_UNKNOWN_DICT. Default NULL: none */
} tp_pack_reader_opts;

TP_API void tp_pack_reader_opts_init(tp_pack_reader_opts *o);

/* A pack reader owns a reusable zstd decompression context and content buffer. Not thread-safe. */
typedef struct tp_pack_reader tp_pack_reader;

TP_API tp_err tp_pack_reader_new(const tp_pack_reader_opts *opts, tp_pack_reader **out);
TP_API void tp_pack_reader_free(tp_pack_reader *r);

/* Opens one pack: validates and decompresses data[0..len). meta (may be NULL) is what the Kafka headers said; when
 * given, its version, layout, codec and record count are checked against the pack. Without meta the codec is
 * sniffed (zstd magic → zstd, else none) and the layout is read from the content. The reader does not keep
 * `data` for codec zstd; for codec none it reads `data` in place, so it must outlive the iteration. When meta gives
 * a non-zero vehicle_id (the Kafka key), every record must carry it; all records of a pack must share one.
 * Errors: every tp_err of the "hostile input" family; tp_pack_reader_error_detail() then says what and where. */
TP_API tp_err tp_pack_reader_open(tp_pack_reader *r, const tp_pack_meta *meta, const uint8_t *data, size_t len);

/* Next record of the open pack into *out; TP_ERR_END after the last one (after which the record count is
 * checked against meta, if given). A decode error leaves the reader at the failing record. */
TP_API tp_err tp_pack_reader_next(tp_pack_reader *r, tp_record *out);

/* Decodes every remaining record of the open pack into `rows`, tagging each with (partition, offset).
 * All-or-nothing: on any error rows->count is restored to its value on entry. TP_ERR_FULL if the batch lacks room
 * for the whole pack (nothing appended). */
TP_API tp_err tp_pack_reader_read_all(tp_pack_reader *r, tp_row_batch *rows, int32_t partition, int64_t offset);

/* The metadata of the open pack as read from the pack itself. record_count is known once the pack is open: layout
 * columns from its header (bounded by max_pack_records and the column bodies), layout rows by walking the length
 * prefixes (a count the metadata contradicts fails the open with TP_ERR_COUNT_MISMATCH). When a length prefix is
 * malformed, record_count is the number of records before it plus one (reading stops there with the error).
 * Callers size row batches from it, never from the headers alone. */
TP_API const tp_pack_meta *tp_pack_reader_meta(const tp_pack_reader *r);

/* A sentence about the last error: what is wrong and at which byte offset ("record 17 at content offset 2345:
 * length prefix 99999 above max_record_bytes 4096"). Valid until the next call on r. Never NULL. */
TP_API const char *tp_pack_reader_error_detail(const tp_pack_reader *r);

/* ---- files of packs ---- */

/* A file (or stream) of packs with codec zstd is the packs' zstd frames back to back, which `zstd -d` reads as one
 * stream. Sets *frame_size to the length of the zstd frame starting at data[0], so a caller can split such a file
 * into packs. Errors: TP_ERR_TRUNCATED when data ends inside the frame (or len < 4), TP_ERR_CORRUPT when data does
 * not start with a standard zstd frame (skippable frames included) or the frame is malformed. Thread-safe. */
TP_API tp_err tp_pack_frame_size(const uint8_t *data, size_t len, size_t *frame_size);

#ifdef __cplusplus
}
#endif
#endif
