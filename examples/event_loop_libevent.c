/* Event-loop integration with libevent: a persistent read event on cws_client_fd() calls
 * cws_client_process(); a write event is armed only while cws_client_want_write() says
 * requests are queued. Everything else (here: the sandbox's creation and an exec) is driven
 * by op callbacks, with no blocking call after connecting.
 *
 *   ./event_loop_libevent */
#include <cwsandbox/cwsandbox.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

struct app {
    struct event_base *base;
    cws_client *client;
    struct event *readable, *writable;
    cws_op *create, *exec, *stop;
    int status;
};

static void fail(struct app *app, const struct cws_error *e)
{
    fprintf(stderr, "event_loop_libevent: %s (%s)\n", e->message, cws_errcode_name(e->code));
    app->status = 1;
    event_base_loopbreak(app->base);
}

/* Arm the write event only while there is something to write. */
static void update_write_interest(struct app *app)
{
    if (cws_client_want_write(app->client))
        event_add(app->writable, NULL);
    else
        event_del(app->writable);
}

static void on_socket(evutil_socket_t fd, short what, void *userdata)
{
    struct app *app = userdata;
    struct cws_error err;
    (void)fd;
    (void)what;
    if (cws_client_process(app->client, &err) < 0)
        fail(app, &err);
    else
        update_write_interest(app);
}

static void on_stopped(cws_op *op, void *userdata)
{
    struct app *app = userdata;
    if (cws_op_error(op))
        fail(app, cws_op_error(op));
    else
        printf("sandbox %s\n", cws_sandbox_state_name(cws_op_sandbox(op)->state));
    event_base_loopexit(app->base, NULL);
}

static void on_output(cws_op *op, int fd, const void *data, size_t len, void *userdata)
{
    (void)op;
    (void)fd;
    (void)userdata;
    printf("output: %.*s", (int)len, (const char *)data);
}

static void on_exec_done(cws_op *op, void *userdata)
{
    struct app *app = userdata;
    struct cws_error err;
    if (cws_op_error(op)) {
        fail(app, cws_op_error(op));
        return;
    }
    printf("exit code %d\n", cws_op_exec_result(op)->exit_code);
    if (cws_sandbox_stop(app->client, cws_op_sandbox(app->create)->id, NULL, &app->stop, &err) < 0)
        fail(app, &err);
    else
        cws_op_set_done_callback(app->stop, on_stopped, app);
}

static void on_created(cws_op *op, void *userdata)
{
    struct app *app = userdata;
    struct cws_error err;
    const char *argv[] = {"sh", "-c", "echo one; sleep 0.2; echo two", NULL};
    struct cws_exec_options o = {.on_output = on_output};
    if (cws_op_error(op)) {
        fail(app, cws_op_error(op));
        return;
    }
    printf("sandbox %s is %s\n", cws_op_sandbox(op)->id,
           cws_sandbox_state_name(cws_op_sandbox(op)->state));
    if (cws_exec(app->client, cws_op_sandbox(op)->id, argv, &o, &app->exec, &err) < 0)
        fail(app, &err);
    else
        cws_op_set_done_callback(app->exec, on_exec_done, app);
}

static int start(struct app *app, struct cws_error *err)
{
    struct cws_create_options o = {.wait_running = true};
    int fd = cws_client_fd(app->client);
    app->readable = event_new(app->base, fd, EV_READ | EV_PERSIST, on_socket, app);
    app->writable = event_new(app->base, fd, EV_WRITE | EV_PERSIST, on_socket, app);
    if (!app->readable || !app->writable || event_add(app->readable, NULL) < 0)
        return cws_error_set(err, CWS_E_NOMEM, "cannot set up the events");
    int r = cws_sandbox_create(app->client, NULL, &o, &app->create, err);
    if (r == 0) {
        cws_op_set_done_callback(app->create, on_created, app);
        update_write_interest(app);
    }
    return r;
}

int main(int argc, char **argv)
{
    struct app app = {0};
    struct cws_error err;

    if (argc > 1) {
        printf("usage: %s\nDrive the library from a libevent loop.\n", argv[0]);
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    app.base = event_base_new();
    if (!app.base || cws_client_connect(NULL, &app.client, &err) < 0 || start(&app, &err) < 0) {
        if (app.base)
            fprintf(stderr, "event_loop_libevent: %s\n", err.message);
        app.status = 1;
    } else {
        event_base_dispatch(app.base);
    }
    cws_op_free(app.stop);
    cws_op_free(app.exec);
    cws_op_free(app.create);
    if (app.readable)
        event_free(app.readable);
    if (app.writable)
        event_free(app.writable);
    cws_client_free(app.client);
    if (app.base)
        event_base_free(app.base);
    return app.status;
}
