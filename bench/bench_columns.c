/* Row layout (pbpack v1) vs column layout (pbpack v2) vs multi-vehicle column packs (version 3): bytes/record and
 * records/s per core (CPU time) for the pack writer and for the reader decoding into row batches, zstd level 3.
 * Data: the fleet simulator with GPS quantized to 1e-6 and 1e-7 degrees and unquantized (noisy doubles), at B = 10,
 * 50, 200, 1000 records of one vehicle per pack, and (layout v3) B = 200, 1000, 10000 records of the whole fleet in
 * arrival order per pack; and real traces: taxis of Porto (bench/data/README.md; --porto FILE for the full set) as
 * one pack per trip (the real pack sizes), per taxi at B = 50 and 200, and in version-3 packs. Also the bytes/record
 * of a naive transposition (zigzag deltas of everything, coordinates as 1e-6 fixed point) for scale.
 * Usage: bench_columns [--quick] [--json FILE] [--level N] [--porto FILE|--no-porto] [--only TEXT]
 * [--min-cpu S]. Prints a table; writes the results as JSON. Also zstd dictionaries (rows "nodict" and "dict8K":
 * trained on every other pack, measured on the rest). */
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

/* --only: run just the lines whose "data layout B" contains this (for profiling one case). */
static const char *only;

/* One vehicle's records in time order, packed on their own (a vehicle's whole track, or one trip). */
typedef struct track {
    tp_record *r;
    size_t n, cap;
} track;

typedef struct dataset {
    const char *name;
    track *tracks;
    size_t ntracks, records;
    size_t longest; /* records of the longest track */
    double json_bpr;
    tp_record *by_time; /* every record in arrival order (sampled_at_ms, then track order): what ingest sees */
} dataset;

static void track_push(track *t, const tp_record *r)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->r = realloc(t->r, t->cap * sizeof *t->r);
        if (!t->r)
            die("records", TP_ERR_NOMEM);
    }
    t->r[t->n++] = *r;
}

static int cmp_time(const void *a, const void *b)
{
    const tp_record *x = a, *y = b;
    if (x->sampled_at_ms != y->sampled_at_ms)
        return x->sampled_at_ms < y->sampled_at_ms ? -1 : 1;
    return x < y ? -1 : x > y; /* stable: by position in the array */
}

/* Totals, the NDJSON size and the arrival order of a dataset whose tracks are filled. */
static void dataset_finish(dataset *d)
{
    char line[TP_RECORD_JSON_MAX];
    double json = 0;
    d->records = d->longest = 0;
    for (size_t i = 0; i < d->ntracks; i++) {
        d->records += d->tracks[i].n;
        if (d->tracks[i].n > d->longest)
            d->longest = d->tracks[i].n;
    }
    d->by_time = malloc(d->records * sizeof *d->by_time);
    size_t k = 0;
    for (size_t i = 0; i < d->ntracks; i++)
        for (size_t j = 0; j < d->tracks[i].n; j++) {
            size_t len;
            if (tp_record_json_write(&d->tracks[i].r[j], line, sizeof line, &len) == TP_OK)
                json += (double)len + 1; /* NDJSON: one line each */
            d->by_time[k++] = d->tracks[i].r[j];
        }
    qsort(d->by_time, d->records, sizeof *d->by_time, cmp_time);
    d->json_bpr = json / (double)d->records;
}

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
    memset(d, 0, sizeof *d);
    d->name = name;
    d->ntracks = vehicles;
    d->tracks = calloc(vehicles, sizeof *d->tracks);
    tp_record r;
    while ((e = tp_fleet_next(f, &r)) == TP_OK)
        track_push(&d->tracks[r.vehicle_id - o.first_vehicle_id], &r);
    if (e != TP_ERR_END)
        die("fleet_next", e);
    tp_fleet_free(f);
    dataset_finish(d);
}

