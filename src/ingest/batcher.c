/* Per-vehicle batcher: an open-addressing hash map (linear probing, backward-shift deletion) from vehicle id to its
 * open batch, a list of open batches in age order for linger, a FIFO of ready batches, and a pool of released
 * batches whose arrays are reused, so appending a record never allocates once the pool is warm.
 *
 * Memory: every batch's footprint (struct, arrays, malloc headers) is counted, held (open, ready, out) or pooled.
 * Held memory is capped at TP_BATCHER_MEMORY_FACTOR x max_buffered_bytes (TP_ERR_AGAIN, like the wire-byte cap),
 * the pool at a quarter of max_buffered_bytes (a released batch beyond it is freed), open batches at max_open
 * (the oldest is flushed), so the hash map stays below 4 x max_open slots. */
#include "ingest/batcher.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 1024u
#define INITIAL_RECORDS 4u
#define MALLOC_HEADER 16u /* glibc's per-allocation overhead on 64-bit, counted with each of a batch's 3 blocks */

typedef struct list {
    tp_batch *head, *tail;
} list;

struct tp_batcher {
    tp_batcher_opts o;
    tp_batch **slots;       /* hash map: NULL = empty */
    size_t nslots;          /* power of two */
    size_t nopen;
    list open;              /* by opened_ms, oldest first (doubly linked) */
    list ready;             /* FIFO (singly linked through next) */
    tp_batch *pool;         /* released batches (singly linked through next) */
    size_t buffered_bytes;
    uint64_t buffered_records;
    size_t held_mem;        /* footprint of batches not in the pool */
    size_t pool_mem;        /* footprint of pooled batches */
    size_t npool;
    uint64_t flushed, by_records, by_bytes, by_linger, by_all, by_open, by_source;
};

static size_t footprint(const tp_batch *x)
{
    return sizeof *x + (size_t)x->cap * sizeof *x->records + (size_t)x->tags_cap * sizeof *x->tags +
           3 * MALLOC_HEADER;
}

void tp_batcher_opts_init(tp_batcher_opts *o)
{
    o->max_records = 200;
    o->max_bytes = 256u * 1024u;
    o->linger_ms = 1000;
    o->max_buffered_bytes = 256u * 1024u * 1024u;
    o->max_open = 100000;
}

static size_t hash_id(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    id *= 0xc4ceb9fe1a85ec53ULL;
    id ^= id >> 33;
    return (size_t)id;
}

