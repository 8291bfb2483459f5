/* The sandbox, exec, file, log and session APIs, written against docs/protocol.md and
 * docs/sessions.md. They run against the daemon named by $CWSC_TEST_DAEMON (the real
 * cwsandboxd, which starts the real cwsandbox-local). Select a group with
 * CK_RUN_CASE=sandbox|exec|files|logs|sessions. */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client_test.h"

#define WAIT_MS        60000
#define MiB            (1024 * 1024)
#define ORPHAN_GRACE_S 5 /* the daemon's default orphan_grace_s */

static struct ct_env env;
static cws_client *client;
static char sandbox_id[128];
static char tag[64];

/* ---- helpers ---- */

static void wait_ok(cws_op *op)
{
    struct cws_error err;
    int r = cws_op_wait(op, WAIT_MS, &err);
    ck_assert_msg(r == 0, "%s: %s: %s", cws_op_method(op), cws_errcode_name(err.code), err.message);
}

/* Start a sandbox (tagged with this test's tag) and wait until it runs. The caller frees. */
static struct cws_sandbox_info *run_sandbox(const char *const *command)
{
    struct cws_error err;
    struct cws_sandbox_info *info = NULL;
    cws_sandbox_config *cfg = NULL;
    ck_assert_int_eq(cws_sandbox_config_new(&cfg), 0);
    cws_sandbox_config_add_tag(cfg, tag);
    if (command)
        cws_sandbox_config_set_command(cfg, command);
    int r = cws_sandbox_run(client, cfg, NULL, &info, &err);
    ck_assert_msg(r == 0, "run: %s: %s", cws_errcode_name(err.code), err.message);
    cws_sandbox_config_free(cfg);
    return info;
}

static void stop_quietly(const char *id)
{
    cws_op *op = NULL;
    struct cws_stop_options o = {.missing_ok = true};
    if (cws_sandbox_stop(client, id, &o, &op, NULL) == 0)
        cws_op_wait(op, WAIT_MS, NULL);
    cws_op_free(op);
}

static void setup(void)
{
    ct_env_setup(&env);
    snprintf(tag, sizeof(tag), "cwsc-test-%d", (int)getpid());
    client = ct_connect();
    struct cws_sandbox_info *info = run_sandbox(NULL);
    snprintf(sandbox_id, sizeof(sandbox_id), "%s", info->id);
    cws_sandbox_info_free(info);
}

/* Files the tests wrote: a real sandbox drops them when it stops, but say it anyway. */
static void remove_test_files(void)
{
    char script[128];
    cws_op *op = NULL;
    snprintf(script, sizeof(script), "rm -f /tmp/cwsc-%d-*", (int)getpid());
    const char *argv[] = {"sh", "-c", script, NULL};
    if (cws_exec(client, sandbox_id, argv, NULL, &op, NULL) == 0)
        cws_op_wait(op, WAIT_MS, NULL);
    cws_op_free(op);
}

static void teardown(void)
{
    if (client) {
        remove_test_files();
        stop_quietly(sandbox_id);
        cws_client_free(client);
        client = NULL;
    }
    ct_env_teardown(&env);
}

/* Run argv with opts and wait; the caller frees the op. */
static cws_op *exec_wait(const char *const *argv, const struct cws_exec_options *opts)
{
    struct cws_error err;
    cws_op *op = NULL;
    ck_assert_int_eq(cws_exec(client, sandbox_id, argv, opts, &op, &err), 0);
    wait_ok(op);
    return op;
}

static bool has_tag(const struct cws_sandbox_info *info, const char *t)
{
    for (size_t i = 0; i < info->n_tags; i++)
        if (strcmp(info->tags[i], t) == 0)
            return true;
    return false;
}

static void path_for(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "/tmp/cwsc-%d-%s", (int)getpid(), name);
}

/* ---- sandbox ---- */

