/* Sessions and ownership against the real daemon and cwsandbox-local: a session shared by two
 * connections, defaults merged into creates, the daemon's tags on the backend, close stopping
 * everything, adopt and detach, the idle TTL, 50 SIGKILLed client processes whose sandboxes
 * are reaped within orphan_grace_s + 2 s (an adopted one survives), and errors. Every check
 * of a sandbox's fate asks the backend (sandbox.get {fresh: true}). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define CALL_MS 60000
/* The daemon's default orphan_grace_s. */
#define ORPHAN_GRACE_MS 5000
#define N_CLIENTS       50

static struct th_daemon daemon_;
static struct th_conn conn;

static void setup(void)
{
    th_fixture_up(&daemon_, &conn);
}

static void teardown(void)
{
    th_fixture_down(&daemon_, &conn, 20000);
}

static void expect_error(struct cws_rpc_msg *m, const char *code, const char *what)
{
    char got[64];
    ck_assert_msg(m && m->error, "%s: expected %s, got a result", what, code);
    ck_assert_str_eq(th_str(m->error, "code", got, sizeof(got)), code);
    cws_rpc_msg_free(m);
}

static bool has_string(const msgpack_object *arr, const char *s)
{
    for (uint32_t i = 0; arr && arr->type == MSGPACK_OBJECT_ARRAY && i < arr->via.array.size; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        if (o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
            memcmp(o->via.str.ptr, s, o->via.str.size) == 0)
            return true;
    }
    return false;
}

static bool has_tag_prefix(const msgpack_object *arr, const char *prefix)
{
    for (uint32_t i = 0; arr && arr->type == MSGPACK_OBJECT_ARRAY && i < arr->via.array.size; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        if (o->type == MSGPACK_OBJECT_STR && o->via.str.size >= strlen(prefix) &&
            memcmp(o->via.str.ptr, prefix, strlen(prefix)) == 0)
            return true;
    }
    return false;
}

/* stdout of a command run in the sandbox. */
static void exec_out(struct th_conn *c, const char *id, const char *script, char *out, size_t size)
{
    struct cws_rpc_msg *m = th_ok(th_call_json(c, CALL_MS, "exec",
                                               "{\"id\": \"%s\", \"argv\": [\"/bin/sh\", \"-c\", "
                                               "\"%s\"]}",
                                               id, script),
                                  "exec");
    const msgpack_object *o = th_field(m->result, "stdout");
    out[0] = '\0';
    if (o && o->type == MSGPACK_OBJECT_BIN)
        snprintf(out, size, "%.*s", (int)o->via.bin.size, o->via.bin.ptr);
    cws_rpc_msg_free(m);
}

