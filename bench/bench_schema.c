/* Run-time schema benchmark (issue 15), one core, CPU time:
 *  1. decode and re-encode of simulated VehicleRecord messages by the hand-written codec (tp_record_decode) and by
 *     the run-time schema (tp_dyn_decode into a 10,000-row batch), ns/record, best of 5 passes;
 *  2. packs of 200 records a key (zstd level 3), bytes/record and encode/decode records per CPU-second:
 *     - EV telemetry (tests/schema/ev_telemetry.proto, messages from tests/schema/ev_gen.py) as pbpack v1 rows and
 *       pbpack v4 columns, the way `ingest --schema` writes them (grouper, column writer, zstd) and the sink reads
 *       them (pack reader, then tp_dyn_decode per frame or tp_dyncol_decode into a tp_dyn_batch);
 *     - the built-in VehicleRecord through the same generic path (its descriptor as a run-time schema) against the
 *       built-in codec (tp_record_decode, per-vehicle grouping, tp_pack_writer rows / columns v2; tp_pack_reader
 *       into a tp_row_batch);
 *  3. a live-paced EV fleet (each key's record once a tick, groups flushed every tick): bytes/record of one pack
 *     per key (--pack-by vehicle) against one per partition (--pack-by partition: several keys, sorted).
 * Rates are records per CPU-second of the best of several passes. Encoding starts from the messages' bytes in
 * arrival order (keys interleaved) and ends with the compressed packs.
 * Usage: bench_schema [--quick] [--json FILE] [--level N] [--only ROW] [--vehicles N] VEHICLE.pb EV.pb EV.bin
 * (--only ROW: only that row of the pack table, counted from 0, without part 1: for a profiler; --vehicles N: the
 * vehicles of EV.bin, its records a tick for part 3, default 200 as `ev_gen.py gen 200 200` makes it)
 * (VEHICLE.pb, EV.pb: build/tests/schema/{vehicle,ev_telemetry}.pb; EV.bin: varint-delimited EvTelemetry messages,
 * build/bench/bench_ev.bin; `meson test -C build --benchmark schema` builds all three and runs it). */
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "common/clock.h"
#include "kafka/schema_headers.h"
#include "schema/dyncols.h"
#include "schema/dynpack.h"
#include "schema/dynrow.h"
#include "schema/schema.h"
#include "sim/fleet.h"
#include "telepack/pack.h"
#include "telepack/record.h"
#include "telepack/rows.h"
#include "telepack/varint.h"

#define B 200 /* records per pack (the ingest default) */

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_schema: %s: %s\n", what, detail);
    exit(1);
}

static size_t read_file(const char *path, uint8_t **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path, "cannot open");
    size_t cap = 1 << 20, n = 0;
    uint8_t *p = malloc(cap);
    for (size_t k; p && (k = fread(p + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap)
            p = realloc(p, cap *= 2);
    }
    fclose(f);
    if (!p)
        die(path, "out of memory");
    *out = p;
    return n;
}

static tp_schema *load_schema(const char *path, const char *name)
{
    uint8_t *d;
    size_t n = read_file(path, &d);
    tp_schema *s;
    char err[256];
    if (tp_schema_load(d, n, name, &s, err, sizeof err))
        die(path, err);
    free(d);
    return s;
}

/* Messages: msgs[off[i] .. off[i + 1]). */
typedef struct msgset {
    const char *name;
    uint8_t *msgs;
    size_t *off, n;
} msgset;

static void msgs_from_delimited(msgset *m, const char *path)
{
    uint8_t *d;
    size_t len = read_file(path, &d), pos = 0, cap = 1024;
    m->msgs = d;
    m->off = malloc(cap * sizeof *m->off);
    m->n = 0;
    size_t *start = m->off;
    /* off[i] is where message i starts; a varint prefix sits between messages, so keep starts and ends apart */
    size_t *end = malloc(cap * sizeof *end);
    while (pos < len) {
        uint64_t v;
        size_t used;
        if (tp_varint_decode(d + pos, len - pos, &v, &used) || v > len - pos - used)
            die(path, "not varint-delimited messages");
        if (m->n + 1 >= cap) {
            cap *= 2;
            start = m->off = realloc(m->off, cap * sizeof *m->off);
            end = realloc(end, cap * sizeof *end);
        }
        start[m->n] = pos + used;
        end[m->n++] = pos + used + (size_t)v;
        pos += used + (size_t)v;
    }
    /* compact into msgs[off[i] .. off[i + 1]) */
    size_t w = 0;
    for (size_t i = 0; i < m->n; i++) {
        size_t l = end[i] - start[i];
        memmove(d + w, d + start[i], l);
        start[i] = w;
        w += l;
    }
    m->off[m->n] = w;
    free(end);
}

