/* SandboxService calls on the daemon's gRPC client; see backend_rpc.h. Credentials are sent
 * per call, so a SIGHUP reload applies to the next call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_rpc.h"
#include "daemon.h"
#include "grpc_client.h"
#include "log.h"

#define SERVICE_PATH "/coreweave.sandbox.v1.SandboxService/"
#define MAX_HEADERS  8

struct cwsd_unary {
    struct cws_gc_call *call;
    cwsd_unary_fn fn;
    void *ud;
    const ProtobufCMessageDescriptor *desc;
    ProtobufCMessage *resp;
    bool malformed;
};

/* The status being reported by unary_done(), for cwsd_rpc_error_metadata(). */
static const struct cws_grpc_status *reporting;

const char *cwsd_rpc_error_metadata(const char *key)
{
    return reporting ? cws_grpc_status_metadata_get(reporting, key) : NULL;
}

/* How long a finished stream may take to end on its own before it is reset. */
#define FINISH_GRACE_MS 5000

struct cwsd_stream {
    struct cws_gc_call *call;
    const ProtobufCMessageDescriptor *desc;
    struct cwsd_stream_events ev;
    void *ud;
    struct event_base *base;
    struct event *finish_timer; /* set once the caller let go (cwsd_stream_finish) */
};

static void stream_free(struct cwsd_stream *s)
{
    if (s->finish_timer)
        event_free(s->finish_timer);
    free(s);
}

/* The credentials as per-call metadata. */
static size_t auth_metadata(const struct cwsd *d, struct cws_gc_header *out)
{
    size_t n = 0;
    for (char **h = d->creds.headers; h && h[0] && h[1] && n < MAX_HEADERS; h += 2) {
        out[n].name = h[0];
        out[n].value = h[1];
        n++;
    }
    return n;
}

static int method_path(char *buf, size_t size, const char *method, struct cws_error *err)
{
    if (snprintf(buf, size, SERVICE_PATH "%s", method) >= (int)size)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "method name %s too long", method);
    return 0;
}

static uint8_t *pack_message(const ProtobufCMessage *msg, size_t *ret_len)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf)
        protobuf_c_message_pack(msg, buf);
    *ret_len = len;
    return buf;
}

static int client_ready(struct cwsd *d, struct cws_error *err)
{
    if (!d->gclient)
        return cws_error_set(err, CWS_E_UNAVAILABLE, "no backend is configured");
    return 0;
}

/* ---- unary ---- */

static void unary_message(struct cws_gc_call *call, const uint8_t *data, size_t len, void *ud)
{
    struct cwsd_unary *u = ud;
    (void)call;
    if (u->resp || u->malformed)
        return; /* a unary answer is one message; more would be the server's error */
    u->resp = protobuf_c_message_unpack(u->desc, NULL, len, data);
    u->malformed = !u->resp;
}

static void unary_done(struct cws_gc_call *call, const struct cws_gc_result *result, void *ud)
{
    struct cwsd_unary *u = ud;
    struct cws_error err;
    (void)call;
    if (result->error->code != CWS_E_OK) {
        reporting = result->status;
        u->fn(u->ud, NULL, result->error);
        reporting = NULL;
    } else if (!u->resp) {
        cws_error_set(&err, CWS_E_PROTOCOL, "the backend answered %s without a valid message",
                      u->desc->name);
        u->fn(u->ud, NULL, &err);
    } else {
        u->fn(u->ud, u->resp, NULL);
    }
    if (u->resp)
        protobuf_c_message_free_unpacked(u->resp, NULL);
    free(u);
}

static const struct cws_gc_handlers unary_handlers = {
    .on_message = unary_message,
    .on_done = unary_done,
};

int cwsd_rpc_unary(struct cwsd *d, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                   cwsd_unary_fn fn, void *ud, struct cws_error *err)
{
    struct cwsd_unary *u = NULL;
    return cwsd_rpc_unary_cancellable(d, method, req, resp_desc, timeout_ms, fn, ud, &u, err);
}

void cwsd_rpc_unary_cancel(struct cwsd_unary *u)
{
    if (!u)
        return;
    cws_gc_call_cancel(u->call);
    if (u->resp)
        protobuf_c_message_free_unpacked(u->resp, NULL);
    free(u);
}

