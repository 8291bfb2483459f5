/* cwsandbox daemon status|start|stop: the local daemon itself. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum { OPT_NO_START = 256 };

#define STOP_POLL_MS           50
#define DEFAULT_STOP_TIMEOUT_S 60.0
#define ORPHANS_SHOWN          20 /* in the table; -o json lists all the daemon reports */

/* The options of the three subcommands. */
struct daemon_args {
    bool json, no_start;
    double timeout_s;
};

static const struct option status_opts[] = {
    {"output", required_argument, NULL, 'o'},
    {"no-start", no_argument, NULL, OPT_NO_START},
    CLI_OPT_HELP,
    CLI_OPT_END,
};
static const struct option start_opts[] = {CLI_OPT_HELP, CLI_OPT_END};
static const struct option stop_opts[] = {
    {"timeout", required_argument, NULL, 't'},
    CLI_OPT_HELP,
    CLI_OPT_END,
};

/* Returns CLI_GO_ON or an exit status. */
static int parse_daemon(struct cli *cli, int argc, char **argv, const char *optstring,
                        const struct option *longopts, struct daemon_args *a)
{
    struct cli_opts o = {
        .cli = cli, .argc = argc, .argv = argv, .optstring = optstring, .longopts = longopts};
    int c;
    while ((c = cli_opt_next(&o)) != -1) {
        switch (c) {
        case CLI_OPT_EXIT:
            return o.status;
        case 'o':
            if (cli_parse_output(cli, optarg, &a->json) < 0)
                return CLI_EXIT_USAGE;
            break;
        case OPT_NO_START:
            a->no_start = true;
            break;
        case 't':
            if (cli_parse_seconds(cli, "--timeout", optarg, &a->timeout_s) < 0)
                return CLI_EXIT_USAGE;
            break;
        }
    }
    return cli_want_args(cli, &o, 0, 0, "no arguments") ? CLI_EXIT_USAGE : CLI_GO_ON;
}

static void status_json(const struct cws_daemon_status *st, const struct cws_daemon_info *d,
                        const char *socket)
{
    struct cli_json j;
    cli_json_init(&j, stdout);
    cli_json_begin_object(&j);
    cli_json_key(&j, "running");
    cli_json_bool(&j, true);
    cli_json_key(&j, "daemon");
    cli_json_string(&j, st->daemon);
    cli_json_key(&j, "pid");
    cli_json_int(&j, st->pid);
    cli_json_key(&j, "protocol");
    cli_json_int(&j, d->protocol);
    cli_json_key(&j, "socket");
    cli_json_string(&j, socket);
    cli_json_key(&j, "uptime_ms");
    cli_json_int(&j, st->uptime_ms);
    cli_json_key(&j, "clients");
    cli_json_uint(&j, st->clients);
    cli_json_key(&j, "sessions");
    cli_json_uint(&j, st->sessions);
    cli_json_key(&j, "sandboxes");
    cli_json_uint(&j, st->sandboxes);
    cli_json_key(&j, "calls_in_flight");
    cli_json_uint(&j, st->calls_in_flight);
    cli_json_key(&j, "backend");
    cli_json_begin_object(&j);
    cli_json_key(&j, "kind");
    cli_json_string(&j, st->backend.kind);
    cli_json_key(&j, "url");
    cli_json_string_or_null(&j, st->backend.url);
    cli_json_key(&j, "configured");
    cli_json_string_or_null(&j, st->backend.configured);
    cli_json_end_object(&j);
    cli_json_key(&j, "auth");
    cli_json_begin_object(&j);
    cli_json_key(&j, "strategy");
    cli_json_string(&j, st->auth.strategy);
    cli_json_key(&j, "source");
    cli_json_string(&j, st->auth.source);
    cli_json_end_object(&j);
    cli_json_key(&j, "orphans_pending");
    cli_json_uint(&j, st->orphans_pending);
    cli_json_key(&j, "orphans");
    cli_json_begin_array(&j);
    for (size_t i = 0; i < st->n_orphans; i++) {
        cli_json_begin_object(&j);
        cli_json_key(&j, "sandbox_id");
        cli_json_string(&j, st->orphans[i].sandbox_id);
        cli_json_key(&j, "reaped_at");
        cli_json_time(&j, st->orphans[i].reaped_ms);
        cli_json_key(&j, "reason");
        cli_json_string(&j, st->orphans[i].why);
        cli_json_end_object(&j);
    }
    cli_json_end_array(&j);
    cli_json_end_object(&j);
    cli_json_finish(&j);
}

