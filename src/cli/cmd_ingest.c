/* `telepack ingest`: accept gateway records (TCP, or replay a file/stdin), batch per partition or vehicle, compress
 * into packs, publish them to Kafka, ack the gateways once Kafka has them. */
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
#include "cli/pipeline_config.h"
#include "cli/schema_cli.h"
#include "common/clock.h"
#include "ingest/auth_tokens.h"
#include "ingest/gateway_client.h"
#include "ingest/gateway_tls.h"
#include "ingest/http_ingest.h"
#include "ops/http_server.h"
#include "ingest/ingest.h"
#include "common/log.h"
#include "telepack/dict.h"
#include "telepack/record_json.h"
#include "telepack/delimited.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t g_signals;
static volatile sig_atomic_t g_hup; /* SIGHUP: reload --auth-tokens and the TLS certificates */
static tp_ingest *volatile g_ing;

static void on_hup(int sig)
{
    (void)sig;
    g_hup = 1;
}

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
            "  --listen HOST:PORT      gateway listen address (default 127.0.0.1:7070 unless --from or\n"
            "                          --http-listen is given); off loopback it needs --tls-cert or --insecure\n"
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
            "  --headers compact|full  pack metadata as one Kafka header 'tp' (default, ~8 bytes) or as the eight\n"
            "                          tp-* headers (~130 bytes) that sinks older than pbpack v3 need\n"
            "  --batch-records N       flush a pack at N records (default 10000 per partition, 200 per vehicle)\n"
            "  --batch-bytes N         flush a pack before it exceeds N wire bytes (default 1M per partition,\n"
            "                          256K per vehicle)\n"
            "  --linger-ms N           flush a batch N ms after its first record (default 500). The floor of latency\n"
            "                          for records that arrive evenly; shorter costs bytes: a live 1 Hz fleet of\n"
            "                          2000 vehicles measured p99 1.26 s / 0.78 s / 0.55 s to visible in ClickHouse\n"
            "                          and 10.7 / 11.8 / 14.0 B/record in Kafka's log at 1000 / 500 / 250 ms\n"
            "                          (docs/BENCHMARKS.md)\n"
            "  --gateway-flush-ms N    pack a gateway's records now instead of at linger once it has sent nothing\n"
            "                          for N ms with records unacked (the end of an upload or a replay: batches\n"
            "                          holding only its records), or at once when its unacked bytes pass half its\n"
            "                          window (every batch holding its records: it waits for acks); default 20,\n"
            "                          0 = off (linger and size only). docs/INGEST.md\n"
            "  --max-buffered-bytes N  cap on record bytes not yet in Kafka; above it reading pauses (default 256M);\n"
            "                          the batcher's memory stays below 4.25x it (docs/INGEST.md)\n"
            "  --max-open-vehicles N   vehicles with an open batch; a new one beyond it flushes the oldest open\n"
            "                          batch (default 100000)\n"
            "  --idle-timeout S        close a gateway connection silent for S seconds (default 60; 0 = never);\n"
            "                          v2 gateways send heartbeats, v1 ones are closed only once all is acked\n"
            "  --max-conns-per-ip N    gateway connections from one source address (default 64; 0 = no cap)\n"
            "  --threads N             compression threads (default: number of CPUs)\n"
            "  --level N               zstd level (default 3)\n"
            "  --dict FILE             compress every pack with this zstd dictionary (`telepack dict train`; one\n"
            "                          file, 1 MiB at most); packs name its id, so give it to the sinks first\n"
            "                          (sink --dict-dir), then here (OPERATIONS.md). Default: none\n"
            "  --layout L              columns (default: pbpack v2, ~4x smaller), coded (columns whose values go\n"
            "                          through an adaptive range coder: 10-25 %% fewer bytes, ~3x the CPU to\n"
            "                          write, 6-10x to read; docs/FORMAT_V2.md) or rows (pbpack v1: standard\n"
            "                          delimited protobuf, for consumers that only speak protobuf); docs/FORMAT.md\n"
            TP_CLI_WORKER_HELP
            "Security (docs/GATEWAY.md, docs/HTTP_INGEST.md):\n"
            "  --tls-cert FILE         PEM certificate (chain): the gateway listener speaks TLS only (with\n"
            "                          --tls-key); also the default of --http-tls-cert. SIGHUP reloads it\n"
            "  --tls-key FILE          PEM private key of --tls-cert (also the default of --http-tls-key)\n"
            "  --tls-client-ca FILE    mutual TLS on the gateway listener: gateways must present a certificate\n"
            "                          signed by this CA (PEM); its subject CN names the gateway in logs\n"
            "  --auth-tokens FILE      tokens for the gateway listener (in the v2 hello; v1 is then refused) and\n"
            "                          --http-listen ('Authorization: Bearer TOKEN'): one token a line, optionally\n"
            "                          with the vehicle ids it may send (TOKEN 1000-1999,2500); records of other\n"
            "                          vehicles are rejected. SIGHUP reloads it\n"
            "  --insecure              allow plaintext (no TLS) on a --listen or --http-listen address other than\n"
            "                          loopback, e.g. behind a TLS-terminating proxy or on a private network\n"
            "HTTP ingest (docs/HTTP_INGEST.md):\n"
            "  --http-listen H:P       serve POST /v1/records (NDJSON or delimited protobuf; answered once the\n"
            "                          records are in Kafka) on HOST:PORT; without --listen, no TCP gateway listener\n"
            "  --http-tls-cert FILE    PEM certificate (chain) for HTTPS on --http-listen, with --http-tls-key\n"
            "                          (default: --tls-cert and --tls-key, when given)\n"
            "  --http-tls-key FILE     PEM private key for it\n"
            "  --http-max-body N       largest request body (default 4M; larger: 413)\n"
            "  --http-timeout-ms N     longest a request waits for Kafka before 503 (default 30000)\n"
            "  --schema FILE ...       replay records of a message type of your own (ingest --schema x --help)\n"
            "  -h, --help              this text\n\n"
            "Sizes take a K, M or G suffix (powers of 1024).\n");
}

