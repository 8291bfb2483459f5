/* Test harness for cwsandboxd; see harness.h. */
#include "harness.h"

#include <check.h>

#include <dirent.h>
#include <errno.h>
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

#include "rpc_encode.h"
#include "rpc_params.h"

extern char **environ;

int64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fill a Unix socket address; false when the path does not fit. */
static bool unix_address(struct sockaddr_un *sa, const char *path)
{
    size_t n = strlen(path);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (n >= sizeof(sa->sun_path))
        return false;
    memcpy(sa->sun_path, path, n + 1);
    return true;
}

static int notify_socket(const char *path)
{
    struct sockaddr_un sa;
    if (!unix_address(&sa, path))
        return -1;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Wait for a datagram holding READY=1. */
static bool wait_ready(int fd, pid_t pid, int timeout_ms)
{
    int64_t until = th_now_ms() + timeout_ms;
    char buf[4096];
    while (th_now_ms() < until) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) == 1) {
            ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
            if (n > 0) {
                buf[n] = '\0';
                if (strstr(buf, "READY=1"))
                    return true;
            }
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return false; /* it died */
    }
    return false;
}

static void child_env(const struct th_daemon *d, const char *notify, const char *const *extra)
{
    char buf[512];
    const char *dirs[][2] = {{"XDG_RUNTIME_DIR", "run"},
                             {"XDG_STATE_HOME", "state"},
                             {"XDG_CONFIG_HOME", "config"},
                             {"HOME", "home"}};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(buf, sizeof(buf), "%s/%s", d->root, dirs[i][1]);
        mkdir(buf, 0700);
        setenv(dirs[i][0], buf, 1);
    }
    setenv("CWSANDBOX_SOCKET", d->socket, 1);
    setenv("NOTIFY_SOCKET", notify, 1);
    /* The caller's own settings must not leak into the daemon under test. */
    static const char *const clean[] = {
        "CWSANDBOX_API_KEY",   "WANDB_API_KEY",      "WANDB_ENTITY_NAME",
        "WANDB_PROJECT_NAME",  "CWSANDBOX_BASE_URL", "CWSANDBOX_BACKEND",
        "CWSANDBOX_LOG_LEVEL", "CWSANDBOX_SESSION",  NULL};
    for (const char *const *v = clean; *v; v++)
        unsetenv(*v);
    if (getenv("CWSD_LOCAL_BIN"))
        setenv("CWSANDBOX_LOCAL_PATH", getenv("CWSD_LOCAL_BIN"), 1);
    for (const char *const *e = extra; e && *e; e++)
        putenv((char *)*e);
}

/* Start the daemon in d->root (made already) and wait for READY=1. */
static int launch(struct th_daemon *d, const char *const *extra_env, int timeout_ms)
{
    char notify[300];
    snprintf(notify, sizeof(notify), "%s/notify", d->root);
    unlink(notify);
    int nfd = notify_socket(notify);
    if (nfd < 0)
        return -1;
    const char *bin = getenv("CWSD_BIN");
    d->pid = fork();
    if (d->pid == 0) {
        child_env(d, notify, extra_env);
        execl(bin, bin, "--log-level", "debug", (char *)NULL);
        _exit(127);
    }
    bool ok = d->pid > 0 && wait_ready(nfd, d->pid, timeout_ms);
    close(nfd);
    return ok ? 0 : -1;
}

int th_daemon_start(struct th_daemon *d, const char *const *extra_env, int timeout_ms)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->root, sizeof(d->root), "/tmp/cwsd-test-XXXXXX");
    if (!mkdtemp(d->root))
        return -1;
    snprintf(d->socket, sizeof(d->socket), "%s/run/cwsandbox/cwsandboxd.sock", d->root);
    return launch(d, extra_env, timeout_ms);
}

int th_daemon_relaunch(struct th_daemon *d, const char *const *extra_env, int timeout_ms)
{
    return launch(d, extra_env, timeout_ms);
}

