/* bench_cli: what the `cwsandbox` CLI costs on top of the backend, measured in one run.
 *
 * The real daemon is started in a private temporary tree (tests/daemon/harness.c) with the
 * real cwsandbox-local it starts; one sandbox is created on it. Then:
 *
 *  (i)  `cwsandbox exec ID -- true` end to end (posix_spawn of the CLI to its exit, as a shell
 *       runs it) against StreamExec of `true` straight to the backend's Unix socket
 *       (<XDG_RUNTIME_DIR>/cwsandbox/backend.sock of the tree) with the daemon's own gRPC
 *       client library, which is the backend call the daemon makes for that command:
 *       interleaved run by run, p50/p99 of each; the difference of the p50s is what the CLI
 *       (process start, connect, hello, the daemon's hop) adds. A posix_spawn of /bin/true,
 *       interleaved too, shows the process floor.
 *  (ii) `cwsandbox exec ID -- true` run --execs times in a row: every one must exit 0, and the
 *       backend must serve them all over one HTTP/2 connection. cwsandbox-local logs each
 *       connection it accepts at debug level ("<peer>: connected", local/server/h2_conn.c);
 *       the backend runs with CWSANDBOX_LOG_LEVEL=debug into this bench's log, which is
 *       counted before and after; the connections open at the backend (its socket's entries
 *       in /proc/net/unix) are counted too.
 *
 * A table of the figures, the targets and whether each is met is printed. Exit status 0 even
 * when a target is missed; 1 on errors (a failed exec or call, a leftover process). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "grpc_client.h"
#include "bench_util.h"
#include "harness.h"
#include "log.h"
#include "rpc_encode.h"

#ifndef BENCH_CLI_BIN
#define BENCH_CLI_BIN "cwsandbox"
#endif

#define SERVICE         "/coreweave.sandbox.v1.SandboxService/"
#define TAG             "cws-bench-cli"
#define CALL_MS         60000
#define MAX_ROWS        16
#define TARGET_ADDED_MS 3.0
#define TARGET_CONNS    1

typedef Coreweave__Sandbox__V1__ExecStreamRequest ExecStreamRequest;
typedef Coreweave__Sandbox__V1__ExecStreamResponse ExecStreamResponse;

extern char **environ;

struct options {
    const char *only;
    long runs;   /* (i) samples per path */
    long warmup; /* (i) unmeasured runs per path first */
    long execs;  /* (ii) */
    bool keep_log;
};

struct row {
    char name[64];
    char value[48];
    char target[16];
    int met; /* 1 yes, 0 no, -1 no target */
};

struct bench {
    struct options o;
    struct th_daemon d;
    bool daemon_up;
    struct th_conn conn; /* owns the sandbox */
    char id[64];
    char log_path[64];
    char cli_err_path[64];
    const char *cli;
    char **cli_env;
    char *socket_env;
    char backend_sock[320];
    struct event_base *base;
    struct cws_gclient *gc;
    struct row rows[MAX_ROWS];
    int n_rows;
    int errors;
};

/* ---- small utilities ------------------------------------------------------------------- */

static void fail(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct bench *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ERROR: ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
    b->errors++;
}

static void add_row(struct bench *b, const char *name, const char *target, int met, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
static void add_row(struct bench *b, const char *name, const char *target, int met, const char *fmt,
                    ...)
{
    if (b->n_rows >= MAX_ROWS)
        return;
    struct row *r = &b->rows[b->n_rows++];
    va_list ap;
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->target, sizeof(r->target), "%s", target);
    r->met = met;
    va_start(ap, fmt);
    vsnprintf(r->value, sizeof(r->value), fmt, ap);
    va_end(ap);
}

/* Nearest-rank percentile of sorted samples, in ms. */
static double pct_ms(const int64_t *sorted, long n, double p)
{
    long rank = (long)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)sorted[rank - 1] / 1e6;
}

