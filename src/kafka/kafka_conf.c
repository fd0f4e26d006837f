/* librdkafka configuration shared by producer and consumer (see kafka_conf.h). */
#include "kafka/kafka_conf.h"

#include <string.h>

#include "common/errbuf.h"
#include "kafka/log_rdkafka.h"

int tp_kafka_conf_is_secret(const char *key)
{
    return strstr(key, "password") || strstr(key, "secret") || strstr(key, "ssl.key.pem") ||
           strstr(key, "sasl.oauthbearer.config") || strstr(key, "ssl_key");
}

tp_err tp_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t cap)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) != RD_KAFKA_CONF_OK) {
        int secret = tp_kafka_conf_is_secret(key);
        tp_errf(err, cap, "librdkafka property %s=%s refused: %s", key, secret ? "(secret, not shown)" : value,
                secret && strstr(why, value) ? "the value was refused" : why);
        return TP_ERR_INVALID_ARG;
    }
    return TP_OK;
}

int tp_kafka_err_is_config(int err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:            /* SASL: wrong credentials, mechanism not enabled */
    case RD_KAFKA_RESP_ERR__SSL:                       /* TLS: certificate not verified, protocol mismatch */
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        return 1;
    default:
        return 0;
    }
}

tp_err tp_kafka_conf_apply(rd_kafka_conf_t *conf, const char *const *props, size_t n, char *err, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        char key[256];
        const char *eq = strchr(props[i], '=');
        size_t klen = eq ? (size_t)(eq - props[i]) : 0;
        if (!eq || klen == 0 || klen >= sizeof key) {
            if (eq) /* no key, or one too long: the value may be a secret, so it is not shown */
                tp_errf(err, cap, "librdkafka property number %zu has %s key; write key=value (e.g. linger.ms=20)",
                        i + 1, klen ? "too long a" : "no");
            else
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
