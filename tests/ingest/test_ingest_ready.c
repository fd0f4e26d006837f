/* The ingest worker's readiness (tp_ingest_ready, /readyz) and its librdkafka statistics export, against
 * librdkafka's mock cluster: no broker, broker connected, produce responses held back until the memory cap holds
 * the gateways back, brokers down and up again, a fatal error, shutdown; and without a registry no broker check. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "ingest/gateway_client.h"
#include "ingest/ingest.h"

#define TOPIC "tp-ready"
#define BROKERS 3

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls tp_ingest_ready for up to 15 s until it says `ready` (and, when not ready, a reason containing `want`). */
static int wait_ready(tp_ingest *ing, int ready, const char *want, char *reason, size_t cap)
{
    for (int i = 0; i < 1500; i++) {
        reason[0] = 0;
        int r = tp_ingest_ready(ing, reason, cap);
        if (r == ready && (ready || !want || strstr(reason, want)))
            return 1;
        sleep_ms(10);
    }
    fprintf(stderr, "readiness stayed %d (%s), wanted %d (%s)\n", tp_ingest_ready(ing, reason, cap), reason, ready,
            want ? want : "");
    return 0;
}

static int rendered_has(tp_metrics *m, const char *line)
{
    char *text = NULL;
    size_t len = 0;
    if (tp_metrics_render(m, &text, &len) != TP_OK)
        return 0;
    int found = strstr(text, line) != NULL;
    free(text);
    return found;
}

/* Waits (at most 15 s) until the rendered metrics hold line: the statistics callback that fills them may come after
 * readiness (a delivered pack proves a broker too), later still on a loaded machine. */
static int wait_rendered(tp_metrics *m, const char *line)
{
    for (int i = 0; i < 1500; i++) {
        if (rendered_has(m, line))
            return 1;
        sleep_ms(10);
    }
    fprintf(stderr, "the metrics never showed \"%s\"\n", line);
    return 0;
}

static void base_opts(tp_ingest_opts *o, const char **kconf, size_t nk)
{
    tp_ingest_opts_init(o);
    o->topic = TOPIC;
    o->listen = "127.0.0.1:0";
    o->threads = 1;
    o->kafka_conf = kconf;
    o->nkafka_conf = nk;
}

/* Nothing listens at the bootstrap address: not ready, first "yet", then (statistics in) "no broker connected";
 * stopping says so. */
static void test_no_broker(void)
{
    tp_metrics *m;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    const char *kconf[] = {"statistics.interval.ms=50", "log_level=0"};
    tp_ingest_opts o;
    base_opts(&o, kconf, 2);
    o.brokers = "127.0.0.1:1";
    o.kafka_metrics = m;
    tp_ingest *ing;
    char err[512], reason[256];
    CHECK_ERR(tp_ingest_new(&o, &ing, err, sizeof err), TP_OK);
    CHECK_ERR(tp_ingest_start(ing), TP_OK);
    CHECK(!tp_ingest_ready(ing, reason, sizeof reason));
    CHECK(strncmp(reason, "kafka: no broker connect", 24) == 0);
    CHECK(wait_ready(ing, 0, "kafka: no broker connected", reason, sizeof reason));
    CHECK(rendered_has(m, "telepack_kafka_stats_updates_total{role=\"producer\"} "));
    CHECK_ERR(tp_ingest_stop(ing, 1000), TP_OK);
    CHECK(!tp_ingest_ready(ing, reason, sizeof reason));
    CHECK(strstr(reason, "shutting down") != NULL);
    tp_ingest_free(ing);
    tp_metrics_free(m);
}

/* Without a registry there are no statistics: readiness does not look at brokers (packing per vehicle). Packing
 * per partition needs the topic's partition count from the cluster: not ready until it is known. */
static void test_no_metrics(void)
{
    const char *kconf[] = {"log_level=0"};
    tp_ingest_opts o;
    base_opts(&o, kconf, 1);
    tp_ingest_opts_pack_by(&o, TP_PACK_BY_VEHICLE);
    o.brokers = "127.0.0.1:1";
    tp_ingest *ing;
    char err[512], reason[256] = "";
    CHECK_ERR(tp_ingest_new(&o, &ing, err, sizeof err), TP_OK);
    CHECK_ERR(tp_ingest_start(ing), TP_OK);
    CHECK(tp_ingest_ready(ing, reason, sizeof reason));
    tp_ingest_free(ing);

    tp_ingest_opts_pack_by(&o, TP_PACK_BY_PARTITION);
    CHECK_ERR(tp_ingest_new(&o, &ing, err, sizeof err), TP_OK);
    CHECK_ERR(tp_ingest_start(ing), TP_OK);
    CHECK(!tp_ingest_ready(ing, reason, sizeof reason));
    CHECK(strstr(reason, "partition count of topic") != NULL);
    tp_ingest_free(ing);
}

