/* gRPC status: header parsing, details decoding as the SDKs do it, encoding, to_error. */
#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "cws_error.h"
#include "grpc_status.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

#define ERROR_INFO_URL  "type.googleapis.com/google.rpc.ErrorInfo"
#define RETRY_INFO_URL  "type.googleapis.com/google.rpc.RetryInfo"
#define BAD_REQUEST_URL "type.googleapis.com/google.rpc.BadRequest"

/* --- building details by hand with protobuf-c ------------------------------------------- */

static Google__Protobuf__Any *any_raw(const char *type_url, const void *data, size_t len)
{
    Google__Protobuf__Any *any = malloc(sizeof(*any));

    ck_assert_ptr_nonnull(any);
    google__protobuf__any__init(any);
    any->type_url = strdup(type_url);
    any->value.len = len;
    any->value.data = malloc(len + 1);
    ck_assert_ptr_nonnull(any->type_url);
    ck_assert_ptr_nonnull(any->value.data);
    if (len)
        memcpy(any->value.data, data, len);
    return any;
}

static Google__Protobuf__Any *any_pack(const char *type_url, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    Google__Protobuf__Any *any;

    ck_assert_ptr_nonnull(buf);
    protobuf_c_message_pack(m, buf);
    any = any_raw(type_url, buf, len);
    free(buf);
    return any;
}

static void any_free(Google__Protobuf__Any *any)
{
    free(any->type_url);
    free(any->value.data);
    free(any);
}

/* An ErrorInfo Any; kv is key, value, ..., NULL (or NULL). */
static Google__Protobuf__Any *error_info(const char *url, const char *reason, const char *domain,
                                         const char *const *kv)
{
    Google__Rpc__ErrorInfo info = GOOGLE__RPC__ERROR_INFO__INIT;
    Google__Rpc__ErrorInfo__MetadataEntry entries[8], *ptrs[8];
    Google__Protobuf__Any *any;

    for (size_t i = 0; kv && kv[2 * i]; i++) {
        ck_assert_uint_lt(i, 8);
        google__rpc__error_info__metadata_entry__init(&entries[i]);
        entries[i].key = (char *)kv[2 * i];
        entries[i].value = (char *)kv[2 * i + 1];
        ptrs[i] = &entries[i];
        info.n_metadata++;
    }
    info.reason = (char *)reason;
    info.domain = (char *)domain;
    info.metadata = ptrs;
    any = any_pack(url, &info.base);
    return any;
}

static Google__Protobuf__Any *retry_info(int64_t seconds, int32_t nanos)
{
    Google__Rpc__RetryInfo info = GOOGLE__RPC__RETRY_INFO__INIT;
    Google__Protobuf__Duration delay = GOOGLE__PROTOBUF__DURATION__INIT;

    delay.seconds = seconds;
    delay.nanos = nanos;
    info.retry_delay = &delay;
    return any_pack(RETRY_INFO_URL, &info.base);
}

static Google__Protobuf__Any *retry_info_without_delay(void)
{
    Google__Rpc__RetryInfo info = GOOGLE__RPC__RETRY_INFO__INIT;

    return any_pack(RETRY_INFO_URL, &info.base);
}

struct violation {
    const char *field, *description, *reason, *localized;
};

static Google__Protobuf__Any *bad_request(const struct violation *v, size_t n)
{
    Google__Rpc__BadRequest req = GOOGLE__RPC__BAD_REQUEST__INIT;
    Google__Rpc__BadRequest__FieldViolation fv[4], *ptrs[4];
    Google__Rpc__LocalizedMessage lm[4];

    ck_assert_uint_le(n, 4);
    for (size_t i = 0; i < n; i++) {
        google__rpc__bad_request__field_violation__init(&fv[i]);
        fv[i].field = (char *)v[i].field;
        fv[i].description = (char *)v[i].description;
        fv[i].reason = (char *)v[i].reason;
        if (v[i].localized) {
            google__rpc__localized_message__init(&lm[i]);
            lm[i].locale = "en-US";
            lm[i].message = (char *)v[i].localized;
            fv[i].localized_message = &lm[i];
        }
        ptrs[i] = &fv[i];
    }
    req.n_field_violations = n;
    req.field_violations = ptrs;
    return any_pack(BAD_REQUEST_URL, &req.base);
}

/* Serialise a Status holding the n Anys that follow (which are freed). Caller frees. */
static uint8_t *status_bytes(int code, const char *message, size_t *ret_len, size_t n, va_list ap)
{
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    Google__Protobuf__Any *details[8];
    uint8_t *buf;

    ck_assert_uint_le(n, 8);
    for (size_t i = 0; i < n; i++)
        details[i] = va_arg(ap, Google__Protobuf__Any *);
    st.code = code;
    st.message = (char *)message;
    st.n_details = n;
    st.details = details;
    *ret_len = protobuf_c_message_get_packed_size(&st.base);
    buf = malloc(*ret_len + 1);
    ck_assert_ptr_nonnull(buf);
    protobuf_c_message_pack(&st.base, buf);
    for (size_t i = 0; i < n; i++)
        any_free(details[i]);
    return buf;
}

