/* `telepack ingest --schema ... --from FILE`: replays NDJSON or varint-delimited records of a run-time schema into
 * Kafka as packs (v4 columns or v1 rows), one key per pack (the exact key text, a VIN or a decimal id, as the Kafka
 * key) or, with --pack-by partition, every key of a partition per pack (v4 with the several-keys flag, no key), with the pack
 * headers plus tp-schema (the message name) and tp-schema-fp (the fingerprint). A record that does not decode under
 * the schema is refused by number and byte offset before anything of it is sent. With --listen and/or
 * --http-listen it serves gateways (protocol v1/v2, each record checked by the dynamic decoder: a bad one is
 * rejected by a v2 REJECT frame, as is one whose time is more than ten years from now) and POST /v1/records
 * instead, both into one dyn_ingest.h worker, with TLS (mutual TLS on the gateway listener), tokens, SIGHUP reloads,
 * /metrics and /readyz as the built-in ingest: docs/SCHEMA.md, "The pipeline". */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "cli/pipeline_config.h"
#include "cli/schema_cli.h"
#include "common/clock.h"
#include "common/log.h"
#include "ingest/auth_tokens.h"
#include "ingest/dyn_ingest.h"
#include "ingest/gateway_server.h"
#include "ingest/gateway_tls.h"
#include "ingest/http_ingest.h"
#include "kafka/producer.h"
#include "kafka/schema_headers.h"
#include "ops/http_server.h"
#include "ops/worker_metrics.h"
#include "schema/dyncols.h"
#include "schema/dynpack.h"
#include "schema/dynrow.h"
#include "telepack/delimited.h"

static void usage(void)
{
    printf("Usage: telepack ingest --schema FILE --message NAME --brokers HOST:PORT --topic T --from FILE|- [OPTIONS]\n"
           "       telepack ingest --schema FILE --message NAME --brokers HOST:PORT --topic T [--listen H:P]\n"
           "                       [--http-listen H:P] [OPTIONS]\n"
           "\n"
           "Replays records of NAME (NDJSON per protobuf's JSON mapping, or varint-delimited protobuf) into Kafka:\n"
           "grouped per key (the vehicle), each group a pack (layout columns, pbpack v4, by default; rows, pbpack\n"
           "v1 of the records' protobuf bytes, for a group with fields the schema does not know or with --layout\n"
           "rows), keyed by the exact key text, with the pack\n"
           "headers, tp-schema: NAME and tp-schema-fp: the schema's fingerprint (docs/SCHEMA.md). Every message\n"
           "is checked under the schema first; one that does not read stops the replay (exit 2) before it is\n"
           "sent. --listen serves gateways instead (docs/GATEWAY.md: records of NAME in the same framing; each is\n"
           "decoded under the schema, a bad one rejected: a v2 REJECT frame, or the v1 connection closed; acks once\n"
           "durable) and --http-listen POST /v1/records (docs/HTTP_INGEST.md: a bad record is answered 400 naming\n"
           "it, nothing of the request taken); both group per key and run until SIGINT/SIGTERM.\n"
           "\n"
           "Options:\n" TP_CLI_SCHEMA_HELP
           "  --brokers HOST:PORT     bootstrap servers (or -X test.mock.num.brokers=1)\n"
           "  --topic T               topic to produce to (required)\n"
           "  --from FILE|-           the records\n"
           "  --input-format F        ndjson (default; a line may be 4 x --max-record-bytes) or delimited (varint\n"
           "                          length-prefixed protobuf)\n"
           "  --ignore-unknown-fields with NDJSON: skip keys that name no field (default: such a key is an error\n"
           "                          naming it and its line, exit 2)\n"
           "  --pack-by vehicle|partition   (with --from)\n"
           "                          vehicle (default): one pack per key, Kafka key = the key text; partition:\n"
           "                          one pack holds the records of every key of a Kafka partition (the\n"
           "                          partition librdkafka's partitioner gives the key text), sorted by key and\n"
           "                          time, no Kafka key (pbpack v4 with the several-keys flag; needs --layout\n"
           "                          columns; a group with unknown fields goes as rows, one pack per run of a key)\n"
           "  --batch-records N       records per pack (default 200 per key, 10000 per partition)\n"
           "  --max-buffered N        records held in open packs before the oldest is sent (default 1000000)\n"
           "  --max-record-bytes N    largest message accepted (default 65536)\n"
           "  --level N               zstd level 1..22 (default 3)\n"
           "  --layout L              columns (default: measured 6x smaller on EV telemetry, docs/BENCHMARKS.md)\n"
           "                          or rows (the original bytes, for consumers that only read pbpack v1)\n"
           "  --listen H:P            serve gateways (TCP; off loopback it needs --tls-cert or --insecure);\n"
           "                          --auth-tokens applies to v2 hellos as without --schema; a v2 record whose\n"
           "                          time (the time role) is more than 3653 days from now is rejected (code 4)\n"
           "  --tls-cert FILE         PEM certificate (chain): the gateway listener speaks TLS only (with\n"
           "                          --tls-key); also the default of --http-tls-cert. SIGHUP reloads it\n"
           "  --tls-key FILE          PEM private key of --tls-cert (also the default of --http-tls-key)\n"
           "  --tls-client-ca FILE    mutual TLS on the gateway listener: gateways must present a certificate\n"
           "                          signed by this CA (PEM)\n"
           "  --http-listen H:P       serve POST /v1/records (NDJSON per protobuf's JSON mapping, or delimited\n"
           "                          protobuf by Content-Type) until SIGINT/SIGTERM; off loopback it needs TLS or\n"
           "                          --insecure; a record whose time is more than 3653 days from now: 400\n"
           "  --http-tls-cert FILE    PEM certificate (chain) for HTTPS, with --http-tls-key FILE\n"
           "  --http-tls-key FILE     its PEM private key\n"
           "  --insecure              allow plaintext (no TLS) on a --listen or --http-listen address other than\n"
           "                          loopback (a TLS proxy in front, a private network)\n"
           "  --auth-tokens FILE      bearer tokens (docs/HTTP_INGEST.md); an integer key is checked against a token's\n"
           "                          id list, a string key needs a token for every vehicle. SIGHUP reloads it\n"
           "  --http-max-body N       largest request body (default 4M; larger: 413)\n"
           "  --http-timeout-ms N     longest a request waits for Kafka before 503 (default 30000)\n"
           "  --linger-ms N           with --listen/--http-listen: a key's pack is sent N ms after its first record at the\n"
           "                          latest (default 500)\n"
           "  --max-buffered-bytes N  with --listen/--http-listen: record bytes held (open packs, in flight, request\n"
           "                          bodies) before gateways are paused and requests get 503 (default 256M)\n" TP_CLI_WORKER_HELP
           "                          (--metrics-listen and the TLS options apply to --listen/--http-listen only)\n"
           "  -h, --help              this text\n"
           "\n"
           "Exit status: 0 every pack delivered (acks=all), 1 Kafka failure, 2 bad options or a bad record.\n");
}

