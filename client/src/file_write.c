/* file.write: small buffers inline in the request; large ones and files streamed as file.chunk
 * notifications, fed to the output queue only as fast as it drains (the upload "pump"). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define PACK_OK(expr) ((expr) == 0)

struct write_state {
    char *data; /* a streamed buffer's copy; NULL when reading from fd */
    int fd;
    char *chunk; /* read buffer for fd */
    uint64_t size;
    uint64_t sent;
    int64_t written; /* the daemon's count; -1 until the result */
};

static void free_write(void *state)
{
    struct write_state *st = state;
    free(st->data);
    free(st->chunk);
    free(st);
}

static void fail(cws_op *op, enum cws_errcode code, const char *msg)
{
    struct cws_error e;
    cws_error_set(&e, code, "%s", msg);
    cwsc_op_fail_locally(op, &e);
}

/* Read exactly n bytes of the file; false when it ended early or failed. */
static bool read_chunk(struct write_state *st, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(st->fd, st->chunk + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static int pump_write(cws_op *op)
{
    struct write_state *st = op->state;
    uint64_t left = st->size - st->sent;
    size_t n = left < CWSC_CHUNK ? (size_t)left : CWSC_CHUNK;
    if (n == 0)
        return 0;
    const char *p = st->data ? st->data + st->sent : st->chunk;
    if (!st->data && !read_chunk(st, n)) {
        fail(op, CWS_E_IO, "the local file ended or failed before its size at the start");
        return 0;
    }
    struct cwsc_op_note note = {.id = op->msgid, .data = p, .len = n, .has_data = true};
    if (cwsc_pack_notification(&op->client->out, "file.chunk", cwsc_pack_op_note, &note) < 0) {
        fail(op, CWS_E_NOMEM, "cannot queue a file chunk");
        return 0;
    }
    st->sent += n;
    return st->sent < st->size;
}

static int parse_write(cws_op *op, const msgpack_object *result, struct cws_error *err)
{
    struct write_state *st = op->state;
    int r = cwsc_check_map(result, "file.write", err);
    if (r == 0)
        r = cwsc_get_int(result, "size", &st->written, err);
    return r < 0 ? cwsc_bad_result(err, "file.write") : 0;
}

static const struct cwsc_op_type write_type = {
    .name = "file.write",
    .cancel_when_freed = true,
    .parse = parse_write,
    .pump = pump_write,
    .free_state = free_write,
};

struct write_params {
    const char *id;
    const char *path;
    const void *data; /* inline data, or NULL when streamed */
    size_t len;
    uint64_t size; /* streamed size */
};

static int pack_write(msgpack_packer *pk, const void *ud)
{
    const struct write_params *p = ud;
    bool ok = PACK_OK(msgpack_pack_map(pk, p->data ? 3 : 4)) &&
              PACK_OK(cws_rpc_pack_kv_cstr(pk, "id", p->id)) &&
              PACK_OK(cws_rpc_pack_kv_cstr(pk, "path", p->path));
    if (ok && p->data)
        ok = PACK_OK(cws_rpc_pack_kv_bin(pk, "data", p->data, p->len));
    else if (ok)
        ok = PACK_OK(cws_rpc_pack_kv_bool(pk, "streamed", true)) &&
             PACK_OK(cws_rpc_pack_kv_uint(pk, "size", p->size));
    return ok ? 0 : -CWS_E_NOMEM;
}

static int check_args(const char *id, const char *path, struct cws_error *err)
{
    int r = cwsc_check_id(id, err);
    if (r == 0 && (!path || path[0] != '/'))
        r = cws_error_set(err, CWS_E_INVALID_ARGUMENT, "the path must be absolute, not '%s'",
                          path ? path : "(null)");
    return r;
}

/* Send the request and, for a streamed write, start feeding its chunks. */
static int start_write(cws_client *c, const struct write_params *p, struct write_state *st,
                       cws_op **ret_op, struct cws_error *err)
{
    cws_op *op = NULL;
    st->written = -1;
    int r = cwsc_call(c, "file.write", &write_type, st, pack_write, p, &op, err);
    if (r < 0)
        return r;
    if (!p->data && st->size > 0)
        cwsc_op_start_pump(op);
    *ret_op = op;
    return 0;
}

int cws_file_write(cws_client *c, const char *id, const char *path, const void *data, size_t len,
                   cws_op **ret_op, struct cws_error *err)
{
    struct write_params p = {id, path, data ? data : "", len, len};
    int r = check_args(id, path, err);
    if (r == 0 && !data && len > 0)
        r = cws_error_set(err, CWS_E_INVALID_ARGUMENT, "data is NULL");
    if (r < 0)
        return r;
    struct write_state *st = calloc(1, sizeof(*st));
    if (!st)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    st->fd = -1;
    st->size = len;
    if (len > CWSC_INLINE_WRITE_MAX) {
        /* Copied now, so the caller may free its buffer on return. */
        if (!(st->data = malloc(len))) {
            free_write(st);
            return cws_error_set(err, CWS_E_NOMEM, "cannot copy %zu bytes", len);
        }
        memcpy(st->data, data, len);
        p.data = NULL;
    }
    return start_write(c, &p, st, ret_op, err);
}

int cws_file_write_from_fd(cws_client *c, const char *id, const char *path, int fd, cws_op **ret_op,
                           struct cws_error *err)
{
    struct stat sb;
    int r = check_args(id, path, err);
    if (r < 0)
        return r;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "fd must be an open regular file (read a pipe into memory and use "
                             "cws_file_write())");
    off_t at = lseek(fd, 0, SEEK_CUR);
    struct write_state *st = calloc(1, sizeof(*st));
    if (!st || !(st->chunk = malloc(CWSC_CHUNK))) {
        free(st);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    st->fd = fd;
    st->size = at >= 0 && sb.st_size > at ? (uint64_t)(sb.st_size - at) : 0;
    struct write_params p = {id, path, NULL, 0, st->size};
    return start_write(c, &p, st, ret_op, err);
}

int64_t cws_op_file_size(const cws_op *op)
{
    struct write_state *st = cwsc_op_state(op, &write_type);
    if (st)
        return op->done && !op->failed ? st->written : -1;
    return cwsc_file_read_size(op);
}