/* Porto taxi trips (the ECML/PKDD 2015 challenge's CSV: one trip a row; tools/porto-ndjson documents the same
 * mapping): vehicle_id = TAXI_ID, sampled_at_ms = (TIMESTAMP + 15 i) * 1000, seq = i, latitude and longitude the
 * polyline's decimal text through strtod. One track per trip. Returns 0 when the file cannot be read. */
static int dataset_porto(dataset *d, const char *name, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    memset(d, 0, sizeof *d);
    d->name = name;
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int col_taxi = -1, col_ts = -1, col_poly = -1;
    for (size_t row = 0; (len = getline(&line, &lcap, f)) > 0; row++) {
        /* split on commas outside double quotes, unquoting in place */
        char *field[16];
        int nf = 0, quoted = 0;
        char *w = line, *start = line;
        for (char *p = line; p < line + len && *p != '\n' && *p != '\r'; p++) {
            if (*p == '"') {
                quoted = !quoted;
            } else if (*p == ',' && !quoted) {
                *w++ = 0;
                if (nf < 16)
                    field[nf++] = start;
                start = w;
            } else {
                *w++ = *p;
            }
        }
        *w = 0;
        if (nf < 16)
            field[nf++] = start;
        if (row == 0) {
            for (int i = 0; i < nf; i++) {
                if (!strcmp(field[i], "TAXI_ID"))
                    col_taxi = i;
                if (!strcmp(field[i], "TIMESTAMP"))
                    col_ts = i;
                if (!strcmp(field[i], "POLYLINE"))
                    col_poly = i;
            }
            if (col_taxi < 0 || col_ts < 0 || col_poly < 0) {
                fprintf(stderr, "bench_columns: %s: no TAXI_ID, TIMESTAMP and POLYLINE columns in the header\n", path);
                exit(1);
            }
            continue;
        }
        if (nf <= col_poly)
            continue;
        tp_record r = {0};
        r.vehicle_id = strtoull(field[col_taxi], NULL, 10);
        long long start_s = strtoll(field[col_ts], NULL, 10);
        track t = {0};
        char *p = field[col_poly];
        for (uint64_t i = 0;; i++) { /* [[lon,lat],[lon,lat],...] */
            while (*p == '[' || *p == ',' || *p == ' ')
                p++;
            char *end;
            double lon = strtod(p, &end);
            if (end == p || *end != ',')
                break;
            p = end + 1;
            double lat = strtod(p, &end);
            if (end == p)
                break;
            p = end;
            while (*p == ']')
                p++;
            r.sampled_at_ms = (int64_t)(start_s + 15 * (long long)i) * 1000;
            r.seq = i;
            r.latitude = lat;
            r.longitude = lon;
            track_push(&t, &r);
        }
        if (!t.n)
            continue;
        if (d->ntracks == cap) {
            cap = cap ? cap * 2 : 1024;
            d->tracks = realloc(d->tracks, cap * sizeof *d->tracks);
        }
        d->tracks[d->ntracks++] = t;
    }
    free(line);
    fclose(f);
    if (!d->ntracks)
        return 0;
    dataset_finish(d);
    return 1;
}

static int cmp_track_vehicle(const void *a, const void *b)
{
    const track *x = a, *y = b;
    if (x->r[0].vehicle_id != y->r[0].vehicle_id)
        return x->r[0].vehicle_id < y->r[0].vehicle_id ? -1 : 1;
    if (x->r[0].sampled_at_ms != y->r[0].sampled_at_ms)
        return x->r[0].sampled_at_ms < y->r[0].sampled_at_ms ? -1 : 1;
    return 0;
}

