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
#include "rpc_encode.h"
#include "rpc_params.h"
#include "sandbox_config.h"
#include "sandbox_table.h"
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
    /* sandbox.create */
    const char *owner;
    char *session;
    uint64_t client_id;
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
    free(op->session);
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
                                  a->entry ? a->entry->owner : NULL);
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
static void track_created(struct op *op, const char *id)
{
    struct cwsd_sandbox *e = cwsd_sandbox_track(op->d, id);
    if (!e)
        return;
    free(e->owner);
    free(e->session);
    e->owner = strdup(op->owner);
    e->session = op->session ? strdup(op->session) : NULL;
    e->client_id = op->client_id;
}

static void on_created(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct op *op = ud;
    const Sandbox *sb = (const Sandbox *)resp;
    if (!op_back(op))
        return;
    if (err) {
        op_fail(op, err);
        return;
    }
    if (!sb->sandbox_id[0]) {
        op_failf(op, CWS_E_PROTOCOL, "the backend created a sandbox without an id");
        return;
    }
    track_created(op, sb->sandbox_id);
    cwsd_sandbox_remember(op->d, sb);
    cws_log(CWS_LOG_INFO, "created sandbox %s (owner %s)", sb->sandbox_id, op->owner);
    if (op->wait)
        op_wait(op, sb->sandbox_id, CWSD_UNTIL_RUNNING, op->timeout_ms);
    else
        op_reply_info(op, sb);
}

void cwsd_method_sandbox_create(struct cwsd_call *call, const msgpack_object *params)
{
    static const char *const waits[] = {"none", "running", NULL};
    static const char *const owners[] = {"client", "session", "detached", NULL};
    struct cws_error err;
    char rid[40];
    char *request_id = NULL, *session = NULL;
    int wait = 0, owner = -1;
    Coreweave__Sandbox__V1__CreateSandboxRequest *req = NULL;
    struct op *op = op_new(call);
    if (!op)
        return;
    if (cws_rpc_param_enum(params, "wait", waits, &wait, &err) < 0 ||
        cws_rpc_param_enum(params, "owner", owners, &owner, &err) < 0 ||
        cws_rpc_param_str(params, "session", &session, &err) < 0 ||
        cws_rpc_param_str(params, "request_id", &request_id, &err) < 0 ||
        get_timeout(params, &op->timeout_ms, &err) < 0)
        goto fail;
    make_request_id(rid, sizeof(rid));
    if (cwsd_build_create_request(params, request_id ? request_id : rid, NULL, &op->arena, &req,
                                  &err) < 0)
        goto fail;
    op->wait = wait == 1;
    op->owner = owner >= 0 ? owners[owner] : (session ? "session" : "client");
    op->session = session;
    op->client_id = call->client->id;
    free(request_id);
    op_rpc(op, "CreateSandbox", &req->base, &coreweave__sandbox__v1__sandbox__descriptor,
           op->timeout_ms, on_created);
    return;
fail:
    free(request_id);
    free(session);
    op_fail(op, &err);
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