enum { O_BROKERS = 256, O_TOPIC, O_FROM, O_BATCH, O_MAX_BUFFERED, O_MAX_RECORD, O_LEVEL, O_FORMAT, O_IGNORE_UNKNOWN,
       O_HTTP, O_HTTP_CERT, O_HTTP_KEY, O_INSECURE, O_TOKENS, O_HTTP_BODY, O_HTTP_TIMEOUT, O_LINGER, O_MAX_BYTES,
       O_LISTEN, O_LAYOUT, O_PACK_BY, O_TLS_CERT, O_TLS_KEY, O_TLS_CA };

typedef struct delivery {
    _Atomic uint64_t ok, failed;
    char detail[512];
} delivery;

static void on_dr(void *ctx, void *opaque, tp_err err, int retriable, const char *detail)
{
    (void)opaque;
    (void)retriable;
    delivery *d = ctx;
    if (err) {
        if (atomic_fetch_add(&d->failed, 1) == 0)
            snprintf(d->detail, sizeof d->detail, "%s", detail ? detail : tp_strerror(err));
    } else {
        atomic_fetch_add(&d->ok, 1);
    }
}

typedef struct sender {
    tp_producer *p;
    tp_dyn_grouper *g;
    tp_dyn_colwriter *cw; /* layout columns */
    const tp_schema *s;
    ZSTD_CCtx *cctx;
    int level;
    int32_t partitions; /* --pack-by partition: the topic's partition count */
    uint64_t packs, records, bytes;
} sender;

/* The grouper's partition of a key: librdkafka's partitioner as the producer is configured, key = the key text. */
static int32_t key_partition(void *ctx, const char *key, size_t len)
{
    sender *x = ctx;
    return tp_producer_key_partition(x->p, key, len, x->partitions);
}

/* Compresses content as one pack and produces it (key NULL: no key, to `partition`); 0 or 1 (printed). */
static int send_pack(sender *x, const uint8_t *content, size_t clen, bool columns, uint32_t count, const char *key,
                     size_t key_len, int32_t partition)
{
    uint8_t *pack = NULL;
    size_t len = 0;
    char err[512];
    tp_err e = tp_dyn_pack_compress(x->cctx, x->level, TP_CODEC_ZSTD, content, clen, &pack, &len);
    tp_pack_meta meta = {.format_version = columns ? TP_DYNCOL_FORMAT_VERSION : 1,
                         .layout = columns ? TP_LAYOUT_COLUMNS : TP_LAYOUT_ROWS, .codec = TP_CODEC_ZSTD,
                         .schema_version = TP_SCHEMA_VERSION, .record_count = count};
    rd_kafka_headers_t *h = rd_kafka_headers_new(10);
    if (!e)
        e = tp_schema_pack_headers(&meta, tp_schema_message_name(x->s), tp_schema_fingerprint_hex(x->s), h);
    if (!e)
        e = tp_producer_send_keyed_to(x->p, key, key_len, partition, pack, len, h, NULL, err, sizeof err);
    else
        snprintf(err, sizeof err, "building the pack failed: %s", tp_strerror(e));
    if (e) {
        rd_kafka_headers_destroy(h);
        free(pack);
        if (key)
            fprintf(stderr, "telepack ingest: the pack of key %s: %s\n", key, err);
        else
            fprintf(stderr, "telepack ingest: the pack of partition %d: %s\n", (int)partition, err);
        return 1;
    }
    x->packs++;
    x->records += count;
    x->bytes += len;
    return 0;
}

/* A group of several keys (--pack-by partition): one column pack sorted by (key, time) with no key, or, when a
 * record holds unknown fields, v1 packs of each run of one key's records, keyed, to the same partition. */
static int send_partition(sender *x, tp_dyn_group *grp)
{
    const uint8_t *cols = NULL;
    size_t cn = 0;
    tp_err e = tp_dyn_colwriter_group(x->cw, grp, &cols, &cn);
    int status = 0;
    if (e) {
        fprintf(stderr, "telepack ingest: the pack of partition %d: building it failed: %s\n", (int)grp->partition,
                tp_strerror(e));
        return 1;
    }
    if (cols) {
        status = send_pack(x, cols, cn, true, grp->count, NULL, 0, grp->partition);
    } else {
        size_t pos = 0, len;
        const uint8_t *run;
        uint32_t count;
        char key[TP_DYN_KEY_MAX + 1];
        size_t klen;
        while (!status && (e = tp_dyn_colwriter_next_run(x->cw, grp, &pos, &run, &len, &count, key, &klen)) == TP_OK)
            status = send_pack(x, run, len, false, count, key, klen, grp->partition);
        if (!status && e != TP_ERR_END) {
            fprintf(stderr, "telepack ingest: the packs of partition %d: %s\n", (int)grp->partition, tp_strerror(e));
            status = 1;
        }
    }
    if (!status)
        tp_dyn_grouper_release(x->g, grp);
    return status;
}

