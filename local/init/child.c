/* Starting the processes a sandbox runs: fork, new session, stdio, dropped capabilities,
 * exec. Between fork and exec only async-signal-safe calls are made. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init.h"

extern char **environ;

static void write_str(int fd, const char *a, const char *b, const char *c)
{
    const char *parts[] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (parts[i] && write(fd, parts[i], strlen(parts[i])) < 0)
            return;
}

/* Report why exec failed on stderr (the user sees it) and on the report pipe. */
static _Noreturn void child_fail(const struct cws_child_spec *c, const char *what, int e)
{
    const char *msg = strerror(e);
    write_str(2, "cwsandbox-init: ", what, ": ");
    write_str(2, msg, "\n", NULL);
    if (c->report_fd >= 0) {
        write_str(c->report_fd, what, ": ", msg);
    }
    _exit(e == ENOENT ? 127 : 126);
}

/* Runs with every signal blocked (see cws_child_spawn): a signal sent to the new process
 * right after fork must not run init's handlers, which would act for init. */
static void reset_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Move the three stdio fds into 0..2 without one clobbering another. */
static int place_stdio(const int stdio[3])
{
    int moved[3];
    for (int i = 0; i < 3; i++) {
        moved[i] = fcntl(stdio[i], F_DUPFD_CLOEXEC, 3);
        if (moved[i] < 0)
            return -errno;
    }
    for (int i = 0; i < 3; i++)
        if (dup2(moved[i], i) < 0)
            return -errno;
    return 0;
}

static _Noreturn void child_main(const struct cws_child_spec *c)
{
    reset_signals();
    if (setsid() < 0)
        child_fail(c, "setsid", errno);
    if (place_stdio(c->stdio) < 0)
        child_fail(c, "stdio", errno);
    /* Whatever init holds must not leak into untrusted code, even an fd opened without
     * O_CLOEXEC by a library. */
    syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    if (c->tty && ioctl(0, TIOCSCTTY, 0) < 0)
        child_fail(c, "controlling terminal", errno);
    if (c->cwd && chdir(c->cwd) < 0)
        child_fail(c, c->cwd, errno);
    int r = cws_caps_drop_for_child();
    if (r < 0)
        child_fail(c, "drop capabilities", -r);
    environ = (char **)c->envp;
    execvp(c->argv[0], c->argv);
    child_fail(c, c->argv[0], errno);
}

int cws_child_spawn(const struct cws_child_spec *c, pid_t *ret_pid, struct cws_error *err)
{
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        child_main(c);
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0)
        return cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "fork: %s", strerror(e));
    *ret_pid = pid;
    return 0;
}
