/* The sandbox runtime against real namespaces and processes: life cycle, stop, lifetime,
 * exec (pipes, stdin, large output, TTY), files (and escapes), logs, attach after a restart,
 * and what a sandbox must not see or reach of the host.
 *
 * Runs as root (CI) and as an ordinary user (CTest runs it again through runuser). Every wait
 * is bounded by a libevent timer; nothing sleeps to synchronise. Where the unprivileged mode
 * cannot do something on this machine, the test prints "NOT CHECKED: <why>" instead of
 * passing silently. Usage: test_runtime PATH_OF_CWSANDBOX_INIT
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

static const char *init_path;

/* ---- fixture: a loop, a state directory, a runtime ---- */

struct fixture {
    struct event_base *base;
    struct cws_rt *rt;
    char state_dir[256];
    bool timed_out;
    int fds_before; /* open fds before the runtime: the same number must be left after it */
};

static struct fixture fx;
static const char *const hidden_paths[] = {"/usr/share/doc", NULL};

static void remove_tree(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", path);
}

static void new_runtime(void)
{
    static char images[300];
    snprintf(images, sizeof(images), "%s/images", fx.state_dir);
    struct cws_rt_config cfg = {
        .base = fx.base,
        .state_dir = fx.state_dir,
        .images_dir = images,
        .init_path = init_path,
        .hidden_paths = hidden_paths,
    };
    struct cws_error err;
    int r = cws_rt_new(&cfg, &fx.rt, &err);
    ck_assert_msg(r == 0, "cws_rt_new: %s", err.message);
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* Per test case, in the runner process: the state directory. It outlives a test process that
 * failed midway, so that sweep() can stop what that test left running. */
static void make_state_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(fx.state_dir, sizeof(fx.state_dir), "%s/cws-rt-test-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fx.state_dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

/* Per test, in the test's process. */
static void setup(void)
{
    fx.base = event_base_new();
    ck_assert_ptr_nonnull(fx.base);
    fx.fds_before = count_fds();
    new_runtime();
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    fx.timed_out = true;
    event_base_loopbreak(fx.base);
}

/* Run the loop until *flag or timeout_ms; returns *flag. */
static bool wait_for(const bool *flag, int timeout_ms)
{
    struct event *t = evtimer_new(fx.base, on_timeout, NULL);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    fx.timed_out = false;
    evtimer_add(t, &tv);
    while (!*flag && !fx.timed_out)
        event_base_loop(fx.base, EVLOOP_ONCE);
    event_free(t);
    return *flag;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void not_checked(const char *test, const char *why)
{
    fprintf(stderr, "NOT CHECKED (%s, uid %d): %s\n", test, (int)getuid(), why);
}

/* ---- sandboxes ---- */

struct sb_obs {
    struct cws_rt_sandbox *sb;
    bool running, exited;
    int code;
    char reason[512];
    int64_t exited_at_ms;
    char *notes;
};

static void sb_on_running(struct cws_rt_sandbox *sb, void *ud)
{
    struct sb_obs *o = ud;
    ck_assert(!o->exited);
    o->running = true;
}

static void sb_on_exit(struct cws_rt_sandbox *sb, int code, const char *reason, void *ud)
{
    struct sb_obs *o = ud;
    ck_assert(!o->exited);
    o->exited = true;
    o->code = code;
    o->exited_at_ms = now_ms();
    snprintf(o->reason, sizeof(o->reason), "%s", reason ? reason : "");
}

static const struct cws_rt_sandbox_events sb_events = {sb_on_running, sb_on_exit};

static int id_counter;

static void make_id(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s-%d-%d", name, (int)getpid(), id_counter++);
}

static void start_spec(struct sb_obs *o, struct cws_rt_spec *spec)
{
    struct cws_error err;
    memset(o, 0, sizeof(*o));
    int r = cws_rt_sandbox_start(fx.rt, spec, &sb_events, o, &o->sb, &o->notes, &err);
    ck_assert_msg(r == 0, "start: %s", err.message);
}

static void start_sh(struct sb_obs *o, char *id, size_t idsize, const char *name,
                     const char *script)
{
    make_id(id, idsize, name);
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct cws_rt_spec spec = {.id = id, .argv = argv};
    start_spec(o, &spec);
}

static void wait_running(struct sb_obs *o)
{
    ck_assert_msg(wait_for(&o->running, 10000) || o->exited, "sandbox did not start");
    ck_assert_msg(o->running, "sandbox ended during start: %d %s", o->code, o->reason);
}

static void wait_exit(struct sb_obs *o, int timeout_ms)
{
    ck_assert_msg(wait_for(&o->exited, timeout_ms), "sandbox did not end in %d ms", timeout_ms);
}

static void release(struct sb_obs *o)
{
    cws_rt_sandbox_release(o->sb);
    o->sb = NULL;
    free(o->notes);
    o->notes = NULL;
}

/* cwsandbox-init's diagnostics: in sanitizer builds its own reports land there. */
static void check_init_log(const char *id)
{
    char path[1024], line[1024];
    snprintf(path, sizeof(path), "%s/sandboxes/%s/init.log", fx.state_dir, id);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f)) {
        fputs(line, stderr);
        ck_assert_msg(!strstr(line, "Sanitizer") && !strstr(line, "runtime error"),
                      "cwsandbox-init of %s: %s", id, line);
    }
    if (f)
        fclose(f);
}

/* Stop whatever a test left running (a failure midway) and remove every sandbox through
 * the runtime, which also exercises cws_rt_sandbox_remove on overlay work directories. */
static void clean_sandboxes(bool strict)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/sandboxes", fx.state_dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        struct sb_obs o;
        struct cws_error err;
        memset(&o, 0, sizeof(o));
        if (cws_rt_sandbox_attach(fx.rt, e->d_name, &sb_events, &o, &o.sb, &err) == 0) {
            cws_rt_sandbox_stop(o.sb, 0);
            wait_for(&o.exited, 10000);
            cws_rt_sandbox_release(o.sb);
        }
        if (!strict) {
            cws_rt_sandbox_remove(fx.rt, e->d_name, &err);
            continue;
        }
        check_init_log(e->d_name);
        ck_assert_msg(cws_rt_sandbox_remove(fx.rt, e->d_name, &err) == 0, "remove %s: %s",
                      e->d_name, err.message);
    }
    if (d)
        closedir(d);
}

static void teardown(void)
{
    clean_sandboxes(true);
    cws_rt_free(fx.rt);
    fx.rt = NULL;
    ck_assert_int_eq(count_fds(), fx.fds_before);
    event_base_free(fx.base);
    remove_tree(fx.state_dir);
}

/* In the runner process after each test case: when the test failed before its teardown,
 * stop and remove what it left, so that a failure leaks no sandbox. */
static void sweep(void)
{
    if (access(fx.state_dir, F_OK) == 0) {
        fx.base = event_base_new();
        new_runtime();
        clean_sandboxes(false);
        cws_rt_free(fx.rt);
        fx.rt = NULL;
        event_base_free(fx.base);
        fx.base = NULL;
        remove_tree(fx.state_dir);
    }
}

/* ---- execs ---- */

