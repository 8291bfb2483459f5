/* cwsandbox, the command-line client: what the command files share.
 *
 * Conventions: cmd_*() functions (the `run` of a struct cli_command) return the process's exit
 * status (CLI_EXIT_*, or a remote command's exit code); every other function returns 0 or a
 * negative -CWS_E_xxx code, as the library does. Errors reach the user once, through
 * cli_fail() ("Error: <message>" on stderr) or cli_usage_error().
 */
#ifndef CWS_CLI_H
#define CWS_CLI_H

#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cwsandbox/cwsandbox.h>

#define CLI_PROG "cwsandbox"

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_SIGNAL_BASE = 128, /* + the signal: 130 for Ctrl-C */
};

/* What the parsers of the commands' arguments return when the command should go on (any
 * other value is the exit status to return at once). */
#define CLI_GO_ON (-1)

struct cli;

/* A command, or a group of subcommands (then run is NULL and subs lists them). */
struct cli_command {
    const char *name;
    const char *summary; /* one line, for the overview */
    const char *usage;   /* after "cwsandbox ": "ls [OPTIONS]" */
    const char *help;    /* description and options, shown by --help */
    int (*run)(struct cli *cli, int argc, char **argv);
    const struct cli_command *const *subs; /* NULL-terminated */
};

/* The state of one invocation. */
struct cli {
    const char *socket_path; /* --socket, or NULL */
    const struct cli_command *cmd;
    const char *cmd_path; /* "files read": the command's words, for messages */
    cws_client *client;   /* connected by cli_connect() */
    int signal;           /* a terminating signal that arrived, 0 if none */
    bool stdout_closed;   /* the reader of stdout went away */
};

/* ---- main.c: the commands ---- */

extern const struct cli_command cli_cmd_ls, cli_cmd_get, cli_cmd_exec, cli_cmd_sh, cli_cmd_logs,
    cli_cmd_files, cli_cmd_cp, cli_cmd_run, cli_cmd_stop, cli_cmd_delete, cli_cmd_purge,
    cli_cmd_session, cli_cmd_daemon, cli_cmd_auth, cli_cmd_version, cli_cmd_help;

/* Print a command's full help to out. */
void cli_print_help(const struct cli_command *cmd, const char *path, FILE *out);

/* ---- args.c: options and arguments ---- */

/* Returned by cli_opt_next() when it has answered the command line itself: --help was
 * printed (then o->status is 0) or a usage error was reported (2). */
#define CLI_OPT_EXIT (-2)

/* clang-format off */
#define CLI_OPT_HELP {"help", no_argument, NULL, 'h'}
#define CLI_OPT_END  {NULL, 0, NULL, 0}
/* clang-format on */

#define CLI_MAX_FIXED 4

/* A getopt_long() pass over one command's arguments (argv[0] is the command's name).
 * Options may come anywhere among the arguments, unless command_tail is set: then the
 * arguments are n_fixed positionals and a command line, and the first non-option after the
 * positionals (or "--") starts the command, whose own options are left alone (`exec ID ls -l`). */
struct cli_opts {
    struct cli *cli;
    int argc;
    char **argv;
    const char *optstring; /* without the leading "+:" or ":" (added here) */
    const struct option *longopts;
    bool command_tail;
    int n_fixed; /* at most CLI_MAX_FIXED */
    /* results, once cli_opt_next() returned -1: */
    char **args; /* the positionals (without command_tail) */
    int n_args;
    char *fixed[CLI_MAX_FIXED]; /* command_tail: the positionals before the command */
    int n_taken;
    char **command; /* command_tail: the command and its arguments */
    int n_command;
    int status; /* the exit status to use after CLI_OPT_EXIT */
    /* internal */
    bool started;
    char optstring_buf[128];
};

/* The next option character; -1 at the end (args filled); CLI_OPT_EXIT (see above). optarg
 * holds the option's value, as with getopt. */
int cli_opt_next(struct cli_opts *o);

/* Report a usage error about cli->cmd (Click style: usage, hint, "Error: ..." on stderr).
 * Returns CLI_EXIT_USAGE. */
