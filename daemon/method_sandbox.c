/* sandbox.create, .get, .list, .wait, .stop, .delete and .purge: each a backend call (and,
 * for the waiting ones, the shared status watcher). Answers are SandboxInfo maps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "arena.h"
#include "backend_rpc.h"
#include "daemon.h"
#include "log.h"
#include "reaper.h"
#include "recovery.h"
#include "registry.h"
#include "rpc_encode.h"
#include "rpc_params.h"
#include "sandbox_config.h"
#include "sandbox_table.h"
#include "session.h"
#include "watch.h"

#define DEFAULT_TIMEOUT_MS 300000
#define DEFAULT_GRACE_S    10
/* The stop deadline past the grace period, as the Python SDK allows. */
#define STOP_SLACK_MS  10000
#define LIST_PAGES_MAX 100

typedef Coreweave__Sandbox__V1__Sandbox Sandbox;

/* One request being served across backend calls and waits. */
struct op {
    struct cwsd *d;
    struct cwsd_call *call; /* NULL once the client cancelled or went away */
    struct cwsd_waiter *waiter;
    int rpcs; /* backend calls in flight: the op outlives the call until 0 */
    char *id;
    bool wait;
    int64_t timeout_ms;
    int64_t grace_s;
    bool missing_ok;
    /* sandbox.create: persisted, owned by the daemon's pending list */
    struct cwsd_pending *pending;
    /* sandbox.list */
    Coreweave__Sandbox__V1__ListSandboxesRequest list_req;
    struct cwsd_arena arena;
    uint8_t **pages; /* packed Sandbox messages collected over pages */
    size_t *page_lens;
    size_t n_items, cap_items;
    int n_pages;
    char *token;
};

static void op_free(struct op *op)
{
    cwsd_wait_cancel(op->waiter);
    cwsd_arena_free(&op->arena);
    for (size_t i = 0; i < op->n_items; i++)
        free(op->pages[i]);
    free(op->pages);
    free(op->page_lens);
    free(op->token);
    free(op->id);
    free(op);
}

static void op_release(struct op *op)
{
    if (op->rpcs == 0)
        op_free(op);
}

static void op_cancelled(struct cwsd_call *call, void *ud)
{
    struct op *op = ud;
    (void)call;
    op->call = NULL;
    cwsd_wait_cancel(op->waiter);
    op->waiter = NULL;
    op_release(op);
}

static struct op *op_new(struct cwsd_call *call)
{
    struct op *op = calloc(1, sizeof(*op));
    if (!op) {
        cwsd_call_failf(call, CWS_E_NOMEM, "out of memory");
        return NULL;
    }
    op->d = call->client->d;
    op->call = call;
    call->on_cancel = op_cancelled;
    call->ud = op;
    return op;
}

/* Answer and forget the op (unless a backend call still refers to it). */
static void op_fail(struct op *op, const struct cws_error *err)
{
    if (op->call)
        cwsd_call_fail(op->call, err);
    op->call = NULL;
    op_release(op);
}

