/* The init socket: one connection per exec. A session runs one command with pipes or a pty,
 * forwards stdin, streams output and answers with the exit status once the process ended and
 * its output was sent. Backpressure both ways: output stops being read from the process
 * while the connection's queue is full, and the connection stops being read while stdin's
 * queue is. Closing the connection kills the process group. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "exit_record.h"
#include "init.h"
#include "init_proto.h"
#include "log.h"
#include "rpc_decoder.h"
#include "rpc_encode.h"
#include "rpc_params.h"

#define OUT_HIGH   (1u << 20) /* stop reading the process above this much queued output */
#define OUT_LOW    (256u << 10)
#define STDIN_HIGH (1u << 20) /* stop reading the connection above this much queued stdin */
#define STDIN_LOW  (256u << 10)
#define DRAIN_MS   100 /* after the exit, how long output held open by others is waited for */

struct exec_session {
    struct init_ctx *ctx;
    struct exec_session *next, **pprev;
    struct bufferevent *bev;
    struct cws_rpc_decoder *dec;
    uint32_t msgid;
    bool have_request;
    bool responded;
    pid_t pid;
    bool exited;
    int status;
    bool tty;
    int out_fd[2];
    struct event *out_ev[2];
    bool out_paused;
    int in_fd;
    struct evbuffer *in_q;
    struct event *in_ev;
    bool eof_pending;
    struct event *drain_timer;
};

static void session_free(struct exec_session *s);
static void session_check_finish(struct exec_session *s);

/* Signal the process group of the exec; right after fork the child may not have made its
 * group yet (setsid), then the process itself gets it. */
static void kill_group(struct exec_session *s, int sig)
{
    if (s->pid <= 0 || s->exited)
        return;
    if (kill(-s->pid, sig) < 0 && errno == ESRCH)
        kill(s->pid, sig);
}

static int evbuffer_writer(void *data, const char *buf, size_t len)
{
    return evbuffer_add(data, buf, len);
}

static void packer_init(struct exec_session *s, msgpack_packer *pk)
{
    msgpack_packer_init(pk, bufferevent_get_output(s->bev), evbuffer_writer);
}

static void send_error(struct exec_session *s, enum cws_errcode code, const char *msg)
{
    struct cws_error e;
    msgpack_packer pk;
    cws_error_set(&e, code, "%s", msg);
    packer_init(s, &pk);
    cws_rpc_pack_error_response(&pk, s->msgid, &e);
    s->responded = true;
}

static void send_output(struct exec_session *s, int fd, const uint8_t *data, size_t len)
{
    msgpack_packer pk;
    packer_init(s, &pk);
    cws_rpc_pack_notification_head(&pk, CWS_INIT_N_OUTPUT);
    msgpack_pack_map(&pk, 2);
    cws_rpc_pack_kv_int(&pk, "fd", fd);
    cws_rpc_pack_kv_bin(&pk, "data", data, len);
}

/* ---- output of the process ---- */

static void out_close(struct exec_session *s, int i)
{
    if (s->out_ev[i])
        event_free(s->out_ev[i]);
    s->out_ev[i] = NULL;
    if (s->out_fd[i] >= 0)
        close(s->out_fd[i]);
    s->out_fd[i] = -1;
}

static void outputs_pause(struct exec_session *s, bool pause)
{
    s->out_paused = pause;
    for (int i = 0; i < 2; i++)
        if (s->out_ev[i])
            pause ? event_del(s->out_ev[i]) : event_add(s->out_ev[i], NULL);
}

/* Read one chunk; returns false at EOF (a pty reports the end as EIO). */
static bool out_read(struct exec_session *s, int i)
{
    uint8_t buf[CWS_INIT_CHUNK];
    ssize_t n = read(s->out_fd[i], buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n <= 0) {
        out_close(s, i);
        return false;
    }
    send_output(s, i + 1, buf, (size_t)n);
    if (!s->out_paused && evbuffer_get_length(bufferevent_get_output(s->bev)) >= OUT_HIGH)
        outputs_pause(s, true);
    return true;
}

