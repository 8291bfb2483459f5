/* Packing helpers for request params, and checks of the arguments they come from. */
#include <string.h>

#include "internal.h"

#define PACK(expr)                                                                                 \
    do {                                                                                           \
        if ((expr) != 0)                                                                           \
            return -CWS_E_NOMEM;                                                                   \
    } while (0)

size_t cwsc_strv_len(const char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

int cwsc_pack_kv_double(msgpack_packer *pk, const char *key, double v)
{
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(msgpack_pack_double(pk, v));
    return 0;
}

int cwsc_pack_kv_strv(msgpack_packer *pk, const char *key, const char *const *v)
{
    size_t n = cwsc_strv_len(v);
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(msgpack_pack_array(pk, n));
    for (size_t i = 0; i < n; i++)
        PACK(cws_rpc_pack_cstr(pk, v[i]));
    return 0;
}

int cwsc_pack_kv_envp(msgpack_packer *pk, const char *key, const char *const *envp)
{
    size_t n = cwsc_strv_len(envp);
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(msgpack_pack_map(pk, n));
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(envp[i], '=');
        size_t name_len = (size_t)(eq - envp[i]);
        PACK(msgpack_pack_str(pk, name_len));
        PACK(msgpack_pack_str_body(pk, envp[i], name_len));
        PACK(cws_rpc_pack_cstr(pk, eq + 1));
    }
    return 0;
}

int cwsc_check_envp(const char *const *envp, struct cws_error *err)
{
    for (size_t i = 0; envp && envp[i]; i++) {
        const char *eq = strchr(envp[i], '=');
        if (!eq || eq == envp[i])
            return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                                 "environment entry '%s' is not NAME=value", envp[i]);
    }
    return 0;
}

int cwsc_check_id(const char *id, struct cws_error *err)
{
    if (!id || !*id)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "a sandbox id is required");
    return 0;
}
