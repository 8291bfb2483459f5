/* The gRPC client: configuration, the connection pool and the calls waiting for a place.
 *
 * Placing a call: the first connection with a free stream takes it (one warm connection
 * serves everything); when none has room and none is opening, another connection opens, up
 * to max_connections. While the backend cannot be reached, connects back off exponentially
 * (with jitter) and calls fail UNAVAILABLE at once with the connect error, unless they asked
 * to wait for ready; every waiting call is still bounded by its deadline.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "grpc_client_private.h"
#include "log.h"

#define PATH_MAX_LEN       1024
#define BACKOFF_FACTOR     1.6
#define BACKOFF_JITTER     0.2
#define DEFAULT_USER_AGENT "cwsandboxd/" CWS_VERSION

int64_t cws_gc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- placing calls ---------------------------------------------------------------------- */

static struct gc_conn *client_pick(struct cws_gclient *client)
{
    struct gc_conn *conn;

    TAILQ_FOREACH(conn, &client->conns, link)
    {
        if (gc_conn_capacity(conn) == 0)
            continue;
        gc_conn_verify_if_stale(conn);
        if (gc_conn_capacity(conn) > 0)
            return conn;
    }
    return NULL;
}

static bool client_conn_opening(const struct cws_gclient *client)
{
    const struct gc_conn *conn;

    TAILQ_FOREACH(conn, &client->conns, link)
    {
        if (gc_conn_opening(conn))
            return true;
    }
    return false;
}

/* Returns true when the call is on a stream now. A failure leaves it for the waiting list:
 * its deadline or the next dispatch settles it, and no callback runs inside the caller. */
static bool client_submit(struct gc_conn *conn, struct cws_gc_call *call)
{
    struct cws_error err;

    if (gc_conn_submit(conn, call, &err) < 0) {
        cws_log(CWS_LOG_DEBUG, "call %" PRIu64 ": %s", call->id, err.message);
        return false;
    }
    call->state = GC_CALL_ACTIVE;
    return true;
}

static void client_wait(struct cws_gclient *client, struct cws_gc_call *call, bool front)
{
    call->state = GC_CALL_WAITING;
    if (front)
        TAILQ_INSERT_HEAD(&client->waiting, call, link);
    else
        TAILQ_INSERT_TAIL(&client->waiting, call, link);
    client->n_waiting++;
    gc_client_schedule_dispatch(client);
}

void gc_client_place(struct cws_gclient *client, struct cws_gc_call *call)
{
    struct gc_conn *conn;

    /* Calls already waiting go first. */
    if (client->n_waiting == 0) {
        conn = client_pick(client);
        if (conn && client_submit(conn, call))
            return;
    }
    client_wait(client, call, false);
}

void gc_client_requeue(struct cws_gclient *client, struct cws_gc_call *call)
{
    client_wait(client, call, true);
}

void gc_client_unwait(struct cws_gclient *client, struct cws_gc_call *call)
{
    TAILQ_REMOVE(&client->waiting, call, link);
    client->n_waiting--;
}

void gc_client_schedule_dispatch(struct cws_gclient *client)
{
    if (!client->closing)
        event_active(client->dispatch_ev, 0, 0);
}

/* While connects fail, calls that did not ask to wait fail now with the reason. Collected
 * first, because on_done() may start new calls. */
static void client_fail_fast(struct cws_gclient *client)
{
    TAILQ_HEAD(, cws_gc_call) failing = TAILQ_HEAD_INITIALIZER(failing);
    struct cws_gc_call *call, *next;
    int64_t retry_in = client->backoff_until_ms - cws_gc_now_ms();
    struct cws_error err;

    for (call = TAILQ_FIRST(&client->waiting); call; call = next) {
        next = TAILQ_NEXT(call, link);
        if (call->wait_for_ready)
            continue;
        gc_client_unwait(client, call);
        call->state = GC_CALL_NEW;
        TAILQ_INSERT_TAIL(&failing, call, link);
    }
    cws_error_set(&err, CWS_E_UNAVAILABLE, "%s (next attempt in %" PRId64 " ms)",
                  client->last_connect_error.message, retry_in > 0 ? retry_in : 0);
    while ((call = TAILQ_FIRST(&failing))) {
        TAILQ_REMOVE(&failing, call, link);
        gc_call_fail(call, &err);
    }
}

