/* `telepack pack`: NDJSON (or varint-delimited protobuf) records -> a stream of packs, one vehicle per pack, packs
 * back to back (for codec zstd, concatenated zstd frames that `zstd -d` reads as one stream). Records are held in
 * per-vehicle open batches; a batch becomes a pack when it reaches --batch-records, when the records held across
 * all batches reach --max-buffered (the batch opened longest ago goes first), and at the end of the input. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "telepack/pack.h"
#include "telepack/record.h"
#include "telepack/record_json.h"
#include "telepack/varint.h"

#define NIL UINT32_MAX

/* One vehicle's open batch. Batches live in a pool and refer to each other by index (the pool may move). */
typedef struct vbatch {
    uint64_t vehicle_id;
    tp_record *recs;
    uint32_t count, cap;
    uint32_t prev, next; /* the list of non-empty batches, oldest first */
} vbatch;

typedef struct packer {
    /* batches */
    vbatch *pool;
    uint32_t pool_len, pool_cap;
    uint32_t *table;     /* open addressing: pool index, NIL = empty */
    uint32_t table_mask;
    uint32_t head, tail; /* non-empty batches in order of opening */
    uint64_t buffered;
    /* settings */
    uint32_t batch_records;
    uint64_t max_buffered;
    /* output */
    tp_pack_writer *w;
    uint8_t *out;
    size_t out_cap;
    FILE *f;
    const char *out_name;
    /* stats */
    uint64_t records, packs, bytes_out, content_bytes;
} packer;

