/* `telepack demo`: the whole pipeline in one process. librdkafka's in-process mock cluster is the broker, simulated
 * gateways send the fleet over the real TCP gateway protocol on loopback to the ingest worker, and the sink worker
 * loads an SQLite file. It checks at the end that every record sent arrived exactly once, field by field. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "common/clock.h"
#include "ingest/gateway_client.h"
#include "ingest/ingest.h"
#include "common/log.h"
#include "sink/sink.h"
#include "sim/fleet.h"
#include "telepack/pack.h"
#include "telepack/record_json.h"

#define DEMO_TOPIC "vehicle-positions"
#define DEMO_GROUP "telepack-demo"
#define LATENCY_SLOTS (1u << 20) /* at most this many records carry a send timestamp for the latency figures */

typedef struct demo_opts {
    uint32_t vehicles;
    uint32_t seconds;
    uint32_t interval_ms;
    double rate;          /* records/s over all gateways; 0 = as fast as it goes */
    int live;             /* --live: the rate a live fleet sends at (every vehicle one record per interval) */
    const char *db;
    int partitions;
    int gateways;
    uint64_t seed;
    tp_batcher_opts batch;
    int level;
    int threads;
    tp_layout layout;
    int coded; /* --layout coded: columns, coded (docs/FORMAT_V2.md) */
    int batch_records_set; /* --batch-records given; else the ingest's default for the grouping */
} demo_opts;

/* One simulated gateway: its own slice of the fleet and its own TCP connection to the ingest worker. */
typedef struct gateway {
    pthread_t thread;
    int joined;
    const demo_opts *opts;
    struct demo *demo;
    uint32_t vehicles;
    uint64_t first_vehicle_id;
    uint64_t seed;
    int port;
    tp_err result;
    char error[256];
    _Atomic uint64_t sent;
    uint64_t json_bytes;
    uint64_t proto_bytes;
    uint64_t checksum; /* order-independent sum of record hashes, compared with the table's at the end */
} gateway;

typedef struct demo {
    demo_opts opts;
    int64_t start_ms;
    uint64_t first_vehicle_id;
    uint32_t slots_per_vehicle; /* latency slots per vehicle */
    uint32_t seq_stride;        /* every seq_stride-th record of a vehicle gets a send timestamp */
    _Atomic int64_t *sent_at_us; /* [vehicle index * slots_per_vehicle + seq / stride]; 0 = not recorded */
    int64_t *latencies_us;       /* collected by the sink thread */
    size_t n_latencies, cap_latencies;
    volatile sig_atomic_t stop;
} demo;

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* A 64-bit mix of a record's fields (bit patterns of the floating-point ones), for the end-to-end checksum. */
static uint64_t record_hash(const tp_record *r)
{
    uint64_t words[8];
    memcpy(&words[3], &r->latitude, 8);
    memcpy(&words[4], &r->longitude, 8);
    uint32_t f[3];
    memcpy(&f[0], &r->speed_kmh, 4);
    memcpy(&f[1], &r->heading_deg, 4);
    memcpy(&f[2], &r->accuracy_m, 4);
    words[0] = r->vehicle_id;
    words[1] = (uint64_t)r->sampled_at_ms;
    words[2] = r->seq;
    words[5] = (uint64_t)f[0] << 32 | f[1];
    words[6] = (uint64_t)f[2] << 32 | (uint32_t)r->meter_status;
    words[7] = 0;
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 7; i++) {
        uint64_t z = words[i] + h;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        h = z ^ (z >> 31);
    }
    return h;
}

static size_t latency_slot(const demo *d, uint64_t vehicle_id, uint64_t seq, int *ok)
{
    *ok = 0;
    if (vehicle_id < d->first_vehicle_id || seq % d->seq_stride)
        return 0;
    uint64_t v = vehicle_id - d->first_vehicle_id, s = seq / d->seq_stride;
    if (v >= d->opts.vehicles || s >= d->slots_per_vehicle)
        return 0;
    *ok = 1;
    return (size_t)(v * d->slots_per_vehicle + s);
}

