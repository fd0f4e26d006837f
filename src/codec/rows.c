/* Row batches: decoded records as columns (include/telepack/rows.h). One allocation per column. */
#include <stdlib.h>

#include "telepack/rows.h"

/* Resizes one column to n elements of `size` bytes; leaves *col untouched on failure. */
static int grow(void **col, size_t n, size_t size)
{
    void *p = realloc(*col, n * size);
    if (!p)
        return -1;
    *col = p;
    return 0;
}

static tp_err resize(tp_row_batch *b, size_t n)
{
    if (n > SIZE_MAX / sizeof(uint64_t))
        return TP_ERR_NOMEM;
    /* A failure part way leaves some columns larger than capacity: harmless, capacity only says what all have. */
    if (grow((void **)&b->vehicle_id, n, sizeof *b->vehicle_id) ||
        grow((void **)&b->sampled_at_ms, n, sizeof *b->sampled_at_ms) ||
        grow((void **)&b->seq, n, sizeof *b->seq) ||
        grow((void **)&b->latitude, n, sizeof *b->latitude) ||
        grow((void **)&b->longitude, n, sizeof *b->longitude) ||
        grow((void **)&b->speed_kmh, n, sizeof *b->speed_kmh) ||
        grow((void **)&b->heading_deg, n, sizeof *b->heading_deg) ||
        grow((void **)&b->accuracy_m, n, sizeof *b->accuracy_m) ||
        grow((void **)&b->meter_status, n, sizeof *b->meter_status) ||
        grow((void **)&b->kafka_partition, n, sizeof *b->kafka_partition) ||
        grow((void **)&b->kafka_offset, n, sizeof *b->kafka_offset))
        return TP_ERR_NOMEM;
    b->capacity = n;
    return TP_OK;
}

tp_err tp_row_batch_new(size_t capacity, tp_row_batch **out)
{
    if (!out || capacity == 0)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_row_batch *b = calloc(1, sizeof *b);
    if (!b)
        return TP_ERR_NOMEM;
    tp_err e = resize(b, capacity);
    if (e) {
        tp_row_batch_free(b);
        return e;
    }
    *out = b;
    return TP_OK;
}

void tp_row_batch_free(tp_row_batch *b)
{
    if (!b)
        return;
    free(b->vehicle_id);
    free(b->sampled_at_ms);
    free(b->seq);
    free(b->latitude);
    free(b->longitude);
    free(b->speed_kmh);
    free(b->heading_deg);
    free(b->accuracy_m);
    free(b->meter_status);
    free(b->kafka_partition);
    free(b->kafka_offset);
    free(b);
}

void tp_row_batch_clear(tp_row_batch *b)
{
    if (b)
        b->count = 0;
}

tp_err tp_row_batch_reserve(tp_row_batch *b, size_t capacity)
{
    if (!b)
        return TP_ERR_INVALID_ARG;
    if (capacity <= b->capacity)
        return TP_OK;
    return resize(b, capacity);
}

tp_err tp_row_batch_append(tp_row_batch *b, const tp_record *r, int32_t partition, int64_t offset)
{
    if (!b || !r)
        return TP_ERR_INVALID_ARG;
    if (b->count >= b->capacity)
        return TP_ERR_FULL;
    size_t i = b->count++;
    b->vehicle_id[i] = r->vehicle_id;
    b->sampled_at_ms[i] = r->sampled_at_ms;
    b->seq[i] = r->seq;
    b->latitude[i] = r->latitude;
    b->longitude[i] = r->longitude;
    b->speed_kmh[i] = r->speed_kmh;
    b->heading_deg[i] = r->heading_deg;
    b->accuracy_m[i] = r->accuracy_m;
    b->meter_status[i] = r->meter_status;
    b->kafka_partition[i] = partition;
    b->kafka_offset[i] = offset;
    return TP_OK;
}

void tp_row_batch_get(const tp_row_batch *b, size_t i, tp_record *out)
{
    out->vehicle_id = b->vehicle_id[i];
    out->sampled_at_ms = b->sampled_at_ms[i];
    out->seq = b->seq[i];
    out->latitude = b->latitude[i];
    out->longitude = b->longitude[i];
    out->speed_kmh = b->speed_kmh[i];
    out->heading_deg = b->heading_deg[i];
    out->accuracy_m = b->accuracy_m[i];
    out->meter_status = b->meter_status[i];
}
