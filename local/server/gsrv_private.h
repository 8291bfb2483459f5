/* What the files of the gRPC server share: the server, connection and call structures and the
 * functions they call across files. Not for services: they use grpc_server.h.
 *
 * Ownership: the server owns its connections (a list), a connection owns its calls (a list)
 * and its nghttp2 session. A call lives from the first HEADERS of its stream until nghttp2
 * closes the stream (or the connection goes); nothing is freed from inside a public
 * cws_gcall_*() function, so handlers may call them on any live call at any time.
 */
#ifndef CWS_GSRV_PRIVATE_H
#define CWS_GSRV_PRIVATE_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "grpc_frame.h"
#include "grpc_server.h"

/* Stream-level receive window we advertise: how much request data one call may have in
 * flight or held while paused. */
#define GSRV_STREAM_WINDOW (1024 * 1024)
/* Connection-level receive window (consumed as soon as bytes arrive, see h2_conn.c). */
#define GSRV_CONN_WINDOW (16 * 1024 * 1024)
/* SETTINGS_MAX_CONCURRENT_STREAMS: clients queue calls beyond it. */
#define GSRV_MAX_STREAMS 1024
/* Bytes the connection's socket output buffer may hold before nghttp2 is told to wait. */
#define GSRV_CONN_OUT_LIMIT (1024 * 1024)
/* RST_STREAMs a client may send: a burst, then so many a second (see setup_nghttp2()). */
#define GSRV_RESET_BURST 100000
#define GSRV_RESET_RATE  10000
/* SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce. */
#define GSRV_MAX_HEADER_LIST (64 * 1024)
/* Request headers kept inside the call before the array moves to the heap. */
#define GSRV_INLINE_HEADERS 14

struct gsrv_conn;

/* A status ready to go on the wire. */
struct gresp_status {
    const char *code; /* grpc-status, decimal (a static string) */
    char *message;    /* percent-encoded grpc-message, or NULL */
    char *details;    /* grpc-status-details-bin (unpadded base64), or NULL */
};

struct cws_gsrv {
    struct event_base *base;
    struct evconnlistener *unix_listener;
    struct evconnlistener *tcp_listener;
    struct event *accept_retry; /* re-enables the listeners after EMFILE and the like */
    char *unix_path;            /* to unlink on free, when still our socket */
    uint64_t unix_dev, unix_ino;
    int tcp_port;
    char *token;
    size_t token_len;
    size_t max_message;
    size_t out_high_water;
    const struct cws_gmethod *methods;
    size_t n_methods;
    void *userdata;
    nghttp2_session_callbacks *callbacks;
    nghttp2_option *option;
    TAILQ_HEAD(, gsrv_conn) conns;
};

struct gsrv_conn {
    struct cws_gsrv *srv;
    TAILQ_ENTRY(gsrv_conn) link;
    struct bufferevent *bev;
    nghttp2_session *session;
    struct event *flush_ev; /* deferred flush after calls queued something */
    TAILQ_HEAD(, cws_gcall) calls;
    bool needs_token; /* TCP: every call must carry the bearer token */
    bool flush_scheduled;
    bool write_armed;   /* output left over: the bufferevent writes it when it can */
    bool shutting_down; /* cws_gsrv_free() is closing it */
    unsigned n_pending; /* calls with pump_pending or writable_pending set */
    char peer[64];
};

enum gcall_state {
    GCALL_HEADERS,  /* request headers arriving; no handler yet */
    GCALL_LIVE,     /* started: the handler may send and finish */
    GCALL_FINISHED, /* status decided (by the handler or the server); flushing, no callbacks */
};

struct gcall_header {
    nghttp2_rcbuf *name; /* nghttp2 keeps these NUL-terminated */
    nghttp2_rcbuf *value;
};

struct cws_gcall {
    struct gsrv_conn *conn;
    TAILQ_ENTRY(cws_gcall) link;
    int32_t stream_id;
    enum gcall_state state;
    const struct cws_gmethod *method;
    struct cws_gcall_handlers h;
    void *ud;

    struct gcall_header *headers; /* inline_headers until it outgrows them */
    size_t n_headers, cap_headers;
    size_t header_bytes; /* as SETTINGS_MAX_HEADER_LIST_SIZE counts them */
    const char *path;

    struct cws_grpc_deframer *deframer;
    struct evbuffer *held; /* request DATA received while paused, not yet acknowledged */
    uint64_t n_messages;
    bool paused;
    bool remote_closed;        /* the client sent END_STREAM */
    bool half_close_delivered; /* on_half_close() ran (or the call ended before it could) */
    bool pump_pending;         /* held input or a half-close waits for the next flush */
    bool writable_pending;     /* on_writable() waits for the next flush */
    bool blocked;              /* cws_gcall_send() returned 1; on_writable() owed */

