/* Sink throughput benchmark (driven by bench/sink): reads a rows-layout and a columns-layout topic of packs into
 * memory and measures decoding per CPU-second (tp_pack_reader_read_all vs zstd + protobuf-c unpack), then runs
 * `telepack sink` from the start of each topic (fresh group) into each warehouse URL given and measures rows/s from
 * the first decoded record to the last loaded row, and the sink's CPU seconds. JSON to --json, Markdown on stdout.
 * Usage: bench_sink --brokers B --rows-topic T --columns-topic T [--records N] [--telepack PATH --warehouse N=URL ...]
 *                   [--decode-seconds S] [--json FILE] */
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "kafka/pack_headers.h"
#include "telepack/pack.h"
#include "telepack/delimited.h"
#include "vehicle.pb-c.h"
#include "common/clock.h"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_sink: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double loadavg1(void)
{
    double l[3] = {0};
    return getloadavg(l, 3) > 0 ? l[0] : -1;
}

/* ---- the topic in memory ---- */

typedef struct pack {
    uint8_t *data;
    size_t len;
    tp_pack_meta meta;
} pack;

typedef struct topic_data {
    const char *name;
    pack *packs;
    size_t n, cap;
    uint64_t records, bytes;
    tp_layout layout;
} topic_data;

/* Every message of every partition of `topic` from the beginning to the high watermark at start. */
static void read_topic(const char *brokers, topic_data *t)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) ||
        rd_kafka_conf_set(conf, "group.id", "bench-sink-reader", err, sizeof err) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err) ||
        rd_kafka_conf_set(conf, "fetch.max.bytes", "67108864", err, sizeof err) ||
        rd_kafka_conf_set(conf, "max.partition.fetch.bytes", "8388608", err, sizeof err))
        die("librdkafka configuration: %s", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        die("cannot create a consumer: %s", err);
    const rd_kafka_metadata_t *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, t->name, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1 || md->topics[0].err ||
        md->topics[0].partition_cnt == 0)
        die("topic %s is not on %s; run bench/sink to create and fill it", t->name, brokers);
    int np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
    int64_t *high = calloc((size_t)np, sizeof *high);
    int left = 0;
    for (int p = 0; p < np; p++) {
        int64_t lo;
        if (rd_kafka_query_watermark_offsets(rk, t->name, p, &lo, &high[p], 10000))
            die("cannot read the watermarks of %s/%d", t->name, p);
        if (high[p] > lo) {
            rd_kafka_topic_partition_list_add(parts, t->name, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
            left++;
        }
    }
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    while (left > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                die("reading %s: %s", t->name, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_headers_t *h = NULL;
        pack pk = {0};
        if (rd_kafka_message_headers(m, &h) || tp_pack_meta_from_headers(h, &pk.meta, err, sizeof err))
            die("%s/%d@%" PRId64 " is not a pack: %s", t->name, m->partition, m->offset, err);
        pk.len = m->len;
        pk.data = malloc(m->len);
        if (!pk.data)
            die("out of memory");
        memcpy(pk.data, m->payload, m->len);
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 4096;
            t->packs = realloc(t->packs, t->cap * sizeof *t->packs);
            if (!t->packs)
                die("out of memory");
        }
        t->packs[t->n++] = pk;
        t->records += pk.meta.record_count;
        t->bytes += m->len;
        t->layout = pk.meta.layout;
        if (m->offset + 1 >= high[m->partition])
            left--;
        rd_kafka_message_destroy(m);
    }
    free(high);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* ---- decoding in process ---- */

#define DECODE_BATCH 100000 /* rows per batch, as the sink's default --batch-rows */

/* One pass of tp_pack_reader_read_all over every pack; returns records decoded. */
static uint64_t decode_pass(const topic_data *t, tp_pack_reader *r, tp_row_batch *rows)
{
    uint64_t n = 0;
    for (size_t i = 0; i < t->n; i++) {
        const pack *p = &t->packs[i];
        if (rows->capacity - rows->count < p->meta.record_count)
            tp_row_batch_clear(rows);
        size_t before = rows->count;
        tp_err e = tp_pack_reader_open(r, &p->meta, p->data, p->len);
        if (!e)
            e = tp_pack_reader_read_all(r, rows, 0, (int64_t)i);
        if (e)
            die("pack %zu of %s: %s: %s", i, t->name, tp_strerror(e), tp_pack_reader_error_detail(r));
        n += rows->count - before;
    }
    return n;
}

/* One pass of the reference: zstd, then protobuf-c's unpack per record (allocating, as protobuf-c does), copied
 * into the same row batch. Rows-layout packs only (standard delimited protobuf). */
static uint64_t protobuf_c_pass(const topic_data *t, ZSTD_DCtx *dctx, uint8_t *buf, size_t cap, tp_row_batch *rows)
{
    uint64_t n = 0;
    for (size_t i = 0; i < t->n; i++) {
        const pack *p = &t->packs[i];
        size_t clen = ZSTD_decompressDCtx(dctx, buf, cap, p->data, p->len);
        if (ZSTD_isError(clen))
            die("zstd: %s", ZSTD_getErrorName(clen));
        if (rows->capacity - rows->count < p->meta.record_count)
            tp_row_batch_clear(rows);
        size_t pos = 0;
        while (pos < clen) {
            const uint8_t *body;
            size_t len, used;
            if (tp_delimited_split(buf + pos, clen - pos, SIZE_MAX, &body, &len, &used))
                die("pack %zu of %s: bad framing", i, t->name);
            Telepack__V1__VehicleRecord *m = telepack__v1__vehicle_record__unpack(NULL, len, body);
            if (!m)
                die("pack %zu of %s: protobuf-c cannot unpack a record", i, t->name);
            tp_record rec = {.vehicle_id = m->vehicle_id, .sampled_at_ms = m->sampled_at_ms, .seq = m->seq,
                             .latitude = m->latitude, .longitude = m->longitude, .speed_kmh = m->speed_kmh,
                             .heading_deg = m->heading_deg, .accuracy_m = m->accuracy_m,
                             .meter_status = (int32_t)m->meter_status};
            if (tp_row_batch_append(rows, &rec, 0, (int64_t)i))
                die("row batch full");
            telepack__v1__vehicle_record__free_unpacked(m, NULL);
            pos += used;
            n++;
        }
    }
    return n;
}

/* zstd alone: the ceiling of any decoder that reads these packs. */
static uint64_t zstd_pass(const topic_data *t, ZSTD_DCtx *dctx, uint8_t *buf, size_t cap)
{
    uint64_t n = 0;
    for (size_t i = 0; i < t->n; i++) {
        size_t clen = ZSTD_decompressDCtx(dctx, buf, cap, t->packs[i].data, t->packs[i].len);
        if (ZSTD_isError(clen))
            die("zstd: %s", ZSTD_getErrorName(clen));
        n += t->packs[i].meta.record_count;
    }
    return n;
}

typedef struct decode_fig {
    double rps;    /* records per CPU-second */
    double cpu_s;  /* CPU seconds measured */
    uint64_t records;
} decode_fig;

enum { K_READER, K_PROTOBUF_C, K_ZSTD };

/* Repeats one kind of pass until at least `seconds` of this thread's CPU time went into it (one warm-up pass first). */
static decode_fig measure(int kind, const topic_data *t, double seconds)
{
    tp_pack_reader *r;
    tp_row_batch *rows;
    if (tp_pack_reader_new(NULL, &r) || tp_row_batch_new(DECODE_BATCH, &rows))
        die("out of memory");
    size_t cap = TP_DEFAULT_MAX_PACK_BYTES;
    uint8_t *buf = malloc(cap);
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!buf || !dctx)
        die("out of memory");
    decode_fig f = {0};
    for (int pass = 0;; pass++) {
        double c0 = tp_thread_cpu_s();
        uint64_t n = kind == K_READER       ? decode_pass(t, r, rows)
                     : kind == K_PROTOBUF_C ? protobuf_c_pass(t, dctx, buf, cap, rows)
                                            : zstd_pass(t, dctx, buf, cap);
        double c1 = tp_thread_cpu_s();
        if (n != t->records)
            die("%s: decoded %" PRIu64 " records, the headers count %" PRIu64, t->name, n, t->records);
        if (pass == 0)
            continue; /* warm-up: caches, the batch's pages */
        f.records += n;
        f.cpu_s += c1 - c0;
        if (f.cpu_s >= seconds)
            break;
    }
    f.rps = (double)f.records / f.cpu_s;
    ZSTD_freeDCtx(dctx);
    free(buf);
    tp_row_batch_free(rows);
    tp_pack_reader_free(r);
    return f;
}

