/* Warehouses: where the sink loads rows. One small interface, one backend per file (SQLite, ClickHouse, BigQuery). */
#ifndef TELEPACK_WAREHOUSE_H
#define TELEPACK_WAREHOUSE_H

#include <stddef.h>
#include <stdint.h>

#include "telepack/error.h"
#include "telepack/rows.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The Kafka position a load brings a partition to: `next_offset` is the offset of the next message to read
 * (the last loaded message's offset + 1), as Kafka commits it. */
typedef struct tp_partition_offset {
    int32_t partition;
    int64_t next_offset;
} tp_partition_offset;

/* The per-row lineage columns (kafka_partition, kafka_offset) of a table create_table makes. */
typedef enum tp_wh_lineage {
    TP_WH_LINEAGE_DEFAULT = 0, /* the backend's default: ClickHouse without, the others with */
    TP_WH_LINEAGE_YES,
    TP_WH_LINEAGE_NO,
} tp_wh_lineage;

typedef struct tp_warehouse_opts {
    const char *table;            /* table name; default "vehicle_positions" */
    int create_table;             /* create the table (and database) when missing */
    tp_wh_lineage lineage_columns; /* the built-in ClickHouse table that create_table makes: with or without
                                    * kafka_partition, kafka_offset per row (default: without). An existing table
                                    * loads in its own shape. Other backends always have them: NO is refused */
    const char *user;             /* ClickHouse user / password; NULL = default user */
    const char *password;
    const char *ca_file;          /* HTTPS (clickhouses://, BigQuery): PEM file of the CAs that verify the server;
                                   * NULL = the system's CA store */
    const char *token_file;       /* BigQuery: file holding an OAuth bearer token; NULL = $TP_BIGQUERY_TOKEN */
    const char *endpoint;         /* BigQuery: API base URL override (tests); NULL = the real service */
    long timeout_ms;              /* per request; default 30000 */
    const struct tp_schema *schema; /* a run-time schema (schema/schema.h): the table is generated from its
                                     * flattened columns and loads take tp_warehouse_load_dyn; NULL = the built-in
                                     * vehicle_positions layout. Borrowed: must outlive the warehouse. SQLite,
                                     * ClickHouse and BigQuery (docs/WAREHOUSES.md, "Tables of your own schema") */
} tp_warehouse_opts;

void tp_warehouse_opts_init(tp_warehouse_opts *o);

/* An open connection to one warehouse table. Not thread-safe: one sink thread owns it. */
typedef struct tp_warehouse tp_warehouse;

/* Opens the warehouse named by url:
 *   sqlite:PATH                           embedded, WAL mode; offsets in the same transaction as rows
 *   clickhouse://HOST:PORT/DB             HTTP interface, RowBinary inserts (default port 8123)
 *   clickhouses://HOST:PORT/DB            the same over HTTPS, the server's certificate verified against
 *                                         opts.ca_file or the system's CAs (default port 8443)
 *   bigquery://PROJECT/DATASET/TABLE      tabledata.insertAll
 *   null:                                 discards the rows; offsets kept in memory for the life of the handle
 *                                         (benchmarks of the sink without a warehouse, dry runs)
 * opts may be NULL. The warehouse copies the strings it keeps. On failure *out is NULL and, when err_msg is not
 * NULL, a sentence saying what failed is written there (err_cap bytes at most). */
tp_err tp_warehouse_open(const char *url, const tp_warehouse_opts *opts, tp_warehouse **out, char *err_msg,
                         size_t err_cap);

/* Creates the table if opts.create_table was set, then checks it exists with the columns we load.
 * TP_ERR_WAREHOUSE with a message ("table telemetry.vehicle_positions does not exist; run with --create-table")
 * otherwise. */
tp_err tp_warehouse_ensure_table(tp_warehouse *w);

/* Loads every row of `rows` and records, for topic, the offsets in `offsets[0..n_offsets)`, then returns TP_OK only
 * once the warehouse has acknowledged durably. Loads are idempotent: loading the same rows again (after a crash
 * before the offsets were committed to Kafka) leaves each record once in the table after the backend's
 * deduplication (SQLite: at once; ClickHouse: after merges or with FINAL; BigQuery: best effort by insertId).
 * TP_ERR_UNAVAILABLE means "retry later" (connection refused, timeout, 5xx).
 * TP_ERR_REJECTED means the warehouse refused *data*, not the configuration, and the offsets were NOT recorded:
 *   - with tp_warehouse_rejected_count() > 0, it named the rows it refused as invalid (BigQuery insertErrors with
 *     reason "invalid"), and every other row of `rows` WAS loaded (once);
 *   - with none named, it refused the batch as a whole (ClickHouse: too many partitions for one INSERT); part of it
 *     may have been loaded. Split the batch and load the parts (the repeat is absorbed like any reload).
 *   Either way the caller sets the refused rows aside (telepack's sink dead-letters their packs) and records the
 *   offsets with a later load.
 * Other errors are permanent (missing table, schema mismatch, credentials). */
tp_err tp_warehouse_load(tp_warehouse *w, const tp_row_batch *rows, const char *topic,
                         const tp_partition_offset *offsets, size_t n_offsets);

/* Loads rows of the run-time schema the warehouse was opened with (opts.schema): rows [0, rows->count) of a
 * tp_dyn_batch (schema/dynrow.h), row i coming from Kafka (partition[i], offset[i]); otherwise as
 * tp_warehouse_load (same transaction with the offsets, idempotent on the identity columns).
 * TP_ERR_INVALID_ARG when the warehouse was opened without a schema. */
struct tp_dyn_batch;
tp_err tp_warehouse_load_dyn(tp_warehouse *w, const struct tp_dyn_batch *rows, const int32_t *partition,
                             const int64_t *offset, const char *topic, const tp_partition_offset *offsets,
                             size_t n_offsets);
/* The same for rows [first, first + count) of the batch only (a part of a batch the warehouse refused as a whole,
 * TP_ERR_REJECTED without named rows); partition and offset are still indexed by the batch's row, and the rows
 * tp_warehouse_rejected names are counted from `first`. */
tp_err tp_warehouse_load_dyn_range(tp_warehouse *w, const struct tp_dyn_batch *rows, size_t first, size_t count,
                                   const int32_t *partition, const int64_t *offset, const char *topic,
                                   const tp_partition_offset *offsets, size_t n_offsets);

/* After a load that returned TP_ERR_REJECTED: how many rows the warehouse named as invalid, and the i-th of them
 * (its index in the loaded batch, and the warehouse's reason as a sentence, valid until the next load).
 * 0 / TP_ERR_INVALID_ARG otherwise. */
size_t tp_warehouse_rejected_count(const tp_warehouse *w);
tp_err tp_warehouse_rejected(const tp_warehouse *w, size_t i, size_t *row, const char **reason);

/* The next offset to read for (topic, partition) according to what the warehouse holds, or -1 when it knows
 * nothing (then the consumer group's committed offset applies). SQLite: the offsets table (same transaction as the
 * rows); ClickHouse: its kafka_offsets table, written only after the rows were acknowledged (never ahead of them;
 * see docs/WAREHOUSES.md); BigQuery: always -1; null: what this handle loaded, else -1. */
tp_err tp_warehouse_stored_offset(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset);

/* Whether the warehouse answers right now (for /readyz). */
tp_err tp_warehouse_ping(tp_warehouse *w);

/* The last error as a sentence naming the warehouse, what failed and what to do. Never NULL. */
const char *tp_warehouse_last_error(const tp_warehouse *w);

/* A short name for logs and metrics: "sqlite", "clickhouse", "bigquery", "null". */
const char *tp_warehouse_kind(const tp_warehouse *w);

void tp_warehouse_close(tp_warehouse *w);

#ifdef __cplusplus
}
#endif
#endif