static int send_group(sender *x, tp_dyn_group *grp)
{
    if (grp->partition >= 0)
        return send_partition(x, grp);
    uint8_t *pack = NULL;
    size_t len = 0;
    char err[512];
    const uint8_t *cols = NULL;
    size_t cn = 0;
    tp_err e = x->cw ? tp_dyn_colwriter_group(x->cw, grp, &cols, &cn) : TP_OK;
    if (!e)
        e = cols ? tp_dyn_pack_compress(x->cctx, x->level, TP_CODEC_ZSTD, cols, cn, &pack, &len)
                 : tp_dyn_pack_compress(x->cctx, x->level, TP_CODEC_ZSTD, grp->content, grp->len, &pack, &len);
    tp_pack_meta meta = {.format_version = cols ? TP_DYNCOL_FORMAT_VERSION : 1,
                         .layout = cols ? TP_LAYOUT_COLUMNS : TP_LAYOUT_ROWS, .codec = TP_CODEC_ZSTD,
                         .schema_version = TP_SCHEMA_VERSION, .record_count = grp->count};
    rd_kafka_headers_t *h = rd_kafka_headers_new(10);
    if (!e)
        e = tp_schema_pack_headers(&meta, tp_schema_message_name(x->s), tp_schema_fingerprint_hex(x->s), h);
    if (!e)
        e = tp_producer_send_keyed(x->p, grp->key, grp->key_len, pack, len, h, NULL, err, sizeof err);
    else
        snprintf(err, sizeof err, "building the pack failed: %s", tp_strerror(e));
    if (e) {
        rd_kafka_headers_destroy(h);
        free(pack);
        fprintf(stderr, "telepack ingest: the pack of key %s: %s\n", grp->key, err);
        return 1;
    }
    x->packs++;
    x->records += grp->count;
    x->bytes += len;
    tp_dyn_grouper_release(x->g, grp);
    return 0;
}

typedef struct ingest_args {
    tp_cli_schema so;
    const char *brokers, *topic, *from;
    uint64_t batch, max_buffered, max_record, level;
    int layout; /* 0 rows, 1 columns */
    int delimited;
    bool ignore_unknown;
    tp_http_ingest_opts hio; /* --http-listen */
    uint64_t linger_ms, max_bytes;
    const char *listen; /* --listen: gateways */
    const char *tls_cert, *tls_key, *tls_client_ca; /* the gateway listener's TLS */
    int pack_by; /* 0 vehicle (one key a pack), 1 partition (--from only) */
} ingest_args;

/* Reads the options into a and w; returns -1 to go on, else the exit status. A linear option switch: it reads
 * better whole. */
