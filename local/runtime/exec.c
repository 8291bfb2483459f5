/* Commands run in a sandbox: one connection to its cwsandbox-init per exec (init_client.h).
 * Freeing the handle closes the connection, and init kills the process group. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exit_record.h"
#include "init_client.h"
#include "init_proto.h"
#include "rpc_encode.h"
#include "rpc_params.h"
#include "rt_internal.h"

struct cws_rt_exec {
    struct cws_rt *rt;
    struct cws_rt_exec *next, **pprev;
    struct cws_init_conn *conn;
    int dirfd; /* the sandbox directory, to tell "sandbox ended" from "connection lost" */
    struct cws_rt_exec_events ev;
    void *ud;
    bool done; /* the last event was delivered (or is queued) */
    bool stdin_closed;
    bool stdin_blocked; /* write() returned 1 */
    struct event *error_ev;
    struct cws_error pending;
    int holds;
    bool freed;
};

static void exec_destroy(struct cws_rt_exec *ex)
{
    *ex->pprev = ex->next;
    if (ex->next)
        ex->next->pprev = ex->pprev;
    cws_init_conn_free(ex->conn);
    if (ex->error_ev)
        event_free(ex->error_ev);
    if (ex->dirfd >= 0)
        close(ex->dirfd);
    free(ex);
}

static void hold(struct cws_rt_exec *ex)
{
    ex->holds++;
}

/* Returns true when ex is gone. */
static bool drop(struct cws_rt_exec *ex)
{
    if (--ex->holds > 0 || !ex->freed)
        return false;
    exec_destroy(ex);
    return true;
}

static void close_conn(struct cws_rt_exec *ex)
{
    cws_init_conn_free(ex->conn);
    ex->conn = NULL;
}

/* ---- final events ---- */

static void emit_error(struct cws_rt_exec *ex, const struct cws_error *err)
{
    ex->done = true;
    close_conn(ex);
    if (ex->freed || !ex->ev.on_error)
        return;
    hold(ex);
    ex->ev.on_error(ex, err, ex->ud);
    drop(ex);
}

static void emit_exit(struct cws_rt_exec *ex, int code)
{
    ex->done = true;
    close_conn(ex);
    if (ex->freed || !ex->ev.on_exit)
        return;
    hold(ex);
    ex->ev.on_exit(ex, code, ex->ud);
    drop(ex);
}

static void on_deferred_error(evutil_socket_t fd, short what, void *arg)
{
    struct cws_rt_exec *ex = arg;
    emit_error(ex, &ex->pending);
}

/* Errors found while starting still arrive as on_error, from the loop. */
static void fail_later(struct cws_rt_exec *ex, const struct cws_error *err)
{
    ex->pending = *err;
    ex->done = true;
    event_active(ex->error_ev, 0, 0);
}

static void sandbox_gone_error(struct cws_error *err)
{
    cws_error_set(err, CWS_E_FAILED_PRECONDITION, "sandbox is not running");
}

/* ---- messages from init ---- */

static void handle_output(struct cws_rt_exec *ex, const msgpack_object *p)
{
    int64_t fd = 0;
    const void *data;
    size_t len;
    if (cws_rpc_param_int(p, "fd", 1, 2, &fd, NULL) <= 0 ||
        cws_rpc_param_bytes(p, "data", &data, &len, NULL) <= 0 || !ex->ev.on_output)
        return;
    ex->ev.on_output(ex, (int)fd, data, len, ex->ud);
}

static void handle_response(struct cws_rt_exec *ex, const struct cws_rpc_msg *m)
{
    struct cws_error err;
    int64_t code = -1;
    if (m->error) {
        if (cws_rpc_error_from_object(m->error, &err, &err) < 0)
            cws_error_set(&err, CWS_E_PROTOCOL, "malformed error from cwsandbox-init");
        emit_error(ex, &err);
        return;
    }
    if (!m->result || m->result->type != MSGPACK_OBJECT_MAP ||
        cws_rpc_param_int(m->result, "exit_code", -1, 255 + 128, &code, NULL) <= 0) {
        cws_error_set(&err, CWS_E_PROTOCOL, "malformed answer from cwsandbox-init");
        emit_error(ex, &err);
        return;
    }
    emit_exit(ex, (int)code);
}

