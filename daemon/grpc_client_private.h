/* What the files of the gRPC client share; the daemon uses grpc_client.h only.
 *
 *   grpc_endpoint.c        the URL: https://, http://, unix:
 *   grpc_metadata.c        request metadata (validation, secrets) and received header lists
 *   curl_conn.c            the transports: a plain Unix socket for unix: URLs; libcurl,
 *                          loaded on demand, as a connection factory for http:// and
 *                          https:// (connect-only, TLS with ALPN h2)
 *   h2_conn.c              one HTTP/2 connection: an nghttp2 client session on a transport
 *   grpc_client_call.c     one call: send queue, deframing, flow control, status
 *   grpc_client.c          the client: pool, waiting calls, backoff
 *
 * Ownership: the client owns its connections (a list) and the calls waiting for one (a
 * list); a connection owns the calls it carries (a list). A call is on at most one of these
 * lists. Calls are reference counted so that a callback may cancel a call that is being
 * delivered; connections are only ever freed from their own close event, never from inside
 * nghttp2 or a caller's function.
 */
#ifndef CWS_GRPC_CLIENT_PRIVATE_H
#define CWS_GRPC_CLIENT_PRIVATE_H

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "grpc_client.h"
#include "grpc_frame.h"
#include "grpc_status.h"

/* Defaults of struct cws_gclient_config. */
#define GC_DEFAULT_SEND_HIGH_WATER (4u * 1024 * 1024)
#define GC_DEFAULT_STREAM_WINDOW   (1u * 1024 * 1024)
#define GC_DEFAULT_MAX_CONNECTIONS 8u
#define GC_DEFAULT_CONNECT_TIMEOUT 10000
#define GC_DEFAULT_KEEPALIVE_TIME  300000
#define GC_DEFAULT_KEEPALIVE_WAIT  20000
#define GC_DEFAULT_IDLE_TIMEOUT    60000
#define GC_DEFAULT_BACKOFF_INITIAL 100
#define GC_DEFAULT_BACKOFF_MAX     10000
#define GC_DEFAULT_REPLAY_MAX      (1024u * 1024)

/* Connection-level receive window: consumed as soon as bytes arrive (the stream windows are
 * what bound memory), so it only needs to be large enough not to throttle. */
#define GC_CONN_WINDOW (16 * 1024 * 1024)
/* Largest header block we accept per response (initial headers or trailers). */
#define GC_MAX_HEADER_BYTES (1024 * 1024)
/* Attempts of one call when the server refused it or it never left. */
#define GC_MAX_ATTEMPTS 5
/* Until a client's first connection succeeds, a Unix socket that is missing or refuses is
 * tried again for this long before the connect fails: a server started together with the
 * client (the daemon's local backend) may not be listening yet, and a failed connect costs
 * a backoff (100 ms) instead of a few ms. */
#define GC_FIRST_CONNECT_PATIENCE_MS 100

/* ---- endpoint (grpc_endpoint.c) --------------------------------------------------------- */

enum gc_scheme {
    GC_SCHEME_HTTP,
    GC_SCHEME_HTTPS,
    GC_SCHEME_UNIX,
};

struct gc_endpoint {
    enum gc_scheme scheme;
    char *connect_url; /* what libcurl connects to (http:// and https:// only) */
    char *unix_path;   /* GC_SCHEME_UNIX only */
    char *authority;   /* :authority of every request */
    char *display;     /* how messages name the server: "unix:/run/x.sock", "https://h:443" */
};

/* Parse url into ret (overwritten, not freed). Returns 0, or -CWS_E_INVALID_ARGUMENT /
 * -CWS_E_NOMEM with err filled. The caller frees ret's strings with gc_endpoint_clear(). */
int gc_endpoint_parse(const char *url, struct gc_endpoint *ret, struct cws_error *err);

/* Free what an endpoint holds and zero it. Accepts NULL. */
void gc_endpoint_clear(struct gc_endpoint *ep);

/* ---- metadata (grpc_metadata.c) --------------------------------------------------------- */

/* Owned copies of request metadata. */
struct gc_metadata {
    struct cws_gc_header *v;
    size_t n;
};

/* Validate (lower-case legal names, legal values, none of the headers the client sets
 * itself) and copy n entries. Returns 0, or -CWS_E_INVALID_ARGUMENT / -CWS_E_NOMEM with err
 * filled (naming the header, never its value). The caller frees ret with
 * gc_metadata_clear(). */
