/* The SQLite warehouse: rows read back field by field, offsets in the same transaction as the rows, idempotent
 * reloads, reopen, and every error path as a sentence. */
#include <math.h>
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

/* A fresh database file in dir (removed first), opened raw; the caller closes it. */
static sqlite3 *fresh_db(const char *name, char *url_out, size_t cap)
{
    char p[700];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s%s", dir, name, suffix[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/%s", dir, name);
    snprintf(url_out, cap, "sqlite:%s", p);
    sqlite3 *db = NULL;
    if (sqlite3_open(p, &db) != SQLITE_OK)
        abort();
    return db;
}

static tp_warehouse *open_url(const char *u, const char *table, int create)
{
    tp_warehouse_opts o;
    tp_warehouse_opts_init(&o);
    o.table = table;
    o.create_table = create;
    tp_warehouse *w = NULL;
    char msg[512];
    if (tp_warehouse_open(u, &o, &w, msg, sizeof msg) != TP_OK) {
        fprintf(stderr, "open %s failed: %s\n", u, msg);
        exit(1);
    }
    return w;
}

static long long db_int(sqlite3 *db, const char *sql)
{
    return query_int(db, sql);
}

/* NaN, +inf, -inf and -0.0 in every float column are stored, not skipped: NaN as NULL, ±inf as themselves, -0.0 as
 * 0.0. The offsets move only with the rows. */
static void test_nonfinite(void)
{
    char u[800];
    sqlite3 *db = fresh_db("nf.db", u, sizeof u);
    tp_warehouse *w = open_url(u, NULL, 1);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    tp_row_batch *b = wh_fixture_new(40, 3, 0, 0);
    wh_fixture_nonfinite(b);
    tp_partition_offset po = {0, 1};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    CHECK_INT(db_int(db, "SELECT count(*) FROM vehicle_positions"), 40);
    /* 4 NaN per column + the all-NaN row: 5 NULLs in each float column. */
    CHECK_INT(db_int(db, "SELECT count(*) FROM vehicle_positions WHERE latitude IS NULL"), 2);
    CHECK_INT(db_int(db, "SELECT count(*) FROM vehicle_positions WHERE accuracy_m IS NULL"), 2);
    CHECK_INT(db_int(db, "SELECT count(*) FROM vehicle_positions WHERE speed_kmh = 1e999"), 1);
    CHECK_INT(db_int(db, "SELECT count(*) FROM vehicle_positions WHERE heading_deg = -1e999"), 1);
    sqlite3_stmt *st = NULL;
    CHECK_INT(sqlite3_prepare_v2(db,
                                 "SELECT latitude, longitude, speed_kmh, heading_deg, accuracy_m FROM "
                                 "vehicle_positions WHERE vehicle_id = ? AND sampled_at_ms = ? AND seq = ?",
                                 -1, &st, NULL),
              SQLITE_OK);
    size_t bad = 0;
    for (size_t i = 0; i < b->count; i++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)b->vehicle_id[i]);
        sqlite3_bind_int64(st, 2, b->sampled_at_ms[i]);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)b->seq[i]);
        double want[5] = {b->latitude[i], b->longitude[i], b->speed_kmh[i], b->heading_deg[i], b->accuracy_m[i]};
        int ok = sqlite3_step(st) == SQLITE_ROW;
        for (int c = 0; ok && c < 5; c++) {
            /* The reader's rule (docs/WAREHOUSES.md): NULL is NaN. */
            double got = sqlite3_column_type(st, c) == SQLITE_NULL ? NAN : sqlite3_column_double(st, c);
            if (c >= 2)
                got = (float)got;
            ok = wh_fixture_same(got, want[c], 1) && (!isnan(want[c]) || sqlite3_column_type(st, c) == SQLITE_NULL);
        }
        if (!ok && bad++ < 5)
            fprintf(stderr, "non-finite row %zu differs or is missing\n", i);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    CHECK_INT(bad, 0);
    int64_t off = 0;
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_OK);
    CHECK_INT(off, 1);
    /* Loaded again: still absorbed (NULL floats are not part of the identity). */
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    CHECK_INT(db_int(db, "SELECT count(*) FROM vehicle_positions"), 40);
    tp_warehouse_close(w);
    wh_fixture_free(b);
    sqlite3_close(db);
}

/* Only a conflict on the identity is absorbed: a row that breaks another constraint (here an operator's CHECK) fails
 * the load, nothing is stored, the offsets stay. (INSERT OR IGNORE skipped it silently.) */