static void msgs_from_fleet(msgset *m, uint32_t vehicles, uint32_t seconds, tp_record **recs)
{
    tp_fleet_opts o;
    tp_fleet_opts_init(&o);
    o.vehicles = vehicles;
    o.seconds = seconds;
    o.seed = 42;
    tp_fleet *fl;
    if (tp_fleet_new(&o, &fl))
        die("fleet", "cannot start");
    size_t cap = 4096;
    m->msgs = malloc(cap * TP_RECORD_MAX_ENCODED);
    m->off = malloc((cap + 1) * sizeof *m->off);
    *recs = malloc(cap * sizeof **recs);
    m->n = 0;
    m->off[0] = 0;
    tp_record r;
    while (tp_fleet_next(fl, &r) == TP_OK) {
        if (m->n == cap) {
            cap *= 2;
            m->msgs = realloc(m->msgs, cap * TP_RECORD_MAX_ENCODED);
            m->off = realloc(m->off, (cap + 1) * sizeof *m->off);
            *recs = realloc(*recs, cap * sizeof **recs);
        }
        size_t len;
        if (tp_record_encode(&r, m->msgs + m->off[m->n], TP_RECORD_MAX_ENCODED, &len))
            die("fleet", "encode");
        (*recs)[m->n] = r;
        m->off[m->n + 1] = m->off[m->n] + len;
        m->n++;
    }
    tp_fleet_free(fl);
}

/* Compressed packs, kept for the decode pass. */
typedef struct packs {
    uint8_t *buf;
    size_t len, cap;
    size_t *off;
    tp_pack_meta *meta;
    size_t n, ncap;
    size_t content;
} packs;

static uint8_t *packs_reserve(packs *p, size_t bound)
{
    if (p->len + bound > p->cap) {
        p->cap = (p->len + bound) * 2;
        p->buf = realloc(p->buf, p->cap);
    }
    if (p->n + 1 >= p->ncap) {
        p->ncap = p->ncap ? p->ncap * 2 : 1024;
        p->off = realloc(p->off, p->ncap * sizeof *p->off);
        p->meta = realloc(p->meta, p->ncap * sizeof *p->meta);
    }
    if (!p->buf || !p->off || !p->meta)
        die("packs", "out of memory");
    return p->buf + p->len;
}

static void packs_add(packs *p, const uint8_t *data, size_t len, const tp_pack_meta *meta)
{
    memcpy(packs_reserve(p, len), data, len);
    p->off[p->n] = p->len;
    p->meta[p->n++] = *meta;
    p->len += len;
    p->content += meta->content_size;
}

/* ---- the generic path: grouper (+ column writer) + zstd, as ingest --schema ---- */

typedef struct generic {
    const tp_schema *s;
    int columns, level;
    tp_dyn_grouper *g;
    tp_dyn_colwriter *cw;
    ZSTD_CCtx *cctx;
    packs *out;
} generic;

static void generic_send(generic *x, tp_dyn_group *grp)
{
    const uint8_t *cols = NULL;
    size_t cn = 0;
    if (x->cw && (x->columns == 2 ? tp_dyn_colwriter_convert(x->cw, grp->content, grp->len, &cols, &cn)
                                  : tp_dyn_colwriter_group(x->cw, grp, &cols, &cn)))
        die("colwriter", "convert");
    const uint8_t *content = cols ? cols : grp->content;
    size_t clen = cols ? cn : grp->len;
    uint8_t *pack;
    size_t len;
    if (tp_dyn_pack_compress(x->cctx, x->level, TP_CODEC_ZSTD, content, clen, &pack, &len))
        die("compress", "failed");
    tp_pack_meta meta = {.format_version = cols ? TP_DYNCOL_FORMAT_VERSION : 1,
                         .layout = cols ? TP_LAYOUT_COLUMNS : TP_LAYOUT_ROWS, .codec = TP_CODEC_ZSTD,
                         .schema_version = TP_SCHEMA_VERSION, .record_count = grp->count, .content_size = clen};
    packs_add(x->out, pack, len, &meta);
    free(pack);
    tp_dyn_grouper_release(x->g, grp);
}

