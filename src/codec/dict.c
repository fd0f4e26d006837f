/* zstd dictionaries (include/telepack/dict.h): loading with checks and caps, training, and the set readers look
 * ids up in. What a dictionary file holds is zstd's format (RFC 8878, section 5); zstd parses its entropy tables,
 * this file checks the size, the magic and the id first, so a hostile file costs at most TP_DICT_MAX_BYTES. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zdict.h>
#include <zstd.h>

#include "codec/dict_impl.h"

#define DICT_MAGIC 0xEC30A437u

struct tp_dict {
    uint32_t id;
    size_t size, header;
    int level;
    uint64_t hash;     /* FNV-1a of the bytes: the same file loaded twice */
    ZSTD_CDict *cdict; /* level > 0 */
    ZSTD_DDict *ddict;
};

struct tp_dict_set {
    tp_dict *d[TP_DICT_MAX_COUNT];
    size_t n;
};

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static tp_err fail(tp_err e, char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return e;
}

tp_err tp_dict_new(const void *data, size_t len, int level, tp_dict **out, char *err, size_t cap)
{
    if (!out || (!data && len) || level < 0 || level > ZSTD_maxCLevel())
        return fail(TP_ERR_INVALID_ARG, err, cap, "no dictionary bytes, no place for the result, or zstd level %d "
                    "outside 0..%d", level, ZSTD_maxCLevel());
    *out = NULL;
    const uint8_t *p = data;
    if (len > TP_DICT_MAX_BYTES)
        return fail(TP_ERR_PACK_TOO_LARGE, err, cap, "dictionary of %zu bytes is above the limit of %u bytes (1 MiB)",
                    len, TP_DICT_MAX_BYTES);
    if (len < 8 || ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24) != DICT_MAGIC)
        return fail(TP_ERR_CORRUPT, err, cap, "not a zstd dictionary: %zu bytes that do not start with the "
                    "dictionary magic 37 a4 30 ec (train one with `telepack dict train`)", len);
    uint32_t id = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    if (id < TP_DICT_MIN_ID || id > TP_DICT_MAX_ID)
        return fail(TP_ERR_CORRUPT, err, cap, "zstd dictionary id %u is outside %u..%u, the range zstd leaves to "
                    "users", id, TP_DICT_MIN_ID, TP_DICT_MAX_ID);
    size_t header = ZDICT_getDictHeaderSize(data, len);
    if (ZDICT_isError(header) || header > len)
        return fail(TP_ERR_CORRUPT, err, cap, "zstd dictionary %u is corrupt: its entropy tables do not parse (zstd "
                    "says \"%s\")", id, ZDICT_isError(header) ? ZDICT_getErrorName(header) : "header too long");
    tp_dict *d = calloc(1, sizeof *d);
    if (!d)
        return fail(TP_ERR_NOMEM, err, cap, "out of memory for a dictionary of %zu bytes", len);
    d->id = id;
    d->size = len;
    d->header = header;
    d->level = level;
    d->hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        d->hash = (d->hash ^ p[i]) * 0x100000001b3ull;
    d->ddict = ZSTD_createDDict(data, len); /* with the magic present zstd reads it as a full dictionary */
    if (d->ddict && level > 0)
        d->cdict = ZSTD_createCDict(data, len, level);
    if (!d->ddict || (level > 0 && !d->cdict)) {
        tp_dict_free(d);
        return fail(TP_ERR_CORRUPT, err, cap, "zstd cannot load dictionary %u (%zu bytes): its tables are corrupt or "
                    "memory ran out", id, len);
    }
    if (ZSTD_getDictID_fromDDict(d->ddict) != id) {
        tp_dict_free(d);
        return fail(TP_ERR_CORRUPT, err, cap, "zstd reads another id than %u from the dictionary", id);
    }
    *out = d;
    return TP_OK;
}

