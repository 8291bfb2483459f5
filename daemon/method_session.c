/* session.open, .close, .list, .get and sandbox.adopt, .detach (docs/sessions.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "arena.h"
#include "backend_rpc.h"
#include "daemon.h"
#include "reaper.h"
#include "registry.h"
#include "rpc_encode.h"
#include "rpc_params.h"
#include "sandbox_config.h"
#include "sandbox_table.h"
#include "session.h"
#include "watch.h"

#define GET_CALL_MS 30000

static int pack_session(msgpack_packer *pk, void *ud)
{
    return cwsd_session_pack(pk, ud);
}

/* The session named params.name; NOT_FOUND names it. */
static struct cwsd_session *named_session(struct cwsd_call *call, const msgpack_object *params)
{
    struct cws_error err;
    char *name = NULL;
    struct cwsd_session *s = NULL;
    if (cws_rpc_required(cws_rpc_param_str(params, "name", &name, &err), "name", &err) < 0) {
        cwsd_call_fail(call, &err);
        return NULL;
    }
    if (!(s = cwsd_session_find(call->client->d, name)))
        cwsd_call_failf(call, CWS_E_NOT_FOUND, "no session named '%s'", name);
    free(name);
    return s;
}

/* ---- session.open ---- */

static void random_name(char buf[16])
{
    uint8_t r[4] = {0};
    if (getrandom(r, sizeof(r), 0) != sizeof(r))
        memset(r, 0x5a, sizeof(r));
    snprintf(buf, 16, "s-%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
}

/* Defaults are checked as a create would check them, so a bad key fails here, not later. */
static int check_defaults(const msgpack_object *defaults, struct cws_error *err)
{
    msgpack_object_kv kv = {.key = {.type = MSGPACK_OBJECT_STR, .via.str = {6, "config"}},
                            .val = *defaults};
    msgpack_object params = {.type = MSGPACK_OBJECT_MAP, .via.map = {1, &kv}};
    struct cwsd_arena arena = {0};
    Coreweave__Sandbox__V1__CreateSandboxRequest *req;
    int r = cwsd_build_create_request(&params, "", NULL, &arena, &req, err);
    cwsd_arena_free(&arena);
    if (r < 0 && err->message[0])
        cws_error_set(err, (enum cws_errcode) - r, "defaults: %s", err->message);
    return r;
}

/* An open naming an existing session with defaults or a TTL replaces them. */
static int update_session(struct cwsd_session *s, const msgpack_object *defaults, double ttl,
                          bool has_ttl, struct cws_error *err)
{
    struct cwsd_session *fresh;
    if (!defaults && !has_ttl)
        return 0;
    msgpack_object old_defaults;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    size_t off = 0;
    if (!defaults && s->defaults &&
        msgpack_unpack((const char *)s->defaults, s->defaults_len, &off, &zone, &old_defaults) ==
            MSGPACK_UNPACK_SUCCESS)
        defaults = &old_defaults;
    char *name = strdup(s->name);
    int64_t created = s->created_ms;
    ttl = has_ttl ? ttl : s->idle_ttl_s;
    int r = name ? 0 : cws_error_set(err, CWS_E_NOMEM, NULL);
    if (r == 0) {
        /* Replace the entry: its sandboxes and clients refer to it by name. */
        struct cwsd *d = s->d;
        cwsd_session_remove(s);
        r = cwsd_session_new(d, name, defaults, ttl, created, &fresh, err);
    }
    free(name);
    msgpack_zone_destroy(&zone);
    return r;
}

void cwsd_method_session_open(struct cwsd_call *call, const msgpack_object *params)
{
    struct cwsd *d = call->client->d;
    struct cws_error err;
    char *name = NULL, generated[16];
    const msgpack_object *defaults = NULL;
    double ttl = 0;
    struct cwsd_session *s = NULL;
    int has_ttl = 0;
    if (cws_rpc_param_str(params, "name", &name, &err) < 0 ||
        cws_rpc_param_map(params, "defaults", &defaults, &err) < 0 ||
        (has_ttl = cws_rpc_param_nonneg(params, "idle_ttl_s", &ttl, &err)) < 0 ||
        (ttl > CWSD_SESSION_TTL_MAX &&
         cws_error_set(&err, CWS_E_INVALID_ARGUMENT, "idle_ttl_s must be at most 1e9") < 0) ||
        (name && !cwsd_session_name_valid(name, "name", &err)) ||
        (defaults && check_defaults(defaults, &err) < 0))
        goto fail;
    if (!name) {
        random_name(generated);
        name = strdup(generated);
    }
    s = name ? cwsd_session_find(d, name) : NULL;
    if (s && update_session(s, defaults, ttl, has_ttl == 1, &err) < 0)
        goto fail;
    if (name && !s &&
        cwsd_session_new(d, name, defaults, has_ttl == 1 ? ttl : d->cfg.session_idle_ttl_s,
                         cwsd_wall_ms(), &s, &err) < 0)
        goto fail;
    if (!name || !(s = cwsd_session_find(d, name))) {
        cws_error_set(&err, CWS_E_NOMEM, NULL);
        goto fail;
    }
    if (cwsd_session_attach(call->client, s, &err) < 0)
        goto fail;
    cwsd_log_about(CWS_LOG_INFO, NULL, s->name, call->client->pid, "client %llu joined session %s",
                   (unsigned long long)call->client->id, s->name);
    free(name);
    cwsd_call_reply(call, pack_session, s);
    return;
fail:
    free(name);
    cwsd_call_fail(call, &err);
}

/* ---- session.close ---- */

struct close_call {
    struct cwsd_call *call; /* NULL once the client cancelled or went away */
};

struct close_result {
    size_t stopped;
    char *const *failed;
    size_t n_failed;
};

static int pack_closed(msgpack_packer *pk, void *ud)
{
    const struct close_result *r = ud;
    if (msgpack_pack_map(pk, 2) || cws_rpc_pack_kv_uint(pk, "stopped", r->stopped) ||
        cws_rpc_pack_cstr(pk, "failed") || msgpack_pack_array(pk, r->n_failed))
        return -CWS_E_NOMEM;
    for (size_t i = 0; i < r->n_failed; i++)
        if (cws_rpc_pack_cstr(pk, r->failed[i]))
            return -CWS_E_NOMEM;
    return 0;
}

static void on_closed(void *ud, size_t stopped, char *const *failed, size_t n_failed)
{
    struct close_call *cc = ud;
    struct close_result r = {stopped, failed, n_failed};
    if (cc->call) {
        cc->call->on_cancel = NULL;
        cwsd_call_reply(cc->call, pack_closed, &r);
    }
    free(cc);
}

static void close_cancelled(struct cwsd_call *call, void *ud)
{
    struct close_call *cc = ud;
    (void)call;
    cc->call = NULL; /* the stops go on; nobody hears the answer */
}

void cwsd_method_session_close(struct cwsd_call *call, const msgpack_object *params)
{
    struct cws_error err;
    bool stop = true;
    if (cws_rpc_param_bool(params, "stop", &stop, &err) < 0) {
        cwsd_call_fail(call, &err);
        return;
    }
    struct cwsd_session *s = named_session(call, params);
    if (!s)
        return;
    struct close_call *cc = calloc(1, sizeof(*cc));
    if (!cc) {
        cwsd_call_failf(call, CWS_E_NOMEM, "out of memory");
        return;
    }
    cc->call = call;
    call->on_cancel = close_cancelled;
    call->ud = cc;
    if (call->client->session && strcmp(call->client->session, s->name) == 0)
        cwsd_session_detach(call->client);
    cwsd_session_close(s, stop, on_closed, cc);
}

/* ---- session.list, session.get ---- */

static int pack_sessions(msgpack_packer *pk, void *ud)
{
    const struct cwsd *d = ud;
    if (msgpack_pack_map(pk, 1) || cws_rpc_pack_cstr(pk, "sessions") ||
        msgpack_pack_array(pk, cwsd_session_count(d)))
        return -CWS_E_NOMEM;
    for (const struct cwsd_session *s = d->sessions; s; s = s->next)
        if (cwsd_session_pack(pk, s) < 0)
            return -CWS_E_NOMEM;
    return 0;
}

void cwsd_method_session_list(struct cwsd_call *call, const msgpack_object *params)
{
    (void)params;
    cwsd_call_reply(call, pack_sessions, call->client->d);
}

void cwsd_method_session_get(struct cwsd_call *call, const msgpack_object *params)
{
    struct cwsd_session *s = named_session(call, params);
    if (s)
        cwsd_call_reply(call, pack_session, s);
}

/* ---- sandbox.adopt, sandbox.detach ---- */

/* A change of owner, applied once the backend confirmed the sandbox exists. */
struct owner_change {
    struct cwsd *d;
    struct cwsd_call *call; /* NULL once the client cancelled or went away */
    char *id;
    char *session; /* adopt: the session; detach: NULL */
    bool in_flight;
};

static void change_free(struct owner_change *oc)
{
    free(oc->id);
    free(oc->session);
    free(oc);
}

static void change_cancelled(struct cwsd_call *call, void *ud)
{
    struct owner_change *oc = ud;
    (void)call;
    oc->call = NULL;
    if (!oc->in_flight)
        change_free(oc);
}

struct info_args {
    const Coreweave__Sandbox__V1__Sandbox *sb;
    const struct cwsd_sandbox *e;
};

static int pack_info(msgpack_packer *pk, void *ud)
{
    const struct info_args *a = ud;
    return cwsd_pack_sandbox_info(pk, a->sb, a->e->session, cwsd_owner_name(a->e->owner));
}

static int apply_change(struct owner_change *oc, struct cwsd_sandbox **ret, struct cws_error *err)
{
    struct cwsd_sandbox *e =
        oc->session ? cwsd_sandbox_track(oc->d, oc->id) : cwsd_sandbox_find(oc->d, oc->id);
    if (!e)
        return oc->session ? cws_error_set(err, CWS_E_NOMEM, NULL)
                           : cws_error_set(err, CWS_E_NOT_FOUND,
                                           "sandbox %s is not tracked by this daemon", oc->id);
    free(e->session);
    e->session = oc->session;
    oc->session = NULL;
    e->owner = e->session ? CWSD_OWNER_SESSION : CWSD_OWNER_DETACHED;
    e->client_id = 0;
    cwsd_registry_note_owner(oc->d, e);
    cwsd_log_about(CWS_LOG_INFO, e->id, e->session, 0, "sandbox %s is now owned by %s%s", e->id,
                   e->session ? "session " : "nobody (detached)", e->session ? e->session : "");
    *ret = e;
    return 0;
}

static void on_checked(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct owner_change *oc = ud;
    const Coreweave__Sandbox__V1__Sandbox *sb = (const Coreweave__Sandbox__V1__Sandbox *)resp;
    struct cws_error aerr;
    struct cwsd_sandbox *e = NULL;
    oc->in_flight = false;
    if (!err && sb->status && cwsd_state_is_terminal(sb->status->state)) {
        cws_error_set(&aerr, CWS_E_FAILED_PRECONDITION, "sandbox %s has already ended", oc->id);
        err = &aerr;
    }
    if (!err && apply_change(oc, &e, &aerr) < 0)
        err = &aerr;
    if (!err)
        cwsd_sandbox_remember(oc->d, sb);
    if (oc->call) {
        oc->call->on_cancel = NULL;
        struct info_args a = {sb, e};
        if (err)
            cwsd_call_fail(oc->call, err);
        else
            cwsd_call_reply(oc->call, pack_info, &a);
    }
    change_free(oc);
}

static void change_owner(struct cwsd_call *call, const msgpack_object *params, bool adopt)
{
    struct cws_error err;
    struct owner_change *oc = calloc(1, sizeof(*oc));
    if (!oc) {
        cwsd_call_failf(call, CWS_E_NOMEM, "out of memory");
        return;
    }
    oc->d = call->client->d;
    if (cws_rpc_required(cws_rpc_param_str(params, "id", &oc->id, &err), "id", &err) < 0 ||
        (adopt && cws_rpc_required(cws_rpc_param_str(params, "session", &oc->session, &err),
                                   "session", &err) < 0) ||
        (adopt && !cwsd_session_name_valid(oc->session, "session", &err)))
        goto fail;
    struct cwsd_session *s;
    if (adopt && cwsd_session_get_or_new(oc->d, oc->session, &s, &err) < 0)
        goto fail;
    if (!adopt && !cwsd_sandbox_find(oc->d, oc->id)) {
        cws_error_set(&err, CWS_E_NOT_FOUND, "sandbox %s is not tracked by this daemon", oc->id);
        goto fail;
    }
    /* Ask the backend: adopting needs a sandbox that exists and runs. */
    Coreweave__Sandbox__V1__GetSandboxRequest req =
        COREWEAVE__SANDBOX__V1__GET_SANDBOX_REQUEST__INIT;
    req.sandbox_id = oc->id;
    oc->call = call;
    oc->in_flight = true;
    call->on_cancel = change_cancelled;
    call->ud = oc;
    if (cwsd_rpc_unary(oc->d, "GetSandbox", &req.base, &coreweave__sandbox__v1__sandbox__descriptor,
                       GET_CALL_MS, on_checked, oc, &err) < 0) {
        call->on_cancel = NULL;
        goto fail;
    }
    return;
fail:
    change_free(oc);
    cwsd_call_fail(call, &err);
}

void cwsd_method_sandbox_adopt(struct cwsd_call *call, const msgpack_object *params)
{
    change_owner(call, params, true);
}

void cwsd_method_sandbox_detach(struct cwsd_call *call, const msgpack_object *params)
{
    change_owner(call, params, false);
}
