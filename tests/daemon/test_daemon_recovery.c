/* Crash recovery and logout cleanup against the real daemon and cwsandbox-local: the daemon is
 * SIGKILLed with a session sandbox, a client sandbox, a detached one and a create in flight,
 * then started again on the same state (with the registry intact, with its last record torn,
 * and with a corrupt byte in the middle); and SIGTERM with 100 live sandboxes. The outcome is
 * read from the backend. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define CALL_MS         60000
#define ORPHAN_GRACE_MS 5000
#define N_LOGOUT        100

static struct th_daemon daemon_;
static struct th_conn conn;

static void setup(void)
{
    th_fixture_up(&daemon_, &conn);
}

static void teardown(void)
{
    th_fixture_down(&daemon_, &conn, 30000);
}

/* The ids of the sandboxes the backend lists with a tag (terminated ones too when asked). */
static size_t list_tagged(struct th_conn *c, const char *tag, bool terminated, char ids[][64],
                          size_t max)
{
    struct cws_rpc_msg *m = th_ok(th_call_json(c, CALL_MS, "sandbox.list",
                                               "{\"tags\": [\"%s\"], \"show_terminated\": %s}", tag,
                                               terminated ? "true" : "false"),
                                  "sandbox.list");
    const msgpack_object *list = th_field(m->result, "sandboxes");
    size_t n = list ? list->via.array.size : 0;
    for (size_t i = 0; i < n && i < max; i++)
        th_str(&list->via.array.ptr[i], "id", ids[i], 64);
    cws_rpc_msg_free(m);
    return n;
}

/* The daemon's cwsandbox-local (its socket path names the test tree). */
static pid_t backend_pid(void)
{
    DIR *dir = opendir("/proc");
    struct dirent *de;
    pid_t found = -1;
    while (dir && found < 0 && (de = readdir(dir))) {
        char path[300], cmd[1024] = "";
        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
            if (!cmd[i])
                cmd[i] = ' ';
        if (strstr(cmd, "cwsandbox-local") && strstr(cmd, daemon_.root))
            found = atoi(de->d_name);
    }
    if (dir)
        closedir(dir);
    return found;
}

static void registry_path(char *buf, size_t size)
{
    snprintf(buf, size, "%s/state/cwsandbox/registry", daemon_.root);
}

/* Whether the registry holds the bytes of s (a create's request carries its tags). */
static bool registry_holds(const char *s)
{
    char path[400], buf[1 << 16];
    registry_path(path, sizeof(path));
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    return memmem(buf, n, s, strlen(s)) != NULL;
}

struct scene {
    char session_sb[64], client_sb[64], detached_sb[64];
    char inflight_tag[64];
};

/* Live sandboxes of each owner, then a create the SIGSTOPped backend never answers, then
 * SIGKILL. When resume_backend the backend is let go (it may or may not make the sandbox
 * before it dies); otherwise it is killed with the request unread. */
static void crash_with_a_create_in_flight(struct scene *sc, bool resume_backend)
{
    struct th_conn other;
    cws_rpc_msg_free(th_ok(th_call_json(&conn, CALL_MS, "session.open", "{\"name\": \"kept\"}"),
                           "session.open"));
    th_create(&conn, "", sc->session_sb, sizeof(sc->session_sb));
    th_create(&conn, ", \"owner\": \"detached\"", sc->detached_sb, sizeof(sc->detached_sb));
    ck_assert_int_eq(th_connect(&other, daemon_.socket), 0);
    ck_assert(th_hello(&other));
    th_create(&other, ", \"owner\": \"client\"", sc->client_sb, sizeof(sc->client_sb));

    pid_t backend = backend_pid();
    ck_assert_int_gt(backend, 0);
    ck_assert_int_eq(kill(backend, SIGSTOP), 0);
    snprintf(sc->inflight_tag, sizeof(sc->inflight_tag), "inflight-%d", (int)getpid());
    th_request_json(&conn, "sandbox.create", "{\"config\": {\"tags\": [\"%s\"]}}",
                    sc->inflight_tag);
    int64_t deadline = th_now_ms() + 10000;
    while (!registry_holds(sc->inflight_tag) && th_now_ms() < deadline)
        usleep(20 * 1000);
    ck_assert_msg(registry_holds(sc->inflight_tag), "the create was not persisted");

    th_daemon_signal_wait(&daemon_, SIGKILL, 10000);
    kill(backend, resume_backend ? SIGCONT : SIGKILL);
    if (resume_backend)
        kill(backend, SIGCONT);
    th_close(&other);
    th_close(&conn);
}

