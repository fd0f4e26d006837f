/* The error-buffer convention of internal APIs: a function that fails writes one sentence into the caller's
 * (char *err, size_t cap). tp_errf is the printf for it; a NULL or zero-sized buffer is allowed and ignored. */
#ifndef TELEPACK_ERRBUF_H
#define TELEPACK_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>

void tp_errf(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void tp_verrf(char *err, size_t cap, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

#endif
