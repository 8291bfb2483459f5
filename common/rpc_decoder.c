/* Incremental msgpack-rpc decoder; see rpc_decoder.h for the contract. */
#include "rpc_decoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Release the buffer after a message this large, so one big transfer does not pin memory. */
#define KEEP_BUFFER_MAX (1u << 20)

/* Where the header walk of the current message stands; it resumes as bytes arrive. */
struct scan {
    size_t pos;     /* bytes of the message walked so far (may run past what has arrived) */
    uint32_t depth; /* open containers */
    bool done;      /* the top-level value is complete once pos bytes have arrived */
    uint64_t elements;
    uint64_t remaining[CWS_RPC_MAX_DEPTH]; /* objects still expected by each open container */
};

struct cws_rpc_decoder {
    size_t max_message;
    uint8_t *buf;
    size_t start; /* first byte not yet returned */
    size_t end;   /* one past the last byte fed */
    size_t cap;
    struct scan scan;
    bool broken;
    struct cws_error broken_err;
    bool has_bad_msgid;
    uint32_t bad_msgid;
};

/* What the first bytes of one msgpack object say about it. */
struct header {
    size_t head_len;   /* bytes needed to read the lengths */
    uint64_t total;    /* whole object without its children: header plus payload */
    uint64_t children; /* objects that follow as its elements (2 per map entry) */
};

int cws_rpc_decoder_new(size_t max_message, struct cws_rpc_decoder **ret)
{
    struct cws_rpc_decoder *d = calloc(1, sizeof(*d));
    if (!d)
        return -CWS_E_NOMEM;
    d->max_message = max_message ? max_message : CWS_RPC_DEFAULT_MAX_MESSAGE;
    *ret = d;
    return 0;
}

void cws_rpc_decoder_free(struct cws_rpc_decoder *d)
{
    if (!d)
        return;
    free(d->buf);
    free(d);
}

bool cws_rpc_decoder_broken(const struct cws_rpc_decoder *d)
{
    return d->broken;
}

size_t cws_rpc_decoder_buffered(const struct cws_rpc_decoder *d)
{
    return d->end - d->start;
}

int cws_rpc_decoder_bad_msgid(const struct cws_rpc_decoder *d, uint32_t *ret_msgid)
{
    if (!d->has_bad_msgid)
        return 0;
    *ret_msgid = d->bad_msgid;
    return 1;
}

void cws_rpc_msg_free(struct cws_rpc_msg *msg)
{
    if (!msg)
        return;
    msgpack_unpacked_destroy(&msg->unpacked);
    free(msg);
}

static int fail_stream(struct cws_rpc_decoder *d, struct cws_error *err, enum cws_errcode code,
                       const char *what)
{
    d->broken = true;
    cws_error_set(&d->broken_err, code, "%s", what);
    if (err)
        *err = d->broken_err;
    return -(int)code;
}

static int broken_error(const struct cws_rpc_decoder *d, struct cws_error *err)
{
    if (err)
        *err = d->broken_err;
    return -(int)d->broken_err.code;
}

static int make_room(struct cws_rpc_decoder *d, size_t len)
{
    if (d->start > 0) {
        memmove(d->buf, d->buf + d->start, d->end - d->start);
        d->end -= d->start;
        d->start = 0;
    }
    if (d->cap - d->end >= len)
        return 0;
    size_t need = d->end + len;
    if (need < d->end)
        return -CWS_E_NOMEM;
    size_t cap = d->cap ? d->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *buf = realloc(d->buf, cap);
    if (!buf)
        return -CWS_E_NOMEM;
    d->buf = buf;
    d->cap = cap;
    return 0;
}

int cws_rpc_decoder_feed(struct cws_rpc_decoder *d, const void *data, size_t len,
                         struct cws_error *err)
{
    if (d->broken)
        return broken_error(d, err);
    if (len == 0)
        return 0;
    if (d->cap - d->end < len && make_room(d, len) < 0)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory buffering %zu bytes", len);
    memcpy(d->buf + d->end, data, len);
    d->end += len;
    return 0;
}

