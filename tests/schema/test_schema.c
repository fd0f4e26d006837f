/* The schema loader: flattening and the type map of fleet.ev.v1.EvTelemetry, what is refused (with the field named),
 * hostile descriptor sets (truncated, bad lengths, huge counts, deep nesting, unknown types), roles and their errors,
 * fingerprint stability and compatibility. Argument: the build directory holding the descriptor sets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "schema/schema.h"

static const char *dir;

static uint8_t *slurp(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    uint8_t *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static tp_schema *load(const char *file, const char *message, char *err, size_t cap, tp_err *rc)
{
    size_t len;
    uint8_t *src = slurp(file, &len);
    tp_schema *s = NULL;
    *rc = tp_schema_load(src, len, message, &s, err, cap);
    free(src);
    return s;
}

static tp_schema *load_ok(const char *file, const char *message)
{
    char err[512];
    tp_err rc;
    tp_schema *s = load(file, message, err, sizeof err, &rc);
    if (rc)
        fprintf(stderr, "loading %s from %s: %s\n", message, file, err);
    CHECK_ERR(rc, TP_OK);
    return s;
}

/* Loading must fail with rc and a sentence holding `needle`. */
static void refused(const char *file, const char *message, tp_err want, const char *needle)
{
    char err[512] = "";
    tp_err rc;
    tp_schema *s = load(file, message, err, sizeof err, &rc);
    CHECK_ERR(rc, want);
    CHECK(s == NULL);
    if (!strstr(err, needle)) {
        fprintf(stderr, "%s: error \"%s\" does not mention \"%s\"\n", message, err, needle);
        CHECK(0);
    }
}

