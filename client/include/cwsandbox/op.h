/* cws_op: one operation in flight.
 *
 * Every call that talks to the daemon returns a cws_op at once, having queued its request. The
 * request is written to the socket right away when the socket has room, and otherwise by the
 * next cws_client_process() or wait. Many ops may be in flight on one connection; their
 * responses arrive in any order.
 *
 * Block for one op with cws_op_wait(), for a set with cws_op_wait_any() / cws_op_wait_all(),
 * or drive the connection from your own event loop (cws_client_fd(), cws_client_process()) and
 * get a callback when an op finishes (cws_op_set_done_callback()).
 *
 * Once done, an op holds either its result (read it with the accessor of its kind, such as
 * cws_op_sandbox() or cws_op_exec_result()) or its error (cws_op_error()). It keeps them until
 * cws_op_free(), even when its client has been freed.
 */
#ifndef CWSANDBOX_OP_H
#define CWSANDBOX_OP_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include <cwsandbox/error.h>

typedef struct cws_op cws_op;

/* Called once when an op finishes (successfully or not), from inside cws_client_process() or
 * a wait. The callback may read the op, free it, start new ops and wait on them; it must not
 * free the op's client. */
typedef void (*cws_op_done_fn)(cws_op *op, void *userdata);

/* Wait at most timeout_ms (-1: no limit) for op to finish, processing the connection
 * meanwhile (other ops may finish and call their callbacks).
 * Returns 0 when the op succeeded; its error code (and fills err) when it failed;
 * -CWS_E_DEADLINE_EXCEEDED when timeout_ms passed first, with cws_op_done(op) still false:
 * the op goes on, and you may wait again or cancel it. A lost daemon fails the op with
 * -CWS_E_UNAVAILABLE: a wait never hangs on a dead connection. */
int cws_op_wait(cws_op *op, int timeout_ms, struct cws_error *err);

/* Wait until at least one of ops[0..n) is done; store its index in *ret_index (the lowest
 * index among the done ones). The ops may belong to different clients. Returns 0, or
 * -CWS_E_DEADLINE_EXCEEDED, or -CWS_E_INVALID_ARGUMENT for an empty set. Failed ops count as
 * done: read each op's outcome with cws_op_error(). */
int cws_op_wait_any(cws_op *const *ops, size_t n, int timeout_ms, size_t *ret_index,
                    struct cws_error *err);

/* Wait until every op of ops[0..n) is done (an empty set is done at once). Returns 0 or
 * -CWS_E_DEADLINE_EXCEEDED; failed ops count as done. */
int cws_op_wait_all(cws_op *const *ops, size_t n, int timeout_ms, struct cws_error *err);

/* Whether the op has finished (with a result or an error). */
bool cws_op_done(const cws_op *op);

/* The op's error once it has failed; NULL while it runs or when it succeeded. Owned by the
 * op. */
const struct cws_error *cws_op_error(const cws_op *op);

/* The protocol method the op called ("sandbox.create", "exec", ...). Never NULL. */
const char *cws_op_method(const cws_op *op);

/* Ask the daemon to cancel the op (the `cancel` notification). The op then finishes with
 * -CWS_E_CANCELLED, or with its result if that was already on its way. Cancelling a finished
 * op does nothing. Returns 0, or -CWS_E_UNAVAILABLE when the connection is lost. */
int cws_op_cancel(cws_op *op, struct cws_error *err);

/* Call fn(op, userdata) when the op finishes; at once (from this call) if it already has.
 * Replaces an earlier callback; fn NULL removes it. */
void cws_op_set_done_callback(cws_op *op, cws_op_done_fn fn, void *userdata);

/* Free an op and its result. Accepts NULL. Freeing an op in flight forgets it: its response
 * is dropped when it comes. A streaming op (exec, logs, file transfers) is also cancelled, since
 * nobody could read its stream any more; other requests (create, stop, ...) still take effect
 * on the daemon as long as the client stays connected long enough to send them (see
 * cws_client_flush()). */
void cws_op_free(cws_op *op);

#ifdef __cplusplus
}
#endif

#endif
