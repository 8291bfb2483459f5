/* Starting cwsandboxd on demand, race-free, as tmux starts its server.
 *
 * Every process that finds no daemon takes an exclusive lock on "<socket>.lock" and, holding
 * it, connects again: a process that waited for the lock finds the daemon that the lock's
 * previous holder started. Only a process that still finds none starts one, and keeps the
 * lock until the daemon accepts connections. The daemon is started detached (its own session,
 * reparented away from us, cwd "/", stdio to "<socket>.log") so that it outlives the program
 * that started it and never holds the lock (every fd we open is close-on-exec).
 *
 * "<socket>.autostarted" records "PID PROTOCOL" of the daemon the library started: a daemon
 * of an older protocol is restarted only when that record says the library started it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifndef CWS_DAEMON_DEFAULT_PATH
#define CWS_DAEMON_DEFAULT_PATH "/usr/local/bin/cwsandboxd"
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define STOP_WAIT_MS 5000
#define KILL_WAIT_MS 2000

extern char **environ;

/* What the children of spawn_daemon() report on their pipe. */
struct spawn_report {
    int kind; /* REPORT_PID from the intermediate child, REPORT_ERRNO when exec failed */
    int value;
};
enum { REPORT_PID, REPORT_ERRNO };

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *suffixed(const char *path, const char *suffix)
{
    char *s = NULL;
    return asprintf(&s, "%s%s", path, suffix) < 0 ? NULL : s;
}

/* Alive and not a zombie. The daemon is not our child, so kill(pid, 0) would also count a
 * zombie that nobody reaps (as in containers whose PID 1 does not). */
static bool process_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    waitpid(pid, NULL, WNOHANG); /* reaps it if we are its subreaper */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X' && rp[2] != '\0';
}

/* Whether pid runs with socket_path among its arguments: how we start a daemon. */
static bool is_daemon_of(pid_t pid, const char *socket_path)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    for (const char *arg = buf; arg < buf + n; arg += strlen(arg) + 1)
        if (strcmp(arg, socket_path) == 0)
            return true;
    return false;
}

static int lock_open(const char *socket_path, struct cws_error *err)
{
    char *path = suffixed(socket_path, ".lock");
    if (!path)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    int r = fd >= 0 ? fd
                    : cws_error_set(err, CWS_E_UNAVAILABLE, "cannot open the lock file %s: %s",
                                    path, strerror(errno));
    free(path);
    return r;
}

/* Take the lock within the deadline, polling: flock() itself cannot time out. */
static int lock_take(int fd, const char *socket_path, int64_t deadline, struct cws_error *err)
{
    int delay = 1;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return cws_error_set(err, CWS_E_IO, "cannot lock %s.lock: %s", socket_path,
                                 strerror(errno));
        if (cwsc_left_ms(deadline) == 0)
            return cws_error_set(err, CWS_E_DEADLINE_EXCEEDED,
                                 "another process kept %s.lock while starting cwsandboxd",
                                 socket_path);
        sleep_ms(delay);
        delay = delay < 16 ? delay * 2 : 16;
    }
}

/* Lock, or close the fd and fail. Returns the locked fd. */
static int lock_acquire(const char *socket_path, int64_t deadline, struct cws_error *err)
{
    int fd = lock_open(socket_path, err);
    if (fd < 0)
        return fd;
    int r = lock_take(fd, socket_path, deadline, err);
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* A command name without a slash is looked up on PATH here, before forking, so that the child
 * only has to execve(). Returns a malloc'ed path, or NULL when not found. */
static char *find_on_path(const char *name)
{
    if (strchr(name, '/'))
        return realpath(name, NULL);
    const char *path = getenv("PATH");
    char *copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    char *found = NULL, *save = NULL;
    for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir && !found;
         dir = strtok_r(NULL, ":", &save)) {
        char *candidate = NULL;
        if (asprintf(&candidate, "%s/%s", *dir ? dir : ".", name) < 0)
            break;
        if (access(candidate, X_OK) == 0)
            found = candidate;
        else
            free(candidate);
    }
    free(copy);
    return found;
}

/* cwsandboxd beside the running program: a build tree (build/bin) and a bin directory hold
 * the CLI and the daemon together. NULL when there is none. */
