/* gRPC length-prefixed framing: prefix encoding and the incremental deframer. */
#include "grpc_frame.h"

#include <check.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* Heap bytes in use, to prove the deframer does not trust declared lengths. ASan replaces
 * the glibc allocator, so ask the sanitizer there. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#ifdef TEST_ASAN
size_t __sanitizer_get_current_allocated_bytes(void);

static size_t heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd; /* arena chunks plus mmap()ed blocks */
}
#endif

/* Slack for the deframer struct and allocator bookkeeping; far below the sizes tested. */
#define SMALL_ALLOCATION (16 * 1024)

/* ---- helpers ---------------------------------------------------------------------- */

struct stream {
    uint8_t *data;
    size_t len;
};

static uint8_t pattern_byte(size_t message, size_t offset)
{
    return (uint8_t)(message * 31 + offset * 7 + 1);
}

static void stream_append(struct stream *s, const uint8_t *bytes, size_t len)
{
    s->data = realloc(s->data, s->len + len + 1);
    ck_assert_ptr_nonnull(s->data);
    if (len > 0)
        memcpy(s->data + s->len, bytes, len);
    s->len += len;
}

static void stream_append_message(struct stream *s, size_t index, size_t len)
{
    uint8_t hdr[CWS_GRPC_FRAME_HEADER_SIZE];
    ck_assert_int_eq(cws_grpc_frame_header(hdr, len, NULL), 0);
    stream_append(s, hdr, sizeof(hdr));
    for (size_t i = 0; i < len; i++) {
        uint8_t b = pattern_byte(index, i);
        stream_append(s, &b, 1);
    }
}

static void header_bytes(uint8_t hdr[CWS_GRPC_FRAME_HEADER_SIZE], uint8_t flag, uint32_t len)
{
    hdr[0] = flag;
    hdr[1] = (uint8_t)(len >> 24);
    hdr[2] = (uint8_t)(len >> 16);
    hdr[3] = (uint8_t)(len >> 8);
    hdr[4] = (uint8_t)len;
}

static struct cws_grpc_deframer *new_deframer(size_t max)
{
    struct cws_grpc_deframer *d = NULL;
    ck_assert_int_eq(cws_grpc_deframer_new(max, &d), 0);
    ck_assert_ptr_nonnull(d);
    return d;
}

/* Messages with lengths 0, 1, 4, 0, 300, 5000, 2: boundaries inside headers and bodies,
 * back-to-back empty messages, and a body larger than the first buffer allocation. */
static const size_t sample_lengths[] = {0, 1, 4, 0, 300, 5000, 2};
#define SAMPLE_COUNT (sizeof(sample_lengths) / sizeof(sample_lengths[0]))

static struct stream sample_stream(void)
{
    struct stream s = {NULL, 0};
    for (size_t i = 0; i < SAMPLE_COUNT; i++)
        stream_append_message(&s, i, sample_lengths[i]);
    return s;
}

struct collector {
    size_t count;
    bool ok;
};

static void check_message(struct collector *c, const uint8_t *msg, size_t len)
{
    if (c->count >= SAMPLE_COUNT || len != sample_lengths[c->count] || msg == NULL) {
        c->ok = false;
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (msg[i] != pattern_byte(c->count, i)) {
            c->ok = false;
            return;
        }
    }
    c->count++;
}

/* Feed one chunk completely, checking each completed message against the sample. */
static void feed_chunk(struct cws_grpc_deframer *d, const uint8_t *data, size_t len,
                       struct collector *c)
{
    while (len > 0) {
        size_t used = SIZE_MAX;
        int r = cws_grpc_deframer_feed(d, data, len, &used, NULL);
        ck_assert_int_ge(r, 0);
        ck_assert_uint_ge(used, 1);
        ck_assert_uint_le(used, len);
        if (r == 0)
            ck_assert_uint_eq(used, len);
        if (r == 1) {
            const uint8_t *msg;
            size_t mlen;
            cws_grpc_deframer_message(d, &msg, &mlen);
            check_message(c, msg, mlen);
            ck_assert(cws_grpc_deframer_idle(d));
        }
        data += used;
        len -= used;
    }
}

static void assert_all_samples(struct cws_grpc_deframer *d, const struct collector *c)
{
    ck_assert(c->ok);
    ck_assert_uint_eq(c->count, SAMPLE_COUNT);
    ck_assert(cws_grpc_deframer_idle(d));
}

/* ---- prefix ----------------------------------------------------------------------- */

