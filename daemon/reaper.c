/* Orphan cleanup. A `client` sandbox belongs to the connection that created it: when that
 * process goes away (exit, crash, SIGKILL) the sandbox is stopped after orphan_grace_s unless
 * it was adopted meanwhile. On SIGTERM (logout) every `client` and `session` sandbox is
 * stopped, in parallel, within a deadline; `detached` ones are left running. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "daemon.h"
#include "log.h"
#include "rpc_encode.h"
#include "reaper.h"
#include "sandbox_stop.h"
#include "sandbox_table.h"
#include "session.h"

/* A short grace: the owner is gone, nobody waits for a clean exit. */
#define REAP_GRACE_S 1
/* Past the grace: time for the backend to kill and report the end. */
#define REAP_SLACK_MS 15000
#define REPORT_MAX    100

struct cwsd_orphan {
    struct cwsd *d;
    char *id;
    char *why;
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

static void remember(const char *id, const char *why)
{
    struct reap_record *r = &report[report_next];
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->why, sizeof(r->why), "%s", why);
    r->reaped_ms = cwsd_wall_ms();
    report_next = (report_next + 1) % REPORT_MAX;
    if (report_len < REPORT_MAX)
        report_len++;
}

/* A stop answered: it counts as done once the sandbox has ended, so that the daemon exits
 * (at logout) only when nothing it owned still runs. */
static void on_reaped(void *ud, const char *id, const struct cws_error *err)
{
    (void)ud;
    if (err)
        cwsd_log_about(CWS_LOG_WARN, id, NULL, 0, "cannot stop sandbox %s: %s", id, err->message);
    stops_in_flight--;
    if (cleanup_base && stops_in_flight == 0)
        event_base_loopbreak(cleanup_base);
}

/* Send the stop; failures are only logged. */
static void stop_sandbox(struct cwsd *d, const char *id, const char *why)
{
    struct cwsd_sandbox *e = cwsd_sandbox_find(d, id);
    cwsd_log_about(CWS_LOG_INFO, id, e ? e->session : NULL, e ? e->client_pid : 0,
                   "stopping sandbox %s: %s", id, why);
    remember(id, why);
    stops_in_flight++;
    cwsd_stop_until_ended(d, id, REAP_GRACE_S, REAP_SLACK_MS, on_reaped, NULL);
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
    free(o->why);
    free(o);
}

bool cwsd_reaper_unowned(struct cwsd *d, const struct cwsd_sandbox *e)
{
    switch (e->owner) {
    case CWSD_OWNER_CLIENT:
        return !cwsd_client_by_id(d, e->client_id);
    case CWSD_OWNER_SESSION:
        return !e->session || !cwsd_session_find(d, e->session);
    default:
        return false;
    }
}

static const char *orphan_reason(const struct cwsd_sandbox *e)
{
    if (e->owner == CWSD_OWNER_SESSION)
        return "its session is gone";
    return e->client_id ? "its client went away" : "its client is gone (daemon restarted)";
}

/* The grace passed: stop it unless someone adopted it meanwhile (checked again now). */
static void on_grace_over(evutil_socket_t fd, short what, void *ud)
{
    struct cwsd_orphan *o = ud;
    (void)fd;
    (void)what;
    struct cwsd_sandbox *e = cwsd_sandbox_find(o->d, o->id);
    if (e && cwsd_reaper_unowned(o->d, e) && !cwsd_sandbox_known_terminal(e))
        stop_sandbox(o->d, o->id, o->why);
    orphan_free(o);
}

static bool orphan_pending(const char *id)
{
    for (struct cwsd_orphan *o = orphans; o; o = o->next)
        if (strcmp(o->id, id) == 0)
            return true;
    return false;
}

void cwsd_reaper_orphan(struct cwsd *d, const struct cwsd_sandbox *e)
{
    if (d->stopping || orphan_pending(e->id) || cwsd_sandbox_known_terminal(e))
        return;
    const char *why = orphan_reason(e);
    struct cwsd_orphan *o = calloc(1, sizeof(*o));
    if (!o || !(o->id = strdup(e->id)) || !(o->why = strdup(why))) {
        if (o)
            free(o->id);
        free(o);
        stop_sandbox(d, e->id, why);
        return;
    }
    o->d = d;
    o->timer = evtimer_new(d->base, on_grace_over, o);
    struct timeval tv = {d->cfg.orphan_grace_s, 0};
    o->next = orphans;
    orphans = o;
    if (!o->timer || evtimer_add(o->timer, &tv) < 0) {
        stop_sandbox(d, e->id, why);
        orphan_free(o);
        return;
    }
    cwsd_log_about(CWS_LOG_INFO, e->id, e->session, e->client_pid,
                   "sandbox %s is an orphan (%s): stopped in %lld s unless adopted", e->id, why,
                   (long long)d->cfg.orphan_grace_s);
}

void cwsd_reaper_client_gone(struct cwsd *d, uint64_t client_id)
{
    for (struct cwsd_sandbox *e = d->sandboxes; e; e = e->next)
        if (e->owner == CWSD_OWNER_CLIENT && e->client_id == client_id)
            cwsd_reaper_orphan(d, e);
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
        if (e->owner == CWSD_OWNER_DETACHED || cwsd_sandbox_known_terminal(e))
            continue;
        stop_sandbox(d, e->id, why);
    }
    /* Their sandboxes are being stopped: the sessions end with them. */
    while (d->sessions)
        cwsd_session_remove(d->sessions);
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
