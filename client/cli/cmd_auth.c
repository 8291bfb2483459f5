/* cwsandbox auth status: which credentials the daemon uses, and where they came from (never
 * the secret itself: the protocol has no call that returns one). */
#include "cli.h"

static int run_status(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct cli_opts o = {
        .cli = cli, .argc = argc, .argv = argv, .optstring = "ho:", .longopts = longopts};
    struct cws_error err = {0};
    bool json = false;
    int c;
    while ((c = cli_opt_next(&o)) != -1) {
        if (c == CLI_OPT_EXIT)
            return o.status;
        if (c == 'o' && cli_parse_output(cli, optarg, &json) < 0)
            return CLI_EXIT_USAGE;
    }
    if (cli_want_args(cli, &o, 0, 0, "no arguments"))
        return CLI_EXIT_USAGE;
    int r = cli_connect(cli, false, &err);
    if (r < 0)
        return cli_fail(cli, r, &err);
    const struct cws_daemon_info *d = cws_client_daemon(cli->client);
    if (json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        cli_json_begin_object(&j);
        cli_json_key(&j, "strategy");
        cli_json_string(&j, d->auth.strategy);
        cli_json_key(&j, "source");
        cli_json_string(&j, d->auth.source);
        cli_json_key(&j, "backend");
        cli_json_string(&j, d->backend.kind);
        cli_json_key(&j, "backend_url");
        cli_json_string_or_null(&j, d->backend.url);
        cli_json_end_object(&j);
        cli_json_finish(&j);
    } else {
        cli_kv(stdout, 8, "Strategy", d->auth.strategy);
        cli_kv(stdout, 8, "Source", d->auth.source);
        cli_kv(stdout, 8, "Backend", d->backend.kind);
        cli_kv(stdout, 8, "URL", d->backend.url);
    }
    return CLI_EXIT_OK;
}

static const struct cli_command auth_status = {
    .name = "status",
    .summary = "Show the credential strategy in use and its source",
    .usage = "auth status [-o table|json]",
    .help = "Strategies: api_key (CWSANDBOX_API_KEY or the config file), wandb (WANDB_API_KEY\n"
            "or ~/.netrc), none (the local backend needs none). The secret is never shown.\n"
            "\n"
            "Options:\n"
            "  -o, --output FORMAT  table (default) or json: {strategy, source, backend,\n"
            "                       backend_url}\n"
            "  -h, --help           show this help\n",
    .run = run_status,
};

static const struct cli_command *const auth_subs[] = {&auth_status, NULL};

const struct cli_command cli_cmd_auth = {
    .name = "auth",
    .summary = "Show how the daemon authenticates",
    .usage = "auth status [-o table|json]",
    .help = "",
    .subs = auth_subs,
};
