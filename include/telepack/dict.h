/* zstd dictionaries for packs (docs/FORMAT_V2.md, "zstd dictionaries"): training one on pack contents, loading one
 * (checked, bounded), and a set of them that readers look ids up in. A dictionary's id is zstd's own Dictionary_ID,
 * written in the dictionary's header: the trainer derives it from the dictionary's content (a hash, in zstd's
 * range 32768..2^31-1), so a retrained dictionary gets another id and an id names one content. A loaded tp_dict
 * and a tp_dict_set are immutable once built and may be shared by threads (the pack writers of a compression
 * pool, readers on several threads). */
#ifndef TELEPACK_DICT_H
#define TELEPACK_DICT_H

#include <stddef.h>
#include <stdint.h>

#include "telepack/api.h"
#include "telepack/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_DICT_MAX_BYTES (1u << 20) /* one dictionary file: at most 1 MiB */
#define TP_DICT_MAX_COUNT 64u        /* dictionaries one set (one reader, one sink) holds */
#define TP_DICT_MIN_ID 32768u        /* zstd reserves ids below (and 2^31 and above) */
#define TP_DICT_MAX_ID 0x7fffffffu
#define TP_DICT_MIN_SAMPLES 100u     /* tp_dict_train refuses fewer pack contents */

typedef struct tp_dict tp_dict;
typedef struct tp_dict_set tp_dict_set;

/* Loads a zstd dictionary from data[0..len) (copied). level > 0 also prepares it for compression at that zstd
 * level (what a pack writer with the same level needs); level 0 prepares it for decompression only. Refused, with
 * a sentence in err[0..cap): more than TP_DICT_MAX_BYTES (TP_ERR_PACK_TOO_LARGE), not a zstd dictionary (no magic
 * 37 a4 30 ec: a raw-content dictionary has no id to name it by), an id outside TP_DICT_MIN_ID..TP_DICT_MAX_ID,
 * entropy tables zstd cannot read (TP_ERR_CORRUPT). */
TP_API tp_err tp_dict_new(const void *data, size_t len, int level, tp_dict **out, char *err, size_t cap);

/* tp_dict_new on the contents of the file at path (read at most TP_DICT_MAX_BYTES + 1 bytes); err names the file. */
TP_API tp_err tp_dict_read_file(const char *path, int level, tp_dict **out, char *err, size_t cap);

TP_API void tp_dict_free(tp_dict *d);

TP_API uint32_t tp_dict_id(const tp_dict *d);
TP_API size_t tp_dict_size(const tp_dict *d);      /* bytes of the dictionary file */
TP_API int tp_dict_level(const tp_dict *d);        /* the level it compresses at, 0 = decompression only */
TP_API size_t tp_dict_header_size(const tp_dict *d); /* bytes of entropy tables before the content */

/* Trains a dictionary of at most dict_cap bytes into dict[0..dict_cap) (*dict_len its size) on n samples (pack
 * contents, not frames) concatenated in samples, sizes[i] bytes each (zstd's ZDICT_trainFromBuffer). Its id is
 * zstd's hash of the trained content. Refused: fewer than TP_DICT_MIN_SAMPLES samples, dict_cap outside
 * 1 KiB..TP_DICT_MAX_BYTES (TP_ERR_INVALID_ARG), training failing (too little or too uniform data: TP_ERR_CORRUPT),
 * each with a sentence. Costs about 6 MB plus the samples; thread-safe. */
TP_API tp_err tp_dict_train(const void *samples, const size_t *sizes, size_t n, void *dict, size_t dict_cap,
                            size_t *dict_len, char *err, size_t cap);

/* A set of at most TP_DICT_MAX_COUNT dictionaries with distinct ids. */
TP_API tp_err tp_dict_set_new(tp_dict_set **out);
TP_API void tp_dict_set_free(tp_dict_set *s);

/* Adds d, which the set then owns (and frees). Refused (d stays the caller's): a set already full
 * (TP_ERR_FULL), another dictionary with d's id (TP_ERR_INVALID_ARG: ids are never reused, so two different
 * files with one id are a mistake; the same file twice is also refused, to keep the count honest). */
TP_API tp_err tp_dict_set_add(tp_dict_set *s, tp_dict *d, char *err, size_t cap);

/* Loads every regular file named *.zdict in dir (other names are skipped) for decompression, in name order.
 * Refused with a sentence naming the file: a file that is not a valid dictionary, more than TP_DICT_MAX_COUNT
 * such files, two with one id, an unreadable directory. On error the set keeps the dictionaries loaded before. */
TP_API tp_err tp_dict_set_load_dir(tp_dict_set *s, const char *dir, char *err, size_t cap);

/* The dictionary with this id, or NULL. */
TP_API const tp_dict *tp_dict_set_find(const tp_dict_set *s, uint32_t id);
TP_API size_t tp_dict_set_count(const tp_dict_set *s);
TP_API const tp_dict *tp_dict_set_at(const tp_dict_set *s, size_t i); /* i < count, in the order added */

#ifdef __cplusplus
}
#endif
#endif
