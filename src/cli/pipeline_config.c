/* The pipeline file of ingest and sink (--config): YAML events from libyaml -> a bounded list of (section, key,
 * value, line) entries -> the command's own long options by name (see pipeline_config.h, docs/CONFIG.md). Nothing
 * here knows the options of a command: they come from the getopt_long table the command passes, so an option added
 * to ingest or sink is a key of the file at once. Only tp_cli_config_apply prints (it is the CLI hook). */
#include "cli/pipeline_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cli/cli_args.h"
#include "cli/schema_cli.h"

#define MAX_KEY 64
#define MAX_PROP 128

static const char *const section_names[] = {"schema", "kafka", "ingest", "sink", NULL};
/* The schema section's keys are the shared --schema options (descriptor standing for --schema itself). */
static const struct option schema_longopts[] = {TP_CLI_SCHEMA_LONGOPTS, {NULL, 0, NULL, 0}};
/* The kafka section's keys and the options they stand for. */
static const char *const kafka_keys[][2] = {{"brokers", "brokers"}, {"topic", "topic"}, {"config", "kafka-config"}};

struct tp_pipeline_config {
    char *name; /* the file as named on the command line */
    char *dir;  /* its directory, or NULL when it names no directory (relative paths then stay as written) */
    tp_pipeline_entry *e;
    size_t n, cap;
    char **args;
    size_t n_args;
};

__attribute__((format(printf, 5, 6))) static tp_err fail(const tp_pipeline_config *c, int line, char *msg,
                                                         size_t cap, const char *fmt, ...)
{
    if (msg && cap) {
        int k = line > 0 ? snprintf(msg, cap, "%s:%d: ", c->name, line) : snprintf(msg, cap, "%s: ", c->name);
        if (k >= 0 && (size_t)k < cap) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(msg + k, cap - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return TP_ERR_PARSE;
}

void tp_pipeline_config_free(tp_pipeline_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free((char *)c->e[i].key);
        free((char *)c->e[i].prop);
        free((char *)c->e[i].value);
    }
    for (size_t i = 0; i < c->n_args; i++)
        free(c->args[i]);
    free(c->args);
    free(c->e);
    free(c->name);
    free(c->dir);
    free(c);
}

size_t tp_pipeline_config_count(const tp_pipeline_config *c)
{
    return c->n;
}

const tp_pipeline_entry *tp_pipeline_config_entry(const tp_pipeline_config *c, size_t i)
{
    return i < c->n ? &c->e[i] : NULL;
}

bool tp_pipeline_config_has_section(const tp_pipeline_config *c, const char *section)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].section, section))
            return true;
    return false;
}

/* ---- parsing ---- */

typedef struct pstate {
    tp_pipeline_config *c;
    yaml_parser_t p;
    yaml_event_t ev;
    int have_ev;
    int line; /* of the current event */
    char *msg;
    size_t cap;
} pstate;

/* What an event is, for messages. */
static const char *what(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT: return ev->data.scalar.length ? "a value" : "an empty value";
    case YAML_SEQUENCE_START_EVENT: return "a list";
    case YAML_MAPPING_START_EVENT: return "a mapping";
    default: return "something else";
    }
}

