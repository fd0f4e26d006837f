/* `telepack pack --schema` and `telepack inspect --schema`: records of a message type of the user's own, as pbpack v1
 * (rows) packs. pack reads NDJSON (protobuf's JSON mapping) or varint-delimited messages, checks each under the
 * schema, groups them per key (an integer or a string such as a VIN) and writes each group's protobuf bytes as one
 * pack; inspect decodes the frames of each pack with the dynamic decoder and prints protobuf's JSON mapping. Also
 * the shared --schema option handling and input (schema_cli.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "cli/schema_cli.h"
#include "common/clock.h"
#include "schema/dynpack.h"
#include "schema/dynrow.h"
#include "telepack/delimited.h"
#include "telepack/pack.h"

#define MAX_DESCRIPTOR_FILE TP_SCHEMA_MAX_INPUT

/* ---- shared option handling ---- */

int tp_cli_schema_option(tp_cli_schema *o, int c, const char *arg)
{
    switch (c) {
    case TP_CLI_O_SCHEMA: o->path = arg; return 1;
    case TP_CLI_O_MESSAGE: o->message = arg; return 1;
    case TP_CLI_O_KEY_FIELD: o->key = arg; return 1;
    case TP_CLI_O_TIME_FIELD: o->time = arg; return 1;
    case TP_CLI_O_TIME_UNIT: o->unit = arg; return 1;
    case TP_CLI_O_IDENTITY_FIELDS: o->identity = arg; return 1;
    default: return 0;
    }
}

bool tp_cli_has_schema(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            return false;
        if (!strcmp(argv[i], "--schema") || !strncmp(argv[i], "--schema=", 9))
            return true;
    }
    return false;
}

int tp_cli_schema_load(const char *cmd, const tp_cli_schema *o, tp_schema **out)
{
    *out = NULL;
    if (!o->path || !o->message)
        return tp_cli_usage_error(cmd, "--schema FILE and --message NAME go together");
    FILE *f = fopen(o->path, "rb");
    uint8_t *src = f ? malloc(MAX_DESCRIPTOR_FILE + 1) : NULL;
    size_t len = src ? fread(src, 1, MAX_DESCRIPTOR_FILE + 1, f) : 0;
    int bad = !f || !src || ferror(f);
    int saved = errno;
    if (f)
        fclose(f);
    if (bad) {
        fprintf(stderr, "telepack %s: cannot read the descriptor set %s: %s\n", cmd, o->path,
                src || !f ? strerror(saved) : "out of memory");
        free(src);
        return 2;
    }
    char err[512] = "";
    tp_schema *s = NULL;
    tp_err e = tp_schema_load(src, len, o->message, &s, err, sizeof err);
    free(src);
    if (e) {
        fprintf(stderr, "telepack %s: %s: %s\n", cmd, o->path, err[0] ? err : tp_strerror(e));
        return 2;
    }
    if (o->key || o->time || o->unit || o->identity) {
        const tp_schema_roles *r = tp_schema_get_roles(s);
        const char *ids[TP_SCHEMA_MAX_IDENTITY + 1];
        size_t nids = 0;
        char list[1024];
        if (o->identity) {
            snprintf(list, sizeof list, "%s", o->identity);
            for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
                if (nids <= TP_SCHEMA_MAX_IDENTITY)
                    ids[nids++] = tok;
        }
        const char *key = o->key, *time = o->time;
        if (!key && r->key >= 0)
            key = tp_schema_column_at(s, (size_t)r->key)->name;
        if (!time && r->time >= 0)
            time = tp_schema_column_at(s, (size_t)r->time)->name;
        if (tp_schema_set_roles(s, key, time, o->unit, o->identity ? ids : NULL, nids, err, sizeof err)) {
            tp_schema_free(s);
            return tp_cli_usage_error(cmd, "%s", err);
        }
    }
    const tp_schema_roles *r = tp_schema_get_roles(s);
    if (r->key < 0 || r->identity_count == 0) {
        const char *what = r->key < 0 ? "key" : "time"; /* r is freed with s */
        tp_schema_free(s);
        return tp_cli_usage_error(cmd, "message %s has no %s column the defaults recognize; give --key-field and "
                                       "--time-field", o->message, what);
    }
    *out = s;
    return 0;
}