START_TEST(test_create_get_list)
{
    struct cws_error err;
    cws_op *op = NULL;
    ck_assert_int_eq(cws_sandbox_get(client, sandbox_id, false, &op, &err), 0);
    wait_ok(op);
    const struct cws_sandbox_info *info = cws_op_sandbox(op);
    ck_assert_str_eq(info->id, sandbox_id);
    ck_assert_int_eq(info->state, CWS_STATE_RUNNING);
    ck_assert(has_tag(info, tag));
    ck_assert_str_eq(info->owner, "client");
    ck_assert_int_gt(info->created_ms, 0);
    cws_op_free(op);

    ck_assert_int_eq(cws_sandbox_get(client, sandbox_id, true, &op, &err), 0);
    wait_ok(op);
    ck_assert_str_eq(cws_op_sandbox(op)->id, sandbox_id);
    cws_op_free(op);

    const char *tags[] = {tag, NULL};
    struct cws_list_options lo = {.tags = tags};
    ck_assert_int_eq(cws_sandbox_list(client, &lo, &op, &err), 0);
    wait_ok(op);
    size_t n = 0;
    const struct cws_sandbox_info *list = cws_op_sandboxes(op, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(list[0].id, sandbox_id);
    cws_op_free(op);

    const char *none[] = {"cwsc-no-such-tag", NULL};
    lo.tags = none;
    ck_assert_int_eq(cws_sandbox_list(client, &lo, &op, &err), 0);
    wait_ok(op);
    ck_assert_ptr_nonnull(cws_op_sandboxes(op, &n));
    ck_assert_uint_eq(n, 0);
    cws_op_free(op);
}
END_TEST

START_TEST(test_unknown_sandbox)
{
    struct cws_error err;
    cws_op *op = NULL;
    ck_assert_int_eq(cws_sandbox_get(client, "sbx-cwsc-does-not-exist", false, &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, WAIT_MS, &err), -CWS_E_NOT_FOUND);
    ck_assert(!err.retryable);
    ck_assert_ptr_null(cws_op_sandbox(op));
    cws_op_free(op);

    struct cws_stop_options missing_ok = {.missing_ok = true};
    ck_assert_int_eq(cws_sandbox_stop(client, "sbx-cwsc-does-not-exist", &missing_ok, &op, &err),
                     0);
    wait_ok(op);
    cws_op_free(op);
    ck_assert_int_eq(cws_sandbox_stop(client, "sbx-cwsc-does-not-exist", NULL, &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, WAIT_MS, &err), -CWS_E_NOT_FOUND);
    cws_op_free(op);
    ck_assert_int_eq(cws_sandbox_delete(client, "sbx-cwsc-does-not-exist", true, &op, &err), 0);
    wait_ok(op);
    cws_op_free(op);
}
END_TEST

START_TEST(test_wait_until_complete)
{
    struct cws_error err;
    cws_op *op = NULL;
    const char *cmd[] = {"sh", "-c", "sleep 0.5; exit 7", NULL};
    struct cws_sandbox_info *sb = run_sandbox(cmd);
    ck_assert_int_eq(cws_sandbox_wait(client, sb->id, 30, &op, &err), 0);
    wait_ok(op); /* running, or already completed */
    cws_op_free(op);
    ck_assert_int_eq(cws_sandbox_wait_until_complete(client, sb->id, 30, &op, &err), 0);
    wait_ok(op);
    const struct cws_sandbox_info *done = cws_op_sandbox(op);
    ck_assert(cws_sandbox_state_is_terminal(done->state));
    ck_assert(done->has_exit_code);
    ck_assert_int_eq(done->exit_code, 7);
    cws_op_free(op);
    cws_sandbox_info_free(sb);
}
END_TEST

START_TEST(test_stop_and_delete)
{
    struct cws_error err;
    cws_op *op = NULL;
    struct cws_sandbox_info *sb = run_sandbox(NULL);
    struct cws_stop_options o = {.grace_s = 2};
    ck_assert_int_eq(cws_sandbox_stop(client, sb->id, &o, &op, &err), 0);
    wait_ok(op);
    ck_assert(cws_sandbox_state_is_terminal(cws_op_sandbox(op)->state));
    cws_op_free(op);
    /* A stopped sandbox stays readable. */
    ck_assert_int_eq(cws_sandbox_get(client, sb->id, false, &op, &err), 0);
    wait_ok(op);
    ck_assert(cws_sandbox_state_is_terminal(cws_op_sandbox(op)->state));
    cws_op_free(op);
    cws_sandbox_info_free(sb);

    sb = run_sandbox(NULL);
    ck_assert_int_eq(cws_sandbox_delete(client, sb->id, false, &op, &err), 0);
    wait_ok(op);
    ck_assert_ptr_null(cws_op_sandbox(op)); /* delete has no result */
    cws_op_free(op);
    cws_sandbox_info_free(sb);
}
END_TEST

START_TEST(test_purge_by_tag)
{
    struct cws_error err;
    cws_op *op = NULL;
    char purge_tag[80];
    snprintf(purge_tag, sizeof(purge_tag), "%s-purge", tag);
    cws_sandbox_config *cfg = NULL;
    cws_sandbox_config_new(&cfg);
    cws_sandbox_config_add_tag(cfg, purge_tag);
    cws_op *creates[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(cws_sandbox_create(client, cfg, NULL, &creates[i], &err), 0);
    ck_assert_int_eq(cws_op_wait_all(creates, 2, WAIT_MS, &err), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_ptr_nonnull(cws_op_sandbox(creates[i]));
        cws_op_free(creates[i]);
    }
    cws_sandbox_config_free(cfg);

    const char *tags[] = {purge_tag, NULL};
    ck_assert_int_eq(cws_sandbox_purge(client, tags, true, &op, &err), 0);
    wait_ok(op);
    ck_assert_uint_eq(cws_op_batch_result(op)->count, 2);
    ck_assert_uint_eq(cws_op_batch_result(op)->n_failed, 0);
    cws_op_free(op);
    ck_assert_int_eq(cws_sandbox_purge(client, tags, false, &op, &err), 0);
    wait_ok(op);
    ck_assert_uint_eq(cws_op_batch_result(op)->count, 2);
    cws_op_free(op);
}
END_TEST

START_TEST(test_request_id_is_idempotent)
{
    struct cws_error err;
    char request_id[64];
    cws_op *ops[2];
    snprintf(request_id, sizeof(request_id), "cwsc-req-%d", (int)getpid());
    struct cws_create_options o = {.request_id = request_id, .wait_running = true};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(cws_sandbox_create(client, NULL, &o, &ops[i], &err), 0);
        wait_ok(ops[i]);
    }
    ck_assert_str_eq(cws_op_sandbox(ops[0])->id, cws_op_sandbox(ops[1])->id);
    stop_quietly(cws_op_sandbox(ops[0])->id);
    cws_op_free(ops[0]);
    cws_op_free(ops[1]);
}
END_TEST

START_TEST(test_info_outlives_its_op)
{
    struct cws_error err;
    cws_op *op = NULL;
    struct cws_sandbox_info *copy = NULL;
    ck_assert_int_eq(cws_sandbox_get(client, sandbox_id, false, &op, &err), 0);
    wait_ok(op);
    ck_assert_int_eq(cws_sandbox_info_dup(cws_op_sandbox(op), &copy), 0);
    cws_op_free(op);
    ck_assert_str_eq(copy->id, sandbox_id);
    ck_assert(has_tag(copy, tag));
    cws_sandbox_info_free(copy);
}
END_TEST

/* ---- exec ---- */

static void assert_output(const struct cws_exec_result *res, const char *out, const char *errs)
{
    ck_assert_uint_eq(res->stdout_len, strlen(out));
    ck_assert(memcmp(res->stdout_data, out, res->stdout_len) == 0);
    ck_assert_uint_eq(res->stderr_len, strlen(errs));
    ck_assert(memcmp(res->stderr_data, errs, res->stderr_len) == 0);
}

START_TEST(test_exec_buffered)
{
    const char *echo[] = {"echo", "hello", NULL};
    cws_op *op = exec_wait(echo, NULL);
    const struct cws_exec_result *res = cws_op_exec_result(op);
    ck_assert_int_eq(res->exit_code, 0);
    assert_output(res, "hello\n", "");
    ck_assert_int_ge(res->duration_ms, 0);
    cws_op_free(op);

    const char *fails[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    op = exec_wait(fails, NULL); /* a non-zero exit is a result */
    ck_assert_int_eq(cws_op_exec_result(op)->exit_code, 3);
    assert_output(cws_op_exec_result(op), "out\n", "err\n");
    cws_op_free(op);
}
END_TEST

START_TEST(test_exec_check)
{
    struct cws_error err;
    cws_op *op = NULL;
    const char *fails[] = {"sh", "-c", "exit 4", NULL};
    struct cws_exec_options o = {.check = true};
    ck_assert_int_eq(cws_exec(client, sandbox_id, fails, &o, &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, WAIT_MS, &err), -CWS_E_ABORTED);
    ck_assert_str_eq(err.reason, CWS_REASON_EXEC_NONZERO_EXIT);
    ck_assert_ptr_nonnull(strstr(err.message, "4"));
    ck_assert_ptr_nonnull(cws_op_exec_result(op)); /* the result stays attached */
    ck_assert_int_eq(cws_op_exec_result(op)->exit_code, 4);
    cws_op_free(op);
}
END_TEST

START_TEST(test_exec_cwd_and_env)
{
    const char *pwd[] = {"pwd", NULL};
    struct cws_exec_options in_tmp = {.cwd = "/tmp"};
    cws_op *op = exec_wait(pwd, &in_tmp);
    assert_output(cws_op_exec_result(op), "/tmp\n", "");
    cws_op_free(op);

    const char *env_vars[] = {"CWSC_FOO=bar baz", "CWSC_EMPTY=", NULL};
    const char *show[] = {"sh", "-c", "echo \"$CWSC_FOO|$CWSC_EMPTY|\"", NULL};
    struct cws_exec_options with_env = {.env = env_vars};
    op = exec_wait(show, &with_env);
    assert_output(cws_op_exec_result(op), "bar baz||\n", "");
    cws_op_free(op);
}
END_TEST

struct collected {
    char out[4096];
    size_t out_len;
    char err[4096];
    size_t err_len;
    int chunks;
};

static void collect(cws_op *op, int fd, const void *data, size_t len, void *userdata)
{
    struct collected *c = userdata;
    char *buf = fd == CWS_STDOUT ? c->out : c->err;
    size_t *n = fd == CWS_STDOUT ? &c->out_len : &c->err_len;
    (void)op;
    ck_assert_uint_le(*n + len, sizeof(c->out));
    memcpy(buf + *n, data, len);
    *n += len;
    c->chunks++;
}

START_TEST(test_exec_streaming_callback)
{
    struct collected got = {.out_len = 0};
    const char *argv[] = {"sh", "-c", "for i in 1 2 3; do echo $i; echo e$i >&2; sleep 0.1; done",
                          NULL};
    struct cws_exec_options o = {.on_output = collect, .userdata = &got};
    cws_op *op = exec_wait(argv, &o);
    ck_assert_int_eq(cws_op_exec_result(op)->exit_code, 0);
    ck_assert_uint_eq(cws_op_exec_result(op)->stdout_len, 0); /* streamed: not in the result */
    ck_assert_int_ge(got.chunks, 2);
    ck_assert_uint_eq(got.out_len, 6);
    ck_assert(memcmp(got.out, "1\n2\n3\n", 6) == 0);
    ck_assert_uint_eq(got.err_len, 9);
    ck_assert(memcmp(got.err, "e1\ne2\ne3\n", 9) == 0);
    cws_op_free(op);
}
END_TEST

/* Read a stream to its end with the pull reader. */
static size_t read_all(cws_op *op, int fd, char *buf, size_t size)
{
    struct cws_error err;
    size_t total = 0;
    for (;;) {
        ssize_t n = cws_exec_read(op, fd, buf + total, size - total, WAIT_MS, &err);
        ck_assert_msg(n >= 0, "read: %s", err.message);
        if (n == 0)
            return total;
        total += (size_t)n;
    }
}

START_TEST(test_exec_pull_reader)
{
    struct cws_error err;
    cws_op *op = NULL;
    char out[256], errs[256];
    const char *argv[] = {"sh", "-c", "echo out1; echo err1 >&2; sleep 0.2; echo out2", NULL};
    struct cws_exec_options o = {.stream = true};
    ck_assert_int_eq(cws_exec(client, sandbox_id, argv, &o, &op, &err), 0);
    size_t n_out = read_all(op, CWS_STDOUT, out, sizeof(out));
    size_t n_err = read_all(op, CWS_STDERR, errs, sizeof(errs));
    ck_assert_uint_eq(n_out, 10);
    ck_assert(memcmp(out, "out1\nout2\n", 10) == 0);
    ck_assert_uint_eq(n_err, 5);
    ck_assert(memcmp(errs, "err1\n", 5) == 0);
    wait_ok(op);
    ck_assert_int_eq(cws_exec_read(op, CWS_STDOUT, out, sizeof(out), 0, &err), 0);
    ck_assert_int_eq(cws_exec_read(op, 3, out, sizeof(out), 0, &err), -CWS_E_INVALID_ARGUMENT);
    cws_op_free(op);

    /* No reader without stream. */
    const char *t[] = {"true", NULL};
    op = exec_wait(t, NULL);
    ck_assert_int_eq(cws_exec_read(op, CWS_STDOUT, out, 1, 0, &err), -CWS_E_INVALID_ARGUMENT);
    cws_op_free(op);
}
END_TEST

START_TEST(test_exec_stdin)
{
    struct cws_error err;
    cws_op *op = NULL;
    const char *cat[] = {"cat", NULL};
    struct cws_exec_options o = {.with_stdin = true};
    ck_assert_int_eq(cws_exec(client, sandbox_id, cat, &o, &op, &err), 0);
    /* Written before the command runs: held until exec.ready. */
    ck_assert_int_eq(cws_exec_write(op, "hello ", 6, &err), 0);
    ck_assert_int_eq(cws_exec_write(op, "world\n", 6, &err), 0);
    ck_assert_int_eq(cws_exec_close_stdin(op, &err), 0);
    ck_assert_int_eq(cws_exec_close_stdin(op, &err), 0); /* idempotent */
    ck_assert_int_eq(cws_exec_write(op, "x", 1, &err), -CWS_E_FAILED_PRECONDITION);
    wait_ok(op);
    assert_output(cws_op_exec_result(op), "hello world\n", "");
    ck_assert_int_eq(cws_exec_write(op, "x", 1, &err), -CWS_E_FAILED_PRECONDITION);
    cws_op_free(op);

    /* stdin on an exec opened without it */
    const char *t[] = {"true", NULL};
    ck_assert_int_eq(cws_exec(client, sandbox_id, t, NULL, &op, &err), 0);
    ck_assert_int_eq(cws_exec_write(op, "x", 1, &err), -CWS_E_FAILED_PRECONDITION);
    wait_ok(op);
    cws_op_free(op);
}
END_TEST

START_TEST(test_exec_large_stdin)
{
    struct cws_error err;
    cws_op *op = NULL;
    size_t size = 3 * MiB + 17;
    char *data = malloc(size);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < size; i++)
        data[i] = (char)('a' + i % 26);
    const char *wc[] = {"sh", "-c", "wc -c | tr -d ' '", NULL};
    struct cws_exec_options o = {.with_stdin = true};
    ck_assert_int_eq(cws_exec(client, sandbox_id, wc, &o, &op, &err), 0);
    ck_assert_int_eq(cws_exec_write(op, data, size, &err), 0);
    free(data); /* copied */
    ck_assert_int_eq(cws_exec_close_stdin(op, &err), 0);
    wait_ok(op);
    char expect[32];
    snprintf(expect, sizeof(expect), "%zu\n", size);
    assert_output(cws_op_exec_result(op), expect, "");
    cws_op_free(op);
}
END_TEST

START_TEST(test_exec_timeout)
{
    struct cws_error err;
    cws_op *op = NULL;
    const char *sleep30[] = {"sleep", "30", NULL};
    struct cws_exec_options o = {.timeout_s = 1};
    long long t0 = ct_now_ms();
    ck_assert_int_eq(cws_exec(client, sandbox_id, sleep30, &o, &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, WAIT_MS, &err), -CWS_E_DEADLINE_EXCEEDED);
    ck_assert(cws_op_done(op));
    ck_assert_int_lt(ct_now_ms() - t0, 15000);
    cws_op_free(op);
}
END_TEST

START_TEST(test_exec_cancel)
{
    struct cws_error err;
    cws_op *op = NULL;
    const char *sleep30[] = {"sleep", "30", NULL};
    long long t0 = ct_now_ms();
    ck_assert_int_eq(cws_exec(client, sandbox_id, sleep30, NULL, &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, 300, &err), -CWS_E_DEADLINE_EXCEEDED);
    ck_assert_int_eq(cws_op_cancel(op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, WAIT_MS, &err), -CWS_E_CANCELLED);
    ck_assert_int_lt(ct_now_ms() - t0, 15000);
    cws_op_free(op);
}
END_TEST

START_TEST(test_exec_freed_in_flight_is_cancelled)
{
    struct cws_error err;
    cws_op *op = NULL;
    const char *sleep30[] = {"sleep", "30", NULL};
    ck_assert_int_eq(cws_client_status(client, &op, &err), 0);
    wait_ok(op);
    uint64_t before = cws_op_daemon_status(op)->calls_in_flight;
    cws_op_free(op);
    ck_assert_int_eq(cws_exec(client, sandbox_id, sleep30, NULL, &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, 300, &err), -CWS_E_DEADLINE_EXCEEDED);
    cws_op_free(op);
    uint64_t now = before + 1;
    for (long long until = ct_now_ms() + 10000; now > before && ct_now_ms() < until;) {
        ck_assert_int_eq(cws_client_status(client, &op, &err), 0);
        wait_ok(op);
        now = cws_op_daemon_status(op)->calls_in_flight;
        cws_op_free(op);
        usleep(50000);
    }
    ck_assert_uint_le(now, before);
}
END_TEST

/* Read a tty's output until it holds text. */
static void read_until(cws_op *op, char *buf, size_t size, size_t *len, const char *text)
{
    struct cws_error err;
    while (!memmem(buf, *len, text, strlen(text))) {
        ssize_t n = cws_exec_read(op, CWS_STDOUT, buf + *len, size - *len, WAIT_MS, &err);
        ck_assert_msg(n > 0, "no '%s' in '%.*s' (%s)", text, (int)*len, buf, err.message);
        *len += (size_t)n;
    }
}

START_TEST(test_exec_tty_with_resize)
{
    struct cws_error err;
    cws_op *op = NULL;
    char out[4096];
    size_t len = 0;
    const char *argv[] = {"sh", "-c", "stty size; read x; stty size", NULL};
    struct cws_exec_options o = {
        .tty = true, .cols = 80, .rows = 24, .stream = true, .with_stdin = true};
    ck_assert_int_eq(cws_exec(client, sandbox_id, argv, &o, &op, &err), 0);
    read_until(op, out, sizeof(out), &len, "24 80");
    ck_assert_int_eq(cws_exec_resize(op, 100, 40, &err), 0);
    ck_assert_int_eq(cws_exec_resize(op, 0, 40, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_exec_write(op, "go\n", 3, &err), 0);
    read_until(op, out, sizeof(out), &len, "40 100");
    wait_ok(op);
    ck_assert_int_eq(cws_op_exec_result(op)->exit_code, 0);
    ck_assert_int_eq(cws_exec_resize(op, 100, 40, &err), -CWS_E_FAILED_PRECONDITION);
    cws_op_free(op);

    const char *t[] = {"true", NULL};
    op = exec_wait(t, NULL);
    ck_assert_int_eq(cws_exec_resize(op, 100, 40, &err), -CWS_E_FAILED_PRECONDITION);
    cws_op_free(op);
}
END_TEST

START_TEST(test_exec_many_in_parallel)
{
    struct cws_error err;
    cws_op *ops[20];
    char args[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(args[i], sizeof(args[i]), "n%d", i);
        const char *argv[] = {"echo", args[i], NULL};
        ck_assert_int_eq(cws_exec(client, sandbox_id, argv, NULL, &ops[i], &err), 0);
    }
    ck_assert_int_eq(cws_op_wait_all(ops, 20, WAIT_MS, &err), 0);
    for (int i = 0; i < 20; i++) {
        char expect[20];
        snprintf(expect, sizeof(expect), "n%d\n", i);
        ck_assert_ptr_null(cws_op_error(ops[i]));
        assert_output(cws_op_exec_result(ops[i]), expect, "");
        cws_op_free(ops[i]);
    }
}
END_TEST

START_TEST(test_exec_in_unknown_sandbox)
{
    struct cws_error err;
    cws_op *op = NULL;
    const char *t[] = {"true", NULL};
    ck_assert_int_eq(cws_exec(client, "sbx-cwsc-does-not-exist", t, NULL, &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, WAIT_MS, &err), -CWS_E_NOT_FOUND);
    ck_assert_ptr_null(cws_op_exec_result(op));
    cws_op_free(op);
}
END_TEST

/* ---- files ---- */

static cws_op *write_file(const char *path, const void *data, size_t len)
{
    struct cws_error err;
    cws_op *op = NULL;
    ck_assert_int_eq(cws_file_write(client, sandbox_id, path, data, len, &op, &err), 0);
    wait_ok(op);
    ck_assert_int_eq(cws_op_file_size(op), (int64_t)len);
    return op;
}

static void assert_file(const char *path, const void *data, size_t len)
{
    struct cws_error err;
    cws_op *op = NULL;
    size_t got = 0;
    ck_assert_int_eq(cws_file_read(client, sandbox_id, path, &op, &err), 0);
    wait_ok(op);
    const void *p = cws_op_file_data(op, &got);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(got, len);
    ck_assert(memcmp(p, data, len) == 0);
    ck_assert_int_eq(cws_op_file_size(op), (int64_t)len);
    cws_op_free(op);
}

static char *pattern(size_t size)
{
    char *data = malloc(size);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < size; i++)
        data[i] = (char)(i * 7 + i / 4096);
    return data;
}

START_TEST(test_file_roundtrip)
{
    char path[128];
    path_for(path, sizeof(path), "small");
    cws_op_free(write_file(path, "hello, file\n", 12));
    assert_file(path, "hello, file\n", 12);
    path_for(path, sizeof(path), "empty");
    cws_op_free(write_file(path, "", 0));
    assert_file(path, "", 0);
    /* The file is really there for commands. */
    path_for(path, sizeof(path), "small");
    const char *cat[] = {"cat", path, NULL};
    cws_op *op = exec_wait(cat, NULL);
    assert_output(cws_op_exec_result(op), "hello, file\n", "");
    cws_op_free(op);
}
END_TEST

START_TEST(test_file_large_streamed)
{
    char path[128];
    size_t size = 20 * MiB + 123; /* above the inline limit: streamed both ways */
    char *data = pattern(size);
    path_for(path, sizeof(path), "large");
    cws_op_free(write_file(path, data, size));
    assert_file(path, data, size);
    free(data);
}
END_TEST

START_TEST(test_file_errors)
{
    struct cws_error err;
    cws_op *op = NULL;
    ck_assert_int_eq(cws_file_read(client, sandbox_id, "/cwsc/no/such/file", &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, WAIT_MS, &err), -CWS_E_NOT_FOUND);
    ck_assert_str_eq(err.reason, "CWSANDBOX_FILE_NOT_FOUND");
    ck_assert_ptr_null(cws_op_file_data(op, NULL));
    ck_assert_int_eq(cws_op_file_size(op), -1);
    cws_op_free(op);
    ck_assert_int_eq(cws_file_read(client, sandbox_id, "/tmp", &op, &err), 0);
    ck_assert_int_lt(cws_op_wait(op, WAIT_MS, &err), 0);
    cws_op_free(op);
}
END_TEST

START_TEST(test_file_parallel_reads)
{
    struct cws_error err;
    cws_op *ops[10];
    char path[128], name[16], text[32];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        path_for(path, sizeof(path), name);
        snprintf(text, sizeof(text), "content %d", i);
        ck_assert_int_eq(
            cws_file_write(client, sandbox_id, path, text, strlen(text), &ops[i], &err), 0);
    }
    ck_assert_int_eq(cws_op_wait_all(ops, 10, WAIT_MS, &err), 0);
    for (int i = 0; i < 10; i++) {
        ck_assert_ptr_null(cws_op_error(ops[i]));
        cws_op_free(ops[i]);
        snprintf(name, sizeof(name), "p%d", i);
        path_for(path, sizeof(path), name);
        ck_assert_int_eq(cws_file_read(client, sandbox_id, path, &ops[i], &err), 0);
    }
    ck_assert_int_eq(cws_op_wait_all(ops, 10, WAIT_MS, &err), 0);
    for (int i = 0; i < 10; i++) {
        size_t len = 0;
        void *data = NULL;
        snprintf(text, sizeof(text), "content %d", i);
        ck_assert_int_eq(cws_op_file_take_data(ops[i], &data, &len, &err), 0);
        ck_assert_uint_eq(len, strlen(text));
        ck_assert(memcmp(data, text, len) == 0);
        free(data);
        cws_op_free(ops[i]);
    }
}
END_TEST

