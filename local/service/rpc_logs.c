/* StreamLogs: what the main command wrote, with tail_lines, since_time, timestamps and follow.
 * Every entry carries the sandbox's stable log_session_id and the cumulative offset after it,
 * so a client can resume where it stopped; an unknown session is answered in-band with
 * SESSION_NOT_FOUND. A slow reader stops the reading of the log, nothing piles up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "service.h"

typedef Coreweave__Sandbox__V1__StreamLogsRequest StreamLogsRequest;
typedef Coreweave__Sandbox__V1__LogEntry LogEntry;

struct lg {
    struct svc *svc;
    struct cws_gcall *call;
    StreamLogsRequest *req;
    struct lsb *sb;
    struct cws_rt_log_watch *watch;
    struct lsb_end_listener *end;
    char session[80];
    uint64_t next;    /* offset of the next byte to send */
    int64_t since_ns; /* 0: no lower bound */
    bool blocked;     /* the call's queue is full: wait for on_writable */
    bool ended;       /* the sandbox has ended: finish once everything is sent */
};

static void lg_free(struct lg *g)
{
    cws_rt_log_unwatch(g->watch);
    lsb_on_end_cancel(g->end);
    if (g->sb)
        g->sb->busy--;
    if (g->req)
        coreweave__sandbox__v1__stream_logs_request__free_unpacked(g->req, NULL);
    free(g);
}

static void finish_ok(struct lg *g)
{
    cws_gcall_finish(g->call, NULL);
    lg_free(g);
}

/* Answer in-band: an error entry is the last message, then OK. */
static void finish_in_band(struct lg *g, const char *code, const char *message)
{
    LogEntry e = COREWEAVE__SANDBOX__V1__LOG_ENTRY__INIT;
    Coreweave__Sandbox__V1__LogStreamError le = COREWEAVE__SANDBOX__V1__LOG_STREAM_ERROR__INIT;
    le.code = (char *)code;
    le.message = (char *)message;
    e.error = &le;
    e.log_session_id = g->session;
    e.next_log_offset = g->next;
    cws_gcall_send_pb(g->call, &e.base);
    finish_ok(g);
}

/* ---- reading ---- */

struct send_state {
    struct lg *g;
    int r;
};

static int send_entry(const struct cws_rt_log_entry *entry, void *ud)
{
    struct send_state *s = ud;
    struct lg *g = s->g;
    uint64_t end = entry->offset + entry->len;
    if (end <= g->next)
        return 0;
    size_t skip = g->next > entry->offset ? (size_t)(g->next - entry->offset) : 0;
    g->next = end;
    if (g->since_ns && entry->time_ns < g->since_ns)
        return 0;
    LogEntry e = COREWEAVE__SANDBOX__V1__LOG_ENTRY__INIT;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    e.data.data = (uint8_t *)entry->data + skip;
    e.data.len = entry->len - skip;
    e.log_session_id = g->session;
    e.next_log_offset = end;
    if (g->req->timestamps) {
        ts.seconds = entry->time_ns / 1000000000;
        ts.nanos = (int32_t)(entry->time_ns % 1000000000);
        e.timestamp = &ts;
    }
    s->r = cws_gcall_send_pb(g->call, &e.base);
    return s->r == 1 || s->r < 0; /* stop reading while the reader is behind */
}

/* Send what is recorded from g->next on; finish when done and nothing more will come. */
static void pump(struct lg *g)
{
    struct send_state s = {g, 0};
    struct cws_error err;
    uint64_t next = g->next;
    /* From 0: the runtime hands out whole entries that start at or after the offset, and
     * g->next may fall inside one (tail_lines, resume); send_entry() skips what was sent. */
    if (cws_rt_log_read(g->svc->rt, g->sb->id, 0, send_entry, &s, &next, &err) < 0 &&
        err.code != CWS_E_NOT_FOUND) {
        svc_fail_error(g->call, &err, NULL);
        lg_free(g);
        return;
    }
    if (s.r < 0) {
        svc_fail(g->call, GRPC_INTERNAL, NULL, NULL, "cannot send a log entry");
        lg_free(g);
        return;
    }
    if (s.r == 1) {
        g->blocked = true;
        return;
    }
    if (!g->req->follow || g->ended)
        finish_ok(g);
}

/* Offset where the last n lines start (a final line without newline counts as one). */
struct tail_state {
    uint64_t *starts; /* ring of the last n+1 line starts */
    size_t n, count;
    uint64_t total;
    bool last_was_newline;
};

static int tail_scan(const struct cws_rt_log_entry *entry, void *ud)
{
    struct tail_state *t = ud;
    for (size_t i = 0; i < entry->len; i++) {
        if (t->last_was_newline) {
            t->starts[t->count % (t->n + 1)] = entry->offset + i;
            t->count++;
        }
        t->last_was_newline = entry->data[i] == '\n';
    }
    t->total = entry->offset + entry->len;
    return 0;
}

