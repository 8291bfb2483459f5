/* Logout with lingering: systemd-logind watched over sd-bus on the daemon's loop; the rules
 * (what counts as a login session, "closing", bus loss) are in logind.h. */
#include "logind.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "reaper.h"

#define LOGIND_SERVICE   "org.freedesktop.login1"
#define LOGIND_PATH      "/org/freedesktop/login1"
#define LOGIND_MANAGER   "org.freedesktop.login1.Manager"
#define LOGIND_SESSION   "org.freedesktop.login1.Session"
#define LOGIND_CALL_USEC (10ull * 1000 * 1000)
/* logind says nothing when a session turns "closing": look again this often meanwhile. */
#define LOGIND_POLL_S 30
#define RETRY_FIRST_S 1
#define RETRY_MAX_S   60
/* Messages handled per wake-up before the loop gets a turn (then we come back at once). */
#define PROCESS_BATCH 64

struct logind_watch {
    struct cwsd *d;
    uid_t uid;
    sd_bus *bus;
    struct event *io;    /* the bus socket, with sd-bus's own timeout */
    struct event *timer; /* the next count (poll), or the next reconnection */
    int live;            /* login sessions at the last complete count; -1: not known yet */
    /* the count in progress */
    bool counting, again, trusted;
    int pending; /* property calls unanswered */
    int counted;
    int retry_s;
    bool said_no_logind;
};

static struct logind_watch *watch;

static void count_sessions(struct logind_watch *w);
static void drop_bus(struct logind_watch *w);
static int rearm(struct logind_watch *w);

static void arm_timer(struct logind_watch *w, int seconds)
{
    struct timeval tv = {seconds, 0};
    evtimer_add(w->timer, &tv);
}

/* The new count: the cleanup when it fell from >= 1 to 0. */
static void apply_count(struct logind_watch *w, int live)
{
    int before = w->live;
    w->live = live;
    if (before != live)
        cws_log(CWS_LOG_DEBUG, "logind: uid %u has %d login session%s", (unsigned)w->uid, live,
                live == 1 ? "" : "s");
    if (before > 0 && live == 0) {
        cws_log(CWS_LOG_DEBUG, "logind: the last login session of uid %u ended", (unsigned)w->uid);
        cwsd_reaper_logout(w->d);
    }
}

static void count_done(struct logind_watch *w)
{
    w->counting = false;
    if (w->trusted) {
        w->retry_s = RETRY_FIRST_S; /* the connection works */
        apply_count(w, w->counted);
    }
    if (w->again) {
        count_sessions(w);
        return;
    }
    evtimer_del(w->timer);
    if (w->live > 0)
        arm_timer(w, LOGIND_POLL_S);
}

/* Class "user" or "user-*" (systemd 256 added user-early, user-incomplete, user-light): a
 * login. A session without the property (an older logind) is taken as one. */
static bool class_is_login(const char *cls)
{
    return !cls[0] || strcmp(cls, "user") == 0 || strncmp(cls, "user-", 5) == 0;
}

/* Read State and Class from a Properties.GetAll answer. */
static int read_session(sd_bus_message *m, char *state, size_t state_size, char *cls,
                        size_t cls_size)
{
    int r = sd_bus_message_enter_container(m, 'a', "{sv}");
    while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
        const char *name, *value;
        char *dest = NULL;
        size_t size = 0;
        r = sd_bus_message_read(m, "s", &name);
        if (r >= 0 && strcmp(name, "State") == 0) {
            dest = state;
            size = state_size;
        } else if (r >= 0 && strcmp(name, "Class") == 0) {
            dest = cls;
            size = cls_size;
        }
        if (r >= 0 && dest && sd_bus_message_read(m, "v", "s", &value) >= 0)
            snprintf(dest, size, "%s", value);
        else if (r >= 0)
            r = sd_bus_message_skip(m, "v");
        if (r >= 0)
            r = sd_bus_message_exit_container(m);
    }
    return r;
}

static int on_session(sd_bus_message *m, void *ud, sd_bus_error *ret_error)
{
    struct logind_watch *w = ud;
    char state[32] = "", cls[32] = "";
    (void)ret_error;
    w->pending--;
    const sd_bus_error *e = sd_bus_message_get_error(m);
    if (e && sd_bus_error_has_name(e, SD_BUS_ERROR_UNKNOWN_OBJECT)) {
        /* removed since ListSessions: its SessionRemoved brings another count */
    } else if (e || read_session(m, state, sizeof(state), cls, sizeof(cls)) < 0) {
        /* Cannot tell: take it as a login rather than clean up on a doubt. */
        cws_log(CWS_LOG_DEBUG, "logind: session properties: %s",
                e ? e->message : "unexpected answer");
        w->counted++;
    } else if (class_is_login(cls) && strcmp(state, "closing") != 0) {
        w->counted++;
    }
    if (w->pending == 0)
        count_done(w);
    return 0;
}

