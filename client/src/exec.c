/* exec: run a command, with its output buffered, streamed to a callback or kept for a pull
 * reader; stdin, EOF and terminal resizes go as exec.stdin / exec.eof / exec.resize
 * notifications, held until the daemon says exec.ready. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PACK_OK(expr) ((expr) == 0)

struct exec_state {
    bool with_stdin, tty, stream, check;
    bool ready;           /* exec.ready came: notifications go out at once */
    bool stdin_closed;    /* exec.eof was queued */
    struct cwsc_buf held; /* notifications packed before exec.ready */
    cws_exec_output_fn on_output;
    void *userdata;
    struct cwsc_stream out[2]; /* pull readers of stdout, stderr */
    bool has_result;
    struct cws_exec_result result;
    char *command; /* argv[0], for messages */
};

static void free_exec(void *state)
{
    struct exec_state *st = state;
    cwsc_buf_free(&st->held);
    cwsc_stream_free(&st->out[0]);
    cwsc_stream_free(&st->out[1]);
    free((void *)st->result.stdout_data);
    free((void *)st->result.stderr_data);
    free(st->command);
    free(st);
}

/* ---- from the daemon ---- */

static void on_ready(cws_op *op, struct exec_state *st)
{
    cws_client *c = op->client;
    st->ready = true;
    if (cwsc_buf_size(&st->held) > 0) {
        if (cwsc_buf_append(&c->out, cwsc_buf_head(&st->held), cwsc_buf_size(&st->held)) < 0) {
            struct cws_error e;
            cws_error_set(&e, CWS_E_NOMEM, "cannot queue stdin");
            cwsc_op_fail_locally(op, &e);
        }
        cwsc_buf_free(&st->held);
        cwsc_client_flush_some(c);
    }
}

static void on_output(cws_op *op, struct exec_state *st, const msgpack_object *params)
{
    const void *data = NULL;
    size_t len = 0;
    int64_t fd = CWS_STDOUT;
    if (cws_rpc_param_int(params, "fd", 1, 2, &fd, NULL) < 0 ||
        cws_rpc_param_bytes(params, "data", &data, &len, NULL) <= 0 || len == 0)
        return;
    if (st->on_output) {
        st->on_output(op, (int)fd, data, len, st->userdata);
    } else if (st->stream && cwsc_stream_push(&st->out[fd - 1], data, len) < 0) {
        struct cws_error e;
        cws_error_set(&e, CWS_E_NOMEM, "cannot keep the command's output");
        cwsc_op_fail_locally(op, &e);
    }
}

static void notify_exec(cws_op *op, const char *method, const msgpack_object *params)
{
    struct exec_state *st = op->state;
    if (strcmp(method, "exec.ready") == 0)
        on_ready(op, st);
    else if (strcmp(method, "exec.output") == 0)
        on_output(op, st, params);
}

/* A copy of an optional bin field; NULL and 0 when absent. */
static int copy_bytes(const msgpack_object *map, const char *key, const void **ret_data,
                      size_t *ret_len, struct cws_error *err)
{
    const void *data = NULL;
    size_t len = 0;
    int r = cws_rpc_param_bytes(map, key, &data, &len, err);
    if (r <= 0)
        return r;
    void *copy = malloc(len ? len : 1);
    if (!copy)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    memcpy(copy, data, len);
    *ret_data = copy;
    *ret_len = len;
    return 0;
}

static int parse_exec_result(const msgpack_object *result, struct cws_exec_result *res,
                             struct cws_error *err)
{
    int64_t code = 0;
    int r = cwsc_check_map(result, "exec", err);
    if (r == 0)
        r = cws_rpc_required(
            cws_rpc_param_int(result, "exit_code", INT32_MIN, INT32_MAX, &code, err), "exit_code",
            err);
    res->exit_code = (int)code;
    if (r >= 0)
        r = cwsc_get_int(result, "duration_ms", &res->duration_ms, err);
    if (r >= 0)
        r = copy_bytes(result, "stdout", &res->stdout_data, &res->stdout_len, err);
    if (r >= 0)
        r = copy_bytes(result, "stderr", &res->stderr_data, &res->stderr_len, err);
    if (r >= 0)
        r = cwsc_get_bool(result, "stdout_truncated", &res->stdout_truncated, err);
    if (r >= 0)
        r = cwsc_get_bool(result, "stderr_truncated", &res->stderr_truncated, err);
    return r < 0 ? r : 0;
}

