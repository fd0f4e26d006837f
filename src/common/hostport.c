/* HOST:PORT parsing (see hostport.h). */
#include "common/hostport.h"

#include <string.h>

#include "common/errbuf.h"

static unsigned long strtoul_digits(const char *s)
{
    unsigned long v = 0;
    for (; *s; s++)
        v = v * 10 + (unsigned long)(*s - '0');
    return v;
}

tp_err tp_hostport_parse(const char *s, char *host, size_t host_cap, uint16_t *port, char *err, size_t err_cap)
{
    if (!s || !host || !host_cap || !port)
        return TP_ERR_INVALID_ARG;
    host[0] = '\0';
    const char *hs = s, *he, *ps;
    if (*s == '[') {
        hs = s + 1;
        he = strchr(hs, ']');
        if (!he || he[1] != ':' || he == hs) {
            tp_errf(err, err_cap, "'%s' is not [IPV6-ADDRESS]:PORT (e.g. [::1]:7070)", s);
            return TP_ERR_PARSE;
        }
        ps = he + 2;
    } else {
        he = strrchr(s, ':');
        if (!he) {
            tp_errf(err, err_cap, "'%s' has no port: give HOST:PORT (e.g. 127.0.0.1:7070, or :7070 for all "
                    "interfaces)", s);
            return TP_ERR_PARSE;
        }
        if (memchr(s, ':', (size_t)(he - s))) {
            tp_errf(err, err_cap, "'%s' is ambiguous: write an IPv6 address in brackets, e.g. [%.*s]:%s", s,
                    (int)(he - s), s, he + 1);
            return TP_ERR_PARSE;
        }
        ps = he + 1;
    }
    unsigned long p = 0;
    size_t pl = strlen(ps);
    if (pl == 0 || pl > 5 || strspn(ps, "0123456789") != pl || (p = strtoul_digits(ps)) > 65535) {
        tp_errf(err, err_cap, "'%s': the port '%s' is not a number from 0 to 65535", s, ps);
        return TP_ERR_PARSE;
    }
    size_t hl = (size_t)(he - hs);
    if (hl >= host_cap) {
        tp_errf(err, err_cap, "'%s': the host is longer than %zu bytes", s, host_cap - 1);
        return TP_ERR_FULL;
    }
    memcpy(host, hs, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return TP_OK;
}
