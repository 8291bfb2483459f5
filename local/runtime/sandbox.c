/* A sandbox's life as the server sees it once started (sandbox_start.c) or found again
 * (sandbox_attach.c): the handle, its events, stopping, the lifetime, the end.
 *
 * cwsandbox-init is watched through a pidfd (which works for a process that is not our
 * child, as after a restart). How a sandbox ended is read from its exit record, which init
 * writes when the main command exits and the server writes when it kills the sandbox:
 * whichever comes first wins. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dirfile.h"
#include "exit_record.h"
#include "init_proto.h"
#include "init_spec.h"
#include "log.h"
#include "logfile.h"
#include "rt_internal.h"

#define LIFETIME_GRACE_MS 5000

static void on_init_exit(evutil_socket_t fd, short what, void *arg);
static void finish_exit(struct cws_rt_sandbox *sb, int code, const char *reason);

/* ---- handles ---- */

static void on_exit_event(evutil_socket_t fd, short what, void *arg)
{
    struct cws_rt_sandbox *sb = arg;
    finish_exit(sb, sb->exit_code, sb->exit_reason);
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg);
static void on_lifetime(evutil_socket_t fd, short what, void *arg);
static void on_setup_deadline(evutil_socket_t fd, short what, void *arg);

int cws_rt_sandbox_alloc(struct cws_rt *rt, const char *id, int dirfd,
                         const struct cws_rt_sandbox_events *ev, void *ud,
                         struct cws_rt_sandbox **ret, struct cws_error *err)
{
    struct cws_rt_sandbox *sb = calloc(1, sizeof(*sb));
    if (!sb) {
        close(dirfd);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    sb->rt = rt;
    sb->dirfd = dirfd;
    sb->pidfd = sb->sync_fd = -1;
    sb->ev = *ev;
    sb->ud = ud;
    sb->id = strdup(id);
    sb->exit_ev = event_new(rt->base, -1, 0, on_exit_event, sb);
    sb->kill_timer = evtimer_new(rt->base, on_kill_timer, sb);
    sb->lifetime_timer = evtimer_new(rt->base, on_lifetime, sb);
    sb->setup_timer = evtimer_new(rt->base, on_setup_deadline, sb);
    sb->next = rt->sandboxes;
    if (sb->next)
        sb->next->pprev = &sb->next;
    sb->pprev = &rt->sandboxes;
    rt->sandboxes = sb;
    if (!sb->id || !sb->exit_ev || !sb->kill_timer || !sb->lifetime_timer || !sb->setup_timer) {
        cws_rt_sandbox_free_handle(sb);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    *ret = sb;
    return 0;
}

static void free_event(struct event **ev)
{
    if (*ev)
        event_free(*ev);
    *ev = NULL;
}

void cws_rt_sandbox_close_sync(struct cws_rt_sandbox *sb)
{
    free_event(&sb->sync_ev);
    if (sb->sync_fd >= 0)
        close(sb->sync_fd);
    sb->sync_fd = -1;
}

void cws_rt_sandbox_free_handle(struct cws_rt_sandbox *sb)
{
    *sb->pprev = sb->next;
    if (sb->next)
        sb->next->pprev = sb->pprev;
    /* A sandbox still in setup cannot finish without us (init waits for "go"): its
     * network goes with it. Otherwise slirp4netns keeps serving it. */
    if (sb->state == SB_STARTING)
        cws_net_stop(sb->net);
    else
        cws_net_release(sb->net);
    cws_rt_sandbox_close_sync(sb);
    free_event(&sb->pidfd_ev);
    free_event(&sb->exit_ev);
    free_event(&sb->kill_timer);
    free_event(&sb->lifetime_timer);
    free_event(&sb->setup_timer);
    if (sb->pidfd >= 0)
        close(sb->pidfd);
    if (sb->dirfd >= 0)
        close(sb->dirfd);
    for (size_t i = 0; i < sb->n_ports; i++)
        free(sb->ports[i].url);
    free(sb->ports);
    free(sb->setup_failure);
    free(sb->exit_reason);
    free(sb->id);
    free(sb);
}

void cws_rt_sandbox_release(struct cws_rt_sandbox *sb)
{
    if (!sb || sb->released)
        return;
    sb->released = true;
    cws_rt_log_watch_sandbox_released(sb->rt, sb);
    if (sb->holds == 0)
        cws_rt_sandbox_free_handle(sb);
}

void cws_rt_sandbox_release_all(struct cws_rt *rt)
{
    while (rt->sandboxes) {
        struct cws_rt_sandbox *sb = rt->sandboxes;
        sb->holds = 0;
        sb->released = false;
        cws_rt_sandbox_release(sb);
    }
}

/* ---- events to the user ---- */

void cws_rt_sandbox_emit_running(struct cws_rt_sandbox *sb)
{
    if (sb->released || !sb->ev.on_running)
        return;
    cws_rt_sb_hold(sb);
    sb->ev.on_running(sb, sb->ud);
    cws_rt_sb_drop(sb);
}

/* The last event: nothing of sb is touched after on_exit returns. */
static void emit_exit(struct cws_rt_sandbox *sb, int code, const char *reason)
{
    if (sb->released || !sb->ev.on_exit)
        return;
    cws_rt_sb_hold(sb);
    sb->ev.on_exit(sb, code, reason, sb->ud);
    cws_rt_sb_drop(sb);
}

/* ---- ending ---- */

char *cws_rt_sandbox_stop_reason(int dirfd)
{
    char *data = NULL;
    size_t len = 0;
    if (cws_dirfile_read(dirfd, CWS_SB_STOP, CWS_EXIT_REASON_MAX, &data, &len, NULL) < 0)
        return NULL;
    return data;
}

static void describe_status(const siginfo_t *si, char *buf, size_t size)
{
    if (si->si_pid == 0)
        snprintf(buf, size, "cwsandbox-init ended unexpectedly");
    else if (si->si_code == CLD_EXITED)
        snprintf(buf, size, "cwsandbox-init ended unexpectedly (exit status %d)", si->si_status);
    else
        snprintf(buf, size, "cwsandbox-init ended unexpectedly (signal %d)", si->si_status);
}

/* What ended the sandbox, from the exit record or, failing that, from what we saw. */
void cws_rt_sandbox_settle_exit(struct cws_rt_sandbox *sb, const siginfo_t *si,
                                struct cws_exit_record *rec)
{
    if (cws_exit_record_read(sb->dirfd, rec, NULL) == 0)
        return;
    memset(rec, 0, sizeof(*rec));
    rec->code = -1;
    rec->ended_ns = cws_rt_now_realtime_ns();
    if (sb->setup_failure)
        snprintf(rec->reason, sizeof(rec->reason), "%s", sb->setup_failure);
    else if (si)
        describe_status(si, rec->reason, sizeof(rec->reason));
    else
        snprintf(rec->reason, sizeof(rec->reason),
                 "cwsandbox-init ended while cwsandbox-local was not running");
    struct cws_error err;
    if (cws_exit_record_write(sb->dirfd, rec, &err) < 0)
        cws_log(CWS_LOG_WARN, "sandbox %s: %s", sb->id, err.message);
    else
        cws_exit_record_read(sb->dirfd, rec, NULL); /* someone may have been first */
}

static void finish_exit(struct cws_rt_sandbox *sb, int code, const char *reason)
{
    sb->state = SB_ENDED;
    cws_rt_sandbox_close_sync(sb);
    free_event(&sb->pidfd_ev);
    event_del(sb->kill_timer);
    event_del(sb->lifetime_timer);
    event_del(sb->setup_timer);
    if (sb->pidfd >= 0)
        close(sb->pidfd);
    sb->pidfd = -1;
    cws_net_stop(sb->net);
    sb->net = NULL;
    unlinkat(sb->dirfd, CWS_SB_INIT_SOCKET, 0);
    cws_cgroup_remove(sb->rt->cgroup, sb->id);
    cws_rt_log_watch_sandbox_ended(sb->rt, sb);
    emit_exit(sb, code, reason);
}

static void on_init_exit(evutil_socket_t fd, short what, void *arg)
{
    struct cws_rt_sandbox *sb = arg;
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    /* ECHILD after a restart (init is not our child then): the record says it all. */
    waitid(P_PIDFD, (id_t)sb->pidfd, &si, WEXITED | WNOHANG);
    /* "running" may sit unread next to the exit: deliver it first. */
    cws_rt_sb_hold(sb);
    while (!sb->released && cws_rt_sandbox_read_sync(sb) == 1)
        ;
    if (cws_rt_sb_drop(sb))
        return;
    struct cws_exit_record rec;
    cws_rt_sandbox_settle_exit(sb, &si, &rec);
    char *stop = rec.reason[0] ? NULL : cws_rt_sandbox_stop_reason(sb->dirfd);
    finish_exit(sb, rec.code, rec.reason[0] ? rec.reason : stop);
    free(stop);
}

/* ---- stopping ---- */

static void kill_now(struct cws_rt_sandbox *sb)
{
    if (sb->state == SB_ENDED || sb->pidfd < 0)
        return;
    /* Record first: init dies with SIGKILL and cannot say so. A main command still running
     * dies of the same signal. */
    struct cws_exit_record rec = {.code = sb->state == SB_RUNNING ? 128 + SIGKILL : -1,
                                  .ended_ns = cws_rt_now_realtime_ns()};
    struct cws_error err;
    if (cws_exit_record_write(sb->dirfd, &rec, &err) < 0)
        cws_log(CWS_LOG_WARN, "sandbox %s: %s", sb->id, err.message);
    if (pidfd_send_signal(sb->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
        cws_log(CWS_LOG_WARN, "sandbox %s: kill: %s", sb->id, strerror(errno));
}

/* libevent measures timers with a coarse clock and may fire a few milliseconds early: the
 * grace is a promise, so wait out what is left of it before killing. */
static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
    struct cws_rt_sandbox *sb = arg;
    int64_t left = sb->kill_at_ms - cws_rt_now_monotonic_ms();
    if (left > 0) {
        struct timeval tv = {left / 1000, (left % 1000) * 1000};
        evtimer_add(sb->kill_timer, &tv);
        return;
    }
    kill_now(sb);
}

static void record_stop_reason(struct cws_rt_sandbox *sb, const char *reason)
{
    struct cws_error err;
    /* Exclusive: the first reason (e.g. the lifetime) stays when a stop follows. */
    if (cws_dirfile_write(sb->dirfd, CWS_SB_STOP, reason, strlen(reason), 0600, true, &err) < 0)
        cws_log(CWS_LOG_WARN, "sandbox %s: %s", sb->id, err.message);
}

static int stop_with_reason(struct cws_rt_sandbox *sb, int64_t grace_ms, const char *reason)
{
    if (sb->state == SB_ENDED || sb->pidfd < 0)
        return 0;
    if (grace_ms < 0)
        grace_ms = 0;
    if (!sb->stopping) {
        sb->stopping = true;
        record_stop_reason(sb, reason);
        /* Before the main command runs there is nobody to ask politely; without a grace
         * there is no point (and its death by SIGTERM would race the kill's record). */
        if (sb->state == SB_STARTING)
            grace_ms = 0;
        else if (grace_ms > 0 && pidfd_send_signal(sb->pidfd, SIGTERM, NULL, 0) < 0 &&
                 errno != ESRCH)
            cws_log(CWS_LOG_WARN, "sandbox %s: SIGTERM: %s", sb->id, strerror(errno));
    }
    int64_t at = cws_rt_now_monotonic_ms() + grace_ms;
    if (evtimer_pending(sb->kill_timer, NULL) && sb->kill_at_ms <= at)
        return 0; /* a repeated stop may only shorten the grace */
    if (grace_ms == 0) {
        event_del(sb->kill_timer);
        kill_now(sb);
        return 0;
    }
    sb->kill_at_ms = at;
    struct timeval tv = {grace_ms / 1000, (grace_ms % 1000) * 1000};
    evtimer_add(sb->kill_timer, &tv);
    return 0;
}

int cws_rt_sandbox_stop(struct cws_rt_sandbox *sb, int64_t grace_ms)
{
    if (!sb)
        return -CWS_E_INVALID_ARGUMENT;
    return stop_with_reason(sb, grace_ms, "stopped");
}

static void on_lifetime(evutil_socket_t fd, short what, void *arg)
{
    struct cws_rt_sandbox *sb = arg;
    char reason[128];
    snprintf(reason, sizeof(reason), "max lifetime of %" PRId64 " s reached", sb->max_lifetime_s);
    stop_with_reason(sb, LIFETIME_GRACE_MS, reason);
}

static void on_setup_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct cws_rt_sandbox *sb = arg;
    if (sb->state != SB_STARTING)
        return;
    free(sb->setup_failure);
    sb->setup_failure = strdup("setup failed: not running after "
                               "30 s");
    struct cws_exit_record rec = {.code = -1, .ended_ns = cws_rt_now_realtime_ns()};
    snprintf(rec.reason, sizeof(rec.reason), "%s", sb->setup_failure ? sb->setup_failure : "");
    cws_exit_record_write(sb->dirfd, &rec, NULL);
    pidfd_send_signal(sb->pidfd, SIGKILL, NULL, 0);
}

/* ---- watching a running sandbox ---- */

static void arm_lifetime(struct cws_rt_sandbox *sb)
{
    if (sb->max_lifetime_s <= 0)
        return;
    int64_t end_ns = sb->started_ns + sb->max_lifetime_s * 1000000000LL;
    int64_t left_ms = (end_ns - cws_rt_now_realtime_ns()) / 1000000;
    if (left_ms < 0)
        left_ms = 0;
    struct timeval tv = {left_ms / 1000, (left_ms % 1000) * 1000};
    evtimer_add(sb->lifetime_timer, &tv);
}

int cws_rt_sandbox_watch(struct cws_rt_sandbox *sb, struct cws_error *err)
{
    sb->pidfd_ev = event_new(sb->rt->base, sb->pidfd, EV_READ, on_init_exit, sb);
    if (!sb->pidfd_ev || event_add(sb->pidfd_ev, NULL) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    arm_lifetime(sb);
    return 0;
}

/* ---- service URLs ---- */

const char *cws_rt_sandbox_service_url(const struct cws_rt_sandbox *sb, int port)
{
    if (!sb)
        return NULL;
    for (size_t i = 0; i < sb->n_ports; i++) {
        struct sb_port *p = &sb->ports[i];
        if (p->guest != port || p->host <= 0)
            continue;
        if (!p->url && asprintf(&p->url, "http://127.0.0.1:%d", p->host) < 0)
            p->url = NULL;
        return p->url;
    }
    return NULL;
}
