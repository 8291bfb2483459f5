/* mock-cwsandboxd: sandbox.* and session.* over local processes; see mock_daemon.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mock_daemon.h"
#include "rpc_encode.h"
#include "rpc_params.h"

bool mock_state_terminal(const char *state)
{
    return strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "terminated") == 0;
}

static size_t strv_len(char **v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

void mock_pack_sandbox(msgpack_packer *pk, const struct mock_sandbox *s)
{
    size_t n_tags = strv_len(s->tags);
    msgpack_pack_map(pk, 10 + (s->has_exit_code ? 1 : 0) + (s->ended_ms ? 1 : 0));
    cws_rpc_pack_kv_cstr(pk, "id", s->id);
    cws_rpc_pack_kv_cstr(pk, "state", s->state);
    cws_rpc_pack_kv_cstr(pk, "state_reason", "");
    if (s->has_exit_code)
        cws_rpc_pack_kv_int(pk, "exit_code", s->exit_code);
    cws_rpc_pack_kv_int(pk, "created_ms", s->created_ms);
    cws_rpc_pack_kv_int(pk, "started_ms", s->started_ms);
    if (s->ended_ms)
        cws_rpc_pack_kv_int(pk, "ended_ms", s->ended_ms);
    cws_rpc_pack_kv_cstr(pk, "runner_id", "mock-runner");
    cws_rpc_pack_cstr(pk, "services");
    msgpack_pack_array(pk, 0);
    cws_rpc_pack_cstr(pk, "tags");
    msgpack_pack_array(pk, n_tags);
    for (size_t i = 0; i < n_tags; i++)
        cws_rpc_pack_cstr(pk, s->tags[i]);
    cws_rpc_pack_kv_cstr(pk, "session", s->session);
    cws_rpc_pack_kv_cstr(pk, "owner", s->owner);
}

static void reply_sandbox(struct mock_conn *c, uint32_t msgid, const struct mock_sandbox *s)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_result_begin(&sb, &pk, msgid);
    mock_pack_sandbox(&pk, s);
    mock_send(c, &sb);
}

static int find_by_id(struct mock *m, const char *id, size_t len)
{
    for (int i = 0; i < MOCK_MAX_SANDBOXES; i++)
        if (m->sandboxes[i].used && strlen(m->sandboxes[i].id) == len &&
            memcmp(m->sandboxes[i].id, id, len) == 0)
            return i;
    return -1;
}

int mock_find_sandbox(struct mock *m, const msgpack_object *params, struct mock_conn *c,
                      uint32_t msgid)
{
    const char *id = NULL;
    size_t len = 0;
    if (cws_rpc_param_strv(params, "id", &id, &len, NULL) <= 0) {
        mock_reply_error(c, msgid, CWS_E_INVALID_ARGUMENT, NULL, "id is required");
        return -1;
    }
    int i = find_by_id(m, id, len);
    bool missing_ok = false;
    cws_rpc_param_bool(params, "missing_ok", &missing_ok, NULL);
    if (i < 0 && missing_ok)
        mock_reply_nil(c, msgid);
    else if (i < 0)
        mock_reply_error(c, msgid, CWS_E_NOT_FOUND, "CWSANDBOX_SANDBOX_NOT_FOUND",
                         "sandbox %.*s not found", (int)len, id);
    return i;
}

/* The main process: its stdout and stderr are the sandbox's log. */
static void spawn_main(struct mock_sandbox *s, const msgpack_object *config)
{
    char *command = NULL, *dir = NULL;
    char **args = NULL;
    size_t n_args = 0;
    const msgpack_object *env = NULL;
    int pfd[2];
    if (cws_rpc_param_str(config, "command", &command, NULL) <= 0 || pipe2(pfd, O_CLOEXEC) < 0) {
        free(command);
        return;
    }
    cws_rpc_param_strv_array(config, "args", &args, &n_args, NULL);
    cws_rpc_param_str(config, "working_dir", &dir, NULL);
    cws_rpc_param_map(config, "env", &env, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[64] = {command};
        for (size_t i = 0; i < n_args && i < 62; i++)
            argv[i + 1] = args[i];
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        for (uint32_t i = 0; env && i < env->via.map.size; i++) {
            const msgpack_object_kv *kv = &env->via.map.ptr[i];
            char k[256], v[4096];
            snprintf(k, sizeof(k), "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
            snprintf(v, sizeof(v), "%.*s", (int)kv->val.via.str.size, kv->val.via.str.ptr);
            setenv(k, v, 1);
        }
        if (dir && chdir(dir) < 0)
            _exit(126);
        execvp(command, argv);
        _exit(127);
    }
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    s->pid = pid > 0 ? pid : 0;
    s->log_fd = pid > 0 ? pfd[0] : -1;
    if (pid <= 0)
        close(pfd[0]);
    free(command);
    free(dir);
    cws_strv_free(args);
}

static struct mock_session *find_session(struct mock *m, const char *name)
{
    for (int i = 0; i < MOCK_MAX_SESSIONS; i++)
        if (m->sessions[i].used && strcmp(m->sessions[i].name, name) == 0)
            return &m->sessions[i];
    return NULL;
}

/* tags of the config, then the session's default tags */
static char **merged_tags(const msgpack_object *config, const struct mock_session *session)
{
    char **tags = NULL;
    size_t n = 0, extra = session ? strv_len(session->default_tags) : 0;
    cws_rpc_param_strv_array(config, "tags", &tags, &n, NULL);
    char **all = calloc(n + extra + 1, sizeof(*all));
    for (size_t i = 0; i < n; i++)
        all[i] = tags[i];
    for (size_t i = 0; i < extra; i++)
        all[n + i] = strdup(session->default_tags[i]);
    free(tags);
    return all;
}

static void method_create(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    const msgpack_object *config = NULL;
    char session[64] = "", owner[16] = "", request_id[64] = "";
    const char *p = NULL;
    size_t len = 0;
    if (cws_rpc_param_strv(msg->params, "request_id", &p, &len, NULL) > 0)
        snprintf(request_id, sizeof(request_id), "%.*s", (int)len, p);
    for (int i = 0; request_id[0] && i < MOCK_MAX_SANDBOXES; i++) {
        if (m->sandboxes[i].used && strcmp(m->sandboxes[i].request_id, request_id) == 0) {
            reply_sandbox(c, msg->msgid, &m->sandboxes[i]);
            return;
        }
    }
    if (cws_rpc_param_map(msg->params, "config", &config, NULL) < 0) {
        mock_reply_error(c, msg->msgid, CWS_E_INVALID_ARGUMENT, NULL, "config must be a map");
        return;
    }
    if (cws_rpc_param_strv(msg->params, "session", &p, &len, NULL) > 0)
        snprintf(session, sizeof(session), "%.*s", (int)len, p);
    if (cws_rpc_param_strv(msg->params, "owner", &p, &len, NULL) > 0)
        snprintf(owner, sizeof(owner), "%.*s", (int)len, p);
    else
        snprintf(owner, sizeof(owner), "%s", session[0] ? "session" : "client");
    struct mock_sandbox *s = NULL;
    for (int i = 0; i < MOCK_MAX_SANDBOXES && !s; i++)
        if (!m->sandboxes[i].used)
            s = &m->sandboxes[i];
    if (!s) {
        mock_reply_error(c, msg->msgid, CWS_E_RESOURCE_EXHAUSTED, NULL, "too many sandboxes");
        return;
    }
    memset(s, 0, sizeof(*s));
    s->used = true;
    s->log_fd = -1;
    msgpack_sbuffer_init(&s->log);
    snprintf(s->id, sizeof(s->id), "sbx-mock-%d", ++m->next_id);
    snprintf(s->state, sizeof(s->state), "running");
    snprintf(s->session, sizeof(s->session), "%s", session);
    snprintf(s->owner, sizeof(s->owner), "%s", owner);
    snprintf(s->request_id, sizeof(s->request_id), "%s", request_id);
    s->created_ms = s->started_ms = mock_wall_ms();
    s->tags =
        merged_tags(config ? config : msg->params, session[0] ? find_session(m, session) : NULL);
    if (config)
        spawn_main(s, config);
    reply_sandbox(c, msg->msgid, s);
}

static void method_get(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    int i = mock_find_sandbox(m, msg->params, c, msg->msgid);
    if (i >= 0)
        reply_sandbox(c, msg->msgid, &m->sandboxes[i]);
}

static bool has_all_tags(const struct mock_sandbox *s, char **want)
{
    for (size_t i = 0; want && want[i]; i++) {
        bool found = false;
        for (size_t j = 0; s->tags && s->tags[j] && !found; j++)
            found = strcmp(s->tags[j], want[i]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static bool list_match(const struct mock_sandbox *s, char **tags, const char *state,
                       const char *session, bool show_terminated)
{
    if (!s->used || !has_all_tags(s, tags))
        return false;
    if (state && strcmp(state, s->state) != 0)
        return false;
    if (session && strcmp(session, s->session) != 0)
        return false;
    return show_terminated || state || !mock_state_terminal(s->state);
}

static void method_list(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    char **tags = NULL, *state = NULL, *session = NULL;
    size_t n_tags = 0, n = 0;
    bool show_terminated = false;
    cws_rpc_param_strv_array(msg->params, "tags", &tags, &n_tags, NULL);
    cws_rpc_param_str(msg->params, "state", &state, NULL);
    cws_rpc_param_str(msg->params, "session", &session, NULL);
    cws_rpc_param_bool(msg->params, "show_terminated", &show_terminated, NULL);
    for (int i = 0; i < MOCK_MAX_SANDBOXES; i++)
        n += list_match(&m->sandboxes[i], tags, state, session, show_terminated);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_result_begin(&sb, &pk, msg->msgid);
    msgpack_pack_map(&pk, 1);
    cws_rpc_pack_cstr(&pk, "sandboxes");
    msgpack_pack_array(&pk, n);
    for (int i = 0; i < MOCK_MAX_SANDBOXES; i++)
        if (list_match(&m->sandboxes[i], tags, state, session, show_terminated))
            mock_pack_sandbox(&pk, &m->sandboxes[i]);
    mock_send(c, &sb);
    cws_strv_free(tags);
    free(state);
    free(session);
}

static void start_wait(struct mock *m, struct mock_conn *c, uint32_t msgid, int i, double timeout_s)
{
    struct mock_call *call = mock_call_new(m, CALL_WAIT, c, msgid);
    if (!call) {
        mock_reply_error(c, msgid, CWS_E_RESOURCE_EXHAUSTED, NULL, "too many calls");
        return;
    }
    call->sandbox = i;
    call->until_terminal = true;
    call->deadline_ms = mock_now_ms() + (int64_t)(timeout_s * 1000);
}

static void method_wait(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    char *until = NULL;
    double timeout_s = 300;
    int i = mock_find_sandbox(m, msg->params, c, msg->msgid);
    if (i < 0)
        return;
    cws_rpc_param_str(msg->params, "until", &until, NULL);
    cws_rpc_param_nonneg(msg->params, "timeout_s", &timeout_s, NULL);
    bool terminal = until && strcmp(until, "terminal") == 0;
    free(until);
    struct mock_sandbox *s = &m->sandboxes[i];
    if (!terminal && strcmp(s->state, "failed") == 0)
        mock_reply_error(c, msg->msgid, CWS_E_SANDBOX_FAILED, NULL, "sandbox %s failed", s->id);
    else if (!terminal || mock_state_terminal(s->state))
        reply_sandbox(c, msg->msgid, s);
    else
        start_wait(m, c, msg->msgid, i, timeout_s);
}

/* SIGTERM now, SIGKILL after grace_s; a sandbox without a process ends at once. */
static void begin_stop(struct mock_sandbox *s, double grace_s)
{
    if (mock_state_terminal(s->state))
        return;
    s->stopping = true;
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        s->kill_at_ms = mock_now_ms() + (int64_t)(grace_s * 1000);
        snprintf(s->state, sizeof(s->state), "terminating");
    } else {
        snprintf(s->state, sizeof(s->state), "completed");
        s->ended_ms = mock_wall_ms();
    }
}

static void method_stop(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    double grace_s = 10;
    bool wait = true;
    int i = mock_find_sandbox(m, msg->params, c, msg->msgid);
    if (i < 0)
        return;
    cws_rpc_param_nonneg(msg->params, "grace_s", &grace_s, NULL);
    cws_rpc_param_bool(msg->params, "wait", &wait, NULL);
    begin_stop(&m->sandboxes[i], grace_s);
    if (wait && !mock_state_terminal(m->sandboxes[i].state))
        start_wait(m, c, msg->msgid, i, grace_s + 30);
    else
        reply_sandbox(c, msg->msgid, &m->sandboxes[i]);
}

static void method_delete(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    int i = mock_find_sandbox(m, msg->params, c, msg->msgid);
    if (i < 0)
        return;
    begin_stop(&m->sandboxes[i], 0);
    mock_reply_nil(c, msg->msgid);
}

static void method_purge(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    char **tags = NULL;
    size_t n_tags = 0;
    bool dry_run = false;
    uint64_t count = 0;
    cws_rpc_param_strv_array(msg->params, "tags", &tags, &n_tags, NULL);
    cws_rpc_param_bool(msg->params, "dry_run", &dry_run, NULL);
    if (n_tags == 0) {
        cws_strv_free(tags);
        mock_reply_error(c, msg->msgid, CWS_E_INVALID_ARGUMENT, NULL, "tags is required");
        return;
    }
    for (int i = 0; i < MOCK_MAX_SANDBOXES; i++) {
        struct mock_sandbox *s = &m->sandboxes[i];
        if (s->used && !mock_state_terminal(s->state) && has_all_tags(s, tags)) {
            count++;
            if (!dry_run)
                begin_stop(s, 0);
        }
    }
    cws_strv_free(tags);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_result_begin(&sb, &pk, msg->msgid);
    msgpack_pack_map(&pk, 2);
    cws_rpc_pack_kv_uint(&pk, "count", count);
    cws_rpc_pack_cstr(&pk, "failed");
    msgpack_pack_array(&pk, 0);
    mock_send(c, &sb);
}

static void method_adopt(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg,
                         bool detach)
{
    const char *p = NULL;
    size_t len = 0;
    int i = mock_find_sandbox(m, msg->params, c, msg->msgid);
    if (i < 0)
        return;
    struct mock_sandbox *s = &m->sandboxes[i];
    if (detach) {
        s->session[0] = '\0';
        snprintf(s->owner, sizeof(s->owner), "detached");
    } else if (cws_rpc_param_strv(msg->params, "session", &p, &len, NULL) > 0) {
        snprintf(s->session, sizeof(s->session), "%.*s", (int)len, p);
        snprintf(s->owner, sizeof(s->owner), "session");
    }
    reply_sandbox(c, msg->msgid, s);
}

void mock_sandbox_method(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    const char *name = msg->method + strlen("sandbox.");
    if (strcmp(name, "create") == 0)
        method_create(m, c, msg);
    else if (strcmp(name, "get") == 0)
        method_get(m, c, msg);
    else if (strcmp(name, "list") == 0)
        method_list(m, c, msg);
    else if (strcmp(name, "wait") == 0)
        method_wait(m, c, msg);
    else if (strcmp(name, "stop") == 0)
        method_stop(m, c, msg);
    else if (strcmp(name, "delete") == 0)
        method_delete(m, c, msg);
    else if (strcmp(name, "purge") == 0)
        method_purge(m, c, msg);
    else if (strcmp(name, "adopt") == 0 || strcmp(name, "detach") == 0)
        method_adopt(m, c, msg, strcmp(name, "detach") == 0);
    else
        mock_reply_error(c, msg->msgid, CWS_E_UNIMPLEMENTED, NULL, "unknown method '%s'",
                         msg->method);
}

void mock_sandbox_end(struct mock *m, struct mock_sandbox *s, int status)
{
    (void)m;
    s->pid = 0;
    s->has_exit_code = true;
    s->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    bool ok = s->exit_code == 0 || s->stopping;
    snprintf(s->state, sizeof(s->state), "%s", ok ? "completed" : "failed");
    s->ended_ms = mock_wall_ms();
}

static void read_log(struct mock_sandbox *s)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(s->log_fd, buf, sizeof(buf));
        if (n > 0) {
            msgpack_sbuffer_write(&s->log, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        close(s->log_fd);
        s->log_fd = -1;
        return;
    }
}

static void reap(struct mock *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < MOCK_MAX_SANDBOXES; i++)
            if (m->sandboxes[i].used && m->sandboxes[i].pid == pid)
                mock_sandbox_end(m, &m->sandboxes[i], status);
        for (int i = 0; i < MOCK_MAX_CALLS; i++) {
            struct mock_call *call = &m->calls[i];
            if (call->kind == CALL_EXEC && call->pid == pid) {
                call->exited = true;
                call->status = status;
            }
        }
    }
}

void mock_sandbox_poll(struct mock *m)
{
    int64_t now = mock_now_ms();
    for (int i = 0; i < MOCK_MAX_SANDBOXES; i++) {
        struct mock_sandbox *s = &m->sandboxes[i];
        if (s->used && s->log_fd >= 0)
            read_log(s);
        if (s->used && s->pid > 0 && s->kill_at_ms && now >= s->kill_at_ms) {
            kill(s->pid, SIGKILL);
            s->kill_at_ms = 0;
        }
    }
    reap(m);
}

/* ---- sessions ---- */

static void pack_session(struct mock *m, msgpack_packer *pk, const struct mock_session *s)
{
    size_t n = 0;
    for (int i = 0; i < MOCK_MAX_SANDBOXES; i++)
        n += m->sandboxes[i].used && strcmp(m->sandboxes[i].session, s->name) == 0 &&
             !mock_state_terminal(m->sandboxes[i].state);
    msgpack_pack_map(pk, 5);
    cws_rpc_pack_kv_cstr(pk, "name", s->name);
    cws_rpc_pack_cstr(pk, "sandboxes");
    msgpack_pack_array(pk, n);
    for (int i = 0; i < MOCK_MAX_SANDBOXES; i++)
        if (m->sandboxes[i].used && strcmp(m->sandboxes[i].session, s->name) == 0 &&
            !mock_state_terminal(m->sandboxes[i].state))
            cws_rpc_pack_cstr(pk, m->sandboxes[i].id);
    cws_rpc_pack_kv_uint(pk, "clients", 1);
    cws_rpc_pack_cstr(pk, "idle_ttl_s");
    msgpack_pack_double(pk, s->idle_ttl_s);
    cws_rpc_pack_kv_int(pk, "created_ms", s->created_ms);
}

static void reply_session(struct mock *m, struct mock_conn *c, uint32_t msgid,
                          const struct mock_session *s)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_result_begin(&sb, &pk, msgid);
    pack_session(m, &pk, s);
    mock_send(c, &sb);
}