static char *b64(const void *data, size_t len)
{
    size_t size = cws_base64_encoded_len(len) + 1;
    char *text = malloc(size);

    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(cws_base64_encode(data, len, text, size, NULL), 0);
    return text;
}

/* Padded base64 of a Status with the n Anys that follow (freed). Caller frees. */
static char *details(int code, const char *message, size_t n, ...)
{
    va_list ap;
    size_t len;
    uint8_t *buf;
    char *text;

    va_start(ap, n);
    buf = status_bytes(code, message, &len, n, ap);
    va_end(ap);
    text = b64(buf, len);
    free(buf);
    return text;
}

/* The same, as raw bytes. */
static uint8_t *details_raw(size_t *ret_len, int code, const char *message, size_t n, ...)
{
    va_list ap;
    uint8_t *buf;

    va_start(ap, n);
    buf = status_bytes(code, message, ret_len, n, ap);
    va_end(ap);
    return buf;
}

static void parse_ok(const char *code, const char *msg, const char *bin, struct cws_grpc_status *st)
{
    struct cws_error err;

    cws_error_clear(&err);
    ck_assert_msg(cws_grpc_status_parse(code, msg, bin, st, &err) == 0, "parse failed: %s",
                  err.message);
}

static void assert_no_details(const struct cws_grpc_status *st)
{
    ck_assert_ptr_null(st->reason);
    ck_assert_ptr_null(st->domain);
    ck_assert_uint_eq(st->n_metadata, 0);
    ck_assert_int_eq(st->retry_delay_ms, -1);
    ck_assert_uint_eq(st->n_violations, 0);
}

/* --- grpc-status ------------------------------------------------------------------------ */

START_TEST(test_code_only)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;

    parse_ok("5", NULL, NULL, &st);
    ck_assert_int_eq(st.code, 5);
    ck_assert_ptr_nonnull(st.message);
    ck_assert_str_eq(st.message, "");
    assert_no_details(&st);
    cws_grpc_status_clear(&st);
}
END_TEST

START_TEST(test_every_code)
{
    for (int code = 0; code <= 16; code++) {
        struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
        char text[8];

        snprintf(text, sizeof(text), "%d", code);
        parse_ok(text, "m", NULL, &st);
        ck_assert_int_eq(st.code, code);
        cws_grpc_status_clear(&st);
    }
}
END_TEST

static const char *const bad_codes[] = {
    " 1", "1 ", "17", "-1", "1a", "", "+1", "0x1", "100", "99999999999999999999999", "1\n", "a"};
#define N_BAD_CODES (sizeof(bad_codes) / sizeof(bad_codes[0]))

START_TEST(test_bad_code)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    struct cws_error err;
    char want[128];

    st.code = 99; /* must survive the failure */
    ck_assert_int_eq(cws_grpc_status_parse(bad_codes[_i], "m", NULL, &st, &err), -CWS_E_PROTOCOL);
    ck_assert_int_eq(err.code, CWS_E_PROTOCOL);
    snprintf(want, sizeof(want), "invalid grpc-status header: '%s'", bad_codes[_i]);
    ck_assert_str_eq(err.message, want);
    ck_assert_int_eq(st.code, 99);
    ck_assert_ptr_null(st.message);
}
END_TEST

START_TEST(test_missing_code)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    struct cws_error err;
    char *bin = details(3, "inner", 0);

    ck_assert_int_eq(cws_grpc_status_parse(NULL, "m", bin, &st, &err), -CWS_E_PROTOCOL);
    ck_assert_int_eq(err.code, CWS_E_PROTOCOL);
    ck_assert_ptr_null(st.message);
    /* No err is fine too. */
    ck_assert_int_eq(cws_grpc_status_parse(NULL, NULL, NULL, &st, NULL), -CWS_E_PROTOCOL);
    ck_assert_int_eq(cws_grpc_status_parse("1", NULL, NULL, NULL, NULL), -CWS_E_INVALID_ARGUMENT);
    free(bin);
}
END_TEST

/* --- grpc-message ----------------------------------------------------------------------- */

static const char *const messages[][2] = {
    {"%E2%9C%93 ok", "\xe2\x9c\x93 ok"},
    {"%e2%9c%93", "\xe2\x9c\x93"},
    {"100%", "100%"},
    {"%4", "%4"},
    {"%zz", "%zz"},
    {"%4g", "%4g"},
    {"%g4", "%g4"},
    {"a%2", "a%2"},
    {"%", "%"},
    {"%%41", "%A"},
    {"%41%42c", "ABc"},
    {"100%25", "100%"},
    {"%2541", "%41"},
    {"%00x", "%00x"},
    {"%0A", "\n"},
    {"plain text", "plain text"},
    {"", ""},
};
#define N_MESSAGES (sizeof(messages) / sizeof(messages[0]))

