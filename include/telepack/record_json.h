/* Records as NDJSON: one JSON object per line, field names as in proto/telepack/v1/vehicle.proto. */
#ifndef TELEPACK_RECORD_JSON_H
#define TELEPACK_RECORD_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "telepack/api.h"
#include "telepack/error.h"
#include "telepack/record.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bound of tp_record_json_write's output for any record (the longest possible is about 310 bytes). */
#define TP_RECORD_JSON_MAX 384

/* Default and hard limit of one NDJSON line for tp_ndjson_reader (bytes, newline excluded). */
#define TP_NDJSON_DEFAULT_MAX_LINE (64u * 1024u)

/* Writes r as one JSON object, without a newline and without a terminating NUL, into dst[0..cap):
 *
 *   {"vehicle_id":10001,"sampled_at_ms":1767225600003,"seq":1,"latitude":35.681234,"longitude":139.767052,
 *    "speed_kmh":37.4,"heading_deg":118.2,"accuracy_m":4.5,"meter_status":"METER_STATUS_HIRED"}
 *
 * Every field is written, in field-number order. Doubles and floats are written so that they parse back to the
 * same bits: the shortest fixed-point form when one with at most 9 decimals round-trips, else %.17g (doubles) or
 * %.9g (floats). NaN and infinities are written as the strings "NaN", "Infinity", "-Infinity" and -0 as -0.0
 * (as the proto3 JSON mapping does). Integers are JSON numbers, except vehicle_id and seq above 2^63-1, which are
 * decimal strings (common JSON parsers, jansson included, reject larger integer literals). meter_status is the
 * enum name ("METER_STATUS_HIRED") for the known values and a number for others.
 * On success *out_len is the number of bytes written. TP_ERR_FULL if cap is too small (cap >= TP_RECORD_JSON_MAX
 * always suffices). Thread-safe (no state). */
TP_API tp_err tp_record_json_write(const tp_record *r, char *dst, size_t cap, size_t *out_len);

/* Parses one JSON object from text[0..len) into *out. Accepted:
 *   - the field names above or their lowerCamelCase forms (vehicleId, sampledAtMs, ...), as protobuf's JSON
 *     mapping accepts both; any other key is an error naming it (as in protobuf's JSON parser: a misspelt "lat"
 *     would otherwise read as latitude 0), unless tp_record_json_parse_flags is given TP_RECORD_JSON_IGNORE_UNKNOWN;
 *   - vehicle_id, seq (uint64) and sampled_at_ms (int64) as JSON integers or decimal strings ("18446744073709551615");
 *   - latitude .. accuracy_m as JSON numbers or strings holding a number, "NaN", "Infinity" or "-Infinity";
 *   - meter_status as an enum name or an int32 number; null for any field means its default (zero).
 * vehicle_id and sampled_at_ms are required (the record's identity); any other missing field is zero.
 * Errors: TP_ERR_PARSE with a sentence in msg[0..msg_cap) naming the field and what is wrong with it
 * ("field speed_kmh: \"fast\" is not a number; write a JSON number such as 42.5"). msg may be NULL; a message is
 * always NUL-terminated when msg_cap > 0. *out is unspecified on error. Thread-safe (no state). */
TP_API tp_err tp_record_json_parse(const char *text, size_t len, tp_record *out, char *msg, size_t msg_cap);

/* Flags of tp_record_json_parse_flags and tp_ndjson_reader_set_flags. */
#define TP_RECORD_JSON_IGNORE_UNKNOWN 1u /* skip keys that name no field (forward compatibility) */

/* tp_record_json_parse with flags (0 = the same as tp_record_json_parse). */
tp_err tp_record_json_parse_flags(const char *text, size_t len, unsigned flags, tp_record *out, char *msg,
                                  size_t msg_cap);

/* The name of a meter status ("METER_STATUS_HIRED"), or NULL for a number without a name. */
TP_API const char *tp_meter_status_name(int32_t status);

/* Parses a meter status name into *out; TP_ERR_PARSE for a name that is not one of the enum's. */
TP_API tp_err tp_meter_status_parse(const char *name, int32_t *out);

/* ---- line reader ---- */

/* Reads NDJSON records from a stdio stream, one line at a time into a reused buffer of bounded size; blank lines
 * (only spaces, tabs, CR) are skipped, a final line without a newline is accepted. Not thread-safe. */
typedef struct tp_ndjson_reader tp_ndjson_reader;

/* in is borrowed (the caller closes it after tp_ndjson_reader_free). max_line is the longest line accepted in
 * bytes, 0 for TP_NDJSON_DEFAULT_MAX_LINE. */
TP_API tp_err tp_ndjson_reader_new(FILE *in, size_t max_line, tp_ndjson_reader **out);
TP_API void tp_ndjson_reader_free(tp_ndjson_reader *r);

/* TP_RECORD_JSON_* flags for every following line (default 0: unknown keys are errors). */
void tp_ndjson_reader_set_flags(tp_ndjson_reader *r, unsigned flags);

/* Next record into *out: TP_OK, TP_ERR_END at the end of the input, TP_ERR_PARSE for a line that is too long or
 * is not a valid record (msg says which line and why: "line 17: field seq: ..."; the reader then moves on to the
 * next line, so a caller may skip bad lines), TP_ERR_IO when reading fails. */
TP_API tp_err tp_ndjson_reader_next(tp_ndjson_reader *r, tp_record *out, char *msg, size_t msg_cap);

/* The next non-blank line as raw text [*line, *line + *len) (newline and a final CR excluded; valid until the next
 * call), for readers of other record types (a run-time schema's rows, schema/dynrow.h). TP_OK, TP_ERR_END,
 * TP_ERR_PARSE for a line longer than max_line (skipped; msg says which line), TP_ERR_IO. */
tp_err tp_ndjson_reader_next_line(tp_ndjson_reader *r, const char **line, size_t *len, char *msg, size_t msg_cap);

/* Number of the line last read (1-based) and the input bytes consumed so far. */
TP_API uint64_t tp_ndjson_reader_line(const tp_ndjson_reader *r);
TP_API uint64_t tp_ndjson_reader_bytes(const tp_ndjson_reader *r);

#ifdef __cplusplus
}
#endif
#endif
