/* Regression test: while the server reads slower than the gateway queues (its socket full), the client does not
 * try a write per record. It wrote at once whenever 16 KiB were pending, and with a full socket that stayed true,
 * so every record cost a send() that failed with EAGAIN or took a few bytes (8 % of a replay's CPU); now it tries
 * again after another 16 KiB were queued (or 2 ms passed, or on pump). Every record still arrives once the peer
 * reads. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "ingest/gateway_client.h"
#include "telepack/record.h"
#include "telepack/varint.h"

enum { N = 20000 };

int main(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    int small = 4096; /* the socket fills after a few KiB */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);

    tp_gateway_client_opts o;
    tp_gateway_client_opts_init(&o);
    o.fd = sv[0];
    o.protocol = 1;
    o.max_unacked_bytes = 8u << 20; /* every record fits in the window: send never waits */
    tp_gateway_client *c = NULL;
    CHECK_ERR(tp_gateway_client_new(&o, &c), TP_OK);
    tp_record r;
    memset(&r, 0, sizeof r);
    r.latitude = 35.6;
    r.longitude = 139.7;
    for (uint32_t i = 0; i < N; i++) { /* the peer reads nothing meanwhile */
        r.vehicle_id = 1000 + i % 50;
        r.seq = i + 1;
        CHECK_ERR(tp_gateway_client_send(c, &r), TP_OK);
    }
    tp_gateway_client_stats st;
    tp_gateway_client_stats_get(c, &st);
    CHECK_INT(st.records_sent, N);
    /* ~1 MiB queued: one attempt per 16 KiB is ~65, plus one per clock tick that passed; a write per record would
     * be 20000. */
    fprintf(stderr, "%llu write calls for %d records\n", (unsigned long long)st.write_calls, N);
    CHECK(st.write_calls < N / 4);

    /* The peer reads now: pump writes the rest, and every frame arrives, in order. */
    size_t cap = 2u << 20, have = 0, at = 0;
    uint8_t *buf = malloc(cap);
    uint32_t frames = 0, in_order = 1;
    for (int spins = 0; frames < N && spins < 1000000; spins++) {
        tp_gateway_client_pump(c, 0);
        ssize_t n = read(sv[1], buf + have, cap - have);
        if (n > 0)
            have += (size_t)n;
        else if (n < 0 && errno != EAGAIN)
            break;
        uint64_t len;
        size_t used;
        while (tp_varint_decode(buf + at, have - at, &len, &used) == TP_OK && have - at >= used + len) {
            tp_record got;
            CHECK_ERR(tp_record_decode(buf + at + used, (size_t)len, &got), TP_OK);
            in_order &= got.seq == frames + 1;
            frames++;
            at += used + (size_t)len;
        }
    }
    CHECK_INT(frames, N);
    CHECK(in_order);
    free(buf);
    tp_gateway_client_free(c);
    close(sv[1]);
    return check_exit();
}
