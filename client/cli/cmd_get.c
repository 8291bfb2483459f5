/* cwsandbox get: one sandbox, as key/value rows or JSON. */
#include "cli.h"

enum { OPT_CACHED = 256 };

struct get_args {
    const char *id;
    bool json, cached;
};

/* Returns CLI_GO_ON or an exit status. */
static int parse_get(struct cli *cli, int argc, char **argv, struct get_args *a)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"cached", no_argument, NULL, OPT_CACHED},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct cli_opts o = {
        .cli = cli, .argc = argc, .argv = argv, .optstring = "ho:", .longopts = longopts};
    int c;
    while ((c = cli_opt_next(&o)) != -1) {
        switch (c) {
        case CLI_OPT_EXIT:
            return o.status;
        case 'o':
            if (cli_parse_output(cli, optarg, &a->json) < 0)
                return CLI_EXIT_USAGE;
            break;
        case OPT_CACHED:
            a->cached = true;
            break;
        }
    }
    if (cli_want_args(cli, &o, 1, 1, "SANDBOX_ID"))
        return CLI_EXIT_USAGE;
    a->id = o.args[0];
    return CLI_GO_ON;
}

static int run_get(struct cli *cli, int argc, char **argv)
{
    struct get_args a = {0};
    struct cws_error err = {0};
    cws_op *op = NULL;
    int status = parse_get(cli, argc, argv, &a);
    if (status != CLI_GO_ON)
        return status;
    int r = cli_connect(cli, false, &err);
    if (r == 0)
        r = cws_sandbox_get(cli->client, a.id, !a.cached, &op, &err);
    if (r == 0)
        r = cli_wait_op(cli, op, -1, &err);
    if (r == 0 && a.json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        cli_sandbox_json(&j, cws_op_sandbox(op));
        cli_json_finish(&j);
    } else if (r == 0) {
        cli_sandbox_details(cws_op_sandbox(op), stdout);
    }
    status = cli_fail(cli, r, &err);
    cws_op_free(op);
    return status;
}

const struct cli_command cli_cmd_get = {
    .name = "get",
    .summary = "Show one sandbox",
    .usage = "get SANDBOX_ID [-o table|json] [--cached]",
    .help = "Options:\n"
            "  -o, --output FORMAT  table (default) or json: sandbox_id, status, runner_id,\n"
            "                       runner_group_id, started_at, returncode, status_reason,\n"
            "                       created_at, ended_at, tags, services, session, owner\n"
            "      --cached         answer from the daemon's cache instead of asking the backend\n"
            "  -h, --help           show this help\n",
    .run = run_get,
};
