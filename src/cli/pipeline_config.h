/* --config FILE of `telepack ingest` and `telepack sink`: a YAML pipeline file (docs/CONFIG.md) read with libyaml
 * into a list of (section, key, value, line) entries, then mapped onto the command's own long options by name
 * (key linger_ms <-> --linger-ms), so that the file and the flags share one parser: the file's options are put
 * before the command line's, and a flag on the command line overrides the file.
 *
 * Sections: schema (the --schema options, only there; `descriptor` names the descriptor set), kafka (brokers,
 * topic, config = --kafka-config, properties = -X pairs), ingest and sink (any other long option of that command,
 * and properties). A command reads schema, kafka and its own section; the other command's section is checked
 * for shape only.
 *
 * Bounded and strict: at most TP_PIPELINE_CONFIG_MAX_BYTES of file, TP_PIPELINE_CONFIG_MAX_ENTRIES entries, keys of
 * at most 64 bytes and values of at most TP_PIPELINE_CONFIG_MAX_VALUE; one document, a mapping of mappings (three
 * levels at most: properties and lists); no anchors, aliases, tags or tab characters; no duplicate keys. Every
 * refusal is one sentence "FILE:LINE: ...". Secrets stay out of the file: keys and properties that would hold
 * a password, a token or a secret are refused (name a file instead: password_file, kafka.config). */
#ifndef TELEPACK_CLI_PIPELINE_CONFIG_H
#define TELEPACK_CLI_PIPELINE_CONFIG_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "telepack/error.h"

#define TP_PIPELINE_CONFIG_MAX_BYTES (1u << 20)
#define TP_PIPELINE_CONFIG_MAX_ENTRIES 1024
#define TP_PIPELINE_CONFIG_MAX_VALUE 4096

typedef struct tp_pipeline_entry {
    const char *section; /* "schema", "kafka", "ingest" or "sink" */
    const char *key;     /* as written: "linger_ms"; "properties" for a property */
    const char *prop;    /* a property's name ("linger.ms"), else NULL */
    const char *value;   /* the scalar's text */
    int line;            /* 1-based line of the key (of the item, in a list) */
    int plain;           /* an unquoted scalar: true and false are booleans only then */
    int in_list;         /* an item of a list (the option given once per item) */
} tp_pipeline_entry;

typedef struct tp_pipeline_config tp_pipeline_config;

/* Parses len bytes of YAML; name (the file's path) names the file in messages, and its directory is where
 * relative paths in the file start. TP_ERR_PARSE with "NAME:LINE: sentence" in msg, TP_ERR_NOMEM. */
tp_err tp_pipeline_config_parse(const char *name, const void *data, size_t len, tp_pipeline_config **out, char *msg,
                                size_t msg_cap);

/* Reads and parses the file at path (TP_ERR_IO: cannot be read; TP_ERR_PARSE: larger than the cap, or refused). */
tp_err tp_pipeline_config_load(const char *path, tp_pipeline_config **out, char *msg, size_t msg_cap);

void tp_pipeline_config_free(tp_pipeline_config *c);

size_t tp_pipeline_config_count(const tp_pipeline_config *c);
const tp_pipeline_entry *tp_pipeline_config_entry(const tp_pipeline_config *c, size_t i);
bool tp_pipeline_config_has_section(const tp_pipeline_config *c, const char *section);

/* Maps the entries onto command's long options (longopts: its getopt_long table; -X is the property option) and
 * returns the arguments ("--linger-ms=500", "--create-table", "-X", "linger.ms=20"; schema, kafka, then the
 * command's section, each in file order) in *args (owned by c, valid until tp_pipeline_config_free). Relative
 * paths are made relative to the file's directory: the values of options named schema, from, or ending in -file,
 * -cert, -key, -ca, -config, -schema or -tokens, and a sqlite: warehouse. TP_ERR_PARSE with "NAME:LINE: sentence"
 * (unknown key with a suggestion, a list or true/false where they do not fit, a secret); TP_ERR_NOMEM. */
tp_err tp_pipeline_config_args(tp_pipeline_config *c, const char *command, const struct option *longopts,
                               char ***args, size_t *n_args, char *msg, size_t msg_cap);

/* Writes the keys command accepts, one a line ("ingest.linger_ms  --linger-ms"), to out. */
void tp_pipeline_config_keys(const char *command, const struct option *longopts, FILE *out);

/* ---- the command-line hook ---- */

/* Call before the getopt_long loop with the command's option strings. Finds --config FILE (or --config=FILE) among
 * argv, skipping the values of options that take one, and replaces *argc and *argv by argv[0], the file's arguments,
 * then the command line without --config. With --config-keys it prints the keys and returns 0. Returns -1 to go
 * on (also when there is no --config), or the exit status (2) after printing "telepack COMMAND: FILE:LINE: ...".
 * The new argv lives until tp_cli_config_release (main calls it on return). */
int tp_cli_config_apply(const char *command, const char *shortopts, const struct option *longopts, int *argc,
                        char ***argv);

/* Whether argv names a --config file that parses and has a schema section (ingest switches to its schema path). */
bool tp_cli_config_has_schema(int argc, char **argv);

/* Frees every argv made by tp_cli_config_apply. */
void tp_cli_config_release(void);

#endif
