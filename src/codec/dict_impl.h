/* What the pack writer and reader take from a loaded dictionary (src/codec/dict.c): zstd's prepared forms. */
#ifndef TP_CODEC_DICT_IMPL_H
#define TP_CODEC_DICT_IMPL_H

#include <zstd.h>

#include "telepack/dict.h"

/* NULL when the dictionary was loaded for decompression only (level 0). */
const ZSTD_CDict *tp_dict_cdict(const tp_dict *d);
const ZSTD_DDict *tp_dict_ddict(const tp_dict *d);

#endif
