/* Fuzz target for the pipeline file (--config, src/cli/pipeline_config.c): any input parses or is refused with a
 * "p.yaml..." sentence, and what parses maps onto a command's options or is refused the same way; every argument
 * it makes is an option ("--NAME=VALUE", "--NAME", "-X" and its "NAME=VALUE"). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/pipeline_config.h"
#include "cli/schema_cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct option opts[] = {
    {"brokers", required_argument, 0, 1}, {"topic", required_argument, 0, 2},   {"table", required_argument, 0, 3},
    {"create-table", no_argument, 0, 4},  {"from", required_argument, 0, 5},    {"warehouse", required_argument, 0, 6},
    {"linger-ms", required_argument, 0, 7}, {"kafka-config", required_argument, 0, 8},
    {"password-file", required_argument, 0, 9}, TP_CLI_SCHEMA_LONGOPTS,       {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[512];
    tp_pipeline_config *c = NULL;
    tp_err e = tp_pipeline_config_parse("d/p.yaml", data, size, &c, msg, sizeof msg);
    if (e) {
        if (e != TP_ERR_PARSE && e != TP_ERR_NOMEM)
            abort();
        if (e == TP_ERR_PARSE && strncmp(msg, "d/p.yaml", 8))
            abort();
        return 0;
    }
    size_t n = tp_pipeline_config_count(c);
    if (n > TP_PIPELINE_CONFIG_MAX_ENTRIES)
        abort();
    for (size_t i = 0; i < n; i++) {
        const tp_pipeline_entry *en = tp_pipeline_config_entry(c, i);
        if (en->line < 1 || strlen(en->value) > TP_PIPELINE_CONFIG_MAX_VALUE || !en->key[0])
            abort();
    }
    const char *commands[] = {"sink", "ingest"};
    for (int k = 0; k < 2; k++) {
        char **args;
        size_t na;
        e = tp_pipeline_config_args(c, commands[k], opts, &args, &na, msg, sizeof msg);
        if (e) {
            if (e != TP_ERR_PARSE && e != TP_ERR_NOMEM)
                abort();
            if (e == TP_ERR_PARSE && strncmp(msg, "d/p.yaml:", 9))
                abort();
            continue;
        }
        if (na > 2 * n)
            abort();
        for (size_t i = 0; i < na; i++) {
            if (!strcmp(args[i], "-X")) {
                if (++i == na || !strchr(args[i], '='))
                    abort();
            } else if (strncmp(args[i], "--", 2) || !strcmp(args[i], "--help")) {
                abort();
            }
        }
    }
    tp_pipeline_config_free(c);
    return 0;
}