struct buf {
    char *data;
    size_t len;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
    b->data = realloc(b->data, b->len + len + 1);
    ck_assert_ptr_nonnull(b->data);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

struct ex_obs {
    struct cws_rt_exec *ex;
    bool started, exited, failed, done;
    bool got_line; /* a newline arrived on stdout */
    int code;
    struct cws_error err;
    struct buf out[3];
    /* optional behaviours */
    size_t count_only; /* count bytes instead of keeping them */
    size_t count[3];
    bool nonzero_seen;
    size_t pause_every; /* pause output every this many bytes, resume from a timer */
    size_t since_pause;
    struct event *resume_ev;
    int pauses;
    void (*on_out)(struct ex_obs *o, int fd);
};

static void ex_on_started(struct cws_rt_exec *ex, void *ud)
{
    struct ex_obs *o = ud;
    o->started = true;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct ex_obs *o = arg;
    cws_rt_exec_pause_output(o->ex, false);
}

static void ex_on_output(struct cws_rt_exec *ex, int fd, const uint8_t *data, size_t len, void *ud)
{
    struct ex_obs *o = ud;
    ck_assert(fd == 1 || fd == 2);
    ck_assert(!o->done);
    if (o->count_only) {
        o->count[fd] += len;
        for (size_t i = 0; i < len && !o->nonzero_seen; i++)
            o->nonzero_seen = data[i] != 0;
    } else {
        buf_add(&o->out[fd], data, len);
    }
    if (o->pause_every) {
        o->since_pause += len;
        if (o->since_pause >= o->pause_every) {
            o->since_pause = 0;
            o->pauses++;
            cws_rt_exec_pause_output(ex, true);
            struct timeval tv = {0, 2000};
            evtimer_add(o->resume_ev, &tv);
        }
    }
    if (fd == 1 && memchr(data, '\n', len))
        o->got_line = true;
    if (o->on_out)
        o->on_out(o, fd);
}

static void ex_on_exit(struct cws_rt_exec *ex, int code, void *ud)
{
    struct ex_obs *o = ud;
    ck_assert(!o->done);
    o->exited = o->done = true;
    o->code = code;
}

static void ex_on_error(struct cws_rt_exec *ex, const struct cws_error *err, void *ud)
{
    struct ex_obs *o = ud;
    ck_assert(!o->done);
    o->failed = o->done = true;
    o->err = *err;
}

static const struct cws_rt_exec_events ex_events = {
    .on_started = ex_on_started,
    .on_output = ex_on_output,
    .on_exit = ex_on_exit,
    .on_error = ex_on_error,
};

static void ex_obs_free(struct ex_obs *o)
{
    cws_rt_exec_free(o->ex);
    for (int i = 0; i < 3; i++)
        free(o->out[i].data);
    if (o->resume_ev)
        event_free(o->resume_ev);
    memset(o, 0, sizeof(*o));
}

static void exec_start(struct ex_obs *o, struct cws_rt_sandbox *sb, const char *const *argv,
                       bool tty)
{
    struct cws_error err;
    struct cws_rt_exec_spec spec = {.argv = argv, .tty = tty, .cols = 100, .rows = 30};
    o->resume_ev = evtimer_new(fx.base, on_resume, o);
    int r = cws_rt_exec_start(sb, &spec, &ex_events, o, &o->ex, &err);
    ck_assert_msg(r == 0, "exec: %s", err.message);
}

/* Run sh -c script to the end; stdout in o->out[1]. */
static void exec_sh(struct ex_obs *o, struct cws_rt_sandbox *sb, const char *script)
{
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    memset(o, 0, sizeof(*o));
    exec_start(o, sb, argv, false);
    cws_rt_exec_close_stdin(o->ex);
    ck_assert_msg(wait_for(&o->done, 20000), "exec of \"%s\" did not end", script);
    ck_assert_msg(o->exited, "exec of \"%s\" failed: %s", script, o->err.message);
}

static const char *out1(const struct ex_obs *o)
{
    return o->out[1].data ? o->out[1].data : "";
}

/* A sandbox that runs until stopped, for tests of exec, files and isolation. */
static void start_idle(struct sb_obs *o, char *id, size_t size, const char *name)
{
    start_sh(o, id, size, name, "while :; do sleep 1; done");
    wait_running(o);
}

/* Run the loop until the log of sandbox id contains text. */
struct log_wait {
    const char *id;
    const char *text;
    bool found;
};

static int log_scan(const struct cws_rt_log_entry *e, void *ud)
{
    struct log_wait *w = ud;
    if (memmem(e->data, e->len, w->text, strlen(w->text)))
        w->found = true;
    return 0;
}

static void log_wait_check(void *ud)
{
    struct log_wait *w = ud;
    uint64_t next;
    struct cws_error err;
    ck_assert_int_eq(cws_rt_log_read(fx.rt, w->id, 0, log_scan, w, &next, &err), 0);
}

static void wait_log(struct sb_obs *o, const char *id, const char *text)
{
    struct log_wait w = {id, text, false};
    struct cws_rt_log_watch *watch = NULL;
    struct cws_error err;
    ck_assert_int_eq(cws_rt_log_watch(o->sb, log_wait_check, &w, &watch, &err), 0);
    log_wait_check(&w);
    ck_assert_msg(wait_for(&w.found, 10000), "\"%s\" never appeared in the log", text);
    cws_rt_log_unwatch(watch);
}

static void stop_and_wait(struct sb_obs *o)
{
    ck_assert_int_eq(cws_rt_sandbox_stop(o->sb, 0), 0);
    wait_exit(o, 10000);
}

/* ================= life cycle ================= */

START_TEST(test_exit_codes)
{
    struct sb_obs a, b, c;
    char ia[64], ib[64], ic[64];
    start_sh(&a, ia, sizeof(ia), "exit0", "exit 0");
    start_sh(&b, ib, sizeof(ib), "exit3", "exit 3");
    start_sh(&c, ic, sizeof(ic), "sig", "kill -SEGV $$");
    wait_exit(&a, 10000);
    wait_exit(&b, 10000);
    wait_exit(&c, 10000);
    ck_assert_msg(a.running && b.running && c.running, "%d %d %d: %d %s / %d %s / %d %s", a.running,
                  b.running, c.running, a.code, a.reason, b.code, b.reason, c.code, c.reason);
    ck_assert_int_eq(a.code, 0);
    ck_assert_str_eq(a.reason, "");
    ck_assert_int_eq(b.code, 3);
    ck_assert_int_eq(c.code, 128 + SIGSEGV);
    release(&a);
    release(&b);
    release(&c);
    /* Ended sandboxes' directories can be removed; a running one's cannot. */
    struct cws_error err;
    ck_assert_int_eq(cws_rt_sandbox_remove(fx.rt, ia, &err), 0);
    ck_assert_int_eq(cws_rt_sandbox_remove(fx.rt, ia, &err), -CWS_E_NOT_FOUND);
}
END_TEST

START_TEST(test_start_errors)
{
    struct sb_obs o;
    struct cws_error err;
    const char *argv[] = {"true", NULL};
    struct cws_rt_spec bad = {.id = "Bad_Id", .argv = argv};
    struct cws_rt_sandbox *sb = NULL;
    ck_assert_int_eq(cws_rt_sandbox_start(fx.rt, &bad, &sb_events, &o, &sb, NULL, &err),
                     -CWS_E_INVALID_ARGUMENT);
    struct cws_rt_spec badq = {.id = "q", .argv = argv, .memory_limit = "lots"};
    ck_assert_int_eq(cws_rt_sandbox_start(fx.rt, &badq, &sb_events, &o, &sb, NULL, &err),
                     -CWS_E_INVALID_ARGUMENT);
    /* A command that does not exist never runs: -1 with the reason. */
    char id[64];
    make_id(id, sizeof(id), "noexec");
    const char *missing[] = {"/no/such/command", NULL};
    struct cws_rt_spec spec = {.id = id, .argv = missing};
    start_spec(&o, &spec);
    wait_exit(&o, 10000);
    ck_assert(!o.running);
    ck_assert_int_eq(o.code, -1);
    ck_assert_msg(strstr(o.reason, "/no/such/command"), "reason: %s", o.reason);
    /* The id is taken until removed. */
    struct sb_obs dup;
    ck_assert_int_eq(cws_rt_sandbox_start(fx.rt, &spec, &sb_events, &dup, &dup.sb, NULL, &err),
                     -CWS_E_ALREADY_EXISTS);
    release(&o);
}
END_TEST

START_TEST(test_stop_graceful)
{
    struct sb_obs o;
    char id[64];
    start_sh(&o, id, sizeof(id), "trap",
             "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done");
    wait_running(&o);
    wait_log(&o, id, "ready"); /* the trap is set */
    ck_assert_int_eq(cws_rt_sandbox_stop(o.sb, 10000), 0);
    wait_exit(&o, 5000);
    ck_assert_int_eq(o.code, 0);
    ck_assert_str_eq(o.reason, "stopped");
    release(&o);
}
END_TEST

START_TEST(test_stop_grace_then_kill)
{
    struct sb_obs o;
    char id[64];
    start_sh(&o, id, sizeof(id), "ignore",
             "trap '' TERM; echo ready; while :; do sleep 0.05; done");
    wait_running(&o);
    wait_log(&o, id, "ready");
    int64_t t0 = now_ms();
    ck_assert_int_eq(cws_rt_sandbox_stop(o.sb, 1500), 0);
    /* Not before the grace... */
    ck_assert(!wait_for(&o.exited, 1200));
    /* ...a repeated stop with a longer grace does not extend it... */
    ck_assert_int_eq(cws_rt_sandbox_stop(o.sb, 60000), 0);
    /* ...and killed after it. */
    wait_exit(&o, 5000);
    ck_assert_int_ge(o.exited_at_ms - t0, 1500);
    ck_assert_int_eq(o.code, 137);
    ck_assert_str_eq(o.reason, "stopped");
    release(&o);
}
END_TEST

START_TEST(test_max_lifetime)
{
    struct sb_obs o;
    char id[64];
    make_id(id, sizeof(id), "life");
    const char *argv[] = {"sleep", "100", NULL};
    struct cws_rt_spec spec = {.id = id, .argv = argv, .max_lifetime_s = 1};
    int64_t t0 = now_ms();
    start_spec(&o, &spec);
    wait_running(&o);
    wait_exit(&o, 8000);
    ck_assert_int_ge(o.exited_at_ms - t0, 1000);
    ck_assert_int_eq(o.code, 128 + SIGTERM);
    ck_assert_msg(strstr(o.reason, "max lifetime of 1 s reached"), "reason: %s", o.reason);
    release(&o);
}
END_TEST

START_TEST(test_notes)
{
    struct sb_obs o;
    char id[64];
    make_id(id, sizeof(id), "notes");
    const char *argv[] = {"true", NULL};
    struct cws_rt_spec spec = {.id = id,
                               .argv = argv,
                               .image = "python:3.12",
                               .cpu_limit = "500m",
                               .memory_limit = "512Mi"};
    start_spec(&o, &spec);
    ck_assert_ptr_nonnull(o.notes);
    ck_assert_msg(strstr(o.notes, "image python:3.12 not found in"), "%s", o.notes);
    ck_assert_msg(strstr(o.notes, "using the host root read-only"), "%s", o.notes);
    ck_assert_msg(strstr(o.notes, "resource limits not enforced: no delegated cgroup v2"), "%s",
                  o.notes);
    wait_exit(&o, 10000);
    ck_assert_int_eq(o.code, 0);
    release(&o);
}
END_TEST

/* An image: a directory with a root filesystem of its own (a shell and its libraries). */
START_TEST(test_image)
{
    char cmd[2048], id[64];
    snprintf(cmd, sizeof(cmd),
             "set -e; r='%s/images/tiny_1.0/rootfs'; mkdir -p \"$r/bin\" \"$r/etc\"; "
             "cp /bin/dash \"$r/bin/sh\"; echo image > \"$r/etc/image-marker\"; "
             "for l in $(ldd /bin/dash | grep -o '/[^ ]*'); do mkdir -p \"$r$(dirname $l)\"; "
             "cp \"$l\" \"$r$l\"; done",
             fx.state_dir);
    ck_assert_int_eq(system(cmd), 0);
    struct sb_obs o;
    struct ex_obs e;
    make_id(id, sizeof(id), "image");
    const char *argv[] = {"/bin/sh", "-c", "while :; do read x < /etc/image-marker; done", NULL};
    struct cws_rt_spec spec = {.id = id, .image = "tiny:1.0", .argv = argv};
    start_spec(&o, &spec);
    ck_assert_msg(!o.notes || !strstr(o.notes, "image"), "notes: %s", o.notes);
    wait_running(&o);
    exec_sh(&e, o.sb,
            "read m < /etc/image-marker; echo $m; [ -e /usr/bin ] || echo no-usr; "
            "echo new > /etc/written; [ -e /proc/1 ] && echo proc");
    ck_assert_str_eq(out1(&e), "image\nno-usr\nproc\n");
    ex_obs_free(&e);
    /* The image stays as it was; the sandbox's changes are in its own upper layer. */
    snprintf(cmd, sizeof(cmd), "%s/images/tiny_1.0/rootfs/etc/written", fx.state_dir);
    ck_assert_int_ne(access(cmd, F_OK), 0);
    stop_and_wait(&o);
    release(&o);
}
END_TEST

/* ================= exec ================= */

START_TEST(test_exec_basic)
{
    struct sb_obs s;
    struct ex_obs e;
    char id[64];
    start_idle(&s, id, sizeof(id), "exec");
    exec_sh(&e, s.sb, "echo out; echo err >&2; exit 5");
    ck_assert(e.started);
    ck_assert_str_eq(e.out[1].data, "out\n");
    ck_assert_str_eq(e.out[2].data, "err\n");
    ck_assert_int_eq(e.code, 5);
    ex_obs_free(&e);
    exec_sh(&e, s.sb, "kill -TERM $$");
    ck_assert_int_eq(e.code, 128 + SIGTERM);
    ex_obs_free(&e);

    const char *missing[] = {"no-such-command-here", NULL};
    exec_start(&e, s.sb, missing, false);
    ck_assert(wait_for(&e.done, 10000));
    ck_assert(e.exited);
    ck_assert_int_eq(e.code, 127);
    ck_assert_ptr_nonnull(strstr(e.out[2].data, "no-such-command-here"));
    ex_obs_free(&e);

    /* stdin, then EOF */
    const char *cat[] = {"cat", NULL};
    exec_start(&e, s.sb, cat, false);
    ck_assert_int_eq(cws_rt_exec_write(e.ex, (const uint8_t *)"hello ", 6), 0);
    ck_assert_int_eq(cws_rt_exec_write(e.ex, (const uint8_t *)"world", 5), 0);
    ck_assert_int_eq(cws_rt_exec_close_stdin(e.ex), 0);
    ck_assert(wait_for(&e.done, 10000));
    ck_assert(e.exited);
    ck_assert_int_eq(e.code, 0);
    ck_assert_str_eq(e.out[1].data, "hello world");
    ex_obs_free(&e);

    /* a signal to the command's process group */
    const char *sleeper[] = {"sleep", "100", NULL};
    exec_start(&e, s.sb, sleeper, false);
    ck_assert(wait_for(&e.started, 10000));
    ck_assert_int_eq(cws_rt_exec_signal(e.ex, SIGTERM), 0);
    ck_assert(wait_for(&e.done, 10000));
    ck_assert_int_eq(e.code, 128 + SIGTERM);
    ex_obs_free(&e);

    /* env and cwd */
    const char *argv[] = {"/bin/sh", "-c", "echo $FOO $(pwd)", NULL};
    const char *env[] = {"FOO=bar", NULL};
    struct cws_rt_exec_spec spec = {.argv = argv, .env = env, .cwd = "/tmp"};
    struct cws_error err;
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(cws_rt_exec_start(s.sb, &spec, &ex_events, &e, &e.ex, &err), 0);
    ck_assert(wait_for(&e.done, 10000));
    ck_assert_str_eq(out1(&e), "bar /tmp\n");
    ex_obs_free(&e);
    stop_and_wait(&s);
    release(&s);
}
END_TEST

START_TEST(test_exec_large_output)
{
    struct sb_obs s;
    struct ex_obs e;
    char id[64];
    const size_t size = 50u << 20;
    start_idle(&s, id, sizeof(id), "large");
    const char *argv[] = {"head", "-c", "52428800", "/dev/zero", NULL};
    memset(&e, 0, sizeof(e));
    e.count_only = 1;
    e.pause_every = 4u << 20;
    exec_start(&e, s.sb, argv, false);
    ck_assert(wait_for(&e.done, 60000));
    ck_assert_msg(e.exited, "%s", e.err.message);
    ck_assert_int_eq(e.code, 0);
    ck_assert_uint_eq(e.count[1], size);
    ck_assert_uint_eq(e.count[2], 0);
    ck_assert(!e.nonzero_seen);
    ck_assert_int_ge(e.pauses, 10);
    ex_obs_free(&e);
    stop_and_wait(&s);
    release(&s);
}
END_TEST

/* TTY: the size given at start, then a resize seen by the next `stty size`. */
static void tty_on_out(struct ex_obs *o, int fd)
{
    if (o->pauses == 0 && o->out[1].data && strstr(o->out[1].data, "30 100")) {
        o->pauses = 1; /* used as "resized" */
        ck_assert_int_eq(cws_rt_exec_resize(o->ex, 120, 40), 0);
        ck_assert_int_eq(cws_rt_exec_write(o->ex, (const uint8_t *)"go\n", 3), 0);
    }
}

START_TEST(test_exec_tty)
{
    struct sb_obs s;
    struct ex_obs e;
    char id[64];
    start_idle(&s, id, sizeof(id), "tty");
    const char *argv[] = {"/bin/sh", "-c", "stty size; read x; stty size; tty", NULL};
    memset(&e, 0, sizeof(e));
    e.on_out = tty_on_out;
    exec_start(&e, s.sb, argv, true);
    ck_assert(wait_for(&e.done, 10000));
    ck_assert_msg(e.exited, "%s", e.err.message);
    ck_assert_int_eq(e.code, 0);
    ck_assert_msg(strstr(out1(&e), "40 120"), "output: %s", out1(&e));
    ck_assert_msg(strstr(out1(&e), "/dev/pts/"), "output: %s", out1(&e));
    ck_assert_ptr_null(e.out[2].data); /* a terminal has one stream */
    ex_obs_free(&e);

    /* EOF on a terminal ends `cat`. */
    const char *cat[] = {"cat", NULL};
    memset(&e, 0, sizeof(e));
    exec_start(&e, s.sb, cat, true);
    ck_assert_int_eq(cws_rt_exec_write(e.ex, (const uint8_t *)"abc\n", 4), 0);
    ck_assert_int_eq(cws_rt_exec_close_stdin(e.ex), 0);
    ck_assert(wait_for(&e.done, 10000));
    ck_assert_int_eq(e.code, 0);
    ck_assert_ptr_nonnull(strstr(out1(&e), "abc"));
    ex_obs_free(&e);
    stop_and_wait(&s);
    release(&s);
}
END_TEST

/* The host pid of a process of the sandbox whose init has host pid init_pid. */
static pid_t host_pid_of(pid_t init_pid, long ns_pid)
{
    char path[128], want[128], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)init_pid);
    ssize_t n = readlink(path, want, sizeof(want) - 1);
    if (n <= 0)
        return -1;
    want[n] = '\0';
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = -1;
    while (d && found < 0 && (e = readdir(d)) != NULL) {
        long pid = strtol(e->d_name, NULL, 10);
        if (pid <= 0)
            continue;
        char ns[128];
        snprintf(path, sizeof(path), "/proc/%ld/ns/pid", pid);
        n = readlink(path, ns, sizeof(ns) - 1);
        if (n <= 0)
            continue;
        ns[n] = '\0';
        if (strcmp(ns, want) != 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/status", pid);
        FILE *f = fopen(path, "r");
        while (f && fgets(buf, sizeof(buf), f)) {
            if (strncmp(buf, "NSpid:", 6) != 0)
                continue;
            char *last = strrchr(buf, '\t');
            if (last && strtol(last + 1, NULL, 10) == ns_pid)
                found = (pid_t)pid;
        }
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return found;
}

static pid_t init_host_pid(const char *id)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/sandboxes/%s/pid", fx.state_dir, id);
    FILE *f = fopen(path, "r");
    int pid = -1;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = -1;
        fclose(f);
    }
    return pid;
}