START_TEST(test_message_decoding)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;

    parse_ok("2", messages[_i][0], NULL, &st);
    ck_assert_str_eq(st.message, messages[_i][1]);
    cws_grpc_status_clear(&st);
}
END_TEST

/* --- details ---------------------------------------------------------------------------- */

static const char *const file_too_large_kv[] = {"size_bytes", "1048576", "max_size_bytes", "65536",
                                                NULL};

static char *full_details(void)
{
    static const struct violation v[] = {
        {"spec.image", "must not be empty", "EMPTY", NULL},
        {"spec.cpu", "", "TOO_MANY", "at most 8 CPUs"},
    };

    return details(
        3, "inner message", 3,
        error_info(ERROR_INFO_URL, "CWSANDBOX_FILE_TOO_LARGE", "cwsandbox.com", file_too_large_kv),
        retry_info(1, 500000000), bad_request(v, 2));
}

static void assert_full_details(const struct cws_grpc_status *st)
{
    ck_assert_str_eq(st->reason, "CWSANDBOX_FILE_TOO_LARGE");
    ck_assert_str_eq(st->domain, "cwsandbox.com");
    ck_assert_uint_eq(st->n_metadata, 2);
    ck_assert_str_eq(st->metadata[0].key, "size_bytes");
    ck_assert_str_eq(st->metadata[0].value, "1048576");
    ck_assert_str_eq(st->metadata[1].key, "max_size_bytes");
    ck_assert_str_eq(st->metadata[1].value, "65536");
    ck_assert_int_eq(st->retry_delay_ms, 1500);
    ck_assert_uint_eq(st->n_violations, 2);
    ck_assert_str_eq(st->violations[0].field, "spec.image");
    ck_assert_str_eq(st->violations[0].description, "must not be empty");
    ck_assert_str_eq(st->violations[1].field, "spec.cpu");
    ck_assert_str_eq(st->violations[1].description, "at most 8 CPUs");
}

START_TEST(test_full_details)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = full_details();

    parse_ok("9", "file too large", bin, &st);
    /* The headers' code and message win over the Status inside. */
    ck_assert_int_eq(st.code, 9);
    ck_assert_str_eq(st.message, "file too large");
    assert_full_details(&st);
    ck_assert_str_eq(cws_grpc_status_metadata_get(&st, "max_size_bytes"), "65536");
    ck_assert_ptr_null(cws_grpc_status_metadata_get(&st, "filepath"));
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_details_unpadded)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = full_details();
    size_t len = strlen(bin);
    int stripped = 0;

    while (len > 0 && bin[len - 1] == '=') {
        bin[--len] = '\0';
        stripped++;
    }
    /* The fixture must really have had padding for this to test anything. */
    ck_assert_int_gt(stripped, 0);
    parse_ok("9", "m", bin, &st);
    assert_full_details(&st);
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_inner_message_fallback)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = details(3, "inner message", 0);

    parse_ok("9", NULL, bin, &st);
    ck_assert_str_eq(st.message, "inner message");
    ck_assert_int_eq(st.code, 9);
    cws_grpc_status_clear(&st);

    /* An empty grpc-message is still present: it wins. */
    parse_ok("9", "", bin, &st);
    ck_assert_str_eq(st.message, "");
    cws_grpc_status_clear(&st);

    /* Undecodable details leave an absent message empty. */
    parse_ok("9", NULL, "!!!", &st);
    ck_assert_str_eq(st.message, "");
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_first_nonempty_reason_wins)
{
    static const char *const kv1[] = {"from", "first", NULL};
    static const char *const kv2[] = {"from", "second", NULL};
    static const char *const kv3[] = {"from", "third", NULL};
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = details(0, "", 3, error_info(ERROR_INFO_URL, "", "first.example", kv1),
                        error_info(ERROR_INFO_URL, "SECOND", "second.example", kv2),
                        error_info(ERROR_INFO_URL, "THIRD", "third.example", kv3));

    parse_ok("5", "m", bin, &st);
    ck_assert_str_eq(st.reason, "SECOND");
    ck_assert_str_eq(st.domain, "second.example");
    ck_assert_uint_eq(st.n_metadata, 1);
    ck_assert_str_eq(st.metadata[0].value, "second");
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_only_empty_reason)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = details(0, "", 1, error_info(ERROR_INFO_URL, "", "cwsandbox.com", NULL));

    parse_ok("5", "m", bin, &st);
    assert_no_details(&st);
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

