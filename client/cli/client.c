/* The connection to the daemon, how failures become messages and exit statuses, and writes to
 * stdout that notice a reader going away. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_connect(struct cli *cli, bool no_autostart, struct cws_error *err)
{
    struct cws_client_options o = {
        .socket_path = cli->socket_path,
        .name = "cwsandbox-cli/" CWS_CLIENT_VERSION,
        .no_autostart = no_autostart,
    };
    if (cli->client)
        return 0;
    return cws_client_connect(&o, &cli->client, err);
}

int cli_error(struct cli *cli, const char *fmt, ...)
{
    va_list ap;
    cli_term_restore();
    fflush(stdout);
    fputs("Error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_FAILURE;
}

int cli_fail(struct cli *cli, int r, const struct cws_error *err)
{
    if (r >= 0)
        return CLI_EXIT_OK;
    cli_term_restore();
    if (cli->signal)
        return CLI_EXIT_SIGNAL_BASE + cli->signal;
    if (cli->stdout_closed)
        return CLI_EXIT_OK;
    const char *msg = err && err->message[0] ? err->message : cws_errcode_message(-r);
    return cli_error(cli, "%s", msg);
}

int cli_exit_from_remote(int code)
{
    if (code >= 0 && code <= 255)
        return code;
    if (code < 0 && code >= -64)
        return CLI_EXIT_SIGNAL_BASE - code; /* killed by signal -code */
    return 255;
}

/* Whether stdout is a pipe or socket whose reader has gone. */
static bool stdout_reader_gone(void)
{
    struct pollfd p = {.fd = STDOUT_FILENO, .events = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
}

int cli_finish_stdout(struct cli *cli, int status)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return status;
    if (errno == EPIPE || cli->stdout_closed || stdout_reader_gone())
        return status; /* the reader had enough: not an error of ours */
    if (status != CLI_EXIT_OK)
        return status;
    return cli_error(cli, "cannot write to stdout: %s", strerror(errno ? errno : EIO));
}

int cli_write_all(struct cli *cli, int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            /* Our output's reader went away (stderr too, as with 2>&1 | head). */
            if (errno == EPIPE && (fd == STDOUT_FILENO || fd == STDERR_FILENO))
                cli->stdout_closed = true;
            return -CWS_E_IO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
