/* `telepack ingest --schema ... --from FILE`: replays varint-delimited messages of a run-time schema into Kafka as
 * packs (v4 columns or v1 rows), one key per pack (the exact key text, a VIN or a decimal id, as the Kafka key) or,
 * with --pack-by partition, every key of a partition per pack (v4 with the several-keys flag, no key), with the pack
 * headers plus tp-schema (the message name) and tp-schema-fp (the fingerprint). A record that does not decode under
 * the schema is refused by number and byte offset before anything of it is sent. The gateway listeners
 * (--listen, --http-listen) do not take a custom schema yet: docs/SCHEMA.md, "The pipeline". */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "cli/pipeline_config.h"
#include "cli/schema_cli.h"
#include "common/clock.h"
#include "kafka/producer.h"
#include "kafka/schema_headers.h"
#include "schema/dyncols.h"
#include "schema/dynpack.h"
#include "telepack/delimited.h"

static void usage(void)
{
    printf("Usage: telepack ingest --schema FILE --message NAME --brokers HOST:PORT --topic T --from FILE|- [OPTIONS]\n"
           "\n"
           "Replays varint-delimited protobuf messages of NAME into Kafka: grouped per key (the vehicle), each\n"
           "group a pack (layout columns, pbpack v4, by default; rows, pbpack v1, for a group with fields the\n"
           "schema does not know or with --layout rows), keyed by the exact key text, with the pack\n"
           "headers, tp-schema: NAME and tp-schema-fp: the schema's fingerprint (docs/SCHEMA.md). Every message\n"
           "is decoded under the schema first; one that does not decode stops the replay (exit 2) before it is\n"
           "sent. With --schema only --from is served: the gateway listeners carry the built-in record.\n"
           "\n"
           "Options:\n" TP_CLI_SCHEMA_HELP
           "  --brokers HOST:PORT     bootstrap servers (or -X test.mock.num.brokers=1)\n"
           "  --topic T               topic to produce to (required)\n"
           "  --from FILE|-           the messages, varint-delimited\n"
           "  --pack-by vehicle|partition\n"
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
           TP_CLI_WORKER_HELP
           "  -h, --help              this text\n"
           "\n"
           "Exit status: 0 every pack delivered (acks=all), 1 Kafka failure, 2 bad options or a bad record.\n");
}

enum { O_BROKERS = 256, O_TOPIC, O_FROM, O_BATCH, O_MAX_BUFFERED, O_MAX_RECORD, O_LEVEL, O_LAYOUT, O_PACK_BY };

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
    int layout;  /* 0 rows, 1 columns */
    int pack_by; /* 0 vehicle (one key a pack), 1 partition */
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
        {"pack-by", required_argument, NULL, O_PACK_BY},
        TP_CLI_WORKER_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *a = (ingest_args){.batch = 0, .max_buffered = 1000000, .max_record = 65536, .level = 3, .layout = 1};
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
        case O_PACK_BY: e = tp_cli_parse_choice("pack-by", optarg, pack_by_words, &a->pack_by, msg, sizeof msg); break;
        case 'h': usage(); status = 0; break;
        case ':': status = tp_cli_usage_error("ingest", "option '%s' needs a value", argv[optind - 1]); break;
        default:
            status = tp_cli_usage_error("ingest", "unknown option '%s' (with --schema only --from replay is served: "
                                                  "see telepack ingest --schema x --help)", argv[optind - 1]);
        }
        if (e)
            status = tp_cli_usage_error("ingest", "%s", msg);
    }
    if (status < 0 && optind < argc)
        status = tp_cli_usage_error("ingest", "unexpected argument '%s'", argv[optind]);
    if (status < 0 && (!a->topic || !a->from))
        status = tp_cli_usage_error("ingest", "--topic and --from are required with --schema");
    if (status < 0 && a->pack_by == 1 && a->layout == 0)
        status = tp_cli_usage_error("ingest", "--pack-by partition needs --layout columns (a rows pack holds one "
                                              "key); drop one of them");
    if (a->batch == 0)
        a->batch = a->pack_by == 1 ? 10000 : 200;
    return status;
}

/* Reads the messages of rd (from `from`) into x's groups, sending each full group and the oldest while more than
 * max_buffered records are held, then the rest. Returns the exit status. */
static int send_records(sender *x, tp_delimited_reader *rd, const char *from, uint64_t max_buffered)
{
    int status = 0;
    uint64_t n_in = 0;
    while (!status) {
        const uint8_t *m;
        size_t n;
        tp_err e = tp_delimited_reader_next(rd, &m, &n);
        if (e == TP_ERR_END)
            break;
        if (e) {
            fprintf(stderr, "telepack ingest: %s: %s (the %" PRIu64 " records before it are sent)\n", from,
                    tp_delimited_reader_error(rd), n_in);
            status = e == TP_ERR_IO ? 1 : 2;
            break;
        }
        tp_dyn_group *full;
        if ((e = tp_dyn_grouper_add(x->g, m, n, &full))) {
            fprintf(stderr, "telepack ingest: %s: record %" PRIu64 " (ending at input byte %" PRIu64 ") is refused: %s "
                    "(the %" PRIu64 " records before it are sent)\n", from, n_in, tp_delimited_reader_offset(rd),
                    tp_dyn_grouper_error(x->g), n_in);
            status = e == TP_ERR_NOMEM ? 1 : 2;
            break;
        }
        n_in++;
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
    delivery d = {0};
    sender x = {.s = s, .level = (int)a.level};
    tp_producer_opts po = {.brokers = a.brokers, .topic = a.topic, .kafka_conf = w.kafka_props,
                           .nkafka_conf = w.n_kafka_props};
    FILE *in = tp_cli_open_in(a.from);
    tp_delimited_reader *rd = NULL;
    tp_delimited_reader_opts ro;
    tp_delimited_reader_opts_init(&ro);
    ro.file = in;
    ro.max_message_bytes = (size_t)a.max_record;
    status = 0;
    if (!in) {
        fprintf(stderr, "telepack ingest: cannot open %s: %s\n", a.from, strerror(errno));
        status = 1;
    } else if (tp_producer_new(&po, on_dr, &d, &x.p, msg, sizeof msg)) {
        fprintf(stderr, "telepack ingest: %s\n", msg);
        status = 2;
    } else if (tp_delimited_reader_new(&ro, &rd) ||
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
        status = send_records(&x, rd, a.from, a.max_buffered);
    status = finish_deliveries(&x, &d, status);
    fprintf(stderr, "ingest: %" PRIu64 " records of %s (schema %s) -> %" PRIu64 " packs delivered to %s, %" PRIu64
            " bytes, in %.2f s\n", x.records, tp_schema_message_name(s), tp_schema_fingerprint_hex(s),
            (uint64_t)atomic_load(&d.ok), a.topic, x.bytes, tp_mono_s() - t0);
    ZSTD_freeCCtx(x.cctx);
    tp_dyn_colwriter_free(x.cw);
    tp_dyn_grouper_free(x.g);
    tp_delimited_reader_free(rd);
    if (in)
        tp_cli_close(in);
    tp_schema_free(s);
    tp_cli_worker_free(&w);
    return status;
}
