/* `telepack schema`: loads a message type from a FileDescriptorSet and prints its flattened columns, roles and
 * fingerprint; optionally decodes protobuf messages of that type to NDJSON (and re-encodes them), or compares the
 * schema with another descriptor set. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "common/log.h"
#include "schema/dynrow.h"
#include "schema/schema.h"
#include "schema/schema_dir.h"
#include "telepack/varint.h"

#define MAX_FILE (64u << 20)

static const char usage_text[] =
    "Usage: telepack schema --schema FILE --message NAME [OPTIONS]\n"
    "\n"
    "Loads the protobuf message type NAME (full name with its package, e.g. fleet.ev.v1.EvTelemetry) from FILE, a\n"
    "FileDescriptorSet written by `protoc --include_imports --descriptor_set_out=FILE x.proto`, and prints one\n"
    "line per flattened column (nested messages give a_b names; docs/SCHEMA.md has the type map), the roles and\n"
    "the schema fingerprint.\n"
    "\n"
    "Roles (default: key vehicle_id, vin, vehicle or device_id; time the first Timestamp or *_ms/_us/_ns/_s\n"
    "integer; identity key + time + seq if present):\n"
    "  --key COLUMN           the vehicle: an integer or string column\n"
    "  --time COLUMN          the event time: a Timestamp or an integer column\n"
    "  --time-unit UNIT       s, ms, us or ns for an integer time (default: from the name's suffix)\n"
    "  --identity A,B,...     identity columns besides key and time (default: seq if present)\n"
    "\n"
    "Other views:\n"
    "  --normal-form          print the normalized form the fingerprint hashes, instead of the columns\n"
    "  --compare FILE         compare with the same message in another descriptor set (FILE = the reader's):\n"
    "                         prints identical, compatible or incompatible with the reason\n"
    "  --schema-dir DIR       the versions of the message in DIR as `sink --schema FILE --schema-dir DIR` finds\n"
    "                         them: one line each, sorted by file: fingerprint, file, and identical, compatible\n"
    "                         or incompatible (with the reason) against FILE as the reader\n"
    "  --decode FILE          decode protobuf messages from FILE ('-' = stdin) to NDJSON on stdout: one message,\n"
    "                         or varint-delimited messages with --delimited\n"
    "  --delimited            FILE holds varint-delimited messages\n"
    "  --proto-names          NDJSON keys as the .proto names instead of lowerCamelCase\n"
    "  --reencode FILE        with --decode: write the messages encoded again (same framing) to FILE\n"
    "  -h, --help             this text\n"
    "\n"
    "Exit status: 0 on success (and for identical or compatible schemas), 1 when --compare (or a version in\n"
    "--schema-dir) is incompatible\n"
    "or output fails, 2 for bad options, a refused schema or a message that does not decode.\n";

enum { OPT_SCHEMA = 256, OPT_MESSAGE, OPT_KEY, OPT_TIME, OPT_TIME_UNIT, OPT_IDENTITY, OPT_NORMAL, OPT_COMPARE,
       OPT_DECODE, OPT_DELIMITED, OPT_PROTO_NAMES, OPT_REENCODE, OPT_SCHEMA_DIR };

/* Reads a whole file ("-" = stdin) of at most MAX_FILE bytes; NULL with errno set (EFBIG when too large). */
static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = tp_cli_open_in(path);
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            if (cap >= MAX_FILE) {
                free(buf);
                buf = NULL;
                errno = EFBIG;
                break;
            }
            uint8_t *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    bool bad = buf && ferror(f);
    tp_cli_close(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    *len = n;
    return buf;
}

static int load(const char *path, const char *message, tp_schema **out)
{
    size_t len = 0;
    uint8_t *src = read_all(path, &len);
    if (!src) {
        fprintf(stderr, "telepack schema: cannot read %s: %s\n", path, strerror(errno));
        return 2;
    }
    char err[512];
    tp_err rc = tp_schema_load(src, len, message, out, err, sizeof err);
    free(src);
    if (rc) {
        fprintf(stderr, "telepack schema: %s: %s\n", path, err[0] ? err : tp_strerror(rc));
        return 2;
    }
    return 0;
}

static void print_columns(const tp_schema *s)
{
    printf("message %s\n", tp_schema_message_name(s));
    printf("%-4s %-28s %-10s %-9s %s\n", "#", "column", "type", "label", "field numbers / notes");
    for (size_t i = 0; i < tp_schema_column_count(s); i++) {
        const tp_schema_column *c = tp_schema_column_at(s, i);
        char nums[96];
        size_t n = 0;
        for (size_t k = 0; k < c->depth && n < sizeof nums; k++)
            n += (size_t)snprintf(nums + n, sizeof nums - n, "%s%u", k ? "." : "", c->numbers[k]);
        printf("%-4zu %-28s %-10s %-9s %s%s%s%s\n", i, c->name, tp_pb_type_name(c->type), tp_col_label_name(c->label),
               nums, c->packed ? " packed" : "", c->enum_type ? " enum " : "",
               c->enum_type ? c->enum_type->full_name : "");
    }
    const tp_schema_roles *r = tp_schema_get_roles(s);
    printf("key: %s\n", r->key >= 0 ? tp_schema_column_at(s, (size_t)r->key)->name : "(none)");
    if (r->time >= 0)
        printf("time: %s (%s)\n", tp_schema_column_at(s, (size_t)r->time)->name, tp_time_unit_name(r->time_unit));
    else
        printf("time: (none)\n");
    printf("identity:");
    for (size_t i = 0; i < r->identity_count; i++)
        printf(" %s", tp_schema_column_at(s, (size_t)r->identity[i])->name);
    printf("%s\nfingerprint: %s\n", r->identity_count ? "" : " (none: give --key and --time)",
           tp_schema_fingerprint_hex(s));
}