int th_daemon_restart(struct th_daemon *d, const char *const *extra_env, int timeout_ms)
{
    if (th_daemon_signal_wait(d, SIGTERM, timeout_ms) != 0)
        return -1;
    return launch(d, extra_env, timeout_ms);
}

int th_daemon_signal_wait(struct th_daemon *d, int sig, int timeout_ms)
{
    int status = -1;
    if (d->pid > 0) {
        kill(d->pid, sig);
        int64_t until = th_now_ms() + timeout_ms;
        int pfd = (int)syscall(SYS_pidfd_open, d->pid, 0);
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        while (pfd >= 0 && th_now_ms() < until && poll(&p, 1, (int)(until - th_now_ms())) == 0)
            ;
        if (pfd >= 0)
            close(pfd);
        if (waitpid(d->pid, &status, WNOHANG) != d->pid) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &status, 0);
            status = -1;
        }
        d->pid = 0;
    }
    return status;
}

int th_daemon_stop(struct th_daemon *d, int timeout_ms)
{
    int status = th_daemon_signal_wait(d, SIGTERM, timeout_ms);
    if (d->root[0]) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->root);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: cannot remove %s\n", d->root);
    }
    return status;
}

int th_count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    int n = 0;
    if (!dir)
        return -1;
    struct dirent *de;
    while ((de = readdir(dir)))
        if (de->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

long th_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

int th_connect(struct th_conn *c, const char *path)
{
    struct sockaddr_un sa;
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    if (!unix_address(&sa, path))
        return -1;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        cws_rpc_decoder_new(0, &c->dec) < 0) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        errno = e;
        return -1;
    }
    c->next_id = 1;
    return 0;
}

void th_close(struct th_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    cws_rpc_decoder_free(c->dec);
    c->dec = NULL;
}

int th_send_raw(struct th_conn *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

uint32_t th_request(struct th_conn *c, const char *method, th_params_fn fn, void *ud)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t id = c->next_id++;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, id);
    cws_rpc_pack_cstr(&pk, method);
    if (fn) {
        msgpack_pack_array(&pk, 1);
        fn(&pk, ud);
    } else {
        msgpack_pack_array(&pk, 0);
    }
    th_send_raw(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return id;
}

struct cws_rpc_msg *th_next(struct th_conn *c, int timeout_ms, bool *ret_eof)
{
    int64_t until = th_now_ms() + timeout_ms;
    char buf[65536];
    if (ret_eof)
        *ret_eof = false;
    for (;;) {
        struct cws_rpc_msg *m = NULL;
        int r = cws_rpc_decoder_next(c->dec, &m, NULL);
        if (r == 1)
            return m;
        if (r < 0 && cws_rpc_decoder_broken(c->dec))
            return NULL;
        int left = (int)(until - th_now_ms());
        if (left <= 0)
            return NULL;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, left) != 1)
            return NULL;
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            if (ret_eof)
                *ret_eof = true;
            return NULL;
        }
        cws_rpc_decoder_feed(c->dec, buf, (size_t)n, NULL);
    }
}

struct cws_rpc_msg *th_call(struct th_conn *c, const char *method, th_params_fn fn, void *ud,
                            int timeout_ms)
{
    uint32_t id = th_request(c, method, fn, ud);
    int64_t until = th_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(until - th_now_ms());
        struct cws_rpc_msg *m = left > 0 ? th_next(c, left, NULL) : NULL;
        if (!m || (m->type == CWS_RPC_RESPONSE && m->msgid == id))
            return m;
        cws_rpc_msg_free(m);
    }
}

static void pack_hello(msgpack_packer *pk, void *ud)
{
    (void)ud;
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_kv_int(pk, "protocol", 1);
    cws_rpc_pack_kv_cstr(pk, "client", "cwsd-test/1");
}

