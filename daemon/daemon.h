/* cwsandboxd: the state every part of the daemon shares, and the interfaces between its
 * parts (listener, client connections, dispatch, configuration, credentials, backend). */
#ifndef CWS_DAEMON_H
#define CWS_DAEMON_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cws_error.h"
#include "log.h"
#include "rpc_decoder.h"

#define CWSD_PROTOCOL 1
/* Bytes queued towards one client above which its streams stop reading their backend
 * calls (and below half of which they resume). */
#define CWSD_CLIENT_OUT_HIGH (8u * 1024 * 1024)

struct cwsd;
struct cwsd_client;
struct cwsd_call;

/* ---- configuration (config.c) ---- */

enum cwsd_backend_kind { CWSD_BACKEND_AUTO, CWSD_BACKEND_REMOTE, CWSD_BACKEND_LOCAL };

struct cwsd_config {
    char *socket_path;
    char *config_path;
    enum cwsd_backend_kind backend;
    char *base_url; /* remote API; explicit when set by file or CWSANDBOX_BASE_URL */
    bool base_url_explicit;
    char *local_path; /* the cwsandbox-local binary */
    char *api_key;    /* from the config file only; the environment is read by creds */
    char *log_level;
    int64_t orphan_grace_s;
    double session_idle_ttl_s; /* for sessions opened without one; 0: never */
    char *state_dir;           /* the registry's directory; NULL: $XDG_STATE_HOME/cwsandbox */
    bool cleanup_on_logout;
    bool foreground;
};

/* Read the config file (missing is fine), then the environment. Unknown keys are warned
 * about by name. Fills *cfg (free with cwsd_config_clear). */
int cwsd_config_load(const char *path, struct cwsd_config *cfg, struct cws_error *err);
void cwsd_config_clear(struct cwsd_config *cfg);
const char *cwsd_backend_name(enum cwsd_backend_kind kind);
int cwsd_backend_parse(const char *s, enum cwsd_backend_kind *ret, struct cws_error *err);

/* ---- credentials (credentials.c) ---- */

struct cwsd_credentials {
    const char *strategy; /* "api_key", "wandb", "none" */
    const char *source;   /* "CWSANDBOX_API_KEY", "WANDB_API_KEY", "~/.netrc", "config", "none" */
    /* Request metadata for the backend: name, value, ..., NULL. Holds the secret. */
    char **headers;
};

/* Resolve credentials in the order of DESIGN §4. A W&B key without WANDB_ENTITY_NAME is an
 * error naming the variable. Fills *ret (free with cwsd_credentials_clear). */
int cwsd_credentials_resolve(const struct cwsd_config *cfg, struct cwsd_credentials *ret,
                             struct cws_error *err);
void cwsd_credentials_clear(struct cwsd_credentials *c);
bool cwsd_credentials_present(const struct cwsd_credentials *c);

/* ---- the daemon ---- */

struct cwsd {
    struct event_base *base;
    struct cwsd_config cfg;
    struct cwsd_credentials creds;
    int listen_fd;
    bool listen_fd_activated; /* from systemd: not ours to unlink */
    ino_t socket_ino;         /* the socket file we made, to unlink only that one */
    struct event *accept_ev;
    struct cwsd_client *clients;
    size_t n_clients;
    uint64_t next_client_id;
    int64_t started_ms;
    uint64_t calls_in_flight;
    bool stopping;                  /* shutting down: the reaper has stopped what it had to */
    struct cwsd_sandbox *sandboxes; /* sandbox_table.c: a list and a hash index */
    size_t n_sandboxes;
    struct cwsd_sandbox **sandbox_buckets;
    size_t n_sandbox_buckets;
    struct cwsd_session *sessions;
    struct cwsd_pending *pending;   /* creates persisted, not yet answered (registry.c) */
    struct cwsd_registry *registry; /* NULL when it could not be opened: nothing persists */
    char owner_tag[64];             /* on every sandbox this daemon creates */
    bool recovering;                /* the start-up reconciliation with the backend runs */
    struct cws_gclient *gclient;    /* the backend connection pool */
    /* backend */
    char *backend_url; /* "unix:/path" for the local child, else base_url */
    bool backend_local;
    pid_t local_pid;
    struct event *local_restart_ev;
    struct event *local_sigchld_ev;
    char *local_socket;
    int local_restarts;
};

/* ---- listener.c ---- */

/* Listen on the socket (systemd socket activation first, else bind cfg.socket_path in its
 * checked runtime directory, mode 0600). */
int cwsd_listen(struct cwsd *d, struct cws_error *err);
void cwsd_listen_close(struct cwsd *d);

/* ---- client.c: one connected process ---- */

