/* `telepack tune`: packs a sample of records (NDJSON or the fleet simulator; with --schema, varint-delimited
 * messages of a run-time schema) at every batch size x zstd level x linger x pack layout, measures bytes per record
 * and encode speed, marks the Pareto front and recommends ingest settings. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "cli/schema_cli.h"
#include "kafka/pack_headers.h"
#include "kafka/schema_headers.h"
#include "schema/dynpack.h"
#include "schema/dynrow.h"
#include "sim/fleet.h"
#include "telepack/delimited.h"
#include "telepack/pack.h"
#include "telepack/record.h"
#include "telepack/record_json.h"
#include "common/clock.h"

#define MAX_LIST 32

static const char usage_text[] =
    "Usage: telepack tune [OPTIONS]\n"
    "\n"
    "Packs a sample of records at every batch size x zstd level x linger x pack layout and prints, for each\n"
    "point: bytes per record (the pack alone, and with the Kafka message around it), the ratio against the same\n"
    "records as NDJSON, the encode speed measured on this machine (records per CPU-second, one core), and the\n"
    "latency the linger implies. Points on the Pareto front (no other point is smaller, faster and quicker at\n"
    "once) are marked, and the best front point for the target is recommended as `telepack ingest` flags.\n"
    "\n"
    "Sample (default: the fleet simulator):\n"
    "  --from FILE            NDJSON records from FILE ('-' for stdin) instead of the simulator\n"
    "  --ignore-unknown-fields  skip keys of --from that name no record field (default: such a key is an\n"
    "                         error naming it and its line, so a misspelt field is not read as zero)\n"
    "  --vehicles N           simulated vehicles (default 20)\n"
    "  --seconds N            simulated seconds (default 2400: 2400 records per vehicle at 1 Hz, enough to fill\n"
    "                         the largest default batch)\n"
    "  --interval-ms N        simulated sampling interval (default 1000)\n"
    "  --seed N               simulator seed (default 1)\n"
    "  --max-records N        read at most N records (default 1000000)\n"
    "\n"
    "Sample of a run-time schema (docs/SCHEMA.md):\n" TP_CLI_SCHEMA_HELP
    "  With --schema, --from FILE ('-' for stdin) is required and holds varint-delimited messages of NAME (the\n"
    "  simulator makes the built-in record; NDJSON is not read under --schema yet: convert with protoc --encode),\n"
    "  at most 65536 bytes each. Each message is decoded and grouped per key as `telepack ingest --schema` does;\n"
    "  the NDJSON baseline is protobuf's JSON mapping of the records (`telepack inspect --schema`); a record\n"
    "  without an event time counts at the time of its key's record before it.\n"
    "\n"
    "Sweep:\n"
    "  --batch LIST           records per pack, comma-separated (default 10,50,200,1000,2000)\n"
    "  --level LIST           zstd levels 1..19 (default 1,3,6,9)\n"
    "  --layouts LIST         pack layouts: rows (pbpack v1, standard protobuf), columns (pbpack v2, the\n"
    "                         default of ingest), coded (columns through a range coder: fewer bytes, more CPU;\n"
    "                         on request) (default rows,columns; with --schema: rows (pbpack v1)\n"
    "                         and columns (pbpack v4, the default of ingest --schema))\n"
    "  --linger-ms LIST       linger values to try; a pack then closes at the batch size or when the linger has\n"
    "                         passed since its first record (sampled_at time). Default: for each batch size, the\n"
    "                         linger that just fills it at the sample's per-vehicle rate\n"
    "  --measure-ms N         CPU time spent measuring the encode speed of each point (default 100; the\n"
    "                         fastest whole pass over the sample counts)\n"
    "  Each vehicle's last pack is cut short by the end of the sample, not by the batcher: it is encoded and timed\n"
    "  but left out of the sizes when the vehicle has other packs.\n"
    "\n"
    "Target (the recommendation):\n"
    "  --target-latency-ms N  smallest Kafka bytes per record with latency <= N (default 60000 when no target)\n"
    "  --target-cost B        lowest latency with Kafka bytes per record <= B\n"
    "                         (both given: the fastest encoding that meets both)\n"
    "\n"
    "Output:\n"
    "  --json                 one JSON document on stdout instead of the table\n"
    "  --plot FILE            plot ratio vs encode speed to FILE (.svg or .png) with gnuplot; without gnuplot\n"
    "                         the plot is skipped with a note\n"
    "  -h, --help             this text\n"
    "\n"
    "Exit status: 0 with a recommendation, 1 when no point meets the target or the plot fails, 2 for bad options\n"
    "or input.\n";

/* A pack layout the sweep can try: one entry each. The built-in record's layouts go through tp_pack_writer; a
 * run-time schema's through the grouper of `telepack ingest --schema` (schema/dynpack.h), whose group content
 * (varint-delimited frames: pbpack v1) `convert` may turn into the layout's content before it is compressed. */
typedef struct tune_layout {
    const char *name;       /* the --layouts word */
    bool schema;            /* a layout of a run-time schema (else of the built-in record) */
    tp_layout layout;       /* the tp-layout header (and the built-in pack writer's layout) */
    uint32_t version;       /* the tp-version header: the pbpack version */
    const char *ingest_flag; /* how `telepack ingest` picks it ("" when it has no flag for it) */
    const char *colour;     /* the plot's series */
    int point_type;
    /* Run-time schema layouts other than rows: state made per point, and the conversion of a group's rows
     * content into the layout's content (*out valid until the next call). NULL: the rows content as it is. */
    tp_err (*open)(const tp_schema *s, uint32_t batch_records, size_t max_record_bytes, void **state);
    tp_err (*convert)(void *state, const uint8_t *rows, size_t len, const uint8_t **out, size_t *out_len);
    void (*close)(void *state);
} tune_layout;

/* Column packs of a run-time schema (pbpack v4, docs/FORMAT_SCHEMA.md), through the converter ingest --schema
 * uses. */
static tp_err colwriter_open(const tp_schema *s, uint32_t batch_records, size_t max_record_bytes, void **state)
{
    return tp_dyn_colwriter_new(s, batch_records, max_record_bytes, (tp_dyn_colwriter **)state);
}
static tp_err colwriter_convert(void *state, const uint8_t *rows, size_t len, const uint8_t **out, size_t *out_len)
{
    return tp_dyn_colwriter_convert(state, rows, len, out, out_len);
}
static void colwriter_close(void *state) { tp_dyn_colwriter_free(state); }

static const tune_layout tune_layouts[] = {
    {"rows", false, TP_LAYOUT_ROWS, 1, "--layout rows ", "#1f77b4", 7, NULL, NULL, NULL},
    {"columns", false, TP_LAYOUT_COLUMNS, 2, "--layout columns ", "#ff7f0e", 5, NULL, NULL, NULL},
    {"coded", false, TP_LAYOUT_COLUMNS, 2, "--layout coded ", "#2ca02c", 9, NULL, NULL, NULL},
    {"rows", true, TP_LAYOUT_ROWS, 1, "--layout rows ", "#1f77b4", 7, NULL, NULL, NULL},
    {"columns", true, TP_LAYOUT_COLUMNS, 4, "--layout columns ", "#ff7f0e", 5, colwriter_open, colwriter_convert,
     colwriter_close},
};
#define N_TUNE_LAYOUTS (sizeof tune_layouts / sizeof tune_layouts[0])

