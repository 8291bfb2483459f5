/* Connecting: find the socket, reach the daemon (autostart.c starts one when needed), make
 * sure it is ours, and say hello. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "paths.h"

#define DEFAULT_TIMEOUT_MS 15000
#define BACKLOG_RETRY_MS   5

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A daemon of another uid could read everything we send it: refuse it, as the daemon refuses
 * clients of another uid. */
static int check_peer(int fd, const char *path, struct cws_error *err)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return cws_error_set(err, CWS_E_IO, "cannot identify the daemon on %s: %s", path,
                             strerror(errno));
    if (cred.uid != geteuid())
        return cws_error_set(err, CWS_E_PERMISSION_DENIED,
                             "the process listening on %s (pid %d) belongs to uid %u, not to you",
                             path, (int)cred.pid, (unsigned)cred.uid);
    return 0;
}

static int connect_error(int e, const char *path, struct cws_error *err)
{
    if (e == ENOENT || e == ECONNREFUSED)
        return cws_error_set(err, CWS_E_UNAVAILABLE, "no cwsandboxd is listening on %s", path);
    if (e == EACCES || e == EPERM)
        return cws_error_set(err, CWS_E_PERMISSION_DENIED, "cannot connect to %s: %s", path,
                             strerror(e));
    return cws_error_set(err, CWS_E_IO, "cannot connect to %s: %s", path, strerror(e));
}

int cwsc_try_connect(const char *path, int64_t deadline_ms, struct cws_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "socket path %s is too long", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return cws_error_set(err, CWS_E_IO, "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            int r = check_peer(fd, path, err);
            if (r < 0) {
                close(fd);
                return r;
            }
            return fd;
        }
        int e = errno;
        close(fd);
        /* A full listen backlog: the daemon is busy accepting, not gone. */
        if ((e == EAGAIN || e == EINTR) && cwsc_left_ms(deadline_ms) != 0) {
            sleep_ms(BACKLOG_RETRY_MS);
            continue;
        }
        if (e == EAGAIN)
            return cws_error_set(err, CWS_E_DEADLINE_EXCEEDED,
                                 "cwsandboxd on %s did not accept the connection in time", path);
        return connect_error(e, path, err);
    }
}

/* The default socket directory is ours to create and must be private (DESIGN §3); a directory
 * named through CWSANDBOX_SOCKET or the options must exist already. */
static int check_socket_dir(const char *socket_path, struct cws_error *err)
{
    char *copy = strdup(socket_path);
    char *runtime = NULL;
    if (!copy)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    const char *dir = dirname(copy);
    int r = cws_runtime_dir(&runtime, err);
    if (r == 0 && strcmp(runtime, dir) == 0)
        r = cws_runtime_dir_ensure(dir, err);
    free(runtime);
    free(copy);
    return r;
}

int cwsc_connect_socket(const struct cwsc_connect_params *p, struct cws_error *err)
{
    int r = check_socket_dir(p->socket_path, err);
    if (r < 0)
        return r;
    int fd = cwsc_try_connect(p->socket_path, p->deadline_ms, err);
    if (fd >= 0 || fd != -CWS_E_UNAVAILABLE)
        return fd;
    if (!p->autostart)
        return cws_error_set(err, CWS_E_UNAVAILABLE,
                             "no cwsandboxd is listening on %s (and starting one is disabled)",
                             p->socket_path);
    return cwsc_autostart(p, err);
}

/* hello {protocol, client, session?}: with a session (the options or $CWSANDBOX_SESSION) the
 * connection joins it, opening it when missing, and counts as one of its clients. */
static int pack_hello(msgpack_packer *pk, const void *ud)
{
    const cws_client *c = ud;
    if (msgpack_pack_map(pk, c->session ? 3 : 2) != 0 ||
        cws_rpc_pack_kv_int(pk, "protocol", CWS_PROTOCOL_LEVEL) < 0 ||
        cws_rpc_pack_kv_cstr(pk, "client", c->name) < 0 ||
        (c->session && cws_rpc_pack_kv_cstr(pk, "session", c->session) < 0))
        return -CWS_E_NOMEM;
    return 0;
}

/* hello. Sets *ret_mismatch (with the daemon's level, or -1 when it refused ours) when the
 * daemon does not speak our protocol. */
