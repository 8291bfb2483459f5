/* cwsandbox exec: run a command in a sandbox; exit with its exit code. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_TIMEOUT = 256 };

struct exec_args {
    struct cli_exec_request rq;
    struct cli_strv env;
};

/* The official CLI spells --timeout as -t, which is --tty here (as in docker). A bare "-t"
 * followed by a number and then a command can only be that timeout: accept it as one. */
static bool is_official_timeout(const struct cli_opts *o, double *ret_seconds)
{
    int need = o->n_taken ? 1 : 2; /* the command (and the id, when not given yet) */
    return strcmp(o->argv[optind - 1], "-t") == 0 && optind < o->argc &&
           strspn(o->argv[optind], "0123456789.") == strlen(o->argv[optind]) &&
           cli_duration(o->argv[optind], ret_seconds) == 0 && o->argc - optind - 1 >= need;
}

static int add_env(struct cli *cli, struct cli_strv *env, const char *arg)
{
    if (!strchr(arg, '=') || arg[0] == '=')
        return cli_usage_error(cli, "--env needs NAME=VALUE, not '%s'", arg);
    return cli_strv_push(env, arg) < 0 ? cli_error(cli, "out of memory") : CLI_GO_ON;
}

/* Returns CLI_GO_ON or an exit status. */
static int parse_exec(struct cli *cli, int argc, char **argv, struct exec_args *a)
{
    static const struct option longopts[] = {
        {"cwd", required_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"interactive", no_argument, NULL, 'i'},
        {"tty", no_argument, NULL, 't'},
        {"env", required_argument, NULL, 'e'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct cli_opts o = {.cli = cli,
                         .argc = argc,
                         .argv = argv,
                         .optstring = "hw:ite:",
                         .longopts = longopts,
                         .command_tail = true,
                         .n_fixed = 1};
    int c, status;
    while ((c = cli_opt_next(&o)) != -1) {
        switch (c) {
        case CLI_OPT_EXIT:
            return o.status;
        case 'w':
            a->rq.cwd = optarg;
            break;
        case OPT_TIMEOUT:
            if (cli_parse_seconds(cli, "--timeout", optarg, &a->rq.timeout_s) < 0)
                return CLI_EXIT_USAGE;
            break;
        case 'i':
            a->rq.forward_stdin = true;
            break;
        case 't':
            if (is_official_timeout(&o, &a->rq.timeout_s))
                optind++;
            else
                a->rq.tty = true;
            break;
        case 'e':
            if ((status = add_env(cli, &a->env, optarg)) != CLI_GO_ON)
                return status;
            break;
        }
    }
    if (o.n_taken < 1)
        return cli_usage_error(cli, "missing arguments: SANDBOX_ID COMMAND");
    if (o.n_command < 1)
        return cli_usage_error(cli, "missing argument: COMMAND (after the sandbox id)");
    if (a->rq.cwd && a->rq.cwd[0] != '/')
        return cli_usage_error(cli, "--cwd must be an absolute path, not '%s'", a->rq.cwd);
    a->rq.id = o.fixed[0];
    a->rq.argv = (const char *const *)o.command;
    a->rq.env = a->env.n ? cli_strv_get(&a->env) : NULL;
    return CLI_GO_ON;
}

static int run_exec(struct cli *cli, int argc, char **argv)
{
    struct exec_args a = {0};
    struct cws_error err = {0};
    int exit_code = 0;
    int status = parse_exec(cli, argc, argv, &a);
    if (status == CLI_GO_ON) {
        int r = cli_connect(cli, false, &err);
        if (r == 0)
            r = cli_exec_run(cli, &a.rq, &exit_code, &err);
        status = r == 0 ? cli_exit_from_remote(exit_code) : cli_fail(cli, r, &err);
    }
    cli_strv_free(&a.env);
    return status;
}

const struct cli_command cli_cmd_exec = {
    .name = "exec",
    .summary = "Run a command in a sandbox",
    .usage = "exec [OPTIONS] SANDBOX_ID [--] COMMAND [ARG]...",
    .help = "The command's stdout and stderr stream to yours, and cwsandbox exits with its exit\n"
            "status. Options go before the command: what follows it is the command's own.\n"
            "\n"
            "Options:\n"
            "  -w, --cwd DIR        run in this directory (absolute)\n"
            "      --timeout SECS   kill the command after this long (90, 90s, 10m, 2h)\n"
            "  -e, --env NAME=VALUE set an environment variable (repeatable)\n"
            "  -i, --interactive    forward stdin to the command (EOF closes it)\n"
            "  -t, --tty            run it on a terminal (with -i on a terminal: raw mode,\n"
            "                       window size followed); \"-t SECS COMMAND\" is read as\n"
            "                       --timeout, for scripts written for the official CLI\n"
            "  -h, --help           show this help\n"
            "\n"
            "Examples:\n"
            "  cwsandbox exec sbx-1234 python -c 'print(42)'\n"
            "  tar c src | cwsandbox exec -i sbx-1234 -- tar x -C /work\n",
    .run = run_exec,
};