static void on_out_readable(evutil_socket_t fd, short what, void *arg)
{
    struct exec_session *s = arg;
    int i = s->out_fd[0] == fd ? 0 : 1;
    if (!out_read(s, i))
        session_check_finish(s);
}

/* ---- stdin of the process ---- */

static void stdin_close(struct exec_session *s)
{
    if (s->in_ev)
        event_free(s->in_ev);
    s->in_ev = NULL;
    if (s->in_fd >= 0)
        close(s->in_fd);
    s->in_fd = -1;
    evbuffer_drain(s->in_q, evbuffer_get_length(s->in_q));
}

static void stdin_flushed(struct exec_session *s)
{
    if (!s->eof_pending)
        return;
    s->eof_pending = false;
    if (s->tty) {
        /* A terminal has no half-close: send its end-of-file character. */
        static const char eot = 4;
        if (write(s->in_fd, &eot, 1) < 0)
            cws_log(CWS_LOG_DEBUG, "eof to pty: %s", strerror(errno));
        return;
    }
    stdin_close(s);
}

static void on_in_writable(evutil_socket_t fd, short what, void *arg)
{
    struct exec_session *s = arg;
    if (evbuffer_write(s->in_q, fd) < 0 && errno != EAGAIN && errno != EINTR) {
        stdin_close(s); /* the process closed its stdin */
        bufferevent_enable(s->bev, EV_READ);
        return;
    }
    size_t left = evbuffer_get_length(s->in_q);
    if (left < STDIN_LOW)
        bufferevent_enable(s->bev, EV_READ);
    if (left == 0) {
        event_del(s->in_ev);
        stdin_flushed(s);
    }
}

static void stdin_queue(struct exec_session *s, const void *data, size_t len)
{
    if (s->in_fd < 0)
        return; /* closed: the data has nowhere to go */
    evbuffer_add(s->in_q, data, len);
    event_add(s->in_ev, NULL);
    if (evbuffer_get_length(s->in_q) >= STDIN_HIGH)
        bufferevent_disable(s->bev, EV_READ);
}

/* ---- starting the process ---- */

struct exec_req {
    char **argv;
    char **env;
    char *cwd;
    bool tty;
    int64_t cols, rows;
};

static void exec_req_free(struct exec_req *q)
{
    cws_strv_free(q->argv);
    cws_strv_free(q->env);
    free(q->cwd);
}

static int parse_exec(const msgpack_object *p, struct exec_req *q, struct cws_error *err)
{
    size_t n;
    int r;
    q->cols = 80;
    q->rows = 24;
    if ((r = cws_rpc_required(cws_rpc_param_strv_array(p, "argv", &q->argv, &n, err), "argv",
                              err)) < 0 ||
        (r = cws_rpc_param_strv_array(p, "env", &q->env, &n, err)) < 0 ||
        (r = cws_rpc_param_str(p, "cwd", &q->cwd, err)) < 0 ||
        (r = cws_rpc_param_bool(p, "tty", &q->tty, err)) < 0 ||
        (r = cws_rpc_param_int(p, "cols", 1, 65535, &q->cols, err)) < 0 ||
        (r = cws_rpc_param_int(p, "rows", 1, 65535, &q->rows, err)) < 0)
        return r;
    if (!q->argv[0])
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "argv is empty");
    return 0;
}

static int open_pty(int *ret_master, int *ret_slave, int cols, int rows, struct cws_error *err)
{
    char name[128];
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return cws_error_set(err, CWS_E_INTERNAL, "open a pty: %s", strerror(errno));
    if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof(name))) {
        close(master);
        return cws_error_set(err, CWS_E_INTERNAL, "set up the pty: %s", strerror(errno));
    }
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
        close(master);
        return cws_error_set(err, CWS_E_INTERNAL, "open %s: %s", name, strerror(errno));
    }
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(master, TIOCSWINSZ, &ws);
    *ret_master = master;
    *ret_slave = slave;
    return 0;
}

