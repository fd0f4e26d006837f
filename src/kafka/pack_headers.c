/* Pack metadata <-> Kafka headers (src/kafka/pack_headers.h): librdkafka's header lists on one side, the codec's
 * name/value pairs (include/telepack/pack_meta.h, where the names, forms and strict parsing live) on the other. */
#include <string.h>

#include "kafka/pack_headers.h"

/* The pack headers a message may carry: a few more than the full form, so repeated ones are seen and refused. */
#define MAX_TP_HEADERS 64

static tp_err add_list(const tp_pack_meta *meta, tp_header_form form, rd_kafka_headers_t *hdrs)
{
    if (!meta || !hdrs)
        return TP_ERR_INVALID_ARG;
    tp_header h[TP_PACK_META_MAX_HEADERS];
    char text[TP_PACK_META_TEXT_BYTES];
    size_t n = 0;
    tp_err e = tp_pack_meta_to_header_list(meta, form, h, &n, text);
    for (size_t i = 0; !e && i < n; i++)
        if (rd_kafka_header_add(hdrs, h[i].name, -1, h[i].value, (ssize_t)h[i].len))
            e = TP_ERR_KAFKA;
    return e;
}

tp_err tp_pack_meta_to_headers(const tp_pack_meta *meta, rd_kafka_headers_t *hdrs)
{
    return add_list(meta, TP_HEADERS_FULL, hdrs);
}

tp_err tp_pack_meta_to_compact_header(const tp_pack_meta *meta, rd_kafka_headers_t *hdrs)
{
    return add_list(meta, TP_HEADERS_COMPACT, hdrs);
}

tp_err tp_pack_meta_from_headers(const rd_kafka_headers_t *hdrs, tp_pack_meta *meta, char *err, size_t cap)
{
    if (!hdrs || !meta) {
        if (err && cap)
            snprintf(err, cap, "no headers or no metadata to fill");
        return TP_ERR_INVALID_ARG;
    }
    tp_header h[MAX_TP_HEADERS];
    size_t n = 0;
    const char *name;
    const void *value;
    size_t len;
    for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &value, &len); i++) {
        if (strncmp(name, "tp", 2) != 0)
            continue; /* other applications' headers */
        if (n == MAX_TP_HEADERS) {
            if (err && cap)
                snprintf(err, cap, "more than %d pack headers (tp*) on one message", MAX_TP_HEADERS);
            return TP_ERR_PARSE;
        }
        h[n++] = (tp_header){name, value, len};
    }
    return tp_pack_meta_from_header_list(h, n, meta, err, cap);
}
