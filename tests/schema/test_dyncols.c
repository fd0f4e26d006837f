/* Column packs of a run-time schema (src/schema/dyncols.c, docs/FORMAT_SCHEMA.md): the worked example byte for
 * byte; round trips tp_dyn_batch -> content -> tp_dyn_batch with every cell, presence byte, array and string equal
 * (EV telemetry from protoc, generated batches of every scalar type in many shapes); appending to a batch that
 * holds rows; schema versions (a column the reader lacks is skipped, one it adds is absent); hostile content
 * (truncation at every length, every byte changed, lying counts, bad type codes, dictionary indexes out of range,
 * presence/array mismatches) refused with a sentence and the batch unchanged. Argument: the build directory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "schema/dyncols.h"
#include "schema/dynrow.h"
#include "schema/schema.h"

static const char *dir;

static uint8_t *slurp(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    uint8_t *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static tp_schema *load(const char *file, const char *message)
{
    size_t len;
    uint8_t *src = slurp(file, &len);
    tp_schema *s = NULL;
    char err[256];
    CHECK_ERR(tp_schema_load(src, len, message, &s, err, sizeof err), TP_OK);
    free(src);
    if (!s) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return s;
}

/* ---- comparing batches ---- */

static bool value_eq(const tp_dyn_batch *a, const tp_dyn_batch *b, tp_col_kind k, tp_dyn_value x, tp_dyn_value y)
{
    switch (k) {
    case TP_COL_STRING:
    case TP_COL_BYTES:
        return x.s.len == y.s.len && (x.s.len == 0 || !memcmp(a->bytes + x.s.off, b->bytes + y.s.off, x.s.len));
    case TP_COL_F32: return !memcmp(&x.f, &y.f, 4);
    default: return x.u == y.u;
    }
}

/* Rows [ra, ra + n) of a equal rows [rb, rb + n) of b: every presence byte, cell, array and string. Matches columns
 * by name (the schemas may differ); columns only in b must be absent and zero. */
static int rows_equal(const tp_dyn_batch *a, size_t ra, const tp_dyn_batch *b, size_t rb, size_t n)
{
    int bad = 0;
    for (size_t cb = 0; cb < b->ncolumns; cb++) {
        const tp_dyn_column *y = &b->columns[cb];
        long ca = tp_schema_find(a->schema, y->def->name);
        const tp_dyn_column *x = ca >= 0 ? &a->columns[ca] : NULL;
        tp_col_kind k = y->def->kind;
        for (size_t i = 0; i < n && bad < 5; i++) {
            tp_dyn_value vy = y->cells[rb + i];
            if (!x) {
                if (y->present[rb + i] || (y->def->label == TP_LABEL_REPEATED ? vy.a.count != 0 : vy.u != 0)) {
                    fprintf(stderr, "column %s row %zu: not in the writer's schema but present\n", y->def->name, i);
                    bad++;
                }
                continue;
            }
            tp_dyn_value vx = x->cells[ra + i];
            bool ok = x->present[ra + i] == y->present[rb + i];
            if (ok && y->def->label == TP_LABEL_REPEATED) {
                ok = vx.a.count == vy.a.count;
                for (uint32_t e = 0; ok && e < vx.a.count; e++)
                    ok = value_eq(a, b, k, x->elems[vx.a.off + e], y->elems[vy.a.off + e]);
            } else if (ok) {
                ok = value_eq(a, b, k, vx, vy);
            }
            if (!ok) {
                fprintf(stderr, "column %s row %zu differs (present %d/%d)\n", y->def->name, i, x->present[ra + i],
                        y->present[rb + i]);
                bad++;
            }
        }
    }
    return bad == 0;
}