tp_err tp_batcher_new(const tp_batcher_opts *opts, tp_batcher **out)
{
    if (!out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_batcher_opts o;
    if (opts)
        o = *opts;
    else
        tp_batcher_opts_init(&o);
    if (o.max_records == 0 || o.max_bytes == 0 || o.linger_ms < 0 || o.max_buffered_bytes == 0 || o.max_open == 0)
        return TP_ERR_INVALID_ARG;
    tp_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return TP_ERR_NOMEM;
    b->o = o;
    b->nslots = INITIAL_SLOTS;
    b->slots = calloc(b->nslots, sizeof *b->slots);
    if (!b->slots) {
        free(b);
        return TP_ERR_NOMEM;
    }
    *out = b;
    return TP_OK;
}

static void batch_destroy(tp_batch *x)
{
    free(x->records);
    free(x->tags);
    free(x);
}

void tp_batcher_free(tp_batcher *b)
{
    if (!b)
        return;
    for (tp_batch *x = b->open.head, *n; x; x = n) {
        n = x->next;
        batch_destroy(x);
    }
    for (tp_batch *x = b->ready.head, *n; x; x = n) {
        n = x->next;
        batch_destroy(x);
    }
    for (tp_batch *x = b->pool, *n; x; x = n) {
        n = x->next;
        batch_destroy(x);
    }
    free(b->slots);
    free(b);
}

/* Index of id's slot, or of the empty slot where it would go. */
static size_t map_find(const tp_batcher *b, uint64_t id)
{
    size_t mask = b->nslots - 1, i = hash_id(id) & mask;
    while (b->slots[i] && b->slots[i]->vehicle_id != id)
        i = (i + 1) & mask;
    return i;
}

static tp_err map_grow(tp_batcher *b)
{
    size_t n = b->nslots * 2;
    tp_batch **s = calloc(n, sizeof *s);
    if (!s)
        return TP_ERR_NOMEM;
    for (size_t i = 0; i < b->nslots; i++) {
        tp_batch *x = b->slots[i];
        if (!x)
            continue;
        size_t j = hash_id(x->vehicle_id) & (n - 1);
        while (s[j])
            j = (j + 1) & (n - 1);
        s[j] = x;
    }
    free(b->slots);
    b->slots = s;
    b->nslots = n;
    return TP_OK;
}

/* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
static void map_remove(tp_batcher *b, uint64_t id)
{
    size_t mask = b->nslots - 1, i = map_find(b, id);
    if (!b->slots[i])
        return;
    b->slots[i] = NULL;
    for (size_t j = (i + 1) & mask; b->slots[j]; j = (j + 1) & mask) {
        size_t home = hash_id(b->slots[j]->vehicle_id) & mask;
        /* Move slots[j] into the hole at i unless its home lies cyclically in (i, j]. */
        int in_between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_between) {
            b->slots[i] = b->slots[j];
            b->slots[j] = NULL;
            i = j;
        }
    }
    b->nopen--;
}

static void open_unlink(tp_batcher *b, tp_batch *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        b->open.head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        b->open.tail = x->prev;
    x->prev = x->next = NULL;
}

static void to_ready(tp_batcher *b, tp_batch *x)
{
    map_remove(b, x->vehicle_id);
    open_unlink(b, x);
    if (b->ready.tail)
        b->ready.tail->next = x;
    else
        b->ready.head = x;
    b->ready.tail = x;
    b->flushed++;
}

static void pool_put(tp_batcher *b, tp_batch *x)
{
    size_t fp = footprint(x);
    b->held_mem -= fp;
    if (b->pool_mem + fp > b->o.max_buffered_bytes / 4) {
        batch_destroy(x); /* give memory back: the pool keeps at most a quarter of the cap */
        return;
    }
    x->prev = NULL;
    x->next = b->pool;
    b->pool = x;
    b->pool_mem += fp;
    b->npool++;
}

/* Footprint of the batch batch_get would hand out. */
static size_t next_footprint(const tp_batcher *b)
{
    if (b->pool)
        return footprint(b->pool);
    uint32_t n = b->o.max_records < INITIAL_RECORDS ? b->o.max_records : INITIAL_RECORDS;
    return sizeof(tp_batch) + (size_t)n * (sizeof(tp_record) + sizeof(tp_batch_tag)) + 3 * MALLOC_HEADER;
}

static tp_batch *batch_get(tp_batcher *b)
{
    tp_batch *x = b->pool;
    if (x) {
        b->pool = x->next;
        x->next = NULL;
        size_t fp = footprint(x);
        b->pool_mem -= fp;
        b->npool--;
        b->held_mem += fp;
        return x;
    }
    x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->cap = b->o.max_records < INITIAL_RECORDS ? b->o.max_records : INITIAL_RECORDS;
    x->records = malloc(x->cap * sizeof *x->records);
    x->tags_cap = x->cap;
    x->tags = malloc(x->tags_cap * sizeof *x->tags);
    if (!x->records || !x->tags) {
        batch_destroy(x);
        return NULL;
    }
    b->held_mem += footprint(x);
    return x;
}

/* The capacity batch_reserve grows x's arrays to, or 0 when they have room. */
static uint32_t grow_to(const tp_batch *x, uint32_t max_records)
{
    if (x->count < x->cap && x->ntags < x->tags_cap)
        return 0;
    uint32_t n = x->cap * 2;
    if (n > max_records)
        n = max_records;
    if (n < x->count + 1)
        n = x->count + 1;
    return n;
}

