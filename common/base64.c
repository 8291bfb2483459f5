/* RFC 4648 base64, standard alphabet; see base64.h. */
#include "base64.h"

#include <stdbool.h>
#include <stdint.h>

#include "cws_error.h"

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of an alphabet character, or -1. */
static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

size_t cws_base64_encoded_len(size_t n)
{
    if (n / 3 >= SIZE_MAX / 4)
        return SIZE_MAX;
    return (n + 2) / 3 * 4;
}

size_t cws_base64_decoded_max(size_t n)
{
    size_t rest = n % 4;

    return n / 4 * 3 + (rest >= 2 ? rest - 1 : 0);
}

int cws_base64_encode(const void *src, size_t len, char *dst, size_t dst_size, size_t *ret_len)
{
    const unsigned char *in = src;
    size_t need = cws_base64_encoded_len(len);
    size_t o = 0;

    if (!dst || (!src && len > 0) || need == SIZE_MAX || dst_size <= need)
        return -CWS_E_INVALID_ARGUMENT;

    for (size_t i = 0; i < len; i += 3) {
        size_t left = len - i;
        uint32_t v = (uint32_t)in[i] << 16;

        if (left > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            v |= in[i + 2];
        dst[o++] = base64_alphabet[(v >> 18) & 63];
        dst[o++] = base64_alphabet[(v >> 12) & 63];
        dst[o++] = left > 1 ? base64_alphabet[(v >> 6) & 63] : '=';
        dst[o++] = left > 2 ? base64_alphabet[v & 63] : '=';
    }
    dst[o] = '\0';
    if (ret_len)
        *ret_len = o;
    return 0;
}

/* Number of '=' ending a padded text; padding only counts when the length is a whole number
 * of groups, so "QQ=" is invalid rather than a short group. More than two is left to the
 * character check to reject. */
static size_t base64_padding(const char *src, size_t len)
{
    size_t pad = 0;

    if (len == 0 || len % 4 != 0)
        return 0;
    while (pad < 2 && src[len - 1 - pad] == '=')
        pad++;
    return pad;
}

static bool base64_all_valid(const char *src, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (base64_value((unsigned char)src[i]) < 0)
            return false;
    }
    return true;
}

int cws_base64_decode(const char *src, size_t len, void *dst, size_t dst_size, size_t *ret_len)
{
    unsigned char *out = dst;
    size_t data_len, rest, out_len, o = 0;
    uint32_t v = 0;
    int bits = 0;

    if (!src && len > 0)
        return -CWS_E_INVALID_ARGUMENT;
    data_len = len - base64_padding(src, len);
    rest = data_len % 4;
    if (rest == 1 || !base64_all_valid(src, data_len))
        return -CWS_E_INVALID_ARGUMENT;
    out_len = data_len / 4 * 3 + (rest ? rest - 1 : 0);
    if (out_len > dst_size || (!dst && out_len > 0))
        return -CWS_E_INVALID_ARGUMENT;

    for (size_t i = 0; i < data_len; i++) {
        v = (v << 6) | (uint32_t)base64_value((unsigned char)src[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(v >> bits);
            v &= (1u << bits) - 1;
        }
    }
    if (ret_len)
        *ret_len = o;
    return 0;
}
