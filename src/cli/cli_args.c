/* The CLI kit: option-value parsing, the worker options block, signals, files and formatters (see cli_args.h). */
#include "cli/cli_args.h"

#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/hostport.h"

__attribute__((format(printf, 3, 4))) static tp_err fail(char *msg, size_t cap, const char *fmt, ...)
{
    if (msg && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return TP_ERR_PARSE;
}

/* The whole decimal number s[0..len) (digits only, at least one, no overflow) into *out; 0 on success. */
static int whole(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

tp_err tp_cli_parse_u64(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out, char *msg,
                        size_t msg_cap)
{
    const char *s = value ? value : "";
    uint64_t v;
    if (whole(s, strlen(s), &v) || v < min || v > max)
        return fail(msg, msg_cap, "--%s '%s' is not a whole number from %" PRIu64 " to %" PRIu64, name, s, min, max);
    *out = v;
    return TP_OK;
}

tp_err tp_cli_parse_ms(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out, char *msg,
                       size_t msg_cap)
{
    const char *s = value ? value : "";
    uint64_t v;
    if (whole(s, strlen(s), &v) || v < min || v > max)
        return fail(msg, msg_cap, "--%s '%s' is not a whole number of milliseconds from %" PRIu64 " to %" PRIu64,
                    name, s, min, max);
    *out = v;
    return TP_OK;
}

/* n with the largest of K, M, G (powers of 1024) that divides it: "64", "256K", "64M". */
static const char *size_text(uint64_t n, char *buf, size_t cap)
{
    static const char suffix[] = "KMG";
    int u = -1;
    while (u < 2 && n && n % 1024 == 0) {
        n /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(buf, cap, "%" PRIu64, n);
    else
        snprintf(buf, cap, "%" PRIu64 "%c", n, suffix[u]);
    return buf;
}

tp_err tp_cli_parse_size(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out, char *msg,
                         size_t msg_cap)
{
    const char *s = value ? value : "";
    size_t len = strlen(s);
    uint64_t v, mul = 1;
    if (len > 1) {
        switch (s[len - 1]) {
        case 'k': case 'K': mul = 1ull << 10; break;
        case 'm': case 'M': mul = 1ull << 20; break;
        case 'g': case 'G': mul = 1ull << 30; break;
        default: break;
        }
    }
    if (whole(s, mul > 1 ? len - 1 : len, &v) || v > max / mul || v * mul < min || v * mul > max) {
        char lo[32], hi[32];
        return fail(msg, msg_cap, "--%s '%s' is not a size from %s to %s (bytes, or K, M, G: powers of 1024)", name,
                    s, size_text(min, lo, sizeof lo), size_text(max, hi, sizeof hi));
    }
    *out = v * mul;
    return TP_OK;
}

tp_err tp_cli_parse_list(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out,
                         size_t max_n, size_t *n, char *msg, size_t msg_cap)
{
    const char *s = value ? value : "";
    size_t count = 0;
    for (const char *p = s;; p++) {
        size_t len = strcspn(p, ",");
        uint64_t v;
        if (count == max_n || whole(p, len, &v) || v < min || v > max)
            return fail(msg, msg_cap,
                        "--%s '%s' is not a comma-separated list of 1 to %zu whole numbers from %" PRIu64
                        " to %" PRIu64,
                        name, s, max_n, min, max);
        out[count++] = v;
        p += len;
        if (!*p)
            break;
    }
    *n = count;
    return TP_OK;
}

tp_err tp_cli_parse_double(const char *name, const char *value, double min, double max, double *out, char *msg,
                           size_t msg_cap)
{
    const char *s = value ? value : "";
    char *end = NULL;
    errno = 0;
    double v = *s && strspn(s, "0123456789+-.eE") == strlen(s) ? strtod(s, &end) : NAN;
    if (!end || *end || errno == ERANGE || !isfinite(v) || v < min || v > max)
        return fail(msg, msg_cap, "--%s '%s' is not a number from %g to %g", name, s, min, max);
    *out = v;
    return TP_OK;
}

tp_err tp_cli_parse_choice(const char *name, const char *value, const char *const *words, int *out, char *msg,
                           size_t msg_cap)
{
    for (int i = 0; words[i]; i++)
        if (value && !strcmp(value, words[i])) {
            *out = i;
            return TP_OK;
        }
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; words[i] && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? (words[i + 1] ? ", " : " or ") : "",
                                words[i]);
    return fail(msg, msg_cap, "--%s '%s' is not one of %s", name, value ? value : "", list);
}

tp_err tp_cli_parse_layout(const char *value, tp_layout *layout, int *coded, char *msg, size_t msg_cap)
{
    static const char *const words[] = {"rows", "columns", "coded", NULL};
    int i;
    tp_err e = tp_cli_parse_choice("layout", value, words, &i, msg, msg_cap);
    if (!e) {
        *layout = i == 0 ? TP_LAYOUT_ROWS : TP_LAYOUT_COLUMNS;
        *coded = i == 2;
    }
    return e;
}

FILE *tp_cli_open_in(const char *path)
{
    if (!strcmp(path, "-"))
        return stdin;
    return fopen(path, "rb");
}

FILE *tp_cli_open_out(const char *path)
{
    if (!strcmp(path, "-"))
        return stdout;
    return fopen(path, "wb");
}

int tp_cli_close(FILE *f)
{
    if (!f)
        return 0;
    if (f == stdin)
        return 0;
    if (f == stdout) {
        int bad = fflush(f) != 0 || ferror(f);
        return bad ? -1 : 0;
    }
    int bad = ferror(f);
    int saved = errno;
    if (fclose(f) != 0)
        return -1;
    if (bad) {
        errno = saved ? saved : EIO;
        return -1;
    }
    return 0;
}

const char *tp_cli_bytes(uint64_t n, char *buf, size_t cap)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (n < 1024) {
        snprintf(buf, cap, "%" PRIu64 " B", n);
        return buf;
    }
    double v = (double)n / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, "%.1f %s", v, units[u]);
    return buf;
}

