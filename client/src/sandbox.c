/* The sandbox methods: sandbox.create, .get, .list, .wait, .stop, .delete, .adopt, .detach,
 * .purge (docs/protocol.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A create/run waits at most the daemon's deadline plus this, so that a daemon that never
 * answers cannot hang the caller. */
#define RUN_MARGIN_MS  30000
#define DEFAULT_WAIT_S 300.0
#define PACK_OK(expr)  ((expr) == 0)

/* ---- op types ---- */

static void free_info(void *state)
{
    cwsc_sandbox_info_clear(state);
    free(state);
}

static int parse_info(cws_op *op, const msgpack_object *result, struct cws_error *err)
{
    /* A stop with missing_ok of a sandbox that does not exist has nothing to say. */
    if (result->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (cwsc_sandbox_info_parse(result, op->state, err) < 0)
        return cwsc_bad_result(err, op->method);
    return 0;
}

const struct cwsc_op_type cwsc_sandbox_type = {
    .name = "sandbox",
    .parse = parse_info,
    .free_state = free_info,
};

struct list_state {
    struct cws_sandbox_info *v;
    size_t n;
};

static void free_list(void *state)
{
    struct list_state *l = state;
    for (size_t i = 0; i < l->n; i++)
        cwsc_sandbox_info_clear(&l->v[i]);
    free(l->v);
    free(l);
}

static int parse_list(cws_op *op, const msgpack_object *result, struct cws_error *err)
{
    struct list_state *l = op->state;
    const msgpack_object *arr = NULL;
    int r = cwsc_check_map(result, op->method, err);
    if (r == 0)
        r = cws_rpc_param_array(result, "sandboxes", &arr, err);
    if (r < 0)
        return cwsc_bad_result(err, op->method);
    size_t n = r > 0 ? arr->via.array.size : 0;
    if (!(l->v = calloc(n ? n : 1, sizeof(*l->v))))
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    for (size_t i = 0; i < n; i++) {
        if (cwsc_sandbox_info_parse(&arr->via.array.ptr[i], &l->v[i], err) < 0)
            return cwsc_bad_result(err, op->method);
        l->n = i + 1;
    }
    return 0;
}

static const struct cwsc_op_type list_type = {
    .name = "sandbox list",
    .parse = parse_list,
    .free_state = free_list,
};

static void free_batch(void *state)
{
    cwsc_batch_clear(state);
    free(state);
}

static int parse_batch(cws_op *op, const msgpack_object *result, struct cws_error *err)
{
    int r = cwsc_check_map(result, op->method, err);
    const msgpack_object *unused = NULL;
    /* purge says `count`, session.close says `stopped`. */
    const char *key = cws_rpc_param(result, "stopped", &unused, NULL) > 0 ? "stopped" : "count";
    if (r == 0)
        r = cwsc_batch_parse(result, key, op->state, err);
    return r < 0 ? cwsc_bad_result(err, op->method) : 0;
}

const struct cwsc_op_type cwsc_batch_type = {
    .name = "batch",
    .parse = parse_batch,
    .free_state = free_batch,
};

/* An op whose result is nil (sandbox.delete). */
static const struct cwsc_op_type nil_type = {
    .name = "nil",
};

/* ---- params ---- */

struct id_params {
    const char *id;
    const char *until;   /* sandbox.wait */
    double timeout_s;    /* sandbox.wait */
    bool fresh;          /* sandbox.get */
    bool has_missing_ok; /* sandbox.delete */
    bool missing_ok;
    const char *session; /* sandbox.adopt */
};

static int pack_id_params(msgpack_packer *pk, const void *ud)
{
    const struct id_params *p = ud;
    size_t n = 1 + (p->until ? 2 : 0) + (p->fresh ? 1 : 0) + (p->has_missing_ok ? 1 : 0) +
               (p->session ? 1 : 0);
    bool ok = PACK_OK(msgpack_pack_map(pk, n)) && PACK_OK(cws_rpc_pack_kv_cstr(pk, "id", p->id));
    if (ok && p->until)
        ok = PACK_OK(cws_rpc_pack_kv_cstr(pk, "until", p->until)) &&
             PACK_OK(cwsc_pack_kv_double(pk, "timeout_s", p->timeout_s));
    if (ok && p->fresh)
        ok = PACK_OK(cws_rpc_pack_kv_bool(pk, "fresh", true));
    if (ok && p->has_missing_ok)
        ok = PACK_OK(cws_rpc_pack_kv_bool(pk, "missing_ok", p->missing_ok));
    if (ok && p->session)
        ok = PACK_OK(cws_rpc_pack_kv_cstr(pk, "session", p->session));
    return ok ? 0 : -CWS_E_NOMEM;
}

/* A call on one sandbox whose result is a SandboxInfo. */
static int call_info(cws_client *c, const char *method, const struct id_params *p, cws_op **ret_op,
                     struct cws_error *err)
{
    int r = cwsc_check_id(p->id, err);
    if (r < 0)
        return r;
    struct cws_sandbox_info *info = calloc(1, sizeof(*info));
    if (!info)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return cwsc_call(c, method, &cwsc_sandbox_type, info, pack_id_params, p, ret_op, err);
}

static const char *owner_name(enum cws_owner owner)
{
    switch (owner) {
    case CWS_OWNER_CLIENT:
        return "client";
    case CWS_OWNER_SESSION:
        return "session";
    case CWS_OWNER_DETACHED:
        return "detached";
    default:
        return NULL;
    }
}

struct create_params {
    const cws_sandbox_config *cfg;
    const char *session;
    const char *owner;
    bool wait_running;
    double timeout_s;
    const char *request_id;
};

static int pack_create(msgpack_packer *pk, const void *ud)
{
    const struct create_params *p = ud;
    size_t n = 1 + (p->session ? 1 : 0) + (p->owner ? 1 : 0) + (p->wait_running ? 1 : 0) +
               (p->timeout_s > 0 ? 1 : 0) + (p->request_id ? 1 : 0);
    bool ok = PACK_OK(msgpack_pack_map(pk, n)) && PACK_OK(cws_rpc_pack_cstr(pk, "config")) &&
              cwsc_config_pack(pk, p->cfg) == 0;
    if (ok && p->session)
        ok = PACK_OK(cws_rpc_pack_kv_cstr(pk, "session", p->session));
    if (ok && p->owner)
        ok = PACK_OK(cws_rpc_pack_kv_cstr(pk, "owner", p->owner));
    if (ok && p->wait_running)
        ok = PACK_OK(cws_rpc_pack_kv_cstr(pk, "wait", "running"));
    if (ok && p->timeout_s > 0)
        ok = PACK_OK(cwsc_pack_kv_double(pk, "timeout_s", p->timeout_s));
    if (ok && p->request_id)
        ok = PACK_OK(cws_rpc_pack_kv_cstr(pk, "request_id", p->request_id));
    return ok ? 0 : -CWS_E_NOMEM;
}

static bool valid_timeout(double t)
{
    return isfinite(t) && t >= 0;
}

/* ---- the API ---- */

int cws_sandbox_create(cws_client *c, const cws_sandbox_config *cfg,
                       const struct cws_create_options *opts, cws_op **ret_op,
                       struct cws_error *err)
{
    static const struct cws_create_options defaults = {0};
    const struct cws_create_options *o = opts ? opts : &defaults;
    int r = cwsc_config_check(cfg, err);
    if (r < 0)
        return r;
    if (!valid_timeout(o->timeout_s))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "timeout_s must be a non-negative number");
    struct create_params p = {
        .cfg = cfg,
        .session = o->session ? o->session : cws_client_session(c),
        .owner = owner_name(o->owner),
        .wait_running = o->wait_running,
        .timeout_s = o->timeout_s,
        .request_id = o->request_id,
    };
    struct cws_sandbox_info *info = calloc(1, sizeof(*info));
    if (!info)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return cwsc_call(c, "sandbox.create", &cwsc_sandbox_type, info, pack_create, &p, ret_op, err);
}

