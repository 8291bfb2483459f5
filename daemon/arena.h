/* A tiny allocation arena: everything allocated from it is freed at once. Used to build
 * protobuf-c messages field by field without tracking each string and array. */
#ifndef CWSD_ARENA_H
#define CWSD_ARENA_H

#include <stddef.h>

struct cwsd_arena {
    struct cwsd_arena_block *blocks;
};

/* Zeroed memory owned by the arena, or NULL when out of memory. */
void *cwsd_arena_alloc(struct cwsd_arena *a, size_t size);
/* A copy of len bytes plus a NUL, owned by the arena. */
char *cwsd_arena_strndup(struct cwsd_arena *a, const char *s, size_t len);
char *cwsd_arena_strdup(struct cwsd_arena *a, const char *s);
/* Free everything; the arena can be used again. Accepts NULL. */
void cwsd_arena_free(struct cwsd_arena *a);

#endif
