/* Metrics registry: families of series (counter, gauge, histogram) with atomic values, rendered as Prometheus text.
 *
 * Layout: the registry holds an array of families (one per metric name), each family an array of series (one per
 * label set). Every series is its own allocation, so the handle given out at registration never moves; the arrays
 * that point at them grow only under the registry mutex, which rendering also holds. Updates touch nothing but the
 * series' atomics. Floating-point values live in _Atomic uint64_t as their bit patterns. */
#include "ops/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum metric_type { MT_COUNTER = 0, MT_GAUGE, MT_HISTOGRAM } metric_type;

static const char *const type_names[] = {"counter", "gauge", "histogram"};

typedef struct family family;

typedef struct series {
    family *fam;
    char *labels;                 /* canonical, escaped: a="1",b="x"; "" for none */
    _Atomic uint64_t value;       /* counter: the count; gauge: bits of a double */
    _Atomic int present;          /* gauges: 0 after tp_gauge_unset until the next set */
    double (*fn)(void *ud);       /* callback gauge */
    void *ud;
    size_t n_bounds;              /* histogram */
    double *bounds;
    _Atomic uint64_t *buckets;    /* n_bounds + 1 non-cumulative counts; the last is +Inf */
    _Atomic uint64_t sum;         /* bits of a double */
} series;

struct family {
    char *name;
    char *help;
    metric_type type;
    series **series;
    size_t n_series, cap_series;
};

typedef struct collector {
    tp_metrics_collect_fn fn;
    void *ud;
} collector;

struct tp_metrics {
    pthread_mutex_t lock;         /* families, series arrays, error state */
    family **families;
    size_t n_families, cap_families;
    tp_err status;
    char detail[320];
    pthread_mutex_t collect_lock; /* collectors, and one render's collection at a time */
    collector *collectors;
    size_t n_collectors, cap_collectors;
};

/* ---- doubles in atomics ---- */

static uint64_t dbits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static double bitsd(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static void atomic_add_double(_Atomic uint64_t *a, double delta)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, dbits(bitsd(old) + delta), memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

/* ---- registry ---- */

tp_err tp_metrics_new(tp_metrics **out)
{
    if (!out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    tp_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return TP_ERR_NOMEM;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->collect_lock, NULL);
    *out = m;
    return TP_OK;
}

static void series_free(series *s)
{
    if (!s)
        return;
    free(s->labels);
    free(s->bounds);
    free((void *)s->buckets);
    free(s);
}

void tp_metrics_free(tp_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_families; i++) {
        family *f = m->families[i];
        for (size_t j = 0; j < f->n_series; j++)
            series_free(f->series[j]);
        free(f->series);
        free(f->name);
        free(f->help);
        free(f);
    }
    free(m->families);
    free(m->collectors);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->collect_lock);
    free(m);
}

/* Records the first registration error (lock held). */
static void set_error(tp_metrics *m, tp_err err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_error(tp_metrics *m, tp_err err, const char *fmt, ...)
{
    if (m->status)
        return;
    m->status = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->detail, sizeof m->detail, fmt, ap);
    va_end(ap);
}

tp_err tp_metrics_status(const tp_metrics *m, const char **detail)
{
    if (!m)
        return TP_ERR_INVALID_ARG;
    tp_metrics *mm = (tp_metrics *)m;
    pthread_mutex_lock(&mm->lock);
    tp_err e = m->status;
    pthread_mutex_unlock(&mm->lock);
    if (detail)
        *detail = e ? m->detail : "no error";
    return e;
}

void tp_metrics_buckets_exponential(double start, double factor, size_t count, double *out)
{
    double v = start;
    for (size_t i = 0; i < count; i++) {
        out[i] = v;
        v *= factor;
    }
}

tp_err tp_metrics_labels(char *out, size_t cap, ...)
{
    if (!out || !cap)
        return TP_ERR_INVALID_ARG;
    size_t o = 0;
    tp_err e = TP_OK;
    va_list ap;
    va_start(ap, cap);
    for (const char *k; (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);
        if (!v)
            v = "";
        int n = snprintf(out + o, cap - o, "%s%s=\"", o ? "," : "", k);
        if (n < 0 || (size_t)n >= cap - o) {
            e = TP_ERR_FULL;
            break;
        }
        o += (size_t)n;
        for (; *v; v++) {
            const char *rep = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
            size_t rl = rep ? 2 : 1;
            if (o + rl >= cap) {
                e = TP_ERR_FULL;
                break;
            }
            if (rep)
                memcpy(out + o, rep, 2);
            else
                out[o] = *v;
            o += rl;
        }
        if (e || o + 1 >= cap) {
            e = TP_ERR_FULL;
            break;
        }
        out[o++] = '"';
    }
    va_end(ap);
    out[e ? 0 : o] = '\0';
    return e;
}

