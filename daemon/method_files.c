/* file.read and file.write, for files of any size up to 1 GiB. Up to the backend's unary cap
 * (32 MiB, or the max_size_bytes a FILE_TOO_LARGE reports) one ReadFile/WriteFile call;
 * above it the file streams through StreamExec (`cat`) with its length checked, as the SDKs
 * do. A streamed transfer holds at most one backend message and one client chunk at a time:
 * the backend stream pauses while the client reads slowly, and the client's uploads wait in
 * its socket while the sandbox writes slowly. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_rpc.h"
#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "daemon.h"
#include "log.h"
#include "rpc_encode.h"
#include "rpc_params.h"

#define UNARY_MAX (32u * 1024 * 1024)
#define FILE_MAX  (1024ull * 1024 * 1024)
/* What one daemon response can carry (the protocol's message limit, less framing). */
#define INLINE_MAX    (CWS_RPC_DEFAULT_MAX_MESSAGE - 4096)
#define CHUNK_TIMEOUT (600 * 1000)
/* Chunk data of streamed reads goes to the client's output queue by reference, in blocks of
 * this size kept on a free list while a streamed read runs. Copied into fresh evbuffer
 * memory instead, most of a large read landed on pages malloc had just returned to the
 * system, and faulting them in again cost the daemon more CPU than the copy itself
 * (tests/bench, bench_daemon row c). The local backend's output messages carry at most
 * 64 KiB; larger ones are copied the ordinary way. */
#define BLOCK_SIZE (64u * 1024)
/* Enough for a client's full output queue: fewer, and a slow client would have the blocks
 * past the limit freed and allocated again (fresh pages) on every round of its queue. */
#define BLOCKS_KEPT (CWSD_CLIENT_OUT_HIGH / BLOCK_SIZE + 2)

typedef Coreweave__Sandbox__V1__ExecStreamRequest ExecStreamRequest;
typedef Coreweave__Sandbox__V1__ExecStreamResponse ExecStreamResponse;

/* The read script of the SDKs: 2 missing, 3 a directory, else the bytes. */
static const char read_script[] =
    "if [ ! -e \"$1\" ]; then exit 2; fi; if [ -d \"$1\" ]; then exit 3; fi; exec cat -- \"$1\"";
/* Write to a temporary file, check the length, then move it in place (atomic). */
static const char write_script[] =
    "t=\"$1.tmp.$$\"; cat > \"$t\" || { rm -f \"$t\"; exit 1; }; "
    "n=$(wc -c < \"$t\"); if [ \"$n\" -ne \"$2\" ]; then rm -f \"$t\"; exit 4; fi; "
    "mv -f \"$t\" \"$1\"";

struct fop {
    struct cwsd *d;
    struct cwsd_call *call;
    struct cwsd_stream *stream;
    char *id, *path;
    bool streamed; /* chunks go to (or come from) the client as notifications */
    bool writing;
    bool in_flight;    /* a unary backend call refers to this op */
    bool paused;       /* backend stream paused for a slow client */
    bool client_held;  /* client reading paused for a slow sandbox */
    uint64_t expected; /* size to check, or 0 when unknown (reads) */
    uint64_t moved;    /* bytes transferred so far */
    uint8_t *buf;      /* a read gathered for an inline answer */
    size_t buf_len;
    int exit_code;
    bool exited;
    bool counted; /* one of streamed_reads */
};

struct block {
    struct block *next;
    uint8_t data[BLOCK_SIZE];
};

/* Free blocks, and the streamed reads running: the list is emptied when none runs, so an
 * idle daemon holds no block. */
static struct block *free_blocks;
static unsigned n_free_blocks;
static unsigned streamed_reads;

static struct block *block_get(void)
{
    struct block *b = free_blocks;
    if (!b)
        return malloc(sizeof(*b));
    free_blocks = b->next;
    n_free_blocks--;
    return b;
}

