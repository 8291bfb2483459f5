/* Fuzz the gRPC deframer and the grpc-timeout parser.
 *
 * The deframer gets the input (after its first byte) in chunks whose sizes derive from the
 * first byte, and its results are checked against an independent reading of the same
 * bytes. The timeout parser gets the whole input as a string; anything it accepts must
 * survive a format/parse round trip without the deadline shrinking.
 */
#include "grpc_frame.h"
#include "grpc_timeout.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_MESSAGE (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

static size_t chunk_size(uint8_t seed, size_t index)
{
    return 1 + (index * 131 + seed) % ((size_t)seed + 1);
}

static uint32_t prefix_length(const uint8_t *prefix)
{
    return (uint32_t)prefix[1] << 24 | (uint32_t)prefix[2] << 16 | (uint32_t)prefix[3] << 8 |
           (uint32_t)prefix[4];
}

/* A completed message must be exactly the bytes that followed a valid prefix. */
static void check_message(const struct cws_grpc_deframer *d, const uint8_t *stream,
                          size_t message_start, size_t end)
{
    const uint8_t *msg;
    size_t len;
    cws_grpc_deframer_message(d, &msg, &len);
    check(msg != NULL);
    check(len <= FUZZ_MAX_MESSAGE);
    check(message_start + CWS_GRPC_FRAME_HEADER_SIZE + len == end);
    const uint8_t *prefix = stream + message_start;
    check(prefix[0] == 0);
    check(prefix_length(prefix) == len);
    check(memcmp(msg, prefix + CWS_GRPC_FRAME_HEADER_SIZE, len) == 0);

    uint8_t rebuilt[CWS_GRPC_FRAME_HEADER_SIZE];
    check(cws_grpc_frame_header(rebuilt, len, NULL) == 0);
    check(memcmp(rebuilt, prefix, sizeof(rebuilt)) == 0);
}

static void fuzz_deframer(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    uint8_t seed = data[0];
    const uint8_t *stream = data + 1;
    size_t stream_len = size - 1;

    struct cws_grpc_deframer *d = NULL;
    if (cws_grpc_deframer_new(FUZZ_MAX_MESSAGE, &d) < 0)
        return;

    size_t pos = 0;
    size_t message_start = 0; /* where the message being assembled began */
    int failure = 0;
    for (size_t i = 0; pos < stream_len && failure == 0; i++) {
        size_t len = chunk_size(seed, i);
        if (len > stream_len - pos)
            len = stream_len - pos;
        while (len > 0) {
            struct cws_error err;
            size_t used = SIZE_MAX;
            int r = cws_grpc_deframer_feed(d, stream + pos, len, &used, &err);
            if (r < 0) {
                check(err.code != CWS_E_OK && -r == (int)err.code);
                check(!cws_grpc_deframer_idle(d));
                failure = r;
                break;
            }
            check(r <= 1);
            check(used >= 1 && used <= len); /* progress, and never beyond the chunk */
            check(r == 1 || used == len);
            pos += used;
            len -= used;
            if (r == 1) {
                check_message(d, stream, message_start, pos);
                message_start = pos;
            }
            check(cws_grpc_deframer_idle(d) == (pos == message_start));
        }
    }

    if (failure != 0) {
        /* Sticky: the same code again, whatever comes next. */
        size_t used;
        check(cws_grpc_deframer_feed(d, (const uint8_t *)"\0\0\0\0\0", 5, &used, NULL) == failure);
        check(!cws_grpc_deframer_idle(d));
    }
    cws_grpc_deframer_free(d);
}

static int64_t unit_ns(char symbol)
{
    switch (symbol) {
    case 'n':
        return 1;
    case 'u':
        return 1000;
    case 'm':
        return 1000 * 1000;
    case 'S':
        return 1000 * 1000 * 1000;
    case 'M':
        return INT64_C(60) * 1000 * 1000 * 1000;
    case 'H':
        return INT64_C(3600) * 1000 * 1000 * 1000;
    default:
        abort();
    }
}

/* Format then parse: never shorter, and longer by less than one unit of the chosen scale. */
static void check_format_round_trip(int64_t ns)
{
    char buf[CWS_GRPC_TIMEOUT_BUF_SIZE];
    if (ns <= 0) {
        check(cws_grpc_timeout_format(ns, buf, NULL) == -CWS_E_DEADLINE_EXCEEDED);
        return;
    }
    check(cws_grpc_timeout_format(ns, buf, NULL) == 0);
    size_t len = strlen(buf);
    check(len >= 2 && len <= 9);
    int64_t back;
    check(cws_grpc_timeout_parse(buf, &back, NULL) == 0);
    check(back >= ns);
    check(back - ns < unit_ns(buf[len - 1]));
}

static void fuzz_timeout(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return;
    memcpy(text, data, size);
    text[size] = '\0';

    int64_t ns = -1;
    struct cws_error err;
    int r = cws_grpc_timeout_parse(text, &ns, &err);
    if (r == 0) {
        check(ns >= 0);
        size_t len = strlen(text);
        check(len >= 2 && len <= 9);
        check_format_round_trip(ns);
    } else {
        check(r == -CWS_E_INVALID_ARGUMENT && err.code == CWS_E_INVALID_ARGUMENT);
        check(ns == -1);
    }
    free(text);

    /* The formatter over arbitrary int64 values taken from the input. */
    if (size >= sizeof(int64_t)) {
        int64_t raw;
        memcpy(&raw, data, sizeof(raw));
        check_format_round_trip(raw);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_deframer(data, size);
    fuzz_timeout(data, size);
    return 0;
}
