/* A gRPC server over HTTP/2 (nghttp2) on a libevent loop: listeners, authentication, framing,
 * deadlines, flow control. It knows nothing about sandboxes: a service registers methods by
 * path and gets one struct cws_gcall per RPC.
 *
 * Call life cycle, for every kind of method:
 *   start()            headers accepted (path known, authenticated, deadline parsed)
 *   on_message()*      one per request message, in order (protobuf bytes, deframed)
 *   on_half_close()    the client ended its request stream (END_STREAM)
 *   ... the handler sends messages with cws_gcall_send() and ends with cws_gcall_finish().
 * If the call ends first (client RST_STREAM, connection lost, deadline passed, server
 * shutting down, or the server itself ended it with an error status because the request
 * stream broke a rule: oversized or compressed message, a unary request without exactly one
 * message), on_cancel() is called once; the call must not be used after it returns (it is
 * freed then or once its status is flushed): the handler must drop its pointer and release
 * whatever it holds for the call (kill processes). Inside on_cancel() cws_gcall_send() and
 * cws_gcall_finish() return -CWS_E_FAILED_PRECONDITION.
 * After cws_gcall_finish() no callback of that call runs again.
 *
 * For methods whose request is unary the server checks that exactly one message arrived
 * before half-close (else INVALID_ARGUMENT), so on_message() runs once, then on_half_close().
 *
 * Everything runs on the loop's thread; callbacks may call any function of this header
 * except cws_gsrv_free(). The program must ignore SIGPIPE (a client may vanish while we
 * write), and give the children it spawns the default disposition back.
 */
#ifndef CWS_GRPC_SERVER_H
#define CWS_GRPC_SERVER_H

#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cws_error.h"

struct cws_gsrv;
struct cws_gcall;

/* A finished call's status. grpc_code 0 is OK (everything else then ignored). reason, when
 * set, becomes a google.rpc.ErrorInfo{reason, domain "cwsandbox.com", metadata} in
 * grpc-status-details-bin; violations become a google.rpc.BadRequest. */
struct cws_gviolation {
    const char *field;
    const char *description;
};

/* Start from CWS_GSTATUS_INIT: a zeroed struct would ask for a RetryInfo with a 0 ms delay. */
struct cws_gstatus {
    int grpc_code;
    const char *message;
    const char *reason;             /* e.g. "CWSANDBOX_SANDBOX_NOT_FOUND", or NULL */
    const char *const *metadata_kv; /* key, value, ..., NULL; or NULL */
    int64_t retry_delay_ms;         /* -1 for none */
    const struct cws_gviolation *violations;
    size_t n_violations;
};

#define CWS_GSTATUS_INIT                                                                           \
    {                                                                                              \
        .grpc_code = 0, .retry_delay_ms = -1                                                       \
    }

struct cws_gcall_handlers {
    void (*on_message)(struct cws_gcall *call, const uint8_t *data, size_t len, void *call_ud);
    void (*on_half_close)(struct cws_gcall *call, void *call_ud);
    /* why: CWS_E_CANCELLED (client reset or disconnect), CWS_E_DEADLINE_EXCEEDED,
     * CWS_E_UNAVAILABLE (server shutting down), or, when the server ended the call with that
     * status because of the request stream: CWS_E_RESOURCE_EXHAUSTED (message over
     * max_message), CWS_E_INVALID_ARGUMENT (unary request without exactly one message),
     * CWS_E_UNIMPLEMENTED (compressed message), CWS_E_PROTOCOL (truncated message). */
    void (*on_cancel)(struct cws_gcall *call, enum cws_errcode why, void *call_ud);
    /* The outgoing queue fell below the low-water mark after cws_gcall_send() returned 1. */
    void (*on_writable)(struct cws_gcall *call, void *call_ud);
};