/* Largest message of a run-time schema read into the sample (ingest --schema's default --max-record-bytes). */
#define SCHEMA_MAX_RECORD 65536

/* One message of a run-time schema in the sample. */
typedef struct srecord {
    size_t off;      /* its bytes: sample.msgs[off .. off + len) */
    uint32_t len;
    uint32_t key_off; /* its key text: sample.keys[key_off .. key_off + key_len) */
    uint32_t key_len;
    bool has_time;
    int64_t t_ms;    /* event time in ms (after sample_prepare: filled in from the key's record before) */
    size_t arrival;
} srecord;

typedef struct sample {
    tp_record *r;            /* the built-in record */
    size_t n, cap;
    size_t vehicles;
    double rate_hz;          /* records per second per vehicle (0 = unknown) */
    double json_bytes;       /* NDJSON size of the records, newlines included */
    double proto_bytes;      /* varint-delimited protobuf size (the pack content) */
    char source[256];
    /* a run-time schema's messages (schema != NULL) */
    const tp_schema *schema;
    srecord *sr;
    uint8_t *msgs;
    size_t msgs_len, msgs_cap;
    uint8_t *keys;
    size_t keys_len, keys_cap;
} sample;

typedef struct point {
    int batch;
    int level;
    const tune_layout *layout;
    int64_t linger_ms;
    bool linger_derived;
    double latency_ms;
    uint64_t packs;          /* packs counted in the sizes */
    uint64_t cut_packs;      /* vehicles' last packs, cut short by the end of the sample and not counted */
    uint64_t records;        /* records in the counted packs */
    uint64_t pack_bytes;     /* compressed packs */
    uint64_t wire_bytes;     /* packs + Kafka headers, key and framing */
    double bpr, wire_bpr;    /* bytes per record */
    double ratio, wire_ratio;
    double enc_rps;          /* records per CPU-second */
    bool front;
} point;

typedef struct options {
    const char *from;
    uint32_t vehicles, seconds, interval_ms;
    uint64_t seed;
    uint64_t max_records;
    int batches[MAX_LIST], n_batches;
    int levels[MAX_LIST], n_levels;
    const tune_layout *layouts[N_TUNE_LAYOUTS];
    int n_layouts;
    int64_t lingers[MAX_LIST];
    int n_lingers;
    int measure_ms;
    double target_latency_ms; /* < 0: not given */
    double target_cost;       /* < 0: not given */
    bool json;
    const char *plot;
    unsigned json_flags;     /* TP_RECORD_JSON_* for --from */
    tp_cli_schema so;        /* --schema and its role options */
    const char *sim_option;  /* a simulator option given (refused with --schema) */
} options;

/* ---- option parsing ---- */

static const char *layout_name(const tune_layout *l)
{
    return l->name;
}

/* Layout names of the mode (the built-in record's or a run-time schema's), comma-separated, each once; NULL: all
 * of the mode. */
static int parse_layouts(const char *s, bool schema, const tune_layout **out, int *n)
{
    *n = 0;
    for (size_t i = 0; !s && i < N_TUNE_LAYOUTS; i++) /* by default rows and columns: coded on request */
        if (tune_layouts[i].schema == schema && strcmp(tune_layouts[i].name, "coded") != 0)
            out[(*n)++] = &tune_layouts[i];
    if (!s)
        return 0;
    for (const char *p = s;; p++) {
        size_t len = strcspn(p, ",");
        const tune_layout *l = NULL;
        for (size_t i = 0; i < N_TUNE_LAYOUTS && !l; i++)
            if (tune_layouts[i].schema == schema && strlen(tune_layouts[i].name) == len &&
                !strncmp(p, tune_layouts[i].name, len))
                l = &tune_layouts[i];
        for (int i = 0; l && i < *n; i++)
            if (out[i] == l)
                l = NULL;
        if (!l || *n == (int)N_TUNE_LAYOUTS)
            return -1;
        out[(*n)++] = l;
        p += len;
        if (!*p)
            return 0;
    }
}

/* The layout words of the mode, for the error: "rows, columns or rows,columns". */
static const char *layout_words(bool schema, char *buf, size_t cap)
{
    size_t len = 0;
    int k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < N_TUNE_LAYOUTS && len < cap; i++)
        if (tune_layouts[i].schema == schema)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", k++ ? ", " : "", tune_layouts[i].name);
    return buf;
}

static int bad_value(const char *opt, const char *value, const char *want)
{
    fprintf(stderr, "telepack tune: %s '%s' is not valid; %s\n", opt, value, want);
    return 2;
}