static uint64_t be16(const uint8_t *p)
{
    return ((uint64_t)p[0] << 8) | p[1];
}

static uint64_t be32(const uint8_t *p)
{
    return ((uint64_t)p[0] << 24) | ((uint64_t)p[1] << 16) | ((uint64_t)p[2] << 8) | p[3];
}

/* Header of a str/bin (len_bytes of length after the type byte) or ext (plus a type byte). */
static int sized_header(const uint8_t *p, size_t avail, size_t len_bytes, size_t extra,
                        struct header *h)
{
    h->head_len = 1 + len_bytes + extra;
    if (avail < 1 + len_bytes)
        return 0;
    uint64_t n = len_bytes == 1 ? p[1] : len_bytes == 2 ? be16(p + 1) : be32(p + 1);
    h->total = h->head_len + n;
    h->children = 0;
    return 1;
}

static int container_header(const uint8_t *p, size_t avail, size_t len_bytes, uint64_t per_item,
                            struct header *h)
{
    h->head_len = 1 + len_bytes;
    if (avail < h->head_len)
        return 0;
    uint64_t n = len_bytes == 2 ? be16(p + 1) : be32(p + 1);
    h->total = h->head_len;
    h->children = n * per_item;
    return 1;
}

static int fixed_header(size_t size, struct header *h)
{
    h->head_len = 1;
    h->total = size;
    h->children = 0;
    return 1;
}

/* Read the header of the object at p. 1 when known, 0 when more bytes are needed, -1 for a
 * byte that starts no msgpack object (0xc1). */
static int read_header(const uint8_t *p, size_t avail, struct header *h)
{
    if (avail < 1)
        return 0;
    uint8_t b = p[0];
    if (b <= 0x7f || b >= 0xe0)
        return fixed_header(1, h);
    if (b <= 0x8f) {
        fixed_header(1, h);
        h->children = 2u * (b & 0x0f);
        return 1;
    }
    if (b <= 0x9f) {
        fixed_header(1, h);
        h->children = b & 0x0f;
        return 1;
    }
    if (b <= 0xbf)
        return fixed_header(1 + (b & 0x1f), h);
    switch (b) {
    case 0xc0: /* nil */
    case 0xc2: /* false */
    case 0xc3: /* true */
        return fixed_header(1, h);
    case 0xc4: /* bin 8/16/32 */
    case 0xd9: /* str 8/16/32 */
        return sized_header(p, avail, 1, 0, h);
    case 0xc5:
    case 0xda:
        return sized_header(p, avail, 2, 0, h);
    case 0xc6:
    case 0xdb:
        return sized_header(p, avail, 4, 0, h);
    case 0xc7: /* ext 8/16/32: the length, then a type byte */
        return sized_header(p, avail, 1, 1, h);
    case 0xc8:
        return sized_header(p, avail, 2, 1, h);
    case 0xc9:
        return sized_header(p, avail, 4, 1, h);
    case 0xca: /* float 32, (u)int 32 */
    case 0xce:
    case 0xd2:
        return fixed_header(5, h);
    case 0xcb: /* float 64, (u)int 64 */
    case 0xcf:
    case 0xd3:
        return fixed_header(9, h);
    case 0xcc: /* (u)int 8 */
    case 0xd0:
        return fixed_header(2, h);
    case 0xcd: /* (u)int 16 */
    case 0xd1:
        return fixed_header(3, h);
    case 0xd4: /* fixext 1/2/4/8/16: type byte plus data */
        return fixed_header(3, h);
    case 0xd5:
        return fixed_header(4, h);
    case 0xd6:
        return fixed_header(6, h);
    case 0xd7:
        return fixed_header(10, h);
    case 0xd8:
        return fixed_header(18, h);
    case 0xdc: /* array 16/32 */
        return container_header(p, avail, 2, 1, h);
    case 0xdd:
        return container_header(p, avail, 4, 1, h);
    case 0xde: /* map 16/32 */
        return container_header(p, avail, 2, 2, h);
    case 0xdf:
        return container_header(p, avail, 4, 2, h);
    default: /* 0xc1 is never used */
        return -1;
    }
}

