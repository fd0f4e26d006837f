/* Codec benchmark: records/s for frame+compress and decompress+decode (hand-written decoder into a row batch vs
 * protobuf-c unpack), and bytes/record as JSON, raw frames and packs, at zstd levels 1 and 3 and batch sizes 10,
 * 200 and 2000. Usage: bench_codec [--quick] [--json FILE]. Prints a table; writes the results as JSON. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "telepack/pack.h"
#include "telepack/varint.h"
#include "vehicle.pb-c.h"

/* ---- a deterministic, realistic enough fleet: one taxi's random walk, 1 s sampling, GPS at 1e-6 degrees ---- */

static uint64_t rng_state = 0x853c49e6748fea9bu;

static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct walker {
    uint64_t vehicle_id, seq;
    int64_t t_ms;
    double lat, lon, speed, heading, accuracy;
    int32_t meter;
} walker;

static void walker_init(walker *w, uint64_t vehicle_id)
{
    w->vehicle_id = vehicle_id;
    w->seq = 1;
    w->t_ms = 1700000000000 + (int64_t)(uniform() * 1000);
    w->lat = 40.70 + uniform() * 0.1; /* somewhere in a city */
    w->lon = -74.00 + uniform() * 0.1;
    w->speed = 20 + uniform() * 20;
    w->heading = uniform() * 360;
    w->accuracy = 3 + uniform() * 5;
    w->meter = 1 + (int32_t)(uniform() * 3);
}

static tp_record walker_next(walker *w)
{
    w->speed += (uniform() - 0.5) * 6;
    if (w->speed < 0)
        w->speed = uniform() * 2;
    if (w->speed > 110)
        w->speed = 110;
    w->heading = fmod(w->heading + (uniform() - 0.5) * 20 + 360, 360);
    double m = w->speed / 3.6; /* metres in one second */
    w->lat += m * cos(w->heading * M_PI / 180) / 111320.0;
    w->lon += m * sin(w->heading * M_PI / 180) / (111320.0 * cos(w->lat * M_PI / 180));
    w->accuracy += (uniform() - 0.5) * 0.4;
    if (w->accuracy < 2)
        w->accuracy = 2;
    if (uniform() < 0.002)
        w->meter = 1 + (int32_t)(uniform() * 4);
    tp_record r = {.vehicle_id = w->vehicle_id, .sampled_at_ms = w->t_ms, .seq = w->seq++,
                   .latitude = round(w->lat * 1e6) / 1e6, .longitude = round(w->lon * 1e6) / 1e6,
                   .speed_kmh = (float)(round(w->speed * 10) / 10), .heading_deg = (float)round(w->heading),
                   .accuracy_m = (float)(round(w->accuracy * 10) / 10), .meter_status = w->meter};
    w->t_ms += 1000;
    return r;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: the machine is shared, wall time is noise */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, tp_err e)
{
    fprintf(stderr, "bench_codec: %s failed: %s\n", what, tp_strerror(e));
    exit(1);
}

typedef struct result {
    int level;
    size_t batch;
    double encode_rps, decode_rps, pbc_decode_rps, unzstd_rps;
    double pack_bpr, frames_bpr, json_bpr;
    double encode_us_per_batch;
} result;

static double json_bytes(const tp_record *recs, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const tp_record *r = &recs[i];
        json_t *o = json_pack("{sIsIsIsfsfsfsfsfsi}", "vehicle_id", (json_int_t)r->vehicle_id, "sampled_at_ms",
                              (json_int_t)r->sampled_at_ms, "seq", (json_int_t)r->seq, "latitude", r->latitude,
                              "longitude", r->longitude, "speed_kmh", (double)r->speed_kmh, "heading_deg",
                              (double)r->heading_deg, "accuracy_m", (double)r->accuracy_m, "meter_status",
                              (int)r->meter_status);
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
        total += strlen(s) + 1; /* NDJSON: one line each */
        free(s);
        json_decref(o);
    }
    return (double)total / (double)n;
}

