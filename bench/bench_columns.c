/* Row layout (pbpack v1) vs column layout (pbpack v2): bytes/record and records/s per core (CPU time) for the pack
 * writer and for the reader decoding into row batches, at B = 10, 50, 200, 1000 records per pack, zstd level 3,
 * on the fleet simulator with GPS quantized to 1e-6 and 1e-7 degrees and unquantized (noisy doubles); also the
 * bytes/record of a naive transposition (zigzag deltas of everything, coordinates as 1e-6 fixed point) for scale.
 * Usage: bench_columns [--quick] [--json FILE] [--level N]. Prints a table; writes the results as JSON. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "codec/colpack.h"
#include "sim/fleet.h"
#include "telepack/pack.h"
#include "telepack/record_json.h"
#include "common/clock.h"

static void die(const char *what, tp_err e)
{
    fprintf(stderr, "bench_columns: %s: %s\n", what, tp_strerror(e));
    exit(1);
}

/* One vehicle's records, in time order. */
typedef struct track {
    tp_record *r;
    size_t n, cap;
} track;

typedef struct dataset {
    const char *name;
    double quantum;
    track *tracks;
    size_t ntracks, records;
    double json_bpr;
} dataset;

static void dataset_make(dataset *d, const char *name, double quantum, uint32_t vehicles, uint32_t seconds)
{
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = vehicles;
    o.seconds = seconds;
    o.quantum_deg = quantum;
    o.seed = 42;
    tp_fleet *f;
    tp_err e = tp_fleet_new(&o, &f);
    if (e)
        die("fleet", e);
    d->name = name;
    d->quantum = quantum;
    d->ntracks = vehicles;
    d->tracks = calloc(vehicles, sizeof *d->tracks);
    d->records = 0;
    tp_record r;
    double json = 0;
    char line[TP_RECORD_JSON_MAX];
    while ((e = tp_fleet_next(f, &r)) == TP_OK) {
        track *t = &d->tracks[r.vehicle_id - o.first_vehicle_id];
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 1024;
            t->r = realloc(t->r, t->cap * sizeof *t->r);
        }
        t->r[t->n++] = r;
        size_t len;
        if (tp_record_json_write(&r, line, sizeof line, &len) == TP_OK)
            json += (double)len + 1; /* NDJSON: one line each */
        d->records++;
    }
    if (e != TP_ERR_END)
        die("fleet_next", e);
    d->json_bpr = json / (double)d->records;
    tp_fleet_free(f);
}

static void dataset_free(dataset *d)
{
    for (size_t i = 0; i < d->ntracks; i++)
        free(d->tracks[i].r);
    free(d->tracks);
}

typedef struct packs {
    uint8_t *buf;
    size_t len, cap;
    size_t *off;
    tp_pack_meta *meta;
    size_t n, ncap;
    size_t content; /* uncompressed content bytes, summed */
} packs;

/* Writes every track as packs of B records with the given layout; returns CPU seconds. Packs are kept. */
static double encode_all(const dataset *d, tp_layout layout, size_t B, int level, packs *p)
{
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    o.layout = layout;
    o.level = level;
    tp_pack_writer *w;
    tp_err e = tp_pack_writer_new(&o, &w);
    if (e)
        die("writer_new", e);
    p->len = p->n = p->content = 0;
    double t0 = tp_thread_cpu_s();
    for (size_t v = 0; v < d->ntracks; v++) {
        const track *t = &d->tracks[v];
        for (size_t i = 0; i < t->n; i += B) {
            size_t k = t->n - i < B ? t->n - i : B;
            for (size_t j = 0; j < k; j++)
                if ((e = tp_pack_writer_add(w, &t->r[i + j])))
                    die("writer_add", e);
            size_t bound = tp_pack_writer_bound(w);
            if (p->len + bound > p->cap) {
                p->cap = (p->len + bound) * 2;
                p->buf = realloc(p->buf, p->cap);
            }
            if (p->n == p->ncap) {
                p->ncap = p->ncap ? p->ncap * 2 : 1024;
                p->off = realloc(p->off, p->ncap * sizeof *p->off);
                p->meta = realloc(p->meta, p->ncap * sizeof *p->meta);
            }
            size_t len;
            if ((e = tp_pack_writer_finish(w, p->buf + p->len, p->cap - p->len, &len, &p->meta[p->n])))
                die("writer_finish", e);
            p->off[p->n++] = p->len;
            p->len += len;
            p->content += p->meta[p->n - 1].content_size;
        }
    }
    double dt = tp_thread_cpu_s() - t0;
    tp_pack_writer_free(w);
    return dt;
}

