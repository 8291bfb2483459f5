/* The sandboxes this daemon knows: who owns them and what the backend last said of them
 * (the cache that sandbox.get answers from unless asked for a fresh answer). */
#ifndef CWSD_SANDBOX_TABLE_H
#define CWSD_SANDBOX_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "cws_error.h"

struct cwsd;

/* Who keeps a sandbox running (docs/sessions.md). */
enum cwsd_owner {
    CWSD_OWNER_CLIENT,   /* the connection that created it: stopped when that goes away */
    CWSD_OWNER_SESSION,  /* its session: stopped when the session closes */
    CWSD_OWNER_DETACHED, /* nobody: only its lifetime ends it */
};

struct cwsd_sandbox {
    char *id;
    enum cwsd_owner owner;
    char *session;      /* or NULL */
    uint64_t client_id; /* creating client, for CWSD_OWNER_CLIENT; 0 after a daemon restart */
    int32_t client_pid; /* for log lines; 0 when unknown */
    bool unconfirmed;   /* from the registry, not yet seen in the backend's listing */
    uint8_t *cached;    /* the last Sandbox message, packed; NULL when never seen */
    size_t cached_len;
    struct cwsd_sandbox *next;  /* every entry, newest first */
    struct cwsd_sandbox *hnext; /* the same hash bucket */
};

/* "client", "session", "detached". */
const char *cwsd_owner_name(enum cwsd_owner owner);
/* The owner named by s; -CWS_E_INVALID_ARGUMENT for any other name. */
int cwsd_owner_parse(const char *s, enum cwsd_owner *ret);

/* The entry for id, created (owned by the table) when missing; NULL when out of memory. */
struct cwsd_sandbox *cwsd_sandbox_track(struct cwsd *d, const char *id);
struct cwsd_sandbox *cwsd_sandbox_find(struct cwsd *d, const char *id);
/* Remember the backend's view of a sandbox (tracked or not: a no-op when untracked). */
void cwsd_sandbox_remember(struct cwsd *d, const Coreweave__Sandbox__V1__Sandbox *sb);
/* The cached Sandbox, unpacked; the caller frees it with
 * coreweave__sandbox__v1__sandbox__free_unpacked(). NULL when nothing is cached. */
Coreweave__Sandbox__V1__Sandbox *cwsd_sandbox_cached(const struct cwsd_sandbox *s);
/* Whether the cache says the sandbox has ended. */
bool cwsd_sandbox_known_terminal(const struct cwsd_sandbox *s);
/* Drop an entry (a sandbox that has ended). No-op for an unknown id. */
void cwsd_sandbox_forget(struct cwsd *d, const char *id);
size_t cwsd_sandbox_count(const struct cwsd *d);
void cwsd_sandbox_table_free(struct cwsd *d);

#endif
