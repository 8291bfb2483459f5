/* libcurl as a connection factory: DNS, HTTPS_PROXY/NO_PROXY (CONNECT tunnels), TLS with the
 * system roots and hostname checks, Unix sockets; then the connected socket is read and
 * written with curl_easy_recv()/curl_easy_send(). HTTP/2 itself is nghttp2's (h2_conn.c).
 *
 * Pitfalls measured with libcurl 7.88 (reference/http2-transport-notes.md):
 * - libcurl must not negotiate ALPN h2 itself, or it stacks its own HTTP/2 layer even with
 *   CONNECT_ONLY: ALPN is switched off and h2 offered through SSL_CTX_set_alpn_protos();
 *   the selected protocol is checked after the first receive (before it the TLS pointer is
 *   not attached to the handle).
 * - A TLS write retried after CURLE_AGAIN must see the same bytes; the buffer may move, so
 *   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER is set.
 * - The easy handle stays in its multi handle while the connection is used: the connection
 *   lives in that multi's cache. Each connection has its own multi, so that opening a second
 *   connection never makes libcurl prune or reuse the first.
 * - A recv returns at most CURLOPT_BUFFERSIZE bytes: raised.
 */
#include <curl/curl.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "grpc_client_private.h"
#include "log.h"

/* Largest single receive; CURLOPT_BUFFERSIZE must allow it (512 KiB is libcurl's cap). */
#define TRANSPORT_BUFFER_SIZE (256L * 1024)
#define TCP_KEEPIDLE_S        60L
#define TCP_KEEPINTVL_S       15L

/* libevent watch of one socket libcurl uses while connecting (happy eyeballs may use two). */
struct sock_watch {
    LIST_ENTRY(sock_watch) link;
    struct gc_transport *t;
    struct event *ev;
};

struct gc_transport {
    struct event_base *base;
    CURLM *multi;
    CURL *easy;
    struct event *timer_ev;
    LIST_HEAD(, sock_watch) watches;
    gc_transport_connected_fn cb;
    void *ud;
    bool reported;
    bool tls;
    bool unix_socket;
    char *display;
    char errbuf[CURL_ERROR_SIZE];
};

static bool global_done;
static bool tls_ok;

int gc_transport_global_init(struct cws_error *err)
{
    const curl_version_info_data *v;
    const nghttp2_info *ng;

    if (global_done)
        return 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return cws_error_set(err, CWS_E_INTERNAL, "libcurl failed to initialise");
    v = curl_version_info(CURLVERSION_NOW);
    ng = nghttp2_version(0);
    tls_ok = v->ssl_version && strncmp(v->ssl_version, "OpenSSL/", 8) == 0;
    cws_log(CWS_LOG_INFO,
            "gRPC client: libcurl %s (%s) makes the connections, nghttp2 %s speaks HTTP/2 "
            "(libcurl's own HTTP/2 code is not used)",
            v->version, v->ssl_version ? v->ssl_version : "no TLS", ng->version_str);
    if (v->version_num < 0x080700)
        cws_log(CWS_LOG_DEBUG,
                "libcurl %s has HTTP/2 bugs (reused h2c connections, RST_STREAM after every "
                "call, busy loop on a full window, late cancels, pause hangs); bypassed here",
                v->version);
    if (!tls_ok)
        cws_log(CWS_LOG_WARN,
                "libcurl uses %s, not OpenSSL: https:// backends are not supported (h2 cannot "
                "be offered over ALPN)",
                v->ssl_version ? v->ssl_version : "no TLS");
    global_done = true;
    return 0;
}

bool gc_transport_tls_supported(void)
{
    return tls_ok;
}

/* ---- libcurl's multi interface on libevent, for the connect phase ----------------------- */

static void watch_free(struct sock_watch *w)
{
    LIST_REMOVE(w, link);
    event_free(w->ev);
    free(w);
}

/* libcurl names a Unix socket connect "localhost port 80": the OS error says more. */
static void transport_connect_error(struct gc_transport *t, CURLcode rc, struct cws_error *err)
{
    long os_errno = 0;

    if (curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno) != CURLE_OK)
        os_errno = 0;
    if (t->unix_socket && os_errno != 0)
        cws_error_set(err, CWS_E_UNAVAILABLE, "cannot connect to %s: %s", t->display,
                      strerror((int)os_errno));
    else if (os_errno != 0)
        cws_error_set(err, CWS_E_UNAVAILABLE, "cannot connect to %s: %s (%s)", t->display,
                      t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc), strerror((int)os_errno));
    else
        cws_error_set(err, CWS_E_UNAVAILABLE, "cannot connect to %s: %s", t->display,
                      t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
}

static void transport_report(struct gc_transport *t, CURLcode rc)
{
    struct sock_watch *w;
    struct cws_error err;

    t->reported = true;
    /* libcurl is done with the socket: its level-triggered watches must not fire again. */
    LIST_FOREACH(w, &t->watches, link)
    event_del(w->ev);
    evtimer_del(t->timer_ev);
    if (rc == CURLE_OK) {
        t->cb(t, NULL, t->ud);
        return;
    }
    transport_connect_error(t, rc, &err);
    t->cb(t, &err, t->ud); /* may free t */
}

