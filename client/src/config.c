/* The SandboxConfig builder, and its msgpack form (docs/protocol.md, sandbox.create). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct strlist {
    char **v;
    size_t n;
};

struct kv {
    char *key;
    char *value;
};

struct kvlist {
    struct kv *v;
    size_t n;
};

struct mounted_file {
    char *path;
    void *data;
    size_t len;
};

struct service {
    int port;
    char *name;
    char *protocol;
    bool is_public;
};

struct cws_sandbox_config {
    char *image;
    struct strlist argv; /* command, then its args */
    char *working_dir;
    struct kvlist env;
    struct strlist tags;
    struct kvlist annotations;
    char *request_cpu, *request_memory, *limit_cpu, *limit_memory;
    int gpu_count;
    char *gpu_type;
    int gpu_memory_gb;
    double max_lifetime_s;
    struct mounted_file *files;
    size_t n_files;
    struct service *services;
    size_t n_services;
    bool has_network, deny_egress, deny_ingress;
    struct strlist egress_dns;
    enum cws_placement_mode placement;
    struct strlist runner_ids;
    bool has_error;
    struct cws_error error;
};

/* ---- small owned containers ---- */

static void strlist_clear(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int strlist_add(struct strlist *l, const char *s)
{
    char *copy = strdup(s);
    char **v = copy ? realloc(l->v, (l->n + 1) * sizeof(*v)) : NULL;
    if (!v) {
        free(copy);
        return -CWS_E_NOMEM;
    }
    v[l->n++] = copy;
    l->v = v;
    return 0;
}

static int strlist_copy(struct strlist *to, const struct strlist *from)
{
    for (size_t i = 0; i < from->n; i++)
        if (strlist_add(to, from->v[i]) < 0)
            return -CWS_E_NOMEM;
    return 0;
}

static void kvlist_clear(struct kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].key);
        free(l->v[i].value);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Set key to value, replacing an earlier value of the same key. */
static int kvlist_set(struct kvlist *l, const char *key, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return -CWS_E_NOMEM;
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i].key, key) == 0) {
            free(l->v[i].value);
            l->v[i].value = v;
            return 0;
        }
    }
    char *k = strdup(key);
    struct kv *arr = k ? realloc(l->v, (l->n + 1) * sizeof(*arr)) : NULL;
    if (!arr) {
        free(k);
        free(v);
        return -CWS_E_NOMEM;
    }
    arr[l->n++] = (struct kv){k, v};
    l->v = arr;
    return 0;
}

static int kvlist_copy(struct kvlist *to, const struct kvlist *from)
{
    for (size_t i = 0; i < from->n; i++)
        if (kvlist_set(to, from->v[i].key, from->v[i].value) < 0)
            return -CWS_E_NOMEM;
    return 0;
}

/* Replace *slot with a copy of s (NULL clears it). */
static int replace_str(char **slot, const char *s)
{
    char *copy = NULL;
    if (s && !(copy = strdup(s)))
        return -CWS_E_NOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

/* ---- errors: the first one is remembered for the create ---- */

static int remember(cws_sandbox_config *cfg, int r, const char *what)
{
    if (r < 0 && cfg && !cfg->has_error) {
        cfg->has_error = true;
        if (r == -CWS_E_NOMEM)
            cws_error_set(&cfg->error, CWS_E_NOMEM, "out of memory setting %s", what);
        else
            cws_error_set(&cfg->error, (enum cws_errcode) - r, "invalid %s", what);
    }
    return r;
}

static int invalid(cws_sandbox_config *cfg, const char *what)
{
    return remember(cfg, -CWS_E_INVALID_ARGUMENT, what);
}

static bool nonempty(const char *s)
{
    return s && *s;
}

const struct cws_error *cws_sandbox_config_error(const cws_sandbox_config *cfg)
{
    return cfg && cfg->has_error ? &cfg->error : NULL;
}

int cwsc_config_check(const cws_sandbox_config *cfg, struct cws_error *err)
{
    if (!cfg || !cfg->has_error)
        return 0;
    if (err)
        *err = cfg->error;
    return -(int)cfg->error.code;
}

/* ---- life ---- */

int cws_sandbox_config_new(cws_sandbox_config **ret)
{
    cws_sandbox_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return -CWS_E_NOMEM;
    cws_error_clear(&cfg->error);
    *ret = cfg;
    return 0;
}

void cws_sandbox_config_free(cws_sandbox_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->image);
    strlist_clear(&cfg->argv);
    free(cfg->working_dir);
    kvlist_clear(&cfg->env);
    strlist_clear(&cfg->tags);
    kvlist_clear(&cfg->annotations);
    free(cfg->request_cpu);
    free(cfg->request_memory);
    free(cfg->limit_cpu);
    free(cfg->limit_memory);
    free(cfg->gpu_type);
    for (size_t i = 0; i < cfg->n_files; i++) {
        free(cfg->files[i].path);
        free(cfg->files[i].data);
    }
    free(cfg->files);
    for (size_t i = 0; i < cfg->n_services; i++) {
        free(cfg->services[i].name);
        free(cfg->services[i].protocol);
    }
    free(cfg->services);
    strlist_clear(&cfg->egress_dns);
    strlist_clear(&cfg->runner_ids);
    free(cfg);
}

