/* cwsandboxd's configuration, credentials and backend choice (DESIGN §4), against the real
 * daemon and an independent gRPC peer (record_peer.py, grpcio) that records the metadata of
 * every call it receives. Each test gets a private tree (run, state, config, home), a peer on
 * 127.0.0.1:<port>, and a daemon started here (not by harness.c: these tests need files in
 * the tree before the daemon starts, extra flags, and its stderr captured to a file).
 *
 * The secrets are distinctive strings (K1 "k1-…", W1, W2, C1, C2) so that a leak check never
 * matches by accident. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rpc_encode.h"

#define K1 "k1-cwsdtest-5e3f"
#define W1 "w1-cwsdtest-8a1c"
#define W2 "w2-cwsdtest-2d7b"
#define W3 "w3-cwsdtest-61e0"
#define C1 "c1-cwsdtest-9b44"
#define C2 "c2-cwsdtest-03fa"

#define GET_SANDBOX "/coreweave.sandbox.v1.SandboxService/GetSandbox"
#define SANDBOX_ID  "sbx-cfgtest-1"

/* Every variable the daemon reads for its configuration or credentials; the child starts
 * without them and gets only what a test passes. */
static const char *const scrubbed_env[] = {
    "CWSANDBOX_API_KEY",
    "WANDB_API_KEY",
    "WANDB_ENTITY_NAME",
    "WANDB_PROJECT_NAME",
    "CWSANDBOX_BASE_URL",
    "CWSANDBOX_BACKEND",
    "CWSANDBOX_LOG_LEVEL",
    "CWSANDBOX_SESSION",
    "JOURNAL_STREAM",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "NETRC",
    NULL,
};

static char root[256];        /* this test's tree */
static char log_path[300];    /* the daemon's stderr */
static char record_path[300]; /* the peer's JSON lines */
static char peer_url[64];     /* http://127.0.0.1:PORT */

static struct {
    pid_t pid;
    int stdin_fd; /* closing it stops the peer */
} peer = {0, -1};

static struct th_daemon dmn;
static int dmn_exit_status; /* when it exited before READY=1 */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void path_in_root(char *buf, size_t size, const char *rel)
{
    ck_assert_int_lt(snprintf(buf, size, "%s/%s", root, rel), (int)size);
}

static void write_file(const char *rel, const char *text)
{
    char path[512], tmp[520];
    path_in_root(path, sizeof(path), rel);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    ck_assert_msg(f, "cannot write %s: %s", tmp, strerror(errno));
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    chmod(tmp, 0600);
    ck_assert_int_eq(rename(tmp, path), 0); /* atomic, as an editor or a tool would */
}

static void write_config(const char *text)
{
    write_file("config/cwsandbox/config", text);
}

static void write_netrc(const char *password)
{
    char text[256];
    snprintf(text, sizeof(text),
             "machine example.com login other password not-this-one\n"
             "machine api.wandb.ai login user password %s\n",
             password);
    write_file("home/.netrc", text);
}

/* The whole of a file, NUL-terminated ("" when missing). Caller frees. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    if (f) {
        size_t got;
        while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
            n += got;
            if (cap - n < 2) {
                cap *= 2;
                buf = realloc(buf, cap);
                ck_assert_ptr_nonnull(buf);
            }
        }
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

/* ---- the peer ---- */

static void peer_script(char *buf, size_t size)
{
    const char *env = getenv("CWS_RECORD_PEER");
    if (env && env[0]) {
        snprintf(buf, size, "%s", env);
        return;
    }
    char src[512];
    snprintf(src, sizeof(src), "%s", __FILE__); /* CMake compiles with the absolute path */
    snprintf(buf, size, "%s/record_peer.py", dirname(src));
}

