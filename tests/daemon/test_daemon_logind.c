/* Logout with lingering (daemon/logind.c): a private dbus-daemon acts as the system bus
 * (DBUS_SYSTEM_BUS_ADDRESS), fake_logind plays systemd-logind on it, and the real daemon with
 * the real cwsandbox-local behind it is asked, through its socket, what the backend says of
 * the sandboxes once the user's last login session ends. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rpc_encode.h"

#define CALL_MS 60000
#define WAIT_MS 30000

/* The private bus and the fake logind of one test. */
static char tree[256];     /* temporary directory */
static char bus_addr[320]; /* unix:path=..., without the guid: it survives a restarted bus */
static pid_t bus_pid, fake_pid;
static FILE *fake_in, *fake_out;
static struct th_daemon daemon_;
static bool daemon_up;
static struct th_conn conn;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f, "cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* Read one line from fd within the deadline (a byte at a time: what follows is not ours). */
static bool read_line(int fd, char *buf, size_t size, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    size_t n = 0;
    while (n + 1 < size) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(until - now_ms());
        if (left <= 0 || poll(&p, 1, left) != 1 || read(fd, buf + n, 1) != 1)
            return false;
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
    return true;
}

/* dbus-daemon with a system-bus configuration that allows everything, on tree/bus. */
static void start_bus(void)
{
    char conf[400], text[1600], path[300], line[400];
    snprintf(path, sizeof(path), "%s/bus", tree);
    snprintf(conf, sizeof(conf), "%s/bus.conf", tree);
    snprintf(text, sizeof(text),
             "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
             " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
             "<busconfig>\n"
             "  <type>system</type>\n"
             "  <listen>unix:path=%s</listen>\n"
             "  <auth>EXTERNAL</auth>\n"
             "  <policy context=\"default\">\n"
             "    <allow user=\"*\"/>\n"
             "    <allow own=\"*\"/>\n"
             "    <allow send_type=\"method_call\"/>\n"
             "    <allow send_type=\"signal\"/>\n"
             "    <allow send_type=\"method_return\"/>\n"
             "    <allow send_type=\"error\"/>\n"
             "    <allow receive_type=\"method_call\"/>\n"
             "    <allow receive_type=\"signal\"/>\n"
             "    <allow receive_type=\"method_return\"/>\n"
             "    <allow receive_type=\"error\"/>\n"
             "  </policy>\n"
             "</busconfig>\n",
             path);
    write_file(conf, text);
    unlink(path);
    snprintf(bus_addr, sizeof(bus_addr), "unix:path=%s", path);
    int out[2];
    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    bus_pid = fork();
    if (bus_pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        char arg[420];
        snprintf(arg, sizeof(arg), "--config-file=%s", conf);
        execlp("dbus-daemon", "dbus-daemon", "--nofork", arg, "--print-address=1", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    /* It prints its address once it listens. */
    bool ok = read_line(out[0], line, sizeof(line), 10000);
    close(out[0]);
    ck_assert_msg(ok && strncmp(line, bus_addr, strlen(bus_addr)) == 0,
                  "dbus-daemon did not start (is dbus-daemon installed?)");
}

static void stop_pid(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGTERM);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

/* fake_logind on the bus; waits for its "ready". */
static void start_fake(void)
{
    int in[2], out[2];
    char line[64];
    ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    fake_pid = fork();
    if (fake_pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_addr, 1);
        execl(getenv("FAKE_LOGIND_BIN"), "fake_logind", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    fake_in = fdopen(in[1], "w");
    fake_out = fdopen(out[0], "r");
    ck_assert_msg(read_line(fileno(fake_out), line, sizeof(line), 10000) &&
                      strcmp(line, "ready") == 0,
                  "fake_logind did not start");
}

static void stop_fake(void)
{
    if (fake_in)
        fclose(fake_in); /* end of its stdin: it exits */
    if (fake_out)
        fclose(fake_out);
    fake_in = fake_out = NULL;
    if (fake_pid > 0)
        waitpid(fake_pid, NULL, 0);
    fake_pid = 0;
}

/* One command to the fake; its answer in buf. */
static const char *fake(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *fake(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(fake_in, fmt, ap);
    va_end(ap);
    fputc('\n', fake_in);
    fflush(fake_in);
    ck_assert_msg(read_line(fileno(fake_out), buf, size, 10000), "fake_logind did not answer");
    return buf;
}

static void fake_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fake_ok(const char *fmt, ...)
{
    char cmd[128], answer[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    ck_assert_str_eq(fake(answer, sizeof(answer), "%s", cmd), "ok");
}

static void fake_stats(unsigned *lists, unsigned *gets)
{
    char answer[64];
    ck_assert_int_eq(sscanf(fake(answer, sizeof(answer), "stats"), "lists=%u gets=%u", lists, gets),
                     2);
}

/* Wait until the daemon has read at least n session states from the fake: their answers are
 * then ahead of any signal the fake sends next (the bus keeps the order). */
static void wait_gets(unsigned n)
{
    unsigned lists = 0, gets = 0;
    int64_t until = now_ms() + WAIT_MS;
    for (;;) {
        fake_stats(&lists, &gets);
        if (gets >= n)
            return;
        ck_assert_msg(now_ms() < until, "the daemon read %u session states of %u expected", gets,
                      n);
        usleep(20000);
    }
}

static void setup(void)
{
    snprintf(tree, sizeof(tree), "/tmp/cwsd-logind-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tree));
    daemon_up = false;
    conn.fd = -1;
}

static void teardown(void)
{
    if (daemon_up) {
        th_stop_all(&daemon_);
        th_close(&conn);
        ck_assert_int_eq(th_daemon_stop(&daemon_, 40000), 0);
    }
    stop_fake();
    stop_pid(&bus_pid);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tree);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tree);
}

/* The daemon on the private bus; config_text (or NULL) as its config file. */
static void start_daemon(const char *config_text)
{
    static char bus_env[400], config_env[320];
    char dir[300], path[400];
    snprintf(bus_env, sizeof(bus_env), "DBUS_SYSTEM_BUS_ADDRESS=%s", bus_addr);
    snprintf(dir, sizeof(dir), "%s/config", tree);
    mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/cwsandbox", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/cwsandbox/config", dir);
    write_file(path, config_text ? config_text : "");
    snprintf(config_env, sizeof(config_env), "XDG_CONFIG_HOME=%s", dir);
    const char *env[] = {bus_env, config_env, NULL};
    ck_assert_msg(th_daemon_start(&daemon_, env, 20000) == 0, "cwsandboxd did not start");
    daemon_up = true;
    ck_assert_int_eq(th_connect(&conn, daemon_.socket), 0);
    ck_assert(th_hello(&conn));
}

static void pack_create(msgpack_packer *pk, void *ud)
{
    msgpack_pack_map(pk, 3);
    cws_rpc_pack_kv_cstr(pk, "wait", "running");
    cws_rpc_pack_kv_cstr(pk, "owner", ud);
    cws_rpc_pack_cstr(pk, "config");
    msgpack_pack_map(pk, 1);
    cws_rpc_pack_cstr(pk, "tags");
    msgpack_pack_array(pk, 1);
    cws_rpc_pack_cstr(pk, "cwsd-test-logind");
}

static void create(const char *owner, char *id, size_t size)
{
    struct cws_rpc_msg *m = th_call(&conn, "sandbox.create", pack_create, (void *)owner, CALL_MS);
    th_ok(m, "sandbox.create");
    th_str(m->result, "id", id, size);
    ck_assert_msg(id[0], "sandbox.create answered no id");
    cws_rpc_msg_free(m);
}

static void pack_get_fresh(msgpack_packer *pk, void *ud)
{
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_kv_cstr(pk, "id", ud);
    cws_rpc_pack_kv_bool(pk, "fresh", true);
}

/* The backend's own view of a sandbox's state. */
static const char *backend_state(const char *id, char *buf, size_t size)
{
    struct cws_rpc_msg *m = th_call(&conn, "sandbox.get", pack_get_fresh, (void *)id, CALL_MS);
    th_ok(m, "sandbox.get fresh");
    th_str(m->result, "state", buf, size);
    cws_rpc_msg_free(m);
    return buf;
}

struct wait_args {
    const char *id;
    double timeout_s;
};

static void pack_wait_terminal(msgpack_packer *pk, void *ud)
{
    struct wait_args *a = ud;
    msgpack_pack_map(pk, 3);
    cws_rpc_pack_kv_cstr(pk, "id", a->id);
    cws_rpc_pack_kv_cstr(pk, "until", "terminal");
    cws_rpc_pack_cstr(pk, "timeout_s");
    msgpack_pack_double(pk, a->timeout_s);
}

/* Whether the sandbox reaches a terminal state within timeout_s (sandbox.wait). */
static bool ends_within(const char *id, double timeout_s)
{
    struct wait_args w = {id, timeout_s};
    struct cws_rpc_msg *m = th_call(&conn, "sandbox.wait", pack_wait_terminal, &w, CALL_MS);
    ck_assert_ptr_nonnull(m);
    char state[32] = "";
    if (!m->error)
        th_str(m->result, "state", state, sizeof(state));
    cws_rpc_msg_free(m);
    return strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "terminated") == 0;
}

static void expect_stopped(const char *id)
{
    char state[32];
    ck_assert_msg(ends_within(id, WAIT_MS / 1000), "the client's sandbox %s still runs", id);
    backend_state(id, state, sizeof(state));
    ck_assert_msg(strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0,
                  "the backend says the client's sandbox is %s", state);
}

/* When the reaper stopped id, per daemon.status; why must mention the logout. -1: never. */
static int64_t reaped_at(const char *id)
{
    struct cws_rpc_msg *m = th_call(&conn, "daemon.status", NULL, NULL, CALL_MS);
    th_ok(m, "daemon.status");
    const msgpack_object *list = th_field(m->result, "orphans");
    int64_t at = -1;
    for (uint32_t i = 0; list && i < list->via.array.size; i++) {
        char other[64], why[128];
        const msgpack_object *r = &list->via.array.ptr[i];
        if (strcmp(th_str(r, "id", other, sizeof(other)), id) != 0)
            continue;
        ck_assert_msg(strstr(th_str(r, "why", why, sizeof(why)), "logged out"),
                      "reaped for another reason: %s", why);
        at = th_int(r, "reaped_ms", 0);
    }
    cws_rpc_msg_free(m);
    return at;
}

/* ---- tests ---- */

/* The last login session ends (SessionRemoved): the client's sandbox is stopped although its
 * client is still connected; the detached one runs on; another user's session is ignored. */
START_TEST(last_session_removed_stops_client_sandboxes)
{
    char mine[64], kept[64], state[32];
    start_bus();
    start_fake();
    fake_ok("new c1 %u user", (unsigned)getuid());
    fake_ok("new o1 %u user", (unsigned)getuid() + 1);
    start_daemon(NULL);
    wait_gets(1);
    create("client", mine, sizeof(mine));
    create("detached", kept, sizeof(kept));
    ck_assert_str_eq(backend_state(mine, state, sizeof(state)), "running");
    fake_ok("remove c1");
    expect_stopped(mine);
    ck_assert_str_eq(backend_state(kept, state, sizeof(state)), "running");
    ck_assert_int_gt(reaped_at(mine), 0);
    ck_assert_int_eq(reaped_at(kept), -1);
    ck_assert(th_hello(&conn)); /* still serving, the same connection */
}
END_TEST

/* A session whose user logged out stays "closing" while processes remain, and logind emits
 * nothing for it: it counts as ended, seen at the next count (here, another user's login).
 * Neither the end of one of two sessions nor a background session of the user keeps it. */
START_TEST(closing_session_counts_as_ended)
{
    char mine[64], kept[64], state[32];
    unsigned lists, gets;
    start_bus();
    start_fake();
    fake_ok("new c1 %u user", (unsigned)getuid());
    fake_ok("new c2 %u user", (unsigned)getuid());
    fake_ok("new b1 %u background", (unsigned)getuid());
    start_daemon(NULL);
    wait_gets(3);
    create("client", mine, sizeof(mine));
    create("detached", kept, sizeof(kept));
    fake_stats(&lists, &gets);
    fake_ok("remove c2"); /* c1 remains */
    wait_gets(gets + 2);  /* the count after it read c1 and b1 */
    int64_t closed_at = wall_ms();
    fake_ok("close c1");
    fake_ok("new o2 %u user", (unsigned)getuid() + 1);
    expect_stopped(mine);
    ck_assert_str_eq(backend_state(kept, state, sizeof(state)), "running");
    /* Stopped after c1 closed: removing c2 alone did not do it. */
    ck_assert_int_ge(reaped_at(mine), closed_at);
}
END_TEST

/* UserRemoved makes a count too. */
START_TEST(user_removed_counts_again)
{
    char mine[64];
    start_bus();
    start_fake();
    fake_ok("new c1 %u user", (unsigned)getuid());
    start_daemon(NULL);
    wait_gets(1);
    create("client", mine, sizeof(mine));
    /* The session turns closing quietly; the user's removal is the only signal. */
    fake_ok("close c1");
    fake_ok("userremoved %u", (unsigned)getuid());
    expect_stopped(mine);
}
END_TEST

/* cleanup_on_logout = false: the daemon does not even connect to the bus. */
START_TEST(cleanup_off_does_not_watch)
{
    char mine[64], state[32];
    unsigned lists, gets;
    start_bus();
    start_fake();
    fake_ok("new c1 %u user", (unsigned)getuid());
    start_daemon("cleanup_on_logout = false\n");
    create("client", mine, sizeof(mine));
    fake_ok("remove c1");
    /* A watching daemon stops it within a second; give it three. */
    ck_assert_msg(!ends_within(mine, 3.0), "the sandbox was stopped with cleanup_on_logout off");
    ck_assert_str_eq(backend_state(mine, state, sizeof(state)), "running");
    fake_stats(&lists, &gets);
    ck_assert_uint_eq(lists, 0);
}
END_TEST

/* No bus at all (the normal case in containers): the daemon starts, serves and stops as
 * usual. */
START_TEST(no_bus_daemon_starts)
{
    char mine[64];
    snprintf(bus_addr, sizeof(bus_addr), "unix:path=%s/nothing", tree);
    start_daemon(NULL);
    create("client", mine, sizeof(mine));
    ck_assert(th_hello(&conn));
}
END_TEST

/* A bus without logind: its calls fail, the daemon carries on. */
START_TEST(bus_without_logind)
{
    char mine[64];
    start_bus();
    start_daemon(NULL);
    create("client", mine, sizeof(mine));
    ck_assert(th_hello(&conn));
}
END_TEST

/* The bus goes away and comes back (backoff 1 s, 2 s, ...); the user logged out meanwhile:
 * the count from before is kept, so the reconnection notices the logout. */
START_TEST(bus_lost_and_back_notices_logout)
{
    char mine[64], kept[64], state[32];
    unsigned lists, gets;
    start_bus();
    start_fake();
    fake_ok("new c1 %u user", (unsigned)getuid());
    start_daemon(NULL);
    wait_gets(1);
    create("client", mine, sizeof(mine));
    create("detached", kept, sizeof(kept));
    stop_fake();
    stop_pid(&bus_pid);
    ck_assert(th_hello(&conn)); /* serving without the bus */
    ck_assert_str_eq(backend_state(mine, state, sizeof(state)), "running");
    start_bus();
    start_fake(); /* no session of the user any more */
    int64_t until = now_ms() + WAIT_MS;
    do {
        fake_stats(&lists, &gets);
        ck_assert_msg(now_ms() < until, "the daemon did not reconnect");
        if (lists == 0)
            usleep(50000);
    } while (lists == 0);
    expect_stopped(mine);
    ck_assert_str_eq(backend_state(kept, state, sizeof(state)), "running");
}
END_TEST

static Suite *logind_suite(void)
{
    Suite *s = suite_create("daemon_logind");
    TCase *tc = tcase_create("logind");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, last_session_removed_stops_client_sandboxes);
    tcase_add_test(tc, closing_session_counts_as_ended);
    tcase_add_test(tc, user_removed_counts_again);
    tcase_add_test(tc, cleanup_off_does_not_watch);
    tcase_add_test(tc, no_bus_daemon_starts);
    tcase_add_test(tc, bus_without_logind);
    tcase_add_test(tc, bus_lost_and_back_notices_logout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(logind_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
