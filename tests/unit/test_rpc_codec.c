/* msgpack-rpc codec: round trips, every truncation point, limits, wrong shapes, garbage. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_decoder.h"
#include "rpc_encode.h"

struct buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void buf_init(struct buf *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

static void buf_destroy(struct buf *b)
{
    msgpack_sbuffer_destroy(&b->sb);
}

/* A request whose params exercise every msgpack size class the scanner walks. */
static void pack_rich_request(struct buf *b, uint32_t msgid)
{
    static char big[70000];
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(cws_rpc_pack_request_head(&b->pk, msgid, "exec"), 0);
    msgpack_pack_map(&b->pk, 10);
    cws_rpc_pack_kv_cstr(&b->pk, "id", "sb-123");
    cws_rpc_pack_kv_int(&b->pk, "neg", -70000);
    cws_rpc_pack_kv_uint(&b->pk, "big", UINT64_MAX);
    cws_rpc_pack_kv_bool(&b->pk, "tty", true);
    cws_rpc_pack_kv_bin(&b->pk, "stdin", big, 300);   /* bin 16 */
    cws_rpc_pack_kv_bin(&b->pk, "large", big, 70000); /* bin 32 */
    cws_rpc_pack_cstr(&b->pk, "argv");
    msgpack_pack_array(&b->pk, 3);
    cws_rpc_pack_cstr(&b->pk, "sh");
    msgpack_pack_str(&b->pk, 40); /* str 8 */
    msgpack_pack_str_body(&b->pk, big, 40);
    msgpack_pack_str(&b->pk, 300); /* str 16 */
    msgpack_pack_str_body(&b->pk, big, 300);
    cws_rpc_pack_cstr(&b->pk, "timeout_s");
    msgpack_pack_double(&b->pk, 2.5);
    cws_rpc_pack_cstr(&b->pk, "ext");
    msgpack_pack_ext(&b->pk, 4, -1); /* fixext 4 */
    msgpack_pack_ext_body(&b->pk, "abcd", 4);
    cws_rpc_pack_kv_nil(&b->pk, "cwd");
}

static struct cws_rpc_decoder *new_decoder(size_t max)
{
    struct cws_rpc_decoder *d = NULL;
    ck_assert_int_eq(cws_rpc_decoder_new(max, &d), 0);
    return d;
}

static void check_rich_request(const struct cws_rpc_msg *m, uint32_t msgid)
{
    ck_assert_int_eq(m->type, CWS_RPC_REQUEST);
    ck_assert_uint_eq(m->msgid, msgid);
    ck_assert_str_eq(m->method, "exec");
    ck_assert_int_eq(m->params->type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(m->params->via.map.size, 10);
    const msgpack_object_kv *kv = m->params->via.map.ptr;
    ck_assert_int_eq(kv[5].val.type, MSGPACK_OBJECT_BIN);
    ck_assert_uint_eq(kv[5].val.via.bin.size, 70000);
    ck_assert_int_eq(kv[1].val.via.i64, -70000);
    ck_assert(kv[2].val.via.u64 == UINT64_MAX);
    ck_assert_int_eq(kv[8].val.type, MSGPACK_OBJECT_EXT);
    ck_assert_int_eq(kv[8].val.via.ext.type, -1);
}

START_TEST(request_round_trip)
{
    struct buf b;
    struct cws_rpc_msg *m = NULL;
    buf_init(&b);
    pack_rich_request(&b, 4000000000u);
    struct cws_rpc_decoder *d = new_decoder(0);
    ck_assert_int_eq(cws_rpc_decoder_feed(d, b.sb.data, b.sb.size, NULL), 0);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), 1);
    check_rich_request(m, 4000000000u);
    ck_assert_uint_eq(m->size, b.sb.size);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), 0);
    ck_assert_uint_eq(cws_rpc_decoder_buffered(d), 0);
    cws_rpc_msg_free(m);
    cws_rpc_decoder_free(d);
    buf_destroy(&b);
}
END_TEST

