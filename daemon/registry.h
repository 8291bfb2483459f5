/* The registry: what this daemon created and for whom, persisted under the state directory
 * so that a restarted daemon (after a crash, a SIGKILL or a reboot) can finish what was in
 * flight and clean up what nobody owns any more. See registry.c for the file format. */
#ifndef CWSD_REGISTRY_H
#define CWSD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cws_error.h"
#include "sandbox_table.h"

struct cwsd;
struct cwsd_session;

/* A create persisted before it was sent and not answered yet. */
struct cwsd_pending {
    struct cwsd *d;
    char *request_id;
    enum cwsd_owner owner;
    char *session;      /* or NULL */
    uint64_t client_id; /* 0 when its client is gone (after a restart) */
    int32_t client_pid;
    uint8_t *request; /* the packed CreateSandboxRequest, to send it again after a restart */
    size_t request_len;
    bool sending; /* its CreateSandbox is in flight */
    struct cwsd_pending *next;
};

/* Open (creating it when missing) the registry in cfg.state_dir and replay it into d:
 * sessions, sandboxes and pending creates. A torn last record is dropped; a corrupt file is
 * moved aside (logged as an error) and what was read before the damage is kept. Fails only
 * when the directory cannot be used; the daemon then runs without persistence. */
int cwsd_registry_open(struct cwsd *d, struct cws_error *err);
/* Write the state once more, compactly, and close. Accepts a closed registry. */
void cwsd_registry_close(struct cwsd *d);
/* The registry file's path, or NULL. */
const char *cwsd_registry_path(const struct cwsd *d);

/* Each note appends a record and syncs it to disk. Failures are logged, not returned, except
 * for the ones that must hold before the daemon acts (sessions, creates). */
int cwsd_registry_note_session(struct cwsd *d, const struct cwsd_session *s, struct cws_error *err);
void cwsd_registry_note_session_closed(struct cwsd *d, const char *name);
/* p (owned by the caller until this succeeds, then by d->pending) is persisted before its
 * create is sent. */
int cwsd_registry_note_create(struct cwsd *d, struct cwsd_pending *p, struct cws_error *err);
/* The backend answered p's create with sandbox e (tracked): p is freed. */
void cwsd_registry_note_created(struct cwsd *d, struct cwsd_pending *p,
                                const struct cwsd_sandbox *e);
/* The backend refused p's create for good: p is freed. */
void cwsd_registry_note_create_failed(struct cwsd *d, struct cwsd_pending *p);
/* e's owner or session changed. */
void cwsd_registry_note_owner(struct cwsd *d, const struct cwsd_sandbox *e);
/* A sandbox is no longer tracked (it ended). */
void cwsd_registry_note_gone(struct cwsd *d, const char *id);

void cwsd_pending_free(struct cwsd_pending *p);
void cwsd_pending_free_all(struct cwsd *d);

#endif
