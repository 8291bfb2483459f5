/* Incremental msgpack-rpc decoder: fed arbitrary byte chunks, yields whole messages.
 *
 * The size of each message is found by walking the msgpack headers as bytes arrive, before
 * anything is unpacked, so a message larger than the limit, nested deeper than
 * CWS_RPC_MAX_DEPTH or holding more than CWS_RPC_MAX_ELEMENTS objects is refused before
 * msgpack-c allocates for it. Only a complete message of bounded size is unpacked.
 *
 * Two kinds of failure:
 *  - the stream is unusable (malformed msgpack, oversized message): the decoder is broken
 *    for good and the connection must be closed (cws_rpc_decoder_broken() is true);
 *  - one well-formed msgpack value is not a valid msgpack-rpc message: that value is
 *    skipped, -CWS_E_PROTOCOL is returned, and decoding can go on. If it looked like a
 *    request with a usable msgid, cws_rpc_decoder_bad_msgid() gives it, so an error response
 *    can be sent.
 */
#ifndef CWS_RPC_DECODER_H
#define CWS_RPC_DECODER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cws_error.h"
#include "rpc_encode.h"

#define CWS_RPC_DEFAULT_MAX_MESSAGE (64u * 1024 * 1024)
#define CWS_RPC_MAX_DEPTH           32 /* msgpack-c's own unpacker stack depth */
#define CWS_RPC_MAX_ELEMENTS        (1u << 20)
#define CWS_RPC_METHOD_MAX          128

/* One decoded message. Every pointer points into the message's own storage and stays valid
 * until cws_rpc_msg_free(). */
struct cws_rpc_msg {
    enum cws_rpc_type type;
    uint32_t msgid;               /* request, response */
    const char *method;           /* request, notification; NUL-terminated */
    const msgpack_object *params; /* request, notification: always a map (empty for []) */
    const msgpack_object *error;  /* response: the error object, NULL when nil */
    const msgpack_object *result; /* response: the result object (may be nil) */
    size_t size;                  /* encoded size in bytes */
    /* private */
    msgpack_unpacked unpacked;
    msgpack_object empty_params;
    char method_buf[CWS_RPC_METHOD_MAX];
    char data[]; /* the encoded bytes that unpacked's objects point into */
};

struct cws_rpc_decoder;

/* Create a decoder. max_message 0 means CWS_RPC_DEFAULT_MAX_MESSAGE. The caller frees *ret
 * with cws_rpc_decoder_free(). */
int cws_rpc_decoder_new(size_t max_message, struct cws_rpc_decoder **ret);

/* Free a decoder and any buffered bytes. Accepts NULL. */
void cws_rpc_decoder_free(struct cws_rpc_decoder *d);

/* Append bytes read from the peer. Call cws_rpc_decoder_next() until it returns 0 after each
 * feed, so that only a partial message is ever kept. Fails with -CWS_E_NOMEM, or with the
 * broken state's error. */
int cws_rpc_decoder_feed(struct cws_rpc_decoder *d, const void *data, size_t len,
                         struct cws_error *err);

/* Take the next whole message. Returns 1 and sets *ret_msg (the caller frees it with
 * cws_rpc_msg_free()), 0 when more bytes are needed, or a negative code (see above). */
int cws_rpc_decoder_next(struct cws_rpc_decoder *d, struct cws_rpc_msg **ret_msg,
                         struct cws_error *err);

/* True once the stream is unusable; every later call fails the same way. */
bool cws_rpc_decoder_broken(const struct cws_rpc_decoder *d);

/* Bytes buffered and not yet returned as messages. */
size_t cws_rpc_decoder_buffered(const struct cws_rpc_decoder *d);

/* After a -CWS_E_PROTOCOL from next() on a request whose msgid was readable: 1 and the msgid
 * in *ret_msgid, else 0. */
int cws_rpc_decoder_bad_msgid(const struct cws_rpc_decoder *d, uint32_t *ret_msgid);

/* Free a message. Accepts NULL. */
void cws_rpc_msg_free(struct cws_rpc_msg *msg);

#endif
