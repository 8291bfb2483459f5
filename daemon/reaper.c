/* Orphan cleanup. A `client` sandbox belongs to the connection that created it: when that
 * process goes away (exit, crash, SIGKILL) the sandbox is stopped after orphan_grace_s unless
 * it was adopted meanwhile. On SIGTERM (logout) every `client` and `session` sandbox is
 * stopped, in parallel, within a deadline; `detached` ones are left running. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_rpc.h"
#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "daemon.h"
#include "log.h"
#include "rpc_encode.h"
#include "reaper.h"
#include "sandbox_table.h"
#include "watch.h"

/* A short grace: the owner is gone, nobody waits for a clean exit. */
#define REAP_GRACE_S 1
#define REAP_CALL_MS 15000
#define REPORT_MAX   100

struct cwsd_orphan {
    struct cwsd *d;
    char *id;
    uint64_t client_id;
    struct event *timer;
    struct cwsd_orphan *next;
};

static struct cwsd_orphan *orphans; /* waiting for their grace to pass */

struct reap_record {
    char id[64];
    int64_t reaped_ms;
    char why[96];
};

static struct reap_record report[REPORT_MAX];
static size_t report_len, report_next;
static int stops_in_flight;
static struct event_base *cleanup_base; /* set while cwsd_reaper_stop_all() waits */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void remember(const char *id, const char *why)
{
    struct reap_record *r = &report[report_next];
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->why, sizeof(r->why), "%s", why);
    r->reaped_ms = wall_ms();
    report_next = (report_next + 1) % REPORT_MAX;
    if (report_len < REPORT_MAX)
        report_len++;
}

static void on_stopped(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    char *id = ud;
    (void)resp;
    stops_in_flight--;
    if (err && err->code != CWS_E_NOT_FOUND)
        cws_log(CWS_LOG_WARN, "cannot stop sandbox %s: %s", id, err->message);
    free(id);
    if (cleanup_base && stops_in_flight == 0)
        event_base_loopbreak(cleanup_base);
}

/* Send the stop; the answer is only logged. */
static void stop_sandbox(struct cwsd *d, const char *id, const char *why)
{
    Coreweave__Sandbox__V1__DeleteSandboxRequest req =
        COREWEAVE__SANDBOX__V1__DELETE_SANDBOX_REQUEST__INIT;
    struct cws_error err;
    char *copy = strdup(id);
    if (!copy)
        return;
    req.sandbox_id = copy;
    req.grace_period_seconds = REAP_GRACE_S;
    req.allow_missing = true;
    cws_log(CWS_LOG_INFO, "stopping sandbox %s: %s", id, why);
    remember(id, why);
    stops_in_flight++;
    if (cwsd_rpc_unary(d, "DeleteSandbox", &req.base,
                       &coreweave__sandbox__v1__delete_sandbox_response__descriptor, REAP_CALL_MS,
                       on_stopped, copy, &err) < 0) {
        stops_in_flight--;
        cws_log(CWS_LOG_WARN, "cannot stop sandbox %s: %s", id, err.message);
        free(copy);
    }
}

static void orphan_free(struct cwsd_orphan *o)
{
    for (struct cwsd_orphan **p = &orphans; *p; p = &(*p)->next) {
        if (*p == o) {
            *p = o->next;
            break;
        }
    }
    if (o->timer)
        event_free(o->timer);
    free(o->id);
    free(o);
}

/* The grace passed: stop it unless someone adopted it meanwhile (checked again now). */
static void on_grace_over(evutil_socket_t fd, short what, void *ud)
{
    struct cwsd_orphan *o = ud;
    (void)fd;
    (void)what;
    struct cwsd_sandbox *e = cwsd_sandbox_find(o->d, o->id);
    if (e && e->owner && strcmp(e->owner, "client") == 0 && e->client_id == o->client_id)
        stop_sandbox(o->d, o->id, "its client went away");
    orphan_free(o);
}

static bool known_terminal(const struct cwsd_sandbox *e)
{
    Coreweave__Sandbox__V1__Sandbox *sb = cwsd_sandbox_cached(e);
    bool terminal = sb && sb->status && cwsd_state_is_terminal(sb->status->state);
    if (sb)
        coreweave__sandbox__v1__sandbox__free_unpacked(sb, NULL);
    return terminal;
}

