/* Sandbox records of cwsandbox-local: lookup, the Sandbox message built from a record, and
 * persistence (one SandboxRecord file per sandbox, replaced atomically). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cwsandbox/local/v1/record.pb-c.h"
#include "log.h"
#include "service.h"

typedef Cwsandbox__Local__V1__SandboxRecord SandboxRecord;
typedef Coreweave__Sandbox__V1__ServiceStatus ServiceStatus;

#define RECORD_SUFFIX ".pb"
/* A record file larger than this is not ours. */
#define RECORD_MAX (64u * 1024 * 1024)

struct lsb *lsb_find(struct svc *svc, const char *id)
{
    for (struct lsb *sb = svc->sandboxes; sb; sb = sb->next)
        if (strcmp(sb->id, id) == 0)
            return sb;
    return NULL;
}

struct lsb *lsb_find_request(struct svc *svc, const char *request_id)
{
    if (!request_id || !request_id[0])
        return NULL;
    for (struct lsb *sb = svc->sandboxes; sb; sb = sb->next)
        if (sb->request_id && strcmp(sb->request_id, request_id) == 0)
            return sb;
    return NULL;
}

bool lsb_is_terminal(const struct lsb *sb)
{
    switch (sb->state) {
    case COREWEAVE__SANDBOX__V1__STATE__STATE_COMPLETED:
    case COREWEAVE__SANDBOX__V1__STATE__STATE_FAILED:
    case COREWEAVE__SANDBOX__V1__STATE__STATE_TERMINATED:
        return true;
    default:
        return false;
    }
}

static void set_timestamp(Google__Protobuf__Timestamp *ts, int64_t ns)
{
    google__protobuf__timestamp__init(ts);
    ts->seconds = ns / 1000000000;
    ts->nanos = (int32_t)(ns % 1000000000);
}

static int64_t timestamp_ns(const Google__Protobuf__Timestamp *ts)
{
    return ts ? ts->seconds * 1000000000 + ts->nanos : 0;
}

/* Service statuses: one per requested service, with the forwarded URL when there is one. */
static int view_services(struct lsb *sb, struct lsb_view *v)
{
    size_t n = sb->spec->n_services;
    if (n == 0)
        return 0;
    v->services = calloc(n, sizeof(*v->services) + sizeof(ServiceStatus));
    if (!v->services)
        return -CWS_E_NOMEM;
    ServiceStatus *st = (ServiceStatus *)(v->services + n);
    for (size_t i = 0; i < n; i++) {
        const Coreweave__Sandbox__V1__Service *s = sb->spec->services[i];
        const char *url = sb->rt ? cws_rt_sandbox_service_url(sb->rt, s->port) : NULL;
        coreweave__sandbox__v1__service_status__init(&st[i]);
        st[i].port = s->port;
        st[i].name = s->name;
        st[i].protocol = s->protocol;
        st[i].visibility = s->visibility;
        st[i].url = (char *)(url ? url : "");
        v->services[i] = &st[i];
    }
    v->status.n_services = n;
    v->status.services = v->services;
    return 0;
}

static Coreweave__Sandbox__V1__ResourceRequirements *primary_requirements(const SandboxSpec *spec)
{
    return spec->n_containers > 0 ? spec->containers[0]->resource_requirements : NULL;
}

