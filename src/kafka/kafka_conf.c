/* librdkafka configuration shared by producer and consumer (see kafka_conf.h). */
#include "kafka/kafka_conf.h"

#include <string.h>

#include "common/errbuf.h"
#include "kafka/log_rdkafka.h"

tp_err tp_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t cap)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) != RD_KAFKA_CONF_OK) {
        tp_errf(err, cap, "librdkafka property %s=%s refused: %s", key, value, why);
        return TP_ERR_INVALID_ARG;
    }
    return TP_OK;
}

tp_err tp_kafka_conf_apply(rd_kafka_conf_t *conf, const char *const *props, size_t n, char *err, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        char key[256];
        const char *eq = strchr(props[i], '=');
        size_t klen = eq ? (size_t)(eq - props[i]) : 0;
        if (!eq || klen == 0 || klen >= sizeof key) {
            tp_errf(err, cap, "librdkafka property '%s' is not key=value (e.g. linger.ms=20)", props[i]);
            return TP_ERR_INVALID_ARG;
        }
        memcpy(key, props[i], klen);
        key[klen] = '\0';
        tp_err e = tp_kafka_conf_set(conf, key, eq + 1, err, cap);
        if (e)
            return e;
    }
    return TP_OK;
}

void tp_kafka_conf_log(rd_kafka_conf_t *conf)
{
    rd_kafka_conf_set_log_cb(conf, tp_log_rdkafka_cb);
}
