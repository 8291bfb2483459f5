/* One HTTP/2 connection to the backend: an nghttp2 client session over a transport
 * (curl_conn.c: a Unix socket, or a libcurl-made connection), driven by libevent.
 *
 * Reading: everything available is read (until the transport says "again": a partial read
 * would leave the rest of a TLS record inside OpenSSL, where the fd never signals it; on a
 * plain socket a short read already says so, which saves a receive per wake-up) and fed to
 * nghttp2, whose callbacks route frames to the calls. The connection-level window is
 * consumed as bytes arrive, each stream's only when its call takes them, so a paused call
 * stops its own stream without starving the others (no_auto_window_update).
 *
 * Writing: nghttp2_session_mem_send() frames are gathered into one buffer and written; when
 * the socket is full, EV_WRITE is armed until it drains. Nothing is armed while nghttp2 has
 * nothing to send (a peer's full window included), so a stalled upload costs no CPU.
 *
 * Work done inside I/O (in_io > 0) never writes: the write happens once when the outermost
 * I/O handler ends. From anywhere else a flush is either coalesced (flush_soon, an active
 * event) or immediate (flush_now, for RST_STREAM and PING).
 *
 * A connection is only freed from its close event, so neither nghttp2 nor a caller's
 * function ever has it freed underneath.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc_client_private.h"
#include "grpc_timeout.h"
#include "log.h"

#define CONN_READ_SIZE       (256 * 1024)
#define CONN_OUT_BATCH       (64 * 1024)
#define WRITE_STALLS_MAX     3    /* EV_WRITE wakeups without progress before backing off */
#define WRITE_RETRY_US       5000 /* then retry writing on a timer instead */
#define GOAWAY_TEXT_MAX      64
#define H2_FRAME_HEADER_SIZE 9 /* RFC 9113 4.1 */
/* A 'too_many_pings' GOAWAY doubles the keepalive time, up to this. */
#define KEEPALIVE_TIME_MAX_MS (2 * 3600 * 1000)

static void conn_io_begin(struct gc_conn *conn)
{
    conn->in_io++;
}

static void conn_io_end(struct gc_conn *conn);
static size_t conn_write(struct gc_conn *conn);

static struct timeval ms_to_tv(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

static void timer_arm(struct event *ev, int64_t ms)
{
    struct timeval tv = ms_to_tv(ms > 0 ? ms : 0);
    evtimer_add(ev, &tv);
}

static const char *conn_display(const struct gc_conn *conn)
{
    return conn->client->endpoint.display;
}

/* ---- failure and close ------------------------------------------------------------------ */

static void conn_stop_events(struct gc_conn *conn)
{
    struct event *evs[] = {conn->read_ev,  conn->write_ev,     conn->write_retry_ev,
                           conn->flush_ev, conn->handshake_ev, conn->keepalive_ev,
                           conn->ping_ev,  conn->idle_ev};

    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (evs[i])
            event_del(evs[i]);
    }
}

/* Mark the connection closed with err and let its close event finish the job. */
static void conn_fail(struct gc_conn *conn, const struct cws_error *err)
{
    if (conn->state == GC_CONN_CLOSED)
        return;
    conn->error = *err;
    conn->state = GC_CONN_CLOSED;
    conn_stop_events(conn);
    /* A failed connect is logged once, by the client, with its backoff. */
    cws_log(TAILQ_EMPTY(&conn->calls) || !conn->settings_received ? CWS_LOG_DEBUG : CWS_LOG_WARN,
            "gRPC connection %" PRIu64 " closed: %s", conn->id, err->message);
    event_active(conn->close_ev, 0, 0);
}

static void conn_fail_h2(struct gc_conn *conn, int lib_error)
{
    struct cws_error err;

    cws_error_set(&err, CWS_E_UNAVAILABLE, "HTTP/2 error on the connection to %s: %s%s%s%s",
                  conn_display(conn), nghttp2_strerror(lib_error), conn->h2_error[0] ? " (" : "",
                  conn->h2_error, conn->h2_error[0] ? ")" : "");
    conn_fail(conn, &err);
}

static void conn_fail_nomem(struct gc_conn *conn)
{
    struct cws_error err;

    cws_error_set(&err, CWS_E_NOMEM, "out of memory on the connection to %s", conn_display(conn));
    conn_fail(conn, &err);
}