/* Reads every pack into a row batch (cleared per pack, as a sink flushing often would); returns CPU seconds. */
static double decode_all(const packs *p, size_t B, size_t expect)
{
    tp_pack_reader *r;
    tp_row_batch *rows;
    tp_err e;
    if ((e = tp_pack_reader_new(NULL, &r)) || (e = tp_row_batch_new(B, &rows)))
        die("reader_new", e);
    size_t got = 0;
    double t0 = tp_thread_cpu_s();
    for (size_t i = 0; i < p->n; i++) {
        size_t end = i + 1 < p->n ? p->off[i + 1] : p->len;
        tp_row_batch_clear(rows);
        if ((e = tp_pack_reader_open(r, &p->meta[i], p->buf + p->off[i], end - p->off[i])) ||
            (e = tp_pack_reader_read_all(r, rows, 0, (int64_t)i))) {
            fprintf(stderr, "%s\n", tp_pack_reader_error_detail(r));
            die("reader", e);
        }
        got += rows->count;
    }
    double dt = tp_thread_cpu_s() - t0;
    if (got != expect) {
        fprintf(stderr, "bench_columns: decoded %zu records, wrote %zu\n", got, expect);
        exit(1);
    }
    tp_row_batch_free(rows);
    tp_pack_reader_free(r);
    return dt;
}

/* The naive transposition the column layout was measured against first: every field a column of zigzag varint
 * deltas, coordinates as fixed-point 1e-6 degrees (lossy for other data), floats' bits as they are, then zstd.
 * Bytes per record only. */
static uint8_t *put_var(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}
static uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

static double naive_bpr(const dataset *d, size_t B, int level)
{
    ZSTD_CCtx *z = ZSTD_createCCtx();
    uint8_t *content = malloc(B * 9 * 10 + 16), *out = malloc(ZSTD_compressBound(B * 9 * 10 + 16));
    size_t total = 0;
    for (size_t v = 0; v < d->ntracks; v++) {
        const track *t = &d->tracks[v];
        for (size_t i = 0; i < t->n; i += B) {
            size_t k = t->n - i < B ? t->n - i : B;
            const tp_record *r = t->r + i;
            uint8_t *p = content;
            for (int f = 0; f < 9; f++) {
                int64_t prev = 0;
                for (size_t j = 0; j < k; j++) {
                    int64_t x;
                    uint32_t b32;
                    switch (f) {
                    case 0: x = (int64_t)r[j].vehicle_id; break;
                    case 1: x = r[j].sampled_at_ms; break;
                    case 2: x = (int64_t)r[j].seq; break;
                    case 3: x = llround(r[j].latitude * 1e6); break;
                    case 4: x = llround(r[j].longitude * 1e6); break;
                    case 5: memcpy(&b32, &r[j].speed_kmh, 4), x = b32; break;
                    case 6: memcpy(&b32, &r[j].heading_deg, 4), x = b32; break;
                    case 7: memcpy(&b32, &r[j].accuracy_m, 4), x = b32; break;
                    default: x = r[j].meter_status; break;
                    }
                    p = put_var(p, zz(x - prev));
                    prev = x;
                }
            }
            size_t n = ZSTD_compressCCtx(z, out, ZSTD_compressBound(B * 9 * 10 + 16), content,
                                         (size_t)(p - content), level);
            if (ZSTD_isError(n))
                die("naive zstd", TP_ERR_COMPRESS);
            total += n;
        }
    }
    free(content), free(out);
    ZSTD_freeCCtx(z);
    return (double)total / (double)d->records;
}