tp_err tp_dict_read_file(const char *path, int level, tp_dict **out, char *err, size_t cap)
{
    if (!path || !out)
        return fail(TP_ERR_INVALID_ARG, err, cap, "no dictionary file given");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(TP_ERR_IO, err, cap, "cannot open dictionary %s: %s", path, strerror(errno));
    uint8_t *buf = malloc(TP_DICT_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return fail(TP_ERR_NOMEM, err, cap, "out of memory reading dictionary %s", path);
    }
    size_t n = fread(buf, 1, TP_DICT_MAX_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    tp_err e;
    if (bad) {
        e = fail(TP_ERR_IO, err, cap, "cannot read dictionary %s", path);
    } else {
        char why[256];
        e = tp_dict_new(buf, n, level, out, why, sizeof why);
        if (e)
            fail(e, err, cap, "dictionary %s: %s", path, why);
    }
    free(buf);
    return e;
}

void tp_dict_free(tp_dict *d)
{
    if (!d)
        return;
    ZSTD_freeCDict(d->cdict);
    ZSTD_freeDDict(d->ddict);
    free(d);
}

uint32_t tp_dict_id(const tp_dict *d) { return d ? d->id : 0; }
size_t tp_dict_size(const tp_dict *d) { return d ? d->size : 0; }
int tp_dict_level(const tp_dict *d) { return d ? d->level : 0; }
size_t tp_dict_header_size(const tp_dict *d) { return d ? d->header : 0; }
const ZSTD_CDict *tp_dict_cdict(const tp_dict *d) { return d ? d->cdict : NULL; }
const ZSTD_DDict *tp_dict_ddict(const tp_dict *d) { return d ? d->ddict : NULL; }

tp_err tp_dict_train(const void *samples, const size_t *sizes, size_t n, void *dict, size_t dict_cap,
                     size_t *dict_len, char *err, size_t cap)
{
    if (!samples || !sizes || !dict || !dict_len)
        return fail(TP_ERR_INVALID_ARG, err, cap, "no samples or no place for the dictionary");
    if (dict_cap < 1024 || dict_cap > TP_DICT_MAX_BYTES)
        return fail(TP_ERR_INVALID_ARG, err, cap, "dictionary size %zu is outside 1 KiB..1 MiB", dict_cap);
    if (n < TP_DICT_MIN_SAMPLES)
        return fail(TP_ERR_INVALID_ARG, err, cap, "%zu packs are too few to train a dictionary on; give at least %u "
                    "(a few thousand is better)", n, TP_DICT_MIN_SAMPLES);
    if (n > UINT32_MAX)
        return fail(TP_ERR_INVALID_ARG, err, cap, "%zu packs are too many for zstd's trainer", n);
    size_t r = ZDICT_trainFromBuffer(dict, dict_cap, samples, sizes, (unsigned)n);
    if (ZDICT_isError(r))
        return fail(TP_ERR_CORRUPT, err, cap, "zstd could not train a dictionary on %zu packs: %s (more or more "
                    "varied packs, or a smaller --size, may help)", n, ZDICT_getErrorName(r));
    *dict_len = r;
    return TP_OK;
}

tp_err tp_dict_set_new(tp_dict_set **out)
{
    if (!out)
        return TP_ERR_INVALID_ARG;
    *out = calloc(1, sizeof **out);
    return *out ? TP_OK : TP_ERR_NOMEM;
}

void tp_dict_set_free(tp_dict_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        tp_dict_free(s->d[i]);
    free(s);
}

tp_err tp_dict_set_add(tp_dict_set *s, tp_dict *d, char *err, size_t cap)
{
    if (!s || !d)
        return fail(TP_ERR_INVALID_ARG, err, cap, "no set or no dictionary");
    const tp_dict *old = tp_dict_set_find(s, d->id);
    if (old)
        return fail(TP_ERR_INVALID_ARG, err, cap, "dictionary id %u is loaded twice (%s): keep one file per id",
                    d->id, old->hash == d->hash && old->size == d->size ? "the same dictionary"
                                                                         : "two different dictionaries with one id");
    if (s->n == TP_DICT_MAX_COUNT)
        return fail(TP_ERR_FULL, err, cap, "more than %u dictionaries; remove retired ones (no pack left in the "
                    "topic names them)", TP_DICT_MAX_COUNT);
    s->d[s->n++] = d;
    return TP_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

tp_err tp_dict_set_load_dir(tp_dict_set *s, const char *dir, char *err, size_t cap)
{
    if (!s || !dir)
        return fail(TP_ERR_INVALID_ARG, err, cap, "no set or no directory");
    DIR *dh = opendir(dir);
    if (!dh)
        return fail(TP_ERR_IO, err, cap, "cannot open dictionary directory %s: %s", dir, strerror(errno));
    char *names[TP_DICT_MAX_COUNT + 1];
    size_t n = 0;
    tp_err e = TP_OK;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= 6 || strcmp(de->d_name + len - 6, ".zdict") != 0)
            continue;
        if (n == TP_DICT_MAX_COUNT) {
            e = fail(TP_ERR_FULL, err, cap, "dictionary directory %s holds more than %u *.zdict files; remove "
                     "retired ones", dir, TP_DICT_MAX_COUNT);
            break;
        }
        if (!(names[n] = strdup(de->d_name))) {
            e = fail(TP_ERR_NOMEM, err, cap, "out of memory listing %s", dir);
            break;
        }
        n++;
    }
    closedir(dh);
    qsort(names, n, sizeof names[0], cmp_names);
    for (size_t i = 0; i < n && !e; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            e = fail(TP_ERR_IO, err, cap, "dictionary %s is not a regular file", path);
            break;
        }
        tp_dict *d;
        char why[384];
        if ((e = tp_dict_read_file(path, 0, &d, why, sizeof why)) != TP_OK) {
            fail(e, err, cap, "%s", why);
            break;
        }
        if ((e = tp_dict_set_add(s, d, why, sizeof why)) != TP_OK) {
            tp_dict_free(d);
            fail(e, err, cap, "%s: %s", path, why);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return e;
}

const tp_dict *tp_dict_set_find(const tp_dict_set *s, uint32_t id)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->n; i++)
        if (s->d[i]->id == id)
            return s->d[i];
    return NULL;
}

size_t tp_dict_set_count(const tp_dict_set *s) { return s ? s->n : 0; }

const tp_dict *tp_dict_set_at(const tp_dict_set *s, size_t i) { return s && i < s->n ? s->d[i] : NULL; }
