/* The CLI kit shared by the `telepack` subcommands: strict option-value parsing in one message style (no printing;
 * "--NAME 'VALUE' is not <what> from MIN to MAX" for the caller to show), the worker options block of ingest and
 * sink (--log-format, --log-level, --metrics-listen, -X key=value), signal set-up, opening input/output files
 * with "-" meaning stdin/stdout, and the number formatters of progress lines and summaries. */
#ifndef TELEPACK_CLI_ARGS_H
#define TELEPACK_CLI_ARGS_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/log.h"
#include "telepack/error.h"
#include "telepack/pack.h"

/* Parses a whole decimal number in [min, max] ("1000", no sign, no spaces, no suffix). On failure returns
 * TP_ERR_PARSE and writes "--NAME 'VALUE' is not a whole number from MIN to MAX" into msg. */
tp_err tp_cli_parse_u64(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out, char *msg,
                        size_t msg_cap);

/* Parses a finite decimal number in [min, max] ("0.001", "1e-6"); errors as above. */
tp_err tp_cli_parse_double(const char *name, const char *value, double min, double max, double *out, char *msg,
                           size_t msg_cap);

/* Parses a size: a whole number of bytes, or with a K, M or G suffix (powers of 1024: "256K", "64M"), in
 * [min, max]. Error: "--NAME 'VALUE' is not a size from MIN to MAX (bytes, or K, M, G: powers of 1024)", with
 * MIN and MAX written with the largest suffix that divides them. */
tp_err tp_cli_parse_size(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out, char *msg,
                         size_t msg_cap);

/* Parses a duration in whole milliseconds in [min, max]. Error: "--NAME 'VALUE' is not a whole number of
 * milliseconds from MIN to MAX". */
tp_err tp_cli_parse_ms(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out, char *msg,
                       size_t msg_cap);

/* Parses a comma-separated list of 1..max_n whole numbers, each in [min, max] ("10,50,200"; no empty items).
 * Error: "--NAME 'VALUE' is not a comma-separated list of 1 to MAX_N whole numbers from MIN to MAX". */
tp_err tp_cli_parse_list(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out,
                         size_t max_n, size_t *n, char *msg, size_t msg_cap);

/* Picks value out of a NULL-terminated list of words; *out is its index. Error message lists the words. */
tp_err tp_cli_parse_choice(const char *name, const char *value, const char *const *words, int *out, char *msg,
                           size_t msg_cap);

/* --layout of the built-in record: rows, columns or coded (columns with coded columns, docs/FORMAT_V2.md). */
tp_err tp_cli_parse_layout(const char *value, tp_layout *layout, int *coded, char *msg, size_t msg_cap);

/* Opens path for reading ("-" = stdin, which is returned as is) or writing ("-" = stdout; a file is created or
 * truncated). On failure returns NULL with errno set. Close with tp_cli_close, which leaves stdin/stdout open
 * but flushes stdout, and returns -1 (errno set) if a write or the close failed. */
FILE *tp_cli_open_in(const char *path);
FILE *tp_cli_open_out(const char *path);
int tp_cli_close(FILE *f);

/* Prints "telepack COMMAND: <message>; run 'telepack COMMAND --help' for usage" on stderr and returns 2, the exit
 * status of a usage error. */
int tp_cli_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Human-readable byte count, powers of 1024: "812 B", "23.4 KiB", "1.5 MiB", "2.0 GiB", into buf (returned). The
 * one byte formatter of the CLI. */
const char *tp_cli_bytes(uint64_t n, char *buf, size_t cap);

/* Human-readable count or rate, powers of 1000: "812", "23.4K", "1.5M" (records, packs, records/s). */
const char *tp_cli_count(double n, char *buf, size_t cap);

/* ---- the worker options block (ingest, sink) ---- */

/* getopt_long codes of the shared options; a command's own codes stay below TP_CLI_O_WORKER. */
enum { TP_CLI_O_WORKER = 0x1000, TP_CLI_O_LOG_FORMAT, TP_CLI_O_LOG_LEVEL, TP_CLI_O_METRICS_LISTEN, TP_CLI_O_KAFKA_CONFIG };

/* Entries for a command's struct option table (short option: "X:"). */
#define TP_CLI_WORKER_LONGOPTS                                                                                     \
    {"log-format", required_argument, NULL, TP_CLI_O_LOG_FORMAT},                                                  \
        {"log-level", required_argument, NULL, TP_CLI_O_LOG_LEVEL},                                                \
        {"metrics-listen", required_argument, NULL, TP_CLI_O_METRICS_LISTEN},                                      \
        {"kafka-config", required_argument, NULL, TP_CLI_O_KAFKA_CONFIG}

/* --help lines of the shared options, the option column 24 wide. */
#define TP_CLI_WORKER_HELP                                                                                         \
    "  --config FILE           a pipeline file (YAML) holding these options; flags given too override it\n"      \
    "                          (docs/CONFIG.md; --config-keys lists its keys)\n"                                 \
    "  -X key=value            librdkafka property (repeatable), e.g. -X linger.ms=20\n"                           \
    "  --kafka-config FILE     librdkafka properties, one key=value a line (# comments): the place for\n"         \
    "                          secrets such as sasl.password, which -X would show to ps (-X wins)\n"            \
    "  --metrics-listen H:P    serve /metrics (Prometheus), /healthz and /readyz on HOST:PORT ([V6]:PORT)\n"      \
    "  --log-format text|json  log line format (default text)\n"                                                   \
    "  --log-level L           debug, info, warn or error (default info)\n"

typedef struct tp_cli_worker {
    tp_log_level log_level;     /* default info */
    tp_log_format log_format;   /* default text */
    const char *metrics_listen; /* NULL: no operations endpoint */
    const char **kafka_props;   /* "key=value": the --kafka-config lines, then the -X values, in order */
    size_t n_kafka_props;
    size_t cap_kafka_props;
    char **owned;               /* lines read from --kafka-config files, freed by tp_cli_worker_free */
    size_t n_owned;
    int n_x;                    /* -X values seen so far (they follow every file's lines) */
} tp_cli_worker;

/* Defaults, and room for every -X among argc arguments. TP_ERR_NOMEM. Free with tp_cli_worker_free. */
tp_err tp_cli_worker_init(tp_cli_worker *w, int argc);
void tp_cli_worker_free(tp_cli_worker *w);

/* Takes getopt_long's code c with its optarg if it is one of the shared options ('X' or TP_CLI_O_*): returns 1 and
 * sets *e (TP_OK, or TP_ERR_PARSE with the message in msg: a bad log word, a --metrics-listen that is not
 * HOST:PORT, a --kafka-config file that cannot be read or has a line without '='; TP_ERR_NOMEM). A file's
 * properties go before every -X, so -X overrides a file whatever the order on the command line. Messages name the
 * file and line, never a value (values may be secrets). Returns 0 for any other c. */
int tp_cli_worker_option(tp_cli_worker *w, int c, const char *arg, tp_err *e, char *msg, size_t msg_cap);

/* Applies --log-level and --log-format to the process logger (call before starting threads). */
void tp_cli_worker_apply_log(const tp_cli_worker *w);

/* ---- signals ---- */

/* Routes SIGINT and SIGTERM to handler (no SA_RESTART: a blocking call returns EINTR so loops see the flag) and,
 * with ignore_sigpipe, ignores SIGPIPE (sockets report EPIPE instead). tp_cli_signals_reset restores the
 * defaults of SIGINT and SIGTERM. */
void tp_cli_signals_install(void (*handler)(int), int ignore_sigpipe);
void tp_cli_signals_reset(void);

#endif
