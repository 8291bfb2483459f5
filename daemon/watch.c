/* Shared status polling; see watch.h. Transient backend errors (UNAVAILABLE,
 * DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) keep the poll going until the waiters' deadlines;
 * anything else ends the waits with that error. */
#include <stdlib.h>
#include <string.h>

#include "backend_rpc.h"
#include "daemon.h"
#include "log.h"
#include "watch.h"

#define POLL_FIRST_MS 200
#define POLL_MAX_MS   2000
#define POLL_RPC_MS   15000
#define STATE(x)      COREWEAVE__SANDBOX__V1__STATE__STATE_##x

struct cwsd_watch;

struct cwsd_waiter {
    struct cwsd_watch *w;
    enum cwsd_wait_until until;
    int64_t deadline_ms;
    cwsd_wait_fn fn;
    void *ud;
    struct cwsd_waiter *next;
};

struct cwsd_watch {
    struct cwsd *d;
    char *id;
    struct event *timer;
    int64_t interval_ms;
    int busy; /* a poll in flight or waiters being finished: not freed meanwhile */
    struct cwsd_waiter *waiters;
    struct cwsd_watch *next;
};

static struct cwsd_watch *watches; /* one daemon per process */

bool cwsd_state_is_terminal(Coreweave__Sandbox__V1__State s)
{
    return s == STATE(COMPLETED) || s == STATE(FAILED) || s == STATE(TERMINATED);
}

size_t cwsd_watch_count(const struct cwsd *d)
{
    size_t n = 0;
    for (struct cwsd_watch *w = watches; w; w = w->next)
        n += w->d == d;
    return n;
}