/* Decodes the messages of src to NDJSON on stdout (and re-encoded to `re`). Returns the exit status. */
static int decode(const tp_schema *s, const uint8_t *src, size_t len, bool delimited, int flags, FILE *re)
{
    tp_dyn_batch *b = NULL;
    tp_dyn_text text = {0};
    uint8_t *enc = malloc(MAX_FILE);
    int status = 0;
    if (!enc || tp_dyn_batch_new(s, 1, MAX_FILE, &b)) {
        fprintf(stderr, "telepack schema: out of memory\n");
        free(enc);
        return 1;
    }
    size_t pos = 0, index = 0;
    while (pos < len || (!delimited && index == 0)) {
        size_t n = len - pos, used = 0;
        if (delimited) {
            uint64_t v;
            if (tp_varint_decode(src + pos, len - pos, &v, &used) || v > len - pos - used) {
                fprintf(stderr, "telepack schema: message %zu at byte %zu: the length prefix is cut short or runs "
                                "past the end of the input\n", index, pos);
                status = 2;
                break;
            }
            n = (size_t)v;
        }
        tp_dyn_batch_clear(b);
        tp_err rc = tp_dyn_decode(b, src + pos + used, n);
        if (rc) {
            fprintf(stderr, "telepack schema: message %zu (input byte %zu) does not decode as %s: %s (%s)\n", index,
                    pos, tp_schema_message_name(s), b->error, tp_strerror(rc));
            status = 2;
            break;
        }
        text.len = 0;
        if (tp_dyn_row_json(b, 0, flags, &text)) {
            fprintf(stderr, "telepack schema: out of memory\n");
            status = 1;
            break;
        }
        fwrite(text.p, 1, text.len, stdout);
        if (re) {
            size_t elen;
            if (tp_dyn_encode(b, 0, enc, MAX_FILE, &elen)) {
                fprintf(stderr, "telepack schema: message %zu does not fit %u bytes once re-encoded\n", index,
                        MAX_FILE);
                status = 1;
                break;
            }
            if (delimited) {
                uint8_t pre[TP_VARINT_MAX_BYTES];
                fwrite(pre, 1, tp_varint_encode(elen, pre), re);
            }
            fwrite(enc, 1, elen, re);
        }
        if (b->unknown_fields)
            fprintf(stderr, "telepack schema: message %zu: %llu unknown field(s) skipped\n", index,
                    (unsigned long long)b->unknown_fields);
        pos += used + n;
        index++;
    }
    tp_dyn_text_free(&text);
    tp_dyn_batch_free(b);
    free(enc);
    return status;
}

typedef struct dir_line {
    const char *file;
    const tp_schema *schema;
} dir_line;

static int by_file(const void *a, const void *b)
{
    return strcmp(((const dir_line *)a)->file, ((const dir_line *)b)->file);
}

/* --schema-dir: each version of the message in dir against the reader s, sorted by file name. Returns the exit
 * status: 1 when a version is incompatible, 2 when the directory cannot be read. */
