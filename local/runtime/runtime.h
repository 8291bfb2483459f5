/* The sandbox runtime of cwsandbox-local: starts sandboxes on this machine (Linux namespaces,
 * an overlay root, cwsandbox-init as PID 1), stops them, runs commands in them, moves files in
 * and out and reads their logs. It knows nothing about gRPC: the service layer (service_*.c)
 * maps RPCs onto these calls.
 *
 * Every sandbox has a directory <state_dir>/sandboxes/<id>/ owned by the runtime (upper layer,
 * log, init socket, exit status). Sandboxes outlive the server process: a restarted server
 * re-attaches to them with cws_rt_sandbox_attach().
 *
 * All functions run on the loop's thread and never block it for long; results arrive through
 * callbacks on that loop. A callback may call any function of this header, including the
 * ones that free the object it was called for.
 */
#ifndef CWS_RUNTIME_H
#define CWS_RUNTIME_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cws_error.h"

struct cws_rt;
struct cws_rt_sandbox;
struct cws_rt_exec;
struct cws_rt_log_watch;

struct cws_rt_config {
    struct event_base *base;
    const char *state_dir;           /* sandboxes live in <state_dir>/sandboxes/<id> */
    const char *images_dir;          /* <images_dir>/<sanitised image name>/rootfs */
    const char *init_path;           /* the cwsandbox-init binary */
    const char *const *hidden_paths; /* host paths never visible inside (NULL-terminated):
                                        the server's state, runtime and config dirs */
};

/* Create the runtime. The caller frees *ret with cws_rt_free(). */
int cws_rt_new(const struct cws_rt_config *cfg, struct cws_rt **ret, struct cws_error *err);

/* Free the runtime and every handle; sandboxes keep running. Accepts NULL. Not from inside
 * one of the runtime's callbacks. */
void cws_rt_free(struct cws_rt *rt);

/* ---- sandboxes ---- */

struct cws_rt_file {
    const char *path; /* absolute, inside the sandbox */
    const uint8_t *data;
    size_t len;
};

struct cws_rt_spec {
    const char *id;          /* [a-z0-9-]{1,63}; also the hostname */
    const char *image;       /* looked up in images_dir; "" or missing: the host root */
    const char *const *argv; /* main command, NULL-terminated, at least one element */
    const char *const *env;  /* "KEY=VALUE", NULL-terminated; may be NULL */
    const char *cwd;         /* working directory inside, or NULL for "/" */
    const struct cws_rt_file *files;
    size_t n_files;
    bool deny_egress; /* loopback only */
    const int *ports; /* service ports to forward to the host's 127.0.0.1 */
    size_t n_ports;
    const char *cpu_limit;    /* Kubernetes quantities ("500m", "2"), or NULL */
    const char *memory_limit; /* ("512Mi", "1G"), or NULL */
    int64_t max_lifetime_s;   /* 0: none; the sandbox is stopped when it passes */
};

struct cws_rt_sandbox_events {
    /* The main command is running. */
    void (*on_running)(struct cws_rt_sandbox *sb, void *ud);
    /* The sandbox has ended (main command exited, was stopped, or setup failed). exit_code
     * is the main command's status, 128+N when killed by signal N, or -1 when it never ran;
     * reason explains a failure or a kill ("stopped", "max lifetime of 60 s reached",
     * "setup failed: ..."), or is NULL. No event follows. */
    void (*on_exit)(struct cws_rt_sandbox *sb, int exit_code, const char *reason, void *ud);
};

/* Start a sandbox; returns at once, events follow. *ret_notes (may be NULL) gets
 * human-readable notes for the sandbox's state_reason, e.g. "image python:3.12 not found in
 * /x/images; using the host root read-only" or "resource limits not enforced: no delegated
 * cgroup v2"; the caller frees it with free(). The caller frees *ret with
 * cws_rt_sandbox_release() (which does not stop the sandbox). */
int cws_rt_sandbox_start(struct cws_rt *rt, const struct cws_rt_spec *spec,
                         const struct cws_rt_sandbox_events *ev, void *ud,
                         struct cws_rt_sandbox **ret, char **ret_notes, struct cws_error *err);

/* Find a sandbox started by an earlier server process. If it is still running, on_running is
 * not repeated; if it has ended meanwhile, on_exit fires soon with what was recorded.
 * -CWS_E_NOT_FOUND when there is no such sandbox directory. */
int cws_rt_sandbox_attach(struct cws_rt *rt, const char *id, const struct cws_rt_sandbox_events *ev,
                          void *ud, struct cws_rt_sandbox **ret, struct cws_error *err);

/* Ask the main command to stop (SIGTERM), and kill every process of the sandbox after
 * grace_ms (0: at once). on_exit follows. Repeating it may only shorten the grace. */
int cws_rt_sandbox_stop(struct cws_rt_sandbox *sb, int64_t grace_ms);

/* URL of a forwarded service port ("http://127.0.0.1:PORT"), or NULL. Owned by sb. */
const char *cws_rt_sandbox_service_url(const struct cws_rt_sandbox *sb, int port);

/* Drop the handle without stopping the sandbox. Accepts NULL. */
void cws_rt_sandbox_release(struct cws_rt_sandbox *sb);