/* Uniform in [0, 1): xorshift64*, enough for jitter. */
static double client_random(struct cws_gclient *client)
{
    uint64_t x = client->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    client->rng = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static int backoff_next(struct cws_gclient *client)
{
    double next = client->backoff_ms ? client->backoff_ms * BACKOFF_FACTOR
                                     : (double)client->backoff_initial_ms;
    double jitter = 1.0 + BACKOFF_JITTER * (2.0 * client_random(client) - 1.0);

    if (next > client->backoff_max_ms)
        next = client->backoff_max_ms;
    return (int)(next * jitter);
}

static void client_connect_failed(struct cws_gclient *client, const struct cws_error *err)
{
    int delay = backoff_next(client);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};

    client->stats.connect_failures++;
    client->last_connect_error = *err;
    client->backoff_ms = delay;
    client->backoff_until_ms = cws_gc_now_ms() + delay;
    cws_log(CWS_LOG_WARN, "%s; next attempt in %d ms", err->message, delay);
    client_fail_fast(client);
    evtimer_add(client->backoff_ev, &tv);
}

static void client_open_conn(struct cws_gclient *client)
{
    struct gc_conn *conn = NULL;
    struct cws_error err;

    if (gc_conn_open(client, &conn, &err) < 0) {
        client_connect_failed(client, &err);
        return;
    }
    TAILQ_INSERT_TAIL(&client->conns, conn, link);
    client->n_conns++;
    cws_log(CWS_LOG_DEBUG, "gRPC connection %" PRIu64 " to %s opening (%u open, %u calls waiting)",
            conn->id, client->endpoint.display, client->n_conns, client->n_waiting);
}

static void client_dispatch(struct cws_gclient *client)
{
    struct cws_gc_call *call;

    while ((call = TAILQ_FIRST(&client->waiting))) {
        struct gc_conn *conn = client_pick(client);

        if (!conn)
            break;
        gc_client_unwait(client, call);
        if (!client_submit(conn, call)) {
            TAILQ_INSERT_HEAD(&client->waiting, call, link);
            client->n_waiting++;
            break;
        }
    }
    if (client->n_waiting == 0 || client->closing || client_conn_opening(client))
        return;
    if (cws_gc_now_ms() < client->backoff_until_ms) {
        client_fail_fast(client); /* the backoff timer dispatches the patient ones */
        return;
    }
    if (client->n_conns < client->max_connections)
        client_open_conn(client);
}

static void on_dispatch(evutil_socket_t fd, short what, void *arg)
{
    client_dispatch(arg);
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
    struct cws_gclient *client = arg;

    /* The backoff is over when its timer fires. libevent's timer clock is coarser than
     * cws_gc_now_ms() and may fire a few ms before backoff_until_ms: the dispatch would then
     * neither connect nor arm the timer again, and the calls waiting for ready would wait for
     * their deadlines (seen once unix: connects became fast enough to beat the local
     * backend's bind at start). */
    client->backoff_until_ms = 0;
    client_dispatch(client);
}

void gc_client_conn_ready(struct cws_gclient *client, struct gc_conn *conn)
{
    gc_client_schedule_dispatch(client);
}

void gc_client_conn_closed(struct cws_gclient *client, struct gc_conn *conn)
{
    TAILQ_REMOVE(&client->conns, conn, link);
    client->n_conns--;
    if (!conn->settings_received && !client->closing)
        client_connect_failed(client, &conn->error);
}

/* ---- creation --------------------------------------------------------------------------- */

static int int_or(int v, int dflt)
{
    return v != 0 ? v : dflt;
}