/* ---- the input: NDJSON or varint-delimited ---- */

tp_err tp_cli_schema_src_open(tp_cli_schema_src *src, FILE *f, bool ndjson, bool ignore_unknown, size_t max_record)
{
    *src = (tp_cli_schema_src){.json_flags = ignore_unknown ? TP_DYN_JSON_IGNORE_UNKNOWN : 0};
    if (ndjson)
        return tp_ndjson_reader_new(f, TP_CLI_SCHEMA_LINE_FACTOR * max_record, &src->ndjson);
    tp_delimited_reader_opts ro;
    tp_delimited_reader_opts_init(&ro);
    ro.file = f;
    ro.max_message_bytes = max_record;
    return tp_delimited_reader_new(&ro, &src->delimited);
}

tp_err tp_cli_schema_src_next(tp_cli_schema_src *src, tp_dyn_grouper *g, tp_dyn_group **full, char *why,
                              size_t why_cap)
{
    tp_err e;
    if (src->ndjson) {
        const char *line;
        size_t len;
        char msg[256];
        if ((e = tp_ndjson_reader_next_line(src->ndjson, &line, &len, msg, sizeof msg))) {
            if (e != TP_ERR_END)
                snprintf(why, why_cap, "%s%s", msg, e == TP_ERR_PARSE ? " (the limit is 4 x --max-record-bytes)" : "");
            return e;
        }
        uint64_t ln = tp_ndjson_reader_line(src->ndjson);
        if ((e = tp_dyn_grouper_add_json(g, line, len, src->json_flags, full)) == TP_OK) {
            src->records++;
            return TP_OK;
        }
        const char *err = tp_dyn_grouper_error(g);
        snprintf(why, why_cap, "line %" PRIu64 ": %s%s", ln, err,
                 strstr(err, "unknown key") ? " (--ignore-unknown-fields skips such keys)"
                 : src->records == 0 && strstr(err, "this line starts with")
                     ? "; is the input varint-delimited protobuf? then give --input-format delimited"
                     : "");
        return e;
    }
    const uint8_t *m;
    size_t n;
    if ((e = tp_delimited_reader_next(src->delimited, &m, &n))) {
        if (e != TP_ERR_END)
            snprintf(why, why_cap, "%s", tp_delimited_reader_error(src->delimited));
        return e;
    }
    if ((e = tp_dyn_grouper_add(g, m, n, full)) == TP_OK) {
        src->records++;
        return TP_OK;
    }
    snprintf(why, why_cap, "record %" PRIu64 " (ending at input byte %" PRIu64 "): %s", src->records,
             tp_delimited_reader_offset(src->delimited), tp_dyn_grouper_error(g));
    return e;
}

uint64_t tp_cli_schema_src_bytes(const tp_cli_schema_src *src)
{
    return src->ndjson ? tp_ndjson_reader_bytes(src->ndjson)
         : src->delimited ? tp_delimited_reader_offset(src->delimited) : 0;
}

void tp_cli_schema_src_close(tp_cli_schema_src *src)
{
    tp_ndjson_reader_free(src->ndjson);
    tp_delimited_reader_free(src->delimited);
    src->ndjson = NULL;
    src->delimited = NULL;
}

/* ---- pack --schema ---- */

