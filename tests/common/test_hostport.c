/* tp_hostport_parse: names, IPv4, bracketed IPv6, empty host; ports at the boundaries; a bare IPv6 address refused
 * with a message that shows the bracketed form; every garbage form refused with a sentence naming the value. */
#include "check.h"
#include "common/hostport.h"

static void good(const char *s, const char *want_host, unsigned want_port)
{
    char host[64], err[128] = "";
    uint16_t port = 1;
    CHECK_ERR(tp_hostport_parse(s, host, sizeof host, &port, err, sizeof err), TP_OK);
    CHECK_STR(host, want_host);
    CHECK_INT(port, want_port);
    CHECK_STR(err, "");
}

static void bad(const char *s, const char *want_msg)
{
    char host[64], err[160] = "";
    uint16_t port = 1;
    CHECK_ERR(tp_hostport_parse(s, host, sizeof host, &port, err, sizeof err), TP_ERR_PARSE);
    CHECK_STR(err, want_msg);
    CHECK_INT(port, 1);
}

int main(void)
{
    good("127.0.0.1:7070", "127.0.0.1", 7070);
    good("localhost:0", "localhost", 0);
    good(":65535", "", 65535);
    good("[::1]:7070", "::1", 7070);
    good("[fe80::1%eth0]:1", "fe80::1%eth0", 1);
    good("h:00080", "h", 80);

    bad("::1:7070", "'::1:7070' is ambiguous: write an IPv6 address in brackets, e.g. [::1]:7070");
    bad("fe80::2:80", "'fe80::2:80' is ambiguous: write an IPv6 address in brackets, e.g. [fe80::2]:80");
    bad("localhost", "'localhost' has no port: give HOST:PORT (e.g. 127.0.0.1:7070, or :7070 for all interfaces)");
    bad("", "'' has no port: give HOST:PORT (e.g. 127.0.0.1:7070, or :7070 for all interfaces)");
    bad("h:", "'h:': the port '' is not a number from 0 to 65535");
    bad("h:65536", "'h:65536': the port '65536' is not a number from 0 to 65535");
    bad("h:123456", "'h:123456': the port '123456' is not a number from 0 to 65535");
    bad("h:-1", "'h:-1': the port '-1' is not a number from 0 to 65535");
    bad("h:+1", "'h:+1': the port '+1' is not a number from 0 to 65535");
    bad("h:12a", "'h:12a': the port '12a' is not a number from 0 to 65535");
    bad("h: 80", "'h: 80': the port ' 80' is not a number from 0 to 65535");
    bad("[::1:80", "'[::1:80' is not [IPV6-ADDRESS]:PORT (e.g. [::1]:7070)");
    bad("[::1]80", "'[::1]80' is not [IPV6-ADDRESS]:PORT (e.g. [::1]:7070)");
    bad("[]:80", "'[]:80' is not [IPV6-ADDRESS]:PORT (e.g. [::1]:7070)");
    bad("[::1]:", "'[::1]:': the port '' is not a number from 0 to 65535");

    /* The host must fit; NULL arguments; a NULL error buffer is allowed. */
    char tiny[4];
    uint16_t port;
    CHECK_ERR(tp_hostport_parse("example.com:80", tiny, sizeof tiny, &port, NULL, 0), TP_ERR_FULL);
    CHECK_ERR(tp_hostport_parse("abc:80", tiny, sizeof tiny, &port, NULL, 0), TP_OK);
    CHECK_STR(tiny, "abc");
    CHECK_ERR(tp_hostport_parse(NULL, tiny, sizeof tiny, &port, NULL, 0), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_hostport_parse("a:1", NULL, 8, &port, NULL, 0), TP_ERR_INVALID_ARG);
    CHECK_ERR(tp_hostport_parse("a:1", tiny, sizeof tiny, NULL, NULL, 0), TP_ERR_INVALID_ARG);
    return check_exit();
}
