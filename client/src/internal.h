/* Internals of libcwsandbox-client, shared by its source files. Nothing here is exported: the
 * version script exports only the public cws_ API, and internal names start with cwsc_. */
#ifndef CWSC_INTERNAL_H
#define CWSC_INTERNAL_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cwsandbox/cwsandbox.h"
#include "rpc_decoder.h"
#include "rpc_encode.h"
#include "rpc_params.h"

/* Chunk size of uploads (file.write, stdin): one backend message at most (docs/protocol.md). */
#define CWSC_CHUNK (1024u * 1024)
/* Uploads are fed to the output queue only while it holds less than this, so a large transfer
 * never sits in memory twice and requests made meanwhile are not stuck behind it. */
#define CWSC_OUT_LOW_WATER (2u * CWSC_CHUNK)
/* Whole-buffer writes above this go streamed: the daemon refuses messages over 64 MiB. */
#define CWSC_INLINE_WRITE_MAX (8u * 1024 * 1024)

/* ---- buf.c: a growable byte queue ---- */

struct cwsc_buf {
    char *data;
    size_t off; /* bytes before off were consumed */
    size_t len; /* bytes in use, consumed ones included */
    size_t cap;
};

int cwsc_buf_append(struct cwsc_buf *b, const void *p, size_t n);
/* Bytes not yet consumed, and where they start. */
size_t cwsc_buf_size(const struct cwsc_buf *b);
const char *cwsc_buf_head(const struct cwsc_buf *b);
void cwsc_buf_consume(struct cwsc_buf *b, size_t n);
/* Drop what was appended after the queue held `size` unconsumed bytes (undo a partial pack). */
void cwsc_buf_truncate(struct cwsc_buf *b, size_t size);
/* Take the unconsumed bytes as one malloc'ed block (the caller frees it); the buffer is then
 * empty. Returns NULL for an empty buffer. */
void *cwsc_buf_steal(struct cwsc_buf *b, size_t *ret_len);
void cwsc_buf_free(struct cwsc_buf *b);
/* msgpack_packer writer that appends to a struct cwsc_buf. */
int cwsc_buf_pack_write(void *data, const char *p, size_t n);

/* ---- op.c: ops and their kinds ---- */

/* What differs between kinds of ops. Every hook is optional. */
struct cwsc_op_type {
    const char *name;
    /* Freed in flight, the op is cancelled: its stream has no reader any more. */
    bool cancel_when_freed;
    /* Read the result of a successful response into the op's state. A failure fails the op
     * (the state may keep a partial result, as a checked exec does). */
    int (*parse)(cws_op *op, const msgpack_object *result, struct cws_error *err);
    /* A notification of the daemon tied to this op (exec.output, file.chunk, ...). */
    void (*notify)(cws_op *op, const char *method, const msgpack_object *params);
    /* Queue the next chunk of an upload; return 1 while more remains, 0 when all is queued. */
    int (*pump)(cws_op *op);
    /* Free the kind's state. */
    void (*free_state)(void *state);
};

struct cws_op {
    cws_client *client; /* NULL once done */
    const struct cwsc_op_type *type;
    void *state; /* the kind's, freed by type->free_state */
    uint32_t msgid;
    char method[40];
    bool done;
    bool freed;   /* cws_op_free() was called while the op could not go yet */
    bool pumping; /* has upload data to queue */
    int waiters;  /* waits running on this op: they keep it alive */
    bool failed;
    struct cws_error error;
    /* An error found on this side while the op ran (a chunk callback refused, a local write
     * failed): it wins over whatever the daemon answers after the cancel it caused. */
    bool has_local_error;
    struct cws_error local_error;
    cws_op_done_fn done_fn;
    void *done_ud;
    struct cws_op *next; /* in the client's table */
};

/* A new op of type on client c, with a fresh msgid, registered in the client's table. state is
 * owned by the op from here on, even on failure. */
int cwsc_op_new(cws_client *c, const struct cwsc_op_type *type, const char *method, void *state,
                cws_op **ret, struct cws_error *err);
/* The op in flight with this msgid, or NULL. */
cws_op *cwsc_op_find(cws_client *c, uint32_t msgid);
/* Take an op out of its client's table (the msgid is free again). */
void cwsc_op_unlink(cws_op *op);
/* Finish an op: failed with err, or successful when err is NULL. Unlinks it, runs its
 * callback, and frees it when its owner already let it go. */
