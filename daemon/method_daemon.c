/* hello (the handshake) and daemon.status. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "session.h"
#include "rpc_encode.h"
#include "rpc_params.h"
#include "reaper.h"
#include "sandbox_table.h"
#include "watch.h"

#define PACK(expr)                                                                                 \
    do {                                                                                           \
        int r_ = (expr);                                                                           \
        if (r_ != 0)                                                                               \
            return r_ < 0 ? r_ : -CWS_E_NOMEM;                                                     \
    } while (0)

static int pack_backend(msgpack_packer *pk, const struct cwsd *d)
{
    PACK(msgpack_pack_map(pk, 3));
    PACK(cws_rpc_pack_kv_cstr(pk, "kind", d->backend_local ? "local" : "remote"));
    /* The URL of a local backend is a private socket: not interesting, but not secret. */
    PACK(cws_rpc_pack_kv_cstr(pk, "url", d->backend_url ? d->backend_url : ""));
    PACK(cws_rpc_pack_kv_cstr(pk, "configured", cwsd_backend_name(d->cfg.backend)));
    return 0;
}

static int pack_auth(msgpack_packer *pk, const struct cwsd *d)
{
    PACK(msgpack_pack_map(pk, 2));
    PACK(cws_rpc_pack_kv_cstr(pk, "strategy", d->creds.strategy));
    PACK(cws_rpc_pack_kv_cstr(pk, "source", d->creds.source));
    return 0;
}

static int pack_hello(msgpack_packer *pk, void *ud)
{
    const struct cwsd *d = ud;
    PACK(msgpack_pack_map(pk, 5));
    PACK(cws_rpc_pack_kv_cstr(pk, "daemon", "cwsandboxd/" CWS_VERSION));
    PACK(cws_rpc_pack_kv_int(pk, "protocol", CWSD_PROTOCOL));
    PACK(cws_rpc_pack_kv_int(pk, "pid", getpid()));
    PACK(cws_rpc_pack_cstr(pk, "backend"));
    PACK(pack_backend(pk, d));
    PACK(cws_rpc_pack_cstr(pk, "auth"));
    PACK(pack_auth(pk, d));
    return 0;
}

#ifdef CWSD_HAVE_BACKEND
/* hello {session}: the client works in that session from now on (CWSANDBOX_SESSION). */
static int join_session(struct cwsd_client *c, const msgpack_object *params, struct cws_error *err)
{
    char *name = NULL;
    struct cwsd_session *s;
    int r = cws_rpc_param_str(params, "session", &name, err);
    if (r == 1 && !cwsd_session_name_valid(name, "session", err))
        r = -CWS_E_INVALID_ARGUMENT;
    if (r == 1 && (r = cwsd_session_get_or_new(c->d, name, &s, err)) == 0)
        r = cwsd_session_attach(c, s, err);
    free(name);
    return r < 0 ? r : 0;
}
#endif

void cwsd_method_hello(struct cwsd_call *call, const msgpack_object *params)
{
    struct cwsd_client *c = call->client;
    struct cws_error err;
    int64_t protocol = 0;
    const char *name = NULL;
    size_t name_len = 0;

    if (cws_rpc_required(cws_rpc_param_int(params, "protocol", 0, INT32_MAX, &protocol, &err),
                         "protocol", &err) < 0 ||
        cws_rpc_param_strv(params, "client", &name, &name_len, &err) < 0) {
        cwsd_call_fail(call, &err);
        return;
    }
    if (protocol != CWSD_PROTOCOL) {
        cwsd_call_failf(call, CWS_E_FAILED_PRECONDITION,
                        "protocol %lld is not supported: this cwsandboxd (%s) speaks protocol %d",
                        (long long)protocol, CWS_VERSION, CWSD_PROTOCOL);
        return;
    }
    if (name) {
        size_t n = name_len < sizeof(c->name) - 1 ? name_len : sizeof(c->name) - 1;
        memcpy(c->name, name, n);
        c->name[n] = '\0';
    }
#ifdef CWSD_HAVE_BACKEND
    if (join_session(c, params, &err) < 0) {
        cwsd_call_fail(call, &err);
        return;
    }
#endif
    c->hello_done = true;
    cwsd_call_reply(call, pack_hello, c->d);
}

static int pack_status(msgpack_packer *pk, void *ud)
{
    const struct cwsd *d = ud;
    PACK(msgpack_pack_map(pk, 12));
    PACK(cws_rpc_pack_kv_cstr(pk, "daemon", "cwsandboxd/" CWS_VERSION));
    PACK(cws_rpc_pack_kv_int(pk, "pid", getpid()));
    PACK(cws_rpc_pack_kv_int(pk, "uptime_ms", cwsd_monotonic_ms() - d->started_ms));
    PACK(cws_rpc_pack_kv_uint(pk, "clients", d->n_clients));
#ifdef CWSD_HAVE_BACKEND
    PACK(cws_rpc_pack_kv_uint(pk, "sessions", cwsd_session_count(d)));
#else
    PACK(cws_rpc_pack_kv_uint(pk, "sessions", 0));
#endif
#ifdef CWSD_HAVE_BACKEND
    PACK(cws_rpc_pack_kv_uint(pk, "sandboxes", cwsd_sandbox_count(d)));
    PACK(cws_rpc_pack_kv_uint(pk, "watched", cwsd_watch_count(d)));
    PACK(cws_rpc_pack_kv_uint(pk, "orphans_pending", cwsd_reaper_pending()));
    PACK(cws_rpc_pack_cstr(pk, "orphans"));
    PACK(cwsd_reaper_pack_report(pk));
#else
    PACK(cws_rpc_pack_kv_uint(pk, "orphans_pending", 0));
    PACK(cws_rpc_pack_cstr(pk, "orphans"));
    PACK(msgpack_pack_array(pk, 0));
    PACK(cws_rpc_pack_kv_uint(pk, "sandboxes", 0));
    PACK(cws_rpc_pack_kv_uint(pk, "watched", 0));
#endif
    PACK(cws_rpc_pack_kv_uint(pk, "calls_in_flight", d->calls_in_flight));
    PACK(cws_rpc_pack_cstr(pk, "backend"));
    PACK(pack_backend(pk, d));
    PACK(cws_rpc_pack_cstr(pk, "auth"));
    PACK(pack_auth(pk, d));
    return 0;
}

void cwsd_method_daemon_status(struct cwsd_call *call, const msgpack_object *params)
{
    (void)params;
    cwsd_call_reply(call, pack_status, call->client->d);
}
