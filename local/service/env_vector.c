/* "KEY=VALUE" vectors from the protobuf map fields that carry environments (Container,
 * ExecRequest and ExecStreamInit): their entry messages all are {key, value}. */
#include <stdio.h>
#include <stdlib.h>

#include "service.h"

struct kv_entry {
    ProtobufCMessage base;
    char *key;
    char *value;
};

int svc_env_vector(void *const *entries, size_t n, char ***ret)
{
    char **v = calloc(n + 1, sizeof(*v));
    if (!v)
        return -CWS_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct kv_entry *e = entries[i];
        if (asprintf(&v[i], "%s=%s", e->key, e->value) < 0) {
            v[i] = NULL;
            svc_env_vector_free(v);
            return -CWS_E_NOMEM;
        }
    }
    *ret = v;
    return 0;
}

void svc_env_vector_free(char **v)
{
    if (!v)
        return;
    for (char **e = v; *e; e++)
        free(*e);
    free(v);
}
