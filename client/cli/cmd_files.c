/* cwsandbox files read|write: the official CLI's file commands, on the engine of cp. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Options both subcommands accept. */
struct files_args {
    bool quiet;
    double timeout_s; /* 0: no limit */
    const char *output;
    struct cli_opts o;
};

/* Returns CLI_GO_ON or an exit status. */
static int parse_files(struct cli *cli, int argc, char **argv, bool reading, struct files_args *a)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"timeout", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    a->o = (struct cli_opts){.cli = cli,
                             .argc = argc,
                             .argv = argv,
                             .optstring = reading ? "ho:t:q" : "ht:q",
                             .longopts = reading ? longopts : longopts + 1};
    int c;
    while ((c = cli_opt_next(&a->o)) != -1) {
        switch (c) {
        case CLI_OPT_EXIT:
            return a->o.status;
        case 'o':
            a->output = optarg;
            break;
        case 't':
            if (cli_parse_seconds(cli, "--timeout", optarg, &a->timeout_s) < 0)
                return CLI_EXIT_USAGE;
            break;
        case 'q':
            a->quiet = true;
            break;
        }
    }
    if (reading)
        return cli_want_args(cli, &a->o, 2, 2, "SANDBOX_ID REMOTE_PATH") ? CLI_EXIT_USAGE
                                                                         : CLI_GO_ON;
    return cli_want_args(cli, &a->o, 3, 3, "SANDBOX_ID REMOTE_PATH LOCAL_PATH") ? CLI_EXIT_USAGE
                                                                                : CLI_GO_ON;
}

/* The remote side, from the separate SANDBOX_ID and REMOTE_PATH arguments. */
static int remote_endpoint(struct cli *cli, const char *id, const char *path,
                           struct cli_endpoint *ret)
{
    memset(ret, 0, sizeof(*ret));
    if (!*id || strchr(id, '/')) {
        cli_usage_error(cli, "'%s' is not a sandbox id", id);
        return -CWS_E_INVALID_ARGUMENT;
    }
    if (path[0] != '/') {
        cli_usage_error(cli, "REMOTE_PATH must be absolute, not '%s'", path);
        return -CWS_E_INVALID_ARGUMENT;
    }
    ret->id = strdup(id);
    ret->path = path;
    if (!ret->id) {
        cli_error(cli, "out of memory");
        return -CWS_E_NOMEM;
    }
    return 0;
}

static int copy(struct cli *cli, const struct cli_endpoint *src, const struct cli_endpoint *dst,
                const struct files_args *a, uint64_t *ret_bytes)
{
    struct cws_error err = {0};
    struct cli_copy_options co = {
        .quiet = a->quiet,
        .timeout_ms = cli_timeout_ms(a->timeout_s),
    };
    int r = cli_connect(cli, false, &err);
    if (r == 0)
        r = cli_copy(cli, src, dst, &co, ret_bytes, &err);
    return cli_fail(cli, r, &err);
}

static int run_read(struct cli *cli, int argc, char **argv)
{
    struct files_args a = {0};
    struct cli_endpoint src = {0}, dst = {.path = "-", .std = true};
    int status = parse_files(cli, argc, argv, true, &a);
    if (status != CLI_GO_ON)
        return status;
    int r = remote_endpoint(cli, a.o.args[0], a.o.args[1], &src);
    if (r < 0)
        return r == -CWS_E_NOMEM ? CLI_EXIT_FAILURE : CLI_EXIT_USAGE;
    if (a.output && strcmp(a.output, "-") != 0)
        dst = (struct cli_endpoint){.path = a.output};
    status = copy(cli, &src, &dst, &a, NULL);
    cli_endpoint_clear(&src);
    return status;
}

static int run_write(struct cli *cli, int argc, char **argv)
{
    struct files_args a = {0};
    struct cli_endpoint src = {0}, dst = {0};
    uint64_t bytes = 0;
    int status = parse_files(cli, argc, argv, false, &a);
    if (status != CLI_GO_ON)
        return status;
    int r = remote_endpoint(cli, a.o.args[0], a.o.args[1], &dst);
    if (r < 0)
        return r == -CWS_E_NOMEM ? CLI_EXIT_FAILURE : CLI_EXIT_USAGE;
    if (strcmp(a.o.args[2], "-") != 0 && access(a.o.args[2], R_OK) != 0) {
        cli_endpoint_clear(&dst);
        return cli_usage_error(cli, "cannot read LOCAL_PATH '%s': %s", a.o.args[2],
                               strerror(errno));
    }
    src = strcmp(a.o.args[2], "-") == 0 ? (struct cli_endpoint){.path = "-", .std = true}
                                        : (struct cli_endpoint){.path = a.o.args[2]};
    status = copy(cli, &src, &dst, &a, &bytes);
    if (status == CLI_EXIT_OK && !a.quiet)
        printf("Wrote %" PRIu64 " bytes to %s.\n", bytes, dst.path);
    cli_endpoint_clear(&dst);
    return status;
}

static const struct cli_command files_read = {
    .name = "read",
    .summary = "Write a sandbox's file to stdout (or to a local file)",
    .usage = "files read SANDBOX_ID REMOTE_PATH [-o LOCAL_PATH]",
    .help = "Options:\n"
            "  -o, --output PATH   write it there instead of stdout\n"
            "  -t, --timeout SECS  give up after this long\n"
            "  -q, --quiet         no progress bar\n"
            "  -h, --help          show this help\n",
    .run = run_read,
};

static const struct cli_command files_write = {
    .name = "write",
    .summary = "Write a local file (or stdin: '-') to a sandbox",
    .usage = "files write SANDBOX_ID REMOTE_PATH LOCAL_PATH",
    .help = "Prints \"Wrote N bytes to PATH.\".\n"
            "\n"
            "Options:\n"
            "  -t, --timeout SECS  give up after this long\n"
            "  -q, --quiet         print nothing, show no progress bar\n"
            "  -h, --help          show this help\n",
    .run = run_write,
};

static const struct cli_command *const files_subs[] = {&files_read, &files_write, NULL};

const struct cli_command cli_cmd_files = {
    .name = "files",
    .summary = "Read and write files in a sandbox",
    .usage = "files read|write ...",
    .help = "See also 'cwsandbox cp', which copies in both directions.\n",
    .subs = files_subs,
};
