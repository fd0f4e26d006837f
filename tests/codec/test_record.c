/* The hand-written record codec against protobuf-c's generated code: byte-identical encoding, decoding both ways,
 * unknown fields of every wire type, and every decode error. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "codec/record_codec.h"
#include "telepack/record.h"
#include "telepack/varint.h"
#include "vehicle.pb-c.h"

static uint64_t rng = 0x2545f4914f6cdd1du;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double pick_double(void)
{
    switch (next_u64() % 8) {
    case 0: return 0.0;
    case 1: return -0.0;
    case 2: return NAN;
    case 3: return INFINITY;
    case 4: return -180.0 + (double)(next_u64() % 360000000) * 1e-6;
    default: {
        uint64_t bits = next_u64();
        double d;
        memcpy(&d, &bits, 8);
        return d;
    }
    }
}

static float pick_float(void)
{
    switch (next_u64() % 6) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return NAN;
    case 3: return (float)(next_u64() % 36000) / 100.0f;
    default: {
        uint32_t bits = (uint32_t)next_u64();
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    }
}

static uint64_t pick_u64(void)
{
    switch (next_u64() % 4) {
    case 0: return 0;
    case 1: return next_u64() % 200;
    default: return next_u64() >> (next_u64() % 64);
    }
}

static void random_record(tp_record *r)
{
    r->vehicle_id = pick_u64();
    r->sampled_at_ms = (int64_t)pick_u64();
    r->seq = pick_u64();
    r->latitude = pick_double();
    r->longitude = pick_double();
    r->speed_kmh = pick_float();
    r->heading_deg = pick_float();
    r->accuracy_m = pick_float();
    r->meter_status = (int32_t)(next_u64() % 3 == 0 ? (uint32_t)next_u64() : (uint32_t)(next_u64() % 6));
}

/* What survives a trip through the wire: the values protobuf-c omits (== 0, so also -0.0) come back as +0.0. */
static void wire_normalise(tp_record *r)
{
    if (r->latitude == 0) r->latitude = 0.0;
    if (r->longitude == 0) r->longitude = 0.0;
    if (r->speed_kmh == 0) r->speed_kmh = 0.0f;
    if (r->heading_deg == 0) r->heading_deg = 0.0f;
    if (r->accuracy_m == 0) r->accuracy_m = 0.0f;
}

/* Bitwise comparison, so NaN equals NaN and -0.0 differs from +0.0. */
static int same_record(const tp_record *a, const tp_record *b)
{
    return a->vehicle_id == b->vehicle_id && a->sampled_at_ms == b->sampled_at_ms && a->seq == b->seq &&
           !memcmp(&a->latitude, &b->latitude, 8) && !memcmp(&a->longitude, &b->longitude, 8) &&
           !memcmp(&a->speed_kmh, &b->speed_kmh, 4) && !memcmp(&a->heading_deg, &b->heading_deg, 4) &&
           !memcmp(&a->accuracy_m, &b->accuracy_m, 4) && a->meter_status == b->meter_status;
}

static void to_pbc(const tp_record *r, Telepack__V1__VehicleRecord *m)
{
    telepack__v1__vehicle_record__init(m);
    m->vehicle_id = r->vehicle_id;
    m->sampled_at_ms = r->sampled_at_ms;
    m->seq = r->seq;
    m->latitude = r->latitude;
    m->longitude = r->longitude;
    m->speed_kmh = r->speed_kmh;
    m->heading_deg = r->heading_deg;
    m->accuracy_m = r->accuracy_m;
    m->meter_status = (Telepack__V1__MeterStatus)r->meter_status;
}

static void from_pbc(const Telepack__V1__VehicleRecord *m, tp_record *r)
{
    r->vehicle_id = m->vehicle_id;
    r->sampled_at_ms = m->sampled_at_ms;
    r->seq = m->seq;
    r->latitude = m->latitude;
    r->longitude = m->longitude;
    r->speed_kmh = m->speed_kmh;
    r->heading_deg = m->heading_deg;
    r->accuracy_m = m->accuracy_m;
    r->meter_status = (int32_t)m->meter_status;
}

