/* SandboxInfo and batch results: reading them, copying them, freeing them. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const state_names[] = {
    [CWS_STATE_UNSPECIFIED] = "unspecified", [CWS_STATE_CREATING] = "creating",
    [CWS_STATE_PENDING] = "pending",         [CWS_STATE_RUNNING] = "running",
    [CWS_STATE_PAUSED] = "paused",           [CWS_STATE_TERMINATING] = "terminating",
    [CWS_STATE_COMPLETED] = "completed",     [CWS_STATE_FAILED] = "failed",
    [CWS_STATE_TERMINATED] = "terminated",
};

#define N_STATES (sizeof(state_names) / sizeof(state_names[0]))

const char *cws_sandbox_state_name(enum cws_sandbox_state state)
{
    return (size_t)state < N_STATES ? state_names[state] : "unspecified";
}

bool cws_sandbox_state_is_terminal(enum cws_sandbox_state state)
{
    return state == CWS_STATE_COMPLETED || state == CWS_STATE_FAILED ||
           state == CWS_STATE_TERMINATED;
}

/* An unknown state name is "unspecified", as the SDK treats unknown enum values. */
static enum cws_sandbox_state state_from_name(const char *name)
{
    for (size_t i = 0; i < N_STATES; i++)
        if (strcmp(state_names[i], name) == 0)
            return (enum cws_sandbox_state)i;
    return CWS_STATE_UNSPECIFIED;
}

static void free_services(struct cws_service_url *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free((char *)s[i].name);
        free((char *)s[i].url);
    }
    free(s);
}

void cwsc_sandbox_info_clear(struct cws_sandbox_info *info)
{
    free((char *)info->id);
    free((char *)info->state_reason);
    free((char *)info->runner_id);
    free((char *)info->session);
    free((char *)info->owner);
    free_services((struct cws_service_url *)info->services, info->n_services);
    cwsc_strv_free((char **)info->tags);
    memset(info, 0, sizeof(*info));
}

static int parse_service(const msgpack_object *map, struct cws_service_url *s,
                         struct cws_error *err)
{
    int64_t port = 0;
    char *name = NULL, *url = NULL;
    if (map->type != MSGPACK_OBJECT_MAP)
        return cws_error_set(err, CWS_E_PROTOCOL, "services must hold maps");
    int r = cws_rpc_param_int(map, "port", 0, 65535, &port, err);
    if (r >= 0)
        r = cwsc_get_str(map, "name", &name, err);
    if (r >= 0)
        r = cwsc_get_str(map, "url", &url, err);
    if (r < 0) {
        free(name);
        free(url);
        return r;
    }
    *s = (struct cws_service_url){(int)port, name, url};
    return 0;
}

static int parse_services(const msgpack_object *map, struct cws_sandbox_info *info,
                          struct cws_error *err)
{
    const msgpack_object *arr = NULL;
    int r = cws_rpc_param_array(map, "services", &arr, err);
    if (r <= 0)
        return r;
    size_t n = arr->via.array.size;
    struct cws_service_url *s = calloc(n ? n : 1, sizeof(*s));
    if (!s)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    info->services = s;
    for (size_t i = 0; i < n; i++) {
        r = parse_service(&arr->via.array.ptr[i], &s[i], err);
        if (r < 0)
            return r;
        info->n_services = i + 1;
    }
    return 0;
}

static int parse_exit_code(const msgpack_object *map, struct cws_sandbox_info *info,
                           struct cws_error *err)
{
    int64_t code = 0;
    int r = cws_rpc_param_int(map, "exit_code", INT32_MIN, INT32_MAX, &code, err);
    if (r > 0) {
        info->has_exit_code = true;
        info->exit_code = (int)code;
    }
    return r < 0 ? r : 0;
}

static int parse_fields(const msgpack_object *map, struct cws_sandbox_info *info,
                        struct cws_error *err)
{
    char *s = NULL, *state = NULL, *reason = NULL, *runner = NULL, *session = NULL, *owner = NULL;
    char **tags = NULL;
    int r = cwsc_get_str(map, "id", &s, err);
    info->id = s;
    if (r == 0 && !*info->id)
        r = cws_error_set(err, CWS_E_PROTOCOL, "a sandbox has no id");
    if (r == 0 && (r = cwsc_get_str(map, "state", &state, err)) == 0)
        info->state = state_from_name(state);
    free(state);
    if (r == 0 && (r = cwsc_get_str(map, "state_reason", &reason, err)) == 0)
        info->state_reason = reason;
    if (r == 0 && (r = cwsc_get_str(map, "runner_id", &runner, err)) == 0)
        info->runner_id = runner;
    if (r == 0 && (r = cwsc_get_str(map, "session", &session, err)) == 0)
        info->session = session;
    if (r == 0 && (r = cwsc_get_str(map, "owner", &owner, err)) == 0)
        info->owner = owner;
    if (r == 0 && (r = cwsc_get_strv(map, "tags", &tags, &info->n_tags, err)) == 0)
        info->tags = (const char *const *)tags;
    return r;
}

