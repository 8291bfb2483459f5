/* Response header fields: the HEADERS of a call that sends messages, and the status as
 * trailers or as a trailers-only response (grpc-status, percent-encoded grpc-message,
 * grpc-status-details-bin). */
#include <stdlib.h>
#include <string.h>

#include "grpc_status.h"
#include "gsrv_private.h"
#include "log.h"

/* Longest grpc-message we send, encoded. gRPC clients refuse trailers over 8 KiB by default
 * and the details repeat the message, so a long one (a command's output, say) is cut. */
#define MESSAGE_MAX 2048
#define ELLIPSIS    "\xe2\x80\xa6"

#define NV(n, v, vlen)                                                                             \
    (nghttp2_nv)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vlen), NGHTTP2_NV_FLAG_NO_COPY_NAME        \
    }
#define NV_LIT(n, v) NV(n, v, sizeof(v) - 1)

static size_t encoded_size(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e && c != '%' ? 1 : 3;
}

/* A copy of msg cut so that it encodes to at most MESSAGE_MAX bytes, at a UTF-8 character
 * boundary, ending with an ellipsis; NULL when msg fits (or when out of memory, then the
 * whole message goes). The caller frees it with free(). */
static char *message_cut(const char *msg)
{
    size_t budget = MESSAGE_MAX - 3 * (sizeof(ELLIPSIS) - 1), used = 0, i = 0, total = 0;
    char *cut;

    for (const char *p = msg; *p; p++)
        total += encoded_size((unsigned char)*p);
    if (total <= MESSAGE_MAX)
        return NULL;
    while (msg[i] && used + encoded_size((unsigned char)msg[i]) <= budget)
        used += encoded_size((unsigned char)msg[i++]);
    while (i > 0 && ((unsigned char)msg[i] & 0xc0) == 0x80)
        i--; /* msg[i] continues a character that would be split */
    cut = malloc(i + sizeof(ELLIPSIS));
    if (!cut)
        return NULL;
    memcpy(cut, msg, i);
    memcpy(cut + i, ELLIPSIS, sizeof(ELLIPSIS));
    return cut;
}

static bool status_has_details(const struct cws_gstatus *st)
{
    return (st->reason && *st->reason) || st->n_violations > 0 || st->retry_delay_ms >= 0;
}

/* The violations as the NULL-terminated "field, description, ..." list grpc_status.c takes;
 * the caller frees the array (not the strings) with free(). */
static const char **violations_list(const struct cws_gstatus *st)
{
    const char **fd = calloc(2 * st->n_violations + 1, sizeof(*fd));

    if (!fd)
        return NULL;
    for (size_t i = 0; i < st->n_violations; i++) {
        fd[2 * i] = st->violations[i].field ? st->violations[i].field : "";
        fd[2 * i + 1] = st->violations[i].description ? st->violations[i].description : "";
    }
    return fd;
}

static char *encode_details(const struct cws_gstatus *st, const char *message)
{
    const char **fd = NULL;
    char *details = NULL;
    int r;

    if (st->n_violations > 0) {
        fd = violations_list(st);
        if (!fd)
            return NULL;
    }
    r = cws_grpc_status_details_encode_with_violations(st->grpc_code, message, st->reason, NULL,
                                                       st->metadata_kv, st->retry_delay_ms, fd,
                                                       &details);
    free(fd);
    if (r < 0) {
        cws_log(CWS_LOG_WARN, "status details of a gRPC %d error left out: %s", st->grpc_code,
                cws_errcode_message((enum cws_errcode) - r));
        return NULL;
    }
    return details;
}

void gresp_status_encode(const struct cws_gstatus *status, struct gresp_status *ret)
{
    static const char *const code_names[] = {"0", "1",  "2",  "3",  "4",  "5",  "6",  "7", "8",
                                             "9", "10", "11", "12", "13", "14", "15", "16"};
    int code = status ? status->grpc_code : 0;
    const char *message;
    char *cut;

    *ret = (struct gresp_status){.code = "0", .message = NULL, .details = NULL};
    if (code < 0 || code > 16) {
        cws_log(CWS_LOG_WARN, "invalid gRPC status code %d sent as UNKNOWN", code);
        code = 2;
    }
    ret->code = code_names[code];
    if (code == 0)
        return;
    cut = status->message ? message_cut(status->message) : NULL;
    message = cut ? cut : status->message;
    if (message && *message && cws_grpc_message_encode(message, &ret->message) < 0)
        cws_log(CWS_LOG_WARN, "out of memory: grpc-message of a gRPC %d error left out", code);
    if (status_has_details(status))
        ret->details = encode_details(status, message);
    free(cut);
}

void gresp_status_clear(struct gresp_status *s)
{
    if (!s)
        return;
    free(s->message);
    free(s->details);
    s->message = NULL;
    s->details = NULL;
}

size_t gresp_headers_nv(nghttp2_nv nv[GRESP_MAX_NV])
{
    nv[0] = NV_LIT(":status", "200");
    nv[1] = NV_LIT("content-type", "application/grpc");
    return 2;
}

size_t gresp_status_nv(const struct gresp_status *s, const char *http_status,
                       nghttp2_nv nv[GRESP_MAX_NV])
{
    size_t n = 0;

    if (http_status) {
        nv[n++] = NV(":status", http_status, strlen(http_status));
        nv[n++] = NV_LIT("content-type", "application/grpc");
    }
    nv[n++] = NV("grpc-status", s->code, strlen(s->code));
    if (s->message)
        nv[n++] = NV("grpc-message", s->message, strlen(s->message));
    if (s->details)
        nv[n++] = NV("grpc-status-details-bin", s->details, strlen(s->details));
    return n;
}
