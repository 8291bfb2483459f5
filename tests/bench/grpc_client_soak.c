/* Soak and acceptance benchmark of the daemon's gRPC client (daemon/grpc_client.h) against a
 * real HTTP/2 gRPC server process:
 *   --echo-server PATH   the project's test server (tests/grpc_server, nghttp2 with its default
 *                        protections), service cws.test.Echo
 *   --python-peer        tests/daemon/grpc_client_peer.py (grpcio), service cws.test.Peer
 *
 * Phases (each checked; the exit status is 1 when any misses its mark):
 *   sequential  N unary calls one after another: no failure, one connection, no GOAWAY
 *   concurrent  N unary calls with K in flight (each completion starts the next)
 *   cancel      bidi stream established, cancelled; how long until the server has it:
 *               echo server: the answer of a Stats call sent right after the cancel on the same
 *               connection (frames are processed in order, so this bounds it from above);
 *               python peer: the server's own CLOCK_MONOTONIC record of the cancel. Mark 50 ms
 *   streams     S calls open at once (echo: a Barrier every call waits in until S are there;
 *               python: 500 ms sleeps); reports the connections the pool used
 *   stall       an upload the server stops reading (echo: Upload paused; python: Sink): the
 *               client's CPU while stalled must stay near zero (no busy loop on a full window)
 *
 *   grpc_client_soak --echo-server build/tests/grpc_server/grpc_echo_server
 *   grpc_client_soak --quick ...   (20 000 / 5 000 / 20 / 200 / 1 s: the CTest run)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gc_test_util.h"
#include "grpc_client.h"
#include "log.h"

#define CANCEL_MARK_MS 50.0
#define STALL_CPU_MARK 0.02 /* fraction of one CPU while stalled */

struct options {
    const char *echo_server;
    bool python;
    bool tcp;
    long sequential, concurrent, in_flight, cancels, streams, stall_ms;
};

struct soak {
    struct options o;
    struct event_base *base;
    struct cws_gclient *client;
    struct gct_peer peer;
    const char *svc; /* "/cws.test.Echo/" or "/cws.test.Peer/" */
    int failures;    /* acceptance marks missed */
    /* current phase */
    long started, finished, failed, total;
    int64_t *lat_us;
    char first_error[CWS_ERROR_MESSAGE_MAX + 64];
};

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t percentile(int64_t *v, long n, double p)
{
    long i;

    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof(*v), cmp_i64);
    i = (long)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static void path_of(const struct soak *s, const char *method, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", s->svc, method);
}

static void mark(struct soak *s, bool ok, const char *what)
{
    if (!ok) {
        s->failures++;
        printf("  MISSED: %s\n", what);
    }
}

static void stats(const struct soak *s, struct cws_gclient_stats *st)
{
    cws_gclient_get_stats(s->client, st);
}

/* ---- unary phases ----------------------------------------------------------------------- */

struct ucall {
    struct soak *s;
    int64_t t0;
    bool done;
};

static void start_unary(struct soak *s, struct ucall *u);

static void unary_done(struct cws_gc_call *call, const struct cws_gc_result *res, void *ud)
{
    struct ucall *u = ud;
    struct soak *s = u->s;

    if (s->finished < s->total)
        s->lat_us[s->finished] = now_us() - u->t0;
    s->finished++;
    if (res->error->code != CWS_E_OK) {
        if (s->failed++ == 0)
            snprintf(s->first_error, sizeof(s->first_error), "%s: %s",
                     cws_errcode_name(res->error->code), res->error->message);
    }
    u->done = true;
    if (s->started < s->total)
        start_unary(s, u); /* from inside the callback: the next call of this slot */
}

static const struct cws_gc_handlers unary_handlers = {.on_done = unary_done};

static void start_unary(struct soak *s, struct ucall *u)
{
    static const uint8_t payload[] = "soak payload: 32 bytes of data..";
    char path[96];
    struct cws_gc_call_opts opts = {.deadline_ms = cws_gc_now_ms() + 30000};
    struct cws_error err;

    path_of(s, s->o.python ? "Echo" : "Unary", path, sizeof(path));
    u->s = s;
    u->t0 = now_us();
    u->done = false;
    s->started++;
    if (cws_gclient_unary(s->client, path, &opts, payload, sizeof(payload) - 1, &unary_handlers, u,
                          NULL, &err) < 0) {
        s->finished++;
        if (s->failed++ == 0)
            snprintf(s->first_error, sizeof(s->first_error), "start: %s", err.message);
        u->done = true;
    }
}