static void *gateway_main(void *arg)
{
    gateway *g = arg;
    demo *d = g->demo;
    tp_fleet_opts fo;
    tp_fleet_opts_init(&fo);
    fo.vehicles = g->vehicles;
    fo.seconds = g->opts->seconds;
    fo.interval_ms = g->opts->interval_ms;
    fo.seed = g->seed;
    fo.start_ms = d->start_ms;
    fo.first_vehicle_id = g->first_vehicle_id;
    tp_fleet *fleet = NULL;
    tp_gateway_client *client = NULL;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", g->port);
    tp_gateway_client_opts co;
    tp_gateway_client_opts_init(&co);
    co.connect = addr;
    co.stop = &d->stop;
    /* Room for a full batch of each of its vehicles (as `telepack gen --connect` does), within 4..64 MiB: a smaller
     * window stalls the gateway until the ingest's linger timer flushes. */
    co.max_unacked_bytes = tp_gateway_window((uint64_t)g->vehicles * g->opts->batch.max_records * 64);
    g->result = tp_fleet_new(&fo, &fleet);
    if (!g->result)
        g->result = tp_gateway_client_new(&co, &client);
    if (g->result) {
        snprintf(g->error, sizeof g->error, "gateway setup failed: %s", tp_strerror(g->result));
        goto out;
    }
    double per_gateway_rate = g->opts->rate > 0 ? g->opts->rate / g->opts->gateways : 0;
    double t0 = tp_mono_s();
    tp_record r;
    char json[512];
    tp_err e;
    while ((e = tp_fleet_next(fleet, &r)) == TP_OK) {
        size_t jl = 0, pl = 0;
        uint8_t pb[TP_RECORD_MAX_ENCODED];
        tp_record_json_write(&r, json, sizeof json, &jl);
        tp_record_encode(&r, pb, sizeof pb, &pl);
        g->json_bytes += jl + 1; /* one NDJSON line */
        g->proto_bytes += pl;
        g->checksum += record_hash(&r);
        int ok;
        size_t slot = latency_slot(d, r.vehicle_id, r.seq, &ok);
        if (ok)
            atomic_store_explicit(&d->sent_at_us[slot], tp_wall_us(), memory_order_relaxed);
        e = tp_gateway_client_send(client, &r);
        if (e) {
            snprintf(g->error, sizeof g->error, "gateway to %s: send failed: %s", addr, tp_strerror(e));
            g->result = e;
            goto out;
        }
        uint64_t n = atomic_fetch_add(&g->sent, 1) + 1;
        if (per_gateway_rate > 0) {
            double due = t0 + (double)n / per_gateway_rate;
            double lag = due - tp_mono_s();
            if (lag > 0.0005)
                usleep((useconds_t)(lag * 1e6));
        }
    }
    if (e != TP_ERR_END) {
        g->result = e;
        snprintf(g->error, sizeof g->error, "fleet simulator failed: %s", tp_strerror(e));
        goto out;
    }
    /* Wait until the ingest worker acknowledged everything: then it is durably in Kafka. */
    while (!d->stop && (e = tp_gateway_client_drain(client, 500)) == TP_ERR_AGAIN)
        ;
    if (e) {
        g->result = e;
        snprintf(g->error, sizeof g->error, "gateway to %s: not every record was acknowledged: %s", addr,
                 tp_strerror(e));
    }
out:
    tp_gateway_client_free(client);
    tp_fleet_free(fleet);
    return NULL;
}

/* Called by the sink after the warehouse acknowledged a batch: sent → loaded latency of the sampled records. */
static void on_loaded(void *ctx, const tp_row_batch *rows)
{
    demo *d = ctx;
    int64_t now = tp_wall_us();
    for (size_t i = 0; i < rows->count; i++) {
        int ok;
        size_t slot = latency_slot(d, rows->vehicle_id[i], rows->seq[i], &ok);
        if (!ok)
            continue;
        int64_t sent = atomic_exchange_explicit(&d->sent_at_us[slot], 0, memory_order_relaxed);
        if (sent <= 0 || d->n_latencies == d->cap_latencies)
            continue;
        d->latencies_us[d->n_latencies++] = now - sent;
    }
}

typedef struct sink_thread {
    pthread_t thread;
    tp_sink *sink;
    tp_err result;
} sink_thread;

