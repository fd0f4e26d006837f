/* Deterministic taxi-fleet simulator (see src/sim/fleet.h for the model). Each vehicle has its own
 * xoshiro256** stream seeded from (seed, vehicle id), so a vehicle's track does not depend on the fleet size. */
#include "sim/fleet.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define GRID_N 48              /* streets in each direction */
#define BLOCK_MIN_M 80.0
#define BLOCK_MAX_M 220.0
#define GRID_ROTATION_DEG 17.0 /* streets do not run north-south; a rotation makes both coordinates move */
#define MAX_SPEED_MS (60.0 / 3.6)
#define TURN_SPEED_MS (15.0 / 3.6)
#define BRAKE_MS2 2.0          /* planned braking */
#define MAX_BRAKE_MS2 3.5      /* the hardest the model ever brakes */
#define STOP_LINE_M 2.0
#define RED_LIGHT_P 0.28
#define DEG2RAD (3.14159265358979323846 / 180.0)

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static inline double rng_unit(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static inline double rng_range(rng *r, double lo, double hi) { return lo + (hi - lo) * rng_unit(r); }

/* Approximately standard normal: the Irwin-Hall sum of four 16-bit uniforms, rescaled (mean 0, sd 1, |x| < 3.5).
 * Cheap and good enough for sensor noise. */
static inline double rng_gauss(rng *r)
{
    uint64_t x = rng_next(r);
    double sum = (double)(x & 0xffff) + (double)((x >> 16) & 0xffff) + (double)((x >> 32) & 0xffff) +
                 (double)(x >> 48);
    return (sum / 65536.0 - 2.0) * 1.7320508075688772;
}

typedef struct vehicle {
    rng r;
    uint64_t seq;
    int32_t ix, iy;       /* intersection the current segment starts at */
    int32_t dir;          /* 0 = +u, 1 = +w, 2 = -u, 3 = -w (grid axes) */
    int32_t next_dir;     /* direction taken at the end of this segment */
    double s;             /* metres along the segment */
    double seg_len;
    double v;             /* m/s */
    double v_cruise;      /* wanted speed on this segment */
    double accel;         /* this driver's acceleration, m/s^2 */
    double wait;          /* seconds left standing (red light, dwell, break) */
    double status_left;   /* seconds until the meter status wants to change */
    double noise_e, noise_n; /* GPS error, metres */
    double acc;           /* accuracy estimate, metres */
    double acc_base;
    float heading;        /* last reported heading */
    int32_t status;
    int32_t pending;      /* status to take when the current stop ends (0 = none) */
    bool stop_at_end;     /* red light at the end of this segment */
    bool stop_wanted;     /* stop at the kerb as soon as possible (status change) */
    uint32_t gap_left;    /* samples still to drop */
} vehicle;

struct tp_fleet {
    tp_fleet_opts o;
    uint64_t ticks, tick, emitted, dropped;
    uint32_t next_vehicle;
    double dt;
    double noise_rho, noise_innov;
    double acc_step;                   /* spread of the accuracy estimate's random walk per step */
    double scale;                      /* 1 / quantum_deg, 0 = no quantization */
    double m_per_deg_lat, m_per_deg_lon;
    double gu[GRID_N], gw[GRID_N];     /* street positions along the grid axes, metres from the centre */
    double dir_e[4], dir_n[4];         /* unit vectors of the four directions, east/north */
    float dir_heading[4];              /* their compass headings */
    uint32_t jitter_max_ms;
    vehicle *v;
    /* upload_every_ms: k samples per vehicle kept in buf[i * k ..], nbuf[i] of them; the uploads of tick up_tick
     * come out vehicle by vehicle (up_v, up_r) */
    uint32_t k;
    tp_record *buf;
    uint32_t *nbuf;
    uint64_t up_tick;
    uint32_t up_v, up_r;
    int up_state; /* 0: fill the next tick, 1: emitting up_tick's uploads, 2: emitting the last partial ones */
    int64_t send_ms;
};

void tp_fleet_opts_init(tp_fleet_opts *o)
{
    memset(o, 0, sizeof *o);
    o->vehicles = 100;
    o->seconds = 60;
    o->interval_ms = 1000;
    o->seed = 1;
    o->start_ms = 1767225600000LL;
    o->first_vehicle_id = 10001;
    o->quantum_deg = 1e-6;
    o->drop_rate = 0.001;
    o->center_lat = 35.681;
    o->center_lon = 139.767;
}

/* ---- grid ---- */

static double seg_length(const tp_fleet *f, int32_t ix, int32_t iy, int32_t dir)
{
    switch (dir) {
    case 0: return f->gu[ix + 1] - f->gu[ix];
    case 1: return f->gw[iy + 1] - f->gw[iy];
    case 2: return f->gu[ix] - f->gu[ix - 1];
    default: return f->gw[iy] - f->gw[iy - 1];
    }
}

static bool dir_ok(int32_t ix, int32_t iy, int32_t dir)
{
    switch (dir) {
    case 0: return ix + 1 < GRID_N;
    case 1: return iy + 1 < GRID_N;
    case 2: return ix > 0;
    default: return iy > 0;
    }
}

static void node_step(int32_t *ix, int32_t *iy, int32_t dir)
{
    static const int32_t du[4] = {1, 0, -1, 0}, dw[4] = {0, 1, 0, -1};
    *ix += du[dir];
    *iy += dw[dir];
}

/* Picks the direction to take at the end of the segment (ix, iy, dir): mostly straight, else left or right,
 * never off the grid; a U-turn only when nothing else is possible. */
static int32_t pick_next_dir(vehicle *v, int32_t ix, int32_t iy, int32_t dir)
{
    int32_t ex = ix, ey = iy;
    node_step(&ex, &ey, dir);
    int32_t options[3] = {dir, (dir + 1) & 3, (dir + 3) & 3};
    double p = rng_unit(&v->r);
    int first = p < 0.6 ? 0 : p < 0.8 ? 1 : 2;
    for (int k = 0; k < 3; k++) {
        int32_t d = options[(first + k) % 3];
        if (dir_ok(ex, ey, d))
            return d;
    }
    return (dir + 2) & 3;
}

static double cruise_speed(vehicle *v)
{
    /* Vacant taxis cruise slowly looking for fares; with a passenger or on the way to one they drive. */
    if (v->status == TP_METER_VACANT)
        return rng_range(&v->r, 15.0, 40.0) / 3.6;
    return rng_range(&v->r, 25.0, 60.0) / 3.6;
}

static void enter_segment(const tp_fleet *f, vehicle *v)
{
    v->seg_len = seg_length(f, v->ix, v->iy, v->dir);
    v->next_dir = pick_next_dir(v, v->ix, v->iy, v->dir);
    v->stop_at_end = rng_unit(&v->r) < RED_LIGHT_P;
    v->v_cruise = cruise_speed(v);
}

/* ---- meter status ---- */

static double status_duration(vehicle *v, int32_t status)
{
    switch (status) {
    case TP_METER_VACANT: return rng_range(&v->r, 120, 900);
    case TP_METER_PICKUP: return rng_range(&v->r, 60, 480);
    case TP_METER_HIRED: return rng_range(&v->r, 300, 2100);
    default: return rng_range(&v->r, 600, 2400);
    }
}

/* The meter's timer ran out: decide what the next stage is. */
static void status_due(vehicle *v)
{
    switch (v->status) {
    case TP_METER_VACANT:
        if (rng_unit(&v->r) < 0.08) {
            v->pending = TP_METER_OUT_OF_SERVICE;
            v->stop_wanted = true;
        } else {
            v->status = TP_METER_PICKUP; /* dispatched: drive on to the customer */
            v->status_left = status_duration(v, TP_METER_PICKUP);
        }
        break;
    case TP_METER_PICKUP:
        v->pending = TP_METER_HIRED;
        v->stop_wanted = true;
        break;
    case TP_METER_HIRED:
        v->pending = TP_METER_VACANT;
        v->stop_wanted = true;
        break;
    default:
        v->status = TP_METER_VACANT;
        v->status_left = status_duration(v, TP_METER_VACANT);
        break;
    }
}

/* The vehicle has come to a standstill at the kerb for a pending status change. */
static void begin_dwell(vehicle *v)
{
    v->stop_wanted = false;
    if (v->pending == TP_METER_OUT_OF_SERVICE) {
        v->status = TP_METER_OUT_OF_SERVICE; /* the break starts now; parked for all of it */
        v->pending = TP_METER_VACANT;
        v->wait = status_duration(v, TP_METER_OUT_OF_SERVICE);
    } else {
        v->wait = rng_range(&v->r, 15, 90); /* passenger boards, or pays and leaves */
    }
}

/* ---- one time step ---- */

/* The highest speed nv for the end of this step from which the vehicle can still stop (braking at BRAKE_MS2)
 * within `room` metres, given that it covers (v + nv) / 2 * dt during the step; 0 when it cannot. */
static double stop_speed(double room, double v, double dt)
{
    double rest = room - v * dt / 2;
    if (rest <= 0)
        return 0;
    double h = dt / 2;
    return BRAKE_MS2 * (-h + sqrt(h * h + 2 * rest / BRAKE_MS2));
}

static void step(const tp_fleet *f, vehicle *v)
{
    double dt = f->dt;
    v->status_left -= dt;
    if (v->status_left <= 0 && !v->pending && v->wait <= 0)
        status_due(v);

    if (v->wait > 0) {
        v->v = 0;
        v->wait -= dt;
        if (v->wait <= 0) {
            v->wait = 0;
            if (v->pending && !v->stop_wanted) {
                v->status = v->pending;
                v->pending = 0;
                v->status_left = status_duration(v, v->status);
                v->v_cruise = cruise_speed(v);
            }
        }
    } else {
        double d = v->seg_len - v->s;
        double target = v->v_cruise;
        if (v->stop_wanted) {
            target = 0;
        } else {
            if (v->stop_at_end)
                target = fmin(target, stop_speed(d - STOP_LINE_M, v->v, dt));
            if (v->next_dir != v->dir)
                target = fmin(target, TURN_SPEED_MS + stop_speed(d, v->v, dt));
        }
        double nv = v->v < target ? fmin(v->v + v->accel * dt, target) : fmax(v->v - MAX_BRAKE_MS2 * dt, target);
        double dist = 0.5 * (v->v + nv) * dt;
        if (v->stop_wanted && nv == 0) {
            v->s = fmin(v->s + dist, v->seg_len);
            v->v = 0;
            begin_dwell(v);
        } else if (v->stop_at_end && (v->s + dist >= v->seg_len - STOP_LINE_M || (d < STOP_LINE_M + 1 && nv < 1))) {
            /* At the stop line of a red light. */
            v->s = fmax(v->s, fmin(v->s + dist, v->seg_len - STOP_LINE_M));
            v->v = 0;
            v->stop_at_end = false;
            v->wait = rng_range(&v->r, 5, 40);
        } else {
            v->s += dist;
            v->v = nv;
            while (v->s >= v->seg_len) { /* through the intersection, onto the next segment */
                v->s -= v->seg_len;
                node_step(&v->ix, &v->iy, v->dir);
                v->dir = v->next_dir;
                enter_segment(f, v);
            }
        }
    }

    /* GPS error: AR(1) per axis, its spread following the accuracy estimate. Standing still, the position is
     * held (receivers' static hold) and only the accuracy estimate wanders. */
    v->acc += f->acc_step * rng_gauss(&v->r) + 0.02 * dt * (v->acc_base - v->acc);
    v->acc = fmin(fmax(v->acc, 3.0), 15.0);
    if (v->v == 0)
        return;
    double sigma = v->acc * 0.5 * f->noise_innov;
    v->noise_e = f->noise_rho * v->noise_e + sigma * rng_gauss(&v->r);
    v->noise_n = f->noise_rho * v->noise_n + sigma * rng_gauss(&v->r);
}

/* ---- sampling ---- */

static double quantize(const tp_fleet *f, double deg)
{
    if (f->scale == 0)
        return deg;
    /* Integer units divided by the scale: the double nearest the decimal a receiver would print. */
    return nearbyint(deg * f->scale) / f->scale;
}

static float round_tenth(double x) { return (float)(nearbyint(x * 10.0) / 10.0); }

static void sample(tp_fleet *f, vehicle *v, uint32_t index, tp_record *out)
{
    static const int32_t du[4] = {1, 0, -1, 0}, dw[4] = {0, 1, 0, -1};
    double u = f->gu[v->ix] + du[v->dir] * v->s;
    double w = f->gw[v->iy] + dw[v->dir] * v->s;
    /* Grid axes to east/north: +u is dir 0, +w is dir 1. */
    double e = u * f->dir_e[0] + w * f->dir_e[1] + v->noise_e;
    double n = u * f->dir_n[0] + w * f->dir_n[1] + v->noise_n;

    out->vehicle_id = f->o.first_vehicle_id + index;
    out->sampled_at_ms = f->o.start_ms + (int64_t)(f->tick * f->o.interval_ms) +
                         (int64_t)(rng_next(&v->r) % (f->jitter_max_ms + 1));
    if (f->o.stagger) /* vehicle i samples i/N of an interval after the tick */
        out->sampled_at_ms += (int64_t)((uint64_t)index * f->o.interval_ms / f->o.vehicles);
    out->seq = ++v->seq;
    out->latitude = quantize(f, f->o.center_lat + n / f->m_per_deg_lat);
    out->longitude = quantize(f, f->o.center_lon + e / f->m_per_deg_lon);
    if (v->v > 0.3) {
        out->speed_kmh = round_tenth(fmax(v->v * 3.6 + 0.3 * rng_gauss(&v->r), 0.0));
        double h = f->dir_heading[v->dir] + 1.5 * rng_gauss(&v->r);
        if (h < 0)
            h += 360;
        if (h >= 360)
            h -= 360;
        float hq = round_tenth(h);
        v->heading = hq >= 360.0f ? 0.0f : hq;
    } else {
        out->speed_kmh = 0; /* standing: receivers report 0 and hold the last course */
    }
    out->heading_deg = v->heading;
    out->accuracy_m = round_tenth(v->acc);
    out->meter_status = v->status;
}

static bool drop_sample(const tp_fleet *f, vehicle *v)
{
    if (v->gap_left > 0) {
        v->gap_left--;
        return true;
    }
    if (f->o.drop_rate > 0 && rng_unit(&v->r) < f->o.drop_rate) {
        /* Mostly a single lost sample; sometimes a tunnel or a dead spot. */
        v->gap_left = rng_unit(&v->r) < 0.8 ? 0 : (uint32_t)rng_range(&v->r, 1, 30);
        return true;
    }
    return false;
}

/* ---- lifecycle ---- */

static void init_vehicle(const tp_fleet *f, vehicle *v, uint32_t index)
{
    uint64_t vid = f->o.first_vehicle_id + index;
    rng_seed(&v->r, f->o.seed ^ (vid * 0xd1b54a32d192ed03ull));
    v->seq = 0;
    do {
        v->ix = (int32_t)(rng_next(&v->r) % GRID_N);
        v->iy = (int32_t)(rng_next(&v->r) % GRID_N);
        v->dir = (int32_t)(rng_next(&v->r) % 4);
    } while (!dir_ok(v->ix, v->iy, v->dir));
    double p = rng_unit(&v->r);
    v->status = p < 0.55 ? TP_METER_VACANT : p < 0.85 ? TP_METER_HIRED : p < 0.95 ? TP_METER_PICKUP
                                                                                  : TP_METER_OUT_OF_SERVICE;
    v->status_left = status_duration(v, v->status) * rng_unit(&v->r);
    v->pending = 0;
    v->stop_wanted = false;
    v->wait = 0;
    if (v->status == TP_METER_OUT_OF_SERVICE) {
        v->wait = v->status_left; /* parked on a break */
        v->pending = TP_METER_VACANT;
    }
    enter_segment(f, v);
    v->s = rng_unit(&v->r) * v->seg_len * 0.8;
    v->v = v->wait > 0 ? 0 : v->v_cruise * rng_unit(&v->r);
    v->accel = rng_range(&v->r, 1.0, 2.5);
    v->acc_base = rng_range(&v->r, 4.0, 9.0);
    v->acc = v->acc_base;
    v->noise_e = v->acc * 0.5 * rng_gauss(&v->r);
    v->noise_n = v->acc * 0.5 * rng_gauss(&v->r);
    v->heading = f->dir_heading[v->dir];
    v->gap_left = 0;
}

tp_err tp_fleet_new(const tp_fleet_opts *o, tp_fleet **out)
{
    if (!out)
        return TP_ERR_INVALID_ARG;
    tp_fleet_opts def;
    if (!o) {
        tp_fleet_opts_init(&def);
        o = &def;
    }
    if (o->vehicles < 1 || o->vehicles > 10000000 || o->interval_ms < 10 || o->interval_ms > 3600000 ||
        !(o->drop_rate >= 0 && o->drop_rate <= 0.5) || !(o->quantum_deg >= 0 && o->quantum_deg <= 1) ||
        !(fabs(o->center_lat) <= 80) || !(fabs(o->center_lon) <= 180) ||
        o->first_vehicle_id > UINT64_MAX - o->vehicles)
        return TP_ERR_INVALID_ARG;
    uint32_t k = 0;
    if (o->upload_every_ms) {
        if (o->upload_every_ms % o->interval_ms || o->upload_every_ms > 3600000 ||
            o->upload_every_ms / o->interval_ms > 3600 ||
            (uint64_t)o->vehicles * (o->upload_every_ms / o->interval_ms) > (uint64_t)1 << 27)
            return TP_ERR_INVALID_ARG;
        k = o->upload_every_ms / o->interval_ms;
    }
    double scale = 0;
    if (o->quantum_deg > 0) {
        scale = nearbyint(1.0 / o->quantum_deg);
        if (scale < 1 || scale > 1e9 || fabs(scale - 1.0 / o->quantum_deg) > 1e-6 * scale)
            return TP_ERR_INVALID_ARG;
    }
    uint64_t ticks = (uint64_t)o->seconds * 1000u / o->interval_ms;
    if (ticks == 0 && o->seconds > 0)
        ticks = 1;
    /* sampled_at_ms must not overflow. */
    if (o->start_ms < 0 || o->start_ms > INT64_MAX / 2 || ticks > (uint64_t)(INT64_MAX / 4) / o->interval_ms)
        return TP_ERR_INVALID_ARG;

    tp_fleet *f = calloc(1, sizeof *f);
    if (!f)
        return TP_ERR_NOMEM;
    f->v = calloc(o->vehicles, sizeof *f->v);
    if (!f->v) {
        free(f);
        return TP_ERR_NOMEM;
    }
    f->o = *o;
    f->ticks = ticks;
    f->k = k;
    if (k) {
        f->buf = malloc((size_t)o->vehicles * k * sizeof *f->buf);
        f->nbuf = calloc(o->vehicles, sizeof *f->nbuf);
        if (!f->buf || !f->nbuf) {
            tp_fleet_free(f);
            return TP_ERR_NOMEM;
        }
    }
    f->scale = scale;
    f->dt = o->interval_ms / 1000.0;
    f->noise_rho = pow(0.96, f->dt);
    f->noise_innov = sqrt(1 - f->noise_rho * f->noise_rho);
    f->acc_step = 0.15 * sqrt(f->dt);
    f->jitter_max_ms = o->interval_ms >= 80 ? 7 : o->interval_ms / 10;
    double lat = o->center_lat * DEG2RAD;
    f->m_per_deg_lat = 111132.954 - 559.822 * cos(2 * lat) + 1.175 * cos(4 * lat);
    f->m_per_deg_lon = 111412.84 * cos(lat) - 93.5 * cos(3 * lat);

    /* The street grid comes from the seed alone: every vehicle of a fleet drives the same city. */
    rng g;
    rng_seed(&g, o->seed ^ 0x6a09e667f3bcc909ull);
    double pos = 0;
    for (int i = 0; i < GRID_N; i++) {
        f->gu[i] = pos;
        pos += rng_range(&g, BLOCK_MIN_M, BLOCK_MAX_M);
    }
    for (int i = 0; i < GRID_N; i++)
        f->gu[i] -= f->gu[GRID_N - 1] / 2;
    pos = 0;
    for (int i = 0; i < GRID_N; i++) {
        f->gw[i] = pos;
        pos += rng_range(&g, BLOCK_MIN_M, BLOCK_MAX_M);
    }
    for (int i = 0; i < GRID_N; i++)
        f->gw[i] -= f->gw[GRID_N - 1] / 2;
    double rot = GRID_ROTATION_DEG * DEG2RAD;
    for (int d = 0; d < 4; d++) {
        double a = rot + d * 90.0 * DEG2RAD; /* angle from east, counter-clockwise */
        f->dir_e[d] = cos(a);
        f->dir_n[d] = sin(a);
        double h = 90.0 - (GRID_ROTATION_DEG + d * 90.0); /* compass: clockwise from north */
        while (h < 0)
            h += 360;
        f->dir_heading[d] = (float)h;
    }
    for (uint32_t i = 0; i < o->vehicles; i++)
        init_vehicle(f, &f->v[i], i);
    *out = f;
    return TP_OK;
}

void tp_fleet_free(tp_fleet *f)
{
    if (!f)
        return;
    free(f->v);
    free(f->buf);
    free(f->nbuf);
    free(f);
}

/* Upload order: samples tick t of every vehicle into its buffer. */
static void fill_tick(tp_fleet *f)
{
    for (uint32_t i = 0; i < f->o.vehicles; i++) {
        vehicle *v = &f->v[i];
        if (f->tick > 0)
            step(f, v);
        if (drop_sample(f, v)) {
            f->dropped++;
            continue;
        }
        sample(f, v, i, &f->buf[(size_t)i * f->k + f->nbuf[i]++]);
    }
}

static int upload_due(const tp_fleet *f, uint32_t i)
{
    return f->up_state == 2 || (f->up_tick + i) % f->k == f->k - 1;
}

static tp_err upload_next(tp_fleet *f, tp_record *out)
{
    for (;;) {
        if (f->up_state) {
            while (f->up_v < f->o.vehicles) {
                uint32_t i = f->up_v;
                if (upload_due(f, i) && f->up_r < f->nbuf[i]) {
                    *out = f->buf[(size_t)i * f->k + f->up_r++];
                    /* sent with the newest sample of the upload: at its tick, after its jitter */
                    f->send_ms = (int64_t)f->up_tick * f->o.interval_ms + f->jitter_max_ms;
                    f->emitted++;
                    return TP_OK;
                }
                if (upload_due(f, i))
                    f->nbuf[i] = 0;
                f->up_v++;
                f->up_r = 0;
            }
            if (f->up_state == 2)
                return TP_ERR_END;
            f->up_state = 0;
        }
        /* the next tick, or the last partial uploads */
        if (f->tick < f->ticks) {
            fill_tick(f);
            f->up_tick = f->tick++;
            f->up_state = 1;
        } else {
            f->up_state = 2;
            f->up_tick = f->ticks;
        }
        f->up_v = f->up_r = 0;
    }
}

tp_err tp_fleet_next(tp_fleet *f, tp_record *out)
{
    if (!f || !out)
        return TP_ERR_INVALID_ARG;
    if (f->k)
        return upload_next(f, out);
    while (f->tick < f->ticks) {
        if (f->next_vehicle == f->o.vehicles) {
            f->next_vehicle = 0;
            f->tick++;
            continue;
        }
        uint32_t i = f->next_vehicle++;
        vehicle *v = &f->v[i];
        if (f->tick > 0)
            step(f, v);
        if (drop_sample(f, v)) {
            f->dropped++;
            continue;
        }
        sample(f, v, i, out);
        f->emitted++;
        f->send_ms = out->sampled_at_ms - f->o.start_ms; /* sent when sampled */
        return TP_OK;
    }
    return TP_ERR_END;
}

int64_t tp_fleet_send_offset_ms(const tp_fleet *f)
{
    return f ? f->send_ms : 0;
}

void tp_fleet_get_stats(const tp_fleet *f, tp_fleet_stats *out)
{
    out->ticks = f->ticks;
    out->tick = f->tick;
    out->emitted = f->emitted;
    out->dropped = f->dropped;
}