    struct evbuffer *out;  /* framed response messages not yet taken by nghttp2 */
    bool response_started; /* response HEADERS submitted (with the data provider) */
    bool data_deferred;    /* the data provider returned NGHTTP2_ERR_DEFERRED */
    bool trailers_pending; /* finished after messages: trailers go once out is drained */
    struct gresp_status trailers;

    struct event *deadline_ev;
    int64_t deadline_ms;

    struct gcall_header inline_headers[GSRV_INLINE_HEADERS];
};

/* grpc_server.c */
const struct cws_gmethod *gsrv_find_method(const struct cws_gsrv *srv, const char *path);
void gsrv_conn_unlink(struct cws_gsrv *srv, struct gsrv_conn *conn);

/* gsrv_listen.c: listening sockets. Each returns a listening, non-blocking, close-on-exec
 * descriptor the caller closes, or a negative code with err filled. */
int gsrv_listen_unix(const char *path, uint64_t *ret_dev, uint64_t *ret_ino, struct cws_error *err);
int gsrv_listen_tcp(const char *listen_addr, bool allow_non_loopback, struct cws_error *err);

/* h2_conn.c */
/* The callbacks every session of the server shares; the caller frees *ret with
 * nghttp2_session_callbacks_del(). */
int gsrv_callbacks_new(nghttp2_session_callbacks **ret);
/* Take over an accepted socket: fd is closed on failure too. The connection belongs to srv
 * (its list) and frees itself when it ends, or in gsrv_conn_shutdown(). */
int gsrv_conn_new(struct cws_gsrv *srv, int fd, bool needs_token, const char *peer);
/* Shut a connection down for cws_gsrv_free(): cancel calls, GOAWAY, best-effort write, free. */
void gsrv_conn_shutdown(struct gsrv_conn *conn);
/* Ask for a flush of the connection on the next loop turn (never flushes synchronously). */
void gsrv_conn_request_flush(struct gsrv_conn *conn);

/* grpc_request.c: request headers and admission. */
/* Keep a reference to a request header; -CWS_E_RESOURCE_EXHAUSTED past GSRV_MAX_HEADER_LIST. */
int gcall_add_header(struct cws_gcall *call, nghttp2_rcbuf *name, nghttp2_rcbuf *value);
/* All request headers are in: start the call or refuse it. */
void gcall_headers_done(struct cws_gcall *call);
/* Drop the header references (and the heap array, if any). */
void gcall_free_headers(struct cws_gcall *call);

/* grpc_call.c: the call after admission. */
/* A call for a new stream, in conn's list; gcall_stream_closed() frees it. */
int gcall_new(struct gsrv_conn *conn, int32_t stream_id, struct cws_gcall **ret);
/* The stream is gone: on_cancel(why) when the call was live, then free. */
void gcall_stream_closed(struct cws_gcall *call, enum cws_errcode why);
/* Hand an admitted call to its method's start() (timeout_ns -1: no deadline). */
int gcall_start(struct cws_gcall *call, const struct cws_gmethod *method, int64_t timeout_ns);
/* Request DATA of the stream, and its END_STREAM. */
void gcall_on_data(struct cws_gcall *call, const uint8_t *data, size_t len);
void gcall_on_remote_end(struct cws_gcall *call);
/* Deliver held input and owed on_writable() calls; run by the connection's flush. */
void gcall_run_pending(struct cws_gcall *call);
/* End a live call from the server's side: on_cancel(why), then that status after the
 * messages already queued (so the response stays well-formed). */
void gcall_abort(struct cws_gcall *call, enum cws_errcode why, const char *message);
/* Answer a call that never started (trailers-only, optionally with an HTTP error status). */
void gcall_reject(struct cws_gcall *call, int http_status, enum cws_errcode code,
                  const char *message);
/* nghttp2_send_data_callback's work for one call: move length queued bytes to out. */
void gcall_write_data(struct cws_gcall *call, struct evbuffer *out, size_t length);

/* grpc_response.c: response header lists. */
#define GRESP_MAX_NV 5

/* Encode status (NULL means OK) into *ret, whose strings gresp_status_clear() frees. Never
 * fails: out of memory, the message or details are left out and logged. */
void gresp_status_encode(const struct cws_gstatus *status, struct gresp_status *ret);
void gresp_status_clear(struct gresp_status *s);
/* Fill nv with the status fields; with http_status (e.g. "200"), first :status and
 * content-type, for a trailers-only response. Returns the count (at most GRESP_MAX_NV). The
 * fields point into s and http_status; nghttp2 copies them on submit. */
size_t gresp_status_nv(const struct gresp_status *s, const char *http_status,
                       nghttp2_nv nv[GRESP_MAX_NV]);
/* The response HEADERS of a call that will send messages. */
size_t gresp_headers_nv(nghttp2_nv nv[GRESP_MAX_NV]);

#endif