/* Free a watch nobody waits on and nothing is using. */
static void maybe_free(struct cwsd_watch *w)
{
    if (w->busy > 0 || w->waiters)
        return;
    for (struct cwsd_watch **p = &watches; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    event_free(w->timer);
    free(w->id);
    free(w);
}

static void unlink_waiter(struct cwsd_waiter *x)
{
    for (struct cwsd_waiter **p = &x->w->waiters; *p; p = &(*p)->next) {
        if (*p == x) {
            *p = x->next;
            return;
        }
    }
}

/* Finish one waiter: forget it, then call it (it may add or cancel others meanwhile). */
static void finish(struct cwsd_waiter *x, const Coreweave__Sandbox__V1__Sandbox *sb,
                   const struct cws_error *err)
{
    cwsd_wait_fn fn = x->fn;
    void *ud = x->ud;
    unlink_waiter(x);
    free(x);
    fn(ud, sb, err);
}

/* What a state means for a waiter: 1 done, 0 keep waiting, -1 failed (err filled). */
static int judge(const struct cwsd_waiter *x, const Coreweave__Sandbox__V1__Sandbox *sb,
                 struct cws_error *err)
{
    Coreweave__Sandbox__V1__State s = sb->status ? sb->status->state : STATE(UNSPECIFIED);
    if (x->until == CWSD_UNTIL_TERMINAL)
        return cwsd_state_is_terminal(s) ? 1 : 0;
    if (s == STATE(RUNNING) || s == STATE(PAUSED) || s == STATE(COMPLETED))
        return 1;
    if (s == STATE(FAILED)) {
        cws_error_set(err, CWS_E_SANDBOX_FAILED, "sandbox %s failed: %s", sb->sandbox_id,
                      sb->status->state_reason);
        return -1;
    }
    if (s == STATE(TERMINATED) || s == STATE(TERMINATING)) {
        cws_error_set(err, CWS_E_SANDBOX_TERMINATED, "sandbox %s was terminated", sb->sandbox_id);
        return -1;
    }
    return 0;
}

static void schedule(struct cwsd_watch *w)
{
    struct timeval tv = {w->interval_ms / 1000, (w->interval_ms % 1000) * 1000};
    event_add(w->timer, &tv);
    w->interval_ms = w->interval_ms * 3 / 2;
    if (w->interval_ms > POLL_MAX_MS)
        w->interval_ms = POLL_MAX_MS;
}

static bool transient(const struct cws_error *err)
{
    return err->code == CWS_E_UNAVAILABLE || err->code == CWS_E_DEADLINE_EXCEEDED ||
           err->code == CWS_E_RESOURCE_EXHAUSTED;
}

/* The first waiter this poll result (or the clock) settles, with its outcome. */
static struct cwsd_waiter *next_settled(struct cwsd_watch *w,
                                        const Coreweave__Sandbox__V1__Sandbox *sb,
                                        const struct cws_error *poll_err, struct cws_error *out,
                                        bool *ret_ok)
{
    int64_t now = cwsd_monotonic_ms();
    for (struct cwsd_waiter *x = w->waiters; x; x = x->next) {
        if (poll_err && !transient(poll_err)) {
            *out = *poll_err;
            *ret_ok = false;
            return x;
        }
        int r = sb ? judge(x, sb, out) : 0;
        if (r != 0) {
            *ret_ok = r > 0;
            return x;
        }
        if (now >= x->deadline_ms) {
            cws_error_set(out, CWS_E_DEADLINE_EXCEEDED,
                          "sandbox %s: timed out waiting for it to %s", w->id,
                          x->until == CWSD_UNTIL_RUNNING ? "run" : "end");
            *ret_ok = false;
            return x;
        }
    }
    return NULL;
}

static void settle(struct cwsd_watch *w, const Coreweave__Sandbox__V1__Sandbox *sb,
                   const struct cws_error *poll_err)
{
    struct cwsd_waiter *x;
    struct cws_error e;
    bool ok = false;
    w->busy++;
    while ((x = next_settled(w, sb, poll_err, &e, &ok)))
        finish(x, sb, ok ? NULL : &e);
    w->busy--;
    if (w->waiters)
        schedule(w);
    else
        maybe_free(w);
}

static void on_polled(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct cwsd_watch *w = ud;
    w->busy--;
    settle(w, (const Coreweave__Sandbox__V1__Sandbox *)resp, err);
}

static void poll_now(struct cwsd_watch *w)
{
    Coreweave__Sandbox__V1__GetSandboxRequest req =
        COREWEAVE__SANDBOX__V1__GET_SANDBOX_REQUEST__INIT;
    struct cws_error err;
    req.sandbox_id = w->id;
    w->busy++;
    if (cwsd_rpc_unary(w->d, "GetSandbox", &req.base, &coreweave__sandbox__v1__sandbox__descriptor,
                       POLL_RPC_MS, on_polled, w, &err) < 0) {
        w->busy--;
        cws_log(CWS_LOG_WARN, "cannot poll sandbox %s: %s", w->id, err.message);
        settle(w, NULL, NULL);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    poll_now(ud);
}

static struct cwsd_watch *find_or_make(struct cwsd *d, const char *id)
{
    for (struct cwsd_watch *w = watches; w; w = w->next)
        if (w->d == d && strcmp(w->id, id) == 0)
            return w;
    struct cwsd_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->d = d;
    w->id = strdup(id);
    w->timer = evtimer_new(d->base, on_timer, w);
    w->interval_ms = POLL_FIRST_MS;
    if (!w->id || !w->timer) {
        if (w->timer)
            event_free(w->timer);
        free(w->id);
        free(w);
        return NULL;
    }
    w->next = watches;
    watches = w;
    /* Poll at once: the first answer often settles the wait. */
    struct timeval zero = {0, 0};
    event_add(w->timer, &zero);
    return w;
}

struct cwsd_waiter *cwsd_wait(struct cwsd *d, const char *id, enum cwsd_wait_until until,
                              int64_t timeout_ms, cwsd_wait_fn fn, void *ud, struct cws_error *err)
{
    struct cwsd_watch *w = find_or_make(d, id);
    struct cwsd_waiter *x = w ? calloc(1, sizeof(*x)) : NULL;
    if (!x) {
        if (w)
            maybe_free(w);
        cws_error_set(err, CWS_E_NOMEM, NULL);
        return NULL;
    }
    x->w = w;
    x->until = until;
    x->deadline_ms = cwsd_monotonic_ms() + timeout_ms;
    x->fn = fn;
    x->ud = ud;
    x->next = w->waiters;
    w->waiters = x;
    return x;
}

void cwsd_wait_cancel(struct cwsd_waiter *x)
{
    if (!x)
        return;
    struct cwsd_watch *w = x->w;
    unlink_waiter(x);
    free(x);
    maybe_free(w);
}

void cwsd_watch_shutdown(struct cwsd *d)
{
    struct cws_error err;
    cws_error_set(&err, CWS_E_UNAVAILABLE, "the daemon is shutting down");
    struct cwsd_watch *w = watches, *next;
    for (; w; w = next) {
        next = w->next;
        if (w->d != d)
            continue;
        w->busy++;
        while (w->waiters)
            finish(w->waiters, NULL, &err);
        w->busy--;
        maybe_free(w);
    }
}
