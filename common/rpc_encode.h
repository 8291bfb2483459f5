/* Encoding msgpack-rpc messages (the daemon protocol of docs/protocol.md).
 *
 *   request       [0, msgid, method, [params]]
 *   response      [1, msgid, error, result]     exactly one of error/result is nil
 *   notification  [2, method, [params]]
 *
 * The *_head functions write everything up to the payload; the caller then packs exactly one
 * object (the params map, or the result) with the same packer. All functions return 0, or
 * -CWS_E_NOMEM when the packer's writer failed (the only way msgpack-c packing fails).
 */
#ifndef CWS_RPC_ENCODE_H
#define CWS_RPC_ENCODE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "cws_error.h"

enum cws_rpc_type {
    CWS_RPC_REQUEST = 0,
    CWS_RPC_RESPONSE = 1,
    CWS_RPC_NOTIFICATION = 2,
};

/* [0, msgid, method, [ — the caller packs the params map next. */
int cws_rpc_pack_request_head(msgpack_packer *pk, uint32_t msgid, const char *method);

/* [2, method, [ — the caller packs the params map next. */
int cws_rpc_pack_notification_head(msgpack_packer *pk, const char *method);

/* [1, msgid, nil, — the caller packs the result next (nil for "no result"). */
int cws_rpc_pack_result_head(msgpack_packer *pk, uint32_t msgid);

/* A whole error response [1, msgid, {error map}, nil]. */
int cws_rpc_pack_error_response(msgpack_packer *pk, uint32_t msgid, const struct cws_error *err);

/* The error map {code, message, reason?, retryable, retry_after_ms?} of DESIGN §3. */
int cws_rpc_pack_error(msgpack_packer *pk, const struct cws_error *err);

/* Read an error map (as packed by cws_rpc_pack_error) into *ret. An unknown code string
 * becomes CWS_E_UNKNOWN with the string kept in the message; a value that is not a map with
 * a string code is -CWS_E_PROTOCOL. */
int cws_rpc_error_from_object(const msgpack_object *obj, struct cws_error *ret,
                              struct cws_error *err);

/* Small helpers for building maps: each packs one value or one key/value pair. */
int cws_rpc_pack_cstr(msgpack_packer *pk, const char *s);
int cws_rpc_pack_kv_cstr(msgpack_packer *pk, const char *key, const char *value);
int cws_rpc_pack_kv_int(msgpack_packer *pk, const char *key, int64_t value);
int cws_rpc_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t value);
int cws_rpc_pack_kv_bool(msgpack_packer *pk, const char *key, bool value);
int cws_rpc_pack_kv_bin(msgpack_packer *pk, const char *key, const void *data, size_t len);
int cws_rpc_pack_kv_nil(msgpack_packer *pk, const char *key);

#endif
