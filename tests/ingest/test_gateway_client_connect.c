/* Regression test: a gateway client connects on its first send (gateway_client.h promises "the first send or pump
 * does"), so several clients fed by one thread without pumping, as `telepack gen --gateways N` feeds them, are all
 * connected and writing at once; before the fix only a full resend buffer or a drain connected them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "ingest/gateway_client.h"
#include "telepack/record.h"
#include "telepack/varint.h"

enum { NCLIENTS = 3 };

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&a, &al)) {
        perror("listen socket");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Reads one varint-framed record from fd within 2 s; returns its body length, or -1. */
static long read_frame(int fd, uint8_t *buf, size_t cap)
{
    size_t have = 0;
    for (;;) {
        uint64_t len = 0;
        size_t used = 0;
        if (have && tp_varint_decode(buf, have, &len, &used) == TP_OK && have >= used + len)
            return (long)len;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (have == cap || poll(&p, 1, 2000) != 1)
            return -1;
        ssize_t n = read(fd, buf + have, cap - have);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
}

int main(void)
{
    int port;
    int lfd = listen_loopback(&port);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);

    tp_gateway_client *c[NCLIENTS];
    tp_record r;
    memset(&r, 0, sizeof r);
    r.seq = 1;
    r.latitude = 35.6;
    for (int i = 0; i < NCLIENTS; i++) {
        tp_gateway_client_opts o;
        tp_gateway_client_opts_init(&o);
        o.connect = addr;
        o.protocol = 1; /* the peer below reads v1 frames */
        CHECK_ERR(tp_gateway_client_new(&o, &c[i]), TP_OK);
        r.vehicle_id = 100 + (uint64_t)i;
        CHECK_ERR(tp_gateway_client_send(c[i], &r), TP_OK); /* no pump, no drain */
        tp_gateway_client_stats st;
        tp_gateway_client_stats_get(c[i], &st);
        CHECK_INT(st.connects, 1);
    }
    /* Every client is connected and its record is on the wire without any pump. */
    uint8_t want[TP_RECORD_MAX_ENCODED];
    size_t want_len = 0;
    CHECK_ERR(tp_record_encode(&r, want, sizeof want, &want_len), TP_OK);
    for (int i = 0; i < NCLIENTS; i++) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        int ready = poll(&p, 1, 2000);
        CHECK_INT(ready, 1);
        if (ready != 1)
            break; /* no connection pending: accept would block */
        int fd = accept(lfd, NULL, NULL);
        CHECK(fd >= 0);
        if (fd < 0)
            break;
        uint8_t buf[256];
        CHECK_INT(read_frame(fd, buf, sizeof buf), (long)want_len);
        close(fd);
    }
    for (int i = 0; i < NCLIENTS; i++)
        tp_gateway_client_free(c[i]);
    close(lfd);
    return check_exit();
}