typedef struct result {
    const char *data, *layout;
    size_t B;
    double bpr, content_bpr, enc_rps, dec_rps, json_ratio;
} result;

/* Runs enc (or dec) repeatedly until min_cpu seconds of CPU time have passed; returns records/s. */
static result measure(const dataset *d, tp_layout layout, size_t B, int level, double min_cpu)
{
    packs p = {0};
    result res = {.data = d->name, .layout = layout == TP_LAYOUT_ROWS ? "rows" : "columns", .B = B};
    double t = 0;
    size_t reps = 0;
    do {
        t += encode_all(d, layout, B, level, &p);
        reps++;
    } while (t < min_cpu);
    res.enc_rps = (double)(d->records * reps) / t;
    res.bpr = (double)p.len / (double)d->records;
    res.content_bpr = (double)p.content / (double)d->records;
    res.json_ratio = d->json_bpr / res.bpr;
    t = 0;
    reps = 0;
    do {
        t += decode_all(&p, B, d->records);
        reps++;
    } while (t < min_cpu);
    res.dec_rps = (double)(d->records * reps) / t;
    free(p.buf), free(p.off), free(p.meta);
    return res;
}

/* Which transform each column gets, and its bytes per record before zstd, over the packs of B records. */
static void column_report(const dataset *d, size_t B, json_t *out)
{
    static const char *const fields[9] = {"vehicle_id", "sampled_at_ms", "seq", "latitude", "longitude",
                                          "speed_kmh", "heading_deg", "accuracy_m", "meter_status"};
    static const char *const tnames[TP_COLX__COUNT] = {"const", "raw", "delta", "delta2", "runs", "xor-planes",
                                                       "delta-planes"};
    tp_colpack_encoder *enc;
    if (tp_colpack_encoder_new(&enc))
        die("encoder", TP_ERR_NOMEM);
    size_t bytes[9] = {0}, uses[9][TP_COLX__COUNT + 1] = {{0}}, scales[9][256] = {{0}};
    for (size_t v = 0; v < d->ntracks; v++) {
        const track *t = &d->tracks[v];
        for (size_t i = 0; i < t->n; i += B) {
            size_t k = t->n - i < B ? t->n - i : B;
            const uint8_t *c;
            size_t len;
            tp_colpack_reader rd;
            if (tp_colpack_encode(enc, t->r + i, k, &c, &len) || tp_colpack_open(&rd, c, len, k))
                die("column report", TP_ERR_CORRUPT);
            for (int f = 0; f < 9; f++) {
                uint8_t tr = rd.cols[f].transform;
                uses[f][tr < TP_COLX__COUNT ? tr : TP_COLX__COUNT]++;
                if (tr < TP_COLX__COUNT) {
                    bytes[f] += rd.cols[f].len;
                    scales[f][rd.cols[f].scale]++;
                }
            }
        }
    }
    printf("\ncolumns of '%s' at B=%zu before zstd (most used transform; decimal scale: d = k / 10^d, 1d = k * 1e-d, ff = none):\n", d->name, B);
    for (int f = 0; f < 9; f++) {
        int best = 0, bs = 0;
        for (int x = 1; x <= TP_COLX__COUNT; x++)
            if (uses[f][x] > uses[f][best])
                best = x;
        for (int s = 1; s < 256; s++)
            if (scales[f][s] > scales[f][bs])
                bs = s;
        const char *tn = best < TP_COLX__COUNT ? tnames[best] : "absent";
        printf("  %-14s %6.3f B/record  %-12s scale 0x%02x\n", fields[f], (double)bytes[f] / (double)d->records,
               tn, bs);
        json_object_set_new(out, fields[f],
                            json_pack("{sfsssi}", "bytes_per_record", (double)bytes[f] / (double)d->records,
                                      "transform", tn, "scale", bs));
    }
    tp_colpack_encoder_free(enc);
}

