/* Records of the fleet simulator for tests: every record a fleet of these options makes, time-major as a gateway
 * sends them. Header-only. */
#ifndef TELEPACK_TESTS_FLEET_FIXTURE_H
#define TELEPACK_TESTS_FLEET_FIXTURE_H

#include <stdlib.h>

#include "sim/fleet.h"

/* The records (malloc'd; the caller frees them), *n their count. Aborts on options the simulator refuses. */
static inline tp_record *fleet_fixture_records(const tp_fleet_opts *o, size_t *n)
{
    tp_fleet *f;
    if (tp_fleet_new(o, &f))
        abort();
    size_t cap = (size_t)o->vehicles * ((size_t)o->seconds * 1000 / o->interval_ms + 1) + 16, k = 0;
    tp_record *r = malloc(cap * sizeof *r);
    while (r && k < cap && tp_fleet_next(f, &r[k]) == TP_OK)
        k++;
    tp_fleet_free(f);
    *n = k;
    return r;
}

#endif
