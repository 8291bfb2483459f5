/* mock-cwsandboxd: calls that last (exec, waits, logs, streamed writes), and file.read; see
 * mock_daemon.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "mock_daemon.h"
#include "rpc_encode.h"
#include "rpc_params.h"

#define CHUNK (1024 * 1024)

struct mock_call *mock_call_new(struct mock *m, enum mock_call_kind kind, struct mock_conn *c,
                                uint32_t msgid)
{
    for (int i = 0; i < MOCK_MAX_CALLS; i++) {
        struct mock_call *call = &m->calls[i];
        if (call->kind != CALL_NONE)
            continue;
        memset(call, 0, sizeof(*call));
        call->kind = kind;
        call->conn = c;
        call->msgid = msgid;
        call->in_fd = call->out_fd = call->err_fd = call->file_fd = -1;
        msgpack_sbuffer_init(&call->in);
        msgpack_sbuffer_init(&call->out);
        msgpack_sbuffer_init(&call->err);
        return call;
    }
    return NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void mock_call_end(struct mock_call *call)
{
    if (call->in_fd != call->out_fd)
        close_fd(&call->in_fd);
    close_fd(&call->out_fd);
    close_fd(&call->err_fd);
    close_fd(&call->file_fd);
    msgpack_sbuffer_destroy(&call->in);
    msgpack_sbuffer_destroy(&call->out);
    msgpack_sbuffer_destroy(&call->err);
    call->kind = CALL_NONE;
}

static struct mock_call *find_call(struct mock *m, struct mock_conn *c, uint32_t msgid)
{
    for (int i = 0; i < MOCK_MAX_CALLS; i++)
        if (m->calls[i].kind != CALL_NONE && m->calls[i].conn == c && m->calls[i].msgid == msgid)
            return &m->calls[i];
    return NULL;
}

/* End a call with an error, killing its process. */
static void fail_call(struct mock_call *call, enum cws_errcode code, const char *msg)
{
    if (call->kind == CALL_EXEC && call->pid > 0 && !call->exited)
        kill(call->pid, SIGKILL);
    if (call->conn->fd >= 0)
        mock_reply_error(call->conn, call->msgid, code, NULL, "%s", msg);
    mock_call_end(call);
}

void mock_calls_drop_conn(struct mock *m, struct mock_conn *c)
{
    for (int i = 0; i < MOCK_MAX_CALLS; i++) {
        struct mock_call *call = &m->calls[i];
        if (call->kind != CALL_NONE && call->conn == c) {
            if (call->kind == CALL_EXEC && call->pid > 0 && !call->exited)
                kill(call->pid, SIGKILL);
            mock_call_end(call);
        }
    }
}

/* ---- exec ---- */