static void peer_start(void)
{
    char script[600], peer_log[300];
    int out[2], in[2];
    peer_script(script, sizeof(script));
    ck_assert_msg(access(script, R_OK) == 0, "no peer script at %s", script);
    path_in_root(peer_log, sizeof(peer_log), "peer.log");
    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int errfd = open(peer_log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        if (errfd >= 0)
            dup2(errfd, STDERR_FILENO);
        execl("/usr/bin/python3", "/usr/bin/python3", script, "--record", record_path,
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    peer.pid = pid;
    peer.stdin_fd = in[1];

    char line[128];
    size_t n = 0;
    int64_t until = now_ms() + 15000;
    int port = 0;
    while (!port && now_ms() < until && n < sizeof(line) - 1) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        if (poll(&p, 1, (int)(until - now_ms())) != 1)
            break;
        ssize_t r = read(out[0], line + n, sizeof(line) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        line[n] = '\0';
        if (strchr(line, '\n'))
            sscanf(line, "PORT %d", &port);
    }
    close(out[0]);
    if (!port) {
        char *err = slurp(peer_log);
        ck_abort_msg("record_peer.py did not report its port; its stderr: %s", err);
    }
    snprintf(peer_url, sizeof(peer_url), "http://127.0.0.1:%d", port);
}

static void peer_stop(void)
{
    if (peer.stdin_fd >= 0)
        close(peer.stdin_fd);
    peer.stdin_fd = -1;
    if (peer.pid > 0) {
        kill(peer.pid, SIGTERM);
        int64_t until = now_ms() + 5000;
        while (now_ms() < until && waitpid(peer.pid, NULL, WNOHANG) == 0)
            usleep(20000);
        if (kill(peer.pid, 0) == 0) {
            kill(peer.pid, SIGKILL);
            waitpid(peer.pid, NULL, 0);
        }
    }
    peer.pid = 0;
}

/* The recorded calls, one JSON line each (keys sorted, ", " and ": " separators). */
static char *records(void)
{
    return slurp(record_path);
}

/* The last recorded line of a method, copied; NULL when the peer never saw it. */
static char *last_record_of(const char *method)
{
    char *all = records(), *found = NULL, needle[200];
    snprintf(needle, sizeof(needle), "\"method\": \"%s\"", method);
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, needle)) {
            free(found);
            found = strdup(line);
        }
    free(all);
    return found;
}

static size_t count_records(void)
{
    char *all = records();
    size_t n = 0;
    for (char *p = all; *p; p++)
        n += *p == '\n';
    free(all);
    return n;
}

/* `"key": "value"` as the peer writes it; value NULL: the key with any value. */
static bool record_has(const char *line, const char *key, const char *value)
{
    char needle[300];
    if (value)
        snprintf(needle, sizeof(needle), "\"%s\": \"%s\"", key, value);
    else
        snprintf(needle, sizeof(needle), "\"%s\": ", key);
    return strstr(line, needle) != NULL;
}

/* Every call the peer saw carried key: value (not only the one the test made). */
static void all_records_have(const char *key, const char *value)
{
    char *all = records();
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n"))
        ck_assert_msg(record_has(line, key, value), "a call lacks %s: %s: %s", key,
                      value ? value : "*", line);
    free(all);
}

static void no_record_has(const char *key)
{
    char *all = records();
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n"))
        ck_assert_msg(!record_has(line, key, NULL), "a call carries %s: %s", key, line);
    free(all);
}

/* ---- the daemon ---- */

static int notify_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -1;
    strcpy(sa.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void daemon_child(const char *notify, const char *const *env, const char *const *flags)
{
    static const char *const dirs[][2] = {{"XDG_RUNTIME_DIR", "run"},
                                          {"XDG_STATE_HOME", "state"},
                                          {"XDG_CONFIG_HOME", "config"},
                                          {"HOME", "home"}};
    char buf[512];
    for (const char *const *v = scrubbed_env; *v; v++)
        unsetenv(*v);
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(buf, sizeof(buf), "%s/%s", root, dirs[i][1]);
        setenv(dirs[i][0], buf, 1);
    }
    setenv("CWSANDBOX_SOCKET", dmn.socket, 1);
    setenv("NOTIFY_SOCKET", notify, 1);
    if (getenv("CWSD_LOCAL_BIN"))
        setenv("CWSANDBOX_LOCAL_PATH", getenv("CWSD_LOCAL_BIN"), 1);
    for (const char *const *e = env; e && *e; e++)
        putenv((char *)*e);

    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int devnull = open("/dev/null", O_RDONLY);
    if (logfd >= 0)
        dup2(logfd, STDERR_FILENO);
    if (devnull >= 0)
        dup2(devnull, STDIN_FILENO);

    const char *bin = getenv("CWSD_BIN");
    const char *argv[16];
    size_t n = 0;
    argv[n++] = bin;
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    for (const char *const *f = flags; f && *f && n < 15; f++)
        argv[n++] = *f;
    argv[n] = NULL;
    execv(bin, (char *const *)argv);
    _exit(127);
}

/* Start cwsandboxd with extra "K=V" environment and flags. 0 once READY=1; 1 when it exited
 * first (status in dmn_exit_status); -1 on a timeout. */
