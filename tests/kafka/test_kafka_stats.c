/* Tests of the librdkafka statistics parser and exporter: two samples in the JSON librdkafka 2.0.2 emits (captured
 * against its mock cluster; broker rtt and producer queue values filled in, since the mock answers instantly), the
 * error paths, and a live producer on the mock cluster whose stats_cb feeds the exporter. */
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "kafka/kafka_stats.h"
#include "ops/metrics.h"
#include "telepack/error.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        *len = (size_t)n;
    }
    return b;
}

/* The value of the sample line that starts with `series` followed by a space; -12345 if absent. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -12345;
}

static char *render(tp_metrics *m)
{
    char *t = NULL;
    CHECK_ERR(tp_metrics_render(m, &t, NULL), TP_OK);
    return t ? t : calloc(1, 1);
}

static const tp_kafka_partition_stats *part(const tp_kafka_stats *s, int32_t id)
{
    for (size_t i = 0; i < s->n_partitions; i++)
        if (s->partitions[i].partition == id)
            return &s->partitions[i];
    return NULL;
}

static void test_consumer_sample(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/rdkafka_stats_consumer.json", dir);
    size_t len = 0;
    char *json = read_file(path, &len);
    CHECK(json != NULL);
    if (!json)
        return;
    tp_kafka_stats s;
    CHECK_ERR(tp_kafka_stats_parse(json, len, &s), TP_OK);
    CHECK_STR(s.type, "consumer");
    CHECK_STR(s.name, "telepack-sink#consumer-2");
    CHECK_INT(s.rxmsgs, 3000);
    CHECK_INT(s.n_brokers, 3); /* the logical GroupCoordinator entry is not a fourth broker */
    CHECK_INT(s.n_partitions, 3); /* partition -1 skipped */
    CHECK(part(&s, -1) == NULL);
    CHECK(s.has_cgrp && !strcmp(s.cgrp_state, "up") && s.assignment_size == 3 && s.rebalance_cnt == 1);
    const tp_kafka_partition_stats *p0 = part(&s, 0), *p1 = part(&s, 1), *p2 = part(&s, 2);
    CHECK(p0 && p1 && p2);
    if (p0 && p1 && p2) {
        CHECK_STR(p0->topic, "telemetry.packs");
        CHECK_INT(p0->consumer_lag, 59);
        CHECK_INT(p0->hi_offset, 959);
        CHECK_INT(p0->lo_offset, 0);
        CHECK_INT(p0->committed_offset, 900);
        CHECK(p1->consumer_lag == TP_KAFKA_STATS_UNKNOWN); /* librdkafka said -1 */
        CHECK(p1->committed_offset == TP_KAFKA_STATS_UNKNOWN); /* -1001 */
        CHECK_INT(p1->hi_offset, 1084);
        CHECK_INT(p2->consumer_lag_stored, 58);
    }
    int found = 0;
    for (size_t i = 0; i < s.n_brokers; i++)
        if (s.brokers[i].nodeid == 3) {
            found = 1;
            CHECK_INT(s.brokers[i].rtt_avg_us, 2349);
            CHECK_INT(s.brokers[i].rtt_p99_us, 3391);
            CHECK(s.brokers[i].up);
        } else if (s.brokers[i].nodeid == 2) {
            CHECK(!s.brokers[i].up); /* state INIT in the sample */
        }
    CHECK(found);
    tp_kafka_stats_clear(&s);

    /* Export, then a second snapshot without partition 0 (revoked): its lag series disappears. */
    tp_metrics *m = NULL;
    tp_kafka_stats_exporter *e = NULL;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    CHECK_ERR(tp_kafka_stats_exporter_new(m, &e), TP_OK);
    CHECK_ERR(tp_kafka_stats_exporter_update(e, json, len), TP_OK);
    char *t = render(m);
    CHECK(value_of(t, "telepack_sink_consumer_lag{topic=\"telemetry.packs\",partition=\"0\"}") == 59);
    CHECK(value_of(t, "telepack_sink_consumer_lag{topic=\"telemetry.packs\",partition=\"2\"}") == 58);
    CHECK(value_of(t, "telepack_sink_consumer_lag{topic=\"telemetry.packs\",partition=\"1\"}") == -12345);
    CHECK(value_of(t, "telepack_sink_consumer_lag{topic=\"telemetry.packs\",partition=\"-1\"}") == -12345);
    CHECK(value_of(t, "telepack_sink_consumer_lag_stored{topic=\"telemetry.packs\",partition=\"0\"}") == 59);
    CHECK(value_of(t, "telepack_kafka_partition_hi_offset{role=\"consumer\",topic=\"telemetry.packs\","
                      "partition=\"1\"}") == 1084);
    CHECK(value_of(t, "telepack_kafka_broker_rtt_avg_seconds{role=\"consumer\",broker=\"3\"}") == 0.002349);
    CHECK(value_of(t, "telepack_kafka_broker_up{role=\"consumer\",broker=\"2\"}") == 0);
    CHECK(value_of(t, "telepack_kafka_rx_messages_total{role=\"consumer\"}") == 3000);
    CHECK(value_of(t, "telepack_kafka_cgrp_assignment_size{role=\"consumer\"}") == 3);
    CHECK(value_of(t, "telepack_kafka_stats_updates_total{role=\"consumer\"}") == 1);
    CHECK(value_of(t, "telepack_kafka_queue_messages{role=\"consumer\"}") == -12345); /* producer-only */
    free(t);

    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    CHECK(root != NULL);
    json_t *parts = json_object_get(json_object_get(json_object_get(root, "topics"), "telemetry.packs"),
                                    "partitions");
    CHECK(json_object_del(parts, "0") == 0);
    char *json2 = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    CHECK_ERR(tp_kafka_stats_exporter_update(e, json2, strlen(json2)), TP_OK);
    free(json2);
    t = render(m);
    CHECK(value_of(t, "telepack_sink_consumer_lag{topic=\"telemetry.packs\",partition=\"0\"}") == -12345);
    CHECK(value_of(t, "telepack_kafka_partition_hi_offset{role=\"consumer\",topic=\"telemetry.packs\","
                      "partition=\"0\"}") == -12345);
    CHECK(value_of(t, "telepack_sink_consumer_lag{topic=\"telemetry.packs\",partition=\"2\"}") == 58);
    CHECK(value_of(t, "telepack_kafka_stats_updates_total{role=\"consumer\"}") == 2);
    free(t);
    /* A snapshot that fails to parse leaves the registry as it was. */
    CHECK_ERR(tp_kafka_stats_exporter_update(e, "{", 1), TP_ERR_PARSE);
    t = render(m);
    CHECK(value_of(t, "telepack_kafka_stats_updates_total{role=\"consumer\"}") == 2);
    free(t);
    tp_kafka_stats_exporter_free(e);
    tp_metrics_free(m);
    free(json);
}

