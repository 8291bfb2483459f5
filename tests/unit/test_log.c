/* Logging: level parsing and filtering, the stderr line format, and the journald sink.
 *
 * sd_journal_sendv() is defined below: the test executable's definition takes precedence
 * over libsystemd's, so the journal sink's entries can be checked without a journal. */
#include "log.h"

#include <check.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#define ELLIPSIS "\xe2\x80\xa6"

/* ---- a recording sink ---- */

#define RECORD_FIELDS_MAX 8

struct record {
    int calls;
    enum cws_log_level level;
    char message[2 * CWS_LOG_LINE_MAX];
    char fields[RECORD_FIELDS_MAX][256];
    int nfields;
    void *userdata;
};

static struct record rec;

static void record_sink(enum cws_log_level level, const char *const *fields, const char *message,
                        void *userdata)
{
    rec.calls++;
    rec.level = level;
    rec.userdata = userdata;
    snprintf(rec.message, sizeof(rec.message), "%s", message);
    rec.nfields = 0;
    for (size_t i = 0; fields && fields[i] && i < RECORD_FIELDS_MAX; i++)
        snprintf(rec.fields[rec.nfields++], sizeof(rec.fields[0]), "%s", fields[i]);
}

/* Counts how often log arguments are evaluated. */
static int argument_evaluations;

static int counted_argument(void)
{
    argument_evaluations++;
    return 42;
}

/* ---- the fake journal ---- */

#define JOURNAL_ENTRY_MAX 16

static int journal_calls;
static int journal_result;
static int journal_nfields;
static char journal_fields[JOURNAL_ENTRY_MAX][CWS_LOG_LINE_MAX + 32];

int sd_journal_sendv(const struct iovec *iov, int n)
{
    journal_calls++;
    journal_nfields = 0;
    for (int i = 0; i < n && i < JOURNAL_ENTRY_MAX; i++) {
        snprintf(journal_fields[i], sizeof(journal_fields[0]), "%.*s", (int)iov[i].iov_len,
                 (const char *)iov[i].iov_base);
        journal_nfields++;
    }
    return journal_result;
}

static bool journal_has(const char *field)
{
    for (int i = 0; i < journal_nfields; i++) {
        if (strcmp(journal_fields[i], field) == 0)
            return true;
    }
    return false;
}

static bool journal_has_name(const char *prefix)
{
    for (int i = 0; i < journal_nfields; i++) {
        if (strncmp(journal_fields[i], prefix, strlen(prefix)) == 0)
            return true;
    }
    return false;
}

/* ---- capturing stderr ---- */

struct capture {
    int saved_fd;
    FILE *file;
};

static void capture_begin(struct capture *c)
{
    fflush(stderr);
    c->file = tmpfile();
    ck_assert_ptr_nonnull(c->file);
    c->saved_fd = dup(STDERR_FILENO);
    ck_assert_int_ge(c->saved_fd, 0);
    ck_assert_int_eq(dup2(fileno(c->file), STDERR_FILENO), STDERR_FILENO);
}

/* Restores stderr; returns what was written, which the caller frees. */
static char *capture_end(struct capture *c)
{
    long size;
    char *text;

    ck_assert_int_eq(dup2(c->saved_fd, STDERR_FILENO), STDERR_FILENO);
    close(c->saved_fd);
    fseek(c->file, 0, SEEK_END);
    size = ftell(c->file);
    ck_assert_int_ge(size, 0);
    text = calloc(1, (size_t)size + 1);
    ck_assert_ptr_nonnull(text);
    rewind(c->file);
    ck_assert_uint_eq(fread(text, 1, (size_t)size, c->file), (size_t)size);
    fclose(c->file);
    return text;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == c;
    return n;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);

    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Whether s is valid UTF-8 (no sequence cut in the middle). */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : 4;
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
        }
        p += n;
    }
    return true;
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t re;

    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    ck_assert_msg(regexec(&re, text, 0, NULL, 0) == 0, "\"%s\" does not match /%s/", text, pattern);
    regfree(&re);
}

static void setup(void)
{
    unsetenv("CWSANDBOX_LOG_LEVEL");
    unsetenv("JOURNAL_STREAM");
    memset(&rec, 0, sizeof(rec));
    argument_evaluations = 0;
    journal_calls = 0;
    journal_result = 0;
    journal_nfields = 0;
    /* Tests also run unforked (CK_FORK=no) under a debugger: start from the defaults. */
    cws_log_set_level(CWS_LOG_INFO);
    cws_log_set_sink(NULL, NULL);
}