static bool process_gone(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    bool zombie = fgets(buf, sizeof(buf), f) && strstr(buf, ") Z ");
    fclose(f);
    return zombie;
}

static bool poll_flag;
static pid_t poll_pid;
static void on_poll_gone(evutil_socket_t fd, short what, void *arg)
{
    struct event *ev = arg;
    if (process_gone(poll_pid)) {
        poll_flag = true;
        return;
    }
    struct timeval tv = {0, 10000};
    evtimer_add(ev, &tv);
}

/* Wait (bounded) until pid is gone, checking every 10 ms from the loop. */
static bool wait_gone(pid_t pid, int timeout_ms)
{
    struct event *ev = evtimer_new(fx.base, on_poll_gone, event_self_cbarg());
    struct timeval tv = {0, 0};
    poll_flag = false;
    poll_pid = pid;
    evtimer_add(ev, &tv);
    bool ok = wait_for(&poll_flag, timeout_ms);
    event_free(ev);
    return ok;
}

START_TEST(test_exec_free_kills)
{
    struct sb_obs s;
    struct ex_obs e;
    char id[64];
    start_idle(&s, id, sizeof(id), "free");
    const char *argv[] = {"/bin/sh", "-c", "echo $$; exec sleep 1000", NULL};
    memset(&e, 0, sizeof(e));
    exec_start(&e, s.sb, argv, false);
    ck_assert(wait_for(&e.got_line, 10000));
    long ns_pid = strtol(e.out[1].data, NULL, 10);
    pid_t host = host_pid_of(init_host_pid(id), ns_pid);
    ck_assert_msg(host > 0, "no host pid for sandbox pid %ld", ns_pid);
    ck_assert(!process_gone(host));
    ex_obs_free(&e); /* no event follows */
    ck_assert_msg(wait_gone(host, 5000), "process %d survived its exec handle", (int)host);
    stop_and_wait(&s);
    release(&s);
}
END_TEST

