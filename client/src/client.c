/* The connection: its output queue, reading and dispatching what the daemon sends, and the
 * loss of the connection (every op then fails UNAVAILABLE, never hangs). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* Bytes read per cws_client_process() call at most, so that a fast stream cannot keep a
 * caller's event loop from its other work (the fd stays readable: level-triggered). */
#define READ_BUDGET (16u * 1024 * 1024)

const char *cws_client_version(void)
{
    return CWS_CLIENT_VERSION;
}

void cwsc_client_break(cws_client *c, enum cws_errcode code, const char *fmt, ...)
{
    if (c->broken)
        return;
    va_list ap;
    va_start(ap, fmt);
    cws_error_setv(&c->broken_err, code, fmt, ap);
    va_end(ap);
    c->broken = true;
}

int cwsc_client_usable(const cws_client *c, struct cws_error *err)
{
    if (!c)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "client is NULL");
    if (c->broken) {
        if (err)
            *err = c->broken_err;
        return -(int)c->broken_err.code;
    }
    return 0;
}

void cwsc_client_fail_all(cws_client *c)
{
    /* Take ops one at a time: callbacks may start new ops (which fail at once) or free ops. */
    for (size_t b = 0; b < CWSC_BUCKETS; b++)
        while (c->ops[b])
            cwsc_op_finish(c->ops[b], &c->broken_err);
}

/* Let uploads add chunks while the queue is short. */
static void pump_uploads(cws_client *c)
{
    for (size_t b = 0; b < CWSC_BUCKETS && c->n_pumping > 0; b++) {
        for (cws_op *op = c->ops[b]; op; op = op->next) {
            while (op->pumping && cwsc_buf_size(&c->out) < CWSC_OUT_LOW_WATER) {
                if (op->type->pump(op) == 0 && op->pumping) {
                    op->pumping = false;
                    c->n_pumping--;
                }
            }
            if (cwsc_buf_size(&c->out) >= CWSC_OUT_LOW_WATER)
                return;
        }
    }
}

void cwsc_client_flush_some(cws_client *c)
{
    while (!c->broken) {
        if (c->n_pumping > 0 && cwsc_buf_size(&c->out) < CWSC_OUT_LOW_WATER)
            pump_uploads(c);
        size_t n = cwsc_buf_size(&c->out);
        if (n == 0)
            return;
        ssize_t w = send(c->fd, cwsc_buf_head(&c->out), n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w < 0) {
            cwsc_client_break(c, CWS_E_UNAVAILABLE, "lost the connection to cwsandboxd: %s",
                              strerror(errno));
            return;
        }
        cwsc_buf_consume(&c->out, (size_t)w);
    }
}

static void dispatch_notification(cws_client *c, const struct cws_rpc_msg *msg)
{
    int64_t id = -1;
    if (cws_rpc_param_int(msg->params, "id", 0, UINT32_MAX, &id, NULL) <= 0)
        return;
    cws_op *op = cwsc_op_find(c, (uint32_t)id);
    if (!op || op->freed || !op->type->notify)
        return;
    /* Held while its handler runs: a user callback in there may wait, and so finish and free
     * the op in a nested call. */
    op->waiters++;
    op->type->notify(op, msg->method, msg->params);
    op->waiters--;
    if (op->freed && op->done && op->waiters == 0)
        cwsc_op_destroy(op);
}

static void dispatch(cws_client *c, const struct cws_rpc_msg *msg)
{
    if (msg->type == CWS_RPC_RESPONSE) {
        cws_op *op = cwsc_op_find(c, msg->msgid);
        if (op)
            cwsc_op_respond(op, msg->error, msg->result);
    } else if (msg->type == CWS_RPC_NOTIFICATION) {
        dispatch_notification(c, msg);
    }
    /* The daemon sends no requests to clients: anything else is ignored. */
}

/* Dispatch every whole message buffered. Runs before reading more, so that a callback that
 * waits (and so reads) in a nested call finds the decoder drained. */
