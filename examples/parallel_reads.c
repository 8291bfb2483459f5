/* Parallel file transfers: write N files into a sandbox, then read them all back at once. All
 * transfers share one connection; cws_op_wait_all() collects them.
 *
 *   ./parallel_reads [N]      (N files, default 10) */
#include <cwsandbox/cwsandbox.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILES 100
#define WAIT_MS   120000

/* Start all writes, then all reads; the ops of each batch run at the same time. */
static int transfer(cws_client *c, const char *id, int n, struct cws_error *err)
{
    cws_op *ops[MAX_FILES] = {NULL};
    char path[64], text[64];
    int r = 0;

    for (int i = 0; i < n && r == 0; i++) {
        snprintf(path, sizeof(path), "/tmp/parallel-%d.txt", i);
        snprintf(text, sizeof(text), "file number %d\n", i);
        r = cws_file_write(c, id, path, text, strlen(text), &ops[i], err);
    }
    if (r == 0)
        r = cws_op_wait_all(ops, (size_t)n, WAIT_MS, err);
    for (int i = 0; i < n; i++) {
        if (r == 0 && cws_op_error(ops[i]))
            r = (*err = *cws_op_error(ops[i]), -(int)err->code);
        cws_op_free(ops[i]);
        ops[i] = NULL;
    }

    for (int i = 0; i < n && r == 0; i++) {
        snprintf(path, sizeof(path), "/tmp/parallel-%d.txt", i);
        r = cws_file_read(c, id, path, &ops[i], err);
    }
    if (r == 0)
        r = cws_op_wait_all(ops, (size_t)n, WAIT_MS, err);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        const char *data = r == 0 ? cws_op_file_data(ops[i], &len) : NULL;
        if (data)
            printf("/tmp/parallel-%d.txt: %.*s", i, (int)len, data);
        else if (r == 0)
            r = (*err = *cws_op_error(ops[i]), -(int)err->code);
        cws_op_free(ops[i]);
    }
    return r;
}

int main(int argc, char **argv)
{
    struct cws_error err;
    cws_client *c = NULL;
    struct cws_sandbox_info *sb = NULL;
    cws_op *stop = NULL;
    int n = argc > 1 ? atoi(argv[1]) : 10;

    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || n < 1 || n > MAX_FILES)) {
        printf("usage: %s [N]\nWrite N (1..%d) files into a sandbox, then read them back in "
               "parallel.\n",
               argv[0], MAX_FILES);
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    int r = cws_client_connect(NULL, &c, &err);
    if (r == 0)
        r = cws_sandbox_run(c, NULL, NULL, &sb, &err);
    if (r == 0)
        r = transfer(c, sb->id, n, &err);
    if (sb && cws_sandbox_stop(c, sb->id, NULL, &stop, NULL) == 0)
        cws_op_wait(stop, WAIT_MS, NULL);
    if (r < 0)
        fprintf(stderr, "parallel_reads: %s (%s)\n", err.message, cws_errcode_name(err.code));
    cws_op_free(stop);
    cws_sandbox_info_free(sb);
    cws_client_free(c);
    return r < 0 ? 1 : 0;
}
