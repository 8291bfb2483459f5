/* cwsandbox sh: an interactive shell in a sandbox, on the local terminal in raw mode. */
#include <unistd.h>

#include "cli.h"

/* bash when the image has it, else sh. */
static const char *const default_shell[] = {
    "/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi", NULL};

/* Returns CLI_GO_ON or an exit status; *ret_words (freed by the caller with cli_words_free())
 * holds the split --cmd. */
static int parse_sh(struct cli *cli, int argc, char **argv, const char **ret_id, char ***ret_words)
{
    static const struct option longopts[] = {
        {"cmd", required_argument, NULL, 'c'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct cli_opts o = {
        .cli = cli, .argc = argc, .argv = argv, .optstring = "hc:", .longopts = longopts};
    const char *cmd = NULL;
    int c;
    while ((c = cli_opt_next(&o)) != -1) {
        if (c == CLI_OPT_EXIT)
            return o.status;
        if (c == 'c')
            cmd = optarg;
    }
    if (cli_want_args(cli, &o, 1, 1, "SANDBOX_ID"))
        return CLI_EXIT_USAGE;
    *ret_id = o.args[0];
    int r = cmd ? cli_split_words(cmd, ret_words) : 0;
    if (r == -CWS_E_INVALID_ARGUMENT)
        return cli_usage_error(cli,
                               "--cmd must be a non-empty command line with balanced "
                               "quotes, not \"%s\"",
                               cmd);
    return r < 0 ? cli_error(cli, "out of memory") : CLI_GO_ON;
}

/* Run argv on a terminal in sandbox id. Returns the exit status. */
static int shell(struct cli *cli, const char *id, const char *const *argv)
{
    struct cws_error err = {0};
    struct cli_exec_request rq = {.id = id, .argv = argv, .forward_stdin = true, .tty = true};
    int exit_code = 1;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return cli_error(cli,
                         "sh needs a terminal on stdin and stdout (for pipes, use '%s exec -i %s "
                         "-- COMMAND')",
                         CLI_PROG, id);
    int r = cli_connect(cli, false, &err);
    if (r == 0)
        r = cli_exec_run(cli, &rq, &exit_code, &err);
    return r == 0 ? cli_exit_from_remote(exit_code) : cli_fail(cli, r, &err);
}

static int run_sh(struct cli *cli, int argc, char **argv)
{
    const char *id = NULL;
    char **words = NULL;
    int status = parse_sh(cli, argc, argv, &id, &words);
    if (status == CLI_GO_ON)
        status = shell(cli, id, words ? (const char *const *)words : default_shell);
    cli_words_free(words);
    return status;
}

const struct cli_command cli_cmd_sh = {
    .name = "sh",
    .summary = "Open an interactive shell in a sandbox",
    .usage = "sh SANDBOX_ID [--cmd COMMAND_LINE]",
    .help = "The local terminal is put in raw mode (Ctrl-C, Ctrl-Z and Ctrl-D go to the remote\n"
            "shell), its size follows the window, and it is restored however cwsandbox ends.\n"
            "cwsandbox exits with the shell's exit status.\n"
            "\n"
            "Options:\n"
            "  -c, --cmd LINE   what to run instead of bash (or sh when the image has no bash);\n"
            "                   split into words as a shell does: --cmd 'python3 -q'\n"
            "  -h, --help       show this help\n",
    .run = run_sh,
};