/* ---- level names and parsing ---- */

START_TEST(test_level_parse_good)
{
    static const char *const names[] = {"error", "warn", "info", "debug", "trace"};
    static const enum cws_log_level levels[] = {CWS_LOG_ERROR, CWS_LOG_WARN, CWS_LOG_INFO,
                                                CWS_LOG_DEBUG, CWS_LOG_TRACE};

    for (size_t i = 0; i < 5; i++) {
        enum cws_log_level level = CWS_LOG_TRACE + 1;
        ck_assert_int_eq(cws_log_level_parse(names[i], &level, NULL), 0);
        ck_assert_int_eq(level, levels[i]);
        ck_assert_str_eq(cws_log_level_name(levels[i]), names[i]);
    }
    ck_assert_str_eq(cws_log_level_name((enum cws_log_level)99), "unknown");
}
END_TEST

START_TEST(test_level_parse_mixed_case)
{
    enum cws_log_level level;

    ck_assert_int_eq(cws_log_level_parse("WaRn", &level, NULL), 0);
    ck_assert_int_eq(level, CWS_LOG_WARN);
    ck_assert_int_eq(cws_log_level_parse("DEBUG", &level, NULL), 0);
    ck_assert_int_eq(level, CWS_LOG_DEBUG);
    ck_assert_int_eq(cws_log_level_parse("Trace", &level, NULL), 0);
    ck_assert_int_eq(level, CWS_LOG_TRACE);
}
END_TEST

START_TEST(test_level_parse_bad)
{
    static const char *const bad[] = {"verbose", "", "inf", "infos", "warning", " info"};
    enum cws_log_level level = CWS_LOG_ERROR;
    struct cws_error err;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(cws_log_level_parse(bad[i], &level, &err), -CWS_E_INVALID_ARGUMENT);
        ck_assert_int_eq(err.code, CWS_E_INVALID_ARGUMENT);
        ck_assert_ptr_nonnull(strstr(err.message, "error, warn, info, debug, trace"));
        ck_assert_int_eq(level, CWS_LOG_ERROR);
    }
    cws_log_level_parse("verbose", &level, &err);
    ck_assert_ptr_nonnull(strstr(err.message, "\"verbose\""));
    ck_assert_int_eq(cws_log_level_parse(NULL, &level, &err), -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(level, CWS_LOG_ERROR);
}
END_TEST

START_TEST(test_set_level)
{
    ck_assert_int_eq(cws_log_get_level(), CWS_LOG_INFO);
    cws_log_set_level(CWS_LOG_TRACE);
    ck_assert_int_eq(cws_log_get_level(), CWS_LOG_TRACE);
    ck_assert(cws_log_enabled(CWS_LOG_TRACE));
    cws_log_set_level((enum cws_log_level)77);
    ck_assert_int_eq(cws_log_get_level(), CWS_LOG_TRACE);
    cws_log_set_level(CWS_LOG_ERROR);
    ck_assert(cws_log_enabled(CWS_LOG_ERROR));
    ck_assert(!cws_log_enabled(CWS_LOG_WARN));
}
END_TEST

/* ---- filtering and sinks ---- */

START_TEST(test_filter_before_formatting)
{
    const char *const fields[] = {"SANDBOX_ID=sb-1", NULL};
    int marker;

    cws_log_set_sink(record_sink, &marker);
    cws_log(CWS_LOG_DEBUG, "debug %d", counted_argument());
    cws_log(CWS_LOG_TRACE, "trace %d", counted_argument());
    cws_log_fields(CWS_LOG_DEBUG, fields, "debug %d", counted_argument());
    ck_assert_int_eq(rec.calls, 0);
    ck_assert_int_eq(argument_evaluations, 0);

    cws_log(CWS_LOG_INFO, "info %d", counted_argument());
    ck_assert_int_eq(rec.calls, 1);
    ck_assert_int_eq(argument_evaluations, 1);
    ck_assert_int_eq(rec.level, CWS_LOG_INFO);
    ck_assert_str_eq(rec.message, "info 42");
    ck_assert_ptr_eq(rec.userdata, &marker);

    cws_log(CWS_LOG_ERROR, "error %s", "x");
    ck_assert_int_eq(rec.calls, 2);
    ck_assert_int_eq(rec.level, CWS_LOG_ERROR);

    cws_log_set_level(CWS_LOG_DEBUG);
    cws_log(CWS_LOG_DEBUG, "debug %d", counted_argument());
    ck_assert_int_eq(rec.calls, 3);
    ck_assert_str_eq(rec.message, "debug 42");
    cws_log(CWS_LOG_TRACE, "trace %d", counted_argument());
    ck_assert_int_eq(rec.calls, 3);
    ck_assert_int_eq(argument_evaluations, 2);
}
END_TEST