int cws_sandbox_run(cws_client *c, const cws_sandbox_config *cfg,
                    const struct cws_create_options *opts, struct cws_sandbox_info **ret_info,
                    struct cws_error *err)
{
    struct cws_create_options o = {0};
    cws_op *op = NULL;
    if (opts)
        o = *opts;
    o.wait_running = true;
    int r = cws_sandbox_create(c, cfg, &o, &op, err);
    if (r < 0)
        return r;
    double wait_s = o.timeout_s > 0 ? o.timeout_s : DEFAULT_WAIT_S;
    r = cws_op_wait(op, (int)(wait_s * 1000) + RUN_MARGIN_MS, err);
    if (r == 0 && cws_sandbox_info_dup(cws_op_sandbox(op), ret_info) < 0)
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
    /* On a timeout the create goes on: the sandbox belongs to this client and ends with it. */
    cws_op_free(op);
    return r;
}

int cws_sandbox_get(cws_client *c, const char *id, bool fresh, cws_op **ret_op,
                    struct cws_error *err)
{
    struct id_params p = {.id = id, .fresh = fresh};
    return call_info(c, "sandbox.get", &p, ret_op, err);
}

struct list_params {
    const struct cws_list_options *o;
};

static int pack_list(msgpack_packer *pk, const void *ud)
{
    const struct cws_list_options *o = ((const struct list_params *)ud)->o;
    bool state = o->state != CWS_STATE_UNSPECIFIED;
    size_t n = (o->tags ? 1 : 0) + (state ? 1 : 0) + (o->session ? 1 : 0) +
               (o->runner_ids ? 1 : 0) + (o->show_terminated ? 1 : 0);
    bool ok = PACK_OK(msgpack_pack_map(pk, n));
    if (ok && o->tags)
        ok = cwsc_pack_kv_strv(pk, "tags", o->tags) == 0;
    if (ok && state)
        ok = PACK_OK(cws_rpc_pack_kv_cstr(pk, "state", cws_sandbox_state_name(o->state)));
    if (ok && o->session)
        ok = PACK_OK(cws_rpc_pack_kv_cstr(pk, "session", o->session));
    if (ok && o->runner_ids)
        ok = cwsc_pack_kv_strv(pk, "runner_ids", o->runner_ids) == 0;
    if (ok && o->show_terminated)
        ok = PACK_OK(cws_rpc_pack_kv_bool(pk, "show_terminated", true));
    return ok ? 0 : -CWS_E_NOMEM;
}

