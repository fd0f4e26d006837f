/* Tests of the process logger's JSON lines (each line must be one valid JSON object, whatever the message holds)
 * and of the librdkafka log adapter (level mapping, lines from a real rd_kafka_t). */
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/log.h"
#include "kafka/log_rdkafka.h"

static FILE *capture;
static int saved_stderr = -1;

/* Sends fd 2 to a temporary file until end_capture(). */
static void begin_capture(void)
{
    fflush(stderr);
    capture = tmpfile();
    saved_stderr = dup(2);
    dup2(fileno(capture), 2);
}

/* Restores stderr; returns everything logged since begin_capture (malloc'd). */
static char *end_capture(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    long n = ftell(capture);
    char *buf = malloc((size_t)n + 1);
    rewind(capture);
    size_t got = fread(buf, 1, (size_t)n, capture);
    buf[got] = '\0';
    fclose(capture);
    return buf;
}

typedef struct line_info {
    int lines, bad;
    int kafka_lines;
} line_info;

/* Parses every line as a JSON object with ts, level, component, msg; fills in counts. */
static void check_lines(const char *text, line_info *li)
{
    memset(li, 0, sizeof *li);
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        json_error_t err;
        json_t *o = json_loadb(p, len, 0, &err);
        li->lines++;
        if (!o || !json_is_object(o) || !json_is_string(json_object_get(o, "ts")) ||
            !json_is_string(json_object_get(o, "level")) || !json_is_string(json_object_get(o, "component")) ||
            !json_is_string(json_object_get(o, "msg"))) {
            li->bad++;
            fprintf(stdout, "not a valid JSON log line (%s): %.*s\n", o ? "fields" : err.text, (int)len, p);
        } else if (!strcmp(json_string_value(json_object_get(o, "component")), "kafka")) {
            li->kafka_lines++;
        }
        json_decref(o);
        if (!eol)
            break;
        p = eol + 1;
    }
}