START_TEST(response_and_notification_round_trip)
{
    struct buf b;
    struct cws_rpc_msg *m;
    struct cws_error e, got;
    buf_init(&b);
    cws_rpc_pack_result_head(&b.pk, 7);
    msgpack_pack_map(&b.pk, 1);
    cws_rpc_pack_kv_int(&b.pk, "exit_code", 3);
    cws_error_set(&e, CWS_E_NOT_FOUND, "sandbox sb-1 not found");
    cws_error_set_reason(&e, "CWSANDBOX_SANDBOX_NOT_FOUND");
    e.retry_after_ms = 1500;
    cws_rpc_pack_error_response(&b.pk, 8, &e);
    cws_rpc_pack_notification_head(&b.pk, "exec.output");
    msgpack_pack_map(&b.pk, 2);
    cws_rpc_pack_kv_uint(&b.pk, "id", 9);
    cws_rpc_pack_kv_bin(&b.pk, "data", "hi", 2);
    /* A notification with empty params [] gets an empty map. */
    msgpack_pack_array(&b.pk, 3);
    msgpack_pack_uint8(&b.pk, 2);
    cws_rpc_pack_cstr(&b.pk, "ping");
    msgpack_pack_array(&b.pk, 0);

    struct cws_rpc_decoder *d = new_decoder(0);
    ck_assert_int_eq(cws_rpc_decoder_feed(d, b.sb.data, b.sb.size, NULL), 0);

    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), 1);
    ck_assert_int_eq(m->type, CWS_RPC_RESPONSE);
    ck_assert_uint_eq(m->msgid, 7);
    ck_assert_ptr_null(m->error);
    ck_assert_int_eq(m->result->via.map.ptr[0].val.via.u64, 3);
    cws_rpc_msg_free(m);

    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), 1);
    ck_assert_uint_eq(m->msgid, 8);
    ck_assert_ptr_nonnull(m->error);
    ck_assert_int_eq(m->result->type, MSGPACK_OBJECT_NIL);
    ck_assert_int_eq(cws_rpc_error_from_object(m->error, &got, NULL), 0);
    ck_assert_int_eq(got.code, CWS_E_NOT_FOUND);
    ck_assert_str_eq(got.message, "sandbox sb-1 not found");
    ck_assert_str_eq(got.reason, "CWSANDBOX_SANDBOX_NOT_FOUND");
    ck_assert(!got.retryable);
    ck_assert_int_eq(got.retry_after_ms, 1500);
    cws_rpc_msg_free(m);

    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), 1);
    ck_assert_int_eq(m->type, CWS_RPC_NOTIFICATION);
    ck_assert_str_eq(m->method, "exec.output");
    ck_assert_uint_eq(m->params->via.map.size, 2);
    cws_rpc_msg_free(m);

    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), 1);
    ck_assert_str_eq(m->method, "ping");
    ck_assert_int_eq(m->params->type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(m->params->via.map.size, 0);
    cws_rpc_msg_free(m);

    cws_rpc_decoder_free(d);
    buf_destroy(&b);
}
END_TEST

START_TEST(error_map_unknown_code_kept)
{
    struct buf b;
    struct cws_error got;
    msgpack_unpacked u;
    buf_init(&b);
    msgpack_pack_map(&b.pk, 2);
    cws_rpc_pack_kv_cstr(&b.pk, "code", "FROM_THE_FUTURE");
    cws_rpc_pack_kv_cstr(&b.pk, "message", "new thing");
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, b.sb.data, b.sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(cws_rpc_error_from_object(&u.data, &got, NULL), 0);
    ck_assert_int_eq(got.code, CWS_E_UNKNOWN);
    ck_assert_str_eq(got.message, "new thing (FROM_THE_FUTURE)");
    msgpack_unpacked_destroy(&u);
    buf_destroy(&b);
}
END_TEST

/* Split the message at every byte: the first part must never yield, the rest must. */
START_TEST(every_truncation_point)
{
    struct buf b;
    struct cws_rpc_msg *m;
    buf_init(&b);
    pack_rich_request(&b, 42);
    /* The 70000-byte payload makes every split too slow; step through it coarsely. */
    for (size_t k = 0; k < b.sb.size; k += (k > 400 && k < b.sb.size - 400) ? 997 : 1) {
        struct cws_rpc_decoder *d = new_decoder(0);
        ck_assert_int_eq(cws_rpc_decoder_feed(d, b.sb.data, k, NULL), 0);
        ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), 0);
        ck_assert(!cws_rpc_decoder_broken(d));
        ck_assert_int_eq(cws_rpc_decoder_feed(d, b.sb.data + k, b.sb.size - k, NULL), 0);
        ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), 1);
        check_rich_request(m, 42);
        cws_rpc_msg_free(m);
        cws_rpc_decoder_free(d);
    }
    buf_destroy(&b);
}
END_TEST

