/* Path lookups (every precedence rule) and the private-directory checks of paths.c. */
#include "paths.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEST_HOME "/home/tester"

/* Each test runs in its own forked process, so the environment changes stay local. */
static void clear_env(void)
{
    unsetenv("CWSANDBOX_SOCKET");
    unsetenv("XDG_RUNTIME_DIR");
    unsetenv("XDG_STATE_HOME");
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", TEST_HOME, 1);
}

typedef int (*path_fn)(char **, struct cws_error *);

static void assert_path(path_fn fn, const char *expected)
{
    struct cws_error err;
    char *path = NULL;

    ck_assert_int_eq(fn(&path, &err), 0);
    ck_assert_ptr_nonnull(path);
    ck_assert_str_eq(path, expected);
    free(path);
}

/* "/tmp/cwsandbox-$UID" + suffix. */
static char *tmp_uid_path(const char *suffix)
{
    char *path;

    ck_assert_int_ge(asprintf(&path, "/tmp/cwsandbox-%u%s", (unsigned)getuid(), suffix), 0);
    return path;
}

static char *passwd_home_of_uid(void)
{
    struct passwd *pw = getpwuid(getuid());

    ck_assert_ptr_nonnull(pw);
    return strdup(pw->pw_dir);
}

/* ---- socket ---- */

START_TEST(test_socket_env_wins)
{
    setenv("CWSANDBOX_SOCKET", "/srv/cws/custom.sock", 1);
    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    assert_path(cws_socket_path, "/srv/cws/custom.sock");
}
END_TEST

START_TEST(test_socket_xdg_runtime)
{
    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    assert_path(cws_socket_path, "/run/user/1000/cwsandbox/cwsandboxd.sock");
    setenv("XDG_RUNTIME_DIR", "/run/user/1000/", 1);
    assert_path(cws_socket_path, "/run/user/1000/cwsandbox/cwsandboxd.sock");
}
END_TEST

START_TEST(test_socket_fallback_tmp)
{
    char *expected = tmp_uid_path("/cwsandboxd.sock");

    assert_path(cws_socket_path, expected);
    free(expected);
}
END_TEST

START_TEST(test_socket_empty_env_ignored)
{
    setenv("CWSANDBOX_SOCKET", "", 1);
    setenv("XDG_RUNTIME_DIR", "/run/user/42", 1);
    assert_path(cws_socket_path, "/run/user/42/cwsandbox/cwsandboxd.sock");
}
END_TEST

START_TEST(test_socket_bad_xdg_ignored)
{
    char *expected = tmp_uid_path("/cwsandboxd.sock");

    setenv("XDG_RUNTIME_DIR", "", 1);
    assert_path(cws_socket_path, expected);
    setenv("XDG_RUNTIME_DIR", "run/user/1000", 1);
    assert_path(cws_socket_path, expected);
    free(expected);
}
END_TEST

START_TEST(test_env_read_each_call)
{
    setenv("CWSANDBOX_SOCKET", "/a.sock", 1);
    assert_path(cws_socket_path, "/a.sock");
    setenv("CWSANDBOX_SOCKET", "/b.sock", 1);
    assert_path(cws_socket_path, "/b.sock");
    unsetenv("CWSANDBOX_SOCKET");
    setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
    assert_path(cws_socket_path, "/run/user/7/cwsandbox/cwsandboxd.sock");
}
END_TEST

/* ---- runtime dir and local socket ---- */

START_TEST(test_runtime_dir_xdg)
{
    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    assert_path(cws_runtime_dir, "/run/user/1000/cwsandbox");
    assert_path(cws_local_socket_path, "/run/user/1000/cwsandbox/local.sock");
}
END_TEST

START_TEST(test_runtime_dir_fallback)
{
    char *dir = tmp_uid_path("");
    char *sock = tmp_uid_path("/local.sock");

    assert_path(cws_runtime_dir, dir);
    assert_path(cws_local_socket_path, sock);
    setenv("XDG_RUNTIME_DIR", "", 1);
    assert_path(cws_runtime_dir, dir);
    setenv("XDG_RUNTIME_DIR", "relative", 1);
    assert_path(cws_runtime_dir, dir);
    assert_path(cws_local_socket_path, sock);
    free(dir);
    free(sock);
}
END_TEST

