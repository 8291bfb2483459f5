/* cws_client: one connection to cwsandboxd.
 *
 * Connecting finds the daemon's socket ($CWSANDBOX_SOCKET, else
 * $XDG_RUNTIME_DIR/cwsandbox/cwsandboxd.sock, else /tmp/cwsandbox-$UID/cwsandboxd.sock), and
 * when no daemon listens there (and systemd does not hold the socket for one) starts
 * cwsandboxd itself, race-free: a lock file next to the socket serialises the processes that
 * connect at the same moment, each retries the connect once it holds the lock, and only the
 * first one starts a daemon (as tmux does). The daemon binary is $CWSANDBOXD, else cwsandboxd
 * beside the running program, else in the bin directory of the library's install prefix, else
 * cwsandboxd on PATH. A daemon
 * that this library started and that speaks an older protocol is restarted.
 *
 * Every connection begins with the `hello` handshake; cws_client_daemon() gives its answer.
 *
 * Event-loop integration: watch cws_client_fd() for reading (and for writing while
 * cws_client_want_write() is true) and call cws_client_process() when it is ready. Op
 * callbacks run from inside cws_client_process(). See examples/event_loop_poll.c and
 * examples/event_loop_libevent.c.
 *
 * Thread-safety: use a client and its ops from one thread at a time; clients are independent
 * of each other (one per thread is fine). See cwsandbox.h for the conventions.
 */
#ifndef CWSANDBOX_CLIENT_H
#define CWSANDBOX_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cwsandbox/op.h>

