/* The CLI kit (src/cli/cli_args.c): every parser with valid values, its boundaries, garbage and the exact message;
 * the worker options block; the formatters. */
#include <unistd.h>

#include "check.h"
#include "cli/cli_args.h"

static char msg[256];

#define OK_U64(fn, value, lo, hi, want)                                                                            \
    do {                                                                                                           \
        uint64_t v_ = 0;                                                                                           \
        CHECK_ERR(fn("opt", value, lo, hi, &v_, msg, sizeof msg), TP_OK);                                          \
        CHECK_INT(v_, want);                                                                                       \
    } while (0)

#define BAD_U64(fn, value, lo, hi, want_msg)                                                                       \
    do {                                                                                                           \
        uint64_t v_ = 77;                                                                                          \
        msg[0] = 0;                                                                                                \
        CHECK_ERR(fn("opt", value, lo, hi, &v_, msg, sizeof msg), TP_ERR_PARSE);                                   \
        CHECK_INT(v_, 77);                                                                                         \
        CHECK_STR(msg, want_msg);                                                                                  \
    } while (0)

static void test_u64(void)
{
    OK_U64(tp_cli_parse_u64, "1", 1, 10, 1);
    OK_U64(tp_cli_parse_u64, "10", 1, 10, 10);
    OK_U64(tp_cli_parse_u64, "007", 1, 10, 7);
    OK_U64(tp_cli_parse_u64, "18446744073709551615", 0, UINT64_MAX, UINT64_MAX);
    const char *bad[] = {"0", "11", "", "-1", "+1", " 1", "1 ", "1.0", "1e1", "abc", "0x5", "5K"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char w[128];
        snprintf(w, sizeof w, "--opt '%s' is not a whole number from 1 to 10", bad[i]);
        BAD_U64(tp_cli_parse_u64, bad[i], 1, 10, w);
    }
    BAD_U64(tp_cli_parse_u64, "18446744073709551616", 0, UINT64_MAX,
            "--opt '18446744073709551616' is not a whole number from 0 to 18446744073709551615");
    BAD_U64(tp_cli_parse_u64, NULL, 1, 10, "--opt '' is not a whole number from 1 to 10");
}

static void test_ms(void)
{
    OK_U64(tp_cli_parse_ms, "0", 0, 3600000, 0);
    OK_U64(tp_cli_parse_ms, "3600000", 0, 3600000, 3600000);
    BAD_U64(tp_cli_parse_ms, "3600001", 0, 3600000,
            "--opt '3600001' is not a whole number of milliseconds from 0 to 3600000");
    BAD_U64(tp_cli_parse_ms, "-5", 1, 100, "--opt '-5' is not a whole number of milliseconds from 1 to 100");
    BAD_U64(tp_cli_parse_ms, "1s", 1, 100, "--opt '1s' is not a whole number of milliseconds from 1 to 100");
}

static void test_size(void)
{
    OK_U64(tp_cli_parse_size, "64", 64, 64 << 20, 64);
    OK_U64(tp_cli_parse_size, "256K", 64, 64 << 20, 256 << 10);
    OK_U64(tp_cli_parse_size, "256k", 64, 64 << 20, 256 << 10);
    OK_U64(tp_cli_parse_size, "64M", 64, 64 << 20, 64 << 20);
    OK_U64(tp_cli_parse_size, "1G", 1, 1ull << 40, 1ull << 30);
    OK_U64(tp_cli_parse_size, "1024g", 1, 1ull << 40, 1ull << 40);
    const char *tail = " is not a size from 64 to 64M (bytes, or K, M, G: powers of 1024)";
    const char *bad[] = {"63", "65M", "67108865", "", "K", "-1K", "1.5M", "1KB", "1T", "1 K", "x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char w[160];
        snprintf(w, sizeof w, "--opt '%s'%s", bad[i], tail);
        BAD_U64(tp_cli_parse_size, bad[i], 64, 64 << 20, w);
    }
    /* overflow of the multiplication */
    BAD_U64(tp_cli_parse_size, "18014398509481984K", 1, UINT64_MAX,
            "--opt '18014398509481984K' is not a size from 1 to 18446744073709551615 (bytes, or K, M, G: powers of 1024)");
    BAD_U64(tp_cli_parse_size, "1M", 1024, 1000000,
            "--opt '1M' is not a size from 1K to 1000000 (bytes, or K, M, G: powers of 1024)");
}