bool th_hello(struct th_conn *c)
{
    struct cws_rpc_msg *m = th_call(c, "hello", pack_hello, NULL, 5000);
    bool ok = m && !m->error;
    cws_rpc_msg_free(m);
    return ok;
}

const msgpack_object *th_field(const msgpack_object *map, const char *key)
{
    const msgpack_object *v = NULL;
    if (!map || map->type != MSGPACK_OBJECT_MAP || cws_rpc_param(map, key, &v, NULL) != 1)
        return NULL;
    return v;
}

static void pack_stop_now(msgpack_packer *pk, void *ud)
{
    msgpack_pack_map(pk, 2);
    cws_rpc_pack_kv_cstr(pk, "id", ud);
    cws_rpc_pack_kv_int(pk, "grace_s", 0);
}

void th_stop_all(const struct th_daemon *d)
{
    struct th_conn c;
    if (th_connect(&c, d->socket) < 0 || !th_hello(&c)) {
        th_close(&c);
        return;
    }
    struct cws_rpc_msg *m = th_call(&c, "sandbox.list", NULL, NULL, 60000);
    const msgpack_object *list = m ? th_field(m->result, "sandboxes") : NULL;
    for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size;
         i++) {
        char id[64];
        th_str(&list->via.array.ptr[i], "id", id, sizeof(id));
        cws_rpc_msg_free(th_call(&c, "sandbox.stop", pack_stop_now, id, 60000));
    }
    cws_rpc_msg_free(m);
    th_close(&c);
}

const char *th_str(const msgpack_object *map, const char *key, char *buf, size_t size)
{
    const msgpack_object *v = th_field(map, key);
    buf[0] = '\0';
    if (v && v->type == MSGPACK_OBJECT_STR)
        snprintf(buf, size, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    return buf;
}

int64_t th_int(const msgpack_object *map, const char *key, int64_t def)
{
    const msgpack_object *v = th_field(map, key);
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t)v->via.u64;
    if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    return def;
}

/* ---- params written as JSON ---- */

struct json_in {
    const char *p;
    bool bad;
};

static void json_skip(struct json_in *in)
{
    while (*in->p == ' ' || *in->p == '\n' || *in->p == '\t')
        in->p++;
}

static void json_value(struct json_in *in, msgpack_packer *pk);

static void json_string(struct json_in *in, msgpack_packer *pk)
{
    char buf[4096];
    size_t n = 0;
    in->p++; /* the opening quote */
    while (*in->p && *in->p != '"' && n < sizeof(buf)) {
        if (*in->p == '\\' && in->p[1])
            in->p++;
        buf[n++] = *in->p++;
    }
    if (*in->p != '"') {
        in->bad = true;
        return;
    }
    in->p++;
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, buf, n);
}

