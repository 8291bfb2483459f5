/* Starting a sandbox: check the spec, choose the root's lower layer, make its directory and
 * records, start cwsandbox-init in its namespaces (spawn.c) and, in parallel with init's own
 * setup, slirp4netns (network.c); then the start handshake of init_proto.h. Nothing here
 * blocks: the handshake and the network arrive as events. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "init_proto.h"
#include "init_spec.h"
#include "log.h"
#include "logfile.h"
#include "rt_internal.h"

/* ---- the start handshake ---- */

static void send_go(struct cws_rt_sandbox *sb)
{
    if (sb->sync_fd >= 0 && send(sb->sync_fd, CWS_INIT_SYNC_GO, strlen(CWS_INIT_SYNC_GO),
                                 MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        cws_log(CWS_LOG_WARN, "sandbox %s: send go: %s", sb->id, strerror(errno));
}

/* Handle one message from init: 1 when one was handled and more may follow, else 0 (nothing
 * queued, or the channel is closed). */
int cws_rt_sandbox_read_sync(struct cws_rt_sandbox *sb)
{
    char buf[CWS_INIT_SYNC_MAX + 1];
    if (sb->sync_fd < 0)
        return 0;
    ssize_t n = recv(sb->sync_fd, buf, CWS_INIT_SYNC_MAX, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        cws_rt_sandbox_close_sync(sb);
        return 0;
    }
    buf[n] = '\0';
    size_t fl = strlen(CWS_INIT_SYNC_FAIL);
    if (strcmp(buf, CWS_INIT_SYNC_RUNNING) == 0 && sb->state == SB_STARTING) {
        sb->state = SB_RUNNING;
        event_del(sb->setup_timer);
        cws_rt_sandbox_close_sync(sb);
        cws_rt_sandbox_emit_running(sb);
        return 0;
    }
    if (strncmp(buf, CWS_INIT_SYNC_FAIL, fl) == 0) {
        free(sb->setup_failure);
        sb->setup_failure = strdup(buf + fl);
    }
    return 1;
}

static void on_sync_readable(evutil_socket_t fd, short what, void *arg)
{
    cws_rt_sandbox_read_sync(arg);
}

static void on_net_ready(struct cws_rt_net *net, const char *error, void *ud)
{
    struct cws_rt_sandbox *sb = ud;
    struct sb_meta meta = {0};
    struct cws_error err;
    if (error)
        cws_log(CWS_LOG_WARN, "sandbox %s: %s", sb->id, error);
    /* Record the forwarded ports for a restarted server. */
    if (cws_sb_meta_read(sb->dirfd, &meta, &err) == 0) {
        free(meta.ports);
        meta.ports = sb->ports;
        meta.n_ports = sb->n_ports;
        if (cws_sb_meta_write(sb->dirfd, &meta, &err) < 0)
            cws_log(CWS_LOG_WARN, "sandbox %s: %s", sb->id, err.message);
    }
    send_go(sb);
}

static int watch_setup(struct cws_rt_sandbox *sb, struct cws_error *err)
{
    struct timeval tv = {CWS_RT_SETUP_DEADLINE_S, 0};
    sb->sync_ev = event_new(sb->rt->base, sb->sync_fd, EV_READ | EV_PERSIST, on_sync_readable, sb);
    if (!sb->sync_ev || event_add(sb->sync_ev, NULL) < 0 || evtimer_add(sb->setup_timer, &tv) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return cws_rt_sandbox_watch(sb, err);
}

/* ---- starting ---- */

struct start_plan {
    struct cws_init_spec init;
    char *lower_buf;
    int64_t cpu_millis, memory_bytes;
    bool egress;
    char *notes;
};

static void add_note(struct start_plan *p, const char *note)
{
    char *n = NULL;
    if (asprintf(&n, "%s%s%s", p->notes ? p->notes : "", p->notes ? "; " : "", note) < 0)
        return;
    free(p->notes);
    p->notes = n;
}

static int validate_spec(const struct cws_rt_spec *s, struct start_plan *p, struct cws_error *err)
{
    if (!s->id || !cws_sb_id_valid(s->id))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "sandbox id must match [a-z0-9-]{1,63} (got \"%s\")",
                             s->id ? s->id : "");
    if (!s->argv || !s->argv[0] || !s->argv[0][0])
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "the sandbox needs a command");
    if (s->cwd && s->cwd[0] != '/')
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "working directory must be absolute");
    if (s->max_lifetime_s < 0)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "max lifetime must not be negative");
    for (size_t i = 0; i < s->n_files; i++)
        if (!s->files[i].path || s->files[i].path[0] != '/')
            return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                                 "mounted file paths must be absolute");
    for (size_t i = 0; i < s->n_ports; i++)
        if (s->ports[i] < 1 || s->ports[i] > 65535)
            return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "invalid port %d", s->ports[i]);
    int r;
    if (s->cpu_limit && (r = cws_quantity_cpu_millis(s->cpu_limit, &p->cpu_millis, err)) < 0)
        return r;
    if (s->memory_limit && (r = cws_quantity_bytes(s->memory_limit, &p->memory_bytes, err)) < 0)
        return r;
    return 0;
}