/* The transport failed or the peer closed it. */
static void conn_lost(struct gc_conn *conn, const struct cws_error *cause)
{
    struct cws_error err;

    if (conn->goaway_received)
        cws_error_set(&err, CWS_E_UNAVAILABLE, "%s (after GOAWAY)", cause->message);
    else
        err = *cause;
    conn_fail(conn, &err);
}

void gc_conn_free(struct gc_conn *conn)
{
    if (!conn)
        return;
    struct event *evs[] = {conn->read_ev,      conn->write_ev, conn->write_retry_ev,
                           conn->flush_ev,     conn->close_ev, conn->handshake_ev,
                           conn->keepalive_ev, conn->ping_ev,  conn->idle_ev};

    /* Our events on the fd go before the transport closes it. */
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (evs[i])
            event_free(evs[i]);
    }
    nghttp2_session_del(conn->session);
    gc_transport_free(conn->transport);
    free(conn->in);
    free(conn->out);
    free(conn);
}

static void on_close_event(evutil_socket_t fd, short what, void *arg)
{
    struct gc_conn *conn = arg;
    struct cws_gclient *client = conn->client;
    struct cws_gc_call *call;

    gc_client_conn_closed(client, conn); /* off the pool first: nothing may land on it */
    while ((call = TAILQ_FIRST(&conn->calls))) {
        /* The server cannot have processed a call when it never spoke on the connection, or
         * when the call's HEADERS never fully reached the socket. */
        bool unprocessed = !conn->settings_received || call->sent_mark > conn->written;

        TAILQ_REMOVE(&conn->calls, call, link);
        call->conn = NULL;
        gc_call_on_conn_lost(call, &conn->error, unprocessed);
    }
    gc_conn_free(conn);
    gc_client_schedule_dispatch(client);
}

void gc_conn_close(struct gc_conn *conn, const struct cws_error *err)
{
    struct cws_error closed;

    if (conn->state == GC_CONN_CLOSED)
        return;
    if (!err) {
        cws_error_set(&closed, CWS_E_UNAVAILABLE, "the connection to %s was closed",
                      conn_display(conn));
        err = &closed;
    }
    if (conn->state == GC_CONN_READY && conn->in_io == 0) {
        /* Best effort: tell the server, without waiting for the socket. */
        nghttp2_session_terminate_session(conn->session, NGHTTP2_NO_ERROR);
        conn_write(conn);
    }
    conn_fail(conn, err);
}

void gc_conn_retire(struct gc_conn *conn)
{
    conn->draining = true;
    if (conn->n_streams == 0)
        gc_conn_close(conn, NULL);
}

/* ---- writing ---------------------------------------------------------------------------- */

static int out_append(struct gc_conn *conn, const uint8_t *data, size_t n)
{
    if (conn->out_off == conn->out_len)
        conn->out_off = conn->out_len = 0;
    if (conn->out_len + n > conn->out_cap && conn->out_off > 0) {
        /* The unwritten bytes move to the front: OpenSSL accepts a moved retry buffer
         * (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER) as long as the bytes are the same. */
        memmove(conn->out, conn->out + conn->out_off, conn->out_len - conn->out_off);
        conn->out_len -= conn->out_off;
        conn->out_off = 0;
    }
    if (conn->out_len + n > conn->out_cap) {
        size_t cap = conn->out_cap ? conn->out_cap : CONN_OUT_BATCH;
        uint8_t *out;

        while (cap < conn->out_len + n)
            cap *= 2;
        out = realloc(conn->out, cap);
        if (!out)
            return -CWS_E_NOMEM;
        conn->out = out;
        conn->out_cap = cap;
    }
    memcpy(conn->out + conn->out_len, data, n);
    conn->out_len += n;
    conn->serialized += n;
    return 0;
}

/* Take frames from nghttp2 until a batch is ready. Returns 0, or -1 after failing conn. */
static int conn_fill(struct gc_conn *conn)
{
    while (conn->out_len - conn->out_off < CONN_OUT_BATCH) {
        const uint8_t *data = NULL;
        ssize_t n = nghttp2_session_mem_send(conn->session, &data);

        if (n < 0) {
            conn_fail_h2(conn, (int)n);
            return -1;
        }
        if (n == 0)
            break;
        if (out_append(conn, data, (size_t)n) < 0) {
            conn_fail_nomem(conn);
            return -1;
        }
    }
    return 0;
}