static void test_other_constraint_is_an_error(void)
{
    char u[800];
    sqlite3 *db = fresh_db("ck.db", u, sizeof u);
    CHECK_INT(sqlite3_exec(db,
                           "CREATE TABLE vehicle_positions (vehicle_id INTEGER NOT NULL, sampled_at_ms INTEGER NOT "
                           "NULL, seq INTEGER NOT NULL, latitude REAL, longitude REAL, speed_kmh REAL, heading_deg "
                           "REAL, accuracy_m REAL, meter_status INTEGER NOT NULL CHECK (meter_status < 50), "
                           "kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL, PRIMARY KEY "
                           "(vehicle_id, sampled_at_ms, seq)) WITHOUT ROWID",
                           NULL, NULL, NULL),
              SQLITE_OK);
    tp_warehouse *w = open_url(u, NULL, 0);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    tp_row_batch *b = wh_fixture_new(10, 0, 0, 0); /* row 1 has meter_status 77 */
    tp_partition_offset po = {0, 1};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "CHECK constraint failed") != NULL);
    CHECK_INT(db_int(db, "SELECT count(*) FROM vehicle_positions"), 0);
    int64_t off = 0;
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_OK);
    CHECK_INT(off, -1);
    tp_warehouse_close(w);
    wh_fixture_free(b);
    sqlite3_close(db);
}

#define OLD_TABLE_DDL                                                                                              \
    "CREATE TABLE vehicle_positions (vehicle_id INTEGER NOT NULL, sampled_at_ms INTEGER NOT NULL, seq INTEGER NOT " \
    "NULL, latitude REAL NOT NULL, longitude REAL NOT NULL, speed_kmh REAL NOT NULL, heading_deg REAL NOT NULL, "   \
    "accuracy_m REAL NOT NULL, meter_status INTEGER NOT NULL, kafka_partition INTEGER NOT NULL, kafka_offset "       \
    "INTEGER NOT NULL, PRIMARY KEY (vehicle_id, sampled_at_ms, seq)) WITHOUT ROWID;"                               \
    "CREATE VIEW vehicle_positions_utc AS SELECT printf('%llu', vehicle_id) AS vehicle_id_u64, * FROM "             \
    "vehicle_positions;"

/* The rebuild docs/WAREHOUSES.md gives for tables made before NaN support (keep the two in step). */
#define REBUILD_SQL                                                                                                \
    "BEGIN IMMEDIATE;"                                                                                             \
    "DROP VIEW IF EXISTS vehicle_positions_utc;"                                                                   \
    "CREATE TABLE vehicle_positions_new (vehicle_id INTEGER NOT NULL, sampled_at_ms INTEGER NOT NULL, "            \
    "seq INTEGER NOT NULL, latitude REAL, longitude REAL, speed_kmh REAL, heading_deg REAL, accuracy_m REAL, "     \
    "meter_status INTEGER NOT NULL, kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL, "             \
    "PRIMARY KEY (vehicle_id, sampled_at_ms, seq)) WITHOUT ROWID;"                                                \
    "INSERT INTO vehicle_positions_new SELECT vehicle_id, sampled_at_ms, seq, latitude, longitude, speed_kmh, "    \
    "heading_deg, accuracy_m, meter_status, kafka_partition, kafka_offset FROM vehicle_positions;"                 \
    "DROP TABLE vehicle_positions;"                                                                                \
    "ALTER TABLE vehicle_positions_new RENAME TO vehicle_positions;"                                               \
    "COMMIT;"

/* A table made by the old DDL (NOT NULL floats) is refused with what to do; the documented rebuild makes it
 * usable with its rows kept. */
