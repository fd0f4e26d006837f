/* The sink against librdkafka's in-process mock cluster and a SQLite warehouse: every produced record loaded once,
 * field by field; a second instance loads nothing twice; corrupt packs go to the DLQ with offsets advancing; a
 * warehouse outage pauses and retries without loss; a permanent warehouse error stops without storing offsets; a
 * batch the warehouse refuses is split down to the refused pack (built-in record and run-time schema). */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "check.h"
#include "dict_fixture.h"
#include "common/log.h"
#include "kafka/pack_headers.h"
#include "kafka/schema_headers.h"
#include "schema/schema.h"
#include "sink/sink.h"
#include "telepack/pack.h"
#include <zstd.h>

#define PARTS 4
#define VEHICLES 50
#define RECORDS_PER_VEHICLE 40
#define RECORDS_PER_PACK 10

static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock, *mock2;
static char brokers[512], brokers2[512];
static char dir[256];

/* The reference record `i` of vehicle `v` (salt separates data sets); doubles use all 53 bits. */
static void make_record(uint64_t v, uint64_t i, uint64_t salt, tp_record *r)
{
    memset(r, 0, sizeof *r);
    r->vehicle_id = 1000 + v + salt * 100000;
    r->sampled_at_ms = INT64_C(1795000000000) + (int64_t)(i * 1000 + v);
    r->seq = i + 1;
    r->latitude = 22.3 + (double)v / 3.0e3 + (double)i / 7.0e5;
    r->longitude = 114.1 + (double)i / 3.0e5 + 1e-13 * (double)v;
    r->speed_kmh = (float)(i % 120) / 3.0f;
    r->heading_deg = (float)((v * 37 + i) % 360) + 0.25f;
    r->accuracy_m = 1.0f / (float)(1 + i % 7);
    r->meter_status = (int32_t)((v + i) % 5);
}

static rd_kafka_t *new_producer_to(const char *bootstrap)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof errstr);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!p) {
        fprintf(stderr, "producer: %s\n", errstr);
        exit(1);
    }
    return p;
}

static rd_kafka_t *new_producer(void)
{
    return new_producer_to(brokers);
}

/* How to spoil a pack before producing it. */
typedef enum spoil { GOOD, TRUNCATED, FLIPPED, GARBAGE_HEADERS, NO_HEADERS, EMPTY, BAD_COUNT, BAD_VERSION, HUGE_COUNT } spoil;

/* Produces one pack of `n` records of vehicle v starting at record `first` to topic/partition, spoiled as asked. */
static void produce_pack(rd_kafka_t *p, tp_pack_writer *w, const char *topic, int32_t partition, uint64_t v,
                         uint64_t first, uint64_t n, uint64_t salt, spoil how)
{
    for (uint64_t i = first; i < first + n; i++) {
        tp_record r;
        make_record(v, i, salt, &r);
        CHECK_ERR(tp_pack_writer_add(w, &r), TP_OK);
    }
    size_t cap = tp_pack_writer_bound(w), len = 0;
    uint8_t *buf = malloc(cap);
    tp_pack_meta meta;
    CHECK_ERR(tp_pack_writer_finish(w, buf, cap, &len, &meta), TP_OK);
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    if (how == BAD_COUNT)
        meta.record_count += 1; /* the header says one record more than the pack holds */
    if (how == HUGE_COUNT)
        meta.record_count = 1000000000; /* must not make the sink allocate a billion rows */
    if (how == BAD_VERSION)
        meta.format_version = 9; /* a format from the future */
    if (how != NO_HEADERS)
        CHECK_ERR(tp_pack_meta_to_headers(&meta, h), TP_OK);
    if (how == GARBAGE_HEADERS) {
        /* Replace every header value with garbage: the reader must reject them with a sentence. */
        rd_kafka_headers_destroy(h);
        h = rd_kafka_headers_new(8);
        rd_kafka_headers_t *good = rd_kafka_headers_new(8);
        tp_pack_meta_to_headers(&meta, good);
        const char *name;
        const void *val;
        size_t vlen;
        for (size_t i = 0; !rd_kafka_header_get_all(good, i, &name, &val, &vlen); i++)
            rd_kafka_header_add(h, name, -1, "\xff\x01zz", 4);
        rd_kafka_headers_destroy(good);
    }
    if (how == TRUNCATED)
        len = len / 2;
    if (how == FLIPPED)
        buf[len / 2] ^= 0x5a;
    if (how == EMPTY)
        len = 0;
    char key[32];
    snprintf(key, sizeof key, "%" PRIu64, 1000 + v + salt * 100000);
    rd_kafka_resp_err_t e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                              RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(len ? buf : NULL, len),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                                              RD_KAFKA_V_END);
    CHECK_INT(e, 0);
    if (e)
        rd_kafka_headers_destroy(h);
    free(buf);
}

/* A rows pack (v1, zstd) whose content is `n` zero bytes: n empty records of vehicle 0, all headers consistent.
 * The memory-amplification shape: a few dozen bytes on the wire, n records, 68 bytes each once decoded. */
static void produce_zero_bomb(rd_kafka_t *p, const char *topic, int32_t partition, size_t n)
{
    uint8_t *content = calloc(1, n);
    size_t cap = ZSTD_compressBound(n);
    uint8_t *frame = malloc(cap);
    size_t len = ZSTD_compress(frame, cap, content, n, 19);
    CHECK(!ZSTD_isError(len));
    tp_pack_meta meta = {1, TP_LAYOUT_ROWS, TP_CODEC_ZSTD, TP_SCHEMA_VERSION, (uint32_t)n, 0, 0, n};
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    CHECK_ERR(tp_pack_meta_to_headers(&meta, h), TP_OK);
    CHECK_INT(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY("bomb", 4),
                                RD_KAFKA_V_VALUE(frame, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
              0);
    free(frame);
    free(content);
}

/* A column pack (v2) of n equal records: every column is const, so its content is a few dozen bytes whatever n
 * is (fewer bytes than records). Returns its content size. */
static uint64_t produce_equal_columns(rd_kafka_t *p, const char *topic, int32_t partition, uint64_t v, uint32_t n)
{
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    o.layout = TP_LAYOUT_COLUMNS;
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(&o, &w), TP_OK);
    tp_record r;
    make_record(v, 0, 9, &r);
    for (uint32_t i = 0; i < n; i++)
        CHECK_ERR(tp_pack_writer_add(w, &r), TP_OK);
    size_t cap = tp_pack_writer_bound(w), len = 0;
    uint8_t *buf = malloc(cap);
    tp_pack_meta meta;
    CHECK_ERR(tp_pack_writer_finish(w, buf, cap, &len, &meta), TP_OK);
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    CHECK_ERR(tp_pack_meta_to_headers(&meta, h), TP_OK);
    char key[32];
    snprintf(key, sizeof key, "%" PRIu64, r.vehicle_id);
    CHECK_INT(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
              0);
    free(buf);
    tp_pack_writer_free(w);
    return meta.content_size;
}

/* Produces VEHICLES x RECORDS_PER_VEHICLE records (salt) to topic, one vehicle per partition by id. */
static uint64_t produce_fleet(const char *topic, uint64_t salt)
{
    rd_kafka_t *p = new_producer();
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(NULL, &w), TP_OK);
    for (uint64_t i = 0; i < RECORDS_PER_VEHICLE; i += RECORDS_PER_PACK)
        for (uint64_t v = 0; v < VEHICLES; v++)
            produce_pack(p, w, topic, (int32_t)(v % PARTS), v, i, RECORDS_PER_PACK, salt, GOOD);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    return (uint64_t)VEHICLES * RECORDS_PER_VEHICLE;
}

/* ---- running a sink in a thread ---- */

typedef struct runner {
    pthread_t thread;
    tp_sink *sink;
    tp_err result;
    atomic_int done;
} runner;

static void *run_thread(void *arg)
{
    runner *r = arg;
    r->result = tp_sink_run(r->sink);
    atomic_store(&r->done, 1);
    return NULL;
}

static void base_config(tp_sink_config *c, const char *topic, const char *group, const char *db)
{
    static char url[512];
    tp_sink_config_init(c);
    snprintf(url, sizeof url, "sqlite:%s/%s", dir, db);
    c->brokers = brokers;
    c->topic = topic;
    c->group = group;
    c->warehouse_url = url;
    c->warehouse_opts.create_table = 1;
    c->batch_rows = 700; /* several loads, and packs that do not fit the rest of a batch */
    c->flush_ms = 50;
    c->backoff_min_ms = 10;
    c->backoff_max_ms = 40;
    static const char *const props[] = {"session.timeout.ms=6000", "heartbeat.interval.ms=500",
                                        "topic.metadata.refresh.interval.ms=1000"};
    c->kafka_props = props;
    c->n_kafka_props = 3;
}

