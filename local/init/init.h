/* cwsandbox-init, PID 1 of a sandbox: the pieces main.c wires together.
 *
 * Life: read the spec from the sandbox directory (fd CWS_INIT_DIR_FD), build the root
 * (rootfs.c, kernfs.c, hide.c), open the log and the init socket while the host side is
 * still reachable, pivot_root, write the spec's files, wait for "go", run the main command
 * (main_cmd.c), then serve execs (exec_session.c) until the main command ends. Then kill
 * what remains, record the exit status and exit.
 */
#ifndef CWS_INIT_H
#define CWS_INIT_H

#include <event2/event.h>
#include <stdbool.h>
#include <sys/types.h>

#include "cws_error.h"
#include "init_spec.h"

struct exec_session;
struct main_cmd;

struct init_ctx {
    struct event_base *base;
    struct cws_init_spec *spec;
    int dirfd;     /* the sandbox directory on the host, for the exit record */
    int log_fd;    /* the main command's log, O_APPEND */
    int listen_fd; /* the init socket */
    struct evconnlistener *listener;
    struct main_cmd *main;
    struct exec_session *sessions; /* live execs */
    bool ending;                   /* the main command ended: wind down */
    struct event *end_timer;
    struct event *signals[3];
};

/* ---- rootfs.c: the root filesystem ---- */

/* Build the new root at CWS_SB_ROOT in the current directory (the sandbox directory): an
 * overlay of spec->lower with the sandbox's upper layer, or, unprivileged on the host root,
 * a tmpfs with one overlay per top-level directory. Then the kernel filesystems and the
 * hidden paths. */
int cws_rootfs_build(const struct cws_init_spec *spec, struct cws_error *err);

/* Make the built root the process's root (pivot_root) and detach the host's. */
int cws_rootfs_enter(struct cws_error *err);

/* After cws_rootfs_enter(): write /etc/hosts (and resolv.conf with egress), then the spec's
 * files, creating parent directories. */
int cws_rootfs_populate(const struct cws_init_spec *spec, struct cws_error *err);

/* ---- mount_util.c ---- */

/* mount(2) with a message naming the target in err. */
int cws_mount(const char *src, const char *target, const char *type, unsigned long flags,
              const char *data, struct cws_error *err);

/* Mount onto path resolved inside the directory rootfd (symlinks and ".." stay inside).
 * -CWS_E_NOT_FOUND when path does not exist there. */
int cws_mount_in(int rootfd, const char *path, const char *src, const char *type,
                 unsigned long flags, const char *data, struct cws_error *err);

/* Open path inside rootfd (RESOLVE_IN_ROOT) with flags; returns an fd the caller closes, or
 * -errno. */
int cws_open_in_root(int rootfd, const char *path, int flags, mode_t mode);

/* Make the mount at path (inside rootfd) and the mounts below it read-only. */
int cws_mount_readonly_in(int rootfd, const char *path, struct cws_error *err);

/* ---- kernfs.c: /proc, /dev, /sys ---- */
int cws_kernfs_setup(int rootfd, bool userns, struct cws_error *err);

/* ---- hide.c: what the sandbox must not see ---- */
int cws_hide_setup(int rootfd, const struct cws_init_spec *spec, struct cws_error *err);

/* ---- netif.c ---- */

/* Bring the loopback interface up. */
int cws_netif_loopback_up(struct cws_error *err);

/* ---- caps.c ---- */

/* Reduce the capabilities of the calling process (about to exec untrusted code) to the
 * container default set and forbid gaining new ones. Async-signal-safe. Returns 0 or -errno. */
int cws_caps_drop_for_child(void);

/* ---- env.c ---- */

/* The environment of a process: defaults, then base, then extra (later values win). The
 * caller frees the result with cws_strv_free(). NULL when out of memory. */
char **cws_env_build(const char *hostname, char *const *base, char *const *extra, bool tty);

/* ---- child.c: fork and exec a command ---- */

struct cws_child_spec {
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int stdio[3];  /* fds to become 0, 1, 2 */
    bool tty;      /* stdio[0] is a pty slave: make it the controlling terminal */
    int report_fd; /* -1, or a pipe that gets the error text when exec fails */
};

/* Start a process in a new session (process group = pid). A failed exec is reported on
 * report_fd, written to the process's stderr, and ends it with 127 (not found) or 126. */
int cws_child_spawn(const struct cws_child_spec *c, pid_t *ret_pid, struct cws_error *err);

/* ---- main_cmd.c: the main command ---- */

/* Start the main command, its output going to the log. Blocks until it was executed:
 * -CWS_E_FAILED_PRECONDITION with the reason when it could not be. The caller frees *ret
 * with cws_main_cmd_free(). */
int cws_main_cmd_start(struct init_ctx *ctx, struct main_cmd **ret, struct cws_error *err);
void cws_main_cmd_free(struct main_cmd *m);
pid_t cws_main_cmd_pid(const struct main_cmd *m);
/* A reaped child was the main command: record its status. */
void cws_main_cmd_exited(struct main_cmd *m, int status);
/* The main command has exited and its output reached EOF. */
bool cws_main_cmd_done(const struct main_cmd *m);
int cws_main_cmd_status(const struct main_cmd *m);

/* ---- exec_session.c: the init socket ---- */

/* Serve execs on ctx->listen_fd. */
int cws_exec_server_start(struct init_ctx *ctx, struct cws_error *err);
/* Stop accepting connections. */
void cws_exec_server_stop(struct init_ctx *ctx);
/* A reaped child: returns true when it belonged to an exec session. */
bool cws_exec_sessions_reaped(struct init_ctx *ctx, pid_t pid, int status);
/* Whether every session has finished sending. */
bool cws_exec_sessions_idle(const struct init_ctx *ctx);
void cws_exec_sessions_free_all(struct init_ctx *ctx);

/* ---- main.c ---- */

/* Something changed that may let init finish (main command done, session closed). */
void cws_init_check_end(struct init_ctx *ctx);

#endif
