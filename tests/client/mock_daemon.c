/* mock-cwsandboxd: the event loop, connections, hello and daemon.status; see mock_daemon.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mock_daemon.h"
#include "rpc_encode.h"
#include "rpc_params.h"

#define MAX_POLL 1024

static volatile sig_atomic_t stop_requested;

int64_t mock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Blocking sends: test clients always read while they wait. */
void mock_send(struct mock_conn *c, msgpack_sbuffer *sb)
{
    size_t off = 0;
    while (c->fd >= 0 && off < sb->size) {
        ssize_t n = send(c->fd, sb->data + off, sb->size - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = c->fd, .events = POLLOUT};
            poll(&p, 1, 1000);
            continue;
        }
        if (n < 0)
            break; /* the client is gone: the loop notices on its next read */
        off += (size_t)n;
    }
    msgpack_sbuffer_destroy(sb);
}

void mock_result_begin(msgpack_sbuffer *sb, msgpack_packer *pk, uint32_t msgid)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    cws_rpc_pack_result_head(pk, msgid);
}

void mock_notify_begin(msgpack_sbuffer *sb, msgpack_packer *pk, const char *method)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    cws_rpc_pack_notification_head(pk, method);
}

void mock_reply_nil(struct mock_conn *c, uint32_t msgid)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_result_begin(&sb, &pk, msgid);
    msgpack_pack_nil(&pk);
    mock_send(c, &sb);
}

void mock_reply_error(struct mock_conn *c, uint32_t msgid, enum cws_errcode code,
                      const char *reason, const char *fmt, ...)
{
    struct cws_error e;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    va_list ap;
    va_start(ap, fmt);
    cws_error_setv(&e, code, fmt, ap);
    va_end(ap);
    if (reason)
        cws_error_set_reason(&e, reason);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cws_rpc_pack_error_response(&pk, msgid, &e);
    mock_send(c, &sb);
}

static void pack_backend_auth(msgpack_packer *pk)
{
    cws_rpc_pack_cstr(pk, "backend");
    msgpack_pack_map(pk, 3);
    cws_rpc_pack_kv_cstr(pk, "kind", "local");
    cws_rpc_pack_kv_cstr(pk, "url", "mock:");
    cws_rpc_pack_kv_cstr(pk, "configured", "auto");
    cws_rpc_pack_cstr(pk, "auth");
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_kv_cstr(pk, "strategy", "none");
    cws_rpc_pack_kv_cstr(pk, "source", "none");
}

static void method_hello(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    int64_t protocol = 0;
    cws_rpc_param_int(msg->params, "protocol", 0, INT32_MAX, &protocol, NULL);
    if (protocol != m->protocol) {
        mock_reply_error(c, msg->msgid, CWS_E_FAILED_PRECONDITION, NULL,
                         "protocol %lld is not supported: this cwsandboxd (mock) speaks protocol "
                         "%d",
                         (long long)protocol, m->protocol);
        return;
    }
    c->hello = true;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_result_begin(&sb, &pk, msg->msgid);
    msgpack_pack_map(&pk, 5);
    cws_rpc_pack_kv_cstr(&pk, "daemon", "cwsandboxd/mock");
    cws_rpc_pack_kv_int(&pk, "protocol", m->protocol);
    cws_rpc_pack_kv_int(&pk, "pid", getpid());
    pack_backend_auth(&pk);
    mock_send(c, &sb);
}

static void method_status(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    uint64_t clients = 0, sandboxes = 0, calls = 0, sessions = 0;
    for (int i = 0; i < MOCK_MAX_CONNS; i++)
        clients += m->conns[i].fd >= 0;
    for (int i = 0; i < MOCK_MAX_SANDBOXES; i++)
        sandboxes += m->sandboxes[i].used;
    for (int i = 0; i < MOCK_MAX_CALLS; i++)
        calls += m->calls[i].kind != CALL_NONE;
    for (int i = 0; i < MOCK_MAX_SESSIONS; i++)
        sessions += m->sessions[i].used;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_result_begin(&sb, &pk, msg->msgid);
    msgpack_pack_map(&pk, 9);
    cws_rpc_pack_kv_cstr(&pk, "daemon", "cwsandboxd/mock");
    cws_rpc_pack_kv_int(&pk, "pid", getpid());
    cws_rpc_pack_kv_int(&pk, "uptime_ms", mock_now_ms() - m->started_ms);
    cws_rpc_pack_kv_uint(&pk, "clients", clients);
    cws_rpc_pack_kv_uint(&pk, "sessions", sessions);
    cws_rpc_pack_kv_uint(&pk, "sandboxes", sandboxes);
    cws_rpc_pack_kv_uint(&pk, "calls_in_flight", calls);
    pack_backend_auth(&pk);
    mock_send(c, &sb);
}

