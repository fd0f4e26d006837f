/* Row batches for the warehouse tests: deterministic rows whose every field differs from row to row. */
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
    tp_row_batch *b = NULL;
    if (tp_row_batch_new(n, &b))
        abort();
    for (size_t i = 0; i < n; i++) {
        tp_record r;
        wh_fixture_row(i, salt, &r);
        if (tp_row_batch_append(b, &r, partition, first_offset + (int64_t)(i / 100))) /* 100 records per pack */
            abort();
    }
    return b;
}

static inline void wh_fixture_free(tp_row_batch *b)
{
    tp_row_batch_free(b);
}

#endif
