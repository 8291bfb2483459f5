/* The backend choice, and the local backend: with no credentials and no explicit base_url
 * (backend = auto), or backend = local, cwsandboxd runs cwsandbox-local as its child on a
 * private socket in its runtime directory, restarts it when it dies and stops it on exit. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "grpc_client.h"
#include "log.h"
#include "paths.h"

#define RESTART_MIN_MS 200
#define RESTART_MAX_MS 5000
#define STOP_WAIT_MS   5000

/* cwsandbox-local: configured, else next to this binary, else on PATH. Caller frees. */
static char *find_local_binary(const struct cwsd *d)
{
    char self[PATH_MAX], *p = NULL;
    if (d->cfg.local_path)
        return strdup(d->cfg.local_path);
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        if (asprintf(&p, "%s/cwsandbox-local", dirname(self)) >= 0 && access(p, X_OK) == 0)
            return p;
        free(p);
    }
    return strdup("cwsandbox-local");
}

static void exec_local(const char *binary, const char *socket_path)
{
    /* The backend must not outlive a daemon that was killed. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        close(devnull);
    }
    execlp(binary, binary, "--socket", socket_path, (char *)NULL);
    fprintf(stderr, "cwsandboxd: cannot run %s: %s\n", binary, strerror(errno));
    _exit(127);
}

static int spawn_local(struct cwsd *d, struct cws_error *err)
{
    char *binary = find_local_binary(d);
    if (!binary)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    unlink(d->local_socket);
    pid_t pid = fork();
    if (pid < 0) {
        free(binary);
        return cws_error_set(err, CWS_E_IO, "fork: %s", strerror(errno));
    }
    if (pid == 0)
        exec_local(binary, d->local_socket);
    cws_log(CWS_LOG_INFO, "started the local backend %s (pid %d) on %s", binary, (int)pid,
            d->local_socket);
    free(binary);
    d->local_pid = pid;
    return 0;
}

static void on_restart_timer(evutil_socket_t fd, short what, void *ud)
{
    struct cwsd *d = ud;
    struct cws_error err;
    (void)fd;
    (void)what;
    if (spawn_local(d, &err) < 0)
        cws_log(CWS_LOG_ERROR, "cannot restart the local backend: %s", err.message);
}

/* SIGCHLD: reap, and restart the backend with a growing delay if it was it that died. */
static void on_sigchld(evutil_socket_t sig, short what, void *ud)
{
    struct cwsd *d = ud;
    int status;
    pid_t pid;
    (void)sig;
    (void)what;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid != d->local_pid)
            continue;
        d->local_pid = 0;
        int64_t delay = RESTART_MIN_MS << (d->local_restarts < 5 ? d->local_restarts : 5);
        if (delay > RESTART_MAX_MS)
            delay = RESTART_MAX_MS;
        d->local_restarts++;
        cws_log(CWS_LOG_WARN, "the local backend (pid %d) %s %d; restarting it in %lld ms",
                (int)pid, WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), (long long)delay);
        struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
        event_add(d->local_restart_ev, &tv);
    }
}

static int start_local(struct cwsd *d, struct cws_error *err)
{
    char *runtime = NULL;
    int r = cws_runtime_dir(&runtime, err);
    if (r == 0)
        r = cws_runtime_dir_ensure(runtime, err);
    if (r == 0 && asprintf(&d->local_socket, "%s/backend.sock", runtime) < 0)
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
    free(runtime);
    if (r < 0)
        return r;
    if (asprintf(&d->backend_url, "unix:%s", d->local_socket) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    d->local_restart_ev = evtimer_new(d->base, on_restart_timer, d);
    d->local_sigchld_ev = evsignal_new(d->base, SIGCHLD, on_sigchld, d);
    if (!d->local_restart_ev || !d->local_sigchld_ev || evsignal_add(d->local_sigchld_ev, NULL) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return spawn_local(d, err);
}

/* The connection pool to the chosen backend; calls made before it answers wait for it. */
static int make_client(struct cwsd *d, struct cws_error *err)
{
#ifndef CWSD_HAVE_BACKEND
    (void)d;
    (void)err;
    return 0;
#else
    struct cws_gclient_config gc = {
        .base = d->base,
        .url = d->backend_url,
        .user_agent = "cwsandboxd/" CWS_VERSION,
    };
    return cws_gclient_new(&gc, &d->gclient, err);
#endif
}

int cwsd_backend_start(struct cwsd *d, struct cws_error *err)
{
    bool remote = d->cfg.backend == CWSD_BACKEND_REMOTE ||
                  (d->cfg.backend == CWSD_BACKEND_AUTO &&
                   (cwsd_credentials_present(&d->creds) || d->cfg.base_url_explicit));
    d->backend_local = !remote;
    if (remote) {
        d->backend_url = strdup(d->cfg.base_url);
        if (!d->backend_url)
            return cws_error_set(err, CWS_E_NOMEM, NULL);
        cws_log(CWS_LOG_INFO, "backend: %s (auth: %s from %s)", d->backend_url, d->creds.strategy,
                d->creds.source);
        return make_client(d, err);
    }
    int r = start_local(d, err);
    return r < 0 ? r : make_client(d, err);
}

/* Wait up to ms for a child to exit (a pidfd becomes readable then). */
static bool wait_exit(pid_t pid, int ms)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return false;
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    int r;
    do {
        r = poll(&p, 1, ms);
    } while (r < 0 && errno == EINTR);
    close(pfd);
    return r == 1;
}

void cwsd_backend_stop(struct cwsd *d)
{
#ifdef CWSD_HAVE_BACKEND
    cws_gclient_free(d->gclient);
#endif
    d->gclient = NULL;
    if (d->local_restart_ev)
        event_free(d->local_restart_ev);
    if (d->local_sigchld_ev)
        event_free(d->local_sigchld_ev);
    d->local_restart_ev = d->local_sigchld_ev = NULL;
    if (d->local_pid > 0) {
        /* Sandboxes outlive the backend process; only the server stops here. */
        kill(d->local_pid, SIGTERM);
        if (!wait_exit(d->local_pid, STOP_WAIT_MS)) {
            cws_log(CWS_LOG_WARN, "the local backend did not stop in %d ms; killing it",
                    STOP_WAIT_MS);
            kill(d->local_pid, SIGKILL);
        }
        waitpid(d->local_pid, NULL, 0);
        d->local_pid = 0;
    }
    free(d->local_socket);
    free(d->backend_url);
    d->local_socket = d->backend_url = NULL;
}
