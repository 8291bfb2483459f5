/* StreamExec, as the official clients expect it: the first request is `init`; the first
 * response is `ready`, once the process runs; then `output` frames per stream, and exactly
 * one `exit` (or a terminal `error`) before OK. `close{}` and a bare half-close both mean
 * EOF on stdin and never kill the process; cancelling the call or its deadline does.
 * Backpressure both ways: a slow reader pauses the process's output, a slow process pauses
 * the client's stdin (HTTP/2 flow control). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "service.h"

typedef Coreweave__Sandbox__V1__ExecStreamRequest ExecStreamRequest;
typedef Coreweave__Sandbox__V1__ExecStreamResponse ExecStreamResponse;
typedef Coreweave__Sandbox__V1__ExecStreamInit ExecStreamInit;

#define REQ(x)  COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_##x
#define RESP(x) COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_##x

struct sx {
    struct svc *svc;
    struct cws_gcall *call;
    ExecStreamRequest *init_req;
    struct lsb *sb;
    struct lsb_waiter *waiter;
    struct cws_rt_exec *ex;
    char **env;
    bool started; /* `ready` was sent */
    bool stdin_closed;
    bool input_paused;
    bool output_paused;
};

static void sx_free(struct sx *x)
{
    lsb_wait_cancel(x->waiter);
    cws_rt_exec_free(x->ex);
    if (x->sb)
        x->sb->busy--;
    if (x->init_req)
        coreweave__sandbox__v1__exec_stream_request__free_unpacked(x->init_req, NULL);
    svc_env_vector_free(x->env);
    free(x);
}

static void set_input_paused(struct sx *x, bool paused)
{
    if (x->input_paused != paused) {
        x->input_paused = paused;
        cws_gcall_pause_input(x->call, paused);
    }
}

static void now_timestamp(Google__Protobuf__Timestamp *ts)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    google__protobuf__timestamp__init(ts);
    ts->seconds = t.tv_sec;
    ts->nanos = (int32_t)t.tv_nsec;
}

static int send_response(struct sx *x, ExecStreamResponse *resp)
{
    return cws_gcall_send_pb(x->call, &resp->base);
}

/* ---- runtime events ---- */

static void on_started(struct cws_rt_exec *ex, void *ud)
{
    struct sx *x = ud;
    ExecStreamResponse resp = COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__INIT;
    Coreweave__Sandbox__V1__ExecStreamReady ready = COREWEAVE__SANDBOX__V1__EXEC_STREAM_READY__INIT;
    Google__Protobuf__Timestamp ts;
    (void)ex;
    now_timestamp(&ts);
    ready.ready_time = &ts;
    resp.message_case = RESP(READY);
    resp.ready = &ready;
    send_response(x, &resp);
    x->started = true;
    set_input_paused(x, false); /* stdin that arrived meanwhile flows now */
}

static void on_output(struct cws_rt_exec *ex, int fd, const uint8_t *data, size_t len, void *ud)
{
    struct sx *x = ud;
    ExecStreamResponse resp = COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__INIT;
    Coreweave__Sandbox__V1__ExecStreamOutput out = COREWEAVE__SANDBOX__V1__EXEC_STREAM_OUTPUT__INIT;
    out.stream = fd == 2 ? COREWEAVE__SANDBOX__V1__EXEC_STREAM_OUTPUT__STREAM__STREAM_STDERR
                         : COREWEAVE__SANDBOX__V1__EXEC_STREAM_OUTPUT__STREAM__STREAM_STDOUT;
    out.data.data = (uint8_t *)data;
    out.data.len = len;
    resp.message_case = RESP(OUTPUT);
    resp.output = &out;
    if (send_response(x, &resp) == 1 && !x->output_paused) {
        x->output_paused = true;
        cws_rt_exec_pause_output(ex, true);
    }
}

static void on_stdin_drained(struct cws_rt_exec *ex, void *ud)
{
    (void)ex;
    set_input_paused(ud, false);
}

static void on_exit_event(struct cws_rt_exec *ex, int exit_code, void *ud)
{
    struct sx *x = ud;
    ExecStreamResponse resp = COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__INIT;
    Coreweave__Sandbox__V1__ExecStreamExit ex_msg = COREWEAVE__SANDBOX__V1__EXEC_STREAM_EXIT__INIT;
    Google__Protobuf__Timestamp ts;
    (void)ex;
    now_timestamp(&ts);
    ex_msg.exit_code = exit_code;
    ex_msg.completed_time = &ts;
    resp.message_case = RESP(EXIT);
    resp.exit = &ex_msg;
    send_response(x, &resp);
    cws_gcall_finish(x->call, NULL);
    sx_free(x);
}

static void on_error(struct cws_rt_exec *ex, const struct cws_error *err, void *ud)
{
    struct sx *x = ud;
    (void)ex;
    if (!x->started) {
        svc_fail_error(x->call, err, NULL);
    } else {
        /* After `ready` the clients expect a terminal in-band error. */
        ExecStreamResponse resp = COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__INIT;
        Coreweave__Sandbox__V1__ExecStreamError e = COREWEAVE__SANDBOX__V1__EXEC_STREAM_ERROR__INIT;
        e.message = (char *)err->message;
        e.code = (char *)(err->reason[0] ? err->reason : cws_errcode_name(err->code));
        resp.message_case = RESP(ERROR);
        resp.error = &e;
        send_response(x, &resp);
        cws_gcall_finish(x->call, NULL);
    }
    sx_free(x);
}

static const struct cws_rt_exec_events exec_events = {
    .on_started = on_started,
    .on_output = on_output,
    .on_stdin_drained = on_stdin_drained,
    .on_exit = on_exit_event,
    .on_error = on_error,
};

