/* Tests for the fleet simulator: determinism, counts, time-major order, seq, jitter, quantization, plausible
 * motion (distance vs speed, acceleration), the meter life cycle, and option validation. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sim/fleet.h"
#include "telepack/record_json.h"

#define M_PER_DEG_LAT 110950.0

static size_t collect(const tp_fleet_opts *o, tp_record **out)
{
    tp_fleet *f;
    *out = NULL;
    if (tp_fleet_new(o, &f) != TP_OK)
        return 0;
    size_t cap = (size_t)o->vehicles * (o->seconds * 1000u / o->interval_ms + 1), n = 0;
    tp_record *recs = malloc(cap * sizeof *recs);
    while (recs && n < cap && tp_fleet_next(f, &recs[n]) == TP_OK)
        n++;
    tp_fleet_free(f);
    *out = recs;
    return n;
}

static void test_determinism(void)
{
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = 20;
    o.seconds = 120;
    o.seed = 42;
    tp_record *a, *b, *c;
    size_t na = collect(&o, &a), nb = collect(&o, &b);
    CHECK(na > 0);
    CHECK_INT(na, nb);
    CHECK(a && b && na == nb && memcmp(a, b, na * sizeof *a) == 0);
    o.seed = 43;
    size_t nc = collect(&o, &c);
    CHECK(c && nc > 0 && (nc != na || memcmp(a, c, na * sizeof *a) != 0));
    free(a);
    free(b);
    free(c);

    /* A vehicle's track does not depend on how many vehicles the fleet has. */
    tp_fleet_opts_init(&o);
    o.vehicles = 3;
    o.seconds = 60;
    tp_record *small, *large;
    size_t ns = collect(&o, &small);
    o.vehicles = 7;
    size_t nl = collect(&o, &large);
    size_t i = 0, j = 0, matched = 0;
    int same = 1;
    for (; i < ns; i++) {
        if (small[i].vehicle_id != 10002)
            continue;
        while (j < nl && large[j].vehicle_id != 10002)
            j++;
        if (j == nl || memcmp(&small[i], &large[j], sizeof small[i]) != 0)
            same = 0;
        j++;
        matched++;
    }
    CHECK(same);
    CHECK(matched > 50);
    free(small);
    free(large);
}

static void test_counts_order_seq(void)
{
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = 50;
    o.seconds = 600;
    o.drop_rate = 0.01;
    o.first_vehicle_id = 500;
    o.start_ms = 1700000000000;
    tp_fleet *f;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_OK);
    if (!f)
        return;
    tp_record r;
    uint64_t n = 0, last_seq[50] = {0};
    int64_t last_time[50], prev_tick = 0;
    uint64_t prev_vid = 0;
    int order_ok = 1, seq_ok = 1, jitter_ok = 1, ids_ok = 1, gaps = 0;
    for (int i = 0; i < 50; i++)
        last_time[i] = -1;
    while (tp_fleet_next(f, &r) == TP_OK) {
        n++;
        if (r.vehicle_id < 500 || r.vehicle_id >= 550) {
            ids_ok = 0;
            continue;
        }
        int v = (int)(r.vehicle_id - 500);
        int64_t tick = (r.sampled_at_ms - o.start_ms) / 1000, jitter = (r.sampled_at_ms - o.start_ms) % 1000;
        if (jitter < 0 || jitter > 7)
            jitter_ok = 0;
        /* Time-major: ticks never go back; inside a tick vehicle ids ascend. */
        if (tick < prev_tick || (tick == prev_tick && n > 1 && r.vehicle_id <= prev_vid))
            order_ok = 0;
        if (r.seq != last_seq[v] + 1)
            seq_ok = 0;
        if (last_time[v] >= 0 && (r.sampled_at_ms - last_time[v]) > 1500)
            gaps++;
        last_seq[v] = r.seq;
        last_time[v] = r.sampled_at_ms;
        prev_tick = tick;
        prev_vid = r.vehicle_id;
    }
    CHECK(order_ok);
    CHECK(seq_ok);
    CHECK(jitter_ok);
    CHECK(ids_ok);
    CHECK(gaps > 0); /* with drop_rate 0.01 over 30000 slots, gaps happen */
    tp_fleet_stats st;
    tp_fleet_get_stats(f, &st);
    CHECK_INT(st.ticks, 600);
    CHECK_INT(st.tick, 600);
    CHECK_INT(st.emitted, n);
    CHECK_INT(st.emitted + st.dropped, 50 * 600);
    CHECK(st.dropped > 0);
    CHECK_ERR(tp_fleet_next(f, &r), TP_ERR_END);
    CHECK_ERR(tp_fleet_next(f, &r), TP_ERR_END);
    tp_fleet_free(f);

    /* No drops: exactly vehicles x ticks records; interval below a second. */
    o.drop_rate = 0;
    o.seconds = 3;
    o.interval_ms = 250;
    tp_record *recs;
    size_t cnt = collect(&o, &recs);
    CHECK_INT(cnt, 50 * 12);
    free(recs);

    /* Fewer seconds than one interval still yields one tick. */
    o.seconds = 1;
    o.interval_ms = 5000;
    cnt = collect(&o, &recs);
    CHECK_INT(cnt, 50);
    free(recs);
    o.seconds = 0;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_OK);
    CHECK_ERR(tp_fleet_next(f, &r), TP_ERR_END);
    tp_fleet_free(f);
}

