/* logs: a sandbox's main-process output, as logs.data notifications until the final (nil)
 * response. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PACK_OK(expr) ((expr) == 0)

struct logs_state {
    cws_logs_fn fn;
    void *userdata;
    struct cwsc_stream stream; /* without a callback */
};

static void free_logs(void *state)
{
    struct logs_state *st = state;
    cwsc_stream_free(&st->stream);
    free(st);
}

static void notify_logs(cws_op *op, const char *method, const msgpack_object *params)
{
    struct logs_state *st = op->state;
    const void *data = NULL;
    size_t len = 0;
    int64_t time_ms = 0;
    if (strcmp(method, "logs.data") != 0 ||
        cws_rpc_param_bytes(params, "data", &data, &len, NULL) <= 0)
        return;
    cws_rpc_param_int(params, "time_ms", INT64_MIN, INT64_MAX, &time_ms, NULL);
    if (st->fn) {
        st->fn(op, data, len, time_ms, st->userdata);
    } else if (cwsc_stream_push(&st->stream, data, len) < 0) {
        struct cws_error e;
        cws_error_set(&e, CWS_E_NOMEM, "cannot keep the log");
        cwsc_op_fail_locally(op, &e);
    }
}

static int parse_logs(cws_op *op, const msgpack_object *result, struct cws_error *err)
{
    struct logs_state *st = op->state;
    st->stream.complete = true;
    return 0;
}

static const struct cwsc_op_type logs_type = {
    .name = "logs",
    .cancel_when_freed = true,
    .parse = parse_logs,
    .notify = notify_logs,
    .free_state = free_logs,
};

struct logs_params {
    const char *id;
    const struct cws_logs_options *o;
};

static int pack_logs(msgpack_packer *pk, const void *ud)
{
    const struct logs_params *p = ud;
    const struct cws_logs_options *o = p->o;
    size_t n = 3 + (o->tail_lines > 0 ? 1 : 0) + (o->since_ms > 0 ? 1 : 0);
    bool ok = PACK_OK(msgpack_pack_map(pk, n)) && PACK_OK(cws_rpc_pack_kv_cstr(pk, "id", p->id)) &&
              PACK_OK(cws_rpc_pack_kv_bool(pk, "follow", o->follow)) &&
              PACK_OK(cws_rpc_pack_kv_bool(pk, "timestamps", o->timestamps));
    if (ok && o->tail_lines > 0)
        ok = PACK_OK(cws_rpc_pack_kv_int(pk, "tail_lines", o->tail_lines));
    if (ok && o->since_ms > 0)
        ok = PACK_OK(cws_rpc_pack_kv_int(pk, "since_ms", o->since_ms));
    return ok ? 0 : -CWS_E_NOMEM;
}

int cws_logs(cws_client *c, const char *id, const struct cws_logs_options *opts, cws_op **ret_op,
             struct cws_error *err)
{
    static const struct cws_logs_options defaults = {0};
    struct logs_params p = {id, opts ? opts : &defaults};
    int r = cwsc_check_id(id, err);
    if (r < 0)
        return r;
    if (p.o->tail_lines < 0 || p.o->since_ms < 0)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "tail_lines and since_ms must not be negative");
    struct logs_state *st = calloc(1, sizeof(*st));
    if (!st)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    st->fn = p.o->on_data;
    st->userdata = p.o->userdata;
    return cwsc_call(c, "logs", &logs_type, st, pack_logs, &p, ret_op, err);
}

ssize_t cws_logs_read(cws_op *op, void *buf, size_t len, int timeout_ms, struct cws_error *err)
{
    struct logs_state *st = cwsc_op_state(op, &logs_type);
    if (!st || st->fn)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "not a logs op whose data is kept for a reader");
    return cwsc_stream_read(op, &st->stream, buf, len, timeout_ms, err);
}
