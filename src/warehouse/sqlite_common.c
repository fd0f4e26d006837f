/* The connection, errors, transaction and Kafka offsets of the SQLite backends (sqlite_common.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "warehouse/sqlite_common.h"

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

tp_err tp_sq_fail(tp_warehouse *w, const tp_sq_conn *c, int rc, const char *doing)
{
    const char *msg = c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
    tp_err e = classify(rc);
    const char *advice = e == TP_ERR_UNAVAILABLE ? "another process holds the database; retry later"
                         : e == TP_ERR_IO        ? "check the path, its permissions and free disk space"
                                                 : "check the database file";
    return tp_wh_fail(w, e, "SQLite database %s: %s failed (%s); %s", c->path, doing, msg, advice);
}

tp_err tp_sq_exec(tp_warehouse *w, const tp_sq_conn *c, const char *sql, const char *doing)
{
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? TP_OK : tp_sq_fail(w, c, rc, doing);
}

tp_err tp_sq_prepare(tp_warehouse *w, const tp_sq_conn *c, sqlite3_stmt **st, const char *sql, const char *doing)
{
    if (*st)
        return TP_OK;
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc == SQLITE_OK)
        return TP_OK;
    if (strstr(sqlite3_errmsg(c->db), "no such table"))
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "SQLite database %s: %s failed (%s); run with --create-table",
                          c->path, doing, sqlite3_errmsg(c->db));
    return tp_sq_fail(w, c, rc, doing);
}

tp_err tp_sq_open(tp_warehouse *w, tp_sq_conn *c, const char *rest)
{
    if (!rest[0])
        return tp_wh_fail(w, TP_ERR_PARSE, "warehouse URL \"sqlite:\" names no file; use sqlite:PATH");
    c->path = strdup(rest);
    if (!c->path)
        return TP_ERR_NOMEM;
    /* NOMUTEX: one sink thread owns the handle (warehouse.h says so). Without create_table a missing file is an
     * error, not a new empty database somewhere a typo pointed. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (w->create_table ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(rest, &c->db, flags, NULL);
    if (rc != SQLITE_OK && !w->create_table && access(rest, F_OK) != 0)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "SQLite database %s does not exist; run with --create-table or fix "
                          "the path", rest);
    if (rc != SQLITE_OK)
        return tp_sq_fail(w, c, rc, "opening it");
    sqlite3_extended_result_codes(c->db, 1);
    /* Wait for another writer (an analyst's sqlite3 shell, a second sink) instead of failing at once. */
    sqlite3_busy_timeout(c->db, w->timeout_ms > INT32_MAX ? INT32_MAX : (int)w->timeout_ms);
    /* WAL: readers (analysts) never block the sink and the sink never blocks them. synchronous=FULL: a commit
     * returns only after the WAL is fsync'ed, so "load returned TP_OK" survives a power cut too, as warehouse.h
     * promises (NORMAL would only survive a process crash). One fsync per load of thousands of rows is cheap. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return tp_sq_fail(w, c, rc, "switching to WAL mode");
    return tp_sq_exec(w, c, "PRAGMA synchronous=FULL", "setting synchronous=FULL");
}

void tp_sq_close(tp_sq_conn *c)
{
    sqlite3_finalize(c->upsert_offset);
    sqlite3_finalize(c->select_offset);
    sqlite3_close(c->db); /* also on a failed open: sqlite3_open_v2 may hand back a handle */
    free(c->path);
    *c = (tp_sq_conn){0};
}

tp_err tp_sq_begin(tp_warehouse *w, const tp_sq_conn *c)
{
    /* IMMEDIATE takes the write lock now (waiting up to busy_timeout), not halfway through the load. */
    return tp_sq_exec(w, c, "BEGIN IMMEDIATE", "starting a transaction");
}

tp_err tp_sq_prepare_offsets(tp_warehouse *w, tp_sq_conn *c)
{
    return tp_sq_prepare(w, c, &c->upsert_offset,
                         "INSERT INTO kafka_offsets (table_name, topic, \"partition\", next_offset) VALUES (?,?,?,?) "
                         "ON CONFLICT (table_name, topic, \"partition\") DO UPDATE SET next_offset = "
                         "excluded.next_offset",
                         "preparing the offsets upsert");
}

int tp_sq_store_offsets(tp_warehouse *w, tp_sq_conn *c, const char *topic, const tp_partition_offset *offsets,
                        size_t n_offsets, const char **doing)
{
    sqlite3_stmt *up = c->upsert_offset;
    int rc = SQLITE_OK;
    for (size_t i = 0; i < n_offsets && rc == SQLITE_OK; i++) {
        *doing = "storing the Kafka offsets";
        sqlite3_bind_text(up, 1, w->table, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 2, topic, -1, SQLITE_STATIC);
        sqlite3_bind_int(up, 3, offsets[i].partition);
        sqlite3_bind_int64(up, 4, offsets[i].next_offset);
        rc = sqlite3_step(up);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(up);
    }
    sqlite3_clear_bindings(up); /* drop the pointer to the caller's topic */
    return rc;
}

tp_err tp_sq_finish(tp_warehouse *w, const tp_sq_conn *c, int rc, const char *doing)
{
    if (rc == SQLITE_OK) {
        doing = "committing";
        rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        return TP_OK;
    tp_err e = tp_sq_fail(w, c, rc, doing);
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return e;
}

tp_err tp_sq_stored_offset(tp_warehouse *w, tp_sq_conn *c, const char *topic, int32_t partition,
                           int64_t *next_offset)
{
    tp_err e = tp_sq_prepare(w, c, &c->select_offset,
                             "SELECT next_offset FROM kafka_offsets WHERE table_name = ? AND topic = ? AND "
                             "\"partition\" = ?",
                             "reading the Kafka offsets");
    if (e)
        return e;
    sqlite3_stmt *st = c->select_offset;
    sqlite3_bind_text(st, 1, w->table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, partition);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *next_offset = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tp_sq_fail(w, c, rc, "reading the Kafka offsets");
    return TP_OK;
}

tp_err tp_sq_ping(tp_warehouse *w, const tp_sq_conn *c)
{
    return tp_sq_exec(w, c, "SELECT 1", "a ping query");
}
