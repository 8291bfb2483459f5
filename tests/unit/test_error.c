/* Error table: names, gRPC mapping both ways, retryability, formatting. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cws_error.h"

START_TEST(names_round_trip)
{
    for (int c = 0; c < CWS_E__COUNT; c++) {
        enum cws_errcode back;
        const char *name = cws_errcode_name((enum cws_errcode)c);
        ck_assert_int_eq(cws_errcode_from_name(name, &back), 0);
        ck_assert_int_eq(back, c);
        ck_assert_ptr_nonnull(cws_errcode_message((enum cws_errcode)c));
    }
    enum cws_errcode untouched = CWS_E_INTERNAL;
    ck_assert_int_eq(cws_errcode_from_name("NO_SUCH", &untouched), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(untouched, CWS_E_INTERNAL);
    ck_assert_str_eq(cws_errcode_name((enum cws_errcode)999), "UNKNOWN");
}
END_TEST

/* The DESIGN §3 codes exist under their documented names. */
START_TEST(design_codes_present)
{
    static const char *const names[] = {
        "INVALID_ARGUMENT", "NOT_FOUND",         "ALREADY_EXISTS",
        "UNAUTHENTICATED",  "PERMISSION_DENIED", "FAILED_PRECONDITION",
        "UNAVAILABLE",      "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED",
        "CANCELLED",        "SANDBOX_FAILED",    "SANDBOX_TERMINATED",
        "PROTOCOL",         "INTERNAL",          NULL};
    for (const char *const *n = names; *n; n++) {
        enum cws_errcode c;
        ck_assert_msg(cws_errcode_from_name(*n, &c) == 0, "%s missing", *n);
    }
}
END_TEST

START_TEST(grpc_mapping)
{
    /* gRPC code numbers from the gRPC status code list. */
    ck_assert_int_eq(cws_errcode_from_grpc(0), CWS_E_OK);
    ck_assert_int_eq(cws_errcode_from_grpc(1), CWS_E_CANCELLED);
    ck_assert_int_eq(cws_errcode_from_grpc(3), CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_errcode_from_grpc(4), CWS_E_DEADLINE_EXCEEDED);
    ck_assert_int_eq(cws_errcode_from_grpc(5), CWS_E_NOT_FOUND);
    ck_assert_int_eq(cws_errcode_from_grpc(8), CWS_E_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(cws_errcode_from_grpc(9), CWS_E_FAILED_PRECONDITION);
    ck_assert_int_eq(cws_errcode_from_grpc(12), CWS_E_UNIMPLEMENTED);
    ck_assert_int_eq(cws_errcode_from_grpc(14), CWS_E_UNAVAILABLE);
    ck_assert_int_eq(cws_errcode_from_grpc(16), CWS_E_UNAUTHENTICATED);
    ck_assert_int_eq(cws_errcode_from_grpc(17), CWS_E_UNKNOWN);
    ck_assert_int_eq(cws_errcode_from_grpc(-1), CWS_E_UNKNOWN);
    for (int g = 0; g <= 16; g++)
        ck_assert_int_eq(cws_errcode_to_grpc(cws_errcode_from_grpc(g)), g);
    ck_assert_int_eq(cws_errcode_to_grpc(CWS_E_PROTOCOL), 13);
    ck_assert_int_eq(cws_errcode_to_grpc(CWS_E_SANDBOX_TERMINATED), 9);
}
END_TEST

START_TEST(retryable_codes)
{
    ck_assert(cws_errcode_retryable(CWS_E_UNAVAILABLE));
    ck_assert(cws_errcode_retryable(CWS_E_DEADLINE_EXCEEDED));
    ck_assert(cws_errcode_retryable(CWS_E_RESOURCE_EXHAUSTED));
    ck_assert(!cws_errcode_retryable(CWS_E_NOT_FOUND));
    ck_assert(!cws_errcode_retryable(CWS_E_INVALID_ARGUMENT));
    ck_assert(!cws_errcode_retryable((enum cws_errcode) - 5));
}
END_TEST

START_TEST(set_formats_and_returns_negative)
{
    struct cws_error e;
    ck_assert_int_eq(cws_error_set(&e, CWS_E_NOT_FOUND, "sandbox %s not found", "sb-9"),
                     -CWS_E_NOT_FOUND);
    ck_assert_int_eq(e.code, CWS_E_NOT_FOUND);
    ck_assert_str_eq(e.message, "sandbox sb-9 not found");
    ck_assert_str_eq(e.reason, "");
    ck_assert_int_eq(e.retry_after_ms, -1);
    ck_assert_int_eq(cws_error_set(&e, CWS_E_UNAVAILABLE, NULL), -CWS_E_UNAVAILABLE);
    ck_assert_str_eq(e.message, "the service is unavailable");
    ck_assert(e.retryable);
    cws_error_set_reason(&e, "CWSANDBOX_BACKEND_UNAVAILABLE");
    ck_assert_str_eq(e.reason, "CWSANDBOX_BACKEND_UNAVAILABLE");
    /* A NULL error is allowed everywhere. */
    ck_assert_int_eq(cws_error_set(NULL, CWS_E_IO, "x"), -CWS_E_IO);
    cws_error_set_reason(NULL, "x");
    cws_error_clear(NULL);
}
END_TEST

START_TEST(long_message_truncated)
{
    struct cws_error e;
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cws_error_set(&e, CWS_E_INTERNAL, "%s", big);
    ck_assert_uint_eq(strlen(e.message), CWS_ERROR_MESSAGE_MAX - 1);
}
END_TEST

static Suite *error_suite(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, names_round_trip);
    tcase_add_test(tc, design_codes_present);
    tcase_add_test(tc, grpc_mapping);
    tcase_add_test(tc, retryable_codes);
    tcase_add_test(tc, set_formats_and_returns_negative);
    tcase_add_test(tc, long_message_truncated);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(error_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
