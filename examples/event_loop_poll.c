/* Event-loop integration with poll(): three commands run at once in one sandbox while the
 * loop stays free for other work (here a ticker). The library never blocks: the loop watches
 * cws_client_fd() and calls cws_client_process(), which runs the callbacks.
 *
 *   ./event_loop_poll */
#include <cwsandbox/cwsandbox.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#define JOBS    3
#define WAIT_MS 120000
#define TICK_MS 100

struct jobs {
    int running;
    int failed;
};

static void on_output(cws_op *op, int fd, const void *data, size_t len, void *userdata)
{
    (void)op;
    printf("  job %s: %.*s", (const char *)userdata, (int)len, (const char *)data);
    (void)fd;
}

static void on_done(cws_op *op, void *userdata)
{
    struct jobs *jobs = userdata;
    const struct cws_error *e = cws_op_error(op);
    if (e) {
        fprintf(stderr, "  a job failed: %s\n", e->message);
        jobs->failed++;
    } else {
        printf("  a job exited with %d\n", cws_op_exec_result(op)->exit_code);
    }
    jobs->running--;
}

/* The loop: wait for the connection (or the tick), then let the library do its part. */
static int run_loop(cws_client *c, struct jobs *jobs, struct cws_error *err)
{
    int ticks = 0;
    while (jobs->running > 0) {
        struct pollfd p = {.fd = cws_client_fd(c), .events = POLLIN};
        if (cws_client_want_write(c))
            p.events |= POLLOUT;
        if (poll(&p, 1, TICK_MS) == 0 && ++ticks % 5 == 0)
            printf("tick: the loop is free, %d jobs running\n", jobs->running);
        int r = cws_client_process(c, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int run_jobs(cws_client *c, const char *id, struct cws_error *err)
{
    static const char *names[JOBS] = {"a", "b", "c"};
    const char *argv[] = {"sh", "-c", "for i in 1 2 3; do echo step $i; sleep 0.3; done", NULL};
    struct jobs jobs = {0, 0};
    cws_op *ops[JOBS] = {NULL};
    int r = 0;

    for (int i = 0; i < JOBS && r == 0; i++) {
        struct cws_exec_options o = {.on_output = on_output, .userdata = (void *)names[i]};
        r = cws_exec(c, id, argv, &o, &ops[i], err);
        if (r == 0) {
            cws_op_set_done_callback(ops[i], on_done, &jobs);
            jobs.running++;
        }
    }
    if (r == 0)
        r = run_loop(c, &jobs, err);
    for (int i = 0; i < JOBS; i++)
        cws_op_free(ops[i]);
    if (r == 0 && jobs.failed)
        r = cws_error_set(err, CWS_E_UNKNOWN, "%d jobs failed", jobs.failed);
    return r;
}

int main(int argc, char **argv)
{
    struct cws_error err;
    cws_client *c = NULL;
    struct cws_sandbox_info *sb = NULL;
    cws_op *stop = NULL;

    if (argc > 1) {
        printf("usage: %s\nRun commands concurrently from a poll() loop.\n", argv[0]);
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int r = cws_client_connect(NULL, &c, &err);
    if (r == 0)
        r = cws_sandbox_run(c, NULL, NULL, &sb, &err);
    if (r == 0)
        r = run_jobs(c, sb->id, &err);
    if (sb && cws_sandbox_stop(c, sb->id, NULL, &stop, NULL) == 0)
        cws_op_wait(stop, WAIT_MS, NULL);
    if (r < 0)
        fprintf(stderr, "event_loop_poll: %s (%s)\n", err.message, cws_errcode_name(err.code));
    cws_op_free(stop);
    cws_sandbox_info_free(sb);
    cws_client_free(c);
    return r < 0 ? 1 : 0;
}
