/* The ClickHouse warehouse over its HTTP interface (libcurl, one keep-alive handle): rows go in as one Native block
 * (column by column, rows in the table's ORDER BY order) into a ReplacingMergeTree keyed on the record identity, and
 * each load's Kafka positions go into a small kafka_offsets table once the rows are acknowledged. Works with 18.16
 * (Debian's). See docs/WAREHOUSES.md.
 *
 * Native block (the body of INSERT ... FORMAT Native; over HTTP without the TCP protocol's block info):
 *   varint columns (11; 9 without lineage) | varint rows (n) | per column, in the order of INSERT_COLUMNS:
 *     varint name length | name | varint type length | type ("UInt64") | n values, little-endian, fixed width
 * Rows are ordered by (vehicle_id, sampled_at_ms, seq): a batch is a sequence of per-vehicle packs, each already in
 * time order, so the order is found by sorting the packs' runs by their first key and, only when runs overlap, by
 * merging them (order_rows). ClickHouse then finds the block sorted and skips its own sort.
 *
 * ?format=rowbinary keeps the former path for comparison: rows as they arrived, 68 bytes each, little-endian:
 *   vehicle_id u64 | sampled_at_ms i64 | seq u64 | latitude f64 | longitude f64 | speed_kmh f32 | heading_deg f32 |
 *   accuracy_m f32 | meter_status i32 | kafka_partition i32 | kafka_offset i64
 *
 * A table without the lineage columns kafka_partition and kafka_offset (--lineage-columns no, or made so by an
 * operator) is accepted: ensure_table finds out which shape the table has, and both formats then send the first 9
 * columns only (Native: 9 columns; RowBinary: 56 bytes per row). Exactly-once does not rest on them but on the
 * identity key and the kafka_offsets table.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "warehouse/wh_clickhouse.h"

#define CH_DEFAULT_PORT 8123
#define CH_DEFAULT_TLS_PORT 8443
#define CH_ROW_BYTES 68
#define CH_LINEAGE_BYTES 12 /* kafka_partition i32 + kafka_offset i64 at the end of a RowBinary row */
#define CH_OFFSETS_TABLE "kafka_offsets"
/* What --create-table makes without --lineage-columns: the table without kafka_partition/kafka_offset. They cost the
 * server two more files per part, about a fifth of its CPU per inserted row (bench/ch_inserts, docs/WAREHOUSES.md),
 * and nothing rests on them. */
#define CH_LINEAGE_DEFAULT TP_WH_LINEAGE_NO
#define RECORD_COLUMNS                                                                                            \
    "vehicle_id, sampled_at_ms, seq, latitude, longitude, speed_kmh, heading_deg, accuracy_m, meter_status"
#define INSERT_COLUMNS RECORD_COLUMNS ", kafka_partition, kafka_offset"

/* Our columns and their exact ClickHouse types: RowBinary carries no types, so ensure_table checks them. */
static const struct {
    const char *name, *type;
} columns[] = {
    {"vehicle_id", "UInt64"},   {"sampled_at_ms", "Int64"},   {"seq", "UInt64"},        {"latitude", "Float64"},
    {"longitude", "Float64"},   {"speed_kmh", "Float32"},     {"heading_deg", "Float32"}, {"accuracy_m", "Float32"},
    {"meter_status", "Int32"},  {"kafka_partition", "Int32"}, {"kafka_offset", "Int64"},
};
#define N_COLUMNS (sizeof columns / sizeof columns[0])
#define N_RECORD_COLUMNS (N_COLUMNS - 2) /* without the lineage columns, the last two */

typedef struct wh_clickhouse {
    tp_wh_http http;
    struct curl_slist *headers;
    char where[300];      /* "ClickHouse at HOST:PORT", for sentences */
    char base_url[300];   /* http://HOST:PORT/ or https://HOST:PORT/ */
    char *insert_url;     /* base_url + ?query=INSERT ... FORMAT Native|RowBinary (escaped once) */
    int lineage;          /* the table has kafka_partition, kafka_offset (sent); 1 until ensure_table learns */
    char *offsets_url;    /* the same for the offsets table */
    char db[TP_WH_NAME_MAX + 1];
    char version[64];     /* SELECT version(), learnt on first contact */
    int major;
    tp_wh_buf body;       /* request bodies, reused across loads */
    int gzip;             /* ?gzip=1: send the rows gzip-compressed (Content-Encoding: gzip; 18.16 accepts it) */
    z_stream zs;
    int zs_ready;
    tp_wh_buf gz;         /* the compressed body, reused */
    struct curl_slist *gzip_headers;
    tp_wh_buf sql;
    int rowbinary;        /* ?format=rowbinary: rows as they arrived, RowBinary (else Native, in key order) */
    uint32_t *perm, *perm_tmp; /* row order of the Native block, and the merge's scratch; reused, 4 B/row each */
    size_t perm_cap;
    size_t *runs;         /* starts of the sorted runs of the batch (+ end), reused */
    size_t runs_cap;
    void *ext;            /* wh_clickhouse_schema.c's state (tp_ch_ext) */
} wh_clickhouse;

static wh_clickhouse *impl(tp_warehouse *w)
{
    return w->impl;
}

/* ClickHouse error codes that mean "try again later" (server overloaded, timeouts, a replica read-only for a while);
 * every other code is a permanent refusal (bad table, bad data, bad credentials). */
static int transient_code(int code)
{
    static const int codes[] = {
        3,   /* UNEXPECTED_END_OF_FILE: the request was cut */
        159, /* TIMEOUT_EXCEEDED */
        160, /* TOO_SLOW */
        202, /* TOO_MANY_SIMULTANEOUS_QUERIES */
        209, /* SOCKET_TIMEOUT */
        210, /* NETWORK_ERROR */
        241, /* MEMORY_LIMIT_EXCEEDED */
        242, /* TABLE_IS_READ_ONLY */
        252, /* TOO_MANY_PARTS: merges lag behind inserts (but see too_many_partitions) */
        286, /* UNFINISHED */
        319, /* UNKNOWN_STATUS_OF_INSERT */
        425, /* SYSTEM_ERROR */
        999, /* KEEPER_EXCEPTION */
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i] == code)
            return 1;
    return 0;
}

/* Pulls "Code: N" and the exception text out of an error answer (18.16: "Code: 60, e.displayText() =
 * DB::Exception: Table x doesn't exist., e.what() = DB::Exception"; 21+: "Code: 60. DB::Exception: ... (NAME)"). */
