/* msgpack-rpc message encoding; see rpc_encode.h. */
#include "rpc_encode.h"

#include <stdio.h>
#include <string.h>

/* msgpack-c returns -1 only when the writer callback failed, i.e. out of memory. */
#define PACK(expr)                                                                                 \
    do {                                                                                           \
        if ((expr) != 0)                                                                           \
            return -CWS_E_NOMEM;                                                                   \
    } while (0)

int cws_rpc_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    PACK(msgpack_pack_str(pk, n));
    PACK(msgpack_pack_str_body(pk, s, n));
    return 0;
}

int cws_rpc_pack_request_head(msgpack_packer *pk, uint32_t msgid, const char *method)
{
    PACK(msgpack_pack_array(pk, 4));
    PACK(msgpack_pack_uint8(pk, CWS_RPC_REQUEST));
    PACK(msgpack_pack_uint32(pk, msgid));
    PACK(cws_rpc_pack_cstr(pk, method));
    PACK(msgpack_pack_array(pk, 1));
    return 0;
}

int cws_rpc_pack_notification_head(msgpack_packer *pk, const char *method)
{
    PACK(msgpack_pack_array(pk, 3));
    PACK(msgpack_pack_uint8(pk, CWS_RPC_NOTIFICATION));
    PACK(cws_rpc_pack_cstr(pk, method));
    PACK(msgpack_pack_array(pk, 1));
    return 0;
}

int cws_rpc_pack_result_head(msgpack_packer *pk, uint32_t msgid)
{
    PACK(msgpack_pack_array(pk, 4));
    PACK(msgpack_pack_uint8(pk, CWS_RPC_RESPONSE));
    PACK(msgpack_pack_uint32(pk, msgid));
    PACK(msgpack_pack_nil(pk));
    return 0;
}

int cws_rpc_pack_error(msgpack_packer *pk, const struct cws_error *e)
{
    bool has_reason = e->reason[0] != '\0';
    bool has_retry_after = e->retry_after_ms >= 0;

    PACK(msgpack_pack_map(pk, 3 + has_reason + has_retry_after));
    PACK(cws_rpc_pack_kv_cstr(pk, "code", cws_errcode_name(e->code)));
    PACK(cws_rpc_pack_kv_cstr(pk, "message", e->message));
    if (has_reason)
        PACK(cws_rpc_pack_kv_cstr(pk, "reason", e->reason));
    PACK(cws_rpc_pack_kv_bool(pk, "retryable", e->retryable));
    if (has_retry_after)
        PACK(cws_rpc_pack_kv_int(pk, "retry_after_ms", e->retry_after_ms));
    return 0;
}

int cws_rpc_pack_error_response(msgpack_packer *pk, uint32_t msgid, const struct cws_error *e)
{
    PACK(msgpack_pack_array(pk, 4));
    PACK(msgpack_pack_uint8(pk, CWS_RPC_RESPONSE));
    PACK(msgpack_pack_uint32(pk, msgid));
    PACK(cws_rpc_pack_error(pk, e));
    PACK(msgpack_pack_nil(pk));
    return 0;
}

int cws_rpc_pack_kv_cstr(msgpack_packer *pk, const char *key, const char *value)
{
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(cws_rpc_pack_cstr(pk, value));
    return 0;
}

int cws_rpc_pack_kv_int(msgpack_packer *pk, const char *key, int64_t value)
{
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(msgpack_pack_int64(pk, value));
    return 0;
}

int cws_rpc_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t value)
{
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(msgpack_pack_uint64(pk, value));
    return 0;
}

int cws_rpc_pack_kv_bool(msgpack_packer *pk, const char *key, bool value)
{
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(value ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    return 0;
}

int cws_rpc_pack_kv_bin(msgpack_packer *pk, const char *key, const void *data, size_t len)
{
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(msgpack_pack_bin(pk, len));
    PACK(msgpack_pack_bin_body(pk, data, len));
    return 0;
}

int cws_rpc_pack_kv_nil(msgpack_packer *pk, const char *key)
{
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(msgpack_pack_nil(pk));
    return 0;
}

/* Copy a msgpack str into a fixed buffer, truncating; false if obj is not a str. */
static bool copy_str_object(const msgpack_object *obj, char *buf, size_t size)
{
    if (obj->type != MSGPACK_OBJECT_STR)
        return false;
    size_t n = obj->via.str.size < size - 1 ? obj->via.str.size : size - 1;
    memcpy(buf, obj->via.str.ptr, n);
    buf[n] = '\0';
    return true;
}

static bool key_is(const msgpack_object_kv *kv, const char *key)
{
    size_t n = strlen(key);
    return kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
           memcmp(kv->key.via.str.ptr, key, n) == 0;
}

static void read_error_field(const msgpack_object_kv *kv, struct cws_error *e, char *code,
                             size_t code_size)
{
    if (key_is(kv, "code"))
        copy_str_object(&kv->val, code, code_size);
    else if (key_is(kv, "message"))
        copy_str_object(&kv->val, e->message, sizeof(e->message));
    else if (key_is(kv, "reason"))
        copy_str_object(&kv->val, e->reason, sizeof(e->reason));
    else if (key_is(kv, "retryable") && kv->val.type == MSGPACK_OBJECT_BOOLEAN)
        e->retryable = kv->val.via.boolean;
    else if (key_is(kv, "retry_after_ms") && kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        e->retry_after_ms = kv->val.via.u64 > INT64_MAX ? INT64_MAX : (int64_t)kv->val.via.u64;
}

int cws_rpc_error_from_object(const msgpack_object *obj, struct cws_error *ret,
                              struct cws_error *err)
{
    struct cws_error e;
    char code[64] = "";

    if (obj->type != MSGPACK_OBJECT_MAP)
        return cws_error_set(err, CWS_E_PROTOCOL, "error must be a map");
    cws_error_clear(&e);
    for (uint32_t i = 0; i < obj->via.map.size; i++)
        read_error_field(&obj->via.map.ptr[i], &e, code, sizeof(code));
    if (code[0] == '\0')
        return cws_error_set(err, CWS_E_PROTOCOL, "error map has no string code");
    if (cws_errcode_from_name(code, &e.code) < 0) {
        /* Keep an unknown code visible rather than losing it. */
        char message[sizeof(e.message)];
        memcpy(message, e.message, sizeof(message));
        e.code = CWS_E_UNKNOWN;
        int room = (int)(sizeof(e.message) - sizeof(code) - 4);
        snprintf(e.message, sizeof(e.message), "%.*s (%s)", room, message, code);
    }
    *ret = e;
    return 0;
}