/* Encodes a, decodes into a fresh batch of the same schema, checks equality; returns the content size. */
static size_t round_trip(const tp_dyn_batch *a)
{
    tp_dyncol_encoder *e;
    tp_dyncol_decoder *d;
    tp_dyn_batch *b;
    CHECK_ERR(tp_dyncol_encoder_new(&e), TP_OK);
    CHECK_ERR(tp_dyncol_decoder_new(&d), TP_OK);
    CHECK_ERR(tp_dyn_batch_new(a->schema, a->count + 1, a->max_bytes, &b), TP_OK);
    const uint8_t *c;
    size_t n = 0;
    CHECK_ERR(tp_dyncol_encode(e, a, &c, &n), TP_OK);
    tp_err err = tp_dyncol_decode(d, c, n, a->count, b);
    CHECK_ERR(err, TP_OK);
    if (err)
        fprintf(stderr, "decode: %s\n", tp_dyncol_decoder_error(d));
    CHECK_INT(b->count, a->count);
    CHECK(b->count == a->count && rows_equal(a, 0, b, 0, a->count));
    /* Canonical: the decoded batch encodes to the same bytes. */
    uint8_t *copy = malloc(n);
    memcpy(copy, c, n);
    const uint8_t *c2;
    size_t n2 = 0;
    CHECK_ERR(tp_dyncol_encode(e, b, &c2, &n2), TP_OK);
    CHECK(n2 == n && !memcmp(copy, c2, n));
    free(copy);
    tp_dyn_batch_free(b);
    tp_dyncol_decoder_free(d);
    tp_dyncol_encoder_free(e);
    return n;
}

/* ---- generated batches ---- */

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static tp_dyn_value put_bytes(tp_dyn_batch *b, const char *p, size_t n)
{
    if (b->bytes_len + n > b->bytes_cap) {
        b->bytes_cap = (b->bytes_len + n) * 2 + 64;
        b->bytes = realloc(b->bytes, b->bytes_cap);
    }
    memcpy(b->bytes + b->bytes_len, p, n);
    tp_dyn_value v = {.s = {(uint32_t)b->bytes_len, (uint32_t)n}};
    b->bytes_len += n;
    b->used += n;
    return v;
}

/* A value of the column's type in one of several shapes: 0 constant, 1 sequence, 2 decimals, 3 anything. */
static tp_dyn_value gen_value(tp_dyn_batch *b, const tp_schema_column *def, int shape, size_t i)
{
    static const char *const pool[] = {"5YJ3E1EA7KF000001", "", "héllo", "WBA12345678901234", "x"};
    tp_dyn_value v = {.u = 0};
    uint64_t r = rnd();
    switch (def->kind) {
    case TP_COL_STRING:
    case TP_COL_BYTES: {
        if (shape == 3) {
            char tmp[24];
            size_t n = r % 20;
            for (size_t j = 0; j < n; j++)
                tmp[j] = (char)('a' + (rnd() % 26));
            return put_bytes(b, tmp, n);
        }
        const char *s = pool[shape == 0 ? 0 : r % 5];
        return put_bytes(b, s, strlen(s));
    }
    case TP_COL_F64:
        v.d = shape == 0 ? 2.5 : shape == 1 ? 35.681234 + 0.000001 * (double)i : shape == 2 ? (double)(int)(r % 1000) / 10
            : (r % 7 == 0 ? NAN : r % 11 == 0 ? -0.0 : (double)(int64_t)r * 1e-300);
        return v;
    case TP_COL_F32:
        v.f = shape == 0 ? 3.25f : shape == 1 ? 3.7f + 0.001f * (float)i : shape == 2 ? (float)(int)(r % 1000) / 10
            : (r % 5 == 0 ? -0.0f : (float)(int32_t)r * 1e-20f);
        return v;
    case TP_COL_BOOL: v.u = shape == 0 ? 1 : r & 1; return v;
    case TP_COL_TIMESTAMP_NS:
        v.i = shape == 0 ? 1700000000000000000 : shape == 3 ? (int64_t)(r >> 2) - (INT64_MAX >> 2)
            : 1700000000000000000 + (int64_t)i * 1000000000 + (int64_t)(r % 7000000);
        return v;
    default: break;
    }
    bool is32 = def->type == TP_PB_INT32 || def->type == TP_PB_SINT32 || def->type == TP_PB_SFIXED32 ||
                def->type == TP_PB_ENUM || def->type == TP_PB_UINT32 || def->type == TP_PB_FIXED32;
    uint64_t x = shape == 0 ? 7 : shape == 1 ? 1000 + i * 3 : shape == 2 ? r % 4 : r;
    if (def->kind == TP_COL_I64) {
        int64_t sx = shape == 3 ? (int64_t)x : (int64_t)x - 500;
        v.i = is32 ? (int64_t)(int32_t)(uint32_t)sx : sx;
    } else {
        v.u = is32 ? (uint32_t)x : x;
    }
    return v;
}

