/* cwsandbox session open|close|ls|show: named groups of sandboxes held by the daemon. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_IDLE_TTL = 256, OPT_IMAGE, OPT_TAG, OPT_KEEP };

struct session_args {
    const char *name;
    bool json, keep;
    double idle_ttl_s;
    cws_sandbox_config *defaults; /* open only; NULL until an option sets one */
};

static int ensure_defaults(struct session_args *a)
{
    return a->defaults ? 0 : cws_sandbox_config_new(&a->defaults);
}

/* One option of `session open` that sets a default of its sandboxes. */
static int set_default(struct cli *cli, int c, struct session_args *a)
{
    if (ensure_defaults(a) < 0)
        return cli_error(cli, "out of memory");
    if (c == OPT_IMAGE)
        cws_sandbox_config_set_image(a->defaults, optarg);
    else if (c == OPT_TAG)
        cws_sandbox_config_add_tag(a->defaults, optarg);
    else if (c == 'e') {
        const char *eq = strchr(optarg, '=');
        char *name = eq && eq != optarg ? strndup(optarg, (size_t)(eq - optarg)) : NULL;
        if (!name)
            return cli_usage_error(cli, "--env needs NAME=VALUE, not '%s'", optarg);
        cws_sandbox_config_set_env(a->defaults, name, eq + 1);
        free(name);
    }
    const struct cws_error *bad = cws_sandbox_config_error(a->defaults);
    return bad ? cli_usage_error(cli, "%s", bad->message) : CLI_GO_ON;
}

/* Parse the options every subcommand may take (each passes the ones it accepts), then at
 * most one NAME (default $CWSANDBOX_SESSION; required unless name_optional). Returns
 * CLI_GO_ON or an exit status. */
static int parse_session(struct cli *cli, int argc, char **argv, const char *optstring,
                         const struct option *longopts, int max_names, bool name_optional,
                         struct session_args *a)
{
    struct cli_opts o = {
        .cli = cli, .argc = argc, .argv = argv, .optstring = optstring, .longopts = longopts};
    int c, status;
    while ((c = cli_opt_next(&o)) != -1) {
        switch (c) {
        case CLI_OPT_EXIT:
            return o.status;
        case 'o':
            if (cli_parse_output(cli, optarg, &a->json) < 0)
                return CLI_EXIT_USAGE;
            break;
        case OPT_IDLE_TTL:
            if (cli_parse_seconds(cli, "--idle-ttl", optarg, &a->idle_ttl_s) < 0)
                return CLI_EXIT_USAGE;
            break;
        case OPT_KEEP:
            a->keep = true;
            break;
        default:
            if ((status = set_default(cli, c, a)) != CLI_GO_ON)
                return status;
            break;
        }
    }
    if (cli_want_args(cli, &o, 0, max_names, max_names ? "[NAME]" : "no arguments"))
        return CLI_EXIT_USAGE;
    a->name = o.n_args ? o.args[0] : getenv("CWSANDBOX_SESSION");
    if (a->name && !*a->name)
        a->name = NULL;
    if (max_names && !name_optional && !a->name)
        return cli_usage_error(cli, "missing argument: NAME (or set CWSANDBOX_SESSION)");
    return CLI_GO_ON;
}

static void session_json(struct cli_json *j, const struct cws_session_info *s)
{
    cli_json_begin_object(j);
    cli_json_key(j, "name");
    cli_json_string(j, s->name);
    cli_json_key(j, "sandboxes");
    cli_json_begin_array(j);
    for (size_t i = 0; i < s->n_sandboxes; i++)
        cli_json_string(j, s->sandbox_ids[i]);
    cli_json_end_array(j);
    cli_json_key(j, "clients");
    cli_json_uint(j, s->clients);
    cli_json_key(j, "idle_ttl_s");
    cli_json_double(j, s->idle_ttl_s);
    cli_json_key(j, "created_at");
    cli_json_time(j, s->created_ms);
    cli_json_end_object(j);
}

static void session_details(const struct cws_session_info *s)
{
    char line[64], created[32];
    cli_kv(stdout, 9, "NAME", s->name);
    snprintf(line, sizeof(line), "%" PRIu64, s->clients);
    cli_kv(stdout, 9, "CLIENTS", line);
    if (s->idle_ttl_s > 0)
        snprintf(line, sizeof(line), "%g s", s->idle_ttl_s);
    else
        snprintf(line, sizeof(line), "never");
    cli_kv(stdout, 9, "IDLE TTL", line);
    cli_kv(stdout, 9, "CREATED", cli_format_time(s->created_ms, created, sizeof(created)));
    if (s->n_sandboxes == 0)
        cli_kv(stdout, 9, "SANDBOXES", NULL);
    for (size_t i = 0; i < s->n_sandboxes; i++)
        cli_kv(stdout, 9, i == 0 ? "SANDBOXES" : "", s->sandbox_ids[i]);
}

