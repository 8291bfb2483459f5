/* Reading daemon results into owned C values. A result of the wrong shape is the daemon's
 * fault, so it becomes a PROTOCOL error rather than the INVALID_ARGUMENT of rpc_params. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int cwsc_bad_result(struct cws_error *err, const char *what)
{
    char msg[CWS_ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof(msg), "%s", err ? err->message : "");
    return cws_error_set(err, CWS_E_PROTOCOL, "unexpected result from cwsandboxd for %s: %s", what,
                         msg);
}

int cwsc_check_map(const msgpack_object *result, const char *method, struct cws_error *err)
{
    if (result->type != MSGPACK_OBJECT_MAP)
        return cws_error_set(err, CWS_E_PROTOCOL,
                             "unexpected result from cwsandboxd for %s: not a map", method);
    return 0;
}

int cwsc_get_str(const msgpack_object *map, const char *key, char **ret, struct cws_error *err)
{
    char *s = NULL;
    int r = cws_rpc_param_str(map, key, &s, err);
    if (r < 0)
        return r;
    if (r == 0 && !(s = strdup("")))
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    *ret = s;
    return 0;
}

int cwsc_get_int(const msgpack_object *map, const char *key, int64_t *ret, struct cws_error *err)
{
    int r = cws_rpc_param_int(map, key, INT64_MIN, INT64_MAX, ret, err);
    return r < 0 ? r : 0;
}

int cwsc_get_uint(const msgpack_object *map, const char *key, uint64_t *ret, struct cws_error *err)
{
    int64_t v = 0;
    int r = cws_rpc_param_int(map, key, 0, INT64_MAX, &v, err);
    if (r > 0)
        *ret = (uint64_t)v;
    return r < 0 ? r : 0;
}

int cwsc_get_double(const msgpack_object *map, const char *key, double *ret, struct cws_error *err)
{
    int r = cws_rpc_param_nonneg(map, key, ret, err);
    return r < 0 ? r : 0;
}

int cwsc_get_bool(const msgpack_object *map, const char *key, bool *ret, struct cws_error *err)
{
    int r = cws_rpc_param_bool(map, key, ret, err);
    return r < 0 ? r : 0;
}

int cwsc_get_strv(const msgpack_object *map, const char *key, char ***ret, size_t *ret_n,
                  struct cws_error *err)
{
    char **v = NULL;
    size_t n = 0;
    int r = cws_rpc_param_strv_array(map, key, &v, &n, err);
    if (r < 0)
        return r;
    if (r == 0 && !(v = calloc(1, sizeof(*v))))
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    *ret = v;
    *ret_n = n;
    return 0;
}

void cwsc_strv_free(char **v)
{
    cws_strv_free(v);
}

char **cwsc_strv_dup(const char *const *v, size_t n)
{
    char **copy = calloc(n + 1, sizeof(*copy));
    if (!copy)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(copy[i] = strdup(v[i]))) {
            cwsc_strv_free(copy);
            return NULL;
        }
    }
    return copy;
}
