/* Level filtering, message formatting and the stderr sink. No libsystemd here: the client
 * library links this file. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_ELLIPSIS         "\xe2\x80\xa6" /* "…" */
#define LOG_ELLIPSIS_LEN     (sizeof(LOG_ELLIPSIS) - 1)
#define LOG_LEVEL_NAMES_TEXT "error, warn, info, debug, trace"
#define LOG_PROGRAM_MAX      64

/* Room for the text of a line: the ellipsis and the newline must always fit after it. */
#define LINE_TEXT_MAX (CWS_LOG_LINE_MAX - LOG_ELLIPSIS_LEN - 1)

static const char *const level_names[] = {
    [CWS_LOG_ERROR] = "error", [CWS_LOG_WARN] = "warn",   [CWS_LOG_INFO] = "info",
    [CWS_LOG_DEBUG] = "debug", [CWS_LOG_TRACE] = "trace",
};
#define LEVEL_COUNT (sizeof(level_names) / sizeof(level_names[0]))

static enum cws_log_level log_level = CWS_LOG_INFO;
static cws_log_sink_fn log_sink = cws_log_stderr_sink;
static void *log_sink_userdata;
static char log_program[LOG_PROGRAM_MAX];

/* A line being built; once full, everything else is dropped and an ellipsis ends it. */
struct log_line {
    char buf[CWS_LOG_LINE_MAX];
    size_t len;
    bool full;
};

static bool level_valid(enum cws_log_level level)
{
    return (unsigned)level < LEVEL_COUNT;
}

const char *cws_log_level_name(enum cws_log_level level)
{
    return level_valid(level) ? level_names[level] : "unknown";
}

/* ASCII-only, so that a Turkish locale cannot make "INFO" differ from "info". */
static bool ascii_equal_nocase(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char ca = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
        char cb = (*b >= 'A' && *b <= 'Z') ? (char)(*b - 'A' + 'a') : *b;
        if (ca != cb)
            return false;
    }
    return *a == *b;
}

int cws_log_level_parse(const char *name, enum cws_log_level *ret_level, struct cws_error *err)
{
    if (!name)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "no log level given: use one of " LOG_LEVEL_NAMES_TEXT);
    for (size_t i = 0; i < LEVEL_COUNT; i++) {
        if (ascii_equal_nocase(name, level_names[i])) {
            *ret_level = (enum cws_log_level)i;
            return 0;
        }
    }
    return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                         "invalid log level \"%.64s\": use one of " LOG_LEVEL_NAMES_TEXT, name);
}

void cws_log_set_level(enum cws_log_level level)
{
    if (level_valid(level))
        log_level = level;
}

enum cws_log_level cws_log_get_level(void)
{
    return log_level;
}

bool cws_log_enabled(enum cws_log_level level)
{
    return level_valid(level) && level <= log_level;
}

const char *cws_log_program(void)
{
    if (log_program[0])
        return log_program;
    return program_invocation_short_name[0] ? program_invocation_short_name : "cwsandbox";
}

void cws_log_set_sink(cws_log_sink_fn sink, void *userdata)
{
    log_sink = sink ? sink : cws_log_stderr_sink;
    log_sink_userdata = sink ? userdata : NULL;
}

/* Sinks see the warning whatever the level: a bad setting must not go unnoticed. */
static void warn_bad_env_level(const char *message)
{
    char text[CWS_ERROR_MESSAGE_MAX + 64];

    snprintf(text, sizeof(text), "CWSANDBOX_LOG_LEVEL: %s; keeping level %s", message,
             cws_log_level_name(log_level));
    log_sink(CWS_LOG_WARN, NULL, text, log_sink_userdata);
}

void cws_log_init(const char *program)
{
    const char *value = getenv("CWSANDBOX_LOG_LEVEL");
    enum cws_log_level level;
    struct cws_error err;

    if (program)
        snprintf(log_program, sizeof(log_program), "%s", program);
    if (!value || !value[0])
        return;
    if (cws_log_level_parse(value, &level, &err) < 0)
        warn_bad_env_level(err.message);
    else
        log_level = level;
}

/* Largest cut <= len of s that does not split a UTF-8 sequence (s[len] must be readable). */
static size_t utf8_cut(const char *s, size_t len)
{
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
        len--;
    return len;
}

