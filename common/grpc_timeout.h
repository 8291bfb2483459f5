/* The grpc-timeout request header: 1 to 8 ASCII digits and a unit, H (hours), M (minutes),
 * S (seconds), m (milliseconds), u (microseconds) or n (nanoseconds). */
#ifndef CWS_GRPC_TIMEOUT_H
#define CWS_GRPC_TIMEOUT_H

#include <stdint.h>

#include "cws_error.h"

/* Room for the longest value, "99999999H", and its NUL, with slack. */
#define CWS_GRPC_TIMEOUT_BUF_SIZE 16

/* Format a timeout for the grpc-timeout header, in the finest unit whose value fits in
 * 8 digits, rounded up so the peer never sees a shorter deadline than ours.
 * Returns 0, or -CWS_E_DEADLINE_EXCEEDED when timeout_ns <= 0: the call should not start. */
int cws_grpc_timeout_format(int64_t timeout_ns, char ret_buf[CWS_GRPC_TIMEOUT_BUF_SIZE],
                            struct cws_error *err);

/* Parse a grpc-timeout header value strictly: 1 to 8 digits, one unit, nothing else.
 * Durations beyond the int64 range (e.g. "99999999H") clamp to INT64_MAX nanoseconds; "0n"
 * parses to 0, a deadline that has already expired.
 * Returns 0, or -CWS_E_INVALID_ARGUMENT with a message quoting the value. */
int cws_grpc_timeout_parse(const char *value, int64_t *ret_ns, struct cws_error *err);

#endif