/* The next event, refusing anchors, aliases and tags (no expansion, no types beyond text). */
static tp_err next(pstate *s)
{
    if (s->have_ev)
        yaml_event_delete(&s->ev);
    s->have_ev = 0;
    if (!yaml_parser_parse(&s->p, &s->ev)) {
        if (s->p.error == YAML_MEMORY_ERROR)
            return TP_ERR_NOMEM;
        return fail(s->c, (int)s->p.problem_mark.line + 1, s->msg, s->cap, "not valid YAML: %s%s%s%s",
                    s->p.problem ? s->p.problem : "syntax error", s->p.context ? " (" : "",
                    s->p.context ? s->p.context : "", s->p.context ? ")" : "");
    }
    s->have_ev = 1;
    s->line = (int)s->ev.start_mark.line + 1;
    const yaml_char_t *anchor = NULL, *tag = NULL;
    switch (s->ev.type) {
    case YAML_ALIAS_EVENT:
        return fail(s->c, s->line, s->msg, s->cap, "an alias (*%s): anchors and aliases are not supported; write "
                    "the value out", (const char *)s->ev.data.alias.anchor);
    case YAML_SCALAR_EVENT:
        anchor = s->ev.data.scalar.anchor;
        tag = s->ev.data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = s->ev.data.sequence_start.anchor;
        tag = s->ev.data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = s->ev.data.mapping_start.anchor;
        tag = s->ev.data.mapping_start.tag;
        break;
    default: break;
    }
    if (anchor)
        return fail(s->c, s->line, s->msg, s->cap, "an anchor (&%s): anchors and aliases are not supported",
                    (const char *)anchor);
    if (tag)
        return fail(s->c, s->line, s->msg, s->cap, "a tag (%s): tags are not supported; every value is text",
                    (const char *)tag);
    return TP_OK;
}

/* The current scalar as a string of at most max bytes: 0, or -1 when longer or holding a NUL. */
static int scalar(const pstate *s, char *buf, size_t max)
{
    size_t n = s->ev.data.scalar.length;
    if (n > max || memchr(s->ev.data.scalar.value, 0, n))
        return -1;
    memcpy(buf, s->ev.data.scalar.value, n);
    buf[n] = 0;
    return 0;
}

static int is_null(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!ev->data.scalar.length || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
            !strcmp(v, "NULL"));
}

/* Adds the current scalar event as the value of (section, key, prop); line is the key's (or the item's). */
static tp_err add(pstate *s, const char *section, const char *key, const char *prop, int line)
{
    tp_pipeline_config *c = s->c;
    if (is_null(&s->ev))
        return fail(c, s->line, s->msg, s->cap, "%s%s%s in %s has no value", prop ? "property " : "key \"",
                    prop ? prop : key, prop ? "" : "\"", section);
    if (s->ev.data.scalar.length > TP_PIPELINE_CONFIG_MAX_VALUE ||
        memchr(s->ev.data.scalar.value, 0, s->ev.data.scalar.length))
        return fail(c, s->line, s->msg, s->cap, "the value of %s in %s is longer than %d bytes or holds a NUL",
                    prop ? prop : key, section, TP_PIPELINE_CONFIG_MAX_VALUE);
    if (c->n == TP_PIPELINE_CONFIG_MAX_ENTRIES)
        return fail(c, s->line, s->msg, s->cap, "more than %d settings", TP_PIPELINE_CONFIG_MAX_ENTRIES);
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        tp_pipeline_entry *ne = realloc(c->e, nc * sizeof *ne);
        if (!ne)
            return TP_ERR_NOMEM;
        c->e = ne;
        c->cap = nc;
    }
    tp_pipeline_entry *en = &c->e[c->n];
    memset(en, 0, sizeof *en);
    en->section = section;
    en->line = line;
    en->plain = s->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    en->key = strdup(key);
    en->prop = prop ? strdup(prop) : NULL;
    en->value = strndup((const char *)s->ev.data.scalar.value, s->ev.data.scalar.length);
    c->n++; /* counted before the check so that free releases what was allocated */
    if (!en->key || (prop && !en->prop) || !en->value)
        return TP_ERR_NOMEM;
    return TP_OK;
}

/* A properties mapping (the -X pairs) of section; the MAPPING_START is the current event. */
static tp_err parse_properties(pstate *s, const char *section)
{
    tp_err e;
    size_t start = s->c->n;
    for (;;) {
        if ((e = next(s)))
            return e;
        if (s->ev.type == YAML_MAPPING_END_EVENT)
            break;
        char name[MAX_PROP + 1];
        int line = s->line;
        if (s->ev.type != YAML_SCALAR_EVENT || scalar(s, name, MAX_PROP) || !name[0])
            return fail(s->c, line, s->msg, s->cap, "a property name in %s.properties must be a word of 1 to %d "
                        "bytes, not %s", section, MAX_PROP, what(&s->ev));
        for (size_t i = start; i < s->c->n; i++)
            if (!strcmp(s->c->e[i].prop, name))
                return fail(s->c, line, s->msg, s->cap, "duplicate property %s in %s.properties (first on line %d)",
                            name, section, s->c->e[i].line);
        if ((e = next(s)))
            return e;
        if (s->ev.type != YAML_SCALAR_EVENT)
            return fail(s->c, s->line, s->msg, s->cap, "property %s in %s takes a value, not %s", name, section,
                        what(&s->ev));
        if ((e = add(s, section, "properties", name, line)))
            return e;
    }
    if (s->c->n == start)
        return fail(s->c, s->line, s->msg, s->cap, "properties in %s is empty", section);
    return TP_OK;
}

