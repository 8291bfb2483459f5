/* SandboxConfig (docs/protocol.md) to a CreateSandboxRequest, built the way the official
 * SDKs build theirs (one container "main", requests and limits both set, the keep-alive
 * default command), so the remote service sees the same requests from us as from them. */
#include <string.h>

#include "arena.h"
#include "rpc_params.h"
#include "sandbox_config.h"

#define DEFAULT_IMAGE "python:3.11"
#define MAIN          "main"

typedef Coreweave__Sandbox__V1__Container Container;
typedef Coreweave__Sandbox__V1__SandboxSpec SandboxSpec;
typedef Coreweave__Sandbox__V1__Resources Resources;

static const char *const keep_alive_args[] = {"-c",
                                              "trap \"exit 0\" TERM INT; sleep infinity & wait"};

struct builder {
    struct cwsd_arena *arena;
    const msgpack_object *params;
    struct cws_error *err;
};

static int nomem(struct builder *b)
{
    return cws_error_set(b->err, CWS_E_NOMEM, NULL);
}

/* An optional string at path, copied into the arena (untouched *ret when absent). */
static int get_str(struct builder *b, const char *path, char **ret)
{
    const char *s;
    size_t n;
    int r = cws_rpc_param_strv(b->params, path, &s, &n, b->err);
    if (r <= 0)
        return r;
    if (memchr(s, 0, n))
        return cws_error_set(b->err, CWS_E_INVALID_ARGUMENT, "%s must not contain NUL bytes", path);
    *ret = cwsd_arena_strndup(b->arena, s, n);
    return *ret ? 1 : nomem(b);
}

static int get_str_array(struct builder *b, const char *path, char ***ret, size_t *ret_n)
{
    char **v = NULL;
    size_t n = 0;
    int r = cws_rpc_param_strv_array(b->params, path, &v, &n, b->err);
    if (r <= 0)
        return r;
    char **copy = cwsd_arena_alloc(b->arena, (n + 1) * sizeof(*copy));
    for (size_t i = 0; copy && i < n; i++)
        if (!(copy[i] = cwsd_arena_strdup(b->arena, v[i])))
            copy = NULL;
    cws_strv_free(v);
    if (!copy)
        return nomem(b);
    *ret = copy;
    *ret_n = n;
    return 1;
}

/* A {str: str} map as protobuf map entries built by make(key, value). */
typedef void *(*entry_fn)(struct cwsd_arena *a, char *key, char *value);

static int get_str_map(struct builder *b, const char *path, entry_fn make, void ***ret,
                       size_t *ret_n)
{
    const msgpack_object *m;
    int r = cws_rpc_param_map(b->params, path, &m, b->err);
    if (r <= 0)
        return r;
    void **entries = cwsd_arena_alloc(b->arena, (m->via.map.size + 1) * sizeof(*entries));
    if (!entries)
        return nomem(b);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR)
            return cws_error_set(b->err, CWS_E_INVALID_ARGUMENT, "%s must map strings to strings",
                                 path);
        char *key = cwsd_arena_strndup(b->arena, k->via.str.ptr, k->via.str.size);
        char *val = cwsd_arena_strndup(b->arena, v->via.str.ptr, v->via.str.size);
        if (!key || !val || !(entries[i] = make(b->arena, key, val)))
            return nomem(b);
    }
    *ret = entries;
    *ret_n = m->via.map.size;
    return 1;
}

static void *make_env_entry(struct cwsd_arena *a, char *key, char *value)
{
    Coreweave__Sandbox__V1__Container__EnvironmentVariablesEntry *e =
        cwsd_arena_alloc(a, sizeof(*e));
    if (e) {
        coreweave__sandbox__v1__container__environment_variables_entry__init(e);
        e->key = key;
        e->value = value;
    }
    return e;
}

static void *make_annotation_entry(struct cwsd_arena *a, char *key, char *value)
{
    Coreweave__Sandbox__V1__SandboxSpec__AnnotationsEntry *e = cwsd_arena_alloc(a, sizeof(*e));
    if (e) {
        coreweave__sandbox__v1__sandbox_spec__annotations_entry__init(e);
        e->key = key;
        e->value = value;
    }
    return e;
}

static Resources *new_resources(struct builder *b)
{
    Resources *r = cwsd_arena_alloc(b->arena, sizeof(*r));
    if (r)
        coreweave__sandbox__v1__resources__init(r);
    return r;
}