static void pack_usage(void)
{
    printf("Usage: telepack pack --schema FILE --message NAME [OPTIONS]\n"
           "\n"
           "Reads records of NAME (NDJSON per protobuf's JSON mapping, or varint-delimited protobuf), checks each\n"
           "under the schema, groups them per key (the vehicle) and writes one pack per key's batch: layout rows\n"
           "(pbpack v1, the records' protobuf bytes varint length-prefixed in a zstd frame: the original bytes, or an\n"
           "NDJSON record's canonical encoding; `zstd -d` and any protobuf library read them) or layout columns\n"
           "(pbpack v4, docs/FORMAT_SCHEMA.md: columns by field number, several times smaller).\n"
           "`telepack inspect --schema` reads both.\n"
           "\n"
           "Options:\n" TP_CLI_SCHEMA_HELP
           "  --in FILE|-             input (default - = stdin)\n"
           "  --input-format F        ndjson (default: one object per line, keys the fields' JSON or .proto names,\n"
           "                          as `inspect --schema` prints; a line may be 4 x --max-record-bytes) or\n"
           "                          delimited (varint length-prefixed protobuf)\n"
           "  --ignore-unknown-fields skip NDJSON keys that name no field (default: such a key is an error naming\n"
           "                          it and its line, so a misspelt key is not packed as absent)\n"
           "  --out FILE|-            output (default - = stdout; not a terminal)\n"
           "  --layout L              rows (default) or columns; a pack with a record holding fields the schema\n"
           "                          does not know stays rows (nothing is dropped)\n"
           "  --codec C               zstd (default) or none\n"
           "  --level N               zstd level 1..22 (default 3)\n"
           "  --batch-records N       records per pack (default 200)\n"
           "  --max-buffered N        records held across all open packs before the oldest is written\n"
           "                          (default 1000000)\n"
           "  --max-record-bytes N    largest message accepted (default 65536)\n"
           "  -q, --quiet             no summary\n"
           "  -h, --help              this text\n"
           "\n"
           "Exit status: 0 done, 1 I/O failure, 2 bad options, a refused schema or a record that does not decode\n"
           "(named with its number and byte offset; the packs of the records before it are written).\n");
}

enum { P_IN = 256, P_OUT, P_CODEC, P_LEVEL, P_BATCH, P_MAX_BUFFERED, P_MAX_RECORD, P_INPUT_FORMAT, P_LAYOUT,
       P_IGNORE_UNKNOWN };

typedef struct spack {
    tp_dyn_grouper *g;
    tp_dyn_colwriter *cw; /* --layout columns */
    ZSTD_CCtx *cctx;
    int level;
    tp_codec codec;
    FILE *f;
    const char *out_name;
    uint64_t packs, bytes_out, content, row_packs;
} spack;

static int write_group(spack *p, tp_dyn_group *grp)
{
    uint8_t *out = NULL;
    size_t n = 0;
    const uint8_t *content = grp->content;
    size_t clen = grp->len;
    if (p->cw) {
        const uint8_t *cols;
        size_t cn;
        tp_err ce = tp_dyn_colwriter_convert(p->cw, grp->content, grp->len, &cols, &cn);
        if (ce) {
            fprintf(stderr, "telepack pack: the columns of key %s failed: %s\n", grp->key, tp_strerror(ce));
            return 1;
        }
        if (cols) {
            content = cols;
            clen = cn;
        } else {
            p->row_packs++; /* a field unknown to the schema: rows keep it */
        }
    }
    tp_err e = tp_dyn_pack_compress(p->cctx, p->level, p->codec, content, clen, &out, &n);
    if (e) {
        fprintf(stderr, "telepack pack: compressing the pack of key %s failed: %s\n", grp->key, tp_strerror(e));
        return 1;
    }
    size_t w = fwrite(out, 1, n, p->f);
    free(out);
    if (w != n) {
        fprintf(stderr, "telepack pack: writing to %s failed: %s\n", p->out_name, strerror(errno));
        return 1;
    }
    p->packs++;
    p->bytes_out += n;
    p->content += clen;
    tp_dyn_grouper_release(p->g, grp);
    return 0;
}

typedef struct pack_args {
    tp_cli_schema so;
    const char *in_path, *out_path;
    int codec, input, layout;
    uint64_t level, batch, max_buffered, max_record;
    bool quiet, ignore_unknown;
} pack_args;

static const char *const codec_words[] = {"none", "zstd", NULL};

/* Reads pack --schema's options into a; returns -1 to go on, else the exit status. A linear option switch: it
 * reads better whole. */
