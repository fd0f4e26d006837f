/* Minimal assertion helpers for telepack's tests: each failed check prints file:line and what differed, the test
 * goes on, and check_exit() returns non-zero if anything failed. Header-only, one per test executable. */
#ifndef TELEPACK_TESTS_CHECK_H
#define TELEPACK_TESTS_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                                         \
    do {                                                                                                    \
        check_count++;                                                                                      \
        if (!(cond)) {                                                                                      \
            check_failures++;                                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                       \
        }                                                                                                   \
    } while (0)

#define CHECK_INT(a, b)                                                                                     \
    do {                                                                                                    \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                                     \
        check_count++;                                                                                      \
        if (check_a_ != check_b_) {                                                                         \
            check_failures++;                                                                               \
            fprintf(stderr, "%s:%d: CHECK_INT failed: %s == %lld, %s == %lld\n", __FILE__, __LINE__, #a,   \
                    check_a_, #b, check_b_);                                                                \
        }                                                                                                   \
    } while (0)

#define CHECK_ERR(expr, want)                                                                               \
    do {                                                                                                    \
        tp_err check_e_ = (expr);                                                                           \
        check_count++;                                                                                      \
        if (check_e_ != (want)) {                                                                           \
            check_failures++;                                                                               \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %s\n", __FILE__, __LINE__, #expr,             \
                    (int)check_e_, tp_strerror(check_e_), #want);                                           \
        }                                                                                                   \
    } while (0)

#define CHECK_STR(a, b)                                                                                     \
    do {                                                                                                    \
        const char *check_a_ = (a), *check_b_ = (b);                                                        \
        check_count++;                                                                                      \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_)) {                                         \
            check_failures++;                                                                               \
            fprintf(stderr, "%s:%d: CHECK_STR failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__,              \
                    check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");                        \
        }                                                                                                   \
    } while (0)

/* Call at the end of main: prints a summary line and returns the exit status for the test. */
static inline int check_exit(void)
{
    fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures);
    if (check_count == 0) {
        fprintf(stderr, "no checks ran: a test that asserts nothing is a defect\n");
        return 1;
    }
    return check_failures ? 1 : 0;
}

#endif
