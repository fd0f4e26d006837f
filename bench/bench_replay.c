/* The ingest process per core (JSON on stdout): a replay as `telepack ingest --from FILE` runs it — a feeder thread
 * reading a delimited file into a gateway client on a socket pair, the worker's network thread (gateway parse,
 * batcher), its compression threads (pack writer) and the librdkafka producer — into librdkafka's in-process mock
 * cluster. Reports records per CPU-second of the whole process with the mock cluster's own threads left out (they
 * stand in for the broker, which bench/e2e bills separately), and the CPU per thread.
 *
 *   bench_replay [--from FILE] [--vehicles N] [--seconds S] [--partitions P] [--threads T] [--reps R]
 *
 * Without --from the records are `telepack gen --vehicles 2000 --seconds 500 --drop-rate 0` (bench/e2e's
 * throughput data), generated in memory before timing starts. */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "ingest/gateway_client.h"
#include "ingest/ingest.h"
#include "sim/fleet.h"
#include "telepack/delimited.h"
#include "telepack/pack.h"

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* Per-thread CPU (ns from /proc/self/task/TID/schedstat) by thread name, summed over threads of the same name. */
#define MAXT 64
typedef struct tcpu {
    char name[32];
    double s;
} tcpu;

static size_t threads_cpu(tcpu *t, size_t cap)
{
    DIR *d = opendir("/proc/self/task");
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[300], name[32] = "?";
        unsigned long long ns = 0;
        snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(p, "r");
        if (f) {
            if (fgets(name, sizeof name, f))
                name[strcspn(name, "\n")] = 0;
            fclose(f);
        }
        snprintf(p, sizeof p, "/proc/self/task/%s/schedstat", e->d_name);
        f = fopen(p, "r");
        if (f) {
            if (fscanf(f, "%llu", &ns) != 1)
                ns = 0;
            fclose(f);
        }
        size_t i = 0;
        while (i < n && strcmp(t[i].name, name))
            i++;
        if (i == n) {
            if (n == cap)
                continue;
            snprintf(t[n].name, sizeof t[n].name, "%s", name);
            t[n++].s = 0;
        }
        t[i].s += (double)ns / 1e9;
    }
    if (d)
        closedir(d);
    return n;
}

static double named(const tcpu *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return t[i].s;
    return 0;
}

/* librdkafka's in-process cluster: its thread is named "rdk:mock" or alike, its brokers' "rdk:mockbroker". */
static int is_mock(const char *name)
{
    return strstr(name, "mock") != NULL;
}

typedef struct feeder {
    const uint8_t *data;
    size_t len;
    int fd;
    size_t window;
    uint64_t records;
    int status;
    double cpu_s; /* the feeder thread's own CPU (it exits before the measurement ends) */
} feeder;

static void *feeder_main(void *arg)
{
    feeder *f = arg;
    FILE *in = fmemopen((void *)f->data, f->len, "rb");
    tp_gateway_client_opts co;
    tp_gateway_client_opts_init(&co);
    co.fd = f->fd;
    co.max_unacked_bytes = f->window;
    co.protocol = 1; /* as `telepack ingest --from`: a local replay */
    tp_gateway_client *c = NULL;
    tp_delimited_reader_opts ro;
    tp_delimited_reader_opts_init(&ro);
    ro.file = in;
    tp_delimited_reader *rd = NULL;
    if (!in || tp_gateway_client_new(&co, &c) || tp_delimited_reader_new(&ro, &rd)) {
        f->status = 1;
    } else {
        const uint8_t *msg;
        size_t len;
        tp_err e;
        while ((e = tp_delimited_reader_next(rd, &msg, &len)) == TP_OK) {
            if (tp_gateway_client_send_encoded(c, msg, len)) {
                f->status = 1;
                break;
            }
            f->records++;
        }
        if (!f->status && tp_gateway_client_drain(c, -1))
            f->status = 1;
    }
    tp_delimited_reader_free(rd);
    tp_gateway_client_free(c);
    if (in)
        fclose(in);
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    f->cpu_s = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    return NULL;
}

