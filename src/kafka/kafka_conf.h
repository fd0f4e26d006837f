/* The one librdkafka configuration path of the producer (ingest) and the consumer and dead-letter producer (sink):
 * setting a property with a sentence on refusal, the user's "key=value" pass-through properties, and the log
 * bridge (log_rdkafka.h) with its level mapping. */
#ifndef TELEPACK_KAFKA_CONF_H
#define TELEPACK_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "telepack/error.h"

/* Sets key=value; TP_ERR_INVALID_ARG with "librdkafka property KEY=VALUE refused: <why>" in err. */
tp_err tp_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t cap);

/* Applies props[0..n), each "key=value" (a value may contain '='). TP_ERR_INVALID_ARG with a sentence naming the
 * property that is not key=value or that librdkafka refused. */
tp_err tp_kafka_conf_apply(rd_kafka_conf_t *conf, const char *const *props, size_t n, char *err, size_t cap);

/* Whether a property's value is a secret (passwords, keys, client secrets): never shown in a message. */
int tp_kafka_conf_is_secret(const char *key);

/* Whether a librdkafka error means the client is not let in (SASL authentication, TLS verification, an ACL
 * refusal): retrying with the same settings cannot help, so the workers stop with a sentence instead of retrying
 * forever. */
int tp_kafka_err_is_config(int err);

/* Routes librdkafka's log lines into the process logger (tp_log_rdkafka_cb: syslog levels mapped onto ours). */
void tp_kafka_conf_log(rd_kafka_conf_t *conf);

#endif
