/* The daemon's gRPC client: every call cwsandboxd makes to a backend (unary, server-streaming
 * and bidirectional) goes through one struct cws_gclient, on pooled HTTP/2 connections driven
 * by the daemon's libevent loop.
 *
 * Transport: a unix: URL is a plain Unix socket; for http:// and https:// libcurl only makes
 * connections (DNS, HTTPS_PROXY/NO_PROXY, TLS with the system roots and ALPN h2, h2c over TCP,
 * CURLOPT_CONNECT_ONLY). nghttp2 speaks HTTP/2 over them. libcurl is loaded with dlopen() when
 * the first http:// or https:// client is created, so a daemon on its local backend never maps
 * it (nor OpenSSL). libcurl's own HTTP/2 code never runs, so the bugs of the libcurl versions
 * users have (7.88 on Debian 12, 8.5 on Ubuntu 24.04) do not apply; see
 * reference/http2-transport-notes.md.
 *
 * Pool: one warm connection serves every call; another opens when the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS is reached or after a GOAWAY. Calls the server did not
 * process (REFUSED_STREAM, stream id above a GOAWAY's last_stream_id, or never sent) are
 * retried transparently when their request is still held; otherwise they fail UNAVAILABLE.
 * A connection silent for keepalive_time is checked with an HTTP/2 PING; no answer within
 * keepalive_timeout fails its calls UNAVAILABLE. Failed connects back off exponentially.
 *
 * Call life cycle:
 *   cws_gclient_call_start()       the call exists; messages may be sent at once
 *   on_headers()                   response headers (not for a trailers-only response)
 *   on_message()*                  one per response message, in order
 *   on_done()                      exactly once, with the status; the call is freed when it
 *                                  returns
 * cws_gc_call_cancel() ends a call early: RST_STREAM(CANCEL) is written to the socket at once,
 * no callback of that call runs again and the call is freed.
 *
 * Everything runs on the loop's thread. Callbacks may call any function of this header except
 * cws_gclient_free(); a call's pointer is invalid once on_done() returned or after
 * cws_gc_call_cancel().
 */
#ifndef CWS_GRPC_CLIENT_H
#define CWS_GRPC_CLIENT_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cws_error.h"
#include "grpc_status.h"

struct cws_gclient;
struct cws_gc_call;

/* A header (gRPC metadata entry): lower-case name, value. */
struct cws_gc_header {
    const char *name;
    const char *value;
};

struct cws_gclient_config {
    struct event_base *base;
    /* "https://host[:port]" (TLS, ALPN h2), "http://host[:port]" (h2c, prior knowledge) or
     * "unix:/path" (h2c over a Unix socket). A path other than "/" is refused. */
    const char *url;
    /* Sent with every call, e.g. authorization, x-api-key, x-entity-id, x-project-name.
     * Copied. Values are never logged and are sent HPACK never-indexed when they look like
     * secrets. */
    const struct cws_gc_header *metadata;
    size_t n_metadata;
    const char *user_agent;  /* NULL: "cwsandboxd/<version>" */
    const char *tls_ca_file; /* PEM roots to trust instead of the system's; NULL: system */
    size_t max_message;      /* 0: CWS_GRPC_MAX_MESSAGE (100 MiB), both directions */
    size_t send_high_water;  /* 0: 4 MiB queued per call before cws_gc_call_send() returns 1 */
    uint32_t stream_window;  /* 0: 1 MiB: response bytes a call may hold before the server waits */
    uint32_t max_streams_per_conn; /* 0: as many as the server allows */
    unsigned max_connections;      /* 0: 8 */
    int connect_timeout_ms;        /* 0: 10 000: TCP, proxy, TLS and the server's SETTINGS */
    int keepalive_time_ms;         /* 0: 300 000: PING after this long without a frame; -1 off */
    int keepalive_timeout_ms;      /* 0: 20 000: a PING unanswered this long kills the connection */
    bool keepalive_without_calls;  /* also PING connections that carry no call */
    int idle_timeout_ms;           /* 0: 60 000: an extra connection without calls is closed */
    int backoff_initial_ms;        /* 0: 100: delay after the first failed connect */
    int backoff_max_ms;            /* 0: 10 000 */
    size_t replay_max; /* 0: 1 MiB: largest request kept so that a refused call can be retried */
};

/* What a finished call reports to on_done(); valid only during the callback. */
struct cws_gc_result {
    /* The gRPC status: code, message and the decoded grpc-status-details-bin (reason, domain,
     * metadata, retry delay, field violations). */
    const struct cws_grpc_status *status;
    /* The same as a project error (code CWS_E_OK on success), ready for the daemon protocol. */
    const struct cws_error *error;
    /* The status was made here (transport loss, deadline, limits, protocol violation) rather
     * than received from the server. */
    bool local;
    bool trailers_only;                   /* the server answered with a single HEADERS frame */
    const struct cws_gc_header *trailers; /* as received (the trailers-only headers included) */
    size_t n_trailers;
};

/* Unused callbacks may be NULL (on_done too, for fire-and-forget calls). */
struct cws_gc_handlers {
    void (*on_headers)(struct cws_gc_call *call, const struct cws_gc_header *headers, size_t n,
                       void *ud);
    /* One deframed response message; data is only valid during the callback. */
    void (*on_message)(struct cws_gc_call *call, const uint8_t *data, size_t len, void *ud);
    /* The send queue drained below half of send_high_water after cws_gc_call_send()
     * returned 1. */
    void (*on_writable)(struct cws_gc_call *call, void *ud);
    void (*on_done)(struct cws_gc_call *call, const struct cws_gc_result *result, void *ud);
};

