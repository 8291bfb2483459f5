/* Streaming exec with stdin: feed lines to a command as it runs and print its stdout and
 * stderr as they come (callback), then read another command's output with the pull reader.
 *
 *   ./streaming_exec */
#include <cwsandbox/cwsandbox.h>
#include <stdio.h>
#include <string.h>

#define WAIT_MS 120000

/* Called from inside cws_op_wait() for every chunk of output. */
static void print_output(cws_op *op, int fd, const void *data, size_t len, void *userdata)
{
    (void)op;
    (void)userdata;
    printf("[%s] %.*s", fd == CWS_STDOUT ? "stdout" : "stderr", (int)len, (const char *)data);
    fflush(stdout);
}

/* A command that answers each line of stdin on both streams. */
static int echo_lines(cws_client *c, const char *id, struct cws_error *err)
{
    const char *argv[] = {"sh", "-c",
                          "while read line; do echo \"got: $line\"; echo \"len: ${#line}\" >&2; "
                          "done",
                          NULL};
    const char *lines[] = {"first\n", "second line\n", "third\n"};
    struct cws_exec_options o = {.with_stdin = true, .on_output = print_output};
    cws_op *op = NULL;

    int r = cws_exec(c, id, argv, &o, &op, err);
    /* Writes never block: what is written before the command runs is sent once it does. */
    for (size_t i = 0; r == 0 && i < sizeof(lines) / sizeof(lines[0]); i++)
        r = cws_exec_write(op, lines[i], strlen(lines[i]), err);
    if (r == 0)
        r = cws_exec_close_stdin(op, err);
    if (r == 0)
        r = cws_op_wait(op, WAIT_MS, err);
    if (r == 0)
        printf("exit code %d\n", cws_op_exec_result(op)->exit_code);
    cws_op_free(op);
    return r;
}

/* The pull reader: cws_exec_read() blocks until output comes, returns 0 at the end. */
static int count_up(cws_client *c, const char *id, struct cws_error *err)
{
    const char *argv[] = {"sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done", NULL};
    struct cws_exec_options o = {.stream = true};
    cws_op *op = NULL;
    char buf[256];
    ssize_t n = 0;

    int r = cws_exec(c, id, argv, &o, &op, err);
    while (r == 0 && (n = cws_exec_read(op, CWS_STDOUT, buf, sizeof(buf), WAIT_MS, err)) > 0)
        printf("read %zd bytes: %.*s", n, (int)n, buf);
    if (r == 0 && n < 0)
        r = (int)n;
    if (r == 0)
        r = cws_op_wait(op, WAIT_MS, err);
    cws_op_free(op);
    return r;
}

int main(int argc, char **argv)
{
    struct cws_error err;
    cws_client *c = NULL;
    struct cws_sandbox_info *sb = NULL;
    cws_op *stop = NULL;

    if (argc > 1) {
        printf("usage: %s\nStream a command's output while feeding its stdin.\n", argv[0]);
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    int r = cws_client_connect(NULL, &c, &err);
    if (r == 0)
        r = cws_sandbox_run(c, NULL, NULL, &sb, &err);
    if (r == 0)
        r = echo_lines(c, sb->id, &err);
    if (r == 0)
        r = count_up(c, sb->id, &err);
    if (sb && cws_sandbox_stop(c, sb->id, NULL, &stop, NULL) == 0)
        cws_op_wait(stop, WAIT_MS, NULL);
    if (r < 0)
        fprintf(stderr, "streaming_exec: %s (%s)\n", err.message, cws_errcode_name(err.code));
    cws_op_free(stop);
    cws_sandbox_info_free(sb);
    cws_client_free(c);
    return r < 0 ? 1 : 0;
}
