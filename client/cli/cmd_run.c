/* cwsandbox run: create a sandbox; with a command, run it as the sandbox's main process,
 * stream its output and exit with its exit code (--rm removes the sandbox afterwards). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* Mounted files travel inside the create request, whose size the daemon bounds. */
#define MAX_MOUNT_BYTES (16u * 1024 * 1024)
/* How long a terminal wait asks for before asking again (the daemon's default is 300 s). */
#define WAIT_CHUNK_S 3600.0
/* After the sandbox ends, how long its log stream may take to deliver the rest. */
#define LOG_DRAIN_MS 5000
#define REMOVE_MS    30000

enum {
    OPT_IMAGE = 256,
    OPT_TAG,
    OPT_CPU,
    OPT_MEMORY,
    OPT_GPU,
    OPT_LIFETIME,
    OPT_MOUNT,
    OPT_SESSION,
    OPT_RM,
    OPT_START_TIMEOUT,
};

struct run_args {
    cws_sandbox_config *cfg;
    const char *session;
    const char *cpu, *memory;
    bool rm, detach;
    double start_timeout_s;
    char **command;
    int n_command;
};

/* ---- options into the config ---- */

static int set_env(struct cli *cli, cws_sandbox_config *cfg, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (eq == arg)
        return cli_usage_error(cli, "--env needs NAME=VALUE or NAME, not '%s'", arg);
    if (!eq) {
        /* NAME alone passes the local value on, as docker does. */
        const char *value = getenv(arg);
        if (!value)
            return cli_usage_error(cli, "--env %s: %s is not set here", arg, arg);
        cws_sandbox_config_set_env(cfg, arg, value);
        return CLI_GO_ON;
    }
    char *name = strndup(arg, (size_t)(eq - arg));
    if (!name)
        return cli_error(cli, "out of memory");
    cws_sandbox_config_set_env(cfg, name, eq + 1);
    free(name);
    return CLI_GO_ON;
}

static int set_gpu(struct cli *cli, cws_sandbox_config *cfg, const char *arg)
{
    char count[32];
    long long n = 0;
    const char *colon = strchr(arg, ':');
    size_t len = colon ? (size_t)(colon - arg) : strlen(arg);
    snprintf(count, sizeof(count), "%.*s", (int)(len < sizeof(count) ? len : 0), arg);
    if (cli_parse_count(cli, "--gpu COUNT[:TYPE]", count, 1, 1024, &n) < 0)
        return CLI_EXIT_USAGE;
    cws_sandbox_config_set_gpu(cfg, (int)n, colon && colon[1] ? colon + 1 : NULL, 0);
    return CLI_GO_ON;
}

/* Read a whole local file into a new buffer; the caller frees *ret_data. */
static int read_small_file(const char *path, char **ret_data, size_t *ret_len,
                           struct cws_error *err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "cannot open %s: %s", path, strerror(errno));
    int r = 0;
    char *data = NULL;
    size_t len = 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        r = cws_error_set(err, CWS_E_INVALID_ARGUMENT, "%s is not a regular file", path);
    else if ((uint64_t)st.st_size > MAX_MOUNT_BYTES)
        r = cws_error_set(err, CWS_E_OUT_OF_RANGE,
                          "%s is larger than the 16 MiB a mounted file may have (use cp)", path);
    else if (!(data = malloc((size_t)st.st_size + 1)))
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
    while (r == 0 && len < (size_t)st.st_size) {
        ssize_t n = read(fd, data + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            r = cws_error_set(err, CWS_E_IO, "cannot read %s: %s", path,
                              n < 0 ? strerror(errno) : "it shrank");
        else
            len += (size_t)n;
    }
    close(fd);
    if (r < 0) {
        free(data);
        return r;
    }
    *ret_data = data;
    *ret_len = len;
    return 0;
}

static int add_mount(struct cli *cli, cws_sandbox_config *cfg, const char *arg)
{
    struct cws_error err = {0};
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg || colon[1] != '/')
        return cli_usage_error(cli, "--mount-file needs LOCAL:/absolute/path, not '%s'", arg);
    char *local = strndup(arg, (size_t)(colon - arg));
    char *data = NULL;
    size_t len = 0;
    if (!local)
        return cli_error(cli, "out of memory");
    int r = read_small_file(local, &data, &len, &err);
    free(local);
    if (r < 0)
        return cli_usage_error(cli, "--mount-file: %s", err.message);
    cws_sandbox_config_add_mounted_file(cfg, colon + 1, data, len);
    free(data);
    return CLI_GO_ON;
}

