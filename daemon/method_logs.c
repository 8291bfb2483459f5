/* logs: a sandbox's output as logs.data notifications. A follow stream survives the backend
 * connection failing: it resumes with the log session id and offset (the Python SDK's
 * rules: at most 3 attempts in a row, 0.5 s, 1 s, 2 s apart, counted anew after data). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_rpc.h"
#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "daemon.h"
#include "log.h"
#include "rpc_encode.h"
#include "rpc_params.h"

#define RESUME_ATTEMPTS  3
#define FIRST_BACKOFF_MS 500

typedef Coreweave__Sandbox__V1__StreamLogsRequest StreamLogsRequest;
typedef Coreweave__Sandbox__V1__LogEntry LogEntry;

struct lop {
    struct cwsd *d;
    struct cwsd_call *call;
    struct cwsd_stream *stream;
    struct event *retry;
    char *id;
    bool follow, timestamps, paused;
    int64_t tail_lines;
    int64_t since_ms;
    char *session;   /* log session id, once the backend gave one */
    uint64_t offset; /* next_log_offset of the last entry */
    bool delivered;  /* data went to the client (a fresh restart must not repeat it) */
    int attempts;
};

static void lop_free(struct lop *l)
{
    cwsd_stream_cancel(l->stream);
    if (l->retry)
        event_free(l->retry);
    free(l->id);
    free(l->session);
    free(l);
}

static void lop_fail(struct lop *l, const struct cws_error *err)
{
    if (l->call)
        cwsd_call_fail(l->call, err);
    lop_free(l);
}

static void lop_finish(struct lop *l)
{
    if (l->call)
        cwsd_call_reply(l->call, NULL, NULL);
    lop_free(l);
}

struct data_args {
    uint32_t id;
    const LogEntry *e;
    bool timestamps;
};

static int pack_data(msgpack_packer *pk, void *ud)
{
    const struct data_args *a = ud;
    bool ts = a->timestamps && a->e->timestamp;
    if (msgpack_pack_map(pk, 2 + ts) || cws_rpc_pack_kv_uint(pk, "id", a->id) ||
        cws_rpc_pack_kv_bin(pk, "data", a->e->data.data, a->e->data.len))
        return -CWS_E_NOMEM;
    if (ts &&
        cws_rpc_pack_kv_int(pk, "time_ms",
                            a->e->timestamp->seconds * 1000 + a->e->timestamp->nanos / 1000000))
        return -CWS_E_NOMEM;
    return 0;
}

static void start_stream(struct lop *l, bool resume);

static void on_retry(evutil_socket_t fd, short what, void *ud)
{
    struct lop *l = ud;
    (void)fd;
    (void)what;
    start_stream(l, l->session != NULL);
}

/* Try again after a backoff; false when the attempts are used up. */
static bool schedule_retry(struct lop *l)
{
    if (!l->follow || l->attempts >= RESUME_ATTEMPTS)
        return false;
    int64_t ms = (int64_t)FIRST_BACKOFF_MS << l->attempts;
    l->attempts++;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (!l->retry)
        l->retry = evtimer_new(l->d->base, on_retry, l);
    return l->retry && evtimer_add(l->retry, &tv) == 0;
}

/* Forget the session: the next stream starts fresh from now, without repeating lines. */
static void drop_session(struct lop *l)
{
    free(l->session);
    l->session = NULL;
    l->offset = 0;
    if (l->delivered) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        l->since_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        l->tail_lines = 0;
    }
}

static void on_in_band_error(struct lop *l, const Coreweave__Sandbox__V1__LogStreamError *e)
{
    struct cws_error err;
    static const char *const fresh[] = {"SESSION_NOT_FOUND", "REPLAY_GAP", "RUNNER_UNAVAILABLE",
                                        "RUNNER_DRAINING", NULL};
    cwsd_stream_cancel(l->stream);
    l->stream = NULL;
    for (const char *const *f = fresh; *f; f++) {
        if (strcmp(e->code, *f) == 0 && l->follow) {
            drop_session(l);
            if (schedule_retry(l))
                return;
        }
    }
    if (strcmp(e->code, "STREAM_INTERRUPTED") == 0 && schedule_retry(l))
        return;
    cws_error_set(&err, CWS_E_UNAVAILABLE, "log stream of %s failed: %s (%s)", l->id, e->message,
                  e->code);
    cws_error_set_reason(&err, e->code);
    lop_fail(l, &err);
}

