/* Allocation arena; see arena.h. One malloc per allocation, chained for the final free:
 * messages are small and short-lived, so simplicity wins over packing. */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

struct cwsd_arena_block {
    struct cwsd_arena_block *next;
    max_align_t data[];
};

void *cwsd_arena_alloc(struct cwsd_arena *a, size_t size)
{
    struct cwsd_arena_block *b = calloc(1, sizeof(*b) + (size ? size : 1));
    if (!b)
        return NULL;
    b->next = a->blocks;
    a->blocks = b;
    return b->data;
}

char *cwsd_arena_strndup(struct cwsd_arena *a, const char *s, size_t len)
{
    char *copy = cwsd_arena_alloc(a, len + 1);
    if (copy)
        memcpy(copy, s, len);
    return copy;
}

char *cwsd_arena_strdup(struct cwsd_arena *a, const char *s)
{
    return cwsd_arena_strndup(a, s, strlen(s));
}

void cwsd_arena_free(struct cwsd_arena *a)
{
    if (!a)
        return;
    while (a->blocks) {
        struct cwsd_arena_block *b = a->blocks;
        a->blocks = b->next;
        free(b);
    }
}
