/* libcwsandbox-client against the real cwsandboxd: starting the daemon on demand, hello and
 * status, errors, and the refusals (no daemon, foreign directory, daemon that dies). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_test.h"

static struct ct_env env;

static void setup(void)
{
    ct_env_setup(&env);
}

static void teardown(void)
{
    ct_env_teardown(&env);
}

START_TEST(test_autostart_when_no_daemon)
{
    pid_t pids[4];
    struct stat st;
    ck_assert_int_eq(ct_daemon_pids(env.socket, pids, 4), 0);
    ck_assert_int_ne(stat(env.socket, &st), 0);

    cws_client *c = ct_connect();
    const struct cws_daemon_info *d = cws_client_daemon(c);
    ck_assert_str_eq(cws_client_socket_path(c), env.socket);
    ck_assert_msg(strncmp(d->daemon, "cwsandboxd/", 11) == 0, "daemon is '%s'", d->daemon);
    ck_assert_int_eq(d->protocol, CWS_PROTOCOL_LEVEL);
    ck_assert_str_ne(d->backend.kind, "");
    ck_assert_str_ne(d->auth.strategy, "");
    ck_assert_int_eq(ct_daemon_pids(env.socket, pids, 4), 1);
    ck_assert_int_eq(pids[0], d->pid);

    /* The directory is private and the socket ours (DESIGN §3). */
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/run/cwsandbox", env.root);
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    ck_assert_int_eq(stat(env.socket, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    cws_client_free(c);
}
END_TEST

START_TEST(test_second_client_reuses_the_daemon)
{
    pid_t pids[4];
    cws_client *a = ct_connect();
    cws_client *b = ct_connect();
    ck_assert_int_eq(cws_client_daemon(a)->pid, cws_client_daemon(b)->pid);
    cws_client_free(a);
    cws_client_free(b);
    /* The daemon outlives the clients that started it. */
    cws_client *c = ct_connect();
    ck_assert_int_eq(ct_daemon_pids(env.socket, pids, 4), 1);
    ck_assert_int_eq(cws_client_daemon(c)->pid, pids[0]);
    cws_client_free(c);
}
END_TEST

START_TEST(test_status)
{
    struct cws_error err;
    cws_op *op = NULL;
    cws_client *c = ct_connect();
    cws_client *other = ct_connect();
    ck_assert_int_eq(cws_client_status(c, &op, &err), 0);
    ck_assert_str_eq(cws_op_method(op), "daemon.status");
    ck_assert_ptr_null(cws_op_daemon_status(op)); /* not done yet */
    ck_assert_int_eq(cws_op_wait(op, 5000, &err), 0);
    const struct cws_daemon_status *st = cws_op_daemon_status(op);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(st->pid, cws_client_daemon(c)->pid);
    ck_assert_uint_ge(st->clients, 2);
    ck_assert_int_ge(st->uptime_ms, 0);
    ck_assert_str_eq(st->daemon, cws_client_daemon(c)->daemon);
    ck_assert_str_eq(st->backend.kind, cws_client_daemon(c)->backend.kind);
    ck_assert_ptr_null(cws_op_error(op));
    ck_assert(cws_op_done(op));
    cws_op_free(op);
    cws_client_free(other);
    cws_client_free(c);
}
END_TEST

START_TEST(test_no_autostart)
{
    struct cws_client_options o = {.no_autostart = true};
    struct cws_error err;
    pid_t pids[4];
    cws_client *c = NULL;
    ck_assert_int_eq(cws_client_connect(&o, &c, &err), -CWS_E_UNAVAILABLE);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(err.code, CWS_E_UNAVAILABLE);
    ck_assert(err.retryable);
    ck_assert_ptr_nonnull(strstr(err.message, env.socket));
    ck_assert_int_eq(ct_daemon_pids(env.socket, pids, 4), 0);
}
END_TEST

START_TEST(test_daemon_binary_missing)
{
    struct cws_error err;
    cws_client *c = NULL;
    setenv("CWSANDBOXD", "/nonexistent/cwsandboxd", 1);
    ck_assert_int_eq(cws_client_connect(NULL, &c, &err), -CWS_E_UNAVAILABLE);
    ck_assert_msg(strstr(err.message, "not found"), "%s", err.message);
}
END_TEST

START_TEST(test_daemon_that_dies_at_start)
{
    struct cws_error err;
    struct cws_client_options o = {.daemon_path = "/bin/false", .timeout_ms = 5000};
    cws_client *c = NULL;
    long long t0 = ct_now_ms();
    ck_assert_int_eq(cws_client_connect(&o, &c, &err), -CWS_E_UNAVAILABLE);
    ck_assert_msg(strstr(err.message, "exited at start"), "%s", err.message);
    ck_assert_int_lt(ct_now_ms() - t0, 4000);
}
END_TEST

START_TEST(test_refuses_a_shared_socket_directory)
{
    struct cws_error err;
    cws_client *c = NULL;
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/run/cwsandbox", env.root);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    chmod(dir, 0755);
    ck_assert_int_eq(cws_client_connect(NULL, &c, &err), -CWS_E_PERMISSION_DENIED);
    ck_assert_ptr_nonnull(strstr(err.message, dir));
}
END_TEST

START_TEST(test_explicit_socket_path)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/home/my.sock", env.root);
    setenv("CWSANDBOX_SOCKET", path, 1);
    cws_client *c = ct_connect();
    ck_assert_str_eq(cws_client_socket_path(c), path);
    pid_t pids[4];
    ck_assert_int_eq(ct_daemon_pids(path, pids, 4), 1);
    cws_client_free(c);
    ct_stop_pid(pids[0]);
}
END_TEST