static void apply_env(const msgpack_object *env)
{
    for (uint32_t i = 0; env && i < env->via.map.size; i++) {
        const msgpack_object_kv *kv = &env->via.map.ptr[i];
        char k[256], v[4096];
        snprintf(k, sizeof(k), "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
        snprintf(v, sizeof(v), "%.*s", (int)kv->val.via.str.size, kv->val.via.str.ptr);
        setenv(k, v, 1);
    }
}

static void exec_child(char **argv, const char *cwd, const msgpack_object *env)
{
    apply_env(env);
    if (cwd && chdir(cwd) < 0)
        _exit(126);
    execvp(argv[0], argv);
    _exit(127);
}

static pid_t spawn_pipes(struct mock_call *call, char **argv, const char *cwd,
                         const msgpack_object *env, bool with_stdin)
{
    int in[2] = {-1, -1}, out[2], err[2];
    if ((with_stdin && pipe2(in, O_CLOEXEC) < 0) || pipe2(out, O_CLOEXEC) < 0 ||
        pipe2(err, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        dup2(with_stdin ? in[0] : null, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        exec_child(argv, cwd, env);
    }
    if (with_stdin) {
        close(in[0]);
        call->in_fd = in[1];
        fcntl(in[1], F_SETFL, O_NONBLOCK);
    }
    close(out[1]);
    close(err[1]);
    call->out_fd = out[0];
    call->err_fd = err[0];
    return pid;
}

static pid_t spawn_tty(struct mock_call *call, char **argv, const char *cwd,
                       const msgpack_object *env, unsigned cols, unsigned rows)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
        return -1;
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(master, TIOCSWINSZ, &ws);
    char *slave_name = ptsname(master);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int slave = open(slave_name, O_RDWR);
        ioctl(slave, TIOCSCTTY, 0);
        dup2(slave, 0);
        dup2(slave, 1);
        dup2(slave, 2);
        exec_child(argv, cwd, env);
    }
    fcntl(master, F_SETFL, O_NONBLOCK);
    call->out_fd = call->in_fd = master;
    call->tty = true;
    return pid;
}

static void send_ready(struct mock_call *call)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_notify_begin(&sb, &pk, "exec.ready");
    msgpack_pack_map(&pk, 1);
    cws_rpc_pack_kv_uint(&pk, "id", call->msgid);
    mock_send(call->conn, &sb);
}

void mock_exec(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    char **argv = NULL, *cwd = NULL;
    size_t argc = 0;
    const msgpack_object *env = NULL;
    bool with_stdin = false, tty = false, stream = false;
    int64_t cols = 80, rows = 24;
    double timeout_s = 0;
    int i = mock_find_sandbox(m, msg->params, c, msg->msgid);
    if (i < 0)
        return;
    if (mock_state_terminal(m->sandboxes[i].state)) {
        mock_reply_error(c, msg->msgid, CWS_E_FAILED_PRECONDITION, NULL,
                         "sandbox %s is not running", m->sandboxes[i].id);
        return;
    }
    if (cws_rpc_param_strv_array(msg->params, "argv", &argv, &argc, NULL) <= 0 || argc == 0) {
        cws_strv_free(argv);
        mock_reply_error(c, msg->msgid, CWS_E_INVALID_ARGUMENT, NULL, "argv is required");
        return;
    }
    cws_rpc_param_str(msg->params, "cwd", &cwd, NULL);
    cws_rpc_param_map(msg->params, "env", &env, NULL);
    cws_rpc_param_bool(msg->params, "stdin", &with_stdin, NULL);
    cws_rpc_param_bool(msg->params, "tty", &tty, NULL);
    cws_rpc_param_bool(msg->params, "stream", &stream, NULL);
    cws_rpc_param_int(msg->params, "cols", 1, 1000, &cols, NULL);
    cws_rpc_param_int(msg->params, "rows", 1, 1000, &rows, NULL);
    cws_rpc_param_nonneg(msg->params, "timeout_s", &timeout_s, NULL);
    struct mock_call *call = mock_call_new(m, CALL_EXEC, c, msg->msgid);
    pid_t pid = -1;
    if (call)
        pid = tty ? spawn_tty(call, argv, cwd, env, (unsigned)cols, (unsigned)rows)
                  : spawn_pipes(call, argv, cwd, env, with_stdin);
    cws_strv_free(argv);
    free(cwd);
    if (!call) {
        mock_reply_error(c, msg->msgid, CWS_E_RESOURCE_EXHAUSTED, NULL, "too many calls");
        return;
    }
    if (pid < 0) {
        fail_call(call, CWS_E_INTERNAL, "cannot start the command");
        return;
    }
    call->pid = pid;
    call->sandbox = i;
    call->stream = stream;
    call->started_ms = mock_now_ms();
    call->deadline_ms = timeout_s > 0 ? call->started_ms + (int64_t)(timeout_s * 1000) : 0;
    if (with_stdin || tty)
        send_ready(call);
}

