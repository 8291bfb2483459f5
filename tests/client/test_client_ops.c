/* Ops against the real cwsandboxd: many in flight, waits with deadlines, sets, callbacks, the
 * fd + cws_client_process() integration with poll(), and a daemon that dies mid-operation. */
#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_test.h"

#define MANY 500

static struct ct_env env;

static void setup(void)
{
    ct_env_setup(&env);
}

static void teardown(void)
{
    ct_env_teardown(&env);
}

static cws_op *status_op(cws_client *c)
{
    struct cws_error err;
    cws_op *op = NULL;
    ck_assert_int_eq(cws_client_status(c, &op, &err), 0);
    ck_assert_ptr_nonnull(op);
    return op;
}

START_TEST(test_many_in_flight)
{
    struct cws_error err;
    static cws_op *ops[MANY];
    cws_client *c = ct_connect();
    for (int i = 0; i < MANY; i++)
        ops[i] = status_op(c);
    ck_assert_uint_eq(cws_client_ops_in_flight(c), MANY);
    ck_assert_int_eq(cws_op_wait_all(ops, MANY, 20000, &err), 0);
    ck_assert_uint_eq(cws_client_ops_in_flight(c), 0);
    for (int i = 0; i < MANY; i++) {
        ck_assert(cws_op_done(ops[i]));
        ck_assert_ptr_null(cws_op_error(ops[i]));
        ck_assert_ptr_nonnull(cws_op_daemon_status(ops[i]));
        cws_op_free(ops[i]);
    }
    cws_client_free(c);
}
END_TEST

START_TEST(test_wait_deadlines_with_a_stopped_daemon)
{
    struct cws_error err;
    cws_client *c = ct_connect();
    pid_t daemon = (pid_t)cws_client_daemon(c)->pid;
    ck_assert_int_eq(kill(daemon, SIGSTOP), 0);

    cws_op *ops[2] = {status_op(c), status_op(c)};
    long long t0 = ct_now_ms();
    ck_assert_int_eq(cws_op_wait(ops[0], 200, &err), -CWS_E_DEADLINE_EXCEEDED);
    long long waited = ct_now_ms() - t0;
    ck_assert_int_ge(waited, 190);
    ck_assert_int_lt(waited, 2000);
    ck_assert(!cws_op_done(ops[0]));
    ck_assert_ptr_null(cws_op_error(ops[0]));
    ck_assert_ptr_nonnull(strstr(err.message, "still in flight"));

    size_t index = 99;
    ck_assert_int_eq(cws_op_wait_any(ops, 2, 100, &index, &err), -CWS_E_DEADLINE_EXCEEDED);
    ck_assert_uint_eq(index, 99);
    ck_assert_int_eq(cws_op_wait_all(ops, 2, 0, &err), -CWS_E_DEADLINE_EXCEEDED);

    /* A timed-out wait does not end the op: it finishes once the daemon runs again. */
    ck_assert_int_eq(kill(daemon, SIGCONT), 0);
    ck_assert_int_eq(cws_op_wait_any(ops, 2, 5000, &index, &err), 0);
    ck_assert_uint_lt(index, 2);
    ck_assert_int_eq(cws_op_wait(ops[0], 5000, &err), 0);
    ck_assert_int_eq(cws_op_wait_all(ops, 2, 5000, &err), 0);
    cws_op_free(ops[0]);
    cws_op_free(ops[1]);
    cws_client_free(c);
}
END_TEST

