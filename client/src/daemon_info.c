/* What the daemon says about itself: the hello answer and daemon.status. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void cwsc_hello_clear(struct cwsc_hello *h)
{
    free(h->daemon);
    free(h->kind);
    free(h->url);
    free(h->configured);
    free(h->strategy);
    free(h->source);
    memset(h, 0, sizeof(*h));
    /* Never NULL strings, even before a hello succeeded. */
    h->info.daemon = h->info.backend.kind = h->info.backend.url = "";
    h->info.backend.configured = h->info.auth.strategy = h->info.auth.source = "";
}

/* The keys hello and daemon.status share. */
static int parse_common(const msgpack_object *result, struct cwsc_hello *h, struct cws_error *err)
{
    int64_t pid = 0;
    int r = cwsc_get_str(result, "daemon", &h->daemon, err);
    if (r == 0)
        r = cwsc_get_int(result, "pid", &pid, err);
    if (r == 0)
        r = cwsc_get_str(result, "backend.kind", &h->kind, err);
    if (r == 0)
        r = cwsc_get_str(result, "backend.url", &h->url, err);
    if (r == 0)
        r = cwsc_get_str(result, "backend.configured", &h->configured, err);
    if (r == 0)
        r = cwsc_get_str(result, "auth.strategy", &h->strategy, err);
    if (r == 0)
        r = cwsc_get_str(result, "auth.source", &h->source, err);
    h->info.pid = pid;
    return r;
}

static void point_strings(struct cwsc_hello *h)
{
    h->info.daemon = h->daemon ? h->daemon : "";
    h->info.backend.kind = h->kind ? h->kind : "";
    h->info.backend.url = h->url ? h->url : "";
    h->info.backend.configured = h->configured ? h->configured : "";
    h->info.auth.strategy = h->strategy ? h->strategy : "";
    h->info.auth.source = h->source ? h->source : "";
}

int cwsc_hello_parse(const msgpack_object *result, struct cwsc_hello *h, struct cws_error *err)
{
    int64_t protocol = 0;
    cwsc_hello_clear(h);
    int r = cwsc_check_map(result, "hello", err);
    if (r == 0)
        r = parse_common(result, h, err);
    if (r == 0)
        r = cws_rpc_required(cws_rpc_param_int(result, "protocol", 0, INT32_MAX, &protocol, err),
                             "protocol", err);
    if (r < 0) {
        cwsc_hello_clear(h);
        return cwsc_bad_result(err, "hello");
    }
    h->info.protocol = (int)protocol;
    point_strings(h);
    return 0;
}

static int parse_hello(cws_op *op, const msgpack_object *result, struct cws_error *err)
{
    return cwsc_hello_parse(result, op->state, err);
}

/* The state is the client's own struct cwsc_hello: nothing to free. */
const struct cwsc_op_type cwsc_hello_type = {
    .name = "hello",
    .parse = parse_hello,
};

struct status_state {
    struct cwsc_hello strings;
    struct cws_daemon_status status;
    struct cws_orphan_info *orphans; /* owns its strings */
    size_t n_orphans;
};

static void free_status(void *state)
{
    struct status_state *s = state;
    cwsc_hello_clear(&s->strings);
    for (size_t i = 0; i < s->n_orphans; i++) {
        free((char *)s->orphans[i].sandbox_id);
        free((char *)s->orphans[i].why);
    }
    free(s->orphans);
    free(s);
}

/* One entry of `orphans`: {id, reaped_ms, why}, all required. */
static int parse_orphan(const msgpack_object *o, struct cws_orphan_info *info,
                        struct cws_error *err)
{
    char *id = NULL, *why = NULL;
    if (o->type != MSGPACK_OBJECT_MAP)
        return cws_error_set(err, CWS_E_PROTOCOL, "orphans must be an array of maps");
    int r = cws_rpc_required(cws_rpc_param_str(o, "id", &id, err), "orphans.id", err);
    if (r >= 0)
        r = cws_rpc_required(
            cws_rpc_param_int(o, "reaped_ms", INT64_MIN, INT64_MAX, &info->reaped_ms, err),
            "orphans.reaped_ms", err);
    if (r >= 0)
        r = cws_rpc_required(cws_rpc_param_str(o, "why", &why, err), "orphans.why", err);
    if (r < 0) {
        free(id);
        free(why);
        return r;
    }
    info->sandbox_id = id;
    info->why = why;
    return 0;
}

/* `orphans` (absent from older daemons: none) and `orphans_pending`. */
static int parse_orphans(const msgpack_object *result, struct status_state *s,
                         struct cws_error *err)
{
    const msgpack_object *arr = NULL;
    int r = cwsc_get_uint(result, "orphans_pending", &s->status.orphans_pending, err);
    if (r == 0)
        r = cws_rpc_param_array(result, "orphans", &arr, err);
    if (r <= 0)
        return r;
    size_t n = arr->via.array.size;
    if (!(s->orphans = calloc(n ? n : 1, sizeof(*s->orphans))))
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    for (size_t i = 0; i < n; i++) {
        r = parse_orphan(&arr->via.array.ptr[i], &s->orphans[i], err);
        if (r < 0)
            return r;
        s->n_orphans = i + 1;
    }
    s->status.orphans = s->orphans;
    s->status.n_orphans = s->n_orphans;
    return 0;
}

static int parse_status(cws_op *op, const msgpack_object *result, struct cws_error *err)
{
    struct status_state *s = op->state;
    struct cws_daemon_status *st = &s->status;
    int r = cwsc_check_map(result, "daemon.status", err);
    if (r == 0)
        r = parse_common(result, &s->strings, err);
    if (r == 0)
        r = cwsc_get_int(result, "uptime_ms", &st->uptime_ms, err);
    if (r == 0)
        r = cwsc_get_uint(result, "clients", &st->clients, err);
    if (r == 0)
        r = cwsc_get_uint(result, "sessions", &st->sessions, err);
    if (r == 0)
        r = cwsc_get_uint(result, "sandboxes", &st->sandboxes, err);
    if (r == 0)
        r = cwsc_get_uint(result, "calls_in_flight", &st->calls_in_flight, err);
    if (r == 0)
        r = parse_orphans(result, s, err);
    if (r < 0)
        return cwsc_bad_result(err, "daemon.status");
    point_strings(&s->strings);
    st->daemon = s->strings.info.daemon;
    st->pid = s->strings.info.pid;
    st->backend = s->strings.info.backend;
    st->auth = s->strings.info.auth;
    return 0;
}

static const struct cwsc_op_type status_type = {
    .name = "daemon.status",
    .parse = parse_status,
    .free_state = free_status,
};

int cws_client_status(cws_client *c, cws_op **ret_op, struct cws_error *err)
{
    struct status_state *s = calloc(1, sizeof(*s));
    if (!s)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    cwsc_hello_clear(&s->strings);
    return cwsc_call(c, "daemon.status", &status_type, s, NULL, NULL, ret_op, err);
}

const struct cws_daemon_status *cws_op_daemon_status(const cws_op *op)
{
    struct status_state *s = cwsc_op_state(op, &status_type);
    return s && op->done && !op->failed ? &s->status : NULL;
}