START_TEST(test_file_to_and_from_fd)
{
    struct cws_error err;
    cws_op *op = NULL;
    char path[128], local[] = "/tmp/cwsc-local-XXXXXX", back[] = "/tmp/cwsc-back-XXXXXX";
    size_t size = 3 * MiB + 5;
    char *data = pattern(size);
    int fd = mkstemp(local);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    path_for(path, sizeof(path), "from-fd");
    ck_assert_int_eq(cws_file_write_from_fd(client, sandbox_id, path, fd, &op, &err), 0);
    wait_ok(op);
    ck_assert_int_eq(cws_op_file_size(op), (int64_t)size);
    cws_op_free(op);
    close(fd);
    unlink(local);

    int out = mkstemp(back);
    ck_assert_int_ge(out, 0);
    ck_assert_int_eq(cws_file_read_to_fd(client, sandbox_id, path, out, &op, &err), 0);
    wait_ok(op);
    ck_assert_int_eq(cws_op_file_size(op), (int64_t)size);
    ck_assert_ptr_null(cws_op_file_data(op, NULL)); /* it went to the fd */
    cws_op_free(op);
    char *got = malloc(size);
    ck_assert_int_eq(pread(out, got, size, 0), (ssize_t)size);
    ck_assert(memcmp(got, data, size) == 0);
    close(out);
    unlink(back);
    free(got);
    free(data);
}
END_TEST

