/* `telepack sink`: consume packs from a Kafka topic as a consumer group and load their rows into a warehouse
 * (the worker itself is src/sink/sink.c). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "ops/http_server.h"
#include "common/log.h"
#include "ops/metrics.h"
#include "sink/sink.h"

static tp_sink *running_sink; /* for the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    tp_sink_stop(running_sink);
}

static bool ready(void *ud, char *reason, size_t cap)
{
    return tp_sink_ready(ud, reason, cap) != 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: telepack sink --brokers B --topic T --group G --warehouse URL [OPTIONS]\n\n"
            "Consume packs from Kafka as a consumer group, decode them into column batches and load the rows into a\n"
            "warehouse. Offsets are stored only after the warehouse acknowledged the rows; corrupt packs go to a\n"
            "dead-letter topic. SIGINT/SIGTERM load what is decoded, store its offsets and exit.\n\n"
            "Required:\n"
            "  --brokers B            Kafka bootstrap servers (host:port,...)\n"
            "  --topic T              topic holding packs\n"
            "  --group G              consumer group id\n"
            "  --warehouse URL        sqlite:PATH | clickhouse://HOST:PORT/DB | clickhouses://HOST:PORT/DB (HTTPS)\n"
            "                         | bigquery://PROJECT/DATASET/TABLE\n"
            "                         ClickHouse loads Native blocks in key order; ?format=rowbinary sends RowBinary\n"
            "                         rows as they came, ?gzip=1 compresses (options joined with &)\n"
            "                         | null: (discards the rows: decode-only benchmarks and dry runs)\n\n"
            "Options:\n"
            "  --create-table         create the table when it does not exist\n"
            "  --table NAME           table name (default vehicle_positions)\n"
            "  --batch-rows N         load when N rows are decoded (default 100000)\n"
            "  --flush-ms N           load decoded rows at most N ms after the first (default 1000)\n"
            "  --min-insert-interval-ms N\n"
            "                         load as soon as every partition is read up to its high watermark, but at\n"
            "                         least N ms after the previous load (default 200; 0 = at once; >= --flush-ms:\n"
            "                         only by --batch-rows or --flush-ms)\n"
            "  --dlq-topic T          dead-letter topic (default <topic>.dlq)\n"
            "  --max-pack-bytes N     largest message and decompressed pack accepted (default 67108864); a pack\n"
            "                         may hold at most N/16 records (their rows take up to 68 B each: 4.25 x N)\n"
            "  --max-event-age D      dead-letter a pack holding a record sampled more than D days before now\n"
            "                         (default 3653, i.e. 10 years; 0 = no bound)\n"
            "  --max-event-ahead D    ... or more than D days after now (default 3653; 0 = no bound)\n"
            "  --user U               ClickHouse user (default $TP_CLICKHOUSE_USER)\n"
            "  --password-file F      ClickHouse password: the first line of F (default $TP_CLICKHOUSE_PASSWORD;\n"
            "                         --password P also works but shows the password to anyone running ps)\n"
            "  --ca-file F            PEM file of the CAs that verify an HTTPS warehouse (clickhouses://, BigQuery);\n"
            "                         default: the system's CA store\n"
            "  --token-file F         BigQuery OAuth bearer token file (default $TP_BIGQUERY_TOKEN)\n"
            "  --bigquery-endpoint U  BigQuery API base URL (tests)\n"
            "  -X key=value           librdkafka property for the consumer and the dead-letter producer (repeatable)\n"
            "  --metrics-listen A     serve /metrics, /healthz, /readyz on HOST:PORT (e.g. 127.0.0.1:9464)\n"
            "  --log-format F         text | json (default text)\n"
            "  --log-level L          debug | info | warn | error (default info)\n"
            "  -h, --help             this text\n\n"
            "Example:\n"
            "  telepack sink --brokers 127.0.0.1:9092 --topic telemetry --group sink --warehouse sqlite:fleet.db \\\n"
            "      --create-table\n");
}

static int parse_size(const char *opt, const char *v, size_t min, size_t max, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < min || n > max) {
        fprintf(stderr, "telepack sink: %s '%s' is not a whole number in %zu..%zu\n", opt, v, min, max);
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

/* Reads a secret (a password) from the first line of a file into buf, without its line break. The file must hold
 * something; the secret never appears in messages. */
