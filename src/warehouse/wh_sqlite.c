/* The embedded warehouse: SQLite in WAL mode. One transaction per load holds the rows and the Kafka offsets they
 * bring their partitions to, so a load is all-or-nothing and the offsets always describe exactly the rows present
 * (exactly-once when the sink resumes from tp_warehouse_stored_offset). See docs/WAREHOUSES.md. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "warehouse/sqlite_common.h"

typedef struct wh_sqlite {
    tp_sq_conn c;             /* the file, its offsets statements */
    sqlite3_stmt *insert_row; /* prepared once, reused for every row */
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

static tp_err fail_db(tp_warehouse *w, int rc, const char *doing)
{
    return tp_sq_fail(w, &impl(w)->c, rc, doing);
}

static tp_err exec(tp_warehouse *w, const char *sql, const char *doing)
{
    return tp_sq_exec(w, &impl(w)->c, sql, doing);
}

static tp_err sq_open(tp_warehouse *w, const char *rest)
{
    wh_sqlite *s = calloc(1, sizeof *s);
    if (!s)
        return TP_ERR_NOMEM;
    w->impl = s;
    return tp_sq_open(w, &s->c, rest);
}

/* Float columns: nullable, NULL meaning NaN (SQLite cannot store a NaN REAL: it binds as NULL). */
#define FIRST_FLOAT_COLUMN 3
#define N_FLOAT_COLUMNS 5
/* Columns 0..2 are the record identity. */
#define IDENTITY_MASK 0x7u

/* The CREATE TABLE of our layout, also the target of the rebuild that docs/WAREHOUSES.md shows for old tables. */
static void table_ddl(char *sql, size_t cap, const char *table)
{
    /* vehicle_id and seq are uint64: SQLite integers are int64, so we store the same 64 bits (ids above 2^63
     * read back negative; cast to uint64 to get the id). WITHOUT ROWID: the identity is the storage order. The
     * float columns are nullable: NULL is how SQLite stores NaN. */
    snprintf(sql, cap,
             "CREATE TABLE IF NOT EXISTS %s ("
             "vehicle_id INTEGER NOT NULL, sampled_at_ms INTEGER NOT NULL, seq INTEGER NOT NULL, "
             "latitude REAL, longitude REAL, speed_kmh REAL, heading_deg REAL, accuracy_m REAL, "
             "meter_status INTEGER NOT NULL, kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL, "
             "PRIMARY KEY (vehicle_id, sampled_at_ms, seq)) WITHOUT ROWID;"
             "CREATE VIEW IF NOT EXISTS %s_utc AS SELECT "
             "strftime('%%Y-%%m-%%d %%H:%%M:%%f', sampled_at_ms / 1000.0, 'unixepoch') AS sampled_at_utc, "
             "printf('%%llu', vehicle_id) AS vehicle_id_u64, * FROM %s;",
             table, table, table);
}

/* Bit i set for row_columns[i]; bit 31 for a column (or expression) that is not ours. */
static unsigned column_bit(const char *name)
{
    for (size_t i = 0; name && i < N_ROW_COLUMNS; i++)
        if (!strcmp(name, row_columns[i]))
            return 1u << i;
    return 1u << 31;
}

/* "(a, b, c)" for the columns of mask, for sentences. */
static void mask_names(unsigned mask, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "(");
    for (size_t i = 0; i < N_ROW_COLUMNS && n < cap; i++)
        if (mask & (1u << i))
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n > 1 ? ", " : "", row_columns[i]);
    if (n < cap && (mask & (1u << 31)))
        n += (size_t)snprintf(out + n, cap - n, "%sother columns", n > 1 ? ", " : "");
    if (n < cap)
        snprintf(out + n, cap - n, ")");
}

/* Idempotency rests on the table's uniqueness: exactly one of its unique keys must be the record identity (a
 * resend is then absorbed by ON CONFLICT on it), and no other unique key may be narrower than the identity or
 * cover other columns (it would refuse distinct records). Unique keys that contain the identity are harmless. */