/* Ours and protobuf-c produce the same bytes, and each decodes the other's. */
static void cross_check(const tp_record *in)
{
    uint8_t ours[TP_RECORD_MAX_ENCODED], theirs[256];
    size_t n = 0;
    CHECK_ERR(tp_record_encode(in, ours, sizeof ours, &n), TP_OK);
    Telepack__V1__VehicleRecord m;
    to_pbc(in, &m);
    size_t tn = telepack__v1__vehicle_record__get_packed_size(&m);
    CHECK(tn <= sizeof theirs);
    telepack__v1__vehicle_record__pack(&m, theirs);
    CHECK_INT(n, tn);
    CHECK(n == tn && memcmp(ours, theirs, n) == 0);
    CHECK_INT(tp_record_encoded_len(in), n); /* the size alone, as the column pack writer bounds packs with it */

    tp_record want = *in, got;
    wire_normalise(&want);
    CHECK_ERR(tp_record_decode(theirs, tn, &got), TP_OK);
    CHECK(same_record(&got, &want));

    Telepack__V1__VehicleRecord *u = telepack__v1__vehicle_record__unpack(NULL, n, ours);
    CHECK(u != NULL);
    if (u) {
        from_pbc(u, &got);
        CHECK(same_record(&got, &want));
        telepack__v1__vehicle_record__free_unpacked(u, NULL);
    }
}

static size_t put_tag(uint8_t *p, uint64_t field, unsigned wire)
{
    return tp_varint_encode(field << 3 | wire, p);
}

/* Unknown fields of each wire type, before, between and after known ones: ours skips them, protobuf-c agrees. */
static void unknown_fields(void)
{
    tp_record in = {.vehicle_id = 4711, .sampled_at_ms = 1700000000123, .seq = 99, .latitude = 52.520008,
                    .longitude = 13.404954, .speed_kmh = 42.5f, .heading_deg = 271.25f, .accuracy_m = 3.5f,
                    .meter_status = TP_METER_HIRED};
    uint8_t rec[TP_RECORD_MAX_ENCODED];
    size_t n;
    CHECK_ERR(tp_record_encode(&in, rec, sizeof rec, &n), TP_OK);

    uint8_t buf[512];
    size_t len = 0;
    len += put_tag(buf + len, 10, 0); /* varint, 10 bytes */
    len += tp_varint_encode(UINT64_MAX, buf + len);
    len += put_tag(buf + len, 11, 1); /* fixed64 */
    memset(buf + len, 0xab, 8);
    len += 8;
    memcpy(buf + len, rec, n); /* all known fields */
    len += n;
    len += put_tag(buf + len, 12, 2); /* length-delimited, 200 bytes: a two-byte length */
    len += tp_varint_encode(200, buf + len);
    memset(buf + len, 0x5a, 200);
    len += 200;
    len += put_tag(buf + len, 13, 5); /* fixed32 */
    memset(buf + len, 0xcd, 4);
    len += 4;
    len += put_tag(buf + len, 536870911, 0); /* the largest field number, five-byte tag */
    buf[len++] = 0x01;
    len += put_tag(buf + len, 14, 2); /* empty length-delimited */
    buf[len++] = 0x00;

    tp_record got;
    CHECK_ERR(tp_record_decode(buf, len, &got), TP_OK);
    CHECK(same_record(&got, &in));
    Telepack__V1__VehicleRecord *u = telepack__v1__vehicle_record__unpack(NULL, len, buf);
    CHECK(u != NULL);
    if (u) {
        tp_record theirs;
        from_pbc(u, &theirs);
        CHECK(same_record(&theirs, &in));
        telepack__v1__vehicle_record__free_unpacked(u, NULL);
    }

    /* A field repeated: the last value wins (protobuf's rule for singular scalars), also with a non-minimal tag. */
    uint8_t rep[] = {0x08, 0x01, 0x08, 0x02, 0x88, 0x00, 0x03};
    CHECK_ERR(tp_record_decode(rep, sizeof rep, &got), TP_OK);
    CHECK(got.vehicle_id == 3);
    u = telepack__v1__vehicle_record__unpack(NULL, sizeof rep, rep);
    CHECK(u != NULL && u->vehicle_id == 3);
    if (u)
        telepack__v1__vehicle_record__free_unpacked(u, NULL);

    /* Fields out of field-number order, a gap, an unknown field between known ones and a repeat after the in-order
     * run (the decoder's fast path takes fields 1..9 in order, its loop the rest): the values are the same. */
    uint8_t odd[] = {0x10, 0x05,                                           /* sampled_at 5, before field 1 */
                     0x08, 0x07,                                           /* vehicle 7 */
                     0x35, 0x00, 0x00, 0x80, 0x3f,                         /* speed 1.0, fields 3..5 absent */
                     0x50, 0x09,                                           /* field 10, unknown */
                     0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f, /* latitude 1.0 after speed */
                     0x48, 0x02,                                           /* meter status 2 */
                     0x08, 0x08};                                          /* vehicle again: 8 wins */
    CHECK_ERR(tp_record_decode(odd, sizeof odd, &got), TP_OK);
    CHECK(got.vehicle_id == 8 && got.sampled_at_ms == 5 && got.seq == 0 && got.latitude == 1.0 &&
          got.longitude == 0 && got.speed_kmh == 1.0f && got.meter_status == 2);
    u = telepack__v1__vehicle_record__unpack(NULL, sizeof odd, odd);
    CHECK(u != NULL && u->vehicle_id == 8 && u->sampled_at_ms == 5 && u->latitude == 1.0 && u->speed_kmh == 1.0f);
    if (u)
        telepack__v1__vehicle_record__free_unpacked(u, NULL);
}

