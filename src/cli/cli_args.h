/* Command-line plumbing shared by the `telepack` subcommands: strict option-value parsing (no printing; a sentence
 * for the caller to show) and opening input/output files with "-" meaning stdin/stdout. */
#ifndef TELEPACK_CLI_ARGS_H
#define TELEPACK_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "telepack/error.h"

/* Parses a whole decimal number in [min, max] ("1000", no sign, no spaces, no suffix). On failure returns
 * TP_ERR_PARSE and writes "--NAME 'VALUE' is not a whole number from MIN to MAX" into msg. */
tp_err tp_cli_parse_u64(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out, char *msg,
                        size_t msg_cap);

/* Parses a finite decimal number in [min, max] ("0.001", "1e-6"); errors as above. */
tp_err tp_cli_parse_double(const char *name, const char *value, double min, double max, double *out, char *msg,
                           size_t msg_cap);

/* Picks value out of a NULL-terminated list of words; *out is its index. Error message lists the words. */
tp_err tp_cli_parse_choice(const char *name, const char *value, const char *const *words, int *out, char *msg,
                           size_t msg_cap);

/* Opens path for reading ("-" = stdin, which is returned as is) or writing ("-" = stdout; a file is created or
 * truncated). On failure returns NULL with errno set. Close with tp_cli_close, which leaves stdin/stdout open
 * but flushes stdout, and returns -1 (errno set) if a write or the close failed. */
FILE *tp_cli_open_in(const char *path);
FILE *tp_cli_open_out(const char *path);
int tp_cli_close(FILE *f);

/* Prints "telepack COMMAND: <message>; run 'telepack COMMAND --help' for usage" on stderr and returns 2, the exit
 * status of a usage error. */
int tp_cli_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Seconds on the monotonic clock, for rates and progress lines. */
double tp_cli_now_s(void);

/* Human-readable byte count: "812 B", "23.4 KiB", "1.5 MiB", "2.0 GiB", into buf (returned). */
const char *tp_cli_bytes(uint64_t n, char *buf, size_t cap);

#endif