/* Coordinates are whole multiples of the quantum, and the NDJSON writer prints them with that many decimals. */
static void check_quantum(double quantum, int decimals)
{
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = 10;
    o.seconds = 200;
    o.quantum_deg = quantum;
    tp_fleet *f;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_OK);
    if (!f)
        return;
    tp_record r;
    int on_grid = 1, printed_ok = 1, near_tokyo = 1;
    char buf[TP_RECORD_JSON_MAX + 1];
    while (tp_fleet_next(f, &r) == TP_OK) {
        double scale = nearbyint(1.0 / quantum);
        double ulat = r.latitude * scale, ulon = r.longitude * scale;
        if (fabs(ulat - nearbyint(ulat)) > 1e-6 || fabs(ulon - nearbyint(ulon)) > 1e-6 ||
            nearbyint(ulat) / scale != r.latitude || nearbyint(ulon) / scale != r.longitude)
            on_grid = 0;
        if (fabs(r.latitude - 35.681) > 0.05 || fabs(r.longitude - 139.767) > 0.06)
            near_tokyo = 0;
        size_t n;
        tp_record_json_write(&r, buf, sizeof buf, &n);
        buf[n] = 0;
        const char *p = strstr(buf, "\"latitude\":") + 11, *dot = strchr(p, '.'), *comma = strchr(p, ',');
        if (dot && dot < comma && comma - dot - 1 > decimals)
            printed_ok = 0;
    }
    CHECK(on_grid);
    CHECK(printed_ok);
    CHECK(near_tokyo);
    tp_fleet_free(f);
}

static double dist_m(const tp_record *a, const tp_record *b)
{
    double dn = (b->latitude - a->latitude) * M_PER_DEG_LAT;
    double de = (b->longitude - a->longitude) * M_PER_DEG_LAT * cos(a->latitude * M_PI / 180);
    return sqrt(dn * dn + de * de);
}

static int is_tenth(float x) { return fabs(x * 10.0 - nearbyint(x * 10.0)) < 1e-3; }