START_TEST(test_daemon_errors_become_cws_errors)
{
    struct cws_error err;
    cws_op *op = NULL;
    cws_client *c = ct_connect();
    ck_assert_int_eq(cws_session_list(c, &op, &err), 0);
    int r = cws_op_wait(op, 5000, &err);
    if (r == 0) {
        /* Sessions have landed: check the mapping with a name that does not exist. */
        cws_op_free(op);
        ck_assert_int_eq(cws_session_get(c, "no-such-session", &op, &err), 0);
        r = cws_op_wait(op, 5000, &err);
        ck_assert_int_eq(r, -CWS_E_NOT_FOUND);
    } else {
        ck_assert_int_eq(r, -CWS_E_UNIMPLEMENTED);
        ck_assert_int_eq(err.code, CWS_E_UNIMPLEMENTED);
        ck_assert_msg(strstr(err.message, "session.list"), "%s", err.message);
        ck_assert(!err.retryable);
        ck_assert_int_eq(err.retry_after_ms, -1);
        ck_assert_str_eq(err.reason, "");
    }
    const struct cws_error *e = cws_op_error(op);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->code, err.code);
    ck_assert_str_eq(e->message, err.message);
    /* The connection goes on after an error. */
    cws_op_free(op);
    ck_assert_int_eq(cws_client_status(c, &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, 5000, &err), 0);
    cws_op_free(op);
    cws_client_free(c);
}
END_TEST

