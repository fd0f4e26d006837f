/* Fuzz target: the delimited reader on hostile bytes, read in chunks of varying size. It must end with TP_ERR_END or
 * one of its documented errors with a sentence, agree message by message with tp_delimited_split over the same
 * bytes, and never read outside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telepack/delimited.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct src {
    const uint8_t *p;
    size_t len, pos;
} src;

static long read_src(void *ctx, void *buf, size_t cap)
{
    src *s = ctx;
    size_t n = s->len - s->pos;
    /* chunk size from the data itself: 1..64 bytes */
    size_t step = s->len ? (size_t)(s->p[s->pos % s->len] & 63) + 1 : 1;
    if (n > step)
        n = step;
    if (n > cap)
        n = cap;
    memcpy(buf, s->p + s->pos, n);
    s->pos += n;
    return (long)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan sees any overread */
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    src s = {copy, size, 0};
    tp_delimited_reader_opts o;
    tp_delimited_reader_opts_init(&o);
    o.read = read_src;
    o.read_ctx = &s;
    o.max_message_bytes = 300;
    tp_delimited_reader *r;
    if (tp_delimited_reader_new(&o, &r) != TP_OK)
        abort();
    size_t pos = 0;
    const uint8_t *msg, *want;
    size_t len, want_len, used;
    tp_err e;
    while ((e = tp_delimited_reader_next(r, &msg, &len)) == TP_OK) {
        if (tp_delimited_split(copy + pos, size - pos, 300, &want, &want_len, &used) != TP_OK)
            abort();
        if (len != want_len || memcmp(msg, want, len))
            abort();
        pos += used;
        if (tp_delimited_reader_offset(r) != pos)
            abort();
        tp_record rec;
        (void)tp_record_decode(msg, len, &rec);
    }
    if (e == TP_ERR_END) {
        if (pos != size || tp_delimited_reader_error(r)[0])
            abort();
    } else {
        if (e != TP_ERR_TRUNCATED && e != TP_ERR_VARINT_OVERFLOW && e != TP_ERR_RECORD_TOO_LARGE)
            abort();
        if (!tp_delimited_reader_error(r)[0] || tp_delimited_split(copy + pos, size - pos, 300, &want, &want_len,
                                                                   &used) != e)
            abort();
    }
    tp_delimited_reader_free(r);
    free(copy);
    return 0;
}
