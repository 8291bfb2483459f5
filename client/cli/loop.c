/* Signals and the event loop.
 *
 * Signal handlers only write the signal's number to a pipe that the loop polls, so a wait can
 * be interrupted cleanly (cancel the call, restore the terminal, exit 130). Outside a loop
 * (while the library blocks in a connect, say) a terminating signal ends the process at once,
 * after restoring the terminal: nothing of ours is in flight then that needs more care. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t in_loop;

static bool is_terminating(int sig)
{
    return sig == SIGINT || sig == SIGTERM || sig == SIGHUP;
}

static void on_signal(int sig)
{
    int saved = errno;
    if (is_terminating(sig) && !in_loop) {
        cli_term_restore();
        _exit(CLI_EXIT_SIGNAL_BASE + sig);
    }
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(sig_pipe[1], &b, 1); /* a full pipe already holds a wake-up */
    (void)n;
    errno = saved;
}

static int make_pipe(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -CWS_E_IO;
    return 0;
}

int cli_signals_init(void)
{
    struct sigaction sa;
    static const int routed[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGCONT};
    if (make_pipe() < 0)
        return -CWS_E_IO;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL); /* EPIPE instead: a closed stdout is a quiet exit */
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(routed) / sizeof(routed[0]); i++)
        if (sigaction(routed[i], &sa, NULL) < 0)
            return -CWS_E_IO;
    return 0;
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cli_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether stdout is a pipe or socket, whose reader can go away while we wait. */
static bool stdout_can_close(void)
{
    struct stat st;
    return fstat(STDOUT_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* Read the signals that came. Returns a terminating one, or 0. */
static int drain_signals(const struct cli_loop_hooks *h)
{
    unsigned char buf[64];
    int term = 0;
    ssize_t n;
    while ((n = read(sig_pipe[0], buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (is_terminating(buf[i]))
                term = buf[i];
            else if (buf[i] == SIGCONT)
                cli_term_reraw();
            if ((buf[i] == SIGWINCH || buf[i] == SIGCONT) && h->winch)
                h->winch(h->ud);
        }
    }
    return term;
}

static int poll_timeout(int64_t deadline, int64_t next_tick)
{
    int64_t now = cli_now_ms(), wait = -1;
    if (deadline >= 0)
        wait = deadline > now ? deadline - now : 0;
    if (next_tick >= 0 && (wait < 0 || next_tick - now < wait))
        wait = next_tick > now ? next_tick - now : 0;
    return wait > INT32_MAX ? INT32_MAX : (int)wait;
}

enum { FD_CLIENT, FD_SIGNALS, FD_STDOUT, FD_FIXED };

/* One round: poll, then dispatch. Returns 0 to go on, 1 when done, or an error. */
static int loop_once(struct cli *cli, const struct cli_loop_hooks *h, int64_t deadline,
                     int64_t *next_tick, bool watch_stdout, struct cws_error *err)
{
    struct pollfd fds[FD_FIXED + CLI_LOOP_MAX_FDS];
    if (h->done && h->done(h->ud))
        return 1;
    fds[FD_CLIENT].fd = cws_client_fd(cli->client);
    fds[FD_CLIENT].events = POLLIN | (cws_client_want_write(cli->client) ? POLLOUT : 0);
    fds[FD_SIGNALS].fd = sig_pipe[0];
    fds[FD_SIGNALS].events = POLLIN;
    fds[FD_STDOUT].fd = watch_stdout ? STDOUT_FILENO : -1;
    fds[FD_STDOUT].events = 0; /* POLLERR comes when the reader goes away */
    size_t n_extra = h->prepare ? h->prepare(h->ud, fds + FD_FIXED, CLI_LOOP_MAX_FDS) : 0;
    for (size_t i = 0; i < FD_FIXED + n_extra; i++)
        fds[i].revents = 0;
    int r = poll(fds, FD_FIXED + n_extra, poll_timeout(deadline, *next_tick));
    if (r < 0 && errno != EINTR)
        return cws_error_set(err, CWS_E_IO, "poll: %s", strerror(errno));
    if (fds[FD_SIGNALS].revents) {
        int sig = drain_signals(h);
        if (sig) {
            cli->signal = sig;
            return cws_error_set(err, CWS_E_CANCELLED, "interrupted");
        }
    }
    if (fds[FD_STDOUT].revents & (POLLERR | POLLHUP)) {
        cli->stdout_closed = true;
        return cws_error_set(err, CWS_E_CANCELLED, "stdout was closed");
    }
    if (fds[FD_CLIENT].revents) {
        r = cws_client_process(cli->client, err);
        if (r < 0 && !(h->done && h->done(h->ud)))
            return r;
    }
    if (n_extra && h->ready) {
        r = h->ready(h->ud, fds + FD_FIXED, n_extra, err);
        if (r < 0)
            return r;
    }
    if (*next_tick >= 0 && cli_now_ms() >= *next_tick) {
        h->tick(h->ud);
        *next_tick = cli_now_ms() + h->tick_ms;
    }
    if (deadline >= 0 && cli_now_ms() >= deadline && !(h->done && h->done(h->ud)))
        return cws_error_set(err, CWS_E_DEADLINE_EXCEEDED, "timed out");
    return 0;
}

int cli_loop(struct cli *cli, const struct cli_loop_hooks *h, int timeout_ms, struct cws_error *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : cli_now_ms() + timeout_ms;
    int64_t next_tick = h->tick && h->tick_ms > 0 ? cli_now_ms() + h->tick_ms : -1;
    bool watch_stdout = h->watch_stdout && stdout_can_close();
    int r = 0;
    in_loop = 1;
    while (r == 0)
        r = loop_once(cli, h, deadline, &next_tick, watch_stdout, err);
    in_loop = 0;
    return r < 0 ? r : 0;
}

static bool op_is_done(void *ud)
{
    return cws_op_done(ud);
}

int cli_wait_op(struct cli *cli, cws_op *op, int timeout_ms, struct cws_error *err)
{
    struct cli_loop_hooks h = {.done = op_is_done, .ud = op};
    int r = cli_loop(cli, &h, timeout_ms, err);
    if (r < 0) {
        cli_cancel_op(cli, op);
        if (r == -CWS_E_DEADLINE_EXCEEDED)
            cws_error_set(err, CWS_E_DEADLINE_EXCEEDED, "%s did not finish within %.1f s",
                          cws_op_method(op), timeout_ms / 1000.0);
        return r;
    }
    return cws_op_wait(op, 0, err); /* done: its outcome */
}

void cli_cancel_op(struct cli *cli, cws_op *op)
{
    if (!op || cws_op_done(op) || !cli->client)
        return;
    cws_op_cancel(op, NULL);
    cws_client_flush(cli->client, 1000, NULL);
}
