/* Adapter from librdkafka's log callback to tp_log (see log_rdkafka.h). */
#include "kafka/log_rdkafka.h"

tp_log_level tp_log_level_from_syslog(int level)
{
    if (level <= 3) /* LOG_EMERG, LOG_ALERT, LOG_CRIT, LOG_ERR */
        return TP_LOG_ERROR;
    if (level == 4) /* LOG_WARNING */
        return TP_LOG_WARN;
    if (level <= 6) /* LOG_NOTICE, LOG_INFO */
        return TP_LOG_INFO;
    return TP_LOG_DEBUG;
}

void tp_log_rdkafka_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const char *name = rk ? rd_kafka_name(rk) : "rdkafka";
    tp_log(tp_log_level_from_syslog(level), "kafka", "%s: %s: %s", name ? name : "rdkafka", fac ? fac : "-",
           buf ? buf : "");
}