/* ---- starting ---- */

static void start_process(struct lsb *sb, const struct cws_error *not_running, void *ud)
{
    struct sx *x = ud;
    const ExecStreamInit *init = x->init_req->init;
    struct cws_error err;
    x->waiter = NULL;
    if (not_running) {
        svc_fail_error(x->call, not_running, NULL);
        sx_free(x);
        return;
    }
    const char **argv = calloc(init->n_command + 1, sizeof(*argv));
    if (!argv || svc_env_vector((void *const *)init->env, init->n_env, &x->env) < 0) {
        free(argv);
        svc_fail(x->call, GRPC_INTERNAL, NULL, NULL, "out of memory");
        sx_free(x);
        return;
    }
    for (size_t i = 0; i < init->n_command; i++)
        argv[i] = init->command[i];
    struct cws_rt_exec_spec spec = {
        .argv = argv,
        .env = (const char *const *)x->env,
        .tty = init->tty,
        .cols = init->tty_width,
        .rows = init->tty_height,
    };
    int r = cws_rt_exec_start(sb->rt, &spec, &exec_events, x, &x->ex, &err);
    free(argv);
    if (r < 0) {
        x->ex = NULL;
        svc_fail_error(x->call, &err, NULL);
        sx_free(x);
        return;
    }
    if (x->stdin_closed)
        cws_rt_exec_close_stdin(x->ex);
}

/* The first request: it must be `init`. Input stays paused until the process runs, so stdin
 * and half-close are applied in order after `ready`. */
static void handle_init(struct sx *x, ExecStreamRequest *req)
{
    struct cws_error err;
    if (req->message_case != REQ(INIT)) {
        svc_fail(x->call, GRPC_INVALID_ARGUMENT, NULL, NULL,
                 "the first StreamExec message must be init");
        coreweave__sandbox__v1__exec_stream_request__free_unpacked(req, NULL);
        sx_free(x);
        return;
    }
    x->init_req = req;
    const ExecStreamInit *init = req->init;
    if (init->n_command == 0 || !init->command[0][0]) {
        svc_fail(x->call, GRPC_INVALID_ARGUMENT, NULL, NULL, "command must not be empty");
        sx_free(x);
        return;
    }
    x->sb = svc_sandbox_or_fail(x->svc, x->call, init->sandbox_id);
    if (!x->sb) {
        sx_free(x);
        return;
    }
    x->sb->busy++;
    set_input_paused(x, true);
    int r = lsb_when_running(x->sb, start_process, x, &x->waiter, &err);
    if (r == 0) {
        start_process(x->sb, NULL, x);
    } else if (r < 0) {
        svc_fail_error(x->call, &err, NULL);
        sx_free(x);
    }
}

/* EOF on stdin; before the process exists it is remembered and applied at start. */
static void close_stdin(struct sx *x)
{
    if (x->stdin_closed)
        return;
    x->stdin_closed = true;
    if (x->ex)
        cws_rt_exec_close_stdin(x->ex);
}

static void handle_later(struct sx *x, const ExecStreamRequest *req)
{
    switch (req->message_case) {
    case REQ(STDIN):
        if (!x->ex || x->stdin_closed) /* input is paused until start; EOF ends stdin */
            break;
        if (cws_rt_exec_write(x->ex, req->stdin.data, req->stdin.len) == 1)
            set_input_paused(x, true);
        break;
    case REQ(RESIZE):
        if (x->ex)
            cws_rt_exec_resize(x->ex, req->resize->width, req->resize->height);
        break;
    case REQ(CLOSE):
        close_stdin(x);
        break;
    default:
        cws_log(CWS_LOG_DEBUG, "StreamExec: ignoring an unexpected message (case %d)",
                req->message_case);
        break;
    }
}

/* ---- call events ---- */

static void on_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    struct sx *x = ud;
    ExecStreamRequest *req = coreweave__sandbox__v1__exec_stream_request__unpack(NULL, len, data);
    if (!req) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL, "malformed ExecStreamRequest message");
        sx_free(x);
        return;
    }
    if (!x->init_req) {
        handle_init(x, req);
        return;
    }
    handle_later(x, req);
    coreweave__sandbox__v1__exec_stream_request__free_unpacked(req, NULL);
}

static void on_half_close(struct cws_gcall *call, void *ud)
{
    struct sx *x = ud;
    if (!x->init_req) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL,
                 "the request stream ended before an init message");
        sx_free(x);
        return;
    }
    close_stdin(x);
}

static void on_writable(struct cws_gcall *call, void *ud)
{
    struct sx *x = ud;
    (void)call;
    if (x->output_paused && x->ex) {
        x->output_paused = false;
        cws_rt_exec_pause_output(x->ex, false);
    }
}

static void on_cancel(struct cws_gcall *call, enum cws_errcode why, void *ud)
{
    (void)call;
    cws_log(CWS_LOG_DEBUG, "StreamExec cancelled (%s): killing the process", cws_errcode_name(why));
    sx_free(ud);
}

int svc_start_stream_exec(struct cws_gcall *call, void *server_ud,
                          struct cws_gcall_handlers *ret_handlers, void **ret_call_ud,
                          struct cws_gstatus *ret_status)
{
    (void)ret_status;
    struct sx *x = calloc(1, sizeof(*x));
    if (!x)
        return -CWS_E_NOMEM;
    x->svc = server_ud;
    x->call = call;
    ret_handlers->on_message = on_message;
    ret_handlers->on_half_close = on_half_close;
    ret_handlers->on_cancel = on_cancel;
    ret_handlers->on_writable = on_writable;
    *ret_call_ud = x;
    return 0;
}
