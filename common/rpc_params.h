/* Typed access to the params map of a msgpack-rpc message.
 *
 * A path is a key, or keys joined by dots to reach into nested maps ("config.image"). Every
 * getter returns 1 and fills its ret_ outputs when the value is present, 0 when it is absent
 * or nil (outputs untouched), and -CWS_E_INVALID_ARGUMENT with a message naming the path
 * when it has the wrong type or range ("timeout_s must be a non-negative number").
 * Wrap a getter in cws_rpc_required() to make absence an error too.
 *
 * "View" getters return pointers into the message: valid until cws_rpc_msg_free().
 */
#ifndef CWS_RPC_PARAMS_H
#define CWS_RPC_PARAMS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "cws_error.h"

/* The object at path, whatever its type. */
int cws_rpc_param(const msgpack_object *map, const char *path, const msgpack_object **ret,
                  struct cws_error *err);

/* A string without NUL bytes, copied; the caller frees *ret with free(). */
int cws_rpc_param_str(const msgpack_object *map, const char *path, char **ret,
                      struct cws_error *err);

/* A string, as a view (not NUL-terminated). */
int cws_rpc_param_strv(const msgpack_object *map, const char *path, const char **ret_ptr,
                       size_t *ret_len, struct cws_error *err);

/* Binary data given as bin or str, as a view. */
int cws_rpc_param_bytes(const msgpack_object *map, const char *path, const void **ret_ptr,
                        size_t *ret_len, struct cws_error *err);

int cws_rpc_param_bool(const msgpack_object *map, const char *path, bool *ret,
                       struct cws_error *err);

/* An integer in [min, max]; a float with an integral value is accepted too. */
int cws_rpc_param_int(const msgpack_object *map, const char *path, int64_t min, int64_t max,
                      int64_t *ret, struct cws_error *err);

/* A finite non-negative number (integer or float), such as a duration in seconds. */
int cws_rpc_param_nonneg(const msgpack_object *map, const char *path, double *ret,
                         struct cws_error *err);

/* A map or an array, as a view. */
int cws_rpc_param_map(const msgpack_object *map, const char *path, const msgpack_object **ret,
                      struct cws_error *err);
int cws_rpc_param_array(const msgpack_object *map, const char *path, const msgpack_object **ret,
                        struct cws_error *err);

/* An array of strings, copied into a NULL-terminated vector with its count. The caller frees
 * *ret with cws_strv_free(). */
int cws_rpc_param_strv_array(const msgpack_object *map, const char *path, char ***ret,
                             size_t *ret_n, struct cws_error *err);

/* A string that must be one of names (a NULL-terminated list); *ret is its index. */
int cws_rpc_param_enum(const msgpack_object *map, const char *path, const char *const *names,
                       int *ret, struct cws_error *err);

/* Turn "absent" (r == 0) into "<path> is required"; other results pass through. */
int cws_rpc_required(int r, const char *path, struct cws_error *err);

/* Free a NULL-terminated string vector and its strings. Accepts NULL. */
void cws_strv_free(char **v);

#endif
