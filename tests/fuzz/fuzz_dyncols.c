/* Fuzz target: the column-pack decoder of run-time schemas (src/schema/dyncols.c). Input: a 4-byte little-endian
 * length L, a descriptor set of L bytes (its message example.v1.Sample, fleet.ev.v1.EvTelemetry or
 * alltypes.v1.All, the first that loads), then column-pack content. Whatever decodes must encode, and re-decode to
 * the same encoding (a pack of several keys also with the flag: its order was checked); whatever is refused leaves
 * the batch as it was (it already holds a row) with a sentence. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dyncols.h"
#include "schema/dynrow.h"
#include "schema/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"example.v1.Sample", "fleet.ev.v1.EvTelemetry", "alltypes.v1.All"};

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
    size_t clen = size - 4 - dlen;
    uint8_t *content = malloc(clen ? clen : 1); /* exact size: ASan sees any overread */
    tp_dyn_batch *b = NULL, *b2 = NULL;
    tp_dyncol_decoder *d = NULL;
    tp_dyncol_encoder *e = NULL;
    /* bounded: 64 rows, 64 KiB of strings and elements */
    if (!content || tp_dyn_batch_new(s, 64, 1 << 16, &b) || tp_dyn_batch_new(s, 64, 1 << 16, &b2) ||
        tp_dyncol_decoder_new(&d) || tp_dyncol_encoder_new(&e))
        abort();
    memcpy(content, data + 4 + dlen, clen);
    tp_dyn_decode(b, (const uint8_t *)"", 0); /* one empty row first: decoding appends */
    size_t count = b->count, bytes = b->bytes_len, used = b->used;
    tp_err rc = tp_dyncol_decode(d, content, clen, 63, b);
    if (rc == TP_OK && tp_dyncol_decoder_multi_key(d)) {
        /* several keys: the decoder checked the order, so the pack's rows alone encode with the flag again */
        tp_dyn_batch *b3 = NULL;
        const uint8_t *c3;
        size_t n3;
        if (tp_dyn_batch_new(s, 64, 1 << 16, &b3))
            abort();
        for (size_t i = count; i < b->count; i++)
            if (tp_dyn_batch_append_row(b3, b, i) != TP_OK)
                abort();
        if (tp_dyncol_encode_multi(e, b3, &c3, &n3) != TP_OK)
            abort();
        tp_dyn_batch_clear(b3); /* c3 is the encoder's */
        if (tp_dyncol_decode(d, c3, n3, 64, b3) != TP_OK || !tp_dyncol_decoder_multi_key(d))
            abort();
        tp_dyn_batch_free(b3);
    }
    if (rc == TP_OK) {
        const uint8_t *c1;
        size_t n1;
        if (b->count <= count || tp_dyncol_encode(e, b, &c1, &n1) != TP_OK)
            abort();
        uint8_t *copy = malloc(n1);
        if (!copy)
            abort();
        memcpy(copy, c1, n1);
        const uint8_t *c2;
        size_t n2;
        if (tp_dyncol_decode(d, copy, n1, 64, b2) != TP_OK || b2->count != b->count ||
            tp_dyncol_encode(e, b2, &c2, &n2) != TP_OK || n1 != n2 || memcmp(copy, c2, n1))
            abort();
        tp_dyn_text t = {0};
        for (size_t i = 0; i < b2->count; i++)
            if (tp_dyn_row_json(b2, i, 0, &t) != TP_OK)
                abort();
        tp_dyn_text_free(&t);
        free(copy);
    } else if (b->count != count || b->bytes_len != bytes || b->used != used || !tp_dyncol_decoder_error(d)[0]) {
        abort();
    }
    tp_dyncol_encoder_free(e);
    tp_dyncol_decoder_free(d);
    tp_dyn_batch_free(b);
    tp_dyn_batch_free(b2);
    free(content);
    tp_schema_free(s);
    return 0;
}