static int parse_options(int argc, char **argv, options *o)
{
    enum { O_FROM = 256, O_VEH, O_SEC, O_INT, O_SEED, O_MAXREC, O_BATCH, O_LEVEL, O_LAYOUTS, O_LINGER, O_MEASURE,
           O_TLAT, O_TCOST, O_JSON, O_PLOT, O_IGNORE_UNKNOWN };
    static const struct option longopts[] = {
        {"from", required_argument, NULL, O_FROM},       {"vehicles", required_argument, NULL, O_VEH},
        {"seconds", required_argument, NULL, O_SEC},     {"interval-ms", required_argument, NULL, O_INT},
        {"seed", required_argument, NULL, O_SEED},       {"max-records", required_argument, NULL, O_MAXREC},
        {"batch", required_argument, NULL, O_BATCH},     {"level", required_argument, NULL, O_LEVEL},
        {"layouts", required_argument, NULL, O_LAYOUTS},
        {"linger-ms", required_argument, NULL, O_LINGER}, {"measure-ms", required_argument, NULL, O_MEASURE},
        {"target-latency-ms", required_argument, NULL, O_TLAT},
        {"target-cost", required_argument, NULL, O_TCOST}, {"json", no_argument, NULL, O_JSON},
        {"plot", required_argument, NULL, O_PLOT},
        {"ignore-unknown-fields", no_argument, NULL, O_IGNORE_UNKNOWN},
        {"help", no_argument, NULL, 'h'},
        TP_CLI_SCHEMA_LONGOPTS,
        {NULL, 0, NULL, 0}};
    *o = (options){.vehicles = 20, .seconds = 2400, .interval_ms = 1000, .seed = 1, .max_records = 1000000,
                   .batches = {10, 50, 200, 1000, 2000}, .n_batches = 5, .levels = {1, 3, 6, 9}, .n_levels = 4,
                   .measure_ms = 100, .target_latency_ms = -1, .target_cost = -1};
    uint64_t v, tmp[MAX_LIST];
    size_t n;
    const char *layouts = NULL;
    char msg[256];
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        tp_err e = TP_OK;
        if (tp_cli_schema_option(&o->so, c, optarg))
            continue;
        if (c == O_VEH || c == O_SEC || c == O_INT || c == O_SEED || c == O_IGNORE_UNKNOWN)
            o->sim_option = c == O_VEH ? "--vehicles" : c == O_SEC ? "--seconds" : c == O_INT ? "--interval-ms"
                            : c == O_SEED ? "--seed" : "--ignore-unknown-fields";
        switch (c) {
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        case O_FROM: o->from = optarg; break;
        case O_IGNORE_UNKNOWN: o->json_flags = TP_RECORD_JSON_IGNORE_UNKNOWN; break;
        case O_VEH:
            if (!(e = tp_cli_parse_u64("vehicles", optarg, 1, 1000000, &v, msg, sizeof msg)))
                o->vehicles = (uint32_t)v;
            break;
        case O_SEC:
            if (!(e = tp_cli_parse_u64("seconds", optarg, 1, 30 * 86400, &v, msg, sizeof msg)))
                o->seconds = (uint32_t)v;
            break;
        case O_INT:
            if (!(e = tp_cli_parse_ms("interval-ms", optarg, 10, 3600000, &v, msg, sizeof msg)))
                o->interval_ms = (uint32_t)v;
            break;
        case O_SEED: e = tp_cli_parse_u64("seed", optarg, 0, UINT64_MAX, &o->seed, msg, sizeof msg); break;
        case O_MAXREC: e = tp_cli_parse_u64("max-records", optarg, 1, 100000000, &o->max_records, msg, sizeof msg); break;
        case O_BATCH:
            if (!(e = tp_cli_parse_list("batch", optarg, 1, 1000000, tmp, MAX_LIST, &n, msg, sizeof msg)))
                for (o->n_batches = 0; (size_t)o->n_batches < n; o->n_batches++)
                    o->batches[o->n_batches] = (int)tmp[o->n_batches];
            break;
        case O_LEVEL:
            if (!(e = tp_cli_parse_list("level", optarg, 1, 19, tmp, MAX_LIST, &n, msg, sizeof msg)))
                for (o->n_levels = 0; (size_t)o->n_levels < n; o->n_levels++)
                    o->levels[o->n_levels] = (int)tmp[o->n_levels];
            break;
        case O_LAYOUTS:
            layouts = optarg;
            break;
        case O_LINGER:
            if (!(e = tp_cli_parse_list("linger-ms", optarg, 1, 86400000, tmp, MAX_LIST, &n, msg, sizeof msg)))
                for (o->n_lingers = 0; (size_t)o->n_lingers < n; o->n_lingers++)
                    o->lingers[o->n_lingers] = (int64_t)tmp[o->n_lingers];
            break;
        case O_MEASURE:
            if (!(e = tp_cli_parse_ms("measure-ms", optarg, 1, 60000, &v, msg, sizeof msg)))
                o->measure_ms = (int)v;
            break;
        case O_TLAT:
            if (!(e = tp_cli_parse_ms("target-latency-ms", optarg, 1, 86400000ull * 30, &v, msg, sizeof msg)))
                o->target_latency_ms = (double)v;
            break;
        case O_TCOST:
            e = tp_cli_parse_double("target-cost", optarg, 1e-9, 1e9, &o->target_cost, msg, sizeof msg);
            break;
        case O_JSON:
            o->json = true;
            break;
        case O_PLOT: {
            const char *dot = strrchr(optarg, '.');
            if (!dot || (strcmp(dot, ".svg") && strcmp(dot, ".png")))
                return bad_value("--plot", optarg, "name a file ending in .svg or .png");
            o->plot = optarg;
            break;
        }
        default:
            fprintf(stderr, "telepack tune: unknown or incomplete option '%s'; run 'telepack tune --help'\n",
                    argv[optind - 1]);
            return 2;
        }
        if (e)
            return tp_cli_usage_error("tune", "%s", msg);
    }
    if (optind < argc) {
        fprintf(stderr, "telepack tune: unexpected argument '%s'; run 'telepack tune --help'\n", argv[optind]);
        return 2;
    }
    if (o->target_latency_ms < 0 && o->target_cost < 0)
        o->target_latency_ms = 60000;
    bool schema = o->so.path != NULL;
    if (parse_layouts(layouts, schema, o->layouts, &o->n_layouts)) {
        char words[128];
        snprintf(msg, sizeof msg, "give one or more of %s, comma-separated, each once%s",
                 layout_words(schema, words, sizeof words), schema ? " (the layouts of a run-time schema)" : "");
        return bad_value("--layouts", layouts, msg);
    }
    if (schema && !o->from)
        return tp_cli_usage_error("tune", "--schema needs --from FILE of varint-delimited messages of the schema "
                                          "(the simulator makes the built-in record only)");
    if (schema && o->sim_option)
        return tp_cli_usage_error("tune", "%s is for the simulator or the built-in record's NDJSON, not for "
                                          "--schema; leave it out", o->sim_option);
    if (!schema && (o->so.message || o->so.key || o->so.time || o->so.unit || o->so.identity))
        return tp_cli_usage_error("tune", "--message, --key-field, --time-field, --time-unit and "
                                          "--identity-fields go with --schema FILE");
    return 0;
}

/* ---- the sample ---- */

static int sample_push(sample *s, const tp_record *r)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        tp_record *nr = realloc(s->r, cap * sizeof *nr);
        if (!nr)
            return -1;
        s->r = nr;
        s->cap = cap;
    }
    s->r[s->n++] = *r;
    return 0;
}

static int load_fleet(const options *o, sample *s)
{
    tp_fleet_opts fo;
    tp_fleet_opts_init(&fo);
    fo.vehicles = o->vehicles;
    fo.seconds = o->seconds;
    fo.interval_ms = o->interval_ms;
    fo.seed = o->seed;
    tp_fleet *f = NULL;
    tp_err e = tp_fleet_new(&fo, &f);
    if (e) {
        fprintf(stderr, "telepack tune: cannot start the fleet simulator: %s\n", tp_strerror(e));
        return e == TP_ERR_INVALID_ARG ? 2 : 1;
    }
    tp_record r;
    while (s->n < o->max_records && (e = tp_fleet_next(f, &r)) == TP_OK)
        if (sample_push(s, &r)) {
            tp_fleet_free(f);
            fprintf(stderr, "telepack tune: out of memory holding %zu records; lower --max-records\n", s->n);
            return 1;
        }
    tp_fleet_free(f);
    snprintf(s->source, sizeof s->source, "fleet simulator: %u vehicles x %u s every %u ms, seed %" PRIu64,
             o->vehicles, o->seconds, o->interval_ms, o->seed);
    return 0;
}

static int load_ndjson(const options *o, sample *s)
{
    bool std_in = !strcmp(o->from, "-");
    FILE *in = std_in ? stdin : fopen(o->from, "rb");
    if (!in) {
        fprintf(stderr, "telepack tune: cannot open --from '%s': %s\n", o->from, strerror(errno));
        return 2;
    }
    tp_ndjson_reader *rd = NULL;
    tp_err e = tp_ndjson_reader_new(in, 0, &rd);
    int rc = 0;
    if (!e)
        tp_ndjson_reader_set_flags(rd, o->json_flags);
    if (e) {
        fprintf(stderr, "telepack tune: %s\n", tp_strerror(e));
        rc = 1;
        goto out;
    }
    tp_record r;
    char msg[512];
    while (s->n < o->max_records) {
        e = tp_ndjson_reader_next(rd, &r, msg, sizeof msg);
        if (e == TP_ERR_END)
            break;
        if (e) {
            fprintf(stderr, "telepack tune: %s: %s\n", o->from, e == TP_ERR_PARSE ? msg : tp_strerror(e));
            rc = e == TP_ERR_PARSE ? 2 : 1;
            goto out;
        }
        if (sample_push(s, &r)) {
            fprintf(stderr, "telepack tune: out of memory holding %zu records; lower --max-records\n", s->n);
            rc = 1;
            goto out;
        }
    }
    snprintf(s->source, sizeof s->source, "NDJSON from %s", std_in ? "stdin" : o->from);
out:
    tp_ndjson_reader_free(rd);
    if (!std_in)
        fclose(in);
    return rc;
}

