/* `telepack inspect`: a stream of packs (zstd frames back to back, as `telepack pack` writes) -> NDJSON records on
 * stdout and a one-line summary on stderr. Input that does not start with the zstd magic is taken as codec none:
 * varint-delimited records with no pack boundaries, where each run of one vehicle's records counts as a pack. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "cli/schema_cli.h"
#include "telepack/pack.h"
#include "telepack/record.h"
#include "telepack/record_json.h"
#include "telepack/delimited.h"

/* Input buffer over a stdio stream: buf[start..end) is unread; it grows up to `limit` to hold one whole pack. */
typedef struct inbuf {
    FILE *f;
    uint8_t *buf;
    size_t cap, limit, start, end;
    uint64_t base; /* input offset of buf[0] */
    bool eof, error;
} inbuf;

static size_t avail(const inbuf *b) { return b->end - b->start; }
static uint64_t offset(const inbuf *b) { return b->base + b->start; }

/* Reads more, making room first; returns false at EOF (or on a read error, with b->error set) or when the buffer
 * is at its limit and full. */
static bool fill(inbuf *b)
{
    if (b->eof)
        return false;
    if (b->start > 0) {
        memmove(b->buf, b->buf + b->start, avail(b));
        b->base += b->start;
        b->end -= b->start;
        b->start = 0;
    }
    if (b->end == b->cap) {
        if (b->cap >= b->limit)
            return false;
        size_t cap = b->cap * 2 > b->limit ? b->limit : b->cap * 2;
        uint8_t *p = realloc(b->buf, cap);
        if (!p)
            return false;
        b->buf = p;
        b->cap = cap;
    }
    size_t n = fread(b->buf + b->end, 1, b->cap - b->end, b->f);
    b->end += n;
    if (n == 0) {
        b->eof = true;
        b->error = ferror(b->f) != 0;
        return false;
    }
    return true;
}

/* Makes at least `want` bytes available if the input has them. */
static void need(inbuf *b, size_t want)
{
    while (avail(b) < want && fill(b)) {
    }
}

typedef struct stats {
    uint64_t packs, records, compressed, content, skipped_frames;
} stats;

typedef struct printer {
    bool quiet; /* --summary-only */
    char line[TP_RECORD_JSON_MAX + 1];
} printer;

static int print_record(printer *pr, const tp_record *r)
{
    if (pr->quiet)
        return 0;
    size_t n;
    if (tp_record_json_write(r, pr->line, sizeof pr->line - 1, &n) != TP_OK)
        return -1;
    pr->line[n++] = '\n';
    return fwrite(pr->line, 1, n, stdout) == n ? 0 : -1;
}

#define ZSTD_MAGIC 0xFD2FB528u
#define SKIPPABLE_MASK 0xFFFFFFF0u
#define SKIPPABLE_MAGIC 0x184D2A50u

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

