/* Shared plumbing of the end-to-end baselines: reads records (delimited protobuf or NDJSON), produces one Kafka
 * message per record, or consumes them as a consumer group and inserts each poll round into ClickHouse over HTTP.
 * Usage is printed by `baseline_json --help`. Benchmark code: it prints and exits. */
#include "baseline.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "telepack/delimited.h"
#include "telepack/record_json.h"
#include "common/clock.h"

#define MAX_X 32

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...);

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void bl_buf_reserve(bl_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return;
    size_t cap = b->cap ? b->cap : 1 << 20;
    while (cap - b->len < more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        die("out of memory growing a buffer to %zu bytes", cap);
    b->p = p;
    b->cap = cap;
}

typedef struct opts {
    const char *mode, *brokers, *topic, *group, *clickhouse, *db, *table, *input, *input_format, *ready_file;
    int create_table;
    long batch_rows, flush_ms;
    const char *x[MAX_X];
    int nx;
} opts;

static void usage(const bl_codec *c, FILE *f)
{
    fprintf(f,
            "Usage: baseline_%s produce --brokers B --topic T [--input FILE|-] [--input-format delimited|ndjson]\n"
            "       baseline_%s consume --brokers B --topic T --group G --clickhouse http://HOST:PORT --db D\n"
            "                      --table T [--create-table] [--batch-rows N] [--flush-ms N] [--ready-file F]\n"
            "\n"
            "A baseline for bench/e2e: one %s record per Kafka message (key = vehicle id). produce reads records\n"
            "(default: delimited protobuf on stdin) and sends them; consume reads them as a consumer group, inserts\n"
            "them into ClickHouse as %s when N rows are buffered (default 100000) or the oldest is N ms old\n"
            "(default 1000), then commits the offsets; SIGTERM/SIGINT: insert what is buffered and exit.\n"
            "Both print a one-line JSON summary on stdout. -X key=value passes a librdkafka property.\n",
            c->name, c->name, c->name, c->insert_format);
}

static void parse(const bl_codec *c, int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->input = "-";
    o->input_format = "delimited";
    o->db = "bench";
    o->batch_rows = 100000;
    o->flush_ms = 1000;
    static const struct option lo[] = {
        {"brokers", required_argument, 0, 'b'},      {"topic", required_argument, 0, 't'},
        {"group", required_argument, 0, 'g'},        {"clickhouse", required_argument, 0, 'c'},
        {"db", required_argument, 0, 'd'},           {"table", required_argument, 0, 'T'},
        {"input", required_argument, 0, 'i'},        {"input-format", required_argument, 0, 'f'},
        {"ready-file", required_argument, 0, 'r'},   {"create-table", no_argument, 0, 'C'},
        {"batch-rows", required_argument, 0, 'n'},   {"flush-ms", required_argument, 0, 'm'},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0},
    };
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(c, stdout);
        exit(0);
    }
    if (argc < 2 || (strcmp(argv[1], "produce") && strcmp(argv[1], "consume"))) {
        usage(c, stderr);
        exit(2);
    }
    o->mode = argv[1];
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "X:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'b': o->brokers = optarg; break;
        case 't': o->topic = optarg; break;
        case 'g': o->group = optarg; break;
        case 'c': o->clickhouse = optarg; break;
        case 'd': o->db = optarg; break;
        case 'T': o->table = optarg; break;
        case 'i': o->input = optarg; break;
        case 'f': o->input_format = optarg; break;
        case 'r': o->ready_file = optarg; break;
        case 'C': o->create_table = 1; break;
        case 'n': o->batch_rows = strtol(optarg, NULL, 10); break;
        case 'm': o->flush_ms = strtol(optarg, NULL, 10); break;
        case 'X':
            if (o->nx == MAX_X)
                die("too many -X properties (at most %d)", MAX_X);
            o->x[o->nx++] = optarg;
            break;
        case 'h': usage(c, stdout); exit(0);
        default: usage(c, stderr); exit(2);
        }
    }
    if (!o->brokers || !o->topic)
        die("%s: --brokers and --topic are required", o->mode);
    if (!strcmp(o->mode, "consume") && (!o->group || !o->clickhouse || !o->table))
        die("%s: --group, --clickhouse and --table are required", o->mode);
    if (o->batch_rows < 1 || o->flush_ms < 1)
        die("%s: --batch-rows and --flush-ms must be positive", o->mode);
    if (strcmp(o->input_format, "delimited") && strcmp(o->input_format, "ndjson"))
        die("--input-format %s is not delimited or ndjson", o->input_format);
}