static int cmp_record(const void *a, const void *b)
{
    const tp_record *x = a, *y = b;
    if (x->vehicle_id != y->vehicle_id)
        return x->vehicle_id < y->vehicle_id ? -1 : 1;
    if (x->sampled_at_ms != y->sampled_at_ms)
        return x->sampled_at_ms < y->sampled_at_ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Groups the records per vehicle in time order (as the batcher sees them) and measures the baselines. */
static void sample_prepare(sample *s)
{
    qsort(s->r, s->n, sizeof *s->r, cmp_record);
    double intervals = 0, span_ms = 0;
    for (size_t i = 0; i < s->n;) {
        size_t j = i;
        while (j < s->n && s->r[j].vehicle_id == s->r[i].vehicle_id)
            j++;
        s->vehicles++;
        intervals += (double)(j - i - 1);
        span_ms += (double)(s->r[j - 1].sampled_at_ms - s->r[i].sampled_at_ms);
        i = j;
    }
    s->rate_hz = span_ms > 0 ? intervals / (span_ms / 1000.0) : 0;
    char buf[TP_RECORD_JSON_MAX];
    uint8_t pb[TP_RECORD_MAX_ENCODED];
    for (size_t i = 0; i < s->n; i++) {
        size_t len = 0;
        if (tp_record_json_write(&s->r[i], buf, sizeof buf, &len) == TP_OK)
            s->json_bytes += (double)len + 1;
        if (tp_record_encode(&s->r[i], pb, sizeof pb, &len) == TP_OK)
            s->proto_bytes += (double)(len + varint_size(len));
    }
}

/* ---- the sample of a run-time schema ---- */

/* Appends src[0..n) to the growable buffer *p. */
static int buf_append(uint8_t **p, size_t *len, size_t *cap, const void *src, size_t n)
{
    if (n > *cap - *len) {
        size_t c = *cap ? *cap : 1 << 16;
        while (c - *len < n)
            c *= 2;
        uint8_t *q = realloc(*p, c);
        if (!q)
            return -1;
        *p = q;
        *cap = c;
    }
    if (n)
        memcpy(*p + *len, src, n);
    *len += n;
    return 0;
}

static int64_t ns_to_ms(int64_t ns)
{
    return ns / 1000000 - (ns % 1000000 < 0);
}

/* Reads --from's varint-delimited messages, decoding each under the schema (as ingest --schema does before it
 * sends): its bytes, key text and event time, and its JSON mapping's size for the baseline. */
static int load_schema_sample(const options *o, sample *s)
{
    bool std_in = !strcmp(o->from, "-");
    FILE *in = std_in ? stdin : fopen(o->from, "rb");
    if (!in) {
        fprintf(stderr, "telepack tune: cannot open --from '%s': %s\n", o->from, strerror(errno));
        return 2;
    }
    tp_delimited_reader_opts ro;
    tp_delimited_reader_opts_init(&ro);
    ro.file = in;
    ro.max_message_bytes = SCHEMA_MAX_RECORD;
    tp_delimited_reader *rd = NULL;
    tp_dyn_batch *b = NULL;
    tp_dyn_text js = {0};
    uint64_t unknown = 0;
    int rc = 0;
    if (tp_delimited_reader_new(&ro, &rd) || tp_dyn_batch_new(s->schema, 1, 9 * SCHEMA_MAX_RECORD, &b)) {
        fprintf(stderr, "telepack tune: out of memory\n");
        rc = 1;
        goto out;
    }
    while (s->n < o->max_records) {
        const uint8_t *m;
        size_t len;
        tp_err e = tp_delimited_reader_next(rd, &m, &len);
        if (e == TP_ERR_END)
            break;
        if (e) {
            fprintf(stderr, "telepack tune: %s: %s; fix or remove it\n", o->from, tp_delimited_reader_error(rd));
            rc = e == TP_ERR_IO ? 1 : 2;
            goto out;
        }
        char key[TP_DYN_KEY_MAX + 1], why[400];
        size_t key_len = 0;
        tp_dyn_batch_clear(b);
        e = tp_dyn_decode(b, m, len);
        if (e)
            snprintf(why, sizeof why, "%s", b->error);
        else
            e = tp_dyn_key_text(b, 0, key, &key_len, why, sizeof why);
        if (e) {
            fprintf(stderr, "telepack tune: %s: message %zu (ending at input byte %" PRIu64 ") does not decode as "
                    "%s: %s; fix or remove it\n", o->from, s->n, tp_delimited_reader_offset(rd),
                    tp_schema_message_name(s->schema), why);
            rc = 2;
            goto out;
        }
        unknown += b->unknown_fields;
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 4096;
            srecord *nr = realloc(s->sr, cap * sizeof *nr);
            if (!nr)
                goto oom;
            s->sr = nr;
            s->cap = cap;
        }
        srecord *r = &s->sr[s->n];
        int64_t ns = 0;
        *r = (srecord){.off = s->msgs_len, .len = (uint32_t)len, .key_off = (uint32_t)s->keys_len,
                       .key_len = (uint32_t)key_len, .arrival = s->n};
        r->has_time = tp_dyn_time_ns(b, 0, &ns);
        r->t_ms = r->has_time ? ns_to_ms(ns) : 0;
        js.len = 0;
        if (buf_append(&s->msgs, &s->msgs_len, &s->msgs_cap, m, len) ||
            buf_append(&s->keys, &s->keys_len, &s->keys_cap, key, key_len) || tp_dyn_row_json(b, 0, 0, &js))
            goto oom;
        s->json_bytes += (double)js.len; /* the newline included */
        s->proto_bytes += (double)(len + varint_size(len));
        s->n++;
    }
    snprintf(s->source, sizeof s->source, "varint-delimited %s from %s%s", tp_schema_message_name(s->schema),
             std_in ? "stdin" : o->from, unknown ? "; fields unknown to the schema kept in the packs" : "");
    goto out;
oom:
    fprintf(stderr, "telepack tune: out of memory holding %zu records; lower --max-records\n", s->n);
    rc = 1;
out:
    tp_dyn_text_free(&js);
    tp_dyn_batch_free(b);
    tp_delimited_reader_free(rd);
    if (!std_in)
        fclose(in);
    return rc;
}

static const uint8_t *cmp_keys; /* the sample's key arena, for the comparators (qsort has no context) */

