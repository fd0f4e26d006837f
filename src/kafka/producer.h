/* Kafka producer of the ingest worker: librdkafka, idempotent (acks=all), one message per pack (key = vehicle id
 * in decimal, headers = pack metadata), payload handed over without copying; delivery reports drive the acks. */
#ifndef TELEPACK_PRODUCER_H
#define TELEPACK_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "telepack/error.h"
#include "telepack/pack.h"

/* One delivery report, on the producer's poll thread (or on the sending thread while it waits for queue room):
 * err TP_OK = the pack is durably in Kafka (acks=all). Otherwise `retriable` says whether sending the same pack
 * again may succeed (timeouts, transport errors) and `detail` is a sentence with librdkafka's error and the message's
 * persistence status (rd_kafka_message_status). */
typedef void (*tp_producer_dr_fn)(void *ctx, void *opaque, tp_err err, int retriable, const char *detail);

typedef struct tp_producer_opts {
    const char *brokers;          /* bootstrap.servers (may be NULL when kafka_conf sets it, e.g. a mock cluster) */
    const char *topic;
    const char *const *kafka_conf; /* "key=value" librdkafka properties, applied after the defaults (-X) */
    size_t nkafka_conf;
    void (*on_fatal)(void *ctx);  /* optional: called (with the dr ctx) once librdkafka raised a fatal error */
    /* optional: each librdkafka statistics JSON document (not NUL-terminated; valid during the call), on the poll
     * thread, with the dr ctx. With it, statistics.interval.ms defaults to stats_interval_ms (a -X value wins). */
    void (*on_stats)(void *ctx, const char *json, size_t len);
    int stats_interval_ms;        /* > 0; 5000 when 0 */
    int compact_headers;          /* 1: the one compact header "tp" (docs/FORMAT.md section 5) where it can say the
                                   * metadata (codec zstd), else the full set; 0: always the full set */
} tp_producer_opts;

typedef struct tp_producer tp_producer;

/* Creates the librdkafka producer with enable.idempotence=true, acks=all, compression.codec=none (then the -X
 * properties) and starts one thread that serves delivery reports. Errors: TP_ERR_INVALID_ARG (no topic, a
 * malformed or unknown -X property), TP_ERR_KAFKA; errbuf receives a sentence. */
tp_err tp_producer_new(const tp_producer_opts *opts, tp_producer_dr_fn dr, void *ctx, tp_producer **out,
                       char *errbuf, size_t errlen);

/* Produces one pack. partition < 0: key = vehicle_id in decimal, partition chosen by librdkafka's partitioner (a
 * one-vehicle pack). partition >= 0: to that partition, with no key (a pack of several vehicles, format version 3).
 * On TP_OK librdkafka owns `pack` (malloc'd, freed by librdkafka after delivery) and `dr` is called exactly once
 * with `opaque`. Blocks while librdkafka's queue is full. On error the caller still owns pack: TP_ERR_KAFKA (fatal
 * error raised or the message was refused; errbuf says why). Thread-safe. */
tp_err tp_producer_send(tp_producer *p, uint64_t vehicle_id, int32_t partition, uint8_t *pack, size_t len,
                        const tp_pack_meta *meta, void *opaque, char *errbuf, size_t errlen);

/* The topic's partition count from the cluster's metadata (waits up to timeout_ms). TP_ERR_KAFKA with a sentence
 * when the metadata cannot be had or the topic does not exist (or has no partitions). */
tp_err tp_producer_partition_count(tp_producer *p, int timeout_ms, int32_t *count, char *errbuf, size_t errlen);

/* The partition a one-vehicle pack of vehicle_id would go to (key = the id in decimal) with librdkafka's partitioner
 * as configured (-X partitioner): murmur2 for murmur2 / murmur2_random (Java's default), FNV-1a for fnv1a /
 * fnv1a_random, else CRC32 (librdkafka's default consistent_random; also for random, which has no fixed answer).
 * So a vehicle stays on one partition whichever way its records are packed. Thread-safe. */
int32_t tp_producer_vehicle_partition(const tp_producer *p, uint64_t vehicle_id, int32_t partition_count);
/* The same for any key text (a run-time schema's key, kafka key = that text). Thread-safe. */
int32_t tp_producer_key_partition(const tp_producer *p, const char *key, size_t key_len, int32_t partition_count);

/* Produces one pack with the given key bytes (a string key such as a VIN) and headers (taken over on TP_OK, left
 * to the caller on error), for packs of a run-time schema (kafka/schema_headers.h). Otherwise as tp_producer_send. */
tp_err tp_producer_send_keyed(tp_producer *p, const char *key, size_t key_len, uint8_t *pack, size_t len,
                              rd_kafka_headers_t *hdrs, void *opaque, char *errbuf, size_t errlen);
/* The same to an explicit partition (>= 0; key NULL: no key, for a pack of several keys), or RD_KAFKA_PARTITION_UA
 * (-1) for the partitioner's choice. */
tp_err tp_producer_send_keyed_to(tp_producer *p, const char *key, size_t key_len, int32_t partition, uint8_t *pack,
                                 size_t len, rd_kafka_headers_t *hdrs, void *opaque, char *errbuf, size_t errlen);

/* Non-zero once librdkafka raised a fatal error; buf receives the reason. Thread-safe. */
int tp_producer_fatal(tp_producer *p, char *buf, size_t len);

/* Messages queued or in flight in librdkafka. Thread-safe. */
int tp_producer_in_flight(tp_producer *p);

/* Waits up to timeout_ms for every message's delivery report: TP_OK, or TP_ERR_AGAIN on timeout. */
tp_err tp_producer_flush(tp_producer *p, int timeout_ms);

/* Fails every message still queued or in flight (their reports say so, never delivered). For shutdown on timeout. */
void tp_producer_purge(tp_producer *p);

/* Stops the poll thread and destroys the producer (call flush or purge first: remaining reports are served here). */
void tp_producer_free(tp_producer *p);

/* The librdkafka handle, e.g. to reach its mock cluster. */
rd_kafka_t *tp_producer_handle(tp_producer *p);

#endif
