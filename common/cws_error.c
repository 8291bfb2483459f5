/* The error table of cws_error.h turned into lookups. */
#include "cws_error.h"

#include <stdio.h>
#include <string.h>

struct errcode_info {
    const char *name;
    const char *message;
    int grpc;
    bool retryable;
};

static const struct errcode_info errcode_infos[CWS_E__COUNT] = {
#define CWS_X_INFO(name_, wire, msg, grpc_, retry) [CWS_E_##name_] = {wire, msg, grpc_, retry},
    CWS_ERROR_TABLE(CWS_X_INFO)
#undef CWS_X_INFO
};

static bool errcode_valid(enum cws_errcode code)
{
    return (unsigned)code < CWS_E__COUNT;
}

const char *cws_errcode_name(enum cws_errcode code)
{
    return errcode_valid(code) ? errcode_infos[code].name : "UNKNOWN";
}

const char *cws_errcode_message(enum cws_errcode code)
{
    return errcode_valid(code) ? errcode_infos[code].message : "unknown error";
}

int cws_errcode_from_name(const char *name, enum cws_errcode *ret_code)
{
    if (!name)
        return -CWS_E_INVALID_ARGUMENT;
    for (int i = 0; i < CWS_E__COUNT; i++) {
        if (strcmp(errcode_infos[i].name, name) == 0) {
            *ret_code = (enum cws_errcode)i;
            return 0;
        }
    }
    return -CWS_E_INVALID_ARGUMENT;
}

bool cws_errcode_retryable(enum cws_errcode code)
{
    return errcode_valid(code) && errcode_infos[code].retryable;
}

int cws_errcode_to_grpc(enum cws_errcode code)
{
    return errcode_valid(code) ? errcode_infos[code].grpc : 2;
}

enum cws_errcode cws_errcode_from_grpc(int grpc_status)
{
    /* The first 17 table entries are the gRPC codes in order. */
    if (grpc_status < 0 || grpc_status > 16)
        return CWS_E_UNKNOWN;
    return (enum cws_errcode)grpc_status;
}

void cws_error_clear(struct cws_error *err)
{
    if (!err)
        return;
    memset(err, 0, sizeof(*err));
    err->code = CWS_E_OK;
    err->retry_after_ms = -1;
}

int cws_error_setv(struct cws_error *err, enum cws_errcode code, const char *fmt, va_list ap)
{
    if (err) {
        cws_error_clear(err);
        err->code = code;
        err->retryable = cws_errcode_retryable(code);
        if (fmt)
            vsnprintf(err->message, sizeof(err->message), fmt, ap);
        else
            snprintf(err->message, sizeof(err->message), "%s", cws_errcode_message(code));
    }
    return -(int)code;
}

int cws_error_set(struct cws_error *err, enum cws_errcode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = cws_error_setv(err, code, fmt, ap);
    va_end(ap);
    return r;
}

void cws_error_set_reason(struct cws_error *err, const char *reason)
{
    if (!err)
        return;
    snprintf(err->reason, sizeof(err->reason), "%s", reason ? reason : "");
}
