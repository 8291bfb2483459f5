/* Quick start: start a sandbox, run a command in it, print what it printed, stop it.
 *
 *   cc quickstart.c $(pkg-config --cflags --libs cwsandbox-client) -o quickstart
 *   ./quickstart
 *
 * The library starts cwsandboxd if it is not running; with no credentials configured the
 * daemon runs sandboxes on this machine. */
#include <cwsandbox/cwsandbox.h>
#include <stdio.h>
#include <string.h>

#define WAIT_MS 120000

static int usage(const char *prog, int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s\nStart a sandbox, run `echo` in it, print its output, stop it.\n", prog);
    return status;
}

int main(int argc, char **argv)
{
    const char *hello[] = {"echo", "Hello, CWSandbox!", NULL};
    struct cws_error err;
    cws_client *c = NULL;
    struct cws_sandbox_info *sb = NULL;
    cws_op *op = NULL;
    int status = 1;

    if (argc > 1)
        return usage(argv[0], strcmp(argv[1], "--help") == 0 ? 0 : 2);

    /* Connect (starting the daemon if needed), and create a sandbox that runs. */
    if (cws_client_connect(NULL, &c, &err) < 0 || cws_sandbox_run(c, NULL, NULL, &sb, &err) < 0)
        goto fail;
    printf("sandbox %s is %s\n", sb->id, cws_sandbox_state_name(sb->state));

    /* Every call returns an op at once; cws_op_wait() blocks for its result. */
    if (cws_exec(c, sb->id, hello, NULL, &op, &err) < 0 || cws_op_wait(op, WAIT_MS, &err) < 0)
        goto fail;
    const struct cws_exec_result *res = cws_op_exec_result(op);
    printf("exit code %d, stdout: %.*s", res->exit_code, (int)res->stdout_len,
           (const char *)res->stdout_data);
    cws_op_free(op);
    op = NULL;

    if (cws_sandbox_stop(c, sb->id, NULL, &op, &err) < 0 || cws_op_wait(op, WAIT_MS, &err) < 0)
        goto fail;
    printf("sandbox %s is %s\n", sb->id, cws_sandbox_state_name(cws_op_sandbox(op)->state));
    status = 0;
    goto out;
fail:
    fprintf(stderr, "quickstart: %s (%s)\n", err.message, cws_errcode_name(err.code));
out:
    cws_op_free(op);
    cws_sandbox_info_free(sb);
    cws_client_free(c);
    return status;
}