static const struct {
    const char *url;
    bool matches;
} type_urls[] = {
    {"foo/google.rpc.ErrorInfo", true},
    {"type.googleapis.com/google.rpc.ErrorInfo", true},
    {"a/b/c/google.rpc.ErrorInfo", true},
    {"google.rpc.ErrorInfo", true},
    {"type.googleapis.com/google.rpc.ErrorInfoX", false},
    {"type.googleapis.com/xgoogle.rpc.ErrorInfo", false},
    {"type.googleapis.com/google.rpc.ErrorInfo/", false},
    {"type.googleapis.com/google.rpc.errorinfo", false},
    {"type.googleapis.com/ErrorInfo", false},
    {"", false},
};
#define N_TYPE_URLS (sizeof(type_urls) / sizeof(type_urls[0]))

START_TEST(test_type_url_matching)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = details(0, "", 1, error_info(type_urls[_i].url, "R", "d", NULL));

    parse_ok("5", "m", bin, &st);
    if (type_urls[_i].matches) {
        ck_assert_ptr_nonnull(st.reason);
        ck_assert_str_eq(st.reason, "R");
    } else {
        ck_assert_msg(st.reason == NULL, "'%s' matched", type_urls[_i].url);
    }
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_first_retry_with_delay_wins)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = details(0, "", 3, retry_info_without_delay(), retry_info(2, 0), retry_info(5, 0));

    parse_ok("14", "m", bin, &st);
    ck_assert_int_eq(st.retry_delay_ms, 2000);
    cws_grpc_status_clear(&st);
    free(bin);

    bin = details(0, "", 1, retry_info_without_delay());
    parse_ok("14", "m", bin, &st);
    ck_assert_int_eq(st.retry_delay_ms, -1);
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

static const struct {
    int64_t seconds;
    int32_t nanos;
    int64_t ms;
} durations[] = {
    {1, 500000000, 1500},
    {0, 0, 0},
    {0, 1, 1},
    {0, 999999, 1},
    {0, 1000000, 1},
    {0, 1000001, 2},
    {2, 999999999, 3000},
    {-5, 0, 0},
    {0, -1, 0},
    {-1, -500000000, 0},
    {2, -500000000, 1500},
    {0, INT32_MAX, 2148},
    {1, INT32_MIN, 0},
    {INT64_MAX, 0, INT64_MAX},
    {INT64_MAX, INT32_MAX, INT64_MAX},
    {INT64_MAX / 1000, 0, INT64_MAX},
    {INT64_MIN, INT32_MIN, 0},
    {315576000000, 999999999, 315576000000000 + 1000},
};
#define N_DURATIONS (sizeof(durations) / sizeof(durations[0]))

START_TEST(test_retry_delay_conversion)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = details(0, "", 1, retry_info(durations[_i].seconds, durations[_i].nanos));

    parse_ok("14", "m", bin, &st);
    ck_assert_int_eq(st.retry_delay_ms, durations[_i].ms);
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_violation_fallbacks)
{
    static const struct violation first[] = {
        {"a", "described", "R_A", "localized a"},
        {"b", "", "R_B", "localized b"},
        {"c", "", "R_C", NULL},
        {"d", "", "R_D", ""},
    };
    static const struct violation second[] = {{"", "", "", NULL}};
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = details(0, "", 2, bad_request(first, 4), bad_request(second, 1));

    parse_ok("3", "m", bin, &st);
    /* Every BadRequest counts, not only the first. */
    ck_assert_uint_eq(st.n_violations, 5);
    ck_assert_str_eq(st.violations[0].description, "described");
    ck_assert_str_eq(st.violations[1].description, "localized b");
    ck_assert_str_eq(st.violations[2].description, "R_C");
    ck_assert_str_eq(st.violations[3].description, "R_D");
    ck_assert_str_eq(st.violations[3].field, "d");
    ck_assert_str_eq(st.violations[4].field, "");
    ck_assert_str_eq(st.violations[4].description, "");
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_garbage_details_ignored)
{
    static const char *const garbage[] = {
        "!!!!", "Zm9vYmFy", "Z", "Zg=", "////", "AAAA", "CAM=", "Zm9v\n", "\x80\x81",
    };
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;

    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        parse_ok("7", "denied", garbage[i], &st);
        ck_assert_int_eq(st.code, 7);
        ck_assert_str_eq(st.message, "denied");
        assert_no_details(&st);
        cws_grpc_status_clear(&st);
    }
}
END_TEST