static void conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "Kafka property %s=%s: %s\n", k, v, err);
        exit(2);
    }
}

static void conf_x(rd_kafka_conf_t *conf, const opts *o)
{
    for (int i = 0; i < o->nx; i++) {
        char kv[512];
        snprintf(kv, sizeof kv, "%s", o->x[i]);
        char *eq = strchr(kv, '=');
        if (!eq)
            die("-X %s is not key=value", o->x[i]);
        *eq = 0;
        conf_set(conf, kv, eq + 1);
    }
}

/* ---- producer ---- */

/* Reads what the input holds now (read(2) returns a partial count on a pipe), so a paced feed is produced as it
 * arrives: through stdio (fread) a pipe's records would wait until 64 KiB had come, i.e. be batched ~0.7 s at a
 * time at 2,000 records/s, which is not what "linger.ms=20" means. */
static long read_now(void *ctx, void *buf, size_t cap)
{
    for (;;) {
        ssize_t n = read(*(int *)ctx, buf, cap);
        if (n >= 0 || errno != EINTR)
            return (long)n;
    }
}

static uint64_t g_delivery_failures;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->err) {
        if (g_delivery_failures++ < 5)
            fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
    }
}

static int produce(const bl_codec *c, const opts *o)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", o->brokers);
    conf_set(conf, "enable.idempotence", "true");
    conf_set(conf, "acks", "all");
    conf_set(conf, "queue.buffering.max.messages", "1000000");
    for (const char **d = c->producer_defaults; d && *d; d += 2)
        conf_set(conf, d[0], d[1]);
    conf_x(conf, o);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk)
        die("cannot create the producer: %s", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);

    FILE *in = strcmp(o->input, "-") ? fopen(o->input, "rb") : stdin;
    if (!in)
        die("cannot open --input %s", o->input);
    tp_ndjson_reader *nd = NULL;
    tp_delimited_reader *dr = NULL;
    tp_delimited_reader_opts ro;
    tp_delimited_reader_opts_init(&ro);
    int in_fd = fileno(in);
    ro.read = read_now;
    ro.read_ctx = &in_fd;
    if (!strcmp(o->input_format, "ndjson") ? tp_ndjson_reader_new(in, 0, &nd) : tp_delimited_reader_new(&ro, &dr))
        die("cannot read %s", o->input);

    uint64_t n = 0, value_bytes = 0, key_bytes = 0;
    double t0 = tp_mono_s();
    uint8_t out[1024];
    for (;;) {
        tp_record r;
        char msg[256];
        if (nd) {
            tp_err e = tp_ndjson_reader_next(nd, &r, msg, sizeof msg);
            if (e == TP_ERR_END)
                break;
            if (e)
                die("input: %s", msg);
        } else {
            tp_err e = tp_delimited_reader_next_record(dr, &r);
            if (e == TP_ERR_END)
                break;
            if (e)
                die("input %s: %s", o->input, tp_delimited_reader_error(dr));
        }
        size_t vlen = c->encode(&r, out, sizeof out);
        if (!vlen)
            die("cannot encode a %s record", c->name);
        char key[24];
        int kl = snprintf(key, sizeof key, "%" PRIu64, r.vehicle_id);
        for (;;) {
            if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, out, vlen, key, (size_t)kl,
                                 NULL) == 0)
                break;
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce failed: %s", rd_kafka_err2str(rd_kafka_last_error()));
            rd_kafka_poll(rk, 10);
        }
        rd_kafka_poll(rk, 0);
        n++;
        value_bytes += vlen;
        key_bytes += (uint64_t)kl;
    }
    while (rd_kafka_outq_len(rk) > 0)
        rd_kafka_poll(rk, 50);
    double el = tp_mono_s() - t0;
    printf("{\"mode\":\"produce\",\"codec\":\"%s\",\"records\":%" PRIu64 ",\"value_bytes\":%" PRIu64
           ",\"key_bytes\":%" PRIu64 ",\"delivery_failures\":%" PRIu64 ",\"seconds\":%.3f}\n",
           c->name, n, value_bytes, key_bytes, g_delivery_failures, el);
    tp_ndjson_reader_free(nd);
    tp_delimited_reader_free(dr);
    if (in != stdin)
        fclose(in);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return g_delivery_failures ? 1 : 0;
}