/* The keys of one section; its MAPPING_START is the current event. */
static tp_err parse_section(pstate *s, const char *section)
{
    tp_err e;
    size_t first = s->c->n;
    for (;;) {
        if ((e = next(s)))
            return e;
        if (s->ev.type == YAML_MAPPING_END_EVENT)
            return TP_OK;
        char key[MAX_KEY + 1];
        int line = s->line;
        if (s->ev.type != YAML_SCALAR_EVENT || scalar(s, key, MAX_KEY) || !key[0])
            return fail(s->c, line, s->msg, s->cap, "a key in %s must be a word of 1 to %d bytes, not %s", section,
                        MAX_KEY, what(&s->ev));
        for (size_t i = first; i < s->c->n; i++)
            if (!strcmp(s->c->e[i].key, key))
                return fail(s->c, line, s->msg, s->cap, "duplicate key \"%s\" in %s (first on line %d)", key,
                            section, s->c->e[i].line);
        if ((e = next(s)))
            return e;
        if (s->ev.type == YAML_SCALAR_EVENT) {
            if ((e = add(s, section, key, NULL, line)))
                return e;
        } else if (s->ev.type == YAML_SEQUENCE_START_EVENT) {
            size_t before = s->c->n;
            for (;;) {
                if ((e = next(s)))
                    return e;
                if (s->ev.type == YAML_SEQUENCE_END_EVENT)
                    break;
                if (s->ev.type != YAML_SCALAR_EVENT)
                    return fail(s->c, s->line, s->msg, s->cap, "an item of the list \"%s\" in %s must be a value, "
                                "not %s", key, section, what(&s->ev));
                if ((e = add(s, section, key, NULL, s->line)))
                    return e;
                s->c->e[s->c->n - 1].in_list = 1;
            }
            if (s->c->n == before)
                return fail(s->c, line, s->msg, s->cap, "the list \"%s\" in %s is empty", key, section);
        } else if (s->ev.type == YAML_MAPPING_START_EVENT && !strcmp(key, "properties")) {
            if ((e = parse_properties(s, section)))
                return e;
        } else {
            return fail(s->c, s->line, s->msg, s->cap, "key \"%s\" in %s takes a value, not %s", key, section,
                        what(&s->ev));
        }
    }
}

/* The edit distance of a and b, '-' and '_' alike (SIZE_MAX past MAX_KEY bytes). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAX_KEY || lb > MAX_KEY)
        return SIZE_MAX;
    size_t row[MAX_KEY + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            char x = a[i - 1] == '-' ? '_' : a[i - 1], y = b[j - 1] == '-' ? '_' : b[j - 1];
            size_t best = diag + (x != y);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = row[j];
            row[j] = best;
        }
    }
    return row[lb];
}

/* The nearest candidate to word seen so far, when close enough to suggest ("did you mean ...?"). */
typedef struct suggest {
    const char *word;
    char best[MAX_KEY + 1];
    size_t d;
} suggest;

static void consider(suggest *g, const char *cand)
{
    size_t d = distance(g->word, cand);
    if (d < g->d && d <= 1 + strlen(g->word) / 4) {
        g->d = d;
        snprintf(g->best, sizeof g->best, "%s", cand);
    }
}

/* An option name as a key: "linger-ms" -> "linger_ms". */
static void key_of(const char *opt, char *out, size_t cap)
{
    snprintf(out, cap, "%s", opt);
    for (char *p = out; *p; p++)
        if (*p == '-')
            *p = '_';
}