static int list_dir(const tp_schema *s, const char *dir)
{
    char err[512];
    tp_schema_dir *d = NULL;
    tp_log_configure(TP_LOG_WARN, TP_LOG_TEXT); /* the files skipped, not the versions the lines list */
    if (tp_schema_dir_open(dir, tp_schema_message_name(s), 0, &d, err, sizeof err)) {
        fprintf(stderr, "telepack schema: --schema-dir: %s\n", err);
        return 2;
    }
    size_t n = tp_schema_dir_count(d);
    dir_line *lines = calloc(n ? n : 1, sizeof *lines);
    if (!lines) {
        tp_schema_dir_free(d);
        fprintf(stderr, "telepack schema: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        lines[i].schema = tp_schema_dir_at(d, i, &lines[i].file);
    qsort(lines, n, sizeof *lines, by_file);
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        char why[512] = "";
        tp_schema_compat k = tp_schema_compare(lines[i].schema, s, why, sizeof why);
        printf("%s\t%s\t%s%s%s\n", tp_schema_fingerprint_hex(lines[i].schema), lines[i].file,
               k == TP_SCHEMA_IDENTICAL ? "identical" : k == TP_SCHEMA_COMPATIBLE ? "compatible" : "incompatible",
               why[0] ? ": " : "", why);
        if (k == TP_SCHEMA_INCOMPATIBLE)
            status = 1;
    }
    free(lines);
    tp_schema_dir_free(d);
    return status;
}

int tp_cmd_schema(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"schema", required_argument, NULL, OPT_SCHEMA},       {"message", required_argument, NULL, OPT_MESSAGE},
        {"key", required_argument, NULL, OPT_KEY},             {"time", required_argument, NULL, OPT_TIME},
        {"time-unit", required_argument, NULL, OPT_TIME_UNIT}, {"identity", required_argument, NULL, OPT_IDENTITY},
        {"normal-form", no_argument, NULL, OPT_NORMAL},        {"compare", required_argument, NULL, OPT_COMPARE},
        {"decode", required_argument, NULL, OPT_DECODE},       {"delimited", no_argument, NULL, OPT_DELIMITED},
        {"proto-names", no_argument, NULL, OPT_PROTO_NAMES},   {"reencode", required_argument, NULL, OPT_REENCODE},
        {"schema-dir", required_argument, NULL, OPT_SCHEMA_DIR},
        {"help", no_argument, NULL, 'h'},                      {NULL, 0, NULL, 0},
    };
    const char *schema_path = NULL, *message = NULL, *key = NULL, *time = NULL, *unit = NULL, *identity = NULL;
    const char *compare = NULL, *decode_path = NULL, *reencode = NULL, *schema_dir = NULL;
    bool normal = false, delimited = false;
    int flags = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SCHEMA: schema_path = optarg; break;
        case OPT_MESSAGE: message = optarg; break;
        case OPT_KEY: key = optarg; break;
        case OPT_TIME: time = optarg; break;
        case OPT_TIME_UNIT: unit = optarg; break;
        case OPT_IDENTITY: identity = optarg; break;
        case OPT_NORMAL: normal = true; break;
        case OPT_COMPARE: compare = optarg; break;
        case OPT_DECODE: decode_path = optarg; break;
        case OPT_DELIMITED: delimited = true; break;
        case OPT_PROTO_NAMES: flags |= TP_DYN_JSON_PROTO_NAMES; break;
        case OPT_REENCODE: reencode = optarg; break;
        case OPT_SCHEMA_DIR: schema_dir = optarg; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case ':': return tp_cli_usage_error("schema", "%s needs a value", argv[optind - 1]);
        default: return tp_cli_usage_error("schema", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return tp_cli_usage_error("schema", "unexpected argument '%s'", argv[optind]);
    if (!schema_path || !message)
        return tp_cli_usage_error("schema", "--schema FILE and --message NAME are both required");
    if (reencode && !decode_path)
        return tp_cli_usage_error("schema", "--reencode needs --decode");
    tp_schema *s = NULL;
    int status = load(schema_path, message, &s);
    if (status)
        return status;
    if (key || time || unit || identity) {
        const tp_schema_roles *r = tp_schema_get_roles(s);
        const char *ids[TP_SCHEMA_MAX_IDENTITY + 1];
        size_t nids = 0;
        char list[1024], err[512];
        if (identity) {
            snprintf(list, sizeof list, "%s", identity);
            for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
                if (nids <= TP_SCHEMA_MAX_IDENTITY)
                    ids[nids++] = tok;
        }
        if (!key && r->key >= 0)
            key = tp_schema_column_at(s, (size_t)r->key)->name;
        if (!time && r->time >= 0)
            time = tp_schema_column_at(s, (size_t)r->time)->name;
        if (tp_schema_set_roles(s, key, time, unit, identity ? ids : NULL, nids, err, sizeof err)) {
            tp_schema_free(s);
            return tp_cli_usage_error("schema", "%s", err);
        }
    }
    if (compare) {
        tp_schema *other = NULL;
        status = load(compare, message, &other);
        if (!status) {
            char why[512];
            tp_schema_compat k = tp_schema_compare(s, other, why, sizeof why);
            printf("%s%s%s\n", k == TP_SCHEMA_IDENTICAL ? "identical" : k == TP_SCHEMA_COMPATIBLE ? "compatible"
                                                                                                  : "incompatible",
                   why[0] ? ": " : "", why);
            status = k == TP_SCHEMA_INCOMPATIBLE ? 1 : 0;
        }
        tp_schema_free(other);
    } else if (schema_dir) {
        status = list_dir(s, schema_dir);
    } else if (decode_path) {
        size_t len = 0;
        uint8_t *src = read_all(decode_path, &len);
        FILE *re = NULL;
        if (!src) {
            fprintf(stderr, "telepack schema: cannot read %s: %s\n", decode_path, strerror(errno));
            status = 2;
        } else if (reencode && !(re = tp_cli_open_out(reencode))) {
            fprintf(stderr, "telepack schema: cannot write %s: %s\n", reencode, strerror(errno));
            status = 1;
        } else {
            status = decode(s, src, len, delimited, flags, re);
            if (re && tp_cli_close(re) && !status) {
                fprintf(stderr, "telepack schema: writing %s failed: %s\n", reencode, strerror(errno));
                status = 1;
            }
        }
        free(src);
    } else if (normal) {
        fputs(tp_schema_normal_form(s), stdout);
    } else {
        print_columns(s);
    }
    tp_schema_free(s);
    if (fflush(stdout) && !status)
        status = 1;
    return status;
}
