/* What the files of the runtime share behind runtime.h. */
#ifndef CWS_RT_INTERNAL_H
#define CWS_RT_INTERNAL_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#include "cws_error.h"
#include "exit_record.h"
#include "runtime.h"

struct cws_rt_net;
struct cws_cgroup;

/* How long init may take from clone to "running" before the sandbox counts as failed. */
#define CWS_RT_SETUP_DEADLINE_S 30

struct cws_rt {
    struct event_base *base;
    char *state_dir;
    char *images_dir; /* NULL when none was configured */
    char *init_path;
    char **hidden;    /* host paths every sandbox hides (absolute, resolved), NULL-terminated */
    int sandboxes_fd; /* <state_dir>/sandboxes */
    int devnull_fd;
    bool userns; /* not root: each sandbox gets a user namespace */
    uid_t uid;
    gid_t gid;
    char *slirp_path;          /* slirp4netns, or NULL when egress is impossible here */
    char *no_egress;           /* why egress is impossible, or NULL */
    struct cws_cgroup *cgroup; /* delegated cgroup v2 for limits, or NULL */
    char *no_limits;           /* why limits cannot be enforced, or NULL */
    struct cws_rt_sandbox *sandboxes;
    struct cws_rt_exec *execs;
    struct cws_rt_log_watch *watches;
    int inotify_fd;
    struct event *inotify_ev;
    struct rt_reap *reaps;       /* killed children still to be reaped */
    struct event *watch_fire_ev; /* delivers pending log watch callbacks */
};

enum sb_state { SB_STARTING, SB_RUNNING, SB_ENDED };

struct sb_port {
    int guest;
    int host; /* 0 until forwarded */
    char *url;
};

struct cws_rt_sandbox {
    struct cws_rt *rt;
    struct cws_rt_sandbox *next, **pprev;
    char *id;
    int dirfd;
    enum sb_state state;
    pid_t pid;
    int pidfd;
    struct event *pidfd_ev;
    int sync_fd;
    struct event *sync_ev;
    struct cws_rt_net *net;
    struct sb_port *ports;
    size_t n_ports;
    int64_t started_ns; /* CLOCK_REALTIME */
    int64_t max_lifetime_s;
    struct event *lifetime_timer;
    struct event *kill_timer;
    int64_t kill_at_ms; /* CLOCK_MONOTONIC, when kill_timer is armed */
    struct event *setup_timer;
    struct event *exit_ev; /* delivers on_exit from the loop */
    bool stopping;
    char *setup_failure;
    int exit_code;
    char *exit_reason;
    struct cws_rt_sandbox_events ev;
    void *ud;
    int holds;
    bool released;
};

/* ---- runtime.c ---- */
int64_t cws_rt_now_realtime_ns(void);
int64_t cws_rt_now_monotonic_ms(void);
/* Reap pidfd's process once it has exited (it was killed); takes the fd. */
void cws_rt_reap_later(struct cws_rt *rt, int pidfd);
/* Keep sb alive across a user callback; cws_rt_sb_drop() returns true when it was freed. */
void cws_rt_sb_hold(struct cws_rt_sandbox *sb);
bool cws_rt_sb_drop(struct cws_rt_sandbox *sb);

/* ---- sandbox_dir.c ---- */
struct sb_meta {
    int64_t created_ns;
    int64_t max_lifetime_s;
    struct sb_port *ports; /* urls unset */
    size_t n_ports;
};
/* The id is a DNS label: [a-z0-9-]{1,63}, no leading or trailing '-'. */
bool cws_sb_id_valid(const char *id);
/* Create <sandboxes>/<id> and its subdirectories; its fd goes to *ret_dirfd, which the
 * caller closes. -CWS_E_ALREADY_EXISTS when it exists. */
int cws_sb_dir_create(struct cws_rt *rt, const char *id, int *ret_dirfd, struct cws_error *err);
/* Open an existing sandbox directory (the caller closes *ret_dirfd); -CWS_E_NOT_FOUND when
 * there is none. */
int cws_sb_dir_open(struct cws_rt *rt, const char *id, int *ret_dirfd, struct cws_error *err);
/* Delete the directory of id, whatever it holds. */
int cws_sb_dir_delete(struct cws_rt *rt, const char *id, struct cws_error *err);
int cws_sb_meta_write(int dirfd, const struct sb_meta *m, struct cws_error *err);
/* The caller frees m->ports with free(). */
int cws_sb_meta_read(int dirfd, struct sb_meta *m, struct cws_error *err);
/* "<pid> <start time>" files identifying a process across pid reuse. */
int cws_sb_pidfile_write(int dirfd, const char *name, pid_t pid, struct cws_error *err);
/* A pidfd for the process recorded in name, when it is still that process: 0 and
 * *ret_pidfd (the caller closes it), or -CWS_E_NOT_FOUND (no file, or the process is gone). */
int cws_sb_pidfile_open(int dirfd, const char *name, pid_t *ret_pid, int *ret_pidfd,
                        struct cws_error *err);
/* "/proc/self/fd/<dirfd>/<name>": a path to a file of the directory of any length. */
void cws_sb_dir_path(int dirfd, const char *name, char *buf, size_t size);

