/* Backend credentials, resolved in the order of DESIGN §4: CWSANDBOX_API_KEY; a W&B key
 * (WANDB_API_KEY, else machine api.wandb.ai in ~/.netrc) with WANDB_ENTITY_NAME; the config
 * file's api_key; none. Secrets live only in the headers vector and are never logged. */
#include <ctype.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

#define WANDB_MACHINE      "api.wandb.ai"
#define DEFAULT_WB_PROJECT "uncategorized"
#define NETRC_MAX          (256 * 1024)

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

/* headers = {k0, v0, k1, v1, ..., NULL}, all copied. */
static int set_headers(struct cwsd_credentials *c, const char *const *kv)
{
    size_t n = 0;
    while (kv[n])
        n++;
    c->headers = calloc(n + 1, sizeof(*c->headers));
    if (!c->headers)
        return -CWS_E_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(c->headers[i] = strdup(kv[i])))
            return -CWS_E_NOMEM;
    return 0;
}

static int bearer(struct cwsd_credentials *c, const char *key, const char *source)
{
    char *value = NULL;
    if (asprintf(&value, "Bearer %s", key) < 0)
        return -CWS_E_NOMEM;
    const char *kv[] = {"authorization", value, NULL};
    int r = set_headers(c, kv);
    explicit_bzero(value, strlen(value));
    free(value);
    c->strategy = "api_key";
    c->source = source;
    return r;
}

static char *home_file(const char *name)
{
    const char *home = env_nonempty("HOME");
    if (!home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    char *p = NULL;
    if (!home || asprintf(&p, "%s/%s", home, name) < 0)
        return NULL;
    return p;
}

/* The next whitespace-separated token of a netrc text, NUL-terminated in place. */
static char *next_token(char **cursor)
{
    char *p = *cursor;
    while (*p && isspace((unsigned char)*p))
        p++;
    if (!*p)
        return NULL;
    char *start = p;
    while (*p && !isspace((unsigned char)*p))
        p++;
    if (*p)
        *p++ = '\0';
    *cursor = p;
    return start;
}

/* The password of `machine WANDB_MACHINE` in ~/.netrc, copied; NULL when there is none. */
static char *netrc_wandb_key(void)
{
    char *path = home_file(".netrc");
    FILE *f = path ? fopen(path, "re") : NULL;
    free(path);
    if (!f)
        return NULL;
    char *text = calloc(1, NETRC_MAX + 1);
    size_t n = text ? fread(text, 1, NETRC_MAX, f) : 0;
    fclose(f);
    if (!text)
        return NULL;
    text[n] = '\0';
    char *cursor = text, *tok, *key = NULL;
    bool in_wandb = false;
    while ((tok = next_token(&cursor))) {
        if (!strcmp(tok, "machine") || !strcmp(tok, "default")) {
            char *m = strcmp(tok, "default") ? next_token(&cursor) : NULL;
            in_wandb = m && !strcmp(m, WANDB_MACHINE);
        } else if (in_wandb && !strcmp(tok, "password")) {
            char *pw = next_token(&cursor);
            if (pw && !key)
                key = strdup(pw);
        }
    }
    explicit_bzero(text, n);
    free(text);
    return key;
}

static int wandb(struct cwsd_credentials *c, const char *key, const char *source,
                 struct cws_error *err)
{
    const char *entity = env_nonempty("WANDB_ENTITY_NAME");
    if (!entity)
        return cws_error_set(err, CWS_E_UNAUTHENTICATED,
                             "a W&B API key was found in %s but WANDB_ENTITY_NAME is not set: "
                             "set it to your W&B entity",
                             source);
    const char *project = env_nonempty("WANDB_PROJECT_NAME");
    const char *kv[] = {"x-api-key",
                        key,
                        "x-entity-id",
                        entity,
                        "x-project-name",
                        project ? project : DEFAULT_WB_PROJECT,
                        NULL};
    c->strategy = "wandb";
    c->source = source;
    return set_headers(c, kv);
}

int cwsd_credentials_resolve(const struct cwsd_config *cfg, struct cwsd_credentials *ret,
                             struct cws_error *err)
{
    struct cwsd_credentials c = {.strategy = "none", .source = "none"};
    int r = 0;
    const char *key = env_nonempty("CWSANDBOX_API_KEY");
    char *netrc_key = NULL;

    if (key) {
        r = bearer(&c, key, "CWSANDBOX_API_KEY");
    } else if ((key = env_nonempty("WANDB_API_KEY"))) {
        r = wandb(&c, key, "WANDB_API_KEY", err);
    } else if ((netrc_key = netrc_wandb_key())) {
        r = wandb(&c, netrc_key, "~/.netrc", err);
        explicit_bzero(netrc_key, strlen(netrc_key));
        free(netrc_key);
    } else if (cfg->api_key && cfg->api_key[0]) {
        r = bearer(&c, cfg->api_key, "config");
    }
    if (r == -CWS_E_NOMEM)
        cws_error_set(err, CWS_E_NOMEM, NULL);
    if (r < 0) {
        cwsd_credentials_clear(&c);
        return r;
    }
    *ret = c;
    return 0;
}

bool cwsd_credentials_present(const struct cwsd_credentials *c)
{
    return c->headers != NULL;
}

void cwsd_credentials_clear(struct cwsd_credentials *c)
{
    if (!c)
        return;
    if (c->headers) {
        for (char **h = c->headers; *h; h++) {
            explicit_bzero(*h, strlen(*h));
            free(*h);
        }
        free(c->headers);
    }
    c->headers = NULL;
    c->strategy = "none";
    c->source = "none";
}
