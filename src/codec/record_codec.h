/* Internal entry points of the record codec (src/codec/record.c) for the pack writer and reader's hot loops. */
#ifndef TELEPACK_RECORD_CODEC_H
#define TELEPACK_RECORD_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "telepack/record.h"

/* tp_record_encode without argument checks: dst must have room for TP_RECORD_MAX_ENCODED bytes. Returns the
 * length written (0..77; every encoding is shorter than 128 bytes, so its length prefix is always one byte). */
size_t tp_record_encode_unchecked(const tp_record *r, uint8_t *dst);

/* The length tp_record_encode_unchecked would return for r, without writing anything (0..77). */
size_t tp_record_encoded_len(const tp_record *r);

/* The longest encoding tp_record_encode can produce: 4 varint fields of 1+10 bytes, 2 doubles of 1+8, 3 floats
 * of 1+4. */
#define TP_RECORD_MAX_ENCODED_EXACT 77

#endif
