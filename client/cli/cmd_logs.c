/* cwsandbox logs: the output of a sandbox's main process, once or followed. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum { OPT_TAIL = 256, OPT_SINCE };

struct logs_args {
    const char *id;
    struct cws_logs_options lo;
};

struct logs_out {
    struct cli *cli;
    bool line_start; /* the next byte begins a line (for timestamps) */
    bool failed;
    int failed_errno;
};

/* Returns CLI_GO_ON or an exit status. */
static int parse_logs(struct cli *cli, int argc, char **argv, struct logs_args *a)
{
    static const struct option longopts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"tail", required_argument, NULL, OPT_TAIL},
        {"since", required_argument, NULL, OPT_SINCE},
        {"timestamps", no_argument, NULL, 't'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct cli_opts o = {
        .cli = cli, .argc = argc, .argv = argv, .optstring = "hft", .longopts = longopts};
    long long tail = -1;
    int c;
    while ((c = cli_opt_next(&o)) != -1) {
        switch (c) {
        case CLI_OPT_EXIT:
            return o.status;
        case 'f':
            a->lo.follow = true;
            break;
        case 't':
            a->lo.timestamps = true;
            break;
        case OPT_TAIL:
            if (cli_parse_count(cli, "--tail", optarg, 0, INT32_MAX, &tail) < 0)
                return CLI_EXIT_USAGE;
            break;
        case OPT_SINCE:
            if (cli_time_arg(optarg, cli_wall_ms(), &a->lo.since_ms) < 0)
                return cli_usage_error(cli,
                                       "--since must be a time (2024-05-01, "
                                       "2024-05-01T12:00:00, 2024-05-01 12:00:00Z) or a "
                                       "duration ago (10m, 2h); not '%s'",
                                       optarg);
            break;
        }
    }
    if (cli_want_args(cli, &o, 1, 1, "SANDBOX_ID"))
        return CLI_EXIT_USAGE;
    a->id = o.args[0];
    /* The protocol has no "no lines": --tail 0 means only what comes from now on. */
    if (tail == 0)
        a->lo.since_ms = cli_wall_ms();
    else if (tail > 0)
        a->lo.tail_lines = tail;
    return CLI_GO_ON;
}

static int write_out(struct logs_out *lo, const void *data, size_t len)
{
    if (lo->failed || len == 0)
        return 0;
    if (cli_write_all(lo->cli, STDOUT_FILENO, data, len) < 0) {
        lo->failed = true;
        lo->failed_errno = errno;
        return -CWS_E_IO;
    }
    return 0;
}

/* With timestamps, each line starts with the time of the piece it came in. */
static void on_logs(cws_op *op, const void *data, size_t len, int64_t time_ms, void *ud)
{
    struct logs_out *lo = ud;
    const char *p = data, *end = p + len;
    if (time_ms <= 0) {
        write_out(lo, data, len);
        return;
    }
    while (p < end) {
        if (lo->line_start) {
            char ts[40];
            cli_format_time_rfc3339(time_ms, ts, sizeof(ts) - 1);
            strcat(ts, " ");
            write_out(lo, ts, strlen(ts));
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl + 1 : end;
        write_out(lo, p, (size_t)(stop - p));
        lo->line_start = nl != NULL;
        p = stop;
    }
}

struct logs_wait {
    cws_op *op;
    struct logs_out *out;
};

static bool logs_done(void *ud)
{
    const struct logs_wait *w = ud;
    return w->out->failed || cws_op_done(w->op);
}

static int follow_logs(struct cli *cli, struct logs_args *a, struct cws_error *err)
{
    struct logs_out out = {.cli = cli, .line_start = true};
    cws_op *op = NULL;
    a->lo.on_data = on_logs;
    a->lo.userdata = &out;
    int r = cws_logs(cli->client, a->id, &a->lo, &op, err);
    if (r == 0) {
        struct logs_wait w = {op, &out};
        struct cli_loop_hooks h = {.done = logs_done, .watch_stdout = true, .ud = &w};
        r = cli_loop(cli, &h, -1, err);
        if (r == 0 && out.failed)
            r = cli->stdout_closed ? cws_error_set(err, CWS_E_CANCELLED, "stdout was closed")
                                   : cws_error_set(err, CWS_E_IO, "cannot write the logs: %s",
                                                   strerror(out.failed_errno));
        if (r < 0)
            cli_cancel_op(cli, op);
        else
            r = cws_op_wait(op, 0, err);
    }
    cws_op_free(op);
    return r;
}

static int run_logs(struct cli *cli, int argc, char **argv)
{
    struct logs_args a = {0};
    struct cws_error err = {0};
    int status = parse_logs(cli, argc, argv, &a);
    if (status != CLI_GO_ON)
        return status;
    int r = cli_connect(cli, false, &err);
    if (r == 0)
        r = follow_logs(cli, &a, &err);
    return cli_fail(cli, r, &err);
}

const struct cli_command cli_cmd_logs = {
    .name = "logs",
    .summary = "Show the output of a sandbox's main process",
    .usage = "logs SANDBOX_ID [-f] [--tail N] [--since TIME] [-t]",
    .help = "Options:\n"
            "  -f, --follow       keep printing new output until the sandbox ends (or Ctrl-C)\n"
            "      --tail N       only the last N lines (0: only new output)\n"
            "      --since TIME   only output after TIME: 2024-05-01, 2024-05-01T12:00:00,\n"
            "                     '2024-05-01 12:00:00' (UTC unless a zone is given: Z,\n"
            "                     +02:00), or a duration ago: 30s, 10m, 2h\n"
            "  -t, --timestamps   start each line with its time (RFC 3339, UTC)\n"
            "  -h, --help         show this help\n",
    .run = run_logs,
};