static uint32_t hash_id(uint64_t id, uint32_t mask) { return (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & mask; }

static int table_grow(packer *p)
{
    uint32_t size = p->table ? (p->table_mask + 1) * 2 : 1024;
    uint32_t *t = malloc((size_t)size * sizeof *t);
    if (!t)
        return -1;
    memset(t, 0xff, (size_t)size * sizeof *t);
    for (uint32_t i = 0; i < p->pool_len; i++) {
        uint32_t h = hash_id(p->pool[i].vehicle_id, size - 1);
        while (t[h] != NIL)
            h = (h + 1) & (size - 1);
        t[h] = i;
    }
    free(p->table);
    p->table = t;
    p->table_mask = size - 1;
    return 0;
}

/* The batch of vehicle id, created empty if new; NULL when out of memory. */
static vbatch *batch_for(packer *p, uint64_t id)
{
    if (!p->table || (uint64_t)p->pool_len * 2 >= (uint64_t)p->table_mask + 1)
        if (table_grow(p))
            return NULL;
    uint32_t h = hash_id(id, p->table_mask);
    while (p->table[h] != NIL) {
        if (p->pool[p->table[h]].vehicle_id == id)
            return &p->pool[p->table[h]];
        h = (h + 1) & p->table_mask;
    }
    if (p->pool_len == p->pool_cap) {
        uint32_t cap = p->pool_cap ? p->pool_cap * 2 : 256;
        vbatch *pool = realloc(p->pool, (size_t)cap * sizeof *pool);
        if (!pool)
            return NULL;
        p->pool = pool;
        p->pool_cap = cap;
    }
    vbatch *b = &p->pool[p->pool_len];
    memset(b, 0, sizeof *b);
    b->vehicle_id = id;
    b->prev = b->next = NIL;
    p->table[h] = p->pool_len++;
    return b;
}

static tp_err write_pack(packer *p, char *msg, size_t cap)
{
    size_t bound = tp_pack_writer_bound(p->w);
    if (bound > p->out_cap) {
        uint8_t *o = realloc(p->out, bound);
        if (!o)
            return TP_ERR_NOMEM;
        p->out = o;
        p->out_cap = bound;
    }
    size_t len;
    tp_pack_meta meta;
    tp_err e = tp_pack_writer_finish(p->w, p->out, p->out_cap, &len, &meta);
    if (e) {
        snprintf(msg, cap, "compressing a pack failed: %s", tp_strerror(e));
        return e;
    }
    if (fwrite(p->out, 1, len, p->f) != len) {
        snprintf(msg, cap, "writing to %s failed: %s", p->out_name, strerror(errno));
        return TP_ERR_IO;
    }
    p->packs++;
    p->bytes_out += len;
    p->content_bytes += meta.content_size;
    return TP_OK;
}

/* Turns batch b into one pack (more if a pack would pass the writer's size cap) and empties it. release frees the
 * batch's records array (for a vehicle that may have gone quiet). */
static tp_err flush_batch(packer *p, vbatch *b, bool release, char *msg, size_t cap)
{
    tp_pack_writer_reset(p->w);
    for (uint32_t i = 0; i < b->count; i++) {
        tp_err e = tp_pack_writer_add(p->w, &b->recs[i]);
        if (e == TP_ERR_FULL) {
            if ((e = write_pack(p, msg, cap)) != TP_OK)
                return e;
            e = tp_pack_writer_add(p->w, &b->recs[i]);
        }
        if (e) {
            snprintf(msg, cap, "adding a record of vehicle %" PRIu64 " to a pack failed: %s", b->vehicle_id,
                     tp_strerror(e));
            return e;
        }
    }
    tp_err e = write_pack(p, msg, cap);
    if (e)
        return e;
    /* Unlink from the open list. */
    if (b->prev != NIL)
        p->pool[b->prev].next = b->next;
    else
        p->head = b->next;
    if (b->next != NIL)
        p->pool[b->next].prev = b->prev;
    else
        p->tail = b->prev;
    b->prev = b->next = NIL;
    p->buffered -= b->count;
    b->count = 0;
    if (release) {
        free(b->recs);
        b->recs = NULL;
        b->cap = 0;
    }
    return TP_OK;
}

static tp_err add_record(packer *p, const tp_record *r, char *msg, size_t cap)
{
    vbatch *b = batch_for(p, r->vehicle_id);
    if (!b)
        return TP_ERR_NOMEM;
    if (b->count == b->cap) {
        uint32_t ncap = b->cap ? b->cap * 2 : 16;
        if (ncap > p->batch_records)
            ncap = p->batch_records;
        tp_record *recs = realloc(b->recs, (size_t)ncap * sizeof *recs);
        if (!recs)
            return TP_ERR_NOMEM;
        b->recs = recs;
        b->cap = ncap;
    }
    uint32_t idx = (uint32_t)(b - p->pool);
    if (b->count == 0) { /* append to the open list */
        b->prev = p->tail;
        b->next = NIL;
        if (p->tail != NIL)
            p->pool[p->tail].next = idx;
        else
            p->head = idx;
        p->tail = idx;
    }
    b->recs[b->count++] = *r;
    p->buffered++;
    p->records++;
    if (b->count == p->batch_records)
        return flush_batch(p, b, false, msg, cap);
    if (p->buffered > p->max_buffered)
        return flush_batch(p, &p->pool[p->head], true, msg, cap);
    return TP_OK;
}

static tp_err flush_all(packer *p, char *msg, size_t cap)
{
    while (p->head != NIL) {
        tp_err e = flush_batch(p, &p->pool[p->head], true, msg, cap);
        if (e)
            return e;
    }
    return TP_OK;
}

static void packer_free(packer *p)
{
    for (uint32_t i = 0; i < p->pool_len; i++)
        free(p->pool[i].recs);
    free(p->pool);
    free(p->table);
    free(p->out);
    tp_pack_writer_free(p->w);
}

/* ---- delimited input ---- */

typedef struct delim_reader {
    FILE *f;
    uint64_t offset; /* bytes consumed */
    uint64_t index;  /* records read */
} delim_reader;

/* Next varint length-prefixed record: TP_OK, TP_ERR_END at a clean end, else an error with msg. */
static tp_err delim_next(delim_reader *d, tp_record *out, char *msg, size_t cap)
{
    uint8_t pre[TP_VARINT_MAX_BYTES];
    size_t n = 0;
    uint64_t start = d->offset;
    for (;;) {
        int c = getc_unlocked(d->f);
        if (c == EOF) {
            if (ferror(d->f)) {
                snprintf(msg, cap, "reading record %" PRIu64 " at byte offset %" PRIu64 " failed: %s", d->index,
                         start, strerror(errno));
                return TP_ERR_IO;
            }
            if (n == 0)
                return TP_ERR_END;
            snprintf(msg, cap, "record %" PRIu64 " at byte offset %" PRIu64 ": the input ends inside its length prefix",
                     d->index, start);
            return TP_ERR_TRUNCATED;
        }
        pre[n++] = (uint8_t)c;
        if (!(c & 0x80) || n == TP_VARINT_MAX_BYTES)
            break;
    }
    uint64_t len;
    size_t used;
    tp_err e = tp_varint_decode(pre, n, &len, &used);
    if (e) {
        snprintf(msg, cap, "record %" PRIu64 " at byte offset %" PRIu64 ": the length prefix is not a valid varint",
                 d->index, start);
        return e;
    }
    d->offset += used;
    if (len > TP_DEFAULT_MAX_RECORD_BYTES) {
        snprintf(msg, cap,
                 "record %" PRIu64 " at byte offset %" PRIu64 ": length prefix %" PRIu64 " is above the %u-byte "
                 "limit of a record; is this really varint-delimited VehicleRecord input?",
                 d->index, start, len, TP_DEFAULT_MAX_RECORD_BYTES);
        return TP_ERR_RECORD_TOO_LARGE;
    }
    uint8_t body[TP_DEFAULT_MAX_RECORD_BYTES];
    size_t got = fread(body, 1, (size_t)len, d->f);
    d->offset += got;
    if (got != len) {
        snprintf(msg, cap,
                 "record %" PRIu64 " at byte offset %" PRIu64 ": the input ends after %zu of its %" PRIu64 " bytes",
                 d->index, start, got, len);
        return ferror(d->f) ? TP_ERR_IO : TP_ERR_TRUNCATED;
    }
    e = tp_record_decode(body, (size_t)len, out);
    if (e) {
        snprintf(msg, cap, "record %" PRIu64 " at byte offset %" PRIu64 " is not a valid VehicleRecord: %s",
                 d->index, start, tp_strerror(e));
        return e;
    }
    d->index++;
    return TP_OK;
}

/* ---- the command ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: telepack pack [OPTIONS]\n"
            "\n"
            "Reads records (NDJSON, one object per line, as `telepack gen` writes them; or varint-delimited\n"
            "protobuf) and writes packs: one vehicle's records per pack, each pack a zstd frame holding varint\n"
            "length-prefixed VehicleRecord messages. The packs are written back to back; `zstd -d` decompresses\n"
            "the whole stream, `telepack inspect` decodes it.\n"
            "\n"
            "Options:\n"
            "  --in FILE|-           input (default - = stdin)\n"
            "  --out FILE|-          output (default - = stdout; not a terminal)\n"
            "  --input-format F      ndjson (default) or delimited\n"
            "  --ignore-unknown-fields\n"
            "                        skip NDJSON keys that name no record field (default: such a key is an\n"
            "                        error naming it and its line, so a misspelt \"lat\" is not packed as 0)\n"
            "  --codec C             zstd (default) or none (raw frames, for debugging and baselines)\n"
            "  --level N             zstd level 1..22 (default 3)\n"
            "  --layout L            columns (default with zstd: pbpack v2, docs/FORMAT_V2.md, 3-5x smaller)\n"
            "                        or rows (pbpack v1: standard delimited protobuf; the default with\n"
            "                        --codec none)\n"
            "  --batch-records N     records per pack: a vehicle's batch becomes a pack when it has N records\n"
            "                        (default 200), and every open batch at the end of the input\n"
            "  --max-buffered N      records held across all open batches before the oldest batch is packed\n"
            "                        early (default 1000000, about 56 MB)\n"
            "  -q, --quiet           no summary\n"
            "  -h, --help            this text\n"
            "\n"
            "A summary goes to stderr: records, packs, bytes in and out, compression ratio.\n"
            "Exit status: 0 done, 1 I/O failure, 2 bad options or bad input (the packs of the records before\n"
            "the bad one are written).\n"
            "\n"
            "Example:\n"
            "  telepack gen --vehicles 100 --seconds 600 | telepack pack --out fleet.packs\n");
}

enum { OPT_IN = 256, OPT_OUT, OPT_INPUT_FORMAT, OPT_CODEC, OPT_LEVEL, OPT_BATCH, OPT_MAX_BUFFERED, OPT_LAYOUT,
       OPT_IGNORE_UNKNOWN };

int tp_cmd_pack(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"in", required_argument, NULL, OPT_IN},
        {"out", required_argument, NULL, OPT_OUT},
        {"input-format", required_argument, NULL, OPT_INPUT_FORMAT},
        {"codec", required_argument, NULL, OPT_CODEC},
        {"level", required_argument, NULL, OPT_LEVEL},
        {"batch-records", required_argument, NULL, OPT_BATCH},
        {"max-buffered", required_argument, NULL, OPT_MAX_BUFFERED},
        {"layout", required_argument, NULL, OPT_LAYOUT},
        {"ignore-unknown-fields", no_argument, NULL, OPT_IGNORE_UNKNOWN},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const input_words[] = {"ndjson", "delimited", NULL};
    static const char *const codec_words[] = {"none", "zstd", NULL}; /* index == tp_codec */
    const char *in_path = "-", *out_path = "-";
    static const char *const layout_words[] = {"rows", "columns", NULL}; /* index + 1 == tp_layout */
    int input_format = 0, codec = TP_CODEC_ZSTD, layout = -1; /* -1: columns, or rows with --codec none */
    uint64_t level = 3, batch_records = 200, max_buffered = 1000000;
    bool quiet = false;
    unsigned json_flags = 0;
    char msg[512];
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        tp_err e = TP_OK;
        switch (c) {
        case OPT_IN: in_path = optarg; break;
        case OPT_OUT: out_path = optarg; break;
        case OPT_INPUT_FORMAT:
            e = tp_cli_parse_choice("input-format", optarg, input_words, &input_format, msg, sizeof msg);
            break;
        case OPT_CODEC: e = tp_cli_parse_choice("codec", optarg, codec_words, &codec, msg, sizeof msg); break;
        case OPT_LAYOUT: e = tp_cli_parse_choice("layout", optarg, layout_words, &layout, msg, sizeof msg); break;
        case OPT_LEVEL: e = tp_cli_parse_u64("level", optarg, 1, 22, &level, msg, sizeof msg); break;
        case OPT_BATCH: e = tp_cli_parse_u64("batch-records", optarg, 1, 1000000, &batch_records, msg, sizeof msg); break;
        case OPT_MAX_BUFFERED:
            e = tp_cli_parse_u64("max-buffered", optarg, 1, 1000000000, &max_buffered, msg, sizeof msg);
            break;
        case OPT_IGNORE_UNKNOWN: json_flags = TP_RECORD_JSON_IGNORE_UNKNOWN; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        case ':': return tp_cli_usage_error("pack", "option '%s' needs a value", argv[optind - 1]);
        default: return tp_cli_usage_error("pack", "unknown option '%s'", argv[optind - 1]);
        }
        if (e)
            return tp_cli_usage_error("pack", "%s", msg);
    }
    if (optind < argc)
        return tp_cli_usage_error("pack", "unexpected argument '%s' (use --in FILE for the input)", argv[optind]);
    if (layout < 0)
        layout = codec == TP_CODEC_NONE ? TP_LAYOUT_ROWS - 1 : TP_LAYOUT_COLUMNS - 1;
    if (layout + 1 == TP_LAYOUT_COLUMNS && codec == TP_CODEC_NONE)
        return tp_cli_usage_error("pack", "--layout columns needs --codec zstd: raw column packs back to back cannot be told "
                           "apart");
    if (!strcmp(out_path, "-") && isatty(STDOUT_FILENO))
        return tp_cli_usage_error("pack", "refusing to write binary packs to a terminal; use --out FILE or a pipe");

    packer p;
    memset(&p, 0, sizeof p);
    p.head = p.tail = NIL;
    p.batch_records = (uint32_t)batch_records;
    p.max_buffered = max_buffered;
    tp_pack_writer_opts wo;
    tp_pack_writer_opts_init(&wo);
    wo.codec = (tp_codec)codec;
    wo.level = (int)level;
    wo.layout = (tp_layout)(layout + 1);
    tp_err e = tp_pack_writer_new(&wo, &p.w);
    if (e) {
        fprintf(stderr, "telepack pack: cannot create a pack writer (codec %s, level %" PRIu64 "): %s\n",
                codec_words[codec], level, tp_strerror(e));
        return e == TP_ERR_INVALID_ARG ? 2 : 1;
    }

    FILE *in = tp_cli_open_in(in_path);
    if (!in) {
        fprintf(stderr, "telepack pack: cannot open %s: %s\n", in_path, strerror(errno));
        packer_free(&p);
        return 1;
    }
    p.f = tp_cli_open_out(out_path);
    if (!p.f) {
        fprintf(stderr, "telepack pack: cannot create %s: %s\n", out_path, strerror(errno));
        tp_cli_close(in);
        packer_free(&p);
        return 1;
    }
    p.out_name = strcmp(out_path, "-") ? out_path : "stdout";
    const char *in_name = strcmp(in_path, "-") ? in_path : "stdin";

    tp_ndjson_reader *nr = NULL;
    delim_reader dr = {in, 0, 0};
    if (input_format == 0 && (e = tp_ndjson_reader_new(in, 0, &nr)) != TP_OK) {
        fprintf(stderr, "telepack pack: %s\n", tp_strerror(e));
        tp_cli_close(in);
        tp_cli_close(p.f);
        packer_free(&p);
        return 1;
    }
    tp_ndjson_reader_set_flags(nr, json_flags);

    double t0 = tp_cli_now_s();
    int status = 0;
    tp_record r;
    for (;;) {
        e = nr ? tp_ndjson_reader_next(nr, &r, msg, sizeof msg) : delim_next(&dr, &r, msg, sizeof msg);
        if (e == TP_ERR_END)
            break;
        if (e) {
            fprintf(stderr, "telepack pack: %s: %s; fix or remove it (the %" PRIu64 " records before it are packed)\n",
                    in_name, msg, p.records);
            status = e == TP_ERR_IO ? 1 : 2;
            break;
        }
        if ((e = add_record(&p, &r, msg, sizeof msg)) != TP_OK) {
            fprintf(stderr, "telepack pack: %s\n", e == TP_ERR_NOMEM ? "out of memory" : msg);
            status = 1;
            break;
        }
    }
    if (status != 1 && (e = flush_all(&p, msg, sizeof msg)) != TP_OK) {
        fprintf(stderr, "telepack pack: %s\n", e == TP_ERR_NOMEM ? "out of memory" : msg);
        status = 1;
    }
    uint64_t bytes_in = nr ? tp_ndjson_reader_bytes(nr) : dr.offset;
    tp_ndjson_reader_free(nr);
    tp_cli_close(in);
    if (tp_cli_close(p.f) != 0 && status != 1) {
        fprintf(stderr, "telepack pack: writing to %s failed: %s\n", p.out_name, strerror(errno));
        status = 1;
    }
    double elapsed = tp_cli_now_s() - t0;
    if (!quiet) {
        char bi[32], bo[32], bc[32];
        fprintf(stderr,
                "pack: %" PRIu64 " records -> %" PRIu64 " packs (codec %s), %s %s in -> %s out, ratio %.2fx, "
                "%.1f B/record (content %s) in %.2f s\n",
                p.records, p.packs, codec_words[codec], tp_cli_bytes(bytes_in, bi, sizeof bi), input_words[input_format],
                tp_cli_bytes(p.bytes_out, bo, sizeof bo), p.bytes_out ? (double)bytes_in / (double)p.bytes_out : 0.0,
                p.records ? (double)p.bytes_out / (double)p.records : 0.0, tp_cli_bytes(p.content_bytes, bc, sizeof bc),
                elapsed);
    }
    packer_free(&p);
    return status;
}