static result run(int level, size_t batch, size_t total, size_t vehicles)
{
    result res = {.level = level, .batch = batch};
    size_t packs = total / batch;
    /* Records: `vehicles` walkers, packs round-robin over them, each pack `batch` consecutive samples. */
    tp_record *recs = malloc(packs * batch * sizeof *recs);
    walker *ws = malloc(vehicles * sizeof *ws);
    for (size_t v = 0; v < vehicles; v++)
        walker_init(&ws[v], 100000 + v);
    for (size_t p = 0; p < packs; p++)
        for (size_t i = 0; i < batch; i++)
            recs[p * batch + i] = walker_next(&ws[p % vehicles]);

    tp_pack_writer_opts wo;
    tp_pack_writer_opts_init(&wo);
    wo.level = level;
    tp_pack_writer *w;
    tp_err e = tp_pack_writer_new(&wo, &w);
    if (e)
        die("tp_pack_writer_new", e);
    size_t slot = ZSTD_compressBound(batch * 80) + 64;
    uint8_t *out = malloc(packs * slot);
    size_t *lens = malloc(packs * sizeof *lens);
    tp_pack_meta *metas = malloc(packs * sizeof *metas);
    size_t content = 0, packed = 0;

    double t0 = now();
    for (size_t p = 0; p < packs; p++) {
        for (size_t i = 0; i < batch; i++)
            if ((e = tp_pack_writer_add(w, &recs[p * batch + i])))
                die("tp_pack_writer_add", e);
        if ((e = tp_pack_writer_finish(w, out + p * slot, slot, &lens[p], &metas[p])))
            die("tp_pack_writer_finish", e);
    }
    double t1 = now();
    for (size_t p = 0; p < packs; p++) {
        content += metas[p].content_size;
        packed += lens[p];
    }
    size_t n = packs * batch;
    res.encode_rps = (double)n / (t1 - t0);
    res.encode_us_per_batch = (t1 - t0) / (double)packs * 1e6;
    res.frames_bpr = (double)content / (double)n;
    res.pack_bpr = (double)packed / (double)n;
    res.json_bpr = json_bytes(recs, n < 20000 ? n : 20000);

    /* Decode: the reader's read_all into a row batch, the sink's fast path. */
    tp_pack_reader *r;
    if ((e = tp_pack_reader_new(NULL, &r)))
        die("tp_pack_reader_new", e);
    tp_row_batch *rows;
    if ((e = tp_row_batch_new(batch, &rows)))
        die("tp_row_batch_new", e);
    size_t bad = 0;
    t0 = now();
    for (size_t p = 0; p < packs; p++) {
        tp_row_batch_clear(rows);
        if ((e = tp_pack_reader_open(r, &metas[p], out + p * slot, lens[p])) ||
            (e = tp_pack_reader_read_all(r, rows, 0, (int64_t)p)))
            die(tp_pack_reader_error_detail(r), e);
        bad += rows->count != batch;
    }
    t1 = now();
    res.decode_rps = (double)n / (t1 - t0);
    /* Spot check: the last pack decoded to what went in. */
    for (size_t i = 0; i < batch; i++)
        bad += rows->seq[i] != recs[(packs - 1) * batch + i].seq ||
               rows->latitude[i] != recs[(packs - 1) * batch + i].latitude;

    /* The ceiling: zstd decompression alone, no record decoding. */
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    uint8_t *buf = malloc(batch * 80 + 64);
    t0 = now();
    for (size_t p = 0; p < packs; p++)
        bad += ZSTD_isError(ZSTD_decompressDCtx(dctx, buf, batch * 80 + 64, out + p * slot, lens[p]));
    t1 = now();
    res.unzstd_rps = (double)n / (t1 - t0);

    /* Baseline: zstd + protobuf-c unpack per record (malloc/free each), copied into the same row batch. */
    t0 = now();
    for (size_t p = 0; p < packs; p++) {
        size_t clen = ZSTD_decompressDCtx(dctx, buf, batch * 80 + 64, out + p * slot, lens[p]);
        if (ZSTD_isError(clen))
            die("ZSTD_decompressDCtx", TP_ERR_CORRUPT);
        tp_row_batch_clear(rows);
        size_t pos = 0;
        while (pos < clen) {
            uint64_t len;
            size_t used;
            if (tp_varint_decode(buf + pos, clen - pos, &len, &used) || len > clen - pos - used)
                die("baseline framing", TP_ERR_CORRUPT);
            Telepack__V1__VehicleRecord *m = telepack__v1__vehicle_record__unpack(NULL, len, buf + pos + used);
            if (!m)
                die("protobuf-c unpack", TP_ERR_DECODE);
            tp_record rec = {.vehicle_id = m->vehicle_id, .sampled_at_ms = m->sampled_at_ms, .seq = m->seq,
                             .latitude = m->latitude, .longitude = m->longitude, .speed_kmh = m->speed_kmh,
                             .heading_deg = m->heading_deg, .accuracy_m = m->accuracy_m,
                             .meter_status = (int32_t)m->meter_status};
            tp_row_batch_append(rows, &rec, 0, (int64_t)p);
            telepack__v1__vehicle_record__free_unpacked(m, NULL);
            pos += used + len;
        }
        bad += rows->count != batch;
    }
    t1 = now();
    res.pbc_decode_rps = (double)n / (t1 - t0);
    if (bad) {
        fprintf(stderr, "bench_codec: decoded records differ from the input (%zu)\n", bad);
        exit(1);
    }
    free(buf);
    ZSTD_freeDCtx(dctx);
    tp_row_batch_free(rows);
    tp_pack_reader_free(r);
    tp_pack_writer_free(w);
    free(metas);
    free(lens);
    free(out);
    free(ws);
    free(recs);
    return res;
}

