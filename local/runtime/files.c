/* Files of a running sandbox, read and written by the server itself: paths are resolved with
 * openat2(RESOLVE_IN_ROOT) from init's root (/proc/<init pid>/root), so that ".." and
 * symlinks, absolute or not, stay inside the sandbox, and magic links (/proc/N/root inside)
 * are refused. This avoids a round trip through init and streams nothing through it; the
 * server's own credentials apply (as root it can read what root inside could; unprivileged,
 * what the sandbox's root, which is our uid, could). */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt_internal.h"

static int file_error(struct cws_error *err, int e, const char *path)
{
    int r;
    switch (e) {
    case ENOENT:
    case ENOTDIR:
    case ELOOP:
        r = cws_error_set(err, CWS_E_NOT_FOUND, "%s: no such file", path);
        cws_error_set_reason(err, "CWSANDBOX_FILE_NOT_FOUND");
        return r;
    case EISDIR:
        r = cws_error_set(err, CWS_E_FAILED_PRECONDITION, "%s is a directory", path);
        cws_error_set_reason(err, "CWSANDBOX_FILE_IS_DIRECTORY");
        return r;
    case EACCES:
    case EPERM:
    case EROFS:
        r = cws_error_set(err, CWS_E_PERMISSION_DENIED, "%s: %s", path, strerror(e));
        cws_error_set_reason(err, "CWSANDBOX_FILE_PERMISSION_DENIED");
        return r;
    case EFBIG:
    case ENOSPC:
    case EDQUOT:
        return cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "%s: %s", path, strerror(e));
    default:
        return cws_error_set(err, CWS_E_IO, "%s: %s", path, strerror(e));
    }
}

/* init's root directory, checked to belong to the live init (the pid cannot be reused while
 * its pidfd says it runs). */
static int open_root(struct cws_rt_sandbox *sb, struct cws_error *err)
{
    if (!sb || sb->state != SB_RUNNING || sb->pidfd < 0)
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "sandbox is not running");
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/root", (int)sb->pid);
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && pidfd_send_signal(sb->pidfd, 0, NULL, 0) == 0)
        return fd;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (e == ESRCH || e == ENOENT)
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "sandbox is not running");
    return cws_error_set(err, CWS_E_INTERNAL, "open the sandbox's root: %s", strerror(e));
}

static int open_inside(int rootfd, const char *path, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
    return fd < 0 ? -errno : fd;
}

static int check_path(const char *path, struct cws_error *err)
{
    if (!path || !*path)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "the path is empty");
    return 0;
}

/* Only regular files: a FIFO would block, a device could be endless. */
static int check_regular(int fd, const char *path, struct stat *st, struct cws_error *err)
{
    if (fstat(fd, st) < 0)
        return file_error(err, errno, path);
    if (S_ISDIR(st->st_mode))
        return file_error(err, EISDIR, path);
    if (!S_ISREG(st->st_mode))
        return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "%s is not a regular file", path);
    return 0;
}

static int read_all(int fd, uint8_t *buf, size_t want, size_t *ret_len)
{
    size_t got = 0;
    while (got < want) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    *ret_len = got;
    return 0;
}

int cws_rt_file_read(struct cws_rt_sandbox *sb, const char *path, size_t max_len,
                     uint8_t **ret_data, size_t *ret_len, uint64_t *ret_size, struct cws_error *err)
{
    int r = check_path(path, err);
    if (r < 0)
        return r;
    int rootfd = open_root(sb, err);
    if (rootfd < 0)
        return rootfd;
    int fd = open_inside(rootfd, path, O_RDONLY, 0);
    close(rootfd);
    if (fd < 0)
        return file_error(err, -fd, path);
    struct stat st;
    uint8_t *buf = NULL;
    size_t len = 0;
    if ((r = check_regular(fd, path, &st, err)) < 0)
        goto out;
    if ((uint64_t)st.st_size > max_len) {
        if (ret_size)
            *ret_size = (uint64_t)st.st_size;
        r = cws_error_set(err, CWS_E_RESOURCE_EXHAUSTED, "%s is %lld bytes, more than %zu", path,
                          (long long)st.st_size, max_len);
        cws_error_set_reason(err, "CWSANDBOX_FILE_TOO_LARGE");
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
        goto out;
    }
    if ((r = read_all(fd, buf, (size_t)st.st_size, &len)) < 0) {
        r = file_error(err, -r, path);
        free(buf);
        goto out;
    }
    *ret_data = buf;
    *ret_len = len;
    if (ret_size)
        *ret_size = (uint64_t)st.st_size;
out:
    close(fd);
    return r;
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int cws_rt_file_write(struct cws_rt_sandbox *sb, const char *path, const uint8_t *data, size_t len,
                      struct cws_error *err)
{
    int r = check_path(path, err);
    if (r < 0)
        return r;
    int rootfd = open_root(sb, err);
    if (rootfd < 0)
        return rootfd;
    /* No O_TRUNC yet: only a regular file may be truncated. */
    int fd = open_inside(rootfd, path, O_WRONLY | O_CREAT, 0644);
    close(rootfd);
    if (fd < 0)
        return file_error(err, fd == -ENXIO ? ENODEV : -fd, path);
    struct stat st;
    if ((r = check_regular(fd, path, &st, err)) == 0) {
        if (ftruncate(fd, 0) < 0 || (r = write_all(fd, data, len)) < 0)
            r = file_error(err, r < 0 ? -r : errno, path);
    }
    close(fd);
    return r;
}