/* Elements of an object (pairs) or an array, counted first so the header can be packed. */
static void json_container(struct json_in *in, msgpack_packer *pk, bool object)
{
    char close = object ? '}' : ']';
    msgpack_sbuffer sb;
    msgpack_packer inner;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&inner, &sb, msgpack_sbuffer_write);
    uint32_t n = 0;
    in->p++;
    json_skip(in);
    while (!in->bad && *in->p && *in->p != close) {
        if (object) {
            json_skip(in);
            if (*in->p != '"') {
                in->bad = true;
                break;
            }
            json_string(in, &inner);
            json_skip(in);
            if (*in->p++ != ':') {
                in->bad = true;
                break;
            }
        }
        json_value(in, &inner);
        n++;
        json_skip(in);
        if (*in->p == ',')
            in->p++;
        json_skip(in);
    }
    if (*in->p != close)
        in->bad = true;
    else
        in->p++;
    if (object)
        msgpack_pack_map(pk, n);
    else
        msgpack_pack_array(pk, n);
    pk->callback(pk->data, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void json_value(struct json_in *in, msgpack_packer *pk)
{
    json_skip(in);
    char *end;
    if (*in->p == '{' || *in->p == '[') {
        json_container(in, pk, *in->p == '{');
    } else if (*in->p == '"') {
        json_string(in, pk);
    } else if (strncmp(in->p, "true", 4) == 0 || strncmp(in->p, "false", 5) == 0) {
        bool t = *in->p == 't';
        t ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        in->p += t ? 4 : 5;
    } else if (strncmp(in->p, "null", 4) == 0) {
        msgpack_pack_nil(pk);
        in->p += 4;
    } else {
        double v = strtod(in->p, &end);
        if (end == in->p) {
            in->bad = true;
            return;
        }
        if (v == (double)(int64_t)v && !memchr(in->p, '.', (size_t)(end - in->p)))
            msgpack_pack_int64(pk, (int64_t)v);
        else
            msgpack_pack_double(pk, v);
        in->p = end;
    }
}

static void pack_json(msgpack_packer *pk, void *ud)
{
    struct json_in in = {ud, false};
    json_value(&in, pk);
    if (in.bad) {
        fprintf(stderr, "harness: bad JSON params: %s\n", (const char *)ud);
        abort();
    }
}

struct cws_rpc_msg *th_call_json(struct th_conn *c, int timeout_ms, const char *method,
                                 const char *fmt, ...)
{
    char json[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(json, sizeof(json), fmt, ap);
    va_end(ap);
    return th_call(c, method, json[0] ? pack_json : NULL, json, timeout_ms);
}

uint32_t th_request_json(struct th_conn *c, const char *method, const char *fmt, ...)
{
    char json[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(json, sizeof(json), fmt, ap);
    va_end(ap);
    return th_request(c, method, json[0] ? pack_json : NULL, json);
}

/* ---- assertions shared by the tests ---- */

struct cws_rpc_msg *th_ok(struct cws_rpc_msg *m, const char *what)
{
    char code[64], msg[600];
    ck_assert_msg(m, "%s: no answer", what);
    ck_assert_msg(!m->error, "%s failed: %s: %s", what,
                  th_str(m->error, "code", code, sizeof(code)),
                  th_str(m->error, "message", msg, sizeof(msg)));
    return m;
}

const char *th_state(struct th_conn *c, const char *id, char *buf, size_t size)
{
    struct cws_rpc_msg *m =
        th_ok(th_call_json(c, 60000, "sandbox.get", "{\"id\": \"%s\", \"fresh\": true}", id),
              "sandbox.get");
    th_str(m->result, "state", buf, size);
    cws_rpc_msg_free(m);
    return buf;
}

bool th_is_terminal(const char *state)
{
    return !strcmp(state, "completed") || !strcmp(state, "failed") || !strcmp(state, "terminated");
}

bool th_ended_by(struct th_conn *c, const char *id, int64_t deadline_ms)
{
    char state[32];
    while (th_now_ms() < deadline_ms) {
        if (th_is_terminal(th_state(c, id, state, sizeof(state))))
            return true;
        usleep(100 * 1000);
    }
    return false;
}

void th_fixture_up(struct th_daemon *d, struct th_conn *c)
{
    ck_assert_msg(th_daemon_start(d, NULL, 20000) == 0, "cwsandboxd did not start");
    ck_assert_int_eq(th_connect(c, d->socket), 0);
    ck_assert(th_hello(c));
}

void th_fixture_down(struct th_daemon *d, struct th_conn *c, int stop_ms)
{
    th_stop_all(d);
    th_close(c);
    ck_assert_int_eq(th_daemon_stop(d, stop_ms), 0);
}

void th_create(struct th_conn *c, const char *extra, char *id, size_t size)
{
    struct cws_rpc_msg *m = th_ok(
        th_call_json(c, 60000, "sandbox.create",
                     "{\"wait\": \"running\", \"config\": {\"tags\": [\"cwsd-test\"]}%s}", extra),
        "sandbox.create");
    th_str(m->result, "id", id, size);
    ck_assert_msg(id[0], "sandbox.create answered no id");
    cws_rpc_msg_free(m);
}
