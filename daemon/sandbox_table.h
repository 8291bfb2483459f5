/* The sandboxes this daemon knows: who owns them and what the backend last said of them
 * (the cache that sandbox.get answers from unless asked for a fresh answer). */
#ifndef CWSD_SANDBOX_TABLE_H
#define CWSD_SANDBOX_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "coreweave/sandbox/v1/sandbox.pb-c.h"

struct cwsd;

struct cwsd_sandbox {
    char *id;
    char *owner;        /* "client", "session", "detached" */
    char *session;      /* or NULL */
    uint64_t client_id; /* creating client, for owner "client" */
    uint8_t *cached;    /* the last Sandbox message, packed; NULL when never seen */
    size_t cached_len;
    struct cwsd_sandbox *next;
};

/* The entry for id, created when missing (NULL when out of memory). */
struct cwsd_sandbox *cwsd_sandbox_track(struct cwsd *d, const char *id);
struct cwsd_sandbox *cwsd_sandbox_find(struct cwsd *d, const char *id);
/* Remember the backend's view of a sandbox (tracked or not: a no-op when untracked). */
void cwsd_sandbox_remember(struct cwsd *d, const Coreweave__Sandbox__V1__Sandbox *sb);
/* The cached Sandbox, unpacked; the caller frees it with
 * coreweave__sandbox__v1__sandbox__free_unpacked(). NULL when nothing is cached. */
Coreweave__Sandbox__V1__Sandbox *cwsd_sandbox_cached(const struct cwsd_sandbox *s);
/* Drop an entry (a sandbox that has ended). No-op for an unknown id. */
void cwsd_sandbox_forget(struct cwsd *d, const char *id);
size_t cwsd_sandbox_count(const struct cwsd *d);
void cwsd_sandbox_table_free(struct cwsd *d);

#endif