static void session_open(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    char name[64];
    const char *p = NULL;
    size_t len = 0;
    if (cws_rpc_param_strv(msg->params, "name", &p, &len, NULL) > 0)
        snprintf(name, sizeof(name), "%.*s", (int)len, p);
    else
        snprintf(name, sizeof(name), "session-%d", ++m->next_id);
    struct mock_session *s = find_session(m, name);
    for (int i = 0; i < MOCK_MAX_SESSIONS && !s; i++) {
        if (!m->sessions[i].used) {
            s = &m->sessions[i];
            memset(s, 0, sizeof(*s));
            s->used = true;
            snprintf(s->name, sizeof(s->name), "%s", name);
            s->created_ms = mock_wall_ms();
            cws_rpc_param_nonneg(msg->params, "idle_ttl_s", &s->idle_ttl_s, NULL);
            size_t n = 0;
            cws_rpc_param_strv_array(msg->params, "defaults.tags", &s->default_tags, &n, NULL);
        }
    }
    if (!s)
        mock_reply_error(c, msg->msgid, CWS_E_RESOURCE_EXHAUSTED, NULL, "too many sessions");
    else
        reply_session(m, c, msg->msgid, s);
}

static struct mock_session *named_session(struct mock *m, struct mock_conn *c,
                                          const struct cws_rpc_msg *msg)
{
    char *name = NULL;
    if (cws_rpc_param_str(msg->params, "name", &name, NULL) <= 0) {
        mock_reply_error(c, msg->msgid, CWS_E_INVALID_ARGUMENT, NULL, "name is required");
        return NULL;
    }
    struct mock_session *s = find_session(m, name);
    if (!s)
        mock_reply_error(c, msg->msgid, CWS_E_NOT_FOUND, NULL, "session %s not found", name);
    free(name);
    return s;
}