/* ---- the daemon and its sandbox -------------------------------------------------------- */

static void pack_create(msgpack_packer *pk, void *ud)
{
    (void)ud;
    msgpack_pack_map(pk, 4);
    cws_rpc_pack_kv_cstr(pk, "wait", "running");
    cws_rpc_pack_kv_int(pk, "timeout_s", 300);
    cws_rpc_pack_kv_cstr(pk, "owner", "client");
    cws_rpc_pack_cstr(pk, "config");
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_cstr(pk, "tags");
    msgpack_pack_array(pk, 1);
    cws_rpc_pack_cstr(pk, TAG);
    cws_rpc_pack_cstr(pk, "network");
    msgpack_pack_map(pk, 1);
    cws_rpc_pack_kv_bool(pk, "deny_egress", true);
}

static void pack_stop(msgpack_packer *pk, void *ud)
{
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_kv_cstr(pk, "id", ud);
    cws_rpc_pack_kv_int(pk, "grace_s", 0);
}

static bool ok_response(struct bench *b, const struct cws_rpc_msg *m, const char *what)
{
    char code[64], msg[600];
    if (!m) {
        fail(b, "%s: no answer", what);
        return false;
    }
    if (m->error) {
        fail(b, "%s: %s: %s", what, th_str(m->error, "code", code, sizeof(code)),
             th_str(m->error, "message", msg, sizeof(msg)));
        return false;
    }
    return true;
}

static int start_daemon(struct bench *b)
{
    /* cwsandbox-local inherits the level: at debug it logs every connection it accepts. The
     * daemon itself runs at debug too (the harness asks for it). */
    static const char *const env[] = {"CWSANDBOX_LOG_LEVEL=debug", NULL};
    char why[512];
    b->conn.fd = -1;
    if (bench_start_daemon(&b->d, env, "bench_cli", b->log_path, sizeof(b->log_path), why,
                           sizeof(why)) < 0) {
        fail(b, "%s", why);
        return -1;
    }
    b->daemon_up = true;
    snprintf(b->backend_sock, sizeof(b->backend_sock), "%s/run/cwsandbox/backend.sock", b->d.root);
    if (th_connect(&b->conn, b->d.socket) < 0 || !th_hello(&b->conn)) {
        fail(b, "cannot say hello to cwsandboxd at %s", b->d.socket);
        return -1;
    }
    struct cws_rpc_msg *m = th_call(&b->conn, "sandbox.create", pack_create, NULL, CALL_MS);
    bool ok = ok_response(b, m, "sandbox.create");
    if (ok)
        th_str(m->result, "id", b->id, sizeof(b->id));
    cws_rpc_msg_free(m);
    if (ok && !b->id[0])
        fail(b, "sandbox.create answered no id");
    return ok && b->id[0] ? 0 : -1;
}

static void stop_daemon(struct bench *b)
{
    if (b->gc)
        cws_gclient_free(b->gc);
    b->gc = NULL;
    if (b->base)
        event_base_free(b->base);
    b->base = NULL;
    if (b->id[0] && b->conn.fd >= 0) {
        struct cws_rpc_msg *m = th_call(&b->conn, "sandbox.stop", pack_stop, b->id, CALL_MS);
        ok_response(b, m, "sandbox.stop");
        cws_rpc_msg_free(m);
    }
    th_close(&b->conn);
    if (!b->daemon_up)
        return;
    int status = th_daemon_signal_wait(&b->d, SIGTERM, 30000);
    b->daemon_up = false;
    if (status != 0)
        fail(b, "cwsandboxd did not exit cleanly on SIGTERM (status %d; log: %s)", status,
             b->log_path);
    for (int i = 0; i < 50 && bench_tree_processes(b->d.root, 0, true, NULL, 0) > 0; i++)
        usleep(200000);
    if (bench_tree_processes(b->d.root, 0, true, NULL, 0) > 0)
        fail(b, "processes of the test tree %s still run after cwsandboxd stopped", b->d.root);
    th_daemon_stop(&b->d, 1000); /* removes the tree */
}

