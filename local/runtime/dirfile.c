/* Whole-file reads and atomic writes relative to a directory fd; see dirfile.h. */
#include "dirfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A name no other writer uses at the same time: pid and a clock reading. */
static void temp_name(char *buf, size_t size, const char *name)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(buf, size, ".%s.%ld.%ld.tmp", name, (long)getpid(), (long)ts.tv_nsec);
}

int cws_dirfile_write(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                      bool exclusive, struct cws_error *err)
{
    char tmp[256];
    temp_name(tmp, sizeof(tmp), name);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "create %s: %s", tmp, strerror(errno));
    int r = 0;
    if (write_all(fd, data, len) < 0) {
        r = cws_error_set(err, CWS_E_IO, "write %s: %s", name, strerror(errno));
        close(fd);
        goto out;
    }
    close(fd);
    /* link() refuses to replace, which gives "first writer wins"; rename() replaces. */
    if (exclusive) {
        if (linkat(dirfd, tmp, dirfd, name, 0) < 0)
            r = errno == EEXIST
                    ? 1
                    : cws_error_set(err, CWS_E_IO, "link %s: %s", name, strerror(errno));
    } else if (renameat(dirfd, tmp, dirfd, name) < 0) {
        r = cws_error_set(err, CWS_E_IO, "rename %s: %s", name, strerror(errno));
    }
out:
    unlinkat(dirfd, tmp, 0);
    return r;
}

int cws_dirfile_read(int dirfd, const char *name, size_t max, char **ret_data, size_t *ret_len,
                     struct cws_error *err)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return cws_error_set(err, CWS_E_NOT_FOUND, "%s does not exist", name);
        return cws_error_set(err, CWS_E_IO, "open %s: %s", name, strerror(errno));
    }
    int r;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        r = cws_error_set(err, CWS_E_IO, "stat %s: %s", name, strerror(errno));
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        r = cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "%s is larger than %zu bytes", name, max);
        goto out;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = cws_error_set(err, CWS_E_IO, "read %s: %s", name, strerror(errno));
            free(buf);
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    *ret_data = buf;
    *ret_len = got;
    r = 0;
out:
    close(fd);
    return r;
}