static int parse_duration_opt(struct cli *cli, const char *opt, const char *arg, double *ret)
{
    return cli_parse_seconds(cli, opt, arg, ret) < 0 ? CLI_EXIT_USAGE : CLI_GO_ON;
}

/* One option into a. Returns CLI_GO_ON or an exit status. */
static int apply_option(struct cli *cli, int c, struct run_args *a)
{
    double lifetime = 0;
    int status = CLI_GO_ON;
    switch (c) {
    case OPT_IMAGE:
        cws_sandbox_config_set_image(a->cfg, optarg);
        break;
    case 'e':
        status = set_env(cli, a->cfg, optarg);
        break;
    case OPT_TAG:
        cws_sandbox_config_add_tag(a->cfg, optarg);
        break;
    case OPT_CPU:
        a->cpu = optarg;
        break;
    case OPT_MEMORY:
        a->memory = optarg;
        break;
    case OPT_GPU:
        status = set_gpu(cli, a->cfg, optarg);
        break;
    case OPT_LIFETIME:
        status = parse_duration_opt(cli, "--lifetime", optarg, &lifetime);
        if (status == CLI_GO_ON)
            cws_sandbox_config_set_max_lifetime(a->cfg, lifetime);
        break;
    case OPT_MOUNT:
        status = add_mount(cli, a->cfg, optarg);
        break;
    case OPT_SESSION:
        a->session = optarg;
        break;
    case OPT_RM:
        a->rm = true;
        break;
    case 'd':
        a->detach = true;
        break;
    case 'w':
        cws_sandbox_config_set_working_dir(a->cfg, optarg);
        break;
    case OPT_START_TIMEOUT:
        status = parse_duration_opt(cli, "--start-timeout", optarg, &a->start_timeout_s);
        break;
    }
    return status;
}

