/* bench_daemon: what cwsandboxd costs, measured side by side with cwsandbox-local in one run
 * (the daemon issue's acceptance figures). The real daemon runs in a private temporary tree
 * (tests/daemon/harness.c) with the real cwsandbox-local behind it; the "direct" paths call
 * that backend's Unix socket with the daemon's own gRPC client library (cws_grpc_client), so
 * both paths are C clients on the same machine.
 *
 *  (a) sandbox.get {fresh: true} through the daemon vs GetSandbox straight to the backend,
 *      interleaved call by call on one sandbox: p50/p99 and the latency the daemon adds
 *  (b) cached sandbox.get from 32 connections (one thread each), each keeping a window of
 *      requests pipelined: calls/s in total, and the daemon's CPU per call
 *  (c) file.read {streamed: true} of a 256 MiB file (file.chunk notifications) vs what the
 *      daemon itself does for a file that large, straight to the backend: the ReadFile probe
 *      (FILE_TOO_LARGE with size_bytes) then StreamExec of `cat`; rounds interleaved, byte
 *      count and SHA-256 checked against sha256sum run in the sandbox
 *  (d) a fresh daemon's VmRSS idle, and with 1000 tracked sandboxes (sandbox.create wait:none,
 *      many in flight) and 100 connected clients; then every sandbox is stopped (grace 0,
 *      many in flight) and checked terminal with sandbox.list, and no process of the temporary
 *      tree may be left behind
 *
 * It prints a table of figures, targets and whether each is met. The exit status is 0 even
 * when a target is missed (this is a benchmark); 1 only on errors (a failed call, a wrong byte
 * count or checksum, a sandbox not stopped, a leftover process).
 *
 *   build-bench/tests/bench/bench_daemon [--only abcd] [--runs N] [--seconds S] ...  (--help)
 *
 * The daemon's log (it runs with --log-level debug) goes to a file named on error. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "grpc_client.h"
#include "bench_util.h"
#include "harness.h"
#include "log.h"
#include "rpc_encode.h"

#ifndef BENCH_CWSD_BIN
#define BENCH_CWSD_BIN "cwsandboxd"
#endif
#ifndef BENCH_LOCAL_BIN
#define BENCH_LOCAL_BIN "cwsandbox-local"
#endif

#define SERVICE       "/coreweave.sandbox.v1.SandboxService/"
#define TAG_MAIN      "cws-bench-daemon"
#define TAG_RSS       "cws-bench-daemon-rss"
#define BIG_PATH      "/tmp/cws-bench-big"
#define CALL_MS       60000
#define LONG_CALL_MS  600000
#define MIB           (1024.0 * 1024.0)
#define MAX_ROWS      48
#define LEFTOVER_WAIT 15000

/* The targets. */
#define TARGET_ADDED_US     50.0
#define TARGET_CALLS_S      50000.0
#define TARGET_FILE_RATIO   0.80
#define TARGET_IDLE_KIB     (4 * 1024)
#define TARGET_LOADED_KIB   (32 * 1024)
#define TARGET_SANDBOXES    1000
#define TARGET_CLIENTS      100
#define TARGET_TPUT_CLIENTS 32
#define TARGET_FILE_MIB     256

typedef Coreweave__Sandbox__V1__Sandbox Sandbox;
typedef Coreweave__Sandbox__V1__ExecStreamRequest ExecStreamRequest;
typedef Coreweave__Sandbox__V1__ExecStreamResponse ExecStreamResponse;

struct options {
    const char *only;
    long runs;         /* (a) samples per path */
    long warmup;       /* (a) unmeasured calls per path first */
    double seconds;    /* (b) measured seconds */
    long tput_clients; /* (b) connections */
    long window;       /* (b) requests in flight per connection */
    long file_mib;     /* (c) */
    long rounds;       /* (c) transfers per path */
    long sandboxes;    /* (d) */
    long rss_clients;  /* (d) */
    long in_flight;    /* (d) creates/stops in flight */
    bool keep_log;
};

struct row {
    char name[72];
    char value[40];
    char target[16];
    int met; /* 1 yes, 0 no, -1 no target (a figure that explains another) */
};

struct bench {
    struct options o;
    struct th_daemon d;
    bool daemon_up;
    struct th_conn conn; /* the main connection; owns the sandboxes it creates */
    char id[64];         /* (a)-(c) sandbox */
    char log_path[64];
    /* direct path */
    struct event_base *base;
    struct cws_gclient *gc;
    struct row rows[MAX_ROWS];
    int n_rows;
    int errors;
};

/* ---- small utilities ------------------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void fail(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct bench *b, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_daemon: ERROR: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    b->errors++;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_daemon: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void add_row(struct bench *b, const char *name, const char *target, int met, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

static void add_row(struct bench *b, const char *name, const char *target, int met, const char *fmt,
                    ...)
{
    if (b->n_rows == MAX_ROWS)
        return;
    struct row *r = &b->rows[b->n_rows++];
    va_list ap;
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->target, sizeof(r->target), "%s", target ? target : "");
    r->met = met;
    va_start(ap, fmt);
    vsnprintf(r->value, sizeof(r->value), fmt, ap);
    va_end(ap);
}

/* Nearest-rank percentile of a sorted array, in microseconds. */
static double pct_us(const int64_t *sorted, long n, double p)
{
    if (n <= 0)
        return 0;
    long i = (long)(p * (double)n + 0.999999) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return (double)sorted[i] / 1000.0;
}

static double mean_us(const int64_t *v, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++)
        s += (double)v[i];
    return n ? s / (double)n / 1000.0 : 0;
}

/* utime + stime of a process, in seconds. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    char *p = strrchr(line, ')');
    unsigned long long ut = 0, st = 0;
    /* after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Busy CPU time of the whole machine (all CPUs), in seconds. */
static double machine_busy_s(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

/* The child of parent whose comm is name, or 0. */
static pid_t child_named(pid_t parent, const char *name)
{
    DIR *dir = opendir("/proc");
    struct dirent *de;
    pid_t found = 0;
    while (dir && !found && (de = readdir(dir))) {
        char path[300], line[512];
        long pid = strtol(de->d_name, NULL, 10);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(line, 1, sizeof(line) - 1, f);
        fclose(f);
        line[len] = '\0';
        char *open = strchr(line, '('), *close = strrchr(line, ')');
        long ppid = 0;
        if (open && close && close > open && sscanf(close + 2, "%*c %ld", &ppid) == 1 &&
            ppid == parent && (size_t)(close - open - 1) == strlen(name) &&
            strncmp(open + 1, name, strlen(name)) == 0)
            found = (pid_t)pid;
    }
    if (dir)
        closedir(dir);
    return found;
}

/* A "VmHWM:"-style field of /proc/PID/status in KiB, or -1. */
static long status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    long kib = -1;
    size_t n = strlen(field);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kib = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* The split of a process's memory: anonymous and file-backed resident pages (VmRSS is their
 * sum, shared libraries included) and the proportional set size (shared pages divided among
 * the processes mapping them). */
static void add_mem_row(struct bench *b, const char *name, pid_t pid)
{
    char path[64], line[256];
    long pss = -1;
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "Pss:", 4) == 0)
            pss = strtol(line + 4, NULL, 10);
    if (f)
        fclose(f);
    add_row(b, name, NULL, -1, "%.2f / %.2f / %.2f MiB", (double)status_kib(pid, "RssAnon") / 1024,
            (double)status_kib(pid, "RssFile") / 1024, (double)pss / 1024);
}

/* ---- msgpack helpers ------------------------------------------------------------------- */

