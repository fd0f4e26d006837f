/* Fuzz target for the HTTP ingest's token-file parser: any input parses or is refused with a "line N:" message
 * (or the file-level "no token" one); a parsed file has 1..TP_AUTH_MAX_TOKENS tokens, each token of the input's
 * first line that parsed is found again, and lookups and vehicle checks on input-derived values stay in bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/auth_tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    tp_auth_tokens *t = NULL;
    char msg[512];
    tp_err e = tp_auth_tokens_parse(text, size, &t, msg, sizeof msg);
    if (e == TP_ERR_NOMEM)
        return 0;
    if (e != TP_OK) {
        if (e != TP_ERR_PARSE || t != NULL || (strncmp(msg, "line ", 5) && strncmp(msg, "no token", 8)))
            abort();
        return 0;
    }
    size_t n = tp_auth_tokens_count(t);
    if (n < 1 || n > TP_AUTH_MAX_TOKENS)
        abort();
    /* the first line's first field, when it is a token line, must be found (at index 0) */
    size_t i = 0;
    while (i < size && (text[i] == ' ' || text[i] == '\t'))
        i++;
    size_t s = i;
    while (i < size && text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r' && text[i] != '#')
        i++;
    if (i > s && (i == size || text[i] != '\r' || i + 1 == size || text[i + 1] == '\n')) {
        int k = tp_auth_tokens_find(t, text + s, i - s);
        if (k != 0)
            abort();
    }
    int k = tp_auth_tokens_find(t, text, size);
    if (k < -1 || k >= (int)n)
        abort();
    uint64_t v = 0;
    memcpy(&v, data, size < sizeof v ? size : sizeof v);
    for (size_t j = 0; j < n; j++) {
        (void)tp_auth_tokens_allows(t, (int)j, v);
        (void)tp_auth_tokens_allows(t, (int)j, 0);
        (void)tp_auth_tokens_allows(t, (int)j, UINT64_MAX);
    }
    tp_auth_tokens_free(t);
    return 0;
}
