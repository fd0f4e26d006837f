/* Fuzz target for the librdkafka statistics parser and exporter: any input parses or fails cleanly, and whatever
 * parses exports into a registry whose rendering is well-formed (every line a comment or "name{...} value"). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/kafka_stats.h"
#include "ops/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_kafka_stats s;
    if (tp_kafka_stats_parse((const char *)data, size, &s) != TP_OK)
        return 0;
    for (size_t i = 0; i < s.n_partitions; i++)
        if (s.partitions[i].partition < 0)
            abort(); /* partition -1 is always skipped */
    tp_metrics *m = NULL;
    tp_kafka_stats_exporter *e = NULL;
    if (tp_metrics_new(&m) || tp_kafka_stats_exporter_new(m, &e))
        abort();
    tp_err err = tp_kafka_stats_exporter_apply(e, &s);
    if (err && err != TP_ERR_FULL && err != TP_ERR_INVALID_ARG)
        abort();
    char *text = NULL;
    if (tp_metrics_render(m, &text, NULL))
        abort();
    for (char *line = text; *line;) {
        char *eol = strchr(line, '\n');
        if (!eol)
            abort(); /* every line ends in \n */
        if (*line != '#' && !memchr(line, ' ', (size_t)(eol - line)))
            abort(); /* a sample is "series value" */
        line = eol + 1;
    }
    free(text);
    tp_kafka_stats_exporter_free(e);
    tp_metrics_free(m);
    tp_kafka_stats_clear(&s);
    return 0;
}
