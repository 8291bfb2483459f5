/* Sandboxes: create, run, get (from an id), list, wait, stop, delete, adopt, detach, purge.
 *
 * Sandboxes are named by their id (a string such as "sbx-1f2e…"), which any process of the
 * same user may use: the daemon holds them, not the client. Every function returns an op at
 * once (see op.h); a finished op gives the sandbox with cws_op_sandbox() (or the list with
 * cws_op_sandboxes()).
 *
 * Ownership of the remote sandbox (DESIGN §4): a sandbox created by a client without a session
 * belongs to that client's connection, and the daemon stops it after a grace period when the
 * client goes away (even killed). Create it `detached` to keep it, or in a session to share it.
 */
#ifndef CWSANDBOX_SANDBOX_H
#define CWSANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cwsandbox/client.h>
#include <cwsandbox/config.h>
#include <cwsandbox/op.h>

#ifdef __cplusplus
extern "C" {
#endif

#include <cwsandbox/error.h>

enum cws_sandbox_state {
    CWS_STATE_UNSPECIFIED = 0,
    CWS_STATE_CREATING,
    CWS_STATE_PENDING,
    CWS_STATE_RUNNING,
    CWS_STATE_PAUSED,
    CWS_STATE_TERMINATING,
    CWS_STATE_COMPLETED,
    CWS_STATE_FAILED,
    CWS_STATE_TERMINATED,
};

/* Who keeps a sandbox alive (see above). */
enum cws_owner {
    CWS_OWNER_DEFAULT = 0, /* `session` when created in a session, else `client` */
    CWS_OWNER_CLIENT,
    CWS_OWNER_SESSION,
    CWS_OWNER_DETACHED,
};

struct cws_service_url {
    int port;
    const char *name; /* "" when unnamed */
    const char *url;  /* "" until assigned */
};

/* A sandbox as the daemon knows it (SandboxInfo). Strings are never NULL ("" when absent);
 * times are milliseconds since the Unix epoch, 0 when not reached. */
struct cws_sandbox_info {
    const char *id;
    enum cws_sandbox_state state;
    const char *state_reason;
    bool has_exit_code; /* exit_code is known */
    int exit_code;
    int64_t created_ms;
    int64_t started_ms;
    int64_t ended_ms;
    const char *runner_id;
    const struct cws_service_url *services;
    size_t n_services;
    const char *const *tags; /* NULL-terminated as well */
    size_t n_tags;
    const char *session; /* "" when in none */
    const char *owner;   /* "client", "session" or "detached" */
};

struct cws_create_options {
    const char *session;    /* NULL: the client's session (cws_client_session()), if any */
    enum cws_owner owner;   /* who keeps it alive */
    bool wait_running;      /* answer once it runs, not as soon as it is accepted */
    double timeout_s;       /* deadline of that wait; 0: the daemon's default (300 s) */
    const char *request_id; /* idempotency key: the same id gives the same sandbox; NULL: none */
};

struct cws_list_options {
    const char *const *tags;       /* NULL-terminated; a sandbox must have all of them */
    enum cws_sandbox_state state;  /* CWS_STATE_UNSPECIFIED: any */
    const char *session;           /* only the sandboxes of this session */
    const char *const *runner_ids; /* NULL-terminated; any of them */
    bool show_terminated;          /* include terminal sandboxes */
};

struct cws_stop_options {
    double grace_s;  /* between SIGTERM and SIGKILL; 0: the daemon's default (10 s). For no
                        grace at all, use cws_sandbox_delete(). */
    bool missing_ok; /* a sandbox that does not exist is not an error */
    bool no_wait;    /* answer once the stop is sent, not once the sandbox is terminal */
};

/* The result of cws_sandbox_purge() and cws_session_close(). */
struct cws_batch_result {
    uint64_t count;            /* sandboxes purged (or that would be, with dry_run) / stopped */
    const char *const *failed; /* ids that could not be, NULL-terminated */
    size_t n_failed;
};

/* Create a sandbox (sandbox.create; the SDK's start()). cfg may be NULL (all defaults); opts may be
 * NULL. A config that remembers a setter error fails here with that error. On success the op gives
 * the new sandbox with cws_op_sandbox(). The caller frees *ret_op. */
int cws_sandbox_create(cws_client *c, const cws_sandbox_config *cfg,
                       const struct cws_create_options *opts, cws_op **ret_op,
                       struct cws_error *err);

/* Create a sandbox and wait until it runs (the SDK's run(), which here also waits for
 * RUNNING): cws_sandbox_create() with wait_running, and a blocking wait bounded by the
 * create's timeout (plus a margin). cfg and opts may be NULL.
 * Returns 0 and sets *ret_info, which the caller frees with cws_sandbox_info_free(); or the
 * error (-CWS_E_SANDBOX_FAILED when it failed to start, -CWS_E_DEADLINE_EXCEEDED, ...). */
int cws_sandbox_run(cws_client *c, const cws_sandbox_config *cfg,
                    const struct cws_create_options *opts, struct cws_sandbox_info **ret_info,
                    struct cws_error *err);

/* A sandbox by id (sandbox.get; the SDK's from_id() and get_status()): from the daemon's cache, or
 * asked from the backend when fresh. Works for stopped sandboxes too; an unknown id fails with
 * -CWS_E_NOT_FOUND. The caller frees *ret_op. */
int cws_sandbox_get(cws_client *c, const char *id, bool fresh, cws_op **ret_op,
                    struct cws_error *err);

/* List sandboxes (sandbox.list), all pages; opts may be NULL. The op gives them with
 * cws_op_sandboxes(). The caller frees *ret_op. */
int cws_sandbox_list(cws_client *c, const struct cws_list_options *opts, cws_op **ret_op,
                     struct cws_error *err);

/* Wait, on the daemon, until the sandbox runs (sandbox.wait until `running`). A sandbox that
 * fails or is terminated meanwhile fails the op with -CWS_E_SANDBOX_FAILED /
 * -CWS_E_SANDBOX_TERMINATED; timeout_s (0: 300 s) with -CWS_E_DEADLINE_EXCEEDED. The caller
 * frees *ret_op. */
int cws_sandbox_wait(cws_client *c, const char *id, double timeout_s, cws_op **ret_op,
                     struct cws_error *err);

/* Wait until the sandbox reaches a terminal state (sandbox.wait until `terminal`): its main
 * process exited, or it was stopped. The op gives the final state and exit code. The caller
 * frees *ret_op. */
int cws_sandbox_wait_until_complete(cws_client *c, const char *id, double timeout_s,
                                    cws_op **ret_op, struct cws_error *err);

/* Stop a sandbox (sandbox.stop): SIGTERM, then SIGKILL after the grace period. By default the
 * op finishes once the sandbox is terminal. opts may be NULL. The caller frees *ret_op. */
int cws_sandbox_stop(cws_client *c, const char *id, const struct cws_stop_options *opts,
                     cws_op **ret_op, struct cws_error *err);

/* Delete a sandbox at once, with no grace (sandbox.delete). The op has no result. The caller
 * frees *ret_op. */
int cws_sandbox_delete(cws_client *c, const char *id, bool missing_ok, cws_op **ret_op,
                       struct cws_error *err);

/* Move a sandbox into a session (sandbox.adopt), or make it detached (sandbox.detach): its
 * life is then tied to the session, or to nothing but its lifetime. The caller frees *ret_op. */
int cws_sandbox_adopt(cws_client *c, const char *id, const char *session, cws_op **ret_op,
                      struct cws_error *err);
int cws_sandbox_detach(cws_client *c, const char *id, cws_op **ret_op, struct cws_error *err);

/* Stop every sandbox that has all of tags (NULL-terminated, at least one) (sandbox.purge);
 * with dry_run only count them. The op gives cws_op_batch_result(). The caller frees *ret_op. */
int cws_sandbox_purge(cws_client *c, const char *const *tags, bool dry_run, cws_op **ret_op,
                      struct cws_error *err);

/* The sandbox of a finished create/get/wait/stop/adopt/detach op; NULL otherwise, and after a
 * missing_ok stop of a sandbox that did not exist. Owned by the op. */
const struct cws_sandbox_info *cws_op_sandbox(const cws_op *op);

/* The sandboxes of a finished list op, as an array of *ret_n; NULL (and *ret_n 0) otherwise.
 * Owned by the op. */
const struct cws_sandbox_info *cws_op_sandboxes(const cws_op *op, size_t *ret_n);

/* The result of a finished purge or session close op; NULL otherwise. Owned by the op. */
const struct cws_batch_result *cws_op_batch_result(const cws_op *op);

/* A deep copy of info, to keep it beyond its op. Returns 0 and sets *ret (the caller frees it
 * with cws_sandbox_info_free()), or -CWS_E_NOMEM. */
int cws_sandbox_info_dup(const struct cws_sandbox_info *info, struct cws_sandbox_info **ret);

/* Free a copy made by cws_sandbox_info_dup() or cws_sandbox_run(). Accepts NULL. Never pass
 * the info of an op. */
void cws_sandbox_info_free(struct cws_sandbox_info *info);

/* "running", "completed", ... (the protocol's names). Never NULL. */
const char *cws_sandbox_state_name(enum cws_sandbox_state state);

/* completed, failed or terminated: the sandbox will not change any more. */
bool cws_sandbox_state_is_terminal(enum cws_sandbox_state state);

#ifdef __cplusplus
}
#endif

#endif