/* The records as `telepack gen --format delimited` writes them. */
static uint8_t *make_delimited(uint32_t vehicles, uint32_t seconds, size_t *len, uint64_t *n)
{
    tp_fleet_opts fo;
    tp_fleet_opts_init(&fo);
    fo.vehicles = vehicles;
    fo.seconds = seconds;
    fo.drop_rate = 0;
    tp_fleet *fl;
    if (tp_fleet_new(&fo, &fl))
        return NULL;
    size_t cap = ((size_t)vehicles * seconds + 16) * 64, k = 0;
    uint8_t *buf = malloc(cap);
    tp_record r;
    *n = 0;
    while (buf && tp_fleet_next(fl, &r) == TP_OK) {
        uint8_t tmp[TP_RECORD_MAX_ENCODED];
        size_t l;
        if (tp_record_encode(&r, tmp, sizeof tmp, &l) || k + l + 10 > cap)
            break;
        size_t v = l;
        while (v >= 0x80) {
            buf[k++] = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        buf[k++] = (uint8_t)v;
        memcpy(buf + k, tmp, l);
        k += l;
        (*n)++;
    }
    tp_fleet_free(fl);
    *len = k;
    return buf;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, k = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + k, 1, cap - k, f)) > 0) {
        k += got;
        if (k == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    *len = k;
    return buf;
}

/* One replay. Returns 0 on success and fills the results. */
static int run(const uint8_t *data, size_t len, int partitions, int threads, int first, int rep)
{
    char err[512];
    tp_ingest_opts o;
    tp_ingest_opts_init(&o);
    o.topic = "bench";
    if (threads > 0)
        o.threads = threads;
    const char *kconf[] = {"test.mock.num.brokers=1", "log_level=2"};
    o.kafka_conf = kconf;
    o.nkafka_conf = 2;
    tp_ingest *ing;
    if (tp_ingest_new(&o, &ing, err, sizeof err) != TP_OK) {
        fprintf(stderr, "bench_replay: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(tp_ingest_kafka_handle(ing));
    if (!mc || rd_kafka_mock_topic_create(mc, "bench", partitions, 1)) {
        fprintf(stderr, "bench_replay: cannot create the mock cluster's topic\n");
        tp_ingest_free(ing);
        return 1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || tp_ingest_start(ing) != TP_OK) {
        tp_ingest_free(ing);
        return 1;
    }
    usleep(200000); /* start-up (metadata, mock connections) is not what is measured */
    tcpu t0[MAXT], t1[MAXT];
    size_t n0 = threads_cpu(t0, MAXT);
    double c0 = cpu_s(), w0 = tp_mono_s();
    feeder f = {.data = data, .len = len, .fd = sv[1], .window = tp_gateway_window(o.batch.max_buffered_bytes / 4)};
    tp_ingest_add_fd(ing, sv[0]);
    pthread_t th;
    if (pthread_create(&th, NULL, feeder_main, &f) != 0) {
        tp_ingest_free(ing);
        return 1;
    }
    pthread_join(th, NULL); /* every record acked: in a pack the mock cluster acknowledged */
    double wall = tp_mono_s() - w0, cpu = cpu_s() - c0;
    size_t n1 = threads_cpu(t1, MAXT);
    tp_ingest_stats st;
    tp_ingest_stats_get(ing, &st);
    double mock = 0;
    for (size_t i = 0; i < n1; i++)
        if (is_mock(t1[i].name))
            mock += t1[i].s - named(t0, n0, t1[i].name);
    double own = cpu - mock;
    printf("%s    {\"rep\": %d, \"records\": %" PRIu64 ", \"packs\": %" PRIu64 ", \"pack_bytes\": %" PRIu64
           ", \"wall_s\": %.3f, \"process_cpu_s\": %.3f, \"mock_cluster_cpu_s\": %.3f, \"cpu_s\": %.3f, "
           "\"records_per_cpu_s\": %.0f, \"records_per_s\": %.0f, \"threads_cpu_s\": {\"feeder\": %.3f",
           first ? "" : ",\n", rep, f.records, st.packs_out, st.pack_bytes_out, wall, cpu, mock, own,
           own > 0 ? (double)f.records / own : 0, wall > 0 ? (double)f.records / wall : 0, f.cpu_s);
    for (size_t i = 0; i < n1; i++)
        printf(", \"%s\": %.3f", t1[i].name, t1[i].s - named(t0, n0, t1[i].name));
    printf("}}");
    fflush(stdout);
    tp_ingest_stop(ing, 10000);
    tp_ingest_free(ing);
    return f.status || f.records != st.records_acked;
}

int main(int argc, char **argv)
{
    const char *from = NULL;
    uint32_t vehicles = 2000, seconds = 500;
    int partitions = 8, threads = 0, reps = 3;
    static const struct option lo[] = {{"from", required_argument, 0, 'f'},     {"vehicles", required_argument, 0, 'v'},
                                       {"seconds", required_argument, 0, 's'},  {"partitions", required_argument, 0, 'p'},
                                       {"threads", required_argument, 0, 't'},  {"reps", required_argument, 0, 'r'},
                                       {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'f': from = optarg; break;
        case 'v': vehicles = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 's': seconds = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'p': partitions = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'r': reps = atoi(optarg); break;
        default:
            printf("usage: bench_replay [--from FILE] [--vehicles N] [--seconds S] [--partitions P] [--threads T] "
                   "[--reps R]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    size_t len = 0;
    uint64_t n = 0;
    uint8_t *data = from ? read_file(from, &len) : make_delimited(vehicles, seconds, &len, &n);
    if (!data || partitions < 1 || reps < 1) {
        fprintf(stderr, "bench_replay: no input (--from %s)\n", from ? from : "(generated)");
        return 2;
    }
    printf("{\n  \"benchmark\": \"ingest_replay\",\n  \"input\": \"%s\",\n  \"input_bytes\": %zu,\n"
           "  \"partitions\": %d,\n  \"compression_threads\": %d,\n  \"runs\": [\n",
           from ? from : "generated", len, partitions, threads);
    int bad = 0;
    for (int r = 0; r < reps; r++)
        bad |= run(data, len, partitions, threads, r == 0, r + 1);
    printf("\n  ]\n}\n");
    free(data);
    return bad;
}
