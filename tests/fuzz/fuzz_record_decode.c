/* Fuzz target: the record decoder on hostile bytes. Whatever decodes must re-encode to bytes that decode to the
 * same values (with -0.0 read back as +0.0, as proto3 omits it), and must match protobuf-c's reading. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telepack/record.h"
#include "vehicle.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void normalise(tp_record *r)
{
    if (r->latitude == 0) r->latitude = 0.0;
    if (r->longitude == 0) r->longitude = 0.0;
    if (r->speed_kmh == 0) r->speed_kmh = 0.0f;
    if (r->heading_deg == 0) r->heading_deg = 0.0f;
    if (r->accuracy_m == 0) r->accuracy_m = 0.0f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan sees any overread */
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    tp_record a, b;
    if (tp_record_decode(copy, size, &a) == TP_OK) {
        uint8_t enc[TP_RECORD_MAX_ENCODED];
        size_t n;
        if (tp_record_encode(&a, enc, sizeof enc, &n) != TP_OK || n > 77)
            abort();
        if (tp_record_decode(enc, n, &b) != TP_OK)
            abort();
        /* protobuf-c reads what we read (the converse need not hold: we are stricter on varints and tags). */
        Telepack__V1__VehicleRecord *u = telepack__v1__vehicle_record__unpack(NULL, size, copy);
        if (!u)
            abort();
        tp_record c = {.vehicle_id = u->vehicle_id, .sampled_at_ms = u->sampled_at_ms, .seq = u->seq,
                       .latitude = u->latitude, .longitude = u->longitude, .speed_kmh = u->speed_kmh,
                       .heading_deg = u->heading_deg, .accuracy_m = u->accuracy_m,
                       .meter_status = (int32_t)u->meter_status};
        telepack__v1__vehicle_record__free_unpacked(u, NULL);
        if (memcmp(&a, &c, sizeof a) != 0)
            abort();
        normalise(&a);
        if (memcmp(&a, &b, sizeof a) != 0)
            abort();
        uint8_t again[TP_RECORD_MAX_ENCODED];
        size_t m;
        if (tp_record_encode(&b, again, sizeof again, &m) != TP_OK || m != n || memcmp(enc, again, n))
            abort(); /* canonical: encode(decode(encode(x))) == encode(x) */
    }
    free(copy);
    return 0;
}
