/* See sandbox_stop.h. */
#include <stdlib.h>
#include <string.h>

#include "backend_rpc.h"
#include "daemon.h"
#include "sandbox_stop.h"
#include "sandbox_table.h"
#include "watch.h"

struct stopping {
    struct cwsd *d;
    char *id;
    int64_t wait_ms;
    cwsd_stopped_fn done;
    void *ud;
};

static void finish(struct stopping *s, const struct cws_error *err)
{
    if (err && err->code == CWS_E_NOT_FOUND)
        err = NULL;
    s->done(s->ud, s->id, err);
    free(s->id);
    free(s);
}

static void on_ended(void *ud, const Coreweave__Sandbox__V1__Sandbox *sb,
                     const struct cws_error *err)
{
    struct stopping *s = ud;
    if (sb)
        cwsd_sandbox_remember(s->d, sb);
    if (!err)
        cwsd_sandbox_forget(s->d, s->id);
    finish(s, err);
}

static void on_deleted(void *ud, const ProtobufCMessage *resp, const struct cws_error *err)
{
    struct stopping *s = ud;
    struct cws_error werr;
    (void)resp;
    if (err) {
        finish(s, err);
        return;
    }
    if (!cwsd_wait(s->d, s->id, CWSD_UNTIL_TERMINAL, s->wait_ms, on_ended, s, &werr))
        finish(s, &werr);
}

void cwsd_stop_until_ended(struct cwsd *d, const char *id, int32_t grace_s, int64_t slack_ms,
                           cwsd_stopped_fn done, void *ud)
{
    Coreweave__Sandbox__V1__DeleteSandboxRequest req =
        COREWEAVE__SANDBOX__V1__DELETE_SANDBOX_REQUEST__INIT;
    struct cws_error err;
    struct stopping *s = calloc(1, sizeof(*s));
    if (!s || !(s->id = strdup(id))) {
        free(s);
        cws_error_set(&err, CWS_E_NOMEM, "out of memory stopping sandbox %s", id);
        done(ud, id, &err);
        return;
    }
    s->d = d;
    s->wait_ms = (int64_t)grace_s * 1000 + slack_ms;
    s->done = done;
    s->ud = ud;
    req.sandbox_id = s->id;
    req.grace_period_seconds = grace_s;
    req.allow_missing = true;
    if (cwsd_rpc_unary(d, "DeleteSandbox", &req.base,
                       &coreweave__sandbox__v1__delete_sandbox_response__descriptor, s->wait_ms,
                       on_deleted, s, &err) < 0)
        finish(s, &err);
}