static int parse_exec(cws_op *op, const msgpack_object *result, struct cws_error *err)
{
    struct exec_state *st = op->state;
    if (parse_exec_result(result, &st->result, err) < 0)
        return cwsc_bad_result(err, "exec");
    st->has_result = true;
    st->out[0].complete = st->out[1].complete = true;
    if (st->check && st->result.exit_code != 0) {
        cws_error_set(err, CWS_E_ABORTED, "command '%s' exited with code %d", st->command,
                      st->result.exit_code);
        cws_error_set_reason(err, CWS_REASON_EXEC_NONZERO_EXIT);
        return -CWS_E_ABORTED;
    }
    return 0;
}

static const struct cwsc_op_type exec_type = {
    .name = "exec",
    .cancel_when_freed = true,
    .parse = parse_exec,
    .notify = notify_exec,
    .free_state = free_exec,
};

/* ---- the request ---- */

struct exec_params {
    const char *id;
    const char *const *argv;
    const struct cws_exec_options *o;
    bool stream;
};

static int pack_exec(msgpack_packer *pk, const void *ud)
{
    const struct exec_params *p = ud;
    const struct cws_exec_options *o = p->o;
    size_t n = 2 + (o->cwd ? 1 : 0) + (o->env && o->env[0] ? 1 : 0) + (o->timeout_s > 0 ? 1 : 0) +
               (o->with_stdin ? 1 : 0) + (o->tty ? 3 : 0) + (p->stream ? 1 : 0);
    bool ok = PACK_OK(msgpack_pack_map(pk, n)) && PACK_OK(cws_rpc_pack_kv_cstr(pk, "id", p->id)) &&
              PACK_OK(cwsc_pack_kv_strv(pk, "argv", p->argv));
    if (ok && o->cwd)
        ok = PACK_OK(cws_rpc_pack_kv_cstr(pk, "cwd", o->cwd));
    if (ok && o->env && o->env[0])
        ok = PACK_OK(cwsc_pack_kv_envp(pk, "env", o->env));
    if (ok && o->timeout_s > 0)
        ok = PACK_OK(cwsc_pack_kv_double(pk, "timeout_s", o->timeout_s));
    if (ok && o->with_stdin)
        ok = PACK_OK(cws_rpc_pack_kv_bool(pk, "stdin", true));
    if (ok && o->tty)
        ok = PACK_OK(cws_rpc_pack_kv_bool(pk, "tty", true)) &&
             PACK_OK(cws_rpc_pack_kv_uint(pk, "cols", o->cols ? o->cols : 80)) &&
             PACK_OK(cws_rpc_pack_kv_uint(pk, "rows", o->rows ? o->rows : 24));
    if (ok && p->stream)
        ok = PACK_OK(cws_rpc_pack_kv_bool(pk, "stream", true));
    return ok ? 0 : -CWS_E_NOMEM;
}

static int check_exec_args(const char *id, const char *const *argv,
                           const struct cws_exec_options *o, struct cws_error *err)
{
    int r = cwsc_check_id(id, err);
    if (r < 0)
        return r;
    if (!argv || !argv[0] || !*argv[0])
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "argv must name a command");
    if (o->cwd && o->cwd[0] != '/')
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "cwd must be an absolute path, not '%s'",
                             o->cwd);
    if (!isfinite(o->timeout_s) || o->timeout_s < 0)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "timeout_s must be a non-negative number");
    return cwsc_check_envp(o->env, err);
}