static void test_flatten_ev(void)
{
    tp_schema *s = load_ok("ev_telemetry.pb", "fleet.ev.v1.EvTelemetry");
    if (!s)
        return;
    CHECK_STR(tp_schema_message_name(s), "fleet.ev.v1.EvTelemetry");
    CHECK_INT(tp_schema_column_count(s), 24);
    static const struct {
        const char *name, *path, *json;
        tp_pb_type type;
        tp_col_kind kind;
        tp_col_label label;
        int packed;
    } want[] = {
        {"vin", "vin", "vin", TP_PB_STRING, TP_COL_STRING, TP_LABEL_IMPLICIT, 0},
        {"recorded_at", "recorded_at", "recordedAt", TP_PB_TIMESTAMP, TP_COL_TIMESTAMP_NS, TP_LABEL_OPTIONAL, 0},
        {"seq", "seq", "seq", TP_PB_UINT64, TP_COL_U64, TP_LABEL_IMPLICIT, 0},
        {"battery_state_of_charge_pct", "battery.state_of_charge_pct", "battery.stateOfChargePct", TP_PB_FLOAT,
         TP_COL_F32, TP_LABEL_IMPLICIT, 0},
        {"battery_pack_voltage_v", "battery.pack_voltage_v", "battery.packVoltageV", TP_PB_FLOAT, TP_COL_F32,
         TP_LABEL_IMPLICIT, 0},
        {"battery_min_cell_temp_dc", "battery.min_cell_temp_dc", "battery.minCellTempDc", TP_PB_SINT32, TP_COL_I64,
         TP_LABEL_IMPLICIT, 0},
        {"battery_max_cell_temp_dc", "battery.max_cell_temp_dc", "battery.maxCellTempDc", TP_PB_SINT32, TP_COL_I64,
         TP_LABEL_IMPLICIT, 0},
        {"battery_cell_voltages_v", "battery.cell_voltages_v", "battery.cellVoltagesV", TP_PB_FLOAT, TP_COL_F32,
         TP_LABEL_REPEATED, 1},
        {"battery_current_a", "battery.current_a", "battery.currentA", TP_PB_DOUBLE, TP_COL_F64, TP_LABEL_OPTIONAL, 0},
        {"drive_state", "drive_state", "driveState", TP_PB_ENUM, TP_COL_I64, TP_LABEL_IMPLICIT, 0},
        {"odometer_m", "odometer_m", "odometerM", TP_PB_INT64, TP_COL_I64, TP_LABEL_IMPLICIT, 0},
        {"raw_frame", "raw_frame", "rawFrame", TP_PB_BYTES, TP_COL_BYTES, TP_LABEL_IMPLICIT, 0},
        {"can_wheel_speed_fl", "can.wheel_speed_fl", "can.wheelSpeedFl", TP_PB_UINT32, TP_COL_U64, TP_LABEL_IMPLICIT, 0},
        {"can_brake_flags", "can.brake_flags", "can.brakeFlags", TP_PB_FIXED32, TP_COL_U64, TP_LABEL_IMPLICIT, 0},
        {"can_torque_nmm", "can.torque_nmm", "can.torqueNmm", TP_PB_SFIXED64, TP_COL_I64, TP_LABEL_IMPLICIT, 0},
        {"can_hv_interlock", "can.hv_interlock", "can.hvInterlock", TP_PB_BOOL, TP_COL_BOOL, TP_LABEL_IMPLICIT, 0},
        {"trip_deltas", "trip_deltas", "tripDeltas", TP_PB_SINT64, TP_COL_I64, TP_LABEL_REPEATED, 1},
        {"fault_codes", "fault_codes", "faultCodes", TP_PB_UINT32, TP_COL_U64, TP_LABEL_REPEATED, 0},
        {"ecu_serial", "ecu_serial", "ecuSerial", TP_PB_FIXED64, TP_COL_U64, TP_LABEL_IMPLICIT, 0},
        {"ambient_temp_c", "ambient_temp_c", "ambientTempC", TP_PB_INT32, TP_COL_I64, TP_LABEL_IMPLICIT, 0},
        {"altitude_dm", "altitude_dm", "altitudeDm", TP_PB_SFIXED32, TP_COL_I64, TP_LABEL_IMPLICIT, 0},
        {"flags", "flags", "flags", TP_PB_UINT64, TP_COL_U64, TP_LABEL_IMPLICIT, 0},
        {"tags", "tags", "tags", TP_PB_STRING, TP_COL_STRING, TP_LABEL_REPEATED, 0},
        {"latitude", "latitude", "latitude", TP_PB_DOUBLE, TP_COL_F64, TP_LABEL_IMPLICIT, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0] && i < tp_schema_column_count(s); i++) {
        const tp_schema_column *c = tp_schema_column_at(s, i);
        CHECK_STR(c->name, want[i].name);
        CHECK_STR(c->path, want[i].path);
        CHECK_STR(c->json_path, want[i].json);
        CHECK_INT(c->type, want[i].type);
        CHECK_INT(c->kind, want[i].kind);
        CHECK_INT(c->label, want[i].label);
        CHECK_INT(c->packed, want[i].packed);
    }
    const tp_schema_column *bat = tp_schema_column_at(s, 4);
    CHECK_INT(bat->depth, 2);
    CHECK_INT(bat->numbers[0], 4);
    CHECK_INT(bat->numbers[1], 2);
    const tp_schema_column *ds = tp_schema_column_at(s, 9);
    CHECK(ds->enum_type != NULL);
    if (ds->enum_type) {
        CHECK_STR(ds->enum_type->full_name, "fleet.ev.v1.DriveState");
        CHECK_INT(ds->enum_type->count, 4);
        CHECK_STR(ds->enum_type->names[3], "DRIVE_STATE_CHARGING");
        CHECK_INT(ds->enum_type->numbers[3], 3);
    }
    CHECK_INT(tp_schema_find(s, "battery_current_a"), 8);
    CHECK_INT(tp_schema_find(s, "battery.current_a"), 8);
    CHECK_INT(tp_schema_find(s, "nope"), -1);
    tp_schema_free(s);

    /* A leading dot is accepted, as in type names. */
    s = load_ok("ev_telemetry.pb", ".fleet.ev.v1.EvTelemetry");
    tp_schema_free(s);
}