static int start(runner *r, const tp_sink_config *c)
{
    char err[512];
    memset(r, 0, sizeof *r);
    tp_err e = tp_sink_new(c, &r->sink, err, sizeof err);
    CHECK_ERR(e, TP_OK);
    if (e) {
        fprintf(stderr, "tp_sink_new: %s\n", err);
        return -1;
    }
    pthread_create(&r->thread, NULL, run_thread, r);
    return 0;
}

/* Waits (at most 30 s) until the sink loaded `rows` rows and dead-lettered `dlq` packs, or its run ended. */
static int wait_for(runner *r, uint64_t rows, uint64_t dlq)
{
    for (int i = 0; i < 3000; i++) {
        tp_sink_stats st;
        tp_sink_stats_get(r->sink, &st);
        if (st.rows_loaded >= rows && st.packs_dlq >= dlq && st.pending_rows == 0)
            return 0;
        if (atomic_load(&r->done))
            break;
        usleep(10000);
    }
    tp_sink_stats st;
    tp_sink_stats_get(r->sink, &st);
    fprintf(stderr, "timed out: %" PRIu64 "/%" PRIu64 " rows, %" PRIu64 "/%" PRIu64 " dlq\n", st.rows_loaded, rows,
            st.packs_dlq, dlq);
    return -1;
}

static tp_err finish(runner *r, tp_sink_stats *st)
{
    tp_sink_stop(r->sink);
    pthread_join(r->thread, NULL);
    if (st)
        tp_sink_stats_get(r->sink, st);
    tp_sink_free(r->sink);
    return r->result;
}

/* ---- checking the table ---- */

static sqlite3 *open_db(const char *db)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, db);
    sqlite3 *h = NULL;
    if (sqlite3_open(path, &h) != SQLITE_OK) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    return h;
}

static int64_t query_int(const char *db, const char *sql)
{
    sqlite3 *h = open_db(db);
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(h));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

/* Every record of the fleet (salt) is in the table once, every field equal (doubles exactly). */
static void check_fleet(const char *db, uint64_t salt, uint64_t vehicles, uint64_t per_vehicle, int parts)
{
    sqlite3 *h = open_db(db);
    sqlite3_stmt *st = NULL;
    CHECK_INT(sqlite3_prepare_v2(h,
                                 "SELECT latitude, longitude, speed_kmh, heading_deg, accuracy_m, meter_status, "
                                 "kafka_partition, count(*) FROM vehicle_positions WHERE vehicle_id = ? AND "
                                 "sampled_at_ms = ? AND seq = ?",
                                 -1, &st, NULL),
              SQLITE_OK);
    size_t bad = 0;
    for (uint64_t v = 0; v < vehicles; v++)
        for (uint64_t i = 0; i < per_vehicle; i++) {
            tp_record r;
            make_record(v, i, salt, &r);
            sqlite3_bind_int64(st, 1, (sqlite3_int64)r.vehicle_id);
            sqlite3_bind_int64(st, 2, r.sampled_at_ms);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)r.seq);
            int ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 7) == 1 &&
                     sqlite3_column_double(st, 0) == r.latitude && sqlite3_column_double(st, 1) == r.longitude &&
                     (float)sqlite3_column_double(st, 2) == r.speed_kmh &&
                     (float)sqlite3_column_double(st, 3) == r.heading_deg &&
                     (float)sqlite3_column_double(st, 4) == r.accuracy_m &&
                     sqlite3_column_int(st, 5) == r.meter_status &&
                     sqlite3_column_int(st, 6) == (int)(v % (uint64_t)parts);
            if (!ok && bad++ < 5)
                fprintf(stderr, "vehicle %" PRIu64 " record %" PRIu64 " missing, doubled or different\n", v, i);
            sqlite3_reset(st);
        }
    CHECK_INT(bad, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
}

/* The warehouse's next offset for each partition equals the topic's high watermark. */
static void check_offsets_at_end(const char *db, const char *topic, int parts)
{
    rd_kafka_t *p = new_producer();
    for (int32_t i = 0; i < parts; i++) {
        int64_t lo = -1, hi = -1;
        CHECK_INT(rd_kafka_query_watermark_offsets(p, topic, i, &lo, &hi, 5000), 0);
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT next_offset FROM kafka_offsets WHERE topic = '%s' AND \"partition\" = %" PRId32, topic, i);
        CHECK_INT(query_int(db, sql), hi);
    }
    rd_kafka_destroy(p);
}

/* ---- tests ---- */

/* Each test has a setup (produce, start a sink) and a check (wait, stop, compare). The mock cluster holds a
 * first consumer-group join for 3 s, so the independent sinks run side by side in one phase. */

typedef struct hook_state {
    int calls;
    int fail;
    tp_err err;
    size_t rows_at_first_failure, rows_at_success;
} hook_state;

/* Warehouse fault injection: the first `fail` loads return `err`, later ones go through. */
static tp_err hook(void *ctx, size_t rows)
{
    hook_state *h = ctx;
    h->calls++;
    if (h->calls == 1)
        h->rows_at_first_failure = rows;
    if (h->calls <= h->fail)
        return h->err;
    if (!h->rows_at_success)
        h->rows_at_success = rows;
    return TP_OK;
}

static runner fleet_r, dlq_r, outage_r, perm_r;
static tp_metrics *fleet_metrics;
static uint64_t fleet_n, outage_n, dlq_good;
static hook_state outage_hook = {0, 4, TP_ERR_UNAVAILABLE, 0, 0};
static hook_state perm_hook = {0, 1000000, TP_ERR_WAREHOUSE, 0, 0};

/* 50 vehicles x 40 records over 4 partitions, batches of 700 rows: every record loaded once, field by field. */
static void fleet_start(void)
{
    rd_kafka_mock_topic_create(mock, "fleet", PARTS, 1);
    fleet_n = produce_fleet("fleet", 0);
    tp_sink_config c;
    base_config(&c, "fleet", "g1", "fleet.db");
    CHECK_ERR(tp_metrics_new(&fleet_metrics), TP_OK);
    c.metrics = fleet_metrics;
    start(&fleet_r, &c);
}

static void fleet_check(void)
{
    CHECK_INT(wait_for(&fleet_r, fleet_n, 0), 0);
    char reason[128] = "";
    CHECK_INT(tp_sink_ready(fleet_r.sink, reason, sizeof reason), 1);
    tp_sink_stats st;
    CHECK_ERR(finish(&fleet_r, &st), TP_OK);
    /* The worker metrics follow the same events as the stats. */
    char *text = NULL;
    size_t len = 0;
    CHECK_ERR(tp_metrics_render(fleet_metrics, &text, &len), TP_OK);
    char want[128];
    snprintf(want, sizeof want, "telepack_sink_rows_loaded_total{warehouse=\"sqlite\"} %" PRIu64 "\n", fleet_n);
    CHECK(text && strstr(text, want) != NULL);
    snprintf(want, sizeof want, "telepack_sink_packs_total %" PRIu64 "\n", fleet_n / RECORDS_PER_PACK);
    CHECK(text && strstr(text, want) != NULL);
    snprintf(want, sizeof want, "telepack_sink_records_total %" PRIu64 "\n", fleet_n);
    CHECK(text && strstr(text, want) != NULL);
    CHECK(text && strstr(text, "telepack_sink_pending_rows 0\n") != NULL);
    CHECK(text && strstr(text, "telepack_sink_event_time_lag_seconds_count") != NULL);
    if (!text || !strstr(text, "telepack_sink_rows_loaded_total"))
        fprintf(stderr, "%s\n", text ? text : "(null)");
    free(text);
    tp_metrics_free(fleet_metrics);
    CHECK_INT(st.rows_loaded, fleet_n);
    CHECK_INT(st.packs_loaded, fleet_n / RECORDS_PER_PACK);
    CHECK_INT(st.packs_dlq, 0);
    CHECK_INT(st.lag, 0); /* every message taken, per the high watermarks librdkafka saw */
    CHECK(st.loads >= 2); /* batch_rows 700 < 2000 rows */
    CHECK_INT(query_int("fleet.db", "SELECT count(*) FROM vehicle_positions"), fleet_n);
    check_fleet("fleet.db", 0, VEHICLES, RECORDS_PER_VEHICLE, PARTS);
    check_offsets_at_end("fleet.db", "fleet", PARTS);
}

