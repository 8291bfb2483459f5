/* The log record format: writer (init) and reader (runtime); see logfile.h. */
#include "logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_BLOCK (256u * 1024)

int cws_logfile_create(int dirfd, const char *name, struct cws_error *err)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return 0;
        return cws_error_set(err, CWS_E_IO, "create %s: %s", name, strerror(errno));
    }
    ssize_t n = write(fd, CWS_LOGFILE_MAGIC, CWS_LOGFILE_MAGIC_LEN);
    int saved = errno;
    close(fd);
    if (n != CWS_LOGFILE_MAGIC_LEN)
        return cws_error_set(err, CWS_E_IO, "write %s: %s", name,
                             n < 0 ? strerror(saved) : "short write");
    return 0;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int append_record(int fd, int64_t time_ns, int stream, const uint8_t *data, size_t len)
{
    uint8_t head[CWS_LOGFILE_HEADER_LEN] = {0};
    put_le(head, (uint64_t)time_ns, 8);
    put_le(head + 8, len, 4);
    head[12] = (uint8_t)stream;
    struct iovec iov[2] = {{head, sizeof(head)}, {(void *)data, len}};
    ssize_t want = (ssize_t)(sizeof(head) + len);
    for (;;) {
        ssize_t n = writev(fd, iov, 2);
        if (n < 0 && errno == EINTR)
            continue;
        /* A short write (disk full) leaves a partial record that readers ignore. */
        return n == want ? 0 : -CWS_E_IO;
    }
}

int cws_logfile_append(int fd, int64_t time_ns, int stream, const void *data, size_t len)
{
    const uint8_t *p = data;
    do {
        size_t chunk = len < CWS_LOGFILE_RECORD_MAX ? len : CWS_LOGFILE_RECORD_MAX;
        int r = append_record(fd, time_ns, stream, p, chunk);
        if (r < 0)
            return r;
        p += chunk;
        len -= chunk;
    } while (len > 0);
    return 0;
}

/* A window on the file: buf holds bytes [pos, pos + have) of it. */
struct reader {
    int fd;
    uint8_t *buf;
    size_t cap;
    off_t pos;
    size_t start; /* parse position in buf */
    size_t have;
};

/* Make at least need bytes available at r->start; 0 when the file ends first. */
static int reader_fill(struct reader *r, size_t need)
{
    if (r->have - r->start >= need)
        return 1;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->have - r->start);
        r->pos += (off_t)r->start;
        r->have -= r->start;
        r->start = 0;
    }
    if (need > r->cap) {
        uint8_t *nb = realloc(r->buf, need);
        if (!nb)
            return -CWS_E_NOMEM;
        r->buf = nb;
        r->cap = need;
    }
    while (r->have < need) {
        ssize_t n = pread(r->fd, r->buf + r->have, r->cap - r->have, r->pos + (off_t)r->have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -CWS_E_IO;
        if (n == 0)
            return 0;
        r->have += (size_t)n;
    }
    return 1;
}

int cws_logfile_read(int fd, uint64_t from, int (*cb)(const struct cws_logfile_entry *e, void *ud),
                     void *ud, uint64_t *ret_next, struct cws_error *err)
{
    struct reader rd = {.fd = fd, .cap = READ_BLOCK};
    uint64_t offset = 0, next = from;
    int r;
    rd.buf = malloc(rd.cap);
    if (!rd.buf)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    r = reader_fill(&rd, CWS_LOGFILE_MAGIC_LEN);
    if (r <= 0)
        goto done; /* an empty log: nothing recorded yet */
    if (memcmp(rd.buf, CWS_LOGFILE_MAGIC, CWS_LOGFILE_MAGIC_LEN) != 0) {
        r = cws_error_set(err, CWS_E_DATA_LOSS, "the log is not in cwsandbox log format");
        goto out;
    }
    rd.start = CWS_LOGFILE_MAGIC_LEN;
    for (;;) {
        r = reader_fill(&rd, CWS_LOGFILE_HEADER_LEN);
        if (r <= 0)
            break;
        const uint8_t *h = rd.buf + rd.start;
        size_t len = (size_t)get_le(h + 8, 4);
        if (len > CWS_LOGFILE_RECORD_MAX) {
            r = cws_error_set(err, CWS_E_DATA_LOSS, "corrupt log record at offset %llu",
                              (unsigned long long)offset);
            goto out;
        }
        r = reader_fill(&rd, CWS_LOGFILE_HEADER_LEN + len);
        if (r <= 0)
            break; /* a record still being written */
        h = rd.buf + rd.start;
        struct cws_logfile_entry e = {
            .time_ns = (int64_t)get_le(h, 8),
            .fd = h[12],
            .data = h + CWS_LOGFILE_HEADER_LEN,
            .len = len,
            .offset = offset,
        };
        rd.start += CWS_LOGFILE_HEADER_LEN + len;
        offset += len;
        if (e.offset < from)
            continue;
        next = offset;
        if (cb(&e, ud) != 0)
            break;
    }
done:
    if (r < 0 && r != -CWS_E_NOMEM)
        r = cws_error_set(err, CWS_E_IO, "read log: %s", strerror(errno));
    else if (r < 0)
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
    else
        r = 0;
out:
    free(rd.buf);
    if (r == 0)
        *ret_next = next;
    return r;
}
