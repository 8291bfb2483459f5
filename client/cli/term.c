/* The local terminal: raw mode for `sh` and `exec -t`, restored on every way out. Normal exits
 * restore it through atexit() and the commands' own paths; terminating signals through the
 * loop or loop.c's handler; crashes and stops through the handlers installed here while the
 * terminal is raw. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

static struct termios saved;
static int saved_fd = -1;
static volatile sig_atomic_t raw_active;

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT};

void cli_term_restore(void)
{
    int saved_errno = errno;
    if (raw_active) {
        tcsetattr(saved_fd, TCSADRAIN, &saved);
        raw_active = 0;
    }
    errno = saved_errno;
}

/* A crash: give the terminal back, then die of the same signal. */
static void on_fatal(int sig)
{
    cli_term_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Ctrl-Z does not come here (raw mode sends it to the remote side), but `kill -TSTP` does:
 * stop with a usable terminal; SIGCONT re-applies raw mode (loop.c). */
static void on_stop(int sig)
{
    int saved_errno = errno;
    bool was_raw = raw_active;
    cli_term_restore();
    raw_active = 0;
    kill(getpid(), SIGSTOP);
    if (was_raw)
        raw_active = 2; /* cli_term_reraw() will apply it again */
    errno = saved_errno;
}

static void install_crash_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND;
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
        sigaction(fatal_signals[i], &sa, NULL);
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTSTP, &sa, NULL);
    sigaction(SIGTTIN, &sa, NULL);
    sigaction(SIGTTOU, &sa, NULL);
}

static void restore_at_exit(void)
{
    cli_term_restore();
}

static int apply_raw(void)
{
    struct termios raw = saved;
    cfmakeraw(&raw);
    while (tcsetattr(saved_fd, TCSADRAIN, &raw) < 0) {
        if (errno != EINTR)
            return -CWS_E_IO;
    }
    return 0;
}

int cli_term_raw(int fd)
{
    static bool registered;
    if (!isatty(fd))
        return -CWS_E_INVALID_ARGUMENT;
    if (raw_active)
        return 0;
    if (tcgetattr(fd, &saved) < 0)
        return -CWS_E_IO;
    saved_fd = fd;
    if (!registered) {
        atexit(restore_at_exit);
        install_crash_handlers();
        registered = true;
    }
    raw_active = 1;
    if (apply_raw() < 0) {
        raw_active = 0;
        return -CWS_E_IO;
    }
    return 0;
}

void cli_term_reraw(void)
{
    if (raw_active == 2 && apply_raw() == 0)
        raw_active = 1;
}

void cli_term_size(int fd, unsigned *ret_cols, unsigned *ret_rows)
{
    struct winsize ws;
    const int fds[] = {fd, STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] >= 0 && ioctl(fds[i], TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
            *ret_cols = ws.ws_col;
            *ret_rows = ws.ws_row;
            return;
        }
    }
    *ret_cols = 80;
    *ret_rows = 24;
}
