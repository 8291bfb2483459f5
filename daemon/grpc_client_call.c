/* One gRPC call of the client: its request queue (kept for a transparent retry until the
 * server is known to have processed the call), the deframing and delivery of its response
 * with receive flow control, its deadline and its status.
 *
 * Receive flow control: DATA goes straight into the deframer while the call is not paused,
 * and the stream's window is given back (nghttp2_session_consume) only for bytes the
 * deframer took. While paused, DATA is held raw and not given back, so the server can send
 * at most one stream window more: memory per call is bounded by the window plus the one
 * message being assembled.
 *
 * Callbacks may cancel any call, this one included, so every loop that calls back holds a
 * reference and checks the state after each callback.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_client_private.h"
#include "log.h"

static void call_finish(struct cws_gc_call *call);
static void call_deliver(struct cws_gc_call *call);

/* ---- life ------------------------------------------------------------------------------- */

static void chunks_free(struct gc_chunk *c)
{
    while (c) {
        struct gc_chunk *next = c->next;
        free(c);
        c = next;
    }
}

static void call_free(struct cws_gc_call *call)
{
    if (call->deadline_ev)
        event_free(call->deadline_ev);
    if (call->notify_ev)
        event_free(call->notify_ev);
    if (call->held)
        evbuffer_free(call->held);
    chunks_free(call->chunks);
    cws_grpc_deframer_free(call->deframer);
    gc_header_list_clear(&call->headers);
    gc_header_list_clear(&call->trailers);
    cws_grpc_status_clear(&call->status);
    gc_metadata_clear(&call->metadata);
    free(call->path);
    free(call);
}

void gc_call_ref(struct cws_gc_call *call)
{
    call->refs++;
}

void gc_call_unref(struct cws_gc_call *call)
{
    if (--call->refs == 0)
        call_free(call);
}

static const char *call_display(const struct cws_gc_call *call)
{
    return call->client->endpoint.display;
}

static int64_t call_elapsed_ms(const struct cws_gc_call *call)
{
    return cws_gc_now_ms() - call->started_ms;
}

/* ---- status ----------------------------------------------------------------------------- */

