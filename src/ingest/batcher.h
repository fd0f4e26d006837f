/* Per-vehicle batcher of the ingest worker: one open batch per vehicle, flushed on record count, content bytes or
 * linger time, with a global cap on buffered bytes that answers TP_ERR_AGAIN (backpressure) instead of growing. */
#ifndef TELEPACK_BATCHER_H
#define TELEPACK_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "telepack/error.h"
#include "telepack/record.h"

/* Where a run of records came from, opaque to the batcher: the gateway server uses (connection slot, connection
 * generation, arrival block) and `count` records of that block. Consecutive records of a batch with the same
 * (source, generation, block) share one tag, so a batch holds at most one tag per record and usually far fewer. */
typedef struct tp_batch_tag {
    uint32_t source;
    uint32_t generation;
    uint32_t block;
    uint32_t count;
} tp_batch_tag;

/* One vehicle's batch. The batcher owns it; a batch returned by tp_batcher_next_ready belongs to the caller (the
 * compression pool, then the producer) until it gives it back with tp_batcher_release. Its arrays are reused. */
typedef struct tp_batch {
    uint64_t vehicle_id;     /* the batch's key: its vehicle, or what tp_batcher_add_keyed was given */
    uint32_t count;          /* records[0..count) */
    uint32_t cap;
    tp_record *records;
    size_t bytes;            /* wire bytes of the records (each record's protobuf size plus its varint prefix) */
    tp_batch_tag *tags;      /* tags[0..ntags): where the records came from; their counts add up to count */
    uint32_t ntags;
    uint32_t tags_cap;
    int64_t opened_ms;       /* when the first record arrived (the linger clock) */
    uint32_t attempts;       /* free for the user (the ingest worker: delivery attempts) */
    int32_t result;          /* free for the user (the ingest worker: outcome of the last attempt) */
    size_t pack_bytes;       /* free for the user (the ingest worker: size of the compressed pack) */
    int64_t sent_us;         /* free for the user (the ingest worker: when it was handed to the producer) */
    void *user;              /* free for the user */
    struct tp_batch *prev, *next; /* internal lists: open (by age), ready, pool */
} tp_batch;

typedef struct tp_batcher_opts {
    uint32_t max_records;      /* flush a batch at this many records (default 200) */
    size_t max_bytes;          /* flush a batch before its wire bytes would exceed this (default 256 KiB) */
    int64_t linger_ms;         /* flush a batch this long after its first record (default 1000) */
    size_t max_buffered_bytes; /* cap on wire bytes in batches not yet released (default 256 MiB); the memory of
                                  those batches is capped at TP_BATCHER_MEMORY_FACTOR times it, the pool of
                                  released batches at a quarter of it */
    uint32_t max_open;         /* vehicles with an open batch; a new one beyond it flushes the oldest open batch
                                  first (default 100000) */
} tp_batcher_opts;

/* Memory of unreleased batches (structs, record and tag arrays, malloc headers) allowed per byte of the cap. */
#define TP_BATCHER_MEMORY_FACTOR 4

void tp_batcher_opts_init(tp_batcher_opts *o);

typedef struct tp_batcher tp_batcher;

typedef struct tp_batcher_stats {
    size_t open_batches;       /* vehicles with an open batch */
    size_t buffered_bytes;     /* wire bytes in every batch not yet released (open, ready, or out with the caller) */
    uint64_t buffered_records; /* records in those batches */
    size_t held_memory;        /* memory of the batches not yet released (open, ready, out with the caller) */
    size_t memory;             /* everything the batcher holds: held_memory, the pool, the hash map */
    size_t pooled_batches;     /* released batches kept for reuse */
    size_t pooled_memory;      /* their memory (at most a quarter of max_buffered_bytes) */
    uint64_t batches_flushed;  /* batches moved to the ready list so far, = the sum of the six below */
    uint64_t flushed_records;  /* ... because they reached max_records */
    uint64_t flushed_bytes;    /* ... because of max_bytes */
    uint64_t flushed_linger;   /* ... because their linger time passed */
    uint64_t flushed_all;      /* ... by tp_batcher_flush_all */
    uint64_t flushed_open;     /* ... to make room for a new vehicle at max_open */
    uint64_t flushed_source;   /* ... by tp_batcher_flush_source (a gateway went quiet or is near its window) */
} tp_batcher_stats;

/* Not thread-safe: one thread owns a batcher (in the ingest worker, the network thread). */
tp_err tp_batcher_new(const tp_batcher_opts *opts, tp_batcher **out);
/* Frees the batcher and every batch it still owns; batches out with the caller must have been released first. */
void tp_batcher_free(tp_batcher *b);

/* Appends a copy of *r (wire_len = its encoded size with prefix) to its vehicle's open batch, opening one at now_ms
 * if needed, with `tag` (may be NULL; its count is ignored, 1 is added). A batch that reaches max_records or
 * max_bytes moves to the ready list; opening a batch with max_open batches open first moves the oldest one there.
 * TP_ERR_AGAIN when the buffered bytes would exceed max_buffered_bytes, or the memory of unreleased batches would
 * grow past TP_BATCHER_MEMORY_FACTOR times it (nothing added; release batches and retry); a record is always
 * accepted when nothing is buffered. TP_ERR_NOMEM. */
tp_err tp_batcher_add(tp_batcher *b, const tp_record *r, size_t wire_len, const tp_batch_tag *tag, int64_t now_ms);

/* The same, into the open batch of `key` instead of the record's vehicle: records of several vehicles with one key
 * share a batch (the ingest worker keys by Kafka partition with --pack-by partition). */
tp_err tp_batcher_add_keyed(tp_batcher *b, uint64_t key, const tp_record *r, size_t wire_len,
                            const tp_batch_tag *tag, int64_t now_ms);

/* Moves every open batch whose linger time has passed at now_ms to the ready list. */
void tp_batcher_expire(tp_batcher *b, int64_t now_ms);

/* Says whether another source of a batch is done sending for now (tp_batcher_flush_source). */
typedef int (*tp_batcher_source_done_fn)(void *ctx, uint32_t source, uint32_t generation);

/* Moves the open batches holding records tagged (source, generation) to the ready list now, instead of at linger:
 * with `done` set, only those whose every other source is done too (done(ctx, source, generation) != 0); with
 * NULL, all of them. Returns how many. Costs a walk over the open batches and their tags: for events (a gateway
 * went quiet, its window is half full), not per record. */
size_t tp_batcher_flush_source(tp_batcher *b, uint32_t source, uint32_t generation, tp_batcher_source_done_fn done,
                               void *ctx);

/* Moves every open batch to the ready list (shutdown). */
void tp_batcher_flush_all(tp_batcher *b);

/* Milliseconds from now_ms until the oldest open batch lingers out (0 if already due), or -1 with no open batch. */
int64_t tp_batcher_next_deadline(const tp_batcher *b, int64_t now_ms);

/* Takes the next ready batch, oldest first: TP_OK with *out set, or TP_ERR_END when none is ready. */
tp_err tp_batcher_next_ready(tp_batcher *b, tp_batch **out);

/* Gives a batch taken with tp_batcher_next_ready back: its bytes stop counting against the cap, its arrays are
 * kept for reuse while the pool holds less than a quarter of max_buffered_bytes, else freed. */
void tp_batcher_release(tp_batcher *b, tp_batch *batch);

void tp_batcher_stats_get(const tp_batcher *b, tp_batcher_stats *st);

#endif
