/*
 * Tests of the generated coreweave.sandbox.v1 code: a fully populated CreateSandboxRequest
 * survives pack/unpack field by field, field numbers on the wire match hand-made bytes
 * (so a wrong number in sandbox.proto fails here), and malformed input is rejected safely.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coreweave/sandbox/v1/sandbox.pb-c.h"

typedef Coreweave__Sandbox__V1__CreateSandboxRequest CreateSandboxRequest;
typedef Coreweave__Sandbox__V1__Sandbox Sandbox;
typedef Coreweave__Sandbox__V1__SandboxSpec SandboxSpec;
typedef Coreweave__Sandbox__V1__SandboxSpec__AnnotationsEntry AnnotationEntry;
typedef Coreweave__Sandbox__V1__Container Container;
typedef Coreweave__Sandbox__V1__Container__EnvironmentVariablesEntry EnvEntry;
typedef Coreweave__Sandbox__V1__Resources Resources;
typedef Coreweave__Sandbox__V1__Gpu Gpu;
typedef Coreweave__Sandbox__V1__FileMount FileMount;
typedef Coreweave__Sandbox__V1__VolumeMount VolumeMount;
typedef Coreweave__Sandbox__V1__SecretMapping SecretMapping;
typedef Coreweave__Sandbox__V1__SecretStoreReference SecretStoreReference;
typedef Coreweave__Sandbox__V1__ResourceRequirements ResourceRequirements;
typedef Coreweave__Sandbox__V1__SecurityContext SecurityContext;
typedef Coreweave__Sandbox__V1__SecretSource SecretSource;
typedef Coreweave__Sandbox__V1__ImagePullCredentials ImagePullCredentials;
typedef Coreweave__Sandbox__V1__ScratchVolume ScratchVolume;
typedef Coreweave__Sandbox__V1__SandboxVolume SandboxVolume;
typedef Coreweave__Sandbox__V1__EndpointSpec EndpointSpec;
typedef Coreweave__Sandbox__V1__Service Service;
typedef Coreweave__Sandbox__V1__ObjectStorageAccess ObjectStorageAccess;
typedef Coreweave__Sandbox__V1__NetworkOptions NetworkOptions;
typedef Coreweave__Sandbox__V1__PortRange PortRange;
typedef Coreweave__Sandbox__V1__CidrBlock CidrBlock;
typedef Coreweave__Sandbox__V1__IngressRule IngressRule;
typedef Coreweave__Sandbox__V1__EgressRule EgressRule;
typedef Coreweave__Sandbox__V1__SelectorBlock SelectorBlock;
typedef Coreweave__Sandbox__V1__SelectorBlock__PodLabelsEntry PodLabelEntry;
typedef Coreweave__Sandbox__V1__SelectorBlock__NamespaceLabelsEntry NamespaceLabelEntry;
typedef Coreweave__Sandbox__V1__SandboxStatus SandboxStatus;
typedef Coreweave__Sandbox__V1__ServiceStatus ServiceStatus;
typedef Coreweave__Sandbox__V1__EndpointStatus EndpointStatus;
typedef Coreweave__Sandbox__V1__ResourceUsage ResourceUsage;
typedef Coreweave__Sandbox__V1__ContainerStatus ContainerStatus;
typedef Google__Protobuf__Timestamp Timestamp;
typedef Coreweave__Sandbox__V1__GetSandboxRequest GetSandboxRequest;
typedef Coreweave__Sandbox__V1__ListSandboxesRequest ListSandboxesRequest;
typedef Coreweave__Sandbox__V1__StreamLogsRequest StreamLogsRequest;
typedef Coreweave__Sandbox__V1__ExecStreamRequest ExecStreamRequest;
typedef Coreweave__Sandbox__V1__ExecStreamClose ExecStreamClose;
typedef Coreweave__Sandbox__V1__ExecStreamOutput ExecStreamOutput;

/* ---- the fully populated request, held in one struct so nothing needs freeing ---- */

#define N_CONTAINERS 2
#define N_INGRESS    3
#define N_EGRESS     5

struct container_parts {
    Container container;
    char *args[2];
    EnvEntry env[2];
    EnvEntry *env_ptrs[2];
    Gpu gpu;
    Resources resources;
    FileMount files[2];
    FileMount *file_ptrs[2];
    VolumeMount mount;
    VolumeMount *mount_ptrs[1];
    SecretMapping secret;
    SecretMapping *secret_ptrs[1];
    SecretStoreReference store;
    SecretStoreReference *store_ptrs[1];
    Gpu request_gpu;
    Resources requests;
    Resources limits;
    ResourceRequirements requirements;
    char *caps_add[1];
    char *caps_drop[2];
    SecurityContext security;
    SecretSource pull_secret;
    ImagePullCredentials pull;
};

struct network_parts {
    NetworkOptions network;
    PortRange ports[2];
    PortRange *port_ptrs[2];
    char *except[2];
    CidrBlock cidr;
    PodLabelEntry pod_label;
    PodLabelEntry *pod_label_ptrs[1];
    NamespaceLabelEntry namespace_labels[2];
    NamespaceLabelEntry *namespace_label_ptrs[2];
    SelectorBlock selector;
    IngressRule ingress[N_INGRESS];
    IngressRule *ingress_ptrs[N_INGRESS];
    EgressRule egress[N_EGRESS];
    EgressRule *egress_ptrs[N_EGRESS];
};

struct spec_parts {
    SandboxSpec spec;
    struct container_parts containers[N_CONTAINERS];
    Container *container_ptrs[N_CONTAINERS];
    struct container_parts init;
    Container *init_ptrs[1];
    ScratchVolume scratch;
    SandboxVolume volumes[2];
    SandboxVolume *volume_ptrs[2];
    EndpointSpec endpoint;
    Service services[2];
    Service *service_ptrs[2];
    char *network_ids[2];
    char *buckets[2];
    ObjectStorageAccess storage;
    char *tags[2];
    char *runner_ids[1];
    struct network_parts network;
    AnnotationEntry annotations[2];
    AnnotationEntry *annotation_ptrs[2];
};

struct status_parts {
    SandboxStatus status;
    Timestamp create_time;
    Timestamp start_time;
    Timestamp end_time;
    EndpointStatus endpoint;
    ServiceStatus service;
    ServiceStatus *service_ptrs[1];
    ResourceUsage usage;
    Gpu effective_gpu;
    Resources effective_resources;
    ContainerStatus container_statuses[2];
    ContainerStatus *container_status_ptrs[2];
    Resources requests;
    Resources limits;
    ResourceRequirements requirements;
    char *attached_volume_ids[2];
};

struct full_request {
    CreateSandboxRequest request;
    Sandbox sandbox;
    struct spec_parts spec;
    struct status_parts status;
};

/* Bytes with a NUL and high bytes in them, so a string-style copy would be caught. */
static uint8_t config_bytes[] = {0x00, 0x01, 'c', 'f', 'g', 0x00, 0xfe, 0xff};
static uint8_t script_bytes[] = {'#', '!', '/', 'b', 'i', 'n', '/', 's', 'h', '\n'};

static void init_gpu(Gpu *gpu, int64_t count)
{
    *gpu = (Gpu)COREWEAVE__SANDBOX__V1__GPU__INIT;
    gpu->count = count;
}

/* Variant 0 selects the GPU by type, 1 by memory, 2 (init container) leaves it unselected. */
static void build_container_resources(struct container_parts *p, int variant)
{
    init_gpu(&p->gpu, variant + 1);
    if (variant == 0) {
        p->gpu.selector_case = COREWEAVE__SANDBOX__V1__GPU__SELECTOR_TYPE;
        p->gpu.type = "H100";
    } else if (variant == 1) {
        p->gpu.selector_case = COREWEAVE__SANDBOX__V1__GPU__SELECTOR_MEMORY_GB;
        p->gpu.memory_gb = 80;
    }
    p->resources = (Resources)COREWEAVE__SANDBOX__V1__RESOURCES__INIT;
    p->resources.cpu = "2";
    p->resources.memory = "4Gi";
    p->resources.gpu = &p->gpu;
    p->container.resources = &p->resources;
}

static void build_container_files(struct container_parts *p)
{
    p->files[0] = (FileMount)COREWEAVE__SANDBOX__V1__FILE_MOUNT__INIT;
    p->files[0].path = "/etc/app/config.bin";
    p->files[0].content.data = config_bytes;
    p->files[0].content.len = sizeof config_bytes;
    p->files[1] = (FileMount)COREWEAVE__SANDBOX__V1__FILE_MOUNT__INIT;
    p->files[1].path = "/usr/local/bin/start.sh";
    p->files[1].content.data = script_bytes;
    p->files[1].content.len = sizeof script_bytes;
    p->file_ptrs[0] = &p->files[0];
    p->file_ptrs[1] = &p->files[1];
    p->container.n_files = 2;
    p->container.files = p->file_ptrs;
}

static void build_container_mounts_and_secrets(struct container_parts *p)
{
    p->mount = (VolumeMount)COREWEAVE__SANDBOX__V1__VOLUME_MOUNT__INIT;
    p->mount.volume = "scratch";
    p->mount.mount_path = "/scratch";
    p->mount.read_only = true;
    p->mount.sub_path = "data";
    p->mount_ptrs[0] = &p->mount;
    p->container.n_volume_mounts = 1;
    p->container.volume_mounts = p->mount_ptrs;

    p->secret = (SecretMapping)COREWEAVE__SANDBOX__V1__SECRET_MAPPING__INIT;
    p->secret.path = "db/prod";
    p->secret.field = "password";
    p->secret.env_var = "DB_PASSWORD";
    p->secret_ptrs[0] = &p->secret;
    p->store = (SecretStoreReference)COREWEAVE__SANDBOX__V1__SECRET_STORE_REFERENCE__INIT;
    p->store.store_name = "vault";
    p->store.n_secrets = 1;
    p->store.secrets = p->secret_ptrs;
    p->store_ptrs[0] = &p->store;
    p->container.n_secret_stores = 1;
    p->container.secret_stores = p->store_ptrs;
}

