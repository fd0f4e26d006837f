/* Ingest benchmark (JSON on stdout): (1) the per-core hot path, fleet records -> batcher -> pack writer (zstd),
 * swept over batch size and level; (2) the whole worker, gateway clients on loopback -> tp_ingest -> librdkafka
 * mock cluster -> acks, with CPU time per record; (3) the time to take 2,000 records through each. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ingest/batcher.h"
#include "ingest/gateway_client.h"
#include "ingest/ingest.h"
#include "sim/fleet.h"
#include "telepack/pack.h"
#include "common/clock.h"

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static tp_record *make_records(uint32_t vehicles, uint32_t seconds, size_t *n)
{
    tp_fleet_opts fo;
    tp_fleet_opts_init(&fo);
    fo.vehicles = vehicles;
    fo.seconds = seconds;
    tp_fleet *f;
    if (tp_fleet_new(&fo, &f))
        return NULL;
    size_t cap = (size_t)vehicles * seconds + 16, k = 0;
    tp_record *r = malloc(cap * sizeof *r);
    while (r && k < cap && tp_fleet_next(f, &r[k]) == TP_OK)
        k++;
    tp_fleet_free(f);
    *n = k;
    return r;
}

/* One core: batcher + pack writer in one loop. Returns records/s; *ratio = wire bytes / pack bytes. */
static double hot_path(const tp_record *recs, size_t n, uint32_t batch, int level, double *ratio, double *secs)
{
    tp_batcher_opts bo;
    tp_batcher_opts_init(&bo);
    bo.max_records = batch;
    bo.max_buffered_bytes = (size_t)1 << 40;
    tp_batcher *b;
    tp_pack_writer_opts wo;
    tp_pack_writer_opts_init(&wo);
    wo.layout = TP_LAYOUT_ROWS; /* the hot path as first measured (row packs), comparable across runs */
    wo.level = level;
    tp_pack_writer *w;
    if (tp_batcher_new(&bo, &b) || tp_pack_writer_new(&wo, &w))
        return 0;
    size_t cap = 1 << 20;
    uint8_t *out = malloc(cap);
    uint64_t in_bytes = 0, out_bytes = 0;
    double t0 = tp_mono_s();
    for (size_t i = 0; i <= n; i++) {
        if (i < n) {
            uint8_t tmp[TP_RECORD_MAX_ENCODED];
            size_t len;
            tp_record_encode(&recs[i], tmp, sizeof tmp, &len); /* the wire size, as the gateway server knows it */
            in_bytes += len + 1;
            tp_batcher_add(b, &recs[i], len + 1, NULL, 0);
        } else {
            tp_batcher_flush_all(b);
        }
        tp_batch *x;
        while (tp_batcher_next_ready(b, &x) == TP_OK) {
            tp_pack_writer_reset(w);
            for (uint32_t j = 0; j < x->count; j++)
                tp_pack_writer_add(w, &x->records[j]);
            size_t len = 0;
            if (tp_pack_writer_bound(w) <= cap && tp_pack_writer_finish(w, out, cap, &len, NULL) == TP_OK)
                out_bytes += len;
            tp_batcher_release(b, x);
        }
    }
    double dt = tp_mono_s() - t0;
    *ratio = out_bytes ? (double)in_bytes / (double)out_bytes : 0;
    *secs = dt;
    free(out);
    tp_pack_writer_free(w);
    tp_batcher_free(b);
    return dt > 0 ? (double)n / dt : 0;
}

/* The whole worker against the mock cluster. Returns wall seconds from first send to last ack. */
static double full_worker(const tp_record *recs, size_t n, uint32_t batch, int level, int linger_ms, int gateways,
                          double *cpu, uint64_t *packs)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof err);
    rd_kafka_t *holder = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(holder, 1);
    rd_kafka_mock_topic_create(mc, "bench", 4, 1);
    tp_ingest_opts o;
    tp_ingest_opts_init(&o);
    o.brokers = rd_kafka_mock_cluster_bootstraps(mc);
    o.topic = "bench";
    o.listen = "127.0.0.1:0";
    o.batch.max_records = batch;
    o.batch.linger_ms = linger_ms;
    o.level = level;
    const char *kconf[] = {"log_level=2", "linger.ms=5"};
    o.kafka_conf = kconf;
    o.nkafka_conf = 2;
    tp_ingest *ing;
    double wall = -1;
    if (tp_ingest_new(&o, &ing, err, sizeof err) == TP_OK && tp_ingest_start(ing) == TP_OK) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", tp_ingest_port(ing));
        tp_gateway_client *gw[16];
        for (int i = 0; i < gateways; i++) {
            tp_gateway_client_opts co;
            tp_gateway_client_opts_init(&co);
            co.connect = addr;
            tp_gateway_client_new(&co, &gw[i]);
        }
        double c0 = cpu_s(), t0 = tp_mono_s();
        for (size_t i = 0; i < n; i++)
            tp_gateway_client_send(gw[recs[i].vehicle_id % (uint64_t)gateways], &recs[i]);
        for (int i = 0; i < gateways; i++)
            tp_gateway_client_drain(gw[i], 60000);
        wall = tp_mono_s() - t0;
        *cpu = cpu_s() - c0;
        for (int i = 0; i < gateways; i++)
            tp_gateway_client_free(gw[i]);
        tp_ingest_stop(ing, 10000);
        tp_ingest_stats st;
        tp_ingest_stats_get(ing, &st);
        *packs = st.packs_out;
        tp_ingest_free(ing);
    } else {
        fprintf(stderr, "bench_ingest: %s\n", err);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(holder);
    return wall;
}

int main(void)
{
    size_t n;
    tp_record *recs = make_records(200, 1000, &n); /* 200k records, 1000 per vehicle: every batch size fills */
    if (!recs)
        return 1;
    printf("{\n  \"benchmark\": \"ingest\",\n  \"records\": %zu,\n  \"hot_path_one_core\": [\n", n);
    const uint32_t batches[] = {50, 200, 1000};
    const int levels[] = {1, 3, 6};
    int first = 1;
    for (size_t bi = 0; bi < 3; bi++)
        for (size_t li = 0; li < 3; li++) {
            double ratio, secs;
            double rps = hot_path(recs, n, batches[bi], levels[li], &ratio, &secs);
            printf("%s    {\"batch_records\": %u, \"level\": %d, \"records_per_s\": %.0f, \"ratio\": %.2f}",
                   first ? "" : ",\n", batches[bi], levels[li], rps, ratio);
            first = 0;
        }
    printf("\n  ],\n");
    double ratio, secs;
    hot_path(recs, 2000, 200, 3, &ratio, &secs);
    printf("  \"hot_path_2000_records_ms\": %.3f,\n", secs * 1e3);
    double cpu = 0;
    uint64_t packs = 0;
    double wall = full_worker(recs, n, 200, 3, 50, 4, &cpu, &packs);
    printf("  \"worker_mock_cluster\": {\"records\": %zu, \"gateways\": 4, \"batch_records\": 200, \"level\": 3, "
           "\"linger_ms\": 50, "
           "\"wall_s\": %.3f, \"records_per_s\": %.0f, \"cpu_s\": %.3f, \"records_per_cpu_s\": %.0f, \"packs\": %" PRIu64
           "},\n",
           n, wall, wall > 0 ? (double)n / wall : 0, cpu, cpu > 0 ? (double)n / cpu : 0, packs);
    wall = full_worker(recs, 2000, 200, 3, 0, 1, &cpu, &packs);
    printf("  \"worker_2000_records_to_ack_ms\": %.3f\n}\n", wall * 1e3);
    free(recs);
    return 0;
}