const char *tp_cli_count(double n, char *buf, size_t cap)
{
    static const char *const units[] = {"", "K", "M", "G", "T"};
    int u = 0;
    while (n >= 1000 && u < 4) {
        n /= 1000;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f%s" : "%.0f%s", n, units[u]);
    return buf;
}

int tp_cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "telepack %s: ", command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; run 'telepack %s --help' for usage\n", command);
    return 2;
}

tp_err tp_cli_worker_init(tp_cli_worker *w, int argc)
{
    memset(w, 0, sizeof *w);
    w->log_level = TP_LOG_INFO;
    w->log_format = TP_LOG_TEXT;
    w->cap_kafka_props = (size_t)(argc > 0 ? argc : 0) + 1;
    w->kafka_props = calloc(w->cap_kafka_props, sizeof *w->kafka_props);
    return w->kafka_props ? TP_OK : TP_ERR_NOMEM;
}

void tp_cli_worker_free(tp_cli_worker *w)
{
    for (size_t i = 0; i < w->n_owned; i++)
        free(w->owned[i]);
    free(w->owned);
    free(w->kafka_props);
    w->kafka_props = NULL;
    w->owned = NULL;
    w->n_kafka_props = w->n_owned = 0;
}

/* Inserts the property kv (owned by w) before the -X values, keeping the order of files among themselves. */
static tp_err worker_insert_file_prop(tp_cli_worker *w, char *kv)
{
    if (w->n_kafka_props + 1 >= w->cap_kafka_props) {
        size_t cap = w->cap_kafka_props * 2 + 16;
        const char **p = realloc(w->kafka_props, cap * sizeof *p);
        if (!p)
            return TP_ERR_NOMEM;
        w->kafka_props = p;
        w->cap_kafka_props = cap;
    }
    char **o = realloc(w->owned, (w->n_owned + 1) * sizeof *o);
    if (!o)
        return TP_ERR_NOMEM;
    w->owned = o;
    w->owned[w->n_owned++] = kv;
    size_t at = w->n_kafka_props - (size_t)w->n_x;
    memmove(&w->kafka_props[at + 1], &w->kafka_props[at], (size_t)w->n_x * sizeof *w->kafka_props);
    w->kafka_props[at] = kv;
    w->n_kafka_props++;
    return TP_OK;
}