struct chunk_count {
    size_t bytes;
    int chunks;
    int stop_after;
};

static int count_chunks(cws_op *op, const void *data, size_t len, uint64_t offset, void *userdata)
{
    struct chunk_count *c = userdata;
    (void)op;
    (void)data;
    ck_assert_uint_eq(offset, c->bytes);
    c->bytes += len;
    c->chunks++;
    return c->stop_after && c->chunks >= c->stop_after ? -CWS_E_ABORTED : 0;
}

START_TEST(test_file_read_stream)
{
    struct cws_error err;
    cws_op *op = NULL;
    char path[128];
    size_t size = 5 * MiB;
    char *data = pattern(size);
    path_for(path, sizeof(path), "stream");
    cws_op_free(write_file(path, data, size));
    free(data);

    struct chunk_count all = {0, 0, 0};
    ck_assert_int_eq(cws_file_read_stream(client, sandbox_id, path, count_chunks, &all, &op, &err),
                     0);
    wait_ok(op);
    ck_assert_uint_eq(all.bytes, size);
    ck_assert_int_ge(all.chunks, 2);
    cws_op_free(op);

    /* A callback that refuses stops the transfer with its code. */
    struct chunk_count first = {0, 0, 1};
    ck_assert_int_eq(
        cws_file_read_stream(client, sandbox_id, path, count_chunks, &first, &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, WAIT_MS, &err), -CWS_E_ABORTED);
    ck_assert_int_eq(first.chunks, 1);
    cws_op_free(op);
}
END_TEST