/* ---- the CLI, spawned as a shell would ----------------------------------------------- */

/* Our environment, without the caller's cwsandbox settings, plus the daemon's socket. The
 * CLI may not start a daemon of its own: CWSANDBOXD names no program. */
static int make_cli_env(struct bench *b)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    b->cli_env = calloc(n + 3, sizeof(char *));
    if (!b->cli_env)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CWSANDBOX", 9) != 0)
            b->cli_env[k++] = environ[i];
    if (asprintf(&b->socket_env, "CWSANDBOX_SOCKET=%s", b->d.socket) < 0)
        return -1;
    b->cli_env[k++] = b->socket_env;
    b->cli_env[k++] = (char *)"CWSANDBOXD=/nonexistent/cwsandboxd";
    return 0;
}

/* Spawn argv with stdout to /dev/null and stderr to the CLI's error file; wait for it.
 * Returns the time from spawn to exit in ns, or -1 (reported) on failure or non-zero exit. */
static int64_t spawn_wait(struct bench *b, char *const argv[])
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, b->cli_err_path,
                                     O_WRONLY | O_APPEND | O_CREAT, 0600);
    int64_t t0 = bench_now_ns();
    int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, b->cli_env);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        fail(b, "posix_spawn %s: %s", argv[0], strerror(r));
        return -1;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int64_t t = bench_now_ns() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail(b, "%s %s exited with %s %d (its stderr: %s)", argv[0], argv[1] ? argv[1] : "",
             WIFEXITED(status) ? "status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), b->cli_err_path);
        return -1;
    }
    return t;
}

static int64_t sample_cli(struct bench *b)
{
    char *argv[] = {(char *)b->cli, (char *)"exec", b->id, (char *)"--", (char *)"true", NULL};
    return spawn_wait(b, argv);
}

static int64_t sample_true(struct bench *b)
{
    char *argv[] = {(char *)"/bin/true", NULL};
    return spawn_wait(b, argv);
}

/* ---- StreamExec of `true` straight to cwsandbox-local ----------------------------------- */

struct sexec {
    bool done, exited;
    int exit_code;
    enum cws_errcode code;
    char message[CWS_ERROR_MESSAGE_MAX];
};

static void sexec_message(struct cws_gc_call *call, const uint8_t *data, size_t len, void *ud)
{
    struct sexec *s = ud;
    ExecStreamResponse *r = coreweave__sandbox__v1__exec_stream_response__unpack(NULL, len, data);
    if (!r) {
        snprintf(s->message, sizeof(s->message), "malformed ExecStreamResponse");
        s->code = CWS_E_PROTOCOL;
        s->done = true;
        cws_gc_call_cancel(call);
        return;
    }
    if (r->message_case == COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_EXIT) {
        /* As the daemon does: the exit status is the answer; the rest of the call is not
         * waited for. */
        s->exited = true;
        s->exit_code = r->exit->exit_code;
        s->done = true;
        cws_gc_call_cancel(call);
    } else if (r->message_case == COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_ERROR) {
        snprintf(s->message, sizeof(s->message), "%s: %s", r->error->code, r->error->message);
        s->code = CWS_E_INTERNAL;
        s->done = true;
        cws_gc_call_cancel(call);
    }
    coreweave__sandbox__v1__exec_stream_response__free_unpacked(r, NULL);
}

static void sexec_done(struct cws_gc_call *call, const struct cws_gc_result *res, void *ud)
{
    struct sexec *s = ud;
    (void)call;
    s->done = true;
    s->code = res->error->code;
    snprintf(s->message, sizeof(s->message), "%s", res->error->message);
}

static const struct cws_gc_handlers sexec_handlers = {
    .on_message = sexec_message,
    .on_done = sexec_done,
};

