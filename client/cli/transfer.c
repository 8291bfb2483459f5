/* Copies between a sandbox and here (cp, files read, files write): streamed in chunks in both
 * directions, so memory stays bounded whatever the size; a local file is replaced only once
 * the whole download has arrived; a progress bar for large transfers on a terminal. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* The daemon's limit for one file (docs/protocol.md). */
#define MAX_FILE_BYTES (1024ull * 1024 * 1024)
#define TICK_MS        100

/* ---- endpoints ---- */

int cli_endpoint_parse(struct cli *cli, const char *arg, struct cli_endpoint *ret)
{
    const char *colon = strchr(arg, ':');
    memset(ret, 0, sizeof(*ret));
    if (strcmp(arg, "-") == 0) {
        ret->std = true;
        ret->path = "-";
        return 0;
    }
    /* "ID:/path"; a local name with a colon can be written ./a:b. */
    if (!colon || colon == arg || memchr(arg, '/', (size_t)(colon - arg))) {
        ret->path = arg;
        return 0;
    }
    if (colon[1] != '/') {
        cli_usage_error(cli, "the path in the sandbox must be absolute: '%.*s:/%s'",
                        (int)(colon - arg), arg, colon + 1);
        return -CWS_E_INVALID_ARGUMENT;
    }
    ret->id = strndup(arg, (size_t)(colon - arg));
    if (!ret->id)
        return -CWS_E_NOMEM;
    ret->path = colon + 1;
    return 0;
}

void cli_endpoint_clear(struct cli_endpoint *e)
{
    if (!e)
        return;
    free(e->id);
    e->id = NULL;
}

/* The last component of a path ("" for "/"). */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* dir + "/" + name into a new string (the caller frees it); NULL when out of memory. */
static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    bool slash = n > 0 && dir[n - 1] == '/';
    char *s = malloc(n + strlen(name) + 2);
    if (s)
        sprintf(s, "%s%s%s", dir, slash ? "" : "/", name);
    return s;
}

/* ---- download ---- */

struct download {
    struct cli *cli;
    int fd;
    uint64_t bytes;
    bool write_failed;
    int write_errno;
    cws_op *read_op;
    cws_op *size_op; /* `stat` of the file, for the bar's total; NULL when none */
    struct cli_progress progress;
};

static int on_chunk(cws_op *op, const void *data, size_t len, uint64_t offset, void *ud)
{
    struct download *d = ud;
    if (cli_write_all(d->cli, d->fd, data, len) < 0) {
        d->write_failed = true;
        d->write_errno = errno;
        return -CWS_E_IO;
    }
    d->bytes += len;
    cli_progress_update(&d->progress, d->bytes);
    return 0;
}

static bool download_done(void *ud)
{
    struct download *d = ud;
    return cws_op_done(d->read_op);
}

/* Once the `stat` answered, the bar knows the total. */
static void download_tick(void *ud)
{
    struct download *d = ud;
    if (d->size_op && cws_op_done(d->size_op) && d->progress.total == 0) {
        const struct cws_exec_result *res = cws_op_exec_result(d->size_op);
        if (res && res->exit_code == 0 && res->stdout_len > 0 && res->stdout_len < 32) {
            char num[32];
            memcpy(num, res->stdout_data, res->stdout_len);
            num[res->stdout_len] = '\0';
            cli_progress_set_total(&d->progress, strtoull(num, NULL, 10));
        }
    }
    cli_progress_update(&d->progress, d->bytes);
}

/* Ask the file's size alongside the read, only to draw the bar: an image without stat(1)
 * just gets a bar without a total. */
static void start_size_probe(struct download *d, const char *id, const char *path)
{
    const char *argv[] = {"stat", "-L", "-c", "%s", "--", path, NULL};
    if (d->progress.enabled)
        cws_exec(d->cli->client, id, argv, NULL, &d->size_op, NULL);
}

