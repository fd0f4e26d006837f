/* Option-value parsing and file opening for the CLI subcommands (see cli_args.h). */
#include "cli/cli_args.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

tp_err tp_cli_parse_u64(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out, char *msg,
                        size_t msg_cap)
{
    uint64_t v = 0;
    const char *s = value ? value : "";
    int ok = *s != 0;
    for (; *s && ok; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            ok = 0;
        else
            v = v * 10 + d;
    }
    if (!ok || v < min || v > max)
        return fail(msg, msg_cap, "--%s '%s' is not a whole number from %" PRIu64 " to %" PRIu64, name,
                    value ? value : "", min, max);
    *out = v;
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

double tp_cli_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
