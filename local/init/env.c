/* The environment of the processes a sandbox runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "init.h"
#include "rpc_params.h"

struct envv {
    char **v;
    size_t n, cap;
};

static size_t key_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Add or replace KEY=VALUE; entries without '=' are ignored. */
static int env_put(struct envv *e, const char *kv)
{
    size_t kl = key_len(kv);
    if (kv[kl] != '=' || kl == 0)
        return 0;
    char *copy = strdup(kv);
    if (!copy)
        return -1;
    for (size_t i = 0; i < e->n; i++) {
        if (key_len(e->v[i]) == kl && strncmp(e->v[i], kv, kl) == 0) {
            free(e->v[i]);
            e->v[i] = copy;
            return 0;
        }
    }
    if (e->n + 2 > e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        char **nv = realloc(e->v, cap * sizeof(*nv));
        if (!nv) {
            free(copy);
            return -1;
        }
        e->v = nv;
        e->cap = cap;
    }
    e->v[e->n++] = copy;
    e->v[e->n] = NULL;
    return 0;
}

static int env_put_all(struct envv *e, char *const *list)
{
    for (; list && *list; list++)
        if (env_put(e, *list) < 0)
            return -1;
    return 0;
}

char **cws_env_build(const char *hostname, char *const *base, char *const *extra, bool tty)
{
    struct envv e = {0};
    char host[320];
    snprintf(host, sizeof(host), "HOSTNAME=%s", hostname);
    if (env_put(&e, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") < 0 ||
        env_put(&e, "HOME=/root") < 0 || env_put(&e, host) < 0 ||
        (tty && env_put(&e, "TERM=xterm") < 0) || env_put_all(&e, base) < 0 ||
        env_put_all(&e, extra) < 0) {
        cws_strv_free(e.v);
        return NULL;
    }
    return e.v;
}