static const msgpack_object *mp_field(const msgpack_object *map, const char *key)
{
    size_t n = strlen(key);
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static bool mp_uint(const msgpack_object *o, uint64_t *ret)
{
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *ret = o->via.u64;
    return true;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* The header of the msgpack object at p: *head bytes of header, *body bytes of payload,
 * *items child objects. 1, 0 when more bytes are needed, -1 for a byte that starts nothing. */
static int mp_header(const uint8_t *p, size_t avail, size_t *head, size_t *body, uint64_t *items)
{
    static const uint8_t fixed[] = {
        [0xc0 - 0xc0] = 0, [0xc2 - 0xc0] = 0,  [0xc3 - 0xc0] = 0, [0xca - 0xc0] = 4,
        [0xcb - 0xc0] = 8, [0xcc - 0xc0] = 1,  [0xcd - 0xc0] = 2, [0xce - 0xc0] = 4,
        [0xcf - 0xc0] = 8, [0xd0 - 0xc0] = 1,  [0xd1 - 0xc0] = 2, [0xd2 - 0xc0] = 4,
        [0xd3 - 0xc0] = 8, [0xd4 - 0xc0] = 2,  [0xd5 - 0xc0] = 3, [0xd6 - 0xc0] = 5,
        [0xd7 - 0xc0] = 9, [0xd8 - 0xc0] = 17,
    };
    uint8_t c = p[0];
    *head = 1;
    *body = 0;
    *items = 0;
    if (c <= 0x7f || c >= 0xe0)
        return 1;
    if (c <= 0x8f) {
        *items = 2u * (c & 0x0f);
        return 1;
    }
    if (c <= 0x9f) {
        *items = c & 0x0f;
        return 1;
    }
    if (c <= 0xbf) {
        *body = c & 0x1f;
        return 1;
    }
    switch (c) {
    case 0xc1:
        return -1;
    case 0xc4:
    case 0xd9: /* bin8, str8 */
    case 0xc5:
    case 0xda: /* bin16, str16 */
    case 0xc6:
    case 0xdb: /* bin32, str32 */
    case 0xc7:
    case 0xc8:
    case 0xc9: { /* ext8/16/32 */
        size_t lb = (c == 0xc4 || c == 0xd9 || c == 0xc7)   ? 1
                    : (c == 0xc5 || c == 0xda || c == 0xc8) ? 2
                                                            : 4;
        size_t extra = c >= 0xc7 && c <= 0xc9;
        *head = 1 + lb + extra;
        if (avail < *head)
            return 0;
        *body = lb == 1 ? p[1] : lb == 2 ? ((size_t)p[1] << 8 | p[2]) : be32(p + 1);
        return 1;
    }
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf: { /* array16/32, map16/32 */
        size_t lb = (c == 0xdc || c == 0xde) ? 2 : 4;
        *head = 1 + lb;
        if (avail < *head)
            return 0;
        *items = lb == 2 ? ((uint64_t)p[1] << 8 | p[2]) : be32(p + 1);
        if (c >= 0xde)
            *items *= 2;
        return 1;
    }
    default:
        *body = fixed[c - 0xc0];
        return 1;
    }
}

/* The length of the whole msgpack object at p: 1, 0 when incomplete, -1 when malformed. */
static int mp_skip(const uint8_t *p, size_t avail, size_t *len, int depth)
{
    size_t head, body;
    uint64_t items;
    if (avail < 1)
        return 0;
    int r = mp_header(p, avail, &head, &body, &items);
    if (r <= 0)
        return r;
    if (depth > 32)
        return -1;
    size_t off = head + body;
    if (off > avail)
        return 0;
    for (uint64_t i = 0; i < items; i++) {
        size_t l;
        r = mp_skip(p + off, avail - off, &l, depth + 1);
        if (r <= 0)
            return r;
        off += l;
    }
    *len = off;
    return 1;
}

/* ---- daemon calls ---------------------------------------------------------------------- */

static bool ok_response(struct bench *b, const struct cws_rpc_msg *m, const char *what)
{
    char code[64], msg[600];
    if (!m) {
        fail(b, "%s: no answer", what);
        return false;
    }
    if (m->error) {
        fail(b, "%s: %s: %s", what, th_str(m->error, "code", code, sizeof(code)),
             th_str(m->error, "message", msg, sizeof(msg)));
        return false;
    }
    return true;
}

struct create_args {
    const char *tag;
    bool wait_running;
    bool deny_egress;
};

static void pack_create(msgpack_packer *pk, void *ud)
{
    const struct create_args *a = ud;
    msgpack_pack_map(pk, 3);
    cws_rpc_pack_kv_cstr(pk, "wait", a->wait_running ? "running" : "none");
    cws_rpc_pack_kv_int(pk, "timeout_s", 300);
    cws_rpc_pack_cstr(pk, "config");
    msgpack_pack_map(pk, 1 + a->deny_egress);
    cws_rpc_pack_cstr(pk, "tags");
    msgpack_pack_array(pk, 1);
    cws_rpc_pack_cstr(pk, a->tag);
    if (a->deny_egress) {
        cws_rpc_pack_cstr(pk, "network");
        msgpack_pack_map(pk, 1);
        cws_rpc_pack_kv_bool(pk, "deny_egress", true);
    }
}

struct get_args {
    const char *id;
    bool fresh;
};

static void pack_get(msgpack_packer *pk, void *ud)
{
    const struct get_args *a = ud;
    msgpack_pack_map(pk, 1 + a->fresh);
    cws_rpc_pack_kv_cstr(pk, "id", a->id);
    if (a->fresh)
        cws_rpc_pack_kv_bool(pk, "fresh", true);
}

static void pack_stop(msgpack_packer *pk, void *ud)
{
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_kv_cstr(pk, "id", ud);
    cws_rpc_pack_kv_int(pk, "grace_s", 0);
}

struct list_args {
    const char *tag;
    bool show_terminated;
};

static void pack_list(msgpack_packer *pk, void *ud)
{
    const struct list_args *a = ud;
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_cstr(pk, "tags");
    msgpack_pack_array(pk, 1);
    cws_rpc_pack_cstr(pk, a->tag);
    cws_rpc_pack_kv_bool(pk, "show_terminated", a->show_terminated);
}

struct exec_args {
    const char *id;
    const char *script;
};

static void pack_exec(msgpack_packer *pk, void *ud)
{
    const struct exec_args *a = ud;
    msgpack_pack_map(pk, 3);
    cws_rpc_pack_kv_cstr(pk, "id", a->id);
    cws_rpc_pack_cstr(pk, "argv");
    msgpack_pack_array(pk, 3);
    cws_rpc_pack_cstr(pk, "/bin/sh");
    cws_rpc_pack_cstr(pk, "-c");
    cws_rpc_pack_cstr(pk, a->script);
    cws_rpc_pack_kv_int(pk, "timeout_s", 600);
}

static void pack_read(msgpack_packer *pk, void *ud)
{
    msgpack_pack_map(pk, 3);
    cws_rpc_pack_kv_cstr(pk, "id", ud);
    cws_rpc_pack_kv_cstr(pk, "path", BIG_PATH);
    cws_rpc_pack_kv_bool(pk, "streamed", true);
}

static bool is_terminal(const char *state)
{
    return strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "terminated") == 0;
}

struct census {
    long total, running, terminal, creating, failed;
};

/* sandbox.list of a tag, counted by state; false on error. */
static bool list_census(struct bench *b, struct th_conn *c, const char *tag, bool show_terminated,
                        struct census *ret)
{
    struct list_args a = {tag, show_terminated};
    struct cws_rpc_msg *m = th_call(c, "sandbox.list", pack_list, &a, CALL_MS);
    memset(ret, 0, sizeof(*ret));
    bool ok = ok_response(b, m, "sandbox.list");
    const msgpack_object *list = ok ? mp_field(m->result, "sandboxes") : NULL;
    if (ok && (!list || list->type != MSGPACK_OBJECT_ARRAY)) {
        fail(b, "sandbox.list answered no sandboxes array");
        ok = false;
    }
    for (uint32_t i = 0; ok && i < list->via.array.size; i++) {
        char state[32];
        th_str(&list->via.array.ptr[i], "state", state, sizeof(state));
        ret->total++;
        ret->running += strcmp(state, "running") == 0;
        ret->terminal += is_terminal(state);
        ret->failed += strcmp(state, "failed") == 0;
        ret->creating += strcmp(state, "creating") == 0 || strcmp(state, "pending") == 0;
    }
    cws_rpc_msg_free(m);
    return ok;
}

/* ---- the daemon under test ------------------------------------------------------------- */

static int start_daemon(struct bench *b)
{
    char why[512];
    b->conn.fd = -1;
    if (bench_start_daemon(&b->d, NULL, "bench_daemon", b->log_path, sizeof(b->log_path), why,
                           sizeof(why)) < 0) {
        fail(b, "%s", why);
        return -1;
    }
    b->daemon_up = true;
    if (th_connect(&b->conn, b->d.socket) < 0 || !th_hello(&b->conn)) {
        fail(b, "cannot say hello to cwsandboxd at %s", b->d.socket);
        return -1;
    }
    return 0;
}

static void check_no_leftovers(struct bench *b, bool count_backend, const char *when)
{
    char first[256];
    int n = 0;
    for (int64_t until = bench_now_ns() + (int64_t)LEFTOVER_WAIT * 1000000; bench_now_ns() < until;
         sleep_ms(200))
        if ((n = bench_tree_processes(b->d.root, b->d.pid, count_backend, first, sizeof(first))) ==
            0)
            return;
    fail(b, "%d process(es) of the test tree still run %s, e.g. %s", n, when, first);
}

static void stop_daemon(struct bench *b)
{
    if (b->gc)
        cws_gclient_free(b->gc);
    b->gc = NULL;
    if (b->base)
        event_base_free(b->base);
    b->base = NULL;
    th_close(&b->conn);
    if (!b->daemon_up)
        return;
    char root[sizeof(b->d.root)];
    snprintf(root, sizeof(root), "%s", b->d.root);
    int status = th_daemon_stop(&b->d, 30000);
    b->daemon_up = false;
    if (status != 0)
        fail(b, "cwsandboxd did not exit cleanly on SIGTERM (status %d; log: %s)", status,
             b->log_path);
    /* Nothing of the tree may run once the daemon and its backend are gone. */
    snprintf(b->d.root, sizeof(b->d.root), "%s", root);
    b->d.pid = 0;
    check_no_leftovers(b, true, "after cwsandboxd stopped");
    b->d.root[0] = '\0';
}

/* Stop one sandbox of the main connection, grace 0. */
static void stop_sandbox(struct bench *b, const char *id)
{
    struct cws_rpc_msg *m = th_call(&b->conn, "sandbox.stop", pack_stop, (void *)id, CALL_MS);
    char state[32];
    if (ok_response(b, m, "sandbox.stop") &&
        !is_terminal(th_str(m->result, "state", state, sizeof(state))))
        fail(b, "sandbox.stop of %s answered state %s", id, state);
    cws_rpc_msg_free(m);
}

/* Safety net: stop every sandbox of a tag that is not terminal yet; how many there were. */
static long stop_tagged(struct bench *b, const char *tag)
{
    struct list_args a = {tag, false};
    struct cws_rpc_msg *m = th_call(&b->conn, "sandbox.list", pack_list, &a, CALL_MS);
    const msgpack_object *list = m && !m->error ? mp_field(m->result, "sandboxes") : NULL;
    long n = 0;
    for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size;
         i++) {
        char id[64], state[32];
        th_str(&list->via.array.ptr[i], "id", id, sizeof(id));
        if (!id[0] || is_terminal(th_str(&list->via.array.ptr[i], "state", state, sizeof(state))))
            continue;
        stop_sandbox(b, id);
        n++;
    }
    if (!list)
        fail(b, "sandbox.list failed: cannot check that every sandbox tagged %s stopped", tag);
    cws_rpc_msg_free(m);
    return n;
}