/* The process's ends in child[], ours in the session. */
static int open_stdio(struct exec_session *s, const struct exec_req *q, int child[3],
                      struct cws_error *err)
{
    if (q->tty) {
        int master = -1, slave = -1;
        int r = open_pty(&master, &slave, (int)q->cols, (int)q->rows, err);
        if (r < 0)
            return r;
        child[0] = slave;
        child[1] = fcntl(slave, F_DUPFD_CLOEXEC, 0);
        child[2] = fcntl(slave, F_DUPFD_CLOEXEC, 0);
        s->out_fd[0] = master;
        s->in_fd = fcntl(master, F_DUPFD_CLOEXEC, 0);
        return 0;
    }
    int in[2], out[2], errp[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "pipe: %s", strerror(errno));
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "pipe: %s", strerror(errno));
    }
    if (pipe2(errp, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "pipe: %s", strerror(errno));
    }
    child[0] = in[0];
    child[1] = out[1];
    child[2] = errp[1];
    s->in_fd = in[1];
    s->out_fd[0] = out[0];
    s->out_fd[1] = errp[0];
    return 0;
}

static int watch_stdio(struct exec_session *s)
{
    struct event_base *base = s->ctx->base;
    for (int i = 0; i < 2; i++) {
        if (s->out_fd[i] < 0)
            continue;
        evutil_make_socket_nonblocking(s->out_fd[i]);
        s->out_ev[i] = event_new(base, s->out_fd[i], EV_READ | EV_PERSIST, on_out_readable, s);
        if (!s->out_ev[i] || event_add(s->out_ev[i], NULL) < 0)
            return -CWS_E_NOMEM;
    }
    evutil_make_socket_nonblocking(s->in_fd);
    s->in_ev = event_new(base, s->in_fd, EV_WRITE | EV_PERSIST, on_in_writable, s);
    return s->in_ev ? 0 : -CWS_E_NOMEM;
}

static int start_process(struct exec_session *s, const struct exec_req *q, struct cws_error *err)
{
    int child[3] = {-1, -1, -1};
    const struct cws_init_spec *spec = s->ctx->spec;
    char **envp = cws_env_build(spec->id, spec->env, q->env, q->tty);
    if (!envp)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    s->tty = q->tty;
    int r = open_stdio(s, q, child, err);
    if (r == 0) {
        struct cws_child_spec c = {
            .argv = q->argv,
            .envp = envp,
            .cwd = q->cwd ? q->cwd : spec->cwd,
            .stdio = {child[0], child[1], child[2]},
            .tty = q->tty,
            .report_fd = -1,
        };
        r = cws_child_spawn(&c, &s->pid, err);
    }
    for (int i = 0; i < 3; i++)
        if (child[i] >= 0)
            close(child[i]);
    cws_strv_free(envp);
    if (r == 0 && watch_stdio(s) < 0)
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
    return r;
}

static void handle_exec(struct exec_session *s, const struct cws_rpc_msg *m)
{
    struct exec_req q = {0};
    struct cws_error err;
    s->have_request = true;
    s->msgid = m->msgid;
    if (parse_exec(m->params, &q, &err) < 0 || start_process(s, &q, &err) < 0) {
        exec_req_free(&q);
        send_error(s, err.code, err.message);
        return;
    }
    exec_req_free(&q);
    msgpack_packer pk;
    packer_init(s, &pk);
    cws_rpc_pack_notification_head(&pk, CWS_INIT_N_STARTED);
    msgpack_pack_map(&pk, 1);
    cws_rpc_pack_kv_int(&pk, "pid", s->pid);
}

/* ---- messages from the server ---- */

