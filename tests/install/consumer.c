/* A program outside the tree: built by test_install.sh with nothing but `pkg-config --cflags --libs telepack`
 * against an installed copy. Writes a column pack of a few records, reads them back, checks every field, and
 * prints the library's version. Exit 0 when all of that holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <telepack/telepack.h>

#define N 5

int main(void)
{
    tp_record in[N], out;
    memset(in, 0, sizeof in);
    for (int i = 0; i < N; i++) {
        in[i].vehicle_id = 4242;
        in[i].sampled_at_ms = 1767225600000 + 1000 * i;
        in[i].seq = (uint64_t)i;
        in[i].latitude = 35.681234 + i * 1e-5;
        in[i].longitude = 139.767125 - i * 1e-5;
        in[i].speed_kmh = 20.5f + (float)i;
        in[i].meter_status = TP_METER_HIRED;
    }
    tp_pack_writer *w = NULL;
    tp_pack_reader *r = NULL;
    tp_err err = tp_pack_writer_new(NULL, &w);
    for (int i = 0; !err && i < N; i++)
        err = tp_pack_writer_add(w, &in[i]);
    size_t cap = err ? 0 : tp_pack_writer_bound(w), len = 0;
    uint8_t *pack = malloc(cap ? cap : 1);
    tp_pack_meta meta;
    if (!err)
        err = pack ? tp_pack_writer_finish(w, pack, cap, &len, &meta) : TP_ERR_NOMEM;
    if (!err)
        err = tp_pack_reader_new(NULL, &r);
    if (!err)
        err = tp_pack_reader_open(r, &meta, pack, len);
    int n = 0;
    while (!err && (err = tp_pack_reader_next(r, &out)) == TP_OK) {
        if (n >= N || memcmp(&out, &in[n], sizeof out) != 0) {
            fprintf(stderr, "record %d differs after the round trip\n", n);
            return 1;
        }
        n++;
    }
    if (err != TP_ERR_END || n != N) {
        fprintf(stderr, "round trip failed after %d records: %s\n", n, tp_strerror(err));
        return 1;
    }
    printf("telepack %s (headers %s): %d records in a %s pack of %zu bytes\n", tp_version(), TP_VERSION_STRING, n,
           meta.layout == TP_LAYOUT_COLUMNS ? "columns" : "rows", len);
    tp_pack_reader_free(r);
    tp_pack_writer_free(w);
    free(pack);
    return strcmp(tp_version(), TP_VERSION_STRING) == 0 ? 0 : 1;
}