START_TEST(test_bad_any_payload_skipped)
{
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    static const struct violation v[] = {{"f", "d", "", NULL}};
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = details(0, "", 6, any_raw(ERROR_INFO_URL, junk, sizeof(junk)),
                        any_raw(RETRY_INFO_URL, junk, sizeof(junk)),
                        any_raw(BAD_REQUEST_URL, junk, sizeof(junk)),
                        error_info(ERROR_INFO_URL, "LATER", "cwsandbox.com", NULL),
                        retry_info(3, 0), bad_request(v, 1));

    /* A broken Any is skipped and the next one of its kind still counts. */
    parse_ok("8", "busy", bin, &st);
    ck_assert_int_eq(st.code, 8);
    ck_assert_str_eq(st.reason, "LATER");
    ck_assert_int_eq(st.retry_delay_ms, 3000);
    ck_assert_uint_eq(st.n_violations, 1);
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_unknown_details_ignored)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin =
        details(0, "", 2, any_raw("type.googleapis.com/google.rpc.DebugInfo", "\x0a\x01x", 3),
                error_info(ERROR_INFO_URL, "R", "cwsandbox.com", NULL));

    parse_ok("13", "m", bin, &st);
    ck_assert_str_eq(st.reason, "R");
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_every_truncation)
{
    size_t len;
    uint8_t *raw = details_raw(
        &len, 3, "inner", 2,
        error_info(ERROR_INFO_URL, "CWSANDBOX_FILE_TOO_LARGE", "cwsandbox.com", file_too_large_kv),
        retry_info(1, 500000000));
    char *text = b64(raw, len);
    size_t text_len = strlen(text);

    /* Cut the base64 text anywhere. */
    for (size_t cut = 0; cut <= text_len; cut++) {
        struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
        char *prefix = strndup(text, cut);

        ck_assert_ptr_nonnull(prefix);
        parse_ok("9", "too large", prefix, &st);
        ck_assert_int_eq(st.code, 9);
        ck_assert_str_eq(st.message, "too large");
        cws_grpc_status_clear(&st);
        free(prefix);
    }
    /* Cut the protobuf bytes anywhere, then encode validly. */
    for (size_t cut = 0; cut <= len; cut++) {
        struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
        char *prefix = b64(raw, cut);

        parse_ok("9", NULL, prefix, &st);
        ck_assert_int_eq(st.code, 9);
        ck_assert_ptr_nonnull(st.message);
        if (cut == len)
            ck_assert_str_eq(st.reason, "CWSANDBOX_FILE_TOO_LARGE");
        cws_grpc_status_clear(&st);
        free(prefix);
    }
    free(text);
    free(raw);
}
END_TEST

START_TEST(test_metadata_get_last_wins)
{
    static const char *const kv[] = {"k", "1", "other", "x", "k", "2", NULL};
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = details(0, "", 1, error_info(ERROR_INFO_URL, "R", "d", kv));

    parse_ok("9", "m", bin, &st);
    ck_assert_uint_eq(st.n_metadata, 3);
    ck_assert_str_eq(cws_grpc_status_metadata_get(&st, "k"), "2");
    ck_assert_str_eq(cws_grpc_status_metadata_get(&st, "other"), "x");
    ck_assert_ptr_null(cws_grpc_status_metadata_get(&st, "missing"));
    ck_assert_ptr_null(cws_grpc_status_metadata_get(NULL, "k"));
    ck_assert_ptr_null(cws_grpc_status_metadata_get(&st, NULL));
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_clear_and_reuse)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = full_details();

    cws_grpc_status_clear(NULL);
    cws_grpc_status_clear(&st);
    parse_ok("9", "first", bin, &st);
    cws_grpc_status_clear(&st);
    ck_assert_ptr_null(st.message);
    ck_assert_int_eq(st.code, 0);
    assert_no_details(&st);
    ck_assert_ptr_null(st.metadata);
    ck_assert_ptr_null(st.violations);
    cws_grpc_status_clear(&st);
    parse_ok("4", "second", bin, &st);
    ck_assert_int_eq(st.code, 4);
    ck_assert_str_eq(st.message, "second");
    assert_full_details(&st);
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

/* --- encoding --------------------------------------------------------------------------- */

static const char *const encoded_messages[][2] = {
    {"plain text", "plain text"},
    {"100%", "100%25"},
    {"\xe2\x9c\x93 ok", "%E2%9C%93 ok"},
    {"tab\there\r\n", "tab%09here%0D%0A"},
    {"~ \x7f", "~ %7F"},
    {"%41", "%2541"},
    {"", ""},
};
#define N_ENCODED (sizeof(encoded_messages) / sizeof(encoded_messages[0]))

START_TEST(test_message_encode)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *enc = NULL;

    ck_assert_int_eq(cws_grpc_message_encode(encoded_messages[_i][0], &enc), 0);
    ck_assert_str_eq(enc, encoded_messages[_i][1]);
    parse_ok("2", enc, NULL, &st);
    ck_assert_str_eq(st.message, encoded_messages[_i][0]);
    cws_grpc_status_clear(&st);
    free(enc);
}
END_TEST

