/* cwsandbox version: this program's, the library's and the running daemon's versions. */
#include <inttypes.h>

#include "cli.h"

/* Connecting only to ask: a daemon that does not run is not started for this. */
#define VERSION_CONNECT_MS 2000

/* d: the running daemon's hello, or NULL when none runs. */
static void version_json(const struct cws_daemon_info *d)
{
    struct cli_json j;
    cli_json_init(&j, stdout);
    cli_json_begin_object(&j);
    cli_json_key(&j, "cli");
    cli_json_string(&j, CWS_VERSION);
    cli_json_key(&j, "library");
    cli_json_string(&j, cws_client_version());
    cli_json_key(&j, "protocol");
    cli_json_int(&j, CWS_PROTOCOL_LEVEL);
    cli_json_key(&j, "daemon");
    cli_json_string(&j, d ? d->daemon : NULL);
    cli_json_key(&j, "daemon_protocol");
    if (d)
        cli_json_int(&j, d->protocol);
    else
        cli_json_null(&j);
    cli_json_end_object(&j);
    cli_json_finish(&j);
}

static void version_text(const struct cws_daemon_info *d)
{
    printf("cwsandbox %s\n", CWS_VERSION);
    printf("libcwsandbox-client %s (protocol %d)\n", cws_client_version(), CWS_PROTOCOL_LEVEL);
    if (d)
        printf("%s (protocol %d, pid %" PRId64 ")\n", d->daemon, d->protocol, d->pid);
    else
        printf("cwsandboxd not running\n");
}

static int run_version(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct cli_opts o = {
        .cli = cli, .argc = argc, .argv = argv, .optstring = "ho:", .longopts = longopts};
    struct cws_client_options co = {
        .socket_path = cli->socket_path,
        .name = "cwsandbox-cli/" CWS_CLIENT_VERSION,
        .no_autostart = true,
        .timeout_ms = VERSION_CONNECT_MS,
    };
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
    const struct cws_daemon_info *d = NULL;
    if (cws_client_connect(&co, &cli->client, NULL) == 0)
        d = cws_client_daemon(cli->client);
    if (json)
        version_json(d);
    else
        version_text(d);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_version = {
    .name = "version",
    .summary = "Show the versions of cwsandbox, its library and the running daemon",
    .usage = "version [-o table|json]",
    .help = "Options:\n"
            "  -o, --output FORMAT  table (default) or json: {cli, library, protocol, daemon,\n"
            "                       daemon_protocol}\n"
            "  -h, --help           show this help\n",
    .run = run_version,
};