static int get_gpu(struct builder *b, Coreweave__Sandbox__V1__Gpu **ret)
{
    const msgpack_object *g;
    int64_t count = 0, mem = 0;
    char *type = NULL;
    int r = cws_rpc_param_map(b->params, "config.resources.gpu", &g, b->err);
    if (r <= 0)
        return r;
    if (cws_rpc_required(
            cws_rpc_param_int(b->params, "config.resources.gpu.count", 1, 1024, &count, b->err),
            "config.resources.gpu.count", b->err) < 0 ||
        get_str(b, "config.resources.gpu.type", &type) < 0 ||
        cws_rpc_param_int(b->params, "config.resources.gpu.memory_gb", 1, 1 << 20, &mem, b->err) <
            0)
        return -(int)b->err->code;
    Coreweave__Sandbox__V1__Gpu *gpu = cwsd_arena_alloc(b->arena, sizeof(*gpu));
    if (!gpu)
        return nomem(b);
    coreweave__sandbox__v1__gpu__init(gpu);
    gpu->count = count;
    if (type) {
        gpu->selector_case = COREWEAVE__SANDBOX__V1__GPU__SELECTOR_TYPE;
        gpu->type = type;
    } else if (mem) {
        gpu->selector_case = COREWEAVE__SANDBOX__V1__GPU__SELECTOR_MEMORY_GB;
        gpu->memory_gb = mem;
    }
    *ret = gpu;
    return 1;
}

/* requests and limits: a side that is given alone is copied to the other (as the SDK does);
 * the GPU goes into both. */
static int build_resources(struct builder *b, Container *c)
{
    Resources *req = new_resources(b), *lim = new_resources(b);
    Coreweave__Sandbox__V1__ResourceRequirements *rr = cwsd_arena_alloc(b->arena, sizeof(*rr));
    Coreweave__Sandbox__V1__Gpu *gpu = NULL;
    if (!req || !lim || !rr)
        return nomem(b);
    coreweave__sandbox__v1__resource_requirements__init(rr);
    static const char *const paths[] = {
        "config.resources.requests.cpu", "config.resources.requests.memory",
        "config.resources.limits.cpu", "config.resources.limits.memory"};
    char **fields[] = {&req->cpu, &req->memory, &lim->cpu, &lim->memory};
    int given = 0, r;
    for (size_t i = 0; i < 4; i++) {
        if ((r = get_str(b, paths[i], fields[i])) < 0)
            return r;
        given += r;
    }
    if ((r = get_gpu(b, &gpu)) < 0)
        return r;
    if (given + r == 0)
        return 0;
    if (!req->cpu[0])
        req->cpu = lim->cpu;
    if (!lim->cpu[0])
        lim->cpu = req->cpu;
    if (!req->memory[0])
        req->memory = lim->memory;
    if (!lim->memory[0])
        lim->memory = req->memory;
    req->gpu = lim->gpu = gpu;
    rr->requests = req;
    rr->limits = lim;
    c->resource_requirements = rr;
    return 0;
}

static int build_files(struct builder *b, Container *c)
{
    const msgpack_object *a;
    int r = cws_rpc_param_array(b->params, "config.mounted_files", &a, b->err);
    if (r <= 0)
        return r;
    c->files = cwsd_arena_alloc(b->arena, (a->via.array.size + 1) * sizeof(*c->files));
    if (!c->files)
        return nomem(b);
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *item = &a->via.array.ptr[i];
        const char *path;
        size_t path_len, len;
        const void *data;
        if (item->type != MSGPACK_OBJECT_MAP ||
            cws_rpc_required(cws_rpc_param_strv(item, "path", &path, &path_len, b->err), "path",
                             b->err) < 0 ||
            cws_rpc_required(cws_rpc_param_bytes(item, "content", &data, &len, b->err), "content",
                             b->err) < 0)
            return cws_error_set(b->err, CWS_E_INVALID_ARGUMENT,
                                 "config.mounted_files[%u] must be a map with path and content", i);
        Coreweave__Sandbox__V1__FileMount *f = cwsd_arena_alloc(b->arena, sizeof(*f));
        uint8_t *copy = cwsd_arena_alloc(b->arena, len);
        if (!f || !copy)
            return nomem(b);
        coreweave__sandbox__v1__file_mount__init(f);
        f->path = cwsd_arena_strndup(b->arena, path, path_len);
        memcpy(copy, data, len);
        f->content.data = copy;
        f->content.len = len;
        c->files[c->n_files++] = f;
    }
    return 0;
}

static int service_protocol(struct builder *b, const msgpack_object *item, uint32_t i,
                            Coreweave__Sandbox__V1__ServiceProtocol *ret)
{
    static const char *const names[] = {"tcp", "udp", "sctp", NULL};
    int idx = -1;
    int r = cws_rpc_param_enum(item, "protocol", names, &idx, b->err);
    if (r < 0)
        return cws_error_set(b->err, CWS_E_INVALID_ARGUMENT,
                             "config.services[%u].protocol must be tcp, udp or sctp", i);
    *ret = r == 0 ? COREWEAVE__SANDBOX__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_UNSPECIFIED
                  : (Coreweave__Sandbox__V1__ServiceProtocol)(idx + 1);
    return 0;
}

