/* cws_sandbox_config: what a sandbox is made of (the SandboxConfig of docs/protocol.md).
 *
 * Build one with cws_sandbox_config_new() and the setters below, then pass it to
 * cws_sandbox_create() / cws_sandbox_run() or as a session's defaults. Every key is optional:
 * an empty config gives the daemon's defaults (image python:3.11, a main process that keeps the
 * sandbox up until it is stopped).
 *
 * The setters copy what they are given. They return 0, or -CWS_E_INVALID_ARGUMENT /
 * -CWS_E_NOMEM; the first failure is also remembered by the config, and a create with that
 * config fails with it, so checking every setter's return is optional:
 *
 *     cws_sandbox_config *cfg = NULL;
 *     const char *cmd[] = {"python", "-m", "http.server", "8000", NULL};
 *     cws_sandbox_config_new(&cfg);
 *     cws_sandbox_config_set_image(cfg, "python:3.12");
 *     cws_sandbox_config_set_command(cfg, cmd);
 *     cws_sandbox_config_add_tag(cfg, "my-project");
 *     cws_sandbox_config_set_env(cfg, "PYTHONUNBUFFERED", "1");
 *     cws_sandbox_config_set_requests(cfg, "500m", "512Mi");
 *     cws_sandbox_config_add_service(cfg, 8000, "http", NULL, false);
 *     ... cws_sandbox_create(c, cfg, NULL, &op, &err) ...
 *     cws_sandbox_config_free(cfg);
 *
 * A config may be used for any number of creates, and freed as soon as they have been called.
 */
#ifndef CWSANDBOX_CONFIG_H
#define CWSANDBOX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include <cwsandbox/error.h>

typedef struct cws_sandbox_config cws_sandbox_config;

enum cws_placement_mode {
    CWS_PLACEMENT_DEFAULT = 0, /* the backend decides */
    CWS_PLACEMENT_SERVERLESS,
    CWS_PLACEMENT_CKS,
};

/* A new, empty config. Returns 0 and sets *ret, which the caller frees with
 * cws_sandbox_config_free(); or -CWS_E_NOMEM. */
int cws_sandbox_config_new(cws_sandbox_config **ret);

/* A deep copy of cfg. Returns 0 and sets *ret (the caller frees it with
 * cws_sandbox_config_free()), or -CWS_E_NOMEM. */
int cws_sandbox_config_dup(const cws_sandbox_config *cfg, cws_sandbox_config **ret);

/* Free a config. Accepts NULL. */
void cws_sandbox_config_free(cws_sandbox_config *cfg);

/* The first setter error the config remembers, or NULL when there was none. Owned by cfg. */
const struct cws_error *cws_sandbox_config_error(const cws_sandbox_config *cfg);

/* The container image ("python:3.12"). */
int cws_sandbox_config_set_image(cws_sandbox_config *cfg, const char *image);

/* The main process: argv[0] is the command, the rest its arguments (NULL-terminated, as for
 * execv). When it exits the sandbox completes; with none, the sandbox stays up until stopped. */
int cws_sandbox_config_set_command(cws_sandbox_config *cfg, const char *const *argv);

/* The main process's working directory. */
int cws_sandbox_config_set_working_dir(cws_sandbox_config *cfg, const char *dir);

/* Set an environment variable of the container (a later call with the same name replaces
 * the value). Not for secrets: the daemon and backend see them in clear. */
int cws_sandbox_config_set_env(cws_sandbox_config *cfg, const char *name, const char *value);

/* Add a tag. Tags find sandboxes again (cws_sandbox_list(), cws_sandbox_purge()). */
int cws_sandbox_config_add_tag(cws_sandbox_config *cfg, const char *tag);

/* Set a Kubernetes annotation of the sandbox's pod (a later call with the same key replaces
 * the value). */
int cws_sandbox_config_set_annotation(cws_sandbox_config *cfg, const char *key, const char *value);

/* Resource requests and limits, as Kubernetes quantities ("500m", "2", "512Mi", "1Gi");
 * NULL leaves a value unset. */
int cws_sandbox_config_set_requests(cws_sandbox_config *cfg, const char *cpu, const char *memory);
int cws_sandbox_config_set_limits(cws_sandbox_config *cfg, const char *cpu, const char *memory);

/* GPUs: count (> 0), type (NULL: any) and memory per GPU in GB (0: any). */
int cws_sandbox_config_set_gpu(cws_sandbox_config *cfg, int count, const char *type, int memory_gb);

/* The sandbox is terminated after this many seconds (> 0). */
int cws_sandbox_config_set_max_lifetime(cws_sandbox_config *cfg, double seconds);

/* A file placed in the sandbox at create time (read-only inside; use cws_file_write() for
 * files that change). data is copied. */
int cws_sandbox_config_add_mounted_file(cws_sandbox_config *cfg, const char *path, const void *data,
                                        size_t len);

/* Expose a port (1..65535). name may be NULL; protocol is "tcp" (NULL), "udp" or "sctp";
 * is_public asks for a public URL (see cws_sandbox_info.services). */
int cws_sandbox_config_add_service(cws_sandbox_config *cfg, int port, const char *name,
                                   const char *protocol, bool is_public);

/* Network policy: deny all egress and/or ingress. */
int cws_sandbox_config_set_network(cws_sandbox_config *cfg, bool deny_egress, bool deny_ingress);

/* Allow HTTPS egress to a DNS name ("pypi.org" or "*.example.com"). */
int cws_sandbox_config_add_egress_dns(cws_sandbox_config *cfg, const char *dns_name);

/* Placement: the mode, and runners to place it on (add_runner_id may be called many times). */
int cws_sandbox_config_set_placement(cws_sandbox_config *cfg, enum cws_placement_mode mode);
int cws_sandbox_config_add_runner_id(cws_sandbox_config *cfg, const char *runner_id);

#ifdef __cplusplus
}
#endif

#endif