static double generic_encode(const tp_schema *s, int columns, int level, const msgset *m, packs *out)
{
    generic x = {.s = s, .columns = columns, .level = level, .out = out};
    out->len = out->n = out->content = 0;
    size_t maxrec = 65536;
    if (tp_dyn_grouper_new(s, B, maxrec, &x.g) || (columns && tp_dyn_colwriter_new(s, B, maxrec, &x.cw)) ||
        !(x.cctx = ZSTD_createCCtx()))
        die("generic", "setup");
    if (columns == 1)
        tp_dyn_grouper_keep_rows(x.g);
    double t0 = tp_thread_cpu_s();
    for (size_t i = 0; i < m->n; i++) {
        tp_dyn_group *full;
        if (tp_dyn_grouper_add(x.g, m->msgs + m->off[i], m->off[i + 1] - m->off[i], &full))
            die("grouper", tp_dyn_grouper_error(x.g));
        if (full)
            generic_send(&x, full);
    }
    for (tp_dyn_group *grp; (grp = tp_dyn_grouper_oldest(x.g));)
        generic_send(&x, grp);
    double dt = tp_thread_cpu_s() - t0;
    ZSTD_freeCCtx(x.cctx);
    tp_dyn_colwriter_free(x.cw);
    tp_dyn_grouper_free(x.g);
    return dt;
}

static double generic_decode(const tp_schema *s, const packs *p, size_t expect)
{
    tp_dyn_pack_reader *r;
    tp_dyn_batch *b;
    if (tp_dyn_pack_reader_new(64u << 20, 65536, &r) || tp_dyn_batch_new(s, B, 64u << 20, &b))
        die("generic decode", "setup");
    size_t got = 0;
    double t0 = tp_thread_cpu_s();
    for (size_t i = 0; i < p->n; i++) {
        size_t end = i + 1 < p->n ? p->off[i + 1] : p->len;
        tp_dyn_batch_clear(b);
        if (tp_dyn_pack_reader_open(r, &p->meta[i], p->buf + p->off[i], end - p->off[i]))
            die("generic decode", tp_dyn_pack_reader_error(r));
        if (tp_dyn_pack_reader_is_columns(r)) {
            if (tp_dyn_pack_reader_read_columns(r, b))
                die("generic decode", tp_dyn_pack_reader_error(r));
        } else {
            const uint8_t *msg;
            size_t len;
            tp_err e;
            while ((e = tp_dyn_pack_reader_next(r, &msg, &len)) == TP_OK)
                if (tp_dyn_decode(b, msg, len))
                    die("generic decode", b->error);
            if (e != TP_ERR_END)
                die("generic decode", tp_dyn_pack_reader_error(r));
        }
        got += b->count;
    }
    double dt = tp_thread_cpu_s() - t0;
    if (got != expect)
        die("generic decode", "record count differs from what was written");
    tp_dyn_batch_free(b);
    tp_dyn_pack_reader_free(r);
    return dt;
}

/* ---- the built-in codec: decode, group by vehicle, tp_pack_writer; tp_pack_reader into row batches ---- */

typedef struct vgroup {
    uint64_t vid;
    tp_record r[B];
    size_t n;
    size_t opened;
} vgroup;

static void builtin_send(tp_pack_writer *w, vgroup *gr, packs *out)
{
    for (size_t j = 0; j < gr->n; j++)
        if (tp_pack_writer_add(w, &gr->r[j]))
            die("builtin", "writer_add");
    size_t bound = tp_pack_writer_bound(w), len;
    uint8_t *dst = packs_reserve(out, bound);
    if (tp_pack_writer_finish(w, dst, bound, &len, &out->meta[out->n]))
        die("builtin", "writer_finish");
    out->off[out->n] = out->len;
    out->content += out->meta[out->n++].content_size;
    out->len += len;
    gr->n = 0;
}

