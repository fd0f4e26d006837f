/* `telepack dict`: zstd dictionaries for packs (docs/FORMAT_V2.md, "zstd dictionaries"). `train` makes one from
 * pack contents: a file of packs (their frames decompressed), or NDJSON records packed first as `pack` and
 * `ingest --from` pack them (per vehicle, --batch-records at a time, the writer's layout); `info` checks one and
 * prints its id. The id is zstd's own, a hash of the trained content: see include/telepack/dict.h. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "telepack/dict.h"
#include "telepack/pack.h"
#include "telepack/record_json.h"

#define MAX_RECORDS 4000000u               /* NDJSON records read for training (~224 MB held) */
#define MAX_SAMPLE_BYTES (256u << 20)      /* pack contents given to the trainer, in all */

typedef struct samples {
    uint8_t *buf;
    size_t len, cap;
    size_t *sizes;
    size_t n, ncap;
    int full; /* MAX_SAMPLE_BYTES reached: later packs are left out */
} samples;

static int samples_add(samples *s, const uint8_t *p, size_t len)
{
    if (s->len + len > MAX_SAMPLE_BYTES) {
        s->full = 1;
        return 0;
    }
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 1u << 20;
        while (cap < s->len + len)
            cap *= 2;
        uint8_t *b = realloc(s->buf, cap);
        if (!b)
            return -1;
        s->buf = b;
        s->cap = cap;
    }
    if (s->n == s->ncap) {
        size_t cap = s->ncap ? s->ncap * 2 : 1024;
        size_t *z = realloc(s->sizes, cap * sizeof *z);
        if (!z)
            return -1;
        s->sizes = z;
        s->ncap = cap;
    }
    memcpy(s->buf + s->len, p, len);
    s->len += len;
    s->sizes[s->n++] = len;
    return 0;
}

/* A file of packs: each frame's content is a sample. */
static int from_packs(const uint8_t *data, size_t len, const char *name, samples *s)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    uint8_t *out = NULL;
    size_t out_cap = 0, pos = 0;
    int status = 0;
    if (!dctx || ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, 27))) {
        fprintf(stderr, "telepack dict: out of memory\n");
        ZSTD_freeDCtx(dctx);
        return 1;
    }
    while (pos < len && !s->full) {
        size_t fs;
        tp_err e = tp_pack_frame_size(data + pos, len - pos, &fs);
        unsigned long long cs = e ? 0 : ZSTD_getFrameContentSize(data + pos, fs);
        if (e || cs == ZSTD_CONTENTSIZE_ERROR || cs == ZSTD_CONTENTSIZE_UNKNOWN || cs > TP_DEFAULT_MAX_PACK_BYTES) {
            fprintf(stderr, "telepack dict: %s: pack %zu at byte offset %zu is not a pack telepack wrote (%s); give "
                    "packs from `telepack pack` or NDJSON records\n", name, s->n, pos,
                    e ? tp_strerror(e) : "no or too large content size");
            status = 2;
            break;
        }
        if (ZSTD_getDictID_fromFrame(data + pos, fs) != 0) {
            fprintf(stderr, "telepack dict: %s: pack %zu at byte offset %zu was made with dictionary %u; train on "
                    "packs made without one (or on the NDJSON records)\n", name, s->n, pos,
                    ZSTD_getDictID_fromFrame(data + pos, fs));
            status = 2;
            break;
        }
        if (cs > out_cap) {
            uint8_t *o = realloc(out, (size_t)cs ? (size_t)cs : 1);
            if (!o) {
                status = 1;
                break;
            }
            out = o;
            out_cap = (size_t)cs;
        }
        size_t got = ZSTD_decompressDCtx(dctx, out, out_cap, data + pos, fs);
        if (ZSTD_isError(got)) {
            fprintf(stderr, "telepack dict: %s: pack %zu at byte offset %zu does not decompress: %s\n", name, s->n,
                    pos, ZSTD_getErrorName(got));
            status = 2;
            break;
        }
        if (samples_add(s, out, got) < 0) {
            status = 1;
            break;
        }
        pos += fs;
    }
    free(out);
    ZSTD_freeDCtx(dctx);
    return status;
}

static int cmp_vehicle(const void *a, const void *b)
{
    const tp_record *x = a, *y = b;
    if (x->vehicle_id != y->vehicle_id)
        return x->vehicle_id < y->vehicle_id ? -1 : 1;
    return x < y ? -1 : x > y; /* arrival order within a vehicle (qsort on distinct addresses: stable) */
}

/* NDJSON records: grouped per vehicle in arrival order, cut into packs of `per` records (what `pack` and
 * `ingest --from` make of a replay), each pack's content (codec none) a sample. */
