/* The embedded warehouse: SQLite in WAL mode. One transaction per load holds the rows and the Kafka offsets they
 * bring their partitions to, so a load is all-or-nothing and the offsets always describe exactly the rows present
 * (exactly-once when the sink resumes from tp_warehouse_stored_offset). See docs/WAREHOUSES.md. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "warehouse/warehouse_impl.h"

typedef struct wh_sqlite {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *insert_row;    /* prepared once, reused for every row */
    sqlite3_stmt *upsert_offset;
    sqlite3_stmt *select_offset;
} wh_sqlite;

/* Columns we load, in the order of the INSERT statement. */
static const char *const row_columns[] = {"vehicle_id",  "sampled_at_ms", "seq",          "latitude",
                                          "longitude",   "speed_kmh",     "heading_deg",  "accuracy_m",
                                          "meter_status", "kafka_partition", "kafka_offset"};
#define N_ROW_COLUMNS (sizeof row_columns / sizeof row_columns[0])

static wh_sqlite *impl(tp_warehouse *w)
{
    return w->impl;
}

/* SQLITE_BUSY / SQLITE_LOCKED mean another connection holds the database: retrying later may succeed. */
static tp_err classify(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return TP_ERR_UNAVAILABLE;
    case SQLITE_NOMEM:
        return TP_ERR_NOMEM;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
        return TP_ERR_IO;
    default:
        return TP_ERR_WAREHOUSE;
    }
}

static tp_err fail_db(tp_warehouse *w, int rc, const char *doing)
{
    wh_sqlite *s = impl(w);
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    tp_err e = classify(rc);
    const char *advice = e == TP_ERR_UNAVAILABLE ? "another process holds the database; retry later"
                         : e == TP_ERR_IO        ? "check the path, its permissions and free disk space"
                                                 : "check the database file";
    return tp_wh_fail(w, e, "SQLite database %s: %s failed (%s); %s", s->path, doing, msg, advice);
}