int gc_metadata_copy(const struct cws_gc_header *src, size_t n, struct gc_metadata *ret,
                     struct cws_error *err);

/* Free the copies and zero md. Accepts NULL. */
void gc_metadata_clear(struct gc_metadata *md);

/* Whether a header's value is a credential (never HPACK-indexed, never logged). */
bool gc_header_is_secret(const char *name);

/* Headers received on a stream, in order; names and values owned. */
struct gc_header_list {
    struct cws_gc_header *v;
    size_t n, cap;
    size_t bytes;
};

/* Append a copy. Returns 0, -CWS_E_RESOURCE_EXHAUSTED past GC_MAX_HEADER_BYTES, or
 * -CWS_E_NOMEM. */
int gc_header_list_add(struct gc_header_list *l, const uint8_t *name, size_t name_len,
                       const uint8_t *value, size_t value_len);

/* Value of the last header called name, or NULL; owned by the list. */
const char *gc_header_list_get(const struct gc_header_list *l, const char *name);

/* Free the entries and zero l. Accepts NULL. */
void gc_header_list_clear(struct gc_header_list *l);

/* ---- libcurl, loaded on demand (curl_conn.c) -------------------------------------------- */

/* The libcurl functions the client uses. libcurl is not linked: it is loaded with dlopen()
 * the first time an http:// or https:// URL is used, so that a daemon talking only to its
 * local backend over a Unix socket never maps libcurl nor what it pulls in (OpenSSL, GnuTLS,
 * Kerberos, LDAP, ...: most of such a daemon's resident memory otherwise). */
struct gc_curl_api {
    CURLcode (*global_init)(long flags);
    curl_version_info_data *(*version_info)(CURLversion age);
    const char *(*easy_strerror)(CURLcode rc);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *easy, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *easy, CURLINFO info, ...);
    CURLcode (*easy_recv)(CURL *easy, void *buf, size_t len, size_t *n);
    CURLcode (*easy_send)(CURL *easy, const void *buf, size_t len, size_t *n);
    void (*easy_cleanup)(CURL *easy);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *multi, CURLMoption option, ...);
    CURLMcode (*multi_add_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_socket_action)(CURLM *multi, curl_socket_t s, int ev_bitmask, int *running);
    CURLMsg *(*multi_info_read)(CURLM *multi, int *left);
    CURLMcode (*multi_assign)(CURLM *multi, curl_socket_t s, void *p);
    CURLMcode (*multi_cleanup)(CURLM *multi);
    CURLU *(*url)(void);
    CURLUcode (*url_set)(CURLU *u, CURLUPart part, const char *content, unsigned int flags);
    CURLUcode (*url_get)(const CURLU *u, CURLUPart part, char **ret, unsigned int flags);
    void (*url_cleanup)(CURLU *u);
    void (*free)(void *p);
};

/* Load libcurl (once) and initialise it (curl_global_init()), logging the libcurl, TLS and
 * nghttp2 versions; what names the URL that needs it, for the message. Returns 0 and sets
 * *ret to the functions, or -CWS_E_UNIMPLEMENTED (libcurl is not installed, or lacks a
 * function) / -CWS_E_INTERNAL (it failed to initialise) with err filled. */
int gc_curl_load(const char *what, const struct gc_curl_api **ret, struct cws_error *err);

/* ---- transport (curl_conn.c) ------------------------------------------------------------ */

struct gc_transport;

/* Reports the end of a connect: err is NULL on success. The callback may free t. */
typedef void (*gc_transport_connected_fn)(struct gc_transport *t, const struct cws_error *err,
                                          void *ud);

struct gc_transport_opts {
    const struct gc_endpoint *endpoint;
    const char *ca_file; /* NULL: system roots */
    int connect_timeout_ms;
    int patience_ms; /* unix: retry a missing or refusing socket this long; 0: fail at once */
};

/* Get ready to connect to endpoint: log the versions in use (once), and for http:// and
 * https:// load libcurl (gc_curl_load()) and check that it can offer ALPN h2 for TLS (an
 * OpenSSL build). Returns 0, or -CWS_E_UNIMPLEMENTED / -CWS_E_INTERNAL with err filled. */
int gc_transport_global_init(const struct gc_endpoint *endpoint, struct cws_error *err);