/* Write until nghttp2 has nothing more or the socket is full. Returns bytes written.
 * Counts as I/O: what nghttp2's callbacks ask to flush meanwhile is written by this loop. */
static size_t conn_write(struct gc_conn *conn)
{
    size_t written = 0;

    conn->in_io++;
    while (conn->state == GC_CONN_READY) {
        struct cws_error err;
        size_t n = 0;
        int r;

        if (conn_fill(conn) < 0 || conn->out_off == conn->out_len)
            break;
        r = gc_transport_send(conn->transport, conn->out + conn->out_off,
                              conn->out_len - conn->out_off, &n, &err);
        if (r < 0) {
            conn_lost(conn, &err);
            break;
        }
        if (r == 1) {
            event_add(conn->write_ev, NULL);
            conn->in_io--;
            return written;
        }
        conn->out_off += n;
        conn->written += n;
        written += n;
    }
    if (conn->write_ev)
        event_del(conn->write_ev);
    conn->in_io--;
    return written;
}

static void conn_arm_idle(struct gc_conn *conn)
{
    if (conn->client->idle_timeout_ms > 0)
        timer_arm(conn->idle_ev, conn->client->idle_timeout_ms);
}

/* After reading or writing: end the session when nghttp2 is done with it, close a drained
 * connection, and let the client place waiting calls. */
static void conn_after_io(struct gc_conn *conn)
{
    struct cws_error err;

    if (!nghttp2_session_want_read(conn->session) && !nghttp2_session_want_write(conn->session)) {
        cws_error_set(&err, CWS_E_UNAVAILABLE, "the HTTP/2 session with %s ended%s%s%s",
                      conn_display(conn), conn->h2_error[0] ? " (" : "", conn->h2_error,
                      conn->h2_error[0] ? ")" : "");
        conn_fail(conn, &err);
        return;
    }
    if (conn->draining && conn->n_streams == 0) {
        gc_conn_close(conn, NULL);
        return;
    }
    if (conn->n_streams == 0 && !evtimer_pending(conn->idle_ev, NULL))
        conn_arm_idle(conn);
    if (conn->dispatch_wanted) {
        conn->dispatch_wanted = false;
        if (conn->client->n_waiting > 0)
            gc_client_schedule_dispatch(conn->client);
    }
}

static void conn_io_end(struct gc_conn *conn)
{
    if (--conn->in_io > 0 || conn->state != GC_CONN_READY)
        return;
    conn_write(conn);
    if (conn->state == GC_CONN_READY)
        conn_after_io(conn);
}

void gc_conn_flush_now(struct gc_conn *conn)
{
    if (conn->state != GC_CONN_READY || conn->in_io > 0)
        return; /* the end of the current I/O writes */
    conn_io_begin(conn);
    conn_io_end(conn);
}

void gc_conn_flush_soon(struct gc_conn *conn)
{
    if (conn->state != GC_CONN_READY || conn->in_io > 0 || conn->flush_scheduled)
        return;
    conn->flush_scheduled = true;
    event_active(conn->flush_ev, 0, 0);
}

static void on_flush_event(evutil_socket_t fd, short what, void *arg)
{
    struct gc_conn *conn = arg;

    conn->flush_scheduled = false;
    gc_conn_flush_now(conn);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct gc_conn *conn = arg;
    size_t written;

    conn_io_begin(conn);
    written = conn_write(conn);
    if (written == 0 && conn->state == GC_CONN_READY &&
        event_pending(conn->write_ev, EV_WRITE, NULL) && ++conn->write_stalls >= WRITE_STALLS_MAX) {
        /* Writable yet nothing written: TLS waits for a read. Poll slowly, never spin. */
        struct timeval tv = {0, WRITE_RETRY_US};

        event_del(conn->write_ev);
        evtimer_add(conn->write_retry_ev, &tv);
    } else if (written > 0) {
        conn->write_stalls = 0;
    }
    conn_io_end(conn);
}

