/* Fuzz target: the dynamic decoder. Input: a 4-byte little-endian length L, a descriptor set of L bytes (its
 * message fleet.ev.v1.EvTelemetry, or the first of a few names that loads), then one message. Whatever decodes must
 * encode, and the encoding is canonical: decode(encode(x)) encodes to the same bytes; the JSON writer succeeds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dynrow.h"
#include "schema/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"fleet.ev.v1.EvTelemetry", "telepack.v1.VehicleRecord", "refused.v2.Legacy"};

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
    size_t mlen = size - 4 - dlen;
    uint8_t *msg = malloc(mlen ? mlen : 1); /* exact size: ASan sees any overread */
    tp_dyn_batch *b = NULL;
    if (!msg || tp_dyn_batch_new(s, 2, 1 << 20, &b) != TP_OK)
        abort();
    memcpy(msg, data + 4 + dlen, mlen);
    if (tp_dyn_decode(b, msg, mlen) == TP_OK) {
        size_t cap = 2 * mlen + 64, n1, n2;
        uint8_t *e1 = malloc(cap), *e2 = malloc(cap);
        tp_dyn_text t = {0};
        if (!e1 || !e2 || tp_dyn_encode(b, 0, e1, cap, &n1) != TP_OK)
            abort();
        if (tp_dyn_decode(b, e1, n1) != TP_OK || tp_dyn_encode(b, 1, e2, cap, &n2) != TP_OK || n1 != n2 ||
            memcmp(e1, e2, n1))
            abort();
        if (tp_dyn_row_json(b, 0, 0, &t) != TP_OK || t.p[t.len - 1] != '\n')
            abort();
        tp_dyn_text_free(&t);
        free(e1);
        free(e2);
    } else if (b->count != 0 || b->used != 0 || !b->error[0]) {
        abort();
    }
    tp_dyn_batch_free(b);
    free(msg);
    tp_schema_free(s);
    return 0;
}
