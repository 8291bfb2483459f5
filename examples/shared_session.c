/* A session shared by processes that never run at the same time. Each one joins the session
 * just by having CWSANDBOX_SESSION=<name> in its environment: the library names it in the
 * handshake, and the daemon opens the session on first use.
 *
 *  - the first process creates a sandbox, which belongs to the session, and exits;
 *  - the second, started once the first is gone, finds that sandbox in the session and runs a
 *    command in it, then closes the session, which stops every sandbox in it, and asks the
 *    backend to confirm the sandbox has ended.
 *
 *   ./shared_session            (runs both processes) */
#include <cwsandbox/cwsandbox.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 120000

/* The first process: create a sandbox in the session and leave. */
static int first(void)
{
    struct cws_error err;
    cws_client *c = NULL;
    struct cws_sandbox_info *info = NULL;
    int r = cws_client_connect(NULL, &c, &err);
    /* The client is in the session (cws_client_session()): the sandbox joins it. */
    if (r == 0)
        r = cws_sandbox_run(c, NULL, NULL, &info, &err);
    if (r == 0)
        printf("[first] created %s in session %s (owner: %s); exiting\n", info->id, info->session,
               info->owner);
    else
        fprintf(stderr, "[first] %s (%s)\n", err.message, cws_errcode_name(err.code));
    cws_sandbox_info_free(info);
    cws_client_free(c);
    return r < 0 ? 1 : 0;
}

/* The second process: use the session's sandbox, then close the session. */
static int second(void)
{
    const char *argv[] = {"echo", "hello from the second process", NULL};
    struct cws_error err;
    cws_client *c = NULL;
    cws_op *list = NULL, *op = NULL;
    char *id = NULL;
    size_t n = 0;

    int r = cws_client_connect(NULL, &c, &err);
    if (r == 0) {
        struct cws_list_options o = {.session = cws_client_session(c)};
        r = cws_sandbox_list(c, &o, &list, &err);
    }
    if (r == 0)
        r = cws_op_wait(list, WAIT_MS, &err);
    const struct cws_sandbox_info *sbs = r == 0 ? cws_op_sandboxes(list, &n) : NULL;
    if (r == 0 && n == 0)
        r = cws_error_set(&err, CWS_E_NOT_FOUND, "the session has no sandbox");
    if (r == 0 && !(id = strdup(sbs[0].id)))
        r = cws_error_set(&err, CWS_E_NOMEM, NULL);
    cws_op_free(list);
    if (r < 0) {
        fprintf(stderr, "[second] %s (%s)\n", err.message, cws_errcode_name(err.code));
        cws_client_free(c);
        return 1;
    }

    /* The first process is gone; its sandbox is not. */
    r = cws_exec(c, id, argv, NULL, &op, &err);
    if (r == 0 && (r = cws_op_wait(op, WAIT_MS, &err)) == 0)
        printf("[second] %s said: %.*s", id, (int)cws_op_exec_result(op)->stdout_len,
               (const char *)cws_op_exec_result(op)->stdout_data);
    else
        fprintf(stderr, "[second] exec: %s (%s)\n", err.message, cws_errcode_name(err.code));
    cws_op_free(op);

    /* Closing the session stops its sandboxes and waits until they have ended. */
    const char *session = cws_client_session(c);
    char *name = session ? strdup(session) : NULL;
    int rc = name ? cws_session_close(c, name, false, &op, &err) : -CWS_E_NOMEM;
    if (rc == 0 && (rc = cws_op_wait(op, WAIT_MS, &err)) == 0)
        printf("[second] closed session %s: %llu sandbox(es) stopped\n", name,
               (unsigned long long)cws_op_batch_result(op)->count);
    cws_op_free(op);

    /* The backend's view (fresh), not the daemon's cache. */
    if (rc == 0)
        rc = cws_sandbox_get(c, id, true, &op, &err);
    if (rc == 0 && (rc = cws_op_wait(op, WAIT_MS, &err)) == 0) {
        enum cws_sandbox_state st = cws_op_sandbox(op)->state;
        printf("[second] %s is now %s\n", id, cws_sandbox_state_name(st));
        if (!cws_sandbox_state_is_terminal(st))
            rc = cws_error_set(&err, CWS_E_UNKNOWN, "the sandbox still runs");
    }
    if (rc < 0)
        fprintf(stderr, "[second] close: %s (%s)\n", err.message, cws_errcode_name(err.code));
    cws_op_free(op);
    free(name);
    free(id);
    cws_client_free(c);
    return r < 0 || rc < 0 ? 1 : 0;
}

/* Run this program again as `role`, in the session, and wait for it. */
static int run_child(const char *role, const char *session)
{
    int status = 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("CWSANDBOX_SESSION", session, 1);
        execl("/proc/self/exe", "shared_session", role, (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv)
{
    char session[64];

    if (argc > 1 && strcmp(argv[1], "--first") == 0)
        return first();
    if (argc > 1 && strcmp(argv[1], "--second") == 0)
        return second();
    if (argc > 1) {
        printf("usage: %s\nShare a session between two processes.\n", argv[0]);
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    snprintf(session, sizeof(session), "example-shared-%d", (int)getpid());
    if (run_child("--first", session) != 0)
        return 1;
    return run_child("--second", session);
}