static int finish_download(struct download *d, const char *what, int r, struct cws_error *err)
{
    if (d->write_failed) {
        if (d->cli->stdout_closed)
            return cws_error_set(err, CWS_E_CANCELLED, "stdout was closed");
        return cws_error_set(err, CWS_E_IO, "cannot write %s: %s", what, strerror(d->write_errno));
    }
    if (r < 0) {
        cli_cancel_op(d->cli, d->read_op);
        return r;
    }
    return cws_op_wait(d->read_op, 0, err);
}

/* Download id:path into fd; what names fd in messages. */
static int download_to_fd(struct cli *cli, const char *id, const char *path, int fd,
                          const char *what, const struct cli_copy_options *co, uint64_t *ret_bytes,
                          struct cws_error *err)
{
    struct download d = {.cli = cli, .fd = fd};
    cli_progress_init(&d.progress, base_name(path), 0, !co->quiet);
    int r = cws_file_read_stream(cli->client, id, path, on_chunk, &d, &d.read_op, err);
    if (r == 0) {
        start_size_probe(&d, id, path);
        struct cli_loop_hooks h = {.done = download_done,
                                   .tick = download_tick,
                                   .tick_ms = TICK_MS,
                                   .watch_stdout = fd == STDOUT_FILENO,
                                   .ud = &d};
        r = finish_download(&d, what, cli_loop(cli, &h, co->timeout_ms, err), err);
    }
    cli_progress_finish(&d.progress);
    cws_op_free(d.read_op);
    cws_op_free(d.size_op);
    if (r == 0 && ret_bytes)
        *ret_bytes = d.bytes;
    return r;
}

/* The local file a download goes to: dst, or dst/NAME when dst is a directory. The caller
 * frees *ret_path. */
static int local_target(const char *dst, const char *remote_path, char **ret_path,
                        struct cws_error *err)
{
    struct stat st;
    bool is_dir = stat(dst, &st) == 0 && S_ISDIR(st.st_mode);
    const char *name = base_name(remote_path);
    if (is_dir && !*name)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "'%s' names no file", remote_path);
    *ret_path = is_dir ? join_path(dst, name) : strdup(dst);
    return *ret_path ? 0 : cws_error_set(err, CWS_E_NOMEM, NULL);
}

/* A temporary file next to path, to be renamed over it. The caller frees *ret_tmp. */
static int open_temp_beside(const char *path, char **ret_tmp, int *ret_fd, struct cws_error *err)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    snprintf(tmp, n, "%s.cwsandbox-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return cws_error_set(err, CWS_E_IO, "cannot create %s: %s", path, strerror(e));
    }
    *ret_tmp = tmp;
    *ret_fd = fd;
    return 0;
}

/* The mode a new file gets from the umask (mkstemp makes 0600). */
static mode_t default_file_mode(void)
{
    mode_t mask = umask(0);
    umask(mask);
    return 0666 & ~mask;
}

/* Download into a regular file: a temporary beside it, renamed over it once complete. A
 * target that exists and is not a regular file (/dev/null, a FIFO) is written directly. */
static int download_to_path(struct cli *cli, const char *id, const char *remote, const char *dst,
                            const struct cli_copy_options *co, uint64_t *ret_bytes,
                            struct cws_error *err)
{
    struct stat st;
    char *target = NULL, *tmp = NULL;
    int fd = -1;
    int r = local_target(dst, remote, &target, err);
    if (r < 0)
        return r;
    bool exists = stat(target, &st) == 0;
    if (exists && !S_ISREG(st.st_mode)) {
        fd = open(target, O_WRONLY | O_TRUNC | O_CLOEXEC);
        r = fd < 0 ? cws_error_set(err, CWS_E_IO, "cannot open %s: %s", target, strerror(errno))
                   : download_to_fd(cli, id, remote, fd, target, co, ret_bytes, err);
        goto out;
    }
    r = open_temp_beside(target, &tmp, &fd, err);
    if (r == 0)
        r = download_to_fd(cli, id, remote, fd, target, co, ret_bytes, err);
    if (r == 0 && fchmod(fd, exists ? st.st_mode & 07777 : default_file_mode()) < 0)
        r = cws_error_set(err, CWS_E_IO, "cannot set the mode of %s: %s", target, strerror(errno));
    if (r == 0 && rename(tmp, target) < 0)
        r = cws_error_set(err, CWS_E_IO, "cannot replace %s: %s", target, strerror(errno));
    if (r < 0 && tmp)
        unlink(tmp);
out:
    if (fd >= 0)
        close(fd);
    free(tmp);
    free(target);
    return r;
}