static tp_err check_identity_key(tp_warehouse *w, unsigned pk_mask, int pk_cols)
{
    wh_sqlite *s = impl(w);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT il.name, il.origin, ii.name FROM pragma_index_list('%s') AS il, pragma_index_info(il.name) AS ii "
             "WHERE il.\"unique\" AND NOT il.partial ORDER BY il.name",
             w->table);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->c.db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail_db(w, rc, "reading the table's indexes");
    unsigned masks[64];
    int pk_index = 0;
    size_t n = 0;
    char prev[128] = "";
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *origin = (const char *)sqlite3_column_text(st, 1);
        if (!name)
            continue;
        if (strcmp(name, prev)) {
            if (n == sizeof masks / sizeof masks[0])
                break;
            snprintf(prev, sizeof prev, "%s", name);
            masks[n++] = 0;
            if (origin && !strcmp(origin, "pk"))
                pk_index = 1;
        }
        masks[n - 1] |= column_bit((const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return fail_db(w, rc, "reading the table's indexes");
    /* A single-column INTEGER PRIMARY KEY is the rowid and has no index of its own. */
    if (pk_cols == 1 && !pk_index && n < sizeof masks / sizeof masks[0])
        masks[n++] = pk_mask;
    int identity = 0;
    for (size_t i = 0; i < n; i++) {
        if (masks[i] == IDENTITY_MASK) {
            identity = 1;
            continue;
        }
        if ((masks[i] & IDENTITY_MASK) == IDENTITY_MASK)
            continue; /* implied by the identity */
        char cols[256];
        mask_names(masks[i], cols, sizeof cols);
        return tp_wh_fail(w, TP_ERR_WAREHOUSE,
                          "SQLite table %s in %s has a unique key on %s, which is not the record identity "
                          "(vehicle_id, sampled_at_ms, seq): it would refuse distinct records; drop that key "
                          "(or recreate the table as docs/WAREHOUSES.md shows) or load into another table (--table)",
                          w->table, s->c.path, cols);
    }
    if (!identity)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE,
                          "SQLite table %s in %s has no PRIMARY KEY or UNIQUE index on exactly (vehicle_id, "
                          "sampled_at_ms, seq), so a re-delivered record would be stored twice; add one "
                          "(CREATE UNIQUE INDEX %s_identity ON %s (vehicle_id, sampled_at_ms, seq)) or load into "
                          "another table (--table)",
                          w->table, s->c.path, w->table, w->table);
    return TP_OK;
}

#define OFFSETS_DDL(name) "CREATE TABLE " name TP_SQ_OFFSETS_COLUMNS

/* The offsets table is our bookkeeping, keyed by (table, topic, partition) so that sinks loading different tables
 * of one file keep their own positions. Files written before it had a table_name (keyed by topic and partition
 * only) are migrated in one transaction: the old rows belong to the table the old sink loaded, which is known when
 * the file holds exactly one table with our columns; otherwise they are kept under table_name '' (no sink reads
 * them) and every table resumes from its consumer group's committed offsets, which are never ahead of its rows. */
