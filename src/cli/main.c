/* `telepack`: one binary, one subcommand per job (see `telepack --help`). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/pipeline_config.h"
#include "telepack/telepack.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"gen", tp_cmd_gen, "simulate a fleet: records to stdout, a file, or a TCP ingest endpoint"},
    {"ingest", tp_cmd_ingest, "accept gateway records, batch per vehicle, compress, publish packs to Kafka"},
    {"sink", tp_cmd_sink, "consume packs from Kafka and load rows into SQLite, ClickHouse or BigQuery"},
    {"demo", tp_cmd_demo, "run the whole pipeline in one process (mock Kafka, simulated fleet, SQLite)"},
    {"pack", tp_cmd_pack, "turn NDJSON records into packs (one zstd frame per vehicle)"},
    {"inspect", tp_cmd_inspect, "decode packs to NDJSON records, with a summary"},
    {"schema", tp_cmd_schema, "show the columns, roles and fingerprint of a protobuf message from a descriptor set"},
    {"dict", tp_cmd_dict, "train a zstd dictionary on packs, or check one (small packs get smaller)"},
    {"tune", tp_cmd_tune, "sweep batch size x zstd level x linger on a sample and recommend settings"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "telepack %s - vehicle telemetry stream pipeline\n\n"
            "Usage: telepack COMMAND [OPTIONS]\n"
            "       telepack COMMAND --help\n\n"
            "Commands:\n",
            TP_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nOptions:\n  -h, --help     this text\n  -V, --version  print the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "-V") || !strcmp(name, "--version")) {
        printf("telepack %s\n", TP_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name)) {
            int rc = commands[i].run(argc - 1, argv + 1);
            tp_cli_config_release(); /* the argv a --config file made */
            return rc;
        }
    fprintf(stderr, "telepack: unknown command '%s'; run 'telepack --help' for the list\n", name);
    return 2;
}
