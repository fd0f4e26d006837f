/* The pipeline file (src/cli/pipeline_config.c): a good file's entries and the exact arguments it maps to (order,
 * relative paths, booleans, lists, properties, the other command's section left alone), every refusal with its
 * message and line, and the command-line hook (--config found among other options' values, removed, its
 * arguments put before the command line's). */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "cli/pipeline_config.h"
#include "cli/schema_cli.h"

static char msg[1024];

/* A command's table as cmd_sink.c has it (what the mapping sees of a command). */
static const struct option sink_opts[] = {
    {"brokers", required_argument, 0, 1},       {"topic", required_argument, 0, 2},
    {"group", required_argument, 0, 3},         {"warehouse", required_argument, 0, 4},
    {"create-table", no_argument, 0, 5},        {"table", required_argument, 0, 6},
    {"flush-ms", required_argument, 0, 7},      {"password", required_argument, 0, 8},
    {"password-file", required_argument, 0, 9}, {"writer-schema", required_argument, 0, 10},
    {"ca-file", required_argument, 0, 11},      {"kafka-config", required_argument, 0, 12},
    {"from", required_argument, 0, 13},         {"token", required_argument, 0, 14},
    TP_CLI_SCHEMA_LONGOPTS,                     {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static const char good[] = "# the pipeline\n"
                           "schema: {descriptor: ev.pb, message: fleet.ev.v1.EvTelemetry, key_field: vin}\n"
                           "kafka:\n"
                           "  brokers: 127.0.0.1:9092\n"
                           "  topic: ev\n"
                           "  config: secrets/kafka.properties\n"
                           "  properties:\n"
                           "    linger.ms: 20\n"
                           "    client.id: \"sink a\"\n"
                           "sink:\n"
                           "  table: ev          # a comment\n"
                           "  warehouse: 'sqlite:data/ev.db'\n"
                           "  create_table: true\n"
                           "  flush_ms: 1000\n"
                           "  writer_schema: [v2.pb, /abs/v3.pb]\n"
                           "  from: '-'\n"
                           "  properties: {fetch.wait.max.ms: 50}\n"
                           "ingest:\n"
                           "  linger_ms: 500\n"
                           "  not_a_sink_key: 1\n";

static void test_good(void)
{
    tp_pipeline_config *c = NULL;
    CHECK_ERR(tp_pipeline_config_parse("conf/p.yaml", good, sizeof good - 1, &c, msg, sizeof msg), TP_OK);
    if (!c)
        return;
    CHECK_INT(tp_pipeline_config_count(c), 18);
    const tp_pipeline_entry *e = tp_pipeline_config_entry(c, 0);
    CHECK_STR(e->section, "schema");
    CHECK_STR(e->key, "descriptor");
    CHECK_STR(e->value, "ev.pb");
    CHECK_INT(e->line, 2);
    e = tp_pipeline_config_entry(c, 7);
    CHECK_STR(e->key, "properties");
    CHECK_STR(e->prop, "client.id");
    CHECK_STR(e->value, "sink a");
    CHECK_INT(e->line, 9);
    CHECK(!e->plain);
    CHECK(tp_pipeline_config_entry(c, 18) == NULL);
    CHECK(tp_pipeline_config_entry(c, 12)->in_list && !tp_pipeline_config_entry(c, 11)->in_list);
    CHECK(tp_pipeline_config_has_section(c, "ingest"));
    char **args;
    size_t n;
    CHECK_ERR(tp_pipeline_config_args(c, "sink", sink_opts, &args, &n, msg, sizeof msg), TP_OK);
    const char *want[] = {"--schema=conf/ev.pb", "--message=fleet.ev.v1.EvTelemetry", "--key-field=vin",
                          "--brokers=127.0.0.1:9092", "--topic=ev", "--kafka-config=conf/secrets/kafka.properties",
                          "-X", "linger.ms=20", "-X", "client.id=sink a", "--table=ev",
                          "--warehouse=sqlite:conf/data/ev.db", "--create-table", "--flush-ms=1000",
                          "--writer-schema=conf/v2.pb", "--writer-schema=/abs/v3.pb", "--from=-", "-X",
                          "fetch.wait.max.ms=50"};
    CHECK_INT(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n && i < sizeof want / sizeof want[0]; i++)
        CHECK_STR(args[i], want[i]);
    tp_pipeline_config_free(c);

    /* in the working directory: paths stay as written; false leaves a flag out */
    const char cwd[] = "sink: {warehouse: 'sqlite:ev.db', create_table: false, ca_file: ca.pem}\n";
    CHECK_ERR(tp_pipeline_config_parse("p.yaml", cwd, sizeof cwd - 1, &c, msg, sizeof msg), TP_OK);
    CHECK_ERR(tp_pipeline_config_args(c, "sink", sink_opts, &args, &n, msg, sizeof msg), TP_OK);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(args[0], "--warehouse=sqlite:ev.db");
        CHECK_STR(args[1], "--ca-file=ca.pem");
    }
    tp_pipeline_config_free(c);
    /* a file at the root */
    CHECK_ERR(tp_pipeline_config_parse("/p.yaml", cwd, sizeof cwd - 1, &c, msg, sizeof msg), TP_OK);
    CHECK_ERR(tp_pipeline_config_args(c, "sink", sink_opts, &args, &n, msg, sizeof msg), TP_OK);
    if (n == 2)
        CHECK_STR(args[1], "--ca-file=/ca.pem");
    tp_pipeline_config_free(c);
}

/* The file is refused (by the parser or by the mapping onto sink_opts) with exactly want. */
static void refused(const char *yaml, const char *want, int line)
{
    tp_pipeline_config *c = NULL;
    msg[0] = 0;
    tp_err e = tp_pipeline_config_parse("p.yaml", yaml, strlen(yaml), &c, msg, sizeof msg);
    if (!e) {
        char **args;
        size_t n;
        e = tp_pipeline_config_args(c, "sink", sink_opts, &args, &n, msg, sizeof msg);
        tp_pipeline_config_free(c);
    }
    check_count++;
    if (e != TP_ERR_PARSE || strcmp(msg, want)) {
        check_failures++;
        fprintf(stderr, "line %d: refusal of '%s': error %d, message\n  %s\nwanted\n  %s\n", line, yaml, (int)e, msg,
                want);
    }
}
#define REFUSED(yaml, want) refused(yaml, want, __LINE__)

static void test_refused(void)
{
    REFUSED("sink:\n  table: ev\n  flush_msec: 5\n",
            "p.yaml:3: unknown key \"flush_msec\" in sink (did you mean flush_ms?)");
    REFUSED("sink:\n  flush-ms: 5\n", "p.yaml:2: unknown key \"flush-ms\" in sink (did you mean flush_ms?)");
    REFUSED("sink:\n  zzzzzzzz: 5\n",
            "p.yaml:2: unknown key \"zzzzzzzz\" in sink (telepack sink --config-keys lists the keys)");
    REFUSED("sink:\n  help: true\n",
            "p.yaml:2: unknown key \"help\" in sink (telepack sink --config-keys lists the keys)");
    REFUSED("kafka:\n  group: g\n", "p.yaml:2: unknown key \"group\" in kafka (telepack sink --config-keys lists the "
                                    "keys)");
    REFUSED("kafka:\n  topics: g\n", "p.yaml:2: unknown key \"topics\" in kafka (did you mean topic?)");
    REFUSED("schema:\n  schema: ev.pb\n", "p.yaml:2: unknown key \"schema\" in schema (telepack sink --config-keys "
                                          "lists the keys)");
    REFUSED("schema:\n  mesage: M\n", "p.yaml:2: unknown key \"mesage\" in schema (did you mean message?)");
    REFUSED("sink:\n  message: M\n", "p.yaml:2: key \"message\" belongs in the schema section, not in sink");
    REFUSED("sink:\n  schema: ev.pb\n",
            "p.yaml:2: key \"schema\" belongs in the schema section (as descriptor), not in sink");
    REFUSED("snk:\n  table: x\n", "p.yaml:1: unknown section \"snk\" (did you mean sink?)");
    REFUSED("warehouse: x\n", "p.yaml:1: unknown section \"warehouse\" (the sections are schema, kafka, ingest and "
                              "sink)");
    REFUSED("sink:\n  table: x\n\tflush_ms: 1\n",
            "p.yaml:3: a tab character: indent with spaces (tabs are refused anywhere in the file)");
    REFUSED("sink:\n  table: \"a\tb\"\n",
            "p.yaml:2: a tab character: indent with spaces (tabs are refused anywhere in the file)");
    REFUSED("sink: {table: a}\n---\nsink: {table: b}\n",
            "p.yaml:2: a second YAML document: the file holds one (no second ---)");
    REFUSED("sink: {table: &t a}\ningest: {x: *t}\n",
            "p.yaml:1: an anchor (&t): anchors and aliases are not supported");
    REFUSED("sink: {table: *t}\n", "p.yaml:1: an alias (*t): anchors and aliases are not supported; write the value "
                                   "out");
    REFUSED("sink:\n  table: !!str a\n", "p.yaml:2: a tag (tag:yaml.org,2002:str): tags are not supported; every "
                                         "value is text");
    REFUSED("sink:\n  table: a\n  group: g\n  table: b\n",
            "p.yaml:4: duplicate key \"table\" in sink (first on line 2)");
    REFUSED("sink: {table: a}\nkafka: {topic: t}\nsink: {group: g}\n",
            "p.yaml:3: duplicate section \"sink\" (first on line 1)");
    REFUSED("kafka:\n  properties:\n    a.b: 1\n    a.b: 2\n",
            "p.yaml:4: duplicate property a.b in kafka.properties (first on line 3)");
    REFUSED("sink:\n  table:\n    name: x\n", "p.yaml:3: key \"table\" in sink takes a value, not a mapping");
    REFUSED("sink:\n  writer_schema: [a.pb, [b.pb]]\n",
            "p.yaml:2: an item of the list \"writer_schema\" in sink must be a value, not a list");
    REFUSED("sink:\n  writer_schema: []\n", "p.yaml:2: the list \"writer_schema\" in sink is empty");
    REFUSED("sink:\n  create_table: [true]\n",
            "p.yaml:2: key \"create_table\" in sink is true or false (--create-table takes no value), not 'true'");
    REFUSED("sink:\n  create_table: yes\n",
            "p.yaml:2: key \"create_table\" in sink is true or false (--create-table takes no value), not 'yes'");
    REFUSED("sink:\n  create_table: \"true\"\n",
            "p.yaml:2: key \"create_table\" in sink is true or false (--create-table takes no value), not 'true'");
    REFUSED("sink:\n  table:\n  group: g\n", "p.yaml:2: key \"table\" in sink has no value");
    REFUSED("sink:\n  table: ~\n", "p.yaml:2: key \"table\" in sink has no value");
    REFUSED("kafka:\n  properties: {a.b: null}\n", "p.yaml:2: property a.b in kafka has no value");
    REFUSED("sink:\n  properties: x\n",
            "p.yaml:2: properties in sink must be a mapping of librdkafka properties (NAME: VALUE), not a value");
    REFUSED("kafka:\n  properties: {}\n", "p.yaml:2: properties in kafka is empty");
    REFUSED("kafka:\n  properties:\n    a: {b: c}\n", "p.yaml:3: property a in kafka takes a value, not a mapping");
    REFUSED("sink:\n  password: hunter2\n", "p.yaml:2: key \"password\" in sink would put a secret in this file: "
                                            "name a file holding it with password_file");
    REFUSED("sink:\n  token: abc\n", "p.yaml:2: key \"token\" in sink would put a secret in this file: give it "
                                     "another way (a file, the environment)");
    REFUSED("kafka:\n  properties:\n    sasl.password: hunter2\n",
            "p.yaml:3: property sasl.password in kafka would put a secret in this file: put it in the file named by "
            "kafka.config (--kafka-config), readable only by the service");
    REFUSED("sink:\n  properties: {ssl.key.pem: x}\n",
            "p.yaml:2: property ssl.key.pem in sink would put a secret in this file: put it in the file named by "
            "kafka.config (--kafka-config), readable only by the service");
    REFUSED("", "p.yaml: the file holds no settings");
    REFUSED("# nothing\n", "p.yaml: the file holds no settings");
    REFUSED("- sink\n", "p.yaml:1: the file must be a mapping of sections (schema, kafka, ingest, sink), not a list");
    REFUSED("sink\n", "p.yaml:1: the file must be a mapping of sections (schema, kafka, ingest, sink), not a value");
    REFUSED("sink: table\n", "p.yaml:1: section sink must be a mapping of keys (KEY: VALUE), not a value");
    REFUSED("sink:\n", "p.yaml:1: section sink must be a mapping of keys (KEY: VALUE), not an empty value");
    REFUSED("sink:\n  ? [a]\n  : b\n", "p.yaml:2: a key in sink must be a word of 1 to 64 bytes, not a list");
    REFUSED("sink:\n  table: 'a\n", "p.yaml:3: not valid YAML: found unexpected end of stream (while scanning a "
                                    "quoted scalar)");
    REFUSED("sink:\n  table: a\n flush_ms: 1\n",
            "p.yaml:3: not valid YAML: did not find expected key (while parsing a block mapping)");
    REFUSED("sink:\n  table: \"a\\0b\"\n", "p.yaml:2: the value of table in sink is longer than 4096 bytes or holds "
                                           "a NUL");
    /* an ingest section is checked for shape by sink, not for its keys */
    REFUSED("ingest:\n  linger_ms: {a: 1}\n", "p.yaml:2: key \"linger_ms\" in ingest takes a value, not a mapping");
}

static void test_bounds(void)
{
    /* a value over the cap */
    size_t big = TP_PIPELINE_CONFIG_MAX_VALUE + 1;
    char *y = malloc(big + 64);
    int k = sprintf(y, "sink:\n  table: ");
    memset(y + k, 'a', big);
    strcpy(y + k + big, "\n");
    REFUSED(y, "p.yaml:2: the value of table in sink is longer than 4096 bytes or holds a NUL");
    free(y);
    /* too many settings */
    size_t n = TP_PIPELINE_CONFIG_MAX_ENTRIES + 1;
    y = malloc(n * 12 + 64);
    k = sprintf(y, "sink:\n  writer_schema:\n");
    for (size_t i = 0; i < n; i++)
        k += sprintf(y + k, "  - a.pb\n");
    REFUSED(y, "p.yaml:1027: more than 1024 settings");
    free(y);
    /* a file over the size cap: refused before parsing */
    size_t len = TP_PIPELINE_CONFIG_MAX_BYTES + 1;
    y = malloc(len);
    memset(y, '#', len);
    tp_pipeline_config *c = NULL;
    CHECK_ERR(tp_pipeline_config_parse("p.yaml", y, len, &c, msg, sizeof msg), TP_ERR_PARSE);
    CHECK_STR(msg, "p.yaml: is larger than 1048576 bytes");
    free(y);
    /* deep nesting stops at the first level that does not fit, however deep the rest */
    len = 200000;
    y = malloc(len + 16);
    k = sprintf(y, "sink: {a: ");
    memset(y + k, '[', len);
    y[k + len] = 0;
    REFUSED(y, "p.yaml:1: an item of the list \"a\" in sink must be a value, not a list");
    free(y);
    /* an alias bomb: refused at the first anchor, nothing expanded */
    REFUSED("sink:\n  a: &a [x, x, x, x, x, x, x, x, x]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n",
            "p.yaml:2: an anchor (&a): anchors and aliases are not supported");
}

static void test_hook(void)
{
    char dir[] = "/tmp/tp_pipeconf_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    char path[256], arg[300];
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("schema: {descriptor: ev.pb, message: M}\nkafka: {topic: ev}\nsink: {table: t, create_table: true}\n", f);
    fclose(f);
    /* --config after an option whose value looks like it ("--group --config" is a group named --config) */
    char *av[] = {"sink", "--group", "--config", "--config", path, "-X", "--config", "--table=u", "--", "x", NULL};
    int ac = 10;
    char **argv = av;
    CHECK_INT(tp_cli_config_apply("sink", ":hX:", sink_opts, &ac, &argv), -1);
    snprintf(arg, sizeof arg, "--schema=%s/ev.pb", dir);
    const char *want[] = {"sink", arg, "--message=M", "--topic=ev", "--table=t", "--create-table", "--group",
                          "--config", "-X", "--config", "--table=u", "--", "x"};
    CHECK_INT(ac, sizeof want / sizeof want[0]);
    for (int i = 0; i < ac && i < (int)(sizeof want / sizeof want[0]); i++)
        CHECK_STR(argv[i], want[i]);
    CHECK(argv[ac] == NULL);
    /* --config=FILE; no --config: nothing changes */
    snprintf(arg, sizeof arg, "--config=%s", path);
    char *av2[] = {"sink", arg, NULL};
    ac = 2;
    argv = av2;
    CHECK_INT(tp_cli_config_apply("sink", ":hX:", sink_opts, &ac, &argv), -1);
    CHECK_INT(ac, 6);
    char *av3[] = {"sink", "--table", "t", "--", "--config", "x", NULL};
    ac = 6;
    argv = av3;
    CHECK_INT(tp_cli_config_apply("sink", ":hX:", sink_opts, &ac, &argv), -1);
    CHECK(argv == av3 && ac == 6);
    /* ingest switches to its schema path on a file with a schema section */
    char *av4[] = {"ingest", "--config", path, NULL};
    CHECK(tp_cli_config_has_schema(3, av4));
    char *av5[] = {"ingest", "--config", "/nonexistent/p.yaml", NULL};
    CHECK(!tp_cli_config_has_schema(3, av5));
    /* a bad file and a missing one: exit status 2 */
    char *av6[] = {"sink", "--config", "/nonexistent/p.yaml", NULL};
    ac = 3;
    argv = av6;
    CHECK_INT(tp_cli_config_apply("sink", ":hX:", sink_opts, &ac, &argv), 2);
    char *av7[] = {"sink", "--config", path, "--config", path, NULL};
    ac = 5;
    argv = av7;
    CHECK_INT(tp_cli_config_apply("sink", ":hX:", sink_opts, &ac, &argv), 2);
    tp_cli_config_release();
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_good();
    test_refused();
    test_bounds();
    test_hook();
    return check_exit();
}
