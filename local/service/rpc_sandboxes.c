/* CreateSandbox, GetSandbox, ListSandboxes, DeleteSandbox and PurgeSandboxes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "service.h"

#define STATE(x)          COREWEAVE__SANDBOX__V1__STATE__STATE_##x
#define PAGE_TOKEN_PREFIX "p1."

typedef Coreweave__Sandbox__V1__CreateSandboxRequest CreateSandboxRequest;
typedef Coreweave__Sandbox__V1__GetSandboxRequest GetSandboxRequest;
typedef Coreweave__Sandbox__V1__ListSandboxesRequest ListSandboxesRequest;
typedef Coreweave__Sandbox__V1__ListSandboxesResponse ListSandboxesResponse;
typedef Coreweave__Sandbox__V1__DeleteSandboxRequest DeleteSandboxRequest;
typedef Coreweave__Sandbox__V1__DeleteSandboxResponse DeleteSandboxResponse;
typedef Coreweave__Sandbox__V1__PurgeSandboxesRequest PurgeSandboxesRequest;
typedef Coreweave__Sandbox__V1__PurgeSandboxesResponse PurgeSandboxesResponse;

/* Send one Sandbox message built from a record and finish OK. */
static void answer_sandbox(struct cws_gcall *call, struct lsb *sb)
{
    struct lsb_view v;
    if (lsb_view_init(sb, &v) < 0) {
        lsb_view_clear(&v);
        svc_fail(call, GRPC_INTERNAL, NULL, NULL, "out of memory");
        return;
    }
    cws_gcall_send_pb(call, &v.msg.base);
    lsb_view_clear(&v);
    cws_gcall_finish(call, NULL);
}

static void fail_violations(struct cws_gcall *call, const struct svc_violations *v)
{
    char message[256];
    snprintf(message, sizeof(message), "invalid CreateSandbox request: %s: %s", v->v[0].field,
             v->v[0].description);
    struct cws_gstatus st = {
        .grpc_code = GRPC_INVALID_ARGUMENT,
        .message = message,
        .retry_delay_ms = -1,
        .violations = v->v,
        .n_violations = v->n,
    };
    cws_gcall_finish(call, &st);
}

static void create_sandbox(struct svc *svc, struct cws_gcall *call, const ProtobufCMessage *m)
{
    const CreateSandboxRequest *req = (const CreateSandboxRequest *)m;
    struct svc_violations v;
    struct cws_error err;

    svc_validate_create(req, &v);
    if (v.n > 0) {
        fail_violations(call, &v);
        return;
    }
    /* A repeated request_id is a retry: answer with the sandbox it created. */
    struct lsb *sb = lsb_find_request(svc, req->request_id);
    if (!sb && lsb_create(svc, req, &sb, &err) < 0) {
        svc_fail_error(call, &err, NULL);
        return;
    }
    answer_sandbox(call, sb);
}

static void get_sandbox(struct svc *svc, struct cws_gcall *call, const ProtobufCMessage *m)
{
    const GetSandboxRequest *req = (const GetSandboxRequest *)m;
    struct lsb *sb = svc_sandbox_or_fail(svc, call, req->sandbox_id);
    if (sb)
        answer_sandbox(call, sb);
}

/* ---- listing ---- */

static bool is_terminal_state(SandboxState s)
{
    return s == STATE(COMPLETED) || s == STATE(FAILED) || s == STATE(TERMINATED);
}

static bool has_tag(const SandboxSpec *spec, const char *tag)
{
    for (size_t i = 0; i < spec->n_tags; i++)
        if (strcmp(spec->tags[i], tag) == 0)
            return true;
    return false;
}

static bool has_all_tags(const SandboxSpec *spec, char **tags, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!has_tag(spec, tags[i]))
            return false;
    return true;
}

static bool runs_on_any(const SandboxSpec *spec, char **runners, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(runners[i], CWS_SVC_RUNNER_ID) == 0)
            return true;
        for (size_t j = 0; j < spec->n_runner_ids; j++)
            if (strcmp(runners[i], spec->runner_ids[j]) == 0)
                return true;
    }
    return false;
}

static bool list_matches(const struct lsb *sb, const ListSandboxesRequest *req)
{
    bool terminal_wanted = req->show_terminated || is_terminal_state(req->state);
    if (lsb_is_terminal(sb) && !terminal_wanted)
        return false;
    if (req->state != STATE(UNSPECIFIED) && sb->state != req->state)
        return false;
    if (req->n_volume_ids > 0) /* no local sandbox has volumes attached */
        return false;
    return has_all_tags(sb->spec, req->tags, req->n_tags) &&
           runs_on_any(sb->spec, req->runner_ids, req->n_runner_ids);
}