static void dispatch_request(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    const char *method = msg->method;
    if (strcmp(method, "hello") == 0)
        method_hello(m, c, msg);
    else if (!c->hello)
        mock_reply_error(c, msg->msgid, CWS_E_PROTOCOL, NULL, "the first request must be hello");
    else if (strcmp(method, "daemon.status") == 0)
        method_status(m, c, msg);
    else if (strncmp(method, "sandbox.", 8) == 0)
        mock_sandbox_method(m, c, msg);
    else if (strncmp(method, "session.", 8) == 0)
        mock_session_method(m, c, msg);
    else if (strcmp(method, "exec") == 0)
        mock_exec(m, c, msg);
    else if (strncmp(method, "file.", 5) == 0)
        mock_files(m, c, msg);
    else if (strcmp(method, "logs") == 0)
        mock_logs(m, c, msg);
    else
        mock_reply_error(c, msg->msgid, CWS_E_UNIMPLEMENTED, NULL, "unknown method '%s'", method);
}

static void close_conn(struct mock *m, struct mock_conn *c)
{
    mock_calls_drop_conn(m, c);
    close(c->fd);
    c->fd = -1;
    cws_rpc_decoder_free(c->dec);
    c->dec = NULL;
    c->hello = false;
}

static void read_conn(struct mock *m, struct mock_conn *c)
{
    char buf[65536];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            return;
        close_conn(m, c);
        return;
    }
    if (cws_rpc_decoder_feed(c->dec, buf, (size_t)n, NULL) < 0) {
        close_conn(m, c);
        return;
    }
    for (;;) {
        struct cws_rpc_msg *msg = NULL;
        int r = cws_rpc_decoder_next(c->dec, &msg, NULL);
        if (r == 0)
            return;
        if (r < 0) {
            if (cws_rpc_decoder_broken(c->dec)) {
                close_conn(m, c);
                return;
            }
            continue;
        }
        if (msg->type == CWS_RPC_REQUEST)
            dispatch_request(m, c, msg);
        else if (msg->type == CWS_RPC_NOTIFICATION)
            mock_call_notification(m, c, msg);
        cws_rpc_msg_free(msg);
        if (c->fd < 0)
            return;
    }
}

static void accept_conn(struct mock *m)
{
    int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    for (int i = 0; i < MOCK_MAX_CONNS; i++) {
        if (m->conns[i].fd < 0) {
            m->conns[i].fd = fd;
            cws_rpc_decoder_new(0, &m->conns[i].dec);
            return;
        }
    }
    close(fd);
}

static int listen_on(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
        perror("mock-cwsandboxd: listen");
        exit(1);
    }
    return fd;
}

/* Remove the socket file only if it is still the one we bound: a daemon started after us may
 * own the path by now. */
static void unlink_if_ours(const char *path, const struct stat *bound)
{
    struct stat now;
    if (stat(path, &now) == 0 && now.st_ino == bound->st_ino && now.st_dev == bound->st_dev)
        unlink(path);
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void run(struct mock *m)
{
    struct pollfd pfds[MAX_POLL];
    struct mock_call *owners[MAX_POLL];
    while (!stop_requested) {
        int n = 0;
        pfds[n++] = (struct pollfd){.fd = m->listen_fd, .events = POLLIN};
        for (int i = 0; i < MOCK_MAX_CONNS; i++)
            if (m->conns[i].fd >= 0)
                pfds[n++] = (struct pollfd){.fd = m->conns[i].fd, .events = POLLIN};
        int first_call = n;
        n += mock_calls_pollfds(m, pfds + n, MAX_POLL - n, owners + n);
        if (poll(pfds, (nfds_t)n, 20) > 0) {
            if (pfds[0].revents)
                accept_conn(m);
            for (int i = 1; i < first_call; i++) {
                for (int k = 0; pfds[i].revents && k < MOCK_MAX_CONNS; k++)
                    if (m->conns[k].fd == pfds[i].fd)
                        read_conn(m, &m->conns[k]);
            }
            for (int i = first_call; i < n; i++)
                if (pfds[i].revents)
                    mock_call_io(m, owners[i], pfds[i].revents, pfds[i].fd);
        }
        mock_sandbox_poll(m);
        mock_calls_tick(m);
    }
}

int main(int argc, char **argv)
{
    static struct mock m;
    const char *socket_path = NULL;
    m.protocol = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
            socket_path = argv[++i];
        else if (strcmp(argv[i], "--protocol") == 0 && i + 1 < argc)
            m.protocol = atoi(argv[++i]);
    }
    if (!socket_path) {
        fprintf(stderr, "usage: mock-cwsandboxd --socket PATH [--protocol N]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    for (int i = 0; i < MOCK_MAX_CONNS; i++)
        m.conns[i].fd = -1;
    m.started_ms = mock_now_ms();
    m.listen_fd = listen_on(socket_path);
    struct stat bound;
    if (stat(socket_path, &bound) < 0)
        memset(&bound, 0, sizeof(bound));
    fprintf(stderr, "mock-cwsandboxd: listening on %s (protocol %d)\n", socket_path, m.protocol);
    run(&m);
    for (int i = 0; i < MOCK_MAX_SANDBOXES; i++)
        if (m.sandboxes[i].used && m.sandboxes[i].pid > 0)
            kill(m.sandboxes[i].pid, SIGKILL);
    for (int i = 0; i < MOCK_MAX_CALLS; i++)
        if (m.calls[i].kind == CALL_EXEC && m.calls[i].pid > 0)
            kill(m.calls[i].pid, SIGKILL);
    for (int i = 0; i < m.n_written; i++) {
        unlink(m.written[i]);
        free(m.written[i]);
    }
    unlink_if_ours(socket_path, &bound);
    return 0;
}
