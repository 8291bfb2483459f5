/* Twenty processes connect at the same moment to a user who has no daemon yet: all of them
 * must be served, by one daemon (the lock file serialises the start). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_test.h"

#define N_PROCS 20

static struct ct_env env;

static void setup(void)
{
    ct_env_setup(&env);
}

static void teardown(void)
{
    ct_env_teardown(&env);
}

/* A racer: wait for the start signal, connect, report the daemon's pid. */
static void racer(int start_fd, int report_fd)
{
    char go;
    struct cws_error err;
    struct cws_client_options o = {.timeout_ms = 30000};
    cws_client *c = NULL;
    long long pid = -1;
    if (read(start_fd, &go, 1) < 0)
        _exit(2);
    if (cws_client_connect(&o, &c, &err) == 0) {
        cws_op *op = NULL;
        /* A request after hello: the connection really works. */
        if (cws_client_status(c, &op, &err) == 0 && cws_op_wait(op, 10000, &err) == 0)
            pid = cws_op_daemon_status(op)->pid;
        cws_op_free(op);
        cws_client_free(c);
    }
    if (pid < 0)
        fprintf(stderr, "racer %d: %s: %s\n", (int)getpid(), cws_errcode_name(err.code),
                err.message);
    if (write(report_fd, &pid, sizeof(pid)) != sizeof(pid))
        _exit(3);
    _exit(pid < 0 ? 1 : 0);
}

START_TEST(test_twenty_processes_one_daemon)
{
    int start[2], report[2];
    pid_t kids[N_PROCS];
    ck_assert_int_eq(pipe(start), 0);
    ck_assert_int_eq(pipe(report), 0);
    for (int i = 0; i < N_PROCS; i++) {
        kids[i] = fork();
        ck_assert_int_ge(kids[i], 0);
        if (kids[i] == 0) {
            close(start[1]);
            close(report[0]);
            racer(start[0], report[1]);
        }
    }
    close(start[0]);
    close(report[1]);
    close(start[1]); /* all racers see EOF at once: go */

    long long first = -1;
    int served = 0;
    for (int i = 0; i < N_PROCS; i++) {
        long long pid = -1;
        ck_assert_int_eq(read(report[0], &pid, sizeof(pid)), (ssize_t)sizeof(pid));
        ck_assert_msg(pid > 0, "a racer was not served (see its stderr)");
        if (first < 0)
            first = pid;
        ck_assert_int_eq(pid, first);
        served++;
    }
    for (int i = 0; i < N_PROCS; i++) {
        int status = 0;
        ck_assert_int_eq(waitpid(kids[i], &status, 0), kids[i]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ck_assert_int_eq(served, N_PROCS);

    /* Exactly one daemon process for this socket, and it is the one that served everybody. */
    pid_t pids[8];
    char a[600], b[600];
    int n = ct_daemon_pids(env.socket, pids, 8);
    ck_assert_msg(n == 1, "%d daemons: %s; %s", n, ct_describe(pids[0], a, sizeof(a)),
                  n > 1 ? ct_describe(pids[1], b, sizeof(b)) : "");
    ck_assert_int_eq(pids[0], first);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("client_race");
    TCase *tc = tcase_create("race");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_twenty_processes_one_daemon, 0, 3);
    suite_add_tcase(s, tc);
    return ct_run_suite(s);
}