static void *sink_main(void *arg)
{
    sink_thread *st = arg;
    st->result = tp_sink_run(st->sink);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The table's record columns, in the order row_to_record reads them. */
#define ROW_SELECT                                                                                                 \
    "SELECT vehicle_id, sampled_at_ms, seq, latitude, longitude, speed_kmh, heading_deg, accuracy_m, meter_status" \
    " FROM vehicle_positions"

/* A float column: NULL is how the SQLite warehouse stores NaN (docs/WAREHOUSES.md). */
static double column_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static void row_to_record(sqlite3_stmt *st, tp_record *r)
{
    r->vehicle_id = (uint64_t)sqlite3_column_int64(st, 0);
    r->sampled_at_ms = sqlite3_column_int64(st, 1);
    r->seq = (uint64_t)sqlite3_column_int64(st, 2);
    r->latitude = column_real(st, 3);
    r->longitude = column_real(st, 4);
    r->speed_kmh = (float)column_real(st, 5);
    r->heading_deg = (float)column_real(st, 6);
    r->accuracy_m = (float)column_real(st, 7);
    r->meter_status = sqlite3_column_int(st, 8);
}

/* Reads the table back: row count, distinct identities and the order-independent checksum of every row. */
static int verify_table(const char *path, uint64_t *rows, uint64_t *distinct, uint64_t *checksum, char *err,
                        size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                ROW_SELECT,
                                -1, &st, NULL);
    *rows = *checksum = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        tp_record r;
        row_to_record(st, &r);
        *checksum += record_hash(&r);
        ++*rows;
        rc = SQLITE_OK;
    }
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(st);
        st = NULL;
        rc = sqlite3_prepare_v2(db,
                                "SELECT COUNT(*) FROM (SELECT DISTINCT vehicle_id, sampled_at_ms, seq"
                                " FROM vehicle_positions)",
                                -1, &st, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            *distinct = (uint64_t)sqlite3_column_int64(st, 0);
            rc = SQLITE_DONE;
        }
    }
    if (rc != SQLITE_DONE)
        snprintf(err, cap, "reading %s back failed: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* What the same records cost in the layout ingest did not use: re-packs the table, vehicle by vehicle in seq
 * order, in packs of `batch` records with both layouts, and returns the total compressed bytes of each. */
static int repack_sizes(const char *path, uint32_t batch, int level, uint64_t *rows_bytes, uint64_t *cols_bytes)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    tp_pack_writer *w[2] = {NULL, NULL};
    uint64_t *total[2] = {rows_bytes, cols_bytes};
    uint8_t *buf = NULL;
    size_t cap = 0;
    int ok = 0;
    *rows_bytes = *cols_bytes = 0;
    for (int i = 0; i < 2; i++) {
        tp_pack_writer_opts wo;
        tp_pack_writer_opts_init(&wo);
        wo.level = level;
        wo.layout = i ? TP_LAYOUT_COLUMNS : TP_LAYOUT_ROWS;
        if (tp_pack_writer_new(&wo, &w[i]))
            goto out;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           ROW_SELECT " ORDER BY vehicle_id, seq",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    int rc;
    uint64_t vehicle = 0;
    for (;;) {
        tp_record r;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            row_to_record(st, &r);
        } else if (rc != SQLITE_DONE) {
            goto out;
        }
        for (int i = 0; i < 2; i++) {
            uint32_t n = tp_pack_writer_count(w[i]);
            if (n && (rc == SQLITE_DONE || n == batch || r.vehicle_id != vehicle)) {
                size_t need = tp_pack_writer_bound(w[i]), len;
                if (need > cap) {
                    uint8_t *grown = realloc(buf, need);
                    if (!grown)
                        goto out;
                    buf = grown;
                    cap = need;
                }
                if (tp_pack_writer_finish(w[i], buf, cap, &len, NULL))
                    goto out;
                *total[i] += len;
            }
            if (rc == SQLITE_ROW && tp_pack_writer_add(w[i], &r))
                goto out;
        }
        if (rc == SQLITE_DONE)
            break;
        vehicle = r.vehicle_id;
    }
    ok = 1;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    tp_pack_writer_free(w[0]);
    tp_pack_writer_free(w[1]);
    free(buf);
    return ok ? 0 : -1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: telepack demo [OPTIONS]\n\n"
            "Runs the whole pipeline in one process with nothing to install: librdkafka's in-process mock cluster\n"
            "as the broker, a simulated fleet as gateways (TCP gateway protocol on loopback), the ingest worker\n"
            "(per-partition packs, zstd), the sink worker (consumer group) and SQLite as the warehouse. Prints progress,\n"
            "then a summary, and exits 0 only if every record sent is in the table exactly once, field by field.\n\n"
            "Options:\n"
            "  --vehicles N        simulated vehicles (default 2000)\n"
            "  --seconds S         simulated seconds, one sample per vehicle per interval (default 60)\n"
            "  --interval-ms MS    sampling interval (default 1000)\n"
            "  --rate R            records/s over all gateways (default 0: as fast as it goes: a replay, whose packs\n"
            "                      fill up; its bytes per record are a replay's, not a live fleet's)\n"
            "  --live              pace the fleet as a live one sends: --vehicles x 1000 / --interval-ms records/s,\n"
            "                      so packs hold what the linger collects (the run takes --seconds); the summary's\n"
            "                      bytes are then a live fleet's\n"
            "  --db PATH           SQLite file to load; recreated if it exists (default telepack-demo.db)\n"
            "  --partitions N      topic partitions on the mock cluster (default 8)\n"
            "  --gateways N        concurrent gateway connections (default 4)\n"
            "  --batch-records N   ingest: flush a pack at N records (default 10000 per partition; 200 per vehicle\n"
            "                      with --layout rows)\n"
            "  --linger-ms MS      ingest: flush a pack at the latest after MS (default 1000)\n"
            "  --level N           zstd level (default 3)\n"
            "  --layout L          pack layout: columns (default, pbpack v2), coded (columns through a range\n"
            "                      coder: fewer bytes, more CPU) or rows (pbpack v1)\n"
            "  --threads N         ingest compression threads (default: cores)\n"
            "  --seed N            fleet simulator seed (default 1)\n"
            "  --log-level L       debug|info|warn|error (default warn)\n"
            "  -h, --help          this text\n");
}