typedef struct feeder {
    const char *path;
    int delimited;
    size_t max_record;
    size_t window;           /* unacked bytes the replay may have in flight */
    int fd;
    volatile sig_atomic_t stop;
    atomic_int done;
    int status;              /* 0 ok, 1 runtime failure, 2 bad input */
    uint64_t records;
    unsigned json_flags;     /* TP_RECORD_JSON_* for NDJSON */
} feeder;

static tp_err feed_delimited(feeder *f, FILE *in, tp_gateway_client *c)
{
    tp_delimited_reader_opts ro;
    tp_delimited_reader_opts_init(&ro);
    ro.file = in;
    ro.max_message_bytes = f->max_record;
    tp_delimited_reader *rd;
    tp_err e = tp_delimited_reader_new(&ro, &rd);
    if (e)
        return e;
    const uint8_t *msg;
    size_t len;
    while ((e = tp_delimited_reader_next(rd, &msg, &len)) == TP_OK) {
        e = tp_gateway_client_send_encoded(c, msg, len);
        if (e) {
            f->status = f->stop ? 0 : 1;
            break;
        }
        f->records++;
    }
    if (e == TP_ERR_IO) {
        tp_log(TP_LOG_ERROR, "ingest", "%s: %s", f->path, tp_delimited_reader_error(rd));
        f->status = 1;
    } else if (e == TP_ERR_TRUNCATED) {
        tp_log(TP_LOG_ERROR, "ingest", "%s: %s (truncated file?)", f->path, tp_delimited_reader_error(rd));
        f->status = 2;
    } else if (e != TP_ERR_END && f->status == 0 && tp_delimited_reader_error(rd)[0]) {
        tp_log(TP_LOG_ERROR, "ingest", "%s: %s; is this really --input-format delimited?", f->path,
               tp_delimited_reader_error(rd));
        f->status = 2;
    }
    tp_delimited_reader_free(rd);
    return e == TP_ERR_END ? TP_OK : e;
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
    co.protocol = 1; /* a local replay: no handshake, and records are taken as they are (no event-time check) */
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

/* What the command line asked for. */
typedef struct ingest_cli {
    tp_ingest_opts o;
    tp_cli_worker w;
    const char *from;
    int delimited;
    unsigned json_flags; /* TP_RECORD_JSON_* for --from NDJSON */
    tp_http_ingest_opts hio;
    const char *tls_cert, *tls_key, *tls_client_ca; /* the gateway listener's TLS */
    int insecure;        /* plaintext off loopback allowed, both listeners */
    int pack_by;                         /* --pack-by: a tp_pack_by, or -1 when not given */
    int64_t batch_records, batch_bytes;  /* --batch-records, --batch-bytes, or -1: the grouping's default */
    const char *dict_path;               /* --dict */
    tp_dict *dict;                       /* loaded from it at the writers' level, shared by them */
} ingest_cli;

/* Parses the options into *a (after tp_ingest_opts_init and tp_cli_worker_init); returns -1 to go on, else the exit
 * status (0 after --help, 2 after a usage error it printed).
 * Longer than ~120 lines on purpose: a linear option switch and its cross-checks read better whole. */
static int parse_args(int argc, char **argv, ingest_cli *a)
{
    enum { O_BROKERS = 256, O_TOPIC, O_LISTEN, O_FROM, O_FORMAT, O_BREC, O_BBYTES, O_LINGER, O_MAXBUF, O_THREADS,
           O_LEVEL, O_LAYOUT, O_IGNORE_UNKNOWN, O_MAXOPEN, O_HTTP, O_HTTP_CERT, O_HTTP_KEY, O_INSECURE, O_TOKENS,
           O_HTTP_BODY, O_HTTP_TIMEOUT, O_IDLE, O_PERIP, O_TLS_CERT, O_TLS_KEY, O_TLS_CA, O_PACKBY, O_HEADERS,
           O_GWFLUSH, O_DICT };
    static const struct option longopts[] = {
        {"brokers", required_argument, 0, O_BROKERS}, {"topic", required_argument, 0, O_TOPIC},
        {"listen", required_argument, 0, O_LISTEN}, {"from", required_argument, 0, O_FROM},
        {"input-format", required_argument, 0, O_FORMAT}, {"batch-records", required_argument, 0, O_BREC},
        {"batch-bytes", required_argument, 0, O_BBYTES}, {"linger-ms", required_argument, 0, O_LINGER},
        {"max-buffered-bytes", required_argument, 0, O_MAXBUF}, {"threads", required_argument, 0, O_THREADS},
        {"level", required_argument, 0, O_LEVEL}, {"layout", required_argument, 0, O_LAYOUT},
        {"ignore-unknown-fields", no_argument, 0, O_IGNORE_UNKNOWN},
        {"max-open-vehicles", required_argument, 0, O_MAXOPEN},
        {"http-listen", required_argument, 0, O_HTTP}, {"http-tls-cert", required_argument, 0, O_HTTP_CERT},
        {"http-tls-key", required_argument, 0, O_HTTP_KEY}, {"insecure", no_argument, 0, O_INSECURE},
        {"auth-tokens", required_argument, 0, O_TOKENS}, {"http-max-body", required_argument, 0, O_HTTP_BODY},
        {"http-timeout-ms", required_argument, 0, O_HTTP_TIMEOUT},
        {"idle-timeout", required_argument, 0, O_IDLE}, {"max-conns-per-ip", required_argument, 0, O_PERIP},
        {"tls-cert", required_argument, 0, O_TLS_CERT}, {"tls-key", required_argument, 0, O_TLS_KEY},
        {"tls-client-ca", required_argument, 0, O_TLS_CA},
        {"pack-by", required_argument, 0, O_PACKBY}, {"headers", required_argument, 0, O_HEADERS},
        {"gateway-flush-ms", required_argument, 0, O_GWFLUSH}, {"dict", required_argument, 0, O_DICT},
        TP_CLI_WORKER_LONGOPTS, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    static const char *const format_words[] = {"ndjson", "delimited", NULL};
    static const char *const pack_by_words[] = {"partition", "vehicle", NULL}; /* index == tp_pack_by */
    static const char *const headers_words[] = {"full", "compact", NULL};     /* index == compact_headers */
    tp_ingest_opts *o = &a->o;
    char msg[512];
    uint64_t v;
    int c;
    int config_rc = tp_cli_config_apply("ingest", ":hX:", longopts, &argc, &argv); /* --config FILE: before the flags */
    if (config_rc >= 0)
        return config_rc;
    a->pack_by = -1;
    a->batch_records = a->batch_bytes = -1;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":hX:", longopts, NULL)) != -1) {
        tp_err e = TP_OK;
        if (tp_cli_worker_option(&a->w, c, optarg, &e, msg, sizeof msg)) {
            if (e)
                return tp_cli_usage_error("ingest", "%s", msg);
            continue;
        }
        switch (c) {
        case 'h': usage(stdout); return 0;
        case O_BROKERS: o->brokers = optarg; break;
        case O_TOPIC: o->topic = optarg; break;
        case O_LISTEN: o->listen = optarg; break;
        case O_FROM: a->from = optarg; break;
        case O_FORMAT: e = tp_cli_parse_choice("input-format", optarg, format_words, &a->delimited, msg, sizeof msg); break;
        case O_BREC:
            if (!(e = tp_cli_parse_u64("batch-records", optarg, 1, 1000000, &v, msg, sizeof msg)))
                a->batch_records = (int64_t)v;
            break;
        case O_BBYTES:
            if (!(e = tp_cli_parse_size("batch-bytes", optarg, 64, 64ull << 20, &v, msg, sizeof msg)))
                a->batch_bytes = (int64_t)v;
            break;
        case O_PACKBY: e = tp_cli_parse_choice("pack-by", optarg, pack_by_words, &a->pack_by, msg, sizeof msg); break;
        case O_HEADERS:
            e = tp_cli_parse_choice("headers", optarg, headers_words, &o->compact_headers, msg, sizeof msg);
            break;
        case O_LINGER:
            if (!(e = tp_cli_parse_ms("linger-ms", optarg, 0, 3600000, &v, msg, sizeof msg)))
                o->batch.linger_ms = (int64_t)v;
            break;
        case O_MAXBUF:
            if (!(e = tp_cli_parse_size("max-buffered-bytes", optarg, 1024, 1ull << 40, &v, msg, sizeof msg)))
                o->batch.max_buffered_bytes = (size_t)v;
            break;
        case O_IGNORE_UNKNOWN: a->json_flags = TP_RECORD_JSON_IGNORE_UNKNOWN; break;
        case O_GWFLUSH:
            if (!(e = tp_cli_parse_u64("gateway-flush-ms", optarg, 0, 60000, &v, msg, sizeof msg)))
                o->gateway_flush_ms = (int)v;
            break;
        case O_IDLE:
            if (!(e = tp_cli_parse_u64("idle-timeout", optarg, 0, 86400, &v, msg, sizeof msg)))
                o->idle_timeout_ms = (int)v * 1000;
            break;
        case O_PERIP:
            if (!(e = tp_cli_parse_u64("max-conns-per-ip", optarg, 0, 1000000, &v, msg, sizeof msg)))
                o->max_conns_per_ip = (uint32_t)v;
            break;
        case O_HTTP: a->hio.listen = optarg; break;
        case O_HTTP_CERT: a->hio.tls_cert = optarg; break;
        case O_HTTP_KEY: a->hio.tls_key = optarg; break;
        case O_INSECURE: a->insecure = 1; break;
        case O_TLS_CERT: a->tls_cert = optarg; break;
        case O_TLS_KEY: a->tls_key = optarg; break;
        case O_TLS_CA: a->tls_client_ca = optarg; break;
        case O_TOKENS: a->hio.tokens_path = optarg; break;
        case O_HTTP_BODY:
            if (!(e = tp_cli_parse_size("http-max-body", optarg, 1024, 1ull << 30, &v, msg, sizeof msg)))
                a->hio.max_body_bytes = (size_t)v;
            break;
        case O_HTTP_TIMEOUT:
            if (!(e = tp_cli_parse_ms("http-timeout-ms", optarg, 100, 3600000, &v, msg, sizeof msg)))
                a->hio.timeout_ms = (int)v;
            break;
        case O_MAXOPEN:
            if (!(e = tp_cli_parse_u64("max-open-vehicles", optarg, 1, 100000000, &v, msg, sizeof msg)))
                o->batch.max_open = (uint32_t)v;
            break;
        case O_THREADS:
            if (!(e = tp_cli_parse_u64("threads", optarg, 1, 256, &v, msg, sizeof msg)))
                o->threads = (int)v;
            break;
        case O_LEVEL:
            if (!(e = tp_cli_parse_u64("level", optarg, 1, 22, &v, msg, sizeof msg)))
                o->level = (int)v;
            break;
        case O_LAYOUT:
            e = tp_cli_parse_layout(optarg, &o->layout, &o->coded_columns, msg, sizeof msg);
            break;
        case O_DICT: a->dict_path = optarg; break;
        case ':': return tp_cli_usage_error("ingest", "option '%s' needs a value", argv[optind - 1]);
        default: return tp_cli_usage_error("ingest", "unknown option '%s'", argv[optind - 1]);
        }
        if (e)
            return tp_cli_usage_error("ingest", "%s", msg);
    }
    if (optind < argc)
        return tp_cli_usage_error("ingest", "unexpected argument '%s'", argv[optind]);
    if (!o->topic)
        return tp_cli_usage_error("ingest", "--topic is required");
    if (a->pack_by == TP_PACK_BY_PARTITION && o->layout == TP_LAYOUT_ROWS)
        return tp_cli_usage_error("ingest", "--pack-by partition needs --layout columns (a rows pack holds one "
                                            "vehicle); drop one of them");
    if (a->pack_by < 0) /* rows packs hold one vehicle: --layout rows implies --pack-by vehicle */
        a->pack_by = o->layout == TP_LAYOUT_ROWS ? TP_PACK_BY_VEHICLE : TP_PACK_BY_PARTITION;
    tp_ingest_opts_pack_by(o, (tp_pack_by)a->pack_by);
    if (a->batch_records >= 0)
        o->batch.max_records = (uint32_t)a->batch_records;
    if (a->batch_bytes >= 0)
        o->batch.max_bytes = (size_t)a->batch_bytes;
    int has_bootstrap = 0;
    for (size_t k = 0; k < a->w.n_kafka_props; k++) {
        const char *kv = a->w.kafka_props[k];
        has_bootstrap |= !strncmp(kv, "bootstrap.servers=", 18) || !strncmp(kv, "metadata.broker.list=", 21) ||
                         !strncmp(kv, "test.mock.num.brokers=", 22);
    }
    if (!o->brokers && !has_bootstrap)
        return tp_cli_usage_error("ingest", "--brokers is required (e.g. --brokers 127.0.0.1:9092)");
    tp_http_ingest_opts *h = &a->hio;
    if ((h->tls_cert || h->tls_key) && !h->listen)
        return tp_cli_usage_error("ingest", "--http-tls-cert and --http-tls-key apply to --http-listen; give it too");
    if (!o->listen && !a->from && !h->listen)
        o->listen = "127.0.0.1:7070";
    if ((a->tls_cert || a->tls_key || a->tls_client_ca || h->tokens_path || a->insecure) && !o->listen && !h->listen)
        return tp_cli_usage_error("ingest", "--tls-cert, --tls-key, --tls-client-ca, --auth-tokens and --insecure "
                                            "apply to --listen and --http-listen; give one of them");
    if (!a->tls_cert != !a->tls_key)
        return tp_cli_usage_error("ingest", "--tls-cert and --tls-key go together; give both files or neither");
    if (a->tls_client_ca && !a->tls_cert)
        return tp_cli_usage_error("ingest", "--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key too");
    if (a->tls_client_ca && !o->listen)
        return tp_cli_usage_error("ingest", "--tls-client-ca applies to the gateway listener (--listen); give it too");
    if (o->listen) {
        char host[256], port[16];
        if (tp_gateway_parse_hostport(o->listen, host, sizeof host, port, sizeof port) != TP_OK)
            return tp_cli_usage_error("ingest", "--listen '%s' is not HOST:PORT (IPv6 as [ADDR]:PORT, ':PORT' for "
                                                "all interfaces)", o->listen);
        if (!a->tls_cert && !a->insecure && !tp_http_ingest_is_loopback(host))
            return tp_cli_usage_error(
                "ingest",
                "refusing plaintext gateways on %s, which is not a loopback address: tokens and records would cross "
                "the network in clear; give --tls-cert FILE --tls-key FILE, or --insecure (a TLS proxy in front, a "
                "private network)", o->listen);
    }
    if (h->listen && !h->tls_cert && !h->tls_key && a->tls_cert) { /* one certificate for both listeners */
        h->tls_cert = a->tls_cert;
        h->tls_key = a->tls_key;
    }
    h->insecure = a->insecure;
    if (h->listen && tp_http_ingest_check_opts(h, msg, sizeof msg))
        return tp_cli_usage_error("ingest", "%s", msg);
    o->kafka_conf = a->w.kafka_props;
    o->nkafka_conf = a->w.n_kafka_props;
    return -1;
}

