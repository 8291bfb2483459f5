/* Typed params accessors: present, absent, nil, wrong type, range, and the error texts. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_encode.h"
#include "rpc_params.h"

static msgpack_sbuffer sb;
static msgpack_unpacked un;
static const msgpack_object *params;

/* {id: "sb-1", timeout_s: 2.5, neg: -3, tty: true, data: bin "ab\0c", nul: "a\0b",
 *  argv: ["ls", "-l"], bad_argv: ["ls", 3], n: nil, f: 7.0, half: 7.5, big: 2^64-1,
 *  config: {image: "python:3.12", res: {cpu: "2"}}, until: "terminal", inf: +inf} */
static void setup(void)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 15);
    cws_rpc_pack_kv_cstr(&pk, "id", "sb-1");
    cws_rpc_pack_cstr(&pk, "timeout_s");
    msgpack_pack_double(&pk, 2.5);
    cws_rpc_pack_kv_int(&pk, "neg", -3);
    cws_rpc_pack_kv_bool(&pk, "tty", true);
    cws_rpc_pack_kv_bin(&pk, "data", "ab\0c", 4);
    cws_rpc_pack_cstr(&pk, "nul");
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "a\0b", 3);
    cws_rpc_pack_cstr(&pk, "argv");
    msgpack_pack_array(&pk, 2);
    cws_rpc_pack_cstr(&pk, "ls");
    cws_rpc_pack_cstr(&pk, "-l");
    cws_rpc_pack_cstr(&pk, "bad_argv");
    msgpack_pack_array(&pk, 2);
    cws_rpc_pack_cstr(&pk, "ls");
    msgpack_pack_int(&pk, 3);
    cws_rpc_pack_kv_nil(&pk, "n");
    cws_rpc_pack_cstr(&pk, "f");
    msgpack_pack_double(&pk, 7.0);
    cws_rpc_pack_cstr(&pk, "half");
    msgpack_pack_double(&pk, 7.5);
    cws_rpc_pack_kv_uint(&pk, "big", UINT64_MAX);
    cws_rpc_pack_cstr(&pk, "config");
    msgpack_pack_map(&pk, 2);
    cws_rpc_pack_kv_cstr(&pk, "image", "python:3.12");
    cws_rpc_pack_cstr(&pk, "res");
    msgpack_pack_map(&pk, 1);
    cws_rpc_pack_kv_cstr(&pk, "cpu", "2");
    cws_rpc_pack_kv_cstr(&pk, "until", "terminal");
    cws_rpc_pack_cstr(&pk, "inf");
    msgpack_pack_double(&pk, 1.0 / 0.0);
    msgpack_unpacked_init(&un);
    ck_assert_int_eq(msgpack_unpack_next(&un, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    params = &un.data;
}

static void teardown(void)
{
    msgpack_unpacked_destroy(&un);
    msgpack_sbuffer_destroy(&sb);
}

START_TEST(str_present_absent_nil_wrong)
{
    char *s = NULL;
    struct cws_error e;
    ck_assert_int_eq(cws_rpc_param_str(params, "id", &s, &e), 1);
    ck_assert_str_eq(s, "sb-1");
    free(s);
    s = NULL;
    ck_assert_int_eq(cws_rpc_param_str(params, "missing", &s, &e), 0);
    ck_assert_int_eq(cws_rpc_param_str(params, "n", &s, &e), 0);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(cws_rpc_param_str(params, "tty", &s, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "tty must be a string");
    ck_assert_int_eq(cws_rpc_param_str(params, "nul", &s, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "nul must not contain NUL bytes");
    ck_assert_ptr_null(s);
}
END_TEST

START_TEST(required_names_the_field)
{
    char *s = NULL;
    struct cws_error e;
    ck_assert_int_eq(cws_rpc_required(cws_rpc_param_str(params, "path", &s, &e), "path", &e),
                     -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "path is required");
    ck_assert_int_eq(e.code, CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_rpc_required(cws_rpc_param_str(params, "id", &s, &e), "id", &e), 1);
    free(s);
}
END_TEST

START_TEST(nonneg_number)
{
    double v = -1;
    struct cws_error e;
    ck_assert_int_eq(cws_rpc_param_nonneg(params, "timeout_s", &v, &e), 1);
    ck_assert(v == 2.5);
    ck_assert_int_eq(cws_rpc_param_nonneg(params, "big", &v, &e), 1);
    ck_assert_int_eq(cws_rpc_param_nonneg(params, "neg", &v, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "neg must be a non-negative number");
    ck_assert_int_eq(cws_rpc_param_nonneg(params, "id", &v, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "id must be a non-negative number");
    ck_assert_int_eq(cws_rpc_param_nonneg(params, "inf", &v, &e), -CWS_E_INVALID_ARGUMENT);
}
END_TEST

START_TEST(integer_ranges)
{
    int64_t v = 0;
    struct cws_error e;
    ck_assert_int_eq(cws_rpc_param_int(params, "neg", -10, 10, &v, &e), 1);
    ck_assert_int_eq(v, -3);
    ck_assert_int_eq(cws_rpc_param_int(params, "f", 0, 10, &v, &e), 1);
    ck_assert_int_eq(v, 7);
    ck_assert_int_eq(cws_rpc_param_int(params, "half", 0, 10, &v, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "half must be an integer");
    ck_assert_int_eq(cws_rpc_param_int(params, "neg", 0, 10, &v, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "neg must be an integer between 0 and 10");
    ck_assert_int_eq(cws_rpc_param_int(params, "big", 0, INT64_MAX, &v, &e),
                     -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_rpc_param_int(params, "id", 0, 1, &v, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "id must be an integer");
}
END_TEST

START_TEST(bool_and_bytes)
{
    bool b = false;
    const void *p;
    size_t n;
    struct cws_error e;
    ck_assert_int_eq(cws_rpc_param_bool(params, "tty", &b, &e), 1);
    ck_assert(b);
    ck_assert_int_eq(cws_rpc_param_bool(params, "id", &b, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "id must be a boolean");
    ck_assert_int_eq(cws_rpc_param_bytes(params, "data", &p, &n, &e), 1);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(memcmp(p, "ab\0c", 4), 0);
    ck_assert_int_eq(cws_rpc_param_bytes(params, "id", &p, &n, &e), 1); /* str is accepted */
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(cws_rpc_param_bytes(params, "neg", &p, &n, &e), -CWS_E_INVALID_ARGUMENT);
}
END_TEST

START_TEST(dotted_paths)
{
    const char *s;
    size_t n;
    struct cws_error e;
    ck_assert_int_eq(cws_rpc_param_strv(params, "config.res.cpu", &s, &n, &e), 1);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(s[0], '2');
    ck_assert_int_eq(cws_rpc_param_strv(params, "config.image", &s, &n, &e), 1);
    ck_assert_int_eq(strncmp(s, "python:3.12", n), 0);
    ck_assert_int_eq(cws_rpc_param_strv(params, "config.nope.x", &s, &n, &e), 0);
    ck_assert_int_eq(cws_rpc_param_strv(params, "config.image.x", &s, &n, &e),
                     -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "config.image must be a map");
    ck_assert_int_eq(cws_rpc_param_strv(params, "config.res", &s, &n, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "config.res must be a string");
}
END_TEST

START_TEST(string_arrays)
{
    char **v = NULL;
    size_t n = 0;
    struct cws_error e;
    ck_assert_int_eq(cws_rpc_param_strv_array(params, "argv", &v, &n, &e), 1);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0], "ls");
    ck_assert_str_eq(v[1], "-l");
    ck_assert_ptr_null(v[2]);
    cws_strv_free(v);
    v = NULL;
    ck_assert_int_eq(cws_rpc_param_strv_array(params, "bad_argv", &v, &n, &e),
                     -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "bad_argv must be an array of strings without NUL bytes (item 1)");
    ck_assert_ptr_null(v);
    ck_assert_int_eq(cws_rpc_param_strv_array(params, "id", &v, &n, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "id must be an array");
    cws_strv_free(NULL);
}
END_TEST

START_TEST(enums)
{
    static const char *const untils[] = {"running", "terminal", NULL};
    int i = -1;
    struct cws_error e;
    ck_assert_int_eq(cws_rpc_param_enum(params, "until", untils, &i, &e), 1);
    ck_assert_int_eq(i, 1);
    ck_assert_int_eq(cws_rpc_param_enum(params, "id", untils, &i, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "id must be one of: running, terminal");
    ck_assert_int_eq(cws_rpc_param_enum(params, "missing", untils, &i, &e), 0);
}
END_TEST

START_TEST(maps_and_arrays)
{
    const msgpack_object *o = NULL;
    struct cws_error e;
    ck_assert_int_eq(cws_rpc_param_map(params, "config", &o, &e), 1);
    ck_assert_uint_eq(o->via.map.size, 2);
    ck_assert_int_eq(cws_rpc_param_map(params, "argv", &o, &e), -CWS_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.message, "argv must be a map");
    ck_assert_int_eq(cws_rpc_param_array(params, "argv", &o, &e), 1);
    ck_assert_uint_eq(o->via.array.size, 2);
}
END_TEST

static Suite *rpc_params_suite(void)
{
    Suite *s = suite_create("rpc_params");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, str_present_absent_nil_wrong);
    tcase_add_test(tc, required_names_the_field);
    tcase_add_test(tc, nonneg_number);
    tcase_add_test(tc, integer_ranges);
    tcase_add_test(tc, bool_and_bytes);
    tcase_add_test(tc, dotted_paths);
    tcase_add_test(tc, string_arrays);
    tcase_add_test(tc, enums);
    tcase_add_test(tc, maps_and_arrays);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rpc_params_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