static int copy_scalars(cws_sandbox_config *to, const cws_sandbox_config *from)
{
    to->gpu_count = from->gpu_count;
    to->gpu_memory_gb = from->gpu_memory_gb;
    to->max_lifetime_s = from->max_lifetime_s;
    to->has_network = from->has_network;
    to->deny_egress = from->deny_egress;
    to->deny_ingress = from->deny_ingress;
    to->placement = from->placement;
    to->has_error = from->has_error;
    to->error = from->error;
    if (replace_str(&to->image, from->image) < 0 ||
        replace_str(&to->working_dir, from->working_dir) < 0 ||
        replace_str(&to->request_cpu, from->request_cpu) < 0 ||
        replace_str(&to->request_memory, from->request_memory) < 0 ||
        replace_str(&to->limit_cpu, from->limit_cpu) < 0 ||
        replace_str(&to->limit_memory, from->limit_memory) < 0 ||
        replace_str(&to->gpu_type, from->gpu_type) < 0)
        return -CWS_E_NOMEM;
    return 0;
}

static int copy_lists(cws_sandbox_config *to, const cws_sandbox_config *from)
{
    if (strlist_copy(&to->argv, &from->argv) < 0 || kvlist_copy(&to->env, &from->env) < 0 ||
        strlist_copy(&to->tags, &from->tags) < 0 ||
        kvlist_copy(&to->annotations, &from->annotations) < 0 ||
        strlist_copy(&to->egress_dns, &from->egress_dns) < 0 ||
        strlist_copy(&to->runner_ids, &from->runner_ids) < 0)
        return -CWS_E_NOMEM;
    for (size_t i = 0; i < from->n_files; i++)
        if (cws_sandbox_config_add_mounted_file(to, from->files[i].path, from->files[i].data,
                                                from->files[i].len) < 0)
            return -CWS_E_NOMEM;
    for (size_t i = 0; i < from->n_services; i++) {
        const struct service *s = &from->services[i];
        if (cws_sandbox_config_add_service(to, s->port, s->name, s->protocol, s->is_public) < 0)
            return -CWS_E_NOMEM;
    }
    return 0;
}

int cws_sandbox_config_dup(const cws_sandbox_config *cfg, cws_sandbox_config **ret)
{
    cws_sandbox_config *copy = NULL;
    if (!cfg)
        return -CWS_E_INVALID_ARGUMENT;
    int r = cws_sandbox_config_new(&copy);
    if (r == 0 && (copy_lists(copy, cfg) < 0 || copy_scalars(copy, cfg) < 0))
        r = -CWS_E_NOMEM;
    if (r < 0) {
        cws_sandbox_config_free(copy);
        return r;
    }
    *ret = copy;
    return 0;
}

/* ---- setters ---- */