/* The running command: the worker, the operations endpoint and the replay of --from. */
typedef struct ingest_run {
    ingest_cli *a;
    tp_ingest *ing;
    tp_metrics *metrics;
    tp_ingest_metrics im;
    tp_http_server *http;
    tp_http_ingest *hing; /* POST /v1/records, with --http-listen */
    tp_auth_store *tokens; /* --auth-tokens, one for both listeners */
    tp_gateway_auth gw_auth;
    tp_tls_server *tls;    /* --tls-cert on the gateway listener */
    feeder f;
    pthread_t feeder_thread;
    int replaying; /* f.fd is open, handed to the worker */
    int feeding;   /* the feeder thread runs */
} ingest_run;

/* The metrics registry and the worker; the socket pair of the replay. Returns 0, else the exit status. */
static int create_worker(ingest_run *r)
{
    char err[512] = "";
    ingest_cli *a = r->a;
    if (a->w.metrics_listen) {
        if (tp_metrics_new(&r->metrics) || tp_ingest_metrics_register(r->metrics, &r->im)) {
            fprintf(stderr, "telepack ingest: cannot set up the metrics registry\n");
            return 1;
        }
        a->o.metrics = &r->im;
        a->o.kafka_metrics = r->metrics; /* the producer's librdkafka statistics, and readiness from them */
    }
    tp_err e;
    if (a->hio.tokens_path) {
        if ((e = tp_auth_store_load(a->hio.tokens_path, &r->tokens, err, sizeof err))) {
            fprintf(stderr, "telepack ingest: %s\n", err);
            return e == TP_ERR_PARSE ? 2 : 1;
        }
        a->hio.tokens = r->tokens;
        if (a->o.listen) {
            tp_auth_store_gateway_auth(r->tokens, &r->gw_auth);
            a->o.auth = &r->gw_auth;
        }
    }
    if (a->tls_cert && a->o.listen) {
        if ((e = tp_tls_server_new(a->tls_cert, a->tls_key, a->tls_client_ca, &r->tls, err, sizeof err))) {
            fprintf(stderr, "telepack ingest: %s\n", err);
            return e == TP_ERR_NOMEM ? 1 : 2;
        }
        a->o.tls = r->tls;
    }
    if (r->tokens || r->tls) { /* SIGHUP reloads them */
        struct sigaction sh = {0};
        sh.sa_handler = on_hup;
        sigemptyset(&sh.sa_mask);
        sigaction(SIGHUP, &sh, NULL);
    }
    e = tp_ingest_new(&a->o, &r->ing, err, sizeof err);
    if (e) {
        fprintf(stderr, "telepack ingest: %s\n", err[0] ? err : tp_strerror(e));
        return e == TP_ERR_INVALID_ARG ? 2 : 1;
    }
    if (!a->from)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        fprintf(stderr, "telepack ingest: socketpair failed: %s\n", strerror(errno));
        return 1;
    }
    r->f.path = a->from;
    r->f.delimited = a->delimited;
    r->f.json_flags = a->json_flags;
    r->f.max_record = a->o.max_record_bytes;
    /* The replay acts as one gateway holding every vehicle. With a gateway's usual 4 MiB window it would stall
     * long before batches fill (measured: ~45 records per vehicle for 2,000 vehicles), and packs would leave
     * only on the linger timer. A quarter of the memory cap, within the window bounds, lets batches fill. */
    r->f.window = tp_gateway_window(a->o.batch.max_buffered_bytes / 4);
    r->f.fd = sv[1];
    r->replaying = 1;
    tp_ingest_add_fd(r->ing, sv[0]);
    return 0;
}

