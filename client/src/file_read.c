/* file.read, always streamed: the data arrives as file.chunk notifications and goes to memory,
 * to a callback or to a file descriptor, so a file of any size fits in bounded messages. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define PACK_OK(expr) ((expr) == 0)

enum read_sink { SINK_MEMORY, SINK_CALLBACK, SINK_FD };

struct read_state {
    enum read_sink sink;
    struct cwsc_buf data; /* SINK_MEMORY */
    void *taken;          /* the data once parsed, until taken */
    size_t taken_len;
    cws_file_chunk_fn fn; /* SINK_CALLBACK */
    void *userdata;
    int fd; /* SINK_FD */
    uint64_t received;
    int64_t size; /* as the daemon counted; -1 until the result */
};

static void free_read(void *state)
{
    struct read_state *st = state;
    cwsc_buf_free(&st->data);
    free(st->taken);
    free(st);
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Hand one chunk to the sink; a failure stops the transfer. */
static void deliver(cws_op *op, struct read_state *st, const void *data, size_t len)
{
    struct cws_error e;
    int r = 0;
    cws_error_clear(&e);
    if (st->sink == SINK_MEMORY) {
        if (cwsc_buf_append(&st->data, data, len) < 0)
            r = cws_error_set(&e, CWS_E_NOMEM, "cannot keep the file in memory");
    } else if (st->sink == SINK_CALLBACK) {
        r = st->fn(op, data, len, st->received, st->userdata);
        if (r < 0)
            cws_error_set(&e, (enum cws_errcode) - r, "the chunk callback stopped the transfer");
    } else {
        int w = write_all(st->fd, data, len);
        if (w < 0)
            r = cws_error_set(&e, CWS_E_IO, "cannot write the file locally: %s", strerror(-w));
    }
    if (r < 0)
        cwsc_op_fail_locally(op, &e);
    st->received += len;
}

static void notify_read(cws_op *op, const char *method, const msgpack_object *params)
{
    struct read_state *st = op->state;
    const void *data = NULL;
    size_t len = 0;
    int64_t offset = -1;
    if (strcmp(method, "file.chunk") != 0 || op->has_local_error ||
        cws_rpc_param_bytes(params, "data", &data, &len, NULL) <= 0)
        return;
    if (cws_rpc_param_int(params, "offset", 0, INT64_MAX, &offset, NULL) > 0 &&
        (uint64_t)offset != st->received) {
        struct cws_error e;
        cws_error_set(&e, CWS_E_DATA_LOSS, "a chunk at offset %lld, expected %llu",
                      (long long)offset, (unsigned long long)st->received);
        cws_error_set_reason(&e, "CWSANDBOX_FILE_TRUNCATED");
        cwsc_op_fail_locally(op, &e);
        return;
    }
    deliver(op, st, data, len);
}

static int parse_read(cws_op *op, const msgpack_object *result, struct cws_error *err)
{
    struct read_state *st = op->state;
    const void *data = NULL;
    size_t len = 0;
    int r = cwsc_check_map(result, "file.read", err);
    if (r == 0)
        r = cwsc_get_int(result, "size", &st->size, err);
    /* A daemon may answer a small file inline even when asked for chunks. */
    if (r == 0 && st->received == 0 &&
        (r = cws_rpc_param_bytes(result, "data", &data, &len, err)) > 0) {
        deliver(op, st, data, len);
        r = 0;
    }
    if (r < 0)
        return cwsc_bad_result(err, "file.read");
    if (st->size >= 0 && (uint64_t)st->size != st->received) {
        cws_error_set(err, CWS_E_DATA_LOSS, "received %llu of %lld bytes",
                      (unsigned long long)st->received, (long long)st->size);
        cws_error_set_reason(err, "CWSANDBOX_FILE_TRUNCATED");
        return -CWS_E_DATA_LOSS;
    }
    if (st->sink == SINK_MEMORY)
        st->taken = cwsc_buf_steal(&st->data, &st->taken_len);
    return 0;
}

static const struct cwsc_op_type read_type = {
    .name = "file.read",
    .cancel_when_freed = true,
    .parse = parse_read,
    .notify = notify_read,
    .free_state = free_read,
};

struct path_params {
    const char *id;
    const char *path;
};

static int pack_read(msgpack_packer *pk, const void *ud)
{
    const struct path_params *p = ud;
    bool ok = PACK_OK(msgpack_pack_map(pk, 3)) && PACK_OK(cws_rpc_pack_kv_cstr(pk, "id", p->id)) &&
              PACK_OK(cws_rpc_pack_kv_cstr(pk, "path", p->path)) &&
              PACK_OK(cws_rpc_pack_kv_bool(pk, "streamed", true));
    return ok ? 0 : -CWS_E_NOMEM;
}

static int check_path(const char *id, const char *path, struct cws_error *err)
{
    int r = cwsc_check_id(id, err);
    if (r == 0 && (!path || path[0] != '/'))
        r = cws_error_set(err, CWS_E_INVALID_ARGUMENT, "the path must be absolute, not '%s'",
                          path ? path : "(null)");
    return r;
}

static int start_read(cws_client *c, const char *id, const char *path, struct read_state *st,
                      cws_op **ret_op, struct cws_error *err)
{
    struct path_params p = {id, path};
    st->size = -1;
    int r = check_path(id, path, err);
    if (r < 0) {
        free_read(st);
        return r;
    }
    return cwsc_call(c, "file.read", &read_type, st, pack_read, &p, ret_op, err);
}

static struct read_state *new_read(enum read_sink sink)
{
    struct read_state *st = calloc(1, sizeof(*st));
    if (st) {
        st->sink = sink;
        st->fd = -1;
    }
    return st;
}

int cws_file_read(cws_client *c, const char *id, const char *path, cws_op **ret_op,
                  struct cws_error *err)
{
    struct read_state *st = new_read(SINK_MEMORY);
    if (!st)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return start_read(c, id, path, st, ret_op, err);
}

int cws_file_read_stream(cws_client *c, const char *id, const char *path, cws_file_chunk_fn fn,
                         void *userdata, cws_op **ret_op, struct cws_error *err)
{
    if (!fn)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "a chunk callback is required");
    struct read_state *st = new_read(SINK_CALLBACK);
    if (!st)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    st->fn = fn;
    st->userdata = userdata;
    return start_read(c, id, path, st, ret_op, err);
}

