/* Answering an RPC with an error the official clients understand: the gRPC code, a message,
 * and a google.rpc.ErrorInfo (domain cwsandbox.com) whose reason they map to an exception. */
#include <stdarg.h>
#include <stdio.h>

#include "service.h"

void svc_fail(struct cws_gcall *call, int grpc_code, const char *reason,
              const char *const *metadata_kv, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    struct cws_gstatus st = {
        .grpc_code = grpc_code,
        .message = message,
        .reason = reason,
        .metadata_kv = metadata_kv,
        .retry_delay_ms = -1,
    };
    cws_gcall_finish(call, &st);
}

void svc_fail_not_found(struct cws_gcall *call, const char *id)
{
    const char *const md[] = {"sandbox_id", id, NULL};
    svc_fail(call, GRPC_NOT_FOUND, "CWSANDBOX_SANDBOX_NOT_FOUND", md, "sandbox %s not found", id);
}

void svc_fail_not_running(struct cws_gcall *call, const struct lsb *sb)
{
    const char *const md[] = {"sandbox_id", sb->id, NULL};
    svc_fail(call, cws_errcode_to_grpc(CWS_E_FAILED_PRECONDITION), "CWSANDBOX_SANDBOX_NOT_RUNNING",
             md, "sandbox %s is not running", sb->id);
}

void svc_fail_error(struct cws_gcall *call, const struct cws_error *err,
                    const char *const *metadata_kv)
{
    svc_fail(call, cws_errcode_to_grpc(err->code), err->reason[0] ? err->reason : NULL, metadata_kv,
             "%s", err->message);
}

struct lsb *svc_sandbox_or_fail(struct svc *svc, struct cws_gcall *call, const char *id)
{
    if (!id || !id[0]) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL, "sandbox_id is required");
        return NULL;
    }
    struct lsb *sb = lsb_find(svc, id);
    if (!sb)
        svc_fail_not_found(call, id);
    return sb;
}
