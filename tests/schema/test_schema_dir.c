/* A directory of descriptor sets indexed by fingerprint (src/schema/schema_dir.c): which files count, read again on
 * a fingerprint it does not know (new, renamed into place, changed), the rescan interval, the file limit.
 * Usage: test_schema_dir DATA_DIR (the descriptor sets protoc made at build time). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "common/log.h"
#include "schema/schema_dir.h"

#define MSG "fleet.ev.v1.EvTelemetry"

static const char *data;
static char tmp[256];

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(1 << 20);
    *len = f && buf ? fread(buf, 1, 1 << 20, f) : 0;
    if (f)
        fclose(f);
    if (!*len) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    return buf;
}

/* Writes the bytes of DATA_DIR/set (or `junk` when set is NULL) to tmp/name. */
static void put(const char *name, const char *set, const char *junk)
{
    char path[512];
    size_t len = 0;
    uint8_t *buf = NULL;
    if (set) {
        snprintf(path, sizeof path, "%s/%s", data, set);
        buf = slurp(path, &len);
    }
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        if (set)
            fwrite(buf, 1, len, f);
        else
            fputs(junk, f);
        fclose(f);
    }
    free(buf);
}

static void fingerprint(const char *set, char out[17])
{
    char path[512], err[256];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", data, set);
    uint8_t *buf = slurp(path, &len);
    tp_schema *s = NULL;
    CHECK_ERR(tp_schema_load(buf, len, MSG, &s, err, sizeof err), TP_OK);
    snprintf(out, 17, "%s", s ? tp_schema_fingerprint_hex(s) : "");
    tp_schema_free(s);
    free(buf);
}

static void in_tmp(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmp, name);
}

static void test_open_missing(void)
{
    tp_schema_dir *d = (tp_schema_dir *)1;
    char err[512] = "";
    CHECK_ERR(tp_schema_dir_open("/nonexistent/telepack-schemas", MSG, 0, &d, err, sizeof err), TP_ERR_IO);
    CHECK(d == NULL);
    CHECK(strstr(err, "the schema directory /nonexistent/telepack-schemas cannot be read") != NULL);
}

static void test_index_and_rescan(void)
{
    char fp_ev[17], fp_added[17], fp_retyped[17], fp_reordered[17];
    fingerprint("ev_telemetry.pb", fp_ev);
    fingerprint("ev_added.pb", fp_added);
    fingerprint("ev_retyped.pb", fp_retyped);
    fingerprint("ev_reordered.pb", fp_reordered);
    CHECK_STR(fp_ev, fp_reordered); /* the same message declared in another order */

    put("v1.pb", "ev_telemetry.pb", NULL);
    put("v2.desc", "ev_added.pb", NULL);
    put("same-as-v1.pb", "ev_reordered.pb", NULL); /* same fingerprint: one version */
    put("vehicle.pb", "vehicle.pb", NULL);         /* another message: skipped */
    put("junk.pb", NULL, "not a descriptor set\n"); /* malformed: skipped with a warning */
    put(".incoming.pb", "ev_retyped.pb", NULL);    /* a dot name: not read */
    char sub[512];
    in_tmp(sub, sizeof sub, "subdir.pb");
    CHECK(mkdir(sub, 0700) == 0);

    tp_schema_dir *d = NULL;
    char err[512] = "";
    CHECK_ERR(tp_schema_dir_open(tmp, MSG, 0, &d, err, sizeof err), TP_OK);
    if (!d)
        return;
    CHECK_INT(tp_schema_dir_count(d), 2);
    CHECK_STR(tp_schema_dir_path(d), tmp);
    const char *file = NULL;
    const tp_schema *v1 = tp_schema_dir_find(d, fp_ev, &file);
    CHECK(v1 != NULL);
    CHECK(file && (!strcmp(file, "v1.pb") || !strcmp(file, "same-as-v1.pb")));
    CHECK(v1 && !strcmp(tp_schema_fingerprint_hex(v1), fp_ev));
    const tp_schema *v2 = tp_schema_dir_find(d, fp_added, &file);
    CHECK(v2 != NULL);
    CHECK_STR(file, "v2.desc");
    CHECK(tp_schema_dir_find(d, fp_retyped, NULL) == NULL);
    CHECK(tp_schema_dir_find(d, "0123456789abcdef", NULL) == NULL);
    const char *f0 = NULL, *f1 = NULL;
    const tp_schema *a0 = tp_schema_dir_at(d, 0, &f0), *a1 = tp_schema_dir_at(d, 1, &f1);
    CHECK((a0 == v1 && a1 == v2 && f1 && !strcmp(f1, "v2.desc")) ||
          (a0 == v2 && a1 == v1 && f0 && !strcmp(f0, "v2.desc")));
    CHECK(tp_schema_dir_at(d, 2, NULL) == NULL);
    CHECK_INT(tp_schema_dir_count(d), 2);

    /* Renamed into place: found on the next miss. */
    char from[512], to[512];
    in_tmp(from, sizeof from, ".incoming.pb");
    in_tmp(to, sizeof to, "v3.pb");
    CHECK(rename(from, to) == 0);
    const tp_schema *v3 = tp_schema_dir_find(d, fp_retyped, &file);
    CHECK(v3 != NULL);
    CHECK_STR(file, "v3.pb");
    CHECK_INT(tp_schema_dir_count(d), 3);

    /* A removed file's version stays known. */
    unlink(to);
    CHECK(tp_schema_dir_find(d, fp_retyped, NULL) == v3);
    /* A changed file replaces nothing: the versions found before stay valid (v1 and v2 are still used below). */
    put("v2.desc", "ev_telemetry.pb", NULL);
    CHECK(tp_schema_dir_find(d, "fedcba9876543210", NULL) == NULL);
    CHECK(tp_schema_dir_find(d, fp_added, NULL) == v2);
    CHECK(v1 && v2 && tp_schema_compare(v1, v2, NULL, 0) == TP_SCHEMA_COMPATIBLE);
    tp_schema_dir_free(d);
}

