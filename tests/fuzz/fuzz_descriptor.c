/* Fuzz target: the descriptor-set loader on hostile bytes. Whatever loads must have a consistent flattened model
 * (names within limits, depths and numbers in range, enum columns with their enum), a fingerprint equal to a second
 * load's, compare as identical with itself, and a batch that decodes the input bytes without crashing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dynrow.h"
#include "schema/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"fleet.ev.v1.EvTelemetry", "telepack.v1.VehicleRecord", "refused.v1.Accepted",
                                    "refused.v2.Legacy"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan sees any overread */
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        tp_schema *s = NULL, *again = NULL;
        char err[256];
        err[0] = 1;
        tp_err rc = tp_schema_load(copy, size, names[k], &s, err, sizeof err);
        if (rc) {
            if (s || !err[0] || strlen(err) >= sizeof err)
                abort(); /* a failure always says why */
            continue;
        }
        size_t n = tp_schema_column_count(s);
        if (n == 0 || n > TP_SCHEMA_MAX_COLUMNS)
            abort();
        for (size_t i = 0; i < n; i++) {
            const tp_schema_column *c = tp_schema_column_at(s, i);
            if (!c->depth || c->depth > TP_SCHEMA_MAX_DEPTH || strlen(c->name) > TP_SCHEMA_MAX_NAME)
                abort();
            for (size_t d = 0; d < c->depth; d++)
                if (c->numbers[d] < 1 || c->numbers[d] > 0x1fffffff)
                    abort();
            if ((c->type == TP_PB_ENUM) != (c->enum_type != NULL) || tp_schema_find(s, c->name) != (long)i)
                abort();
        }
        if (tp_schema_load(copy, size, names[k], &again, err, sizeof err) != TP_OK ||
            tp_schema_fingerprint(again) != tp_schema_fingerprint(s) ||
            tp_schema_compare(s, again, err, sizeof err) != TP_SCHEMA_IDENTICAL)
            abort();
        tp_dyn_batch *b = NULL;
        if (tp_dyn_batch_new(s, 1, 1 << 16, &b) == TP_OK) {
            if (tp_dyn_decode(b, copy, size) == TP_OK) {
                tp_dyn_text t = {0};
                uint8_t *out = malloc(2 * size + 64);
                size_t len;
                if (tp_dyn_row_json(b, 0, 0, &t) != TP_OK && t.len)
                    abort();
                if (out)
                    (void)tp_dyn_encode(b, 0, out, 2 * size + 64, &len);
                free(out);
                tp_dyn_text_free(&t);
            }
            tp_dyn_batch_free(b);
        }
        tp_schema_free(again);
        tp_schema_free(s);
    }
    free(copy);
    return 0;
}
