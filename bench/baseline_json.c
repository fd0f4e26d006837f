/* Baseline A for bench/e2e, the "before" of the production pipeline: one JSON object per Kafka message (no Kafka
 * compression unless -X compression.codec=...), a consumer that parses each message with jansson, keeps the valid
 * ones and inserts each poll round into ClickHouse as JSONEachRow. See bench/baseline.c for the modes. */
#include <jansson.h>
#include <string.h>

#include "baseline.h"
#include "telepack/record_json.h"

static size_t json_encode(const tp_record *r, uint8_t *dst, size_t cap)
{
    size_t len = 0;
    return tp_record_json_write(r, (char *)dst, cap, &len) ? 0 : len;
}

/* A typical validating consumer: parse, check the identity fields, forward the original text as one line. */
static int json_append(const uint8_t *payload, size_t len, bl_buf *body)
{
    json_error_t err;
    json_t *o = json_loadb((const char *)payload, len, 0, &err);
    if (!o)
        return -1;
    int ok = json_is_integer(json_object_get(o, "vehicle_id")) && json_is_integer(json_object_get(o, "sampled_at_ms"));
    json_decref(o);
    if (!ok)
        return -1;
    bl_buf_reserve(body, len + 1);
    memcpy(body->p + body->len, payload, len);
    body->len += len;
    body->p[body->len++] = '\n';
    return 0;
}

static const char *json_producer_defaults[] = {NULL};

int main(int argc, char **argv)
{
    static const bl_codec codec = {
        .name = "json",
        .insert_format = "JSONEachRow",
        .table_ddl = "(vehicle_id UInt64, sampled_at_ms Int64, seq UInt64, "
                     "latitude Float64, longitude Float64, speed_kmh Float32, heading_deg Float32, "
                     "accuracy_m Float32, meter_status Enum8('METER_STATUS_UNKNOWN' = 0, 'METER_STATUS_VACANT' = 1, "
                     "'METER_STATUS_HIRED' = 2, 'METER_STATUS_PICKUP' = 3, 'METER_STATUS_OUT_OF_SERVICE' = 4)) "
                     "ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(toDateTime(intDiv(sampled_at_ms, 1000))) "
                     "ORDER BY (vehicle_id, sampled_at_ms, seq)",
        .encode = json_encode,
        .append = json_append,
        .producer_defaults = json_producer_defaults,
    };
    return bl_main(&codec, argc, argv);
}