/* ---- logs ---- */

/* The whole current log of id (not following). The caller frees. */
static char *current_log(const char *id, const struct cws_logs_options *opts, size_t *ret_len)
{
    struct cws_error err;
    cws_op *op = NULL;
    char *buf = malloc(65536);
    size_t len = 0;
    ssize_t n = 0;
    ck_assert_int_eq(cws_logs(client, id, opts, &op, &err), 0);
    while ((n = cws_logs_read(op, buf + len, 65535 - len, WAIT_MS, &err)) > 0)
        len += (size_t)n;
    ck_assert_msg(n == 0, "logs: %s", err.message);
    wait_ok(op);
    cws_op_free(op);
    buf[len] = '\0';
    *ret_len = len;
    return buf;
}

/* Wait until the main process's output has reached the log. */
static char *log_with(const char *id, const char *text, size_t *len)
{
    for (long long until = ct_now_ms() + 20000;; usleep(100000)) {
        char *log = current_log(id, NULL, len);
        if (strstr(log, text) || ct_now_ms() > until)
            return log;
        free(log);
    }
}

struct log_got {
    char buf[4096];
    size_t len;
    int64_t last_time;
};

static void on_log(cws_op *op, const void *data, size_t len, int64_t time_ms, void *userdata)
{
    struct log_got *g = userdata;
    (void)op;
    if (g->len + len < sizeof(g->buf)) {
        memcpy(g->buf + g->len, data, len);
        g->len += len;
        g->buf[g->len] = '\0';
    }
    g->last_time = time_ms;
}

static bool log_has_two(const void *ud)
{
    return strstr(((const struct log_got *)ud)->buf, "log-two") != NULL;
}

