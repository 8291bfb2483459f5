/* Pull readers: streamed data kept in memory until the caller reads it (cws_exec_read,
 * cws_logs_read). */
#include <string.h>

#include "internal.h"

int cwsc_stream_push(struct cwsc_stream *s, const void *data, size_t len)
{
    return cwsc_buf_append(&s->buf, data, len);
}

void cwsc_stream_free(struct cwsc_stream *s)
{
    cwsc_buf_free(&s->buf);
}

struct readable {
    const cws_op *op;
    const struct cwsc_stream *s;
};

static bool has_data_or_done(const void *ud)
{
    const struct readable *rd = ud;
    return cwsc_buf_size(&rd->s->buf) > 0 || rd->op->done;
}

ssize_t cwsc_stream_read(cws_op *op, struct cwsc_stream *s, void *buf, size_t len, int timeout_ms,
                         struct cws_error *err)
{
    struct readable rd = {op, s};
    if (!buf && len > 0)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "buf is NULL");
    int r = cwsc_wait(&op, 1, has_data_or_done, &rd, timeout_ms, err);
    size_t avail = cwsc_buf_size(&s->buf);
    if (avail > 0) {
        size_t n = avail < len ? avail : len;
        memcpy(buf, cwsc_buf_head(&s->buf), n);
        cwsc_buf_consume(&s->buf, n);
        cws_error_clear(err);
        return (ssize_t)n;
    }
    if (r == -CWS_E_DEADLINE_EXCEEDED)
        return cws_error_set(err, CWS_E_DEADLINE_EXCEEDED, "no data within %d ms", timeout_ms);
    if (r < 0)
        return r;
    /* The end: a clean one when the final response came, else the op's error. */
    if (s->complete || !op->failed) {
        cws_error_clear(err);
        return 0;
    }
    return cwsc_op_outcome(op, err);
}