/* ---- upload ---- */

struct upload {
    cws_op *op;
    int fd;      /* the source, when streamed from a file */
    off_t start; /* its offset when the upload began */
    struct cli_progress progress;
};

static bool upload_done(void *ud)
{
    struct upload *u = ud;
    return cws_op_done(u->op);
}

/* The library reads the file as the socket drains: its offset is the progress. */
static void upload_tick(void *ud)
{
    struct upload *u = ud;
    off_t pos = u->fd >= 0 ? lseek(u->fd, 0, SEEK_CUR) : -1;
    if (pos >= u->start)
        cli_progress_update(&u->progress, (uint64_t)(pos - u->start));
}

static int wait_upload(struct cli *cli, struct upload *u, int timeout_ms, uint64_t *ret_bytes,
                       struct cws_error *err)
{
    struct cli_loop_hooks h = {
        .done = upload_done, .tick = upload_tick, .tick_ms = TICK_MS, .ud = u};
    int r = cli_loop(cli, &h, timeout_ms, err);
    cli_progress_finish(&u->progress);
    if (r < 0) {
        cli_cancel_op(cli, u->op);
        return r;
    }
    r = cws_op_wait(u->op, 0, err);
    if (r == 0 && ret_bytes)
        *ret_bytes = (uint64_t)cws_op_file_size(u->op);
    return r;
}

