/* Sessions: named groups of sandboxes held by the daemon and shared by any number of
 * processes.
 *
 * A session has defaults (a config merged into every create in it: explicit values win, tags
 * and environment merge), its sandboxes, and the clients attached to it. It lives until it is
 * closed (which stops its sandboxes) or idles past its TTL.
 *
 * A client works in at most one session at a time (cws_client_session()): the sandboxes it
 * creates join it. Opening or attaching a session makes it the client's; so does
 * CWSANDBOX_SESSION=name in the environment (or the session option) when the client
 * connects: the handshake names the session, so the connection joins it, opening it when
 * missing, and counts among its clients. That is how processes share one: the session's
 * sandboxes outlive the process that created them, and closing the session from any client
 * stops them all (see examples/shared_session.c).
 */
#ifndef CWSANDBOX_SESSION_H
#define CWSANDBOX_SESSION_H

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

/* A session as the daemon knows it. Strings are never NULL ("" when absent). */
struct cws_session_info {
    const char *name;
    const char *const *sandbox_ids; /* its sandboxes, NULL-terminated */
    size_t n_sandboxes;
    uint64_t clients;  /* connections attached (by hello, open or attach) */
    double idle_ttl_s; /* closed after this long without clients; 0: never */
    int64_t created_ms;
};

/* Open a session (session.open): name NULL lets the daemon choose one; an existing name
 * attaches to it. defaults (may be NULL) applies to every sandbox created in it; idle_ttl_s 0
 * keeps the daemon's default. On success the session becomes the client's. The op gives
 * cws_op_session(). The caller frees *ret_op. */
int cws_session_open(cws_client *c, const char *name, const cws_sandbox_config *defaults,
                     double idle_ttl_s, cws_op **ret_op, struct cws_error *err);

/* Attach to an existing session by name (session.open with the name only); on success it
 * becomes the client's. The caller frees *ret_op. */
int cws_session_attach(cws_client *c, const char *name, cws_op **ret_op, struct cws_error *err);

/* Close a session (session.close), stopping its sandboxes unless keep_sandboxes. The op gives
 * cws_op_batch_result() (the stopped count and the ids that failed to stop). When it is the
 * client's session, the client leaves it. The caller frees *ret_op. */
int cws_session_close(cws_client *c, const char *name, bool keep_sandboxes, cws_op **ret_op,
                      struct cws_error *err);

/* List the open sessions (session.list): cws_op_sessions(). The caller frees *ret_op. */
int cws_session_list(cws_client *c, cws_op **ret_op, struct cws_error *err);

/* One session by name (session.get): cws_op_session(). The caller frees *ret_op. */
int cws_session_get(cws_client *c, const char *name, cws_op **ret_op, struct cws_error *err);

/* The session of a finished open/attach/get op; NULL otherwise. Owned by the op. */
const struct cws_session_info *cws_op_session(const cws_op *op);

/* The sessions of a finished list op, an array of *ret_n; NULL otherwise. Owned by the op. */
const struct cws_session_info *cws_op_sessions(const cws_op *op, size_t *ret_n);

#ifdef __cplusplus
}
#endif

#endif
