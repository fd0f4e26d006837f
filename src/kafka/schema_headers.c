/* Pack headers of run-time schemas (src/kafka/schema_headers.h), on top of the built-in ones: the strict parser of
 * pack_headers.c reads a copy of the headers whose tp-schema is swapped for the built-in name, so both paths accept
 * and refuse exactly the same format, version, layout, codec and count headers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kafka/pack_headers.h"
#include "kafka/schema_headers.h"

static tp_err fail(tp_err e, char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static tp_err fail(tp_err e, char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return e;
}

static int valid_fp(const char *p, size_t n)
{
    if (n != TP_SCHEMA_FP_HEX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return 0;
    return 1;
}

static int valid_name(const char *p, size_t n)
{
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] <= 0x20 || p[i] >= 0x7f)
            return 0;
    return 1;
}

tp_err tp_schema_pack_headers(const tp_pack_meta *meta, const char *message, const char *fp_hex,
                              rd_kafka_headers_t *hdrs)
{
    if (!meta || !hdrs || !message || !fp_hex || !valid_name(message, strlen(message)) ||
        !valid_fp(fp_hex, strlen(fp_hex)))
        return TP_ERR_INVALID_ARG;
    tp_err e = tp_pack_meta_to_headers(meta, hdrs);
    if (e)
        return e;
    if (rd_kafka_header_remove(hdrs, TP_HEADER_SCHEMA) ||
        rd_kafka_header_add(hdrs, TP_HEADER_SCHEMA, -1, message, -1) ||
        rd_kafka_header_add(hdrs, TP_HEADER_SCHEMA_FP, -1, fp_hex, -1))
        return TP_ERR_KAFKA;
    return TP_OK;
}

tp_err tp_schema_pack_meta_from_headers(const rd_kafka_headers_t *hdrs, tp_pack_meta *meta, char *name,
                                        size_t name_cap, char fp[TP_SCHEMA_FP_HEX_LEN + 1], char *err, size_t cap)
{
    if (!hdrs || !meta || !name || name_cap == 0 || !fp)
        return fail(TP_ERR_INVALID_ARG, err, cap, "no headers or no place for the schema name");
    name[0] = 0;
    fp[0] = 0;
    const void *v = NULL, *second;
    size_t n = 0, n2;
    if (rd_kafka_header_get(hdrs, 1, TP_HEADER_SCHEMA_FP, &second, &n2) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return fail(TP_ERR_PARSE, err, cap, "pack header %s appears more than once", TP_HEADER_SCHEMA_FP);
    if (rd_kafka_header_get(hdrs, 0, TP_HEADER_SCHEMA_FP, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (!v || !valid_fp(v, n))
            return fail(TP_ERR_PARSE, err, cap, "pack header %s is not 16 lowercase hex digits", TP_HEADER_SCHEMA_FP);
        memcpy(fp, v, n);
        fp[n] = 0;
    }
    /* The schema name: taken here, then swapped for the built-in one so the strict parser checks the rest. */
    rd_kafka_headers_t *copy = rd_kafka_headers_copy(hdrs);
    if (!copy)
        return fail(TP_ERR_NOMEM, err, cap, "out of memory copying the headers");
    tp_err e = TP_OK;
    if (rd_kafka_header_get(hdrs, 1, TP_HEADER_SCHEMA, &second, &n2) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        e = fail(TP_ERR_PARSE, err, cap, "pack header %s appears more than once", TP_HEADER_SCHEMA);
    } else if (rd_kafka_header_get(hdrs, 0, TP_HEADER_SCHEMA, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (!v || !valid_name(v, n) || n >= name_cap)
            e = fail(TP_ERR_PARSE, err, cap, "pack header %s is not a message name (1 to 255 printable bytes)",
                     TP_HEADER_SCHEMA);
        else {
            memcpy(name, v, n);
            name[n] = 0;
            if (rd_kafka_header_remove(copy, TP_HEADER_SCHEMA) ||
                rd_kafka_header_add(copy, TP_HEADER_SCHEMA, -1, TP_SCHEMA_NAME, -1))
                e = fail(TP_ERR_NOMEM, err, cap, "out of memory copying the headers");
        }
    }
    if (!e)
        e = tp_pack_meta_from_headers(copy, meta, err, cap);
    rd_kafka_headers_destroy(copy);
    return e;
}
