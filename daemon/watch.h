/* Shared status polling: one watcher per sandbox serves every client waiting on it, polling
 * GetSandbox at 0.2 s, ×1.5 each time, up to 2 s, and stops when nobody waits. */
#ifndef CWSD_WATCH_H
#define CWSD_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "cws_error.h"

struct cwsd;
struct cwsd_waiter;

enum cwsd_wait_until { CWSD_UNTIL_RUNNING, CWSD_UNTIL_TERMINAL };

/* Called once: sb is the sandbox as last seen (valid during the call) when the condition is
 * met; otherwise err says why (DEADLINE_EXCEEDED, SANDBOX_FAILED, SANDBOX_TERMINATED,
 * NOT_FOUND, or the backend's error). */
typedef void (*cwsd_wait_fn)(void *ud, const Coreweave__Sandbox__V1__Sandbox *sb,
                             const struct cws_error *err);

/* Wait for a sandbox to run (or to end) within timeout_ms. Returns the waiter, which the
 * caller may cancel before fn runs. NULL when out of memory (err set). */
struct cwsd_waiter *cwsd_wait(struct cwsd *d, const char *id, enum cwsd_wait_until until,
                              int64_t timeout_ms, cwsd_wait_fn fn, void *ud, struct cws_error *err);
void cwsd_wait_cancel(struct cwsd_waiter *w);

/* Number of sandboxes being watched (for daemon.status). */
size_t cwsd_watch_count(const struct cwsd *d);

/* Stop every watcher (daemon shutdown): waiters get UNAVAILABLE. */
void cwsd_watch_shutdown(struct cwsd *d);

bool cwsd_state_is_terminal(Coreweave__Sandbox__V1__State s);

#endif