/* Start a non-blocking connect driven by base; cb runs once when it ends. Returns 0 and sets
 * *ret, or -CWS_E_NOMEM / -CWS_E_INTERNAL with err filled (cb never runs then). The caller
 * frees *ret with gc_transport_free(), which also closes the socket. */
int gc_transport_connect(struct event_base *base, const struct gc_transport_opts *opts,
                         gc_transport_connected_fn cb, void *ud, struct gc_transport **ret,
                         struct cws_error *err);

/* The connected socket, for the caller's own events. */
int gc_transport_fd(const struct gc_transport *t);

/* Receive up to cap bytes. Returns 0 with *ret_n > 0, 1 when nothing is available now, or
 * -CWS_E_UNAVAILABLE with err filled (peer closed the connection, read error). */
int gc_transport_recv(struct gc_transport *t, uint8_t *buf, size_t cap, size_t *ret_n,
                      struct cws_error *err);

/* Send up to len bytes. Returns 0 with *ret_n > 0 written, 1 when the socket is full, or
 * -CWS_E_UNAVAILABLE with err filled. After 1, retry with the same bytes first. */
int gc_transport_send(struct gc_transport *t, const uint8_t *buf, size_t len, size_t *ret_n,
                      struct cws_error *err);

/* Whether a receive shorter than asked for leaves nothing behind for the next one: true for
 * a plain Unix socket (the fd signals readable again when more comes), false for libcurl's
 * connections, where the rest of a TLS record may wait inside OpenSSL without the fd ever
 * signalling it. */
bool gc_transport_short_read_drains(const struct gc_transport *t);

/* After the first gc_transport_recv(): refuse a TLS connection whose ALPN is not h2.
 * Returns 0, or -CWS_E_UNAVAILABLE with err filled. */
int gc_transport_check_alpn(struct gc_transport *t, struct cws_error *err);

/* Close and free. Accepts NULL. */
void gc_transport_free(struct gc_transport *t);

/* ---- connection (h2_conn.c) ------------------------------------------------------------- */

enum gc_conn_state {
    GC_CONN_CONNECTING, /* the transport is connecting */
    GC_CONN_READY,      /* the nghttp2 session runs */
    GC_CONN_CLOSED,     /* failed or closed; freed from its close event */
};

struct gc_conn {
    struct cws_gclient *client;
    TAILQ_ENTRY(gc_conn) link;
    uint64_t id;
    enum gc_conn_state state;
    struct gc_transport *transport;
    nghttp2_session *session;
    struct event *read_ev, *write_ev, *write_retry_ev, *flush_ev, *close_ev;
    struct event *handshake_ev, *keepalive_ev, *ping_ev, *idle_ev;
    TAILQ_HEAD(, cws_gc_call) calls;
    unsigned n_streams; /* streams open in nghttp2, calls detached from them included */
    uint8_t *in;        /* read buffer */
    uint8_t *out;       /* frames serialized by nghttp2, not yet written */
    size_t out_off, out_len, out_cap;
    uint64_t serialized;   /* bytes nghttp2 has produced, ever */
    uint64_t written;      /* bytes the socket accepted, ever */
    unsigned write_stalls; /* EV_WRITE wakeups that wrote nothing, in a row */
    int in_io;             /* > 0 while reading or writing: flushes wait for the end */
    bool alpn_checked;
    bool settings_received; /* the server's first SETTINGS arrived */
    bool draining;          /* GOAWAY received or retired: no new calls */
    bool goaway_received;
    int32_t goaway_last_stream_id;
    bool verifying; /* a PING must be answered before new calls are sent */
    bool ping_outstanding;
    bool flush_scheduled;
    bool dispatch_wanted; /* a stream ended or SETTINGS changed: the client may place calls */
    int64_t last_recv_ms; /* last time bytes arrived */
    int64_t connected_ms;
    struct cws_error error; /* why it closed (code CWS_E_OK until then) */
    char h2_error[160];     /* last message of nghttp2's error callback */
};

/* Start connecting a new connection of client (added to nothing; the client lists it).
 * Returns 0 and sets *ret, or a negative code with err filled. Freed by its close event. */
int gc_conn_open(struct cws_gclient *client, struct gc_conn **ret, struct cws_error *err);

/* New streams this connection can take now (0 while connecting, verifying or draining). */
unsigned gc_conn_capacity(const struct gc_conn *conn);

