/* Metrics registry for the workers: counters, gauges and fixed-bucket histograms with optional labels, rendered in
 * the Prometheus text exposition format 0.0.4. Lock-free updates on the hot path; registration takes a lock. */
#ifndef TELEPACK_METRICS_H
#define TELEPACK_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "telepack/error.h"

/* A registry owns every series registered in it; the handles it returns stay valid until tp_metrics_free().
 * There is no global registry: each worker creates one and passes it (or its handles) to the parts that count.
 *
 * Threads: every function here is thread-safe. Updates (inc/add/set/observe) are single atomic operations, or a
 * short compare-and-swap loop for floating-point sums; registration and rendering take the registry's mutex.
 *
 * NULL handles: every update function accepts a NULL handle and does nothing, so code can run with metrics
 * disabled by leaving its handle struct zeroed.
 *
 * Cost: an update is one uncontended atomic add (a few ns), and each series sits on its own cache lines. On the
 * hottest loops count per batch (tp_counter_add(records, n)) rather than per record. */
typedef struct tp_metrics tp_metrics;
typedef struct tp_counter tp_counter;
typedef struct tp_gauge tp_gauge;
typedef struct tp_histogram tp_histogram;

/* Limits on what registration accepts. */
#define TP_METRICS_MAX_LABELS 8          /* label pairs per series */
#define TP_METRICS_MAX_LABELS_LEN 512    /* bytes of a labels string */
#define TP_METRICS_MAX_BUCKETS 64        /* finite bucket bounds per histogram */

tp_err tp_metrics_new(tp_metrics **out);
void tp_metrics_free(tp_metrics *m);

/* ---- registration (at startup; also allowed later, e.g. from a collector) ----
 *
 * name:   [a-zA-Z_:][a-zA-Z0-9_:]*  (counters conventionally end in _total)
 * help:   one line of free text (backslashes and newlines are escaped on output); may be NULL
 * labels: NULL or "" for none, else the label pairs as they appear inside Prometheus braces, values quoted and
 *         escaped with \\ \" \n:   partition="3",warehouse="clickhouse"
 *         Label names are [a-zA-Z_][a-zA-Z0-9_]*, must not start with "__", must not repeat; histograms may not
 *         use "le". At most TP_METRICS_MAX_LABELS pairs.
 *
 * All series with the same name form one family: they must have the same type (the first registration's help
 * text is the family's). Registering an existing (name, labels) pair again returns the existing handle.
 * On failure these return NULL and record the first error in the registry (tp_metrics_status), so a worker can
 * register its whole set and check once. Failure reasons: invalid name/labels, a type conflict, out of memory. */
tp_counter *tp_metrics_counter(tp_metrics *m, const char *name, const char *help, const char *labels);
tp_gauge *tp_metrics_gauge(tp_metrics *m, const char *name, const char *help, const char *labels);

/* A gauge whose value is fn(ud), called while rendering (with the registry locked: fn must not call into this
 * registry and should be quick). Setting the returned gauge has no effect. */
tp_gauge *tp_metrics_gauge_fn(tp_metrics *m, const char *name, const char *help, const char *labels,
                              double (*fn)(void *ud), void *ud);

/* A histogram with the given finite upper bounds (strictly increasing, 1..TP_METRICS_MAX_BUCKETS of them; the
 * +Inf bucket is implicit). The bounds are copied. Re-registering a series returns the existing one (its bounds
 * are kept). */
tp_histogram *tp_metrics_histogram(tp_metrics *m, const char *name, const char *help, const char *labels,
                                   const double *bounds, size_t n_bounds);

/* TP_OK while every registration so far succeeded, else the first error; *detail (may be NULL) gets a sentence
 * naming the metric and the problem, valid until tp_metrics_free(). */
tp_err tp_metrics_status(const tp_metrics *m, const char **detail);

/* Builds a labels string from raw (unescaped) name/value pairs, NULL-terminated:
 *   tp_metrics_labels(buf, sizeof buf, "topic", topic, "partition", "3", NULL)  ->  topic="...",partition="3"
 * Values are escaped. TP_ERR_FULL when it does not fit in cap (buf then holds ""). */
tp_err tp_metrics_labels(char *out, size_t cap, ...) __attribute__((sentinel));

/* Fills out[0..count) with start, start*factor, start*factor^2, ... (start > 0, factor > 1). */
void tp_metrics_buckets_exponential(double start, double factor, size_t count, double *out);

/* ---- collectors ----
 * fn(m, ud) runs at the start of every render, before the registry is locked, one collector at a time: it may
 * register series and set values, e.g. one consumer-lag gauge per partition currently assigned. */
typedef void (*tp_metrics_collect_fn)(tp_metrics *m, void *ud);
tp_err tp_metrics_add_collector(tp_metrics *m, tp_metrics_collect_fn fn, void *ud);

/* ---- updates (hot path, lock-free) ---- */

void tp_counter_inc(tp_counter *c);
void tp_counter_add(tp_counter *c, uint64_t n);
/* Sets the counter to v: only for mirroring a monotonic total kept elsewhere (e.g. librdkafka's txmsgs). */
void tp_counter_set(tp_counter *c, uint64_t v);
uint64_t tp_counter_value(const tp_counter *c);

void tp_gauge_set(tp_gauge *g, double v);
void tp_gauge_add(tp_gauge *g, double delta);
/* Hides the series from the output until the next set/add (e.g. a partition that was revoked). */
void tp_gauge_unset(tp_gauge *g);
double tp_gauge_value(const tp_gauge *g);

void tp_histogram_observe(tp_histogram *h, double v);
uint64_t tp_histogram_count(const tp_histogram *h);
double tp_histogram_sum(const tp_histogram *h);
/* Estimates the q-quantile (0 <= q <= 1) by linear interpolation inside the bucket that holds it, as PromQL's
 * histogram_quantile does; NaN when empty; the highest finite bound when it falls in the +Inf bucket. */
double tp_histogram_quantile(const tp_histogram *h, double q);

/* ---- output ---- */

/* Renders every series in the text exposition format 0.0.4 (# HELP, # TYPE, samples; histograms as cumulative
 * _bucket{le=...}, _sum, _count) into a malloc'd NUL-terminated buffer the caller frees with free(). Families come
 * out in registration order. TP_ERR_NOMEM if the buffer cannot grow. */
tp_err tp_metrics_render(tp_metrics *m, char **out, size_t *out_len);

/* The Content-Type of what tp_metrics_render produces. */
#define TP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