static int read_secret_file(const char *opt, const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "telepack sink: %s '%s' cannot be read (%s)\n", opt, path, strerror(errno));
        return -1;
    }
    int ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    size_t n = ok ? strcspn(buf, "\r\n") : 0;
    int filled = ok && n == strlen(buf) && n == cap - 1; /* no line end within cap: longer than we take */
    if (!ok || n == 0 || filled) {
        fprintf(stderr, "telepack sink: %s '%s' must hold the secret on its first line (1 to %zu bytes)\n", opt,
                path, cap - 2);
        return -1;
    }
    buf[n] = '\0';
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t progress_start_ms; /* set when the sink starts; the first rate is measured from there */

static void progress(void *ctx, const tp_sink_stats *st)
{
    static uint64_t last_rows;
    static int64_t last_ms;
    (void)ctx;
    int64_t now = mono_ms();
    if (!last_ms)
        last_ms = progress_start_ms;
    double rate = now > last_ms ? (double)(st->rows_loaded - last_rows) * 1000.0 / (double)(now - last_ms) : 0;
    last_rows = st->rows_loaded;
    last_ms = now;
    char lag[32] = "?";
    if (st->lag >= 0)
        snprintf(lag, sizeof lag, "%" PRId64, st->lag);
    fprintf(stderr,
            "\rsink: %" PRIu64 " rows (%.0f rows/s), %" PRIu64 " packs, %" PRIu64 " DLQ, %" PRIu64
            " pending, lag %s%s\033[K",
            st->rows_loaded, rate, st->packs_loaded, st->packs_dlq, st->pending_rows, lag,
            st->paused ? ", PAUSED (warehouse unavailable)" : "");
    fflush(stderr);
}