static void handle_resize(struct exec_session *s, const msgpack_object *p)
{
    int64_t cols = 0, rows = 0;
    if (!s->tty || s->out_fd[0] < 0 || cws_rpc_param_int(p, "cols", 1, 65535, &cols, NULL) <= 0 ||
        cws_rpc_param_int(p, "rows", 1, 65535, &rows, NULL) <= 0)
        return;
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(s->out_fd[0], TIOCSWINSZ, &ws);
}

static void handle_notification(struct exec_session *s, const struct cws_rpc_msg *m)
{
    if (strcmp(m->method, CWS_INIT_N_STDIN) == 0) {
        const void *data;
        size_t len;
        if (cws_rpc_param_bytes(m->params, "data", &data, &len, NULL) > 0)
            stdin_queue(s, data, len);
    } else if (strcmp(m->method, CWS_INIT_N_EOF) == 0) {
        s->eof_pending = true;
        if (s->in_fd >= 0 && evbuffer_get_length(s->in_q) == 0)
            stdin_flushed(s);
    } else if (strcmp(m->method, CWS_INIT_N_RESIZE) == 0) {
        handle_resize(s, m->params);
    } else if (strcmp(m->method, CWS_INIT_N_SIGNAL) == 0) {
        int64_t sig = 0;
        if (cws_rpc_param_int(m->params, "signal", 1, 64, &sig, NULL) > 0)
            kill_group(s, (int)sig);
    }
}

static void handle_message(struct exec_session *s, const struct cws_rpc_msg *m)
{
    if (m->type == CWS_RPC_REQUEST && !s->have_request && strcmp(m->method, CWS_INIT_M_EXEC) == 0) {
        if (s->ctx->ending) {
            s->have_request = true;
            s->msgid = m->msgid;
            send_error(s, CWS_E_FAILED_PRECONDITION, "sandbox is not running");
            return;
        }
        handle_exec(s, m);
    } else if (m->type == CWS_RPC_NOTIFICATION && s->pid > 0) {
        handle_notification(s, m);
    }
}

/* Feed one chunk to the decoder and handle the messages it completes; false when the
 * session was freed. */
static bool feed_chunk(struct exec_session *s, const void *data, size_t len)
{
    struct cws_error err;
    struct cws_rpc_msg *m;
    int r = cws_rpc_decoder_feed(s->dec, data, len, &err);
    while (r >= 0 && (r = cws_rpc_decoder_next(s->dec, &m, &err)) != 0) {
        if (r > 0) {
            handle_message(s, m);
            cws_rpc_msg_free(m);
        } else if (!cws_rpc_decoder_broken(s->dec)) {
            r = 0; /* one bad message: skip it */
        }
    }
    if (r >= 0)
        return true;
    cws_log(CWS_LOG_WARN, "exec connection: %s", err.message);
    kill_group(s, SIGKILL);
    session_free(s);
    return false;
}

static void on_conn_readable(struct bufferevent *bev, void *arg)
{
    struct exec_session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char buf[CWS_INIT_CHUNK];
    int n;
    while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0)
        if (!feed_chunk(s, buf, (size_t)n))
            return;
}