/* ---- validation and label canonicalisation ---- */

static bool valid_metric_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool label_name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* Parses labels (see metrics.h) and writes the canonical escaped form to out[0..cap). Returns NULL on success or a
 * static description of the problem. */
static const char *canonical_labels(const char *in, bool is_histogram, char *out, size_t cap)
{
    size_t o = 0;
    char names[TP_METRICS_MAX_LABELS][64];
    size_t n = 0;
    if (!in)
        in = "";
    if (strlen(in) > TP_METRICS_MAX_LABELS_LEN)
        return "the labels string is longer than TP_METRICS_MAX_LABELS_LEN";
    const char *p = in;
    while (*p) {
        if (n == TP_METRICS_MAX_LABELS)
            return "more than TP_METRICS_MAX_LABELS label pairs";
        const char *start = p;
        if (!label_name_char(*p, true))
            return "a label name must start with a letter or '_'";
        while (label_name_char(*p, false))
            p++;
        size_t nl = (size_t)(p - start);
        if (nl >= sizeof names[0])
            return "a label name is longer than 63 characters";
        if (nl >= 2 && start[0] == '_' && start[1] == '_')
            return "label names starting with \"__\" are reserved";
        if (is_histogram && nl == 2 && !memcmp(start, "le", 2))
            return "a histogram may not have a label named \"le\"";
        for (size_t i = 0; i < n; i++)
            if (strlen(names[i]) == nl && !memcmp(names[i], start, nl))
                return "a label name appears twice";
        memcpy(names[n], start, nl);
        names[n][nl] = '\0';
        if (*p++ != '=')
            return "expected '=' after a label name";
        if (*p++ != '"')
            return "a label value must be in double quotes";
        if (o + nl + 3 >= cap)
            return "the labels are too long";
        if (n)
            out[o++] = ',';
        memcpy(out + o, start, nl);
        o += nl;
        out[o++] = '=';
        out[o++] = '"';
        for (;;) {
            char c = *p++;
            if (c == '\0')
                return "a label value is missing its closing quote";
            if (c == '"')
                break;
            if (c == '\\') {
                char e = *p++;
                if (e != '\\' && e != '"' && e != 'n')
                    return "a label value has an escape other than \\\\, \\\" or \\n";
                if (o + 2 >= cap)
                    return "the labels are too long";
                out[o++] = '\\';
                out[o++] = e;
                continue;
            }
            if (c == '\n') { /* a raw newline is accepted and escaped */
                if (o + 2 >= cap)
                    return "the labels are too long";
                out[o++] = '\\';
                out[o++] = 'n';
                continue;
            }
            if (o + 1 >= cap)
                return "the labels are too long";
            out[o++] = c;
        }
        if (o + 1 >= cap)
            return "the labels are too long";
        out[o++] = '"';
        n++;
        if (*p == ',')
            p++;
        else if (*p)
            return "expected ',' between label pairs";
    }
    out[o] = '\0';
    return NULL;
}

/* ---- registration ---- */

static family *find_family(tp_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n_families; i++)
        if (!strcmp(m->families[i]->name, name))
            return m->families[i];
    return NULL;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static family *add_family(tp_metrics *m, const char *name, const char *help, metric_type type)
{
    if (m->n_families == m->cap_families) {
        size_t cap = m->cap_families ? m->cap_families * 2 : 16;
        family **nf = realloc(m->families, cap * sizeof *nf);
        if (!nf)
            return NULL;
        m->families = nf;
        m->cap_families = cap;
    }
    family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->name = dupstr(name);
    f->help = dupstr(help ? help : "");
    f->type = type;
    if (!f->name || !f->help) {
        free(f->name);
        free(f->help);
        free(f);
        return NULL;
    }
    m->families[m->n_families++] = f;
    return f;
}