static int cmp_key(const srecord *x, const srecord *y)
{
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = n ? memcmp(cmp_keys + x->key_off, cmp_keys + y->key_off, n) : 0;
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int cmp_arrival(const void *a, const void *b)
{
    const srecord *x = a, *y = b;
    int c = cmp_key(x, y);
    return c ? c : (x->arrival > y->arrival) - (x->arrival < y->arrival);
}

static int cmp_time(const void *a, const void *b)
{
    const srecord *x = a, *y = b;
    int c = cmp_key(x, y);
    if (c)
        return c;
    if (x->t_ms != y->t_ms)
        return x->t_ms < y->t_ms ? -1 : 1;
    return (x->arrival > y->arrival) - (x->arrival < y->arrival);
}

/* The end of the key group that starts at i. */
static size_t key_end(const sample *s, size_t i)
{
    size_t j = i;
    while (j < s->n && (s->schema ? !cmp_key(&s->sr[j], &s->sr[i]) : s->r[j].vehicle_id == s->r[i].vehicle_id))
        j++;
    return j;
}

/* Groups the messages per key in time order (a message without a time takes its key's time before it, in
 * arrival order) and measures the per-key rate. */
static void schema_sample_prepare(sample *s)
{
    cmp_keys = s->keys;
    qsort(s->sr, s->n, sizeof *s->sr, cmp_arrival);
    for (size_t i = 0; i < s->n; i++)
        if (!s->sr[i].has_time && i > 0 && !cmp_key(&s->sr[i], &s->sr[i - 1]))
            s->sr[i].t_ms = s->sr[i - 1].t_ms;
    qsort(s->sr, s->n, sizeof *s->sr, cmp_time);
    double intervals = 0, span_ms = 0;
    for (size_t i = 0, j; i < s->n; i = j) {
        j = key_end(s, i);
        s->vehicles++;
        intervals += (double)(j - i - 1);
        span_ms += (double)(s->sr[j - 1].t_ms - s->sr[i].t_ms);
    }
    s->rate_hz = span_ms > 0 ? intervals / (span_ms / 1000.0) : 0;
}

/* ---- measuring one point ---- */

/* Bytes a Kafka message adds around a pack: the eight tp-* headers as librdkafka encodes them (varint lengths,
 * names, values), the decimal vehicle-id key, and about 12 bytes of record framing (length, attributes, timestamp
 * and offset deltas, key/value lengths, header count). Record-batch headers are shared by many messages and left
 * out. */
static size_t headers_size_destroy(rd_kafka_headers_t *h)
{
    size_t n = 0;
    const char *name;
    const void *val;
    size_t vlen;
    for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &vlen) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
        n += varint_size(strlen(name)) + strlen(name) + varint_size(vlen) + vlen;
    rd_kafka_headers_destroy(h);
    return n;
}

static size_t message_overhead(const tp_pack_meta *meta)
{
    size_t n = 12;
    char key[24];
    n += (size_t)snprintf(key, sizeof key, "%" PRIu64, meta->vehicle_id);
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    if (tp_pack_meta_to_headers(meta, h) == TP_OK)
        n += headers_size_destroy(h);
    else
        rd_kafka_headers_destroy(h);
    return n;
}

/* The same for a pack of a run-time schema: its headers add tp-schema-fp, its key is the key text. */
static size_t schema_message_overhead(const tp_pack_meta *meta, const tp_schema *sc, size_t key_len)
{
    size_t n = 12 + key_len;
    rd_kafka_headers_t *h = rd_kafka_headers_new(10);
    if (tp_schema_pack_headers(meta, tp_schema_message_name(sc), tp_schema_fingerprint_hex(sc), h) == TP_OK)
        n += headers_size_destroy(h);
    else
        rd_kafka_headers_destroy(h);
    return n;
}

typedef struct workspace {
    tp_pack_writer *w;  /* the built-in record */
    uint8_t *dst;
    size_t cap;
    tp_dyn_grouper *g;  /* a run-time schema */
    ZSTD_CCtx *cctx;
    void *state;        /* the layout's (tune_layout.open) */
} workspace;

/* One pass over the sample: packs closed at `batch` records or when `linger_ms` (>= 0) has passed since their
 * first record. With `p`, counts packs and bytes. Returns non-zero after printing an error. */
static int pack_pass(const sample *s, workspace *ws, int batch, int64_t linger_ms, point *p)
{
    for (size_t i = 0; i < s->n;) {
        size_t j = i;
        while (j < s->n && s->r[j].vehicle_id == s->r[i].vehicle_id)
            j++;
        uint64_t vehicle_packs = 0;
        for (size_t k = i; k < j;) {
            int64_t t0 = s->r[k].sampled_at_ms;
            int c = 0;
            while (k < j && c < batch && (linger_ms < 0 || s->r[k].sampled_at_ms - t0 < linger_ms)) {
                tp_err e = tp_pack_writer_add(ws->w, &s->r[k]);
                if (e) {
                    fprintf(stderr, "telepack tune: cannot add record of vehicle %" PRIu64 " to a pack: %s\n",
                            s->r[k].vehicle_id, tp_strerror(e));
                    return 1;
                }
                k++;
                c++;
            }
            size_t bound = tp_pack_writer_bound(ws->w);
            if (bound > ws->cap) {
                uint8_t *nd = realloc(ws->dst, bound);
                if (!nd) {
                    fprintf(stderr, "telepack tune: out of memory for a pack of %zu bytes\n", bound);
                    return 1;
                }
                ws->dst = nd;
                ws->cap = bound;
            }
            size_t len = 0;
            tp_pack_meta meta;
            tp_err e = tp_pack_writer_finish(ws->w, ws->dst, ws->cap, &len, p ? &meta : NULL);
            if (e) {
                fprintf(stderr, "telepack tune: cannot finish a pack: %s\n", tp_strerror(e));
                return 1;
            }
            /* A vehicle's last pack ends because the sample ends, not because the batcher closed it: when the
             * vehicle has other packs, leave it out of the sizes (it is still encoded and timed). */
            bool cut = k == j && c < batch && vehicle_packs > 0;
            vehicle_packs++;
            if (p && cut) {
                p->cut_packs++;
            } else if (p) {
                p->packs++;
                p->records += (uint64_t)c;
                p->pack_bytes += len;
                p->wire_bytes += len + message_overhead(&meta);
            }
        }
        i = j;
    }
    return 0;
}

/* One pass over a run-time schema's sample, as ingest --schema packs it: each key's messages through the grouper
 * (decoded, framed), a pack closed at `batch` records or when `linger_ms` (>= 0) has passed since its first record,
 * converted to the layout's content and compressed. With `p`, counts packs and bytes. Returns non-zero after
 * printing an error. */