static void client_apply_limits(struct cws_gclient *c, const struct cws_gclient_config *cfg)
{
    c->max_message = cfg->max_message ? cfg->max_message : CWS_GRPC_MAX_MESSAGE;
    c->send_high_water = cfg->send_high_water ? cfg->send_high_water : GC_DEFAULT_SEND_HIGH_WATER;
    c->stream_window = cfg->stream_window ? cfg->stream_window : GC_DEFAULT_STREAM_WINDOW;
    if (c->stream_window > NGHTTP2_MAX_WINDOW_SIZE)
        c->stream_window = NGHTTP2_MAX_WINDOW_SIZE;
    c->max_streams_per_conn = cfg->max_streams_per_conn;
    c->max_connections = cfg->max_connections ? cfg->max_connections : GC_DEFAULT_MAX_CONNECTIONS;
    c->connect_timeout_ms = int_or(cfg->connect_timeout_ms, GC_DEFAULT_CONNECT_TIMEOUT);
    c->keepalive_time_ms = int_or(cfg->keepalive_time_ms, GC_DEFAULT_KEEPALIVE_TIME);
    c->keepalive_timeout_ms = int_or(cfg->keepalive_timeout_ms, GC_DEFAULT_KEEPALIVE_WAIT);
    c->keepalive_without_calls = cfg->keepalive_without_calls;
    c->idle_timeout_ms = int_or(cfg->idle_timeout_ms, GC_DEFAULT_IDLE_TIMEOUT);
    c->backoff_initial_ms = int_or(cfg->backoff_initial_ms, GC_DEFAULT_BACKOFF_INITIAL);
    c->backoff_max_ms = int_or(cfg->backoff_max_ms, GC_DEFAULT_BACKOFF_MAX);
    c->replay_max = cfg->replay_max ? cfg->replay_max : GC_DEFAULT_REPLAY_MAX;
}

static int client_init_h2(struct cws_gclient *c, struct cws_error *err)
{
    if (gc_conn_callbacks_new(&c->h2_callbacks) < 0 || nghttp2_option_new(&c->h2_option) != 0)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory setting up nghttp2");
    /* Stream windows are given back only when a call has taken the bytes. */
    nghttp2_option_set_no_auto_window_update(c->h2_option, 1);
    nghttp2_option_set_no_closed_streams(c->h2_option, 1);
    return 0;
}

static int client_init(struct cws_gclient *c, const struct cws_gclient_config *cfg,
                       struct cws_error *err)
{
    int r = gc_endpoint_parse(cfg->url, &c->endpoint, err);

    if (r == 0)
        r = gc_transport_global_init(&c->endpoint, err);
    if (r < 0)
        return r;
    r = gc_metadata_copy(cfg->metadata, cfg->n_metadata, &c->metadata, err);
    if (r < 0)
        return r;
    c->user_agent = strdup(cfg->user_agent ? cfg->user_agent : DEFAULT_USER_AGENT);
    c->ca_file = cfg->tls_ca_file ? strdup(cfg->tls_ca_file) : NULL;
    c->dispatch_ev = event_new(c->base, -1, 0, on_dispatch, c);
    c->backoff_ev = evtimer_new(c->base, on_backoff, c);
    if (!c->user_agent || (cfg->tls_ca_file && !c->ca_file) || !c->dispatch_ev || !c->backoff_ev)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory creating the gRPC client");
    client_apply_limits(c, cfg);
    return client_init_h2(c, err);
}

int cws_gclient_new(const struct cws_gclient_config *cfg, struct cws_gclient **ret,
                    struct cws_error *err)
{
    struct cws_gclient *c;
    int r;

    if (!cfg || !cfg->base || !ret)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "gRPC client: missing configuration");
    c = calloc(1, sizeof(*c));
    if (!c)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory creating the gRPC client");
    c->base = cfg->base;
    c->rng = ((uint64_t)getpid() << 32 ^ (uint64_t)cws_gc_now_ms() ^ (uint64_t)(uintptr_t)c) | 1;
    TAILQ_INIT(&c->conns);
    TAILQ_INIT(&c->waiting);
    cws_error_clear(&c->last_connect_error);
    r = client_init(c, cfg, err);
    if (r < 0) {
        cws_gclient_free(c);
        return r;
    }
    for (size_t i = 0; i < c->metadata.n; i++)
        cws_log(CWS_LOG_DEBUG, "gRPC client metadata: %s%s", c->metadata.v[i].name,
                gc_header_is_secret(c->metadata.v[i].name) ? " (secret)" : "");
    cws_log(CWS_LOG_INFO, "gRPC client for %s", c->endpoint.display);
    *ret = c;
    return 0;
}