/* Parses the options into *o; on a usage error prints a sentence and returns 2 (then the caller exits with it). */
static int parse_args(int argc, char **argv, demo_opts *o)
{
    enum { O_VEHICLES = 256, O_SECONDS, O_INTERVAL, O_RATE, O_DB, O_PARTITIONS, O_GATEWAYS, O_BATCH, O_LINGER, O_LEVEL,
           O_THREADS, O_SEED, O_LOGLEVEL, O_LAYOUT, O_LIVE };
    static const struct option longopts[] = {
        {"vehicles", required_argument, 0, O_VEHICLES}, {"seconds", required_argument, 0, O_SECONDS},
        {"interval-ms", required_argument, 0, O_INTERVAL}, {"rate", required_argument, 0, O_RATE},
        {"db", required_argument, 0, O_DB}, {"partitions", required_argument, 0, O_PARTITIONS},
        {"gateways", required_argument, 0, O_GATEWAYS}, {"batch-records", required_argument, 0, O_BATCH},
        {"linger-ms", required_argument, 0, O_LINGER}, {"level", required_argument, 0, O_LEVEL},
        {"threads", required_argument, 0, O_THREADS}, {"seed", required_argument, 0, O_SEED},
        {"log-level", required_argument, 0, O_LOGLEVEL}, {"layout", required_argument, 0, O_LAYOUT},
        {"live", no_argument, 0, O_LIVE},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    static const char *const level_words[] = {"debug", "info", "warn", "error", NULL}; /* == tp_log_level */
    int level = TP_LOG_WARN, c;
    char msg[256];
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        uint64_t v = 0;
        tp_err e = TP_OK;
        switch (c) {
        case 'h':
            usage(stdout);
            exit(0);
        case O_VEHICLES:
            if (!(e = tp_cli_parse_u64("vehicles", optarg, 1, 10000000, &v, msg, sizeof msg)))
                o->vehicles = (uint32_t)v;
            break;
        case O_SECONDS:
            if (!(e = tp_cli_parse_u64("seconds", optarg, 1, 86400 * 30, &v, msg, sizeof msg)))
                o->seconds = (uint32_t)v;
            break;
        case O_INTERVAL:
            if (!(e = tp_cli_parse_u64("interval-ms", optarg, 10, 3600000, &v, msg, sizeof msg)))
                o->interval_ms = (uint32_t)v;
            break;
        case O_RATE: e = tp_cli_parse_double("rate", optarg, 0, 1e9, &o->rate, msg, sizeof msg); break;
        case O_LIVE: o->live = 1; break;
        case O_DB: o->db = optarg; break;
        case O_PARTITIONS:
            if (!(e = tp_cli_parse_u64("partitions", optarg, 1, 256, &v, msg, sizeof msg)))
                o->partitions = (int)v;
            break;
        case O_GATEWAYS:
            if (!(e = tp_cli_parse_u64("gateways", optarg, 1, 256, &v, msg, sizeof msg)))
                o->gateways = (int)v;
            break;
        case O_BATCH:
            if (!(e = tp_cli_parse_u64("batch-records", optarg, 1, 1000000, &v, msg, sizeof msg))) {
                o->batch.max_records = (uint32_t)v;
                o->batch_records_set = 1;
            }
            break;
        case O_LINGER:
            if (!(e = tp_cli_parse_u64("linger-ms", optarg, 0, 3600000, &v, msg, sizeof msg)))
                o->batch.linger_ms = (uint32_t)v;
            break;
        case O_LEVEL:
            if (!(e = tp_cli_parse_u64("level", optarg, 1, 22, &v, msg, sizeof msg)))
                o->level = (int)v;
            break;
        case O_THREADS:
            if (!(e = tp_cli_parse_u64("threads", optarg, 1, 256, &v, msg, sizeof msg)))
                o->threads = (int)v;
            break;
        case O_SEED: e = tp_cli_parse_u64("seed", optarg, 0, UINT64_MAX, &o->seed, msg, sizeof msg); break;
        case O_LOGLEVEL: e = tp_cli_parse_choice("log-level", optarg, level_words, &level, msg, sizeof msg); break;
        case O_LAYOUT: e = tp_cli_parse_layout(optarg, &o->layout, &o->coded, msg, sizeof msg); break;
        case ':': return tp_cli_usage_error("demo", "option '%s' needs a value", argv[optind - 1]);
        default: return tp_cli_usage_error("demo", "unknown option '%s'", argv[optind - 1]);
        }
        if (e)
            return tp_cli_usage_error("demo", "%s", msg);
    }
    if (optind < argc)
        return tp_cli_usage_error("demo", "unexpected argument '%s'", argv[optind]);
    if (o->live && o->rate > 0)
        return tp_cli_usage_error("demo", "--live sets the rate itself (--vehicles x 1000 / --interval-ms); give one "
                                          "of --live and --rate");
    if (o->live)
        o->rate = (double)o->vehicles * 1000.0 / (double)o->interval_ms;
    if (!o->batch_records_set) { /* the ingest's pack size for its grouping: per partition, or per vehicle (rows) */
        tp_ingest_opts io;
        tp_ingest_opts_init(&io);
        tp_ingest_opts_pack_by(&io, o->layout == TP_LAYOUT_ROWS ? TP_PACK_BY_VEHICLE : TP_PACK_BY_PARTITION);
        o->batch.max_records = io.batch.max_records;
        o->batch.max_bytes = io.batch.max_bytes;
    }
    if ((uint32_t)o->gateways > o->vehicles)
        o->gateways = (int)o->vehicles;
    tp_log_configure((tp_log_level)level, TP_LOG_TEXT);
    return 0;
}

