/* Logging for every cwsandbox program.
 *
 * Messages below the current level are dropped before anything is formatted: cws_log() and
 * cws_log_fields() are macros that test the level first, so their arguments are not even
 * evaluated then (as systemd's log_debug()).
 *
 * The default sink writes one line per message to stderr with a single write():
 *   2026-11-28T08:00:00.123Z cwsandboxd[1234] warn: message KEY=value ...
 * (UTC, milliseconds; control characters escaped so a message stays on one line; at most
 * CWS_LOG_LINE_MAX bytes, truncated with "…"). The daemon installs the journald sink of
 * log_journal.c (library cws_journal) instead when it runs under systemd.
 *
 * Not thread-safe to configure; the daemon is single-threaded.
 */
#ifndef CWS_LOG_H
#define CWS_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "cws_error.h"

/* Longest stderr line, newline included; also the bound of a formatted message. Equal to
 * PIPE_BUF so a line written to a pipe is atomic. */
#define CWS_LOG_LINE_MAX 4096

enum cws_log_level {
    CWS_LOG_ERROR,
    CWS_LOG_WARN,
    CWS_LOG_INFO,
    CWS_LOG_DEBUG,
    CWS_LOG_TRACE,
};

/* A sink receives every message at or above the level. fields is NULL or a NULL-terminated
 * array of "KEY=value" strings; message is the formatted text (it may hold newlines). Both
 * are only valid during the call. */
typedef void (*cws_log_sink_fn)(enum cws_log_level level, const char *const *fields,
                                const char *message, void *userdata);

/* Lower-case name of a level ("warn"); "unknown" outside the enum. */
const char *cws_log_level_name(enum cws_log_level level);

/* Parse a level name, case-insensitively. Returns 0 and fills *ret_level, or
 * -CWS_E_INVALID_ARGUMENT with a message listing the valid names. */
int cws_log_level_parse(const char *name, enum cws_log_level *ret_level, struct cws_error *err);

void cws_log_set_level(enum cws_log_level level);
enum cws_log_level cws_log_get_level(void);

/* Whether a message at level would be logged. */
bool cws_log_enabled(enum cws_log_level level);

/* Set the program name used in lines and as SYSLOG_IDENTIFIER (copied; NULL keeps the
 * executable's name) and apply CWSANDBOX_LOG_LEVEL; a bad value is logged as a warning and
 * leaves the level as it was (INFO by default). */
void cws_log_init(const char *program);

/* The program name set by cws_log_init(), else the executable's name. Never NULL. */
const char *cws_log_program(void);

/* Install a sink; NULL restores the stderr sink. */
void cws_log_set_sink(cws_log_sink_fn sink, void *userdata);

/* The stderr sink itself, so that other sinks can fall back to it. */
void cws_log_stderr_sink(enum cws_log_level level, const char *const *fields, const char *message,
                         void *userdata);

/* Format and send a message whatever the macros below decided; still drops it when the
 * level is disabled. Keeps errno. Prefer the macros. */
void cws_log_emit(enum cws_log_level level, const char *const *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cws_log_emitv(enum cws_log_level level, const char *const *fields, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* cws_log(level, fmt, ...) and cws_log_fields(level, fields, fmt, ...): fields as for
 * cws_log_sink_fn. Arguments are evaluated only when the level is enabled. */
#define cws_log_fields(level, fields, ...)                                                         \
    do {                                                                                           \
        enum cws_log_level cws_log_level_ = (level);                                               \
        if (cws_log_enabled(cws_log_level_))                                                       \
            cws_log_emit(cws_log_level_, (fields), __VA_ARGS__);                                   \
    } while (0)
#define cws_log(level, ...) cws_log_fields((level), NULL, __VA_ARGS__)

/* Journald sink, in log_journal.c (link cws_journal, which needs libsystemd). */

/* Install the journald sink when stderr is connected to the journal, i.e. when
 * $JOURNAL_STREAM ("dev:ino") matches fstat(2), as systemd.exec(5) documents.
 * Returns 1 when installed, 0 when not running under the journal. */
int cws_log_use_journal_if_available(void);

/* Install the journald sink unconditionally. Returns 0. */
int cws_log_use_journal(void);

#endif
