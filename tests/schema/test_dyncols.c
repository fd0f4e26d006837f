/* Column packs of a run-time schema (src/schema/dyncols.c, docs/FORMAT_SCHEMA.md): the worked example byte for
 * byte; round trips tp_dyn_batch -> content -> tp_dyn_batch with every cell, presence byte, array and string equal
 * (EV telemetry from protoc, generated batches of every scalar type in many shapes); appending to a batch that
 * holds rows; schema versions (a column the reader lacks is skipped, one it adds is absent); hostile content
 * (truncation at every length, every byte changed, lying counts, bad type codes, dictionary indexes out of range,
 * presence/array mismatches) refused with a sentence and the batch unchanged; growing batches and row copies
 * (tp_dyn_batch_append_row); the grouper keeping decoded rows gives the column writer the same content as decoding
 * the original bytes again, and still leaves a group with unknown fields as rows. Argument: the build directory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "schema/dyncols.h"
#include "schema/dynpack.h"
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
    if (n)
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

/* ---- growing batches and row copies ---- */

static void test_append_rows(const char *file, const char *message)
{
    tp_schema *s = load(file, message);
    for (int shape = 0; shape < 4; shape++) {
        size_t n = 150;
        tp_dyn_batch *src, *dst, *dec;
        CHECK_ERR(tp_dyn_batch_new(s, n, 1 << 22, &src), TP_OK);
        fill(src, n, shape);
        /* Copies of every row, in reverse, into a growing batch (16 rows, then 4x): equal row for row. */
        CHECK_ERR(tp_dyn_batch_new_growing(s, n, 1 << 22, &dst), TP_OK);
        CHECK_INT(dst->rows_alloc, 16);
        for (size_t i = n; i-- > 0;)
            CHECK_ERR(tp_dyn_batch_append_row(dst, src, i), TP_OK);
        CHECK_INT(dst->count, n);
        CHECK_INT(dst->rows_alloc, n);
        for (size_t i = 0; i < n; i++)
            CHECK(rows_equal(src, i, dst, n - 1 - i, 1));
        size_t want = 0; /* the rows' string bytes and 8 bytes an element (fill leaves orphan bytes in src) */
        for (size_t c = 0; c < src->ncolumns; c++) {
            const tp_dyn_column *col = &src->columns[c];
            bool str = col->def->kind == TP_COL_STRING || col->def->kind == TP_COL_BYTES;
            for (size_t r = 0; r < n; r++) {
                tp_dyn_value v = col->cells[r];
                if (col->def->label == TP_LABEL_REPEATED) {
                    want += v.a.count * sizeof v;
                    for (uint32_t k = 0; str && k < v.a.count; k++)
                        want += col->elems[v.a.off + k].s.len;
                } else if (str) {
                    want += v.s.len;
                }
            }
        }
        CHECK_INT(dst->used, want);
        CHECK_INT(dst->bytes_len, want - (dst->used - dst->bytes_len));
        /* Full: no row more, dst unchanged. */
        CHECK_ERR(tp_dyn_batch_append_row(dst, src, 0), TP_ERR_FULL);
        CHECK_INT(dst->count, n);
        CHECK_ERR(tp_dyn_batch_append_row(dst, src, n), TP_ERR_INVALID_ARG);
        /* A budget that only the first rows fit: the row that passes it is refused and nothing of it kept. */
        tp_dyn_batch_free(dst);
        CHECK_ERR(tp_dyn_batch_new_growing(s, n, src->used / 3 + 1, &dst), TP_OK);
        size_t i = 0;
        tp_err e;
        while ((e = tp_dyn_batch_append_row(dst, src, i)) == TP_OK)
            i++;
        if (src->used / 3 + 1 < src->used) { /* shapes with strings or arrays */
            CHECK_ERR(e, TP_ERR_FULL);
            size_t used = dst->used, bytes = dst->bytes_len;
            CHECK_ERR(tp_dyn_batch_append_row(dst, src, i), TP_ERR_FULL);
            CHECK_INT(dst->used, used);
            CHECK_INT(dst->bytes_len, bytes);
            CHECK_INT(dst->count, i);
            CHECK(i == 0 || rows_equal(src, 0, dst, 0, i));
        }
        /* A column pack decoded into a growing batch: it grows to the pack's records. */
        tp_dyncol_encoder *enc;
        tp_dyncol_decoder *d;
        const uint8_t *c;
        size_t cn;
        CHECK_ERR(tp_dyncol_encoder_new(&enc), TP_OK);
        CHECK_ERR(tp_dyncol_decoder_new(&d), TP_OK);
        CHECK_ERR(tp_dyncol_encode(enc, src, &c, &cn), TP_OK);
        CHECK_ERR(tp_dyn_batch_new_growing(s, n, 1 << 22, &dec), TP_OK);
        CHECK_ERR(tp_dyncol_decode(d, c, cn, n, dec), TP_OK);
        CHECK(dec->count == n && rows_equal(src, 0, dec, 0, n));
        tp_dyncol_encoder_free(enc);
        tp_dyncol_decoder_free(d);
        tp_dyn_batch_free(dec);
        tp_dyn_batch_free(dst);
        tp_dyn_batch_free(src);
    }
    tp_schema_free(s);
}

