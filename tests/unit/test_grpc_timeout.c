/* grpc-timeout header values: formatting (client side) and parsing (server side). */
#include "grpc_timeout.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_US INT64_C(1000)
#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S  INT64_C(1000000000)
#define NS_PER_M  (60 * NS_PER_S)
#define NS_PER_H  (3600 * NS_PER_S)

struct format_case {
    int64_t ns;
    const char *text;
};

static const struct format_case format_cases[] = {
    {1, "1n"},
    {999, "999n"},
    {1000, "1000n"},
    {99999999, "99999999n"}, /* the largest nanosecond value */
    {100000000, "100000u"},  /* 0.1 s: one more digit than n allows */
    {100000001, "100001u"},  /* rounded up, never down */
    {100000999, "100001u"},  /* rounded up within one unit */
    {100001000, "100001u"},  /* exact */
    {99999999 * NS_PER_US, "99999999u"},
    {99999999 * NS_PER_US + 1, "100000m"},
    {NS_PER_S, "1000000u"},
    {30 * NS_PER_S, "30000000u"},
    {100 * NS_PER_S, "100000m"},
    {99999999 * NS_PER_MS, "99999999m"},
    {99999999 * NS_PER_MS + 1, "100000S"},
    {99999999 * NS_PER_S, "99999999S"},
    {99999999 * NS_PER_S + 1, "1666667M"}, /* ceil(99999999.000000001 / 60) */
    {99999999 * NS_PER_M, "99999999M"},
    {99999999 * NS_PER_M + 1, "1666667H"},
    {INT64_MAX, "2562048H"}, /* ~292 years: int64 nanoseconds never need the H clamp */
};

START_TEST(test_format_table)
{
    const struct format_case *c = &format_cases[_i];
    char buf[CWS_GRPC_TIMEOUT_BUF_SIZE];
    ck_assert_int_eq(cws_grpc_timeout_format(c->ns, buf, NULL), 0);
    ck_assert_str_eq(buf, c->text);
}
END_TEST

START_TEST(test_format_non_positive)
{
    const int64_t values[] = {0, -1, INT64_MIN};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char buf[CWS_GRPC_TIMEOUT_BUF_SIZE] = "untouched";
        struct cws_error err;
        cws_error_clear(&err);
        ck_assert_int_eq(cws_grpc_timeout_format(values[i], buf, &err), -CWS_E_DEADLINE_EXCEEDED);
        ck_assert_int_eq(err.code, CWS_E_DEADLINE_EXCEEDED);
        ck_assert_str_eq(buf, "untouched");
    }
}
END_TEST

struct parse_case {
    const char *text;
    int64_t ns;
};

static const struct parse_case parse_cases[] = {
    {"1n", 1},
    {"0n", 0},
    {"0H", 0},
    {"99999999n", 99999999},
    {"00000001S", NS_PER_S}, /* leading zeros count toward the 8 digits */
    {"5u", 5 * NS_PER_US},
    {"250m", 250 * NS_PER_MS},
    {"30S", 30 * NS_PER_S},
    {"2M", 2 * NS_PER_M},
    {"3H", 3 * NS_PER_H},
    {"2562047H", 2562047 * NS_PER_H}, /* the largest hour count that fits */
    {"2562048H", INT64_MAX},          /* the first that does not: clamped */
    {"99999999H", INT64_MAX},
    {"99999999M", 99999999 * NS_PER_M}, /* fits: ~190 years */
    {"99999999S", 99999999 * NS_PER_S},
};

START_TEST(test_parse_table)
{
    const struct parse_case *c = &parse_cases[_i];
    int64_t ns = -42;
    ck_assert_int_eq(cws_grpc_timeout_parse(c->text, &ns, NULL), 0);
    ck_assert_int_eq(ns, c->ns);
}
END_TEST

static const char *const rejects[] = {
    "",   "1",   "123456789S", "10x", "-1S",  " 1S",  "1S ",  "S",    "1SS",      "1s",
    "1h", "+1S", "1.5S",       "1 S", "1\tS", "0x1S", "\xff", "1S\n", "12345678", "1\x7fS",
};

START_TEST(test_parse_rejects)
{
    const char *bad = rejects[_i];
    int64_t ns = -42;
    struct cws_error err;
    cws_error_clear(&err);
    ck_assert_int_eq(cws_grpc_timeout_parse(bad, &ns, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(ns, -42);
    ck_assert_int_eq(err.code, CWS_E_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(err.message, "grpc-timeout"));
}
END_TEST

START_TEST(test_parse_reject_names_value)
{
    struct cws_error err;
    int64_t ns;
    ck_assert_int_eq(cws_grpc_timeout_parse("10x", &ns, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(err.message, "\"10x\""));
    /* Control bytes from the peer do not reach the message raw. */
    ck_assert_int_eq(cws_grpc_timeout_parse("1\nS", &ns, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(err.message, "\"1?S\""));
    ck_assert_int_eq(cws_grpc_timeout_parse(NULL, &ns, &err), -CWS_E_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_parse_reject_long_value_bounded)
{
    char longval[4096];
    memset(longval, '7', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    struct cws_error err;
    int64_t ns;
    ck_assert_int_eq(cws_grpc_timeout_parse(longval, &ns, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_uint_lt(strlen(err.message), 200);
}
END_TEST

/* Formatting then parsing never shortens the deadline, and lengthens it by less than one
 * unit of the chosen precision. */
START_TEST(test_round_trip_never_shrinks)
{
    int64_t v = 1;
    for (int i = 0; i < 2000; i++) {
        char buf[CWS_GRPC_TIMEOUT_BUF_SIZE];
        ck_assert_int_eq(cws_grpc_timeout_format(v, buf, NULL), 0);
        ck_assert_uint_le(strlen(buf), 9);
        int64_t back = 0;
        ck_assert_int_eq(cws_grpc_timeout_parse(buf, &back, NULL), 0);
        ck_assert_int_ge(back, v);
        int64_t units[] = {1, NS_PER_US, NS_PER_MS, NS_PER_S, NS_PER_M, NS_PER_H};
        const char *symbols = "numSMH";
        int64_t unit = units[strchr(symbols, buf[strlen(buf) - 1]) - symbols];
        ck_assert_int_lt(back - v, unit);
        /* Walk the int64 range with values that straddle unit boundaries. */
        v = v < INT64_MAX / 4 ? v * 3 + (i % 7) : (int64_t)(v / 5 + 11);
    }
}
END_TEST

static Suite *grpc_timeout_suite(void)
{
    Suite *s = suite_create("grpc_timeout");

    TCase *tc = tcase_create("format");
    tcase_add_loop_test(tc, test_format_table, 0,
                        (int)(sizeof(format_cases) / sizeof(format_cases[0])));
    tcase_add_test(tc, test_format_non_positive);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_parse_table, 0,
                        (int)(sizeof(parse_cases) / sizeof(parse_cases[0])));
    tcase_add_loop_test(tc, test_parse_rejects, 0, (int)(sizeof(rejects) / sizeof(rejects[0])));
    tcase_add_test(tc, test_parse_reject_names_value);
    tcase_add_test(tc, test_parse_reject_long_value_bounded);
    suite_add_tcase(s, tc);

    tc = tcase_create("round trip");
    tcase_add_test(tc, test_round_trip_never_shrinks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(grpc_timeout_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