START_TEST(test_session_shared_by_two_connections)
{
    char id[64], out[256], state[32];
    struct th_conn second;
    struct cws_rpc_msg *m = th_ok(th_call_json(&conn, CALL_MS, "session.open",
                                               "{\"name\": \"team\", \"defaults\": {\"env\": "
                                               "{\"A\": \"from-session\", \"B\": \"b\"}, "
                                               "\"tags\": [\"team-tag\"]}}"),
                                  "session.open");
    char name[64];
    ck_assert_str_eq(th_str(m->result, "name", name, sizeof(name)), "team");
    ck_assert_int_eq(th_int(m->result, "clients", -1), 1);
    cws_rpc_msg_free(m);

    /* The create joins the client's session; explicit env wins, the rest merges. */
    m = th_ok(th_call_json(&conn, CALL_MS, "sandbox.create",
                           "{\"wait\": \"running\", \"config\": {\"tags\": [\"cwsd-test\"], "
                           "\"env\": {\"A\": \"explicit\"}}}"),
              "sandbox.create");
    th_str(m->result, "id", id, sizeof(id));
    char owner[32], session[64];
    ck_assert_str_eq(th_str(m->result, "owner", owner, sizeof(owner)), "session");
    ck_assert_str_eq(th_str(m->result, "session", session, sizeof(session)), "team");
    const msgpack_object *tags = th_field(m->result, "tags");
    ck_assert(has_string(tags, "team-tag"));
    ck_assert(has_string(tags, "cwsd-test"));
    ck_assert(has_string(tags, "cwsd-session.team"));
    ck_assert(has_tag_prefix(tags, "cwsd-owner."));
    cws_rpc_msg_free(m);
    exec_out(&conn, id, "echo $A-$B", out, sizeof(out));
    ck_assert_str_eq(out, "explicit-b\n");

    /* A second process joins by name (what CWSANDBOX_SESSION does) and sees it. */
    ck_assert_int_eq(th_connect(&second, daemon_.socket), 0);
    cws_rpc_msg_free(
        th_ok(th_call_json(&second, CALL_MS, "hello", "{\"protocol\": 1, \"session\": \"team\"}"),
              "hello"));
    m = th_ok(th_call_json(&second, CALL_MS, "session.get", "{\"name\": \"team\"}"), "session.get");
    ck_assert_int_eq(th_int(m->result, "clients", -1), 2);
    ck_assert(has_string(th_field(m->result, "sandboxes"), id));
    cws_rpc_msg_free(m);

    /* The first goes away with a client-owned sandbox besides: once that one is reaped, the
     * session's sandbox must still run and serve the second connection. */
    char mine[64];
    th_create(&conn, ", \"owner\": \"client\"", mine, sizeof(mine));
    th_close(&conn);
    ck_assert_msg(th_ended_by(&second, mine, th_now_ms() + ORPHAN_GRACE_MS + 15000),
                  "the client sandbox was not reaped");
    ck_assert_str_eq(th_state(&second, id, state, sizeof(state)), "running");
    exec_out(&second, id, "echo still", out, sizeof(out));
    ck_assert_str_eq(out, "still\n");

    /* sandbox.list by session finds it through the session tag. */
    m = th_ok(th_call_json(&second, CALL_MS, "sandbox.list", "{\"session\": \"team\"}"),
              "sandbox.list");
    const msgpack_object *list = th_field(m->result, "sandboxes");
    ck_assert(list && list->via.array.size == 1);
    char listed[64];
    ck_assert_str_eq(th_str(&list->via.array.ptr[0], "id", listed, sizeof(listed)), id);
    cws_rpc_msg_free(m);

    /* Close stops it and reports it. */
    m = th_ok(th_call_json(&second, CALL_MS, "session.close", "{\"name\": \"team\"}"),
              "session.close");
    ck_assert_int_eq(th_int(m->result, "stopped", -1), 1);
    ck_assert_uint_eq(th_field(m->result, "failed")->via.array.size, 0);
    cws_rpc_msg_free(m);
    ck_assert(th_is_terminal(th_state(&second, id, state, sizeof(state))));
    m = th_ok(th_call_json(&second, CALL_MS, "session.list", "%s", ""), "session.list");
    ck_assert_uint_eq(th_field(m->result, "sessions")->via.array.size, 0);
    cws_rpc_msg_free(m);
    th_close(&second);
    ck_assert_int_eq(th_connect(&conn, daemon_.socket), 0); /* for the teardown */
    ck_assert(th_hello(&conn));
}
END_TEST

