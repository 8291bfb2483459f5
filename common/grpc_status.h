/* gRPC call status: reading grpc-status, grpc-message and grpc-status-details-bin from a
 * response (client side) and writing them (the local server).
 *
 * Details are read the way the official SDKs read them (sdk-wire-behaviour.md, 5.1): the
 * outer code and message win over the google.rpc.Status inside, the first ErrorInfo with a
 * non-empty reason gives reason, domain and metadata, the first RetryInfo with a delay gives
 * the retry hint, every BadRequest field violation is collected, and details that do not
 * decode are ignored rather than failing the call.
 */
#ifndef CWS_GRPC_STATUS_H
#define CWS_GRPC_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "cws_error.h"

/* ErrorInfo domain whose reasons the SDKs trust; a cwsandbox server must use it. */
#define CWS_GRPC_ERROR_DOMAIN "cwsandbox.com"

/* Type URLs of the details this module writes. */
#define CWS_GRPC_ERROR_INFO_TYPE_URL  "type.googleapis.com/google.rpc.ErrorInfo"
#define CWS_GRPC_RETRY_INFO_TYPE_URL  "type.googleapis.com/google.rpc.RetryInfo"
#define CWS_GRPC_BAD_REQUEST_TYPE_URL "type.googleapis.com/google.rpc.BadRequest"

struct cws_grpc_metadata_entry {
    char *key;
    char *value;
};

struct cws_grpc_field_violation {
    char *field;
    char *description; /* description, else localized_message.message, else reason */
};

/* A parsed status. Every pointer is owned by the struct and freed by cws_grpc_status_clear();
 * start from CWS_GRPC_STATUS_INIT. */
struct cws_grpc_status {
    int code;      /* 0..16 */
    char *message; /* percent-decoded grpc-message; never NULL after a parse ("" if none) */
    char *reason;  /* ErrorInfo.reason, or NULL when no ErrorInfo had one */
    char *domain;  /* domain of that same ErrorInfo, or NULL */
    struct cws_grpc_metadata_entry *metadata; /* its metadata map, in wire order */
    size_t n_metadata;
    int64_t retry_delay_ms; /* RetryInfo.retry_delay rounded up to ms, or -1 when none */
    struct cws_grpc_field_violation *violations; /* BadRequest field violations */
    size_t n_violations;
};

#define CWS_GRPC_STATUS_INIT                                                                       \
    {                                                                                              \
        .retry_delay_ms = -1                                                                       \
    }

/* Free everything st holds and reset it to CWS_GRPC_STATUS_INIT. Accepts NULL. */
void cws_grpc_status_clear(struct cws_grpc_status *st);

/* Parse the status of a call from its header values, each NULL when absent:
 *   grpc_status   decimal 0..16, digits only; anything else, or NULL, is -CWS_E_PROTOCOL
 *                 (the caller decides what a missing status means),
 *   grpc_message  percent-encoded text: %XX decodes; a malformed or truncated sequence, and
 *                 %00 (it would cut the C string short), are kept literally,
 *   details_bin   base64 (padded or not) of a google.rpc.Status; when it or anything in it
 *                 does not decode, it is ignored. Its message stands in for grpc_message only
 *                 when grpc_message is NULL; its code is never used.
 * Returns 0 and fills *ret, or -CWS_E_PROTOCOL / -CWS_E_NOMEM / -CWS_E_INVALID_ARGUMENT (NULL
 * ret) with err filled and *ret untouched. *ret is overwritten, not freed: pass an empty one.
 * The caller frees what *ret holds with cws_grpc_status_clear(). */
int cws_grpc_status_parse(const char *grpc_status, const char *grpc_message,
                          const char *details_bin, struct cws_grpc_status *ret,
                          struct cws_error *err);

/* Value of the last metadata entry named key (a repeated map key means the last one wins, as
 * in protobuf), or NULL. The string belongs to st. */
const char *cws_grpc_status_metadata_get(const struct cws_grpc_status *st, const char *key);

/* Turn a status into a project error: code from cws_errcode_from_grpc(), the message (the
 * code's default message when empty), the reason, retryable when the code is or when the
 * server gave a retry delay, and that delay as retry_after_ms. Fills ret (if not NULL) and
 * returns -code like cws_error_set(), so 0 for an OK status; a NULL st is reported as
 * -CWS_E_INVALID_ARGUMENT. */
int cws_grpc_status_to_error(const struct cws_grpc_status *st, struct cws_error *ret);

/* Percent-encode msg for grpc-message: bytes outside 0x20..0x7E and '%' become %XX
 * (uppercase). Returns 0 and sets *ret_encoded, which the caller frees with free(), or
 * -CWS_E_INVALID_ARGUMENT (NULL argument) or -CWS_E_NOMEM. */
int cws_grpc_message_encode(const char *msg, char **ret_encoded);

/* Build the grpc-status-details-bin value for an error: a google.rpc.Status with code and
 * message (NULL is ""), an ErrorInfo when reason is neither NULL nor "" (domain NULL means
 * CWS_GRPC_ERROR_DOMAIN; metadata_kv is NULL or key, value, ..., NULL), and a RetryInfo when
 * retry_delay_ms >= 0 (-1 means none). The text is UNPADDED base64, as the gRPC spec asks
 * senders to emit. Returns 0 and sets *ret_base64, which the caller frees with free(), or
 * -CWS_E_INVALID_ARGUMENT (code outside 0..16, a key without a value, retry_delay_ms < -1,
 * NULL ret_base64) or -CWS_E_NOMEM. */
int cws_grpc_status_details_encode(int code, const char *message, const char *reason,
                                   const char *domain, const char *const *metadata_kv,
                                   int64_t retry_delay_ms, char **ret_base64);

/* As cws_grpc_status_details_encode(), plus a google.rpc.BadRequest (after the ErrorInfo and
 * RetryInfo) with one FieldViolation{field, description} per pair of violations_fd: field,
 * description, ..., NULL; NULL or an empty list adds none. A field without a description is
 * -CWS_E_INVALID_ARGUMENT. The caller frees *ret_base64 with free(). */
int cws_grpc_status_details_encode_with_violations(int code, const char *message,
                                                   const char *reason, const char *domain,
                                                   const char *const *metadata_kv,
                                                   int64_t retry_delay_ms,
                                                   const char *const *violations_fd,
                                                   char **ret_base64);

#endif
