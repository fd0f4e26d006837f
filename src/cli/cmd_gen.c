/* `telepack gen`: runs the fleet simulator and writes its records as NDJSON or varint-delimited protobuf to stdout
 * or a file, optionally paced to a rate. Records go through a small output interface (gen_output) so that other
 * destinations, such as acting as gateways over TCP, are one more implementation of it. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "common/clock.h"
#include "ingest/gateway_client.h"
#include "sim/fleet.h"
#include "telepack/record.h"
#include "telepack/record_json.h"
#include "telepack/varint.h"

/* ---- outputs ---- */

typedef enum gen_format { GEN_NDJSON = 0, GEN_DELIMITED = 1 } gen_format;
static const char *const format_words[] = {"ndjson", "delimited", NULL};

/* A destination for generated records. write may buffer; flush pushes buffered records out (gen calls it before
 * it sleeps for pacing, so a paced stream is live); close flushes and releases everything, including the struct.
 * On failure each returns non-TP_OK with a sentence in errmsg. */
typedef struct gen_output gen_output;
struct gen_output {
    tp_err (*write)(gen_output *o, const tp_record *r);
    tp_err (*flush)(gen_output *o);
    tp_err (*close)(gen_output *o);
    const char *name; /* for messages: the file name, "stdout", or HOST:PORT */
    uint64_t bytes;   /* bytes produced so far */
    char errmsg[256];
};

/* NDJSON or delimited records into a stdio stream. */
typedef struct stream_output {
    gen_output base;
    FILE *f;
    gen_format format;
} stream_output;

static tp_err stream_fail(stream_output *s, const char *what)
{
    snprintf(s->base.errmsg, sizeof s->base.errmsg, "%s %s failed: %s", what, s->base.name, strerror(errno));
    return TP_ERR_IO;
}

static tp_err stream_write(gen_output *o, const tp_record *r)
{
    stream_output *s = (stream_output *)o;
    uint8_t buf[TP_RECORD_JSON_MAX + 1];
    size_t n;
    if (s->format == GEN_NDJSON) {
        if (tp_record_json_write(r, (char *)buf, sizeof buf - 1, &n) != TP_OK)
            return stream_fail(s, "formatting a record for");
        buf[n++] = '\n';
    } else {
        uint8_t rec[TP_RECORD_MAX_ENCODED];
        size_t len;
        if (tp_record_encode(r, rec, sizeof rec, &len) != TP_OK)
            return stream_fail(s, "encoding a record for");
        n = tp_varint_encode(len, buf);
        memcpy(buf + n, rec, len);
        n += len;
    }
    if (fwrite(buf, 1, n, s->f) != n)
        return stream_fail(s, "writing to");
    o->bytes += n;
    return TP_OK;
}

static tp_err stream_flush(gen_output *o)
{
    stream_output *s = (stream_output *)o;
    if (fflush(s->f) != 0)
        return stream_fail(s, "writing to");
    return TP_OK;
}

static tp_err stream_close(gen_output *o)
{
    stream_output *s = (stream_output *)o;
    tp_err e = TP_OK;
    if (tp_cli_close(s->f) != 0)
        e = stream_fail(s, "writing to");
    if (e)
        fprintf(stderr, "telepack gen: %s\n", o->errmsg);
    free(s);
    return e;
}

/* Opens `path` ("-" = stdout). Returns NULL after printing why. */
static gen_output *stream_output_open(const char *path, gen_format format)
{
    stream_output *s = calloc(1, sizeof *s);
    if (!s) {
        fprintf(stderr, "telepack gen: out of memory\n");
        return NULL;
    }
    s->f = tp_cli_open_out(path);
    if (!s->f) {
        fprintf(stderr, "telepack gen: cannot create %s: %s; check the path and its permissions\n", path,
                strerror(errno));
        free(s);
        return NULL;
    }
    setvbuf(s->f, NULL, _IOFBF, 1u << 16);
    s->format = format;
    s->base.write = stream_write;
    s->base.flush = stream_flush;
    s->base.close = stream_close;
    s->base.name = strcmp(path, "-") ? path : "stdout";
    return &s->base;
}

/* Acting as N gateways: records go over TCP to an ingest worker (docs/GATEWAY.md), a vehicle always through the
 * same connection; close waits until the worker acked every record (it then holds them in Kafka). */
