/* Sessions: the table, clients attached, the idle TTL and defaults merging; see session.h.
 * Closing one (stopping its sandboxes) is in session_close.c, the methods in
 * method_session.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "registry.h"
#include "rpc_encode.h"
#include "rpc_params.h"
#include "sandbox_table.h"
#include "session.h"

bool cwsd_session_name_valid(const char *name, const char *param, struct cws_error *err)
{
    size_t n = strlen(name);
    bool ok = n > 0 && n <= CWSD_SESSION_NAME_MAX && isalnum((unsigned char)name[n - 1]);
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)name[i]) || strchr("._-", name[i]);
    if (!ok)
        cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                      "%s must be 1-%d characters of [A-Za-z0-9._-] ending in a letter or digit",
                      param, CWSD_SESSION_NAME_MAX);
    return ok;
}

void cwsd_session_tag(const char *name, char buf[CWSD_TAG_MAX])
{
    snprintf(buf, CWSD_TAG_MAX, CWSD_TAG_SESSION "%s", name);
}

struct cwsd_session *cwsd_session_find(struct cwsd *d, const char *name)
{
    for (struct cwsd_session *s = d->sessions; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

size_t cwsd_session_count(const struct cwsd *d)
{
    size_t n = 0;
    for (const struct cwsd_session *s = d->sessions; s; s = s->next)
        n++;
    return n;
}

size_t cwsd_session_clients(const struct cwsd_session *s)
{
    size_t n = 0;
    for (const struct cwsd_client *c = s->d->clients; c; c = c->next)
        if (c->session && !c->closing && strcmp(c->session, s->name) == 0)
            n++;
    return n;
}

static void on_idle(evutil_socket_t fd, short what, void *ud)
{
    struct cwsd_session *s = ud;
    (void)fd;
    (void)what;
    if (cwsd_session_clients(s) > 0)
        return;
    cwsd_log_about(CWS_LOG_INFO, NULL, s->name, 0,
                   "session %s idled past its TTL of %g s: closing it", s->name, s->idle_ttl_s);
    cwsd_session_close(s, true, NULL, NULL);
}

void cwsd_session_check_idle(struct cwsd_session *s)
{
    if (!s->idle_timer || s->idle_ttl_s <= 0)
        return;
    if (cwsd_session_clients(s) > 0) {
        evtimer_del(s->idle_timer);
        return;
    }
    /* A TTL from a hand-edited registry may be anything: past CWSD_SESSION_TTL_MAX it is
     * that (some 31 years), which also keeps the conversion defined. */
    double ttl = s->idle_ttl_s < CWSD_SESSION_TTL_MAX ? s->idle_ttl_s : CWSD_SESSION_TTL_MAX;
    struct timeval tv = {(time_t)ttl, (suseconds_t)((ttl - (double)(time_t)ttl) * 1e6)};
    evtimer_add(s->idle_timer, &tv);
}

static void session_free(struct cwsd_session *s)
{
    if (!s)
        return;
    if (s->idle_timer)
        event_free(s->idle_timer);
    free(s->name);
    free(s->defaults);
    free(s);
}

static int pack_defaults(const msgpack_object *defaults, struct cwsd_session *s)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *defaults) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return -CWS_E_NOMEM;
    }
    s->defaults_len = sb.size; /* before the release, which zeroes it */
    s->defaults = (uint8_t *)msgpack_sbuffer_release(&sb);
    return 0;
}

int cwsd_session_new(struct cwsd *d, const char *name, const msgpack_object *defaults,
                     double idle_ttl_s, int64_t created_ms, struct cwsd_session **ret,
                     struct cws_error *err)
{
    if (defaults && defaults->type != MSGPACK_OBJECT_MAP)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "defaults must be a map");
    struct cwsd_session *s = calloc(1, sizeof(*s));
    if (!s || !(s->name = strdup(name)) || (defaults && pack_defaults(defaults, s) < 0) ||
        !(s->idle_timer = evtimer_new(d->base, on_idle, s))) {
        session_free(s);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    s->d = d;
    s->idle_ttl_s = idle_ttl_s;
    s->created_ms = created_ms;
    /* Linked first: a compaction triggered by this very note must include it. */
    s->next = d->sessions;
    d->sessions = s;
    int r = cwsd_registry_note_session(d, s, err);
    if (r < 0) {
        d->sessions = s->next;
        session_free(s);
        return r;
    }
    cwsd_session_check_idle(s);
    *ret = s;
    return 0;
}

