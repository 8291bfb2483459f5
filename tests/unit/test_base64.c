/* base64: RFC 4648 vectors, unpadded input, and every way input can be invalid. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "cws_error.h"

struct vector {
    const char *plain;
    const char *padded;
    const char *unpadded;
};

/* RFC 4648 section 10. */
static const struct vector rfc_vectors[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};
#define N_VECTORS (sizeof(rfc_vectors) / sizeof(rfc_vectors[0]))

/* Decode a NUL-terminated text into buf; returns the decoder's result. */
static int decode_str(const char *text, unsigned char *buf, size_t size, size_t *ret_len)
{
    return cws_base64_decode(text, strlen(text), buf, size, ret_len);
}

START_TEST(test_encode_rfc_vectors)
{
    const struct vector *v = &rfc_vectors[_i];
    char out[16];
    size_t n = 999;

    ck_assert_int_eq(cws_base64_encode(v->plain, strlen(v->plain), out, sizeof(out), &n), 0);
    ck_assert_str_eq(out, v->padded);
    ck_assert_uint_eq(n, strlen(v->padded));
    ck_assert_uint_eq(cws_base64_encoded_len(strlen(v->plain)), strlen(v->padded));
}
END_TEST

START_TEST(test_decode_rfc_vectors_padded)
{
    const struct vector *v = &rfc_vectors[_i];
    unsigned char out[16];
    size_t n = 999;

    ck_assert_int_eq(decode_str(v->padded, out, sizeof(out), &n), 0);
    ck_assert_uint_eq(n, strlen(v->plain));
    ck_assert_mem_eq(out, v->plain, n);
    ck_assert_uint_ge(cws_base64_decoded_max(strlen(v->padded)), n);
}
END_TEST

START_TEST(test_decode_rfc_vectors_unpadded)
{
    const struct vector *v = &rfc_vectors[_i];
    unsigned char out[16];
    size_t n = 999;

    ck_assert_int_eq(decode_str(v->unpadded, out, sizeof(out), &n), 0);
    ck_assert_uint_eq(n, strlen(v->plain));
    ck_assert_mem_eq(out, v->plain, n);
    /* Unpadded text is exactly as long as the bound says. */
    ck_assert_uint_eq(cws_base64_decoded_max(strlen(v->unpadded)), n);
}
END_TEST

