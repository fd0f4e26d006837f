/* The one parser of network addresses given as HOST:PORT (listen addresses, gateway connect addresses, the
 * operations endpoint). HOST is a name, an IPv4 address, an IPv6 address in brackets ("[::1]:7070"), or empty
 * (":7070", all interfaces). PORT is a decimal number 0..65535. A bare IPv6 address ("::1:7070") is refused: its
 * last colon could be part of the address. */
#ifndef TELEPACK_HOSTPORT_H
#define TELEPACK_HOSTPORT_H

#include <stddef.h>
#include <stdint.h>

#include "telepack/error.h"

/* Splits s into host (without brackets, NUL-terminated) and port. Errors: TP_ERR_INVALID_ARG (NULL arguments),
 * TP_ERR_PARSE (not HOST:PORT; a sentence naming the value and the fix goes into err), TP_ERR_FULL (the host does
 * not fit host_cap). */
tp_err tp_hostport_parse(const char *s, char *host, size_t host_cap, uint16_t *port, char *err, size_t err_cap);

#endif