static void send_output(struct mock_call *call, int fd, const char *data, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_notify_begin(&sb, &pk, "exec.output");
    msgpack_pack_map(&pk, 3);
    cws_rpc_pack_kv_uint(&pk, "id", call->msgid);
    cws_rpc_pack_kv_int(&pk, "fd", fd);
    cws_rpc_pack_kv_bin(&pk, "data", data, len);
    mock_send(call->conn, &sb);
}

static void read_output(struct mock_call *call, int *fdp, int which)
{
    char buf[65536];
    ssize_t n = read(*fdp, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) { /* EOF, or EIO on a tty whose process is gone */
        if (call->in_fd == *fdp)
            call->in_fd = -1;
        close_fd(fdp);
        return;
    }
    if (call->stream)
        send_output(call, which, buf, (size_t)n);
    else
        msgpack_sbuffer_write(which == 1 ? &call->out : &call->err, buf, (size_t)n);
}

static void write_input(struct mock_call *call)
{
    while (call->in_off < call->in.size) {
        ssize_t n = write(call->in_fd, call->in.data + call->in_off, call->in.size - call->in_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {
            call->in_off = call->in.size; /* the reader is gone: drop the rest */
            break;
        }
        call->in_off += (size_t)n;
    }
    if (call->eof_pending) {
        call->eof_pending = false;
        if (call->tty) {
            if (write(call->in_fd, "\004", 1) < 0) {
                /* the terminal is gone */
            }
        } else {
            close_fd(&call->in_fd);
        }
    }
}

int mock_calls_pollfds(struct mock *m, struct pollfd *pfds, int max, struct mock_call **owners)
{
    int n = 0;
    for (int i = 0; i < MOCK_MAX_CALLS && n + 3 <= max; i++) {
        struct mock_call *call = &m->calls[i];
        if (call->kind != CALL_EXEC)
            continue;
        bool want_in = call->in_fd >= 0 && (call->in_off < call->in.size || call->eof_pending);
        if (call->out_fd >= 0) {
            short ev = POLLIN | (call->tty && want_in ? POLLOUT : 0);
            owners[n] = call;
            pfds[n++] = (struct pollfd){.fd = call->out_fd, .events = ev};
        }
        if (call->err_fd >= 0) {
            owners[n] = call;
            pfds[n++] = (struct pollfd){.fd = call->err_fd, .events = POLLIN};
        }
        if (!call->tty && want_in) {
            owners[n] = call;
            pfds[n++] = (struct pollfd){.fd = call->in_fd, .events = POLLOUT};
        }
    }
    return n;
}

void mock_call_io(struct mock *m, struct mock_call *call, short revents, int fd)
{
    (void)m;
    if (call->kind != CALL_EXEC)
        return;
    if (fd == call->in_fd && (revents & POLLOUT))
        write_input(call);
    if (fd == call->out_fd && (revents & (POLLIN | POLLHUP | POLLERR)))
        read_output(call, &call->out_fd, 1);
    else if (fd == call->err_fd && (revents & (POLLIN | POLLHUP | POLLERR)))
        read_output(call, &call->err_fd, 2);
    else if (!call->tty && fd == call->in_fd && (revents & (POLLERR | POLLHUP)))
        close_fd(&call->in_fd);
}

static void finish_exec(struct mock_call *call)
{
    int st = call->status;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_result_begin(&sb, &pk, call->msgid);
    msgpack_pack_map(&pk, call->stream ? 2 : 6);
    cws_rpc_pack_kv_int(&pk, "exit_code", code);
    cws_rpc_pack_kv_int(&pk, "duration_ms", mock_now_ms() - call->started_ms);
    if (!call->stream) {
        cws_rpc_pack_kv_bin(&pk, "stdout", call->out.data, call->out.size);
        cws_rpc_pack_kv_bin(&pk, "stderr", call->err.data, call->err.size);
        cws_rpc_pack_kv_bool(&pk, "stdout_truncated", false);
        cws_rpc_pack_kv_bool(&pk, "stderr_truncated", false);
    }
    mock_send(call->conn, &sb);
    mock_call_end(call);
}

static void tick_logs(struct mock *m, struct mock_call *call);

static void tick_call(struct mock *m, struct mock_call *call, int64_t now)
{
    struct mock_sandbox *s = &m->sandboxes[call->sandbox];
    if (call->kind == CALL_EXEC && call->deadline_ms && now >= call->deadline_ms) {
        fail_call(call, CWS_E_DEADLINE_EXCEEDED, "the command timed out");
    } else if (call->kind == CALL_EXEC && call->exited && call->out_fd < 0 && call->err_fd < 0) {
        finish_exec(call);
    } else if (call->kind == CALL_WAIT && mock_state_terminal(s->state)) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        mock_result_begin(&sb, &pk, call->msgid);
        mock_pack_sandbox(&pk, s);
        mock_send(call->conn, &sb);
        mock_call_end(call);
    } else if (call->kind == CALL_WAIT && call->deadline_ms && now >= call->deadline_ms) {
        fail_call(call, CWS_E_DEADLINE_EXCEEDED, "the wait timed out");
    } else if (call->kind == CALL_LOGS) {
        tick_logs(m, call);
    }
}