static double builtin_encode(tp_layout layout, int level, const msgset *m, packs *out)
{
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    o.layout = layout;
    o.level = level;
    tp_pack_writer *w;
    if (tp_pack_writer_new(&o, &w))
        die("builtin", "writer_new");
    out->len = out->n = out->content = 0;
    size_t nslots = 1 << 14, ngroups = 0;
    vgroup **slots = calloc(nslots, sizeof *slots);
    double t0 = tp_thread_cpu_s();
    tp_record r;
    for (size_t i = 0; i < m->n; i++) {
        if (tp_record_decode(m->msgs + m->off[i], m->off[i + 1] - m->off[i], &r))
            die("builtin", "decode");
        size_t k = (size_t)(r.vehicle_id * 0x9E3779B97F4A7C15ull >> 50) & (nslots - 1);
        while (slots[k] && slots[k]->vid != r.vehicle_id)
            k = (k + 1) & (nslots - 1);
        if (!slots[k]) {
            if (++ngroups * 2 > nslots)
                die("builtin", "more vehicles than the bench's table holds");
            slots[k] = calloc(1, sizeof **slots);
            slots[k]->vid = r.vehicle_id;
        }
        vgroup *gr = slots[k];
        if (gr->n == 0)
            gr->opened = i;
        gr->r[gr->n++] = r;
        if (gr->n == B)
            builtin_send(w, gr, out);
    }
    for (;;) { /* the rest, oldest first, as the batcher's flush */
        vgroup *best = NULL;
        for (size_t k = 0; k < nslots; k++)
            if (slots[k] && slots[k]->n && (!best || slots[k]->opened < best->opened))
                best = slots[k];
        if (!best)
            break;
        builtin_send(w, best, out);
    }
    double dt = tp_thread_cpu_s() - t0;
    for (size_t k = 0; k < nslots; k++)
        free(slots[k]);
    free(slots);
    tp_pack_writer_free(w);
    return dt;
}

static double builtin_decode(const packs *p, size_t expect)
{
    tp_pack_reader *r;
    tp_row_batch *rows;
    if (tp_pack_reader_new(NULL, &r) || tp_row_batch_new(B, &rows))
        die("builtin decode", "setup");
    size_t got = 0;
    double t0 = tp_thread_cpu_s();
    for (size_t i = 0; i < p->n; i++) {
        size_t end = i + 1 < p->n ? p->off[i + 1] : p->len;
        tp_row_batch_clear(rows);
        if (tp_pack_reader_open(r, &p->meta[i], p->buf + p->off[i], end - p->off[i]) ||
            tp_pack_reader_read_all(r, rows, 0, (int64_t)i))
            die("builtin decode", tp_pack_reader_error_detail(r));
        got += rows->count;
    }
    double dt = tp_thread_cpu_s() - t0;
    if (got != expect)
        die("builtin decode", "record count differs from what was written");
    tp_row_batch_free(rows);
    tp_pack_reader_free(r);
    return dt;
}

/* ---- measuring ---- */

typedef struct result {
    const char *data, *path;
    double bpr, content_bpr, enc_rps, dec_rps;
    size_t packs;
} result;

/* Rates are of the best pass (at least 5, and min_cpu CPU-seconds in all), the least disturbed by other load on the
 * machine. kind: 0 generic rows, 1 generic columns, 2 generic columns decoding each record twice (the grouper
 * keeping only the original bytes, the column writer decoding them again: the writer before it kept the decoded
 * rows), 3 built-in rows, 4 built-in columns. Repeats each side until min_cpu
 * CPU-seconds have passed. */
static result measure(const msgset *m, const tp_schema *s, int kind, int level, double min_cpu)
{
    static const char *const paths[] = {"generic v1 rows", "generic v4 columns", "generic v4 decode 2x",
                                        "built-in v1 rows", "built-in v2 columns"};
    result res = {.data = m->name, .path = paths[kind]};
    packs p = {0};
    double t = 0, best = 1e9;
    size_t reps = 0;
    do {
        double dt = kind < 3 ? generic_encode(s, kind, level, m, &p)
                             : builtin_encode(kind == 3 ? TP_LAYOUT_ROWS : TP_LAYOUT_COLUMNS, level, m, &p);
        t += dt;
        best = dt < best ? dt : best;
        reps++;
    } while (t < min_cpu || reps < 5);
    res.enc_rps = (double)m->n / best;
    res.bpr = (double)p.len / (double)m->n;
    res.content_bpr = (double)p.content / (double)m->n;
    res.packs = p.n;
    t = 0;
    best = 1e9;
    reps = 0;
    do {
        double dt = kind < 3 ? generic_decode(s, &p, m->n) : builtin_decode(&p, m->n);
        t += dt;
        best = dt < best ? dt : best;
        reps++;
    } while (t < min_cpu || reps < 5);
    res.dec_rps = (double)m->n / best;
    free(p.buf), free(p.off), free(p.meta);
    return res;
}