/* Limits carry no GPU on purpose: an absent sub-message must stay absent. */
static void build_container_requirements(struct container_parts *p)
{
    init_gpu(&p->request_gpu, 1);
    p->request_gpu.selector_case = COREWEAVE__SANDBOX__V1__GPU__SELECTOR_TYPE;
    p->request_gpu.type = "A100";
    p->requests = (Resources)COREWEAVE__SANDBOX__V1__RESOURCES__INIT;
    p->requests.cpu = "500m";
    p->requests.memory = "1Gi";
    p->requests.gpu = &p->request_gpu;
    p->limits = (Resources)COREWEAVE__SANDBOX__V1__RESOURCES__INIT;
    p->limits.cpu = "4";
    p->limits.memory = "8Gi";
    p->requirements = (ResourceRequirements)COREWEAVE__SANDBOX__V1__RESOURCE_REQUIREMENTS__INIT;
    p->requirements.requests = &p->requests;
    p->requirements.limits = &p->limits;
    p->container.resource_requirements = &p->requirements;
}

/*
 * Variant 0 sets every optional field, several to zero/false (presence must survive);
 * variant 1 sets some; variant 2 sets none.
 */
static void build_container_security(struct container_parts *p, int variant)
{
    SecurityContext *s = &p->security;

    *s = (SecurityContext)COREWEAVE__SANDBOX__V1__SECURITY_CONTEXT__INIT;
    if (variant == 0) {
        s->_run_as_user_case = COREWEAVE__SANDBOX__V1__SECURITY_CONTEXT___RUN_AS_USER_RUN_AS_USER;
        s->run_as_user = 0;
        s->_run_as_group_case =
            COREWEAVE__SANDBOX__V1__SECURITY_CONTEXT___RUN_AS_GROUP_RUN_AS_GROUP;
        s->run_as_group = 1000;
        s->_privileged_case = COREWEAVE__SANDBOX__V1__SECURITY_CONTEXT___PRIVILEGED_PRIVILEGED;
        s->privileged = false;
        s->_allow_privilege_escalation_case =
            COREWEAVE__SANDBOX__V1__SECURITY_CONTEXT___ALLOW_PRIVILEGE_ESCALATION_ALLOW_PRIVILEGE_ESCALATION;
        s->allow_privilege_escalation = false;
        s->_read_only_root_filesystem_case =
            COREWEAVE__SANDBOX__V1__SECURITY_CONTEXT___READ_ONLY_ROOT_FILESYSTEM_READ_ONLY_ROOT_FILESYSTEM;
        s->read_only_root_filesystem = true;
    } else if (variant == 1) {
        s->_run_as_user_case = COREWEAVE__SANDBOX__V1__SECURITY_CONTEXT___RUN_AS_USER_RUN_AS_USER;
        s->run_as_user = 65534;
        s->_privileged_case = COREWEAVE__SANDBOX__V1__SECURITY_CONTEXT___PRIVILEGED_PRIVILEGED;
        s->privileged = true;
    }
    p->caps_add[0] = "NET_BIND_SERVICE";
    p->caps_drop[0] = "ALL";
    p->caps_drop[1] = "SYS_ADMIN";
    s->n_capabilities_add = 1;
    s->capabilities_add = p->caps_add;
    s->n_capabilities_drop = 2;
    s->capabilities_drop = p->caps_drop;
    s->seccomp_profile = "RuntimeDefault";
    p->container.security_context = s;
}

static void build_container_pull_credentials(struct container_parts *p)
{
    p->pull_secret = (SecretSource)COREWEAVE__SANDBOX__V1__SECRET_SOURCE__INIT;
    p->pull_secret.store_name = "vault";
    p->pull_secret.path = "registry/ghcr";
    p->pull_secret.field = "token";
    p->pull = (ImagePullCredentials)COREWEAVE__SANDBOX__V1__IMAGE_PULL_CREDENTIALS__INIT;
    p->pull.registry = "ghcr.io";
    p->pull.credentials = &p->pull_secret;
    p->container.image_pull_credentials = &p->pull;
}

static void build_container(struct container_parts *p, int variant)
{
    static char *const names[] = {"main", "sidecar", "init"};
    Container *c = &p->container;

    *c = (Container)COREWEAVE__SANDBOX__V1__CONTAINER__INIT;
    c->name = names[variant];
    c->image = "ghcr.io/example/app:1.2";
    c->command = "/bin/app";
    p->args[0] = "--port";
    p->args[1] = "8080";
    c->n_args = 2;
    c->args = p->args;
    for (int i = 0; i < 2; i++) {
        p->env[i] = (EnvEntry)COREWEAVE__SANDBOX__V1__CONTAINER__ENVIRONMENT_VARIABLES_ENTRY__INIT;
        p->env_ptrs[i] = &p->env[i];
    }
    p->env[0].key = "LANG";
    p->env[0].value = "C.UTF-8";
    p->env[1].key = "MODE";
    p->env[1].value = names[variant];
    c->n_environment_variables = 2;
    c->environment_variables = p->env_ptrs;
    c->working_dir = "/srv";
    build_container_resources(p, variant);
    build_container_files(p);
    build_container_mounts_and_secrets(p);
    build_container_requirements(p);
    build_container_security(p, variant);
    build_container_pull_credentials(p);
}

static void build_port_ranges(struct network_parts *n)
{
    n->ports[0] = (PortRange)COREWEAVE__SANDBOX__V1__PORT_RANGE__INIT;
    n->ports[0].protocol = "TCP";
    n->ports[0].port = 443;
    n->ports[1] = (PortRange)COREWEAVE__SANDBOX__V1__PORT_RANGE__INIT;
    n->ports[1].protocol = "UDP";
    n->ports[1].port = 30000;
    n->ports[1].end_port = 30100;
    n->port_ptrs[0] = &n->ports[0];
    n->port_ptrs[1] = &n->ports[1];
}

static void build_cidr_and_selector(struct network_parts *n)
{
    n->except[0] = "10.0.5.0/24";
    n->except[1] = "10.0.6.0/24";
    n->cidr = (CidrBlock)COREWEAVE__SANDBOX__V1__CIDR_BLOCK__INIT;
    n->cidr.cidr = "10.0.0.0/16";
    n->cidr.n_except = 2;
    n->cidr.except = n->except;

    n->pod_label = (PodLabelEntry)COREWEAVE__SANDBOX__V1__SELECTOR_BLOCK__POD_LABELS_ENTRY__INIT;
    n->pod_label.key = "app";
    n->pod_label.value = "db";
    n->pod_label_ptrs[0] = &n->pod_label;
    for (int i = 0; i < 2; i++) {
        n->namespace_labels[i] = (NamespaceLabelEntry)
            COREWEAVE__SANDBOX__V1__SELECTOR_BLOCK__NAMESPACE_LABELS_ENTRY__INIT;
        n->namespace_label_ptrs[i] = &n->namespace_labels[i];
    }
    n->namespace_labels[0].key = "team";
    n->namespace_labels[0].value = "data";
    n->namespace_labels[1].key = "env";
    n->namespace_labels[1].value = "prod";
    n->selector = (SelectorBlock)COREWEAVE__SANDBOX__V1__SELECTOR_BLOCK__INIT;
    n->selector.n_pod_labels = 1;
    n->selector.pod_labels = n->pod_label_ptrs;
    n->selector.n_namespace_labels = 2;
    n->selector.namespace_labels = n->namespace_label_ptrs;
}

/* One rule per oneof member; `any = false` checks that a zero oneof value keeps its case. */
static void build_ingress_rules(struct network_parts *n)
{
    for (int i = 0; i < N_INGRESS; i++) {
        n->ingress[i] = (IngressRule)COREWEAVE__SANDBOX__V1__INGRESS_RULE__INIT;
        n->ingress[i].n_ports = 2;
        n->ingress[i].ports = n->port_ptrs;
        n->ingress_ptrs[i] = &n->ingress[i];
    }
    n->ingress[0].source_case = COREWEAVE__SANDBOX__V1__INGRESS_RULE__SOURCE_CIDR;
    n->ingress[0].cidr = &n->cidr;
    n->ingress[1].source_case = COREWEAVE__SANDBOX__V1__INGRESS_RULE__SOURCE_TENANT;
    n->ingress[1].tenant = COREWEAVE__SANDBOX__V1__TENANT_SCOPE__TENANT_SCOPE_SAME_ORG;
    n->ingress[2].source_case = COREWEAVE__SANDBOX__V1__INGRESS_RULE__SOURCE_ANY;
    n->ingress[2].any = false;
}

/* The tenant rule uses the zero enum value for the same reason as ingress `any`. */
static void build_egress_rules(struct network_parts *n)
{
    for (int i = 0; i < N_EGRESS; i++) {
        n->egress[i] = (EgressRule)COREWEAVE__SANDBOX__V1__EGRESS_RULE__INIT;
        n->egress[i].n_ports = 1;
        n->egress[i].ports = n->port_ptrs;
        n->egress_ptrs[i] = &n->egress[i];
    }
    n->egress[0].destination_case = COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_CIDR;
    n->egress[0].cidr = &n->cidr;
    n->egress[1].destination_case = COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_DNS_NAME;
    n->egress[1].dns_name = "api.example.com";
    n->egress[2].destination_case = COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_TENANT;
    n->egress[2].tenant = COREWEAVE__SANDBOX__V1__TENANT_SCOPE__TENANT_SCOPE_UNSPECIFIED;
    n->egress[3].destination_case = COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_ANY;
    n->egress[3].any = true;
    n->egress[4].destination_case = COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_SELECTOR;
    n->egress[4].selector = &n->selector;
}