void mock_calls_tick(struct mock *m)
{
    int64_t now = mock_now_ms();
    for (int i = 0; i < MOCK_MAX_CALLS; i++)
        if (m->calls[i].kind != CALL_NONE)
            tick_call(m, &m->calls[i], now);
}

/* ---- notifications from clients ---- */

static void on_file_chunk(struct mock_call *call, const void *data, size_t len)
{
    if (len > call->remaining) {
        fail_call(call, CWS_E_INVALID_ARGUMENT, "more data than the announced size");
        return;
    }
    if (write(call->file_fd, data, len) != (ssize_t)len) {
        fail_call(call, CWS_E_IO, "cannot write the file");
        return;
    }
    call->remaining -= len;
    if (call->remaining == 0) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        mock_result_begin(&sb, &pk, call->msgid);
        msgpack_pack_map(&pk, 1);
        cws_rpc_pack_kv_uint(&pk, "size", call->size);
        mock_send(call->conn, &sb);
        mock_call_end(call);
    }
}

void mock_call_notification(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    int64_t id = -1, cols = 0, rows = 0;
    const void *data = NULL;
    size_t len = 0;
    if (cws_rpc_param_int(msg->params, "id", 0, UINT32_MAX, &id, NULL) <= 0)
        return;
    struct mock_call *call = find_call(m, c, (uint32_t)id);
    if (!call)
        return;
    cws_rpc_param_bytes(msg->params, "data", &data, &len, NULL);
    if (strcmp(msg->method, "cancel") == 0) {
        fail_call(call, CWS_E_CANCELLED, "cancelled by the client");
    } else if (strcmp(msg->method, "exec.stdin") == 0 && call->kind == CALL_EXEC) {
        msgpack_sbuffer_write(&call->in, data, len);
    } else if (strcmp(msg->method, "exec.eof") == 0 && call->kind == CALL_EXEC) {
        call->eof_pending = true;
    } else if (strcmp(msg->method, "exec.resize") == 0 && call->tty &&
               cws_rpc_param_int(msg->params, "cols", 1, 1000, &cols, NULL) > 0 &&
               cws_rpc_param_int(msg->params, "rows", 1, 1000, &rows, NULL) > 0) {
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
        ioctl(call->out_fd, TIOCSWINSZ, &ws);
    } else if (strcmp(msg->method, "file.chunk") == 0 && call->kind == CALL_WRITE) {
        on_file_chunk(call, data, len);
    }
}

/* ---- files ---- */

