/* cwsandboxd's configuration: the INI file (parsed by inih), then the environment; flags are
 * applied by main.c on top. Only documented keys are accepted; others are warned about. */
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon.h"
#include "log.h"

#define DEFAULT_BASE_URL       "https://api.cwsandbox.com"
#define DEFAULT_ORPHAN_GRACE_S 5

static const char *const backend_names[] = {"auto", "remote", "local"};

const char *cwsd_backend_name(enum cwsd_backend_kind kind)
{
    return (unsigned)kind < 3 ? backend_names[kind] : "auto";
}

int cwsd_backend_parse(const char *s, enum cwsd_backend_kind *ret, struct cws_error *err)
{
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, backend_names[i]) == 0) {
            *ret = (enum cwsd_backend_kind)i;
            return 0;
        }
    }
    return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                         "backend must be auto, remote or local, not '%s'", s);
}

static int replace(char **dst, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return -CWS_E_NOMEM;
    free(*dst);
    *dst = copy;
    return 0;
}

static int parse_bool(const char *v, bool *ret)
{
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1") || !strcasecmp(v, "on"))
        *ret = true;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0") ||
             !strcasecmp(v, "off"))
        *ret = false;
    else
        return -1;
    return 0;
}

struct ini_state {
    struct cwsd_config *cfg;
    const char *path;
    struct cws_error *err;
    bool failed;
};

static void bad_value(struct ini_state *st, const char *key, const char *value,
                      const char *expected)
{
    if (!st->failed)
        cws_error_set(st->err, CWS_E_INVALID_ARGUMENT, "%s: %s = '%s': expected %s", st->path, key,
                      value, expected);
    st->failed = true;
}

/* One "key = value" of the [daemon] section (or of no section). 1 when the key is known. */
static int apply_key(struct ini_state *st, const char *key, const char *value)
{
    struct cwsd_config *cfg = st->cfg;
    if (!strcmp(key, "backend")) {
        if (cwsd_backend_parse(value, &cfg->backend, NULL) < 0)
            bad_value(st, key, value, "auto, remote or local");
    } else if (!strcmp(key, "base_url")) {
        replace(&cfg->base_url, value);
        cfg->base_url_explicit = true;
    } else if (!strcmp(key, "api_key")) {
        replace(&cfg->api_key, value);
    } else if (!strcmp(key, "socket")) {
        replace(&cfg->socket_path, value);
    } else if (!strcmp(key, "local_path")) {
        replace(&cfg->local_path, value);
    } else if (!strcmp(key, "log_level")) {
        replace(&cfg->log_level, value);
    } else if (!strcmp(key, "orphan_grace_s")) {
        char *end;
        long long v = strtoll(value, &end, 10);
        if (*end || end == value || v < 0)
            bad_value(st, key, value, "a number of seconds");
        else
            cfg->orphan_grace_s = v;
    } else if (!strcmp(key, "session_idle_ttl_s")) {
        char *end;
        double v = strtod(value, &end);
        if (*end || end == value || !(v >= 0) || v > 1e9)
            bad_value(st, key, value, "a number of seconds");
        else
            cfg->session_idle_ttl_s = v;
    } else if (!strcmp(key, "state_dir")) {
        replace(&cfg->state_dir, value);
    } else if (!strcmp(key, "cleanup_on_logout")) {
        if (parse_bool(value, &cfg->cleanup_on_logout) < 0)
            bad_value(st, key, value, "true or false");
    } else {
        return 0;
    }
    return 1;
}

/* Debian's inih is built without line numbers in the handler: messages name the key. */
static int on_ini_entry(void *ud, const char *section, const char *key, const char *value)
{
    struct ini_state *st = ud;
    if (section[0] && strcmp(section, "daemon") != 0) {
        cws_log(CWS_LOG_WARN, "%s: unknown section [%s] ignored", st->path, section);
        return 1;
    }
    if (!apply_key(st, key, value))
        cws_log(CWS_LOG_WARN, "%s: unknown key '%s' ignored", st->path, key);
    return 1;
}

static void apply_environment(struct cwsd_config *cfg)
{
    const char *v = getenv("CWSANDBOX_BASE_URL");
    if (v && v[0]) {
        replace(&cfg->base_url, v);
        cfg->base_url_explicit = true;
    }
    v = getenv("CWSANDBOX_BACKEND");
    if (v && v[0] && cwsd_backend_parse(v, &cfg->backend, NULL) < 0)
        cws_log(CWS_LOG_WARN, "CWSANDBOX_BACKEND='%s' is not auto, remote or local; ignored", v);
    v = getenv("CWSANDBOX_LOCAL_PATH");
    if (v && v[0])
        replace(&cfg->local_path, v);
}

int cwsd_config_load(const char *path, struct cwsd_config *cfg, struct cws_error *err)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->orphan_grace_s = DEFAULT_ORPHAN_GRACE_S;
    cfg->cleanup_on_logout = true;
    if (replace(&cfg->base_url, DEFAULT_BASE_URL) < 0 ||
        (path && replace(&cfg->config_path, path) < 0))
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    if (path) {
        FILE *f = fopen(path, "re");
        if (f) {
            struct ini_state st = {cfg, path, err, false};
            int line = ini_parse_file(f, on_ini_entry, &st);
            fclose(f);
            if (st.failed)
                return -(int)err->code;
            if (line > 0)
                return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "%s:%d: syntax error", path,
                                     line);
        }
    }
    apply_environment(cfg);
    return 0;
}

void cwsd_config_clear(struct cwsd_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->socket_path);
    free(cfg->config_path);
    free(cfg->base_url);
    free(cfg->local_path);
    free(cfg->api_key);
    free(cfg->log_level);
    free(cfg->state_dir);
    memset(cfg, 0, sizeof(*cfg));
}
