/* Exec: run a command in a sandbox.
 *
 * Three ways to get the output, chosen by the options:
 *  - buffered (the default): the op's result holds all of stdout and stderr;
 *  - callback (on_output set): each chunk is handed to the callback as it arrives;
 *  - pull reader (stream set, no callback): read chunks with cws_exec_read(), which blocks.
 * In the last two the result has the exit code only.
 *
 * With with_stdin, write the command's stdin with cws_exec_write() and end it with
 * cws_exec_close_stdin(). Data written before the process runs is held and sent once the daemon
 * says it is ready (exec.ready). With tty the command runs on a terminal (stdout and stderr
 * merged, as fd 1) whose size cws_exec_resize() changes.
 *
 * A non-zero exit is a result, not an error, unless check is set: then the op fails with
 * -CWS_E_ABORTED, reason CWS_REASON_EXEC_NONZERO_EXIT, and cws_op_exec_result() still gives
 * the result.
 *
 *     const char *argv[] = {"python", "-c", "print(input().upper())", NULL};
 *     struct cws_exec_options o = {.with_stdin = true};
 *     cws_exec(c, id, argv, &o, &op, &err);
 *     cws_exec_write(op, "hello\n", 6, &err);
 *     cws_exec_close_stdin(op, &err);
 *     if (cws_op_wait(op, 30000, &err) == 0)
 *         printf("%d: %.*s", cws_op_exec_result(op)->exit_code, ...);
 */
#ifndef CWSANDBOX_EXEC_H
#define CWSANDBOX_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cwsandbox/client.h>
#include <cwsandbox/op.h>

#ifdef __cplusplus
extern "C" {
#endif

#include <cwsandbox/error.h>

/* The reason of the error of a checked exec whose command exited non-zero. */
#define CWS_REASON_EXEC_NONZERO_EXIT "CWS_EXEC_NONZERO_EXIT"

/* Output streams, numbered as file descriptors. */
#define CWS_STDOUT 1
#define CWS_STDERR 2

/* A chunk of output of stream fd (CWS_STDOUT or CWS_STDERR), valid during the call only. */
typedef void (*cws_exec_output_fn)(cws_op *op, int fd, const void *data, size_t len,
                                   void *userdata);

struct cws_exec_options {
    const char *cwd;        /* absolute directory to run in; NULL: the sandbox's default */
    const char *const *env; /* extra environment, "NAME=value" strings, NULL-terminated */
    double timeout_s;       /* the daemon kills the command after this; 0: no limit of ours
                               (the daemon's default applies) */
    bool check;             /* a non-zero exit fails the op (see above) */
    bool with_stdin;        /* the caller writes stdin (cws_exec_write / cws_exec_close_stdin) */
    bool tty;               /* run on a terminal of cols x rows (0: 80 x 24) */
    unsigned cols, rows;
    bool stream;                  /* stream the output (to on_output, else to cws_exec_read) */
    cws_exec_output_fn on_output; /* implies stream */
    void *userdata;               /* for on_output */
};

/* What a finished exec gives. Data pointers are owned by the op and are NULL (with length
 * 0) when the output was streamed. */
struct cws_exec_result {
    int exit_code;
    int64_t duration_ms;
    const void *stdout_data;
    size_t stdout_len;
    const void *stderr_data;
    size_t stderr_len;
    bool stdout_truncated; /* the daemon kept only the end of a very large output */
    bool stderr_truncated;
};

/* Run argv (NULL-terminated, argv[0] non-empty) in sandbox id (exec). opts may be NULL.
 * Returns 0 and sets *ret_op, which the caller frees with cws_op_free(); or
 * -CWS_E_INVALID_ARGUMENT (empty argv, relative cwd, env entry without '='), -CWS_E_NOMEM,
 * -CWS_E_UNAVAILABLE. Cancel it with cws_op_cancel(). */
int cws_exec(cws_client *c, const char *id, const char *const *argv,
             const struct cws_exec_options *opts, cws_op **ret_op, struct cws_error *err);

/* Queue len bytes for the command's stdin (copied). Never blocks: data waits in memory until
 * the socket takes it (cws_client_flush() waits for that). Returns 0, or
 * -CWS_E_FAILED_PRECONDITION (not opened with_stdin, stdin closed, or the command has
 * finished), -CWS_E_UNAVAILABLE (the connection is lost), -CWS_E_NOMEM. */
int cws_exec_write(cws_op *op, const void *data, size_t len, struct cws_error *err);

/* End the command's stdin (exec.eof) after what was written. Idempotent. Returns 0, or
 * -CWS_E_FAILED_PRECONDITION when the exec was not opened with_stdin. */
int cws_exec_close_stdin(cws_op *op, struct cws_error *err);

/* Resize the terminal of a tty exec (exec.resize). Returns 0, or -CWS_E_FAILED_PRECONDITION
 * (not a tty, or finished), -CWS_E_INVALID_ARGUMENT (a zero size). */
int cws_exec_resize(cws_op *op, unsigned cols, unsigned rows, struct cws_error *err);

/* Pull reader of a streamed exec without callback: read up to len bytes of stream fd
 * (CWS_STDOUT or CWS_STDERR) into buf, waiting at most timeout_ms (-1: no limit) for some.
 * Returns the number of bytes read (> 0); 0 at the end of the stream (the command finished and
 * everything was read); -CWS_E_DEADLINE_EXCEEDED when nothing came in time; the op's error
 * when the exec failed without finishing; -CWS_E_INVALID_ARGUMENT when op is not a streamed
 * exec without callback. Reading one stream while the other fills up is fine: output is kept
 * in memory until read. */
ssize_t cws_exec_read(cws_op *op, int fd, void *buf, size_t len, int timeout_ms,
                      struct cws_error *err);

/* The result of a finished exec (also after a check failure); NULL otherwise. Owned by the
 * op. */
const struct cws_exec_result *cws_op_exec_result(const cws_op *op);

#ifdef __cplusplus
}
#endif

#endif