static void op_failf(struct op *op, enum cws_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_failf(struct op *op, enum cws_errcode code, const char *fmt, ...)
{
    struct cws_error err;
    va_list ap;
    va_start(ap, fmt);
    cws_error_setv(&err, code, fmt, ap);
    va_end(ap);
    op_fail(op, &err);
}

struct info_args {
    const Sandbox *sb;
    const struct cwsd_sandbox *entry;
};

static int pack_info(msgpack_packer *pk, void *ud)
{
    struct info_args *a = ud;
    return cwsd_pack_sandbox_info(pk, a->sb, a->entry ? a->entry->session : NULL,
                                  a->entry ? cwsd_owner_name(a->entry->owner) : NULL);
}

static void op_reply_info(struct op *op, const Sandbox *sb)
{
    struct info_args a = {sb, cwsd_sandbox_find(op->d, sb->sandbox_id)};
    cwsd_sandbox_remember(op->d, sb);
    if (op->call)
        cwsd_call_reply(op->call, pack_info, &a);
    op->call = NULL;
    /* An ended sandbox needs no owner any more: the table holds live ones only. */
    if (sb->status && cwsd_state_is_terminal(sb->status->state))
        cwsd_sandbox_forget(op->d, sb->sandbox_id);
    op_release(op);
}

static void op_reply_nil(struct op *op)
{
    if (op->call)
        cwsd_call_reply(op->call, NULL, NULL);
    op->call = NULL;
    op_release(op);
}

static int op_rpc(struct op *op, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *desc, int64_t timeout_ms, cwsd_unary_fn fn)
{
    struct cws_error err;
    op->rpcs++;
    if (cwsd_rpc_unary(op->d, method, req, desc, timeout_ms, fn, op, &err) < 0) {
        op->rpcs--;
        op_fail(op, &err);
        return -1;
    }
    return 0;
}

/* A backend answer arrived: false when nobody waits for it any more (op freed). */
static bool op_back(struct op *op)
{
    op->rpcs--;
    if (!op->call) {
        op_release(op);
        return false;
    }
    return true;
}

/* ---- params ---- */

static int get_timeout(const msgpack_object *params, int64_t *ret, struct cws_error *err)
{
    double s = 0;
    int r = cws_rpc_param_nonneg(params, "timeout_s", &s, err);
    if (r < 0)
        return r;
    *ret = r == 1 ? (int64_t)(s * 1000) : DEFAULT_TIMEOUT_MS;
    return 0;
}

static int get_id(const msgpack_object *params, struct op *op, struct cws_error *err)
{
    int r = cws_rpc_required(cws_rpc_param_str(params, "id", &op->id, err), "id", err);
    if (r == 1 && !op->id[0])
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "id must not be empty");
    return r < 0 ? r : 0;
}

