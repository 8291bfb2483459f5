/* The scripted nghttp2 peer of h2_test_peer.h. Test code: small, not robust against
 * malicious clients. */
#include "h2_test_peer.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "grpc_frame.h"

enum method { M_ECHO, M_SINK, M_FIREHOSE, M_HANG, M_FREEZE, M_UNKNOWN };

struct pstream {
    LIST_ENTRY(pstream) link;
    int32_t id;
    enum method method;
    struct h2p_conn *conn;
    struct evbuffer *in;  /* request bytes (framed) */
    struct evbuffer *out; /* response bytes (framed) */
    bool headers_sent;
    bool in_ended;
    bool finish; /* send trailers once out is empty */
    bool deferred;
    uint32_t fire_left, fire_size, fire_next;
};

struct h2p_conn {
    struct h2p *p;
    LIST_ENTRY(h2p_conn) link;
    struct bufferevent *bev;
    nghttp2_session *session;
    LIST_HEAD(, pstream) streams;
    int requests;
    int32_t first_stream;
    bool frozen;
};

struct h2p {
    struct h2p_config cfg;
    struct evconnlistener *listener;
    LIST_HEAD(, h2p_conn) conns;
    struct h2p_stats stats;
    char path[108];
};

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void stream_free(struct pstream *st)
{
    LIST_REMOVE(st, link);
    evbuffer_free(st->in);
    evbuffer_free(st->out);
    free(st);
}

static void conn_free(struct h2p_conn *c)
{
    while (!LIST_EMPTY(&c->streams))
        stream_free(LIST_FIRST(&c->streams));
    LIST_REMOVE(c, link);
    nghttp2_session_del(c->session);
    bufferevent_free(c->bev);
    free(c);
}

static void conn_flush(struct h2p_conn *c)
{
    if (!c->frozen && nghttp2_session_send(c->session) != 0) {
        conn_free(c);
        return;
    }
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct h2p_conn *c = ud;

    bufferevent_write(c->bev, data, len);
    return (ssize_t)len;
}

/* ---- responses -------------------------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void firehose_fill(struct pstream *st)
{
    /* One message at a time, produced only when nghttp2 asks: the count of bytes produced is
     * what flow control let through. */
    if (st->fire_left == 0 || evbuffer_get_length(st->out) > 0)
        return;
    uint8_t hdr[5] = {0};
    uint8_t *body = calloc(1, st->fire_size ? st->fire_size : 1);

    put_u32(hdr + 1, st->fire_size);
    if (st->fire_size >= 4)
        put_u32(body, st->fire_next);
    evbuffer_add(st->out, hdr, 5);
    evbuffer_add(st->out, body, st->fire_size);
    free(body);
    st->fire_next++;
    if (--st->fire_left == 0)
        st->finish = true;
}

