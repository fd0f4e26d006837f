/* `telepack ingest`: accept gateway records (TCP, or replay a file/stdin), batch per vehicle, compress into packs,
 * publish them to Kafka, ack the gateways once Kafka has them. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "ingest/gateway_client.h"
#include "ops/http_server.h"
#include "ingest/ingest.h"
#include "common/log.h"
#include "telepack/record_json.h"
#include "telepack/varint.h"

static volatile sig_atomic_t g_signals;
static tp_ingest *volatile g_ing;

/* First signal: graceful stop (the main loop sees g_signals). Second: stop waiting for Kafka. */
static void on_signal(int sig)
{
    (void)sig;
    g_signals++;
    if (g_signals >= 2 && g_ing)
        tp_ingest_hurry(g_ing);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: telepack ingest --brokers HOST:PORT[,...] --topic TOPIC [OPTIONS]\n\n"
            "Accepts vehicle records from gateways (TCP, varint length-prefixed telepack.v1.VehicleRecord, see\n"
            "docs/GATEWAY.md) or from a file, batches them per Kafka partition (or per vehicle), compresses each\n"
            "batch into one pack (zstd) and publishes it to Kafka (idempotent, acks=all). A gateway's records are\n"
            "acked only once Kafka holds them. SIGINT/SIGTERM: stop accepting, flush, wait for delivery, exit 0 (twice: stop\n"
            "waiting; what was not delivered is not acked).\n\n"
            "Options:\n"
            "  --brokers LIST          Kafka bootstrap servers (or -X bootstrap.servers=...)\n"
            "  --topic NAME            topic for the packs (required)\n"
            "  --listen HOST:PORT      gateway listen address (default 0.0.0.0:7070 unless --from is given)\n"
            "  --from FILE|-           replay records from FILE or stdin, then exit once all are delivered\n"
            "  --input-format F        ndjson (default) or delimited (varint length-prefixed protobuf)\n"
            "  --ignore-unknown-fields with --from NDJSON: skip keys that name no record field (default: such a\n"
            "                          key is an error naming it and its line, exit 2)\n"
            "  --pack-by partition|vehicle\n"
            "                          partition (default): one pack holds the records of every vehicle of a\n"
            "                          Kafka partition that arrived within the linger time, sorted by vehicle and\n"
            "                          time (pbpack v3, no key; the partition is librdkafka's for key = vehicle id);\n"
            "                          vehicle: one pack per vehicle, key = vehicle id (pbpack v2, or v1 with\n"
            "                          --layout rows, which implies it). docs/INGEST.md compares them\n"
            "  --batch-records N       flush a pack at N records (default 10000 per partition, 200 per vehicle)\n"
            "  --batch-bytes N         flush a pack before it exceeds N wire bytes (default 1M per partition,\n"
            "                          256K per vehicle)\n"
            "  --linger-ms N           flush a batch N ms after its first record (default 1000)\n"
            "  --max-buffered-bytes N  cap on record bytes not yet in Kafka; above it reading pauses (default 256M);\n"
            "                          the batcher's memory stays below 4.25x it (docs/INGEST.md)\n"
            "  --max-open-vehicles N   vehicles with an open batch; a new one beyond it flushes the oldest open\n"
            "                          batch (default 100000)\n"
            "  --threads N             compression threads (default: number of CPUs)\n"
            "  --level N               zstd level (default 3)\n"
            "  --layout L              columns (default: pbpack v2, ~4x smaller) or rows (pbpack v1: standard\n"
            "                          delimited protobuf, for consumers that only speak protobuf); docs/FORMAT.md\n"
            "  --headers compact|full  pack metadata as one Kafka header 'tp' (default, ~8 bytes) or as the eight\n"
            "                          tp-* headers (~130 bytes) that sinks older than pbpack v3 need\n"
            "  -X key=value            librdkafka property (repeatable), e.g. -X linger.ms=20\n"
            "  --metrics-listen H:P    serve /metrics (Prometheus), /healthz and /readyz on HOST:PORT\n"
            "  --log-format text|json  log line format (default text)\n"
            "  --log-level L           debug, info, warn or error (default info)\n"
            "  -h, --help              this text\n\n"
            "Sizes take a K, M or G suffix (powers of 1024).\n");
}

