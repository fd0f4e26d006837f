/* tp_delimited_split and tp_delimited_reader: messages from memory, a FILE and a read function that returns one
 * byte at a time; a clean end; every error with its sentence (truncated prefix, truncated body, bad prefix, a
 * length above the limit, a message that is not a VehicleRecord, a read error), sticky errors, offsets, counts, and
 * messages larger than the reader's first buffer. */
#include <errno.h>

#include "check.h"
#include "telepack/delimited.h"
#include "telepack/pack.h"
#include "telepack/varint.h"

static size_t put(uint8_t *dst, const uint8_t *msg, size_t len)
{
    size_t n = tp_varint_encode(len, dst);
    memcpy(dst + n, msg, len);
    return n + len;
}

static void test_split(void)
{
    uint8_t buf[64];
    size_t n = put(buf, (const uint8_t *)"abc", 3);
    n += put(buf + n, (const uint8_t *)"", 0);
    const uint8_t *m;
    size_t len, used;
    CHECK_ERR(tp_delimited_split(buf, n, 100, &m, &len, &used), TP_OK);
    CHECK_INT(len, 3);
    CHECK_INT(used, 4);
    CHECK(m == buf + 1 && !memcmp(m, "abc", 3));
    CHECK_ERR(tp_delimited_split(buf + used, n - used, 100, &m, &len, &used), TP_OK);
    CHECK_INT(len, 0);
    CHECK_INT(used, 1);
    CHECK_ERR(tp_delimited_split(buf, 3, 100, &m, &len, &used), TP_ERR_TRUNCATED); /* body cut */
    CHECK_ERR(tp_delimited_split(buf, 0, 100, &m, &len, &used), TP_ERR_TRUNCATED);
    CHECK_ERR(tp_delimited_split(buf, 4, 2, &m, &len, &used), TP_ERR_RECORD_TOO_LARGE);
    CHECK_ERR(tp_delimited_split(buf, 4, 3, &m, &len, &used), TP_OK); /* the limit itself is allowed */
    uint8_t cont[1] = {0x80};
    CHECK_ERR(tp_delimited_split(cont, 1, 100, &m, &len, &used), TP_ERR_TRUNCATED);
    uint8_t over[11];
    memset(over, 0xff, sizeof over);
    CHECK_ERR(tp_delimited_split(over, sizeof over, 100, &m, &len, &used), TP_ERR_VARINT_OVERFLOW);
}

/* A read function over memory that returns at most `step` bytes per call, or fails at `fail_at`. */
typedef struct src {
    const uint8_t *p;
    size_t len, pos, step, fail_at;
} src;

static long read_src(void *ctx, void *buf, size_t cap)
{
    src *s = ctx;
    if (s->pos >= s->fail_at) {
        errno = EIO;
        return -1;
    }
    size_t n = s->len - s->pos;
    if (n > cap)
        n = cap;
    if (n > s->step)
        n = s->step;
    memcpy(buf, s->p + s->pos, n);
    s->pos += n;
    return (long)n;
}

static tp_delimited_reader *reader_over(src *s, const uint8_t *p, size_t len, size_t step, size_t max)
{
    *s = (src){p, len, 0, step, SIZE_MAX};
    tp_delimited_reader_opts o;
    tp_delimited_reader_opts_init(&o);
    o.read = read_src;
    o.read_ctx = s;
    if (max)
        o.max_message_bytes = max;
    tp_delimited_reader *r = NULL;
    CHECK_ERR(tp_delimited_reader_new(&o, &r), TP_OK);
    return r;
}

static void test_records(size_t step)
{
    uint8_t buf[4096];
    size_t n = 0;
    for (int i = 0; i < 20; i++) {
        tp_record rec = {.vehicle_id = 10001 + (uint64_t)i, .seq = (uint64_t)i, .latitude = 35.5};
        uint8_t enc[TP_RECORD_MAX_ENCODED];
        size_t len;
        CHECK_ERR(tp_record_encode(&rec, enc, sizeof enc, &len), TP_OK);
        n += put(buf + n, enc, len);
    }
    src s;
    tp_delimited_reader *r = reader_over(&s, buf, n, step, 0);
    tp_record got;
    int i = 0;
    tp_err e;
    while ((e = tp_delimited_reader_next_record(r, &got)) == TP_OK) {
        CHECK_INT(got.vehicle_id, 10001 + i);
        CHECK_INT(got.seq, i);
        i++;
    }
    CHECK_ERR(e, TP_ERR_END);
    CHECK_INT(i, 20);
    CHECK_INT(tp_delimited_reader_count(r), 20);
    CHECK_INT(tp_delimited_reader_offset(r), n);
    CHECK_STR(tp_delimited_reader_error(r), "");
    CHECK_ERR(tp_delimited_reader_next_record(r, &got), TP_ERR_END); /* stays at the end */
    tp_delimited_reader_free(r);
}

/* Runs the reader over p[0..len) and wants `good` messages, then error want with message want_msg. */
static void expect_error(const uint8_t *p, size_t len, size_t max, int good, tp_err want, const char *want_msg)
{
    for (size_t step = 1; step <= 1u << 20; step *= 1024) {
        src s;
        tp_delimited_reader *r = reader_over(&s, p, len, step, max);
        const uint8_t *m;
        size_t ml;
        int n = 0;
        tp_err e;
        while ((e = tp_delimited_reader_next(r, &m, &ml)) == TP_OK)
            n++;
        CHECK_INT(n, good);
        CHECK_ERR(e, want);
        CHECK_STR(tp_delimited_reader_error(r), want_msg);
        CHECK_ERR(tp_delimited_reader_next(r, &m, &ml), want); /* sticky */
        tp_delimited_reader_free(r);
    }
}