static void remove_db(const char *path)
{
    char buf[4096];
    unlink(path);
    snprintf(buf, sizeof buf, "%s-wal", path);
    unlink(buf);
    snprintf(buf, sizeof buf, "%s-shm", path);
    unlink(buf);
}

/* The pipeline's parts, started in order and torn down by demo_teardown. */
typedef struct demo_run {
    demo *d;
    rd_kafka_t *holder;
    rd_kafka_mock_cluster_t *mc;
    const char *brokers;
    tp_sink *sink;
    tp_ingest *ing;
    gateway *gws;
    sink_thread st;
    int sink_started, gateways_started;
    uint64_t expected; /* records the gateways sent, all acknowledged */
    double elapsed;
    char err[512];
} demo_run;

/* Latency bookkeeping: a send timestamp for every seq_stride-th record of each vehicle. */
static int alloc_latency(demo *d)
{
    const demo_opts *o = &d->opts;
    uint64_t per_vehicle = (uint64_t)o->seconds * 1000 / o->interval_ms + 1;
    d->seq_stride = 1;
    while ((uint64_t)o->vehicles * (per_vehicle / d->seq_stride + 1) > LATENCY_SLOTS)
        d->seq_stride *= 2;
    d->slots_per_vehicle = (uint32_t)(per_vehicle / d->seq_stride + 2);
    d->sent_at_us = calloc((size_t)o->vehicles * d->slots_per_vehicle, sizeof *d->sent_at_us);
    d->cap_latencies = (size_t)o->vehicles * d->slots_per_vehicle;
    d->latencies_us = malloc(d->cap_latencies * sizeof *d->latencies_us);
    d->start_ms = tp_wall_ms();
    d->first_vehicle_id = 10001;
    return d->sent_at_us && d->latencies_us ? 0 : -1;
}

/* 1. The broker: librdkafka's mock cluster, living in this process. */
static int start_mock_cluster(demo_run *r)
{
    char errstr[256];
    rd_kafka_conf_t *hconf = rd_kafka_conf_new();
    rd_kafka_conf_set(hconf, "log_level", "3", errstr, sizeof errstr);
    r->holder = rd_kafka_new(RD_KAFKA_PRODUCER, hconf, errstr, sizeof errstr);
    if (!r->holder) {
        snprintf(r->err, sizeof r->err, "cannot create the mock cluster's handle: %s", errstr);
        return -1;
    }
    r->mc = rd_kafka_mock_cluster_new(r->holder, 1);
    if (!r->mc || rd_kafka_mock_topic_create(r->mc, DEMO_TOPIC, r->d->opts.partitions, 1) ||
        rd_kafka_mock_topic_create(r->mc, DEMO_TOPIC ".dlq", 1, 1)) {
        snprintf(r->err, sizeof r->err, "cannot start librdkafka's mock cluster");
        return -1;
    }
    r->brokers = rd_kafka_mock_cluster_bootstraps(r->mc);
    return 0;
}

/* 2. The sink first, so it is in the group before the first pack arrives. */
static int start_sink(demo_run *r)
{
    const char *db = r->d->opts.db;
    remove_db(db);
    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s", db);
    tp_sink_config sc;
    tp_sink_config_init(&sc);
    sc.brokers = r->brokers;
    sc.topic = DEMO_TOPIC;
    sc.group = DEMO_GROUP;
    sc.warehouse_url = url;
    sc.warehouse_opts.create_table = 1;
    sc.flush_ms = 200;
    sc.on_loaded = on_loaded;
    sc.on_loaded_ctx = r->d;
    static const char *const sink_props[] = {"log_level=3"};
    sc.kafka_props = sink_props;
    sc.n_kafka_props = 1;
    if (tp_sink_new(&sc, &r->sink, r->err, sizeof r->err))
        return -1;
    r->st.sink = r->sink;
    if (pthread_create(&r->st.thread, NULL, sink_main, &r->st)) {
        snprintf(r->err, sizeof r->err, "cannot start the sink thread");
        return -1;
    }
    r->sink_started = 1;
    return 0;
}