typedef struct gateway_output {
    gen_output base;
    volatile sig_atomic_t *stop;
    uint32_t n;
    char (*ids)[24];
    tp_gateway_client *c[];
} gateway_output;

static tp_err gateway_write(gen_output *o, const tp_record *r)
{
    gateway_output *g = (gateway_output *)o;
    tp_err e = tp_gateway_client_send(g->c[r->vehicle_id % g->n], r);
    if (e == TP_ERR_AGAIN && *g->stop)
        return TP_OK; /* interrupted while waiting for acks: the caller sees the signal and stops */
    if (e)
        snprintf(o->errmsg, sizeof o->errmsg, "sending to the ingest worker at %s failed: %s", o->name,
                 tp_strerror(e));
    return e;
}

static tp_err gateway_flush(gen_output *o)
{
    gateway_output *g = (gateway_output *)o;
    for (uint32_t i = 0; i < g->n; i++)
        tp_gateway_client_pump(g->c[i], 0);
    return TP_OK;
}

static void gateway_bytes(gateway_output *g)
{
    g->base.bytes = 0;
    for (uint32_t i = 0; i < g->n; i++) {
        tp_gateway_client_stats st;
        tp_gateway_client_stats_get(g->c[i], &st);
        g->base.bytes += st.bytes_sent;
    }
}

static tp_err gateway_close(gen_output *o)
{
    gateway_output *g = (gateway_output *)o;
    tp_err e = TP_OK;
    uint64_t unacked = 0, rejected = 0;
    char reason[128] = "", refusal[160] = "";
    for (uint32_t i = 0; i < g->n; i++) {
        tp_err de = tp_gateway_client_drain(g->c[i], -1);
        tp_gateway_client_stats st;
        tp_gateway_client_stats_get(g->c[i], &st);
        unacked += st.unacked_records;
        rejected += st.records_rejected;
        if (st.records_rejected)
            snprintf(reason, sizeof reason, "%s", st.last_reason);
        if (st.refused)
            snprintf(refusal, sizeof refusal, "%s%s", st.refused < 0 ? "TLS: " : "", st.last_reason);
        if (de && !e)
            e = de;
        tp_gateway_client_free(g->c[i]);
    }
    if (refusal[0])
        fprintf(stderr, "telepack gen: the handshake with the ingest worker at %s failed: %s\n", o->name, refusal);
    if (e)
        fprintf(stderr, "telepack gen: stopped with %" PRIu64 " records not acked by the ingest worker at %s\n",
                unacked, o->name);
    if (rejected) {
        fprintf(stderr, "telepack gen: the ingest worker rejected %" PRIu64 " records (not resent); last: %s\n",
                rejected, reason);
        if (!e)
            e = TP_ERR_REJECTED;
    }
    free(g->ids);
    free(g);
    return e;
}

typedef struct gateway_v2 {
    int protocol;             /* 1 or 2 */
    const char *token;        /* or NULL */
    uint64_t vehicles;        /* per gateway, for the server's suggested window */
    const char *tls_ca, *tls_cert, *tls_key; /* TLS (docs/GATEWAY.md), or NULL */
} gateway_v2;

static gen_output *gateway_output_open(const char *addr, uint32_t n, size_t window, const gateway_v2 *v2,
                                       volatile sig_atomic_t *stop)
{
    gateway_output *g = calloc(1, sizeof *g + n * sizeof g->c[0]);
    if (g && !(g->ids = calloc(n, sizeof *g->ids))) {
        free(g);
        g = NULL;
    }
    if (!g)
        return NULL;
    g->base.write = gateway_write;
    g->base.flush = gateway_flush;
    g->base.close = gateway_close;
    g->base.name = addr;
    g->stop = stop;
    for (; g->n < n; g->n++) {
        tp_gateway_client_opts co;
        tp_gateway_client_opts_init(&co);
        co.connect = addr;
        co.stop = stop;
        co.max_unacked_bytes = window;
        co.protocol = v2->protocol;
        co.token = v2->token;
        co.vehicles = v2->vehicles;
        snprintf(g->ids[g->n], sizeof g->ids[g->n], "telepack-gen-%u", g->n + 1);
        co.gateway_id = g->ids[g->n];
        co.tls_ca = v2->tls_ca;
        co.tls_cert = v2->tls_cert;
        co.tls_key = v2->tls_key;
        char err[512];
        if (tp_gateway_client_new_err(&co, &g->c[g->n], err, sizeof err) != TP_OK) {
            if (err[0])
                fprintf(stderr, "telepack gen: %s\n", err);
            else
                fprintf(stderr, "telepack gen: --connect '%s' is not HOST:PORT; use e.g. 127.0.0.1:7070\n", addr);
            for (uint32_t i = 0; i < g->n; i++)
                tp_gateway_client_free(g->c[i]);
            free(g->ids);
            free(g);
            return NULL;
        }
    }
    return &g->base;
}