static int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, int sizes, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (sizes && *end && !end[1]) {
        switch (*end) {
        case 'k': case 'K': mul = 1024; end++; break;
        case 'm': case 'M': mul = 1024 * 1024; end++; break;
        case 'g': case 'G': mul = 1024ull * 1024 * 1024; end++; break;
        default: break;
        }
    }
    if (errno || end == s || *end || s[0] == '-' || v > max / mul || v * mul < min || v * mul > max) {
        fprintf(stderr, "telepack ingest: %s '%s' is not a number in %" PRIu64 "..%" PRIu64 "%s\n", opt, s, min, max,
                sizes ? " (K/M/G suffixes allowed)" : "");
        return -1;
    }
    *out = v * mul;
    return 0;
}

typedef struct feeder {
    const char *path;
    int delimited;
    unsigned json_flags;     /* TP_RECORD_JSON_* for NDJSON */
    size_t max_record;
    size_t window;           /* unacked bytes the replay may have in flight */
    int fd;
    volatile sig_atomic_t stop;
    atomic_int done;
    int status;              /* 0 ok, 1 runtime failure, 2 bad input */
    uint64_t records;
} feeder;

static tp_err feed_delimited(feeder *f, FILE *in, tp_gateway_client *c)
{
    size_t cap = 1u << 20, len = 0, pos = 0;
    uint64_t offset = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return TP_ERR_NOMEM;
    tp_err e = TP_OK;
    int eof = 0;
    while (!e) {
        if (pos > 0 && (len - pos < TP_VARINT_MAX_BYTES + f->max_record)) {
            memmove(buf, buf + pos, len - pos);
            len -= pos;
            offset += pos;
            pos = 0;
        }
        if (!eof && len < cap) {
            size_t n = fread(buf + len, 1, cap - len, in);
            len += n;
            if (n == 0) {
                if (ferror(in)) {
                    tp_log(TP_LOG_ERROR, "ingest", "reading %s failed: %s", f->path, strerror(errno));
                    f->status = 1;
                    e = TP_ERR_IO;
                    break;
                }
                eof = 1;
            }
        }
        while (!e && pos < len) {
            uint64_t v;
            size_t used;
            tp_err ve = tp_varint_decode(buf + pos, len - pos, &v, &used);
            if (ve == TP_ERR_TRUNCATED || (!ve && used + v > len - pos && v <= f->max_record)) {
                if (eof) {
                    tp_log(TP_LOG_ERROR, "ingest",
                           "%s: input ends inside record %" PRIu64 " at byte %" PRIu64 " (truncated file?)", f->path,
                           f->records + 1, offset + pos);
                    f->status = 2;
                    e = TP_ERR_TRUNCATED;
                }
                break;
            }
            if (ve || v > f->max_record) {
                tp_log(TP_LOG_ERROR, "ingest",
                       "%s: record %" PRIu64 " at byte %" PRIu64 ": %s; is this really --input-format delimited?",
                       f->path, f->records + 1, offset + pos,
                       ve ? "bad length prefix" : "length prefix above the maximum record size");
                f->status = 2;
                e = TP_ERR_PARSE;
                break;
            }
            e = tp_gateway_client_send_encoded(c, buf + pos + used, (size_t)v);
            if (e) {
                f->status = f->stop ? 0 : 1;
                break;
            }
            f->records++;
            pos += used + (size_t)v;
        }
        if (eof && pos >= len)
            break;
    }
    free(buf);
    return e;
}

static tp_err feed_ndjson(feeder *f, FILE *in, tp_gateway_client *c)
{

    tp_ndjson_reader *rd;
    tp_err e = tp_ndjson_reader_new(in, 0, &rd);
    if (e)
        return e;
    tp_ndjson_reader_set_flags(rd, f->json_flags);
    char msg[512];
    tp_record r;
    while ((e = tp_ndjson_reader_next(rd, &r, msg, sizeof msg)) == TP_OK) {
        e = tp_gateway_client_send(c, &r);
        if (e) {
            f->status = f->stop ? 0 : 1;
            break;
        }
        f->records++;
    }
    if (e == TP_ERR_PARSE || e == TP_ERR_IO) {
        tp_log(TP_LOG_ERROR, "ingest", "%s: %s", f->path, msg);
        f->status = e == TP_ERR_PARSE ? 2 : 1;
    }
    tp_ndjson_reader_free(rd);
    return e == TP_ERR_END ? TP_OK : e;
}