/* Sandboxes are listed by (create time, id); a page token is the key of the last one sent. */
struct list_key {
    int64_t create_ns;
    const char *id;
};

static int key_cmp(const struct list_key *a, const struct list_key *b)
{
    if (a->create_ns != b->create_ns)
        return a->create_ns < b->create_ns ? -1 : 1;
    return strcmp(a->id, b->id);
}

static int lsb_cmp(const void *pa, const void *pb)
{
    const struct lsb *a = *(struct lsb *const *)pa, *b = *(struct lsb *const *)pb;
    struct list_key ka = {a->create_ns, a->id}, kb = {b->create_ns, b->id};
    return key_cmp(&ka, &kb);
}

static bool parse_page_token(const char *token, struct list_key *ret)
{
    char *end;
    if (strncmp(token, PAGE_TOKEN_PREFIX, strlen(PAGE_TOKEN_PREFIX)) != 0)
        return false;
    const char *p = token + strlen(PAGE_TOKEN_PREFIX);
    long long ns = strtoll(p, &end, 10);
    if (end == p || *end != '.' || ns < 0 || !end[1])
        return false;
    ret->create_ns = ns;
    ret->id = end + 1;
    return true;
}

static int page_size_of(const ListSandboxesRequest *req)
{
    if (req->page_size <= 0)
        return CWS_SVC_PAGE_DEFAULT;
    return req->page_size > CWS_SVC_PAGE_MAX ? CWS_SVC_PAGE_MAX : req->page_size;
}

/* Matching records after the token, sorted. The caller frees *ret. */
static int collect_matches(struct svc *svc, const ListSandboxesRequest *req,
                           const struct list_key *after, struct lsb ***ret, size_t *ret_n)
{
    struct lsb **all = calloc(svc->n_sandboxes + 1, sizeof(*all));
    size_t n = 0;
    if (!all)
        return -CWS_E_NOMEM;
    for (struct lsb *sb = svc->sandboxes; sb; sb = sb->next) {
        struct list_key k = {sb->create_ns, sb->id};
        if (list_matches(sb, req) && (!after || key_cmp(&k, after) > 0))
            all[n++] = sb;
    }
    qsort(all, n, sizeof(*all), lsb_cmp);
    *ret = all;
    *ret_n = n;
    return 0;
}

static void send_page(struct cws_gcall *call, struct lsb **items, size_t n, size_t total)
{
    ListSandboxesResponse resp = COREWEAVE__SANDBOX__V1__LIST_SANDBOXES_RESPONSE__INIT;
    struct lsb_view *views = calloc(n + 1, sizeof(*views));
    Sandbox **msgs = calloc(n + 1, sizeof(*msgs));
    char token[256] = "";
    bool ok = views && msgs;

    for (size_t i = 0; ok && i < n; i++) {
        ok = lsb_view_init(items[i], &views[i]) == 0;
        msgs[i] = &views[i].msg;
    }
    if (ok && total > n)
        snprintf(token, sizeof(token), PAGE_TOKEN_PREFIX "%" PRId64 ".%s", items[n - 1]->create_ns,
                 items[n - 1]->id);
    resp.n_sandboxes = n;
    resp.sandboxes = msgs;
    resp.next_page_token = token;
    if (ok) {
        cws_gcall_send_pb(call, &resp.base);
        cws_gcall_finish(call, NULL);
    } else {
        svc_fail(call, GRPC_INTERNAL, NULL, NULL, "out of memory");
    }
    for (size_t i = 0; views && i < n; i++)
        lsb_view_clear(&views[i]);
    free(views);
    free(msgs);
}

static void list_sandboxes(struct svc *svc, struct cws_gcall *call, const ProtobufCMessage *m)
{
    const ListSandboxesRequest *req = (const ListSandboxesRequest *)m;
    struct list_key after;
    struct lsb **items = NULL;
    size_t n = 0;

    if (req->page_size < 0) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL, "page_size must not be negative");
        return;
    }
    if (req->page_token[0] && !parse_page_token(req->page_token, &after)) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL, "invalid page_token '%.64s'",
                 req->page_token);
        return;
    }
    if (collect_matches(svc, req, req->page_token[0] ? &after : NULL, &items, &n) < 0) {
        svc_fail(call, GRPC_INTERNAL, NULL, NULL, "out of memory");
        return;
    }
    size_t page = (size_t)page_size_of(req);
    send_page(call, items, n < page ? n : page, n);
    free(items);
}