static int parse_exception(const char *body, char *msg, size_t cap)
{
    int code = -1;
    const char *c = strstr(body, "Code: ");
    if (c)
        code = atoi(c + 6);
    const char *m = strstr(body, "DB::Exception: ");
    m = m ? m + 15 : body;
    const char *end = strstr(m, ", e.what()");
    size_t n = end ? (size_t)(end - m) : strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' ' || m[n - 1] == '\r'))
        n--;
    if (n > 400)
        n = 400;
    snprintf(msg, cap, "%.*s", (int)n, m);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return code;
}

static const char *advice_for(int code)
{
    switch (code) {
    case 60: /* UNKNOWN_TABLE */
    case 81: /* UNKNOWN_DATABASE */
        return "run with --create-table or create it";
    case 16: /* NO_SUCH_COLUMN_IN_TABLE */
    case 47: /* UNKNOWN_IDENTIFIER */
    case 33: /* CANNOT_READ_ALL_DATA: column types differ from what we send */
        return "the table's columns differ from telepack's (see docs/WAREHOUSES.md); recreate it or use --table";
    case 192: /* UNKNOWN_USER */
    case 193: /* WRONG_PASSWORD */
    case 194: /* REQUIRED_PASSWORD */
    case 195: /* IP_ADDRESS_NOT_ALLOWED */
    case 516: /* AUTHENTICATION_FAILED */
        return "check --user and --password";
    case 164: /* READONLY */
    case 497: /* ACCESS_DENIED */
        return "grant the user INSERT (and CREATE with --create-table) on the database";
    default:
        return "see the server's log";
    }
}

/* Sends a request; on a non-200 answer turns ClickHouse's exception into a sentence: "ClickHouse at H:P refused
 * <doing> (code 60: ...); <advice>". */
static tp_err ch_request(tp_warehouse *w, const char *url, const struct curl_slist *headers, const void *body,
                         size_t len, const char *doing)
{
    wh_clickhouse *c = impl(w);
    tp_err e = tp_wh_http_request(w, &c->http, c->where, "POST", url, headers, body, len);
    if (e)
        return e;
    if (c->http.status == 200)
        return TP_OK;
    char msg[512];
    int code = parse_exception(tp_wh_buf_cstr(&c->http.resp), msg, sizeof msg);
    long st = c->http.status;
    if (code < 0)
        return tp_wh_fail(w, st >= 500 || st == 429 ? TP_ERR_UNAVAILABLE : TP_ERR_WAREHOUSE,
                          "%s answered HTTP %ld to %s (%s); %s", c->where, st, doing, msg[0] ? msg : "no details",
                          st >= 500 || st == 429 ? "retry later" : "check the URL");
    /* Code 252 also means "Too many partitions for [a] single INSERT block (more than 100)" (19.x+, setting
     * max_partitions_per_insert_block): the batch spans too many days and can never succeed as it is. That is a
     * refusal of the data, not a transient state: the caller splits the batch. */
    if (code == 252 && strstr(msg, "partitions for"))
        return tp_wh_fail(w, TP_ERR_REJECTED, "%s refused %s (code %d: %.200s); the batch spans too many "
                          "partitions (days) for one INSERT: split it",
                          c->where, doing, code, msg);
    tp_err kind = transient_code(code) || st == 503 ? TP_ERR_UNAVAILABLE : TP_ERR_WAREHOUSE;
    return tp_wh_fail(w, kind, "%s refused %s (code %d: %s); %s", c->where, doing, code, msg,
                      kind == TP_ERR_UNAVAILABLE ? "retry later" : advice_for(code));
}

/* Runs a statement given in c->sql (sent as the request body); the answer stays in c->http.resp. */
static tp_err ch_query(tp_warehouse *w, const char *doing)
{
    wh_clickhouse *c = impl(w);
    return ch_request(w, c->base_url, c->headers, c->sql.data, c->sql.len, doing);
}

static tp_err ch_sql(tp_warehouse *w, const char *doing, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static tp_err ch_sql(tp_warehouse *w, const char *doing, const char *fmt, ...)
{
    wh_clickhouse *c = impl(w);
    va_list ap;
    va_start(ap, fmt);
    char tmp[2048];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: statement for %s is too long", c->where, doing);
    c->sql.len = 0;
    if (tp_wh_buf_append(&c->sql, tmp, (size_t)n))
        return TP_ERR_NOMEM;
    return ch_query(w, doing);
}

/* Learns the server's version once (for sentences, and to know which features exist). */
static tp_err ch_version(tp_warehouse *w)
{
    wh_clickhouse *c = impl(w);
    if (c->version[0])
        return TP_OK;
    tp_err e = ch_sql(w, "a version query", "SELECT version()");
    if (e)
        return e;
    const char *v = tp_wh_buf_cstr(&c->http.resp);
    snprintf(c->version, sizeof c->version, "%.*s", (int)strcspn(v, "\r\n"), v);
    c->major = atoi(c->version);
    /* 18.x is the oldest we know: PARTITION BY expressions, X-ClickHouse-User headers, gzip bodies. */
    if (c->major < 18)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s runs ClickHouse %s; telepack needs 18.16 or newer", c->where,
                          c->version);
    return TP_OK;
}

/* Kafka topic names are [A-Za-z0-9._-]{1,249}: anything else never reaches our SQL. */
static int valid_topic(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 249)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static char *make_insert_url(wh_clickhouse *c, const char *query)
{
    char *esc = curl_easy_escape(c->http.curl, query, 0);
    if (!esc)
        return NULL;
    size_t n = strlen(c->base_url) + strlen(esc) + 16;
    char *url = malloc(n);
    if (url)
        snprintf(url, n, "%s?query=%s", c->base_url, esc);
    curl_free(esc);
    return url;
}

/* The rows' INSERT for the table's shape (c->lineage) and the body format. */
static tp_err ch_set_insert_url(tp_warehouse *w)
{
    wh_clickhouse *c = impl(w);
    char q[512];
    snprintf(q, sizeof q, "INSERT INTO %s.%s (%s) FORMAT %s", c->db, w->table,
             c->lineage ? INSERT_COLUMNS : RECORD_COLUMNS, c->rowbinary ? "RowBinary" : "Native");
    char *url = make_insert_url(c, q);
    if (!url)
        return TP_ERR_NOMEM;
    free(c->insert_url);
    c->insert_url = url;
    return TP_OK;
}

static tp_err ch_bad_url(tp_warehouse *w, const char *url_rest)
{
    return tp_wh_fail(w, TP_ERR_PARSE,
                      "ClickHouse URL \"%s%s\" is not HOST[:PORT][/DATABASE][?gzip=1][&format=native|rowbinary]",
                      w->tls ? "clickhouses://" : "clickhouse://", url_rest);
}