/* ---- part 3: a live-paced fleet, one record a key a tick: one pack per key vs one per partition ---- */

static int32_t crc_partition(void *ctx, const char *key, size_t len)
{
    /* librdkafka's default partitioner (consistent_random, CRC32 of the key), as ingest uses it */
    return rd_kafka_msg_partitioner_consistent(NULL, key, len, *(int32_t *)ctx, NULL, NULL);
}

typedef struct live_result {
    double bpr, msgs_per_record;
} live_result;

/* The messages arrive tick by tick (ev_gen.py's order: record i of every vehicle, then i + 1); after each tick of
 * `keys` records every open group is flushed (a linger expiring every tick). partitions 0: one pack per key. */
static live_result live(const tp_schema *s, const msgset *m, size_t keys, int columns, int32_t partitions, int level)
{
    tp_dyn_grouper *g;
    tp_dyn_colwriter *w;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (tp_dyn_grouper_new(s, 100000, 65536, &g) || tp_dyn_colwriter_new(s, 100000, 65536, &w) || !cctx)
        die("live", "setup");
    if (columns)
        tp_dyn_grouper_keep_rows(g);
    if (partitions)
        tp_dyn_grouper_by_partition(g, crc_partition, &partitions);
    size_t bytes = 0, msgs = 0;
    for (size_t i = 0; i < m->n; i++) {
        tp_dyn_group *full;
        if (tp_dyn_grouper_add(g, m->msgs + m->off[i], m->off[i + 1] - m->off[i], &full) || full)
            die("live", tp_dyn_grouper_error(g));
        if ((i + 1) % keys && i + 1 < m->n)
            continue;
        for (tp_dyn_group *grp; (grp = tp_dyn_grouper_oldest(g));) {
            const uint8_t *c = NULL;
            size_t cn = 0;
            if (columns && tp_dyn_colwriter_group(w, grp, &c, &cn))
                die("live", "colwriter");
            if (!c && partitions)
                die("live", "a partition's records as rows");
            uint8_t *pack;
            size_t len;
            if (tp_dyn_pack_compress(cctx, level, TP_CODEC_ZSTD, c ? c : grp->content, c ? cn : grp->len, &pack,
                                     &len))
                die("live", "compress");
            free(pack);
            bytes += len;
            msgs++;
            tp_dyn_grouper_release(g, grp);
        }
    }
    ZSTD_freeCCtx(cctx);
    tp_dyn_colwriter_free(w);
    tp_dyn_grouper_free(g);
    return (live_result){(double)bytes / (double)m->n, (double)msgs / (double)m->n};
}

/* Bytes of the pack headers (names and values) a message of this schema carries. */
static size_t header_bytes(const tp_schema *s)
{
    tp_pack_meta meta = {.format_version = TP_DYNCOL_FORMAT_VERSION, .layout = TP_LAYOUT_COLUMNS,
                         .codec = TP_CODEC_ZSTD, .schema_version = TP_SCHEMA_VERSION, .record_count = 200};
    rd_kafka_headers_t *h = rd_kafka_headers_new(10);
    if (tp_schema_pack_headers(&meta, tp_schema_message_name(s), tp_schema_fingerprint_hex(s), h))
        die("headers", "cannot build");
    size_t n = 0;
    const char *name;
    const void *val;
    size_t vlen;
    for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &vlen) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
        n += strlen(name) + vlen;
    rd_kafka_headers_destroy(h);
    return n;
}

