/* A zstd dictionary for tests: trained on the column contents of small packs of simulated vehicles (what
 * `telepack dict train` does with the writer's own contents), and packs made with and without it. Header-only. */
#ifndef TELEPACK_TESTS_DICT_FIXTURE_H
#define TELEPACK_TESTS_DICT_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "fleet_fixture.h"
#include "sim/fleet.h"
#include "telepack/dict.h"
#include "telepack/pack.h"

/* Records of `vehicles` vehicles over `seconds` seconds, time-major as a gateway sends them; *n their count. */
static tp_record *dict_fixture_records(uint32_t vehicles, uint32_t seconds, uint64_t seed, size_t *n)
{
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = vehicles;
    o.seconds = seconds;
    o.seed = seed;
    return fleet_fixture_records(&o, n);
}

/* Trains a dictionary of dict_cap bytes on one column pack (content only, codec none) per vehicle and `per` records
 * of the records; writes it to dict[0..*len). Returns the trainer's result. */
static tp_err dict_fixture_train(const tp_record *r, size_t n, uint32_t per, void *dict, size_t dict_cap, size_t *len)
{
    tp_pack_writer_opts wo;
    tp_pack_writer_opts_init(&wo);
    wo.codec = TP_CODEC_NONE;
    tp_pack_writer *w;
    if (tp_pack_writer_new(&wo, &w))
        abort();
    /* records are time-major: vehicle v's k-th record is at k * vehicles + v; group by vehicle */
    uint64_t first = r[0].vehicle_id, vehicles = 0;
    for (size_t i = 0; i < n && r[i].vehicle_id >= first; i++)
        if (r[i].vehicle_id - first + 1 > vehicles)
            vehicles = r[i].vehicle_id - first + 1;
    size_t bytes = 0, cap = 1 << 20, ns = 0;
    uint8_t *samples = malloc(cap);
    size_t *sizes = malloc((n / per + vehicles + 1) * sizeof *sizes);
    for (uint64_t v = 0; v < vehicles; v++) {
        for (size_t i = 0; i < n; i++) {
            if (r[i].vehicle_id != first + v)
                continue;
            tp_pack_writer_add(w, &r[i]);
            if (tp_pack_writer_count(w) == per || i + vehicles >= n) {
                size_t bound = tp_pack_writer_bound(w), l;
                while (bytes + bound > cap)
                    samples = realloc(samples, cap *= 2);
                if (tp_pack_writer_finish(w, samples + bytes, bound, &l, NULL) == TP_OK) {
                    sizes[ns++] = l;
                    bytes += l;
                }
            }
        }
        tp_pack_writer_reset(w);
    }
    char err[256];
    tp_err e = tp_dict_train(samples, sizes, ns, dict, dict_cap, len, err, sizeof err);
    if (e)
        fprintf(stderr, "dict_fixture_train: %s\n", err);
    free(samples);
    free(sizes);
    tp_pack_writer_free(w);
    return e;
}

#endif
