/* `telepack bench`: not built yet (placeholder so the CLI links while the command is developed). */
#include <stdio.h>

#include "cli.h"

int tp_cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "telepack bench: not implemented yet\n");
    return 2;
}
