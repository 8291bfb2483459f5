/* gRPC length-prefixed message framing (gRPC over HTTP/2, "Length-Prefixed-Message"):
 * 1 byte compressed flag, 4 bytes big-endian length, then the message.
 *
 * The deframer is incremental and holds at most one message: feed it DATA frame payloads
 * as they arrive, and stop feeding while a completed message is being handled, which is
 * how the caller applies backpressure to the peer.
 */
#ifndef CWS_GRPC_FRAME_H
#define CWS_GRPC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cws_error.h"

/* Size of the prefix in front of every message. */
#define CWS_GRPC_FRAME_HEADER_SIZE 5

/* Default largest message accepted, in bytes (100 MiB). */
#define CWS_GRPC_MAX_MESSAGE (100u * 1024 * 1024)

/* Write the prefix of an uncompressed message of len bytes.
 * Returns 0, or -CWS_E_INVALID_ARGUMENT when len does not fit in 32 bits. */
int cws_grpc_frame_header(uint8_t ret_hdr[CWS_GRPC_FRAME_HEADER_SIZE], size_t len,
                          struct cws_error *err);

struct cws_grpc_deframer;

/* Create a deframer that rejects messages longer than max_message bytes
 * (CWS_GRPC_MAX_MESSAGE unless the service says otherwise).
 * Returns 0 or -CWS_E_NOMEM; the caller frees *ret with cws_grpc_deframer_free(). */
int cws_grpc_deframer_new(size_t max_message, struct cws_grpc_deframer **ret);

/* Free a deframer and its buffer. Accepts NULL. */
void cws_grpc_deframer_free(struct cws_grpc_deframer *d);

/* Consume bytes of the stream, never past the end of the current message.
 * Returns 1 when a message is complete (read it with cws_grpc_deframer_message()),
 * 0 when all len bytes were consumed without completing one, or a negative error:
 *   -CWS_E_RESOURCE_EXHAUSTED  the declared length exceeds max_message (checked before
 *                              anything is allocated for the message),
 *   -CWS_E_UNIMPLEMENTED       a compressed message (no grpc-encoding is ever negotiated),
 *   -CWS_E_PROTOCOL            a compressed flag other than 0 or 1,
 *   -CWS_E_NOMEM               the message buffer could not be allocated,
 *   -CWS_E_INVALID_ARGUMENT    NULL d, or NULL data with len > 0 (the deframer is unchanged).
 * *ret_consumed is set on success only. Stream errors are sticky: every later feed returns
 * the same code and fills err with the same message. */
int cws_grpc_deframer_feed(struct cws_grpc_deframer *d, const uint8_t *data, size_t len,
                           size_t *ret_consumed, struct cws_error *err);

/* The message completed by the last feed, valid until the next feed or free; the data is
 * non-NULL even for a zero-length message. When the last feed did not return 1, NULL and 0. */
void cws_grpc_deframer_message(const struct cws_grpc_deframer *d, const uint8_t **ret_data,
                               size_t *ret_len);

/* True when no partial message is buffered, so the stream may end here; a stream that ends
 * while this is false carried a truncated message. False once the deframer has failed. */
bool cws_grpc_deframer_idle(const struct cws_grpc_deframer *d);

#endif