START_TEST(test_adopt_and_detach)
{
    char client_sb[64], adopted[64], detached[64], state[32];
    struct th_conn other;
    ck_assert_int_eq(th_connect(&other, daemon_.socket), 0);
    ck_assert(th_hello(&other));
    th_create(&other, ", \"owner\": \"client\"", client_sb, sizeof(client_sb));
    th_create(&other, ", \"owner\": \"client\"", adopted, sizeof(adopted));
    th_create(&other, ", \"owner\": \"client\"", detached, sizeof(detached));
    struct cws_rpc_msg *m = th_ok(th_call_json(&conn, CALL_MS, "sandbox.adopt",
                                               "{\"id\": \"%s\", \"session\": \"keep\"}", adopted),
                                  "sandbox.adopt");
    char owner[32];
    ck_assert_str_eq(th_str(m->result, "owner", owner, sizeof(owner)), "session");
    cws_rpc_msg_free(m);
    m = th_ok(th_call_json(&conn, CALL_MS, "sandbox.detach", "{\"id\": \"%s\"}", detached),
              "sandbox.detach");
    ck_assert_str_eq(th_str(m->result, "owner", owner, sizeof(owner)), "detached");
    cws_rpc_msg_free(m);

    th_close(&other);
    ck_assert_msg(th_ended_by(&conn, client_sb, th_now_ms() + ORPHAN_GRACE_MS + 15000),
                  "the orphan was not reaped");
    ck_assert_str_eq(th_state(&conn, adopted, state, sizeof(state)), "running");
    ck_assert_str_eq(th_state(&conn, detached, state, sizeof(state)), "running");

    /* Closing without stopping keeps what the session held (now detached). */
    m = th_ok(
        th_call_json(&conn, CALL_MS, "session.close", "{\"name\": \"keep\", \"stop\": false}"),
        "session.close");
    ck_assert_int_eq(th_int(m->result, "stopped", -1), 0);
    cws_rpc_msg_free(m);
    ck_assert_str_eq(th_state(&conn, adopted, state, sizeof(state)), "running");
    m = th_ok(th_call_json(&conn, CALL_MS, "sandbox.get", "{\"id\": \"%s\"}", adopted),
              "sandbox.get");
    ck_assert_str_eq(th_str(m->result, "owner", owner, sizeof(owner)), "detached");
    cws_rpc_msg_free(m);
}
END_TEST

START_TEST(test_idle_ttl_closes_the_session)
{
    char id[64];
    struct th_conn other;
    ck_assert_int_eq(th_connect(&other, daemon_.socket), 0);
    ck_assert(th_hello(&other));
    cws_rpc_msg_free(th_ok(
        th_call_json(&other, CALL_MS, "session.open", "{\"name\": \"brief\", \"idle_ttl_s\": 1}"),
        "session.open"));
    th_create(&other, "", id, sizeof(id));
    /* Attached: it does not idle. */
    struct cws_rpc_msg *m =
        th_ok(th_call_json(&conn, CALL_MS, "session.get", "{\"name\": \"brief\"}"), "session.get");
    ck_assert_int_eq(th_int(m->result, "clients", -1), 1);
    cws_rpc_msg_free(m);
    th_close(&other);
    ck_assert_msg(th_ended_by(&conn, id, th_now_ms() + 20000), "the idle session was not closed");
    expect_error(th_call_json(&conn, CALL_MS, "session.get", "{\"name\": \"brief\"}"), "NOT_FOUND",
                 "session.get after the TTL");
}
END_TEST

START_TEST(test_session_errors)
{
    expect_error(th_call_json(&conn, CALL_MS, "session.get", "{\"name\": \"nope\"}"), "NOT_FOUND",
                 "session.get");
    expect_error(th_call_json(&conn, CALL_MS, "session.close", "{\"name\": \"nope\"}"), "NOT_FOUND",
                 "session.close");
    expect_error(th_call_json(&conn, CALL_MS, "session.open", "{\"name\": \"bad name!\"}"),
                 "INVALID_ARGUMENT", "session.open with a bad name");
    expect_error(th_call_json(&conn, CALL_MS, "session.open",
                              "{\"name\": \"x\", \"defaults\": {\"env\": 3}}"),
                 "INVALID_ARGUMENT", "session.open with bad defaults");
    expect_error(th_call_json(&conn, CALL_MS, "sandbox.detach", "{\"id\": \"sbx-unknown\"}"),
                 "NOT_FOUND", "sandbox.detach");
    expect_error(th_call_json(&conn, CALL_MS, "sandbox.adopt",
                              "{\"id\": \"sbx-unknown\", \"session\": \"s\"}"),
                 "NOT_FOUND", "sandbox.adopt");
    expect_error(
        th_call_json(&conn, CALL_MS, "sandbox.create", "{\"owner\": \"session\", \"config\": {}}"),
        "INVALID_ARGUMENT", "owner session without a session");
    /* A generated name when none is given. */
    struct cws_rpc_msg *m =
        th_ok(th_call_json(&conn, CALL_MS, "session.open", "{}"), "session.open");
    char name[64];
    ck_assert(th_str(m->result, "name", name, sizeof(name))[0]);
    cws_rpc_msg_free(m);
}
END_TEST

