/* gRPC status headers and google.rpc.Status details; see grpc_status.h. */
#include "grpc_status.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

#define GRPC_CODE_MAX 16

void cws_grpc_status_clear(struct cws_grpc_status *st)
{
    if (!st)
        return;
    free(st->message);
    free(st->reason);
    free(st->domain);
    for (size_t i = 0; i < st->n_metadata; i++) {
        free(st->metadata[i].key);
        free(st->metadata[i].value);
    }
    free(st->metadata);
    for (size_t i = 0; i < st->n_violations; i++) {
        free(st->violations[i].field);
        free(st->violations[i].description);
    }
    free(st->violations);
    *st = (struct cws_grpc_status)CWS_GRPC_STATUS_INIT;
}

/* protobuf-c leaves unset strings as "" but a NULL costs nothing to guard against. */
static char *dup_str(const char *s)
{
    return strdup(s ? s : "");
}

/* Digits only, 0..16: " 1", "+1" or "1a" mean a broken peer, not a status. */
static int parse_code(const char *s, int *ret_code)
{
    int code = 0;

    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        code = code * 10 + (*s - '0');
        if (code > GRPC_CODE_MAX)
            return -1;
    }
    *ret_code = code;
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The gRPC spec asks receivers to keep a malformed %-sequence as is rather than fail. */
static int percent_decode(const char *s, char **ret)
{
    char *out = malloc(strlen(s) + 1);
    size_t o = 0;

    if (!out)
        return -CWS_E_NOMEM;
    for (size_t i = 0; s[i]; i++) {
        int hi, lo;

        /* s[i + 1] is NUL at worst, which hex_value rejects before s[i + 2] is read. */
        if (s[i] == '%' && (hi = hex_value(s[i + 1])) >= 0 && (lo = hex_value(s[i + 2])) >= 0 &&
            (hi | lo) != 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    *ret = out;
    return 0;
}

/* Decode details_bin into a Status. Sets *ret to NULL when the value is not base64 or not a
 * Status, since such details are ignored; fails only when out of memory. */
static int details_unpack(const char *details_bin, Google__Rpc__Status **ret)
{
    size_t len = strlen(details_bin), n;
    uint8_t *buf = malloc(cws_base64_decoded_max(len) + 1);

    if (!buf)
        return -CWS_E_NOMEM;
    *ret = NULL;
    if (cws_base64_decode(details_bin, len, buf, cws_base64_decoded_max(len), &n) == 0)
        *ret = google__rpc__status__unpack(NULL, n, buf);
    free(buf);
    return 0;
}

/* As google.protobuf.Any.Is(): the full type name after the last '/'. */
static bool any_is(const Google__Protobuf__Any *any, const char *full_name)
{
    const char *url = any->type_url ? any->type_url : "";
    const char *slash = strrchr(url, '/');

    return strcmp(slash ? slash + 1 : url, full_name) == 0;
}

static int take_error_info(struct cws_grpc_status *st, const Google__Rpc__ErrorInfo *info)
{
    st->reason = dup_str(info->reason);
    st->domain = dup_str(info->domain);
    if (!st->reason || !st->domain)
        return -CWS_E_NOMEM;
    if (info->n_metadata == 0)
        return 0;
    st->metadata = calloc(info->n_metadata, sizeof(*st->metadata));
    if (!st->metadata)
        return -CWS_E_NOMEM;
    st->n_metadata = info->n_metadata;
    for (size_t i = 0; i < info->n_metadata; i++) {
        st->metadata[i].key = dup_str(info->metadata[i]->key);
        st->metadata[i].value = dup_str(info->metadata[i]->value);
        if (!st->metadata[i].key || !st->metadata[i].value)
            return -CWS_E_NOMEM;
    }
    return 0;
}

/* The first ErrorInfo with a reason wins; ones without a reason say nothing usable. */
static int apply_error_info(struct cws_grpc_status *st, const Google__Protobuf__Any *any)
{
    Google__Rpc__ErrorInfo *info;
    int r = 0;

    if (st->reason)
        return 0;
    info = google__rpc__error_info__unpack(NULL, any->value.len, any->value.data);
    if (!info)
        return 0;
    if (info->reason && *info->reason)
        r = take_error_info(st, info);
    google__rpc__error_info__free_unpacked(info, NULL);
    return r;
}

/* Round up so a client never retries earlier than asked; a negative delay means "now" and a
 * huge one saturates. |nanos| < 2^31 adds at most 2148 ms, hence the margin of 3 s. */
static int64_t duration_to_ms(int64_t seconds, int32_t nanos)
{
    int64_t nanos_ms =
        nanos > 0 ? ((int64_t)nanos + 999999) / 1000000 : -((-(int64_t)nanos) / 1000000);
    int64_t ms;

    if (seconds > INT64_MAX / 1000 - 3)
        return INT64_MAX;
    if (seconds < INT64_MIN / 1000 + 3)
        return 0;
    ms = seconds * 1000 + nanos_ms;
    return ms < 0 ? 0 : ms;
}

static void apply_retry_info(struct cws_grpc_status *st, const Google__Protobuf__Any *any)
{
    Google__Rpc__RetryInfo *info;

    if (st->retry_delay_ms >= 0)
        return;
    info = google__rpc__retry_info__unpack(NULL, any->value.len, any->value.data);
    if (!info)
        return;
    if (info->retry_delay)
        st->retry_delay_ms = duration_to_ms(info->retry_delay->seconds, info->retry_delay->nanos);
    google__rpc__retry_info__free_unpacked(info, NULL);
}

static const char *violation_description(const Google__Rpc__BadRequest__FieldViolation *v)
{
    if (v->description && *v->description)
        return v->description;
    if (v->localized_message && v->localized_message->message && *v->localized_message->message)
        return v->localized_message->message;
    return v->reason;
}

static int take_violations(struct cws_grpc_status *st, const Google__Rpc__BadRequest *req)
{
    size_t n = st->n_violations + req->n_field_violations;
    struct cws_grpc_field_violation *grown;

    if (req->n_field_violations == 0)
        return 0;
    if (n < st->n_violations || n > SIZE_MAX / sizeof(*grown))
        return -CWS_E_NOMEM;
    grown = realloc(st->violations, n * sizeof(*grown));
    if (!grown)
        return -CWS_E_NOMEM;
    st->violations = grown;
    for (size_t i = 0; i < req->n_field_violations; i++) {
        const Google__Rpc__BadRequest__FieldViolation *v = req->field_violations[i];
        struct cws_grpc_field_violation *out = &st->violations[st->n_violations];

        out->field = dup_str(v->field);
        out->description = dup_str(violation_description(v));
        st->n_violations++;
        if (!out->field || !out->description)
            return -CWS_E_NOMEM;
    }
    return 0;
}

static int apply_bad_request(struct cws_grpc_status *st, const Google__Protobuf__Any *any)
{
    Google__Rpc__BadRequest *req;
    int r;

    req = google__rpc__bad_request__unpack(NULL, any->value.len, any->value.data);
    if (!req)
        return 0;
    r = take_violations(st, req);
    google__rpc__bad_request__free_unpacked(req, NULL);
    return r;
}

static int apply_details(struct cws_grpc_status *st, const Google__Rpc__Status *status)
{
    for (size_t i = 0; i < status->n_details; i++) {
        const Google__Protobuf__Any *any = status->details[i];
        int r = 0;

        if (any_is(any, "google.rpc.ErrorInfo"))
            r = apply_error_info(st, any);
        else if (any_is(any, "google.rpc.RetryInfo"))
            apply_retry_info(st, any);
        else if (any_is(any, "google.rpc.BadRequest"))
            r = apply_bad_request(st, any);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Details and, when grpc-message is absent, the message they carry. */
static int parse_details(struct cws_grpc_status *st, const char *details_bin, bool want_message)
{
    Google__Rpc__Status *status;
    int r;

    r = details_unpack(details_bin, &status);
    if (r < 0 || !status)
        return r;
    r = apply_details(st, status);
    if (r == 0 && want_message) {
        st->message = dup_str(status->message);
        if (!st->message)
            r = -CWS_E_NOMEM;
    }
    google__rpc__status__free_unpacked(status, NULL);
    return r;
}

int cws_grpc_status_parse(const char *grpc_status, const char *grpc_message,
                          const char *details_bin, struct cws_grpc_status *ret,
                          struct cws_error *err)
{
    struct cws_grpc_status st = CWS_GRPC_STATUS_INIT;
    int r;

    if (!ret)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "no status to fill");
    if (!grpc_status)
        return cws_error_set(err, CWS_E_PROTOCOL, "missing grpc-status header");
    if (parse_code(grpc_status, &st.code) < 0)
        return cws_error_set(err, CWS_E_PROTOCOL, "invalid grpc-status header: '%.64s'",
                             grpc_status);

    if (grpc_message) {
        r = percent_decode(grpc_message, &st.message);
        if (r < 0)
            goto fail;
    }
    if (details_bin) {
        r = parse_details(&st, details_bin, !grpc_message);
        if (r < 0)
            goto fail;
    }
    if (!st.message) {
        st.message = strdup("");
        if (!st.message) {
            r = -CWS_E_NOMEM;
            goto fail;
        }
    }
    *ret = st;
    return 0;

fail:
    cws_grpc_status_clear(&st);
    return cws_error_set(err, (enum cws_errcode)(-r), NULL);
}

const char *cws_grpc_status_metadata_get(const struct cws_grpc_status *st, const char *key)
{
    if (!st || !key)
        return NULL;
    for (size_t i = st->n_metadata; i > 0; i--) {
        if (strcmp(st->metadata[i - 1].key, key) == 0)
            return st->metadata[i - 1].value;
    }
    return NULL;
}

int cws_grpc_status_to_error(const struct cws_grpc_status *st, struct cws_error *ret)
{
    enum cws_errcode code;
    int r;

    if (!st)
        return cws_error_set(ret, CWS_E_INVALID_ARGUMENT, "no gRPC status");
    code = cws_errcode_from_grpc(st->code);
    if (st->message && *st->message)
        r = cws_error_set(ret, code, "%s", st->message);
    else
        r = cws_error_set(ret, code, NULL);
    if (ret) {
        cws_error_set_reason(ret, st->reason);
        ret->retry_after_ms = st->retry_delay_ms;
        /* A server that names a delay is saying the call may be retried after it. */
        if (code != CWS_E_OK && st->retry_delay_ms >= 0)
            ret->retryable = true;
    }
    return r;
}

static bool message_byte_plain(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e && c != '%';
}

int cws_grpc_message_encode(const char *msg, char **ret_encoded)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = 0, escaped = 0, o = 0;
    char *out;

    if (!msg || !ret_encoded)
        return -CWS_E_INVALID_ARGUMENT;
    for (; msg[len]; len++)
        escaped += !message_byte_plain((unsigned char)msg[len]);
    if (escaped > (SIZE_MAX - 1 - len) / 2)
        return -CWS_E_NOMEM;
    out = malloc(len + 2 * escaped + 1);
    if (!out)
        return -CWS_E_NOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];

        if (message_byte_plain(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    *ret_encoded = out;
    return 0;
}

/* Serialise a message into a new buffer (never NULL, even when empty); caller frees. */
static int pack_message(const ProtobufCMessage *m, uint8_t **ret_buf, size_t *ret_len)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);

    if (!buf)
        return -CWS_E_NOMEM;
    *ret_len = protobuf_c_message_pack(m, buf);
    *ret_buf = buf;
    return 0;
}

/* Unpadded, as the gRPC spec asks senders of "-bin" values; caller frees. */
static int base64_unpadded(const uint8_t *data, size_t len, char **ret)
{
    size_t size = cws_base64_encoded_len(len), n;
    char *text;

    if (size == SIZE_MAX)
        return -CWS_E_NOMEM;
    text = malloc(size + 1);
    if (!text)
        return -CWS_E_NOMEM;
    if (cws_base64_encode(data, len, text, size + 1, &n) < 0) {
        free(text);
        return -CWS_E_NOMEM;
    }
    while (n > 0 && text[n - 1] == '=')
        text[--n] = '\0';
    *ret = text;
    return 0;
}

/* Number of pairs in a NULL-terminated "key, value, ..." list, or -1 when a key has no value. */
static int64_t metadata_pairs(const char *const *kv)
{
    int64_t n = 0;

    for (; kv && kv[0]; kv += 2, n++) {
        if (!kv[1])
            return -1;
    }
    return n;
}

static int pack_error_info(const char *reason, const char *domain, const char *const *kv,
                           size_t n_pairs, Google__Protobuf__Any *any)
{
    Google__Rpc__ErrorInfo info = GOOGLE__RPC__ERROR_INFO__INIT;
    Google__Rpc__ErrorInfo__MetadataEntry *entries = NULL, **ptrs = NULL;
    int r = -CWS_E_NOMEM;

    if (n_pairs > 0) {
        entries = calloc(n_pairs, sizeof(*entries));
        ptrs = calloc(n_pairs, sizeof(*ptrs));
        if (!entries || !ptrs)
            goto out;
    }
    for (size_t i = 0; i < n_pairs; i++) {
        google__rpc__error_info__metadata_entry__init(&entries[i]);
        entries[i].key = (char *)kv[2 * i];
        entries[i].value = (char *)kv[2 * i + 1];
        ptrs[i] = &entries[i];
    }
    info.reason = (char *)reason;
    info.domain = (char *)(domain ? domain : CWS_GRPC_ERROR_DOMAIN);
    info.n_metadata = n_pairs;
    info.metadata = ptrs;
    any->type_url = CWS_GRPC_ERROR_INFO_TYPE_URL;
    r = pack_message(&info.base, &any->value.data, &any->value.len);
out:
    free(entries);
    free(ptrs);
    return r;
}

static int pack_retry_info(int64_t delay_ms, Google__Protobuf__Any *any)
{
    Google__Rpc__RetryInfo info = GOOGLE__RPC__RETRY_INFO__INIT;
    Google__Protobuf__Duration delay = GOOGLE__PROTOBUF__DURATION__INIT;

    delay.seconds = delay_ms / 1000;
    delay.nanos = (int32_t)(delay_ms % 1000 * 1000000);
    info.retry_delay = &delay;
    any->type_url = CWS_GRPC_RETRY_INFO_TYPE_URL;
    return pack_message(&info.base, &any->value.data, &any->value.len);
}

static int pack_bad_request(const char *const *fd, size_t n_pairs, Google__Protobuf__Any *any)
{
    Google__Rpc__BadRequest req = GOOGLE__RPC__BAD_REQUEST__INIT;
    Google__Rpc__BadRequest__FieldViolation *items, **ptrs;
    int r = -CWS_E_NOMEM;

    items = calloc(n_pairs, sizeof(*items));
    ptrs = calloc(n_pairs, sizeof(*ptrs));
    if (!items || !ptrs)
        goto out;
    for (size_t i = 0; i < n_pairs; i++) {
        google__rpc__bad_request__field_violation__init(&items[i]);
        items[i].field = (char *)fd[2 * i];
        items[i].description = (char *)fd[2 * i + 1];
        ptrs[i] = &items[i];
    }
    req.n_field_violations = n_pairs;
    req.field_violations = ptrs;
    any->type_url = CWS_GRPC_BAD_REQUEST_TYPE_URL;
    r = pack_message(&req.base, &any->value.data, &any->value.len);
out:
    free(items);
    free(ptrs);
    return r;
}

int cws_grpc_status_details_encode(int code, const char *message, const char *reason,
                                   const char *domain, const char *const *metadata_kv,
                                   int64_t retry_delay_ms, char **ret_base64)
{
    return cws_grpc_status_details_encode_with_violations(
        code, message, reason, domain, metadata_kv, retry_delay_ms, NULL, ret_base64);
}

int cws_grpc_status_details_encode_with_violations(int code, const char *message,
                                                   const char *reason, const char *domain,
                                                   const char *const *metadata_kv,
                                                   int64_t retry_delay_ms,
                                                   const char *const *violations_fd,
                                                   char **ret_base64)
{
    Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
    Google__Protobuf__Any anys[3] = {GOOGLE__PROTOBUF__ANY__INIT, GOOGLE__PROTOBUF__ANY__INIT,
                                     GOOGLE__PROTOBUF__ANY__INIT};
    Google__Protobuf__Any *details[3];
    int64_t n_pairs = metadata_pairs(metadata_kv);
    int64_t n_violations = metadata_pairs(violations_fd);
    uint8_t *buf = NULL;
    size_t len;
    int r = 0;

    if (code < 0 || code > GRPC_CODE_MAX || n_pairs < 0 || n_violations < 0 ||
        retry_delay_ms < -1 || !ret_base64)
        return -CWS_E_INVALID_ARGUMENT;

    if (reason && *reason) {
        r = pack_error_info(reason, domain, metadata_kv, (size_t)n_pairs, &anys[status.n_details]);
        if (r < 0)
            goto out;
        details[status.n_details] = &anys[status.n_details];
        status.n_details++;
    }
    if (retry_delay_ms >= 0) {
        r = pack_retry_info(retry_delay_ms, &anys[status.n_details]);
        if (r < 0)
            goto out;
        details[status.n_details] = &anys[status.n_details];
        status.n_details++;
    }
    if (n_violations > 0) {
        r = pack_bad_request(violations_fd, (size_t)n_violations, &anys[status.n_details]);
        if (r < 0)
            goto out;
        details[status.n_details] = &anys[status.n_details];
        status.n_details++;
    }
    status.code = code;
    status.message = (char *)(message ? message : "");
    status.details = details;
    r = pack_message(&status.base, &buf, &len);
    if (r < 0)
        goto out;
    r = base64_unpadded(buf, len, ret_base64);
out:
    free(buf);
    for (size_t i = 0; i < 3; i++)
        free(anys[i].value.data);
    return r;
}