static int schema_pass(const sample *s, workspace *ws, const point *pt, int64_t linger_ms, point *p)
{
    const tune_layout *lay = pt->layout;
    for (size_t i = 0, j; i < s->n; i = j) {
        j = key_end(s, i);
        uint64_t vehicle_packs = 0;
        for (size_t k = i; k < j;) {
            int64_t t0 = s->sr[k].t_ms;
            uint32_t c = 0;
            tp_dyn_group *grp = NULL;
            while (k < j && !grp && (linger_ms < 0 || s->sr[k].t_ms - t0 < linger_ms)) {
                tp_err e = tp_dyn_grouper_add(ws->g, s->msgs + s->sr[k].off, s->sr[k].len, &grp);
                if (e) {
                    fprintf(stderr, "telepack tune: cannot group a message of key %.*s: %s\n",
                            (int)s->sr[k].key_len, (const char *)s->keys + s->sr[k].key_off,
                            e == TP_ERR_NOMEM ? tp_strerror(e) : tp_dyn_grouper_error(ws->g));
                    return 1;
                }
                k++;
                c++;
            }
            if (!grp)
                grp = tp_dyn_grouper_oldest(ws->g);
            const uint8_t *content = grp->content;
            size_t clen = grp->len;
            tp_pack_meta meta = {.format_version = lay->version, .layout = lay->layout, .codec = TP_CODEC_ZSTD,
                                 .schema_version = TP_SCHEMA_VERSION, .record_count = grp->count};
            tp_err e = TP_OK;
            if (lay->convert && !(e = lay->convert(ws->state, grp->content, grp->len, &content, &clen)) && !content) {
                /* the layout keeps this group as rows */
                content = grp->content;
                clen = grp->len;
                meta.format_version = 1;
                meta.layout = TP_LAYOUT_ROWS;
            }
            uint8_t *out = NULL;
            size_t len = 0;
            if (!e)
                e = tp_dyn_pack_compress(ws->cctx, pt->level, TP_CODEC_ZSTD, content, clen, &out, &len);
            if (e) {
                fprintf(stderr, "telepack tune: cannot make a %s pack of key %s: %s\n", layout_name(lay), grp->key,
                        tp_strerror(e));
                return 1;
            }
            free(out);
            meta.content_size = clen;
            bool cut = k == j && c < (uint32_t)pt->batch && vehicle_packs > 0; /* as in pack_pass */
            vehicle_packs++;
            if (p && cut) {
                p->cut_packs++;
            } else if (p) {
                p->packs++;
                p->records += c;
                p->pack_bytes += len;
                p->wire_bytes += len + schema_message_overhead(&meta, s->schema, grp->key_len);
            }
            tp_dyn_grouper_release(ws->g, grp);
        }
    }
    return 0;
}

static void workspace_free(workspace *ws, const tune_layout *lay)
{
    tp_pack_writer_free(ws->w);
    free(ws->dst);
    tp_dyn_grouper_free(ws->g);
    ZSTD_freeCCtx(ws->cctx);
    if (ws->state && lay->close)
        lay->close(ws->state);
}

static int workspace_new(const sample *s, const point *p, workspace *ws)
{
    *ws = (workspace){0};
    tp_err e;
    if (p->layout->schema) {
        e = tp_dyn_grouper_new(s->schema, (uint32_t)p->batch, SCHEMA_MAX_RECORD, &ws->g);
        if (!e && !(ws->cctx = ZSTD_createCCtx()))
            e = TP_ERR_NOMEM;
        if (!e && p->layout->open)
            e = p->layout->open(s->schema, (uint32_t)p->batch, SCHEMA_MAX_RECORD, &ws->state);
    } else {
        tp_pack_writer_opts wo;
        tp_pack_writer_opts_init(&wo);
        wo.codec = TP_CODEC_ZSTD;
        wo.level = p->level;
        wo.layout = p->layout->layout;
        wo.coded_columns = strcmp(p->layout->name, "coded") == 0;
        e = tp_pack_writer_new(&wo, &ws->w);
    }
    if (e) {
        fprintf(stderr, "telepack tune: cannot set up %s packs at zstd level %d: %s\n", layout_name(p->layout),
                p->level, tp_strerror(e));
        workspace_free(ws, p->layout);
        return 1;
    }
    return 0;
}

static int one_pass(const sample *s, workspace *ws, const point *pt, point *count)
{
    int64_t linger = pt->linger_derived ? -1 : pt->linger_ms;
    return pt->layout->schema ? schema_pass(s, ws, pt, linger, count) : pack_pass(s, ws, pt->batch, linger, count);
}

static int measure_point(const sample *s, const options *o, point *p)
{
    workspace ws;
    if (workspace_new(s, p, &ws))
        return 1;
    int rc = one_pass(s, &ws, p, p);
    /* Encode speed: whole passes (record encoding, framing, zstd) until measure_ms of CPU time have gone by. */
    /* The fastest pass counts: other processes on the machine only ever make a pass slower. */
    uint64_t passes = 0;
    double start = tp_thread_cpu_s(), spent = 0, best = INFINITY;
    while (!rc && (passes == 0 || spent * 1000 < o->measure_ms)) {
        double t0 = tp_thread_cpu_s();
        rc = one_pass(s, &ws, p, NULL);
        double t1 = tp_thread_cpu_s();
        if (t1 - t0 < best)
            best = t1 - t0;
        passes++;
        spent = t1 - start;
    }
    workspace_free(&ws, p->layout);
    if (rc)
        return rc;
    /* A pass too short for the thread CPU clock to see counts as the average pass (spent > 0 once the loop ends
     * by time), never as infinitely fast: an infinite rate has no JSON form. */
    double per_pass = best > 0 ? best : spent / (double)passes;
    p->enc_rps = per_pass > 0 ? (double)s->n / per_pass : 0;
    double json_bpr = s->json_bytes / (double)s->n;
    p->bpr = (double)p->pack_bytes / (double)p->records;
    p->wire_bpr = (double)p->wire_bytes / (double)p->records;
    p->ratio = json_bpr / p->bpr;
    p->wire_ratio = json_bpr / p->wire_bpr;
    return 0;
}

/* ---- Pareto front and recommendation ---- */

/* a dominates b: no worse on every axis (Kafka bytes/record, encode speed, latency), better on one. */
static bool dominates(const point *a, const point *b)
{
    bool no_worse = a->wire_bpr <= b->wire_bpr && a->enc_rps >= b->enc_rps && a->latency_ms <= b->latency_ms;
    bool better = a->wire_bpr < b->wire_bpr || a->enc_rps > b->enc_rps || a->latency_ms < b->latency_ms;
    return no_worse && better;
}

static void mark_front(point *pts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pts[i].front = true;
        for (size_t j = 0; j < n && pts[i].front; j++)
            if (j != i && dominates(&pts[j], &pts[i]))
                pts[i].front = false;
    }
}

/* Among front points meeting the targets: both targets -> fastest; latency only -> fewest bytes; cost only ->
 * lowest latency. Ties go to the faster encoding. Returns the index or -1. A dominated point is never needed:
 * whatever dominates a feasible point is feasible too and at least as good. */
static int recommend(const point *pts, size_t n, const options *o)
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        const point *p = &pts[i];
        if (!p->front || (o->target_latency_ms >= 0 && p->latency_ms > o->target_latency_ms) ||
            (o->target_cost >= 0 && p->wire_bpr > o->target_cost))
            continue;
        if (best < 0) {
            best = (int)i;
            continue;
        }
        const point *b = &pts[best];
        double key_p, key_b; /* smaller is better */
        if (o->target_latency_ms >= 0 && o->target_cost >= 0)
            key_p = -p->enc_rps, key_b = -b->enc_rps;
        else if (o->target_latency_ms >= 0)
            key_p = p->wire_bpr, key_b = b->wire_bpr;
        else
            key_p = p->latency_ms, key_b = b->latency_ms;
        if (key_p < key_b || (key_p == key_b && p->enc_rps > b->enc_rps))
            best = (int)i;
    }
    return best;
}

