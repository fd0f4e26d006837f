/* Fuzz target: the NDJSON reader of the dynamic row (tp_dyn_json_read). Input: a 4-byte little-endian length L, a
 * descriptor set of L bytes (its message fleet.ev.v1.EvTelemetry, or the first of a few names that loads), then one
 * JSON line. A line that is refused leaves the batch unchanged with a sentence; a line that reads prints (the JSON
 * writer), reads back to a row with the same protobuf encoding, and that encoding decodes. Unknown keys are tried
 * both refused and skipped. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dynrow.h"
#include "schema/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"fleet.ev.v1.EvTelemetry", "telepack.v1.VehicleRecord", "refused.v2.Legacy"};

static void one(tp_dyn_batch *b, const char *line, size_t len, int flags)
{
    tp_dyn_batch_clear(b);
    if (tp_dyn_decode(b, (const uint8_t *)"", 0) != TP_OK) /* a row before it: errors must leave it alone */
        abort();
    size_t used = b->used, bytes = b->bytes_len;
    tp_err e = tp_dyn_json_read(b, line, len, flags);
    if (e != TP_OK) {
        if (b->count != 1 || b->used != used || b->bytes_len != bytes || !b->error[0])
            abort();
        return;
    }
    tp_dyn_text t = {0};
    size_t cap = 16 * len + 1024, n1, n2;
    uint8_t *e1 = malloc(cap), *e2 = malloc(cap);
    if (!e1 || !e2 || tp_dyn_row_json(b, 1, 0, &t) != TP_OK || tp_dyn_encode(b, 1, e1, cap, &n1) != TP_OK)
        abort();
    if (tp_dyn_json_read(b, t.p, t.len, 0) != TP_OK || tp_dyn_encode(b, 2, e2, cap, &n2) != TP_OK || n1 != n2 ||
        memcmp(e1, e2, n1))
        abort();
    tp_dyn_batch_clear(b);
    if (tp_dyn_decode(b, e1, n1) != TP_OK)
        abort();
    tp_dyn_text_free(&t);
    free(e1);
    free(e2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t dlen = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    if (dlen > size - 4)
        return 0;
    tp_schema *s = NULL;
    char err[256];
    for (size_t k = 0; k < sizeof names / sizeof names[0] && !s; k++)
        if (tp_schema_load(data + 4, dlen, names[k], &s, err, sizeof err) != TP_OK)
            s = NULL;
    if (!s)
        return 0;
    size_t len = size - 4 - dlen;
    char *line = malloc(len ? len : 1); /* exact size: ASan sees any overread */
    tp_dyn_batch *b = NULL;
    if (!line || tp_dyn_batch_new(s, 3, 1 << 20, &b) != TP_OK)
        abort();
    memcpy(line, data + 4 + dlen, len);
    one(b, line, len, 0);
    one(b, line, len, TP_DYN_JSON_IGNORE_UNKNOWN);
    tp_dyn_batch_free(b);
    free(line);
    tp_schema_free(s);
    return 0;
}
