/* The daemon's table of sandboxes; see sandbox_table.h. A list for walking every entry and a
 * hash index for lookups: cached sandbox.get is the hottest call and a user may track
 * thousands. */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "registry.h"
#include "sandbox_table.h"
#include "watch.h"

#define MIN_BUCKETS 64

static const char *const owner_names[] = {"client", "session", "detached"};

const char *cwsd_owner_name(enum cwsd_owner owner)
{
    return (size_t)owner < sizeof(owner_names) / sizeof(owner_names[0]) ? owner_names[owner]
                                                                        : "unknown";
}

int cwsd_owner_parse(const char *s, enum cwsd_owner *ret)
{
    for (size_t i = 0; i < sizeof(owner_names) / sizeof(owner_names[0]); i++) {
        if (strcmp(s, owner_names[i]) == 0) {
            *ret = (enum cwsd_owner)i;
            return 0;
        }
    }
    return -CWS_E_INVALID_ARGUMENT;
}

/* FNV-1a: ids are short and not chosen by an attacker (the backend makes them). */
static size_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)h;
}

static struct cwsd_sandbox **bucket(const struct cwsd *d, const char *id)
{
    return &d->sandbox_buckets[hash_id(id) & (d->n_sandbox_buckets - 1)];
}

struct cwsd_sandbox *cwsd_sandbox_find(struct cwsd *d, const char *id)
{
    if (!d->n_sandbox_buckets)
        return NULL;
    for (struct cwsd_sandbox *s = *bucket(d, id); s; s = s->hnext)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

/* Keep the load at most 1; on failure the old index stays (lookups only get slower). */
static int grow_index(struct cwsd *d)
{
    size_t n = d->n_sandbox_buckets ? d->n_sandbox_buckets * 2 : MIN_BUCKETS;
    struct cwsd_sandbox **b = calloc(n, sizeof(*b));
    if (!b)
        return d->n_sandbox_buckets ? 0 : -CWS_E_NOMEM;
    free(d->sandbox_buckets);
    d->sandbox_buckets = b;
    d->n_sandbox_buckets = n;
    for (struct cwsd_sandbox *s = d->sandboxes; s; s = s->next) {
        struct cwsd_sandbox **head = bucket(d, s->id);
        s->hnext = *head;
        *head = s;
    }
    return 0;
}

struct cwsd_sandbox *cwsd_sandbox_track(struct cwsd *d, const char *id)
{
    struct cwsd_sandbox *s = cwsd_sandbox_find(d, id);
    if (s)
        return s;
    if (d->n_sandboxes >= d->n_sandbox_buckets && grow_index(d) < 0)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s || !(s->id = strdup(id))) {
        free(s);
        return NULL;
    }
    s->next = d->sandboxes;
    d->sandboxes = s;
    struct cwsd_sandbox **head = bucket(d, id);
    s->hnext = *head;
    *head = s;
    d->n_sandboxes++;
    return s;
}

void cwsd_sandbox_remember(struct cwsd *d, const Coreweave__Sandbox__V1__Sandbox *sb)
{
    struct cwsd_sandbox *s = cwsd_sandbox_find(d, sb->sandbox_id);
    if (!s)
        return;
    size_t len = coreweave__sandbox__v1__sandbox__get_packed_size(sb);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return;
    coreweave__sandbox__v1__sandbox__pack(sb, buf);
    free(s->cached);
    s->cached = buf;
    s->cached_len = len;
}

Coreweave__Sandbox__V1__Sandbox *cwsd_sandbox_cached(const struct cwsd_sandbox *s)
{
    if (!s->cached)
        return NULL;
    return coreweave__sandbox__v1__sandbox__unpack(NULL, s->cached_len, s->cached);
}

bool cwsd_sandbox_known_terminal(const struct cwsd_sandbox *s)
{
    Coreweave__Sandbox__V1__Sandbox *sb = cwsd_sandbox_cached(s);
    bool terminal = sb && sb->status && cwsd_state_is_terminal(sb->status->state);
    if (sb)
        coreweave__sandbox__v1__sandbox__free_unpacked(sb, NULL);
    return terminal;
}

static void entry_free(struct cwsd_sandbox *s)
{
    free(s->id);
    free(s->session);
    free(s->cached);
    free(s);
}

static void unlink_from(struct cwsd_sandbox **p, struct cwsd_sandbox *s, bool hash_chain)
{
    for (; *p; p = hash_chain ? &(*p)->hnext : &(*p)->next) {
        if (*p == s) {
            *p = hash_chain ? s->hnext : s->next;
            return;
        }
    }
}

void cwsd_sandbox_forget(struct cwsd *d, const char *id)
{
    struct cwsd_sandbox *s = cwsd_sandbox_find(d, id);
    if (!s)
        return;
    unlink_from(bucket(d, id), s, true);
    unlink_from(&d->sandboxes, s, false);
    d->n_sandboxes--;
    cwsd_registry_note_gone(d, s->id);
    entry_free(s);
}

size_t cwsd_sandbox_count(const struct cwsd *d)
{
    return d->n_sandboxes;
}

void cwsd_sandbox_table_free(struct cwsd *d)
{
    while (d->sandboxes) {
        struct cwsd_sandbox *s = d->sandboxes;
        d->sandboxes = s->next;
        entry_free(s);
    }
    free(d->sandbox_buckets);
    d->sandbox_buckets = NULL;
    d->n_sandbox_buckets = 0;
    d->n_sandboxes = 0;
}