/* Whether the connection will be able to take calls soon without a new connection: it is
 * connecting, waiting for the server's first SETTINGS or for a PING answer. */
bool gc_conn_opening(const struct gc_conn *conn);

/* Before giving new calls to a connection that has been silent for keepalive_time and
 * carries nothing: PING it, and hold new calls until the answer. */
void gc_conn_verify_if_stale(struct gc_conn *conn);

/* Open a stream for call and attach it. Returns 0, or a negative code with err filled (the
 * call is not attached then). */
int gc_conn_submit(struct gc_conn *conn, struct cws_gc_call *call, struct cws_error *err);

/* Detach a call from its stream. When the stream is still open: if reset, RST_STREAM(code)
 * is written now; otherwise our side is ended with END_STREAM (or RST_STREAM(NO_ERROR) when
 * flow control blocks even that). */
void gc_conn_detach(struct gc_conn *conn, struct cws_gc_call *call, bool reset, uint32_t code);

/* The call has request bytes again (or ended its request stream). */
void gc_conn_resume_send(struct gc_conn *conn, struct cws_gc_call *call);

/* The call took n bytes of its stream: let the server send more. */
void gc_conn_consume(struct gc_conn *conn, struct cws_gc_call *call, size_t n);

/* Write what nghttp2 has to send, soon (coalesced) or now (RST_STREAM must not wait). */
void gc_conn_flush_soon(struct gc_conn *conn);
void gc_conn_flush_now(struct gc_conn *conn);

/* Close: GOAWAY(NO_ERROR) best effort, then free from the close event; calls still attached
 * end with err. Idempotent. */
void gc_conn_close(struct gc_conn *conn, const struct cws_error *err);

/* Retire: take no new calls, close once the last stream ends. */
void gc_conn_retire(struct gc_conn *conn);

/* Free immediately (client teardown only; calls must be gone). */
void gc_conn_free(struct gc_conn *conn);

/* ---- call (grpc_client_call.c) ---------------------------------------------------------- */

enum gc_call_state {
    GC_CALL_NEW,     /* not yet placed */
    GC_CALL_WAITING, /* on the client's waiting list */
    GC_CALL_ACTIVE,  /* on a connection's stream */
    GC_CALL_ENDED,   /* status known: delivering what is held, then on_done */
    GC_CALL_DONE,    /* on_done ran or cancelled: no more callbacks */
};

/* One request message (prefix included) in the send queue. */
struct gc_chunk {
    struct gc_chunk *next;
    size_t len;
    uint8_t data[];
};

struct cws_gc_call {
    struct cws_gclient *client;
    struct gc_conn *conn;
    TAILQ_ENTRY(cws_gc_call) link; /* client->waiting or conn->calls */
    uint64_t id;
    enum gc_call_state state;
    int refs;
    char *path;
    struct gc_metadata metadata;
    int64_t deadline_ms;
    int64_t started_ms;
    bool wait_for_ready;
    struct cws_gc_handlers h;
    void *ud;
    struct event *deadline_ev;
    struct event *notify_ev; /* deferred delivery and on_writable */
    int attempts;
    int32_t stream_id;

    /* request */
    struct gc_chunk *chunks, *chunks_tail; /* retained for replay, then unsent */
    struct gc_chunk *send_chunk;           /* next chunk to hand to nghttp2 */
    size_t send_off;                       /* offset in send_chunk */
    size_t queued;                         /* bytes not yet handed to nghttp2 */
    size_t handed;                         /* bytes handed and still retained */
    bool send_closed;                      /* cws_gc_call_close_send() */
    bool send_deferred;                    /* nghttp2 was told NGHTTP2_ERR_DEFERRED */
    bool send_ended;                       /* END_STREAM handed to nghttp2 */
    bool replayable;                       /* every byte handed is retained */
    bool headers_sent;                     /* nghttp2 serialized the request HEADERS */
    uint64_t sent_mark;                    /* conn->serialized once they were */
    bool wants_writable;
    bool writable_pending;

    /* response */
    struct cws_grpc_deframer *deframer;
    struct evbuffer *held; /* DATA received but not deframed (paused) */
    bool paused;
    bool delivering;
    bool response_started; /* response HEADERS arrived: the server processed the call */
    bool trailers_only;
    bool remote_ended; /* END_STREAM or reset received */
    int http_status;
    struct gc_header_list headers, trailers;