static void test_plausibility(void)
{
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = 30;
    o.seconds = 3600;
    tp_record *recs;
    size_t n = collect(&o, &recs);
    CHECK(n > 30 * 3500);
    if (!recs)
        return;
    /* Group by vehicle (stable: time order kept). */
    tp_record *prev[30] = {0};
    int dist_ok = 1, accel_ok = 1, ranges_ok = 1, cycle_ok = 1;
    size_t moving = 0, standing = 0, statuses[5] = {0}, transitions = 0;
    double worst_excess = 0, sum_dist = 0, sum_expected = 0;
    for (size_t i = 0; i < n; i++) {
        tp_record *r = &recs[i];
        int v = (int)(r->vehicle_id - 10001);
        if (!(r->speed_kmh >= 0 && r->speed_kmh <= 62 && r->heading_deg >= 0 && r->heading_deg < 360 &&
              r->accuracy_m >= 3 && r->accuracy_m <= 15 && is_tenth(r->accuracy_m) && is_tenth(r->speed_kmh) &&
              is_tenth(r->heading_deg) && r->meter_status >= 1 && r->meter_status <= 4))
            ranges_ok = 0;
        if (r->meter_status >= 1 && r->meter_status <= 4)
            statuses[r->meter_status]++;
        if (r->speed_kmh > 0)
            moving++;
        else
            standing++;
        tp_record *p = prev[v];
        prev[v] = r;
        if (!p)
            continue;
        double dt = (double)(r->sampled_at_ms - p->sampled_at_ms) / 1000.0;
        if (p->meter_status != r->meter_status) {
            transitions++;
            /* The life cycle: vacant -> pickup -> hired -> vacant; vacant -> out of service -> vacant. */
            int a = p->meter_status, b = r->meter_status;
            if (!((a == TP_METER_VACANT && (b == TP_METER_PICKUP || b == TP_METER_OUT_OF_SERVICE)) ||
                  (a == TP_METER_PICKUP && b == TP_METER_HIRED) || (a == TP_METER_HIRED && b == TP_METER_VACANT) ||
                  (a == TP_METER_OUT_OF_SERVICE && b == TP_METER_VACANT)))
                cycle_ok = 0;
        }
        if (dt > 1.1)
            continue; /* a gap: the vehicle moved while unobserved */
        /* Distance covered fits the reported speeds, give or take GPS noise (a few metres per second). */
        double allowed = fmax(p->speed_kmh, r->speed_kmh) / 3.6 * dt;
        double excess = dist_m(p, r) - allowed;
        if (excess > worst_excess)
            worst_excess = excess;
        if (excess > 12)
            dist_ok = 0;
        /* On average the distance matches the mean speed closely (noise averages out). */
        if (p->speed_kmh > 10 && r->speed_kmh > 10) {
            sum_dist += dist_m(p, r);
            sum_expected += (p->speed_kmh + r->speed_kmh) / 2 / 3.6 * dt;
        }
        /* Speed changes stay within what a car does (3.5 m/s^2 braking + measurement noise). */
        if (fabs(r->speed_kmh - p->speed_kmh) / 3.6 / dt > 4.5)
            accel_ok = 0;
        /* Standing still, the position is held. */
        if (p->speed_kmh == 0 && r->speed_kmh == 0 && dist_m(p, r) > 1)
            dist_ok = 0;
    }
    if (!dist_ok)
        fprintf(stderr, "worst distance beyond speed x time: %.1f m\n", worst_excess);
    CHECK(dist_ok);
    double ratio = sum_expected > 0 ? sum_dist / sum_expected : 0;
    if (ratio < 0.97 || ratio > 1.03)
        fprintf(stderr, "distance / (mean speed x time) = %.3f\n", ratio);
    CHECK(ratio >= 0.97 && ratio <= 1.03);
    CHECK(accel_ok);
    CHECK(ranges_ok);
    CHECK(cycle_ok);
    CHECK(transitions > 30);
    /* Every status occurs; a good share of samples is moving and some standing. */
    for (int s = 1; s <= 4; s++)
        CHECK(statuses[s] > 0);
    CHECK(moving > n / 3);
    CHECK(standing > n / 20);
    free(recs);
}

static void test_invalid_options(void)
{
    tp_fleet *f = NULL;
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = 0;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
    tp_fleet_opts_init(&o);
    o.interval_ms = 5;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
    tp_fleet_opts_init(&o);
    o.quantum_deg = 3e-6; /* 1/q is not a whole number */
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
    o.quantum_deg = 1e-10;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
    o.quantum_deg = -1;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
    tp_fleet_opts_init(&o);
    o.drop_rate = 0.9;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
    o.drop_rate = NAN;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
    tp_fleet_opts_init(&o);
    o.center_lat = NAN;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
    tp_fleet_opts_init(&o);
    o.first_vehicle_id = UINT64_MAX - 5;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
    tp_fleet_opts_init(&o);
    o.start_ms = -1;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_fleet_new(NULL, NULL), TP_ERR_INVALID_ARG);
    CHECK(f == NULL);
    /* NULL options mean the defaults. */
    CHECK_ERR(tp_fleet_new(NULL, &f), TP_OK);
    tp_record r;
    CHECK_ERR(tp_fleet_next(f, &r), TP_OK);
    CHECK_INT(r.vehicle_id, 10001);
    CHECK_INT(r.sampled_at_ms / 1000, 1767225600);
    CHECK_ERR(tp_fleet_next(f, NULL), TP_ERR_INVALID_ARG);
    tp_fleet_free(f);
    tp_fleet_free(NULL);
    /* Unquantized coordinates are allowed. */
    tp_fleet_opts_init(&o);
    o.quantum_deg = 0;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_OK);
    tp_fleet_free(f);
}

