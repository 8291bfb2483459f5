/* One HTTP/2 connection: an nghttp2 server session on a libevent bufferevent.
 *
 * Reading: every byte received goes through nghttp2_session_mem_recv(); its callbacks route
 * frames to the calls (grpc_request.c, grpc_call.c). The connection-level window is consumed
 * as soon as DATA arrives, the stream-level window only when the call takes the bytes, so a
 * paused call stops its own client without starving the other calls of the connection.
 *
 * Writing: nghttp2_session_send() appends frames to the bufferevent's output buffer, response
 * messages without an extra copy (NGHTTP2_DATA_FLAG_NO_COPY moves them from the call's queue),
 * and the buffer is written at once, in the loop turn that produced it: the bufferevent's
 * write event is armed only while the socket is full, which saves three system calls per
 * reply. When the buffer holds GSRV_CONN_OUT_LIMIT bytes the callbacks answer WOULDBLOCK and
 * the write callback (at half of it) resumes, so a slow reader bounds what we buffer.
 *
 * Calls never flush synchronously: they ask for a flush, which runs from the loop (an active
 * event), so no handler re-enters nghttp2 and nothing is freed under a caller's feet.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gsrv_private.h"
#include "log.h"

/* Largest single read from the socket: big enough that a large upload is not handled in
 * many small slices. */
#define CONN_MAX_READ (256 * 1024)
/* Output rounds (of up to GSRV_CONN_OUT_LIMIT bytes) per flush before yielding to the loop. */
#define CONN_SEND_ROUNDS 8

static void conn_close(struct gsrv_conn *conn, enum cws_errcode why)
{
    struct cws_gcall *call;

    while ((call = TAILQ_FIRST(&conn->calls)))
        gcall_stream_closed(call, why);
    nghttp2_session_del(conn->session);
    if (conn->bev)
        bufferevent_free(conn->bev);
    if (conn->flush_ev)
        event_free(conn->flush_ev);
    gsrv_conn_unlink(conn->srv, conn);
    free(conn);
}

static bool conn_output_full(const struct gsrv_conn *conn)
{
    return evbuffer_get_length(bufferevent_get_output(conn->bev)) >= GSRV_CONN_OUT_LIMIT;
}

static void conn_run_pending(struct gsrv_conn *conn)
{
    struct cws_gcall *call;

    if (conn->n_pending == 0)
        return;
    TAILQ_FOREACH(call, &conn->calls, link)
    {
        if (call->pump_pending || call->writable_pending)
            gcall_run_pending(call);
    }
}

/* evbuffer_write() on the bufferevent's output, which the bufferevent keeps frozen at its
 * start except while it writes itself. Returns bytes written or -1 with errno. */
static int write_output(struct gsrv_conn *conn)
{
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    int n;

    evbuffer_unfreeze(out, 1);
    n = evbuffer_write(out, bufferevent_getfd(conn->bev));
    evbuffer_freeze(out, 1);
    return n;
}

/* Write the output now; arm the write event only for what the socket does not take. */
static int conn_write_now(struct gsrv_conn *conn)
{
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    bool pending;

    if (evbuffer_get_length(out) > 0 && write_output(conn) < 0 && errno != EAGAIN &&
        errno != EWOULDBLOCK && errno != EINTR) {
        cws_log(CWS_LOG_DEBUG, "%s: write failed: %s", conn->peer, strerror(errno));
        return -1;
    }
    pending = evbuffer_get_length(out) > 0;
    if (pending != conn->write_armed) {
        if (pending)
            bufferevent_enable(conn->bev, EV_WRITE);
        else
            bufferevent_disable(conn->bev, EV_WRITE);
        conn->write_armed = pending;
    }
    return 0;
}

/* Send rounds of at most GSRV_CONN_OUT_LIMIT bytes while the socket takes all of each; what
 * remains after CONN_SEND_ROUNDS continues on the next loop turn, so that one fast reader
 * does not hold the loop. A full socket arms the write event instead. */
static int conn_send(struct gsrv_conn *conn)
{
    for (int round = 0; round < CONN_SEND_ROUNDS; round++) {
        int rv = nghttp2_session_send(conn->session);

        if (rv != 0) {
            cws_log(CWS_LOG_DEBUG, "%s: HTTP/2 send failed: %s", conn->peer, nghttp2_strerror(rv));
            return -1;
        }
        if (conn_write_now(conn) < 0)
            return -1;
        if (conn->write_armed || !nghttp2_session_want_write(conn->session))
            return 0;
    }
    gsrv_conn_request_flush(conn);
    return 0;
}

