/* cwsandbox-init: PID 1 of a sandbox. See init.h for its life. Started by the runtime
 * (spawn.c) with the sync socket on fd 3 and the sandbox directory on fd 4, already in its
 * namespaces (and, unprivileged, with its user namespace's maps written). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exit_record.h"
#include "init.h"
#include "init_proto.h"
#include "log.h"

#define END_DEADLINE_S 2 /* after the main command: for output and exec answers */

static int64_t now_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sync_send(const char *msg, const char *detail)
{
    char buf[CWS_INIT_SYNC_MAX];
    int n = snprintf(buf, sizeof(buf), "%s%s", msg, detail ? detail : "");
    if (n >= (int)sizeof(buf))
        n = (int)sizeof(buf) - 1;
    if (send(CWS_INIT_SYNC_FD, buf, (size_t)n, MSG_NOSIGNAL) < 0)
        cws_log(CWS_LOG_DEBUG, "sync: %s", strerror(errno));
}

static void record_exit(struct init_ctx *ctx, int code, const char *reason)
{
    struct cws_exit_record rec = {.code = code, .ended_ns = now_realtime_ns()};
    struct cws_error err;
    snprintf(rec.reason, sizeof(rec.reason), "%s", reason ? reason : "");
    if (cws_exit_record_write(ctx->dirfd, &rec, &err) < 0)
        cws_log(CWS_LOG_ERROR, "%s", err.message);
}

/* Setup failed before the main command ran: say why on both channels and leave. */
static _Noreturn void fail_setup(struct init_ctx *ctx, const struct cws_error *err)
{
    char reason[CWS_EXIT_REASON_MAX];
    snprintf(reason, sizeof(reason), "setup failed: %.480s", err->message);
    cws_log(CWS_LOG_ERROR, "%s", reason);
    record_exit(ctx, -1, reason);
    sync_send(CWS_INIT_SYNC_FAIL, reason);
    _exit(1);
}

/* The init socket, bound while the sandbox directory is still reachable by path; after
 * pivot_root no path inside leads to it. */
static int open_socket(struct cws_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", CWS_SB_INIT_SOCKET);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return cws_error_set(err, CWS_E_INTERNAL, "socket: %s", strerror(errno));
    unlink(CWS_SB_INIT_SOCKET);
    mode_t old = umask(0077);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || listen(fd, 64) < 0) {
        r = cws_error_set(err, CWS_E_INTERNAL, "listen on %s: %s", CWS_SB_INIT_SOCKET,
                          strerror(errno));
        close(fd);
        return r;
    }
    return fd;
}

static int open_host_side(struct init_ctx *ctx, struct cws_error *err)
{
    ctx->log_fd = open(CWS_SB_LOG, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (ctx->log_fd < 0)
        return cws_error_set(err, CWS_E_IO, "open the log: %s", strerror(errno));
    ctx->listen_fd = open_socket(err);
    return ctx->listen_fd < 0 ? ctx->listen_fd : 0;
}

static int setup(struct init_ctx *ctx, struct cws_error *err)
{
    const struct cws_init_spec *s = ctx->spec;
    int r;
    if (sethostname(s->id, strlen(s->id)) < 0)
        return cws_error_set(err, CWS_E_INTERNAL, "sethostname: %s", strerror(errno));
    if ((r = cws_rootfs_build(s, err)) < 0 || (r = cws_netif_loopback_up(err)) < 0 ||
        (r = open_host_side(ctx, err)) < 0 || (r = cws_rootfs_enter(err)) < 0 ||
        (r = cws_rootfs_populate(s, err)) < 0)
        return r;
    return 0;
}

/* Block until the server says the network is ready. */
static int wait_go(struct cws_error *err)
{
    char buf[CWS_INIT_SYNC_MAX];
    ssize_t n;
    do
        n = recv(CWS_INIT_SYNC_FD, buf, sizeof(buf), 0);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)strlen(CWS_INIT_SYNC_GO) && memcmp(buf, CWS_INIT_SYNC_GO, (size_t)n) == 0)
        return 0;
    return cws_error_set(err, CWS_E_UNAVAILABLE, "the server went away during setup");
}

/* ---- the end ---- */

static void kill_everything(void)
{
    /* As PID 1, kill(-1) reaches every other process of the namespace. */
    kill(-1, SIGKILL);
}

void cws_init_check_end(struct init_ctx *ctx)
{
    if (!ctx->ending || !cws_main_cmd_done(ctx->main) || !cws_exec_sessions_idle(ctx))
        return;
    event_base_loopbreak(ctx->base);
}

static void on_end_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct init_ctx *ctx = arg;
    cws_log(CWS_LOG_DEBUG, "end deadline passed; leaving what was not sent");
    event_base_loopbreak(ctx->base);
}

