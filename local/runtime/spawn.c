/* Starting cwsandbox-init in new namespaces with clone3(): PID, mount, UTS, IPC, network and
 * cgroup namespaces, plus a user namespace when not root (its maps are written by the child
 * itself before exec, so that init starts as root of its namespace with every capability).
 * clone3 hands back a pidfd, and can place the child in a cgroup atomically.
 *
 * The child is a copy of the server process: between clone3 and execve it only makes
 * system calls on prepared buffers. */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init_proto.h"
#include "rt_internal.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* struct clone_args of linux/sched.h, spelled out: that header clashes with <sched.h>. */
struct clone3_args {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};

struct child_plan {
    const struct cws_spawn_opts *o;
    char uid_map[64];
    char gid_map[64];
    char *const *envp;
};

static int write_proc_self(const char *name, const char *data)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/%s", name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, data, strlen(data));
    close(fd);
    return n == (ssize_t)strlen(data) ? 0 : -1;
}

static void child_fail(int sync_fd, const char *what)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), CWS_INIT_SYNC_FAIL "setup failed: %s: %s", what,
                     strerror(errno));
    if (n > 0)
        (void)!write(sync_fd, buf, (size_t)n);
    _exit(127);
}

/* fds to their fixed numbers: 0 /dev/null, 1 and 2 the init log, 3 sync, 4 directory.
 * Everything is first moved above 10 so that no dup2 clobbers a source. */
static int place_fds(const struct cws_spawn_opts *o)
{
    int src[5] = {o->null_fd, o->log_fd, o->log_fd, o->sync_fd, o->dirfd};
    int high[5];
    for (int i = 0; i < 5; i++)
        if ((high[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10)) < 0)
            return -1;
    for (int i = 0; i < 5; i++)
        if (dup2(high[i], i) < 0)
            return -1;
    return (int)syscall(SYS_close_range, 5, ~0U, 0);
}

static _Noreturn void child_main(const struct child_plan *p)
{
    const struct cws_spawn_opts *o = p->o;
    /* Signals are blocked since before clone3: the server's handlers, inherited, would act
     * for the server. Default them, then let signals in. */
    sigset_t none;
    sigemptyset(&none);
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (o->userns &&
        (write_proc_self("setgroups", "deny") < 0 || write_proc_self("uid_map", p->uid_map) < 0 ||
         write_proc_self("gid_map", p->gid_map) < 0))
        child_fail(o->sync_fd, "write the user namespace maps");
    if (place_fds(o) < 0)
        child_fail(o->sync_fd, "set up fds");
    char *const argv[] = {(char *)"cwsandbox-init", (char *)o->dir_path, NULL};
    execve(o->init_path, argv, p->envp);
    child_fail(CWS_INIT_SYNC_FD, o->init_path);
    _exit(127);
}

int cws_spawn_init(const struct cws_spawn_opts *o, pid_t *ret_pid, int *ret_pidfd,
                   struct cws_error *err)
{
    struct child_plan plan = {.o = o};
    /* init's diagnostics follow the server's log level. */
    static char level_env[64];
    const char *level = getenv("CWSANDBOX_LOG_LEVEL");
    snprintf(level_env, sizeof(level_env), "CWSANDBOX_LOG_LEVEL=%s", level ? level : "info");
    char *const envp[] = {(char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", level_env, NULL};
    plan.envp = envp;
    snprintf(plan.uid_map, sizeof(plan.uid_map), "0 %u 1\n", (unsigned)o->uid);
    snprintf(plan.gid_map, sizeof(plan.gid_map), "0 %u 1\n", (unsigned)o->gid);

    int pidfd = -1;
    struct clone3_args args = {
        .flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
                 CLONE_NEWCGROUP | CLONE_PIDFD | (o->userns ? CLONE_NEWUSER : 0),
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .exit_signal = SIGCHLD,
    };
    if (o->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)o->cgroup_fd;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0)
        child_main(&plan);
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = e;
    if (pid < 0)
        return cws_error_set(err,
                             errno == EPERM || errno == ENOSPC ? CWS_E_FAILED_PRECONDITION
                                                               : CWS_E_RESOURCE_EXHAUSTED,
                             "create the sandbox's namespaces: %s", strerror(errno));
    *ret_pid = (pid_t)pid;
    *ret_pidfd = pidfd;
    return 0;
}
