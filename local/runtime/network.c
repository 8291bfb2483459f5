/* Egress for a sandbox through slirp4netns: a user-mode TCP/IP stack outside the sandbox that
 * owns a tap device inside its network namespace. Started without blocking the loop: readiness
 * arrives on --ready-fd, port forwards go through its API socket (add_hostfwd), one connection
 * each. --disable-host-loopback keeps the host's 127.0.0.1 services out of reach. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "init_proto.h"
#include "log.h"
#include "rt_internal.h"

#define NET_DEADLINE_S 5
#define FORWARD_TRIES  3

struct cws_rt_net {
    struct cws_rt *rt;
    int dirfd;
    pid_t pid;
    int pidfd;
    int ready_fd;
    struct event *ready_ev;
    struct event *deadline;
    struct sb_port *ports;
    size_t n_ports;
    size_t next_port;
    int tries;
    int trying_host_port;
    struct bufferevent *api;
    cws_net_ready_fn ready;
    void *ud;
};

static void forward_next(struct cws_rt_net *net);

static void net_quiesce(struct cws_rt_net *net)
{
    if (net->ready_ev)
        event_free(net->ready_ev);
    net->ready_ev = NULL;
    if (net->ready_fd >= 0)
        close(net->ready_fd);
    net->ready_fd = -1;
    if (net->deadline)
        event_free(net->deadline);
    net->deadline = NULL;
    if (net->api)
        bufferevent_free(net->api);
    net->api = NULL;
}

/* Report once; the callback may free net, so nothing follows it. */
static void net_done(struct cws_rt_net *net, const char *error)
{
    cws_net_ready_fn ready = net->ready;
    net->ready = NULL;
    net_quiesce(net);
    if (ready)
        ready(net, error, net->ud);
}

