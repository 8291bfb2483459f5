/* Unary Exec: run a command to completion and answer with its buffered output. Output past
 * max_output_bytes is counted but not kept (the *_truncated flags say so); a non-zero exit is
 * a normal answer, not an RPC error. Cancelling the call kills the command. */
#include <stdlib.h>
#include <string.h>

#include "service.h"

/* Two streams of this much still fit a 100 MiB response. */
#define EXEC_OUTPUT_MAX (48u * 1024 * 1024)

typedef Coreweave__Sandbox__V1__ExecRequest ExecRequest;
typedef Coreweave__Sandbox__V1__ExecResponse ExecResponse;

struct captured {
    uint8_t *data;
    size_t len;
    uint64_t produced;
};

struct exec_call {
    struct svc *svc;
    struct cws_gcall *call;
    ExecRequest *req;
    struct lsb *sb;
    struct lsb_waiter *waiter;
    struct cws_rt_exec *ex;
    char **env;
    size_t cap;
    struct captured out[2]; /* stdout, stderr */
};

static void exec_call_free(struct exec_call *x)
{
    lsb_wait_cancel(x->waiter);
    cws_rt_exec_free(x->ex);
    if (x->sb)
        x->sb->busy--;
    if (x->req)
        coreweave__sandbox__v1__exec_request__free_unpacked(x->req, NULL);
    svc_env_vector_free(x->env);
    free(x->out[0].data);
    free(x->out[1].data);
    free(x);
}

static void capture(struct captured *c, size_t cap, const uint8_t *data, size_t len)
{
    c->produced += len;
    if (c->len >= cap)
        return;
    size_t keep = len < cap - c->len ? len : cap - c->len;
    uint8_t *grown = realloc(c->data, c->len + keep);
    if (!grown)
        return; /* reported as truncated: produced > len */
    memcpy(grown + c->len, data, keep);
    c->data = grown;
    c->len += keep;
}

static void on_output(struct cws_rt_exec *ex, int fd, const uint8_t *data, size_t len, void *ud)
{
    struct exec_call *x = ud;
    (void)ex;
    capture(&x->out[fd == 2 ? 1 : 0], x->cap, data, len);
}

static void on_exit_event(struct cws_rt_exec *ex, int exit_code, void *ud)
{
    struct exec_call *x = ud;
    ExecResponse resp = COREWEAVE__SANDBOX__V1__EXEC_RESPONSE__INIT;
    (void)ex;
    resp.stdout.data = x->out[0].data;
    resp.stdout.len = x->out[0].len;
    resp.stderr.data = x->out[1].data;
    resp.stderr.len = x->out[1].len;
    resp.exit_code = exit_code;
    resp.stdout_truncated = x->out[0].produced > x->out[0].len;
    resp.stderr_truncated = x->out[1].produced > x->out[1].len;
    resp.stdout_bytes_produced = (int64_t)x->out[0].produced;
    resp.stderr_bytes_produced = (int64_t)x->out[1].produced;
    cws_gcall_send_pb(x->call, &resp.base);
    cws_gcall_finish(x->call, NULL);
    exec_call_free(x);
}

static void on_error(struct cws_rt_exec *ex, const struct cws_error *err, void *ud)
{
    struct exec_call *x = ud;
    (void)ex;
    svc_fail_error(x->call, err, NULL);
    exec_call_free(x);
}

static const struct cws_rt_exec_events exec_events = {
    .on_output = on_output,
    .on_exit = on_exit_event,
    .on_error = on_error,
};

static void start_command(struct lsb *sb, const struct cws_error *not_running, void *ud)
{
    struct exec_call *x = ud;
    struct cws_error err;
    x->waiter = NULL;
    if (not_running) {
        svc_fail_error(x->call, not_running, NULL);
        exec_call_free(x);
        return;
    }
    /* The command vector of the request ends with a NULL already (protobuf-c's repeated
     * strings do not), so build one. */
    const char **argv = calloc(x->req->n_command + 1, sizeof(*argv));
    if (!argv || svc_env_vector((void *const *)x->req->env, x->req->n_env, &x->env) < 0) {
        free(argv);
        svc_fail(x->call, GRPC_INTERNAL, NULL, NULL, "out of memory");
        exec_call_free(x);
        return;
    }
    for (size_t i = 0; i < x->req->n_command; i++)
        argv[i] = x->req->command[i];
    struct cws_rt_exec_spec spec = {
        .argv = argv,
        .env = (const char *const *)x->env,
    };
    int r = cws_rt_exec_start(sb->rt, &spec, &exec_events, x, &x->ex, &err);
    free(argv);
    if (r < 0) {
        x->ex = NULL;
        svc_fail_error(x->call, &err, NULL);
        exec_call_free(x);
    }
}

static void on_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    struct exec_call *x = ud;
    x->req = coreweave__sandbox__v1__exec_request__unpack(NULL, len, data);
    if (!x->req) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL, "malformed ExecRequest message");
        exec_call_free(x);
    }
}

static void on_half_close(struct cws_gcall *call, void *ud)
{
    struct exec_call *x = ud;
    if (x->req->n_command == 0 || !x->req->command[0][0]) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL, "command must not be empty");
        exec_call_free(x);
        return;
    }
    x->sb = svc_sandbox_or_fail(x->svc, call, x->req->sandbox_id);
    if (!x->sb) {
        exec_call_free(x);
        return;
    }
    x->sb->busy++;
    int64_t want = x->req->max_output_bytes;
    x->cap = want <= 0                          ? CWS_SVC_EXEC_OUTPUT_DEFAULT
             : (uint64_t)want < EXEC_OUTPUT_MAX ? (size_t)want
                                                : EXEC_OUTPUT_MAX;
    struct cws_error err;
    int r = lsb_when_running(x->sb, start_command, x, &x->waiter, &err);
    if (r == 0) {
        start_command(x->sb, NULL, x);
    } else if (r < 0) {
        svc_fail_error(call, &err, NULL);
        exec_call_free(x);
    }
}

static void on_cancel(struct cws_gcall *call, enum cws_errcode why, void *ud)
{
    (void)call;
    (void)why;
    exec_call_free(ud);
}

int svc_start_exec(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *ret_handlers,
                   void **ret_call_ud, struct cws_gstatus *ret_status)
{
    (void)ret_status;
    struct exec_call *x = calloc(1, sizeof(*x));
    if (!x)
        return -CWS_E_NOMEM;
    x->svc = server_ud;
    x->call = call;
    ret_handlers->on_message = on_message;
    ret_handlers->on_half_close = on_half_close;
    ret_handlers->on_cancel = on_cancel;
    *ret_call_ud = x;
    return 0;
}