START_TEST(test_header_encoding)
{
    uint8_t hdr[CWS_GRPC_FRAME_HEADER_SIZE];
    ck_assert_int_eq(cws_grpc_frame_header(hdr, 0, NULL), 0);
    ck_assert_mem_eq(hdr, "\0\0\0\0\0", 5);
    ck_assert_int_eq(cws_grpc_frame_header(hdr, 0x01020304u, NULL), 0);
    ck_assert_mem_eq(hdr, "\0\x01\x02\x03\x04", 5);
    ck_assert_int_eq(cws_grpc_frame_header(hdr, UINT32_MAX, NULL), 0);
    ck_assert_mem_eq(hdr, "\0\xff\xff\xff\xff", 5);
}
END_TEST

START_TEST(test_header_too_long)
{
#if SIZE_MAX > UINT32_MAX
    uint8_t hdr[CWS_GRPC_FRAME_HEADER_SIZE] = {9, 9, 9, 9, 9};
    struct cws_error err;
    cws_error_clear(&err);
    ck_assert_int_eq(cws_grpc_frame_header(hdr, (size_t)UINT32_MAX + 1, &err),
                     -CWS_E_INVALID_ARGUMENT);
    ck_assert_int_eq(err.code, CWS_E_INVALID_ARGUMENT);
    ck_assert_mem_eq(hdr, "\x09\x09\x09\x09\x09", 5); /* untouched on failure */
#endif
}
END_TEST

START_TEST(test_round_trip)
{
    struct cws_grpc_deframer *d = new_deframer(CWS_GRPC_MAX_MESSAGE);
    const char *texts[] = {"hello", "", "a somewhat longer gRPC message body"};
    for (size_t i = 0; i < 3; i++) {
        struct stream s = {NULL, 0};
        uint8_t hdr[CWS_GRPC_FRAME_HEADER_SIZE];
        ck_assert_int_eq(cws_grpc_frame_header(hdr, strlen(texts[i]), NULL), 0);
        stream_append(&s, hdr, sizeof(hdr));
        stream_append(&s, (const uint8_t *)texts[i], strlen(texts[i]));

        size_t used = 0;
        ck_assert_int_eq(cws_grpc_deframer_feed(d, s.data, s.len, &used, NULL), 1);
        ck_assert_uint_eq(used, s.len);
        const uint8_t *msg;
        size_t len;
        cws_grpc_deframer_message(d, &msg, &len);
        ck_assert_ptr_nonnull(msg);
        ck_assert_uint_eq(len, strlen(texts[i]));
        ck_assert_mem_eq(msg, texts[i], len);
        free(s.data);
    }
    cws_grpc_deframer_free(d);
}
END_TEST

/* ---- stream splitting ------------------------------------------------------------- */

START_TEST(test_all_at_once)
{
    struct stream s = sample_stream();
    struct cws_grpc_deframer *d = new_deframer(CWS_GRPC_MAX_MESSAGE);
    struct collector c = {0, true};
    feed_chunk(d, s.data, s.len, &c);
    assert_all_samples(d, &c);
    cws_grpc_deframer_free(d);
    free(s.data);
}
END_TEST

START_TEST(test_byte_by_byte)
{
    struct stream s = sample_stream();
    struct cws_grpc_deframer *d = new_deframer(CWS_GRPC_MAX_MESSAGE);
    struct collector c = {0, true};
    for (size_t i = 0; i < s.len; i++) {
        feed_chunk(d, s.data + i, 1, &c);
        ck_assert(c.ok);
    }
    assert_all_samples(d, &c);
    cws_grpc_deframer_free(d);
    free(s.data);
}
END_TEST

START_TEST(test_every_two_chunk_split)
{
    struct stream s = sample_stream();
    for (size_t split = 0; split <= s.len; split++) {
        struct cws_grpc_deframer *d = new_deframer(CWS_GRPC_MAX_MESSAGE);
        struct collector c = {0, true};
        feed_chunk(d, s.data, split, &c);
        feed_chunk(d, s.data + split, s.len - split, &c);
        if (!c.ok || c.count != SAMPLE_COUNT)
            ck_abort_msg("split at %zu gave %zu messages (ok=%d)", split, c.count, c.ok);
        assert_all_samples(d, &c);
        cws_grpc_deframer_free(d);
    }
    free(s.data);
}
END_TEST

