/* Typed access to msgpack-rpc params; see rpc_params.h. */
#include "rpc_params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int invalid(struct cws_error *err, const char *path, const char *what)
{
    return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "%s %s", path, what);
}

static const msgpack_object *map_lookup(const msgpack_object *map, const char *key, size_t key_len)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == key_len &&
            memcmp(kv->key.via.str.ptr, key, key_len) == 0)
            return &kv->val;
    }
    return NULL;
}

int cws_rpc_param(const msgpack_object *map, const char *path, const msgpack_object **ret,
                  struct cws_error *err)
{
    const msgpack_object *cur = map;
    const char *key = path;

    for (;;) {
        if (cur->type != MSGPACK_OBJECT_MAP) {
            /* Name the step that is not a map: the path up to the previous dot. */
            int prefix = (int)(key - path) - 1;
            return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "%.*s must be a map",
                                 prefix > 0 ? prefix : (int)strlen(path), path);
        }
        const char *dot = strchr(key, '.');
        size_t key_len = dot ? (size_t)(dot - key) : strlen(key);
        cur = map_lookup(cur, key, key_len);
        if (!cur || cur->type == MSGPACK_OBJECT_NIL)
            return 0;
        if (!dot)
            break;
        key = dot + 1;
    }
    *ret = cur;
    return 1;
}

int cws_rpc_param_strv(const msgpack_object *map, const char *path, const char **ret_ptr,
                       size_t *ret_len, struct cws_error *err)
{
    const msgpack_object *o;
    int r = cws_rpc_param(map, path, &o, err);
    if (r <= 0)
        return r;
    if (o->type != MSGPACK_OBJECT_STR)
        return invalid(err, path, "must be a string");
    *ret_ptr = o->via.str.ptr;
    *ret_len = o->via.str.size;
    return 1;
}

static char *dup_str_object(const msgpack_object *o)
{
    char *s = malloc(o->via.str.size + 1);
    if (!s)
        return NULL;
    memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = '\0';
    return s;
}

static bool has_nul(const msgpack_object *o)
{
    return memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL;
}

int cws_rpc_param_str(const msgpack_object *map, const char *path, char **ret,
                      struct cws_error *err)
{
    const msgpack_object *o;
    int r = cws_rpc_param(map, path, &o, err);
    if (r <= 0)
        return r;
    if (o->type != MSGPACK_OBJECT_STR)
        return invalid(err, path, "must be a string");
    if (has_nul(o))
        return invalid(err, path, "must not contain NUL bytes");
    char *s = dup_str_object(o);
    if (!s)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    *ret = s;
    return 1;
}

int cws_rpc_param_bytes(const msgpack_object *map, const char *path, const void **ret_ptr,
                        size_t *ret_len, struct cws_error *err)
{
    const msgpack_object *o;
    int r = cws_rpc_param(map, path, &o, err);
    if (r <= 0)
        return r;
    if (o->type == MSGPACK_OBJECT_BIN) {
        *ret_ptr = o->via.bin.ptr;
        *ret_len = o->via.bin.size;
    } else if (o->type == MSGPACK_OBJECT_STR) {
        *ret_ptr = o->via.str.ptr;
        *ret_len = o->via.str.size;
    } else {
        return invalid(err, path, "must be binary data (bin or str)");
    }
    return 1;
}

int cws_rpc_param_bool(const msgpack_object *map, const char *path, bool *ret,
                       struct cws_error *err)
{
    const msgpack_object *o;
    int r = cws_rpc_param(map, path, &o, err);
    if (r <= 0)
        return r;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return invalid(err, path, "must be a boolean");
    *ret = o->via.boolean;
    return 1;
}

/* The integer value of an int, or of a float holding an integer that fits int64. */
static bool object_int64(const msgpack_object *o, int64_t *ret, bool *ret_too_big)
{
    *ret_too_big = false;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX) {
            *ret_too_big = true;
            return false;
        }
        *ret = (int64_t)o->via.u64;
        return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *ret = o->via.i64;
        return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64))
            return false;
        /* 2^63 is exactly representable; anything at or past it does not fit. */
        if (o->via.f64 >= 9223372036854775808.0 || o->via.f64 < -9223372036854775808.0) {
            *ret_too_big = true;
            return false;
        }
        if ((double)(int64_t)o->via.f64 != o->via.f64)
            return false;
        *ret = (int64_t)o->via.f64;
        return true;
    default:
        return false;
    }
}

