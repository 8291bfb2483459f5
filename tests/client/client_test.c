/* Helpers of the client library's tests; see client_test.h. */
#include "client_test.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

long long ct_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The test runner's pid names the temporary roots, so that it can clean up after tests that
 * failed (Check ends a failed test's process with _exit(): no teardown runs). */
static pid_t runner_pid;

void ct_env_setup(struct ct_env *e)
{
    static const char *const dirs[][2] = {{"XDG_RUNTIME_DIR", "run"},
                                          {"XDG_STATE_HOME", "state"},
                                          {"XDG_CONFIG_HOME", "config"},
                                          {"HOME", "home"}};
    char buf[300];
    memset(e, 0, sizeof(*e));
    snprintf(e->root, sizeof(e->root), "/tmp/cwsc-test-%d-XXXXXX",
             (int)(runner_pid ? runner_pid : getpid()));
    ck_assert_ptr_nonnull(mkdtemp(e->root));
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(buf, sizeof(buf), "%s/%s", e->root, dirs[i][1]);
        ck_assert_int_eq(mkdir(buf, 0700), 0);
        setenv(dirs[i][0], buf, 1);
    }
    snprintf(e->socket, sizeof(e->socket), "%s/run/cwsandbox/cwsandboxd.sock", e->root);
    unsetenv("CWSANDBOX_SOCKET");
    unsetenv("CWSANDBOX_SESSION");
    unsetenv("CWSANDBOX_API_KEY");
    unsetenv("WANDB_API_KEY");
    unsetenv("CWSANDBOX_BASE_URL");
    unsetenv("NOTIFY_SOCKET");
    const char *daemon = getenv("CWSC_TEST_DAEMON");
    ck_assert_msg(daemon && *daemon, "CWSC_TEST_DAEMON must name the daemon to test with");
    setenv("CWSANDBOXD", daemon, 1);
}

static bool read_file(const char *path, char *buf, size_t size, size_t *ret_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    *ret_len = (size_t)n;
    return true;
}

bool ct_alive(pid_t pid)
{
    char path[64], buf[512];
    size_t len = 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!read_file(path, buf, sizeof(buf), &len))
        return false;
    const char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static bool has_arg(pid_t pid, const char *arg)
{
    char path[64], buf[8192];
    size_t len = 0;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (!read_file(path, buf, sizeof(buf), &len))
        return false;
    for (const char *a = buf; a < buf + len; a += strlen(a) + 1)
        if (strcmp(a, arg) == 0)
            return true;
    return false;
}

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    size_t len = 0;
    int ppid = -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!read_file(path, buf, sizeof(buf), &len))
        return -1;
    const char *rp = strrchr(buf, ')');
    if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1)
        return -1;
    return (pid_t)ppid;
}

const char *ct_describe(pid_t pid, char *buf, size_t size)
{
    char path[64], cmd[512];
    size_t len = 0;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (!read_file(path, cmd, sizeof(cmd), &len))
        len = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    cmd[len] = '\0';
    snprintf(buf, size, "pid %d (parent %d): %s", (int)pid, (int)parent_of(pid), cmd);
    return buf;
}

#define MAX_MATCHES 256

int ct_daemon_pids(const char *socket_path, pid_t *pids, int max)
{
    pid_t found[MAX_MATCHES];
    int n_found = 0, n = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)) && n_found < MAX_MATCHES) {
        char *end = NULL;
        long pid = strtol(de->d_name, &end, 10);
        if (!*end && pid > 0 && has_arg((pid_t)pid, socket_path) && ct_alive((pid_t)pid))
            found[n_found++] = (pid_t)pid;
    }
    if (d)
        closedir(d);
    /* A daemon's child between fork and exec still has the daemon's arguments: it is part of
     * that daemon, not another one. */
    for (int i = 0; i < n_found; i++) {
        pid_t ppid = parent_of(found[i]);
        bool child_of_match = false;
        for (int j = 0; j < n_found && !child_of_match; j++)
            child_of_match = found[j] == ppid;
        if (child_of_match)
            continue;
        if (n < max)
            pids[n] = found[i];
        n++;
    }
    return n;
}

void ct_stop_pid(pid_t pid)
{
    kill(pid, SIGTERM);
    for (long long until = ct_now_ms() + 5000; ct_now_ms() < until && ct_alive(pid);)
        usleep(10000);
    if (ct_alive(pid))
        kill(pid, SIGKILL);
    for (long long until = ct_now_ms() + 2000; ct_now_ms() < until && ct_alive(pid);)
        usleep(10000);
}

static bool mentions(pid_t pid, const char *text)
{
    char path[64], buf[8192];
    size_t len = 0;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (!read_file(path, buf, sizeof(buf), &len))
        return false;
    for (const char *a = buf; a < buf + len; a += strlen(a) + 1)
        if (strstr(a, text))
            return true;
    return false;
}

/* Whatever still runs from the tree (a daemon's backend, sandboxes' init processes): all
 * started by this test. */
static void stop_processes_under(const char *root)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    pid_t pids[MAX_MATCHES];
    int n = 0;
    while (d && (de = readdir(d)) && n < MAX_MATCHES) {
        char *end = NULL;
        long pid = strtol(de->d_name, &end, 10);
        if (!*end && pid > 0 && pid != getpid() && mentions((pid_t)pid, root) &&
            ct_alive((pid_t)pid))
            pids[n++] = (pid_t)pid;
    }
    if (d)
        closedir(d);
    for (int i = 0; i < n; i++)
        ct_stop_pid(pids[i]);
}

void ct_env_teardown(struct ct_env *e)
{
    pid_t pids[64];
    if (!e->root[0])
        return;
    /* The daemons first, gently: they stop what they own. */
    int n = ct_daemon_pids(e->socket, pids, 64);
    for (int i = 0; i < n && i < 64; i++)
        ct_stop_pid(pids[i]);
    stop_processes_under(e->root);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", e->root);
    e->root[0] = '\0';
}

/* Tear down the roots that failed tests of this runner left. */
static void teardown_leftovers(void)
{
    char prefix[64];
    DIR *d = opendir("/tmp");
    struct dirent *de;
    snprintf(prefix, sizeof(prefix), "cwsc-test-%d-", (int)runner_pid);
    while (d && (de = readdir(d))) {
        struct ct_env e;
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        snprintf(e.root, sizeof(e.root), "/tmp/%.200s", de->d_name);
        snprintf(e.socket, sizeof(e.socket), "%s/run/cwsandbox/cwsandboxd.sock", e.root);
        ct_env_teardown(&e);
    }
    if (d)
        closedir(d);
}

int ct_run_suite(Suite *s)
{
    runner_pid = getpid();
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    teardown_leftovers();
    return failed == 0 ? 0 : 1;
}

cws_client *ct_connect(void)
{
    struct cws_error err;
    cws_client *c = NULL;
    int r = cws_client_connect(NULL, &c, &err);
    ck_assert_msg(r == 0, "connect: %s: %s", cws_errcode_name(err.code), err.message);
    return c;
}