START_TEST(test_exec_after_end)
{
    struct sb_obs s;
    struct ex_obs e;
    char id[64];
    start_sh(&s, id, sizeof(id), "ended", "exit 0");
    wait_exit(&s, 10000);
    const char *argv[] = {"true", NULL};
    memset(&e, 0, sizeof(e));
    exec_start(&e, s.sb, argv, false);
    ck_assert(wait_for(&e.done, 5000));
    ck_assert(e.failed);
    ck_assert_int_eq(e.err.code, CWS_E_FAILED_PRECONDITION);
    ex_obs_free(&e);
    /* And an exec running when the sandbox ends learns it too. */
    struct sb_obs s2;
    char id2[64];
    start_idle(&s2, id2, sizeof(id2), "ending");
    const char *sleeper[] = {"sleep", "100", NULL};
    memset(&e, 0, sizeof(e));
    exec_start(&e, s2.sb, sleeper, false);
    ck_assert(wait_for(&e.started, 5000));
    stop_and_wait(&s2);
    ck_assert(wait_for(&e.done, 5000));
    ck_assert_msg(e.failed || e.code == 137, "exec ended with %d", e.code);
    ex_obs_free(&e);
    release(&s);
    release(&s2);
}
END_TEST

/* ================= files ================= */

static int file_read(struct cws_rt_sandbox *sb, const char *path, size_t max, struct buf *out,
                     uint64_t *size, struct cws_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int r = cws_rt_file_read(sb, path, max, &data, &len, size, err);
    if (r == 0) {
        buf_add(out, data, len);
        free(data);
    }
    return r;
}