static void on_conn_writable(struct bufferevent *bev, void *arg)
{
    struct exec_session *s = arg;
    if (s->out_paused)
        outputs_pause(s, false);
    if (s->responded && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        session_free(s);
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    struct exec_session *s = arg;
    /* The server went away (or freed the exec): nobody wants the process any more. */
    kill_group(s, SIGKILL);
    session_free(s);
}

/* ---- end of the process ---- */

static void finish(struct exec_session *s)
{
    if (s->responded)
        return;
    msgpack_packer pk;
    packer_init(s, &pk);
    cws_rpc_pack_result_head(&pk, s->msgid);
    msgpack_pack_map(&pk, 1);
    cws_rpc_pack_kv_int(&pk, "exit_code", cws_exit_code_from_status(s->status));
    s->responded = true;
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
        session_free(s);
}

static void session_check_finish(struct exec_session *s)
{
    if (s->exited && s->out_fd[0] < 0 && s->out_fd[1] < 0)
        finish(s);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct exec_session *s = arg;
    if (s->out_paused) {
        /* The server is not reading: nothing is lost by waiting for it. */
        struct timeval tv = {0, DRAIN_MS * 1000};
        event_add(s->drain_timer, &tv);
        return;
    }
    /* Background processes keep the output open: take what is there and finish. */
    for (int i = 0; i < 2; i++)
        while (s->out_fd[i] >= 0 && out_read(s, i) && !s->out_paused) {
            int avail = 0;
            if (ioctl(s->out_fd[i], FIONREAD, &avail) < 0 || avail == 0)
                break;
        }
    out_close(s, 0);
    out_close(s, 1);
    finish(s);
}

bool cws_exec_sessions_reaped(struct init_ctx *ctx, pid_t pid, int status)
{
    for (struct exec_session *s = ctx->sessions; s; s = s->next) {
        if (s->pid != pid || s->exited)
            continue;
        s->exited = true;
        s->status = status;
        struct timeval tv = {0, DRAIN_MS * 1000};
        event_add(s->drain_timer, &tv);
        session_check_finish(s);
        return true;
    }
    return false;
}

/* ---- sessions ---- */

static void session_free(struct exec_session *s)
{
    struct init_ctx *ctx = s->ctx;
    *s->pprev = s->next;
    if (s->next)
        s->next->pprev = s->pprev;
    out_close(s, 0);
    out_close(s, 1);
    stdin_close(s);
    evbuffer_free(s->in_q);
    if (s->drain_timer)
        event_free(s->drain_timer);
    bufferevent_free(s->bev);
    cws_rpc_decoder_free(s->dec);
    free(s);
    cws_init_check_end(ctx);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct init_ctx *ctx = arg;
    struct exec_session *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        return;
    }
    s->ctx = ctx;
    s->out_fd[0] = s->out_fd[1] = s->in_fd = -1;
    s->bev = bufferevent_socket_new(ctx->base, fd, BEV_OPT_CLOSE_ON_FREE);
    s->in_q = evbuffer_new();
    s->drain_timer = evtimer_new(ctx->base, on_drain_timeout, s);
    if (!s->bev || !s->in_q || !s->drain_timer ||
        cws_rpc_decoder_new(CWS_INIT_MAX_MESSAGE, &s->dec) < 0) {
        if (s->bev)
            bufferevent_free(s->bev);
        else
            close(fd);
        if (s->in_q)
            evbuffer_free(s->in_q);
        if (s->drain_timer)
            event_free(s->drain_timer);
        free(s);
        return;
    }
    s->next = ctx->sessions;
    if (s->next)
        s->next->pprev = &s->next;
    s->pprev = &ctx->sessions;
    ctx->sessions = s;
    bufferevent_setcb(s->bev, on_conn_readable, on_conn_writable, on_conn_event, s);
    bufferevent_setwatermark(s->bev, EV_WRITE, OUT_LOW, 0);
    bufferevent_set_max_single_read(s->bev, 256 * 1024);
    bufferevent_set_max_single_write(s->bev, 256 * 1024);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

int cws_exec_server_start(struct init_ctx *ctx, struct cws_error *err)
{
    ctx->listener =
        evconnlistener_new(ctx->base, on_accept, ctx, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                           0, ctx->listen_fd);
    if (!ctx->listener)
        return cws_error_set(err, CWS_E_INTERNAL, "listen on the init socket failed");
    ctx->listen_fd = -1; /* the listener owns it */
    return 0;
}

void cws_exec_server_stop(struct init_ctx *ctx)
{
    if (ctx->listener)
        evconnlistener_free(ctx->listener);
    ctx->listener = NULL;
}

bool cws_exec_sessions_idle(const struct init_ctx *ctx)
{
    return ctx->sessions == NULL;
}

void cws_exec_sessions_free_all(struct init_ctx *ctx)
{
    while (ctx->sessions) {
        struct exec_session *s = ctx->sessions;
        kill_group(s, SIGKILL);
        session_free(s);
    }
}