/* The URL's options, "&"-separated (query is modified). */
static tp_err ch_options(tp_warehouse *w, wh_clickhouse *c, char *query)
{
    for (char *opt = strtok(query, "&"); opt; opt = strtok(NULL, "&")) {
        if (!strcmp(opt, "gzip=1") || !strcmp(opt, "gzip=0"))
            c->gzip = opt[5] == '1';
        else if (!strcmp(opt, "format=native") || !strcmp(opt, "format=rowbinary"))
            c->rowbinary = opt[7] == 'r';
        else
            return tp_wh_fail(w, TP_ERR_PARSE,
                              "ClickHouse URL option \"%s\" is unknown; the options are gzip=1 (compress the "
                              "rows) and format=native|rowbinary (default native)",
                              opt);
    }
    return TP_OK;
}

/* The URL's path: /DB or / or nothing (database "default"), one trailing slash allowed. */
static tp_err ch_database(tp_warehouse *w, wh_clickhouse *c, const char *path)
{
    const char *db = "default";
    size_t db_len = 7;
    if (*path == '/')
        path++;
    size_t n = strlen(path);
    if (n && path[n - 1] == '/')
        n--;
    if (n) {
        db = path;
        db_len = n;
    }
    if (!tp_wh_valid_name(db, db_len))
        return tp_wh_fail(w, TP_ERR_INVALID_ARG,
                          "ClickHouse database name \"%.*s\" is not usable; use 1 to %d letters, digits or "
                          "underscores",
                          (int)db_len, db, TP_WH_NAME_MAX);
    memcpy(c->db, db, db_len);
    c->db[db_len] = '\0';
    return TP_OK;
}

/* Takes rest = HOST[:PORT][/DB][?gzip=0|1&format=native|rowbinary] apart with libcurl's URL parser (HOST may be
 * [IPv6]); fills c's options, database, where and base_url. */
static tp_err ch_parse_url(tp_warehouse *w, wh_clickhouse *c, const char *url_rest)
{
    if (strlen(url_rest) >= 512)
        return tp_wh_fail(w, TP_ERR_PARSE, "ClickHouse URL \"%s%.100s...\" is too long",
                          w->tls ? "clickhouses://" : "clickhouse://", url_rest);
    char full[520];
    snprintf(full, sizeof full, "http://%s", url_rest); /* parsed as http, with our scheme's defaults below */
    size_t authority = strcspn(url_rest, "/?#");
    CURLU *u = curl_url();
    if (!u)
        return TP_ERR_NOMEM;
    char *host = NULL, *zone = NULL, *port_s = NULL, *path = NULL, *query = NULL, *user = NULL, *frag = NULL;
    tp_err e = TP_OK;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, full, CURLU_PATH_AS_IS);
    /* "HOST:" (an empty port), user info and fragments are not ours: curl would take them. */
    if (rc == CURLUE_OUT_OF_MEMORY)
        e = TP_ERR_NOMEM;
    else if (rc || authority == 0 || url_rest[authority - 1] == ':' || curl_url_get(u, CURLUPART_HOST, &host, 0) ||
             curl_url_get(u, CURLUPART_USER, &user, 0) != CURLUE_NO_USER ||
             curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) != CURLUE_NO_FRAGMENT ||
             curl_url_get(u, CURLUPART_PATH, &path, 0))
        e = ch_bad_url(w, url_rest);
    long port = w->tls ? CH_DEFAULT_TLS_PORT : CH_DEFAULT_PORT;
    if (!e && curl_url_get(u, CURLUPART_PORT, &port_s, 0) == CURLUE_OK) {
        char *endp;
        port = strtol(port_s, &endp, 10);
        if (endp == port_s || *endp || port < 1 || port > 65535)
            e = ch_bad_url(w, url_rest);
    }
    char hostbuf[256];
    if (!e) {
        /* An IPv6 zone goes back into the brackets, as libcurl wants it in the request URL. */
        if (curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK && host[0] == '[')
            snprintf(hostbuf, sizeof hostbuf, "%.*s%%25%s]", (int)strlen(host) - 1, host, zone);
        else
            snprintf(hostbuf, sizeof hostbuf, "%s", host);
        if (strlen(hostbuf) > 200)
            e = ch_bad_url(w, url_rest);
    }
    if (!e && curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK)
        e = ch_options(w, c, query);
    if (!e)
        e = ch_database(w, c, path);
    if (!e) {
        snprintf(c->where, sizeof c->where, "ClickHouse at %s:%ld%s", hostbuf, port, w->tls ? " (HTTPS)" : "");
        snprintf(c->base_url, sizeof c->base_url, "%s://%s:%ld/", w->tls ? "https" : "http", hostbuf, port);
    }
    curl_free(host);
    curl_free(zone);
    curl_free(port_s);
    curl_free(path);
    curl_free(query);
    curl_free(user);
    curl_free(frag);
    curl_url_cleanup(u);
    return e;
}

/* The request headers: no "Expect: 100-continue" round trip before large bodies, the credentials, and with ?gzip=1
 * the same plus Content-Encoding for the rows and a deflate stream. */
