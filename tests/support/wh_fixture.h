/* Row batches for the warehouse tests: deterministic rows whose every field differs from row to row. */
#ifndef TELEPACK_TESTS_WH_FIXTURE_H
#define TELEPACK_TESTS_WH_FIXTURE_H

#include <math.h>
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

/* The non-finite values every float column must carry through every warehouse, and -0.0. */
#define WH_FIXTURE_N_SPECIAL 4
#define WH_FIXTURE_N_FLOAT_COLUMNS 5
#define WH_FIXTURE_N_NONFINITE (WH_FIXTURE_N_SPECIAL * WH_FIXTURE_N_FLOAT_COLUMNS + 1)
static inline double wh_fixture_special(size_t k)
{
    static const double v[WH_FIXTURE_N_SPECIAL] = {NAN, INFINITY, -INFINITY, -0.0};
    return v[k % WH_FIXTURE_N_SPECIAL];
}

/* Rows 0..19 of b get one special value each: row k puts wh_fixture_special(k) into float column k / 4 (latitude,
 * longitude, speed_kmh, heading_deg, accuracy_m); row 20 has NaN in all five. b needs at least 21 rows. */
static inline void wh_fixture_nonfinite(tp_row_batch *b)
{
    for (size_t k = 0; k < WH_FIXTURE_N_NONFINITE && k < b->count; k++) {
        double v = wh_fixture_special(k);
        size_t col = k / WH_FIXTURE_N_SPECIAL;
        if (col == 0 || col == WH_FIXTURE_N_FLOAT_COLUMNS)
            b->latitude[k] = v;
        if (col == 1 || col == WH_FIXTURE_N_FLOAT_COLUMNS)
            b->longitude[k] = v;
        if (col == 2 || col == WH_FIXTURE_N_FLOAT_COLUMNS)
            b->speed_kmh[k] = (float)v;
        if (col == 3 || col == WH_FIXTURE_N_FLOAT_COLUMNS)
            b->heading_deg[k] = (float)v;
        if (col == 4 || col == WH_FIXTURE_N_FLOAT_COLUMNS)
            b->accuracy_m[k] = (float)v;
    }
}

/* got is want, bit for bit up to the NaN payload (both NaN, or equal with the same sign); with zero_sign_lost a
 * -0.0 may come back as 0.0 (SQLite). */
static inline int wh_fixture_same(double got, double want, int zero_sign_lost)
{
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got);
    if (got != want)
        return 0;
    return zero_sign_lost || signbit(got) == signbit(want);
}

static inline void wh_fixture_free(tp_row_batch *b)
{
    tp_row_batch_free(b);
}

#endif
