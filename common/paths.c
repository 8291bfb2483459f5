/* Path lookups (environment, XDG, passwd) and the private-directory checks. */
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PRIVATE_DIR_MODE 0700

/* Largest getpwuid_r buffer tried before giving up. */
#define PASSWD_BUF_MAX (1024 * 1024)

/* A non-empty environment value, or NULL. */
static const char *env_nonempty(const char *name)
{
    const char *value = getenv(name);
    return value && *value ? value : NULL;
}

/* An XDG base directory variable, or NULL when unset, empty or relative (invalid per spec). */
static const char *env_xdg_dir(const char *name)
{
    const char *value = getenv(name);
    return value && value[0] == '/' ? value : NULL;
}

/* base + "/" + rest without doubling base's trailing slashes. The caller frees *ret_path. */
static int path_join(const char *base, const char *rest, char **ret_path, struct cws_error *err)
{
    size_t len = strlen(base);
    char *path;

    while (len > 0 && base[len - 1] == '/')
        len--;
    if (asprintf(&path, "%.*s/%s", (int)len, base, rest) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    *ret_path = path;
    return 0;
}

static int string_dup(const char *s, char **ret_copy, struct cws_error *err)
{
    char *copy = strdup(s);

    if (!copy)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    *ret_copy = copy;
    return 0;
}

/* The passwd entry's home directory of the real uid. The caller frees *ret_home. */
static int passwd_home(char **ret_home, struct cws_error *err)
{
    uid_t uid = getuid();
    size_t size = 1024;
    struct passwd pw, *found = NULL;
    char *buf = NULL;
    int r;

    for (;;) {
        char *bigger = realloc(buf, size);
        if (!bigger) {
            r = cws_error_set(err, CWS_E_NOMEM, NULL);
            goto out;
        }
        buf = bigger;
        r = getpwuid_r(uid, &pw, buf, size, &found);
        if (r != ERANGE || size >= PASSWD_BUF_MAX)
            break;
        size *= 2;
    }
    if (r != 0) {
        r = cws_error_set(err, CWS_E_FAILED_PRECONDITION,
                          "cannot find a home directory: HOME is unset and the passwd entry "
                          "of uid %u cannot be read: %s",
                          (unsigned)uid, strerror(r));
        goto out;
    }
    if (!found || !pw.pw_dir || !pw.pw_dir[0]) {
        r = cws_error_set(err, CWS_E_FAILED_PRECONDITION,
                          "cannot find a home directory: HOME is unset and uid %u has no "
                          "passwd entry with one (set HOME or XDG_*_HOME)",
                          (unsigned)uid);
        goto out;
    }
    r = string_dup(pw.pw_dir, ret_home, err);
out:
    free(buf);
    return r;
}

/* $HOME, else the passwd entry's home. The caller frees *ret_home. */
static int home_dir(char **ret_home, struct cws_error *err)
{
    const char *home = env_nonempty("HOME");

    if (home)
        return string_dup(home, ret_home, err);
    return passwd_home(ret_home, err);
}

/* $xdg_var/rest when the variable is valid, else $HOME/home_rest. The caller frees. */
static int xdg_or_home_path(const char *xdg_var, const char *rest, const char *home_rest,
                            char **ret_path, struct cws_error *err)
{
    const char *xdg = env_xdg_dir(xdg_var);
    char *home = NULL;
    int r;

    if (xdg)
        return path_join(xdg, rest, ret_path, err);
    r = home_dir(&home, err);
    if (r < 0)
        return r;
    r = path_join(home, home_rest, ret_path, err);
    free(home);
    return r;
}

int cws_runtime_dir(char **ret_path, struct cws_error *err)
{
    const char *xdg = env_xdg_dir("XDG_RUNTIME_DIR");
    char *path;

    if (xdg)
        return path_join(xdg, "cwsandbox", ret_path, err);
    if (asprintf(&path, "/tmp/cwsandbox-%u", (unsigned)getuid()) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    *ret_path = path;
    return 0;
}

/* <runtime dir>/name. The caller frees *ret_path. */
static int runtime_file(const char *name, char **ret_path, struct cws_error *err)
{
    char *dir;
    int r = cws_runtime_dir(&dir, err);

    if (r < 0)
        return r;
    r = path_join(dir, name, ret_path, err);
    free(dir);
    return r;
}

int cws_socket_path(char **ret_path, struct cws_error *err)
{
    const char *explicit_path = env_nonempty("CWSANDBOX_SOCKET");

    if (explicit_path)
        return string_dup(explicit_path, ret_path, err);
    return runtime_file("cwsandboxd.sock", ret_path, err);
}

int cws_local_socket_path(char **ret_path, struct cws_error *err)
{
    return runtime_file("local.sock", ret_path, err);
}

int cws_state_dir(char **ret_path, struct cws_error *err)
{
    return xdg_or_home_path("XDG_STATE_HOME", "cwsandbox", ".local/state/cwsandbox", ret_path, err);
}

int cws_config_path(char **ret_path, struct cws_error *err)
{
    return xdg_or_home_path("XDG_CONFIG_HOME", "cwsandbox/config", ".config/cwsandbox/config",
                            ret_path, err);
}

/* mkdir gave 0700 minus the umask: put back the owner bits it took (else a umask such as
 * 0277 leaves a directory we cannot use), without following a symlink that may have
 * replaced it. glibc needs /proc for this; without it, EOPNOTSUPP leaves the job to
 * fix_created_mode(), and a symlink is refused by the checks that follow. */
static int restore_created_mode(const char *dir, struct cws_error *err)
{
    if (fchmodat(AT_FDCWD, dir, PRIVATE_DIR_MODE, AT_SYMLINK_NOFOLLOW) == 0 || errno == EOPNOTSUPP)
        return 0;
    return cws_error_set(err, CWS_E_IO, "cannot set mode 0700 on %s: %s", dir, strerror(errno));
}

/* mkdir with mode exactly 0700; an existing entry is fine (the caller checks what it is). */
static int make_dir(const char *dir, bool *ret_created, struct cws_error *err)
{
    if (mkdir(dir, PRIVATE_DIR_MODE) == 0) {
        *ret_created = true;
        return restore_created_mode(dir, err);
    }
    if (errno != EEXIST)
        return cws_error_set(err, CWS_E_IO, "cannot create directory %s: %s", dir, strerror(errno));
    *ret_created = false;
    return 0;
}

static const char *file_kind(mode_t mode)
{
    if (S_ISLNK(mode))
        return "a symbolic link";
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    return "an unknown kind of file";
}

static int check_is_directory(const char *dir, const struct stat *st, struct cws_error *err)
{
    if (S_ISDIR(st->st_mode))
        return 0;
    return cws_error_set(err, CWS_E_FAILED_PRECONDITION, "%s is %s, not a directory (remove it)",
                         dir, file_kind(st->st_mode));
}

static int check_owner(const char *dir, const struct stat *st, struct cws_error *err)
{
    uid_t uid = geteuid();

    if (st->st_uid == uid)
        return 0;
    return cws_error_set(err, CWS_E_PERMISSION_DENIED, "%s is owned by uid %u, not by you (uid %u)",
                         dir, (unsigned)st->st_uid, (unsigned)uid);
}

static int check_private_mode(const char *dir, const struct stat *st, struct cws_error *err)
{
    if ((st->st_mode & (S_IRWXG | S_IRWXO)) == 0)
        return 0;
    return cws_error_set(err, CWS_E_PERMISSION_DENIED,
                         "%s has mode %04o; it must be 0700 (chmod 700 it or remove it)", dir,
                         (unsigned)(st->st_mode & 07777));
}

/* The tmux rule: a directory, ours, closed to group and others. */
static int check_private_dir(const char *dir, const struct stat *st, struct cws_error *err)
{
    int r = check_is_directory(dir, st, err);

    if (r == 0)
        r = check_owner(dir, st, err);
    if (r == 0)
        r = check_private_mode(dir, st, err);
    return r;
}

/* open() refused dir (a symlink, a file, no read permission...): lstat it to say why. */
static int explain_open_failure(const char *dir, int open_errno, struct cws_error *err)
{
    struct stat st;
    int r;

    if (lstat(dir, &st) == 0) {
        r = check_private_dir(dir, &st, err);
        if (r < 0)
            return r;
    }
    return cws_error_set(err, CWS_E_IO, "cannot open directory %s: %s", dir, strerror(open_errno));
}

/* Fallback of restore_created_mode() through the opened directory. */
static int fix_created_mode(const char *dir, int fd, struct stat *st, struct cws_error *err)
{
    if ((st->st_mode & 07777) == PRIVATE_DIR_MODE)
        return 0;
    if (fchmod(fd, PRIVATE_DIR_MODE) < 0 || fstat(fd, st) < 0)
        return cws_error_set(err, CWS_E_IO, "cannot set mode 0700 on %s: %s", dir, strerror(errno));
    return 0;
}

/* Open dir (O_NOFOLLOW unless follow) and fstat it: checking the opened object rather than
 * the path closes the window between mkdir and the check in which the entry could be
 * replaced. Returns the fd in *ret_fd. */
static int open_dir(const char *dir, bool follow, int *ret_fd, struct stat *ret_st,
                    struct cws_error *err)
{
    int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW);
    int fd = open(dir, flags);

    if (fd < 0)
        return explain_open_failure(dir, errno, err);
    if (fstat(fd, ret_st) < 0) {
        int r = cws_error_set(err, CWS_E_IO, "cannot stat %s: %s", dir, strerror(errno));
        close(fd);
        return r;
    }
    *ret_fd = fd;
    return 0;
}

/* Create dir's last component if needed, then check it with check(). */
static int ensure_dir(const char *dir, bool follow,
                      int (*check)(const char *, const struct stat *, struct cws_error *),
                      struct cws_error *err)
{
    struct stat st;
    bool created;
    int fd = -1, r;

    r = make_dir(dir, &created, err);
    if (r < 0)
        return r;
    r = open_dir(dir, follow, &fd, &st, err);
    if (r < 0)
        return r;
    /* Only fix the mode of a directory that is ours: never chmod someone else's. */
    if (created && S_ISDIR(st.st_mode) && st.st_uid == geteuid())
        r = fix_created_mode(dir, fd, &st, err);
    if (r == 0)
        r = check(dir, &st, err);
    close(fd);
    return r;
}

int cws_runtime_dir_ensure(const char *dir, struct cws_error *err)
{
    if (!dir || !dir[0])
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "no runtime directory given");
    return ensure_dir(dir, false, check_private_dir, err);
}