/* Every sandbox of the tag stopped: expected of them, checked with sandbox.list. */
static void check_all_stopped(struct bench *b, const char *tag, long expected, struct census *cs)
{
    long missed = stop_tagged(b, tag);
    if (missed)
        fail(b, "%ld sandbox(es) tagged %s were still not terminal; stopped them now", missed, tag);
    if (list_census(b, &b->conn, tag, true, cs) &&
        (cs->total != expected || cs->terminal != cs->total))
        fail(b, "sandbox.list shows %ld sandboxes tagged %s, %ld terminal; expected %ld", cs->total,
             tag, cs->terminal, expected);
}

/* ---- direct gRPC calls to cwsandbox-local ---------------------------------------------- */

static int direct_client(struct bench *b)
{
    char url[400];
    struct cws_error err;
    snprintf(url, sizeof(url), "unix:%s/run/cwsandbox/backend.sock", b->d.root);
    b->base = event_base_new();
    struct cws_gclient_config cfg = {.base = b->base, .url = url, .user_agent = "bench_daemon"};
    if (!b->base || cws_gclient_new(&cfg, &b->gc, &err) < 0) {
        fail(b, "cannot make a gRPC client for %s: %s", url, b->base ? err.message : "no base");
        return -1;
    }
    return 0;
}

/* What one direct unary call produced. */
struct unary_rec {
    const char *expect_id; /* GetSandbox: the answer must name this sandbox */
    bool done;
    bool answer_ok;
    enum cws_errcode code;
    char message[CWS_ERROR_MESSAGE_MAX];
    char reason[CWS_ERROR_REASON_MAX];
    uint64_t size_bytes; /* ErrorInfo metadata of a FILE_TOO_LARGE */
};

static void unary_message(struct cws_gc_call *call, const uint8_t *data, size_t len, void *ud)
{
    struct unary_rec *r = ud;
    (void)call;
    if (!r->expect_id)
        return;
    Sandbox *sb = coreweave__sandbox__v1__sandbox__unpack(NULL, len, data);
    r->answer_ok = sb && strcmp(sb->sandbox_id, r->expect_id) == 0;
    if (sb)
        coreweave__sandbox__v1__sandbox__free_unpacked(sb, NULL);
}

static void unary_done(struct cws_gc_call *call, const struct cws_gc_result *res, void *ud)
{
    struct unary_rec *r = ud;
    (void)call;
    r->done = true;
    r->code = res->error->code;
    snprintf(r->message, sizeof(r->message), "%s", res->error->message);
    snprintf(r->reason, sizeof(r->reason), "%s", res->error->reason);
    const char *size = cws_grpc_status_metadata_get(res->status, "size_bytes");
    r->size_bytes = size ? strtoull(size, NULL, 10) : 0;
}

static const struct cws_gc_handlers unary_handlers = {
    .on_message = unary_message,
    .on_done = unary_done,
};

/* One unary call, the loop run until it ends. */
static int direct_unary(struct bench *b, const char *method, const ProtobufCMessage *req,
                        struct unary_rec *r)
{
    uint8_t buf[512];
    char path[128];
    struct cws_error err;
    size_t len = protobuf_c_message_get_packed_size(req);
    if (len > sizeof(buf))
        return -1;
    protobuf_c_message_pack(req, buf);
    snprintf(path, sizeof(path), SERVICE "%s", method);
    /* The daemon's own options for backend calls: 300 s deadline, wait for ready. */
    struct cws_gc_call_opts opts = {.deadline_ms = cws_gc_now_ms() + 300000,
                                    .wait_for_ready = true};
    r->done = false;
    if (cws_gclient_unary(b->gc, path, &opts, buf, len, &unary_handlers, r, NULL, &err) < 0) {
        fail(b, "%s: %s", method, err.message);
        return -1;
    }
    while (!r->done)
        event_base_loop(b->base, EVLOOP_ONCE);
    return 0;
}

/* ---- (a) latency added by the daemon ---------------------------------------------------- */

static int64_t sample_daemon_get(struct bench *b, bool fresh)
{
    struct get_args a = {b->id, fresh};
    char id[64];
    int64_t t0 = bench_now_ns();
    struct cws_rpc_msg *m = th_call(&b->conn, "sandbox.get", pack_get, &a, CALL_MS);
    int64_t t = bench_now_ns() - t0;
    bool ok = ok_response(b, m, "sandbox.get");
    if (ok && strcmp(th_str(m->result, "id", id, sizeof(id)), b->id) != 0) {
        fail(b, "sandbox.get answered id '%s', not %s", id, b->id);
        ok = false;
    }
    cws_rpc_msg_free(m);
    return ok ? t : -1;
}

