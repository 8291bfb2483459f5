/* One gRPC call after admission: request messages in (deframed, with pause), response
 * messages out (a byte queue with high/low water marks, read by an nghttp2 data provider),
 * the status, the deadline, and the end of the call in every way it can end. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gsrv_private.h"
#include "log.h"

/* A grpc-timeout beyond this is no deadline at all (and would overflow a timeval). */
#define FAR_FUTURE_NS ((int64_t)100 * 365 * 86400 * 1000000000)

static int64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static nghttp2_session *call_session(const struct cws_gcall *call)
{
    return call->conn->session;
}

static void set_pending(struct cws_gcall *call, bool *flag)
{
    if (*flag)
        return;
    *flag = true;
    call->conn->n_pending++;
}

static void clear_pending(struct cws_gcall *call, bool *flag)
{
    if (!*flag)
        return;
    *flag = false;
    call->conn->n_pending--;
}

int gcall_new(struct gsrv_conn *conn, int32_t stream_id, struct cws_gcall **ret)
{
    struct cws_gcall *call = calloc(1, sizeof(*call));

    if (!call)
        return -CWS_E_NOMEM;
    call->conn = conn;
    call->stream_id = stream_id;
    call->state = GCALL_HEADERS;
    call->headers = call->inline_headers;
    call->cap_headers = GSRV_INLINE_HEADERS;
    call->path = "";
    TAILQ_INSERT_TAIL(&conn->calls, call, link);
    *ret = call;
    return 0;
}

static void gcall_free(struct cws_gcall *call)
{
    clear_pending(call, &call->pump_pending);
    clear_pending(call, &call->writable_pending);
    TAILQ_REMOVE(&call->conn->calls, call, link);
    gcall_free_headers(call);
    cws_grpc_deframer_free(call->deframer);
    if (call->held)
        evbuffer_free(call->held);
    if (call->out)
        evbuffer_free(call->out);
    if (call->deadline_ev)
        event_free(call->deadline_ev);
    gresp_status_clear(&call->trailers);
    free(call);
}

void gcall_stream_closed(struct cws_gcall *call, enum cws_errcode why)
{
    if (call->state == GCALL_LIVE) {
        call->state = GCALL_FINISHED;
        cws_log(CWS_LOG_DEBUG, "%s %s: cancelled (%s)", call->conn->peer, call->path,
                cws_errcode_name(why));
        if (call->h.on_cancel)
            call->h.on_cancel(call, why, call->ud);
    }
    gcall_free(call);
}

/* --- response ---------------------------------------------------------------------------- */

static void submit_trailers(struct cws_gcall *call)
{
    nghttp2_nv nv[GRESP_MAX_NV];
    size_t n = gresp_status_nv(&call->trailers, NULL, nv);
    int rv = nghttp2_submit_trailer(call_session(call), call->stream_id, nv, n);

    if (rv != 0)
        cws_log(CWS_LOG_WARN, "%s %s: cannot send the trailers: %s", call->conn->peer, call->path,
                nghttp2_strerror(rv));
    call->trailers_pending = false;
    gresp_status_clear(&call->trailers);
}

/* nghttp2 asks for the next DATA frame: hand out queued bytes (sent by send_data_cb without
 * a copy), the end of the messages when finished, or wait. */
static ssize_t read_data(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *userdata)
{
    struct cws_gcall *call = source->ptr;
    size_t queued = evbuffer_get_length(call->out);
    size_t n = queued < length ? queued : length;

    if (n == queued && call->trailers_pending) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        submit_trailers(call);
    } else if (n == 0) {
        call->data_deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n > 0)
        *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    return (ssize_t)n;
}

void gcall_write_data(struct cws_gcall *call, struct evbuffer *out, size_t length)
{
    evbuffer_remove_buffer(call->out, out, length);
    if (call->blocked && evbuffer_get_length(call->out) < call->conn->srv->out_high_water / 2) {
        call->blocked = false;
        if (call->state == GCALL_LIVE)
            set_pending(call, &call->writable_pending);
    }
}

