/* Orphan cleanup and the logout cleanup; see reaper.c. */
#ifndef CWSD_REAPER_H
#define CWSD_REAPER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cwsd;

struct cwsd_sandbox;

/* Whether no live owner holds e: its client is gone, or its session is. */
bool cwsd_reaper_unowned(struct cwsd *d, const struct cwsd_sandbox *e);
/* e has no live owner: stop it after orphan_grace_s unless it is adopted meanwhile (checked
 * again when the grace ends). Idempotent. */
void cwsd_reaper_orphan(struct cwsd *d, const struct cwsd_sandbox *e);
/* A client went away: its `client` sandboxes are stopped after orphan_grace_s unless they are
 * adopted (or their owner changes) meanwhile. */
void cwsd_reaper_client_gone(struct cwsd *d, uint64_t client_id);
/* Sandboxes waiting for their grace to pass. */
size_t cwsd_reaper_pending(void);
/* The last stops made by the reaper: [{id, reaped_ms, why}]. */
int cwsd_reaper_pack_report(msgpack_packer *pk);
/* The user's last login session ended (logind, with lingering on): when cleanup_on_logout is
 * set, stop every `client` and `session` sandbox without waiting for the answers; the daemon
 * keeps serving. */
void cwsd_reaper_logout(struct cwsd *d);
/* Stop every `client` and `session` sandbox in parallel, running the loop until all are
 * answered or deadline_ms passed. `detached` sandboxes keep running. */
void cwsd_reaper_stop_all(struct cwsd *d, int64_t deadline_ms);

#endif