START_TEST(test_logs)
{
    struct cws_error err;
    cws_op *op = NULL;
    size_t len = 0;
    const char *cmd[] = {"sh", "-c", "echo log-one; echo log-two; exec sleep 600", NULL};
    struct cws_sandbox_info *sb = run_sandbox(cmd);

    char *log = log_with(sb->id, "log-two", &len);
    ck_assert_msg(strstr(log, "log-one\nlog-two\n"), "log: '%s'", log);
    free(log);

    struct cws_logs_options tail = {.tail_lines = 1};
    log = current_log(sb->id, &tail, &len);
    ck_assert_msg(strstr(log, "log-two") && !strstr(log, "log-one"), "tail: '%s'", log);
    free(log);

    /* Follow, with timestamps, to a callback; it runs until cancelled. */
    struct log_got got = {.len = 0};
    struct cws_logs_options follow = {
        .follow = true, .timestamps = true, .on_data = on_log, .userdata = &got};
    ck_assert_int_eq(cws_logs(client, sb->id, &follow, &op, &err), 0);
    for (long long until = ct_now_ms() + 20000; !log_has_two(&got) && ct_now_ms() < until;)
        cws_op_wait(op, 100, NULL);
    ck_assert_msg(log_has_two(&got), "followed: '%s'", got.buf);
    ck_assert_int_gt(got.last_time, 0);
    ck_assert(!cws_op_done(op)); /* still following */
    ck_assert_int_eq(cws_logs_read(op, got.buf, 1, 0, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_op_cancel(op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, WAIT_MS, &err), -CWS_E_CANCELLED);
    cws_op_free(op);
    stop_quietly(sb->id);
    cws_sandbox_info_free(sb);
}
END_TEST

/* ---- sessions ---- */

/* A second process joins the session through CWSANDBOX_SESSION and lists its sandboxes. */
static size_t count_from_another_process(const char *session, const char *id)
{
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct cws_error err;
        cws_client *c = NULL;
        cws_op *op = NULL;
        long found = -1;
        setenv("CWSANDBOX_SESSION", session, 1);
        if (cws_client_connect(NULL, &c, &err) == 0 && cws_client_session(c) &&
            strcmp(cws_client_session(c), session) == 0) {
            struct cws_list_options o = {.session = cws_client_session(c)};
            size_t n = 0;
            if (cws_sandbox_list(c, &o, &op, &err) == 0 && cws_op_wait(op, WAIT_MS, &err) == 0) {
                const struct cws_sandbox_info *v = cws_op_sandboxes(op, &n);
                found = 0;
                for (size_t i = 0; i < n; i++)
                    found += strcmp(v[i].id, id) == 0;
            }
        }
        if (write(pfd[1], &found, sizeof(found)) < 0)
            _exit(2);
        _exit(0);
    }
    long found = -1;
    close(pfd[1]);
    ck_assert_int_eq(read(pfd[0], &found, sizeof(found)), (ssize_t)sizeof(found));
    close(pfd[0]);
    waitpid(pid, NULL, 0);
    ck_assert_int_ge(found, 0);
    return (size_t)found;
}

START_TEST(test_session_shared)
{
    struct cws_error err;
    cws_op *op = NULL;
    char name[64];
    snprintf(name, sizeof(name), "cwsc-session-%d", (int)getpid());
    cws_sandbox_config *defaults = NULL;
    cws_sandbox_config_new(&defaults);
    cws_sandbox_config_add_tag(defaults, "from-session-defaults");

    ck_assert_int_eq(cws_session_open(client, name, defaults, 600, &op, &err), 0);
    wait_ok(op);
    ck_assert_str_eq(cws_op_session(op)->name, name);
    ck_assert_str_eq(cws_client_session(client), name);
    cws_op_free(op);
    cws_sandbox_config_free(defaults);

    /* The client is in the session: its sandboxes join it and get its defaults. */
    struct cws_sandbox_info *sb = run_sandbox(NULL);
    ck_assert_str_eq(sb->session, name);
    ck_assert_str_eq(sb->owner, "session");
    ck_assert(has_tag(sb, "from-session-defaults"));
    ck_assert(has_tag(sb, tag));

    ck_assert_int_eq(cws_session_get(client, name, &op, &err), 0);
    wait_ok(op);
    const struct cws_session_info *s = cws_op_session(op);
    ck_assert_uint_ge(s->n_sandboxes, 1);
    bool listed = false;
    for (size_t i = 0; s->sandbox_ids[i]; i++)
        listed = listed || strcmp(s->sandbox_ids[i], sb->id) == 0;
    ck_assert(listed);
    cws_op_free(op);

    ck_assert_int_eq(cws_session_list(client, &op, &err), 0);
    wait_ok(op);
    size_t n = 0;
    const struct cws_session_info *all = cws_op_sessions(op, &n);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found = found || strcmp(all[i].name, name) == 0;
    ck_assert(found);
    cws_op_free(op);

    ck_assert_uint_eq(count_from_another_process(name, sb->id), 1);

    ck_assert_int_eq(cws_session_close(client, name, false, &op, &err), 0);
    ck_assert_ptr_null(cws_client_session(client));
    wait_ok(op);
    ck_assert_uint_ge(cws_op_batch_result(op)->count, 1);
    cws_op_free(op);
    ck_assert_int_eq(cws_session_get(client, name, &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, WAIT_MS, &err), -CWS_E_NOT_FOUND);
    cws_op_free(op);
    cws_sandbox_info_free(sb);
}
END_TEST

START_TEST(test_session_attach)
{
    struct cws_error err;
    cws_op *op = NULL;
    char name[64];
    snprintf(name, sizeof(name), "cwsc-attach-%d", (int)getpid());
    ck_assert_int_eq(cws_session_open(client, name, NULL, 0, &op, &err), 0);
    wait_ok(op);
    cws_op_free(op);
    ck_assert_int_eq(cws_client_set_session(client, NULL, &err), 0);
    ck_assert_ptr_null(cws_client_session(client));
    ck_assert_int_eq(cws_session_attach(client, name, &op, &err), 0);
    wait_ok(op);
    ck_assert_str_eq(cws_client_session(client), name);
    cws_op_free(op);
    ck_assert_int_eq(cws_session_close(client, name, false, &op, &err), 0);
    wait_ok(op);
    cws_op_free(op);
}
END_TEST

/* What a child process of the tests below reports. */
struct child_report {
    int ok;            /* 1 when everything it was asked to do worked */
    char message[256]; /* else why */
    char created[128]; /* the sandbox it created */
};

static void child_send(int fd, const struct child_report *rep)
{
    if (write(fd, rep, sizeof(*rep)) != (ssize_t)sizeof(*rep))
        _exit(2);
}

/* In a child: report a failure ("what: detail") and leave (no Check assertions in there). */
static void child_fail(int fd, struct child_report *rep, const char *what, const char *detail)
{
    snprintf(rep->message, sizeof(rep->message), "%s: %s", what, detail);
    rep->ok = 0;
    child_send(fd, rep);
    _exit(1);
}

/* In a child with CWSANDBOX_SESSION=session: connect (which joins the session), check that
 * `expect` (when not NULL) is among the session's sandboxes and runs a command, then create a
 * sandbox (it joins the session) and report. With hold_fd >= 0, stay connected until it reads
 * EOF. Never returns. */