static void on_write_retry(evutil_socket_t fd, short what, void *arg)
{
    struct gc_conn *conn = arg;

    conn->write_stalls = 0;
    gc_conn_flush_now(conn);
}

/* ---- reading ---------------------------------------------------------------------------- */

static void conn_read(struct gc_conn *conn)
{
    while (conn->state == GC_CONN_READY) {
        struct cws_error err;
        size_t n = 0;
        ssize_t used;
        int r = gc_transport_recv(conn->transport, conn->in, CONN_READ_SIZE, &n, &err);

        if (!conn->alpn_checked && r >= 0) {
            conn->alpn_checked = true;
            if (gc_transport_check_alpn(conn->transport, &err) < 0) {
                conn_fail(conn, &err);
                return;
            }
        }
        if (r == 1)
            return;
        if (r < 0) {
            conn_lost(conn, &err);
            return;
        }
        conn->last_recv_ms = cws_gc_now_ms();
        used = nghttp2_session_mem_recv(conn->session, conn->in, n);
        if (used < 0) {
            conn_fail_h2(conn, (int)used);
            return;
        }
        if (n < CONN_READ_SIZE && gc_transport_short_read_drains(conn->transport))
            return; /* the read event fires again when more arrives */
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct gc_conn *conn = arg;

    conn_io_begin(conn);
    conn_read(conn);
    conn_io_end(conn);
}

/* ---- keepalive -------------------------------------------------------------------------- */

static void conn_send_ping(struct gc_conn *conn)
{
    uint8_t opaque[8] = {0};

    memcpy(opaque, &conn->id,
           sizeof(opaque) < sizeof(conn->id) ? sizeof(opaque) : sizeof(conn->id));
    if (nghttp2_submit_ping(conn->session, NGHTTP2_FLAG_NONE, opaque) != 0)
        return;
    conn->ping_outstanding = true;
    conn->client->stats.pings++;
    timer_arm(conn->ping_ev, conn->client->keepalive_timeout_ms);
    gc_conn_flush_now(conn);
}

static void on_ping_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct gc_conn *conn = arg;
    struct cws_error err;

    cws_error_set(&err, CWS_E_UNAVAILABLE,
                  "no answer from %s to an HTTP/2 PING within %d ms: the connection is dead",
                  conn_display(conn), conn->client->keepalive_timeout_ms);
    conn_fail(conn, &err);
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    struct gc_conn *conn = arg;
    int64_t period = conn->client->keepalive_time_ms;
    int64_t due = conn->last_recv_ms + period;
    int64_t now = cws_gc_now_ms();

    if (conn->state != GC_CONN_READY || period < 0)
        return;
    if (now < due) {
        timer_arm(conn->keepalive_ev, due - now);
        return;
    }
    if (!conn->ping_outstanding && (conn->n_streams > 0 || conn->client->keepalive_without_calls))
        conn_send_ping(conn);
    timer_arm(conn->keepalive_ev, period);
}

void gc_conn_verify_if_stale(struct gc_conn *conn)
{
    int period = conn->client->keepalive_time_ms;

    if (conn->state != GC_CONN_READY || conn->draining || conn->verifying || period < 0 ||
        conn->ping_outstanding || conn->n_streams > 0 ||
        cws_gc_now_ms() - conn->last_recv_ms < period)
        return;
    /* Silent for long and carrying nothing: it may have died unnoticed (suspend, NAT).
     * Calls wait for the PING answer, so they never go down a dead connection. */
    conn->verifying = true;
    conn_send_ping(conn);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct gc_conn *conn = arg;
    struct gc_conn *other;

    if (conn->state != GC_CONN_READY || conn->n_streams > 0)
        return;
    TAILQ_FOREACH(other, &conn->client->conns, link)
    {
        if (other != conn && other->state == GC_CONN_READY && !other->draining) {
            cws_log(CWS_LOG_DEBUG, "gRPC connection %" PRIu64 " idle: closing it", conn->id);
            gc_conn_retire(conn);
            return;
        }
    }
    /* The last usable connection stays warm. */
}