/* A status made here rather than received. */
static void call_set_local(struct cws_gc_call *call, enum cws_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void call_set_local(struct cws_gc_call *call, enum cws_errcode code, const char *fmt, ...)
{
    va_list ap;

    cws_grpc_status_clear(&call->status);
    va_start(ap, fmt);
    cws_error_setv(&call->error, code, fmt, ap);
    va_end(ap);
    call->status.code = cws_errcode_to_grpc(code);
    call->status.message = strdup(call->error.message); /* NULL only when out of memory */
    call->status_set = true;
    call->local = true;
}

/* The gRPC spec's mapping for a response that is not HTTP 200 and has no grpc-status. */
static enum cws_errcode http_status_code(int http_status)
{
    switch (http_status) {
    case 400:
        return CWS_E_INTERNAL;
    case 401:
        return CWS_E_UNAUTHENTICATED;
    case 403:
        return CWS_E_PERMISSION_DENIED;
    case 404:
        return CWS_E_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return CWS_E_UNAVAILABLE;
    default:
        return CWS_E_UNKNOWN;
    }
}

/* The gRPC spec's mapping for RST_STREAM without a status. */
static enum cws_errcode h2_reset_code(uint32_t error_code)
{
    switch (error_code) {
    case NGHTTP2_REFUSED_STREAM:
        return CWS_E_UNAVAILABLE;
    case NGHTTP2_CANCEL:
        return CWS_E_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        return CWS_E_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
        return CWS_E_PERMISSION_DENIED;
    default:
        return CWS_E_INTERNAL;
    }
}

/* Status from trailers (or trailers-only headers). */
static void call_status_from(struct cws_gc_call *call, const struct gc_header_list *l)
{
    const char *code = gc_header_list_get(l, "grpc-status");
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    struct cws_error err;

    if (cws_grpc_status_parse(code, gc_header_list_get(l, "grpc-message"),
                              gc_header_list_get(l, "grpc-status-details-bin"), &st, &err) == 0) {
        cws_grpc_status_clear(&call->status);
        call->status = st;
        cws_grpc_status_to_error(&call->status, &call->error);
        call->status_set = true;
        call->local = false;
        return;
    }
    if (!code && call->http_status != 200)
        call_set_local(call, http_status_code(call->http_status),
                       "the server answered HTTP %d without a gRPC status", call->http_status);
    else if (!code)
        call_set_local(call, CWS_E_INTERNAL, "the server ended the call without a grpc-status");
    else
        call_set_local(call, CWS_E_INTERNAL, "the server sent an invalid grpc-status: %s",
                       err.message);
}

/* ---- ending ----------------------------------------------------------------------------- */

static void call_drop_held(struct cws_gc_call *call)
{
    if (call->held)
        evbuffer_drain(call->held, evbuffer_get_length(call->held));
}

/* End an active call here and now: reset its stream, drop what is held, report. */
static void call_abort(struct cws_gc_call *call, const struct cws_error *err)
{
    call_set_local(call, err->code, "%s", err->message);
    if (call->conn)
        gc_conn_detach(call->conn, call, true, NGHTTP2_CANCEL);
    call_drop_held(call);
    call->state = GC_CALL_ENDED;
    call_finish(call);
}

/* Status known: what is held is delivered first, then on_done(). */
static void call_end(struct cws_gc_call *call)
{
    call->remote_ended = true;
    call->state = GC_CALL_ENDED;
    evtimer_del(call->deadline_ev);
    call_deliver(call);
}

static void call_log_end(const struct cws_gc_call *call)
{
    if (call->error.code == CWS_E_OK)
        cws_log(CWS_LOG_TRACE, "call %" PRIu64 " %s: OK in %" PRId64 " ms", call->id, call->path,
                call_elapsed_ms(call));
    else
        cws_log(CWS_LOG_DEBUG, "call %" PRIu64 " %s: %s%s: %s (%" PRId64 " ms)", call->id,
                call->path, cws_errcode_name(call->error.code), call->local ? " (local)" : "",
                call->error.message, call_elapsed_ms(call));
}

static void call_finish(struct cws_gc_call *call)
{
    struct cws_gc_result res;

    if (call->state == GC_CALL_DONE)
        return;
    if (call->error.code == CWS_E_OK && !cws_grpc_deframer_idle(call->deframer))
        call_set_local(call, CWS_E_INTERNAL, "the response ended in the middle of a message");
    call->state = GC_CALL_DONE;
    evtimer_del(call->deadline_ev);
    event_del(call->notify_ev);
    if (call->conn)
        gc_conn_detach(call->conn, call, false, 0);
    call_log_end(call);
    res.status = &call->status;
    res.error = &call->error;
    res.local = call->local;
    res.trailers_only = call->trailers_only;
    res.trailers = call->trailers.v;
    res.n_trailers = call->trailers.n;
    if (call->h.on_done)
        call->h.on_done(call, &res, call->ud);
    gc_call_unref(call); /* the reference the call was born with */
}

void gc_call_fail(struct cws_gc_call *call, const struct cws_error *err)
{
    if (call->state == GC_CALL_WAITING)
        gc_client_unwait(call->client, call);
    if (call->state == GC_CALL_DONE)
        return;
    call_abort(call, err);
}

/* ---- retry ------------------------------------------------------------------------------ */

static bool call_can_retry(const struct cws_gc_call *call)
{
    return call->replayable && !call->response_started && call->attempts + 1 < GC_MAX_ATTEMPTS &&
           !call->client->closing &&
           (call->deadline_ms == 0 || cws_gc_now_ms() < call->deadline_ms);
}

static void call_rewind(struct cws_gc_call *call)
{
    size_t total = 0;

    for (struct gc_chunk *c = call->chunks; c; c = c->next)
        total += c->len;
    call->send_chunk = call->chunks;
    call->send_off = 0;
    call->queued = total;
    call->handed = 0;
    call->send_deferred = false;
    call->send_ended = false;
    call->headers_sent = false;
    call->sent_mark = 0;
}

/* The server did not process the call: send it again on a connection that will. */
static void call_retry(struct cws_gc_call *call, const char *why)
{
    struct cws_grpc_deframer *fresh = NULL;

    if (cws_grpc_deframer_new(call->client->max_message, &fresh) == 0) {
        cws_grpc_deframer_free(call->deframer);
        call->deframer = fresh;
    }
    call->attempts++;
    call->client->stats.retries++;
    call_rewind(call);
    call_drop_held(call);
    gc_header_list_clear(&call->headers);
    gc_header_list_clear(&call->trailers);
    call->http_status = 0;
    call->stream_id = -1;
    cws_log(CWS_LOG_DEBUG, "call %" PRIu64 " %s: %s; retrying (attempt %d)", call->id, call->path,
            why, call->attempts + 1);
    gc_client_requeue(call->client, call);
}

/* ---- request ---------------------------------------------------------------------------- */

/* Past the replay limit, or once the server has answered, sent bytes are not kept. */
static void call_trim_sent(struct cws_gc_call *call)
{
    if (call->replayable && call->handed <= call->client->replay_max)
        return;
    call->replayable = false;
    while (call->chunks && call->chunks != call->send_chunk) {
        struct gc_chunk *c = call->chunks;

        call->chunks = c->next;
        free(c);
    }
    if (!call->chunks)
        call->chunks_tail = NULL;
    call->handed = call->send_off;
}

static void call_notify(struct cws_gc_call *call)
{
    event_active(call->notify_ev, 0, 0);
}

ssize_t gc_call_read_request(struct cws_gc_call *call, uint8_t *buf, size_t length,
                             uint32_t *data_flags)
{
    size_t n = 0;

    while (n < length && call->send_chunk) {
        struct gc_chunk *c = call->send_chunk;
        size_t take = c->len - call->send_off;

        if (take > length - n)
            take = length - n;
        memcpy(buf + n, c->data + call->send_off, take);
        n += take;
        call->send_off += take;
        if (call->send_off == c->len) {
            call->send_chunk = c->next;
            call->send_off = 0;
        }
    }
    call->queued -= n;
    call->handed += n;
    call_trim_sent(call);
    if (call->wants_writable && call->queued <= call->client->send_high_water / 2) {
        call->wants_writable = false;
        call->writable_pending = true;
        call_notify(call);
    }
    if (!call->send_chunk && call->send_closed) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        call->send_ended = true;
        return (ssize_t)n;
    }
    if (n == 0) {
        call->send_deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

int cws_gc_call_send(struct cws_gc_call *call, const uint8_t *data, size_t len)
{
    struct gc_chunk *c;
    struct cws_error err;

    if (!call || (!data && len > 0))
        return -CWS_E_INVALID_ARGUMENT;
    if (call->send_closed || call->state >= GC_CALL_ENDED)
        return -CWS_E_FAILED_PRECONDITION;
    if (len > call->client->max_message)
        return -CWS_E_RESOURCE_EXHAUSTED;
    c = malloc(sizeof(*c) + CWS_GRPC_FRAME_HEADER_SIZE + len);
    if (!c)
        return -CWS_E_NOMEM;
    if (cws_grpc_frame_header(c->data, len, &err) < 0) {
        free(c);
        return -(int)err.code;
    }
    if (len > 0)
        memcpy(c->data + CWS_GRPC_FRAME_HEADER_SIZE, data, len);
    c->len = CWS_GRPC_FRAME_HEADER_SIZE + len;
    c->next = NULL;
    if (call->chunks_tail)
        call->chunks_tail->next = c;
    else
        call->chunks = c;
    call->chunks_tail = c;
    if (!call->send_chunk) {
        call->send_chunk = c;
        call->send_off = 0;
    }
    call->queued += c->len;
    if (call->state == GC_CALL_ACTIVE)
        gc_conn_resume_send(call->conn, call);
    if (call->queued > call->client->send_high_water) {
        call->wants_writable = true;
        return 1;
    }
    return 0;
}

int cws_gc_call_close_send(struct cws_gc_call *call)
{
    if (!call)
        return -CWS_E_INVALID_ARGUMENT;
    if (call->send_closed)
        return -CWS_E_FAILED_PRECONDITION;
    call->send_closed = true;
    if (call->state == GC_CALL_ACTIVE)
        gc_conn_resume_send(call->conn, call);
    return 0;
}

size_t cws_gc_call_send_queued(const struct cws_gc_call *call)
{
    return call ? call->queued : 0;
}

uint64_t cws_gc_call_id(const struct cws_gc_call *call)
{
    return call ? call->id : 0;
}

/* ---- response --------------------------------------------------------------------------- */

/* Feed one slice to the deframer; deliver a completed message. Returns 0 or 1 (a message was
 * delivered), or a negative code after aborting the call. */
static int call_feed(struct cws_gc_call *call, const uint8_t *data, size_t len, size_t *ret_used)
{
    const uint8_t *msg = NULL;
    size_t used = 0, msg_len = 0;
    struct cws_error cause, err;
    int r = cws_grpc_deframer_feed(call->deframer, data, len, &used, &cause);

    if (r < 0) {
        cws_error_set(&err, cause.code, "response from %s: %s", call_display(call), cause.message);
        call_abort(call, &err);
        return r;
    }
    if (call->conn && used > 0)
        gc_conn_consume(call->conn, call, used); /* taken: the server may send more */
    *ret_used = used;
    if (r == 1) {
        cws_grpc_deframer_message(call->deframer, &msg, &msg_len);
        if (call->h.on_message)
            call->h.on_message(call, msg, msg_len, call->ud);
    }
    return r;
}

static bool call_receiving(const struct cws_gc_call *call)
{
    return call->state == GC_CALL_ACTIVE || call->state == GC_CALL_ENDED;
}

static size_t held_len(const struct cws_gc_call *call)
{
    return call->held ? evbuffer_get_length(call->held) : 0;
}

static int call_hold(struct cws_gc_call *call, const uint8_t *data, size_t len)
{
    if (!call->held)
        call->held = evbuffer_new();
    if (!call->held || evbuffer_add(call->held, data, len) != 0)
        return -CWS_E_NOMEM;
    return 0;
}

/* Deframe and deliver what is held; then on_done() once the call has ended. */
static void call_deliver(struct cws_gc_call *call)
{
    if (call->delivering)
        return;
    call->delivering = true;
    gc_call_ref(call);
    while (call_receiving(call) && !call->paused) {
        struct evbuffer_iovec vec;
        size_t used = 0;

        if (held_len(call) > 0) {
            evbuffer_peek(call->held, -1, NULL, &vec, 1);
            if (call_feed(call, vec.iov_base, vec.iov_len, &used) < 0)
                break;
            evbuffer_drain(call->held, used);
            continue;
        }
        if (call->state == GC_CALL_ENDED)
            call_finish(call);
        break;
    }
    call->delivering = false;
    gc_call_unref(call);
}

void gc_call_on_data(struct cws_gc_call *call, const uint8_t *data, size_t len)
{
    struct cws_error err;
    bool keep;

    if (call->state != GC_CALL_ACTIVE)
        return;
    if (call->paused || call->delivering || held_len(call) > 0)
        goto hold;
    call->delivering = true;
    gc_call_ref(call);
    while (len > 0 && call->state == GC_CALL_ACTIVE && !call->paused) {
        size_t used = 0;

        if (call_feed(call, data, len, &used) < 0)
            break;
        data += used;
        len -= used;
    }
    call->delivering = false;
    keep = len > 0 && call->state == GC_CALL_ACTIVE; /* then our reference is not the last */
    gc_call_unref(call);
    if (!keep)
        return;
hold:
    if (call_hold(call, data, len) < 0) {
        cws_error_set(&err, CWS_E_NOMEM, "out of memory holding the response of %s", call->path);
        call_abort(call, &err);
    }
}

int gc_call_on_header(struct cws_gc_call *call, const nghttp2_frame *frame, const uint8_t *name,
                      size_t name_len, const uint8_t *value, size_t value_len)
{
    struct gc_header_list *l;
    struct cws_error err;
    int r;

    if (call->state != GC_CALL_ACTIVE)
        return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE)
        l = &call->headers;
    else if (frame->headers.cat == NGHTTP2_HCAT_HEADERS)
        l = &call->trailers;
    else
        return 0;
    if (name_len == 7 && memcmp(name, ":status", 7) == 0) {
        call->http_status = 0;
        for (size_t i = 0; i < value_len && value[i] >= '0' && value[i] <= '9' && i < 3; i++)
            call->http_status = call->http_status * 10 + (value[i] - '0');
        return 0;
    }
    if (name_len > 0 && name[0] == ':')
        return 0;
    r = gc_header_list_add(l, name, name_len, value, value_len);
    if (r == 0)
        return 0;
    cws_error_set(&err, r == -CWS_E_NOMEM ? CWS_E_NOMEM : CWS_E_RESOURCE_EXHAUSTED,
                  "the response headers of %s exceed %d bytes", call->path, GC_MAX_HEADER_BYTES);
    call_abort(call, &err);
    return 0;
}

static void call_on_response_headers(struct cws_gc_call *call, bool end_stream)
{
    const char *type;
    struct cws_error err;

    call->response_started = true;
    call->replayable = false; /* the server has the call: never send it twice */
    call_trim_sent(call);
    if (end_stream) {
        call->trailers_only = true;
        gc_header_list_clear(&call->trailers);
        call->trailers = call->headers;
        memset(&call->headers, 0, sizeof(call->headers));
        call_status_from(call, &call->trailers);
        return;
    }
    if (call->http_status != 200) {
        cws_error_set(&err, http_status_code(call->http_status),
                      "the server answered HTTP %d, not a gRPC response", call->http_status);
        call_abort(call, &err);
        return;
    }
    type = gc_header_list_get(&call->headers, "content-type");
    if (!type || strncmp(type, "application/grpc", 16) != 0 ||
        (type[16] != '\0' && type[16] != '+' && type[16] != ';')) {
        cws_error_set(&err, CWS_E_INTERNAL,
                      "the server answered with content-type \"%.64s\", not application/grpc",
                      type ? type : "");
        call_abort(call, &err);
        return;
    }
    if (call->h.on_headers)
        call->h.on_headers(call, call->headers.v, call->headers.n, call->ud);
}

void gc_call_on_headers_end(struct cws_gc_call *call, const nghttp2_frame *frame)
{
    bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    struct cws_error err;

    if (call->state != GC_CALL_ACTIVE)
        return;
    gc_call_ref(call);
    if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        if (call->http_status >= 100 && call->http_status < 200 && !end_stream) {
            gc_header_list_clear(&call->headers); /* informational: the real one follows */
            goto out;
        }
        call_on_response_headers(call, end_stream);
    } else if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
        if (!end_stream) {
            cws_error_set(&err, CWS_E_INTERNAL, "the server sent trailers without END_STREAM");
            call_abort(call, &err);
            goto out;
        }
        call_status_from(call, &call->trailers);
    }
    if (end_stream && call->state == GC_CALL_ACTIVE)
        gc_call_on_remote_end(call);