static int say_hello(cws_client *c, int64_t deadline, int *ret_mismatch, struct cws_error *err)
{
    cws_op *op = NULL;
    cwsc_hello_clear(&c->hello);
    int r = cwsc_call(c, "hello", &cwsc_hello_type, &c->hello, pack_hello, c, &op, err);
    if (r < 0)
        return r;
    r = cws_op_wait(op, cwsc_left_ms(deadline), err);
    cws_op_free(op);
    if (r == -CWS_E_FAILED_PRECONDITION) {
        *ret_mismatch = -1;
        return r;
    }
    if (r == 0 && c->hello.info.protocol < CWS_PROTOCOL_LEVEL) {
        *ret_mismatch = c->hello.info.protocol;
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION,
                             "cwsandboxd on %s speaks protocol %d; this library needs %d",
                             c->socket_path, c->hello.info.protocol, CWS_PROTOCOL_LEVEL);
    }
    return r;
}

/* Start over on a new socket (after a daemon restart): fresh decoder, empty queue. */
static int reset_connection(cws_client *c, int fd, struct cws_error *err)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = fd;
    cws_rpc_decoder_free(c->dec);
    c->dec = NULL;
    cwsc_buf_free(&c->out);
    c->broken = false;
    cws_error_clear(&c->broken_err);
    if (cws_rpc_decoder_new(0, &c->dec) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return 0;
}

static int handshake(cws_client *c, const struct cwsc_connect_params *p, struct cws_error *err)
{
    int mismatch = 0;
    int r = say_hello(c, p->deadline_ms, &mismatch, err);
    if (r != -CWS_E_FAILED_PRECONDITION || mismatch == 0)
        return r;
    struct cws_error why = *err;
    int fd = cwsc_restart_old_daemon(p, mismatch, err);
    if (fd == -CWS_E_FAILED_PRECONDITION)
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION,
                             "%.300s; it was not started by this library, so restart it yourself "
                             "(systemctl --user restart cwsandboxd)",
                             why.message);
    if (fd < 0)
        return fd;
    r = reset_connection(c, fd, err);
    if (r == 0)
        r = say_hello(c, p->deadline_ms, &mismatch, err);
    return r;
}

static int client_new(const struct cws_client_options *o, cws_client **ret, struct cws_error *err)
{
    cws_client *c = calloc(1, sizeof(*c));
    if (!c)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    c->fd = -1;
    const char *session = o->session ? o->session : getenv("CWSANDBOX_SESSION");
    int r = 0;
    if (o->socket_path)
        c->socket_path = strdup(o->socket_path);
    else
        r = cws_socket_path(&c->socket_path, err);
    c->name = strdup(o->name ? o->name : "libcwsandbox-client/" CWS_CLIENT_VERSION);
    if (session && *session)
        c->session = strdup(session);
    if (r == 0 && (!c->socket_path || !c->name || (session && *session && !c->session) ||
                   cws_rpc_decoder_new(0, &c->dec) < 0))
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
    if (r < 0) {
        cws_client_free(c);
        return r;
    }
    *ret = c;
    return 0;
}

static int connect_client(const struct cws_client_options *o, cws_client **ret,
                          struct cws_error *err)
{
    int timeout = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    cws_client *c = NULL;
    int r = client_new(o, &c, err);
    if (r < 0)
        return r;
    struct cwsc_connect_params p = {
        .socket_path = c->socket_path,
        .daemon_path = o->daemon_path,
        .autostart = !o->no_autostart,
        .deadline_ms = cwsc_now_ms() + timeout,
    };
    /* A daemon that goes away just as we connect (killed, restarting) resets the connection
     * during hello: then connect once more, starting a daemon if needed. */
    for (int attempt = 0;; attempt++) {
        int fd = cwsc_connect_socket(&p, err);
        if (fd < 0) {
            r = fd;
            break;
        }
        r = reset_connection(c, fd, err);
        if (r == 0)
            r = handshake(c, &p, err);
        if (r != -CWS_E_UNAVAILABLE || attempt == 1 || cwsc_left_ms(p.deadline_ms) == 0)
            break;
    }
    if (r < 0) {
        cws_client_free(c);
        return r;
    }
    *ret = c;
    return 0;
}

int cws_client_connect(const struct cws_client_options *opts, cws_client **ret_client,
                       struct cws_error *err)
{
    static const struct cws_client_options defaults = {0};
    struct cws_error e;

    if (!ret_client)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "ret_client is NULL");
    /* Our own error buffer: the steps below read back what they reported. */
    cws_error_clear(&e);
    int r = connect_client(opts ? opts : &defaults, ret_client, &e);
    if (err)
        *err = e;
    return r;
}
