/* libcwsandbox-client: the C library of CoreWeave Sandbox (cwsandbox).
 *
 * The library talks to cwsandboxd, the per-user daemon, over a Unix socket (msgpack-rpc,
 * docs/protocol.md). It starts the daemon when none is running. Everything the daemon does for
 * you (sandboxes, exec, files, logs, sessions) is one request away.
 *
 * Model, in four concepts:
 *  - cws_client      one connection to the daemon (client.h);
 *  - cws_op          one operation in flight: every call returns one at once, and
 *                    cws_op_wait() blocks for its result (op.h);
 *  - results         plain structs read from a finished op (cws_op_sandbox(),
 *                    cws_op_exec_result(), ...), owned by the op;
 *  - struct cws_error  what went wrong (code, message, reason, retryable, retry-after).
 *
 * Conventions, everywhere:
 *  - A function that can fail returns 0 (or a count) on success and a negative -CWS_E_xxx code
 *    on failure, and then fills the struct cws_error it was given (which may be NULL). Its ret_
 *    outputs are written only on success.
 *  - Whoever allocates says who frees, in each function's comment. Every destructor accepts
 *    NULL. Pointers into a result stay valid until the op that holds it is freed.
 *  - Options structs may be passed as NULL; a zero-initialised struct means "defaults".
 *  - Durations sent to the daemon are seconds (`timeout_s`, doubles, as in the protocol);
 *    local waits are milliseconds (`timeout_ms`, -1 waits without limit, as poll() does).
 *
 * Thread-safety: a cws_client and the ops made from it must be used by one thread at a time
 * (no locks are taken). Separate clients are independent, so one client per thread is fine.
 * The library keeps no global state and installs no signal handlers; it writes to its socket
 * with MSG_NOSIGNAL, so a lost daemon never raises SIGPIPE.
 *
 * Quick start:
 *
 *     struct cws_error err;
 *     cws_client *c = NULL;
 *     struct cws_sandbox_info *sb = NULL;
 *     cws_op *op = NULL;
 *     const char *argv[] = {"echo", "hello", NULL};
 *
 *     if (cws_client_connect(NULL, &c, &err) < 0 ||
 *         cws_sandbox_run(c, NULL, NULL, &sb, &err) < 0 ||
 *         cws_exec(c, sb->id, argv, NULL, &op, &err) < 0 || cws_op_wait(op, -1, &err) < 0)
 *         fprintf(stderr, "error: %s\n", err.message);
 *     else
 *         fwrite(cws_op_exec_result(op)->stdout_data, 1, cws_op_exec_result(op)->stdout_len,
 *                stdout);
 */
#ifndef CWSANDBOX_H
#define CWSANDBOX_H

#define CWS_CLIENT_VERSION_MAJOR 0
#define CWS_CLIENT_VERSION_MINOR 1
#define CWS_CLIENT_VERSION_PATCH 0
#define CWS_CLIENT_VERSION       "0.1.0"

/* The daemon protocol level this library speaks (docs/protocol.md). */
#define CWS_PROTOCOL_LEVEL 1

#include <cwsandbox/error.h>

#include <cwsandbox/client.h>
#include <cwsandbox/op.h>
#include <cwsandbox/config.h>
#include <cwsandbox/sandbox.h>
#include <cwsandbox/exec.h>
#include <cwsandbox/files.h>
#include <cwsandbox/logs.h>
#include <cwsandbox/session.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version, "MAJOR.MINOR.PATCH" (may differ from CWS_CLIENT_VERSION when a
 * program runs against a newer library than it was built with). */
const char *cws_client_version(void);

#ifdef __cplusplus
}
#endif

#endif
