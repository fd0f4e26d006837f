/* The null warehouse (null:): loads are accepted and discarded, offsets live in memory for one handle, loads stay
 * all-or-nothing when memory runs out, and `telepack sink --help` names it. Usage: test_wh_null [TELEPACK]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "warehouse/warehouse.h"
#include "wh_fixture.h"

/* Allocation failures on demand: the link wraps strdup, realloc and calloc (tests/meson.build), and the wrappers fail the
 * call when its countdown reaches zero. -1 = never fail. */
char *__real_strdup(const char *s);
void *__real_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
void *__wrap_realloc(void *p, size_t n);
void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
static int fail_strdup_in = -1, fail_realloc_in = -1, fail_calloc_in = -1;

void *__wrap_calloc(size_t n, size_t size)
{
    if (fail_calloc_in >= 0 && fail_calloc_in-- == 0)
        return NULL;
    return __real_calloc(n, size);
}

char *__wrap_strdup(const char *s)
{
    if (fail_strdup_in >= 0 && fail_strdup_in-- == 0)
        return NULL;
    return __real_strdup(s);
}

void *__wrap_realloc(void *p, size_t n)
{
    if (fail_realloc_in >= 0 && fail_realloc_in-- == 0)
        return NULL;
    return __real_realloc(p, n);
}

static int64_t stored(tp_warehouse *w, const char *topic, int32_t partition)
{
    int64_t off = -7;
    CHECK_ERR(tp_warehouse_stored_offset(w, topic, partition, &off), TP_OK);
    return off;
}

static tp_warehouse *open_null(void)
{
    tp_warehouse *w = NULL;
    char msg[256];
    CHECK_ERR(tp_warehouse_open("null:", NULL, &w, msg, sizeof msg), TP_OK);
    return w;
}

static void test_open(void)
{
    tp_warehouse *w = NULL;
    char msg[256];
    CHECK_ERR(tp_warehouse_open("null:extra", NULL, &w, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(w == NULL);
    CHECK(strstr(msg, "\"null:extra\"") != NULL);
    CHECK(strstr(msg, "use null:") != NULL);
    /* The unknown-scheme sentence offers it. */
    CHECK_ERR(tp_warehouse_open("nul:", NULL, &w, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "null:") != NULL);

    w = open_null();
    CHECK_STR(tp_warehouse_kind(w), "null");
    /* No table to create or check, with or without create_table; always reachable. */
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_ping(w), TP_OK);
    tp_warehouse_close(w);
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.create_table = 1;
    CHECK_ERR(tp_warehouse_open("null:", &o, &w, NULL, 0), TP_OK);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    tp_warehouse_close(w);
}

static void test_offsets(void)
{
    tp_warehouse *w = open_null();
    tp_row_batch *b = wh_fixture_new(1000, 0, 0, 0);
    CHECK_INT(stored(w, "positions", 0), -1);

    tp_partition_offset po[] = {{0, 10}, {3, 30}, {5, 50}};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", po, 3), TP_OK);
    CHECK_INT(stored(w, "positions", 0), 10);
    CHECK_INT(stored(w, "positions", 3), 30);
    CHECK_INT(stored(w, "positions", 5), 50);
    CHECK_INT(stored(w, "positions", 1), -1);
    CHECK_INT(stored(w, "other", 0), -1); /* offsets are per topic */

    /* A later load moves the partitions it names and leaves the others; the same partition twice: the last wins. */
    tp_partition_offset po2[] = {{3, 31}, {7, 70}, {7, 71}};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", po2, 3), TP_OK);
    CHECK_INT(stored(w, "positions", 0), 10);
    CHECK_INT(stored(w, "positions", 3), 31);
    CHECK_INT(stored(w, "positions", 7), 71);
    tp_partition_offset other = {0, 99};
    CHECK_ERR(tp_warehouse_load(w, b, "other", &other, 1), TP_OK);
    CHECK_INT(stored(w, "other", 0), 99);
    CHECK_INT(stored(w, "positions", 0), 10);

    /* Rows without offsets, and an empty batch with offsets, are fine. */
    CHECK_ERR(tp_warehouse_load(w, b, NULL, NULL, 0), TP_OK);
    b->count = 0;
    tp_partition_offset po3 = {0, 12};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po3, 1), TP_OK);
    CHECK_INT(stored(w, "positions", 0), 12);
    /* The shared argument checks still apply. */
    b->count = b->capacity + 1;
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po3, 1), TP_ERR_INVALID_ARG);
    CHECK(strstr(tp_warehouse_last_error(w), "null: row batch count") != NULL);
    b->count = 10;
    CHECK_ERR(tp_warehouse_load(w, b, NULL, &po3, 1), TP_ERR_INVALID_ARG);

    /* Many partitions: the table grows past its first allocation. */
    tp_partition_offset many[40];
    for (int i = 0; i < 40; i++)
        many[i] = (tp_partition_offset){100 + i, 1000 + i};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", many, 40), TP_OK);
    for (int i = 0; i < 40; i++)
        CHECK_INT(stored(w, "positions", 100 + i), 1000 + i);
    CHECK_INT(stored(w, "positions", 3), 31);
    tp_warehouse_close(w);

    /* Nothing survives the handle. */
    w = open_null();
    CHECK_INT(stored(w, "positions", 3), -1);
    tp_warehouse_close(w);
    wh_fixture_free(b);
}