START_TEST(test_stops_at_message_end)
{
    struct stream s = {NULL, 0};
    stream_append_message(&s, 0, 3);
    stream_append_message(&s, 1, 2);
    struct cws_grpc_deframer *d = new_deframer(CWS_GRPC_MAX_MESSAGE);

    size_t used = 0;
    ck_assert_int_eq(cws_grpc_deframer_feed(d, s.data, s.len, &used, NULL), 1);
    ck_assert_uint_eq(used, 8); /* one prefix and one 3-byte body, nothing of the next */
    const uint8_t *msg;
    size_t len;
    cws_grpc_deframer_message(d, &msg, &len);
    ck_assert_uint_eq(len, 3);

    ck_assert_int_eq(cws_grpc_deframer_feed(d, s.data + used, s.len - used, &used, NULL), 1);
    ck_assert_uint_eq(used, 7);
    cws_grpc_deframer_message(d, &msg, &len);
    ck_assert_uint_eq(len, 2);
    ck_assert_uint_eq(msg[0], pattern_byte(1, 0));
    cws_grpc_deframer_free(d);
    free(s.data);
}
END_TEST

START_TEST(test_zero_length_message)
{
    struct cws_grpc_deframer *d = new_deframer(16);
    size_t used = 0;
    ck_assert_int_eq(cws_grpc_deframer_feed(d, (const uint8_t *)"\0\0\0\0", 4, &used, NULL), 0);
    ck_assert_uint_eq(used, 4);
    ck_assert(!cws_grpc_deframer_idle(d));
    ck_assert_int_eq(cws_grpc_deframer_feed(d, (const uint8_t *)"\0\0\0", 3, &used, NULL), 1);
    ck_assert_uint_eq(used, 1);
    const uint8_t *msg = NULL;
    size_t len = 99;
    cws_grpc_deframer_message(d, &msg, &len);
    ck_assert_ptr_nonnull(msg);
    ck_assert_uint_eq(len, 0);
    ck_assert(cws_grpc_deframer_idle(d));
    cws_grpc_deframer_free(d);
}
END_TEST

START_TEST(test_empty_feed)
{
    struct cws_grpc_deframer *d = new_deframer(16);
    size_t used = 99;
    ck_assert_int_eq(cws_grpc_deframer_feed(d, NULL, 0, &used, NULL), 0);
    ck_assert_uint_eq(used, 0);
    ck_assert(cws_grpc_deframer_idle(d));
    ck_assert_int_eq(cws_grpc_deframer_feed(d, NULL, 1, &used, NULL), -CWS_E_INVALID_ARGUMENT);
    cws_grpc_deframer_free(d);
}
END_TEST

START_TEST(test_message_before_completion)
{
    struct cws_grpc_deframer *d = new_deframer(16);
    const uint8_t *msg = (const uint8_t *)"x";
    size_t len = 99;
    cws_grpc_deframer_message(d, &msg, &len);
    ck_assert_ptr_null(msg);
    ck_assert_uint_eq(len, 0);

    size_t used;
    ck_assert_int_eq(cws_grpc_deframer_feed(d, (const uint8_t *)"\0\0\0\0\1", 5, &used, NULL), 0);
    cws_grpc_deframer_message(d, &msg, &len);
    ck_assert_ptr_null(msg);
    cws_grpc_deframer_free(d);
}
END_TEST

/* ---- idle ------------------------------------------------------------------------- */

START_TEST(test_idle_transitions)
{
    struct cws_grpc_deframer *d = new_deframer(16);
    const uint8_t frame[] = {0, 0, 0, 0, 3, 'a', 'b', 'c'};
    size_t used;
    ck_assert(cws_grpc_deframer_idle(d));
    ck_assert_int_eq(cws_grpc_deframer_feed(d, frame, 2, &used, NULL), 0);
    ck_assert(!cws_grpc_deframer_idle(d)); /* inside the prefix */
    ck_assert_int_eq(cws_grpc_deframer_feed(d, frame + 2, 3, &used, NULL), 0);
    ck_assert(!cws_grpc_deframer_idle(d)); /* prefix done, body pending */
    ck_assert_int_eq(cws_grpc_deframer_feed(d, frame + 5, 2, &used, NULL), 0);
    ck_assert(!cws_grpc_deframer_idle(d)); /* inside the body */
    ck_assert_int_eq(cws_grpc_deframer_feed(d, frame + 7, 1, &used, NULL), 1);
    ck_assert(cws_grpc_deframer_idle(d)); /* message complete */
    ck_assert_int_eq(cws_grpc_deframer_feed(d, frame, 1, &used, NULL), 0);
    ck_assert(!cws_grpc_deframer_idle(d)); /* next message begun */
    cws_grpc_deframer_free(d);
}
END_TEST

/* ---- limits ----------------------------------------------------------------------- */