static tp_err ch_headers(tp_warehouse *w, wh_clickhouse *c)
{
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (h)
        c->headers = h;
    if (h && w->user) {
        char line[512];
        snprintf(line, sizeof line, "X-ClickHouse-User: %s", w->user);
        h = curl_slist_append(c->headers, line);
        if (h) {
            snprintf(line, sizeof line, "X-ClickHouse-Key: %s", w->password ? w->password : "");
            h = curl_slist_append(c->headers, line);
        }
    }
    if (!h)
        return TP_ERR_NOMEM;
    if (c->gzip) {
        c->gzip_headers = curl_slist_append(NULL, "Expect:");
        if (!c->gzip_headers || !curl_slist_append(c->gzip_headers, "Content-Encoding: gzip"))
            return TP_ERR_NOMEM;
        for (struct curl_slist *x = c->headers->next; x; x = x->next)
            if (!curl_slist_append(c->gzip_headers, x->data))
                return TP_ERR_NOMEM;
        /* Level 1: on fast links the CPU is the cost; windowBits 15 + 16 asks zlib for a gzip wrapper. */
        if (deflateInit2(&c->zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return TP_ERR_NOMEM;
        c->zs_ready = 1;
    }
    return TP_OK;
}

/* rest = HOST[:PORT][/DB][?gzip=0|1], HOST may be [IPv6]. */
static tp_err ch_open(tp_warehouse *w, const char *url_rest)
{
    wh_clickhouse *c = calloc(1, sizeof *c);
    if (!c)
        return TP_ERR_NOMEM;
    w->impl = c;
    tp_err e = ch_parse_url(w, c, url_rest);
    if (e)
        return e;
    for (int i = 0; i < 2; i++) {
        const char *v = i ? w->password : w->user;
        if (v && (strlen(v) > 400 || strpbrk(v, "\r\n")))
            return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: the ClickHouse %s is longer than 400 bytes or holds a line "
                              "break", c->where, i ? "password" : "user name");
    }
    if ((e = tp_wh_http_init(&c->http)) || (e = ch_headers(w, c)))
        return e;
    c->lineage = 1;
    if ((e = ch_set_insert_url(w)))
        return e;
    char q[512];
    snprintf(q, sizeof q,
             "INSERT INTO %s." CH_OFFSETS_TABLE " (table_name, topic, kafka_partition, next_offset, loaded_at) "
             "FORMAT RowBinary",
             c->db);
    c->offsets_url = make_insert_url(c, q);
    if (!c->offsets_url)
        return TP_ERR_NOMEM;
    return TP_OK;
}

/* The record identity: ReplacingMergeTree collapses rows with equal ORDER BY keys, so the key must be exactly it. */
static int identity_bit(const char *s, size_t n)
{
    if (n == 10 && !strncmp(s, "vehicle_id", n))
        return 1;
    if (n == 13 && !strncmp(s, "sampled_at_ms", n))
        return 2;
    if (n == 3 && !strncmp(s, "seq", n))
        return 4;
    return 0;
}

static int ident_char(char ch, int first)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || (!first && ch >= '0' && ch <= '9');
}

/* Whether the ClickHouse expression s[0..n) reads only identity columns (at least one): every identifier not
 * followed by "(" (a function name) must be vehicle_id, sampled_at_ms or seq. String literals and numbers are
 * skipped. A function of the identity is fine in a key: equal identities give equal values. */
static int reads_only_identity(const char *s, size_t n)
{
    int cols = 0;
    for (size_t i = 0; i < n;) {
        char ch = s[i];
        if (ch == '\'' || ch == '"') { /* a literal (or a quoted name: not ours) */
            size_t j = i + 1;
            while (j < n && s[j] != ch)
                j += s[j] == '\\' ? 2 : 1;
            if (ch == '"')
                return 0;
            i = j + 1;
        } else if (ch == '`') {
            size_t j = i + 1;
            while (j < n && s[j] != '`')
                j++;
            if (!identity_bit(s + i + 1, j - i - 1))
                return 0;
            cols++;
            i = j + 1;
        } else if (ch >= '0' && ch <= '9') {
            while (i < n && (ident_char(s[i], 0) || s[i] == '.'))
                i++;
        } else if (ident_char(ch, 1)) {
            size_t j = i;
            while (j < n && ident_char(s[j], 0))
                j++;
            size_t k = j;
            while (k < n && s[k] == ' ')
                k++;
            if (k >= n || s[k] != '(') {
                if (!identity_bit(s + i, j - i))
                    return 0;
                cols++;
            }
            i = j;
        } else {
            i++;
        }
    }
    return cols > 0;
}

/* Idempotency rests on the table definition: ReplacingMergeTree (plain MergeTree keeps every copy), ORDER BY exactly
 * the identity (fewer columns merge distinct records, more keep copies), and a partition key computed from the
 * identity (else two copies of a record can land in different partitions, which never merge). Uses system.tables'
 * engine / sorting_key and system.columns' is_in_partition_key, which 18.16 and current versions both have. */
static tp_err ch_check_engine(tp_warehouse *w)
{
    wh_clickhouse *c = impl(w);
    tp_err e = ch_sql(w, "a query of system.tables",
                      "SELECT engine, sorting_key FROM system.tables WHERE database = '%s' AND name = '%s' "
                      "FORMAT TabSeparated",
                      c->db, w->table);
    if (e)
        return e;
    char ans[1024];
    snprintf(ans, sizeof ans, "%s", tp_wh_buf_cstr(&c->http.resp));
    ans[strcspn(ans, "\n")] = '\0';
    char *key = strchr(ans, '\t');
    if (key)
        *key++ = '\0';
    const char *engine = ans;
    static const char *const how = "recreate it as docs/WAREHOUSES.md shows (ENGINE = ReplacingMergeTree ... ORDER BY "
                                   "(vehicle_id, sampled_at_ms, seq)) or load into another table (--table)";
    if (strcmp(engine, "ReplacingMergeTree") && strcmp(engine, "ReplicatedReplacingMergeTree") &&
        strcmp(engine, "SharedReplacingMergeTree"))
        return tp_wh_fail(w, TP_ERR_WAREHOUSE,
                          "%s: table %s.%s has ENGINE = %s, which does not collapse re-delivered records (telepack "
                          "needs ReplacingMergeTree or ReplicatedReplacingMergeTree; load into the shard tables, not "
                          "a Distributed one); %s",
                          c->where, c->db, w->table, engine[0] ? engine : "(unknown)", how);
    /* sorting_key: "vehicle_id, sampled_at_ms, seq"; split at top-level commas. */
    unsigned bits = 0;
    int other = 0;
    const char *k = key ? key : "";
    while (*k) {
        size_t n = 0;
        int depth = 0;
        char quote = 0;
        for (; k[n] && (quote || depth || k[n] != ','); n++) {
            if (quote) {
                if (k[n] == '\\' && k[n + 1])
                    n++;
                else if (k[n] == quote)
                    quote = 0;
            } else if (k[n] == '\'' || k[n] == '"' || k[n] == '`') {
                quote = k[n];
            } else {
                depth += k[n] == '(' ? 1 : k[n] == ')' ? -1 : 0;
            }
        }
        size_t a = 0, z = n;
        while (a < z && k[a] == ' ')
            a++;
        while (z > a && k[z - 1] == ' ')
            z--;
        int bit = identity_bit(k + a, z - a);
        if (bit)
            bits |= (unsigned)bit;
        else if (!reads_only_identity(k + a, z - a))
            other = 1; /* a column (or expression) outside the identity */
        k += n + (k[n] == ',');
    }
    if (bits != 7 || other)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE,
                          "%s: table %s.%s is ORDER BY (%s), not the record identity (vehicle_id, sampled_at_ms, "
                          "seq): ReplacingMergeTree would %s; %s",
                          c->where, c->db, w->table, key ? key : "",
                          bits != 7 && !other ? "merge distinct records that share the shorter key"
                          : bits == 7         ? "keep copies of a record that differ in the other key columns"
                                              : "merge distinct records and keep copies of others",
                          how);
    /* Every column the partition key reads is an identity column or MATERIALIZED/ALIAS from them (sampled_at). */
    if ((e = ch_sql(w, "a query of system.columns",
                    "SELECT name, default_kind, default_expression FROM system.columns WHERE database = '%s' AND "
                    "table = '%s' AND is_in_partition_key FORMAT TabSeparated",
                    c->db, w->table)))
        return e;
    for (const char *line = tp_wh_buf_cstr(&c->http.resp); *line;) {
        size_t len = strcspn(line, "\n");
        const char *t1 = memchr(line, '\t', len);
        const char *t2 = t1 ? memchr(t1 + 1, '\t', len - (size_t)(t1 + 1 - line)) : NULL;
        int ok = t1 && identity_bit(line, (size_t)(t1 - line));
        if (!ok && t2) {
            size_t kind_n = (size_t)(t2 - t1 - 1);
            int derived = (kind_n == 12 && !strncmp(t1 + 1, "MATERIALIZED", 12)) ||
                          (kind_n == 5 && !strncmp(t1 + 1, "ALIAS", 5));
            ok = derived && reads_only_identity(t2 + 1, len - (size_t)(t2 + 1 - line));
        }
        if (!ok)
            return tp_wh_fail(w, TP_ERR_WAREHOUSE,
                              "%s: table %s.%s is partitioned by column %.*s, which is not computed from the record "
                              "identity: two copies of a record could land in different partitions and never merge; "
                              "partition by an expression of sampled_at_ms (e.g. toYYYYMMDD(toDateTime(intDiv("
                              "sampled_at_ms, 1000)))) — %s",
                              c->where, c->db, w->table, (int)(t1 ? (size_t)(t1 - line) : len), line, how);
        line += len + (line[len] == '\n');
    }
    return TP_OK;
}