int lsb_view_init(struct lsb *sb, struct lsb_view *v)
{
    memset(v, 0, sizeof(*v));
    coreweave__sandbox__v1__sandbox__init(&v->msg);
    coreweave__sandbox__v1__sandbox_status__init(&v->status);
    v->msg.sandbox_id = sb->id;
    v->msg.spec = sb->spec;
    v->msg.status = &v->status;
    v->status.state = sb->state;
    v->status.state_reason = sb->state_reason ? sb->state_reason : (char *)"";
    v->status.runner_id = (char *)CWS_SVC_RUNNER_ID;
    v->status.effective_max_lifetime_seconds = sb->spec->max_lifetime_seconds;
    v->status.effective_resource_requirements = primary_requirements(sb->spec);
    if (sb->create_ns) {
        set_timestamp(&v->create_time, sb->create_ns);
        v->status.create_time = &v->create_time;
    }
    if (sb->start_ns) {
        set_timestamp(&v->start_time, sb->start_ns);
        v->status.start_time = &v->start_time;
    }
    if (sb->end_ns) {
        set_timestamp(&v->end_time, sb->end_ns);
        v->status.end_time = &v->end_time;
    }
    if (sb->has_exit_code) {
        v->status._exit_code_case = COREWEAVE__SANDBOX__V1__SANDBOX_STATUS___EXIT_CODE_EXIT_CODE;
        v->status.exit_code = sb->exit_code;
    }
    return view_services(sb, v);
}

void lsb_view_clear(struct lsb_view *v)
{
    if (!v)
        return;
    free(v->services);
    v->services = NULL;
}

static char *record_path(const struct svc *svc, const char *id)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s" RECORD_SUFFIX, svc->records_dir, id) < 0)
        return NULL;
    return p;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Write path atomically: a temporary file, fsync, rename, fsync of the directory. */
static int write_file_atomic(const char *dir, const char *path, const uint8_t *buf, size_t len)
{
    char tmp[4096];
    int r;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    r = write_all(fd, buf, len);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    close(fd);
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

void lsb_persist(struct lsb *sb)
{
    SandboxRecord rec = CWSANDBOX__LOCAL__V1__SANDBOX_RECORD__INIT;
    struct lsb_view v;
    uint8_t *buf = NULL;
    char *path = NULL;

    if (lsb_view_init(sb, &v) < 0)
        goto fail;
    rec.sandbox = &v.msg;
    rec.request_id = sb->request_id ? sb->request_id : (char *)"";
    rec.notes = sb->notes ? sb->notes : (char *)"";
    rec.stop_requested_unix_ms = sb->stop_requested_ms;
    rec.stop_grace_seconds = sb->stop_grace_s;
    size_t len = cwsandbox__local__v1__sandbox_record__get_packed_size(&rec);
    buf = malloc(len ? len : 1);
    path = record_path(sb->svc, sb->id);
    if (!buf || !path)
        goto fail;
    cwsandbox__local__v1__sandbox_record__pack(&rec, buf);
    int r = write_file_atomic(sb->svc->records_dir, path, buf, len);
    if (r < 0)
        cws_log(CWS_LOG_ERROR, "cannot persist sandbox %s to %s: %s", sb->id, path, strerror(-r));
    goto out;
fail:
    cws_log(CWS_LOG_ERROR, "cannot persist sandbox %s: out of memory", sb->id);
out:
    lsb_view_clear(&v);
    free(buf);
    free(path);
}

void lsb_free(struct lsb *sb)
{
    if (!sb)
        return;
    cws_rt_sandbox_release(sb->rt);
    if (sb->spec)
        coreweave__sandbox__v1__sandbox_spec__free_unpacked(sb->spec, NULL);
    free(sb->id);
    free(sb->request_id);
    free(sb->notes);
    free(sb->state_reason);
    free(sb);
}

void lsb_forget(struct lsb *sb)
{
    struct svc *svc = sb->svc;
    for (struct lsb **p = &svc->sandboxes; *p; p = &(*p)->next) {
        if (*p == sb) {
            *p = sb->next;
            svc->n_sandboxes--;
            break;
        }
    }
    char *path = record_path(svc, sb->id);
    if (path && unlink(path) < 0 && errno != ENOENT)
        cws_log(CWS_LOG_WARN, "cannot remove %s: %s", path, strerror(errno));
    free(path);
    lsb_free(sb);
}

/* Deep-copy a spec by packing and unpacking it: protobuf-c has no copy function. */
SandboxSpec *lsb_copy_spec(const SandboxSpec *spec)
{
    SandboxSpec empty = COREWEAVE__SANDBOX__V1__SANDBOX_SPEC__INIT;
    if (!spec)
        spec = &empty;
    size_t len = coreweave__sandbox__v1__sandbox_spec__get_packed_size(spec);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    coreweave__sandbox__v1__sandbox_spec__pack(spec, buf);
    SandboxSpec *copy = coreweave__sandbox__v1__sandbox_spec__unpack(NULL, len, buf);
    free(buf);
    return copy;
}

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

/* Build a record from a loaded SandboxRecord. */
static struct lsb *lsb_from_record(struct svc *svc, const SandboxRecord *rec)
{
    const Sandbox *m = rec->sandbox;
    if (!m || !m->sandbox_id || !m->sandbox_id[0] || !m->status)
        return NULL;
    struct lsb *sb = calloc(1, sizeof(*sb));
    if (!sb)
        return NULL;
    sb->svc = svc;
    sb->id = strdup(m->sandbox_id);
    sb->spec = lsb_copy_spec(m->spec);
    sb->request_id = dup_or_null(rec->request_id);
    sb->notes = dup_or_null(rec->notes);
    sb->state_reason = dup_or_null(m->status->state_reason);
    sb->state = m->status->state;
    sb->has_exit_code =
        m->status->_exit_code_case == COREWEAVE__SANDBOX__V1__SANDBOX_STATUS___EXIT_CODE_EXIT_CODE;
    sb->exit_code = m->status->exit_code;
    sb->create_ns = timestamp_ns(m->status->create_time);
    sb->start_ns = timestamp_ns(m->status->start_time);
    sb->end_ns = timestamp_ns(m->status->end_time);
    sb->stop_requested_ms = rec->stop_requested_unix_ms;
    sb->stop_grace_s = rec->stop_grace_seconds;
    if (!sb->id || !sb->spec) {
        lsb_free(sb);
        return NULL;
    }
    return sb;
}

static int read_file(int dirfd, const char *name, uint8_t **ret, size_t *ret_len)
{
    struct stat st;
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > RECORD_MAX) {
        close(fd);
        return -EINVAL;
    }
    uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (n != st.st_size) {
        free(buf);
        return -EIO;
    }
    *ret = buf;
    *ret_len = (size_t)n;
    return 0;
}