static int parse_args(int argc, char **argv, ingest_args *a, tp_cli_worker *w)
{
    static const struct option longopts[] = {
        TP_CLI_SCHEMA_LONGOPTS,
        {"brokers", required_argument, NULL, O_BROKERS},
        {"topic", required_argument, NULL, O_TOPIC},
        {"from", required_argument, NULL, O_FROM},
        {"batch-records", required_argument, NULL, O_BATCH},
        {"max-buffered", required_argument, NULL, O_MAX_BUFFERED},
        {"max-record-bytes", required_argument, NULL, O_MAX_RECORD},
        {"level", required_argument, NULL, O_LEVEL},
        {"layout", required_argument, NULL, O_LAYOUT},
        {"input-format", required_argument, NULL, O_FORMAT},
        {"ignore-unknown-fields", no_argument, NULL, O_IGNORE_UNKNOWN},
        {"http-listen", required_argument, NULL, O_HTTP},
        {"listen", required_argument, NULL, O_LISTEN},
        {"http-tls-cert", required_argument, NULL, O_HTTP_CERT},
        {"http-tls-key", required_argument, NULL, O_HTTP_KEY},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"auth-tokens", required_argument, NULL, O_TOKENS},
        {"http-max-body", required_argument, NULL, O_HTTP_BODY},
        {"http-timeout-ms", required_argument, NULL, O_HTTP_TIMEOUT},
        {"linger-ms", required_argument, NULL, O_LINGER},
        {"max-buffered-bytes", required_argument, NULL, O_MAX_BYTES},
        {"pack-by", required_argument, NULL, O_PACK_BY},
        {"tls-cert", required_argument, NULL, O_TLS_CERT},
        {"tls-key", required_argument, NULL, O_TLS_KEY},
        {"tls-client-ca", required_argument, NULL, O_TLS_CA},
        TP_CLI_WORKER_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const format_words[] = {"ndjson", "delimited", NULL};
    *a = (ingest_args){.batch = 0, .max_buffered = 1000000, .max_record = 65536, .level = 3, .linger_ms = 500,
                       .max_bytes = 256u << 20, .layout = 1};
    tp_http_ingest_opts_init(&a->hio);
    uint64_t v;
    static const char *const layout_words[] = {"rows", "columns", NULL};
    static const char *const pack_by_words[] = {"vehicle", "partition", NULL};
    char msg[512];
    int c, status = tp_cli_config_apply("ingest", ":hX:", longopts, &argc, &argv); /* --config FILE */
    if (status >= 0)
        return status;
    opterr = 0;
    optind = 0;
    while (status < 0 && (c = getopt_long(argc, argv, ":hX:", longopts, NULL)) != -1) {
        tp_err e = TP_OK;
        if (tp_cli_schema_option(&a->so, c, optarg))
            continue;
        if (tp_cli_worker_option(w, c, optarg, &e, msg, sizeof msg)) {
            if (e)
                status = tp_cli_usage_error("ingest", "%s", msg);
            continue;
        }
        switch (c) {
        case O_BROKERS: a->brokers = optarg; break;
        case O_TOPIC: a->topic = optarg; break;
        case O_FROM: a->from = optarg; break;
        case O_BATCH: e = tp_cli_parse_u64("batch-records", optarg, 1, 1000000, &a->batch, msg, sizeof msg); break;
        case O_MAX_BUFFERED:
            e = tp_cli_parse_u64("max-buffered", optarg, 1, 1000000000, &a->max_buffered, msg, sizeof msg);
            break;
        case O_MAX_RECORD:
            e = tp_cli_parse_u64("max-record-bytes", optarg, 16, 64u << 20, &a->max_record, msg, sizeof msg);
            break;
        case O_LEVEL: e = tp_cli_parse_u64("level", optarg, 1, 22, &a->level, msg, sizeof msg); break;
        case O_LAYOUT: e = tp_cli_parse_choice("layout", optarg, layout_words, &a->layout, msg, sizeof msg); break;
        case O_FORMAT: e = tp_cli_parse_choice("input-format", optarg, format_words, &a->delimited, msg, sizeof msg); break;
        case O_IGNORE_UNKNOWN: a->ignore_unknown = true; break;
        case O_HTTP: a->hio.listen = optarg; break;
        case O_LISTEN: a->listen = optarg; break;
        case O_HTTP_CERT: a->hio.tls_cert = optarg; break;
        case O_HTTP_KEY: a->hio.tls_key = optarg; break;
        case O_INSECURE: a->hio.insecure = 1; break;
        case O_TOKENS: a->hio.tokens_path = optarg; break;
        case O_HTTP_BODY:
            if (!(e = tp_cli_parse_size("http-max-body", optarg, 1024, 1ull << 30, &v, msg, sizeof msg)))
                a->hio.max_body_bytes = (size_t)v;
            break;
        case O_HTTP_TIMEOUT:
            if (!(e = tp_cli_parse_ms("http-timeout-ms", optarg, 100, 3600000, &v, msg, sizeof msg)))
                a->hio.timeout_ms = (int)v;
            break;
        case O_LINGER: e = tp_cli_parse_ms("linger-ms", optarg, 1, 3600000, &a->linger_ms, msg, sizeof msg); break;
        case O_MAX_BYTES:
            e = tp_cli_parse_size("max-buffered-bytes", optarg, 1 << 20, 1ull << 40, &a->max_bytes, msg, sizeof msg);
            break;
        case O_PACK_BY: e = tp_cli_parse_choice("pack-by", optarg, pack_by_words, &a->pack_by, msg, sizeof msg); break;
        case O_TLS_CERT: a->tls_cert = optarg; break;
        case O_TLS_KEY: a->tls_key = optarg; break;
        case O_TLS_CA: a->tls_client_ca = optarg; break;
        case 'h': usage(); status = 0; break;
        case ':': status = tp_cli_usage_error("ingest", "option '%s' needs a value", argv[optind - 1]); break;
        default:
            status = tp_cli_usage_error("ingest", "unknown option '%s' with --schema (see telepack ingest --schema x "
                                                  "--help)", argv[optind - 1]);
        }
        if (e)
            status = tp_cli_usage_error("ingest", "%s", msg);
    }
    if (status < 0 && optind < argc)
        status = tp_cli_usage_error("ingest", "unexpected argument '%s'", argv[optind]);
    bool serve = a->hio.listen || a->listen;
    if (status < 0 && (!a->topic || !a->from == !serve))
        status = tp_cli_usage_error("ingest", "--topic and either --from or --listen/--http-listen are required with "
                                              "--schema");
    if (status < 0 && (a->tls_cert || a->tls_key || a->tls_client_ca) && !serve)
        status = tp_cli_usage_error("ingest", "--tls-cert, --tls-key and --tls-client-ca apply to --listen and "
                                              "--http-listen; give one of them");
    if (status < 0 && !a->tls_cert != !a->tls_key)
        status = tp_cli_usage_error("ingest", "--tls-cert and --tls-key go together; give both files or neither");
    if (status < 0 && a->tls_client_ca && !a->tls_cert)
        status = tp_cli_usage_error("ingest", "--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key too");
    if (status < 0 && a->tls_client_ca && !a->listen)
        status = tp_cli_usage_error("ingest", "--tls-client-ca applies to the gateway listener (--listen); give it "
                                              "too");
    if (status < 0 && a->listen) {
        char host[256], port[16];
        if (tp_gateway_parse_hostport(a->listen, host, sizeof host, port, sizeof port))
            status = tp_cli_usage_error("ingest", "--listen '%s' is not HOST:PORT", a->listen);
        else if (!a->tls_cert && !a->hio.insecure && !tp_http_ingest_is_loopback(host))
            status = tp_cli_usage_error("ingest", "refusing plaintext gateways on %s, which is not a loopback "
                                                  "address: records and tokens would cross the network in clear; "
                                                  "give --tls-cert FILE --tls-key FILE, or --insecure (a TLS proxy "
                                                  "in front, a private network)", a->listen);
    }
    if (status < 0 && a->hio.listen && !a->hio.tls_cert && !a->hio.tls_key && a->tls_cert) {
        a->hio.tls_cert = a->tls_cert; /* one certificate for both listeners */
        a->hio.tls_key = a->tls_key;
    }
    if (status < 0 && a->hio.listen && tp_http_ingest_check_opts(&a->hio, msg, sizeof msg))
        status = tp_cli_usage_error("ingest", "%s", msg);
    if (status < 0 && !a->hio.listen && (a->hio.tls_cert || a->hio.tls_key))
        status = tp_cli_usage_error("ingest", "--http-tls-cert and --http-tls-key apply to --http-listen; give it too");
    if (status < 0 && !serve && w->metrics_listen)
        status = tp_cli_usage_error("ingest", "--metrics-listen with --schema applies to --listen and --http-listen; "
                                              "a --from replay has no operations endpoint");
    if (status < 0 && !serve && a->hio.tokens_path)
        status = tp_cli_usage_error("ingest", "--auth-tokens applies to --listen and --http-listen; give one of them");
    if (status < 0 && a->pack_by == 1 && a->layout == 0)
        status = tp_cli_usage_error("ingest", "--pack-by partition needs --layout columns (a rows pack holds one "
                                              "key); drop one of them");
    if (status < 0 && a->pack_by == 1 && serve)
        status = tp_cli_usage_error("ingest", "--pack-by partition applies to the --from replay; the listeners of "
                                              "--schema pack per key");
    if (a->batch == 0)
        a->batch = a->pack_by == 1 ? 10000 : 200;
    return status;
}