static void test_old_float_layout(void)
{
    char u[800];
    sqlite3 *db = fresh_db("old.db", u, sizeof u);
    CHECK_INT(sqlite3_exec(db, OLD_TABLE_DDL, NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db,
                           "INSERT INTO vehicle_positions VALUES (1, 2, 3, 1.5, 2.5, 3.5, 4.5, 5.5, 0, 0, 7), "
                           "(1, 2, 4, -1e999, 2.5, 3.5, 4.5, 5.5, 0, 0, 7)",
                           NULL, NULL, NULL),
              SQLITE_OK);
    tp_warehouse *w = open_url(u, NULL, 1);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
    CHECK(strstr(tp_warehouse_last_error(w), "declares latitude NOT NULL") != NULL);
    CHECK(strstr(tp_warehouse_last_error(w), "docs/WAREHOUSES.md") != NULL);
    fprintf(stderr, "old float layout: %s\n", tp_warehouse_last_error(w));
    tp_warehouse_close(w);
    CHECK_INT(sqlite3_exec(db, REBUILD_SQL, NULL, NULL, NULL), SQLITE_OK);
    w = open_url(u, NULL, 1); /* --create-table recreates the view */
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_INT(db_int(db, "SELECT count(*) FROM vehicle_positions WHERE kafka_offset = 7"), 2);
    CHECK_INT(db_int(db, "SELECT count(*) FROM vehicle_positions_utc"), 2);
    tp_row_batch *b = wh_fixture_new(30, 4, 0, 0);
    wh_fixture_nonfinite(b);
    tp_partition_offset po = {0, 1};
    CHECK_ERR(tp_warehouse_load(w, b, "positions", &po, 1), TP_OK);
    CHECK_INT(db_int(db, "SELECT count(*) FROM vehicle_positions"), 32);
    tp_warehouse_close(w);
    wh_fixture_free(b);
    sqlite3_close(db);
}

/* Two sinks loading two tables of one file from one topic keep their own offsets: the second does not resume from
 * the first one's position (and so loads the records the first had already passed). */
static void test_offsets_per_table(void)
{
    char u[800];
    sqlite3 *db = fresh_db("two.db", u, sizeof u);
    tp_warehouse *a = open_url(u, "positions_a", 1), *b = open_url(u, "positions_b", 1);
    CHECK_ERR(tp_warehouse_ensure_table(a), TP_OK);
    CHECK_ERR(tp_warehouse_ensure_table(b), TP_OK);
    tp_row_batch *rows = wh_fixture_new(200, 5, 0, 0);
    tp_partition_offset po = {0, 2};
    CHECK_ERR(tp_warehouse_load(a, rows, "positions", &po, 1), TP_OK);
    int64_t off = 0;
    CHECK_ERR(tp_warehouse_stored_offset(a, "positions", 0, &off), TP_OK);
    CHECK_INT(off, 2);
    CHECK_ERR(tp_warehouse_stored_offset(b, "positions", 0, &off), TP_OK);
    CHECK_INT(off, -1);
    tp_partition_offset po_b = {0, 1};
    CHECK_ERR(tp_warehouse_load(b, rows, "positions", &po_b, 1), TP_OK);
    CHECK_ERR(tp_warehouse_stored_offset(b, "positions", 0, &off), TP_OK);
    CHECK_INT(off, 1);
    CHECK_ERR(tp_warehouse_stored_offset(a, "positions", 0, &off), TP_OK);
    CHECK_INT(off, 2);
    CHECK_INT(db_int(db, "SELECT count(*) FROM positions_b"), 200);
    tp_warehouse_close(a);
    tp_warehouse_close(b);
    wh_fixture_free(rows);
    sqlite3_close(db);
}

#define OLD_OFFSETS_DDL                                                                                            \
    "CREATE TABLE kafka_offsets (topic TEXT NOT NULL, \"partition\" INTEGER NOT NULL, next_offset INTEGER NOT "   \
    "NULL, PRIMARY KEY (topic, \"partition\"));"                                                                   \
    "INSERT INTO kafka_offsets VALUES ('positions', 0, 40), ('positions', 1, 41), ('other', 0, 9);"

#define NEW_TABLE_DDL(name)                                                                                        \
    "CREATE TABLE " name " (vehicle_id INTEGER NOT NULL, sampled_at_ms INTEGER NOT NULL, seq INTEGER NOT NULL, "   \
    "latitude REAL, longitude REAL, speed_kmh REAL, heading_deg REAL, accuracy_m REAL, meter_status INTEGER NOT " \
    "NULL, kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL, PRIMARY KEY (vehicle_id, "            \
    "sampled_at_ms, seq)) WITHOUT ROWID;"

/* Files with the old kafka_offsets (no table_name) are migrated: with one table of ours in the file its offsets
 * stay its own; with several, nobody can tell whose they are, and they are kept aside (table_name '') so every
 * table resumes from its consumer group. */