int cws_file_read_to_fd(cws_client *c, const char *id, const char *path, int fd, cws_op **ret_op,
                        struct cws_error *err)
{
    if (fd < 0)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "fd must be an open descriptor");
    struct read_state *st = new_read(SINK_FD);
    if (!st)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    st->fd = fd;
    return start_read(c, id, path, st, ret_op, err);
}

static struct read_state *finished_read(const cws_op *op)
{
    struct read_state *st = cwsc_op_state(op, &read_type);
    return st && op->done && !op->failed ? st : NULL;
}

const void *cws_op_file_data(const cws_op *op, size_t *ret_len)
{
    struct read_state *st = finished_read(op);
    bool ok = st && st->sink == SINK_MEMORY;
    if (ret_len)
        *ret_len = ok ? st->taken_len : 0;
    /* An empty file is data too: never NULL for a successful read. */
    return ok ? (st->taken ? st->taken : (const void *)"") : NULL;
}

int cws_op_file_take_data(cws_op *op, void **ret_data, size_t *ret_len, struct cws_error *err)
{
    struct read_state *st = finished_read(op);
    if (!st || st->sink != SINK_MEMORY || !ret_data)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "not a finished, successful cws_file_read() op");
    void *data = st->taken ? st->taken : malloc(1);
    if (!data)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    *ret_data = data;
    if (ret_len)
        *ret_len = st->taken_len;
    st->taken = NULL;
    st->taken_len = 0;
    return 0;
}

int64_t cwsc_file_read_size(const cws_op *op)
{
    struct read_state *st = finished_read(op);
    return st ? (int64_t)st->received : -1;
}
