/* The --schema options the pipeline commands share (pack, inspect, ingest, sink): load a message type from a
 * descriptor set and apply the role overrides. docs/SCHEMA.md, "The pipeline". */
#ifndef TELEPACK_CLI_SCHEMA_CLI_H
#define TELEPACK_CLI_SCHEMA_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "schema/dynpack.h"
#include "schema/schema.h"
#include "telepack/delimited.h"
#include "telepack/record_json.h"

typedef struct tp_cli_schema {
    const char *path, *message;             /* --schema FILE, --message NAME */
    const char *key, *time, *unit, *identity; /* --key-field, --time-field, --time-unit, --identity-fields */
} tp_cli_schema;

/* getopt_long codes of the shared options (below TP_CLI_O_WORKER, above every command's own codes). */
enum { TP_CLI_O_SCHEMA = 0x800, TP_CLI_O_MESSAGE, TP_CLI_O_KEY_FIELD, TP_CLI_O_TIME_FIELD, TP_CLI_O_TIME_UNIT,
       TP_CLI_O_IDENTITY_FIELDS };

#define TP_CLI_SCHEMA_LONGOPTS                                                                                     \
    {"schema", required_argument, NULL, TP_CLI_O_SCHEMA}, {"message", required_argument, NULL, TP_CLI_O_MESSAGE},  \
        {"key-field", required_argument, NULL, TP_CLI_O_KEY_FIELD},                                                \
        {"time-field", required_argument, NULL, TP_CLI_O_TIME_FIELD},                                              \
        {"time-unit", required_argument, NULL, TP_CLI_O_TIME_UNIT},                                                \
        {"identity-fields", required_argument, NULL, TP_CLI_O_IDENTITY_FIELDS}

#define TP_CLI_SCHEMA_HELP                                                                                         \
    "  --schema FILE           a message type of your own: FILE is a descriptor set (protoc --include_imports\n"  \
    "                          --descriptor_set_out=FILE x.proto); records travel as pbpack v1 (rows) packs\n"   \
    "                          with tp-schema and tp-schema-fp headers (docs/SCHEMA.md). Default: the built-in\n" \
    "                          telepack.v1.VehicleRecord\n"                                                       \
    "  --message NAME          the message's full name (fleet.ev.v1.EvTelemetry); required with --schema\n"       \
    "  --key-field C           the vehicle (Kafka key): an integer or string column (default vehicle_id, vin,\n"  \
    "                          vehicle or device_id)\n"                                                           \
    "  --time-field C          the event time: a Timestamp or an integer column (default the first Timestamp)\n"  \
    "  --time-unit U           s, ms, us or ns for an integer time column (default from its _ms/_us/... suffix)\n" \
    "  --identity-fields A,B   identity columns besides key and time (default seq when there is one)\n"

/* Takes getopt's code c if it is a schema option: returns 1 (arg kept), else 0. */
int tp_cli_schema_option(tp_cli_schema *o, int c, const char *arg);

/* Whether argv holds --schema (the commands switch to their schema path before parsing). */
bool tp_cli_has_schema(int argc, char **argv);

/* Loads o->path's message o->message and applies the role overrides. Returns 0, or the exit status after
 * printing "telepack CMD: ..." (2: unreadable file, refused schema, bad roles, no key role). */
int tp_cli_schema_load(const char *cmd, const tp_cli_schema *o, tp_schema **out);

/* The input of pack --schema and ingest --schema --from: NDJSON lines (protobuf's JSON mapping, tp_dyn_json_read)
 * or varint-delimited messages, each checked under the schema and added to a grouper. */
typedef struct tp_cli_schema_src {
    tp_ndjson_reader *ndjson;       /* one of the two */
    tp_delimited_reader *delimited;
    int json_flags;                 /* TP_DYN_JSON_IGNORE_UNKNOWN */
    uint64_t records;               /* records taken so far */
} tp_cli_schema_src;

/* An NDJSON line may be this many times --max-record-bytes (JSON is wordier than protobuf). */
#define TP_CLI_SCHEMA_LINE_FACTOR 4

/* f is borrowed. TP_ERR_NOMEM. */
tp_err tp_cli_schema_src_open(tp_cli_schema_src *src, FILE *f, bool ndjson, bool ignore_unknown, size_t max_record);
/* Reads the next record into g (*full as tp_dyn_grouper_add). TP_OK, TP_ERR_END, TP_ERR_IO (reading failed),
 * TP_ERR_NOMEM, else the record is refused: why gets a sentence naming it ("line 3: ...", "record 7 (ending at
 * input byte 912): ...") and what is wrong. */
tp_err tp_cli_schema_src_next(tp_cli_schema_src *src, tp_dyn_grouper *g, tp_dyn_group **full, char *why,
                              size_t why_cap);
/* Input bytes consumed so far. */
uint64_t tp_cli_schema_src_bytes(const tp_cli_schema_src *src);
void tp_cli_schema_src_close(tp_cli_schema_src *src);

#endif
