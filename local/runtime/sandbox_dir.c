/* The directory of a sandbox, <state_dir>/sandboxes/<id>/: creation, the runtime's records
 * in it (meta, pid files) and deletion. init_proto.h lists what lives there. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dirfile.h"
#include "init_proto.h"
#include "rpc_encode.h"
#include "rpc_params.h"
#include "rt_internal.h"

bool cws_sb_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n < 1 || n > 63 || id[0] == '-' || id[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
            return false;
    return true;
}

void cws_sb_dir_path(int dirfd, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "/proc/self/fd/%d/%s", dirfd, name);
}

int cws_sb_dir_create(struct cws_rt *rt, const char *id, int *ret_dirfd, struct cws_error *err)
{
    if (mkdirat(rt->sandboxes_fd, id, 0700) < 0) {
        if (errno == EEXIST)
            return cws_error_set(err, CWS_E_ALREADY_EXISTS, "sandbox %s already exists", id);
        return cws_error_set(err, CWS_E_IO, "mkdir %s/sandboxes/%s: %s", rt->state_dir, id,
                             strerror(errno));
    }
    int fd = openat(rt->sandboxes_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "open sandbox directory %s: %s", id, strerror(errno));
    static const char *const subdirs[] = {CWS_SB_UPPER, CWS_SB_WORK, CWS_SB_ROOT};
    for (size_t i = 0; i < 3; i++) {
        if (mkdirat(fd, subdirs[i], 0755) < 0) {
            int r = cws_error_set(err, CWS_E_IO, "mkdir %s: %s", subdirs[i], strerror(errno));
            close(fd);
            return r;
        }
    }
    *ret_dirfd = fd;
    return 0;
}

int cws_sb_dir_open(struct cws_rt *rt, const char *id, int *ret_dirfd, struct cws_error *err)
{
    if (!cws_sb_id_valid(id))
        return cws_error_set(err, CWS_E_NOT_FOUND, "no sandbox %s", id);
    int fd = openat(rt->sandboxes_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return cws_error_set(err, CWS_E_NOT_FOUND, "no sandbox %s", id);
        return cws_error_set(err, CWS_E_IO, "open sandbox directory %s: %s", id, strerror(errno));
    }
    *ret_dirfd = fd;
    return 0;
}

/* rm -rf below dirfd without following symlinks. The sandbox wrote what is in its upper
 * layer, so expect anything: unreadable directories (made accessible first), whiteouts,
 * deep trees. */
static int delete_tree(int dirfd, int depth)
{
    if (depth > 256)
        return -ELOOP;
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    int r = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd, e->d_name, 0) == 0 || errno == ENOENT)
            continue;
        if (errno != EISDIR && errno != EPERM) {
            r = -errno;
            continue;
        }
        fchmodat(dirfd, e->d_name, 0700, 0);
        int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            r = -errno;
            continue;
        }
        int rr = delete_tree(sub, depth + 1);
        close(sub);
        if (rr < 0)
            r = rr;
        else if (unlinkat(dirfd, e->d_name, AT_REMOVEDIR) < 0)
            r = -errno;
    }
    closedir(d);
    return r;
}

int cws_sb_dir_delete(struct cws_rt *rt, const char *id, struct cws_error *err)
{
    /* Move it aside first, so the id is free at once even if deleting stops halfway. */
    char trash[128];
    snprintf(trash, sizeof(trash), ".deleting-%s-%ld", id, (long)cws_rt_now_monotonic_ms());
    if (renameat(rt->sandboxes_fd, id, rt->sandboxes_fd, trash) < 0) {
        if (errno == ENOENT)
            return cws_error_set(err, CWS_E_NOT_FOUND, "no sandbox %s", id);
        return cws_error_set(err, CWS_E_IO, "rename sandbox directory %s: %s", id, strerror(errno));
    }
    int fd = openat(rt->sandboxes_fd, trash, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int r = fd < 0 ? -errno : delete_tree(fd, 0);
    if (fd >= 0)
        close(fd);
    if (r == 0 && unlinkat(rt->sandboxes_fd, trash, AT_REMOVEDIR) < 0)
        r = -errno;
    if (r < 0)
        return cws_error_set(err, CWS_E_IO, "delete sandbox directory %s: %s", id, strerror(-r));
    return 0;
}

/* ---- meta ---- */

int cws_sb_meta_write(int dirfd, const struct sb_meta *m, struct cws_error *err)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cws_rpc_pack_kv_int(&pk, "created_ns", m->created_ns);
    cws_rpc_pack_kv_int(&pk, "max_lifetime_s", m->max_lifetime_s);
    cws_rpc_pack_cstr(&pk, "ports");
    msgpack_pack_array(&pk, m->n_ports);
    for (size_t i = 0; i < m->n_ports; i++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, m->ports[i].guest);
        msgpack_pack_int(&pk, m->ports[i].host);
    }
    int r = cws_dirfile_write(dirfd, CWS_SB_META, sb.data, sb.size, 0600, false, err);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

