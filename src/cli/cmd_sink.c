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
#include "cli/cli_args.h"
#include "cli/pipeline_config.h"
#include "cli/schema_cli.h"
#include "common/clock.h"
#include "ops/http_server.h"
#include "common/log.h"
#include "ops/metrics.h"
#include "schema/schema_dir.h"
#include "sink/sink.h"
#include "telepack/dict.h"

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
            "  --lineage-columns yes|no\n"
            "                         ClickHouse, --create-table: give each row kafka_partition and kafka_offset\n"
            "                         (the Kafka message that held it). Default no: they cost the server ~1/5 more\n"
            "                         CPU per row, and exactly-once does not need them. An existing table loads\n"
            "                         in its own shape, with or without them\n"
            "  --batch-rows N         load when N rows are decoded (default 300000; 100000 with --schema)\n"
            "  --flush-ms N           load decoded rows at most N ms after the first (default 1000)\n"
            "  --min-insert-interval-ms N\n"
            "                         load as soon as every partition is read up to its high watermark, but at\n"
            "                         least N ms after the previous load (default 200; 0 = at once; >= --flush-ms:\n"
            "                         only by --batch-rows or --flush-ms)\n"
            "  --min-insert-interval-rows N\n"
            "                         a caught-up load of at least N rows, or right after a load of at least N\n"
            "                         rows, does not wait for --min-insert-interval-ms (default a quarter of\n"
            "                         --batch-rows; 100000000: every caught-up load waits)\n"
            "  --dlq-topic T          dead-letter topic (default <topic>.dlq)\n"
            "  --max-pack-bytes N     largest message and decompressed pack accepted (default 64M); a pack\n"
            "                         may hold at most N/16 records (their rows take up to 68 B each: 4.25 x N)\n"
            "  --dict-dir DIR         zstd dictionaries packs may name: every DIR/*.zdict, loaded at start (at\n"
            "                         most 64 files of at most 1 MiB each, ~1.1 MiB of memory each); a corrupt\n"
            "                         one stops the start; a pack naming one not there goes to the DLQ\n"
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
            TP_CLI_SCHEMA_HELP
            "  --writer-schema FILE    (with --schema) a descriptor set of another version of the message whose\n"
            "                          packs are accepted when compatible (it only lacks columns the table has);\n"
            "                          repeatable, up to 16. Packs of an unknown or incompatible fingerprint go to\n"
            "                          the DLQ naming both fingerprints. The table defaults to the message's name\n"
            "                          in snake case (ev_telemetry). SQLite, ClickHouse and BigQuery: the table\n"
            "                          is generated (--create-table) from the schema, deduplicated on the identity\n"
            "                          (docs/WAREHOUSES.md, \"Tables of your own schema\"); null: is refused\n"
            "  --schema-dir DIR        (with --schema) a directory of descriptor sets of versions of the message: a\n"
            "                          pack whose fingerprint is neither --schema's nor a --writer-schema's is\n"
            "                          looked up there (read again, at most once a second, when a fingerprint is\n"
            "                          new; up to 256 files, 64M of sets) and loaded when that version is\n"
            "                          compatible. Add a file under a name starting with '.', then rename it\n"
            TP_CLI_WORKER_HELP
            "  -h, --help              this text\n\n"
            "-X properties apply to the consumer and the dead-letter producer. Sizes take a K, M or G suffix (powers\n"
            "of 1024).\n\n"
            "Example:\n"
            "  telepack sink --brokers 127.0.0.1:9092 --topic telemetry --group sink --warehouse sqlite:fleet.db \\\n"
            "      --create-table\n");
}

static int64_t progress_start_ms; /* set when the sink starts; the first rate is measured from there */

