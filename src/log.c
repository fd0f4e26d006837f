/* Structured logging: text ("2026-11-23T18:42:37.123Z INFO ingest: message") or JSON lines on stderr. */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static tp_log_level min_level = TP_LOG_INFO;
static tp_log_format log_format = TP_LOG_TEXT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void tp_log_configure(tp_log_level level, tp_log_format format)
{
    min_level = level;
    log_format = format;
}

int tp_log_parse_level(const char *s, tp_log_level *out)
{
    static const char *const words[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, words[i])) {
            *out = (tp_log_level)i;
            return 0;
        }
    return -1;
}

int tp_log_parse_format(const char *s, tp_log_format *out)
{
    if (!strcmp(s, "text"))
        *out = TP_LOG_TEXT;
    else if (!strcmp(s, "json"))
        *out = TP_LOG_JSON;
    else
        return -1;
    return 0;
}

/* Writes s as the body of a JSON string (quotes and control characters escaped). */
static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void tp_logv(tp_log_level level, const char *component, const char *fmt, va_list ap)
{
    if (level < min_level)
        return;
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);

    pthread_mutex_lock(&log_lock);
    if (log_format == TP_LOG_JSON) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"", when, level_names[level]);
        json_escape(stderr, component);
        fputs("\",\"msg\":\"", stderr);
        json_escape(stderr, msg);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "%s %s %s: %s\n", when, level_names[level], component, msg);
    }
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

void tp_log(tp_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tp_logv(level, component, fmt, ap);
    va_end(ap);
}