static int64_t sample_direct_get(struct bench *b)
{
    Coreweave__Sandbox__V1__GetSandboxRequest req =
        COREWEAVE__SANDBOX__V1__GET_SANDBOX_REQUEST__INIT;
    struct unary_rec r = {.expect_id = b->id};
    req.sandbox_id = b->id;
    int64_t t0 = bench_now_ns();
    if (direct_unary(b, "GetSandbox", &req.base, &r) < 0)
        return -1;
    int64_t t = bench_now_ns() - t0;
    if (r.code != CWS_E_OK || !r.answer_ok) {
        fail(b, "GetSandbox straight to the backend: %s: %s", cws_errcode_name(r.code),
             r.code == CWS_E_OK ? "the answer does not name the sandbox" : r.message);
        return -1;
    }
    return t;
}

static void phase_latency(struct bench *b)
{
    long n = b->o.runs, w = b->o.warmup;
    int64_t *via = calloc((size_t)n, sizeof(*via)), *direct = calloc((size_t)n, sizeof(*direct));
    int64_t *cached = calloc((size_t)n, sizeof(*cached)), *diff = calloc((size_t)n, sizeof(*diff));
    if (!via || !direct || !cached || !diff) {
        fail(b, "out of memory");
        goto out;
    }
    /* Interleaved call by call, the order alternating, so drift hits both paths alike. */
    for (long i = -w; i < n; i++) {
        int64_t tv, td, tc;
        if (i & 1) {
            tv = sample_daemon_get(b, true);
            td = sample_direct_get(b);
        } else {
            td = sample_direct_get(b);
            tv = sample_daemon_get(b, true);
        }
        tc = sample_daemon_get(b, false);
        if (tv < 0 || td < 0 || tc < 0)
            goto out;
        if (i >= 0) {
            via[i] = tv;
            direct[i] = td;
            cached[i] = tc;
            diff[i] = tv - td;
        }
    }
    qsort(via, (size_t)n, sizeof(*via), bench_cmp_i64);
    qsort(direct, (size_t)n, sizeof(*direct), bench_cmp_i64);
    qsort(cached, (size_t)n, sizeof(*cached), bench_cmp_i64);
    qsort(diff, (size_t)n, sizeof(*diff), bench_cmp_i64);
    double added50 = pct_us(via, n, 0.5) - pct_us(direct, n, 0.5);
    add_row(b, "(a) sandbox.get fresh via daemon  p50 / p99", NULL, -1, "%.1f / %.1f us",
            pct_us(via, n, 0.5), pct_us(via, n, 0.99));
    add_row(b, "(a) GetSandbox direct to backend  p50 / p99", NULL, -1, "%.1f / %.1f us",
            pct_us(direct, n, 0.5), pct_us(direct, n, 0.99));
    add_row(b, "(a) added by the daemon at p50", "<= 50 us", added50 <= TARGET_ADDED_US, "%.1f us",
            added50);
    add_row(b, "(a) added at p99; median of paired differences", NULL, -1, "%.1f; %.1f us",
            pct_us(via, n, 0.99) - pct_us(direct, n, 0.99), pct_us(diff, n, 0.5));
    add_row(b, "(a) sandbox.get cached (no backend)  p50 / p99", NULL, -1, "%.1f / %.1f us",
            pct_us(cached, n, 0.5), pct_us(cached, n, 0.99));
    note("(a) %ld samples per path; means: via %.1f us, direct %.1f us, cached %.1f us", n,
         mean_us(via, n), mean_us(direct, n), mean_us(cached, n));
out:
    free(via);
    free(direct);
    free(cached);
    free(diff);
}

/* ---- (b) throughput of cached sandbox.get ----------------------------------------------- */

struct worker {
    pthread_t th;
    bool started;
    int fd;
    const uint8_t *tmpl; /* one request; its msgid is a uint32 at offset 3 */
    size_t tmpl_len;
    unsigned window;
    uint32_t next_msgid;
    atomic_bool *stop;
    atomic_ullong answered;
    char err[200];
};

static int send_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* [1, msgid, nil, result]: true when the error slot is nil. */
static bool response_ok(const uint8_t *p, size_t len)
{
    size_t l;
    if (len < 4 || p[0] != 0x94 || p[1] != 0x01 || mp_skip(p + 2, len - 2, &l, 0) != 1)
        return false;
    return 2 + l < len && p[2 + l] == 0xc0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    size_t cap = 1u << 18, have = 0;
    uint8_t *in = malloc(cap), *out = malloc((size_t)w->window * w->tmpl_len);
    unsigned in_flight = 0;
    if (!in || !out) {
        snprintf(w->err, sizeof(w->err), "out of memory");
        goto out;
    }
    for (;;) {
        bool stopping = atomic_load_explicit(w->stop, memory_order_relaxed);
        if (!stopping && in_flight < w->window) {
            size_t n = 0;
            /* Refill the window in one write: pipelined requests. */
            for (; in_flight < w->window; in_flight++, n += w->tmpl_len) {
                uint32_t id = w->next_msgid++;
                memcpy(out + n, w->tmpl, w->tmpl_len);
                out[n + 3] = (uint8_t)(id >> 24);
                out[n + 4] = (uint8_t)(id >> 16);
                out[n + 5] = (uint8_t)(id >> 8);
                out[n + 6] = (uint8_t)id;
            }
            if (send_all(w->fd, out, n) < 0) {
                snprintf(w->err, sizeof(w->err), "send: %s", strerror(errno));
                goto out;
            }
        }
        if (in_flight == 0)
            break;
        struct pollfd p = {.fd = w->fd, .events = POLLIN};
        if (poll(&p, 1, 30000) != 1) {
            snprintf(w->err, sizeof(w->err), "no answer within 30 s (%u in flight)", in_flight);
            goto out;
        }
        ssize_t r = recv(w->fd, in + have, cap - have, 0);
        if (r <= 0) {
            snprintf(w->err, sizeof(w->err), "recv: %s", r ? strerror(errno) : "end of stream");
            goto out;
        }
        have += (size_t)r;
        size_t off = 0, len;
        int s;
        while ((s = mp_skip(in + off, have - off, &len, 0)) == 1) {
            if (!response_ok(in + off, len)) {
                snprintf(w->err, sizeof(w->err), "an answer that is not a result (%zu bytes)", len);
                goto out;
            }
            in_flight--;
            atomic_fetch_add_explicit(&w->answered, 1, memory_order_relaxed);
            off += len;
        }
        if (s < 0) {
            snprintf(w->err, sizeof(w->err), "malformed msgpack from the daemon");
            goto out;
        }
        memmove(in, in + off, have - off);
        have -= off;
        if (have == cap) {
            uint8_t *grown = realloc(in, cap * 2);
            if (!grown) {
                snprintf(w->err, sizeof(w->err), "out of memory");
                goto out;
            }
            in = grown;
            cap *= 2;
        }
    }
out:
    free(in);
    free(out);
    return NULL;
}

/* A sandbox.get request for id whose msgid is a uint32 at offset 3. */
static uint8_t *get_template(const char *id, size_t *ret_len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cws_rpc_pack_cstr(&pk, "sandbox.get");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 1);
    cws_rpc_pack_kv_cstr(&pk, "id", id);
    static const uint8_t head[] = {0x94, 0x00, 0xce, 0, 0, 0, 0};
    uint8_t *t = malloc(sizeof(head) + sb.size);
    if (t) {
        memcpy(t, head, sizeof(head));
        memcpy(t + sizeof(head), sb.data, sb.size);
        *ret_len = sizeof(head) + sb.size;
    }
    msgpack_sbuffer_destroy(&sb);
    return t;
}