int cli_usage_error(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Check the number of positional arguments: at least min, at most max (-1: any); names
 * says what they are, for the message ("SANDBOX_ID PATH"). Returns 0 or a usage error
 * (CLI_EXIT_USAGE, reported). */
int cli_want_args(struct cli *cli, const struct cli_opts *o, int min, int max, const char *names);

/* Parsers of option values. Each returns 0, or reports a usage error naming the option and
 * returns -CWS_E_INVALID_ARGUMENT. */
int cli_parse_seconds(struct cli *cli, const char *opt, const char *s, double *ret);
int cli_parse_count(struct cli *cli, const char *opt, const char *s, long long min, long long max,
                    long long *ret);
int cli_parse_output(struct cli *cli, const char *s, bool *ret_json);
/* A timeout in seconds as a loop's timeout_ms: 0 gives -1 (no limit). */
int cli_timeout_ms(double seconds);
/* A duration: "90", "1.5", "90s", "10m", "2h", "1d" (seconds when no unit). Returns 0 or
 * -CWS_E_INVALID_ARGUMENT (nothing reported). */
int cli_duration(const char *s, double *ret_seconds);
/* A point in time (ms since the epoch): YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|±HH:MM] (UTC
 * when no zone is given), or a duration ago ("10m"). Returns 0 or -CWS_E_INVALID_ARGUMENT. */
int cli_time_arg(const char *s, int64_t now_ms, int64_t *ret_ms);

/* A growable NULL-terminated array of strings that it does not own (argv elements). */
struct cli_strv {
    const char **v;
    size_t n, cap;
};
/* Returns 0 or -CWS_E_NOMEM. */
int cli_strv_push(struct cli_strv *sv, const char *s);
/* Frees the array (not the strings). Accepts NULL. */
void cli_strv_free(struct cli_strv *sv);
/* The array, NULL-terminated (an empty one when nothing was pushed). Owned by sv. */
const char *const *cli_strv_get(struct cli_strv *sv);

/* Split a command line the way a POSIX shell splits words: quotes '...' and "...",
 * backslash escapes; no expansions. Returns 0 and sets *ret_argv (NULL-terminated; the caller
 * frees it with cli_words_free()), or -CWS_E_INVALID_ARGUMENT for an unterminated quote or an
 * empty line, -CWS_E_NOMEM. */
int cli_split_words(const char *line, char ***ret_argv);
void cli_words_free(char **argv);

/* ---- client.c: the connection, errors, exit statuses ---- */

/* Connect to the daemon (starting it unless no_autostart) into cli->client. Returns 0 or the
 * error, in err. */
int cli_connect(struct cli *cli, bool no_autostart, struct cws_error *err);

/* Report a failed call and give the exit status: 128+signal after an interrupt, 0 when stdout
 * was closed under us (a quiet exit), else "Error: <message>" on stderr and CLI_EXIT_FAILURE.
 * r == 0 gives CLI_EXIT_OK. */
int cli_fail(struct cli *cli, int r, const struct cws_error *err);

/* Print "Error: <message>" for a failure found by the CLI itself; returns CLI_EXIT_FAILURE. */
int cli_error(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The exit status for a remote command's exit code: 0..255 as is, a signal death (negative,
 * or the 128+N convention) as 128+N, anything else 255. */
int cli_exit_from_remote(int code);

/* Flush stdout before exiting: a closed pipe is a quiet success (the reader had enough), any
 * other write error is reported. Returns the final exit status given the command's status. */
int cli_finish_stdout(struct cli *cli, int status);

/* Write all of buf to fd (blocking, retrying on EINTR). Returns 0, or -CWS_E_IO with errno
 * set; EPIPE on stdout or stderr also sets cli->stdout_closed. */
int cli_write_all(struct cli *cli, int fd, const void *buf, size_t len);

/* ---- loop.c: signals and the event loop ---- */

/* Install the signal handlers: SIGPIPE ignored; SIGINT/SIGTERM/SIGHUP and SIGWINCH/SIGCONT
 * routed to the loop. Returns 0 or -CWS_E_IO. */
int cli_signals_init(void);

#define CLI_LOOP_MAX_FDS 4

/* What a loop waits for besides the client connection. Every hook is optional. */
struct cli_loop_hooks {
    /* Whether the loop is over (checked before every poll). NULL: run until a signal, a
     * deadline or a failure. */
    bool (*done)(void *ud);
    /* Fill up to room pollfds to watch; return how many. */
    size_t (*prepare)(void *ud, struct pollfd *fds, size_t room);
    /* Those fds after poll(); a negative return ends the loop with it. */
    int (*ready)(void *ud, const struct pollfd *fds, size_t n, struct cws_error *err);
    /* Every tick_ms. */
    void (*tick)(void *ud);
    int tick_ms;
    /* The terminal was resized (SIGWINCH), or we were continued (SIGCONT). */
    void (*winch)(void *ud);
    /* End the loop when stdout is a pipe whose reader went away (cli->stdout_closed). */
    bool watch_stdout;
    void *ud;
};

/* Run the client connection and the hooks until done, for at most timeout_ms (-1: no limit).
 * Returns 0 when done; -CWS_E_CANCELLED after a terminating signal (cli->signal) or a closed
 * stdout (cli->stdout_closed); -CWS_E_DEADLINE_EXCEEDED; a hook's error; -CWS_E_UNAVAILABLE
 * when the connection is lost and done is still false. */
int cli_loop(struct cli *cli, const struct cli_loop_hooks *h, int timeout_ms,
             struct cws_error *err);

/* Wait for op (timeout_ms -1: no limit), interruptibly: after a signal the op is cancelled and
 * -CWS_E_CANCELLED returned. Otherwise the op's own outcome (0, or its error in err). */
int cli_wait_op(struct cli *cli, cws_op *op, int timeout_ms, struct cws_error *err);

/* Cancel op (when still in flight) and give the daemon up to a second to hear it. Accepts
 * NULL. */
void cli_cancel_op(struct cli *cli, cws_op *op);

/* Milliseconds of CLOCK_MONOTONIC, and of the wall clock. */
int64_t cli_now_ms(void);
int64_t cli_wall_ms(void);

/* ---- term.c: the local terminal ---- */

/* Put the terminal on fd in raw mode, saving its settings; they are restored by
 * cli_term_restore(), at exit, and on every signal that ends the process. Returns 0,
 * -CWS_E_INVALID_ARGUMENT when fd is not a terminal, -CWS_E_IO. */
int cli_term_raw(int fd);
/* Restore what cli_term_raw() saved (async-signal-safe; harmless when nothing was saved). */
void cli_term_restore(void);
/* Re-apply raw mode after a SIGCONT (the shell may have reset the terminal). */
void cli_term_reraw(void);
/* The size of the terminal on fd, or on fd 0/1/2; 80x24 when none. */
void cli_term_size(int fd, unsigned *ret_cols, unsigned *ret_rows);

/* ---- output.c: tables, JSON, times, sizes ---- */

/* A JSON writer, indented like Python's json.dumps(indent=2). */
struct cli_json {
    FILE *out;
    int depth;
    bool first[32]; /* whether the container at each depth is still empty */
    bool after_key;
};

void cli_json_init(struct cli_json *j, FILE *out);
void cli_json_begin_object(struct cli_json *j);
void cli_json_end_object(struct cli_json *j);
void cli_json_begin_array(struct cli_json *j);
void cli_json_end_array(struct cli_json *j);
void cli_json_key(struct cli_json *j, const char *key);
/* A string, escaped (invalid UTF-8 becomes U+FFFD); NULL writes null. */
void cli_json_string(struct cli_json *j, const char *s);
/* A string, or null when s is NULL or empty. */
void cli_json_string_or_null(struct cli_json *j, const char *s);
void cli_json_int(struct cli_json *j, int64_t v);
void cli_json_uint(struct cli_json *j, uint64_t v);
void cli_json_double(struct cli_json *j, double v);
void cli_json_bool(struct cli_json *j, bool v);
void cli_json_null(struct cli_json *j);
/* An ISO 8601 UTC time as Python's isoformat() writes it, or null for 0. */
void cli_json_time(struct cli_json *j, int64_t ms);
/* End the document with a newline. */
void cli_json_finish(struct cli_json *j);

/* A table: a header row, a dashed row, then the rows; columns are padded to the widest cell
 * (at least min_width); the last column is not padded. Empty cells print as "-". */
#define CLI_TABLE_MAX_COLS 8
struct cli_table {
    size_t n_cols;
    const char *headers[CLI_TABLE_MAX_COLS];
    size_t widths[CLI_TABLE_MAX_COLS];
    char **cells; /* n_rows * n_cols, owned */
    size_t n_rows, cap_rows;
};

/* Start a table of n_cols columns: headers[i] with minimum width min_widths[i] (may be NULL). */
void cli_table_init(struct cli_table *t, size_t n_cols, const char *const *headers,
                    const size_t *min_widths);
/* Add a row of n_cols cells (copied; NULL or "" prints as "-"). Returns 0 or -CWS_E_NOMEM. */
int cli_table_add(struct cli_table *t, const char *const *cells);
void cli_table_print(const struct cli_table *t, FILE *out);
/* Frees the rows. Accepts NULL. */
void cli_table_free(struct cli_table *t);

/* Key/value rows, keys padded to key_width. An empty value prints as "-". */
void cli_kv(FILE *out, int key_width, const char *key, const char *value);

/* "YYYY-MM-DD HH:MM:SS UTC" into buf (at least 32 bytes); "" for 0. Returns buf. */
char *cli_format_time(int64_t ms, char *buf, size_t size);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (at least 32 bytes). Returns buf. */
char *cli_format_time_rfc3339(int64_t ms, char *buf, size_t size);
/* "12.3 MiB" into buf. Returns buf. */
char *cli_format_size(uint64_t bytes, char *buf, size_t size);
/* "1h 2m 3s" into buf. Returns buf. */
char *cli_format_duration(int64_t ms, char *buf, size_t size);

/* ---- sandbox_view.c: a sandbox as a table row, key/value rows or JSON ---- */

void cli_sandbox_json(struct cli_json *j, const struct cws_sandbox_info *sb);
/* Print sandboxes as the ls table ("No sandboxes found." when none). Returns 0 or
 * -CWS_E_NOMEM. */
int cli_sandboxes_table(const struct cws_sandbox_info *sbs, size_t n, FILE *out);
void cli_sandbox_details(const struct cws_sandbox_info *sb, FILE *out);
/* Parse a state name; returns 0 or -CWS_E_INVALID_ARGUMENT. */
int cli_state_from_name(const char *name, enum cws_sandbox_state *ret);

/* ---- progress.c: a progress bar on stderr ---- */

/* Transfers smaller than this show no bar. */
#define CLI_PROGRESS_MIN_BYTES (4u * 1024 * 1024)

struct cli_progress {
    bool enabled; /* stderr is a terminal and the user did not ask for quiet */
    bool drawn;   /* a line is on screen */
    const char *label;
    uint64_t total; /* 0: unknown */
    uint64_t done;
    int64_t start_ms, last_draw_ms;
};

/* Prepare a bar for a transfer of total bytes (0: unknown yet); it shows only when stderr is
 * a terminal, allowed is true and the transfer is large enough. */
void cli_progress_init(struct cli_progress *p, const char *label, uint64_t total, bool allowed);
void cli_progress_set_total(struct cli_progress *p, uint64_t total);
/* Record progress and redraw (at most ten times a second). */
void cli_progress_update(struct cli_progress *p, uint64_t done);
/* Erase the bar. */
void cli_progress_finish(struct cli_progress *p);

/* ---- exec_io.c: run a command in a sandbox with the local terminal and pipes ---- */

struct cli_exec_request {
    const char *id;
    const char *const *argv;
    const char *cwd;
    const char *const *env; /* "NAME=value", NULL-terminated, or NULL */
    double timeout_s;
    bool forward_stdin; /* -i */
    bool tty;           /* -t: a remote terminal (raw mode here when stdin is one) */
};

/* Run rq on cli->client, streaming stdout and stderr, forwarding stdin and terminal resizes.
 * Returns 0 and sets *ret_exit_code, or the error (in err); -CWS_E_CANCELLED after a signal or
 * when stdout was closed (see cli_fail()). The terminal is always restored. */
int cli_exec_run(struct cli *cli, const struct cli_exec_request *rq, int *ret_exit_code,
                 struct cws_error *err);

/* ---- transfer.c: copies between the sandbox and here ---- */

/* One side of a copy: a path in a sandbox, a local path, or "-" (stdin/stdout). */
struct cli_endpoint {
    char *id; /* the sandbox, NULL for a local side; owned */
    const char *path;
    bool std; /* "-" */
};

/* Parse "ID:/path", "-" or a local path. Returns 0 and fills *ret (free it with
 * cli_endpoint_clear()), -CWS_E_INVALID_ARGUMENT (reported as a usage error), -CWS_E_NOMEM. */
int cli_endpoint_parse(struct cli *cli, const char *arg, struct cli_endpoint *ret);
/* Frees what the endpoint owns. Accepts NULL. */
void cli_endpoint_clear(struct cli_endpoint *e);

struct cli_copy_options {
    bool quiet;     /* no progress bar */
    int timeout_ms; /* give up after this long; -1: no limit */
};

/* Copy src to dst (at least one in a sandbox); opts may be NULL. Returns 0 and sets *ret_bytes (may
 * be NULL), or the error (in err). */
int cli_copy(struct cli *cli, const struct cli_endpoint *src, const struct cli_endpoint *dst,
             const struct cli_copy_options *opts, uint64_t *ret_bytes, struct cws_error *err);

#endif
