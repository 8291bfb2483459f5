/* SandboxInfo: what the daemon tells clients about a sandbox, from the backend's Sandbox. */
#include <string.h>

#include "rpc_encode.h"
#include "sandbox_config.h"

#define PACK(expr)                                                                                 \
    do {                                                                                           \
        if ((expr) != 0)                                                                           \
            return -CWS_E_NOMEM;                                                                   \
    } while (0)

const char *cwsd_state_name(Coreweave__Sandbox__V1__State state)
{
    static const char *const names[] = {"unspecified", "creating", "running",
                                        "completed",   "failed",   "terminating",
                                        "terminated",  "pending",  "paused"};
    return (unsigned)state < sizeof(names) / sizeof(names[0]) ? names[state] : "unspecified";
}

static int64_t ts_ms(const Google__Protobuf__Timestamp *ts)
{
    return ts->seconds * 1000 + ts->nanos / 1000000;
}

static int pack_services(msgpack_packer *pk, const Coreweave__Sandbox__V1__SandboxStatus *st)
{
    size_t n = st ? st->n_services : 0;
    PACK(msgpack_pack_array(pk, n));
    for (size_t i = 0; i < n; i++) {
        const Coreweave__Sandbox__V1__ServiceStatus *s = st->services[i];
        const char *url = s->url[0] ? s->url : (s->endpoint ? s->endpoint->url : "");
        PACK(msgpack_pack_map(pk, 3));
        PACK(cws_rpc_pack_kv_int(pk, "port", s->port));
        PACK(cws_rpc_pack_kv_cstr(pk, "name", s->name));
        PACK(cws_rpc_pack_kv_cstr(pk, "url", url));
    }
    return 0;
}

static int pack_tags(msgpack_packer *pk, const Coreweave__Sandbox__V1__SandboxSpec *spec)
{
    size_t n = spec ? spec->n_tags : 0;
    PACK(msgpack_pack_array(pk, n));
    for (size_t i = 0; i < n; i++)
        PACK(cws_rpc_pack_cstr(pk, spec->tags[i]));
    return 0;
}

int cwsd_pack_sandbox_info(msgpack_packer *pk, const Coreweave__Sandbox__V1__Sandbox *sb,
                           const char *session, const char *owner)
{
    const Coreweave__Sandbox__V1__SandboxStatus *st = sb->status;
    bool has_exit =
        st && st->_exit_code_case == COREWEAVE__SANDBOX__V1__SANDBOX_STATUS___EXIT_CODE_EXIT_CODE;
    size_t n = 7 + has_exit + (st && st->create_time) + (st && st->start_time) +
               (st && st->end_time) + (session != NULL) + (owner != NULL);
    PACK(msgpack_pack_map(pk, n));
    PACK(cws_rpc_pack_kv_cstr(pk, "id", sb->sandbox_id));
    PACK(cws_rpc_pack_kv_cstr(pk, "state", cwsd_state_name(st ? st->state : 0)));
    PACK(cws_rpc_pack_kv_cstr(pk, "state_reason", st ? st->state_reason : ""));
    if (has_exit)
        PACK(cws_rpc_pack_kv_int(pk, "exit_code", st->exit_code));
    if (st && st->create_time)
        PACK(cws_rpc_pack_kv_int(pk, "created_ms", ts_ms(st->create_time)));
    if (st && st->start_time)
        PACK(cws_rpc_pack_kv_int(pk, "started_ms", ts_ms(st->start_time)));
    if (st && st->end_time)
        PACK(cws_rpc_pack_kv_int(pk, "ended_ms", ts_ms(st->end_time)));
    PACK(cws_rpc_pack_kv_cstr(pk, "runner_id", st ? st->runner_id : ""));
    PACK(cws_rpc_pack_kv_cstr(
        pk, "image", sb->spec && sb->spec->n_containers ? sb->spec->containers[0]->image : ""));
    PACK(cws_rpc_pack_cstr(pk, "services"));
    PACK(pack_services(pk, st));
    PACK(cws_rpc_pack_cstr(pk, "tags"));
    PACK(pack_tags(pk, sb->spec));
    if (session)
        PACK(cws_rpc_pack_kv_cstr(pk, "session", session));
    if (owner)
        PACK(cws_rpc_pack_kv_cstr(pk, "owner", owner));
    return 0;
}
