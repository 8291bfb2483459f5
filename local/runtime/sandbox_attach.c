/* Finding sandboxes again after a restart of the server, and deleting ended ones. A running
 * sandbox is recognised by the pid and start time in its directory (pid reuse cannot fool
 * it); an ended one by its exit record. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exit_record.h"
#include "init_proto.h"
#include "rt_internal.h"

/* ---- attaching ---- */

static void attach_ended(struct cws_rt_sandbox *sb, const struct cws_exit_record *rec)
{
    struct cws_rt_net *net = NULL;
    sb->state = SB_ENDED;
    sb->exit_code = rec->code;
    char *stop = rec->reason[0] ? NULL : cws_rt_sandbox_stop_reason(sb->dirfd);
    if (rec->reason[0])
        sb->exit_reason = strdup(rec->reason);
    else
        sb->exit_reason = stop;
    /* A slirp4netns left behind by a server that died with the sandbox. */
    if (cws_net_attach(sb->rt, sb->dirfd, &net) == 0)
        cws_net_stop(net);
    event_active(sb->exit_ev, 0, 0);
}

static void load_meta(struct cws_rt_sandbox *sb)
{
    struct sb_meta meta;
    if (cws_sb_meta_read(sb->dirfd, &meta, NULL) < 0)
        return;
    sb->started_ns = meta.created_ns;
    sb->max_lifetime_s = meta.max_lifetime_s;
    sb->ports = meta.ports;
    sb->n_ports = meta.n_ports;
}

int cws_rt_sandbox_attach(struct cws_rt *rt, const char *id, const struct cws_rt_sandbox_events *ev,
                          void *ud, struct cws_rt_sandbox **ret, struct cws_error *err)
{
    int dirfd = -1;
    struct cws_rt_sandbox *sb = NULL;
    struct cws_exit_record rec;
    int r;
    if (!rt || !id || !ev)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "missing argument");
    if ((r = cws_sb_dir_open(rt, id, &dirfd, err)) < 0 ||
        (r = cws_rt_sandbox_alloc(rt, id, dirfd, ev, ud, &sb, err)) < 0)
        return r;
    load_meta(sb);
    if (cws_exit_record_read(sb->dirfd, &rec, NULL) == 0) {
        attach_ended(sb, &rec);
    } else if (cws_sb_pidfile_open(sb->dirfd, CWS_SB_PID, &sb->pid, &sb->pidfd, NULL) == 0) {
        sb->state = SB_RUNNING;
        cws_net_attach(rt, sb->dirfd, &sb->net);
        if ((r = cws_rt_sandbox_watch(sb, err)) < 0) {
            cws_rt_sandbox_free_handle(sb);
            return r;
        }
    } else {
        cws_rt_sandbox_settle_exit(sb, NULL, &rec);
        attach_ended(sb, &rec);
    }
    *ret = sb;
    return 0;
}

/* ---- removing ---- */

static bool sandbox_alive(struct cws_rt *rt, const char *id)
{
    for (struct cws_rt_sandbox *sb = rt->sandboxes; sb; sb = sb->next)
        if (strcmp(sb->id, id) == 0 && sb->state != SB_ENDED)
            return true;
    int dirfd, pidfd;
    pid_t pid;
    struct cws_exit_record rec;
    if (cws_sb_dir_open(rt, id, &dirfd, NULL) < 0)
        return false;
    bool alive = cws_exit_record_read(dirfd, &rec, NULL) < 0 &&
                 cws_sb_pidfile_open(dirfd, CWS_SB_PID, &pid, &pidfd, NULL) == 0;
    if (alive)
        close(pidfd);
    close(dirfd);
    return alive;
}

int cws_rt_sandbox_remove(struct cws_rt *rt, const char *id, struct cws_error *err)
{
    if (!rt || !id || !cws_sb_id_valid(id))
        return cws_error_set(err, CWS_E_NOT_FOUND, "no sandbox %s", id ? id : "");
    if (sandbox_alive(rt, id))
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "sandbox %s is still running", id);
    return cws_sb_dir_delete(rt, id, err);
}