/* deny_egress is set to false and deny_ingress left unset: presence must tell them apart. */
static void build_network(struct network_parts *n)
{
    build_port_ranges(n);
    build_cidr_and_selector(n);
    build_ingress_rules(n);
    build_egress_rules(n);
    n->network = (NetworkOptions)COREWEAVE__SANDBOX__V1__NETWORK_OPTIONS__INIT;
    n->network.n_ingress = N_INGRESS;
    n->network.ingress = n->ingress_ptrs;
    n->network.n_egress = N_EGRESS;
    n->network.egress = n->egress_ptrs;
    n->network._deny_egress_case =
        COREWEAVE__SANDBOX__V1__NETWORK_OPTIONS___DENY_EGRESS_DENY_EGRESS;
    n->network.deny_egress = false;
}

static void build_spec_containers(struct spec_parts *s)
{
    for (int i = 0; i < N_CONTAINERS; i++) {
        build_container(&s->containers[i], i);
        s->container_ptrs[i] = &s->containers[i].container;
    }
    build_container(&s->init, 2);
    s->init_ptrs[0] = &s->init.container;
    s->spec.n_containers = N_CONTAINERS;
    s->spec.containers = s->container_ptrs;
    s->spec.n_init_containers = 1;
    s->spec.init_containers = s->init_ptrs;
    s->spec.primary_container = "main";
}

static void build_spec_volumes(struct spec_parts *s)
{
    s->scratch = (ScratchVolume)COREWEAVE__SANDBOX__V1__SCRATCH_VOLUME__INIT;
    s->scratch.size = "10Gi";
    s->scratch.medium = COREWEAVE__SANDBOX__V1__STORAGE_MEDIUM__STORAGE_MEDIUM_MEMORY;
    s->scratch.restore_from_snapshot_id = "snap-123";
    for (int i = 0; i < 2; i++) {
        s->volumes[i] = (SandboxVolume)COREWEAVE__SANDBOX__V1__SANDBOX_VOLUME__INIT;
        s->volume_ptrs[i] = &s->volumes[i];
    }
    s->volumes[0].name = "scratch";
    s->volumes[0].source_case = COREWEAVE__SANDBOX__V1__SANDBOX_VOLUME__SOURCE_SCRATCH;
    s->volumes[0].scratch = &s->scratch;
    s->volumes[1].name = "datasets";
    s->volumes[1].source_case = COREWEAVE__SANDBOX__V1__SANDBOX_VOLUME__SOURCE_VOLUME_ID;
    s->volumes[1].volume_id = "vol-456";
    s->spec.n_volumes = 2;
    s->spec.volumes = s->volume_ptrs;
}

/* The second service has no endpoint, to check an absent sub-message stays absent. */
static void build_spec_services(struct spec_parts *s)
{
    s->endpoint = (EndpointSpec)COREWEAVE__SANDBOX__V1__ENDPOINT_SPEC__INIT;
    s->endpoint.kind = COREWEAVE__SANDBOX__V1__ENDPOINT_KIND__ENDPOINT_KIND_TLS_PASSTHROUGH;
    s->endpoint.auth = COREWEAVE__SANDBOX__V1__ENDPOINT_AUTH__ENDPOINT_AUTH_TOKEN;
    for (int i = 0; i < 2; i++) {
        s->services[i] = (Service)COREWEAVE__SANDBOX__V1__SERVICE__INIT;
        s->service_ptrs[i] = &s->services[i];
    }
    s->services[0].port = 8080;
    s->services[0].name = "http";
    s->services[0].protocol = COREWEAVE__SANDBOX__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_TCP;
    s->services[0].visibility = COREWEAVE__SANDBOX__V1__VISIBILITY__VISIBILITY_PUBLIC;
    s->services[0].endpoint = &s->endpoint;
    s->services[1].port = 5353;
    s->services[1].name = "dns";
    s->services[1].protocol = COREWEAVE__SANDBOX__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_SCTP;
    s->services[1].visibility = COREWEAVE__SANDBOX__V1__VISIBILITY__VISIBILITY_CUSTOM;
    s->spec.n_services = 2;
    s->spec.services = s->service_ptrs;
}

static void build_spec_storage_and_labels(struct spec_parts *s)
{
    s->buckets[0] = "models";
    s->buckets[1] = "checkpoints";
    s->storage = (ObjectStorageAccess)COREWEAVE__SANDBOX__V1__OBJECT_STORAGE_ACCESS__INIT;
    s->storage.n_buckets = 2;
    s->storage.buckets = s->buckets;
    s->storage.permission =
        COREWEAVE__SANDBOX__V1__OBJECT_STORAGE_PERMISSION__OBJECT_STORAGE_PERMISSION_READ_WRITE;
    s->storage.object_prefix = "team-a/";
    s->spec.object_storage_access = &s->storage;

    s->network_ids[0] = "net-1";
    s->network_ids[1] = "net-2";
    s->spec.n_network_ids = 2;
    s->spec.network_ids = s->network_ids;
    s->tags[0] = "ci";
    s->tags[1] = "gpu";
    s->spec.n_tags = 2;
    s->spec.tags = s->tags;
    s->runner_ids[0] = "runner-7";
    s->spec.n_runner_ids = 1;
    s->spec.runner_ids = s->runner_ids;
    for (int i = 0; i < 2; i++) {
        s->annotations[i] =
            (AnnotationEntry)COREWEAVE__SANDBOX__V1__SANDBOX_SPEC__ANNOTATIONS_ENTRY__INIT;
        s->annotation_ptrs[i] = &s->annotations[i];
    }
    s->annotations[0].key = "owner";
    s->annotations[0].value = "alice";
    s->annotations[1].key = "empty-value";
    s->annotations[1].value = "";
    s->spec.n_annotations = 2;
    s->spec.annotations = s->annotation_ptrs;
}

static void build_spec(struct spec_parts *s)
{
    s->spec = (SandboxSpec)COREWEAVE__SANDBOX__V1__SANDBOX_SPEC__INIT;
    build_spec_containers(s);
    build_spec_volumes(s);
    build_spec_services(s);
    build_spec_storage_and_labels(s);
    build_network(&s->network);
    s->spec.network = &s->network.network;
    s->spec.max_lifetime_seconds = 86400;
    s->spec.instance_type = "gd-8xh100ib-i128";
    s->spec.mode = COREWEAVE__SANDBOX__V1__SANDBOX_MODE__SANDBOX_MODE_CKS;
    s->spec.runtime_class = "kata";
}

static void init_timestamp(Timestamp *t, int64_t seconds, int32_t nanos)
{
    *t = (Timestamp)GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    t->seconds = seconds;
    t->nanos = nanos;
}

static void build_status_services(struct status_parts *p)
{
    p->endpoint = (EndpointStatus)COREWEAVE__SANDBOX__V1__ENDPOINT_STATUS__INIT;
    p->endpoint.kind = COREWEAVE__SANDBOX__V1__ENDPOINT_KIND__ENDPOINT_KIND_HTTPS;
    p->endpoint.auth = COREWEAVE__SANDBOX__V1__ENDPOINT_AUTH__ENDPOINT_AUTH_OPEN;
    p->endpoint.url = "https://sb-1.example.com";
    p->service = (ServiceStatus)COREWEAVE__SANDBOX__V1__SERVICE_STATUS__INIT;
    p->service.port = 8080;
    p->service.name = "http";
    p->service.protocol = COREWEAVE__SANDBOX__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_UDP;
    p->service.visibility = COREWEAVE__SANDBOX__V1__VISIBILITY__VISIBILITY_PRIVATE;
    p->service.endpoint = &p->endpoint;
    p->service.url = "http://10.1.2.3:8080";
    p->service_ptrs[0] = &p->service;
    p->status.n_services = 1;
    p->status.services = p->service_ptrs;
}

static void build_status_resources(struct status_parts *p)
{
    p->usage = (ResourceUsage)COREWEAVE__SANDBOX__V1__RESOURCE_USAGE__INIT;
    p->usage.cpu_millicores = 1500;
    p->usage.memory_mb = 3072;
    p->usage.gpu_count = 1;
    p->status.resource_usage = &p->usage;

    init_gpu(&p->effective_gpu, 1);
    p->effective_gpu.selector_case = COREWEAVE__SANDBOX__V1__GPU__SELECTOR_MEMORY_GB;
    p->effective_gpu.memory_gb = 80;
    p->effective_resources = (Resources)COREWEAVE__SANDBOX__V1__RESOURCES__INIT;
    p->effective_resources.cpu = "2";
    p->effective_resources.memory = "4Gi";
    p->effective_resources.gpu = &p->effective_gpu;
    p->status.effective_resources = &p->effective_resources;

    p->requests = (Resources)COREWEAVE__SANDBOX__V1__RESOURCES__INIT;
    p->requests.cpu = "1";
    p->limits = (Resources)COREWEAVE__SANDBOX__V1__RESOURCES__INIT;
    p->limits.memory = "16Gi";
    p->requirements = (ResourceRequirements)COREWEAVE__SANDBOX__V1__RESOURCE_REQUIREMENTS__INIT;
    p->requirements.requests = &p->requests;
    p->requirements.limits = &p->limits;
    p->status.effective_resource_requirements = &p->requirements;
}