static int pack_parse_args(int argc, char **argv, pack_args *a)
{
    static const struct option longopts[] = {
        TP_CLI_SCHEMA_LONGOPTS,
        {"in", required_argument, NULL, P_IN},
        {"out", required_argument, NULL, P_OUT},
        {"codec", required_argument, NULL, P_CODEC},
        {"level", required_argument, NULL, P_LEVEL},
        {"batch-records", required_argument, NULL, P_BATCH},
        {"max-buffered", required_argument, NULL, P_MAX_BUFFERED},
        {"max-record-bytes", required_argument, NULL, P_MAX_RECORD},
        {"input-format", required_argument, NULL, P_INPUT_FORMAT},
        {"layout", required_argument, NULL, P_LAYOUT},
        {"ignore-unknown-fields", no_argument, NULL, P_IGNORE_UNKNOWN},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const input_words[] = {"ndjson", "delimited", NULL};
    static const char *const layout_words[] = {"rows", "columns", NULL};
    *a = (pack_args){.in_path = "-", .out_path = "-", .codec = TP_CODEC_ZSTD, .input = 0, .level = 3, .batch = 200,
                     .max_buffered = 1000000, .max_record = 65536};
    int c;
    char msg[512];
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        tp_err e = TP_OK;
        if (tp_cli_schema_option(&a->so, c, optarg))
            continue;
        switch (c) {
        case P_IN: a->in_path = optarg; break;
        case P_OUT: a->out_path = optarg; break;
        case P_CODEC: e = tp_cli_parse_choice("codec", optarg, codec_words, &a->codec, msg, sizeof msg); break;
        case P_INPUT_FORMAT: e = tp_cli_parse_choice("input-format", optarg, input_words, &a->input, msg, sizeof msg); break;
        case P_LAYOUT: e = tp_cli_parse_choice("layout", optarg, layout_words, &a->layout, msg, sizeof msg); break;
        case P_LEVEL: e = tp_cli_parse_u64("level", optarg, 1, 22, &a->level, msg, sizeof msg); break;
        case P_BATCH: e = tp_cli_parse_u64("batch-records", optarg, 1, 1000000, &a->batch, msg, sizeof msg); break;
        case P_MAX_BUFFERED:
            e = tp_cli_parse_u64("max-buffered", optarg, 1, 1000000000, &a->max_buffered, msg, sizeof msg);
            break;
        case P_MAX_RECORD:
            e = tp_cli_parse_u64("max-record-bytes", optarg, 16, 64u << 20, &a->max_record, msg, sizeof msg);
            break;
        case P_IGNORE_UNKNOWN: a->ignore_unknown = true; break;
        case 'q': a->quiet = true; break;
        case 'h': pack_usage(); return 0;
        case ':': return tp_cli_usage_error("pack", "option '%s' needs a value", argv[optind - 1]);
        default: return tp_cli_usage_error("pack", "unknown option '%s' (with --schema)", argv[optind - 1]);
        }
        if (e)
            return tp_cli_usage_error("pack", "%s", msg);
    }
    if (optind < argc)
        return tp_cli_usage_error("pack", "unexpected argument '%s' (use --in FILE for the input)", argv[optind]);
    if (!strcmp(a->out_path, "-") && isatty(STDOUT_FILENO))
        return tp_cli_usage_error("pack", "refusing to write binary packs to a terminal; use --out FILE or a pipe");
    return -1;
}

/* Reads the records of src into p's groups, writing each full group and the oldest while more than max_buffered
 * records are held, then the rest. Returns the exit status. */
static int pack_records(spack *p, tp_cli_schema_src *src, const char *in_name, uint64_t max_buffered)
{
    int status = 0;
    char why[1024];
    while (!status) {
        tp_dyn_group *full;
        tp_err e = tp_cli_schema_src_next(src, p->g, &full, why, sizeof why);
        if (e == TP_ERR_END)
            break;
        if (e == TP_ERR_NOMEM) {
            fprintf(stderr, "telepack pack: out of memory\n");
            status = 1;
            break;
        }
        if (e) {
            fprintf(stderr, "telepack pack: %s: %s; fix or remove it (the %" PRIu64 " records before it are packed)\n",
                    in_name, why, src->records);
            status = e == TP_ERR_IO ? 1 : 2;
            break;
        }
        if (full && write_group(p, full))
            status = 1;
        while (!status && tp_dyn_grouper_buffered(p->g) > max_buffered)
            status = write_group(p, tp_dyn_grouper_oldest(p->g));
    }
    for (tp_dyn_group *grp; status != 1 && (grp = tp_dyn_grouper_oldest(p->g));)
        if (write_group(p, grp))
            status = 1;
    return status;
}