/* Reads the records of src (from `from`) into x's groups, sending each full group and the oldest while more than
 * max_buffered records are held, then the rest. Returns the exit status. */
static int send_records(sender *x, tp_cli_schema_src *src, const char *from, uint64_t max_buffered)
{
    int status = 0;
    char why[1024];
    while (!status) {
        tp_dyn_group *full;
        tp_err e = tp_cli_schema_src_next(src, x->g, &full, why, sizeof why);
        if (e == TP_ERR_END)
            break;
        if (e) {
            fprintf(stderr, "telepack ingest: %s: %s (the %" PRIu64 " records before it are sent)\n", from,
                    e == TP_ERR_NOMEM ? "out of memory" : why, src->records);
            status = e == TP_ERR_IO || e == TP_ERR_NOMEM ? 1 : 2;
            break;
        }
        if (full && send_group(x, full))
            status = 1;
        while (!status && tp_dyn_grouper_buffered(x->g) > max_buffered)
            status = send_group(x, tp_dyn_grouper_oldest(x->g));
    }
    for (tp_dyn_group *grp; status != 1 && (grp = tp_dyn_grouper_oldest(x->g));)
        if (send_group(x, grp))
            status = 1;
    return status;
}

/* Waits up to 30 s for the deliveries and frees the producer; returns 1 when a pack was not delivered, else status. */
static int finish_deliveries(sender *x, delivery *d, int status)
{
    if (x->p) {
        if (tp_producer_flush(x->p, 30000)) {
            fprintf(stderr, "telepack ingest: packs still undelivered after 30 s; giving up on them\n");
            tp_producer_purge(x->p);
            status = 1;
        }
        tp_producer_free(x->p);
    }
    if (atomic_load(&d->failed)) {
        fprintf(stderr, "telepack ingest: %" PRIu64 " packs were not delivered: %s\n", atomic_load(&d->failed),
                d->detail);
        status = 1;
    }
    return status;
}

/* The gateway listener's side of the schema's worker (loop thread). */
typedef struct gw {
    tp_dyn_ingest *d;
    tp_dyn_batch *row; /* the record being checked */
    const tp_schema *s;
    tp_gateway_server *srv;
    int64_t max_event_skew_ms; /* the v2 event-time bound (the gateway server's default), or < 0 */
} gw;

static tp_err gw_on_record(void *ctx, const tp_record *r, size_t wire_len, const tp_batch_tag *tag)
{
    (void)ctx;
    (void)r;
    (void)wire_len;
    (void)tag;
    return TP_ERR_INVALID_ARG; /* not called: the raw callbacks take every record */
}

static int gw_check(void *ctx, const uint8_t *msg, size_t len, int *has_id, uint64_t *id, char *why, size_t cap)
{
    gw *g = ctx;
    tp_dyn_batch_clear(g->row);
    if (tp_dyn_decode(g->row, msg, len)) {
        snprintf(why, cap, "does not decode as %s: %s", tp_schema_message_name(g->s), g->row->error);
        return TP_GW_REJECT_MALFORMED;
    }
    char key[TP_DYN_KEY_MAX + 1];
    size_t klen;
    if (tp_dyn_key_text(g->row, 0, key, &klen, why, cap))
        return TP_GW_REJECT_MALFORMED;
    if (tp_dyn_event_time_out(g->row, 0, tp_wall_ms(), g->max_event_skew_ms, why, cap))
        return TP_GW_REJECT_EVENT_TIME; /* v2: a REJECT frame, as for a VehicleRecord's sampled_at_ms */
    const tp_dyn_column *kc = &g->row->columns[tp_schema_get_roles(g->s)->key];
    *has_id = kc->def->kind == TP_COL_U64 || (kc->def->kind == TP_COL_I64 && kc->cells[0].i >= 0);
    *id = kc->cells[0].u;
    return 0;
}

static tp_err gw_take(void *ctx, const uint8_t *msg, size_t len, size_t wire_len, const tp_batch_tag *tag)
{
    (void)wire_len;
    gw *g = ctx;
    char err[600];
    tp_err e = tp_dyn_ingest_take(g->d, msg, len, tag, err, sizeof err);
    if (e && e != TP_ERR_AGAIN)
        tp_log(TP_LOG_ERROR, "ingest", "a gateway record could not be taken: %s", err);
    return e;
}