/* Our bookkeeping: the Kafka position each load reached, written after its rows were acknowledged. */
static tp_err ch_offsets_table(tp_warehouse *w)
{
    return ch_sql(w, "CREATE TABLE " CH_OFFSETS_TABLE,
                  "CREATE TABLE IF NOT EXISTS %s." CH_OFFSETS_TABLE " (table_name String, topic String, "
                  "kafka_partition Int32, next_offset Int64, loaded_at DateTime DEFAULT now()) "
                  "ENGINE = ReplacingMergeTree(next_offset) ORDER BY (table_name, topic, kafka_partition)",
                  impl(w)->db);
}

static tp_err ch_ensure_table(tp_warehouse *w)
{
    wh_clickhouse *c = impl(w);
    tp_err e = ch_version(w);
    if (e)
        return e;
    if (w->create_table) {
        if ((e = ch_sql(w, "CREATE DATABASE", "CREATE DATABASE IF NOT EXISTS %s", c->db)))
            return e;
        /* ReplacingMergeTree on the identity: re-delivered records collapse at merge time (FINAL at query time).
         * The partition key is a function of sampled_at_ms, part of the identity, so duplicates always meet in
         * the same partition. 18.16 has no DateTime64: sampled_at (seconds) is computed for readability.
         * The lineage columns only when asked for (w->lineage_columns; see CH_LINEAGE_DEFAULT). An existing
         * table is left as it is (IF NOT EXISTS) and loaded in its own shape, found below. */
        int lineage = (w->lineage_columns ? w->lineage_columns : CH_LINEAGE_DEFAULT) == TP_WH_LINEAGE_YES;
        if ((e = ch_sql(w, "CREATE TABLE",
                        "CREATE TABLE IF NOT EXISTS %s.%s ("
                        "vehicle_id UInt64, sampled_at_ms Int64, seq UInt64, latitude Float64, longitude Float64, "
                        "speed_kmh Float32, heading_deg Float32, accuracy_m Float32, meter_status Int32, %s"
                        "sampled_at DateTime MATERIALIZED toDateTime(intDiv(sampled_at_ms, 1000))"
                        ") ENGINE = ReplacingMergeTree "
                        "PARTITION BY toYYYYMMDD(toDateTime(intDiv(sampled_at_ms, 1000))) "
                        "ORDER BY (vehicle_id, sampled_at_ms, seq)",
                        c->db, w->table, lineage ? "kafka_partition Int32, kafka_offset Int64, " : "")))
            return e;
    }
    /* Column names and exact types: RowBinary would load garbage into a column of another type. */
    if ((e = ch_sql(w, "a query of system.columns",
                    "SELECT name, type FROM system.columns WHERE database = '%s' AND table = '%s' "
                    "FORMAT TabSeparated",
                    c->db, w->table)))
        return e;
    const char *ans = tp_wh_buf_cstr(&c->http.resp);
    if (!ans[0])
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s has no table %s.%s; run with --create-table or create it",
                          c->where, c->db, w->table);
    /* The record columns must all be there; the lineage columns both, with their types, or neither. */
    int has[N_COLUMNS] = {0}, named[N_COLUMNS] = {0};
    for (size_t i = 0; i < N_COLUMNS; i++) {
        size_t name_n = strlen(columns[i].name), type_n = strlen(columns[i].type);
        for (const char *s = ans; *s; s += strcspn(s, "\n") + (s[strcspn(s, "\n")] ? 1 : 0)) {
            if (strncmp(s, columns[i].name, name_n) || s[name_n] != '\t')
                continue;
            named[i] = 1;
            has[i] = !strncmp(s + name_n + 1, columns[i].type, type_n) &&
                     (s[name_n + 1 + type_n] == '\n' || !s[name_n + 1 + type_n]);
            break;
        }
        if (!has[i] && (i < N_RECORD_COLUMNS || named[i]))
            return tp_wh_fail(w, TP_ERR_WAREHOUSE,
                              "%s: table %s.%s has no column %s of type %s; recreate it (--create-table on a new "
                              "table) or load into another one (--table)",
                              c->where, c->db, w->table, columns[i].name, columns[i].type);
    }
    if (has[N_COLUMNS - 2] != has[N_COLUMNS - 1]) {
        size_t missing = has[N_COLUMNS - 2] ? N_COLUMNS - 1 : N_COLUMNS - 2;
        return tp_wh_fail(w, TP_ERR_WAREHOUSE,
                          "%s: table %s.%s has only one of the lineage columns kafka_partition and kafka_offset; "
                          "add the other (ALTER TABLE %s.%s ADD COLUMN %s %s) or drop the one it has",
                          c->where, c->db, w->table, c->db, w->table, columns[missing].name,
                          columns[missing].type);
    }
    if ((e = ch_check_engine(w)))
        return e;
    int lineage = has[N_COLUMNS - 1];
    if (lineage != c->lineage) {
        c->lineage = lineage;
        if ((e = ch_set_insert_url(w)))
            return e;
    }
    return ch_offsets_table(w);
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_string(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    p = put_varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* Compresses body[0..len) into c->gz in one deflate call (the bound is known) and sends it to url. */
static tp_err ch_send_gzip(tp_warehouse *w, const char *url, const uint8_t *body, size_t len)
{
    wh_clickhouse *c = impl(w);
    if (deflateReset(&c->zs) != Z_OK)
        return tp_wh_fail(w, TP_ERR_COMPRESS, "%s: zlib could not reset its stream", c->where);
    uLong bound = deflateBound(&c->zs, (uLong)len) + 32; /* + gzip header and trailer */
    c->gz.len = 0;
    tp_err e = tp_wh_buf_reserve(&c->gz, bound);
    if (e)
        return e;
    c->zs.next_in = (Bytef *)body;
    c->zs.avail_in = (uInt)len;
    c->zs.next_out = c->gz.data;
    c->zs.avail_out = (uInt)bound;
    if (len > UINT32_MAX / 2 || deflate(&c->zs, Z_FINISH) != Z_STREAM_END)
        return tp_wh_fail(w, TP_ERR_COMPRESS, "%s: gzip compression of a %zu-byte body failed; load fewer rows at once",
                          c->where, len);
    c->gz.len = (size_t)(bound - c->zs.avail_out);
    return ch_request(w, url, c->gzip_headers, c->gz.data, c->gz.len, "the insert");
}

/* The rows as they arrived, RowBinary (?format=rowbinary). */
static tp_err rowbinary_body(tp_warehouse *w, const tp_row_batch *b)
{
    wh_clickhouse *c = impl(w);
    size_t row = c->lineage ? CH_ROW_BYTES : CH_ROW_BYTES - CH_LINEAGE_BYTES;
    if (b->count > SIZE_MAX / CH_ROW_BYTES)
        return TP_ERR_NOMEM;
    c->body.len = 0;
    tp_err e = tp_wh_buf_reserve(&c->body, b->count * CH_ROW_BYTES);
    if (e)
        return e;
    uint8_t *p = c->body.data;
    for (size_t i = 0; i < b->count; i++, p += row) {
        tp_wh_put_le64(p, b->vehicle_id[i]);
        tp_wh_put_le64(p + 8, (uint64_t)b->sampled_at_ms[i]);
        tp_wh_put_le64(p + 16, b->seq[i]);
        tp_wh_put_le64(p + 24, f64_bits(b->latitude[i]));
        tp_wh_put_le64(p + 32, f64_bits(b->longitude[i]));
        tp_wh_put_le32(p + 40, f32_bits(b->speed_kmh[i]));
        tp_wh_put_le32(p + 44, f32_bits(b->heading_deg[i]));
        tp_wh_put_le32(p + 48, f32_bits(b->accuracy_m[i]));
        tp_wh_put_le32(p + 52, (uint32_t)b->meter_status[i]);
        if (c->lineage) {
            tp_wh_put_le32(p + 56, (uint32_t)b->kafka_partition[i]);
            tp_wh_put_le64(p + 60, (uint64_t)b->kafka_offset[i]);
        }
    }
    c->body.len = b->count * row;
    return TP_OK;
}

/* Row i before row j in the table's ORDER BY (vehicle_id, sampled_at_ms, seq)? */
static int key_less(const tp_row_batch *b, size_t i, size_t j)
{
    if (b->vehicle_id[i] != b->vehicle_id[j])
        return b->vehicle_id[i] < b->vehicle_id[j];
    if (b->sampled_at_ms[i] != b->sampled_at_ms[j])
        return b->sampled_at_ms[i] < b->sampled_at_ms[j];
    return b->seq[i] < b->seq[j];
}

static const tp_row_batch *sort_batch; /* for run_cmp: qsort has no context argument in C11 (one thread per load) */

static int run_cmp(const void *x, const void *y)
{
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    return key_less(sort_batch, i, j) ? -1 : key_less(sort_batch, j, i) ? 1 : i < j ? -1 : i > j;
}

/* Where a run of the batch ends before row i (i > 0): the key order breaks, or the vehicle changes. */
static int run_break(const tp_row_batch *b, size_t i)
{
    return b->vehicle_id[i] != b->vehicle_id[i - 1] || key_less(b, i, i - 1);
}

/* Orders the batch's rows by the table's key into c->perm (NULL when they already are). A batch is a sequence of
 * packs, each sorted by vehicle and time (a per-partition pack holds many vehicles, a per-vehicle pack one): cut
 * it into runs of one vehicle in key order (O(n)), sort the runs by their first row (O(r log r)); if each run then
 * ends before the next begins, the order is the runs one after the other (the common case: a vehicle's rows come
 * in time order from pack to pack). Otherwise merge the runs pairwise (natural merge sort, O(n log r)). Cutting at
 * vehicle changes, not only at key order breaks, is what makes the per-partition packs of one batch (each covering
 * the partition's vehicles, so overlapping each other) fall into place without the merge: measured, the merge of
 * ~30 such packs was 40 % of the sink's CPU. */
static tp_err order_rows(wh_clickhouse *c, const tp_row_batch *b, const uint32_t **order)
{
    size_t n = b->count;
    *order = NULL;
    size_t breaks = 0, n_runs = 1;
    for (size_t i = 1; i < n; i++) {
        int vb = b->vehicle_id[i] != b->vehicle_id[i - 1];
        int kb = key_less(b, i, i - 1);
        breaks += kb;
        n_runs += vb || kb;
    }
    if (breaks == 0 || n > UINT32_MAX)
        return TP_OK; /* sorted already (or too large to index: ClickHouse sorts it) */
    if (c->perm_cap < n) {
        uint32_t *p = realloc(c->perm, n * sizeof *p);
        if (!p)
            return TP_ERR_NOMEM;
        c->perm = p;
        uint32_t *t = realloc(c->perm_tmp, n * sizeof *t);
        if (!t)
            return TP_ERR_NOMEM;
        c->perm_tmp = t;
        c->perm_cap = n;
    }
    if (c->runs_cap < n_runs + 1) {
        size_t *r = realloc(c->runs, (n_runs + 1) * sizeof *r);
        if (!r)
            return TP_ERR_NOMEM;
        c->runs = r;
        c->runs_cap = n_runs + 1;
    }
    size_t k = 0;
    c->runs[k++] = 0;
    for (size_t i = 1; i < n; i++)
        if (run_break(b, i))
            c->runs[k++] = i;
    /* Sort the run starts by their first row; the run lengths come from the original positions. */
    uint32_t *len = c->perm_tmp; /* scratch: length of the run starting at row i, stored at index i */
    for (size_t r = 0; r < n_runs; r++)
        len[c->runs[r]] = (uint32_t)((r + 1 < n_runs ? c->runs[r + 1] : n) - c->runs[r]);
    sort_batch = b;
    qsort(c->runs, n_runs, sizeof *c->runs, run_cmp);
    sort_batch = NULL;
    int overlap = 0;
    size_t o = 0;
    for (size_t r = 0; r < n_runs; r++) {
        size_t start = c->runs[r], l = len[start];
        if (r && key_less(b, start, c->perm[o - 1]))
            overlap = 1;
        for (size_t i = 0; i < l; i++)
            c->perm[o++] = (uint32_t)(start + i);
    }
    if (overlap) {
        /* perm holds the runs one after the other; merge neighbours until one run is left. Run boundaries in perm
         * are where the order breaks. */
        uint32_t *src = c->perm, *dst = c->perm_tmp;
        size_t m = 0;
        c->runs[m++] = 0;
        for (size_t i = 1; i < n; i++)
            if (key_less(b, src[i], src[i - 1]))
                c->runs[m++] = i;
        c->runs[m] = n;
        while (m > 1) {
            size_t out = 0;
            for (size_t r = 0; r < m; r += 2) {
                /* runs[m] == n: a last run without a partner is copied (mid == hi == n) */
                size_t lo = c->runs[r], mid = c->runs[r + 1], hi = c->runs[r + 2 < m ? r + 2 : m];
                if (r + 1 == m)
                    hi = mid;
                size_t i = lo, j = mid, d = lo;
                while (i < mid && j < hi)
                    dst[d++] = key_less(b, src[j], src[i]) ? src[j++] : src[i++];
                while (i < mid)
                    dst[d++] = src[i++];
                while (j < hi)
                    dst[d++] = src[j++];
                c->runs[out++] = lo;
            }
            c->runs[out] = n;
            m = out;
            uint32_t *t = src;
            src = dst;
            dst = t;
        }
        if (src != c->perm)
            memcpy(c->perm, src, n * sizeof *c->perm);
    }
    *order = c->perm;
    return TP_OK;
}

static uint8_t *put_header(uint8_t *p, const char *name, const char *type)
{
    p = put_string(p, name);
    return put_string(p, type);
}

/* One Native block of the batch, columns in INSERT_COLUMNS order (without the last two for a table without the
 * lineage columns), rows in key order. */
static tp_err native_body(tp_warehouse *w, const tp_row_batch *b)
{
    wh_clickhouse *c = impl(w);
    size_t n = b->count;
    if (n > (SIZE_MAX - 4096) / CH_ROW_BYTES)
        return TP_ERR_NOMEM;
    const uint32_t *ord;
    tp_err e = order_rows(c, b, &ord);
    if (e)
        return e;
    c->body.len = 0;
    if ((e = tp_wh_buf_reserve(&c->body, 20 + N_COLUMNS * 40 + n * CH_ROW_BYTES)))
        return e;
    uint8_t *p = c->body.data;
    p = put_varint(p, c->lineage ? N_COLUMNS : N_RECORD_COLUMNS);
    p = put_varint(p, n);
#define ROW(i) (ord ? ord[i] : (i))
#define COL64(k, expr)                                                                                         \
    p = put_header(p, columns[k].name, columns[k].type);                                                              \
    for (size_t i = 0; i < n; i++, p += 8)                                                                        \
        tp_wh_put_le64(p, (uint64_t)(expr));
#define COL32(k, expr)                                                                                         \
    p = put_header(p, columns[k].name, columns[k].type);                                                              \
    for (size_t i = 0; i < n; i++, p += 4)                                                                        \
        tp_wh_put_le32(p, (uint32_t)(expr));
    COL64(0, b->vehicle_id[ROW(i)])
    COL64(1, b->sampled_at_ms[ROW(i)])
    COL64(2, b->seq[ROW(i)])
    COL64(3, f64_bits(b->latitude[ROW(i)]))
    COL64(4, f64_bits(b->longitude[ROW(i)]))
    COL32(5, f32_bits(b->speed_kmh[ROW(i)]))
    COL32(6, f32_bits(b->heading_deg[ROW(i)]))
    COL32(7, f32_bits(b->accuracy_m[ROW(i)]))
    COL32(8, b->meter_status[ROW(i)])
    if (c->lineage) {
        COL32(9, b->kafka_partition[ROW(i)])
        COL64(10, b->kafka_offset[ROW(i)])
    }
#undef COL64
#undef COL32
#undef ROW
    c->body.len = (size_t)(p - c->body.data);
    return TP_OK;
}

static tp_err ch_store_offsets(tp_warehouse *w, const char *topic, const tp_partition_offset *offsets,
                               size_t n_offsets);

static tp_err ch_load(tp_warehouse *w, const tp_row_batch *b, const char *topic, const tp_partition_offset *offsets,
                      size_t n_offsets)
{
    wh_clickhouse *c = impl(w);
    if (n_offsets && !valid_topic(topic))
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: \"%s\" is not a Kafka topic name", c->where, topic);
    tp_err e;
    if (b->count) {
        if ((e = c->rowbinary ? rowbinary_body(w, b) : native_body(w, b)))
            return e;
        if (c->gzip)
            e = ch_send_gzip(w, c->insert_url, c->body.data, c->body.len);
        else
            e = ch_request(w, c->insert_url, c->headers, c->body.data, c->body.len, "the insert");
        if (e)
            return e;
    }
    /* Only now, with the rows acknowledged, record how far the partitions got. A crash in between leaves the
     * offsets behind the rows: the rows come again and ReplacingMergeTree absorbs them. Never ahead. */
    return ch_store_offsets(w, topic, offsets, n_offsets);
}

