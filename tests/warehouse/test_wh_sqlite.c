/* The SQLite warehouse: rows read back field by field, offsets in the same transaction as the rows, idempotent
 * reloads, reopen, and every error path as a sentence. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "warehouse/warehouse.h"
#include "wh_fixture.h"

static char dir[256];
static char path[512];
static char url[600];

static sqlite3 *raw_open(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        abort();
    return db;
}

static long long query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long v = -999;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static long long count_rows(void)
{
    sqlite3 *db = raw_open();
    long long n = query_int(db, "SELECT count(*) FROM vehicle_positions");
    sqlite3_close(db);
    return n;
}

static tp_warehouse *open_wh(int create, long timeout_ms)
{
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.create_table = create;
    if (timeout_ms)
        o.timeout_ms = timeout_ms;
    tp_warehouse *w = NULL;
    char msg[512];
    CHECK_ERR(tp_warehouse_open(url, &o, &w, msg, sizeof msg), TP_OK);
    CHECK(w != NULL);
    if (!w) {
        fprintf(stderr, "open failed: %s\n", msg);
        exit(1);
    }
    return w;
}

/* Every field of every row of b is in the table, bit for bit. */
static void check_read_back(const tp_row_batch *b)
{
    sqlite3 *db = raw_open();
    sqlite3_stmt *st = NULL;
    CHECK_INT(sqlite3_prepare_v2(db,
                                 "SELECT latitude, longitude, speed_kmh, heading_deg, accuracy_m, meter_status, "
                                 "kafka_partition, kafka_offset FROM vehicle_positions WHERE vehicle_id = ? AND "
                                 "sampled_at_ms = ? AND seq = ?",
                                 -1, &st, NULL),
              SQLITE_OK);
    size_t bad = 0;
    for (size_t i = 0; i < b->count; i++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)b->vehicle_id[i]);
        sqlite3_bind_int64(st, 2, b->sampled_at_ms[i]);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)b->seq[i]);
        int ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_double(st, 0) == b->latitude[i] &&
                 sqlite3_column_double(st, 1) == b->longitude[i] &&
                 (float)sqlite3_column_double(st, 2) == b->speed_kmh[i] &&
                 (float)sqlite3_column_double(st, 3) == b->heading_deg[i] &&
                 (float)sqlite3_column_double(st, 4) == b->accuracy_m[i] &&
                 sqlite3_column_int(st, 5) == b->meter_status[i] &&
                 sqlite3_column_int(st, 6) == b->kafka_partition[i] &&
                 sqlite3_column_int64(st, 7) == b->kafka_offset[i];
        if (!ok && bad++ < 5)
            fprintf(stderr, "row %zu differs or is missing\n", i);
        sqlite3_reset(st);
    }
    CHECK_INT(bad, 0);
    sqlite3_finalize(st);
    /* The uint64 id above 2^63 is stored as its int64 bit pattern; the view shows it unsigned. */
    CHECK_INT(query_int(db, "SELECT count(*) FROM vehicle_positions WHERE vehicle_id = -1"), 1);
    sqlite3_stmt *v = NULL;
    CHECK_INT(sqlite3_prepare_v2(db,
                                 "SELECT vehicle_id_u64, sampled_at_utc FROM vehicle_positions_utc WHERE seq = ?",
                                 -1, &v, NULL),
              SQLITE_OK);
    sqlite3_bind_int64(v, 1, (sqlite3_int64)(UINT64_MAX - 1));
    CHECK_INT(sqlite3_step(v), SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(v, 0), "18446744073709551615");
    CHECK_STR((const char *)sqlite3_column_text(v, 1), "2026-11-18 11:06:41.003");
    sqlite3_finalize(v);
    sqlite3_close(db);
}