START_TEST(test_emit_filters_too)
{
    cws_log_set_sink(record_sink, NULL);
    cws_log_emit(CWS_LOG_DEBUG, NULL, "hidden");
    cws_log_emit((enum cws_log_level)42, NULL, "invalid level");
    ck_assert_int_eq(rec.calls, 0);
    cws_log_emit(CWS_LOG_WARN, NULL, "shown");
    ck_assert_int_eq(rec.calls, 1);
}
END_TEST

START_TEST(test_sink_gets_fields)
{
    const char *const fields[] = {"SANDBOX_ID=sb-1", "SESSION=ci", NULL};

    cws_log_set_sink(record_sink, NULL);
    cws_log_fields(CWS_LOG_WARN, fields, "hello %s\nsecond line", "world");
    ck_assert_int_eq(rec.calls, 1);
    ck_assert_int_eq(rec.level, CWS_LOG_WARN);
    /* Sinks get the message as written; only the stderr line escapes it. */
    ck_assert_str_eq(rec.message, "hello world\nsecond line");
    ck_assert_int_eq(rec.nfields, 2);
    ck_assert_str_eq(rec.fields[0], "SANDBOX_ID=sb-1");
    ck_assert_str_eq(rec.fields[1], "SESSION=ci");

    cws_log(CWS_LOG_WARN, "no fields");
    ck_assert_int_eq(rec.nfields, 0);
}
END_TEST

START_TEST(test_sink_message_bounded)
{
    char big[3 * CWS_LOG_LINE_MAX];

    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cws_log_set_sink(record_sink, NULL);
    cws_log(CWS_LOG_INFO, "%s", big);
    ck_assert_uint_lt(strlen(rec.message), CWS_LOG_LINE_MAX);
    ck_assert_uint_gt(strlen(rec.message), CWS_LOG_LINE_MAX - 8);
    ck_assert(ends_with(rec.message, "m" ELLIPSIS));

    /* A cut never splits a character, wherever the limit falls in one. */
    for (size_t shift = 0; shift < 3; shift++) {
        size_t len = shift;

        memset(big, 'a', shift);
        while (len + 3 < sizeof(big)) {
            memcpy(big + len, "\xe2\x9c\x93", 3);
            len += 3;
        }
        big[len] = '\0';
        cws_log(CWS_LOG_INFO, "%s", big);
        ck_assert(ends_with(rec.message, ELLIPSIS));
        ck_assert_msg(utf8_valid(rec.message), "shift %zu", shift);
    }
}
END_TEST

START_TEST(test_null_sink_restores_stderr)
{
    struct capture c;
    char *out;

    cws_log_set_sink(record_sink, NULL);
    cws_log_set_sink(NULL, NULL);
    capture_begin(&c);
    cws_log(CWS_LOG_WARN, "back to stderr");
    out = capture_end(&c);
    ck_assert_int_eq(rec.calls, 0);
    ck_assert_ptr_nonnull(strstr(out, "warn: back to stderr\n"));
    free(out);
}
END_TEST

START_TEST(test_errno_preserved)
{
    struct capture c;

    capture_begin(&c);
    errno = EPIPE;
    cws_log(CWS_LOG_ERROR, "keeps errno");
    ck_assert_int_eq(errno, EPIPE);
    free(capture_end(&c));
}
END_TEST

/* ---- the stderr line ---- */

static char *log_line(enum cws_log_level level, const char *const *fields, const char *message)
{
    struct capture c;

    capture_begin(&c);
    cws_log_fields(level, fields, "%s", message);
    return capture_end(&c);
}