static tp_err exec(tp_warehouse *w, const char *sql, const char *doing)
{
    int rc = sqlite3_exec(impl(w)->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? TP_OK : fail_db(w, rc, doing);
}

static tp_err sq_open(tp_warehouse *w, const char *rest)
{
    wh_sqlite *s = calloc(1, sizeof *s);
    if (!s)
        return TP_ERR_NOMEM;
    w->impl = s;
    if (!rest[0])
        return tp_wh_fail(w, TP_ERR_PARSE, "warehouse URL \"sqlite:\" names no file; use sqlite:PATH");
    s->path = strdup(rest);
    if (!s->path)
        return TP_ERR_NOMEM;
    /* NOMUTEX: one sink thread owns the handle (warehouse.h says so). Without create_table a missing file is an
     * error, not a new empty database somewhere a typo pointed. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (w->create_table ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(rest, &s->db, flags, NULL);
    if (rc != SQLITE_OK && !w->create_table && access(rest, F_OK) != 0)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "SQLite database %s does not exist; run with --create-table or fix "
                          "the path", rest);
    if (rc != SQLITE_OK)
        return fail_db(w, rc, "opening it");
    sqlite3_extended_result_codes(s->db, 1);
    /* Wait for another writer (an analyst's sqlite3 shell, a second sink) instead of failing at once. */
    sqlite3_busy_timeout(s->db, w->timeout_ms > INT32_MAX ? INT32_MAX : (int)w->timeout_ms);
    /* WAL: readers (analysts) never block the sink and the sink never blocks them. synchronous=FULL: a commit
     * returns only after the WAL is fsync'ed, so "load returned TP_OK" survives a power cut too, as warehouse.h
     * promises (NORMAL would only survive a process crash). One fsync per load of thousands of rows is cheap. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return fail_db(w, rc, "switching to WAL mode");
    tp_err e = exec(w, "PRAGMA synchronous=FULL", "setting synchronous=FULL");
    if (e)
        return e;
    return TP_OK;
}

static tp_err prepare(tp_warehouse *w, sqlite3_stmt **st, const char *sql, const char *doing)
{
    if (*st)
        return TP_OK;
    int rc = sqlite3_prepare_v3(impl(w)->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc == SQLITE_OK)
        return TP_OK;
    if (strstr(sqlite3_errmsg(impl(w)->db), "no such table"))
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "SQLite database %s: %s failed (%s); run with --create-table",
                          impl(w)->path, doing, sqlite3_errmsg(impl(w)->db));
    return fail_db(w, rc, doing);
}

static tp_err sq_ensure_table(tp_warehouse *w)
{
    wh_sqlite *s = impl(w);
    char sql[2048];
    tp_err e;
    if (w->create_table) {
        /* vehicle_id and seq are uint64: SQLite integers are int64, so we store the same 64 bits (ids above 2^63
         * read back negative; cast to uint64 to get the id). WITHOUT ROWID: the identity is the storage order. */
        snprintf(sql, sizeof sql,
                 "CREATE TABLE IF NOT EXISTS %s ("
                 "vehicle_id INTEGER NOT NULL, sampled_at_ms INTEGER NOT NULL, seq INTEGER NOT NULL, "
                 "latitude REAL NOT NULL, longitude REAL NOT NULL, speed_kmh REAL NOT NULL, "
                 "heading_deg REAL NOT NULL, accuracy_m REAL NOT NULL, meter_status INTEGER NOT NULL, "
                 "kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL, "
                 "PRIMARY KEY (vehicle_id, sampled_at_ms, seq)) WITHOUT ROWID;"
                 "CREATE VIEW IF NOT EXISTS %s_utc AS SELECT "
                 "strftime('%%Y-%%m-%%d %%H:%%M:%%f', sampled_at_ms / 1000.0, 'unixepoch') AS sampled_at_utc, "
                 "printf('%%llu', vehicle_id) AS vehicle_id_u64, * FROM %s;",
                 w->table, w->table, w->table);
        if ((e = exec(w, sql, "creating the table")))
            return e;
    }
    /* The offsets table is our own bookkeeping: always created. */
    if ((e = exec(w,
                  "CREATE TABLE IF NOT EXISTS kafka_offsets (topic TEXT NOT NULL, \"partition\" INTEGER NOT NULL, "
                  "next_offset INTEGER NOT NULL, PRIMARY KEY (topic, \"partition\"))",
                  "creating the kafka_offsets table")))
        return e;

    /* Check the table has every column we load. */
    snprintf(sql, sizeof sql, "SELECT name FROM pragma_table_info('%s')", w->table);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail_db(w, rc, "reading the table's columns");
    unsigned found = 0, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        n++;
        for (size_t i = 0; name && i < N_ROW_COLUMNS; i++)
            if (!strcmp(name, row_columns[i]))
                found |= 1u << i;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail_db(w, rc, "reading the table's columns");
    if (n == 0)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "SQLite database %s has no table %s; run with --create-table",
                          s->path, w->table);
    for (size_t i = 0; i < N_ROW_COLUMNS; i++)
        if (!(found & (1u << i)))
            return tp_wh_fail(w, TP_ERR_WAREHOUSE,
                              "SQLite table %s in %s has no column %s; drop it or load into another table (--table)",
                              w->table, s->path, row_columns[i]);
    return TP_OK;
}

static tp_err prepare_all(tp_warehouse *w)
{
    wh_sqlite *s = impl(w);
    char sql[512];
    /* OR IGNORE: a record already present (a gateway resend in another pack, a re-delivered pack) is absorbed. */
    snprintf(sql, sizeof sql,
             "INSERT OR IGNORE INTO %s (vehicle_id, sampled_at_ms, seq, latitude, longitude, speed_kmh, heading_deg, "
             "accuracy_m, meter_status, kafka_partition, kafka_offset) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
             w->table);
    tp_err e = prepare(w, &s->insert_row, sql, "preparing the insert");
    if (!e)
        e = prepare(w, &s->upsert_offset,
                    "INSERT INTO kafka_offsets (topic, \"partition\", next_offset) VALUES (?,?,?) "
                    "ON CONFLICT (topic, \"partition\") DO UPDATE SET next_offset = excluded.next_offset",
                    "preparing the offsets upsert");
    return e;
}

