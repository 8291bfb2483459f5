/* cwsandboxd under systemd's protocols, without systemd: socket activation by
 * systemd-socket-activate (which execs the daemon in its own process on the first connection)
 * and sd_notify to a datagram socket the test owns: READY=1, WATCHDOG=1 when WATCHDOG_USEC
 * is set, STATUS= with the clients and sandboxes, STOPPING=1 on SIGTERM, then exit 0. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define WATCHDOG_USEC "2000000" /* the daemon pings every second */

static char tree[256];
static char act_path[300], unused_path[300], log_path[300];
static int notify_fd = -1;
static pid_t pid; /* systemd-socket-activate, then (the same process) the daemon */
static struct th_conn conn;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void)
{
    snprintf(tree, sizeof(tree), "/tmp/cwsd-systemd-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tree));
    pid = 0;
    conn.fd = -1;
    conn.dec = NULL;
}

static void teardown(void)
{
    th_close(&conn);
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tree);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tree);
}

/* The datagram socket of NOTIFY_SOCKET, passing the sender's credentials. */
static void open_notify(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int one = 1;
    ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(notify_fd, 0);
    ck_assert_int_eq(bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(setsockopt(notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
}

/* Wait for a notification holding want (a "KEY=value" line, or its start); all of it in buf.
 * The sender must be the daemon's process. */
static bool wait_notify(const char *want, char *buf, size_t size, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(until - now_ms());
        struct pollfd p = {.fd = notify_fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) != 1)
            return false;
        char control[CMSG_SPACE(sizeof(struct ucred))];
        struct iovec iov = {.iov_base = buf, .iov_len = size - 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = control,
                            .msg_controllen = sizeof(control)};
        ssize_t n = recvmsg(notify_fd, &mh, 0);
        if (n < 0)
            return false;
        buf[n] = '\0';
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        ck_assert_msg(c && c->cmsg_type == SCM_CREDENTIALS, "a notification without credentials");
        struct ucred cred;
        memcpy(&cred, CMSG_DATA(c), sizeof(cred));
        ck_assert_msg(cred.pid == pid, "notification \"%s\" from pid %d, not the daemon's %d", buf,
                      (int)cred.pid, (int)pid);
        /* each line of the datagram */
        for (char *line = buf; line && *line;) {
            if (strncmp(line, want, strlen(want)) == 0)
                return true;
            line = strchr(line, '\n');
            if (line)
                line++;
        }
    }
}

/* systemd-socket-activate listening on act_path, the daemon as its command. watchdog_pid:
 * "self" for the process's own pid, NULL for none, else the value. */
static void start_activated(const char *watchdog_pid)
{
    char notify[300], dirs_env[4][320], path[300];
    const char *dirs[][2] = {{"XDG_RUNTIME_DIR", "run"},
                             {"XDG_STATE_HOME", "state"},
                             {"XDG_CONFIG_HOME", "config"},
                             {"HOME", "home"}};
    snprintf(act_path, sizeof(act_path), "%s/activated.sock", tree);
    snprintf(unused_path, sizeof(unused_path), "%s/run/cwsandbox/unused.sock", tree);
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", tree);
    snprintf(notify, sizeof(notify), "%s/notify", tree);
    open_notify(notify);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", tree, dirs[i][1]);
        mkdir(path, 0700);
        snprintf(dirs_env[i], sizeof(dirs_env[i]), "%s=%s", dirs[i][0], path);
    }
    pid = fork();
    if (pid == 0) {
        char e_notify[320], e_socket[320], e_local[600], e_wpid[64], e_bus[320];
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0)
            dup2(fd, STDERR_FILENO);
        /* systemd-socket-activate passes on only what -E names (and TERM, PATH, USER,
         * HOME). */
        snprintf(e_notify, sizeof(e_notify), "NOTIFY_SOCKET=%s", notify);
        snprintf(e_socket, sizeof(e_socket), "CWSANDBOX_SOCKET=%s", unused_path);
        snprintf(e_local, sizeof(e_local), "CWSANDBOX_LOCAL_PATH=%s",
                 getenv("CWSD_LOCAL_BIN") ? getenv("CWSD_LOCAL_BIN") : "");
        /* The process stays the same through exec: its pid is the daemon's. */
        if (watchdog_pid && strcmp(watchdog_pid, "self") == 0)
            snprintf(e_wpid, sizeof(e_wpid), "WATCHDOG_PID=%d", (int)getpid());
        else
            snprintf(e_wpid, sizeof(e_wpid), "WATCHDOG_PID=%s", watchdog_pid ? watchdog_pid : "");
        /* No system bus: the host's logind is none of this test's business. */
        snprintf(e_bus, sizeof(e_bus), "DBUS_SYSTEM_BUS_ADDRESS=unix:path=%s/nobus", tree);
        const char *argv[40];
        int n = 0;
        argv[n++] = "systemd-socket-activate";
        argv[n++] = "-l";
        argv[n++] = act_path;
        const char *envs[] = {dirs_env[0], dirs_env[1],
                              dirs_env[2], dirs_env[3],
                              e_notify,    e_socket,
                              e_local,     "WATCHDOG_USEC=" WATCHDOG_USEC,
                              e_bus,       watchdog_pid ? e_wpid : NULL};
        for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
            if (!envs[i])
                continue;
            argv[n++] = "-E";
            argv[n++] = envs[i];
        }
        argv[n++] = getenv("CWSD_BIN");
        argv[n++] = "--log-level";
        argv[n++] = "debug";
        argv[n] = NULL;
        setenv("HOME", dirs_env[3] + strlen("HOME="), 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    /* The first connection starts the daemon; until systemd-socket-activate listens,
     * connecting fails. */
    int64_t until = now_ms() + 10000;
    while (th_connect(&conn, act_path) < 0) {
        ck_assert_msg(now_ms() < until, "systemd-socket-activate does not listen on %s", act_path);
        ck_assert_msg(waitpid(pid, NULL, WNOHANG) == 0, "systemd-socket-activate exited");
        usleep(20000);
    }
}