static void net_fail(struct cws_rt_net *net, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void net_fail(struct cws_rt_net *net, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    net_done(net, msg);
}

/* A port of the host's 127.0.0.1 that nobody listens on right now. */
static int free_host_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void on_api_event(struct bufferevent *bev, short what, void *arg)
{
    struct cws_rt_net *net = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    /* slirp4netns answers one request per connection and closes it. */
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    char reply[512];
    if (len >= sizeof(reply))
        len = sizeof(reply) - 1;
    evbuffer_remove(in, reply, len);
    reply[len] = '\0';
    bufferevent_free(net->api);
    net->api = NULL;
    struct sb_port *p = &net->ports[net->next_port];
    if (strstr(reply, "\"return\"")) {
        p->host = net->trying_host_port;
        net->next_port++;
        net->tries = 0;
    } else if (++net->tries >= FORWARD_TRIES) {
        net_fail(net, "slirp4netns add_hostfwd failed: %s", len ? reply : "no answer");
        return;
    }
    forward_next(net);
}

static void on_api_read(struct bufferevent *bev, void *arg)
{
    /* Wait for EOF: the whole answer is read in on_api_event. */
}

static void forward_next(struct cws_rt_net *net)
{
    if (net->next_port == net->n_ports) {
        net_done(net, NULL);
        return;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cws_sb_dir_path(net->dirfd, CWS_SB_SLIRP_SOCK, sa.sun_path, sizeof(sa.sun_path));
    net->trying_host_port = free_host_port();
    net->api = bufferevent_socket_new(net->rt->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (net->trying_host_port < 0 || !net->api ||
        bufferevent_socket_connect(net->api, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        net_fail(net, "cannot reach the slirp4netns API socket");
        return;
    }
    bufferevent_setcb(net->api, on_api_read, NULL, on_api_event, net);
    bufferevent_enable(net->api, EV_READ);
    evbuffer_add_printf(bufferevent_get_output(net->api),
                        "{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", "
                        "\"host_addr\": \"127.0.0.1\", \"host_port\": %d, \"guest_port\": %d}}",
                        net->trying_host_port, net->ports[net->next_port].guest);
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct cws_rt_net *net = arg;
    char c;
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    event_del(net->ready_ev);
    if (n != 1) {
        net_fail(net, "slirp4netns exited during setup (see %s in the sandbox directory)",
                 CWS_SB_SLIRP_LOG);
        return;
    }
    forward_next(net);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    net_fail(arg, "slirp4netns was not ready within %d seconds", NET_DEADLINE_S);
}

static int spawn_slirp(struct cws_rt_net *net, pid_t target, int ready_w, struct cws_error *err)
{
    char ready_arg[32], userns_arg[64], target_arg[32];
    snprintf(ready_arg, sizeof(ready_arg), "--ready-fd=%d", 3);
    snprintf(userns_arg, sizeof(userns_arg), "--userns-path=/proc/%d/ns/user", (int)target);
    snprintf(target_arg, sizeof(target_arg), "%d", (int)target);
    const char *argv[16];
    int n = 0;
    argv[n++] = "slirp4netns";
    argv[n++] = "--configure";
    argv[n++] = "--mtu=65520";
    argv[n++] = "--disable-host-loopback";
    /* It runs as root when we do: its own empty root, no capabilities, a syscall filter. */
    argv[n++] = "--enable-sandbox";
    argv[n++] = "--enable-seccomp";
    argv[n++] = "--api-socket=" CWS_SB_SLIRP_SOCK;
    argv[n++] = ready_arg;
    if (net->rt->userns)
        argv[n++] = userns_arg;
    argv[n++] = target_arg;
    argv[n++] = "tap0";
    argv[n] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    /* Its own session: a terminal's ^C to the server must not take the network down. */
    posix_spawnattr_setflags(&at,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawn_file_actions_addfchdir_np(&fa, net->dirfd);
    posix_spawn_file_actions_adddup2(&fa, ready_w, 3);
    posix_spawn_file_actions_adddup2(&fa, net->rt->devnull_fd, 0);
    posix_spawn_file_actions_addopen(&fa, 1, CWS_SB_SLIRP_LOG, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    /* Nothing of the server's (sockets, other sandboxes' files) leaks into it. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    /* A clean environment: nothing of the server's (credentials included) is its business. */
    char *const envp[] = {(char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    int r = posix_spawn(&net->pid, net->rt->slirp_path, &fa, &at, (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (r != 0)
        return cws_error_set(err, CWS_E_INTERNAL, "start slirp4netns: %s", strerror(r));
    net->pidfd = pidfd_open(net->pid, 0);
    if (net->pidfd < 0)
        return cws_error_set(err, CWS_E_INTERNAL, "pidfd_open: %s", strerror(errno));
    return 0;
}

static struct cws_rt_net *net_alloc(struct cws_rt *rt, int dirfd)
{
    struct cws_rt_net *net = calloc(1, sizeof(*net));
    if (!net)
        return NULL;
    net->rt = rt;
    net->dirfd = dirfd;
    net->pidfd = net->ready_fd = -1;
    return net;
}

int cws_net_start(struct cws_rt *rt, int dirfd, pid_t pid, struct sb_port *ports, size_t n_ports,
                  cws_net_ready_fn ready, void *ud, struct cws_rt_net **ret, struct cws_error *err)
{
    struct cws_rt_net *net = net_alloc(rt, dirfd);
    int p[2];
    if (!net)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    net->ports = ports;
    net->n_ports = n_ports;
    net->ready = ready;
    net->ud = ud;
    if (pipe2(p, O_CLOEXEC) < 0) {
        free(net);
        return cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "pipe: %s", strerror(errno));
    }
    net->ready_fd = p[0];
    int r = spawn_slirp(net, pid, p[1], err);
    close(p[1]);
    if (r == 0) {
        struct timeval tv = {NET_DEADLINE_S, 0};
        struct cws_error perr;
        if (cws_sb_pidfile_write(dirfd, CWS_SB_SLIRP_PID, net->pid, &perr) < 0)
            cws_log(CWS_LOG_WARN, "%s", perr.message);
        net->ready_ev = event_new(rt->base, net->ready_fd, EV_READ | EV_PERSIST, on_ready, net);
        net->deadline = evtimer_new(rt->base, on_deadline, net);
        if (!net->ready_ev || !net->deadline || event_add(net->ready_ev, NULL) < 0 ||
            event_add(net->deadline, &tv) < 0)
            r = cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    if (r < 0) {
        cws_net_stop(net);
        return r;
    }
    *ret = net;
    return 0;
}

int cws_net_attach(struct cws_rt *rt, int dirfd, struct cws_rt_net **ret)
{
    struct cws_rt_net *net = net_alloc(rt, dirfd);
    if (!net)
        return -CWS_E_NOMEM;
    if (cws_sb_pidfile_open(dirfd, CWS_SB_SLIRP_PID, &net->pid, &net->pidfd, NULL) < 0) {
        free(net);
        *ret = NULL;
        return 0;
    }
    *ret = net;
    return 0;
}

void cws_net_release(struct cws_rt_net *net)
{
    if (!net)
        return;
    net_quiesce(net);
    if (net->pidfd >= 0)
        close(net->pidfd);
    free(net);
}

void cws_net_stop(struct cws_rt_net *net)
{
    if (!net)
        return;
    net_quiesce(net);
    if (net->pidfd >= 0) {
        pidfd_send_signal(net->pidfd, SIGKILL, NULL, 0);
        cws_rt_reap_later(net->rt, net->pidfd);
        net->pidfd = -1;
    }
    unlinkat(net->dirfd, CWS_SB_SLIRP_SOCK, 0);
    free(net);
}
