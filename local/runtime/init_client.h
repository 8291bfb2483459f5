/* The server side of one connection to a sandbox's cwsandbox-init (init_proto.h): msgpack-rpc
 * over the Unix socket in the sandbox directory, driven by the loop, with pausable delivery
 * (a paused connection is not read, so init stops reading the process's output). */
#ifndef CWS_INIT_CLIENT_H
#define CWS_INIT_CLIENT_H

#include <event2/event.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "cws_error.h"
#include "rpc_decoder.h"

struct cws_init_conn;

struct cws_init_conn_handlers {
    /* A message from init. May free the connection. */
    void (*on_message)(struct cws_init_conn *c, const struct cws_rpc_msg *m, void *ud);
    /* The connection ended (after every message before the end was delivered). */
    void (*on_closed)(struct cws_init_conn *c, const struct cws_error *why, void *ud);
    /* The outgoing queue fell to the low-water mark. */
    void (*on_drained)(struct cws_init_conn *c, void *ud);
};

#define CWS_INIT_CONN_HIGH (1u << 20)
#define CWS_INIT_CONN_LOW  (256u << 10)

/* Connect to the init socket of the sandbox directory dirfd. Fails at once when nobody
 * listens there (-CWS_E_UNAVAILABLE). The caller frees *ret with cws_init_conn_free(). */
int cws_init_conn_open(struct event_base *base, int dirfd, const struct cws_init_conn_handlers *h,
                       void *ud, struct cws_init_conn **ret, struct cws_error *err);

/* A packer that appends to the outgoing queue; pack whole messages with it. */
void cws_init_conn_packer(struct cws_init_conn *c, msgpack_packer *pk);

/* Bytes queued and not yet sent. */
size_t cws_init_conn_queued(const struct cws_init_conn *c);

/* Stop or resume delivering messages (and reading the socket). */
void cws_init_conn_pause(struct cws_init_conn *c, bool paused);

/* Close the connection; no handler runs afterwards. Accepts NULL. */
void cws_init_conn_free(struct cws_init_conn *c);

#endif
