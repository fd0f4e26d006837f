/* Internal: the jansson-only NDJSON record parser, for tests and fuzzing that compare it with the fast path that
 * tp_record_json_parse tries first. Same contract as tp_record_json_parse_flags. */
#ifndef TELEPACK_RECORD_JSON_FULL_H
#define TELEPACK_RECORD_JSON_FULL_H

#include <stddef.h>

#include "telepack/record_json.h"

tp_err tp_record_json_parse_full(const char *text, size_t len, unsigned flags, tp_record *out, char *msg,
                                 size_t msg_cap);

#endif
