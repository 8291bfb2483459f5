/* Building backend requests from the daemon protocol's SandboxConfig, and SandboxInfo maps
 * from the backend's Sandbox messages. */
#ifndef CWSD_SANDBOX_CONFIG_H
#define CWSD_SANDBOX_CONFIG_H

#include <msgpack.h>

#include "arena.h"
#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "cws_error.h"

/* The CreateSandboxRequest for params.config (absent keys take the SDK defaults), with
 * extra_tags (NULL-terminated, may be NULL) appended to the tags. Everything is allocated in
 * arena; errors name the offending key ("config.env must map strings to strings"). */
int cwsd_build_create_request(const msgpack_object *params, const char *request_id,
                              const char *const *extra_tags, struct cwsd_arena *arena,
                              Coreweave__Sandbox__V1__CreateSandboxRequest **ret,
                              struct cws_error *err);

/* Lower-case state name of the protocol ("running"). */
const char *cwsd_state_name(Coreweave__Sandbox__V1__State state);

/* Pack a SandboxInfo map for a backend Sandbox; session and owner may be NULL. */
int cwsd_pack_sandbox_info(msgpack_packer *pk, const Coreweave__Sandbox__V1__Sandbox *sb,
                           const char *session, const char *owner);

#endif