/* POST /v1/records (--http-listen), once the worker runs; SIGHUP reloads its token file. Returns 0, else the exit
 * status. */
static int start_http_ingest(ingest_run *r)
{
    tp_http_ingest_opts *h = &r->a->hio;
    if (!h->listen)
        return 0;
    char err[512] = "";
    h->max_buffered_bytes = r->a->o.batch.max_buffered_bytes;
    h->max_record_bytes = r->a->o.max_record_bytes;
    h->metrics = r->metrics;
    tp_err e = tp_http_ingest_start(h, r->ing, &r->hing, err, sizeof err);
    if (e) {
        fprintf(stderr, "telepack ingest: %s\n", err);
        return e == TP_ERR_INVALID_ARG || e == TP_ERR_PARSE ? 2 : 1;
    }
    tp_log(TP_LOG_INFO, "ingest", "serving POST /v1/records on %s (port %u, %s%s)", h->listen,
           tp_http_ingest_port(r->hing), h->tls_cert ? "https" : "http",
           h->tokens_path ? ", bearer tokens" : ", no authentication");
    return 0;
}

/* SIGHUP: reload the token file (both listeners) and the gateway listener's certificates, keeping the old ones
 * when a new file is bad. Connections and requests already authenticated carry on with what they had. */
static void reload_tokens(ingest_run *r)
{
    g_hup = 0;
    char herr[512];
    if (r->tokens) {
        if (tp_auth_store_reload(r->tokens, herr, sizeof herr) == TP_OK)
            tp_log(TP_LOG_INFO, "ingest", "SIGHUP: reloaded the token file %s", r->a->hio.tokens_path);
        else
            tp_log(TP_LOG_ERROR, "ingest", "SIGHUP: keeping the old tokens: %s", herr);
    }
    if (r->tls) {
        if (tp_tls_server_reload(r->tls, herr, sizeof herr) == TP_OK)
            tp_log(TP_LOG_INFO, "ingest", "SIGHUP: reloaded the TLS certificate %s (new connections use it)",
                   r->a->tls_cert);
        else
            tp_log(TP_LOG_ERROR, "ingest", "SIGHUP: keeping the old TLS certificate: %s", herr);
    }
}

