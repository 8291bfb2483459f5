/* Request headers and admission: a call starts only when it is a POST with a gRPC
 * content-type, is authenticated (bearer token on TCP), names a registered method, asks for
 * no compression and has a well-formed grpc-timeout. Each refusal is a trailers-only answer
 * saying why. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "grpc_timeout.h"
#include "gsrv_private.h"

/* Header values quoted in error messages are cut to this length. */
#define QUOTE_MAX 100

static const char *rcbuf_str(nghttp2_rcbuf *rcbuf)
{
    return (const char *)nghttp2_rcbuf_get_buf(rcbuf).base;
}

static int grow_headers(struct cws_gcall *call)
{
    size_t cap = call->cap_headers * 2;
    struct gcall_header *h;

    if (call->headers == call->inline_headers) {
        h = malloc(cap * sizeof(*h));
        if (h)
            memcpy(h, call->headers, call->n_headers * sizeof(*h));
    } else {
        h = realloc(call->headers, cap * sizeof(*h));
    }
    if (!h)
        return -CWS_E_NOMEM;
    call->headers = h;
    call->cap_headers = cap;
    return 0;
}

int gcall_add_header(struct cws_gcall *call, nghttp2_rcbuf *name, nghttp2_rcbuf *value)
{
    /* RFC 9113 6.5.2: each field counts its name, its value and 32 bytes. */
    call->header_bytes += nghttp2_rcbuf_get_buf(name).len + nghttp2_rcbuf_get_buf(value).len + 32;
    if (call->header_bytes > GSRV_MAX_HEADER_LIST)
        return -CWS_E_RESOURCE_EXHAUSTED;
    if (call->n_headers == call->cap_headers && grow_headers(call) < 0)
        return -CWS_E_NOMEM;
    nghttp2_rcbuf_incref(name);
    nghttp2_rcbuf_incref(value);
    call->headers[call->n_headers].name = name;
    call->headers[call->n_headers].value = value;
    call->n_headers++;
    return 0;
}

void gcall_free_headers(struct cws_gcall *call)
{
    for (size_t i = 0; i < call->n_headers; i++) {
        nghttp2_rcbuf_decref(call->headers[i].name);
        nghttp2_rcbuf_decref(call->headers[i].value);
    }
    if (call->headers != call->inline_headers)
        free(call->headers);
    call->headers = call->inline_headers;
    call->n_headers = 0;
}

const char *cws_gcall_header(const struct cws_gcall *call, const char *name)
{
    if (!call || !name)
        return NULL;
    for (size_t i = 0; i < call->n_headers; i++) {
        if (strcmp(rcbuf_str(call->headers[i].name), name) == 0)
            return rcbuf_str(call->headers[i].value);
    }
    return NULL;
}

/* "application/grpc", optionally followed by "+proto", ";params" and the like. */
static bool content_type_is_grpc(const char *ct)
{
    static const char grpc[] = "application/grpc";
    size_t n = sizeof(grpc) - 1;

    return ct && strncmp(ct, grpc, n) == 0 && (ct[n] == '\0' || ct[n] == '+' || ct[n] == ';');
}

/* Runs in time independent of where the strings differ, so the token cannot be guessed byte
 * by byte from response times. */
static bool token_equal(const char *given, size_t given_len, const char *want, size_t want_len)
{
    unsigned char diff = given_len != want_len;

    for (size_t i = 0; i < want_len; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
}

/* NULL when authenticated, else the reason to give the client. */
static const char *auth_failure(const struct cws_gcall *call)
{
    const struct cws_gsrv *srv = call->conn->srv;
    const char *auth = cws_gcall_header(call, "authorization");
    const char *token;

    if (!call->conn->needs_token)
        return NULL;
    if (!auth)
        return "missing credentials: calls over TCP need the header "
               "'authorization: Bearer <token>'";
    if (strncasecmp(auth, "Bearer ", 7) != 0)
        return "unsupported authorization scheme: expected 'Bearer <token>'";
    token = auth + 7;
    if (!token_equal(token, strlen(token), srv->token, srv->token_len))
        return "invalid bearer token";
    return NULL;
}

static void reject(struct cws_gcall *call, int http_status, enum cws_errcode code, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static void reject(struct cws_gcall *call, int http_status, enum cws_errcode code, const char *fmt,
                   ...)
{
    char message[CWS_ERROR_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    gcall_reject(call, http_status, code, message);
}

/* Returns 0 with *ret_ns (-1: no deadline), or 1 after answering the call. */
static int parse_timeout(struct cws_gcall *call, int64_t *ret_ns)
{
    const char *value = cws_gcall_header(call, "grpc-timeout");
    struct cws_error err;
    int64_t ns = 0;

    *ret_ns = -1;
    if (!value)
        return 0;
    if (cws_grpc_timeout_parse(value, &ns, &err) < 0) {
        reject(call, 200, CWS_E_INVALID_ARGUMENT, "%s", err.message);
        return 1;
    }
    if (ns == 0) {
        reject(call, 200, CWS_E_DEADLINE_EXCEEDED, "the deadline expired before the call began");
        return 1;
    }
    *ret_ns = ns;
    return 0;
}

void gcall_headers_done(struct cws_gcall *call)
{
    const char *method = cws_gcall_header(call, ":method");
    const char *ctype = cws_gcall_header(call, "content-type");
    const char *encoding = cws_gcall_header(call, "grpc-encoding");
    const char *auth_error = auth_failure(call);
    const struct cws_gmethod *m;
    int64_t timeout_ns = -1;

    call->path = cws_gcall_header(call, ":path");
    if (!call->path)
        call->path = "";
    m = gsrv_find_method(call->conn->srv, call->path);
    /* Authentication comes before the path so that strangers learn nothing about methods. */
    if (!method || strcmp(method, "POST") != 0)
        reject(call, 405, CWS_E_UNIMPLEMENTED, "gRPC needs POST, not %.*s", QUOTE_MAX,
               method ? method : "(none)");
    else if (!content_type_is_grpc(ctype))
        reject(call, 415, CWS_E_INVALID_ARGUMENT, "invalid gRPC request content-type '%.*s'",
               QUOTE_MAX, ctype ? ctype : "");
    else if (auth_error)
        reject(call, 200, CWS_E_UNAUTHENTICATED, "%s", auth_error);
    else if (!m)
        reject(call, 200, CWS_E_UNIMPLEMENTED, "unknown method %.*s", QUOTE_MAX, call->path);
    else if (encoding && strcmp(encoding, "identity") != 0)
        reject(call, 200, CWS_E_UNIMPLEMENTED,
               "grpc-encoding '%.*s' is not supported: send uncompressed messages", QUOTE_MAX,
               encoding);
    else if (parse_timeout(call, &timeout_ns) == 0)
        gcall_start(call, m, timeout_ns);
}
