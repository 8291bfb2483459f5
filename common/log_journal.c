/* The journald sink: structured entries with the caller's fields as journal fields, so that
 * `journalctl SANDBOX_ID=...` finds them. Kept out of cws_common so that the client library
 * never needs libsystemd. */
#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

/* CODE_FILE/CODE_LINE would always name this sink, not the caller. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

/* Caller fields beyond this many are dropped; ours are PRIORITY, MESSAGE, SYSLOG_IDENTIFIER. */
#define JOURNAL_CALLER_FIELDS_MAX 32
#define JOURNAL_OWN_FIELDS        3
#define JOURNAL_FIELD_NAME_MAX    64

static int journal_priority(enum cws_log_level level)
{
    switch (level) {
    case CWS_LOG_ERROR:
        return LOG_ERR;
    case CWS_LOG_WARN:
        return LOG_WARNING;
    case CWS_LOG_INFO:
        return LOG_INFO;
    case CWS_LOG_DEBUG:
    case CWS_LOG_TRACE:
        break;
    }
    return LOG_DEBUG;
}

static bool field_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool field_name_is(const char *field, size_t len, const char *name)
{
    return strlen(name) == len && memcmp(field, name, len) == 0;
}

/* journald's rule for names (upper case, digits, '_'; not starting with '_', which marks
 * trusted fields, nor a digit); ours may not be repeated. sd_journal_sendv() rejects the
 * whole entry for some bad fields, so they are skipped instead. */
static bool caller_field_valid(const char *field)
{
    const char *eq = strchr(field, '=');
    size_t len;

    if (!eq)
        return false;
    len = (size_t)(eq - field);
    if (len == 0 || len > JOURNAL_FIELD_NAME_MAX || field[0] == '_' ||
        (field[0] >= '0' && field[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!field_name_char(field[i]))
            return false;
    }
    return !field_name_is(field, len, "MESSAGE") && !field_name_is(field, len, "PRIORITY") &&
           !field_name_is(field, len, "SYSLOG_IDENTIFIER");
}

static struct iovec iovec_of_string(const char *s)
{
    return (struct iovec){.iov_base = (void *)s, .iov_len = strlen(s)};
}

static void journal_sink(enum cws_log_level level, const char *const *fields, const char *message,
                         void *userdata)
{
    char priority[16], identifier[96], text[sizeof("MESSAGE=") + CWS_LOG_LINE_MAX];
    struct iovec iov[JOURNAL_OWN_FIELDS + JOURNAL_CALLER_FIELDS_MAX];
    int n = 0;

    snprintf(priority, sizeof(priority), "PRIORITY=%d", journal_priority(level));
    snprintf(identifier, sizeof(identifier), "SYSLOG_IDENTIFIER=%s", cws_log_program());
    snprintf(text, sizeof(text), "MESSAGE=%s", message);
    iov[n++] = iovec_of_string(priority);
    iov[n++] = iovec_of_string(text);
    iov[n++] = iovec_of_string(identifier);
    for (size_t i = 0; fields && fields[i] && n < (int)(sizeof(iov) / sizeof(iov[0])); i++) {
        if (caller_field_valid(fields[i]))
            iov[n++] = iovec_of_string(fields[i]);
    }
    /* Without a journal socket the message still reaches stderr, which systemd also reads. */
    if (sd_journal_sendv(iov, n) < 0)
        cws_log_stderr_sink(level, fields, message, NULL);
}

/* Parse "dev:ino" as systemd writes JOURNAL_STREAM: two decimal numbers. */
static bool parse_dev_ino(const char *s, uint64_t *ret_dev, uint64_t *ret_ino)
{
    unsigned long long dev, ino;
    char *end;

    if (!(*s >= '0' && *s <= '9'))
        return false;
    errno = 0;
    dev = strtoull(s, &end, 10);
    if (errno || *end != ':' || !(end[1] >= '0' && end[1] <= '9'))
        return false;
    ino = strtoull(end + 1, &end, 10);
    if (errno || *end)
        return false;
    *ret_dev = dev;
    *ret_ino = ino;
    return true;
}

/* systemd.exec(5): stderr is the journal when JOURNAL_STREAM names fd 2's device and inode;
 * an inherited variable with a redirected stderr does not match. */
static bool stderr_is_journal(void)
{
    const char *value = getenv("JOURNAL_STREAM");
    uint64_t dev, ino;
    struct stat st;

    if (!value || !parse_dev_ino(value, &dev, &ino))
        return false;
    if (fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

int cws_log_use_journal(void)
{
    cws_log_set_sink(journal_sink, NULL);
    return 0;
}

int cws_log_use_journal_if_available(void)
{
    if (!stderr_is_journal())
        return 0;
    cws_log_use_journal();
    return 1;
}
