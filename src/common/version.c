/* tp_version(): the version of the library linked at run time (include/telepack/version.h). */
#include "telepack/version.h"

const char *tp_version(void)
{
    return TP_VERSION_STRING;
}

unsigned tp_version_number(void)
{
    return TP_VERSION_NUMBER;
}