START_TEST(test_runtime_dir_ignores_cwsandbox_socket)
{
    setenv("CWSANDBOX_SOCKET", "/srv/other.sock", 1);
    setenv("XDG_RUNTIME_DIR", "/run/user/5", 1);
    assert_path(cws_runtime_dir, "/run/user/5/cwsandbox");
    assert_path(cws_local_socket_path, "/run/user/5/cwsandbox/local.sock");
}
END_TEST

/* ---- state dir ---- */

START_TEST(test_state_dir_xdg)
{
    setenv("XDG_STATE_HOME", "/var/state", 1);
    assert_path(cws_state_dir, "/var/state/cwsandbox");
}
END_TEST

START_TEST(test_state_dir_home)
{
    assert_path(cws_state_dir, TEST_HOME "/.local/state/cwsandbox");
}
END_TEST

START_TEST(test_state_dir_bad_xdg_ignored)
{
    setenv("XDG_STATE_HOME", "", 1);
    assert_path(cws_state_dir, TEST_HOME "/.local/state/cwsandbox");
    setenv("XDG_STATE_HOME", "state", 1);
    assert_path(cws_state_dir, TEST_HOME "/.local/state/cwsandbox");
}
END_TEST

START_TEST(test_state_dir_passwd_home)
{
    char *home = passwd_home_of_uid();
    char *expected;

    ck_assert_int_ge(asprintf(&expected, "%s/.local/state/cwsandbox", home), 0);
    unsetenv("HOME");
    assert_path(cws_state_dir, expected);
    setenv("HOME", "", 1);
    assert_path(cws_state_dir, expected);
    free(expected);
    free(home);
}
END_TEST

/* ---- config file ---- */

START_TEST(test_config_path_xdg)
{
    setenv("XDG_CONFIG_HOME", "/etc/xdg-user", 1);
    assert_path(cws_config_path, "/etc/xdg-user/cwsandbox/config");
}
END_TEST

START_TEST(test_config_path_home)
{
    assert_path(cws_config_path, TEST_HOME "/.config/cwsandbox/config");
    setenv("XDG_CONFIG_HOME", "", 1);
    assert_path(cws_config_path, TEST_HOME "/.config/cwsandbox/config");
    setenv("XDG_CONFIG_HOME", "./conf", 1);
    assert_path(cws_config_path, TEST_HOME "/.config/cwsandbox/config");
}
END_TEST

START_TEST(test_config_path_passwd_home)
{
    char *home = passwd_home_of_uid();
    char *expected;

    ck_assert_int_ge(asprintf(&expected, "%s/.config/cwsandbox/config", home), 0);
    unsetenv("HOME");
    assert_path(cws_config_path, expected);
    free(expected);
    free(home);
}
END_TEST

/* ---- directory checks ---- */

static char test_root[64];