START_TEST(test_stderr_line_format)
{
    const char *const fields[] = {"KEY=value", "SANDBOX_ID=sb-9", NULL};
    char pattern[512];
    struct tm tm;
    char *line;

    /* A local-time timestamp would show in a zone far from UTC. */
    setenv("TZ", "Asia/Kolkata", 1);
    tzset();
    cws_log_init("cwsandboxd");
    line = log_line(CWS_LOG_WARN, fields, "hello 7");
    snprintf(pattern, sizeof(pattern),
             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
             "cwsandboxd\\[%ld\\] warn: hello 7 KEY=value SANDBOX_ID=sb-9\n$",
             (long)getpid());
    assert_matches(line, pattern);

    memset(&tm, 0, sizeof(tm));
    ck_assert_ptr_nonnull(strptime(line, "%Y-%m-%dT%H:%M:%S", &tm));
    ck_assert_int_le(labs((long)(timegm(&tm) - time(NULL))), 5);
    free(line);
}
END_TEST

START_TEST(test_stderr_level_names)
{
    static const enum cws_log_level levels[] = {CWS_LOG_ERROR, CWS_LOG_WARN, CWS_LOG_INFO,
                                                CWS_LOG_DEBUG, CWS_LOG_TRACE};
    static const char *const expected[] = {"] error: m\n", "] warn: m\n", "] info: m\n",
                                           "] debug: m\n", "] trace: m\n"};

    cws_log_set_level(CWS_LOG_TRACE);
    for (size_t i = 0; i < 5; i++) {
        char *line = log_line(levels[i], NULL, "m");
        ck_assert_msg(ends_with(line, expected[i]), "got \"%s\"", line);
        free(line);
    }
}
END_TEST

START_TEST(test_stderr_default_program)
{
    char expected[64];
    char *line = log_line(CWS_LOG_INFO, NULL, "x");

    snprintf(expected, sizeof(expected), "Z %s[%ld] info: x\n", program_invocation_short_name,
             (long)getpid());
    ck_assert_ptr_nonnull(strstr(line, expected));
    free(line);
}
END_TEST

START_TEST(test_stderr_escapes_newlines)
{
    const char *const fields[] = {"ERROR=a\nb", NULL};
    char *line;

    cws_log_init("prog");
    line = log_line(CWS_LOG_ERROR, fields, "first\nsecond\r\tthird\\ bell\a end");
    ck_assert_uint_eq(count_char(line, '\n'), 1);
    ck_assert(ends_with(line, "error: first\\nsecond\\r\\tthird\\\\ bell\\x07 end ERROR=a\\nb\n"));
    free(line);
}
END_TEST

START_TEST(test_stderr_keeps_utf8)
{
    char *line = log_line(CWS_LOG_INFO, NULL, "caf\xc3\xa9 \xe2\x9c\x93");

    ck_assert(ends_with(line, "info: caf\xc3\xa9 \xe2\x9c\x93\n"));
    free(line);
}
END_TEST

START_TEST(test_stderr_truncates_long_message)
{
    char big[10000];
    char *line;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cws_log_init("prog");
    line = log_line(CWS_LOG_INFO, NULL, big);
    ck_assert_uint_le(strlen(line), CWS_LOG_LINE_MAX);
    ck_assert_uint_gt(strlen(line), CWS_LOG_LINE_MAX - 16);
    ck_assert(ends_with(line, "xxx" ELLIPSIS "\n"));
    ck_assert_uint_eq(count_char(line, '\n'), 1);
    ck_assert_ptr_nonnull(strstr(line, "prog["));
    free(line);
}
END_TEST

START_TEST(test_stderr_truncates_escapes_and_utf8)
{
    /* Escaping doubles newlines' size; both must be cut whole, never half. */
    for (size_t shift = 0; shift < 4; shift++) {
        char big[6000];
        size_t len = 0;
        char *line;

        memset(big, 'a', shift);
        len = shift;
        while (len + 3 < sizeof(big)) {
            memcpy(big + len, "\xc3\xa9\n", 3);
            len += 3;
        }
        big[len] = '\0';
        line = log_line(CWS_LOG_INFO, NULL, big);
        ck_assert_uint_le(strlen(line), CWS_LOG_LINE_MAX);
        ck_assert(ends_with(line, ELLIPSIS "\n"));
        ck_assert_uint_eq(count_char(line, '\n'), 1);
        ck_assert(utf8_valid(line));
        line[strlen(line) - strlen(ELLIPSIS "\n")] = '\0';
        ck_assert_msg(!ends_with(line, "\\"), "an escape was cut");
        free(line);
    }
}
END_TEST