/* Deliver what calls wait for, send what nghttp2 has, and close the connection once both
 * sides are done. The connection may be freed on return. */
static void conn_flush(struct gsrv_conn *conn)
{
    nghttp2_session *s = conn->session;

    if (conn->flush_scheduled) {
        event_del(conn->flush_ev);
        conn->flush_scheduled = false;
    }
    conn_run_pending(conn);
    if (conn_send(conn) < 0) {
        conn_close(conn, CWS_E_CANCELLED);
        return;
    }
    /* on_writable() owed because the send drained some queues. */
    conn_run_pending(conn);
    if (!nghttp2_session_want_read(s) && !nghttp2_session_want_write(s) &&
        evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0) {
        cws_log(CWS_LOG_DEBUG, "%s: HTTP/2 session ended", conn->peer);
        conn_close(conn, CWS_E_CANCELLED);
    }
}

void gsrv_conn_request_flush(struct gsrv_conn *conn)
{
    if (conn->flush_scheduled || conn->shutting_down)
        return;
    conn->flush_scheduled = true;
    event_active(conn->flush_ev, 0, 0);
}

static void flush_cb(evutil_socket_t fd, short what, void *userdata)
{
    struct gsrv_conn *conn = userdata;

    conn->flush_scheduled = false;
    conn_flush(conn);
}

static void read_cb(struct bufferevent *bev, void *userdata)
{
    struct gsrv_conn *conn = userdata;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v;

    while (evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
        ssize_t n = nghttp2_session_mem_recv(conn->session, v.iov_base, v.iov_len);

        if (n < 0) {
            cws_log(CWS_LOG_DEBUG, "%s: HTTP/2 error: %s", conn->peer, nghttp2_strerror((int)n));
            conn_close(conn, CWS_E_CANCELLED);
            return;
        }
        evbuffer_drain(in, (size_t)n);
        if (n == 0)
            break;
    }
    conn_flush(conn);
}

static void write_cb(struct bufferevent *bev, void *userdata)
{
    conn_flush(userdata);
}

