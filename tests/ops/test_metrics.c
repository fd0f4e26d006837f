/* Tests of the metrics registry: render to Prometheus text, parse it back with an independent parser, and check
 * names, types, values, cumulative buckets, escaping, error paths and exact counts under concurrent updates. */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops/metrics.h"
#include "telepack/error.h"
#include "ops/worker_metrics.h"

/* ---- a small parser of the text exposition format ---- */

#define MAX_SAMPLES 512

typedef struct sample {
    char name[128];
    char labels[8][2][128]; /* unescaped name/value pairs */
    int n_labels;
    double value;
} sample;

typedef struct parsed {
    sample s[MAX_SAMPLES];
    int n;
    char types[64][2][128]; /* family name -> type */
    int n_types;
    char helps[64][2][256]; /* family name -> unescaped help */
    int n_helps;
    int errors;
} parsed;

static int parse_label_value(const char **pp, char *out, size_t cap)
{
    const char *p = *pp;
    size_t o = 0;
    if (*p++ != '"')
        return -1;
    for (;;) {
        char c = *p++;
        if (c == '\0' || c == '\n')
            return -1;
        if (c == '"')
            break;
        if (c == '\\') {
            char e = *p++;
            c = e == 'n' ? '\n' : e == '\\' ? '\\' : e == '"' ? '"' : 0;
            if (!c)
                return -1;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    *pp = p;
    return 0;
}

static void parse_text(const char *text, parsed *P)
{
    memset(P, 0, sizeof *P);
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        if (!eol) { /* every line, the last included, ends in \n */
            P->errors++;
            return;
        }
        if (!strncmp(p, "# TYPE ", 7) && P->n_types < 64) {
            sscanf(p + 7, "%127s %127s", P->types[P->n_types][0], P->types[P->n_types][1]);
            P->n_types++;
        } else if (!strncmp(p, "# HELP ", 7) && P->n_helps < 64) {
            const char *q = p + 7;
            size_t nl = strcspn(q, " \n");
            snprintf(P->helps[P->n_helps][0], 128, "%.*s", (int)nl, q);
            q += nl + (q[nl] == ' ');
            size_t o = 0;
            char *h = P->helps[P->n_helps][1];
            while (q < eol && o < 255) {
                if (*q == '\\' && q[1] == 'n') {
                    h[o++] = '\n';
                    q += 2;
                } else if (*q == '\\' && q[1] == '\\') {
                    h[o++] = '\\';
                    q += 2;
                } else {
                    h[o++] = *q++;
                }
            }
            h[o] = '\0';
            P->n_helps++;
        } else if (*p != '#' && P->n < MAX_SAMPLES) {
            sample *s = &P->s[P->n];
            memset(s, 0, sizeof *s);
            size_t nl = strcspn(p, "{ ");
            snprintf(s->name, sizeof s->name, "%.*s", (int)nl, p);
            const char *q = p + nl;
            if (*q == '{') {
                q++;
                while (*q != '}') {
                    if (s->n_labels == 8) {
                        P->errors++;
                        return;
                    }
                    size_t ln = strcspn(q, "=");
                    snprintf(s->labels[s->n_labels][0], 128, "%.*s", (int)ln, q);
                    q += ln + 1;
                    if (parse_label_value(&q, s->labels[s->n_labels][1], 128)) {
                        P->errors++;
                        return;
                    }
                    s->n_labels++;
                    if (*q == ',')
                        q++;
                    else if (*q != '}') {
                        P->errors++;
                        return;
                    }
                }
                q++;
            }
            if (*q++ != ' ') {
                P->errors++;
                return;
            }
            char *end;
            s->value = strtod(q, &end); /* strtod reads NaN, +Inf, -Inf */
            if (end != eol) {
                P->errors++;
                return;
            }
            P->n++;
        }
        p = eol + 1;
    }
}

static const char *label_of(const sample *s, const char *name)
{
    for (int i = 0; i < s->n_labels; i++)
        if (!strcmp(s->labels[i][0], name))
            return s->labels[i][1];
    return NULL;
}

/* The sample called name whose labels include k=v (k may be NULL for any). */
static const sample *find(const parsed *P, const char *name, const char *k, const char *v)
{
    for (int i = 0; i < P->n; i++) {
        if (strcmp(P->s[i].name, name))
            continue;
        if (!k)
            return &P->s[i];
        const char *lv = label_of(&P->s[i], k);
        if (lv && !strcmp(lv, v))
            return &P->s[i];
    }
    return NULL;
}

static int count_named(const parsed *P, const char *name)
{
    int n = 0;
    for (int i = 0; i < P->n; i++)
        n += !strcmp(P->s[i].name, name);
    return n;
}

static const char *type_of(const parsed *P, const char *family)
{
    for (int i = 0; i < P->n_types; i++)
        if (!strcmp(P->types[i][0], family))
            return P->types[i][1];
    return NULL;
}

static const char *help_of(const parsed *P, const char *family)
{
    for (int i = 0; i < P->n_helps; i++)
        if (!strcmp(P->helps[i][0], family))
            return P->helps[i][1];
    return NULL;
}

static parsed P; /* large: keep it off the stack */

static void render_parse(tp_metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    CHECK_ERR(tp_metrics_render(m, &text, &len), TP_OK);
    CHECK(text != NULL);
    if (!text)
        return;
    CHECK_INT(strlen(text), len);
    parse_text(text, &P);
    CHECK_INT(P.errors, 0);
    if (P.errors)
        fprintf(stderr, "unparseable output:\n%s\n", text);
    free(text);
}

/* ---- tests ---- */

static void test_basic_render(void)
{
    tp_metrics *m = NULL;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    tp_counter *c = tp_metrics_counter(m, "t_requests_total", "Requests handled.", NULL);
    tp_gauge *g = tp_metrics_gauge(m, "t_temperature", "A gauge.\nSecond line with a \\ backslash.", NULL);
    double b[] = {0.5, 1, 2.5};
    tp_histogram *h = tp_metrics_histogram(m, "t_latency_seconds", "Latency.", "path=\"/x\"", b, 3);
    CHECK(c && g && h);
    tp_counter_inc(c);
    tp_counter_add(c, 41);
    tp_gauge_set(g, -3.25);
    tp_gauge_add(g, 1.0);
    tp_histogram_observe(h, 0.1);  /* 0.5 */
    tp_histogram_observe(h, 0.5);  /* 0.5: bounds are inclusive */
    tp_histogram_observe(h, 0.75); /* 1 */
    tp_histogram_observe(h, 2.0);  /* 2.5 */
    tp_histogram_observe(h, 99.0); /* +Inf */
    CHECK_INT(tp_counter_value(c), 42);
    CHECK(tp_gauge_value(g) == -2.25);
    CHECK_INT(tp_histogram_count(h), 5);
    CHECK(fabs(tp_histogram_sum(h) - 102.35) < 1e-9);

    render_parse(m);
    CHECK_STR(type_of(&P, "t_requests_total"), "counter");
    CHECK_STR(type_of(&P, "t_temperature"), "gauge");
    CHECK_STR(type_of(&P, "t_latency_seconds"), "histogram");
    CHECK_STR(help_of(&P, "t_temperature"), "A gauge.\nSecond line with a \\ backslash.");
    const sample *s = find(&P, "t_requests_total", NULL, NULL);
    CHECK(s && s->value == 42 && s->n_labels == 0);
    s = find(&P, "t_temperature", NULL, NULL);
    CHECK(s && s->value == -2.25);

    const char *les[] = {"0.5", "1", "2.5", "+Inf"};
    const double want[] = {2, 3, 4, 5}; /* cumulative */
    CHECK_INT(count_named(&P, "t_latency_seconds_bucket"), 4);
    for (int i = 0; i < 4; i++) {
        s = find(&P, "t_latency_seconds_bucket", "le", les[i]);
        CHECK(s != NULL);
        if (s) {
            CHECK(s->value == want[i]);
            CHECK_STR(label_of(s, "path"), "/x");
        }
    }
    s = find(&P, "t_latency_seconds_count", "path", "/x");
    CHECK(s && s->value == 5);
    s = find(&P, "t_latency_seconds_sum", "path", "/x");
    CHECK(s && fabs(s->value - 102.35) < 1e-9);

    /* Quantiles interpolate inside the bucket; the +Inf bucket reports the highest finite bound. */
    CHECK(fabs(tp_histogram_quantile(h, 0.4) - 0.5) < 1e-9);      /* rank 2 = end of the first bucket */
    CHECK(fabs(tp_histogram_quantile(h, 0.5) - 0.75) < 1e-9);     /* rank 2.5, half into (0.5,1] */
    CHECK(tp_histogram_quantile(h, 1.0) == 2.5);
    CHECK(isnan(tp_histogram_quantile(h, 1.5)));
    tp_metrics_free(m);
}

static void test_labels_and_families(void)
{
    tp_metrics *m = NULL;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    tp_counter *a = tp_metrics_counter(m, "t_rows_total", "Rows.", "warehouse=\"sqlite\"");
    tp_counter *b = tp_metrics_counter(m, "t_rows_total", "ignored", "warehouse=\"clickhouse\"");
    tp_counter *a2 = tp_metrics_counter(m, "t_rows_total", "Rows.", "warehouse=\"sqlite\"");
    CHECK(a && b && a != b);
    CHECK(a == a2); /* same series */
    tp_counter_add(a, 7);
    tp_counter_add(b, 9);

    /* A value with a backslash, a quote and a newline: escaped on output, identical after parsing back. */
    char labels[256];
    CHECK_ERR(tp_metrics_labels(labels, sizeof labels, "path", "C:\\dir \"q\"\nnext", "n", "1", NULL), TP_OK);
    CHECK_STR(labels, "path=\"C:\\\\dir \\\"q\\\"\\nnext\",n=\"1\"");
    tp_gauge *g = tp_metrics_gauge(m, "t_odd", "Odd labels.", labels);
    CHECK(g != NULL);
    tp_gauge_set(g, 1.5);
    /* A raw newline inside the quotes is accepted and escaped the same way. */
    tp_gauge *g2 = tp_metrics_gauge(m, "t_odd", NULL, "path=\"C:\\\\dir \\\"q\\\"\nnext\",n=\"1\"");
    CHECK(g2 == g);

    render_parse(m);
    CHECK_INT(count_named(&P, "t_rows_total"), 2);
    const sample *s = find(&P, "t_rows_total", "warehouse", "sqlite");
    CHECK(s && s->value == 7);
    s = find(&P, "t_rows_total", "warehouse", "clickhouse");
    CHECK(s && s->value == 9);
    CHECK_STR(help_of(&P, "t_rows_total"), "Rows."); /* the first registration's help */
    s = find(&P, "t_odd", "n", "1");
    CHECK(s != NULL);
    if (s) {
        CHECK_STR(label_of(s, "path"), "C:\\dir \"q\"\nnext");
        CHECK(s->value == 1.5);
    }
    /* One HELP/TYPE per family. */
    int types = 0;
    for (int i = 0; i < P.n_types; i++)
        types += !strcmp(P.types[i][0], "t_rows_total");
    CHECK_INT(types, 1);

    /* tp_metrics_labels: overflow leaves an empty string. */
    char small[8];
    CHECK_ERR(tp_metrics_labels(small, sizeof small, "partition", "12345", NULL), TP_ERR_FULL);
    CHECK_STR(small, "");
    CHECK_ERR(tp_metrics_labels(small, sizeof small, "k", "a\"b", NULL), TP_ERR_FULL);
    CHECK_ERR(tp_metrics_labels(small, sizeof small, NULL), TP_OK);
    CHECK_STR(small, "");
    CHECK_ERR(tp_metrics_labels(NULL, 8, NULL), TP_ERR_INVALID_ARG);
    tp_metrics_free(m);
}

static void test_special_values_and_unset(void)
{
    tp_metrics *m = NULL;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    tp_gauge *gi = tp_metrics_gauge(m, "t_inf", "inf", NULL);
    tp_gauge *gn = tp_metrics_gauge(m, "t_nan", "nan", NULL);
    tp_gauge *gs = tp_metrics_gauge(m, "t_small", "small", NULL);
    tp_gauge *gh = tp_metrics_gauge(m, "t_lag", "lag", "partition=\"0\"");
    tp_gauge *gh1 = tp_metrics_gauge(m, "t_lag", "lag", "partition=\"1\"");
    tp_gauge_set(gi, -INFINITY);
    tp_gauge_set(gn, NAN);
    tp_gauge_set(gs, 0.1);
    tp_gauge_set(gh, 5);
    tp_gauge_set(gh1, 6);
    tp_gauge_unset(gh);
    render_parse(m);
    const sample *s = find(&P, "t_inf", NULL, NULL);
    CHECK(s && isinf(s->value) && s->value < 0);
    s = find(&P, "t_nan", NULL, NULL);
    CHECK(s && isnan(s->value));
    s = find(&P, "t_small", NULL, NULL);
    CHECK(s && s->value == 0.1); /* shortest round-tripping form */
    CHECK(find(&P, "t_lag", "partition", "0") == NULL);
    CHECK(find(&P, "t_lag", "partition", "1") != NULL);
    tp_gauge_add(gh, 1); /* a set or add makes it visible again */
    render_parse(m);
    s = find(&P, "t_lag", "partition", "0");
    CHECK(s && s->value == 6);
    tp_metrics_free(m);
}

static double fn_value(void *ud)
{
    return (double)*(int *)ud * 2;
}

typedef struct collect_state {
    int calls;
    int partitions;
} collect_state;

/* A collector that registers one gauge per "assigned partition" at scrape time. */
static void collect(tp_metrics *m, void *ud)
{
    collect_state *st = ud;
    st->calls++;
    for (int p = 0; p < st->partitions; p++) {
        char labels[64], pv[16];
        snprintf(pv, sizeof pv, "%d", p);
        tp_metrics_labels(labels, sizeof labels, "partition", pv, NULL);
        tp_gauge_set(tp_metrics_gauge(m, "t_consumer_lag", "Lag.", labels), 100.0 * p);
    }
}

static void test_callbacks_and_collectors(void)
{
    tp_metrics *m = NULL;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    int v = 21;
    tp_gauge *g = tp_metrics_gauge_fn(m, "t_fn", "Callback.", NULL, fn_value, &v);
    CHECK(g != NULL);
    tp_gauge_set(g, 1000); /* no effect */
    CHECK(tp_gauge_value(g) == 42);
    collect_state st = {0, 3};
    CHECK_ERR(tp_metrics_add_collector(m, collect, &st), TP_OK);
    CHECK_ERR(tp_metrics_add_collector(m, NULL, NULL), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_metrics_add_collector(NULL, collect, &st), TP_ERR_INVALID_ARG);
    render_parse(m);
    CHECK_INT(st.calls, 1);
    const sample *s = find(&P, "t_fn", NULL, NULL);
    CHECK(s && s->value == 42);
    CHECK_INT(count_named(&P, "t_consumer_lag"), 3);
    s = find(&P, "t_consumer_lag", "partition", "2");
    CHECK(s && s->value == 200);
    v = 5;
    st.partitions = 4;
    render_parse(m);
    CHECK_INT(st.calls, 2);
    CHECK_INT(count_named(&P, "t_consumer_lag"), 4);
    s = find(&P, "t_fn", NULL, NULL);
    CHECK(s && s->value == 10);
    CHECK_ERR(tp_metrics_status(m, NULL), TP_OK);
    tp_metrics_free(m);
}

static void expect_error(const char *what, void *handle, tp_metrics *m, const char *needle)
{
    const char *detail = NULL;
    CHECK(handle == NULL);
    CHECK_ERR(tp_metrics_status(m, &detail), TP_ERR_INVALID_ARG);
    CHECK(detail && strstr(detail, needle));
    if (!detail || !strstr(detail, needle))
        fprintf(stderr, "%s: detail \"%s\" lacks \"%s\"\n", what, detail ? detail : "(null)", needle);
}

static void test_errors(void)
{
    struct {
        const char *name, *labels, *needle;
    } bad[] = {
        {"1abc", NULL, "not valid"},
        {"a-b", NULL, "not valid"},
        {"", NULL, "not valid"},
        {"ok", "9x=\"1\"", "start with a letter"},
        {"ok", "__x=\"1\"", "reserved"},
        {"ok", "x=1", "double quotes"},
        {"ok", "x=\"1", "closing quote"},
        {"ok", "x=\"\\t\"", "escape"},
        {"ok", "x=\"1\",x=\"2\"", "twice"},
        {"ok", "x=\"1\" y=\"2\"", "','"},
        {"ok", "x", "'='"},
        {"ok", "a=\"1\",b=\"1\",c=\"1\",d=\"1\",e=\"1\",f=\"1\",g=\"1\",h=\"1\",i=\"1\"", "MAX_LABELS"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tp_metrics *m = NULL;
        CHECK_ERR(tp_metrics_new(&m), TP_OK);
        expect_error(bad[i].name, tp_metrics_counter(m, bad[i].name, "h", bad[i].labels), m, bad[i].needle);
        tp_metrics_free(m);
    }
    /* An over-long labels string. */
    {
        tp_metrics *m = NULL;
        CHECK_ERR(tp_metrics_new(&m), TP_OK);
        char big[TP_METRICS_MAX_LABELS_LEN + 16];
        memset(big, 'a', sizeof big - 1);
        big[0] = 'k';
        big[1] = '=';
        big[2] = '"';
        big[sizeof big - 2] = '"';
        big[sizeof big - 1] = '\0';
        expect_error("long", tp_metrics_gauge(m, "ok", "h", big), m, "longer");
        tp_metrics_free(m);
    }
    /* Type conflict; the first error sticks, and later registrations still work. */
    {
        tp_metrics *m = NULL;
        CHECK_ERR(tp_metrics_new(&m), TP_OK);
        CHECK(tp_metrics_counter(m, "t_x", "h", NULL) != NULL);
        expect_error("conflict", tp_metrics_gauge(m, "t_x", "h", NULL), m, "already registered as a counter");
        CHECK(tp_metrics_counter(m, "t_y", "h", "a=\"b\"") != NULL);
        CHECK(tp_metrics_counter(m, "bad name", "h", NULL) == NULL);
        const char *detail;
        CHECK_ERR(tp_metrics_status(m, &detail), TP_ERR_INVALID_ARG);
        CHECK(strstr(detail, "t_x") != NULL); /* still the first one */
        tp_metrics_free(m);
    }
    /* Histogram-specific errors. */
    {
        double inc[] = {1, 2, 2};
        double nanb[] = {1, NAN};
        double ok[] = {1};
        struct {
            const double *b;
            size_t n;
            const char *labels, *needle;
        } hb[] = {{inc, 3, NULL, "strictly increasing"},
                  {nanb, 2, NULL, "strictly increasing"},
                  {NULL, 0, NULL, "bucket bounds"},
                  {ok, TP_METRICS_MAX_BUCKETS + 1, NULL, "bucket bounds"},
                  {ok, 1, "le=\"1\"", "\"le\""}};
        for (size_t i = 0; i < sizeof hb / sizeof hb[0]; i++) {
            tp_metrics *m = NULL;
            CHECK_ERR(tp_metrics_new(&m), TP_OK);
            expect_error("histogram", tp_metrics_histogram(m, "t_h", "h", hb[i].labels, hb[i].b, hb[i].n), m,
                         hb[i].needle);
            tp_metrics_free(m);
        }
    }
    {
        tp_metrics *m = NULL;
        CHECK_ERR(tp_metrics_new(&m), TP_OK);
        expect_error("fn", tp_metrics_gauge_fn(m, "t_fn", "h", NULL, NULL, NULL), m, "no callback");
        tp_metrics_free(m);
    }
    /* NULL registry / handles. */
    CHECK(tp_metrics_counter(NULL, "x", "h", NULL) == NULL);
    CHECK_ERR(tp_metrics_new(NULL), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_metrics_status(NULL, NULL), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_metrics_render(NULL, NULL, NULL), TP_ERR_INVALID_ARG);
    tp_counter_inc(NULL);
    tp_counter_add(NULL, 3);
    tp_counter_set(NULL, 3);
    tp_gauge_set(NULL, 1);
    tp_gauge_add(NULL, 1);
    tp_gauge_unset(NULL);
    tp_histogram_observe(NULL, 1);
    CHECK_INT(tp_counter_value(NULL), 0);
    CHECK(tp_gauge_value(NULL) == 0);
    CHECK_INT(tp_histogram_count(NULL), 0);
    CHECK(isnan(tp_histogram_quantile(NULL, 0.5)));
    tp_metrics_free(NULL);
}

/* ---- concurrency ---- */

typedef struct worker_arg {
    tp_counter *c;
    tp_gauge *g;
    tp_histogram *h;
    int n;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        tp_counter_inc(a->c);
        tp_gauge_add(a->g, 1.0);
        tp_histogram_observe(a->h, (double)(i % 4)); /* 0,1,2,3: exact sums in binary */
    }
    return NULL;
}

static void *scraper(void *p)
{
    tp_metrics *m = p;
    for (int i = 0; i < 20; i++) {
        char *t = NULL;
        if (tp_metrics_render(m, &t, NULL) == TP_OK)
            free(t);
    }
    return NULL;
}

static void test_concurrency(void)
{
    tp_metrics *m = NULL;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    double b[] = {0.5, 1.5, 2.5};
    worker_arg a = {tp_metrics_counter(m, "t_c_total", "c", NULL), tp_metrics_gauge(m, "t_g", "g", NULL),
                    tp_metrics_histogram(m, "t_h", "h", NULL, b, 3), 200000};
    pthread_t t1, t2, t3;
    pthread_create(&t1, NULL, worker, &a);
    pthread_create(&t2, NULL, worker, &a);
    pthread_create(&t3, NULL, scraper, m);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    pthread_join(t3, NULL);
    CHECK_INT(tp_counter_value(a.c), 400000);
    CHECK(tp_gauge_value(a.g) == 400000.0);
    CHECK_INT(tp_histogram_count(a.h), 400000);
    CHECK(tp_histogram_sum(a.h) == 2.0 * 50000 * (0 + 1 + 2 + 3));
    render_parse(m);
    const sample *s = find(&P, "t_c_total", NULL, NULL);
    CHECK(s && s->value == 400000);
    s = find(&P, "t_h_bucket", "le", "0.5");
    CHECK(s && s->value == 100000);
    s = find(&P, "t_h_bucket", "le", "+Inf");
    CHECK(s && s->value == 400000);
    tp_metrics_free(m);
}

static void test_worker_sets(void)
{
    tp_metrics *m = NULL;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    tp_ingest_metrics im;
    tp_sink_metrics sm;
    CHECK_ERR(tp_ingest_metrics_register(m, &im), TP_OK);
    CHECK_ERR(tp_sink_metrics_register(m, "clickhouse", &sm), TP_OK); /* both in one process, as in the demo */
    CHECK(im.records && im.packs && im.bytes_in && im.bytes_out && im.pack_bytes && im.records_per_pack &&
          im.produce_latency && im.delivery_errors && im.buffered_bytes && im.gateways && im.flush_linger);
    CHECK(sm.rows_loaded && sm.load_latency && sm.retries && sm.dlq && sm.event_time_lag && sm.warehouse_up);
    tp_counter_add(im.records, 10);
    tp_counter_add(sm.rows_loaded, 10);
    tp_counter_inc(im.flush_linger);
    tp_histogram_observe(sm.event_time_lag, 3.0);
    render_parse(m);
    const sample *s = find(&P, TP_M_INGEST_RECORDS, NULL, NULL);
    CHECK(s && s->value == 10);
    s = find(&P, TP_M_SINK_ROWS_LOADED, "warehouse", "clickhouse");
    CHECK(s && s->value == 10);
    s = find(&P, TP_M_INGEST_FLUSHES, "reason", "linger");
    CHECK(s && s->value == 1);
    s = find(&P, TP_M_SINK_EVENT_TIME_LAG "_bucket", "le", "5");
    CHECK(s && s->value == 1);
    CHECK(find(&P, TP_M_BUILD_INFO, "worker", "ingest") != NULL);
    CHECK(find(&P, TP_M_BUILD_INFO, "worker", "sink") != NULL);
    s = find(&P, TP_M_START_TIME, NULL, NULL);
    CHECK(s && s->value > 1.6e9);
    CHECK_STR(type_of(&P, TP_M_SINK_LOAD_LATENCY), "histogram");
    CHECK_STR(type_of(&P, TP_M_INGEST_BUFFERED_BYTES), "gauge");
    CHECK_ERR(tp_sink_metrics_register(m, NULL, &sm), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_ingest_metrics_register(NULL, &im), TP_ERR_INVALID_ARG);
    /* A warehouse name too long for a label is refused. */
    char longname[300];
    memset(longname, 'w', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_ERR(tp_sink_metrics_register(m, longname, &sm), TP_ERR_FULL);
    tp_metrics_free(m);
}

int main(void)
{
    test_basic_render();
    test_labels_and_families();
    test_special_values_and_unset();
    test_callbacks_and_collectors();
    test_errors();
    test_concurrency();
    test_worker_sets();
    return check_exit();
}
