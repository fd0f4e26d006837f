/* Fuzz target for the NDJSON record parser and line reader: any input must parse or fail cleanly, every record that
 * parses must survive write -> parse unchanged, and the fast path must agree with the jansson-only parser. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/record_json_full.h"
#include "telepack/record_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_bits(const void *a, const void *b, size_t n, int is_nan) { return is_nan || !memcmp(a, b, n); }

static int same_record(const tp_record *a, const tp_record *b)
{
    return a->vehicle_id == b->vehicle_id && a->sampled_at_ms == b->sampled_at_ms && a->seq == b->seq &&
           a->meter_status == b->meter_status &&
           same_bits(&a->latitude, &b->latitude, sizeof(double), isnan(a->latitude) && isnan(b->latitude)) &&
           same_bits(&a->longitude, &b->longitude, sizeof(double), isnan(a->longitude) && isnan(b->longitude)) &&
           same_bits(&a->speed_kmh, &b->speed_kmh, sizeof(float), isnan(a->speed_kmh) && isnan(b->speed_kmh)) &&
           same_bits(&a->heading_deg, &b->heading_deg, sizeof(float), isnan(a->heading_deg) && isnan(b->heading_deg)) &&
           same_bits(&a->accuracy_m, &b->accuracy_m, sizeof(float), isnan(a->accuracy_m) && isnan(b->accuracy_m));
}

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
    if (!same_record(r, &back))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The whole input as one record. */
    tp_record r;
    char msg[256];
    tp_err e = tp_record_json_parse((const char *)data, size, &r, msg, sizeof msg);
    if (e == TP_OK)
        check_round_trip(&r);
    else if (msg[0] == 0)
        abort(); /* every failure explains itself */
    /* The fast path and the jansson-only parser agree on every input. */
    tp_record full;
    tp_err ef = tp_record_json_parse_full((const char *)data, size, 0, &full, msg, sizeof msg);
    if (ef != e || (e == TP_OK && !same_record(&r, &full)))
        abort();
    /* Ignoring unknown keys only ever turns an error into a record, and fast and full agree there too. */
    tp_record ig, igf;
    tp_err ei = tp_record_json_parse_flags((const char *)data, size, TP_RECORD_JSON_IGNORE_UNKNOWN, &ig, msg,
                                           sizeof msg);
    tp_err eif = tp_record_json_parse_full((const char *)data, size, TP_RECORD_JSON_IGNORE_UNKNOWN, &igf, msg,
                                           sizeof msg);
    if (ei != eif || (ei == TP_OK && !same_record(&ig, &igf)) || (e == TP_OK && (ei != TP_OK || !same_record(&r, &ig))))
        abort();
    if (ei == TP_OK)
        check_round_trip(&ig);

    /* The input as NDJSON lines, with a small line limit so over-long lines are exercised too. */
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    tp_ndjson_reader *rd;
    if (tp_ndjson_reader_new(f, 256, &rd) == TP_OK) {
        tp_err le;
        while ((le = tp_ndjson_reader_next(rd, &r, msg, sizeof msg)) != TP_ERR_END) {
            if (le == TP_OK)
                check_round_trip(&r);
            else if (le != TP_ERR_PARSE)
                break;
        }
        if (tp_ndjson_reader_bytes(rd) > size)
            abort();
        tp_ndjson_reader_free(rd);
    }
    fclose(f);
    return 0;
}
