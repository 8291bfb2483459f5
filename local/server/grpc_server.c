/* The gRPC server object: configuration, listeners, accepting connections (with the peer
 * check of the Unix socket) and shutdown. Connections are in h2_conn.c, calls in
 * grpc_call.c and grpc_request.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gsrv_private.h"
#include "log.h"

/* Pause before accepting again after accept() failed for lack of descriptors or memory: a
 * listener left enabled would wake the loop at once, forever. */
#define ACCEPT_RETRY_MS 100

#define DEFAULT_OUT_HIGH_WATER (4u * 1024 * 1024)

const struct cws_gmethod *gsrv_find_method(const struct cws_gsrv *srv, const char *path)
{
    for (size_t i = 0; i < srv->n_methods; i++) {
        if (strcmp(srv->methods[i].path, path) == 0)
            return &srv->methods[i];
    }
    return NULL;
}

void gsrv_conn_unlink(struct cws_gsrv *srv, struct gsrv_conn *conn)
{
    TAILQ_REMOVE(&srv->conns, conn, link);
}

static void accept_unix(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                        int socklen, void *userdata)
{
    struct cws_gsrv *srv = userdata;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    char peer[32];

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        cws_log(CWS_LOG_WARN, "closing a connection on %s: SO_PEERCRED failed: %s", srv->unix_path,
                strerror(errno));
        close(fd);
        return;
    }
    if (cred.uid != geteuid()) {
        cws_log(CWS_LOG_WARN,
                "closing a connection on %s from uid %u (pid %d): only uid %u is served",
                srv->unix_path, (unsigned)cred.uid, (int)cred.pid, (unsigned)geteuid());
        close(fd);
        return;
    }
    snprintf(peer, sizeof(peer), "unix:uid=%u", (unsigned)cred.uid);
    gsrv_conn_new(srv, fd, false, peer);
}

static void peer_text(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    }
}

static void accept_tcp(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                       int socklen, void *userdata)
{
    struct cws_gsrv *srv = userdata;
    int one = 1;
    char peer[64];

    /* Small frames (HEADERS, a unary reply, trailers) must not wait for Nagle. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    peer_text(sa, peer, sizeof(peer));
    gsrv_conn_new(srv, fd, true, peer);
}

static void listeners_enable(struct cws_gsrv *srv, bool on)
{
    int (*fn)(struct evconnlistener *) = on ? evconnlistener_enable : evconnlistener_disable;

    if (srv->unix_listener)
        fn(srv->unix_listener);
    if (srv->tcp_listener)
        fn(srv->tcp_listener);
}

static void accept_error(struct evconnlistener *listener, void *userdata)
{
    struct cws_gsrv *srv = userdata;
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};

    cws_log(CWS_LOG_WARN, "accept failed: %s; pausing new connections for %d ms", strerror(errno),
            ACCEPT_RETRY_MS);
    listeners_enable(srv, false);
    evtimer_add(srv->accept_retry, &tv);
}

static void accept_retry(evutil_socket_t fd, short what, void *userdata)
{
    listeners_enable(userdata, true);
}

static int config_check(const struct cws_gsrv_config *cfg, struct cws_error *err)
{
    if (!cfg || !cfg->base)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "no event base for the gRPC server");
    if (!cfg->unix_path && !cfg->listen_addr)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "the gRPC server needs a Unix socket path or a TCP address");
    if (cfg->listen_addr && (!cfg->token || !*cfg->token))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "listening on TCP (%s) needs a bearer token", cfg->listen_addr);
    if (cfg->max_message > UINT32_MAX)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "max_message %zu exceeds the 32-bit gRPC length prefix",
                             cfg->max_message);
    if (cfg->n_methods > 0 && !cfg->methods)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "no method table");
    return 0;
}

static int listen_unix(struct cws_gsrv *srv, const char *path, struct cws_error *err)
{
    int fd = gsrv_listen_unix(path, &srv->unix_dev, &srv->unix_ino, err);

    if (fd < 0)
        return fd;
    srv->unix_path = strdup(path);
    srv->unix_listener = evconnlistener_new(srv->base, accept_unix, srv,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (!srv->unix_path || !srv->unix_listener) {
        if (!srv->unix_listener)
            close(fd);
        return cws_error_set(err, CWS_E_NOMEM, "cannot set up the listener on %s", path);
    }
    evconnlistener_set_error_cb(srv->unix_listener, accept_error);
    return 0;
}

static int listen_tcp(struct cws_gsrv *srv, const struct cws_gsrv_config *cfg,
                      struct cws_error *err)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = gsrv_listen_tcp(cfg->listen_addr, cfg->allow_non_loopback, err);

    if (fd < 0)
        return fd;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        srv->tcp_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                       : ((struct sockaddr_in *)&ss)->sin_port);
    srv->tcp_listener = evconnlistener_new(srv->base, accept_tcp, srv,
                                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (!srv->tcp_listener) {
        close(fd);
        return cws_error_set(err, CWS_E_NOMEM, "cannot set up the listener on %s",
                             cfg->listen_addr);
    }
    evconnlistener_set_error_cb(srv->tcp_listener, accept_error);
    return 0;
}

static int setup_nghttp2(struct cws_gsrv *srv, struct cws_error *err)
{
    if (gsrv_callbacks_new(&srv->callbacks) < 0 || nghttp2_option_new(&srv->option) != 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    /* Window updates follow what handlers accept, so that pausing a call stops its client. */
    nghttp2_option_set_no_auto_window_update(srv->option, 1);
#ifdef CWS_HAVE_NGHTTP2_RESET_RATELIM
    /* A client that cancels each call once it has its answer (the daemon does, for every exec,
     * as soon as the exit status is in) sends one RST_STREAM per call. nghttp2's rapid-reset
     * limit (a burst of 1000, then 33 a second) would end such a client's connection with
     * GOAWAY after about a thousand calls in a row. Peers here are authenticated and their
     * streams bounded by GSRV_MAX_STREAMS: the limit only has to stop a runaway loop. */
    nghttp2_option_set_stream_reset_rate_limit(srv->option, GSRV_RESET_BURST, GSRV_RESET_RATE);
#endif
    return 0;
}

