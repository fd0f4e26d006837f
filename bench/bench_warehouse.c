/* Warehouse benchmark: rows/s loaded end to end (serialisation, transport, the warehouse's own work) into SQLite and,
 * when TP_BENCH_CLICKHOUSE_URL (or TP_TEST_CLICKHOUSE_URL) names a server, into ClickHouse as RowBinary.
 * Usage: bench_warehouse [--rows N] [--json FILE]. Prints one line per case; writes the results as JSON. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "warehouse/warehouse.h"
#include "common/clock.h"

/* A fleet of 2000 vehicles sampling every second, rows in arrival order (one vehicle's pack of 100 at a time). */
static tp_row_batch *fleet_rows(size_t n)
{
    tp_row_batch *b = NULL;
    if (tp_row_batch_new(n, &b))
        abort();
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < n; i++) {
        size_t pack = i / 100, k = i % 100;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tp_record r = {
            .vehicle_id = 10000 + pack % 2000,
            .sampled_at_ms = INT64_C(1795000000000) + (int64_t)(pack / 2000 * 100 + k) * 1000,
            .seq = (pack / 2000) * 100 + k,
            .latitude = 40.7 + (double)(x >> 11) * 1e-19,
            .longitude = -74.0 + (double)(x & 0xfffff) * 1e-7,
            .speed_kmh = (float)(x % 1100) / 10.0f,
            .heading_deg = (float)(x % 3600) / 10.0f,
            .accuracy_m = 3.5f,
            .meter_status = (int32_t)(x % 4) + 1,
        };
        if (tp_row_batch_append(b, &r, (int32_t)(pack % 12), (int64_t)pack))
            abort();
    }
    return b;
}

/* Loads `all` in loads of `per_load` rows (one tp_warehouse_load each, as the sink flushes) and returns rows/s. */
static int run(const char *name, const char *url, const char *table, tp_row_batch *all, size_t per_load,
               json_t *results)
{
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.create_table = 1;
    o.table = table;
    tp_warehouse *w = NULL;
    char msg[512];
    if (tp_warehouse_open(url, &o, &w, msg, sizeof msg) || tp_warehouse_ensure_table(w)) {
        fprintf(stderr, "%s: %s\n", name, w ? tp_warehouse_last_error(w) : msg);
        tp_warehouse_close(w);
        return -1;
    }
    /* A view of `all` per load: the columns are arrays, so a window is pointer arithmetic. */
    double t0 = tp_mono_s(), c0 = tp_process_cpu_s();
    for (size_t start = 0; start < all->count; start += per_load) {
        size_t n = all->count - start < per_load ? all->count - start : per_load;
        tp_row_batch v = {
            .count = n, .capacity = n, .vehicle_id = all->vehicle_id + start,
            .sampled_at_ms = all->sampled_at_ms + start, .seq = all->seq + start,
            .latitude = all->latitude + start, .longitude = all->longitude + start,
            .speed_kmh = all->speed_kmh + start, .heading_deg = all->heading_deg + start,
            .accuracy_m = all->accuracy_m + start, .meter_status = all->meter_status + start,
            .kafka_partition = all->kafka_partition + start, .kafka_offset = all->kafka_offset + start,
        };
        tp_partition_offset po = {all->kafka_partition[start + n - 1], all->kafka_offset[start + n - 1] + 1};
        if (tp_warehouse_load(w, &v, "bench", &po, 1)) {
            fprintf(stderr, "%s: %s\n", name, tp_warehouse_last_error(w));
            tp_warehouse_close(w);
            return -1;
        }
    }
    double wall = tp_mono_s() - t0, cpu = tp_process_cpu_s() - c0;
    tp_warehouse_close(w);
    double rate = (double)all->count / wall;
    printf("%-32s %9zu rows  %7zu rows/load  %10.0f rows/s  (this process: %.2f s CPU)\n", name, all->count,
           per_load, rate, cpu);
    json_array_append_new(results, json_pack("{s:s, s:I, s:I, s:f, s:f, s:f}", "case", name, "rows",
                                             (json_int_t)all->count, "rows_per_load", (json_int_t)per_load,
                                             "seconds", wall, "rows_per_s", rate, "client_cpu_s", cpu));
    return 0;
}

int main(int argc, char **argv)
{
    size_t rows = 1000000;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            rows = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--rows N] [--json FILE]\n"
                            "  ClickHouse runs when TP_BENCH_CLICKHOUSE_URL or TP_TEST_CLICKHOUSE_URL is "
                            "http://HOST:PORT\n", argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (rows == 0)
        rows = 1;
    tp_row_batch *all = fleet_rows(rows);
    json_t *results = json_array();

    char dir[] = "/tmp/tp-bench-wh-XXXXXX", url[256], path[128];
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/bench.db", dir);
    snprintf(url, sizeof url, "sqlite:%s", path);
    int failed = run("sqlite (10k rows/load)", url, "bench_positions", all, 10000, results) != 0;
    unlink(path);
    snprintf(url, sizeof url, "sqlite:%s/bench2.db", dir);
    failed |= run("sqlite (100k rows/load)", url, "bench_positions", all, 100000, results) != 0;
    char p2[256];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p2, sizeof p2, "%s/bench2.db%s", dir, suffixes[i]);
        unlink(p2);
        snprintf(p2, sizeof p2, "%s%s", path, suffixes[i]);
        unlink(p2);
    }
    rmdir(dir);

    const char *ch = getenv("TP_BENCH_CLICKHOUSE_URL");
    if (!ch || !ch[0])
        ch = getenv("TP_TEST_CLICKHOUSE_URL");
    if (ch && !strncmp(ch, "http://", 7)) {
        /* Fresh tables per run would need DDL here; the database tp_bench is left for inspection (drop it). */
        char chu[300];
        snprintf(chu, sizeof chu, "clickhouse://%.*s/tp_bench", (int)strcspn(ch + 7, "/"), ch + 7);
        failed |= run("clickhouse RowBinary (100k)", chu, "bench_100k", all, 100000, results) != 0;
        failed |= run("clickhouse RowBinary (1M)", chu, "bench_1m", all, 1000000, results) != 0;
        strcat(chu, "?gzip=1");
        failed |= run("clickhouse RowBinary gzip (100k)", chu, "bench_gzip", all, 100000, results) != 0;
    } else {
        printf("clickhouse: skipped (set TP_BENCH_CLICKHOUSE_URL=http://HOST:PORT)\n");
    }
    if (json_path) {
        json_t *doc = json_pack("{s:s, s:o}", "bench", "warehouse", "results", results);
        json_dump_file(doc, json_path, JSON_INDENT(2));
        json_decref(doc);
    } else {
        json_decref(results);
    }
    tp_row_batch_free(all);
    return failed;
}