/* The grouper keeping decoded rows: each group's column content is byte for byte what decoding its original bytes
 * gives, and a group with a record of unknown fields still goes as rows (its original bytes). */
static void test_grouper_rows(void)
{
    tp_schema *s = load("ev_telemetry.pb", "fleet.ev.v1.EvTelemetry");
    size_t lf, ls;
    uint8_t *full = slurp("ev_full.bin", &lf), *sparse = slurp("ev_sparse.bin", &ls);
    uint8_t unknown[4096];
    memcpy(unknown, full, lf);
    unknown[lf] = 0xa8; /* field 101, varint 1 */
    unknown[lf + 1] = 0x06;
    unknown[lf + 2] = 0x01;
    tp_dyn_grouper *g;
    tp_dyn_colwriter *w, *w2;
    CHECK_ERR(tp_dyn_grouper_new(s, 7, 4096, &g), TP_OK);
    tp_dyn_grouper_keep_rows(g);
    CHECK_ERR(tp_dyn_colwriter_new(s, 7, 4096, &w), TP_OK);
    CHECK_ERR(tp_dyn_colwriter_new(s, 7, 4096, &w2), TP_OK);
    int packs = 0, rows_packs = 0;
    /* two keys (the full and the sparse record's), 25 and 17 records: 3 + 2 full packs of 7 and the rest; the
     * record with unknown fields (the full one's key, 25 then) is the 11th of that key, in its second pack */
    for (int i = 0; i < 43; i++) {
        tp_dyn_group *grp = NULL;
        if (i < 42) {
            const uint8_t *m = i % 7 % 2 ? sparse : full;
            size_t n = i % 7 % 2 ? ls : lf;
            if (i == 17)
                m = unknown, n = lf + 3;
            CHECK_ERR(tp_dyn_grouper_add(g, m, n, &grp), TP_OK);
            if (!grp)
                continue;
        }
        for (; grp || (i == 42 && (grp = tp_dyn_grouper_oldest(g))); grp = NULL) {
            CHECK(grp->rows != NULL);
            const uint8_t *a, *b;
            size_t an, bn;
            CHECK_ERR(tp_dyn_colwriter_group(w, grp, &a, &an), TP_OK);
            CHECK_ERR(tp_dyn_colwriter_convert(w2, grp->content, grp->len, &b, &bn), TP_OK);
            CHECK((a == NULL) == (b == NULL));
            if (a && b)
                CHECK(an == bn && !memcmp(a, b, an));
            CHECK(grp->rows_off == (a == NULL));
            packs++;
            rows_packs += a == NULL;
            tp_dyn_grouper_release(g, grp);
            CHECK_INT(grp->rows->count, 0);
            CHECK(!grp->rows_off);
        }
    }
    CHECK_INT(packs, 7);
    CHECK_INT(rows_packs, 1);
    tp_dyn_colwriter_free(w);
    tp_dyn_colwriter_free(w2);
    tp_dyn_grouper_free(g);
    free(full);
    free(sparse);
    tp_schema_free(s);
}

