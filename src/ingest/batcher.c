/* Per-vehicle batcher: an open-addressing hash map (linear probing, backward-shift deletion) from vehicle id to its
 * open batch, a list of open batches in age order for linger, a FIFO of ready batches, and a pool of released
 * batches whose arrays are reused, so appending a record never allocates once the pool is warm. */
#include "ingest/batcher.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 1024u
#define INITIAL_RECORDS 16u

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
    uint64_t flushed, by_records, by_bytes, by_linger, by_all;
};

void tp_batcher_opts_init(tp_batcher_opts *o)
{
    o->max_records = 200;
    o->max_bytes = 256u * 1024u;
    o->linger_ms = 1000;
    o->max_buffered_bytes = 256u * 1024u * 1024u;
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
    if (o.max_records == 0 || o.max_bytes == 0 || o.linger_ms < 0 || o.max_buffered_bytes == 0)
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

static tp_batch *batch_get(tp_batcher *b)
{
    tp_batch *x = b->pool;
    if (x) {
        b->pool = x->next;
        x->next = NULL;
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
    return x;
}

static tp_err batch_reserve(tp_batch *x, uint32_t max_records)
{
    if (x->count < x->cap && x->ntags < x->tags_cap)
        return TP_OK;
    uint32_t n = x->cap * 2;
    if (n > max_records)
        n = max_records;
    if (n < x->count + 1)
        n = x->count + 1;
    if (x->cap < n) {
        tp_record *r = realloc(x->records, (size_t)n * sizeof *r);
        if (!r)
            return TP_ERR_NOMEM;
        x->records = r;
        x->cap = n;
    }
    if (x->tags_cap < n) {
        tp_batch_tag *t = realloc(x->tags, (size_t)n * sizeof *t);
        if (!t)
            return TP_ERR_NOMEM;
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
    if ((b->nopen + 1) * 2 > b->nslots && map_grow(b) != TP_OK)
        return TP_ERR_NOMEM;
    size_t i = map_find(b, key);
    tp_batch *x = b->slots[i];
    if (x && x->count > 0 && x->bytes + wire_len > b->o.max_bytes) {
        to_ready(b, x); /* the record would overflow the batch: flush it and open a new one */
        b->by_bytes++;
        x = NULL;
        i = map_find(b, key);
    }
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
    if (batch_reserve(x, b->o.max_records) != TP_OK) {
        if (x->count == 0) {
            map_remove(b, x->vehicle_id);
            open_unlink(b, x);
            x->next = b->pool;
            b->pool = x;
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
    x->prev = NULL;
    x->next = b->pool;
    b->pool = x;
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
}
