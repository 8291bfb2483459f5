/* Resource limits through a delegated cgroup v2, when there is one. cwsandbox-local never
 * creates delegation itself: it uses the cgroup it runs in when that cgroup is writable and
 * offers the cpu and memory controllers (systemd Delegate=yes). Then it moves itself into a
 * leaf (a cgroup with controllers enabled for its children may hold no processes), enables
 * cpu and memory for the children, and starts each sandbox in its own child cgroup with
 * cpu.max and memory.max. Elsewhere (e.g. the hybrid hierarchy of this project's machines)
 * sandboxes run unlimited and their notes say so.
 *
 * Quantities follow Kubernetes: "500m", "2", "1.5" CPUs; "512Mi", "1G", "1e9" bytes. */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dirfile.h"
#include "log.h"
#include "rt_internal.h"

#define NO_LIMITS "resource limits not enforced: no delegated cgroup v2"

struct cws_cgroup {
    char *dir;     /* the cgroup cwsandbox-local runs in */
    bool prepared; /* moved into a leaf, controllers enabled */
};

struct suffix {
    const char *s;
    long double mul;
};

static const struct suffix suffixes[] = {
    {"Ki", 1024.0L},
    {"Mi", 1048576.0L},
    {"Gi", 1073741824.0L},
    {"Ti", 1099511627776.0L},
    {"Pi", 1125899906842624.0L},
    {"Ei", 1152921504606846976.0L},
    {"m", 1e-3L},
    {"k", 1e3L},
    {"M", 1e6L},
    {"G", 1e9L},
    {"T", 1e12L},
    {"P", 1e15L},
    {"E", 1e18L},
    {"", 1.0L},
};

static int parse_quantity(const char *s, long double *ret, struct cws_error *err)
{
    const char *p = s;
    long double v = 0;
    bool digits = false;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        digits = true;
    }
    if (*p == '.') {
        long double scale = 0.1L;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10) {
            v += (*p - '0') * scale;
            digits = true;
        }
    }
    if (!digits)
        goto bad;
    if ((*p == 'e' || *p == 'E') && p[1] >= '0' && p[1] <= '9') {
        int e = atoi(p + 1);
        if (e > 18)
            goto bad;
        v *= powl(10, e);
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    }
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (strcmp(p, suffixes[i].s) == 0) {
            *ret = v * suffixes[i].mul;
            return 0;
        }
    }
bad:
    return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "invalid quantity \"%s\"", s);
}

int cws_quantity_cpu_millis(const char *s, int64_t *ret, struct cws_error *err)
{
    long double v;
    int r = parse_quantity(s, &v, err);
    if (r < 0)
        return r;
    if (v * 1000 < 1 || v > 1e6L)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "cpu limit \"%s\" is out of range", s);
    *ret = (int64_t)llroundl(v * 1000);
    return 0;
}

int cws_quantity_bytes(const char *s, int64_t *ret, struct cws_error *err)
{
    long double v;
    int r = parse_quantity(s, &v, err);
    if (r < 0)
        return r;
    if (v < 4096 || v > 9e18L)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "memory limit \"%s\" is out of range", s);
    *ret = (int64_t)llroundl(v);
    return 0;
}

/* Mount point of the cgroup2 hierarchy, from /proc/self/mountinfo. */
static char *cgroup2_mount(void)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return NULL;
    char line[4096], *found = NULL;
    while (!found && fgets(line, sizeof(line), f)) {
        char *sep = strstr(line, " - cgroup2 ");
        char mnt[1024];
        if (sep && sscanf(line, "%*s %*s %*s %*s %1023s", mnt) == 1)
            found = strdup(mnt);
    }
    fclose(f);
    return found;
}

/* Our cgroup v2 path, from the "0::" line of /proc/self/cgroup. */
static char *own_cgroup_path(void)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return NULL;
    char line[4096], *found = NULL;
    while (!found && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            found = strdup(line + 3);
        }
    }
    fclose(f);
    return found;
}

static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