static int direct_client(struct bench *b)
{
    char url[400];
    struct cws_error err;
    snprintf(url, sizeof(url), "unix:%s", b->backend_sock);
    b->base = event_base_new();
    struct cws_gclient_config cfg = {.base = b->base, .url = url, .user_agent = "bench_cli"};
    if (!b->base || cws_gclient_new(&cfg, &b->gc, &err) < 0) {
        fail(b, "cannot make a gRPC client for %s: %s", url, b->base ? err.message : "no base");
        return -1;
    }
    return 0;
}

/* The daemon's backend call for `exec ID -- true`: StreamExec, init then half-close (stdin is
 * not forwarded), until the exit message. */
static int64_t sample_direct(struct bench *b)
{
    char *cmd[] = {(char *)"true"};
    struct cws_error err;
    ExecStreamRequest req = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__INIT;
    Coreweave__Sandbox__V1__ExecStreamInit init = COREWEAVE__SANDBOX__V1__EXEC_STREAM_INIT__INIT;
    init.sandbox_id = b->id;
    init.command = cmd;
    init.n_command = 1;
    req.message_case = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_INIT;
    req.init = &init;
    uint8_t first[256];
    size_t len = protobuf_c_message_get_packed_size(&req.base);
    if (len > sizeof(first))
        return -1;
    int64_t t0 = bench_now_ns();
    protobuf_c_message_pack(&req.base, first);
    struct sexec s = {0};
    struct cws_gc_call *call = NULL;
    struct cws_gc_call_opts opts = {.deadline_ms = cws_gc_now_ms() + 300000,
                                    .wait_for_ready = true};
    if (cws_gclient_call_start(b->gc, SERVICE "StreamExec", &opts, &sexec_handlers, &s, &call,
                               &err) < 0 ||
        cws_gc_call_send(call, first, len) < 0 || cws_gc_call_close_send(call) < 0) {
        fail(b, "StreamExec: %s", err.message);
        return -1;
    }
    while (!s.done)
        event_base_loop(b->base, EVLOOP_ONCE);
    int64_t t = bench_now_ns() - t0;
    if (!s.exited || s.exit_code != 0) {
        fail(b, "StreamExec true straight to the backend: %s, exit %d (%s: %s)",
             s.exited ? "exited" : "no exit status", s.exit_code, cws_errcode_name(s.code),
             s.message);
        return -1;
    }
    return t;
}

/* ---- (i) latency added by the CLI -------------------------------------------------------- */

static void phase_latency(struct bench *b)
{
    long n = b->o.runs;
    int64_t *cli = calloc((size_t)n, sizeof(int64_t));
    int64_t *direct = calloc((size_t)n, sizeof(int64_t));
    int64_t *floor = calloc((size_t)n, sizeof(int64_t));
    if (!cli || !direct || !floor || direct_client(b) < 0)
        goto out;
    for (long i = 0; i < b->o.warmup; i++)
        if (sample_cli(b) < 0 || sample_direct(b) < 0 || sample_true(b) < 0)
            goto out;
    /* Interleaved, with the order rotating, so that drift on the machine hits all paths. */
    for (long i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++) {
            int which = (int)((i + k) % 3);
            int64_t t = which == 0 ? sample_cli(b) : which == 1 ? sample_direct(b) : sample_true(b);
            if (t < 0)
                goto out;
            (which == 0 ? cli : which == 1 ? direct : floor)[i] = t;
        }
    }
    qsort(cli, (size_t)n, sizeof(int64_t), bench_cmp_i64);
    qsort(direct, (size_t)n, sizeof(int64_t), bench_cmp_i64);
    qsort(floor, (size_t)n, sizeof(int64_t), bench_cmp_i64);
    double added = pct_ms(cli, n, 50) - pct_ms(direct, n, 50);
    add_row(b, "(i) cwsandbox exec ID -- true, end to end", "", -1, "%.2f / %.2f ms",
            pct_ms(cli, n, 50), pct_ms(cli, n, 99));
    add_row(b, "(i) StreamExec true, direct to the backend", "", -1, "%.2f / %.2f ms",
            pct_ms(direct, n, 50), pct_ms(direct, n, 99));
    add_row(b, "(i) posix_spawn /bin/true (process floor)", "", -1, "%.2f / %.2f ms",
            pct_ms(floor, n, 50), pct_ms(floor, n, 99));
    add_row(b, "(i) added by the CLI at p50", "<= 3 ms", added <= TARGET_ADDED_MS, "%.2f ms",
            added);