static void restart_and_check(const struct scene *sc, bool inflight_must_exist)
{
    char state[32], ids[4][64];
    ck_assert_msg(th_daemon_relaunch(&daemon_, NULL, 20000) == 0, "no restart");
    int64_t started = th_now_ms();
    ck_assert_int_eq(th_connect(&conn, daemon_.socket), 0);
    ck_assert(th_hello(&conn));

    ck_assert_msg(th_ended_by(&conn, sc->client_sb, started + ORPHAN_GRACE_MS + 10000),
                  "the orphan of the dead daemon still runs");
    ck_assert_str_eq(th_state(&conn, sc->session_sb, state, sizeof(state)), "running");
    ck_assert_str_eq(th_state(&conn, sc->detached_sb, state, sizeof(state)), "running");
    struct cws_rpc_msg *m =
        th_ok(th_call_json(&conn, CALL_MS, "session.get", "{\"name\": \"kept\"}"), "session.get");
    cws_rpc_msg_free(m);

    /* The in-flight create: finished once, never twice. It may take the resend a moment. */
    size_t n = 0;
    int64_t deadline = th_now_ms() + 15000;
    while ((n = list_tagged(&conn, sc->inflight_tag, true, ids, 4)) == 0 && inflight_must_exist &&
           th_now_ms() < deadline)
        usleep(100 * 1000);
    ck_assert_msg(n <= 1, "the in-flight create made %zu sandboxes", n);
    if (inflight_must_exist)
        ck_assert_uint_eq(n, 1);
    /* When the backend died in the middle of making it, it may have failed: that is the
     * backend's outcome, not a duplicate. A running one belongs to the session. */
    if (n == 1 &&
        (inflight_must_exist || !th_is_terminal(th_state(&conn, ids[0], state, sizeof(state))))) {
        char owner[32], session[64];
        m = th_ok(th_call_json(&conn, CALL_MS, "sandbox.wait", "{\"id\": \"%s\"}", ids[0]),
                  "sandbox.wait");
        cws_rpc_msg_free(m);
        m = th_ok(th_call_json(&conn, CALL_MS, "sandbox.get", "{\"id\": \"%s\"}", ids[0]),
                  "sandbox.get");
        ck_assert_str_eq(th_str(m->result, "owner", owner, sizeof(owner)), "session");
        ck_assert_str_eq(th_str(m->result, "session", session, sizeof(session)), "kept");
        cws_rpc_msg_free(m);
    }
}

START_TEST(test_sigkill_with_a_create_in_flight)
{
    struct scene sc;
    crash_with_a_create_in_flight(&sc, false);
    restart_and_check(&sc, true);
}
END_TEST

START_TEST(test_sigkill_with_a_torn_registry)
{
    struct scene sc;
    char path[400];
    struct stat st;
    crash_with_a_create_in_flight(&sc, true);
    registry_path(path, sizeof(path));
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(truncate(path, st.st_size - 3), 0); /* mid-record: the create's */
    /* The create's record is gone: it exists at most once (if the backend made it). */
    restart_and_check(&sc, false);
}
END_TEST

START_TEST(test_corrupt_registry_is_moved_aside)
{
    struct scene sc;
    char path[400];
    crash_with_a_create_in_flight(&sc, false);
    registry_path(path, sizeof(path));
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "\xff\xff\xff", 3, 20), 3); /* inside the first record */
    close(fd);
    /* Everything is recovered from the backend's listing by the daemon's tags; the create that
     * was in flight is lost with the registry (the backend never saw it). */
    restart_and_check(&sc, false);
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/state/cwsandbox", daemon_.root);
    DIR *d = opendir(dir);
    struct dirent *de;
    bool aside = false;
    while (d && (de = readdir(d)))
        aside = aside || strncmp(de->d_name, "registry.corrupt-", 17) == 0;
    if (d)
        closedir(d);
    ck_assert_msg(aside, "the corrupt registry was not moved aside");
}
END_TEST

START_TEST(test_sigterm_stops_100_sandboxes)
{
    char ids[N_LOGOUT][64];
    cws_rpc_msg_free(th_ok(th_call_json(&conn, CALL_MS, "session.open", "{\"name\": \"many\"}"),
                           "session.open"));
    /* 100 creates in flight at once, half of them client-owned. */
    for (int i = 0; i < N_LOGOUT; i++)
        th_request_json(&conn, "sandbox.create",
                        "{\"owner\": \"%s\", \"config\": {\"tags\": [\"logout-100\"], "
                        "\"network\": {\"deny_egress\": true}}}",
                        i % 2 ? "client" : "session");
    for (int i = 0; i < N_LOGOUT; i++) {
        bool eof = false;
        struct cws_rpc_msg *m = th_ok(th_next(&conn, CALL_MS, &eof), "sandbox.create");
        th_str(m->result, "id", ids[i], sizeof(ids[i]));
        cws_rpc_msg_free(m);
    }
    for (int i = 0; i < N_LOGOUT; i++)
        cws_rpc_msg_free(
            th_ok(th_call_json(&conn, CALL_MS, "sandbox.wait", "{\"id\": \"%s\"}", ids[i]),
                  "sandbox.wait"));
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(th_daemon_signal_wait(&daemon_, SIGTERM, 30000), 0);
    int64_t took = th_now_ms() - t0;
    th_close(&conn);
    ck_assert_msg(took < 10000, "SIGTERM with %d sandboxes took %lld ms", N_LOGOUT,
                  (long long)took);
    fprintf(stderr, "SIGTERM with %d live sandboxes: daemon exited after %lld ms\n", N_LOGOUT,
            (long long)took);
    ck_assert_msg(th_daemon_relaunch(&daemon_, NULL, 20000) == 0, "no restart");
    ck_assert_int_eq(th_connect(&conn, daemon_.socket), 0);
    ck_assert(th_hello(&conn));
    char running[N_LOGOUT][64];
    ck_assert_uint_eq(list_tagged(&conn, "logout-100", false, running, N_LOGOUT), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cwsandboxd recovery");
    TCase *tc = tcase_create("recovery");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_sigkill_with_a_create_in_flight);
    tcase_add_test(tc, test_sigkill_with_a_torn_registry);
    tcase_add_test(tc, test_corrupt_registry_is_moved_aside);
    tcase_add_test(tc, test_sigterm_stops_100_sandboxes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