/* Part 1: message decode/encode, hand-written against run-time schema; ns/record into ns[4]. */
static void message_codecs(const tp_schema *s, const msgset *m, double ns[4])
{
    size_t n = m->n;
    uint8_t *out = malloc(TP_RECORD_MAX_ENCODED * 2);
    tp_dyn_batch *b;
    if (!out || tp_dyn_batch_new(s, 10000, 1 << 20, &b))
        die("message codecs", "setup");
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    volatile uint64_t sink = 0;
    tp_record r;
    const uint8_t *msgs = m->msgs;
    const size_t *off = m->off;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = tp_thread_cpu_s();
        for (size_t i = 0; i < n; i++) {
            tp_record_decode(msgs + off[i], off[i + 1] - off[i], &r);
            sink += r.seq;
        }
        double t1 = tp_thread_cpu_s();
        tp_dyn_batch_clear(b);
        for (size_t i = 0; i < n; i++) {
            if (b->count == b->capacity)
                tp_dyn_batch_clear(b);
            if (tp_dyn_decode(b, msgs + off[i], off[i + 1] - off[i]))
                die("message codecs", b->error);
        }
        double t2 = tp_thread_cpu_s();
        size_t len;
        for (size_t i = 0; i < n; i++) {
            tp_record_decode(msgs + off[i], off[i + 1] - off[i], &r);
            tp_record_encode(&r, out, TP_RECORD_MAX_ENCODED, &len);
            sink += len;
        }
        double t3 = tp_thread_cpu_s();
        tp_dyn_batch_clear(b);
        for (size_t i = 0; i < n; i++) {
            if (b->count == b->capacity)
                tp_dyn_batch_clear(b);
            tp_dyn_decode(b, msgs + off[i], off[i + 1] - off[i]);
            tp_dyn_encode(b, b->count - 1, out, TP_RECORD_MAX_ENCODED * 2, &len);
            sink += len;
        }
        double t4 = tp_thread_cpu_s();
        double t[4] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3};
        for (int k = 0; k < 4; k++)
            if (t[k] < best[k])
                best[k] = t[k];
    }
    for (int k = 0; k < 4; k++)
        ns[k] = best[k] * 1e9 / (double)n;
    (void)sink;
    tp_dyn_batch_free(b);
    free(out);
}