__attribute__((format(printf, 2, 3))) static int bad_input(const char *name, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "telepack inspect: %s: ", name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

/* Packs as zstd frames back to back. Returns the exit status. */
static int inspect_zstd(inbuf *in, const char *name, tp_pack_reader *rd, printer *pr, stats *st)
{
    for (;;) {
        need(in, 8);
        if (in->error)
            return 1;
        size_t have = avail(in);
        if (have == 0)
            return 0;
        const uint8_t *p = in->buf + in->start;
        uint64_t at = offset(in);
        if (have >= 4 && (le32(p) & SKIPPABLE_MASK) == SKIPPABLE_MAGIC) {
            /* A skippable frame (zstd -d ignores them too): step over it. */
            if (have < 8)
                return bad_input(name, "skippable frame at byte offset %" PRIu64 " is cut short by the end of the input", at);
            uint64_t skip = 8 + (uint64_t)le32(p + 4);
            while (skip > 0) {
                if (avail(in) == 0 && !fill(in))
                    return in->error ? 1
                                     : bad_input(name, "skippable frame at byte offset %" PRIu64
                                                 " is cut short by the end of the input", at);
                size_t n = avail(in) < skip ? avail(in) : (size_t)skip;
                in->start += n;
                skip -= n;
            }
            st->skipped_frames++;
            continue;
        }
        if (have < 4 || le32(p) != ZSTD_MAGIC) {
            char bytes[3 * 4 + 1] = "";
            for (size_t i = 0; i < have && i < 4; i++)
                snprintf(bytes + 3 * i, sizeof bytes - 3 * i, "%02x ", p[i]);
            return bad_input(name,
                             "pack %" PRIu64 " at byte offset %" PRIu64 " does not start with the zstd magic "
                             "(28 b5 2f fd) but with %s; the input is not a stream of packs or is damaged here",
                             st->packs, at, have ? bytes : "nothing");
        }
        size_t fs;
        tp_err e;
        for (;;) {
            e = tp_pack_frame_size(in->buf + in->start, avail(in), &fs);
            if (e != TP_ERR_TRUNCATED)
                break;
            if (!fill(in)) {
                if (in->error)
                    return 1;
                if (in->eof)
                    return bad_input(name,
                                     "pack %" PRIu64 " at byte offset %" PRIu64 ": the input ends inside the pack "
                                     "after %zu bytes; the file is truncated",
                                     st->packs, at, avail(in));
                return bad_input(name,
                                 "pack %" PRIu64 " at byte offset %" PRIu64 " is larger than %zu bytes "
                                 "compressed; raise --max-pack-bytes if it is genuine",
                                 st->packs, at, in->limit);
            }
        }
        if (e)
            return bad_input(name, "pack %" PRIu64 " at byte offset %" PRIu64 ": the zstd frame is malformed (%s)",
                             st->packs, at, tp_strerror(e));
        e = tp_pack_reader_open(rd, NULL, in->buf + in->start, fs);
        if (e)
            return bad_input(name, "pack %" PRIu64 " at byte offset %" PRIu64 ": %s (%s)", st->packs, at,
                             tp_pack_reader_error_detail(rd), tp_strerror(e));
        tp_record r;
        while ((e = tp_pack_reader_next(rd, &r)) == TP_OK) {
            if (print_record(pr, &r) != 0)
                return 1;
            st->records++;
        }
        if (e != TP_ERR_END)
            return bad_input(name, "pack %" PRIu64 " at byte offset %" PRIu64 ": %s (%s)", st->packs, at,
                             tp_pack_reader_error_detail(rd), tp_strerror(e));
        st->packs++;
        st->compressed += fs;
        st->content += tp_pack_reader_meta(rd)->content_size;
        in->start += fs;
    }
}

/* The delimited reader's input: what the buffer holds already (the sniffed magic), then the file. */
static long read_inbuf(void *ctx, void *buf, size_t cap)
{
    inbuf *in = ctx;
    if (avail(in) == 0 && !fill(in))
        return in->error ? -1 : 0;
    size_t n = avail(in) < cap ? avail(in) : cap;
    memcpy(buf, in->buf + in->start, n);
    in->start += n;
    return (long)n;
}

/* Codec none: varint-delimited records; a run of one vehicle counts as one pack. */
static int inspect_raw(inbuf *in, const char *name, size_t max_record, printer *pr, stats *st)
{
    tp_delimited_reader_opts ro;
    tp_delimited_reader_opts_init(&ro);
    ro.read = read_inbuf;
    ro.read_ctx = in;
    ro.max_message_bytes = max_record;
    tp_delimited_reader *rd;
    if (tp_delimited_reader_new(&ro, &rd))
        return 1;
    uint64_t vehicle = 0;
    bool first = true;
    tp_record r;
    tp_err e;
    int status = 0;
    while ((e = tp_delimited_reader_next_record(rd, &r)) == TP_OK) {
        if (first || r.vehicle_id != vehicle)
            st->packs++;
        first = false;
        vehicle = r.vehicle_id;
        if (print_record(pr, &r) != 0) {
            status = 1;
            break;
        }
        st->records++;
    }
    st->compressed = st->content = tp_delimited_reader_offset(rd);
    if (e == TP_ERR_IO || e == TP_ERR_NOMEM)
        status = 1;
    else if (!status && e != TP_ERR_END)
        status = bad_input(name, "raw %s%s", tp_delimited_reader_error(rd),
                           e == TP_ERR_TRUNCATED ? "; the file is truncated"
                           : e == TP_ERR_RECORD_TOO_LARGE
                               ? "; the input is neither zstd packs nor raw (codec none) packs"
                               : "");
    tp_delimited_reader_free(rd);
    return status;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: telepack inspect [OPTIONS] [FILE|-]\n"
            "\n"
            "Decodes a stream of packs (as `telepack pack` writes: zstd frames back to back) and prints every\n"
            "record as one NDJSON line on stdout, then a summary on stderr (packs, records, compressed bytes,\n"
            "content bytes, ratio). Input that does not start with the zstd magic is read as codec none\n"
            "(varint-delimited records; each run of one vehicle counts as a pack). FILE defaults to stdin.\n"
            "\n"
            "Options:\n"
            "  --summary-only        print no records, only the summary\n"
            "  --schema FILE ...     packs of a message type of your own (inspect --schema x --help)\n"
            "  --max-pack-bytes N    largest decompressed pack accepted (default %u); a bigger one is an error\n"
            "  --dict-dir DIR        zstd dictionaries for packs that name one: every DIR/*.zdict (at most 64,\n"
            "                        1 MiB each); a pack naming a dictionary not there is an error naming its id\n"
            "  -h, --help            this text\n"
            "\n"
            "Exit status: 0 done, 1 I/O failure, 2 bad options or bad input (the message names the pack and byte\n"
            "offset; records before the bad spot have been printed).\n"
            "\n"
            "Example:\n"
            "  telepack inspect fleet.packs | head\n",
            TP_DEFAULT_MAX_PACK_BYTES);
}

