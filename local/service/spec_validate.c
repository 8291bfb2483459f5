/* Validation of CreateSandbox requests, reported as google.rpc.BadRequest field violations
 * (what the Python SDK turns into SandboxValidationError). The rules follow what the official
 * clients check on their side, so a request they accept is accepted here too. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "service.h"

#define TAG_MAX         59
#define ANNOTATIONS_MAX 100

static void violation(struct svc_violations *out, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void violation(struct svc_violations *out, const char *field, const char *fmt, ...)
{
    if (out->n >= sizeof(out->v) / sizeof(out->v[0]))
        return;
    size_t i = out->n++;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->description[i], sizeof(out->description[i]), fmt, ap);
    va_end(ap);
    snprintf(out->field[i], sizeof(out->field[i]), "%s", field);
    out->v[i].description = out->description[i];
    out->v[i].field = out->field[i];
}

/* ^[A-Za-z0-9._-]*[A-Za-z0-9]$, at most 59 characters. */
static bool tag_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > TAG_MAX || !isalnum((unsigned char)t[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && !strchr("._-", t[i]))
            return false;
    return true;
}

static void check_tags(const SandboxSpec *spec, struct svc_violations *out)
{
    for (size_t i = 0; i < spec->n_tags; i++) {
        if (!tag_valid(spec->tags[i]))
            violation(out, "sandbox.spec.tags",
                      "tag '%.60s' must be 1-59 characters of [A-Za-z0-9._-] ending in a letter "
                      "or digit",
                      spec->tags[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->tags[i], spec->tags[j]) == 0)
                violation(out, "sandbox.spec.tags", "tag '%.60s' is repeated", spec->tags[i]);
    }
}

static void check_annotations(const SandboxSpec *spec, struct svc_violations *out)
{
    if (spec->n_annotations > ANNOTATIONS_MAX)
        violation(out, "sandbox.spec.annotations", "at most %d annotations are allowed",
                  ANNOTATIONS_MAX);
    for (size_t i = 0; i < spec->n_annotations; i++)
        if (!spec->annotations[i]->key[0] || !spec->annotations[i]->value[0])
            violation(out, "sandbox.spec.annotations",
                      "annotation keys and values must not be empty");
}

static void check_files(const Coreweave__Sandbox__V1__Container *c, size_t ci,
                        struct svc_violations *out)
{
    char field[96];
    snprintf(field, sizeof(field), "sandbox.spec.containers[%zu].files", ci);
    for (size_t i = 0; i < c->n_files; i++) {
        const char *p = c->files[i]->path;
        if (p[0] != '/')
            violation(out, field, "mounted file path '%.80s' must be absolute", p);
        for (size_t j = 0; j < i; j++)
            if (strcmp(p, c->files[j]->path) == 0)
                violation(out, field, "mounted file path '%.80s' is repeated", p);
    }
}

static bool has_gpu(const Coreweave__Sandbox__V1__Container *c)
{
    const Coreweave__Sandbox__V1__ResourceRequirements *rr = c->resource_requirements;
    if (c->resources && c->resources->gpu && c->resources->gpu->count > 0)
        return true;
    if (rr && rr->requests && rr->requests->gpu && rr->requests->gpu->count > 0)
        return true;
    return rr && rr->limits && rr->limits->gpu && rr->limits->gpu->count > 0;
}

static void check_container(const Coreweave__Sandbox__V1__Container *c, size_t i,
                            struct svc_violations *out)
{
    char field[96];
    /* What the local backend cannot provide is refused, never silently dropped. */
    if (c->n_secret_stores > 0) {
        snprintf(field, sizeof(field), "sandbox.spec.containers[%zu].secret_stores", i);
        violation(out, field, "secret stores are not available on cwsandbox-local");
    }
    if (c->n_volume_mounts > 0) {
        snprintf(field, sizeof(field), "sandbox.spec.containers[%zu].volume_mounts", i);
        violation(out, field, "volumes are not supported by cwsandbox-local yet");
    }
    if (c->image_pull_credentials) {
        snprintf(field, sizeof(field), "sandbox.spec.containers[%zu].image_pull_credentials", i);
        violation(out, field, "image pull credentials are not used by cwsandbox-local");
    }
    if (c->working_dir[0] && c->working_dir[0] != '/') {
        snprintf(field, sizeof(field), "sandbox.spec.containers[%zu].working_dir", i);
        violation(out, field, "working_dir must be an absolute path");
    }
    if (has_gpu(c)) {
        snprintf(field, sizeof(field), "sandbox.spec.containers[%zu].resource_requirements", i);
        violation(out, field, "GPUs are not available on cwsandbox-local");
    }
    check_files(c, i, out);
}

static void check_containers(const SandboxSpec *spec, struct svc_violations *out)
{
    if (spec->n_containers == 0) {
        violation(out, "sandbox.spec.containers", "at least one container is required");
        return;
    }
    bool primary_found = !spec->primary_container[0];
    for (size_t i = 0; i < spec->n_containers; i++) {
        check_container(spec->containers[i], i, out);
        if (spec->primary_container[0] &&
            strcmp(spec->containers[i]->name, spec->primary_container) == 0)
            primary_found = true;
    }
    if (!primary_found)
        violation(out, "sandbox.spec.primary_container", "no container is named '%.60s'",
                  spec->primary_container);
    else if (spec->n_containers > 1 && !spec->primary_container[0])
        violation(out, "sandbox.spec.primary_container",
                  "primary_container is required with several containers");
}

static void check_services(const SandboxSpec *spec, struct svc_violations *out)
{
    for (size_t i = 0; i < spec->n_services; i++) {
        int port = spec->services[i]->port;
        if (port < 1 || port > 65535)
            violation(out, "sandbox.spec.services", "service port %d is not in 1-65535", port);
    }
}

void svc_validate_create(const Coreweave__Sandbox__V1__CreateSandboxRequest *req,
                         struct svc_violations *out)
{
    out->n = 0;
    if (!req->sandbox || !req->sandbox->spec) {
        violation(out, "sandbox.spec", "a sandbox spec is required");
        return;
    }
    const SandboxSpec *spec = req->sandbox->spec;
    check_containers(spec, out);
    check_tags(spec, out);
    check_annotations(spec, out);
    check_services(spec, out);
    if (spec->max_lifetime_seconds < 0)
        violation(out, "sandbox.spec.max_lifetime_seconds", "must not be negative");
    if (spec->n_volumes > 0)
        violation(out, "sandbox.spec.volumes", "volumes are not supported by cwsandbox-local yet");
    if (spec->object_storage_access)
        violation(out, "sandbox.spec.object_storage_access",
                  "object storage access is not available on cwsandbox-local");
    if (spec->n_init_containers > 0)
        violation(out, "sandbox.spec.init_containers",
                  "init containers are not supported by cwsandbox-local");
    if (strlen(req->request_id) > 256)
        violation(out, "request_id", "must be at most 256 characters");
}
