/* Error codes shared by cwsandboxd, libcwsandbox-client and the CLI.
 *
 * One table defines every code once: its wire name (the `code` string of the daemon
 * protocol's error map), a default message, the gRPC status it maps to and whether a
 * caller may retry it. Functions across the project return 0 or -CWS_E_xxx.
 *
 * This header depends on libc only, so the client library can install it as is.
 */
#ifndef CWS_ERROR_H
#define CWS_ERROR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X(enum suffix, wire name, default message, gRPC code, retryable) */
#define CWS_ERROR_TABLE(X)                                                                         \
    X(OK, "OK", "success", 0, false)                                                               \
    X(CANCELLED, "CANCELLED", "the operation was cancelled", 1, false)                             \
    X(UNKNOWN, "UNKNOWN", "unknown error", 2, false)                                               \
    X(INVALID_ARGUMENT, "INVALID_ARGUMENT", "invalid argument", 3, false)                          \
    X(DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "the deadline expired", 4, true)                     \
    X(NOT_FOUND, "NOT_FOUND", "not found", 5, false)                                               \
    X(ALREADY_EXISTS, "ALREADY_EXISTS", "already exists", 6, false)                                \
    X(PERMISSION_DENIED, "PERMISSION_DENIED", "permission denied", 7, false)                       \
    X(RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED", "resource exhausted", 8, true)                     \
    X(FAILED_PRECONDITION, "FAILED_PRECONDITION", "failed precondition", 9, false)                 \
    X(ABORTED, "ABORTED", "aborted", 10, false)                                                    \
    X(OUT_OF_RANGE, "OUT_OF_RANGE", "out of range", 11, false)                                     \
    X(UNIMPLEMENTED, "UNIMPLEMENTED", "not implemented", 12, false)                                \
    X(INTERNAL, "INTERNAL", "internal error", 13, false)                                           \
    X(UNAVAILABLE, "UNAVAILABLE", "the service is unavailable", 14, true)                          \
    X(DATA_LOSS, "DATA_LOSS", "data loss", 15, false)                                              \
    X(UNAUTHENTICATED, "UNAUTHENTICATED", "not authenticated", 16, false)                          \
    X(SANDBOX_FAILED, "SANDBOX_FAILED", "the sandbox failed", 9, false)                            \
    X(SANDBOX_TERMINATED, "SANDBOX_TERMINATED", "the sandbox has terminated", 9, false)            \
    X(PROTOCOL, "PROTOCOL", "protocol error", 13, false)                                           \
    X(NOMEM, "NOMEM", "out of memory", 8, false)                                                   \
    X(IO, "IO", "input/output error", 13, false)

enum cws_errcode {
#define CWS_X_ENUM(name, wire, msg, grpc, retry) CWS_E_##name,
    CWS_ERROR_TABLE(CWS_X_ENUM)
#undef CWS_X_ENUM
        CWS_E__COUNT
};

/* Sizes of the fixed buffers in struct cws_error; longer texts are truncated. */
#define CWS_ERROR_MESSAGE_MAX 512
#define CWS_ERROR_REASON_MAX  96

/* A filled-in error: no heap memory, so it can live on the stack and be copied. */
struct cws_error {
    enum cws_errcode code;
    char message[CWS_ERROR_MESSAGE_MAX]; /* human-readable, NUL-terminated */
    char reason[CWS_ERROR_REASON_MAX];   /* backend ErrorInfo reason, or "" */
    bool retryable;
    int64_t retry_after_ms; /* -1 when the backend gave no hint */
};

/* Wire name of a code ("INVALID_ARGUMENT"); "UNKNOWN" for a value outside the table. */
const char *cws_errcode_name(enum cws_errcode code);

/* Default message of a code; never NULL. */
const char *cws_errcode_message(enum cws_errcode code);

/* Parse a wire name. Returns 0 and fills *ret_code, or -CWS_E_INVALID_ARGUMENT. */
int cws_errcode_from_name(const char *name, enum cws_errcode *ret_code);

/* Whether a caller may retry an operation that failed with this code. */
bool cws_errcode_retryable(enum cws_errcode code);

/* gRPC status code (0..16) for a code, as cwsandbox-local answers it. */
int cws_errcode_to_grpc(enum cws_errcode code);

/* Code for a gRPC status; values outside 0..16 become CWS_E_UNKNOWN (the gRPC rule). */
enum cws_errcode cws_errcode_from_grpc(int grpc_status);

/* Reset an error to OK with empty texts. Accepts NULL. */
void cws_error_clear(struct cws_error *err);

/* Fill err (if not NULL) with code and a printf-style message; a NULL fmt uses the code's
 * default message. Returns -code, so `return cws_error_set(err, CWS_E_X, "...")` reads well. */
int cws_error_set(struct cws_error *err, enum cws_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As cws_error_set, with a va_list. */
int cws_error_setv(struct cws_error *err, enum cws_errcode code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Set the backend reason (ErrorInfo.reason) of an already filled error. Accepts NULL err. */
void cws_error_set_reason(struct cws_error *err, const char *reason);

#endif