static int pack_schema(int argc, char **argv)
{
    pack_args a;
    int status = pack_parse_args(argc, argv, &a);
    if (status >= 0)
        return status;
    tp_schema *s = NULL;
    status = tp_cli_schema_load("pack", &a.so, &s);
    if (status)
        return status;
    spack p = {.level = (int)a.level, .codec = (tp_codec)a.codec};
    FILE *in = tp_cli_open_in(a.in_path);
    const char *in_name = strcmp(a.in_path, "-") ? a.in_path : "stdin";
    p.out_name = strcmp(a.out_path, "-") ? a.out_path : "stdout";
    tp_cli_schema_src src = {0};
    if (!in) {
        fprintf(stderr, "telepack pack: cannot open %s: %s\n", a.in_path, strerror(errno));
        tp_schema_free(s);
        return 1;
    }
    if (!(p.f = tp_cli_open_out(a.out_path))) {
        fprintf(stderr, "telepack pack: cannot create %s: %s\n", a.out_path, strerror(errno));
        tp_cli_close(in);
        tp_schema_free(s);
        return 1;
    }
    double t0 = tp_mono_s();
    if (tp_cli_schema_src_open(&src, in, a.input == 0, a.ignore_unknown, (size_t)a.max_record) ||
        tp_dyn_grouper_new(s, (uint32_t)a.batch, (size_t)a.max_record, &p.g) ||
        (a.layout == 1 && tp_dyn_colwriter_new(s, (uint32_t)a.batch, (size_t)a.max_record, &p.cw)) ||
        (a.codec == TP_CODEC_ZSTD && !(p.cctx = ZSTD_createCCtx()))) {
        fprintf(stderr, "telepack pack: out of memory\n");
        status = 1;
    } else {
        status = pack_records(&p, &src, in_name, a.max_buffered);
    }
    uint64_t bytes_in = tp_cli_schema_src_bytes(&src), records = src.records;
    tp_cli_schema_src_close(&src);
    tp_cli_close(in);
    if (tp_cli_close(p.f) && status != 1) {
        fprintf(stderr, "telepack pack: writing to %s failed: %s\n", p.out_name, strerror(errno));
        status = 1;
    }
    if (!a.quiet) {
        char bi[32], bo[32], bc[32];
        char layout[64];
        if (a.layout == 1)
            snprintf(layout, sizeof layout, "layout columns, %" PRIu64 " as rows: unknown fields", p.row_packs);
        fprintf(stderr, "pack: %" PRIu64 " records -> %" PRIu64 " packs (%s, %s, codec %s), %s %s in "
                "-> %s out, ratio %.2fx, %.1f B/record (content %s) in %.2f s\n", records, p.packs,
                tp_schema_message_name(s), a.layout == 1 ? layout : "pbpack v1", codec_words[a.codec],
                tp_cli_bytes(bytes_in, bi, sizeof bi), a.input == 0 ? "NDJSON" : "delimited",
                tp_cli_bytes(p.bytes_out, bo, sizeof bo), p.bytes_out ? (double)bytes_in / (double)p.bytes_out : 0.0,
                records ? (double)p.bytes_out / (double)records : 0.0, tp_cli_bytes(p.content, bc, sizeof bc),
                tp_mono_s() - t0);
    }
    ZSTD_freeCCtx(p.cctx);
    tp_dyn_colwriter_free(p.cw);
    tp_dyn_grouper_free(p.g);
    tp_schema_free(s);
    return status;
}

/* ---- inspect --schema ---- */

