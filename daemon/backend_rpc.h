/* Calls to the backend's SandboxService, in protobuf-c terms, on the daemon's gRPC client:
 * the one place that knows method paths, credentials headers and deadlines. */
#ifndef CWSD_BACKEND_RPC_H
#define CWSD_BACKEND_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "cws_error.h"

struct cwsd;
struct cwsd_stream;

/* The answer of a unary call: resp is the unpacked response (freed after the callback
 * returns), or NULL with err set. */
typedef void (*cwsd_unary_fn)(void *ud, const ProtobufCMessage *resp, const struct cws_error *err);

/* Call method ("GetSandbox") with req; resp_desc unpacks the answer. timeout_ms bounds the
 * whole call (grpc-timeout is sent). The callback runs exactly once, never from inside this
 * function. Returns 0, or negative when the call could not start (callback not called). */
int cwsd_rpc_unary(struct cwsd *d, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                   cwsd_unary_fn fn, void *ud, struct cws_error *err);

struct cwsd_unary;

/* As cwsd_rpc_unary(), and *ret is a handle to cancel the call with before its callback ran
 * (the handle is invalid once the callback ran). */
int cwsd_rpc_unary_cancellable(struct cwsd *d, const char *method, const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                               cwsd_unary_fn fn, void *ud, struct cwsd_unary **ret,
                               struct cws_error *err);
/* Cancel a call (RST_STREAM: the backend stops its work); the callback never runs.
 * Accepts NULL. */
void cwsd_rpc_unary_cancel(struct cwsd_unary *u);

/* During a cwsd_unary_fn callback for an error: the value of key in the error's
 * google.rpc.ErrorInfo metadata ("size_bytes" of a FILE_TOO_LARGE), or NULL. */
const char *cwsd_rpc_error_metadata(const char *key);

struct cwsd_stream_events {
    /* Optional: one response message as it came (valid during the call). Return true when it
     * was handled, false to have it unpacked for on_message. Lets bulk data skip the copy
     * that unpacking makes. */
    bool (*on_raw)(struct cwsd_stream *s, const uint8_t *data, size_t len, void *ud);
    /* One response message (freed after the callback returns). */
    void (*on_message)(struct cwsd_stream *s, const ProtobufCMessage *msg, void *ud);
    /* The send queue drained below its low-water mark after cwsd_stream_send() returned 1. */
    void (*on_writable)(struct cwsd_stream *s, void *ud);
    /* The call ended: err NULL for OK. Last event; the stream is freed after it returns. */
    void (*on_done)(struct cwsd_stream *s, const struct cws_error *err, void *ud);
};

/* Start a streaming call (StreamExec, StreamLogs) with a first request message; timeout_ms 0
 * means no deadline. */
int cwsd_rpc_stream(struct cwsd *d, const char *method, const ProtobufCMessage *first,
                    const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                    const struct cwsd_stream_events *ev, void *ud, struct cwsd_stream **ret,
                    struct cws_error *err);
/* Send another request message; 1 when the send queue is above its high-water mark. */
int cwsd_stream_send(struct cwsd_stream *s, const ProtobufCMessage *msg);
/* End the request stream (half-close). */
int cwsd_stream_close_send(struct cwsd_stream *s);
/* Stop (or resume) taking response messages: HTTP/2 flow control then stops the server. */
void cwsd_stream_pause(struct cwsd_stream *s, bool paused);
/* Cancel (RST_STREAM); no event follows. Accepts NULL. */
void cwsd_stream_cancel(struct cwsd_stream *s);
/* The caller has what it needs (a StreamExec's exit) and the server is about to end the call:
 * half-close, take what is left and let the call end on its own, with no more events; reset
 * only if it has not ended within a few seconds. A reset after every call would make servers
 * with HTTP/2 rapid-reset protection (nghttp2: a burst of 1000, then 33/s) send GOAWAY.
 * Accepts NULL. */
void cwsd_stream_finish(struct cwsd_stream *s);

#endif