/* The operations endpoint, the worker's threads and the feeder. Returns 0, else the exit status. */
static int start(ingest_run *r)
{
    char err[512] = "";
    const char *listen = r->a->w.metrics_listen;
    if (listen) {
        tp_http_server_opts ho = {listen, r->metrics, ingest_ready, r->ing};
        tp_err e = tp_http_server_start(&ho, &r->http, err, sizeof err);
        if (e) {
            fprintf(stderr, "telepack ingest: %s\n", err);
            return e == TP_ERR_PARSE ? 2 : 1;
        }
        tp_log(TP_LOG_INFO, "ingest", "serving /metrics, /healthz, /readyz on %s (port %u)", listen,
               tp_http_server_port(r->http));
    }
    g_ing = r->ing;
    tp_err e = tp_ingest_start(r->ing);
    if (e) {
        g_ing = NULL;
        fprintf(stderr, "telepack ingest: cannot start: %s\n", tp_strerror(e));
        return 1;
    }
    if (r->replaying) {
        if (pthread_create(&r->feeder_thread, NULL, feeder_main, &r->f) == 0)
            r->feeding = 1;
        else
            close(r->f.fd);
        r->replaying = 0; /* the feeder owns the fd now */
    }
    if (r->a->o.listen)
        tp_log(TP_LOG_INFO, "ingest", "listening for gateways on %s (port %d), %s%s, publishing to topic %s",
               r->a->o.listen, tp_ingest_port(r->ing),
               r->tls ? (r->a->tls_client_ca ? "TLS with client certificates" : "TLS") : "plaintext",
               r->tokens ? ", tokens required" : "", r->a->o.topic);
    for (size_t i = 0; i < r->a->w.n_kafka_props; i++) { /* tests reach librdkafka's in-process cluster so */
        if (!strncmp(r->a->w.kafka_props[i], "test.mock.num.brokers=", 22)) {
            rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(tp_ingest_kafka_handle(r->ing));
            if (mc)
                tp_log(TP_LOG_INFO, "ingest", "mock cluster bootstrap servers: %s",
                       rd_kafka_mock_cluster_bootstraps(mc));
        }
    }
    return start_http_ingest(r);
}

