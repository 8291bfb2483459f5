/* The backend URL: https://host[:port], http://host[:port] or unix:/path (also unix:///path,
 * the gRPC spelling). Like the Python SDK, a URL with a path, query or credentials is refused
 * rather than silently ignored. http:// and https:// URLs are parsed by libcurl's URL API
 * (libcurl connects to them, so it loads here); unix: ones without it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "grpc_client_private.h"

#define UNIX_PREFIX "unix:"

void gc_endpoint_clear(struct gc_endpoint *ep)
{
    if (!ep)
        return;
    free(ep->connect_url);
    free(ep->unix_path);
    free(ep->authority);
    free(ep->display);
    memset(ep, 0, sizeof(*ep));
}

static int endpoint_nomem(struct gc_endpoint *ep, struct cws_error *err)
{
    gc_endpoint_clear(ep);
    return cws_error_set(err, CWS_E_NOMEM, "out of memory parsing the backend URL");
}

static int parse_unix(const char *url, struct gc_endpoint *ret, struct cws_error *err)
{
    const char *path = url + strlen(UNIX_PREFIX);
    struct gc_endpoint ep = {.scheme = GC_SCHEME_UNIX};

    if (strncmp(path, "//", 2) == 0)
        path += 2; /* unix:///abs/path */
    if (path[0] != '/')
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "backend URL \"%s\": a unix: URL needs an absolute path", url);
    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "backend URL \"%s\": the socket path is longer than %zu bytes", url,
                             sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    ep.unix_path = strdup(path);
    ep.authority = strdup("localhost");
    if (asprintf(&ep.display, "unix:%s", path) < 0)
        ep.display = NULL;
    if (!ep.unix_path || !ep.authority || !ep.display)
        return endpoint_nomem(&ep, err);
    *ret = ep;
    return 0;
}

/* A URL part that must be absent: returns true when it is present. */
static bool url_has_part(const struct gc_curl_api *cu, CURLU *u, CURLUPart part)
{
    char *v = NULL;
    bool present = cu->url_get(u, part, &v, 0) == CURLUE_OK && v && v[0] != '\0';

    cu->free(v);
    return present;
}

static int check_no_extras(const struct gc_curl_api *cu, CURLU *u, const char *url,
                           struct cws_error *err)
{
    char *path = NULL;
    bool bad_path;

    if (url_has_part(cu, u, CURLUPART_USER) || url_has_part(cu, u, CURLUPART_PASSWORD))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "the backend URL must not carry credentials: configure an API key");
    if (url_has_part(cu, u, CURLUPART_QUERY) || url_has_part(cu, u, CURLUPART_FRAGMENT))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "backend URL \"%s\": a query or fragment is not allowed", url);
    if (cu->url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        path = NULL;
    bad_path = path && strcmp(path, "/") != 0 && path[0] != '\0';
    cu->free(path);
    if (bad_path)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "backend URL \"%s\": a path is not allowed (only scheme, host and "
                             "port)",
                             url);
    return 0;
}

static int build_tcp_endpoint(const struct gc_curl_api *cu, CURLU *u, enum gc_scheme scheme,
                              struct gc_endpoint *ret, struct cws_error *err)
{
    struct gc_endpoint ep = {.scheme = scheme};
    const char *scheme_name = scheme == GC_SCHEME_HTTPS ? "https" : "http";
    char *host = NULL, *port = NULL;
    int r = 0;

    if (cu->url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        cu->url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        r = cws_error_set(err, CWS_E_INVALID_ARGUMENT, "the backend URL has no host");
        goto out;
    }
    if (asprintf(&ep.authority, "%s:%s", host, port) < 0)
        ep.authority = NULL;
    if (asprintf(&ep.connect_url, "%s://%s:%s/", scheme_name, host, port) < 0)
        ep.connect_url = NULL;
    if (asprintf(&ep.display, "%s://%s:%s", scheme_name, host, port) < 0)
        ep.display = NULL;
    if (!ep.authority || !ep.connect_url || !ep.display) {
        r = endpoint_nomem(&ep, err);
        goto out;
    }
    *ret = ep;
out:
    cu->free(host);
    cu->free(port);
    return r;
}

static int parse_tcp(const char *url, struct gc_endpoint *ret, struct cws_error *err)
{
    const struct gc_curl_api *cu = NULL;
    CURLU *u;
    char *scheme = NULL;
    enum gc_scheme kind;
    int r = gc_curl_load(url, &cu, err);

    if (r < 0)
        return r;
    u = cu->url();
    if (!u)
        return cws_error_set(err, CWS_E_NOMEM, "out of memory parsing the backend URL");
    if (cu->url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        cu->url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        r = cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                          "backend URL \"%s\" does not parse: use https://HOST[:PORT], "
                          "http://HOST[:PORT] or unix:/PATH",
                          url);
        goto out;
    }
    if (strcmp(scheme, "https") == 0) {
        kind = GC_SCHEME_HTTPS;
    } else if (strcmp(scheme, "http") == 0) {
        kind = GC_SCHEME_HTTP;
    } else {
        r = cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                          "backend URL \"%s\": unsupported scheme \"%s\" (https, http or unix)",
                          url, scheme);
        goto out;
    }
    r = check_no_extras(cu, u, url, err);
    if (r == 0)
        r = build_tcp_endpoint(cu, u, kind, ret, err);
out:
    cu->free(scheme);
    cu->url_cleanup(u);
    return r;
}

int gc_endpoint_parse(const char *url, struct gc_endpoint *ret, struct cws_error *err)
{
    if (!url || url[0] == '\0')
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "no backend URL given");
    if (strchr(url, '@'))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "the backend URL must not carry credentials: configure an API key");
    if (strncmp(url, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0)
        return parse_unix(url, ret, err);
    if (!strstr(url, "://"))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "backend URL \"%s\" has no scheme: use https://HOST[:PORT], "
                             "http://HOST[:PORT] or unix:/PATH",
                             url);
    return parse_tcp(url, ret, err);
}