static void test_producer_sample(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/rdkafka_stats_producer.json", dir);
    size_t len = 0;
    char *json = read_file(path, &len);
    CHECK(json != NULL);
    if (!json)
        return;
    tp_kafka_stats s;
    CHECK_ERR(tp_kafka_stats_parse(json, len, &s), TP_OK);
    CHECK_STR(s.type, "producer");
    CHECK_INT(s.msg_cnt, 412);
    CHECK_INT(s.msg_size, 169328);
    CHECK_INT(s.txmsgs, 3000);
    CHECK(!s.has_cgrp);
    const tp_kafka_partition_stats *p1 = part(&s, 1);
    CHECK(p1 && p1->msgq_cnt == 175 && p1->msgq_bytes == 175 * 411);
    tp_kafka_stats_clear(&s);
    CHECK(s.partitions == NULL && s.n_partitions == 0);

    tp_metrics *m = NULL;
    tp_kafka_stats_exporter *e = NULL;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    CHECK_ERR(tp_kafka_stats_exporter_new(m, &e), TP_OK);
    CHECK_ERR(tp_kafka_stats_exporter_update(e, json, len), TP_OK);
    char *t = render(m);
    CHECK(value_of(t, "telepack_kafka_queue_messages{role=\"producer\"}") == 412);
    CHECK(value_of(t, "telepack_kafka_queue_bytes{role=\"producer\"}") == 169328);
    CHECK(value_of(t, "telepack_kafka_tx_messages_total{role=\"producer\"}") == 3000);
    CHECK(value_of(t, "telepack_kafka_partition_queue_messages{role=\"producer\",topic=\"telemetry.packs\","
                      "partition=\"0\"}") == 137);
    CHECK(value_of(t, "telepack_kafka_broker_rtt_p99_seconds{role=\"producer\",broker=\"1\"}") == 0.002911);
    CHECK(strstr(t, "telepack_sink_consumer_lag{") == NULL); /* consumers only */
    free(t);
    tp_kafka_stats_exporter_free(e);
    tp_metrics_free(m);
    free(json);
}

