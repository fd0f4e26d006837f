/* Varint-delimited streams (see include/telepack/delimited.h): a splitter over memory and a buffered reader over a
 * FILE or a read function. The reader's buffer starts at 64 KiB and grows only to hold one whole message, so its
 * memory is bounded by 64 KiB + max_message_bytes + 10. */
#include "telepack/delimited.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "telepack/pack.h"
#include "telepack/varint.h"

#define CHUNK ((size_t)64 << 10)
#define MAX_MESSAGE ((size_t)64 << 20)

tp_err tp_delimited_split(const uint8_t *src, size_t avail, size_t max_len, const uint8_t **msg, size_t *len,
                          size_t *used)
{
    if (!src && avail)
        return TP_ERR_INVALID_ARG;
    uint64_t n;
    size_t pre;
    tp_err e = tp_varint_decode(src, avail, &n, &pre);
    if (e)
        return e;
    if (n > max_len)
        return TP_ERR_RECORD_TOO_LARGE;
    if (n > avail - pre)
        return TP_ERR_TRUNCATED;
    *msg = src + pre;
    *len = (size_t)n;
    *used = pre + (size_t)n;
    return TP_OK;
}

struct tp_delimited_reader {
    tp_delimited_reader_opts o;
    uint8_t *buf;
    size_t cap, start, end; /* buf[start..end) is unread */
    uint64_t base;          /* input offset of buf[0] */
    uint64_t count;
    int eof;
    tp_err failed; /* sticky */
    char error[256];
};

void tp_delimited_reader_opts_init(tp_delimited_reader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_message_bytes = TP_DEFAULT_MAX_RECORD_BYTES;
}

tp_err tp_delimited_reader_new(const tp_delimited_reader_opts *opts, tp_delimited_reader **out)
{
    if (!opts || !out || (!opts->file && !opts->read) || opts->max_message_bytes == 0 ||
        opts->max_message_bytes > MAX_MESSAGE)
        return TP_ERR_INVALID_ARG;
    tp_delimited_reader *r = calloc(1, sizeof *r);
    if (!r)
        return TP_ERR_NOMEM;
    r->o = *opts;
    r->cap = CHUNK;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        free(r);
        return TP_ERR_NOMEM;
    }
    *out = r;
    return TP_OK;
}

void tp_delimited_reader_free(tp_delimited_reader *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

__attribute__((format(printf, 3, 4))) static tp_err fail(tp_delimited_reader *r, tp_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->failed = e;
    return e;
}

/* Reads more input so that at least `want` bytes are unread, growing the buffer up to want; returns 0, or -1 on a
 * read error (errno set) or out of memory (errno ENOMEM). At the end of the input, r->eof is set. */
static int fill(tp_delimited_reader *r, size_t want)
{
    while (r->end - r->start < want && !r->eof) {
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->base += r->start;
            r->end -= r->start;
            r->start = 0;
        }
        if (want > r->cap) {
            size_t cap = want + CHUNK;
            uint8_t *p = realloc(r->buf, cap);
            if (!p) {
                errno = ENOMEM;
                return -1;
            }
            r->buf = p;
            r->cap = cap;
        }
        long n;
        if (r->o.file) {
            n = (long)fread(r->buf + r->end, 1, r->cap - r->end, r->o.file);
            if (n == 0 && ferror(r->o.file))
                n = -1;
        } else {
            n = r->o.read(r->o.read_ctx, r->buf + r->end, r->cap - r->end);
        }
        if (n < 0)
            return -1;
        if (n == 0)
            r->eof = 1;
        r->end += (size_t)n;
    }
    return 0;
}

tp_err tp_delimited_reader_next(tp_delimited_reader *r, const uint8_t **msg, size_t *len)
{
    if (!r || !msg || !len)
        return TP_ERR_INVALID_ARG;
    if (r->failed)
        return r->failed;
    uint64_t at = r->base + r->start;
    size_t used, want = TP_VARINT_MAX_BYTES;
    for (;;) {
        if (fill(r, want))
            return fail(r, errno == ENOMEM ? TP_ERR_NOMEM : TP_ERR_IO,
                        "reading record %" PRIu64 " at byte offset %" PRIu64 " failed: %s", r->count, at,
                        strerror(errno));
        size_t avail = r->end - r->start;
        if (avail == 0 && r->eof)
            return TP_ERR_END;
        const uint8_t *p = r->buf + r->start;
        tp_err e = tp_delimited_split(p, avail, r->o.max_message_bytes, msg, len, &used);
        if (e == TP_OK)
            break;
        uint64_t n;
        size_t pre;
        if (e == TP_ERR_TRUNCATED && tp_varint_decode(p, avail, &n, &pre) == TP_OK) {
            if (r->eof)
                return fail(r, e, "record %" PRIu64 " at byte offset %" PRIu64 ": the input ends after %zu of its %"
                            PRIu64 " bytes", r->count, at, avail - pre, n);
            want = pre + (size_t)n;
        } else if (e == TP_ERR_TRUNCATED) {
            if (r->eof)
                return fail(r, e, "record %" PRIu64 " at byte offset %" PRIu64
                            ": the input ends inside its length prefix", r->count, at);
            want = avail + 1;
        } else if (e == TP_ERR_RECORD_TOO_LARGE) {
            tp_varint_decode(p, avail, &n, &pre);
            return fail(r, e, "record %" PRIu64 " at byte offset %" PRIu64 ": length prefix %" PRIu64
                        " is above the %zu-byte limit of a record", r->count, at, n, r->o.max_message_bytes);
        } else {
            return fail(r, e, "record %" PRIu64 " at byte offset %" PRIu64 ": the length prefix is not a valid varint",
                        r->count, at);
        }
    }
    r->start += used;
    r->count++;
    return TP_OK;
}

tp_err tp_delimited_reader_next_record(tp_delimited_reader *r, tp_record *out)
{
    const uint8_t *msg;
    size_t len;
    uint64_t at = r ? r->base + r->start : 0;
    tp_err e = tp_delimited_reader_next(r, &msg, &len);
    if (e)
        return e;
    if (!out)
        return TP_ERR_INVALID_ARG;
    e = tp_record_decode(msg, len, out);
    if (e)
        return fail(r, e, "record %" PRIu64 " at byte offset %" PRIu64 " is not a valid VehicleRecord: %s",
                    r->count - 1, at, tp_strerror(e));
    return TP_OK;
}

uint64_t tp_delimited_reader_offset(const tp_delimited_reader *r)
{
    return r ? r->base + r->start : 0;
}

uint64_t tp_delimited_reader_count(const tp_delimited_reader *r)
{
    return r ? r->count : 0;
}

const char *tp_delimited_reader_error(const tp_delimited_reader *r)
{
    return r ? r->error : "";
}
