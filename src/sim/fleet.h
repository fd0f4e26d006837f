/* A deterministic taxi-fleet simulator: realistic position records for tests, benchmarks, `telepack gen` and the
 * demo. Same options and seed => the same records, bit for bit, on the same platform. */
#ifndef TELEPACK_FLEET_H
#define TELEPACK_FLEET_H

#include <stdint.h>

#include "telepack/error.h"
#include "telepack/record.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model: vehicles drive a street grid (irregular blocks of 80-220 m, rotated, centred on center_lat/lon,
 * about 7 km across) at 0-60 km/h with acceleration and braking limits, stop at red lights, slow for turns, turn
 * at intersections, and go through a meter cycle VACANT -> PICKUP -> (stop) -> HIRED -> (stop) -> VACANT, with an
 * occasional OUT_OF_SERVICE break parked. Each fix carries correlated GPS noise of a few metres, then coordinates
 * are quantized like a receiver's output (quantum_deg), accuracy_m is 3-15 m in steps of 0.1, speed and heading in
 * steps of 0.1. One sample per vehicle per interval_ms, sampled_at_ms jittered by 0-7 ms, and now and then a
 * sample is dropped (a gap in time; seq still counts emitted records only, +1 each). */
typedef struct tp_fleet_opts {
    uint32_t vehicles;         /* number of vehicles, 1..10,000,000; default 100 */
    uint32_t seconds;          /* simulated duration; ticks = seconds * 1000 / interval_ms (at least 1 when
                                * seconds > 0); default 60 */
    uint32_t interval_ms;      /* sampling interval, 10..3,600,000; default 1000 */
    uint64_t seed;             /* default 1 */
    int64_t start_ms;          /* time of tick 0, ms since the Unix epoch; default 1767225600000
                                * (2026-01-01T00:00:00Z) */
    uint64_t first_vehicle_id; /* vehicles are numbered first_vehicle_id, +1, ...; default 10001 */
    double quantum_deg;        /* coordinate resolution: 1e-6 (default), 1e-7, ...; 1/quantum_deg must be a whole
                                * number up to 1e9. 0 = raw doubles, not quantized */
    double drop_rate;          /* chance per sample that a gap starts (mostly 1 sample, sometimes up to 30, as in
                                * a tunnel), 0..0.5; default 0.001 (about 0.4% of samples missing) */
    double center_lat;         /* default 35.681 (Tokyo station) */
    double center_lon;         /* default 139.767 */
    int stagger;               /* 0 (default): every vehicle samples at its tick (plus 0-7 ms of jitter), like GPS
                                * receivers on the second; 1: vehicle i samples i/vehicles of an interval later, so
                                * a live fleet's records arrive evenly spread, not in a burst per tick */
    uint32_t upload_every_ms;  /* 0 (default): records come out as sampled, time-major. Else a whole multiple of
                                * interval_ms, up to 3,600,000 and 3600 samples: each vehicle keeps its samples and
                                * uploads them together every upload_every_ms, as real vehicles do; the vehicles'
                                * upload times are staggered evenly (vehicle i uploads at the end of ticks t with
                                * (t + i) % k == k - 1, k = upload_every_ms / interval_ms), and the last partial
                                * uploads come out after the last tick. Memory: 56 B x vehicles x k more */
} tp_fleet_opts;

/* Fills *o with the defaults above. */
void tp_fleet_opts_init(tp_fleet_opts *o);

/* A running simulation: owns one state block for all vehicles (about 200 bytes each), allocated by tp_fleet_new;
 * tp_fleet_next allocates nothing. Not thread-safe: one owner at a time. */
typedef struct tp_fleet tp_fleet;

/* Creates a fleet at tick 0. o may be NULL for the defaults; it is copied. TP_ERR_INVALID_ARG for options out of
 * the documented ranges, TP_ERR_NOMEM. */
tp_err tp_fleet_new(const tp_fleet_opts *o, tp_fleet **out);
void tp_fleet_free(tp_fleet *f);

/* The next record, in time-major order: every vehicle's sample of tick t (ascending vehicle id, dropped ones
 * left out), then tick t+1. TP_ERR_END after the last tick (vehicles x ticks sample slots, minus the drops).
 * With upload_every_ms: in upload order instead: after tick t is sampled, the uploads due at tick t (ascending
 * vehicle id, each vehicle's samples in time order), then those of tick t+1; the same records in total. */
tp_err tp_fleet_next(tp_fleet *f, tp_record *out);

/* When the record tp_fleet_next returned last is sent, in ms after start_ms, for a sender keeping the fleet's clock:
 * when it was sampled (its sampled_at_ms - start_ms); with upload_every_ms, with the newest sample of its upload
 * (the upload tick's time plus the largest jitter), so a vehicle's upload leaves at once. */
int64_t tp_fleet_send_offset_ms(const tp_fleet *f);

typedef struct tp_fleet_stats {
    uint64_t ticks;    /* total ticks of the run */
    uint64_t tick;     /* the tick being emitted now (== ticks at the end) */
    uint64_t emitted;  /* records returned so far */
    uint64_t dropped;  /* sample slots skipped as gaps so far */
} tp_fleet_stats;

void tp_fleet_get_stats(const tp_fleet *f, tp_fleet_stats *out);

#ifdef __cplusplus
}
#endif
#endif
