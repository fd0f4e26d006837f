/* TP_API marks the functions of telepack's public API: the only symbols a shared libtelepack exports (everything
 * else is built with hidden visibility). */
#ifndef TELEPACK_API_H
#define TELEPACK_API_H

#if defined(_WIN32)
#define TP_API
#elif defined(__GNUC__) || defined(__clang__)
#define TP_API __attribute__((visibility("default")))
#else
#define TP_API
#endif

#endif