/* One object finished: count it against the containers it closes. */
static void complete_object(struct scan *s)
{
    while (s->depth > 0) {
        if (--s->remaining[s->depth - 1] > 0)
            return;
        s->depth--;
    }
    s->done = true;
}

static int check_object(struct cws_rpc_decoder *d, const struct header *h, struct cws_error *err)
{
    struct scan *s = &d->scan;
    char what[160];

    if (++s->elements > CWS_RPC_MAX_ELEMENTS) {
        snprintf(what, sizeof(what), "msgpack-rpc message holds more than %u objects",
                 CWS_RPC_MAX_ELEMENTS);
        return fail_stream(d, err, CWS_E_RESOURCE_EXHAUSTED, what);
    }
    /* Each child takes at least one byte, so a count that cannot fit is refused here. */
    if (h->total > d->max_message - s->pos || h->children > d->max_message - s->pos - h->total) {
        snprintf(what, sizeof(what), "msgpack-rpc message exceeds the %zu-byte limit",
                 d->max_message);
        return fail_stream(d, err, CWS_E_RESOURCE_EXHAUSTED, what);
    }
    if (h->children > 0 && s->depth == CWS_RPC_MAX_DEPTH) {
        snprintf(what, sizeof(what), "msgpack-rpc message nests deeper than %d levels",
                 CWS_RPC_MAX_DEPTH);
        return fail_stream(d, err, CWS_E_PROTOCOL, what);
    }
    return 0;
}

/* Walk headers from where the last call stopped. 1 with *ret_len when a whole message has
 * arrived, 0 when more bytes are needed, negative when the stream is unusable. */
static int scan_message(struct cws_rpc_decoder *d, size_t *ret_len, struct cws_error *err)
{
    struct scan *s = &d->scan;
    const uint8_t *p = d->buf + d->start;
    size_t avail = d->end - d->start;

    while (s->pos <= avail) {
        if (s->done) {
            *ret_len = s->pos;
            return 1;
        }
        struct header h;
        int r = read_header(p + s->pos, avail - s->pos, &h);
        if (r == 0)
            return 0;
        if (r < 0)
            return fail_stream(d, err, CWS_E_PROTOCOL, "malformed msgpack: byte 0xc1");
        r = check_object(d, &h, err);
        if (r < 0)
            return r;
        s->pos += h.total;
        if (h.children > 0)
            s->remaining[s->depth++] = h.children;
        else
            complete_object(s);
    }
    return 0;
}

static int protocol_error(struct cws_error *err, const char *what)
{
    return cws_error_set(err, CWS_E_PROTOCOL, "invalid msgpack-rpc message: %s", what);
}

static bool read_msgid(const msgpack_object *o, uint32_t *ret)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
        return false;
    *ret = (uint32_t)o->via.u64;
    return true;
}

static int read_method(struct cws_rpc_msg *m, const msgpack_object *o, struct cws_error *err)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
        o->via.str.size >= CWS_RPC_METHOD_MAX || memchr(o->via.str.ptr, 0, o->via.str.size))
        return protocol_error(err, "method must be a non-empty string of at most 127 bytes");
    memcpy(m->method_buf, o->via.str.ptr, o->via.str.size);
    m->method_buf[o->via.str.size] = '\0';
    m->method = m->method_buf;
    return 0;
}

static int read_params(struct cws_rpc_msg *m, const msgpack_object *o, struct cws_error *err)
{
    if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 0) {
        m->empty_params.type = MSGPACK_OBJECT_MAP;
        m->empty_params.via.map.size = 0;
        m->empty_params.via.map.ptr = NULL;
        m->params = &m->empty_params;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 1 ||
        o->via.array.ptr[0].type != MSGPACK_OBJECT_MAP)
        return protocol_error(err, "params must be an array holding one map");
    m->params = &o->via.array.ptr[0];
    return 0;
}