/* ---- several keys a pack ---- */

/* EV messages: ev_full with its VIN's last character 'A' + key and its time moved by t seconds; unknown adds a
 * field the schema does not know. */
static size_t ev_message(tp_dyn_batch *b, int key, int64_t t, bool unknown, uint8_t *out, size_t cap)
{
    tp_dyn_batch *c;
    CHECK_ERR(tp_dyn_batch_new(b->schema, 1, 1 << 20, &c), TP_OK);
    CHECK_ERR(tp_dyn_batch_append_row(c, b, 0), TP_OK);
    long vin = tp_schema_find(b->schema, "vin"), at = tp_schema_find(b->schema, "recorded_at");
    tp_dyn_value *v = &c->columns[vin].cells[0];
    c->bytes[v->s.off + v->s.len - 1] = (uint8_t)('A' + key);
    c->columns[at].cells[0].i += t * 1000000000;
    size_t n = 0;
    CHECK_ERR(tp_dyn_encode(c, 0, out, cap, &n), TP_OK);
    if (unknown) {
        out[n++] = 0xa8; /* field 101, varint 1 */
        out[n++] = 0x06;
        out[n++] = 0x01;
    }
    tp_dyn_batch_free(c);
    return n;
}

static int32_t by_last_char(void *ctx, const char *key, size_t len)
{
    (void)ctx;
    return (int32_t)((unsigned char)key[len - 1] % 3);
}

/* Records of 7 keys arriving out of order grouped by partition (key's last character mod 3): each pack holds
 * several keys sorted by (key, time) with the multi-key flag, and decodes to the records that went in; a record
 * out of order in such a pack is refused; a partition whose records hold unknown fields goes as runs of one key. */