#ifdef __cplusplus
extern "C" {
#endif

#include <cwsandbox/error.h>

typedef struct cws_client cws_client;

struct cws_client_options {
    /* The daemon's socket. NULL: $CWSANDBOX_SOCKET, else the default path above. */
    const char *socket_path;
    /* Sent in hello as the client's name, "program/version". NULL: "libcwsandbox-client/V". */
    const char *name;
    /* The session this client works in: hello names it, so the connection joins it (opening
     * it when missing) and counts as one of its clients, and sandboxes it creates join it
     * unless told otherwise. NULL: $CWSANDBOX_SESSION, else none. An invalid name fails the
     * connect with -CWS_E_INVALID_ARGUMENT. */
    const char *session;
    /* The daemon binary to start. NULL: $CWSANDBOXD, else cwsandboxd beside the program, else
     * <prefix>/bin/cwsandboxd, else cwsandboxd on PATH. */
    const char *daemon_path;
    /* Deadline of the whole connect: lock, daemon start, hello. 0: 15000 ms. */
    int timeout_ms;
    /* Never start a daemon: fail with -CWS_E_UNAVAILABLE when none listens. */
    bool no_autostart;
};

/* What the daemon said in hello. Strings are never NULL ("" when absent). */
struct cws_backend_info {
    const char *kind;       /* "local" or "remote" */
    const char *url;        /* the backend's URL */
    const char *configured; /* "auto", "local" or "remote" */
};

struct cws_auth_info {
    const char *strategy; /* "api_key", "wandb", "none" (never the secret) */
    const char *source;   /* "CWSANDBOX_API_KEY", "WANDB_API_KEY", "~/.netrc", "config", "none" */
};

struct cws_daemon_info {
    const char *daemon; /* "cwsandboxd/0.1.0" */
    int protocol;       /* the protocol level it speaks */
    int64_t pid;        /* its process id */
    struct cws_backend_info backend;
    struct cws_auth_info auth;
};

/* A sandbox the daemon stopped on its own: an orphan whose client went away (or whose session
 * is gone after a restart), or the cleanup at logout. Strings are never NULL. */
struct cws_orphan_info {
    const char *sandbox_id;
    int64_t reaped_ms; /* when the daemon stopped it, ms since the Unix epoch */
    const char *why;   /* "its client went away", "the user logged out", ... */
};

/* The result of cws_client_status() (the daemon.status method). */
struct cws_daemon_status {
    const char *daemon;
    int64_t pid;
    int64_t uptime_ms;
    uint64_t clients;         /* connected clients, this one included */
    uint64_t sessions;        /* open sessions */
    uint64_t sandboxes;       /* sandboxes it tracks */
    uint64_t calls_in_flight; /* requests being served, over all clients */
    struct cws_backend_info backend;
    struct cws_auth_info auth;
    /* Added after 0.1.0 (new members go at the end): */
    uint64_t orphans_pending;              /* orphans waiting for their grace to end */
    const struct cws_orphan_info *orphans; /* what it stopped, oldest first (at most 100) */
    size_t n_orphans;
};

/* Connect to the daemon (starting it when needed, see above) and say hello. This one call
 * blocks, for at most opts->timeout_ms. opts may be NULL.
 * Returns 0 and sets *ret_client, which the caller frees with cws_client_free(); or
 * -CWS_E_UNAVAILABLE (no daemon and none could be started: the message says why),
 * -CWS_E_PERMISSION_DENIED (the socket directory or the daemon belongs to another user),
 * -CWS_E_FAILED_PRECONDITION (a daemon of another protocol that this library did not start),
 * -CWS_E_DEADLINE_EXCEEDED, -CWS_E_NOMEM. */
int cws_client_connect(const struct cws_client_options *opts, cws_client **ret_client,
                       struct cws_error *err);

/* Close the connection and free the client. Accepts NULL. Ops still in flight finish at once
 * with -CWS_E_CANCELLED (their callbacks run from this call) and stay valid until freed.
 * Requests not yet written are dropped: call cws_client_flush() first to be sure they left. */
void cws_client_free(cws_client *c);

/* The hello answer; owned by the client. */
const struct cws_daemon_info *cws_client_daemon(const cws_client *c);

/* The socket path this client connected to; owned by the client. */
const char *cws_client_socket_path(const cws_client *c);

/* The client's session (from the options, $CWSANDBOX_SESSION, or the last session opened or
 * attached), or NULL. Owned by the client. */
const char *cws_client_session(const cws_client *c);

/* Set (or with NULL, clear) the client's session: the default session of the creates it sends
 * from now on. It tells the daemon nothing (cws_session_attach() joins one). Returns 0 or
 * -CWS_E_NOMEM. */
int cws_client_set_session(cws_client *c, const char *name, struct cws_error *err);

/* The connection's file descriptor, for poll()/epoll/libevent. Owned by the client: do not
 * close it or read from it. */
int cws_client_fd(const cws_client *c);

/* Whether requests are waiting to be written: then watch the fd for writing too. */
bool cws_client_want_write(const cws_client *c);

/* Do whatever can be done without blocking: read and dispatch what the daemon sent (results,
 * streamed output; op callbacks run here) and write queued requests. Call it when the fd is
 * readable or writable; calling it at any other time is harmless. One call reads at most
 * 16 MiB, so that a fast stream cannot starve the rest of your loop: watch the fd
 * level-triggered (poll, libevent's default), not edge-triggered.
 * Returns 0, or -CWS_E_UNAVAILABLE once the connection is lost (every op in flight has then
 * failed with that code). */
int cws_client_process(cws_client *c, struct cws_error *err);

/* Block until every queued request has been written to the socket, for at most timeout_ms
 * (-1: no limit). Returns 0, -CWS_E_DEADLINE_EXCEEDED or -CWS_E_UNAVAILABLE. Useful before
 * exiting after fire-and-forget requests, and to bound memory when streaming stdin. */
int cws_client_flush(cws_client *c, int timeout_ms, struct cws_error *err);

/* Bytes of requests and stream data queued and not yet written. */
size_t cws_client_pending_bytes(const cws_client *c);

/* Number of ops in flight on this client. */
size_t cws_client_ops_in_flight(const cws_client *c);

/* Ask for the daemon's status (daemon.status). On success cws_op_daemon_status() gives it.
 * The caller frees *ret_op with cws_op_free(). */
int cws_client_status(cws_client *c, cws_op **ret_op, struct cws_error *err);

/* The status of a finished cws_client_status() op; NULL for another op, or before it
 * succeeded. Owned by the op. */
const struct cws_daemon_status *cws_op_daemon_status(const cws_op *op);

#ifdef __cplusplus
}
#endif

#endif