static void progress(void *ctx, const tp_sink_stats *st)
{
    static uint64_t last_rows;
    static int64_t last_ms;
    (void)ctx;
    int64_t now = tp_mono_ms();
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

/* What the command line asked for. */
typedef struct sink_cli {
    const char *dict_dir; /* --dict-dir */
    tp_dict_set *dicts;
    tp_sink_config cfg;
    tp_cli_worker w;
    char password[512];           /* from --password-file */
    int password_on_command_line; /* --password: works, with a warning */
    tp_cli_schema schema_opts;    /* --schema and its role options */
    const char *writer_paths[16]; /* --writer-schema */
    size_t n_writers;
    tp_schema *schema, *writers[16];
    const char *schema_dir;       /* --schema-dir */
    tp_schema_dir *dir;
    char table[80];               /* the default table of a schema */
} sink_cli;

/* Reads a secret (a password) from the first line of a file into buf, without its line break. The file must hold
 * something; the secret never appears in messages. Returns 0, or -1 with a sentence in msg. */
static int read_secret_file(const char *opt, const char *path, char *buf, size_t cap, char *msg, size_t msg_cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, msg_cap, "--%s '%s' cannot be read (%s)", opt, path, strerror(errno));
        return -1;
    }
    int ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    size_t n = ok ? strcspn(buf, "\r\n") : 0;
    int filled = ok && n == strlen(buf) && n == cap - 1; /* no line end within cap: longer than we take */
    if (!ok || n == 0 || filled) {
        snprintf(msg, msg_cap, "--%s '%s' must hold the secret on its first line (1 to %zu bytes)", opt, path,
                 cap - 2);
        return -1;
    }
    buf[n] = '\0';
    return 0;
}

/* Parses the options into *a (after tp_sink_config_init and tp_cli_worker_init); returns -1 to go on, else the exit
 * status (0 after --help, 2 after a usage error it printed).
 * Longer than ~120 lines on purpose: a linear option switch and its cross-checks read better whole. */
