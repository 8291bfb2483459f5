/* The registry file: a journal of records, compacted into a snapshot by atomic rename.
 *
 * File: the 8-byte magic "CWSDREG1", then records, each a 4-byte big-endian length, a 4-byte
 * big-endian CRC-32 of the payload, and the payload: one msgpack map with "t" naming the kind:
 *   session {name, defaults?, idle_ttl_s, created_ms}   session-closed {name}
 *   create {rid, owner, session?, request (bin)}        created {rid, id}
 *   create-failed {rid}   sandbox {id, owner, session?}  gone {id}
 * Every record is appended and fdatasync'ed before the daemon acts on it (a create is sent
 * only once its record is on disk), so a crash loses at most a record being written; such a
 * torn tail is dropped at load. The snapshot written at start, at exit and when the journal
 * has grown to a few times the live state holds one record per live item; it is written to
 * "registry.new", synced, renamed over "registry", and the directory synced. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "paths.h"
#include "registry.h"
#include "rpc_encode.h"
#include "rpc_params.h"
#include "session.h"

#define MAGIC            "CWSDREG1"
#define MAGIC_LEN        8
#define RECORD_MAX       (80u * 1024 * 1024) /* a create with 64 MiB of mounted files fits */
#define FILE_MAX         (1024ull * 1024 * 1024)
#define COMPACT_MIN_RECS 1024

struct cwsd_registry {
    char *dir;
    char *path;
    int fd;
    bool replaying;  /* loading: notes are not written back */
    size_t appended; /* records since the last snapshot */
};

/* ---- CRC-32 (IEEE), bitwise: records are small and written one at a time ---- */

static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

/* ---- writing ---- */

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_record(int fd, const msgpack_sbuffer *sb)
{
    uint32_t head[2] = {htonl((uint32_t)sb->size),
                        htonl(crc32_ieee((const uint8_t *)sb->data, sb->size))};
    int r = write_all(fd, head, sizeof(head));
    return r < 0 ? r : write_all(fd, sb->data, sb->size);
}

typedef int (*pack_record_fn)(msgpack_packer *pk, const void *ud);

static int pack_to(msgpack_sbuffer *sb, pack_record_fn fn, const void *ud)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int r = fn(&pk, ud);
    if (r < 0)
        msgpack_sbuffer_destroy(sb);
    return r;
}

static int pack_session(msgpack_packer *pk, const void *ud)
{
    const struct cwsd_session *s = ud;
    if (msgpack_pack_map(pk, s->defaults ? 5 : 4) || cws_rpc_pack_kv_cstr(pk, "t", "session") ||
        cws_rpc_pack_kv_cstr(pk, "name", s->name) || cws_rpc_pack_cstr(pk, "idle_ttl_s") ||
        msgpack_pack_double(pk, s->idle_ttl_s) ||
        cws_rpc_pack_kv_int(pk, "created_ms", s->created_ms))
        return -CWS_E_NOMEM;
    if (s->defaults && (cws_rpc_pack_cstr(pk, "defaults") ||
                        pk->callback(pk->data, (const char *)s->defaults, s->defaults_len) < 0))
        return -CWS_E_NOMEM;
    return 0;
}

static int pack_create(msgpack_packer *pk, const void *ud)
{
    const struct cwsd_pending *p = ud;
    if (msgpack_pack_map(pk, p->session ? 5 : 4) || cws_rpc_pack_kv_cstr(pk, "t", "create") ||
        cws_rpc_pack_kv_cstr(pk, "rid", p->request_id) ||
        cws_rpc_pack_kv_cstr(pk, "owner", cwsd_owner_name(p->owner)) ||
        cws_rpc_pack_kv_bin(pk, "request", p->request, p->request_len) ||
        (p->session && cws_rpc_pack_kv_cstr(pk, "session", p->session)))
        return -CWS_E_NOMEM;
    return 0;
}

static int pack_sandbox(msgpack_packer *pk, const void *ud)
{
    const struct cwsd_sandbox *e = ud;
    if (msgpack_pack_map(pk, e->session ? 4 : 3) || cws_rpc_pack_kv_cstr(pk, "t", "sandbox") ||
        cws_rpc_pack_kv_cstr(pk, "id", e->id) ||
        cws_rpc_pack_kv_cstr(pk, "owner", cwsd_owner_name(e->owner)) ||
        (e->session && cws_rpc_pack_kv_cstr(pk, "session", e->session)))
        return -CWS_E_NOMEM;
    return 0;
}