static int build_services(struct builder *b, SandboxSpec *spec)
{
    const msgpack_object *a;
    int r = cws_rpc_param_array(b->params, "config.services", &a, b->err);
    if (r <= 0)
        return r;
    spec->services = cwsd_arena_alloc(b->arena, (a->via.array.size + 1) * sizeof(*spec->services));
    if (!spec->services)
        return nomem(b);
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *item = &a->via.array.ptr[i];
        Coreweave__Sandbox__V1__Service *s = cwsd_arena_alloc(b->arena, sizeof(*s));
        int64_t port = 0;
        bool pub = false;
        const char *name = NULL;
        size_t name_len = 0;
        if (!s)
            return nomem(b);
        coreweave__sandbox__v1__service__init(s);
        if (item->type != MSGPACK_OBJECT_MAP ||
            cws_rpc_required(cws_rpc_param_int(item, "port", 1, 65535, &port, b->err), "port",
                             b->err) < 0 ||
            cws_rpc_param_strv(item, "name", &name, &name_len, b->err) < 0 ||
            cws_rpc_param_bool(item, "public", &pub, b->err) < 0)
            return cws_error_set(b->err, CWS_E_INVALID_ARGUMENT,
                                 "config.services[%u] must be a map with a port in 1-65535", i);
        if (service_protocol(b, item, i, &s->protocol) < 0)
            return -(int)b->err->code;
        s->port = (int32_t)port;
        if (name)
            s->name = cwsd_arena_strndup(b->arena, name, name_len);
        if (pub)
            s->visibility = COREWEAVE__SANDBOX__V1__VISIBILITY__VISIBILITY_PUBLIC;
        spec->services[spec->n_services++] = s;
    }
    return 0;
}

static int build_network(struct builder *b, SandboxSpec *spec)
{
    const msgpack_object *m;
    bool deny_egress = false, deny_ingress = false;
    char **dns = NULL;
    size_t n_dns = 0;
    int r = cws_rpc_param_map(b->params, "config.network", &m, b->err);
    if (r <= 0)
        return r;
    Coreweave__Sandbox__V1__NetworkOptions *net = cwsd_arena_alloc(b->arena, sizeof(*net));
    if (!net)
        return nomem(b);
    coreweave__sandbox__v1__network_options__init(net);
    if ((r = cws_rpc_param_bool(b->params, "config.network.deny_egress", &deny_egress, b->err)) < 0)
        return r;
    if (r == 1) {
        net->_deny_egress_case = COREWEAVE__SANDBOX__V1__NETWORK_OPTIONS___DENY_EGRESS_DENY_EGRESS;
        net->deny_egress = deny_egress;
    }
    if ((r = cws_rpc_param_bool(b->params, "config.network.deny_ingress", &deny_ingress, b->err)) <
        0)
        return r;
    if (r == 1) {
        net->_deny_ingress_case =
            COREWEAVE__SANDBOX__V1__NETWORK_OPTIONS___DENY_INGRESS_DENY_INGRESS;
        net->deny_ingress = deny_ingress;
    }
    if ((r = get_str_array(b, "config.network.egress_dns", &dns, &n_dns)) < 0)
        return r;
    net->egress = cwsd_arena_alloc(b->arena, (n_dns + 1) * sizeof(*net->egress));
    if (!net->egress)
        return nomem(b);
    for (size_t i = 0; i < n_dns; i++) {
        Coreweave__Sandbox__V1__EgressRule *rule = cwsd_arena_alloc(b->arena, sizeof(*rule));
        if (!rule)
            return nomem(b);
        coreweave__sandbox__v1__egress_rule__init(rule);
        rule->destination_case = COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_DNS_NAME;
        rule->dns_name = dns[i];
        net->egress[net->n_egress++] = rule;
    }
    spec->network = net;
    return 0;
}

static int build_placement(struct builder *b, SandboxSpec *spec)
{
    static const char *const modes[] = {"serverless", "cks", NULL};
    int mode = -1;
    int r = cws_rpc_param_enum(b->params, "config.placement.mode", modes, &mode, b->err);
    if (r < 0)
        return r;
    if (r == 1)
        spec->mode = (Coreweave__Sandbox__V1__SandboxMode)(mode + 1);
    if ((r = get_str_array(b, "config.placement.runner_ids", &spec->runner_ids,
                           &spec->n_runner_ids)) < 0)
        return r;
    if (spec->n_runner_ids > 0 &&
        spec->mode == COREWEAVE__SANDBOX__V1__SANDBOX_MODE__SANDBOX_MODE_SERVERLESS)
        return cws_error_set(b->err, CWS_E_INVALID_ARGUMENT,
                             "config.placement.runner_ids needs mode cks, not serverless");
    /* Pinned runners imply CKS, as in the SDK. */
    if (spec->n_runner_ids > 0)
        spec->mode = COREWEAVE__SANDBOX__V1__SANDBOX_MODE__SANDBOX_MODE_CKS;
    return 0;
}