static tp_err parse_doc(pstate *s)
{
    tp_err e;
    tp_pipeline_config *c = s->c;
    if ((e = next(s)) || (e = next(s))) /* the stream, then a document or the end */
        return e;
    if (s->ev.type == YAML_STREAM_END_EVENT)
        return fail(c, 0, s->msg, s->cap, "the file holds no settings");
    if ((e = next(s)))
        return e;
    if (s->ev.type != YAML_MAPPING_START_EVENT)
        return fail(c, s->line, s->msg, s->cap, "the file must be a mapping of sections (schema, kafka, ingest, "
                    "sink), not %s", what(&s->ev));
    unsigned seen = 0;
    int seen_line[4] = {0};
    for (;;) {
        if ((e = next(s)))
            return e;
        if (s->ev.type == YAML_MAPPING_END_EVENT)
            break;
        char name[MAX_KEY + 1];
        int line = s->line, si = -1;
        if (s->ev.type != YAML_SCALAR_EVENT || scalar(s, name, MAX_KEY))
            return fail(c, line, s->msg, s->cap, "a section name must be a word (schema, kafka, ingest or sink), "
                        "not %s", what(&s->ev));
        for (int i = 0; section_names[i]; i++)
            if (!strcmp(name, section_names[i]))
                si = i;
        if (si < 0) {
            suggest g = {.word = name, .d = SIZE_MAX};
            for (int i = 0; section_names[i]; i++)
                consider(&g, section_names[i]);
            return fail(c, line, s->msg, s->cap, "unknown section \"%s\" (%s%s%s)", name,
                        g.best[0] ? "did you mean " : "the sections are schema, kafka, ingest and sink",
                        g.best[0] ? g.best : "", g.best[0] ? "?" : "");
        }
        if (seen & (1u << si))
            return fail(c, line, s->msg, s->cap, "duplicate section \"%s\" (first on line %d)", name, seen_line[si]);
        seen |= 1u << si;
        seen_line[si] = line;
        if ((e = next(s)))
            return e;
        if (s->ev.type != YAML_MAPPING_START_EVENT)
            return fail(c, s->line, s->msg, s->cap, "section %s must be a mapping of keys (KEY: VALUE), not %s",
                        name, what(&s->ev));
        if ((e = parse_section(s, section_names[si])))
            return e;
    }
    if ((e = next(s)) || (e = next(s))) /* the document's end, then the stream's */
        return e;
    if (s->ev.type != YAML_STREAM_END_EVENT)
        return fail(c, s->line, s->msg, s->cap, "a second YAML document: the file holds one (no second ---)");
    return TP_OK;
}

tp_err tp_pipeline_config_parse(const char *name, const void *data, size_t len, tp_pipeline_config **out, char *msg,
                                size_t msg_cap)
{
    *out = NULL;
    tp_pipeline_config *c = calloc(1, sizeof *c);
    if (!c || !(c->name = strdup(name))) {
        free(c);
        return TP_ERR_NOMEM;
    }
    const char *slash = strrchr(name, '/');
    if (slash && !(c->dir = strndup(name, slash == name ? 1 : (size_t)(slash - name)))) {
        tp_pipeline_config_free(c);
        return TP_ERR_NOMEM;
    }
    tp_err e = TP_OK;
    const char *tab = memchr(data, '\t', len);
    if (len > TP_PIPELINE_CONFIG_MAX_BYTES) {
        e = fail(c, 0, msg, msg_cap, "is larger than %u bytes", TP_PIPELINE_CONFIG_MAX_BYTES);
    } else if (tab) {
        int line = 1;
        for (const char *p = data; p < tab; p++)
            line += *p == '\n';
        e = fail(c, line, msg, msg_cap, "a tab character: indent with spaces (tabs are refused anywhere in the file)");
    } else {
        pstate s = {.c = c, .msg = msg, .cap = msg_cap};
        if (!yaml_parser_initialize(&s.p)) {
            e = TP_ERR_NOMEM;
        } else {
            yaml_parser_set_input_string(&s.p, data, len);
            e = parse_doc(&s);
            if (s.have_ev)
                yaml_event_delete(&s.ev);
            yaml_parser_delete(&s.p);
        }
    }
    if (e) {
        tp_pipeline_config_free(c);
        return e;
    }
    *out = c;
    return TP_OK;
}

