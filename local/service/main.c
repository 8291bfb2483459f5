/* cwsandbox-local: a server of the CoreWeave Sandbox v1 gRPC API that runs sandboxes on this
 * machine. Options are in usage() and docs/local-backend.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "paths.h"
#include "service.h"

#define TOKEN_BYTES         32
#define DEFAULT_RETENTION_S 3600

struct main_args {
    struct svc_options opt;
    bool no_socket;
    const char *log_level;
    char *owned[8]; /* strings to free at exit */
    size_t n_owned;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cwsandbox-local [options]\n"
            "Serve the CoreWeave Sandbox v1 gRPC API, running sandboxes on this machine.\n\n"
            "  --socket PATH       Unix socket to serve (default: <runtime dir>/local.sock)\n"
            "  --no-socket         do not serve a Unix socket\n"
            "  --listen HOST:PORT  also serve h2c over TCP (calls need the bearer token)\n"
            "  --allow-remote      allow --listen on a non-loopback address\n"
            "  --token-file PATH   bearer token for TCP calls (created, 0600, if missing;\n"
            "                      default: <runtime dir>/local.token)\n"
            "  --state-dir DIR     sandboxes and records (default: <state dir>/local)\n"
            "  --images-dir DIR    image root filesystems, DIR/<image>/rootfs\n"
            "                      (default: <state dir>/local/images)\n"
            "  --init PATH         the cwsandbox-init binary (default: next to this one)\n"
            "  --retention SECONDS how long ended sandboxes stay readable (default %d)\n"
            "  --log-level LEVEL   error, warn, info, debug or trace\n"
            "  --help, --version\n",
            DEFAULT_RETENTION_S);
}

static char *keep(struct main_args *a, char *s)
{
    if (s && a->n_owned < sizeof(a->owned) / sizeof(a->owned[0]))
        a->owned[a->n_owned++] = s;
    return s;
}