START_TEST(byte_by_byte_many_messages)
{
    struct buf b;
    struct cws_rpc_msg *m;
    int got = 0;
    buf_init(&b);
    for (int i = 0; i < 5; i++) {
        cws_rpc_pack_notification_head(&b.pk, "logs.data");
        msgpack_pack_map(&b.pk, 1);
        cws_rpc_pack_kv_int(&b.pk, "seq", i);
    }
    struct cws_rpc_decoder *d = new_decoder(0);
    for (size_t k = 0; k < b.sb.size; k++) {
        ck_assert_int_eq(cws_rpc_decoder_feed(d, b.sb.data + k, 1, NULL), 0);
        while (cws_rpc_decoder_next(d, &m, NULL) == 1) {
            ck_assert_str_eq(m->method, "logs.data");
            ck_assert_int_eq(m->params->via.map.ptr[0].val.via.u64, got);
            got++;
            cws_rpc_msg_free(m);
        }
    }
    ck_assert_int_eq(got, 5);
    cws_rpc_decoder_free(d);
    buf_destroy(&b);
}
END_TEST

static void pack_request_with_bin(struct buf *b, size_t n)
{
    char *data = calloc(1, n ? n : 1);
    cws_rpc_pack_request_head(&b->pk, 1, "file.write");
    msgpack_pack_map(&b->pk, 1);
    cws_rpc_pack_kv_bin(&b->pk, "data", data, n);
    free(data);
}

START_TEST(limit_is_exact)
{
    struct buf b;
    struct cws_rpc_msg *m;
    struct cws_error e;
    buf_init(&b);
    pack_request_with_bin(&b, 1000);
    struct cws_rpc_decoder *d = new_decoder(b.sb.size);
    cws_rpc_decoder_feed(d, b.sb.data, b.sb.size, NULL);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), 1);
    cws_rpc_msg_free(m);
    cws_rpc_decoder_free(d);

    d = new_decoder(b.sb.size - 1);
    cws_rpc_decoder_feed(d, b.sb.data, b.sb.size, NULL);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, &e), -CWS_E_RESOURCE_EXHAUSTED);
    char want[128];
    snprintf(want, sizeof(want), "msgpack-rpc message exceeds the %zu-byte limit", b.sb.size - 1);
    ck_assert_str_eq(e.message, want);
    ck_assert(cws_rpc_decoder_broken(d));
    cws_rpc_decoder_free(d);
    buf_destroy(&b);
}
END_TEST

/* The limit is enforced from the declared length, before the payload has arrived. */
START_TEST(oversize_refused_from_header)
{
    struct buf b;
    struct cws_rpc_msg *m;
    buf_init(&b);
    pack_request_with_bin(&b, 5000);
    struct cws_rpc_decoder *d = new_decoder(4096);
    /* Everything up to and including the bin32 header, none of the payload. */
    size_t head = b.sb.size - 5000;
    cws_rpc_decoder_feed(d, b.sb.data, head, NULL);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), -CWS_E_RESOURCE_EXHAUSTED);
    ck_assert(cws_rpc_decoder_broken(d));
    /* Broken stays broken, for feed and next. */
    ck_assert_int_eq(cws_rpc_decoder_feed(d, "x", 1, NULL), -CWS_E_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), -CWS_E_RESOURCE_EXHAUSTED);
    cws_rpc_decoder_free(d);
    buf_destroy(&b);
}
END_TEST

/* An array claiming 4 billion elements in 5 bytes must not make msgpack-c allocate. */
START_TEST(huge_declared_counts_refused)
{
    static const uint8_t arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map[] = {0x94, 0x00, 0x01, 0xa1, 'm', 0x91, 0xdf, 0x7f, 0xff, 0xff, 0xff};
    struct cws_rpc_msg *m;
    struct cws_error e;
    struct cws_rpc_decoder *d = new_decoder(0);
    cws_rpc_decoder_feed(d, arr, sizeof(arr), NULL);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, &e), -CWS_E_RESOURCE_EXHAUSTED);
    cws_rpc_decoder_free(d);
    d = new_decoder(0);
    cws_rpc_decoder_feed(d, map, sizeof(map), NULL);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, &e), -CWS_E_RESOURCE_EXHAUSTED);
    cws_rpc_decoder_free(d);
}
END_TEST

START_TEST(element_count_limit)
{
    struct buf b;
    struct cws_rpc_msg *m;
    struct cws_error e;
    buf_init(&b);
    cws_rpc_pack_request_head(&b.pk, 1, "x");
    msgpack_pack_map(&b.pk, 1);
    cws_rpc_pack_cstr(&b.pk, "a");
    msgpack_pack_array(&b.pk, CWS_RPC_MAX_ELEMENTS);
    for (unsigned i = 0; i < CWS_RPC_MAX_ELEMENTS; i++)
        msgpack_pack_nil(&b.pk);
    struct cws_rpc_decoder *d = new_decoder(0);
    cws_rpc_decoder_feed(d, b.sb.data, b.sb.size, NULL);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, &e), -CWS_E_RESOURCE_EXHAUSTED);
    ck_assert_ptr_nonnull(strstr(e.message, "more than 1048576 objects"));
    cws_rpc_decoder_free(d);
    buf_destroy(&b);
}
END_TEST