START_TEST(test_limit_exact_ok)
{
    const size_t max = 1000;
    struct stream s = {NULL, 0};
    stream_append_message(&s, 0, max);
    struct cws_grpc_deframer *d = new_deframer(max);
    size_t used;
    ck_assert_int_eq(cws_grpc_deframer_feed(d, s.data, s.len, &used, NULL), 1);
    ck_assert_uint_eq(used, s.len);
    const uint8_t *msg;
    size_t len;
    cws_grpc_deframer_message(d, &msg, &len);
    ck_assert_uint_eq(len, max);
    ck_assert_mem_eq(msg, s.data + CWS_GRPC_FRAME_HEADER_SIZE, max);
    cws_grpc_deframer_free(d);
    free(s.data);
}
END_TEST

START_TEST(test_limit_plus_one_rejected)
{
    const size_t max = 1000;
    uint8_t hdr[CWS_GRPC_FRAME_HEADER_SIZE];
    header_bytes(hdr, 0, (uint32_t)max + 1);
    struct cws_grpc_deframer *d = new_deframer(max);
    struct cws_error err;
    cws_error_clear(&err);
    size_t used = 77;
    ck_assert_int_eq(cws_grpc_deframer_feed(d, hdr, sizeof(hdr), &used, &err),
                     -CWS_E_RESOURCE_EXHAUSTED);
    ck_assert_uint_eq(used, 77); /* outputs untouched on failure */
    ck_assert_int_eq(err.code, CWS_E_RESOURCE_EXHAUSTED);
    ck_assert_str_eq(err.message, "gRPC message of 1001 bytes exceeds the 1000-byte limit");
    cws_grpc_deframer_free(d);
}
END_TEST

START_TEST(test_default_limit_message)
{
    uint8_t hdr[CWS_GRPC_FRAME_HEADER_SIZE];
    header_bytes(hdr, 0, 200000000u);
    struct cws_grpc_deframer *d = new_deframer(CWS_GRPC_MAX_MESSAGE);
    struct cws_error err;
    size_t used;
    ck_assert_int_eq(cws_grpc_deframer_feed(d, hdr, sizeof(hdr), &used, &err),
                     -CWS_E_RESOURCE_EXHAUSTED);
    ck_assert_str_eq(err.message,
                     "gRPC message of 200000000 bytes exceeds the 104857600-byte limit");
    cws_grpc_deframer_free(d);
}
END_TEST

START_TEST(test_huge_declared_length_fails_without_allocating)
{
    struct cws_grpc_deframer *d = new_deframer(1024 * 1024);
    uint8_t stream[CWS_GRPC_FRAME_HEADER_SIZE + 16] = {0};
    header_bytes(stream, 0, UINT32_MAX); /* 4 GiB */
    size_t before = heap_in_use();
    size_t used;
    /* The first 4 bytes are not enough to judge... */
    ck_assert_int_eq(cws_grpc_deframer_feed(d, stream, 4, &used, NULL), 0);
    ck_assert_uint_eq(used, 4);
    /* ...the fifth is, whatever follows it. */
    ck_assert_int_eq(cws_grpc_deframer_feed(d, stream + 4, sizeof(stream) - 4, &used, NULL),
                     -CWS_E_RESOURCE_EXHAUSTED);
    ck_assert_uint_le(heap_in_use(), before + SMALL_ALLOCATION);
    cws_grpc_deframer_free(d);
}
END_TEST

START_TEST(test_allocation_follows_received_bytes)
{
    /* A prefix announcing the full 100 MiB plus a few bytes must not commit 100 MiB. */
    struct cws_grpc_deframer *d = new_deframer(CWS_GRPC_MAX_MESSAGE);
    uint8_t stream[CWS_GRPC_FRAME_HEADER_SIZE + 10] = {0};
    header_bytes(stream, 0, CWS_GRPC_MAX_MESSAGE);
    size_t before = heap_in_use();
    size_t used;
    ck_assert_int_eq(cws_grpc_deframer_feed(d, stream, sizeof(stream), &used, NULL), 0);
    ck_assert_uint_eq(used, sizeof(stream));
    ck_assert_uint_le(heap_in_use(), before + SMALL_ALLOCATION);
    cws_grpc_deframer_free(d);
}
END_TEST

START_TEST(test_allocation_bounded_by_declared_length)
{
    /* A 3-byte message must not get a default-sized buffer. */
    struct cws_grpc_deframer *d = new_deframer(CWS_GRPC_MAX_MESSAGE);
    size_t before = heap_in_use();
    size_t used;
    for (int i = 0; i < 64; i++) {
        ck_assert_int_eq(
            cws_grpc_deframer_feed(d, (const uint8_t *)"\0\0\0\0\3abc", 8, &used, NULL), 1);
    }
    ck_assert_uint_le(heap_in_use(), before + 256);
    cws_grpc_deframer_free(d);
}
END_TEST