START_TEST(test_files)
{
    struct sb_obs s;
    struct ex_obs e;
    struct cws_error err;
    struct buf b = {0};
    uint64_t size = 0;
    char id[64];
    start_idle(&s, id, sizeof(id), "files");

    ck_assert_int_eq(cws_rt_file_write(s.sb, "/tmp/a.txt", (const uint8_t *)"data", 4, &err), 0);
    ck_assert_int_eq(file_read(s.sb, "/tmp/a.txt", 100, &b, &size, &err), 0);
    ck_assert_str_eq(b.data, "data");
    ck_assert_uint_eq(size, 4);
    free(b.data);
    b = (struct buf){0};
    /* The sandbox sees what was written, and the server what the sandbox wrote. */
    exec_sh(&e, s.sb, "cat /tmp/a.txt; printf inside > /tmp/b.txt");
    ck_assert_str_eq(out1(&e), "data");
    ex_obs_free(&e);
    ck_assert_int_eq(file_read(s.sb, "/tmp/b.txt", 100, &b, NULL, &err), 0);
    ck_assert_str_eq(b.data, "inside");
    free(b.data);
    b = (struct buf){0};

    ck_assert_int_eq(file_read(s.sb, "/tmp/missing", 100, &b, NULL, &err), -CWS_E_NOT_FOUND);
    ck_assert_str_eq(err.reason, "CWSANDBOX_FILE_NOT_FOUND");
    ck_assert_int_eq(cws_rt_file_write(s.sb, "/no/such/dir/f", (const uint8_t *)"x", 1, &err),
                     -CWS_E_NOT_FOUND);
    ck_assert_int_eq(file_read(s.sb, "/tmp", 100, &b, NULL, &err), -CWS_E_FAILED_PRECONDITION);
    ck_assert_str_eq(err.reason, "CWSANDBOX_FILE_IS_DIRECTORY");
    ck_assert_int_eq(cws_rt_file_write(s.sb, "/tmp", (const uint8_t *)"x", 1, &err),
                     -CWS_E_FAILED_PRECONDITION);

    char big[1000];
    memset(big, 'b', sizeof(big));
    ck_assert_int_eq(cws_rt_file_write(s.sb, "/tmp/big", (const uint8_t *)big, 1000, &err), 0);
    size = 0;
    ck_assert_int_eq(file_read(s.sb, "/tmp/big", 10, &b, &size, &err), -CWS_E_RESOURCE_EXHAUSTED);
    ck_assert_str_eq(err.reason, "CWSANDBOX_FILE_TOO_LARGE");
    ck_assert_uint_eq(size, 1000);

    exec_sh(&e, s.sb, "echo secret > /tmp/locked; chmod 000 /tmp/locked");
    ex_obs_free(&e);
    int r = file_read(s.sb, "/tmp/locked", 100, &b, NULL, &err);
    if (geteuid() != 0) {
        ck_assert_int_eq(r, -CWS_E_PERMISSION_DENIED);
        ck_assert_str_eq(err.reason, "CWSANDBOX_FILE_PERMISSION_DENIED");
    } else {
        /* Root reads it, as root inside the sandbox can (CAP_DAC_OVERRIDE). */
        not_checked("files", "permission denied: root bypasses file modes (checked unprivileged)");
        ck_assert_int_eq(r, 0);
        free(b.data);
        b = (struct buf){0};
    }
    stop_and_wait(&s);
    /* An ended sandbox has no files to serve. */
    ck_assert_int_eq(file_read(s.sb, "/tmp/a.txt", 100, &b, NULL, &err),
                     -CWS_E_FAILED_PRECONDITION);
    release(&s);
}
END_TEST

START_TEST(test_file_escapes)
{
    struct sb_obs s;
    struct ex_obs e;
    struct cws_error err;
    struct buf b = {0};
    char id[64], script[2048], host_file[512], host_target[512];
    start_idle(&s, id, sizeof(id), "escape");
    /* A host file the server can read, in its state directory (hidden from the sandbox). */
    snprintf(host_file, sizeof(host_file), "%s/host-secret", fx.state_dir);
    FILE *f = fopen(host_file, "w");
    ck_assert_ptr_nonnull(f);
    fputs("HOST-SECRET", f);
    fclose(f);
    snprintf(host_target, sizeof(host_target), "%s/written-from-sandbox", fx.state_dir);
    snprintf(script, sizeof(script),
             "ln -s /etc/shadow /tmp/l-shadow; ln -s %s /tmp/l-abs; "
             "ln -s ../../../../../../../..%s /tmp/l-rel; ln -s %s /tmp/l-write; "
             "ln -s /proc/1/root /tmp/l-proc",
             host_file, host_file, host_target);
    exec_sh(&e, s.sb, script);
    ck_assert_int_eq(e.code, 0);
    ex_obs_free(&e);

    const char *paths[] = {"/tmp/l-shadow",
                           "/tmp/l-abs",
                           "/tmp/l-rel",
                           host_file,
                           "/../../../../..",
                           "/tmp/../../../etc/shadow",
                           "/tmp/l-proc/etc/hostname",
                           "/proc/1/root/etc/hostname",
                           NULL};
    char rel[600];
    snprintf(rel, sizeof(rel), "../../../../../../../..%s", host_file);
    for (int i = 0; paths[i]; i++) {
        int r = file_read(s.sb, paths[i], 1 << 20, &b, NULL, &err);
        ck_assert_msg(r < 0 || !strstr(b.data, "HOST-SECRET"), "%s reached the host", paths[i]);
        if (r == 0 && strcmp(paths[i], "/tmp/l-shadow") == 0)
            ck_assert_msg(b.len == 0, "/etc/shadow of the host through a symlink");
        free(b.data);
        b = (struct buf){0};
    }
    ck_assert_int_lt(file_read(s.sb, rel, 1 << 20, &b, NULL, &err), 0);
    /* /etc/shadow itself is masked in the sandbox. */
    int r = file_read(s.sb, "/etc/shadow", 1 << 20, &b, NULL, &err);
    ck_assert_msg(r < 0 || b.len == 0, "/etc/shadow is readable: %zu bytes", b.len);
    free(b.data);
    b = (struct buf){0};
    /* Writing through a symlink to a host path lands inside, never on the host. */
    r = cws_rt_file_write(s.sb, "/tmp/l-write", (const uint8_t *)"x", 1, &err);
    ck_assert_int_ne(access(host_target, F_OK), 0);
    r = cws_rt_file_write(s.sb, host_target, (const uint8_t *)"x", 1, &err);
    ck_assert_int_ne(access(host_target, F_OK), 0);
    stop_and_wait(&s);
    release(&s);
}
END_TEST

/* ================= logs ================= */

struct log_collect {
    struct buf fd[3];
    uint64_t last_offset;
    int entries;
    int stop_after;
};

