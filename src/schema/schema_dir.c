/* A directory of descriptor sets indexed by the fingerprint of one message (schema_dir.h): read at open, then again
 * on a fingerprint it does not know (at most every rescan_ms), reading only new or changed files. Every bound is a
 * count: TP_SCHEMA_DIR_MAX_FILES files tracked and versions kept, TP_SCHEMA_DIR_MAX_BYTES of sets indexed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "schema/schema_dir.h"

typedef struct tracked {
    char *name;
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
} tracked;

typedef struct version {
    tp_schema *schema;
    char *file; /* the file it was read from (name within the directory) */
} version;

struct tp_schema_dir {
    char *path, *message;
    long rescan_ms;
    int64_t last_scan_ms;
    int64_t dir_mtime_ns;  /* the directory's mtime at the last read: a rename into it changes it */
    int64_t scan_wall_ms;  /* the wall clock when that read began */
    tracked files[TP_SCHEMA_DIR_MAX_FILES];
    size_t nfiles;
    version versions[TP_SCHEMA_DIR_MAX_FILES];
    size_t nversions;
    size_t bytes;          /* descriptor-set bytes of the versions kept */
    int warned_files;      /* the "more than N files" warning was given */
};

static void errf(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
}

/* Reads the whole file (at most TP_SCHEMA_MAX_INPUT bytes) into a new buffer; -1 with errno, or -2: too large. */
static int slurp(const char *full, uint8_t **out, size_t *len)
{
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    uint8_t *buf = malloc(TP_SCHEMA_MAX_INPUT + 1);
    size_t n = 0;
    int rc = 0;
    if (!buf) {
        errno = ENOMEM;
        rc = -1;
    }
    while (!rc && n <= TP_SCHEMA_MAX_INPUT) {
        ssize_t r = read(fd, buf + n, TP_SCHEMA_MAX_INPUT + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = -1;
        else if (r == 0)
            break;
        else
            n += (size_t)r;
    }
    int saved = errno;
    close(fd);
    if (!rc && n > TP_SCHEMA_MAX_INPUT)
        rc = -2;
    if (rc) {
        free(buf);
        errno = saved;
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Reads one new or changed file and indexes its version of the message. */
static void index_file(tp_schema_dir *d, const char *name, const char *full)
{
    uint8_t *src = NULL;
    size_t len = 0;
    int rc = slurp(full, &src, &len);
    if (rc == -2) {
        tp_log(TP_LOG_WARN, "schema", "schema dir %s: %s skipped: larger than %u bytes, the limit of a descriptor set",
               d->path, name, (unsigned)TP_SCHEMA_MAX_INPUT);
        return;
    }
    if (rc) {
        tp_log(TP_LOG_WARN, "schema", "schema dir %s: %s skipped: cannot read it (%s)", d->path, name, strerror(errno));
        return;
    }
    if (d->bytes + len > TP_SCHEMA_DIR_MAX_BYTES) {
        tp_log(TP_LOG_WARN, "schema", "schema dir %s: %s skipped: the sets indexed would exceed %u bytes; remove "
               "versions no longer written and restart", d->path, name, (unsigned)TP_SCHEMA_DIR_MAX_BYTES);
        free(src);
        return;
    }
    char why[512] = "";
    tp_schema *s = NULL;
    tp_err e = tp_schema_load(src, len, d->message, &s, why, sizeof why);
    free(src);
    if (e) {
        /* A set of another message is expected in a shared directory; anything else is a mistake to show. */
        int other = e == TP_ERR_INVALID_ARG && strstr(why, "has no message named") != NULL;
        tp_log(other ? TP_LOG_DEBUG : TP_LOG_WARN, "schema", "schema dir %s: %s skipped: %s", d->path, name,
               why[0] ? why : tp_strerror(e));
        return;
    }
    const char *fp = tp_schema_fingerprint_hex(s);
    for (size_t i = 0; i < d->nversions; i++)
        if (!strcmp(fp, tp_schema_fingerprint_hex(d->versions[i].schema))) {
            tp_log(TP_LOG_DEBUG, "schema", "schema dir %s: %s holds fingerprint %s, already read from %s", d->path,
                   name, fp, d->versions[i].file);
            tp_schema_free(s);
            return;
        }
    char *file = strdup(name);
    if (d->nversions == TP_SCHEMA_DIR_MAX_FILES || !file) {
        tp_log(TP_LOG_WARN, "schema", "schema dir %s: %s skipped: %s", d->path, name,
               file ? "more versions than the limit of 256; remove versions no longer written and restart"
                    : "out of memory");
        free(file);
        tp_schema_free(s);
        return;
    }
    d->versions[d->nversions++] = (version){s, file};
    d->bytes += len;
    tp_log(TP_LOG_INFO, "schema", "schema dir %s: %s holds %s fingerprint %s", d->path, name, d->message, fp);
}

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* One read of the directory: new files and files whose size, mtime or inode changed are read. */
static tp_err scan(tp_schema_dir *d)
{
    d->last_scan_ms = tp_mono_ms();
    d->scan_wall_ms = tp_wall_ms();
    struct stat dst;
    if (stat(d->path, &dst))
        return TP_ERR_IO;
    d->dir_mtime_ns = mtime_ns(&dst);
    DIR *dir = opendir(d->path);
    if (!dir)
        return TP_ERR_IO;
    struct dirent *de;
    char full[4096];
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        struct stat st;
        if (snprintf(full, sizeof full, "%s/%s", d->path, de->d_name) >= (int)sizeof full || stat(full, &st) ||
            !S_ISREG(st.st_mode))
            continue;
        int64_t mtime = mtime_ns(&st);
        tracked *t = NULL;
        for (size_t i = 0; i < d->nfiles && !t; i++)
            if (!strcmp(d->files[i].name, de->d_name))
                t = &d->files[i];
        if (t && t->dev == st.st_dev && t->ino == st.st_ino && t->size == st.st_size && t->mtime_ns == mtime)
            continue;
        if (!t) {
            char *name = d->nfiles < TP_SCHEMA_DIR_MAX_FILES ? strdup(de->d_name) : NULL;
            if (!name) {
                if (!d->warned_files)
                    tp_log(TP_LOG_WARN, "schema", "schema dir %s: more than %d files (or out of memory); %s and "
                           "later ones are ignored", d->path, TP_SCHEMA_DIR_MAX_FILES, de->d_name);
                d->warned_files = 1;
                continue;
            }
            t = &d->files[d->nfiles++];
            t->name = name;
        }
        t->dev = st.st_dev;
        t->ino = st.st_ino;
        t->size = st.st_size;
        t->mtime_ns = mtime;
        index_file(d, t->name, full);
    }
    closedir(dir);
    return TP_OK;
}

tp_err tp_schema_dir_open(const char *path, const char *message, long rescan_ms, tp_schema_dir **out, char *err,
                          size_t err_cap)
{
    if (!out || !path || !message || !*path || !*message || rescan_ms < 0) {
        errf(err, err_cap, "a schema directory needs a path and a message name");
        return TP_ERR_INVALID_ARG;
    }
    *out = NULL;
    tp_schema_dir *d = calloc(1, sizeof *d);
    if (!d || !(d->path = strdup(path)) || !(d->message = strdup(message))) {
        tp_schema_dir_free(d);
        errf(err, err_cap, "out of memory opening the schema directory %s", path ? path : "");
        return TP_ERR_NOMEM;
    }
    d->rescan_ms = rescan_ms;
    if (scan(d)) {
        errf(err, err_cap, "the schema directory %s cannot be read (%s)", path, strerror(errno));
        tp_schema_dir_free(d);
        return TP_ERR_IO;
    }
    *out = d;
    return TP_OK;
}

void tp_schema_dir_free(tp_schema_dir *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nfiles; i++)
        free(d->files[i].name);
    for (size_t i = 0; i < d->nversions; i++) {
        tp_schema_free(d->versions[i].schema);
        free(d->versions[i].file);
    }
    free(d->path);
    free(d->message);
    free(d);
}

static const version *lookup(const tp_schema_dir *d, const char *fp_hex)
{
    for (size_t i = 0; i < d->nversions; i++)
        if (!strcmp(fp_hex, tp_schema_fingerprint_hex(d->versions[i].schema)))
            return &d->versions[i];
    return NULL;
}

const tp_schema *tp_schema_dir_find(tp_schema_dir *d, const char *fp_hex, const char **file)
{
    if (!d || !fp_hex)
        return NULL;
    const version *v = lookup(d, fp_hex);
    struct stat dst;
    /* Read again when the interval has passed, or at once when a file was added or renamed into the directory: its
     * mtime moved, or it was so close to the last read (file times tick every 1-10 ms) that a change in the same
     * tick would not show. */
    if (!v && (tp_mono_ms() - d->last_scan_ms >= d->rescan_ms ||
               (!stat(d->path, &dst) && (mtime_ns(&dst) != d->dir_mtime_ns ||
                                         d->scan_wall_ms - d->dir_mtime_ns / 1000000 < 100)))) {
        if (scan(d))
            tp_log(TP_LOG_WARN, "schema", "schema dir %s cannot be read (%s); the versions read before stay known",
                   d->path, strerror(errno));
        v = lookup(d, fp_hex);
    }
    if (v && file)
        *file = v->file;
    return v ? v->schema : NULL;
}

size_t tp_schema_dir_count(const tp_schema_dir *d)
{
    return d ? d->nversions : 0;
}

const char *tp_schema_dir_path(const tp_schema_dir *d)
{
    return d ? d->path : NULL;
}

const tp_schema *tp_schema_dir_at(const tp_schema_dir *d, size_t i, const char **file)
{
    if (!d || i >= d->nversions)
        return NULL;
    if (file)
        *file = d->versions[i].file;
    return d->versions[i].schema;
}