struct pair {
    const char *t, *k1, *v1, *k2, *v2;
};

static int pack_pair(msgpack_packer *pk, const void *ud)
{
    const struct pair *p = ud;
    if (msgpack_pack_map(pk, p->k2 ? 3 : 2) || cws_rpc_pack_kv_cstr(pk, "t", p->t) ||
        cws_rpc_pack_kv_cstr(pk, p->k1, p->v1) || (p->k2 && cws_rpc_pack_kv_cstr(pk, p->k2, p->v2)))
        return -CWS_E_NOMEM;
    return 0;
}

static int compact(struct cwsd *d);

/* Append one record and sync it. */
static int append(struct cwsd *d, pack_record_fn fn, const void *ud, struct cws_error *err)
{
    struct cwsd_registry *reg = d->registry;
    msgpack_sbuffer sb;
    if (!reg || reg->replaying || reg->fd < 0)
        return 0;
    if (pack_to(&sb, fn, ud) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    int r = write_record(reg->fd, &sb);
    if (r == 0 && fdatasync(reg->fd) < 0)
        r = -errno;
    msgpack_sbuffer_destroy(&sb);
    if (r < 0)
        return cws_error_set(err, CWS_E_IO, "cannot write the registry %s: %s", reg->path,
                             strerror(-r));
    if (++reg->appended > COMPACT_MIN_RECS + 2 * (d->n_sandboxes + cwsd_session_count(d)))
        compact(d);
    return 0;
}

static void append_logged(struct cwsd *d, pack_record_fn fn, const void *ud)
{
    struct cws_error err;
    if (append(d, fn, ud, &err) < 0)
        cws_log(CWS_LOG_ERROR, "%s", err.message);
}

int cwsd_registry_note_session(struct cwsd *d, const struct cwsd_session *s, struct cws_error *err)
{
    return append(d, pack_session, s, err);
}

void cwsd_registry_note_session_closed(struct cwsd *d, const char *name)
{
    struct pair p = {"session-closed", "name", name, NULL, NULL};
    append_logged(d, pack_pair, &p);
}

int cwsd_registry_note_create(struct cwsd *d, struct cwsd_pending *p, struct cws_error *err)
{
    /* Linked first: a compaction triggered by this very append must include it. */
    p->next = d->pending;
    d->pending = p;
    int r = append(d, pack_create, p, err);
    if (r < 0)
        d->pending = p->next;
    return r;
}

static void unlink_pending(struct cwsd *d, struct cwsd_pending *p)
{
    for (struct cwsd_pending **pp = &d->pending; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return;
        }
    }
}

void cwsd_registry_note_created(struct cwsd *d, struct cwsd_pending *p,
                                const struct cwsd_sandbox *e)
{
    struct pair rec = {"created", "rid", p->request_id, "id", e->id};
    /* The sandbox record first: a crash between the two leaves a create that is sent again
     * (and answered with this same sandbox), never a sandbox without its owner. */
    append_logged(d, pack_sandbox, e);
    append_logged(d, pack_pair, &rec);
    unlink_pending(d, p);
    cwsd_pending_free(p);
}

void cwsd_registry_note_create_failed(struct cwsd *d, struct cwsd_pending *p)
{
    struct pair rec = {"create-failed", "rid", p->request_id, NULL, NULL};
    append_logged(d, pack_pair, &rec);
    unlink_pending(d, p);
    cwsd_pending_free(p);
}

void cwsd_registry_note_owner(struct cwsd *d, const struct cwsd_sandbox *e)
{
    append_logged(d, pack_sandbox, e);
}

void cwsd_registry_note_gone(struct cwsd *d, const char *id)
{
    struct pair p = {"gone", "id", id, NULL, NULL};
    append_logged(d, pack_pair, &p);
}

void cwsd_pending_free(struct cwsd_pending *p)
{
    if (!p)
        return;
    free(p->request_id);
    free(p->session);
    free(p->request);
    free(p);
}

void cwsd_pending_free_all(struct cwsd *d)
{
    while (d->pending) {
        struct cwsd_pending *p = d->pending;
        d->pending = p->next;
        cwsd_pending_free(p);
    }
}

