/* Stopping a sandbox and waiting until it has ended: what the reaper and session close do. */
#ifndef CWSD_SANDBOX_STOP_H
#define CWSD_SANDBOX_STOP_H

#include <stdint.h>

#include "cws_error.h"

struct cwsd;

/* err is NULL once the sandbox has ended or is missing, else why not. */
typedef void (*cwsd_stopped_fn)(void *ud, const char *id, const struct cws_error *err);

/* DeleteSandbox with grace_s (a missing sandbox is fine), then the shared watcher until the
 * sandbox is terminal, within grace_s + slack_ms; an ended sandbox is forgotten. done is
 * called exactly once, possibly before this returns. */
void cwsd_stop_until_ended(struct cwsd *d, const char *id, int32_t grace_s, int64_t slack_ms,
                           cwsd_stopped_fn done, void *ud);

#endif