static int read_request(struct cws_rpc_decoder *d, struct cws_rpc_msg *m, const msgpack_object *a,
                        uint32_t n, struct cws_error *err)
{
    if (n != 4)
        return protocol_error(err, "a request is [0, msgid, method, params]");
    if (!read_msgid(&a[1], &m->msgid))
        return protocol_error(err, "msgid must be an unsigned 32-bit integer");
    d->has_bad_msgid = true; /* from here on an error can be answered */
    d->bad_msgid = m->msgid;
    int r = read_method(m, &a[2], err);
    if (r < 0)
        return r;
    r = read_params(m, &a[3], err);
    if (r < 0)
        return r;
    d->has_bad_msgid = false;
    return 0;
}

static int read_response(struct cws_rpc_msg *m, const msgpack_object *a, uint32_t n,
                         struct cws_error *err)
{
    if (n != 4)
        return protocol_error(err, "a response is [1, msgid, error, result]");
    if (!read_msgid(&a[1], &m->msgid))
        return protocol_error(err, "msgid must be an unsigned 32-bit integer");
    m->error = a[2].type == MSGPACK_OBJECT_NIL ? NULL : &a[2];
    m->result = &a[3];
    if (m->error && a[3].type != MSGPACK_OBJECT_NIL)
        return protocol_error(err, "a response carries an error or a result, not both");
    return 0;
}

static int read_notification(struct cws_rpc_msg *m, const msgpack_object *a, uint32_t n,
                             struct cws_error *err)
{
    if (n != 3)
        return protocol_error(err, "a notification is [2, method, params]");
    int r = read_method(m, &a[1], err);
    return r < 0 ? r : read_params(m, &a[2], err);
}

static int read_rpc_shape(struct cws_rpc_decoder *d, struct cws_rpc_msg *m, struct cws_error *err)
{
    const msgpack_object *root = &m->unpacked.data;

    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 3)
        return protocol_error(err, "not an array of 3 or 4 elements");
    const msgpack_object *a = root->via.array.ptr;
    uint32_t n = root->via.array.size;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 > CWS_RPC_NOTIFICATION)
        return protocol_error(err, "type must be 0 (request), 1 (response) or 2 (notification)");
    m->type = (enum cws_rpc_type)a[0].via.u64;
    switch (m->type) {
    case CWS_RPC_REQUEST:
        return read_request(d, m, a, n, err);
    case CWS_RPC_RESPONSE:
        return read_response(m, a, n, err);
    default:
        return read_notification(m, a, n, err);
    }
}

/* Take the scanned bytes out of the buffer and reset the walk for the next message. */
static void consume(struct cws_rpc_decoder *d, size_t len)
{
    d->start += len;
    memset(&d->scan, 0, sizeof(d->scan));
    if (d->start == d->end) {
        d->start = d->end = 0;
        if (d->cap > KEEP_BUFFER_MAX) {
            free(d->buf);
            d->buf = NULL;
            d->cap = 0;
        }
    }
}

static int unpack_message(struct cws_rpc_decoder *d, size_t len, struct cws_rpc_msg **ret,
                          struct cws_error *err)
{
    struct cws_rpc_msg *m = calloc(1, sizeof(*m) + len);
    if (!m)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory for a %zu-byte message", len);
    memcpy(m->data, d->buf + d->start, len);
    m->size = len;
    consume(d, len);
    msgpack_unpacked_init(&m->unpacked);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&m->unpacked, m->data, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        cws_rpc_msg_free(m);
        if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
            return fail_stream(d, err, CWS_E_NOMEM, "out of memory unpacking a message");
        return fail_stream(d, err, CWS_E_PROTOCOL, "malformed msgpack");
    }
    *ret = m;
    return 0;
}

int cws_rpc_decoder_next(struct cws_rpc_decoder *d, struct cws_rpc_msg **ret_msg,
                         struct cws_error *err)
{
    size_t len;
    struct cws_rpc_msg *m = NULL;

    if (d->broken)
        return broken_error(d, err);
    d->has_bad_msgid = false;
    int r = scan_message(d, &len, err);
    if (r <= 0)
        return r;
    r = unpack_message(d, len, &m, err);
    if (r < 0)
        return r;
    r = read_rpc_shape(d, m, err);
    if (r < 0) {
        cws_rpc_msg_free(m);
        return r;
    }
    *ret_msg = m;
    return 1;
}