static int parse_args(int argc, char **argv, sink_cli *a)
{
    enum {
        O_BROKERS = 256, O_TOPIC, O_GROUP, O_WAREHOUSE, O_CREATE, O_TABLE, O_BATCH, O_FLUSH, O_DLQ, O_MAXPACK,
        O_USER, O_PASSWORD, O_TOKEN, O_BQ, O_AGE, O_AHEAD, O_PASSWORD_FILE, O_CA_FILE, O_WRITER_SCHEMA, O_MIN_INSERT,
        O_MIN_INSERT_ROWS, O_LINEAGE, O_SCHEMA_DIR, O_DICT_DIR
    };
    static const struct option longopts[] = {
        {"brokers", required_argument, 0, O_BROKERS},   {"topic", required_argument, 0, O_TOPIC},
        {"group", required_argument, 0, O_GROUP},       {"warehouse", required_argument, 0, O_WAREHOUSE},
        {"create-table", no_argument, 0, O_CREATE},     {"table", required_argument, 0, O_TABLE},
        {"batch-rows", required_argument, 0, O_BATCH},  {"flush-ms", required_argument, 0, O_FLUSH},
        {"min-insert-interval-ms", required_argument, 0, O_MIN_INSERT},
        {"min-insert-interval-rows", required_argument, 0, O_MIN_INSERT_ROWS},
        {"lineage-columns", required_argument, 0, O_LINEAGE},
        {"dlq-topic", required_argument, 0, O_DLQ},     {"max-pack-bytes", required_argument, 0, O_MAXPACK},
        {"dict-dir", required_argument, 0, O_DICT_DIR},
        {"user", required_argument, 0, O_USER},         {"password", required_argument, 0, O_PASSWORD},
        {"token-file", required_argument, 0, O_TOKEN},  {"bigquery-endpoint", required_argument, 0, O_BQ},
        {"max-event-age", required_argument, 0, O_AGE}, {"max-event-ahead", required_argument, 0, O_AHEAD},
        {"password-file", required_argument, 0, O_PASSWORD_FILE}, {"ca-file", required_argument, 0, O_CA_FILE},
        TP_CLI_SCHEMA_LONGOPTS, {"writer-schema", required_argument, 0, O_WRITER_SCHEMA},
        {"schema-dir", required_argument, 0, O_SCHEMA_DIR},
        TP_CLI_WORKER_LONGOPTS,                         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    tp_sink_config *cfg = &a->cfg;
    char msg[512];
    uint64_t v;
    int c, table_given = 0, batch_given = 0;
    int config_rc = tp_cli_config_apply("sink", ":hX:", longopts, &argc, &argv); /* --config FILE: before the flags */
    if (config_rc >= 0)
        return config_rc;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":hX:", longopts, NULL)) != -1) {
        tp_err e = TP_OK;
        if (tp_cli_worker_option(&a->w, c, optarg, &e, msg, sizeof msg)) {
            if (e)
                return tp_cli_usage_error("sink", "%s", msg);
            continue;
        }
        if (tp_cli_schema_option(&a->schema_opts, c, optarg))
            continue;
        switch (c) {
        case O_WRITER_SCHEMA:
            if (a->n_writers == sizeof a->writer_paths / sizeof a->writer_paths[0])
                return tp_cli_usage_error("sink", "more than 16 --writer-schema files");
            a->writer_paths[a->n_writers++] = optarg;
            break;
        case O_SCHEMA_DIR: a->schema_dir = optarg; break;
        case O_BROKERS: cfg->brokers = optarg; break;
        case O_TOPIC: cfg->topic = optarg; break;
        case O_GROUP: cfg->group = optarg; break;
        case O_WAREHOUSE: cfg->warehouse_url = optarg; break;
        case O_CREATE: cfg->warehouse_opts.create_table = 1; break;
        case O_LINEAGE:
            if (strcmp(optarg, "yes") && strcmp(optarg, "no"))
                return tp_cli_usage_error("sink", "--lineage-columns %s: give yes or no", optarg);
            cfg->warehouse_opts.lineage_columns = optarg[0] == 'y' ? TP_WH_LINEAGE_YES : TP_WH_LINEAGE_NO;
            break;
        case O_TABLE: cfg->warehouse_opts.table = optarg; table_given = 1; break;
        case O_DLQ: cfg->dlq_topic = optarg; break;
        case O_USER: cfg->warehouse_opts.user = optarg; break;
        case O_PASSWORD:
            cfg->warehouse_opts.password = optarg;
            a->password_on_command_line = 1;
            break;
        case O_PASSWORD_FILE:
            if (read_secret_file("password-file", optarg, a->password, sizeof a->password, msg, sizeof msg))
                return tp_cli_usage_error("sink", "%s", msg);
            cfg->warehouse_opts.password = a->password;
            a->password_on_command_line = 0;
            break;
        case O_CA_FILE:
            if (access(optarg, R_OK))
                return tp_cli_usage_error("sink", "--ca-file '%s' cannot be read (%s)", optarg, strerror(errno));
            cfg->warehouse_opts.ca_file = optarg;
            break;
        case O_MIN_INSERT:
            if (!(e = tp_cli_parse_ms("min-insert-interval-ms", optarg, 0, 86400000, &v, msg, sizeof msg)))
                cfg->min_insert_interval_ms = (long)v;
            break;
        case O_MIN_INSERT_ROWS:
            if (!(e = tp_cli_parse_u64("min-insert-interval-rows", optarg, 1, 100000000, &v, msg, sizeof msg)))
                cfg->min_insert_interval_rows = (size_t)v;
            break;
        case O_AGE:
        case O_AHEAD:
            if (!(e = tp_cli_parse_u64(c == O_AGE ? "max-event-age" : "max-event-ahead", optarg, 0, 3650000, &v, msg,
                                       sizeof msg)))
                *(c == O_AGE ? &cfg->max_event_age_ms : &cfg->max_event_ahead_ms) = v ? (int64_t)v * 86400000 : -1;
            break;
        case O_TOKEN: cfg->warehouse_opts.token_file = optarg; break;
        case O_BQ: cfg->warehouse_opts.endpoint = optarg; break;
        case O_BATCH:
            if (!(e = tp_cli_parse_u64("batch-rows", optarg, 1, 100000000, &v, msg, sizeof msg)))
                cfg->batch_rows = (size_t)v, batch_given = 1;
            break;
        case O_FLUSH:
            if (!(e = tp_cli_parse_ms("flush-ms", optarg, 1, 86400000, &v, msg, sizeof msg)))
                cfg->flush_ms = (long)v;
            break;
        case O_MAXPACK:
            if (!(e = tp_cli_parse_size("max-pack-bytes", optarg, 64, (uint64_t)1 << 32, &v, msg, sizeof msg)))
                cfg->max_pack_bytes = (size_t)v;
            break;
        case O_DICT_DIR: a->dict_dir = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':': return tp_cli_usage_error("sink", "option '%s' needs a value", argv[optind - 1]);
        default: return tp_cli_usage_error("sink", "unknown option '%s'", argv[optind - 1]);
        }
        if (e)
            return tp_cli_usage_error("sink", "%s", msg);
    }
    if (optind < argc)
        return tp_cli_usage_error("sink", "unexpected argument '%s'", argv[optind]);
    if (!cfg->brokers || !cfg->topic || !cfg->group || !cfg->warehouse_url)
        return tp_cli_usage_error("sink", "--brokers, --topic, --group and --warehouse are required");
    cfg->kafka_props = a->w.kafka_props;
    cfg->n_kafka_props = a->w.n_kafka_props;
    if (a->n_writers && !a->schema_opts.path)
        return tp_cli_usage_error("sink", "--writer-schema needs --schema");
    if (a->schema_dir && !a->schema_opts.path)
        return tp_cli_usage_error("sink", "--schema-dir needs --schema");
    if (a->schema_opts.path || a->schema_opts.message) {
        int rc = tp_cli_schema_load("sink", &a->schema_opts, &a->schema);
        if (rc)
            return rc;
        for (size_t i = 0; i < a->n_writers; i++) {
            tp_cli_schema wo = {.path = a->writer_paths[i], .message = a->schema_opts.message};
            if ((rc = tp_cli_schema_load("sink", &wo, &a->writers[i])))
                return rc;
        }
        cfg->schema = a->schema;
        cfg->writer_schemas = (const tp_schema *const *)a->writers;
        cfg->n_writer_schemas = a->n_writers;
        cfg->warehouse_opts.schema = a->schema;
        if (!batch_given) /* its cells are allocated up front */
            cfg->batch_rows = TP_SINK_DEFAULT_SCHEMA_BATCH_ROWS;
        if (!table_given) {
            /* fleet.ev.v1.EvTelemetry -> ev_telemetry */
            const char *m = strrchr(a->schema_opts.message, '.');
            m = m ? m + 1 : a->schema_opts.message;
            size_t n = 0;
            for (size_t i = 0; m[i] && n + 2 < sizeof a->table; i++) {
                char ch = m[i];
                if (ch >= 'A' && ch <= 'Z') {
                    if (i > 0)
                        a->table[n++] = '_';
                    ch = (char)(ch - 'A' + 'a');
                }
                a->table[n++] = ch;
            }
            a->table[n] = 0;
            cfg->warehouse_opts.table = a->table;
        }
    }
    return -1;
}