/* ---- telepack sink in a child process ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len))
        die("cannot find a free port: %s", strerror(errno));
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

typedef struct body {
    char buf[1 << 16];
    size_t len;
} body;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    body *b = ud;
    size_t take = n * size;
    if (take > sizeof b->buf - 1 - b->len)
        take = sizeof b->buf - 1 - b->len;
    memcpy(b->buf + b->len, p, take);
    b->len += take;
    b->buf[b->len] = '\0';
    return n * size;
}

/* The value of the first sample of `name` (with or without labels) in Prometheus text, or -1. */
static double metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; (p = strstr(p, name)); p += n) {
        if ((p != text && p[-1] != '\n') || (p[n] != ' ' && p[n] != '{'))
            continue;
        const char *v = strchr(p, ' ');
        return v ? strtod(v + 1, NULL) : -1;
    }
    return -1;
}

/* utime + stime of pid in seconds from /proc/PID/stat, or -1. */
static double proc_cpu(pid_t pid)
{
    char path[64], line[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    char *p = strrchr(line, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct sink_fig {
    double rows_per_s;     /* rows / (last row loaded - first record decoded), wall */
    double window_s;
    double cpu_window_s;   /* the sink's CPU seconds in that window (/proc/PID/stat) */
    double cpu_total_s;    /* the whole process, start to exit (wait4 rusage) */
    double rows_per_cpu_s;
    double startup_s;      /* exec to first record decoded (group join, warehouse setup) */
    double loadavg;
    uint64_t rows;
    int ok;
} sink_fig;

static sink_fig run_sink(const char *telepack, const char *brokers, const char *topic, const char *warehouse,
                         uint64_t expect, double timeout_s, long flush_ms)
{
    sink_fig f = {0};
    int port = free_port();
    char listen[64], group[128], url[128];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    snprintf(group, sizeof group, "bench-sink-%d-%ld", (int)getpid(), (long)time(NULL));
    char flush[32];
    snprintf(flush, sizeof flush, "%ld", flush_ms);
    char *argv[] = {(char *)telepack, "sink", "--brokers", (char *)brokers, "--topic", (char *)topic, "--group", group,
                    "--warehouse", (char *)warehouse, "--create-table", "--metrics-listen", listen, "--log-level",
                    "warn", "--flush-ms", flush, NULL}; /* a fresh group starts at the earliest offset (the sink's default) */
    double t_exec = tp_mono_s();
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        execv(telepack, argv);
        fprintf(stderr, "bench_sink: cannot run %s: %s\n", telepack, strerror(errno));
        _exit(127);
    }
    CURL *c = curl_easy_init();
    body b;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    double t_first = 0, cpu_first = 0, t_last = 0, cpu_last = 0;
    int status = 0;
    for (;;) {
        struct timespec ts = {0, 10 * 1000 * 1000}; /* 10 ms between polls: 0.5 % of a 2 s window */
        nanosleep(&ts, NULL);
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "bench_sink: telepack sink exited early (status %d)\n", status);
            curl_easy_cleanup(c);
            return f;
        }
        double now = tp_mono_s();
        if (now - t_exec > timeout_s) {
            fprintf(stderr, "bench_sink: %s: not all %" PRIu64 " rows loaded after %.0f s\n", warehouse, expect,
                    timeout_s);
            break;
        }
        b.len = 0;
        b.buf[0] = '\0';
        if (curl_easy_perform(c) != CURLE_OK)
            continue; /* not listening yet */
        double decoded = metric(b.buf, "telepack_sink_records_total");
        double loaded = metric(b.buf, "telepack_sink_rows_loaded_total");
        if (!t_first && decoded > 0) {
            t_first = tp_mono_s();
            cpu_first = proc_cpu(pid);
        }
        if (loaded >= (double)expect) {
            t_last = tp_mono_s();
            cpu_last = proc_cpu(pid);
            f.rows = (uint64_t)loaded;
            f.ok = 1;
            break;
        }
    }
    f.loadavg = loadavg1();
    curl_easy_cleanup(c);
    kill(pid, SIGTERM);
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) == pid) {
        f.cpu_total_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "bench_sink: telepack sink into %s ended with status %d\n", warehouse, status);
    }
    if (f.ok) {
        f.window_s = t_last - t_first;
        f.startup_s = t_first - t_exec;
        f.cpu_window_s = cpu_last - cpu_first;
        f.rows_per_s = (double)f.rows / f.window_s;
        f.rows_per_cpu_s = f.cpu_window_s > 0 ? (double)f.rows / f.cpu_window_s : 0;
    }
    return f;
}