/* evbuffer cleanup: the client's output queue wrote (or dropped) a block. */
static void block_put(const void *data, size_t len, void *extra)
{
    struct block *b = extra;
    (void)data;
    (void)len;
    if (streamed_reads == 0 || n_free_blocks >= BLOCKS_KEPT) {
        free(b);
        return;
    }
    b->next = free_blocks;
    free_blocks = b;
    n_free_blocks++;
}

static void blocks_release(void)
{
    while (free_blocks) {
        struct block *b = free_blocks;
        free_blocks = b->next;
        free(b);
    }
    n_free_blocks = 0;
}

static void fop_free(struct fop *f)
{
    if (f->counted && --streamed_reads == 0)
        blocks_release();
    cwsd_stream_cancel(f->stream);
    if (f->client_held && f->call)
        cwsd_client_pause_reading(f->call->client, false);
    free(f->id);
    free(f->path);
    free(f->buf);
    free(f);
}

static void fop_done(struct fop *f)
{
    if (f->client_held && f->call)
        cwsd_client_pause_reading(f->call->client, false);
    f->client_held = false;
    f->call = NULL;
    if (!f->in_flight)
        fop_free(f);
}

static void fop_fail(struct fop *f, const struct cws_error *err)
{
    if (f->call)
        cwsd_call_fail(f->call, err);
    fop_done(f);
}