static void inspect_usage(void)
{
    printf("Usage: telepack inspect --schema FILE --message NAME [OPTIONS] [FILE|-]\n"
           "\n"
           "Decodes a stream of pbpack v1 packs of NAME (as `telepack pack --schema` writes: zstd frames back to\n"
           "back) with the dynamic decoder and prints every record as one NDJSON line per protobuf's JSON mapping\n"
           "(lowerCamelCase keys, 64-bit integers as strings, Timestamps in RFC 3339, enums by name), then a\n"
           "summary on stderr. Input that does not start with the zstd magic is one codec-none pack.\n"
           "\n"
           "Options:\n" TP_CLI_SCHEMA_HELP
           "  --proto-names           keys as the .proto field names instead of lowerCamelCase\n"
           "  --summary-only          print no records, only the summary\n"
           "  --max-pack-bytes N      largest decompressed pack accepted (default %u)\n"
           "  --max-record-bytes N    largest record accepted (default 65536)\n"
           "  -h, --help              this text\n"
           "\n"
           "Exit status: 0 done, 1 I/O failure, 2 bad options or bad input (named with the pack and byte offset).\n",
           TP_DEFAULT_MAX_PACK_BYTES);
}

enum { I_PROTO_NAMES = 256, I_SUMMARY, I_MAX_PACK, I_MAX_RECORD };

/* Reads the whole input up to `limit` bytes more than one pack needs, pack by pack. */
typedef struct sbuf {
    FILE *f;
    uint8_t *p;
    size_t start, end, cap, limit;
    uint64_t base;
    bool eof, error;
} sbuf;

static bool sfill(sbuf *b)
{
    if (b->eof)
        return false;
    if (b->start) {
        memmove(b->p, b->p + b->start, b->end - b->start);
        b->end -= b->start;
        b->base += b->start;
        b->start = 0;
    }
    if (b->end == b->cap) {
        if (b->cap >= b->limit)
            return false;
        size_t cap = b->cap ? b->cap * 2 : 1 << 20;
        if (cap > b->limit)
            cap = b->limit;
        uint8_t *q = realloc(b->p, cap);
        if (!q)
            return false;
        b->p = q;
        b->cap = cap;
    }
    size_t n = fread(b->p + b->end, 1, b->cap - b->end, b->f);
    b->end += n;
    if (n == 0) {
        b->eof = true;
        b->error = ferror(b->f) != 0;
    }
    return n > 0;
}

typedef struct inspect_args {
    tp_cli_schema so;
    int flags;
    bool quiet;
    uint64_t max_pack, max_record;
    const char *path;
} inspect_args;

/* Reads inspect --schema's options into a; returns -1 to go on, else the exit status. A linear option switch: it
 * reads better whole. */
static int inspect_parse_args(int argc, char **argv, inspect_args *a)
{
    static const struct option longopts[] = {
        TP_CLI_SCHEMA_LONGOPTS,
        {"proto-names", no_argument, NULL, I_PROTO_NAMES},
        {"summary-only", no_argument, NULL, I_SUMMARY},
        {"max-pack-bytes", required_argument, NULL, I_MAX_PACK},
        {"max-record-bytes", required_argument, NULL, I_MAX_RECORD},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *a = (inspect_args){.max_pack = TP_DEFAULT_MAX_PACK_BYTES, .max_record = 65536};
    int c;
    char msg[256];
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        tp_err e = TP_OK;
        if (tp_cli_schema_option(&a->so, c, optarg))
            continue;
        switch (c) {
        case I_PROTO_NAMES: a->flags |= TP_DYN_JSON_PROTO_NAMES; break;
        case I_SUMMARY: a->quiet = true; break;
        case I_MAX_PACK: e = tp_cli_parse_u64("max-pack-bytes", optarg, 1024, (uint64_t)1 << 31, &a->max_pack, msg, sizeof msg); break;
        case I_MAX_RECORD: e = tp_cli_parse_u64("max-record-bytes", optarg, 16, 64u << 20, &a->max_record, msg, sizeof msg); break;
        case 'h': inspect_usage(); return 0;
        case ':': return tp_cli_usage_error("inspect", "option '%s' needs a value", argv[optind - 1]);
        default: return tp_cli_usage_error("inspect", "unknown option '%s' (with --schema)", argv[optind - 1]);
        }
        if (e)
            return tp_cli_usage_error("inspect", "%s", msg);
    }
    if (argc - optind > 1)
        return tp_cli_usage_error("inspect", "give one input file, not %d", argc - optind);
    a->path = optind < argc ? argv[optind] : "-";
    return -1;
}