/* ---- main ---- */

#define MAX_WAREHOUSES 8

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: bench_sink --brokers B --rows-topic T --columns-topic T [--telepack PATH]\n"
            "                  [--warehouse NAME=URL]... [--records N] [--decode-seconds S] [--timeout S] [--flush-ms MS]\n"
            "                  [--json FILE]\n"
            "Decode per CPU-second (read_all vs protobuf-c) of both topics, then `telepack sink` from the start of\n"
            "each topic into each warehouse (rows/s first record decoded -> last row loaded, sink CPU seconds).\n"
            "URLs may contain {layout}, replaced by rows or columns (a fresh database or file per run).\n");
}

static char *subst_layout(const char *url, const char *layout)
{
    static char out[1024];
    const char *p = strstr(url, "{layout}");
    if (!p)
        snprintf(out, sizeof out, "%s", url);
    else
        snprintf(out, sizeof out, "%.*s%s%s", (int)(p - url), url, layout, p + 8);
    return out;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *json_path = NULL, *telepack = NULL;
    topic_data topics[2] = {{0}, {0}};
    const char *wh_name[MAX_WAREHOUSES], *wh_url[MAX_WAREHOUSES];
    size_t n_wh = 0;
    double decode_seconds = 2.0, timeout_s = 300;
    uint64_t expect_records = 0; /* 0: whatever the topics hold */
    /* The sink loads a batch at --batch-rows (100000) or --flush-ms after its first row. With the default 1000 ms
     * the tail batch of a drained topic waits up to a second, which the window would count; 100 ms bounds that
     * while leaving full batches alone (the sink decodes 100000 rows in well under 100 ms). */
    long flush_ms = 100;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--brokers"))
            brokers = v;
        else if (!strcmp(a, "--rows-topic"))
            topics[0].name = v;
        else if (!strcmp(a, "--columns-topic"))
            topics[1].name = v;
        else if (!strcmp(a, "--telepack"))
            telepack = v;
        else if (!strcmp(a, "--json"))
            json_path = v;
        else if (!strcmp(a, "--decode-seconds"))
            decode_seconds = atof(v);
        else if (!strcmp(a, "--flush-ms"))
            flush_ms = atol(v);
        else if (!strcmp(a, "--records"))
            expect_records = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--timeout"))
            timeout_s = atof(v);
        else if (!strcmp(a, "--warehouse") && n_wh < MAX_WAREHOUSES && strchr(v, '=')) {
            wh_name[n_wh] = strndup(v, (size_t)(strchr(v, '=') - v));
            wh_url[n_wh++] = strchr(v, '=') + 1;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!brokers || !topics[0].name || !topics[1].name || (n_wh && !telepack) || decode_seconds <= 0 || flush_ms < 1) {
        usage(stderr);
        return 2;
    }
    static const char *const layout_names[] = {"rows", "columns"};
    json_t *doc = json_object();
    json_object_set_new(doc, "benchmark", json_string("sink"));
    json_object_set_new(doc, "cores", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(doc, "sink_flush_ms", json_integer(flush_ms));
    json_object_set_new(doc, "sink_batch_rows", json_integer(100000));
    json_object_set_new(doc, "loadavg_1m_start", json_real(loadavg1()));

    /* 1. The topics into memory. */
    for (int k = 0; k < 2; k++) {
        read_topic(brokers, &topics[k]);
        if ((int)topics[k].layout != k + 1)
            die("topic %s holds %s packs, expected %s", topics[k].name, k ? "rows" : "columns", layout_names[k]);
        if (expect_records && topics[k].records != expect_records)
            die("topic %s holds %" PRIu64 " records, not %" PRIu64 "; delete it (tools/kafka delete-topic) to refill it",
                topics[k].name, topics[k].records, expect_records);
        fprintf(stderr, "bench_sink: %s: %zu packs, %" PRIu64 " records, %.2f B/record\n", topics[k].name,
                topics[k].n, topics[k].records, (double)topics[k].bytes / (double)topics[k].records);
    }

    /* 2. Decoding per CPU-second, the reference in the same run. */
    decode_fig dec[2], pbc, zs[2];
    for (int k = 0; k < 2; k++) {
        dec[k] = measure(K_READER, &topics[k], decode_seconds);
        zs[k] = measure(K_ZSTD, &topics[k], decode_seconds / 2);
    }
    pbc = measure(K_PROTOBUF_C, &topics[0], decode_seconds);
    double load_decode = loadavg1();
    printf("## Decode in process (records per CPU-second, one core; load average %.2f)\n\n", load_decode);
    printf("| layout | packs | records | B/record | read_all rec/s | zstd alone rec/s | protobuf-c rec/s | vs protobuf-c |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    json_t *jdec = json_array();
    for (int k = 0; k < 2; k++) {
        printf("| %s | %zu | %" PRIu64 " | %.2f | %.2f M | %.2f M | %.2f M | %.2fx |\n", layout_names[k],
               topics[k].n, topics[k].records, (double)topics[k].bytes / (double)topics[k].records, dec[k].rps / 1e6,
               zs[k].rps / 1e6, pbc.rps / 1e6, dec[k].rps / pbc.rps);
        json_array_append_new(
            jdec, json_pack("{sssssIsIsfsfsfsfsfsb}", "layout", layout_names[k], "topic", topics[k].name, "packs",
                            (json_int_t)topics[k].n, "records", (json_int_t)topics[k].records, "bytes_per_record",
                            (double)topics[k].bytes / (double)topics[k].records, "read_all_records_per_cpu_s",
                            dec[k].rps, "zstd_only_records_per_cpu_s", zs[k].rps,
                            "protobuf_c_records_per_cpu_s", pbc.rps, "ratio_vs_protobuf_c", dec[k].rps / pbc.rps,
                            "goal_10M_per_core_met", dec[k].rps >= 10e6));
    }
    printf("\nprotobuf-c: the reference, zstd + protobuf-c unpack per record + copy into the row batch, on the rows\n"
           "packs (the same records); zstd alone: decompression only, the ceiling of any decoder of these packs.\n");
    json_object_set_new(doc, "decode", jdec);
    json_object_set_new(doc, "loadavg_1m_after_decode", json_real(load_decode));

    /* 3. telepack sink into each warehouse, both layouts. */
    json_t *jsink = json_array();
    if (n_wh) {
        printf("\n## telepack sink from the start of the topic (fresh group)\n\n");
        printf("| warehouse | layout | rows | rows/s (wall) | window s | sink CPU s (window) | rows per CPU-s "
               "| sink CPU s (process) | startup s | load avg |\n");
        printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        fflush(stdout);
    }
    for (size_t w = 0; w < n_wh; w++) {
        for (int k = 0; k < 2; k++) {
            char url[1024];
            snprintf(url, sizeof url, "%s", subst_layout(wh_url[w], layout_names[k]));
            sink_fig f = run_sink(telepack, brokers, topics[k].name, url, topics[k].records, timeout_s, flush_ms);
            if (!f.ok) {
                printf("| %s | %s | failed | | | | | | | %.2f |\n", wh_name[w], layout_names[k], f.loadavg);
            } else {
                printf("| %s | %s | %" PRIu64 " | %.2f M | %.2f | %.2f | %.2f M | %.2f | %.1f | %.2f |\n", wh_name[w],
                       layout_names[k], f.rows, f.rows_per_s / 1e6, f.window_s, f.cpu_window_s,
                       f.rows_per_cpu_s / 1e6, f.cpu_total_s, f.startup_s, f.loadavg);
            }
            fflush(stdout);
            json_array_append_new(
                jsink, json_pack("{sssssssbsIsfsfsfsfsfsfsf}", "warehouse", wh_name[w], "url", url, "layout",
                                 layout_names[k], "ok", f.ok, "rows", (json_int_t)f.rows, "rows_per_s", f.rows_per_s,
                                 "window_s", f.window_s, "cpu_window_s", f.cpu_window_s, "rows_per_cpu_s",
                                 f.rows_per_cpu_s, "cpu_process_s", f.cpu_total_s, "startup_s", f.startup_s,
                                 "loadavg_1m", f.loadavg));
        }
    }
    json_object_set_new(doc, "sink", jsink);
    json_object_set_new(doc, "loadavg_1m_end", json_real(loadavg1()));
    int rc = 0;
    if (json_path && json_dump_file(doc, json_path, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "bench_sink: cannot write %s\n", json_path);
        rc = 1;
    }
    json_decref(doc);
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < topics[k].n; i++)
            free(topics[k].packs[i].data);
        free(topics[k].packs);
    }
    for (size_t w = 0; w < n_wh; w++)
        free((char *)wh_name[w]);
    return rc;
}