static void test_offsets_migration(void)
{
    char u[800];
    sqlite3 *db = fresh_db("mig1.db", u, sizeof u);
    CHECK_INT(sqlite3_exec(db, NEW_TABLE_DDL("vehicle_positions") OLD_OFFSETS_DDL, NULL, NULL, NULL), SQLITE_OK);
    tp_warehouse *w = open_url(u, NULL, 0);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    int64_t off = 0;
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_OK);
    CHECK_INT(off, 40);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 1, &off), TP_OK);
    CHECK_INT(off, 41);
    CHECK_ERR(tp_warehouse_stored_offset(w, "other", 0, &off), TP_OK);
    CHECK_INT(off, 9);
    CHECK_INT(db_int(db, "SELECT count(*) FROM kafka_offsets WHERE table_name = 'vehicle_positions'"), 3);
    CHECK_INT(db_int(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'kafka_offsets%' AND type = 'table'"),
              1);
    /* Loads go on from there, and a second table in the file starts from nothing. */
    tp_row_batch *rows = wh_fixture_new(10, 6, 0, 40);
    tp_partition_offset po = {0, 41};
    CHECK_ERR(tp_warehouse_load(w, rows, "positions", &po, 1), TP_OK);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_OK);
    CHECK_INT(off, 41);
    tp_warehouse_close(w);
    w = open_url(u, "positions_new", 1);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_OK);
    CHECK_INT(off, -1);
    tp_warehouse_close(w);
    sqlite3_close(db);

    /* Two tables of ours: whose were the offsets? Kept under '', read by nobody. */
    db = fresh_db("mig2.db", u, sizeof u);
    CHECK_INT(sqlite3_exec(db, NEW_TABLE_DDL("positions_a") NEW_TABLE_DDL("positions_b") OLD_OFFSETS_DDL, NULL,
                           NULL, NULL),
              SQLITE_OK);
    w = open_url(u, "positions_a", 0);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_OK);
    CHECK_INT(off, -1);
    CHECK_INT(db_int(db, "SELECT count(*) FROM kafka_offsets WHERE table_name = ''"), 3);
    tp_warehouse_close(w);
    w = open_url(u, "positions_b", 0);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    CHECK_ERR(tp_warehouse_stored_offset(w, "positions", 0, &off), TP_OK);
    CHECK_INT(off, -1);
    tp_warehouse_close(w);
    wh_fixture_free(rows);
    sqlite3_close(db);
}