/* A file read while it was junk (half written) is read again once it changes. */
static void test_changed_file(void)
{
    char fp_added[17];
    fingerprint("ev_added.pb", fp_added);
    put("late.pb", NULL, "half");
    tp_schema_dir *d = NULL;
    char err[512] = "";
    CHECK_ERR(tp_schema_dir_open(tmp, MSG, 0, &d, err, sizeof err), TP_OK);
    if (!d)
        return;
    CHECK_INT(tp_schema_dir_count(d), 0);
    CHECK(tp_schema_dir_find(d, fp_added, NULL) == NULL);
    put("late.pb", "ev_added.pb", NULL);
    const char *file = NULL;
    CHECK(tp_schema_dir_find(d, fp_added, &file) != NULL);
    CHECK_STR(file, "late.pb");
    CHECK_INT(tp_schema_dir_count(d), 1);
    tp_schema_dir_free(d);
}

/* With a rescan interval, a file rewritten in place is not read again within it; a file added to the directory
 * (its entries change) is read at the next miss. */
static void test_rescan_interval(void)
{
    char fp_added[17], fp_retyped[17];
    fingerprint("ev_added.pb", fp_added);
    fingerprint("ev_retyped.pb", fp_retyped);
    put("a.pb", "ev_telemetry.pb", NULL);
    put("b.pb", NULL, "junk");
    usleep(150 * 1000); /* the directory's last change well before the read (file times tick every 1-10 ms) */
    tp_schema_dir *d = NULL;
    char err[512] = "";
    CHECK_ERR(tp_schema_dir_open(tmp, MSG, 3600 * 1000L, &d, err, sizeof err), TP_OK);
    if (!d)
        return;
    CHECK_INT(tp_schema_dir_count(d), 1);
    put("b.pb", "ev_added.pb", NULL);                     /* in place: the directory's entries stay */
    CHECK(tp_schema_dir_find(d, fp_added, NULL) == NULL); /* within the hour: not read again */
    put("c.pb", "ev_retyped.pb", NULL);                   /* a new entry: read at the next miss */
    CHECK(tp_schema_dir_find(d, fp_retyped, NULL) != NULL);
    CHECK(tp_schema_dir_find(d, fp_added, NULL) != NULL); /* b.pb read in that same pass */
    CHECK_INT(tp_schema_dir_count(d), 3);
    tp_schema_dir_free(d);
}

/* At most TP_SCHEMA_DIR_MAX_FILES files are tracked: a file beyond them is ignored, not read. */
static void test_file_limit(void)
{
    char fp_added[17], name[64];
    fingerprint("ev_added.pb", fp_added);
    tp_log_configure(TP_LOG_ERROR, TP_LOG_TEXT); /* 256 "skipped" warnings */
    for (int i = 0; i < TP_SCHEMA_DIR_MAX_FILES; i++) {
        snprintf(name, sizeof name, "junk%03d", i);
        put(name, NULL, "x");
    }
    tp_schema_dir *d = NULL;
    char err[512] = "";
    CHECK_ERR(tp_schema_dir_open(tmp, MSG, 0, &d, err, sizeof err), TP_OK);
    if (!d)
        return;
    CHECK_INT(tp_schema_dir_count(d), 0);
    put("valid.pb", "ev_added.pb", NULL);
    CHECK(tp_schema_dir_find(d, fp_added, NULL) == NULL);
    tp_schema_dir_free(d);
    tp_log_configure(TP_LOG_INFO, TP_LOG_TEXT);
}

static void empty_tmp(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0 || mkdir(tmp, 0700) != 0) {
        fprintf(stderr, "cannot make %s: %s\n", tmp, strerror(errno));
        exit(2);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_schema_dir DATA_DIR\n");
        return 2;
    }
    data = argv[1];
    snprintf(tmp, sizeof tmp, "%s/schema_dir_test.%ld", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    test_open_missing();
    empty_tmp();
    test_index_and_rescan();
    empty_tmp();
    test_changed_file();
    empty_tmp();
    test_rescan_interval();
    empty_tmp();
    test_file_limit();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return check_exit();
}