static void test_double(void)
{
    double d = 0;
    CHECK_ERR(tp_cli_parse_double("rate", "0.5", 0, 1, &d, msg, sizeof msg), TP_OK);
    CHECK(d == 0.5);
    CHECK_ERR(tp_cli_parse_double("rate", "1e-6", 0, 1, &d, msg, sizeof msg), TP_OK);
    CHECK(d == 1e-6);
    CHECK_ERR(tp_cli_parse_double("rate", "1", 0, 1, &d, msg, sizeof msg), TP_OK);
    const char *bad[] = {"1.01", "-0.1", "", "nan", "inf", "1e999", "0.5x", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char w[128];
        snprintf(w, sizeof w, "--rate '%s' is not a number from 0 to 1", bad[i]);
        CHECK_ERR(tp_cli_parse_double("rate", bad[i], 0, 1, &d, msg, sizeof msg), TP_ERR_PARSE);
        CHECK_STR(msg, w);
    }
}

static void test_list(void)
{
    uint64_t v[4];
    size_t n = 0;
    CHECK_ERR(tp_cli_parse_list("batch", "10,50,200", 1, 1000, v, 4, &n, msg, sizeof msg), TP_OK);
    CHECK_INT(n, 3);
    CHECK(v[0] == 10 && v[1] == 50 && v[2] == 200);
    CHECK_ERR(tp_cli_parse_list("batch", "1000", 1, 1000, v, 4, &n, msg, sizeof msg), TP_OK);
    CHECK_INT(n, 1);
    CHECK_ERR(tp_cli_parse_list("batch", "1,1,1,1", 1, 1000, v, 4, &n, msg, sizeof msg), TP_OK);
    CHECK_INT(n, 4);
    const char *bad[] = {"", ",", "10,", ",10", "10,,20", "0", "1001", "1,2,3,4,5", "a", "1;2", "1, 2", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char w[160];
        snprintf(w, sizeof w, "--batch '%s' is not a comma-separated list of 1 to 4 whole numbers from 1 to 1000",
                 bad[i]);
        n = 9;
        CHECK_ERR(tp_cli_parse_list("batch", bad[i], 1, 1000, v, 4, &n, msg, sizeof msg), TP_ERR_PARSE);
        CHECK_STR(msg, w);
        CHECK_INT(n, 9);
    }
}

static void test_choice(void)
{
    static const char *const words[] = {"rows", "columns", NULL};
    static const char *const three[] = {"a", "b", "c", NULL};
    int i = -1;
    CHECK_ERR(tp_cli_parse_choice("layout", "columns", words, &i, msg, sizeof msg), TP_OK);
    CHECK_INT(i, 1);
    CHECK_ERR(tp_cli_parse_choice("layout", "Rows", words, &i, msg, sizeof msg), TP_ERR_PARSE);
    CHECK_STR(msg, "--layout 'Rows' is not one of rows or columns");
    CHECK_ERR(tp_cli_parse_choice("x", "", three, &i, msg, sizeof msg), TP_ERR_PARSE);
    CHECK_STR(msg, "--x '' is not one of a, b or c");
    /* --layout of the built-in record: coded is columns with coded columns */
    tp_layout layout = 0;
    int coded = -1;
    CHECK_ERR(tp_cli_parse_layout("coded", &layout, &coded, msg, sizeof msg), TP_OK);
    CHECK(layout == TP_LAYOUT_COLUMNS && coded == 1);
    CHECK_ERR(tp_cli_parse_layout("rows", &layout, &coded, msg, sizeof msg), TP_OK);
    CHECK(layout == TP_LAYOUT_ROWS && coded == 0);
    CHECK_ERR(tp_cli_parse_layout("columns", &layout, &coded, msg, sizeof msg), TP_OK);
    CHECK(layout == TP_LAYOUT_COLUMNS && coded == 0);
    CHECK_ERR(tp_cli_parse_layout("coded ", &layout, &coded, msg, sizeof msg), TP_ERR_PARSE);
    CHECK_STR(msg, "--layout 'coded ' is not one of rows, columns or coded");
}

