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
#include "cli/schema_cli.h"
#include "ingest/batcher.h"
#include "common/clock.h"
#include "telepack/pack.h"
#include "telepack/record.h"
#include "telepack/record_json.h"
#include "telepack/delimited.h"

/* The per-vehicle batches are the ingest worker's batcher (ingest/batcher.h) on a logical clock: "now" is the
 * number of records read, so a batch's opened_ms is the index of its first record and the batch opened longest ago
 * is the one whose linger runs out first. Size caps are off (a pack writer splits what would pass its own cap). */
#define NO_LINGER (INT64_MAX / 4)

typedef struct packer {
    tp_batcher *batcher;
    uint64_t buffered; /* records in open batches */
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

static tp_err packer_init(packer *p, uint32_t batch_records, uint64_t max_buffered, const tp_pack_writer_opts *wo)
{
    memset(p, 0, sizeof *p);
    p->max_buffered = max_buffered;
    tp_batcher_opts bo;
    tp_batcher_opts_init(&bo);
    bo.max_records = batch_records;
    bo.max_bytes = SIZE_MAX;
    bo.max_buffered_bytes = SIZE_MAX;
    bo.linger_ms = NO_LINGER;
    tp_err e = tp_batcher_new(&bo, &p->batcher);
    if (!e)
        e = tp_pack_writer_new(wo, &p->w);
    return e;
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

/* Turns batch b into one pack (more if a pack would pass the writer's size cap). */
static tp_err write_batch(packer *p, const tp_batch *b, char *msg, size_t cap)
{
    tp_pack_writer_reset(p->w);
    for (uint32_t i = 0; i < b->count; i++) {
        tp_err e = tp_pack_writer_add(p->w, &b->records[i]);
        if (e == TP_ERR_FULL) {
            if ((e = write_pack(p, msg, cap)) != TP_OK)
                return e;
            e = tp_pack_writer_add(p->w, &b->records[i]);
        }
        if (e) {
            snprintf(msg, cap, "adding a record of vehicle %" PRIu64 " to a pack failed: %s", b->vehicle_id,
                     tp_strerror(e));
            return e;
        }
    }
    return write_pack(p, msg, cap);
}

/* Writes every batch the batcher has ready, oldest first. */
static tp_err write_ready(packer *p, char *msg, size_t cap)
{
    tp_batch *b;
    while (tp_batcher_next_ready(p->batcher, &b) == TP_OK) {
        tp_err e = write_batch(p, b, msg, cap);
        p->buffered -= b->count;
        tp_batcher_release(p->batcher, b);
        if (e)
            return e;
    }
    return TP_OK;
}

static tp_err add_record(packer *p, const tp_record *r, char *msg, size_t cap)
{
    static const tp_batch_tag one_source = {0, 0, 0, 0}; /* one tag per batch: the pack command has one input */
    int64_t now = (int64_t)p->records;
    tp_err e = tp_batcher_add(p->batcher, r, 1, &one_source, now);
    if (e)
        return e;
    p->buffered++;
    p->records++;
    if (p->buffered > p->max_buffered) {
        /* Pack the batch opened longest ago: move the clock to exactly when its linger runs out. */
        int64_t left = tp_batcher_next_deadline(p->batcher, now);
        if (left >= 0)
            tp_batcher_expire(p->batcher, now + left);
    }
    return write_ready(p, msg, cap);
}

static tp_err flush_all(packer *p, char *msg, size_t cap)
{
    tp_batcher_flush_all(p->batcher);
    return write_ready(p, msg, cap);
}

static void packer_free(packer *p)
{
    tp_batcher_free(p->batcher);
    free(p->out);
    tp_pack_writer_free(p->w);
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
            "  --codec C             zstd (default) or none (raw frames, for debugging and baselines)\n"
            "  --level N             zstd level 1..22 (default 3)\n"
            "  --layout L            columns (default with zstd: pbpack v2, docs/FORMAT_V2.md, 3-5x smaller),\n"
            "                        coded (columns through an adaptive range coder: 10-25 %% fewer bytes,\n"
            "                        slower to write and read; docs/FORMAT_V2.md, \"Coded columns\")\n"
            "                        or rows (pbpack v1: standard delimited protobuf; the default with\n"
            "                        --codec none)\n"
            "  --batch-records N     records per pack: a vehicle's batch becomes a pack when it has N records\n"
            "                        (default 200), and every open batch at the end of the input\n"
            "  --dict FILE           compress every pack with this zstd dictionary (`telepack dict train`); the\n"
            "                        packs name its id, readers need it (inspect --dict-dir, sink --dict-dir)\n"
            "  --max-buffered N      records held across all open batches before the oldest batch is packed\n"
            "                        early (default 1000000, about 56 MB)\n"
            "  --ignore-unknown-fields\n"
            "                        skip NDJSON keys that name no record field (default: such a key is an\n"
            "                        error naming it and its line, so a misspelt \"lat\" is not packed as 0)\n"
            "  --schema FILE ...     records of a message type of your own (pack --schema x --help)\n"
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

typedef struct pack_cli {
    const char *in_path, *out_path, *dict_path;
    int input_format, codec; /* indexes into the word lists below */
    tp_layout layout;        /* 0 until given: columns, rows with --codec none */
    int coded;               /* --layout coded */
    uint64_t level, batch_records, max_buffered;
    bool quiet;
    unsigned json_flags; /* TP_RECORD_JSON_* */
} pack_cli;

static const char *const input_words[] = {"ndjson", "delimited", NULL};
static const char *const codec_words[] = {"none", "zstd", NULL}; /* index == tp_codec */

enum { OPT_IN = 256, OPT_OUT, OPT_INPUT_FORMAT, OPT_CODEC, OPT_LEVEL, OPT_BATCH, OPT_MAX_BUFFERED, OPT_LAYOUT,
       OPT_IGNORE_UNKNOWN, OPT_DICT };

/* Parses the options into *a; returns -1 to go on, else the exit status (0 after --help, 2 after a usage error it
 * printed). */
static int parse_args(int argc, char **argv, pack_cli *a)
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
        {"dict", required_argument, NULL, OPT_DICT},
        {"quiet", no_argument, NULL, 'q'},
        {"ignore-unknown-fields", no_argument, NULL, OPT_IGNORE_UNKNOWN},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *a = (pack_cli){.in_path = "-", .out_path = "-", .codec = TP_CODEC_ZSTD, .level = 3, .batch_records = 200,
                    .max_buffered = 1000000};
    char msg[512];
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        tp_err e = TP_OK;
        switch (c) {
        case OPT_IN: a->in_path = optarg; break;
        case OPT_OUT: a->out_path = optarg; break;
        case OPT_DICT: a->dict_path = optarg; break;
        case OPT_INPUT_FORMAT:
            e = tp_cli_parse_choice("input-format", optarg, input_words, &a->input_format, msg, sizeof msg);
            break;
        case OPT_CODEC: e = tp_cli_parse_choice("codec", optarg, codec_words, &a->codec, msg, sizeof msg); break;
        case OPT_LAYOUT: e = tp_cli_parse_layout(optarg, &a->layout, &a->coded, msg, sizeof msg); break;
        case OPT_LEVEL: e = tp_cli_parse_u64("level", optarg, 1, 22, &a->level, msg, sizeof msg); break;
        case OPT_BATCH:
            e = tp_cli_parse_u64("batch-records", optarg, 1, 1000000, &a->batch_records, msg, sizeof msg);
            break;
        case OPT_MAX_BUFFERED:
            e = tp_cli_parse_u64("max-buffered", optarg, 1, 1000000000, &a->max_buffered, msg, sizeof msg);
            break;
        case 'q': a->quiet = true; break;
        case OPT_IGNORE_UNKNOWN: a->json_flags = TP_RECORD_JSON_IGNORE_UNKNOWN; break;
        case 'h': usage(stdout); return 0;
        case ':': return tp_cli_usage_error("pack", "option '%s' needs a value", argv[optind - 1]);
        default: return tp_cli_usage_error("pack", "unknown option '%s'", argv[optind - 1]);
        }
        if (e)
            return tp_cli_usage_error("pack", "%s", msg);
    }
    if (optind < argc)
        return tp_cli_usage_error("pack", "unexpected argument '%s' (use --in FILE for the input)", argv[optind]);
    if (!a->layout)
        a->layout = a->codec == TP_CODEC_NONE ? TP_LAYOUT_ROWS : TP_LAYOUT_COLUMNS;
    if (a->layout == TP_LAYOUT_COLUMNS && a->codec == TP_CODEC_NONE)
        return tp_cli_usage_error("pack", "--layout columns needs --codec zstd: raw column packs back to back cannot "
                                          "be told apart");
    if (a->dict_path && a->codec == TP_CODEC_NONE)
        return tp_cli_usage_error("pack", "--dict needs --codec zstd");
    if (!strcmp(a->out_path, "-") && isatty(STDOUT_FILENO))
        return tp_cli_usage_error("pack", "refusing to write binary packs to a terminal; use --out FILE or a pipe");
    return -1;
}

/* The input: NDJSON lines or varint-delimited records. */
typedef struct pack_input {
    FILE *f;
    const char *name;
    tp_ndjson_reader *ndjson;
    tp_delimited_reader *delimited;
} pack_input;

static tp_err input_next(pack_input *in, tp_record *r, char *msg, size_t cap)
{
    if (in->ndjson)
        return tp_ndjson_reader_next(in->ndjson, r, msg, cap);
    tp_err e = tp_delimited_reader_next_record(in->delimited, r);
    if (e && e != TP_ERR_END)
        snprintf(msg, cap, "%s%s", tp_delimited_reader_error(in->delimited),
                 e == TP_ERR_RECORD_TOO_LARGE ? "; is this really varint-delimited VehicleRecord input?" : "");
    return e;
}

/* Reads every record into the batches and writes the packs; returns the exit status. */
static int pack_all(packer *p, pack_input *in)
{
    char msg[512];
    tp_record r;
    tp_err e;
    int status = 0;
    while ((e = input_next(in, &r, msg, sizeof msg)) != TP_ERR_END) {
        if (e) {
            fprintf(stderr, "telepack pack: %s: %s; fix or remove it (the %" PRIu64 " records before it are packed)\n",
                    in->name, msg, p->records);
            if (e == TP_ERR_IO)
                return 1;
            status = 2; /* the packs of the records before the bad one are written */
            break;
        }
        if ((e = add_record(p, &r, msg, sizeof msg)) != TP_OK) {
            fprintf(stderr, "telepack pack: %s\n", e == TP_ERR_NOMEM ? "out of memory" : msg);
            return 1;
        }
    }
    if ((e = flush_all(p, msg, sizeof msg)) != TP_OK) {
        fprintf(stderr, "telepack pack: %s\n", e == TP_ERR_NOMEM ? "out of memory" : msg);
        return 1;
    }
    return status;
}

int tp_cmd_pack(int argc, char **argv)
{
    if (tp_cli_has_schema(argc, argv))
        return tp_cmd_pack_schema(argc, argv); /* a message type of your own: cmd_pack_schema.c */
    pack_cli a;
    int status = parse_args(argc, argv, &a);
    if (status >= 0)
        return status;
    packer p;
    tp_pack_writer_opts wo;
    tp_pack_writer_opts_init(&wo);
    wo.codec = (tp_codec)a.codec;
    wo.level = (int)a.level;
    wo.layout = a.layout;
    wo.coded_columns = a.coded;
    tp_dict *dict = NULL;
    if (a.dict_path) {
        char derr[512];
        tp_err de = tp_dict_read_file(a.dict_path, (int)a.level, &dict, derr, sizeof derr);
        if (de) {
            fprintf(stderr, "telepack pack: %s\n", derr);
            return de == TP_ERR_NOMEM || de == TP_ERR_IO ? 1 : 2;
        }
        wo.dict = dict;
    }
    tp_err e = packer_init(&p, (uint32_t)a.batch_records, a.max_buffered, &wo);
    if (e) {
        fprintf(stderr, "telepack pack: cannot create a pack writer (codec %s, level %" PRIu64 "): %s\n",
                codec_words[a.codec], a.level, tp_strerror(e));
        packer_free(&p);
        tp_dict_free(dict);
        return e == TP_ERR_INVALID_ARG ? 2 : 1;
    }
    pack_input in = {tp_cli_open_in(a.in_path), strcmp(a.in_path, "-") ? a.in_path : "stdin", NULL, NULL};
    if (!in.f) {
        fprintf(stderr, "telepack pack: cannot open %s: %s\n", a.in_path, strerror(errno));
        packer_free(&p);
        tp_dict_free(dict);
        return 1;
    }
    p.f = tp_cli_open_out(a.out_path);
    p.out_name = strcmp(a.out_path, "-") ? a.out_path : "stdout";
    if (!p.f) {
        fprintf(stderr, "telepack pack: cannot create %s: %s\n", a.out_path, strerror(errno));
        tp_cli_close(in.f);
        packer_free(&p);
        tp_dict_free(dict);
        return 1;
    }
    tp_delimited_reader_opts ro;
    tp_delimited_reader_opts_init(&ro);
    ro.file = in.f;
    e = a.input_format == 0 ? tp_ndjson_reader_new(in.f, 0, &in.ndjson) : tp_delimited_reader_new(&ro, &in.delimited);
    if (!e && in.ndjson)
        tp_ndjson_reader_set_flags(in.ndjson, a.json_flags);
    double t0 = tp_mono_s();
    if (e) {
        fprintf(stderr, "telepack pack: %s\n", tp_strerror(e));
        status = 1;
    } else {
        status = pack_all(&p, &in);
    }
    uint64_t bytes_in = in.ndjson ? tp_ndjson_reader_bytes(in.ndjson) : tp_delimited_reader_offset(in.delimited);
    tp_ndjson_reader_free(in.ndjson);
    tp_delimited_reader_free(in.delimited);
    tp_cli_close(in.f);
    if (tp_cli_close(p.f) != 0 && status != 1) {
        fprintf(stderr, "telepack pack: writing to %s failed: %s\n", p.out_name, strerror(errno));
        status = 1;
    }
    double elapsed = tp_mono_s() - t0;
    if (!a.quiet) {
        char bi[32], bo[32], bc[32];
        fprintf(stderr,
                "pack: %" PRIu64 " records -> %" PRIu64 " packs (codec %s), %s %s in -> %s out, ratio %.2fx, "
                "%.1f B/record (content %s) in %.2f s\n",
                p.records, p.packs, codec_words[a.codec], tp_cli_bytes(bytes_in, bi, sizeof bi),
                input_words[a.input_format], tp_cli_bytes(p.bytes_out, bo, sizeof bo),
                p.bytes_out ? (double)bytes_in / (double)p.bytes_out : 0.0,
                p.records ? (double)p.bytes_out / (double)p.records : 0.0,
                tp_cli_bytes(p.content_bytes, bc, sizeof bc), elapsed);
    }
    packer_free(&p);
    tp_dict_free(dict);
    return status;
}