static ssize_t on_read_response(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                                uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct pstream *st = src->ptr;
    size_t n;

    if (st->method == M_FIREHOSE)
        firehose_fill(st);
    n = evbuffer_remove(st->out, buf, len);
    if (st->method == M_FIREHOSE)
        st->conn->p->stats.firehose_bytes += n;
    if (evbuffer_get_length(st->out) == 0 && st->finish) {
        static const nghttp2_nv trailers[] = {
            {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE}};

        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_submit_trailer(s, id, trailers, 1);
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static void stream_respond(struct h2p_conn *c, struct pstream *st)
{
    static const nghttp2_nv headers[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = on_read_response};

    if (!st->headers_sent) {
        st->headers_sent = true;
        nghttp2_submit_response(c->session, st->id, headers, 2, &prd);
    } else if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(c->session, st->id);
    }
}

static void stream_take_messages(struct h2p_conn *c, struct pstream *st)
{
    for (;;) {
        uint8_t hdr[5];
        uint32_t len;

        if (evbuffer_copyout(st->in, hdr, 5) < 5)
            return;
        len = (uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4];
        if (evbuffer_get_length(st->in) < 5 + (size_t)len)
            return;
        if (st->method == M_ECHO) {
            evbuffer_remove_buffer(st->in, st->out, 5 + len);
            stream_respond(c, st);
        } else if (st->method == M_FIREHOSE) {
            char text[64] = {0};

            evbuffer_drain(st->in, 5);
            evbuffer_remove(st->in, text, len < sizeof(text) - 1 ? len : sizeof(text) - 1);
            sscanf(text, "%u %u", &st->fire_left, &st->fire_size);
            if (st->fire_left == 0)
                st->finish = true;
            stream_respond(c, st);
        } else {
            evbuffer_drain(st->in, 5 + len);
        }
    }
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------ */

static enum method method_of(const uint8_t *v, size_t len)
{
    static const struct {
        const char *path;
        enum method m;
    } table[] = {{"/peer/Echo", M_ECHO},
                 {"/peer/Sink", M_SINK},
                 {"/peer/Firehose", M_FIREHOSE},
                 {"/peer/Hang", M_HANG},
                 {"/peer/Freeze", M_FREEZE}};

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strlen(table[i].path) == len && memcmp(table[i].path, v, len) == 0)
            return table[i].m;
    }
    return M_UNKNOWN;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct h2p_conn *c = ud;
    struct pstream *st;

    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    st = calloc(1, sizeof(*st));
    st->id = f->hd.stream_id;
    st->conn = c;
    st->method = M_UNKNOWN;
    st->in = evbuffer_new();
    st->out = evbuffer_new();
    LIST_INSERT_HEAD(&c->streams, st, link);
    nghttp2_session_set_stream_user_data(s, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    struct pstream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

    if (st && nlen == 5 && memcmp(name, ":path", 5) == 0)
        st->method = method_of(value, vlen);
    return 0;
}

static void freeze_all(struct h2p *p)
{
    struct h2p_conn *c;

    LIST_FOREACH(c, &p->conns, link)
    {
        c->frozen = true;
        bufferevent_disable(c->bev, EV_READ);
    }
}

static void on_request(struct h2p_conn *c, struct pstream *st)
{
    struct h2p *p = c->p;

    p->stats.requests++;
    c->requests++;
    if (c->first_stream == 0)
        c->first_stream = st->id;
    if (p->stats.refused < (unsigned)p->cfg.refuse_first) {
        p->stats.refused++;
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
        return;
    }
    if (p->cfg.goaway_after > 0 && c->requests == p->cfg.goaway_after &&
        p->stats.goaways_sent == 0) {
        p->stats.goaways_sent++;
        nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, c->first_stream, NGHTTP2_NO_ERROR,
                              (const uint8_t *)"test", 4);
    }
    if (st->method == M_FREEZE)
        freeze_all(p);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct h2p_conn *c = ud;
    struct pstream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

    if (!st)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        on_request(c, st);
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        st->in_ended = true;
        if (st->method == M_ECHO) {
            st->finish = true;
            stream_respond(c, st);
        }
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
    struct h2p_conn *c = ud;
    struct pstream *st = nghttp2_session_get_stream_user_data(s, id);

    nghttp2_session_consume_connection(s, len);
    if (!st)
        return 0;
    if (st->method == M_SINK) {
        c->p->stats.sink_bytes += len; /* never consumed at stream level: the client stalls */
        return 0;
    }
    nghttp2_session_consume_stream(s, id, len);
    evbuffer_add(st->in, data, len);
    stream_take_messages(c, st);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct h2p_conn *c = ud;
    struct pstream *st = nghttp2_session_get_stream_user_data(s, id);

    if (code == NGHTTP2_CANCEL) {
        c->p->stats.cancels++;
        c->p->stats.last_cancel_ns = mono_ns();
    }
    if (st)
        stream_free(st);
    return 0;
}

/* ---- connections ------------------------------------------------------------------------ */

static void on_read(struct bufferevent *bev, void *ud)
{
    struct h2p_conn *c = ud;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    unsigned char *data = evbuffer_pullup(in, -1);

    if (c->frozen)
        return;
    if (nghttp2_session_mem_recv(c->session, data, len) < 0) {
        conn_free(c);
        return;
    }
    evbuffer_drain(in, len);
    conn_flush(c);
}

static void on_event(struct bufferevent *bev, short what, void *ud)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_free(ud);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *ud)
{
    struct h2p *p = ud;
    struct h2p_conn *c = calloc(1, sizeof(*c));
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, p->cfg.max_streams ? p->cfg.max_streams : 1000},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
         p->cfg.initial_window ? p->cfg.initial_window : 65535},
    };

    c->p = p;
    LIST_INIT(&c->streams);
    c->bev = bufferevent_socket_new(p->cfg.base, fd, BEV_OPT_CLOSE_ON_FREE);
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_session_server_new2(&c->session, cb, c, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2);
    LIST_INSERT_HEAD(&p->conns, c, link);
    p->stats.connections++;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    conn_flush(c);
}

int h2p_start(const struct h2p_config *cfg, struct h2p **ret)
{
    struct h2p *p = calloc(1, sizeof(*p));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    p->cfg = *cfg;
    LIST_INIT(&p->conns);
    snprintf(p->path, sizeof(p->path), "%s", cfg->unix_path);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", cfg->unix_path);
    unlink(cfg->unix_path);
    p->listener = evconnlistener_new_bind(cfg->base, on_accept, p,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64,
                                          (struct sockaddr *)&sun, sizeof(sun));
    if (!p->listener) {
        free(p);
        return -1;
    }
    *ret = p;
    return 0;
}

void h2p_free(struct h2p *p)
{
    if (!p)
        return;
    while (!LIST_EMPTY(&p->conns))
        conn_free(LIST_FIRST(&p->conns));
    evconnlistener_free(p->listener);
    unlink(p->path);
    free(p);
}

const struct h2p_stats *h2p_stats(const struct h2p *p)
{
    return &p->stats;
}
