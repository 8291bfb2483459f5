/* Logs: the output of a sandbox's main process (not of execs).
 *
 * The data arrives as it comes, to a callback or into a buffer read with cws_logs_read(). A
 * follow stream goes on until the sandbox ends or the op is cancelled (cws_op_cancel(), or
 * cws_op_free()); without follow the op finishes after the current log.
 */
#ifndef CWSANDBOX_LOGS_H
#define CWSANDBOX_LOGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cwsandbox/client.h>
#include <cwsandbox/op.h>

#ifdef __cplusplus
extern "C" {
#endif

#include <cwsandbox/error.h>

/* A piece of log, valid during the call only. time_ms is its time (milliseconds since the
 * epoch) when timestamps were asked for, else 0. */
typedef void (*cws_logs_fn)(cws_op *op, const void *data, size_t len, int64_t time_ms,
                            void *userdata);

struct cws_logs_options {
    bool follow;         /* keep streaming new output */
    int64_t tail_lines;  /* only the last N lines; 0: all */
    int64_t since_ms;    /* only output after this time (ms since the epoch); 0: all */
    bool timestamps;     /* ask for each piece's time */
    cws_logs_fn on_data; /* NULL: keep the data for cws_logs_read() */
    void *userdata;
};

/* Stream the logs of sandbox id (logs). opts may be NULL. The caller frees *ret_op with
 * cws_op_free() (which cancels a stream still running). */
int cws_logs(cws_client *c, const char *id, const struct cws_logs_options *opts, cws_op **ret_op,
             struct cws_error *err);

/* Read up to len bytes of log kept by a logs op without callback, waiting at most timeout_ms
 * (-1: no limit). Returns the number of bytes (> 0); 0 at the end of the stream; the op's error
 * when it failed; -CWS_E_DEADLINE_EXCEEDED when nothing came in time. */
ssize_t cws_logs_read(cws_op *op, void *buf, size_t len, int timeout_ms, struct cws_error *err);

#ifdef __cplusplus
}
#endif

#endif