static void phase_reset(struct soak *s, long total)
{
    free(s->lat_us);
    s->lat_us = calloc((size_t)total, sizeof(*s->lat_us));
    s->started = s->finished = s->failed = 0;
    s->total = total;
    s->first_error[0] = '\0';
}

static void report_unary(struct soak *s, const char *name, long in_flight, int64_t wall_us,
                         double cpu_ms, const struct cws_gclient_stats *before)
{
    struct cws_gclient_stats st;
    int64_t p50 = percentile(s->lat_us, s->finished, 0.50);
    int64_t p99 = percentile(s->lat_us, s->finished, 0.99);
    char what[160];

    stats(s, &st);
    printf("%-11s %ld calls, %ld in flight: %ld failed, %.2f s, %.0f calls/s, latency p50 %lld us "
           "p99 %lld us, client CPU %.2f us/call, connections opened %llu (open %u), GOAWAYs %llu, "
           "retries %llu\n",
           name, s->finished, in_flight, s->failed, (double)wall_us / 1e6,
           (double)s->finished * 1e6 / (double)(wall_us ? wall_us : 1), (long long)p50,
           (long long)p99, cpu_ms * 1000.0 / (double)(s->finished ? s->finished : 1),
           (unsigned long long)(st.connects - before->connects), st.connections,
           (unsigned long long)(st.goaways - before->goaways),
           (unsigned long long)(st.retries - before->retries));
    if (s->failed)
        printf("  first failure: %s\n", s->first_error);
    snprintf(what, sizeof(what), "%s: zero failed calls", name);
    mark(s, s->failed == 0 && s->finished == s->total, what);
    snprintf(what, sizeof(what), "%s: one connection, no GOAWAY", name);
    mark(s, st.connects == 1 && st.goaways == 0, what);
}

/* total calls, in_flight at a time; each completion starts the next from its callback. */
static void phase_unary(struct soak *s, const char *name, long total, long in_flight)
{
    struct ucall *slots = calloc((size_t)in_flight, sizeof(*slots));
    struct cws_gclient_stats before;
    int64_t t0;
    double cpu0;

    phase_reset(s, total);
    stats(s, &before);
    t0 = now_us();
    cpu0 = gct_cpu_ms();
    for (long i = 0; i < in_flight && s->started < s->total; i++)
        start_unary(s, &slots[i]);
    while (s->finished < s->total)
        event_base_loop(s->base, EVLOOP_ONCE);
    report_unary(s, name, in_flight, now_us() - t0, gct_cpu_ms() - cpu0, &before);
    free(slots);
}

/* ---- one-off calls ---------------------------------------------------------------------- */

static bool call_sync(struct soak *s, const char *method, const void *req, size_t len,
                      struct gct_rec *r, int timeout_ms)
{
    char path[96];
    struct cws_error err;

    path_of(s, method, path, sizeof(path));
    gct_rec_init(r);
    if (cws_gclient_unary(s->client, path, NULL, req, len, &gct_handlers, r, &r->call, &err) < 0) {
        snprintf(r->message, sizeof(r->message), "%s", err.message);
        r->code = (enum cws_errcode)err.code;
        return false;
    }
    return gct_run_until(s->base, &r->done, timeout_ms) && r->code == CWS_E_OK;
}

static long stats_cancels(struct soak *s)
{
    struct gct_rec r;
    long cancels = -1;

    if (call_sync(s, "Stats", "", 0, &r, 5000) && r.last) {
        char text[200] = {0};
        const char *p;

        memcpy(text, r.last, r.last_len < sizeof(text) - 1 ? r.last_len : sizeof(text) - 1);
        p = strstr(text, "cancels=");
        if (p)
            cancels = strtol(p + 8, NULL, 10);
    }
    gct_rec_clear(&r);
    return cancels;
}

