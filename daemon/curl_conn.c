/* The transports under nghttp2 (h2_conn.c).
 *
 * unix: URLs (the local backend) use a plain non-blocking Unix socket connected here: the
 * default daemon then never loads libcurl, nor what libcurl pulls in (OpenSSL, GnuTLS,
 * Kerberos, LDAP, ...), which was most of its resident memory (tests/bench, bench_daemon
 * row d).
 *
 * http:// and https:// use libcurl as a connection factory: DNS, HTTPS_PROXY/NO_PROXY
 * (CONNECT tunnels), TLS with the system roots and hostname checks; then the connected
 * socket is read and written with curl_easy_recv()/curl_easy_send(). libcurl is loaded with
 * dlopen() the first time such a URL is used (gc_curl_load()), and OpenSSL's ALPN functions
 * are looked up through it. HTTP/2 itself is nghttp2's.
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
#include <dlfcn.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "grpc_client_private.h"
#include "log.h"

/* Largest single receive; CURLOPT_BUFFERSIZE must allow it (512 KiB is libcurl's cap). */
#define TRANSPORT_BUFFER_SIZE (256L * 1024)
#define TCP_KEEPIDLE_S        60L
#define TCP_KEEPINTVL_S       15L
/* A Unix socket whose listen backlog is full refuses with EAGAIN, one not bound or listening
 * yet with ENOENT or ECONNREFUSED (retried while the caller is patient): try again this often
 * (the connection's handshake timer bounds the attempts). */
#define UNIX_RETRY_MS 10
#define UNIX_RCVBUF   (1 << 20)

/* The libcurl to load: the ABI's soname, then Debian's GnuTLS flavour (no https:// then,
 * see tls_ok). */
#ifndef CWS_LIBCURL_SONAME
#define CWS_LIBCURL_SONAME "libcurl.so.4"
#endif
static const char *const curl_sonames[] = {CWS_LIBCURL_SONAME, "libcurl-gnutls.so.4"};

/* libevent watch of one socket libcurl uses while connecting (happy eyeballs may use two). */
struct sock_watch {
    LIST_ENTRY(sock_watch) link;
    struct gc_transport *t;
    struct event *ev;
};

struct gc_transport {
    struct event_base *base;
    gc_transport_connected_fn cb;
    void *ud;
    bool reported;
    bool tls;
    bool unix_socket;
    char *display;
    /* unix: a socket of ours */
    int fd;
    struct sockaddr_un unix_addr;
    struct event *unix_ev;      /* reports the connect, or retries it */
    int unix_errno;             /* 0 connected, -1 not yet, else why it failed */
    int64_t unix_patient_until; /* ENOENT and ECONNREFUSED are retried until then */
    /* http://, https:// through libcurl */
    CURLM *multi;
    CURL *easy;
    struct event *timer_ev;
    LIST_HEAD(, sock_watch) watches;
    char errbuf[CURL_ERROR_SIZE];
};

/* OpenSSL's functions used on libcurl's TLS handles, found through libcurl's dependencies. */
struct gc_ssl_api {
    int (*ctx_set_alpn_protos)(SSL_CTX *ctx, const unsigned char *protos, unsigned int len);
    long (*ctx_ctrl)(SSL_CTX *ctx, int cmd, long larg, void *parg);
    void (*get0_alpn_selected)(const SSL *ssl, const unsigned char **data, unsigned int *len);
};

static struct gc_curl_api cu;
static struct gc_ssl_api ossl;
static bool curl_loaded;
static bool tls_ok;
static bool versions_logged;

/* Set *slot from dlsym(); false when the symbol is missing. */
#define LOAD_SYM(handle, slot, name) ((slot) = (__typeof__(slot))dlsym((handle), (name)), (slot))

