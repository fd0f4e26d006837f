/* Keeps docs/OPERATIONS.md and tools/grafana-dashboard.json in step with the code: every metric family the workers
 * export (both worker sets plus the librdkafka statistics of a producer and a consumer) is documented, every
 * telepack_* name the docs or the dashboard use exists, and the dashboard is valid JSON. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ingest/http_ingest.h"
#include "kafka/kafka_stats.h"
#include "ops/metrics.h"
#include "ops/worker_metrics.h"

#define MAX_FAMILIES 256

static char families[MAX_FAMILIES][96];
static char types[MAX_FAMILIES][16];
static int n_families;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[n] = '\0';
    fclose(f);
    return b;
}

static int family_index(const char *name)
{
    for (int i = 0; i < n_families; i++)
        if (!strcmp(families[i], name))
            return i;
    return -1;
}

/* Whether `name` (as written in a query: maybe with _bucket/_sum/_count) is an exported series. */
static int known(const char *name)
{
    if (family_index(name) >= 0)
        return 1;
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (int s = 0; s < 3; s++) {
        size_t n = strlen(name), k = strlen(suffixes[s]);
        if (n > k && !strcmp(name + n - k, suffixes[s])) {
            char base[96];
            snprintf(base, sizeof base, "%.*s", (int)(n - k), name);
            int i = family_index(base);
            if (i >= 0 && !strcmp(types[i], "histogram"))
                return 1;
        }
    }
    return 0;
}

/* Checks every telepack_[a-z0-9_]+ token of text is known; returns the number of tokens seen. */
static int check_names(const char *what, const char *text)
{
    int seen = 0;
    for (const char *p = text; (p = strstr(p, "telepack_"));) {
        if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) {
            p++;
            continue;
        }
        size_t n = 0;
        while (islower((unsigned char)p[n]) || isdigit((unsigned char)p[n]) || p[n] == '_')
            n++;
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        p += n;
        if (!strcmp(name, "telepack_") || !strncmp(name, "telepack_test", 13))
            continue;
        seen++;
        if (!known(name)) {
            check_failures++;
            fprintf(stderr, "%s names %s, which no worker exports\n", what, name);
        }
        check_count++;
    }
    return seen;
}

static void collect_families(const char *data_dir)
{
    tp_metrics *m = NULL;
    CHECK_ERR(tp_metrics_new(&m), TP_OK);
    tp_ingest_metrics im;
    tp_sink_metrics sm;
    CHECK_ERR(tp_ingest_metrics_register(m, &im), TP_OK);
    CHECK_ERR(tp_sink_metrics_register(m, "sqlite", &sm), TP_OK);
    CHECK_ERR(tp_http_ingest_metrics_register(m), TP_OK);
    tp_kafka_stats_exporter *e = NULL;
    CHECK_ERR(tp_kafka_stats_exporter_new(m, &e), TP_OK);
    const char *samples[] = {"rdkafka_stats_producer.json", "rdkafka_stats_consumer.json"};
    for (int i = 0; i < 2; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", data_dir, samples[i]);
        char *json = slurp(path);
        CHECK(json != NULL);
        if (json)
            CHECK_ERR(tp_kafka_stats_exporter_update(e, json, strlen(json)), TP_OK);
        free(json);
    }
    char *text = NULL;
    CHECK_ERR(tp_metrics_render(m, &text, NULL), TP_OK);
    for (const char *p = text; p && (p = strstr(p, "# TYPE ")); p++) {
        if (n_families == MAX_FAMILIES)
            break;
        sscanf(p + 7, "%95s %15s", families[n_families], types[n_families]);
        n_families++;
    }
    free(text);
    tp_kafka_stats_exporter_free(e);
    tp_metrics_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_ops_docs SOURCE_ROOT\n");
        return 2;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/support/data", argv[1]);
    collect_families(path);
    CHECK(n_families > 50);

    snprintf(path, sizeof path, "%s/docs/OPERATIONS.md", argv[1]);
    char *doc = slurp(path);
    CHECK(doc != NULL);
    if (doc) {
        CHECK(check_names("docs/OPERATIONS.md", doc) > 50);
        for (int i = 0; i < n_families; i++) {
            char quoted[112];
            snprintf(quoted, sizeof quoted, "`%s`", families[i]);
            CHECK(strstr(doc, quoted) != NULL);
            if (!strstr(doc, quoted))
                fprintf(stderr, "docs/OPERATIONS.md does not document %s\n", families[i]);
        }
    }
    free(doc);

    snprintf(path, sizeof path, "%s/tools/grafana-dashboard.json", argv[1]);
    json_error_t err;
    json_t *dash = json_load_file(path, 0, &err);
    CHECK(dash != NULL);
    if (!dash)
        fprintf(stderr, "%s: line %d: %s\n", path, err.line, err.text);
    CHECK(json_is_array(json_object_get(dash, "panels")));
    int exprs = 0;
    size_t i;
    json_t *panel;
    json_array_foreach(json_object_get(dash, "panels"), i, panel)
    {
        size_t j;
        json_t *target;
        json_array_foreach(json_object_get(panel, "targets"), j, target)
        {
            const char *expr = json_string_value(json_object_get(target, "expr"));
            CHECK(expr != NULL);
            if (expr)
                exprs += check_names("tools/grafana-dashboard.json", expr) > 0;
        }
    }
    CHECK(exprs > 30);
    json_decref(dash);
    return check_exit();
}