static char *daemon_beside_program(void)
{
    char self[PATH_MAX], *p = NULL;
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return NULL;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    if (asprintf(&p, "%s/cwsandboxd", self) < 0)
        return NULL;
    if (access(p, X_OK) == 0)
        return p;
    free(p);
    return NULL;
}

/* The daemon binary: the option, else $CWSANDBOXD, else beside the program, else the install
 * prefix's, else PATH. */
static char *daemon_binary(const char *configured)
{
    const char *env = getenv("CWSANDBOXD");
    char *beside;
    if (configured && *configured)
        return find_on_path(configured);
    if (env && *env)
        return find_on_path(env);
    if ((beside = daemon_beside_program()))
        return beside;
    if (access(CWS_DAEMON_DEFAULT_PATH, X_OK) == 0)
        return strdup(CWS_DAEMON_DEFAULT_PATH);
    return find_on_path("cwsandboxd");
}

/* Our environment minus what would make the daemon talk to our own service manager. */
static char **daemon_environment(void)
{
    static const char *const drop[] = {
        "NOTIFY_SOCKET=", "LISTEN_FDS=",   "LISTEN_PID=", "LISTEN_FDNAMES=",
        "WATCHDOG_USEC=", "WATCHDOG_PID=", NULL};
    size_t n = 0, k = 0;
    while (environ && environ[n])
        n++;
    char **envp = calloc(n + 1, sizeof(*envp));
    for (size_t i = 0; envp && i < n; i++) {
        bool keep = true;
        for (size_t d = 0; drop[d] && keep; d++)
            keep = strncmp(environ[i], drop[d], strlen(drop[d])) != 0;
        if (keep)
            envp[k++] = environ[i];
    }
    return envp;
}

/* In the daemon's process: only async-signal-safe calls, since our caller may have threads. */
static void exec_daemon(const char *binary, char *const argv[], char *const envp[], int logfd,
                        int nullfd, int report)
{
    struct sigaction dfl;
    sigset_t none;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &dfl, NULL); /* fails harmlessly for SIGKILL, SIGSTOP, reserved ones */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    dup2(nullfd, STDIN_FILENO);
    dup2(logfd, STDOUT_FILENO);
    dup2(logfd, STDERR_FILENO);
    if (chdir("/") < 0) {
        /* stay where we are */
    }
    /* Descriptors of the program that links us must not leak into the daemon. */
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    execve(binary, argv, envp);
    struct spawn_report rep = {REPORT_ERRNO, errno};
    if (write(report, &rep, sizeof(rep)) < 0) {
        /* nobody to tell */
    }
    _exit(127);
}

/* The intermediate child: a new session, then the daemon as its child, whose pid it reports
 * before exiting, so that the daemon is reparented and never our zombie. */
static void fork_daemon(const char *binary, char *const argv[], char *const envp[], int logfd,
                        int nullfd, int report)
{
    setsid();
    pid_t pid = fork();
    if (pid == 0)
        exec_daemon(binary, argv, envp, logfd, nullfd, report);
    struct spawn_report rep = {REPORT_PID, (int)pid};
    if (write(report, &rep, sizeof(rep)) < 0) {
        /* the parent sees no pid */
    }
    _exit(pid < 0 ? 1 : 0);
}

/* Read the children's reports until both closed the pipe (exec succeeded) or the deadline. */
static int read_reports(int fd, int64_t deadline, pid_t *ret_pid, int *ret_errno)
{
    struct spawn_report rep;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = cwsc_left_ms(deadline);
        if (left == 0 || poll(&p, 1, left) == 0)
            return -CWS_E_DEADLINE_EXCEEDED;
        ssize_t n = read(fd, &rep, sizeof(rep));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        if (n == sizeof(rep) && rep.kind == REPORT_PID)
            *ret_pid = rep.value;
        else if (n == sizeof(rep) && rep.kind == REPORT_ERRNO)
            *ret_errno = rep.value;
    }
}

/* The previous daemon's log becomes <log>.1: when it died, what it said is still there. */
static void keep_previous_log(const char *log_path)
{
    char old[PATH_MAX];
    if (snprintf(old, sizeof(old), "%s.1", log_path) < (int)sizeof(old))
        rename(log_path, old);
}