tp_err tp_pipeline_config_load(const char *path, tp_pipeline_config **out, char *msg, size_t msg_cap)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, msg_cap, "%s: cannot be read (%s)", path, strerror(errno));
        return TP_ERR_IO;
    }
    char *buf = malloc(TP_PIPELINE_CONFIG_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, TP_PIPELINE_CONFIG_MAX_BYTES + 1, f) : 0;
    int err = ferror(f), saved = errno;
    fclose(f);
    if (!buf)
        return TP_ERR_NOMEM;
    if (err) {
        free(buf);
        snprintf(msg, msg_cap, "%s: cannot be read (%s)", path, strerror(saved));
        return TP_ERR_IO;
    }
    tp_err e = tp_pipeline_config_parse(path, buf, n, out, msg, msg_cap);
    free(buf);
    return e;
}

/* ---- mapping onto a command's options ---- */

static const struct option *find_opt(const struct option *lo, const char *name)
{
    for (; lo && lo->name; lo++)
        if (!strcmp(lo->name, name))
            return lo;
    return NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Options whose value is a file (relative paths in the file start at its directory). */
static int is_path_option(const char *name)
{
    static const char *const suffixes[] = {"-file", "-cert", "-key", "-ca", "-config", "-schema", "-tokens"};
    if (!strcmp(name, "schema") || !strcmp(name, "from"))
        return 1;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (ends_with(name, suffixes[i]))
            return 1;
    return 0;
}

/* Names of options and properties that would hold a secret in the file itself. */
static int is_secret_option(const char *name)
{
    return !strcmp(name, "password") || !strcmp(name, "token") || !strcmp(name, "secret") ||
           ends_with(name, "-password") || ends_with(name, "-token") || ends_with(name, "-secret");
}

static int is_secret_property(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") || !strcmp(name, "ssl.key.pem") ||
           !strcmp(name, "sasl.oauthbearer.config");
}

/* "--NAME=VALUE" with a relative path made relative to dir (NULL: kept). */
static char *option_arg(const char *dir, const char *name, const char *value)
{
    const char *prefix = "", *path = value;
    if (!strcmp(name, "warehouse") && !strncmp(value, "sqlite:", 7)) {
        prefix = "sqlite:";
        path = value + 7;
    } else if (!is_path_option(name)) {
        dir = NULL;
    }
    if (!path[0] || path[0] == '/' || !strcmp(path, "-"))
        dir = NULL;
    size_t n = strlen(name) + strlen(value) + (dir ? strlen(dir) : 0) + 8;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "--%s=%s%s%s%s", name, prefix, dir ? dir : "", dir && !ends_with(dir, "/") ? "/" : "", path);
    return s;
}

/* Unknown key: with the nearest key of the section, or where to look. */
static tp_err unknown(const tp_pipeline_config *c, const tp_pipeline_entry *en, const char *command,
                      const struct option *lo, char *msg, size_t cap)
{
    suggest g = {.word = en->key, .d = SIZE_MAX};
    char k[MAX_KEY + 1];
    if (!strcmp(en->section, "schema")) {
        consider(&g, "descriptor");
        for (const struct option *o = schema_longopts; o->name; o++) {
            key_of(o->name, k, sizeof k);
            if (strcmp(o->name, "schema"))
                consider(&g, k);
        }
    } else if (!strcmp(en->section, "kafka")) {
        for (size_t i = 0; i < sizeof kafka_keys / sizeof kafka_keys[0]; i++)
            consider(&g, kafka_keys[i][0]);
        consider(&g, "properties");
    } else {
        for (const struct option *o = lo; o && o->name; o++) {
            key_of(o->name, k, sizeof k);
            if (strcmp(o->name, "help") && !is_secret_option(o->name) && !find_opt(schema_longopts, o->name))
                consider(&g, k);
        }
        consider(&g, "properties");
    }
    if (g.best[0])
        return fail(c, en->line, msg, cap, "unknown key \"%s\" in %s (did you mean %s?)", en->key, en->section, g.best);
    /* ingest with a schema section runs its --schema path, whose keys are listed apart */
    const char *path = !strcmp(command, "ingest") && tp_pipeline_config_has_section(c, "schema") ? " --schema x" : "";
    return fail(c, en->line, msg, cap, "unknown key \"%s\" in %s (telepack %s%s --config-keys lists the keys)", en->key,
                en->section, command, path);
}

