/* Request metadata the daemon configures (credentials, entity, project) and the header lists
 * received on a stream. Metadata values may be credentials: nothing here ever puts a value
 * into an error message or a log line. */
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_client_private.h"

/* Headers the client writes itself, or that HTTP/2 forbids. */
static const char *const reserved_names[] = {
    "content-type",
    "te",
    "grpc-timeout",
    "user-agent",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-status",
    "grpc-message",
};

/* Substrings of names whose values are treated as credentials. */
static const char *const secret_words[] = {
    "auth", "key", "token", "secret", "password", "cookie", "credential",
};

bool gc_header_is_secret(const char *name)
{
    for (size_t i = 0; i < sizeof(secret_words) / sizeof(secret_words[0]); i++) {
        if (strstr(name, secret_words[i]))
            return true;
    }
    return false;
}

static bool name_is_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof(reserved_names) / sizeof(reserved_names[0]); i++) {
        if (strcmp(name, reserved_names[i]) == 0)
            return true;
    }
    return false;
}

static bool name_is_lower_case(const char *name)
{
    for (const char *p = name; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            return false;
    }
    return true;
}

static int check_header(const struct cws_gc_header *h, struct cws_error *err)
{
    if (!h->name || !h->value || h->name[0] == '\0')
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "metadata entry without name or value");
    if (h->name[0] == ':' || !name_is_lower_case(h->name) ||
        !nghttp2_check_header_name((const uint8_t *)h->name, strlen(h->name)))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "metadata name \"%.64s\" is not a valid lower-case header name",
                             h->name);
    if (name_is_reserved(h->name))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "metadata name \"%.64s\" is set by the gRPC client itself", h->name);
    if (!nghttp2_check_header_value((const uint8_t *)h->value, strlen(h->value)))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "the value of metadata \"%.64s\" holds a forbidden character",
                             h->name);
    return 0;
}

void gc_metadata_clear(struct gc_metadata *md)
{
    if (!md)
        return;
    for (size_t i = 0; i < md->n; i++) {
        free((char *)md->v[i].name);
        free((char *)md->v[i].value);
    }
    free(md->v);
    md->v = NULL;
    md->n = 0;
}

int gc_metadata_copy(const struct cws_gc_header *src, size_t n, struct gc_metadata *ret,
                     struct cws_error *err)
{
    struct gc_metadata md = {0};

    if (n == 0) {
        *ret = md;
        return 0;
    }
    if (!src)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "metadata count without entries");
    for (size_t i = 0; i < n; i++) {
        int r = check_header(&src[i], err);
        if (r < 0)
            return r;
    }
    md.v = calloc(n, sizeof(*md.v));
    if (!md.v)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory copying metadata");
    for (; md.n < n; md.n++) {
        md.v[md.n].name = strdup(src[md.n].name);
        md.v[md.n].value = strdup(src[md.n].value);
        if (!md.v[md.n].name || !md.v[md.n].value) {
            md.n++; /* free this entry's half too */
            gc_metadata_clear(&md);
            return cws_error_set(err, CWS_E_NOMEM, "out of memory copying metadata");
        }
    }
    *ret = md;
    return 0;
}

static char *copy_text(const uint8_t *p, size_t len)
{
    char *s = malloc(len + 1);

    if (!s)
        return NULL;
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static int header_list_grow(struct gc_header_list *l)
{
    size_t cap = l->cap ? l->cap * 2 : 8;
    struct cws_gc_header *v = realloc(l->v, cap * sizeof(*v));

    if (!v)
        return -CWS_E_NOMEM;
    l->v = v;
    l->cap = cap;
    return 0;
}

int gc_header_list_add(struct gc_header_list *l, const uint8_t *name, size_t name_len,
                       const uint8_t *value, size_t value_len)
{
    char *n, *v;

    /* 32 bytes per entry as HPACK counts them, so that many empty headers count too. */
    if (l->bytes + name_len + value_len + 32 > GC_MAX_HEADER_BYTES)
        return -CWS_E_RESOURCE_EXHAUSTED;
    if (l->n == l->cap && header_list_grow(l) < 0)
        return -CWS_E_NOMEM;
    n = copy_text(name, name_len);
    v = copy_text(value, value_len);
    if (!n || !v) {
        free(n);
        free(v);
        return -CWS_E_NOMEM;
    }
    l->v[l->n].name = n;
    l->v[l->n].value = v;
    l->n++;
    l->bytes += name_len + value_len + 32;
    return 0;
}

const char *gc_header_list_get(const struct gc_header_list *l, const char *name)
{
    for (size_t i = l->n; i > 0; i--) {
        if (strcmp(l->v[i - 1].name, name) == 0)
            return l->v[i - 1].value;
    }
    return NULL;
}

void gc_header_list_clear(struct gc_header_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free((char *)l->v[i].name);
        free((char *)l->v[i].value);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}
