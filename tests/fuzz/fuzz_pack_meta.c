/* Fuzz target for the pack metadata reader (tp_pack_meta_from_header_list): the input is a list of headers, one per
 * line, "name=value" (a line without '=' is a name with a NULL value). Any list parses or fails cleanly with a
 * sentence; what parses writes back in a form that parses to the same metadata. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telepack/pack_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\n';
    tp_header h[32];
    size_t n = 0;
    for (size_t i = 0, start = 0; i <= size && n < 32; i++) {
        if (buf[i] != '\n')
            continue;
        buf[i] = '\0';
        char *line = buf + start, *eq = memchr(line, '=', i - start);
        if (eq) {
            *eq = '\0';
            h[n++] = (tp_header){line, eq + 1, (size_t)(buf + i - (eq + 1))};
        } else {
            h[n++] = (tp_header){line, NULL, 0};
        }
        start = i + 1;
    }
    tp_pack_meta m, again;
    char err[256];
    err[0] = 'x';
    tp_err e = tp_pack_meta_from_header_list(h, n, &m, err, sizeof err);
    if (e != TP_OK) {
        if (!err[0] || err[0] == 'x')
            abort(); /* every refusal says why */
    } else {
        tp_header out[TP_PACK_META_MAX_HEADERS];
        char text[TP_PACK_META_TEXT_BYTES];
        size_t k;
        tp_header_form form = tp_pack_meta_to_header_list(&m, TP_HEADERS_COMPACT, out, &k, text) == TP_OK
                                  ? TP_HEADERS_COMPACT
                                  : TP_HEADERS_FULL;
        if (form == TP_HEADERS_FULL && tp_pack_meta_to_header_list(&m, TP_HEADERS_FULL, out, &k, text) != TP_OK)
            abort();
        if (tp_pack_meta_from_header_list(out, k, &again, err, sizeof err) != TP_OK ||
            memcmp(&m, &again, sizeof m) != 0)
            abort();
    }
    free(buf);
    return 0;
}