static int from_ndjson(FILE *f, const char *name, uint32_t per, tp_layout layout, samples *s)
{
    tp_ndjson_reader *rd;
    if (tp_ndjson_reader_new(f, 0, &rd))
        return 1;
    tp_record *recs = NULL;
    size_t n = 0, cap = 0;
    char msg[512];
    tp_err e;
    int status = 0;
    for (;;) {
        if (n == cap) {
            size_t c = cap ? cap * 2 : 65536;
            tp_record *g = realloc(recs, c * sizeof *g);
            if (!g) {
                status = 1;
                break;
            }
            recs = g;
            cap = c;
        }
        if (n == MAX_RECORDS)
            break;
        e = tp_ndjson_reader_next(rd, &recs[n], msg, sizeof msg);
        if (e == TP_ERR_END)
            break;
        if (e) {
            fprintf(stderr, "telepack dict: %s: %s; fix or remove it\n", name, msg);
            status = e == TP_ERR_IO ? 1 : 2;
            break;
        }
        n++;
    }
    tp_ndjson_reader_free(rd);
    if (status) {
        free(recs);
        return status;
    }
    qsort(recs, n, sizeof *recs, cmp_vehicle);
    tp_pack_writer_opts wo;
    tp_pack_writer_opts_init(&wo);
    wo.codec = TP_CODEC_NONE;
    wo.layout = layout;
    tp_pack_writer *w;
    uint8_t *out = NULL;
    size_t out_cap = 0;
    if (tp_pack_writer_new(&wo, &w)) {
        free(recs);
        return 1;
    }
    for (size_t i = 0; i < n && !status && !s->full; i++) {
        if (tp_pack_writer_add(w, &recs[i]) != TP_OK) {
            status = 1;
            break;
        }
        if (tp_pack_writer_count(w) < per && i + 1 < n && recs[i + 1].vehicle_id == recs[i].vehicle_id)
            continue;
        size_t bound = tp_pack_writer_bound(w), len;
        if (bound > out_cap) {
            uint8_t *o = realloc(out, bound);
            if (!o) {
                status = 1;
                break;
            }
            out = o;
            out_cap = bound;
        }
        if (tp_pack_writer_finish(w, out, out_cap, &len, NULL) || samples_add(s, out, len) < 0)
            status = 1;
    }
    if (status == 1)
        fprintf(stderr, "telepack dict: out of memory packing %zu records\n", n);
    if (n == MAX_RECORDS)
        fprintf(stderr, "telepack dict: %s: trained on the first %u records\n", name, MAX_RECORDS);
    free(out);
    tp_pack_writer_free(w);
    free(recs);
    return status;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: telepack dict train --from FILE --out DICT [OPTIONS]\n"
            "       telepack dict info DICT\n"
            "\n"
            "zstd dictionaries for small packs (docs/FORMAT_V2.md, \"zstd dictionaries\"; OPERATIONS.md for the\n"
            "roll-out: sinks first, then writers). `train` learns one from pack contents: FILE is a file of packs\n"
            "(as `telepack pack` writes, without a dictionary) or NDJSON records, which are packed first as\n"
            "`pack` and `ingest --from` pack them (per vehicle, --batch-records at a time). The dictionary's id is\n"
            "zstd's hash of its content (32768..2^31-1): a retrained dictionary gets a new id, so an id never\n"
            "names two dictionaries. `info` checks a dictionary file as readers load it and prints its id.\n"
            "\n"
            "Options of train:\n"
            "  --from FILE|-         packs or NDJSON records (told apart by the first bytes); at most %u\n"
            "                        records or %u MiB of pack contents are used\n"
            "  --out FILE            where to write the dictionary (install it as <id>.zdict in --dict-dir)\n"
            "  --size N              dictionary size, 1K..1M (default 8K; 16K and 32K gain a little more)\n"
            "  --layout L            columns (default) or rows: the layout the writers use (NDJSON input only)\n"
            "  --batch-records N     records per pack for NDJSON input (default 200, ingest's default)\n"
            "  -h, --help            this text\n"
            "\n"
            "At least %u packs are needed; a few thousand, from the fleet the writers serve, are better.\n"
            "Exit status: 0 done, 1 I/O failure, 2 bad options or bad input.\n"
            "\n"
            "Example:\n"
            "  telepack dict train --from sample.ndjson --out fleet.zdict && telepack dict info fleet.zdict\n",
            MAX_RECORDS, MAX_SAMPLE_BYTES >> 20, TP_DICT_MIN_SAMPLES);
}

static int info(const char *path)
{
    char err[512];
    tp_dict *d;
    tp_err e = tp_dict_read_file(path, 0, &d, err, sizeof err);
    if (e) {
        fprintf(stderr, "telepack dict: %s\n", err);
        return e == TP_ERR_IO || e == TP_ERR_NOMEM ? 1 : 2;
    }
    printf("%s: zstd dictionary id %" PRIu32 ", %zu bytes (%zu of entropy tables, %zu of content); install as "
           "%" PRIu32 ".zdict\n",
           path, tp_dict_id(d), tp_dict_size(d), tp_dict_header_size(d), tp_dict_size(d) - tp_dict_header_size(d),
           tp_dict_id(d));
    tp_dict_free(d);
    return 0;
}