int cwsd_session_get_or_new(struct cwsd *d, const char *name, struct cwsd_session **ret,
                            struct cws_error *err)
{
    struct cwsd_session *s = cwsd_session_find(d, name);
    if (s) {
        *ret = s;
        return 0;
    }
    int r = cwsd_session_new(d, name, NULL, d->cfg.session_idle_ttl_s, cwsd_wall_ms(), ret, err);
    if (r == 0)
        cwsd_log_about(CWS_LOG_INFO, NULL, name, 0, "opened session %s", name);
    return r;
}

void cwsd_session_remove(struct cwsd_session *s)
{
    struct cwsd *d = s->d;
    for (struct cwsd_session **p = &d->sessions; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    cwsd_registry_note_session_closed(d, s->name);
    session_free(s);
}

void cwsd_sessions_free(struct cwsd *d)
{
    while (d->sessions) {
        struct cwsd_session *s = d->sessions;
        d->sessions = s->next;
        session_free(s);
    }
}

int cwsd_session_attach(struct cwsd_client *c, struct cwsd_session *s, struct cws_error *err)
{
    if (c->session && strcmp(c->session, s->name) == 0)
        return 0;
    char *name = strdup(s->name);
    if (!name)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    cwsd_session_detach(c);
    c->session = name;
    cwsd_session_check_idle(s);
    return 0;
}

void cwsd_session_detach(struct cwsd_client *c)
{
    if (!c->session)
        return;
    struct cwsd_session *s = cwsd_session_find(c->d, c->session);
    free(c->session);
    c->session = NULL;
    if (s)
        cwsd_session_check_idle(s);
}

/* ---- defaults ---- */

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static bool key_is(const msgpack_object *k, const char *key)
{
    size_t n = strlen(key);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, key, n) == 0;
}

/* Key by key, explicit entries last so they win (the request parser keeps the last one). */
static int merge_maps(const msgpack_object *dflt, const msgpack_object *expl, msgpack_zone *zone,
                      msgpack_object *ret)
{
    uint32_t n = dflt->via.map.size + expl->via.map.size;
    msgpack_object_kv *kv = msgpack_zone_malloc(zone, (n ? n : 1) * sizeof(*kv));
    if (!kv)
        return -CWS_E_NOMEM;
    uint32_t k = 0;
    for (uint32_t i = 0; i < dflt->via.map.size; i++) {
        const msgpack_object *key = &dflt->via.map.ptr[i].key;
        bool overridden = false;
        for (uint32_t j = 0; j < expl->via.map.size && !overridden; j++)
            overridden = msgpack_object_equal(*key, expl->via.map.ptr[j].key);
        if (!overridden)
            kv[k++] = dflt->via.map.ptr[i];
    }
    for (uint32_t j = 0; j < expl->via.map.size; j++)
        kv[k++] = expl->via.map.ptr[j];
    ret->type = MSGPACK_OBJECT_MAP;
    ret->via.map.ptr = kv;
    ret->via.map.size = k;
    return 0;
}

/* Defaults first, then explicit ones not already there: the backend refuses repeated tags. */
static int merge_tags(const msgpack_object *dflt, const msgpack_object *expl, msgpack_zone *zone,
                      msgpack_object *ret)
{
    uint32_t n = dflt->via.array.size + expl->via.array.size;
    msgpack_object *v = msgpack_zone_malloc(zone, (n ? n : 1) * sizeof(*v));
    if (!v)
        return -CWS_E_NOMEM;
    uint32_t k = 0;
    const msgpack_object *parts[] = {dflt, expl};
    for (int p = 0; p < 2; p++) {
        for (uint32_t i = 0; i < parts[p]->via.array.size; i++) {
            bool seen = false;
            for (uint32_t j = 0; j < k && !seen; j++)
                seen = msgpack_object_equal(v[j], parts[p]->via.array.ptr[i]);
            if (!seen)
                v[k++] = parts[p]->via.array.ptr[i];
        }
    }
    ret->type = MSGPACK_OBJECT_ARRAY;
    ret->via.array.ptr = v;
    ret->via.array.size = k;
    return 0;
}

/* The value of an explicit key, combined with the default's when both can merge. */
static int merge_value(const msgpack_object_kv *expl, const msgpack_object *dflt_val,
                       msgpack_zone *zone, msgpack_object *ret)
{
    *ret = expl->val;
    if (!dflt_val)
        return 0;
    if ((key_is(&expl->key, "env") || key_is(&expl->key, "annotations")) &&
        expl->val.type == MSGPACK_OBJECT_MAP && dflt_val->type == MSGPACK_OBJECT_MAP)
        return merge_maps(dflt_val, &expl->val, zone, ret);
    if (key_is(&expl->key, "tags") && expl->val.type == MSGPACK_OBJECT_ARRAY &&
        dflt_val->type == MSGPACK_OBJECT_ARRAY)
        return merge_tags(dflt_val, &expl->val, zone, ret);
    return 0;
}

