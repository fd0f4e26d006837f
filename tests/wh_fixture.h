/* Row batches for the warehouse tests: deterministic rows whose every field differs from row to row, built on the
 * public tp_row_batch struct (columns allocated here, freed by wh_fixture_free). */
#ifndef TELEPACK_TESTS_WH_FIXTURE_H
#define TELEPACK_TESTS_WH_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>

#include "telepack/rows.h"

/* Row i of the reference data set; `salt` shifts the identities so two data sets do not overlap. */
static inline void wh_fixture_row(size_t i, uint64_t salt, tp_record *r)
{
    r->vehicle_id = 100000 + salt * 1000000 + i % 977;
    r->sampled_at_ms = INT64_C(1795000000000) + (int64_t)i * 1003; /* spans a few days for 100k+ rows */
    r->seq = i + salt * 100000000;
    /* Doubles that need all 53 bits: thirds and sevenths are not short decimals. */
    r->latitude = -45.0 + (double)i / 3.0e4 + 1.0 / 7.0;
    r->longitude = 100.0 + (double)(i % 1000) / 3.0 + 1e-13;
    r->speed_kmh = (float)(i % 1300) / 9.0f;
    r->heading_deg = (float)(i % 360) + 0.1f;
    r->accuracy_m = 1.0f / (float)(1 + i % 7);
    r->meter_status = (int32_t)(i % 5);
    if (i == 1) { /* edge values */
        r->vehicle_id = UINT64_MAX;
        r->seq = UINT64_MAX - 1 - salt;
        r->meter_status = 77; /* a status from a newer producer */
    }
}

static inline tp_row_batch *wh_fixture_new(size_t n, uint64_t salt, int32_t partition, int64_t first_offset)
{
    tp_row_batch *b = calloc(1, sizeof *b);
    if (!b)
        abort();
    b->capacity = b->count = n;
    b->vehicle_id = calloc(n, sizeof *b->vehicle_id);
    b->sampled_at_ms = calloc(n, sizeof *b->sampled_at_ms);
    b->seq = calloc(n, sizeof *b->seq);
    b->latitude = calloc(n, sizeof *b->latitude);
    b->longitude = calloc(n, sizeof *b->longitude);
    b->speed_kmh = calloc(n, sizeof *b->speed_kmh);
    b->heading_deg = calloc(n, sizeof *b->heading_deg);
    b->accuracy_m = calloc(n, sizeof *b->accuracy_m);
    b->meter_status = calloc(n, sizeof *b->meter_status);
    b->kafka_partition = calloc(n, sizeof *b->kafka_partition);
    b->kafka_offset = calloc(n, sizeof *b->kafka_offset);
    if (!b->vehicle_id || !b->sampled_at_ms || !b->seq || !b->latitude || !b->longitude || !b->speed_kmh ||
        !b->heading_deg || !b->accuracy_m || !b->meter_status || !b->kafka_partition || !b->kafka_offset)
        abort();
    for (size_t i = 0; i < n; i++) {
        tp_record r;
        wh_fixture_row(i, salt, &r);
        b->vehicle_id[i] = r.vehicle_id;
        b->sampled_at_ms[i] = r.sampled_at_ms;
        b->seq[i] = r.seq;
        b->latitude[i] = r.latitude;
        b->longitude[i] = r.longitude;
        b->speed_kmh[i] = r.speed_kmh;
        b->heading_deg[i] = r.heading_deg;
        b->accuracy_m[i] = r.accuracy_m;
        b->meter_status[i] = r.meter_status;
        b->kafka_partition[i] = partition;
        b->kafka_offset[i] = first_offset + (int64_t)(i / 100); /* 100 records per pack */
    }
    return b;
}

static inline void wh_fixture_free(tp_row_batch *b)
{
    if (!b)
        return;
    free(b->vehicle_id);
    free(b->sampled_at_ms);
    free(b->seq);
    free(b->latitude);
    free(b->longitude);
    free(b->speed_kmh);
    free(b->heading_deg);
    free(b->accuracy_m);
    free(b->meter_status);
    free(b->kafka_partition);
    free(b->kafka_offset);
    free(b);
}

#endif