static int tail_offset(struct lg *g, size_t lines, uint64_t *ret, struct cws_error *err)
{
    struct tail_state t = {.n = lines, .last_was_newline = true};
    uint64_t next;
    t.starts = calloc(lines + 1, sizeof(*t.starts));
    if (!t.starts)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    int r = cws_rt_log_read(g->svc->rt, g->sb->id, 0, tail_scan, &t, &next, err);
    if (r < 0 && err->code == CWS_E_NOT_FOUND)
        r = 0;
    if (r == 0)
        *ret = t.count <= lines ? 0 : t.starts[(t.count - lines) % (lines + 1)];
    free(t.starts);
    return r;
}

/* ---- following ---- */

static void on_log_grew(void *ud)
{
    struct lg *g = ud;
    if (!g->blocked)
        pump(g);
}

static void on_sandbox_end(struct lsb *sb, void *ud)
{
    struct lg *g = ud;
    (void)sb;
    g->end = NULL;
    g->ended = true;
    cws_rt_log_unwatch(g->watch);
    g->watch = NULL;
    if (!g->blocked)
        pump(g);
}

static void on_writable(struct cws_gcall *call, void *ud)
{
    struct lg *g = ud;
    (void)call;
    g->blocked = false;
    pump(g);
}

static int start_following(struct lg *g, struct cws_error *err)
{
    if (!g->sb->rt)
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "sandbox %s is not running",
                             g->sb->id);
    if (cws_rt_log_watch(g->sb->rt, on_log_grew, g, &g->watch, err) < 0) {
        g->watch = NULL;
        return -(int)err->code;
    }
    g->end = lsb_on_end(g->sb, on_sandbox_end, g);
    if (!g->end)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return 0;
}

/* ---- the request ---- */

static bool resumes(const StreamLogsRequest *req)
{
    return req->resume_log_session_id[0] != '\0';
}

/* Check the request against the sandbox's state; false after answering. */
static bool admissible(struct lg *g)
{
    const StreamLogsRequest *req = g->req;
    if (resumes(req) && (req->tail_lines || req->since_time || req->timestamps || !req->follow)) {
        svc_fail(g->call, GRPC_INVALID_ARGUMENT, NULL, NULL,
                 "resuming a log stream needs follow and no tail_lines, since_time or timestamps");
        return false;
    }
    if (req->tail_lines < 0) {
        svc_fail(g->call, GRPC_INVALID_ARGUMENT, NULL, NULL, "tail_lines must not be negative");
        return false;
    }
    bool stopping =
        lsb_is_terminal(g->sb) || g->sb->state == COREWEAVE__SANDBOX__V1__STATE__STATE_TERMINATING;
    if (req->follow && stopping) {
        svc_fail_not_running(g->call, g->sb);
        return false;
    }
    return true;
}

static void begin(struct lg *g)
{
    struct cws_error err;
    const StreamLogsRequest *req = g->req;

    snprintf(g->session, sizeof(g->session), "log-%s", g->sb->id);
    g->since_ns =
        req->since_time ? req->since_time->seconds * 1000000000 + req->since_time->nanos : 0;
    if (resumes(req)) {
        if (strcmp(req->resume_log_session_id, g->session) != 0) {
            finish_in_band(g, "SESSION_NOT_FOUND", "no log session with that id");
            return;
        }
        g->next = req->resume_log_offset;
    } else if (req->tail_lines > 0 && tail_offset(g, (size_t)req->tail_lines, &g->next, &err) < 0) {
        svc_fail_error(g->call, &err, NULL);
        lg_free(g);
        return;
    }
    if (req->follow && start_following(g, &err) < 0) {
        svc_fail_error(g->call, &err, NULL);
        lg_free(g);
        return;
    }
    pump(g);
}

static void on_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    struct lg *g = ud;
    g->req = coreweave__sandbox__v1__stream_logs_request__unpack(NULL, len, data);
    if (!g->req) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL, "malformed StreamLogsRequest message");
        lg_free(g);
    }
}

static void on_half_close(struct cws_gcall *call, void *ud)
{
    struct lg *g = ud;
    g->sb = svc_sandbox_or_fail(g->svc, call, g->req->sandbox_id);
    if (!g->sb) {
        lg_free(g);
        return;
    }
    g->sb->busy++;
    if (!admissible(g)) {
        lg_free(g);
        return;
    }
    begin(g);
}

static void on_cancel(struct cws_gcall *call, enum cws_errcode why, void *ud)
{
    (void)call;
    (void)why;
    lg_free(ud);
}

int svc_start_stream_logs(struct cws_gcall *call, void *server_ud,
                          struct cws_gcall_handlers *ret_handlers, void **ret_call_ud,
                          struct cws_gstatus *ret_status)
{
    (void)ret_status;
    struct lg *g = calloc(1, sizeof(*g));
    if (!g)
        return -CWS_E_NOMEM;
    g->svc = server_ud;
    g->call = call;
    ret_handlers->on_message = on_message;
    ret_handlers->on_half_close = on_half_close;
    ret_handlers->on_cancel = on_cancel;
    ret_handlers->on_writable = on_writable;
    *ret_call_ud = g;
    return 0;
}
