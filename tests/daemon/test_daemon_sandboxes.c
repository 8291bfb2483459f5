/* cwsandboxd's sandbox methods against the real daemon and the real cwsandbox-local behind it:
 * create/get/list/wait/stop/delete, exec (buffered, streamed, stdin), files (small, large,
 * streamed), logs, and a backend killed with SIGKILL. */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "rpc_encode.h"

#define CALL_MS 60000

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

/* ---- param builders ---- */

struct create_args {
    const char *command; /* run with /bin/sh -c; NULL for the keep-alive default */
    const char *tag;
    const char *owner; /* NULL: the default */
};

static void pack_create(msgpack_packer *pk, void *ud)
{
    struct create_args *a = ud;
    msgpack_pack_map(pk, 2 + (a->owner != NULL));
    cws_rpc_pack_kv_cstr(pk, "wait", "running");
    if (a->owner)
        cws_rpc_pack_kv_cstr(pk, "owner", a->owner);
    cws_rpc_pack_cstr(pk, "config");
    msgpack_pack_map(pk, 1 + (a->command != NULL) * 2);
    cws_rpc_pack_cstr(pk, "tags");
    msgpack_pack_array(pk, 1);
    cws_rpc_pack_cstr(pk, a->tag);
    if (a->command) {
        cws_rpc_pack_kv_cstr(pk, "command", "/bin/sh");
        cws_rpc_pack_cstr(pk, "args");
        msgpack_pack_array(pk, 2);
        cws_rpc_pack_cstr(pk, "-c");
        cws_rpc_pack_cstr(pk, a->command);
    }
}

static void create_on(struct th_conn *c, const char *owner, char *id, size_t size)
{
    struct create_args a = {NULL, "cwsd-test", owner};
    struct cws_rpc_msg *m = th_call(c, "sandbox.create", pack_create, &a, CALL_MS);
    th_ok(m, "sandbox.create");
    th_str(m->result, "id", id, size);
    cws_rpc_msg_free(m);
}

static void create_sandbox(const char *command, char *id, size_t size)
{
    struct create_args a = {command, "cwsd-test", NULL};
    struct cws_rpc_msg *m = th_call(&conn, "sandbox.create", pack_create, &a, CALL_MS);
    char state[32];
    th_ok(m, "sandbox.create");
    th_str(m->result, "id", id, size);
    ck_assert_msg(id[0], "sandbox.create answered no id");
    ck_assert_str_eq(th_str(m->result, "state", state, sizeof(state)), "running");
    cws_rpc_msg_free(m);
}

static void pack_id(msgpack_packer *pk, void *ud)
{
    msgpack_pack_map(pk, 1);
    cws_rpc_pack_kv_cstr(pk, "id", ud);
}

struct exec_args {
    const char *id;
    const char *script;
    bool stream, stdin_;
};

static void pack_exec(msgpack_packer *pk, void *ud)
{
    struct exec_args *a = ud;
    msgpack_pack_map(pk, 4);
    cws_rpc_pack_kv_cstr(pk, "id", a->id);
    cws_rpc_pack_cstr(pk, "argv");
    msgpack_pack_array(pk, 3);
    cws_rpc_pack_cstr(pk, "/bin/sh");
    cws_rpc_pack_cstr(pk, "-c");
    cws_rpc_pack_cstr(pk, a->script);
    cws_rpc_pack_kv_bool(pk, "stream", a->stream);
    cws_rpc_pack_kv_bool(pk, "stdin", a->stdin_);
}

static bool bin_equals(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o && o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == n &&
           memcmp(o->via.bin.ptr, s, n) == 0;
}

/* ---- tests ---- */

START_TEST(create_get_list_stop)
{
    char id[64], state[32];
    create_sandbox(NULL, id, sizeof(id));
    struct cws_rpc_msg *m = th_call(&conn, "sandbox.get", pack_id, id, CALL_MS);
    th_ok(m, "sandbox.get");
    ck_assert_str_eq(th_str(m->result, "state", state, sizeof(state)), "running");
    ck_assert_int_gt(th_int(m->result, "started_ms", 0), 0);
    cws_rpc_msg_free(m);

    m = th_call(&conn, "sandbox.list", NULL, NULL, CALL_MS);
    th_ok(m, "sandbox.list");
    const msgpack_object *list = th_field(m->result, "sandboxes");
    ck_assert_ptr_nonnull(list);
    bool found = false;
    for (uint32_t i = 0; list && i < list->via.array.size; i++) {
        char other[64];
        found |= strcmp(th_str(&list->via.array.ptr[i], "id", other, sizeof(other)), id) == 0;
    }
    ck_assert_msg(found, "sandbox.list lacks %s", id);
    cws_rpc_msg_free(m);

    m = th_call(&conn, "sandbox.stop", pack_id, id, CALL_MS);
    th_ok(m, "sandbox.stop");
    ck_assert_str_eq(th_str(m->result, "state", state, sizeof(state)), "completed");
    ck_assert_int_eq(th_int(m->result, "exit_code", -1), 0);
    cws_rpc_msg_free(m);
}
END_TEST

