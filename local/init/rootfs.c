/* The sandbox's root filesystem: an overlay whose upper layer is the sandbox's own directory.
 *
 * One overlay of the lower directory works as root, and unprivileged for an image directory.
 * Unprivileged on the host's root it does not ("failed to clone lowerpath": / carries
 * locked submounts), so the root is then a tmpfs holding one overlay per top-level
 * directory, a read-only recursive bind where even that is refused, and copies of the
 * top-level symlinks.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cws_error.h"
#include "init.h"
#include "init_proto.h"
#include "log.h"

/* Top-level directories that get their own filesystem (kernfs.c, hide.c), never the host's. */
static const char *const own_mounts[] = {"proc", "sys", "dev", "tmp", "run", NULL};
/* Top-level host directories left out when the host's root is the lower layer. */
static const char *const host_private[] = {"home", "root", "mnt", "media", "lost+found", NULL};

static bool in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(name, *list) == 0)
            return true;
    return false;
}

static int mkdir_ok(const char *path, mode_t mode, struct cws_error *err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return cws_error_set(err, CWS_E_IO, "mkdir %s: %s", path, strerror(errno));
    return 0;
}

/* Overlay options naming every layer through /proc/self/fd, so that no path needs escaping
 * and the length of the state directory does not matter. */
static int mount_overlay(const char *lower, const char *upper, const char *work, const char *target,
                         bool userns, struct cws_error *err)
{
    int fds[3] = {-1, -1, -1};
    const char *paths[3] = {lower, upper, work};
    int r = 0;
    for (int i = 0; i < 3; i++) {
        fds[i] = open(paths[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fds[i] < 0) {
            r = cws_error_set(err, CWS_E_IO, "open %s: %s", paths[i], strerror(errno));
            goto out;
        }
    }
    char opts[256];
    snprintf(opts, sizeof(opts),
             "lowerdir=/proc/self/fd/%d,upperdir=/proc/self/fd/%d,workdir=/proc/self/fd/%d%s",
             fds[0], fds[1], fds[2], userns ? ",userxattr" : "");
    r = cws_mount("overlay", target, "overlay", 0, opts, err);
out:
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return r;
}

/* One top-level directory of the host in the unprivileged layout. */
static int add_host_dir(const char *name, mode_t mode, struct cws_error *err)
{
    char src[PATH_MAX], target[PATH_MAX], upper[PATH_MAX], work[PATH_MAX];
    snprintf(src, sizeof(src), "/%s", name);
    snprintf(target, sizeof(target), CWS_SB_ROOT "/%s", name);
    snprintf(upper, sizeof(upper), CWS_SB_UPPER "/%s", name);
    snprintf(work, sizeof(work), CWS_SB_WORK "/%s", name);
    int r;
    if ((r = mkdir_ok(target, mode & 07777, err)) < 0)
        return r;
    if (in_list(name, own_mounts) || in_list(name, host_private))
        return 0;
    if ((r = mkdir_ok(upper, 0755, err)) < 0 || (r = mkdir_ok(work, 0700, err)) < 0)
        return r;
    struct cws_error oerr;
    if (mount_overlay(src, upper, work, target, true, &oerr) == 0)
        return 0;
    /* Locked submounts below it: show it read-only as it is. */
    cws_log(CWS_LOG_DEBUG, "%s; binding /%s read-only instead", oerr.message, name);
    if ((r = cws_mount(src, target, NULL, MS_BIND | MS_REC, NULL, err)) < 0)
        return r;
    int rootfd = open(CWS_SB_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return cws_error_set(err, CWS_E_IO, "open root: %s", strerror(errno));
    r = cws_mount_readonly_in(rootfd, name, err);
    close(rootfd);
    return r;
}

static int add_host_file(const char *name, struct cws_error *err)
{
    char src[PATH_MAX], target[PATH_MAX];
    snprintf(src, sizeof(src), "/%s", name);
    snprintf(target, sizeof(target), CWS_SB_ROOT "/%s", name);
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "create %s: %s", target, strerror(errno));
    close(fd);
    int r = cws_mount(src, target, NULL, MS_BIND, NULL, err);
    if (r == 0)
        r = cws_mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL, err);
    return r;
}

static int add_host_symlink(const char *name, struct cws_error *err)
{
    char src[PATH_MAX], target[PATH_MAX], link[PATH_MAX];
    snprintf(src, sizeof(src), "/%s", name);
    snprintf(target, sizeof(target), CWS_SB_ROOT "/%s", name);
    ssize_t n = readlink(src, link, sizeof(link) - 1);
    if (n < 0)
        return cws_error_set(err, CWS_E_IO, "readlink %s: %s", src, strerror(errno));
    link[n] = '\0';
    if (symlink(link, target) < 0 && errno != EEXIST)
        return cws_error_set(err, CWS_E_IO, "symlink %s: %s", target, strerror(errno));
    return 0;
}