static void session_close(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    bool stop = true;
    uint64_t stopped = 0;
    struct mock_session *s = named_session(m, c, msg);
    if (!s)
        return;
    cws_rpc_param_bool(msg->params, "stop", &stop, NULL);
    for (int i = 0; stop && i < MOCK_MAX_SANDBOXES; i++) {
        struct mock_sandbox *sb = &m->sandboxes[i];
        if (sb->used && strcmp(sb->session, s->name) == 0 && !mock_state_terminal(sb->state)) {
            begin_stop(sb, 0);
            stopped++;
        }
    }
    cws_strv_free(s->default_tags);
    s->used = false;
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    mock_result_begin(&sbuf, &pk, msg->msgid);
    msgpack_pack_map(&pk, 2);
    cws_rpc_pack_kv_uint(&pk, "stopped", stopped);
    cws_rpc_pack_cstr(&pk, "failed");
    msgpack_pack_array(&pk, 0);
    mock_send(c, &sbuf);
}

static void session_list(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    size_t n = 0;
    for (int i = 0; i < MOCK_MAX_SESSIONS; i++)
        n += m->sessions[i].used;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mock_result_begin(&sb, &pk, msg->msgid);
    msgpack_pack_map(&pk, 1);
    cws_rpc_pack_cstr(&pk, "sessions");
    msgpack_pack_array(&pk, n);
    for (int i = 0; i < MOCK_MAX_SESSIONS; i++)
        if (m->sessions[i].used)
            pack_session(m, &pk, &m->sessions[i]);
    mock_send(c, &sb);
}

void mock_session_method(struct mock *m, struct mock_conn *c, const struct cws_rpc_msg *msg)
{
    const char *name = msg->method + strlen("session.");
    struct mock_session *s = NULL;
    if (strcmp(name, "open") == 0)
        session_open(m, c, msg);
    else if (strcmp(name, "close") == 0)
        session_close(m, c, msg);
    else if (strcmp(name, "list") == 0)
        session_list(m, c, msg);
    else if (strcmp(name, "get") == 0 && (s = named_session(m, c, msg)))
        reply_session(m, c, msg->msgid, s);
    else if (strcmp(name, "get") != 0)
        mock_reply_error(c, msg->msgid, CWS_E_UNIMPLEMENTED, NULL, "unknown method '%s'",
                         msg->method);
}