/* 3. The ingest worker, listening on an ephemeral loopback port. */
static int start_ingest(demo_run *r)
{
    const demo_opts *o = &r->d->opts;
    tp_ingest_opts io;
    tp_ingest_opts_init(&io);
    io.brokers = r->brokers;
    io.topic = DEMO_TOPIC;
    io.listen = "127.0.0.1:0";
    tp_ingest_opts_pack_by(&io, o->layout == TP_LAYOUT_ROWS ? TP_PACK_BY_VEHICLE : TP_PACK_BY_PARTITION);
    io.batch = o->batch;
    io.level = o->level;
    io.layout = o->layout;
    io.coded_columns = o->coded;
    io.max_conns_per_ip = 0; /* up to 256 simulated gateways, all from loopback */
    if (o->threads)
        io.threads = o->threads;
    /* The mock cluster serves uncompressed message sets very slowly to consumers (measured: ~130 msg/s); a
     * Kafka-level codec fixes that. lz4 costs little on top of packs that are already zstd. */
    static const char *const ingest_props[] = {"compression.codec=lz4", "log_level=3"};
    io.kafka_conf = ingest_props;
    io.nkafka_conf = 2;
    if (tp_ingest_new(&io, &r->ing, r->err, sizeof r->err) || tp_ingest_start(r->ing)) {
        if (!r->err[0])
            snprintf(r->err, sizeof r->err, "cannot start the ingest worker");
        return -1;
    }
    /* Wait (briefly) for the sink's first partition assignment. */
    for (int i = 0; i < 100 && !interrupted; i++) {
        tp_sink_stats ss;
        tp_sink_stats_get(r->sink, &ss);
        if (ss.rebalances > 0)
            break;
        usleep(100000);
    }
    return 0;
}

/* 4. The gateways: each simulates its slice of the fleet. */
static void start_gateways(demo_run *r)
{
    demo *d = r->d;
    const demo_opts *o = &d->opts;
    uint32_t base = o->vehicles / (uint32_t)o->gateways, extra = o->vehicles % (uint32_t)o->gateways;
    uint64_t next_id = d->first_vehicle_id;
    for (int i = 0; i < o->gateways; i++) {
        gateway *g = &r->gws[i];
        g->opts = o;
        g->demo = d;
        g->vehicles = base + ((uint32_t)i < extra);
        g->first_vehicle_id = next_id;
        next_id += g->vehicles;
        g->seed = o->seed * 1000003u + (uint64_t)i;
        g->port = tp_ingest_port(r->ing);
        if (pthread_create(&g->thread, NULL, gateway_main, g)) {
            snprintf(r->err, sizeof r->err, "cannot start gateway thread %d", i);
            d->stop = 1;
            break;
        }
        r->gateways_started++;
    }
}

/* Joins the gateways that finished; once all have, sets r->expected to what they sent and returns 1. */
static int gateways_finished(demo_run *r)
{
    int all = 1;
    for (int i = 0; i < r->gateways_started; i++) {
        gateway *g = &r->gws[i];
        if (!g->joined && pthread_tryjoin_np(g->thread, NULL) == 0)
            g->joined = 1;
        all &= g->joined;
    }
    if (all)
        for (int i = 0; i < r->gateways_started; i++)
            r->expected += atomic_load(&r->gws[i].sent);
    return all;
}

/* 5. Progress until the gateways are done (everything acknowledged), then until the table has it all. */
static void watch(demo_run *r, double t0)
{
    demo *d = r->d;
    int tty = isatty(2);
    double last = 0;
    int gateways_done = 0;
    for (;;) {
        if (interrupted)
            d->stop = 1;
        uint64_t sent = 0;
        for (int i = 0; i < r->gateways_started; i++)
            sent += atomic_load(&r->gws[i].sent);
        tp_ingest_stats is;
        tp_sink_stats ss;
        tp_ingest_stats_get(r->ing, &is);
        tp_sink_stats_get(r->sink, &ss);
        double now = tp_mono_s();
        if (now - last >= (tty ? 0.5 : 2.0)) {
            last = now;
            fprintf(stderr, "%s[%5.1fs] sent %" PRIu64 "  acked %" PRIu64 "  packs %" PRIu64 "  loaded %" PRIu64
                    "  (%.0f rec/s)%s",
                    tty ? "\r" : "", now - t0, sent, is.records_acked, is.packs_out, ss.rows_loaded,
                    (double)ss.rows_loaded / (now - t0 > 0 ? now - t0 : 1), tty ? "   " : "\n");
        }
        char why[256];
        if (tp_ingest_failed(r->ing, why, sizeof why)) {
            snprintf(r->err, sizeof r->err, "ingest worker failed: %s", why);
            d->stop = 1;
        }
        if (!gateways_done)
            gateways_done = gateways_finished(r); /* they finish once everything they sent is acknowledged */
        if (d->stop && gateways_done)
            break;
        if (gateways_done && ss.rows_loaded >= r->expected && ss.pending_rows == 0)
            break;
        usleep(50000);
    }
    r->elapsed = tp_mono_s() - t0;
    if (tty)
        fputc('\n', stderr);
}