/* The same records with one track per vehicle: its trips back to back in time order (a replay of each taxi). */
static void dataset_by_vehicle(dataset *d, const char *name, const dataset *trips)
{
    memset(d, 0, sizeof *d);
    d->name = name;
    track *sorted = malloc(trips->ntracks * sizeof *sorted);
    memcpy(sorted, trips->tracks, trips->ntracks * sizeof *sorted);
    qsort(sorted, trips->ntracks, sizeof *sorted, cmp_track_vehicle);
    d->tracks = calloc(trips->ntracks, sizeof *d->tracks);
    for (size_t i = 0; i < trips->ntracks; i++) {
        if (!d->ntracks || d->tracks[d->ntracks - 1].r[0].vehicle_id != sorted[i].r[0].vehicle_id)
            d->ntracks++;
        for (size_t j = 0; j < sorted[i].n; j++)
            track_push(&d->tracks[d->ntracks - 1], &sorted[i].r[j]);
    }
    free(sorted);
    dataset_finish(d);
}

static void dataset_free(dataset *d)
{
    for (size_t i = 0; i < d->ntracks; i++)
        free(d->tracks[i].r);
    free(d->tracks);
    free(d->by_time);
}

/* How packs are cut: one vehicle's track in chunks of B records (B = 0: the whole track, i.e. one pack per trip),
 * in layout rows (v1) or columns (v2); or (V3) the records of every vehicle in arrival order, B at a time, in
 * multi-vehicle column packs (version 3), as `telepack ingest --pack-by partition` cuts them. */
/* COLUMNS_CC and V3_CC: the same packs with coded columns (docs/FORMAT_V2.md, "Coded columns") */
typedef enum mode { MODE_ROWS, MODE_COLUMNS, MODE_V3, MODE_COLUMNS_CC, MODE_V3_CC } mode;
static const char *const mode_name[5] = {"rows", "columns", "v3", "columns+cc", "v3+cc"};
#define IS_V3(m) ((m) == MODE_V3 || (m) == MODE_V3_CC)

/* The dictionary pass (--dict): packs of even index train, odd ones are measured (pack_parity 0 or 1); -1 = all.
 * bench_dict/bench_dicts: what the writer and the reader use (NULL: none). */
static int pack_parity = -1;
static const tp_dict *bench_dict;
static const tp_dict_set *bench_dicts;

/* Runs the statements (the last argument) for each pack's records recs[0..k), in order (every other pack when
 * pack_parity >= 0). */
#define FOR_EACH_PACK(d, m, B, recs, k, ...) FOR_EACH_PACK_ALL(d, m, B, recs, k,                                     \
        if (pack_parity < 0 || (int)(pidx_++ & 1) == pack_parity) { __VA_ARGS__ })
