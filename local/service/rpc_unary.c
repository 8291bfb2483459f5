/* Unary RPCs that answer at once: unpack the one request message, run the handler, which
 * finishes the call before returning. A request that is not valid protobuf is
 * INVALID_ARGUMENT. */
#include <stdlib.h>

#include "service.h"

struct unary_call {
    struct svc *svc;
    const ProtobufCMessageDescriptor *desc;
    svc_unary_fn fn;
    ProtobufCMessage *req;
};

static void unary_free(struct unary_call *u)
{
    if (u->req)
        protobuf_c_message_free_unpacked(u->req, NULL);
    free(u);
}

static void on_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    struct unary_call *u = ud;
    u->req = protobuf_c_message_unpack(u->desc, NULL, len, data);
    if (!u->req) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL, "malformed %s message", u->desc->name);
        unary_free(u);
    }
}

static void on_half_close(struct cws_gcall *call, void *ud)
{
    struct unary_call *u = ud;
    u->fn(u->svc, call, u->req);
    unary_free(u);
}

static void on_cancel(struct cws_gcall *call, enum cws_errcode why, void *ud)
{
    (void)call;
    (void)why;
    unary_free(ud);
}

int svc_start_unary(struct cws_gcall *call, struct svc *svc, const ProtobufCMessageDescriptor *desc,
                    svc_unary_fn fn, struct cws_gcall_handlers *ret_handlers, void **ret_call_ud)
{
    (void)call;
    struct unary_call *u = calloc(1, sizeof(*u));
    if (!u)
        return -CWS_E_NOMEM;
    u->svc = svc;
    u->desc = desc;
    u->fn = fn;
    ret_handlers->on_message = on_message;
    ret_handlers->on_half_close = on_half_close;
    ret_handlers->on_cancel = on_cancel;
    ret_handlers->on_writable = NULL;
    *ret_call_ud = u;
    return 0;
}