static int decode_ports(const msgpack_object *map, struct sb_meta *m, struct cws_error *err)
{
    const msgpack_object *a;
    int r = cws_rpc_param_array(map, "ports", &a, err);
    if (r <= 0)
        return r;
    m->ports = calloc(a->via.array.size + 1, sizeof(*m->ports));
    if (!m->ports)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *p = &a->via.array.ptr[i];
        if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
            p->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            p->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            continue;
        m->ports[m->n_ports].guest = (int)p->via.array.ptr[0].via.u64;
        m->ports[m->n_ports].host = (int)p->via.array.ptr[1].via.u64;
        m->n_ports++;
    }
    return 0;
}

int cws_sb_meta_read(int dirfd, struct sb_meta *m, struct cws_error *err)
{
    char *data = NULL;
    size_t len = 0;
    int r = cws_dirfile_read(dirfd, CWS_SB_META, 1 << 20, &data, &len, err);
    if (r < 0)
        return r;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    memset(m, 0, sizeof(*m));
    if (msgpack_unpack_next(&up, data, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        r = cws_error_set(err, CWS_E_DATA_LOSS, "malformed %s", CWS_SB_META);
        goto out;
    }
    if ((r = cws_rpc_param_int(&up.data, "created_ns", 0, INT64_MAX, &m->created_ns, err)) < 0 ||
        (r = cws_rpc_param_int(&up.data, "max_lifetime_s", 0, INT64_MAX, &m->max_lifetime_s, err)) <
            0 ||
        (r = decode_ports(&up.data, m, err)) < 0)
        goto out;
    r = 0;
out:
    if (r < 0) {
        free(m->ports);
        m->ports = NULL;
    }
    msgpack_unpacked_destroy(&up);
    free(data);
    return r;
}

/* ---- pid files ---- */

/* Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. */
static int proc_starttime(pid_t pid, unsigned long long *ret)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -EIO;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: count from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -EIO;
    p++;
    for (int field = 3; field < 22; field++) { /* p is at the space before field 3 */
        p = strchr(p + 1, ' ');
        if (!p)
            return -EIO;
    }
    *ret = strtoull(p + 1, NULL, 10);
    return 0;
}

int cws_sb_pidfile_write(int dirfd, const char *name, pid_t pid, struct cws_error *err)
{
    unsigned long long start = 0;
    int r = proc_starttime(pid, &start);
    if (r < 0)
        return cws_error_set(err, CWS_E_IO, "read the start time of %d: %s", (int)pid,
                             strerror(-r));
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%d %llu\n", (int)pid, start);
    return cws_dirfile_write(dirfd, name, buf, (size_t)n, 0600, false, err);
}

int cws_sb_pidfile_open(int dirfd, const char *name, pid_t *ret_pid, int *ret_pidfd,
                        struct cws_error *err)
{
    char *data = NULL;
    size_t len = 0;
    int r = cws_dirfile_read(dirfd, name, 128, &data, &len, err);
    if (r < 0)
        return r;
    int pid = 0;
    unsigned long long want = 0, now = 0;
    int ok = sscanf(data, "%d %llu", &pid, &want);
    free(data);
    if (ok != 2 || pid <= 0)
        return cws_error_set(err, CWS_E_DATA_LOSS, "malformed %s", name);
    int fd = pidfd_open(pid, 0);
    if (fd < 0)
        return cws_error_set(err, CWS_E_NOT_FOUND, "process %d is gone", pid);
    /* Checked after pidfd_open: from here the pid cannot be reused under us. */
    if (proc_starttime(pid, &now) < 0 || now != want) {
        close(fd);
        return cws_error_set(err, CWS_E_NOT_FOUND, "process %d is gone", pid);
    }
    *ret_pid = pid;
    *ret_pidfd = fd;
    return 0;
}
