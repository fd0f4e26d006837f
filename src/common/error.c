/* Descriptions for tp_err values (include/telepack/error.h). */
#include "telepack/error.h"

static const char *const descriptions[TP_ERR__COUNT] = {
    [TP_OK] = "success",
    [TP_ERR_NOMEM] = "out of memory",
    [TP_ERR_INVALID_ARG] = "invalid argument",
    [TP_ERR_END] = "end of input",
    [TP_ERR_AGAIN] = "resource temporarily full, try again",
    [TP_ERR_TRUNCATED] = "truncated input",
    [TP_ERR_VARINT_OVERFLOW] = "varint longer than 10 bytes or above 2^64-1",
    [TP_ERR_RECORD_TOO_LARGE] = "record length above the configured maximum",
    [TP_ERR_PACK_TOO_LARGE] = "pack size above the configured maximum",
    [TP_ERR_CHECKSUM] = "checksum mismatch",
    [TP_ERR_UNKNOWN_CODEC] = "unknown codec",
    [TP_ERR_UNKNOWN_VERSION] = "unknown format version or layout",
    [TP_ERR_TRAILING_GARBAGE] = "trailing bytes after the last frame",
    [TP_ERR_CORRUPT] = "corrupt data",
    [TP_ERR_DECODE] = "invalid protobuf record",
    [TP_ERR_COUNT_MISMATCH] = "record count differs from the pack metadata",
    [TP_ERR_COMPRESS] = "compression failed",
    [TP_ERR_PARSE] = "parse error",
    [TP_ERR_IO] = "I/O error",
    [TP_ERR_KAFKA] = "Kafka error",
    [TP_ERR_WAREHOUSE] = "warehouse error",
    [TP_ERR_UNAVAILABLE] = "service unavailable",
    [TP_ERR_FULL] = "buffer full",
    [TP_ERR_REJECTED] = "rejected by the warehouse as invalid data",
    [TP_ERR_UNKNOWN_DICT] = "zstd dictionary not loaded",
};

const char *tp_strerror(tp_err err)
{
    if ((unsigned)err >= TP_ERR__COUNT || !descriptions[err])
        return "unknown error";
    return descriptions[err];
}