/* ---- spawn.c ---- */
struct cws_spawn_opts {
    const char *init_path;
    const char *dir_path; /* the sandbox directory, which init must enter by path: a
                             directory fd of ours belongs to our mount namespace */
    int dirfd;
    int sync_fd; /* init's end of the sync socket */
    int log_fd;  /* init's stderr */
    int null_fd;
    bool userns;
    uid_t uid; /* mapped to root inside, with userns */
    gid_t gid;
    int cgroup_fd; /* -1, or the cgroup to start in */
};
/* Start cwsandbox-init in new namespaces. *ret_pidfd: a pidfd for it, which the caller
 * closes (after reaping the process). */
int cws_spawn_init(const struct cws_spawn_opts *o, pid_t *ret_pid, int *ret_pidfd,
                   struct cws_error *err);

/* ---- network.c ---- */
/* Called once: error is NULL when slirp4netns is up and the ports forwarded. */
typedef void (*cws_net_ready_fn)(struct cws_rt_net *net, const char *error, void *ud);
/* Start slirp4netns for the network namespace of pid; forward ports[i].guest to a free
 * port of the host's 127.0.0.1 (filled into ports[i].host before ready is called). ports
 * must stay valid until then. The caller frees *ret with cws_net_release() or
 * cws_net_stop(). */
int cws_net_start(struct cws_rt *rt, int dirfd, pid_t pid, struct sb_port *ports, size_t n_ports,
                  cws_net_ready_fn ready, void *ud, struct cws_rt_net **ret, struct cws_error *err);
/* Find the slirp4netns of a sandbox started by an earlier server (NULL when none runs).
 * The caller frees *ret as above. */
int cws_net_attach(struct cws_rt *rt, int dirfd, struct cws_rt_net **ret);
/* Forget slirp4netns; it keeps serving the sandbox. Accepts NULL. */
void cws_net_release(struct cws_rt_net *net);
/* Kill slirp4netns (the sandbox ended) and free. Accepts NULL. */
void cws_net_stop(struct cws_rt_net *net);

/* ---- cgroup.c ---- */
/* Parse Kubernetes quantities: CPU in millicores ("500m", "2", "1.5"), memory in bytes
 * ("512Mi", "1G", "1e9"). */
int cws_quantity_cpu_millis(const char *s, int64_t *ret, struct cws_error *err);
int cws_quantity_bytes(const char *s, int64_t *ret, struct cws_error *err);
/* A delegated, writable cgroup v2 with the cpu and memory controllers, or NULL with
 * *ret_why saying why not (the caller frees both). */
int cws_cgroup_detect(struct cws_cgroup **ret, char **ret_why);
void cws_cgroup_free(struct cws_cgroup *cg);
/* Create the cgroup of sandbox id with these limits (0: none); *ret_fd is a directory fd for
 * clone3(CLONE_INTO_CGROUP), which the caller closes. */
int cws_cgroup_create(struct cws_cgroup *cg, const char *id, int64_t cpu_millis,
                      int64_t memory_bytes, int *ret_fd, struct cws_error *err);
/* Remove the cgroup of an ended sandbox (best effort). */
void cws_cgroup_remove(struct cws_cgroup *cg, const char *id);

/* ---- logs.c ---- */
/* The sandbox ended: fire its watches once more. */
void cws_rt_log_watch_sandbox_ended(struct cws_rt *rt, struct cws_rt_sandbox *sb);
/* The handle goes away: its watches stay but no longer refer to it. */
void cws_rt_log_watch_sandbox_released(struct cws_rt *rt, struct cws_rt_sandbox *sb);
void cws_rt_log_watch_free_all(struct cws_rt *rt);

/* ---- exec.c ---- */
void cws_rt_exec_free_all(struct cws_rt *rt);

/* ---- sandbox.c ---- */
void cws_rt_sandbox_release_all(struct cws_rt *rt);
/* Watch init's pidfd and arm the lifetime timer of a started or attached sandbox. */
int cws_rt_sandbox_watch(struct cws_rt_sandbox *sb, struct cws_error *err);
/* Allocate a handle for id with the directory dirfd (taken, closed on failure too). The
 * caller frees *ret with cws_rt_sandbox_release(), or cws_rt_sandbox_free_handle() when it
 * was never given out. */
int cws_rt_sandbox_alloc(struct cws_rt *rt, const char *id, int dirfd,
                         const struct cws_rt_sandbox_events *ev, void *ud,
                         struct cws_rt_sandbox **ret, struct cws_error *err);
void cws_rt_sandbox_free_handle(struct cws_rt_sandbox *sb);
void cws_rt_sandbox_close_sync(struct cws_rt_sandbox *sb);
/* on_running, unless the handle was released; sb may be freed when it returns. */
void cws_rt_sandbox_emit_running(struct cws_rt_sandbox *sb);
/* Why the server stopped the sandbox (CWS_SB_STOP), or NULL; the caller frees it. */
char *cws_rt_sandbox_stop_reason(int dirfd);
/* Read the exit record into *rec, or write one from what was seen (si: init's wait status,
 * NULL when unknown) when there is none. */
void cws_rt_sandbox_settle_exit(struct cws_rt_sandbox *sb, const siginfo_t *si,
                                struct cws_exit_record *rec);

/* ---- sandbox_start.c ---- */
/* Handle one message of the start handshake: 1 when more may follow, else 0. */
int cws_rt_sandbox_read_sync(struct cws_rt_sandbox *sb);

#endif
