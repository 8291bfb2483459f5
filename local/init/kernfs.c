/* The kernel filesystems of a sandbox: a fresh /proc of its PID namespace with the usual
 * container masks (it matters as root, where no user namespace stands between the sandbox and
 * the host's /proc/sys or /proc/sysrq-trigger), a minimal /dev, and /sys read-only. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "init.h"
#include "log.h"

static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty", NULL};
static const char *const proc_readonly[] = {
    "proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus", "proc/fs", NULL};
static const char *const proc_masked_files[] = {
    "proc/kcore", "proc/keys", "proc/timer_list", "proc/sched_debug", "proc/latency_stats", NULL};
static const char *const proc_masked_dirs[] = {"proc/acpi", "proc/scsi", "proc/asound", NULL};

static int ensure_dir(int rootfd, const char *name, mode_t mode, struct cws_error *err)
{
    if (mkdirat(rootfd, name, mode) < 0 && errno != EEXIST)
        return cws_error_set(err, CWS_E_IO, "mkdir /%s: %s", name, strerror(errno));
    return 0;
}

static int bind_self_readonly(int rootfd, const char *path, struct cws_error *err)
{
    int fd = cws_open_in_root(rootfd, path, O_PATH, 0);
    if (fd == -ENOENT)
        return 0;
    if (fd < 0)
        return cws_error_set(err, CWS_E_INTERNAL, "open /%s: %s", path, strerror(-fd));
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
    int r = cws_mount(self, self, NULL, MS_BIND | MS_REC, NULL, err);
    close(fd);
    /* Reopen: the old fd still names the mount underneath the new bind. */
    return r < 0 ? r : cws_mount_readonly_in(rootfd, path, err);
}

static int mask_proc(int rootfd, struct cws_error *err)
{
    int r;
    for (const char *const *p = proc_readonly; *p; p++)
        if ((r = bind_self_readonly(rootfd, *p, err)) < 0)
            return r;
    for (const char *const *p = proc_masked_files; *p; p++) {
        r = cws_mount_in(rootfd, *p, "/dev/null", NULL, MS_BIND, NULL, err);
        if (r < 0 && r != -CWS_E_NOT_FOUND)
            return r;
    }
    for (const char *const *p = proc_masked_dirs; *p; p++) {
        r = cws_mount_in(rootfd, *p, "tmpfs", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=0",
                         err);
        if (r < 0 && r != -CWS_E_NOT_FOUND)
            return r;
    }
    return 0;
}

static int setup_proc(int rootfd, struct cws_error *err)
{
    int r = ensure_dir(rootfd, "proc", 0555, err);
    if (r == 0)
        r = cws_mount_in(rootfd, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
                         err);
    return r < 0 ? r : mask_proc(rootfd, err);
}

static int add_dev_node(int rootfd, int devfd, const char *name, struct cws_error *err)
{
    int fd = openat(devfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "create /dev/%s: %s", name, strerror(errno));
    close(fd);
    char src[64], dst[64];
    snprintf(src, sizeof(src), "/dev/%s", name);
    snprintf(dst, sizeof(dst), "dev/%s", name);
    /* A bind of the host's node works in a user namespace too, where mknod does not. */
    return cws_mount_in(rootfd, dst, src, NULL, MS_BIND, NULL, err);
}

static int add_dev_links(int devfd, struct cws_error *err)
{
    static const char *const links[][2] = {
        {"ptmx", "pts/ptmx"},          {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"},
        {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
    };
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
        if (symlinkat(links[i][1], devfd, links[i][0]) < 0)
            return cws_error_set(err, CWS_E_IO, "symlink /dev/%s: %s", links[i][0],
                                 strerror(errno));
    return 0;
}

static int setup_dev(int rootfd, bool userns, struct cws_error *err)
{
    int r = ensure_dir(rootfd, "dev", 0755, err);
    if (r == 0)
        r = cws_mount_in(rootfd, "dev", "tmpfs", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_STRICTATIME,
                         "mode=0755,size=65536", err);
    if (r < 0)
        return r;
    int devfd = cws_open_in_root(rootfd, "dev", O_PATH | O_DIRECTORY, 0);
    if (devfd < 0)
        return cws_error_set(err, CWS_E_IO, "open /dev: %s", strerror(-devfd));
    for (const char *const *n = dev_nodes; r == 0 && *n; n++)
        r = add_dev_node(rootfd, devfd, *n, err);
    if (r == 0 && (mkdirat(devfd, "pts", 0755) < 0 || mkdirat(devfd, "shm", 01777) < 0))
        r = cws_error_set(err, CWS_E_IO, "mkdir in /dev: %s", strerror(errno));
    /* gid 5 (tty) exists only when the host's groups are mapped, i.e. as root. */
    if (r == 0)
        r = cws_mount_in(rootfd, "dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
                         userns ? "newinstance,ptmxmode=0666,mode=0620"
                                : "newinstance,ptmxmode=0666,mode=0620,gid=5",
                         err);
    if (r == 0)
        r = cws_mount_in(rootfd, "dev/shm", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777",
                         err);
    if (r == 0)
        r = add_dev_links(devfd, err);
    close(devfd);
    return r;
}

/* Best effort: programs run without /sys, and mounting it needs a network namespace the
 * sandbox owns. */
static void setup_sys(int rootfd)
{
    struct cws_error err;
    if (ensure_dir(rootfd, "sys", 0555, &err) < 0 ||
        cws_mount_in(rootfd, "sys", "sysfs", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     NULL, &err) < 0) {
        cws_log(CWS_LOG_DEBUG, "no /sys: %s", err.message);
        return;
    }
    if (cws_mount_in(rootfd, "sys/firmware", "tmpfs", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
                     "size=0", &err) < 0)
        cws_log(CWS_LOG_DEBUG, "%s", err.message);
}

int cws_kernfs_setup(int rootfd, bool userns, struct cws_error *err)
{
    int r = setup_proc(rootfd, err);
    if (r == 0)
        r = setup_dev(rootfd, userns, err);
    if (r == 0)
        setup_sys(rootfd);
    return r;
}