void cwsd_reaper_client_gone(struct cwsd *d, uint64_t client_id)
{
    if (d->stopping)
        return; /* cwsd_reaper_stop_all() has stopped everything already */
    for (struct cwsd_sandbox *e = d->sandboxes; e; e = e->next) {
        if (!e->owner || strcmp(e->owner, "client") != 0 || e->client_id != client_id ||
            known_terminal(e))
            continue;
        struct cwsd_orphan *o = calloc(1, sizeof(*o));
        if (!o || !(o->id = strdup(e->id))) {
            free(o);
            stop_sandbox(d, e->id, "its client went away (no memory to wait)");
            continue;
        }
        o->d = d;
        o->client_id = client_id;
        o->timer = evtimer_new(d->base, on_grace_over, o);
        struct timeval tv = {d->cfg.orphan_grace_s, 0};
        o->next = orphans;
        orphans = o;
        if (!o->timer || evtimer_add(o->timer, &tv) < 0) {
            stop_sandbox(d, e->id, "its client went away");
            orphan_free(o);
            continue;
        }
        cws_log(CWS_LOG_DEBUG, "sandbox %s is an orphan: stopped in %lld s unless adopted", e->id,
                (long long)d->cfg.orphan_grace_s);
    }
}

size_t cwsd_reaper_pending(void)
{
    size_t n = 0;
    for (struct cwsd_orphan *o = orphans; o; o = o->next)
        n++;
    return n;
}

int cwsd_reaper_pack_report(msgpack_packer *pk)
{
    if (msgpack_pack_array(pk, report_len))
        return -CWS_E_NOMEM;
    for (size_t i = 0; i < report_len; i++) {
        const struct reap_record *r =
            &report[(report_next + REPORT_MAX - report_len + i) % REPORT_MAX];
        if (msgpack_pack_map(pk, 3) || cws_rpc_pack_kv_cstr(pk, "id", r->id) ||
            cws_rpc_pack_kv_int(pk, "reaped_ms", r->reaped_ms) ||
            cws_rpc_pack_kv_cstr(pk, "why", r->why))
            return -CWS_E_NOMEM;
    }
    return 0;
}

static void on_cleanup_deadline(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    cws_log(CWS_LOG_WARN, "cleanup deadline reached with %d stops unanswered", stops_in_flight);
    event_base_loopbreak(ud);
}

/* Send a stop for every live `client` and `session` sandbox; the answers are only logged. */
static void stop_owned(struct cwsd *d, const char *why)
{
    while (orphans)
        orphan_free(orphans);
    for (struct cwsd_sandbox *e = d->sandboxes; e; e = e->next) {
        if (!e->owner || strcmp(e->owner, "detached") == 0 || known_terminal(e))
            continue;
        stop_sandbox(d, e->id, why);
    }
}

void cwsd_reaper_logout(struct cwsd *d)
{
    if (d->stopping || !d->cfg.cleanup_on_logout)
        return;
    cws_log(CWS_LOG_INFO, "the user's last login session ended: stopping owned sandboxes");
    stop_owned(d, "the user logged out");
}

void cwsd_reaper_stop_all(struct cwsd *d, int64_t deadline_ms)
{
    d->stopping = true;
    stop_owned(d, "the daemon is stopping (logout)");
    if (stops_in_flight == 0)
        return;
    /* Run the loop until the last stop is answered (on_stopped breaks it) or the deadline. */
    struct event *deadline = evtimer_new(d->base, on_cleanup_deadline, d->base);
    struct timeval dl = {deadline_ms / 1000, (deadline_ms % 1000) * 1000};
    cleanup_base = d->base;
    if (deadline && evtimer_add(deadline, &dl) == 0)
        event_base_dispatch(d->base);
    cleanup_base = NULL;
    if (deadline)
        event_free(deadline);
    cws_log(CWS_LOG_INFO, "cleanup done (%d stops unanswered)", stops_in_flight);
}