/* Packs of several vehicles (format version 3), as `telepack ingest --pack-by partition` writes them: one pack
 * per partition and round holds every vehicle of the partition, added time-major; no key; the compact header. The
 * sink loads every record once, each with its own vehicle. */
static runner multi_r;
static uint64_t multi_n, multi_packs;

static void multi_start(void)
{
    rd_kafka_mock_topic_create(mock, "multi", PARTS, 1);
    rd_kafka_t *p = new_producer();
    tp_pack_writer_opts wo;
    tp_pack_writer_opts_init(&wo);
    wo.layout = TP_LAYOUT_COLUMNS;
    wo.multi_vehicle = 1;
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(&wo, &w), TP_OK);
    for (uint64_t i = 0; i < RECORDS_PER_VEHICLE; i += RECORDS_PER_PACK)
        for (int32_t part = 0; part < PARTS; part++) {
            for (uint64_t k = i; k < i + RECORDS_PER_PACK; k++)
                for (uint64_t v = (uint64_t)part; v < VEHICLES; v += PARTS) {
                    tp_record r;
                    make_record(v, k, 0, &r);
                    CHECK_ERR(tp_pack_writer_add(w, &r), TP_OK);
                    multi_n++;
                }
            size_t cap = tp_pack_writer_bound(w), len = 0;
            uint8_t *buf = malloc(cap);
            tp_pack_meta meta;
            CHECK_ERR(tp_pack_writer_finish(w, buf, cap, &len, &meta), TP_OK);
            CHECK_INT(meta.format_version, 3);
            rd_kafka_headers_t *h = rd_kafka_headers_new(1);
            CHECK_ERR(tp_pack_meta_to_compact_header(&meta, h), TP_OK);
            CHECK_INT(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("multi"), RD_KAFKA_V_PARTITION(part),
                                        RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
                      0);
            multi_packs++;
            free(buf);
        }
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    tp_sink_config c;
    base_config(&c, "multi", "gm", "multi.db");
    start(&multi_r, &c);
}

static void multi_check(void)
{
    CHECK_INT(wait_for(&multi_r, multi_n, 0), 0);
    tp_sink_stats st;
    CHECK_ERR(finish(&multi_r, &st), TP_OK);
    CHECK_INT(multi_n, (uint64_t)VEHICLES * RECORDS_PER_VEHICLE);
    CHECK_INT(st.rows_loaded, multi_n);
    CHECK_INT(st.packs_loaded, multi_packs);
    CHECK_INT(st.packs_dlq, 0);
    CHECK_INT(query_int("multi.db", "SELECT count(DISTINCT vehicle_id) FROM vehicle_positions"), VEHICLES);
    check_fleet("multi.db", 0, VEHICLES, RECORDS_PER_VEHICLE, PARTS);
}

/* A second instance in a new group (no committed offsets): it starts where the warehouse says, so it loads only
 * what was produced since, and nothing twice. */
static runner second_r;
static uint64_t second_n;

static void fleet_second_start(void)
{
    second_n = produce_fleet("fleet", 1);
    tp_sink_config c;
    base_config(&c, "fleet", "g2-fresh", "fleet.db");
    start(&second_r, &c);
}

static void fleet_second_check(void)
{
    CHECK_INT(wait_for(&second_r, second_n, 0), 0);
    usleep(300000); /* a sink that re-read old packs would be loading them now */
    tp_sink_stats st;
    CHECK_ERR(finish(&second_r, &st), TP_OK);
    CHECK_INT(st.rows_loaded, second_n);
    CHECK_INT(query_int("fleet.db", "SELECT count(*) FROM vehicle_positions"), fleet_n + second_n);
    check_fleet("fleet.db", 0, VEHICLES, RECORDS_PER_VEHICLE, PARTS);
    check_fleet("fleet.db", 1, VEHICLES, RECORDS_PER_VEHICLE, PARTS);
    check_offsets_at_end("fleet.db", "fleet", PARTS);
}

/* One DLQ message as read back. */
typedef struct dlq_msg {
    char key[32];
    size_t len;
    char error[1024];
    char source[256];
    int orig_headers;
} dlq_msg;

static int read_dlq_from(const char *bootstrap, const char *topic, dlq_msg *out, int want)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "dlq-reader", errstr, sizeof errstr);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    int n = 0;
    for (int tries = 0; n < want && tries < 100; tries++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m)
            continue;
        if (!m->err) {
            dlq_msg *d = &out[n++];
            memset(d, 0, sizeof *d);
            snprintf(d->key, sizeof d->key, "%.*s", (int)m->key_len, (const char *)m->key);
            d->len = m->len;
            rd_kafka_headers_t *h = NULL;
            if (!rd_kafka_message_headers(m, &h)) {
                const void *v;
                size_t vl;
                if (!rd_kafka_header_get_last(h, TP_HEADER_ERROR, &v, &vl))
                    snprintf(d->error, sizeof d->error, "%.*s", (int)vl, (const char *)v);
                if (!rd_kafka_header_get_last(h, TP_SINK_DLQ_SOURCE_HEADER, &v, &vl))
                    snprintf(d->source, sizeof d->source, "%.*s", (int)vl, (const char *)v);
                d->orig_headers = (int)rd_kafka_header_cnt(h) - 2;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return n;
}

static int read_dlq(const char *topic, dlq_msg *out, int want)
{
    return read_dlq_from(brokers, topic, out, want);
}

/* zstd dictionaries: packs made with the sink's dictionary load, with the compact header and the full set; packs
 * naming a dictionary the sink does not have go to the DLQ with the id and what to do, counted as reason "dict",
 * and the partition goes on past them; plain packs around them load. */
static runner dict_r;
static uint32_t dict_known, dict_unknown;

static void produce_with(rd_kafka_t *p, const tp_dict *d, uint64_t v, int compact)
{
    tp_pack_writer_opts wo;
    tp_pack_writer_opts_init(&wo);
    wo.dict = d;
    tp_pack_writer *w;
    CHECK_ERR(tp_pack_writer_new(&wo, &w), TP_OK);
    for (uint64_t i = 0; i < 20; i++) {
        tp_record r;
        make_record(v, i, 9, &r);
        CHECK_ERR(tp_pack_writer_add(w, &r), TP_OK);
    }
    uint8_t buf[4096];
    size_t len;
    tp_pack_meta meta;
    CHECK_ERR(tp_pack_writer_finish(w, buf, sizeof buf, &len, &meta), TP_OK);
    CHECK_INT(meta.dict_id, d ? tp_dict_id(d) : 0);
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    CHECK_ERR(compact ? tp_pack_meta_to_compact_header(&meta, h) : tp_pack_meta_to_headers(&meta, h), TP_OK);
    char key[32];
    snprintf(key, sizeof key, "%" PRIu64, 1000 + v + 9 * 100000);
    CHECK_INT(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("dk"), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
              0);
    tp_pack_writer_free(w);
}

static tp_dict_set *dict_set;

static void dict_start(void)
{
    static uint8_t bytes[8192];
    size_t n, len = 0;
    tp_record *recs = dict_fixture_records(50, 200, 3, &n);
    CHECK_ERR(dict_fixture_train(recs, n, 20, bytes, sizeof bytes, &len), TP_OK);
    free(recs);
    char err[512];
    tp_dict *known = NULL, *other = NULL, *reading = NULL;
    CHECK_ERR(tp_dict_new(bytes, len, 3, &known, err, sizeof err), TP_OK);
    CHECK_ERR(tp_dict_new(bytes, len, 0, &reading, err, sizeof err), TP_OK);
    bytes[4] ^= 1; /* the same tables under another id: a dictionary this sink was never given */
    CHECK_ERR(tp_dict_new(bytes, len, 3, &other, err, sizeof err), TP_OK);
    dict_known = tp_dict_id(known);
    dict_unknown = tp_dict_id(other);
    CHECK(dict_known != dict_unknown);
    CHECK_ERR(tp_dict_set_new(&dict_set), TP_OK);
    CHECK_ERR(tp_dict_set_add(dict_set, reading, err, sizeof err), TP_OK);

    rd_kafka_mock_topic_create(mock, "dk", 1, 1);
    rd_kafka_mock_topic_create(mock, "dk.dlq", 1, 1);
    rd_kafka_t *p = new_producer();
    produce_with(p, NULL, 1, 1);   /* plain, compact header */
    produce_with(p, known, 2, 1);  /* the sink's dictionary, compact header "2,20,<id>" */
    produce_with(p, other, 3, 1);  /* unknown dictionary: DLQ */
    produce_with(p, known, 4, 0);  /* the sink's dictionary, full headers */
    produce_with(p, other, 5, 0);  /* unknown, full headers: DLQ */
    produce_with(p, NULL, 6, 0);   /* plain after them: the partition went on */
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);
    tp_dict_free(known);
    tp_dict_free(other);
    tp_sink_config c;
    base_config(&c, "dk", "g-dict", "dict.db");
    c.dicts = dict_set;
    start(&dict_r, &c);
}