START_TEST(test_message_round_trip_all_bytes)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char msg[256], *enc = NULL;

    for (int i = 1; i < 256; i++)
        msg[i - 1] = (char)i;
    msg[255] = '\0';
    ck_assert_int_eq(cws_grpc_message_encode(msg, &enc), 0);
    for (const char *p = enc; *p; p++)
        ck_assert(*p >= 0x20 && *p <= 0x7e);
    parse_ok("2", enc, NULL, &st);
    ck_assert_str_eq(st.message, msg);
    cws_grpc_status_clear(&st);
    free(enc);
    ck_assert_int_eq(cws_grpc_message_encode(NULL, &enc), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_grpc_message_encode("x", NULL), -CWS_E_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_details_round_trip)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = NULL;

    ck_assert_int_eq(cws_grpc_status_details_encode(9, "inner \xe2\x9c\x93",
                                                    "CWSANDBOX_FILE_TOO_LARGE", NULL,
                                                    file_too_large_kv, 1500, &bin),
                     0);
    ck_assert_ptr_null(strchr(bin, '='));
    parse_ok("9", NULL, bin, &st);
    ck_assert_int_eq(st.code, 9);
    ck_assert_str_eq(st.message, "inner \xe2\x9c\x93");
    ck_assert_str_eq(st.reason, "CWSANDBOX_FILE_TOO_LARGE");
    ck_assert_str_eq(st.domain, CWS_GRPC_ERROR_DOMAIN);
    ck_assert_uint_eq(st.n_metadata, 2);
    ck_assert_str_eq(cws_grpc_status_metadata_get(&st, "size_bytes"), "1048576");
    ck_assert_str_eq(cws_grpc_status_metadata_get(&st, "max_size_bytes"), "65536");
    ck_assert_int_eq(st.retry_delay_ms, 1500);
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_details_encode_wire_form)
{
    char *bin = NULL;
    uint8_t buf[512];
    size_t n;
    Google__Rpc__Status *status;

    ck_assert_int_eq(cws_grpc_status_details_encode(14, "busy", "CWSANDBOX_BACKEND_UNAVAILABLE",
                                                    "other.example", NULL, 250, &bin),
                     0);
    ck_assert_int_eq(cws_base64_decode(bin, strlen(bin), buf, sizeof(buf), &n), 0);
    status = google__rpc__status__unpack(NULL, n, buf);
    ck_assert_ptr_nonnull(status);
    ck_assert_int_eq(status->code, 14);
    ck_assert_str_eq(status->message, "busy");
    ck_assert_uint_eq(status->n_details, 2);
    ck_assert_str_eq(status->details[0]->type_url, "type.googleapis.com/google.rpc.ErrorInfo");
    ck_assert_str_eq(status->details[1]->type_url, "type.googleapis.com/google.rpc.RetryInfo");
    {
        Google__Rpc__RetryInfo *ri = google__rpc__retry_info__unpack(
            NULL, status->details[1]->value.len, status->details[1]->value.data);
        Google__Rpc__ErrorInfo *ei = google__rpc__error_info__unpack(
            NULL, status->details[0]->value.len, status->details[0]->value.data);

        ck_assert_ptr_nonnull(ri);
        ck_assert_ptr_nonnull(ri->retry_delay);
        ck_assert_int_eq(ri->retry_delay->seconds, 0);
        ck_assert_int_eq(ri->retry_delay->nanos, 250000000);
        ck_assert_ptr_nonnull(ei);
        ck_assert_str_eq(ei->domain, "other.example");
        ck_assert_uint_eq(ei->n_metadata, 0);
        google__rpc__retry_info__free_unpacked(ri, NULL);
        google__rpc__error_info__free_unpacked(ei, NULL);
    }
    google__rpc__status__free_unpacked(status, NULL);
    free(bin);
}
END_TEST

