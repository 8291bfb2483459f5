/* Fuzz the gRPC status reader and writer.
 *
 * Input layout for the header path: byte 0 and byte 1 are the lengths of grpc-status and
 * grpc-message (0xff means the header is absent), the rest is grpc-status-details-bin. The
 * whole input is also fed to the base64 decoder and, base64-encoded, to the details path.
 * Any broken invariant aborts so that libFuzzer reports it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "cws_error.h"
#include "grpc_status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define ABSENT 0xff

/* A NUL-terminated copy of len bytes; NULL when out of memory. Caller frees. */
static char *copy_string(const uint8_t *data, size_t len)
{
    char *s = malloc(len + 1);

    if (s) {
        memcpy(s, data, len);
        s[len] = '\0';
    }
    return s;
}

/* Independent of parse_code(): digits only, value 0..16. */
static bool code_valid(const char *s)
{
    size_t len = s ? strlen(s) : 0;

    if (len == 0 || strspn(s, "0123456789") != len)
        return false;
    while (len > 1 && *s == '0') {
        s++;
        len--;
    }
    return len <= 2 && atoi(s) <= 16;
}

static void check_status(const struct cws_grpc_status *st)
{
    CHECK(st->code >= 0 && st->code <= 16);
    CHECK(st->message);
    CHECK((st->reason == NULL) == (st->domain == NULL));
    CHECK(!st->reason || st->reason[0] != '\0');
    CHECK(st->reason || st->n_metadata == 0);
    CHECK(st->n_metadata == 0 || st->metadata);
    for (size_t i = 0; i < st->n_metadata; i++)
        CHECK(st->metadata[i].key && st->metadata[i].value);
    CHECK(st->retry_delay_ms >= -1);
    CHECK(st->n_violations == 0 || st->violations);
    for (size_t i = 0; i < st->n_violations; i++)
        CHECK(st->violations[i].field && st->violations[i].description);
}

static void check_to_error(const struct cws_grpc_status *st)
{
    struct cws_error err;
    int r = cws_grpc_status_to_error(st, &err);

    CHECK(r == -(int)err.code);
    CHECK(err.code == cws_errcode_from_grpc(st->code));
    CHECK(err.retry_after_ms == st->retry_delay_ms);
    CHECK(memchr(err.message, '\0', sizeof(err.message)));
    CHECK(memchr(err.reason, '\0', sizeof(err.reason)));
}

/* Parse, check the invariants of a success, and clear. Returns the parse result. */
static int parse_checked(const char *code, const char *msg, const char *bin,
                         struct cws_grpc_status *st)
{
    struct cws_error err;
    int r = cws_grpc_status_parse(code, msg, bin, st, &err);

    if (r == -CWS_E_NOMEM)
        return r;
    /* Only the status header can fail a parse. */
    CHECK((r == 0) == code_valid(code));
    if (r < 0) {
        CHECK(r == -CWS_E_PROTOCOL && err.code == CWS_E_PROTOCOL);
        CHECK(st->message == NULL); /* untouched */
        return r;
    }
    check_status(st);
    check_to_error(st);
    return 0;
}

/* grpc-message survives encode then parse. */
static void fuzz_message_round_trip(const char *msg)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    char *enc = NULL;

    if (cws_grpc_message_encode(msg, &enc) < 0)
        return;
    for (const char *p = enc; *p; p++)
        CHECK(*p >= 0x20 && *p <= 0x7e);
    if (parse_checked("2", enc, NULL, &st) == 0)
        CHECK(strcmp(st.message, msg) == 0);
    cws_grpc_status_clear(&st);
    free(enc);
}