/* Finds or creates the series (name, labels) of the given type. Returns NULL after recording an error. */
static series *register_series(tp_metrics *m, const char *name, const char *help, const char *labels,
                               metric_type type, const double *bounds, size_t n_bounds, double (*fn)(void *),
                               void *ud)
{
    if (!m)
        return NULL;
    char canon[TP_METRICS_MAX_LABELS_LEN * 2 + 8];
    series *s = NULL;
    pthread_mutex_lock(&m->lock);
    if (!valid_metric_name(name)) {
        set_error(m, TP_ERR_INVALID_ARG, "metric name \"%s\" is not valid: use [a-zA-Z_:][a-zA-Z0-9_:]*",
                  name ? name : "(null)");
        goto out;
    }
    const char *why = canonical_labels(labels, type == MT_HISTOGRAM, canon, sizeof canon);
    if (why) {
        set_error(m, TP_ERR_INVALID_ARG, "metric %s: labels '%.80s%s' are not valid: %s", name, labels,
                  strlen(labels) > 80 ? "..." : "", why);
        goto out;
    }
    if (type == MT_HISTOGRAM) {
        bool ok = bounds && n_bounds >= 1 && n_bounds <= TP_METRICS_MAX_BUCKETS;
        for (size_t i = 0; ok && i < n_bounds; i++)
            ok = isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]);
        if (!ok) {
            set_error(m, TP_ERR_INVALID_ARG,
                      "histogram %s: bucket bounds must be 1..%d finite, strictly increasing values (got %zu)",
                      name, TP_METRICS_MAX_BUCKETS, n_bounds);
            goto out;
        }
    }
    family *f = find_family(m, name);
    if (f && f->type != type) {
        set_error(m, TP_ERR_INVALID_ARG, "metric %s is already registered as a %s, not a %s", name,
                  type_names[f->type], type_names[type]);
        goto out;
    }
    if (f) {
        for (size_t i = 0; i < f->n_series; i++)
            if (!strcmp(f->series[i]->labels, canon)) {
                s = f->series[i];
                goto out;
            }
    } else if (!(f = add_family(m, name, help, type))) {
        goto oom;
    }
    if (f->n_series == f->cap_series) {
        size_t cap = f->cap_series ? f->cap_series * 2 : 4;
        series **ns = realloc(f->series, cap * sizeof *ns);
        if (!ns)
            goto oom;
        f->series = ns;
        f->cap_series = cap;
    }
    /* Each series on cache lines of its own, so counters bumped by different threads do not false-share. */
    size_t sz = (sizeof(series) + 63) / 64 * 64;
    series *ns = aligned_alloc(64, sz);
    if (!ns)
        goto oom;
    memset(ns, 0, sz);
    ns->fam = f;
    ns->labels = dupstr(canon);
    ns->fn = fn;
    ns->ud = ud;
    atomic_init(&ns->present, 1);
    atomic_init(&ns->value, type == MT_GAUGE ? dbits(0.0) : 0);
    atomic_init(&ns->sum, dbits(0.0));
    if (type == MT_HISTOGRAM) {
        ns->n_bounds = n_bounds;
        ns->bounds = malloc(n_bounds * sizeof *ns->bounds);
        ns->buckets = calloc(n_bounds + 1, sizeof *ns->buckets);
        if (ns->bounds)
            memcpy(ns->bounds, bounds, n_bounds * sizeof *bounds);
    }
    if (!ns->labels || (type == MT_HISTOGRAM && (!ns->bounds || !ns->buckets))) {
        series_free(ns);
        goto oom;
    }
    f->series[f->n_series++] = ns;
    s = ns;
    goto out;
oom:
    set_error(m, TP_ERR_NOMEM, "out of memory registering metric %s", name);
out:
    pthread_mutex_unlock(&m->lock);
    return s;
}

tp_counter *tp_metrics_counter(tp_metrics *m, const char *name, const char *help, const char *labels)
{
    return (tp_counter *)(void *)register_series(m, name, help, labels, MT_COUNTER, NULL, 0, NULL, NULL);
}

tp_gauge *tp_metrics_gauge(tp_metrics *m, const char *name, const char *help, const char *labels)
{
    return (tp_gauge *)(void *)register_series(m, name, help, labels, MT_GAUGE, NULL, 0, NULL, NULL);
}

tp_gauge *tp_metrics_gauge_fn(tp_metrics *m, const char *name, const char *help, const char *labels,
                              double (*fn)(void *ud), void *ud)
{
    if (!fn) {
        if (m) {
            pthread_mutex_lock(&m->lock);
            set_error(m, TP_ERR_INVALID_ARG, "callback gauge %s has no callback", name ? name : "(null)");
            pthread_mutex_unlock(&m->lock);
        }
        return NULL;
    }
    return (tp_gauge *)(void *)register_series(m, name, help, labels, MT_GAUGE, NULL, 0, fn, ud);
}

tp_histogram *tp_metrics_histogram(tp_metrics *m, const char *name, const char *help, const char *labels,
                                   const double *bounds, size_t n_bounds)
{
    return (tp_histogram *)(void *)register_series(m, name, help, labels, MT_HISTOGRAM, bounds, n_bounds, NULL,
                                                   NULL);
}