/* clients connections, each with window requests in flight, for seconds: calls/s. */
static void run_throughput(struct bench *b, const char *id, double seconds, const char *label)
{
    long n = b->o.tput_clients;
    size_t tlen = 0;
    uint8_t *tmpl = get_template(id, &tlen);
    struct th_conn *conns = calloc((size_t)n, sizeof(*conns));
    struct worker *w = calloc((size_t)n, sizeof(*w));
    atomic_bool stop = false;
    long connected = 0;
    if (!tmpl || !conns || !w) {
        fail(b, "out of memory");
        goto out;
    }
    for (; connected < n; connected++) {
        if (th_connect(&conns[connected], b->d.socket) < 0 || !th_hello(&conns[connected])) {
            fail(b, "client %ld cannot connect to the daemon", connected);
            goto out;
        }
    }
    for (long i = 0; i < n; i++) {
        w[i].fd = conns[i].fd;
        w[i].tmpl = tmpl;
        w[i].tmpl_len = tlen;
        w[i].window = (unsigned)b->o.window;
        w[i].next_msgid = 1000;
        w[i].stop = &stop;
        atomic_init(&w[i].answered, 0);
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0) {
            fail(b, "pthread_create failed");
            atomic_store(&stop, true);
            break;
        }
        w[i].started = true;
    }
    sleep_ms(500); /* warm-up */
    uint64_t c0 = 0, c1 = 0;
    for (long i = 0; i < n; i++)
        c0 += atomic_load(&w[i].answered);
    int64_t t0 = bench_now_ns();
    double d0 = proc_cpu_s(b->d.pid), s0 = self_cpu_s();
    sleep_ms((long)(seconds * 1000));
    for (long i = 0; i < n; i++)
        c1 += atomic_load(&w[i].answered);
    int64_t t1 = bench_now_ns();
    double d1 = proc_cpu_s(b->d.pid), s1 = self_cpu_s();
    atomic_store(&stop, true);
    for (long i = 0; i < n; i++) {
        if (w[i].started)
            pthread_join(w[i].th, NULL);
        if (w[i].err[0])
            fail(b, "%s, connection %ld: %s", label, i, w[i].err);
    }
    double secs = (double)(t1 - t0) / 1e9, calls = (double)(c1 - c0);
    double rate = calls / secs;
    char name[72];
    if (calls <= 0) {
        fail(b, "%s: no call was answered", label);
        goto out;
    }
    if (strcmp(label, "(b)") == 0) {
        snprintf(name, sizeof(name), "(b) cached sandbox.get, %ld conns x %ld pipelined", n,
                 b->o.window);
        add_row(b, name, ">= 50000/s", rate >= TARGET_CALLS_S, "%.0f calls/s", rate);
        add_row(b, "(b) daemon CPU per call; daemon CPU busy", NULL, -1, "%.1f us; %.0f %%",
                (d1 - d0) / calls * 1e6, (d1 - d0) / secs * 100);
        snprintf(name, sizeof(name), "(b) client CPU per call (all %ld threads)", n);
        add_row(b, name, NULL, -1, "%.1f us", (s1 - s0) / calls * 1e6);
    } else {
        snprintf(name, sizeof(name), "%s cached get tput, %ld tracked, oldest id", label,
                 b->o.sandboxes);
        add_row(b, name, NULL, -1, "%.0f calls/s; %.1f us CPU", rate, (d1 - d0) / calls * 1e6);
    }
out:
    for (long i = 0; i < connected; i++)
        th_close(&conns[i]);
    free(conns);
    free(w);
    free(tmpl);
}

/* ---- (c) a large file ------------------------------------------------------------------- */

