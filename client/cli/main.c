/* cwsandbox: the command-line client of cwsandboxd. Global options, the command table, help,
 * and dispatch to the cmd_*.c files. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const struct cli_command *const commands[] = {
    &cli_cmd_run,    &cli_cmd_ls,    &cli_cmd_get,
    &cli_cmd_exec,   &cli_cmd_sh,    &cli_cmd_logs,
    &cli_cmd_cp,     &cli_cmd_files, &cli_cmd_stop,
    &cli_cmd_delete, &cli_cmd_purge, &cli_cmd_session,
    &cli_cmd_daemon, &cli_cmd_auth,  &cli_cmd_version,
    &cli_cmd_help,   NULL,
};

static const struct cli_command top = {
    .name = "",
    .usage = "[--socket PATH] COMMAND [ARGS]...",
    .help = "Run code in CoreWeave sandboxes, from the shell.\n"
            "\n"
            "The commands talk to cwsandboxd, your local daemon, which is started on demand.\n"
            "With no credentials configured it runs sandboxes on this machine.\n",
    .subs = commands,
};

static const char global_options[] =
    "Global options:\n"
    "  --socket PATH   the daemon's socket (default: $CWSANDBOX_SOCKET, else\n"
    "                  $XDG_RUNTIME_DIR/cwsandbox/cwsandboxd.sock)\n"
    "  -h, --help      show help and exit\n"
    "  --version       show the version and exit\n";

static void print_subcommands(const struct cli_command *cmd, FILE *out)
{
    size_t width = 0;
    for (const struct cli_command *const *c = cmd->subs; *c; c++)
        if (strlen((*c)->name) > width)
            width = strlen((*c)->name);
    fputs(cmd == &top ? "Commands:\n" : "Subcommands:\n", out);
    for (const struct cli_command *const *c = cmd->subs; *c; c++)
        fprintf(out, "  %-*s  %s\n", (int)width, (*c)->name, (*c)->summary);
}

void cli_print_help(const struct cli_command *cmd, const char *path, FILE *out)
{
    if (!cmd)
        cmd = &top;
    fprintf(out, "Usage: %s %s\n\n", CLI_PROG, cmd->usage);
    if (cmd->summary && cmd != &top)
        fprintf(out, "%s\n\n", cmd->summary);
    if (cmd->help && *cmd->help)
        fprintf(out, "%s\n", cmd->help);
    if (cmd->subs)
        print_subcommands(cmd, out);
    if (cmd == &top) {
        fprintf(out, "\n%s\n", global_options);
        fprintf(out,
                "Run '%s help COMMAND' for a command's options. Exit status: 0 on success,\n"
                "1 on failure, 2 on usage errors, 130 when interrupted; exec, sh and run\n"
                "exit with the remote command's status.\n",
                CLI_PROG);
    } else if (cmd->subs) {
        fprintf(out, "\nRun '%s %s SUBCOMMAND --help' for a subcommand's options.\n", CLI_PROG,
                path);
    }
}

static const struct cli_command *find(const struct cli_command *group, const char *name)
{
    for (const struct cli_command *const *c = group->subs; *c; c++)
        if (strcmp((*c)->name, name) == 0)
            return *c;
    return NULL;
}

/* Walk from group through the words of argv to a command, into *ret_cmd and the words used
 * into path (`files read`). Returns how many words were used, or 0 when the first is unknown. */
static int resolve(const struct cli_command *group, int argc, char **argv, char *path, size_t size,
                   const struct cli_command **ret_cmd)
{
    const struct cli_command *cmd = group;
    int used = 0;
    path[0] = '\0';
    while (cmd->subs && used < argc) {
        const struct cli_command *next = find(cmd, argv[used]);
        if (!next)
            break;
        size_t len = strlen(path);
        snprintf(path + len, size - len, "%s%s", len ? " " : "", next->name);
        cmd = next;
        used++;
    }
    *ret_cmd = cmd;
    return used;
}

static int run_help(struct cli *cli, int argc, char **argv)
{
    char path[128];
    const struct cli_command *cmd = NULL;
    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        cli_print_help(&cli_cmd_help, "help", stdout);
        return CLI_EXIT_OK;
    }
    int used = resolve(&top, argc - 1, argv + 1, path, sizeof(path), &cmd);
    if (used < argc - 1) {
        cli->cmd = used ? cmd : NULL;
        cli->cmd_path = used ? path : "";
        return cli_usage_error(cli, "no such command: %s", argv[1 + used]);
    }
    cli_print_help(cmd, path, stdout);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_help = {
    .name = "help",
    .summary = "Show the help of a command",
    .usage = "help [COMMAND [SUBCOMMAND]]",
    .help = "Without a command, list them all.\n",
    .run = run_help,
};

/* A group given without (or with an unknown) subcommand. */
static int group_usage(struct cli *cli, int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0) {
        cli_print_help(cli->cmd, cli->cmd_path, argc < 1 ? stderr : stdout);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    return cli_usage_error(cli, "no such subcommand: %s", argv[0]);
}

static int print_version(void)
{
    printf("%s, version %s\n", CLI_PROG, CWS_VERSION);
    return CLI_EXIT_OK;
}

/* The global options before the command. Returns the index of the command word, or -1 when
 * they answered the command line (--help, --version, a usage error) with *ret_status. */
static int global_args(struct cli *cli, int argc, char **argv, int *ret_status)
{
    int i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1]) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli_print_help(NULL, "", stdout);
            *ret_status = CLI_EXIT_OK;
            return -1;
        }
        if (strcmp(a, "--version") == 0) {
            *ret_status = print_version();
            return -1;
        }
        if (strcmp(a, "--socket") == 0) {
            if (i + 1 >= argc) {
                *ret_status = cli_usage_error(cli, "option '--socket' needs a value");
                return -1;
            }
            cli->socket_path = argv[i + 1];
            i += 2;
        } else if (strncmp(a, "--socket=", 9) == 0) {
            cli->socket_path = a + 9;
            i++;
        } else if (strcmp(a, "--") == 0) {
            return i + 1;
        } else {
            *ret_status = cli_usage_error(cli, "no such option: %s", a);
            return -1;
        }
    }
    return i;
}

static int dispatch(struct cli *cli, int argc, char **argv)
{
    static char path[128];
    int status = CLI_EXIT_OK;
    int first = global_args(cli, argc, argv, &status);
    if (first < 0)
        return status;
    if (first >= argc) {
        cli_print_help(NULL, "", stderr);
        return CLI_EXIT_USAGE;
    }
    const struct cli_command *cmd = NULL;
    int used = resolve(&top, argc - first, argv + first, path, sizeof(path), &cmd);
    cli->cmd_path = path;
    if (used == 0)
        return cli_usage_error(cli, "no such command: %s", argv[first]);
    cli->cmd = cmd;
    /* The command sees its own name as argv[0], as getopt expects. */
    int cmd_argc = argc - first - used + 1;
    char **cmd_argv = argv + first + used - 1;
    if (!cmd->run)
        return group_usage(cli, cmd_argc - 1, cmd_argv + 1);
    return cmd->run(cli, cmd_argc, cmd_argv);
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    if (cli_signals_init() < 0) {
        fprintf(stderr, "Error: cannot set up signal handling\n");
        return CLI_EXIT_FAILURE;
    }
    int status = dispatch(&cli, argc, argv);
    cli_term_restore();
    status = cli_finish_stdout(&cli, status);
    cws_client_free(cli.client);
    return status;
}