void cwsc_op_finish(cws_op *op, const struct cws_error *err);
/* The response of op's request arrived. */
void cwsc_op_respond(cws_op *op, const msgpack_object *error, const msgpack_object *result);
/* Record a local failure, cancel the op on the daemon, and stop its upload. */
void cwsc_op_fail_locally(cws_op *op, const struct cws_error *err);
/* The op's kind-specific state when it is of type, else NULL. */
void *cwsc_op_state(const cws_op *op, const struct cwsc_op_type *type);
/* The op's outcome as a return code, copying the error into err. */
int cwsc_op_outcome(const cws_op *op, struct cws_error *err);
/* Really free an op (no more owners). */
void cwsc_op_destroy(cws_op *op);
/* Mark an op as having upload data to queue. */
void cwsc_op_start_pump(cws_op *op);

/* ---- client.c: the connection ---- */

#define CWSC_BUCKETS 256

struct cwsc_hello {
    struct cws_daemon_info info;
    char *daemon, *kind, *url, *configured, *strategy, *source;
};

struct cws_client {
    int fd;
    char *socket_path;
    char *name;
    char *session;
    struct cws_rpc_decoder *dec;
    struct cwsc_buf out;
    uint32_t next_msgid;
    cws_op *ops[CWSC_BUCKETS];
    size_t n_ops;
    size_t n_pumping;
    bool broken;
    struct cws_error broken_err;
    struct cwsc_hello hello;
};

/* Write queued bytes until the socket would block; feed uploads as the queue drains. A write
 * error breaks the connection (ops are failed by the next process or wait). */