int cws_sandbox_config_set_image(cws_sandbox_config *cfg, const char *image)
{
    if (!cfg || !nonempty(image))
        return invalid(cfg, "image (empty)");
    return remember(cfg, replace_str(&cfg->image, image), "image");
}

int cws_sandbox_config_set_command(cws_sandbox_config *cfg, const char *const *argv)
{
    struct strlist l = {0};
    if (!cfg || !argv || !nonempty(argv[0]))
        return invalid(cfg, "command (empty argv)");
    for (size_t i = 0; argv[i]; i++) {
        if (strlist_add(&l, argv[i]) < 0) {
            strlist_clear(&l);
            return remember(cfg, -CWS_E_NOMEM, "command");
        }
    }
    strlist_clear(&cfg->argv);
    cfg->argv = l;
    return 0;
}

int cws_sandbox_config_set_working_dir(cws_sandbox_config *cfg, const char *dir)
{
    if (!cfg || !dir || dir[0] != '/')
        return invalid(cfg, "working directory (must be absolute)");
    return remember(cfg, replace_str(&cfg->working_dir, dir), "working directory");
}

int cws_sandbox_config_set_env(cws_sandbox_config *cfg, const char *name, const char *value)
{
    if (!cfg || !nonempty(name) || strchr(name, '=') || !value)
        return invalid(cfg, "environment variable (empty name, '=' in it, or NULL value)");
    return remember(cfg, kvlist_set(&cfg->env, name, value), "environment variable");
}

int cws_sandbox_config_add_tag(cws_sandbox_config *cfg, const char *tag)
{
    if (!cfg || !nonempty(tag))
        return invalid(cfg, "tag (empty)");
    return remember(cfg, strlist_add(&cfg->tags, tag), "tag");
}

int cws_sandbox_config_set_annotation(cws_sandbox_config *cfg, const char *key, const char *value)
{
    if (!cfg || !nonempty(key) || !value)
        return invalid(cfg, "annotation (empty key or NULL value)");
    return remember(cfg, kvlist_set(&cfg->annotations, key, value), "annotation");
}

static int set_pair(cws_sandbox_config *cfg, char **cpu_slot, char **memory_slot, const char *cpu,
                    const char *memory, const char *what)
{
    if (!cfg || (cpu && !*cpu) || (memory && !*memory))
        return invalid(cfg, what);
    int r = 0;
    if (cpu)
        r = replace_str(cpu_slot, cpu);
    if (r == 0 && memory)
        r = replace_str(memory_slot, memory);
    return remember(cfg, r, what);
}

int cws_sandbox_config_set_requests(cws_sandbox_config *cfg, const char *cpu, const char *memory)
{
    if (!cfg)
        return invalid(cfg, "resource requests");
    return set_pair(cfg, &cfg->request_cpu, &cfg->request_memory, cpu, memory,
                    "resource requests (empty quantity)");
}

int cws_sandbox_config_set_limits(cws_sandbox_config *cfg, const char *cpu, const char *memory)
{
    if (!cfg)
        return invalid(cfg, "resource limits");
    return set_pair(cfg, &cfg->limit_cpu, &cfg->limit_memory, cpu, memory,
                    "resource limits (empty quantity)");
}

int cws_sandbox_config_set_gpu(cws_sandbox_config *cfg, int count, const char *type, int memory_gb)
{
    if (!cfg || count <= 0 || memory_gb < 0 || (type && !*type))
        return invalid(cfg, "GPU (count must be positive, memory_gb not negative)");
    int r = replace_str(&cfg->gpu_type, type);
    if (r == 0) {
        cfg->gpu_count = count;
        cfg->gpu_memory_gb = memory_gb;
    }
    return remember(cfg, r, "GPU");
}

int cws_sandbox_config_set_max_lifetime(cws_sandbox_config *cfg, double seconds)
{
    if (!cfg || !isfinite(seconds) || seconds <= 0)
        return invalid(cfg, "max lifetime (must be a positive number of seconds)");
    cfg->max_lifetime_s = seconds;
    return 0;
}