static void print_session(const struct session_args *a, const struct cws_session_info *s)
{
    if (a->json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        session_json(&j, s);
        cli_json_finish(&j);
    } else {
        session_details(s);
    }
}

/* Connect, start an op with start(), wait for it. Returns 0 with *ret_op (the caller frees
 * it) or the error. */
static int call(struct cli *cli, const struct session_args *a,
                int (*start)(struct cli *, const struct session_args *, cws_op **,
                             struct cws_error *),
                cws_op **ret_op, struct cws_error *err)
{
    cws_op *op = NULL;
    int r = cli_connect(cli, false, err);
    if (r == 0)
        r = start(cli, a, &op, err);
    if (r == 0)
        r = cli_wait_op(cli, op, -1, err);
    if (r < 0)
        cws_op_free(op);
    else
        *ret_op = op;
    return r;
}

/* ---- open ---- (each start_* begins its call; the caller frees *ret_op) */

static int start_open(struct cli *cli, const struct session_args *a, cws_op **ret_op,
                      struct cws_error *err)
{
    return cws_session_open(cli->client, a->name, a->defaults, a->idle_ttl_s, ret_op, err);
}

static int run_open(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"idle-ttl", required_argument, NULL, OPT_IDLE_TTL},
        {"image", required_argument, NULL, OPT_IMAGE},
        {"tag", required_argument, NULL, OPT_TAG},
        {"env", required_argument, NULL, 'e'},
        {"output", required_argument, NULL, 'o'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct session_args a = {0};
    struct cws_error err = {0};
    cws_op *op = NULL;
    int status = parse_session(cli, argc, argv, "he:o:", longopts, 1, true, &a);
    if (status == CLI_GO_ON) {
        int r = call(cli, &a, start_open, &op, &err);
        if (r == 0 && a.json)
            print_session(&a, cws_op_session(op));
        else if (r == 0)
            printf("%s\n", cws_op_session(op)->name);
        status = cli_fail(cli, r, &err);
    }
    cws_op_free(op);
    cws_sandbox_config_free(a.defaults);
    return status;
}

/* ---- close ---- */

static int start_close(struct cli *cli, const struct session_args *a, cws_op **ret_op,
                       struct cws_error *err)
{
    return cws_session_close(cli->client, a->name, a->keep, ret_op, err);
}

static int run_close(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"keep-sandboxes", no_argument, NULL, OPT_KEEP},
        {"keep", no_argument, NULL, OPT_KEEP},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct session_args a = {0};
    struct cws_error err = {0};
    cws_op *op = NULL;
    int status = parse_session(cli, argc, argv, "h", longopts, 1, false, &a);
    if (status != CLI_GO_ON)
        return status;
    int r = call(cli, &a, start_close, &op, &err);
    if (r == 0) {
        const struct cws_batch_result *res = cws_op_batch_result(op);
        printf("Closed session %s (%" PRIu64 " sandbox%s stopped).\n", a.name, res ? res->count : 0,
               res && res->count == 1 ? "" : "es");
        for (size_t i = 0; res && i < res->n_failed; i++)
            fprintf(stderr, "Error: could not stop sandbox %s\n", res->failed[i]);
        status = res && res->n_failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
    } else {
        status = cli_fail(cli, r, &err);
    }
    cws_op_free(op);
    return status;
}

/* ---- ls ---- */

static int start_list(struct cli *cli, const struct session_args *a, cws_op **ret_op,
                      struct cws_error *err)
{
    return cws_session_list(cli->client, ret_op, err);
}

static int sessions_table(const struct cws_session_info *ss, size_t n)
{
    static const char *const headers[] = {"NAME", "SANDBOXES", "CLIENTS", "IDLE TTL", "CREATED AT"};
    struct cli_table t;
    int r = 0;
    if (n == 0) {
        printf("No sessions found.\n");
        return 0;
    }
    cli_table_init(&t, 5, headers, NULL);
    for (size_t i = 0; r == 0 && i < n; i++) {
        char count[32], clients[32], ttl[32], created[32];
        snprintf(count, sizeof(count), "%zu", ss[i].n_sandboxes);
        snprintf(clients, sizeof(clients), "%" PRIu64, ss[i].clients);
        if (ss[i].idle_ttl_s > 0)
            snprintf(ttl, sizeof(ttl), "%g s", ss[i].idle_ttl_s);
        else
            snprintf(ttl, sizeof(ttl), "never");
        const char *row[] = {ss[i].name, count, clients, ttl,
                             cli_format_time(ss[i].created_ms, created, sizeof(created))};
        r = cli_table_add(&t, row);
    }
    if (r == 0)
        cli_table_print(&t, stdout);
    cli_table_free(&t);
    return r;
}