static int spawn_daemon(const char *binary, const char *socket_path, const char *log_path,
                        int64_t deadline, pid_t *ret_pid, struct cws_error *err)
{
    char *argv[] = {(char *)binary, (char *)"--socket", (char *)socket_path, NULL};
    char **envp = daemon_environment();
    int pipefd[2] = {-1, -1};
    keep_previous_log(log_path);
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    int r = 0;

    if (!envp || logfd < 0 || nullfd < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
        r = cws_error_set(err, CWS_E_UNAVAILABLE, "cannot prepare to start cwsandboxd: %s",
                          envp ? strerror(errno) : "out of memory");
        goto out;
    }
    pid_t child = fork();
    if (child < 0) {
        r = cws_error_set(err, CWS_E_UNAVAILABLE, "cannot start cwsandboxd: fork: %s",
                          strerror(errno));
        goto out;
    }
    if (child == 0)
        fork_daemon(binary, argv, envp, logfd, nullfd, pipefd[1]);
    close(pipefd[1]);
    pipefd[1] = -1;
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
    pid_t pid = -1;
    int exec_errno = 0;
    r = read_reports(pipefd[0], deadline, &pid, &exec_errno);
    if (r == 0 && (pid <= 0 || exec_errno))
        r = cws_error_set(err, CWS_E_UNAVAILABLE, "cannot start cwsandboxd (%s): %s", binary,
                          exec_errno ? strerror(exec_errno) : "fork failed");
    else if (r < 0)
        r = cws_error_set(err, CWS_E_DEADLINE_EXCEEDED, "starting cwsandboxd (%s) timed out",
                          binary);
    else
        *ret_pid = pid;
out:
    for (int i = 0; i < 2; i++)
        if (pipefd[i] >= 0)
            close(pipefd[i]);
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    free(envp);
    return r;
}

/* The last non-empty line of the daemon's log, to say why it died. */
static void last_log_line(const char *log_path, char *buf, size_t size)
{
    char tail[1024];
    buf[0] = '\0';
    int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof(tail) - 1 ? end - (off_t)sizeof(tail) + 1 : 0;
    ssize_t n = pread(fd, tail, sizeof(tail) - 1, from);
    close(fd);
    if (n <= 0)
        return;
    while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
        n--;
    tail[n] = '\0';
    const char *line = strrchr(tail, '\n');
    line = line ? line + 1 : tail;
    size_t len = strlen(line) < size - 1 ? strlen(line) : size - 1;
    memcpy(buf, line, len);
    buf[len] = '\0';
}

/* Connect to the daemon we just started, as soon as it listens. */
static int wait_listening(const char *binary, const char *socket_path, const char *log_path,
                          pid_t pid, int64_t deadline, struct cws_error *err)
{
    int delay = 1;
    for (;;) {
        int fd = cwsc_try_connect(socket_path, deadline, err);
        if (fd != -CWS_E_UNAVAILABLE)
            return fd;
        if (!process_alive(pid)) {
            char line[300];
            last_log_line(log_path, line, sizeof(line));
            return cws_error_set(err, CWS_E_UNAVAILABLE,
                                 "cwsandboxd (%s) exited at start%s%s "
                                 "(log: %s)",
                                 binary, line[0] ? ": " : "", line, log_path);
        }
        if (cwsc_left_ms(deadline) == 0) {
            kill(pid, SIGTERM);
            return cws_error_set(err, CWS_E_DEADLINE_EXCEEDED,
                                 "cwsandboxd (pid %d) did not listen on %s in time (log: %s)",
                                 (int)pid, socket_path, log_path);
        }
        sleep_ms(delay);
        delay = delay < 32 ? delay * 2 : 32;
    }
}

static int read_marker(const char *socket_path, pid_t *ret_pid, int *ret_protocol)
{
    char *path = suffixed(socket_path, ".autostarted");
    FILE *f = path ? fopen(path, "re") : NULL;
    int pid = 0, protocol = 0;
    int r = f && fscanf(f, "%d %d", &pid, &protocol) == 2 && pid > 0 ? 0 : -CWS_E_NOT_FOUND;
    if (f)
        fclose(f);
    free(path);
    if (r == 0) {
        *ret_pid = pid;
        *ret_protocol = protocol;
    }
    return r;
}

