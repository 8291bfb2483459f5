/* The life of a sandbox record: CREATING → RUNNING → (TERMINATING →) COMPLETED | FAILED,
 * driven by the runtime's events and by stop requests. Every change is persisted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "service.h"

#define STATE(x) COREWEAVE__SANDBOX__V1__STATE__STATE_##x

/* The command a sandbox runs when its spec names none: stay up until asked to stop, and
 * end cleanly then (what the official SDKs use as their default too). */
static const char *const keep_alive_argv[] = {
    "/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep infinity & wait", NULL};

struct lsb_waiter {
    struct lsb *sb;
    lsb_ready_fn fn;
    void *ud;
    bool notifying;
    bool cancelled;
    struct lsb_waiter *next;
};

struct lsb_end_listener {
    struct lsb *sb;
    void (*fn)(struct lsb *sb, void *ud);
    void *ud;
    struct lsb_end_listener *next;
};

int64_t svc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t svc_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void notify_waiters(struct lsb *sb, const struct cws_error *err)
{
    struct lsb_waiter *list = sb->waiters;
    sb->waiters = NULL;
    for (struct lsb_waiter *w = list; w; w = w->next)
        w->notifying = true;
    while (list) {
        struct lsb_waiter *w = list;
        list = w->next;
        if (!w->cancelled)
            w->fn(sb, err, w->ud);
        free(w);
    }
}

int lsb_when_running(struct lsb *sb, lsb_ready_fn fn, void *ud, struct lsb_waiter **ret_waiter,
                     struct cws_error *err)
{
    if (sb->state == STATE(RUNNING) && sb->rt)
        return 0;
    if (sb->state != STATE(CREATING) && sb->state != STATE(PENDING)) {
        cws_error_set(err, CWS_E_FAILED_PRECONDITION, "sandbox %s is not running", sb->id);
        cws_error_set_reason(err, "CWSANDBOX_SANDBOX_NOT_RUNNING");
        return -CWS_E_FAILED_PRECONDITION;
    }
    struct lsb_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    w->sb = sb;
    w->fn = fn;
    w->ud = ud;
    w->next = sb->waiters;
    sb->waiters = w;
    *ret_waiter = w;
    return 1;
}

void lsb_wait_cancel(struct lsb_waiter *w)
{
    if (!w)
        return;
    if (w->notifying) {
        w->cancelled = true; /* notify_waiters frees it */
        return;
    }
    for (struct lsb_waiter **p = &w->sb->waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            free(w);
            return;
        }
    }
}

static void set_reason(struct lsb *sb, const char *reason)
{
    char *text = NULL;
    if (sb->notes && reason) {
        if (asprintf(&text, "%s; %s", reason, sb->notes) < 0)
            text = NULL;
    } else if (reason || sb->notes) {
        text = strdup(reason ? reason : sb->notes);
    }
    free(sb->state_reason);
    sb->state_reason = text;
}

static void on_running(struct cws_rt_sandbox *rt, void *ud)
{
    struct lsb *sb = ud;
    (void)rt;
    sb->start_ns = svc_now_ns();
    if (sb->state == STATE(CREATING))
        sb->state = STATE(RUNNING);
    cws_log(CWS_LOG_INFO, "sandbox %s is running", sb->id);
    lsb_persist(sb);
    notify_waiters(sb, NULL);
}

struct lsb_end_listener *lsb_on_end(struct lsb *sb, void (*fn)(struct lsb *sb, void *ud), void *ud)
{
    struct lsb_end_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->sb = sb;
    l->fn = fn;
    l->ud = ud;
    l->next = sb->end_listeners;
    sb->end_listeners = l;
    return l;
}

void lsb_on_end_cancel(struct lsb_end_listener *l)
{
    if (!l)
        return;
    for (struct lsb_end_listener **p = &l->sb->end_listeners; *p; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            free(l);
            return;
        }
    }
}

/* Tell the listeners, while the runtime handle still exists (they may read the log). Each
 * is removed before it runs, so it may cancel or add others. */
static void notify_end_listeners(struct lsb *sb)
{
    while (sb->end_listeners) {
        struct lsb_end_listener *l = sb->end_listeners;
        sb->end_listeners = l->next;
        void (*fn)(struct lsb *, void *) = l->fn;
        void *ud = l->ud;
        free(l);
        fn(sb, ud);
    }
}

/* Record the end of a sandbox: COMPLETED for exit 0, FAILED otherwise. */
static void mark_ended(struct lsb *sb, int exit_code, const char *reason)
{
    struct cws_error err;
    sb->end_ns = svc_now_ns();
    sb->has_exit_code = exit_code >= 0;
    sb->exit_code = exit_code;
    sb->state = exit_code == 0 ? STATE(COMPLETED) : STATE(FAILED);
    set_reason(sb, reason);
    notify_end_listeners(sb);
    cws_rt_sandbox_release(sb->rt);
    sb->rt = NULL;
    cws_log(CWS_LOG_INFO, "sandbox %s ended with exit code %d%s%s", sb->id, exit_code,
            reason ? ": " : "", reason ? reason : "");
    lsb_persist(sb);
    cws_error_set(&err, CWS_E_FAILED_PRECONDITION, "sandbox %s ended before it was running%s%s",
                  sb->id, reason ? ": " : "", reason ? reason : "");
    cws_error_set_reason(&err, "CWSANDBOX_SANDBOX_NOT_RUNNING");
    notify_waiters(sb, &err);
}