/* The sandboxes the daemon stopped on its own: a summary line, then one line per sandbox,
 * oldest first, the last ORPHANS_SHOWN of them. */
static void orphans_table(const struct cws_daemon_status *st)
{
    char line[512], when[32];
    size_t first = st->n_orphans > ORPHANS_SHOWN ? st->n_orphans - ORPHANS_SHOWN : 0;
    int width = 0;
    if (st->n_orphans > ORPHANS_SHOWN)
        snprintf(line, sizeof(line), "%zu stopped (the last %d below), %" PRIu64 " waiting",
                 st->n_orphans, ORPHANS_SHOWN, st->orphans_pending);
    else
        snprintf(line, sizeof(line), "%zu stopped, %" PRIu64 " waiting", st->n_orphans,
                 st->orphans_pending);
    cli_kv(stdout, 9, "Orphans", line);
    for (size_t i = first; i < st->n_orphans; i++) {
        int n = (int)strlen(st->orphans[i].sandbox_id);
        width = n > width ? n : width;
    }
    for (size_t i = first; i < st->n_orphans; i++) {
        const struct cws_orphan_info *o = &st->orphans[i];
        snprintf(line, sizeof(line), "%-*s  stopped %s  %s", width, o->sandbox_id,
                 cli_format_time(o->reaped_ms, when, sizeof(when)), o->why);
        cli_kv(stdout, 9, "", line);
    }
}

static void status_table(const struct cws_daemon_status *st, const struct cws_daemon_info *d,
                         const char *socket)
{
    char line[512], uptime[64];
    snprintf(line, sizeof(line), "%s (pid %" PRId64 ", protocol %d)", st->daemon, st->pid,
             d->protocol);
    cli_kv(stdout, 9, "Daemon", line);
    cli_kv(stdout, 9, "Socket", socket);
    cli_kv(stdout, 9, "Uptime", cli_format_duration(st->uptime_ms, uptime, sizeof(uptime)));
    snprintf(line, sizeof(line), "%s%s%s (configured: %s)", st->backend.kind,
             *st->backend.url ? " " : "", st->backend.url, st->backend.configured);
    cli_kv(stdout, 9, "Backend", line);
    snprintf(line, sizeof(line), "%s (source: %s)", st->auth.strategy, st->auth.source);
    cli_kv(stdout, 9, "Auth", line);
    snprintf(line, sizeof(line), "%" PRIu64, st->clients);
    cli_kv(stdout, 9, "Clients", line);
    snprintf(line, sizeof(line), "%" PRIu64, st->sessions);
    cli_kv(stdout, 9, "Sessions", line);
    snprintf(line, sizeof(line), "%" PRIu64, st->sandboxes);
    cli_kv(stdout, 9, "Sandboxes", line);
    snprintf(line, sizeof(line), "%" PRIu64, st->calls_in_flight);
    cli_kv(stdout, 9, "Calls", line);
    orphans_table(st);
}

static int run_status(struct cli *cli, int argc, char **argv)
{
    struct daemon_args a = {0};
    struct cws_error err = {0};
    cws_op *op = NULL;
    int status = parse_daemon(cli, argc, argv, "ho:", status_opts, &a);
    if (status != CLI_GO_ON)
        return status;
    int r = cli_connect(cli, a.no_start, &err);
    if (r == 0)
        r = cws_client_status(cli->client, &op, &err);
    if (r == 0)
        r = cli_wait_op(cli, op, -1, &err);
    if (r == 0 && a.json)
        status_json(cws_op_daemon_status(op), cws_client_daemon(cli->client),
                    cws_client_socket_path(cli->client));
    else if (r == 0)
        status_table(cws_op_daemon_status(op), cws_client_daemon(cli->client),
                     cws_client_socket_path(cli->client));
    cws_op_free(op);
    return cli_fail(cli, r, &err);
}

static int run_start(struct cli *cli, int argc, char **argv)
{
    struct daemon_args a = {0};
    struct cws_error err = {0};
    int status = parse_daemon(cli, argc, argv, "h", start_opts, &a);
    if (status != CLI_GO_ON)
        return status;
    int r = cli_connect(cli, false, &err);
    if (r == 0)
        printf("cwsandboxd is running (pid %" PRId64 ", socket %s).\n",
               cws_client_daemon(cli->client)->pid, cws_client_socket_path(cli->client));
    return cli_fail(cli, r, &err);
}

