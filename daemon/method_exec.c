/* exec: run a command in a sandbox. Buffered commands without stdin or a terminal use the
 * backend's unary Exec; everything else StreamExec, with output forwarded as exec.output
 * notifications (or buffered), stdin from exec.stdin/exec.eof, resize from exec.resize. The
 * daemon enforces timeout_s itself: the backend call is cancelled, which kills the process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "backend_rpc.h"
#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "daemon.h"
#include "log.h"
#include "rpc_encode.h"
#include "rpc_params.h"

/* Output kept per stream for a buffered answer (the rest is counted, flagged truncated). */
#define BUFFERED_MAX (16u * 1024 * 1024)
/* The backend call outlives the daemon's own deadline a little, so ours fires first. */
#define BACKEND_SLACK_MS 5000

typedef Coreweave__Sandbox__V1__ExecStreamRequest ExecStreamRequest;
typedef Coreweave__Sandbox__V1__ExecStreamResponse ExecStreamResponse;

struct buffered {
    uint8_t *data;
    size_t len;
    uint64_t produced;
};

struct xop {
    struct cwsd *d;
    struct cwsd_call *call;
    struct cwsd_stream *stream;
    struct event *timer;
    struct cwsd_arena arena;
    int64_t started_ms;
    int64_t timeout_ms;
    bool streamed; /* output as notifications */
    bool want_stdin;
    bool tty;
    struct cwsd_unary *unary; /* the unary Exec in flight, or NULL */
    bool paused;
    bool eof_sent;
    struct buffered out[2];
};

static void xop_free(struct xop *x)
{
    if (x->timer)
        event_free(x->timer);
    cwsd_rpc_unary_cancel(x->unary); /* cancelling the call kills the command */
    cwsd_stream_cancel(x->stream);
    cwsd_arena_free(&x->arena);
    free(x->out[0].data);
    free(x->out[1].data);
    free(x);
}

/* The call is answered or gone: free everything, cancelling what still runs. */
static void xop_done(struct xop *x)
{
    x->call = NULL;
    xop_free(x);
}

static void xop_fail(struct xop *x, const struct cws_error *err)
{
    if (x->call)
        cwsd_call_fail(x->call, err);
    xop_done(x);
}

static void keep(struct buffered *b, const uint8_t *data, size_t len)
{
    b->produced += len;
    if (b->len >= BUFFERED_MAX)
        return;
    size_t n = len < BUFFERED_MAX - b->len ? len : BUFFERED_MAX - b->len;
    uint8_t *grown = realloc(b->data, b->len + n);
    if (!grown)
        return;
    memcpy(grown + b->len, data, n);
    b->data = grown;
    b->len += n;
}

struct result_args {
    const struct xop *x;
    int exit_code;
    /* unary Exec answers carry their own buffers */
    const uint8_t *bufs[2];
    size_t lens[2];
    bool truncated[2];
};

static int pack_result(msgpack_packer *pk, void *ud)
{
    const struct result_args *a = ud;
    int64_t duration = cwsd_monotonic_ms() - a->x->started_ms;
    if (a->x->streamed)
        return msgpack_pack_map(pk, 2) || cws_rpc_pack_kv_int(pk, "exit_code", a->exit_code) ||
                       cws_rpc_pack_kv_int(pk, "duration_ms", duration)
                   ? -CWS_E_NOMEM
                   : 0;
    if (msgpack_pack_map(pk, 6) || cws_rpc_pack_kv_int(pk, "exit_code", a->exit_code) ||
        cws_rpc_pack_kv_int(pk, "duration_ms", duration) ||
        cws_rpc_pack_kv_bin(pk, "stdout", a->bufs[0], a->lens[0]) ||
        cws_rpc_pack_kv_bin(pk, "stderr", a->bufs[1], a->lens[1]) ||
        cws_rpc_pack_kv_bool(pk, "stdout_truncated", a->truncated[0]) ||
        cws_rpc_pack_kv_bool(pk, "stderr_truncated", a->truncated[1]))
        return -CWS_E_NOMEM;
    return 0;
}