static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct gc_conn *conn = arg;
    struct cws_error err;

    if (conn->state == GC_CONN_CONNECTING)
        cws_error_set(&err, CWS_E_UNAVAILABLE, "cannot connect to %s: no connection within %d ms",
                      conn_display(conn), conn->client->connect_timeout_ms);
    else
        cws_error_set(&err, CWS_E_UNAVAILABLE,
                      "no HTTP/2 SETTINGS from %s within %d ms: is it an HTTP/2 gRPC server?",
                      conn_display(conn), conn->client->connect_timeout_ms);
    conn_fail(conn, &err);
}

/* ---- frames ----------------------------------------------------------------------------- */

static void conn_on_settings(struct gc_conn *conn)
{
    if (!conn->settings_received) {
        conn->settings_received = true;
        conn->client->stats.connects++;
        evtimer_del(conn->handshake_ev);
        conn->client->backoff_ms = 0; /* the server answered: it is up */
    }
    conn->dispatch_wanted = true; /* MAX_CONCURRENT_STREAMS may have grown */
}

static void conn_on_ping_ack(struct gc_conn *conn)
{
    conn->ping_outstanding = false;
    evtimer_del(conn->ping_ev);
    if (conn->verifying) {
        conn->verifying = false;
        conn->dispatch_wanted = true;
    }
}