static void test_refused(void)
{
    refused("refused.pb", "refused.v1.WithMap", TP_ERR_INVALID_ARG, "field counters is a map");
    refused("refused.pb", "refused.v1.WithOneof", TP_ERR_INVALID_ARG, "field a is part of a oneof");
    refused("refused.pb", "refused.v1.Node", TP_ERR_INVALID_ARG, "field next makes message refused.v1.Node contain");
    refused("refused.pb", "refused.v1.Ping", TP_ERR_INVALID_ARG, "field pong.ping makes message refused.v1.Ping");
    refused("refused.pb", "refused.v1.RepeatedMessage", TP_ERR_INVALID_ARG, "field leaves is a repeated message");
    refused("refused.pb", "refused.v1.Collide", TP_ERR_INVALID_ARG, "flatten to the column name a_b");
    refused("refused.pb", "refused.v1.Empty", TP_ERR_INVALID_ARG, "has no fields");
    refused("refused.pb", "refused.v1.D1", TP_ERR_INVALID_ARG, "nests messages more than 8 deep");
    refused("refused.pb", "refused.v1.Nope", TP_ERR_INVALID_ARG, "no message named refused.v1.Nope");
    refused("refused.pb", "Leaf", TP_ERR_INVALID_ARG, "no message named Leaf");
    refused("refused2.pb", "refused.v2.WithGroup", TP_ERR_INVALID_ARG, "field sample is a group");
    refused("refused2.pb", "refused.v2.Extendable", TP_ERR_INVALID_ARG, "extension extra extends refused.v2.Extendable");
    /* A map's entry type is not a message to decode either. */
    refused("refused.pb", "refused.v1.WithMap.CountersEntry", TP_ERR_INVALID_ARG, "is a map entry");

    tp_schema *s = load_ok("refused.pb", "refused.v1.D2ok");
    if (s) {
        CHECK_INT(tp_schema_column_count(s), 1);
        CHECK_STR(tp_schema_column_at(s, 0)->name, "d_d_d_d_d_d_d_x");
        CHECK_INT(tp_schema_column_at(s, 0)->depth, 8);
    }
    tp_schema_free(s);
    s = load_ok("refused.pb", "refused.v1.Accepted");
    if (s) {
        CHECK_INT(tp_schema_column_count(s), 4);
        CHECK_INT(tp_schema_column_at(s, 0)->label, TP_LABEL_OPTIONAL); /* proto3 optional */
        CHECK_STR(tp_schema_column_at(s, 1)->name, "first_x");
        CHECK_STR(tp_schema_column_at(s, 2)->name, "second_x");
        CHECK_STR(tp_schema_column_at(s, 3)->name, "inner_at_ms");
    }
    tp_schema_free(s);
    s = load_ok("refused2.pb", "refused.v2.Legacy");
    if (s) {
        CHECK_INT(tp_schema_column_at(s, 0)->label, TP_LABEL_REQUIRED);
        CHECK_INT(tp_schema_column_at(s, 1)->label, TP_LABEL_OPTIONAL);
        CHECK_INT(tp_schema_column_at(s, 3)->packed, 0); /* proto2 repeated: unpacked unless [packed = true] */
        CHECK_INT(tp_schema_column_at(s, 4)->packed, 1);
        const tp_schema_roles *r = tp_schema_get_roles(s);
        CHECK_INT(r->key, 0);
        CHECK_INT(r->time, 1);
        CHECK_INT(r->time_unit, TP_TIME_US);
    }
    tp_schema_free(s);
}

/* ---- hand-made descriptor sets ---- */

typedef struct pb {
    uint8_t *p;
    size_t len, cap;
} pb;