int cws_sandbox_list(cws_client *c, const struct cws_list_options *opts, cws_op **ret_op,
                     struct cws_error *err)
{
    static const struct cws_list_options defaults = {0};
    struct list_params p = {opts ? opts : &defaults};
    struct list_state *l = calloc(1, sizeof(*l));
    if (!l)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return cwsc_call(c, "sandbox.list", &list_type, l, pack_list, &p, ret_op, err);
}

static int wait_until(cws_client *c, const char *id, const char *until, double timeout_s,
                      cws_op **ret_op, struct cws_error *err)
{
    if (!valid_timeout(timeout_s))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "timeout_s must be a non-negative number");
    struct id_params p = {
        .id = id, .until = until, .timeout_s = timeout_s > 0 ? timeout_s : DEFAULT_WAIT_S};
    return call_info(c, "sandbox.wait", &p, ret_op, err);
}

int cws_sandbox_wait(cws_client *c, const char *id, double timeout_s, cws_op **ret_op,
                     struct cws_error *err)
{
    return wait_until(c, id, "running", timeout_s, ret_op, err);
}

int cws_sandbox_wait_until_complete(cws_client *c, const char *id, double timeout_s,
                                    cws_op **ret_op, struct cws_error *err)
{
    return wait_until(c, id, "terminal", timeout_s, ret_op, err);
}

struct stop_params {
    const char *id;
    const struct cws_stop_options *o;
};