int main(int argc, char **argv)
{
    const char *json_path = NULL;
    int quick = 0, level = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!strcmp(argv[i], "--level") && i + 1 < argc)
            level = atoi(argv[++i]);
        else {
            printf("usage: bench_columns [--quick] [--json FILE] [--level N]\n"
                   "Row vs column pack layout: bytes/record and records/s per core, B = 10, 50, 200, 1000.\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    uint32_t vehicles = quick ? 20 : 50, seconds = quick ? 1000 : 4000;
    double min_cpu = quick ? 0.05 : 0.3;
    static const size_t Bs[] = {10, 50, 200, 1000};
    dataset ds[3];
    dataset_make(&ds[0], "gps-1e-6", 1e-6, vehicles, seconds);
    dataset_make(&ds[1], "gps-1e-7", 1e-7, vehicles, seconds);
    dataset_make(&ds[2], "gps-raw", 0, vehicles, seconds);

    json_t *root = json_object(), *arr = json_array(), *cols = json_object();
    json_object_set_new(root, "benchmark", json_string("columns"));
    json_object_set_new(root, "zstd_level", json_integer(level));
    json_object_set_new(root, "vehicles", json_integer(vehicles));
    json_object_set_new(root, "seconds", json_integer(seconds));
    printf("%-9s %5s %-8s %8s %9s %8s %12s %12s\n", "data", "B", "layout", "B/rec", "content", "xJSON", "enc rec/s",
           "dec rec/s");
    for (int di = 0; di < 3; di++) {
        for (size_t bi = 0; bi < sizeof Bs / sizeof Bs[0]; bi++) {
            for (int l = 0; l < 2; l++) {
                result r = measure(&ds[di], l ? TP_LAYOUT_COLUMNS : TP_LAYOUT_ROWS, Bs[bi], level, min_cpu);
                printf("%-9s %5zu %-8s %8.2f %9.2f %8.1f %12.0f %12.0f\n", r.data, r.B, r.layout, r.bpr,
                       r.content_bpr, r.json_ratio, r.enc_rps, r.dec_rps);
                json_array_append_new(
                    arr, json_pack("{sssssIsfsfsfsfsfsf}", "data", r.data, "layout", r.layout, "records_per_pack",
                                   (json_int_t)r.B, "bytes_per_record", r.bpr, "content_bytes_per_record",
                                   r.content_bpr, "json_bytes_per_record", ds[di].json_bpr, "smaller_than_json",
                                   r.json_ratio, "encode_records_per_s", r.enc_rps, "decode_records_per_s",
                                   r.dec_rps));
            }
            double nb = naive_bpr(&ds[di], Bs[bi], level);
            printf("%-9s %5zu %-8s %8.2f %9s %8.1f %12s %12s\n", ds[di].name, Bs[bi], "naive", nb, "-",
                   ds[di].json_bpr / nb, "-", "-");
            json_array_append_new(arr, json_pack("{sssssIsf}", "data", ds[di].name, "layout", "naive-transposed",
                                                 "records_per_pack", (json_int_t)Bs[bi], "bytes_per_record", nb));
        }
        json_t *c = json_object();
        column_report(&ds[di], 200, c);
        json_object_set_new(cols, ds[di].name, c);
    }
    json_object_set_new(root, "results", arr);
    json_object_set_new(root, "columns_at_B200", cols);
    if (json_path && json_dump_file(root, json_path, JSON_INDENT(2))) {
        fprintf(stderr, "bench_columns: cannot write %s\n", json_path);
        return 1;
    }
    json_decref(root);
    for (int di = 0; di < 3; di++)
        dataset_free(&ds[di]);
    return 0;
}