static bool is_record_name(const char *name)
{
    size_t n = strlen(name), s = strlen(RECORD_SUFFIX);
    return n > s && strcmp(name + n - s, RECORD_SUFFIX) == 0;
}

/* Load one file; a damaged record is moved aside so it never blocks a start. */
static void load_record(struct svc *svc, int dirfd, const char *name)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    SandboxRecord *rec = NULL;
    struct lsb *sb = NULL;

    if (read_file(dirfd, name, &buf, &len) == 0)
        rec = cwsandbox__local__v1__sandbox_record__unpack(NULL, len, buf);
    if (rec)
        sb = lsb_from_record(svc, rec);
    if (sb && !lsb_find(svc, sb->id)) {
        sb->next = svc->sandboxes;
        svc->sandboxes = sb;
        svc->n_sandboxes++;
    } else {
        char aside[512];
        snprintf(aside, sizeof(aside), "%s.corrupt", name);
        cws_log(CWS_LOG_WARN, "sandbox record %s/%s is unreadable; moved aside to %s",
                svc->records_dir, name, aside);
        renameat(dirfd, name, dirfd, aside);
        lsb_free(sb);
    }
    if (rec)
        cwsandbox__local__v1__sandbox_record__free_unpacked(rec, NULL);
    free(buf);
}

int lsb_load_all(struct svc *svc, struct cws_error *err)
{
    DIR *d = opendir(svc->records_dir);
    if (!d)
        return cws_error_set(err, CWS_E_IO, "cannot open %s: %s", svc->records_dir,
                             strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)))
        if (is_record_name(de->d_name))
            load_record(svc, dirfd(d), de->d_name);
    closedir(d);
    return 0;
}
