/* The ingest worker end to end against librdkafka's mock cluster: fleet records from several gateway clients over
 * loopback -> tp_ingest -> mock cluster, with produce errors injected half-way; then every pack is consumed and
 * decoded: exactly the records sent (no loss, no duplicate), each vehicle's records in order, every record acked.
 * With the argument "faults": a librdkafka fatal error (nothing undelivered acked) and a broker outage long enough
 * for messages to time out (packs sent again, everything delivered once the brokers are back). */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "ingest/gateway_client.h"
#include "ingest/ingest.h"
#include "kafka/pack_headers.h"
#include "sim/fleet.h"
#include "telepack/pack.h"

#define TOPIC "tp-packs"
#define PARTITIONS 4
#define GATEWAYS 4

enum { VEHICLES = 200, TICKS = 20, FIRST_ID = 10001 };

typedef struct sent_log {
    uint64_t count[VEHICLES];        /* records sent per vehicle */
    uint64_t seqs[VEHICLES][TICKS + 2];
} sent_log;

static rd_kafka_mock_cluster_t *make_cluster(rd_kafka_t **holder)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    *holder = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    CHECK(*holder != NULL);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(*holder, 3);
    CHECK(mc != NULL);
    CHECK(rd_kafka_mock_topic_create(mc, TOPIC, PARTITIONS, 3) == RD_KAFKA_RESP_ERR_NO_ERROR);
    return mc;
}

/* The partition librdkafka's default partitioner (consistent_random: CRC32 of the key) picks for a vehicle's
 * decimal key, computed here with zlib, independently of the worker's code. */
static int32_t crc_partition(uint64_t vehicle_id)
{
    char key[32];
    int n = snprintf(key, sizeof key, "%" PRIu64, vehicle_id);
    return (int32_t)(crc32(0, (const unsigned char *)key, (unsigned)n) % PARTITIONS);
}

/* Reads the whole topic back and checks it against what was sent. Per vehicle: key = vehicle id, full headers
 * when compact is 0. Per partition: no key, format version 3, every record on its vehicle's CRC32 partition. */
