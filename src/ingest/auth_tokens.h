/* Bearer tokens of the HTTP ingest endpoint and the TCP gateways (docs/HTTP_INGEST.md, "Token file"; docs/GATEWAY.md):
 * one token a line, each with the vehicle ids it may send for. Parsed once from a file (secrets never on the command
 * line), looked up in constant time, immutable once built (share it between threads; replace it whole to reload).
 * A store holds the tokens in force and swaps them on reload; users hold a reference for as long as they rely on a
 * token index (a request, a gateway connection), so a reload never changes what an index means under them. */
#ifndef TELEPACK_AUTH_TOKENS_H
#define TELEPACK_AUTH_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/gateway_server.h"
#include "telepack/error.h"

#define TP_AUTH_TOKEN_MIN 16     /* shortest token accepted (characters) */
#define TP_AUTH_TOKEN_MAX 256    /* longest token accepted */
#define TP_AUTH_MAX_TOKENS 4096  /* tokens per file */
#define TP_AUTH_MAX_RANGES 65536 /* vehicle ranges in a whole file */
#define TP_AUTH_MAX_LINE 65536   /* bytes of one line */

typedef struct tp_auth_tokens tp_auth_tokens;

/* Parses a token file's text[0..len):
 *
 *   # comment (a whole line; also after the token's fields)
 *   TOKEN                      may send for every vehicle
 *   TOKEN *                    the same
 *   TOKEN 1000-1999,2500       vehicles 1000..1999 and 2500 (decimal, inclusive ranges, comma-separated)
 *
 * A token is 16..256 characters of A-Z a-z 0-9 - . _ ~ + / = (RFC 6750's b64token). Blank lines are skipped, fields
 * are separated by spaces or tabs, CR before LF is ignored. Refused (TP_ERR_PARSE, msg gets "line N: ..."): a token
 * too short, too long or with another character, a duplicate token, a bad or reversed range, extra fields, a line
 * above TP_AUTH_MAX_LINE, more than TP_AUTH_MAX_TOKENS tokens or TP_AUTH_MAX_RANGES ranges, a NUL byte. A file
 * without any token is refused too. TP_ERR_NOMEM. */
tp_err tp_auth_tokens_parse(const char *text, size_t len, tp_auth_tokens **out, char *msg, size_t msg_cap);

/* Reads and parses path (at most 16 MiB); msg names the file. TP_ERR_IO when it cannot be read. */
tp_err tp_auth_tokens_load(const char *path, tp_auth_tokens **out, char *msg, size_t msg_cap);

void tp_auth_tokens_free(tp_auth_tokens *t);

size_t tp_auth_tokens_count(const tp_auth_tokens *t);

/* The index of the token equal to tok[0..len), or -1. Compares against every token in full, whatever matches, and
 * each comparison touches the same bytes whatever the input: its time depends only on the number of tokens. */
int tp_auth_tokens_find(const tp_auth_tokens *t, const char *tok, size_t len);

/* Non-zero when token `index` may send records of vehicle_id. */
int tp_auth_tokens_allows(const tp_auth_tokens *t, int index, uint64_t vehicle_id);

/* The tokens in force, reloadable (one per process: the HTTP endpoint and the gateway listener share it). */
typedef struct tp_auth_store tp_auth_store;

/* Loads path (tp_auth_tokens_load); the path is copied. */
tp_err tp_auth_store_load(const char *path, tp_auth_store **out, char *msg, size_t msg_cap);

/* Reads the file again; on success users that acquire from now on get the new tokens, else the old ones stay and
 * msg says why. Thread-safe. */
tp_err tp_auth_store_reload(tp_auth_store *s, char *msg, size_t msg_cap);

/* A reference to the tokens in force now (never NULL for a loaded store); give it back with release. Thread-safe. */
const tp_auth_tokens *tp_auth_store_acquire(tp_auth_store *s);
void tp_auth_store_release(const tp_auth_tokens *t);

const char *tp_auth_store_path(const tp_auth_store *s);

/* Fills *out with the gateway server's authentication hook over s (gateway_server.h): a connection takes a
 * reference to the tokens in force at its hello and keeps it until it closes, so a reload applies to connections
 * made after it. s must outlive the server. */
void tp_auth_store_gateway_auth(tp_auth_store *s, tp_gateway_auth *out);

/* Frees the store; tokens still referenced are freed with their last release. NULL is a no-op. */
void tp_auth_store_free(tp_auth_store *s);

#endif