/* ---- consumer ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    bl_buf *b = ud;
    size_t len = size * n;
    if (b->len + len < 4096) {
        bl_buf_reserve(b, len + 1);
        memcpy(b->p + b->len, p, len);
        b->len += len;
        b->p[b->len] = 0;
    }
    return len;
}

/* POSTs body to ClickHouse with query; exits on failure (a benchmark does not retry). */
static void ch_post(CURL *curl, const opts *o, const char *query, const uint8_t *body, size_t len)
{
    char *q = curl_easy_escape(curl, query, 0);
    char url[4096];
    snprintf(url, sizeof url, "%s/?query=%s", o->clickhouse, q);
    curl_free(q);
    bl_buf resp = {0};
    long code = 0;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
    CURLcode e = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (e != CURLE_OK || code != 200) {
        fprintf(stderr, "ClickHouse at %s: %s (HTTP %ld) %s\n", o->clickhouse, curl_easy_strerror(e), code,
                resp.p ? (char *)resp.p : "");
        exit(1);
    }
    free(resp.p);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    const opts *o = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        if (o->ready_file) {
            FILE *f = fopen(o->ready_file, "w");
            if (f) {
                fprintf(f, "%d\n", parts->cnt);
                fclose(f);
            }
        }
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static int consume(const bl_codec *c, opts *o)
{
    char err[512];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *curl = curl_easy_init();
    if (!curl)
        die("cannot create a curl handle");
    if (o->create_table) {
        char q[4096], t[512];
        snprintf(q, sizeof q, "CREATE DATABASE IF NOT EXISTS %s", o->db);
        ch_post(curl, o, q, NULL, 0);
        snprintf(t, sizeof t, "%s.%s", o->db, o->table);
        snprintf(q, sizeof q, "CREATE TABLE IF NOT EXISTS %s %s", t, c->table_ddl);
        ch_post(curl, o, q, NULL, 0);
    }
    char insert[512];
    snprintf(insert, sizeof insert, "INSERT INTO %s.%s FORMAT %s", o->db, o->table, c->insert_format);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", o->brokers);
    conf_set(conf, "group.id", o->group);
    conf_set(conf, "auto.offset.reset", "earliest");
    conf_set(conf, "enable.auto.commit", "false");
    conf_set(conf, "check.crcs", "true");
    conf_x(conf, o);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, o);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        die("cannot create the consumer: %s", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, o->topic, RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(rk, sub))
        die("cannot subscribe to %s", o->topic);
    rd_kafka_topic_partition_list_destroy(sub);

    bl_buf body = {0};
    uint64_t rows = 0, batch = 0, loads = 0, bad = 0, body_bytes = 0;
    double first = 0;
    for (;;) {
        rd_kafka_message_t *m = g_stop ? NULL : rd_kafka_consumer_poll(rk, 100);
        if (m) {
            if (!m->err) {
                if (c->append(m->payload, m->len, &body) == 0) {
                    if (!batch)
                        first = tp_mono_s();
                    batch++;
                } else {
                    bad++;
                }
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                fprintf(stderr, "consumer: %s\n", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
        }
        if (batch && (g_stop || batch >= (uint64_t)o->batch_rows || tp_mono_s() - first >= (double)o->flush_ms / 1e3)) {
            ch_post(curl, o, insert, body.p, body.len);
            rd_kafka_commit(rk, NULL, 1); /* the positions: every message before them is in ClickHouse */
            rows += batch;
            body_bytes += body.len;
            loads++;
            batch = 0;
            body.len = 0;
        }
        if (g_stop)
            break;
    }
    rd_kafka_commit(rk, NULL, 0);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    printf("{\"mode\":\"consume\",\"codec\":\"%s\",\"rows\":%" PRIu64 ",\"loads\":%" PRIu64
           ",\"insert_body_bytes\":%" PRIu64 ",\"bad_messages\":%" PRIu64 "}\n",
           c->name, rows, loads, body_bytes, bad);
    free(body.p);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return 0;
}

int bl_main(const bl_codec *codec, int argc, char **argv)
{
    opts o;
    parse(codec, argc, argv, &o);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return !strcmp(o.mode, "produce") ? produce(codec, &o) : consume(codec, &o);
}