/* The "msg" of the JSON log line number `n` (0-based), malloc'd, or NULL. */
static char *msg_of_line(const char *text, int n)
{
    const char *p = text;
    for (int i = 0; i < n && p; i++) {
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    if (!p)
        return NULL;
    const char *eol = strchr(p, '\n');
    json_error_t err;
    json_t *o = json_loadb(p, eol ? (size_t)(eol - p) : strlen(p), 0, &err);
    const char *m = json_string_value(json_object_get(o, "msg"));
    char *r = m ? strdup(m) : NULL;
    json_decref(o);
    return r;
}

static void test_json_lines(void)
{
    tp_log_configure(TP_LOG_DEBUG, TP_LOG_JSON);
    begin_capture();
    tp_log(TP_LOG_INFO, "ingest", "plain message %d", 42);                            /* 0 */
    tp_log(TP_LOG_WARN, "sink", "quotes \" backslash \\ newline \n tab \t cr \r bell \a"); /* 1 */
    tp_log(TP_LOG_ERROR, "comp\"onent", "utf-8: h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x9a\x97");  /* 2 */
    tp_log(TP_LOG_INFO, "ingest", "invalid utf-8: \xff\xfe \xc3 \xe2\x82 \xc0\xaf \xed\xa0\x80 end"); /* 3 */
    char big[5000];
    size_t o = 0;
    while (o + 2 < sizeof big - 1) { /* 2-byte characters: truncation at 2047 bytes splits one */
        big[o++] = '\xc3';
        big[o++] = '\xa9';
    }
    big[o] = '\0';
    tp_log(TP_LOG_INFO, "ingest", "%s", big); /* 4: 2047 bytes kept, the last character split */
    tp_log(TP_LOG_DEBUG, "ingest", "del \x7f and ctrl \x01\x1f");  /* 5 */
    tp_log_rdkafka_cb(NULL, 3, "FAIL", "127.0.0.1:1/bootstrap: Connect failed: \"refused\""); /* 6 */
    char *text = end_capture();
    line_info li;
    check_lines(text, &li);
    CHECK_INT(li.lines, 7);
    CHECK_INT(li.bad, 0);
    CHECK_INT(li.kafka_lines, 1);
    char *m = msg_of_line(text, 1);
    CHECK_STR(m, "quotes \" backslash \\ newline \n tab \t cr \r bell \a");
    free(m);
    m = msg_of_line(text, 2);
    CHECK_STR(m, "utf-8: h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x9a\x97"); /* valid UTF-8 passes unchanged */
    free(m);
    m = msg_of_line(text, 3);
    CHECK(m && strstr(m, "\xef\xbf\xbd") && strstr(m, " end")); /* invalid bytes become U+FFFD */
    free(m);
    m = msg_of_line(text, 6);
    CHECK_STR(m, "rdkafka: FAIL: 127.0.0.1:1/bootstrap: Connect failed: \"refused\"");
    free(m);
    free(text);
}

static void test_level_filter_and_mapping(void)
{
    CHECK_INT(tp_log_level_from_syslog(0), TP_LOG_ERROR);
    CHECK_INT(tp_log_level_from_syslog(3), TP_LOG_ERROR);
    CHECK_INT(tp_log_level_from_syslog(4), TP_LOG_WARN);
    CHECK_INT(tp_log_level_from_syslog(5), TP_LOG_INFO);
    CHECK_INT(tp_log_level_from_syslog(6), TP_LOG_INFO);
    CHECK_INT(tp_log_level_from_syslog(7), TP_LOG_DEBUG);
    CHECK_INT(tp_log_level_from_syslog(-1), TP_LOG_ERROR);
    CHECK_INT(tp_log_level_from_syslog(99), TP_LOG_DEBUG);

    tp_log_configure(TP_LOG_WARN, TP_LOG_JSON);
    begin_capture();
    tp_log_rdkafka_cb(NULL, 7, "DBG", "dropped");
    tp_log_rdkafka_cb(NULL, 6, "INFO", "dropped");
    tp_log_rdkafka_cb(NULL, 4, "WARN", "kept");
    tp_log_rdkafka_cb(NULL, 2, "CRIT", "kept");
    char *text = end_capture();
    line_info li;
    check_lines(text, &li);
    CHECK_INT(li.lines, 2);
    CHECK_INT(li.bad, 0);
    CHECK(strstr(text, "\"level\":\"WARN\"") && strstr(text, "\"level\":\"ERROR\""));
    free(text);

    tp_log_configure(TP_LOG_INFO, TP_LOG_TEXT);
    begin_capture();
    tp_log_rdkafka_cb(NULL, 5, "NOTICE", "text line");
    text = end_capture();
    CHECK(strstr(text, " INFO kafka: rdkafka: NOTICE: text line\n") != NULL);
    free(text);
}

/* A real producer handle with debug=conf logs while it starts; every line must be valid JSON. */
static void test_real_rdkafka(void)
{
    tp_log_configure(TP_LOG_DEBUG, TP_LOG_JSON);
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_set(conf, "debug", "conf,generic", err, sizeof err) == RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "client.id", "log-test \"quoted\"", err, sizeof err) == RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", err, sizeof err) == RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_log_cb(conf, tp_log_rdkafka_cb);
    begin_capture();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk) {
        rd_kafka_poll(rk, 200);
        rd_kafka_destroy(rk);
    } else {
        rd_kafka_conf_destroy(conf);
    }
    char *text = end_capture();
    CHECK(rk != NULL);
    line_info li;
    check_lines(text, &li);
    CHECK(li.kafka_lines > 0);
    CHECK_INT(li.bad, 0);
    CHECK(strstr(text, "log-test \\\"quoted\\\"#producer-") != NULL); /* the handle name, escaped */
    free(text);
}

int main(void)
{
    test_json_lines();
    test_level_filter_and_mapping();
    test_real_rdkafka();
    return check_exit();
}