START_TEST(test_details_encode_minimal)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = NULL;

    /* No reason and no delay: a bare Status. */
    ck_assert_int_eq(cws_grpc_status_details_encode(5, NULL, NULL, NULL, NULL, -1, &bin), 0);
    parse_ok("5", "m", bin, &st);
    assert_no_details(&st);
    cws_grpc_status_clear(&st);
    free(bin);
    ck_assert_int_eq(cws_grpc_status_details_encode(5, "m", "", NULL, NULL, 0, &bin), 0);
    parse_ok("5", "m", bin, &st);
    ck_assert_ptr_null(st.reason);
    ck_assert_int_eq(st.retry_delay_ms, 0);
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_details_encode_invalid)
{
    static const char *const odd_kv[] = {"key", NULL};
    char *bin = (char *)"untouched";

    ck_assert_int_eq(cws_grpc_status_details_encode(17, "m", "R", NULL, NULL, -1, &bin),
                     -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_grpc_status_details_encode(-1, "m", "R", NULL, NULL, -1, &bin),
                     -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_grpc_status_details_encode(3, "m", "R", NULL, odd_kv, -1, &bin),
                     -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_grpc_status_details_encode(3, "m", "R", NULL, NULL, -2, &bin),
                     -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_grpc_status_details_encode(3, "m", "R", NULL, NULL, -1, NULL),
                     -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(bin, "untouched");
}
END_TEST

START_TEST(test_details_encode_violations_round_trip)
{
    static const char *const kv[] = {"filepath", "/tmp/x", NULL};
    static const char *const fd[] = {"spec.image", "must be set", "spec.cpu", "too many: 99", NULL};
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *bin = NULL;

    ck_assert_int_eq(cws_grpc_status_details_encode_with_violations(
                         3, "bad request", "CWSANDBOX_INVALID", NULL, kv, -1, fd, &bin),
                     0);
    parse_ok("3", NULL, bin, &st);
    ck_assert_str_eq(st.message, "bad request");
    ck_assert_str_eq(st.reason, "CWSANDBOX_INVALID");
    ck_assert_str_eq(cws_grpc_status_metadata_get(&st, "filepath"), "/tmp/x");
    ck_assert_int_eq(st.retry_delay_ms, -1);
    ck_assert_uint_eq(st.n_violations, 2);
    ck_assert_str_eq(st.violations[0].field, "spec.image");
    ck_assert_str_eq(st.violations[0].description, "must be set");
    ck_assert_str_eq(st.violations[1].field, "spec.cpu");
    ck_assert_str_eq(st.violations[1].description, "too many: 99");
    cws_grpc_status_clear(&st);
    free(bin);
}
END_TEST

START_TEST(test_details_encode_violations_wire_form)
{
    static const char *const fd[] = {"a", "b", NULL};
    char *bin = NULL;
    uint8_t buf[512];
    size_t n;
    Google__Rpc__Status *status;
    Google__Rpc__BadRequest *req;

    /* Violations alone, no reason: a Status with exactly one BadRequest, last after RetryInfo. */
    ck_assert_int_eq(
        cws_grpc_status_details_encode_with_violations(3, "m", NULL, NULL, NULL, 10, fd, &bin), 0);
    ck_assert_int_eq(cws_base64_decode(bin, strlen(bin), buf, sizeof(buf), &n), 0);
    status = google__rpc__status__unpack(NULL, n, buf);
    ck_assert_ptr_nonnull(status);
    ck_assert_uint_eq(status->n_details, 2);
    ck_assert_str_eq(status->details[0]->type_url, RETRY_INFO_URL);
    ck_assert_str_eq(status->details[1]->type_url, BAD_REQUEST_URL);
    ck_assert_str_eq(CWS_GRPC_BAD_REQUEST_TYPE_URL, BAD_REQUEST_URL);
    req = google__rpc__bad_request__unpack(NULL, status->details[1]->value.len,
                                           status->details[1]->value.data);
    ck_assert_ptr_nonnull(req);
    ck_assert_uint_eq(req->n_field_violations, 1);
    ck_assert_str_eq(req->field_violations[0]->field, "a");
    ck_assert_str_eq(req->field_violations[0]->description, "b");
    google__rpc__bad_request__free_unpacked(req, NULL);
    google__rpc__status__free_unpacked(status, NULL);
    free(bin);

    /* An empty list adds no BadRequest. */
    {
        static const char *const none[] = {NULL};

        ck_assert_int_eq(cws_grpc_status_details_encode_with_violations(3, "m", NULL, NULL, NULL,
                                                                        -1, none, &bin),
                         0);
        ck_assert_int_eq(cws_base64_decode(bin, strlen(bin), buf, sizeof(buf), &n), 0);
        status = google__rpc__status__unpack(NULL, n, buf);
        ck_assert_ptr_nonnull(status);
        ck_assert_uint_eq(status->n_details, 0);
        google__rpc__status__free_unpacked(status, NULL);
        free(bin);
    }
}
END_TEST

START_TEST(test_details_encode_violations_invalid)
{
    static const char *const odd_fd[] = {"field", NULL};
    char *bin = (char *)"untouched";

    ck_assert_int_eq(
        cws_grpc_status_details_encode_with_violations(3, "m", "R", NULL, NULL, -1, odd_fd, &bin),
        -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(bin, "untouched");
}
END_TEST

/* --- to_error --------------------------------------------------------------------------- */

START_TEST(test_to_error_mapping)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    struct cws_error err;
    char *bin = full_details();

    parse_ok("9", "file too large", bin, &st);
    ck_assert_int_eq(cws_grpc_status_to_error(&st, &err), -CWS_E_FAILED_PRECONDITION);
    ck_assert_int_eq(err.code, CWS_E_FAILED_PRECONDITION);
    ck_assert_str_eq(err.message, "file too large");
    ck_assert_str_eq(err.reason, "CWSANDBOX_FILE_TOO_LARGE");
    /* Not retryable by code, but the server named a delay. */
    ck_assert(err.retryable);
    ck_assert_int_eq(err.retry_after_ms, 1500);
    cws_grpc_status_clear(&st);
    free(bin);

    parse_ok("9", "no hint", NULL, &st);
    ck_assert_int_eq(cws_grpc_status_to_error(&st, &err), -CWS_E_FAILED_PRECONDITION);
    ck_assert(!err.retryable);
    ck_assert_int_eq(err.retry_after_ms, -1);
    ck_assert_str_eq(err.reason, "");
    cws_grpc_status_clear(&st);
}
END_TEST

START_TEST(test_to_error_codes)
{
    for (int code = 0; code <= 16; code++) {
        struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
        struct cws_error err;
        char text[8];

        snprintf(text, sizeof(text), "%d", code);
        parse_ok(text, "m", NULL, &st);
        ck_assert_int_eq(cws_grpc_status_to_error(&st, &err), -code);
        ck_assert_int_eq(err.code, cws_errcode_from_grpc(code));
        ck_assert_int_eq(err.retryable, cws_errcode_retryable(cws_errcode_from_grpc(code)));
        cws_grpc_status_clear(&st);
    }
}
END_TEST

START_TEST(test_to_error_defaults)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    struct cws_error err;

    parse_ok("14", NULL, NULL, &st);
    ck_assert_int_eq(cws_grpc_status_to_error(&st, &err), -CWS_E_UNAVAILABLE);
    ck_assert_str_eq(err.message, cws_errcode_message(CWS_E_UNAVAILABLE));
    ck_assert(err.retryable);
    ck_assert_int_eq(cws_grpc_status_to_error(&st, NULL), -CWS_E_UNAVAILABLE);
    cws_grpc_status_clear(&st);

    ck_assert_int_eq(cws_grpc_status_to_error(NULL, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(err.code, CWS_E_INVALID_ARGUMENT);

    /* Hand-filled code out of range: the gRPC rule makes it UNKNOWN. */
    st.code = 42;
    ck_assert_int_eq(cws_grpc_status_to_error(&st, &err), -CWS_E_UNKNOWN);
}
END_TEST

static Suite *grpc_status_suite(void)
{
    Suite *s = suite_create("grpc_status");
    TCase *tc = tcase_create("headers");

    tcase_add_test(tc, test_code_only);
    tcase_add_test(tc, test_every_code);
    tcase_add_loop_test(tc, test_bad_code, 0, N_BAD_CODES);
    tcase_add_test(tc, test_missing_code);
    tcase_add_loop_test(tc, test_message_decoding, 0, N_MESSAGES);
    suite_add_tcase(s, tc);

    tc = tcase_create("details");
    tcase_add_test(tc, test_full_details);
    tcase_add_test(tc, test_details_unpadded);
    tcase_add_test(tc, test_inner_message_fallback);
    tcase_add_test(tc, test_first_nonempty_reason_wins);
    tcase_add_test(tc, test_only_empty_reason);
    tcase_add_loop_test(tc, test_type_url_matching, 0, N_TYPE_URLS);
    tcase_add_test(tc, test_first_retry_with_delay_wins);
    tcase_add_loop_test(tc, test_retry_delay_conversion, 0, N_DURATIONS);
    tcase_add_test(tc, test_violation_fallbacks);
    tcase_add_test(tc, test_garbage_details_ignored);
    tcase_add_test(tc, test_bad_any_payload_skipped);
    tcase_add_test(tc, test_unknown_details_ignored);
    tcase_add_test(tc, test_every_truncation);
    tcase_add_test(tc, test_metadata_get_last_wins);
    tcase_add_test(tc, test_clear_and_reuse);
    suite_add_tcase(s, tc);

    tc = tcase_create("encode");
    tcase_add_loop_test(tc, test_message_encode, 0, N_ENCODED);
    tcase_add_test(tc, test_message_round_trip_all_bytes);
    tcase_add_test(tc, test_details_round_trip);
    tcase_add_test(tc, test_details_encode_wire_form);
    tcase_add_test(tc, test_details_encode_minimal);
    tcase_add_test(tc, test_details_encode_invalid);
    tcase_add_test(tc, test_details_encode_violations_round_trip);
    tcase_add_test(tc, test_details_encode_violations_wire_form);
    tcase_add_test(tc, test_details_encode_violations_invalid);
    suite_add_tcase(s, tc);

    tc = tcase_create("to_error");
    tcase_add_test(tc, test_to_error_mapping);
    tcase_add_test(tc, test_to_error_codes);
    tcase_add_test(tc, test_to_error_defaults);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(grpc_status_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