struct cws_gc_call_opts {
    /* Absolute deadline, CLOCK_MONOTONIC milliseconds (cws_gc_now_ms() + timeout); 0: none.
     * Sent as grpc-timeout; when it passes the call ends DEADLINE_EXCEEDED. */
    int64_t deadline_ms;
    const struct cws_gc_header *metadata; /* extra metadata for this call; copied */
    size_t n_metadata;
    /* While the backend cannot be reached, wait for a connection (until the deadline)
     * instead of failing UNAVAILABLE at once. */
    bool wait_for_ready;
};

struct cws_gclient_stats {
    unsigned connections;      /* open or opening */
    unsigned calls_active;     /* on a connection */
    unsigned calls_waiting;    /* waiting for a connection or a free stream */
    uint64_t connects;         /* connections opened successfully, ever */
    uint64_t connect_failures; /* attempts that failed */
    uint64_t goaways;          /* GOAWAY frames received */
    uint64_t retries;          /* transparent retries of calls the server did not process */
    uint64_t pings;            /* keepalive PINGs sent */
};

/* CLOCK_MONOTONIC now, in milliseconds: the clock of cws_gc_call_opts.deadline_ms. */
int64_t cws_gc_now_ms(void);

/* Check the endpoint and the metadata, load libcurl for an http:// or https:// URL, log the
 * libcurl and nghttp2 versions and create the client; no connection is made until the first
 * call. cfg is copied.
 * Returns 0, -CWS_E_INVALID_ARGUMENT (bad URL or metadata), -CWS_E_UNIMPLEMENTED (an http://
 * or https:// URL when libcurl cannot be loaded, or an https:// URL with a libcurl built
 * without OpenSSL), -CWS_E_INTERNAL (libcurl failed to initialise) or -CWS_E_NOMEM, with err
 * filled.
 * The caller frees *ret with cws_gclient_free(). */
int cws_gclient_new(const struct cws_gclient_config *cfg, struct cws_gclient **ret,
                    struct cws_error *err);

/* End every call (on_done with CANCELLED), send GOAWAY on each connection (best effort,
 * without blocking), close them and free the client. Not from one of its callbacks.
 * Accepts NULL. */
void cws_gclient_free(struct cws_gclient *client);

/* Start a call of method path ("/coreweave.sandbox.v1.SandboxService/GetSandbox").
 * opts may be NULL (no deadline, no extra metadata). Returns 0 and sets *ret_call, which the
 * client owns: it is freed after on_done() returns or by cws_gc_call_cancel(). Errors:
 * -CWS_E_INVALID_ARGUMENT (bad path or metadata), -CWS_E_DEADLINE_EXCEEDED (deadline already
 * passed), -CWS_E_UNAVAILABLE (client shutting down), -CWS_E_NOMEM; no callback runs then.
 * A backend that cannot be reached is reported through on_done(), never here. */
int cws_gclient_call_start(struct cws_gclient *client, const char *path,
                           const struct cws_gc_call_opts *opts, const struct cws_gc_handlers *h,
                           void *ud, struct cws_gc_call **ret_call, struct cws_error *err);

/* cws_gclient_call_start(), one request message, and cws_gc_call_close_send(): a unary or
 * server-streaming call. ret_call may be NULL when the caller never cancels. */
int cws_gclient_unary(struct cws_gclient *client, const char *path,
                      const struct cws_gc_call_opts *opts, const uint8_t *request, size_t len,
                      const struct cws_gc_handlers *h, void *ud, struct cws_gc_call **ret_call,
                      struct cws_error *err);

/* Counters for daemon.status and the tests. */
void cws_gclient_get_stats(const struct cws_gclient *client, struct cws_gclient_stats *ret);

/* Queue one request message (copied). Returns 0; 1 when the call's send queue is now above
 * send_high_water (stop sending until on_writable()); -CWS_E_RESOURCE_EXHAUSTED for a message
 * over max_message (nothing queued, the call goes on); -CWS_E_FAILED_PRECONDITION after
 * cws_gc_call_close_send() or once the call has its status; -CWS_E_NOMEM. */
int cws_gc_call_send(struct cws_gc_call *call, const uint8_t *data, size_t len);

/* End the request stream (END_STREAM after the queued messages): the server sees half-close.
 * Returns 0, or -CWS_E_FAILED_PRECONDITION when already closed. */
int cws_gc_call_close_send(struct cws_gc_call *call);

/* Cancel: RST_STREAM(CANCEL) is written to the socket now (or the call leaves the wait
 * queue), no callback of the call runs again, the call is freed. Accepts NULL. */
void cws_gc_call_cancel(struct cws_gc_call *call);

/* While paused, on_message() is not called and received bytes are not acknowledged to the
 * server beyond the stream window, so HTTP/2 flow control stops it and the call holds at
 * most stream_window bytes (plus the message being assembled). Resuming delivers what was
 * held, then on_done() if the call ended meanwhile. */
void cws_gc_call_pause_recv(struct cws_gc_call *call, bool paused);

/* Bytes queued by cws_gc_call_send() that nghttp2 has not taken yet. */
size_t cws_gc_call_send_queued(const struct cws_gc_call *call);

/* A number naming the call in logs ("call 17"). */
uint64_t cws_gc_call_id(const struct cws_gc_call *call);

#endif
