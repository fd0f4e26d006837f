/* Test helper: produces a synthetic fleet's packs (with their metadata headers, key = vehicle id) to a Kafka topic,
 * for the sink's integration tests. Usage: sink_produce BROKERS TOPIC VEHICLES RECORDS_PER_VEHICLE RECORDS_PER_PACK
 * Record i of vehicle v is fully determined by (v, i), so a checker can recompute every row. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/pack_headers.h"
#include "telepack/pack.h"

static void record_of(uint64_t v, uint64_t i, tp_record *r)
{
    memset(r, 0, sizeof *r);
    r->vehicle_id = 5000 + v;
    r->sampled_at_ms = INT64_C(1795000000000) + (int64_t)(i * 1000 + v);
    r->seq = i + 1;
    r->latitude = 22.3 + (double)v / 3.0e3 + (double)i / 7.0e5;
    r->longitude = 114.1 + (double)i / 3.0e5;
    r->speed_kmh = (float)(i % 120) / 3.0f;
    r->heading_deg = (float)((v * 37 + i) % 360);
    r->accuracy_m = 1.0f / (float)(1 + i % 7);
    r->meter_status = (int32_t)((v + i) % 5);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: sink_produce BROKERS TOPIC VEHICLES RECORDS_PER_VEHICLE RECORDS_PER_PACK\n");
        return 2;
    }
    uint64_t vehicles = strtoull(argv[3], NULL, 10), per = strtoull(argv[4], NULL, 10);
    uint64_t per_pack = strtoull(argv[5], NULL, 10);
    if (!vehicles || !per || !per_pack) {
        fprintf(stderr, "sink_produce: counts must be positive\n");
        return 2;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof errstr)) {
        fprintf(stderr, "sink_produce: %s\n", errstr);
        return 1;
    }
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!p) {
        fprintf(stderr, "sink_produce: %s\n", errstr);
        return 1;
    }
    tp_pack_writer *w = NULL;
    if (tp_pack_writer_new(NULL, &w))
        return 1;
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t packs = 0;
    for (uint64_t i = 0; i < per; i += per_pack)
        for (uint64_t v = 0; v < vehicles; v++) {
            for (uint64_t j = i; j < i + per_pack && j < per; j++) {
                tp_record r;
                record_of(v, j, &r);
                if (tp_pack_writer_add(w, &r))
                    return 1;
            }
            size_t need = tp_pack_writer_bound(w), len = 0;
            if (need > cap) {
                free(buf);
                cap = need * 2;
                if (!(buf = malloc(cap)))
                    return 1;
            }
            tp_pack_meta meta;
            if (tp_pack_writer_finish(w, buf, cap, &len, &meta))
                return 1;
            rd_kafka_headers_t *h = rd_kafka_headers_new(8);
            if (tp_pack_meta_to_headers(&meta, h))
                return 1;
            char key[32];
            snprintf(key, sizeof key, "%" PRIu64, 5000 + v);
            rd_kafka_resp_err_t e;
            while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_KEY(key, strlen(key)),
                                          RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                          RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(p, 50);
            if (e) {
                fprintf(stderr, "sink_produce: %s\n", rd_kafka_err2str(e));
                return 1;
            }
            rd_kafka_poll(p, 0);
            packs++;
        }
    if (rd_kafka_flush(p, 60000)) {
        fprintf(stderr, "sink_produce: flush timed out\n");
        return 1;
    }
    fprintf(stderr, "sink_produce: %" PRIu64 " packs, %" PRIu64 " records to %s\n", packs, vehicles * per, argv[2]);
    free(buf);
    tp_pack_writer_free(w);
    rd_kafka_destroy(p);
    return 0;
}