static void sha256_hex(const uint8_t *data, size_t len, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    hex[0] = '\0';
    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1)
        return;
    for (unsigned i = 0; i < n && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Make the file in the sandbox; its SHA-256 (hex) as sha256sum computes it there. */
static int make_big_file(struct bench *b, uint64_t size, char sha[65])
{
    char script[256];
    snprintf(script, sizeof(script),
             "head -c %llu /dev/urandom > " BIG_PATH " && sha256sum < " BIG_PATH
             " && wc -c < " BIG_PATH,
             (unsigned long long)size);
    struct exec_args a = {b->id, script};
    struct cws_rpc_msg *m = th_call(&b->conn, "exec", pack_exec, &a, LONG_CALL_MS);
    int r = -1;
    if (!ok_response(b, m, "exec (making the file)"))
        goto out;
    const msgpack_object *out = mp_field(m->result, "stdout");
    int64_t code = th_int(m->result, "exit_code", -1);
    char text[256] = "";
    if (out && out->type == MSGPACK_OBJECT_BIN)
        snprintf(text, sizeof(text), "%.*s", (int)out->via.bin.size, out->via.bin.ptr);
    unsigned long long n = 0;
    if (code != 0 || sscanf(text, "%64[0-9a-f] - %llu", sha, &n) != 2 || strlen(sha) != 64 ||
        n != size) {
        fail(b, "making %s in the sandbox: exit %lld, output '%s'", BIG_PATH, (long long)code,
             text);
        goto out;
    }
    r = 0;
out:
    cws_rpc_msg_free(m);
    return r;
}

struct transfer {
    uint8_t *buf;
    size_t cap;
    uint64_t got;
    long peak_rss_kib; /* daemon path: the daemon's VmRSS, sampled */
};

/* file.read {streamed: true} through the daemon; seconds or -1. */
static double read_via_daemon(struct bench *b, struct transfer *t)
{
    int64_t t0 = bench_now_ns();
    uint32_t msgid = th_request(&b->conn, "file.read", pack_read, b->id);
    long chunks = 0;
    t->got = 0;
    for (;;) {
        bool eof = false;
        struct cws_rpc_msg *m = th_next(&b->conn, 120000, &eof);
        if (!m) {
            fail(b, "file.read: %s after %llu bytes", eof ? "connection closed" : "no message",
                 (unsigned long long)t->got);
            return -1;
        }
        if (m->type == CWS_RPC_NOTIFICATION && strcmp(m->method, "file.chunk") == 0) {
            const msgpack_object *data = mp_field(m->params, "data");
            uint64_t id = 0, off = 0;
            if (!mp_uint(mp_field(m->params, "id"), &id) || id != msgid ||
                !mp_uint(mp_field(m->params, "offset"), &off) || off != t->got || !data ||
                data->type != MSGPACK_OBJECT_BIN || t->got + data->via.bin.size > t->cap) {
                fail(b, "file.read: a file.chunk out of place at byte %llu",
                     (unsigned long long)t->got);
                cws_rpc_msg_free(m);
                return -1;
            }
            memcpy(t->buf + t->got, data->via.bin.ptr, data->via.bin.size);
            t->got += data->via.bin.size;
            if (++chunks % 256 == 0) {
                long kib = th_rss_kib(b->d.pid);
                if (kib > t->peak_rss_kib)
                    t->peak_rss_kib = kib;
            }
        } else if (m->type == CWS_RPC_RESPONSE && m->msgid == msgid) {
            uint64_t size = 0;
            bool ok = ok_response(b, m, "file.read");
            if (ok && (!mp_uint(mp_field(m->result, "size"), &size) || size != t->got)) {
                fail(b, "file.read answered size %llu after %llu bytes", (unsigned long long)size,
                     (unsigned long long)t->got);
                ok = false;
            }
            cws_rpc_msg_free(m);
            return ok ? (double)(bench_now_ns() - t0) / 1e9 : -1;
        }
        cws_rpc_msg_free(m);
    }
}

struct sread {
    struct transfer *t;
    struct cws_gc_call *call;
    bool done, exited, overflow;
    int exit_code;
    enum cws_errcode code;
    char message[CWS_ERROR_MESSAGE_MAX];
};

static void sread_message(struct cws_gc_call *call, const uint8_t *data, size_t len, void *ud)
{
    struct sread *s = ud;
    ExecStreamResponse *r = coreweave__sandbox__v1__exec_stream_response__unpack(NULL, len, data);
    if (!r) {
        snprintf(s->message, sizeof(s->message), "malformed ExecStreamResponse");
        s->code = CWS_E_PROTOCOL;
        s->done = true;
        cws_gc_call_cancel(call);
        return;
    }
    switch (r->message_case) {
    case COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_OUTPUT:
        if (r->output->stream == COREWEAVE__SANDBOX__V1__EXEC_STREAM_OUTPUT__STREAM__STREAM_STDERR)
            break;
        if (s->t->got + r->output->data.len > s->t->cap) {
            s->overflow = true;
            break;
        }
        memcpy(s->t->buf + s->t->got, r->output->data.data, r->output->data.len);
        s->t->got += r->output->data.len;
        break;
    case COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_EXIT:
        /* As the daemon does: the exit status ends the transfer; cancel the rest. */
        s->exited = true;
        s->exit_code = r->exit->exit_code;
        s->done = true;
        cws_gc_call_cancel(call);
        break;
    case COREWEAVE__SANDBOX__V1__EXEC_STREAM_RESPONSE__MESSAGE_ERROR:
        snprintf(s->message, sizeof(s->message), "%s: %s", r->error->code, r->error->message);
        s->code = CWS_E_INTERNAL;
        s->done = true;
        cws_gc_call_cancel(call);
        break;
    default:
        break;
    }
    coreweave__sandbox__v1__exec_stream_response__free_unpacked(r, NULL);
}

static void sread_done(struct cws_gc_call *call, const struct cws_gc_result *res, void *ud)
{
    struct sread *s = ud;
    (void)call;
    s->done = true;
    s->code = res->error->code;
    snprintf(s->message, sizeof(s->message), "%s", res->error->message);
}

static const struct cws_gc_handlers sread_handlers = {
    .on_message = sread_message,
    .on_done = sread_done,
};

/* The daemon's way for a file over the unary cap, straight to the backend: ReadFile (which
 * answers FILE_TOO_LARGE with the size), then StreamExec of the SDKs' read script. */
static double read_direct(struct bench *b, struct transfer *t)
{
    static const char script[] = "if [ ! -e \"$1\" ]; then exit 2; fi; if [ -d \"$1\" ]; then "
                                 "exit 3; fi; exec cat -- \"$1\"";
    char *cmd[] = {(char *)"/bin/sh", (char *)"-c", (char *)script, (char *)"cwsandbox-read-file",
                   (char *)BIG_PATH};
    struct cws_error err;
    int64_t t0 = bench_now_ns();
    t->got = 0;

    Coreweave__Sandbox__V1__ReadFileRequest rreq = COREWEAVE__SANDBOX__V1__READ_FILE_REQUEST__INIT;
    struct unary_rec u = {0};
    rreq.sandbox_id = b->id;
    rreq.path = (char *)BIG_PATH;
    if (direct_unary(b, "ReadFile", &rreq.base, &u) < 0)
        return -1;
    if (strcmp(u.reason, "CWSANDBOX_FILE_TOO_LARGE") != 0 || u.size_bytes == 0) {
        fail(b, "ReadFile of %s: expected FILE_TOO_LARGE with size_bytes, got %s (%s)", BIG_PATH,
             cws_errcode_name(u.code), u.reason);
        return -1;
    }

    ExecStreamRequest req = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__INIT;
    Coreweave__Sandbox__V1__ExecStreamInit init = COREWEAVE__SANDBOX__V1__EXEC_STREAM_INIT__INIT;
    init.sandbox_id = b->id;
    init.command = cmd;
    init.n_command = 5;
    req.message_case = COREWEAVE__SANDBOX__V1__EXEC_STREAM_REQUEST__MESSAGE_INIT;
    req.init = &init;
    uint8_t first[1024];
    size_t len = protobuf_c_message_get_packed_size(&req.base);
    if (len > sizeof(first))
        return -1;
    protobuf_c_message_pack(&req.base, first);
    struct sread s = {.t = t};
    struct cws_gc_call_opts opts = {.wait_for_ready = true};
    if (cws_gclient_call_start(b->gc, SERVICE "StreamExec", &opts, &sread_handlers, &s, &s.call,
                               &err) < 0 ||
        cws_gc_call_send(s.call, first, len) < 0 || cws_gc_call_close_send(s.call) < 0) {
        fail(b, "StreamExec: %s", err.message);
        return -1;
    }
    while (!s.done)
        event_base_loop(b->base, EVLOOP_ONCE);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    if (!s.exited || s.exit_code != 0 || s.overflow || t->got != u.size_bytes) {
        fail(b, "StreamExec cat: %s, exit %d, %llu of %llu bytes (%s: %s)",
             s.exited ? "exited" : "no exit status", s.exit_code, (unsigned long long)t->got,
             (unsigned long long)u.size_bytes, cws_errcode_name(s.code), s.message);
        return -1;
    }
    return secs;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;
    return a < c ? -1 : a > c;
}

static void phase_file(struct bench *b)
{
    uint64_t size = (uint64_t)b->o.file_mib << 20;
    long rounds = b->o.rounds;
    char sha[65] = "", got_sha[65];
    struct transfer t = {.cap = size};
    double *via = calloc((size_t)rounds, sizeof(double)),
           *direct = calloc((size_t)rounds, sizeof(double));
    t.buf = malloc(size ? size : 1);
    if (!t.buf || !via || !direct) {
        fail(b, "out of memory for %llu bytes", (unsigned long long)size);
        goto out;
    }
    memset(t.buf, 0, size); /* fault the pages in before anything is timed */
    if (make_big_file(b, size, sha) < 0)
        goto out;
    long hwm_before = status_kib(b->d.pid, "VmHWM");
    pid_t backend = child_named(b->d.pid, "cwsandbox-local");
    /* CPU seconds per path: client (this process), daemon, backend, whole machine; wall. */
    double cpu[2][5] = {{0}};
    for (long r = 0; r < rounds; r++) {
        for (int k = 0; k < 2; k++) {
            bool daemon_path = (k == 0) == (r % 2 == 1);
            double c0[4] = {self_cpu_s(), proc_cpu_s(b->d.pid), proc_cpu_s(backend),
                            machine_busy_s()};
            double secs = daemon_path ? read_via_daemon(b, &t) : read_direct(b, &t);
            double c1[4] = {self_cpu_s(), proc_cpu_s(b->d.pid), proc_cpu_s(backend),
                            machine_busy_s()};
            if (secs < 0)
                goto out;
            for (int i = 0; i < 4; i++)
                cpu[daemon_path][i] += c1[i] - c0[i];
            cpu[daemon_path][4] += secs;
            if (t.got != size) {
                fail(b, "%s read %llu bytes of %llu", daemon_path ? "file.read" : "StreamExec",
                     (unsigned long long)t.got, (unsigned long long)size);
                goto out;
            }
            sha256_hex(t.buf, t.got, got_sha);
            if (strcmp(got_sha, sha) != 0) {
                fail(b, "%s: SHA-256 %s, the sandbox says %s",
                     daemon_path ? "file.read" : "StreamExec", got_sha, sha);
                goto out;
            }
            (daemon_path ? via : direct)[r] = (double)size / MIB / secs;
        }
    }
    qsort(via, (size_t)rounds, sizeof(double), cmp_double);
    qsort(direct, (size_t)rounds, sizeof(double), cmp_double);
    double mv = via[rounds / 2], md = direct[rounds / 2];
    char name[72];
    snprintf(name, sizeof(name), "(c) file.read %ld MiB streamed via daemon (median)",
             b->o.file_mib);
    add_row(b, name, NULL, -1, "%.0f MiB/s", mv);
    add_row(b, "(c) ReadFile probe + StreamExec cat direct (median)", NULL, -1, "%.0f MiB/s", md);
    add_row(b, "(c) daemon rate / direct rate", ">= 80 %", mv >= TARGET_FILE_RATIO * md, "%.1f %%",
            mv / md * 100);
    double gib = (double)size * (double)rounds / (MIB * 1024);
    add_row(b, "(c) CPU s/GiB via daemon: client/daemon/backend", NULL, -1, "%.2f / %.2f / %.2f",
            cpu[1][0] / gib, cpu[1][1] / gib, cpu[1][2] / gib);
    add_row(b, "(c) CPU s/GiB direct: client/backend", NULL, -1, "%.2f / %.2f", cpu[0][0] / gib,
            cpu[0][2] / gib);
    add_row(b, "(c) machine CPU busy, all CPUs: via daemon; direct", NULL, -1, "%.0f %%; %.0f %%",
            cpu[1][3] / cpu[1][4] / (double)sysconf(_SC_NPROCESSORS_ONLN) * 100,
            cpu[0][3] / cpu[0][4] / (double)sysconf(_SC_NPROCESSORS_ONLN) * 100);
    add_row(b, "(c) daemon VmRSS peak while streaming; VmHWM", NULL, -1, "%.1f; %.1f MiB",
            (double)t.peak_rss_kib / 1024, (double)status_kib(b->d.pid, "VmHWM") / 1024);
    note("(c) %ld rounds per path, sha256 %s checked each time; via daemon %.0f..%.0f MiB/s, "
         "direct %.0f..%.0f MiB/s; daemon VmHWM before (c) %ld KiB",
         rounds, sha, via[0], via[rounds - 1], direct[0], direct[rounds - 1], hwm_before);
out:
    free(t.buf);
    free(via);
    free(direct);
}

/* ---- (d) memory -------------------------------------------------------------------------- */

/* Send one request per id (up to in_flight at once) on the main connection; each answer is
 * checked by check(). Returns the number of failures. */
typedef bool (*answer_fn)(struct bench *b, const struct cws_rpc_msg *m, long i, void *ud);

static long pipeline(struct bench *b, long n, const char *method, th_params_fn pack,
                     void *(*arg_of)(void *ud, long i), answer_fn check, void *ud)
{
    long sent = 0, answered = 0, failed = 0;
    uint32_t base_id = b->conn.next_id;
    while (answered < n) {
        while (sent < n && sent - answered < b->o.in_flight) {
            th_request(&b->conn, method, pack, arg_of(ud, sent));
            sent++;
        }
        bool eof = false;
        struct cws_rpc_msg *m = th_next(&b->conn, LONG_CALL_MS, &eof);
        if (!m) {
            fail(b, "%s: %s with %ld of %ld answered", method,
                 eof ? "the daemon closed the connection" : "no answer", answered, n);
            return failed + (n - answered);
        }
        if (m->type == CWS_RPC_RESPONSE && m->msgid >= base_id && m->msgid < base_id + sent) {
            answered++;
            if (!check(b, m, (long)(m->msgid - base_id), ud))
                failed++;
        }
        cws_rpc_msg_free(m);
    }
    return failed;
}

struct fleet {
    char (*ids)[64];
    long n;
    struct create_args create;
};

static void *create_arg(void *ud, long i)
{
    (void)i;
    return &((struct fleet *)ud)->create;
}

static bool created(struct bench *b, const struct cws_rpc_msg *m, long i, void *ud)
{
    struct fleet *f = ud;
    if (!ok_response(b, m, "sandbox.create"))
        return false;
    th_str(m->result, "id", f->ids[i], sizeof(f->ids[i]));
    if (!f->ids[i][0]) {
        fail(b, "sandbox.create answered no id");
        return false;
    }
    return true;
}

static void *stop_arg(void *ud, long i)
{
    return ((struct fleet *)ud)->ids[i];
}

static bool stopped(struct bench *b, const struct cws_rpc_msg *m, long i, void *ud)
{
    struct fleet *f = ud;
    char state[32];
    if (!ok_response(b, m, "sandbox.stop"))
        return false;
    if (!is_terminal(th_str(m->result, "state", state, sizeof(state)))) {
        fail(b, "sandbox.stop of %s answered state %s", f->ids[i], state);
        return false;
    }
    return true;
}

static void phase_memory(struct bench *b)
{
    long n = b->o.sandboxes, nc = b->o.rss_clients;
    struct fleet f = {.n = n, .create = {TAG_RSS, false, true}};
    struct th_conn *clients = calloc((size_t)(nc > 0 ? nc : 1), sizeof(*clients));
    long connected = 0, bad;
    int fds_loaded = -1;
    struct census cs = {0};
    struct cws_rpc_msg *m;
    char name[72];
    int64_t t0;
    f.ids = calloc((size_t)n, sizeof(*f.ids));
    if (!f.ids || !clients) {
        fail(b, "out of memory");
        goto out;
    }
    /* Idle: just started (no client yet: start_daemon's connection is closed first, so the
     * figure is taken before any call), then after first use. */
    th_close(&b->conn);
    sleep_ms(500);
    long idle_start = th_rss_kib(b->d.pid);
    if (th_connect(&b->conn, b->d.socket) < 0 || !th_hello(&b->conn)) {
        fail(b, "cannot reconnect to the daemon");
        goto out;
    }
    if (!list_census(b, &b->conn, TAG_RSS, true, &cs))
        goto out;
    sleep_ms(200);
    long idle_used = th_rss_kib(b->d.pid);
    int fds_idle = th_count_fds(b->d.pid);
    add_row(b, "(d) VmRSS idle: started, no client", NULL, -1, "%.2f MiB",
            (double)idle_start / 1024);
    add_row(b, "(d) VmRSS idle: 1 client, backend connected", "<= 4 MiB",
            idle_used <= TARGET_IDLE_KIB, "%.2f MiB", (double)idle_used / 1024);
    add_mem_row(b, "(d)   RssAnon / RssFile / Pss", b->d.pid);

    /* n sandboxes, created with wait: none, in_flight at once. */
    t0 = bench_now_ns();
    bad = pipeline(b, n, "sandbox.create", pack_create, create_arg, created, &f);
    double create_s = (double)(bench_now_ns() - t0) / 1e9;
    if (bad) {
        fail(b, "%ld of %ld sandbox.create failed", bad, n);
        goto stop;
    }
    long rss_created = th_rss_kib(b->d.pid);
    /* Let the backend start them all, so that they are real sandboxes when measured. */
    for (int64_t until = bench_now_ns() + (int64_t)LONG_CALL_MS * 1000000;; sleep_ms(1000)) {
        if (!list_census(b, &b->conn, TAG_RSS, false, &cs))
            goto stop;
        if (cs.running >= n || cs.failed > 0 || bench_now_ns() > until)
            break;
    }
    double running_s = (double)(bench_now_ns() - t0) / 1e9;
    if (cs.running != n) {
        fail(b, "%ld of %ld sandboxes running (%ld failed, %ld creating)", cs.running, n, cs.failed,
             cs.creating);
        goto stop;
    }
    long rss_tracked = th_rss_kib(b->d.pid);
    snprintf(name, sizeof(name), "(d) %ld sandbox.create (wait none, %ld in flight)", n,
             b->o.in_flight);
    add_row(b, name, NULL, -1, "%.1f s; all running %.1f s", create_s, running_s);
    snprintf(name, sizeof(name), "(d) VmRSS, %ld tracked, 1 client: answered; running", n);
    add_row(b, name, NULL, -1, "%.2f; %.2f MiB", (double)rss_created / 1024,
            (double)rss_tracked / 1024);

    /* nc connected clients in all (the main connection is one), each having made a call. */
    for (; connected < nc - 1; connected++) {
        struct get_args a = {f.ids[connected % n], false};
        if (th_connect(&clients[connected], b->d.socket) < 0 || !th_hello(&clients[connected])) {
            fail(b, "client %ld cannot connect", connected);
            goto stop;
        }
        m = th_call(&clients[connected], "sandbox.get", pack_get, &a, CALL_MS);
        bool ok = ok_response(b, m, "sandbox.get");
        cws_rpc_msg_free(m);
        if (!ok)
            goto stop;
    }
    sleep_ms(200);
    m = th_call(&b->conn, "daemon.status", NULL, NULL, CALL_MS);
    if (ok_response(b, m, "daemon.status") &&
        (th_int(m->result, "clients", -1) != nc || th_int(m->result, "sandboxes", -1) < n))
        fail(b, "daemon.status says %lld clients, %lld sandboxes; expected %ld, >= %ld",
             (long long)th_int(m->result, "clients", -1),
             (long long)th_int(m->result, "sandboxes", -1), nc, n);
    cws_rpc_msg_free(m);
    long rss_loaded = th_rss_kib(b->d.pid);
    fds_loaded = th_count_fds(b->d.pid);
    snprintf(name, sizeof(name), "(d) VmRSS, %ld tracked sandboxes, %ld clients", n, nc);
    add_row(b, name, "<= 32 MiB", rss_loaded <= TARGET_LOADED_KIB, "%.2f MiB",
            (double)rss_loaded / 1024);
    add_mem_row(b, "(d)   RssAnon / RssFile / Pss", b->d.pid);

    /* The cost of a linear table: cached gets of the oldest sandbox (the end of the list). */
    run_throughput(b, f.ids[0], 2.0, "(d)");

stop:
    for (long i = 0; i < connected; i++)
        th_close(&clients[i]);
    connected = 0;
    /* Stop every sandbox created (those not answered have no id: sandbox.list finds them). */
    long with_id = 0;
    for (long i = 0; i < n; i++)
        if (f.ids[i][0])
            memmove(f.ids[with_id++], f.ids[i], sizeof(f.ids[i]));
    t0 = bench_now_ns();
    bad = pipeline(b, with_id, "sandbox.stop", pack_stop, stop_arg, stopped, &f);
    double stop_s = (double)(bench_now_ns() - t0) / 1e9;
    if (bad)
        fail(b, "%ld of %ld sandbox.stop failed", bad, with_id);
    check_all_stopped(b, TAG_RSS, n, &cs);
    snprintf(name, sizeof(name), "(d) %ld sandbox.stop (grace 0, %ld in flight)", with_id,
             b->o.in_flight);
    add_row(b, name, NULL, -1, "%.1f s; %ld/%ld terminal", stop_s, cs.terminal, cs.total);
    check_no_leftovers(b, false, "after every sandbox stopped");
    sleep_ms(200);
    add_row(b, "(d) VmRSS after the stops, 1 client", NULL, -1, "%.2f MiB",
            (double)th_rss_kib(b->d.pid) / 1024);
    add_row(b, "(d) daemon fds: idle; loaded; after the stops", NULL, -1, "%d; %d; %d", fds_idle,
            fds_loaded, th_count_fds(b->d.pid));
out:
    for (long i = 0; i < connected; i++)
        th_close(&clients[i]);
    free(clients);
    free(f.ids);
}

/* ---- main -------------------------------------------------------------------------------- */

static bool phase_on(const struct bench *b, char phase)
{
    return strchr(b->o.only, phase) != NULL;
}

/* Daemon A: one sandbox for (a) to (c). */
static void run_abc(struct bench *b)
{
    struct create_args ca = {TAG_MAIN, true, false};
    if (start_daemon(b) < 0)
        goto out;
    struct cws_rpc_msg *m = th_call(&b->conn, "sandbox.create", pack_create, &ca, LONG_CALL_MS);
    if (ok_response(b, m, "sandbox.create"))
        th_str(m->result, "id", b->id, sizeof(b->id));
    cws_rpc_msg_free(m);
    if (!b->id[0] || direct_client(b) < 0)
        goto out;
    if (phase_on(b, 'a'))
        phase_latency(b);
    if (phase_on(b, 'b'))
        run_throughput(b, b->id, b->o.seconds, "(b)");
    if (phase_on(b, 'c'))
        phase_file(b);
out:
    if (b->daemon_up && b->conn.fd >= 0) {
        struct census cs;
        if (b->id[0])
            stop_sandbox(b, b->id);
        check_all_stopped(b, TAG_MAIN, 1, &cs);
        check_no_leftovers(b, false, "after the sandbox stopped");
    }
    stop_daemon(b);
}

static void run_d(struct bench *b)
{
    if (start_daemon(b) == 0)
        phase_memory(b);
    stop_daemon(b);
}

static void print_table(const struct bench *b)
{
    printf("\n%-54s %-30s %-11s %s\n", "figure", "measured", "target", "met");
    for (int i = 0; i < 104; i++)
        putchar('-');
    putchar('\n');
    for (int i = 0; i < b->n_rows; i++) {
        const struct row *r = &b->rows[i];
        printf("%-54s %-30s %-11s %s\n", r->name, r->value, r->target,
               r->met < 0 ? ""
               : r->met   ? "yes"
                          : "NO");
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_daemon [options]\n"
            "  --only LETTERS     phases to run, of abcd (default abcd)\n"
            "  --runs N           (a) samples per path (default 5000)\n"
            "  --warmup N         (a) unmeasured calls per path first (default 200)\n"
            "  --seconds S        (b) measured seconds (default 3)\n"
            "  --clients N        (b) connections (default 32)\n"
            "  --window N         (b) requests in flight per connection (default 16)\n"
            "  --file-mib N       (c) file size (default 256)\n"
            "  --rounds N         (c) transfers per path (default 5)\n"
            "  --sandboxes N      (d) sandboxes tracked (default 1000)\n"
            "  --rss-clients N    (d) clients connected (default 100)\n"
            "  --in-flight N      (d) creates/stops in flight (default 100)\n"
            "  --keep-log         keep the daemon's log file even when all went well\n"
            "Environment: CWSD_BIN, CWSD_LOCAL_BIN override the binaries found at build time.\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"only", required_argument, NULL, 'o'},
        {"runs", required_argument, NULL, 'r'},
        {"warmup", required_argument, NULL, 'w'},
        {"seconds", required_argument, NULL, 's'},
        {"clients", required_argument, NULL, 'c'},
        {"window", required_argument, NULL, 'W'},
        {"file-mib", required_argument, NULL, 'f'},
        {"rounds", required_argument, NULL, 'R'},
        {"sandboxes", required_argument, NULL, 'n'},
        {"rss-clients", required_argument, NULL, 'C'},
        {"in-flight", required_argument, NULL, 'i'},
        {"keep-log", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct options){
        .only = "abcd",
        .runs = 5000,
        .warmup = 200,
        .seconds = 3,
        .tput_clients = TARGET_TPUT_CLIENTS,
        .window = 16,
        .file_mib = TARGET_FILE_MIB,
        .rounds = 5,
        .sandboxes = TARGET_SANDBOXES,
        .rss_clients = TARGET_CLIENTS,
        .in_flight = 100,
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        long v = optarg ? strtol(optarg, NULL, 10) : 0;
        switch (c) {
        case 'o':
            o->only = optarg;
            break;
        case 'r':
            o->runs = v;
            break;
        case 'w':
            o->warmup = v;
            break;
        case 's':
            o->seconds = strtod(optarg, NULL);
            break;
        case 'c':
            o->tput_clients = v;
            break;
        case 'W':
            o->window = v;
            break;
        case 'f':
            o->file_mib = v;
            break;
        case 'R':
            o->rounds = v;
            break;
        case 'n':
            o->sandboxes = v;
            break;
        case 'C':
            o->rss_clients = v;
            break;
        case 'i':
            o->in_flight = v;
            break;
        case 'k':
            o->keep_log = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc || o->runs < 1 || o->warmup < 0 || o->seconds <= 0 || o->tput_clients < 1 ||
        o->window < 1 || o->file_mib < 1 || o->file_mib > 1023 || o->rounds < 1 ||
        o->sandboxes < 1 || o->rss_clients < 1 || o->in_flight < 1 ||
        o->only[strspn(o->only, "abcd")] != '\0') {
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct bench b;
    b.conn.fd = -1;
    if (parse_options(argc, argv, &b.o) < 0)
        return 2;
    setenv("CWSD_BIN", BENCH_CWSD_BIN, 0);
    setenv("CWSD_LOCAL_BIN", BENCH_LOCAL_BIN, 0);
    cws_log_set_level(CWS_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    if (geteuid() != 0)
        note("not root: the brief measures as root (sandboxes start unprivileged otherwise)");
    printf("bench_daemon: cwsandboxd %s with cwsandbox-local %s; %ld CPUs\n", getenv("CWSD_BIN"),
           getenv("CWSD_LOCAL_BIN"), sysconf(_SC_NPROCESSORS_ONLN));
    double busy0 = machine_busy_s();
    sleep_ms(1000);
    printf("bench_daemon: machine busy before the run: %.0f %% of %ld CPUs (other work skews the "
           "figures)\n",
           (machine_busy_s() - busy0) / (double)sysconf(_SC_NPROCESSORS_ONLN) * 100,
           sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);

    char logs[2][sizeof(b.log_path)] = {"", ""};
    if (phase_on(&b, 'a') || phase_on(&b, 'b') || phase_on(&b, 'c')) {
        run_abc(&b);
        snprintf(logs[0], sizeof(logs[0]), "%s", b.log_path);
    }
    if (phase_on(&b, 'd')) {
        run_d(&b);
        snprintf(logs[1], sizeof(logs[1]), "%s", b.log_path);
    }
    print_table(&b);
    for (int i = 0; i < 2; i++) {
        if (!logs[i][0])
            continue;
        if (b.errors || b.o.keep_log)
            printf("daemon log: %s\n", logs[i]);
        else
            unlink(logs[i]);
    }
    if (b.errors)
        printf("%d error(s): see the messages above\n", b.errors);
    return b.errors ? 1 : 0;
}