static void fop_failf(struct fop *f, enum cws_errcode code, const char *reason, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

static void fop_failf(struct fop *f, enum cws_errcode code, const char *reason, const char *fmt,
                      ...)
{
    struct cws_error err;
    va_list ap;
    va_start(ap, fmt);
    cws_error_setv(&err, code, fmt, ap);
    va_end(ap);
    if (reason)
        cws_error_set_reason(&err, reason);
    fop_fail(f, &err);
}

static void on_cancelled(struct cwsd_call *call, void *ud)
{
    struct fop *f = ud;
    (void)call;
    f->client_held = false; /* the client is going away */
    cwsd_stream_cancel(f->stream);
    f->stream = NULL;
    fop_done(f);
}

/* ---- answers ---- */

struct size_args {
    uint64_t size;
    const uint8_t *data;
    size_t len;
    bool with_data;
};

static int pack_size(msgpack_packer *pk, void *ud)
{
    const struct size_args *a = ud;
    if (msgpack_pack_map(pk, a->with_data ? 2 : 1) || cws_rpc_pack_kv_uint(pk, "size", a->size))
        return -CWS_E_NOMEM;
    if (a->with_data && cws_rpc_pack_kv_bin(pk, "data", a->data, a->len))
        return -CWS_E_NOMEM;
    return 0;
}

static void answer(struct fop *f, uint64_t size, const uint8_t *data, size_t len, bool with_data)
{
    struct size_args a = {size, data, len, with_data};
    if (f->call)
        cwsd_call_reply(f->call, pack_size, &a);
    fop_done(f);
}

struct chunk_args {
    uint32_t id;
    uint64_t offset;
    const uint8_t *data;
    size_t len;
    struct evbuffer *out; /* the client's output queue, for data by reference; or NULL */
};

/* The bin's body: by reference in a block when it fits one, else copied by the packer. */
static int pack_chunk_data(msgpack_packer *pk, const struct chunk_args *a)
{
    if (!a->out || a->len == 0 || a->len > BLOCK_SIZE)
        return msgpack_pack_bin_body(pk, a->data, a->len) ? -CWS_E_NOMEM : 0;
    struct block *b = block_get();
    if (!b)
        return -CWS_E_NOMEM;
    memcpy(b->data, a->data, a->len);
    if (evbuffer_add_reference(a->out, b->data, a->len, block_put, b) != 0) {
        free(b);
        return -CWS_E_NOMEM;
    }
    return 0;
}

static int pack_chunk(msgpack_packer *pk, void *ud)
{
    const struct chunk_args *a = ud;
    if (msgpack_pack_map(pk, 3) || cws_rpc_pack_kv_uint(pk, "id", a->id) ||
        cws_rpc_pack_kv_uint(pk, "offset", a->offset) || cws_rpc_pack_cstr(pk, "data") ||
        msgpack_pack_bin(pk, a->len))
        return -CWS_E_NOMEM;
    return pack_chunk_data(pk, a);
}

/* Send (or gather) read bytes; false after failing the call. */
static bool deliver(struct fop *f, const uint8_t *data, size_t len)
{
    if (f->moved + len > FILE_MAX) {
        fop_failf(f, CWS_E_RESOURCE_EXHAUSTED, "CWSANDBOX_FILE_TOO_LARGE",
                  "%s is larger than the 1 GiB file.read handles", f->path);
        return false;
    }
    if (f->streamed) {
        /* The packer of a client appends to this queue (cwsd_client_packer()), so the data
         * added by reference lands right after the bin's header. */
        struct bufferevent *bev = f->call->client->bev;
        struct chunk_args a = {f->call->msgid, f->moved, data, len,
                               bev ? bufferevent_get_output(bev) : NULL};
        if (cwsd_call_notify(f->call, "file.chunk", pack_chunk, &a) == 1 && f->stream &&
            !f->paused) {
            f->paused = true;
            cwsd_stream_pause(f->stream, true);
        }
    } else {
        if (f->buf_len + len > INLINE_MAX) {
            fop_failf(f, CWS_E_RESOURCE_EXHAUSTED, "CWSANDBOX_FILE_TOO_LARGE",
                      "%s is larger than one answer can carry (%u bytes): read it with "
                      "streamed: true",
                      f->path, INLINE_MAX);
            return false;
        }
        uint8_t *grown = realloc(f->buf, f->buf_len + len);
        if (!grown) {
            fop_failf(f, CWS_E_NOMEM, NULL, "out of memory reading %s", f->path);
            return false;
        }
        memcpy(grown + f->buf_len, data, len);
        f->buf = grown;
        f->buf_len += len;
    }
    f->moved += len;
    return true;
}

static void on_writable(struct cwsd_call *call, void *ud)
{
    struct fop *f = ud;
    (void)call;
    if (f->paused && f->stream) {
        f->paused = false;
        cwsd_stream_pause(f->stream, false);
    }
}

/* ---- streaming through StreamExec ---- */

static void stream_finished(struct fop *f)
{
    const char *what = f->writing ? "write" : "read";
    if (f->exit_code == 2) {
        fop_failf(f, CWS_E_NOT_FOUND, "CWSANDBOX_FILE_NOT_FOUND", "%s: no such file", f->path);
    } else if (f->exit_code == 3) {
        fop_failf(f, CWS_E_FAILED_PRECONDITION, "CWSANDBOX_FILE_IS_DIRECTORY", "%s is a directory",
                  f->path);
    } else if (f->exit_code == 4) {
        fop_failf(f, CWS_E_DATA_LOSS, "CWSANDBOX_FILE_TRUNCATED",
                  "%s: the sandbox received a different length than %llu bytes", f->path,
                  (unsigned long long)f->expected);
    } else if (f->exit_code != 0) {
        fop_failf(f, CWS_E_INTERNAL, "CWSANDBOX_FILE_IO_FAILED", "cannot %s %s (exit status %d)",
                  what, f->path, f->exit_code);
    } else if (!f->writing && f->expected && f->moved != f->expected) {
        fop_failf(f, CWS_E_DATA_LOSS, "CWSANDBOX_FILE_TRUNCATED", "%s: read %llu bytes of %llu",
                  f->path, (unsigned long long)f->moved, (unsigned long long)f->expected);
    } else {
        answer(f, f->moved, f->buf, f->buf_len, !f->streamed && !f->writing);
    }
}

static void on_stream_message(struct cwsd_stream *s, const ProtobufCMessage *m, void *ud)
{
    struct fop *f = ud;
    const ExecStreamResponse *r = (const ExecStreamResponse *)m;
    (void)s;
    if (!f->call)
        return;
    if (r->message_case == COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_OUTPUT &&
        !f->writing &&
        r->output->stream != COREWEAVE__SANDBOX__V1__EXEC_STREAM_OUTPUT__STREAM__STREAM_STDERR) {
        deliver(f, r->output->data.data, r->output->data.len);
    } else if (r->message_case == COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_EXIT) {
        f->exited = true;
        f->exit_code = r->exit->exit_code;
        cwsd_stream_finish(f->stream); /* the trailers follow */
        f->stream = NULL;
        stream_finished(f);
    } else if (r->message_case == COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_ERROR) {
        cwsd_stream_cancel(f->stream);
        f->stream = NULL;
        fop_failf(f, CWS_E_INTERNAL, r->error->code, "file transfer failed: %s", r->error->message);
    }
}

/* ---- the output of `cat`, read off the wire ---- */

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *ret = v;
            return true;
        }
    }
    return false;
}