/* Stops ingest and sink; the first failure of any part goes into r->err. */
static void stop_pipeline(demo_run *r, tp_ingest_stats *is, tp_sink_stats *ss)
{
    tp_err ie = tp_ingest_stop(r->ing, 30000);
    tp_ingest_stats_get(r->ing, is);
    tp_sink_stop(r->sink);
    pthread_join(r->st.thread, NULL);
    r->sink_started = 0;
    tp_sink_stats_get(r->sink, ss);
    for (int i = 0; i < r->gateways_started; i++)
        if (r->gws[i].result && !r->err[0])
            snprintf(r->err, sizeof r->err, "%s", r->gws[i].error);
    if (!r->err[0] && ie)
        snprintf(r->err, sizeof r->err, "ingest worker stopped with: %s", tp_strerror(ie));
    if (!r->err[0] && r->st.result)
        snprintf(r->err, sizeof r->err, "sink stopped with: %s", tp_sink_last_error(r->sink));
    if (interrupted && !r->err[0])
        snprintf(r->err, sizeof r->err, "interrupted");
}

/* 6. Verify the table against what was sent and print the summary; returns 1 when every record is there exactly
 * once, field by field. */
static int verify_and_summarise(demo_run *r, const tp_ingest_stats *is, const tp_sink_stats *ss)
{
    demo *d = r->d;
    const demo_opts *o = &d->opts;
    uint64_t json = 0, proto = 0, sum_sent = 0, expected = r->expected;
    for (int i = 0; i < r->gateways_started; i++) {
        json += r->gws[i].json_bytes;
        proto += r->gws[i].proto_bytes;
        sum_sent += r->gws[i].checksum;
    }
    uint64_t rows = 0, distinct = 0, sum_table = 0;
    char verr[512] = "";
    int verified = verify_table(o->db, &rows, &distinct, &sum_table, verr, sizeof verr) == 0;

    qsort(d->latencies_us, d->n_latencies, sizeof *d->latencies_us, cmp_i64);
    double p50 = d->n_latencies ? (double)d->latencies_us[d->n_latencies / 2] / 1000.0 : 0;
    double p99 = d->n_latencies ? (double)d->latencies_us[(size_t)((double)(d->n_latencies - 1) * 0.99)] / 1000.0 : 0;
    char jb[32], pbb[32], kb[32];
    tp_cli_bytes(json, jb, sizeof jb);
    tp_cli_bytes(proto, pbb, sizeof pbb);
    tp_cli_bytes(is->pack_bytes_out, kb, sizeof kb);
    double n = expected ? (double)expected : 1;
    printf("\ntelepack demo summary\n");
    printf("  records sent          %" PRIu64 " from %u vehicles over %d gateway connections\n", expected, o->vehicles,
           o->gateways);
    printf("  packs                 %" PRIu64 " (%.1f records/pack)\n", is->packs_out,
           is->packs_out ? (double)is->records_out / (double)is->packs_out : 0.0);
    printf("  bytes as JSON         %s (%.1f B/record)\n", jb, (double)json / n);
    printf("  bytes as protobuf     %s (%.1f B/record, %.1fx smaller than JSON)\n", pbb, (double)proto / n,
           proto ? (double)json / (double)proto : 0.0);
    printf("  bytes as packs        %s (%.1f B/record, %.1fx smaller than JSON; %s layout, on the wire)\n", kb,
           (double)is->pack_bytes_out / n, is->pack_bytes_out ? (double)json / (double)is->pack_bytes_out : 0.0,
           o->layout == TP_LAYOUT_ROWS ? "rows" : o->coded ? "coded" : "columns");
    if (o->live)
        printf("  pace                  live: %.0f records/s, one record per vehicle every %u ms; these are a live "
               "fleet's bytes\n", o->rate, o->interval_ms);
    else if (o->rate > 0)
        printf("  pace                  %.0f records/s (--rate)\n", o->rate);
    else
        printf("  pace                  replay, as fast as it goes: packs fill up, so these are a replay's bytes (a live "
               "fleet's: --live)\n");
    uint64_t rows_b = 0, cols_b = 0;
    uint32_t avg = is->packs_out ? (uint32_t)((is->records_out + is->packs_out / 2) / is->packs_out) : 1;
    if (verified && repack_sizes(o->db, avg ? avg : 1, o->level, &rows_b, &cols_b) == 0)
        printf("  both layouts          rows %.1f B/record, columns %.1f B/record (the table re-packed per vehicle,"
               " up to %u records a pack)\n",
               (double)rows_b / n, (double)cols_b / n, avg);
    printf("  throughput            %.0f records/s end to end (%.2f s)\n", (double)expected / r->elapsed, r->elapsed);
    printf("  sent -> loaded        p50 %.1f ms, p99 %.1f ms (%zu records sampled)\n", p50, p99, d->n_latencies);
    printf("  rows in the table     %" PRIu64 " (%" PRIu64 " distinct identities), DLQ %" PRIu64 "\n", rows, distinct,
           ss->packs_dlq);
    int exact = verified && rows == expected && distinct == expected && sum_table == sum_sent;
    if (!verified)
        printf("  verification          FAILED: %s\n", verr);
    else
        printf("  verification          %s\n", exact ? "every record exactly once, field by field"
                                                     : "FAILED: the table differs from the records sent");
    printf("\nTry it:\n"
           "  sqlite3 %s \"SELECT meter_status, COUNT(*) FROM vehicle_positions GROUP BY 1\"\n"
           "  sqlite3 %s \"SELECT vehicle_id, COUNT(*), ROUND(MAX(speed_kmh),1) AS max_kmh FROM vehicle_positions"
           " GROUP BY 1 ORDER BY 3 DESC LIMIT 5\"\n"
           "  sqlite3 %s \"SELECT vehicle_id, seq, sampled_at_ms, latitude, longitude FROM vehicle_positions"
           " WHERE vehicle_id = %" PRIu64 " ORDER BY seq LIMIT 5\"\n",
           o->db, o->db, o->db, d->first_vehicle_id);
    return exact;
}