static bool load_curl_symbols(void *h, const char **ret_missing)
{
#define CURL_SYM(field, name)                                                                      \
    do {                                                                                           \
        if (!LOAD_SYM(h, cu.field, name)) {                                                        \
            *ret_missing = name;                                                                   \
            return false;                                                                          \
        }                                                                                          \
    } while (0)
    CURL_SYM(global_init, "curl_global_init");
    CURL_SYM(version_info, "curl_version_info");
    CURL_SYM(easy_strerror, "curl_easy_strerror");
    CURL_SYM(easy_init, "curl_easy_init");
    CURL_SYM(easy_setopt, "curl_easy_setopt");
    CURL_SYM(easy_getinfo, "curl_easy_getinfo");
    CURL_SYM(easy_recv, "curl_easy_recv");
    CURL_SYM(easy_send, "curl_easy_send");
    CURL_SYM(easy_cleanup, "curl_easy_cleanup");
    CURL_SYM(multi_init, "curl_multi_init");
    CURL_SYM(multi_setopt, "curl_multi_setopt");
    CURL_SYM(multi_add_handle, "curl_multi_add_handle");
    CURL_SYM(multi_remove_handle, "curl_multi_remove_handle");
    CURL_SYM(multi_socket_action, "curl_multi_socket_action");
    CURL_SYM(multi_info_read, "curl_multi_info_read");
    CURL_SYM(multi_assign, "curl_multi_assign");
    CURL_SYM(multi_cleanup, "curl_multi_cleanup");
    CURL_SYM(url, "curl_url");
    CURL_SYM(url_set, "curl_url_set");
    CURL_SYM(url_get, "curl_url_get");
    CURL_SYM(url_cleanup, "curl_url_cleanup");
    CURL_SYM(free, "curl_free");
#undef CURL_SYM
    return true;
}

/* https:// needs libcurl on OpenSSL, whose SSL_CTX we give ALPN h2 ourselves. */
static bool load_ssl_symbols(void *h, const curl_version_info_data *v)
{
    if (!v->ssl_version || strncmp(v->ssl_version, "OpenSSL/", 8) != 0)
        return false;
    return LOAD_SYM(h, ossl.ctx_set_alpn_protos, "SSL_CTX_set_alpn_protos") &&
           LOAD_SYM(h, ossl.ctx_ctrl, "SSL_CTX_ctrl") &&
           LOAD_SYM(h, ossl.get0_alpn_selected, "SSL_get0_alpn_selected");
}

static void log_curl_versions(const curl_version_info_data *v)
{
    cws_log(CWS_LOG_INFO,
            "gRPC client: libcurl %s (%s) makes the connections, nghttp2 %s speaks HTTP/2 "
            "(libcurl's own HTTP/2 code is not used)",
            v->version, v->ssl_version ? v->ssl_version : "no TLS",
            nghttp2_version(0)->version_str);
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
}

int gc_curl_load(const char *what, const struct gc_curl_api **ret, struct cws_error *err)
{
    char why[256] = "";
    const char *missing = NULL;
    void *h = NULL;

    if (curl_loaded) {
        *ret = &cu;
        return 0;
    }
    for (size_t i = 0; i < sizeof(curl_sonames) / sizeof(curl_sonames[0]) && !h; i++) {
        h = dlopen(curl_sonames[i], RTLD_NOW | RTLD_LOCAL);
        if (!h && i == 0)
            snprintf(why, sizeof(why), "%s", dlerror()); /* the first one's reason says most */
    }
    if (!h)
        return cws_error_set(err, CWS_E_UNIMPLEMENTED,
                             "%s needs libcurl, which could not be loaded (%s): install it "
                             "(Debian and Ubuntu: apt install libcurl4); only unix: backends "
                             "work without it",
                             what, why);
    if (!load_curl_symbols(h, &missing)) {
        dlclose(h);
        return cws_error_set(err, CWS_E_UNIMPLEMENTED,
                             "%s needs libcurl 7.62 or newer: the libcurl installed has no %s",
                             what, missing);
    }
    if (cu.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        dlclose(h);
        return cws_error_set(err, CWS_E_INTERNAL, "libcurl failed to initialise");
    }
    /* Kept loaded for the life of the process: libcurl cannot be unloaded safely. */
    const curl_version_info_data *v = cu.version_info(CURLVERSION_NOW);
    tls_ok = load_ssl_symbols(h, v);
    log_curl_versions(v);
    curl_loaded = true;
    *ret = &cu;
    return 0;
}