/* A length-delimited field with this tag, alone in [p, end): its bytes. */
static bool only_field(const uint8_t *p, const uint8_t *end, uint8_t tag, const uint8_t **ret,
                       size_t *ret_len)
{
    uint64_t len;
    if (p >= end || *p++ != tag || !read_varint(&p, end, &len) || len != (uint64_t)(end - p))
        return false;
    *ret = p;
    *ret_len = (size_t)len;
    return true;
}

/* ExecStreamResponse{output = 2: ExecStreamOutput{stream = 1 (stdout), data = 2}} exactly:
 * the data is delivered from the receive buffer. Anything else goes the unpacking way. */
static bool on_stream_raw(struct cwsd_stream *s, const uint8_t *data, size_t len, void *ud)
{
    struct fop *f = ud;
    const uint8_t *out, *p, *end;
    size_t out_len, data_len;
    uint64_t stream;
    (void)s;
    if (!f->call || f->writing || !only_field(data, data + len, 0x12, &out, &out_len))
        return false;
    p = out;
    end = out + out_len;
    if (p < end && *p == 0x08) { /* stream, absent when 0 */
        p++;
        if (!read_varint(&p, end, &stream) ||
            stream == COREWEAVE__SANDBOX__V1__EXEC_STREAM_OUTPUT__STREAM__STREAM_STDERR)
            return false;
    }
    const uint8_t *bytes;
    if (!only_field(p, end, 0x12, &bytes, &data_len))
        return false;
    deliver(f, bytes, data_len);
    return true;
}

static void on_stream_done(struct cwsd_stream *s, const struct cws_error *err, void *ud)
{
    struct fop *f = ud;
    (void)s;
    f->stream = NULL;
    if (err)
        fop_fail(f, err);
    else
        fop_failf(f, CWS_E_PROTOCOL, NULL, "the transfer of %s ended without an exit status",
                  f->path);
}

static void on_stream_writable(struct cwsd_stream *s, void *ud)
{
    struct fop *f = ud;
    (void)s;
    if (f->client_held && f->call) {
        f->client_held = false;
        cwsd_client_pause_reading(f->call->client, false);
    }
}

static const struct cwsd_stream_events stream_events = {
    .on_raw = on_stream_raw,
    .on_message = on_stream_message,
    .on_writable = on_stream_writable,
    .on_done = on_stream_done,
};

static int start_exec(struct fop *f, const char *script, const char *argv0, const char *arg2,
                      struct cws_error *err)
{
    char *cmd[] = {(char *)"/bin/sh", (char *)"-c", (char *)script,
                   (char *)argv0,     f->path,      (char *)arg2};
    ExecStreamRequest req = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__INIT;
    Coreweave__Sandbox__V1__ExecStreamInit init = COREWEAVE__SANDBOX__V1__EXEC_STREAM_INIT__INIT;
    init.sandbox_id = f->id;
    init.command = cmd;
    init.n_command = arg2 ? 6 : 5;
    req.message_case = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_INIT;
    req.init = &init;
    int r = cwsd_rpc_stream(f->d, "StreamExec", &req.base,
                            &coreweave__sandbox__v1__exec_stream_response__descriptor, 0,
                            &stream_events, f, &f->stream, err);
    if (r == 0 && !f->writing)
        cwsd_stream_close_send(f->stream);
    return r;
}

