/* Codec benchmark: records/s for frame+compress and decompress+decode (hand-written decoder into a row batch vs
 * protobuf-c unpack), and bytes/record as JSON, raw frames and packs, at zstd levels 1 and 3 and batch sizes 10,
 * 200 and 2000. Usage: bench_codec [--quick] [--json FILE]. Prints a table; writes the results as JSON. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "sim/fleet.h"
#include "telepack/pack.h"
#include "telepack/delimited.h"
#include "vehicle.pb-c.h"
#include "common/clock.h"

/* Records: the fleet simulator (src/sim/fleet.c), `vehicles` taxis sampled every second, GPS at 1e-6 degrees, cut
 * into packs of `batch` consecutive samples of one vehicle, the way the ingest batcher cuts them. */
static tp_record *fleet_packs(size_t batch, size_t packs, size_t vehicles)
{
    tp_record *recs = malloc(packs * batch * sizeof *recs);
    tp_record *open = malloc(vehicles * batch * sizeof *open);
    size_t *fill = calloc(vehicles, sizeof *fill);
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = (uint32_t)vehicles;
    o.seconds = (uint32_t)((packs * batch / vehicles) * 11 / 10 + batch + 10);
    tp_fleet *f;
    if (!recs || !open || !fill || tp_fleet_new(&o, &f)) {
        fprintf(stderr, "bench_codec: cannot set up the fleet\n");
        exit(1);
    }
    size_t done = 0;
    tp_record r;
    while (done < packs && tp_fleet_next(f, &r) == TP_OK) {
        size_t v = (size_t)(r.vehicle_id - o.first_vehicle_id);
        open[v * batch + fill[v]++] = r;
        if (fill[v] == batch) {
            memcpy(&recs[done++ * batch], &open[v * batch], batch * sizeof r);
            fill[v] = 0;
        }
    }
    tp_fleet_free(f);
    free(fill);
    free(open);
    if (done < packs) {
        fprintf(stderr, "bench_codec: the fleet ran out of records\n");
        exit(1);
    }
    return recs;
}

static void die(const char *what, tp_err e)
{
    fprintf(stderr, "bench_codec: %s failed: %s\n", what, tp_strerror(e));
    exit(1);
}

