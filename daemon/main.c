/* cwsandboxd: the per-user daemon. Flags override the environment, which overrides the
 * config file (see usage() and cwsandboxd(8), docs/man/cwsandboxd.8.scd). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "logind.h"
#include "recovery.h"
#include "registry.h"
#include "session.h"
#include "paths.h"
#include "reaper.h"
#include "sandbox_table.h"
#include "watch.h"

/* Stopping sandboxes at logout must end well inside the unit's TimeoutStopSec (60 s). */
#define CLEANUP_DEADLINE_MS 30000

struct flags {
    const char *socket_path;
    const char *config_path;
    const char *log_level;
    const char *backend;
    bool foreground;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: cwsandboxd [options]\n"
               "The cwsandbox daemon: one per user, serving cwsandbox clients on a Unix socket.\n\n"
               "  --foreground        stay in the foreground (the default; for symmetry)\n"
               "  --socket PATH       socket to listen on (default: $CWSANDBOX_SOCKET, else\n"
               "                      <runtime dir>/cwsandboxd.sock)\n"
               "  --config PATH       config file (default: $XDG_CONFIG_HOME/cwsandbox/config)\n"
               "  --log-level LEVEL   error, warn, info, debug or trace\n"
               "  --backend KIND      auto, remote or local\n"
               "  --help, --version\n");
}