int main(int argc, char **argv)
{
    const char *json_path = NULL;
    size_t total = 2000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            total = 200000;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--quick] [--json FILE]\n"
                            "Measures pack encode/decode speed and size; see bench/run.\n", argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    static const int levels[] = {1, 3};
    static const size_t batches[] = {10, 200, 2000};
    json_t *arr = json_array();
    printf("records per CPU-second (thread CPU time; wall time is noise on a shared machine)\n");
    printf("%-5s %6s %13s %13s %13s %13s %8s %9s %9s %9s %10s\n", "level", "batch", "encode rec/s", "decode rec/s",
           "pbc dec rec/s", "unzstd rec/s", "vs pbc", "pack B/r", "frame B/r", "json B/r", "enc us/bat");
    for (size_t li = 0; li < 2; li++) {
        for (size_t bi = 0; bi < 3; bi++) {
            result r = run(levels[li], batches[bi], total, 64);
            printf("%-5d %6zu %13.0f %13.0f %13.0f %13.0f %7.2fx %9.2f %9.2f %9.2f %10.1f\n", r.level, r.batch,
                   r.encode_rps, r.decode_rps, r.pbc_decode_rps, r.unzstd_rps, r.decode_rps / r.pbc_decode_rps,
                   r.pack_bpr, r.frames_bpr, r.json_bpr, r.encode_us_per_batch);
            json_array_append_new(
                arr, json_pack("{sisIsfsfsfsfsfsfsfsf}", "zstd_level", r.level, "batch", (json_int_t)r.batch,
                               "unzstd_only_records_per_s", r.unzstd_rps,
                               "encode_records_per_s", r.encode_rps, "decode_records_per_s", r.decode_rps,
                               "protobuf_c_decode_records_per_s", r.pbc_decode_rps, "pack_bytes_per_record",
                               r.pack_bpr, "frame_bytes_per_record", r.frames_bpr, "json_bytes_per_record",
                               r.json_bpr, "encode_us_per_batch", r.encode_us_per_batch));
        }
    }
    json_t *doc = json_pack("{sssIso}", "benchmark", "codec", "records_per_config", (json_int_t)total, "results", arr);
    if (json_path && json_dump_file(doc, json_path, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "bench_codec: cannot write %s\n", json_path);
        return 1;
    }
    json_decref(doc);
    return 0;
}