/* ---- flags and failure ------------------------------------------------------------ */

START_TEST(test_compressed_flag)
{
    struct cws_grpc_deframer *d = new_deframer(16);
    struct cws_error err;
    size_t used;
    ck_assert_int_eq(cws_grpc_deframer_feed(d, (const uint8_t *)"\1\0\0\0\1x", 6, &used, &err),
                     -CWS_E_UNIMPLEMENTED);
    ck_assert_int_eq(err.code, CWS_E_UNIMPLEMENTED);
    ck_assert_str_eq(err.message, "compressed gRPC messages are not supported: "
                                  "no grpc-encoding was negotiated");
    cws_grpc_deframer_free(d);
}
END_TEST

START_TEST(test_bad_flags)
{
    const uint8_t flags[] = {2, 0x80, 0xff};
    for (size_t i = 0; i < sizeof(flags); i++) {
        struct cws_grpc_deframer *d = new_deframer(16);
        uint8_t hdr[CWS_GRPC_FRAME_HEADER_SIZE];
        header_bytes(hdr, flags[i], 0);
        struct cws_error err;
        size_t used;
        ck_assert_int_eq(cws_grpc_deframer_feed(d, hdr, sizeof(hdr), &used, &err), -CWS_E_PROTOCOL);
        ck_assert_int_eq(err.code, CWS_E_PROTOCOL);
        ck_assert(!cws_grpc_deframer_idle(d));
        cws_grpc_deframer_free(d);
    }
}
END_TEST

START_TEST(test_failure_is_sticky)
{
    struct cws_grpc_deframer *d = new_deframer(16);
    struct cws_error first, again;
    size_t used = 55;
    ck_assert_int_eq(cws_grpc_deframer_feed(d, (const uint8_t *)"\7\0\0\0\0", 5, &used, &first),
                     -CWS_E_PROTOCOL);
    /* A valid message afterwards does not revive the stream. */
    for (int i = 0; i < 3; i++) {
        cws_error_clear(&again);
        ck_assert_int_eq(
            cws_grpc_deframer_feed(d, (const uint8_t *)"\0\0\0\0\1z", 6, &used, &again),
            -CWS_E_PROTOCOL);
        ck_assert_int_eq(again.code, CWS_E_PROTOCOL);
        ck_assert_str_eq(again.message, first.message);
    }
    ck_assert_int_eq(cws_grpc_deframer_feed(d, NULL, 0, &used, NULL), -CWS_E_PROTOCOL);
    ck_assert_uint_eq(used, 55);
    ck_assert(!cws_grpc_deframer_idle(d));
    const uint8_t *msg = (const uint8_t *)"x";
    size_t len = 9;
    cws_grpc_deframer_message(d, &msg, &len);
    ck_assert_ptr_null(msg);
    cws_grpc_deframer_free(d);
}
END_TEST

START_TEST(test_free_null)
{
    cws_grpc_deframer_free(NULL);
}
END_TEST

static Suite *grpc_frame_suite(void)
{
    Suite *s = suite_create("grpc_frame");

    TCase *tc = tcase_create("prefix");
    tcase_add_test(tc, test_header_encoding);
    tcase_add_test(tc, test_header_too_long);
    tcase_add_test(tc, test_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("split");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_all_at_once);
    tcase_add_test(tc, test_byte_by_byte);
    tcase_add_test(tc, test_every_two_chunk_split);
    tcase_add_test(tc, test_stops_at_message_end);
    tcase_add_test(tc, test_zero_length_message);
    tcase_add_test(tc, test_empty_feed);
    tcase_add_test(tc, test_message_before_completion);
    tcase_add_test(tc, test_idle_transitions);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_limit_exact_ok);
    tcase_add_test(tc, test_limit_plus_one_rejected);
    tcase_add_test(tc, test_default_limit_message);
    tcase_add_test(tc, test_huge_declared_length_fails_without_allocating);
    tcase_add_test(tc, test_allocation_follows_received_bytes);
    tcase_add_test(tc, test_allocation_bounded_by_declared_length);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_compressed_flag);
    tcase_add_test(tc, test_bad_flags);
    tcase_add_test(tc, test_failure_is_sticky);
    tcase_add_test(tc, test_free_null);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(grpc_frame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