enum { OPT_SUMMARY_ONLY = 256, OPT_MAX_PACK, OPT_DICT_DIR };

int tp_cmd_inspect(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"summary-only", no_argument, NULL, OPT_SUMMARY_ONLY},
        {"max-pack-bytes", required_argument, NULL, OPT_MAX_PACK},
        {"dict-dir", required_argument, NULL, OPT_DICT_DIR},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (tp_cli_has_schema(argc, argv))
        return tp_cmd_inspect_schema(argc, argv); /* a message type of your own: cmd_pack_schema.c */
    printer pr = {0};
    uint64_t max_pack = TP_DEFAULT_MAX_PACK_BYTES;
    const char *dict_dir = NULL;
    char msg[256];
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SUMMARY_ONLY: pr.quiet = true; break;
        case OPT_MAX_PACK:
            if (tp_cli_parse_u64("max-pack-bytes", optarg, 1024, (uint64_t)1 << 31, &max_pack, msg, sizeof msg))
                return tp_cli_usage_error("inspect", "%s", msg);
            break;
        case OPT_DICT_DIR: dict_dir = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':': return tp_cli_usage_error("inspect", "option '%s' needs a value", argv[optind - 1]);
        default: return tp_cli_usage_error("inspect", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind > 1)
        return tp_cli_usage_error("inspect", "give one input file, not %d", argc - optind);
    const char *path = optind < argc ? argv[optind] : "-";
    const char *name = strcmp(path, "-") ? path : "stdin";

    tp_pack_reader_opts ro;
    tp_pack_reader_opts_init(&ro);
    ro.max_pack_bytes = (size_t)max_pack;
    tp_dict_set *dicts = NULL;
    if (dict_dir) {
        char derr[512];
        tp_err de = tp_dict_set_new(&dicts);
        if (!de && (de = tp_dict_set_load_dir(dicts, dict_dir, derr, sizeof derr)) != TP_OK) {
            fprintf(stderr, "telepack inspect: %s\n", derr);
            tp_dict_set_free(dicts);
            return de == TP_ERR_NOMEM ? 1 : 2;
        }
        if (de) {
            fprintf(stderr, "telepack inspect: %s\n", tp_strerror(de));
            return 1;
        }
        ro.dicts = dicts;
    }
    tp_pack_reader *rd;
    tp_err e = tp_pack_reader_new(&ro, &rd);
    if (e) {
        fprintf(stderr, "telepack inspect: cannot create a pack reader: %s\n", tp_strerror(e));
        tp_dict_set_free(dicts);
        return 1;
    }
    inbuf in = {0};
    in.f = tp_cli_open_in(path);
    if (!in.f) {
        fprintf(stderr, "telepack inspect: cannot open %s: %s\n", path, strerror(errno));
        tp_pack_reader_free(rd);
        tp_dict_set_free(dicts);
        return 1;
    }
    in.cap = 1u << 20;
    in.limit = ZSTD_compressBound((size_t)max_pack) + 4096;
    if (in.cap > in.limit)
        in.cap = in.limit;
    in.buf = malloc(in.cap);
    if (!in.buf) {
        fprintf(stderr, "telepack inspect: out of memory\n");
        tp_cli_close(in.f);
        tp_pack_reader_free(rd);
        tp_dict_set_free(dicts);
        return 1;
    }
    setvbuf(stdout, NULL, _IOFBF, 1u << 16);

    stats st = {0};
    need(&in, 4);
    bool zstd = avail(&in) >= 4 && (le32(in.buf) == ZSTD_MAGIC || (le32(in.buf) & SKIPPABLE_MASK) == SKIPPABLE_MAGIC);
    int status = in.error ? 1 : zstd ? inspect_zstd(&in, name, rd, &pr, &st)
                                     : inspect_raw(&in, name, ro.max_record_bytes, &pr, &st);
    if (in.error)
        fprintf(stderr, "telepack inspect: reading %s failed: %s\n", name, strerror(errno));
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "telepack inspect: writing records to stdout failed: %s\n", strerror(errno));
        status = 1;
    }
    char bc[32], bt[32];
    fprintf(stderr,
            "inspect: %" PRIu64 " packs, %" PRIu64 " records, %s compressed, %s content, ratio %.2fx (%s%s)%s\n",
            st.packs, st.records, tp_cli_bytes(st.compressed, bc, sizeof bc), tp_cli_bytes(st.content, bt, sizeof bt),
            st.compressed ? (double)st.content / (double)st.compressed : 0.0, zstd ? "codec zstd" : "codec none",
            st.skipped_frames ? ", skippable frames skipped" : "", status == 2 ? ", stopped at the bad input" : "");
    free(in.buf);
    tp_cli_close(in.f);
    tp_pack_reader_free(rd);
    tp_dict_set_free(dicts);
    return status;
}