/* Stdin for a streamed write; EOF once the expected length went in. */
static int send_stdin(struct fop *f, const uint8_t *data, size_t len)
{
    ExecStreamRequest req = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__INIT;
    req.message_case = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_STDIN;
    req.stdin.data = (uint8_t *)data;
    req.stdin.len = len;
    int r = cwsd_stream_send(f->stream, &req.base);
    f->moved += len;
    if (r == 1 && f->call && !f->client_held) {
        f->client_held = true;
        cwsd_client_pause_reading(f->call->client, true);
    }
    if (f->moved == f->expected) {
        Coreweave__Sandbox__V1__ExecStreamClose c = COREWEAVE__SANDBOX__V1__EXEC_STREAM_CLOSE__INIT;
        ExecStreamRequest close_req = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__INIT;
        close_req.message_case = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_CLOSE;
        close_req.close = &c;
        cwsd_stream_send(f->stream, &close_req.base);
        cwsd_stream_close_send(f->stream);
    }
    return r < 0 ? r : 0;
}

static void on_notify(struct cwsd_call *call, const char *method, const msgpack_object *params,
                      void *ud)
{
    struct fop *f = ud;
    const void *data = NULL;
    size_t len = 0;
    (void)call;
    if (strcmp(method, "file.chunk") != 0 || !f->writing || !f->stream)
        return;
    if (cws_rpc_param_bytes(params, "data", &data, &len, NULL) != 1)
        return;
    if (f->moved + len > f->expected) {
        cwsd_stream_cancel(f->stream);
        f->stream = NULL;
        fop_failf(f, CWS_E_INVALID_ARGUMENT, NULL,
                  "file.chunk data goes past the size of %llu bytes given to file.write",
                  (unsigned long long)f->expected);
        return;
    }
    send_stdin(f, data, len);
}

/* ---- read ---- */

/* A decimal metadata value of the error being handled, or 0. */
static uint64_t metadata_u64(const char *key)
{
    const char *v = cwsd_rpc_error_metadata(key);
    char *end;
    unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    return v && *end == '\0' ? n : 0;
}

static void on_read_unary(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct fop *f = ud;
    const Coreweave__Sandbox__V1__ReadFileResponse *r =
        (const Coreweave__Sandbox__V1__ReadFileResponse *)resp;
    struct cws_error e;
    f->in_flight = false;
    if (!f->call) {
        fop_free(f);
        return;
    }
    if (err && (strcmp(err->reason, "CWSANDBOX_FILE_TOO_LARGE") == 0 ||
                err->code == CWS_E_RESOURCE_EXHAUSTED)) {
        /* Too large for one message: stream it with cat. */
        f->expected = metadata_u64("size_bytes");
        if (start_exec(f, read_script, "cwsandbox-read-file", NULL, &e) < 0)
            fop_fail(f, &e);
        return;
    }
    if (err) {
        fop_fail(f, err);
        return;
    }
    if (!f->streamed) {
        answer(f, r->content.len, r->content.data, r->content.len, true);
        return;
    }
    /* A streamed read of a small file: chunks of the answer. */
    for (size_t off = 0; off < r->content.len && f->call; off += 1u << 20) {
        size_t n = r->content.len - off < (1u << 20) ? r->content.len - off : 1u << 20;
        if (!deliver(f, r->content.data + off, n))
            return;
    }
    answer(f, f->moved, NULL, 0, false);
}

static struct fop *fop_new(struct cwsd_call *call, const msgpack_object *params,
                           struct cws_error *err)
{
    struct fop *f = calloc(1, sizeof(*f));
    if (!f) {
        cws_error_set(err, CWS_E_NOMEM, NULL);
        return NULL;
    }
    f->d = call->client->d;
    f->call = call;
    call->on_cancel = on_cancelled;
    call->on_writable = on_writable;
    call->on_notify = on_notify;
    call->ud = f;
    if (cws_rpc_required(cws_rpc_param_str(params, "id", &f->id, err), "id", err) < 0 ||
        cws_rpc_required(cws_rpc_param_str(params, "path", &f->path, err), "path", err) < 0 ||
        cws_rpc_param_bool(params, "streamed", &f->streamed, err) < 0)
        return f;
    if (f->path[0] != '/')
        cws_error_set(err, CWS_E_INVALID_ARGUMENT, "path must be absolute, got '%s'", f->path);
    return f;
}