int tp_cmd_sink(int argc, char **argv)
{
    enum {
        O_BROKERS = 256, O_TOPIC, O_GROUP, O_WAREHOUSE, O_CREATE, O_TABLE, O_BATCH, O_FLUSH, O_DLQ, O_MAXPACK,
        O_USER, O_PASSWORD, O_TOKEN, O_BQ, O_LOGFMT, O_LOGLVL, O_METRICS, O_AGE, O_AHEAD, O_PASSWORD_FILE,
        O_CA_FILE, O_MIN_INSERT
    };
    static const struct option longopts[] = {
        {"brokers", required_argument, 0, O_BROKERS},   {"topic", required_argument, 0, O_TOPIC},
        {"group", required_argument, 0, O_GROUP},       {"warehouse", required_argument, 0, O_WAREHOUSE},
        {"create-table", no_argument, 0, O_CREATE},     {"table", required_argument, 0, O_TABLE},
        {"batch-rows", required_argument, 0, O_BATCH},  {"flush-ms", required_argument, 0, O_FLUSH},
        {"min-insert-interval-ms", required_argument, 0, O_MIN_INSERT},
        {"dlq-topic", required_argument, 0, O_DLQ},     {"max-pack-bytes", required_argument, 0, O_MAXPACK},
        {"user", required_argument, 0, O_USER},         {"password", required_argument, 0, O_PASSWORD},
        {"token-file", required_argument, 0, O_TOKEN},  {"bigquery-endpoint", required_argument, 0, O_BQ},
        {"log-format", required_argument, 0, O_LOGFMT}, {"log-level", required_argument, 0, O_LOGLVL},
        {"metrics-listen", required_argument, 0, O_METRICS},
        {"password-file", required_argument, 0, O_PASSWORD_FILE}, {"ca-file", required_argument, 0, O_CA_FILE},
        {"max-event-age", required_argument, 0, O_AGE}, {"max-event-ahead", required_argument, 0, O_AHEAD},
        {"help", no_argument, 0, 'h'},                  {0, 0, 0, 0},
    };
    tp_sink_config cfg;
    tp_sink_config_init(&cfg);
    cfg.warehouse_opts.user = getenv("TP_CLICKHOUSE_USER");
    cfg.warehouse_opts.password = getenv("TP_CLICKHOUSE_PASSWORD");
    const char **props = calloc((size_t)argc + 1, sizeof *props);
    if (!props) {
        fprintf(stderr, "telepack sink: out of memory\n");
        return 1;
    }
    size_t n_props = 0;
    const char *metrics_listen = NULL;
    tp_metrics *metrics = NULL;
    tp_http_server *http = NULL;
    tp_log_level level = TP_LOG_INFO;
    tp_log_format format = TP_LOG_TEXT;
    int rc = 2, c;
    size_t v;
    char password[512];
    int password_on_command_line = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
        switch (c) {
        case O_BROKERS: cfg.brokers = optarg; break;
        case O_TOPIC: cfg.topic = optarg; break;
        case O_GROUP: cfg.group = optarg; break;
        case O_WAREHOUSE: cfg.warehouse_url = optarg; break;
        case O_CREATE: cfg.warehouse_opts.create_table = 1; break;
        case O_TABLE: cfg.warehouse_opts.table = optarg; break;
        case O_DLQ: cfg.dlq_topic = optarg; break;
        case O_USER: cfg.warehouse_opts.user = optarg; break;
        case O_PASSWORD:
            cfg.warehouse_opts.password = optarg;
            password_on_command_line = 1;
            break;
        case O_PASSWORD_FILE:
            if (read_secret_file("--password-file", optarg, password, sizeof password))
                goto out;
            cfg.warehouse_opts.password = password;
            password_on_command_line = 0;
            break;
        case O_CA_FILE:
            if (access(optarg, R_OK)) {
                fprintf(stderr, "telepack sink: --ca-file '%s' cannot be read (%s)\n", optarg, strerror(errno));
                goto out;
            }
            cfg.warehouse_opts.ca_file = optarg;
            break;
        case O_TOKEN: cfg.warehouse_opts.token_file = optarg; break;
        case O_BQ: cfg.warehouse_opts.endpoint = optarg; break;
        case 'X': props[n_props++] = optarg; break;
        case O_METRICS: metrics_listen = optarg; break;
        case O_BATCH:
            if (parse_size("--batch-rows", optarg, 1, 100000000, &cfg.batch_rows))
                goto out;
            break;
        case O_FLUSH:
            if (parse_size("--flush-ms", optarg, 1, 86400000, &v))
                goto out;
            cfg.flush_ms = (long)v;
            break;
        case O_MIN_INSERT:
            if (parse_size("--min-insert-interval-ms", optarg, 0, 86400000, &v))
                goto out;
            cfg.min_insert_interval_ms = (long)v;
            break;
        case O_AGE:
        case O_AHEAD:
            if (parse_size(c == O_AGE ? "--max-event-age" : "--max-event-ahead", optarg, 0, 3650000, &v))
                goto out;
            *(c == O_AGE ? &cfg.max_event_age_ms : &cfg.max_event_ahead_ms) = v ? (int64_t)v * 86400000 : -1;
            break;
        case O_MAXPACK:
            if (parse_size("--max-pack-bytes", optarg, 64, (size_t)1 << 32, &cfg.max_pack_bytes))
                goto out;
            break;
        case O_LOGFMT:
            if (tp_log_parse_format(optarg, &format)) {
                fprintf(stderr, "telepack sink: --log-format '%s' is not text or json\n", optarg);
                goto out;
            }
            break;
        case O_LOGLVL:
            if (tp_log_parse_level(optarg, &level)) {
                fprintf(stderr, "telepack sink: --log-level '%s' is not debug, info, warn or error\n", optarg);
                goto out;
            }
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            fprintf(stderr, "run 'telepack sink --help' for the options\n");
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "telepack sink: unexpected argument '%s'; run 'telepack sink --help'\n", argv[optind]);
        goto out;
    }
    if (!cfg.brokers || !cfg.topic || !cfg.group || !cfg.warehouse_url) {
        fprintf(stderr, "telepack sink: --brokers, --topic, --group and --warehouse are required; "
                        "run 'telepack sink --help'\n");
        goto out;
    }
    tp_log_configure(level, format);
    if (password_on_command_line)
        tp_log(TP_LOG_WARN, "sink", "the ClickHouse password is on the command line, where ps shows it; use "
                                    "--password-file or $TP_CLICKHOUSE_PASSWORD");
    cfg.kafka_props = props;
    cfg.n_kafka_props = n_props;
    int tty = isatty(STDERR_FILENO) && format == TP_LOG_TEXT;
    if (tty) {
        cfg.progress = progress;
        cfg.progress_ms = 2000;
    }

    char err[1024];
    tp_sink *s = NULL;
    tp_err e;
    if (metrics_listen) {
        char host[256];
        uint16_t port;
        if (tp_http_parse_listen(metrics_listen, host, sizeof host, &port)) {
            fprintf(stderr, "telepack sink: --metrics-listen '%s' is not HOST:PORT (e.g. 127.0.0.1:9464)\n",
                    metrics_listen);
            goto out;
        }
        if ((e = tp_metrics_new(&metrics))) {
            fprintf(stderr, "telepack sink: %s\n", tp_strerror(e));
            rc = 1;
            goto out;
        }
        cfg.metrics = metrics;
    }
    e = tp_sink_new(&cfg, &s, err, sizeof err);
    if (e) {
        fprintf(stderr, "telepack sink: %s\n", err);
        rc = e == TP_ERR_INVALID_ARG || e == TP_ERR_PARSE ? 2 : 1;
        goto out;
    }
    if (metrics_listen) {
        tp_http_server_opts ho = {metrics_listen, metrics, ready, s};
        if ((e = tp_http_server_start(&ho, &http, err, sizeof err))) {
            fprintf(stderr, "telepack sink: %s\n", err);
            tp_sink_free(s);
            rc = 1;
            goto out;
        }
        tp_log(TP_LOG_INFO, "sink", "serving /metrics, /healthz, /readyz on port %u", tp_http_server_port(http));
    }
    running_sink = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    progress_start_ms = mono_ms();
    e = tp_sink_run(s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (tty)
        fputc('\n', stderr);
    tp_sink_stats st;
    tp_sink_stats_get(s, &st);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    tp_log(TP_LOG_INFO, "sink",
           "summary: %" PRIu64 " rows in %" PRIu64 " packs loaded in %" PRIu64 " loads (%" PRIu64 " on catching "
           "up) over %.1f s (%.0f rows/s), %" PRIu64 " packs dead-lettered, %" PRIu64 " load retries, %" PRIu64 " rows left for re-reading, "
           "%" PRIu64 " bytes consumed",
           st.rows_loaded, st.packs_loaded, st.loads, st.loads_caught_up, secs, secs > 0 ? (double)st.rows_loaded / secs : 0.0,
           st.packs_dlq, st.load_retries, st.pending_rows, st.bytes_consumed);
    if (e) {
        fprintf(stderr, "telepack sink: %s\n", tp_sink_last_error(s));
        rc = 1;
    } else {
        rc = 0;
    }
    running_sink = NULL;
    tp_http_server_stop(http);
    tp_sink_free(s);
out:
    tp_metrics_free(metrics);
    free(props);
    return rc;
}