/* ---- the command ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: telepack gen [OPTIONS]\n"
            "\n"
            "Simulates a taxi fleet driving a street grid near Tokyo and writes its position records, time-major\n"
            "(every vehicle's sample for second t, then t+1), one sample per vehicle per interval with a few ms of\n"
            "jitter and occasional gaps. The same options and seed give the same records.\n"
            "\n"
            "Options:\n"
            "  --vehicles N         vehicles in the fleet (default 100), ids from --first-vehicle-id\n"
            "  --seconds S          simulated duration in seconds (default 60)\n"
            "  --interval-ms MS     sampling interval per vehicle (default 1000)\n"
            "  --seed N             simulation seed (default 1)\n"
            "  --start-ms T|now     sampled_at_ms of the first tick (default 1767225600000 = 2026-01-01T00:00Z);\n"
            "                       now = the wall clock in ms, and --rate then paces by the records' own clock:\n"
            "                       each is sent when it was sampled (a live fleet: every vehicle's sample of a\n"
            "                       second within its few ms of jitter; latency measurements)\n"
            "  --first-vehicle-id N first vehicle id (default 10001)\n"
            "  --quantize DEG       coordinate resolution of the receivers, e.g. 1e-6 (default) or 1e-7;\n"
            "                       0 = raw doubles\n"
            "  --drop-rate P        chance per sample that a gap starts (default 0.001); 0 = exactly\n"
            "                       vehicles x seconds x 1000 / interval-ms records\n"
            "  --format F           ndjson (default) or delimited (varint length-prefixed protobuf)\n"
            "  --out FILE|-         where to write (default - = stdout)\n"
            "  --rate R             pace output to R records per second (default 0 = as fast as possible)\n"
            "  --stagger            vehicles sample at phases spread evenly over the interval (vehicle i at\n"
            "                       i/N of it) instead of all at the top of each interval (within 0-7 ms), so a\n"
            "                       paced live fleet's records arrive evenly instead of in a burst per interval\n"
            "  --upload-every S     each vehicle keeps its samples and sends the last S seconds of them together\n"
            "                       every S seconds (S a whole multiple of --interval-ms; default 0 = every\n"
            "                       sample when taken), as vehicles that upload every few seconds do; the\n"
            "                       vehicles' uploads are staggered evenly over S. With --rate, an upload leaves\n"
            "                       with its newest sample, on the fleet's clock (scaled by R over its own rate)\n"
            "  --connect HOST:PORT  act as gateways: send the records to `telepack ingest --listen HOST:PORT` and\n"
            "                       wait until it acked them all (reconnects and resends what was not acked)\n"
            "  --gateways N         concurrent gateway connections with --connect (default 1); a vehicle always\n"
            "                       uses the same one\n"
            "  --window BYTES       unacked bytes each gateway may have in flight (default: room for 200 records\n"
            "                       of each of its vehicles, within 4-64 MiB). Records are acked once their pack\n"
            "                       is in Kafka, so a window smaller than a full batch per vehicle stalls the\n"
            "                       gateway until the ingest's linger timer flushes\n"
            "  --protocol 1|2       gateway protocol with --connect (default 2: handshake, per-record rejects,\n"
            "                       heartbeats; 1: plain records and acks, docs/GATEWAY.md)\n"
            "  --token-file FILE    v2: send the token on FILE's first line in the hello (the worker's\n"
            "                       authentication); never on the command line\n"
            "  --tls-ca FILE        connect with TLS and verify the worker's certificate against this CA (PEM)\n"
            "                       and the host name or IP address of --connect\n"
            "  --tls-cert FILE      client certificate (PEM) for mutual TLS (the worker's --tls-client-ca), with\n"
            "  --tls-key FILE       its private key\n"
            "  -q, --quiet          no progress line and no summary\n"
            "  -h, --help           this text\n"
            "\n"
            "Progress goes to stderr every 2 s when stderr is a terminal; a summary at the end.\n"
            "Exit status: 0 done, 1 write failure, 2 bad options.\n"
            "\n"
            "Example:\n"
            "  telepack gen --vehicles 1000 --seconds 600 --out fleet.ndjson\n"
            "  telepack gen --vehicles 100 --seconds 60 | telepack pack --out fleet.packs\n");
}

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL); /* a signal cuts it short; the loop then sees stop_requested */
}

