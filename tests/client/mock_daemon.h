/* mock-cwsandboxd: a stand-in daemon for the client library's tests. It speaks the protocol of
 * docs/protocol.md on a Unix socket and implements the sandbox methods with plain local
 * processes (a "sandbox" is a record; its main command and execs run on this host; file paths
 * are host paths). The library's tests now run against the real daemon; this one only plays
 * an old daemon (another protocol level) in test_client_connect.
 *
 *   mock-cwsandboxd --socket PATH [--protocol N]
 *
 * With --protocol N other than 1 it plays an old daemon: hello with protocol 1 is refused. */
#ifndef CWS_MOCK_DAEMON_H
#define CWS_MOCK_DAEMON_H

#include <msgpack.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cws_error.h"
#include "rpc_decoder.h"

#define MOCK_MAX_CONNS     64
#define MOCK_MAX_SANDBOXES 256
#define MOCK_MAX_CALLS     256
#define MOCK_MAX_SESSIONS  16
#define MOCK_MAX_WRITTEN   1024

struct mock_conn {
    int fd;
    struct cws_rpc_decoder *dec;
    bool hello;
};

struct mock_sandbox {
    bool used;
    char id[40];
    char state[16];
    bool has_exit_code;
    int exit_code;
    pid_t pid;  /* main process, 0 when none or gone */
    int log_fd; /* its stdout+stderr, -1 once closed */
    msgpack_sbuffer log;
    char **tags;
    char session[64];
    char owner[16];
    int64_t created_ms, started_ms, ended_ms;
    bool stopping;
    int64_t kill_at_ms; /* SIGKILL after the stop's grace; 0: none */
    char request_id[64];
};

enum mock_call_kind { CALL_NONE, CALL_EXEC, CALL_WAIT, CALL_LOGS, CALL_WRITE };

struct mock_call {
    enum mock_call_kind kind;
    struct mock_conn *conn;
    uint32_t msgid;
    int sandbox;
    int64_t deadline_ms; /* 0: none */
    /* exec */
    pid_t pid;
    int in_fd, out_fd, err_fd; /* a tty uses out_fd for both directions */
    bool tty, stream, exited, eof_pending;
    int status;
    msgpack_sbuffer in, out, err;
    size_t in_off; /* bytes of in already written */
    int64_t started_ms;
    /* wait */
    bool until_terminal;
    /* logs */
    bool follow, timestamps;
    size_t log_sent;
    /* write */
    int file_fd;
    uint64_t remaining, size;
};

struct mock_session {
    bool used;
    char name[64];
    int64_t created_ms;
    double idle_ttl_s;
    char **default_tags;
};

struct mock {
    int listen_fd;
    int protocol;
    int64_t started_ms;
    struct mock_conn conns[MOCK_MAX_CONNS];
    struct mock_sandbox sandboxes[MOCK_MAX_SANDBOXES];
    struct mock_call calls[MOCK_MAX_CALLS];
    struct mock_session sessions[MOCK_MAX_SESSIONS];
    int next_id;
    /* Files written through file.write live on this host: removed when the mock exits, as a
     * sandbox's files go with it. */
    char *written[MOCK_MAX_WRITTEN];
    int n_written;
};

int64_t mock_now_ms(void);
int64_t mock_wall_ms(void);

/* mock_io.c: replies and notifications. */
void mock_send(struct mock_conn *c, msgpack_sbuffer *sb);
void mock_reply_error(struct mock_conn *c, uint32_t msgid, enum cws_errcode code,
                      const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A packer on a fresh buffer with the response head for msgid written; send it with
 * mock_send() once the result is packed. */
void mock_result_begin(msgpack_sbuffer *sb, msgpack_packer *pk, uint32_t msgid);
void mock_notify_begin(msgpack_sbuffer *sb, msgpack_packer *pk, const char *method);
void mock_reply_nil(struct mock_conn *c, uint32_t msgid);

/* mock_sandbox.c */
void mock_pack_sandbox(msgpack_packer *pk, const struct mock_sandbox *s);
bool mock_state_terminal(const char *state);
int mock_find_sandbox(struct mock *m, const msgpack_object *params, struct mock_conn *c,
                      uint32_t msgid);
void mock_sandbox_method(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg);
void mock_sandbox_poll(struct mock *m);
void mock_sandbox_end(struct mock *m, struct mock_sandbox *s, int status);
void mock_session_method(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg);

/* mock_exec.c */
void mock_exec(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg);
void mock_files(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg);
void mock_logs(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg);
void mock_call_notification(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg);
struct mock_call *mock_call_new(struct mock *m, enum mock_call_kind kind, struct mock_conn *c,
                                uint32_t msgid);
void mock_call_end(struct mock_call *call);
/* Add the fds of running calls to pfds; returns the count added. */
int mock_calls_pollfds(struct mock *m, struct pollfd *pfds, int max, struct mock_call **owners);
void mock_call_io(struct mock *m, struct mock_call *call, short revents, int fd);
void mock_calls_tick(struct mock *m);
void mock_calls_drop_conn(struct mock *m, struct mock_conn *c);

#endif