int cws_sandbox_config_add_mounted_file(cws_sandbox_config *cfg, const char *path, const void *data,
                                        size_t len)
{
    if (!cfg || !path || path[0] != '/' || (!data && len > 0))
        return invalid(cfg, "mounted file (path must be absolute)");
    char *p = strdup(path);
    void *d = malloc(len ? len : 1);
    struct mounted_file *files =
        p && d ? realloc(cfg->files, (cfg->n_files + 1) * sizeof(*files)) : NULL;
    if (!files) {
        free(p);
        free(d);
        return remember(cfg, -CWS_E_NOMEM, "mounted file");
    }
    if (len)
        memcpy(d, data, len);
    files[cfg->n_files++] = (struct mounted_file){p, d, len};
    cfg->files = files;
    return 0;
}

static bool valid_protocol(const char *p)
{
    return !p || strcmp(p, "tcp") == 0 || strcmp(p, "udp") == 0 || strcmp(p, "sctp") == 0;
}

int cws_sandbox_config_add_service(cws_sandbox_config *cfg, int port, const char *name,
                                   const char *protocol, bool is_public)
{
    if (!cfg || port < 1 || port > 65535 || !valid_protocol(protocol))
        return invalid(cfg, "service (port 1..65535, protocol tcp, udp or sctp)");
    char *n = NULL, *p = NULL;
    struct service *s = NULL;
    if (replace_str(&n, name) == 0 && replace_str(&p, protocol) == 0)
        s = realloc(cfg->services, (cfg->n_services + 1) * sizeof(*s));
    if (!s) {
        free(n);
        free(p);
        return remember(cfg, -CWS_E_NOMEM, "service");
    }
    s[cfg->n_services++] = (struct service){port, n, p, is_public};
    cfg->services = s;
    return 0;
}

int cws_sandbox_config_set_network(cws_sandbox_config *cfg, bool deny_egress, bool deny_ingress)
{
    if (!cfg)
        return invalid(cfg, "network");
    cfg->has_network = true;
    cfg->deny_egress = deny_egress;
    cfg->deny_ingress = deny_ingress;
    return 0;
}

int cws_sandbox_config_add_egress_dns(cws_sandbox_config *cfg, const char *dns_name)
{
    if (!cfg || !nonempty(dns_name) || strcmp(dns_name, "*") == 0)
        return invalid(cfg, "egress DNS name (empty, or \"*\")");
    return remember(cfg, strlist_add(&cfg->egress_dns, dns_name), "egress DNS name");
}

int cws_sandbox_config_set_placement(cws_sandbox_config *cfg, enum cws_placement_mode mode)
{
    if (!cfg || (mode != CWS_PLACEMENT_DEFAULT && mode != CWS_PLACEMENT_SERVERLESS &&
                 mode != CWS_PLACEMENT_CKS))
        return invalid(cfg, "placement mode");
    cfg->placement = mode;
    return 0;
}

int cws_sandbox_config_add_runner_id(cws_sandbox_config *cfg, const char *runner_id)
{
    if (!cfg || !nonempty(runner_id))
        return invalid(cfg, "runner id (empty)");
    return remember(cfg, strlist_add(&cfg->runner_ids, runner_id), "runner id");
}

/* ---- msgpack ---- */

#define PACK(expr)                                                                                 \
    do {                                                                                           \
        if ((expr) != 0)                                                                           \
            return -CWS_E_NOMEM;                                                                   \
    } while (0)

static int pack_strlist(msgpack_packer *pk, const char *key, const struct strlist *l)
{
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(msgpack_pack_array(pk, l->n));
    for (size_t i = 0; i < l->n; i++)
        PACK(cws_rpc_pack_cstr(pk, l->v[i]));
    return 0;
}

static int pack_kvlist(msgpack_packer *pk, const char *key, const struct kvlist *l)
{
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(msgpack_pack_map(pk, l->n));
    for (size_t i = 0; i < l->n; i++)
        PACK(cws_rpc_pack_kv_cstr(pk, l->v[i].key, l->v[i].value));
    return 0;
}