#define FOR_EACH_PACK_ALL(d, m, B, recs, k, ...)                                                                       \
    do {                                                                                                               \
        size_t pidx_ = 0;                                                                                              \
        (void)pidx_;                                                                                                   \
        if (IS_V3(m)) {                                                                                                \
            for (size_t i_ = 0; i_ < (d)->records; i_ += (B)) {                                                        \
                size_t k = (d)->records - i_ < (B) ? (d)->records - i_ : (B);                                          \
                const tp_record *recs = (d)->by_time + i_;                                                             \
                __VA_ARGS__                                                                                            \
            }                                                                                                          \
        } else {                                                                                                       \
            for (size_t v_ = 0; v_ < (d)->ntracks; v_++) {                                                             \
                const track *t_ = &(d)->tracks[v_];                                                                    \
                size_t b_ = (B) ? (B) : t_->n;                                                                         \
                for (size_t i_ = 0; i_ < t_->n; i_ += b_) {                                                            \
                    size_t k = t_->n - i_ < b_ ? t_->n - i_ : b_;                                                      \
                    const tp_record *recs = t_->r + i_;                                                                \
                    __VA_ARGS__                                                                                        \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

typedef struct packs {
    uint8_t *buf;
    size_t len, cap;
    size_t *off;
    tp_pack_meta *meta;
    size_t n, ncap;
    size_t content; /* uncompressed content bytes, summed */
    size_t records; /* records in them */
} packs;

/* Writes every pack (see mode) with the pack writer; returns CPU seconds. Packs are kept. */
static double encode_all(const dataset *d, mode m, size_t B, int level, packs *p)
{
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    o.layout = m == MODE_ROWS ? TP_LAYOUT_ROWS : TP_LAYOUT_COLUMNS;
    o.multi_vehicle = IS_V3(m);
    o.coded_columns = m == MODE_COLUMNS_CC || m == MODE_V3_CC;
    o.level = level;
    o.dict = bench_dict;
    tp_pack_writer *w;
    tp_err e = tp_pack_writer_new(&o, &w);
    if (e)
        die("writer_new", e);
    p->len = p->n = p->content = p->records = 0;
    double t0 = tp_thread_cpu_s();
    FOR_EACH_PACK(d, m, B, recs, k, {
        for (size_t j = 0; j < k; j++)
            if ((e = tp_pack_writer_add(w, &recs[j])))
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
        p->records += k;
    });
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
    tp_pack_reader_opts ro;
    tp_pack_reader_opts_init(&ro);
    ro.dicts = bench_dicts;
    if ((e = tp_pack_reader_new(&ro, &r)) || (e = tp_row_batch_new(B, &rows)))
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
    size_t cap = (B ? B : d->longest) * 9 * 10 + 16;
    ZSTD_CCtx *z = ZSTD_createCCtx();
    uint8_t *content = malloc(cap), *out = malloc(ZSTD_compressBound(cap));
    size_t total = 0;
    FOR_EACH_PACK(d, MODE_COLUMNS, B, r, k, {
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
        size_t n = ZSTD_compressCCtx(z, out, ZSTD_compressBound(cap), content, (size_t)(p - content), level);
        if (ZSTD_isError(n))
            die("naive zstd", TP_ERR_COMPRESS);
        total += n;
    });
    free(content), free(out);
    ZSTD_freeCCtx(z);
    return (double)total / (double)d->records;
}

typedef struct result {
    const char *data, *layout;
    size_t B; /* 0: one pack per track (trip) */
    double bpr, content_bpr, enc_rps, dec_rps, json_ratio, records_per_pack;
} result;

/* Runs enc (or dec) repeatedly until min_cpu seconds of CPU time have passed; returns records/s. */
static result measure(const dataset *d, mode m, size_t B, int level, double min_cpu)
{
    packs p = {0};
    result res = {.data = d->name, .layout = mode_name[m], .B = B};
    double t = 0;
    size_t reps = 0;
    do {
        t += encode_all(d, m, B, level, &p);
        reps++;
    } while (t < min_cpu);
    res.enc_rps = (double)(p.records * reps) / t;
    res.bpr = (double)p.len / (double)p.records;
    res.content_bpr = (double)p.content / (double)p.records;
    res.json_ratio = d->json_bpr / res.bpr;
    res.records_per_pack = (double)p.records / (double)p.n;
    t = 0;
    reps = 0;
    size_t most = IS_V3(m) || B ? B : d->longest;
    do {
        t += decode_all(&p, most, p.records);
        reps++;
    } while (t < min_cpu);
    res.dec_rps = (double)(p.records * reps) / t;
    free(p.buf), free(p.off), free(p.meta);
    return res;
}

static int cmp_vehicle_time(const void *a, const void *b)
{
    const tp_record *x = a, *y = b;
    if (x->vehicle_id != y->vehicle_id)
        return x->vehicle_id < y->vehicle_id ? -1 : 1;
    if (x->sampled_at_ms != y->sampled_at_ms)
        return x->sampled_at_ms < y->sampled_at_ms ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Which transform each column gets (the share of packs with the most used one), and its bytes per record before
 * zstd, over the packs of mode m and B. */
static void column_report(const dataset *d, mode m, size_t B, json_t *out)
{
    if (only)
        return;
    static const char *const fields[9] = {"vehicle_id", "sampled_at_ms", "seq", "latitude", "longitude",
                                          "speed_kmh", "heading_deg", "accuracy_m", "meter_status"};
    tp_colpack_encoder *enc;
    if (tp_colpack_encoder_new(&enc))
        die("encoder", TP_ERR_NOMEM);
    size_t bytes[9] = {0}, uses[9][TP_COLX__COUNT + 1] = {{0}}, scales[9][256] = {{0}}, npacks = 0;
    double ent[9] = {0}; /* order-0 entropy of each column body, in bytes: what coding each column on its own gets */
    tp_record *sorted = m == MODE_V3 ? malloc(B * sizeof *sorted) : NULL;
    FOR_EACH_PACK(d, m, B, recs, k, {
        const uint8_t *c;
        size_t len;
        tp_colpack_reader rd;
        if (m == MODE_V3) {
            memcpy(sorted, recs, k * sizeof *recs);
            qsort(sorted, k, sizeof *sorted, cmp_vehicle_time);
            recs = sorted;
        }
        if (tp_colpack_encode_version(enc, recs, k, m == MODE_V3 ? 3 : 2, &c, &len) || tp_colpack_open(&rd, c, len, k))
            die("column report", TP_ERR_CORRUPT);
        npacks++;
        for (int f = 0; f < 9; f++) {
            uint8_t tr = rd.cols[f].transform;
            uses[f][tr < TP_COLX__COUNT ? tr : TP_COLX__COUNT]++;
            if (tr < TP_COLX__COUNT) {
                bytes[f] += rd.cols[f].len;
                scales[f][rd.cols[f].scale]++;
                uint32_t h[256] = {0};
                for (size_t i = 0; i < rd.cols[f].len; i++)
                    h[rd.cols[f].body[i]]++;
                for (int b = 0; b < 256; b++)
                    if (h[b])
                        ent[f] += (double)h[b] * log2((double)rd.cols[f].len / (double)h[b]) / 8;
            }
        }
    });
    free(sorted);
    char b[32];
    snprintf(b, sizeof b, B ? "%zu" : "trip", B);
    printf("\ncolumns of '%s' %s at B=%s before zstd, and the order-0 entropy of each column's bytes (most used "
           "transform, share of packs; decimal scale: d = k / 10^d, 1d = k * 1e-d, ff = none):\n",
           d->name, mode_name[m], b);
    double ent_sum = 0;
    for (int f = 0; f < 9; f++) {
        int best = 0, bs = 0;
        for (int x = 1; x <= TP_COLX__COUNT; x++)
            if (uses[f][x] > uses[f][best])
                best = x;
        for (int s = 1; s < 256; s++)
            if (scales[f][s] > scales[f][bs])
                bs = s;
        const char *tn = best < TP_COLX__COUNT ? tp_units_transform_name((uint8_t)best) : "absent";
        double share = (double)uses[f][best] / (double)npacks;
        printf("  %-14s %6.3f B/record  %6.3f entropy  %-12s %4.0f%%  scale 0x%02x\n", fields[f],
               (double)bytes[f] / (double)d->records, ent[f] / (double)d->records, tn, 100 * share, bs);
        ent_sum += ent[f];
        json_object_set_new(out, fields[f],
                            json_pack("{sfsfsssfsi}", "bytes_per_record", (double)bytes[f] / (double)d->records,
                                      "entropy_bytes_per_record", ent[f] / (double)d->records, "transform", tn,
                                      "share_of_packs", share, "scale", bs));
    }
    printf("  all columns' entropy %.3f B/record\n", ent_sum / (double)d->records);
    tp_colpack_encoder_free(enc);
}

/* One line of the table and of the JSON results. */
static void report(const dataset *d, mode m, size_t B, int level, double min_cpu, json_t *arr)
{
    char b[32], label[96];
    snprintf(b, sizeof b, B ? "%zu" : "trip", B);
    snprintf(label, sizeof label, "%s %s %s", d->name, mode_name[m], b);
    if (only && !strstr(label, only))
        return;
    result r = measure(d, m, B, level, min_cpu);
    printf("%-10s %5s %-8s %8.1f %8.2f %9.2f %8.1f %12.0f %12.0f\n", r.data, b, r.layout, r.records_per_pack, r.bpr,
           r.content_bpr, r.json_ratio, r.enc_rps, r.dec_rps);
    json_array_append_new(
        arr, json_pack("{sssssIsfsfsfsfsfsfsf}", "data", r.data, "layout", r.layout, "records_per_pack",
                       (json_int_t)r.B, "mean_records_per_pack", r.records_per_pack, "bytes_per_record", r.bpr,
                       "content_bytes_per_record", r.content_bpr, "json_bytes_per_record", d->json_bpr,
                       "smaller_than_json", r.json_ratio, "encode_records_per_s", r.enc_rps, "decode_records_per_s",
                       r.dec_rps));
}

static void report_naive(const dataset *d, size_t B, int level, json_t *arr)
{
    if (only)
        return;
    double nb = naive_bpr(d, B, level);
    char b[32];
    snprintf(b, sizeof b, B ? "%zu" : "trip", B);
    printf("%-10s %5s %-8s %8s %8.2f %9s %8.1f %12s %12s\n", d->name, b, "naive", "", nb, "-", d->json_bpr / nb, "-",
           "-");
    json_array_append_new(arr, json_pack("{sssssIsf}", "data", d->name, "layout", "naive-transposed",
                                         "records_per_pack", (json_int_t)B, "bytes_per_record", nb));
}

/* zstd dictionaries (docs/FORMAT_V2.md): a dictionary of dict_size bytes trained on the v2 contents of the even
 * packs (tp_dict_train, as `telepack dict train`), then the odd packs measured without and with it: bytes/record,
 * and writer and reader records/s per core. */
static void report_dict(const dataset *d, size_t B, size_t dict_size, int level, double min_cpu, json_t *arr)
{
    char b[32], label[96];
    snprintf(b, sizeof b, B ? "%zu" : "trip", B);
    snprintf(label, sizeof label, "%s dict %s", d->name, b);
    if (only && !strstr(label, only))
        return;
    tp_colpack_encoder *enc;
    if (tp_colpack_encoder_new(&enc))
        die("encoder", TP_ERR_NOMEM);
    uint8_t *samples = NULL;
    size_t *sizes = NULL, n = 0, len = 0, cap = 0, ncap = 0;
    pack_parity = 0;
    FOR_EACH_PACK(d, MODE_COLUMNS, B, recs, k, {
        const uint8_t *c;
        size_t cl;
        if (tp_colpack_encode_version(enc, recs, k, 2, &c, &cl))
            die("encode", TP_ERR_CORRUPT);
        if (len + cl > cap)
            samples = realloc(samples, cap = (len + cl) * 2);
        if (n == ncap)
            sizes = realloc(sizes, (ncap = ncap ? ncap * 2 : 1024) * sizeof *sizes);
        memcpy(samples + len, c, cl);
        len += cl;
        sizes[n++] = cl;
    });
    tp_colpack_encoder_free(enc);
    uint8_t *dict = malloc(dict_size);
    size_t dict_len;
    char err[512];
    tp_dict *cd, *dd;
    tp_dict_set *set;
    if (tp_dict_train(samples, sizes, n, dict, dict_size, &dict_len, err, sizeof err) ||
        tp_dict_new(dict, dict_len, level, &cd, err, sizeof err) ||
        tp_dict_new(dict, dict_len, 0, &dd, err, sizeof err) ||
        tp_dict_set_new(&set) || tp_dict_set_add(set, dd, err, sizeof err)) {
        fprintf(stderr, "bench_columns: %s: %s\n", label, err);
        exit(1);
    }
    pack_parity = 1;
    result r[2];
    r[0] = measure(d, MODE_COLUMNS, B, level, min_cpu);
    bench_dict = cd;
    bench_dicts = set;
    r[1] = measure(d, MODE_COLUMNS, B, level, min_cpu);
    bench_dict = NULL;
    bench_dicts = NULL;
    pack_parity = -1;
    for (int i = 0; i < 2; i++) {
        char lay[32];
        snprintf(lay, sizeof lay, i ? "dict%zuK" : "nodict", dict_size / 1024);
        printf("%-10s %5s %-8s %8.1f %8.2f %9.2f %8.1f %12.0f %12.0f\n", d->name, b, lay, r[i].records_per_pack,
               r[i].bpr, r[i].content_bpr, r[i].json_ratio, r[i].enc_rps, r[i].dec_rps);
        json_array_append_new(
            arr, json_pack("{sssssIsIsfsfsfsfsI}", "data", d->name, "layout",
                           i ? "columns+dict" : "columns (dict test half)",
                           "records_per_pack", (json_int_t)B, "dict_bytes", (json_int_t)(i ? dict_len : 0),
                           "mean_records_per_pack", r[i].records_per_pack, "bytes_per_record", r[i].bpr,
                           "encode_records_per_s", r[i].enc_rps, "decode_records_per_s", r[i].dec_rps,
                           "training_packs", (json_int_t)n));
    }
    tp_dict_set_free(set);
    tp_dict_free(cd);
    free(dict);
    free(samples);
    free(sizes);
}

#ifndef TP_BENCH_DATA_DIR
#define TP_BENCH_DATA_DIR "bench/data"
#endif

int main(int argc, char **argv)
{
    const char *json_path = NULL, *porto = TP_BENCH_DATA_DIR "/porto-taxi-excerpt.csv";
    int quick = 0, level = 3;
    double min_cpu_arg = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!strcmp(argv[i], "--level") && i + 1 < argc)
            level = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--porto") && i + 1 < argc)
            porto = argv[++i];
        else if (!strcmp(argv[i], "--no-porto"))
            porto = NULL;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--min-cpu") && i + 1 < argc)
            min_cpu_arg = atof(argv[++i]);
        else {
            printf("usage: bench_columns [--quick] [--json FILE] [--level N] [--porto FILE|--no-porto] [--only TEXT]\n"
                   "                     [--min-cpu S]\n"
                   "Row vs column vs multi-vehicle (v3) packs: bytes/record and records/s per core on the fleet\n"
                   "simulator (B = 10, 50, 200, 1000 per vehicle; v3 200, 1000, 10000 of the fleet) and on real\n"
                   "taxi trips of Porto (--porto: the challenge's train.csv or an excerpt; default the one in\n"
                   "bench/data). --only runs the lines whose \"data layout B\" holds TEXT (\"gps-1e-6 v3 10000\");\n"
                   "--min-cpu: CPU seconds each measurement runs at least (default 0.3, --quick 0.05).\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    uint32_t vehicles = quick ? 20 : 50, seconds = quick ? 1000 : 4000;
    double min_cpu = min_cpu_arg > 0 ? min_cpu_arg : quick ? 0.05 : 0.3;
    static const size_t Bs[] = {10, 50, 200, 1000}, Bv3[] = {200, 1000, 10000};
    dataset ds[3], trips, taxis;
    dataset_make(&ds[0], "gps-1e-6", 1e-6, vehicles, seconds);
    dataset_make(&ds[1], "gps-1e-7", 1e-7, vehicles, seconds);
    dataset_make(&ds[2], "gps-raw", 0, vehicles, seconds);
    int have_porto = porto && dataset_porto(&trips, "porto-trip", porto);
    if (porto && !have_porto)
        fprintf(stderr, "bench_columns: no Porto trips read from %s; real traces left out\n", porto);
    if (have_porto)
        dataset_by_vehicle(&taxis, "porto-taxi", &trips);

    json_t *root = json_object(), *arr = json_array(), *cols = json_object();
    json_object_set_new(root, "benchmark", json_string("columns"));
    json_object_set_new(root, "zstd_level", json_integer(level));
    json_object_set_new(root, "vehicles", json_integer(vehicles));
    json_object_set_new(root, "seconds", json_integer(seconds));
    printf("%-10s %5s %-8s %8s %8s %9s %8s %12s %12s\n", "data", "B", "layout", "rec/pack", "B/rec", "content",
           "xJSON", "enc rec/s", "dec rec/s");
    for (int di = 0; di < 3; di++) {
        for (size_t bi = 0; bi < sizeof Bs / sizeof Bs[0]; bi++) {
            report(&ds[di], MODE_ROWS, Bs[bi], level, min_cpu, arr);
            report(&ds[di], MODE_COLUMNS, Bs[bi], level, min_cpu, arr);
            report(&ds[di], MODE_COLUMNS_CC, Bs[bi], level, min_cpu, arr);
            report_naive(&ds[di], Bs[bi], level, arr);
        }
        if (di == 0)
            for (size_t bi = 0; bi < sizeof Bv3 / sizeof Bv3[0]; bi++) {
                report(&ds[di], MODE_V3, Bv3[bi], level, min_cpu, arr);
                report(&ds[di], MODE_V3_CC, Bv3[bi], level, min_cpu, arr);
            }
    }
    if (have_porto) {
        json_object_set_new(root, "porto_source", json_string(porto));
        json_object_set_new(root, "porto_trips", json_integer((json_int_t)trips.ntracks));
        json_object_set_new(root, "porto_records", json_integer((json_int_t)trips.records));
        report(&trips, MODE_ROWS, 0, level, min_cpu, arr);
        report(&trips, MODE_COLUMNS, 0, level, min_cpu, arr);
        report(&trips, MODE_COLUMNS_CC, 0, level, min_cpu, arr);
        report_naive(&trips, 0, level, arr);
        for (size_t B = 50; B <= 200; B += 150) {
            report(&taxis, MODE_ROWS, B, level, min_cpu, arr);
            report(&taxis, MODE_COLUMNS, B, level, min_cpu, arr);
            report(&taxis, MODE_COLUMNS_CC, B, level, min_cpu, arr);
            report_naive(&taxis, B, level, arr);
        }
        report(&trips, MODE_V3, 1000, level, min_cpu, arr);
        report(&trips, MODE_V3_CC, 1000, level, min_cpu, arr);
        report(&trips, MODE_V3, 10000, level, min_cpu, arr);
        report(&trips, MODE_V3_CC, 10000, level, min_cpu, arr);
    }
    /* dictionaries: the fleet at B = 50 and 200 (and 10), Porto one pack per trip and per taxi at B = 50 */
    for (size_t bi = 0; bi < 3; bi++)
        report_dict(&ds[0], Bs[bi], 8192, level, min_cpu, arr);
    if (have_porto) {
        report_dict(&trips, 0, 8192, level, min_cpu, arr);
        report_dict(&trips, 0, 16384, level, min_cpu, arr);
        report_dict(&taxis, 50, 8192, level, min_cpu, arr);
    }
    for (int di = 0; di < 3; di++) {
        json_t *c = json_object();
        column_report(&ds[di], MODE_COLUMNS, 200, c);
        json_object_set_new(cols, ds[di].name, c);
    }
    if (have_porto) {
        json_t *c = json_object();
        column_report(&trips, MODE_COLUMNS, 0, c);
        json_object_set_new(cols, "porto-trip", c);
        c = json_object();
        column_report(&taxis, MODE_COLUMNS, 200, c);
        json_object_set_new(cols, "porto-taxi", c);
    }
    json_t *c = json_object();
    column_report(&ds[0], MODE_V3, 200, c);
    json_object_set_new(cols, "gps-1e-6-v3", c);
    json_object_set_new(root, "results", arr);
    json_object_set_new(root, "columns", cols);
    if (json_path && json_dump_file(root, json_path, JSON_INDENT(2))) {
        fprintf(stderr, "bench_columns: cannot write %s\n", json_path);
        return 1;
    }
    json_decref(root);
    for (int di = 0; di < 3; di++)
        dataset_free(&ds[di]);
    if (have_porto) {
        dataset_free(&trips);
        dataset_free(&taxis);
    }
    return 0;
}
