/* ReadFile and WriteFile: whole files up to CWS_SVC_FILE_MAX in one message. Errors carry the
 * CWSANDBOX_FILE_* reasons with metadata filepath (and size_bytes/max_size_bytes for
 * FILE_TOO_LARGE, which the clients need to fall back to streaming). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "service.h"

typedef Coreweave__Sandbox__V1__ReadFileRequest ReadFileRequest;
typedef Coreweave__Sandbox__V1__ReadFileResponse ReadFileResponse;
typedef Coreweave__Sandbox__V1__WriteFileRequest WriteFileRequest;
typedef Coreweave__Sandbox__V1__WriteFileResponse WriteFileResponse;

/* The running sandbox a file RPC addresses, or NULL after answering. */
static struct lsb *file_target(struct svc *svc, struct cws_gcall *call, const char *id,
                               const char *path)
{
    struct lsb *sb = svc_sandbox_or_fail(svc, call, id);
    if (!sb)
        return NULL;
    if (!path[0] || path[0] != '/') {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL,
                 "path must be an absolute path inside the sandbox, got '%.200s'", path);
        return NULL;
    }
    if (sb->state != COREWEAVE__SANDBOX__V1__STATE__STATE_RUNNING || !sb->rt) {
        svc_fail_not_running(call, sb);
        return NULL;
    }
    return sb;
}

/* The FILE_* reason for an error the runtime gave without one: the clients map file errors
 * by reason. */
static const char *file_reason(const struct cws_error *err)
{
    if (err->reason[0])
        return err->reason;
    switch (err->code) {
    case CWS_E_NOT_FOUND:
        return "CWSANDBOX_FILE_NOT_FOUND";
    case CWS_E_PERMISSION_DENIED:
        return "CWSANDBOX_FILE_PERMISSION_DENIED";
    case CWS_E_RESOURCE_EXHAUSTED:
        return "CWSANDBOX_FILE_TOO_LARGE";
    default:
        return "CWSANDBOX_FILE_IO_FAILED";
    }
}

static void fail_file(struct cws_gcall *call, const struct cws_error *in, const char *path,
                      const char *operation, uint64_t size)
{
    struct cws_error copy = *in;
    const struct cws_error *err = &copy;
    cws_error_set_reason(&copy, file_reason(in));
    char size_text[32], max_text[32];
    snprintf(size_text, sizeof(size_text), "%" PRIu64, size);
    snprintf(max_text, sizeof(max_text), "%u", CWS_SVC_FILE_MAX);
    const char *const md[] = {"filepath",       path,         "operation",
                              operation,        "size_bytes", size_text,
                              "max_size_bytes", max_text,     NULL};
    bool too_large = err->code == CWS_E_RESOURCE_EXHAUSTED;
    if (!too_large) {
        const char *const md_short[] = {"filepath", path, "operation", operation, NULL};
        svc_fail_error(call, err, md_short);
        return;
    }
    svc_fail_error(call, err, md);
}

static void read_file(struct svc *svc, struct cws_gcall *call, const ProtobufCMessage *m)
{
    const ReadFileRequest *req = (const ReadFileRequest *)m;
    ReadFileResponse resp = COREWEAVE__SANDBOX__V1__READ_FILE_RESPONSE__INIT;
    struct cws_error err;
    uint8_t *data = NULL;
    size_t len = 0;
    uint64_t size = 0;

    struct lsb *sb = file_target(svc, call, req->sandbox_id, req->path);
    if (!sb)
        return;
    if (cws_rt_file_read(sb->rt, req->path, CWS_SVC_FILE_MAX, &data, &len, &size, &err) < 0) {
        fail_file(call, &err, req->path, "read_file", size);
        return;
    }
    resp.content.data = data;
    resp.content.len = len;
    cws_gcall_send_pb(call, &resp.base);
    free(data);
    cws_gcall_finish(call, NULL);
}

static void write_file(struct svc *svc, struct cws_gcall *call, const ProtobufCMessage *m)
{
    const WriteFileRequest *req = (const WriteFileRequest *)m;
    WriteFileResponse resp = COREWEAVE__SANDBOX__V1__WRITE_FILE_RESPONSE__INIT;
    struct cws_error err;

    struct lsb *sb = file_target(svc, call, req->sandbox_id, req->path);
    if (!sb)
        return;
    if (req->content.len > CWS_SVC_FILE_MAX) {
        cws_error_set(&err, CWS_E_RESOURCE_EXHAUSTED,
                      "file of %zu bytes is larger than max %u bytes of WriteFile",
                      req->content.len, CWS_SVC_FILE_MAX);
        cws_error_set_reason(&err, "CWSANDBOX_FILE_TOO_LARGE");
        fail_file(call, &err, req->path, "write_file", req->content.len);
        return;
    }
    if (cws_rt_file_write(sb->rt, req->path, req->content.data, req->content.len, &err) < 0) {
        fail_file(call, &err, req->path, "write_file", req->content.len);
        return;
    }
    cws_gcall_send_pb(call, &resp.base);
    cws_gcall_finish(call, NULL);
}

int svc_start_read_file(struct cws_gcall *call, void *server_ud,
                        struct cws_gcall_handlers *ret_handlers, void **ret_call_ud,
                        struct cws_gstatus *ret_status)
{
    (void)ret_status;
    return svc_start_unary(call, server_ud, &coreweave__sandbox__v1__read_file_request__descriptor,
                           read_file, ret_handlers, ret_call_ud);
}

int svc_start_write_file(struct cws_gcall *call, void *server_ud,
                         struct cws_gcall_handlers *ret_handlers, void **ret_call_ud,
                         struct cws_gstatus *ret_status)
{
    (void)ret_status;
    return svc_start_unary(call, server_ud, &coreweave__sandbox__v1__write_file_request__descriptor,
                           write_file, ret_handlers, ret_call_ud);
}