/* ---- stopping ---- */

static void delete_sandbox(struct svc *svc, struct cws_gcall *call, const ProtobufCMessage *m)
{
    const DeleteSandboxRequest *req = (const DeleteSandboxRequest *)m;

    if (req->allow_missing && req->n_snapshot_volumes > 0) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, "CWSANDBOX_INVALID_REQUEST", NULL,
                 "allow_missing cannot be combined with snapshot_volumes");
        return;
    }
    if (req->n_snapshot_volumes > 0) {
        svc_fail(call, GRPC_UNIMPLEMENTED, NULL, NULL,
                 "file system snapshots are not implemented by cwsandbox-local yet");
        return;
    }
    if (req->grace_period_seconds < 0) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL,
                 "grace_period_seconds must not be negative");
        return;
    }
    if (!req->sandbox_id[0]) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL, "sandbox_id is required");
        return;
    }
    struct lsb *sb = lsb_find(svc, req->sandbox_id);
    if (!sb && req->allow_missing) {
        /* An empty response tells the clients the sandbox was already gone. */
        DeleteSandboxResponse resp = COREWEAVE__SANDBOX__V1__DELETE_SANDBOX_RESPONSE__INIT;
        cws_gcall_send_pb(call, &resp.base);
        cws_gcall_finish(call, NULL);
        return;
    }
    if (!sb) {
        svc_fail_not_found(call, req->sandbox_id);
        return;
    }
    lsb_stop(sb, req->grace_period_seconds);
    DeleteSandboxResponse resp = COREWEAVE__SANDBOX__V1__DELETE_SANDBOX_RESPONSE__INIT;
    struct lsb_view v;
    if (lsb_view_init(sb, &v) < 0) {
        lsb_view_clear(&v);
        svc_fail(call, GRPC_INTERNAL, NULL, NULL, "out of memory");
        return;
    }
    resp.sandbox = &v.msg;
    cws_gcall_send_pb(call, &resp.base);
    lsb_view_clear(&v);
    cws_gcall_finish(call, NULL);
}

static void purge_sandboxes(struct svc *svc, struct cws_gcall *call, const ProtobufCMessage *m)
{
    const PurgeSandboxesRequest *req = (const PurgeSandboxesRequest *)m;
    PurgeSandboxesResponse resp = COREWEAVE__SANDBOX__V1__PURGE_SANDBOXES_RESPONSE__INIT;

    if (req->request_id[0]) {
        svc_fail(call, GRPC_UNIMPLEMENTED, NULL, NULL,
                 "PurgeSandboxes with a request_id is not implemented");
        return;
    }
    if ((req->n_tags > 0) == req->purge_all) {
        svc_fail(call, GRPC_INVALID_ARGUMENT, NULL, NULL, "give exactly one of tags and purge_all");
        return;
    }
    struct lsb *next;
    for (struct lsb *sb = svc->sandboxes; sb; sb = next) {
        next = sb->next;
        if (lsb_is_terminal(sb) || !has_all_tags(sb->spec, req->tags, req->n_tags))
            continue;
        resp.purge_count++;
        if (!req->dry_run)
            lsb_stop(sb, 0);
    }
    cws_log(CWS_LOG_INFO, "purge%s: %d sandboxes", req->dry_run ? " (dry run)" : "",
            resp.purge_count);
    cws_gcall_send_pb(call, &resp.base);
    cws_gcall_finish(call, NULL);
}

/* ---- method entry points ---- */

#define UNARY_START(name, fn, desc)                                                                \
    int svc_start_##name(struct cws_gcall *call, void *server_ud,                                  \
                         struct cws_gcall_handlers *ret_handlers, void **ret_call_ud,              \
                         struct cws_gstatus *ret_status)                                           \
    {                                                                                              \
        (void)ret_status;                                                                          \
        return svc_start_unary(call, server_ud, &(desc), fn, ret_handlers, ret_call_ud);           \
    }

UNARY_START(create_sandbox, create_sandbox,
            coreweave__sandbox__v1__create_sandbox_request__descriptor)
UNARY_START(get_sandbox, get_sandbox, coreweave__sandbox__v1__get_sandbox_request__descriptor)
UNARY_START(list_sandboxes, list_sandboxes,
            coreweave__sandbox__v1__list_sandboxes_request__descriptor)
UNARY_START(delete_sandbox, delete_sandbox,
            coreweave__sandbox__v1__delete_sandbox_request__descriptor)
UNARY_START(purge_sandboxes, purge_sandboxes,
            coreweave__sandbox__v1__purge_sandboxes_request__descriptor)