static bool file_contains(const char *path, const char *text)
{
    char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

/* SIGTERM: STOPPING=1, then exit 0. */
static void stop_expect_clean(void)
{
    char buf[4096];
    int status;
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    ck_assert_msg(wait_notify("STOPPING=1", buf, sizeof(buf), 20000), "no STOPPING=1");
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    pid = 0;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the daemon ended with status %d",
                  status);
}

START_TEST(activated_notify_watchdog_stopping)
{
    char buf[4096];
    start_activated("self");
    ck_assert_msg(wait_notify("READY=1", buf, sizeof(buf), 20000), "no READY=1");
    /* It serves on the socket it was given, and made none of its own. */
    ck_assert(th_hello(&conn));
    struct stat st;
    ck_assert_msg(stat(unused_path, &st) < 0, "the daemon bound %s too", unused_path);
    ck_assert_msg(wait_notify("WATCHDOG=1", buf, sizeof(buf), 5000), "no WATCHDOG=1");
    /* STATUS= counts our connection (the heartbeat sends it with WATCHDOG=1). */
    int64_t until = now_ms() + 10000;
    while (!(strstr(buf, "STATUS=1 clients") && strstr(buf, "sandboxes"))) {
        ck_assert_msg(now_ms() < until, "no STATUS= naming 1 client and the sandboxes: %s", buf);
        ck_assert(wait_notify("STATUS=", buf, sizeof(buf), (int)(until - now_ms())));
    }
    /* Journal fields: the connection line names the client's pid. */
    char field[64];
    snprintf(field, sizeof(field), "CLIENT_PID=%d", (int)getpid());
    ck_assert_msg(file_contains(log_path, field), "no %s in the daemon's log", field);
    stop_expect_clean();
}
END_TEST

/* WATCHDOG_USEC without WATCHDOG_PID is for the main process, which the daemon is. */
START_TEST(watchdog_without_pid)
{
    char buf[4096];
    start_activated(NULL);
    ck_assert_msg(wait_notify("READY=1", buf, sizeof(buf), 20000), "no READY=1");
    ck_assert(th_hello(&conn));
    int64_t t0 = now_ms();
    ck_assert_msg(wait_notify("WATCHDOG=1", buf, sizeof(buf), 5000), "no WATCHDOG=1");
    ck_assert_msg(wait_notify("WATCHDOG=1", buf, sizeof(buf), 5000), "no second WATCHDOG=1");
    /* Two pings well within WATCHDOG_USEC of each other and of READY. */
    ck_assert_int_lt(now_ms() - t0, 4000);
    th_close(&conn);
    stop_expect_clean();
}
END_TEST

static Suite *systemd_suite(void)
{
    Suite *s = suite_create("daemon_systemd");
    TCase *tc = tcase_create("systemd");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, activated_notify_watchdog_stopping);
    tcase_add_test(tc, watchdog_without_pid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(systemd_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