static void build_status_containers(struct status_parts *p)
{
    for (int i = 0; i < 2; i++) {
        p->container_statuses[i] = (ContainerStatus)COREWEAVE__SANDBOX__V1__CONTAINER_STATUS__INIT;
        p->container_status_ptrs[i] = &p->container_statuses[i];
    }
    p->container_statuses[0].name = "main";
    p->container_statuses[0].state = COREWEAVE__SANDBOX__V1__STATE__STATE_FAILED;
    p->container_statuses[0].exit_code = -9;
    p->container_statuses[0].restart_count = 3;
    p->container_statuses[1].name = "sidecar";
    p->container_statuses[1].state = COREWEAVE__SANDBOX__V1__STATE__STATE_PAUSED;
    p->status.n_container_statuses = 2;
    p->status.container_statuses = p->container_status_ptrs;
}

/* Effective rules point at the spec's rules: the copy gets its own objects anyway. */
static void build_status(struct status_parts *p, struct network_parts *network)
{
    SandboxStatus *s = &p->status;

    *s = (SandboxStatus)COREWEAVE__SANDBOX__V1__SANDBOX_STATUS__INIT;
    s->state = COREWEAVE__SANDBOX__V1__STATE__STATE_TERMINATED;
    s->state_reason = "OOMKilled";
    init_timestamp(&p->create_time, 1700000000, 0);
    init_timestamp(&p->start_time, 1700000005, 123456789);
    init_timestamp(&p->end_time, -62135596800, 999999999);
    s->create_time = &p->create_time;
    s->start_time = &p->start_time;
    s->end_time = &p->end_time;
    build_status_services(p);
    build_status_resources(p);
    build_status_containers(p);
    s->_exit_code_case = COREWEAVE__SANDBOX__V1__SANDBOX_STATUS___EXIT_CODE_EXIT_CODE;
    s->exit_code = 137;
    s->effective_max_lifetime_seconds = 3600;
    s->runner_id = "runner-7";
    s->runner_group_id = "group-2";
    s->n_effective_ingress = N_INGRESS;
    s->effective_ingress = network->ingress_ptrs;
    s->n_effective_egress = N_EGRESS;
    s->effective_egress = network->egress_ptrs;
    p->attached_volume_ids[0] = "vol-456";
    p->attached_volume_ids[1] = "vol-789";
    s->n_attached_volume_ids = 2;
    s->attached_volume_ids = p->attached_volume_ids;
    s->effective_runtime_class = "kata";
}

static void build_full_request(struct full_request *f)
{
    build_spec(&f->spec);
    build_status(&f->status, &f->spec.network);
    f->sandbox = (Sandbox)COREWEAVE__SANDBOX__V1__SANDBOX__INIT;
    f->sandbox.sandbox_id = "sb-0123456789";
    f->sandbox.spec = &f->spec.spec;
    f->sandbox.status = &f->status.status;
    f->sandbox.source_template_id = "tmpl-42";
    f->sandbox.source_template_revision = -1; /* negative int64: a 10-byte varint */
    f->request = (CreateSandboxRequest)COREWEAVE__SANDBOX__V1__CREATE_SANDBOX_REQUEST__INIT;
    f->request.sandbox = &f->sandbox;
    f->request.request_id = "req-5f1e";
}

/* ---- comparison helpers: original vs. unpacked copy ---- */

