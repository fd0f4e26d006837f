/* tp_errf: printf into a caller's error buffer (see errbuf.h). */
#include "common/errbuf.h"

#include <stdio.h>

void tp_verrf(char *err, size_t cap, const char *fmt, va_list ap)
{
    if (err && cap)
        vsnprintf(err, cap, fmt, ap);
}

void tp_errf(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tp_verrf(err, cap, fmt, ap);
    va_end(ap);
}