START_TEST(test_stderr_truncates_fields)
{
    char field[3000];
    const char *const fields[] = {field, field, NULL};
    char *line;

    memcpy(field, "BIG=", 4);
    memset(field + 4, 'f', sizeof(field) - 5);
    field[sizeof(field) - 1] = '\0';
    line = log_line(CWS_LOG_INFO, fields, "short");
    ck_assert_uint_le(strlen(line), CWS_LOG_LINE_MAX);
    ck_assert(ends_with(line, "f" ELLIPSIS "\n"));
    ck_assert_ptr_nonnull(strstr(line, "info: short BIG=fff"));
    free(line);
}
END_TEST

/* A SOCK_SEQPACKET stderr keeps write() boundaries: one message means one write(). */
START_TEST(test_stderr_single_write)
{
    const char *const fields[] = {"SANDBOX_ID=sb-1", "SESSION=ci", NULL};
    char big[5000], buf[2 * CWS_LOG_LINE_MAX];
    int sv[2], saved;
    ssize_t n;

    memset(big, 'w', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    saved = dup(STDERR_FILENO);
    ck_assert_int_eq(dup2(sv[0], STDERR_FILENO), STDERR_FILENO);
    cws_log_fields(CWS_LOG_WARN, fields, "short %d", 1);
    cws_log_fields(CWS_LOG_WARN, fields, "%s", big);
    ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);

    n = recv(sv[1], buf, sizeof(buf) - 1, MSG_DONTWAIT);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert(ends_with(buf, "warn: short 1 SANDBOX_ID=sb-1 SESSION=ci\n"));
    n = recv(sv[1], buf, sizeof(buf) - 1, MSG_DONTWAIT);
    ck_assert_int_eq(n, CWS_LOG_LINE_MAX);
    buf[n] = '\0';
    ck_assert(ends_with(buf, ELLIPSIS "\n"));
    ck_assert_int_lt(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), 0);
    close(sv[0]);
    close(sv[1]);
    close(saved);
}
END_TEST

/* ---- init from the environment ---- */

START_TEST(test_init_reads_env)
{
    setenv("CWSANDBOX_LOG_LEVEL", "debug", 1);
    cws_log_init("cwsandboxd");
    ck_assert_int_eq(cws_log_get_level(), CWS_LOG_DEBUG);
    ck_assert_str_eq(cws_log_program(), "cwsandboxd");
    setenv("CWSANDBOX_LOG_LEVEL", "TRACE", 1);
    cws_log_init(NULL);
    ck_assert_int_eq(cws_log_get_level(), CWS_LOG_TRACE);
    ck_assert_str_eq(cws_log_program(), "cwsandboxd");
}
END_TEST

START_TEST(test_init_unset_keeps_info)
{
    cws_log_init("cwsandbox");
    ck_assert_int_eq(cws_log_get_level(), CWS_LOG_INFO);
    setenv("CWSANDBOX_LOG_LEVEL", "", 1);
    cws_log_init("cwsandbox");
    ck_assert_int_eq(cws_log_get_level(), CWS_LOG_INFO);
}
END_TEST

START_TEST(test_init_bad_env_warns)
{
    struct capture c;
    char *out;

    setenv("CWSANDBOX_LOG_LEVEL", "loud", 1);
    capture_begin(&c);
    cws_log_init("cwsandboxd");
    out = capture_end(&c);
    ck_assert_int_eq(cws_log_get_level(), CWS_LOG_INFO);
    ck_assert_uint_eq(count_char(out, '\n'), 1);
    ck_assert_ptr_nonnull(strstr(out, "cwsandboxd["));
    ck_assert_ptr_nonnull(strstr(out, "warn: CWSANDBOX_LOG_LEVEL"));
    ck_assert_ptr_nonnull(strstr(out, "invalid log level \"loud\""));
    ck_assert_ptr_nonnull(strstr(out, "error, warn, info, debug, trace"));
    free(out);
}
END_TEST