static void on_message(struct cws_init_conn *c, const struct cws_rpc_msg *m, void *ud)
{
    struct cws_rt_exec *ex = ud;
    if (ex->freed || ex->done)
        return;
    hold(ex);
    if (m->type == CWS_RPC_RESPONSE) {
        handle_response(ex, m);
    } else if (m->type == CWS_RPC_NOTIFICATION) {
        if (strcmp(m->method, CWS_INIT_N_OUTPUT) == 0)
            handle_output(ex, m->params);
        else if (strcmp(m->method, CWS_INIT_N_STARTED) == 0 && ex->ev.on_started)
            ex->ev.on_started(ex, ex->ud);
    }
    drop(ex);
}

static void on_closed(struct cws_init_conn *c, const struct cws_error *why, void *ud)
{
    struct cws_rt_exec *ex = ud;
    struct cws_exit_record rec;
    struct cws_error err;
    if (ex->done)
        return;
    /* init closes on us only when it dies: the sandbox ended, or it crashed. */
    if (cws_exit_record_read(ex->dirfd, &rec, NULL) == 0)
        sandbox_gone_error(&err);
    else
        err = *why;
    emit_error(ex, &err);
}

static void on_drained(struct cws_init_conn *c, void *ud)
{
    struct cws_rt_exec *ex = ud;
    if (!ex->stdin_blocked || ex->freed || ex->done)
        return;
    ex->stdin_blocked = false;
    if (ex->ev.on_stdin_drained) {
        hold(ex);
        ex->ev.on_stdin_drained(ex, ex->ud);
        drop(ex);
    }
}

static const struct cws_init_conn_handlers conn_handlers = {
    .on_message = on_message,
    .on_closed = on_closed,
    .on_drained = on_drained,
};

/* ---- starting ---- */

static int pack_strv(msgpack_packer *pk, const char *key, const char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    cws_rpc_pack_cstr(pk, key);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        cws_rpc_pack_cstr(pk, v[i]);
    return 0;
}

static void send_request(struct cws_rt_exec *ex, const struct cws_rt_exec_spec *s)
{
    msgpack_packer pk;
    cws_init_conn_packer(ex->conn, &pk);
    cws_rpc_pack_request_head(&pk, 1, CWS_INIT_M_EXEC);
    msgpack_pack_map(&pk, 5 + (s->cwd != NULL));
    pack_strv(&pk, "argv", s->argv);
    pack_strv(&pk, "env", s->env);
    if (s->cwd)
        cws_rpc_pack_kv_cstr(&pk, "cwd", s->cwd);
    cws_rpc_pack_kv_bool(&pk, "tty", s->tty);
    cws_rpc_pack_kv_int(&pk, "cols", s->cols ? s->cols : 80);
    cws_rpc_pack_kv_int(&pk, "rows", s->rows ? s->rows : 24);
}

static int exec_alloc(struct cws_rt_sandbox *sb, const struct cws_rt_exec_events *ev, void *ud,
                      struct cws_rt_exec **ret, struct cws_error *err)
{
    struct cws_rt_exec *ex = calloc(1, sizeof(*ex));
    if (!ex)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    struct cws_rt *rt = sb->rt;
    ex->rt = rt;
    ex->ev = *ev;
    ex->ud = ud;
    ex->dirfd = fcntl(sb->dirfd, F_DUPFD_CLOEXEC, 3);
    ex->error_ev = event_new(rt->base, -1, 0, on_deferred_error, ex);
    ex->next = rt->execs;
    if (ex->next)
        ex->next->pprev = &ex->next;
    ex->pprev = &rt->execs;
    rt->execs = ex;
    if (ex->dirfd < 0 || !ex->error_ev) {
        exec_destroy(ex);
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    }
    *ret = ex;
    return 0;
}