/* GOAWAY debug data is peer text: keep it short and printable for the log. */
static void goaway_text(const nghttp2_goaway *g, char out[GOAWAY_TEXT_MAX + 1])
{
    size_t n = g->opaque_data_len < GOAWAY_TEXT_MAX ? g->opaque_data_len : GOAWAY_TEXT_MAX;

    for (size_t i = 0; i < n; i++) {
        uint8_t c = g->opaque_data[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
}

static void conn_on_goaway(struct gc_conn *conn, const nghttp2_goaway *g)
{
    struct cws_gclient *client = conn->client;
    char text[GOAWAY_TEXT_MAX + 1];

    goaway_text(g, text);
    client->stats.goaways++;
    conn->goaway_received = true;
    conn->goaway_last_stream_id = g->last_stream_id;
    conn->draining = true;
    conn->dispatch_wanted = true;
    cws_log(g->error_code == NGHTTP2_NO_ERROR ? CWS_LOG_INFO : CWS_LOG_WARN,
            "%s sent GOAWAY on connection %" PRIu64
            " (%s, last stream %d%s%s): new calls go to another connection",
            conn_display(conn), conn->id, nghttp2_http2_strerror(g->error_code), g->last_stream_id,
            text[0] ? ", " : "", text);
    if (g->error_code == NGHTTP2_ENHANCE_YOUR_CALM && strcmp(text, "too_many_pings") == 0 &&
        client->keepalive_time_ms > 0 && client->keepalive_time_ms < KEEPALIVE_TIME_MAX_MS) {
        client->keepalive_time_ms *= 2;
        cws_log(CWS_LOG_WARN, "the server finds our PINGs too frequent: keepalive now every %d ms",
                client->keepalive_time_ms);
    }
}

/* The call on a stream, found in the connection's list rather than through nghttp2's stream
 * user data: a call cancelled before its HEADERS left sits in nghttp2's outbound queue with
 * the pointer it was submitted with, which outlives the call. Detached calls are not in the
 * list, so nothing reaches freed memory. */
static struct cws_gc_call *stream_call(void *ud, int32_t stream_id)
{
    struct gc_conn *conn = ud;
    struct cws_gc_call *call;
    if (!conn || stream_id <= 0)
        return NULL;
    TAILQ_FOREACH(call, &conn->calls, link)
    if (call->stream_id == stream_id)
        return call;
    return NULL;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct gc_conn *conn = ud;
    struct cws_gc_call *call;

    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
            conn_on_settings(conn);
        break;
    case NGHTTP2_HEADERS:
        call = stream_call(ud, frame->hd.stream_id);
        if (call)
            gc_call_on_headers_end(call, frame);
        break;
    case NGHTTP2_DATA:
        call = stream_call(ud, frame->hd.stream_id);
        if (call && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            gc_call_on_remote_end(call);
        break;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            conn_on_ping_ack(conn);
        break;
    case NGHTTP2_GOAWAY:
        conn_on_goaway(conn, &frame->goaway);
        break;
    default:
        break;
    }
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *ud)
{
    struct cws_gc_call *call;

    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    call = stream_call(ud, frame->hd.stream_id);
    if (!call)
        return 0;
    return gc_call_on_header(call, frame, name, name_len, value, value_len);
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud)
{
    struct cws_gc_call *call = stream_call(ud, stream_id);

    /* Connection-level credit goes back at once; the stream's waits for the call. */
    nghttp2_session_consume_connection(session, len);
    if (!call) {
        nghttp2_session_consume_stream(session, stream_id, len);
        return 0;
    }
    gc_call_on_data(call, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *ud)
{
    struct gc_conn *conn = ud;
    struct cws_gc_call *call = stream_call(ud, stream_id);

    if (conn->n_streams > 0)
        conn->n_streams--;
    conn->dispatch_wanted = true;
    if (call)
        gc_call_on_stream_close(call, error_code);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct cws_gc_call *call;

    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    call = stream_call(ud, frame->hd.stream_id);
    if (!call) {
        /* Cancelled while its HEADERS waited in the queue: the stream opens now, so reset it
         * now, or the server would run the request for nobody. */
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_CANCEL);
        return 0;
    }
    /* nghttp2_session_mem_send() reports the frame just before handing us its bytes: the
     * frame ends this far into the stream, which tells later whether it reached the
     * socket. */
    call->headers_sent = true;
    call->sent_mark = ((struct gc_conn *)ud)->serialized + H2_FRAME_HEADER_SIZE + frame->hd.length;
    return 0;
}

static int on_h2_error(nghttp2_session *session, int lib_error_code, const char *msg, size_t len,
                       void *ud)
{
    struct gc_conn *conn = ud;
    size_t n = len < sizeof(conn->h2_error) - 1 ? len : sizeof(conn->h2_error) - 1;

    memcpy(conn->h2_error, msg, n);
    conn->h2_error[n] = '\0';
    cws_log(CWS_LOG_DEBUG, "HTTP/2 connection %" PRIu64 ": %s", conn->id, conn->h2_error);
    return 0;
}

static ssize_t on_data_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                            void *ud)
{
    struct cws_gc_call *call = stream_call(ud, stream_id);

    if (!call) {
        /* Detached (the call has its status): end our side with an empty DATA frame. */
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    return gc_call_read_request(call, buf, length, data_flags);
}

int gc_conn_callbacks_new(nghttp2_session_callbacks **ret)
{
    nghttp2_session_callbacks *cb = NULL;

    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -CWS_E_NOMEM;
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_error_callback2(cb, on_h2_error);
    *ret = cb;
    return 0;
}

/* ---- streams ---------------------------------------------------------------------------- */

unsigned gc_conn_capacity(const struct gc_conn *conn)
{
    uint32_t limit;

    if (conn->state != GC_CONN_READY || conn->draining || conn->verifying)
        return 0;
    limit =
        nghttp2_session_get_remote_settings(conn->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (conn->client->max_streams_per_conn && conn->client->max_streams_per_conn < limit)
        limit = conn->client->max_streams_per_conn;
    return conn->n_streams >= limit ? 0 : limit - conn->n_streams;
}

bool gc_conn_opening(const struct gc_conn *conn)
{
    /* Until the server's SETTINGS arrive its stream limit is a guess (nghttp2 assumes 100):
     * calls past it wait for the real one rather than open another connection. */
    return conn->state == GC_CONN_CONNECTING || (conn->state == GC_CONN_READY && !conn->draining &&
                                                 (conn->verifying || !conn->settings_received));
}

static nghttp2_nv make_nv(const char *name, const char *value, bool secret)
{
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                     secret ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE};
    return nv;
}

static void add_metadata(nghttp2_nv *nva, size_t *n, const struct gc_metadata *md)
{
    for (size_t i = 0; i < md->n; i++)
        nva[(*n)++] = make_nv(md->v[i].name, md->v[i].value, gc_header_is_secret(md->v[i].name));
}

/* grpc-timeout from what is left of the deadline, now. */
static int format_timeout(const struct cws_gc_call *call, char buf[CWS_GRPC_TIMEOUT_BUF_SIZE],
                          struct cws_error *err)
{
    struct timespec ts;
    int64_t now_ns;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    return cws_grpc_timeout_format(call->deadline_ms * 1000000 - now_ns, buf, err);
}

#define FIXED_HEADERS 8

int gc_conn_submit(struct gc_conn *conn, struct cws_gc_call *call, struct cws_error *err)
{
    struct cws_gclient *client = conn->client;
    size_t max_nv = FIXED_HEADERS + client->metadata.n + call->metadata.n;
    nghttp2_nv *nva = calloc(max_nv, sizeof(*nva));
    char timeout[CWS_GRPC_TIMEOUT_BUF_SIZE];
    nghttp2_data_provider data = {.source.ptr = call, .read_callback = on_data_read};
    size_t n = 0;
    int32_t id;
    int r = 0;

    if (!nva)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory starting a call");
    nva[n++] = make_nv(":method", "POST", false);
    nva[n++] =
        make_nv(":scheme", client->endpoint.scheme == GC_SCHEME_HTTPS ? "https" : "http", false);
    nva[n++] = make_nv(":path", call->path, false);
    nva[n++] = make_nv(":authority", client->endpoint.authority, false);
    nva[n++] = make_nv("te", "trailers", false);
    nva[n++] = make_nv("content-type", "application/grpc", false);
    nva[n++] = make_nv("user-agent", client->user_agent, false);
    if (call->deadline_ms > 0) {
        r = format_timeout(call, timeout, err);
        if (r < 0)
            goto out;
        nva[n++] = make_nv("grpc-timeout", timeout, false);
    }
    add_metadata(nva, &n, &client->metadata);
    add_metadata(nva, &n, &call->metadata);
    id = nghttp2_submit_request(conn->session, NULL, nva, n, &data, call);
    if (id < 0) {
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE)
            conn->draining = true; /* stream ids used up: the next call needs a new one */
        r = cws_error_set(err, CWS_E_UNAVAILABLE, "cannot open a stream to %s: %s",
                          conn_display(conn), nghttp2_strerror(id));
        goto out;
    }
    call->stream_id = id;
    call->conn = conn;
    TAILQ_INSERT_TAIL(&conn->calls, call, link);
    conn->client->n_active++;
    conn->n_streams++;
    evtimer_del(conn->idle_ev);
    gc_conn_flush_soon(conn);
out:
    free(nva);
    return r;
}

void gc_conn_detach(struct gc_conn *conn, struct cws_gc_call *call, bool reset, uint32_t code)
{
    int32_t id = call->stream_id;

    TAILQ_REMOVE(&conn->calls, call, link);
    conn->client->n_active--;
    call->conn = NULL;
    call->stream_id = -1;
    if (id <= 0 || conn->state != GC_CONN_READY || !nghttp2_session_find_stream(conn->session, id))
        return;
    nghttp2_session_set_stream_user_data(conn->session, id, NULL);
    if (reset) {
        nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, id, code);
        gc_conn_flush_now(conn);
        return;
    }
    if (call->send_ended)
        return;
    /* The server has answered but our request stream is open. An empty END_STREAM closes it
     * without a RST_STREAM (which nghttp2 servers count against rapid-reset limits); only when
     * flow control would hold even that back is the stream reset. */
    if (nghttp2_session_get_stream_remote_window_size(conn->session, id) > 0 &&
        nghttp2_session_get_remote_window_size(conn->session) > 0)
        nghttp2_session_resume_data(conn->session, id);
    else
        nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
    gc_conn_flush_soon(conn);
}

