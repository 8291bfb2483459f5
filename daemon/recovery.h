/* After a restart (or a lost answer), making the daemon's view and the backend's agree: creates
 * that were in flight are sent again with their request_id, and what the backend runs under
 * this daemon's owner tag is matched with the registry; what no live owner holds is stopped. */
#ifndef CWSD_RECOVERY_H
#define CWSD_RECOVERY_H

#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "cws_error.h"
#include "registry.h"

struct cwsd;

/* Compute d->owner_tag: "cwsd-owner.<machine id>.<uid>" (the host name hashed when there is
 * no machine id). */
void cwsd_owner_tag_init(struct cwsd *d);

/* Start the reconciliation (asynchronous; d->recovering while it runs). */
void cwsd_recover_start(struct cwsd *d);
/* Send the pending creates again a little later (a create whose answer was lost). */
void cwsd_recover_later(struct cwsd *d);
void cwsd_recover_stop(struct cwsd *d);

/* A create was answered (sb) or failed (err): track it, persist it, and orphan it at once when
 * its client has gone. Frees p, unless the outcome is unknown (it stays pending). */
void cwsd_create_finished(struct cwsd *d, struct cwsd_pending *p,
                          const Coreweave__Sandbox__V1__Sandbox *sb, const struct cws_error *err);

#endif
