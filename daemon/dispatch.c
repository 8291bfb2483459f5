/* Routing requests and notifications of a client to their handlers. Until a client has said
 * hello, only hello is served. */
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "rpc_encode.h"
#include "rpc_params.h"

static const struct cwsd_method methods[] = {
    {"hello", cwsd_method_hello},
    {"daemon.status", cwsd_method_daemon_status},
#ifdef CWSD_HAVE_BACKEND
    {"sandbox.create", cwsd_method_sandbox_create},
    {"sandbox.get", cwsd_method_sandbox_get},
    {"sandbox.list", cwsd_method_sandbox_list},
    {"sandbox.wait", cwsd_method_sandbox_wait},
    {"sandbox.stop", cwsd_method_sandbox_stop},
    {"sandbox.delete", cwsd_method_sandbox_delete},
    {"sandbox.purge", cwsd_method_sandbox_purge},
    {"exec", cwsd_method_exec},
    {"file.read", cwsd_method_file_read},
    {"file.write", cwsd_method_file_write},
    {"logs", cwsd_method_logs},
    {"session.open", cwsd_method_session_open},
    {"session.close", cwsd_method_session_close},
    {"session.list", cwsd_method_session_list},
    {"session.get", cwsd_method_session_get},
    {"sandbox.adopt", cwsd_method_sandbox_adopt},
    {"sandbox.detach", cwsd_method_sandbox_detach},
#endif
};

static const struct cwsd_method *find_method(const char *name)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(methods[i].name, name) == 0)
            return &methods[i];
    return NULL;
}

void cwsd_dispatch(struct cwsd_client *c, const struct cws_rpc_msg *msg)
{
    if (cwsd_client_find_call(c, msg->msgid)) {
        /* The id names the stream of the call in flight: it cannot be reused. */
        struct cws_error err;
        cws_error_set(&err, CWS_E_INVALID_ARGUMENT, "msgid %u is already in use by a call",
                      msg->msgid);
        msgpack_packer pk;
        cwsd_client_packer(c, &pk);
        cws_rpc_pack_error_response(&pk, msg->msgid, &err);
        return;
    }
    struct cwsd_call *call = cwsd_call_new(c, msg->msgid, msg->method);
    if (!call) {
        cwsd_client_close(c, "out of memory");
        return;
    }
    const struct cwsd_method *m = find_method(msg->method);
    if (!m) {
        cwsd_call_failf(call, CWS_E_UNIMPLEMENTED, "unknown method '%s'", msg->method);
        return;
    }
    if (!c->hello_done && m->fn != cwsd_method_hello) {
        cwsd_call_failf(call, CWS_E_PROTOCOL, "the first request must be hello, not %s",
                        msg->method);
        return;
    }
    m->fn(call, msg->params);
}

/* exec.stdin, exec.eof, exec.resize and cancel all name a call by its msgid in "id". */
void cwsd_dispatch_notification(struct cwsd_client *c, const struct cws_rpc_msg *msg)
{
    int64_t id = -1;
    struct cws_error err;
    if (cws_rpc_required(cws_rpc_param_int(msg->params, "id", 0, UINT32_MAX, &id, &err), "id",
                         &err) < 0) {
        cws_log(CWS_LOG_DEBUG, "client %llu: notification %s ignored: %s",
                (unsigned long long)c->id, msg->method, err.message);
        return;
    }
    struct cwsd_call *call = cwsd_client_find_call(c, (uint32_t)id);
    if (!call) {
        cws_log(CWS_LOG_DEBUG, "client %llu: %s for call %lld that is not in flight",
                (unsigned long long)c->id, msg->method, (long long)id);
        return;
    }
    if (strcmp(msg->method, "cancel") == 0) {
        void (*cancel)(struct cwsd_call *, void *) = call->on_cancel;
        if (cancel)
            cancel(call, call->ud);
        cwsd_call_failf(call, CWS_E_CANCELLED, "cancelled by the client");
        return;
    }
    if (call->on_notify)
        call->on_notify(call, msg->method, msg->params, call->ud);
}
