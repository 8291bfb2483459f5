/* gRPC length-prefixed framing: the 5-byte prefix and an incremental deframer. */
#include "grpc_frame.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define FLAG_UNCOMPRESSED 0
#define FLAG_COMPRESSED   1

/* First allocation for a message body; later ones double, up to the declared length. */
#define BUF_MIN_CAP 4096
/* A buffer larger than this is released when the next message starts, so that one big
 * message does not pin its memory for the life of a long stream. Smaller ones are kept: a
 * stream of bulk data (StreamExec output, 64 KiB of data plus a few bytes of protobuf per
 * message) would otherwise allocate and grow a buffer again for every message. */
#define BUF_KEEP_CAP (256 * 1024)

struct cws_grpc_deframer {
    size_t max_message;
    uint8_t header[CWS_GRPC_FRAME_HEADER_SIZE];
    size_t header_len;    /* header bytes received for the current message */
    uint32_t message_len; /* declared length, once the header is complete */
    uint8_t *buf;
    size_t buf_cap;
    size_t buf_len;           /* body bytes received */
    bool complete;            /* the last feed returned 1 */
    struct cws_error failure; /* code != CWS_E_OK once the stream is broken */
};

/* What cws_grpc_deframer_message() hands out for a zero-length message. */
static const uint8_t empty_message[1];

int cws_grpc_frame_header(uint8_t ret_hdr[CWS_GRPC_FRAME_HEADER_SIZE], size_t len,
                          struct cws_error *err)
{
    if ((uint64_t)len > UINT32_MAX)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "gRPC message of %zu bytes does not fit the 32-bit length prefix",
                             len);
    ret_hdr[0] = FLAG_UNCOMPRESSED;
    ret_hdr[1] = (uint8_t)(len >> 24);
    ret_hdr[2] = (uint8_t)(len >> 16);
    ret_hdr[3] = (uint8_t)(len >> 8);
    ret_hdr[4] = (uint8_t)len;
    return 0;
}

int cws_grpc_deframer_new(size_t max_message, struct cws_grpc_deframer **ret)
{
    struct cws_grpc_deframer *d = calloc(1, sizeof(*d));
    if (!d)
        return -CWS_E_NOMEM;
    d->max_message = max_message;
    cws_error_clear(&d->failure);
    *ret = d;
    return 0;
}

void cws_grpc_deframer_free(struct cws_grpc_deframer *d)
{
    if (!d)
        return;
    free(d->buf);
    free(d);
}

static bool deframer_failed(const struct cws_grpc_deframer *d)
{
    return d->failure.code != CWS_E_OK;
}