/* {cpu?, memory?} under key, when either is set. */
static int pack_quantities(msgpack_packer *pk, const char *key, const char *cpu, const char *memory)
{
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(msgpack_pack_map(pk, (cpu ? 1 : 0) + (memory ? 1 : 0)));
    if (cpu)
        PACK(cws_rpc_pack_kv_cstr(pk, "cpu", cpu));
    if (memory)
        PACK(cws_rpc_pack_kv_cstr(pk, "memory", memory));
    return 0;
}

static bool has_requests(const cws_sandbox_config *cfg)
{
    return cfg->request_cpu || cfg->request_memory;
}

static bool has_limits(const cws_sandbox_config *cfg)
{
    return cfg->limit_cpu || cfg->limit_memory;
}

static bool has_resources(const cws_sandbox_config *cfg)
{
    return has_requests(cfg) || has_limits(cfg) || cfg->gpu_count > 0;
}

static int pack_gpu(msgpack_packer *pk, const cws_sandbox_config *cfg)
{
    PACK(cws_rpc_pack_cstr(pk, "gpu"));
    PACK(msgpack_pack_map(pk, 1 + (cfg->gpu_type ? 1 : 0) + (cfg->gpu_memory_gb ? 1 : 0)));
    PACK(cws_rpc_pack_kv_int(pk, "count", cfg->gpu_count));
    if (cfg->gpu_type)
        PACK(cws_rpc_pack_kv_cstr(pk, "type", cfg->gpu_type));
    if (cfg->gpu_memory_gb)
        PACK(cws_rpc_pack_kv_int(pk, "memory_gb", cfg->gpu_memory_gb));
    return 0;
}

static int pack_resources(msgpack_packer *pk, const cws_sandbox_config *cfg)
{
    PACK(cws_rpc_pack_cstr(pk, "resources"));
    PACK(msgpack_pack_map(pk, (has_requests(cfg) ? 1 : 0) + (has_limits(cfg) ? 1 : 0) +
                                  (cfg->gpu_count > 0 ? 1 : 0)));
    if (has_requests(cfg))
        PACK(pack_quantities(pk, "requests", cfg->request_cpu, cfg->request_memory));
    if (has_limits(cfg))
        PACK(pack_quantities(pk, "limits", cfg->limit_cpu, cfg->limit_memory));
    if (cfg->gpu_count > 0)
        PACK(pack_gpu(pk, cfg));
    return 0;
}

static int pack_files(msgpack_packer *pk, const cws_sandbox_config *cfg)
{
    PACK(cws_rpc_pack_cstr(pk, "mounted_files"));
    PACK(msgpack_pack_array(pk, cfg->n_files));
    for (size_t i = 0; i < cfg->n_files; i++) {
        PACK(msgpack_pack_map(pk, 2));
        PACK(cws_rpc_pack_kv_cstr(pk, "path", cfg->files[i].path));
        PACK(cws_rpc_pack_kv_bin(pk, "content", cfg->files[i].data, cfg->files[i].len));
    }
    return 0;
}

static int pack_services(msgpack_packer *pk, const cws_sandbox_config *cfg)
{
    PACK(cws_rpc_pack_cstr(pk, "services"));
    PACK(msgpack_pack_array(pk, cfg->n_services));
    for (size_t i = 0; i < cfg->n_services; i++) {
        const struct service *s = &cfg->services[i];
        PACK(msgpack_pack_map(pk, 2 + (s->name ? 1 : 0) + (s->protocol ? 1 : 0)));
        PACK(cws_rpc_pack_kv_int(pk, "port", s->port));
        if (s->name)
            PACK(cws_rpc_pack_kv_cstr(pk, "name", s->name));
        if (s->protocol)
            PACK(cws_rpc_pack_kv_cstr(pk, "protocol", s->protocol));
        PACK(cws_rpc_pack_kv_bool(pk, "public", s->is_public));
    }
    return 0;
}

static bool has_network(const cws_sandbox_config *cfg)
{
    return cfg->has_network || cfg->egress_dns.n > 0;
}

