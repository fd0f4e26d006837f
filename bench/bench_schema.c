/* Dynamic decoding benchmark: the same simulated VehicleRecord messages decoded by the hand-written decoder
 * (tp_record_decode) and by the run-time schema decoder (tp_dyn_decode into a 10,000-row batch, cleared when full),
 * and re-encoded by both. Single core, best of 5 passes. Usage: bench_schema VEHICLE.pb [RECORDS]
 * (VEHICLE.pb: build/tests/schema/vehicle.pb, made by protoc at build time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "schema/dynrow.h"
#include "schema/schema.h"
#include "sim/fleet.h"
#include "telepack/record.h"
#include "common/clock.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_schema VEHICLE.pb [RECORDS]\n");
        return 2;
    }
    size_t n = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 200000;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    static uint8_t desc[1 << 20];
    size_t dlen = fread(desc, 1, sizeof desc, f);
    fclose(f);
    tp_schema *s;
    char err[256];
    if (tp_schema_load(desc, dlen, "telepack.v1.VehicleRecord", &s, err, sizeof err)) {
        fprintf(stderr, "bench_schema: %s\n", err);
        return 1;
    }
    uint8_t *msgs = malloc(n * TP_RECORD_MAX_ENCODED), *out = malloc(TP_RECORD_MAX_ENCODED * 2);
    size_t *off = malloc((n + 1) * sizeof *off);
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = 1000;
    o.seconds = (uint32_t)(n / 1000 + 10);
    tp_fleet *fl;
    if (!msgs || !out || !off || tp_fleet_new(&o, &fl))
        return 1;
    off[0] = 0;
    tp_record r;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        if (tp_fleet_next(fl, &r) || tp_record_encode(&r, msgs + off[i], TP_RECORD_MAX_ENCODED, &len))
            return 1;
        off[i + 1] = off[i] + len;
    }
    tp_fleet_free(fl);
    tp_dyn_batch *b;
    if (tp_dyn_batch_new(s, 10000, 1 << 20, &b))
        return 1;
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    volatile uint64_t sink = 0;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = tp_mono_s();
        for (size_t i = 0; i < n; i++) {
            tp_record_decode(msgs + off[i], off[i + 1] - off[i], &r);
            sink += r.seq;
        }
        double t1 = tp_mono_s();
        tp_dyn_batch_clear(b);
        for (size_t i = 0; i < n; i++) {
            if (b->count == b->capacity)
                tp_dyn_batch_clear(b);
            if (tp_dyn_decode(b, msgs + off[i], off[i + 1] - off[i]))
                return 1;
        }
        double t2 = tp_mono_s();
        size_t len;
        for (size_t i = 0; i < n; i++) {
            tp_record_decode(msgs + off[i], off[i + 1] - off[i], &r);
            tp_record_encode(&r, out, TP_RECORD_MAX_ENCODED, &len);
            sink += len;
        }
        double t3 = tp_mono_s();
        tp_dyn_batch_clear(b);
        for (size_t i = 0; i < n; i++) {
            if (b->count == b->capacity)
                tp_dyn_batch_clear(b);
            tp_dyn_decode(b, msgs + off[i], off[i + 1] - off[i]);
            tp_dyn_encode(b, b->count - 1, out, TP_RECORD_MAX_ENCODED * 2, &len);
            sink += len;
        }
        double t4 = tp_mono_s();
        double t[4] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3};
        for (int k = 0; k < 4; k++)
            if (t[k] < best[k])
                best[k] = t[k];
    }
    printf("%zu VehicleRecord messages, %.1f B each on average, best of 5 passes, one core\n", n,
           (double)off[n] / (double)n);
    printf("decode  hand-written tp_record_decode      %7.1f ns/record  %6.2f M records/s\n", best[0] * 1e9 / n,
           n / best[0] / 1e6);
    printf("decode  run-time schema tp_dyn_decode      %7.1f ns/record  %6.2f M records/s\n", best[1] * 1e9 / n,
           n / best[1] / 1e6);
    printf("decode+encode hand-written                 %7.1f ns/record\n", best[2] * 1e9 / n);
    printf("decode+encode run-time schema              %7.1f ns/record\n", best[3] * 1e9 / n);
    tp_dyn_batch_free(b);
    tp_schema_free(s);
    free(msgs);
    free(out);
    free(off);
    return (int)(sink & 0) ;
}