/* Read all of fd (a pipe, a terminal) into a new buffer; the caller frees *ret_data. */
static int slurp(int fd, const char *what, char **ret_data, size_t *ret_len, struct cws_error *err)
{
    size_t len = 0, cap = 1 << 16;
    char *data = malloc(cap);
    for (;;) {
        if (!data)
            return cws_error_set(err, CWS_E_NOMEM, NULL);
        if (len == cap) {
            char *bigger = cap >= MAX_FILE_BYTES ? NULL : realloc(data, cap * 2);
            if (!bigger) {
                free(data);
                return cap >= MAX_FILE_BYTES
                           ? cws_error_set(err, CWS_E_OUT_OF_RANGE,
                                           "%s is larger than the 1 GiB a file may have", what)
                           : cws_error_set(err, CWS_E_NOMEM, NULL);
            }
            data = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, data + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(data);
            return cws_error_set(err, CWS_E_IO, "cannot read %s: %s", what, strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *ret_data = data;
    *ret_len = len;
    return 0;
}

/* Upload what fd holds to id:path: a regular file is streamed from its current offset, else
 * (a pipe) it is read into memory first. */
static int upload_from_fd(struct cli *cli, int fd, const char *what, const char *id,
                          const char *path, const struct cli_copy_options *co, uint64_t *ret_bytes,
                          struct cws_error *err)
{
    struct stat st;
    struct upload u = {.fd = -1};
    int r;
    if (fstat(fd, &st) < 0)
        return cws_error_set(err, CWS_E_IO, "cannot stat %s: %s", what, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "%s is a directory (to copy a tree: tar c DIR | %s exec -i ID "
                             "-- tar x -C DEST)",
                             what, CLI_PROG);
    if (S_ISREG(st.st_mode)) {
        u.fd = fd;
        u.start = lseek(fd, 0, SEEK_CUR);
        if (u.start < 0)
            u.start = 0;
        cli_progress_init(&u.progress, base_name(what), (uint64_t)(st.st_size - u.start),
                          !co->quiet);
        cli_progress_update(&u.progress, 0); /* at once: a fast upload may never tick */
        r = cws_file_write_from_fd(cli->client, id, path, fd, &u.op, err);
    } else {
        char *data = NULL;
        size_t len = 0;
        r = slurp(fd, what, &data, &len, err);
        cli_progress_init(&u.progress, base_name(what), len, false);
        if (r == 0)
            r = cws_file_write(cli->client, id, path, data, len, &u.op, err);
        free(data);
    }
    if (r == 0)
        r = wait_upload(cli, &u, co->timeout_ms, ret_bytes, err);
    cws_op_free(u.op);
    return r;
}

/* The remote path an upload goes to: path, or path + NAME when it ends with '/'. The caller
 * frees *ret_path. */
static int remote_target(const struct cli_endpoint *src, const char *path, char **ret_path,
                         struct cws_error *err)
{
    size_t n = strlen(path);
    if (n == 0 || path[n - 1] != '/') {
        *ret_path = strdup(path);
    } else {
        const char *name = src->std ? "" : base_name(src->path);
        if (!*name)
            return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                                 "'%s' is a directory: give the file's full path", path);
        *ret_path = join_path(path, name);
    }
    return *ret_path ? 0 : cws_error_set(err, CWS_E_NOMEM, NULL);
}

static int upload(struct cli *cli, const struct cli_endpoint *src, const struct cli_endpoint *dst,
                  const struct cli_copy_options *co, uint64_t *ret_bytes, struct cws_error *err)
{
    char *target = NULL;
    int fd = STDIN_FILENO;
    int r = remote_target(src, dst->path, &target, err);
    if (r == 0 && !src->std) {
        fd = open(src->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            r = cws_error_set(err, CWS_E_IO, "cannot open %s: %s", src->path, strerror(errno));
    }
    if (r == 0)
        r = upload_from_fd(cli, fd, src->std ? "stdin" : src->path, dst->id, target, co, ret_bytes,
                           err);
    if (fd > STDIN_FILENO)
        close(fd);
    free(target);
    return r;
}

/* Between two sandboxes: through an anonymous temporary file here. */
static int relay(struct cli *cli, const struct cli_endpoint *src, const struct cli_endpoint *dst,
                 const struct cli_copy_options *co, uint64_t *ret_bytes, struct cws_error *err)
{
    const char *dir = getenv("TMPDIR");
    char *target = NULL;
    int fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "cannot create a temporary file: %s", strerror(errno));
    int r = remote_target(src, dst->path, &target, err);
    if (r == 0)
        r = download_to_fd(cli, src->id, src->path, fd, "a temporary file", co, NULL, err);
    if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
        r = cws_error_set(err, CWS_E_IO, "cannot rewind the temporary file: %s", strerror(errno));
    if (r == 0)
        r = upload_from_fd(cli, fd, src->path, dst->id, target, co, ret_bytes, err);
    close(fd);
    free(target);
    return r;
}

int cli_copy(struct cli *cli, const struct cli_endpoint *src, const struct cli_endpoint *dst,
             const struct cli_copy_options *opts, uint64_t *ret_bytes, struct cws_error *err)
{
    static const struct cli_copy_options defaults = {.timeout_ms = -1};
    const struct cli_copy_options *co = opts ? opts : &defaults;
    if (src->id && dst->id)
        return relay(cli, src, dst, co, ret_bytes, err);
    if (dst->id)
        return upload(cli, src, dst, co, ret_bytes, err);
    if (!src->id)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                             "one side of the copy must be in a sandbox (SANDBOX_ID:/path)");
    if (dst->std)
        return download_to_fd(cli, src->id, src->path, STDOUT_FILENO, "stdout", co, ret_bytes, err);
    return download_to_path(cli, src->id, src->path, dst->path, co, ret_bytes, err);
}