/* One progress line on a terminal: rates since the last line, totals, memory held. */
static void progress_line(const tp_ingest_stats *st, const tp_ingest_stats *prev, double dt)
{
    char a[16], b[16], bi[16], bo[16], bb[16];
    double ratio = st->pack_bytes_out ? (double)st->records_out / (double)st->records_in * (double)st->bytes_in /
                                            (double)st->pack_bytes_out
                                      : 0.0;
    fprintf(stderr,
            "\r%s records/s  %s packs/s  in %s  out %s  ratio %.1f  buffered %s  in-flight %" PRIu64
            "  gateways %" PRIu64 "%s   ",
            tp_cli_count((double)(st->records_in - prev->records_in) / dt, a, sizeof a),
            tp_cli_count((double)(st->packs_out - prev->packs_out) / dt, b, sizeof b),
            tp_cli_bytes(st->bytes_in, bi, sizeof bi), tp_cli_bytes(st->pack_bytes_out, bo, sizeof bo), ratio,
            tp_cli_bytes(st->buffered_bytes, bb, sizeof bb), st->in_flight, st->connections,
            st->paused ? "  PAUSED" : "");
}

/* Waits for a signal, a worker failure or the end of the replay, with a progress line every 2 s on a terminal. */
static void wait_for_stop(ingest_run *r)
{
    int tty = isatty(2), printed = 0;
    double last = tp_mono_s();
    tp_ingest_stats prev = {0}, st;
    while (!g_signals && !tp_ingest_failed(r->ing, NULL, 0) && !(r->feeding && atomic_load(&r->f.done))) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (g_hup)
            reload_tokens(r);
        double t = tp_mono_s();
        if (tty && t - last >= 2.0) {
            tp_ingest_stats_get(r->ing, &st);
            progress_line(&st, &prev, t - last);
            printed = 1;
            prev = st;
            last = t;
        }
    }
    if (printed)
        fputc('\n', stderr);
    if (g_signals) {
        tp_log(TP_LOG_INFO, "ingest", "signal received: flushing and waiting for Kafka (again to stop waiting)");
        r->f.stop = 1;
    }
}