int cws_exec(cws_client *c, const char *id, const char *const *argv,
             const struct cws_exec_options *opts, cws_op **ret_op, struct cws_error *err)
{
    static const struct cws_exec_options defaults = {0};
    const struct cws_exec_options *o = opts ? opts : &defaults;
    int r = check_exec_args(id, argv, o, err);
    if (r < 0)
        return r;
    struct exec_state *st = calloc(1, sizeof(*st));
    if (!st || !(st->command = strdup(argv[0]))) {
        free(st);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    st->with_stdin = o->with_stdin;
    st->tty = o->tty;
    st->check = o->check;
    st->on_output = o->on_output;
    st->userdata = o->userdata;
    st->stream = o->stream || o->on_output;
    struct exec_params p = {id, argv, o, st->stream};
    return cwsc_call(c, "exec", &exec_type, st, pack_exec, &p, ret_op, err);
}

/* ---- stdin, EOF, resize ---- */

static struct exec_state *exec_of(cws_op *op, struct cws_error *err)
{
    struct exec_state *st = cwsc_op_state(op, &exec_type);
    if (!st)
        cws_error_set(err, CWS_E_INVALID_ARGUMENT, "not an exec op");
    return st;
}

/* Send a notification for the running command, or hold it until exec.ready. */
static int send_or_hold(cws_op *op, struct exec_state *st, const char *method,
                        const struct cwsc_op_note *note, struct cws_error *err)
{
    int r = cwsc_client_usable(op->client, err);
    if (r < 0)
        return r;
    if (st->ready)
        r = cwsc_send_op_note(op->client, method, note);
    else
        r = cwsc_pack_notification(&st->held, method, cwsc_pack_op_note, note);
    return r < 0 ? cws_error_set(err, CWS_E_NOMEM, NULL) : 0;
}

static int check_running(const cws_op *op, struct cws_error *err)
{
    if (op->done)
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "the command has finished");
    return 0;
}

int cws_exec_write(cws_op *op, const void *data, size_t len, struct cws_error *err)
{
    struct exec_state *st = exec_of(op, err);
    if (!st)
        return -CWS_E_INVALID_ARGUMENT;
    if (!st->with_stdin)
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "the exec was not opened with stdin");
    if (st->stdin_closed)
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "stdin is closed");
    int r = check_running(op, err);
    for (size_t off = 0; r == 0 && off < len; off += CWSC_CHUNK) {
        size_t n = len - off < CWSC_CHUNK ? len - off : CWSC_CHUNK;
        struct cwsc_op_note note = {
            .id = op->msgid, .data = (const char *)data + off, .len = n, .has_data = true};
        r = send_or_hold(op, st, "exec.stdin", &note, err);
    }
    return r;
}

int cws_exec_close_stdin(cws_op *op, struct cws_error *err)
{
    struct exec_state *st = exec_of(op, err);
    if (!st)
        return -CWS_E_INVALID_ARGUMENT;
    if (!st->with_stdin)
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "the exec was not opened with stdin");
    if (st->stdin_closed || op->done)
        return 0;
    struct cwsc_op_note note = {.id = op->msgid};
    int r = send_or_hold(op, st, "exec.eof", &note, err);
    if (r == 0)
        st->stdin_closed = true;
    return r;
}

int cws_exec_resize(cws_op *op, unsigned cols, unsigned rows, struct cws_error *err)
{
    struct exec_state *st = exec_of(op, err);
    if (!st)
        return -CWS_E_INVALID_ARGUMENT;
    if (!st->tty)
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "the exec has no terminal");
    if (cols == 0 || rows == 0)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "a terminal size must not be zero");
    int r = check_running(op, err);
    if (r < 0)
        return r;
    struct cwsc_op_note note = {.id = op->msgid, .cols = cols, .rows = rows, .has_size = true};
    return send_or_hold(op, st, "exec.resize", &note, err);
}

/* ---- reading ---- */

ssize_t cws_exec_read(cws_op *op, int fd, void *buf, size_t len, int timeout_ms,
                      struct cws_error *err)
{
    struct exec_state *st = exec_of(op, err);
    if (!st)
        return -CWS_E_INVALID_ARGUMENT;
    if (!st->stream || st->on_output)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "the exec's output is not kept for a reader (set stream, "
                             "without on_output)");
    if (fd != CWS_STDOUT && fd != CWS_STDERR)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "fd must be CWS_STDOUT or CWS_STDERR");
    return cwsc_stream_read(op, &st->out[fd - 1], buf, len, timeout_ms, err);
}

const struct cws_exec_result *cws_op_exec_result(const cws_op *op)
{
    const struct exec_state *st = cwsc_op_state(op, &exec_type);
    return st && op->done && st->has_result ? &st->result : NULL;
}
