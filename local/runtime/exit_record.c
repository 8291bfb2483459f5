/* The exit record of a sandbox; see exit_record.h. */
#include "exit_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "dirfile.h"
#include "init_proto.h"

int cws_exit_record_write(int dirfd, const struct cws_exit_record *r, struct cws_error *err)
{
    char buf[CWS_EXIT_REASON_MAX + 64];
    int head = snprintf(buf, sizeof(buf), "%d\n%" PRId64 "\n", r->code, r->ended_ns);
    size_t n = head > 0 ? (size_t)head : 0;
    /* The reason is one line: newlines inside it would end it early when read back. */
    for (const char *p = r->reason; *p && n < sizeof(buf) - 1; p++)
        buf[n++] = *p == '\n' ? ' ' : *p;
    buf[n++] = '\n';
    return cws_dirfile_write(dirfd, CWS_SB_EXIT, buf, n, 0600, true, err);
}

int cws_exit_record_read(int dirfd, struct cws_exit_record *ret, struct cws_error *err)
{
    char *data = NULL;
    size_t len = 0;
    int r = cws_dirfile_read(dirfd, CWS_SB_EXIT, CWS_EXIT_REASON_MAX + 64, &data, &len, err);
    if (r < 0)
        return r;
    struct cws_exit_record rec = {0};
    char *end = NULL;
    long code = strtol(data, &end, 10);
    if (end == data || *end != '\n') {
        free(data);
        return cws_error_set(err, CWS_E_DATA_LOSS, "malformed %s record", CWS_SB_EXIT);
    }
    rec.code = (int)code;
    char *p = end + 1;
    rec.ended_ns = strtoll(p, &end, 10);
    if (*end == '\n') {
        p = end + 1;
        size_t rl = strcspn(p, "\n");
        if (rl >= sizeof(rec.reason))
            rl = sizeof(rec.reason) - 1;
        memcpy(rec.reason, p, rl);
        rec.reason[rl] = '\0';
    }
    free(data);
    *ret = rec;
    return 0;
}

int cws_exit_code_from_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}