/* The option entry en stands for under command: *opt (NULL for a property, *skip for another command's section). */
static tp_err map_entry(const tp_pipeline_config *c, const tp_pipeline_entry *en, const char *command,
                        const struct option *lo, const struct option **opt, int *skip, char *msg, size_t cap)
{
    *opt = NULL;
    *skip = 0;
    int own = !strcmp(en->section, command), shared = !strcmp(en->section, "schema") || !strcmp(en->section, "kafka");
    if (!own && !shared) {
        *skip = 1; /* the other command's section: its keys are that command's to check */
        return TP_OK;
    }
    if (!strcmp(en->key, "properties") && strcmp(en->section, "schema")) {
        if (!en->prop) /* "properties: VALUE", not a mapping */
            return fail(c, en->line, msg, cap, "properties in %s must be a mapping of librdkafka properties "
                        "(NAME: VALUE), not a value", en->section);
        if (is_secret_property(en->prop))
            return fail(c, en->line, msg, cap, "property %s in %s would put a secret in this file: put it in the "
                        "file named by kafka.config (--kafka-config), readable only by the service", en->prop,
                        en->section);
        return TP_OK;
    }
    char name[MAX_KEY + 1];
    snprintf(name, sizeof name, "%s", en->key);
    for (char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return unknown(c, en, command, lo, msg, cap);
        if (*p == '_')
            *p = '-';
    }
    if (!strcmp(en->section, "schema")) {
        if (!strcmp(en->key, "schema"))
            return unknown(c, en, command, lo, msg, cap);
        if (!strcmp(en->key, "descriptor"))
            snprintf(name, sizeof name, "schema");
        if (!find_opt(schema_longopts, name))
            return unknown(c, en, command, lo, msg, cap);
    } else if (!strcmp(en->section, "kafka")) {
        size_t i = 0, nk = sizeof kafka_keys / sizeof kafka_keys[0];
        while (i < nk && strcmp(en->key, kafka_keys[i][0]))
            i++;
        if (i == nk)
            return unknown(c, en, command, lo, msg, cap);
        snprintf(name, sizeof name, "%s", kafka_keys[i][1]);
    } else if (!strcmp(name, "help") || !strcmp(name, "config")) {
        return unknown(c, en, command, lo, msg, cap);
    } else if (find_opt(schema_longopts, name)) { /* one place for what ingest and sink must agree on */
        return fail(c, en->line, msg, cap, "key \"%s\" belongs in the schema section%s, not in %s", en->key,
                    strcmp(name, "schema") ? "" : " (as descriptor)", en->section);
    }
    if (is_secret_option(name)) {
        char file[MAX_KEY + 8];
        snprintf(file, sizeof file, "%s-file", name);
        if (find_opt(lo, file))
            return fail(c, en->line, msg, cap, "key \"%s\" in %s would put a secret in this file: name a file "
                        "holding it with %s_file", en->key, en->section, en->key);
        return fail(c, en->line, msg, cap, "key \"%s\" in %s would put a secret in this file: give it another way "
                    "(a file, the environment)", en->key, en->section);
    }
    const struct option *o = find_opt(lo, name);
    if (!o) {
        if (shared)
            return fail(c, en->line, msg, cap, "key \"%s\" in %s is not taken by telepack %s here (it has no --%s)",
                        en->key, en->section, command, name);
        return unknown(c, en, command, lo, msg, cap);
    }
    if (o->has_arg == no_argument) {
        if (en->in_list || !en->plain || (strcmp(en->value, "true") && strcmp(en->value, "false")))
            return fail(c, en->line, msg, cap, "key \"%s\" in %s is true or false (--%s takes no value), not '%s'",
                        en->key, en->section, name, en->value);
    }
    *opt = o;
    return TP_OK;
}