static void dict_check(void)
{
    CHECK_INT(wait_for(&dict_r, 80, 2), 0);
    usleep(200000);
    tp_sink_stats st;
    CHECK_ERR(finish(&dict_r, &st), TP_OK);
    CHECK_INT(st.rows_loaded, 80);
    CHECK_INT(st.packs_dlq, 2);
    CHECK_INT(st.packs_dict, 2);
    CHECK_INT(query_int("dict.db", "SELECT count(*) FROM vehicle_positions"), 80);
    CHECK_INT(query_int("dict.db", "SELECT count(DISTINCT vehicle_id) FROM vehicle_positions WHERE vehicle_id IN "
                                   "(901001, 901002, 901004, 901006)"), 4);
    check_offsets_at_end("dict.db", "dk", 1);
    dlq_msg d[3];
    CHECK_INT(read_dlq("dk.dlq", d, 2), 2);
    char want[64];
    snprintf(want, sizeof want, "zstd dictionary %u", dict_unknown);
    for (int i = 0; i < 2; i++) {
        CHECK(strstr(d[i].error, want) != NULL);
        CHECK(strstr(d[i].error, "--dict-dir") != NULL);
        CHECK(d[i].len > 0 && d[i].orig_headers > 0); /* unchanged: replayable once the sink has the dictionary */
    }
    CHECK(!strcmp(d[0].key, "901003") && !strcmp(d[1].key, "901005"));
    tp_dict_set_free(dict_set);
}

/* The dead-letter topic refuses the first produce requests (on a cluster of its own, so no other producer sees the
 * injected errors): the sink retries the delivery, the partition does not advance meanwhile, nothing is lost. */
static runner dlqfail_r;

static void dlqfail_start(void)
{
    rd_kafka_mock_topic_create(mock2, "df", 1, 1);
    rd_kafka_mock_topic_create(mock2, "df.dlq", 1, 1);
    rd_kafka_t *p = new_producer_to(brokers2);
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(NULL, &w), TP_OK);
    produce_pack(p, w, "df", 0, 0, 0, 20, 0, GOOD);
    produce_pack(p, w, "df", 0, 1, 0, 20, 7, FLIPPED);
    produce_pack(p, w, "df", 0, 2, 0, 20, 0, GOOD);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    /* From now on only the sink's DLQ producer produces on this cluster. */
    rd_kafka_mock_push_request_errors(mock2, 0 /* Produce */, 2, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    tp_sink_config c;
    base_config(&c, "df", "g-df", "df.db");
    c.brokers = brokers2;
    start(&dlqfail_r, &c);
}

static void dlqfail_check(void)
{
    CHECK_INT(wait_for(&dlqfail_r, 40, 1), 0);
    usleep(200000);
    tp_sink_stats st;
    CHECK_ERR(finish(&dlqfail_r, &st), TP_OK);
    CHECK_INT(st.rows_loaded, 40);
    CHECK_INT(st.packs_dlq, 1);
    CHECK(st.dlq_retries >= 1);
    dlq_msg d[2];
    CHECK_INT(read_dlq_from(brokers2, "df.dlq", d, 1), 1);
    CHECK(strstr(d[0].error, "df/0@1") != NULL);
    CHECK_INT(query_int("df.db", "SELECT next_offset FROM kafka_offsets WHERE topic = 'df'"), 3);
}

/* Corrupt packs among good ones: good rows loaded, each corrupt one in the DLQ with its reason, offsets advanced
 * (partition 0 ends with a corrupt pack: its offset advances by a load without rows). */
static void dlq_start(void)
{
    rd_kafka_mock_topic_create(mock, "mixed", 2, 1);
    rd_kafka_mock_topic_create(mock, "mixed.dlq", 1, 1);
    rd_kafka_t *p = new_producer();
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(NULL, &w), TP_OK);
    /* Spoiled packs carry records nobody else carries (salt 7), keyed by their vehicle. */
    static const spoil p0[] = {GOOD, TRUNCATED, GOOD, FLIPPED, GOOD, GARBAGE_HEADERS};
    static const spoil p1[] = {NO_HEADERS, GOOD, EMPTY, GOOD, BAD_COUNT, GOOD, BAD_VERSION, GOOD, HUGE_COUNT};
    for (size_t i = 0; i < sizeof p0 / sizeof p0[0]; i++) {
        produce_pack(p, w, "mixed", 0, i, 0, 20, p0[i] == GOOD ? 0 : 7, p0[i]);
        dlq_good += p0[i] == GOOD ? 20 : 0;
    }
    for (size_t i = 0; i < sizeof p1 / sizeof p1[0]; i++) {
        produce_pack(p, w, "mixed", 1, 10 + i, 0, 20, p1[i] == GOOD ? 0 : 7, p1[i]);
        dlq_good += p1[i] == GOOD ? 20 : 0;
    }
    /* Oversize: 400 records decompress to more than this sink's --max-pack-bytes 8192, then one more good pack. */
    produce_pack(p, w, "mixed", 1, 20, 0, 400, 7, GOOD);
    produce_pack(p, w, "mixed", 1, 21, 0, 20, 0, GOOD);
    dlq_good += 20;
    /* 8192 empty records in 8192 bytes of content: passes "a record takes a byte", but above this sink's record
     * cap (8192 / 16 = 512), so it is dead-lettered instead of decoded into 8192 rows. */
    produce_zero_bomb(p, "mixed", 0, 8192);
    produce_pack(p, w, "mixed", 0, 22, 0, 20, 0, GOOD);
    dlq_good += 20;
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    tp_sink_config c;
    base_config(&c, "mixed", "g-dlq", "mixed.db");
    c.max_pack_bytes = 8192;
    start(&dlq_r, &c);
}

static void dlq_check(void)
{
    CHECK_INT(wait_for(&dlq_r, dlq_good, 10), 0);
    usleep(200000); /* let the flush timer store the DLQ-only advance of partition 0's last message */
    tp_sink_stats st;
    CHECK_ERR(finish(&dlq_r, &st), TP_OK);
    CHECK_INT(st.rows_loaded, dlq_good);
    CHECK_INT(st.packs_dlq, 10);
    CHECK_INT(query_int("mixed.db", "SELECT count(*) FROM vehicle_positions"), dlq_good);
    CHECK_INT(query_int("mixed.db", "SELECT count(*) FROM vehicle_positions WHERE vehicle_id >= 700000"), 0);
    check_offsets_at_end("mixed.db", "mixed", 2);

    dlq_msg d[12];
    int n = read_dlq("mixed.dlq", d, 10);
    CHECK_INT(n, 10);
    int seen[32] = {0}, bomb = 0;
    for (int i = 0; i < n; i++) {
        CHECK(strstr(d[i].error, "is not a valid pack") != NULL);
        CHECK(d[i].source[0] != 0);
        if (!strcmp(d[i].key, "bomb")) {
            bomb++;
            CHECK(strstr(d[i].error, "more than 512 records") != NULL);
            continue;
        }
        uint64_t v = strtoull(d[i].key, NULL, 10) - 1000 - 700000; /* the spoiled pack's vehicle */
        if (v < 32)
            seen[v]++;
        if (v == 1) /* truncated */
            CHECK(strstr(d[i].error, "truncated") != NULL && d[i].orig_headers > 0 && d[i].len > 0);
        if (v == 3) /* flipped byte */
            CHECK(d[i].orig_headers > 0 && d[i].len > 0);
        if (v == 5) /* garbage headers, kept as they were */
            CHECK(strstr(d[i].error, "tp-format") != NULL && d[i].orig_headers > 0);
        if (v == 10) { /* no headers */
            CHECK(strstr(d[i].error, "no headers") != NULL);
            CHECK_INT(d[i].orig_headers, 0);
        }
        if (v == 14) /* header count one above the pack's */
            CHECK(strstr(d[i].error, "count") != NULL);
        if (v == 16) /* header version 9 */
            CHECK(strstr(d[i].error, "9") != NULL);
        if (v == 18) /* header count 10^9 */
            CHECK(strstr(d[i].error, "1000000000") != NULL);
        if (v == 20) /* oversize */
            CHECK(strstr(d[i].error, "8192") != NULL);
        if (v == 12) { /* empty */
            CHECK(strstr(d[i].error, "empty") != NULL);
            CHECK_INT(d[i].len, 0);
        }
    }
    CHECK(seen[1] == 1 && seen[3] == 1 && seen[5] == 1 && seen[10] == 1 && seen[12] == 1);
    CHECK(seen[14] == 1 && seen[16] == 1 && seen[18] == 1 && seen[20] == 1);
    CHECK_INT(bomb, 1);
}

