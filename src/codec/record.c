/* VehicleRecord's protobuf wire form, hand-written: encode byte-identical to protobuf-c, decode in one pass.
 *
 *   field  name           type    tag byte   wire
 *   1      vehicle_id     uint64  0x08       varint
 *   2      sampled_at_ms  int64   0x10       varint (negative = 10 bytes, two's complement)
 *   3      seq            uint64  0x18       varint
 *   4      latitude       double  0x21       fixed64, little-endian IEEE 754
 *   5      longitude      double  0x29       fixed64
 *   6      speed_kmh      float   0x35       fixed32, little-endian IEEE 754
 *   7      heading_deg    float   0x3d       fixed32
 *   8      accuracy_m     float   0x45       fixed32
 *   9      meter_status   enum    0x48       varint (int32; negative = 10 bytes, sign-extended)
 *
 * proto3 omission, as protobuf-c 1.4.1 does it (field_is_zeroish): integers are omitted when 0; floats and doubles
 * when they compare equal to 0 with C's ==, so -0.0 is omitted too (it decodes as +0.0) while NaN is written. */
#include <string.h>

#include "codec/record_codec.h"
#include "telepack/varint.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "record.c copies IEEE 754 values as little-endian bytes; add byte swapping for this target"
#endif

static inline uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Bytes of a varint (1..10) from its bit length, without a loop or a table: ceil(bits / 7), bits >= 1. */
static inline size_t varint_len(uint64_t v)
{
    unsigned bits = 64u - (unsigned)__builtin_clzll(v | 1);
    return (bits * 9 + 64) >> 6;
}

size_t tp_record_encoded_len(const tp_record *r)
{
    size_t n = 0;
    n += r->vehicle_id ? 1 + varint_len(r->vehicle_id) : 0;
    n += r->sampled_at_ms ? 1 + varint_len((uint64_t)r->sampled_at_ms) : 0;
    n += r->seq ? 1 + varint_len(r->seq) : 0;
    n += r->latitude != 0 ? 9 : 0;
    n += r->longitude != 0 ? 9 : 0;
    n += r->speed_kmh != 0 ? 5 : 0;
    n += r->heading_deg != 0 ? 5 : 0;
    n += r->accuracy_m != 0 ? 5 : 0;
    n += r->meter_status ? 1 + varint_len((uint64_t)(int64_t)r->meter_status) : 0;
    return n;
}

size_t tp_record_encode_unchecked(const tp_record *r, uint8_t *dst)
{
    uint8_t *p = dst;
    if (r->vehicle_id) {
        *p++ = 0x08;
        p = put_varint(p, r->vehicle_id);
    }
    if (r->sampled_at_ms) {
        *p++ = 0x10;
        p = put_varint(p, (uint64_t)r->sampled_at_ms);
    }
    if (r->seq) {
        *p++ = 0x18;
        p = put_varint(p, r->seq);
    }
    if (r->latitude != 0) {
        *p++ = 0x21;
        memcpy(p, &r->latitude, 8);
        p += 8;
    }
    if (r->longitude != 0) {
        *p++ = 0x29;
        memcpy(p, &r->longitude, 8);
        p += 8;
    }
    if (r->speed_kmh != 0) {
        *p++ = 0x35;
        memcpy(p, &r->speed_kmh, 4);
        p += 4;
    }
    if (r->heading_deg != 0) {
        *p++ = 0x3d;
        memcpy(p, &r->heading_deg, 4);
        p += 4;
    }
    if (r->accuracy_m != 0) {
        *p++ = 0x45;
        memcpy(p, &r->accuracy_m, 4);
        p += 4;
    }
    if (r->meter_status) {
        *p++ = 0x48;
        p = put_varint(p, (uint64_t)(int64_t)r->meter_status); /* int32: sign-extend, as protobuf does */
    }
    return (size_t)(p - dst);
}

tp_err tp_record_encode(const tp_record *r, uint8_t *dst, size_t cap, size_t *out_len)
{
    if (!r || !dst || !out_len)
        return TP_ERR_INVALID_ARG;
    if (cap >= TP_RECORD_MAX_ENCODED) {
        *out_len = tp_record_encode_unchecked(r, dst);
        return TP_OK;
    }
    uint8_t tmp[TP_RECORD_MAX_ENCODED];
    size_t n = tp_record_encode_unchecked(r, tmp);
    if (n > cap)
        return TP_ERR_FULL;
    memcpy(dst, tmp, n);
    *out_len = n;
    return TP_OK;
}

/* Bounded varint read; the common one-byte case first. */
static inline tp_err get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (p >= end)
        return TP_ERR_TRUNCATED;
    if (*p < 0x80) {
        *out = *p;
        *pp = p + 1;
        return TP_OK;
    }
    if (end - p >= TP_VARINT_MAX_BYTES) { /* no bounds check per byte */
        uint64_t v = *p & 0x7f;
        for (int i = 1; i < TP_VARINT_MAX_BYTES; i++) {
            uint8_t b = p[i];
            if (i == TP_VARINT_MAX_BYTES - 1 && b > 1)
                return TP_ERR_VARINT_OVERFLOW;
            v |= (uint64_t)(b & 0x7f) << (7 * i);
            if (b < 0x80) {
                *out = v;
                *pp = p + i + 1;
                return TP_OK;
            }
        }
        return TP_ERR_VARINT_OVERFLOW;
    }
    size_t used;
    tp_err e = tp_varint_decode(p, (size_t)(end - p), out, &used);
    if (e)
        return e;
    *pp = p + used;
    return TP_OK;
}