/* Creates the sink (and the metrics registry and endpoint when asked). Returns 0, else the exit status. */
static int create(sink_cli *a, tp_sink **s, tp_metrics **metrics, tp_http_server **http)
{
    char err[1024];
    tp_err e;
    if (a->dict_dir) {
        if ((e = tp_dict_set_new(&a->dicts)) || (e = tp_dict_set_load_dir(a->dicts, a->dict_dir, err, sizeof err))) {
            fprintf(stderr, "telepack sink: %s\n", e == TP_ERR_NOMEM ? "out of memory" : err);
            return e == TP_ERR_NOMEM ? 1 : 2;
        }
        a->cfg.dicts = a->dicts;
        tp_log(TP_LOG_INFO, "sink", "%zu zstd dictionaries loaded from %s", tp_dict_set_count(a->dicts), a->dict_dir);
    }
    if (a->w.metrics_listen) {
        if ((e = tp_metrics_new(metrics))) {
            fprintf(stderr, "telepack sink: %s\n", tp_strerror(e));
            return 1;
        }
        a->cfg.metrics = *metrics;
    }
    e = tp_sink_new(&a->cfg, s, err, sizeof err);
    if (e) {
        fprintf(stderr, "telepack sink: %s\n", err);
        return e == TP_ERR_INVALID_ARG || e == TP_ERR_PARSE ? 2 : 1;
    }
    if (a->w.metrics_listen) {
        tp_http_server_opts ho = {a->w.metrics_listen, *metrics, ready, *s};
        if ((e = tp_http_server_start(&ho, http, err, sizeof err))) {
            fprintf(stderr, "telepack sink: %s\n", err);
            return 1;
        }
        tp_log(TP_LOG_INFO, "sink", "serving /metrics, /healthz, /readyz on port %u", tp_http_server_port(*http));
    }
    return 0;
}