static tp_err sq_load(tp_warehouse *w, const tp_row_batch *b, const char *topic, const tp_partition_offset *offsets,
                      size_t n_offsets)
{
    wh_sqlite *s = impl(w);
    tp_err e = prepare_all(w);
    if (e)
        return e;
    /* IMMEDIATE takes the write lock now (waiting up to busy_timeout), not halfway through the load. */
    if ((e = exec(w, "BEGIN IMMEDIATE", "starting a transaction")))
        return e;
    sqlite3_stmt *ins = s->insert_row;
    int rc = SQLITE_OK;
    const char *doing = "inserting rows";
    for (size_t i = 0; i < b->count && rc == SQLITE_OK; i++) {
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)b->vehicle_id[i]);
        sqlite3_bind_int64(ins, 2, b->sampled_at_ms[i]);
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)b->seq[i]);
        sqlite3_bind_double(ins, 4, b->latitude[i]);
        sqlite3_bind_double(ins, 5, b->longitude[i]);
        sqlite3_bind_double(ins, 6, b->speed_kmh[i]);
        sqlite3_bind_double(ins, 7, b->heading_deg[i]);
        sqlite3_bind_double(ins, 8, b->accuracy_m[i]);
        sqlite3_bind_int(ins, 9, b->meter_status[i]);
        sqlite3_bind_int(ins, 10, b->kafka_partition[i]);
        sqlite3_bind_int64(ins, 11, b->kafka_offset[i]);
        rc = sqlite3_step(ins);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(ins);
    }
    sqlite3_stmt *up = s->upsert_offset;
    for (size_t i = 0; i < n_offsets && rc == SQLITE_OK; i++) {
        doing = "storing the Kafka offsets";
        sqlite3_bind_text(up, 1, topic, -1, SQLITE_STATIC);
        sqlite3_bind_int(up, 2, offsets[i].partition);
        sqlite3_bind_int64(up, 3, offsets[i].next_offset);
        rc = sqlite3_step(up);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(up);
    }
    sqlite3_clear_bindings(up); /* drop the pointer to the caller's topic */
    if (rc == SQLITE_OK) {
        doing = "committing";
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        e = fail_db(w, rc, doing);
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return e;
    }
    return TP_OK;
}

static tp_err sq_stored_offset(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset)
{
    wh_sqlite *s = impl(w);
    tp_err e = prepare(w, &s->select_offset,
                       "SELECT next_offset FROM kafka_offsets WHERE topic = ? AND \"partition\" = ?",
                       "reading the Kafka offsets");
    if (e)
        return e;
    sqlite3_stmt *st = s->select_offset;
    sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, partition);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *next_offset = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return fail_db(w, rc, "reading the Kafka offsets");
    return TP_OK;
}

static tp_err sq_ping(tp_warehouse *w)
{
    return exec(w, "SELECT 1", "a ping query");
}

static void sq_close(tp_warehouse *w)
{
    wh_sqlite *s = impl(w);
    if (!s)
        return;
    sqlite3_finalize(s->insert_row);
    sqlite3_finalize(s->upsert_offset);
    sqlite3_finalize(s->select_offset);
    sqlite3_close(s->db); /* also on a failed open: sqlite3_open_v2 may hand back a handle */
    free(s->path);
    free(s);
    w->impl = NULL;
}

const tp_wh_ops tp_wh_sqlite_ops = {
    .kind = "sqlite",
    .open = sq_open,
    .ensure_table = sq_ensure_table,
    .load = sq_load,
    .stored_offset = sq_stored_offset,
    .ping = sq_ping,
    .close = sq_close,
};
