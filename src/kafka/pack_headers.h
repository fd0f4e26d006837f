/* Pack metadata as Kafka message headers (docs/FORMAT.md, "Kafka message"): librdkafka's header lists adapted to the
 * codec's name/value pairs. The names, the two forms (compact "tp", full tp-*) and the strict parsing are in
 * include/telepack/pack_meta.h, so any program can read them without librdkafka. */
#ifndef TELEPACK_PACK_HEADERS_H
#define TELEPACK_PACK_HEADERS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "telepack/pack.h"
#include "telepack/pack_meta.h"

/* Adds the eight full headers describing *meta to hdrs (librdkafka copies names and values). TP_ERR_INVALID_ARG
 * for a layout or codec without a name; TP_ERR_KAFKA if librdkafka refuses a header. */
tp_err tp_pack_meta_to_headers(const tp_pack_meta *meta, rd_kafka_headers_t *hdrs);

/* Adds the one compact header describing *meta. TP_ERR_INVALID_ARG when *meta is not expressible in it (codec
 * none, a dictionary, another schema version, a layout that does not match the version); then use
 * tp_pack_meta_to_headers. TP_ERR_KAFKA if librdkafka refuses the header. */
tp_err tp_pack_meta_to_compact_header(const tp_pack_meta *meta, rd_kafka_headers_t *hdrs);

/* Fills *meta from the message's headers, as tp_pack_meta_from_header_list does from name/value pairs (headers
 * whose names do not start with "tp" are ignored; more than 64 that do is TP_ERR_PARSE). */
tp_err tp_pack_meta_from_headers(const rd_kafka_headers_t *hdrs, tp_pack_meta *meta, char *err, size_t cap);

#endif
