/* The null warehouse (`null:`): accepts every load and discards its rows, keeping only the offsets in memory, so
 * a sink can be measured without a warehouse (decode only) or tried out dry. Nothing survives the process. */
#include <stdlib.h>
#include <string.h>

#include "warehouse/warehouse_impl.h"

/* The position of one (topic, partition), as the last load left it. A sink reads one topic with a handful of
 * partitions: a small array searched linearly is all it takes. */
typedef struct null_offset {
    char *topic;
    int32_t partition;
    int64_t next_offset;
} null_offset;

typedef struct wh_null {
    null_offset *offsets;
    size_t n, cap;
    uint64_t rows, loads; /* what was discarded, for a debugger's eyes */
} wh_null;

static tp_err nu_open(tp_warehouse *w, const char *rest)
{
    wh_null *n = calloc(1, sizeof *n);
    if (!n)
        return TP_ERR_NOMEM;
    w->impl = n;
    /* Nothing to name after the scheme: refuse text there instead of ignoring what someone meant. */
    if (rest[0])
        return tp_wh_fail(w, TP_ERR_PARSE,
                          "warehouse URL \"null:%s\" has text after \"null:\"; the null warehouse takes none, use "
                          "null:",
                          rest);
    return TP_OK;
}

static tp_err nu_ensure_table(tp_warehouse *w)
{
    (void)w;
    return TP_OK;
}

/* The entry of (topic, partition) among the first `count` entries, or NULL. */
static null_offset *find(wh_null *n, size_t count, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < count; i++)
        if (n->offsets[i].partition == partition && !strcmp(n->offsets[i].topic, topic))
            return &n->offsets[i];
    return NULL;
}

static tp_err nu_load(tp_warehouse *w, const tp_row_batch *rows, const char *topic, const tp_partition_offset *offsets,
                      size_t n_offsets)
{
    wh_null *n = w->impl;
    /* All or nothing, as every backend: new partitions are first built past n->n (invisible), and only once every
     * allocation succeeded are the offsets updated and the new entries counted in. */
    if (n_offsets > n->cap - n->n) {
        size_t cap = n->cap ? n->cap : 16;
        while (cap - n->n < n_offsets)
            cap *= 2;
        null_offset *p = realloc(n->offsets, cap * sizeof *p);
        if (!p)
            return tp_wh_fail(w, TP_ERR_NOMEM, "null warehouse: out of memory for %zu partition offsets", cap);
        n->offsets = p;
        n->cap = cap;
    }
    size_t fresh = 0;
    for (size_t i = 0; i < n_offsets; i++) {
        if (find(n, n->n + fresh, topic, offsets[i].partition))
            continue;
        char *copy = strdup(topic);
        if (!copy) {
            for (size_t k = 0; k < fresh; k++)
                free(n->offsets[n->n + k].topic);
            return tp_wh_fail(w, TP_ERR_NOMEM, "null warehouse: out of memory for topic name \"%s\"", topic);
        }
        n->offsets[n->n + fresh++] = (null_offset){copy, offsets[i].partition, -1};
    }
    n->n += fresh;
    for (size_t i = 0; i < n_offsets; i++)
        find(n, n->n, topic, offsets[i].partition)->next_offset = offsets[i].next_offset;
    n->rows += rows->count;
    n->loads++;
    return TP_OK;
}

static tp_err nu_stored_offset(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset)
{
    wh_null *n = w->impl;
    null_offset *o = find(n, n->n, topic, partition);
    *next_offset = o ? o->next_offset : -1;
    return TP_OK;
}

static tp_err nu_ping(tp_warehouse *w)
{
    (void)w;
    return TP_OK;
}

static void nu_close(tp_warehouse *w)
{
    wh_null *n = w->impl;
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        free(n->offsets[i].topic);
    free(n->offsets);
    free(n);
    w->impl = NULL;
}

const tp_wh_ops tp_wh_null_ops = {
    .kind = "null",
    .open = nu_open,
    .ensure_table = nu_ensure_table,
    .load = nu_load,
    .stored_offset = nu_stored_offset,
    .ping = nu_ping,
    .close = nu_close,
};