out:
    gc_call_unref(call);
}

void gc_call_on_remote_end(struct cws_gc_call *call)
{
    if (call->state != GC_CALL_ACTIVE)
        return;
    if (!call->status_set)
        call_set_local(call, CWS_E_INTERNAL,
                       "the server ended the stream without trailers (no grpc-status)");
    /* The server is done; our side of the stream ends without a reset. */
    if (call->conn)
        gc_conn_detach(call->conn, call, false, 0);
    call_end(call);
}

void gc_call_on_stream_close(struct cws_gc_call *call, uint32_t error_code)
{
    struct gc_conn *conn = call->conn;
    bool refused = error_code == NGHTTP2_REFUSED_STREAM;

    if (call->state != GC_CALL_ACTIVE || !conn)
        return;
    call->stream_id = -1; /* nghttp2 is closing it: detach without touching the stream */
    gc_conn_detach(conn, call, false, 0);
    if ((!call->headers_sent || refused) && call_can_retry(call)) {
        call_retry(call, refused ? "refused by the server" : "not sent before the stream closed");
        return;
    }
    if (refused && conn->goaway_received)
        call_set_local(call, CWS_E_UNAVAILABLE,
                       "%s is going away (GOAWAY, last stream %d) and did not process the call",
                       call_display(call), conn->goaway_last_stream_id);
    else if (refused)
        call_set_local(call, CWS_E_UNAVAILABLE, "%s refused the call (REFUSED_STREAM)",
                       call_display(call));
    else if (!call->headers_sent)
        call_set_local(call, CWS_E_UNAVAILABLE, "the call could not be sent to %s",
                       call_display(call));
    else if (!call->status_set)
        call_set_local(call, h2_reset_code(error_code), "%s reset the stream (%s)",
                       call_display(call), nghttp2_http2_strerror(error_code));
    call_end(call);
}