static void reply_exit(struct xop *x, int exit_code)
{
    struct result_args a = {
        x,
        exit_code,
        {x->out[0].data, x->out[1].data},
        {x->out[0].len, x->out[1].len},
        {x->out[0].produced > x->out[0].len, x->out[1].produced > x->out[1].len}};
    if (x->call)
        cwsd_call_reply(x->call, pack_result, &a);
    xop_done(x);
}

/* ---- the daemon's deadline ---- */

static void on_timeout(evutil_socket_t fd, short what, void *ud)
{
    struct xop *x = ud;
    struct cws_error err;
    (void)fd;
    (void)what;
    cws_error_set(&err, CWS_E_DEADLINE_EXCEEDED, "the command ran longer than %lld ms: killed",
                  (long long)x->timeout_ms);
    cwsd_stream_cancel(x->stream);
    x->stream = NULL;
    xop_fail(x, &err);
}

/* ---- streamed (StreamExec) ---- */

struct output_args {
    uint32_t id;
    int fd;
    const uint8_t *data;
    size_t len;
};

static int pack_output(msgpack_packer *pk, void *ud)
{
    const struct output_args *a = ud;
    return msgpack_pack_map(pk, 3) || cws_rpc_pack_kv_uint(pk, "id", a->id) ||
                   cws_rpc_pack_kv_int(pk, "fd", a->fd) ||
                   cws_rpc_pack_kv_bin(pk, "data", a->data, a->len)
               ? -CWS_E_NOMEM
               : 0;
}

static int pack_id(msgpack_packer *pk, void *ud)
{
    return msgpack_pack_map(pk, 1) || cws_rpc_pack_kv_uint(pk, "id", *(uint32_t *)ud) ? -CWS_E_NOMEM
                                                                                      : 0;
}

static void on_output(struct xop *x, const Coreweave__Sandbox__V1__ExecStreamOutput *o)
{
    int fd = o->stream == COREWEAVE__SANDBOX__V1__EXEC_STREAM_OUTPUT__STREAM__STREAM_STDERR ? 2 : 1;
    if (!x->streamed) {
        keep(&x->out[fd - 1], o->data.data, o->data.len);
        return;
    }
    struct output_args a = {x->call->msgid, fd, o->data.data, o->data.len};
    if (cwsd_call_notify(x->call, "exec.output", pack_output, &a) == 1 && !x->paused) {
        x->paused = true; /* the client reads slowly: stop reading the backend */
        cwsd_stream_pause(x->stream, true);
    }
}

static void fail_in_band(struct xop *x, const Coreweave__Sandbox__V1__ExecStreamError *e)
{
    struct cws_error err;
    cws_error_set(&err, CWS_E_INTERNAL, "the command failed in the sandbox: %s (%s)", e->message,
                  e->code);
    cws_error_set_reason(&err, e->code);
    cwsd_stream_cancel(x->stream);
    x->stream = NULL;
    xop_fail(x, &err);
}

static void on_stream_message(struct cwsd_stream *s, const ProtobufCMessage *m, void *ud)
{
    struct xop *x = ud;
    const ExecStreamResponse *r = (const ExecStreamResponse *)m;
    (void)s;
    if (!x->call)
        return;
    switch (r->message_case) {
    case COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_READY:
        if (x->streamed || x->want_stdin)
            cwsd_call_notify(x->call, "exec.ready", pack_id, &x->call->msgid);
        break;
    case COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_OUTPUT:
        on_output(x, r->output);
        break;
    case COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_EXIT:
        cwsd_stream_finish(x->stream); /* the answer is complete; the trailers follow */
        x->stream = NULL;
        reply_exit(x, r->exit->exit_code);
        break;
    case COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_ERROR:
        fail_in_band(x, r->error);
        break;
    default:
        break;
    }
}

