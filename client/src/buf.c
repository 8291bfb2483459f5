/* A growable byte queue: the output queue of a connection, held stdin, pull-reader data. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

size_t cwsc_buf_size(const struct cwsc_buf *b)
{
    return b->len - b->off;
}

const char *cwsc_buf_head(const struct cwsc_buf *b)
{
    return b->data + b->off;
}

/* Make room for n more bytes, first by moving the unconsumed bytes to the front. */
static int buf_reserve(struct cwsc_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= n)
            return 0;
    }
    if (n > SIZE_MAX / 2 - b->len)
        return -CWS_E_NOMEM;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -CWS_E_NOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int cwsc_buf_append(struct cwsc_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int r = buf_reserve(b, n);
    if (r < 0)
        return r;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void cwsc_buf_consume(struct cwsc_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void cwsc_buf_truncate(struct cwsc_buf *b, size_t size)
{
    if (size < cwsc_buf_size(b))
        b->len = b->off + size;
}

void *cwsc_buf_steal(struct cwsc_buf *b, size_t *ret_len)
{
    size_t n = cwsc_buf_size(b);
    void *p = NULL;
    if (n == 0) {
        *ret_len = 0;
        return NULL;
    }
    if (b->off == 0) {
        p = b->data;
    } else {
        memmove(b->data, b->data + b->off, n);
        p = b->data;
    }
    *ret_len = n;
    memset(b, 0, sizeof(*b));
    return p;
}

void cwsc_buf_free(struct cwsc_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

int cwsc_buf_pack_write(void *data, const char *p, size_t n)
{
    return cwsc_buf_append(data, p, n) == 0 ? 0 : -1;
}
