/* The main command: started once the root is ready, its stdout and stderr recorded in the
 * log with timestamps. Its exit ends the sandbox (main.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "log.h"
#include "logfile.h"
#include "init_proto.h"
#include "rpc_params.h"

struct main_stream {
    struct main_cmd *m;
    int fd;     /* read end; -1 at EOF */
    int stream; /* 1 or 2 */
    struct event *ev;
};

struct main_cmd {
    struct init_ctx *ctx;
    pid_t pid;
    bool exited;
    int status;
    struct main_stream out[2];
};

static int64_t now_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void stream_close(struct main_stream *s)
{
    if (s->ev)
        event_free(s->ev);
    s->ev = NULL;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

static void on_stream_readable(evutil_socket_t fd, short what, void *arg)
{
    struct main_stream *s = arg;
    uint8_t buf[CWS_INIT_CHUNK];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        stream_close(s);
        cws_init_check_end(s->m->ctx);
        return;
    }
    if (cws_logfile_append(s->m->ctx->log_fd, now_realtime_ns(), s->stream, buf, (size_t)n) < 0)
        cws_log(CWS_LOG_WARN, "log write failed: %s", strerror(errno));
}

/* Wait for the report pipe: empty at exec, the reason when exec failed. */
static int wait_exec(int report_fd, pid_t pid, struct cws_error *err)
{
    char msg[512];
    ssize_t n;
    do
        n = read(report_fd, msg, sizeof(msg) - 1);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return 0;
    msg[n] = '\0';
    waitpid(pid, NULL, 0); /* it has exited or is about to */
    return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "exec %s", msg);
}

static int open_pipes(int out[2][2], int *report, struct cws_error *err)
{
    if (pipe2(out[0], O_CLOEXEC) < 0 || pipe2(out[1], O_CLOEXEC) < 0 ||
        pipe2(report, O_CLOEXEC) < 0)
        return cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "pipe: %s", strerror(errno));
    return 0;
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static int watch_streams(struct main_cmd *m, int out[2][2], struct cws_error *err)
{
    for (int i = 0; i < 2; i++) {
        struct main_stream *s = &m->out[i];
        s->m = m;
        s->stream = i + 1;
        s->fd = out[i][0];
        out[i][0] = -1;
        evutil_make_socket_nonblocking(s->fd);
        s->ev = event_new(m->ctx->base, s->fd, EV_READ | EV_PERSIST, on_stream_readable, s);
        if (!s->ev || event_add(s->ev, NULL) < 0)
            return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    return 0;
}

int cws_main_cmd_start(struct init_ctx *ctx, struct main_cmd **ret, struct cws_error *err)
{
    int out[2][2] = {{-1, -1}, {-1, -1}}, report[2] = {-1, -1};
    int devnull = -1;
    char **envp = NULL;
    struct main_cmd *m = calloc(1, sizeof(*m));
    int r;
    if (!m)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    m->ctx = ctx;
    m->out[0].fd = m->out[1].fd = -1;
    if ((r = open_pipes(out, report, err)) < 0)
        goto fail;
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    envp = cws_env_build(ctx->spec->id, ctx->spec->env, NULL, false);
    if (devnull < 0 || !envp) {
        r = cws_error_set(err, CWS_E_INTERNAL, "prepare the main command: %s", strerror(errno));
        goto fail;
    }
    struct cws_child_spec c = {
        .argv = ctx->spec->argv,
        .envp = envp,
        .cwd = ctx->spec->cwd,
        .stdio = {devnull, out[0][1], out[1][1]},
        .report_fd = report[1],
    };
    if ((r = cws_child_spawn(&c, &m->pid, err)) < 0)
        goto fail;
    close_fds((int[]){out[0][1], out[1][1], report[1], devnull}, 4);
    out[0][1] = out[1][1] = report[1] = devnull = -1;
    if ((r = wait_exec(report[0], m->pid, err)) < 0 || (r = watch_streams(m, out, err)) < 0)
        goto fail;
    close(report[0]);
    cws_strv_free(envp);
    *ret = m;
    return 0;
fail:
    close_fds((int *)out, 4);
    close_fds(report, 2);
    if (devnull >= 0)
        close(devnull);
    cws_strv_free(envp);
    cws_main_cmd_free(m);
    return r;
}

void cws_main_cmd_free(struct main_cmd *m)
{
    if (!m)
        return;
    stream_close(&m->out[0]);
    stream_close(&m->out[1]);
    free(m);
}

pid_t cws_main_cmd_pid(const struct main_cmd *m)
{
    return m->pid;
}

void cws_main_cmd_exited(struct main_cmd *m, int status)
{
    m->exited = true;
    m->status = status;
}

bool cws_main_cmd_done(const struct main_cmd *m)
{
    return m->exited && m->out[0].fd < 0 && m->out[1].fd < 0;
}

int cws_main_cmd_status(const struct main_cmd *m)
{
    return m->status;
}