/* Warehouse outage: four "unavailable" answers, then loads go through; same rows kept, none lost or doubled. */
static void outage_start(void)
{
    rd_kafka_mock_topic_create(mock, "outage", PARTS, 1);
    outage_n = produce_fleet("outage", 3);
    tp_sink_config c;
    base_config(&c, "outage", "g-outage", "outage.db");
    c.load_hook = hook;
    c.load_hook_ctx = &outage_hook;
    start(&outage_r, &c);
}

static void outage_check(void)
{
    CHECK_INT(wait_for(&outage_r, outage_n, 0), 0);
    tp_sink_stats st;
    CHECK_ERR(finish(&outage_r, &st), TP_OK);
    CHECK_INT(st.load_retries, 4);
    CHECK(outage_hook.calls > 4);
    CHECK(outage_hook.rows_at_first_failure > 0);
    /* The batch was kept across the retries and nothing was added while paused. */
    CHECK_INT(outage_hook.rows_at_success, outage_hook.rows_at_first_failure);
    CHECK_INT(st.paused, 0);
    CHECK_INT(st.rows_loaded, outage_n);
    CHECK_INT(query_int("outage.db", "SELECT count(*) FROM vehicle_positions"), outage_n);
    check_fleet("outage.db", 3, VEHICLES, RECORDS_PER_VEHICLE, PARTS);
    check_offsets_at_end("outage.db", "outage", PARTS);
}

/* A pack with more records than --batch-rows: the batch grows for it (the pack is never split over two loads). */
static runner big_r;

static void big_start(void)
{
    rd_kafka_mock_topic_create(mock, "big", 1, 1);
    rd_kafka_t *p = new_producer();
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(NULL, &w), TP_OK);
    produce_pack(p, w, "big", 0, 0, 0, 30, 9, GOOD);
    produce_pack(p, w, "big", 0, 1, 0, 300, 9, GOOD);
    produce_pack(p, w, "big", 0, 2, 0, 30, 9, GOOD);
    /* 60 equal records in a column pack take fewer content bytes than records: valid, and loaded. */
    CHECK(produce_equal_columns(p, "big", 0, 3, 60) < 60);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    tp_sink_config c;
    base_config(&c, "big", "g-big", "big.db");
    c.batch_rows = 50;
    start(&big_r, &c);
}

static void big_check(void)
{
    CHECK_INT(wait_for(&big_r, 420, 0), 0);
    tp_sink_stats st;
    CHECK_ERR(finish(&big_r, &st), TP_OK);
    CHECK_INT(st.rows_loaded, 420);
    CHECK_INT(st.packs_dlq, 0);
    CHECK(st.loads >= 2);
    /* The 60 equal records are one identity: one row after INSERT OR IGNORE. */
    CHECK_INT(query_int("big.db", "SELECT count(*) FROM vehicle_positions"), 361);
    CHECK_INT(query_int("big.db", "SELECT count(*) FROM vehicle_positions WHERE kafka_offset = 3"), 1);
    check_fleet("big.db", 9, 3, 30, 1); /* records 0..29 of each vehicle */
    CHECK_INT(query_int("big.db", "SELECT count(*) FROM vehicle_positions WHERE kafka_offset = 1"), 300);
    CHECK_INT(query_int("big.db", "SELECT count(DISTINCT seq) FROM vehicle_positions WHERE kafka_offset = 1"), 300);
    CHECK_INT(query_int("big.db", "SELECT max(seq) FROM vehicle_positions WHERE kafka_offset = 1"), 300);
}

/* The warehouse refuses data: here any load of more than 25 rows as a whole (as ClickHouse refuses an INSERT
 * spanning more than 100 days). The sink splits the batch down to single packs, loads every pack that fits once,
 * dead-letters the one 30-record pack that is refused even alone with the warehouse's reason, and records the
 * offsets. A pack with microsecond timestamps never reaches the warehouse: outside the accepted event time. */
static runner rej_r;
static int rej_calls;

static tp_err rej_hook(void *ctx, size_t rows)
{
    (void)ctx;
    rej_calls++;
    return rows > 25 ? TP_ERR_REJECTED : TP_OK;
}

static void rej_start(void)
{
    rd_kafka_mock_topic_create(mock, "rej", 1, 1);
    rd_kafka_mock_topic_create(mock, "rej.dlq", 1, 1);
    rd_kafka_t *p = new_producer();
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(NULL, &w), TP_OK);
    for (uint64_t v = 0; v < 6; v++)
        produce_pack(p, w, "rej", 0, v, 0, v == 3 ? 30 : 10, 12, GOOD);
    /* Offset 6: sampled_at_ms in microseconds (year ~58,900). */
    for (uint64_t i = 0; i < 5; i++) {
        tp_record r;
        make_record(6, i, 12, &r);
        r.sampled_at_ms *= 1000;
        CHECK_ERR(tp_pack_writer_add(w, &r), TP_OK);
    }
    size_t cap = tp_pack_writer_bound(w), len = 0;
    uint8_t *buf = malloc(cap);
    tp_pack_meta meta;
    CHECK_ERR(tp_pack_writer_finish(w, buf, cap, &len, &meta), TP_OK);
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    CHECK_ERR(tp_pack_meta_to_headers(&meta, h), TP_OK);
    CHECK_INT(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("rej"), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY("1006", 4),
                                RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
              0);
    free(buf);
    produce_pack(p, w, "rej", 0, 7, 0, 10, 12, GOOD);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    tp_sink_config c;
    base_config(&c, "rej", "g-rej", "rej.db");
    c.batch_rows = 1000;
    c.flush_ms = 1500; /* every pack in one batch */
    c.load_hook = rej_hook;
    start(&rej_r, &c);
}

static void rej_check(void)
{
    CHECK_INT(wait_for(&rej_r, 60, 2), 0);
    usleep(200000);
    tp_sink_stats st;
    CHECK_ERR(finish(&rej_r, &st), TP_OK);
    CHECK_INT(st.rows_loaded, 60);
    CHECK_INT(st.packs_dlq, 2);
    CHECK_INT(st.packs_rejected, 1);
    CHECK(st.load_splits >= 2);
    CHECK_INT(query_int("rej.db", "SELECT count(*) FROM vehicle_positions"), 60);
    CHECK_INT(query_int("rej.db", "SELECT count(*) FROM vehicle_positions WHERE kafka_offset IN (3, 6)"), 0);
    CHECK_INT(query_int("rej.db", "SELECT next_offset FROM kafka_offsets WHERE topic = 'rej'"), 8);
    dlq_msg d[3];
    int n = read_dlq("rej.dlq", d, 2);
    CHECK_INT(n, 2);
    int refused = 0, event = 0;
    for (int i = 0; i < n; i++) {
        if (strstr(d[i].error, "rej/0@3") && strstr(d[i].error, "refused its 30 records, even alone") &&
            strstr(d[i].error, "test hook"))
            refused++;
        if (strstr(d[i].error, "rej/0@6") && strstr(d[i].error, "outside the accepted event time") &&
            strstr(d[i].error, "--max-event-ahead"))
            event++;
        if (!refused && !event)
            fprintf(stderr, "dlq: %s\n", d[i].error);
    }
    CHECK_INT(refused, 1);
    CHECK_INT(event, 1);
}

/* The same refusal for packs of a run-time schema (tests/schema/ev_telemetry.proto, keyed by VIN): the sink splits
 * the tp_dyn_batch with tp_warehouse_load_dyn_range down to single packs, loads the other packs' rows once (the rows
 * of the loads the warehouse accepted add up to theirs, exactly), dead-letters the 30-record pack refused even
 * alone with the warehouse's reason, and records the offsets past it. */
static runner srej_r;
static tp_schema *ev_schema;
static size_t srej_loaded_rows; /* rows of the loads the hook let through */