/* ---- the snapshot ---- */

static int write_snapshot(struct cwsd *d, int fd)
{
    msgpack_sbuffer sb;
    int r = write_all(fd, MAGIC, MAGIC_LEN);
    for (struct cwsd_session *s = d->sessions; r == 0 && s; s = s->next)
        if ((r = pack_to(&sb, pack_session, s)) == 0) {
            r = write_record(fd, &sb);
            msgpack_sbuffer_destroy(&sb);
        }
    for (struct cwsd_sandbox *e = d->sandboxes; r == 0 && e; e = e->next)
        if ((r = pack_to(&sb, pack_sandbox, e)) == 0) {
            r = write_record(fd, &sb);
            msgpack_sbuffer_destroy(&sb);
        }
    for (struct cwsd_pending *p = d->pending; r == 0 && p; p = p->next)
        if ((r = pack_to(&sb, pack_create, p)) == 0) {
            r = write_record(fd, &sb);
            msgpack_sbuffer_destroy(&sb);
        }
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    return r;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Replace the file by a snapshot of the state, then append to the new file. */
static int compact(struct cwsd *d)
{
    struct cwsd_registry *reg = d->registry;
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.new", reg->path) < 0)
        return -CWS_E_NOMEM;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int r = fd < 0 ? -errno : write_snapshot(d, fd);
    if (r == 0 && rename(tmp, reg->path) < 0)
        r = -errno;
    if (r < 0) {
        cws_log(CWS_LOG_ERROR, "cannot write the registry snapshot %s: %s", tmp, strerror(-r));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        free(tmp);
        return r;
    }
    free(tmp);
    sync_dir(reg->dir);
    if (reg->fd >= 0)
        close(reg->fd);
    /* The snapshot's descriptor is at its end: appends continue there. */
    reg->fd = fd;
    reg->appended = 0;
    return 0;
}

/* ---- replaying ---- */

static const char *str_of(const msgpack_object *rec, const char *key, char **owned)
{
    *owned = NULL;
    if (cws_rpc_param_str(rec, key, owned, NULL) <= 0)
        return NULL;
    return *owned;
}

static int replay_session(struct cwsd *d, const msgpack_object *rec)
{
    char *name = NULL;
    const msgpack_object *defaults = NULL;
    double ttl = 0;
    int64_t created = 0;
    struct cws_error err;
    struct cwsd_session *s;
    if (!str_of(rec, "name", &name) || cws_rpc_param_nonneg(rec, "idle_ttl_s", &ttl, NULL) < 0 ||
        cws_rpc_param_int(rec, "created_ms", INT64_MIN, INT64_MAX, &created, NULL) < 0 ||
        cws_rpc_param_map(rec, "defaults", &defaults, NULL) < 0) {
        free(name);
        return -1;
    }
    if ((s = cwsd_session_find(d, name)) != NULL)
        cwsd_session_remove(s); /* a later record of it wins */
    int r = cwsd_session_new(d, name, defaults, ttl, created, &s, &err);
    free(name);
    return r;
}

static int owner_of(const msgpack_object *rec, enum cwsd_owner *ret)
{
    char *owner = NULL;
    int r = str_of(rec, "owner", &owner) ? cwsd_owner_parse(owner, ret) : -1;
    free(owner);
    return r;
}

static int replay_sandbox(struct cwsd *d, const msgpack_object *rec)
{
    char *id = NULL, *session = NULL;
    enum cwsd_owner owner;
    struct cwsd_sandbox *e = NULL;
    if (str_of(rec, "id", &id) && owner_of(rec, &owner) == 0 &&
        cws_rpc_param_str(rec, "session", &session, NULL) >= 0 &&
        (e = cwsd_sandbox_track(d, id)) != NULL) {
        free(e->session);
        e->session = session;
        e->owner = owner;
        e->client_id = 0;
        session = NULL;
    }
    free(id);
    free(session);
    return e ? 0 : -1;
}

static struct cwsd_pending *find_pending(struct cwsd *d, const char *rid)
{
    for (struct cwsd_pending *p = d->pending; p; p = p->next)
        if (strcmp(p->request_id, rid) == 0)
            return p;
    return NULL;
}

static int replay_create(struct cwsd *d, const msgpack_object *rec)
{
    const void *req = NULL;
    size_t len = 0;
    struct cwsd_pending *p = calloc(1, sizeof(*p));
    char *rid = NULL;
    if (!p || !str_of(rec, "rid", &rid) || owner_of(rec, &p->owner) < 0 ||
        cws_rpc_param_str(rec, "session", &p->session, NULL) < 0 ||
        cws_rpc_param_bytes(rec, "request", &req, &len, NULL) <= 0 ||
        !(p->request = malloc(len ? len : 1))) {
        free(rid);
        cwsd_pending_free(p);
        return -1;
    }
    p->request_id = rid;
    memcpy(p->request, req, len);
    p->request_len = len;
    struct cwsd_pending *old = find_pending(d, rid);
    if (old) {
        unlink_pending(d, old);
        cwsd_pending_free(old);
    }
    p->next = d->pending;
    d->pending = p;
    return 0;
}

/* created, create-failed, gone, session-closed: each ends something. */
static int replay_end(struct cwsd *d, const char *t, const msgpack_object *rec)
{
    char *v = NULL;
    const char *key = strcmp(t, "gone") == 0             ? "id"
                      : strcmp(t, "session-closed") == 0 ? "name"
                                                         : "rid";
    if (!str_of(rec, key, &v))
        return -1;
    if (strcmp(t, "gone") == 0) {
        cwsd_sandbox_forget(d, v);
    } else if (strcmp(t, "session-closed") == 0) {
        struct cwsd_session *s = cwsd_session_find(d, v);
        if (s)
            cwsd_session_remove(s);
    } else {
        struct cwsd_pending *p = find_pending(d, v);
        if (p) {
            unlink_pending(d, p);
            cwsd_pending_free(p);
        }
    }
    free(v);
    return 0;
}

static int replay_record(struct cwsd *d, const msgpack_object *rec)
{
    char *t = NULL;
    int r = -1;
    if (rec->type != MSGPACK_OBJECT_MAP || !str_of(rec, "t", &t))
        return -1;
    if (strcmp(t, "session") == 0)
        r = replay_session(d, rec);
    else if (strcmp(t, "sandbox") == 0)
        r = replay_sandbox(d, rec);
    else if (strcmp(t, "create") == 0)
        r = replay_create(d, rec);
    else if (!strcmp(t, "created") || !strcmp(t, "create-failed") || !strcmp(t, "gone") ||
             !strcmp(t, "session-closed"))
        r = replay_end(d, t, rec);
    else
        r = 0; /* a kind from a newer daemon: skipped */
    free(t);
    return r;
}

/* What went wrong at `off`, for the log; also whether it is just a torn tail. */
enum scan_end { SCAN_OK, SCAN_TORN, SCAN_CORRUPT };

static enum scan_end replay_buffer(struct cwsd *d, const uint8_t *buf, size_t size,
                                   size_t *ret_good, const char **ret_why)
{
    size_t off = MAGIC_LEN;
    *ret_why = NULL;
    while (off < size) {
        *ret_good = off;
        if (size - off < 8) {
            *ret_why = "a record header is cut short";
            return SCAN_TORN;
        }
        uint32_t len, crc;
        memcpy(&len, buf + off, 4);
        memcpy(&crc, buf + off + 4, 4);
        len = ntohl(len);
        crc = ntohl(crc);
        if (len > RECORD_MAX) {
            *ret_why = "a record claims an impossible length";
            return SCAN_CORRUPT;
        }
        if (size - off - 8 < len) {
            *ret_why = "the last record is cut short";
            return SCAN_TORN;
        }
        const uint8_t *payload = buf + off + 8;
        bool last = off + 8 + len == size;
        if (crc32_ieee(payload, len) != crc) {
            *ret_why = last ? "the last record's checksum does not match"
                            : "a record's checksum does not match";
            return last ? SCAN_TORN : SCAN_CORRUPT;
        }
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t used = 0;
        bool ok =
            msgpack_unpack_next(&u, (const char *)payload, len, &used) == MSGPACK_UNPACK_SUCCESS &&
            used == len && replay_record(d, &u.data) == 0;
        msgpack_unpacked_destroy(&u);
        if (!ok) {
            *ret_why = "a record cannot be read";
            return SCAN_CORRUPT;
        }
        off += 8 + len;
    }
    *ret_good = off;
    return SCAN_OK;
}

static int read_file(int fd, uint8_t **ret, size_t *ret_size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > FILE_MAX)
        return -EFBIG;
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return -ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return n < 0 ? -errno : -EIO;
        }
        got += (size_t)n;
    }
    *ret = buf;
    *ret_size = size;
    return 0;
}