enum {
    OPT_VEHICLES = 256,
    OPT_SECONDS,
    OPT_INTERVAL,
    OPT_SEED,
    OPT_START,
    OPT_FIRST_ID,
    OPT_QUANTIZE,
    OPT_DROP,
    OPT_FORMAT,
    OPT_OUT,
    OPT_RATE,
    OPT_CONNECT,
    OPT_GATEWAYS,
    OPT_WINDOW,
    OPT_PROTOCOL,
    OPT_TOKEN_FILE,
    OPT_TLS_CA,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_UPLOAD_EVERY,
    OPT_STAGGER,
};

/* What the command line asked for. */
typedef struct gen_cli {
    tp_fleet_opts fo;
    const char *out_path;
    const char *connect;
    uint64_t gateways;
    uint64_t window; /* 0: sized for the fleet */
    uint64_t protocol;   /* gateway protocol with --connect: 1 or 2 */
    char token[260];     /* from --token-file, or empty */
    const char *tls_ca, *tls_cert, *tls_key;
    bool out_given;
    int format;
    double rate;
    bool quiet;
    bool start_now;    /* --start-ms now: pace by the wall clock from fo.start_ms */
} gen_cli;

/* Parses the options into *a; returns -1 to go on, else the exit status (0 after --help, 2 after a usage error it
 * printed).
 * Longer than ~120 lines on purpose: a linear option switch and its cross-checks read better whole. */