static void test_load_read_back_reload(void)
{
    tp_warehouse *w = open_wh(1, 0);
    CHECK_STR(tp_warehouse_kind(w), "sqlite");
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK); /* idempotent */
    CHECK_ERR(tp_warehouse_ping(w), TP_OK);

    int64_t off = 0;
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_OK);
    CHECK_INT(off, -1);

    tp_row_batch *b = wh_fixture_new(3000, 0, 2, 500);
    tp_partition_offset po[2] = {{2, 530}, {5, 77}};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", po, 2), TP_OK);
    CHECK_INT(count_rows(), 3000);
    check_read_back(b);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 2, &off), TP_OK);
    CHECK_INT(off, 530);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 5, &off), TP_OK);
    CHECK_INT(off, 77);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 3, &off), TP_OK); /* unknown partition */
    CHECK_INT(off, -1);
    CHECK_ERR(tp_warehouse_stored_offset(w, "other-topic", 2, &off), TP_OK); /* unknown topic */
    CHECK_INT(off, -1);

    /* The same batch again (a crash before the Kafka commit): each record stays once, first copy kept. */
    CHECK_ERR(tp_warehouse_load(w, b, "positions", po, 2), TP_OK);
    CHECK_INT(count_rows(), 3000);
    /* A gateway resend: rows 0..199 again in a later pack (other offset) plus 50 new rows. */
    tp_row_batch *resend = wh_fixture_new(250, 0, 2, 900);
    for (size_t i = 200; i < 250; i++)
        resend->seq[i] += 1000000;
    tp_partition_offset po2 = {2, 903};
    CHECK_ERR(tp_warehouse_load(w, resend, "positions", &po2, 1), TP_OK);
    CHECK_INT(count_rows(), 3050);
    check_read_back(b); /* the first copies (kafka_offset 500..) are the ones kept */
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 2, &off), TP_OK);
    CHECK_INT(off, 903);

    /* Offsets alone (an empty batch, e.g. a pack of only duplicates filtered upstream). */
    tp_row_batch *empty = wh_fixture_new(1, 0, 2, 0);
    empty->count = 0;
    tp_partition_offset po3 = {7, 12};
    CHECK_ERR(tp_warehouse_load(w, empty, "positions", &po3, 1), TP_OK);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 7, &off), TP_OK);
    CHECK_INT(off, 12);

    /* Invalid arguments. */
    CHECK_ERR(tp_warehouse_load(w, NULL, "positions", &po3, 1), TP_ERR_INVALID_ARG);
    CHECK(strstr(tp_warehouse_last_error(w), "row batch") != NULL);
    CHECK_ERR(tp_warehouse_load(w, b, NULL, &po3, 1), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_warehouse_stored_offset(w, NULL, 0, &off), TP_ERR_INVALID_ARG);
    CHECK_INT(off, -1);
    tp_warehouse_close(w);

    /* Reopen: the data and the offsets are still there, without --create-table. */
    w = open_wh(0, 0);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 2, &off), TP_OK);
    CHECK_INT(off, 903);
    CHECK_INT(count_rows(), 3050);
    check_read_back(b);

    /* WAL mode stuck to the file. */
    sqlite3 *db = raw_open();
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    CHECK_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);

    tp_warehouse_close(w);
    wh_fixture_free(b);
    wh_fixture_free(resend);
    wh_fixture_free(empty);
}

/* A load that fails halfway leaves neither rows nor offsets: they share one transaction. */
static void test_atomic_rows_and_offsets(void)
{
    tp_warehouse *w = open_wh(0, 0);
    sqlite3 *db = raw_open();
    CHECK_INT(sqlite3_exec(db,
                           "CREATE TRIGGER fail_midway BEFORE INSERT ON vehicle_positions WHEN NEW.seq = 600000123 "
                           "BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                           NULL, NULL, NULL),
              SQLITE_OK);
    long long before = count_rows();
    tp_row_batch *b = wh_fixture_new(1000, 6, 4, 10); /* seq = i + 600000000: row 123 trips the trigger */
    tp_partition_offset po = {4, 20};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "injected failure") != NULL);
    CHECK(strstr(tp_warehouse_last_error(w), path) != NULL);
    CHECK_INT(count_rows(), before);
    int64_t off = 0;
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 4, &off), TP_OK);
    CHECK_INT(off, -1);
    /* Without the fault the same load goes through whole. */
    CHECK_INT(sqlite3_exec(db, "DROP TRIGGER fail_midway", NULL, NULL, NULL), SQLITE_OK);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    CHECK_INT(count_rows(), before + 1000);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 4, &off), TP_OK);
    CHECK_INT(off, 20);

    /* Another writer holds the lock longer than our busy timeout: retry later. */
    tp_warehouse_close(w);
    w = open_wh(0, 50);
    CHECK_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_ERR_UNAVAILABLE);
    CHECK(strstr(tp_warehouse_last_error(w), "retry later") != NULL);
    CHECK_INT(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    sqlite3_close(db);
    tp_warehouse_close(w);
    wh_fixture_free(b);
}

