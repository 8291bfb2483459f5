/* The daemon's Unix socket: taken from systemd (socket activation) or bound in the checked
 * runtime directory with mode 0600; every accepted peer must have the daemon's uid. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "paths.h"

#define BACKLOG 128

/* Streams (file reads, exec output) leave in 64 KiB messages: a wider socket buffer than the
 * default lets the daemon and the client run without waking each other for every message
 * (bench_daemon (c): a few percent of the rate on two CPUs). Capped by net.core.wmem_max;
 * failure only leaves the default. */
#define CLIENT_SNDBUF (1 << 20)

static void widen_send_buffer(int fd)
{
    int size = CLIENT_SNDBUF;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

static void on_accept(evutil_socket_t lfd, short what, void *ud)
{
    struct cwsd *d = ud;
    (void)what;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                cws_log(CWS_LOG_WARN, "accept: %s", strerror(errno));
            return;
        }
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != geteuid()) {
            cws_log(CWS_LOG_WARN, "refused a connection from uid %d (pid %d): not the daemon's uid",
                    len == sizeof(cred) ? (int)cred.uid : -1,
                    len == sizeof(cred) ? (int)cred.pid : -1);
            close(fd);
            continue;
        }
        struct cws_error err;
        widen_send_buffer(fd);
        if (cwsd_client_new(d, fd, cred.pid, cred.uid, &err) < 0)
            cws_log(CWS_LOG_ERROR, "cannot serve a client: %s", err.message);
    }
}

/* The socket systemd passed us, if any. */
static int activated_socket(void)
{
    int n = sd_listen_fds(1);
    if (n < 1)
        return -1;
    for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++)
        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0)
            return fd;
    return -1;
}

/* A socket file left by a daemon that died: nobody accepts on it any more. */
static bool socket_is_stale(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool stale = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == ECONNREFUSED;
    close(fd);
    return stale;
}

static int ensure_socket_dir(const char *path, struct cws_error *err)
{
    char *copy = strdup(path);
    if (!copy)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    char *dir = dirname(copy);
    char *runtime = NULL;
    int r = cws_runtime_dir(&runtime, err);
    /* Our own runtime directory is created and checked strictly; a directory the user named
     * through CWSANDBOX_SOCKET must exist. */
    if (r == 0 && strcmp(runtime, dir) == 0)
        r = cws_runtime_dir_ensure(dir, err);
    else if (r == 0 && access(dir, W_OK) < 0)
        r = cws_error_set(err, CWS_E_IO, "socket directory %s: %s", dir, strerror(errno));
    free(runtime);
    free(copy);
    return r;
}

static int bind_socket(const char *path, struct cws_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "socket path %s is too long", path);
    strcpy(sa.sun_path, path);
    int r = ensure_socket_dir(path, err);
    if (r < 0)
        return r;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "%s exists and is not a socket",
                                 path);
        if (!socket_is_stale(path))
            return cws_error_set(err, CWS_E_ALREADY_EXISTS,
                                 "another cwsandboxd is already listening on %s", path);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "socket: %s", strerror(errno));
    /* The umask makes the socket 0600 from the start, with no window before a chmod. */
    mode_t old = umask(0177);
    int b = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (b < 0 || listen(fd, BACKLOG) < 0) {
        r = cws_error_set(err, CWS_E_IO, "cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return r;
    }
    return fd;
}

int cwsd_listen(struct cwsd *d, struct cws_error *err)
{
    int fd = activated_socket();
    d->listen_fd_activated = fd >= 0;
    if (fd >= 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        cws_log(CWS_LOG_INFO, "listening on the socket passed by systemd");
    } else {
        fd = bind_socket(d->cfg.socket_path, err);
        if (fd < 0)
            return fd;
        struct stat st;
        if (lstat(d->cfg.socket_path, &st) == 0)
            d->socket_ino = st.st_ino;
        cws_log(CWS_LOG_INFO, "listening on %s", d->cfg.socket_path);
    }
    d->listen_fd = fd;
    d->accept_ev = event_new(d->base, fd, EV_READ | EV_PERSIST, on_accept, d);
    if (!d->accept_ev || event_add(d->accept_ev, NULL) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return 0;
}

void cwsd_listen_close(struct cwsd *d)
{
    if (d->accept_ev)
        event_free(d->accept_ev);
    d->accept_ev = NULL;
    if (d->listen_fd >= 0) {
        close(d->listen_fd);
        /* Only our own socket: a newer daemon may have replaced it while we were stopping. */
        struct stat st;
        if (!d->listen_fd_activated && lstat(d->cfg.socket_path, &st) == 0 &&
            st.st_ino == d->socket_ino)
            unlink(d->cfg.socket_path);
    }
    d->listen_fd = -1;
}