static void pack_nested(struct buf *b, int depth)
{
    /* [0, 1, "m", [{"n": [[...[]...]]}]]: the envelope takes 3 levels. */
    cws_rpc_pack_request_head(&b->pk, 1, "m");
    msgpack_pack_map(&b->pk, 1);
    cws_rpc_pack_cstr(&b->pk, "n");
    for (int i = 3; i < depth; i++)
        msgpack_pack_array(&b->pk, 1);
    msgpack_pack_nil(&b->pk);
}

START_TEST(nesting_limit)
{
    struct buf b;
    struct cws_rpc_msg *m;
    buf_init(&b);
    pack_nested(&b, CWS_RPC_MAX_DEPTH);
    struct cws_rpc_decoder *d = new_decoder(0);
    cws_rpc_decoder_feed(d, b.sb.data, b.sb.size, NULL);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), 1);
    cws_rpc_msg_free(m);
    cws_rpc_decoder_free(d);
    buf_destroy(&b);

    buf_init(&b);
    pack_nested(&b, CWS_RPC_MAX_DEPTH + 1);
    d = new_decoder(0);
    cws_rpc_decoder_feed(d, b.sb.data, b.sb.size, NULL);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), -CWS_E_PROTOCOL);
    ck_assert(cws_rpc_decoder_broken(d));
    cws_rpc_decoder_free(d);
    buf_destroy(&b);
}
END_TEST

START_TEST(reserved_byte_breaks_stream)
{
    static const uint8_t bad[] = {0x94, 0x00, 0x01, 0xc1};
    struct cws_rpc_msg *m;
    struct cws_rpc_decoder *d = new_decoder(0);
    cws_rpc_decoder_feed(d, bad, sizeof(bad), NULL);
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), -CWS_E_PROTOCOL);
    ck_assert(cws_rpc_decoder_broken(d));
    cws_rpc_decoder_free(d);
}
END_TEST

/* Well-formed msgpack that is not msgpack-rpc: skipped with an error, stream stays usable. */
struct bad_shape {
    const char *hex_desc;
    uint8_t bytes[16];
    size_t len;
    const char *message;
    int has_msgid;
};

static const struct bad_shape bad_shapes[] = {
    {"map root", {0x80}, 1, "not an array of 3 or 4 elements", 0},
    {"type 3", {0x94, 0x03, 0x01, 0xa1, 'm', 0x90}, 6, "type must be 0", 0},
    {"type -1", {0x94, 0xff, 0x01, 0xa1, 'm', 0x90}, 6, "type must be 0", 0},
    {"request of 3", {0x93, 0x00, 0x01, 0xa1, 'm'}, 5, "a request is", 0},
    {"msgid string", {0x94, 0x00, 0xa1, 'x', 0xa1, 'm', 0x90}, 7, "msgid must be", 0},
    {"msgid negative", {0x94, 0x00, 0xff, 0xa1, 'm', 0x90}, 6, "msgid must be", 0},
    {"msgid too big",
     {0x94, 0x00, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 0xa1, 'm', 0x90},
     14,
     "msgid must be",
     0},
    {"method int", {0x94, 0x00, 0x05, 0x07, 0x90}, 5, "method must be", 1},
    {"method empty", {0x94, 0x00, 0x05, 0xa0, 0x90}, 5, "method must be", 1},
    {"method NUL", {0x94, 0x00, 0x05, 0xa2, 'a', 0, 0x90}, 7, "method must be", 1},
    {"params map", {0x94, 0x00, 0x05, 0xa1, 'm', 0x80}, 6, "params must be", 1},
    {"params [1]", {0x94, 0x00, 0x05, 0xa1, 'm', 0x91, 0x01}, 7, "params must be", 1},
    {"params [{},{}]", {0x94, 0x00, 0x05, 0xa1, 'm', 0x92, 0x80, 0x80}, 8, "params must be", 1},
    {"both", {0x94, 0x01, 0x05, 0x80, 0x01}, 5, "not both", 0},
    {"notification of 4", {0x94, 0x02, 0xa1, 'm', 0x90, 0xc0}, 6, "a notification is", 0},
};