static void *feeder_main(void *arg)
{
    feeder *f = arg;
    FILE *in = strcmp(f->path, "-") ? fopen(f->path, "rb") : stdin;
    tp_gateway_client_opts co;
    tp_gateway_client_opts_init(&co);
    co.fd = f->fd;
    co.stop = &f->stop;
    co.max_unacked_bytes = f->window;
    tp_gateway_client *c = NULL;
    if (!in) {
        tp_log(TP_LOG_ERROR, "ingest", "cannot open --from %s: %s", f->path, strerror(errno));
        f->status = 2;
        close(f->fd);
    } else if (tp_gateway_client_new(&co, &c) != TP_OK) {
        f->status = 1;
        close(f->fd);
    } else {
        tp_err e = f->delimited ? feed_delimited(f, in, c) : feed_ndjson(f, in, c);
        if (!f->stop && (!e || f->status == 2)) { /* bad input: still see what was sent delivered */
            e = tp_gateway_client_drain(c, -1);
            if (e && !f->stop)
                f->status = 1;
        }
        tp_gateway_client_free(c);
    }
    if (in && in != stdin)
        fclose(in);
    atomic_store(&f->done, 1);
    return NULL;
}

static bool ingest_ready(void *ud, char *reason, size_t cap)
{
    return tp_ingest_ready(ud, reason, cap) != 0;
}

static void human(double v, char *buf, size_t n)
{
    const char *u[] = {"", "K", "M", "G", "T"};
    int i = 0;
    while (v >= 1000 && i < 4) {
        v /= 1000;
        i++;
    }
    snprintf(buf, n, i ? "%.1f%s" : "%.0f%s", v, u[i]);
}