static tp_err srej_hook(void *ctx, size_t rows)
{
    (void)ctx;
    if (rows > 25)
        return TP_ERR_REJECTED;
    srej_loaded_rows += rows;
    return TP_OK;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

/* One pbpack v1 pack of n fleet.ev.v1.EvTelemetry messages of vehicle v (vin, recorded_at, seq), keyed by its VIN,
 * with the schema headers. */
static void produce_ev_pack(rd_kafka_t *p, const char *topic, uint64_t v, uint64_t n)
{
    char vin[32];
    snprintf(vin, sizeof vin, "WVWZZZ1JZ%08" PRIu64, 7000 + v);
    uint8_t content[64 * 64], m[64], ts[16], out[8192];
    size_t len = 0;
    for (uint64_t i = 0; i < n && len + sizeof m < sizeof content; i++) {
        size_t k = 0, t = 0;
        m[k++] = 0x0a; /* 1: vin */
        m[k++] = 17;
        memcpy(m + k, vin, 17);
        k += 17;
        ts[t++] = 0x08; /* Timestamp.seconds */
        t += put_varint(ts + t, UINT64_C(1795000000) + i * 5 + v);
        m[k++] = 0x12; /* 2: recorded_at */
        m[k++] = (uint8_t)t;
        memcpy(m + k, ts, t);
        k += t;
        m[k++] = 0x18; /* 3: seq */
        k += put_varint(m + k, i + 1);
        len += put_varint(content + len, k);
        memcpy(content + len, m, k);
        len += k;
    }
    size_t z = ZSTD_compress(out, sizeof out, content, len, 3);
    CHECK(!ZSTD_isError(z));
    tp_pack_meta meta = {.format_version = 1, .layout = TP_LAYOUT_ROWS, .codec = TP_CODEC_ZSTD,
                         .schema_version = TP_SCHEMA_VERSION, .record_count = (uint32_t)n};
    rd_kafka_headers_t *h = rd_kafka_headers_new(10);
    CHECK_ERR(tp_schema_pack_headers(&meta, tp_schema_message_name(ev_schema), tp_schema_fingerprint_hex(ev_schema),
                                     h),
              TP_OK);
    CHECK_INT(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(vin, 17),
                                RD_KAFKA_V_VALUE(out, z), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
              0);
}

static void schema_rej_start(const char *schema_dir)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/ev_telemetry.pb", schema_dir);
    FILE *f = fopen(path, "rb");
    static uint8_t set[1 << 16];
    size_t n = f ? fread(set, 1, sizeof set, f) : 0;
    if (f)
        fclose(f);
    CHECK(n > 0);
    CHECK_ERR(tp_schema_load(set, n, "fleet.ev.v1.EvTelemetry", &ev_schema, err, sizeof err), TP_OK);
    if (!ev_schema) {
        fprintf(stderr, "%s: %s\n", path, err);
        return;
    }
    rd_kafka_mock_topic_create(mock, "srej", 1, 1);
    rd_kafka_mock_topic_create(mock, "srej.dlq", 1, 1);
    rd_kafka_t *p = new_producer();
    for (uint64_t v = 0; v < 6; v++)
        produce_ev_pack(p, "srej", v, v == 3 ? 30 : 10);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);
    tp_sink_config c;
    base_config(&c, "srej", "g-srej", "srej.db");
    c.batch_rows = 1000;
    c.flush_ms = 1500; /* every pack in one batch */
    c.load_hook = srej_hook;
    c.schema = ev_schema;
    c.warehouse_opts.schema = ev_schema;
    start(&srej_r, &c);
}

static void schema_rej_check(void)
{
    if (!ev_schema)
        return;
    CHECK_INT(wait_for(&srej_r, 50, 1), 0);
    usleep(200000);
    tp_sink_stats st;
    CHECK_ERR(finish(&srej_r, &st), TP_OK);
    CHECK_INT(st.rows_loaded, 50);
    CHECK_INT(st.packs_dlq, 1);
    CHECK_INT(st.packs_rejected, 1);
    CHECK(st.load_splits >= 2);
    CHECK_INT(srej_loaded_rows, 50);
    CHECK_INT(query_int("srej.db", "SELECT count(*) FROM vehicle_positions"), 50);
    CHECK_INT(query_int("srej.db", "SELECT count(DISTINCT vin || '/' || seq) FROM vehicle_positions"), 50);
    CHECK_INT(query_int("srej.db", "SELECT count(*) FROM vehicle_positions WHERE kafka_offset = 3"), 0);
    CHECK_INT(query_int("srej.db", "SELECT count(*) FROM vehicle_positions WHERE vin = 'WVWZZZ1JZ00007003'"), 0);
    CHECK_INT(query_int("srej.db", "SELECT next_offset FROM kafka_offsets WHERE topic = 'srej'"), 6);
    dlq_msg d[2];
    CHECK_INT(read_dlq("srej.dlq", d, 1), 1);
    bool why = strstr(d[0].error, "srej/0@3") && strstr(d[0].error, "refused its 30 records, even alone") &&
               strstr(d[0].error, "test hook");
    CHECK(why);
    if (!why)
        fprintf(stderr, "dlq: %s\n", d[0].error);
    CHECK(!strcmp(d[0].key, "WVWZZZ1JZ00007003"));
    tp_schema_free(ev_schema);
}

/* Growing the batch for a pack larger than --batch-rows fails as if memory were short (a test hook): the sink
 * retries a few times, then dead-letters that pack with the reason and carries on; no endless retry. */
static runner oom_r;
static int oom_calls;

static tp_err oom_hook(void *ctx, size_t rows)
{
    (void)ctx;
    (void)rows;
    oom_calls++;
    return TP_ERR_NOMEM;
}

static void oom_start(void)
{
    rd_kafka_mock_topic_create(mock, "oom", 1, 1);
    rd_kafka_mock_topic_create(mock, "oom.dlq", 1, 1);
    rd_kafka_t *p = new_producer();
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(NULL, &w), TP_OK);
    produce_pack(p, w, "oom", 0, 0, 0, 20, 11, GOOD);
    produce_pack(p, w, "oom", 0, 1, 0, 300, 11, GOOD);
    produce_pack(p, w, "oom", 0, 2, 0, 20, 11, GOOD);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    tp_sink_config c;
    base_config(&c, "oom", "g-oom", "oom.db");
    c.batch_rows = 50;
    c.reserve_hook = oom_hook;
    start(&oom_r, &c);
}

static void oom_check(void)
{
    CHECK_INT(wait_for(&oom_r, 40, 1), 0);
    tp_sink_stats st;
    CHECK_ERR(finish(&oom_r, &st), TP_OK);
    CHECK_INT(st.rows_loaded, 40);
    CHECK_INT(st.packs_dlq, 1);
    CHECK_INT(oom_calls, 3);
    CHECK_INT(query_int("oom.db", "SELECT count(*) FROM vehicle_positions"), 40);
    CHECK_INT(query_int("oom.db", "SELECT next_offset FROM kafka_offsets WHERE topic = 'oom'"), 3);
    dlq_msg d[2];
    CHECK_INT(read_dlq("oom.dlq", d, 1), 1);
    CHECK(strstr(d[0].error, "oom/0@1") != NULL && strstr(d[0].error, "out of memory for the 300 rows") != NULL);
    CHECK(strstr(d[0].error, "3 times in a row") != NULL);
}

/* A permanent warehouse error stops the sink with a sentence; no offset is stored, in the warehouse or Kafka. */
static void perm_start(void)
{
    rd_kafka_mock_topic_create(mock, "perm", 2, 1);
    rd_kafka_t *p = new_producer();
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(NULL, &w), TP_OK);
    for (uint64_t v = 0; v < 6; v++)
        produce_pack(p, w, "perm", (int32_t)(v % 2), v, 0, 10, 4, GOOD);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    tp_sink_config c;
    base_config(&c, "perm", "g-perm", "perm.db");
    c.load_hook = hook;
    c.load_hook_ctx = &perm_hook;
    start(&perm_r, &c);
}

static void perm_check(void)
{
    pthread_join(perm_r.thread, NULL); /* stops by itself */
    CHECK_ERR(perm_r.result, TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_sink_last_error(perm_r.sink), "failed permanently") != NULL);
    tp_sink_stats st;
    tp_sink_stats_get(perm_r.sink, &st);
    CHECK_INT(st.rows_loaded, 0);
    CHECK_INT(perm_hook.calls, 1);
    tp_sink_free(perm_r.sink);
    CHECK_INT(query_int("perm.db", "SELECT count(*) FROM kafka_offsets"), 0);
    CHECK_INT(query_int("perm.db", "SELECT count(*) FROM vehicle_positions"), 0);

    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "g-perm", errstr, sizeof errstr);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(l, "perm", 0);
    rd_kafka_topic_partition_list_add(l, "perm", 1);
    CHECK_INT(rd_kafka_committed(c, l, 5000), 0);
    for (int i = 0; i < l->cnt; i++)
        CHECK_INT(l->elems[i].offset, RD_KAFKA_OFFSET_INVALID);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
}