static int parse_args(int argc, char **argv, gen_cli *a)
{
    static const struct option longopts[] = {
        {"vehicles", required_argument, NULL, OPT_VEHICLES},
        {"seconds", required_argument, NULL, OPT_SECONDS},
        {"interval-ms", required_argument, NULL, OPT_INTERVAL},
        {"seed", required_argument, NULL, OPT_SEED},
        {"start-ms", required_argument, NULL, OPT_START},
        {"first-vehicle-id", required_argument, NULL, OPT_FIRST_ID},
        {"quantize", required_argument, NULL, OPT_QUANTIZE},
        {"drop-rate", required_argument, NULL, OPT_DROP},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"out", required_argument, NULL, OPT_OUT},
        {"rate", required_argument, NULL, OPT_RATE},
        {"protocol", required_argument, NULL, OPT_PROTOCOL},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"tls-ca", required_argument, NULL, OPT_TLS_CA},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"connect", required_argument, NULL, OPT_CONNECT},
        {"gateways", required_argument, NULL, OPT_GATEWAYS},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"upload-every", required_argument, NULL, OPT_UPLOAD_EVERY},
        {"stagger", no_argument, NULL, OPT_STAGGER},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *a = (gen_cli){0}; /* every option unset (the TLS paths were left as the stack had them: gen then refused
                        * TLS options nobody gave, now and then) */
    tp_fleet_opts_init(&a->fo);
    a->out_path = "-";
    a->connect = NULL;
    a->gateways = 1;
    a->window = 0;
    a->protocol = 2;
    a->token[0] = '\0';
    const char *token_file = NULL;
    a->out_given = false;
    a->format = GEN_NDJSON;
    a->rate = 0;
    a->quiet = false;
    a->start_now = false;
    double upload_every = 0;
    tp_fleet_opts *fo = &a->fo;
    char msg[256];
    uint64_t u;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        tp_err e = TP_OK;
        switch (c) {
        case OPT_VEHICLES:
            e = tp_cli_parse_u64("vehicles", optarg, 1, 10000000, &u, msg, sizeof msg);
            fo->vehicles = (uint32_t)u;
            break;
        case OPT_SECONDS:
            e = tp_cli_parse_u64("seconds", optarg, 0, 100u * 365 * 86400, &u, msg, sizeof msg);
            fo->seconds = (uint32_t)u;
            break;
        case OPT_INTERVAL:
            e = tp_cli_parse_u64("interval-ms", optarg, 10, 3600000, &u, msg, sizeof msg);
            fo->interval_ms = (uint32_t)u;
            break;
        case OPT_SEED: e = tp_cli_parse_u64("seed", optarg, 0, UINT64_MAX, &fo->seed, msg, sizeof msg); break;
        case OPT_START:
            if (!strcmp(optarg, "now")) {
                fo->start_ms = tp_wall_ms(); /* exactly now: a record's sampled_at_ms is when it is sent */
                a->start_now = true;
            } else {
                e = tp_cli_parse_u64("start-ms", optarg, 0, (uint64_t)INT64_MAX / 4, &u, msg, sizeof msg);
                fo->start_ms = (int64_t)u;
            }
            break;
        case OPT_FIRST_ID:
            e = tp_cli_parse_u64("first-vehicle-id", optarg, 0, UINT64_MAX - 10000000, &fo->first_vehicle_id, msg,
                                 sizeof msg);
            break;
        case OPT_QUANTIZE:
            e = tp_cli_parse_double("quantize", optarg, 0, 1, &fo->quantum_deg, msg, sizeof msg);
            if (!e && fo->quantum_deg > 0) {
                double inv = 1.0 / fo->quantum_deg, whole = (double)(int64_t)(inv + 0.5);
                if (whole < 1 || whole > 1e9 || (inv - whole) > 1e-6 * whole || (whole - inv) > 1e-6 * whole)
                    return tp_cli_usage_error("gen", "--quantize '%s' is not a resolution a receiver reports: use 1e-N such as "
                                       "1e-6 or 1e-7 (1/DEG must be a whole number up to 1e9), or 0 for raw",
                                       optarg);
            }
            break;
        case OPT_DROP: e = tp_cli_parse_double("drop-rate", optarg, 0, 0.5, &fo->drop_rate, msg, sizeof msg); break;
        case OPT_FORMAT: e = tp_cli_parse_choice("format", optarg, format_words, &a->format, msg, sizeof msg); break;
        case OPT_OUT: a->out_path = optarg; a->out_given = true; break;
        case OPT_CONNECT: a->connect = optarg; break;
        case OPT_GATEWAYS: e = tp_cli_parse_u64("gateways", optarg, 1, 1024, &a->gateways, msg, sizeof msg); break;
        case OPT_WINDOW: e = tp_cli_parse_u64("window", optarg, 65536, 1ull << 30, &a->window, msg, sizeof msg); break;
        case OPT_PROTOCOL: e = tp_cli_parse_u64("protocol", optarg, 1, 2, &a->protocol, msg, sizeof msg); break;
        case OPT_TOKEN_FILE: token_file = optarg; break;
        case OPT_TLS_CA: a->tls_ca = optarg; break;
        case OPT_TLS_CERT: a->tls_cert = optarg; break;
        case OPT_TLS_KEY: a->tls_key = optarg; break;
        case OPT_RATE: e = tp_cli_parse_double("rate", optarg, 0, 1e9, &a->rate, msg, sizeof msg); break;
        case OPT_STAGGER: fo->stagger = 1; break;
        case OPT_UPLOAD_EVERY:
            e = tp_cli_parse_double("upload-every", optarg, 0, 3600, &upload_every, msg, sizeof msg);
            break;
        case 'q': a->quiet = true; break;
        case 'h': usage(stdout); return 0;
        case ':': return tp_cli_usage_error("gen", "option '%s' needs a value", argv[optind - 1]);
        default: return tp_cli_usage_error("gen", "unknown option '%s'", argv[optind - 1]);
        }
        if (e)
            return tp_cli_usage_error("gen", "%s", msg);
    }
    if (optind < argc)
        return tp_cli_usage_error("gen", "unexpected argument '%s' (gen takes options only)", argv[optind]);
    if (upload_every > 0) {
        double ms = upload_every * 1000.0;
        uint64_t k = (uint64_t)(ms / fo->interval_ms + 0.5);
        if (k < 1 || (double)(k * fo->interval_ms) - ms > 0.5 || ms - (double)(k * fo->interval_ms) > 0.5)
            return tp_cli_usage_error("gen", "--upload-every %g is not a whole multiple of --interval-ms %" PRIu32
                                      " ms; give e.g. %.3g", upload_every, fo->interval_ms,
                                      (double)(k ? k : 1) * fo->interval_ms / 1000.0);
        if (k > 3600 || (uint64_t)fo->vehicles * k > (uint64_t)1 << 27)
            return tp_cli_usage_error("gen", "--upload-every %g s holds %" PRIu64 " samples per vehicle of %" PRIu32
                                      " vehicles; keep it to 3600 samples and 134 M samples in all", upload_every, k,
                                      fo->vehicles);
        fo->upload_every_ms = (uint32_t)(k * fo->interval_ms);
    }
    if ((a->tls_ca || a->tls_cert || a->tls_key) && !a->connect)
        return tp_cli_usage_error("gen", "--tls-ca, --tls-cert and --tls-key apply to --connect; give it too");
    if ((a->tls_cert || a->tls_key) && !a->tls_ca)
        return tp_cli_usage_error("gen", "--tls-cert and --tls-key (a client certificate) need --tls-ca too");
    if (!a->tls_cert != !a->tls_key)
        return tp_cli_usage_error("gen", "--tls-cert and --tls-key go together; give both files or neither");
    if (token_file) {
        if (a->protocol != 2)
            return tp_cli_usage_error("gen", "--token-file needs --protocol 2 (v1 has no handshake)");
        FILE *tf = fopen(token_file, "r");
        if (!tf)
            return tp_cli_usage_error("gen", "cannot read --token-file %s: %s", token_file, strerror(errno));
        if (!fgets(a->token, sizeof a->token, tf))
            a->token[0] = 0;
        fclose(tf);
        a->token[strcspn(a->token, "\r\n")] = 0;
        if (strlen(a->token) < 16 || strlen(a->token) > 256)
            return tp_cli_usage_error("gen", "--token-file %s: the first line must be a token of 16..256 characters",
                                      token_file);
    }
    if (a->connect && a->out_given)
        return tp_cli_usage_error("gen", "--connect and --out are exclusive: records go either to an ingest worker or to a file");
    if (a->connect)
        a->format = GEN_DELIMITED; /* the gateway protocol's framing; only used for the summary */
    if (!a->connect && a->format == GEN_DELIMITED && !strcmp(a->out_path, "-") && isatty(STDOUT_FILENO))
        return tp_cli_usage_error("gen", "refusing to write binary delimited records to a terminal; use --out FILE or a pipe");

    return -1;
}