static void client_end_calls(struct cws_gclient *client)
{
    struct cws_gc_call *call;
    struct gc_conn *conn;
    struct cws_error err;

    cws_error_set(&err, CWS_E_CANCELLED, "the gRPC client is shutting down");
    while ((call = TAILQ_FIRST(&client->waiting)))
        gc_call_fail(call, &err);
    TAILQ_FOREACH(conn, &client->conns, link)
    {
        while ((call = TAILQ_FIRST(&conn->calls)))
            gc_call_fail(call, &err);
    }
}

void cws_gclient_free(struct cws_gclient *client)
{
    struct gc_conn *conn;

    if (!client)
        return;
    client->closing = true;
    client_end_calls(client);
    while ((conn = TAILQ_FIRST(&client->conns))) {
        TAILQ_REMOVE(&client->conns, conn, link);
        gc_conn_close(conn, NULL); /* GOAWAY, best effort */
        gc_conn_free(conn);
    }
    if (client->dispatch_ev)
        event_free(client->dispatch_ev);
    if (client->backoff_ev)
        event_free(client->backoff_ev);
    if (client->h2_callbacks)
        nghttp2_session_callbacks_del(client->h2_callbacks);
    if (client->h2_option)
        nghttp2_option_del(client->h2_option);
    gc_endpoint_clear(&client->endpoint);
    gc_metadata_clear(&client->metadata);
    free(client->user_agent);
    free(client->ca_file);
    free(client);
}

/* ---- calls ------------------------------------------------------------------------------ */

static int check_path(const char *path, struct cws_error *err)
{
    size_t len = path ? strlen(path) : 0;

    if (len < 2 || path[0] != '/' || len > PATH_MAX_LEN)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "invalid gRPC method path: expected /package.Service/Method");
    for (size_t i = 0; i < len; i++) {
        if (path[i] <= 0x20 || path[i] >= 0x7f)
            return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                                 "invalid character in gRPC method path");
    }
    return 0;
}

static int client_new_call(struct cws_gclient *client, const char *path,
                           const struct cws_gc_call_opts *opts, const struct cws_gc_handlers *h,
                           void *ud, struct cws_gc_call **ret, struct cws_error *err)
{
    int r;

    if (!client)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "no gRPC client");
    if (client->closing)
        return cws_error_set(err, CWS_E_UNAVAILABLE, "the gRPC client is shutting down");
    r = check_path(path, err);
    if (r < 0)
        return r;
    if (opts && opts->deadline_ms > 0 && opts->deadline_ms <= cws_gc_now_ms())
        return cws_error_set(err, CWS_E_DEADLINE_EXCEEDED, "the deadline expired before %s started",
                             path);
    return gc_call_new(client, path, opts, h, ud, ret, err);
}

int cws_gclient_call_start(struct cws_gclient *client, const char *path,
                           const struct cws_gc_call_opts *opts, const struct cws_gc_handlers *h,
                           void *ud, struct cws_gc_call **ret_call, struct cws_error *err)
{
    struct cws_gc_call *call = NULL;
    int r = client_new_call(client, path, opts, h, ud, &call, err);

    if (r < 0)
        return r;
    gc_client_place(client, call);
    if (ret_call)
        *ret_call = call;
    return 0;
}

int cws_gclient_unary(struct cws_gclient *client, const char *path,
                      const struct cws_gc_call_opts *opts, const uint8_t *request, size_t len,
                      const struct cws_gc_handlers *h, void *ud, struct cws_gc_call **ret_call,
                      struct cws_error *err)
{
    struct cws_gc_call *call = NULL;
    int r = client_new_call(client, path, opts, h, ud, &call, err);

    if (r < 0)
        return r;
    /* Queued before the stream opens, so HEADERS and the one DATA frame leave together. */
    r = cws_gc_call_send(call, request, len);
    if (r < 0) {
        gc_call_unref(call);
        return cws_error_set(err, (enum cws_errcode) - r,
                             r == -CWS_E_RESOURCE_EXHAUSTED
                                 ? "request of %zu bytes exceeds the message size limit"
                                 : "cannot queue a request of %zu bytes",
                             len);
    }
    cws_gc_call_close_send(call);
    gc_client_place(client, call);
    if (ret_call)
        *ret_call = call;
    return 0;
}

void cws_gclient_get_stats(const struct cws_gclient *client, struct cws_gclient_stats *ret)
{
    *ret = client->stats;
    ret->connections = client->n_conns;
    ret->calls_active = client->n_active;
    ret->calls_waiting = client->n_waiting;
}