START_TEST(test_decode_exact_buffer)
{
    unsigned char out[6];
    size_t n = 0;

    /* Padding shrinks the result below decoded_max, and the exact size is enough. */
    ck_assert_int_eq(decode_str("Zm9vYg==", out, 4, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_mem_eq(out, "foob", 4);
    ck_assert_int_eq(decode_str("Zm9vYg==", out, 3, &n), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(decode_str("Zm9vYmFy", out, 5, &n), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(decode_str("Zm9vYmFy", out, 6, NULL), 0);
    ck_assert_int_eq(cws_base64_decode("", 0, NULL, 0, &n), 0);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_encode_buffer_size)
{
    char out[9];
    size_t n = 0;

    /* 4 characters and the NUL. */
    ck_assert_int_eq(cws_base64_encode("foo", 3, out, 5, &n), 0);
    ck_assert_str_eq(out, "Zm9v");
    ck_assert_int_eq(cws_base64_encode("foo", 3, out, 4, &n), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_base64_encode("foo", 3, NULL, 5, &n), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_base64_encode(NULL, 1, out, sizeof(out), &n), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_base64_encode(NULL, 0, out, 1, &n), 0);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_size_helpers)
{
    ck_assert_uint_eq(cws_base64_encoded_len(0), 0);
    ck_assert_uint_eq(cws_base64_encoded_len(1), 4);
    ck_assert_uint_eq(cws_base64_encoded_len(3), 4);
    ck_assert_uint_eq(cws_base64_encoded_len(4), 8);
    ck_assert_uint_eq(cws_base64_encoded_len(SIZE_MAX), SIZE_MAX);
    ck_assert_uint_eq(cws_base64_encoded_len(SIZE_MAX / 4 * 3), SIZE_MAX);
    ck_assert_uint_eq(cws_base64_decoded_max(0), 0);
    ck_assert_uint_eq(cws_base64_decoded_max(2), 1);
    ck_assert_uint_eq(cws_base64_decoded_max(3), 2);
    ck_assert_uint_eq(cws_base64_decoded_max(4), 3);
    ck_assert_uint_eq(cws_base64_decoded_max(6), 4);
    ck_assert_uint_eq(cws_base64_decoded_max(SIZE_MAX), SIZE_MAX / 4 * 3 + 2);
}
END_TEST

START_TEST(test_all_bytes_round_trip)
{
    unsigned char plain[256], back[256];
    char text[400];
    size_t n;

    for (int i = 0; i < 256; i++)
        plain[i] = (unsigned char)(255 - i);
    for (size_t len = 0; len <= sizeof(plain); len++) {
        ck_assert_int_eq(cws_base64_encode(plain, len, text, sizeof(text), &n), 0);
        ck_assert_uint_eq(n, cws_base64_encoded_len(len));
        ck_assert_int_eq(cws_base64_decode(text, n, back, sizeof(back), &n), 0);
        ck_assert_uint_eq(n, len);
        ck_assert_mem_eq(back, plain, len);
    }
}
END_TEST

START_TEST(test_alphabet_ends)
{
    unsigned char out[4];
    char text[8];
    size_t n;

    /* '+' and '/' are the standard alphabet's 62 and 63, not URL-safe '-' and '_'. */
    ck_assert_int_eq(cws_base64_encode("\xfb\xff", 2, text, sizeof(text), NULL), 0);
    ck_assert_str_eq(text, "+/8=");
    ck_assert_int_eq(decode_str("+/8=", out, sizeof(out), &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(out, "\xfb\xff", 2);
    ck_assert_int_eq(decode_str("-_8=", out, sizeof(out), &n), -CWS_E_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_nonzero_trailing_bits_accepted)
{
    unsigned char out[4];
    size_t n;

    /* "Zh" carries bits past the byte it encodes; Go and Python accept it, so do we. */
    ck_assert_int_eq(decode_str("Zh==", out, sizeof(out), &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(out[0], 'f');
    ck_assert_int_eq(decode_str("Zh", out, sizeof(out), &n), 0);
    ck_assert_uint_eq(n, 1);
}
END_TEST

static const char *const invalid_texts[] = {
    /* characters outside the alphabet */
    "Zm9v!",
    "Zm9v YmFy",
    "Zm9v\n",
    " Zm9v",
    "Zm9v\t",
    "Zm-_",
    "Zm9\x80",
    "Zm.v",
    /* padding in the wrong place or of the wrong length */
    "Zg=",
    "Zg===",
    "Z===",
    "====",
    "==",
    "=",
    "Zm9v=",
    "Zm9v==",
    "=Zm9",
    "Zm=v",
    "Zg==Zg==",
    "Zm8=Zm8=",
    "Zm9vY===",
    /* a single character left in the last group */
    "Z",
    "Zm9vY",
    "Zm9vYmFyZ",
};
#define N_INVALID (sizeof(invalid_texts) / sizeof(invalid_texts[0]))

START_TEST(test_decode_invalid)
{
    const char *text = invalid_texts[_i];
    unsigned char out[16];
    size_t n = 12345;

    memset(out, 0xa5, sizeof(out));
    ck_assert_msg(decode_str(text, out, sizeof(out), &n) == -CWS_E_INVALID_ARGUMENT,
                  "'%s' was accepted", text);
    /* Outputs are left alone on failure. */
    ck_assert_uint_eq(n, 12345);
    for (size_t i = 0; i < sizeof(out); i++)
        ck_assert_int_eq(out[i], 0xa5);
}
END_TEST

START_TEST(test_decode_embedded_nul)
{
    unsigned char out[8];
    size_t n;

    ck_assert_int_eq(cws_base64_decode("Zm\0v", 4, out, sizeof(out), &n), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_base64_decode(NULL, 4, out, sizeof(out), &n), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_base64_decode("Zm9v", 4, NULL, 3, &n), -CWS_E_INVALID_ARGUMENT);
}
END_TEST

static Suite *base64_suite(void)
{
    Suite *s = suite_create("base64");
    TCase *tc = tcase_create("vectors");

    tcase_add_loop_test(tc, test_encode_rfc_vectors, 0, N_VECTORS);
    tcase_add_loop_test(tc, test_decode_rfc_vectors_padded, 0, N_VECTORS);
    tcase_add_loop_test(tc, test_decode_rfc_vectors_unpadded, 0, N_VECTORS);
    tcase_add_test(tc, test_all_bytes_round_trip);
    tcase_add_test(tc, test_alphabet_ends);
    suite_add_tcase(s, tc);

    tc = tcase_create("sizes");
    tcase_add_test(tc, test_size_helpers);
    tcase_add_test(tc, test_encode_buffer_size);
    tcase_add_test(tc, test_decode_exact_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("invalid");
    tcase_add_loop_test(tc, test_decode_invalid, 0, N_INVALID);
    tcase_add_test(tc, test_decode_embedded_nul);
    tcase_add_test(tc, test_nonzero_trailing_bits_accepted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(base64_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
