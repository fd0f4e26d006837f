/* Fuzz target: the pack reader on hostile bytes. Input = 4 bytes of fake metadata + the pack:
 *   byte 0: bit 0 = pass metadata (else sniff), bit 1 = codec zstd (else none), bit 2 = also split with
 *           tp_pack_frame_size; byte 1: record count claimed; byte 2: max_record_bytes - 1 (small limits make the
 *           limit paths reachable); byte 3: max_pack_bytes in KiB - 1.
 * Exercises open, next and read_all (into a small row batch, then one just large enough) on the same pack. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telepack/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint8_t flags = data[0];
    tp_pack_meta meta = {.format_version = 1, .layout = TP_LAYOUT_ROWS,
                         .codec = (flags & 2) ? TP_CODEC_ZSTD : TP_CODEC_NONE,
                         .schema_version = TP_SCHEMA_VERSION, .record_count = data[1]};
    tp_pack_reader_opts o;
    tp_pack_reader_opts_init(&o);
    o.max_record_bytes = (size_t)data[2] + 1;
    o.max_pack_bytes = ((size_t)data[3] + 1) * 1024;
    const uint8_t *pack = data + 4;
    size_t len = size - 4;
    /* A heap copy of exactly the pack bytes, so any overread is caught by ASan. */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return 0;
    memcpy(copy, pack, len);

    if (flags & 4) {
        size_t fs;
        if (tp_pack_frame_size(copy, len, &fs) == TP_OK && fs > len)
            abort();
    }
    tp_pack_reader *r;
    if (tp_pack_reader_new(&o, &r) != TP_OK) {
        free(copy);
        return 0;
    }
    const tp_pack_meta *m = (flags & 1) ? &meta : NULL;
    tp_record rec;
    size_t n_next = 0;
    tp_err e_next = tp_pack_reader_open(r, m, copy, len);
    if (e_next == TP_OK) {
        while ((e_next = tp_pack_reader_next(r, &rec)) == TP_OK)
            n_next++;
    }
    if (!tp_pack_reader_error_detail(r))
        abort();

    tp_row_batch *small, *big;
    if (tp_row_batch_new(4, &small) == TP_OK) {
        if (tp_pack_reader_open(r, m, copy, len) == TP_OK) {
            tp_err e = tp_pack_reader_read_all(r, small, 1, 2);
            if (e != TP_OK && small->count != 0)
                abort(); /* all-or-nothing */
            if (e == TP_OK && (small->count != n_next || e_next != TP_ERR_END))
                abort(); /* next() and read_all agree */
            if (e == TP_ERR_FULL && tp_row_batch_new(n_next ? n_next : 1, &big) == TP_OK) {
                e = tp_pack_reader_read_all(r, big, 1, 2); /* FULL consumed nothing: reading again works */
                if (e != TP_OK && big->count != 0)
                    abort();
                if ((e == TP_OK) != (e_next == TP_ERR_END) || (e == TP_OK && big->count != n_next))
                    abort();
                tp_row_batch_free(big);
            }
        }
        tp_row_batch_free(small);
    }
    tp_pack_reader_free(r);
    free(copy);
    return 0;
}
