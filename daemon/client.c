/* One connected client process: msgpack-rpc in and out over its socket, the calls it has in
 * flight, and backpressure (streams pause while the client reads slowly). */
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "reaper.h"
#include "session.h"
#include "rpc_encode.h"

static int evbuffer_write_fn(void *data, const char *buf, size_t len)
{
    return evbuffer_add(data, buf, len);
}

void cwsd_client_packer(struct cwsd_client *c, msgpack_packer *pk)
{
    msgpack_packer_init(pk, bufferevent_get_output(c->bev), evbuffer_write_fn);
}

void cwsd_client_pause_reading(struct cwsd_client *c, bool paused)
{
    if (!c->bev || c->closing)
        return;
    if (paused)
        bufferevent_disable(c->bev, EV_READ);
    else
        bufferevent_enable(c->bev, EV_READ);
}

size_t cwsd_client_pending(const struct cwsd_client *c)
{
    return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

/* ---- calls ---- */

static void unlink_call(struct cwsd_call *call)
{
    struct cwsd_client *c = call->client;
    for (struct cwsd_call **p = &c->calls; *p; p = &(*p)->next) {
        if (*p == call) {
            *p = call->next;
            c->d->calls_in_flight--;
            return;
        }
    }
}

static void free_call(struct cwsd_call *call)
{
    unlink_call(call);
    free(call);
}

struct cwsd_call *cwsd_call_new(struct cwsd_client *c, uint32_t msgid, const char *method)
{
    struct cwsd_call *call = calloc(1, sizeof(*call));
    if (!call)
        return NULL;
    call->client = c;
    call->msgid = msgid;
    snprintf(call->method, sizeof(call->method), "%s", method);
    call->next = c->calls;
    c->calls = call;
    c->d->calls_in_flight++;
    return call;
}

struct cwsd_call *cwsd_client_find_call(struct cwsd_client *c, uint32_t msgid)
{
    for (struct cwsd_call *call = c->calls; call; call = call->next)
        if (call->msgid == msgid)
            return call;
    return NULL;
}

int cwsd_call_reply(struct cwsd_call *call, cwsd_pack_fn fn, void *ud)
{
    struct cwsd_client *c = call->client;
    msgpack_packer pk;
    int r = 0;
    if (c->bev && !c->closing) {
        cwsd_client_packer(c, &pk);
        r = cws_rpc_pack_result_head(&pk, call->msgid);
        if (r == 0)
            r = fn ? fn(&pk, ud) : (msgpack_pack_nil(&pk) == 0 ? 0 : -CWS_E_NOMEM);
    }
    free_call(call);
    return r;
}

int cwsd_call_fail(struct cwsd_call *call, const struct cws_error *err)
{
    struct cwsd_client *c = call->client;
    msgpack_packer pk;
    int r = 0;
    if (c->bev && !c->closing) {
        cwsd_client_packer(c, &pk);
        r = cws_rpc_pack_error_response(&pk, call->msgid, err);
    }
    cws_log(CWS_LOG_DEBUG, "client %llu: %s #%u failed: %s: %s", (unsigned long long)c->id,
            call->method, call->msgid, cws_errcode_name(err->code), err->message);
    free_call(call);
    return r;
}

int cwsd_call_failf(struct cwsd_call *call, enum cws_errcode code, const char *fmt, ...)
{
    struct cws_error err;
    va_list ap;
    va_start(ap, fmt);
    cws_error_setv(&err, code, fmt, ap);
    va_end(ap);
    return cwsd_call_fail(call, &err);
}

int cwsd_call_notify(struct cwsd_call *call, const char *method, cwsd_pack_fn fn, void *ud)
{
    struct cwsd_client *c = call->client;
    msgpack_packer pk;
    if (!c->bev || c->closing)
        return -CWS_E_UNAVAILABLE;
    cwsd_client_packer(c, &pk);
    int r = cws_rpc_pack_notification_head(&pk, method);
    if (r == 0)
        r = fn(&pk, ud);
    if (r < 0)
        return r;
    return cwsd_client_pending(c) > CWSD_CLIENT_OUT_HIGH ? 1 : 0;
}

/* ---- connection ---- */

struct cwsd_client *cwsd_client_by_id(struct cwsd *d, uint64_t id)
{
    for (struct cwsd_client *c = d->clients; c; c = c->next)
        if (c->id == id && !c->closing)
            return c;
    return NULL;
}

static void really_free(struct cwsd_client *c)
{
    struct cwsd *d = c->d;
    for (struct cwsd_client **p = &d->clients; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            d->n_clients--;
            break;
        }
    }
    if (c->bev)
        bufferevent_free(c->bev);
    cws_rpc_decoder_free(c->dec);
    free(c->session);
    free(c);
}