/* Details built by the server side read back the same. */
static void fuzz_details_round_trip(uint8_t code, const char *reason, const char *message,
                                    const char *key)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    const char *kv[] = {key, reason, NULL};
    int64_t delay = code % 3 == 0 ? -1 : (int64_t)code * 997;
    char *bin = NULL;

    if (cws_grpc_status_details_encode(code % 17, message, reason, key, kv, delay, &bin) < 0)
        return;
    CHECK(!strchr(bin, '='));
    if (parse_checked("4", NULL, bin, &st) == 0) {
        CHECK(st.code == 4);
        CHECK(strcmp(st.message, message) == 0);
        CHECK(st.retry_delay_ms == delay);
        if (reason[0]) {
            CHECK(st.reason && strcmp(st.reason, reason) == 0);
            CHECK(strcmp(st.domain, key) == 0);
            CHECK(strcmp(cws_grpc_status_metadata_get(&st, key), reason) == 0);
        } else {
            CHECK(!st.reason);
        }
    }
    cws_grpc_status_clear(&st);
    free(bin);
}

static void fuzz_headers(const uint8_t *data, size_t size)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    size_t la, lb, rest;
    char *code = NULL, *msg = NULL, *bin = NULL;

    if (size < 2)
        return;
    la = data[0] == ABSENT ? 0 : data[0];
    lb = data[1] == ABSENT ? 0 : data[1];
    data += 2;
    size -= 2;
    la = la < size ? la : size;
    lb = lb < size - la ? lb : size - la;
    rest = size - la - lb;
    code = copy_string(data, la);
    msg = copy_string(data + la, lb);
    bin = copy_string(data + la + lb, rest);
    if (!code || !msg || !bin)
        goto out;

    parse_checked(data[-2] == ABSENT ? NULL : code, data[-1] == ABSENT ? NULL : msg, bin, &st);
    cws_grpc_status_clear(&st);
    CHECK(st.message == NULL && st.retry_delay_ms == -1);
    /* Reusing the cleared struct must work. */
    parse_checked("0", msg, bin, &st);
    cws_grpc_status_clear(&st);

    fuzz_message_round_trip(msg);
    fuzz_details_round_trip(data[-2], code, msg, bin);
out:
    free(code);
    free(msg);
    free(bin);
}

/* The raw input as base64 text, and base64 of the raw input. */
static void fuzz_base64(const uint8_t *data, size_t size)
{
    size_t max = cws_base64_decoded_max(size), n, m;
    size_t text_size = cws_base64_encoded_len(size) + 1;
    uint8_t *buf = malloc(max + 1), *back = malloc(size + 1);
    char *text = malloc(text_size);

    if (!buf || !back || !text)
        goto out;
    if (cws_base64_decode((const char *)data, size, buf, max, &n) == 0) {
        CHECK(n <= max);
        /* Re-encoding is canonical, so it decodes to the same bytes. */
        if (cws_base64_encode(buf, n, text, text_size, &m) == 0) {
            CHECK(cws_base64_decode(text, m, back, size, &m) == 0);
            CHECK(m == n && memcmp(back, buf, n) == 0);
        }
    }

    CHECK(cws_base64_encode(data, size, text, text_size, &n) == 0);
    CHECK(n == text_size - 1 && strlen(text) == n);
    CHECK(cws_base64_decode(text, n, back, size, &m) == 0);
    CHECK(m == size && memcmp(back, data, size) == 0);
    while (n > 0 && text[n - 1] == '=')
        n--;
    CHECK(cws_base64_decode(text, n, back, size, &m) == 0);
    CHECK(m == size && memcmp(back, data, size) == 0);
out:
    free(buf);
    free(back);
    free(text);
}

/* The raw input as a google.rpc.Status: never an error, the header code stands. */
static void fuzz_details(const uint8_t *data, size_t size)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    size_t text_size = cws_base64_encoded_len(size) + 1;
    char *text = malloc(text_size);

    if (!text)
        return;
    CHECK(cws_base64_encode(data, size, text, text_size, NULL) == 0);
    if (parse_checked("3", "outer", text, &st) == 0) {
        CHECK(st.code == 3);
        CHECK(strcmp(st.message, "outer") == 0);
    }
    cws_grpc_status_clear(&st);
    if (parse_checked("16", NULL, text, &st) == 0)
        CHECK(st.code == 16);
    cws_grpc_status_clear(&st);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_headers(data, size);
    fuzz_base64(data, size);
    fuzz_details(data, size);
    return 0;
}
