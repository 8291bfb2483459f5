/* Reconciliation with the backend; see recovery.h. The backend's listing by the owner tag is
 * the truth about what runs; the registry says who owns it. A sandbox the registry does not
 * know (it was lost or corrupt) is classified by the daemon's tags: a session tag puts it back
 * in that session, the detached tag keeps it, anything else was a client's and is an orphan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include "backend_rpc.h"
#include "daemon.h"
#include "reaper.h"
#include "recovery.h"
#include "registry.h"
#include "sandbox_table.h"
#include "session.h"

#define RESEND_DELAY_S 5
#define CREATE_CALL_MS 60000
#define LIST_CALL_MS   60000
#define LIST_PAGES_MAX 100
#define LIST_PAGE_SIZE 1000

typedef Coreweave__Sandbox__V1__Sandbox Sandbox;

#define RELIST_DELAY_S 30

static struct event *resend_timer;
static struct event *relist_timer;

/* Without /etc/machine-id (some containers): the host name, hashed to the same shape. */
static void host_id(char hex[SD_ID128_STRING_MAX])
{
    char host[256] = "";
    uint64_t h1 = 1469598103934665603ull, h2 = 0x9e3779b97f4a7c15ull;
    gethostname(host, sizeof(host) - 1);
    for (const unsigned char *p = (const unsigned char *)host; *p; p++) {
        h1 = (h1 ^ *p) * 1099511628211ull;
        h2 = (h2 ^ *p) * 0x100000001b3ull + 0x51;
    }
    snprintf(hex, SD_ID128_STRING_MAX, "%016llx%016llx", (unsigned long long)h1,
             (unsigned long long)h2);
}

void cwsd_owner_tag_init(struct cwsd *d)
{
    sd_id128_t id;
    char hex[SD_ID128_STRING_MAX];
    int r = sd_id128_get_machine(&id);
    if (r >= 0) {
        sd_id128_to_string(id, hex);
    } else {
        host_id(hex);
        cws_log(CWS_LOG_WARN,
                "no machine id (/etc/machine-id: %s): the owner tag uses the host "
                "name instead",
                strerror(-r));
    }
    snprintf(d->owner_tag, sizeof(d->owner_tag), CWSD_TAG_OWNER "%s.%u", hex, (unsigned)getuid());
}

/* ---- creates in flight ---- */

static void on_resent(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct cwsd_pending *p = ud;
    struct cwsd *d = p->d;
    p->sending = false;
    cwsd_create_finished(d, p, (const Sandbox *)resp, err);
}

static void resend(struct cwsd *d, struct cwsd_pending *p)
{
    struct cws_error err;
    Coreweave__Sandbox__V1__CreateSandboxRequest *req =
        coreweave__sandbox__v1__create_sandbox_request__unpack(NULL, p->request_len, p->request);
    if (!req) {
        cwsd_log_about(CWS_LOG_ERROR, NULL, p->session, 0,
                       "the create %s in the registry cannot be read: dropped", p->request_id);
        cwsd_registry_note_create_failed(d, p);
        return;
    }
    cwsd_log_about(CWS_LOG_INFO, NULL, p->session, 0,
                   "sending the create %s again (it was in flight)", p->request_id);
    p->d = d;
    p->sending = true;
    if (cwsd_rpc_unary(d, "CreateSandbox", &req->base, &coreweave__sandbox__v1__sandbox__descriptor,
                       CREATE_CALL_MS, on_resent, p, &err) < 0) {
        p->sending = false;
        cwsd_log_about(CWS_LOG_WARN, NULL, p->session, 0, "cannot send the create %s: %s",
                       p->request_id, err.message);
        cwsd_recover_later(d);
    }
    coreweave__sandbox__v1__create_sandbox_request__free_unpacked(req, NULL);
}

static void resend_pending(struct cwsd *d)
{
    /* resend() may free p (and unlink it) when it cannot be read: walk a snapshot. */
    size_t n = 0;
    for (struct cwsd_pending *p = d->pending; p; p = p->next)
        n += !p->sending;
    struct cwsd_pending **v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return;
    n = 0;
    for (struct cwsd_pending *p = d->pending; p; p = p->next)
        if (!p->sending)
            v[n++] = p;
    for (size_t i = 0; i < n; i++)
        resend(d, v[i]);
    free(v);
}

static void on_resend_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    resend_pending(ud);
}

void cwsd_recover_later(struct cwsd *d)
{
    if (!resend_timer && !(resend_timer = evtimer_new(d->base, on_resend_timer, d)))
        return;
    if (!evtimer_pending(resend_timer, NULL)) {
        struct timeval tv = {RESEND_DELAY_S, 0};
        evtimer_add(resend_timer, &tv);
    }
}

void cwsd_recover_stop(struct cwsd *d)
{
    (void)d;
    if (resend_timer)
        event_free(resend_timer);
    if (relist_timer)
        event_free(relist_timer);
    resend_timer = relist_timer = NULL;
}

/* ---- the listing ---- */

struct listing {
    struct cwsd *d;
    Coreweave__Sandbox__V1__ListSandboxesRequest req;
    char *tags[1];
    char *token;
    int pages;
};

static bool has_tag(const Sandbox *sb, const char *tag)
{
    for (size_t i = 0; sb->spec && i < sb->spec->n_tags; i++)
        if (strcmp(sb->spec->tags[i], tag) == 0)
            return true;
    return false;
}