out:
    /* The direct client's connection must be gone before (ii) counts connections. */
    if (b->gc)
        cws_gclient_free(b->gc);
    b->gc = NULL;
    free(cli);
    free(direct);
    free(floor);
}

/* ---- (ii) one backend connection for many CLI processes --------------------------------- */

/* Connections cwsandbox-local accepted so far: its "<peer>: connected" debug lines. */
static long accepted_connections(struct bench *b)
{
    FILE *f = fopen(b->log_path, "r");
    char line[4096];
    long n = 0;
    if (!f) {
        fail(b, "cannot read %s: %s", b->log_path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f))
        if (strstr(line, " cwsandbox-local[") && strstr(line, " debug: ") &&
            strstr(line, ": connected"))
            n++;
    fclose(f);
    return n;
}

/* Connections open at the backend now: the connected entries of its socket's path in
 * /proc/net/unix (accepted sockets carry the listener's path). */
static long open_connections(struct bench *b)
{
    FILE *f = fopen("/proc/net/unix", "r");
    char line[1024];
    long n = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char path[512] = "";
        unsigned st = 0;
        /* Num RefCount Protocol Flags Type St Inode Path */
        if (sscanf(line, "%*s %*s %*s %*s %*s %x %*s %511s", &st, path) == 2 && st == 3 &&
            strcmp(path, b->backend_sock) == 0)
            n++;
    }
    fclose(f);
    return n;
}