/* Response HEADERS, then nghttp2 pulls messages from the queue; or wake a waiting provider. */
static int kick_response(struct cws_gcall *call)
{
    nghttp2_data_provider provider = {.source.ptr = call, .read_callback = read_data};
    nghttp2_nv nv[GRESP_MAX_NV];
    int rv = 0;

    if (!call->response_started) {
        size_t n = gresp_headers_nv(nv);

        rv = nghttp2_submit_response(call_session(call), call->stream_id, nv, n, &provider);
        call->response_started = rv == 0;
    } else if (call->data_deferred) {
        call->data_deferred = false;
        rv = nghttp2_session_resume_data(call_session(call), call->stream_id);
    }
    gsrv_conn_request_flush(call->conn);
    if (rv != 0) {
        cws_log(CWS_LOG_WARN, "%s %s: cannot send the response: %s", call->conn->peer, call->path,
                nghttp2_strerror(rv));
        return -CWS_E_NOMEM;
    }
    return 0;
}

static void submit_trailers_only(struct cws_gcall *call, const struct cws_gstatus *status,
                                 int http_status)
{
    struct gresp_status enc;
    nghttp2_nv nv[GRESP_MAX_NV];
    char http[8];
    size_t n;
    int rv;

    snprintf(http, sizeof(http), "%d", http_status);
    gresp_status_encode(status, &enc);
    n = gresp_status_nv(&enc, http, nv);
    rv = nghttp2_submit_response(call_session(call), call->stream_id, nv, n, NULL);
    if (rv != 0) {
        cws_log(CWS_LOG_WARN, "%s %s: cannot send the status: %s", call->conn->peer, call->path,
                nghttp2_strerror(rv));
        nghttp2_submit_rst_stream(call_session(call), NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    }
    call->response_started = true;
    gresp_status_clear(&enc);
}

/* Request bytes still held are dropped and acknowledged: the call no longer wants them. */
static void release_input(struct cws_gcall *call)
{
    size_t n = call->held ? evbuffer_get_length(call->held) : 0;

    if (n == 0)
        return;
    evbuffer_drain(call->held, n);
    nghttp2_session_consume_stream(call_session(call), call->stream_id, n);
}

/* The status goes after what is queued, so the client never sees half a message. */
static void emit_status(struct cws_gcall *call, const struct cws_gstatus *status)
{
    release_input(call);
    call->blocked = false;
    if (!call->response_started) {
        submit_trailers_only(call, status, 200);
        gsrv_conn_request_flush(call->conn);
        return;
    }
    gresp_status_encode(status, &call->trailers);
    call->trailers_pending = true;
    kick_response(call);
}

void gcall_reject(struct cws_gcall *call, int http_status, enum cws_errcode code,
                  const char *message)
{
    struct cws_gstatus st = CWS_GSTATUS_INIT;

    cws_log(CWS_LOG_DEBUG, "%s %s: refused: %s", call->conn->peer, call->path, message);
    call->state = GCALL_FINISHED;
    st.grpc_code = cws_errcode_to_grpc(code);
    st.message = message;
    submit_trailers_only(call, &st, http_status);
    gsrv_conn_request_flush(call->conn);
}

void gcall_abort(struct cws_gcall *call, enum cws_errcode why, const char *message)
{
    struct cws_gstatus st = CWS_GSTATUS_INIT;

    if (call->state != GCALL_LIVE)
        return;
    cws_log(CWS_LOG_DEBUG, "%s %s: ended by the server: %s", call->conn->peer, call->path, message);
    call->state = GCALL_FINISHED;
    if (call->h.on_cancel)
        call->h.on_cancel(call, why, call->ud);
    st.grpc_code = cws_errcode_to_grpc(why);
    st.message = message;
    emit_status(call, &st);
}

/* --- request ----------------------------------------------------------------------------- */

static void consume_stream(struct cws_gcall *call, size_t n)
{
    if (n > 0)
        nghttp2_session_consume_stream(call_session(call), call->stream_id, n);
}

static void abortf(struct cws_gcall *call, enum cws_errcode why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void abortf(struct cws_gcall *call, enum cws_errcode why, const char *fmt, ...)
{
    char message[CWS_ERROR_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    gcall_abort(call, why, message);
}

static void deliver_message(struct cws_gcall *call)
{
    const uint8_t *data;
    size_t len;

    call->n_messages++;
    if (call->method->unary_request && call->n_messages > 1) {
        abortf(call, CWS_E_INVALID_ARGUMENT, "%s takes one request message, got more", call->path);
        return;
    }
    cws_grpc_deframer_message(call->deframer, &data, &len);
    if (call->h.on_message)
        call->h.on_message(call, data, len, call->ud);
}

static void fail_input(struct cws_gcall *call, const struct cws_error *err)
{
    /* Out of memory for a request message is, to the client, a message too large. */
    enum cws_errcode why = err->code == CWS_E_NOMEM ? CWS_E_RESOURCE_EXHAUSTED : err->code;

    gcall_abort(call, why, err->message);
}

/* Feed request bytes to the deframer while the call takes them; returns how many were used
 * (all of them once the call has ended). Only used bytes are acknowledged to the client. */
static size_t feed_input(struct cws_gcall *call, const uint8_t *data, size_t len)
{
    size_t off = 0;

    while (off < len && call->state == GCALL_LIVE && !call->paused) {
        struct cws_error err;
        size_t used = 0;
        int r = cws_grpc_deframer_feed(call->deframer, data + off, len - off, &used, &err);

        if (r < 0) {
            consume_stream(call, len - off);
            fail_input(call, &err);
            return len;
        }
        consume_stream(call, used);
        off += used;
        if (r == 1)
            deliver_message(call);
    }
    return off;
}

static int hold_input(struct cws_gcall *call, const uint8_t *data, size_t len)
{
    if (!call->held)
        call->held = evbuffer_new();
    if (!call->held || evbuffer_add(call->held, data, len) < 0) {
        consume_stream(call, len);
        gcall_abort(call, CWS_E_RESOURCE_EXHAUSTED, "out of memory holding request data");
        return -CWS_E_NOMEM;
    }
    return 0;
}

static size_t held_len(const struct cws_gcall *call)
{
    return call->held ? evbuffer_get_length(call->held) : 0;
}

static void try_half_close(struct cws_gcall *call)
{
    if (call->state != GCALL_LIVE || !call->remote_closed || call->half_close_delivered ||
        call->paused || held_len(call) > 0)
        return;
    if (!cws_grpc_deframer_idle(call->deframer)) {
        abortf(call, CWS_E_PROTOCOL, "the request stream of %s ended inside a message", call->path);
        return;
    }
    if (call->method->unary_request && call->n_messages == 0) {
        abortf(call, CWS_E_INVALID_ARGUMENT, "%s takes one request message, got none", call->path);
        return;
    }
    call->half_close_delivered = true;
    if (call->h.on_half_close)
        call->h.on_half_close(call, call->ud);
}

void gcall_on_data(struct cws_gcall *call, const uint8_t *data, size_t len)
{
    size_t used;

    if (call->state != GCALL_LIVE) {
        consume_stream(call, len);
        return;
    }
    if (call->paused || held_len(call) > 0) {
        hold_input(call, data, len);
        return;
    }
    used = feed_input(call, data, len);
    if (used == len)
        return;
    if (call->state == GCALL_LIVE)
        hold_input(call, data + used, len - used);
    else
        consume_stream(call, len - used);
}

void gcall_on_remote_end(struct cws_gcall *call)
{
    call->remote_closed = true;
    try_half_close(call);
}

static void pump_held(struct cws_gcall *call)
{
    struct evbuffer_iovec v;

    while (call->state == GCALL_LIVE && !call->paused && held_len(call) > 0 &&
           evbuffer_peek(call->held, -1, NULL, &v, 1) > 0) {
        size_t used = feed_input(call, v.iov_base, v.iov_len);

        evbuffer_drain(call->held, used);
        if (used == 0)
            break;
    }
    if (call->state != GCALL_LIVE)
        release_input(call);
    try_half_close(call);
}

void gcall_run_pending(struct cws_gcall *call)
{
    if (call->pump_pending) {
        clear_pending(call, &call->pump_pending);
        pump_held(call);
    }
    if (call->writable_pending) {
        clear_pending(call, &call->writable_pending);
        if (call->state == GCALL_LIVE && call->h.on_writable)
            call->h.on_writable(call, call->ud);
    }
}

/* --- start and deadline ------------------------------------------------------------------ */

static void deadline_cb(evutil_socket_t fd, short what, void *userdata)
{
    struct cws_gcall *call = userdata;

    if (call->state == GCALL_LIVE)
        gcall_abort(call, CWS_E_DEADLINE_EXCEEDED, "deadline exceeded");
    else /* finished, but the status is stuck behind flow control: the client gave up */
        nghttp2_submit_rst_stream(call_session(call), NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_CANCEL);
    gsrv_conn_request_flush(call->conn);
}

static int arm_deadline(struct cws_gcall *call, int64_t timeout_ns)
{
    struct timeval tv;

    if (timeout_ns >= FAR_FUTURE_NS)
        return 0;
    call->deadline_ms = monotonic_ms() + (timeout_ns + 999999) / 1000000;
    call->deadline_ev = evtimer_new(call->conn->srv->base, deadline_cb, call);
    if (!call->deadline_ev)
        return -CWS_E_NOMEM;
    tv.tv_sec = (time_t)(timeout_ns / 1000000000);
    tv.tv_usec = (suseconds_t)((timeout_ns % 1000000000 + 999) / 1000);
    if (tv.tv_usec >= 1000000) {
        tv.tv_sec++;
        tv.tv_usec -= 1000000;
    }
    return evtimer_add(call->deadline_ev, &tv) == 0 ? 0 : -CWS_E_NOMEM;
}

static int prepare_call(struct cws_gcall *call, int64_t timeout_ns)
{
    if (cws_grpc_deframer_new(call->conn->srv->max_message, &call->deframer) < 0)
        return -CWS_E_NOMEM;
    call->out = evbuffer_new();
    if (!call->out)
        return -CWS_E_NOMEM;
    if (timeout_ns > 0)
        return arm_deadline(call, timeout_ns);
    return 0;
}

int gcall_start(struct cws_gcall *call, const struct cws_gmethod *method, int64_t timeout_ns)
{
    struct cws_gstatus st = CWS_GSTATUS_INIT;
    struct cws_gcall_handlers h = {0};
    void *ud = NULL;
    int r;

    call->method = method;
    r = prepare_call(call, timeout_ns);
    if (r < 0) {
        gcall_reject(call, 200, CWS_E_RESOURCE_EXHAUSTED, "out of memory starting the call");
        return r;
    }
    call->state = GCALL_LIVE;
    st.grpc_code = cws_errcode_to_grpc(CWS_E_UNKNOWN);
    r = method->start(call, call->conn->srv->userdata, &h, &ud, &st);
    if (r < 0) {
        if (call->state == GCALL_LIVE) {
            call->state = GCALL_FINISHED;
            if (st.grpc_code == 0)
                st.grpc_code = cws_errcode_to_grpc((enum cws_errcode) - r);
            emit_status(call, &st);
        }
        return r;
    }
    call->h = h;
    call->ud = ud;
    return 0;
}

/* --- public API -------------------------------------------------------------------------- */

/* Room for a framed message of len bytes at the end of the queue; commit with
 * evbuffer_commit_space(call->out, slot, 1). */
static int reserve_frame(struct cws_gcall *call, size_t len, struct evbuffer_iovec *slot,
                         uint8_t **ret_body)
{
    uint8_t *p;

    if (evbuffer_reserve_space(call->out, (ev_ssize_t)(len + CWS_GRPC_FRAME_HEADER_SIZE), slot, 1) <
        1)
        return -CWS_E_NOMEM;
    p = slot->iov_base;
    cws_grpc_frame_header(p, len, NULL); /* len <= max_message <= UINT32_MAX */
    slot->iov_len = len + CWS_GRPC_FRAME_HEADER_SIZE;
    *ret_body = p + CWS_GRPC_FRAME_HEADER_SIZE;
    return 0;
}

static int send_check(const struct cws_gcall *call, size_t len)
{
    if (call->state != GCALL_LIVE)
        return -CWS_E_FAILED_PRECONDITION;
    if (len > call->conn->srv->max_message)
        return -CWS_E_RESOURCE_EXHAUSTED;
    return 0;
}

static int after_queue(struct cws_gcall *call)
{
    int r = kick_response(call);

    if (r < 0)
        return r;
    if (evbuffer_get_length(call->out) > call->conn->srv->out_high_water) {
        call->blocked = true;
        return 1;
    }
    return 0;
}

int cws_gcall_send(struct cws_gcall *call, const uint8_t *data, size_t len)
{
    struct evbuffer_iovec slot;
    uint8_t *body = NULL;
    int r;

    if (!call || (!data && len > 0))
        return -CWS_E_INVALID_ARGUMENT;
    r = send_check(call, len);
    if (r == 0)
        r = reserve_frame(call, len, &slot, &body);
    if (r < 0)
        return r;
    if (len > 0)
        memcpy(body, data, len);
    evbuffer_commit_space(call->out, &slot, 1);
    return after_queue(call);
}

int cws_gcall_send_pb(struct cws_gcall *call, const ProtobufCMessage *msg)
{
    struct evbuffer_iovec slot;
    uint8_t *body = NULL;
    size_t len;
    int r;

    if (!call || !msg)
        return -CWS_E_INVALID_ARGUMENT;
    len = protobuf_c_message_get_packed_size(msg);
    r = send_check(call, len);
    if (r == 0)
        r = reserve_frame(call, len, &slot, &body);
    if (r < 0)
        return r;
    protobuf_c_message_pack(msg, body);
    evbuffer_commit_space(call->out, &slot, 1);
    return after_queue(call);
}

int cws_gcall_finish(struct cws_gcall *call, const struct cws_gstatus *status)
{
    if (!call)
        return -CWS_E_INVALID_ARGUMENT;
    if (call->state != GCALL_LIVE)
        return -CWS_E_FAILED_PRECONDITION;
    call->state = GCALL_FINISHED;
    emit_status(call, status);
    return 0;
}

int cws_gcall_finish_error(struct cws_gcall *call, int grpc_code, const char *fmt, ...)
{
    struct cws_gstatus st = CWS_GSTATUS_INIT;
    char message[CWS_ERROR_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    st.grpc_code = grpc_code;
    st.message = message;
    return cws_gcall_finish(call, &st);
}

void cws_gcall_pause_input(struct cws_gcall *call, bool paused)
{
    if (!call || call->state != GCALL_LIVE || call->paused == paused)
        return;
    call->paused = paused;
    if (paused)
        return;
    /* Delivered from the loop, not from inside the caller (often on_message itself). */
    if (held_len(call) > 0 || (call->remote_closed && !call->half_close_delivered)) {
        set_pending(call, &call->pump_pending);
        gsrv_conn_request_flush(call->conn);
    }
}

int64_t cws_gcall_deadline_ms(const struct cws_gcall *call)
{
    return call ? call->deadline_ms : 0;
}

const char *cws_gcall_path(const struct cws_gcall *call)
{
    return call ? call->path : "";
}

const char *cws_gcall_peer(const struct cws_gcall *call)
{
    return call ? call->conn->peer : "";
}
