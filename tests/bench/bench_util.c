/* See bench_util.h. */
#include "bench_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int bench_cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, c = *(const int64_t *)y;
    return (a > c) - (a < c);
}

int bench_start_daemon(struct th_daemon *d, const char *const *env, const char *prefix,
                       char *log_path, size_t log_size, char *why, size_t why_size)
{
    snprintf(log_path, log_size, "/tmp/%s-XXXXXX.log", prefix);
    int logfd = mkstemps(log_path, 4);
    if (logfd < 0) {
        snprintf(why, why_size, "cannot create a log file: %s", strerror(errno));
        return -1;
    }
    /* The daemon (and its backend) inherit stderr: point it at the log while forking. */
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(logfd, STDERR_FILENO);
    int r = th_daemon_start(d, env, 30000);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(logfd);
    if (r == 0)
        return 0;
    snprintf(why, why_size, "cwsandboxd did not start (log: %s)", log_path);
    /* Kill it if it still runs (not if it is gone: its pid may be reused), remove the tree. */
    if (d->pid > 0 && waitpid(d->pid, NULL, WNOHANG) != 0)
        d->pid = 0;
    if (d->root[0])
        th_daemon_stop(d, 5000);
    return -1;
}

/* The command line of a process, NULs as spaces; false when it is gone. */
static bool read_cmdline(long pid, char *cmd, size_t size)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t len = fread(cmd, 1, size - 1, f);
    fclose(f);
    for (size_t i = 0; i < len; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    cmd[len] = '\0';
    return true;
}

static void read_comm(long pid, char *comm, size_t size)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "r");
    comm[0] = '\0';
    if (!f)
        return;
    if (!fgets(comm, (int)size, f))
        comm[0] = '\0';
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
}

int bench_tree_processes(const char *root, pid_t skip, bool count_backend, char *first,
                         size_t first_size)
{
    DIR *dir = opendir("/proc");
    struct dirent *de;
    int n = 0;
    if (first && first_size)
        first[0] = '\0';
    if (!dir)
        return -1;
    while ((de = readdir(dir))) {
        char cmd[4096], comm[64];
        long pid = strtol(de->d_name, NULL, 10);
        if (pid <= 0 || pid == skip || pid == getpid() || !read_cmdline(pid, cmd, sizeof(cmd)) ||
            !strstr(cmd, root))
            continue;
        read_comm(pid, comm, sizeof(comm));
        if (!count_backend && strcmp(comm, "cwsandbox-local") == 0)
            continue;
        if (n++ == 0 && first)
            snprintf(first, first_size, "pid %ld (%s): %.160s", pid, comm, cmd);
    }
    closedir(dir);
    return n;
}
