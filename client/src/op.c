/* Ops: one request in flight and, once done, its outcome.
 *
 * An op in flight sits in its client's table under its msgid. It is finished exactly once: by
 * its response, by the loss of the connection, or by the client being freed. Its owner may let
 * it go (cws_op_free) at any time; an op that is still needed (in flight, or being waited on)
 * is then only marked, and freed by whoever finishes with it last. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static size_t bucket_of(uint32_t msgid)
{
    return msgid % CWSC_BUCKETS;
}

cws_op *cwsc_op_find(cws_client *c, uint32_t msgid)
{
    for (cws_op *op = c->ops[bucket_of(msgid)]; op; op = op->next)
        if (op->msgid == msgid)
            return op;
    return NULL;
}

/* The next msgid not in flight; 0 is never used, so that a zeroed id is never valid. */
static uint32_t next_free_msgid(cws_client *c)
{
    for (;;) {
        uint32_t id = ++c->next_msgid;
        if (id != 0 && !cwsc_op_find(c, id))
            return id;
    }
}

int cwsc_op_new(cws_client *c, const struct cwsc_op_type *type, const char *method, void *state,
                cws_op **ret, struct cws_error *err)
{
    cws_op *op = calloc(1, sizeof(*op));
    if (!op) {
        if (type->free_state && state)
            type->free_state(state);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    op->client = c;
    op->type = type;
    op->state = state;
    op->msgid = next_free_msgid(c);
    snprintf(op->method, sizeof(op->method), "%s", method);
    cws_error_clear(&op->error);
    size_t b = bucket_of(op->msgid);
    op->next = c->ops[b];
    c->ops[b] = op;
    c->n_ops++;
    *ret = op;
    return 0;
}

static void stop_pump(cws_op *op)
{
    if (op->pumping && op->client)
        op->client->n_pumping--;
    op->pumping = false;
}

void cwsc_op_start_pump(cws_op *op)
{
    if (op->pumping || !op->client)
        return;
    op->pumping = true;
    op->client->n_pumping++;
    cwsc_client_flush_some(op->client);
}

void cwsc_op_unlink(cws_op *op)
{
    cws_client *c = op->client;
    if (!c)
        return;
    stop_pump(op);
    for (cws_op **p = &c->ops[bucket_of(op->msgid)]; *p; p = &(*p)->next) {
        if (*p == op) {
            *p = op->next;
            c->n_ops--;
            break;
        }
    }
    op->next = NULL;
    op->client = NULL;
}

void cwsc_op_destroy(cws_op *op)
{
    if (op->type->free_state && op->state)
        op->type->free_state(op->state);
    free(op);
}

void cwsc_op_finish(cws_op *op, const struct cws_error *err)
{
    if (op->done)
        return;
    cwsc_op_unlink(op);
    op->done = true;
    if (op->has_local_error) {
        op->failed = true;
        op->error = op->local_error;
    } else if (err) {
        op->failed = true;
        op->error = *err;
    }
    if (op->freed) {
        if (op->waiters == 0)
            cwsc_op_destroy(op);
        return;
    }
    /* Last thing that touches op: the callback may free it. */
    if (op->done_fn)
        op->done_fn(op, op->done_ud);
}

void cwsc_op_respond(cws_op *op, const msgpack_object *error, const msgpack_object *result)
{
    struct cws_error e;
    cws_error_clear(&e);
    if (error) {
        if (cws_rpc_error_from_object(error, &e, &e) < 0)
            cws_error_set(&e, CWS_E_PROTOCOL, "cwsandboxd sent a malformed error for %s",
                          op->method);
        cwsc_op_finish(op, &e);
        return;
    }
    if (!op->freed && op->type->parse && op->type->parse(op, result, &e) < 0) {
        cwsc_op_finish(op, &e);
        return;
    }
    cwsc_op_finish(op, NULL);
}

/* Queue a cancel without writing it: callers may be in the middle of writing (an upload's
 * pump), and whatever called them writes the queue next. */
static void queue_cancel(cws_op *op)
{
    struct cwsc_op_note note = {.id = op->msgid};
    if (op->client && !op->client->broken)
        cwsc_pack_notification(&op->client->out, "cancel", cwsc_pack_op_note, &note);
}

void cwsc_op_fail_locally(cws_op *op, const struct cws_error *err)
{
    if (op->done || op->has_local_error)
        return;
    op->has_local_error = true;
    op->local_error = *err;
    stop_pump(op);
    queue_cancel(op);
}

void *cwsc_op_state(const cws_op *op, const struct cwsc_op_type *type)
{
    return op && op->type == type ? op->state : NULL;
}

int cwsc_op_outcome(const cws_op *op, struct cws_error *err)
{
    if (!op->failed) {
        cws_error_clear(err);
        return 0;
    }
    if (err)
        *err = op->error;
    return -(int)op->error.code;
}

bool cws_op_done(const cws_op *op)
{
    return op && op->done;
}

const struct cws_error *cws_op_error(const cws_op *op)
{
    return op && op->done && op->failed ? &op->error : NULL;
}

const char *cws_op_method(const cws_op *op)
{
    return op ? op->method : "";
}

int cws_op_cancel(cws_op *op, struct cws_error *err)
{
    if (!op)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "op is NULL");
    if (op->done)
        return 0;
    int r = cwsc_client_usable(op->client, err);
    if (r < 0)
        return r;
    struct cwsc_op_note note = {.id = op->msgid};
    return cwsc_send_op_note(op->client, "cancel", &note) < 0
               ? cws_error_set(err, CWS_E_NOMEM, NULL)
               : 0;
}

void cws_op_set_done_callback(cws_op *op, cws_op_done_fn fn, void *userdata)
{
    if (!op)
        return;
    op->done_fn = fn;
    op->done_ud = userdata;
    if (op->done && fn)
        fn(op, userdata);
}

void cws_op_free(cws_op *op)
{
    if (!op)
        return;
    op->done_fn = NULL;
    if (op->done && op->waiters == 0) {
        cwsc_op_destroy(op);
        return;
    }
    if (!op->done && op->type->cancel_when_freed) {
        stop_pump(op);
        queue_cancel(op);
        if (op->client)
            cwsc_client_flush_some(op->client);
    }
    op->freed = true;
}