/* Delete an ended sandbox's directory (its files and log). */
int cws_rt_sandbox_remove(struct cws_rt *rt, const char *id, struct cws_error *err);

/* ---- commands ---- */

struct cws_rt_exec_spec {
    const char *const *argv; /* NULL-terminated, at least one element */
    const char *const *env;  /* extra "KEY=VALUE", or NULL */
    const char *cwd;         /* or NULL */
    bool tty;
    unsigned cols, rows; /* 0: default 80x24 */
};

struct cws_rt_exec_events {
    /* The process runs; stdin can be written. */
    void (*on_started)(struct cws_rt_exec *ex, void *ud);
    /* Output, in order per stream; fd 1 or 2 (a TTY gives only 1). */
    void (*on_output)(struct cws_rt_exec *ex, int fd, const uint8_t *data, size_t len, void *ud);
    /* stdin's queue fell below the low-water mark after cws_rt_exec_write() returned 1. */
    void (*on_stdin_drained)(struct cws_rt_exec *ex, void *ud);
    /* The process ended and all its output was delivered: 128+N for signal N. Last event. */
    void (*on_exit)(struct cws_rt_exec *ex, int exit_code, void *ud);
    /* It could not start (command not found is an exit 127, not this), or the sandbox went
     * away: e.g. CWS_E_FAILED_PRECONDITION "sandbox is not running". Last event. */
    void (*on_error)(struct cws_rt_exec *ex, const struct cws_error *err, void *ud);
};

/* Run a command in a running sandbox. The caller frees *ret with cws_rt_exec_free(). */
int cws_rt_exec_start(struct cws_rt_sandbox *sb, const struct cws_rt_exec_spec *spec,
                      const struct cws_rt_exec_events *ev, void *ud, struct cws_rt_exec **ret,
                      struct cws_error *err);

/* Queue bytes for the process's stdin. Returns 0, 1 when the queue is above its high-water
 * mark (wait for on_stdin_drained), or negative once stdin is closed or the process gone. */
int cws_rt_exec_write(struct cws_rt_exec *ex, const uint8_t *data, size_t len);

/* End of stdin, after the queued bytes. The process keeps running. */
int cws_rt_exec_close_stdin(struct cws_rt_exec *ex);

/* New terminal size (TTY execs). */
int cws_rt_exec_resize(struct cws_rt_exec *ex, unsigned cols, unsigned rows);

/* Send signal sig to the process group of the command. */
int cws_rt_exec_signal(struct cws_rt_exec *ex, int sig);

/* Stop delivering output while paused (the process then blocks on a full pipe). */
void cws_rt_exec_pause_output(struct cws_rt_exec *ex, bool paused);

/* Kill the process group if still running and free the handle; no event follows.
 * Accepts NULL. */
void cws_rt_exec_free(struct cws_rt_exec *ex);

/* ---- files ---- */

/* Read a file of a running sandbox, resolved inside its root (no symlink or ".." reaches the
 * host). Errors: CWS_E_NOT_FOUND reason CWSANDBOX_FILE_NOT_FOUND, CWS_E_FAILED_PRECONDITION
 * reason CWSANDBOX_FILE_IS_DIRECTORY, CWS_E_PERMISSION_DENIED reason
 * CWSANDBOX_FILE_PERMISSION_DENIED, CWS_E_RESOURCE_EXHAUSTED reason CWSANDBOX_FILE_TOO_LARGE
 * when larger than max_len (then *ret_size says the size). *ret_data is malloc'ed; the
 * caller frees it. */
int cws_rt_file_read(struct cws_rt_sandbox *sb, const char *path, size_t max_len,
                     uint8_t **ret_data, size_t *ret_len, uint64_t *ret_size,
                     struct cws_error *err);

/* Create or replace a file (parent directories must exist: else CWSANDBOX_FILE_NOT_FOUND). */
int cws_rt_file_write(struct cws_rt_sandbox *sb, const char *path, const uint8_t *data, size_t len,
                      struct cws_error *err);

/* ---- logs: what the main command wrote ---- */

struct cws_rt_log_entry {
    int64_t time_ns; /* CLOCK_REALTIME when the bytes were read */
    int fd;          /* 1 or 2 */
    const uint8_t *data;
    size_t len;
    uint64_t offset; /* cumulative bytes of log before this entry */
};

/* Call cb for every entry whose data starts at or after offset `from`, in order, until the
 * end of what is recorded or cb returns non-zero (that entry counts as delivered).
 * *ret_next: the offset after the last entry delivered (`from` when none was). Works for
 * running and ended sandboxes (by id, no handle needed). */
int cws_rt_log_read(struct cws_rt *rt, const char *id, uint64_t from,
                    int (*cb)(const struct cws_rt_log_entry *e, void *ud), void *ud,
                    uint64_t *ret_next, struct cws_error *err);

/* Call cb (on the loop) whenever the log may have grown, and once more when the sandbox
 * has ended. The caller frees *ret with cws_rt_log_unwatch(). */
int cws_rt_log_watch(struct cws_rt_sandbox *sb, void (*cb)(void *ud), void *ud,
                     struct cws_rt_log_watch **ret, struct cws_error *err);
void cws_rt_log_unwatch(struct cws_rt_log_watch *w);

#endif