static void move_aside(struct cwsd_registry *reg, const char *why, size_t off)
{
    char stamp[32], *aside = NULL;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    if (asprintf(&aside, "%s.corrupt-%s", reg->path, stamp) < 0)
        return;
    if (rename(reg->path, aside) == 0)
        cws_log(CWS_LOG_ERROR,
                "the registry %s is corrupt (%s at byte %zu): moved aside to %s; what it held "
                "before that is kept, the rest is recovered from the backend's listing",
                reg->path, why, off, aside);
    else
        cws_log(CWS_LOG_ERROR,
                "the registry %s is corrupt (%s at byte %zu) and cannot be moved "
                "aside: %s",
                reg->path, why, off, strerror(errno));
    free(aside);
}

static void load(struct cwsd *d)
{
    struct cwsd_registry *reg = d->registry;
    uint8_t *buf = NULL;
    size_t size = 0, good = 0;
    const char *why = NULL;
    int fd = open(reg->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT)
            cws_log(CWS_LOG_ERROR, "cannot open the registry %s: %s", reg->path, strerror(errno));
        return;
    }
    int r = read_file(fd, &buf, &size);
    close(fd);
    if (r < 0) {
        cws_log(CWS_LOG_ERROR, "cannot read the registry %s: %s", reg->path, strerror(-r));
        move_aside(reg, "unreadable", 0);
        return;
    }
    enum scan_end end = SCAN_CORRUPT;
    reg->replaying = true;
    if (size >= MAGIC_LEN && memcmp(buf, MAGIC, MAGIC_LEN) == 0)
        end = replay_buffer(d, buf, size, &good, &why);
    else if (size > 0)
        why = "it does not start with the registry's magic";
    reg->replaying = false;
    free(buf);
    if (end == SCAN_TORN)
        cws_log(CWS_LOG_WARN,
                "the registry %s ends in a torn record (%s at byte %zu): dropped, "
                "as after a crash while it was written",
                reg->path, why, good);
    else if (end == SCAN_CORRUPT && size > 0)
        move_aside(reg, why, good);
}