/* A second member joins while the first holds rows it cannot load (warehouse unavailable): the first drops the
 * revoked partitions' rows unstored at the revoke, the group re-reads them, every record ends up loaded once. */
static runner reb_a, reb_b;
static uint64_t reb_n;
static hook_state reb_hook = {0, 1000000, TP_ERR_UNAVAILABLE, 0, 0};

static void rebalance_config(tp_sink_config *c)
{
    base_config(c, "reb", "g-reb", "reb.db");
    static const char *const props[] = {"session.timeout.ms=4000", "heartbeat.interval.ms=300",
                                        "topic.metadata.refresh.interval.ms=1000"};
    c->kafka_props = props;
    c->n_kafka_props = 3;
}

static void rebalance_start(void)
{
    rd_kafka_mock_topic_create(mock, "reb", PARTS, 1);
    reb_n = produce_fleet("reb", 5);
    tp_sink_config c;
    rebalance_config(&c);
    c.load_hook = hook;
    c.load_hook_ctx = &reb_hook;
    start(&reb_a, &c);
}

/* Once A holds rows it could not load, B joins the group. */
static void rebalance_join(void)
{
    tp_sink_stats st = {0};
    for (int i = 0; i < 1000 && !st.paused; i++) {
        usleep(10000);
        tp_sink_stats_get(reb_a.sink, &st);
    }
    CHECK_INT(st.paused, 1);
    char reason[128] = "";
    CHECK_INT(tp_sink_ready(reb_a.sink, reason, sizeof reason), 0);
    CHECK(strstr(reason, "warehouse") != NULL);
    tp_sink_config c;
    rebalance_config(&c);
    start(&reb_b, &c);
}

static void rebalance_check(void)
{
    tp_sink_stats st = {0};
    for (int i = 0; i < 1000 && st.rows_dropped == 0; i++) {
        usleep(10000);
        tp_sink_stats_get(reb_a.sink, &st);
    }
    CHECK(st.rows_dropped > 0);
    reb_hook.fail = 0; /* the warehouse is back */
    tp_sink_stats sa, sb;
    for (int i = 0; i < 2000; i++) {
        tp_sink_stats_get(reb_a.sink, &sa);
        tp_sink_stats_get(reb_b.sink, &sb);
        if (sa.rows_loaded + sb.rows_loaded >= reb_n && sa.pending_rows == 0 && sb.pending_rows == 0)
            break;
        usleep(10000);
    }
    CHECK_ERR(finish(&reb_a, &sa), TP_OK);
    CHECK_ERR(finish(&reb_b, &sb), TP_OK);
    CHECK(sa.rebalances >= 2);
    CHECK(sb.rows_loaded > 0);
    CHECK_INT(sa.rows_loaded + sb.rows_loaded, reb_n);
    CHECK_INT(query_int("reb.db", "SELECT count(*) FROM vehicle_positions"), reb_n);
    check_fleet("reb.db", 5, VEHICLES, RECORDS_PER_VEHICLE, PARTS);
    check_offsets_at_end("reb.db", "reb", PARTS);
}

/* A ClickHouse URL on a closed port: the sink starts, retries ensuring its table with backoff (not ready, says why),
 * and stops cleanly when asked. */