    /* outcome */
    bool status_set;
    bool local;
    struct cws_grpc_status status;
    struct cws_error error;
};

/* Create a call in state GC_CALL_NEW. Returns 0 and sets *ret (one reference, released when
 * the call ends), or a negative code with err filled. */
int gc_call_new(struct cws_gclient *client, const char *path, const struct cws_gc_call_opts *opts,
                const struct cws_gc_handlers *h, void *ud, struct cws_gc_call **ret,
                struct cws_error *err);

void gc_call_ref(struct cws_gc_call *call);
/* Drop a reference; the last one frees the call. */
void gc_call_unref(struct cws_gc_call *call);

/* Fill buf with request bytes for nghttp2's data provider: returns the count, or
 * NGHTTP2_ERR_DEFERRED when nothing is queued yet; sets NGHTTP2_DATA_FLAG_EOF at the end. */
ssize_t gc_call_read_request(struct cws_gc_call *call, uint8_t *buf, size_t length,
                             uint32_t *data_flags);

/* Stream events from h2_conn.c. */
int gc_call_on_header(struct cws_gc_call *call, const nghttp2_frame *frame, const uint8_t *name,
                      size_t name_len, const uint8_t *value, size_t value_len);
void gc_call_on_headers_end(struct cws_gc_call *call, const nghttp2_frame *frame);
void gc_call_on_data(struct cws_gc_call *call, const uint8_t *data, size_t len);
void gc_call_on_remote_end(struct cws_gc_call *call);
void gc_call_on_stream_close(struct cws_gc_call *call, uint32_t error_code);

/* The connection carrying the call is gone (err says why; unprocessed when the server never
 * spoke on it): retry when the server cannot have processed the call, else end it
 * UNAVAILABLE. */
void gc_call_on_conn_lost(struct cws_gc_call *call, const struct cws_error *err, bool unprocessed);

/* End a waiting or active call now with a local status (its stream is reset). */
void gc_call_fail(struct cws_gc_call *call, const struct cws_error *err);

/* ---- client (grpc_client.c) ------------------------------------------------------------- */

struct cws_gclient {
    struct event_base *base;
    struct gc_endpoint endpoint;
    struct gc_metadata metadata;
    char *user_agent;
    char *ca_file;
    size_t max_message;
    size_t send_high_water;
    uint32_t stream_window;
    uint32_t max_streams_per_conn;
    unsigned max_connections;
    int connect_timeout_ms;
    int keepalive_time_ms;
    int keepalive_timeout_ms;
    bool keepalive_without_calls;
    int idle_timeout_ms;
    int backoff_initial_ms, backoff_max_ms;
    size_t replay_max;

    nghttp2_session_callbacks *h2_callbacks;
    nghttp2_option *h2_option;

    TAILQ_HEAD(, gc_conn) conns;
    unsigned n_conns;
    TAILQ_HEAD(, cws_gc_call) waiting;
    unsigned n_waiting;
    unsigned n_active;
    struct event *dispatch_ev;
    struct event *backoff_ev;
    int64_t backoff_until_ms;
    int backoff_ms;
    uint64_t rng; /* backoff jitter: seeded per client so daemons do not retry in step */
    struct cws_error last_connect_error;
    uint64_t next_call_id, next_conn_id;
    struct cws_gclient_stats stats;
    bool closing;
};

/* Place a call: on a connection with room now, else on the waiting list. */
void gc_client_place(struct cws_gclient *client, struct cws_gc_call *call);

/* Put a call the server did not process back at the head of the waiting list. */
void gc_client_requeue(struct cws_gclient *client, struct cws_gc_call *call);

/* Run the waiting list from the loop (coalesced). */
void gc_client_schedule_dispatch(struct cws_gclient *client);

/* Take a call off the waiting list (cancel, deadline). */
void gc_client_unwait(struct cws_gclient *client, struct cws_gc_call *call);

/* Connection events. */
void gc_client_conn_ready(struct cws_gclient *client, struct gc_conn *conn);
void gc_client_conn_closed(struct cws_gclient *client, struct gc_conn *conn);

/* The transport and nghttp2 callbacks of h2_conn.c, set once per client. */
int gc_conn_callbacks_new(nghttp2_session_callbacks **ret);

#endif