static tp_err ensure_offsets_table(tp_warehouse *w)
{
    wh_sqlite *s = impl(w);
    tp_err e = exec(w, "BEGIN IMMEDIATE", "starting the kafka_offsets check");
    if (e)
        return e;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->c.db,
                                "SELECT count(*), sum(name = 'table_name') FROM pragma_table_info('kafka_offsets')",
                                -1, &st, NULL);
    int cols = 0, has_table = 0;
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        cols = sqlite3_column_int(st, 0);
        has_table = sqlite3_column_int(st, 1);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    const char *doing = "reading the kafka_offsets columns";
    if (rc == SQLITE_OK && cols == 0) {
        doing = "creating the kafka_offsets table";
        rc = sqlite3_exec(s->c.db, OFFSETS_DDL("kafka_offsets"), NULL, NULL, NULL);
    } else if (rc == SQLITE_OK && !has_table) {
        /* Which tables hold our rows? Exactly one: the old offsets are its. */
        doing = "finding the table the old kafka_offsets rows belong to";
        rc = sqlite3_prepare_v2(s->c.db,
                                "SELECT m.name FROM sqlite_master AS m WHERE m.type = 'table' AND (SELECT count(*) "
                                "FROM pragma_table_info(m.name) AS c WHERE c.name IN ('vehicle_id', 'sampled_at_ms', "
                                "'seq', 'kafka_partition', 'kafka_offset')) = 5 LIMIT 2",
                                -1, &st, NULL);
        char owner[TP_WH_NAME_MAX * 4 + 1] = "";
        int owners = 0;
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (owners++ == 0)
                snprintf(owner, sizeof owner, "%s", (const char *)sqlite3_column_text(st, 0));
            rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
        st = NULL;
        if (rc == SQLITE_DONE) {
            doing = "migrating kafka_offsets to per-table offsets";
            rc = sqlite3_exec(s->c.db,
                              "DROP TABLE IF EXISTS kafka_offsets_migrating;" OFFSETS_DDL("kafka_offsets_migrating"),
                              NULL, NULL, NULL);
        }
        if (rc == SQLITE_OK)
            rc = sqlite3_prepare_v2(s->c.db,
                                    "INSERT INTO kafka_offsets_migrating (table_name, topic, \"partition\", "
                                    "next_offset) SELECT ?, topic, \"partition\", next_offset FROM kafka_offsets",
                                    -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, owners == 1 ? owner : "", -1, SQLITE_STATIC);
            rc = sqlite3_step(st);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        sqlite3_finalize(st);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(s->c.db,
                              "DROP TABLE kafka_offsets; ALTER TABLE kafka_offsets_migrating RENAME TO kafka_offsets",
                              NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        doing = "committing the kafka_offsets check";
        rc = sqlite3_exec(s->c.db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        e = fail_db(w, rc, doing);
        if (!sqlite3_get_autocommit(s->c.db))
            sqlite3_exec(s->c.db, "ROLLBACK", NULL, NULL, NULL);
        return e;
    }
    return TP_OK;
}

static tp_err sq_ensure_table(tp_warehouse *w)
{
    wh_sqlite *s = impl(w);
    char sql[2048];
    tp_err e;
    if (w->create_table) {
        table_ddl(sql, sizeof sql, w->table);
        if ((e = exec(w, sql, "creating the table")))
            return e;
    }
    if ((e = ensure_offsets_table(w)))
        return e;

    /* Check the table has every column we load, floats nullable, and the identity as its unique key. */
    snprintf(sql, sizeof sql, "SELECT name, \"notnull\", pk FROM pragma_table_info('%s')", w->table);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->c.db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail_db(w, rc, "reading the table's columns");
    unsigned found = 0, not_null = 0, pk_mask = 0, n = 0;
    int pk_cols = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        unsigned bit = column_bit((const char *)sqlite3_column_text(st, 0));
        n++;
        found |= bit;
        if (sqlite3_column_int(st, 1))
            not_null |= bit;
        if (sqlite3_column_int(st, 2)) {
            pk_mask |= bit;
            pk_cols++;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail_db(w, rc, "reading the table's columns");
    if (n == 0)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "SQLite database %s has no table %s; run with --create-table",
                          s->c.path, w->table);
    for (size_t i = 0; i < N_ROW_COLUMNS; i++)
        if (!(found & (1u << i)))
            return tp_wh_fail(w, TP_ERR_WAREHOUSE,
                              "SQLite table %s in %s has no column %s; drop it or load into another table (--table)",
                              w->table, s->c.path, row_columns[i]);
    /* Tables made before NaN was stored: a NaN would violate NOT NULL and the load would fail. */
    for (size_t i = FIRST_FLOAT_COLUMN; i < FIRST_FLOAT_COLUMN + N_FLOAT_COLUMNS; i++)
        if (not_null & (1u << i))
            return tp_wh_fail(w, TP_ERR_WAREHOUSE,
                              "SQLite table %s in %s declares %s NOT NULL (the layout before NaN support), so a "
                              "record with NaN there cannot be stored (SQLite stores NaN as NULL); rebuild it with "
                              "nullable float columns as docs/WAREHOUSES.md shows, or load into a new table (--table)",
                              w->table, s->c.path, row_columns[i]);
    return check_identity_key(w, pk_mask, pk_cols);
}

static tp_err prepare_all(tp_warehouse *w)
{
    wh_sqlite *s = impl(w);
    char sql[512];
    /* A record already present (a gateway resend in another pack, a re-delivered pack) is absorbed by a conflict on
     * the identity, and only that: not OR IGNORE, which would also skip rows that break any other constraint. */
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (vehicle_id, sampled_at_ms, seq, latitude, longitude, speed_kmh, heading_deg, "
             "accuracy_m, meter_status, kafka_partition, kafka_offset) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
             "ON CONFLICT (vehicle_id, sampled_at_ms, seq) DO NOTHING",
             w->table);
    tp_err e = tp_sq_prepare(w, &s->c, &s->insert_row, sql, "preparing the insert");
    if (!e)
        e = tp_sq_prepare_offsets(w, &s->c);
    return e;
}

/* NaN as NULL (what sqlite3_bind_double does implicitly; said here so nobody relies on it by accident). ±inf stay
 * REALs; -0.0 comes back as 0.0 (SQLite stores integral REALs as integers). */
static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isnan(v))
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_double(st, i, v);
}

