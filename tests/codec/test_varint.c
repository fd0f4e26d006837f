/* Varints: boundary values round trip with minimal lengths; truncation and overflow are errors, never overreads. */
#include <stdlib.h>

#include "check.h"
#include "telepack/varint.h"

static void roundtrip(uint64_t v, size_t want_len)
{
    uint8_t buf[TP_VARINT_MAX_BYTES];
    size_t n = tp_varint_encode(v, buf);
    CHECK_INT(n, want_len);
    CHECK_INT(tp_varint_size(v), want_len);
    uint64_t out = 0;
    size_t used = 0;
    CHECK_ERR(tp_varint_decode(buf, n, &out, &used), TP_OK);
    CHECK(out == v);
    CHECK_INT(used, n);
    /* Every proper prefix is truncated; the decoder reads only what it is given (ASan checks the heap copy). */
    for (size_t k = 0; k < n; k++) {
        uint8_t *heap = malloc(k ? k : 1);
        memcpy(heap, buf, k);
        CHECK_ERR(tp_varint_decode(heap, k, &out, &used), TP_ERR_TRUNCATED);
        free(heap);
    }
}

int main(void)
{
    roundtrip(0, 1);
    roundtrip(1, 1);
    roundtrip(127, 1);
    roundtrip(128, 2);
    roundtrip(16383, 2);
    roundtrip(16384, 3);
    for (int bits = 7; bits < 64; bits += 7) {
        roundtrip(((uint64_t)1 << bits) - 1, (size_t)bits / 7);
        roundtrip((uint64_t)1 << bits, (size_t)bits / 7 + 1);
    }
    roundtrip(UINT64_MAX, 10);
    roundtrip((uint64_t)INT64_MAX + 1, 10);

    /* Known encodings. */
    uint8_t buf[TP_VARINT_MAX_BYTES];
    CHECK_INT(tp_varint_encode(300, buf), 2);
    CHECK_INT(buf[0], 0xac);
    CHECK_INT(buf[1], 0x02);

    uint64_t out = 42;
    size_t used = 7;
    /* Non-minimal encodings decode, as protobuf allows. */
    const uint8_t nonmin[] = {0x80, 0x80, 0x00};
    CHECK_ERR(tp_varint_decode(nonmin, sizeof nonmin, &out, &used), TP_OK);
    CHECK(out == 0);
    CHECK_INT(used, 3);
    /* Trailing bytes after the varint are not consumed. */
    const uint8_t two[] = {0x05, 0x06};
    CHECK_ERR(tp_varint_decode(two, 2, &out, &used), TP_OK);
    CHECK(out == 5);
    CHECK_INT(used, 1);

    /* 10th byte above 1: value past 2^64-1. */
    const uint8_t big[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    out = 42;
    used = 7;
    CHECK_ERR(tp_varint_decode(big, sizeof big, &out, &used), TP_ERR_VARINT_OVERFLOW);
    CHECK(out == 42 && used == 7); /* untouched on error */
    /* 10th byte with the continuation bit: an 11th byte would follow. */
    const uint8_t eleven[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00};
    CHECK_ERR(tp_varint_decode(eleven, sizeof eleven, &out, &used), TP_ERR_VARINT_OVERFLOW);
    /* Ten continuation bytes exactly, avail = 10: overflow, not truncation. */
    CHECK_ERR(tp_varint_decode(eleven, 10, &out, &used), TP_ERR_VARINT_OVERFLOW);
    /* Nine continuation bytes and the end of input: truncation. */
    CHECK_ERR(tp_varint_decode(eleven, 9, &out, &used), TP_ERR_TRUNCATED);
    /* Empty input. */
    CHECK_ERR(tp_varint_decode(buf, 0, &out, &used), TP_ERR_TRUNCATED);
    /* 10th byte == 1 is the top bit of 2^63. */
    const uint8_t top[10] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    CHECK_ERR(tp_varint_decode(top, sizeof top, &out, &used), TP_OK);
    CHECK(out == (uint64_t)1 << 63);

    /* Random values round trip. */
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 10000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        uint64_t v = s >> (s & 63);
        size_t n = tp_varint_encode(v, buf);
        CHECK_ERR(tp_varint_decode(buf, n, &out, &used), TP_OK);
        if (out != v || used != n) {
            CHECK(out == v);
            break;
        }
    }
    return check_exit();
}