struct cwsd_client {
    struct cwsd *d;
    uint64_t id;
    struct bufferevent *bev;
    struct cws_rpc_decoder *dec;
    pid_t pid;
    uid_t uid;
    bool hello_done;
    char name[64];
    char *session;           /* the session it is attached to, or NULL */
    struct cwsd_call *calls; /* requests in flight */
    bool closing;
    int depth; /* > 0 while our callbacks run: closing then waits for them to return */
    struct cwsd_client *next;
};

/* Adopt an accepted, already authenticated connection. */
int cwsd_client_new(struct cwsd *d, int fd, pid_t pid, uid_t uid, struct cws_error *err);
/* The connected client with this id (not closing), or NULL. */
struct cwsd_client *cwsd_client_by_id(struct cwsd *d, uint64_t id);
/* Close a client: cancels its calls, frees it. */
void cwsd_client_close(struct cwsd_client *c, const char *why);
/* A packer that queues what it packs towards the client. */
void cwsd_client_packer(struct cwsd_client *c, msgpack_packer *pk);
/* Stop (or resume) reading requests from a client: its uploads then wait in the socket. */
void cwsd_client_pause_reading(struct cwsd_client *c, bool paused);
/* Bytes queued towards the client and not yet written. */
size_t cwsd_client_pending(const struct cwsd_client *c);

/* ---- calls: one request being served ---- */

struct cwsd_call {
    struct cwsd_client *client;
    uint32_t msgid;
    char method[CWS_RPC_METHOD_MAX];
    /* Set by a handler that answers later; called when the client cancels or goes away. */
    void (*on_cancel)(struct cwsd_call *call, void *ud);
    /* Called when a client's output queue drains below the low-water mark. */
    void (*on_writable)(struct cwsd_call *call, void *ud);
    /* Called for exec.stdin / exec.eof / exec.resize notifications naming this call. */
    void (*on_notify)(struct cwsd_call *call, const char *method, const msgpack_object *params,
                      void *ud);
    void *ud;
    struct cwsd_call *next;
};

/* A request being served (dispatch.c makes them); the handler answers it exactly once. */
struct cwsd_call *cwsd_call_new(struct cwsd_client *c, uint32_t msgid, const char *method);
struct cwsd_call *cwsd_client_find_call(struct cwsd_client *c, uint32_t msgid);

/* Pack helpers: the reply functions build the whole message with the packer the callback is
 * given and queue it. */
typedef int (*cwsd_pack_fn)(msgpack_packer *pk, void *ud);

/* Answer a call with a result packed by fn, and free the call. */
int cwsd_call_reply(struct cwsd_call *call, cwsd_pack_fn fn, void *ud);
/* Answer a call with an error, and free the call. */
int cwsd_call_fail(struct cwsd_call *call, const struct cws_error *err);
/* Shorthand for cwsd_call_fail with a formatted message. */
int cwsd_call_failf(struct cwsd_call *call, enum cws_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Send a notification tied to the call (params map packed by fn, which must include
 * "id": msgid). Returns 0, or 1 when the client's queue is above the high-water mark. */
int cwsd_call_notify(struct cwsd_call *call, const char *method, cwsd_pack_fn fn, void *ud);

/* ---- dispatch.c ---- */

typedef void (*cwsd_method_fn)(struct cwsd_call *call, const msgpack_object *params);

struct cwsd_method {
    const char *name;
    cwsd_method_fn fn;
};

/* Serve one request; the handler answers now or later (the call is owned by it then). */
void cwsd_dispatch(struct cwsd_client *c, const struct cws_rpc_msg *msg);
/* A notification from the client (exec.stdin, cancel, ...). */
void cwsd_dispatch_notification(struct cwsd_client *c, const struct cws_rpc_msg *msg);

/* ---- methods ---- */
void cwsd_method_hello(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_daemon_status(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_sandbox_create(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_sandbox_get(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_sandbox_list(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_sandbox_wait(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_sandbox_stop(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_sandbox_delete(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_sandbox_purge(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_exec(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_file_read(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_file_write(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_logs(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_session_open(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_session_close(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_session_list(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_session_get(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_sandbox_adopt(struct cwsd_call *call, const msgpack_object *params);
void cwsd_method_sandbox_detach(struct cwsd_call *call, const msgpack_object *params);

/* ---- local_backend.c ---- */

/* Choose the backend from the configuration and credentials; for the local one, start
 * cwsandbox-local on a private socket and keep it running. */
int cwsd_backend_start(struct cwsd *d, struct cws_error *err);
void cwsd_backend_stop(struct cwsd *d);

int64_t cwsd_monotonic_ms(void);
int64_t cwsd_wall_ms(void);

/* Log with the journald fields SANDBOX_ID=, SESSION= and CLIENT_PID= (each left out when
 * NULL or 0). */
void cwsd_log_about(enum cws_log_level level, const char *sandbox_id, const char *session,
                    pid_t client_pid, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
