/* telepack's one error convention: every fallible call returns a tp_err, results go through out-parameters. */
#ifndef TELEPACK_ERROR_H
#define TELEPACK_ERROR_H

#include "telepack/api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TP_OK is zero, every error is positive, so `if (err)` tests for failure. Values are stable: append only. */
typedef enum tp_err {
    TP_OK = 0,
    TP_ERR_NOMEM,              /* an allocation failed */
    TP_ERR_INVALID_ARG,        /* a caller passed an argument outside the documented contract */
    TP_ERR_END,                /* not a failure: an iterator has no more items */
    TP_ERR_AGAIN,              /* not a failure: backpressure, try again after draining (like EAGAIN) */
    TP_ERR_TRUNCATED,          /* input ended inside a varint, a frame or a field */
    TP_ERR_VARINT_OVERFLOW,    /* a varint longer than 10 bytes or above 2^64-1 */
    TP_ERR_RECORD_TOO_LARGE,   /* a length prefix above the configured maximum record size */
    TP_ERR_PACK_TOO_LARGE,     /* a (decompressed) pack above the configured maximum pack size */
    TP_ERR_CHECKSUM,           /* the zstd frame's checksum does not match its content */
    TP_ERR_UNKNOWN_CODEC,      /* the codec named by the metadata is not one we know */
    TP_ERR_UNKNOWN_VERSION,    /* the format version or layout is not one this reader knows */
    TP_ERR_TRAILING_GARBAGE,   /* bytes after the end of the last frame/record */
    TP_ERR_CORRUPT,            /* malformed data that fits none of the finer categories */
    TP_ERR_DECODE,             /* a record is not a valid VehicleRecord protobuf message */
    TP_ERR_COUNT_MISMATCH,     /* the metadata's record count differs from the records in the pack */
    TP_ERR_COMPRESS,           /* zstd failed to compress (out of memory inside zstd, bad level) */
    TP_ERR_PARSE,              /* textual input (NDJSON, URL, option value) could not be parsed */
    TP_ERR_IO,                 /* a read, write, socket or file operation failed; see errno where relevant */
    TP_ERR_KAFKA,              /* librdkafka reported an error */
    TP_ERR_WAREHOUSE,          /* the warehouse refused or failed a request */
    TP_ERR_UNAVAILABLE,        /* a remote service is unreachable right now; retrying may succeed */
    TP_ERR_FULL,               /* a fixed-capacity buffer or batch is full */
    TP_ERR_REJECTED,           /* the warehouse refused data (rows or a batch) as invalid: set it aside, go on */
    TP_ERR_UNKNOWN_DICT,       /* a pack needs a zstd dictionary the reader has not loaded */
    TP_ERR__COUNT              /* not an error: number of values, for tables and tests */
} tp_err;

/* A short English description of err ("truncated input"), never NULL; unknown values give "unknown error".
 * Thread-safe: returns a pointer to a static string. */
TP_API const char *tp_strerror(tp_err err);

#ifdef __cplusplus
}
#endif
#endif