/* Every map<string,string> entry type has key and value; a macro spares one helper per type. */
#define ASSERT_STRING_MAP_EQ(orig, copy, field)                                                    \
    do {                                                                                           \
        ck_assert_uint_eq((copy)->n_##field, (orig)->n_##field);                                   \
        for (size_t i_ = 0; i_ < (orig)->n_##field; i_++) {                                        \
            const char *found_ = NULL;                                                             \
            for (size_t j_ = 0; j_ < (copy)->n_##field; j_++)                                      \
                if (strcmp((copy)->field[j_]->key, (orig)->field[i_]->key) == 0)                   \
                    found_ = (copy)->field[j_]->value;                                             \
            ck_assert_ptr_nonnull(found_);                                                         \
            ck_assert_str_eq(found_, (orig)->field[i_]->value);                                    \
        }                                                                                          \
    } while (0)

#define ASSERT_REPEATED_EQ(orig, copy, field, assert_item_eq)                                      \
    do {                                                                                           \
        ck_assert_uint_eq((copy)->n_##field, (orig)->n_##field);                                   \
        for (size_t i_ = 0; i_ < (orig)->n_##field; i_++)                                          \
            assert_item_eq((orig)->field[i_], (copy)->field[i_]);                                  \
    } while (0)

#define ASSERT_STRINGS_EQ(orig, copy, field)                                                       \
    assert_strings_eq((orig)->n_##field, (orig)->field, (copy)->n_##field, (copy)->field)

static void assert_strings_eq(size_t n_orig, char **orig, size_t n_copy, char **copy)
{
    ck_assert_uint_eq(n_copy, n_orig);
    for (size_t i = 0; i < n_orig; i++)
        ck_assert_str_eq(copy[i], orig[i]);
}

static void assert_bytes_eq(ProtobufCBinaryData orig, ProtobufCBinaryData copy)
{
    ck_assert_uint_eq(copy.len, orig.len);
    ck_assert_mem_eq(copy.data, orig.data, orig.len);
}

/* Asserts a sub-message is present in both or absent in both; true when there is more to compare.
 */
static bool both_present(const void *orig, const void *copy)
{
    ck_assert_int_eq(copy != NULL, orig != NULL);
    return orig != NULL;
}

static void assert_timestamp_eq(const Timestamp *orig, const Timestamp *copy)
{
    if (!both_present(orig, copy))
        return;
    ck_assert_int_eq(copy->seconds, orig->seconds);
    ck_assert_int_eq(copy->nanos, orig->nanos);
}

static void assert_gpu_eq(const Gpu *orig, const Gpu *copy)
{
    if (!both_present(orig, copy))
        return;
    ck_assert_int_eq(copy->count, orig->count);
    ck_assert_int_eq(copy->selector_case, orig->selector_case);
    if (orig->selector_case == COREWEAVE__SANDBOX__V1__GPU__SELECTOR_TYPE)
        ck_assert_str_eq(copy->type, orig->type);
    else if (orig->selector_case == COREWEAVE__SANDBOX__V1__GPU__SELECTOR_MEMORY_GB)
        ck_assert_int_eq(copy->memory_gb, orig->memory_gb);
}

static void assert_resources_eq(const Resources *orig, const Resources *copy)
{
    if (!both_present(orig, copy))
        return;
    ck_assert_str_eq(copy->cpu, orig->cpu);
    ck_assert_str_eq(copy->memory, orig->memory);
    assert_gpu_eq(orig->gpu, copy->gpu);
}

static void assert_requirements_eq(const ResourceRequirements *orig,
                                   const ResourceRequirements *copy)
{
    if (!both_present(orig, copy))
        return;
    assert_resources_eq(orig->requests, copy->requests);
    assert_resources_eq(orig->limits, copy->limits);
}

static void assert_file_mount_eq(const FileMount *orig, const FileMount *copy)
{
    ck_assert_str_eq(copy->path, orig->path);
    assert_bytes_eq(orig->content, copy->content);
}

static void assert_volume_mount_eq(const VolumeMount *orig, const VolumeMount *copy)
{
    ck_assert_str_eq(copy->volume, orig->volume);
    ck_assert_str_eq(copy->mount_path, orig->mount_path);
    ck_assert_int_eq(copy->read_only, orig->read_only);
    ck_assert_str_eq(copy->sub_path, orig->sub_path);
}

static void assert_secret_mapping_eq(const SecretMapping *orig, const SecretMapping *copy)
{
    ck_assert_str_eq(copy->path, orig->path);
    ck_assert_str_eq(copy->field, orig->field);
    ck_assert_str_eq(copy->env_var, orig->env_var);
}

static void assert_secret_store_eq(const SecretStoreReference *orig,
                                   const SecretStoreReference *copy)
{
    ck_assert_str_eq(copy->store_name, orig->store_name);
    ASSERT_REPEATED_EQ(orig, copy, secrets, assert_secret_mapping_eq);
}

/* Each proto3 optional is a one-member oneof here: compare presence, then value if present. */
static void assert_security_context_eq(const SecurityContext *orig, const SecurityContext *copy)
{
    if (!both_present(orig, copy))
        return;
    ck_assert_int_eq(copy->_run_as_user_case, orig->_run_as_user_case);
    if (orig->_run_as_user_case)
        ck_assert_uint_eq(copy->run_as_user, orig->run_as_user);
    ck_assert_int_eq(copy->_run_as_group_case, orig->_run_as_group_case);
    if (orig->_run_as_group_case)
        ck_assert_uint_eq(copy->run_as_group, orig->run_as_group);
    ck_assert_int_eq(copy->_privileged_case, orig->_privileged_case);
    if (orig->_privileged_case)
        ck_assert_int_eq(copy->privileged, orig->privileged);
    ck_assert_int_eq(copy->_allow_privilege_escalation_case,
                     orig->_allow_privilege_escalation_case);
    if (orig->_allow_privilege_escalation_case)
        ck_assert_int_eq(copy->allow_privilege_escalation, orig->allow_privilege_escalation);
    ck_assert_int_eq(copy->_read_only_root_filesystem_case, orig->_read_only_root_filesystem_case);
    if (orig->_read_only_root_filesystem_case)
        ck_assert_int_eq(copy->read_only_root_filesystem, orig->read_only_root_filesystem);
    ASSERT_STRINGS_EQ(orig, copy, capabilities_add);
    ASSERT_STRINGS_EQ(orig, copy, capabilities_drop);
    ck_assert_str_eq(copy->seccomp_profile, orig->seccomp_profile);
}

static void assert_pull_credentials_eq(const ImagePullCredentials *orig,
                                       const ImagePullCredentials *copy)
{
    if (!both_present(orig, copy))
        return;
    ck_assert_str_eq(copy->registry, orig->registry);
    if (!both_present(orig->credentials, copy->credentials))
        return;
    ck_assert_str_eq(copy->credentials->store_name, orig->credentials->store_name);
    ck_assert_str_eq(copy->credentials->path, orig->credentials->path);
    ck_assert_str_eq(copy->credentials->field, orig->credentials->field);
}

static void assert_container_eq(const Container *orig, const Container *copy)
{
    ck_assert_str_eq(copy->name, orig->name);
    ck_assert_str_eq(copy->image, orig->image);
    ck_assert_str_eq(copy->command, orig->command);
    ASSERT_STRINGS_EQ(orig, copy, args);
    ASSERT_STRING_MAP_EQ(orig, copy, environment_variables);
    assert_resources_eq(orig->resources, copy->resources);
    ASSERT_REPEATED_EQ(orig, copy, files, assert_file_mount_eq);
    ASSERT_REPEATED_EQ(orig, copy, volume_mounts, assert_volume_mount_eq);
    ASSERT_REPEATED_EQ(orig, copy, secret_stores, assert_secret_store_eq);
    ck_assert_str_eq(copy->working_dir, orig->working_dir);
    assert_requirements_eq(orig->resource_requirements, copy->resource_requirements);
    assert_security_context_eq(orig->security_context, copy->security_context);
    assert_pull_credentials_eq(orig->image_pull_credentials, copy->image_pull_credentials);
}

static void assert_sandbox_volume_eq(const SandboxVolume *orig, const SandboxVolume *copy)
{
    ck_assert_str_eq(copy->name, orig->name);
    ck_assert_int_eq(copy->source_case, orig->source_case);
    if (orig->source_case == COREWEAVE__SANDBOX__V1__SANDBOX_VOLUME__SOURCE_VOLUME_ID) {
        ck_assert_str_eq(copy->volume_id, orig->volume_id);
    } else if (orig->source_case == COREWEAVE__SANDBOX__V1__SANDBOX_VOLUME__SOURCE_SCRATCH) {
        ck_assert_ptr_nonnull(copy->scratch);
        ck_assert_str_eq(copy->scratch->size, orig->scratch->size);
        ck_assert_int_eq(copy->scratch->medium, orig->scratch->medium);
        ck_assert_str_eq(copy->scratch->restore_from_snapshot_id,
                         orig->scratch->restore_from_snapshot_id);
    }
}

static void assert_service_eq(const Service *orig, const Service *copy)
{
    ck_assert_int_eq(copy->port, orig->port);
    ck_assert_str_eq(copy->name, orig->name);
    ck_assert_int_eq(copy->protocol, orig->protocol);
    ck_assert_int_eq(copy->visibility, orig->visibility);
    if (!both_present(orig->endpoint, copy->endpoint))
        return;
    ck_assert_int_eq(copy->endpoint->kind, orig->endpoint->kind);
    ck_assert_int_eq(copy->endpoint->auth, orig->endpoint->auth);
}

static void assert_object_storage_eq(const ObjectStorageAccess *orig,
                                     const ObjectStorageAccess *copy)
{
    if (!both_present(orig, copy))
        return;
    ASSERT_STRINGS_EQ(orig, copy, buckets);
    ck_assert_int_eq(copy->permission, orig->permission);
    ck_assert_str_eq(copy->object_prefix, orig->object_prefix);
}

static void assert_port_range_eq(const PortRange *orig, const PortRange *copy)
{
    ck_assert_str_eq(copy->protocol, orig->protocol);
    ck_assert_int_eq(copy->port, orig->port);
    ck_assert_int_eq(copy->end_port, orig->end_port);
}

static void assert_cidr_block_eq(const CidrBlock *orig, const CidrBlock *copy)
{
    if (!both_present(orig, copy))
        return;
    ck_assert_str_eq(copy->cidr, orig->cidr);
    ASSERT_STRINGS_EQ(orig, copy, except);
}

static void assert_selector_block_eq(const SelectorBlock *orig, const SelectorBlock *copy)
{
    if (!both_present(orig, copy))
        return;
    ASSERT_STRING_MAP_EQ(orig, copy, pod_labels);
    ASSERT_STRING_MAP_EQ(orig, copy, namespace_labels);
}

static void assert_ingress_rule_eq(const IngressRule *orig, const IngressRule *copy)
{
    ck_assert_int_eq(copy->source_case, orig->source_case);
    switch (orig->source_case) {
    case COREWEAVE__SANDBOX__V1__INGRESS_RULE__SOURCE_CIDR:
        assert_cidr_block_eq(orig->cidr, copy->cidr);
        break;
    case COREWEAVE__SANDBOX__V1__INGRESS_RULE__SOURCE_TENANT:
        ck_assert_int_eq(copy->tenant, orig->tenant);
        break;
    case COREWEAVE__SANDBOX__V1__INGRESS_RULE__SOURCE_ANY:
        ck_assert_int_eq(copy->any, orig->any);
        break;
    default:
        break;
    }
    ASSERT_REPEATED_EQ(orig, copy, ports, assert_port_range_eq);
}

static void assert_egress_rule_eq(const EgressRule *orig, const EgressRule *copy)
{
    ck_assert_int_eq(copy->destination_case, orig->destination_case);
    switch (orig->destination_case) {
    case COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_CIDR:
        assert_cidr_block_eq(orig->cidr, copy->cidr);
        break;
    case COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_DNS_NAME:
        ck_assert_str_eq(copy->dns_name, orig->dns_name);
        break;
    case COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_TENANT:
        ck_assert_int_eq(copy->tenant, orig->tenant);
        break;
    case COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_ANY:
        ck_assert_int_eq(copy->any, orig->any);
        break;
    case COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_SELECTOR:
        assert_selector_block_eq(orig->selector, copy->selector);
        break;
    default:
        break;
    }
    ASSERT_REPEATED_EQ(orig, copy, ports, assert_port_range_eq);
}

static void assert_network_eq(const NetworkOptions *orig, const NetworkOptions *copy)
{
    if (!both_present(orig, copy))
        return;
    ASSERT_REPEATED_EQ(orig, copy, ingress, assert_ingress_rule_eq);
    ASSERT_REPEATED_EQ(orig, copy, egress, assert_egress_rule_eq);
    ck_assert_int_eq(copy->_deny_egress_case, orig->_deny_egress_case);
    if (orig->_deny_egress_case)
        ck_assert_int_eq(copy->deny_egress, orig->deny_egress);
    ck_assert_int_eq(copy->_deny_ingress_case, orig->_deny_ingress_case);
    if (orig->_deny_ingress_case)
        ck_assert_int_eq(copy->deny_ingress, orig->deny_ingress);
}

static void assert_spec_eq(const SandboxSpec *orig, const SandboxSpec *copy)
{
    if (!both_present(orig, copy))
        return;
    ASSERT_REPEATED_EQ(orig, copy, containers, assert_container_eq);
    ck_assert_str_eq(copy->primary_container, orig->primary_container);
    ASSERT_REPEATED_EQ(orig, copy, volumes, assert_sandbox_volume_eq);
    ASSERT_REPEATED_EQ(orig, copy, services, assert_service_eq);
    ck_assert_int_eq(copy->max_lifetime_seconds, orig->max_lifetime_seconds);
    ASSERT_STRINGS_EQ(orig, copy, network_ids);
    assert_object_storage_eq(orig->object_storage_access, copy->object_storage_access);
    ASSERT_STRINGS_EQ(orig, copy, tags);
    ASSERT_STRINGS_EQ(orig, copy, runner_ids);
    assert_network_eq(orig->network, copy->network);
    ASSERT_STRING_MAP_EQ(orig, copy, annotations);
    ASSERT_REPEATED_EQ(orig, copy, init_containers, assert_container_eq);
    ck_assert_str_eq(copy->instance_type, orig->instance_type);
    ck_assert_int_eq(copy->mode, orig->mode);
    ck_assert_str_eq(copy->runtime_class, orig->runtime_class);
}

static void assert_service_status_eq(const ServiceStatus *orig, const ServiceStatus *copy)
{
    ck_assert_int_eq(copy->port, orig->port);
    ck_assert_str_eq(copy->name, orig->name);
    ck_assert_int_eq(copy->protocol, orig->protocol);
    ck_assert_int_eq(copy->visibility, orig->visibility);
    ck_assert_str_eq(copy->url, orig->url);
    if (!both_present(orig->endpoint, copy->endpoint))
        return;
    ck_assert_int_eq(copy->endpoint->kind, orig->endpoint->kind);
    ck_assert_int_eq(copy->endpoint->auth, orig->endpoint->auth);
    ck_assert_str_eq(copy->endpoint->url, orig->endpoint->url);
}

static void assert_resource_usage_eq(const ResourceUsage *orig, const ResourceUsage *copy)
{
    if (!both_present(orig, copy))
        return;
    ck_assert_int_eq(copy->cpu_millicores, orig->cpu_millicores);
    ck_assert_int_eq(copy->memory_mb, orig->memory_mb);
    ck_assert_int_eq(copy->gpu_count, orig->gpu_count);
}

static void assert_container_status_eq(const ContainerStatus *orig, const ContainerStatus *copy)
{
    ck_assert_str_eq(copy->name, orig->name);
    ck_assert_int_eq(copy->state, orig->state);
    ck_assert_int_eq(copy->exit_code, orig->exit_code);
    ck_assert_int_eq(copy->restart_count, orig->restart_count);
}

static void assert_status_eq(const SandboxStatus *orig, const SandboxStatus *copy)
{
    if (!both_present(orig, copy))
        return;
    ck_assert_int_eq(copy->state, orig->state);
    ck_assert_str_eq(copy->state_reason, orig->state_reason);
    assert_timestamp_eq(orig->create_time, copy->create_time);
    assert_timestamp_eq(orig->start_time, copy->start_time);
    assert_timestamp_eq(orig->end_time, copy->end_time);
    ASSERT_REPEATED_EQ(orig, copy, services, assert_service_status_eq);
    assert_resource_usage_eq(orig->resource_usage, copy->resource_usage);
    ck_assert_int_eq(copy->_exit_code_case, orig->_exit_code_case);
    if (orig->_exit_code_case)
        ck_assert_int_eq(copy->exit_code, orig->exit_code);
    assert_resources_eq(orig->effective_resources, copy->effective_resources);
    ck_assert_int_eq(copy->effective_max_lifetime_seconds, orig->effective_max_lifetime_seconds);
    ASSERT_REPEATED_EQ(orig, copy, container_statuses, assert_container_status_eq);
    ck_assert_str_eq(copy->runner_id, orig->runner_id);
    ck_assert_str_eq(copy->runner_group_id, orig->runner_group_id);
    ASSERT_REPEATED_EQ(orig, copy, effective_ingress, assert_ingress_rule_eq);
    ASSERT_REPEATED_EQ(orig, copy, effective_egress, assert_egress_rule_eq);
    assert_requirements_eq(orig->effective_resource_requirements,
                           copy->effective_resource_requirements);
    ASSERT_STRINGS_EQ(orig, copy, attached_volume_ids);
    ck_assert_str_eq(copy->effective_runtime_class, orig->effective_runtime_class);
}

static void assert_sandbox_eq(const Sandbox *orig, const Sandbox *copy)
{
    if (!both_present(orig, copy))
        return;
    ck_assert_str_eq(copy->sandbox_id, orig->sandbox_id);
    assert_spec_eq(orig->spec, copy->spec);
    assert_status_eq(orig->status, copy->status);
    ck_assert_str_eq(copy->source_template_id, orig->source_template_id);
    ck_assert_int_eq(copy->source_template_revision, orig->source_template_revision);
}

static void assert_create_request_eq(const CreateSandboxRequest *orig,
                                     const CreateSandboxRequest *copy)
{
    ck_assert_str_eq(copy->request_id, orig->request_id);
    assert_sandbox_eq(orig->sandbox, copy->sandbox);
}

/* ---- packing helpers ---- */

static uint8_t *pack_message(const ProtobufCMessage *msg, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(protobuf_c_message_pack(msg, buf), *len);
    return buf;
}

static void assert_packs_to(const ProtobufCMessage *msg, const uint8_t *expected, size_t len)
{
    size_t got_len;
    uint8_t *got = pack_message(msg, &got_len);
    ck_assert_uint_eq(got_len, len);
    ck_assert_mem_eq(got, expected, len);
    free(got);
}

static CreateSandboxRequest *unpack_create_request(const uint8_t *buf, size_t len)
{
    return coreweave__sandbox__v1__create_sandbox_request__unpack(NULL, len, buf);
}

static void free_create_request(CreateSandboxRequest *msg)
{
    coreweave__sandbox__v1__create_sandbox_request__free_unpacked(msg, NULL);
}

/* ---- schema ---- */

START_TEST(service_lists_all_rpcs_in_order)
{
    static const char *const rpcs[][3] = {
        {"CreateSandbox", "CreateSandboxRequest", "Sandbox"},
        {"CreateSandboxFromTemplate", "CreateSandboxFromTemplateRequest", "Sandbox"},
        {"GetSandbox", "GetSandboxRequest", "Sandbox"},
        {"ListSandboxes", "ListSandboxesRequest", "ListSandboxesResponse"},
        {"DeleteSandbox", "DeleteSandboxRequest", "DeleteSandboxResponse"},
        {"PurgeSandboxes", "PurgeSandboxesRequest", "PurgeSandboxesResponse"},
        {"Exec", "ExecRequest", "ExecResponse"},
        {"StreamExec", "ExecStreamRequest", "ExecStreamResponse"},
        {"StreamLogs", "StreamLogsRequest", "LogEntry"},
        {"WriteFile", "WriteFileRequest", "WriteFileResponse"},
        {"ReadFile", "ReadFileRequest", "ReadFileResponse"},
        {"CreateFileSystemSnapshot", "CreateFileSystemSnapshotRequest", "FileSystemSnapshot"},
        {"GetFileSystemSnapshot", "GetFileSystemSnapshotRequest", "FileSystemSnapshot"},
        {"ListFileSystemSnapshots", "ListFileSystemSnapshotsRequest",
         "ListFileSystemSnapshotsResponse"},
        {"DeleteFileSystemSnapshot", "DeleteFileSystemSnapshotRequest", "FileSystemSnapshot"},
    };
    const ProtobufCServiceDescriptor *svc = &coreweave__sandbox__v1__sandbox_service__descriptor;

    ck_assert_str_eq(svc->name, "coreweave.sandbox.v1.SandboxService");
    ck_assert_uint_eq(svc->n_methods, sizeof rpcs / sizeof rpcs[0]);
    for (size_t i = 0; i < svc->n_methods; i++) {
        ck_assert_str_eq(svc->methods[i].name, rpcs[i][0]);
        ck_assert_str_eq(svc->methods[i].input->short_name, rpcs[i][1]);
        ck_assert_str_eq(svc->methods[i].input->package_name, "coreweave.sandbox.v1");
        ck_assert_str_eq(svc->methods[i].output->short_name, rpcs[i][2]);
        ck_assert_str_eq(svc->methods[i].output->package_name, "coreweave.sandbox.v1");
    }
}
END_TEST

/* Enum numbers go on the wire, so a few are checked by name against the listing. */
START_TEST(enum_values_match_listing)
{
    const ProtobufCEnumDescriptor *state = &coreweave__sandbox__v1__state__descriptor;
    const ProtobufCEnumDescriptor *stream =
        &coreweave__sandbox__v1__exec_stream_output__stream__descriptor;
    const ProtobufCEnumDescriptor *trigger = &coreweave__sandbox__v1__snapshot_trigger__descriptor;

    ck_assert_uint_eq(state->n_values, 9);
    ck_assert_int_eq(protobuf_c_enum_descriptor_get_value_by_name(state, "STATE_PENDING")->value,
                     7);
    ck_assert_int_eq(protobuf_c_enum_descriptor_get_value_by_name(state, "STATE_PAUSED")->value, 8);
    ck_assert_str_eq(stream->name, "coreweave.sandbox.v1.ExecStreamOutput.Stream");
    ck_assert_int_eq(protobuf_c_enum_descriptor_get_value_by_name(stream, "STREAM_STDERR")->value,
                     2);
    ck_assert_int_eq(
        protobuf_c_enum_descriptor_get_value_by_name(trigger, "SNAPSHOT_TRIGGER_ON_DELETE")->value,
        2);
}
END_TEST

/* ---- round trip of the full request ---- */

START_TEST(full_request_round_trips_field_by_field)
{
    struct full_request f;
    size_t len;

    build_full_request(&f);
    uint8_t *buf = pack_message(&f.request.base, &len);
    CreateSandboxRequest *copy = unpack_create_request(buf, len);
    ck_assert_ptr_nonnull(copy);
    assert_create_request_eq(&f.request, copy);
    free_create_request(copy);
    free(buf);
}
END_TEST

/* protobuf-c packs in field-number order, so re-packing the copy must give the same bytes. */
START_TEST(full_request_repacks_to_identical_bytes)
{
    struct full_request f;
    size_t len, again_len;

    build_full_request(&f);
    uint8_t *buf = pack_message(&f.request.base, &len);
    CreateSandboxRequest *copy = unpack_create_request(buf, len);
    ck_assert_ptr_nonnull(copy);
    uint8_t *again = pack_message(&copy->base, &again_len);
    ck_assert_uint_eq(again_len, len);
    ck_assert_mem_eq(again, buf, len);
    free(again);
    free_create_request(copy);
    free(buf);
}
END_TEST

/* ---- field numbers on the wire: tag = (field_number << 3) | wire_type ---- */

START_TEST(create_request_id_is_field_2)
{
    CreateSandboxRequest msg = COREWEAVE__SANDBOX__V1__CREATE_SANDBOX_REQUEST__INIT;
    static const uint8_t wire[] = {0x12 /* 2<<3|LEN */, 0x01, 'r'};

    msg.request_id = "r";
    assert_packs_to(&msg.base, wire, sizeof wire);
    CreateSandboxRequest *copy = unpack_create_request(wire, sizeof wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_str_eq(copy->request_id, "r");
    ck_assert_ptr_null(copy->sandbox);
    free_create_request(copy);
}
END_TEST

START_TEST(get_sandbox_id_is_field_1)
{
    GetSandboxRequest msg = COREWEAVE__SANDBOX__V1__GET_SANDBOX_REQUEST__INIT;
    static const uint8_t wire[] = {0x0a /* 1<<3|LEN */, 0x02, 'a', 'b'};

    msg.sandbox_id = "ab";
    assert_packs_to(&msg.base, wire, sizeof wire);
    GetSandboxRequest *copy =
        coreweave__sandbox__v1__get_sandbox_request__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_str_eq(copy->sandbox_id, "ab");
    coreweave__sandbox__v1__get_sandbox_request__free_unpacked(copy, NULL);
}
END_TEST

/* An empty message in a oneof is still sent: the case itself is the information. */
START_TEST(exec_stream_close_is_field_4)
{
    ExecStreamRequest msg = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__INIT;
    ExecStreamClose close = COREWEAVE__SANDBOX__V1__EXEC_STREAM_CLOSE__INIT;
    static const uint8_t wire[] = {0x22 /* 4<<3|LEN */, 0x00};

    msg.message_case = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_CLOSE;
    msg.close = &close;
    assert_packs_to(&msg.base, wire, sizeof wire);
    ExecStreamRequest *copy =
        coreweave__sandbox__v1__exec_stream_request__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(copy->message_case,
                     COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_CLOSE);
    ck_assert_ptr_nonnull(copy->close);
    coreweave__sandbox__v1__exec_stream_request__free_unpacked(copy, NULL);
}
END_TEST

START_TEST(exec_stream_stdin_is_field_2_bytes)
{
    ExecStreamRequest msg = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__INIT;
    static uint8_t input[] = {0x00, 0x04};
    static const uint8_t wire[] = {0x12 /* 2<<3|LEN */, 0x02, 0x00, 0x04};

    msg.message_case = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_STDIN;
    msg.stdin.data = input;
    msg.stdin.len = sizeof input;
    assert_packs_to(&msg.base, wire, sizeof wire);
    ExecStreamRequest *copy =
        coreweave__sandbox__v1__exec_stream_request__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(copy->message_case,
                     COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_STDIN);
    assert_bytes_eq(msg.stdin, copy->stdin);
    coreweave__sandbox__v1__exec_stream_request__free_unpacked(copy, NULL);
}
END_TEST

/* proto3 optional: a present zero is sent, an absent one is not. */
START_TEST(status_exit_code_is_field_9_and_sent_when_zero)
{
    SandboxStatus msg = COREWEAVE__SANDBOX__V1__SANDBOX_STATUS__INIT;
    static const uint8_t wire[] = {0x48 /* 9<<3|VARINT */, 0x00};

    ck_assert_uint_eq(protobuf_c_message_get_packed_size(&msg.base), 0);
    msg._exit_code_case = COREWEAVE__SANDBOX__V1__SANDBOX_STATUS___EXIT_CODE_EXIT_CODE;
    msg.exit_code = 0;
    assert_packs_to(&msg.base, wire, sizeof wire);
    SandboxStatus *copy = coreweave__sandbox__v1__sandbox_status__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(copy->_exit_code_case,
                     COREWEAVE__SANDBOX__V1__SANDBOX_STATUS___EXIT_CODE_EXIT_CODE);
    ck_assert_int_eq(copy->exit_code, 0);
    coreweave__sandbox__v1__sandbox_status__free_unpacked(copy, NULL);
}
END_TEST

START_TEST(status_exit_code_absent_when_not_on_wire)
{
    static const uint8_t wire[] = {0x08 /* 1<<3|VARINT: state */, 0x02};
    SandboxStatus *copy = coreweave__sandbox__v1__sandbox_status__unpack(NULL, sizeof wire, wire);

    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(copy->state, COREWEAVE__SANDBOX__V1__STATE__STATE_RUNNING);
    ck_assert_int_eq(copy->_exit_code_case,
                     COREWEAVE__SANDBOX__V1__SANDBOX_STATUS___EXIT_CODE__NOT_SET);
    coreweave__sandbox__v1__sandbox_status__free_unpacked(copy, NULL);
}
END_TEST

/* Field 19 needs a two-byte tag: (19<<3)|2 = 154 = varint 0x9a 0x01. */
START_TEST(status_effective_runtime_class_is_field_19)
{
    SandboxStatus msg = COREWEAVE__SANDBOX__V1__SANDBOX_STATUS__INIT;
    static const uint8_t wire[] = {0x9a, 0x01, 0x01, 'y'};

    msg.effective_runtime_class = "y";
    assert_packs_to(&msg.base, wire, sizeof wire);
    SandboxStatus *copy = coreweave__sandbox__v1__sandbox_status__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_str_eq(copy->effective_runtime_class, "y");
    coreweave__sandbox__v1__sandbox_status__free_unpacked(copy, NULL);
}
END_TEST

START_TEST(list_show_terminated_is_field_5)
{
    ListSandboxesRequest msg = COREWEAVE__SANDBOX__V1__LIST_SANDBOXES_REQUEST__INIT;
    static const uint8_t wire[] = {0x28 /* 5<<3|VARINT */, 0x01};

    msg.show_terminated = true;
    assert_packs_to(&msg.base, wire, sizeof wire);
    ListSandboxesRequest *copy =
        coreweave__sandbox__v1__list_sandboxes_request__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert(copy->show_terminated);
    ck_assert_uint_eq(copy->n_tags, 0);
    coreweave__sandbox__v1__list_sandboxes_request__free_unpacked(copy, NULL);
}
END_TEST

/* 300 = 0b10_0101100: low seven bits 0x2c with the continuation bit, then 0x02. */
START_TEST(logs_resume_offset_is_field_8)
{
    StreamLogsRequest msg = COREWEAVE__SANDBOX__V1__STREAM_LOGS_REQUEST__INIT;
    static const uint8_t wire[] = {0x40 /* 8<<3|VARINT */, 0xac, 0x02};

    msg.resume_log_offset = 300;
    assert_packs_to(&msg.base, wire, sizeof wire);
    StreamLogsRequest *copy =
        coreweave__sandbox__v1__stream_logs_request__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_uint_eq(copy->resume_log_offset, 300);
    ck_assert_int_eq(copy->tail_lines, 0);
    coreweave__sandbox__v1__stream_logs_request__free_unpacked(copy, NULL);
}
END_TEST

START_TEST(spec_runtime_class_is_field_15)
{
    SandboxSpec msg = COREWEAVE__SANDBOX__V1__SANDBOX_SPEC__INIT;
    static const uint8_t wire[] = {0x7a /* 15<<3|LEN */, 0x01, 'x'};

    msg.runtime_class = "x";
    assert_packs_to(&msg.base, wire, sizeof wire);
    SandboxSpec *copy = coreweave__sandbox__v1__sandbox_spec__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_str_eq(copy->runtime_class, "x");
    ck_assert_str_eq(copy->instance_type, "");
    coreweave__sandbox__v1__sandbox_spec__free_unpacked(copy, NULL);
}
END_TEST

START_TEST(exec_output_stream_is_field_1)
{
    ExecStreamOutput msg = COREWEAVE__SANDBOX__V1__EXEC_STREAM_OUTPUT__INIT;
    static const uint8_t wire[] = {0x08 /* 1<<3|VARINT */, 0x02};

    msg.stream = COREWEAVE__SANDBOX__V1__EXEC_STREAM_OUTPUT__STREAM__STREAM_STDERR;
    assert_packs_to(&msg.base, wire, sizeof wire);
    ExecStreamOutput *copy =
        coreweave__sandbox__v1__exec_stream_output__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(copy->stream,
                     COREWEAVE__SANDBOX__V1__EXEC_STREAM_OUTPUT__STREAM__STREAM_STDERR);
    ck_assert_uint_eq(copy->data.len, 0);
    coreweave__sandbox__v1__exec_stream_output__free_unpacked(copy, NULL);
}
END_TEST

/* The selector member (6) is numbered after ports (5) though it belongs to the oneof. */
START_TEST(egress_selector_is_field_6)
{
    EgressRule msg = COREWEAVE__SANDBOX__V1__EGRESS_RULE__INIT;
    SelectorBlock selector = COREWEAVE__SANDBOX__V1__SELECTOR_BLOCK__INIT;
    static const uint8_t wire[] = {0x32 /* 6<<3|LEN */, 0x00};

    msg.destination_case = COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_SELECTOR;
    msg.selector = &selector;
    assert_packs_to(&msg.base, wire, sizeof wire);
    EgressRule *copy = coreweave__sandbox__v1__egress_rule__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(copy->destination_case,
                     COREWEAVE__SANDBOX__V1__EGRESS_RULE__DESTINATION_SELECTOR);
    ck_assert_ptr_nonnull(copy->selector);
    coreweave__sandbox__v1__egress_rule__free_unpacked(copy, NULL);
}
END_TEST

START_TEST(gpu_memory_gb_is_field_3)
{
    Gpu msg = COREWEAVE__SANDBOX__V1__GPU__INIT;
    static const uint8_t wire[] = {0x18 /* 3<<3|VARINT */, 0x50};

    msg.selector_case = COREWEAVE__SANDBOX__V1__GPU__SELECTOR_MEMORY_GB;
    msg.memory_gb = 80;
    assert_packs_to(&msg.base, wire, sizeof wire);
    Gpu *copy = coreweave__sandbox__v1__gpu__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(copy->selector_case, COREWEAVE__SANDBOX__V1__GPU__SELECTOR_MEMORY_GB);
    ck_assert_int_eq(copy->memory_gb, 80);
    coreweave__sandbox__v1__gpu__free_unpacked(copy, NULL);
}
END_TEST

START_TEST(network_deny_egress_false_is_field_3)
{
    NetworkOptions msg = COREWEAVE__SANDBOX__V1__NETWORK_OPTIONS__INIT;
    static const uint8_t wire[] = {0x18 /* 3<<3|VARINT */, 0x00};

    msg._deny_egress_case = COREWEAVE__SANDBOX__V1__NETWORK_OPTIONS___DENY_EGRESS_DENY_EGRESS;
    msg.deny_egress = false;
    assert_packs_to(&msg.base, wire, sizeof wire);
    NetworkOptions *copy = coreweave__sandbox__v1__network_options__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(copy->_deny_egress_case,
                     COREWEAVE__SANDBOX__V1__NETWORK_OPTIONS___DENY_EGRESS_DENY_EGRESS);
    ck_assert(!copy->deny_egress);
    ck_assert_int_eq(copy->_deny_ingress_case,
                     COREWEAVE__SANDBOX__V1__NETWORK_OPTIONS___DENY_INGRESS__NOT_SET);
    coreweave__sandbox__v1__network_options__free_unpacked(copy, NULL);
}
END_TEST

/* int64 -1 is ten varint bytes: nine 0xff then 0x01. */
START_TEST(sandbox_template_revision_is_field_5)
{
    Sandbox msg = COREWEAVE__SANDBOX__V1__SANDBOX__INIT;
    static const uint8_t wire[] = {
        0x28 /* 5<<3|VARINT */, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};

    msg.source_template_revision = -1;
    assert_packs_to(&msg.base, wire, sizeof wire);
    Sandbox *copy = coreweave__sandbox__v1__sandbox__unpack(NULL, sizeof wire, wire);
    ck_assert_ptr_nonnull(copy);
    ck_assert_int_eq(copy->source_template_revision, -1);
    coreweave__sandbox__v1__sandbox__free_unpacked(copy, NULL);
}
END_TEST

/* ---- malformed input ---- */

static size_t varint_size(size_t value)
{
    size_t n = 1;
    while (value >= 0x80) {
        value >>= 7;
        n++;
    }
    return n;
}

/*
 * libprotobuf-c comes from the system, not built with ASan, so its reads past the input would
 * go unseen. Copying the input to the very end of a mapping that is followed by a PROT_NONE
 * page turns any such read into a crash, which fails the test.
 */
struct guarded_buffer {
    uint8_t *map;
    size_t map_len;
    uint8_t *data;
};

static struct guarded_buffer guarded_copy(const uint8_t *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + page - 1) / page;
    struct guarded_buffer g;

    g.map_len = (data_pages + 1) * page;
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(g.map, MAP_FAILED);
    ck_assert_int_eq(mprotect(g.map + data_pages * page, page, PROT_NONE), 0);
    g.data = g.map + data_pages * page - len;
    if (len)
        memcpy(g.data, src, len);
    return g;
}

static void guarded_free(struct guarded_buffer *g)
{
    ck_assert_int_eq(munmap(g->map, g->map_len), 0);
}

/*
 * The packed request is field 1 (sandbox) then field 2 (request_id). The only prefixes that
 * are whole protobuf messages are the empty one and the one ending after field 1; every other
 * cut lands inside a tag, a length or a length-delimited body and must be rejected.
 */
START_TEST(truncated_full_request_is_rejected)
{
    struct full_request f;
    size_t len;

    build_full_request(&f);
    uint8_t *buf = pack_message(&f.request.base, &len);
    size_t sandbox_size = coreweave__sandbox__v1__sandbox__get_packed_size(&f.sandbox);
    size_t after_sandbox = 1 + varint_size(sandbox_size) + sandbox_size;
    ck_assert_uint_lt(after_sandbox, len);

    for (size_t cut = 0; cut < len; cut++) {
        struct guarded_buffer prefix = guarded_copy(buf, cut);
        CreateSandboxRequest *copy = unpack_create_request(prefix.data, cut);
        if (cut == 0 || cut == after_sandbox) {
            ck_assert_msg(copy != NULL, "valid prefix of %zu bytes rejected", cut);
            ck_assert_str_eq(copy->request_id, "");
            free_create_request(copy);
        } else {
            ck_assert_msg(copy == NULL, "truncation at %zu of %zu bytes accepted", cut, len);
        }
        guarded_free(&prefix);
    }
    free(buf);
}
END_TEST

static const uint8_t zero_field_number[] = {0x00, 0x01};
static const uint8_t wire_type_7[] = {0x0f, 0x01};
static const uint8_t length_past_end[] = {0x0a, 0x05, 0x0a};
static const uint8_t length_near_4g[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
static const uint8_t varint_eleven_bytes[] = {0x18, 0xff, 0xff, 0xff, 0xff, 0xff,
                                              0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
static const uint8_t request_id_as_varint[] = {0x10, 0x01};
static const uint8_t inner_length_past_end[] = {0x0a, 0x02, 0x0a, 0x05};
static const uint8_t unterminated_tag[] = {0x80};

static const struct {
    const char *name;
    const uint8_t *data;
    size_t len;
} invalid_inputs[] = {
    {"field number 0", zero_field_number, sizeof zero_field_number},
    {"wire type 7", wire_type_7, sizeof wire_type_7},
    {"length past end", length_past_end, sizeof length_past_end},
    {"length near 4 GiB", length_near_4g, sizeof length_near_4g},
    {"11-byte varint", varint_eleven_bytes, sizeof varint_eleven_bytes},
    {"string field sent as varint", request_id_as_varint, sizeof request_id_as_varint},
    {"nested length past end", inner_length_past_end, sizeof inner_length_past_end},
    {"unterminated tag", unterminated_tag, sizeof unterminated_tag},
};

START_TEST(invalid_encodings_are_rejected)
{
    size_t len = invalid_inputs[_i].len;
    struct guarded_buffer input = guarded_copy(invalid_inputs[_i].data, len);

    CreateSandboxRequest *msg = unpack_create_request(input.data, len);
    ck_assert_msg(msg == NULL, "accepted: %s", invalid_inputs[_i].name);
    guarded_free(&input);
}
END_TEST

/* xorshift32: deterministic, so a failure reproduces. */
static uint32_t next_random(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static void unpack_and_discard(const uint8_t *buf, size_t len)
{
    CreateSandboxRequest *msg = unpack_create_request(buf, len);
    if (msg)
        free_create_request(msg);
}

START_TEST(random_garbage_does_not_crash)
{
    uint32_t state = 0x9e3779b9u;
    uint8_t bytes[256];

    for (int round = 0; round < 5000; round++) {
        size_t len = next_random(&state) % (sizeof bytes + 1);
        for (size_t i = 0; i < len; i++)
            bytes[i] = (uint8_t)next_random(&state);
        struct guarded_buffer input = guarded_copy(bytes, len);
        unpack_and_discard(input.data, len);
        guarded_free(&input);
    }
}
END_TEST

/* Near-valid input reaches deeper parser paths than random bytes do. */
START_TEST(bit_flipped_full_request_does_not_crash)
{
    struct full_request f;
    size_t len;

    build_full_request(&f);
    uint8_t *packed = pack_message(&f.request.base, &len);
    struct guarded_buffer input = guarded_copy(packed, len);
    for (size_t pos = 0; pos < len; pos++) {
        for (int bit = 0; bit < 8; bit++) {
            input.data[pos] ^= (uint8_t)(1u << bit);
            unpack_and_discard(input.data, len);
            input.data[pos] ^= (uint8_t)(1u << bit);
        }
    }
    guarded_free(&input);
    free(packed);
}
END_TEST

static Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");

    TCase *schema = tcase_create("schema");
    tcase_add_test(schema, service_lists_all_rpcs_in_order);
    tcase_add_test(schema, enum_values_match_listing);
    suite_add_tcase(s, schema);

    TCase *round_trip = tcase_create("round_trip");
    tcase_add_test(round_trip, full_request_round_trips_field_by_field);
    tcase_add_test(round_trip, full_request_repacks_to_identical_bytes);
    suite_add_tcase(s, round_trip);

    TCase *wire = tcase_create("wire");
    tcase_add_test(wire, create_request_id_is_field_2);
    tcase_add_test(wire, get_sandbox_id_is_field_1);
    tcase_add_test(wire, exec_stream_close_is_field_4);
    tcase_add_test(wire, exec_stream_stdin_is_field_2_bytes);
    tcase_add_test(wire, status_exit_code_is_field_9_and_sent_when_zero);
    tcase_add_test(wire, status_exit_code_absent_when_not_on_wire);
    tcase_add_test(wire, status_effective_runtime_class_is_field_19);
    tcase_add_test(wire, list_show_terminated_is_field_5);
    tcase_add_test(wire, logs_resume_offset_is_field_8);
    tcase_add_test(wire, spec_runtime_class_is_field_15);
    tcase_add_test(wire, exec_output_stream_is_field_1);
    tcase_add_test(wire, egress_selector_is_field_6);
    tcase_add_test(wire, gpu_memory_gb_is_field_3);
    tcase_add_test(wire, network_deny_egress_false_is_field_3);
    tcase_add_test(wire, sandbox_template_revision_is_field_5);
    suite_add_tcase(s, wire);

    TCase *malformed = tcase_create("malformed");
    /* Sanitizer builds are several times slower; the bit-flip sweep needs the headroom. */
    tcase_set_timeout(malformed, 120);
    tcase_add_test(malformed, truncated_full_request_is_rejected);
    tcase_add_loop_test(malformed, invalid_encodings_are_rejected, 0,
                        (int)(sizeof invalid_inputs / sizeof invalid_inputs[0]));
    tcase_add_test(malformed, random_garbage_does_not_crash);
    tcase_add_test(malformed, bit_flipped_full_request_does_not_crash);
    suite_add_tcase(s, malformed);

    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(proto_suite());

    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
