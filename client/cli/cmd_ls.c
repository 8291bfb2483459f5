/* cwsandbox ls: list sandboxes, as a table or JSON. */
#include <string.h>

#include "cli.h"

enum { OPT_SESSION = 256 };

struct ls_args {
    struct cli_strv tags, runners;
    enum cws_sandbox_state state;
    const char *session;
    bool all, json, quiet;
};

/* Parse the command line into a. Returns CLI_GO_ON or an exit status. */
static int parse_ls(struct cli *cli, int argc, char **argv, struct ls_args *a)
{
    static const struct option longopts[] = {
        {"status", required_argument, NULL, 's'},
        {"tag", required_argument, NULL, 't'},
        {"runner-id", required_argument, NULL, 'T'},
        {"output", required_argument, NULL, 'o'},
        {"all", no_argument, NULL, 'a'},
        {"quiet", no_argument, NULL, 'q'},
        {"session", required_argument, NULL, OPT_SESSION},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct cli_opts o = {
        .cli = cli, .argc = argc, .argv = argv, .optstring = "hs:t:T:o:aq", .longopts = longopts};
    int c;
    while ((c = cli_opt_next(&o)) != -1) {
        switch (c) {
        case CLI_OPT_EXIT:
            return o.status;
        case 's':
            if (cli_state_from_name(optarg, &a->state) < 0)
                return cli_usage_error(cli,
                                       "--status must be one of running, creating, pending, "
                                       "paused, terminating, completed, failed, terminated; "
                                       "not '%s'",
                                       optarg);
            break;
        case 't':
        case 'T':
            if (cli_strv_push(c == 't' ? &a->tags : &a->runners, optarg) < 0)
                return cli_error(cli, "out of memory");
            break;
        case 'o':
            if (cli_parse_output(cli, optarg, &a->json) < 0)
                return CLI_EXIT_USAGE;
            break;
        case 'a':
            a->all = true;
            break;
        case 'q':
            a->quiet = true;
            break;
        case OPT_SESSION:
            a->session = optarg;
            break;
        }
    }
    return cli_want_args(cli, &o, 0, 0, "no arguments") ? CLI_EXIT_USAGE : CLI_GO_ON;
}

static void print_ls(const struct ls_args *a, const struct cws_sandbox_info *sbs, size_t n)
{
    if (a->json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        cli_json_begin_array(&j);
        for (size_t i = 0; i < n; i++)
            cli_sandbox_json(&j, &sbs[i]);
        cli_json_end_array(&j);
        cli_json_finish(&j);
    } else if (a->quiet) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", sbs[i].id);
    } else {
        cli_sandboxes_table(sbs, n, stdout);
    }
}

static int run_ls(struct cli *cli, int argc, char **argv)
{
    struct ls_args a = {.state = CWS_STATE_UNSPECIFIED};
    struct cws_error err = {0};
    cws_op *op = NULL;
    int status = parse_ls(cli, argc, argv, &a);
    if (status == CLI_GO_ON) {
        /* A terminal --status widens the search to terminal sandboxes, as in the official CLI. */
        struct cws_list_options lo = {
            .tags = a.tags.n ? cli_strv_get(&a.tags) : NULL,
            .runner_ids = a.runners.n ? cli_strv_get(&a.runners) : NULL,
            .state = a.state,
            .session = a.session,
            .show_terminated = a.all || cws_sandbox_state_is_terminal(a.state),
        };
        int r = cli_connect(cli, false, &err);
        if (r == 0)
            r = cws_sandbox_list(cli->client, &lo, &op, &err);
        if (r == 0)
            r = cli_wait_op(cli, op, -1, &err);
        if (r == 0) {
            size_t n = 0;
            const struct cws_sandbox_info *sbs = cws_op_sandboxes(op, &n);
            print_ls(&a, sbs, n);
        }
        status = cli_fail(cli, r, &err);
    }
    cws_op_free(op);
    cli_strv_free(&a.tags);
    cli_strv_free(&a.runners);
    return status;
}

const struct cli_command cli_cmd_ls = {
    .name = "ls",
    .summary = "List sandboxes",
    .usage = "ls [-s STATUS] [-t TAG]... [-T RUNNER_ID]... [--session NAME] [-a] [-q] "
             "[-o table|json]",
    .help = "Options:\n"
            "  -s, --status STATUS     only sandboxes in this state: running, creating, pending,\n"
            "                          paused, terminating, completed, failed, terminated\n"
            "  -t, --tag TAG           only sandboxes with this tag (repeat: all must match)\n"
            "  -T, --runner-id ID      only sandboxes on this runner (repeat: any may match)\n"
            "  -a, --all               include stopped sandboxes (implied by a terminal --status)\n"
            "      --session NAME      only the sandboxes of this session\n"
            "  -q, --quiet             print only the sandbox ids\n"
            "  -o, --output FORMAT     table (default) or json: an array of objects with\n"
            "                          sandbox_id, status, runner_id, runner_group_id,\n"
            "                          started_at, returncode, ...\n"
            "  -h, --help              show this help\n",
    .run = run_ls,
};