/* ---- the journal sink ---- */

static void set_journal_stream_to_stderr(void)
{
    struct stat st;
    char value[64];

    ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
    snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
}

/* Log once; says whether it went to stderr, and fills the fake journal if it went there. */
static bool logged_to_stderr(const char *message)
{
    struct capture c;
    char *out;
    bool found;

    capture_begin(&c);
    cws_log(CWS_LOG_WARN, "%s", message);
    out = capture_end(&c);
    found = strstr(out, message) != NULL;
    free(out);
    return found;
}

START_TEST(test_journal_unset)
{
    ck_assert_int_eq(cws_log_use_journal_if_available(), 0);
    ck_assert(logged_to_stderr("still stderr"));
    ck_assert_int_eq(journal_calls, 0);
}
END_TEST

START_TEST(test_journal_mismatch)
{
    static const char *const values[] = {"", "abc", "1:", ":2", "1:2x", "-1:2", "1:2:3", "1 :2"};
    struct capture c;
    struct stat st;
    char value[64];

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        setenv("JOURNAL_STREAM", values[i], 1);
        ck_assert_msg(cws_log_use_journal_if_available() == 0, "JOURNAL_STREAM=%s", values[i]);
    }
    /* Right device, wrong inode: an inherited variable after stderr was redirected. */
    capture_begin(&c);
    ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
    snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", value, 1);
    ck_assert_int_eq(cws_log_use_journal_if_available(), 0);
    /* The right numbers followed by junk are not systemd's format either. */
    snprintf(value, sizeof(value), "%llu:%llux", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
    ck_assert_int_eq(cws_log_use_journal_if_available(), 0);
    snprintf(value, sizeof(value), " %llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
    ck_assert_int_eq(cws_log_use_journal_if_available(), 0);
    free(capture_end(&c));

    ck_assert(logged_to_stderr("not the journal"));
    ck_assert_int_eq(journal_calls, 0);
}
END_TEST

START_TEST(test_journal_match_installs)
{
    const char *const fields[] = {"SANDBOX_ID=sb-1", "SESSION=ci", NULL};
    struct capture c;
    char *out;

    cws_log_init("cwsandboxd");
    capture_begin(&c);
    set_journal_stream_to_stderr();
    ck_assert_int_eq(cws_log_use_journal_if_available(), 1);
    cws_log_fields(CWS_LOG_WARN, fields, "hello %d\nmore", 5);
    out = capture_end(&c);

    ck_assert_int_eq(journal_calls, 1);
    ck_assert_str_eq(out, "");
    ck_assert(journal_has("PRIORITY=4"));
    ck_assert(journal_has("MESSAGE=hello 5\nmore"));
    ck_assert(journal_has("SYSLOG_IDENTIFIER=cwsandboxd"));
    ck_assert(journal_has("SANDBOX_ID=sb-1"));
    ck_assert(journal_has("SESSION=ci"));
    ck_assert_int_eq(journal_nfields, 5);
    free(out);
}
END_TEST

START_TEST(test_journal_priorities)
{
    static const enum cws_log_level levels[] = {CWS_LOG_ERROR, CWS_LOG_WARN, CWS_LOG_INFO,
                                                CWS_LOG_DEBUG, CWS_LOG_TRACE};
    static const char *const priorities[] = {"PRIORITY=3", "PRIORITY=4", "PRIORITY=6", "PRIORITY=7",
                                             "PRIORITY=7"};

    ck_assert_int_eq(cws_log_use_journal(), 0);
    cws_log_set_level(CWS_LOG_TRACE);
    for (size_t i = 0; i < 5; i++) {
        cws_log(levels[i], "level %zu", i);
        ck_assert_int_eq(journal_calls, (int)i + 1);
        ck_assert_msg(journal_has(priorities[i]), "level %s", cws_log_level_name(levels[i]));
        ck_assert_int_eq(journal_nfields, 3);
    }
    cws_log_set_level(CWS_LOG_INFO);
    cws_log(CWS_LOG_DEBUG, "filtered %d", counted_argument());
    ck_assert_int_eq(journal_calls, 5);
    ck_assert_int_eq(argument_evaluations, 0);
}
END_TEST

START_TEST(test_journal_skips_bad_fields)
{
    const char *const fields[] = {"lower=1",      "_PID=1", "NOEQUALS",  "=empty",
                                  "MESSAGE=fake", "9X=1",   "GOOD_1=ok", NULL};

    ck_assert_int_eq(cws_log_use_journal(), 0);
    cws_log_fields(CWS_LOG_INFO, fields, "real");
    ck_assert_int_eq(journal_calls, 1);
    ck_assert(journal_has("MESSAGE=real"));
    ck_assert(!journal_has("MESSAGE=fake"));
    ck_assert(journal_has("GOOD_1=ok"));
    ck_assert(!journal_has_name("lower"));
    ck_assert(!journal_has_name("_PID"));
    ck_assert(!journal_has_name("9X"));
    ck_assert_int_eq(journal_nfields, 4);
}
END_TEST

START_TEST(test_journal_falls_back_to_stderr)
{
    const char *const fields[] = {"SANDBOX_ID=sb-2", NULL};
    struct capture c;
    char *out;

    journal_result = -ENOENT;
    ck_assert_int_eq(cws_log_use_journal(), 0);
    cws_log_init("cwsandboxd");
    capture_begin(&c);
    cws_log_fields(CWS_LOG_ERROR, fields, "no journal");
    out = capture_end(&c);
    ck_assert_int_eq(journal_calls, 1);
    ck_assert_ptr_nonnull(strstr(out, "cwsandboxd["));
    ck_assert(ends_with(out, "error: no journal SANDBOX_ID=sb-2\n"));
    free(out);
}
END_TEST

START_TEST(test_journal_sink_replaced_by_null)
{
    ck_assert_int_eq(cws_log_use_journal(), 0);
    cws_log_set_sink(NULL, NULL);
    ck_assert(logged_to_stderr("plain again"));
    ck_assert_int_eq(journal_calls, 0);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *levels = tcase_create("levels");
    TCase *filter = tcase_create("filter");
    TCase *line = tcase_create("stderr");
    TCase *init = tcase_create("init");
    TCase *journal = tcase_create("journal");

    tcase_add_checked_fixture(levels, setup, NULL);
    tcase_add_test(levels, test_level_parse_good);
    tcase_add_test(levels, test_level_parse_mixed_case);
    tcase_add_test(levels, test_level_parse_bad);
    tcase_add_test(levels, test_set_level);
    suite_add_tcase(s, levels);

    tcase_add_checked_fixture(filter, setup, NULL);
    tcase_add_test(filter, test_filter_before_formatting);
    tcase_add_test(filter, test_emit_filters_too);
    tcase_add_test(filter, test_sink_gets_fields);
    tcase_add_test(filter, test_sink_message_bounded);
    tcase_add_test(filter, test_null_sink_restores_stderr);
    tcase_add_test(filter, test_errno_preserved);
    suite_add_tcase(s, filter);

    tcase_add_checked_fixture(line, setup, NULL);
    /* First: the others set a program name, which stays when unforked. */
    tcase_add_test(line, test_stderr_default_program);
    tcase_add_test(line, test_stderr_line_format);
    tcase_add_test(line, test_stderr_level_names);
    tcase_add_test(line, test_stderr_escapes_newlines);
    tcase_add_test(line, test_stderr_keeps_utf8);
    tcase_add_test(line, test_stderr_truncates_long_message);
    tcase_add_test(line, test_stderr_truncates_escapes_and_utf8);
    tcase_add_test(line, test_stderr_truncates_fields);
    tcase_add_test(line, test_stderr_single_write);
    suite_add_tcase(s, line);

    tcase_add_checked_fixture(init, setup, NULL);
    tcase_add_test(init, test_init_reads_env);
    tcase_add_test(init, test_init_unset_keeps_info);
    tcase_add_test(init, test_init_bad_env_warns);
    suite_add_tcase(s, init);

    tcase_add_checked_fixture(journal, setup, NULL);
    tcase_add_test(journal, test_journal_unset);
    tcase_add_test(journal, test_journal_mismatch);
    tcase_add_test(journal, test_journal_match_installs);
    tcase_add_test(journal, test_journal_priorities);
    tcase_add_test(journal, test_journal_skips_bad_fields);
    tcase_add_test(journal, test_journal_falls_back_to_stderr);
    tcase_add_test(journal, test_journal_sink_replaced_by_null);
    suite_add_tcase(s, journal);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