/* Record a stream error so later feeds can repeat it, and report it. */
static int deframer_fail(struct cws_grpc_deframer *d, struct cws_error *err, enum cws_errcode code,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int deframer_fail(struct cws_grpc_deframer *d, struct cws_error *err, enum cws_errcode code,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = cws_error_setv(&d->failure, code, fmt, ap);
    va_end(ap);
    if (err)
        *err = d->failure;
    return r;
}

static int deframer_repeat_failure(const struct cws_grpc_deframer *d, struct cws_error *err)
{
    if (err)
        *err = d->failure;
    return -(int)d->failure.code;
}

/* Forget the message handed out by the last feed and get ready for the next prefix. */
static void deframer_start_message(struct cws_grpc_deframer *d)
{
    d->complete = false;
    d->header_len = 0;
    d->message_len = 0;
    d->buf_len = 0;
    if (d->buf_cap > BUF_KEEP_CAP) {
        free(d->buf);
        d->buf = NULL;
        d->buf_cap = 0;
    }
}

static uint32_t header_length(const uint8_t header[CWS_GRPC_FRAME_HEADER_SIZE])
{
    return (uint32_t)header[1] << 24 | (uint32_t)header[2] << 16 | (uint32_t)header[3] << 8 |
           (uint32_t)header[4];
}

/* Validate a complete prefix; nothing has been allocated for the body yet. */
static int deframer_check_header(struct cws_grpc_deframer *d, struct cws_error *err)
{
    uint8_t flag = d->header[0];
    if (flag == FLAG_COMPRESSED)
        return deframer_fail(d, err, CWS_E_UNIMPLEMENTED,
                             "compressed gRPC messages are not supported: "
                             "no grpc-encoding was negotiated");
    if (flag != FLAG_UNCOMPRESSED)
        return deframer_fail(d, err, CWS_E_PROTOCOL,
                             "invalid gRPC compressed flag 0x%02x (expected 0 or 1)", flag);
    d->message_len = header_length(d->header);
    if (d->message_len > d->max_message)
        return deframer_fail(d, err, CWS_E_RESOURCE_EXHAUSTED,
                             "gRPC message of %" PRIu32 " bytes exceeds the %zu-byte limit",
                             d->message_len, d->max_message);
    return 0;
}

/* Make room for need body bytes, growing geometrically but never past the declared length,
 * so a peer must send the bytes it announces before we commit memory to them. */
static int deframer_reserve(struct cws_grpc_deframer *d, size_t need, struct cws_error *err)
{
    if (need <= d->buf_cap)
        return 0;
    size_t cap = d->buf_cap ? d->buf_cap : BUF_MIN_CAP;
    while (cap < need && cap < d->message_len)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > d->message_len)
        cap = d->message_len; /* need <= message_len, so this still fits need */
    uint8_t *buf = realloc(d->buf, cap);
    if (!buf)
        return deframer_fail(d, err, CWS_E_NOMEM,
                             "out of memory buffering a gRPC message of %" PRIu32 " bytes",
                             d->message_len);
    d->buf = buf;
    d->buf_cap = cap;
    return 0;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

int cws_grpc_deframer_feed(struct cws_grpc_deframer *d, const uint8_t *data, size_t len,
                           size_t *ret_consumed, struct cws_error *err)
{
    if (!d || (!data && len > 0))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "invalid arguments to the deframer");
    if (deframer_failed(d))
        return deframer_repeat_failure(d, err);
    if (d->complete)
        deframer_start_message(d);
    if (len == 0) {
        *ret_consumed = 0; /* data may be NULL, which memcpy() must not see */
        return 0;
    }

    size_t used = 0;
    if (d->header_len < CWS_GRPC_FRAME_HEADER_SIZE) {
        size_t n = min_size(len, CWS_GRPC_FRAME_HEADER_SIZE - d->header_len);
        memcpy(d->header + d->header_len, data, n);
        d->header_len += n;
        used += n;
        if (d->header_len < CWS_GRPC_FRAME_HEADER_SIZE) {
            *ret_consumed = used;
            return 0;
        }
        int r = deframer_check_header(d, err);
        if (r < 0)
            return r;
    }

    size_t n = min_size(len - used, d->message_len - d->buf_len);
    if (n > 0) {
        int r = deframer_reserve(d, d->buf_len + n, err);
        if (r < 0)
            return r;
        memcpy(d->buf + d->buf_len, data + used, n);
        d->buf_len += n;
        used += n;
    }
    *ret_consumed = used;
    d->complete = d->buf_len == d->message_len;
    return d->complete ? 1 : 0;
}

void cws_grpc_deframer_message(const struct cws_grpc_deframer *d, const uint8_t **ret_data,
                               size_t *ret_len)
{
    if (!d || !d->complete) {
        *ret_data = NULL;
        *ret_len = 0;
        return;
    }
    *ret_data = d->buf_len > 0 ? d->buf : empty_message;
    *ret_len = d->buf_len;
}

bool cws_grpc_deframer_idle(const struct cws_grpc_deframer *d)
{
    if (deframer_failed(d))
        return false;
    return d->complete || d->header_len == 0;
}