/* Finds the next pack at in->start: a zstd frame, or (first and only) the whole input as one codec-none pack.
 * Sets *fs to its size and *zstd; returns 0, -1 at the end of the input, or the exit status (reported, except a
 * read error, which the caller reports). */
static int next_pack(sbuf *in, const char *name, uint64_t packs, size_t *fs, bool *zstd)
{
    while (in->end - in->start < 4 && sfill(in)) {
    }
    if (in->error)
        return 1;
    size_t have = in->end - in->start;
    if (have == 0)
        return -1;
    const uint8_t *p = in->p + in->start;
    uint64_t at = in->base + in->start;
    *zstd = have >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd;
    if (*zstd) {
        tp_err e;
        while ((e = tp_pack_frame_size(in->p + in->start, in->end - in->start, fs)) == TP_ERR_TRUNCATED && sfill(in)) {
        }
        if (in->error)
            return 1;
        if (e) {
            fprintf(stderr, "telepack inspect: %s: pack %" PRIu64 " at byte offset %" PRIu64 ": %s\n", name, packs,
                    at, e == TP_ERR_TRUNCATED ? "the input ends inside the pack; the file is truncated"
                                              : "the zstd frame is malformed");
            return 2;
        }
        return 0;
    }
    if (packs) {
        fprintf(stderr, "telepack inspect: %s: pack %" PRIu64 " at byte offset %" PRIu64 " does not start with "
                "the zstd magic (28 b5 2f fd); the input is not a stream of packs or is damaged here\n",
                name, packs, at);
        return 2;
    }
    while (sfill(in)) { /* codec none: the whole input is one pack */
    }
    if (!in->eof || in->error) {
        fprintf(stderr, "telepack inspect: %s: a codec-none pack larger than %zu bytes\n", name, in->limit);
        return in->error ? 1 : 2;
    }
    *fs = in->end - in->start;
    return 0;
}

/* What inspect decodes with and what it counted. */
typedef struct inspect_run {
    const inspect_args *a;
    const tp_schema *s;
    const char *name;
    tp_dyn_pack_reader *rd;
    tp_dyn_batch *b;
    tp_dyn_batch *cb; /* a column pack's records */
    tp_dyn_text text;
    uint64_t packs, records, compressed, content, unknown, column_packs;
} inspect_run;

/* Decodes the pack of fs bytes at p (byte offset at) and prints its records. Returns the exit status. */
static int print_pack(inspect_run *r, const uint8_t *p, size_t fs, uint64_t at)
{
    tp_err e = tp_dyn_pack_reader_open(r->rd, NULL, p, fs);
    if (e) {
        fprintf(stderr, "telepack inspect: %s: pack %" PRIu64 " at byte offset %" PRIu64 ": %s (%s)\n", r->name,
                r->packs, at, tp_dyn_pack_reader_error(r->rd), tp_strerror(e));
        return 2;
    }
    if (tp_dyn_pack_reader_is_columns(r->rd)) {
        /* A batch for the pack's records (bounded by --max-pack-bytes / 16 at open), grown when a pack needs more;
         * strings and arrays up to 4 x --max-pack-bytes, as the sink's. */
        size_t want = tp_dyn_pack_reader_count(r->rd);
        if (!r->cb || r->cb->capacity < want) {
            tp_dyn_batch_free(r->cb);
            r->cb = NULL;
            uint64_t budget = 4 * r->a->max_pack;
            if (tp_dyn_batch_new(r->s, want, budget > UINT32_MAX ? UINT32_MAX : (size_t)budget, &r->cb))
                return 1;
        }
        tp_dyn_batch_clear(r->cb);
        if ((e = tp_dyn_pack_reader_read_columns(r->rd, r->cb))) {
            fprintf(stderr, "telepack inspect: %s: pack %" PRIu64 " at byte offset %" PRIu64 ": %s (%s)\n", r->name,
                    r->packs, at, tp_dyn_pack_reader_error(r->rd), tp_strerror(e));
            return 2;
        }
        r->records += r->cb->count;
        r->column_packs++;
        for (size_t i = 0; i < r->cb->count && !r->a->quiet; i++) {
            r->text.len = 0;
            if (tp_dyn_row_json(r->cb, i, r->a->flags, &r->text) ||
                fwrite(r->text.p, 1, r->text.len, stdout) != r->text.len)
                return 1;
        }
        return 0;
    }
    const uint8_t *m;
    size_t n;
    for (uint32_t i = 0; tp_dyn_pack_reader_next(r->rd, &m, &n) == TP_OK; i++) {
        tp_dyn_batch_clear(r->b);
        if ((e = tp_dyn_decode(r->b, m, n))) {
            fprintf(stderr, "telepack inspect: %s: pack %" PRIu64 " at byte offset %" PRIu64 ": record %" PRIu32
                    " does not decode as %s: %s (%s)\n", r->name, r->packs, at, i, tp_schema_message_name(r->s),
                    r->b->error, tp_strerror(e));
            return 2;
        }
        r->unknown += r->b->unknown_fields;
        r->records++;
        if (r->a->quiet)
            continue;
        r->text.len = 0;
        if (tp_dyn_row_json(r->b, 0, r->a->flags, &r->text) || fwrite(r->text.p, 1, r->text.len, stdout) != r->text.len)
            return 1;
    }
    return 0;
}