static tp_err ch_store_offsets(tp_warehouse *w, const char *topic, const tp_partition_offset *offsets,
                               size_t n_offsets)
{
    wh_clickhouse *c = impl(w);
    tp_err e;
    if (!n_offsets)
        return TP_OK;
    /* loaded_at is sent (the sink's clock) rather than left to its DEFAULT now(): a default expression costs the
     * server more per insert than the row itself (measured: 4.4 ms against 1.4 ms on 18.16). */
    uint32_t loaded_at = (uint32_t)time(NULL);
    size_t row_max = 10 + TP_WH_NAME_MAX + 10 + 249 + 4 + 8 + 4;
    c->body.len = 0;
    if ((e = tp_wh_buf_reserve(&c->body, n_offsets * row_max)))
        return e;
    uint8_t *p = c->body.data;
    for (size_t i = 0; i < n_offsets; i++) {
        p = put_string(p, w->table);
        p = put_string(p, topic);
        tp_wh_put_le32(p, (uint32_t)offsets[i].partition);
        tp_wh_put_le64(p + 4, (uint64_t)offsets[i].next_offset);
        tp_wh_put_le32(p + 12, loaded_at);
        p += 16;
    }
    c->body.len = (size_t)(p - c->body.data);
    return ch_request(w, c->offsets_url, c->headers, c->body.data, c->body.len, "the offsets insert");
}

