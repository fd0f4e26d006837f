/* The --schema options the pipeline commands share (pack, inspect, ingest, sink): load a message type from a
 * descriptor set and apply the role overrides. docs/SCHEMA.md, "The pipeline". */
#ifndef TELEPACK_CLI_SCHEMA_CLI_H
#define TELEPACK_CLI_SCHEMA_CLI_H

#include <stdbool.h>

#include "schema/schema.h"

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

#endif