void cwsc_client_flush_some(cws_client *c);
/* Mark the connection lost with a message; the ops fail later in cwsc_client_fail_all(). */
void cwsc_client_break(cws_client *c, enum cws_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fail every op in flight with the broken connection's error. */
void cwsc_client_fail_all(cws_client *c);
/* The client as an error when it cannot take requests (broken), else 0. */
int cwsc_client_usable(const cws_client *c, struct cws_error *err);

/* ---- connect.c / autostart.c ---- */

struct cwsc_connect_params {
    const char *socket_path;
    const char *daemon_path;
    bool autostart;
    int64_t deadline_ms; /* monotonic */
};

/* Connect to the daemon's socket, starting the daemon when none listens. Returns the fd. */
int cwsc_connect_socket(const struct cwsc_connect_params *p, struct cws_error *err);
/* A connected socket to path: fd >= 0; -CWS_E_UNAVAILABLE when nobody listens (no file, or
 * refused); another error code otherwise. */
int cwsc_try_connect(const char *path, int64_t deadline_ms, struct cws_error *err);
/* Start the daemon for socket path under the lock, unless one answers meanwhile, and return a
 * connected fd. */
int cwsc_autostart(const struct cwsc_connect_params *p, struct cws_error *err);
/* Replace an older-protocol daemon that this library started: stop it and start a new one,
 * under the lock. Returns a connected fd, or -CWS_E_FAILED_PRECONDITION when the daemon was
 * not started by the library (or is not older). */
int cwsc_restart_old_daemon(const struct cwsc_connect_params *p, int daemon_protocol,
                            struct cws_error *err);

/* ---- call.c: requests and notifications ---- */

typedef int (*cwsc_pack_fn)(msgpack_packer *pk, const void *ud);

/* Send method with the params map packed by pack (NULL: no params) as a new op of type.
 * state is owned by the op (freed on failure too). */
int cwsc_call(cws_client *c, const char *method, const struct cwsc_op_type *type, void *state,
              cwsc_pack_fn pack, const void *ud, cws_op **ret_op, struct cws_error *err);
/* Pack a notification into b (the client's output queue, or an op's held queue). */
int cwsc_pack_notification(struct cwsc_buf *b, const char *method, cwsc_pack_fn pack,
                           const void *ud);
/* The params of a notification naming a call: {id, data?, cols?, rows?} (exec.stdin, exec.eof,
 * exec.resize, file.chunk, cancel). */
struct cwsc_op_note {
    uint32_t id;
    const void *data; /* "data" as bin, when has_data */
    size_t len;
    bool has_data;
    unsigned cols, rows; /* when has_size */
    bool has_size;
};
/* A cwsc_pack_fn for a struct cwsc_op_note. */
int cwsc_pack_op_note(msgpack_packer *pk, const void *note);
/* Queue a notification with note's params to the daemon and try to write it. */
int cwsc_send_op_note(cws_client *c, const char *method, const struct cwsc_op_note *note);

/* ---- pack.c: packing helpers ---- */

int cwsc_pack_kv_double(msgpack_packer *pk, const char *key, double v);
/* A NULL-terminated string vector as an array. */
int cwsc_pack_kv_strv(msgpack_packer *pk, const char *key, const char *const *v);
/* "NAME=value" strings as a map. */
int cwsc_pack_kv_envp(msgpack_packer *pk, const char *key, const char *const *envp);
size_t cwsc_strv_len(const char *const *v);
/* Check "NAME=value" strings: 0 or -CWS_E_INVALID_ARGUMENT naming the entry. */
int cwsc_check_envp(const char *const *envp, struct cws_error *err);
/* Check a sandbox id argument. */
int cwsc_check_id(const char *id, struct cws_error *err);

/* ---- parse.c: reading results ---- */

/* A string of map at key, copied; "" when absent. The caller frees *ret. */
int cwsc_get_str(const msgpack_object *map, const char *key, char **ret, struct cws_error *err);
int cwsc_get_int(const msgpack_object *map, const char *key, int64_t *ret, struct cws_error *err);
int cwsc_get_uint(const msgpack_object *map, const char *key, uint64_t *ret, struct cws_error *err);
int cwsc_get_double(const msgpack_object *map, const char *key, double *ret, struct cws_error *err);
int cwsc_get_bool(const msgpack_object *map, const char *key, bool *ret, struct cws_error *err);
/* An array of strings, copied, NULL-terminated (an empty one when absent). The caller frees it
 * with cwsc_strv_free(). */
int cwsc_get_strv(const msgpack_object *map, const char *key, char ***ret, size_t *ret_n,
                  struct cws_error *err);
void cwsc_strv_free(char **v);
char **cwsc_strv_dup(const char *const *v, size_t n);
/* Turn an error found while reading a result into a PROTOCOL error. */
int cwsc_bad_result(struct cws_error *err, const char *what);
/* The result must be a map. */
int cwsc_check_map(const msgpack_object *result, const char *method, struct cws_error *err);

/* ---- stream.c: data kept for a pull reader ---- */

struct cwsc_stream {
    struct cwsc_buf buf;
    bool complete; /* the call's final result arrived: the end of the data is a clean one */
};

int cwsc_stream_push(struct cwsc_stream *s, const void *data, size_t len);
/* Read for a reader of op (see cws_exec_read). */
ssize_t cwsc_stream_read(cws_op *op, struct cwsc_stream *s, void *buf, size_t len, int timeout_ms,
                         struct cws_error *err);
void cwsc_stream_free(struct cwsc_stream *s);

/* ---- wait.c ---- */

typedef bool (*cwsc_pred_fn)(const void *ud);

/* Drive the clients of ops until pred(ud) holds (or, with pred NULL, until every op is done),
 * for at most timeout_ms (-1: no limit). Returns 0 or -CWS_E_DEADLINE_EXCEEDED. */
int cwsc_wait(cws_op *const *ops, size_t n, cwsc_pred_fn pred, const void *ud, int timeout_ms,
              struct cws_error *err);
int64_t cwsc_now_ms(void);
/* Milliseconds left until deadline (0 when passed); -1 for no deadline. */
int cwsc_left_ms(int64_t deadline_ms);

/* ---- daemon_info.c ---- */

int cwsc_hello_parse(const msgpack_object *result, struct cwsc_hello *h, struct cws_error *err);
void cwsc_hello_clear(struct cwsc_hello *h);
extern const struct cwsc_op_type cwsc_hello_type;

/* ---- config.c ---- */

int cwsc_config_pack(msgpack_packer *pk, const cws_sandbox_config *cfg);
/* The config's remembered error, as a return code. */
int cwsc_config_check(const cws_sandbox_config *cfg, struct cws_error *err);

/* ---- sandbox_info.c ---- */

int cwsc_sandbox_info_parse(const msgpack_object *map, struct cws_sandbox_info *info,
                            struct cws_error *err);
void cwsc_sandbox_info_clear(struct cws_sandbox_info *info);
int cwsc_batch_parse(const msgpack_object *map, const char *count_key, struct cws_batch_result *ret,
                     struct cws_error *err);
void cwsc_batch_clear(struct cws_batch_result *b);

/* ---- file_read.c ---- */

/* Bytes received by a finished, successful read op, else -1. */
int64_t cwsc_file_read_size(const cws_op *op);

/* ---- sandbox.c / session.c: op types that read a SandboxInfo or a batch result ---- */

extern const struct cwsc_op_type cwsc_sandbox_type;
extern const struct cwsc_op_type cwsc_batch_type;

#endif
