/* cwsandbox purge: stop every sandbox that has the given tags. */
#include <inttypes.h>

#include "cli.h"

enum { OPT_DRY_RUN = 256 };

struct purge_args {
    struct cli_strv tags;
    bool dry_run, json;
};

/* Returns CLI_GO_ON or an exit status. */
static int parse_purge(struct cli *cli, int argc, char **argv, struct purge_args *a)
{
    static const struct option longopts[] = {
        {"tag", required_argument, NULL, 't'},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"output", required_argument, NULL, 'o'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct cli_opts o = {
        .cli = cli, .argc = argc, .argv = argv, .optstring = "ht:o:", .longopts = longopts};
    int c;
    while ((c = cli_opt_next(&o)) != -1) {
        switch (c) {
        case CLI_OPT_EXIT:
            return o.status;
        case 't':
            if (cli_strv_push(&a->tags, optarg) < 0)
                return cli_error(cli, "out of memory");
            break;
        case OPT_DRY_RUN:
            a->dry_run = true;
            break;
        case 'o':
            if (cli_parse_output(cli, optarg, &a->json) < 0)
                return CLI_EXIT_USAGE;
            break;
        }
    }
    if (cli_want_args(cli, &o, 0, 0, "no arguments"))
        return CLI_EXIT_USAGE;
    if (a->tags.n == 0)
        return cli_usage_error(cli, "give at least one --tag (-t): purge never stops everything");
    return CLI_GO_ON;
}

static int print_purge(struct cli *cli, const struct purge_args *a,
                       const struct cws_batch_result *res)
{
    if (a->json) {
        struct cli_json j;
        cli_json_init(&j, stdout);
        cli_json_begin_object(&j);
        cli_json_key(&j, "dry_run");
        cli_json_bool(&j, a->dry_run);
        cli_json_key(&j, "count");
        cli_json_uint(&j, res->count);
        cli_json_key(&j, "failed");
        cli_json_begin_array(&j);
        for (size_t i = 0; i < res->n_failed; i++)
            cli_json_string(&j, res->failed[i]);
        cli_json_end_array(&j);
        cli_json_end_object(&j);
        cli_json_finish(&j);
    } else {
        printf("%s %" PRIu64 " sandbox%s.\n", a->dry_run ? "Would purge" : "Purged", res->count,
               res->count == 1 ? "" : "es");
    }
    for (size_t i = 0; i < res->n_failed; i++)
        fprintf(stderr, "Error: could not stop sandbox %s\n", res->failed[i]);
    return res->n_failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

static int run_purge(struct cli *cli, int argc, char **argv)
{
    struct purge_args a = {0};
    struct cws_error err = {0};
    cws_op *op = NULL;
    int status = parse_purge(cli, argc, argv, &a);
    if (status == CLI_GO_ON) {
        int r = cli_connect(cli, false, &err);
        if (r == 0)
            r = cws_sandbox_purge(cli->client, cli_strv_get(&a.tags), a.dry_run, &op, &err);
        if (r == 0)
            r = cli_wait_op(cli, op, -1, &err);
        status = r == 0 ? print_purge(cli, &a, cws_op_batch_result(op)) : cli_fail(cli, r, &err);
    }
    cws_op_free(op);
    cli_strv_free(&a.tags);
    return status;
}

const struct cli_command cli_cmd_purge = {
    .name = "purge",
    .summary = "Stop every sandbox that has the given tags",
    .usage = "purge -t TAG [-t TAG]... [--dry-run] [-o table|json]",
    .help = "Options:\n"
            "  -t, --tag TAG          sandboxes with this tag (repeat: all must match; at least\n"
            "                         one is required)\n"
            "      --dry-run          only count them\n"
            "  -o, --output FORMAT    table (default) or json: {dry_run, count, failed}\n"
            "  -h, --help             show this help\n",
    .run = run_purge,
};