/* A connection went quiet or reached half its window: pack the groups holding its records (docs/INGEST.md). */
static void gw_on_sent(void *ctx, uint32_t source, uint32_t generation, int stalled)
{
    (void)stalled;
    gw *g = ctx;
    tp_dyn_ingest_flush_source(g->d, source, generation);
}

static void gw_wake(void *ctx)
{
    tp_gateway_server_wake(ctx);
}

/* Acks what was delivered; resumes reading once below half the cap. */
static void gw_service(gw *g, size_t cap)
{
    tp_batch_tag tags[256];
    size_t n;
    while ((n = tp_dyn_ingest_drain(g->d, tags, 256)) > 0)
        for (size_t i = 0; i < n; i++)
            tp_gateway_server_complete(g->srv, &tags[i]);
    tp_gateway_server_flush_acks(g->srv);
    if (tp_gateway_server_paused(g->srv) && tp_dyn_ingest_buffered(g->d) < cap / 2)
        tp_gateway_server_resume(g->srv);
}

static volatile sig_atomic_t g_stop, g_hup;
static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    g_hup = 1;
}

/* SIGHUP: the token file (both listeners) and the gateway listener's certificates; a bad file keeps the old ones. */
static void reload(ingest_args *a, tp_auth_store *tokens, tp_tls_server *tls)
{
    g_hup = 0;
    char herr[512];
    if (tokens) {
        if (tp_auth_store_reload(tokens, herr, sizeof herr) == TP_OK)
            tp_log(TP_LOG_INFO, "ingest", "SIGHUP: reloaded the token file %s", a->hio.tokens_path);
        else
            tp_log(TP_LOG_ERROR, "ingest", "SIGHUP: keeping the old tokens: %s", herr);
    }
    if (tls) {
        if (tp_tls_server_reload(tls, herr, sizeof herr) == TP_OK)
            tp_log(TP_LOG_INFO, "ingest", "SIGHUP: reloaded the TLS certificate %s (new connections use it)",
                   a->tls_cert);
        else
            tp_log(TP_LOG_ERROR, "ingest", "SIGHUP: keeping the old TLS certificate: %s", herr);
    }
}

/* What the operations endpoint reads at each /metrics (a collector) and /readyz. */
typedef struct ops_ctx {
    const tp_ingest_metrics *m;
    tp_dyn_ingest *d;
} ops_ctx;

/* The worker's totals into the built-in ingest's metrics, at each render (thread-safe counters of the worker). */
static void collect_metrics(tp_metrics *reg, void *ud)
{
    (void)reg;
    const tp_ingest_metrics *m = ((ops_ctx *)ud)->m;
    tp_dyn_ingest *d = ((ops_ctx *)ud)->d;
    tp_dyn_ingest_stats st;
    tp_dyn_ingest_stats_get(d, &st);
    tp_counter_set(m->records, st.records_in);
    tp_counter_set(m->bytes_in, st.bytes_in);
    tp_counter_set(m->packs, st.packs_out);
    tp_counter_set(m->bytes_out, st.pack_bytes_out);
    tp_gauge_set(m->buffered_bytes, (double)tp_dyn_ingest_buffered(d));
    tp_gauge_set(m->open_batches, (double)st.open_groups);
    tp_gauge_set(m->inflight_packs, (double)st.in_flight);
}

/* The gateway listener's totals (the loop thread: it owns the server's stats). */
static void mirror_gateway_metrics(const tp_ingest_metrics *m, tp_gateway_server *srv)
{
    tp_gateway_server_stats gs;
    tp_gateway_server_stats_get(srv, &gs);
    for (int i = 1; i < TP_GW_REJECT__COUNT; i++)
        tp_counter_set(m->records_rejected[i], gs.rejected[i]);
    for (int i = 0; i < TP_GW_CLOSE__COUNT; i++)
        tp_counter_set(m->gateway_closes[i], gs.closed[i]);
    for (int i = 1; i < TP_GW_REFUSE__COUNT; i++)
        tp_counter_set(m->gateway_refusals[i], gs.refused[i]);
    for (int i = 0; i < TP_GW_TLS__COUNT; i++)
        tp_counter_set(m->gateway_tls_failures[i], gs.tls_failures[i]);
    tp_counter_set(m->gateway_tls_sessions, gs.tls_sessions);
    tp_gauge_set(m->gateways_v2, (double)gs.connections_v2);
    tp_gauge_set(m->gateways, (double)gs.connections);
    tp_counter_set(m->backpressure, gs.pauses);
}

static bool dyn_ready(void *ud, char *reason, size_t cap)
{
    return tp_dyn_ingest_ready(((ops_ctx *)ud)->d, reason, cap) != 0;
}

/* --listen / --http-listen: the schema's worker behind the gateway listener and POST /v1/records until SIGINT,
 * SIGTERM or a worker failure. Returns the exit status. */