static int daemon_start(const char *const *env, const char *const *flags)
{
    char notify[300];
    const char *bin = getenv("CWSD_BIN");
    ck_assert_msg(bin && bin[0], "CWSD_BIN is not set (run through CTest)");
    ck_assert_int_eq(dmn.pid, 0);
    path_in_root(notify, sizeof(notify), "notify");
    path_in_root(dmn.socket, sizeof(dmn.socket), "run/cwsandbox/cwsandboxd.sock");
    int nfd = notify_socket(notify);
    ck_assert_int_ge(nfd, 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        daemon_child(notify, env, flags);
    dmn.pid = pid;

    int64_t until = now_ms() + 15000;
    char buf[4096];
    int result = -1;
    while (now_ms() < until) {
        struct pollfd p = {.fd = nfd, .events = POLLIN};
        if (poll(&p, 1, 50) == 1) {
            ssize_t n = recv(nfd, buf, sizeof(buf) - 1, 0);
            if (n > 0) {
                buf[n] = '\0';
                if (strstr(buf, "READY=1")) {
                    result = 0;
                    break;
                }
            }
        }
        if (waitpid(pid, &dmn_exit_status, WNOHANG) == pid) {
            dmn.pid = 0;
            result = 1;
            break;
        }
    }
    close(nfd);
    return result;
}

static void daemon_start_ok(const char *const *env, const char *const *flags)
{
    int r = daemon_start(env, flags);
    if (r != 0) {
        char *log = slurp(log_path);
        ck_abort_msg("cwsandboxd %s; its log:\n%s", r > 0 ? "exited at start" : "did not start",
                     log);
    }
}

/* SIGTERM and a clean exit. The tree stays (teardown removes it). */
static void daemon_stop(void)
{
    if (dmn.pid <= 0)
        return;
    char keep[sizeof(dmn.root)];
    memcpy(keep, dmn.root, sizeof(keep));
    dmn.root[0] = '\0'; /* th_daemon_stop must not remove our tree */
    int status = th_daemon_stop(&dmn, 10000);
    memcpy(dmn.root, keep, sizeof(keep));
    dmn.pid = 0;
    ck_assert_msg(status == 0, "cwsandboxd did not exit cleanly on SIGTERM (status %d)", status);
}

/* ---- fixture ---- */

/* Every test's tree lives under one directory made and removed by the runner's own process
 * (an unchecked fixture): a failed check ends a test's process with _exit(), which runs no
 * teardown, and Check then only SIGKILLs the test's process group (daemon and peer). */
static char base_dir[128];

static void suite_setup(void)
{
    snprintf(base_dir, sizeof(base_dir), "/tmp/cwsd-cfg-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

static void remove_tree(const char *dir)
{
    char cmd[400];
    if (!dir[0] || getenv("CWS_KEEP_TREE"))
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static void suite_teardown(void)
{
    remove_tree(base_dir);
}

static void setup(void)
{
    static const char *const dirs[] = {"run", "state", "config", "config/cwsandbox", "home", NULL};
    char path[512];
    signal(SIGPIPE, SIG_IGN);
    memset(&dmn, 0, sizeof(dmn));
    snprintf(root, sizeof(root), "%s/t-XXXXXX", base_dir);
    ck_assert_ptr_nonnull(mkdtemp(root));
    for (const char *const *d = dirs; *d; d++) {
        path_in_root(path, sizeof(path), *d);
        ck_assert_int_eq(mkdir(path, 0700), 0);
    }
    path_in_root(log_path, sizeof(log_path), "daemon.log");
    path_in_root(record_path, sizeof(record_path), "record.jsonl");
    peer_start();
}

static void teardown(void)
{
    if (dmn.pid > 0) {
        kill(dmn.pid, SIGKILL);
        waitpid(dmn.pid, NULL, 0);
        dmn.pid = 0;
    }
    peer_stop();
    remove_tree(root);
}

/* ---- protocol helpers ---- */

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            !memcmp(k->via.str.ptr, key, n))
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

/* Whether any string or binary anywhere in obj (keys included) contains needle. */
static bool obj_contains(const msgpack_object *o, const char *needle)
{
    size_t n = strlen(needle);
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        return o->via.str.size >= n && memmem(o->via.str.ptr, o->via.str.size, needle, n);
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (obj_contains(&o->via.array.ptr[i], needle))
                return true;
        return false;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++)
            if (obj_contains(&o->via.map.ptr[i].key, needle) ||
                obj_contains(&o->via.map.ptr[i].val, needle))
                return true;
        return false;
    default:
        return false;
    }
}

static void msg_lacks_secrets(const struct cws_rpc_msg *m, const char *what)
{
    static const char *const secrets[] = {K1, W1, W2, W3, C1, C2, NULL};
    for (const char *const *s = secrets; *s; s++) {
        ck_assert_msg(!m->result || !obj_contains(m->result, *s), "%s answer holds %s", what, *s);
        ck_assert_msg(!m->error || !obj_contains(m->error, *s), "%s error holds %s", what, *s);
    }
}

static void log_lacks_secrets(void)
{
    static const char *const secrets[] = {K1, W1, W2, W3, C1, C2, NULL};
    char *log = slurp(log_path);
    for (const char *const *s = secrets; *s; s++) {
        char *at = strstr(log, *s);
        if (at) {
            char *bol = at;
            while (bol > log && bol[-1] != '\n')
                bol--;
            char *eol = strchr(at, '\n');
            ck_abort_msg("the daemon's log holds the secret %s: %.*s", *s,
                         (int)(eol ? eol - bol : (long)strlen(bol)), bol);
        }
    }
    free(log);
}

static void pack_hello(msgpack_packer *pk, void *ud)
{
    (void)ud;
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_kv_int(pk, "protocol", 1);
    cws_rpc_pack_kv_cstr(pk, "client", "test_daemon_config");
}

static void connect_daemon(struct th_conn *c)
{
    ck_assert_msg(th_connect(c, dmn.socket) == 0, "connect %s: %s", dmn.socket, strerror(errno));
}

/* Connect, hello; the hello answer (checked for secrets). Caller frees it. */
static struct cws_rpc_msg *hello(struct th_conn *c)
{
    connect_daemon(c);
    struct cws_rpc_msg *m = th_call(c, "hello", pack_hello, NULL, 5000);
    ck_assert_msg(m, "no answer to hello");
    ck_assert_msg(!m->error, "hello failed");
    msg_lacks_secrets(m, "hello");
    return m;
}

static void check_section(const struct cws_rpc_msg *m, const char *section, const char *key,
                          const char *want)
{
    char buf[256];
    const msgpack_object *sec = map_get(m->result, section);
    ck_assert_msg(sec && sec->type == MSGPACK_OBJECT_MAP, "no %s map in the answer", section);
    ck_assert_msg(!strcmp(th_str(sec, key, buf, sizeof(buf)), want), "%s.%s is '%s', not '%s'",
                  section, key, buf, want);
}

static void check_auth(const struct cws_rpc_msg *m, const char *strategy, const char *source)
{
    if (strategy)
        check_section(m, "auth", "strategy", strategy);
    check_section(m, "auth", "source", source);
}

static void pack_get(msgpack_packer *pk, void *ud)
{
    (void)ud;
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_kv_cstr(pk, "id", SANDBOX_ID);
    cws_rpc_pack_kv_bool(pk, "fresh", true);
}

/* sandbox.get {id, fresh: true} through the daemon; the answer (checked for secrets). */
static struct cws_rpc_msg *sandbox_get(struct th_conn *c)
{
    struct cws_rpc_msg *m = th_call(c, "sandbox.get", pack_get, NULL, 15000);
    ck_assert_msg(m, "no answer to sandbox.get");
    msg_lacks_secrets(m, "sandbox.get");
    return m;
}

/* sandbox.get that must succeed (the peer answers RUNNING); the peer's record of it. */
static char *get_through_daemon(struct th_conn *c)
{
    char buf[600];
    struct cws_rpc_msg *m = sandbox_get(c);
    if (m->error)
        ck_abort_msg("sandbox.get failed: %s: %s", th_str(m->error, "code", buf, 64),
                     th_str(m->error, "message", buf + 64, sizeof(buf) - 64));
    ck_assert_str_eq(th_str(m->result, "id", buf, sizeof(buf)), SANDBOX_ID);
    ck_assert_str_eq(th_str(m->result, "state", buf, sizeof(buf)), "running");
    cws_rpc_msg_free(m);
    char *rec = last_record_of(GET_SANDBOX);
    ck_assert_msg(rec, "the peer never saw GetSandbox");
    return rec;
}

/* daemon.status, checked for secrets. */
static void status_lacks_secrets(struct th_conn *c)
{
    struct cws_rpc_msg *m = th_call(c, "daemon.status", NULL, NULL, 5000);
    ck_assert_msg(m && !m->error, "daemon.status failed");
    msg_lacks_secrets(m, "daemon.status");
    cws_rpc_msg_free(m);
}

static void expect_header(const char *rec, const char *key, const char *value)
{
    ck_assert_msg(record_has(rec, key, value), "the peer did not get %s: %s; it got %s", key, value,
                  rec);
}

static void expect_no_header(const char *rec, const char *key)
{
    ck_assert_msg(!record_has(rec, key, NULL), "the peer got a %s header: %s", key, rec);
}

/* The env entries of a test: CWSANDBOX_BASE_URL (the peer) first, then the given ones. */
#define MAX_ENV 8
struct envv {
    char url[128];
    const char *v[MAX_ENV + 2];
};

static const char *const *env_with_peer(struct envv *e, ...)
{
    va_list ap;
    size_t n = 0;
    snprintf(e->url, sizeof(e->url), "CWSANDBOX_BASE_URL=%s", peer_url);
    e->v[n++] = e->url;
    va_start(ap, e);
    for (const char *s; (s = va_arg(ap, const char *)) && n < MAX_ENV + 1;)
        e->v[n++] = s;
    va_end(ap);
    e->v[n] = NULL;
    return e->v;
}

/* hello + status + sandbox.get; returns the GetSandbox record, and checks the leak rules. */
static char *run_get(const char *strategy, const char *source)
{
    struct th_conn c;
    struct cws_rpc_msg *h = hello(&c);
    check_section(h, "backend", "kind", "remote");
    check_section(h, "backend", "url", peer_url);
    check_auth(h, strategy, source);
    cws_rpc_msg_free(h);
    char *rec = get_through_daemon(&c);
    status_lacks_secrets(&c);
    th_close(&c);
    log_lacks_secrets();
    return rec;
}

/* Wait for a line of the daemon's log holding needle. */
static bool wait_log(const char *needle, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    do {
        char *log = slurp(log_path);
        bool found = strstr(log, needle) != NULL;
        free(log);
        if (found)
            return true;
        usleep(20000);
    } while (now_ms() < until);
    return false;
}

/* ---- credentials from the environment ---- */

START_TEST(cwsandbox_api_key_is_bearer)
{
    struct envv e;
    daemon_start_ok(env_with_peer(&e, "CWSANDBOX_API_KEY=" K1, NULL), NULL);
    char *rec = run_get("api_key", "CWSANDBOX_API_KEY");
    expect_header(rec, "authorization", "Bearer " K1);
    expect_no_header(rec, "x-api-key");
    all_records_have("authorization", "Bearer " K1);
    free(rec);
    daemon_stop();
}
END_TEST

START_TEST(wandb_key_entity_default_project)
{
    struct envv e;
    daemon_start_ok(env_with_peer(&e, "WANDB_API_KEY=" W1, "WANDB_ENTITY_NAME=e1", NULL), NULL);
    char *rec = run_get(NULL, "WANDB_API_KEY");
    expect_header(rec, "x-api-key", W1);
    expect_header(rec, "x-entity-id", "e1");
    expect_header(rec, "x-project-name", "uncategorized");
    expect_no_header(rec, "authorization");
    all_records_have("x-api-key", W1);
    free(rec);
    daemon_stop();
}
END_TEST

START_TEST(wandb_project_name)
{
    struct envv e;
    daemon_start_ok(env_with_peer(&e, "WANDB_API_KEY=" W1, "WANDB_ENTITY_NAME=e1",
                                  "WANDB_PROJECT_NAME=p1", NULL),
                    NULL);
    char *rec = run_get(NULL, "WANDB_API_KEY");
    expect_header(rec, "x-api-key", W1);
    expect_header(rec, "x-entity-id", "e1");
    expect_header(rec, "x-project-name", "p1");
    free(rec);
    daemon_stop();
}
END_TEST

START_TEST(netrc_wandb_password)
{
    struct envv e;
    write_netrc(W2);
    daemon_start_ok(env_with_peer(&e, "WANDB_ENTITY_NAME=e1", NULL), NULL);
    char *rec = run_get(NULL, "~/.netrc");
    expect_header(rec, "x-api-key", W2);
    expect_header(rec, "x-entity-id", "e1");
    expect_header(rec, "x-project-name", "uncategorized");
    expect_no_header(rec, "authorization");
    free(rec);
    daemon_stop();
}
END_TEST

START_TEST(cwsandbox_key_beats_wandb)
{
    struct envv e;
    write_netrc(W2);
    daemon_start_ok(env_with_peer(&e, "CWSANDBOX_API_KEY=" K1, "WANDB_API_KEY=" W1,
                                  "WANDB_ENTITY_NAME=e1", NULL),
                    NULL);
    char *rec = run_get("api_key", "CWSANDBOX_API_KEY");
    expect_header(rec, "authorization", "Bearer " K1);
    no_record_has("x-api-key");
    free(rec);
    daemon_stop();
}
END_TEST

START_TEST(wandb_env_beats_netrc)
{
    struct envv e;
    write_netrc(W2);
    daemon_start_ok(env_with_peer(&e, "WANDB_API_KEY=" W1, "WANDB_ENTITY_NAME=e1", NULL), NULL);
    char *rec = run_get(NULL, "WANDB_API_KEY");
    expect_header(rec, "x-api-key", W1);
    free(rec);
    daemon_stop();
}
END_TEST

/* A W&B key without WANDB_ENTITY_NAME is a clear error naming the variable: either the daemon
 * refuses to start, or its calls fail; the key is never sent and never printed. */
static void wandb_without_entity(const char *const *env, const char *source)
{
    int r = daemon_start(env, NULL);
    ck_assert_msg(r >= 0, "cwsandboxd neither started nor exited");
    char *log = slurp(log_path);
    if (r == 1) {
        ck_assert_msg(WIFEXITED(dmn_exit_status) && WEXITSTATUS(dmn_exit_status) != 0,
                      "cwsandboxd exited with status 0 without an entity");
        ck_assert_msg(strstr(log, "WANDB_ENTITY_NAME"),
                      "the start error does not name WANDB_ENTITY_NAME: %s", log);
        ck_assert_msg(strstr(log, source), "the start error does not name %s: %s", source, log);
        printf("wandb key from %s without WANDB_ENTITY_NAME: cwsandboxd refuses to start: %s",
               source, log);
    } else {
        struct th_conn c;
        char code[64], msg[600];
        connect_daemon(&c);
        struct cws_rpc_msg *m = th_call(&c, "hello", pack_hello, NULL, 5000);
        ck_assert_ptr_nonnull(m);
        msg_lacks_secrets(m, "hello");
        cws_rpc_msg_free(m);
        m = sandbox_get(&c);
        ck_assert_msg(m->error, "sandbox.get succeeded with a W&B key and no entity");
        th_str(m->error, "code", code, sizeof(code));
        th_str(m->error, "message", msg, sizeof(msg));
        ck_assert_msg(strstr(msg, "WANDB_ENTITY_NAME"),
                      "the error (%s) does not name "
                      "WANDB_ENTITY_NAME: %s",
                      code, msg);
        printf("wandb key from %s without WANDB_ENTITY_NAME: calls fail: %s: %s\n", source, code,
               msg);
        cws_rpc_msg_free(m);
        th_close(&c);
        daemon_stop();
    }
    free(log);
    no_record_has("x-api-key");
    log_lacks_secrets();
}

START_TEST(wandb_key_without_entity_is_an_error)
{
    struct envv e;
    wandb_without_entity(env_with_peer(&e, "WANDB_API_KEY=" W1, NULL), "WANDB_API_KEY");
}
END_TEST

START_TEST(netrc_key_without_entity_is_an_error)
{
    struct envv e;
    write_netrc(W2);
    wandb_without_entity(env_with_peer(&e, NULL), "netrc");
}
END_TEST

/* ---- the config file ---- */

START_TEST(config_api_key)
{
    struct envv e;
    write_config("api_key = " C1 "\n");
    daemon_start_ok(env_with_peer(&e, NULL), NULL);
    char *rec = run_get("api_key", "config");
    expect_header(rec, "authorization", "Bearer " C1);
    free(rec);
    daemon_stop();
}
END_TEST

START_TEST(config_api_key_in_daemon_section)
{
    struct envv e;
    write_config("# cwsandboxd\n[daemon]\napi_key = " C1 "\nlog_level = debug\n");
    daemon_start_ok(env_with_peer(&e, NULL), NULL);
    char *rec = run_get("api_key", "config");
    expect_header(rec, "authorization", "Bearer " C1);
    free(rec);
    daemon_stop();
}
END_TEST

START_TEST(env_key_beats_config)
{
    struct envv e;
    write_config("api_key = " C1 "\n");
    daemon_start_ok(env_with_peer(&e, "CWSANDBOX_API_KEY=" K1, NULL), NULL);
    char *rec = run_get("api_key", "CWSANDBOX_API_KEY");
    expect_header(rec, "authorization", "Bearer " K1);
    all_records_have("authorization", "Bearer " K1);
    free(rec);
    daemon_stop();
}
END_TEST

START_TEST(wandb_key_beats_config)
{
    struct envv e;
    write_config("api_key = " C1 "\n");
    daemon_start_ok(env_with_peer(&e, "WANDB_API_KEY=" W1, "WANDB_ENTITY_NAME=e1", NULL), NULL);
    char *rec = run_get(NULL, "WANDB_API_KEY");
    expect_header(rec, "x-api-key", W1);
    no_record_has("authorization");
    free(rec);
    daemon_stop();
}
END_TEST

START_TEST(unknown_config_key_is_named)
{
    struct envv e;
    write_config("api_key = " C1 "\nfrobnicate_level = 3\n[daemon]\nwibble_mode = on\n");
    daemon_start_ok(env_with_peer(&e, NULL), NULL);
    char *log = slurp(log_path);
    ck_assert_msg(strstr(log, "frobnicate_level"),
                  "the log does not name the unknown key "
                  "frobnicate_level:\n%s",
                  log);
    ck_assert_msg(strstr(log, "wibble_mode"),
                  "the log does not name the unknown key "
                  "wibble_mode:\n%s",
                  log);
    free(log);
    /* The rest of the file still applies. */
    char *rec = run_get("api_key", "config");
    expect_header(rec, "authorization", "Bearer " C1);
    free(rec);
    daemon_stop();
}
END_TEST

/* ---- backend choice ---- */

START_TEST(nothing_configured_is_local)
{
    struct th_conn c;
    char url[300];
    daemon_start_ok(NULL, NULL);
    struct cws_rpc_msg *h = hello(&c);
    check_section(h, "backend", "kind", "local");
    check_section(h, "backend", "configured", "auto");
    const msgpack_object *b = map_get(h->result, "backend");
    ck_assert_msg(!strncmp(th_str(b, "url", url, sizeof(url)), "unix:", 5),
                  "a local backend's url is '%s'", url);
    check_auth(h, "none", "none");
    cws_rpc_msg_free(h);
    status_lacks_secrets(&c);
    th_close(&c);
    daemon_stop();
    ck_assert_uint_eq(count_records(), 0);
}
END_TEST

START_TEST(config_backend_remote_with_base_url)
{
    struct th_conn c;
    char cfg[300];
    snprintf(cfg, sizeof(cfg), "backend = remote\nbase_url = %s\n", peer_url);
    write_config(cfg);
    daemon_start_ok(NULL, NULL);
    struct cws_rpc_msg *h = hello(&c);
    check_section(h, "backend", "kind", "remote");
    check_section(h, "backend", "configured", "remote");
    check_section(h, "backend", "url", peer_url);
    check_auth(h, "none", "none");
    cws_rpc_msg_free(h);
    char *rec = get_through_daemon(&c);
    expect_no_header(rec, "authorization");
    expect_no_header(rec, "x-api-key");
    free(rec);
    th_close(&c);
    daemon_stop();
}
END_TEST

START_TEST(config_base_url_alone_is_remote)
{
    struct th_conn c;
    char cfg[300];
    snprintf(cfg, sizeof(cfg), "[daemon]\nbase_url = %s\n", peer_url);
    write_config(cfg);
    daemon_start_ok(NULL, NULL);
    struct cws_rpc_msg *h = hello(&c);
    check_section(h, "backend", "kind", "remote");
    check_section(h, "backend", "configured", "auto");
    check_section(h, "backend", "url", peer_url);
    cws_rpc_msg_free(h);
    free(get_through_daemon(&c));
    th_close(&c);
    daemon_stop();
}
END_TEST

START_TEST(backend_flag_overrides_config)
{
    static const char *const flags[] = {"--backend", "local", NULL};
    struct th_conn c;
    char cfg[300];
    snprintf(cfg, sizeof(cfg), "backend = remote\nbase_url = %s\n", peer_url);
    write_config(cfg);
    daemon_start_ok(NULL, flags);
    struct cws_rpc_msg *h = hello(&c);
    check_section(h, "backend", "kind", "local");
    check_section(h, "backend", "configured", "local");
    cws_rpc_msg_free(h);
    th_close(&c);
    daemon_stop();
    ck_assert_uint_eq(count_records(), 0);
}
END_TEST

START_TEST(backend_env_overrides_config_and_flag_overrides_env)
{
    static const char *const flags[] = {"--backend", "remote", NULL};
    static const char *const env_local[] = {"CWSANDBOX_BACKEND=local", NULL};
    struct th_conn c;
    char cfg[300];
    snprintf(cfg, sizeof(cfg), "backend = remote\nbase_url = %s\n", peer_url);
    write_config(cfg);
    /* config remote, environment local: local */
    daemon_start_ok(env_local, NULL);
    struct cws_rpc_msg *h = hello(&c);
    check_section(h, "backend", "kind", "local");
    cws_rpc_msg_free(h);
    th_close(&c);
    daemon_stop();
    /* environment local, flag remote: remote */
    daemon_start_ok(env_local, flags);
    h = hello(&c);
    check_section(h, "backend", "kind", "remote");
    check_section(h, "backend", "url", peer_url);
    cws_rpc_msg_free(h);
    th_close(&c);
    daemon_stop();
}
END_TEST

START_TEST(env_base_url_overrides_config)
{
    struct envv e;
    struct th_conn c;
    /* Nothing listens on port 1: were the config's URL used, the call would fail. */
    write_config("backend = remote\nbase_url = http://127.0.0.1:1\napi_key = " C1 "\n");
    daemon_start_ok(env_with_peer(&e, NULL), NULL);
    struct cws_rpc_msg *h = hello(&c);
    check_section(h, "backend", "url", peer_url);
    cws_rpc_msg_free(h);
    char *rec = get_through_daemon(&c);
    expect_header(rec, "authorization", "Bearer " C1);
    free(rec);
    th_close(&c);
    daemon_stop();
}
END_TEST

/* ---- secrets ---- */

/* Each source in turn, with successful and failing calls: no secret in any answer or log. */
START_TEST(secrets_never_leak)
{
    static const struct {
        const char *env1, *env2, *netrc, *config, *source;
    } cases[] = {
        {"CWSANDBOX_API_KEY=" K1, NULL, NULL, NULL, "CWSANDBOX_API_KEY"},
        {"WANDB_API_KEY=" W1, "WANDB_ENTITY_NAME=e1", NULL, NULL, "WANDB_API_KEY"},
        {"WANDB_ENTITY_NAME=e1", NULL, W2, NULL, "~/.netrc"},
        {NULL, NULL, NULL, "api_key = " C1 "\n", "config"},
    };
    static const char *const trace[] = {"--log-level", "trace", NULL}; /* the last one wins */
    static const char *const failing[] = {"sandbox.list", "sandbox.stop", "sandbox.delete", "exec",
                                          NULL};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct envv e;
        if (cases[i].netrc)
            write_netrc(cases[i].netrc);
        write_config(cases[i].config ? cases[i].config : "");
        daemon_start_ok(env_with_peer(&e, cases[i].env1, cases[i].env2, NULL), trace);
        free(run_get(NULL, cases[i].source));
        struct th_conn c;
        struct cws_rpc_msg *h = hello(&c);
        cws_rpc_msg_free(h);
        /* Calls the peer answers UNIMPLEMENTED (or that fail before it): error paths. */
        for (const char *const *m = failing; *m; m++) {
            struct cws_rpc_msg *r = th_call(&c, *m, pack_get, NULL, 15000);
            ck_assert_msg(r, "no answer to %s", *m);
            msg_lacks_secrets(r, *m);
            cws_rpc_msg_free(r);
        }
        status_lacks_secrets(&c);
        th_close(&c);
        /* A SIGHUP reload logs what it loaded. */
        kill(dmn.pid, SIGHUP);
        wait_log("SIGHUP", 2000);
        daemon_stop();
        log_lacks_secrets();
        char path[512];
        path_in_root(path, sizeof(path), "home/.netrc");
        unlink(path);
    }
}
END_TEST

