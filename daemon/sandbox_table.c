/* The daemon's table of sandboxes; see sandbox_table.h. A list: a user has tens of
 * sandboxes, not millions, and the list keeps the code obvious. */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "sandbox_table.h"

struct cwsd_sandbox *cwsd_sandbox_find(struct cwsd *d, const char *id)
{
    for (struct cwsd_sandbox *s = d->sandboxes; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

struct cwsd_sandbox *cwsd_sandbox_track(struct cwsd *d, const char *id)
{
    struct cwsd_sandbox *s = cwsd_sandbox_find(d, id);
    if (s)
        return s;
    s = calloc(1, sizeof(*s));
    if (!s || !(s->id = strdup(id))) {
        free(s);
        return NULL;
    }
    s->next = d->sandboxes;
    d->sandboxes = s;
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

static void entry_free(struct cwsd_sandbox *s)
{
    free(s->id);
    free(s->owner);
    free(s->session);
    free(s->cached);
    free(s);
}

void cwsd_sandbox_forget(struct cwsd *d, const char *id)
{
    for (struct cwsd_sandbox **p = &d->sandboxes; *p; p = &(*p)->next) {
        if (strcmp((*p)->id, id) == 0) {
            struct cwsd_sandbox *s = *p;
            *p = s->next;
            d->n_sandboxes--;
            entry_free(s);
            return;
        }
    }
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
    d->n_sandboxes = 0;
}
