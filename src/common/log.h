/* Process-wide structured logging for the workers and the CLI (never used inside the codec library, which only
 * returns errors). One line per event, text or JSON, with a level filter. Thread-safe. */
#ifndef TELEPACK_LOG_H
#define TELEPACK_LOG_H

#include <stdarg.h>

typedef enum tp_log_level { TP_LOG_DEBUG = 0, TP_LOG_INFO, TP_LOG_WARN, TP_LOG_ERROR } tp_log_level;
typedef enum tp_log_format { TP_LOG_TEXT = 0, TP_LOG_JSON } tp_log_format;

/* Configures the logger (defaults: INFO, text, stderr). Call before starting threads. */
void tp_log_configure(tp_log_level min_level, tp_log_format format);
/* Parses "debug|info|warn|error" / "text|json"; returns 0 on success, -1 for an unknown word. */
int tp_log_parse_level(const char *s, tp_log_level *out);
int tp_log_parse_format(const char *s, tp_log_format *out);

/* Logs one event from `component` ("ingest", "sink", "kafka", ...): a printf-style message. */
void tp_log(tp_log_level level, const char *component, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void tp_logv(tp_log_level level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