static void test_worker(void)
{
    tp_cli_worker w;
    tp_err e;
    CHECK_ERR(tp_cli_worker_init(&w, 4), TP_OK);
    CHECK_INT(w.log_level, TP_LOG_INFO);
    CHECK_INT(w.log_format, TP_LOG_TEXT);
    CHECK(w.metrics_listen == NULL);
    CHECK_INT(tp_cli_worker_option(&w, 'X', "linger.ms=5", &e, msg, sizeof msg), 1);
    CHECK_ERR(e, TP_OK);
    CHECK_INT(tp_cli_worker_option(&w, 'X', "acks=1", &e, msg, sizeof msg), 1);
    CHECK_INT(w.n_kafka_props, 2);
    CHECK_STR(w.kafka_props[1], "acks=1");
    CHECK(w.kafka_props[2] == NULL);
    CHECK_INT(tp_cli_worker_option(&w, TP_CLI_O_LOG_LEVEL, "warn", &e, msg, sizeof msg), 1);
    CHECK_INT(w.log_level, TP_LOG_WARN);
    CHECK_INT(tp_cli_worker_option(&w, TP_CLI_O_LOG_LEVEL, "loud", &e, msg, sizeof msg), 1);
    CHECK_ERR(e, TP_ERR_PARSE);
    CHECK_STR(msg, "--log-level 'loud' is not one of debug, info, warn or error");
    CHECK_INT(w.log_level, TP_LOG_WARN);
    CHECK_INT(tp_cli_worker_option(&w, TP_CLI_O_LOG_FORMAT, "json", &e, msg, sizeof msg), 1);
    CHECK_INT(w.log_format, TP_LOG_JSON);
    CHECK_INT(tp_cli_worker_option(&w, TP_CLI_O_LOG_FORMAT, "xml", &e, msg, sizeof msg), 1);
    CHECK_STR(msg, "--log-format 'xml' is not one of text or json");
    CHECK_INT(tp_cli_worker_option(&w, TP_CLI_O_METRICS_LISTEN, "[::1]:9464", &e, msg, sizeof msg), 1);
    CHECK_ERR(e, TP_OK);
    CHECK_STR(w.metrics_listen, "[::1]:9464");
    CHECK_INT(tp_cli_worker_option(&w, TP_CLI_O_METRICS_LISTEN, "::1:9464", &e, msg, sizeof msg), 1);
    CHECK_ERR(e, TP_ERR_PARSE);
    CHECK_STR(msg, "--metrics-listen '::1:9464' is ambiguous: write an IPv6 address in brackets, e.g. [::1]:9464");
    CHECK_INT(tp_cli_worker_option(&w, TP_CLI_O_METRICS_LISTEN, "nonsense", &e, msg, sizeof msg), 1);
    CHECK_STR(msg, "--metrics-listen 'nonsense' has no port: give HOST:PORT (e.g. 127.0.0.1:7070, or :7070 for all "
                   "interfaces)");
    CHECK_STR(w.metrics_listen, "[::1]:9464");
    CHECK_INT(tp_cli_worker_option(&w, 'h', NULL, &e, msg, sizeof msg), 0); /* not a worker option */
    tp_cli_worker_free(&w);
}

/* --kafka-config: key=value lines go before every -X (so -X wins), comments and blanks skipped, spaces trimmed;
 * a bad line or a missing file is an error naming the file and line but never a value. */