static void make_request_id(char *buf, size_t size)
{
    uint8_t r[16];
    if (getrandom(r, sizeof(r), 0) != sizeof(r))
        memset(r, 0, sizeof(r));
    r[6] = (r[6] & 0x0f) | 0x40; /* a version 4 UUID, as the SDK sends */
    r[8] = (r[8] & 0x3f) | 0x80;
    snprintf(buf, size, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

/* ---- waiting ---- */

static void on_waited(void *ud, const Sandbox *sb, const struct cws_error *err)
{
    struct op *op = ud;
    op->waiter = NULL;
    if (err)
        op_fail(op, err);
    else
        op_reply_info(op, sb);
}

static void op_wait(struct op *op, const char *id, enum cwsd_wait_until until, int64_t timeout_ms)
{
    struct cws_error err;
    op->waiter = cwsd_wait(op->d, id, until, timeout_ms, on_waited, op, &err);
    if (!op->waiter)
        op_fail(op, &err);
}

/* ---- sandbox.create ---- */

/* Remember who owns a new sandbox, for cleanup when its owner goes away. */
static struct cwsd_sandbox *track_created(struct cwsd *d, const struct cwsd_pending *p,
                                          const char *id)
{
    struct cwsd_sandbox *e = cwsd_sandbox_track(d, id);
    if (!e)
        return NULL;
    char *session = p->session ? strdup(p->session) : NULL;
    if (p->session && !session)
        return e; /* out of memory: it keeps what it had */
    free(e->session);
    e->session = session;
    e->owner = p->owner;
    e->client_id = p->client_id;
    e->client_pid = p->client_pid;
    return e;
}

/* Errors after which the backend may still have made the sandbox: the create stays pending
 * and is sent again (same request_id) later. */
static bool outcome_unknown(const struct cws_error *err)
{
    return err->code == CWS_E_UNAVAILABLE || err->code == CWS_E_DEADLINE_EXCEEDED ||
           err->code == CWS_E_CANCELLED || err->code == CWS_E_UNKNOWN ||
           err->code == CWS_E_INTERNAL;
}

void cwsd_create_finished(struct cwsd *d, struct cwsd_pending *p, const Sandbox *sb,
                          const struct cws_error *err)
{
    p->sending = false;
    if (err) {
        if (!outcome_unknown(err))
            cwsd_registry_note_create_failed(d, p);
        else
            cwsd_recover_later(d);
        return;
    }
    struct cwsd_sandbox *e = track_created(d, p, sb->sandbox_id);
    cwsd_sandbox_remember(d, sb);
    cwsd_log_about(CWS_LOG_INFO, sb->sandbox_id, p->session, p->client_pid,
                   "created sandbox %s (owner %s)", sb->sandbox_id, cwsd_owner_name(p->owner));
    if (!e)
        return;
    cwsd_registry_note_created(d, p, e);
    /* Its client (or session) went away while it was made: it is an orphan already. */
    if (cwsd_reaper_unowned(d, e))
        cwsd_reaper_orphan(d, e);
}

static void on_created(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct op *op = ud;
    const Sandbox *sb = (const Sandbox *)resp;
    struct cws_error bad;
    struct cwsd_pending *p = op->pending;
    op->pending = NULL;
    if (!err && !sb->sandbox_id[0]) {
        cws_error_set(&bad, CWS_E_PROTOCOL, "the backend created a sandbox without an id");
        err = &bad;
    }
    /* Whoever asked may be gone: what was made is tracked all the same. */
    cwsd_create_finished(op->d, p, sb, err);
    if (!op_back(op))
        return;
    if (err)
        op_fail(op, err);
    else if (op->wait)
        op_wait(op, sb->sandbox_id, CWSD_UNTIL_RUNNING, op->timeout_ms);
    else
        op_reply_info(op, sb);
}

/* The session a create goes to: params.session, else the client's; opened when missing and
 * joined by the client. NULL with no error for none. */
static int create_session(struct cwsd_call *call, const char *name, struct cwsd_session **ret,
                          struct cws_error *err)
{
    struct cwsd_client *c = call->client;
    *ret = NULL;
    if (!name)
        name = c->session;
    if (!name)
        return 0;
    if (!cwsd_session_name_valid(name, "session", err))
        return -CWS_E_INVALID_ARGUMENT;
    int r = cwsd_session_get_or_new(c->d, name, ret, err);
    return r < 0 ? r : cwsd_session_attach(c, *ret, err);
}

/* The daemon's own tags: the owner tag always, the session's, and one for detached ones (so
 * that a daemon that lost its registry still knows them). */
static void daemon_tags(const struct cwsd *d, const struct cwsd_session *s, enum cwsd_owner owner,
                        char session_tag[CWSD_TAG_MAX], const char *tags[4])
{
    size_t n = 0;
    tags[n++] = d->owner_tag;
    if (s) {
        cwsd_session_tag(s->name, session_tag);
        tags[n++] = session_tag;
    }
    if (owner == CWSD_OWNER_DETACHED)
        tags[n++] = CWSD_TAG_DETACHED;
    tags[n] = NULL;
}

/* The pending record of a create, with its request packed to send again after a crash. */
static struct cwsd_pending *pending_new(struct cwsd_call *call, const struct cwsd_session *s,
                                        enum cwsd_owner owner,
                                        const Coreweave__Sandbox__V1__CreateSandboxRequest *req)
{
    struct cwsd_pending *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->owner = owner;
    p->client_id = call->client->id;
    p->client_pid = call->client->pid;
    p->request_len = coreweave__sandbox__v1__create_sandbox_request__get_packed_size(req);
    if (!(p->request_id = strdup(req->request_id)) || (s && !(p->session = strdup(s->name))) ||
        !(p->request = malloc(p->request_len ? p->request_len : 1))) {
        cwsd_pending_free(p);
        return NULL;
    }
    coreweave__sandbox__v1__create_sandbox_request__pack(req, p->request);
    return p;
}

struct create_args {
    int wait, owner;
    char *session, *request_id;
};

static int create_params(const msgpack_object *params, struct op *op, struct create_args *a,
                         struct cws_error *err)
{
    static const char *const waits[] = {"none", "running", NULL};
    static const char *const owners[] = {"client", "session", "detached", NULL};
    a->owner = -1;
    if (cws_rpc_param_enum(params, "wait", waits, &a->wait, err) < 0 ||
        cws_rpc_param_enum(params, "owner", owners, &a->owner, err) < 0 ||
        cws_rpc_param_str(params, "session", &a->session, err) < 0 ||
        cws_rpc_param_str(params, "request_id", &a->request_id, err) < 0 ||
        get_timeout(params, &op->timeout_ms, err) < 0)
        return -CWS_E_INVALID_ARGUMENT;
    if (a->request_id && (!a->request_id[0] || strlen(a->request_id) > 128))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "request_id must be 1-128 characters");
    return 0;
}

void cwsd_method_sandbox_create(struct cwsd_call *call, const msgpack_object *params)
{
    struct cws_error err;
    struct create_args a = {0};
    struct cwsd_session *s = NULL;
    char rid[40], session_tag[CWSD_TAG_MAX];
    const char *tags[4];
    msgpack_zone zone;
    msgpack_object merged;
    Coreweave__Sandbox__V1__CreateSandboxRequest *req = NULL;
    struct op *op = op_new(call);
    if (!op)
        return;
    msgpack_zone_init(&zone, 4096);
    if (create_params(params, op, &a, &err) < 0 || create_session(call, a.session, &s, &err) < 0)
        goto fail;
    enum cwsd_owner owner = a.owner >= 0 ? (enum cwsd_owner)a.owner
                            : s          ? CWSD_OWNER_SESSION
                                         : CWSD_OWNER_CLIENT;
    if (owner == CWSD_OWNER_SESSION && !s) {
        cws_error_set(&err, CWS_E_INVALID_ARGUMENT, "owner session needs a session");
        goto fail;
    }
    make_request_id(rid, sizeof(rid));
    daemon_tags(op->d, s, owner, session_tag, tags);
    if ((s && cwsd_session_merge_params(s, params, &zone, &merged, &err) < 0) ||
        cwsd_build_create_request(s ? &merged : params, a.request_id ? a.request_id : rid, tags,
                                  &op->arena, &req, &err) < 0)
        goto fail;
    if (!(op->pending = pending_new(call, s, owner, req))) {
        cws_error_set(&err, CWS_E_NOMEM, NULL);
        goto fail;
    }
    /* On disk before it is sent: a crash from here on is finished by the next start. */
    if (cwsd_registry_note_create(op->d, op->pending, &err) < 0) {
        cwsd_pending_free(op->pending);
        op->pending = NULL;
        goto fail;
    }
    op->wait = a.wait == 1;
    op->pending->sending = true;
    op->rpcs++;
    if (cwsd_rpc_unary(op->d, "CreateSandbox", &req->base,
                       &coreweave__sandbox__v1__sandbox__descriptor, op->timeout_ms, on_created, op,
                       &err) < 0) {
        op->rpcs--;
        cwsd_registry_note_create_failed(op->d, op->pending); /* it was never sent */
        op->pending = NULL;
        goto fail;
    }
    goto done;
fail:
    op_fail(op, &err);
done:
    msgpack_zone_destroy(&zone);
    free(a.request_id);
    free(a.session);
}

/* ---- sandbox.get ---- */

static void on_got(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct op *op = ud;
    if (!op_back(op))
        return;
    if (err)
        op_fail(op, err);
    else
        op_reply_info(op, (const Sandbox *)resp);
}

void cwsd_method_sandbox_get(struct cwsd_call *call, const msgpack_object *params)
{
    struct cws_error err;
    bool fresh = false;
    struct op *op = op_new(call);
    if (!op)
        return;
    if (get_id(params, op, &err) < 0 || cws_rpc_param_bool(params, "fresh", &fresh, &err) < 0) {
        op_fail(op, &err);
        return;
    }
    struct cwsd_sandbox *entry = cwsd_sandbox_find(op->d, op->id);
    Sandbox *cached = !fresh && entry ? cwsd_sandbox_cached(entry) : NULL;
    if (cached) {
        op_reply_info(op, cached);
        coreweave__sandbox__v1__sandbox__free_unpacked(cached, NULL);
        return;
    }
    Coreweave__Sandbox__V1__GetSandboxRequest req =
        COREWEAVE__SANDBOX__V1__GET_SANDBOX_REQUEST__INIT;
    req.sandbox_id = op->id;
    op_rpc(op, "GetSandbox", &req.base, &coreweave__sandbox__v1__sandbox__descriptor,
           DEFAULT_TIMEOUT_MS, on_got);
}

/* ---- sandbox.wait ---- */

void cwsd_method_sandbox_wait(struct cwsd_call *call, const msgpack_object *params)
{
    static const char *const untils[] = {"running", "terminal", NULL};
    struct cws_error err;
    int until = 0;
    struct op *op = op_new(call);
    if (!op)
        return;
    if (get_id(params, op, &err) < 0 ||
        cws_rpc_param_enum(params, "until", untils, &until, &err) < 0 ||
        get_timeout(params, &op->timeout_ms, &err) < 0) {
        op_fail(op, &err);
        return;
    }
    op_wait(op, op->id, until == 1 ? CWSD_UNTIL_TERMINAL : CWSD_UNTIL_RUNNING, op->timeout_ms);
}

/* ---- sandbox.stop / sandbox.delete ---- */

static void on_deleted(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct op *op = ud;
    const Coreweave__Sandbox__V1__DeleteSandboxResponse *r =
        (const Coreweave__Sandbox__V1__DeleteSandboxResponse *)resp;
    if (!op_back(op))
        return;
    if (err && !(op->missing_ok && err->code == CWS_E_NOT_FOUND)) {
        op_fail(op, err);
        return;
    }
    /* Missing and allowed: an error, or an empty response. */
    if (err || !r->sandbox) {
        op_reply_nil(op);
        return;
    }
    cwsd_sandbox_remember(op->d, r->sandbox);
    if (!op->wait)
        op_reply_info(op, r->sandbox);
    else
        op_wait(op, op->id, CWSD_UNTIL_TERMINAL, op->grace_s * 1000 + STOP_SLACK_MS);
}

static void send_delete(struct op *op, int32_t grace_s)
{
    Coreweave__Sandbox__V1__DeleteSandboxRequest req =
        COREWEAVE__SANDBOX__V1__DELETE_SANDBOX_REQUEST__INIT;
    req.sandbox_id = op->id;
    req.grace_period_seconds = grace_s;
    req.allow_missing = op->missing_ok;
    op_rpc(op, "DeleteSandbox", &req.base,
           &coreweave__sandbox__v1__delete_sandbox_response__descriptor,
           grace_s * 1000 + STOP_SLACK_MS, on_deleted);
}

void cwsd_method_sandbox_stop(struct cwsd_call *call, const msgpack_object *params)
{
    struct cws_error err;
    double grace = DEFAULT_GRACE_S;
    bool wait = true;
    struct op *op = op_new(call);
    if (!op)
        return;
    if (get_id(params, op, &err) < 0 || cws_rpc_param_nonneg(params, "grace_s", &grace, &err) < 0 ||
        cws_rpc_param_bool(params, "missing_ok", &op->missing_ok, &err) < 0 ||
        cws_rpc_param_bool(params, "wait", &wait, &err) < 0) {
        op_fail(op, &err);
        return;
    }
    if (grace > 86400) {
        op_failf(op, CWS_E_INVALID_ARGUMENT, "grace_s must be at most 86400");
        return;
    }
    op->wait = wait;
    /* Whole seconds, rounded up, as the SDK sends them. */
    op->grace_s = (int64_t)grace + (grace > (double)(int64_t)grace);
    send_delete(op, (int32_t)op->grace_s);
}

static void on_deleted_now(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct op *op = ud;
    (void)resp;
    if (!op_back(op))
        return;
    if (err && !(op->missing_ok && err->code == CWS_E_NOT_FOUND))
        op_fail(op, err);
    else
        op_reply_nil(op);
}

void cwsd_method_sandbox_delete(struct cwsd_call *call, const msgpack_object *params)
{
    struct cws_error err;
    struct op *op = op_new(call);
    if (!op)
        return;
    if (get_id(params, op, &err) < 0 ||
        cws_rpc_param_bool(params, "missing_ok", &op->missing_ok, &err) < 0) {
        op_fail(op, &err);
        return;
    }
    Coreweave__Sandbox__V1__DeleteSandboxRequest req =
        COREWEAVE__SANDBOX__V1__DELETE_SANDBOX_REQUEST__INIT;
    req.sandbox_id = op->id;
    req.allow_missing = op->missing_ok;
    op_rpc(op, "DeleteSandbox", &req.base,
           &coreweave__sandbox__v1__delete_sandbox_response__descriptor, DEFAULT_TIMEOUT_MS,
           on_deleted_now);
}

/* ---- sandbox.purge ---- */

static int pack_purge(msgpack_packer *pk, void *ud)
{
    const Coreweave__Sandbox__V1__PurgeSandboxesResponse *r = ud;
    if (msgpack_pack_map(pk, 2) || cws_rpc_pack_kv_int(pk, "count", r->purge_count) ||
        cws_rpc_pack_cstr(pk, "failed") ||
        msgpack_pack_array(pk, r->n_failed_sandbox_ids + r->n_retryable_failed_sandbox_ids))
        return -CWS_E_NOMEM;
    for (size_t i = 0; i < r->n_failed_sandbox_ids; i++)
        if (cws_rpc_pack_cstr(pk, r->failed_sandbox_ids[i]))
            return -CWS_E_NOMEM;
    for (size_t i = 0; i < r->n_retryable_failed_sandbox_ids; i++)
        if (cws_rpc_pack_cstr(pk, r->retryable_failed_sandbox_ids[i]))
            return -CWS_E_NOMEM;
    return 0;
}

static void on_purged(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct op *op = ud;
    if (!op_back(op))
        return;
    if (err) {
        op_fail(op, err);
        return;
    }
    cwsd_call_reply(op->call, pack_purge, (void *)resp);
    op->call = NULL;
    op_release(op);
}

void cwsd_method_sandbox_purge(struct cwsd_call *call, const msgpack_object *params)
{
    struct cws_error err;
    char **tags = NULL;
    size_t n_tags = 0;
    bool dry_run = false;
    struct op *op = op_new(call);
    if (!op)
        return;
    if (cws_rpc_required(cws_rpc_param_strv_array(params, "tags", &tags, &n_tags, &err), "tags",
                         &err) < 0 ||
        cws_rpc_param_bool(params, "dry_run", &dry_run, &err) < 0) {
        cws_strv_free(tags);
        op_fail(op, &err);
        return;
    }
    if (n_tags == 0) {
        cws_strv_free(tags);
        op_failf(op, CWS_E_INVALID_ARGUMENT, "tags must name at least one tag");
        return;
    }
    Coreweave__Sandbox__V1__PurgeSandboxesRequest req =
        COREWEAVE__SANDBOX__V1__PURGE_SANDBOXES_REQUEST__INIT;
    req.tags = tags;
    req.n_tags = n_tags;
    req.dry_run = dry_run;
    op_rpc(op, "PurgeSandboxes", &req.base,
           &coreweave__sandbox__v1__purge_sandboxes_response__descriptor, DEFAULT_TIMEOUT_MS,
           on_purged);
    cws_strv_free(tags);
}

/* ---- sandbox.list ---- */

static int pack_list(msgpack_packer *pk, void *ud)
{
    struct op *op = ud;
    if (msgpack_pack_map(pk, 1) || cws_rpc_pack_cstr(pk, "sandboxes") ||
        msgpack_pack_array(pk, op->n_items))
        return -CWS_E_NOMEM;
    for (size_t i = 0; i < op->n_items; i++) {
        Sandbox *sb = coreweave__sandbox__v1__sandbox__unpack(NULL, op->page_lens[i], op->pages[i]);
        if (!sb)
            return -CWS_E_NOMEM;
        struct info_args a = {sb, cwsd_sandbox_find(op->d, sb->sandbox_id)};
        int r = pack_info(pk, &a);
        coreweave__sandbox__v1__sandbox__free_unpacked(sb, NULL);
        if (r < 0)
            return r;
    }
    return 0;
}

static int keep_item(struct op *op, const Sandbox *sb)
{
    if (op->n_items == op->cap_items) {
        size_t cap = op->cap_items ? op->cap_items * 2 : 64;
        uint8_t **pages = realloc(op->pages, cap * sizeof(*pages));
        if (pages)
            op->pages = pages;
        size_t *lens = pages ? realloc(op->page_lens, cap * sizeof(*lens)) : NULL;
        if (!pages || !lens)
            return -CWS_E_NOMEM;
        op->page_lens = lens;
        op->cap_items = cap;
    }
    size_t len = coreweave__sandbox__v1__sandbox__get_packed_size(sb);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return -CWS_E_NOMEM;
    coreweave__sandbox__v1__sandbox__pack(sb, buf);
    op->pages[op->n_items] = buf;
    op->page_lens[op->n_items++] = len;
    return 0;
}

static void request_page(struct op *op);

static void on_page(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct op *op = ud;
    const Coreweave__Sandbox__V1__ListSandboxesResponse *r =
        (const Coreweave__Sandbox__V1__ListSandboxesResponse *)resp;
    if (!op_back(op))
        return;
    if (err) {
        op_fail(op, err);
        return;
    }
    for (size_t i = 0; i < r->n_sandboxes; i++) {
        if (keep_item(op, r->sandboxes[i]) < 0) {
            op_failf(op, CWS_E_NOMEM, "out of memory listing sandboxes");
            return;
        }
        cwsd_sandbox_remember(op->d, r->sandboxes[i]);
    }
    if (!r->next_page_token[0]) {
        cwsd_call_reply(op->call, pack_list, op);
        op->call = NULL;
        op_release(op);
        return;
    }
    if (op->token && strcmp(op->token, r->next_page_token) == 0) {
        op_failf(op, CWS_E_PROTOCOL, "the backend repeated a page token: pagination loop");
        return;
    }
    if (++op->n_pages >= LIST_PAGES_MAX) {
        op_failf(op, CWS_E_OUT_OF_RANGE, "more than %d pages of sandboxes", LIST_PAGES_MAX);
        return;
    }
    free(op->token);
    op->token = strdup(r->next_page_token);
    request_page(op);
}

static void request_page(struct op *op)
{
    op->list_req.page_token = op->token ? op->token : (char *)"";
    op_rpc(op, "ListSandboxes", &op->list_req.base,
           &coreweave__sandbox__v1__list_sandboxes_response__descriptor, DEFAULT_TIMEOUT_MS,
           on_page);
}

static int parse_state(const char *name, Coreweave__Sandbox__V1__State *ret)
{
    for (int s = 0; s <= 8; s++) {
        if (strcmp(cwsd_state_name((Coreweave__Sandbox__V1__State)s), name) == 0) {
            *ret = (Coreweave__Sandbox__V1__State)s;
            return 0;
        }
    }
    return -1;
}

static int copy_strv(struct op *op, const msgpack_object *params, const char *key, char ***ret,
                     size_t *ret_n, struct cws_error *err)
{
    char **v = NULL;
    size_t n = 0;
    int r = cws_rpc_param_strv_array(params, key, &v, &n, err);
    if (r <= 0)
        return r;
    char **copy = cwsd_arena_alloc(&op->arena, (n + 1) * sizeof(*copy));
    for (size_t i = 0; copy && i < n; i++)
        copy[i] = cwsd_arena_strdup(&op->arena, v[i]);
    cws_strv_free(v);
    if (!copy)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    *ret = copy;
    *ret_n = n;
    return 1;
}

/* list {session}: the session's tag and this daemon's owner tag join the tag filter. */
static int add_session_filter(struct op *op, const msgpack_object *params, struct cws_error *err)
{
    Coreweave__Sandbox__V1__ListSandboxesRequest *req = &op->list_req;
    char *session = NULL, tag[CWSD_TAG_MAX];
    int r = cws_rpc_param_str(params, "session", &session, err);
    if (r <= 0)
        return r;
    if (!cwsd_session_name_valid(session, "session", err)) {
        free(session);
        return -CWS_E_INVALID_ARGUMENT;
    }
    cwsd_session_tag(session, tag);
    free(session);
    char **tags = cwsd_arena_alloc(&op->arena, (req->n_tags + 3) * sizeof(*tags));
    if (!tags)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    for (size_t i = 0; i < req->n_tags; i++)
        tags[i] = req->tags[i];
    tags[req->n_tags] = cwsd_arena_strdup(&op->arena, tag);
    tags[req->n_tags + 1] = op->d->owner_tag;
    if (!tags[req->n_tags])
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    req->tags = tags;
    req->n_tags += 2;
    return 0;
}

void cwsd_method_sandbox_list(struct cwsd_call *call, const msgpack_object *params)
{
    struct cws_error err;
    char *state = NULL;
    bool show_terminated = false;
    struct op *op = op_new(call);
    if (!op)
        return;
    Coreweave__Sandbox__V1__ListSandboxesRequest *req = &op->list_req;
    coreweave__sandbox__v1__list_sandboxes_request__init(req);
    if (copy_strv(op, params, "tags", &req->tags, &req->n_tags, &err) < 0 ||
        copy_strv(op, params, "runner_ids", &req->runner_ids, &req->n_runner_ids, &err) < 0 ||
        cws_rpc_param_bool(params, "show_terminated", &show_terminated, &err) < 0 ||
        cws_rpc_param_str(params, "state", &state, &err) < 0) {
        op_fail(op, &err);
        return;
    }
    req->show_terminated = show_terminated;
    if (add_session_filter(op, params, &err) < 0) {
        free(state);
        op_fail(op, &err);
        return;
    }
    if (state && parse_state(state, &req->state) < 0) {
        op_failf(op, CWS_E_INVALID_ARGUMENT,
                 "state must be one of creating, pending, running, paused, terminating, "
                 "completed, failed, terminated, not '%s'",
                 state);
        free(state);
        return;
    }
    free(state);
    request_page(op);
}