static void on_stream_done(struct cwsd_stream *s, const struct cws_error *err, void *ud)
{
    struct xop *x = ud;
    struct cws_error e;
    (void)s;
    x->stream = NULL;
    if (err) {
        xop_fail(x, err);
        return;
    }
    cws_error_set(&e, CWS_E_PROTOCOL, "the backend ended the command's stream without an exit");
    xop_fail(x, &e);
}

static const struct cwsd_stream_events stream_events = {
    .on_message = on_stream_message,
    .on_done = on_stream_done,
};

static void on_writable(struct cwsd_call *call, void *ud)
{
    struct xop *x = ud;
    (void)call;
    if (x->paused && x->stream) {
        x->paused = false;
        cwsd_stream_pause(x->stream, false);
    }
}

static void send_eof(struct xop *x)
{
    ExecStreamRequest req = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__INIT;
    Coreweave__Sandbox__V1__ExecStreamClose close_msg =
        COREWEAVE__SANDBOX__V1__EXEC_STREAM_CLOSE__INIT;
    if (x->eof_sent || !x->stream)
        return;
    x->eof_sent = true;
    req.message_case = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_CLOSE;
    req.close = &close_msg;
    cwsd_stream_send(x->stream, &req.base);
    cwsd_stream_close_send(x->stream);
}

static void on_notify(struct cwsd_call *call, const char *method, const msgpack_object *params,
                      void *ud)
{
    struct xop *x = ud;
    (void)call;
    if (!x->stream)
        return;
    ExecStreamRequest req = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__INIT;
    if (strcmp(method, "exec.stdin") == 0 && !x->eof_sent) {
        const void *data = NULL;
        size_t len = 0;
        if (cws_rpc_param_bytes(params, "data", &data, &len, NULL) != 1)
            return;
        req.message_case = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_STDIN;
        req.stdin.data = (uint8_t *)data;
        req.stdin.len = len;
        cwsd_stream_send(x->stream, &req.base);
    } else if (strcmp(method, "exec.eof") == 0) {
        send_eof(x);
    } else if (strcmp(method, "exec.resize") == 0) {
        int64_t cols = 0, rows = 0;
        Coreweave__Sandbox__V1__ExecStreamResize rs =
            COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESIZE__INIT;
        if (cws_rpc_param_int(params, "cols", 1, 10000, &cols, NULL) != 1 ||
            cws_rpc_param_int(params, "rows", 1, 10000, &rows, NULL) != 1)
            return;
        rs.width = (uint32_t)cols;
        rs.height = (uint32_t)rows;
        req.message_case = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_RESIZE;
        req.resize = &rs;
        cwsd_stream_send(x->stream, &req.base);
    }
}

static void on_call_cancelled(struct cwsd_call *call, void *ud)
{
    struct xop *x = ud;
    (void)call;
    cwsd_stream_cancel(x->stream); /* kills the command */
    x->stream = NULL;
    xop_done(x);
}

/* ---- unary Exec ---- */

static void on_unary_exec(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct xop *x = ud;
    const Coreweave__Sandbox__V1__ExecResponse *r =
        (const Coreweave__Sandbox__V1__ExecResponse *)resp;
    x->unary = NULL; /* the handle ends with this callback */
    if (err) {
        xop_fail(x, err);
        return;
    }
    struct result_args a = {x,
                            r->exit_code,
                            {r->stdout.data, r->stderr.data},
                            {r->stdout.len, r->stderr.len},
                            {r->stdout_truncated, r->stderr_truncated}};
    cwsd_call_reply(x->call, pack_result, &a);
    xop_done(x);
}

/* ---- request ---- */

/* The command as the backend runs it: with a cwd, `sh -c 'cd "$0" && exec "$@"' DIR argv...`
 * so nothing is re-parsed by the shell. */
