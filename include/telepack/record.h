/* The vehicle position record in memory, and its protobuf wire form (proto/telepack/v1/vehicle.proto). */
#ifndef TELEPACK_RECORD_H
#define TELEPACK_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "telepack/api.h"
#include "telepack/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Meter status, same numbers as telepack.v1.MeterStatus. Unknown numbers from a newer producer are kept as-is. */
typedef enum tp_meter_status {
    TP_METER_UNKNOWN = 0,
    TP_METER_VACANT = 1,
    TP_METER_HIRED = 2,
    TP_METER_PICKUP = 3,
    TP_METER_OUT_OF_SERVICE = 4,
} tp_meter_status;

/* One sample, telepack.v1.VehicleRecord as a plain struct. Units are those of the .proto comments.
 * Identity (the deduplication key downstream): (vehicle_id, sampled_at_ms, seq). */
typedef struct tp_record {
    uint64_t vehicle_id;
    int64_t sampled_at_ms; /* ms since the Unix epoch, UTC */
    uint64_t seq;
    double latitude;       /* degrees */
    double longitude;      /* degrees */
    float speed_kmh;
    float heading_deg;
    float accuracy_m;
    int32_t meter_status;  /* tp_meter_status, or a newer value */
} tp_record;

/* Upper bound of tp_record_encode's output for any record: 9 fields, each tag + at most 10 bytes. */
#define TP_RECORD_MAX_ENCODED 99

/* Encodes r as a protobuf VehicleRecord (proto3: fields equal to zero are omitted, fields in number order)
 * into dst[0..cap). On success *out_len is the number of bytes written. TP_ERR_FULL if cap is too small
 * (cap >= TP_RECORD_MAX_ENCODED always suffices). Byte-identical to protobuf-c's packing of the same values.
 * Thread-safe (no state). */
TP_API tp_err tp_record_encode(const tp_record *r, uint8_t *dst, size_t cap, size_t *out_len);

/* Decodes one protobuf VehicleRecord message occupying exactly src[0..len) into *out (fields absent from the
 * message are zero; on error *out holds garbage). Unknown fields of any wire type are skipped; a repeated scalar field keeps the last value,
 * as protobuf specifies. Errors: TP_ERR_TRUNCATED, TP_ERR_VARINT_OVERFLOW, TP_ERR_DECODE (bad wire type, field
 * number 0 or above 2^29-1, group wire types, a known field with the wrong wire type, a tag or length varint longer
 * than 5 bytes: whatever this accepts, protobuf-c accepts too). Never reads outside src[0..len).
 * Thread-safe (no state). */
TP_API tp_err tp_record_decode(const uint8_t *src, size_t len, tp_record *out);

#ifdef __cplusplus
}
#endif
#endif
