/* The logs of sandboxes as the runtime offers them: read by id (running or ended, handle or
 * not), and watched with inotify on the log file, plus one last call when the sandbox ends.
 * One inotify instance serves every watch; watches of the same file share its descriptor. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "init_proto.h"
#include "logfile.h"
#include "rt_internal.h"

struct cws_rt_log_watch {
    struct cws_rt *rt;
    struct cws_rt_log_watch *next, **pprev;
    struct cws_rt_sandbox *sb; /* NULL once the handle is released */
    int wd;
    void (*cb)(void *ud);
    void *ud;
    bool pending;
};

/* ---- reading ---- */

struct read_ctx {
    int (*cb)(const struct cws_rt_log_entry *e, void *ud);
    void *ud;
};

static int deliver(const struct cws_logfile_entry *e, void *arg)
{
    struct read_ctx *ctx = arg;
    struct cws_rt_log_entry out = {
        .time_ns = e->time_ns, .fd = e->fd, .data = e->data, .len = e->len, .offset = e->offset};
    return ctx->cb(&out, ctx->ud);
}

int cws_rt_log_read(struct cws_rt *rt, const char *id, uint64_t from,
                    int (*cb)(const struct cws_rt_log_entry *e, void *ud), void *ud,
                    uint64_t *ret_next, struct cws_error *err)
{
    int dirfd;
    if (!rt || !id || !cb)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "missing argument");
    int r = cws_sb_dir_open(rt, id, &dirfd, err);
    if (r < 0)
        return r;
    int fd = openat(dirfd, CWS_SB_LOG, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    close(dirfd);
    if (fd < 0) {
        if (errno != ENOENT)
            return cws_error_set(err, CWS_E_IO, "open the log of %s: %s", id, strerror(errno));
        *ret_next = from; /* nothing recorded yet */
        return 0;
    }
    struct read_ctx ctx = {cb, ud};
    r = cws_logfile_read(fd, from, deliver, &ctx, ret_next, err);
    close(fd);
    return r;
}

/* ---- watching ---- */

/* Call pending watches one at a time, rescanning after each call: a callback may free any
 * watch, its own included. */
static void fire_pending(struct cws_rt *rt)
{
    for (;;) {
        struct cws_rt_log_watch *w = rt->watches;
        while (w && !w->pending)
            w = w->next;
        if (!w)
            return;
        w->pending = false;
        w->cb(w->ud);
    }
}

static void on_fire(evutil_socket_t fd, short what, void *arg)
{
    fire_pending(arg);
}

static void mark_wd(struct cws_rt *rt, int wd)
{
    for (struct cws_rt_log_watch *w = rt->watches; w; w = w->next)
        if (w->wd == wd)
            w->pending = true;
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    struct cws_rt *rt = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            mark_wd(rt, ev->wd);
            p += sizeof(*ev) + ev->len;
        }
    }
    fire_pending(rt);
}

static int ensure_inotify(struct cws_rt *rt, struct cws_error *err)
{
    if (rt->inotify_fd >= 0)
        return 0;
    rt->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (rt->inotify_fd < 0)
        return cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "inotify: %s", strerror(errno));
    rt->inotify_ev = event_new(rt->base, rt->inotify_fd, EV_READ | EV_PERSIST, on_inotify, rt);
    rt->watch_fire_ev = event_new(rt->base, -1, 0, on_fire, rt);
    if (!rt->inotify_ev || !rt->watch_fire_ev || event_add(rt->inotify_ev, NULL) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return 0;
}

int cws_rt_log_watch(struct cws_rt_sandbox *sb, void (*cb)(void *ud), void *ud,
                     struct cws_rt_log_watch **ret, struct cws_error *err)
{
    if (!sb || !cb)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "missing argument");
    struct cws_rt *rt = sb->rt;
    int r = ensure_inotify(rt, err);
    if (r < 0)
        return r;
    char path[64];
    cws_sb_dir_path(sb->dirfd, CWS_SB_LOG, path, sizeof(path));
    int wd = inotify_add_watch(rt->inotify_fd, path, IN_MODIFY);
    if (wd < 0 && errno != ENOENT)
        return cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "watch the log of %s: %s", sb->id,
                             strerror(errno));
    struct cws_rt_log_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return cws_error_set(err, CWS_E_NOMEM, NULL); /* an unused wd costs nothing */
    w->rt = rt;
    w->sb = sb;
    w->wd = wd;
    w->cb = cb;
    w->ud = ud;
    w->next = rt->watches;
    if (w->next)
        w->next->pprev = &w->next;
    w->pprev = &rt->watches;
    rt->watches = w;
    if (sb->state == SB_ENDED) {
        /* It ended already: the one last call is due now. */
        w->pending = true;
        event_active(rt->watch_fire_ev, 0, 0);
    }
    *ret = w;
    return 0;
}

void cws_rt_log_unwatch(struct cws_rt_log_watch *w)
{
    if (!w)
        return;
    struct cws_rt *rt = w->rt;
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    bool shared = false;
    for (struct cws_rt_log_watch *o = rt->watches; o; o = o->next)
        shared |= o->wd == w->wd;
    if (w->wd >= 0 && !shared)
        inotify_rm_watch(rt->inotify_fd, w->wd);
    free(w);
}

void cws_rt_log_watch_sandbox_ended(struct cws_rt *rt, struct cws_rt_sandbox *sb)
{
    bool any = false;
    for (struct cws_rt_log_watch *w = rt->watches; w; w = w->next) {
        if (w->sb == sb) {
            w->pending = true;
            any = true;
        }
    }
    /* From the loop, after on_exit: a follower then sees the sandbox as ended. */
    if (any)
        event_active(rt->watch_fire_ev, 0, 0);
}

void cws_rt_log_watch_sandbox_released(struct cws_rt *rt, struct cws_rt_sandbox *sb)
{
    for (struct cws_rt_log_watch *w = rt->watches; w; w = w->next)
        if (w->sb == sb)
            w->sb = NULL;
}

void cws_rt_log_watch_free_all(struct cws_rt *rt)
{
    while (rt->watches)
        cws_rt_log_unwatch(rt->watches);
    if (rt->inotify_ev)
        event_free(rt->inotify_ev);
    if (rt->watch_fire_ev)
        event_free(rt->watch_fire_ev);
    if (rt->inotify_fd >= 0)
        close(rt->inotify_fd);
    rt->inotify_ev = rt->watch_fire_ev = NULL;
    rt->inotify_fd = -1;
}