static int build_command(struct xop *x, char **argv, size_t argc, const char *cwd, char ***ret,
                         size_t *ret_n)
{
    static const char *const wrap[] = {"/bin/sh", "-c", "cd \"$0\" && exec \"$@\""};
    size_t extra = cwd ? 4 : 0, n = argc + extra;
    char **cmd = cwsd_arena_alloc(&x->arena, (n + 1) * sizeof(*cmd));
    if (!cmd)
        return -CWS_E_NOMEM;
    for (size_t i = 0; cwd && i < 3; i++)
        cmd[i] = (char *)wrap[i];
    if (cwd && !(cmd[3] = cwsd_arena_strdup(&x->arena, cwd)))
        return -CWS_E_NOMEM;
    for (size_t i = 0; i < argc; i++)
        if (!(cmd[extra + i] = cwsd_arena_strdup(&x->arena, argv[i])))
            return -CWS_E_NOMEM;
    *ret = cmd;
    *ret_n = n;
    return 0;
}

/* The protobuf map entry messages ExecRequest.env and ExecStreamInit.env are made of: both
 * are {key, value}, told apart by their descriptor. */
struct env_entry {
    ProtobufCMessage base;
    char *key;
    char *value;
};

static int build_env(struct xop *x, const msgpack_object *params,
                     const ProtobufCMessageDescriptor *desc, struct env_entry ***ret, size_t *ret_n,
                     struct cws_error *err)
{
    const msgpack_object *m;
    int r = cws_rpc_param_map(params, "env", &m, err);
    if (r <= 0)
        return r;
    struct env_entry **e = cwsd_arena_alloc(&x->arena, (m->via.map.size + 1) * sizeof(*e));
    if (!e)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR)
            return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "env must map strings to strings");
        e[i] = cwsd_arena_alloc(&x->arena, desc->sizeof_message);
        if (!e[i])
            return cws_error_set(err, CWS_E_NOMEM, NULL);
        protobuf_c_message_init(desc, e[i]);
        e[i]->key = cwsd_arena_strndup(&x->arena, k->via.str.ptr, k->via.str.size);
        e[i]->value = cwsd_arena_strndup(&x->arena, v->via.str.ptr, v->via.str.size);
        if (!e[i]->key || !e[i]->value)
            return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    *ret = e;
    *ret_n = m->via.map.size;
    return 1;
}

struct exec_params {
    char *id;
    char **argv;
    size_t argc;
    char *cwd;
    double timeout_s;
    int64_t cols, rows;
};

static void exec_params_clear(struct exec_params *p)
{
    free(p->id);
    cws_strv_free(p->argv);
    free(p->cwd);
}

static int read_params(struct xop *x, const msgpack_object *params, struct exec_params *p,
                       struct cws_error *err)
{
    int r;
    if ((r = cws_rpc_required(cws_rpc_param_str(params, "id", &p->id, err), "id", err)) < 0 ||
        (r = cws_rpc_required(cws_rpc_param_strv_array(params, "argv", &p->argv, &p->argc, err),
                              "argv", err)) < 0 ||
        (r = cws_rpc_param_str(params, "cwd", &p->cwd, err)) < 0 ||
        (r = cws_rpc_param_nonneg(params, "timeout_s", &p->timeout_s, err)) < 0 ||
        (r = cws_rpc_param_bool(params, "stdin", &x->want_stdin, err)) < 0 ||
        (r = cws_rpc_param_bool(params, "tty", &x->tty, err)) < 0 ||
        (r = cws_rpc_param_bool(params, "stream", &x->streamed, err)) < 0 ||
        (r = cws_rpc_param_int(params, "cols", 1, 10000, &p->cols, err)) < 0 ||
        (r = cws_rpc_param_int(params, "rows", 1, 10000, &p->rows, err)) < 0)
        return r;
    if (p->argc == 0 || !p->argv[0][0])
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "argv must not be empty");
    return 0;
}

