/* Named sessions: groups of sandboxes shared by any number of client processes, with defaults
 * merged into every create in them and an idle TTL (docs/sessions.md). */
#ifndef CWSD_SESSION_H
#define CWSD_SESSION_H

#include <event2/event.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cws_error.h"

struct cwsd;
struct cwsd_client;

/* A session name is also part of a backend tag: 1-46 characters of [A-Za-z0-9._-] ending in a
 * letter or digit. */
#define CWSD_SESSION_NAME_MAX 46
/* The longest idle TTL, in seconds. */
#define CWSD_SESSION_TTL_MAX 1e9
/* Tag prefixes on every sandbox the daemon creates (tags are at most 59 characters). */
#define CWSD_TAG_OWNER    "cwsd-owner."
#define CWSD_TAG_SESSION  "cwsd-session."
#define CWSD_TAG_DETACHED "cwsd-detached"
#define CWSD_TAG_MAX      60

struct cwsd_session {
    struct cwsd *d;
    char *name;
    uint8_t *defaults; /* a packed SandboxConfig map; NULL when it has none */
    size_t defaults_len;
    double idle_ttl_s; /* closed after this long without clients; 0: never */
    int64_t created_ms;
    struct event *idle_timer; /* armed while no client is attached */
    struct cwsd_session *next;
};

/* Whether name is a valid session name; when not, err says why (naming the param). */
bool cwsd_session_name_valid(const char *name, const char *param, struct cws_error *err);
/* The backend tag of a session: "cwsd-session.NAME". */
void cwsd_session_tag(const char *name, char buf[CWSD_TAG_MAX]);

struct cwsd_session *cwsd_session_find(struct cwsd *d, const char *name);
/* Make a session (owned by d->sessions) and persist it. defaults is a SandboxConfig map or
 * NULL. On success *ret points to the new session. */
int cwsd_session_new(struct cwsd *d, const char *name, const msgpack_object *defaults,
                     double idle_ttl_s, int64_t created_ms, struct cwsd_session **ret,
                     struct cws_error *err);
/* The session called name, made with no defaults and the configured TTL when missing. */
int cwsd_session_get_or_new(struct cwsd *d, const char *name, struct cwsd_session **ret,
                            struct cws_error *err);
/* Forget a session (its sandboxes were stopped or kept by the caller) and persist that. */
void cwsd_session_remove(struct cwsd_session *s);
void cwsd_sessions_free(struct cwsd *d);
size_t cwsd_session_count(const struct cwsd *d);

/* Clients attached to a session: a client is in at most one; joining another leaves the
 * first. The session's idle timer runs while it has none. */
int cwsd_session_attach(struct cwsd_client *c, struct cwsd_session *s, struct cws_error *err);
void cwsd_session_detach(struct cwsd_client *c);
size_t cwsd_session_clients(const struct cwsd_session *s);
/* Arm the idle timer when nobody is attached (after a restart, for every session). */
void cwsd_session_check_idle(struct cwsd_session *s);

/* params of a sandbox.create with the session's defaults merged into params.config (explicit
 * values win; env and annotations merge key by key; tags merge, defaults first, without
 * repeats). *ret_params lives in zone. */
int cwsd_session_merge_params(const struct cwsd_session *s, const msgpack_object *params,
                              msgpack_zone *zone, msgpack_object *ret_params,
                              struct cws_error *err);

/* How a close went: the sandboxes stopped and the ids that could not be (with why). */
typedef void (*cwsd_session_closed_fn)(void *ud, size_t stopped, char *const *failed,
                                       size_t n_failed);
/* Close s. It is gone at once (a create naming it later opens a new one). With stop, every
 * sandbox of it but detached ones is stopped in parallel, each waited for until it has
 * ended, then done (may be NULL) is called; without, its sandboxes become detached. */
void cwsd_session_close(struct cwsd_session *s, bool stop, cwsd_session_closed_fn done, void *ud);

/* Pack {name, sandboxes: [ids], clients, idle_ttl_s, created_ms, defaults?}. */
int cwsd_session_pack(msgpack_packer *pk, const struct cwsd_session *s);

#endif
