/* Listening sockets of the gRPC server: a Unix socket only its owner can open, and TCP bound
 * to loopback unless the operator explicitly allows more, since whoever can call the server
 * can run code as its user. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "gsrv_private.h"
#include "log.h"

#define LISTEN_BACKLOG 128

static int fill_unix_addr(const char *path, struct sockaddr_un *ret, struct cws_error *err)
{
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(ret->sun_path))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "Unix socket path '%s' must be 1 to %zu bytes long", path,
                             sizeof(ret->sun_path) - 1);
    memset(ret, 0, sizeof(*ret));
    ret->sun_family = AF_UNIX;
    memcpy(ret->sun_path, path, len + 1);
    return 0;
}

/* Whether a server accepts connections on the socket at sa. */
static bool unix_socket_live(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live;

    if (fd < 0)
        return false;
    live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN;
    close(fd);
    return live;
}

/* A socket file left by a server that died is replaced; anything else at the path is not
 * ours to delete. */
static int remove_stale_socket(const struct sockaddr_un *sa, struct cws_error *err)
{
    const char *path = sa->sun_path;
    struct stat st;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return cws_error_set(err, CWS_E_IO, "cannot inspect %s: %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION,
                             "%s exists and is not a socket: refusing to replace it", path);
    if (unix_socket_live(sa))
        return cws_error_set(err, CWS_E_UNAVAILABLE, "another server is listening on %s", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return cws_error_set(err, CWS_E_IO, "cannot remove the stale socket %s: %s", path,
                             strerror(errno));
    cws_log(CWS_LOG_DEBUG, "removed the stale socket %s", path);
    return 0;
}

/* The umask makes the socket 0600 from the moment it exists; chmod() repeats it in case the
 * file system ignores the umask for sockets. */
static int bind_private(int fd, const struct sockaddr_un *sa, struct cws_error *err)
{
    mode_t old = umask(0177);
    int r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
    int saved = errno;

    umask(old);
    if (r < 0)
        return cws_error_set(err, CWS_E_IO, "cannot bind %s: %s", sa->sun_path, strerror(saved));
    if (chmod(sa->sun_path, 0600) < 0) {
        saved = errno;
        unlink(sa->sun_path);
        return cws_error_set(err, CWS_E_IO, "cannot chmod %s: %s", sa->sun_path, strerror(saved));
    }
    return 0;
}

int gsrv_listen_unix(const char *path, uint64_t *ret_dev, uint64_t *ret_ino, struct cws_error *err)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, r;

    r = fill_unix_addr(path, &sa, err);
    if (r < 0)
        return r;
    r = remove_stale_socket(&sa, err);
    if (r < 0)
        return r;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "cannot create a Unix socket: %s", strerror(errno));
    r = bind_private(fd, &sa, err);
    if (r < 0)
        goto fail;
    if (listen(fd, LISTEN_BACKLOG) < 0 || stat(path, &st) < 0) {
        r = cws_error_set(err, CWS_E_IO, "cannot listen on %s: %s", path, strerror(errno));
        unlink(path);
        goto fail;
    }
    *ret_dev = (uint64_t)st.st_dev;
    *ret_ino = (uint64_t)st.st_ino;
    return fd;

fail:
    close(fd);
    return r;
}

/* Split "HOST:PORT" or "[V6]:PORT" into host and port (copied into the buffers). */
static int split_host_port(const char *addr, char *host, size_t host_size, char *port,
                           size_t port_size, struct cws_error *err)
{
    const char *host_start = addr, *host_end, *colon;

    if (addr[0] == '[') {
        host_start = addr + 1;
        host_end = strchr(host_start, ']');
        colon = host_end ? host_end + 1 : NULL;
        if (!colon || *colon != ':')
            colon = NULL;
    } else {
        colon = strrchr(addr, ':');
        host_end = colon;
        if (colon && memchr(addr, ':', (size_t)(colon - addr)))
            colon = NULL; /* a bare IPv6 address: the port would be ambiguous */
    }
    if (!colon || host_end == host_start || !colon[1] ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) || strlen(colon + 1) > 5 ||
        atoi(colon + 1) > 65535)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "invalid listen address '%s': expected HOST:PORT or [IPV6]:PORT",
                             addr);
    if ((size_t)(host_end - host_start) >= host_size)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "host name too long in '%s'", addr);
    memcpy(host, host_start, (size_t)(host_end - host_start));
    host[host_end - host_start] = '\0';
    snprintf(port, port_size, "%s", colon + 1);
    return 0;
}

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(buf, size, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(buf, size, "[%s]:%u", host, port);
    } else {
        snprintf(buf, size, "?");
    }
}

/* Refuse before binding anything when a name resolves to any non-loopback address. */
static int check_loopback(const struct addrinfo *list, const char *listen_addr,
                          bool allow_non_loopback, struct cws_error *err)
{
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        char text[INET6_ADDRSTRLEN + 16];

        if (addr_is_loopback(ai->ai_addr))
            continue;
        addr_text(ai->ai_addr, text, sizeof(text));
        if (!allow_non_loopback)
            return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                                 "refusing to listen on %s (%s): not a loopback address, and "
                                 "whoever reaches it with the token can run code as this user; "
                                 "allow non-loopback addresses explicitly to do this",
                                 listen_addr, text);
        cws_log(CWS_LOG_WARN,
                "listening on the non-loopback address %s: anyone who can reach it and holds "
                "the token can run code as uid %u",
                text, (unsigned)geteuid());
    }
    return 0;
}

static int bind_tcp(const struct addrinfo *ai, int *ret_errno)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;

    if (fd < 0) {
        *ret_errno = errno;
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        *ret_errno = errno;
        close(fd);
        return -1;
    }
    return fd;
}

int gsrv_listen_tcp(const char *listen_addr, bool allow_non_loopback, struct cws_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    char host[256], port[8];
    int fd = -1, saved = 0, r;

    r = split_host_port(listen_addr, host, sizeof(host), port, sizeof(port), err);
    if (r < 0)
        return r;
    r = getaddrinfo(host, port, &hints, &list);
    if (r != 0)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "cannot resolve '%s': %s", host,
                             gai_strerror(r));
    r = check_loopback(list, listen_addr, allow_non_loopback, err);
    for (const struct addrinfo *ai = list; r == 0 && ai && fd < 0; ai = ai->ai_next)
        fd = bind_tcp(ai, &saved);
    freeaddrinfo(list);
    if (r < 0)
        return r;
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "cannot listen on %s: %s", listen_addr,
                             strerror(saved));
    return fd;
}