static void test_errors(void)
{
    tp_kafka_stats s;
    CHECK_ERR(tp_kafka_stats_parse("not json", 8, &s), TP_ERR_PARSE);
    CHECK_ERR(tp_kafka_stats_parse("[1,2]", 5, &s), TP_ERR_PARSE);
    CHECK_ERR(tp_kafka_stats_parse("{\"name\":\"x\"}", 12, &s), TP_ERR_PARSE); /* no type */
    CHECK_ERR(tp_kafka_stats_parse("{\"type\":7}", 10, &s), TP_ERR_PARSE);
    CHECK_ERR(tp_kafka_stats_parse("{\"type\":\"producer\"} x", 21, &s), TP_ERR_PARSE);
    CHECK_ERR(tp_kafka_stats_parse("{}", (size_t)TP_KAFKA_STATS_MAX_JSON + 1, &s), TP_ERR_FULL);
    CHECK_ERR(tp_kafka_stats_parse(NULL, 0, &s), TP_ERR_INVALID_ARG);
    /* Minimal: no brokers or topics at all; odd member types are ignored. */
    const char *min = "{\"type\":\"producer\",\"brokers\":[],\"topics\":{\"t\":{\"partitions\":7}},\"msg_cnt\":\"x\"}";
    CHECK_ERR(tp_kafka_stats_parse(min, strlen(min), &s), TP_OK);
    CHECK_INT(s.n_brokers, 0);
    CHECK_INT(s.n_partitions, 0);
    CHECK_INT(s.msg_cnt, 0);
    tp_kafka_stats_clear(&s);

    /* Above the partition bound. */
    json_t *root = json_pack("{s:s}", "type", "consumer");
    json_t *parts = json_object();
    for (int i = 0; i <= TP_KAFKA_STATS_MAX_PARTITIONS; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", i);
        json_object_set_new(parts, k, json_pack("{s:i}", "partition", i));
    }
    json_object_set_new(root, "topics", json_pack("{s:{s:o}}", "big", "partitions", parts));
    char *big = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    CHECK_ERR(tp_kafka_stats_parse(big, strlen(big), &s), TP_ERR_FULL);
    CHECK(s.partitions == NULL);
    free(big);

    tp_kafka_stats_exporter *e = NULL;
    CHECK_ERR(tp_kafka_stats_exporter_new(NULL, &e), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_kafka_stats_exporter_update(NULL, "{}", 2), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_kafka_stats_exporter_apply(NULL, NULL), TP_ERR_INVALID_ARG);
    tp_kafka_stats_exporter_free(NULL);

    /* A registry already holding a name with another type: the exporter reports the registration error. */
    tp_metrics *m = NULL;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    tp_metrics_counter(m, "telepack_kafka_replyq", "taken", "role=\"producer\"");
    CHECK_ERR(tp_kafka_stats_exporter_new(m, &e), TP_OK);
    const char *p = "{\"type\":\"producer\"}";
    CHECK_ERR(tp_kafka_stats_exporter_update(e, p, strlen(p)), TP_ERR_INVALID_ARG);
    tp_kafka_stats_exporter_free(e);
    tp_metrics_free(m);
}

/* ---- live: a producer on librdkafka's mock cluster ---- */

typedef struct live {
    tp_kafka_stats_exporter *e;
    int updates, errors;
} live;

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    live *l = opaque;
    if (tp_kafka_stats_exporter_update(l->e, json, len))
        l->errors++;
    l->updates++;
    return 0; /* librdkafka frees json */
}

static void test_live_producer(void)
{
    char err[256];
    tp_metrics *m = NULL;
    live l = {0};
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    CHECK_ERR(tp_kafka_stats_exporter_new(m, &l.e), TP_OK);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", err, sizeof err) == RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "statistics.interval.ms", "100", err, sizeof err) == RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) == RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    rd_kafka_conf_set_opaque(conf, &l);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    CHECK(rk != NULL);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        goto done;
    }
    for (int i = 0; i < 50; i++)
        CHECK(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("stats-test"), RD_KAFKA_V_VALUE("abc", 3),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) == 0);
    CHECK(rd_kafka_flush(rk, 10000) == 0);
    /* Poll until a snapshot shows all 50 transmitted (bounded: fail rather than hang). */
    double tx = 0;
    for (int i = 0; i < 100 && tx < 50; i++) {
        rd_kafka_poll(rk, 100);
        char *t = render(m);
        tx = value_of(t, "telepack_kafka_tx_messages_total{role=\"producer\"}");
        free(t);
    }
    CHECK(tx == 50);
    CHECK(l.updates > 0);
    CHECK_INT(l.errors, 0);
    char *t = render(m);
    CHECK(strstr(t, "telepack_kafka_broker_up{role=\"producer\",broker=\"1\"} 1\n") != NULL);
    CHECK(strstr(t, "telepack_kafka_partition_hi_offset{role=\"producer\",topic=\"stats-test\"") != NULL ||
          strstr(t, "telepack_kafka_partition_queue_messages{role=\"producer\",topic=\"stats-test\"") != NULL);
    free(t);
    rd_kafka_destroy(rk);
done:
    tp_kafka_stats_exporter_free(l.e);
    tp_metrics_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_kafka_stats DATA_DIR\n");
        return 2;
    }
    test_consumer_sample(argv[1]);
    test_producer_sample(argv[1]);
    test_errors();
    test_live_producer();
    return check_exit();
}