static size_t grow_cost(const tp_batch *x, uint32_t n)
{
    size_t c = 0;
    if (x->cap < n)
        c += (size_t)(n - x->cap) * sizeof *x->records;
    if (x->tags_cap < n)
        c += (size_t)(n - x->tags_cap) * sizeof *x->tags;
    return c;
}

static tp_err batch_reserve(tp_batcher *b, tp_batch *x)
{
    uint32_t n = grow_to(x, b->o.max_records);
    if (!n)
        return TP_OK;
    if (x->cap < n) {
        tp_record *r = realloc(x->records, (size_t)n * sizeof *r);
        if (!r)
            return TP_ERR_NOMEM;
        b->held_mem += (size_t)(n - x->cap) * sizeof *r;
        x->records = r;
        x->cap = n;
    }
    if (x->tags_cap < n) {
        tp_batch_tag *t = realloc(x->tags, (size_t)n * sizeof *t);
        if (!t)
            return TP_ERR_NOMEM;
        b->held_mem += (size_t)(n - x->tags_cap) * sizeof *t;
        x->tags = t;
        x->tags_cap = n;
    }
    return TP_OK;
}

tp_err tp_batcher_add(tp_batcher *b, const tp_record *r, size_t wire_len, const tp_batch_tag *tag, int64_t now_ms)
{
    return r ? tp_batcher_add_keyed(b, r->vehicle_id, r, wire_len, tag, now_ms) : TP_ERR_INVALID_ARG;
}

tp_err tp_batcher_add_keyed(tp_batcher *b, uint64_t key, const tp_record *r, size_t wire_len,
                            const tp_batch_tag *tag, int64_t now_ms)
{
    if (!b || !r)
        return TP_ERR_INVALID_ARG;
    if (b->buffered_bytes > 0 && b->buffered_bytes + wire_len > b->o.max_buffered_bytes)
        return TP_ERR_AGAIN;
    size_t i = map_find(b, key);
    tp_batch *x = b->slots[i];
    int split = x && x->count > 0 && x->bytes + wire_len > b->o.max_bytes;
    /* The memory this record adds to the held batches: a batch to open, or arrays to grow. */
    size_t cost = (!x || split) ? next_footprint(b) : grow_cost(x, grow_to(x, b->o.max_records));
    if (cost > 0 && b->held_mem > 0 &&
        b->held_mem + cost > (size_t)TP_BATCHER_MEMORY_FACTOR * b->o.max_buffered_bytes)
        return TP_ERR_AGAIN;
    if (split) {
        to_ready(b, x); /* the record would overflow the batch: flush it and open a new one */
        b->by_bytes++;
        x = NULL;
    }
    if (!x && b->nopen >= b->o.max_open) {
        to_ready(b, b->open.head); /* too many vehicles open: the oldest batch goes now */
        b->by_open++;
    }
    if (!x && (b->nopen + 1) * 2 > b->nslots && map_grow(b) != TP_OK)
        return TP_ERR_NOMEM;
    if (!x)
        i = map_find(b, key);
    if (!x) {
        x = batch_get(b);
        if (!x)
            return TP_ERR_NOMEM;
        x->vehicle_id = key;
        x->count = 0;
        x->bytes = 0;
        x->ntags = 0;
        x->attempts = 0;
        x->result = 0;
        x->user = NULL;
        x->opened_ms = now_ms;
        x->prev = b->open.tail;
        x->next = NULL;
        if (b->open.tail)
            b->open.tail->next = x;
        else
            b->open.head = x;
        b->open.tail = x;
        b->slots[i] = x;
        b->nopen++;
    }
    if (batch_reserve(b, x) != TP_OK) {
        if (x->count == 0) {
            map_remove(b, x->vehicle_id);
            open_unlink(b, x);
            pool_put(b, x);
        }
        return TP_ERR_NOMEM;
    }
    x->records[x->count++] = *r;
    x->bytes += wire_len;
    tp_batch_tag *last = x->ntags ? &x->tags[x->ntags - 1] : NULL;
    if (tag && last && last->source == tag->source && last->generation == tag->generation &&
        last->block == tag->block) {
        last->count++;
    } else {
        tp_batch_tag t = tag ? *tag : (tp_batch_tag){0};
        t.count = 1;
        x->tags[x->ntags++] = t;
    }
    b->buffered_bytes += wire_len;
    b->buffered_records++;
    if (x->count >= b->o.max_records) {
        to_ready(b, x);
        b->by_records++;
    } else if (x->bytes >= b->o.max_bytes) {
        to_ready(b, x);
        b->by_bytes++;
    }
    return TP_OK;
}

