/* telepack's public API in one include. */
#ifndef TELEPACK_TELEPACK_H
#define TELEPACK_TELEPACK_H

#include "telepack/error.h"
#include "telepack/varint.h"
#include "telepack/record.h"
#include "telepack/rows.h"
#include "telepack/pack.h"
#include "telepack/warehouse.h"

#define TP_VERSION_STRING "0.1.0"

#endif
