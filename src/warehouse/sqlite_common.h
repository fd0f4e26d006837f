/* What the two SQLite backends share (wh_sqlite.c, the built-in table; wh_sqlite_schema.c, tables of a run-time
 * schema): the connection (WAL, synchronous=FULL, busy timeout), error sentences, statements prepared once, the
 * load transaction and the Kafka offsets in the kafka_offsets table. See docs/WAREHOUSES.md. */
#ifndef TELEPACK_WAREHOUSE_SQLITE_COMMON_H
#define TELEPACK_WAREHOUSE_SQLITE_COMMON_H

#include <sqlite3.h>

#include "warehouse/warehouse_impl.h"

/* The columns of kafka_offsets: keyed by (table, topic, partition), so sinks loading different tables of one file
 * keep their own positions. */
#define TP_SQ_OFFSETS_COLUMNS                                                                                      \
    " (table_name TEXT NOT NULL, topic TEXT NOT NULL, \"partition\" INTEGER NOT NULL, "                           \
    "next_offset INTEGER NOT NULL, PRIMARY KEY (table_name, topic, \"partition\"))"

/* One SQLite database file; each backend's handle starts with one. */
typedef struct tp_sq_conn {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *upsert_offset, *select_offset; /* prepared once, reused */
} tp_sq_conn;

/* The failure of `doing` with SQLite's code rc as w's error: TP_ERR_UNAVAILABLE for BUSY/LOCKED (another process
 * holds the database: retry later), TP_ERR_NOMEM, TP_ERR_IO for I/O, full disk, unopenable or read-only files,
 * else TP_ERR_WAREHOUSE; the sentence names the file and what to do. */
tp_err tp_sq_fail(tp_warehouse *w, const tp_sq_conn *c, int rc, const char *doing);
/* Runs sql (no result rows wanted). */
tp_err tp_sq_exec(tp_warehouse *w, const tp_sq_conn *c, const char *sql, const char *doing);
/* Prepares sql into *st once (a persistent statement); a missing table says to run with --create-table. */
tp_err tp_sq_prepare(tp_warehouse *w, const tp_sq_conn *c, sqlite3_stmt **st, const char *sql, const char *doing);

/* Opens "sqlite:PATH"'s PATH (rest) into c: created only with w->create_table (else a missing file is an error
 * naming it), extended result codes, busy timeout w->timeout_ms, WAL and synchronous=FULL. */
tp_err tp_sq_open(tp_warehouse *w, tp_sq_conn *c, const char *rest);
/* Finalizes the offsets statements, closes the database, frees the path (also after a failed open). */
void tp_sq_close(tp_sq_conn *c);

/* The load transaction: BEGIN IMMEDIATE (the write lock now, waiting up to the busy timeout), then the caller's
 * rows, then tp_sq_store_offsets, then tp_sq_finish, which commits when rc is SQLITE_OK and otherwise (or when the
 * commit fails) rolls back and returns the failure of `doing`. */
tp_err tp_sq_begin(tp_warehouse *w, const tp_sq_conn *c);
/* Upserts the offsets of w->table and topic; returns SQLite's code (SQLITE_OK) and sets *doing on a failure.
 * Prepares the upsert first (TP_ERR through tp_sq_prepare before the transaction: see tp_sq_prepare_offsets). */
int tp_sq_store_offsets(tp_warehouse *w, tp_sq_conn *c, const char *topic, const tp_partition_offset *offsets,
                        size_t n_offsets, const char **doing);
tp_err tp_sq_prepare_offsets(tp_warehouse *w, tp_sq_conn *c);
tp_err tp_sq_finish(tp_warehouse *w, const tp_sq_conn *c, int rc, const char *doing);

/* The next offset stored for (w->table, topic, partition); *next_offset untouched when none. */
tp_err tp_sq_stored_offset(tp_warehouse *w, tp_sq_conn *c, const char *topic, int32_t partition,
                           int64_t *next_offset);
tp_err tp_sq_ping(tp_warehouse *w, const tp_sq_conn *c);

#endif
