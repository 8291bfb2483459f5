/* Closing a session: every sandbox of it (but detached ones) stopped in parallel, each waited
 * for until it has ended, and each failure reported by id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "registry.h"
#include "sandbox_stop.h"
#include "sandbox_table.h"
#include "session.h"

#define CLOSE_GRACE_S 5
/* Past the grace: time for the backend to kill and report the end. */
#define CLOSE_SLACK_MS 15000

struct close_batch {
    struct cwsd *d;
    size_t pending;
    size_t stopped;
    char **failed; /* "id: why" */
    size_t n_failed;
    cwsd_session_closed_fn done;
    void *ud;
};

static void batch_finish(struct close_batch *b)
{
    if (b->done)
        b->done(b->ud, b->stopped, b->failed, b->n_failed);
    for (size_t i = 0; i < b->n_failed; i++)
        free(b->failed[i]);
    free(b->failed);
    free(b);
}

/* One sandbox is done with: count it, and finish the batch after the last. */
static void one_done(void *ud, const char *id, const struct cws_error *err)
{
    struct close_batch *b = ud;
    if (!err) {
        b->stopped++;
    } else {
        char **v = realloc(b->failed, (b->n_failed + 1) * sizeof(*v));
        if (v) {
            b->failed = v;
            if (asprintf(&v[b->n_failed], "%s: %s", id, err->message) >= 0)
                b->n_failed++;
        }
        cwsd_log_about(CWS_LOG_WARN, id, NULL, 0, "cannot stop sandbox %s: %s", id, err->message);
    }
    if (--b->pending == 0)
        batch_finish(b);
}

static void stop_one(struct close_batch *b, const char *id)
{
    b->pending++;
    cwsd_stop_until_ended(b->d, id, CLOSE_GRACE_S, CLOSE_SLACK_MS, one_done, b);
}

/* Without stopping: what the session held is kept, so only its lifetime ends it now. */
static void detach_all(struct cwsd *d, const char *name)
{
    for (struct cwsd_sandbox *e = d->sandboxes; e; e = e->next) {
        if (!e->session || strcmp(e->session, name) != 0)
            continue;
        free(e->session);
        e->session = NULL;
        e->owner = CWSD_OWNER_DETACHED;
        cwsd_registry_note_owner(d, e);
    }
}

void cwsd_session_close(struct cwsd_session *s, bool stop, cwsd_session_closed_fn done, void *ud)
{
    struct cwsd *d = s->d;
    struct close_batch *b = calloc(1, sizeof(*b));
    if (!b) {
        if (done)
            done(ud, 0, NULL, 0);
        return;
    }
    b->d = d;
    b->done = done;
    b->ud = ud;
    b->pending = 1; /* held until every stop is sent, so a quick answer cannot finish it */
    cwsd_log_about(CWS_LOG_INFO, NULL, s->name, 0, "closing session %s%s", s->name,
                   stop ? "" : " (its sandboxes kept)");
    if (stop) {
        for (struct cwsd_sandbox *e = d->sandboxes; e; e = e->next)
            if (e->session && strcmp(e->session, s->name) == 0 && e->owner != CWSD_OWNER_DETACHED)
                stop_one(b, e->id);
    } else {
        detach_all(d, s->name);
    }
    cwsd_session_remove(s);
    if (--b->pending == 0)
        batch_finish(b);
}