START_TEST(unknown_sandbox_is_not_found)
{
    char code[64], reason[64];
    struct cws_rpc_msg *m = th_call(&conn, "sandbox.get", pack_id, "sbx-nope", CALL_MS);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(m->error);
    ck_assert_str_eq(th_str(m->error, "code", code, sizeof(code)), "NOT_FOUND");
    ck_assert_str_eq(th_str(m->error, "reason", reason, sizeof(reason)),
                     "CWSANDBOX_SANDBOX_NOT_FOUND");
    cws_rpc_msg_free(m);
}
END_TEST

START_TEST(exec_buffered_and_exit_code)
{
    char id[64];
    create_sandbox(NULL, id, sizeof(id));
    struct exec_args a = {id, "echo out; echo err >&2; exit 3", false, false};
    struct cws_rpc_msg *m = th_call(&conn, "exec", pack_exec, &a, CALL_MS);
    th_ok(m, "exec");
    ck_assert_int_eq(th_int(m->result, "exit_code", -1), 3);
    ck_assert(bin_equals(th_field(m->result, "stdout"), "out\n"));
    ck_assert(bin_equals(th_field(m->result, "stderr"), "err\n"));
    cws_rpc_msg_free(m);
}
END_TEST

static void send_notification(uint32_t id, const char *method, const char *data)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cws_rpc_pack_notification_head(&pk, method);
    msgpack_pack_map(&pk, data ? 2 : 1);
    cws_rpc_pack_kv_uint(&pk, "id", id);
    if (data)
        cws_rpc_pack_kv_bin(&pk, "data", data, strlen(data));
    th_send_raw(&conn, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

START_TEST(exec_streamed_with_stdin)
{
    char id[64], out[256] = "";
    size_t out_len = 0;
    create_sandbox(NULL, id, sizeof(id));
    struct exec_args a = {id, "tr a-z A-Z", true, true};
    uint32_t msgid = th_request(&conn, "exec", pack_exec, &a);
    bool ready = false, done = false;
    while (!done) {
        struct cws_rpc_msg *m = th_next(&conn, CALL_MS, NULL);
        ck_assert_msg(m, "no answer from a streamed exec");
        if (m->type == CWS_RPC_NOTIFICATION && strcmp(m->method, "exec.ready") == 0) {
            ready = true;
            send_notification(msgid, "exec.stdin", "hello ");
            send_notification(msgid, "exec.stdin", "sandbox\n");
            send_notification(msgid, "exec.eof", NULL);
        } else if (m->type == CWS_RPC_NOTIFICATION && strcmp(m->method, "exec.output") == 0) {
            const msgpack_object *d = th_field(m->params, "data");
            ck_assert_int_eq(th_int(m->params, "id", -1), msgid);
            memcpy(out + out_len, d->via.bin.ptr, d->via.bin.size);
            out_len += d->via.bin.size;
        } else if (m->type == CWS_RPC_RESPONSE && m->msgid == msgid) {
            th_ok(m, "streamed exec");
            ck_assert_int_eq(th_int(m->result, "exit_code", -1), 0);
            done = true;
        }
        cws_rpc_msg_free(m);
    }
    ck_assert(ready);
    ck_assert_str_eq(out, "HELLO SANDBOX\n");
}
END_TEST

struct file_args {
    const char *id;
    const char *path;
    const uint8_t *data;
    size_t len;
};

static void pack_write(msgpack_packer *pk, void *ud)
{
    struct file_args *a = ud;
    msgpack_pack_map(pk, 3);
    cws_rpc_pack_kv_cstr(pk, "id", a->id);
    cws_rpc_pack_kv_cstr(pk, "path", a->path);
    cws_rpc_pack_kv_bin(pk, "data", a->data, a->len);
}

static void pack_read(msgpack_packer *pk, void *ud)
{
    struct file_args *a = ud;
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_kv_cstr(pk, "id", a->id);
    cws_rpc_pack_kv_cstr(pk, "path", a->path);
}

/* A file over the backend's 32 MiB unary cap goes out and back through StreamExec. */
START_TEST(files_round_trip_small_and_large)
{
    char id[64];
    size_t sizes[] = {0, 13, 40u << 20};
    create_sandbox(NULL, id, sizeof(id));
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint8_t *data = malloc(sizes[k] + 1);
        for (size_t i = 0; i < sizes[k]; i++)
            data[i] = (uint8_t)(i * 131 + k);
        struct file_args a = {id, "/tmp/f.bin", data, sizes[k]};
        struct cws_rpc_msg *m = th_call(&conn, "file.write", pack_write, &a, CALL_MS);
        th_ok(m, "file.write");
        ck_assert_int_eq(th_int(m->result, "size", -1), (int64_t)sizes[k]);
        cws_rpc_msg_free(m);
        m = th_call(&conn, "file.read", pack_read, &a, CALL_MS);
        th_ok(m, "file.read");
        const msgpack_object *d = th_field(m->result, "data");
        ck_assert_ptr_nonnull(d);
        ck_assert_uint_eq(d->via.bin.size, sizes[k]);
        ck_assert(sizes[k] == 0 || memcmp(d->via.bin.ptr, data, sizes[k]) == 0);
        cws_rpc_msg_free(m);
        free(data);
    }
}
END_TEST