void gc_call_on_conn_lost(struct cws_gc_call *call, const struct cws_error *err, bool unprocessed)
{
    if (call->state != GC_CALL_ACTIVE)
        return;
    call->stream_id = -1;
    call->client->n_active--;
    if ((!call->headers_sent || unprocessed) && call_can_retry(call)) {
        call_retry(call, err->message);
        return;
    }
    call_set_local(call, CWS_E_UNAVAILABLE, "connection lost: %s", err->message);
    call_end(call);
}

/* ---- timers, notifications -------------------------------------------------------------- */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct cws_gc_call *call = arg;
    struct cws_gclient *client = call->client;
    struct cws_error err;

    if (call->state == GC_CALL_WAITING) {
        bool reason = client->last_connect_error.code != CWS_E_OK;

        cws_error_set(&err, CWS_E_DEADLINE_EXCEEDED,
                      "deadline exceeded after %" PRId64 " ms waiting for a connection to %s%s%s",
                      call_elapsed_ms(call), call_display(call), reason ? ": " : "",
                      reason ? client->last_connect_error.message : "");
        gc_call_fail(call, &err);
    } else if (call->state == GC_CALL_ACTIVE) {
        cws_error_set(&err, CWS_E_DEADLINE_EXCEEDED, "deadline exceeded after %" PRId64 " ms (%s)",
                      call_elapsed_ms(call),
                      call->response_started ? "the response was not complete"
                                             : "no response from the server yet");
        call_abort(call, &err);
    }
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct cws_gc_call *call = arg;

    gc_call_ref(call);
    if (call->writable_pending && call->state <= GC_CALL_ACTIVE) {
        call->writable_pending = false;
        if (call->h.on_writable)
            call->h.on_writable(call, call->ud);
    }
    if (call_receiving(call))
        call_deliver(call);
    gc_call_unref(call);
}