static void on_entry(struct cwsd_stream *s, const ProtobufCMessage *m, void *ud)
{
    struct lop *l = ud;
    const LogEntry *e = (const LogEntry *)m;
    (void)s;
    if (!l->call)
        return;
    if (e->error && e->error->code[0]) {
        on_in_band_error(l, e->error);
        return;
    }
    if (e->log_session_id[0] && (!l->session || strcmp(l->session, e->log_session_id) != 0)) {
        free(l->session);
        l->session = strdup(e->log_session_id);
    }
    if (e->next_log_offset)
        l->offset = e->next_log_offset;
    if (e->data.len == 0)
        return;
    l->delivered = true;
    l->attempts = 0;
    struct data_args a = {l->call->msgid, e, l->timestamps};
    if (cwsd_call_notify(l->call, "logs.data", pack_data, &a) == 1 && !l->paused) {
        l->paused = true;
        cwsd_stream_pause(l->stream, true);
    }
}

static bool resumable(const struct cws_error *err)
{
    return err->code == CWS_E_UNAVAILABLE || err->code == CWS_E_INTERNAL ||
           err->code == CWS_E_UNKNOWN;
}

static void on_done(struct cwsd_stream *s, const struct cws_error *err, void *ud)
{
    struct lop *l = ud;
    (void)s;
    l->stream = NULL;
    if (!err) {
        lop_finish(l);
        return;
    }
    if (resumable(err) && schedule_retry(l)) {
        cws_log(CWS_LOG_INFO, "log stream of %s lost (%s): resuming", l->id, err->message);
        return;
    }
    lop_fail(l, err);
}

static const struct cwsd_stream_events events = {
    .on_message = on_entry,
    .on_done = on_done,
};

static void start_stream(struct lop *l, bool resume)
{
    StreamLogsRequest req = COREWEAVE__SANDBOX__V1__STREAM_LOGS_REQUEST__INIT;
    Google__Protobuf__Timestamp since = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    struct cws_error err;
    req.sandbox_id = l->id;
    req.follow = l->follow;
    if (resume) {
        req.resume_log_session_id = l->session;
        req.resume_log_offset = l->offset;
    } else {
        req.tail_lines = (int32_t)l->tail_lines;
        req.timestamps = l->timestamps;
        if (l->since_ms > 0) {
            since.seconds = l->since_ms / 1000;
            since.nanos = (int32_t)(l->since_ms % 1000) * 1000000;
            req.since_time = &since;
        }
    }
    l->paused = false;
    if (cwsd_rpc_stream(l->d, "StreamLogs", &req.base,
                        &coreweave__sandbox__v1__log_entry__descriptor, 0, &events, l, &l->stream,
                        &err) < 0) {
        l->stream = NULL;
        lop_fail(l, &err);
        return;
    }
    cwsd_stream_close_send(l->stream);
}

static void on_writable(struct cwsd_call *call, void *ud)
{
    struct lop *l = ud;
    (void)call;
    if (l->paused && l->stream) {
        l->paused = false;
        cwsd_stream_pause(l->stream, false);
    }
}

static void on_cancelled(struct cwsd_call *call, void *ud)
{
    struct lop *l = ud;
    (void)call;
    l->call = NULL;
    lop_free(l);
}

void cwsd_method_logs(struct cwsd_call *call, const msgpack_object *params)
{
    struct cws_error err;
    struct lop *l = calloc(1, sizeof(*l));
    if (!l) {
        cwsd_call_failf(call, CWS_E_NOMEM, "out of memory");
        return;
    }
    l->d = call->client->d;
    l->call = call;
    call->on_cancel = on_cancelled;
    call->on_writable = on_writable;
    call->ud = l;
    if (cws_rpc_required(cws_rpc_param_str(params, "id", &l->id, &err), "id", &err) < 0 ||
        cws_rpc_param_bool(params, "follow", &l->follow, &err) < 0 ||
        cws_rpc_param_bool(params, "timestamps", &l->timestamps, &err) < 0 ||
        cws_rpc_param_int(params, "tail_lines", 0, INT32_MAX, &l->tail_lines, &err) < 0 ||
        cws_rpc_param_int(params, "since_ms", 0, INT64_MAX, &l->since_ms, &err) < 0) {
        lop_fail(l, &err);
        return;
    }
    start_stream(l, false);
}
