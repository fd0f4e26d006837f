/* telepack's public API in one include: records, NDJSON, varints and delimited streams, row batches, packs of both
 * layouts with their metadata, errors, and the library's version. Link with `pkg-config --cflags --libs telepack`. */
#ifndef TELEPACK_TELEPACK_H
#define TELEPACK_TELEPACK_H

#include "telepack/version.h"
#include "telepack/error.h"
#include "telepack/varint.h"
#include "telepack/delimited.h"
#include "telepack/record.h"
#include "telepack/record_json.h"
#include "telepack/rows.h"
#include "telepack/pack.h"
#include "telepack/pack_meta.h"
#include "telepack/dict.h"

#endif