static int collect(const struct cws_rt_log_entry *e, void *ud)
{
    struct log_collect *c = ud;
    ck_assert(e->fd == 1 || e->fd == 2);
    ck_assert(e->time_ns > 0);
    if (c->entries > 0)
        ck_assert_uint_ge(e->offset, c->last_offset);
    c->last_offset = e->offset;
    buf_add(&c->fd[e->fd], e->data, e->len);
    c->entries++;
    return c->stop_after && c->entries >= c->stop_after;
}

static void log_collect_free(struct log_collect *c)
{
    for (int i = 0; i < 3; i++)
        free(c->fd[i].data);
    memset(c, 0, sizeof(*c));
}

static bool watch_fired, watch_fired_after_exit;
static void on_watch(void *ud)
{
    const struct sb_obs *o = ud;
    watch_fired = true;
    if (o->exited)
        watch_fired_after_exit = true;
}

START_TEST(test_logs)
{
    struct sb_obs s;
    char id[64];
    struct cws_error err;
    struct log_collect c = {0};
    uint64_t next = 0;
    start_sh(&s, id, sizeof(id), "logs",
             "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three");
    struct cws_rt_log_watch *w = NULL;
    ck_assert_int_eq(cws_rt_log_watch(s.sb, on_watch, &s, &w, &err), 0);
    watch_fired = watch_fired_after_exit = false;
    ck_assert_msg(wait_for(&watch_fired, 5000), "the watch did not fire on output");
    wait_exit(&s, 10000);
    ck_assert_msg(wait_for(&watch_fired_after_exit, 5000), "the watch did not fire at the end");
    cws_rt_log_unwatch(w);
    release(&s);

    ck_assert_int_eq(cws_rt_log_read(fx.rt, id, 0, collect, &c, &next, &err), 0);
    ck_assert_str_eq(c.fd[1].data, "one\nthree\n");
    ck_assert_str_eq(c.fd[2].data, "two\n");
    ck_assert_uint_eq(next, 14);
    log_collect_free(&c);
    /* From an offset: entries starting there; stopping early. */
    ck_assert_int_eq(cws_rt_log_read(fx.rt, id, 4, collect, &c, &next, &err), 0);
    ck_assert_str_eq(c.fd[1].data, "three\n");
    ck_assert_str_eq(c.fd[2].data, "two\n");
    log_collect_free(&c);
    c.stop_after = 1;
    ck_assert_int_eq(cws_rt_log_read(fx.rt, id, 0, collect, &c, &next, &err), 0);
    ck_assert_uint_eq(next, 4);
    log_collect_free(&c);
    ck_assert_int_eq(cws_rt_log_read(fx.rt, id, 14, collect, &c, &next, &err), 0);
    ck_assert_int_eq(c.entries, 0);
    ck_assert_uint_eq(next, 14);
    ck_assert_int_eq(cws_rt_log_read(fx.rt, "no-such-sandbox", 0, collect, &c, &next, &err),
                     -CWS_E_NOT_FOUND);
    log_collect_free(&c);
}
END_TEST

/* ================= attach after a restart ================= */

START_TEST(test_attach)
{
    struct sb_obs run, end, again;
    struct ex_obs e;
    struct cws_error err;
    char id_run[64], id_end[64];
    start_sh(&run, id_run, sizeof(id_run), "keep", "echo started; while :; do sleep 0.05; done");
    start_sh(&end, id_end, sizeof(id_end), "short", "read x < /dev/null; sleep 0.3; exit 7");
    wait_running(&run);
    wait_running(&end);
    release(&run);
    release(&end);
    cws_rt_free(fx.rt);
    new_runtime();

    /* The running one: no on_running again, exec works, exit is reported later. */
    memset(&again, 0, sizeof(again));
    ck_assert_int_eq(cws_rt_sandbox_attach(fx.rt, id_run, &sb_events, &again, &again.sb, &err), 0);
    exec_sh(&e, again.sb, "echo still here");
    ck_assert_str_eq(out1(&e), "still here\n");
    ex_obs_free(&e);
    ck_assert(!again.running);
    struct sb_obs ended;
    memset(&ended, 0, sizeof(ended));
    ck_assert_int_eq(cws_rt_sandbox_attach(fx.rt, id_end, &sb_events, &ended, &ended.sb, &err), 0);
    wait_exit(&ended, 10000);
    ck_assert_int_eq(ended.code, 7);
    release(&ended);

    /* Once more, now that it has ended while nobody watched: reported from the record. */
    cws_rt_free(fx.rt);
    new_runtime();
    memset(&ended, 0, sizeof(ended));
    ck_assert_int_eq(cws_rt_sandbox_attach(fx.rt, id_end, &sb_events, &ended, &ended.sb, &err), 0);
    wait_exit(&ended, 2000);
    ck_assert_int_eq(ended.code, 7);
    ck_assert(!ended.running);
    release(&ended);
    ck_assert_int_eq(cws_rt_sandbox_attach(fx.rt, "never-was", &sb_events, &ended, &ended.sb, &err),
                     -CWS_E_NOT_FOUND);

    ck_assert_int_eq(cws_rt_sandbox_attach(fx.rt, id_run, &sb_events, &again, &again.sb, &err), 0);
    ck_assert_int_eq(cws_rt_sandbox_stop(again.sb, 0), 0);
    wait_exit(&again, 10000);
    ck_assert_int_eq(again.code, 137);
    release(&again);
    /* The log of the earlier server's sandbox is still there. */
    struct log_collect c = {0};
    uint64_t next;
    ck_assert_int_eq(cws_rt_log_read(fx.rt, id_run, 0, collect, &c, &next, &err), 0);
    ck_assert_str_eq(c.fd[1].data, "started\n");
    log_collect_free(&c);
}
END_TEST

/* A server process that starts sandboxes and dies without a word. */
static _Noreturn void crashing_server(const char *id_long, const char *id_short)
{
    struct sb_obs a, b;
    struct cws_error err;
    fx.base = event_base_new();
    new_runtime();
    const char *long_argv[] = {"/bin/sh", "-c", "while :; do sleep 0.05; done", NULL};
    const char *short_argv[] = {"/bin/sh", "-c", "sleep 0.5; exit 9", NULL};
    struct cws_rt_spec sa = {.id = id_long, .argv = long_argv, .max_lifetime_s = 2};
    struct cws_rt_spec sb = {.id = id_short, .argv = short_argv};
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    if (cws_rt_sandbox_start(fx.rt, &sa, &sb_events, &a, &a.sb, NULL, &err) < 0 ||
        cws_rt_sandbox_start(fx.rt, &sb, &sb_events, &b, &b.sb, NULL, &err) < 0 ||
        !wait_for(&a.running, 10000) || !wait_for(&b.running, 10000))
        _exit(1);
    _exit(0);
}

/* Attach from another process than the one that started them: init is not our child, so
 * only its pidfd and the records tell; the lifetime is re-armed from the recorded start. */
START_TEST(test_restart)
{
    char id_long[64], id_short[64];
    struct sb_obs a, b;
    struct ex_obs e;
    struct cws_error err;
    make_id(id_long, sizeof(id_long), "survivor");
    make_id(id_short, sizeof(id_short), "short");
    int64_t t0 = now_ms();
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        crashing_server(id_long, id_short);
    int status = 0;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the first server failed");

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    ck_assert_int_eq(cws_rt_sandbox_attach(fx.rt, id_long, &sb_events, &a, &a.sb, &err), 0);
    ck_assert_int_eq(cws_rt_sandbox_attach(fx.rt, id_short, &sb_events, &b, &b.sb, &err), 0);
    exec_sh(&e, a.sb, "echo alive");
    ck_assert_str_eq(out1(&e), "alive\n");
    ex_obs_free(&e);
    wait_exit(&b, 5000);
    ck_assert_int_eq(b.code, 9);
    wait_exit(&a, 10000);
    ck_assert_int_ge(a.exited_at_ms - t0, 2000);
    ck_assert_int_eq(a.code, 128 + SIGTERM);
    ck_assert_msg(strstr(a.reason, "max lifetime of 2 s reached"), "reason: %s", a.reason);
    ck_assert(!a.running && !b.running);
    release(&a);
    release(&b);
}
END_TEST