typedef struct result {
    int level;
    size_t batch;
    double encode_rps, decode_rps, pbc_decode_rps, unzstd_rps, raw_decode_rps;
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
    tp_record *recs = fleet_packs(batch, packs, vehicles);

    tp_pack_writer_opts wo;
    tp_pack_writer_opts_init(&wo);
    wo.layout = TP_LAYOUT_ROWS; /* this benchmark is about pbpack v1 against protobuf-c; bench_columns does v2 */
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

    double t0 = tp_thread_cpu_s();
    for (size_t p = 0; p < packs; p++) {
        for (size_t i = 0; i < batch; i++)
            if ((e = tp_pack_writer_add(w, &recs[p * batch + i])))
                die("tp_pack_writer_add", e);
        if ((e = tp_pack_writer_finish(w, out + p * slot, slot, &lens[p], &metas[p])))
            die("tp_pack_writer_finish", e);
    }
    double t1 = tp_thread_cpu_s();
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
    t0 = tp_thread_cpu_s();
    for (size_t p = 0; p < packs; p++) {
        tp_row_batch_clear(rows);
        if ((e = tp_pack_reader_open(r, &metas[p], out + p * slot, lens[p])) ||
            (e = tp_pack_reader_read_all(r, rows, 0, (int64_t)p)))
            die(tp_pack_reader_error_detail(r), e);
        bad += rows->count != batch;
    }
    t1 = tp_thread_cpu_s();
    res.decode_rps = (double)n / (t1 - t0);
    /* Spot check: the last pack decoded to what went in. */
    for (size_t i = 0; i < batch; i++)
        bad += rows->seq[i] != recs[(packs - 1) * batch + i].seq ||
               rows->latitude[i] != recs[(packs - 1) * batch + i].latitude;

    /* The decoder alone: the same records as codec none packs (the content in place), read_all. */
    {
        tp_pack_writer_opts no;
        tp_pack_writer_opts_init(&no);
        no.layout = TP_LAYOUT_ROWS;
        no.codec = TP_CODEC_NONE;
        tp_pack_writer *nw;
        if ((e = tp_pack_writer_new(&no, &nw)))
            die("tp_pack_writer_new", e);
        size_t raw_slot = batch * 80 + 64;
        uint8_t *raw = malloc(packs * raw_slot);
        size_t *raw_lens = malloc(packs * sizeof *raw_lens);
        for (size_t p = 0; p < packs; p++) {
            for (size_t i = 0; i < batch; i++)
                tp_pack_writer_add(nw, &recs[p * batch + i]);
            if ((e = tp_pack_writer_finish(nw, raw + p * raw_slot, raw_slot, &raw_lens[p], NULL)))
                die("tp_pack_writer_finish (none)", e);
        }
        t0 = tp_thread_cpu_s();
        for (size_t p = 0; p < packs; p++) {
            tp_row_batch_clear(rows);
            tp_pack_meta m = metas[p];
            m.codec = TP_CODEC_NONE;
            if ((e = tp_pack_reader_open(r, &m, raw + p * raw_slot, raw_lens[p])) ||
                (e = tp_pack_reader_read_all(r, rows, 0, (int64_t)p)))
                die(tp_pack_reader_error_detail(r), e);
        }
        t1 = tp_thread_cpu_s();
        res.raw_decode_rps = (double)n / (t1 - t0);
        free(raw_lens);
        free(raw);
        tp_pack_writer_free(nw);
    }

    /* The ceiling: zstd decompression alone, no record decoding. */
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    uint8_t *buf = malloc(batch * 80 + 64);
    t0 = tp_thread_cpu_s();
    for (size_t p = 0; p < packs; p++)
        bad += ZSTD_isError(ZSTD_decompressDCtx(dctx, buf, batch * 80 + 64, out + p * slot, lens[p]));
    t1 = tp_thread_cpu_s();
    res.unzstd_rps = (double)n / (t1 - t0);

    /* Baseline: zstd + protobuf-c unpack per record (malloc/free each), copied into the same row batch. */
    t0 = tp_thread_cpu_s();
    for (size_t p = 0; p < packs; p++) {
        size_t clen = ZSTD_decompressDCtx(dctx, buf, batch * 80 + 64, out + p * slot, lens[p]);
        if (ZSTD_isError(clen))
            die("ZSTD_decompressDCtx", TP_ERR_CORRUPT);
        tp_row_batch_clear(rows);
        size_t pos = 0;
        while (pos < clen) {
            const uint8_t *body;
            size_t len, used;
            if (tp_delimited_split(buf + pos, clen - pos, SIZE_MAX, &body, &len, &used))
                die("baseline framing", TP_ERR_CORRUPT);
            Telepack__V1__VehicleRecord *m = telepack__v1__vehicle_record__unpack(NULL, len, body);
            if (!m)
                die("protobuf-c unpack", TP_ERR_DECODE);
            tp_record rec = {.vehicle_id = m->vehicle_id, .sampled_at_ms = m->sampled_at_ms, .seq = m->seq,
                             .latitude = m->latitude, .longitude = m->longitude, .speed_kmh = m->speed_kmh,
                             .heading_deg = m->heading_deg, .accuracy_m = m->accuracy_m,
                             .meter_status = (int32_t)m->meter_status};
            tp_row_batch_append(rows, &rec, 0, (int64_t)p);
            telepack__v1__vehicle_record__free_unpacked(m, NULL);
            pos += used;
        }
        bad += rows->count != batch;
    }
    t1 = tp_thread_cpu_s();
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
    printf("%-5s %6s %13s %13s %13s %13s %13s %8s %9s %9s %9s %10s\n", "level", "batch", "encode rec/s",
           "decode rec/s", "pbc dec rec/s", "unzstd rec/s", "raw dec rec/s", "vs pbc", "pack B/r", "frame B/r",
           "json B/r", "enc us/bat");
    for (size_t li = 0; li < 2; li++) {
        for (size_t bi = 0; bi < 3; bi++) {
            result r = run(levels[li], batches[bi], total, 64);
            printf("%-5d %6zu %13.0f %13.0f %13.0f %13.0f %13.0f %7.2fx %9.2f %9.2f %9.2f %10.1f\n", r.level,
                   r.batch, r.encode_rps, r.decode_rps, r.pbc_decode_rps, r.unzstd_rps, r.raw_decode_rps,
                   r.decode_rps / r.pbc_decode_rps,
                   r.pack_bpr, r.frames_bpr, r.json_bpr, r.encode_us_per_batch);
            json_array_append_new(
                arr, json_pack("{sisIsfsfsfsfsfsfsfsfsf}", "zstd_level", r.level, "batch", (json_int_t)r.batch,
                               "unzstd_only_records_per_s", r.unzstd_rps,
                               "decode_codec_none_records_per_s", r.raw_decode_rps,
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