START_TEST(file_errors_keep_backend_reason)
{
    char id[64], code[64], reason[64];
    create_sandbox(NULL, id, sizeof(id));
    struct file_args a = {id, "/no/such/file", NULL, 0};
    struct cws_rpc_msg *m = th_call(&conn, "file.read", pack_read, &a, CALL_MS);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(m->error);
    ck_assert_str_eq(th_str(m->error, "code", code, sizeof(code)), "NOT_FOUND");
    ck_assert_str_eq(th_str(m->error, "reason", reason, sizeof(reason)),
                     "CWSANDBOX_FILE_NOT_FOUND");
    cws_rpc_msg_free(m);
}
END_TEST

static void pack_logs(msgpack_packer *pk, void *ud)
{
    msgpack_pack_map(pk, 1);
    cws_rpc_pack_kv_cstr(pk, "id", ud);
}

START_TEST(logs_of_the_main_command)
{
    char id[64], out[256] = "";
    size_t out_len = 0;
    create_sandbox("echo one; echo two; exec sleep 1000", id, sizeof(id));
    /* The log may lag the start: ask until both lines are there (bounded). */
    for (int attempt = 0; attempt < 100 && !strstr(out, "two"); attempt++) {
        out_len = 0;
        out[0] = '\0';
        uint32_t msgid = th_request(&conn, "logs", pack_logs, id);
        for (;;) {
            struct cws_rpc_msg *m = th_next(&conn, CALL_MS, NULL);
            ck_assert_ptr_nonnull(m);
            bool end = m->type == CWS_RPC_RESPONSE && m->msgid == msgid;
            if (m->type == CWS_RPC_NOTIFICATION && strcmp(m->method, "logs.data") == 0) {
                const msgpack_object *d = th_field(m->params, "data");
                memcpy(out + out_len, d->via.bin.ptr, d->via.bin.size);
                out_len += d->via.bin.size;
                out[out_len] = '\0';
            }
            if (end)
                th_ok(m, "logs");
            cws_rpc_msg_free(m);
            if (end)
                break;
        }
    }
    ck_assert_str_eq(out, "one\ntwo\n");
}
END_TEST

static pid_t backend_pid(void)
{
    char path[64], buf[512];
    DIR *d = opendir("/proc");
    struct dirent *de;
    pid_t found = 0;
    while (d && (de = readdir(d))) {
        pid_t pid = atoi(de->d_name);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        if (n && strstr(buf, "cwsandbox-local") &&
            memmem(buf, n, daemon_.root, strlen(daemon_.root)))
            found = pid;
    }
    if (d)
        closedir(d);
    return found;
}

static void pack_get_fresh(msgpack_packer *pk, void *ud)
{
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_kv_cstr(pk, "id", ud);
    cws_rpc_pack_kv_bool(pk, "fresh", true);
}