static void begin_end(struct init_ctx *ctx)
{
    int status = cws_main_cmd_status(ctx->main);
    ctx->ending = true;
    /* Record at once: the server may kill us any moment now that its grace ran out. */
    record_exit(ctx, cws_exit_code_from_status(status), NULL);
    cws_exec_server_stop(ctx);
    kill_everything();
    struct timeval tv = {END_DEADLINE_S, 0};
    event_add(ctx->end_timer, &tv);
}

/* ---- signals ---- */

static void reap(struct init_ctx *ctx)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (ctx->main && pid == cws_main_cmd_pid(ctx->main) && !ctx->ending) {
            cws_main_cmd_exited(ctx->main, status);
            begin_end(ctx);
        } else {
            cws_exec_sessions_reaped(ctx, pid, status);
        }
    }
    cws_init_check_end(ctx);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct init_ctx *ctx = arg;
    if (sig == SIGCHLD) {
        reap(ctx);
        return;
    }
    /* SIGTERM and SIGINT are for the main command; it decides how to end. */
    if (ctx->main && !ctx->ending)
        kill(cws_main_cmd_pid(ctx->main), (int)sig);
}

static int watch_signals(struct init_ctx *ctx, struct cws_error *err)
{
    static const int sigs[3] = {SIGCHLD, SIGTERM, SIGINT};
    for (int i = 0; i < 3; i++) {
        ctx->signals[i] = evsignal_new(ctx->base, sigs[i], on_signal, ctx);
        if (!ctx->signals[i] || event_add(ctx->signals[i], NULL) < 0)
            return cws_error_set(err, CWS_E_INTERNAL, "watch signal %d", sigs[i]);
    }
    ctx->end_timer = evtimer_new(ctx->base, on_end_deadline, ctx);
    return ctx->end_timer ? 0 : cws_error_set(err, CWS_E_NOMEM, NULL);
}

static int run_main(struct init_ctx *ctx, struct cws_error *err)
{
    int r;
    if ((r = watch_signals(ctx, err)) < 0 || (r = cws_exec_server_start(ctx, err)) < 0)
        return r;
    if (ctx->spec->wait_go && (r = wait_go(err)) < 0)
        return r;
    if ((r = cws_main_cmd_start(ctx, &ctx->main, err)) < 0)
        return r;
    sync_send(CWS_INIT_SYNC_RUNNING, NULL);
    close(CWS_INIT_SYNC_FD);
    /* It may have ended already; the reaper runs from the loop. */
    reap(ctx);
    return 0;
}

static void init_process(void)
{
    umask(022);
    signal(SIGPIPE, SIG_IGN);
    setsid();
    /* Keep the sandbox's own processes (root inside) out of /proc/1: its fds lead to the
     * host side of the sandbox directory. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    fcntl(CWS_INIT_SYNC_FD, F_SETFD, FD_CLOEXEC);
    fcntl(CWS_INIT_DIR_FD, F_SETFD, FD_CLOEXEC);
}

/* Enter the sandbox directory by path: fd 4 leads there too, but through the server's mount
 * namespace, and mounts relative to it would be refused. Same directory, checked. */
static int enter_sandbox_dir(const char *path)
{
    struct stat a, b;
    if (chdir(path) < 0 || stat(".", &a) < 0 || fstat(CWS_INIT_DIR_FD, &b) < 0)
        return -1;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct init_ctx ctx = {.dirfd = CWS_INIT_DIR_FD, .log_fd = -1, .listen_fd = -1};
    struct cws_error err;
    cws_log_init("cwsandbox-init");
    if (getpid() != 1 || argc < 2 || enter_sandbox_dir(argv[1]) < 0) {
        fprintf(stderr, "cwsandbox-init: runs only as PID 1 of a sandbox, started by "
                        "cwsandbox-local\n");
        return 2;
    }
    init_process();
    if (cws_init_spec_read(ctx.dirfd, &ctx.spec, &err) < 0)
        fail_setup(&ctx, &err);
    ctx.base = event_base_new();
    if (!ctx.base) {
        cws_error_set(&err, CWS_E_NOMEM, "event loop");
        fail_setup(&ctx, &err);
    }
    if (setup(&ctx, &err) < 0 || run_main(&ctx, &err) < 0)
        fail_setup(&ctx, &err);
    event_base_dispatch(ctx.base);
    /* Leaving kills every process of the namespace anyway; make it explicit and final. */
    kill_everything();
    cws_exec_sessions_free_all(&ctx);
    cws_log(CWS_LOG_DEBUG, "sandbox %s ended", ctx.spec->id);
    cws_main_cmd_free(ctx.main);
    for (int i = 0; i < 3; i++)
        if (ctx.signals[i])
            event_free(ctx.signals[i]);
    event_free(ctx.end_timer);
    event_base_free(ctx.base);
    cws_init_spec_free(ctx.spec);
    return 0;
}