/* Writes the fleet's records to out, paced to rate, with a progress line on a terminal; returns the records written
 * and sets *status (1 after a write failure). */
static uint64_t generate(const gen_cli *a, tp_fleet *fleet, gen_output *out, int *status)
{
    bool progress = !a->quiet && isatty(STDERR_FILENO);
    uint64_t n = 0;
    /* Check the clock about once per millisecond of output when paced, every 4096 records otherwise. */
    uint64_t check_every = a->rate > 0 ? (uint64_t)(a->rate / 1000) + 1 : 4096;
    double t0 = tp_mono_s(), last_progress = t0;
    if (a->start_now) /* the fleet's clock is the wall clock: tick 0 was sampled at fo.start_ms */
        t0 -= (double)(tp_wall_ms() - a->fo.start_ms) / 1000.0;
    /* the fleet's own rate: with uploads, pace by the fleet's clock scaled to --rate */
    double own_rate = (double)a->fo.vehicles * 1000.0 / a->fo.interval_ms;
    /* on the fleet's clock (--start-ms now, uploads): each record waits for its own send time before it goes */
    bool timed = a->rate > 0 && (a->fo.upload_every_ms || a->start_now);
    double clock = t0;
    tp_record r;
    while (!stop_requested && tp_fleet_next(fleet, &r) == TP_OK) {
        if (timed) {
            double due = t0 + (double)tp_fleet_send_offset_ms(fleet) / 1000.0 * own_rate / a->rate;
            if (due > clock && (clock = tp_mono_s()) < due) {
                if (out->flush(out) != TP_OK) {
                    fprintf(stderr, "telepack gen: %s\n", out->errmsg);
                    *status = 1;
                    break;
                }
                sleep_s(due - clock);
                clock = tp_mono_s();
            }
        }
        if (out->write(out, &r) != TP_OK) {
            fprintf(stderr, "telepack gen: %s\n", out->errmsg);
            *status = 1;
            break;
        }
        n++;
        if (n % check_every)
            continue;
        double t = tp_mono_s();
        if (a->rate > 0 && !timed) {
            double due = t0 + (double)n / a->rate;
            if (due > t) {
                if (out->flush(out) != TP_OK) {
                    fprintf(stderr, "telepack gen: %s\n", out->errmsg);
                    *status = 1;
                    break;
                }
                sleep_s(due - t);
                t = tp_mono_s();
            }
        }
        if (progress && t - last_progress >= 2.0) {
            tp_fleet_stats st;
            tp_fleet_get_stats(fleet, &st);
            char b[32];
            fprintf(stderr, "\rgen: %" PRIu64 " records, simulated %.0f of %.0f s, %s, %.0f records/s   ", n,
                    (double)st.tick * a->fo.interval_ms / 1000.0, (double)st.ticks * a->fo.interval_ms / 1000.0,
                    tp_cli_bytes(out->bytes, b, sizeof b), (double)n / (t - t0));
            last_progress = t;
        }
    }
    if (progress)
        fputc('\n', stderr);
    return n;
}