static int pack_stop(msgpack_packer *pk, const void *ud)
{
    const struct stop_params *p = ud;
    const struct cws_stop_options *o = p->o;
    size_t n = 3 + (o->grace_s > 0 ? 1 : 0);
    bool ok = PACK_OK(msgpack_pack_map(pk, n)) && PACK_OK(cws_rpc_pack_kv_cstr(pk, "id", p->id)) &&
              PACK_OK(cws_rpc_pack_kv_bool(pk, "missing_ok", o->missing_ok)) &&
              PACK_OK(cws_rpc_pack_kv_bool(pk, "wait", !o->no_wait));
    if (ok && o->grace_s > 0)
        ok = PACK_OK(cwsc_pack_kv_double(pk, "grace_s", o->grace_s));
    return ok ? 0 : -CWS_E_NOMEM;
}

int cws_sandbox_stop(cws_client *c, const char *id, const struct cws_stop_options *opts,
                     cws_op **ret_op, struct cws_error *err)
{
    static const struct cws_stop_options defaults = {0};
    struct stop_params p = {id, opts ? opts : &defaults};
    int r = cwsc_check_id(id, err);
    if (r < 0)
        return r;
    if (!valid_timeout(p.o->grace_s))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "grace_s must be a non-negative number");
    struct cws_sandbox_info *info = calloc(1, sizeof(*info));
    if (!info)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return cwsc_call(c, "sandbox.stop", &cwsc_sandbox_type, info, pack_stop, &p, ret_op, err);
}

int cws_sandbox_delete(cws_client *c, const char *id, bool missing_ok, cws_op **ret_op,
                       struct cws_error *err)
{
    struct id_params p = {.id = id, .has_missing_ok = true, .missing_ok = missing_ok};
    int r = cwsc_check_id(id, err);
    if (r < 0)
        return r;
    return cwsc_call(c, "sandbox.delete", &nil_type, NULL, pack_id_params, &p, ret_op, err);
}

int cws_sandbox_adopt(cws_client *c, const char *id, const char *session, cws_op **ret_op,
                      struct cws_error *err)
{
    if (!session || !*session)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "a session name is required");
    struct id_params p = {.id = id, .session = session};
    return call_info(c, "sandbox.adopt", &p, ret_op, err);
}

int cws_sandbox_detach(cws_client *c, const char *id, cws_op **ret_op, struct cws_error *err)
{
    struct id_params p = {.id = id};
    return call_info(c, "sandbox.detach", &p, ret_op, err);
}

struct purge_params {
    const char *const *tags;
    bool dry_run;
};

static int pack_purge(msgpack_packer *pk, const void *ud)
{
    const struct purge_params *p = ud;
    bool ok = PACK_OK(msgpack_pack_map(pk, 2)) && cwsc_pack_kv_strv(pk, "tags", p->tags) == 0 &&
              PACK_OK(cws_rpc_pack_kv_bool(pk, "dry_run", p->dry_run));
    return ok ? 0 : -CWS_E_NOMEM;
}

int cws_sandbox_purge(cws_client *c, const char *const *tags, bool dry_run, cws_op **ret_op,
                      struct cws_error *err)
{
    struct purge_params p = {tags, dry_run};
    if (cwsc_strv_len(tags) == 0)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "purge needs at least one tag");
    struct cws_batch_result *b = calloc(1, sizeof(*b));
    if (!b)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return cwsc_call(c, "sandbox.purge", &cwsc_batch_type, b, pack_purge, &p, ret_op, err);
}

/* ---- results ---- */

static bool succeeded(const cws_op *op)
{
    return op && op->done && !op->failed;
}

const struct cws_sandbox_info *cws_op_sandbox(const cws_op *op)
{
    const struct cws_sandbox_info *info = cwsc_op_state(op, &cwsc_sandbox_type);
    return succeeded(op) && info && info->id ? info : NULL;
}

const struct cws_sandbox_info *cws_op_sandboxes(const cws_op *op, size_t *ret_n)
{
    const struct list_state *l = cwsc_op_state(op, &list_type);
    bool ok = l && succeeded(op);
    if (ret_n)
        *ret_n = ok ? l->n : 0;
    return ok ? l->v : NULL;
}

const struct cws_batch_result *cws_op_batch_result(const cws_op *op)
{
    const struct cws_batch_result *b = cwsc_op_state(op, &cwsc_batch_type);
    return succeeded(op) ? b : NULL;
}