static int call(struct logind_watch *w, const char *path, const char *iface, const char *member,
                sd_bus_message_handler_t fn, const char *arg)
{
    sd_bus_message *m = NULL;
    int r = sd_bus_message_new_method_call(w->bus, &m, LOGIND_SERVICE, path, iface, member);
    if (r >= 0 && arg)
        r = sd_bus_message_append(m, "s", arg);
    if (r >= 0)
        r = sd_bus_call_async(w->bus, NULL, m, fn, w, LOGIND_CALL_USEC);
    sd_bus_message_unref(m);
    return r;
}

static int on_sessions(sd_bus_message *m, void *ud, sd_bus_error *ret_error)
{
    struct logind_watch *w = ud;
    (void)ret_error;
    const sd_bus_error *e = sd_bus_message_get_error(m);
    if (e) {
        /* No logind on this bus (or it is stuck): say so once per connection. A connection
         * that broke answers with errors too; that is logged as such. */
        if (!w->said_no_logind && sd_bus_is_open(w->bus) > 0)
            cws_log(CWS_LOG_INFO, "logind: cannot list login sessions: %s", e->message);
        w->said_no_logind = true;
        count_done(w);
        return 0;
    }
    const char *id, *user, *seat, *path;
    uint32_t uid;
    int r = sd_bus_message_enter_container(m, 'a', "(susso)");
    while (r >= 0 && (r = sd_bus_message_read(m, "(susso)", &id, &uid, &user, &seat, &path)) > 0) {
        if (uid != (uint32_t)w->uid)
            continue;
        /* The properties of each of our sessions, in parallel. */
        const char *props = "org.freedesktop.DBus.Properties";
        if (call(w, path, props, "GetAll", on_session, LOGIND_SESSION) < 0)
            w->counted++; /* as on_session does when it cannot tell */
        else
            w->pending++;
    }
    if (r < 0) {
        cws_log(CWS_LOG_WARN, "logind: unexpected ListSessions answer: %s", strerror(-r));
        w->trusted = false;
    } else {
        w->trusted = true;
        w->said_no_logind = false;
    }
    if (w->pending == 0)
        count_done(w);
    return 0;
}

/* Count our login sessions: ListSessions, then the properties of each. A count asked for
 * while one runs is made once that one ends, so the last answer reflects the last event. */
static void count_sessions(struct logind_watch *w)
{
    if (!w->bus)
        return;
    if (w->counting) {
        w->again = true;
        return;
    }
    w->counting = true;
    w->again = false;
    w->trusted = false;
    w->pending = 0;
    w->counted = 0;
    int r = call(w, LOGIND_PATH, LOGIND_MANAGER, "ListSessions", on_sessions, NULL);
    if (r < 0) {
        cws_log(CWS_LOG_DEBUG, "logind: ListSessions: %s", strerror(-r));
        w->counting = false;
    }
}

static int on_signal(sd_bus_message *m, void *ud, sd_bus_error *ret_error)
{
    struct logind_watch *w = ud;
    (void)ret_error;
    cws_log(CWS_LOG_TRACE, "logind: %s", sd_bus_message_get_member(m));
    count_sessions(w);
    return 0;
}

static int on_match_installed(sd_bus_message *m, void *ud, sd_bus_error *ret_error)
{
    (void)ud;
    (void)ret_error;
    const sd_bus_error *e = sd_bus_message_get_error(m);
    if (e)
        cws_log(CWS_LOG_WARN, "logind: cannot subscribe to its signals: %s", e->message);
    return 0;
}

static void on_bus_lost(struct logind_watch *w, int r)
{
    cws_log(CWS_LOG_INFO, "logind: lost the system bus (%s); trying again in %d s",
            r < 0 ? strerror(-r) : "closed", w->retry_s);
    drop_bus(w);
    arm_timer(w, w->retry_s);
    w->retry_s = w->retry_s * 2 > RETRY_MAX_S ? RETRY_MAX_S : w->retry_s * 2;
}

static void on_bus_io(evutil_socket_t fd, short what, void *ud)
{
    struct logind_watch *w = ud;
    int r = 0, n;
    (void)fd;
    (void)what;
    for (n = 0; n < PROCESS_BATCH; n++) {
        r = sd_bus_process(w->bus, NULL);
        if (r <= 0)
            break;
    }
    /* A broken connection is closed by sd-bus, which first answers our calls with errors. */
    if (r < 0 || !sd_bus_is_open(w->bus) || (r = rearm(w)) < 0)
        on_bus_lost(w, r);
}