static void pb_bytes(pb *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void pb_varint(pb *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    pb_bytes(b, t, n);
}

static void pb_uint(pb *b, uint32_t num, uint64_t v)
{
    pb_varint(b, (uint64_t)num << 3);
    pb_varint(b, v);
}

static void pb_len(pb *b, uint32_t num, const void *src, size_t n)
{
    pb_varint(b, (uint64_t)num << 3 | 2);
    pb_varint(b, n);
    pb_bytes(b, src, n);
}

static void pb_str(pb *b, uint32_t num, const char *s) { pb_len(b, num, s, strlen(s)); }

static void pb_sub(pb *b, uint32_t num, pb *sub)
{
    pb_len(b, num, sub->p, sub->len);
    free(sub->p);
    *sub = (pb){0};
}

/* A field: name, number, label optional, type, type_name. */
static void add_field(pb *msg, const char *name, uint32_t number, int type, const char *type_name)
{
    pb f = {0};
    pb_str(&f, 1, name);
    pb_uint(&f, 3, number);
    pb_uint(&f, 4, 1);
    pb_uint(&f, 5, (uint64_t)type);
    if (type_name)
        pb_str(&f, 6, type_name);
    pb_sub(msg, 2, &f);
}

/* A set with one proto3 file "t.proto", package "t", holding the messages given as serialized DescriptorProtos. */
static void wrap_set(pb *set, pb *msgs, size_t n)
{
    pb file = {0};
    pb_str(&file, 1, "t.proto");
    pb_str(&file, 2, "t");
    for (size_t i = 0; i < n; i++)
        pb_sub(&file, 4, &msgs[i]);
    pb_str(&file, 12, "proto3");
    pb_sub(set, 1, &file);
}

static tp_err load_bytes(const pb *set, const char *message, char *err, size_t cap)
{
    /* Exact-size copy so ASan sees any read past the end. */
    uint8_t *copy = malloc(set->len ? set->len : 1);
    if (set->len)
        memcpy(copy, set->p, set->len);
    tp_schema *s = NULL;
    tp_err rc = tp_schema_load(copy, set->len, message, &s, err, cap);
    free(copy);
    tp_schema_free(s);
    return rc;
}

static void check_err(const pb *set, const char *message, tp_err want, const char *needle)
{
    char err[512] = "";
    CHECK_ERR(load_bytes(set, message, err, sizeof err), want);
    if (!strstr(err, needle)) {
        fprintf(stderr, "error \"%s\" does not mention \"%s\"\n", err, needle);
        CHECK(0);
    }
}

static void test_hostile(void)
{
    char err[512];
    /* Truncated at every length, and every byte flipped: never a crash or a leak, and a truncated real set that
     * still parses is impossible here except at file boundaries (there is one file). */
    size_t len;
    uint8_t *real = slurp("ev_telemetry.pb", &len);
    pb whole = {real, len, len};
    int ok_prefixes = 0;
    for (size_t n = 0; n < len; n++) {
        pb cut = {real, n, n};
        if (load_bytes(&cut, "fleet.ev.v1.EvTelemetry", err, sizeof err) == TP_OK)
            ok_prefixes++;
    }
    /* Prefixes ending right after the Timestamp's file only lack fleet.ev.v1 types, so all fail. */
    CHECK_INT(ok_prefixes, 0);
    CHECK_ERR(load_bytes(&whole, "fleet.ev.v1.EvTelemetry", err, sizeof err), TP_OK);
    for (size_t i = 0; i < len; i++) {
        uint8_t *m = malloc(len);
        memcpy(m, real, len);
        m[i] ^= 0xff;
        pb mut = {m, len, len};
        tp_err rc = load_bytes(&mut, "fleet.ev.v1.EvTelemetry", err, sizeof err);
        CHECK(rc == TP_OK || rc == TP_ERR_PARSE || rc == TP_ERR_INVALID_ARG);
        free(m);
    }
    free(real);

    /* An empty set, and a set that is not a descriptor set. */
    pb empty = {0};
    check_err(&empty, "t.M", TP_ERR_PARSE, "holds no file");
    pb junk = {(uint8_t *)"\x0a\x05\x0a\x02", 4, 4};
    check_err(&junk, "t.M", TP_ERR_PARSE, "claims 5 bytes, 2 left");
    pb bad_wt = {(uint8_t *)"\x0b", 1, 1};
    check_err(&bad_wt, "t.M", TP_ERR_PARSE, "wire type 3");
    pb long_varint = {(uint8_t *)"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, 12};
    check_err(&long_varint, "t.M", TP_ERR_PARSE, "malformed at byte 1");

    /* An unknown message type, a type name that is not fully qualified, a bad field number. */
    pb set = {0}, msg[2] = {{0}};
    pb_str(&msg[0], 1, "M");
    add_field(&msg[0], "x", 1, 11, ".t.Missing");
    wrap_set(&set, msg, 1);
    check_err(&set, "t.M", TP_ERR_INVALID_ARG, "field x has message type t.Missing, which the descriptor set does not");
    free(set.p);
    set = (pb){0};
    pb_str(&msg[0], 1, "M");
    add_field(&msg[0], "e", 1, 14, "t.E");
    wrap_set(&set, msg, 1);
    check_err(&set, "t.M", TP_ERR_INVALID_ARG, "field e has type name \"t.E\", not a full name");
    free(set.p);
    set = (pb){0};
    pb_str(&msg[0], 1, "M");
    add_field(&msg[0], "x", 0, 5, NULL);
    wrap_set(&set, msg, 1);
    check_err(&set, "t.M", TP_ERR_INVALID_ARG, "field x has number 0");
    free(set.p);
    set = (pb){0};
    pb_str(&msg[0], 1, "M");
    add_field(&msg[0], "bad name", 1, 5, NULL);
    wrap_set(&set, msg, 1);
    check_err(&set, "t.M", TP_ERR_INVALID_ARG, "field names must be identifiers");
    free(set.p);
    set = (pb){0};
    /* The same type defined twice. */
    pb_str(&msg[0], 1, "M");
    add_field(&msg[0], "x", 1, 5, NULL);
    pb_str(&msg[1], 1, "M");
    add_field(&msg[1], "y", 1, 5, NULL);
    wrap_set(&set, msg, 2);
    check_err(&set, "t.M", TP_ERR_INVALID_ARG, "t.M is defined twice");
    free(set.p);
    set = (pb){0};

    /* A name above the limit. */
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    pb_str(&msg[0], 1, longname);
    wrap_set(&set, msg, 1);
    check_err(&set, "t.M", TP_ERR_PARSE, "longer than the limit of 255");
    free(set.p);
    set = (pb){0};

    /* Huge counts: 70,000 empty fields in one message. */
    pb_str(&msg[0], 1, "M");
    for (int i = 0; i < 70000; i++)
        pb_bytes(&msg[0], "\x12\x00", 2);
    wrap_set(&set, msg, 1);
    check_err(&set, "t.M", TP_ERR_PARSE, "more than 65536 fields");
    free(set.p);
    set = (pb){0};

    /* Nested types 40 deep. */
    pb inner = {0};
    pb_str(&inner, 1, "N");
    for (int i = 0; i < 40; i++) {
        pb outer = {0};
        pb_str(&outer, 1, "N");
        pb_sub(&outer, 3, &inner);
        inner = outer;
    }
    msg[0] = inner;
    wrap_set(&set, msg, 1);
    check_err(&set, "t.N", TP_ERR_PARSE, "nested more than 32 deep");
    free(set.p);
    set = (pb){0};

    /* Editions files are refused by name. */
    pb file = {0};
    pb_str(&file, 1, "ed.proto");
    pb_str(&file, 12, "editions");
    pb_sub(&set, 1, &file);
    check_err(&set, "t.M", TP_ERR_INVALID_ARG, "file ed.proto has syntax \"editions\"");
    free(set.p);
    set = (pb){0};

    /* A Timestamp impostor. */
    pb ts = {0}, file2 = {0}, m = {0};
    pb_str(&ts, 1, "Timestamp");
    add_field(&ts, "seconds", 1, 5, NULL); /* int32, not int64 */
    pb_str(&file2, 1, "google/protobuf/timestamp.proto");
    pb_str(&file2, 2, "google.protobuf");
    pb_sub(&file2, 4, &ts);
    pb_sub(&set, 1, &file2);
    pb_str(&m, 1, "M");
    add_field(&m, "at", 1, 11, ".google.protobuf.Timestamp");
    wrap_set(&set, &m, 1);
    check_err(&set, "t.M", TP_ERR_INVALID_ARG, "not the standard one");
    free(set.p);
}

static void test_roles(void)
{
    char err[512];
    tp_schema *s = load_ok("ev_telemetry.pb", "fleet.ev.v1.EvTelemetry");
    if (!s)
        return;
    const tp_schema_roles *r = tp_schema_get_roles(s);
    CHECK_INT(r->key, 0);      /* vin */
    CHECK_INT(r->time, 1);     /* recorded_at */
    CHECK_INT(r->time_unit, TP_TIME_NS);
    CHECK_INT(r->identity_count, 3);
    CHECK_INT(r->identity[2], 2); /* seq */

    struct {
        const char *key, *time, *unit;
        const char *ids[3];
        size_t nids;
        const char *needle;
    } bad[] = {
        {"latitude", "recorded_at", NULL, {0}, 0, "column latitude (double) cannot be the key"},
        {"tags", "recorded_at", NULL, {0}, 0, "column tags (string) cannot be the key: it is repeated"},
        {"drive_state", "recorded_at", NULL, {0}, 0, "cannot be the key: the key must be an integer or a string"},
        {"nope", "recorded_at", NULL, {0}, 0, "the key column nope is not a column"},
        {"vin", "vin", NULL, {0}, 0, "column vin (string) cannot be the time"},
        {"vin", "trip_deltas", NULL, {0}, 0, "column trip_deltas (repeated sint64) cannot be the time"},
        {"vin", "odometer_m", NULL, {0}, 0, "the unit of time column odometer_m is unknown"},
        {"vin", "odometer_m", "h", {0}, 0, "time unit 'h' is not one of s, ms, us, ns"},
        {"vin", "recorded_at", "ms", {0}, 0, "column recorded_at is a Timestamp: its unit is fixed (ns)"},
        {"seq", "seq", "ms", {0}, 0, "cannot be both the key and the time"},
        {"vin", "recorded_at", NULL, {"nope"}, 1, "identity column nope is not a column"},
        {"vin", "recorded_at", NULL, {"latitude"}, 1, "column latitude cannot be part of the identity: it is floating"},
        {"vin", "recorded_at", NULL, {"tags"}, 1, "cannot be part of the identity: it is repeated"},
        {"vin", "recorded_at", NULL, {"seq", "seq"}, 2, "identity column seq is named twice"},
        {NULL, "recorded_at", NULL, {0}, 0, "both a key column and a time column are needed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECK_ERR(tp_schema_set_roles(s, bad[i].key, bad[i].time, bad[i].unit, bad[i].nids ? bad[i].ids : NULL,
                                      bad[i].nids, err, sizeof err),
                  TP_ERR_INVALID_ARG);
        if (!strstr(err, bad[i].needle)) {
            fprintf(stderr, "roles case %zu: \"%s\" does not mention \"%s\"\n", i, err, bad[i].needle);
            CHECK(0);
        }
        /* Refused roles leave the roles as they were. */
        CHECK_INT(r->key, 0);
        CHECK_INT(r->identity_count, 3);
    }
    /* An integer key (seq), an integer time with its unit, dotted names, an explicit identity. */
    const char *ids[] = {"can.torque_nmm", "vin"};
    CHECK_ERR(tp_schema_set_roles(s, "seq", "odometer_m", "ms", ids, 2, err, sizeof err), TP_OK);
    CHECK_INT(r->key, 2);
    CHECK_INT(r->time, 10);
    CHECK_INT(r->time_unit, TP_TIME_MS);
    CHECK_INT(r->identity_count, 4);
    CHECK_INT(r->identity[0], 2);
    CHECK_INT(r->identity[1], 10);
    CHECK_INT(r->identity[2], 14);
    CHECK_INT(r->identity[3], 0);
    tp_schema_free(s);

    /* The project's own record: vehicle_id, sampled_at_ms (ms from the name), seq. */
    s = load_ok("vehicle.pb", "telepack.v1.VehicleRecord");
    if (s) {
        r = tp_schema_get_roles(s);
        CHECK_STR(tp_schema_column_at(s, (size_t)r->key)->name, "vehicle_id");
        CHECK_STR(tp_schema_column_at(s, (size_t)r->time)->name, "sampled_at_ms");
        CHECK_INT(r->time_unit, TP_TIME_MS);
        CHECK_INT(r->identity_count, 3);
        CHECK_STR(tp_schema_column_at(s, (size_t)r->identity[2])->name, "seq");
    }
    tp_schema_free(s);
    /* No key column found: roles unset, not guessed. */
    s = load_ok("refused.pb", "refused.v1.Accepted");
    if (s) {
        CHECK_INT(tp_schema_get_roles(s)->key, -1);
        CHECK_INT(tp_schema_get_roles(s)->identity_count, 0);
    }
    tp_schema_free(s);
}

static void test_fingerprint(void)
{
    char why[512];
    tp_schema *ev = load_ok("ev_telemetry.pb", "fleet.ev.v1.EvTelemetry");
    tp_schema *re = load_ok("ev_reordered.pb", "fleet.ev.v1.EvTelemetry");
    tp_schema *add = load_ok("ev_added.pb", "fleet.ev.v1.EvTelemetry");
    tp_schema *ret = load_ok("ev_retyped.pb", "fleet.ev.v1.EvTelemetry");
    if (!ev || !re || !add || !ret)
        goto out;
    /* Pinned: the normalized form and its hash are a stable contract (docs/SCHEMA.md); a change here breaks every
     * stored fingerprint. */
    CHECK_STR(tp_schema_fingerprint_hex(ev), "99b3bbc325167eac");
    CHECK(strstr(tp_schema_normal_form(ev), "4.5\tbattery.cell_voltages_v\tfloat\trepeated\n") != NULL);
    CHECK(strstr(tp_schema_normal_form(ev), "5\tdrive_state\tenum\timplicit\tDRIVE_STATE_UNSPECIFIED=0,"
                                            "DRIVE_STATE_PARKED=1,DRIVE_STATE_DRIVING=2,DRIVE_STATE_CHARGING=3\n"));
    /* Another declaration order, other comments: identical. */
    CHECK_STR(tp_schema_fingerprint_hex(re), tp_schema_fingerprint_hex(ev));
    CHECK_INT(tp_schema_compare(ev, re, why, sizeof why), TP_SCHEMA_IDENTICAL);
    /* Columns differ in order between the two (declaration order), the fingerprint does not. */
    CHECK_STR(tp_schema_column_at(re, 0)->name, "latitude");
    /* An added field and enum value: compatible one way, incompatible the other. */
    CHECK(strcmp(tp_schema_fingerprint_hex(add), tp_schema_fingerprint_hex(ev)) != 0);
    CHECK_INT(tp_schema_compare(ev, add, why, sizeof why), TP_SCHEMA_COMPATIBLE);
    CHECK(strstr(why, "adds field tire_pressure_kpa (number 17)") != NULL);
    CHECK_INT(tp_schema_compare(add, ev, why, sizeof why), TP_SCHEMA_INCOMPATIBLE);
    CHECK_STR(why, "enum value DRIVE_STATE_TOWED = 4 of field drive_state is missing or renumbered in the reader's schema");
    /* A changed type: incompatible both ways. */
    CHECK(strcmp(tp_schema_fingerprint_hex(ret), tp_schema_fingerprint_hex(ev)) != 0);
    CHECK_INT(tp_schema_compare(ev, ret, why, sizeof why), TP_SCHEMA_INCOMPATIBLE);
    CHECK_STR(why, "field odometer_m is implicit int64 in the writer's schema and implicit uint64 in the reader's");
    CHECK_INT(tp_schema_compare(ret, ev, why, sizeof why), TP_SCHEMA_INCOMPATIBLE);
    /* Loading twice gives the same fingerprint (no address or order dependence). */
    tp_schema *again = load_ok("ev_telemetry.pb", "fleet.ev.v1.EvTelemetry");
    if (again)
        CHECK(tp_schema_fingerprint(again) == tp_schema_fingerprint(ev));
    tp_schema_free(again);
out:
    tp_schema_free(ev);
    tp_schema_free(re);
    tp_schema_free(add);
    tp_schema_free(ret);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_schema DATA_DIR\n");
        return 2;
    }
    dir = argv[1];
    test_flatten_ev();
    test_refused();
    test_hostile();
    test_roles();
    test_fingerprint();
    return check_exit();
}