static void reply_errno(struct mock_conn *c, uint32_t msgid, int e, const char *path)
{
    if (e == ENOENT)
        mock_reply_error(c, msgid, CWS_E_NOT_FOUND, "CWSANDBOX_FILE_NOT_FOUND", "%s: no such file",
                         path);
    else if (e == EISDIR)
        mock_reply_error(c, msgid, CWS_E_FAILED_PRECONDITION, "CWSANDBOX_FILE_IS_DIRECTORY",
                         "%s is a directory", path);
    else if (e == EACCES)
        mock_reply_error(c, msgid, CWS_E_PERMISSION_DENIED, "CWSANDBOX_FILE_PERMISSION_DENIED",
                         "%s: permission denied", path);
    else
        mock_reply_error(c, msgid, CWS_E_INTERNAL, "CWSANDBOX_FILE_IO_FAILED", "%s: %s", path,
                         strerror(e));
}

static void send_chunk(struct mock_conn *c, uint32_t msgid, const char *data, size_t len,
                       uint64_t offset)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_notify_begin(&sb, &pk, "file.chunk");
    msgpack_pack_map(&pk, 3);
    cws_rpc_pack_kv_uint(&pk, "id", msgid);
    cws_rpc_pack_kv_bin(&pk, "data", data, len);
    cws_rpc_pack_kv_uint(&pk, "offset", offset);
    mock_send(c, &sb);
}

static void file_read(struct mock_conn *c, uint32_t msgid, const char *path, bool streamed)
{
    msgpack_sbuffer data;
    char *buf = malloc(CHUNK);
    uint64_t size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    msgpack_sbuffer_init(&data);
    for (ssize_t n = 1; fd >= 0 && n > 0;) {
        n = read(fd, buf, CHUNK);
        if (n < 0) {
            int e = errno;
            close(fd);
            fd = -1;
            errno = e;
        } else if (n > 0 && streamed) {
            send_chunk(c, msgid, buf, (size_t)n, size);
        } else if (n > 0) {
            msgpack_sbuffer_write(&data, buf, (size_t)n);
        }
        size += n > 0 ? (uint64_t)n : 0;
    }
    if (fd < 0) {
        reply_errno(c, msgid, errno, path);
    } else {
        close(fd);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        mock_result_begin(&sb, &pk, msgid);
        msgpack_pack_map(&pk, streamed ? 1 : 2);
        cws_rpc_pack_kv_uint(&pk, "size", size);
        if (!streamed)
            cws_rpc_pack_kv_bin(&pk, "data", data.data, data.size);
        mock_send(c, &sb);
    }
    msgpack_sbuffer_destroy(&data);
    free(buf);
}

static void remember_written(struct mock *m, const char *path)
{
    for (int i = 0; i < m->n_written; i++)
        if (strcmp(m->written[i], path) == 0)
            return;
    if (m->n_written < MOCK_MAX_WRITTEN)
        m->written[m->n_written++] = strdup(path);
}

static void file_write(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg,
                       const char *path)
{
    const void *data = NULL;
    size_t len = 0;
    bool streamed = false;
    int64_t size = 0;
    cws_rpc_param_bool(msg->params, "streamed", &streamed, NULL);
    cws_rpc_param_int(msg->params, "size", 0, INT64_MAX, &size, NULL);
    cws_rpc_param_bytes(msg->params, "data", &data, &len, NULL);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        reply_errno(c, msg->msgid, errno, path);
        return;
    }
    remember_written(m, path);
    if (!streamed || size == 0) {
        bool ok = write(fd, data, len) == (ssize_t)len;
        close(fd);
        if (!ok) {
            reply_errno(c, msg->msgid, EIO, path);
            return;
        }
        msgpack_sbuffer sb;
        msgpack_packer pk;
        mock_result_begin(&sb, &pk, msg->msgid);
        msgpack_pack_map(&pk, 1);
        cws_rpc_pack_kv_uint(&pk, "size", len);
        mock_send(c, &sb);
        return;
    }
    struct mock_call *call = mock_call_new(m, CALL_WRITE, c, msg->msgid);
    if (!call) {
        close(fd);
        mock_reply_error(c, msg->msgid, CWS_E_RESOURCE_EXHAUSTED, NULL, "too many calls");
        return;
    }
    call->file_fd = fd;
    call->remaining = call->size = (uint64_t)size;
}

