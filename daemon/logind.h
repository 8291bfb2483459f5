/* Logout with lingering: watch systemd-logind on the system bus and stop every `client` and
 * `session` sandbox (cwsd_reaper_logout) when the user's last login session ends.
 *
 * Without lingering, systemd stops the user manager, and so this daemon (SIGTERM), when the
 * user logs out; with `loginctl enable-linger` the daemon keeps running and only logind can
 * tell it that the user left.
 *
 * What counts. A login session is one of getuid()'s sessions (Manager.ListSessions) whose
 * Class is "user" (or "user-*": user-early, user-incomplete, ...) and whose State is not
 * "closing". Greeter, lock-screen and background sessions are not logins, and systemd 256+
 * gives every lingering user a "manager" session for its user manager that never ends: none
 * of them count. A session is "closing" once its user logged out of it (pam_close_session,
 * or its leader exited) while processes remain in its scope; with KillUserProcesses=no (the
 * default) a stray `nohup` or a detached tmux keeps it "closing" for ever, and logind emits
 * no signal when a session turns "closing" (only SessionRemoved, once its scope is empty).
 * Waiting for SessionRemoved could therefore mean never cleaning up, so a closing session
 * counts as ended. A program still running in such a leftover keeps its connection to the
 * daemon, but its `client` sandboxes are stopped with the others: the user logged out; a
 * sandbox meant to survive logout is `detached` (or set cleanup_on_logout = false).
 *
 * When. The count is taken again on SessionNew, SessionRemoved and UserRemoved, and every
 * LOGIND_POLL_S while it is above zero (the only way to see a session turn "closing"). The
 * cleanup runs when it goes from >= 1 to 0: a daemon started while the user has no login
 * session (linger at boot) waits for a login and its end. Each later login and logout
 * triggers it again.
 *
 * Everything is asynchronous on the daemon's libevent loop (sd_bus_get_fd/_events/_timeout,
 * sd_bus_process until it returns 0), and every call has a timeout.
 *
 * No bus at start (no DBUS_SYSTEM_BUS_ADDRESS server, no /run/dbus: containers, CI): one
 * info line, and nothing more is tried; logout is then noticed by SIGTERM only. A bus without
 * logind: its calls fail, which is logged, and the signals would start the count should
 * logind appear. A connection that breaks later is retried with a backoff (1 s doubling to
 * 60 s), not abandoned: the daemon runs for days, and one restart of the bus must not turn
 * the cleanup off silently. The count from before the break is kept, so a logout that
 * happened while the bus was away is acted upon at the reconnection.
 *
 * Off entirely (no connection at all) when cleanup_on_logout is false. */
#ifndef CWSD_LOGIND_H
#define CWSD_LOGIND_H

struct cwsd;

/* Start watching (after the backend started). Never fails: problems are logged. */
void cwsd_logind_start(struct cwsd *d);
/* Stop watching and close the bus connection (without blocking); safe when not started. */
void cwsd_logind_stop(void);

#endif