static void decode_errors(void)
{
    tp_record got;
    /* Empty message: every field zero. */
    memset(&got, 0xff, sizeof got);
    CHECK_ERR(tp_record_decode((const uint8_t *)"", 0, &got), TP_OK);
    CHECK(got.vehicle_id == 0 && got.latitude == 0 && got.meter_status == 0);

    const uint8_t field0[] = {0x00, 0x01};
    CHECK_ERR(tp_record_decode(field0, sizeof field0, &got), TP_ERR_DECODE);
    const uint8_t group_start[] = {0x53}; /* field 10, wire type 3 */
    CHECK_ERR(tp_record_decode(group_start, sizeof group_start, &got), TP_ERR_DECODE);
    const uint8_t group_end[] = {0x54}; /* field 10, wire type 4 */
    CHECK_ERR(tp_record_decode(group_end, sizeof group_end, &got), TP_ERR_DECODE);
    const uint8_t wire6[] = {0x56, 0x00};
    CHECK_ERR(tp_record_decode(wire6, sizeof wire6, &got), TP_ERR_DECODE);
    const uint8_t wire7[] = {0x57, 0x00};
    CHECK_ERR(tp_record_decode(wire7, sizeof wire7, &got), TP_ERR_DECODE);
    const uint8_t known_wrong_wire[] = {0x0a, 0x01, 0x00}; /* vehicle_id as length-delimited */
    CHECK_ERR(tp_record_decode(known_wrong_wire, sizeof known_wrong_wire, &got), TP_ERR_DECODE);
    const uint8_t lat_as_varint[] = {0x20, 0x01}; /* latitude as varint */
    CHECK_ERR(tp_record_decode(lat_as_varint, sizeof lat_as_varint, &got), TP_ERR_DECODE);
    const uint8_t huge_field[] = {0x80, 0x80, 0x80, 0x80, 0x20, 0x00}; /* field number 2^32, above 2^29-1 */
    CHECK_ERR(tp_record_decode(huge_field, sizeof huge_field, &got), TP_ERR_DECODE);

    const uint8_t long_tag[] = {0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01}; /* field 1 in a 6-byte tag */
    CHECK_ERR(tp_record_decode(long_tag, sizeof long_tag, &got), TP_ERR_DECODE);
    CHECK(telepack__v1__vehicle_record__unpack(NULL, sizeof long_tag, long_tag) == NULL);
    const uint8_t five_byte_tag[] = {0x88, 0x80, 0x80, 0x80, 0x00, 0x01}; /* the longest a tag may be */
    CHECK_ERR(tp_record_decode(five_byte_tag, sizeof five_byte_tag, &got), TP_OK);
    CHECK(got.vehicle_id == 1);
    const uint8_t long_len[] = {0x7a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}; /* field 15, length 0 in 6 bytes */
    CHECK_ERR(tp_record_decode(long_len, sizeof long_len, &got), TP_ERR_DECODE);
    CHECK(telepack__v1__vehicle_record__unpack(NULL, sizeof long_len, long_len) == NULL);
    const uint8_t five_byte_len[] = {0x7a, 0x80, 0x80, 0x80, 0x80, 0x00};
    CHECK_ERR(tp_record_decode(five_byte_len, sizeof five_byte_len, &got), TP_OK);
    const uint8_t lat_short[] = {0x21, 0x00, 0x00, 0x00};
    CHECK_ERR(tp_record_decode(lat_short, sizeof lat_short, &got), TP_ERR_TRUNCATED);
    const uint8_t speed_short[] = {0x35, 0x00, 0x00};
    CHECK_ERR(tp_record_decode(speed_short, sizeof speed_short, &got), TP_ERR_TRUNCATED);
    const uint8_t varint_short[] = {0x08, 0x80, 0x80};
    CHECK_ERR(tp_record_decode(varint_short, sizeof varint_short, &got), TP_ERR_TRUNCATED);
    const uint8_t tag_short[] = {0x80};
    CHECK_ERR(tp_record_decode(tag_short, sizeof tag_short, &got), TP_ERR_TRUNCATED);
    const uint8_t len_past_end[] = {0x62, 0x05, 0x00, 0x00}; /* field 12, 5 bytes claimed, 2 present */
    CHECK_ERR(tp_record_decode(len_past_end, sizeof len_past_end, &got), TP_ERR_TRUNCATED);
    const uint8_t len_huge[] = {0x62, 0xff, 0xff, 0xff, 0xff, 0x0f}; /* 2^32-1 bytes claimed */
    CHECK_ERR(tp_record_decode(len_huge, sizeof len_huge, &got), TP_ERR_TRUNCATED);
    const uint8_t unk_fixed64_short[] = {0x59, 0x00};
    CHECK_ERR(tp_record_decode(unk_fixed64_short, sizeof unk_fixed64_short, &got), TP_ERR_TRUNCATED);
    const uint8_t unk_fixed32_short[] = {0x6d, 0x00};
    CHECK_ERR(tp_record_decode(unk_fixed32_short, sizeof unk_fixed32_short, &got), TP_ERR_TRUNCATED);
    const uint8_t overflow[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    CHECK_ERR(tp_record_decode(overflow, sizeof overflow, &got), TP_ERR_VARINT_OVERFLOW);
    const uint8_t overflow_tag[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    CHECK_ERR(tp_record_decode(overflow_tag, sizeof overflow_tag, &got), TP_ERR_VARINT_OVERFLOW);
    CHECK_ERR(tp_record_decode(NULL, 1, &got), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_record_decode(field0, 1, NULL), TP_ERR_INVALID_ARG);

    /* Every prefix of a full record, copied to the heap so ASan sees an overread: truncated or (at a field
     * boundary) fewer fields, never anything else. */
    tp_record full = {.vehicle_id = UINT64_MAX, .sampled_at_ms = -1, .seq = UINT64_MAX, .latitude = 1.5, .longitude = -2.5,
                      .speed_kmh = 1.0f, .heading_deg = 2.0f, .accuracy_m = 3.0f, .meter_status = -7};
    uint8_t enc[TP_RECORD_MAX_ENCODED];
    size_t n;
    CHECK_ERR(tp_record_encode(&full, enc, sizeof enc, &n), TP_OK);
    CHECK_INT(n, 77); /* the longest encoding: every varint 10 bytes */
    int truncated = 0, ok = 0;
    for (size_t k = 0; k < n; k++) {
        uint8_t *heap = malloc(k ? k : 1);
        memcpy(heap, enc, k);
        tp_err e = tp_record_decode(heap, k, &got);
        CHECK(e == TP_OK || e == TP_ERR_TRUNCATED);
        truncated += e == TP_ERR_TRUNCATED;
        ok += e == TP_OK;
        free(heap);
    }
    CHECK_INT(ok, 9); /* the empty prefix and the boundaries after fields 1..8 */
    CHECK_INT(truncated, 68);
}

static void encode_cases(void)
{
    tp_record zero = {0};
    uint8_t buf[TP_RECORD_MAX_ENCODED];
    size_t n = 99;
    CHECK_ERR(tp_record_encode(&zero, buf, sizeof buf, &n), TP_OK);
    CHECK_INT(n, 0);

    /* Worked example of docs/FORMAT.md. */
    tp_record r = {.vehicle_id = 1001, .sampled_at_ms = 1700000000000, .seq = 7, .latitude = 52.520008,
                   .longitude = 13.404954, .speed_kmh = 36.5f, .heading_deg = 90.0f, .accuracy_m = 4.0f,
                   .meter_status = TP_METER_VACANT};
    CHECK_ERR(tp_record_encode(&r, buf, sizeof buf, &n), TP_OK);
    static const uint8_t want[] = {0x08, 0xe9, 0x07, 0x10, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x18, 0x07,
                                   0x21, 0x45, 0xd4, 0x44, 0x9f, 0x8f, 0x42, 0x4a, 0x40, 0x29, 0xce, 0xc4,
                                   0x74, 0x21, 0x56, 0xcf, 0x2a, 0x40, 0x35, 0x00, 0x00, 0x12, 0x42, 0x3d,
                                   0x00, 0x00, 0xb4, 0x42, 0x45, 0x00, 0x00, 0x80, 0x40, 0x48, 0x01};
    CHECK_INT(n, sizeof want);
    CHECK(n == sizeof want && memcmp(buf, want, n) == 0);
    if (n != sizeof want || memcmp(buf, want, n)) {
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "%02x ", buf[i]);
        fprintf(stderr, "\n");
    }

    /* cap too small: TP_ERR_FULL and nothing written past cap; exactly enough: OK. */
    uint8_t small[64];
    memset(small, 0xee, sizeof small);
    CHECK_ERR(tp_record_encode(&r, small, n - 1, &n), TP_ERR_FULL);
    CHECK(small[sizeof want - 1] == 0xee);
    size_t m;
    CHECK_ERR(tp_record_encode(&r, small, sizeof want, &m), TP_OK);
    CHECK(m == sizeof want && memcmp(small, want, m) == 0);
    CHECK_ERR(tp_record_encode(NULL, buf, sizeof buf, &n), TP_ERR_INVALID_ARG);

    /* protobuf-c's proto3 omission for floating point is `== 0`: -0.0 is omitted, NaN is written. */
    tp_record negz = {.latitude = -0.0, .speed_kmh = -0.0f};
    CHECK_ERR(tp_record_encode(&negz, buf, sizeof buf, &n), TP_OK);
    CHECK_INT(n, 0);
    cross_check(&negz);
    tp_record nan = {.latitude = NAN, .accuracy_m = NAN};
    CHECK_ERR(tp_record_encode(&nan, buf, sizeof buf, &n), TP_OK);
    CHECK_INT(n, 14);
    cross_check(&nan);
    /* Negative enum values are sign-extended to 10 bytes, as protobuf-c does. */
    tp_record neg = {.meter_status = -1, .sampled_at_ms = -1};
    CHECK_ERR(tp_record_encode(&neg, buf, sizeof buf, &n), TP_OK);
    CHECK_INT(n, 22);
    cross_check(&neg);
    tp_record newer = {.meter_status = 77};
    cross_check(&newer);
}

int main(void)
{
    encode_cases();
    decode_errors();
    unknown_fields();
    for (int i = 0; i < 20000; i++) {
        tp_record r;
        random_record(&r);
        int before = check_failures;
        cross_check(&r);
        if (check_failures != before) {
            fprintf(stderr, "random record %d differs\n", i);
            break;
        }
    }
    return check_exit();
}
