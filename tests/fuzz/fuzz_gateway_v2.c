/* Fuzz target for protocol v2 (handshake and frames): the input, after a valid v2 hello prefix chosen by its first
 * byte (with or without a token, under authentication or not), is what a gateway sends on one connection
 * (then it closes). Every record taken is completed at once, so a stream that ends cleanly must end fully acked. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingest/gateway_server.h"
#include "common/log.h"

#define MAX_TAGS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tp_batch_tag tags[MAX_TAGS];
static size_t ntags;
static uint64_t taken;

static tp_err on_record(void *ctx, const tp_record *r, size_t wire_len, const tp_batch_tag *tag)
{
    (void)ctx;
    (void)r;
    if (wire_len == 0)
        abort();
    if (ntags == MAX_TAGS)
        return TP_ERR_AGAIN; /* exercise backpressure: resumed below once the tags are completed */
    tags[ntags++] = *tag;
    taken++;
    return TP_OK;
}

static int f_find(void *ctx, const char *tok, size_t len)
{
    (void)ctx;
    return len == 16 && !memcmp(tok, "0123456789abcdef", 16) ? 0 : -1;
}

static int f_allows(void *ctx, int id, uint64_t vehicle)
{
    (void)ctx;
    (void)id;
    return vehicle % 2 == 0;
}

static const tp_gateway_auth fuzz_auth = {NULL, f_find, f_allows};

static void complete_all(tp_gateway_server *s)
{
    for (size_t i = 0; i < ntags; i++)
        tp_gateway_server_complete(s, &tags[i]);
    ntags = 0;
    tp_gateway_server_flush_acks(s);
    if (tp_gateway_server_paused(s))
        tp_gateway_server_resume(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int configured;
    if (!configured) {
        tp_log_configure(TP_LOG_ERROR, TP_LOG_TEXT);
        configured = 1;
    }
    if (size > 1 << 20)
        return 0;
    /* first byte: bit 0 = authentication on, bit 1 = prepend a valid hello (with the token when bit 0) */
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;
    static const uint8_t hello_tok[] = {0xd4, 0xd0, 0xc7, 0x57, 0x02, 0x14, 0x0a, 0x10, '0', '1', '2', '3', '4',
                                        '5',  '6',  '7',  '8',  '9',  'a',  'b',  'c',  'd',  'e',  'f',  0x18, 0x03};
    static const uint8_t hello_plain[] = {0xd4, 0xd0, 0xc7, 0x57, 0x02, 0x02, 0x18, 0x03};
    static uint8_t buf[(1 << 20) + 64];
    size_t pre = 0;
    if (mode & 2) {
        const uint8_t *h = (mode & 1) ? hello_tok : hello_plain;
        pre = (mode & 1) ? sizeof hello_tok : sizeof hello_plain;
        memcpy(buf, h, pre);
    }
    memcpy(buf + pre, data, size);
    data = buf;
    size += pre;
    tp_gateway_server_opts so;
    tp_gateway_server_opts_init(&so);
    so.auth = (mode & 1) ? &fuzz_auth : NULL;
    so.max_event_skew_ms = (mode & 4) ? -1 : so.max_event_skew_ms;
    tp_gateway_server *s;
    if (tp_gateway_server_new(&so, on_record, NULL, &s, NULL, 0) != TP_OK)
        abort();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        abort();
    ntags = 0;
    taken = 0;
    tp_gateway_server_add_fd(s, sv[0]);
    size_t off = 0;
    int closed = 0;
    uint8_t sink[4096];
    for (int round = 0; round < 100000; round++) {
        if (off < size) {
            ssize_t n = write(sv[1], data + off, size - off);
            if (n > 0)
                off += (size_t)n;
        } else if (!closed) {
            shutdown(sv[1], SHUT_WR);
            closed = 1;
        }
        tp_gateway_server_poll(s, 0);
        complete_all(s);
        while (read(sv[1], sink, sizeof sink) > 0) {
        }
        tp_gateway_server_stats st;
        tp_gateway_server_stats_get(s, &st);
        if (st.connections == 0) {
            /* closed: cleanly (then everything taken was acked) or for a violation */
            uint64_t rejected = 0;
            for (int k = 0; k < TP_GW_REJECT__COUNT; k++)
                rejected += st.rejected[k];
            if (st.closed_on_error == 0 && st.records_acked != taken + rejected)
                abort();
            if (st.records_in != taken)
                abort();
            break;
        }
    }
    close(sv[1]);
    tp_gateway_server_free(s);
    return 0;
}