static void set_rtt(rd_kafka_mock_cluster_t *mc, int rtt_ms)
{
    for (int32_t b = 1; b <= BROKERS; b++)
        CHECK(rd_kafka_mock_broker_set_rtt(mc, b, rtt_ms) == RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void test_mock(rd_kafka_mock_cluster_t *mc)
{
    tp_metrics *m;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    const char *kconf[] = {"statistics.interval.ms=50", "log_level=2"};
    tp_ingest_opts o;
    base_opts(&o, kconf, 2);
    o.brokers = rd_kafka_mock_cluster_bootstraps(mc);
    o.kafka_metrics = m;
    o.batch.max_records = 10;
    o.batch.linger_ms = 20;
    o.batch.max_buffered_bytes = 2048;
    tp_ingest *ing;
    char err[512], reason[256];
    CHECK_ERR(tp_ingest_new(&o, &ing, err, sizeof err), TP_OK);
    CHECK_ERR(tp_ingest_start(ing), TP_OK);
    CHECK(wait_ready(ing, 1, NULL, reason, sizeof reason));
    CHECK(wait_rendered(m, "telepack_kafka_queue_max_messages{role=\"producer\"} "));
    int up_seen = 0;
    for (int i = 0; i < 1500 && !up_seen; i++) { /* some broker reported up, within 15 s */
        for (int32_t b = 1; b <= BROKERS; b++) {
            char line[128];
            snprintf(line, sizeof line, "telepack_kafka_broker_up{role=\"producer\",broker=\"%d\"} 1", (int)b);
            up_seen |= rendered_has(m, line);
        }
        if (!up_seen)
            sleep_ms(10);
    }
    CHECK(up_seen);

    /* Produce responses held back: packs stay in flight until the memory cap stops reading. */
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tp_ingest_port(ing));
    tp_gateway_client_opts co;
    tp_gateway_client_opts_init(&co);
    co.connect = addr;
    co.backoff_min_ms = 10;
    tp_gateway_client *gw;
    CHECK_ERR(tp_gateway_client_new(&co, &gw), TP_OK);
    set_rtt(mc, 1000);
    tp_record r = {0};
    r.sampled_at_ms = 1767225600000;
    for (uint64_t i = 0; i < 400; i++) {
        r.vehicle_id = 1 + i % 20;
        r.seq = i;
        CHECK_ERR(tp_gateway_client_send(gw, &r), TP_OK);
    }
    int capped = 0;
    for (int i = 0; i < 500 && !capped; i++) {
        tp_gateway_client_pump(gw, 10);
        capped = !tp_ingest_ready(ing, reason, sizeof reason) && strstr(reason, "memory cap") != NULL;
    }
    CHECK(capped);
    CHECK(strstr(reason, "--max-buffered-bytes 2048") != NULL);
    set_rtt(mc, 0);
    CHECK_ERR(tp_gateway_client_drain(gw, 15000), TP_OK);
    CHECK(wait_ready(ing, 1, NULL, reason, sizeof reason));

    /* Every broker down: not ready; back up: ready again. */
    for (int32_t b = 1; b <= BROKERS; b++)
        CHECK(rd_kafka_mock_broker_set_down(mc, b) == RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK(wait_ready(ing, 0, "kafka: no broker connected", reason, sizeof reason));
    for (int32_t b = 1; b <= BROKERS; b++)
        CHECK(rd_kafka_mock_broker_set_up(mc, b) == RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK(wait_ready(ing, 1, NULL, reason, sizeof reason));

    /* A fatal error: not ready, and the reason says why. */
    CHECK(rd_kafka_test_fatal_error(tp_ingest_kafka_handle(ing), RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                    "injected by the test") == RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK(wait_ready(ing, 0, "ingest failed: ", reason, sizeof reason));
    CHECK(strstr(reason, "fatal") != NULL);
    tp_gateway_client_free(gw);
    CHECK_ERR(tp_ingest_stop(ing, 2000), TP_ERR_KAFKA);
    tp_ingest_free(ing);
    tp_metrics_free(m);
}

int main(void)
{
    test_no_metrics();
    test_no_broker();
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rd_kafka_t *holder = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    CHECK(holder != NULL);
    if (!holder)
        return check_exit();
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(holder, BROKERS);
    CHECK(mc != NULL);
    CHECK(rd_kafka_mock_topic_create(mc, TOPIC, 2, BROKERS) == RD_KAFKA_RESP_ERR_NO_ERROR);
    test_mock(mc);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(holder);
    return check_exit();
}