static int parse_flags(int argc, char **argv, struct flags *f)
{
    static const struct option longopts[] = {
        {"foreground", no_argument, NULL, 'f'},    {"socket", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'},  {"log-level", required_argument, NULL, 'l'},
        {"backend", required_argument, NULL, 'b'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            f->foreground = true;
            break;
        case 's':
            f->socket_path = optarg;
            break;
        case 'c':
            f->config_path = optarg;
            break;
        case 'l':
            f->log_level = optarg;
            break;
        case 'b':
            f->backend = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        case 'V':
            printf("cwsandboxd %s (protocol %d)\n", CWS_VERSION, CWSD_PROTOCOL);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cwsandboxd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

static int apply_level(const char *name, struct cws_error *err)
{
    enum cws_log_level level;
    int r = cws_log_level_parse(name, &level, err);
    if (r == 0)
        cws_log_set_level(level);
    return r;
}

/* Config file, environment, then flags. */
static int configure(struct cwsd *d, const struct flags *f, struct cws_error *err)
{
    char *default_config = NULL;
    int r = 0;
    if (!f->config_path && cws_config_path(&default_config, err) < 0)
        return -(int)err->code;
    r = cwsd_config_load(f->config_path ? f->config_path : default_config, &d->cfg, err);
    free(default_config);
    if (r == 0 && f->backend)
        r = cwsd_backend_parse(f->backend, &d->cfg.backend, err);
    if (r == 0 && d->cfg.log_level && !getenv("CWSANDBOX_LOG_LEVEL") && !f->log_level)
        r = apply_level(d->cfg.log_level, err);
    if (r == 0 && f->log_level)
        r = apply_level(f->log_level, err);
    if (r == 0 && f->socket_path) {
        free(d->cfg.socket_path);
        d->cfg.socket_path = strdup(f->socket_path);
    } else if (r == 0 && !getenv("CWSANDBOX_SOCKET") && d->cfg.socket_path) {
        /* the config file's socket stands */
    } else if (r == 0) {
        free(d->cfg.socket_path);
        d->cfg.socket_path = NULL;
        r = cws_socket_path(&d->cfg.socket_path, err);
    }
    return r;
}

static void on_stop_signal(evutil_socket_t sig, short what, void *ud)
{
    (void)what;
    cws_log(CWS_LOG_INFO, "signal %d: shutting down", (int)sig);
    event_base_loopbreak(ud);
}

/* SIGHUP: read the config file and the credentials again; a new key takes effect for the
 * next call. Settings that shape the running daemon (socket, backend) need a restart. */
static void on_sighup(evutil_socket_t sig, short what, void *ud)
{
    struct cwsd *d = ud;
    struct cwsd_config fresh;
    struct cwsd_credentials c;
    struct cws_error err;
    (void)sig;
    (void)what;
    if (cwsd_config_load(d->cfg.config_path, &fresh, &err) < 0) {
        cws_log(CWS_LOG_WARN, "SIGHUP: %s; credentials not reloaded", err.message);
        cwsd_config_clear(&fresh);
        return;
    }
    struct cwsd_config candidate = d->cfg;
    candidate.api_key = fresh.api_key;
    if (cwsd_credentials_resolve(&candidate, &c, &err) < 0) {
        cws_log(CWS_LOG_WARN, "SIGHUP: credentials not reloaded: %s", err.message);
        cwsd_config_clear(&fresh);
        return;
    }
    free(d->cfg.api_key);
    d->cfg.api_key = fresh.api_key;
    fresh.api_key = NULL;
    cwsd_config_clear(&fresh);
    cwsd_credentials_clear(&d->creds);
    d->creds = c;
    cws_log(CWS_LOG_INFO, "SIGHUP: credentials reloaded (%s from %s)", c.strategy, c.source);
}

static size_t n_sessions(const struct cwsd *d)
{
#ifdef CWSD_HAVE_BACKEND
    return cwsd_session_count(d);
#else
    (void)d;
    return 0;
#endif
}

/* STATUS= for systemctl status, and WATCHDOG=1 when the service asks for a watchdog: the
 * timer runs on the loop, so a stuck loop stops the pings and systemd restarts us. */
static void on_heartbeat(evutil_socket_t fd, short what, void *ud)
{
    struct cwsd *d = ud;
    (void)fd;
    (void)what;
    sd_notifyf(0,
               "WATCHDOG=1\nSTATUS=%zu clients, %zu sessions, %zu sandboxes, %llu calls in flight",
               d->n_clients, n_sessions(d), d->n_sandboxes, (unsigned long long)d->calls_in_flight);
}

static struct event *start_heartbeat(struct cwsd *d)
{
    uint64_t usec = 0;
    int64_t ms = 10000;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec / 2000 < (uint64_t)ms)
        ms = (int64_t)(usec / 2000);
    struct event *ev = event_new(d->base, -1, EV_PERSIST, on_heartbeat, d);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (ev)
        event_add(ev, &tv);
    return ev;
}

#ifdef CWSD_HAVE_BACKEND
/* The registry is replayed before the first client is served, then the backend's listing
 * confirms it (asynchronously). Without a usable state directory nothing persists. */
static void start_persistence(struct cwsd *d)
{
    struct cws_error err;
    cwsd_owner_tag_init(d);
    if (cwsd_registry_open(d, &err) < 0)
        cws_log(CWS_LOG_ERROR, "no registry: %s; sandboxes will not be recovered after a crash",
                err.message);
    cwsd_recover_start(d);
}
#endif

static int serve(struct cwsd *d)
{
    struct event *sig[3] = {
        evsignal_new(d->base, SIGTERM, on_stop_signal, d->base),
        evsignal_new(d->base, SIGINT, on_stop_signal, d->base),
        evsignal_new(d->base, SIGHUP, on_sighup, d),
    };
    int status = 1;
    for (int i = 0; i < 3; i++)
        if (!sig[i] || evsignal_add(sig[i], NULL) < 0)
            goto out;
    struct event *heartbeat = start_heartbeat(d);
    sd_notify(0, "READY=1\nSTATUS=serving");
    event_base_dispatch(d->base);
    sd_notify(0, "STOPPING=1");
#ifdef CWSD_HAVE_BACKEND
    cwsd_reaper_stop_all(d, CLEANUP_DEADLINE_MS);
#endif
    if (heartbeat)
        event_free(heartbeat);
    status = 0;
out:
    for (int i = 0; i < 3; i++)
        if (sig[i])
            event_free(sig[i]);
    return status;
}

static void shutdown_daemon(struct cwsd *d)
{
    while (d->clients) {
        struct cwsd_client *c = d->clients;
        cwsd_client_close(c, "daemon shutting down");
        if (d->clients == c) /* still inside a callback: cannot happen at shutdown */
            break;
    }
    cwsd_listen_close(d);
#ifdef CWSD_HAVE_BACKEND
    cwsd_logind_stop();
    cwsd_watch_shutdown(d);
#endif
    cwsd_backend_stop(d);
#ifdef CWSD_HAVE_BACKEND
    cwsd_recover_stop(d);
    cwsd_registry_close(d);
    cwsd_sessions_free(d);
    cwsd_pending_free_all(d);
    cwsd_sandbox_table_free(d);
#endif
    cwsd_credentials_clear(&d->creds);
    cwsd_config_clear(&d->cfg);
}

int main(int argc, char **argv)
{
    struct flags f = {0};
    struct cwsd d;
    struct cws_error err;

    memset(&d, 0, sizeof(d));
    d.listen_fd = -1;
    signal(SIGPIPE, SIG_IGN);
    cws_log_init("cwsandboxd");
    cws_log_use_journal_if_available();
    int r = parse_flags(argc, argv, &f);
    if (r != 0)
        return r == 1 ? 0 : r;
    d.started_ms = cwsd_monotonic_ms();
    d.base = event_base_new();
    if (!d.base) {
        fprintf(stderr, "cwsandboxd: cannot create the event loop\n");
        return 1;
    }
    int status = 1;
    if (configure(&d, &f, &err) < 0 || cwsd_credentials_resolve(&d.cfg, &d.creds, &err) < 0 ||
        cwsd_listen(&d, &err) < 0 || cwsd_backend_start(&d, &err) < 0) {
        cws_log(CWS_LOG_ERROR, "%s", err.message);
        fprintf(stderr, "cwsandboxd: %s\n", err.message);
    } else {
#ifdef CWSD_HAVE_BACKEND
        start_persistence(&d);
        cwsd_logind_start(&d);
#endif
        status = serve(&d);
    }
    shutdown_daemon(&d);
    event_base_free(d.base);
    return status;
}