static void test_kafka_config(void)
{
    char path[] = "/tmp/tp-test-kafka-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("# SASL settings\n\n  security.protocol = SASL_SSL\nsasl.password=s3cr=t with spaces \r\nacks=all\n", f);
    fclose(f);
    tp_cli_worker w;
    tp_err e;
    CHECK_ERR(tp_cli_worker_init(&w, 1), TP_OK); /* room for one -X only: the file's lines must grow the array */
    CHECK_INT(tp_cli_worker_option(&w, 'X', "acks=1", &e, msg, sizeof msg), 1);
    CHECK_INT(tp_cli_worker_option(&w, TP_CLI_O_KAFKA_CONFIG, path, &e, msg, sizeof msg), 1);
    CHECK_ERR(e, TP_OK);
    CHECK_INT(tp_cli_worker_option(&w, 'X', "linger.ms=5", &e, msg, sizeof msg), 1);
    CHECK_INT(w.n_kafka_props, 5);
    CHECK_STR(w.kafka_props[0], "security.protocol=SASL_SSL");
    CHECK_STR(w.kafka_props[1], "sasl.password=s3cr=t with spaces ");
    CHECK_STR(w.kafka_props[2], "acks=all");
    CHECK_STR(w.kafka_props[3], "acks=1"); /* -X after the file's acks=all: librdkafka keeps the last */
    CHECK_STR(w.kafka_props[4], "linger.ms=5");

    f = fopen(path, "w");
    fputs("ok=1\nsasl.password\n", f);
    fclose(f);
    CHECK_INT(tp_cli_worker_option(&w, TP_CLI_O_KAFKA_CONFIG, path, &e, msg, sizeof msg), 1);
    CHECK_ERR(e, TP_ERR_PARSE);
    CHECK(strstr(msg, "line 2 is not key=value") != NULL);
    f = fopen(path, "w");
    fputs("=value-without-key\n", f);
    fclose(f);
    CHECK_INT(tp_cli_worker_option(&w, TP_CLI_O_KAFKA_CONFIG, path, &e, msg, sizeof msg), 1);
    CHECK_ERR(e, TP_ERR_PARSE);
    CHECK(strstr(msg, "line 1 is not key=value") != NULL && strstr(msg, "value-without-key") == NULL);
    unlink(path);
    CHECK_INT(tp_cli_worker_option(&w, TP_CLI_O_KAFKA_CONFIG, path, &e, msg, sizeof msg), 1);
    CHECK_ERR(e, TP_ERR_PARSE);
    CHECK(strstr(msg, "cannot be read") != NULL);
    tp_cli_worker_free(&w);
}

static void test_formatters(void)
{
    char b[32];
    CHECK_STR(tp_cli_bytes(0, b, sizeof b), "0 B");
    CHECK_STR(tp_cli_bytes(1023, b, sizeof b), "1023 B");
    CHECK_STR(tp_cli_bytes(1024, b, sizeof b), "1.0 KiB");
    CHECK_STR(tp_cli_bytes(1536ull << 10, b, sizeof b), "1.5 MiB");
    CHECK_STR(tp_cli_bytes(2ull << 30, b, sizeof b), "2.0 GiB");
    CHECK_STR(tp_cli_bytes(5ull << 50, b, sizeof b), "5120.0 TiB");
    CHECK_STR(tp_cli_count(0, b, sizeof b), "0");
    CHECK_STR(tp_cli_count(999, b, sizeof b), "999");
    CHECK_STR(tp_cli_count(1000, b, sizeof b), "1.0K");
    CHECK_STR(tp_cli_count(23400, b, sizeof b), "23.4K");
    CHECK_STR(tp_cli_count(1.5e6, b, sizeof b), "1.5M");
}

int main(void)
{
    test_u64();
    test_ms();
    test_size();
    test_double();
    test_list();
    test_choice();
    test_worker();
    test_kafka_config();
    test_formatters();
    return check_exit();
}