int gc_transport_global_init(const struct gc_endpoint *endpoint, struct cws_error *err)
{
    if (endpoint->scheme == GC_SCHEME_UNIX) {
        if (!versions_logged)
            cws_log(CWS_LOG_INFO, "gRPC client: nghttp2 %s speaks HTTP/2 over Unix sockets",
                    nghttp2_version(0)->version_str);
        versions_logged = true;
        return 0;
    }
    const struct gc_curl_api *api;
    int r = gc_curl_load(endpoint->display, &api, err);

    if (r < 0)
        return r;
    if (endpoint->scheme == GC_SCHEME_HTTPS && !tls_ok)
        return cws_error_set(err, CWS_E_UNIMPLEMENTED,
                             "%s needs TLS with ALPN h2, which this libcurl (not an OpenSSL "
                             "build) cannot offer",
                             endpoint->display);
    return 0;
}

/* ---- unix: a plain socket --------------------------------------------------------------- */

static void unix_report(struct gc_transport *t)
{
    struct cws_error err;

    t->reported = true;
    if (t->unix_errno == 0) {
        t->cb(t, NULL, t->ud);
        return;
    }
    cws_error_set(&err, CWS_E_UNAVAILABLE, "cannot connect to %s: %s", t->display,
                  strerror(t->unix_errno));
    t->cb(t, &err, t->ud); /* may free t */
}

/* One connect attempt: done (unix_errno set) or to be retried. */
static void unix_try_connect(struct gc_transport *t)
{
    if (connect(t->fd, (const struct sockaddr *)&t->unix_addr, sizeof(t->unix_addr)) == 0 ||
        errno == EISCONN)
        t->unix_errno = 0;
    else if (errno == EAGAIN || errno == EINPROGRESS || errno == EALREADY || errno == EINTR)
        t->unix_errno = -1;
    else if ((errno == ENOENT || errno == ECONNREFUSED) && cws_gc_now_ms() < t->unix_patient_until)
        t->unix_errno = -1; /* the server may be starting */
    else
        t->unix_errno = errno;
}

static void on_unix_event(evutil_socket_t fd, short what, void *arg)
{
    struct gc_transport *t = arg;

    if (t->unix_errno < 0)
        unix_try_connect(t);
    if (t->unix_errno < 0) {
        struct timeval tv = {0, UNIX_RETRY_MS * 1000};
        evtimer_add(t->unix_ev, &tv);
        return;
    }
    unix_report(t);
}

/* Connect now when the server can take it (the usual case); the result is reported from the
 * loop, never from inside gc_transport_connect(). */