static int merge_config(const msgpack_object *dflt, const msgpack_object *expl, msgpack_zone *zone,
                        msgpack_object *ret)
{
    int r = merge_maps(dflt, expl, zone, ret);
    /* The explicit entries are the last expl->via.map.size ones. */
    uint32_t first = ret->via.map.size - expl->via.map.size;
    for (uint32_t i = 0; r == 0 && i < expl->via.map.size; i++) {
        const msgpack_object_kv *e = &expl->via.map.ptr[i];
        const msgpack_object *dv = NULL;
        for (uint32_t j = 0; j < dflt->via.map.size && !dv; j++)
            if (msgpack_object_equal(dflt->via.map.ptr[j].key, e->key))
                dv = &dflt->via.map.ptr[j].val;
        r = merge_value(e, dv, zone, &ret->via.map.ptr[first + i].val);
    }
    return r;
}

int cwsd_session_merge_params(const struct cwsd_session *s, const msgpack_object *params,
                              msgpack_zone *zone, msgpack_object *ret_params, struct cws_error *err)
{
    static const msgpack_object empty_map = {.type = MSGPACK_OBJECT_MAP};
    msgpack_object dflt;
    if (!s->defaults) {
        *ret_params = *params;
        return 0;
    }
    size_t off = 0;
    if (msgpack_unpack((const char *)s->defaults, s->defaults_len, &off, zone, &dflt) !=
            MSGPACK_UNPACK_SUCCESS ||
        dflt.type != MSGPACK_OBJECT_MAP)
        return cws_error_set(err, CWS_E_INTERNAL, "session %s has unreadable defaults", s->name);
    const msgpack_object *expl =
        params->type == MSGPACK_OBJECT_MAP ? map_get(params, "config") : NULL;
    if (!expl || expl->type != MSGPACK_OBJECT_MAP)
        expl = &empty_map; /* a config of another type is refused by the request builder */
    msgpack_object merged;
    uint32_t n = params->type == MSGPACK_OBJECT_MAP ? params->via.map.size : 0;
    msgpack_object_kv *kv = msgpack_zone_malloc(zone, (n + 1) * sizeof(*kv));
    if (!kv || merge_config(&dflt, expl, zone, &merged) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!key_is(&params->via.map.ptr[i].key, "config"))
            kv[k++] = params->via.map.ptr[i];
    kv[k].key.type = MSGPACK_OBJECT_STR;
    kv[k].key.via.str.ptr = "config";
    kv[k].key.via.str.size = 6;
    kv[k++].val = merged;
    ret_params->type = MSGPACK_OBJECT_MAP;
    ret_params->via.map.ptr = kv;
    ret_params->via.map.size = k;
    return 0;
}

/* ---- answers ---- */

int cwsd_session_pack(msgpack_packer *pk, const struct cwsd_session *s)
{
    size_t n = 0;
    for (const struct cwsd_sandbox *e = s->d->sandboxes; e; e = e->next)
        if (e->session && strcmp(e->session, s->name) == 0)
            n++;
    if (msgpack_pack_map(pk, s->defaults ? 6 : 5) || cws_rpc_pack_kv_cstr(pk, "name", s->name) ||
        cws_rpc_pack_cstr(pk, "sandboxes") || msgpack_pack_array(pk, n))
        return -CWS_E_NOMEM;
    for (const struct cwsd_sandbox *e = s->d->sandboxes; e; e = e->next)
        if (e->session && strcmp(e->session, s->name) == 0 && cws_rpc_pack_cstr(pk, e->id))
            return -CWS_E_NOMEM;
    if (cws_rpc_pack_kv_uint(pk, "clients", cwsd_session_clients(s)) ||
        cws_rpc_pack_cstr(pk, "idle_ttl_s") || msgpack_pack_double(pk, s->idle_ttl_s) ||
        cws_rpc_pack_kv_int(pk, "created_ms", s->created_ms))
        return -CWS_E_NOMEM;
    /* The defaults are kept packed: copy their bytes as they are. */
    if (s->defaults && (cws_rpc_pack_cstr(pk, "defaults") ||
                        pk->callback(pk->data, (const char *)s->defaults, s->defaults_len) < 0))
        return -CWS_E_NOMEM;
    return 0;
}