static int run_ls(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct session_args a = {0};
    struct cws_error err = {0};
    cws_op *op = NULL;
    int status = parse_session(cli, argc, argv, "ho:", longopts, 0, true, &a);
    if (status != CLI_GO_ON)
        return status;
    int r = call(cli, &a, start_list, &op, &err);
    if (r == 0) {
        size_t n = 0;
        const struct cws_session_info *ss = cws_op_sessions(op, &n);
        if (a.json) {
            struct cli_json j;
            cli_json_init(&j, stdout);
            cli_json_begin_array(&j);
            for (size_t i = 0; i < n; i++)
                session_json(&j, &ss[i]);
            cli_json_end_array(&j);
            cli_json_finish(&j);
        } else if (sessions_table(ss, n) < 0) {
            r = cws_error_set(&err, CWS_E_NOMEM, NULL);
        }
    }
    cws_op_free(op);
    return cli_fail(cli, r, &err);
}

/* ---- show ---- */

static int start_get(struct cli *cli, const struct session_args *a, cws_op **ret_op,
                     struct cws_error *err)
{
    return cws_session_get(cli->client, a->name, ret_op, err);
}

static int run_show(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct session_args a = {0};
    struct cws_error err = {0};
    cws_op *op = NULL;
    int status = parse_session(cli, argc, argv, "ho:", longopts, 1, false, &a);
    if (status != CLI_GO_ON)
        return status;
    int r = call(cli, &a, start_get, &op, &err);
    if (r == 0)
        print_session(&a, cws_op_session(op));
    cws_op_free(op);
    return cli_fail(cli, r, &err);
}

static const struct cli_command session_open = {
    .name = "open",
    .summary = "Open a session (or attach to an open one) and print its name",
    .usage = "session open [NAME] [--idle-ttl SECS] [--image I] [-e NAME=VALUE]... "
             "[--tag T]... [-o table|json]",
    .help = "Sandboxes created with --session NAME, or while CWSANDBOX_SESSION=NAME is set,\n"
            "join the session and live until it is closed or idles past its TTL:\n"
            "\n"
            "  export CWSANDBOX_SESSION=$(cwsandbox session open)\n"
            "\n"
            "Options:\n"
            "      --idle-ttl SECS     close it after this long without clients\n"
            "      --image IMAGE       default image of its sandboxes\n"
            "  -e, --env NAME=VALUE    default environment variable (repeatable)\n"
            "      --tag TAG           default tag (repeatable)\n"
            "  -o, --output FORMAT     table (the name only; default) or json: {name,\n"
            "                          sandboxes, clients, idle_ttl_s, created_at}\n"
            "  -h, --help              show this help\n",
    .run = run_open,
};

static const struct cli_command session_close = {
    .name = "close",
    .summary = "Close a session, stopping its sandboxes",
    .usage = "session close [NAME] [--keep-sandboxes]",
    .help = "NAME defaults to $CWSANDBOX_SESSION. Stops every sandbox of the session but\n"
            "detached ones, waits until each has ended, and reports how many were stopped;\n"
            "those that could not be stopped are listed with the reason (exit status 1).\n"
            "\n"
            "Options:\n"
            "      --keep-sandboxes   do not stop its sandboxes: they stay, detached (also\n"
            "                         --keep)\n"
            "  -h, --help             show this help\n",
    .run = run_close,
};

static const struct cli_command session_ls = {
    .name = "ls",
    .summary = "List the open sessions",
    .usage = "session ls [-o table|json]",
    .help = "Options:\n"
            "  -o, --output FORMAT  table (default) or json: an array of {name, sandboxes,\n"
            "                       clients, idle_ttl_s, created_at}\n"
            "  -h, --help           show this help\n",
    .run = run_ls,
};

static const struct cli_command session_show = {
    .name = "show",
    .summary = "Show one session",
    .usage = "session show [NAME] [-o table|json]",
    .help = "NAME defaults to $CWSANDBOX_SESSION.\n"
            "\n"
            "Options:\n"
            "  -o, --output FORMAT  table (default) or json\n"
            "  -h, --help           show this help\n",
    .run = run_show,
};

static const struct cli_command *const session_subs[] = {&session_open, &session_close, &session_ls,
                                                         &session_show, NULL};

const struct cli_command cli_cmd_session = {
    .name = "session",
    .summary = "Open, close, list and show sessions",
    .usage = "session open|close|ls|show ...",
    .help = "",
    .subs = session_subs,
};
