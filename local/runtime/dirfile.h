/* Small files of a sandbox directory, read whole and written atomically (a temporary file
 * renamed or linked into place), so that a reader never sees half a record even when the
 * writer dies. Shared by the runtime and cwsandbox-init.
 */
#ifndef CWS_DIRFILE_H
#define CWS_DIRFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cws_error.h"

/* Write name in dirfd with mode. When exclusive, an existing file is kept and the call
 * returns 1 (first writer wins); else the file is replaced. Returns 0, 1 or -CWS_E_IO. */
int cws_dirfile_write(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                      bool exclusive, struct cws_error *err);

/* Read name in dirfd, at most max bytes (a larger file is -CWS_E_RESOURCE_EXHAUSTED).
 * *ret_data is NUL-terminated for convenience and malloc'ed; the caller frees it.
 * -CWS_E_NOT_FOUND when the file does not exist. */
int cws_dirfile_read(int dirfd, const char *name, size_t max, char **ret_data, size_t *ret_len,
                     struct cws_error *err);

#endif