static void verify(const char *bootstraps, const char *topic, tp_pack_by by, int compact, const sent_log *sent,
                   uint64_t total)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof err) == RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "group.id", "verify", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_conf_set(conf, "check.crcs", "true", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    CHECK(rk != NULL);
    if (!rk)
        return;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    CHECK(rd_kafka_assign(rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);

    tp_pack_reader *rd;
    uint64_t bad_form = 0, bad_partition = 0;
    CHECK_ERR(tp_pack_reader_new(NULL, &rd), TP_OK);
    static uint64_t got[VEHICLES], next_seq[VEHICLES];
    memset(got, 0, sizeof got);
    memset(next_seq, 0, sizeof next_seq);
    uint64_t records = 0, packs = 0, bad_key = 0, bad_pack = 0, out_of_order = 0, unknown = 0;
    int64_t seen[PARTITIONS] = {0};
    for (int idle = 0; records < total && idle < 100;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            idle++;
            continue;
        }
        if (m->err) {
            fprintf(stderr, "consumer: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        idle = 0;
        packs++;
        if (m->partition >= 0 && m->partition < PARTITIONS)
            seen[m->partition]++;
        rd_kafka_headers_t *h = NULL;
        tp_pack_meta meta;
        char msg[256];
        if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            tp_pack_meta_from_headers(h, &meta, msg, sizeof msg) != TP_OK ||
            tp_pack_reader_open(rd, &meta, m->payload, m->len) != TP_OK) {
            bad_pack++;
            rd_kafka_message_destroy(m);
            continue;
        }
        const void *hv;
        size_t hn;
        int has_compact = rd_kafka_header_get_last(h, TP_HEADER_COMPACT, &hv, &hn) == RD_KAFKA_RESP_ERR_NO_ERROR;
        bad_form += has_compact != compact || rd_kafka_header_cnt(h) != (compact ? 1u : 8u) ||
                    meta.format_version != (by == TP_PACK_BY_PARTITION ? 3u : 2u) ||
                    (by == TP_PACK_BY_PARTITION && m->key_len != 0);
        char key[32] = "";
        if (m->key && m->key_len < sizeof key)
            memcpy(key, m->key, m->key_len);
        tp_record r;
        tp_err e;
        while ((e = tp_pack_reader_next(rd, &r)) == TP_OK) {
            records++;
            char want[32];
            snprintf(want, sizeof want, "%" PRIu64, r.vehicle_id);
            if (by == TP_PACK_BY_VEHICLE && strcmp(key, want))
                bad_key++;
            if (m->partition != crc_partition(r.vehicle_id))
                bad_partition++;
            uint64_t v = r.vehicle_id - FIRST_ID;
            if (v >= VEHICLES) {
                unknown++;
                continue;
            }
            if (next_seq[v] >= sent->count[v] || sent->seqs[v][next_seq[v]] != r.seq) {
                if (out_of_order++ < 5)
                    fprintf(stderr, "vehicle %" PRIu64 ": got seq %" PRIu64 " at position %" PRIu64
                            " (partition %" PRId32 ", offset %" PRId64 "), want seq %" PRIu64 "\n",
                            r.vehicle_id, r.seq, next_seq[v], m->partition, m->offset,
                            next_seq[v] < sent->count[v] ? sent->seqs[v][next_seq[v]] : 0);
            }
            next_seq[v]++;
            got[v]++;
        }
        if (e != TP_ERR_END)
            bad_pack++;
        rd_kafka_message_destroy(m);
    }
    for (int p = 0; p < PARTITIONS; p++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000);
        if (hi - lo != seen[p])
            fprintf(stderr, "partition %d: log holds offsets %" PRId64 "..%" PRId64 ", consumer saw %" PRId64 "\n",
                    p, lo, hi, seen[p]);
    }
    uint64_t mismatched = 0;
    for (int v = 0; v < VEHICLES; v++)
        mismatched += got[v] != sent->count[v];
    CHECK_INT(records, total);
    CHECK_INT(bad_pack, 0);
    CHECK_INT(bad_key, 0);
    CHECK_INT(bad_form, 0);
    CHECK_INT(bad_partition, 0);
    CHECK_INT(unknown, 0);
    CHECK_INT(out_of_order, 0);
    CHECK_INT(mismatched, 0);
    CHECK(packs > 0);
    fprintf(stderr, "verified %" PRIu64 " records in %" PRIu64 " packs\n", records, packs);
    tp_pack_reader_free(rd);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* Counts the records in the whole topic. */
static uint64_t count_records(const char *bootstraps, const char *topic, uint64_t want)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", "count", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        return 0;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    uint64_t n = 0;
    for (int idle = 0; idle < (n >= want ? 2 : 50);) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            idle++;
            continue;
        }
        const rd_kafka_headers_t *h = NULL;
        tp_pack_meta meta;
        if (!m->err && rd_kafka_message_headers(m, (rd_kafka_headers_t **)&h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            tp_pack_meta_from_headers(h, &meta, NULL, 0) == TP_OK)
            n += meta.record_count;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* A librdkafka fatal error: the worker fails, closes its gateways and acks nothing that was not delivered. */
static void test_fatal(rd_kafka_mock_cluster_t *mc)
{
    const char *topic = "tp-fatal";
    CHECK(rd_kafka_mock_topic_create(mc, topic, PARTITIONS, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    tp_ingest_opts o;
    tp_ingest_opts_init(&o);
    o.brokers = rd_kafka_mock_cluster_bootstraps(mc);
    o.topic = topic;
    o.listen = "127.0.0.1:0";
    o.threads = 1;
    o.batch.max_records = 1000;
    o.batch.linger_ms = 100;
    const char *kconf[] = {"log_level=2"};
    o.kafka_conf = kconf;
    o.nkafka_conf = 1;
    tp_ingest *ing;
    char err[512];
    CHECK_ERR(tp_ingest_new(&o, &ing, err, sizeof err), TP_OK);
    CHECK_ERR(tp_ingest_start(ing), TP_OK);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tp_ingest_port(ing));
    tp_gateway_client_opts co;
    tp_gateway_client_opts_init(&co);
    co.connect = addr;
    co.backoff_min_ms = 10;
    tp_gateway_client *gw;
    CHECK_ERR(tp_gateway_client_new(&co, &gw), TP_OK);
    tp_record r = {0};
    r.sampled_at_ms = 1767225600000;
    for (uint64_t i = 0; i < 300; i++) {
        r.vehicle_id = 1 + i % 30;
        r.seq = i;
        CHECK_ERR(tp_gateway_client_send(gw, &r), TP_OK);
    }
    CHECK_ERR(tp_gateway_client_drain(gw, 10000), TP_OK); /* delivered after the linger */
    /* these stay in open batches (linger 100 ms): the fatal error comes first */
    for (uint64_t i = 300; i < 400; i++) {
        r.vehicle_id = 1 + i % 30;
        r.seq = i;
        CHECK_ERR(tp_gateway_client_send(gw, &r), TP_OK);
    }
    tp_gateway_client_pump(gw, 20);
    CHECK(rd_kafka_test_fatal_error(tp_ingest_kafka_handle(ing), RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                    "injected by the test") == RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int i = 0; i < 100 && !tp_ingest_failed(ing, NULL, 0); i++)
        tp_gateway_client_pump(gw, 10);
    char why[512] = "";
    CHECK(tp_ingest_failed(ing, why, sizeof why));
    CHECK(strstr(why, "fatal") != NULL);
    CHECK_ERR(tp_gateway_client_drain(gw, 300), TP_ERR_AGAIN); /* the worker is gone: these are never acked */
    tp_gateway_client_stats cs;
    tp_gateway_client_stats_get(gw, &cs);
    CHECK_INT(cs.records_acked, 300);
    CHECK_INT(cs.unacked_records, 100);
    CHECK_ERR(tp_ingest_stop(ing, 5000), TP_ERR_KAFKA);
    tp_ingest_stats st;
    tp_ingest_stats_get(ing, &st);
    CHECK_INT(st.records_acked, 300);
    CHECK_INT(st.buffered_records, 0);
    tp_gateway_client_free(gw);
    tp_ingest_free(ing);
    /* Kafka holds what was acked, and nothing that was not sent */
    CHECK_INT(count_records(rd_kafka_mock_cluster_bootstraps(mc), topic, 300), 300);
}

/* Brokers down long enough for messages to time out: the worker sends those packs again and, once the brokers are
 * back, every record is delivered and acked. */
static void test_timeout_retry(rd_kafka_mock_cluster_t *mc)
{
    const char *topic = "tp-retry";
    CHECK(rd_kafka_mock_topic_create(mc, topic, PARTITIONS, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    tp_ingest_opts o;
    tp_ingest_opts_init(&o);
    o.brokers = rd_kafka_mock_cluster_bootstraps(mc);
    o.topic = topic;
    o.listen = "127.0.0.1:0";
    o.threads = 1;
    o.batch.max_records = 20;
    o.batch.linger_ms = 10;
    const char *kconf[] = {"log_level=0", "message.timeout.ms=200", "reconnect.backoff.max.ms=100"};
    o.kafka_conf = kconf;
    o.nkafka_conf = 3;
    tp_ingest *ing;
    char err[512];
    CHECK_ERR(tp_ingest_new(&o, &ing, err, sizeof err), TP_OK);
    CHECK_ERR(tp_ingest_start(ing), TP_OK);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tp_ingest_port(ing));
    tp_gateway_client_opts co;
    tp_gateway_client_opts_init(&co);
    co.connect = addr;
    tp_gateway_client *gw;
    CHECK_ERR(tp_gateway_client_new(&co, &gw), TP_OK);
    /* A worker that was running when Kafka went away: packing per partition, it has read the topic's partition
     * count by then (before it, records wait at the gateways and nothing is produced to time out). */
    char reason[256] = "";
    for (int i = 0; i < 500 && !tp_ingest_ready(ing, reason, sizeof reason); i++)
        usleep(10000);
    CHECK(tp_ingest_ready(ing, reason, sizeof reason));
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_down(mc, b);
    tp_record r = {0};
    r.sampled_at_ms = 1767225600000;
    for (uint64_t i = 0; i < 200; i++) {
        r.vehicle_id = 1 + i % 10;
        r.seq = i;
        CHECK_ERR(tp_gateway_client_send(gw, &r), TP_OK);
    }
    tp_ingest_stats st = {0};
    for (int i = 0; i < 300 && st.delivery_retries == 0; i++) {
        tp_gateway_client_pump(gw, 10);
        tp_ingest_stats_get(ing, &st);
    }
    CHECK(st.delivery_retries > 0);
    tp_gateway_client_stats cs;
    tp_gateway_client_stats_get(gw, &cs);
    CHECK_INT(cs.records_acked, 0); /* nothing acked while Kafka has nothing */
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_up(mc, b);
    CHECK_ERR(tp_gateway_client_drain(gw, 20000), TP_OK);
    tp_gateway_client_stats_get(gw, &cs);
    CHECK_INT(cs.records_acked, 200);
    char why[512] = "";
    CHECK(!tp_ingest_failed(ing, why, sizeof why));
    if (why[0])
        fprintf(stderr, "unexpected failure: %s\n", why);
    CHECK_ERR(tp_ingest_stop(ing, 5000), TP_OK);
    tp_gateway_client_free(gw);
    tp_ingest_free(ing);
    CHECK(count_records(rd_kafka_mock_cluster_bootstraps(mc), topic, 200) >= 200);
}

/* Layout rows, an all-zero record (vehicle 0, every field default) from one gateway among other gateways' records:
 * it used to make the pack writer fail and the whole worker exit (and again on every restart, as the gateway
 * resent it). Now every record of both gateways is delivered and acked, and the worker carries on. */
static void test_zero_record_rows(rd_kafka_mock_cluster_t *mc)
{
    const char *topic = "tp-zero";
    CHECK(rd_kafka_mock_topic_create(mc, topic, PARTITIONS, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    tp_ingest_opts o;
    tp_ingest_opts_init(&o);
    o.brokers = rd_kafka_mock_cluster_bootstraps(mc);
    o.topic = topic;
    o.listen = "127.0.0.1:0";
    o.threads = 1;
    o.layout = TP_LAYOUT_ROWS;
    o.batch.max_records = 5;
    o.batch.linger_ms = 10;
    const char *kconf[] = {"log_level=2"};
    o.kafka_conf = kconf;
    o.nkafka_conf = 1;
    tp_ingest *ing;
    char err[512];
    CHECK_ERR(tp_ingest_new(&o, &ing, err, sizeof err), TP_OK);
    CHECK_ERR(tp_ingest_start(ing), TP_OK);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tp_ingest_port(ing));
    tp_gateway_client_opts co;
    tp_gateway_client_opts_init(&co);
    co.connect = addr;
    co.backoff_min_ms = 10;
    co.protocol = 1; /* v1 takes records as they are; v2 would reject the zero record's 1970 time (event_time) */
    tp_gateway_client *gw[2];
    CHECK_ERR(tp_gateway_client_new(&co, &gw[0]), TP_OK);
    CHECK_ERR(tp_gateway_client_new(&co, &gw[1]), TP_OK);
    tp_record zero = {0}, r = {0};
    r.sampled_at_ms = 1767225600000;
    /* alone first: a pack of the zero record only */
    CHECK_ERR(tp_gateway_client_send(gw[0], &zero), TP_OK);
    CHECK_ERR(tp_gateway_client_drain(gw[0], 10000), TP_OK);
    uint64_t total = 1;
    for (uint64_t i = 0; i < 50; i++) {
        if (i % 10 == 0) { /* the zero record opens vehicle 0's batches */
            CHECK_ERR(tp_gateway_client_send(gw[0], &zero), TP_OK);
            total++;
        }
        r.vehicle_id = i % 7; /* vehicle 0 too: the zero record shares batches with real ones */
        r.seq = i + 1;
        CHECK_ERR(tp_gateway_client_send(gw[i % 2], &r), TP_OK);
        total++;
    }
    for (int i = 0; i < 2; i++)
        CHECK_ERR(tp_gateway_client_drain(gw[i], 10000), TP_OK);
    char why[512] = "";
    CHECK(!tp_ingest_failed(ing, why, sizeof why));
    if (why[0])
        fprintf(stderr, "unexpected failure: %s\n", why);
    CHECK_ERR(tp_ingest_stop(ing, 5000), TP_OK);
    tp_ingest_stats st;
    tp_ingest_stats_get(ing, &st);
    CHECK_INT(st.records_acked, total);
    CHECK_INT(st.connections_closed_on_error, 0);
    for (int i = 0; i < 2; i++)
        tp_gateway_client_free(gw[i]);
    tp_ingest_free(ing);
    CHECK_INT(count_records(rd_kafka_mock_cluster_bootstraps(mc), topic, total), total);
}

/* No argument: fleet end to end with injected produce errors. "faults": fatal error, then a broker outage. */
static void run(rd_kafka_mock_cluster_t *mc, const char *topic, tp_pack_by by, int compact, int errors);

int main(int argc, char **argv)
{
    rd_kafka_t *holder;
    rd_kafka_mock_cluster_t *mc = make_cluster(&holder);
    if (argc > 1 && !strcmp(argv[1], "faults")) {
        test_fatal(mc);
        test_timeout_retry(mc);
        test_zero_record_rows(mc);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(holder);
        return check_exit();
    }
    run(mc, TOPIC, TP_PACK_BY_VEHICLE, 0, 1);
    CHECK(rd_kafka_mock_topic_create(mc, "tp-packs-partition", PARTITIONS, 3) == RD_KAFKA_RESP_ERR_NO_ERROR);
    run(mc, "tp-packs-partition", TP_PACK_BY_PARTITION, 1, 0);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(holder);
    return check_exit();
}

/* One run of the fleet through the worker (pack_by, full or compact headers), then verify() and, with errors,
 * the refused configurations. */
static void run(rd_kafka_mock_cluster_t *mc, const char *topic, tp_pack_by by, int compact, int errors)
{
    const char *boot = rd_kafka_mock_cluster_bootstraps(mc);

    tp_ingest_opts o;
    tp_ingest_opts_init(&o);
    tp_ingest_opts_pack_by(&o, by);
    o.compact_headers = compact;
    o.brokers = boot;
    o.topic = topic;
    o.listen = "127.0.0.1:0";
    o.threads = 2;
    o.batch.max_records = 8;
    o.batch.linger_ms = 30;
    o.batch.max_buffered_bytes = 64 * 1024; /* small: backpressure happens */
    /* One request in flight per connection: the 2.0.2 mock broker does not validate idempotent sequence numbers,
     * so with several in flight it appends a later batch after an earlier one failed, and librdkafka (rightly, for
     * a real broker) then takes the earlier "possibly persisted" batch as delivered although the mock dropped it. */
    const char *kconf[] = {"linger.ms=2", "log_level=3", "max.in.flight.requests.per.connection=1"};
    o.kafka_conf = kconf;
    o.nkafka_conf = 3;
    tp_metrics *metrics;
    tp_ingest_metrics im;
    CHECK_ERR(tp_metrics_new(&metrics), TP_OK);
    CHECK_ERR(tp_ingest_metrics_register(metrics, &im), TP_OK);
    o.metrics = &im;
    tp_ingest *ing = NULL;
    char err[512] = "";
    CHECK_ERR(tp_ingest_new(&o, &ing, err, sizeof err), TP_OK);
    if (!ing) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_ERR(tp_ingest_start(ing), TP_OK);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tp_ingest_port(ing));

    tp_gateway_client *gw[GATEWAYS];
    for (int i = 0; i < GATEWAYS; i++) {
        tp_gateway_client_opts co;
        tp_gateway_client_opts_init(&co);
        co.connect = addr;
        co.max_unacked_bytes = 16 * 1024;
        CHECK_ERR(tp_gateway_client_new(&co, &gw[i]), TP_OK);
    }
    tp_fleet_opts fo;
    tp_fleet_opts_init(&fo);
    fo.vehicles = VEHICLES;
    fo.seconds = TICKS;
    fo.first_vehicle_id = FIRST_ID;
    tp_fleet *fl;
    CHECK_ERR(tp_fleet_new(&fo, &fl), TP_OK);
    static sent_log sent;
    memset(&sent, 0, sizeof sent);
    uint64_t total = 0;
    tp_record r;
    int injected = 0;
    while (tp_fleet_next(fl, &r) == TP_OK) {
        uint64_t v = r.vehicle_id - FIRST_ID;
        CHECK(v < VEHICLES);
        if (v >= VEHICLES)
            break;
        sent.seqs[v][sent.count[v]++] = r.seq;
        /* a vehicle always talks through the same gateway, as behind a vehicle-affine balancer */
        CHECK_ERR(tp_gateway_client_send(gw[v % GATEWAYS], &r), TP_OK);
        total++;
        if (!injected && total == (uint64_t)VEHICLES * TICKS / 2) {
            /* fault injection: the next produce requests fail with retriable errors */
            rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                              RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                              RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                              RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                              RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                                              RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
            injected = 1;
        }
    }
    tp_fleet_free(fl);
    for (int i = 0; i < GATEWAYS; i++) {
        CHECK_ERR(tp_gateway_client_drain(gw[i], 30000), TP_OK);
        tp_gateway_client_stats cs;
        tp_gateway_client_stats_get(gw[i], &cs);
        CHECK_INT(cs.unacked_records, 0);
        CHECK_INT(cs.records_acked, cs.records_sent);
        tp_gateway_client_free(gw[i]);
    }
    CHECK_ERR(tp_ingest_stop(ing, 10000), TP_OK);
    tp_ingest_stats st;
    tp_ingest_stats_get(ing, &st);
    CHECK_INT(st.records_in, total);
    CHECK_INT(st.records_out, total);
    CHECK_INT(st.records_acked, total);
    CHECK_INT(st.buffered_records, 0);
    CHECK_INT(st.delivery_failures, 0);
    CHECK(st.pack_bytes_out > 0 && st.pack_bytes_out < st.bytes_in);
    CHECK(!tp_ingest_failed(ing, NULL, 0));
    tp_ingest_free(ing);
    /* the Prometheus counters mirror the same totals */
    CHECK_INT(tp_counter_value(im.records), total);
    CHECK_INT(tp_counter_value(im.packs), st.packs_out);
    CHECK_INT(tp_counter_value(im.bytes_out), st.pack_bytes_out);
    CHECK_INT(tp_counter_value(im.flush_records) + tp_counter_value(im.flush_bytes) +
                  tp_counter_value(im.flush_linger) + tp_counter_value(im.flush_shutdown) +
                  tp_counter_value(im.flush_gateway),
              st.packs_out);
    CHECK_INT(tp_histogram_count(im.records_per_pack), st.packs_out);
    CHECK_INT(tp_counter_value(im.delivery_errors), 0);
    tp_metrics_free(metrics);

    verify(boot, topic, by, compact, &sent, total);
    if (!errors)
        return;

    /* errors: no topic; a malformed -X property; a listen address in use */
    tp_ingest_opts bad = o;
    bad.topic = NULL;
    CHECK_ERR(tp_ingest_new(&bad, &ing, err, sizeof err), TP_ERR_INVALID_ARG);
    bad = o;
    const char *badconf[] = {"no-equals-sign"};
    bad.kafka_conf = badconf;
    bad.nkafka_conf = 1;
    CHECK_ERR(tp_ingest_new(&bad, &ing, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "no-equals-sign") != NULL);
    const char *unknownconf[] = {"no.such.property=1"};
    bad.kafka_conf = unknownconf;
    CHECK_ERR(tp_ingest_new(&bad, &ing, err, sizeof err), TP_ERR_INVALID_ARG);
    CHECK(strstr(err, "no.such.property") != NULL);
}
