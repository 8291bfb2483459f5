/* Base64 with the standard alphabet of RFC 4648 section 4 ('+', '/', '=' padding), as
 * gRPC uses it for "-bin" metadata.
 *
 * Both directions write into a buffer the caller provides and owns; nothing here allocates.
 * Size the buffer with cws_base64_encoded_len() + 1 (the encoder writes a NUL) or with
 * cws_base64_decoded_max().
 */
#ifndef CWS_BASE64_H
#define CWS_BASE64_H

#include <stddef.h>

/* Length of the padded encoding of n bytes, not counting the NUL the encoder appends.
 * SIZE_MAX when it does not fit in a size_t. */
size_t cws_base64_encoded_len(size_t n);

/* Largest number of bytes that n characters of base64 (padded or not) can decode to. */
size_t cws_base64_decoded_max(size_t n);

/* Encode len bytes of src as padded base64 into dst, followed by a NUL. src may be NULL
 * when len is 0. Returns 0 and sets *ret_len (if not NULL) to the text length, or
 * -CWS_E_INVALID_ARGUMENT when dst is NULL or dst_size < cws_base64_encoded_len(len) + 1. */
int cws_base64_encode(const void *src, size_t len, char *dst, size_t dst_size, size_t *ret_len);

/* Decode len characters of base64 from src into dst. Padded and unpadded input are both
 * accepted, because gRPC peers send "-bin" values either way; bits left over in the last
 * character are ignored, as Go and Python do. The output is binary: no NUL is appended.
 * Returns 0 and sets *ret_len (if not NULL) to the number of bytes written, or
 * -CWS_E_INVALID_ARGUMENT, with dst untouched, for a character outside the alphabet, padding
 * anywhere but at the end of a 4-character group or longer than 2, a length that leaves a
 * single character in the last group, NULL src with len > 0, or a dst_size too small for the
 * result (cws_base64_decoded_max(len) is always enough). */
int cws_base64_decode(const char *src, size_t len, void *dst, size_t dst_size, size_t *ret_len);

#endif
