/* Subcommands of the `telepack` binary: each lives in src/cmd_<name>.c and takes main's argv shifted by one
 * (argv[0] is the subcommand's name). Each returns the process exit status: 0 success, 1 runtime failure,
 * 2 usage error or bad input. Each supports --help. */
#ifndef TELEPACK_CLI_H
#define TELEPACK_CLI_H

int tp_cmd_pack(int argc, char **argv);
int tp_cmd_inspect(int argc, char **argv);
int tp_cmd_gen(int argc, char **argv);
int tp_cmd_ingest(int argc, char **argv);
int tp_cmd_sink(int argc, char **argv);
int tp_cmd_demo(int argc, char **argv);
int tp_cmd_tune(int argc, char **argv);
int tp_cmd_schema(int argc, char **argv);
int tp_cmd_dict(int argc, char **argv);
/* The --schema paths of pack and inspect (cmd_pack_schema.c): a message type of the user's own as pbpack v1. */
int tp_cmd_pack_schema(int argc, char **argv);
int tp_cmd_inspect_schema(int argc, char **argv);
int tp_cmd_ingest_schema(int argc, char **argv); /* cmd_ingest_schema.c: --from replay */

#endif