/* kill -9 of cwsandbox-local: the daemon restarts it, and calls work again. */
START_TEST(backend_killed_is_restarted)
{
    char id[64], state[32];
    create_sandbox(NULL, id, sizeof(id));
    pid_t pid = backend_pid();
    ck_assert_int_gt(pid, 0);
    kill(pid, SIGKILL);
    struct cws_rpc_msg *m = NULL;
    /* Calls fail UNAVAILABLE or wait for the restarted backend; within the deadline one
     * must succeed. Fresh: a cached answer would not need the backend at all. */
    for (int i = 0; i < 100; i++) {
        cws_rpc_msg_free(m);
        m = th_call(&conn, "sandbox.get", pack_get_fresh, id, CALL_MS);
        ck_assert_ptr_nonnull(m);
        if (!m->error)
            break;
        char code[64];
        ck_assert_str_eq(th_str(m->error, "code", code, sizeof(code)), "UNAVAILABLE");
    }
    th_ok(m, "sandbox.get after a backend restart");
    ck_assert_str_eq(th_str(m->result, "state", state, sizeof(state)), "running");
    cws_rpc_msg_free(m);
    ck_assert_int_ne(backend_pid(), pid);
}
END_TEST

/* The backend's own view of a sandbox's state. */
static const char *backend_state(struct th_conn *c, const char *id, char *buf, size_t size)
{
    struct cws_rpc_msg *m = th_call(c, "sandbox.get", pack_get_fresh, (void *)id, CALL_MS);
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

static bool report_names(const msgpack_object *status, const char *id)
{
    const msgpack_object *list = th_field(status, "orphans");
    for (uint32_t i = 0; list && i < list->via.array.size; i++) {
        char other[64];
        if (strcmp(th_str(&list->via.array.ptr[i], "id", other, sizeof(other)), id) == 0)
            return true;
    }
    return false;
}

/* A client that goes away leaves orphans: stopped within orphan_grace_s (5 s) + 2 s, as the
 * backend sees it; a detached sandbox of the same client keeps running. */
START_TEST(orphans_are_stopped_detached_survive)
{
    struct th_conn other;
    char orphan[64], kept[64], state[32];
    ck_assert_int_eq(th_connect(&other, daemon_.socket), 0);
    ck_assert(th_hello(&other));
    create_on(&other, NULL, orphan, sizeof(orphan));
    create_on(&other, "detached", kept, sizeof(kept));
    th_close(&other); /* what a SIGKILLed process looks like to the daemon */
    struct wait_args w = {orphan, 7.0};
    struct cws_rpc_msg *m = th_call(&conn, "sandbox.wait", pack_wait_terminal, &w, CALL_MS);
    th_ok(m, "the orphan reaching a terminal state within 7 s");
    cws_rpc_msg_free(m);
    ck_assert_str_eq(backend_state(&conn, kept, state, sizeof(state)), "running");
    m = th_call(&conn, "daemon.status", NULL, NULL, CALL_MS);
    th_ok(m, "daemon.status");
    ck_assert_msg(report_names(m->result, orphan), "daemon.status does not report the orphan");
    ck_assert_msg(!report_names(m->result, kept), "the detached sandbox was reported reaped");
    cws_rpc_msg_free(m);
}
END_TEST

/* SIGTERM (logout): client sandboxes are stopped before the daemon exits 0; detached ones are
 * left running. The restarted daemon asks the backend, which outlived neither. */
START_TEST(sigterm_stops_client_sandboxes_keeps_detached)
{
    char mine[64], kept[64], state[32];
    create_on(&conn, NULL, mine, sizeof(mine));
    create_on(&conn, "detached", kept, sizeof(kept));
    th_close(&conn);
    ck_assert_int_eq(th_daemon_restart(&daemon_, NULL, 40000), 0);
    ck_assert_int_eq(th_connect(&conn, daemon_.socket), 0);
    ck_assert(th_hello(&conn));
    backend_state(&conn, mine, state, sizeof(state));
    ck_assert_msg(strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0,
                  "the client's sandbox is %s after SIGTERM", state);
    ck_assert_str_eq(backend_state(&conn, kept, state, sizeof(state)), "running");
}
END_TEST

static Suite *sandboxes_suite(void)
{
    Suite *s = suite_create("daemon_sandboxes");
    TCase *tc = tcase_create("sandboxes");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, create_get_list_stop);
    tcase_add_test(tc, unknown_sandbox_is_not_found);
    tcase_add_test(tc, exec_buffered_and_exit_code);
    tcase_add_test(tc, exec_streamed_with_stdin);
    tcase_add_test(tc, files_round_trip_small_and_large);
    tcase_add_test(tc, file_errors_keep_backend_reason);
    tcase_add_test(tc, logs_of_the_main_command);
    tcase_add_test(tc, backend_killed_is_restarted);
    tcase_add_test(tc, orphans_are_stopped_detached_survive);
    tcase_add_test(tc, sigterm_stops_client_sandboxes_keeps_detached);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sandboxes_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
