/* Sessions: session.open (which attaches to an existing name), .close, .list, .get. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PACK_OK(expr) ((expr) == 0)

static void session_info_clear(struct cws_session_info *s)
{
    free((char *)s->name);
    cwsc_strv_free((char **)s->sandbox_ids);
    memset(s, 0, sizeof(*s));
}

/* A session result (docs/sessions.md, "Session results"): name, sandboxes (the ids), clients,
 * idle_ttl_s and created_ms are required; defaults is not read. On failure s is left empty. */
static int session_info_parse(const msgpack_object *map, struct cws_session_info *s,
                              struct cws_error *err)
{
    char *name = NULL, **ids = NULL;
    int64_t created = 0, clients = 0;
    memset(s, 0, sizeof(*s));
    if (map->type != MSGPACK_OBJECT_MAP)
        return cws_error_set(err, CWS_E_PROTOCOL, "a session must be a map");
    int r = cws_rpc_required(cws_rpc_param_str(map, "name", &name, err), "name", err);
    s->name = name;
    if (r >= 0 && !*name)
        r = cws_error_set(err, CWS_E_PROTOCOL, "name must not be empty");
    if (r >= 0)
        r = cws_rpc_required(cws_rpc_param_strv_array(map, "sandboxes", &ids, &s->n_sandboxes, err),
                             "sandboxes", err);
    s->sandbox_ids = (const char *const *)ids;
    if (r >= 0)
        r = cws_rpc_required(cws_rpc_param_int(map, "clients", 0, INT64_MAX, &clients, err),
                             "clients", err);
    if (r >= 0)
        r = cws_rpc_required(cws_rpc_param_nonneg(map, "idle_ttl_s", &s->idle_ttl_s, err),
                             "idle_ttl_s", err);
    if (r >= 0)
        r = cws_rpc_required(
            cws_rpc_param_int(map, "created_ms", INT64_MIN, INT64_MAX, &created, err), "created_ms",
            err);
    s->clients = (uint64_t)clients;
    s->created_ms = created;
    if (r < 0) {
        session_info_clear(s);
        return r;
    }
    return 0;
}

/* ---- one session: open, attach, get ---- */

struct session_state {
    struct cws_session_info info;
    bool adopt; /* make it the client's session (open, attach) */
};

static void free_session(void *state)
{
    struct session_state *st = state;
    session_info_clear(&st->info);
    free(st);
}

static int parse_session(cws_op *op, const msgpack_object *result, struct cws_error *err)
{
    struct session_state *st = op->state;
    int r = cwsc_check_map(result, op->method, err);
    if (r == 0)
        r = session_info_parse(result, &st->info, err);
    if (r < 0)
        return cwsc_bad_result(err, op->method);
    if (st->adopt)
        return cws_client_set_session(op->client, st->info.name, err);
    return 0;
}

static const struct cwsc_op_type session_type = {
    .name = "session",
    .parse = parse_session,
    .free_state = free_session,
};

struct open_params {
    const char *name;
    const cws_sandbox_config *defaults;
    double idle_ttl_s;
};

static int pack_open(msgpack_packer *pk, const void *ud)
{
    const struct open_params *p = ud;
    size_t n = (p->name ? 1 : 0) + (p->defaults ? 1 : 0) + (p->idle_ttl_s > 0 ? 1 : 0);
    bool ok = PACK_OK(msgpack_pack_map(pk, n));
    if (ok && p->name)
        ok = PACK_OK(cws_rpc_pack_kv_cstr(pk, "name", p->name));
    if (ok && p->defaults)
        ok = PACK_OK(cws_rpc_pack_cstr(pk, "defaults")) &&
             PACK_OK(cwsc_config_pack(pk, p->defaults));
    if (ok && p->idle_ttl_s > 0)
        ok = PACK_OK(cwsc_pack_kv_double(pk, "idle_ttl_s", p->idle_ttl_s));
    return ok ? 0 : -CWS_E_NOMEM;
}

static int open_session(cws_client *c, const struct open_params *p, cws_op **ret_op,
                        struct cws_error *err)
{
    int r = cwsc_config_check(p->defaults, err);
    if (r < 0)
        return r;
    if (p->name && !*p->name)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "a session name must not be empty");
    if (!(p->idle_ttl_s >= 0))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "idle_ttl_s must be a non-negative number");
    struct session_state *st = calloc(1, sizeof(*st));
    if (!st)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    st->adopt = true;
    return cwsc_call(c, "session.open", &session_type, st, pack_open, p, ret_op, err);
}