/* Fills n rows of every column: presence by label (explicit columns absent now and then, implicit ones sometimes
 * present with a zero, repeated ones with 0..4 elements, sometimes present and empty). */
static void fill(tp_dyn_batch *b, size_t n, int shape)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t c = 0; c < b->ncolumns; c++) {
            tp_dyn_column *col = &b->columns[c];
            const tp_schema_column *def = col->def;
            int sh = (shape + (int)c) % 5 == 4 ? 0 : shape; /* some constant columns in every batch */
            tp_dyn_value v = {.u = 0};
            uint8_t present = 0;
            if (def->label == TP_LABEL_REPEATED) {
                uint32_t k = shape == 0 ? 2 : (uint32_t)(rnd() % 5);
                if (col->elems_len + k > col->elems_cap) {
                    col->elems_cap = (col->elems_len + k) * 2 + 16;
                    col->elems = realloc(col->elems, col->elems_cap * sizeof *col->elems);
                }
                v.a.off = (uint32_t)col->elems_len;
                v.a.count = k;
                for (uint32_t e = 0; e < k; e++)
                    col->elems[col->elems_len++] = gen_value(b, def, sh, i * 4 + e);
                b->used += k * sizeof(tp_dyn_value);
                present = k > 0 || (shape == 3 && rnd() % 4 == 0);
            } else if (def->label == TP_LABEL_IMPLICIT) {
                v = gen_value(b, def, sh, i);
                if (shape >= 2 && rnd() % 3 == 0)
                    v.u = 0;
                bool zero = def->kind == TP_COL_STRING || def->kind == TP_COL_BYTES ? v.s.len == 0
                            : def->kind == TP_COL_F32 ? !memcmp(&v.f, &(float){0}, 4) : v.u == 0;
                present = !zero || (shape == 3 && rnd() % 5 == 0);
            } else {
                present = shape < 2 || rnd() % 4 != 0;
                if (present)
                    v = gen_value(b, def, sh, i);
            }
            col->cells[b->count] = v;
            col->present[b->count] = present;
        }
        b->count++;
    }
}

static void test_generated(const char *file, const char *message)
{
    tp_schema *s = load(file, message);
    for (int shape = 0; shape < 4; shape++) {
        for (size_t n = 1; n <= 300; n = n * 3 + 1) {
            tp_dyn_batch *b;
            CHECK_ERR(tp_dyn_batch_new(s, n, 1 << 22, &b), TP_OK);
            fill(b, n, shape);
            round_trip(b);
            tp_dyn_batch_free(b);
        }
    }
    tp_schema_free(s);
}

/* ---- EV telemetry from protoc ---- */

