/* Protobuf base-128 varints (little-endian groups of 7 bits, high bit = "more follows"), capped at 10 bytes. */
#ifndef TELEPACK_VARINT_H
#define TELEPACK_VARINT_H

#include <stddef.h>
#include <stdint.h>

#include "telepack/api.h"
#include "telepack/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest varint: 64 bits in groups of 7. */
#define TP_VARINT_MAX_BYTES 10

/* Writes v as a minimal varint to dst (room for TP_VARINT_MAX_BYTES) and returns its length, 1..10.
 * Thread-safe (no state). */
TP_API size_t tp_varint_encode(uint64_t v, uint8_t dst[TP_VARINT_MAX_BYTES]);

/* Length tp_varint_encode would write for v, 1..10. */
TP_API size_t tp_varint_size(uint64_t v);

/* Reads one varint from src[0..avail) into *out and the bytes it took into *used (both untouched on error).
 * Non-minimal encodings (0x80 0x00) are accepted, as protobuf does. Errors: TP_ERR_TRUNCATED when avail ends
 * before the last byte; TP_ERR_VARINT_OVERFLOW when the varint runs past 10 bytes or its 10th byte is above 1
 * (value above 2^64-1). Never reads outside src[0..avail). Thread-safe (no state). */
TP_API tp_err tp_varint_decode(const uint8_t *src, size_t avail, uint64_t *out, size_t *used);

#ifdef __cplusplus
}
#endif
#endif
