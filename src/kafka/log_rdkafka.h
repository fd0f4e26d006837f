/* librdkafka's log callback routed into the process logger (src/common/log.h): one line per librdkafka log event,
 * component "kafka", syslog levels mapped onto ours. */
#ifndef TELEPACK_LOG_RDKAFKA_H
#define TELEPACK_LOG_RDKAFKA_H

#include <librdkafka/rdkafka.h>

#include "common/log.h"

/* syslog level (0 emerg .. 7 debug, as librdkafka passes them) -> our level: 0-3 ERROR, 4 WARN, 5-6 INFO,
 * 7 and above DEBUG; negative values count as ERROR. */
tp_log_level tp_log_level_from_syslog(int level);

/* Install with rd_kafka_conf_set_log_cb(conf, tp_log_rdkafka_cb). Logs "<handle name>: <FAC>: <message>".
 * Thread-safe (librdkafka calls it from its own threads unless log.queue is set). */
void tp_log_rdkafka_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