void cwsd_method_file_read(struct cwsd_call *call, const msgpack_object *params)
{
    struct cws_error err;
    cws_error_clear(&err);
    struct fop *f = fop_new(call, params, &err);
    if (!f) {
        cwsd_call_fail(call, &err);
        return;
    }
    if (err.code != CWS_E_OK) {
        fop_fail(f, &err);
        return;
    }
    if (f->streamed) {
        f->counted = true;
        streamed_reads++;
    }
    Coreweave__Sandbox__V1__ReadFileRequest req = COREWEAVE__SANDBOX__V1__READ_FILE_REQUEST__INIT;
    req.sandbox_id = f->id;
    req.path = f->path;
    f->in_flight = true;
    if (cwsd_rpc_unary(f->d, "ReadFile", &req.base,
                       &coreweave__sandbox__v1__read_file_response__descriptor, CHUNK_TIMEOUT,
                       on_read_unary, f, &err) < 0) {
        f->in_flight = false;
        fop_fail(f, &err);
    }
}

/* ---- write ---- */

static void on_write_unary(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct fop *f = ud;
    (void)resp;
    f->in_flight = false;
    if (!f->call) {
        fop_free(f);
        return;
    }
    if (err)
        fop_fail(f, err);
    else
        answer(f, f->expected, NULL, 0, false);
}

static int write_streamed(struct fop *f, const void *data, size_t len, struct cws_error *err)
{
    char size[32];
    snprintf(size, sizeof(size), "%llu", (unsigned long long)f->expected);
    int r = start_exec(f, write_script, "cwsandbox-write-file", size, err);
    if (r < 0)
        return r;
    if (data)
        return send_stdin(f, data, len);
    if (f->expected == 0)
        return send_stdin(f, NULL, 0);
    return 0;
}

void cwsd_method_file_write(struct cwsd_call *call, const msgpack_object *params)
{
    struct cws_error err;
    const void *data = NULL;
    size_t len = 0;
    int64_t size = -1;
    cws_error_clear(&err);
    struct fop *f = fop_new(call, params, &err);
    if (!f) {
        cwsd_call_fail(call, &err);
        return;
    }
    f->writing = true;
    if (err.code != CWS_E_OK || cws_rpc_param_bytes(params, "data", &data, &len, &err) < 0 ||
        cws_rpc_param_int(params, "size", 0, (int64_t)FILE_MAX, &size, &err) < 0) {
        fop_fail(f, &err);
        return;
    }
    if (f->streamed == (data != NULL) || (f->streamed && size < 0)) {
        fop_failf(f, CWS_E_INVALID_ARGUMENT, NULL,
                  "give either data, or streamed: true with size and file.chunk notifications");
        return;
    }
    f->expected = f->streamed ? (uint64_t)size : len;
    if (!f->streamed && len <= UNARY_MAX) {
        Coreweave__Sandbox__V1__WriteFileRequest req =
            COREWEAVE__SANDBOX__V1__WRITE_FILE_REQUEST__INIT;
        req.sandbox_id = f->id;
        req.path = f->path;
        req.content.data = (uint8_t *)data;
        req.content.len = len;
        f->in_flight = true;
        if (cwsd_rpc_unary(f->d, "WriteFile", &req.base,
                           &coreweave__sandbox__v1__write_file_response__descriptor, CHUNK_TIMEOUT,
                           on_write_unary, f, &err) < 0) {
            f->in_flight = false;
            fop_fail(f, &err);
        }
        return;
    }
    if (write_streamed(f, data, len, &err) < 0)
        fop_fail(f, &err);
}
