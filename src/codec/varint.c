/* Protobuf varints: encode, size and a bounded decode (include/telepack/varint.h). */
#include "telepack/varint.h"

size_t tp_varint_encode(uint64_t v, uint8_t dst[TP_VARINT_MAX_BYTES])
{
    size_t n = 0;
    while (v >= 0x80) {
        dst[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    dst[n++] = (uint8_t)v;
    return n;
}

size_t tp_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

tp_err tp_varint_decode(const uint8_t *src, size_t avail, uint64_t *out, size_t *used)
{
    uint64_t v = 0;
    size_t max = avail < TP_VARINT_MAX_BYTES ? avail : TP_VARINT_MAX_BYTES;
    for (size_t i = 0; i < max; i++) {
        uint8_t b = src[i];
        if (i == TP_VARINT_MAX_BYTES - 1 && b > 1)
            return TP_ERR_VARINT_OVERFLOW; /* bits 64 and up, or an 11th byte to come */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (b < 0x80) {
            *out = v;
            *used = i + 1;
            return TP_OK;
        }
    }
    return avail < TP_VARINT_MAX_BYTES ? TP_ERR_TRUNCATED : TP_ERR_VARINT_OVERFLOW;
}