static int serve(ingest_args *a, tp_cli_worker *w, tp_schema *s)
{
    tp_dyn_ingest_opts o;
    tp_dyn_ingest_opts_init(&o);
    o.brokers = a->brokers;
    o.topic = a->topic;
    o.kafka_conf = w->kafka_props;
    o.nkafka_conf = w->n_kafka_props;
    o.schema = s;
    o.batch_records = (uint32_t)a->batch;
    o.linger_ms = (int)a->linger_ms;
    o.max_record_bytes = (size_t)a->max_record;
    o.max_buffered_bytes = (size_t)a->max_bytes;
    o.level = (int)a->level;
    o.columns = a->layout == 1;
    char err[1024] = "";
    tp_dyn_ingest *d = NULL;
    tp_auth_store *tokens = NULL;
    tp_tls_server *tls = NULL;
    tp_gateway_auth gauth;
    tp_http_ingest *h = NULL;
    tp_metrics *metrics = NULL;
    tp_ingest_metrics im = {0};
    tp_http_server *ops = NULL;
    gw g = {.s = s};
    int status = 0;
    tp_err e = TP_OK;
    if (w->metrics_listen) {
        if ((e = tp_metrics_new(&metrics)) || (e = tp_ingest_metrics_register(metrics, &im)))
            snprintf(err, sizeof err, "cannot set up the metrics registry");
        o.metrics = &im;
        o.kafka_metrics = metrics; /* the producer's librdkafka statistics, and readiness from them */
    }
    if (!e)
        e = tp_dyn_ingest_new(&o, &d, err, sizeof err);
    if (!e && a->hio.tokens_path)
        e = tp_auth_store_load(a->hio.tokens_path, &tokens, err, sizeof err);
    if (!e && a->listen && a->tls_cert &&
        (e = tp_tls_server_new(a->tls_cert, a->tls_key, a->tls_client_ca, &tls, err, sizeof err)) &&
        e != TP_ERR_NOMEM)
        e = TP_ERR_INVALID_ARG; /* a bad file: exit 2 */
    if (!e && a->listen) {
        tp_gateway_server_opts so;
        tp_gateway_server_opts_init(&so);
        so.listen = a->listen;
        so.max_record_bytes = (size_t)a->max_record;
        so.conn_buffer_bytes = (size_t)a->max_record + 64 > 65536 ? (size_t)a->max_record + 64 : 65536;
        so.batch_records = (uint32_t)a->batch;
        so.linger_ms = (uint32_t)a->linger_ms;
        so.tls = tls;
        g.max_event_skew_ms = so.max_event_skew_ms;
        if (tokens) {
            tp_auth_store_gateway_auth(tokens, &gauth);
            so.auth = &gauth;
        }
        g.d = d;
        if (!(e = tp_dyn_batch_new(s, 1, 9 * (size_t)a->max_record + 64, &g.row)) &&
            !(e = tp_gateway_server_new(&so, gw_on_record, &g, &g.srv, err, sizeof err))) {
            tp_gateway_raw_fns fns = {gw_check, gw_take};
            tp_gateway_server_on_raw(g.srv, &fns);
            tp_gateway_server_on_sent(g.srv, gw_on_sent);
            tp_dyn_ingest_set_notify(d, gw_wake, g.srv);
        }
    }
    if (!e && a->hio.listen) {
        a->hio.dyn = d;
        a->hio.schema = s;
        a->hio.tokens = tokens;
        a->hio.json_flags = a->ignore_unknown ? TP_DYN_JSON_IGNORE_UNKNOWN : 0;
        a->hio.max_record_bytes = (size_t)a->max_record;
        a->hio.max_buffered_bytes = (size_t)a->max_bytes;
        a->hio.metrics = metrics;
        e = tp_http_ingest_start(&a->hio, NULL, &h, err, sizeof err);
    }
    ops_ctx oc = {&im, d};
    if (!e && w->metrics_listen && (e = tp_metrics_add_collector(metrics, collect_metrics, &oc)))
        snprintf(err, sizeof err, "cannot set up the metrics registry");
    if (!e && w->metrics_listen) {
        tp_http_server_opts ho = {w->metrics_listen, metrics, dyn_ready, &oc};
        if (!(e = tp_http_server_start(&ho, &ops, err, sizeof err)))
            tp_log(TP_LOG_INFO, "ingest", "serving /metrics, /healthz, /readyz on %s (port %u)", w->metrics_listen,
                   tp_http_server_port(ops));
    }
    if (e) {
        fprintf(stderr, "telepack ingest: %s\n", err[0] ? err : tp_strerror(e));
        status = e == TP_ERR_INVALID_ARG || e == TP_ERR_PARSE ? 2 : 1;
    } else {
        struct sigaction sa = {0};
        sa.sa_handler = on_stop;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        if (tokens || tls) { /* SIGHUP reloads them */
            struct sigaction sh = {0};
            sh.sa_handler = on_hup;
            sigaction(SIGHUP, &sh, NULL);
        }
        if (g.srv)
            tp_log(TP_LOG_INFO, "ingest", "listening for gateways with records of %s (schema %s) on %s (port %d), "
                   "%s%s, publishing to topic %s", tp_schema_message_name(s), tp_schema_fingerprint_hex(s),
                   a->listen, tp_gateway_server_port(g.srv),
                   tls ? (a->tls_client_ca ? "TLS with client certificates" : "TLS") : "plaintext",
                   tokens ? ", tokens required" : "", a->topic);
        if (h)
            tp_log(TP_LOG_INFO, "ingest", "serving POST /v1/records of %s (schema %s) on %s (port %u, %s%s), "
                   "publishing to topic %s", tp_schema_message_name(s), tp_schema_fingerprint_hex(s), a->hio.listen,
                   tp_http_ingest_port(h), a->hio.tls_cert ? "https" : "http",
                   a->hio.tokens_path ? ", bearer tokens" : ", no authentication", a->topic);
        char why[1024];
        while (!g_stop && !tp_dyn_ingest_failed(d, why, sizeof why)) {
            if (g_hup)
                reload(a, tokens, tls);
            if (metrics && g.srv)
                mirror_gateway_metrics(&im, g.srv);
            if (g.srv) {
                tp_gateway_server_poll(g.srv, 50);
                gw_service(&g, (size_t)a->max_bytes);
            } else {
                struct timespec ts = {0, 50 * 1000000L};
                nanosleep(&ts, NULL);
            }
        }
        if (!g_stop) {
            tp_log(TP_LOG_ERROR, "ingest", "the worker failed: %s", why);
            status = 1;
        }
    }
    uint64_t rejected = 0;
    if (h) {
        tp_http_ingest_quiesce(h);
        rejected = tp_http_ingest_rejected(h);
        tp_http_ingest_stop(h); /* waits for the requests in progress */
    }
    if (g.srv && !status) { /* pack what the gateways sent, ack it once durable (at most 30 s) */
        tp_gateway_server_stop_accepting(g.srv);
        tp_gateway_server_stop_reading(g.srv);
        tp_dyn_ingest_flush(d);
        int64_t until = tp_mono_ms() + 30000;
        while (tp_dyn_ingest_buffered(d) > 0 && !tp_dyn_ingest_failed(d, NULL, 0) && tp_mono_ms() < until) {
            tp_gateway_server_poll(g.srv, 20);
            gw_service(&g, (size_t)a->max_bytes);
        }
        gw_service(&g, (size_t)a->max_bytes);
    }
    tp_gateway_server_stats gst = {0};
    if (g.srv) {
        tp_gateway_server_stats_get(g.srv, &gst);
        tp_gateway_server_close_all(g.srv);
    }
    tp_http_server_stop(ops); /* its readiness callback reads d */
    tp_dyn_ingest_stats st = {0};
    if (d && (e = tp_dyn_ingest_stop(d, 30000, &st)) && !status) {
        fprintf(stderr, "telepack ingest: %s\n", e == TP_ERR_AGAIN ? "packs still undelivered after 30 s; gave up on "
                "them (their records were not acknowledged)" : "a pack was not delivered");
        status = 1;
    }
    tp_gateway_server_free(g.srv);
    tp_dyn_batch_free(g.row);
    tp_auth_store_free(tokens);
    tp_tls_server_free(tls);
    if (d) {
        uint64_t grej = 0;
        for (int i = 0; i < TP_GW_REJECT__COUNT; i++)
            grej += gst.rejected[i];
        fprintf(stderr, "ingest: %" PRIu64 " records of %s (schema %s) taken (%" PRIu64 " from gateways, %" PRIu64
                " rejected; %" PRIu64 " refused over HTTP), %" PRIu64 " packs delivered to %s\n", st.records_in,
                tp_schema_message_name(s), tp_schema_fingerprint_hex(s), gst.records_in, grej, rejected,
                st.packs_out, a->topic);
    }
    tp_metrics_free(metrics);
    return status;
}