int tp_cmd_ingest(int argc, char **argv)
{
    enum { O_BROKERS = 256, O_TOPIC, O_LISTEN, O_FROM, O_FORMAT, O_BREC, O_BBYTES, O_LINGER, O_MAXBUF, O_THREADS,
           O_LEVEL, O_LAYOUT, O_LOGFMT, O_LOGLVL, O_METRICS, O_IGNORE_UNKNOWN, O_MAXOPEN, O_PACKBY, O_HEADERS };
    static const struct option longopts[] = {
        {"brokers", required_argument, 0, O_BROKERS}, {"topic", required_argument, 0, O_TOPIC},
        {"listen", required_argument, 0, O_LISTEN}, {"from", required_argument, 0, O_FROM},
        {"input-format", required_argument, 0, O_FORMAT}, {"batch-records", required_argument, 0, O_BREC},
        {"batch-bytes", required_argument, 0, O_BBYTES}, {"linger-ms", required_argument, 0, O_LINGER},
        {"max-buffered-bytes", required_argument, 0, O_MAXBUF}, {"threads", required_argument, 0, O_THREADS},
        {"level", required_argument, 0, O_LEVEL}, {"layout", required_argument, 0, O_LAYOUT},
        {"log-format", required_argument, 0, O_LOGFMT}, {"pack-by", required_argument, 0, O_PACKBY},
        {"headers", required_argument, 0, O_HEADERS},
        {"log-level", required_argument, 0, O_LOGLVL}, {"metrics-listen", required_argument, 0, O_METRICS},
        {"ignore-unknown-fields", no_argument, 0, O_IGNORE_UNKNOWN},
        {"max-open-vehicles", required_argument, 0, O_MAXOPEN},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    tp_ingest_opts o;
    tp_ingest_opts_init(&o);
    const char *from = NULL;
    const char *metrics_listen = NULL;
    tp_metrics *metrics = NULL;
    tp_ingest_metrics im;
    tp_http_server *http = NULL;
    int delimited = 0;
    unsigned json_flags = 0;
    tp_log_level lvl = TP_LOG_INFO;
    tp_log_format lfmt = TP_LOG_TEXT;
    const char **kconf = calloc((size_t)argc + 1, sizeof *kconf);
    size_t nk = 0;
    int rc = 2, c;
    uint64_t v;
    int pack_by = -1;                           /* -1: not given */
    int64_t batch_records = -1, batch_bytes = -1; /* -1: the default of the grouping */
    if (!kconf)
        return 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            free(kconf);
            return 0;
        case 'X':
            kconf[nk++] = optarg;
            break;
        case O_BROKERS: o.brokers = optarg; break;
        case O_TOPIC: o.topic = optarg; break;
        case O_LISTEN: o.listen = optarg; break;
        case O_FROM: from = optarg; break;
        case O_METRICS: metrics_listen = optarg; break;
        case O_IGNORE_UNKNOWN: json_flags = TP_RECORD_JSON_IGNORE_UNKNOWN; break;
        case O_FORMAT:
            if (!strcmp(optarg, "delimited"))
                delimited = 1;
            else if (strcmp(optarg, "ndjson")) {
                fprintf(stderr, "telepack ingest: --input-format '%s' is not ndjson or delimited\n", optarg);
                goto out;
            }
            break;
        case O_BREC:
            if (parse_u64("--batch-records", optarg, 1, 1000000, 0, &v))
                goto out;
            batch_records = (int64_t)v;
            break;
        case O_BBYTES:
            if (parse_u64("--batch-bytes", optarg, 64, 64ull << 20, 1, &v))
                goto out;
            batch_bytes = (int64_t)v;
            break;
        case O_PACKBY:
            if (!strcmp(optarg, "partition")) {
                pack_by = TP_PACK_BY_PARTITION;
            } else if (!strcmp(optarg, "vehicle")) {
                pack_by = TP_PACK_BY_VEHICLE;
            } else {
                fprintf(stderr, "telepack ingest: --pack-by '%s' is not partition or vehicle\n", optarg);
                goto out;
            }
            break;
        case O_HEADERS:
            if (!strcmp(optarg, "compact")) {
                o.compact_headers = 1;
            } else if (!strcmp(optarg, "full")) {
                o.compact_headers = 0;
            } else {
                fprintf(stderr, "telepack ingest: --headers '%s' is not compact or full\n", optarg);
                goto out;
            }
            break;
        case O_LINGER:
            if (parse_u64("--linger-ms", optarg, 0, 3600000, 0, &v))
                goto out;
            o.batch.linger_ms = (int64_t)v;
            break;
        case O_MAXBUF:
            if (parse_u64("--max-buffered-bytes", optarg, 1024, 1ull << 40, 1, &v))
                goto out;
            o.batch.max_buffered_bytes = (size_t)v;
            break;
        case O_MAXOPEN:
            if (parse_u64("--max-open-vehicles", optarg, 1, 100000000, 0, &v))
                goto out;
            o.batch.max_open = (uint32_t)v;
            break;
        case O_THREADS:
            if (parse_u64("--threads", optarg, 1, 256, 0, &v))
                goto out;
            o.threads = (int)v;
            break;
        case O_LEVEL:
            if (parse_u64("--level", optarg, 1, 22, 0, &v))
                goto out;
            o.level = (int)v;
            break;
        case O_LAYOUT:
            if (!strcmp(optarg, "rows")) {
                o.layout = TP_LAYOUT_ROWS;
            } else if (!strcmp(optarg, "columns")) {
                o.layout = TP_LAYOUT_COLUMNS;
            } else {
                fprintf(stderr, "telepack ingest: --layout '%s' is not rows or columns\n", optarg);
                goto out;
            }
            break;
        case O_LOGFMT:
            if (tp_log_parse_format(optarg, &lfmt)) {
                fprintf(stderr, "telepack ingest: --log-format '%s' is not text or json\n", optarg);
                goto out;
            }
            break;
        case O_LOGLVL:
            if (tp_log_parse_level(optarg, &lvl)) {
                fprintf(stderr, "telepack ingest: --log-level '%s' is not debug, info, warn or error\n", optarg);
                goto out;
            }
            break;
        default:
            fprintf(stderr, "run 'telepack ingest --help' for the options\n");
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "telepack ingest: unexpected argument '%s'; run 'telepack ingest --help'\n", argv[optind]);
        goto out;
    }
    if (!o.topic) {
        fprintf(stderr, "telepack ingest: --topic is required; run 'telepack ingest --help'\n");
        goto out;
    }
    if (pack_by == TP_PACK_BY_PARTITION && o.layout == TP_LAYOUT_ROWS) {
        fprintf(stderr, "telepack ingest: --pack-by partition needs --layout columns (a rows pack holds one "
                        "vehicle); drop one of them\n");
        goto out;
    }
    if (pack_by < 0) /* rows packs hold one vehicle: --layout rows implies --pack-by vehicle */
        pack_by = o.layout == TP_LAYOUT_ROWS ? TP_PACK_BY_VEHICLE : TP_PACK_BY_PARTITION;
    tp_ingest_opts_pack_by(&o, (tp_pack_by)pack_by);
    if (batch_records >= 0)
        o.batch.max_records = (uint32_t)batch_records;
    if (batch_bytes >= 0)
        o.batch.max_bytes = (size_t)batch_bytes;
    int has_bootstrap = 0;
    for (size_t i = 0; i < nk; i++)
        has_bootstrap |= !strncmp(kconf[i], "bootstrap.servers=", 18) || !strncmp(kconf[i], "metadata.broker.list=", 21) ||
                         !strncmp(kconf[i], "test.mock.num.brokers=", 22);
    if (!o.brokers && !has_bootstrap) {
        fprintf(stderr, "telepack ingest: --brokers is required (e.g. --brokers 127.0.0.1:9092)\n");
        goto out;
    }
    if (!o.listen && !from)
        o.listen = "0.0.0.0:7070";
    o.kafka_conf = kconf;
    o.nkafka_conf = nk;
    tp_log_configure(lvl, lfmt);

    char err[512] = "";
    tp_ingest *ing = NULL;
    tp_err e;
    if (metrics_listen) {
        if (tp_metrics_new(&metrics) || tp_ingest_metrics_register(metrics, &im)) {
            fprintf(stderr, "telepack ingest: cannot set up the metrics registry\n");
            rc = 1;
            goto out;
        }
        o.metrics = &im;
        o.kafka_metrics = metrics; /* the producer's librdkafka statistics, and readiness from them */
    }
    e = tp_ingest_new(&o, &ing, err, sizeof err);
    if (e) {
        fprintf(stderr, "telepack ingest: %s\n", err[0] ? err : tp_strerror(e));
        rc = (e == TP_ERR_INVALID_ARG) ? 2 : 1;
        goto out;
    }
    feeder f = {0};
    pthread_t ft;
    int feeding = 0;
    if (from) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            fprintf(stderr, "telepack ingest: socketpair failed: %s\n", strerror(errno));
            tp_ingest_free(ing);
            rc = 1;
            goto out;
        }
        f.path = from;
        f.delimited = delimited;
        f.json_flags = json_flags;
        f.max_record = o.max_record_bytes;
        /* The replay acts as one gateway holding every vehicle. With a gateway's usual 4 MiB window it would stall
         * long before batches fill (measured: ~45 records per vehicle for 2,000 vehicles), and packs would leave
         * only on the linger timer. A quarter of the memory cap, within 4..64 MiB, lets batches fill. */
        f.window = o.batch.max_buffered_bytes / 4;
        if (f.window < (4u << 20))
            f.window = 4u << 20;
        if (f.window > (64u << 20))
            f.window = 64u << 20;
        f.fd = sv[1];
        tp_ingest_add_fd(ing, sv[0]);
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (metrics_listen) {
        tp_http_server_opts ho = {metrics_listen, metrics, ingest_ready, ing};
        e = tp_http_server_start(&ho, &http, err, sizeof err);
        if (e) {
            fprintf(stderr, "telepack ingest: %s\n", err);
            if (from)
                close(f.fd);
            tp_ingest_free(ing);
            rc = e == TP_ERR_PARSE ? 2 : 1;
            goto out;
        }
        tp_log(TP_LOG_INFO, "ingest", "serving /metrics, /healthz, /readyz on %s (port %u)", metrics_listen,
               tp_http_server_port(http));
    }
    g_ing = ing;
    e = tp_ingest_start(ing);
    if (e) {
        g_ing = NULL;
        fprintf(stderr, "telepack ingest: cannot start: %s\n", tp_strerror(e));
        if (from)
            close(f.fd);
        tp_ingest_free(ing);
        rc = 1;
        goto out;
    }
    if (from) {
        if (pthread_create(&ft, NULL, feeder_main, &f) == 0)
            feeding = 1;
        else
            close(f.fd);
    }
    if (o.listen)
        tp_log(TP_LOG_INFO, "ingest", "listening for gateways on %s (port %d), publishing to topic %s", o.listen,
               tp_ingest_port(ing), o.topic);
    int tty = isatty(2);
    double t0 = tp_cli_now_s(), last = t0;
    tp_ingest_stats prev = {0}, st;
    while (!g_signals && !tp_ingest_failed(ing, NULL, 0) && !(feeding && atomic_load(&f.done))) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        double t = tp_cli_now_s();
        if (tty && t - last >= 2.0) {
            tp_ingest_stats_get(ing, &st);
            char a[16], b[16], bi[16], bo[16], bb[16];
            double dt = t - last;
            human((double)(st.records_in - prev.records_in) / dt, a, sizeof a);
            human((double)(st.packs_out - prev.packs_out) / dt, b, sizeof b);
            human((double)st.bytes_in, bi, sizeof bi);
            human((double)st.pack_bytes_out, bo, sizeof bo);
            human((double)st.buffered_bytes, bb, sizeof bb);
            fprintf(stderr,
                    "\r%s records/s  %s packs/s  in %sB  out %sB  ratio %.1f  buffered %sB  in-flight %" PRIu64
                    "  gateways %" PRIu64 "%s   ",
                    a, b, bi, bo, st.pack_bytes_out ? (double)st.records_out / (double)st.records_in *
                                                             (double)st.bytes_in / (double)st.pack_bytes_out
                                                       : 0.0,
                    bb, st.in_flight, st.connections, st.paused ? "  PAUSED" : "");
            prev = st;
            last = t;
        }
    }
    if (tty && last > t0)
        fputc('\n', stderr);
    if (g_signals) {
        tp_log(TP_LOG_INFO, "ingest", "signal received: flushing and waiting for Kafka (again to stop waiting)");
        f.stop = 1;
    }
    /* the feeder (if any) drains on its own; a signal makes it stop waiting */
    if (feeding)
        pthread_join(ft, NULL);
    e = tp_ingest_stop(ing, -1);
    tp_ingest_stats_get(ing, &st);
    double el = tp_cli_now_s() - t0;
    char why[512] = "";
    int failed = tp_ingest_failed(ing, why, sizeof why);
    fprintf(stderr,
            "ingest summary: %" PRIu64 " records in (%" PRIu64 " bytes), %" PRIu64 " packs out (%" PRIu64
            " records, %" PRIu64 " bytes, ratio %.2f), %" PRIu64 " acked, %" PRIu64 " delivery retries, %" PRIu64
            " connections closed on error, %.1f s, %.0f records/s\n",
            st.records_in, st.bytes_in, st.packs_out, st.records_out, st.pack_bytes_out,
            st.pack_bytes_out ? (double)st.bytes_in / (double)st.pack_bytes_out : 0.0, st.records_acked,
            st.delivery_retries, st.connections_closed_on_error, el, el > 0 ? (double)st.records_in / el : 0.0);
    if (failed) {
        fprintf(stderr, "telepack ingest: %s; records not delivered were not acked (gateways keep them)\n", why);
        rc = 1;
    } else if (e) {
        fprintf(stderr, "telepack ingest: stopped before every pack was delivered; those records were not acked\n");
        rc = 1;
    } else if (from && f.status) {
        rc = f.status;
    } else {
        rc = 0;
    }
    g_ing = NULL;
    tp_http_server_stop(http); /* its readiness callback reads ing */
    http = NULL;
    tp_ingest_free(ing);
out:
    tp_http_server_stop(http);
    tp_metrics_free(metrics);
    free(kconf);
    return rc;
}
