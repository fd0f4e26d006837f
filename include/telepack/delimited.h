/* Varint-delimited streams: messages back to back, each preceded by its length as a varint (protobuf's
 * writeDelimitedTo framing; `telepack gen --format delimited`, codec-none packs and the gateway protocol's record
 * frames use it). tp_delimited_split takes one message from memory; tp_delimited_reader reads a stream of them
 * from a FILE or a read function with bounded memory (one buffer of at most 64 KiB + the largest message). */
#ifndef TELEPACK_DELIMITED_H
#define TELEPACK_DELIMITED_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "telepack/api.h"
#include "telepack/error.h"
#include "telepack/record.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Splits the first message off src[0..avail): *msg points at its body inside src, *len is its length and *used the
 * bytes of prefix and body together (step to the next message with src + *used). Errors (outputs untouched):
 * TP_ERR_TRUNCATED when src ends inside the prefix or the body (more input may complete it);
 * TP_ERR_VARINT_OVERFLOW for a prefix that is not a varint; TP_ERR_RECORD_TOO_LARGE for a length above max_len.
 * Never reads outside src[0..avail). Thread-safe (no state). */
TP_API tp_err tp_delimited_split(const uint8_t *src, size_t avail, size_t max_len, const uint8_t **msg, size_t *len,
                                 size_t *used);

/* Reads up to cap bytes of input into buf: returns the number read, 0 at the end of the input, -1 on a read error
 * (errno set). */
typedef long (*tp_read_fn)(void *ctx, void *buf, size_t cap);

typedef struct tp_delimited_reader_opts {
    FILE *file;               /* the input; or NULL and read below */
    tp_read_fn read;          /* used when file is NULL */
    void *read_ctx;           /* passed to read */
    size_t max_message_bytes; /* a longer message is an error (default TP_DEFAULT_MAX_RECORD_BYTES of
                               * telepack/pack.h; at most 64 MiB) */
} tp_delimited_reader_opts;

/* Defaults: no input, max_message_bytes TP_DEFAULT_MAX_RECORD_BYTES. */
TP_API void tp_delimited_reader_opts_init(tp_delimited_reader_opts *o);

typedef struct tp_delimited_reader tp_delimited_reader;

/* A reader of opts' input (which the caller keeps open and closes after tp_delimited_reader_free). Errors:
 * TP_ERR_INVALID_ARG (no input, or max_message_bytes 0 or above 64 MiB), TP_ERR_NOMEM. */
TP_API tp_err tp_delimited_reader_new(const tp_delimited_reader_opts *opts, tp_delimited_reader **out);
TP_API void tp_delimited_reader_free(tp_delimited_reader *r);

/* The next message: *msg points into the reader's buffer and stays valid until the next call. Returns TP_OK,
 * TP_ERR_END at a clean end of the input (between messages), or an error that the reader keeps returning:
 * TP_ERR_TRUNCATED (the input ends inside a message), TP_ERR_VARINT_OVERFLOW (a length prefix that is not a
 * varint), TP_ERR_RECORD_TOO_LARGE (a length above max_message_bytes), TP_ERR_IO (the read failed), TP_ERR_NOMEM.
 * tp_delimited_reader_error then has a sentence naming the message (counted from 0) and its byte offset, e.g.
 * "record 3 at byte offset 210: the input ends after 10 of its 64 bytes". No allocation per message. */
TP_API tp_err tp_delimited_reader_next(tp_delimited_reader *r, const uint8_t **msg, size_t *len);

/* The next message decoded as a VehicleRecord (tp_record_decode): as tp_delimited_reader_next, plus the decoder's
 * errors (the message is consumed; the error sentence says it "is not a valid VehicleRecord"). */
TP_API tp_err tp_delimited_reader_next_record(tp_delimited_reader *r, tp_record *out);

/* Bytes consumed (the end of the last message returned), messages returned, and the last error's sentence ("" when
 * there was none). */
TP_API uint64_t tp_delimited_reader_offset(const tp_delimited_reader *r);
TP_API uint64_t tp_delimited_reader_count(const tp_delimited_reader *r);
TP_API const char *tp_delimited_reader_error(const tp_delimited_reader *r);

#ifdef __cplusplus
}
#endif
#endif
