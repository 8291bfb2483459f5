/* Running a command in a sandbox as if it ran here: its stdout and stderr stream to ours, our
 * stdin is forwarded (-i), and with a terminal (-t) the local one goes raw and its size
 * follows SIGWINCH. Used by exec, sh and run. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Stdin is read only while less than this waits to be sent, so a fast producer and a slow
 * sandbox keep memory bounded. */
#define STDIN_HIGH_WATER (1024u * 1024)
#define STDIN_READ       (64u * 1024)

struct exec_io {
    struct cli *cli;
    const struct cli_exec_request *rq;
    cws_op *op;
    bool stdin_open;
    bool out_failed; /* writing the output here failed */
    int out_errno;
    char buf[STDIN_READ];
};

static void on_output(cws_op *op, int fd, const void *data, size_t len, void *ud)
{
    struct exec_io *x = ud;
    if (x->out_failed)
        return;
    if (cli_write_all(x->cli, fd == CWS_STDERR ? STDERR_FILENO : STDOUT_FILENO, data, len) < 0) {
        x->out_failed = true;
        x->out_errno = errno;
    }
}

static bool exec_done(void *ud)
{
    struct exec_io *x = ud;
    return x->out_failed || cws_op_done(x->op);
}

static size_t exec_prepare(void *ud, struct pollfd *fds, size_t room)
{
    struct exec_io *x = ud;
    if (!x->stdin_open || cws_client_pending_bytes(x->cli->client) >= STDIN_HIGH_WATER)
        return 0;
    fds[0].fd = STDIN_FILENO;
    fds[0].events = POLLIN;
    return 1;
}

static int close_stdin(struct exec_io *x, struct cws_error *err)
{
    x->stdin_open = false;
    return cws_op_done(x->op) ? 0 : cws_exec_close_stdin(x->op, err);
}

static int exec_ready(void *ud, const struct pollfd *fds, size_t n, struct cws_error *err)
{
    struct exec_io *x = ud;
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
        return 0;
    ssize_t got = read(STDIN_FILENO, x->buf, sizeof(x->buf));
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (got <= 0)
        return close_stdin(x, err);
    if (cws_op_done(x->op))
        return 0; /* the command has finished: what it did not read is dropped */
    return cws_exec_write(x->op, x->buf, (size_t)got, err);
}

static void exec_winch(void *ud)
{
    struct exec_io *x = ud;
    unsigned cols = 0, rows = 0;
    if (!x->rq->tty || cws_op_done(x->op))
        return;
    cli_term_size(STDOUT_FILENO, &cols, &rows);
    cws_exec_resize(x->op, cols, rows, NULL);
}

/* The remote environment: rq->env, plus our TERM for a terminal (so that full-screen programs
 * know what they talk to), unless rq->env sets one. */
static int build_env(const struct cli_exec_request *rq, struct cli_strv *env)
{
    bool has_term = false;
    for (const char *const *e = rq->env; e && *e; e++) {
        if (strncmp(*e, "TERM=", 5) == 0)
            has_term = true;
        if (cli_strv_push(env, *e) < 0)
            return -CWS_E_NOMEM;
    }
    const char *term = getenv("TERM");
    if (rq->tty && !has_term && term && *term) {
        static char term_var[128];
        snprintf(term_var, sizeof(term_var), "TERM=%s", term);
        if (cli_strv_push(env, term_var) < 0)
            return -CWS_E_NOMEM;
    }
    return 0;
}

/* Start the exec into x->op (freed by cli_exec_run()); env holds its environment meanwhile. */
static int start_exec(struct exec_io *x, struct cli_strv *env, struct cws_error *err)
{
    const struct cli_exec_request *rq = x->rq;
    struct cws_exec_options o = {
        .cwd = rq->cwd,
        .timeout_s = rq->timeout_s,
        .with_stdin = rq->forward_stdin,
        .tty = rq->tty,
        .stream = true,
        .on_output = on_output,
        .userdata = x,
    };
    if (build_env(rq, env) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    o.env = env->n ? cli_strv_get(env) : NULL;
    if (rq->tty)
        cli_term_size(STDOUT_FILENO, &o.cols, &o.rows);
    return cws_exec(x->cli->client, rq->id, rq->argv, &o, &x->op, err);
}

/* After the loop: the exit code, or why there is none. */
static int outcome(struct exec_io *x, int r, int *ret_exit_code, struct cws_error *err)
{
    if (r == 0 && x->out_failed) {
        cli_cancel_op(x->cli, x->op);
        if (x->cli->stdout_closed)
            return cws_error_set(err, CWS_E_CANCELLED, "stdout was closed");
        return cws_error_set(err, CWS_E_IO, "cannot write the output: %s", strerror(x->out_errno));
    }
    if (r < 0) {
        cli_cancel_op(x->cli, x->op);
        return r;
    }
    r = cws_op_wait(x->op, 0, err);
    if (r == 0)
        *ret_exit_code = cws_op_exec_result(x->op)->exit_code;
    return r;
}

int cli_exec_run(struct cli *cli, const struct cli_exec_request *rq, int *ret_exit_code,
                 struct cws_error *err)
{
    struct exec_io *x = calloc(1, sizeof(*x));
    struct cli_strv env = {0};
    if (!x)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    x->cli = cli;
    x->rq = rq;
    x->stdin_open = rq->forward_stdin;
    int r = start_exec(x, &env, err);
    if (r == 0 && rq->tty && rq->forward_stdin && isatty(STDIN_FILENO) &&
        cli_term_raw(STDIN_FILENO) < 0)
        r = cws_error_set(err, CWS_E_IO, "cannot put the terminal in raw mode: %s",
                          strerror(errno));
    if (r == 0) {
        struct cli_loop_hooks h = {
            .done = exec_done,
            .prepare = exec_prepare,
            .ready = exec_ready,
            .winch = exec_winch,
            .watch_stdout = true,
            .ud = x,
        };
        r = outcome(x, cli_loop(cli, &h, -1, err), ret_exit_code, err);
    }
    cli_term_restore();
    cws_op_free(x->op);
    cli_strv_free(&env);
    free(x);
    return r;
}
