/* Test helper: writes packs of known records to a file, for the standard-tools interop test (test_interop.sh).
 * Usage: interop_writer OUT CODEC(zstd|none) PACKS RECORDS_PER_PACK. Record i of pack p of vehicle 1000+p:
 * sampled_at_ms = 1700000000000 + 1000*i, seq = i+1, latitude = 52.52 + i*1e-6, longitude = 13.405 - i*1e-6,
 * speed_kmh = i%100 + 0.5, heading_deg = (i*10)%360, accuracy_m = 2.5, meter_status = i%5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telepack/pack.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s OUT zstd|none PACKS RECORDS_PER_PACK\n", argv[0]);
        return 2;
    }
    tp_pack_writer_opts o;
    tp_pack_writer_opts_init(&o);
    o.layout = TP_LAYOUT_ROWS; /* protoc --decode reads pbpack v1 */
    o.codec = strcmp(argv[2], "none") == 0 ? TP_CODEC_NONE : TP_CODEC_ZSTD;
    int packs = atoi(argv[3]), per = atoi(argv[4]);
    tp_pack_writer *w;
    if (tp_pack_writer_new(&o, &w))
        return 1;
    FILE *f = fopen(argv[1], "wb");
    if (!f)
        return 1;
    for (int p = 0; p < packs; p++) {
        for (int i = 0; i < per; i++) {
            tp_record r = {.vehicle_id = 1000 + (uint64_t)p, .sampled_at_ms = 1700000000000 + 1000 * (int64_t)i,
                           .seq = (uint64_t)i + 1, .latitude = 52.52 + i * 1e-6, .longitude = 13.405 - i * 1e-6,
                           .speed_kmh = (float)(i % 100) + 0.5f, .heading_deg = (float)((i * 10) % 360),
                           .accuracy_m = 2.5f, .meter_status = i % 5};
            if (tp_pack_writer_add(w, &r))
                return 1;
        }
        size_t cap = tp_pack_writer_bound(w), len;
        uint8_t *buf = malloc(cap);
        if (!buf || tp_pack_writer_finish(w, buf, cap, &len, NULL) || fwrite(buf, 1, len, f) != len)
            return 1;
        free(buf);
    }
    tp_pack_writer_free(w);
    return fclose(f) ? 1 : 0;
}
