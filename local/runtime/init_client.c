/* Connections to cwsandbox-init; see init_client.h. */
#include "init_client.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "init_proto.h"
#include "rt_internal.h"

struct cws_init_conn {
    struct bufferevent *bev;
    struct cws_rpc_decoder *dec;
    struct cws_init_conn_handlers h;
    void *ud;
    struct event *resume_ev;
    bool paused;
    bool eof;    /* the socket ended; deliver what is buffered, then on_closed */
    bool closed; /* on_closed was delivered: nothing follows */
    struct cws_error eof_why;
    int holds; /* inside a handler */
    bool freed;
};

static void conn_destroy(struct cws_init_conn *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->resume_ev)
        event_free(c->resume_ev);
    cws_rpc_decoder_free(c->dec);
    free(c);
}

/* Feed the decoder from the input only when it has no whole message: one message and one
 * chunk are buffered at most, whatever the peer sends. */
static int next_message(struct cws_init_conn *c, struct cws_rpc_msg **ret, struct cws_error *err)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        int r = cws_rpc_decoder_next(c->dec, ret, err);
        if (r != 0 && (r > 0 || cws_rpc_decoder_broken(c->dec)))
            return r;
        if (r < 0)
            continue; /* one malformed message: skip it */
        char buf[CWS_INIT_CHUNK];
        int n = evbuffer_remove(in, buf, sizeof(buf));
        if (n <= 0)
            return 0;
        r = cws_rpc_decoder_feed(c->dec, buf, (size_t)n, err);
        if (r < 0)
            return r;
    }
}

/* Deliver buffered messages until paused, freed or out of data. */
static void dispatch(struct cws_init_conn *c)
{
    struct cws_error err;
    c->holds++;
    while (!c->paused && !c->freed) {
        struct cws_rpc_msg *m = NULL;
        int r = next_message(c, &m, &err);
        if (r > 0) {
            c->h.on_message(c, m, c->ud);
            cws_rpc_msg_free(m);
            continue;
        }
        if (r < 0) {
            c->eof = true;
            c->eof_why = err;
        }
        if (c->eof) {
            /* No more messages: tell once, then stay quiet. */
            c->eof = false;
            c->closed = c->paused = true;
            bufferevent_disable(c->bev, EV_READ);
            c->h.on_closed(c, &c->eof_why, c->ud);
        }
        break;
    }
    if (--c->holds == 0 && c->freed)
        conn_destroy(c);
}

static void on_readable(struct bufferevent *bev, void *arg)
{
    dispatch(arg);
}

static void on_writable(struct bufferevent *bev, void *arg)
{
    struct cws_init_conn *c = arg;
    if (!c->h.on_drained)
        return;
    c->holds++;
    c->h.on_drained(c, c->ud);
    if (--c->holds == 0 && c->freed)
        conn_destroy(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct cws_init_conn *c = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) || c->closed)
        return;
    /* A write that fails (EPIPE) means init closed its side, usually right after sending the
     * exit status: that message may still be unread, so keep reading to the end (libevent
     * leaves reading enabled) and report the end from there. */
    if ((what & BEV_EVENT_WRITING) && !(what & BEV_EVENT_EOF)) {
        evbuffer_drain(bufferevent_get_output(c->bev),
                       evbuffer_get_length(bufferevent_get_output(c->bev)));
        return;
    }
    c->eof = true;
    if (what & BEV_EVENT_ERROR)
        cws_error_set(&c->eof_why, CWS_E_UNAVAILABLE, "connection to cwsandbox-init: %s",
                      strerror(EVUTIL_SOCKET_ERROR()));
    else
        cws_error_set(&c->eof_why, CWS_E_UNAVAILABLE, "cwsandbox-init closed the connection");
    dispatch(c);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    dispatch(arg);
}

static int connect_socket(int dirfd, struct cws_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cws_sb_dir_path(dirfd, CWS_SB_INIT_SOCKET, sa.sun_path, sizeof(sa.sun_path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r =
            cws_error_set(err, CWS_E_UNAVAILABLE, "connect to cwsandbox-init: %s", strerror(errno));
        close(fd);
        return r;
    }
    return fd;
}

int cws_init_conn_open(struct event_base *base, int dirfd, const struct cws_init_conn_handlers *h,
                       void *ud, struct cws_init_conn **ret, struct cws_error *err)
{
    int fd = connect_socket(dirfd, err);
    if (fd < 0)
        return fd;
    struct cws_init_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    c->h = *h;
    c->ud = ud;
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->resume_ev = event_new(base, -1, 0, on_resume, c);
    if (!c->bev)
        close(fd);
    if (!c->bev || !c->resume_ev || cws_rpc_decoder_new(CWS_INIT_MAX_MESSAGE, &c->dec) < 0) {
        conn_destroy(c);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    bufferevent_setcb(c->bev, on_readable, on_writable, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, CWS_INIT_CONN_LOW, 0);
    bufferevent_set_max_single_read(c->bev, 256 * 1024);
    bufferevent_set_max_single_write(c->bev, 256 * 1024);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    *ret = c;
    return 0;
}

static int evbuffer_writer(void *data, const char *buf, size_t len)
{
    return evbuffer_add(data, buf, len);
}

void cws_init_conn_packer(struct cws_init_conn *c, msgpack_packer *pk)
{
    msgpack_packer_init(pk, bufferevent_get_output(c->bev), evbuffer_writer);
}

size_t cws_init_conn_queued(const struct cws_init_conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

void cws_init_conn_pause(struct cws_init_conn *c, bool paused)
{
    if (c->paused == paused || c->closed)
        return;
    c->paused = paused;
    if (paused) {
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    bufferevent_enable(c->bev, EV_READ);
    /* Messages already buffered would wait for the next read: deliver them from the loop,
     * not from inside the caller. */
    event_active(c->resume_ev, 0, 0);
}

void cws_init_conn_free(struct cws_init_conn *c)
{
    if (!c)
        return;
    if (c->holds > 0) {
        c->freed = true;
        /* Close the socket now (init kills the process on it); the memory goes later. */
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        return;
    }
    conn_destroy(c);
}