START_TEST(wrong_shapes_are_skipped)
{
    const struct bad_shape *t = &bad_shapes[_i];
    static const uint8_t good[] = {0x93, 0x02, 0xa2, 'o', 'k', 0x90};
    struct cws_rpc_msg *m;
    struct cws_error e;
    uint32_t id = 0;
    struct cws_rpc_decoder *d = new_decoder(0);
    cws_rpc_decoder_feed(d, t->bytes, t->len, NULL);
    cws_rpc_decoder_feed(d, good, sizeof(good), NULL);
    ck_assert_msg(cws_rpc_decoder_next(d, &m, &e) == -CWS_E_PROTOCOL, "%s", t->hex_desc);
    ck_assert_msg(strstr(e.message, t->message), "%s: %s", t->hex_desc, e.message);
    ck_assert_int_eq(cws_rpc_decoder_bad_msgid(d, &id), t->has_msgid);
    if (t->has_msgid)
        ck_assert_uint_eq(id, 5);
    ck_assert(!cws_rpc_decoder_broken(d));
    ck_assert_int_eq(cws_rpc_decoder_next(d, &m, NULL), 1);
    ck_assert_str_eq(m->method, "ok");
    ck_assert_int_eq(cws_rpc_decoder_bad_msgid(d, &id), 0);
    cws_rpc_msg_free(m);
    cws_rpc_decoder_free(d);
}
END_TEST

START_TEST(big_buffer_released)
{
    struct buf b;
    struct cws_rpc_msg *m;
    buf_init(&b);
    pack_request_with_bin(&b, 3 << 20);
    struct cws_rpc_decoder *d = new_decoder(0);
    for (size_t off = 0; off < b.sb.size; off += 65536) {
        size_t n = b.sb.size - off < 65536 ? b.sb.size - off : 65536;
        cws_rpc_decoder_feed(d, b.sb.data + off, n, NULL);
        int r = cws_rpc_decoder_next(d, &m, NULL);
        ck_assert_int_eq(r, off + n == b.sb.size ? 1 : 0);
    }
    ck_assert_uint_eq(m->params->via.map.ptr[0].val.via.bin.size, 3 << 20);
    ck_assert_uint_eq(cws_rpc_decoder_buffered(d), 0);
    cws_rpc_msg_free(m);
    cws_rpc_decoder_free(d);
    buf_destroy(&b);
}
END_TEST

/* Random bytes in random chunks: the decoder must answer with a defined result every time
 * and never read or allocate out of bounds (the sanitizer build checks the latter). */
START_TEST(random_garbage)
{
    uint8_t data[512];
    unsigned seed = 12345;
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof(data));
        for (size_t i = 0; i < len; i++)
            data[i] = (uint8_t)rand_r(&seed);
        if (round % 2)
            data[0] = 0x94; /* bias towards the request shape */
        struct cws_rpc_decoder *d = new_decoder(256);
        size_t off = 0;
        while (off < len) {
            size_t n = 1 + (size_t)(rand_r(&seed) % 64);
            n = n > len - off ? len - off : n;
            int r = cws_rpc_decoder_feed(d, data + off, n, NULL);
            off += n;
            struct cws_rpc_msg *m;
            while ((r = cws_rpc_decoder_next(d, &m, NULL)) != 0) {
                if (r == 1) {
                    ck_assert_uint_le(m->size, 256);
                    cws_rpc_msg_free(m);
                    continue;
                }
                ck_assert(r == -CWS_E_PROTOCOL || r == -CWS_E_RESOURCE_EXHAUSTED);
                if (cws_rpc_decoder_broken(d))
                    break;
            }
            if (cws_rpc_decoder_broken(d))
                break;
        }
        cws_rpc_decoder_free(d);
    }
}
END_TEST

static Suite *rpc_codec_suite(void)
{
    Suite *s = suite_create("rpc_codec");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, request_round_trip);
    tcase_add_test(tc, response_and_notification_round_trip);
    tcase_add_test(tc, error_map_unknown_code_kept);
    tcase_add_test(tc, every_truncation_point);
    tcase_add_test(tc, byte_by_byte_many_messages);
    tcase_add_test(tc, limit_is_exact);
    tcase_add_test(tc, oversize_refused_from_header);
    tcase_add_test(tc, huge_declared_counts_refused);
    tcase_add_test(tc, element_count_limit);
    tcase_add_test(tc, nesting_limit);
    tcase_add_test(tc, reserved_byte_breaks_stream);
    tcase_add_loop_test(tc, wrong_shapes_are_skipped, 0,
                        (int)(sizeof(bad_shapes) / sizeof(bad_shapes[0])));
    tcase_add_test(tc, big_buffer_released);
    tcase_add_test(tc, random_garbage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rpc_codec_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