static void dispatch_buffered(cws_client *c)
{
    while (!c->broken) {
        struct cws_rpc_msg *msg = NULL;
        struct cws_error e;
        cws_error_clear(&e);
        int r = cws_rpc_decoder_next(c->dec, &msg, &e);
        if (r == 0)
            return;
        if (r < 0) {
            if (cws_rpc_decoder_broken(c->dec))
                cwsc_client_break(c, CWS_E_PROTOCOL, "cwsandboxd sent malformed data: %s",
                                  e.message);
            continue; /* a well-formed value that is not msgpack-rpc: skipped */
        }
        dispatch(c, msg);
        cws_rpc_msg_free(msg);
    }
}

static void read_available(cws_client *c)
{
    char buf[65536];
    size_t total = 0;
    dispatch_buffered(c);
    while (!c->broken && total < READ_BUDGET) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            cwsc_client_break(c, CWS_E_UNAVAILABLE, "lost the connection to cwsandboxd: %s",
                              n == 0 ? "it closed the connection" : strerror(errno));
            return;
        }
        total += (size_t)n;
        struct cws_error e;
        cws_error_clear(&e);
        if (cws_rpc_decoder_feed(c->dec, buf, (size_t)n, &e) < 0) {
            cwsc_client_break(c, e.code == CWS_E_NOMEM ? CWS_E_NOMEM : CWS_E_PROTOCOL,
                              "cannot read from cwsandboxd: %s", e.message);
            return;
        }
        dispatch_buffered(c);
    }
}

int cws_client_process(cws_client *c, struct cws_error *err)
{
    if (!c)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "client is NULL");
    if (!c->broken)
        read_available(c);
    if (!c->broken)
        cwsc_client_flush_some(c);
    if (c->broken) {
        cwsc_client_fail_all(c);
        return cwsc_client_usable(c, err);
    }
    return 0;
}

bool cws_client_want_write(const cws_client *c)
{
    return c && !c->broken && (cwsc_buf_size(&c->out) > 0 || c->n_pumping > 0);
}

int cws_client_flush(cws_client *c, int timeout_ms, struct cws_error *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : cwsc_now_ms() + timeout_ms;
    if (!c)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "client is NULL");
    cwsc_client_flush_some(c);
    while (cws_client_want_write(c)) {
        int left = cwsc_left_ms(deadline);
        if (left == 0)
            return cws_error_set(err, CWS_E_DEADLINE_EXCEEDED, "%zu bytes still queued after %d ms",
                                 cws_client_pending_bytes(c), timeout_ms);
        /* Reading too: a daemon that cannot write to us may stop reading from us. */
        struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLOUT};
        if (poll(&p, 1, left) < 0 && errno != EINTR)
            return cws_error_set(err, CWS_E_IO, "poll: %s", strerror(errno));
        cws_client_process(c, NULL);
    }
    if (c->broken) {
        cwsc_client_fail_all(c);
        return cwsc_client_usable(c, err);
    }
    return 0;
}

void cws_client_free(cws_client *c)
{
    if (!c)
        return;
    if (!c->broken)
        cwsc_client_break(c, CWS_E_CANCELLED, "the client was closed");
    cwsc_client_fail_all(c);
    if (c->fd >= 0)
        close(c->fd);
    cws_rpc_decoder_free(c->dec);
    cwsc_buf_free(&c->out);
    cwsc_hello_clear(&c->hello);
    free(c->socket_path);
    free(c->name);
    free(c->session);
    free(c);
}

const struct cws_daemon_info *cws_client_daemon(const cws_client *c)
{
    return c ? &c->hello.info : NULL;
}

const char *cws_client_socket_path(const cws_client *c)
{
    return c ? c->socket_path : NULL;
}

const char *cws_client_session(const cws_client *c)
{
    return c ? c->session : NULL;
}

int cws_client_set_session(cws_client *c, const char *name, struct cws_error *err)
{
    char *copy = NULL;
    if (!c)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "client is NULL");
    if (name && *name && !(copy = strdup(name)))
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    free(c->session);
    c->session = copy;
    return 0;
}

int cws_client_fd(const cws_client *c)
{
    return c ? c->fd : -1;
}

size_t cws_client_pending_bytes(const cws_client *c)
{
    return c ? cwsc_buf_size(&c->out) : 0;
}

size_t cws_client_ops_in_flight(const cws_client *c)
{
    return c ? c->n_ops : 0;
}
