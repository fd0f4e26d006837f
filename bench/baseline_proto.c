/* Baseline B for bench/e2e, the obvious alternative: one protobuf record per Kafka message (protobuf-c), batched and
 * compressed by librdkafka itself (compression.codec=zstd, linger.ms=20, batch.size=1000000), a consumer that
 * unpacks each message with protobuf-c and inserts each poll round into ClickHouse as RowBinary. */
#include <string.h>

#include "baseline.h"
#include "vehicle.pb-c.h"

static size_t proto_encode(const tp_record *r, uint8_t *dst, size_t cap)
{
    Telepack__V1__VehicleRecord m = TELEPACK__V1__VEHICLE_RECORD__INIT;
    m.vehicle_id = r->vehicle_id;
    m.sampled_at_ms = r->sampled_at_ms;
    m.seq = r->seq;
    m.latitude = r->latitude;
    m.longitude = r->longitude;
    m.speed_kmh = r->speed_kmh;
    m.heading_deg = r->heading_deg;
    m.accuracy_m = r->accuracy_m;
    m.meter_status = (Telepack__V1__MeterStatus)r->meter_status;
    size_t n = telepack__v1__vehicle_record__get_packed_size(&m);
    return n <= cap ? telepack__v1__vehicle_record__pack(&m, dst) : 0;
}

#define PUT(p, v) (memcpy((p), &(v), sizeof(v)), (p) += sizeof(v)) /* little-endian host, as RowBinary */

/* protobuf-c unpack (its default allocator, as a typical consumer) and one 56-byte RowBinary row. */
static int proto_append(const uint8_t *payload, size_t len, bl_buf *body)
{
    Telepack__V1__VehicleRecord *m = telepack__v1__vehicle_record__unpack(NULL, len, payload);
    if (!m)
        return -1;
    bl_buf_reserve(body, 56);
    uint8_t *p = body->p + body->len;
    int32_t meter = (int32_t)m->meter_status;
    PUT(p, m->vehicle_id);
    PUT(p, m->sampled_at_ms);
    PUT(p, m->seq);
    PUT(p, m->latitude);
    PUT(p, m->longitude);
    PUT(p, m->speed_kmh);
    PUT(p, m->heading_deg);
    PUT(p, m->accuracy_m);
    PUT(p, meter);
    body->len = (size_t)(p - body->p);
    telepack__v1__vehicle_record__free_unpacked(m, NULL);
    return 0;
}

static const char *proto_producer_defaults[] = {
    "compression.codec", "zstd", "linger.ms", "20", "batch.size", "1000000", NULL,
};

int main(int argc, char **argv)
{
    static const bl_codec codec = {
        .name = "proto",
        .insert_format = "RowBinary",
        .table_ddl = "(vehicle_id UInt64, sampled_at_ms Int64, seq UInt64, "
                     "latitude Float64, longitude Float64, speed_kmh Float32, heading_deg Float32, "
                     "accuracy_m Float32, meter_status Int32) "
                     "ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(toDateTime(intDiv(sampled_at_ms, 1000))) "
                     "ORDER BY (vehicle_id, sampled_at_ms, seq)",
        .encode = proto_encode,
        .append = proto_append,
        .producer_defaults = proto_producer_defaults,
    };
    return bl_main(&codec, argc, argv);
}