static int add_host_entry(const char *name, struct cws_error *err)
{
    char src[PATH_MAX];
    struct stat st;
    snprintf(src, sizeof(src), "/%s", name);
    if (lstat(src, &st) < 0)
        return 0; /* gone meanwhile */
    if (S_ISDIR(st.st_mode))
        return add_host_dir(name, st.st_mode, err);
    if (S_ISLNK(st.st_mode))
        return add_host_symlink(name, err);
    if (S_ISREG(st.st_mode))
        return add_host_file(name, err);
    return 0; /* sockets and devices at the top level are not carried over */
}

/* The unprivileged layout over the host's root. */
static int build_per_directory(struct cws_error *err)
{
    int r = cws_mount("tmpfs", CWS_SB_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", err);
    if (r < 0)
        return r;
    DIR *d = opendir("/");
    if (!d)
        return cws_error_set(err, CWS_E_IO, "opendir /: %s", strerror(errno));
    struct dirent *e;
    while (r == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        r = add_host_entry(e->d_name, err);
    }
    closedir(d);
    return r;
}

static int write_files(const struct cws_init_spec *spec, struct cws_error *err);

/* Files every sandbox gets in /etc: its own name in hosts, and the slirp4netns resolver. */
static void write_etc_files(const struct cws_init_spec *spec)
{
    char hosts[512];
    int n = snprintf(hosts, sizeof(hosts),
                     "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                     "127.0.1.1\t%s\n",
                     spec->id);
    struct cws_init_file files[] = {
        {"/etc/hosts", (uint8_t *)hosts, n > 0 ? (size_t)n : 0},
        {"/etc/resolv.conf", (uint8_t *)"nameserver 10.0.2.3\n", 20},
    };
    struct cws_init_spec one = {.files = files, .n_files = spec->egress ? 2 : 1};
    struct cws_error err;
    if (write_files(&one, &err) < 0)
        cws_log(CWS_LOG_DEBUG, "%s", err.message);
}

int cws_rootfs_build(const struct cws_init_spec *spec, struct cws_error *err)
{
    int r;
    /* Nothing mounted from here on may propagate back to the host. */
    if ((r = cws_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL, err)) < 0)
        return r;
    if ((r = mkdir_ok(CWS_SB_UPPER, 0755, err)) < 0 || (r = mkdir_ok(CWS_SB_WORK, 0700, err)) < 0 ||
        (r = mkdir_ok(CWS_SB_ROOT, 0755, err)) < 0)
        return r;
    if (spec->userns && spec->host_root)
        r = build_per_directory(err);
    else
        r = mount_overlay(spec->lower, CWS_SB_UPPER, CWS_SB_WORK, CWS_SB_ROOT, spec->userns, err);
    if (r < 0)
        return r;
    int rootfd = open(CWS_SB_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return cws_error_set(err, CWS_E_IO, "open %s: %s", CWS_SB_ROOT, strerror(errno));
    r = cws_kernfs_setup(rootfd, spec->userns, err);
    if (r == 0)
        r = cws_hide_setup(rootfd, spec, err);
    close(rootfd);
    return r;
}

int cws_rootfs_enter(struct cws_error *err)
{
    /* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only
     * the sandbox's tree (the runc way, no directory for the old root needed). */
    if (chdir(CWS_SB_ROOT) < 0)
        return cws_error_set(err, CWS_E_IO, "chdir %s: %s", CWS_SB_ROOT, strerror(errno));
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return cws_error_set(err, CWS_E_INTERNAL, "pivot_root: %s", strerror(errno));
    if (umount2(".", MNT_DETACH) < 0)
        return cws_error_set(err, CWS_E_INTERNAL, "detach the old root: %s", strerror(errno));
    if (chdir("/") < 0)
        return cws_error_set(err, CWS_E_IO, "chdir /: %s", strerror(errno));
    return 0;
}

/* mkdir -p of the directories above path. */
static int make_parents(const char *path, struct cws_error *err)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "path too long: %s", path);
    for (char *p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return cws_error_set(err, CWS_E_IO, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    return 0;
}

static int write_file(const struct cws_init_file *f, struct cws_error *err)
{
    int r = make_parents(f->path, err);
    if (r < 0)
        return r;
    int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && (errno == EACCES || errno == EPERM || errno == ELOOP)) {
        /* A host file we may not write (its owner is not mapped here) or a symlink: the
         * directory is ours, so replace the entry instead. */
        unlink(f->path);
        fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    }
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "write %s: %s", f->path, strerror(errno));
    size_t done = 0;
    while (done < f->len) {
        ssize_t n = write(fd, f->data + done, f->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = cws_error_set(err, CWS_E_IO, "write %s: %s", f->path, strerror(errno));
            break;
        }
        done += (size_t)n;
    }
    close(fd);
    return r;
}

static int write_files(const struct cws_init_spec *spec, struct cws_error *err)
{
    for (size_t i = 0; i < spec->n_files; i++) {
        int r = write_file(&spec->files[i], err);
        if (r < 0)
            return r;
    }
    return 0;
}

int cws_rootfs_populate(const struct cws_init_spec *spec, struct cws_error *err)
{
    write_etc_files(spec);
    return write_files(spec, err);
}
