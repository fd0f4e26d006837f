/* The bigquery warehouse (work in progress). */
#include "warehouse_impl.h"

static tp_err op_open(tp_warehouse *w, const char *rest)
{
    (void)rest;
    return tp_wh_fail(w, TP_ERR_INVALID_ARG, "the bigquery warehouse is not built yet");
}
static tp_err op_ensure(tp_warehouse *w) { (void)w; return TP_ERR_INVALID_ARG; }
static tp_err op_load(tp_warehouse *w, const tp_row_batch *r, const char *t, const tp_partition_offset *o, size_t n)
{
    (void)w; (void)r; (void)t; (void)o; (void)n;
    return TP_ERR_INVALID_ARG;
}
static tp_err op_off(tp_warehouse *w, const char *t, int32_t p, int64_t *n) { (void)w; (void)t; (void)p; *n = -1; return TP_OK; }
static tp_err op_ping(tp_warehouse *w) { (void)w; return TP_ERR_INVALID_ARG; }
static void op_close(tp_warehouse *w) { (void)w; }
const tp_wh_ops tp_wh_bigquery_ops = {"bigquery", op_open, op_ensure, op_load, op_off, op_ping, op_close};