static void on_exit_event(struct cws_rt_sandbox *rt, int exit_code, const char *reason, void *ud)
{
    (void)rt;
    mark_ended(ud, exit_code, reason);
}

static const struct cws_rt_sandbox_events rt_events = {
    .on_running = on_running,
    .on_exit = on_exit_event,
};

static int make_id(char *buf, size_t size)
{
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
        return -CWS_E_INTERNAL;
    snprintf(buf, size, "sbx-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5], rnd[6], rnd[7]);
    return 0;
}

static const Coreweave__Sandbox__V1__Container *primary_container(const SandboxSpec *spec)
{
    for (size_t i = 0; i < spec->n_containers; i++)
        if (spec->primary_container[0] &&
            strcmp(spec->containers[i]->name, spec->primary_container) == 0)
            return spec->containers[i];
    return spec->n_containers > 0 ? spec->containers[0] : NULL;
}

/* Everything a cws_rt_spec points to, so it can be freed in one place. */
struct rt_spec_storage {
    struct cws_rt_spec spec;
    const char **argv;
    char **env;
    struct cws_rt_file *files;
    int *ports;
};

static void rt_spec_clear(struct rt_spec_storage *s)
{
    svc_env_vector_free(s->env);
    free(s->argv);
    free(s->files);
    free(s->ports);
}

static int build_argv(const Coreweave__Sandbox__V1__Container *c, struct rt_spec_storage *s)
{
    size_t n = (c->command[0] ? 1 : 0) + c->n_args;
    if (n == 0) {
        s->spec.argv = keep_alive_argv;
        return 0;
    }
    s->argv = calloc(n + 1, sizeof(*s->argv));
    if (!s->argv)
        return -CWS_E_NOMEM;
    size_t i = 0;
    if (c->command[0])
        s->argv[i++] = c->command;
    for (size_t j = 0; j < c->n_args; j++)
        s->argv[i++] = c->args[j];
    s->spec.argv = s->argv;
    return 0;
}

static int build_env(const Coreweave__Sandbox__V1__Container *c, struct rt_spec_storage *s)
{
    int r = svc_env_vector((void *const *)c->environment_variables, c->n_environment_variables,
                           &s->env);
    if (r == 0)
        s->spec.env = (const char *const *)s->env;
    return r;
}

static int build_files_and_ports(const SandboxSpec *spec,
                                 const Coreweave__Sandbox__V1__Container *c,
                                 struct rt_spec_storage *s)
{
    s->files = calloc(c->n_files + 1, sizeof(*s->files));
    s->ports = calloc(spec->n_services + 1, sizeof(*s->ports));
    if (!s->files || !s->ports)
        return -CWS_E_NOMEM;
    for (size_t i = 0; i < c->n_files; i++) {
        s->files[i].path = c->files[i]->path;
        s->files[i].data = c->files[i]->content.data;
        s->files[i].len = c->files[i]->content.len;
    }
    s->spec.files = s->files;
    s->spec.n_files = c->n_files;
    for (size_t i = 0; i < spec->n_services; i++)
        s->ports[i] = spec->services[i]->port;
    s->spec.ports = s->ports;
    s->spec.n_ports = spec->n_services;
    return 0;
}

static const char *limit_of(const Coreweave__Sandbox__V1__Container *c, bool cpu)
{
    const Coreweave__Sandbox__V1__Resources *r = NULL;
    if (c->resource_requirements && c->resource_requirements->limits)
        r = c->resource_requirements->limits;
    else if (c->resources)
        r = c->resources;
    const char *v = r ? (cpu ? r->cpu : r->memory) : NULL;
    return v && v[0] ? v : NULL;
}

static bool deny_egress(const SandboxSpec *spec)
{
    return spec->network &&
           spec->network->_deny_egress_case ==
               COREWEAVE__SANDBOX__V1__NETWORK_OPTIONS___DENY_EGRESS_DENY_EGRESS &&
           spec->network->deny_egress;
}

static int build_rt_spec(const struct lsb *sb, struct rt_spec_storage *s)
{
    const Coreweave__Sandbox__V1__Container *c = primary_container(sb->spec);
    memset(s, 0, sizeof(*s));
    if (!c)
        return -CWS_E_INVALID_ARGUMENT;
    s->spec.id = sb->id;
    s->spec.image = c->image;
    s->spec.cwd = c->working_dir[0] ? c->working_dir : NULL;
    s->spec.deny_egress = deny_egress(sb->spec);
    s->spec.cpu_limit = limit_of(c, true);
    s->spec.memory_limit = limit_of(c, false);
    s->spec.max_lifetime_s = sb->spec->max_lifetime_seconds;
    int r = build_argv(c, s);
    if (r == 0)
        r = build_env(c, s);
    if (r == 0)
        r = build_files_and_ports(sb->spec, c, s);
    return r;
}

static void start_runtime(struct lsb *sb)
{
    struct rt_spec_storage s;
    struct cws_error err;
    char *notes = NULL;

    cws_error_clear(&err);
    int r = build_rt_spec(sb, &s);
    if (r < 0)
        cws_error_set(&err, (enum cws_errcode) - r, "cannot prepare the sandbox");
    else
        r = cws_rt_sandbox_start(sb->svc->rt, &s.spec, &rt_events, sb, &sb->rt, &notes, &err);
    rt_spec_clear(&s);
    if (notes && notes[0]) {
        free(sb->notes);
        sb->notes = notes;
        set_reason(sb, NULL);
    } else {
        free(notes);
    }
    if (r < 0) {
        cws_log(CWS_LOG_WARN, "sandbox %s failed to start: %s", sb->id, err.message);
        sb->rt = NULL;
        mark_ended(sb, -1, err.message);
    }
}

int lsb_create(struct svc *svc, const Coreweave__Sandbox__V1__CreateSandboxRequest *req,
               struct lsb **ret, struct cws_error *err)
{
    char id[40];
    if (make_id(id, sizeof(id)) < 0)
        return cws_error_set(err, CWS_E_INTERNAL, "no randomness for a sandbox id");
    struct lsb *sb = calloc(1, sizeof(*sb));
    if (!sb)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    sb->svc = svc;
    sb->id = strdup(id);
    sb->spec = lsb_copy_spec(req->sandbox->spec);
    sb->request_id = req->request_id[0] ? strdup(req->request_id) : NULL;
    sb->state = STATE(CREATING);
    sb->create_ns = svc_now_ns();
    if (!sb->id || !sb->spec || (req->request_id[0] && !sb->request_id)) {
        lsb_free(sb);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    sb->next = svc->sandboxes;
    svc->sandboxes = sb;
    svc->n_sandboxes++;
    /* Persist first, so a crash during start still leaves a record to clean up. */
    lsb_persist(sb);
    start_runtime(sb);
    *ret = sb;
    return 0;
}

void lsb_stop(struct lsb *sb, int32_t grace_s)
{
    if (lsb_is_terminal(sb))
        return;
    if (grace_s < 0)
        grace_s = 0;
    if (sb->state != STATE(TERMINATING)) {
        sb->state = STATE(TERMINATING);
        sb->stop_requested_ms = svc_now_ns() / 1000000;
        sb->stop_grace_s = grace_s;
        lsb_persist(sb);
    }
    if (!sb->rt) {
        mark_ended(sb, -1, "stopped before it started");
        return;
    }
    cws_log(CWS_LOG_INFO, "stopping sandbox %s with a grace period of %d s", sb->id, grace_s);
    cws_rt_sandbox_stop(sb->rt, (int64_t)grace_s * 1000);
}

static void attach_one(struct svc *svc, struct lsb *sb)
{
    struct cws_error err;
    if (cws_rt_sandbox_attach(svc->rt, sb->id, &rt_events, sb, &sb->rt, &err) < 0) {
        sb->rt = NULL;
        mark_ended(sb, -1, "lost while cwsandbox-local was not running");
        return;
    }
    if (sb->state == STATE(CREATING)) {
        /* It was being created when the server stopped; it runs now. */
        sb->state = STATE(RUNNING);
        if (!sb->start_ns)
            sb->start_ns = svc_now_ns();
        lsb_persist(sb);
    }
    if (sb->state == STATE(TERMINATING) && sb->rt) {
        int64_t left_ms =
            sb->stop_requested_ms + (int64_t)sb->stop_grace_s * 1000 - svc_now_ns() / 1000000;
        cws_rt_sandbox_stop(sb->rt, left_ms > 0 ? left_ms : 0);
    }
}

void lsb_attach_all(struct svc *svc)
{
    struct lsb *next;
    for (struct lsb *sb = svc->sandboxes; sb; sb = next) {
        next = sb->next;
        if (!lsb_is_terminal(sb))
            attach_one(svc, sb);
    }
}

void lsb_expire(struct svc *svc)
{
    int64_t cutoff = svc_now_ns() - svc->opt.retention_s * 1000000000;
    struct lsb *next;
    for (struct lsb *sb = svc->sandboxes; sb; sb = next) {
        next = sb->next;
        if (!lsb_is_terminal(sb) || sb->end_ns == 0 || sb->end_ns > cutoff || sb->busy > 0)
            continue;
        struct cws_error err;
        if (cws_rt_sandbox_remove(svc->rt, sb->id, &err) < 0 && err.code != CWS_E_NOT_FOUND)
            cws_log(CWS_LOG_WARN, "cannot remove sandbox %s: %s", sb->id, err.message);
        cws_log(CWS_LOG_DEBUG, "forgetting sandbox %s (ended more than %lld s ago)", sb->id,
                (long long)svc->opt.retention_s);
        lsb_forget(sb);
    }
}
