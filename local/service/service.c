/* The SandboxService: its method table, and setting the service up and down. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "service.h"

/* How often ended sandboxes past their retention are looked for. */
#define EXPIRE_INTERVAL_S 60

/* Methods of the API that cwsandbox-local does not offer yet answer UNIMPLEMENTED, saying so. */
int svc_start_unimplemented(struct cws_gcall *call, void *server_ud,
                            struct cws_gcall_handlers *ret_handlers, void **ret_call_ud,
                            struct cws_gstatus *ret_status)
{
    static char message[256];
    (void)server_ud;
    (void)ret_handlers;
    (void)ret_call_ud;
    const char *path = cws_gcall_path(call);
    const char *name = strrchr(path, '/');
    snprintf(message, sizeof(message), "%s is not implemented by cwsandbox-local yet",
             name ? name + 1 : path);
    memset(ret_status, 0, sizeof(*ret_status));
    ret_status->grpc_code = GRPC_UNIMPLEMENTED;
    ret_status->message = message;
    ret_status->retry_delay_ms = -1;
    return -CWS_E_UNIMPLEMENTED;
}

#define METHOD(name, unary, fn)                                                                    \
    {                                                                                              \
        CWS_SVC_PREFIX name, unary, svc_start_##fn                                                 \
    }

const struct cws_gmethod svc_methods[] = {
    METHOD("CreateSandbox", true, create_sandbox),
    METHOD("GetSandbox", true, get_sandbox),
    METHOD("ListSandboxes", true, list_sandboxes),
    METHOD("DeleteSandbox", true, delete_sandbox),
    METHOD("PurgeSandboxes", true, purge_sandboxes),
    METHOD("Exec", true, exec),
    METHOD("StreamExec", false, stream_exec),
    METHOD("StreamLogs", true, stream_logs),
    METHOD("ReadFile", true, read_file),
    METHOD("WriteFile", true, write_file),
    METHOD("CreateSandboxFromTemplate", true, unimplemented),
    METHOD("CreateFileSystemSnapshot", true, unimplemented),
    METHOD("GetFileSystemSnapshot", true, unimplemented),
    METHOD("ListFileSystemSnapshots", true, unimplemented),
    METHOD("DeleteFileSystemSnapshot", true, unimplemented),
};
const size_t svc_n_methods = sizeof(svc_methods) / sizeof(svc_methods[0]);

static void on_expire_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    lsb_expire(ud);
}

static int make_dir(const char *path, struct cws_error *err)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return cws_error_set(err, CWS_E_IO, "cannot create %s: %s", path, strerror(errno));
    return 0;
}

int svc_init(struct svc *svc, struct event_base *base, const struct svc_options *opt,
             const char *token, struct cws_error *err)
{
    memset(svc, 0, sizeof(*svc));
    svc->base = base;
    svc->opt = *opt;
    if (asprintf(&svc->records_dir, "%s/records", opt->state_dir) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    int r = make_dir(svc->records_dir, err);
    if (r < 0)
        return r;
    const char *hidden[] = {opt->state_dir, opt->images_dir, NULL};
    struct cws_rt_config rc = {
        .base = base,
        .state_dir = opt->state_dir,
        .images_dir = opt->images_dir,
        .init_path = opt->init_path,
        .hidden_paths = hidden,
    };
    r = cws_rt_new(&rc, &svc->rt, err);
    if (r < 0)
        return r;
    r = lsb_load_all(svc, err);
    if (r < 0)
        return r;
    lsb_attach_all(svc);
    lsb_expire(svc);
    struct timeval every = {EXPIRE_INTERVAL_S, 0};
    svc->retention_timer = event_new(base, -1, EV_PERSIST, on_expire_timer, svc);
    if (!svc->retention_timer || event_add(svc->retention_timer, &every) < 0)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    struct cws_gsrv_config gc = {
        .base = base,
        .unix_path = opt->socket_path,
        .listen_addr = opt->listen_addr,
        .allow_non_loopback = opt->allow_remote,
        .token = token,
        .methods = svc_methods,
        .n_methods = svc_n_methods,
        .userdata = svc,
    };
    return cws_gsrv_new(&gc, &svc->gsrv, err);
}

void svc_shutdown(struct svc *svc)
{
    /* Calls first: their handlers release what they hold of records and the runtime. */
    cws_gsrv_free(svc->gsrv);
    svc->gsrv = NULL;
    if (svc->retention_timer)
        event_free(svc->retention_timer);
    svc->retention_timer = NULL;
    while (svc->sandboxes) {
        struct lsb *sb = svc->sandboxes;
        svc->sandboxes = sb->next;
        lsb_free(sb);
    }
    svc->n_sandboxes = 0;
    cws_rt_free(svc->rt);
    svc->rt = NULL;
    free(svc->records_dir);
    svc->records_dir = NULL;
}