int cws_session_open(cws_client *c, const char *name, const cws_sandbox_config *defaults,
                     double idle_ttl_s, cws_op **ret_op, struct cws_error *err)
{
    struct open_params p = {name, defaults, idle_ttl_s};
    return open_session(c, &p, ret_op, err);
}

int cws_session_attach(cws_client *c, const char *name, cws_op **ret_op, struct cws_error *err)
{
    struct open_params p = {name, NULL, 0};
    if (!name)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "a session name is required");
    return open_session(c, &p, ret_op, err);
}

struct name_params {
    const char *name;
    bool has_stop;
    bool stop;
};

static int pack_name(msgpack_packer *pk, const void *ud)
{
    const struct name_params *p = ud;
    bool ok = PACK_OK(msgpack_pack_map(pk, p->has_stop ? 2 : 1)) &&
              PACK_OK(cws_rpc_pack_kv_cstr(pk, "name", p->name));
    if (ok && p->has_stop)
        ok = PACK_OK(cws_rpc_pack_kv_bool(pk, "stop", p->stop));
    return ok ? 0 : -CWS_E_NOMEM;
}

int cws_session_get(cws_client *c, const char *name, cws_op **ret_op, struct cws_error *err)
{
    struct name_params p = {name, false, false};
    if (!name || !*name)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "a session name is required");
    struct session_state *st = calloc(1, sizeof(*st));
    if (!st)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return cwsc_call(c, "session.get", &session_type, st, pack_name, &p, ret_op, err);
}

int cws_session_close(cws_client *c, const char *name, bool keep_sandboxes, cws_op **ret_op,
                      struct cws_error *err)
{
    struct name_params p = {name, true, !keep_sandboxes};
    if (!name || !*name)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "a session name is required");
    struct cws_batch_result *b = calloc(1, sizeof(*b));
    if (!b)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    int r = cwsc_call(c, "session.close", &cwsc_batch_type, b, pack_name, &p, ret_op, err);
    const char *current = cws_client_session(c);
    if (r == 0 && current && strcmp(current, name) == 0)
        cws_client_set_session(c, NULL, NULL);
    return r;
}

/* ---- all sessions ---- */

struct sessions_state {
    struct cws_session_info *v;
    size_t n;
};

static void free_sessions(void *state)
{
    struct sessions_state *st = state;
    for (size_t i = 0; i < st->n; i++)
        session_info_clear(&st->v[i]);
    free(st->v);
    free(st);
}

static int parse_sessions(cws_op *op, const msgpack_object *result, struct cws_error *err)
{
    struct sessions_state *st = op->state;
    const msgpack_object *arr = NULL;
    int r = cwsc_check_map(result, op->method, err);
    if (r == 0)
        r = cws_rpc_required(cws_rpc_param_array(result, "sessions", &arr, err), "sessions", err);
    if (r < 0)
        return cwsc_bad_result(err, op->method);
    size_t n = r > 0 ? arr->via.array.size : 0;
    if (!(st->v = calloc(n ? n : 1, sizeof(*st->v))))
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    for (size_t i = 0; i < n; i++) {
        if (session_info_parse(&arr->via.array.ptr[i], &st->v[i], err) < 0)
            return cwsc_bad_result(err, op->method);
        st->n = i + 1;
    }
    return 0;
}

static const struct cwsc_op_type sessions_type = {
    .name = "session list",
    .parse = parse_sessions,
    .free_state = free_sessions,
};

int cws_session_list(cws_client *c, cws_op **ret_op, struct cws_error *err)
{
    struct sessions_state *st = calloc(1, sizeof(*st));
    if (!st)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    return cwsc_call(c, "session.list", &sessions_type, st, NULL, NULL, ret_op, err);
}

const struct cws_session_info *cws_op_session(const cws_op *op)
{
    const struct session_state *st = cwsc_op_state(op, &session_type);
    return st && op->done && !op->failed ? &st->info : NULL;
}

const struct cws_session_info *cws_op_sessions(const cws_op *op, size_t *ret_n)
{
    const struct sessions_state *st = cwsc_op_state(op, &sessions_type);
    bool ok = st && op->done && !op->failed;
    if (ret_n)
        *ret_n = ok ? st->n : 0;
    return ok ? st->v : NULL;
}