/* ================= isolation ================= */

/* Plant name under the user's home unless it exists; returns whether we created it. */
static bool plant(const char *dir, const char *name, const char *content, char *path, size_t size)
{
    int n = snprintf(path, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size || access(path, F_OK) == 0)
        return false;
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    fputs(content, f);
    fclose(f);
    return true;
}

START_TEST(test_isolation)
{
    struct sb_obs s;
    struct ex_obs e;
    char id[64], script[2048];
    const char *home = getenv("HOME");
    char netrc[512], sshdir[512], idkey[512];
    ck_assert_ptr_nonnull(home);
    bool made_netrc =
        plant(home, ".netrc", "machine x login y password NETRC-SECRET\n", netrc, sizeof(netrc));
    snprintf(sshdir, sizeof(sshdir), "%s/.ssh", home);
    bool made_sshdir = mkdir(sshdir, 0700) == 0;
    bool made_key = plant(sshdir, "id_cwstest", "KEY-SECRET\n", idkey, sizeof(idkey));

    make_id(id, sizeof(id), "iso");
    const char *argv[] = {"/bin/sh", "-c", "while :; do sleep 1; done", NULL};
    struct cws_rt_file files[] = {
        {"/etc/cws-test.conf", (const uint8_t *)"abc", 3},
        {"/app/sub/data.txt", (const uint8_t *)"xyz", 3},
    };
    struct cws_rt_spec spec = {.id = id, .argv = argv, .files = files, .n_files = 2};
    start_spec(&s, &spec);
    wait_running(&s);

    exec_sh(&e, s.sb, "hostname");
    ck_assert_int_eq((int)strlen(out1(&e)), (int)strlen(id) + 1);
    ck_assert(strncmp(out1(&e), id, strlen(id)) == 0);
    ex_obs_free(&e);

    /* Only the sandbox's processes: init is PID 1, the test is not there. */
    exec_sh(
        &e, s.sb,
        "tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'; cat /proc/[0-9]*/comm");
    ck_assert_msg(strncmp(out1(&e), "cwsandbox-init", 14) == 0, "%s", out1(&e));
    ck_assert_ptr_null(strstr(out1(&e), "test_runtime"));
    long nprocs = strtol(strchr(out1(&e), '\n') + 1, NULL, 10);
    ck_assert_msg(nprocs >= 2 && nprocs < 8, "%ld processes visible", nprocs);
    ex_obs_free(&e);
    exec_sh(&e, s.sb, "ps -e | wc -l");
    ck_assert_int_lt(strtol(out1(&e), NULL, 10), 9);
    ex_obs_free(&e);

    /* Mounted files, /tmp, hidden paths, home and the server's state directory. */
    exec_sh(&e, s.sb, "cat /etc/cws-test.conf /app/sub/data.txt; echo hi > /tmp/t && cat /tmp/t");
    ck_assert_str_eq(out1(&e), "abcxyzhi\n");
    ex_obs_free(&e);
    snprintf(script, sizeof(script),
             "cat %s %s; ls -A %s | wc -l; ls -A /usr/share/doc | wc -l; ls -A /home | wc -l; "
             "ls -A /root | wc -l",
             netrc, idkey, fx.state_dir);
    exec_sh(&e, s.sb, script);
    ck_assert_ptr_null(strstr(out1(&e), "SECRET"));
    ck_assert_msg(strcmp(out1(&e), "0\n0\n0\n0\n") == 0, "visible: %s", out1(&e));
    ex_obs_free(&e);

    /* Writes stay in the sandbox. */
    snprintf(script, sizeof(script), "echo x > /etc/cws-host-write-%d && echo written",
             (int)getpid());
    exec_sh(&e, s.sb, script);
    ck_assert_str_eq(out1(&e), "written\n");
    ex_obs_free(&e);
    snprintf(script, sizeof(script), "/etc/cws-host-write-%d", (int)getpid());
    ck_assert_int_ne(access(script, F_OK), 0);

    /* init's fds lead to the host side of the sandbox directory: out of reach. */
    exec_sh(&e, s.sb,
            "readlink /proc/1/fd/4 2>/dev/null | wc -c; ls /proc/1/fd/4/ 2>/dev/null | wc -l; "
            "ls /proc/1/root/ 2>/dev/null | wc -l; cat /proc/1/environ 2>/dev/null | wc -c");
    ck_assert_msg(strcmp(out1(&e), "0\n0\n0\n0\n") == 0, "/proc/1 of init: %s", out1(&e));
    ex_obs_free(&e);

    /* No capability to undo the hiding. */
    exec_sh(&e, s.sb,
            "echo h > /proc/sysrq-trigger 2>/dev/null && echo sysrq; "
            "head -c 1 /proc/kcore 2>/dev/null | wc -c; ls /dev | wc -l; "
            "umount /root 2>/dev/null && echo unmounted; "
            "mount -t tmpfs x /mnt 2>/dev/null && echo mounted; "
            "grep CapEff /proc/self/status");
    ck_assert_ptr_null(strstr(out1(&e), "sysrq"));
    ck_assert_msg(strncmp(out1(&e), "0\n", 2) == 0, "kcore: %s", out1(&e));
    ck_assert_int_lt(strtol(strchr(out1(&e), '\n') + 1, NULL, 10), 20); /* a minimal /dev */
    ck_assert_ptr_null(strstr(out1(&e), "unmounted"));
    ck_assert_ptr_null(strstr(out1(&e), "mounted\n"));
    ck_assert_ptr_null(strstr(out1(&e), "000001ffffffffff"));
    ex_obs_free(&e);

    stop_and_wait(&s);
    release(&s);
    if (made_netrc)
        unlink(netrc);
    if (made_key)
        unlink(idkey);
    if (made_sshdir)
        rmdir(sshdir);
}
END_TEST

static int listen_tcp(const char *addr_be, in_addr_t addr, int *ret_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = addr};
    socklen_t len = sizeof(sa);
    (void)addr_be;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *ret_port = ntohs(sa.sin_port);
    return fd;
}

/* The first non-loopback IPv4 address of the host, or 0. */
static in_addr_t host_address(char *text, size_t size)
{
    struct ifaddrs *ifs = NULL, *i;
    in_addr_t found = 0;
    if (getifaddrs(&ifs) < 0)
        return 0;
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        struct sockaddr_in *sa = (struct sockaddr_in *)i->ifa_addr;
        if ((ntohl(sa->sin_addr.s_addr) >> 24) == 127)
            continue;
        found = sa->sin_addr.s_addr;
        unsigned a = ntohl(found);
        snprintf(text, size, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
    }
    freeifaddrs(ifs);
    return found;
}

static bool egress_possible(const char *notes)
{
    return !notes || !strstr(notes, "no network egress");
}