/* Returns CLI_GO_ON or an exit status. */
static int parse_run(struct cli *cli, int argc, char **argv, struct run_args *a)
{
    static const struct option longopts[] = {
        {"image", required_argument, NULL, OPT_IMAGE},
        {"env", required_argument, NULL, 'e'},
        {"tag", required_argument, NULL, OPT_TAG},
        {"cpu", required_argument, NULL, OPT_CPU},
        {"memory", required_argument, NULL, OPT_MEMORY},
        {"gpu", required_argument, NULL, OPT_GPU},
        {"lifetime", required_argument, NULL, OPT_LIFETIME},
        {"mount-file", required_argument, NULL, OPT_MOUNT},
        {"session", required_argument, NULL, OPT_SESSION},
        {"rm", no_argument, NULL, OPT_RM},
        {"detach", no_argument, NULL, 'd'},
        {"workdir", required_argument, NULL, 'w'},
        {"start-timeout", required_argument, NULL, OPT_START_TIMEOUT},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct cli_opts o = {.cli = cli,
                         .argc = argc,
                         .argv = argv,
                         .optstring = "he:dw:",
                         .longopts = longopts,
                         .command_tail = true};
    int c, status;
    while ((c = cli_opt_next(&o)) != -1) {
        if (c == CLI_OPT_EXIT)
            return o.status;
        if ((status = apply_option(cli, c, a)) != CLI_GO_ON)
            return status;
    }
    a->command = o.command;
    a->n_command = o.n_command;
    if (a->cpu || a->memory) {
        /* Requests and limits alike: what is asked for is what it gets. */
        cws_sandbox_config_set_requests(a->cfg, a->cpu, a->memory);
        cws_sandbox_config_set_limits(a->cfg, a->cpu, a->memory);
    }
    if (a->n_command)
        cws_sandbox_config_set_command(a->cfg, (const char *const *)a->command);
    const struct cws_error *bad = cws_sandbox_config_error(a->cfg);
    if (bad)
        return cli_usage_error(cli, "%s", bad->message);
    if (a->rm && a->detach)
        return cli_usage_error(cli, "--rm and --detach cannot go together");
    if (a->rm && !a->n_command)
        return cli_usage_error(cli, "--rm needs a command to run (after --)");
    return CLI_GO_ON;
}

/* ---- running ---- */

/* Who keeps the sandbox: the connection with --rm (so even a killed cwsandbox leaves nothing
 * behind), the session when there is one, else nobody but its lifetime. */
static enum cws_owner choose_owner(struct cli *cli, const struct run_args *a)
{
    if (a->rm)
        return CWS_OWNER_CLIENT;
    if (a->session || cws_client_session(cli->client))
        return CWS_OWNER_DEFAULT;
    return CWS_OWNER_DETACHED;
}

/* Create the sandbox; on success the caller frees *ret_op, whose sandbox is the new one. */
static int create(struct cli *cli, const struct run_args *a, bool wait_running, cws_op **ret_op,
                  struct cws_error *err)
{
    struct cws_create_options co = {
        .session = a->session,
        .owner = choose_owner(cli, a),
        .wait_running = wait_running,
        .timeout_s = a->start_timeout_s,
    };
    cws_op *op = NULL;
    int r = cws_sandbox_create(cli->client, a->cfg, &co, &op, err);
    if (r == 0)
        r = cli_wait_op(cli, op, -1, err);
    if (r < 0) {
        cws_op_free(op);
        return r;
    }
    *ret_op = op;
    return 0;
}

struct attached {
    struct cli *cli;
    const char *id;
    cws_op *logs, *wait;
    bool out_failed;
};

static void on_log(cws_op *op, const void *data, size_t len, int64_t time_ms, void *ud)
{
    struct attached *at = ud;
    if (!at->out_failed && cli_write_all(at->cli, STDOUT_FILENO, data, len) < 0)
        at->out_failed = true;
}

static bool sandbox_ended(void *ud)
{
    struct attached *at = ud;
    return at->out_failed || cws_op_done(at->wait);
}

static bool logs_ended(void *ud)
{
    struct attached *at = ud;
    return at->out_failed || cws_op_done(at->logs);
}

/* Wait until the sandbox is terminal, asking again when one wait's deadline passes. */
static int wait_terminal(struct attached *at, struct cws_error *err)
{
    struct cli_loop_hooks h = {.done = sandbox_ended, .watch_stdout = true, .ud = at};
    for (;;) {
        int r =
            cws_sandbox_wait_until_complete(at->cli->client, at->id, WAIT_CHUNK_S, &at->wait, err);
        if (r == 0)
            r = cli_loop(at->cli, &h, -1, err);
        if (r == 0 && at->out_failed)
            return cws_error_set(err, CWS_E_CANCELLED, "stdout was closed");
        if (r == 0)
            r = cws_op_wait(at->wait, 0, err);
        if (r != -CWS_E_DEADLINE_EXCEEDED || !cws_op_done(at->wait))
            return r;
        cws_op_free(at->wait);
        at->wait = NULL;
    }
}

/* The exit status the sandbox's end gives. */
static int ending_status(struct cli *cli, const struct cws_sandbox_info *sb)
{
    if (sb->has_exit_code)
        return cli_exit_from_remote(sb->exit_code);
    if (sb->state == CWS_STATE_FAILED)
        return cli_error(cli, "sandbox %s failed%s%s", sb->id, *sb->state_reason ? ": " : "",
                         sb->state_reason);
    return cli_error(cli, "sandbox %s ended (%s) without an exit code%s%s", sb->id,
                     cws_sandbox_state_name(sb->state), *sb->state_reason ? ": " : "",
                     sb->state_reason);
}

/* Stream the logs until the sandbox ends. Returns the exit status. */
static int attach(struct cli *cli, struct attached *at)
{
    struct cws_error err = {0}, log_err = {0};
    struct cws_logs_options lo = {.follow = true, .on_data = on_log, .userdata = at};
    int r = cws_logs(cli->client, at->id, &lo, &at->logs, &err);
    if (r == 0)
        r = wait_terminal(at, &err);
    if (r < 0) {
        cli_cancel_op(cli, at->logs);
        return cli_fail(cli, r, &err);
    }
    /* The log stream ends with the sandbox; give it a moment to deliver the last bytes. */
    struct cli_loop_hooks h = {.done = logs_ended, .watch_stdout = true, .ud = at};
    if (cli_loop(cli, &h, LOG_DRAIN_MS, &log_err) == 0 && !at->out_failed &&
        cws_op_wait(at->logs, 0, &log_err) < 0)
        fprintf(stderr, "warning: the output may be incomplete: %s\n", log_err.message);
    cli_cancel_op(cli, at->logs);
    if (cli->signal)
        return CLI_EXIT_SIGNAL_BASE + cli->signal;
    return ending_status(cli, cws_op_sandbox(at->wait));
}

/* After an interrupt or a closed stdout: remove the sandbox (--rm) or stop it. */
static void end_sandbox(struct cli *cli, const struct run_args *a, const char *id)
{
    struct cws_stop_options so = {.missing_ok = true, .no_wait = true};
    cws_op *op = NULL;
    int signal = cli->signal;
    cli->signal = 0; /* lets the cleanup's wait run; a second Ctrl-C cuts it short */
    if (a->rm)
        cws_sandbox_delete(cli->client, id, true, &op, NULL);
    else
        cws_sandbox_stop(cli->client, id, &so, &op, NULL);
    if (op)
        cli_wait_op(cli, op, REMOVE_MS, NULL);
    cws_op_free(op);
    cli->signal = cli->signal ? cli->signal : signal;
}

static int remove_sandbox(struct cli *cli, const char *id, int status)
{
    struct cws_error err = {0};
    cws_op *op = NULL;
    int r = cws_sandbox_delete(cli->client, id, true, &op, &err);
    if (r == 0)
        r = cli_wait_op(cli, op, REMOVE_MS, &err);
    cws_op_free(op);
    if (r < 0 && !cli->signal)
        fprintf(stderr, "warning: cannot remove sandbox %s: %s\n", id, err.message);
    return status;
}

static int run_attached(struct cli *cli, const struct run_args *a)
{
    struct cws_error err = {0};
    cws_op *created = NULL;
    int r = create(cli, a, false, &created, &err);
    if (r < 0)
        return cli_fail(cli, r, &err);
    struct attached at = {.cli = cli, .id = cws_op_sandbox(created)->id};
    int status = attach(cli, &at);
    if (cli->signal || cli->stdout_closed || at.out_failed)
        end_sandbox(cli, a, at.id);
    else if (a->rm)
        status = remove_sandbox(cli, at.id, status);
    cws_op_free(at.logs);
    cws_op_free(at.wait);
    cws_op_free(created);
    return status;
}

static int run_detached(struct cli *cli, const struct run_args *a)
{
    struct cws_error err = {0};
    cws_op *created = NULL;
    /* Without a command there is nothing to watch: answer once it runs, so that the next
     * command can use it. With one, it may be over before it is seen running. */
    int r = create(cli, a, a->n_command == 0, &created, &err);
    if (r == 0)
        printf("%s\n", cws_op_sandbox(created)->id);
    cws_op_free(created);
    return cli_fail(cli, r, &err);
}

static int run_run(struct cli *cli, int argc, char **argv)
{
    struct run_args a = {0};
    struct cws_error err = {0};
    if (cws_sandbox_config_new(&a.cfg) < 0)
        return cli_error(cli, "out of memory");
    int status = parse_run(cli, argc, argv, &a);
    if (status == CLI_GO_ON) {
        int r = cli_connect(cli, false, &err);
        if (r < 0)
            status = cli_fail(cli, r, &err);
        else if (a.n_command && !a.detach)
            status = run_attached(cli, &a);
        else
            status = run_detached(cli, &a);
    }
    cws_sandbox_config_free(a.cfg);
    return status;
}

const struct cli_command cli_cmd_run = {
    .name = "run",
    .summary = "Create a sandbox, and run a command in it",
    .usage = "run [OPTIONS] [--] [COMMAND [ARG]...]",
    .help = "Without a command, create a sandbox that stays up, wait until it runs and print\n"
            "its id. With a command, run it as the sandbox's main process, stream its output\n"
            "(stdout and stderr, as its log) and exit with its exit status; the sandbox is\n"
            "kept (stopped) unless --rm. With -d, print the id at once and return.\n"
            "\n"
            "Options:\n"
            "      --image IMAGE        container image (default: the daemon's, python:3.11)\n"
            "  -e, --env NAME=VALUE     environment variable; NAME alone passes the local value\n"
            "      --tag TAG            tag, to find it again with ls -t or purge -t\n"
            "      --cpu QUANTITY       CPUs: 2, 500m\n"
            "      --memory QUANTITY    memory: 512Mi, 4Gi\n"
            "      --gpu COUNT[:TYPE]   GPUs\n"
            "      --lifetime SECS      end it after this long (90, 10m, 2h)\n"
            "      --mount-file LOCAL:PATH\n"
            "                           place a local file at PATH (read-only, <= 16 MiB)\n"
            "  -w, --workdir DIR        the command's working directory\n"
            "      --session NAME       create it in this session (default: $CWSANDBOX_SESSION)\n"
            "      --rm                 remove the sandbox when the command ends, or when\n"
            "                           cwsandbox is interrupted or killed\n"
            "  -d, --detach             print the id and return without waiting\n"
            "      --start-timeout SECS\n"
            "                           how long it may take to start (default 300)\n"
            "  -h, --help               show this help\n"
            "\n"
            "Ctrl-C stops the sandbox (removes it with --rm) and exits with 130.\n"
            "\n"
            "Examples:\n"
            "  id=$(cwsandbox run --tag demo)\n"
            "  cwsandbox run --rm --image python:3.12 -- python -c 'print(6*7)'\n",
    .run = run_run,
};