static void session_child(const char *session, const char *expect, int report_fd, int hold_fd)
{
    struct child_report rep;
    struct cws_error err;
    cws_client *c = NULL;
    cws_op *op = NULL;
    struct cws_sandbox_info *info = NULL;
    cws_sandbox_config *cfg = NULL;
    memset(&rep, 0, sizeof(rep));
    setenv("CWSANDBOX_SESSION", session, 1);
    if (cws_client_connect(NULL, &c, &err) < 0)
        child_fail(report_fd, &rep, "connect", err.message);
    if (!cws_client_session(c) || strcmp(cws_client_session(c), session) != 0)
        child_fail(report_fd, &rep, "the client is not in session", session);
    if (expect) {
        struct cws_list_options o = {.session = session};
        size_t n = 0, found = 0;
        if (cws_sandbox_list(c, &o, &op, &err) < 0 || cws_op_wait(op, WAIT_MS, &err) < 0)
            child_fail(report_fd, &rep, "list", err.message);
        const struct cws_sandbox_info *v = cws_op_sandboxes(op, &n);
        for (size_t i = 0; i < n; i++)
            found += strcmp(v[i].id, expect) == 0;
        cws_op_free(op);
        if (found != 1)
            child_fail(report_fd, &rep, "not listed in the session", expect);
        const char *argv[] = {"sh", "-c", "echo still-here", NULL};
        if (cws_exec(c, expect, argv, NULL, &op, &err) < 0 || cws_op_wait(op, WAIT_MS, &err) < 0)
            child_fail(report_fd, &rep, "exec", err.message);
        const struct cws_exec_result *res = cws_op_exec_result(op);
        if (res->exit_code != 0 || res->stdout_len != 11 ||
            memcmp(res->stdout_data, "still-here\n", 11) != 0)
            child_fail(report_fd, &rep, "wrong exec result in", expect);
        cws_op_free(op);
    }
    cws_sandbox_config_new(&cfg);
    cws_sandbox_config_add_tag(cfg, tag);
    if (cws_sandbox_run(c, cfg, NULL, &info, &err) < 0)
        child_fail(report_fd, &rep, "run", err.message);
    if (strcmp(info->session, session) != 0 || strcmp(info->owner, "session") != 0)
        child_fail(report_fd, &rep, "the sandbox is not the session's; owner", info->owner);
    snprintf(rep.created, sizeof(rep.created), "%s", info->id);
    rep.ok = 1;
    child_send(report_fd, &rep);
    if (hold_fd >= 0) {
        char b;
        while (read(hold_fd, &b, 1) > 0)
            ;
    }
    /* Leave without stopping anything: the sandboxes are the session's. */
    _exit(0);
}

/* Start session_child(); returns its pid, its report in *rep. *ret_hold (when not NULL) gets
 * the write end of the pipe that keeps it connected: close it to let the child exit. */
static pid_t start_session_child(const char *session, const char *expect, struct child_report *rep,
                                 int *ret_hold)
{
    int report[2], hold[2] = {-1, -1};
    ck_assert_int_eq(pipe(report), 0);
    if (ret_hold)
        ck_assert_int_eq(pipe(hold), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(report[0]);
        if (hold[1] >= 0)
            close(hold[1]);
        session_child(session, expect, report[1], hold[0]);
    }
    close(report[1]);
    if (hold[0] >= 0)
        close(hold[0]);
    memset(rep, 0, sizeof(*rep));
    ck_assert_int_eq(read(report[0], rep, sizeof(*rep)), (ssize_t)sizeof(*rep));
    close(report[0]);
    ck_assert_msg(rep->ok, "child: %s", rep->message);
    if (ret_hold)
        *ret_hold = hold[1];
    return pid;
}

/* The sandbox as the backend sees it (sandbox.get fresh). The caller frees. */
static struct cws_sandbox_info *get_fresh(const char *id)
{
    struct cws_error err;
    struct cws_sandbox_info *info = NULL;
    cws_op *op = NULL;
    ck_assert_int_eq(cws_sandbox_get(client, id, true, &op, &err), 0);
    wait_ok(op);
    ck_assert_int_eq(cws_sandbox_info_dup(cws_op_sandbox(op), &info), 0);
    cws_op_free(op);
    return info;
}

/* The session named name; the caller frees the op that owns it. */
static const struct cws_session_info *get_session(const char *name, cws_op **ret_op)
{
    struct cws_error err;
    ck_assert_int_eq(cws_session_get(client, name, ret_op, &err), 0);
    wait_ok(*ret_op);
    return cws_op_session(*ret_op);
}

static bool session_has(const struct cws_session_info *s, const char *id)
{
    for (size_t i = 0; i < s->n_sandboxes; i++)
        if (strcmp(s->sandbox_ids[i], id) == 0)
            return true;
    return false;
}

/* Two processes share one session by CWSANDBOX_SESSION: the first creates a sandbox and
 * exits; the second still uses that sandbox (and creates one); closing the session stops
 * both, as the backend confirms. The test's own client is in no session. */