/* "python:3.12" -> "python_3.12": a single safe path component. */
static void sanitize_image(const char *image, char *buf, size_t size)
{
    size_t n = 0;
    for (const char *c = image; *c && n + 1 < size; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_';
        buf[n++] = ok ? *c : '_';
    }
    buf[n] = '\0';
    if (strspn(buf, ".") == n && n < size - 1)
        buf[0] = '_'; /* never "." or ".." */
}

static int choose_lower(struct cws_rt *rt, const char *image, struct start_plan *p)
{
    p->init.lower = (char *)"/";
    p->init.host_root = true;
    if (!image || !*image)
        return 0;
    char name[256];
    sanitize_image(image, name, sizeof(name));
    if (rt->images_dir) {
        char *dir = NULL;
        struct stat st;
        if (asprintf(&dir, "%s/%s/rootfs", rt->images_dir, name) < 0)
            return -CWS_E_NOMEM;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
            p->lower_buf = dir;
            p->init.lower = dir;
            p->init.host_root = false;
            return 0;
        }
        free(dir);
    }
    char note[512];
    snprintf(note, sizeof(note), "image %s not found in %s; using the host root read-only", image,
             rt->images_dir ? rt->images_dir : "(no images directory)");
    add_note(p, note);
    return 0;
}

static void plan_network(struct cws_rt *rt, const struct cws_rt_spec *s, struct start_plan *p)
{
    p->egress = !s->deny_egress && rt->slirp_path;
    if (!s->deny_egress && !rt->slirp_path)
        add_note(p, rt->no_egress);
    if (s->n_ports > 0 && !p->egress)
        add_note(p, s->deny_egress ? "service ports not forwarded: egress is denied"
                                   : "service ports not forwarded: no slirp4netns");
    p->init.wait_go = p->egress;
    p->init.egress = p->egress;
}