static void transport_check_done(struct gc_transport *t)
{
    CURLMsg *m;
    int left = 0;

    while (!t->reported && (m = curl_multi_info_read(t->multi, &left))) {
        if (m->msg == CURLMSG_DONE) {
            transport_report(t, m->data.result);
            return; /* t may be gone */
        }
    }
}

static void on_watch_event(evutil_socket_t fd, short what, void *arg)
{
    struct sock_watch *w = arg;
    struct gc_transport *t = w->t;
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;

    curl_multi_socket_action(t->multi, fd, action, &running);
    transport_check_done(t);
}

static void on_curl_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gc_transport *t = arg;
    int running = 0;

    curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    transport_check_done(t);
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *clientp, void *socketp)
{
    struct gc_transport *t = clientp;
    struct sock_watch *w = socketp;
    short flags = EV_PERSIST;

    if (what == CURL_POLL_REMOVE) {
        if (w)
            watch_free(w);
        curl_multi_assign(t->multi, s, NULL);
        return 0;
    }
    if (what & CURL_POLL_IN)
        flags |= EV_READ;
    if (what & CURL_POLL_OUT)
        flags |= EV_WRITE;
    if (!w) {
        w = calloc(1, sizeof(*w));
        if (!w)
            return -1;
        w->t = t;
        w->ev = event_new(t->base, s, flags, on_watch_event, w);
        if (!w->ev) {
            free(w);
            return -1;
        }
        LIST_INSERT_HEAD(&t->watches, w, link);
        curl_multi_assign(t->multi, s, w);
    } else {
        event_del(w->ev);
        event_assign(w->ev, t->base, s, flags, on_watch_event, w);
    }
    if (!t->reported)
        event_add(w->ev, NULL);
    return 0;
}

static int on_curl_timer_change(CURLM *multi, long timeout_ms, void *clientp)
{
    struct gc_transport *t = clientp;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

    if (timeout_ms < 0 || t->reported)
        evtimer_del(t->timer_ev);
    else
        evtimer_add(t->timer_ev, &tv);
    return 0;
}

/* ---- TLS -------------------------------------------------------------------------------- */

static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *userptr)
{
    static const unsigned char alpn_h2[] = {2, 'h', '2'};
    SSL_CTX *ctx = ssl_ctx;

    /* Returns 0 on success, unlike most of OpenSSL. */
    if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)) != 0)
        return CURLE_SSL_CONNECT_ERROR;
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return CURLE_OK;
}

