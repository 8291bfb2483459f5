/* How a sandbox is shown: the `ls` table, the `get` key/value rows, and JSON whose first keys
 * are the official CLI's (sandbox_id, status, runner_id, runner_group_id, started_at,
 * returncode), followed by what this daemon knows besides. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const enum cws_sandbox_state all_states[] = {
    CWS_STATE_CREATING,    CWS_STATE_PENDING,   CWS_STATE_RUNNING, CWS_STATE_PAUSED,
    CWS_STATE_TERMINATING, CWS_STATE_COMPLETED, CWS_STATE_FAILED,  CWS_STATE_TERMINATED,
};

int cli_state_from_name(const char *name, enum cws_sandbox_state *ret)
{
    for (size_t i = 0; i < sizeof(all_states) / sizeof(all_states[0]); i++) {
        if (strcasecmp(name, cws_sandbox_state_name(all_states[i])) == 0) {
            *ret = all_states[i];
            return 0;
        }
    }
    return -CWS_E_INVALID_ARGUMENT;
}

void cli_sandbox_json(struct cli_json *j, const struct cws_sandbox_info *sb)
{
    cli_json_begin_object(j);
    cli_json_key(j, "sandbox_id");
    cli_json_string(j, sb->id);
    cli_json_key(j, "status");
    cli_json_string(j, cws_sandbox_state_name(sb->state));
    cli_json_key(j, "runner_id");
    cli_json_string_or_null(j, sb->runner_id);
    cli_json_key(j, "runner_group_id");
    cli_json_null(j); /* the daemon's SandboxInfo has none */
    cli_json_key(j, "started_at");
    cli_json_time(j, sb->started_ms);
    cli_json_key(j, "returncode");
    if (sb->has_exit_code)
        cli_json_int(j, sb->exit_code);
    else
        cli_json_null(j);
    cli_json_key(j, "status_reason");
    cli_json_string_or_null(j, sb->state_reason);
    cli_json_key(j, "created_at");
    cli_json_time(j, sb->created_ms);
    cli_json_key(j, "ended_at");
    cli_json_time(j, sb->ended_ms);
    cli_json_key(j, "tags");
    cli_json_begin_array(j);
    for (size_t i = 0; i < sb->n_tags; i++)
        cli_json_string(j, sb->tags[i]);
    cli_json_end_array(j);
    cli_json_key(j, "services");
    cli_json_begin_array(j);
    for (size_t i = 0; i < sb->n_services; i++) {
        cli_json_begin_object(j);
        cli_json_key(j, "port");
        cli_json_int(j, sb->services[i].port);
        cli_json_key(j, "name");
        cli_json_string_or_null(j, sb->services[i].name);
        cli_json_key(j, "url");
        cli_json_string_or_null(j, sb->services[i].url);
        cli_json_end_object(j);
    }
    cli_json_end_array(j);
    cli_json_key(j, "session");
    cli_json_string_or_null(j, sb->session);
    cli_json_key(j, "owner");
    cli_json_string_or_null(j, sb->owner);
    cli_json_end_object(j);
}

int cli_sandboxes_table(const struct cws_sandbox_info *sbs, size_t n, FILE *out)
{
    static const char *const headers[] = {"SANDBOX ID", "STATUS", "RUNNER", "STARTED AT"};
    static const size_t widths[] = {40, 14, 20, 0};
    struct cli_table t;
    int r = 0;
    if (n == 0) {
        fputs("No sandboxes found.\n", out);
        return 0;
    }
    cli_table_init(&t, 4, headers, widths);
    for (size_t i = 0; r == 0 && i < n; i++) {
        char started[32];
        const char *row[] = {sbs[i].id, cws_sandbox_state_name(sbs[i].state), sbs[i].runner_id,
                             cli_format_time(sbs[i].started_ms, started, sizeof(started))};
        r = cli_table_add(&t, row);
    }
    if (r == 0)
        cli_table_print(&t, out);
    cli_table_free(&t);
    return r;
}

/* "a, b, c" of the tags into a new string; the caller frees it. NULL when out of memory. */
static char *join_tags(const struct cws_sandbox_info *sb)
{
    size_t len = 1;
    for (size_t i = 0; i < sb->n_tags; i++)
        len += strlen(sb->tags[i]) + 2;
    char *s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < sb->n_tags; i++) {
        if (i)
            strcat(s, ", ");
        strcat(s, sb->tags[i]);
    }
    return s;
}

#define KEY_WIDTH 15

void cli_sandbox_details(const struct cws_sandbox_info *sb, FILE *out)
{
    char started[32], created[32], ended[32], code[16];
    snprintf(code, sizeof(code), "%d", sb->exit_code);
    cli_kv(out, KEY_WIDTH, "SANDBOX ID", sb->id);
    cli_kv(out, KEY_WIDTH, "STATUS", cws_sandbox_state_name(sb->state));
    cli_kv(out, KEY_WIDTH, "RUNNER ID", sb->runner_id);
    cli_kv(out, KEY_WIDTH, "RUNNER GROUP ID", NULL);
    cli_kv(out, KEY_WIDTH, "STARTED AT", cli_format_time(sb->started_ms, started, 32));
    cli_kv(out, KEY_WIDTH, "RETURNCODE", sb->has_exit_code ? code : NULL);
    cli_kv(out, KEY_WIDTH, "STATUS REASON", sb->state_reason);
    cli_kv(out, KEY_WIDTH, "CREATED AT", cli_format_time(sb->created_ms, created, 32));
    cli_kv(out, KEY_WIDTH, "ENDED AT", cli_format_time(sb->ended_ms, ended, 32));
    char *tags = join_tags(sb);
    cli_kv(out, KEY_WIDTH, "TAGS", tags);
    free(tags);
    cli_kv(out, KEY_WIDTH, "SESSION", sb->session);
    cli_kv(out, KEY_WIDTH, "OWNER", sb->owner);
    for (size_t i = 0; i < sb->n_services; i++) {
        char line[512];
        const struct cws_service_url *s = &sb->services[i];
        snprintf(line, sizeof(line), "%d%s%s%s %s", s->port, *s->name ? " (" : "", s->name,
                 *s->name ? ")" : "", *s->url ? s->url : "-");
        cli_kv(out, KEY_WIDTH, i == 0 ? "SERVICES" : "", line);
    }
}
