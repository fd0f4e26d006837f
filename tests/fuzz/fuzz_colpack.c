/* Fuzz target for the column layout (pbpack v2 and v3 content). Input byte 0 picks the mode:
 *   even: bytes 1.. are v2 or v3 content. Decoding must fail cleanly or succeed; on success both decode paths agree, and
 *         re-encoding the records and decoding again gives the same bits.
 *   odd:  bytes 1.. are raw tp_record structs. Encoding then decoding must give them back bit for bit; with bit 1
 *         of byte 0 set they are first sorted by (vehicle_id, sampled_at_ms) and encoded as v3; with bit 2 set the
 *         encoder writes coded columns (docs/FORMAT_V2.md, "Coded columns").
 * Content with the coded magic takes the coded path of the even mode.
 * Also feeds the content to the pack reader (codec none, no metadata) and the raw-message representability check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/colpack.h"
#include "telepack/pack.h"

#define MAX_RECORDS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond)
{
    if (!cond)
        abort();
}

static tp_row_batch *batch_new(size_t cap)
{
    tp_row_batch *b = NULL;
    must(tp_row_batch_new(cap, &b) == TP_OK);
    return b;
}

static int by_vehicle_time(const void *a, const void *b)
{
    const tp_record *x = a, *y = b;
    if (x->vehicle_id != y->vehicle_id)
        return x->vehicle_id < y->vehicle_id ? -1 : 1;
    return x->sampled_at_ms < y->sampled_at_ms ? -1 : x->sampled_at_ms > y->sampled_at_ms;
}

static void roundtrip(tp_colpack_encoder *enc, const tp_record *recs, size_t n, int version)
{
    const uint8_t *c;
    size_t len;
    must(tp_colpack_encode_version(enc, recs, n, version, &c, &len) == TP_OK);
    must(tp_colpack_version(c, len) == version);
    must(len <= tp_colpack_bound(n));
    tp_colpack_reader rd;
    must(tp_colpack_open(&rd, c, len, n) == TP_OK);
    tp_record *out = calloc(n, sizeof *out);
    must(out != NULL);
    must(tp_colpack_read_records(&rd, out, n) == TP_OK);
    must(memcmp(out, recs, n * sizeof *out) == 0); /* tp_record has no padding: bytes are the fields' bits */
    tp_colpack_reader_release(&rd);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    tp_colpack_encoder *enc = NULL;
    must(tp_colpack_encoder_new(&enc) == TP_OK);
    const uint8_t *in = data + 1;
    size_t len = size - 1;

    if (data[0] & 1) {
        size_t n = len / sizeof(tp_record);
        if (n > 0 && n <= MAX_RECORDS) {
            tp_record *recs = malloc(n * sizeof *recs);
            must(recs != NULL);
            memcpy(recs, in, n * sizeof *recs);
            if (data[0] & 2)
                qsort(recs, n, sizeof *recs, by_vehicle_time);
            tp_colpack_encoder_set_coded(enc, (data[0] & 4) != 0);
            roundtrip(enc, recs, n, data[0] & 2 ? 3 : 2);
            free(recs);
        }
        tp_colpack_encoder_free(enc);
        return 0;
    }

    (void)tp_colpack_can_represent(in, len);
    tp_colpack_reader rd;
    if (tp_colpack_open(&rd, in, len, MAX_RECORDS) == TP_OK) {
        size_t n = rd.count;
        tp_record *recs = calloc(n, sizeof *recs);
        must(recs != NULL);
        /* uneven chunks exercise the resumable state */
        size_t at = 0, step = 1;
        tp_err e = TP_OK;
        while (at < n && !e) {
            size_t k = step < n - at ? step : n - at;
            e = tp_colpack_read_records(&rd, recs + at, k);
            at += k;
            step = step * 2 + 1;
        }
        tp_row_batch *rows = batch_new(n + 1);
        rows->count = 1;
        tp_colpack_reader_release(&rd);
        must(tp_colpack_open(&rd, in, len, MAX_RECORDS) == TP_OK);
        tp_err e2 = tp_colpack_read_rows(&rd, rows, 0, 0);
        must((e == TP_OK) == (e2 == TP_OK));
        if (!e) {
            must(rows->count == n + 1);
            for (size_t i = 0; i < n; i++) {
                tp_record x;
                tp_row_batch_get(rows, i + 1, &x);
                must(memcmp(&x, &recs[i], sizeof x) == 0);
            }
            tp_colpack_encoder_set_coded(enc, rd.coded);
            roundtrip(enc, recs, n, rd.version);
        } else {
            must(rows->count == 1);
        }
        tp_colpack_reader_release(&rd);
        tp_row_batch_free(rows);
        free(recs);
    }

    tp_pack_reader_opts o;
    tp_pack_reader_opts_init(&o);
    o.max_pack_bytes = 1 << 16;
    tp_pack_reader *r = NULL;
    must(tp_pack_reader_new(&o, &r) == TP_OK);
    if (tp_pack_reader_open(r, NULL, in, len) == TP_OK) {
        tp_record x;
        size_t i = 0;
        while (tp_pack_reader_next(r, &x) == TP_OK && i < 1000000)
            i++;
    }
    tp_pack_reader_free(r);
    tp_colpack_encoder_free(enc);
    return 0;
}