/* Microseconds from t0_ns (CLOCK_MONOTONIC) until the python peer recorded tag's cancel. */
static int64_t python_cancel_us(struct soak *s, const char *tag, int64_t t0_ns)
{
    for (int i = 0; i < 200; i++) {
        struct gct_rec r;
        int64_t seen = 0;

        if (call_sync(s, "CancelTime", tag, strlen(tag), &r, 5000) && r.last_len > 0) {
            char num[32] = {0};

            memcpy(num, r.last, r.last_len < 31 ? r.last_len : 31);
            seen = strtoll(num, NULL, 10);
        }
        gct_rec_clear(&r);
        if (seen > 0)
            return (seen - t0_ns) / 1000;
        gct_run_for(s->base, 5);
    }
    return -1;
}

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One established bidi stream, cancelled; returns the latency in us, or -1. */
static int64_t one_cancel(struct soak *s, long i)
{
    char path[96], tag[48];
    struct cws_gc_call *call = NULL;
    struct cws_error err;
    struct gct_rec r;
    int64_t t0_ns, lat = -1;

    snprintf(tag, sizeof(tag), "soak-%d-%ld", (int)getpid(), i);
    path_of(s, s->o.python ? "Probe" : "Bidi", path, sizeof(path));
    gct_rec_init(&r);
    if (cws_gclient_call_start(s->client, path, NULL, &gct_handlers, &r, &call, &err) < 0)
        return -1;
    cws_gc_call_send(call, (const uint8_t *)tag, strlen(tag));
    while (r.n_messages == 0 && !r.done)
        event_base_loop(s->base, EVLOOP_ONCE);
    if (r.done) {
        gct_rec_clear(&r);
        return -1;
    }
    t0_ns = mono_ns();
    cws_gc_call_cancel(call);
    if (s->o.python) {
        lat = python_cancel_us(s, tag, t0_ns);
    } else {
        long before = stats_cancels(s); /* sent after the RST_STREAM, answered after it */

        lat = before >= 0 ? (mono_ns() - t0_ns) / 1000 : -1;
    }
    gct_rec_clear(&r);
    return lat;
}

static void phase_cancel(struct soak *s)
{
    long n = s->o.cancels, bad = 0;
    int64_t *lat = calloc((size_t)n, sizeof(*lat));
    long c0 = s->o.python ? 0 : stats_cancels(s), c1;
    char what[128];
    int64_t p50, max;

    for (long i = 0; i < n; i++) {
        lat[i] = one_cancel(s, i);
        if (lat[i] < 0)
            bad++;
    }
    c1 = s->o.python ? n : stats_cancels(s);
    p50 = percentile(lat, n, 0.5);
    max = percentile(lat, n, 1.0);
    printf("cancel      %ld bidi streams cancelled: server had the cancel after p50 %.3f ms, max "
           "%.3f ms (%s); server counted %ld cancels; %ld unmeasured\n",
           n, (double)p50 / 1000, (double)max / 1000,
           s->o.python ? "server's own clock" : "bound: next call's answer on the connection",
           c1 - c0, bad);
    snprintf(what, sizeof(what), "cancel reaches the server within %.0f ms", CANCEL_MARK_MS);
    mark(s, bad == 0 && (double)max / 1000 <= CANCEL_MARK_MS && c1 - c0 >= n, what);
    free(lat);
}

/* ---- streams ---------------------------------------------------------------------------- */