/* Out of memory in the middle of a load: the load fails with TP_ERR_NOMEM and no offset moved. */
static void test_nomem(void)
{
    tp_warehouse *w = open_null();
    tp_row_batch *b = wh_fixture_new(10, 0, 0, 0);
    tp_partition_offset po[] = {{0, 10}, {1, 20}};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", po, 2), TP_OK);

    /* The offset table cannot grow. */
    tp_partition_offset many[20];
    for (int i = 0; i < 20; i++)
        many[i] = (tp_partition_offset){i, 500 + i};
    fail_realloc_in = 0;
    CHECK_ERR(tp_warehouse_load(w, b, "positions", many, 20), TP_ERR_NOMEM);
    fail_realloc_in = -1;
    CHECK(strstr(tp_warehouse_last_error(w), "out of memory") != NULL);
    CHECK_INT(stored(w, "positions", 0), 10);
    CHECK_INT(stored(w, "positions", 1), 20);
    CHECK_INT(stored(w, "positions", 2), -1);

    /* The second new partition's topic copy fails after the first succeeded (and is freed: ASan/valgrind see it). */
    tp_partition_offset po2[] = {{0, 11}, {2, 30}, {3, 40}};
    fail_strdup_in = 1;
    CHECK_ERR(tp_warehouse_load(w, b, "positions", po2, 3), TP_ERR_NOMEM);
    fail_strdup_in = -1;
    CHECK(strstr(tp_warehouse_last_error(w), "\"positions\"") != NULL);
    CHECK_INT(stored(w, "positions", 0), 10);
    CHECK_INT(stored(w, "positions", 2), -1);
    CHECK_INT(stored(w, "positions", 3), -1);
    /* And once memory is back the same load goes through. */
    CHECK_ERR(tp_warehouse_load(w, b, "positions", po2, 3), TP_OK);
    CHECK_INT(stored(w, "positions", 0), 11);
    CHECK_INT(stored(w, "positions", 2), 30);
    CHECK_INT(stored(w, "positions", 3), 40);
    tp_warehouse_close(w);

    /* Out of memory while opening: the handle (first calloc) is made, the backend's state (second) is not. */
    fail_calloc_in = 1;
    CHECK_ERR(tp_warehouse_open("null:", NULL, &w, NULL, 0), TP_ERR_NOMEM);
    fail_calloc_in = -1;
    CHECK(w == NULL);
    wh_fixture_free(b);
}

/* `telepack sink --help` lists the URL. */
static void test_help(const char *telepack)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' sink --help", telepack);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p)
        return;
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, p);
    text[n] = '\0';
    CHECK_INT(pclose(p), 0);
    CHECK(strstr(text, "| null: (discards the rows") != NULL);
}

int main(int argc, char **argv)
{
    test_open();
    test_offsets();
    test_nomem();
    if (argc > 1)
        test_help(argv[1]);
    return check_exit();
}
