/* Test harness for cwsandboxd: start the real daemon in a private temporary tree (runtime,
 * state, config and home directories), wait for its READY=1 on a private NOTIFY_SOCKET, and
 * talk msgpack-rpc to its socket with a small blocking client. */
#ifndef CWS_TEST_HARNESS_H
#define CWS_TEST_HARNESS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "rpc_decoder.h"

struct th_daemon {
    pid_t pid;
    char root[256];   /* temporary tree, removed by th_daemon_stop */
    char socket[300]; /* the daemon's socket */
};

/* Start cwsandboxd (path from CWSD_BIN, set by CMake) with extra "K=V" environment entries
 * (NULL-terminated, may be NULL). Waits at most timeout_ms for READY=1. Returns 0 or -1. */
int th_daemon_start(struct th_daemon *d, const char *const *extra_env, int timeout_ms);

/* SIGTERM, wait at most timeout_ms (then SIGKILL); returns the exit status or -1. Removes
 * the temporary tree. */
int th_daemon_stop(struct th_daemon *d, int timeout_ms);

/* Send sig and wait at most timeout_ms for the daemon to exit (then SIGKILL); the exit
 * status, or -1. The temporary tree stays. */
int th_daemon_signal_wait(struct th_daemon *d, int sig, int timeout_ms);

/* Start the daemon again on its tree after it exited or was killed (same state, socket). */
int th_daemon_relaunch(struct th_daemon *d, const char *const *extra_env, int timeout_ms);

/* SIGTERM the daemon and start it again on the same tree (same state, same socket). */
int th_daemon_restart(struct th_daemon *d, const char *const *extra_env, int timeout_ms);

/* Count the open file descriptors of a process (/proc/PID/fd). */
int th_count_fds(pid_t pid);
/* Resident set size of a process in KiB (/proc/PID/status VmRSS). */
long th_rss_kib(pid_t pid);

struct th_conn {
    int fd;
    struct cws_rpc_decoder *dec;
    uint32_t next_id;
};

/* Connect to a socket path; -1 on failure (errno set). */
int th_connect(struct th_conn *c, const char *path);
void th_close(struct th_conn *c);
/* Send raw bytes. */
int th_send_raw(struct th_conn *c, const void *data, size_t len);

/* Build params with fn (packs ONE map, or nothing for []), send the request, and return its
 * msgid. */
typedef void (*th_params_fn)(msgpack_packer *pk, void *ud);
uint32_t th_request(struct th_conn *c, const char *method, th_params_fn fn, void *ud);

/* Wait at most timeout_ms for the next message; NULL on timeout or end of connection
 * (*ret_eof says which). The caller frees it with cws_rpc_msg_free(). */
struct cws_rpc_msg *th_next(struct th_conn *c, int timeout_ms, bool *ret_eof);

/* Send a request and wait for its response (notifications before it are dropped). */
struct cws_rpc_msg *th_call(struct th_conn *c, const char *method, th_params_fn fn, void *ud,
                            int timeout_ms);

/* th_call / th_request with params written as JSON after printf formatting ("" for none):
 * th_call_json(c, 5000, "sandbox.get", "{\"id\": \"%s\"}", id). Strings, numbers, true,
 * false, null, objects and arrays; a number without a '.' is an integer. */
struct cws_rpc_msg *th_call_json(struct th_conn *c, int timeout_ms, const char *method,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
uint32_t th_request_json(struct th_conn *c, const char *method, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* hello with protocol 1; true when answered with a result. */
bool th_hello(struct th_conn *c);

/* The value of key in a map object (common's cws_rpc_param), or NULL when absent, nil or not
 * a map. */
const msgpack_object *th_field(const msgpack_object *map, const char *key);

/* Stop every sandbox the backend lists (sandboxes outlive cwsandbox-local), on a connection
 * of its own so that notifications left unread on a test's connection are not in the way. */
void th_stop_all(const struct th_daemon *d);

/* The string value of key in a map object, copied into buf ("" when absent). */
const char *th_str(const msgpack_object *map, const char *key, char *buf, size_t size);
/* The integer value of key, or def. */
int64_t th_int(const msgpack_object *map, const char *key, int64_t def);

/* A test's daemon and its first connection, hello said. */
void th_fixture_up(struct th_daemon *d, struct th_conn *c);
/* Stop every sandbox, close c, and stop the daemon, which must exit 0 within stop_ms. */
void th_fixture_down(struct th_daemon *d, struct th_conn *c, int stop_ms);
/* Create a sandbox that stays up, tagged cwsd-test, and wait until it runs; extra is more
 * params as JSON members ("" or ", \"owner\": \"client\""). Fills id. */
void th_create(struct th_conn *c, const char *extra, char *id, size_t size);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t th_now_ms(void);

/* Check assertions (the test fails in place): */
/* m must be a result, not an error nor missing; returns m (the caller frees it). */
struct cws_rpc_msg *th_ok(struct cws_rpc_msg *m, const char *what);
/* The backend's state of a sandbox ("running", "completed", ...), via sandbox.get fresh. */
const char *th_state(struct th_conn *c, const char *id, char *buf, size_t size);
bool th_is_terminal(const char *state);
/* Poll the backend's view (every 100 ms) until the sandbox has ended; false at the deadline
 * (th_now_ms() based). */
bool th_ended_by(struct th_conn *c, const char *id, int64_t deadline_ms);

#endif