/* The whole input, at most max bytes (more is an error). */
static int slurp(FILE *f, const char *name, size_t max, uint8_t **out, size_t *len)
{
    size_t cap = 1u << 20, n = 0;
    uint8_t *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        if (cap >= max) {
            fprintf(stderr, "telepack dict: %s holds more than %zu MiB of packs; give a sample of them\n", name,
                    max >> 20);
            free(b);
            return 2;
        }
        uint8_t *g = realloc(b, cap * 2);
        if (!g)
            break;
        b = g;
        cap *= 2;
    }
    if (!b || ferror(f)) {
        fprintf(stderr, "telepack dict: reading %s failed: %s\n", name, b ? strerror(errno) : "out of memory");
        free(b);
        return 1;
    }
    *out = b;
    *len = n;
    return 0;
}

enum { OPT_FROM = 256, OPT_OUT, OPT_SIZE, OPT_LAYOUT, OPT_BATCH };

static int train(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"from", required_argument, NULL, OPT_FROM},
        {"out", required_argument, NULL, OPT_OUT},
        {"size", required_argument, NULL, OPT_SIZE},
        {"layout", required_argument, NULL, OPT_LAYOUT},
        {"batch-records", required_argument, NULL, OPT_BATCH},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const layout_words[] = {"rows", "columns", NULL};
    const char *from = NULL, *out = NULL;
    uint64_t size = 8192, batch = 200;
    int layout = TP_LAYOUT_COLUMNS - 1;
    char msg[512];
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        tp_err e = TP_OK;
        switch (c) {
        case OPT_FROM: from = optarg; break;
        case OPT_OUT: out = optarg; break;
        case OPT_SIZE: e = tp_cli_parse_size("size", optarg, 1024, TP_DICT_MAX_BYTES, &size, msg, sizeof msg); break;
        case OPT_LAYOUT: e = tp_cli_parse_choice("layout", optarg, layout_words, &layout, msg, sizeof msg); break;
        case OPT_BATCH: e = tp_cli_parse_u64("batch-records", optarg, 1, 1000000, &batch, msg, sizeof msg); break;
        case 'h': usage(stdout); return 0;
        case ':': return tp_cli_usage_error("dict train", "option '%s' needs a value", argv[optind - 1]);
        default: return tp_cli_usage_error("dict train", "unknown option '%s'", argv[optind - 1]);
        }
        if (e)
            return tp_cli_usage_error("dict train", "%s", msg);
    }
    if (optind < argc)
        return tp_cli_usage_error("dict train", "unexpected argument '%s'", argv[optind]);
    if (!from || !out)
        return tp_cli_usage_error("dict train", "give --from FILE (packs or NDJSON records) and --out DICT");
    const char *name = strcmp(from, "-") ? from : "stdin";
    FILE *f = tp_cli_open_in(from);
    if (!f) {
        fprintf(stderr, "telepack dict: cannot open %s: %s\n", from, strerror(errno));
        return 1;
    }
    samples s = {0};
    int ch = getc(f), status;
    if (ch != EOF)
        ungetc(ch, f);
    if (ch == 0x28) { /* the zstd magic 28 b5 2f fd: a file of packs */
        uint8_t *data = NULL;
        size_t len = 0;
        status = slurp(f, name, (size_t)1 << 30, &data, &len);
        if (!status)
            status = from_packs(data, len, name, &s);
        free(data);
    } else {
        status = from_ndjson(f, name, (uint32_t)batch, (tp_layout)(layout + 1), &s);
    }
    tp_cli_close(f);
    if (s.full)
        fprintf(stderr, "telepack dict: %s: trained on the first %zu packs (%u MiB of contents)\n", name, s.n,
                MAX_SAMPLE_BYTES >> 20);
    uint8_t *dict = status ? NULL : malloc((size_t)size);
    size_t dict_len = 0;
    if (!status && !dict)
        status = 1;
    if (!status) {
        tp_err e = tp_dict_train(s.buf, s.sizes, s.n, dict, (size_t)size, &dict_len, msg, sizeof msg);
        if (e) {
            fprintf(stderr, "telepack dict: %s: %s\n", name, msg);
            status = e == TP_ERR_NOMEM ? 1 : 2;
        }
    }
    if (!status) {
        FILE *o = fopen(out, "wb");
        if (!o || fwrite(dict, 1, dict_len, o) != dict_len || fclose(o) != 0) {
            fprintf(stderr, "telepack dict: writing %s failed: %s\n", out, strerror(errno));
            status = 1;
        } else {
            fprintf(stderr, "dict: trained on %zu packs (%zu content bytes, %.1f per pack)\n", s.n, s.len,
                    s.n ? (double)s.len / (double)s.n : 0.0);
            status = info(out);
        }
    }
    free(dict);
    free(s.buf);
    free(s.sizes);
    return status;
}

int tp_cmd_dict(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "train"))
        return train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info")) {
        if (argc == 3 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
            usage(stdout);
            return 0;
        }
        if (argc != 3)
            return tp_cli_usage_error("dict info", "give one dictionary file");
        return info(argv[2]);
    }
    return tp_cli_usage_error("dict", "unknown subcommand '%s'; use train or info", argv[1]);
}