/* Tables whose unique keys are not the record identity are refused with what is wrong and what to change. */
static void test_identity_key(void)
{
    static const struct {
        const char *ddl, *want;
    } cases[] = {
        /* no key at all: duplicates would be kept */
        {"CREATE TABLE vehicle_positions (vehicle_id INTEGER, sampled_at_ms INTEGER, seq INTEGER, latitude REAL, "
         "longitude REAL, speed_kmh REAL, heading_deg REAL, accuracy_m REAL, meter_status INTEGER, kafka_partition "
         "INTEGER, kafka_offset INTEGER)",
         "no PRIMARY KEY or UNIQUE index on exactly (vehicle_id, sampled_at_ms, seq)"},
        /* a key without seq: distinct records of one millisecond would be merged */
        {"CREATE TABLE vehicle_positions (vehicle_id INTEGER, sampled_at_ms INTEGER, seq INTEGER, latitude REAL, "
         "longitude REAL, speed_kmh REAL, heading_deg REAL, accuracy_m REAL, meter_status INTEGER, kafka_partition "
         "INTEGER, kafka_offset INTEGER, PRIMARY KEY (vehicle_id, sampled_at_ms))",
         "unique key on (vehicle_id, sampled_at_ms), which is not the record identity"},
        /* a key wider than the identity: two copies from different packs would both be kept */
        {"CREATE TABLE vehicle_positions (vehicle_id INTEGER, sampled_at_ms INTEGER, seq INTEGER, latitude REAL, "
         "longitude REAL, speed_kmh REAL, heading_deg REAL, accuracy_m REAL, meter_status INTEGER, kafka_partition "
         "INTEGER, kafka_offset INTEGER, PRIMARY KEY (vehicle_id, sampled_at_ms, seq, kafka_offset))",
         "no PRIMARY KEY or UNIQUE index on exactly"},
        /* the identity plus another unique key that would refuse distinct records */
        {"CREATE TABLE vehicle_positions (vehicle_id INTEGER, sampled_at_ms INTEGER, seq INTEGER, latitude REAL, "
         "longitude REAL, speed_kmh REAL, heading_deg REAL, accuracy_m REAL, meter_status INTEGER, kafka_partition "
         "INTEGER, kafka_offset INTEGER, PRIMARY KEY (vehicle_id, sampled_at_ms, seq), UNIQUE (kafka_partition, "
         "kafka_offset))",
         "unique key on (kafka_partition, kafka_offset)"},
        /* the vehicle id as the rowid */
        {"CREATE TABLE vehicle_positions (vehicle_id INTEGER PRIMARY KEY, sampled_at_ms INTEGER, seq INTEGER, "
         "latitude REAL, longitude REAL, speed_kmh REAL, heading_deg REAL, accuracy_m REAL, meter_status INTEGER, "
         "kafka_partition INTEGER, kafka_offset INTEGER)",
         "unique key on (vehicle_id)"},
        /* an expression index */
        {"CREATE TABLE vehicle_positions (vehicle_id INTEGER, sampled_at_ms INTEGER, seq INTEGER, latitude REAL, "
         "longitude REAL, speed_kmh REAL, heading_deg REAL, accuracy_m REAL, meter_status INTEGER, kafka_partition "
         "INTEGER, kafka_offset INTEGER, PRIMARY KEY (vehicle_id, sampled_at_ms, seq));"
         "CREATE UNIQUE INDEX by_second ON vehicle_positions (vehicle_id, sampled_at_ms / 1000)",
         "unique key on (vehicle_id, other columns)"},
    };
    char u[800];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sqlite3 *db = fresh_db("key.db", u, sizeof u);
        CHECK_INT(sqlite3_exec(db, cases[i].ddl, NULL, NULL, NULL), SQLITE_OK);
        tp_warehouse *w = open_url(u, NULL, 1);
        CHECK_ERR(tp_warehouse_ensure_table(w), TP_ERR_WAREHOUSE);
        if (!strstr(tp_warehouse_last_error(w), cases[i].want)) {
            fprintf(stderr, "case %zu: got \"%s\"\n", i, tp_warehouse_last_error(w));
            CHECK(0);
        }
        if (i == 0)
            fprintf(stderr, "no identity key: %s\n", tp_warehouse_last_error(w));
        tp_warehouse_close(w);
        sqlite3_close(db);
    }
    /* Accepted: a rowid table with a UNIQUE index on the identity in another order, plus a wider unique index. */
    sqlite3 *db = fresh_db("key.db", u, sizeof u);
    CHECK_INT(sqlite3_exec(db,
                           "CREATE TABLE vehicle_positions (vehicle_id INTEGER, sampled_at_ms INTEGER, seq INTEGER, "
                           "latitude REAL, longitude REAL, speed_kmh REAL, heading_deg REAL, accuracy_m REAL, "
                           "meter_status INTEGER, kafka_partition INTEGER, kafka_offset INTEGER);"
                           "CREATE UNIQUE INDEX ident ON vehicle_positions (seq, vehicle_id, sampled_at_ms);"
                           "CREATE UNIQUE INDEX wide ON vehicle_positions (vehicle_id, sampled_at_ms, seq, "
                           "kafka_offset)",
                           NULL, NULL, NULL),
              SQLITE_OK);
    tp_warehouse *w = open_url(u, NULL, 0);
    CHECK_ERR(tp_warehouse_ensure_table(w), TP_OK);
    tp_row_batch *rows = wh_fixture_new(50, 7, 0, 0);
    tp_partition_offset po = {0, 1};
    CHECK_ERR(tp_warehouse_load(w, rows, "positions", &po, 1), TP_OK);
    CHECK_ERR(tp_warehouse_load(w, rows, "positions", &po, 1), TP_OK);
    CHECK_INT(db_int(db, "SELECT count(*) FROM vehicle_positions"), 50);
    tp_warehouse_close(w);
    wh_fixture_free(rows);
    sqlite3_close(db);
}

static void cleanup(void)
{
    const char *names[] = {"wh.db", "wh.db-wal", "wh.db-shm", "empty.db", "empty.db-wal", "empty.db-shm",
                           "other.db", "other.db-wal", "other.db-shm", "nf.db", "ck.db", "old.db", "two.db",
                           "mig1.db", "mig2.db", "key.db"};
    char p[700];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        for (int k = 0; k < 3; k++) {
            snprintf(p, sizeof p, "%s/%s%s", dir, names[i], k == 0 ? "" : k == 1 ? "-wal" : "-shm");
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
    test_nonfinite();
    test_other_constraint_is_an_error();
    test_old_float_layout();
    test_offsets_per_table();
    test_offsets_migration();
    test_identity_key();
    cleanup();
    return check_exit();
}