START_TEST(test_wait_set_arguments)
{
    struct cws_error err;
    size_t index = 0;
    ck_assert_int_eq(cws_op_wait_any(NULL, 0, 10, &index, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_op_wait_all(NULL, 0, 10, &err), 0);
    ck_assert_int_eq(cws_op_wait(NULL, 10, &err), -CWS_E_INVALID_ARGUMENT);
}
END_TEST

struct tally {
    int done;
    int failed;
    enum cws_errcode last;
};

static void count_done(cws_op *op, void *userdata)
{
    struct tally *t = userdata;
    const struct cws_error *e = cws_op_error(op);
    t->done++;
    if (e) {
        t->failed++;
        t->last = e->code;
    }
}

START_TEST(test_poll_integration)
{
    struct cws_error err;
    struct tally t = {0};
    cws_op *ops[50];
    cws_client *c = ct_connect();
    for (int i = 0; i < 50; i++) {
        ops[i] = status_op(c);
        cws_op_set_done_callback(ops[i], count_done, &t);
    }
    long long until = ct_now_ms() + 10000;
    while (t.done < 50 && ct_now_ms() < until) {
        struct pollfd p = {.fd = cws_client_fd(c), .events = POLLIN};
        if (cws_client_want_write(c))
            p.events |= POLLOUT;
        ck_assert_int_ge(poll(&p, 1, 1000), 0);
        ck_assert_int_eq(cws_client_process(c, &err), 0);
    }
    ck_assert_int_eq(t.done, 50);
    ck_assert_int_eq(t.failed, 0);
    /* Processing with nothing to do returns at once. */
    long long t0 = ct_now_ms();
    ck_assert_int_eq(cws_client_process(c, &err), 0);
    ck_assert_int_lt(ct_now_ms() - t0, 100);
    ck_assert(!cws_client_want_write(c));
    ck_assert_uint_eq(cws_client_pending_bytes(c), 0);
    /* A callback set on a finished op runs at once. */
    cws_op_set_done_callback(ops[0], count_done, &t);
    ck_assert_int_eq(t.done, 51);
    for (int i = 0; i < 50; i++)
        cws_op_free(ops[i]);
    cws_client_free(c);
}
END_TEST

static void free_in_callback(cws_op *op, void *userdata)
{
    int *calls = userdata;
    (*calls)++;
    cws_op_free(op);
}

START_TEST(test_ops_freed_in_flight_and_in_callbacks)
{
    struct cws_error err;
    int calls = 0;
    cws_client *c = ct_connect();
    cws_op *forgotten = status_op(c);
    cws_op_free(forgotten); /* its response is dropped when it comes */
    cws_op *self_freeing = status_op(c);
    cws_op_set_done_callback(self_freeing, free_in_callback, &calls);
    cws_op *last = status_op(c);
    ck_assert_int_eq(cws_op_wait(last, 5000, &err), 0);
    ck_assert_int_eq(calls, 1);
    ck_assert_uint_eq(cws_client_ops_in_flight(c), 0);
    cws_op_free(last);
    ck_assert_int_eq(cws_client_flush(c, 1000, &err), 0);
    cws_client_free(c);
}
END_TEST

START_TEST(test_daemon_killed_mid_operation)
{
    struct cws_error err;
    struct tally t = {0};
    cws_client *c = ct_connect();
    pid_t daemon = (pid_t)cws_client_daemon(c)->pid;
    ck_assert_int_eq(kill(daemon, SIGSTOP), 0);
    cws_op *a = status_op(c);
    cws_op *b = status_op(c);
    cws_op_set_done_callback(b, count_done, &t);
    ck_assert_int_eq(cws_op_wait(a, 100, &err), -CWS_E_DEADLINE_EXCEEDED);

    ck_assert_int_eq(kill(daemon, SIGKILL), 0);
    long long t0 = ct_now_ms();
    ck_assert_int_eq(cws_op_wait(a, 10000, &err), -CWS_E_UNAVAILABLE);
    ck_assert_int_lt(ct_now_ms() - t0, 5000);
    ck_assert(err.retryable);
    ck_assert_ptr_nonnull(strstr(err.message, "lost the connection"));
    ck_assert(cws_op_done(b));
    ck_assert_int_eq(t.done, 1);
    ck_assert_int_eq(t.last, CWS_E_UNAVAILABLE);

    /* A lost connection refuses new requests at once, and says so in process(). */
    cws_op *op = NULL;
    ck_assert_int_eq(cws_client_status(c, &op, &err), -CWS_E_UNAVAILABLE);
    ck_assert_ptr_null(op);
    ck_assert_int_eq(cws_client_process(c, &err), -CWS_E_UNAVAILABLE);
    ck_assert_int_eq(cws_op_cancel(a, &err), 0); /* finished: nothing to do */
    cws_op_free(a);
    cws_op_free(b);
    cws_client_free(c);

    /* The next connect starts a new daemon. */
    cws_client *again = ct_connect();
    ck_assert_int_ne(cws_client_daemon(again)->pid, daemon);
    cws_client_free(again);
}
END_TEST

START_TEST(test_free_client_with_ops_in_flight)
{
    struct cws_error err;
    struct tally t = {0};
    cws_client *c = ct_connect();
    pid_t daemon = (pid_t)cws_client_daemon(c)->pid;
    ck_assert_int_eq(kill(daemon, SIGSTOP), 0);
    cws_op *a = status_op(c);
    cws_op_set_done_callback(a, count_done, &t);
    cws_client_free(c);
    ck_assert_int_eq(t.done, 1);
    ck_assert_int_eq(t.last, CWS_E_CANCELLED);
    ck_assert(cws_op_done(a));
    ck_assert_int_eq(cws_op_wait(a, 0, &err), -CWS_E_CANCELLED);
    cws_op_free(a);
    kill(daemon, SIGCONT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("client_ops");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_many_in_flight);
    tcase_add_test(tc, test_wait_deadlines_with_a_stopped_daemon);
    tcase_add_test(tc, test_wait_set_arguments);
    tcase_add_test(tc, test_poll_integration);
    tcase_add_test(tc, test_ops_freed_in_flight_and_in_callbacks);
    tcase_add_test(tc, test_daemon_killed_mid_operation);
    tcase_add_test(tc, test_free_client_with_ops_in_flight);
    suite_add_tcase(s, tc);
    return ct_run_suite(s);
}