int cws_rt_exec_start(struct cws_rt_sandbox *sb, const struct cws_rt_exec_spec *spec,
                      const struct cws_rt_exec_events *ev, void *ud, struct cws_rt_exec **ret,
                      struct cws_error *err)
{
    struct cws_rt_exec *ex = NULL;
    struct cws_error cerr;
    if (!sb || !spec || !ev || !spec->argv || !spec->argv[0] || !spec->argv[0][0])
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "exec needs a command");
    if (spec->cwd && spec->cwd[0] != '/')
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "working directory must be absolute");
    int r = exec_alloc(sb, ev, ud, &ex, err);
    if (r < 0)
        return r;
    if (sb->state != SB_RUNNING) {
        sandbox_gone_error(&cerr);
        fail_later(ex, &cerr);
    } else if (cws_init_conn_open(sb->rt->base, sb->dirfd, &conn_handlers, ex, &ex->conn, &cerr) <
               0) {
        fail_later(ex, &cerr);
    } else {
        send_request(ex, spec);
    }
    *ret = ex;
    return 0;
}

/* ---- while it runs ---- */

static void send_notification(struct cws_rt_exec *ex, const char *method, const char *key,
                              int64_t value)
{
    msgpack_packer pk;
    cws_init_conn_packer(ex->conn, &pk);
    cws_rpc_pack_notification_head(&pk, method);
    msgpack_pack_map(&pk, key ? 1 : 0);
    if (key)
        cws_rpc_pack_kv_int(&pk, key, value);
}

int cws_rt_exec_write(struct cws_rt_exec *ex, const uint8_t *data, size_t len)
{
    if (!ex || ex->done || ex->freed || !ex->conn || ex->stdin_closed)
        return -CWS_E_FAILED_PRECONDITION;
    msgpack_packer pk;
    cws_init_conn_packer(ex->conn, &pk);
    while (len > 0) {
        size_t chunk = len < CWS_INIT_CHUNK ? len : CWS_INIT_CHUNK;
        cws_rpc_pack_notification_head(&pk, CWS_INIT_N_STDIN);
        msgpack_pack_map(&pk, 1);
        cws_rpc_pack_kv_bin(&pk, "data", data, chunk);
        data += chunk;
        len -= chunk;
    }
    if (cws_init_conn_queued(ex->conn) < CWS_INIT_CONN_HIGH)
        return 0;
    ex->stdin_blocked = true;
    return 1;
}

int cws_rt_exec_close_stdin(struct cws_rt_exec *ex)
{
    if (!ex || ex->done || ex->freed || !ex->conn)
        return -CWS_E_FAILED_PRECONDITION;
    if (!ex->stdin_closed)
        send_notification(ex, CWS_INIT_N_EOF, NULL, 0);
    ex->stdin_closed = true;
    return 0;
}

int cws_rt_exec_resize(struct cws_rt_exec *ex, unsigned cols, unsigned rows)
{
    if (!ex || ex->done || ex->freed || !ex->conn)
        return -CWS_E_FAILED_PRECONDITION;
    if (cols == 0 || rows == 0 || cols > 65535 || rows > 65535)
        return -CWS_E_INVALID_ARGUMENT;
    msgpack_packer pk;
    cws_init_conn_packer(ex->conn, &pk);
    cws_rpc_pack_notification_head(&pk, CWS_INIT_N_RESIZE);
    msgpack_pack_map(&pk, 2);
    cws_rpc_pack_kv_int(&pk, "cols", cols);
    cws_rpc_pack_kv_int(&pk, "rows", rows);
    return 0;
}

int cws_rt_exec_signal(struct cws_rt_exec *ex, int sig)
{
    if (!ex || ex->done || ex->freed || !ex->conn)
        return -CWS_E_FAILED_PRECONDITION;
    if (sig < 1 || sig > 64)
        return -CWS_E_INVALID_ARGUMENT;
    send_notification(ex, CWS_INIT_N_SIGNAL, "signal", sig);
    return 0;
}

void cws_rt_exec_pause_output(struct cws_rt_exec *ex, bool paused)
{
    if (ex && ex->conn)
        cws_init_conn_pause(ex->conn, paused);
}

void cws_rt_exec_free(struct cws_rt_exec *ex)
{
    if (!ex || ex->freed)
        return;
    ex->freed = true;
    /* Closing the connection now is what kills the process, even inside a callback. */
    close_conn(ex);
    if (ex->holds == 0)
        exec_destroy(ex);
}

void cws_rt_exec_free_all(struct cws_rt *rt)
{
    while (rt->execs) {
        struct cws_rt_exec *ex = rt->execs;
        ex->holds = 0;
        ex->freed = false;
        cws_rt_exec_free(ex);
    }
}
