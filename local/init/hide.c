/* What a sandbox must not see of the host: fresh /tmp, /run and /var/tmp always; with the
 * host's root as the lower layer also home directories, host mount points, files holding
 * credentials and the server's own directories (spec->hidden), each behind an empty tmpfs
 * (directories) or /dev/null (files). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "init.h"
#include "log.h"

struct fresh_dir {
    const char *path;
    const char *opts;
};

static const struct fresh_dir always_fresh[] = {
    {"tmp", "mode=1777"},
    {"run", "mode=0755"},
    {"var/tmp", "mode=1777"},
};

static const struct fresh_dir host_fresh[] = {
    {"home", "mode=0755"},
    {"root", "mode=0700"},
    {"mnt", "mode=0755"},
    {"media", "mode=0755"},
    {"lost+found", "mode=0700"},
    /* Where hosts keep keys, password hashes, mail, logs and other users' secrets. */
    {"etc/ssh", "mode=0755"},
    {"etc/ssl/private", "mode=0700"},
    {"var/backups", "mode=0755"},
    {"var/log", "mode=0755"},
    {"var/mail", "mode=0755"},
    {"var/spool", "mode=0755"},
    {"var/lib/sss", "mode=0755"},
    {"var/lib/docker", "mode=0700"},
    {"var/lib/containers", "mode=0700"},
    {"var/lib/sudo", "mode=0700"},
};

static const char *const host_masked_files[] = {
    "etc/shadow", "etc/shadow-", "etc/gshadow", "etc/gshadow-", "etc/security/opasswd", NULL,
};

/* A tmpfs over path if path is a directory inside the root; nothing when it is absent. */
static int fresh_tmpfs(int rootfd, const char *path, const char *opts, struct cws_error *err)
{
    int r = cws_mount_in(rootfd, path, "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, opts, err);
    return r == -CWS_E_NOT_FOUND ? 0 : r;
}

static int mask_file(int rootfd, const char *path, struct cws_error *err)
{
    int r = cws_mount_in(rootfd, path, "/dev/null", NULL, MS_BIND, NULL, err);
    return r == -CWS_E_NOT_FOUND ? 0 : r;
}

/* A host path of the server's: hide whatever it is, as the host sees it. */
static int hide_host_path(int rootfd, const char *path, struct cws_error *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return 0;
    if (S_ISDIR(st.st_mode))
        return fresh_tmpfs(rootfd, path, "mode=0755,size=1m", err);
    return mask_file(rootfd, path, err);
}

int cws_hide_setup(int rootfd, const struct cws_init_spec *spec, struct cws_error *err)
{
    int r;
    for (size_t i = 0; i < sizeof(always_fresh) / sizeof(always_fresh[0]); i++) {
        /* An image may lack them; the host's root has them. */
        if (strchr(always_fresh[i].path, '/') == NULL &&
            mkdirat(rootfd, always_fresh[i].path, 0755) < 0 && errno != EEXIST)
            return cws_error_set(err, CWS_E_IO, "mkdir /%s: %s", always_fresh[i].path,
                                 strerror(errno));
        if ((r = fresh_tmpfs(rootfd, always_fresh[i].path, always_fresh[i].opts, err)) < 0)
            return r;
    }
    if (!spec->host_root)
        return 0;
    for (size_t i = 0; i < sizeof(host_fresh) / sizeof(host_fresh[0]); i++)
        if ((r = fresh_tmpfs(rootfd, host_fresh[i].path, host_fresh[i].opts, err)) < 0)
            return r;
    for (const char *const *p = host_masked_files; *p; p++)
        if ((r = mask_file(rootfd, *p, err)) < 0)
            return r;
    for (char **p = spec->hidden; p && *p; p++)
        if ((r = hide_host_path(rootfd, *p, err)) < 0)
            return r;
    return 0;
}