static int rec_cmp(const void *x, const void *y)
{
    const tp_record *a = x, *b = y;
    if (a->vehicle_id != b->vehicle_id)
        return a->vehicle_id < b->vehicle_id ? -1 : 1;
    return a->sampled_at_ms < b->sampled_at_ms ? -1 : a->sampled_at_ms > b->sampled_at_ms;
}

/* upload_every_ms: the same records (gaps included) in upload order: each vehicle's samples come out together
 * every k ticks, staggered, at most k at once, in time order, and never before they were sampled. */
static void test_uploads(void)
{
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = 7;
    o.seconds = 23;
    o.drop_rate = 0.05;
    tp_record *plain, *up;
    size_t np = collect(&o, &plain);
    o.upload_every_ms = 5000;
    tp_fleet *f;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_OK);
    up = malloc((np + 1) * sizeof *up);
    size_t nu = 0;
    int64_t last_send = -1;
    int send_ok = 1, group_ok = 1, stagger_ok = 1;
    uint64_t cur = 0;
    size_t run = 0;
    while (nu <= np && tp_fleet_next(f, &up[nu]) == TP_OK) {
        int64_t send = tp_fleet_send_offset_ms(f);
        /* sent no earlier than sampled (less the jitter), sends in order */
        if (send < last_send || send + 8 < up[nu].sampled_at_ms - o.start_ms)
            send_ok = 0;
        last_send = send;
        if (nu == 0 || up[nu].vehicle_id != cur) {
            cur = up[nu].vehicle_id;
            run = 0;
            /* vehicle i uploads at ticks t with (t + i) % 5 == 4 (or after the last tick) */
            int64_t t = send / 1000;
            if (t < 23 && (t + (int64_t)(cur - o.first_vehicle_id)) % 5 != 4)
                stagger_ok = 0;
        } else if (up[nu].sampled_at_ms <= up[nu - 1].sampled_at_ms) {
            group_ok = 0;
        }
        if (++run > 5)
            group_ok = 0;
        nu++;
    }
    tp_fleet_free(f);
    CHECK_INT(nu, np);
    CHECK(send_ok);
    CHECK(group_ok);
    CHECK(stagger_ok);
    qsort(plain, np, sizeof *plain, rec_cmp);
    qsort(up, nu, sizeof *up, rec_cmp);
    CHECK(np == nu && memcmp(plain, up, np * sizeof *up) == 0);
    free(plain);
    free(up);
    /* not a whole multiple of the interval, or too many samples to keep */
    o.upload_every_ms = 1500;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
    o.upload_every_ms = 3601000;
    CHECK_ERR(tp_fleet_new(&o, &f), TP_ERR_INVALID_ARG);
}

/* stagger: vehicle i samples i/N of an interval after the tick (plus its jitter); the rest is unchanged */
static void test_stagger(void)
{
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = 10;
    o.seconds = 5;
    tp_record *plain, *st;
    size_t np = collect(&o, &plain);
    o.stagger = 1;
    size_t ns = collect(&o, &st);
    CHECK_INT(np, ns);
    int ok = 1;
    for (size_t j = 0; j < np && j < ns; j++) {
        int64_t want = (int64_t)(plain[j].vehicle_id - o.first_vehicle_id) * 100;
        if (st[j].sampled_at_ms - plain[j].sampled_at_ms != want || st[j].vehicle_id != plain[j].vehicle_id ||
            st[j].latitude != plain[j].latitude)
            ok = 0;
    }
    CHECK(ok);
    free(plain);
    free(st);
}

int main(void)
{
    test_stagger();
    test_uploads();
    test_determinism();
    test_counts_order_seq();
    check_quantum(1e-6, 6);
    check_quantum(1e-7, 7);
    check_quantum(1e-5, 5);
    test_plausibility();
    test_invalid_options();
    return check_exit();
}