/* Runs the sink until a signal or a failure; logs the summary and returns the exit status. */
static int run(tp_sink *s, int tty)
{
    running_sink = s;
    tp_cli_signals_install(on_signal, 0);
    double t0 = tp_mono_s();
    progress_start_ms = tp_mono_ms();
    tp_err e = tp_sink_run(s);
    double secs = tp_mono_s() - t0;
    tp_cli_signals_reset();
    running_sink = NULL;
    if (tty)
        fputc('\n', stderr);
    tp_sink_stats st;
    tp_sink_stats_get(s, &st);
    tp_log(TP_LOG_INFO, "sink",
           "summary: %" PRIu64 " rows in %" PRIu64 " packs loaded in %" PRIu64 " loads (%" PRIu64 " on catching "
           "up) over %.1f s (%.0f rows/s), %" PRIu64 " packs dead-lettered, %" PRIu64 " load retries, %" PRIu64 " rows left for re-reading, "
           "%" PRIu64 " bytes consumed",
           st.rows_loaded, st.packs_loaded, st.loads, st.loads_caught_up, secs, secs > 0 ? (double)st.rows_loaded / secs : 0.0,
           st.packs_dlq, st.load_retries, st.pending_rows, st.bytes_consumed);
    if (e) {
        fprintf(stderr, "telepack sink: %s\n", tp_sink_last_error(s));
        return 1;
    }
    return 0;
}

int tp_cmd_sink(int argc, char **argv)
{
    sink_cli a = {0};
    tp_sink_config_init(&a.cfg);
    a.cfg.warehouse_opts.user = getenv("TP_CLICKHOUSE_USER");
    a.cfg.warehouse_opts.password = getenv("TP_CLICKHOUSE_PASSWORD");
    if (tp_cli_worker_init(&a.w, argc)) {
        fprintf(stderr, "telepack sink: out of memory\n");
        return 1;
    }
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) {
        tp_cli_worker_free(&a.w);
        tp_schema_free(a.schema);
        for (size_t i = 0; i < a.n_writers; i++)
            tp_schema_free(a.writers[i]);
        tp_schema_dir_free(a.dir);
        return rc;
    }
    tp_cli_worker_apply_log(&a.w);
    if (a.password_on_command_line)
        tp_log(TP_LOG_WARN, "sink", "the ClickHouse password is on the command line, where ps shows it; use "
                                    "--password-file or $TP_CLICKHOUSE_PASSWORD");
    if (a.schema_dir) { /* read after the log settings apply: it logs each version it finds */
        char err[512];
        if (tp_schema_dir_open(a.schema_dir, tp_schema_message_name(a.schema), 1000, &a.dir, err, sizeof err)) {
            rc = tp_cli_usage_error("sink", "--schema-dir: %s", err);
        } else {
            tp_log(TP_LOG_INFO, "sink", "schema dir %s: %zu version(s) of %s found", a.schema_dir,
                   tp_schema_dir_count(a.dir), tp_schema_message_name(a.schema));
            a.cfg.writer_dir = a.dir;
        }
    }
    int tty = isatty(STDERR_FILENO) && a.w.log_format == TP_LOG_TEXT;
    if (tty) {
        a.cfg.progress = progress;
        a.cfg.progress_ms = 2000;
    }
    tp_sink *s = NULL;
    tp_metrics *metrics = NULL;
    tp_http_server *http = NULL;
    if (rc < 0)
        rc = create(&a, &s, &metrics, &http);
    if (!rc)
        rc = run(s, tty);
    tp_http_server_stop(http);
    tp_sink_free(s);
    tp_metrics_free(metrics);
    tp_dict_set_free(a.dicts);
    tp_cli_worker_free(&a.w);
    tp_schema_free(a.schema);
    for (size_t i = 0; i < a.n_writers; i++)
        tp_schema_free(a.writers[i]);
    tp_schema_dir_free(a.dir);
    return rc;
}