tp_err tp_pipeline_config_args(tp_pipeline_config *c, const char *command, const struct option *longopts,
                               char ***args, size_t *n_args, char *msg, size_t msg_cap)
{
    for (size_t i = 0; i < c->n_args; i++)
        free(c->args[i]);
    free(c->args);
    c->args = NULL;
    c->n_args = 0;
    const struct option **opts = calloc(c->n + 1, sizeof *opts);
    char *skip = calloc(c->n + 1, 1);
    c->args = calloc(2 * c->n + 1, sizeof *c->args);
    tp_err e = opts && skip && c->args ? TP_OK : TP_ERR_NOMEM;
    for (size_t i = 0; !e && i < c->n; i++) { /* every entry checked, in file order, before any is used */
        int sk;
        e = map_entry(c, &c->e[i], command, longopts, &opts[i], &sk, msg, msg_cap);
        skip[i] = (char)sk;
    }
    const char *order[] = {"schema", "kafka", command};
    for (int pass = 0; !e && pass < 3; pass++) {
        for (size_t i = 0; !e && i < c->n; i++) {
            const tp_pipeline_entry *en = &c->e[i];
            if (skip[i] || strcmp(en->section, order[pass]))
                continue;
            char *a = NULL, *b = NULL;
            if (!opts[i]) { /* a property: -X NAME=VALUE */
                size_t n = strlen(en->prop) + strlen(en->value) + 2;
                a = strdup("-X");
                if ((b = malloc(n)))
                    snprintf(b, n, "%s=%s", en->prop, en->value);
            } else if (opts[i]->has_arg == no_argument) {
                if (!strcmp(en->value, "false"))
                    continue;
                size_t n = strlen(opts[i]->name) + 3;
                if ((a = malloc(n)))
                    snprintf(a, n, "--%s", opts[i]->name);
            } else {
                a = option_arg(c->dir, opts[i]->name, en->value);
            }
            if (a)
                c->args[c->n_args++] = a;
            if (b)
                c->args[c->n_args++] = b;
            if (!a || (!opts[i] && !b))
                e = TP_ERR_NOMEM;
        }
    }
    free(opts);
    free(skip);
    *args = c->args;
    *n_args = c->n_args;
    return e;
}

void tp_pipeline_config_keys(const char *command, const struct option *longopts, FILE *out)
{
    char k[MAX_KEY + 1];
    for (const struct option *o = schema_longopts; o->name; o++) {
        if (!find_opt(longopts, o->name))
            continue;
        key_of(strcmp(o->name, "schema") ? o->name : "descriptor", k, sizeof k);
        fprintf(out, "schema.%-26s --%s\n", k, o->name);
    }
    for (size_t i = 0; i < sizeof kafka_keys / sizeof kafka_keys[0]; i++)
        if (find_opt(longopts, kafka_keys[i][1]))
            fprintf(out, "kafka.%-27s --%s\n", kafka_keys[i][0], kafka_keys[i][1]);
    fprintf(out, "kafka.%-27s -X NAME=VALUE (a mapping)\n", "properties");
    for (const struct option *o = longopts; o && o->name; o++) {
        if (!strcmp(o->name, "help") || is_secret_option(o->name) || find_opt(schema_longopts, o->name))
            continue;
        key_of(o->name, k, sizeof k);
        fprintf(out, "%s.%-*s --%s%s\n", command, (int)(32 - strlen(command)), k, o->name,
                o->has_arg == no_argument ? " (true or false)" : "");
    }
    fprintf(out, "%s.%-*s -X NAME=VALUE (a mapping)\n", command, (int)(32 - strlen(command)), "properties");
}