int cws_rpc_param_int(const msgpack_object *map, const char *path, int64_t min, int64_t max,
                      int64_t *ret, struct cws_error *err)
{
    const msgpack_object *o;
    int64_t v;
    bool too_big;
    int r = cws_rpc_param(map, path, &o, err);
    if (r <= 0)
        return r;
    if (!object_int64(o, &v, &too_big) && !too_big)
        return invalid(err, path, "must be an integer");
    if (too_big || v < min || v > max)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "%s must be an integer between %lld and %lld", path, (long long)min,
                             (long long)max);
    *ret = v;
    return 1;
}

int cws_rpc_param_nonneg(const msgpack_object *map, const char *path, double *ret,
                         struct cws_error *err)
{
    const msgpack_object *o;
    double v;
    int r = cws_rpc_param(map, path, &o, err);
    if (r <= 0)
        return r;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        v = (double)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
        v = o->via.f64;
    else
        return invalid(err, path, "must be a non-negative number");
    if (!isfinite(v) || v < 0)
        return invalid(err, path, "must be a non-negative number");
    *ret = v;
    return 1;
}

static int param_of_type(const msgpack_object *map, const char *path, msgpack_object_type type,
                         const char *what, const msgpack_object **ret, struct cws_error *err)
{
    const msgpack_object *o;
    int r = cws_rpc_param(map, path, &o, err);
    if (r <= 0)
        return r;
    if (o->type != type)
        return invalid(err, path, what);
    *ret = o;
    return 1;
}

int cws_rpc_param_map(const msgpack_object *map, const char *path, const msgpack_object **ret,
                      struct cws_error *err)
{
    return param_of_type(map, path, MSGPACK_OBJECT_MAP, "must be a map", ret, err);
}

int cws_rpc_param_array(const msgpack_object *map, const char *path, const msgpack_object **ret,
                        struct cws_error *err)
{
    return param_of_type(map, path, MSGPACK_OBJECT_ARRAY, "must be an array", ret, err);
}

void cws_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

int cws_rpc_param_strv_array(const msgpack_object *map, const char *path, char ***ret,
                             size_t *ret_n, struct cws_error *err)
{
    const msgpack_object *a;
    int r = cws_rpc_param_array(map, path, &a, err);
    if (r <= 0)
        return r;
    uint32_t n = a->via.array.size;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *o = &a->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR || has_nul(o))
            return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                                 "%s must be an array of strings without NUL bytes (item %u)", path,
                                 i);
    }
    char **v = calloc((size_t)n + 1, sizeof(*v));
    if (!v)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    for (uint32_t i = 0; i < n; i++) {
        v[i] = dup_str_object(&a->via.array.ptr[i]);
        if (!v[i]) {
            cws_strv_free(v);
            return cws_error_set(err, CWS_E_NOMEM, NULL);
        }
    }
    *ret = v;
    *ret_n = n;
    return 1;
}

static int enum_error(const char *path, const char *const *names, struct cws_error *err)
{
    char list[256] = "";
    size_t used = 0;
    for (const char *const *n = names; *n && used < sizeof(list); n++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", n == names ? "" : ", ", *n);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "%s must be one of: %s", path, list);
}

int cws_rpc_param_enum(const msgpack_object *map, const char *path, const char *const *names,
                       int *ret, struct cws_error *err)
{
    const char *s;
    size_t len;
    int r = cws_rpc_param_strv(map, path, &s, &len, err);
    if (r <= 0)
        return r;
    for (int i = 0; names[i]; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
            *ret = i;
            return 1;
        }
    }
    return enum_error(path, names, err);
}

int cws_rpc_required(int r, const char *path, struct cws_error *err)
{
    if (r == 0)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "%s is required", path);
    return r;
}
