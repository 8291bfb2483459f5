/* The runtime object: configuration, what this machine allows (user namespaces when not
 * root, slirp4netns egress, delegated cgroups), and the bookkeeping shared by the other files
 * (reaping killed children, keeping handles alive across callbacks). */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "paths.h"
#include "rt_internal.h"

struct rt_reap {
    struct rt_reap *next, **pprev;
    struct cws_rt *rt;
    int pidfd;
    struct event *ev;
};

int64_t cws_rt_now_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cws_rt_now_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- reaping ---- */

static void reap_free(struct rt_reap *r)
{
    siginfo_t si;
    /* Not our child (a process found again after a restart): ECHILD, nothing to reap. */
    waitid(P_PIDFD, (id_t)r->pidfd, &si, WEXITED | WNOHANG);
    *r->pprev = r->next;
    if (r->next)
        r->next->pprev = r->pprev;
    if (r->ev)
        event_free(r->ev);
    close(r->pidfd);
    free(r);
}

static void on_reapable(evutil_socket_t fd, short what, void *arg)
{
    reap_free(arg);
}

void cws_rt_reap_later(struct cws_rt *rt, int pidfd)
{
    struct rt_reap *r = calloc(1, sizeof(*r));
    if (!r) {
        close(pidfd);
        return;
    }
    r->rt = rt;
    r->pidfd = pidfd;
    r->next = rt->reaps;
    if (r->next)
        r->next->pprev = &r->next;
    r->pprev = &rt->reaps;
    rt->reaps = r;
    r->ev = event_new(rt->base, pidfd, EV_READ, on_reapable, r);
    if (!r->ev || event_add(r->ev, NULL) < 0)
        reap_free(r);
}

/* ---- handle lifetime across callbacks ---- */

void cws_rt_sb_hold(struct cws_rt_sandbox *sb)
{
    sb->holds++;
}

bool cws_rt_sb_drop(struct cws_rt_sandbox *sb)
{
    if (--sb->holds > 0 || !sb->released)
        return false;
    cws_rt_sandbox_free_handle(sb);
    return true;
}

/* ---- what this machine allows ---- */

static char *find_in_path(const char *name)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n + strlen(name) + 2 < sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
            if (access(buf, X_OK) == 0)
                return strdup(buf);
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return NULL;
}

static void detect_egress(struct cws_rt *rt)
{
    rt->slirp_path = find_in_path("slirp4netns");
    const char *why = NULL;
    if (!rt->slirp_path)
        why = "no network egress: slirp4netns is not installed";
    else if (access("/dev/net/tun", R_OK | W_OK) < 0)
        why = "no network egress: /dev/net/tun is not accessible to this user (slirp4netns "
              "needs it)";
    if (why) {
        free(rt->slirp_path);
        rt->slirp_path = NULL;
        rt->no_egress = strdup(why);
    }
}

/* ---- hidden paths ---- */

static int strv_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 2) * sizeof(*nv));
    if (!nv)
        return -CWS_E_NOMEM;
    *v = nv;
    char *resolved = realpath(s, NULL);
    nv[*n] = resolved ? resolved : strdup(s);
    if (!nv[*n])
        return -CWS_E_NOMEM;
    nv[++*n] = NULL;
    return 0;
}

/* The configured paths plus what always holds secrets of the user running us. */
static int build_hidden(struct cws_rt *rt, const char *const *cfg_hidden)
{
    size_t n = 0;
    const char *home = getenv("HOME");
    struct passwd *pw = getpwuid(getuid());
    rt->hidden = calloc(1, sizeof(char *));
    if (!rt->hidden)
        return -CWS_E_NOMEM;
    for (const char *const *p = cfg_hidden; p && *p; p++)
        if (**p == '/' && strv_push(&rt->hidden, &n, *p) < 0)
            return -CWS_E_NOMEM;
    if (strv_push(&rt->hidden, &n, rt->state_dir) < 0 ||
        strv_push(&rt->hidden, &n, "/run/user") < 0)
        return -CWS_E_NOMEM;
    if (home && *home == '/' && strcmp(home, "/") != 0 && strv_push(&rt->hidden, &n, home) < 0)
        return -CWS_E_NOMEM;
    if (pw && pw->pw_dir && *pw->pw_dir == '/' && strcmp(pw->pw_dir, "/") != 0 &&
        strv_push(&rt->hidden, &n, pw->pw_dir) < 0)
        return -CWS_E_NOMEM;
    return 0;
}

