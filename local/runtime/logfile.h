/* The log of a sandbox: what its main command wrote, as timestamped records in one file of
 * the sandbox directory. cwsandbox-init appends, the runtime reads (also after the sandbox
 * ended, and from a restarted server).
 *
 * Format: the 8-byte magic CWS_LOGFILE_MAGIC, then records of a 16-byte header
 * (time_ns int64, length uint32, fd uint8, 3 zero bytes; little-endian) followed by the data.
 * Offsets count data bytes only, so they are stable whatever the headers take. A record is
 * written with one writev(); a reader treats a trailing partial record as not yet written.
 */
#ifndef CWS_LOGFILE_H
#define CWS_LOGFILE_H

#include <stddef.h>
#include <stdint.h>

#include "cws_error.h"

#define CWS_LOGFILE_MAGIC      "CWSLOG1\n"
#define CWS_LOGFILE_MAGIC_LEN  8
#define CWS_LOGFILE_HEADER_LEN 16
#define CWS_LOGFILE_RECORD_MAX (1u << 20) /* longer records are split */

struct cws_logfile_entry {
    int64_t time_ns;
    int fd;
    const uint8_t *data;
    size_t len;
    uint64_t offset; /* data bytes of the log before this entry */
};

/* Create an empty log (the magic only) named name in dirfd; an existing one is kept. */
int cws_logfile_create(int dirfd, const char *name, struct cws_error *err);

/* Append one entry (split into records of at most CWS_LOGFILE_RECORD_MAX) to fd, opened
 * with O_APPEND. Returns 0 or -CWS_E_IO. */
int cws_logfile_append(int fd, int64_t time_ns, int stream, const void *data, size_t len);

/* Call cb for every record whose data starts at or after offset from, in order, until the
 * end of the file or cb returns non-zero (that record counts as delivered). *ret_next is the
 * offset after the last record delivered, or from when none was. */
int cws_logfile_read(int fd, uint64_t from, int (*cb)(const struct cws_logfile_entry *e, void *ud),
                     void *ud, uint64_t *ret_next, struct cws_error *err);

#endif