static int pack_network(msgpack_packer *pk, const cws_sandbox_config *cfg)
{
    PACK(cws_rpc_pack_cstr(pk, "network"));
    PACK(msgpack_pack_map(pk, (cfg->has_network ? 2 : 0) + (cfg->egress_dns.n ? 1 : 0)));
    if (cfg->has_network) {
        PACK(cws_rpc_pack_kv_bool(pk, "deny_egress", cfg->deny_egress));
        PACK(cws_rpc_pack_kv_bool(pk, "deny_ingress", cfg->deny_ingress));
    }
    if (cfg->egress_dns.n)
        PACK(pack_strlist(pk, "egress_dns", &cfg->egress_dns));
    return 0;
}

static bool has_placement(const cws_sandbox_config *cfg)
{
    return cfg->placement != CWS_PLACEMENT_DEFAULT || cfg->runner_ids.n > 0;
}

static int pack_placement(msgpack_packer *pk, const cws_sandbox_config *cfg)
{
    bool mode = cfg->placement != CWS_PLACEMENT_DEFAULT;
    PACK(cws_rpc_pack_cstr(pk, "placement"));
    PACK(msgpack_pack_map(pk, (mode ? 1 : 0) + (cfg->runner_ids.n ? 1 : 0)));
    if (mode)
        PACK(cws_rpc_pack_kv_cstr(pk, "mode",
                                  cfg->placement == CWS_PLACEMENT_CKS ? "cks" : "serverless"));
    if (cfg->runner_ids.n)
        PACK(pack_strlist(pk, "runner_ids", &cfg->runner_ids));
    return 0;
}

/* The args after the command, as a strlist view. */
static struct strlist args_of(const cws_sandbox_config *cfg)
{
    struct strlist l = {cfg->argv.v + 1, cfg->argv.n - 1};
    return l;
}

static size_t count_keys(const cws_sandbox_config *cfg)
{
    return (cfg->image ? 1 : 0) + (cfg->argv.n ? 1 : 0) + (cfg->argv.n > 1 ? 1 : 0) +
           (cfg->working_dir ? 1 : 0) + (cfg->env.n ? 1 : 0) + (cfg->tags.n ? 1 : 0) +
           (cfg->annotations.n ? 1 : 0) + (has_resources(cfg) ? 1 : 0) +
           (cfg->max_lifetime_s > 0 ? 1 : 0) + (cfg->n_files ? 1 : 0) + (cfg->n_services ? 1 : 0) +
           (has_network(cfg) ? 1 : 0) + (has_placement(cfg) ? 1 : 0);
}

int cwsc_config_pack(msgpack_packer *pk, const cws_sandbox_config *cfg)
{
    if (!cfg) {
        PACK(msgpack_pack_map(pk, 0));
        return 0;
    }
    PACK(msgpack_pack_map(pk, count_keys(cfg)));
    if (cfg->image)
        PACK(cws_rpc_pack_kv_cstr(pk, "image", cfg->image));
    if (cfg->argv.n)
        PACK(cws_rpc_pack_kv_cstr(pk, "command", cfg->argv.v[0]));
    if (cfg->argv.n > 1) {
        struct strlist args = args_of(cfg);
        PACK(pack_strlist(pk, "args", &args));
    }
    if (cfg->working_dir)
        PACK(cws_rpc_pack_kv_cstr(pk, "working_dir", cfg->working_dir));
    if (cfg->env.n)
        PACK(pack_kvlist(pk, "env", &cfg->env));
    if (cfg->tags.n)
        PACK(pack_strlist(pk, "tags", &cfg->tags));
    if (cfg->annotations.n)
        PACK(pack_kvlist(pk, "annotations", &cfg->annotations));
    if (has_resources(cfg))
        PACK(pack_resources(pk, cfg));
    if (cfg->max_lifetime_s > 0)
        PACK(cwsc_pack_kv_double(pk, "max_lifetime_s", cfg->max_lifetime_s));
    if (cfg->n_files)
        PACK(pack_files(pk, cfg));
    if (cfg->n_services)
        PACK(pack_services(pk, cfg));
    if (has_network(cfg))
        PACK(pack_network(pk, cfg));
    if (has_placement(cfg))
        PACK(pack_placement(pk, cfg));
    return 0;
}