static void write_marker(const char *socket_path, pid_t pid, int protocol)
{
    char *path = suffixed(socket_path, ".autostarted");
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
    if (fd >= 0) {
        dprintf(fd, "%d %d\n", (int)pid, protocol);
        close(fd);
    }
    free(path);
}

/* The process that listens on the other end of a connected socket. */
static pid_t peer_pid(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : -1;
}

/* Start a daemon (the caller holds the lock) and connect to it. */
static int start_daemon(const struct cwsc_connect_params *p, struct cws_error *err)
{
    char *binary = daemon_binary(p->daemon_path);
    char *log_path = suffixed(p->socket_path, ".log");
    pid_t pid = -1;
    int r = 0;

    if (!binary)
        r = cws_error_set(err, CWS_E_UNAVAILABLE,
                          "no cwsandboxd is listening on %s and the cwsandboxd program was not "
                          "found (set CWSANDBOXD to its path, or put it on PATH)",
                          p->socket_path);
    else if (!log_path)
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
    if (r == 0)
        r = spawn_daemon(binary, p->socket_path, log_path, p->deadline_ms, &pid, err);
    if (r == 0)
        r = wait_listening(binary, p->socket_path, log_path, pid, p->deadline_ms, err);
    /* Only a daemon we started is ours to restart later: another one (started by hand or by
     * systemd meanwhile, ours then exits) may answer instead. */
    if (r >= 0 && peer_pid(r) == pid)
        write_marker(p->socket_path, pid, CWS_PROTOCOL_LEVEL);
    free(binary);
    free(log_path);
    return r;
}

int cwsc_autostart(const struct cwsc_connect_params *p, struct cws_error *err)
{
    int lockfd = lock_acquire(p->socket_path, p->deadline_ms, err);
    if (lockfd < 0)
        return lockfd;
    /* Whoever held the lock before us may have started one. */
    int fd = cwsc_try_connect(p->socket_path, p->deadline_ms, err);
    if (fd == -CWS_E_UNAVAILABLE)
        fd = start_daemon(p, err);
    close(lockfd);
    return fd;
}

/* SIGTERM, then SIGKILL if it lingers; true once it is gone. */
static bool stop_process(pid_t pid)
{
    kill(pid, SIGTERM);
    for (int64_t until = cwsc_now_ms() + STOP_WAIT_MS; cwsc_now_ms() < until; sleep_ms(10))
        if (!process_alive(pid))
            return true;
    kill(pid, SIGKILL);
    for (int64_t until = cwsc_now_ms() + KILL_WAIT_MS; cwsc_now_ms() < until; sleep_ms(10))
        if (!process_alive(pid))
            return true;
    return false;
}

static int not_ours(const char *socket_path, struct cws_error *err)
{
    return cws_error_set(err, CWS_E_FAILED_PRECONDITION,
                         "cwsandboxd on %s does not speak protocol %d and was not started by "
                         "this library: restart it",
                         socket_path, CWS_PROTOCOL_LEVEL);
}

int cwsc_restart_old_daemon(const struct cwsc_connect_params *p, int daemon_protocol,
                            struct cws_error *err)
{
    pid_t pid = 0;
    int protocol = 0;
    if (!p->autostart || read_marker(p->socket_path, &pid, &protocol) < 0 ||
        protocol >= CWS_PROTOCOL_LEVEL || daemon_protocol >= CWS_PROTOCOL_LEVEL)
        return not_ours(p->socket_path, err);

    int lockfd = lock_acquire(p->socket_path, p->deadline_ms, err);
    if (lockfd < 0)
        return lockfd;
    int fd = 0;
    /* Under the lock, look again: another client may have restarted it already. */
    if (read_marker(p->socket_path, &pid, &protocol) == 0 && protocol >= CWS_PROTOCOL_LEVEL)
        fd = cwsc_try_connect(p->socket_path, p->deadline_ms, err);
    else if (!process_alive(pid) || !is_daemon_of(pid, p->socket_path))
        fd = not_ours(p->socket_path, err);
    else if (!stop_process(pid))
        fd = cws_error_set(err, CWS_E_UNAVAILABLE, "cannot stop the old cwsandboxd (pid %d) on %s",
                           (int)pid, p->socket_path);
    else
        fd = start_daemon(p, err);
    close(lockfd);
    return fd;
}