int cwsc_sandbox_info_parse(const msgpack_object *map, struct cws_sandbox_info *info,
                            struct cws_error *err)
{
    memset(info, 0, sizeof(*info));
    if (map->type != MSGPACK_OBJECT_MAP)
        return cws_error_set(err, CWS_E_PROTOCOL, "a sandbox must be a map");
    int r = parse_fields(map, info, err);
    if (r == 0)
        r = parse_exit_code(map, info, err);
    if (r == 0)
        r = cwsc_get_int(map, "created_ms", &info->created_ms, err);
    if (r == 0)
        r = cwsc_get_int(map, "started_ms", &info->started_ms, err);
    if (r == 0)
        r = cwsc_get_int(map, "ended_ms", &info->ended_ms, err);
    if (r == 0)
        r = parse_services(map, info, err);
    if (r < 0)
        cwsc_sandbox_info_clear(info);
    return r;
}

static int dup_services(const struct cws_sandbox_info *from, struct cws_sandbox_info *to)
{
    struct cws_service_url *s = calloc(from->n_services ? from->n_services : 1, sizeof(*s));
    if (!s)
        return -CWS_E_NOMEM;
    to->services = s;
    for (size_t i = 0; i < from->n_services; i++) {
        s[i].port = from->services[i].port;
        s[i].name = strdup(from->services[i].name);
        s[i].url = strdup(from->services[i].url);
        to->n_services = i + 1;
        if (!s[i].name || !s[i].url)
            return -CWS_E_NOMEM;
    }
    return 0;
}

int cws_sandbox_info_dup(const struct cws_sandbox_info *info, struct cws_sandbox_info **ret)
{
    if (!info || !ret)
        return -CWS_E_INVALID_ARGUMENT;
    struct cws_sandbox_info *copy = calloc(1, sizeof(*copy));
    if (!copy)
        return -CWS_E_NOMEM;
    *copy = *info;
    copy->id = strdup(info->id);
    copy->state_reason = strdup(info->state_reason);
    copy->runner_id = strdup(info->runner_id);
    copy->session = strdup(info->session);
    copy->owner = strdup(info->owner);
    copy->tags = (const char *const *)cwsc_strv_dup(info->tags, info->n_tags);
    copy->services = NULL;
    copy->n_services = 0;
    int r = dup_services(info, copy);
    if (r < 0 || !copy->id || !copy->state_reason || !copy->runner_id || !copy->session ||
        !copy->owner || !copy->tags) {
        cws_sandbox_info_free(copy);
        return -CWS_E_NOMEM;
    }
    *ret = copy;
    return 0;
}

void cws_sandbox_info_free(struct cws_sandbox_info *info)
{
    if (!info)
        return;
    cwsc_sandbox_info_clear(info);
    free(info);
}

/* count (or `stopped`, given as a number or as the list of stopped ids) and failed[]. */
int cwsc_batch_parse(const msgpack_object *map, const char *count_key, struct cws_batch_result *ret,
                     struct cws_error *err)
{
    const msgpack_object *count = NULL;
    char **failed = NULL;
    memset(ret, 0, sizeof(*ret));
    int r = cws_rpc_param(map, count_key, &count, err);
    if (r > 0 && count->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        ret->count = count->via.u64;
    else if (r > 0 && count->type == MSGPACK_OBJECT_ARRAY)
        ret->count = count->via.array.size;
    else if (r > 0)
        r = cws_error_set(err, CWS_E_PROTOCOL, "%s must be a count", count_key);
    if (r >= 0)
        r = cwsc_get_strv(map, "failed", &failed, &ret->n_failed, err);
    if (r < 0)
        return r;
    ret->failed = (const char *const *)failed;
    return 0;
}

void cwsc_batch_clear(struct cws_batch_result *b)
{
    cwsc_strv_free((char **)b->failed);
    memset(b, 0, sizeof(*b));
}