static void event_cb(struct bufferevent *bev, short events, void *userdata)
{
    struct gsrv_conn *conn = userdata;

    if (events & BEV_EVENT_ERROR)
        cws_log(CWS_LOG_DEBUG, "%s: connection error: %s", conn->peer,
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    else
        cws_log(CWS_LOG_DEBUG, "%s: connection closed by the peer", conn->peer);
    conn_close(conn, CWS_E_CANCELLED);
}

/* --- nghttp2 callbacks ------------------------------------------------------------------ */

static ssize_t send_cb(nghttp2_session *session, const uint8_t *data, size_t len, int flags,
                       void *userdata)
{
    struct gsrv_conn *conn = userdata;

    if (conn_output_full(conn))
        return NGHTTP2_ERR_WOULDBLOCK;
    if (evbuffer_add(bufferevent_get_output(conn->bev), data, len) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

static int send_data_cb(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *source, void *userdata)
{
    static const uint8_t zeros[256];
    struct gsrv_conn *conn = userdata;
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    size_t padlen = frame->data.padlen;

    if (conn_output_full(conn))
        return NGHTTP2_ERR_WOULDBLOCK;
    if (evbuffer_add(out, framehd, 9) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    /* We never ask for padding, but the frame format allows it. */
    if (padlen > 0) {
        uint8_t pad_length = (uint8_t)(padlen - 1);

        evbuffer_add(out, &pad_length, 1);
    }
    gcall_write_data(source->ptr, out, length);
    if (padlen > 1)
        evbuffer_add(out, zeros, padlen - 1);
    return 0;
}

static struct cws_gcall *stream_call(nghttp2_session *session, int32_t stream_id)
{
    return nghttp2_session_get_stream_user_data(session, stream_id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *userdata)
{
    struct cws_gcall *call;

    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (gcall_new(userdata, frame->hd.stream_id, &call) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, nghttp2_rcbuf *name,
                     nghttp2_rcbuf *value, uint8_t flags, void *userdata)
{
    struct cws_gcall *call = stream_call(session, frame->hd.stream_id);

    /* Request trailers carry nothing gRPC uses. */
    if (!call || call->state != GCALL_HEADERS)
        return 0;
    if (gcall_add_header(call, name, value) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *userdata)
{
    struct cws_gcall *call;

    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    call = stream_call(session, frame->hd.stream_id);
    if (!call)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && call->state == GCALL_HEADERS)
        gcall_headers_done(call);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        gcall_on_remote_end(call);
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *userdata)
{
    struct cws_gcall *call = stream_call(session, stream_id);

    nghttp2_session_consume_connection(session, len);
    if (call)
        gcall_on_data(call, data, len);
    else
        nghttp2_session_consume_stream(session, stream_id, len);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *userdata)
{
    struct gsrv_conn *conn = userdata;
    struct cws_gcall *call = stream_call(session, stream_id);

    if (!call)
        return 0;
    /* nghttp2 may keep closed streams around (priority); they must not point at a freed call. */
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    gcall_stream_closed(call, conn->shutting_down ? CWS_E_UNAVAILABLE : CWS_E_CANCELLED);
    return 0;
}

/* Once our side ended the stream, a client still sending is told to stop (RFC 9113 8.1),
 * which also frees the stream instead of waiting for its END_STREAM. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *userdata)
{
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    return 0;
}

static int on_error(nghttp2_session *session, int lib_error_code, const char *msg, size_t len,
                    void *userdata)
{
    struct gsrv_conn *conn = userdata;

    cws_log(CWS_LOG_DEBUG, "%s: HTTP/2: %.*s", conn->peer, (int)len, msg);
    return 0;
}

int gsrv_callbacks_new(nghttp2_session_callbacks **ret)
{
    nghttp2_session_callbacks *cb;

    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -CWS_E_NOMEM;
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback2(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_error_callback2(cb, on_error);
    *ret = cb;
    return 0;
}

/* --- life cycle ------------------------------------------------------------------------- */

static int conn_start_session(struct gsrv_conn *conn)
{
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, GSRV_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GSRV_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GSRV_MAX_HEADER_LIST},
    };

    if (nghttp2_session_server_new2(&conn->session, conn->srv->callbacks, conn,
                                    conn->srv->option) != 0)
        return -CWS_E_NOMEM;
    if (nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings,
                                sizeof(settings) / sizeof(settings[0])) != 0 ||
        nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0,
                                              GSRV_CONN_WINDOW) != 0)
        return -CWS_E_NOMEM;
    return 0;
}

int gsrv_conn_new(struct cws_gsrv *srv, int fd, bool needs_token, const char *peer)
{
    struct gsrv_conn *conn = calloc(1, sizeof(*conn));

    if (!conn) {
        close(fd);
        cws_log(CWS_LOG_WARN, "out of memory: connection from %s dropped", peer);
        return -CWS_E_NOMEM;
    }
    conn->srv = srv;
    conn->needs_token = needs_token;
    TAILQ_INIT(&conn->calls);
    snprintf(conn->peer, sizeof(conn->peer), "%s", peer);
    TAILQ_INSERT_TAIL(&srv->conns, conn, link);
    conn->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!conn->bev)
        close(fd);
    conn->flush_ev = event_new(srv->base, -1, 0, flush_cb, conn);
    if (!conn->bev || !conn->flush_ev || conn_start_session(conn) < 0) {
        cws_log(CWS_LOG_WARN, "out of memory: connection from %s dropped", peer);
        conn_close(conn, CWS_E_CANCELLED);
        return -CWS_E_NOMEM;
    }
    bufferevent_setcb(conn->bev, read_cb, write_cb, event_cb, conn);
    bufferevent_setwatermark(conn->bev, EV_WRITE, GSRV_CONN_OUT_LIMIT / 2, 0);
    bufferevent_set_max_single_read(conn->bev, CONN_MAX_READ);
    bufferevent_set_max_single_write(conn->bev, GSRV_CONN_OUT_LIMIT);
    /* Bufferevents start with EV_WRITE enabled; conn_write_now() arms it only when needed. */
    bufferevent_disable(conn->bev, EV_WRITE);
    bufferevent_enable(conn->bev, EV_READ);
    cws_log(CWS_LOG_DEBUG, "%s: connected", conn->peer);
    conn_flush(conn);
    return 0;
}

void gsrv_conn_shutdown(struct gsrv_conn *conn)
{
    struct cws_gcall *call;

    conn->shutting_down = true;
    TAILQ_FOREACH(call, &conn->calls, link)
    {
        if (call->state == GCALL_LIVE)
            gcall_abort(call, CWS_E_UNAVAILABLE, "the server is shutting down");
    }
    nghttp2_submit_goaway(conn->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(conn->session), NGHTTP2_NO_ERROR,
                          NULL, 0);
    /* Best effort without blocking: what the socket does not take now is lost. */
    if (nghttp2_session_send(conn->session) == 0)
        write_output(conn);
    conn_close(conn, CWS_E_UNAVAILABLE);
}