/* Cancel every call: their handlers release what they hold and must not answer. */
static void cancel_calls(struct cwsd_client *c)
{
    while (c->calls) {
        struct cwsd_call *call = c->calls;
        void (*cancel)(struct cwsd_call *, void *) = call->on_cancel;
        void *ud = call->ud;
        unlink_call(call);
        if (cancel)
            cancel(call, ud);
        free(call);
    }
}

void cwsd_client_close(struct cwsd_client *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = true;
    cwsd_log_about(CWS_LOG_DEBUG, NULL, c->session, c->pid, "client %llu (pid %d) closed: %s",
                   (unsigned long long)c->id, (int)c->pid, why);
    cancel_calls(c);
#ifdef CWSD_HAVE_BACKEND
    cwsd_session_detach(c);
    cwsd_reaper_client_gone(c->d, c->id);
#endif
    if (c->depth == 0)
        really_free(c);
}

static void answer_protocol_error(struct cwsd_client *c, const struct cws_error *err)
{
    uint32_t msgid;
    msgpack_packer pk;
    if (cws_rpc_decoder_bad_msgid(c->dec, &msgid) != 1)
        return;
    cwsd_client_packer(c, &pk);
    cws_rpc_pack_error_response(&pk, msgid, err);
}

static void handle_message(struct cwsd_client *c, const struct cws_rpc_msg *msg)
{
    switch (msg->type) {
    case CWS_RPC_REQUEST:
        cwsd_dispatch(c, msg);
        break;
    case CWS_RPC_NOTIFICATION:
        cwsd_dispatch_notification(c, msg);
        break;
    default:
        cws_log(CWS_LOG_DEBUG, "client %llu sent a response (#%u); ignored",
                (unsigned long long)c->id, msg->msgid);
        break;
    }
}

/* Decode and serve every whole message buffered; false when the connection must close. */
static bool drain_messages(struct cwsd_client *c)
{
    struct cws_error err;
    for (;;) {
        struct cws_rpc_msg *msg = NULL;
        int r = cws_rpc_decoder_next(c->dec, &msg, &err);
        if (r == 0)
            return true;
        if (r == 1) {
            handle_message(c, msg);
            cws_rpc_msg_free(msg);
            if (c->closing)
                return false;
            continue;
        }
        if (cws_rpc_decoder_broken(c->dec)) {
            cws_log(CWS_LOG_WARN, "client %llu (pid %d): %s; closing the connection",
                    (unsigned long long)c->id, (int)c->pid, err.message);
            return false;
        }
        answer_protocol_error(c, &err);
    }
}

static void on_read(struct bufferevent *bev, void *ud)
{
    struct cwsd_client *c = ud;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct cws_error err;
    bool ok = true;

    c->depth++;
    while (ok && !c->closing && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t n = v.iov_len;
        if (cws_rpc_decoder_feed(c->dec, v.iov_base, n, &err) < 0) {
            cws_log(CWS_LOG_WARN, "client %llu: %s", (unsigned long long)c->id, err.message);
            ok = false;
            break;
        }
        evbuffer_drain(in, n);
        ok = drain_messages(c);
    }
    if (!ok)
        cwsd_client_close(c, "protocol error"); /* depth > 0: freed below, not inside */
    c->depth--;
    if (c->closing && c->depth == 0)
        really_free(c);
}

/* The output queue fell below the low-water mark: let paused streams go on. */
static void on_write(struct bufferevent *bev, void *ud)
{
    struct cwsd_client *c = ud;
    (void)bev;
    c->depth++;
    for (struct cwsd_call *call = c->calls, *next; call && !c->closing; call = next) {
        next = call->next;
        if (call->on_writable)
            call->on_writable(call, call->ud);
    }
    c->depth--;
    if (c->closing && c->depth == 0)
        really_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *ud)
{
    struct cwsd_client *c = ud;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        cwsd_client_close(c, what & BEV_EVENT_EOF ? "end of connection" : "connection error");
}

int cwsd_client_new(struct cwsd *d, int fd, pid_t pid, uid_t uid, struct cws_error *err)
{
    struct cwsd_client *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    c->d = d;
    c->id = ++d->next_client_id;
    c->pid = pid;
    c->uid = uid;
    c->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev || cws_rpc_decoder_new(0, &c->dec) < 0) {
        if (!c->bev)
            close(fd);
        really_free(c);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, CWSD_CLIENT_OUT_HIGH / 2, 0);
    /* libevent's 16 KiB default costs a writev and a wake-up per 16 KiB of a large stream. */
    bufferevent_set_max_single_write(c->bev, 1u << 20);
    bufferevent_set_max_single_read(c->bev, 256u << 10);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = d->clients;
    d->clients = c;
    d->n_clients++;
    cwsd_log_about(CWS_LOG_DEBUG, NULL, NULL, pid, "client %llu connected (pid %d)",
                   (unsigned long long)c->id, (int)pid);
    return 0;
}
