/* Helpers of the client library's tests: a private environment in which the library finds no
 * daemon and starts one (the default socket path rules apply), and ways to find and stop the
 * daemons it started. */
#ifndef CWS_CLIENT_TEST_H
#define CWS_CLIENT_TEST_H

#include <check.h>
#include <cwsandbox/cwsandbox.h>
#include <stdbool.h>
#include <sys/types.h>

struct ct_env {
    char root[256];   /* removed by ct_env_teardown */
    char socket[320]; /* where the library will look: $XDG_RUNTIME_DIR/cwsandbox/... */
};

/* The test environment of this process: XDG_RUNTIME_DIR, XDG_STATE_HOME, XDG_CONFIG_HOME and
 * HOME under a new temporary root; CWSANDBOX_SOCKET and CWSANDBOX_SESSION unset; CWSANDBOXD
 * the daemon named by $CWSC_TEST_DAEMON (set by CMake). */
void ct_env_setup(struct ct_env *e);

/* Stop every daemon serving e's socket and every process still running from the root (a
 * daemon's backend, sandboxes), then remove the root. */
void ct_env_teardown(struct ct_env *e);

/* Run a suite (CK_NORMAL) and tear down whatever its failed tests left; returns the exit
 * status for main(). */
int ct_run_suite(Suite *s);

/* Live (not zombie) processes whose arguments include socket_path, into pids[max]; returns
 * their number. */
int ct_daemon_pids(const char *socket_path, pid_t *pids, int max);

/* "pid N (parent P): command line", for messages. */
const char *ct_describe(pid_t pid, char *buf, size_t size);

/* SIGTERM, then SIGKILL: stop a process that is not our child. */
void ct_stop_pid(pid_t pid);

/* Whether pid is alive and not a zombie. */
bool ct_alive(pid_t pid);

/* Connect with default options; fails the test on error. */
cws_client *ct_connect(void);

/* Milliseconds of the monotonic clock. */
long long ct_now_ms(void);

#endif