void mock_files(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    char *path = NULL;
    bool streamed = false;
    if (mock_find_sandbox(m, msg->params, c, msg->msgid) < 0)
        return;
    if (cws_rpc_param_str(msg->params, "path", &path, NULL) <= 0 || path[0] != '/') {
        mock_reply_error(c, msg->msgid, CWS_E_INVALID_ARGUMENT, NULL, "path must be absolute");
        free(path);
        return;
    }
    cws_rpc_param_bool(msg->params, "streamed", &streamed, NULL);
    if (strcmp(msg->method, "file.read") == 0)
        file_read(c, msg->msgid, path, streamed);
    else if (strcmp(msg->method, "file.write") == 0)
        file_write(m, c, msg, path);
    else
        mock_reply_error(c, msg->msgid, CWS_E_UNIMPLEMENTED, NULL, "unknown method '%s'",
                         msg->method);
    free(path);
}

/* ---- logs ---- */

static void send_log(struct mock_call *call, const char *data, size_t len)
{
    if (len == 0)
        return;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_notify_begin(&sb, &pk, "logs.data");
    msgpack_pack_map(&pk, call->timestamps ? 3 : 2);
    cws_rpc_pack_kv_uint(&pk, "id", call->msgid);
    cws_rpc_pack_kv_bin(&pk, "data", data, len);
    if (call->timestamps)
        cws_rpc_pack_kv_int(&pk, "time_ms", mock_wall_ms());
    mock_send(call->conn, &sb);
}

/* Where the last n lines of log start. */
static size_t tail_start(const msgpack_sbuffer *log, int64_t n)
{
    size_t end = log->size;
    if (n <= 0)
        return 0;
    if (end > 0 && log->data[end - 1] == '\n')
        end--;
    while (end > 0) {
        if (log->data[end - 1] == '\n' && --n == 0)
            return end;
        end--;
    }
    return 0;
}

static void tick_logs(struct mock *m, struct mock_call *call)
{
    struct mock_sandbox *s = &m->sandboxes[call->sandbox];
    if (s->log.size > call->log_sent) {
        send_log(call, s->log.data + call->log_sent, s->log.size - call->log_sent);
        call->log_sent = s->log.size;
    }
    if (mock_state_terminal(s->state) && s->log_fd < 0) {
        mock_reply_nil(call->conn, call->msgid);
        mock_call_end(call);
    }
}

void mock_logs(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    bool follow = false, timestamps = false;
    int64_t tail = 0;
    int i = mock_find_sandbox(m, msg->params, c, msg->msgid);
    if (i < 0)
        return;
    cws_rpc_param_bool(msg->params, "follow", &follow, NULL);
    cws_rpc_param_bool(msg->params, "timestamps", &timestamps, NULL);
    cws_rpc_param_int(msg->params, "tail_lines", 0, INT64_MAX, &tail, NULL);
    struct mock_call *call = mock_call_new(m, CALL_LOGS, c, msg->msgid);
    if (!call) {
        mock_reply_error(c, msg->msgid, CWS_E_RESOURCE_EXHAUSTED, NULL, "too many calls");
        return;
    }
    call->sandbox = i;
    call->timestamps = timestamps;
    const msgpack_sbuffer *log = &m->sandboxes[i].log;
    size_t from = tail_start(log, tail);
    send_log(call, log->data + from, log->size - from);
    call->log_sent = log->size;
    if (!follow) {
        mock_reply_nil(c, msg->msgid);
        mock_call_end(call);
    }
}