static void test_errors(void)
{
    char msg[512];
    tp_warehouse *w = (tp_warehouse *)1;

    tp_warehouse_opts co;
    tp_warehouse_opts_init(&co);
    co.create_table = 1;
    CHECK_ERR(tp_warehouse_open("sqlite:/nonexistent-dir-for-telepack-tests/x.db", &co, &w, msg, sizeof msg),
              TP_ERR_IO);
    CHECK(w == NULL);
    CHECK(strstr(msg, "/nonexistent-dir-for-telepack-tests/x.db") != NULL);
    CHECK(strstr(msg, "check the path") != NULL);
    fprintf(stderr, "unwritable path: %s\n", msg);

    CHECK_ERR(tp_warehouse_open("sqlite:", NULL, &w, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "sqlite:PATH") != NULL);
    CHECK_ERR(tp_warehouse_open("postgres://x/y", NULL, &w, msg, sizeof msg), TP_ERR_PARSE);
    CHECK(strstr(msg, "postgres://x/y") != NULL);
    CHECK_ERR(tp_warehouse_open(NULL, NULL, &w, msg, sizeof msg), TP_ERR_INVALID_ARG);
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.table = "positions; DROP TABLE x";
    CHECK_ERR(tp_warehouse_open(url, &o, &w, msg, sizeof msg), TP_ERR_INVALID_ARG);
    CHECK(strstr(msg, "positions; DROP TABLE x") != NULL);

    /* A database file that does not exist, without --create-table: not created behind the user's back. */
    char url2[700];
    snprintf(url2, sizeof url2, "sqlite:%s/empty.db", dir);
    CHECK_ERR(tp_warehouse_open(url2, NULL, &w, msg, sizeof msg), TP_ERR_WAREHOUSE);
    CHECK(strstr(msg, "empty.db does not exist; run with --create-table") != NULL);
    CHECK(access(url2 + 7, F_OK) != 0);

    /* A database without the table, opened without --create-table. */
    sqlite3 *edb = NULL;
    CHECK_INT(sqlite3_open(url2 + 7, &edb), SQLITE_OK);
    sqlite3_close(edb);
    CHECK_ERR(tp_warehouse_open(url2, NULL, &w, msg, sizeof msg), TP_OK);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "no table vehicle_positions") != NULL);
    CHECK(strstr(tp_warehouse_last_error(w), "--create-table") != NULL);
    tp_row_batch *b = wh_fixture_new(10, 0, 0, 0);
    CHECK_ERR(tp_warehouse_load(w, b, "positions", NULL, 0), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "--create-table") != NULL);
    tp_warehouse_close(w);

    /* A table of that name with a column missing. */
    snprintf(url2, sizeof url2, "sqlite:%s/other.db", dir);
    char p2[700];
    snprintf(p2, sizeof p2, "%s/other.db", dir);
    sqlite3 *db = NULL;
    CHECK_INT(sqlite3_open(p2, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "CREATE TABLE vehicle_positions (vehicle_id INTEGER, sampled_at_ms INTEGER)", NULL,
                           NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    o.table = NULL;
    o.create_table = 1;
    CHECK_ERR(tp_warehouse_open(url2, &o, &w, msg, sizeof msg), TP_OK);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "no column seq") != NULL);
    tp_warehouse_close(w);
    wh_fixture_free(b);

    /* NULL handles. */
    CHECK_ERR(tp_warehouse_ensure_table(NULL), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_warehouse_ping(NULL), TP_ERR_INVALID_ARG);
    CHECK_STR(tp_warehouse_kind(NULL), "none");
    CHECK(tp_warehouse_last_error(NULL)[0] != '\0');
    tp_warehouse_close(NULL);
}

static void cleanup(void)
{
    const char *names[] = {"wh.db", "wh.db-wal", "wh.db-shm", "empty.db", "empty.db-wal", "empty.db-shm",
                           "other.db", "other.db-wal", "other.db-shm"};
    char p[700];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tp-wh-sqlite-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/wh.db", dir);
    snprintf(url, sizeof url, "sqlite:%s", path);
    test_load_read_back_reload();
    test_atomic_rows_and_offsets();
    test_errors();
    cleanup();
    return check_exit();
}