/* ---- the runtime ---- */

static int open_dirs(struct cws_rt *rt, const struct cws_rt_config *cfg, struct cws_error *err)
{
    int r = cws_state_dir_ensure(cfg->state_dir, err);
    if (r < 0)
        return r;
    rt->state_dir = realpath(cfg->state_dir, NULL);
    if (!rt->state_dir)
        return cws_error_set(err, CWS_E_IO, "resolve %s: %s", cfg->state_dir, strerror(errno));
    int sfd = open(rt->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sfd < 0)
        return cws_error_set(err, CWS_E_IO, "open %s: %s", rt->state_dir, strerror(errno));
    if (mkdirat(sfd, "sandboxes", 0700) < 0 && errno != EEXIST) {
        r = cws_error_set(err, CWS_E_IO, "mkdir %s/sandboxes: %s", rt->state_dir, strerror(errno));
        close(sfd);
        return r;
    }
    rt->sandboxes_fd = openat(sfd, "sandboxes", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    close(sfd);
    if (rt->sandboxes_fd < 0)
        return cws_error_set(err, CWS_E_IO, "open %s/sandboxes: %s", rt->state_dir,
                             strerror(errno));
    return 0;
}

static int check_config(const struct cws_rt_config *cfg, struct cws_error *err)
{
    if (!cfg || !cfg->base || !cfg->state_dir || !cfg->init_path)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "the runtime needs an event base, a state directory and init_path");
    if (access(cfg->init_path, X_OK) < 0)
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "cwsandbox-init at %s: %s",
                             cfg->init_path, strerror(errno));
    return 0;
}

int cws_rt_new(const struct cws_rt_config *cfg, struct cws_rt **ret, struct cws_error *err)
{
    int r = check_config(cfg, err);
    if (r < 0)
        return r;
    struct cws_rt *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    rt->base = cfg->base;
    rt->sandboxes_fd = rt->devnull_fd = rt->inotify_fd = -1;
    rt->uid = getuid();
    rt->gid = getgid();
    rt->userns = geteuid() != 0;
    rt->init_path = realpath(cfg->init_path, NULL);
    rt->images_dir = cfg->images_dir ? strdup(cfg->images_dir) : NULL;
    rt->devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (!rt->init_path || (cfg->images_dir && !rt->images_dir) || rt->devnull_fd < 0) {
        r = cws_error_set(err, CWS_E_NOMEM, "set up the runtime: %s", strerror(errno));
        goto fail;
    }
    if ((r = open_dirs(rt, cfg, err)) < 0)
        goto fail;
    if (build_hidden(rt, cfg->hidden_paths) < 0) {
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
        goto fail;
    }
    detect_egress(rt);
    cws_cgroup_detect(&rt->cgroup, &rt->no_limits);
    cws_log(CWS_LOG_DEBUG, "sandbox runtime: %s, %s, %s", rt->userns ? "user namespaces" : "root",
            rt->no_egress ? rt->no_egress : "egress through slirp4netns",
            rt->no_limits ? rt->no_limits : "limits through cgroup v2");
    *ret = rt;
    return 0;
fail:
    cws_rt_free(rt);
    return r;
}

void cws_rt_free(struct cws_rt *rt)
{
    if (!rt)
        return;
    cws_rt_exec_free_all(rt);
    cws_rt_sandbox_release_all(rt);
    cws_rt_log_watch_free_all(rt);
    while (rt->reaps)
        reap_free(rt->reaps);
    cws_cgroup_free(rt->cgroup);
    free(rt->no_limits);
    free(rt->no_egress);
    free(rt->slirp_path);
    for (char **p = rt->hidden; p && *p; p++)
        free(*p);
    free(rt->hidden);
    free(rt->state_dir);
    free(rt->images_dir);
    free(rt->init_path);
    if (rt->sandboxes_fd >= 0)
        close(rt->sandboxes_fd);
    if (rt->devnull_fd >= 0)
        close(rt->devnull_fd);
    free(rt);
}