static const char *target_text(const options *o, char *buf, size_t cap)
{
    if (o->target_latency_ms >= 0 && o->target_cost >= 0)
        snprintf(buf, cap, "latency <= %.0f ms and <= %g Kafka bytes/record: fastest encoding", o->target_latency_ms,
                 o->target_cost);
    else if (o->target_latency_ms >= 0)
        snprintf(buf, cap, "latency <= %.0f ms: fewest Kafka bytes/record", o->target_latency_ms);
    else
        snprintf(buf, cap, "<= %g Kafka bytes/record: lowest latency", o->target_cost);
    return buf;
}

/* The recommended point as `telepack ingest` flags. ingest --schema replays --from and has no --linger-ms (its
 * packs close at the batch size), so its command names the schema options instead. */
static void command_for(const point *p, const options *o, char *buf, size_t cap)
{
    if (!p->layout->schema) {
        snprintf(buf, cap, "telepack ingest %s--batch-records %d --level %d --linger-ms %" PRId64,
                 p->layout->ingest_flag, p->batch, p->level, p->linger_ms);
        return;
    }
    const tp_cli_schema *so = &o->so;
    snprintf(buf, cap, "telepack ingest --schema %s --message %s%s%s%s%s%s%s%s%s %s--batch-records %d --level %d",
             so->path, so->message, so->key ? " --key-field " : "", so->key ? so->key : "",
             so->time ? " --time-field " : "", so->time ? so->time : "", so->unit ? " --time-unit " : "",
             so->unit ? so->unit : "", so->identity ? " --identity-fields " : "", so->identity ? so->identity : "",
             p->layout->ingest_flag, p->batch, p->level);
}

/* ---- output ---- */

static void print_table(const sample *s, const point *pts, size_t n, int best, const options *o)
{
    printf("sample: %zu records, %zu vehicles (%s)\n", s->n, s->vehicles, s->source);
    printf("per vehicle: %.3g records/s; NDJSON %.1f B/record; protobuf (delimited) %.1f B/record\n", s->rate_hz,
           s->json_bytes / (double)s->n, s->proto_bytes / (double)s->n);
    printf("Kafka B/rec adds each message's headers, key and framing to the pack; latency = the linger a batch "
           "may wait\n\n");
    printf("%7s %5s %10s  %-7s %8s %9s %8s %10s %7s %12s %s\n", "batch", "level", "linger_ms", "layout", "rec/pack",
           "pack B/rec", "x JSON", "Kafka B/rec", "x JSON", "enc rec/s", "front");
    for (size_t i = 0; i < n; i++) {
        const point *p = &pts[i];
        printf("%7d %5d %10" PRId64 "%s %-7s %8.1f %9.2f %8.1f %10.2f %7.1f %12.0f %s%s\n", p->batch, p->level,
               p->linger_ms, p->linger_derived ? "*" : " ", layout_name(p->layout),
               (double)p->records / (double)p->packs, p->bpr, p->ratio, p->wire_bpr, p->wire_ratio, p->enc_rps,
               p->front ? "yes" : "", (int)i == best ? "  <- recommended" : "");
    }
    if (!o->n_lingers)
        printf("(* linger derived: the time to fill the batch at the sample's per-vehicle rate)\n");
    for (size_t i = 0; i < n; i++) {
        const point *p = &pts[i];
        double per_pack = (double)p->records / (double)p->packs;
        if (p->linger_derived && p->level == pts[0].level && p->layout == pts[0].layout && per_pack < 0.9 * p->batch)
            printf("note: the sample has too few records per vehicle to fill batches of %d (%.0f per pack); "
                   "simulate longer (--seconds) for a true figure\n",
                   p->batch, per_pack);
    }
    char t[160], cmd[2048];
    printf("\ntarget: %s\n", target_text(o, t, sizeof t));
    if (best >= 0) {
        command_for(&pts[best], o, cmd, sizeof cmd);
        printf("recommended: %s\n", cmd);
        if (pts[best].layout->schema)
            printf("(ingest --schema replays --from and closes a pack at the batch size: it has no --linger-ms, "
                   "the linger is what a pack would wait)\n");
    }
}

static json_t *point_json(const point *p)
{
    return json_pack("{s:i, s:i, s:s, s:I, s:b, s:f, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:b}",
                     "batch_records", p->batch, "zstd_level", p->level, "layout", layout_name(p->layout),
                     "linger_ms", (json_int_t)p->linger_ms, "linger_derived", p->linger_derived, "latency_ms",
                     p->latency_ms, "packs", (json_int_t)p->packs, "packs_cut_by_sample_end",
                     (json_int_t)p->cut_packs, "records", (json_int_t)p->records, "pack_bytes",
                     (json_int_t)p->pack_bytes, "kafka_bytes", (json_int_t)p->wire_bytes, "records_per_pack",
                     (double)p->records / (double)p->packs, "bytes_per_record", p->bpr, "kafka_bytes_per_record",
                     p->wire_bpr, "ratio_vs_json", p->ratio, "kafka_ratio_vs_json", p->wire_ratio,
                     "encode_records_per_sec_per_core", p->enc_rps, "pareto", p->front);
}

static int print_json(const sample *s, const point *pts, size_t n, int best, const options *o)
{
    json_t *points = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(points, point_json(&pts[i]));
    char t[160], cmd[2048];
    json_t *rec = json_null();
    if (best >= 0) {
        rec = point_json(&pts[best]);
        command_for(&pts[best], o, cmd, sizeof cmd);
        json_object_set_new(rec, "index", json_integer(best));
        json_object_set_new(rec, "command", json_string(cmd));
    }
    json_t *root = json_pack(
        "{s:{s:s, s:I, s:I, s:f, s:f, s:f}, s:{s:o, s:o, s:s}, s:o, s:o}", "sample", "source", s->source, "records",
        (json_int_t)s->n, "vehicles", (json_int_t)s->vehicles, "records_per_sec_per_vehicle", s->rate_hz,
        "json_bytes_per_record", s->json_bytes / (double)s->n, "protobuf_bytes_per_record",
        s->proto_bytes / (double)s->n, "target", "latency_ms",
        o->target_latency_ms >= 0 ? json_real(o->target_latency_ms) : json_null(), "kafka_bytes_per_record",
        o->target_cost >= 0 ? json_real(o->target_cost) : json_null(), "rule", target_text(o, t, sizeof t),
        "points", points, "recommendation", rec);
    if (!root) {
        fprintf(stderr, "telepack tune: cannot build the JSON document (a measured value is not a finite number)\n");
        return 1;
    }
    int rc = json_dumpf(root, stdout, JSON_INDENT(1)) ? 1 : 0;
    fputc('\n', stdout);
    json_decref(root);
    return rc;
}

/* ---- plot ---- */

