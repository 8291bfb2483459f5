/* A session shared by two processes. The first opens a session and creates a sandbox in it;
 * the second is started with CWSANDBOX_SESSION=<name> in its environment, which is all it
 * takes to join: it finds the session's sandbox and runs a command there. The first then
 * closes the session, which stops its sandboxes.
 *
 *   ./shared_session            (runs both processes) */
#include <cwsandbox/cwsandbox.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SESSION "example-shared"
#define WAIT_MS 120000

/* Wait for op and free it; keeps its result in nothing, its error in err. */
static int finish(cws_op *op, struct cws_error *err)
{
    int r = cws_op_wait(op, WAIT_MS, err);
    cws_op_free(op);
    return r;
}

/* The second process: joined through the environment. */
static int join(void)
{
    const char *argv[] = {"echo", "hello from the second process", NULL};
    struct cws_error err;
    cws_client *c = NULL;
    cws_op *list = NULL, *exec = NULL;
    size_t n = 0;

    int r = cws_client_connect(NULL, &c, &err);
    if (r == 0) {
        struct cws_list_options o = {.session = cws_client_session(c)};
        printf("[second] in session %s\n", cws_client_session(c));
        r = cws_sandbox_list(c, &o, &list, &err);
    }
    if (r == 0)
        r = cws_op_wait(list, WAIT_MS, &err);
    const struct cws_sandbox_info *sbs = r == 0 ? cws_op_sandboxes(list, &n) : NULL;
    if (r == 0 && n == 0)
        r = cws_error_set(&err, CWS_E_NOT_FOUND, "the session has no sandbox");
    if (r == 0)
        r = cws_exec(c, sbs[0].id, argv, NULL, &exec, &err);
    if (r == 0)
        r = cws_op_wait(exec, WAIT_MS, &err);
    if (r == 0)
        printf("[second] %s said: %.*s", sbs[0].id, (int)cws_op_exec_result(exec)->stdout_len,
               (const char *)cws_op_exec_result(exec)->stdout_data);
    else
        fprintf(stderr, "[second] %s (%s)\n", err.message, cws_errcode_name(err.code));
    cws_op_free(exec);
    cws_op_free(list);
    cws_client_free(c);
    return r < 0 ? 1 : 0;
}

/* Run this program again as the second process, in the session. */
static int run_second(const char *self, const char *session)
{
    int status = 0;
    pid_t pid = fork();
    if (pid == 0) {
        setenv("CWSANDBOX_SESSION", session, 1);
        execl(self, self, "--join", (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv)
{
    struct cws_error err;
    cws_client *c = NULL;
    cws_op *op = NULL;

    if (argc > 1 && strcmp(argv[1], "--join") == 0)
        return join();
    if (argc > 1) {
        printf("usage: %s\nShare a session between two processes.\n", argv[0]);
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    int r = cws_client_connect(NULL, &c, &err);
    if (r == 0)
        r = cws_session_open(c, SESSION, NULL, 0, &op, &err);
    if (r == 0)
        r = finish(op, &err);
    /* The client is in the session now: the sandbox joins it. */
    if (r == 0)
        r = cws_sandbox_create(c, NULL, &(struct cws_create_options){.wait_running = true}, &op,
                               &err);
    if (r == 0)
        r = finish(op, &err);
    if (r == 0) {
        printf("[first] created a sandbox in session %s\n", cws_client_session(c));
        fflush(stdout);
        r = run_second("/proc/self/exe", SESSION) == 0
                ? 0
                : cws_error_set(&err, CWS_E_UNKNOWN, "the second process failed");
    }
    if (cws_session_close(c, SESSION, false, &op, NULL) == 0 && finish(op, NULL) == 0)
        printf("[first] closed session %s\n", SESSION);
    if (r < 0)
        fprintf(stderr, "[first] %s (%s)\n", err.message, cws_errcode_name(err.code));
    cws_client_free(c);
    return r < 0 ? 1 : 0;
}