/* The state directory may be a user's symlink, so only kind and owner are checked. */
static int check_state_dir(const char *dir, const struct stat *st, struct cws_error *err)
{
    int r = check_is_directory(dir, st, err);

    if (r == 0)
        r = check_owner(dir, st, err);
    return r;
}

/* mkdir -p of every ancestor of path (not path itself); path must have no trailing slash. */
static int make_parents(const char *path, struct cws_error *err)
{
    char *copy = strdup(path);
    bool created;
    int r = 0;

    if (!copy)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    for (char *p = copy + 1; *p && r == 0; p++) {
        if (*p != '/' || p[-1] == '/')
            continue;
        *p = '\0';
        r = make_dir(copy, &created, err);
        *p = '/';
    }
    free(copy);
    return r;
}

int cws_state_dir_ensure(const char *dir, struct cws_error *err)
{
    char *trimmed = NULL;
    size_t len;
    int r;

    if (!dir || !dir[0])
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "no state directory given");
    r = string_dup(dir, &trimmed, err);
    if (r < 0)
        return r;
    /* "a/b/" would otherwise create b as a parent and lose track of having made it. */
    len = strlen(trimmed);
    while (len > 1 && trimmed[len - 1] == '/')
        trimmed[--len] = '\0';
    r = make_parents(trimmed, err);
    if (r == 0)
        r = ensure_dir(trimmed, true, check_state_dir, err);
    free(trimmed);
    return r;
}