int cwsd_rpc_unary_cancellable(struct cwsd *d, const char *method, const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                               cwsd_unary_fn fn, void *ud, struct cwsd_unary **ret,
                               struct cws_error *err)
{
    char path[128];
    struct cws_gc_header md[MAX_HEADERS];
    size_t len = 0;
    int r = client_ready(d, err);
    if (r == 0)
        r = method_path(path, sizeof(path), method, err);
    if (r < 0)
        return r;
    struct cwsd_unary *u = calloc(1, sizeof(*u));
    uint8_t *buf = u ? pack_message(req, &len) : NULL;
    if (!buf) {
        free(u);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    u->fn = fn;
    u->ud = ud;
    u->desc = resp_desc;
    struct cws_gc_call_opts opts = {
        .deadline_ms = timeout_ms > 0 ? cws_gc_now_ms() + timeout_ms : 0,
        .metadata = md,
        .n_metadata = auth_metadata(d, md),
        .wait_for_ready = d->backend_local,
    };
    r = cws_gclient_unary(d->gclient, path, &opts, buf, len, &unary_handlers, u, &u->call, err);
    free(buf);
    if (r < 0) {
        free(u);
        return r;
    }
    *ret = u;
    return 0;
}

/* ---- streams ---- */

static void stream_message(struct cws_gc_call *call, const uint8_t *data, size_t len, void *ud)
{
    struct cwsd_stream *s = ud;
    if (s->ev.on_raw && s->ev.on_raw(s, data, len, s->ud))
        return;
    ProtobufCMessage *msg = protobuf_c_message_unpack(s->desc, NULL, len, data);
    if (!msg) {
        struct cws_error err;
        cws_error_set(&err, CWS_E_PROTOCOL, "malformed %s from the backend", s->desc->name);
        struct cwsd_stream_events ev = s->ev;
        void *sud = s->ud;
        cws_gc_call_cancel(call);
        stream_free(s);
        if (ev.on_done)
            ev.on_done(NULL, &err, sud);
        return;
    }
    if (s->ev.on_message)
        s->ev.on_message(s, msg, s->ud);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void stream_done(struct cws_gc_call *call, const struct cws_gc_result *result, void *ud)
{
    struct cwsd_stream *s = ud;
    (void)call;
    s->call = NULL;
    if (s->ev.on_done)
        s->ev.on_done(s, result->error->code == CWS_E_OK ? NULL : result->error, s->ud);
    stream_free(s);
}

static void stream_writable(struct cws_gc_call *call, void *ud)
{
    struct cwsd_stream *s = ud;
    (void)call;
    if (s->ev.on_writable)
        s->ev.on_writable(s, s->ud);
}

static const struct cws_gc_handlers stream_handlers = {
    .on_message = stream_message,
    .on_writable = stream_writable,
    .on_done = stream_done,
};

int cwsd_rpc_stream(struct cwsd *d, const char *method, const ProtobufCMessage *first,
                    const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                    const struct cwsd_stream_events *ev, void *ud, struct cwsd_stream **ret,
                    struct cws_error *err)
{
    char path[128];
    struct cws_gc_header md[MAX_HEADERS];
    int r = client_ready(d, err);
    if (r == 0)
        r = method_path(path, sizeof(path), method, err);
    if (r < 0)
        return r;
    struct cwsd_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    s->desc = resp_desc;
    s->ev = *ev;
    s->ud = ud;
    s->base = d->base;
    struct cws_gc_call_opts opts = {
        .deadline_ms = timeout_ms > 0 ? cws_gc_now_ms() + timeout_ms : 0,
        .metadata = md,
        .n_metadata = auth_metadata(d, md),
        .wait_for_ready = d->backend_local,
    };
    r = cws_gclient_call_start(d->gclient, path, &opts, &stream_handlers, s, &s->call, err);
    if (r < 0) {
        free(s);
        return r;
    }
    if (first && cwsd_stream_send(s, first) < 0) {
        cwsd_stream_cancel(s);
        return cws_error_set(err, CWS_E_NOMEM, "cannot send the first %s message", method);
    }
    *ret = s;
    return 0;
}

int cwsd_stream_send(struct cwsd_stream *s, const ProtobufCMessage *msg)
{
    size_t len = 0;
    uint8_t *buf = pack_message(msg, &len);
    if (!buf)
        return -CWS_E_NOMEM;
    int r = cws_gc_call_send(s->call, buf, len);
    free(buf);
    return r;
}

int cwsd_stream_close_send(struct cwsd_stream *s)
{
    return cws_gc_call_close_send(s->call);
}

void cwsd_stream_pause(struct cwsd_stream *s, bool paused)
{
    cws_gc_call_pause_recv(s->call, paused);
}

void cwsd_stream_cancel(struct cwsd_stream *s)
{
    if (!s)
        return;
    cws_gc_call_cancel(s->call);
    stream_free(s);
}

static void on_finish_timeout(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    cwsd_stream_cancel(ud);
}

void cwsd_stream_finish(struct cwsd_stream *s)
{
    struct timeval tv = {FINISH_GRACE_MS / 1000, (FINISH_GRACE_MS % 1000) * 1000};
    if (!s)
        return;
    memset(&s->ev, 0, sizeof(s->ev));
    s->finish_timer = evtimer_new(s->base, on_finish_timeout, s);
    if (!s->finish_timer || evtimer_add(s->finish_timer, &tv) < 0) {
        cwsd_stream_cancel(s);
        return;
    }
    cws_gc_call_close_send(s->call); /* fails harmlessly when already half-closed */
    cws_gc_call_pause_recv(s->call, false);
}