void gc_conn_resume_send(struct gc_conn *conn, struct cws_gc_call *call)
{
    if (call->send_deferred) {
        call->send_deferred = false;
        nghttp2_session_resume_data(conn->session, call->stream_id);
    }
    gc_conn_flush_soon(conn);
}

void gc_conn_consume(struct gc_conn *conn, struct cws_gc_call *call, size_t n)
{
    if (conn->state != GC_CONN_READY || call->stream_id <= 0)
        return;
    nghttp2_session_consume_stream(conn->session, call->stream_id, n);
    gc_conn_flush_soon(conn);
}

/* ---- opening ---------------------------------------------------------------------------- */

static int conn_start_session(struct gc_conn *conn, struct cws_error *err)
{
    struct cws_gclient *client = conn->client;
    struct event_base *base = client->base;
    int fd = gc_transport_fd(conn->transport);
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, client->stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GC_MAX_HEADER_BYTES},
    };

    if (fd < 0)
        return cws_error_set(err, CWS_E_UNAVAILABLE, "the transport gave no socket for %s",
                             conn_display(conn));
    conn->in = malloc(CONN_READ_SIZE);
    conn->read_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, conn);
    conn->write_ev = event_new(base, fd, EV_WRITE, on_writable, conn);
    if (!conn->in || !conn->read_ev || !conn->write_ev ||
        nghttp2_session_client_new2(&conn->session, client->h2_callbacks, conn,
                                    client->h2_option) != 0)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory starting HTTP/2 with %s",
                             conn_display(conn));
    if (nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings,
                                sizeof(settings) / sizeof(settings[0])) != 0 ||
        nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0,
                                              GC_CONN_WINDOW) != 0)
        return cws_error_set(err, CWS_E_INTERNAL, "nghttp2 refused our SETTINGS");
    conn->state = GC_CONN_READY;
    conn->connected_ms = conn->last_recv_ms = cws_gc_now_ms();
    event_add(conn->read_ev, NULL);
    if (client->keepalive_time_ms > 0)
        timer_arm(conn->keepalive_ev, client->keepalive_time_ms);
    return 0;
}