/* Whether pid is a live cwsandboxd (not a zombie, not some process that reused the pid). */
static bool is_live_daemon(pid_t pid)
{
    char path[64], comm[64] = "", state = 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    int n = fscanf(f, "%*d (%63[^)]) %c", comm, &state);
    fclose(f);
    return n == 2 && state != 'Z' && strncmp(comm, "cwsandboxd", 10) == 0;
}

static int run_stop(struct cli *cli, int argc, char **argv)
{
    struct daemon_args a = {.timeout_s = DEFAULT_STOP_TIMEOUT_S};
    struct cws_error err = {0};
    int status = parse_daemon(cli, argc, argv, "ht:", stop_opts, &a);
    if (status != CLI_GO_ON)
        return status;
    int r = cli_connect(cli, true, &err);
    if (r == -CWS_E_UNAVAILABLE) {
        printf("cwsandboxd is not running.\n");
        return CLI_EXIT_OK;
    }
    if (r < 0)
        return cli_fail(cli, r, &err);
    pid_t pid = (pid_t)cws_client_daemon(cli->client)->pid;
    cws_client_free(cli->client);
    cli->client = NULL;
    if (!is_live_daemon(pid))
        return cli_error(cli,
                         "cannot find the daemon's process (pid %d): is it in another "
                         "pid namespace? Stop it with systemctl --user stop cwsandboxd",
                         (int)pid);
    if (kill(pid, SIGTERM) < 0)
        return cli_error(cli, "cannot stop cwsandboxd (pid %d): %s", (int)pid, strerror(errno));
    /* It stops the sandboxes it owns first, which may take a while. */
    int64_t deadline = cli_now_ms() + (int64_t)(a.timeout_s * 1000);
    while (is_live_daemon(pid) && cli_now_ms() < deadline)
        usleep(STOP_POLL_MS * 1000);
    if (is_live_daemon(pid))
        return cli_error(cli, "cwsandboxd (pid %d) is still running after %.0f s", (int)pid,
                         a.timeout_s);
    printf("Stopped cwsandboxd (pid %d).\n", (int)pid);
    return CLI_EXIT_OK;
}

static const struct cli_command daemon_status = {
    .name = "status",
    .summary = "Show the daemon's state",
    .usage = "daemon status [-o table|json] [--no-start]",
    .help = "Orphans are the sandboxes the daemon stopped on its own: their client went away\n"
            "(or their session is gone after a restart), or the user logged out. Each comes\n"
            "with when and why; \"waiting\" counts the orphans whose grace (orphan_grace_s)\n"
            "has not ended yet.\n"
            "\n"
            "Options:\n"
            "  -o, --output FORMAT  table (default) or json: running, daemon, pid, protocol,\n"
            "                       socket, uptime_ms, clients, sessions, sandboxes,\n"
            "                       calls_in_flight, backend {kind, url, configured},\n"
            "                       auth {strategy, source}, orphans_pending, orphans\n"
            "                       [{sandbox_id, reaped_at, reason}] (all of them; the\n"
            "                       table shows the last 20, oldest first)\n"
            "      --no-start       fail instead of starting a daemon when none runs\n"
            "  -h, --help           show this help\n",
    .run = run_status,
};

static const struct cli_command daemon_start = {
    .name = "start",
    .summary = "Start the daemon (when it is not running)",
    .usage = "daemon start",
    .help = "Every command starts the daemon on demand; this only does it ahead of time.\n"
            "\n"
            "Options:\n"
            "  -h, --help   show this help\n",
    .run = run_start,
};

static const struct cli_command daemon_stop = {
    .name = "stop",
    .summary = "Stop the daemon (and the sandboxes it keeps for clients and sessions)",
    .usage = "daemon stop [--timeout SECS]",
    .help = "Sends SIGTERM, as systemd does at logout, and waits until the daemon has exited.\n"
            "Detached sandboxes keep running. Not running is not an error.\n"
            "\n"
            "Options:\n"
            "  -t, --timeout SECS   how long to wait (default 60)\n"
            "  -h, --help           show this help\n",
    .run = run_stop,
};

static const struct cli_command *const daemon_subs[] = {&daemon_status, &daemon_start, &daemon_stop,
                                                        NULL};

const struct cli_command cli_cmd_daemon = {
    .name = "daemon",
    .summary = "Inspect, start or stop the local daemon (cwsandboxd)",
    .usage = "daemon status|start|stop ...",
    .help = "",
    .subs = daemon_subs,
};
