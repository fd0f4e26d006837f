/* Structured logging: text ("2026-11-23T18:42:37.123Z INFO ingest: message") or JSON lines on stderr. */
#include "common/log.h"

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

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there are not one (overlong forms, surrogates
 * and code points above U+10FFFF included). */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    int n;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* Writes s as the body of a JSON string: quotes and control characters escaped, and every byte that is not part
 * of valid UTF-8 (a truncated message, binary data from a peer) replaced by U+FFFD, so each line stays valid JSON. */
static void json_escape(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        int n = utf8_len(p);
        if (n == 0) {
            fputs("\xef\xbf\xbd", f); /* U+FFFD in UTF-8 */
            p++;
            continue;
        }
        if (n > 1)
            fwrite(p, 1, (size_t)n, f);
        else if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
        p += n;
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