static tp_err ch_stored_offset(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset)
{
    wh_clickhouse *c = impl(w);
    if (!valid_topic(topic))
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: \"%s\" is not a Kafka topic name", c->where, topic);
    /* max(): the offsets table only ever moves forward for a (table, topic, partition) that has not been reset. */
    tp_err e = ch_sql(w, "a query of " CH_OFFSETS_TABLE,
                      "SELECT count(), max(next_offset) FROM %s." CH_OFFSETS_TABLE
                      " WHERE table_name = '%s' AND topic = '%s' AND kafka_partition = %" PRId32
                      " FORMAT TabSeparated",
                      c->db, w->table, topic, partition);
    if (e)
        return e;
    long long n = 0, v = -1;
    if (sscanf(tp_wh_buf_cstr(&c->http.resp), "%lld\t%lld", &n, &v) != 2)
        return tp_wh_fail(w, TP_ERR_WAREHOUSE, "%s gave an unexpected answer to the offsets query: \"%.100s\"",
                          c->where, tp_wh_buf_cstr(&c->http.resp));
    *next_offset = n > 0 ? v : -1;
    return TP_OK;
}

static tp_err ch_ping(tp_warehouse *w)
{
    wh_clickhouse *c = impl(w);
    char url[320];
    snprintf(url, sizeof url, "%sping", c->base_url);
    tp_err e = tp_wh_http_request(w, &c->http, c->where, "GET", url, c->headers, NULL, 0);
    if (e)
        return e;
    if (c->http.status != 200)
        return tp_wh_fail(w, TP_ERR_UNAVAILABLE, "%s answered HTTP %ld to /ping; retry later", c->where,
                          c->http.status);
    return TP_OK;
}