static void demo_teardown(demo_run *r)
{
    r->d->stop = 1;
    for (int i = 0; i < r->gateways_started; i++)
        if (!r->gws[i].joined)
            pthread_join(r->gws[i].thread, NULL);
    if (r->sink_started) {
        tp_sink_stop(r->sink);
        pthread_join(r->st.thread, NULL);
    }
    tp_ingest_free(r->ing);
    tp_sink_free(r->sink);
    if (r->mc)
        rd_kafka_mock_cluster_destroy(r->mc);
    if (r->holder)
        rd_kafka_destroy(r->holder);
    free(r->gws);
    free(r->d->sent_at_us);
    free(r->d->latencies_us);
}

int tp_cmd_demo(int argc, char **argv)
{
    demo *d = calloc(1, sizeof *d);
    if (!d)
        return 1;
    demo_opts *o = &d->opts;
    o->vehicles = 2000;
    o->seconds = 60;
    o->interval_ms = 1000;
    o->db = "telepack-demo.db";
    o->partitions = 8;
    o->gateways = 4;
    o->seed = 1;
    o->level = 3;
    o->layout = TP_LAYOUT_COLUMNS;
    tp_batcher_opts_init(&o->batch);
    int status = parse_args(argc, argv, o);
    if (status) {
        free(d);
        return status;
    }
    demo_run r = {.d = d, .gws = calloc((size_t)o->gateways, sizeof *r.gws)};
    status = 1;
    if (!r.gws || alloc_latency(d)) {
        snprintf(r.err, sizeof r.err, "out of memory");
    } else {
        tp_cli_signals_install(on_signal, 1);
        if (!start_mock_cluster(&r) && !start_sink(&r) && !start_ingest(&r)) {
            fprintf(stderr,
                    "telepack demo: %u vehicles x %u s (every %u ms) -> %d gateways -> ingest (packs per %s of <= %u "
                    "records, zstd-%d) -> mock Kafka (%d partitions) -> sink -> %s\n",
                    o->vehicles, o->seconds, o->interval_ms, o->gateways,
                    o->layout == TP_LAYOUT_ROWS ? "vehicle" : "partition", o->batch.max_records, o->level,
                    o->partitions, o->db);
            double t0 = tp_mono_s();
            start_gateways(&r);
            watch(&r, t0);
            tp_ingest_stats is;
            tp_sink_stats ss;
            stop_pipeline(&r, &is, &ss);
            int exact = verify_and_summarise(&r, &is, &ss);
            if (r.err[0])
                fprintf(stderr, "telepack demo: %s\n", r.err);
            status = exact && !r.err[0] ? 0 : 1;
        }
    }
    if (r.err[0] && status && !r.gateways_started)
        fprintf(stderr, "telepack demo: %s\n", r.err);
    demo_teardown(&r);
    free(d);
    return status;
}