static const char *session_of_tags(const Sandbox *sb)
{
    size_t n = strlen(CWSD_TAG_SESSION);
    for (size_t i = 0; sb->spec && i < sb->spec->n_tags; i++)
        if (strncmp(sb->spec->tags[i], CWSD_TAG_SESSION, n) == 0 && sb->spec->tags[i][n])
            return sb->spec->tags[i] + n;
    return NULL;
}

/* A sandbox of ours the registry did not know: its tags say whose it was. */
static void adopt_unknown(struct cwsd *d, const Sandbox *sb)
{
    struct cws_error err;
    struct cwsd_session *s = NULL;
    const char *session = session_of_tags(sb);
    struct cwsd_sandbox *e = cwsd_sandbox_track(d, sb->sandbox_id);
    if (!e)
        return;
    if (has_tag(sb, CWSD_TAG_DETACHED)) {
        e->owner = CWSD_OWNER_DETACHED;
    } else if (session && cwsd_session_name_valid(session, "session", &err) &&
               cwsd_session_get_or_new(d, session, &s, &err) == 0) {
        e->owner = CWSD_OWNER_SESSION;
        e->session = strdup(session);
    } else {
        e->owner = CWSD_OWNER_CLIENT; /* its client cannot have outlived the daemon */
    }
    cwsd_log_about(CWS_LOG_WARN, e->id, e->session, 0,
                   "sandbox %s runs under this daemon's owner tag but is not in the registry: "
                   "taken back as %s",
                   e->id, cwsd_owner_name(e->owner));
    cwsd_registry_note_owner(d, e);
}

static void reconcile_listed(struct cwsd *d, const Sandbox *sb)
{
    struct cwsd_sandbox *e = cwsd_sandbox_find(d, sb->sandbox_id);
    if (!e)
        adopt_unknown(d, sb);
    else
        e->unconfirmed = false;
    cwsd_sandbox_remember(d, sb);
}

/* The listing is complete: what the registry held that no longer runs is forgotten, and what
 * runs without a live owner becomes an orphan (stopped after the grace, checked again then). */
static void finish(struct cwsd *d)
{
    struct cwsd_sandbox *next;
    for (struct cwsd_sandbox *e = d->sandboxes; e; e = next) {
        next = e->next;
        if (e->unconfirmed) {
            cwsd_log_about(CWS_LOG_INFO, e->id, e->session, 0,
                           "sandbox %s of the registry has ended meanwhile", e->id);
            cwsd_sandbox_forget(d, e->id);
            continue;
        }
        if (cwsd_reaper_unowned(d, e))
            cwsd_reaper_orphan(d, e);
    }
    for (struct cwsd_session *s = d->sessions; s; s = s->next)
        cwsd_session_check_idle(s);
    d->recovering = false;
    cws_log(CWS_LOG_INFO, "recovery done: %zu sandboxes tracked, %zu sessions", d->n_sandboxes,
            cwsd_session_count(d));
}

static void on_relist(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    cwsd_recover_start(ud);
}

static void relist_later(struct cwsd *d)
{
    struct timeval tv = {RELIST_DELAY_S, 0};
    if (!relist_timer && !(relist_timer = evtimer_new(d->base, on_relist, d)))
        return;
    evtimer_add(relist_timer, &tv);
}

static void listing_free(struct listing *l)
{
    free(l->token);
    free(l);
}

static void request_page(struct listing *l);

static void on_page(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct listing *l = ud;
    struct cwsd *d = l->d;
    const Coreweave__Sandbox__V1__ListSandboxesResponse *r =
        (const Coreweave__Sandbox__V1__ListSandboxesResponse *)resp;
    if (err) {
        /* Nothing is stopped on a partial view: the whole listing is tried again later. */
        cws_log(CWS_LOG_WARN,
                "recovery: cannot list the backend's sandboxes: %s; trying again in %d s",
                err->message, RELIST_DELAY_S);
        listing_free(l);
        relist_later(d);
        return;
    }
    for (size_t i = 0; i < r->n_sandboxes; i++)
        reconcile_listed(d, r->sandboxes[i]);
    if (!r->next_page_token[0] || ++l->pages >= LIST_PAGES_MAX ||
        (l->token && strcmp(l->token, r->next_page_token) == 0)) {
        finish(d);
        listing_free(l);
        return;
    }
    free(l->token);
    l->token = strdup(r->next_page_token);
    request_page(l);
}

static void request_page(struct listing *l)
{
    struct cws_error err;
    l->req.page_token = l->token ? l->token : (char *)"";
    if (cwsd_rpc_unary(l->d, "ListSandboxes", &l->req.base,
                       &coreweave__sandbox__v1__list_sandboxes_response__descriptor, LIST_CALL_MS,
                       on_page, l, &err) < 0)
        on_page(l, NULL, &err);
}

void cwsd_recover_start(struct cwsd *d)
{
    struct listing *l = calloc(1, sizeof(*l));
    if (!l)
        return;
    l->d = d;
    coreweave__sandbox__v1__list_sandboxes_request__init(&l->req);
    l->tags[0] = d->owner_tag;
    l->req.tags = l->tags;
    l->req.n_tags = 1;
    l->req.page_size = LIST_PAGE_SIZE;
    for (struct cwsd_sandbox *e = d->sandboxes; e; e = e->next)
        e->unconfirmed = true;
    d->recovering = true;
    resend_pending(d);
    request_page(l);
}
