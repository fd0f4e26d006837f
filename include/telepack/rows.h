/* Column batches: decoded records as a struct of arrays, the unit a warehouse loads. */
#ifndef TELEPACK_ROWS_H
#define TELEPACK_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "telepack/api.h"
#include "telepack/error.h"
#include "telepack/record.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A batch of rows as columns. Every array has `capacity` slots, the first `count` are valid. Besides the record's
 * fields each row carries where it came from in Kafka (partition, offset of the pack's message), which lets a
 * warehouse make loads idempotent. Owned by whoever created it with tp_row_batch_new; not thread-safe. */
typedef struct tp_row_batch {
    size_t count;
    size_t capacity;
    uint64_t *vehicle_id;
    int64_t *sampled_at_ms;
    uint64_t *seq;
    double *latitude;
    double *longitude;
    float *speed_kmh;
    float *heading_deg;
    float *accuracy_m;
    int32_t *meter_status;
    int32_t *kafka_partition; /* -1 when the rows did not come from Kafka */
    int64_t *kafka_offset;    /* offset of the Kafka message (pack) holding the row; -1 when not from Kafka */
} tp_row_batch;

/* Allocates a batch able to hold `capacity` rows (capacity > 0). */
TP_API tp_err tp_row_batch_new(size_t capacity, tp_row_batch **out);
/* Frees the batch and its columns. NULL is a no-op. */
TP_API void tp_row_batch_free(tp_row_batch *b);
/* Empties the batch (count = 0), keeping its memory. */
TP_API void tp_row_batch_clear(tp_row_batch *b);
/* Grows capacity to at least `capacity` rows, keeping the rows present. */
TP_API tp_err tp_row_batch_reserve(tp_row_batch *b, size_t capacity);
/* Appends one row; TP_ERR_FULL when count == capacity (the batch never grows by itself: callers bound memory). */
TP_API tp_err tp_row_batch_append(tp_row_batch *b, const tp_record *r, int32_t partition, int64_t offset);
/* Copies row i into *out (i < count). */
TP_API void tp_row_batch_get(const tp_row_batch *b, size_t i, tp_record *out);

#ifdef __cplusplus
}
#endif
#endif