static int build_command(struct builder *b, Container *c)
{
    int r = get_str(b, "config.command", &c->command);
    if (r < 0)
        return r;
    r = get_str_array(b, "config.args", &c->args, &c->n_args);
    if (r < 0)
        return r;
    if (c->command[0])
        return 0;
    /* No command: stay up until stopped, and end cleanly then. */
    c->command = (char *)"/bin/sh";
    c->args = (char **)keep_alive_args;
    c->n_args = 2;
    return 0;
}

static int build_container(struct builder *b, Container *c)
{
    int r;
    coreweave__sandbox__v1__container__init(c);
    c->name = (char *)MAIN;
    c->image = (char *)DEFAULT_IMAGE;
    if ((r = get_str(b, "config.image", &c->image)) < 0 ||
        (r = get_str(b, "config.working_dir", &c->working_dir)) < 0 ||
        (r = build_command(b, c)) < 0 ||
        (r = get_str_map(b, "config.env", make_env_entry, (void ***)&c->environment_variables,
                         &c->n_environment_variables)) < 0 ||
        (r = build_resources(b, c)) < 0 || (r = build_files(b, c)) < 0)
        return r;
    return 0;
}

static int build_spec(struct builder *b, SandboxSpec *spec, const char *const *extra_tags)
{
    Container *c = cwsd_arena_alloc(b->arena, sizeof(*c));
    Container **cs = cwsd_arena_alloc(b->arena, sizeof(*cs));
    int64_t lifetime = 0;
    char **tags = NULL;
    size_t n_tags = 0;
    int r;
    if (!c || !cs)
        return nomem(b);
    coreweave__sandbox__v1__sandbox_spec__init(spec);
    if ((r = build_container(b, c)) < 0)
        return r;
    cs[0] = c;
    spec->containers = cs;
    spec->n_containers = 1;
    spec->primary_container = (char *)MAIN;
    if ((r = cws_rpc_param_int(b->params, "config.max_lifetime_s", 0, INT32_MAX, &lifetime,
                               b->err)) < 0 ||
        (r = get_str_array(b, "config.tags", &tags, &n_tags)) < 0 ||
        (r = get_str_map(b, "config.annotations", make_annotation_entry,
                         (void ***)&spec->annotations, &spec->n_annotations)) < 0 ||
        (r = build_services(b, spec)) < 0 || (r = build_network(b, spec)) < 0 ||
        (r = build_placement(b, spec)) < 0)
        return r;
    spec->max_lifetime_seconds = (int32_t)lifetime;
    size_t n_extra = 0;
    while (extra_tags && extra_tags[n_extra])
        n_extra++;
    spec->tags = cwsd_arena_alloc(b->arena, (n_tags + n_extra + 1) * sizeof(*spec->tags));
    if (!spec->tags)
        return nomem(b);
    for (size_t i = 0; i < n_tags; i++)
        spec->tags[spec->n_tags++] = tags[i];
    for (size_t i = 0; i < n_extra; i++)
        spec->tags[spec->n_tags++] = (char *)extra_tags[i];
    return 0;
}

int cwsd_build_create_request(const msgpack_object *params, const char *request_id,
                              const char *const *extra_tags, struct cwsd_arena *arena,
                              Coreweave__Sandbox__V1__CreateSandboxRequest **ret,
                              struct cws_error *err)
{
    struct builder b = {arena, params, err};
    const msgpack_object *config = NULL;
    int r = cws_rpc_param_map(params, "config", &config, err);
    if (r < 0)
        return r;
    Coreweave__Sandbox__V1__CreateSandboxRequest *req = cwsd_arena_alloc(arena, sizeof(*req));
    Coreweave__Sandbox__V1__Sandbox *sb = cwsd_arena_alloc(arena, sizeof(*sb));
    SandboxSpec *spec = cwsd_arena_alloc(arena, sizeof(*spec));
    if (!req || !sb || !spec)
        return nomem(&b);
    coreweave__sandbox__v1__create_sandbox_request__init(req);
    coreweave__sandbox__v1__sandbox__init(sb);
    r = build_spec(&b, spec, extra_tags);
    if (r < 0)
        return r;
    sb->spec = spec;
    req->sandbox = sb;
    req->request_id = cwsd_arena_strdup(arena, request_id ? request_id : "");
    if (!req->request_id)
        return nomem(&b);
    *ret = req;
    return 0;
}