tp_err tp_metrics_add_collector(tp_metrics *m, tp_metrics_collect_fn fn, void *ud)
{
    if (!m || !fn)
        return TP_ERR_INVALID_ARG;
    tp_err e = TP_OK;
    pthread_mutex_lock(&m->collect_lock);
    if (m->n_collectors == m->cap_collectors) {
        size_t cap = m->cap_collectors ? m->cap_collectors * 2 : 4;
        collector *nc = realloc(m->collectors, cap * sizeof *nc);
        if (!nc) {
            e = TP_ERR_NOMEM;
            goto out;
        }
        m->collectors = nc;
        m->cap_collectors = cap;
    }
    m->collectors[m->n_collectors++] = (collector){fn, ud};
out:
    pthread_mutex_unlock(&m->collect_lock);
    return e;
}

/* ---- updates ---- */

#define SERIES(h) ((series *)(void *)(h))

/* Handles are series; the read-only accessors take const handles but load through the (mutable) atomics. */
static series *const_series(const void *h)
{
    return (series *)(uintptr_t)h;
}

void tp_counter_inc(tp_counter *c)
{
    if (c)
        atomic_fetch_add_explicit(&SERIES(c)->value, 1, memory_order_relaxed);
}

void tp_counter_add(tp_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&SERIES(c)->value, n, memory_order_relaxed);
}

void tp_counter_set(tp_counter *c, uint64_t v)
{
    if (c)
        atomic_store_explicit(&SERIES(c)->value, v, memory_order_relaxed);
}

uint64_t tp_counter_value(const tp_counter *c)
{
    return c ? atomic_load_explicit(&const_series(c)->value, memory_order_relaxed) : 0;
}

void tp_gauge_set(tp_gauge *g, double v)
{
    if (!g)
        return;
    atomic_store_explicit(&SERIES(g)->value, dbits(v), memory_order_relaxed);
    atomic_store_explicit(&SERIES(g)->present, 1, memory_order_release);
}

void tp_gauge_add(tp_gauge *g, double delta)
{
    if (!g)
        return;
    atomic_add_double(&SERIES(g)->value, delta);
    atomic_store_explicit(&SERIES(g)->present, 1, memory_order_release);
}

void tp_gauge_unset(tp_gauge *g)
{
    if (g)
        atomic_store_explicit(&SERIES(g)->present, 0, memory_order_release);
}

double tp_gauge_value(const tp_gauge *g)
{
    if (!g)
        return 0.0;
    series *s = const_series(g);
    if (s->fn)
        return s->fn(s->ud);
    return bitsd(atomic_load_explicit(&s->value, memory_order_relaxed));
}

void tp_histogram_observe(tp_histogram *h, double v)
{
    if (!h)
        return;
    series *s = SERIES(h);
    /* Binary search for the first bound >= v; NaN and values above every bound land in +Inf. */
    size_t lo = 0, hi = s->n_bounds;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= s->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (isnan(v))
        lo = s->n_bounds;
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&s->sum, v);
}

uint64_t tp_histogram_count(const tp_histogram *h)
{
    if (!h)
        return 0;
    series *s = const_series(h);
    uint64_t n = 0;
    for (size_t i = 0; i <= s->n_bounds; i++)
        n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    return n;
}

double tp_histogram_sum(const tp_histogram *h)
{
    if (!h)
        return 0.0;
    series *s = const_series(h);
    return bitsd(atomic_load_explicit(&s->sum, memory_order_relaxed));
}

double tp_histogram_quantile(const tp_histogram *h, double q)
{
    if (!h || !(q >= 0.0 && q <= 1.0))
        return NAN;
    series *s = const_series(h);
    uint64_t counts[TP_METRICS_MAX_BUCKETS + 1];
    uint64_t total = 0;
    for (size_t i = 0; i <= s->n_bounds; i++) {
        counts[i] = atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        total += counts[i];
    }
    if (total == 0)
        return NAN;
    double rank = q * (double)total;
    uint64_t cum = 0;
    for (size_t i = 0; i <= s->n_bounds; i++) {
        uint64_t prev = cum;
        cum += counts[i];
        if ((double)cum >= rank && counts[i] > 0) {
            if (i == s->n_bounds)
                return s->bounds[s->n_bounds - 1];
            double upper = s->bounds[i];
            double lower = i ? s->bounds[i - 1] : (upper > 0 ? 0.0 : upper);
            return lower + (upper - lower) * ((rank - (double)prev) / (double)counts[i]);
        }
    }
    return s->bounds[s->n_bounds - 1];
}