static void ch_close(tp_warehouse *w)
{
    wh_clickhouse *c = impl(w);
    if (!c)
        return;
    tp_wh_http_free(&c->http);
    curl_slist_free_all(c->headers);
    curl_slist_free_all(c->gzip_headers);
    if (c->zs_ready)
        deflateEnd(&c->zs);
    tp_wh_buf_free(&c->gz);
    free(c->insert_url);
    free(c->offsets_url);
    tp_wh_buf_free(&c->body);
    tp_wh_buf_free(&c->sql);
    free(c->perm);
    free(c->perm_tmp);
    free(c->runs);
    free(c);
    w->impl = NULL;
}

const tp_wh_ops tp_wh_clickhouse_ops = {
    .kind = "clickhouse",
    .open = ch_open,
    .ensure_table = ch_ensure_table,
    .load = ch_load,
    .stored_offset = ch_stored_offset,
    .ping = ch_ping,
    .close = ch_close,
};

/* ---- shared with wh_clickhouse_schema.c (wh_clickhouse.h) ---- */

tp_err tp_ch_open(tp_warehouse *w, const char *rest)
{
    return ch_open(w, rest);
}

void tp_ch_close(tp_warehouse *w)
{
    ch_close(w);
}

void **tp_ch_ext(tp_warehouse *w)
{
    return &impl(w)->ext;
}

const char *tp_ch_where(tp_warehouse *w)
{
    return impl(w)->where;
}

const char *tp_ch_db(tp_warehouse *w)
{
    return impl(w)->db;
}

tp_err tp_ch_version(tp_warehouse *w, int *major)
{
    tp_err e = ch_version(w);
    if (!e && major)
        *major = impl(w)->major;
    return e;
}

tp_err tp_ch_sql(tp_warehouse *w, const char *doing, const char *fmt, ...)
{
    wh_clickhouse *c = impl(w);
    va_list ap;
    va_start(ap, fmt);
    char tmp[8192];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: statement for %s cannot be formatted", c->where, doing);
    c->sql.len = 0;
    if ((size_t)n < sizeof tmp) {
        if (tp_wh_buf_append(&c->sql, tmp, (size_t)n))
            return TP_ERR_NOMEM;
    } else { /* long DDL of a wide schema */
        if (tp_wh_buf_reserve(&c->sql, (size_t)n + 1))
            return TP_ERR_NOMEM;
        va_start(ap, fmt);
        vsnprintf((char *)c->sql.data, (size_t)n + 1, fmt, ap);
        va_end(ap);
        c->sql.len = (size_t)n;
    }
    return ch_query(w, doing);
}

const char *tp_ch_answer(tp_warehouse *w)
{
    return tp_wh_buf_cstr(&impl(w)->http.resp);
}

char *tp_ch_query_url(tp_warehouse *w, const char *query)
{
    return make_insert_url(impl(w), query);
}

tp_err tp_ch_insert(tp_warehouse *w, const char *url, const void *body, size_t len, const char *doing)
{
    wh_clickhouse *c = impl(w);
    if (c->gzip)
        return ch_send_gzip(w, url, body, len);
    return ch_request(w, url, c->headers, body, len, doing);
}

tp_err tp_ch_offsets_table(tp_warehouse *w)
{
    return ch_offsets_table(w);
}

tp_err tp_ch_store_offsets(tp_warehouse *w, const char *topic, const tp_partition_offset *offsets, size_t n)
{
    if (n && !valid_topic(topic))
        return tp_wh_fail(w, TP_ERR_INVALID_ARG, "%s: \"%s\" is not a Kafka topic name", impl(w)->where, topic);
    return ch_store_offsets(w, topic, offsets, n);
}

tp_err tp_ch_stored_offset(tp_warehouse *w, const char *topic, int32_t partition, int64_t *next_offset)
{
    return ch_stored_offset(w, topic, partition, next_offset);
}

tp_err tp_ch_ping(tp_warehouse *w)
{
    return ch_ping(w);
}

uint8_t *tp_ch_put_varint(uint8_t *p, uint64_t v)
{
    return put_varint(p, v);
}