static void test_multi_key(void)
{
    tp_schema *s = load("ev_telemetry.pb", "fleet.ev.v1.EvTelemetry");
    size_t lf;
    uint8_t *full = slurp("ev_full.bin", &lf);
    tp_dyn_batch *base, *got;
    CHECK_ERR(tp_dyn_batch_new(s, 1, 1 << 20, &base), TP_OK);
    CHECK_ERR(tp_dyn_decode(base, full, lf), TP_OK);
    CHECK_ERR(tp_dyn_batch_new(s, 64, 1 << 22, &got), TP_OK);
    tp_dyn_grouper *g;
    tp_dyn_colwriter *w;
    tp_dyncol_decoder *d;
    CHECK_ERR(tp_dyn_grouper_new(s, 20, 4096, &g), TP_OK);
    tp_dyn_grouper_keep_rows(g);
    tp_dyn_grouper_by_partition(g, by_last_char, NULL);
    CHECK_ERR(tp_dyn_colwriter_new(s, 20, 4096, &w), TP_OK);
    CHECK_ERR(tp_dyncol_decoder_new(&d), TP_OK);
    int seen[7][12] = {{0}}, packs = 0, multi_packs = 0, runs = 0, in_rows = 0;
    uint8_t msg[4096];
    for (int i = 0; i < 85; i++) {
        int key_i = (i * 5) % 7, t_i = 11 - i / 7; /* times falling: every group needs sorting */
        bool unknown = i == 40;
        size_t n = ev_message(base, key_i, t_i, unknown, msg, sizeof msg);
        tp_dyn_group *grp = NULL;
        if (i < 84)
            CHECK_ERR(tp_dyn_grouper_add(g, msg, n, &grp), TP_OK);
        for (; grp || (i == 84 && (grp = tp_dyn_grouper_oldest(g))); grp = NULL) {
            CHECK(grp->partition >= 0 && grp->partition < 3);
            const uint8_t *c;
            size_t cn;
            CHECK_ERR(tp_dyn_colwriter_group(w, grp, &c, &cn), TP_OK);
            packs++;
            if (c) {
                tp_dyn_batch_clear(got);
                CHECK_ERR(tp_dyncol_decode(d, c, cn, 1000, got), TP_OK);
                CHECK(tp_dyncol_decoder_multi_key(d));
                CHECK_INT(got->count, grp->count);
                multi_packs++;
                for (size_t r = 0; r < got->count; r++) {
                    if (r)
                        CHECK(tp_dyncol_row_cmp(got, r - 1, r) <= 0);
                    char k[TP_DYN_KEY_MAX + 1], why[64];
                    size_t kl;
                    int64_t ns;
                    CHECK_ERR(tp_dyn_key_text(got, r, k, &kl, why, sizeof why), TP_OK);
                    CHECK(tp_dyn_time_ns(got, r, &ns));
                    CHECK_INT(by_last_char(NULL, k, kl), grp->partition);
                    int kk = k[kl - 1] - 'A';
                    int64_t t = (ns - base->columns[tp_schema_find(s, "recorded_at")].cells[0].i) / 1000000000;
                    if (kk >= 0 && kk < 7 && t >= 0 && t < 12)
                        seen[kk][t]++;
                }
                /* The same content with a record out of order: refused, the batch unchanged. */
                if (got->count >= 2 && tp_dyncol_row_cmp(got, 0, got->count - 1) < 0) {
                    tp_dyncol_encoder *enc;
                    tp_dyn_batch *rev;
                    CHECK_ERR(tp_dyncol_encoder_new(&enc), TP_OK);
                    CHECK_ERR(tp_dyn_batch_new(s, 64, 1 << 22, &rev), TP_OK);
                    for (size_t r = got->count; r-- > 0;)
                        CHECK_ERR(tp_dyn_batch_append_row(rev, got, r), TP_OK);
                    const uint8_t *rc;
                    size_t rn;
                    CHECK_ERR(tp_dyncol_encode_multi(enc, rev, &rc, &rn), TP_ERR_INVALID_ARG);
                    CHECK_ERR(tp_dyncol_encode(enc, rev, &rc, &rn), TP_OK);
                    uint8_t *bad = malloc(rn);
                    memcpy(bad, rc, rn);
                    CHECK_INT(bad[5], 0); /* flags, after the magic and a one-byte count */
                    bad[5] = TP_DYNCOL_F_MULTI_KEY;
                    size_t before = rev->count;
                    CHECK_ERR(tp_dyncol_decode(d, bad, rn, 1000, rev), TP_ERR_CORRUPT);
                    CHECK(strstr(tp_dyncol_decoder_error(d), "sorted by key, then time") != NULL);
                    CHECK_INT(rev->count, before);
                    bad[5] = 0; /* without the flag, a pack of one key's reader takes it as it is */
                    CHECK_ERR(tp_dyncol_decode(d, bad, rn, 1000, rev), TP_OK);
                    free(bad);
                    tp_dyn_batch_free(rev);
                    tp_dyncol_encoder_free(enc);
                }
            } else {
                /* unknown fields: runs of one key, every record once, in arrival order */
                size_t pos = 0, len;
                const uint8_t *run;
                uint32_t count, total = 0;
                char key[TP_DYN_KEY_MAX + 1];
                size_t klen;
                tp_err e;
                while ((e = tp_dyn_colwriter_next_run(w, grp, &pos, &run, &len, &count, key, &klen)) == TP_OK) {
                    CHECK_INT(by_last_char(NULL, key, klen), grp->partition);
                    CHECK(run[0] != 0); /* v1 content never starts with 00 */
                    total += count;
                    runs++;
                }
                CHECK_ERR(e, TP_ERR_END);
                CHECK_INT(total, grp->count);
                in_rows += (int)total;
            }
            tp_dyn_grouper_release(g, grp);
        }
    }
    CHECK(packs > multi_packs && multi_packs >= 3 && runs > 1);
    int in_columns = 0;
    for (int k = 0; k < 7; k++)
        for (int t = 0; t < 12; t++) {
            CHECK(seen[k][t] <= 1);
            in_columns += seen[k][t];
        }
    CHECK_INT(in_columns + in_rows, 84); /* every record once, as columns or (its partition's pack) as rows */
    CHECK(in_rows > 1);
    tp_dyncol_decoder_free(d);
    tp_dyn_colwriter_free(w);
    tp_dyn_grouper_free(g);
    tp_dyn_batch_free(got);
    tp_dyn_batch_free(base);
    free(full);
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

static const uint8_t example[] = {
    0x00, 0x54, 0x43, 0x53, 0x03, 0x00, 0x05,       /* magic, 3 records, flags 0, 5 columns */
    0x01, 0x01, 0x09, 0x01, 0x02, 0x19,             /* 1    vin       string    implicit  dictionary  25 B */
    0x01, 0x02, 0x20, 0x02, 0x00, 0x14,             /* 2    at        timestamp optional              20 B */
    0x02, 0x03, 0x01, 0x02, 0x02, 0x01, 0x0a,       /* 3.1  soc_pct   float     optional  presence    10 B */
    0x02, 0x03, 0x02, 0x11, 0x04, 0x00, 0x0b,       /* 3.2  temps_dc  sint32    repeated              11 B */
    0x01, 0x04, 0x0e, 0x01, 0x00, 0x05,             /* 4    mode      enum      implicit               5 B */
    0x01, 0x00, 0x01, 0x11,                         /* vin: 1 entry; lengths const 17 */
    0x11, '5', 'Y', 'J', '3', 'E', '1', 'E', 'A', '7', 'K', 'F', '0', '0', '0', '0', '0', '1',
    0x00, 0x01, 0x00,                               /* indexes const 0 */
    0x03, 0x12, 0x80, 0x9b, 0xbe, 0xe2, 0xbd, 0x94, 0xb9, 0x86, 0x31, /* at: delta2, zz(1767225600003000000) */
    0x80, 0xba, 0xca, 0xbb, 0x07, 0xff, 0xb5, 0xdc, 0x05,             /* zz(+1002000000), zz(-6000000) */
    0x01, 0x03, 0x01, 0x00, 0x01,                   /* soc_pct presence: raw 1 0 1 */
    0x12, 0x03, 0xca, 0x0c, 0x01,                   /* values: delta, k / 10: 805, 804 */
    0x01, 0x03, 0x02, 0x00, 0x01,                   /* temps_dc lengths: raw 2 0 1 */
    0x02, 0x04, 0xae, 0x03, 0x0a, 0x07,             /* elements: delta 215, +5, -4 */
    0x01, 0x03, 0x02, 0x02, 0x04,                   /* mode: raw zz(1) zz(1) zz(2) */
};

/* Three samples of one vehicle (docs/FORMAT_SCHEMA.md, "Worked example"). */
static tp_dyn_batch *example_batch(tp_schema *s)
{
    tp_dyn_batch *b;
    CHECK_ERR(tp_dyn_batch_new(s, 3, 4096, &b), TP_OK);
    static const int64_t at[3] = {1767225600003000000, 1767225601005000000, 1767225602001000000};
    static const float soc[3] = {80.5f, 0, 80.4f};
    static const int64_t mode[3] = {1, 1, 2};
    static const int64_t temps[] = {215, 220, 216};
    static const uint32_t tcount[3] = {2, 0, 1};
    tp_dyn_column *vin = &b->columns[0], *ts = &b->columns[1], *sc = &b->columns[2], *tc = &b->columns[3],
                  *md = &b->columns[4];
    tc->elems = malloc(3 * sizeof *tc->elems);
    tc->elems_cap = 3;
    for (size_t e = 0; e < 3; e++)
        tc->elems[tc->elems_len++].i = temps[e];
    b->used += 3 * sizeof(tp_dyn_value);
    uint32_t off = 0;
    for (size_t i = 0; i < 3; i++) {
        vin->cells[i] = put_bytes(b, "5YJ3E1EA7KF000001", 17);
        vin->present[i] = 1;
        ts->cells[i].i = at[i];
        ts->present[i] = 1;
        sc->cells[i].f = soc[i];
        sc->present[i] = i != 1;
        tc->cells[i].a.off = off;
        tc->cells[i].a.count = tcount[i];
        tc->present[i] = tcount[i] > 0;
        off += tcount[i];
        md->cells[i].i = mode[i];
        md->present[i] = 1;
        b->count++;
    }
    return b;
}

static void test_example(void)
{
    tp_schema *s = load("cols_example.pb", "example.v1.Sample");
    tp_dyn_batch *b = example_batch(s);
    tp_dyncol_encoder *e;
    const uint8_t *c;
    size_t n = 0;
    CHECK_ERR(tp_dyncol_encoder_new(&e), TP_OK);
    CHECK_ERR(tp_dyncol_encode(e, b, &c, &n), TP_OK);
    if (getenv("DYNCOLS_HEX"))
        for (size_t i = 0; i < n; i++)
            printf("%02x%s", c[i], i % 16 == 15 || i + 1 == n ? "\n" : " ");
    CHECK_INT(n, sizeof example);
    CHECK(n == sizeof example && !memcmp(c, example, n));
    round_trip(b);
    tp_dyncol_encoder_free(e);
    tp_dyn_batch_free(b);
    tp_schema_free(s);
}

/* Decodes content into a batch already holding the example's rows; on error the batch must be unchanged and the
 * error a sentence. Returns the error. */
static tp_err hostile(tp_schema *s, const uint8_t *c, size_t n, uint64_t max_records, size_t capacity,
                      size_t max_bytes)
{
    tp_dyn_batch *b = example_batch(s), *big;
    CHECK_ERR(tp_dyn_batch_new(s, capacity, max_bytes, &big), TP_OK);
    tp_dyncol_decoder *d;
    CHECK_ERR(tp_dyncol_decoder_new(&d), TP_OK);
    if (capacity > 3 && max_bytes > 200)
        CHECK_ERR(tp_dyncol_decode(d, example, sizeof example, 3, big), TP_OK);
    size_t count = big->count, bytes = big->bytes_len, used = big->used, elems = big->columns[3].elems_len;
    tp_err err = tp_dyncol_decode(d, c, n, max_records, big);
    if (err) {
        CHECK(big->count == count && big->bytes_len == bytes && big->used == used &&
              big->columns[3].elems_len == elems);
        CHECK(strlen(tp_dyncol_decoder_error(d)) > 10);
    } else {
        CHECK(big->count > count);
        round_trip(big);
    }
    tp_dyncol_decoder_free(d);
    tp_dyn_batch_free(big);
    tp_dyn_batch_free(b);
    return err;
}

/* The example with bytes [at, at + cut) replaced by rep[0..rn). */
static size_t splice(uint8_t *out, size_t at, size_t cut, const uint8_t *rep, size_t rn)
{
    memcpy(out, example, at);
    memcpy(out + at, rep, rn);
    memcpy(out + at + rn, example + at + cut, sizeof example - at - cut);
    return sizeof example - cut + rn;
}

static void test_hostile(void)
{
    tp_schema *s = load("cols_example.pb", "example.v1.Sample");
    uint8_t buf[512];
    size_t n = sizeof example;
    const size_t cap = 16, budget = 1 << 16;
    /* cut off at every length */
    for (size_t k = 0; k < n; k++)
        CHECK(hostile(s, example, k, 100, cap, budget) != TP_OK);
    /* every byte changed three ways: refused with the batch unchanged, or read into rows that round-trip */
    for (size_t k = 0; k < n; k++) {
        static const uint8_t x[3] = {0x01, 0x80, 0xff};
        for (int j = 0; j < 3; j++) {
            memcpy(buf, example, n);
            buf[k] ^= x[j];
            hostile(s, buf, n, 100, cap, budget);
        }
    }
    memcpy(buf, example, n);
    buf[4] = 0x04; /* a lying record count: the timestamps' varints run out */
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_TRUNCATED);
    buf[4] = 0x7f;
    CHECK_ERR(hostile(s, buf, n, 1000, 200, budget), TP_ERR_CORRUPT);
    CHECK_ERR(hostile(s, example, n, 2, cap, budget), TP_ERR_PACK_TOO_LARGE);
    memcpy(buf, example, n);
    buf[3] = 0x32; /* the v2 magic */
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_UNKNOWN_VERSION);
    memcpy(buf, example, n);
    buf[5] = 0x02; /* header flags this reader does not know (1, several keys, it knows) */
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_UNKNOWN_VERSION);
    buf[5] = 0x03;
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_UNKNOWN_VERSION);
    memcpy(buf, example, n);
    buf[9] = 0x0c; /* vin says bytes: not the reader's type */
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_CORRUPT);
    memcpy(buf, example, n);
    buf[36] = 0x05; /* mode says label 5 */
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_CORRUPT);
    memcpy(buf, example, n);
    buf[37] = 0x04; /* an unknown column flag */
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_CORRUPT);
    memcpy(buf, example, n);
    buf[12] = 0x1a; /* vin's body claims a byte more: the bodies run past the end */
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_TRUNCATED);
    memcpy(buf, example, n);
    buf[n] = 0; /* a byte after the last body */
    CHECK_ERR(hostile(s, buf, n + 1, 100, cap, budget), TP_ERR_TRAILING_GARBAGE);
    memcpy(buf, example, n);
    buf[63] = 0x01; /* vin's index 1 in a dictionary of one */
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_CORRUPT);
    memcpy(buf, example, n);
    buf[39] = 0x02; /* a dictionary of 2 entries, lengths for 1 */
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_CORRUPT);
    memcpy(buf, example, n);
    buf[88] = 0x02; /* soc_pct presence unit 2 */
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_CORRUPT);
    memcpy(buf, example, n);
    buf[88] = 0x00; /* presence says 1 value, the value stream holds 2 */
    CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_CORRUPT);
    /* temps_dc with a presence stream saying record 0 is absent while its array has 2 elements */
    {
        static const uint8_t flag[] = {0x01, 0x10};
        static const uint8_t pres[] = {0x01, 0x03, 0x00, 0x00, 0x01};
        uint8_t tmp[512];
        memcpy(tmp, example, n);
        memcpy(tmp + 31, flag, 2); /* flags presence, 16 B */
        size_t m = n;
        memcpy(buf, tmp, m);
        memcpy(buf + 94, pres, sizeof pres);
        memcpy(buf + 94 + sizeof pres, tmp + 94, m - 94);
        CHECK_ERR(hostile(s, buf, m + sizeof pres, 100, cap, budget), TP_ERR_CORRUPT);
        buf[96] = 0x01; /* present: accepted */
        CHECK_ERR(hostile(s, buf, m + sizeof pres, 100, cap, budget), TP_OK);
    }
    /* an array length above the budget; elements fewer than the lengths say */
    {
        static const uint8_t big[] = {0x00, 0x01, 0x7f};
        n = splice(buf, 94, 5, big, 3);
        buf[32] = 0x09; /* the body is 2 bytes shorter */
        CHECK_ERR(hostile(s, buf, n, 100, cap, 256), TP_ERR_FULL);
        CHECK_ERR(hostile(s, buf, n, 100, cap, budget), TP_ERR_CORRUPT);
    }
    /* a column the reader does not know (4 -> 9) is skipped; the reader's mode is then absent */
    memcpy(buf, example, sizeof example);
    buf[34] = 0x09;
    CHECK_ERR(hostile(s, buf, sizeof example, 100, cap, budget), TP_OK);
    /* the same column twice */
    memcpy(buf, example, sizeof example);
    buf[34] = 0x02;
    buf[35] = 0x20;
    buf[36] = 0x02;
    CHECK_ERR(hostile(s, buf, sizeof example, 100, cap, budget), TP_ERR_CORRUPT);
    /* rows or bytes used up: TP_ERR_FULL, the batch unchanged */
    CHECK_ERR(hostile(s, example, sizeof example, 100, 5, budget), TP_ERR_FULL);
    CHECK_ERR(hostile(s, example, sizeof example, 100, cap, 40), TP_ERR_FULL);
    tp_schema_free(s);
}

int main(int argc, char **argv)
{
    dir = argc > 1 ? argv[1] : ".";
    test_example();
    test_hostile();
    test_ev();
    test_versions();
    test_generated("ev_telemetry.pb", "fleet.ev.v1.EvTelemetry");
    test_generated("all_types.pb", "alltypes.v1.All");
    test_generated("cols_example.pb", "example.v1.Sample");
    test_append_rows("ev_telemetry.pb", "fleet.ev.v1.EvTelemetry");
    test_append_rows("all_types.pb", "alltypes.v1.All");
    test_grouper_rows();
    test_multi_key();
    return check_exit();
}