int cws_cgroup_detect(struct cws_cgroup **ret, char **ret_why)
{
    char *mnt = cgroup2_mount(), *path = own_cgroup_path(), *dir = NULL, *ctl = NULL;
    size_t len;
    *ret = NULL;
    *ret_why = NULL;
    if (!mnt || !path) {
        *ret_why = strdup(NO_LIMITS);
        goto out;
    }
    if (asprintf(&dir, "%s%s", mnt, strcmp(path, "/") == 0 ? "" : path) < 0) {
        dir = NULL;
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool usable = dfd >= 0 &&
                  cws_dirfile_read(dfd, "cgroup.controllers", 4096, &ctl, &len, NULL) == 0 &&
                  has_word(ctl, "cpu") && has_word(ctl, "memory") &&
                  faccessat(dfd, "cgroup.subtree_control", W_OK, AT_EACCESS) == 0 &&
                  faccessat(dfd, ".", W_OK, AT_EACCESS) == 0;
    if (dfd >= 0)
        close(dfd);
    if (!usable) {
        cws_log(CWS_LOG_DEBUG, "%s offers no writable cpu and memory controllers", dir);
        *ret_why = strdup(NO_LIMITS);
        goto out;
    }
    struct cws_cgroup *cg = calloc(1, sizeof(*cg));
    if (cg) {
        cg->dir = dir;
        dir = NULL;
        *ret = cg;
    }
out:
    free(mnt);
    free(path);
    free(dir);
    free(ctl);
    return 0;
}

void cws_cgroup_free(struct cws_cgroup *cg)
{
    if (!cg)
        return;
    free(cg->dir);
    free(cg);
}

static int write_file_at(int dfd, const char *name, const char *value, struct cws_error *err)
{
    int fd = openat(dfd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "open %s: %s", name, strerror(errno));
    ssize_t n = write(fd, value, strlen(value));
    int saved = errno;
    close(fd);
    if (n != (ssize_t)strlen(value))
        return cws_error_set(err, CWS_E_IO, "write %s to %s: %s", value, name, strerror(saved));
    return 0;
}

/* Move the server into <dir>/cwsandbox-local and enable cpu and memory below <dir>. */
static int prepare(struct cws_cgroup *cg, struct cws_error *err)
{
    if (cg->prepared)
        return 0;
    int dfd = open(cg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return cws_error_set(err, CWS_E_IO, "open %s: %s", cg->dir, strerror(errno));
    int r = 0;
    if (mkdirat(dfd, "cwsandbox-local", 0755) < 0 && errno != EEXIST)
        r = cws_error_set(err, CWS_E_IO, "mkdir cgroup: %s", strerror(errno));
    if (r == 0)
        r = write_file_at(dfd, "cwsandbox-local/cgroup.procs", "0", err);
    if (r == 0)
        r = write_file_at(dfd, "cgroup.subtree_control", "+cpu +memory", err);
    close(dfd);
    cg->prepared = r == 0;
    return r;
}

int cws_cgroup_create(struct cws_cgroup *cg, const char *id, int64_t cpu_millis,
                      int64_t memory_bytes, int *ret_fd, struct cws_error *err)
{
    int r = prepare(cg, err);
    if (r < 0)
        return r;
    char name[128], value[64];
    snprintf(name, sizeof(name), "%s/sb-%s", cg->dir, id);
    if (mkdir(name, 0755) < 0 && errno != EEXIST)
        return cws_error_set(err, CWS_E_IO, "mkdir %s: %s", name, strerror(errno));
    int fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "open %s: %s", name, strerror(errno));
    if (cpu_millis > 0) {
        snprintf(value, sizeof(value), "%lld 100000", (long long)cpu_millis * 100);
        r = write_file_at(fd, "cpu.max", value, err);
    }
    if (r == 0 && memory_bytes > 0) {
        snprintf(value, sizeof(value), "%lld", (long long)memory_bytes);
        r = write_file_at(fd, "memory.max", value, err);
    }
    if (r < 0) {
        close(fd);
        return r;
    }
    *ret_fd = fd;
    return 0;
}

void cws_cgroup_remove(struct cws_cgroup *cg, const char *id)
{
    if (!cg)
        return;
    char name[PATH_MAX];
    snprintf(name, sizeof(name), "%s/sb-%s", cg->dir, id);
    rmdir(name);
}
