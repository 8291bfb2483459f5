/* How a sandbox ended, recorded in its directory (CWS_SB_EXIT) by whoever learns it first:
 * cwsandbox-init when the main command exits, or the server when it kills the sandbox. The
 * first record wins, so a late writer never overwrites the real status. A restarted server
 * reads it back.
 *
 * Format (text, three lines): exit code, end time (CLOCK_REALTIME ns), reason (may be empty).
 */
#ifndef CWS_EXIT_RECORD_H
#define CWS_EXIT_RECORD_H

#include <stdint.h>

#include "cws_error.h"

#define CWS_EXIT_REASON_MAX 512

struct cws_exit_record {
    int code; /* 128+N for signal N, -1 when the main command never ran */
    int64_t ended_ns;
    char reason[CWS_EXIT_REASON_MAX]; /* "" when there is none */
};

/* Record r unless a record exists. Returns 0 when written, 1 when one was there already. */
int cws_exit_record_write(int dirfd, const struct cws_exit_record *r, struct cws_error *err);

/* Read the record into *ret; -CWS_E_NOT_FOUND when there is none yet. */
int cws_exit_record_read(int dirfd, struct cws_exit_record *ret, struct cws_error *err);

/* The exit code of a wait status: the status, or 128+N for signal N. */
int cws_exit_code_from_status(int status);

#endif