/* Wait for what sd-bus waits for: readable, writable (queued output) and its timeout. */
static int rearm(struct logind_watch *w)
{
    int fd = sd_bus_get_fd(w->bus);
    int events = sd_bus_get_events(w->bus);
    uint64_t until = UINT64_MAX;
    if (fd < 0 || events < 0)
        return fd < 0 ? fd : events;
    short what = (events & POLLIN ? EV_READ : 0) | (events & POLLOUT ? EV_WRITE : 0);
    event_del(w->io);
    event_assign(w->io, w->d->base, what ? fd : -1, what, on_bus_io, w);
    struct timeval tv, *tvp = NULL;
    if (sd_bus_get_timeout(w->bus, &until) >= 0 && until != UINT64_MAX) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
        uint64_t left = until > now ? until - now : 0;
        tv.tv_sec = (time_t)(left / 1000000);
        tv.tv_usec = (suseconds_t)(left % 1000000);
        tvp = &tv;
    }
    return event_add(w->io, tvp) < 0 ? -ENOMEM : 0;
}

static void drop_bus(struct logind_watch *w)
{
    if (w->io)
        event_del(w->io);
    /* Closing without a flush: nothing we send matters enough to block the loop for. The
     * calls in flight go with the connection, their callbacks never run. */
    if (w->bus)
        w->bus = sd_bus_close_unref(w->bus);
    w->counting = false;
    w->again = false;
    w->pending = 0;
}

static int connect_bus(struct logind_watch *w)
{
    static const char *const signals[] = {"SessionNew", "SessionRemoved", "UserRemoved"};
    /* Connects (a non-blocking connect to a Unix socket); authentication and Hello happen in
     * sd_bus_process, on the loop. */
    int r = sd_bus_open_system(&w->bus);
    if (r < 0) {
        w->bus = NULL;
        return r;
    }
    /* The subscriptions go out before ListSessions, and the bus keeps their order: an event
     * is either in the list or comes as a signal. */
    for (size_t i = 0; r >= 0 && i < sizeof(signals) / sizeof(signals[0]); i++)
        r = sd_bus_match_signal_async(w->bus, NULL, LOGIND_SERVICE, LOGIND_PATH, LOGIND_MANAGER,
                                      signals[i], on_signal, on_match_installed, w);
    if (r < 0) {
        drop_bus(w);
        return r;
    }
    count_sessions(w);
    r = rearm(w);
    if (r < 0)
        drop_bus(w);
    return r;
}

static void on_timer(evutil_socket_t fd, short what, void *ud)
{
    struct logind_watch *w = ud;
    (void)fd;
    (void)what;
    if (w->bus) {
        count_sessions(w);
        int r = rearm(w);
        if (r < 0)
            on_bus_lost(w, r);
        return;
    }
    int r = connect_bus(w);
    if (r < 0) {
        cws_log(CWS_LOG_DEBUG, "logind: system bus: %s; trying again in %d s", strerror(-r),
                w->retry_s);
        arm_timer(w, w->retry_s);
        w->retry_s = w->retry_s * 2 > RETRY_MAX_S ? RETRY_MAX_S : w->retry_s * 2;
    } else {
        cws_log(CWS_LOG_INFO, "logind: connected to the system bus again");
    }
}

void cwsd_logind_start(struct cwsd *d)
{
    if (!d->cfg.cleanup_on_logout) {
        cws_log(CWS_LOG_DEBUG, "logind: cleanup_on_logout is off: not watching logins");
        return;
    }
    struct logind_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return;
    w->d = d;
    w->uid = getuid();
    w->live = -1;
    w->retry_s = RETRY_FIRST_S;
    w->timer = evtimer_new(d->base, on_timer, w);
    w->io = event_new(d->base, -1, 0, on_bus_io, w);
    int r = w->timer && w->io ? connect_bus(w) : -ENOMEM;
    if (r < 0) {
        cws_log(CWS_LOG_INFO,
                "logind: no system bus (%s): logout is noticed only when systemd stops the "
                "daemon",
                strerror(-r));
        watch = w;
        cwsd_logind_stop();
        return;
    }
    cws_log(CWS_LOG_DEBUG, "logind: watching the login sessions of uid %u", (unsigned)w->uid);
    watch = w;
}

void cwsd_logind_stop(void)
{
    struct logind_watch *w = watch;
    if (!w)
        return;
    drop_bus(w);
    if (w->io)
        event_free(w->io);
    if (w->timer)
        event_free(w->timer);
    free(w);
    watch = NULL;
}