/* Drains: the feeder (if any) finishes on its own, the worker flushes and waits for Kafka. Prints the summary and
 * returns the exit status. */
static int finish(ingest_run *r, double t0)
{
    if (r->feeding)
        pthread_join(r->feeder_thread, NULL);
    r->feeding = 0;
    tp_http_ingest_quiesce(r->hing); /* no new HTTP requests: the worker is about to stop taking records */
    tp_err e = tp_ingest_stop(r->ing, -1); /* HTTP requests waiting for acks get them (or 503) as it drains */
    tp_http_ingest_stop(r->hing);
    r->hing = NULL;
    tp_ingest_stats st;
    tp_ingest_stats_get(r->ing, &st);
    double el = tp_mono_s() - t0;
    char why[512] = "";
    int failed = tp_ingest_failed(r->ing, why, sizeof why);
    fprintf(stderr,
            "ingest summary: %" PRIu64 " records in (%" PRIu64 " bytes), %" PRIu64 " packs out (%" PRIu64
            " records, %" PRIu64 " bytes, ratio %.2f), %" PRIu64 " acked, %" PRIu64 " delivery retries, %" PRIu64
            " connections closed on error, %.1f s, %.0f records/s\n",
            st.records_in, st.bytes_in, st.packs_out, st.records_out, st.pack_bytes_out,
            st.pack_bytes_out ? (double)st.bytes_in / (double)st.pack_bytes_out : 0.0, st.records_acked,
            st.delivery_retries, st.connections_closed_on_error, el, el > 0 ? (double)st.records_in / el : 0.0);
    if (failed) {
        fprintf(stderr, "telepack ingest: %s; records not delivered were not acked (gateways keep them)\n", why);
        return 1;
    }
    if (e) {
        fprintf(stderr, "telepack ingest: stopped before every pack was delivered; those records were not acked\n");
        return 1;
    }
    return r->a->from && r->f.status ? r->f.status : 0;
}