static void test_errors(void)
{
    uint8_t buf[64];
    size_t n = put(buf, (const uint8_t *)"hello", 5); /* 6 bytes */
    uint8_t t1[] = {0x05, 'h', 'e', 'l', 'l', 'o', 0xc8, 0x01, 'x', 'y'};
    expect_error(t1, sizeof t1, 0, 1, TP_ERR_TRUNCATED, "record 1 at byte offset 6: the input ends after 2 of its 200 bytes");
    uint8_t t2[] = {0x05, 'h', 'e', 'l', 'l', 'o', 0x80};
    expect_error(t2, sizeof t2, 0, 1, TP_ERR_TRUNCATED, "record 1 at byte offset 6: the input ends inside its length prefix");
    uint8_t t3[24];
    memcpy(t3, buf, n);
    memset(t3 + n, 0xff, 10);
    t3[n + 10] = 0x01;
    expect_error(t3, n + 11, 0, 1, TP_ERR_VARINT_OVERFLOW,
                 "record 1 at byte offset 6: the length prefix is not a valid varint");
    uint8_t t4[16];
    memcpy(t4, buf, n);
    size_t m = n + tp_varint_encode((uint64_t)1 << 40, t4 + n);
    expect_error(t4, m, 0, 1, TP_ERR_RECORD_TOO_LARGE,
                 "record 1 at byte offset 6: length prefix 1099511627776 is above the 4096-byte limit of a record");
    expect_error(buf, n, 4, 0, TP_ERR_RECORD_TOO_LARGE,
                 "record 0 at byte offset 0: length prefix 5 is above the 4-byte limit of a record");

    /* Not a VehicleRecord: field 1 with wire type 7. */
    uint8_t bad[] = {0x01, 0x0f};
    src s;
    tp_delimited_reader *r = reader_over(&s, bad, sizeof bad, 100, 0);
    tp_record rec;
    tp_err e = tp_delimited_reader_next_record(r, &rec);
    CHECK(e != TP_OK && e != TP_ERR_END);
    CHECK(strstr(tp_delimited_reader_error(r), "record 0 at byte offset 0 is not a valid VehicleRecord: ") ==
          tp_delimited_reader_error(r));
    tp_delimited_reader_free(r);

    /* A read error names the record it was reading. */
    r = reader_over(&s, buf, n, 3, 0);
    s.fail_at = 3;
    const uint8_t *msg;
    size_t len;
    CHECK_ERR(tp_delimited_reader_next(r, &msg, &len), TP_ERR_IO);
    CHECK_STR(tp_delimited_reader_error(r), "reading record 0 at byte offset 0 failed: Input/output error");
    tp_delimited_reader_free(r);
}

static void test_file_and_large(void)
{
    /* Messages of 1 MiB (above the first 64 KiB buffer) from a FILE, between small ones. */
    size_t big = (size_t)1 << 20;
    FILE *f = tmpfile();
    CHECK(f != NULL);
    uint8_t *body = malloc(big), pre[TP_VARINT_MAX_BYTES];
    memset(body, 'z', big);
    for (int i = 0; i < 3; i++) {
        fwrite(pre, 1, tp_varint_encode(1, pre), f);
        fputc('a' + i, f);
        fwrite(pre, 1, tp_varint_encode(big, pre), f);
        fwrite(body, 1, big, f);
    }
    rewind(f);
    tp_delimited_reader_opts o;
    tp_delimited_reader_opts_init(&o);
    o.file = f;
    o.max_message_bytes = big;
    tp_delimited_reader *r;
    CHECK_ERR(tp_delimited_reader_new(&o, &r), TP_OK);
    const uint8_t *msg;
    size_t len;
    for (int i = 0; i < 3; i++) {
        CHECK_ERR(tp_delimited_reader_next(r, &msg, &len), TP_OK);
        CHECK(len == 1 && msg[0] == 'a' + i);
        CHECK_ERR(tp_delimited_reader_next(r, &msg, &len), TP_OK);
        CHECK(len == big && msg[0] == 'z' && msg[big - 1] == 'z');
    }
    CHECK_ERR(tp_delimited_reader_next(r, &msg, &len), TP_ERR_END);
    CHECK_INT(tp_delimited_reader_offset(r), 3 * (2 + 3 + big));
    tp_delimited_reader_free(r);
    free(body);
    fclose(f);

    /* Arguments. */
    tp_delimited_reader_opts_init(&o);
    CHECK_ERR(tp_delimited_reader_new(&o, &r), TP_ERR_INVALID_ARG); /* no input */
    o.file = stdin;
    o.max_message_bytes = 0;
    CHECK_ERR(tp_delimited_reader_new(&o, &r), TP_ERR_INVALID_ARG);
    o.max_message_bytes = ((size_t)64 << 20) + 1;
    CHECK_ERR(tp_delimited_reader_new(&o, &r), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_delimited_reader_new(NULL, &r), TP_ERR_INVALID_ARG);
    tp_delimited_reader_free(NULL);
}

int main(void)
{
    test_split();
    test_records(1);
    test_records(7);
    test_records(1u << 20);
    test_errors();
    test_file_and_large();
    return check_exit();
}
