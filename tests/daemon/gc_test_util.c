/* Test helpers for the gRPC client: peer processes, a call recorder, loop runners. */
#include "gc_test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef GCT_SOURCE_DIR
#define GCT_SOURCE_DIR "."
#endif

static int64_t now_ms(void)
{
    return cws_gc_now_ms();
}

static int read_ready(int fd, int timeout_ms, struct gct_peer *p)
{
    char line[512];
    size_t len = 0;
    int64_t end = now_ms() + timeout_ms;

    while (len + 1 < sizeof(line)) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int left = (int)(end - now_ms());
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return -1;
        n = read(fd, line + len, 1);
        if (n <= 0)
            return -1;
        if (line[len] == '\n') {
            line[len] = '\0';
            break;
        }
        len++;
    }
    line[len < sizeof(line) ? len : sizeof(line) - 1] = '\0';
    if (sscanf(line, "READY unix=%255s tcp=%127s", p->unix_path, p->tcp) < 1) {
        /* "unix=" may be empty, which %s does not match */
        if (sscanf(line, "READY unix= tcp=%127s", p->tcp) != 1)
            return -1;
        p->unix_path[0] = '\0';
    }
    if (strncmp(p->unix_path, "tcp=", 4) == 0) { /* empty unix= then tcp= */
        snprintf(p->tcp, sizeof(p->tcp), "%s", p->unix_path + 4);
        p->unix_path[0] = '\0';
    }
    snprintf(p->unix_url, sizeof(p->unix_url), "unix:%s", p->unix_path);
    snprintf(p->http_url, sizeof(p->http_url), "http://%s", p->tcp);
    return 0;
}