int tp_cmd_ingest_schema(int argc, char **argv)
{
    tp_cli_worker w;
    if (tp_cli_worker_init(&w, argc))
        return 1;
    ingest_args a;
    char msg[512];
    int status = parse_args(argc, argv, &a, &w);
    tp_schema *s = NULL;
    if (status < 0 && (status = tp_cli_schema_load("ingest", &a.so, &s)) == 0)
        status = -1;
    if (status >= 0) {
        tp_cli_worker_free(&w);
        tp_schema_free(s);
        return status;
    }
    tp_cli_worker_apply_log(&w);
    if (a.hio.listen || a.listen) {
        status = serve(&a, &w, s);
        tp_schema_free(s);
        tp_cli_worker_free(&w);
        return status;
    }
    delivery d = {0};
    sender x = {.s = s, .level = (int)a.level};
    tp_producer_opts po = {.brokers = a.brokers, .topic = a.topic, .kafka_conf = w.kafka_props,
                           .nkafka_conf = w.n_kafka_props};
    FILE *in = tp_cli_open_in(a.from);
    tp_cli_schema_src src = {0};
    status = 0;
    if (!in) {
        fprintf(stderr, "telepack ingest: cannot open %s: %s\n", a.from, strerror(errno));
        status = 1;
    } else if (tp_producer_new(&po, on_dr, &d, &x.p, msg, sizeof msg)) {
        fprintf(stderr, "telepack ingest: %s\n", msg);
        status = 2;
    } else if (tp_cli_schema_src_open(&src, in, !a.delimited, a.ignore_unknown, (size_t)a.max_record) ||
               tp_dyn_grouper_new(s, (uint32_t)a.batch, (size_t)a.max_record, &x.g) ||
               (a.layout == 1 && tp_dyn_colwriter_new(s, (uint32_t)a.batch, (size_t)a.max_record, &x.cw)) ||
               !(x.cctx = ZSTD_createCCtx())) {
        fprintf(stderr, "telepack ingest: out of memory\n");
        status = 1;
    }
    if (!status && x.cw)
        tp_dyn_grouper_keep_rows(x.g); /* the column writer encodes the decoded rows: one decode a record */
    if (!status && a.pack_by == 1) {
        if (tp_producer_partition_count(x.p, 10000, &x.partitions, msg, sizeof msg)) {
            fprintf(stderr, "telepack ingest: --pack-by partition: %s\n", msg);
            status = 1;
        } else {
            tp_dyn_grouper_by_partition(x.g, key_partition, &x);
        }
    }
    double t0 = tp_mono_s();
    if (!status)
        status = send_records(&x, &src, a.from, a.max_buffered);
    status = finish_deliveries(&x, &d, status);
    fprintf(stderr, "ingest: %" PRIu64 " records of %s (schema %s) -> %" PRIu64 " packs delivered to %s, %" PRIu64
            " bytes, in %.2f s\n", x.records, tp_schema_message_name(s), tp_schema_fingerprint_hex(s),
            (uint64_t)atomic_load(&d.ok), a.topic, x.bytes, tp_mono_s() - t0);
    ZSTD_freeCCtx(x.cctx);
    tp_dyn_colwriter_free(x.cw);
    tp_dyn_grouper_free(x.g);
    tp_cli_schema_src_close(&src);
    if (in)
        tp_cli_close(in);
    tp_schema_free(s);
    tp_cli_worker_free(&w);
    return status;
}