static bool in_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    char buf[4096];
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len && len + strlen(prog) + 2 < sizeof buf) {
            snprintf(buf, sizeof buf, "%.*s/%s", (int)len, path, prog);
            if (access(buf, X_OK) == 0)
                return true;
        }
        path += len + (path[len] == ':');
    }
    return false;
}

static int write_plot(const point *pts, size_t n, int best, const options *o, const char *file)
{
    if (!in_path("gnuplot")) {
        fprintf(stderr, "telepack tune: gnuplot is not installed (Debian: gnuplot-nox); skipping the plot %s\n", file);
        return 0;
    }
    char tmpl[] = "/tmp/telepack-tune-XXXXXX";
    int fd = mkstemp(tmpl);
    FILE *gp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!gp) {
        fprintf(stderr, "telepack tune: cannot create a temporary gnuplot script: %s\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    bool svg = !strcmp(strrchr(file, '.'), ".svg");
    fprintf(gp, "set terminal %s size 900,600\n", svg ? "svg dynamic" : "pngcairo");
    fputs("set output '", gp);
    for (const char *c = file; *c; c++) /* single-quoted gnuplot string: double a quote */
        fputs(*c == '\'' ? "''" : (char[]){*c, 0}, gp);
    fputs("'\n", gp);
    fputs("set title 'telepack tune: compression ratio vs encode speed'\n"
          "set xlabel 'encode records/s per core'\nset ylabel 'ratio vs NDJSON (Kafka bytes)'\n"
          "set logscale x\nset grid\nset key outside below horizontal\nset offsets 0, 0, graph 0.05, 0\n",
          gp);
    /* One series per layout (colour and shape), labelled batch/level; the front and the recommendation ring them. */
    static const char *const rings[] = {"front", "best"};
    for (int y = 0; y < o->n_layouts + 2; y++) {
        int r = y - o->n_layouts; /* < 0: a layout; 0: the front; 1: the recommendation */
        fprintf(gp, "$%s << EOD\n", r < 0 ? layout_name(o->layouts[y]) : rings[r]);
        for (size_t i = 0; i < n; i++) {
            bool in = r < 0 ? pts[i].layout == o->layouts[y] : r == 0 ? pts[i].front : (int)i == best;
            if (in)
                fprintf(gp, "%.6g %.6g \"%d/%d\"\n", pts[i].enc_rps, pts[i].wire_ratio, pts[i].batch, pts[i].level);
        }
        fputs("EOD\n", gp);
    }
    fputs("plot ", gp);
    for (int y = 0; y < o->n_layouts; y++) {
        const tune_layout *l = o->layouts[y];
        fprintf(gp,
                "$%s using 1:2 with points pt %d ps 1 lc rgb '%s' title '%s (pbpack v%u), batch/level', \\\n"
                "     $%s using 1:2:3 with labels offset 0,0.8 font ',8' tc rgb '%s' notitle, \\\n     ",
                l->name, l->point_type, l->colour, l->name, l->version, l->name, l->colour);
    }
    fputs("$front using 1:2 with points pt 6 ps 2 lw 1.5 lc rgb '#d62728' title 'Pareto front'", gp);
    if (best >= 0)
        fputs(", \\\n     $best using 1:2 with points pt 6 ps 3.5 lw 2 lc rgb '#000000' title 'recommended'", gp);
    fputc('\n', gp);
    int werr = ferror(gp);
    fclose(gp);
    int rc = 1;
    if (!werr) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "gnuplot %s 2>&1", tmpl);
        FILE *p = popen(cmd, "r");
        if (p) {
            char line[512];
            while (fgets(line, sizeof line, p))
                fprintf(stderr, "gnuplot: %s", line);
            int st = pclose(p);
            rc = st == 0 ? 0 : 1;
        }
    }
    unlink(tmpl);
    if (rc)
        fprintf(stderr, "telepack tune: gnuplot failed to write %s\n", file);
    return rc;
}

/* ---- the command ---- */

int tp_cmd_tune(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    sample s = {0};
    point *pts = NULL;
    tp_schema *schema = NULL;
    if (o.so.path) {
        if ((rc = tp_cli_schema_load("tune", &o.so, &schema)))
            return rc;
        s.schema = schema;
        rc = load_schema_sample(&o, &s);
    } else {
        rc = o.from ? load_ndjson(&o, &s) : load_fleet(&o, &s);
    }
    if (rc)
        goto out;
    if (s.n == 0) {
        fprintf(stderr, "telepack tune: the sample is empty; give records with --from or a longer simulation\n");
        rc = 2;
        goto out;
    }
    if (s.n == o.max_records) {
        size_t len = strlen(s.source);
        snprintf(s.source + len, sizeof s.source - len, "; the first %zu records (--max-records)", s.n);
    }
    if (s.schema)
        schema_sample_prepare(&s);
    else
        sample_prepare(&s);
    if (!o.n_lingers && !(s.rate_hz > 0)) {
        fprintf(stderr, "telepack tune: no vehicle in the sample has two records at different times, so the "
                        "per-vehicle rate and the linger that fills a batch are unknown; give --linger-ms\n");
        rc = 2;
        goto out;
    }
    size_t n_linger = o.n_lingers ? (size_t)o.n_lingers : 1;
    size_t n = (size_t)o.n_batches * (size_t)o.n_levels * n_linger * (size_t)o.n_layouts;
    pts = calloc(n, sizeof *pts);
    if (!pts) {
        rc = 1;
        goto out;
    }
    size_t k = 0;
    for (int b = 0; b < o.n_batches; b++)
        for (size_t l = 0; l < n_linger; l++)
            for (int z = 0; z < o.n_levels; z++)
                for (int y = 0; y < o.n_layouts; y++) {
                    point *p = &pts[k++];
                    p->batch = o.batches[b];
                    p->level = o.levels[z];
                    p->layout = o.layouts[y];
                    double fill_ms = s.rate_hz > 0 ? ceil((double)p->batch / s.rate_hz * 1000.0) : 0;
                    if (o.n_lingers) {
                        p->linger_ms = o.lingers[l];
                        p->latency_ms = (double)p->linger_ms;
                    } else {
                        p->linger_derived = true;
                        p->linger_ms = (int64_t)fill_ms;
                        p->latency_ms = fill_ms;
                    }
                    if ((rc = measure_point(&s, &o, p)))
                        goto out;
                }
    mark_front(pts, n);
    int best = recommend(pts, n, &o);
    rc = o.json ? print_json(&s, pts, n, best, &o) : (print_table(&s, pts, n, best, &o), 0);
    if (!rc && best < 0) {
        char t[160];
        fflush(stdout);
        fprintf(stderr, "telepack tune: no point meets the target (%s); relax it or widen the sweep (--batch, "
                        "--level, --layouts, --linger-ms)\n",
                target_text(&o, t, sizeof t));
        rc = 1;
    }
    if (o.plot) {
        int prc = write_plot(pts, n, best, &o, o.plot);
        if (!rc)
            rc = prc;
    }
out:
    free(pts);
    free(s.r);
    free(s.sr);
    free(s.msgs);
    free(s.keys);
    tp_schema_free(schema);
    return rc;
}
