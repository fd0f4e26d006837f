/* A directory of descriptor sets, indexed by the fingerprint of one message (`sink --schema-dir`): the sink finds
 * the writer version of a pack by its tp-schema-fp there instead of being given each version (--writer-schema).
 * The directory is read at open and again when a fingerprint is not found: at once when its entries changed (its
 * mtime: a file added or renamed into it), else at most every rescan_ms (a file rewritten in place); only files
 * that are new or changed since (name, size, mtime, inode) are read. docs/SCHEMA.md, section 6. */
#ifndef TELEPACK_SCHEMA_SCHEMA_DIR_H
#define TELEPACK_SCHEMA_SCHEMA_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "schema/schema.h"

#define TP_SCHEMA_DIR_MAX_FILES 256          /* files tracked; further ones are ignored with a warning */
#define TP_SCHEMA_DIR_MAX_BYTES (64u << 20)  /* descriptor-set bytes indexed in total (each <= TP_SCHEMA_MAX_INPUT) */

typedef struct tp_schema_dir tp_schema_dir;

/* Opens `path` and indexes the fingerprint of `message` (full name) in each regular file whose name does not start
 * with '.' (write a new file under a dot name, then rename it). A file that is not a descriptor set, or whose
 * message is refused, is skipped and logged once (warning); a file that does not define the message is skipped
 * (debug). rescan_ms: the least time between two reads of a directory whose entries did not change (0: every
 * miss). TP_ERR_IO with a
 * sentence when the directory cannot be read, TP_ERR_NOMEM. Not thread-safe: one thread uses the handle. */
tp_err tp_schema_dir_open(const char *path, const char *message, long rescan_ms, tp_schema_dir **out, char *err,
                          size_t err_cap);
void tp_schema_dir_free(tp_schema_dir *d);

/* The schema of `message` whose fingerprint is fp_hex (16 lowercase hex digits), reading the directory again first
 * when it is not indexed and the directory's entries changed or the last read is rescan_ms old. NULL when none
 * has it. The schema (and *file, the
 * name of the file it came from, when file is not NULL) stays valid until tp_schema_dir_free: a file that changes
 * adds its new version beside the old one. */
const tp_schema *tp_schema_dir_find(tp_schema_dir *d, const char *fp_hex, const char **file);

/* Versions indexed (distinct fingerprints), and the directory's path. */
size_t tp_schema_dir_count(const tp_schema_dir *d);
/* Version i (0 <= i < tp_schema_dir_count), in the order they were found, and its file's name when file is not
 * NULL; NULL past the end. Valid until tp_schema_dir_free. */
const tp_schema *tp_schema_dir_at(const tp_schema_dir *d, size_t i, const char **file);
const char *tp_schema_dir_path(const tp_schema_dir *d);

#endif