static int plan_start(struct cws_rt *rt, const struct cws_rt_spec *s, struct start_plan *p,
                      struct cws_error *err)
{
    if (choose_lower(rt, s->image, p) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    plan_network(rt, s, p);
    if ((s->cpu_limit || s->memory_limit) && !rt->cgroup)
        add_note(p, rt->no_limits);
    p->init.id = (char *)s->id;
    p->init.argv = (char **)s->argv;
    p->init.env = (char **)s->env;
    p->init.cwd = (char *)(s->cwd ? s->cwd : "/");
    p->init.userns = rt->userns;
    p->init.hidden = rt->hidden;
    p->init.files = calloc(s->n_files + 1, sizeof(*p->init.files));
    if (!p->init.files)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    for (size_t i = 0; i < s->n_files; i++) {
        p->init.files[i].path = (char *)s->files[i].path;
        p->init.files[i].data = (uint8_t *)s->files[i].data;
        p->init.files[i].len = s->files[i].len;
    }
    p->init.n_files = s->n_files;
    return 0;
}

static int write_records(struct cws_rt_sandbox *sb, const struct cws_rt_spec *s,
                         struct start_plan *p, struct cws_error *err)
{
    struct sb_meta meta = {.created_ns = sb->started_ns, .max_lifetime_s = s->max_lifetime_s};
    int r;
    if ((r = cws_init_spec_write(sb->dirfd, &p->init, err)) < 0 ||
        (r = cws_logfile_create(sb->dirfd, CWS_SB_LOG, err)) < 0 ||
        (r = cws_sb_meta_write(sb->dirfd, &meta, err)) < 0)
        return r;
    return 0;
}

static int alloc_ports(struct cws_rt_sandbox *sb, const struct cws_rt_spec *s,
                       struct cws_error *err)
{
    if (s->n_ports == 0)
        return 0;
    sb->ports = calloc(s->n_ports, sizeof(*sb->ports));
    if (!sb->ports)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    for (size_t i = 0; i < s->n_ports; i++)
        sb->ports[i].guest = s->ports[i];
    sb->n_ports = s->n_ports;
    return 0;
}

static int launch(struct cws_rt_sandbox *sb, struct start_plan *p, struct cws_error *err)
{
    struct cws_rt *rt = sb->rt;
    int pair[2] = {-1, -1}, logfd = -1, cgfd = -1;
    char *dir_path = NULL;
    int r;
    if (asprintf(&dir_path, "%s/sandboxes/%s", rt->state_dir, sb->id) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "socketpair: %s", strerror(errno));
    logfd = openat(sb->dirfd, CWS_SB_INIT_LOG, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) {
        r = cws_error_set(err, CWS_E_IO, "create %s: %s", CWS_SB_INIT_LOG, strerror(errno));
        goto out;
    }
    if (rt->cgroup && (p->cpu_millis || p->memory_bytes) &&
        (r = cws_cgroup_create(rt->cgroup, sb->id, p->cpu_millis, p->memory_bytes, &cgfd, err)) < 0)
        goto out;
    struct cws_spawn_opts o = {
        .init_path = rt->init_path,
        .dir_path = dir_path,
        .dirfd = sb->dirfd,
        .sync_fd = pair[1],
        .log_fd = logfd,
        .null_fd = rt->devnull_fd,
        .userns = rt->userns,
        .uid = rt->uid,
        .gid = rt->gid,
        .cgroup_fd = cgfd,
    };
    if ((r = cws_spawn_init(&o, &sb->pid, &sb->pidfd, err)) < 0)
        goto out;
    sb->sync_fd = pair[0];
    pair[0] = -1;
    struct cws_error perr;
    if (cws_sb_pidfile_write(sb->dirfd, CWS_SB_PID, sb->pid, &perr) < 0)
        cws_log(CWS_LOG_WARN, "sandbox %s: %s", sb->id, perr.message);
    r = watch_setup(sb, err);
    if (r == 0 && p->egress)
        r = cws_net_start(rt, sb->dirfd, sb->pid, sb->ports, sb->n_ports, on_net_ready, sb,
                          &sb->net, err);
out:
    for (int i = 0; i < 2; i++)
        if (pair[i] >= 0)
            close(pair[i]);
    if (logfd >= 0)
        close(logfd);
    if (cgfd >= 0)
        close(cgfd);
    free(dir_path);
    return r;
}

/* Undo a start that failed after the directory was made. */
static void abort_start(struct cws_rt *rt, struct cws_rt_sandbox *sb, const char *id)
{
    if (sb->pidfd >= 0) {
        pidfd_send_signal(sb->pidfd, SIGKILL, NULL, 0);
        cws_rt_reap_later(rt, sb->pidfd);
        sb->pidfd = -1;
    }
    sb->state = SB_STARTING; /* so that its network goes too */
    cws_rt_sandbox_free_handle(sb);
    cws_sb_dir_delete(rt, id, NULL);
}

int cws_rt_sandbox_start(struct cws_rt *rt, const struct cws_rt_spec *spec,
                         const struct cws_rt_sandbox_events *ev, void *ud,
                         struct cws_rt_sandbox **ret, char **ret_notes, struct cws_error *err)
{
    struct start_plan p = {0};
    struct cws_rt_sandbox *sb = NULL;
    int dirfd = -1;
    int r;
    if (!rt || !spec || !ev)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "missing argument");
    if ((r = validate_spec(spec, &p, err)) < 0)
        return r;
    if ((r = cws_sb_dir_create(rt, spec->id, &dirfd, err)) < 0)
        return r;
    if ((r = cws_rt_sandbox_alloc(rt, spec->id, dirfd, ev, ud, &sb, err)) < 0) {
        cws_sb_dir_delete(rt, spec->id, NULL);
        return r;
    }
    sb->started_ns = cws_rt_now_realtime_ns();
    sb->max_lifetime_s = spec->max_lifetime_s;
    if ((r = plan_start(rt, spec, &p, err)) < 0 || (r = alloc_ports(sb, spec, err)) < 0 ||
        (r = write_records(sb, spec, &p, err)) < 0 || (r = launch(sb, &p, err)) < 0) {
        abort_start(rt, sb, spec->id);
        goto out;
    }
    *ret = sb;
    if (ret_notes) {
        *ret_notes = p.notes;
        p.notes = NULL;
    }
out:
    free(p.notes);
    free(p.lower_buf);
    free(p.init.files);
    return r;
}