static void test_ev(void)
{
    tp_schema *s = load("ev_telemetry.pb", "fleet.ev.v1.EvTelemetry");
    size_t lf, ls;
    uint8_t *full = slurp("ev_full.bin", &lf), *sparse = slurp("ev_sparse.bin", &ls);
    tp_dyn_batch *b;
    CHECK_ERR(tp_dyn_batch_new(s, 64, 1 << 20, &b), TP_OK);
    for (int i = 0; i < 5; i++) {
        CHECK_ERR(tp_dyn_decode(b, full, lf), TP_OK);
        CHECK_ERR(tp_dyn_decode(b, sparse, ls), TP_OK);
    }
    round_trip(b);
    /* Generated EV rows too. */
    tp_dyn_batch_clear(b);
    fill(b, 60, 1);
    round_trip(b);
    tp_dyn_batch_clear(b);
    CHECK_ERR(tp_dyn_decode(b, full, lf), TP_OK);
    /* A record with a field the schema does not know: the batch cannot be written as columns (the caller keeps
     * the original bytes as rows). */
    uint8_t with_unknown[4096];
    memcpy(with_unknown, full, lf);
    with_unknown[lf] = 0xa8; /* field 101, varint */
    with_unknown[lf + 1] = 0x06;
    with_unknown[lf + 2] = 0x01;
    CHECK_ERR(tp_dyn_decode(b, with_unknown, lf + 3), TP_OK);
    CHECK_INT(b->unknown_fields, 1);
    tp_dyncol_encoder *e;
    const uint8_t *c;
    size_t n;
    CHECK_ERR(tp_dyncol_encoder_new(&e), TP_OK);
    CHECK_ERR(tp_dyncol_encode(e, b, &c, &n), TP_ERR_INVALID_ARG);
    tp_dyncol_encoder_free(e);
    tp_dyn_batch_free(b);
    free(full);
    free(sparse);
    tp_schema_free(s);
}

/* Writer and reader schemas differ: ev_added adds a column (tire_pressure_kpa, 17) and an enum value. */
static void test_versions(void)
{
    tp_schema *old = load("ev_telemetry.pb", "fleet.ev.v1.EvTelemetry");
    tp_schema *neu = load("ev_added.pb", "fleet.ev.v1.EvTelemetry");
    tp_dyn_batch *a, *b;
    tp_dyncol_encoder *e;
    tp_dyncol_decoder *d;
    const uint8_t *c;
    size_t n;
    CHECK_ERR(tp_dyncol_encoder_new(&e), TP_OK);
    CHECK_ERR(tp_dyncol_decoder_new(&d), TP_OK);
    /* old writer, new reader: the added column is absent */
    CHECK_ERR(tp_dyn_batch_new(old, 20, 1 << 20, &a), TP_OK);
    CHECK_ERR(tp_dyn_batch_new(neu, 20, 1 << 20, &b), TP_OK);
    fill(a, 20, 2);
    CHECK_ERR(tp_dyncol_encode(e, a, &c, &n), TP_OK);
    CHECK_ERR(tp_dyncol_decode(d, c, n, 100, b), TP_OK);
    CHECK(rows_equal(a, 0, b, 0, 20));
    /* new writer, old reader: the added column is skipped */
    tp_dyn_batch_clear(a);
    tp_dyn_batch_clear(b);
    fill(b, 20, 1);
    CHECK(b->columns[tp_schema_find(neu, "tire_pressure_kpa")].present[0]);
    CHECK_ERR(tp_dyncol_encode(e, b, &c, &n), TP_OK);
    CHECK_ERR(tp_dyncol_decode(d, c, n, 100, a), TP_OK);
    CHECK(rows_equal(b, 0, a, 0, 20));
    tp_dyn_batch_free(a);
    tp_dyn_batch_free(b);
    tp_dyncol_encoder_free(e);
    tp_dyncol_decoder_free(d);
    tp_schema_free(old);
    tp_schema_free(neu);
}

/* ---- the worked example of docs/FORMAT_SCHEMA.md ---- */

static void test_example(void)
{
}

int main(int argc, char **argv)
{
    dir = argc > 1 ? argv[1] : ".";
    test_example();
    test_ev();
    test_versions();
    test_generated("ev_telemetry.pb", "fleet.ev.v1.EvTelemetry");
    test_generated("all_types.pb", "alltypes.v1.All");
    test_generated("cols_example.pb", "example.v1.Sample");
    return check_exit();
}