static int inspect_schema(int argc, char **argv)
{
    inspect_args a;
    int status = inspect_parse_args(argc, argv, &a);
    if (status >= 0)
        return status;
    const char *path = a.path;
    const char *name = strcmp(path, "-") ? path : "stdin";
    tp_schema *s = NULL;
    status = tp_cli_schema_load("inspect", &a.so, &s);
    if (status)
        return status;
    sbuf in = {.f = tp_cli_open_in(path), .limit = ZSTD_compressBound((size_t)a.max_pack) + 4096};
    inspect_run r = {.a = &a, .s = s, .name = name};
    if (!in.f) {
        fprintf(stderr, "telepack inspect: cannot open %s: %s\n", path, strerror(errno));
        tp_schema_free(s);
        return 1;
    }
    if (tp_dyn_pack_reader_new((size_t)a.max_pack, (size_t)a.max_record, &r.rd) ||
        tp_dyn_batch_new(s, 1, 9 * (size_t)a.max_record + 64, &r.b)) {
        fprintf(stderr, "telepack inspect: out of memory\n");
        status = 1;
    }
    bool zstd = true;
    while (!status) {
        size_t fs = 0;
        int more = next_pack(&in, name, r.packs, &fs, &zstd);
        if (more) {
            status = more < 0 ? 0 : more;
            break;
        }
        if ((status = print_pack(&r, in.p + in.start, fs, in.base + in.start)))
            break;
        r.packs++;
        r.compressed += fs;
        r.content += tp_dyn_pack_reader_content_size(r.rd);
        in.start += fs;
    }
    if (in.error)
        fprintf(stderr, "telepack inspect: reading %s failed: %s\n", name, strerror(errno));
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "telepack inspect: writing records to stdout failed: %s\n", strerror(errno));
        status = 1;
    }
    char bc[32], bt[32];
    fprintf(stderr, "inspect: %" PRIu64 " packs, %" PRIu64 " records of %s, %s compressed, %s content, ratio %.2fx "
            "(%s)%s%s%s\n", r.packs, r.records, tp_schema_message_name(s), tp_cli_bytes(r.compressed, bc, sizeof bc),
            tp_cli_bytes(r.content, bt, sizeof bt), r.compressed ? (double)r.content / (double)r.compressed : 0.0,
            zstd ? "codec zstd" : "codec none", r.column_packs ? ", layout columns" : "",
            r.unknown ? ", unknown fields skipped" : "",
            status == 2 ? ", stopped at the bad input" : "");
    tp_dyn_text_free(&r.text);
    tp_dyn_batch_free(r.b);
    tp_dyn_batch_free(r.cb);
    tp_dyn_pack_reader_free(r.rd);
    free(in.p);
    tp_cli_close(in.f);
    tp_schema_free(s);
    return status;
}

int tp_cmd_pack_schema(int argc, char **argv)
{
    return pack_schema(argc, argv);
}

int tp_cmd_inspect_schema(int argc, char **argv)
{
    return inspect_schema(argc, argv);
}