struct cws_gmethod {
    const char *path;   /* "/coreweave.sandbox.v1.SandboxService/GetSandbox" */
    bool unary_request; /* the request is one message (unary and server-streaming RPCs) */
    /* Accept the call: fill *ret_handlers (unused callbacks may be NULL) and *ret_call_ud and
     * return 0; or return a negative code after filling *ret_status to refuse it (it comes
     * pre-filled as CWS_GSTATUS_INIT with grpc_code UNKNOWN; its strings need only live until
     * start() returns). start() may also send and finish the call itself and return 0. */
    int (*start)(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *ret_handlers,
                 void **ret_call_ud, struct cws_gstatus *ret_status);
};

struct cws_gsrv_config {
    struct event_base *base;
    const char *unix_path;   /* listen here (replacing a stale socket), mode 0600; or NULL */
    const char *listen_addr; /* "HOST:PORT" (IPv4, [IPv6] or name) for h2c over TCP; or NULL */
    bool allow_non_loopback; /* binding listen_addr to a non-loopback address needs this */
    const char *token;       /* TCP calls must send "authorization: Bearer <token>" */
    size_t max_message;      /* 0: CWS_GRPC_MAX_MESSAGE (100 MiB), both directions */
    size_t out_high_water;   /* 0: 4 MiB per call; cws_gcall_send() returns 1 above it */
    const struct cws_gmethod *methods; /* not copied: must outlive the server */
    size_t n_methods;
    void *userdata; /* passed to every start() */
};

/* Bind the listeners and start serving on cfg->base. On the Unix socket only peers with the
 * server's uid (SO_PEERCRED) are served; on TCP every call without the right bearer token
 * is answered UNAUTHENTICATED; an unknown path UNIMPLEMENTED; an oversized message
 * RESOURCE_EXHAUSTED. The caller frees *ret with cws_gsrv_free(). */
int cws_gsrv_new(const struct cws_gsrv_config *cfg, struct cws_gsrv **ret, struct cws_error *err);

/* The TCP port actually bound (useful with port 0), or 0 when not listening on TCP. */
int cws_gsrv_tcp_port(const struct cws_gsrv *srv);

/* Stop accepting; cancel every call (on_cancel with CWS_E_UNAVAILABLE), send GOAWAY and an
 * UNAVAILABLE status to each call (best effort, without blocking), close connections, unlink
 * the Unix socket, free. Never call it from one of the server's callbacks. Accepts NULL. */
void cws_gsrv_free(struct cws_gsrv *srv);

/* Queue one serialized response message. Returns 0; 1 when the call's outgoing queue is now
 * above out_high_water (stop producing until on_writable); -CWS_E_RESOURCE_EXHAUSTED for a
 * message over max_message; -CWS_E_FAILED_PRECONDITION after finish. */
int cws_gcall_send(struct cws_gcall *call, const uint8_t *data, size_t len);

/* Serialize and queue a protobuf-c message, as cws_gcall_send(). */
int cws_gcall_send_pb(struct cws_gcall *call, const ProtobufCMessage *msg);

/* End the call with a status (NULL means OK) after the queued messages; trailers-only when
 * nothing was sent. The status is copied. The call is freed by the server once flushed.
 * Returns 0, or -CWS_E_FAILED_PRECONDITION when the call was already finished or cancelled. */
int cws_gcall_finish(struct cws_gcall *call, const struct cws_gstatus *status);

/* Shorthand: finish with grpc_code and a printf-style message, no details. */
int cws_gcall_finish_error(struct cws_gcall *call, int grpc_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* While paused, received request DATA is not acknowledged to the peer (HTTP/2 flow control
 * then stops the client) and on_message() is not called; resuming delivers what was held. */
void cws_gcall_pause_input(struct cws_gcall *call, bool paused);

/* Monotonic deadline in ms (CLOCK_MONOTONIC) from grpc-timeout, or 0 when none. */
int64_t cws_gcall_deadline_ms(const struct cws_gcall *call);

/* The method path, and a short peer description for logs ("unix:uid=1000" or "127.0.0.1:5"). */
const char *cws_gcall_path(const struct cws_gcall *call);
const char *cws_gcall_peer(const struct cws_gcall *call);

/* Value of a request header (lower-case name), or NULL. */
const char *cws_gcall_header(const struct cws_gcall *call, const char *name);

#endif