/* Bytes of the UTF-8 sequence that c starts; 1 for ASCII and stray bytes. */
static size_t utf8_sequence_length(unsigned char c)
{
    if (c >= 0xF0 && c <= 0xF7)
        return 4;
    if (c >= 0xE0)
        return c <= 0xEF ? 3 : 1;
    if (c >= 0xC0)
        return 2;
    return 1;
}

/* vsnprintf into buf, ending a cut message with "…" on a character boundary. */
static void format_message(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void format_message(char *buf, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, size, fmt, ap);
    size_t cut;

    if (n < 0) {
        snprintf(buf, size, "(log message could not be formatted: %s)", fmt);
        return;
    }
    if ((size_t)n < size)
        return;
    cut = utf8_cut(buf, size - LOG_ELLIPSIS_LEN - 1);
    memcpy(buf + cut, LOG_ELLIPSIS, LOG_ELLIPSIS_LEN + 1);
}

void cws_log_emitv(enum cws_log_level level, const char *const *fields, const char *fmt, va_list ap)
{
    char message[CWS_LOG_LINE_MAX];
    int saved_errno = errno;

    if (!cws_log_enabled(level))
        return;
    format_message(message, sizeof(message), fmt, ap);
    log_sink(level, fields, message, log_sink_userdata);
    errno = saved_errno;
}

void cws_log_emit(enum cws_log_level level, const char *const *fields, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cws_log_emitv(level, fields, fmt, ap);
    va_end(ap);
}

/* Append n bytes as one unit: all of them, or none and the line is full. */
static void line_append(struct log_line *line, const char *s, size_t n)
{
    if (line->full)
        return;
    if (n > LINE_TEXT_MAX - line->len) {
        line->full = true;
        return;
    }
    memcpy(line->buf + line->len, s, n);
    line->len += n;
}

/* The escape of a byte that would break the one-line format, or NULL. */
static const char *escape_of(unsigned char c, char hex[5])
{
    switch (c) {
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    case '\\':
        return "\\\\";
    }
    if (c < 0x20 || c == 0x7F) {
        snprintf(hex, 5, "\\x%02x", c);
        return hex;
    }
    return NULL;
}

/* Append s with control characters escaped, never splitting a character or an escape. */
static void line_append_escaped(struct log_line *line, const char *s)
{
    char hex[5];

    while (*s && !line->full) {
        const char *escape = escape_of((unsigned char)*s, hex);
        if (escape) {
            line_append(line, escape, strlen(escape));
            s++;
        } else {
            size_t n = strnlen(s, utf8_sequence_length((unsigned char)*s));
            line_append(line, s, n);
            s += n;
        }
    }
}

/* "2026-11-28T08:00:00.123Z": UTC with milliseconds. */
static void format_timestamp(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void line_append_prefix(struct log_line *line, enum cws_log_level level)
{
    char timestamp[40], tail[48];

    format_timestamp(timestamp, sizeof(timestamp));
    line_append(line, timestamp, strlen(timestamp));
    line_append(line, " ", 1);
    line_append_escaped(line, cws_log_program());
    snprintf(tail, sizeof(tail), "[%ld] %s: ", (long)getpid(), cws_log_level_name(level));
    line_append(line, tail, strlen(tail));
}

/* One write() per line so that lines of concurrent processes do not interleave. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

void cws_log_stderr_sink(enum cws_log_level level, const char *const *fields, const char *message,
                         void *userdata)
{
    struct log_line line = {.len = 0, .full = false};
    int saved_errno = errno;

    line_append_prefix(&line, level);
    line_append_escaped(&line, message ? message : "");
    for (size_t i = 0; fields && fields[i]; i++) {
        line_append(&line, " ", 1);
        line_append_escaped(&line, fields[i]);
    }
    /* LINE_TEXT_MAX left room for both. */
    if (line.full) {
        memcpy(line.buf + line.len, LOG_ELLIPSIS, LOG_ELLIPSIS_LEN);
        line.len += LOG_ELLIPSIS_LEN;
    }
    line.buf[line.len++] = '\n';
    write_all(STDERR_FILENO, line.buf, line.len);
    errno = saved_errno;
}