/* Skips the value of an unknown field, or rejects a known field number carrying the wrong wire type. */
static tp_err skip_field(const uint8_t **pp, const uint8_t *end, uint64_t tag)
{
    uint64_t field = tag >> 3, v;
    unsigned wire = (unsigned)(tag & 7);
    if (field == 0 || field > 0x1fffffff)
        return TP_ERR_DECODE;
    if (field <= 9)
        return TP_ERR_DECODE; /* a field we know, with a wire type it never has */
    switch (wire) {
    case 0:
        return get_varint(pp, end, &v);
    case 1:
        if (end - *pp < 8)
            return TP_ERR_TRUNCATED;
        *pp += 8;
        return TP_OK;
    case 2: {
        const uint8_t *start = *pp;
        tp_err e = get_varint(pp, end, &v);
        if (e)
            return e;
        if (*pp - start > 5)
            return TP_ERR_DECODE; /* a length is a 32-bit varint: at most 5 bytes, as protobuf-c requires */
        if (v > (uint64_t)(end - *pp))
            return TP_ERR_TRUNCATED;
        *pp += v;
        return TP_OK;
    }
    case 5:
        if (end - *pp < 4)
            return TP_ERR_TRUNCATED;
        *pp += 4;
        return TP_OK;
    default: /* 3, 4: groups (deprecated, not in proto3); 6, 7: not wire types */
        return TP_ERR_DECODE;
    }
}

tp_err tp_record_decode(const uint8_t *src, size_t len, tp_record *out)
{
    if ((!src && len) || !out)
        return TP_ERR_INVALID_ARG;
    /* Fields go straight to *out: building a local struct and copying it whole stalls on store-to-load
     * forwarding (narrow stores, wide loads), which measured as a quarter of the decode time. */
    tp_record *r = out;
    memset(r, 0, sizeof *r);
    const uint8_t *p = src, *end = src + len;
    tp_err e;
    uint64_t v;
    /* Fast path: the fields in field-number order, as every encoder writes them, straight through without the
     * tag switch (any field may be absent); the loop below takes whatever follows (unknown fields, repeats: the
     * last value wins as before), so the result and the errors are the loop's. */
#define FIXED_FIELD(TAG, DST, W)                                                                                       \
    if (p < end && *p == (TAG)) {                                                                                      \
        if (end - p - 1 < (W))                                                                                         \
            return TP_ERR_TRUNCATED;                                                                                   \
        memcpy(&(DST), p + 1, (W));                                                                                    \
        p += 1 + (W);                                                                                                  \
    }
    if (p < end && *p == 0x08) {
        p++;
        if ((e = get_varint(&p, end, &r->vehicle_id)))
            return e;
    }
    if (p < end && *p == 0x10) {
        p++;
        if ((e = get_varint(&p, end, &v)))
            return e;
        r->sampled_at_ms = (int64_t)v;
    }
    if (p < end && *p == 0x18) {
        p++;
        if ((e = get_varint(&p, end, &r->seq)))
            return e;
    }
    FIXED_FIELD(0x21, r->latitude, 8)
    FIXED_FIELD(0x29, r->longitude, 8)
    FIXED_FIELD(0x35, r->speed_kmh, 4)
    FIXED_FIELD(0x3d, r->heading_deg, 4)
    FIXED_FIELD(0x45, r->accuracy_m, 4)
#undef FIXED_FIELD
    if (p < end && *p == 0x48) {
        p++;
        if ((e = get_varint(&p, end, &v)))
            return e;
        r->meter_status = (int32_t)(uint32_t)v;
    }
    while (p < end) {
        uint64_t tag;
        if (*p < 0x80) {
            tag = *p++;
        } else {
            const uint8_t *start = p;
            if ((e = get_varint(&p, end, &tag)))
                return e;
            if (p - start > 5)
                return TP_ERR_DECODE; /* a tag is a 32-bit varint: at most 5 bytes, as protobuf-c requires */
        }
        switch (tag) {
        case 0x08:
            if ((e = get_varint(&p, end, &r->vehicle_id)))
                return e;
            break;
        case 0x10:
            if ((e = get_varint(&p, end, &v)))
                return e;
            r->sampled_at_ms = (int64_t)v;
            break;
        case 0x18:
            if ((e = get_varint(&p, end, &r->seq)))
                return e;
            break;
        case 0x21:
            if (end - p < 8)
                return TP_ERR_TRUNCATED;
            memcpy(&r->latitude, p, 8);
            p += 8;
            break;
        case 0x29:
            if (end - p < 8)
                return TP_ERR_TRUNCATED;
            memcpy(&r->longitude, p, 8);
            p += 8;
            break;
        case 0x35:
            if (end - p < 4)
                return TP_ERR_TRUNCATED;
            memcpy(&r->speed_kmh, p, 4);
            p += 4;
            break;
        case 0x3d:
            if (end - p < 4)
                return TP_ERR_TRUNCATED;
            memcpy(&r->heading_deg, p, 4);
            p += 4;
            break;
        case 0x45:
            if (end - p < 4)
                return TP_ERR_TRUNCATED;
            memcpy(&r->accuracy_m, p, 4);
            p += 4;
            break;
        case 0x48:
            if ((e = get_varint(&p, end, &v)))
                return e;
            r->meter_status = (int32_t)(uint32_t)v; /* int32 on the wire: the low 32 bits */
            break;
        default:
            if ((e = skip_field(&p, end, tag)))
                return e;
            break;
        }
    }
    return TP_OK;
}