static int parse_args(int argc, char **argv, struct main_args *a)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"no-socket", no_argument, NULL, 'S'},
        {"listen", required_argument, NULL, 'l'},
        {"allow-remote", no_argument, NULL, 'A'},
        {"token-file", required_argument, NULL, 't'},
        {"state-dir", required_argument, NULL, 'd'},
        {"images-dir", required_argument, NULL, 'i'},
        {"init", required_argument, NULL, 'I'},
        {"retention", required_argument, NULL, 'r'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            a->opt.socket_path = optarg;
            break;
        case 'S':
            a->no_socket = true;
            break;
        case 'l':
            a->opt.listen_addr = optarg;
            break;
        case 'A':
            a->opt.allow_remote = true;
            break;
        case 't':
            a->opt.token_file = optarg;
            break;
        case 'd':
            a->opt.state_dir = optarg;
            break;
        case 'i':
            a->opt.images_dir = optarg;
            break;
        case 'I':
            a->opt.init_path = optarg;
            break;
        case 'L':
            a->log_level = optarg;
            break;
        case 'r':
            a->opt.retention_s = strtoll(optarg, &end, 10);
            if (*end || end == optarg || a->opt.retention_s < 0) {
                fprintf(stderr, "cwsandbox-local: --retention needs a number of seconds\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 1;
        case 'V':
            printf("cwsandbox-local %s\n", CWS_VERSION);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cwsandbox-local: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (a->no_socket && !a->opt.listen_addr) {
        fprintf(stderr, "cwsandbox-local: --no-socket needs --listen\n");
        return 2;
    }
    return 0;
}

static char *join(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

/* cwsandbox-init: next to this binary in the build tree, in libexec once installed. */
static char *default_init_path(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *p = join(dirname(self), "cwsandbox-init");
        if (p && access(p, X_OK) == 0)
            return p;
        free(p);
    }
    return strdup(CWS_LIBEXECDIR "/cwsandbox-init");
}

static int fill_defaults(struct main_args *a, struct cws_error *err)
{
    char *runtime = NULL, *state = NULL;
    int r = 0;
    if (!a->opt.retention_s)
        a->opt.retention_s = DEFAULT_RETENTION_S;
    if ((!a->opt.socket_path && !a->no_socket) || (!a->opt.token_file && a->opt.listen_addr)) {
        r = cws_runtime_dir(&runtime, err);
        if (r == 0)
            r = cws_runtime_dir_ensure(runtime, err);
    }
    if (r == 0 && !a->opt.socket_path && !a->no_socket)
        a->opt.socket_path = keep(a, join(runtime, "local.sock"));
    if (r == 0 && !a->opt.token_file && a->opt.listen_addr)
        a->opt.token_file = keep(a, join(runtime, "local.token"));
    if (r == 0 && !a->opt.state_dir) {
        r = cws_state_dir(&state, err);
        if (r == 0)
            a->opt.state_dir = keep(a, join(state, "local"));
    }
    if (r == 0)
        r = cws_state_dir_ensure(a->opt.state_dir, err);
    if (r == 0 && !a->opt.images_dir)
        a->opt.images_dir = keep(a, join(a->opt.state_dir, "images"));
    if (r == 0 && !a->opt.init_path)
        a->opt.init_path = keep(a, default_init_path());
    if (r == 0 && !a->opt.init_path)
        r = cws_error_set(err, CWS_E_NOT_FOUND, "cannot find cwsandbox-init: give --init");
    free(runtime);
    free(state);
    return r;
}

static int read_token(const char *path, char **ret, struct cws_error *err)
{
    char buf[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "cannot open token file %s: %s", path, strerror(errno));
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return cws_error_set(err, CWS_E_IO, "cannot read %s: %s", path, strerror(errno));
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    if (n == 0)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "token file %s is empty", path);
    *ret = strdup(buf);
    return *ret ? 0 : cws_error_set(err, CWS_E_NOMEM, NULL);
}

static int write_new_token(const char *path, char **ret, struct cws_error *err)
{
    uint8_t rnd[TOKEN_BYTES];
    char hex[2 * TOKEN_BYTES + 2];
    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
        return cws_error_set(err, CWS_E_INTERNAL, "no randomness for a token");
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return cws_error_set(err, CWS_E_IO, "cannot create token file %s: %s", path,
                             strerror(errno));
    size_t len = strlen(hex);
    hex[len] = '\n';
    bool ok = write(fd, hex, len + 1) == (ssize_t)(len + 1);
    close(fd);
    hex[len] = '\0';
    if (!ok)
        return cws_error_set(err, CWS_E_IO, "cannot write token file %s", path);
    cws_log(CWS_LOG_INFO, "generated a bearer token for TCP calls in %s", path);
    *ret = strdup(hex);
    return *ret ? 0 : cws_error_set(err, CWS_E_NOMEM, NULL);
}

/* The token of --token-file: read it, or create the file with a new random token. */
static int load_token(const char *path, char **ret, struct cws_error *err)
{
    struct stat st;
    if (!path)
        return 0;
    if (lstat(path, &st) < 0 && errno == ENOENT)
        return write_new_token(path, ret, err);
    return read_token(path, ret, err);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *ud)
{
    (void)what;
    cws_log(CWS_LOG_INFO, "signal %d: shutting down; sandboxes keep running", (int)sig);
    event_base_loopbreak(ud);
}

static void announce_ready(const struct svc *svc, const struct main_args *a)
{
    char tcp[300] = "-";
    if (a->opt.listen_addr) {
        const char *colon = strrchr(a->opt.listen_addr, ':');
        int host_len = colon ? (int)(colon - a->opt.listen_addr) : (int)strlen(a->opt.listen_addr);
        snprintf(tcp, sizeof(tcp), "%.*s:%d", host_len, a->opt.listen_addr,
                 cws_gsrv_tcp_port(svc->gsrv));
    }
    printf("READY unix=%s tcp=%s token_file=%s\n", a->opt.socket_path ? a->opt.socket_path : "-",
           tcp, a->opt.listen_addr && a->opt.token_file ? a->opt.token_file : "-");
    fflush(stdout);
    cws_log(CWS_LOG_INFO, "serving unix=%s tcp=%s state=%s",
            a->opt.socket_path ? a->opt.socket_path : "-", tcp, a->opt.state_dir);
}

static int run(struct main_args *a)
{
    struct cws_error err;
    struct svc svc;
    char *token = NULL;
    int status = 1;
    struct event_base *base = event_base_new();
    struct event *sigterm = NULL, *sigint = NULL;

    cws_error_clear(&err);
    memset(&svc, 0, sizeof(svc));
    if (!base) {
        cws_log(CWS_LOG_ERROR, "cannot create the event loop");
        return 1;
    }
    if (fill_defaults(a, &err) < 0 || load_token(a->opt.token_file, &token, &err) < 0 ||
        svc_init(&svc, base, &a->opt, token, &err) < 0) {
        cws_log(CWS_LOG_ERROR, "%s", err.message);
        fprintf(stderr, "cwsandbox-local: %s\n", err.message);
        goto out;
    }
    sigterm = evsignal_new(base, SIGTERM, on_stop_signal, base);
    sigint = evsignal_new(base, SIGINT, on_stop_signal, base);
    if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0)
        goto out;
    announce_ready(&svc, a);
    event_base_dispatch(base);
    status = 0;
out:
    svc_shutdown(&svc);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    event_base_free(base);
    free(token);
    return status;
}

int main(int argc, char **argv)
{
    struct main_args a;
    memset(&a, 0, sizeof(a));
    signal(SIGPIPE, SIG_IGN);
    cws_log_init("cwsandbox-local");
    int r = parse_args(argc, argv, &a);
    if (r != 0)
        return r == 1 ? 0 : r;
    if (a.log_level) {
        struct cws_error err;
        enum cws_log_level level;
        if (cws_log_level_parse(a.log_level, &level, &err) < 0) {
            fprintf(stderr, "cwsandbox-local: %s\n", err.message);
            return 2;
        }
        cws_log_set_level(level);
    }
    int status = run(&a);
    for (size_t i = 0; i < a.n_owned; i++)
        free(a.owned[i]);
    return status;
}