static tp_err sq_load(tp_warehouse *w, const tp_row_batch *b, const char *topic, const tp_partition_offset *offsets,
                      size_t n_offsets)
{
    wh_sqlite *s = impl(w);
    tp_err e = prepare_all(w);
    if (e)
        return e;
    if ((e = tp_sq_begin(w, &s->c)))
        return e;
    sqlite3_stmt *ins = s->insert_row;
    int rc = SQLITE_OK;
    const char *doing = "inserting rows";
    for (size_t i = 0; i < b->count && rc == SQLITE_OK; i++) {
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)b->vehicle_id[i]);
        sqlite3_bind_int64(ins, 2, b->sampled_at_ms[i]);
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)b->seq[i]);
        bind_real(ins, 4, b->latitude[i]);
        bind_real(ins, 5, b->longitude[i]);
        bind_real(ins, 6, b->speed_kmh[i]);
        bind_real(ins, 7, b->heading_deg[i]);
        bind_real(ins, 8, b->accuracy_m[i]);
        sqlite3_bind_int(ins, 9, b->meter_status[i]);
        sqlite3_bind_int(ins, 10, b->kafka_partition[i]);
        sqlite3_bind_int64(ins, 11, b->kafka_offset[i]);
        rc = sqlite3_step(ins);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(ins);
    }
    if (rc == SQLITE_OK)
        rc = tp_sq_store_offsets(w, &s->c, topic, offsets, n_offsets, &doing);
    return tp_sq_finish(w, &s->c, rc, doing);
}

static tp_err sq_stored_offset(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset)
{
    return tp_sq_stored_offset(w, &impl(w)->c, topic, partition, next_offset);
}

static tp_err sq_ping(tp_warehouse *w)
{
    return tp_sq_ping(w, &impl(w)->c);
}

static void sq_close(tp_warehouse *w)
{
    wh_sqlite *s = impl(w);
    if (!s)
        return;
    sqlite3_finalize(s->insert_row);
    tp_sq_close(&s->c);
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
