/* `telepack demo`: not built yet (placeholder so the CLI links while the command is developed). */
#include <stdio.h>

#include "cli.h"

int tp_cmd_demo(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "telepack demo: not implemented yet\n");
    return 2;
}
