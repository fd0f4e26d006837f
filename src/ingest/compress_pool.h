/* Compression workers of the ingest worker: N threads, each owning one reusable tp_pack_writer, turn batches into
 * packs (one zstd frame per batch) so compression never runs on the network thread. */
#ifndef TELEPACK_COMPRESS_POOL_H
#define TELEPACK_COMPRESS_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/batcher.h"
#include "telepack/error.h"
#include "telepack/pack.h"

/* Called on a worker thread for every submitted batch, in no particular order across workers. On success err is
 * TP_OK and the callee owns `pack` (malloc'd, len bytes; hand it to librdkafka with RD_KAFKA_MSG_F_FREE or free it);
 * on failure pack is NULL. The batch is handed back to the callee as well. May block (backpressure). */
typedef void (*tp_compress_done_fn)(void *ctx, tp_batch *batch, uint8_t *pack, size_t len, const tp_pack_meta *meta,
                                    tp_err err);

typedef struct tp_compress_pool_opts {
    int threads;                /* workers (default: online CPUs) */
    tp_pack_writer_opts writer; /* codec, level, max pack size */
} tp_compress_pool_opts;

void tp_compress_pool_opts_init(tp_compress_pool_opts *o);

typedef struct tp_compress_pool tp_compress_pool;

/* Starts opts->threads worker threads. */
tp_err tp_compress_pool_new(const tp_compress_pool_opts *opts, tp_compress_done_fn done, void *ctx,
                            tp_compress_pool **out);

/* Queues a batch (the pool takes it until `done`). Batches of one vehicle are compressed and handed to `done` in
 * the order submitted (one worker per vehicle). Never blocks; the queues are bounded by the batcher's memory cap.
 * Thread-safe. */
void tp_compress_pool_submit(tp_compress_pool *p, tp_batch *batch);

/* Batches queued or being compressed. Thread-safe. */
size_t tp_compress_pool_pending(tp_compress_pool *p);

/* Finishes every queued batch, then stops and joins the workers. */
void tp_compress_pool_free(tp_compress_pool *p);

#endif