int cwsd_registry_open(struct cwsd *d, struct cws_error *err)
{
    struct cwsd_registry *reg = calloc(1, sizeof(*reg));
    if (!reg)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    reg->fd = -1;
    int r = d->cfg.state_dir ? ((reg->dir = strdup(d->cfg.state_dir)) ? 0 : -CWS_E_NOMEM)
                             : cws_state_dir(&reg->dir, err);
    if (r == 0)
        r = cws_state_dir_ensure(reg->dir, err);
    if (r == 0 && asprintf(&reg->path, "%s/registry", reg->dir) < 0)
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
    if (r < 0) {
        free(reg->dir);
        free(reg);
        return r == -CWS_E_NOMEM ? cws_error_set(err, CWS_E_NOMEM, NULL) : r;
    }
    d->registry = reg;
    load(d);
    if (compact(d) < 0)
        cws_log(CWS_LOG_ERROR, "the registry %s cannot be written: nothing will persist",
                reg->path);
    size_t n_pending = 0;
    for (struct cwsd_pending *p = d->pending; p; p = p->next)
        n_pending++;
    cws_log(CWS_LOG_INFO, "registry %s: %zu sessions, %zu sandboxes, %zu creates in flight",
            reg->path, cwsd_session_count(d), d->n_sandboxes, n_pending);
    return 0;
}

void cwsd_registry_close(struct cwsd *d)
{
    struct cwsd_registry *reg = d->registry;
    if (!reg)
        return;
    if (reg->fd >= 0)
        compact(d);
    if (reg->fd >= 0)
        close(reg->fd);
    free(reg->dir);
    free(reg->path);
    free(reg);
    d->registry = NULL;
}

const char *cwsd_registry_path(const struct cwsd *d)
{
    return d->registry ? d->registry->path : NULL;
}