START_TEST(test_network)
{
    struct sb_obs s;
    struct ex_obs e;
    char id[64], script[1024], addr[64];
    int lo_port, pub_port;
    int lo_fd = listen_tcp("127.0.0.1", htonl(INADDR_LOOPBACK), &lo_port);
    in_addr_t pub = host_address(addr, sizeof(addr));
    int pub_fd = pub ? listen_tcp(addr, pub, &pub_port) : -1;

    make_id(id, sizeof(id), "net");
    const char *argv[] = {"/bin/sh", "-c", "while :; do sleep 1; done", NULL};
    struct cws_rt_spec spec = {.id = id, .argv = argv};
    start_spec(&s, &spec);
    wait_running(&s);
    /* The host's loopback services: not through slirp's gateway, not as 127.0.0.1. */
    snprintf(script, sizeof(script),
             "timeout 5 bash -c 'exec 3<>/dev/tcp/10.0.2.2/%d' 2>/dev/null && echo reached-gw; "
             "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null && echo reached-lo; "
             "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '",
             lo_port, lo_port);
    exec_sh(&e, s.sb, script);
    ck_assert_ptr_null(strstr(out1(&e), "reached"));
    ck_assert_int_lt(accept(lo_fd, NULL, NULL), 0);
    if (egress_possible(s.notes)) {
        ck_assert_msg(strstr(out1(&e), "tap0"), "interfaces: %s", out1(&e));
    } else {
        not_checked("network", s.notes);
        ck_assert_str_eq(out1(&e), "lo\n");
    }
    ex_obs_free(&e);
    /* Egress: a host address that is not loopback is reached through the tap. */
    if (pub && egress_possible(s.notes)) {
        snprintf(script, sizeof(script),
                 "timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d' && echo reached", addr, pub_port);
        exec_sh(&e, s.sb, script);
        ck_assert_msg(strstr(out1(&e), "reached"), "egress to %s failed: %s", addr,
                      e.out[2].data ? e.out[2].data : "");
        ex_obs_free(&e);
    } else if (!pub) {
        not_checked("network", "egress: the host has no non-loopback IPv4 address");
    }
    stop_and_wait(&s);
    release(&s);

    /* deny_egress: loopback only, and it is up. */
    make_id(id, sizeof(id), "deny");
    struct cws_rt_spec deny = {.id = id, .argv = argv, .deny_egress = true};
    start_spec(&s, &deny);
    wait_running(&s);
    snprintf(script, sizeof(script),
             "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; "
             "timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d' 2>/dev/null && echo reached; "
             "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); "
             "s.listen(); c=socket.create_connection(s.getsockname()); print(\"lo-ok\")'",
             pub ? addr : "10.0.2.2", pub ? pub_port : 1);
    exec_sh(&e, s.sb, script);
    ck_assert_msg(strcmp(out1(&e), "lo\nlo-ok\n") == 0, "deny_egress: %s", out1(&e));
    ex_obs_free(&e);
    stop_and_wait(&s);
    release(&s);
    close(lo_fd);
    if (pub_fd >= 0)
        close(pub_fd);
}
END_TEST

START_TEST(test_service_port)
{
    struct sb_obs s;
    struct ex_obs e;
    char id[64];
    make_id(id, sizeof(id), "port");
    const char *argv[] = {
        "python3", "-c",
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        "s.bind(('0.0.0.0',8080))\ns.listen()\nprint('listening',flush=True)\n"
        "while True:\n c,_=s.accept()\n c.sendall(b'hello from the sandbox')\n c.close()\n",
        NULL};
    int ports[] = {8080};
    struct cws_rt_spec spec = {.id = id, .argv = argv, .ports = ports, .n_ports = 1};
    start_spec(&s, &spec);
    wait_running(&s);
    const char *url = cws_rt_sandbox_service_url(s.sb, 8080);
    if (!egress_possible(s.notes)) {
        not_checked("service port", s.notes);
        ck_assert_ptr_null(url);
        stop_and_wait(&s);
        release(&s);
        return;
    }
    ck_assert_ptr_nonnull(url);
    ck_assert_ptr_null(cws_rt_sandbox_service_url(s.sb, 9999));
    int port = atoi(strrchr(url, ':') + 1);
    ck_assert_int_gt(port, 0);
    /* Wait until the server inside listens (it says so in the log), then connect. */
    exec_sh(&e, s.sb,
            "for i in $(seq 100); do grep -q 8080 /proc/net/tcp 2>/dev/null && "
            "grep -q ' 0A ' /proc/net/tcp && break; sleep 0.05; done");
    ex_obs_free(&e);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char buf[64] = {0};
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_WAITALL);
    close(fd);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(buf, "hello from the sandbox");
    stop_and_wait(&s);
    release(&s);
}
END_TEST

/* ================= timings ================= */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

START_TEST(test_timings)
{
    enum { STARTS = 20, EXECS = 100 };
    double start_us[STARTS], exec_us[EXECS];
    struct sb_obs s;
    struct ex_obs e;
    char id[64];
    const char *argv[] = {"true", NULL};
    for (int i = 0; i < STARTS; i++) {
        make_id(id, sizeof(id), "time");
        const char *sleeper[] = {"sleep", "100", NULL};
        struct cws_rt_spec spec = {.id = id, .argv = sleeper, .deny_egress = i % 2 == 0};
        double t0 = now_us();
        start_spec(&s, &spec);
        wait_running(&s);
        start_us[i] = now_us() - t0;
        if (i < STARTS - 1) {
            stop_and_wait(&s);
            release(&s);
        }
    }
    for (int i = 0; i < EXECS; i++) {
        memset(&e, 0, sizeof(e));
        double t0 = now_us();
        exec_start(&e, s.sb, argv, false);
        ck_assert(wait_for(&e.done, 5000));
        exec_us[i] = now_us() - t0;
        ck_assert_int_eq(e.code, 0);
        ex_obs_free(&e);
    }
    qsort(start_us, STARTS, sizeof(double), cmp_double);
    qsort(exec_us, EXECS, sizeof(double), cmp_double);
    fprintf(stderr,
            "TIMINGS (uid %d): create->RUNNING p50 %.1f ms p90 %.1f ms; exec `true` round trip "
            "p50 %.2f ms p90 %.2f ms\n",
            (int)getuid(), start_us[STARTS / 2] / 1000, start_us[STARTS * 9 / 10] / 1000,
            exec_us[EXECS / 2] / 1000, exec_us[EXECS * 9 / 10] / 1000);
    /* Loose bounds (sanitizer builds are slower); the numbers are printed for the record. */
    ck_assert_msg(start_us[STARTS / 2] < 200000, "create->RUNNING p50 %.1f ms",
                  start_us[STARTS / 2] / 1000);
    ck_assert_msg(exec_us[EXECS / 2] < 50000, "exec p50 %.2f ms", exec_us[EXECS / 2] / 1000);
    stop_and_wait(&s);
    release(&s);
}
END_TEST

static Suite *runtime_suite(void)
{
    Suite *s = suite_create("runtime");
    struct {
        const char *name;
        const TTest *test;
    } tests[] = {
        {"exit_codes", test_exit_codes},
        {"start_errors", test_start_errors},
        {"stop_graceful", test_stop_graceful},
        {"stop_grace_then_kill", test_stop_grace_then_kill},
        {"max_lifetime", test_max_lifetime},
        {"notes", test_notes},
        {"image", test_image},
        {"exec_basic", test_exec_basic},
        {"exec_large_output", test_exec_large_output},
        {"exec_tty", test_exec_tty},
        {"exec_free_kills", test_exec_free_kills},
        {"exec_after_end", test_exec_after_end},
        {"files", test_files},
        {"file_escapes", test_file_escapes},
        {"logs", test_logs},
        {"attach", test_attach},
        {"restart", test_restart},
        {"isolation", test_isolation},
        {"network", test_network},
        {"service_port", test_service_port},
        {"timings", test_timings},
    };
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        TCase *tc = tcase_create(tests[i].name);
        tcase_add_unchecked_fixture(tc, make_state_dir, sweep);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        _tcase_add_test(tc, tests[i].test, 0, 0, 0, 1);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH_OF_CWSANDBOX_INIT\n", argv[0]);
        return 2;
    }
    init_path = argv[1];
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(runtime_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
