/* Fuzz target for the NDJSON record parser and line reader: any input must parse or fail cleanly, and every record
 * that parses must survive write -> parse unchanged. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telepack/record_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_bits(const void *a, const void *b, size_t n, int is_nan) { return is_nan || !memcmp(a, b, n); }

static void check_round_trip(const tp_record *r)
{
    char buf[TP_RECORD_JSON_MAX];
    size_t n;
    if (tp_record_json_write(r, buf, sizeof buf, &n) != TP_OK)
        abort();
    tp_record back;
    char msg[256];
    if (tp_record_json_parse(buf, n, &back, msg, sizeof msg) != TP_OK)
        abort();
    if (back.vehicle_id != r->vehicle_id || back.sampled_at_ms != r->sampled_at_ms || back.seq != r->seq ||
        back.meter_status != r->meter_status ||
        !same_bits(&back.latitude, &r->latitude, sizeof(double), isnan(r->latitude) && isnan(back.latitude)) ||
        !same_bits(&back.longitude, &r->longitude, sizeof(double), isnan(r->longitude) && isnan(back.longitude)) ||
        !same_bits(&back.speed_kmh, &r->speed_kmh, sizeof(float), isnan(r->speed_kmh) && isnan(back.speed_kmh)) ||
        !same_bits(&back.heading_deg, &r->heading_deg, sizeof(float),
                   isnan(r->heading_deg) && isnan(back.heading_deg)) ||
        !same_bits(&back.accuracy_m, &r->accuracy_m, sizeof(float), isnan(r->accuracy_m) && isnan(back.accuracy_m)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The whole input as one record. */
    tp_record r;
    char msg[256];
    if (tp_record_json_parse((const char *)data, size, &r, msg, sizeof msg) == TP_OK)
        check_round_trip(&r);
    else if (msg[0] == 0)
        abort(); /* every failure explains itself */

    /* The input as NDJSON lines, with a small line limit so over-long lines are exercised too. */
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    tp_ndjson_reader *rd;
    if (tp_ndjson_reader_new(f, 256, &rd) == TP_OK) {
        tp_err e;
        while ((e = tp_ndjson_reader_next(rd, &r, msg, sizeof msg)) != TP_ERR_END) {
            if (e == TP_OK)
                check_round_trip(&r);
            else if (e != TP_ERR_PARSE)
                break;
        }
        if (tp_ndjson_reader_bytes(rd) > size)
            abort();
        tp_ndjson_reader_free(rd);
    }
    fclose(f);
    return 0;
}