int gc_transport_check_alpn(struct gc_transport *t, struct cws_error *err)
{
    struct curl_tlssessioninfo *info = NULL;
    const unsigned char *proto = NULL;
    unsigned int len = 0;

    if (!t->tls)
        return 0;
    if (curl_easy_getinfo(t->easy, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK || !info ||
        info->backend != CURLSSLBACKEND_OPENSSL || !info->internals)
        return cws_error_set(err, CWS_E_UNAVAILABLE,
                             "cannot tell which protocol %s agreed to over TLS", t->display);
    SSL_get0_alpn_selected(info->internals, &proto, &len);
    if (len != 2 || memcmp(proto, "h2", 2) != 0)
        return cws_error_set(err, CWS_E_UNAVAILABLE,
                             "%s did not agree to HTTP/2 over TLS (ALPN \"%.*s\"): is it a gRPC "
                             "server?",
                             t->display, (int)(len < 32 ? len : 32), proto ? (char *)proto : "");
    return 0;
}

/* ---- connect ---------------------------------------------------------------------------- */

static CURLcode set_tls_options(struct gc_transport *t, const struct gc_transport_opts *o)
{
    CURLcode rc = CURLE_OK;

    if (rc == CURLE_OK)
        rc = curl_easy_setopt(t->easy, CURLOPT_SSL_ENABLE_ALPN, 0L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(t->easy, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(t->easy, CURLOPT_SSL_CTX_DATA, t);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(t->easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (rc == CURLE_OK && o->ca_file) {
        rc = curl_easy_setopt(t->easy, CURLOPT_CAINFO, o->ca_file);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(t->easy, CURLOPT_CAPATH, NULL);
    }
    return rc;
}

static CURLcode set_options(struct gc_transport *t, const struct gc_transport_opts *o)
{
    const struct gc_endpoint *ep = o->endpoint;
    CURLcode rc = CURLE_OK;

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(t->easy, opt, val);                                              \
    } while (0)
    SETOPT(CURLOPT_URL, ep->connect_url);
    SETOPT(CURLOPT_CONNECT_ONLY, 1L);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1); /* keep curl's h2 out */
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    SETOPT(CURLOPT_BUFFERSIZE, TRANSPORT_BUFFER_SIZE);
    SETOPT(CURLOPT_ERRORBUFFER, t->errbuf);
    SETOPT(CURLOPT_PRIVATE, t);
    SETOPT(CURLOPT_HTTPPROXYTUNNEL, 1L); /* through a proxy, always CONNECT */
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    if (ep->scheme == GC_SCHEME_UNIX) {
        SETOPT(CURLOPT_UNIX_SOCKET_PATH, ep->unix_path);
        SETOPT(CURLOPT_PROXY, ""); /* a local socket never goes through a proxy */
    } else {
        SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
        SETOPT(CURLOPT_TCP_KEEPIDLE, TCP_KEEPIDLE_S);
        SETOPT(CURLOPT_TCP_KEEPINTVL, TCP_KEEPINTVL_S);
    }
#undef SETOPT
    if (rc == CURLE_OK && ep->scheme == GC_SCHEME_HTTPS)
        rc = set_tls_options(t, o);
    return rc;
}

static int transport_setup(struct gc_transport *t, const struct gc_transport_opts *o,
                           struct cws_error *err)
{
    CURLcode rc;

    t->multi = curl_multi_init();
    t->easy = curl_easy_init();
    t->timer_ev = evtimer_new(t->base, on_curl_timer, t);
    t->display = strdup(o->endpoint->display);
    if (!t->multi || !t->easy || !t->timer_ev || !t->display)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory creating a connection");
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer_change);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
    rc = set_options(t, o);
    if (rc == CURLE_NOT_BUILT_IN || rc == CURLE_UNKNOWN_OPTION)
        return cws_error_set(err, CWS_E_UNIMPLEMENTED,
                             "this libcurl cannot connect to %s: %s (it needs OpenSSL and Unix "
                             "socket support)",
                             t->display, curl_easy_strerror(rc));
    if (rc != CURLE_OK)
        return cws_error_set(err, CWS_E_INTERNAL, "libcurl refused an option for %s: %s",
                             t->display, curl_easy_strerror(rc));
    if (curl_multi_add_handle(t->multi, t->easy) != CURLM_OK)
        return cws_error_set(err, CWS_E_INTERNAL, "libcurl could not start connecting to %s",
                             t->display);
    return 0;
}

int gc_transport_connect(struct event_base *base, const struct gc_transport_opts *opts,
                         gc_transport_connected_fn cb, void *ud, struct gc_transport **ret,
                         struct cws_error *err)
{
    struct gc_transport *t = calloc(1, sizeof(*t));
    int r;

    if (!t)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory creating a connection");
    t->base = base;
    t->cb = cb;
    t->ud = ud;
    t->tls = opts->endpoint->scheme == GC_SCHEME_HTTPS;
    t->unix_socket = opts->endpoint->scheme == GC_SCHEME_UNIX;
    LIST_INIT(&t->watches);
    r = transport_setup(t, opts, err);
    if (r < 0) {
        gc_transport_free(t);
        return r;
    }
    *ret = t;
    return 0;
}

int gc_transport_fd(const struct gc_transport *t)
{
    curl_socket_t fd = CURL_SOCKET_BAD;

    if (curl_easy_getinfo(t->easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK)
        return -1;
    return (int)fd;
}

/* ---- I/O -------------------------------------------------------------------------------- */

static int io_error(struct gc_transport *t, const char *what, CURLcode rc, struct cws_error *err)
{
    return cws_error_set(err, CWS_E_UNAVAILABLE, "%s %s failed: %s", what, t->display,
                         t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
}

int gc_transport_recv(struct gc_transport *t, uint8_t *buf, size_t cap, size_t *ret_n,
                      struct cws_error *err)
{
    size_t n = 0;
    CURLcode rc;

    t->errbuf[0] = '\0';
    rc = curl_easy_recv(t->easy, buf, cap, &n);
    if (rc == CURLE_AGAIN)
        return 1;
    if (rc != CURLE_OK)
        return io_error(t, "reading from", rc, err);
    if (n == 0)
        return cws_error_set(err, CWS_E_UNAVAILABLE, "%s closed the connection", t->display);
    *ret_n = n;
    return 0;
}

int gc_transport_send(struct gc_transport *t, const uint8_t *buf, size_t len, size_t *ret_n,
                      struct cws_error *err)
{
    size_t n = 0;
    CURLcode rc;

    t->errbuf[0] = '\0';
    rc = curl_easy_send(t->easy, buf, len, &n);
    if (rc == CURLE_AGAIN || (rc == CURLE_OK && n == 0))
        return 1;
    if (rc != CURLE_OK)
        return io_error(t, "writing to", rc, err);
    *ret_n = n;
    return 0;
}

void gc_transport_free(struct gc_transport *t)
{
    if (!t)
        return;
    t->reported = true; /* no callback and no watch re-armed from here on */
    if (t->multi && t->easy)
        curl_multi_remove_handle(t->multi, t->easy);
    if (t->easy)
        curl_easy_cleanup(t->easy);
    if (t->multi)
        curl_multi_cleanup(t->multi);
    while (!LIST_EMPTY(&t->watches))
        watch_free(LIST_FIRST(&t->watches));
    if (t->timer_ev)
        event_free(t->timer_ev);
    free(t->display);
    free(t);
}