static int start_unary(struct xop *x, char **cmd, size_t n, const char *id,
                       const msgpack_object *params, struct cws_error *err)
{
    Coreweave__Sandbox__V1__ExecRequest req = COREWEAVE__SANDBOX__V1__EXEC_REQUEST__INIT;
    if (build_env(x, params, &coreweave__sandbox__v1__exec_request__env_entry__descriptor,
                  (struct env_entry ***)&req.env, &req.n_env, err) < 0)
        return -(int)err->code;
    req.sandbox_id = (char *)id;
    req.command = cmd;
    req.n_command = n;
    req.max_output_bytes = BUFFERED_MAX;
    return cwsd_rpc_unary_cancellable(
        x->d, "Exec", &req.base, &coreweave__sandbox__v1__exec_response__descriptor,
        x->timeout_ms ? x->timeout_ms + BACKEND_SLACK_MS : 0, on_unary_exec, x, &x->unary, err);
}

static int start_stream(struct xop *x, char **cmd, size_t n, const char *id,
                        const struct exec_params *p, const msgpack_object *params,
                        struct cws_error *err)
{
    ExecStreamRequest req = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__INIT;
    Coreweave__Sandbox__V1__ExecStreamInit init = COREWEAVE__SANDBOX__V1__EXEC_STREAM_INIT__INIT;
    if (build_env(x, params, &coreweave__sandbox__v1__exec_stream_init__env_entry__descriptor,
                  (struct env_entry ***)&init.env, &init.n_env, err) < 0)
        return -(int)err->code;
    init.sandbox_id = (char *)id;
    init.command = cmd;
    init.n_command = n;
    init.tty = x->tty;
    init.tty_width = (uint32_t)p->cols;
    init.tty_height = (uint32_t)p->rows;
    req.message_case = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_INIT;
    req.init = &init;
    int r = cwsd_rpc_stream(
        x->d, "StreamExec", &req.base, &coreweave__sandbox__v1__exec_stream_response__descriptor,
        x->timeout_ms ? x->timeout_ms + BACKEND_SLACK_MS : 0, &stream_events, x, &x->stream, err);
    if (r < 0)
        return r;
    if (!x->want_stdin) {
        x->eof_sent = true;
        cwsd_stream_close_send(x->stream); /* half-close: EOF on stdin, the command runs on */
    }
    return 0;
}

void cwsd_method_exec(struct cwsd_call *call, const msgpack_object *params)
{
    struct exec_params p = {0};
    struct cws_error err;
    char **cmd = NULL;
    size_t n = 0;
    struct xop *x = calloc(1, sizeof(*x));
    if (!x) {
        cwsd_call_failf(call, CWS_E_NOMEM, "out of memory");
        return;
    }
    x->d = call->client->d;
    x->call = call;
    x->started_ms = cwsd_monotonic_ms();
    call->on_cancel = on_call_cancelled;
    call->on_writable = on_writable;
    call->on_notify = on_notify;
    call->ud = x;
    int r = read_params(x, params, &p, &err);
    if (r == 0 && build_command(x, p.argv, p.argc, p.cwd, &cmd, &n) < 0)
        r = cws_error_set(&err, CWS_E_NOMEM, NULL);
    if (r == 0) {
        x->timeout_ms = (int64_t)(p.timeout_s * 1000);
        if (x->timeout_ms > 0) {
            struct timeval tv = {x->timeout_ms / 1000, (x->timeout_ms % 1000) * 1000};
            x->timer = evtimer_new(x->d->base, on_timeout, x);
            if (!x->timer || evtimer_add(x->timer, &tv) < 0)
                r = cws_error_set(&err, CWS_E_NOMEM, NULL);
        }
    }
    if (r == 0 && !x->streamed && !x->want_stdin && !x->tty)
        r = start_unary(x, cmd, n, p.id, params, &err);
    else if (r == 0)
        r = start_stream(x, cmd, n, p.id, &p, params, &err);
    exec_params_clear(&p);
    if (r < 0)
        xop_fail(x, &err);
}