void tp_batcher_expire(tp_batcher *b, int64_t now_ms)
{
    while (b->open.head && now_ms - b->open.head->opened_ms >= b->o.linger_ms) {
        to_ready(b, b->open.head);
        b->by_linger++;
    }
}

size_t tp_batcher_flush_source(tp_batcher *b, uint32_t source, uint32_t generation, tp_batcher_source_done_fn done,
                               void *ctx)
{
    size_t n = 0;
    for (tp_batch *x = b->open.head, *next; x; x = next) {
        next = x->next;
        int mine = 0, busy = 0; /* busy: another source still sending */
        for (uint32_t i = 0; i < x->ntags && !mine; i++)
            mine = x->tags[i].source == source && x->tags[i].generation == generation;
        for (uint32_t i = 0; mine && done && i < x->ntags && !busy; i++) {
            const tp_batch_tag *t = &x->tags[i];
            if ((t->source != source || t->generation != generation) &&
                (i == 0 || t->source != t[-1].source || t->generation != t[-1].generation))
                busy = !done(ctx, t->source, t->generation);
        }
        if (mine && !busy) {
            to_ready(b, x);
            b->by_source++;
            n++;
        }
    }
    return n;
}

void tp_batcher_flush_all(tp_batcher *b)
{
    while (b->open.head) {
        to_ready(b, b->open.head);
        b->by_all++;
    }
}

int64_t tp_batcher_next_deadline(const tp_batcher *b, int64_t now_ms)
{
    if (!b->open.head)
        return -1;
    int64_t left = b->open.head->opened_ms + b->o.linger_ms - now_ms;
    return left < 0 ? 0 : left;
}

tp_err tp_batcher_next_ready(tp_batcher *b, tp_batch **out)
{
    tp_batch *x = b->ready.head;
    if (!x)
        return TP_ERR_END;
    b->ready.head = x->next;
    if (!b->ready.head)
        b->ready.tail = NULL;
    x->next = NULL;
    *out = x;
    return TP_OK;
}

void tp_batcher_release(tp_batcher *b, tp_batch *x)
{
    if (!x)
        return;
    b->buffered_bytes -= x->bytes;
    b->buffered_records -= x->count;
    x->count = 0;
    x->bytes = 0;
    x->ntags = 0;
    pool_put(b, x);
}

void tp_batcher_stats_get(const tp_batcher *b, tp_batcher_stats *st)
{
    st->open_batches = b->nopen;
    st->buffered_bytes = b->buffered_bytes;
    st->buffered_records = b->buffered_records;
    st->batches_flushed = b->flushed;
    st->flushed_records = b->by_records;
    st->flushed_bytes = b->by_bytes;
    st->flushed_linger = b->by_linger;
    st->flushed_all = b->by_all;
    st->flushed_open = b->by_open;
    st->flushed_source = b->by_source;
    st->held_memory = b->held_mem;
    st->memory = b->held_mem + b->pool_mem + b->nslots * sizeof *b->slots;
    st->pooled_batches = b->npool;
    st->pooled_memory = b->pool_mem;
}