void cws_gc_call_pause_recv(struct cws_gc_call *call, bool paused)
{
    if (!call || call->state == GC_CALL_DONE || call->paused == paused)
        return;
    call->paused = paused;
    if (!paused)
        call_notify(call); /* deliver from the loop, never inside the caller's function */
}

void cws_gc_call_cancel(struct cws_gc_call *call)
{
    enum gc_call_state was;

    if (!call || call->state == GC_CALL_DONE)
        return;
    was = call->state;
    call->state = GC_CALL_DONE;
    evtimer_del(call->deadline_ev);
    event_del(call->notify_ev);
    if (was == GC_CALL_WAITING)
        gc_client_unwait(call->client, call);
    else if (call->conn)
        gc_conn_detach(call->conn, call, true, NGHTTP2_CANCEL);
    cws_log(CWS_LOG_TRACE, "call %" PRIu64 " %s cancelled after %" PRId64 " ms", call->id,
            call->path, call_elapsed_ms(call));
    gc_call_unref(call);
}

/* ---- creation --------------------------------------------------------------------------- */

static int call_init(struct cws_gc_call *call, const char *path,
                     const struct cws_gc_call_opts *opts, struct cws_error *err)
{
    struct event_base *base = call->client->base;

    call->path = strdup(path);
    call->notify_ev = event_new(base, -1, 0, on_notify, call);
    call->deadline_ev = evtimer_new(base, on_deadline, call);
    if (!call->path || !call->notify_ev || !call->deadline_ev ||
        cws_grpc_deframer_new(call->client->max_message, &call->deframer) < 0)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory starting a call");
    if (opts)
        return gc_metadata_copy(opts->metadata, opts->n_metadata, &call->metadata, err);
    return 0;
}

int gc_call_new(struct cws_gclient *client, const char *path, const struct cws_gc_call_opts *opts,
                const struct cws_gc_handlers *h, void *ud, struct cws_gc_call **ret,
                struct cws_error *err)
{
    struct cws_gc_call *call = calloc(1, sizeof(*call));
    int r;

    if (!call)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory starting a call");
    call->client = client;
    call->id = ++client->next_call_id;
    call->state = GC_CALL_NEW;
    call->refs = 1;
    call->stream_id = -1;
    call->replayable = true;
    call->started_ms = cws_gc_now_ms();
    call->status = (struct cws_grpc_status)CWS_GRPC_STATUS_INIT;
    cws_error_clear(&call->error);
    if (h)
        call->h = *h;
    call->ud = ud;
    r = call_init(call, path, opts, err);
    if (r < 0) {
        call_free(call);
        return r;
    }
    if (opts && opts->deadline_ms > 0) {
        int64_t left = opts->deadline_ms - call->started_ms;
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};

        call->deadline_ms = opts->deadline_ms;
        evtimer_add(call->deadline_ev, &tv);
    }
    call->wait_for_ready = opts && opts->wait_for_ready;
    *ret = call;
    return 0;
}