static void make_root(void)
{
    clear_env();
    snprintf(test_root, sizeof(test_root), "/tmp/cws-test-paths-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(test_root));
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void remove_root(void)
{
    nftw(test_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *under_root(const char *name)
{
    char *path;

    ck_assert_int_ge(asprintf(&path, "%s/%s", test_root, name), 0);
    return path;
}

static mode_t mode_of(const char *path)
{
    struct stat st;

    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    return st.st_mode & 07777;
}

START_TEST(test_runtime_ensure_creates_0700_any_umask)
{
    static const mode_t umasks[] = {0, 022, 077, 0277, 0777};

    for (size_t i = 0; i < sizeof(umasks) / sizeof(umasks[0]); i++) {
        struct cws_error err;
        char name[32];
        char *dir;

        snprintf(name, sizeof(name), "run-%zu", i);
        dir = under_root(name);
        mode_t old = umask(umasks[i]);
        int r = cws_runtime_dir_ensure(dir, &err);
        umask(old);
        ck_assert_msg(r == 0, "umask %03o: %s", (unsigned)umasks[i], err.message);
        ck_assert_uint_eq(mode_of(dir), 0700);
        free(dir);
    }
}
END_TEST

START_TEST(test_runtime_ensure_existing_ok)
{
    char *dir = under_root("run");
    struct cws_error err;

    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(cws_runtime_dir_ensure(dir, &err), 0);
    ck_assert_int_eq(cws_runtime_dir_ensure(dir, &err), 0);
    ck_assert_uint_eq(mode_of(dir), 0700);
    free(dir);
}
END_TEST

START_TEST(test_runtime_ensure_missing_parent)
{
    char *dir = under_root("missing/run");
    struct cws_error err;

    ck_assert_int_eq(cws_runtime_dir_ensure(dir, &err), -CWS_E_IO);
    ck_assert_ptr_nonnull(strstr(err.message, dir));
    ck_assert_ptr_nonnull(strstr(err.message, strerror(ENOENT)));
    free(dir);
}
END_TEST

START_TEST(test_runtime_ensure_refuses_file)
{
    char *path = under_root("file");
    struct cws_error err;
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(cws_runtime_dir_ensure(path, &err), -CWS_E_FAILED_PRECONDITION);
    ck_assert_int_eq(err.code, CWS_E_FAILED_PRECONDITION);
    ck_assert_ptr_nonnull(strstr(err.message, path));
    ck_assert_ptr_nonnull(strstr(err.message, "not a directory"));
    free(path);
}
END_TEST

START_TEST(test_runtime_ensure_refuses_symlink_to_dir)
{
    char *target = under_root("target");
    char *link = under_root("link");
    struct cws_error err;

    ck_assert_int_eq(mkdir(target, 0700), 0);
    ck_assert_int_eq(symlink(target, link), 0);
    ck_assert_int_eq(cws_runtime_dir_ensure(link, &err), -CWS_E_FAILED_PRECONDITION);
    ck_assert_ptr_nonnull(strstr(err.message, link));
    ck_assert_ptr_nonnull(strstr(err.message, "symbolic link"));
    free(target);
    free(link);
}
END_TEST

START_TEST(test_runtime_ensure_refuses_open_mode)
{
    char *dir = under_root("open");
    char expected[512];
    struct cws_error err;

    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_int_eq(cws_runtime_dir_ensure(dir, &err), -CWS_E_PERMISSION_DENIED);
    snprintf(expected, sizeof(expected),
             "%s has mode 0755; it must be 0700 (chmod 700 it or remove it)", dir);
    ck_assert_str_eq(err.message, expected);
    /* Refusing must not repair: the user decides. */
    ck_assert_uint_eq(mode_of(dir), 0755);

    ck_assert_int_eq(chmod(dir, 0701), 0);
    ck_assert_int_eq(cws_runtime_dir_ensure(dir, &err), -CWS_E_PERMISSION_DENIED);
    ck_assert_int_eq(chmod(dir, 0710), 0);
    ck_assert_int_eq(cws_runtime_dir_ensure(dir, &err), -CWS_E_PERMISSION_DENIED);
    free(dir);
}
END_TEST

START_TEST(test_runtime_ensure_refuses_other_owner)
{
    char *dir = under_root("foreign");
    char expected[512];
    struct cws_error err;

    if (geteuid() != 0) {
        fprintf(stderr, "test_runtime_ensure_refuses_other_owner: skipped (needs root)\n");
        free(dir);
        return;
    }
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(chown(dir, 65534, 65534), 0);
    ck_assert_int_eq(cws_runtime_dir_ensure(dir, &err), -CWS_E_PERMISSION_DENIED);
    snprintf(expected, sizeof(expected), "%s is owned by uid 65534, not by you (uid 0)", dir);
    ck_assert_str_eq(err.message, expected);
    free(dir);
}
END_TEST

START_TEST(test_runtime_ensure_invalid_argument)
{
    struct cws_error err;

    ck_assert_int_eq(cws_runtime_dir_ensure(NULL, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(cws_runtime_dir_ensure("", NULL), -CWS_E_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_state_ensure_mkdir_p)
{
    char *dir = under_root("home/.local/state/cwsandbox");
    char *parent = under_root("home/.local/state");
    struct cws_error err;
    mode_t old = umask(0777);
    int r = cws_state_dir_ensure(dir, &err);

    umask(old);
    ck_assert_msg(r == 0, "%s", err.message);
    ck_assert_uint_eq(mode_of(dir), 0700);
    (void)mode_of(parent);
    ck_assert_int_eq(cws_state_dir_ensure(dir, &err), 0);
    free(dir);
    free(parent);
}
END_TEST

START_TEST(test_state_ensure_trailing_slash)
{
    char *dir = under_root("a//b/c/");
    char *clean = under_root("a/b/c");
    struct cws_error err;
    mode_t old = umask(0277);
    int r = cws_state_dir_ensure(dir, &err);

    umask(old);
    ck_assert_msg(r == 0, "%s", err.message);
    ck_assert_uint_eq(mode_of(clean), 0700);
    free(dir);
    free(clean);
}
END_TEST

START_TEST(test_state_ensure_accepts_symlinked_dir)
{
    char *target = under_root("real-state");
    char *link = under_root("state");
    struct cws_error err;

    ck_assert_int_eq(mkdir(target, 0755), 0);
    ck_assert_int_eq(symlink(target, link), 0);
    ck_assert_int_eq(cws_state_dir_ensure(link, &err), 0);
    free(target);
    free(link);
}
END_TEST

START_TEST(test_state_ensure_refuses_file)
{
    char *path = under_root("statefile");
    char *below = under_root("statefile/cwsandbox");
    struct cws_error err;
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(cws_state_dir_ensure(path, &err), -CWS_E_FAILED_PRECONDITION);
    ck_assert_ptr_nonnull(strstr(err.message, path));
    ck_assert_ptr_nonnull(strstr(err.message, "not a directory"));
    /* A file in the middle of the path makes mkdir fail. */
    ck_assert_int_eq(cws_state_dir_ensure(below, &err), -CWS_E_IO);
    ck_assert_ptr_nonnull(strstr(err.message, strerror(ENOTDIR)));
    free(path);
    free(below);
}
END_TEST

START_TEST(test_state_ensure_refuses_other_owner)
{
    char *dir = under_root("foreign-state");
    struct cws_error err;

    if (geteuid() != 0) {
        fprintf(stderr, "test_state_ensure_refuses_other_owner: skipped (needs root)\n");
        free(dir);
        return;
    }
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(chown(dir, 65534, 65534), 0);
    ck_assert_int_eq(cws_state_dir_ensure(dir, &err), -CWS_E_PERMISSION_DENIED);
    ck_assert_ptr_nonnull(strstr(err.message, "owned by uid 65534"));
    free(dir);
}
END_TEST

static Suite *paths_suite(void)
{
    Suite *s = suite_create("paths");
    TCase *lookup = tcase_create("lookup");
    TCase *dirs = tcase_create("dirs");

    tcase_add_checked_fixture(lookup, clear_env, NULL);
    tcase_add_test(lookup, test_socket_env_wins);
    tcase_add_test(lookup, test_socket_xdg_runtime);
    tcase_add_test(lookup, test_socket_fallback_tmp);
    tcase_add_test(lookup, test_socket_empty_env_ignored);
    tcase_add_test(lookup, test_socket_bad_xdg_ignored);
    tcase_add_test(lookup, test_env_read_each_call);
    tcase_add_test(lookup, test_runtime_dir_xdg);
    tcase_add_test(lookup, test_runtime_dir_fallback);
    tcase_add_test(lookup, test_runtime_dir_ignores_cwsandbox_socket);
    tcase_add_test(lookup, test_state_dir_xdg);
    tcase_add_test(lookup, test_state_dir_home);
    tcase_add_test(lookup, test_state_dir_bad_xdg_ignored);
    tcase_add_test(lookup, test_state_dir_passwd_home);
    tcase_add_test(lookup, test_config_path_xdg);
    tcase_add_test(lookup, test_config_path_home);
    tcase_add_test(lookup, test_config_path_passwd_home);
    suite_add_tcase(s, lookup);

    tcase_add_checked_fixture(dirs, make_root, remove_root);
    tcase_add_test(dirs, test_runtime_ensure_creates_0700_any_umask);
    tcase_add_test(dirs, test_runtime_ensure_existing_ok);
    tcase_add_test(dirs, test_runtime_ensure_missing_parent);
    tcase_add_test(dirs, test_runtime_ensure_refuses_file);
    tcase_add_test(dirs, test_runtime_ensure_refuses_symlink_to_dir);
    tcase_add_test(dirs, test_runtime_ensure_refuses_open_mode);
    tcase_add_test(dirs, test_runtime_ensure_refuses_other_owner);
    tcase_add_test(dirs, test_runtime_ensure_invalid_argument);
    tcase_add_test(dirs, test_state_ensure_mkdir_p);
    tcase_add_test(dirs, test_state_ensure_trailing_slash);
    tcase_add_test(dirs, test_state_ensure_accepts_symlinked_dir);
    tcase_add_test(dirs, test_state_ensure_refuses_file);
    tcase_add_test(dirs, test_state_ensure_refuses_other_owner);
    suite_add_tcase(s, dirs);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(paths_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