static int copy_config(struct cws_gsrv *srv, const struct cws_gsrv_config *cfg,
                       struct cws_error *err)
{
    srv->base = cfg->base;
    srv->max_message = cfg->max_message ? cfg->max_message : CWS_GRPC_MAX_MESSAGE;
    srv->out_high_water = cfg->out_high_water ? cfg->out_high_water : DEFAULT_OUT_HIGH_WATER;
    srv->methods = cfg->methods;
    srv->n_methods = cfg->n_methods;
    srv->userdata = cfg->userdata;
    if (cfg->token) {
        srv->token = strdup(cfg->token);
        if (!srv->token)
            return cws_error_set(err, CWS_E_NOMEM, NULL);
        srv->token_len = strlen(srv->token);
    }
    srv->accept_retry = evtimer_new(srv->base, accept_retry, srv);
    if (!srv->accept_retry)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return 0;
}

int cws_gsrv_new(const struct cws_gsrv_config *cfg, struct cws_gsrv **ret, struct cws_error *err)
{
    struct cws_gsrv *srv;
    int r;

    r = config_check(cfg, err);
    if (r < 0)
        return r;
    srv = calloc(1, sizeof(*srv));
    if (!srv)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    TAILQ_INIT(&srv->conns);
    r = copy_config(srv, cfg, err);
    if (r == 0)
        r = setup_nghttp2(srv, err);
    if (r == 0 && cfg->listen_addr)
        r = listen_tcp(srv, cfg, err);
    if (r == 0 && cfg->unix_path)
        r = listen_unix(srv, cfg->unix_path, err);
    if (r < 0) {
        cws_gsrv_free(srv);
        return r;
    }
    *ret = srv;
    return 0;
}

int cws_gsrv_tcp_port(const struct cws_gsrv *srv)
{
    return srv && srv->tcp_listener ? srv->tcp_port : 0;
}

/* Only the socket we created: a newer server may have replaced it since. */
static void unlink_own_socket(const struct cws_gsrv *srv)
{
    struct stat st;

    if (!srv->unix_path || !srv->unix_listener)
        return;
    if (lstat(srv->unix_path, &st) == 0 && (uint64_t)st.st_dev == srv->unix_dev &&
        (uint64_t)st.st_ino == srv->unix_ino)
        unlink(srv->unix_path);
}

void cws_gsrv_free(struct cws_gsrv *srv)
{
    struct gsrv_conn *conn;

    if (!srv)
        return;
    if (srv->unix_listener)
        evconnlistener_disable(srv->unix_listener);
    if (srv->tcp_listener)
        evconnlistener_free(srv->tcp_listener);
    while ((conn = TAILQ_FIRST(&srv->conns)))
        gsrv_conn_shutdown(conn);
    unlink_own_socket(srv);
    if (srv->unix_listener)
        evconnlistener_free(srv->unix_listener);
    if (srv->accept_retry)
        event_free(srv->accept_retry);
    nghttp2_session_callbacks_del(srv->callbacks);
    nghttp2_option_del(srv->option);
    if (srv->token)
        explicit_bzero(srv->token, srv->token_len);
    free(srv->token);
    free(srv->unix_path);
    free(srv);
}