/* ---- 50 client processes SIGKILLed ---- */

/* A child: connect, create a client-owned sandbox, write its id to fd, wait to be killed. */
static void client_child(int fd)
{
    struct th_conn c;
    char id[64] = "";
    if (th_connect(&c, daemon_.socket) == 0 && th_hello(&c)) {
        struct cws_rpc_msg *m =
            th_call_json(&c, CALL_MS, "sandbox.create",
                         "{\"owner\": \"client\", \"wait\": \"running\", \"config\": {\"tags\": "
                         "[\"cwsd-test\"], \"network\": {\"deny_egress\": true}}}");
        if (m && !m->error)
            th_str(m->result, "id", id, sizeof(id));
        cws_rpc_msg_free(m);
    }
    char line[80];
    int n = snprintf(line, sizeof(line), "%-63s\n", id[0] ? id : "-");
    if (write(fd, line, (size_t)n) != n)
        _exit(1);
    pause();
    _exit(0);
}

START_TEST(test_sigkilled_clients_are_reaped)
{
    pid_t pids[N_CLIENTS];
    char ids[N_CLIENTS][64];
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    for (int i = 0; i < N_CLIENTS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(p[0]);
            client_child(p[1]);
        }
    }
    close(p[1]);
    FILE *in = fdopen(p[0], "r");
    for (int i = 0; i < N_CLIENTS; i++) {
        char line[80];
        ck_assert_msg(fgets(line, sizeof(line), in), "a client died early");
        sscanf(line, "%63s", ids[i]);
        ck_assert_msg(strcmp(ids[i], "-") != 0, "a client could not create its sandbox");
    }
    fclose(in);
    /* One is adopted into a session before its client dies: it must survive. */
    cws_rpc_msg_free(th_ok(th_call_json(&conn, CALL_MS, "sandbox.adopt",
                                        "{\"id\": \"%s\", \"session\": \"rescue\"}", ids[0]),
                           "sandbox.adopt"));
    for (int i = 0; i < N_CLIENTS; i++)
        kill(pids[i], SIGKILL);
    int64_t killed = th_now_ms();
    for (int i = 0; i < N_CLIENTS; i++)
        waitpid(pids[i], NULL, 0);
    int64_t deadline = killed + ORPHAN_GRACE_MS + 2000;
    for (int i = 1; i < N_CLIENTS; i++)
        ck_assert_msg(th_ended_by(&conn, ids[i], deadline),
                      "sandbox %s still runs %lld ms after its client was killed", ids[i],
                      (long long)(th_now_ms() - killed));
    char state[32];
    ck_assert_str_eq(th_state(&conn, ids[0], state, sizeof(state)), "running");
    /* daemon.status reports what was reaped and why. */
    struct cws_rpc_msg *m =
        th_ok(th_call_json(&conn, CALL_MS, "daemon.status", "%s", ""), "daemon.status");
    const msgpack_object *orphans = th_field(m->result, "orphans");
    ck_assert(orphans && orphans->via.array.size >= N_CLIENTS - 1);
    char why[128];
    th_str(&orphans->via.array.ptr[0], "why", why, sizeof(why));
    ck_assert_msg(strstr(why, "client"), "reap reason: %s", why);
    cws_rpc_msg_free(m);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cwsandboxd sessions");
    TCase *tc = tcase_create("sessions");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_session_shared_by_two_connections);
    tcase_add_test(tc, test_adopt_and_detach);
    tcase_add_test(tc, test_idle_ttl_closes_the_session);
    tcase_add_test(tc, test_session_errors);
    tcase_add_test(tc, test_sigkilled_clients_are_reaped);
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