/* A librdkafka properties file (kcat's -F format): "key=value" lines, '#' comments, blank lines; spaces around the
 * key and before the value are trimmed, the value is kept as written otherwise. */
static tp_err worker_read_kafka_config(tp_cli_worker *w, const char *path, char *msg, size_t msg_cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(msg, msg_cap, "--kafka-config '%s' cannot be read (%s)", path, strerror(errno));
    char line[8192];
    tp_err e = TP_OK;
    for (unsigned no = 1; !e && fgets(line, sizeof line, f); no++) {
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            e = fail(msg, msg_cap, "--kafka-config '%s' line %u is longer than %zu bytes", path, no, sizeof line - 2);
            break;
        }
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        char *k = line;
        while (*k == ' ' || *k == '\t')
            k++;
        if (!*k || *k == '#')
            continue;
        char *eq = strchr(k, '=');
        char *kend = eq;
        while (kend && kend > k && (kend[-1] == ' ' || kend[-1] == '\t'))
            kend--;
        if (!eq || kend == k) {
            e = fail(msg, msg_cap, "--kafka-config '%s' line %u is not key=value", path, no);
            break;
        }
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t klen = (size_t)(kend - k), vlen = strlen(v);
        char *kv = malloc(klen + vlen + 2);
        if (!kv) {
            e = TP_ERR_NOMEM;
            break;
        }
        memcpy(kv, k, klen);
        kv[klen] = '=';
        memcpy(kv + klen + 1, v, vlen + 1);
        if ((e = worker_insert_file_prop(w, kv)))
            free(kv);
    }
    if (!e && ferror(f))
        e = fail(msg, msg_cap, "--kafka-config '%s' cannot be read (%s)", path, strerror(errno));
    fclose(f);
    return e;
}

int tp_cli_worker_option(tp_cli_worker *w, int c, const char *arg, tp_err *e, char *msg, size_t msg_cap)
{
    static const char *const level_words[] = {"debug", "info", "warn", "error", NULL};  /* index == tp_log_level */
    static const char *const format_words[] = {"text", "json", NULL};                   /* index == tp_log_format */
    int i = 0;
    *e = TP_OK;
    switch (c) {
    case 'X':
        if (w->n_kafka_props + 1 >= w->cap_kafka_props) {
            size_t cap = w->cap_kafka_props * 2 + 16;
            const char **p = realloc(w->kafka_props, cap * sizeof *p);
            if (!p) {
                *e = TP_ERR_NOMEM;
                snprintf(msg, msg_cap, "out of memory");
                return 1;
            }
            w->kafka_props = p;
            w->cap_kafka_props = cap;
        }
        w->kafka_props[w->n_kafka_props++] = arg; /* validated where librdkafka is configured */
        w->n_x++;
        return 1;
    case TP_CLI_O_KAFKA_CONFIG:
        if ((*e = worker_read_kafka_config(w, arg, msg, msg_cap)) == TP_ERR_NOMEM)
            snprintf(msg, msg_cap, "out of memory reading --kafka-config '%s'", arg);
        return 1;
    case TP_CLI_O_LOG_LEVEL:
        if (!(*e = tp_cli_parse_choice("log-level", arg, level_words, &i, msg, msg_cap)))
            w->log_level = (tp_log_level)i;
        return 1;
    case TP_CLI_O_LOG_FORMAT:
        if (!(*e = tp_cli_parse_choice("log-format", arg, format_words, &i, msg, msg_cap)))
            w->log_format = (tp_log_format)i;
        return 1;
    case TP_CLI_O_METRICS_LISTEN: {
        char host[256], why[256];
        uint16_t port;
        if (tp_hostport_parse(arg, host, sizeof host, &port, why, sizeof why)) {
            *e = fail(msg, msg_cap, "--metrics-listen %s", why);
            return 1;
        }
        w->metrics_listen = arg;
        return 1;
    }
    default:
        return 0;
    }
}

void tp_cli_worker_apply_log(const tp_cli_worker *w)
{
    tp_log_configure(w->log_level, w->log_format);
}

void tp_cli_signals_install(void (*handler)(int), int ignore_sigpipe)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (ignore_sigpipe)
        signal(SIGPIPE, SIG_IGN);
}

void tp_cli_signals_reset(void)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}