START_TEST(test_arguments_checked_before_sending)
{
    struct cws_error err;
    cws_op *op = NULL;
    cws_client *c = ct_connect();
    const char *empty[] = {NULL};
    const char *argv[] = {"true", NULL};
    const char *bad_env[] = {"NOEQUALS", NULL};
    struct cws_exec_options relative = {.cwd = "tmp"};
    struct cws_exec_options env_opts = {.env = bad_env};

    ck_assert_int_eq(cws_sandbox_get(c, "", false, &op, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_sandbox_get(c, NULL, false, &op, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_exec(c, "sbx", empty, NULL, &op, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_exec(c, "sbx", argv, &relative, &op, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(err.message, "absolute"));
    ck_assert_int_eq(cws_exec(c, "sbx", argv, &env_opts, &op, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(err.message, "NOEQUALS"));
    ck_assert_int_eq(cws_file_read(c, "sbx", "relative/path", &op, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_sandbox_purge(c, empty, false, &op, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_file_write_from_fd(c, "sbx", "/x", 0, &op, &err),
                     -CWS_E_INVALID_ARGUMENT); /* stdin is not a regular file */
    ck_assert_ptr_null(op);
    ck_assert_uint_eq(cws_client_ops_in_flight(c), 0);

    /* A config remembers its first setter error, and a create reports it. */
    cws_sandbox_config *cfg = NULL;
    ck_assert_int_eq(cws_sandbox_config_new(&cfg), 0);
    ck_assert_int_eq(cws_sandbox_config_set_image(cfg, "python:3.12"), 0);
    ck_assert_int_eq(cws_sandbox_config_add_service(cfg, 70000, NULL, NULL, false),
                     -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_sandbox_config_set_gpu(cfg, 0, NULL, 0), -CWS_E_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(cws_sandbox_config_error(cfg));
    ck_assert_int_eq(cws_sandbox_create(c, cfg, NULL, &op, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(err.message, "service"));
    cws_sandbox_config_free(cfg);
    cws_sandbox_config_free(NULL);
    cws_client_free(c);
}
END_TEST

START_TEST(test_destructors_accept_null)
{
    cws_client_free(NULL);
    cws_op_free(NULL);
    cws_sandbox_config_free(NULL);
    cws_sandbox_info_free(NULL);
    ck_assert_ptr_null(cws_op_sandbox(NULL));
    ck_assert_ptr_null(cws_op_exec_result(NULL));
    ck_assert(!cws_op_done(NULL));
    ck_assert_str_eq(cws_client_version(), CWS_CLIENT_VERSION);
    ck_assert_str_eq(cws_sandbox_state_name(CWS_STATE_RUNNING), "running");
    ck_assert(cws_sandbox_state_is_terminal(CWS_STATE_FAILED));
    ck_assert(!cws_sandbox_state_is_terminal(CWS_STATE_TERMINATING));
}
END_TEST

/* Start a daemon by hand (as systemd or an old library would), not through the library. */
static pid_t start_by_hand(const char *binary, const char *protocol)
{
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/run/cwsandbox", env.root);
    mkdir(dir, 0700);
    pid_t pid = fork();
    if (pid == 0) {
        execl(binary, binary, "--socket", env.socket, "--protocol", protocol, (char *)NULL);
        _exit(127);
    }
    struct cws_client_options o = {.no_autostart = true, .timeout_ms = 1000};
    for (long long until = ct_now_ms() + 10000; ct_now_ms() < until; usleep(5000)) {
        /* Listening: a connect gets as far as the protocol refusal. */
        struct cws_error err;
        cws_client *c = NULL;
        if (cws_client_connect(&o, &c, &err) == -CWS_E_FAILED_PRECONDITION)
            return pid;
        cws_client_free(c);
    }
    ck_abort_msg("the hand-started daemon did not listen");
    return -1;
}

static void write_marker(pid_t pid, int protocol)
{
    char path[400];
    snprintf(path, sizeof(path), "%s.autostarted", env.socket);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%d %d\n", (int)pid, protocol);
    fclose(f);
}

START_TEST(test_restarts_an_old_daemon_it_started)
{
    pid_t old = start_by_hand(getenv("CWSC_MOCK_DAEMON"), "0");
    write_marker(old, 0);
    cws_client *c = ct_connect();
    const struct cws_daemon_info *d = cws_client_daemon(c);
    ck_assert_int_eq(d->protocol, CWS_PROTOCOL_LEVEL);
    ck_assert_int_ne(d->pid, old);
    ck_assert(!ct_alive(old));
    waitpid(old, NULL, WNOHANG);
    pid_t pids[4];
    char a[600], b[600];
    int n = ct_daemon_pids(env.socket, pids, 4);
    ck_assert_msg(n == 1, "%d daemons: %s; %s", n, ct_describe(pids[0], a, sizeof(a)),
                  n > 1 ? ct_describe(pids[1], b, sizeof(b)) : "");
    ck_assert_int_eq(pids[0], d->pid);
    cws_client_free(c);
}
END_TEST

START_TEST(test_leaves_an_old_daemon_it_did_not_start)
{
    struct cws_error err;
    cws_client *c = NULL;
    pid_t old = start_by_hand(getenv("CWSC_MOCK_DAEMON"), "0");
    ck_assert_int_eq(cws_client_connect(NULL, &c, &err), -CWS_E_FAILED_PRECONDITION);
    ck_assert_msg(strstr(err.message, "protocol"), "%s", err.message);
    ck_assert_msg(strstr(err.message, "not started by this library"), "%s", err.message);
    ck_assert(ct_alive(old));
    ct_stop_pid(old);
    waitpid(old, NULL, 0);
}
END_TEST

static Suite *connect_suite(void)
{
    Suite *s = suite_create("client_connect");
    TCase *tc = tcase_create("connect");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_autostart_when_no_daemon);
    tcase_add_test(tc, test_second_client_reuses_the_daemon);
    tcase_add_test(tc, test_status);
    tcase_add_test(tc, test_no_autostart);
    tcase_add_test(tc, test_daemon_binary_missing);
    tcase_add_test(tc, test_daemon_that_dies_at_start);
    tcase_add_test(tc, test_refuses_a_shared_socket_directory);
    tcase_add_test(tc, test_explicit_socket_path);
    tcase_add_test(tc, test_daemon_errors_become_cws_errors);
    tcase_add_test(tc, test_arguments_checked_before_sending);
    tcase_add_test(tc, test_destructors_accept_null);
    tcase_add_test(tc, test_restarts_an_old_daemon_it_started);
    tcase_add_test(tc, test_leaves_an_old_daemon_it_did_not_start);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ct_run_suite(connect_suite());
}
