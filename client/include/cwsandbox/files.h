/* Files: read and write files in a sandbox, as a whole buffer or streamed from/to a file
 * descriptor or a callback.
 *
 * Files of any size (up to the daemon's limit, 1 GiB) pass in chunks of 1 MiB (file.chunk):
 * reads always, writes above 8 MiB (smaller ones go in one message). Memory stays bounded: a
 * streamed read hands each chunk on as it arrives, and a large write feeds the socket only as
 * fast as it drains. Start many transfers at once and collect them with cws_op_wait_all():
 * they share the connection.
 *
 * Errors carry the backend's reason: CWSANDBOX_FILE_NOT_FOUND, CWSANDBOX_FILE_IS_DIRECTORY,
 * CWSANDBOX_FILE_PERMISSION_DENIED, CWSANDBOX_FILE_TOO_LARGE, CWSANDBOX_FILE_TRUNCATED (in
 * cws_error.reason).
 */
#ifndef CWSANDBOX_FILES_H
#define CWSANDBOX_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cwsandbox/client.h>
#include <cwsandbox/op.h>

#ifdef __cplusplus
extern "C" {
#endif

#include <cwsandbox/error.h>

/* A chunk of a streamed read: len bytes at offset, valid during the call only. Return 0 to go
 * on, or a negative -CWS_E_xxx code to stop the transfer: the op then fails with that code. */
typedef int (*cws_file_chunk_fn)(cws_op *op, const void *data, size_t len, uint64_t offset,
                                 void *userdata);

/* Read the file at path (absolute) in sandbox id into memory (file.read). The op gives the
 * data with cws_op_file_data(). The caller frees *ret_op with cws_op_free(). */
int cws_file_read(cws_client *c, const char *id, const char *path, cws_op **ret_op,
                  struct cws_error *err);

/* Read a file and hand each chunk to fn as it arrives, keeping nothing. The caller frees
 * *ret_op. */
int cws_file_read_stream(cws_client *c, const char *id, const char *path, cws_file_chunk_fn fn,
                         void *userdata, cws_op **ret_op, struct cws_error *err);

/* Read a file into fd (a regular file or another blocking descriptor: writes to it happen from
 * cws_client_process() and block there). fd stays the caller's; it is not closed. A failed
 * write fails the op with -CWS_E_IO. The caller frees *ret_op. */
int cws_file_read_to_fd(cws_client *c, const char *id, const char *path, int fd, cws_op **ret_op,
                        struct cws_error *err);

/* Write len bytes of data (copied at once: the caller may free it on return) to path in
 * sandbox id, replacing the file (file.write). The caller frees *ret_op. */
int cws_file_write(cws_client *c, const char *id, const char *path, const void *data, size_t len,
                   cws_op **ret_op, struct cws_error *err);

/* Write to path what remains of the regular file open at fd, from its current offset to its
 * end (its size is taken now), reading it chunk by chunk as the socket drains. fd stays the
 * caller's and must stay open until the op is done; its offset moves. A file that shrinks
 * meanwhile fails the op with -CWS_E_IO. Returns -CWS_E_INVALID_ARGUMENT when fd is not a
 * regular file (read a pipe into memory and use cws_file_write()). The caller frees *ret_op. */
int cws_file_write_from_fd(cws_client *c, const char *id, const char *path, int fd, cws_op **ret_op,
                           struct cws_error *err);

/* The data of a finished cws_file_read() op, and its length in *ret_len; NULL otherwise. Owned
 * by the op (see cws_op_file_take_data() to keep it). ret_len may be NULL. */
const void *cws_op_file_data(const cws_op *op, size_t *ret_len);

/* Take the data of a finished cws_file_read() op without copying: the caller frees *ret_data
 * with free(); the op then has none. Returns 0, or -CWS_E_INVALID_ARGUMENT when the op is not a
 * finished, successful cws_file_read() holding data. */
int cws_op_file_take_data(cws_op *op, void **ret_data, size_t *ret_len, struct cws_error *err);

/* Bytes transferred by a finished file op (read or written, as the daemon counted them);
 * -1 otherwise. */
int64_t cws_op_file_size(const cws_op *op);

#ifdef __cplusplus
}
#endif

#endif