START_TEST(test_session_outlives_its_first_process)
{
    struct cws_error err;
    struct child_report first, second;
    cws_op *op = NULL;
    int status = 0, hold = -1;
    char name[64];
    snprintf(name, sizeof(name), "cwsc-shared-%d", (int)getpid());

    pid_t pid = start_session_child(name, NULL, &first, NULL);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* Its process is gone; the sandbox runs on, the session's. */
    struct cws_sandbox_info *a = get_fresh(first.created);
    ck_assert_int_eq(a->state, CWS_STATE_RUNNING);
    ck_assert_str_eq(a->session, name);
    ck_assert_str_eq(a->owner, "session");
    cws_sandbox_info_free(a);
    const struct cws_session_info *s = get_session(name, &op);
    ck_assert(session_has(s, first.created));
    ck_assert_uint_eq(s->clients, 0);
    cws_op_free(op);

    /* The second process joins by the environment alone and uses the first one's sandbox. */
    pid = start_session_child(name, first.created, &second, &hold);
    s = get_session(name, &op);
    ck_assert_uint_eq(s->clients, 1); /* it joined in hello */
    ck_assert_uint_eq(s->n_sandboxes, 2);
    ck_assert(session_has(s, first.created) && session_has(s, second.created));
    cws_op_free(op);

    /* Closing the session (from a client outside it) stops all of them. */
    ck_assert_int_eq(cws_session_close(client, name, false, &op, &err), 0);
    wait_ok(op);
    ck_assert_uint_eq(cws_op_batch_result(op)->count, 2);
    ck_assert_uint_eq(cws_op_batch_result(op)->n_failed, 0);
    cws_op_free(op);
    const char *ids[] = {first.created, second.created};
    for (size_t i = 0; i < 2; i++) {
        struct cws_sandbox_info *sb = get_fresh(ids[i]);
        ck_assert_msg(cws_sandbox_state_is_terminal(sb->state), "%s is %s after the close", ids[i],
                      cws_sandbox_state_name(sb->state));
        cws_sandbox_info_free(sb);
    }
    close(hold);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

/* sandbox.adopt moves a client's sandbox into a session (which it then survives with), and
 * sandbox.detach takes it out: a close then leaves it running. */
START_TEST(test_session_adopt_detach)
{
    struct cws_error err;
    cws_op *op = NULL;
    char name[64];
    snprintf(name, sizeof(name), "cwsc-adopt-%d", (int)getpid());
    ck_assert_int_eq(cws_session_open(client, name, NULL, 0, &op, &err), 0);
    wait_ok(op);
    cws_op_free(op);
    ck_assert_int_eq(cws_client_set_session(client, NULL, &err), 0);

    ck_assert_int_eq(cws_sandbox_adopt(client, sandbox_id, name, &op, &err), 0);
    wait_ok(op);
    ck_assert_str_eq(cws_op_sandbox(op)->id, sandbox_id);
    ck_assert_str_eq(cws_op_sandbox(op)->session, name);
    ck_assert_str_eq(cws_op_sandbox(op)->owner, "session");
    cws_op_free(op);
    const struct cws_session_info *s = get_session(name, &op);
    ck_assert(session_has(s, sandbox_id));
    cws_op_free(op);

    ck_assert_int_eq(cws_sandbox_detach(client, sandbox_id, &op, &err), 0);
    wait_ok(op);
    ck_assert_str_eq(cws_op_sandbox(op)->owner, "detached");
    ck_assert_str_eq(cws_op_sandbox(op)->session, "");
    cws_op_free(op);
    s = get_session(name, &op);
    ck_assert(!session_has(s, sandbox_id));
    cws_op_free(op);

    ck_assert_int_eq(cws_session_close(client, name, false, &op, &err), 0);
    wait_ok(op);
    ck_assert_uint_eq(cws_op_batch_result(op)->count, 0);
    cws_op_free(op);
    struct cws_sandbox_info *sb = get_fresh(sandbox_id);
    ck_assert_int_eq(sb->state, CWS_STATE_RUNNING);
    cws_sandbox_info_free(sb);

    /* Adopting an unknown sandbox fails and names it. */
    ck_assert_int_eq(cws_sandbox_adopt(client, "sbx-no-such-sandbox", name, &op, &err), 0);
    ck_assert_int_eq(cws_op_wait(op, WAIT_MS, &err), -CWS_E_NOT_FOUND);
    cws_op_free(op);
}
END_TEST

/* A sandbox whose client is SIGKILLed is reaped after orphan_grace_s and shows up in
 * daemon.status's orphans with when and why. */
START_TEST(test_daemon_status_reports_orphans)
{
    struct cws_error err;
    struct child_report rep;
    int report[2];
    ck_assert_int_eq(pipe(report), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        cws_client *c = NULL;
        struct cws_sandbox_info *info = NULL;
        memset(&rep, 0, sizeof(rep));
        close(report[0]);
        if (cws_client_connect(NULL, &c, &err) < 0 ||
            cws_sandbox_run(c, NULL, NULL, &info, &err) < 0)
            child_fail(report[1], &rep, "run", err.message);
        snprintf(rep.created, sizeof(rep.created), "%s", info->id);
        rep.ok = 1;
        child_send(report[1], &rep);
        pause(); /* until killed */
        _exit(0);
    }
    close(report[1]);
    ck_assert_int_eq(read(report[0], &rep, sizeof(rep)), (ssize_t)sizeof(rep));
    close(report[0]);
    ck_assert_msg(rep.ok, "child: %s", rep.message);
    long long killed_ms = ct_now_ms();
    int64_t killed_wall = (int64_t)time(NULL) * 1000;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    bool seen = false;
    while (!seen) {
        cws_op *op = NULL;
        ck_assert_int_eq(cws_client_status(client, &op, &err), 0);
        wait_ok(op);
        const struct cws_daemon_status *st = cws_op_daemon_status(op);
        for (size_t i = 0; i < st->n_orphans; i++) {
            if (strcmp(st->orphans[i].sandbox_id, rep.created) != 0)
                continue;
            seen = true;
            ck_assert_str_eq(st->orphans[i].why, "its client went away");
            ck_assert_int_ge(st->orphans[i].reaped_ms, killed_wall - 1000);
        }
        cws_op_free(op);
        ck_assert_msg(seen || ct_now_ms() - killed_ms < 1000 * (ORPHAN_GRACE_S + 10),
                      "%s is not in the orphans %d s after its client was killed", rep.created,
                      ORPHAN_GRACE_S + 10);
        if (!seen)
            usleep(100 * 1000);
    }
    struct cws_sandbox_info *sb = get_fresh(rep.created);
    ck_assert(cws_sandbox_state_is_terminal(sb->state) || sb->state == CWS_STATE_TERMINATING);
    cws_sandbox_info_free(sb);
}
END_TEST

static TCase *group(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    return tc;
}

int main(void)
{
    Suite *s = suite_create("client_sandbox");
    TCase *tc = group("sandbox");
    tcase_add_test(tc, test_create_get_list);
    tcase_add_test(tc, test_unknown_sandbox);
    tcase_add_test(tc, test_wait_until_complete);
    tcase_add_test(tc, test_stop_and_delete);
    tcase_add_test(tc, test_purge_by_tag);
    tcase_add_test(tc, test_request_id_is_idempotent);
    tcase_add_test(tc, test_info_outlives_its_op);
    suite_add_tcase(s, tc);

    tc = group("exec");
    tcase_add_test(tc, test_exec_buffered);
    tcase_add_test(tc, test_exec_check);
    tcase_add_test(tc, test_exec_cwd_and_env);
    tcase_add_test(tc, test_exec_streaming_callback);
    tcase_add_test(tc, test_exec_pull_reader);
    tcase_add_test(tc, test_exec_stdin);
    tcase_add_test(tc, test_exec_large_stdin);
    tcase_add_test(tc, test_exec_timeout);
    tcase_add_test(tc, test_exec_cancel);
    tcase_add_test(tc, test_exec_freed_in_flight_is_cancelled);
    tcase_add_test(tc, test_exec_tty_with_resize);
    tcase_add_test(tc, test_exec_many_in_parallel);
    tcase_add_test(tc, test_exec_in_unknown_sandbox);
    suite_add_tcase(s, tc);

    tc = group("files");
    tcase_add_test(tc, test_file_roundtrip);
    tcase_add_test(tc, test_file_large_streamed);
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_file_parallel_reads);
    tcase_add_test(tc, test_file_to_and_from_fd);
    tcase_add_test(tc, test_file_read_stream);
    suite_add_tcase(s, tc);

    tc = group("logs");
    tcase_add_test(tc, test_logs);
    suite_add_tcase(s, tc);

    tc = group("sessions");
    tcase_add_test(tc, test_session_shared);
    tcase_add_test(tc, test_session_attach);
    tcase_add_test(tc, test_session_outlives_its_first_process);
    tcase_add_test(tc, test_session_adopt_detach);
    tcase_add_test(tc, test_daemon_status_reports_orphans);
    suite_add_tcase(s, tc);

    return ct_run_suite(s);
}