int tp_cmd_gen(int argc, char **argv)
{
    gen_cli a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    tp_fleet *fleet;
    tp_err e = tp_fleet_new(&a.fo, &fleet);
    if (e == TP_ERR_INVALID_ARG)
        return tp_cli_usage_error("gen", "the options do not describe a fleet the simulator can run (vehicles x "
                                         "seconds or the start time out of range)");
    if (e) {
        fprintf(stderr, "telepack gen: cannot start the simulation: %s\n", tp_strerror(e));
        return 1;
    }
    stop_requested = 0;
    /* By default a full default batch (200 records of ~64 wire bytes) per vehicle of the gateway. */
    uint64_t per_gateway = (a.fo.vehicles + a.gateways - 1) / a.gateways;
    size_t window = a.window ? (size_t)a.window : tp_gateway_window(per_gateway * 200 * 64);
    gateway_v2 v2 = {(int)a.protocol, a.token[0] ? a.token : NULL, per_gateway, a.tls_ca, a.tls_cert, a.tls_key};
    if (a.tls_ca)
        signal(SIGPIPE, SIG_IGN); /* OpenSSL writes with write(2): a closed connection must be EPIPE, not death */
    gen_output *out = a.connect ? gateway_output_open(a.connect, (uint32_t)a.gateways, window, &v2, &stop_requested)
                                : stream_output_open(a.out_path, (gen_format)a.format);
    if (!out) {
        tp_fleet_free(fleet);
        return 1;
    }
    tp_cli_signals_install(on_signal, 0);
    stop_requested = 0;
    int status = 0;
    double t0 = tp_mono_s();
    uint64_t n = generate(&a, fleet, out, &status);
    if (a.connect)
        gateway_bytes((gateway_output *)out);
    uint64_t bytes = out->bytes;
    if (out->close(out) != TP_OK && status == 0)
        status = 1;
    double elapsed = tp_mono_s() - t0;
    tp_fleet_stats st;
    tp_fleet_get_stats(fleet, &st);
    tp_fleet_free(fleet);
    if (!a.quiet) {
        char b[32];
        fprintf(stderr,
                "gen: %" PRIu64 " records from %" PRIu32 " vehicles over %.0f s (%" PRIu64
                " samples dropped as gaps), %s %s to %s in %.2f s (%.0f records/s)%s\n",
                n, a.fo.vehicles, (double)st.ticks * a.fo.interval_ms / 1000.0, st.dropped,
                tp_cli_bytes(bytes, b, sizeof b), format_words[a.format],
                a.connect ? a.connect : strcmp(a.out_path, "-") ? a.out_path : "stdout", elapsed,
                elapsed > 0 ? (double)n / elapsed : 0.0, stop_requested ? ", stopped by a signal" : "");
    }
    return status;
}