/* ---- the command-line hook ---- */

typedef struct held {
    tp_pipeline_config *c;
    char **argv;
    struct held *next;
} held;

static held *g_held;

void tp_cli_config_release(void)
{
    while (g_held) {
        held *h = g_held;
        g_held = h->next;
        tp_pipeline_config_free(h->c);
        free(h->argv);
        free(h);
    }
}

/* The long option arg names (up to '=' or its end): exact, or a unique prefix as getopt_long takes it. */
static const struct option *lookup_long(const struct option *lo, const char *arg)
{
    size_t len = strcspn(arg, "=");
    const struct option *found = NULL;
    int n = 0;
    for (; lo && lo->name; lo++) {
        if (strncmp(lo->name, arg, len))
            continue;
        if (strlen(lo->name) == len)
            return lo;
        found = lo;
        n++;
    }
    return n == 1 ? found : NULL;
}

int tp_cli_config_apply(const char *command, const char *shortopts, const struct option *longopts, int *argc,
                        char ***argv)
{
    int ac = *argc, at = -1, width = 0, keys = 0;
    char **av = *argv;
    const char *path = NULL;
    for (int i = 1; i < ac; i++) {
        const char *a = av[i];
        if (!strcmp(a, "--"))
            break;
        if (!strcmp(a, "--config-keys")) {
            keys = 1;
        } else if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
            if (path) {
                fprintf(stderr, "telepack %s: --config is given twice; one pipeline file a run\n", command);
                return 2;
            }
            at = i;
            width = a[8] ? 1 : 2;
            if (!a[8] && i + 1 >= ac)
                return tp_cli_usage_error(command, "option '--config' needs a value");
            path = a[8] ? a + 9 : av[i + 1];
            i += width - 1;
        } else if (a[0] == '-' && a[1] == '-') {
            const struct option *o = lookup_long(longopts, a + 2);
            if (o && o->has_arg == required_argument && !strchr(a, '='))
                i++;
        } else if (a[0] == '-' && a[1]) {
            for (const char *p = a + 1; *p; p++) {
                const char *s = *p != ':' ? strchr(shortopts, *p) : NULL;
                if (s && s[1] == ':') {
                    if (!p[1])
                        i++;
                    break;
                }
            }
        }
    }
    if (keys) {
        tp_pipeline_config_keys(command, longopts, stdout);
        return 0;
    }
    if (!path)
        return -1;
    char msg[1024];
    tp_pipeline_config *c = NULL;
    char **args = NULL;
    size_t n = 0;
    tp_err e = tp_pipeline_config_load(path, &c, msg, sizeof msg);
    if (!e)
        e = tp_pipeline_config_args(c, command, longopts, &args, &n, msg, sizeof msg);
    held *h = e ? NULL : calloc(1, sizeof *h);
    char **nv = h ? calloc((size_t)ac + n + 1, sizeof *nv) : NULL;
    if (!nv) {
        if (e == TP_ERR_NOMEM || !e)
            fprintf(stderr, "telepack %s: --config %s: out of memory\n", command, path);
        else
            fprintf(stderr, "telepack %s: %s\n", command, msg);
        tp_pipeline_config_free(c);
        free(h);
        return e == TP_ERR_PARSE || e == TP_ERR_IO ? 2 : 1;
    }
    int k = 0;
    nv[k++] = av[0];
    for (size_t i = 0; i < n; i++)
        nv[k++] = args[i];
    for (int i = 1; i < ac; i++)
        if (i < at || i >= at + width)
            nv[k++] = av[i];
    nv[k] = NULL;
    h->c = c;
    h->argv = nv;
    h->next = g_held;
    g_held = h;
    *argc = k;
    *argv = nv;
    return -1;
}

bool tp_cli_config_has_schema(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
    }
    tp_pipeline_config *c = NULL;
    char msg[256];
    if (!path || tp_pipeline_config_load(path, &c, msg, sizeof msg))
        return false;
    bool has = tp_pipeline_config_has_section(c, "schema");
    tp_pipeline_config_free(c);
    return has;
}