static int unix_setup(struct gc_transport *t, const struct gc_transport_opts *o,
                      struct cws_error *err)
{
    t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->fd >= 0) {
        /* Room for a few 64 KiB messages in flight from the backend, so that a busy daemon
         * does not stall the sender at every message. Capped by net.core.rmem_max; failure
         * only leaves the default. */
        int size = UNIX_RCVBUF;
        (void)setsockopt(t->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    if (t->fd < 0)
        return cws_error_set(err, CWS_E_INTERNAL, "cannot create a socket for %s: %s", t->display,
                             strerror(errno));
    t->unix_ev = evtimer_new(t->base, on_unix_event, t);
    if (!t->unix_ev)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory creating a connection");
    t->unix_addr.sun_family = AF_UNIX;
    /* The path fitted when the endpoint was parsed. */
    snprintf(t->unix_addr.sun_path, sizeof(t->unix_addr.sun_path), "%s", o->endpoint->unix_path);
    t->unix_patient_until = cws_gc_now_ms() + o->patience_ms;
    unix_try_connect(t);
    event_active(t->unix_ev, EV_TIMEOUT, 0);
    return 0;
}

static int unix_recv(struct gc_transport *t, uint8_t *buf, size_t cap, size_t *ret_n,
                     struct cws_error *err)
{
    ssize_t n;

    do {
        n = recv(t->fd, buf, cap, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 1;
    if (n < 0)
        return cws_error_set(err, CWS_E_UNAVAILABLE, "reading from %s failed: %s", t->display,
                             strerror(errno));
    if (n == 0)
        return cws_error_set(err, CWS_E_UNAVAILABLE, "%s closed the connection", t->display);
    *ret_n = (size_t)n;
    return 0;
}

static int unix_send(struct gc_transport *t, const uint8_t *buf, size_t len, size_t *ret_n,
                     struct cws_error *err)
{
    ssize_t n;

    do {
        n = send(t->fd, buf, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if ((n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) || n == 0)
        return 1;
    if (n < 0)
        return cws_error_set(err, CWS_E_UNAVAILABLE, "writing to %s failed: %s", t->display,
                             strerror(errno));
    *ret_n = (size_t)n;
    return 0;
}

/* ---- libcurl's multi interface on libevent, for the connect phase ----------------------- */

static void watch_free(struct sock_watch *w)
{
    LIST_REMOVE(w, link);
    event_free(w->ev);
    free(w);
}

static void transport_connect_error(struct gc_transport *t, CURLcode rc, struct cws_error *err)
{
    long os_errno = 0;

    if (cu.easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno) != CURLE_OK)
        os_errno = 0;
    if (os_errno != 0)
        cws_error_set(err, CWS_E_UNAVAILABLE, "cannot connect to %s: %s (%s)", t->display,
                      t->errbuf[0] ? t->errbuf : cu.easy_strerror(rc), strerror((int)os_errno));
    else
        cws_error_set(err, CWS_E_UNAVAILABLE, "cannot connect to %s: %s", t->display,
                      t->errbuf[0] ? t->errbuf : cu.easy_strerror(rc));
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

    while (!t->reported && (m = cu.multi_info_read(t->multi, &left))) {
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

    cu.multi_socket_action(t->multi, fd, action, &running);
    transport_check_done(t);
}

static void on_curl_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gc_transport *t = arg;
    int running = 0;

    cu.multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
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
        cu.multi_assign(t->multi, s, NULL);
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
        cu.multi_assign(t->multi, s, w);
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
    if (ossl.ctx_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)) != 0)
        return CURLE_SSL_CONNECT_ERROR;
    ossl.ctx_ctrl(ctx, SSL_CTRL_MODE, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, NULL);
    return CURLE_OK;
}

int gc_transport_check_alpn(struct gc_transport *t, struct cws_error *err)
{
    struct curl_tlssessioninfo *info = NULL;
    const unsigned char *proto = NULL;
    unsigned int len = 0;

    if (!t->tls)
        return 0;
    if (cu.easy_getinfo(t->easy, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK || !info ||
        info->backend != CURLSSLBACKEND_OPENSSL || !info->internals)
        return cws_error_set(err, CWS_E_UNAVAILABLE,
                             "cannot tell which protocol %s agreed to over TLS", t->display);
    ossl.get0_alpn_selected(info->internals, &proto, &len);
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
        rc = cu.easy_setopt(t->easy, CURLOPT_SSL_ENABLE_ALPN, 0L);
    if (rc == CURLE_OK)
        rc = cu.easy_setopt(t->easy, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    if (rc == CURLE_OK)
        rc = cu.easy_setopt(t->easy, CURLOPT_SSL_CTX_DATA, t);
    if (rc == CURLE_OK)
        rc = cu.easy_setopt(t->easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (rc == CURLE_OK && o->ca_file) {
        rc = cu.easy_setopt(t->easy, CURLOPT_CAINFO, o->ca_file);
        if (rc == CURLE_OK)
            rc = cu.easy_setopt(t->easy, CURLOPT_CAPATH, NULL);
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
            rc = cu.easy_setopt(t->easy, opt, val);                                                \
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
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_TCP_KEEPIDLE, TCP_KEEPIDLE_S);
    SETOPT(CURLOPT_TCP_KEEPINTVL, TCP_KEEPINTVL_S);
#undef SETOPT
    if (rc == CURLE_OK && ep->scheme == GC_SCHEME_HTTPS)
        rc = set_tls_options(t, o);
    return rc;
}

static int curl_setup(struct gc_transport *t, const struct gc_transport_opts *o,
                      struct cws_error *err)
{
    CURLcode rc;

    if (!curl_loaded)
        return cws_error_set(err, CWS_E_INTERNAL, "libcurl was not loaded for %s", t->display);
    t->multi = cu.multi_init();
    t->easy = cu.easy_init();
    t->timer_ev = evtimer_new(t->base, on_curl_timer, t);
    if (!t->multi || !t->easy || !t->timer_ev)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory creating a connection");
    cu.multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    cu.multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
    cu.multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer_change);
    cu.multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
    rc = set_options(t, o);
    if (rc == CURLE_NOT_BUILT_IN || rc == CURLE_UNKNOWN_OPTION)
        return cws_error_set(err, CWS_E_UNIMPLEMENTED,
                             "this libcurl cannot connect to %s: %s (it needs OpenSSL)", t->display,
                             cu.easy_strerror(rc));
    if (rc != CURLE_OK)
        return cws_error_set(err, CWS_E_INTERNAL, "libcurl refused an option for %s: %s",
                             t->display, cu.easy_strerror(rc));
    if (cu.multi_add_handle(t->multi, t->easy) != CURLM_OK)
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
    t->fd = -1;
    LIST_INIT(&t->watches);
    t->display = strdup(opts->endpoint->display);
    if (!t->display)
        r = cws_error_set(err, CWS_E_NOMEM, "out of memory creating a connection");
    else if (t->unix_socket)
        r = unix_setup(t, opts, err);
    else
        r = curl_setup(t, opts, err);
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

    if (t->unix_socket)
        return t->fd;
    if (cu.easy_getinfo(t->easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK)
        return -1;
    return (int)fd;
}

/* ---- I/O -------------------------------------------------------------------------------- */

static int io_error(struct gc_transport *t, const char *what, CURLcode rc, struct cws_error *err)
{
    return cws_error_set(err, CWS_E_UNAVAILABLE, "%s %s failed: %s", what, t->display,
                         t->errbuf[0] ? t->errbuf : cu.easy_strerror(rc));
}

int gc_transport_recv(struct gc_transport *t, uint8_t *buf, size_t cap, size_t *ret_n,
                      struct cws_error *err)
{
    size_t n = 0;
    CURLcode rc;

    if (t->unix_socket)
        return unix_recv(t, buf, cap, ret_n, err);
    t->errbuf[0] = '\0';
    rc = cu.easy_recv(t->easy, buf, cap, &n);
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

    if (t->unix_socket)
        return unix_send(t, buf, len, ret_n, err);
    t->errbuf[0] = '\0';
    rc = cu.easy_send(t->easy, buf, len, &n);
    if (rc == CURLE_AGAIN || (rc == CURLE_OK && n == 0))
        return 1;
    if (rc != CURLE_OK)
        return io_error(t, "writing to", rc, err);
    *ret_n = n;
    return 0;
}

bool gc_transport_short_read_drains(const struct gc_transport *t)
{
    /* Not claimed for libcurl's connections even without TLS: a proxy tunnel's setup may
     * leave bytes buffered inside libcurl. */
    return t->unix_socket;
}

void gc_transport_free(struct gc_transport *t)
{
    if (!t)
        return;
    t->reported = true; /* no callback and no watch re-armed from here on */
    if (t->unix_ev)
        event_free(t->unix_ev);
    if (t->fd >= 0)
        close(t->fd);
    if (t->multi && t->easy)
        cu.multi_remove_handle(t->multi, t->easy);
    if (t->easy)
        cu.easy_cleanup(t->easy);
    if (t->multi)
        cu.multi_cleanup(t->multi);
    while (!LIST_EMPTY(&t->watches))
        watch_free(LIST_FIRST(&t->watches));
    if (t->timer_ev)
        event_free(t->timer_ev);
    free(t->display);
    free(t);
}
