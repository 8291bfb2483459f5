/* cwsandbox stop and delete: end a sandbox, gracefully or at once. */
#include <string.h>

#include "cli.h"

enum { OPT_MISSING_OK = 256, OPT_GRACE, OPT_NO_WAIT, OPT_TIMEOUT };

struct stop_args {
    const char *id;
    bool missing_ok, quiet, no_wait;
    double grace_s; /* < 0: the default */
    double timeout_s;
};

/* Returns CLI_GO_ON or an exit status. */
static int parse_stop(struct cli *cli, int argc, char **argv, bool deleting, struct stop_args *a)
{
    static const struct option stop_opts[] = {
        {"missing-ok", no_argument, NULL, OPT_MISSING_OK},
        {"quiet", no_argument, NULL, 'q'},
        {"timeout", required_argument, NULL, 't'},
        {"graceful-shutdown-seconds", required_argument, NULL, OPT_GRACE},
        {"no-wait", no_argument, NULL, OPT_NO_WAIT},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    static const struct option delete_opts[] = {
        {"missing-ok", no_argument, NULL, OPT_MISSING_OK},
        {"quiet", no_argument, NULL, 'q'},
        {"timeout", required_argument, NULL, 't'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct cli_opts o = {.cli = cli,
                         .argc = argc,
                         .argv = argv,
                         .optstring = "hqt:",
                         .longopts = deleting ? delete_opts : stop_opts};
    int c;
    a->grace_s = -1;
    while ((c = cli_opt_next(&o)) != -1) {
        switch (c) {
        case CLI_OPT_EXIT:
            return o.status;
        case OPT_MISSING_OK:
            a->missing_ok = true;
            break;
        case 'q':
            a->quiet = true;
            break;
        case 't':
            if (cli_parse_seconds(cli, "--timeout", optarg, &a->timeout_s) < 0)
                return CLI_EXIT_USAGE;
            if (a->timeout_s <= 0)
                return cli_usage_error(cli, "--timeout must be more than 0");
            break;
        case OPT_GRACE:
            if (cli_parse_seconds(cli, "--graceful-shutdown-seconds", optarg, &a->grace_s) < 0)
                return CLI_EXIT_USAGE;
            break;
        case OPT_NO_WAIT:
            a->no_wait = true;
            break;
        }
    }
    if (cli_want_args(cli, &o, 1, 1, "SANDBOX_ID"))
        return CLI_EXIT_USAGE;
    a->id = o.args[0];
    return CLI_GO_ON;
}

/* Start the stop (or delete); the caller frees *ret_op. A grace of 0 is no grace: that is
 * what delete does (the protocol's stop reads 0 as its default of 10 s). */
static int start_stop(struct cli *cli, const struct stop_args *a, bool deleting, cws_op **ret_op,
                      struct cws_error *err)
{
    struct cws_stop_options so = {
        .grace_s = a->grace_s > 0 ? a->grace_s : 0,
        .missing_ok = a->missing_ok,
        .no_wait = a->no_wait,
    };
    if (deleting || a->grace_s == 0)
        return cws_sandbox_delete(cli->client, a->id, a->missing_ok, ret_op, err);
    return cws_sandbox_stop(cli->client, a->id, &so, ret_op, err);
}

static void report(const struct stop_args *a, bool deleting, cws_op *op)
{
    if (a->quiet)
        return;
    if (deleting)
        printf("Deleted sandbox %s.\n", a->id);
    else if (a->missing_ok && !cws_op_sandbox(op) && strcmp(cws_op_method(op), "sandbox.stop") == 0)
        printf("Sandbox %s is already missing.\n", a->id);
    else if (a->no_wait)
        printf("Stopping sandbox %s.\n", a->id);
    else
        printf("Stopped sandbox %s.\n", a->id);
}

static int stop_or_delete(struct cli *cli, int argc, char **argv, bool deleting)
{
    struct stop_args a = {0};
    struct cws_error err = {0};
    cws_op *op = NULL;
    int status = parse_stop(cli, argc, argv, deleting, &a);
    if (status != CLI_GO_ON)
        return status;
    int r = cli_connect(cli, false, &err);
    if (r == 0)
        r = start_stop(cli, &a, deleting, &op, &err);
    if (r == 0)
        r = cli_wait_op(cli, op, cli_timeout_ms(a.timeout_s), &err);
    if (r == 0)
        report(&a, deleting, op);
    status = cli_fail(cli, r, &err);
    cws_op_free(op);
    return status;
}

static int run_stop(struct cli *cli, int argc, char **argv)
{
    return stop_or_delete(cli, argc, argv, false);
}

static int run_delete(struct cli *cli, int argc, char **argv)
{
    return stop_or_delete(cli, argc, argv, true);
}

const struct cli_command cli_cmd_stop = {
    .name = "stop",
    .summary = "Stop a sandbox (SIGTERM, then SIGKILL after a grace period)",
    .usage = "stop SANDBOX_ID [--missing-ok] [--graceful-shutdown-seconds N] [--no-wait] [-q]",
    .help = "Waits until the sandbox has stopped. A stopped sandbox stays visible to get and\n"
            "'ls -a'.\n"
            "\n"
            "Options:\n"
            "      --missing-ok                   a sandbox that does not exist is not an error\n"
            "      --graceful-shutdown-seconds N  time between SIGTERM and SIGKILL (default\n"
            "                                     10; 0 kills at once)\n"
            "      --no-wait                      return once the stop is sent\n"
            "  -t, --timeout SECS                 give up waiting after this long\n"
            "  -q, --quiet                        print nothing\n"
            "  -h, --help                         show this help\n",
    .run = run_stop,
};

const struct cli_command cli_cmd_delete = {
    .name = "delete",
    .summary = "Delete a sandbox at once (no grace period)",
    .usage = "delete SANDBOX_ID [--missing-ok] [-q]",
    .help = "Options:\n"
            "      --missing-ok     a sandbox that does not exist is not an error\n"
            "  -t, --timeout SECS   give up waiting after this long\n"
            "  -q, --quiet          print nothing\n"
            "  -h, --help           show this help\n",
    .run = run_delete,
};