static void on_transport_connected(struct gc_transport *t, const struct cws_error *cerr, void *ud)
{
    struct gc_conn *conn = ud;
    struct cws_error err;

    if (cerr) {
        conn_fail(conn, cerr);
        return;
    }
    if (conn_start_session(conn, &err) < 0) {
        conn_fail(conn, &err);
        return;
    }
    cws_log(CWS_LOG_DEBUG, "gRPC connection %" PRIu64 " to %s open", conn->id, conn_display(conn));
    /* Read at once: TLS may already hold the server's SETTINGS, and the first read attaches
     * the connection to the handle so that its ALPN can be checked. */
    conn_io_begin(conn);
    conn_read(conn);
    conn_io_end(conn);
    if (conn->state == GC_CONN_READY)
        gc_client_conn_ready(conn->client, conn);
}

static int conn_create_events(struct gc_conn *conn)
{
    struct event_base *base = conn->client->base;

    conn->close_ev = event_new(base, -1, 0, on_close_event, conn);
    conn->flush_ev = event_new(base, -1, 0, on_flush_event, conn);
    conn->write_retry_ev = evtimer_new(base, on_write_retry, conn);
    conn->handshake_ev = evtimer_new(base, on_handshake_timeout, conn);
    conn->keepalive_ev = evtimer_new(base, on_keepalive, conn);
    conn->ping_ev = evtimer_new(base, on_ping_timeout, conn);
    conn->idle_ev = evtimer_new(base, on_idle, conn);
    if (!conn->close_ev || !conn->flush_ev || !conn->write_retry_ev || !conn->handshake_ev ||
        !conn->keepalive_ev || !conn->ping_ev || !conn->idle_ev)
        return -CWS_E_NOMEM;
    return 0;
}

int gc_conn_open(struct cws_gclient *client, struct gc_conn **ret, struct cws_error *err)
{
    struct gc_conn *conn = calloc(1, sizeof(*conn));
    struct gc_transport_opts opts = {
        .endpoint = &client->endpoint,
        .ca_file = client->ca_file,
        .connect_timeout_ms = client->connect_timeout_ms,
        .patience_ms = client->stats.connects == 0 ? GC_FIRST_CONNECT_PATIENCE_MS : 0,
    };
    int r;

    if (!conn)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory opening a connection");
    conn->client = client;
    conn->id = ++client->next_conn_id;
    conn->state = GC_CONN_CONNECTING;
    TAILQ_INIT(&conn->calls);
    cws_error_clear(&conn->error);
    if (conn_create_events(conn) < 0) {
        gc_conn_free(conn);
        return cws_error_set(err, CWS_E_NOMEM, "out of memory opening a connection");
    }
    r = gc_transport_connect(client->base, &opts, on_transport_connected, conn, &conn->transport,
                             err);
    if (r < 0) {
        gc_conn_free(conn);
        return r;
    }
    timer_arm(conn->handshake_ev, client->connect_timeout_ms);
    *ret = conn;
    return 0;
}