/* ---- rendering ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra)
{
    if (b->oom || b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
        b->oom = true;
        return;
    }
    b->p = np;
    b->cap = cap;
}

static void sb_put(sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* The shortest of %.15g / %.17g that reads back as v; Prometheus' spellings of the special values. */
static void fmt_double(char *out, size_t cap, double v)
{
    if (isnan(v))
        snprintf(out, cap, "NaN");
    else if (isinf(v))
        snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
    else {
        snprintf(out, cap, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, cap, "%.17g", v);
    }
}

static void render_help(sbuf *b, const family *f)
{
    sb_puts(b, "# HELP ");
    sb_puts(b, f->name);
    sb_puts(b, " ");
    for (const char *p = f->help; *p; p++) {
        if (*p == '\\')
            sb_puts(b, "\\\\");
        else if (*p == '\n')
            sb_puts(b, "\\n");
        else
            sb_put(b, p, 1);
    }
    sb_puts(b, "\n# TYPE ");
    sb_puts(b, f->name);
    sb_puts(b, " ");
    sb_puts(b, type_names[f->type]);
    sb_puts(b, "\n");
}

/* name[suffix]{labels[,extra]} value\n */
static void render_sample(sbuf *b, const char *name, const char *suffix, const char *labels, const char *extra,
                          const char *value)
{
    sb_puts(b, name);
    sb_puts(b, suffix);
    bool has_labels = *labels, has_extra = extra && *extra;
    if (has_labels || has_extra) {
        sb_puts(b, "{");
        sb_puts(b, labels);
        if (has_labels && has_extra)
            sb_puts(b, ",");
        if (has_extra)
            sb_puts(b, extra);
        sb_puts(b, "}");
    }
    sb_puts(b, " ");
    sb_puts(b, value);
    sb_puts(b, "\n");
}

static void render_series(sbuf *b, const family *f, series *s)
{
    char v[64];
    switch (f->type) {
    case MT_COUNTER:
        snprintf(v, sizeof v, "%llu", (unsigned long long)atomic_load_explicit(&s->value, memory_order_relaxed));
        render_sample(b, f->name, "", s->labels, NULL, v);
        break;
    case MT_GAUGE:
        if (!s->fn && !atomic_load_explicit(&s->present, memory_order_acquire))
            break;
        fmt_double(v, sizeof v, tp_gauge_value((tp_gauge *)(void *)s));
        render_sample(b, f->name, "", s->labels, NULL, v);
        break;
    case MT_HISTOGRAM: {
        uint64_t cum = 0;
        char le[80], bound[48];
        for (size_t i = 0; i <= s->n_bounds; i++) {
            cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
            if (i < s->n_bounds)
                fmt_double(bound, sizeof bound, s->bounds[i]);
            else
                snprintf(bound, sizeof bound, "+Inf");
            snprintf(le, sizeof le, "le=\"%s\"", bound);
            snprintf(v, sizeof v, "%llu", (unsigned long long)cum);
            render_sample(b, f->name, "_bucket", s->labels, le, v);
        }
        fmt_double(v, sizeof v, bitsd(atomic_load_explicit(&s->sum, memory_order_relaxed)));
        render_sample(b, f->name, "_sum", s->labels, NULL, v);
        /* _count is the +Inf bucket, so the two always agree even while observations race with the scrape. */
        snprintf(v, sizeof v, "%llu", (unsigned long long)cum);
        render_sample(b, f->name, "_count", s->labels, NULL, v);
        break;
    }
    }
}

tp_err tp_metrics_render(tp_metrics *m, char **out, size_t *out_len)
{
    if (!m || !out)
        return TP_ERR_INVALID_ARG;
    *out = NULL;
    if (out_len)
        *out_len = 0;

    pthread_mutex_lock(&m->collect_lock);
    for (size_t i = 0; i < m->n_collectors; i++)
        m->collectors[i].fn(m, m->collectors[i].ud);
    pthread_mutex_unlock(&m->collect_lock);

    sbuf b = {0};
    sb_reserve(&b, 0);
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_families; i++) {
        family *f = m->families[i];
        render_help(&b, f);
        for (size_t j = 0; j < f->n_series; j++)
            render_series(&b, f, f->series[j]);
    }
    pthread_mutex_unlock(&m->lock);
    if (b.oom) {
        free(b.p);
        return TP_ERR_NOMEM;
    }
    *out = b.p;
    if (out_len)
        *out_len = b.len;
    return TP_OK;
}
