/* Mount helpers that resolve targets inside the new root, so that a symlink in an image can
 * never turn a mount meant for the sandbox into one over a host path. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init.h"

int cws_mount(const char *src, const char *target, const char *type, unsigned long flags,
              const char *data, struct cws_error *err)
{
    if (mount(src, target, type, flags, data) < 0)
        return cws_error_set(err, errno == ENOENT ? CWS_E_NOT_FOUND : CWS_E_INTERNAL,
                             "mount %s on %s: %s",
                             type  ? type
                             : src ? src
                                   : "(remount)",
                             target, strerror(errno));
    return 0;
}

int cws_open_in_root(int rootfd, const char *path, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (unsigned)flags | O_CLOEXEC,
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    while (*path == '/')
        path++;
    int fd = (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
    return fd < 0 ? -errno : fd;
}

int cws_mount_in(int rootfd, const char *path, const char *src, const char *type,
                 unsigned long flags, const char *data, struct cws_error *err)
{
    int fd = cws_open_in_root(rootfd, path, O_PATH, 0);
    if (fd < 0)
        return cws_error_set(err, fd == -ENOENT ? CWS_E_NOT_FOUND : CWS_E_INTERNAL,
                             "open %s in the new root: %s", path, strerror(-fd));
    char target[64];
    snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
    int r = 0;
    if (mount(src, target, type, flags, data) < 0)
        r = cws_error_set(err, CWS_E_INTERNAL, "mount %s on %s: %s",
                          type  ? type
                          : src ? src
                                : "(remount)",
                          path, strerror(errno));
    close(fd);
    return r;
}

int cws_mount_readonly_in(int rootfd, const char *path, struct cws_error *err)
{
    int fd = cws_open_in_root(rootfd, path, O_PATH, 0);
    if (fd < 0)
        return cws_error_set(err, CWS_E_INTERNAL, "open %s in the new root: %s", path,
                             strerror(-fd));
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    int r = 0;
    if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
        r = cws_error_set(err, CWS_E_INTERNAL, "make %s read-only: %s", path, strerror(errno));
    close(fd);
    return r;
}
