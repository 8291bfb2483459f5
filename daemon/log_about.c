/* Clocks, and log lines about a sandbox, a session or a client carrying the journald fields
 * that let `journalctl SANDBOX_ID=…` find them. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "daemon.h"

int64_t cwsd_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cwsd_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cwsd_log_about(enum cws_log_level level, const char *sandbox_id, const char *session,
                    pid_t client_pid, const char *fmt, ...)
{
    if (!cws_log_enabled(level))
        return;
    char sandbox_f[96], session_f[80], pid_f[32];
    const char *fields[4];
    size_t n = 0;
    if (sandbox_id) {
        snprintf(sandbox_f, sizeof(sandbox_f), "SANDBOX_ID=%s", sandbox_id);
        fields[n++] = sandbox_f;
    }
    if (session) {
        snprintf(session_f, sizeof(session_f), "SESSION=%s", session);
        fields[n++] = session_f;
    }
    if (client_pid > 0) {
        snprintf(pid_f, sizeof(pid_f), "CLIENT_PID=%d", (int)client_pid);
        fields[n++] = pid_f;
    }
    fields[n] = NULL;
    va_list ap;
    va_start(ap, fmt);
    cws_log_emitv(level, fields, fmt, ap);
    va_end(ap);
}