int main(int argc, char **argv)
{
    const char *json_path = NULL, *pos[3];
    int quick = 0, level = 3, npos = 0, only = -1;
    size_t keys = 200; /* vehicles a tick in EV.bin (ev_gen.py gen VEHICLES ...) */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!strcmp(argv[i], "--level") && i + 1 < argc)
            level = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--vehicles") && i + 1 < argc)
            keys = (size_t)strtoul(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && npos < 3)
            pos[npos++] = argv[i];
        else {
            printf("usage: bench_schema [--quick] [--json FILE] [--level N] [--only ROW] [--vehicles N]\n"
                   "                    VEHICLE.pb EV.pb EV.bin\n"
                   "Run-time schema codecs and packs (v1 rows, v4 columns) against the built-in record's.\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    if (npos != 3) {
        fprintf(stderr, "usage: bench_schema [--quick] [--json FILE] [--level N] [--only ROW] [--vehicles N] "
                        "VEHICLE.pb EV.pb EV.bin\n");
        return 2;
    }
    double min_cpu = quick ? 0.05 : 0.5;
    tp_schema *vs = load_schema(pos[0], "telepack.v1.VehicleRecord");
    tp_schema *es = load_schema(pos[1], "fleet.ev.v1.EvTelemetry");
    msgset ev = {.name = "ev-telemetry"}, veh = {.name = "vehicle-record"};
    msgs_from_delimited(&ev, pos[2]);
    tp_record *recs;
    msgs_from_fleet(&veh, 200, quick ? 100 : 400, &recs);
    free(recs);

    json_t *root = json_object(), *arr = json_array();
    json_object_set_new(root, "benchmark", json_string("schema"));
    json_object_set_new(root, "zstd_level", json_integer(level));
    json_object_set_new(root, "records_per_pack", json_integer(B));

    double ns[4] = {0};
    if (only < 0)
        message_codecs(vs, &veh, ns);
    printf("%zu VehicleRecord messages, %.1f B each on average, best of 5 passes, one core (CPU time)\n", veh.n,
           (double)veh.off[veh.n] / (double)veh.n);
    printf("decode  hand-written tp_record_decode      %7.1f ns/record\n", ns[0]);
    printf("decode  run-time schema tp_dyn_decode      %7.1f ns/record\n", ns[1]);
    printf("decode+encode hand-written                 %7.1f ns/record\n", ns[2]);
    printf("decode+encode run-time schema              %7.1f ns/record\n\n", ns[3]);
    json_object_set_new(root, "messages",
                        json_pack("{sIsfsfsfsfsf}", "records", (json_int_t)veh.n, "bytes_per_message",
                                  (double)veh.off[veh.n] / (double)veh.n, "decode_handwritten_ns", ns[0],
                                  "decode_schema_ns", ns[1], "decode_encode_handwritten_ns", ns[2],
                                  "decode_encode_schema_ns", ns[3]));

    printf("packs of %d records a key, zstd level %d; encode = messages -> packs, decode = packs -> batches\n", B,
           level);
    printf("%-15s %-20s %8s %7s %9s %14s %14s\n", "data", "path", "records", "B/rec", "content", "enc rec/CPU-s",
           "dec rec/CPU-s");
    const msgset *sets[2] = {&ev, &veh};
    for (int d = 0, row = 0; d < 2; d++) {
        for (int kind = 0; kind < (d ? 5 : 3); kind++, row++) {
            if (only >= 0 && row != only)
                continue;
            result r = measure(sets[d], d ? vs : es, kind, level, min_cpu);
            printf("%-15s %-20s %8zu %7.2f %9.2f %14.0f %14.0f\n", r.data, r.path, sets[d]->n, r.bpr, r.content_bpr,
                   r.enc_rps, r.dec_rps);
            json_array_append_new(arr, json_pack("{sssssIsIsfsfsfsf}", "data", r.data, "path", r.path, "records",
                                                 (json_int_t)sets[d]->n, "packs", (json_int_t)r.packs,
                                                 "bytes_per_record", r.bpr, "content_bytes_per_record",
                                                 r.content_bpr, "encode_records_per_cpu_s", r.enc_rps,
                                                 "decode_records_per_cpu_s", r.dec_rps));
        }
    }
    json_object_set_new(root, "results", arr);

    /* Part 3: live-paced EV fleet (ev_gen.py's order is tick by tick: `keys` vehicles a tick). */
    if (keys < 1)
        keys = 1;
    size_t hb = header_bytes(es);
    printf("\nlive-paced EV fleet: %zu keys, one record each a tick, every group flushed each tick (zstd level %d);\n"
           "each Kafka message also carries %zu bytes of pack headers and, per key, its key (17 B)\n", keys, level, hb);
    printf("%-34s %9s %12s %16s\n", "packing", "B/record", "msgs/record", "B/rec w/ headers");
    json_t *larr = json_array();
    static const int32_t parts[] = {0, 0, 1, 4, 16};
    for (int k = 0; k < 5; k++) {
        int columns = k != 0;
        live_result r = live(es, &ev, keys, columns, parts[k], level);
        double with = r.bpr + r.msgs_per_record * (double)(hb + (parts[k] ? 0 : 17));
        char what[64];
        if (!parts[k])
            snprintf(what, sizeof what, "per key (vehicle), %s", columns ? "v4 columns" : "v1 rows");
        else
            snprintf(what, sizeof what, "per partition, %d partitions, v4", (int)parts[k]);
        printf("%-34s %9.2f %12.4f %16.2f\n", what, r.bpr, r.msgs_per_record, with);
        json_array_append_new(larr, json_pack("{sssisisfsfsf}", "pack_by", parts[k] ? "partition" : "vehicle",
                                              "partitions", (int)parts[k], "columns", columns, "bytes_per_record",
                                              r.bpr, "messages_per_record", r.msgs_per_record,
                                              "bytes_per_record_with_headers", with));
    }
    json_object_set_new(root, "live_ev_fleet", larr);
    if (json_path && json_dump_file(root, json_path, JSON_INDENT(2))) {
        fprintf(stderr, "bench_schema: cannot write %s\n", json_path);
        return 1;
    }
    json_decref(root);
    free(ev.msgs), free(ev.off), free(veh.msgs), free(veh.off);
    tp_schema_free(vs);
    tp_schema_free(es);
    return 0;
}