int gct_peer_start(char *const argv[], int timeout_ms, struct gct_peer *ret)
{
    int fds[2];
    pid_t pid;

    memset(ret, 0, sizeof(*ret));
    if (pipe(fds) < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        setpgid(0, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    ret->pid = pid;
    if (read_ready(fds[0], timeout_ms, ret) < 0) {
        fprintf(stderr, "peer %s did not print READY\n", argv[0]);
        close(fds[0]);
        gct_peer_stop(ret);
        return -1;
    }
    /* Keep the pipe's read end open in a way that never blocks the peer: drain it in the
     * background is not needed, peers print READY only. */
    close(fds[0]);
    return 0;
}

void gct_peer_stop(struct gct_peer *p)
{
    int status;

    if (p->pid <= 0)
        return;
    kill(p->pid, SIGCONT);
    kill(p->pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            return;
        }
        usleep(10000);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->pid = 0;
}

int gct_python_peer_start(const char *const *extra, struct gct_peer *ret)
{
    static int seq;
    char sock[128];
    char script[512];
    char *argv[24];
    int n = 0;

    snprintf(sock, sizeof(sock), "/tmp/gct-peer-%d-%d.sock", (int)getpid(), ++seq);
    snprintf(script, sizeof(script), "%s/grpc_client_peer.py", GCT_SOURCE_DIR);
    argv[n++] = "/usr/bin/python3";
    argv[n++] = script;
    argv[n++] = "--unix";
    argv[n++] = sock;
    for (; extra && *extra && n < 22; extra++)
        argv[n++] = (char *)*extra;
    argv[n] = NULL;
    return gct_peer_start(argv, 20000, ret);
}

int gct_python_script_start(const char *script, const char *const *args, struct gct_peer *ret)
{
    char path[512];
    char *argv[24];
    int n = 0;

    snprintf(path, sizeof(path), "%s/%s", GCT_SOURCE_DIR, script);
    argv[n++] = "/usr/bin/python3";
    argv[n++] = path;
    for (; args && *args && n < 22; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    return gct_peer_start(argv, 20000, ret);
}

const char *gct_source_dir(void)
{
    return GCT_SOURCE_DIR;
}

/* ---- recorder --------------------------------------------------------------------------- */

void gct_rec_init(struct gct_rec *r)
{
    memset(r, 0, sizeof(*r));
    r->retry_delay_ms = -1;
}

void gct_rec_clear(struct gct_rec *r)
{
    free(r->last);
    free(r->first);
    r->last = r->first = NULL;
}

static uint8_t *copy_bytes(const uint8_t *d, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);

    if (p && len)
        memcpy(p, d, len);
    return p;
}

static void rec_headers(struct cws_gc_call *call, const struct cws_gc_header *h, size_t n, void *ud)
{
    struct gct_rec *r = ud;
    size_t off = 0;

    r->got_headers = true;
    for (size_t i = 0; i < n && off < sizeof(r->headers); i++) {
        int w =
            snprintf(r->headers + off, sizeof(r->headers) - off, "%s=%s\n", h[i].name, h[i].value);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

static void rec_message(struct cws_gc_call *call, const uint8_t *data, size_t len, void *ud)
{
    struct gct_rec *r = ud;

    if (r->n_messages == 0) {
        r->first = copy_bytes(data, len);
        r->first_len = len;
    }
    r->n_messages++;
    r->bytes += len;
    free(r->last);
    r->last = copy_bytes(data, len);
    r->last_len = len;
    if (r->pause_after_first && r->n_messages == 1)
        cws_gc_call_pause_recv(call, true);
    if (r->cancel_on_message) {
        cws_gc_call_cancel(call);
        r->call = NULL;
        r->done = true;
        r->code = CWS_E_CANCELLED;
    }
}

static void rec_writable(struct cws_gc_call *call, void *ud)
{
    struct gct_rec *r = ud;

    r->writable++;
}

static void rec_done(struct cws_gc_call *call, const struct cws_gc_result *res, void *ud)
{
    struct gct_rec *r = ud;
    const struct cws_grpc_status *st = res->status;
    const char *fp;

    r->done = true;
    r->done_ms = now_ms();
    r->call = NULL;
    r->code = res->error->code;
    r->grpc_code = st->code;
    r->retryable = res->error->retryable;
    snprintf(r->message, sizeof(r->message), "%s", res->error->message);
    snprintf(r->reason, sizeof(r->reason), "%s", st->reason ? st->reason : "");
    snprintf(r->domain, sizeof(r->domain), "%s", st->domain ? st->domain : "");
    fp = cws_grpc_status_metadata_get(st, "filepath");
    snprintf(r->md_filepath, sizeof(r->md_filepath), "%s", fp ? fp : "");
    r->retry_delay_ms = st->retry_delay_ms;
    r->n_violations = st->n_violations;
    if (st->n_violations > 0)
        snprintf(r->violation0, sizeof(r->violation0), "%s: %s", st->violations[0].field,
                 st->violations[0].description);
    r->local = res->local;
    r->trailers_only = res->trailers_only;
}

const struct cws_gc_handlers gct_handlers = {
    .on_headers = rec_headers,
    .on_message = rec_message,
    .on_writable = rec_writable,
    .on_done = rec_done,
};

const char *gct_rec_header(const struct gct_rec *r, const char *name, char *buf, size_t size)
{
    size_t nlen = strlen(name);
    const char *p = r->headers;

    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);

        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            snprintf(buf, size, "%.*s", (int)(len - nlen - 1), p + nlen + 1);
            return buf;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    return NULL;
}

/* ---- loop ------------------------------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

bool gct_run_until(struct event_base *base, const bool *flag, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 20000};

    event_add(tick, &tv); /* the loop wakes up to check the clock even when idle */
    while (!*flag && now_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    return *flag;
}

bool gct_run_until_all(struct event_base *base, struct gct_rec *recs, size_t count, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 20000};
    size_t done = 0;

    event_add(tick, &tv);
    while (now_ms() < end) {
        done = 0;
        for (size_t i = 0; i < count; i++)
            done += recs[i].done;
        if (done == count)
            break;
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(tick);
    return done == count;
}

void gct_run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    /* No tick: CPU measured over this run is the client's alone. */
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

double gct_cpu_ms(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000.0 +
           (double)ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000.0;
}

double gct_cpu_ms_of(pid_t pid)
{
    char path[64];
    unsigned long ut = 0, st = 0;
    FILE *f;
    int ok;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    /* fields 14 and 15: utime, stime in clock ticks; the comm field has no spaces here */
    ok = fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    fclose(f);
    if (ok != 2)
        return -1;
    return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}