static void phase_streams(struct soak *s)
{
    long n = s->o.streams, failed = 0, full = 0;
    struct gct_rec *recs = calloc((size_t)n, sizeof(*recs));
    struct cws_gclient_stats before, st;
    uint8_t req[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    char path[96], what[128];
    unsigned peak = 0;
    struct cws_error err;
    int64_t t0 = now_us();

    stats(s, &before);
    path_of(s, s->o.python ? "Sleep" : "Barrier", path, sizeof(path));
    for (long i = 0; i < n; i++) {
        gct_rec_init(&recs[i]);
        if (cws_gclient_unary(s->client, path, NULL, s->o.python ? (const uint8_t *)"500" : req,
                              s->o.python ? 3 : 4, &gct_handlers, &recs[i], NULL, &err) < 0)
            recs[i].done = true, recs[i].code = CWS_E_INTERNAL;
    }
    for (int64_t end = cws_gc_now_ms() + 30000; cws_gc_now_ms() < end;) {
        long done = 0;

        for (long i = 0; i < n; i++)
            done += recs[i].done;
        stats(s, &st);
        if (st.calls_active > peak)
            peak = st.calls_active;
        if (done == n)
            break;
        event_base_loop(s->base, EVLOOP_ONCE);
    }
    for (long i = 0; i < n; i++) {
        char text[16] = {0};

        if (!recs[i].done || recs[i].code != CWS_E_OK)
            failed++;
        else if (!s->o.python && recs[i].last)
            memcpy(text, recs[i].last, recs[i].last_len < 15 ? recs[i].last_len : 15);
        if (s->o.python || strtol(text, NULL, 10) == n)
            full++;
        gct_rec_clear(&recs[i]);
    }
    stats(s, &st);
    printf("streams     %ld calls open at once: %ld failed, %.2f s, peak %u active, %s%ld, "
           "connections opened during the phase %llu (open %u)\n",
           n, failed, (double)(now_us() - t0) / 1e6, peak,
           s->o.python ? "completed " : "barrier released with all ", full,
           (unsigned long long)(st.connects - before.connects), st.connections);
    snprintf(what, sizeof(what), "%ld concurrent streams", n);
    mark(s, failed == 0 && full == n && peak >= (unsigned)n, what);
    free(recs);
}

/* ---- stall ------------------------------------------------------------------------------ */

static void phase_stall(struct soak *s)
{
    static uint8_t chunk[64 * 1024];
    long pause_ms = s->o.stall_ms + 2000;
    uint8_t first[4] = {(uint8_t)(pause_ms >> 24), (uint8_t)(pause_ms >> 16),
                        (uint8_t)(pause_ms >> 8), (uint8_t)pause_ms};
    struct cws_gc_call *call = NULL;
    struct cws_error err;
    struct gct_rec r;
    char path[96], what[128];
    long sent = 0;
    int rv = 0;
    double cpu0, cpu1, srv0 = -1, srv1 = -1;
    int64_t t0, t1;

    path_of(s, s->o.python ? "Sink" : "Upload", path, sizeof(path));
    gct_rec_init(&r);
    if (cws_gclient_call_start(s->client, path, NULL, &gct_handlers, &r, &call, &err) < 0) {
        mark(s, false, "stall: start");
        return;
    }
    if (!s->o.python)
        cws_gc_call_send(call, first, sizeof(first));
    /* Push until the upload stays queued: a server may buffer a lot before it pushes back. */
    for (int round = 0; round < 64; round++) {
        rv = 0;
        while (rv == 0 && sent < 8192) {
            rv = cws_gc_call_send(call, chunk, sizeof(chunk));
            sent++;
        }
        gct_run_for(s->base, 300); /* the windows fill, then nothing moves */
        if (cws_gc_call_send_queued(call) > 0)
            break;
    }
    t0 = now_us();
    cpu0 = gct_cpu_ms();
    if (s->peer.pid > 0)
        srv0 = gct_cpu_ms_of(s->peer.pid);
    gct_run_for(s->base, (int)s->o.stall_ms);
    t1 = now_us();
    cpu1 = gct_cpu_ms();
    if (s->peer.pid > 0)
        srv1 = gct_cpu_ms_of(s->peer.pid);
    printf("stall       upload of %ld x 64 KiB held by a server that stopped reading: %.1f KiB "
           "still queued; client CPU %.2f ms over %.2f s stalled (%.3f %% of a CPU)",
           sent, (double)cws_gc_call_send_queued(call) / 1024.0, cpu1 - cpu0,
           (double)(t1 - t0) / 1e6, 100.0 * (cpu1 - cpu0) * 1000.0 / (double)(t1 - t0));
    if (srv0 >= 0 && srv1 >= 0)
        printf("; server CPU %.1f ms", srv1 - srv0);
    printf("\n");
    snprintf(what, sizeof(what), "no CPU spin while the server stops reading (< %.0f %% CPU)",
             STALL_CPU_MARK * 100);
    mark(s,
         rv == 1 && !r.done && cws_gc_call_send_queued(call) > 0 &&
             (cpu1 - cpu0) * 1000.0 < STALL_CPU_MARK * (double)(t1 - t0),
         what);
    if (s->o.python) {
        cws_gc_call_cancel(call);
    } else {
        /* The server resumes reading after its pause: everything must arrive. */
        char expect[96], got[96] = {0};

        cws_gc_call_close_send(call);
        gct_run_until(s->base, &r.done, 30000);
        snprintf(expect, sizeof(expect), "messages=%ld bytes=%ld", sent + 1,
                 sent * (long)sizeof(chunk) + 4);
        if (r.last)
            memcpy(got, r.last, r.last_len < sizeof(got) - 1 ? r.last_len : sizeof(got) - 1);
        printf("            after the pause the server read it all: \"%s\" (%s)\n", got,
               r.code == CWS_E_OK ? "OK" : r.message);
        mark(s, r.code == CWS_E_OK && strcmp(got, expect) == 0, "stalled upload completes");
    }
    gct_rec_clear(&r);
}

/* ---- main ------------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr,
            "usage: grpc_client_soak (--echo-server PATH [--tcp] | --python-peer) [--quick]\n"
            "       [--sequential N] [--concurrent N] [--in-flight K] [--cancels N]\n"
            "       [--streams N] [--stall-ms MS]\n");
    return 2;
}

static int parse(int argc, char **argv, struct options *o)
{
    *o = (struct options){.sequential = 100000,
                          .concurrent = 20000,
                          .in_flight = 64,
                          .cancels = 50,
                          .streams = 200,
                          .stall_ms = 2000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *num = NULL;

        if (strcmp(a, "--quick") == 0) {
            o->sequential = 20000;
            o->concurrent = 5000;
            o->cancels = 20;
            o->stall_ms = 1000;
            continue;
        }
        if (strcmp(a, "--python-peer") == 0) {
            o->python = true;
            continue;
        }
        if (strcmp(a, "--tcp") == 0) {
            o->tcp = true;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (strcmp(a, "--echo-server") == 0) {
            o->echo_server = v;
            continue;
        }
        if (strcmp(a, "--sequential") == 0)
            num = &o->sequential;
        else if (strcmp(a, "--concurrent") == 0)
            num = &o->concurrent;
        else if (strcmp(a, "--in-flight") == 0)
            num = &o->in_flight;
        else if (strcmp(a, "--cancels") == 0)
            num = &o->cancels;
        else if (strcmp(a, "--streams") == 0)
            num = &o->streams;
        else if (strcmp(a, "--stall-ms") == 0)
            num = &o->stall_ms;
        else
            return -1;
        *num = strtol(v, NULL, 10);
    }
    return (o->echo_server || o->python) && o->in_flight > 0 ? 0 : -1;
}

static int start_server(struct soak *s, char *url, size_t size)
{
    static char sock[96];
    char *argv[8];
    int n = 0;

    if (s->o.python) {
        s->svc = "/cws.test.Peer/";
        if (gct_python_peer_start(NULL, &s->peer) < 0)
            return -1;
    } else {
        s->svc = "/cws.test.Echo/";
        snprintf(sock, sizeof(sock), "/tmp/cws-soak-%d.sock", (int)getpid());
        argv[n++] = (char *)s->o.echo_server;
        argv[n++] = "--unix";
        argv[n++] = sock;
        if (s->o.tcp) {
            argv[n++] = "--listen";
            argv[n++] = "127.0.0.1:0";
            argv[n++] = "--token";
            argv[n++] = "soak-token";
        }
        argv[n] = NULL;
        if (gct_peer_start(argv, 10000, &s->peer) < 0)
            return -1;
    }
    snprintf(url, size, "%s", s->o.tcp ? s->peer.http_url : s->peer.unix_url);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct cws_gc_header token_md[] = {{"authorization", "Bearer soak-token"}};
    struct soak s = {0};
    struct cws_gclient_config cfg = {0};
    struct cws_error err;
    char url[300];

    signal(SIGPIPE, SIG_IGN);
    cws_log_init("grpc_client_soak");
    if (parse(argc, argv, &s.o) < 0)
        return usage();
    if (start_server(&s, url, sizeof(url)) < 0) {
        fprintf(stderr, "grpc_client_soak: the server did not start\n");
        return 1;
    }
    s.base = event_base_new();
    cfg.base = s.base;
    cfg.url = url;
    if (s.o.tcp && !s.o.python) {
        cfg.metadata = token_md;
        cfg.n_metadata = 1;
    }
    if (cws_gclient_new(&cfg, &s.client, &err) < 0) {
        fprintf(stderr, "grpc_client_soak: %s\n", err.message);
        gct_peer_stop(&s.peer);
        return 1;
    }
    printf("grpc_client_soak: server %s at %s (libcurl and nghttp2 versions: see the log)\n",
           s.o.python ? "grpcio (python3)" : s.o.echo_server, url);
    phase_unary(&s, "sequential", s.o.sequential, 1);
    phase_unary(&s, "concurrent", s.o.concurrent, s.o.in_flight);
    phase_cancel(&s);
    phase_streams(&s);
    phase_stall(&s);
    printf("RESULT %s (%d marks missed)\n", s.failures ? "FAIL" : "PASS", s.failures);
    cws_gclient_free(s.client);
    event_base_free(s.base);
    free(s.lat_us);
    gct_peer_stop(&s.peer);
    return s.failures ? 1 : 0;
}