static void test_warehouse_down_at_start(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK_INT(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_INT(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd); /* nothing listens there now */
    char url[128];
    snprintf(url, sizeof url, "clickhouse://127.0.0.1:%u/telemetry", (unsigned)ntohs(a.sin_port));
    tp_sink_config c;
    base_config(&c, "down", "g-down", "unused.db");
    c.warehouse_url = url;
    runner r;
    if (start(&r, &c))
        return;
    tp_sink_stats st = {0};
    for (int i = 0; i < 500 && st.load_retries < 3; i++) {
        usleep(10000);
        tp_sink_stats_get(r.sink, &st);
    }
    CHECK(st.load_retries >= 3);
    char reason[128] = "";
    CHECK_INT(tp_sink_ready(r.sink, reason, sizeof reason), 0);
    CHECK(reason[0] != 0);
    CHECK_ERR(finish(&r, &st), TP_OK);
    CHECK_INT(st.rows_loaded, 0);
}

static void test_config_errors(void)
{
    tp_sink_config c;
    tp_sink *s = (tp_sink *)1;
    char err[512];
    base_config(&c, "x", "g", "cfg.db");
    c.brokers = NULL;
    CHECK_ERR(tp_sink_new(&c, &s, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(s == NULL);
    CHECK(strstr(err, "brokers") != NULL && strstr(err, "--") == NULL); /* the library names its own argument */
    base_config(&c, "x", "g", "cfg.db");
    c.warehouse_url = NULL;
    CHECK_ERR(tp_sink_new(&c, &s, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "--warehouse") != NULL);
    base_config(&c, "x", "g", "cfg.db");
    c.dlq_topic = "x";
    CHECK_ERR(tp_sink_new(&c, &s, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "come back forever") != NULL);
    base_config(&c, "x", "g", "cfg.db");
    c.batch_rows = 0;
    CHECK_ERR(tp_sink_new(&c, &s, err, sizeof err), TP_ERR_INVALID_ARG);
    base_config(&c, "x", "g", "cfg.db");
    static const char *const bad_props[] = {"no-equals-sign"};
    c.kafka_props = bad_props;
    c.n_kafka_props = 1;
    CHECK_ERR(tp_sink_new(&c, &s, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "no-equals-sign") != NULL);
    static const char *const unknown_props[] = {"no.such.property=1"};
    c.kafka_props = unknown_props;
    CHECK_ERR(tp_sink_new(&c, &s, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "no.such.property") != NULL);
    base_config(&c, "x", "g", "cfg.db");
    c.warehouse_url = "nosuchscheme:foo";
    CHECK(tp_sink_new(&c, &s, err, sizeof err) != TP_OK);
    CHECK(s == NULL);
    base_config(&c, "x", "g", "no-table.db");
    c.warehouse_opts.create_table = 0; /* the table does not exist */
    CHECK_ERR(tp_sink_new(&c, &s, err, sizeof err), TP_ERR_WAREHOUSE);
    CHECK(strstr(err, "create-table") != NULL);
}

/* ---- adaptive flush: load when caught up with the high watermarks, not sooner than the minimum interval ---- */

/* 30 packs wait in two partitions before the sink starts; the batch could hold far more and --flush-ms is a minute:
 * the sink loads them as soon as it has read both partitions up to their high watermarks (wait_for gives up after
 * 30 s, so a sink waiting for the age limit fails here). */
static runner cu_r;

static void caught_up_start(void)
{
    rd_kafka_mock_topic_create(mock, "cu", 2, 1);
    rd_kafka_t *p = new_producer();
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(NULL, &w), TP_OK);
    for (uint64_t v = 0; v < 30; v++)
        produce_pack(p, w, "cu", (int32_t)(v % 2), v, 0, 10, 13, GOOD);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    tp_sink_config c;
    base_config(&c, "cu", "g-cu", "cu.db");
    c.batch_rows = 100000;
    c.flush_ms = 60000;
    c.min_insert_interval_ms = 0;
    start(&cu_r, &c);
}

static void caught_up_check(void)
{
    CHECK_INT(wait_for(&cu_r, 300, 0), 0);
    tp_sink_stats st;
    tp_sink_stats_get(cu_r.sink, &st);
    CHECK_INT(st.rows_loaded, 300);
    CHECK(st.loads >= 1);
    CHECK_INT(st.loads_caught_up, st.loads); /* none by age (a minute), none full */
    CHECK_ERR(finish(&cu_r, NULL), TP_OK);
    check_fleet("cu.db", 13, 30, 10, 2);
    CHECK_INT(query_int("cu.db", "SELECT sum(next_offset) FROM kafka_offsets WHERE topic = 'cu'"), 30);
}

/* Packs arrive one every 50 ms for 2 s into a sink with --min-insert-interval-ms 1000: each pack leaves it caught
 * up, but it loads at most about once a second (a few loads, not one per pack); a second sink with interval 0 on
 * the same stream loads far more often. Both load every row, none by age (--flush-ms is a minute). */
static runner mi_r, mi0_r;
#define MI_PACKS 40
/* The mock broker holds a fetch that finds nothing for fetch.wait.max.ms before answering (a real broker answers
 * as soon as data arrives): 10 ms lets packs reach the sinks one by one. */
static const char *const mi_props[] = {"session.timeout.ms=6000", "heartbeat.interval.ms=500",
                                       "topic.metadata.refresh.interval.ms=1000", "fetch.wait.max.ms=10"};

static void min_interval_start(void)
{
    rd_kafka_mock_topic_create(mock, "mi", 1, 1);
    tp_sink_config c;
    base_config(&c, "mi", "g-mi", "mi.db");
    c.kafka_props = mi_props;
    c.n_kafka_props = 4;
    c.batch_rows = 100000;
    c.flush_ms = 60000;
    c.min_insert_interval_ms = 1000;
    start(&mi_r, &c);
    base_config(&c, "mi", "g-mi0", "mi0.db");
    c.kafka_props = mi_props;
    c.n_kafka_props = 4;
    c.batch_rows = 100000;
    c.flush_ms = 60000;
    c.min_insert_interval_ms = 0;
    start(&mi0_r, &c);
}

static void min_interval_check(void)
{
    char reason[256];
    for (int i = 0; i < 3000 && !(tp_sink_ready(mi_r.sink, reason, sizeof reason) &&
                                  tp_sink_ready(mi0_r.sink, reason, sizeof reason));
         i++)
        usleep(10000);
    CHECK(tp_sink_ready(mi_r.sink, reason, sizeof reason));
    CHECK(tp_sink_ready(mi0_r.sink, reason, sizeof reason));
    rd_kafka_t *p = new_producer();
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(NULL, &w), TP_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t v = 0; v < MI_PACKS; v++) {
        produce_pack(p, w, "mi", 0, v, 0, 10, 14, GOOD);
        CHECK_INT(rd_kafka_flush(p, 10000), 0);
        usleep(50000);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* ~2 s on an idle machine; longer on a loaded one, and the bound on loads follows the time the stream took */
    double stream_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    CHECK_INT(wait_for(&mi_r, MI_PACKS * 10, 0), 0);
    CHECK_INT(wait_for(&mi0_r, MI_PACKS * 10, 0), 0);
    tp_sink_stats st, st0;
    CHECK_ERR(finish(&mi_r, &st), TP_OK);
    CHECK_ERR(finish(&mi0_r, &st0), TP_OK);
    fprintf(stderr, "min interval: %" PRIu64 " loads with 1000 ms, %" PRIu64 " with 0 for %d packs over ~2 s\n",
            st.loads, st0.loads, MI_PACKS);
    CHECK_INT(st.rows_loaded, MI_PACKS * 10);
    CHECK_INT(st0.rows_loaded, MI_PACKS * 10);
    CHECK(st.loads >= 2);  /* loaded while the stream ran, not all at the end */
    CHECK(st.loads <= (uint64_t)stream_s + 4); /* >= 1 s apart while the stream ran, + the tail and the stop;
                                                * one per pack would be 40 */
    CHECK(st0.loads > st.loads); /* without the interval every caught-up moment loads */
    CHECK(st.loads_caught_up + 1 >= st.loads); /* all but the load at stop came from catching up */
    check_fleet("mi.db", 14, MI_PACKS, 10, 1);
    check_fleet("mi0.db", 14, MI_PACKS, 10, 1);
}

/* --min-insert-interval-rows: with an interval of a minute, a caught-up batch smaller than the threshold waits
 * (the interval protects the warehouse from small inserts), but once it holds the threshold's rows it loads at once
 * instead of waiting out the interval; so does a small batch right after such a load (the tail of a backlog), but
 * not a small one after a small one. --flush-ms is two minutes, so neither wait_for (30 s) nor the age limit can
 * explain a load. */
static runner mr_r;

static void min_rows_start(void)
{
    rd_kafka_mock_topic_create(mock, "mr", 1, 1);
    tp_sink_config c;
    base_config(&c, "mr", "g-mr", "mr.db");
    c.kafka_props = mi_props;
    c.n_kafka_props = 4;
    c.batch_rows = 100000;
    c.flush_ms = 120000;
    c.min_insert_interval_ms = 60000;
    c.min_insert_interval_rows = 50;
    start(&mr_r, &c);
}

static void min_rows_check(void)
{
    char reason[256];
    for (int i = 0; i < 3000 && !tp_sink_ready(mr_r.sink, reason, sizeof reason); i++)
        usleep(10000);
    CHECK(tp_sink_ready(mr_r.sink, reason, sizeof reason));
    rd_kafka_t *p = new_producer();
    tp_pack_writer *w = NULL;
    CHECK_ERR(tp_pack_writer_new(NULL, &w), TP_OK);
    /* the first load: no previous load to keep the interval from */
    produce_pack(p, w, "mr", 0, 0, 0, 10, 15, GOOD);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    CHECK_INT(wait_for(&mr_r, 10, 0), 0);
    /* 20 rows, below the threshold: they wait for the interval */
    produce_pack(p, w, "mr", 0, 1, 0, 10, 15, GOOD);
    produce_pack(p, w, "mr", 0, 2, 0, 10, 15, GOOD);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    tp_sink_stats st;
    for (int i = 0; i < 3000; i++) {
        tp_sink_stats_get(mr_r.sink, &st);
        if (st.pending_rows >= 20)
            break;
        usleep(10000);
    }
    usleep(500000);
    tp_sink_stats_get(mr_r.sink, &st);
    CHECK_INT(st.pending_rows, 20);
    CHECK_INT(st.rows_loaded, 10);
    /* 30 more: 50 caught up, loaded well before the minute is over */
    for (uint64_t v = 3; v < 6; v++)
        produce_pack(p, w, "mr", 0, v, 0, 10, 15, GOOD);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    CHECK_INT(wait_for(&mr_r, 60, 0), 0);
    /* 10 rows after a load of 50: at once */
    produce_pack(p, w, "mr", 0, 6, 0, 10, 15, GOOD);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    CHECK_INT(wait_for(&mr_r, 70, 0), 0);
    /* 10 rows after a load of 10: they wait (loaded at the stop) */
    produce_pack(p, w, "mr", 0, 7, 0, 10, 15, GOOD);
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    for (int i = 0; i < 3000; i++) {
        tp_sink_stats_get(mr_r.sink, &st);
        if (st.pending_rows >= 10)
            break;
        usleep(10000);
    }
    usleep(500000);
    tp_sink_stats_get(mr_r.sink, &st);
    CHECK_INT(st.pending_rows, 10);
    CHECK_INT(st.rows_loaded, 70);
    CHECK_ERR(finish(&mr_r, &st), TP_OK);
    CHECK_INT(st.rows_loaded, 80);
    CHECK_INT(st.loads, 4);
    CHECK_INT(st.loads_caught_up, 3);
    check_fleet("mr.db", 15, 8, 10, 1);
    CHECK_INT(query_int("mr.db", "SELECT sum(next_offset) FROM kafka_offsets WHERE topic = 'mr'"), 8);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_sink_mock SCHEMA_DATA_DIR (the build's tests/schema, with ev_telemetry.pb)\n");
        return 1;
    }
    tp_log_configure(getenv("TP_TEST_DEBUG") ? TP_LOG_DEBUG : TP_LOG_ERROR, TP_LOG_TEXT);
    snprintf(dir, sizeof dir, "/tmp/tp-sink-test-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    mock = rd_kafka_mock_cluster_new(mock_rk, 1);
    if (!mock)
        return 1;
    snprintf(brokers, sizeof brokers, "%s", rd_kafka_mock_cluster_bootstraps(mock));
    mock2 = rd_kafka_mock_cluster_new(mock_rk, 1);
    if (!mock2)
        return 1;
    snprintf(brokers2, sizeof brokers2, "%s", rd_kafka_mock_cluster_bootstraps(mock2));

    test_config_errors();
    test_warehouse_down_at_start();
    fleet_start();
    dlq_start();
    outage_start();
    perm_start();
    rebalance_start();
    big_start();
    oom_start();
    rej_start();
    schema_rej_start(argv[1]);
    dlqfail_start();
    dict_start();
    multi_start();
    caught_up_start();
    min_interval_start();
    min_rows_start();
    perm_check();
    rebalance_join();
    fleet_check();
    fleet_second_start(); /* joins its group while the others are checked */
    dlq_check();
    outage_check();
    big_check();
    oom_check();
    rej_check();
    schema_rej_check();
    dlqfail_check();
    dict_check();
    multi_check();
    rebalance_check();
    fleet_second_check();
    caught_up_check();
    min_interval_check();
    min_rows_check();

    rd_kafka_mock_cluster_destroy(mock2);
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_rk);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_exit();
}