/* ---- SIGHUP ---- */

START_TEST(sighup_rereads_config_file)
{
    struct envv e;
    write_config("api_key = " C1 "\n");
    daemon_start_ok(env_with_peer(&e, NULL), NULL);
    char *rec = run_get("api_key", "config");
    expect_header(rec, "authorization", "Bearer " C1);
    free(rec);

    write_config("api_key = " C2 "\n");
    ck_assert_int_eq(kill(dmn.pid, SIGHUP), 0);
    ck_assert_msg(wait_log("SIGHUP", 3000), "no log line about the SIGHUP");
    usleep(100000);
    rec = run_get("api_key", "config");
    ck_assert_msg(record_has(rec, "authorization", "Bearer " C2),
                  "after api_key = " C2 " and SIGHUP the daemon still sends %s",
                  record_has(rec, "authorization", "Bearer " C1) ? "Bearer " C1 " (the old key)"
                                                                 : rec);
    free(rec);
    daemon_stop();
}
END_TEST

START_TEST(sighup_rereads_netrc)
{
    struct envv e;
    write_netrc(W2);
    daemon_start_ok(env_with_peer(&e, "WANDB_ENTITY_NAME=e1", NULL), NULL);
    char *rec = run_get(NULL, "~/.netrc");
    expect_header(rec, "x-api-key", W2);
    free(rec);

    write_netrc(W3);
    ck_assert_int_eq(kill(dmn.pid, SIGHUP), 0);
    ck_assert_msg(wait_log("SIGHUP", 3000), "no log line about the SIGHUP");
    usleep(100000);
    rec = run_get(NULL, "~/.netrc");
    expect_header(rec, "x-api-key", W3);
    free(rec);
    daemon_stop();
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("daemon_config");
    TCase *tc = tcase_create("config");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, cwsandbox_api_key_is_bearer);
    tcase_add_test(tc, wandb_key_entity_default_project);
    tcase_add_test(tc, wandb_project_name);
    tcase_add_test(tc, netrc_wandb_password);
    tcase_add_test(tc, cwsandbox_key_beats_wandb);
    tcase_add_test(tc, wandb_env_beats_netrc);
    tcase_add_test(tc, wandb_key_without_entity_is_an_error);
    tcase_add_test(tc, netrc_key_without_entity_is_an_error);
    tcase_add_test(tc, config_api_key);
    tcase_add_test(tc, config_api_key_in_daemon_section);
    tcase_add_test(tc, env_key_beats_config);
    tcase_add_test(tc, wandb_key_beats_config);
    tcase_add_test(tc, unknown_config_key_is_named);
    tcase_add_test(tc, nothing_configured_is_local);
    tcase_add_test(tc, config_backend_remote_with_base_url);
    tcase_add_test(tc, config_base_url_alone_is_remote);
    tcase_add_test(tc, backend_flag_overrides_config);
    tcase_add_test(tc, backend_env_overrides_config_and_flag_overrides_env);
    tcase_add_test(tc, env_base_url_overrides_config);
    tcase_add_test(tc, secrets_never_leak);
    tcase_add_test(tc, sighup_rereads_config_file);
    tcase_add_test(tc, sighup_rereads_netrc);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