static void phase_connections(struct bench *b)
{
    /* Let the backend see the direct client's connection close. */
    long open0 = -1;
    for (int i = 0; i < 50 && (open0 = open_connections(b)) > 1; i++)
        usleep(20000);
    long acc0 = accepted_connections(b);
    int64_t t0 = bench_now_ns();
    long ok = 0;
    for (long i = 0; i < b->o.execs; i++) {
        if (sample_cli(b) < 0)
            break;
        ok++;
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    long acc1 = accepted_connections(b);
    long open1 = open_connections(b);
    if (acc0 < 0 || acc1 < 0)
        return;
    long used = (open0 > 0 ? open0 : 0) + (acc1 - acc0);
    char name[64];
    snprintf(name, sizeof(name), "(ii) %ld x cwsandbox exec, exit 0", b->o.execs);
    add_row(b, name, "all", ok == b->o.execs, "%ld in %.1f s (%.0f/s)", ok, secs,
            secs > 0 ? (double)ok / secs : 0);
    add_row(b, "(ii) backend connections accepted meanwhile", "", -1, "%ld", acc1 - acc0);
    add_row(b, "(ii) backend connections open before/after", "", -1, "%ld / %ld", open0, open1);
    add_row(b, "(ii) HTTP/2 connections that served them", "1", used == TARGET_CONNS, "%ld", used);
}

/* ---- main ------------------------------------------------------------------------------ */

static void print_table(const struct bench *b)
{
    printf("\n%-46s %-24s %-8s %s\n", "figure (p50 / p99)", "value", "target", "met");
    for (int i = 0; i < b->n_rows; i++) {
        const struct row *r = &b->rows[i];
        printf("%-46s %-24s %-8s %s\n", r->name, r->value, r->met < 0 ? "" : r->target,
               r->met < 0 ? ""
               : r->met   ? "yes"
                          : "NO");
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_cli [options]\n"
               "  --only PHASES   any of i, ii: 'i', 'ii' (default both)\n"
               "  --runs N        (i) samples per path (default 200)\n"
               "  --warmup N      (i) unmeasured runs per path first (default 10)\n"
               "  --execs N       (ii) cwsandbox exec processes in a row (default 1000)\n"
               "  --keep-log      keep the daemon's log even when all went well\n"
               "Environment: CWSD_BIN, CWSD_LOCAL_BIN, CWS_CLI_BIN override the binaries.\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"only", required_argument, NULL, 'O'},
        {"runs", required_argument, NULL, 'r'},
        {"warmup", required_argument, NULL, 'w'},
        {"execs", required_argument, NULL, 'e'},
        {"keep-log", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    *o = (struct options){.only = "i,ii", .runs = 200, .warmup = 10, .execs = 1000};
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end = NULL;
        long v = 0;
        if (optarg && c != 'O') {
            v = strtol(optarg, &end, 10);
            if (*end || v < 1) {
                fprintf(stderr, "bench_cli: --%s needs a positive number\n",
                        c == 'r'   ? "runs"
                        : c == 'w' ? "warmup"
                                   : "execs");
                return 2;
            }
        }
        switch (c) {
        case 'O':
            o->only = optarg;
            break;
        case 'r':
            o->runs = v;
            break;
        case 'w':
            o->warmup = v;
            break;
        case 'e':
            o->execs = v;
            break;
        case 'k':
            o->keep_log = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

/* Whether phase "i" or "ii" was asked for in the comma-separated --only. */
static bool phase_on(const char *only, const char *phase)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%s", only);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcmp(t, phase) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    struct bench b;
    memset(&b, 0, sizeof(b));
    int r = parse_options(argc, argv, &b.o);
    if (r)
        return r == 1 ? 0 : r;
    signal(SIGPIPE, SIG_IGN);
    cws_log_set_level(CWS_LOG_WARN);
    setenv("CWSD_BIN", getenv("CWSD_BIN") ? getenv("CWSD_BIN") : BENCH_CWSD_BIN, 1);
    setenv("CWSD_LOCAL_BIN", getenv("CWSD_LOCAL_BIN") ? getenv("CWSD_LOCAL_BIN") : BENCH_LOCAL_BIN,
           1);
    b.cli = getenv("CWS_CLI_BIN") ? getenv("CWS_CLI_BIN") : BENCH_CLI_BIN;
    snprintf(b.cli_err_path, sizeof(b.cli_err_path), "/tmp/bench_cli-XXXXXX.err");
    int errfd = mkstemps(b.cli_err_path, 4);
    if (errfd >= 0)
        close(errfd);

    printf("bench_cli: %s against cwsandboxd %s and cwsandbox-local %s\n", b.cli,
           getenv("CWSD_BIN"), getenv("CWSD_LOCAL_BIN"));
    fflush(stdout);
    if (errfd < 0)
        fail(&b, "cannot create %s: %s", b.cli_err_path, strerror(errno));
    else if (start_daemon(&b) == 0 && make_cli_env(&b) == 0) {
        printf("sandbox %s on %s\n", b.id, b.backend_sock);
        fflush(stdout);
        if (phase_on(b.o.only, "i"))
            phase_latency(&b);
        if (phase_on(b.o.only, "ii") && !b.errors)
            phase_connections(&b);
    }
    stop_daemon(&b);
    print_table(&b);
    if (b.errors || b.o.keep_log) {
        printf("daemon and backend log: %s\nCLI stderr: %s\n", b.log_path, b.cli_err_path);
    } else {
        unlink(b.log_path);
        unlink(b.cli_err_path);
    }
    free(b.cli_env);
    free(b.socket_env);
    return b.errors ? 1 : 0;
}