static void release(ingest_run *r)
{
    if (r->replaying)
        close(r->f.fd);
    g_ing = NULL;
    tp_http_ingest_stop(r->hing); /* after a failed start: requests must not reach a freed worker */
    r->hing = NULL;
    tp_http_server_stop(r->http); /* its readiness callback reads ing */
    tp_ingest_free(r->ing);
    tp_tls_server_free(r->tls);
    tp_auth_store_free(r->tokens);
    tp_metrics_free(r->metrics);
}

int tp_cmd_ingest(int argc, char **argv)
{
    if (tp_cli_has_schema(argc, argv) || tp_cli_config_has_schema(argc, argv))
        return tp_cmd_ingest_schema(argc, argv); /* a message type of your own: cmd_ingest_schema.c */
    ingest_cli a = {0};
    tp_ingest_opts_init(&a.o);
    tp_http_ingest_opts_init(&a.hio);
    if (tp_cli_worker_init(&a.w, argc))
        return 1;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) {
        tp_cli_worker_free(&a.w);
        return rc;
    }
    tp_cli_worker_apply_log(&a.w);
    if (a.dict_path) {
        char derr[512];
        tp_err de = tp_dict_read_file(a.dict_path, a.o.level, &a.dict, derr, sizeof derr);
        if (de) {
            fprintf(stderr, "telepack ingest: %s\n", derr);
            tp_cli_worker_free(&a.w);
            return de == TP_ERR_IO || de == TP_ERR_NOMEM ? 1 : 2;
        }
        a.o.dict = a.dict;
    }
    ingest_run r = {.a = &a};
    tp_cli_signals_install(on_signal, 1);
    rc = create_worker(&r);
    if (!rc)
        rc = start(&r);
    if (!rc) {
        double t0 = tp_mono_s();
        wait_for_stop(&r);
        rc = finish(&r, t0);
    }
    release(&r);
    tp_dict_free(a.dict);
    tp_cli_worker_free(&a.w);
    return rc;
}
