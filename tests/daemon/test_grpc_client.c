/* The daemon's gRPC client against real HTTP/2 gRPC servers: an independent one (grpcio, in
 * grpc_client_peer.py, also over TLS with a CA made for the test) and a scripted nghttp2 peer
 * in the test's own loop (h2_test_peer.c) for GOAWAY, REFUSED_STREAM, stalls and dead peers.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gc_test_util.h"
#include "grpc_client.h"
#include "h2_test_peer.h"
#include "log.h"

#define PEER "/cws.test.Peer/"

static struct gct_peer py; /* shared by the tests of one case (unchecked fixture) */

static void py_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (gct_python_peer_start(NULL, &py) < 0)
        abort();
}

static void py_teardown(void)
{
    gct_peer_stop(&py);
}

struct fixture {
    struct event_base *base;
    struct cws_gclient *client;
};

static void client_new_cfg(struct fixture *f, struct cws_gclient_config *cfg)
{
    struct cws_error err;

    if (!f->base)
        f->base = event_base_new();
    cfg->base = f->base;
    ck_assert_msg(cws_gclient_new(cfg, &f->client, &err) == 0, "%s", err.message);
}

static void client_new(struct fixture *f, const char *url)
{
    struct cws_gclient_config cfg = {.url = url};

    client_new_cfg(f, &cfg);
}

static void fixture_free(struct fixture *f)
{
    cws_gclient_free(f->client);
    if (f->base)
        event_base_free(f->base);
    memset(f, 0, sizeof(*f));
}

static struct cws_gc_call_opts deadline_in(int ms)
{
    struct cws_gc_call_opts o = {.deadline_ms = cws_gc_now_ms() + ms};
    return o;
}

/* Unary call, run to completion. */
static void unary(struct fixture *f, const char *path, const char *req,
                  const struct cws_gc_call_opts *opts, struct gct_rec *r, int timeout_ms)
{
    struct cws_error err;

    gct_rec_init(r);
    ck_assert_msg(cws_gclient_unary(f->client, path, opts, (const uint8_t *)req, strlen(req),
                                    &gct_handlers, r, &r->call, &err) == 0,
                  "%s", err.message);
    ck_assert_msg(gct_run_until(f->base, &r->done, timeout_ms), "%s did not finish", path);
}

/* ---- basics ----------------------------------------------------------------------------- */

static void check_echo(const char *url)
{
    struct fixture f = {0};
    struct cws_gclient_config cfg = {.url = url};
    struct cws_gc_header md[] = {{"authorization", "Bearer s3cr3t"}, {"x-entity-id", "team"}};
    struct cws_gc_header call_md[] = {{"x-test-color", "blue"}};
    struct cws_gc_call_opts opts = deadline_in(5000);
    struct gct_rec r;
    char buf[64];

    cfg.metadata = md;
    cfg.n_metadata = 2;
    opts.metadata = call_md;
    opts.n_metadata = 1;
    client_new_cfg(&f, &cfg);
    unary(&f, PEER "Echo", "hello", &opts, &r, 5000);
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    ck_assert_uint_eq(r.n_messages, 1);
    ck_assert_mem_eq(r.last, "hello", 5);
    ck_assert(r.got_headers);
    ck_assert(!r.trailers_only);
    ck_assert_str_eq(gct_rec_header(&r, "x-echo-color", buf, sizeof(buf)), "blue");
    ck_assert_str_eq(gct_rec_header(&r, "x-saw-authorization", buf, sizeof(buf)), "yes");
    gct_rec_clear(&r);
    /* An empty message is a message too. */
    unary(&f, PEER "Echo", "", NULL, &r, 5000);
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    ck_assert_uint_eq(r.n_messages, 1);
    ck_assert_uint_eq(r.last_len, 0);
    gct_rec_clear(&r);
    fixture_free(&f);
}

START_TEST(test_unary_unix)
{
    check_echo(py.unix_url);
}
END_TEST

START_TEST(test_unary_http)
{
    check_echo(py.http_url);
}
END_TEST

START_TEST(test_error_details_trailers_only)
{
    struct fixture f = {0};
    struct gct_rec r;

    client_new(&f, py.unix_url);
    unary(&f, PEER "Fail", "5", NULL, &r, 5000);
    ck_assert_int_eq(r.code, CWS_E_NOT_FOUND);
    ck_assert_int_eq(r.grpc_code, 5);
    ck_assert(r.trailers_only);
    ck_assert(!r.local);
    ck_assert(!r.got_headers);
    ck_assert_str_eq(r.message, "failed as asked: 100% \xe2\x9c\x93");
    ck_assert_str_eq(r.reason, "CWSANDBOX_TEST_REASON");
    ck_assert_str_eq(r.domain, "cwsandbox.com");
    ck_assert_str_eq(r.md_filepath, "/tmp/a b");
    ck_assert_int_eq(r.retry_delay_ms, 1500);
    ck_assert_uint_eq(r.n_violations, 1);
    ck_assert_str_eq(r.violation0, "spec.image: must be set");
    ck_assert(r.retryable); /* a retry delay makes it retryable */
    gct_rec_clear(&r);
    unary(&f, PEER "Fail", "14", NULL, &r, 5000);
    ck_assert_int_eq(r.code, CWS_E_UNAVAILABLE);
    gct_rec_clear(&r);
    fixture_free(&f);
}
END_TEST

START_TEST(test_error_after_message)
{
    struct fixture f = {0};
    struct gct_rec r;

    client_new(&f, py.unix_url);
    unary(&f, PEER "FailAfterMessage", "", NULL, &r, 5000);
    ck_assert_int_eq(r.code, CWS_E_FAILED_PRECONDITION);
    ck_assert_str_eq(r.message, "after one message");
    ck_assert(!r.trailers_only);
    ck_assert(!r.local);
    ck_assert_uint_eq(r.n_messages, 1);
    ck_assert_mem_eq(r.last, "partial", 7);
    gct_rec_clear(&r);
    fixture_free(&f);
}
END_TEST

START_TEST(test_deadline)
{
    struct fixture f = {0};
    struct cws_gc_call_opts opts = deadline_in(400);
    int64_t t0 = cws_gc_now_ms();
    struct gct_rec r;
    char buf[32];
    long sent_ms;

    client_new(&f, py.unix_url);
    unary(&f, PEER "Sleep", "3000", &opts, &r, 5000);
    /* grpcio enforces the grpc-timeout it received too: whichever side is first reports. */
    ck_assert_int_eq(r.code, CWS_E_DEADLINE_EXCEEDED);
    ck_assert_msg(r.done_ms - t0 >= 390 && r.done_ms - t0 < 1000, "took %lld ms",
                  (long long)(r.done_ms - t0));
    /* The server saw grpc-timeout: its view of the time left came back in the headers. */
    ck_assert(gct_rec_header(&r, "x-deadline-ms", buf, sizeof(buf)));
    sent_ms = strtol(buf, NULL, 10);
    ck_assert_msg(sent_ms > 200 && sent_ms <= 400, "server saw %ld ms", sent_ms);
    gct_rec_clear(&r);
    /* A deadline already passed is refused before anything is sent. */
    {
        struct cws_gc_call_opts past = {.deadline_ms = cws_gc_now_ms() - 1};
        struct cws_gc_call *call = NULL;
        struct cws_error err;

        ck_assert_int_eq(
            cws_gclient_call_start(f.client, PEER "Echo", &past, &gct_handlers, &r, &call, &err),
            -CWS_E_DEADLINE_EXCEEDED);
    }
    fixture_free(&f);
}
END_TEST

START_TEST(test_server_streaming)
{
    struct fixture f = {0};
    struct gct_rec r;

    client_new(&f, py.unix_url);
    unary(&f, PEER "Stream", "2000 1000", NULL, &r, 20000);
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    ck_assert_uint_eq(r.n_messages, 2000);
    ck_assert_uint_eq(r.bytes, 2000 * 1000);
    ck_assert_int_eq(r.last[3], (1999 & 0xff));
    gct_rec_clear(&r);
    /* A few large messages (4 MiB each) through the default 1 MiB stream window. */
    unary(&f, PEER "Stream", "4 4194304", NULL, &r, 20000);
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    ck_assert_uint_eq(r.n_messages, 4);
    gct_rec_clear(&r);
    fixture_free(&f);
}
END_TEST

/* Full duplex: message k+1 is sent only after echo k arrived. */
struct pingpong {
    struct gct_rec rec;
    struct cws_gc_call *call;
    int rounds, sent;
};

static void pp_message(struct cws_gc_call *call, const uint8_t *data, size_t len, void *ud)
{
    struct pingpong *pp = ud;
    char msg[32];
    int n;

    pp->rec.n_messages++;
    if (pp->sent == pp->rounds) {
        cws_gc_call_close_send(call);
        return;
    }
    n = snprintf(msg, sizeof(msg), "round %d", ++pp->sent);
    ck_assert_int_ge(cws_gc_call_send(call, (const uint8_t *)msg, (size_t)n), 0);
}

static void pp_done(struct cws_gc_call *call, const struct cws_gc_result *res, void *ud)
{
    gct_handlers.on_done(call, res, &((struct pingpong *)ud)->rec);
}

START_TEST(test_bidi_pingpong)
{
    struct fixture f = {0};
    struct cws_gc_handlers h = {.on_message = pp_message, .on_done = pp_done};
    struct pingpong pp = {.rounds = 200};
    struct cws_error err;

    gct_rec_init(&pp.rec);
    client_new(&f, py.unix_url);
    ck_assert_int_eq(cws_gclient_call_start(f.client, PEER "Bidi", NULL, &h, &pp, &pp.call, &err),
                     0);
    pp.sent = 1;
    ck_assert_int_eq(cws_gc_call_send(pp.call, (const uint8_t *)"round 0", 7), 0);
    ck_assert(gct_run_until(f.base, &pp.rec.done, 20000));
    ck_assert_msg(pp.rec.code == CWS_E_OK, "%s", pp.rec.message);
    ck_assert_uint_eq(pp.rec.n_messages, 200);
    fixture_free(&f);
}
END_TEST

START_TEST(test_half_close)
{
    struct fixture f = {0};
    struct cws_gc_call *call = NULL;
    struct cws_error err;
    struct gct_rec r;

    gct_rec_init(&r);
    client_new(&f, py.unix_url);
    ck_assert_int_eq(
        cws_gclient_call_start(f.client, PEER "Bidi", NULL, &gct_handlers, &r, &call, &err), 0);
    ck_assert_int_eq(cws_gc_call_send(call, (const uint8_t *)"a", 1), 0);
    ck_assert_int_eq(cws_gc_call_send(call, (const uint8_t *)"bb", 2), 0);
    ck_assert_int_eq(cws_gc_call_send(call, (const uint8_t *)"ccc", 3), 0);
    ck_assert_int_eq(cws_gc_call_close_send(call), 0);
    ck_assert_int_eq(cws_gc_call_close_send(call), -CWS_E_FAILED_PRECONDITION);
    ck_assert_int_eq(cws_gc_call_send(call, (const uint8_t *)"d", 1), -CWS_E_FAILED_PRECONDITION);
    ck_assert(gct_run_until(f.base, &r.done, 5000));
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    ck_assert_uint_eq(r.n_messages, 3);
    ck_assert_uint_eq(r.bytes, 6);
    gct_rec_clear(&r);
    fixture_free(&f);
}
END_TEST

/* Cancel a live bidi stream; the server's own record says when it saw the cancel. */
START_TEST(test_cancel_reaches_server)
{
    struct fixture f = {0};
    struct cws_gc_call *call = NULL;
    struct cws_error err;
    struct gct_rec r, t;
    char tag[32];
    int64_t cancel_ns = 0, seen_ns = 0;
    struct timespec ts;

    snprintf(tag, sizeof(tag), "cancel-%d", (int)getpid());
    gct_rec_init(&r);
    client_new(&f, py.unix_url);
    ck_assert_int_eq(
        cws_gclient_call_start(f.client, PEER "Probe", NULL, &gct_handlers, &r, &call, &err), 0);
    ck_assert_int_eq(cws_gc_call_send(call, (const uint8_t *)tag, strlen(tag)), 0);
    while (r.n_messages == 0 && !r.done)
        event_base_loop(f.base, EVLOOP_ONCE);
    ck_assert(!r.done);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    cancel_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    cws_gc_call_cancel(call);
    for (int i = 0; i < 50 && seen_ns == 0; i++) {
        unary(&f, PEER "CancelTime", tag, NULL, &t, 5000);
        if (t.last_len > 0) {
            char num[32] = {0};

            memcpy(num, t.last, t.last_len < 31 ? t.last_len : 31);
            seen_ns = strtoll(num, NULL, 10);
        }
        gct_rec_clear(&t);
        if (seen_ns == 0)
            gct_run_for(f.base, 10);
    }
    ck_assert_msg(seen_ns > 0, "the server never saw the cancel");
    ck_assert_msg(seen_ns - cancel_ns < 50 * 1000000LL, "cancel took %lld us",
                  (long long)((seen_ns - cancel_ns) / 1000));
    ck_assert(!r.done); /* no callback after cancel */
    gct_rec_clear(&r);
    fixture_free(&f);
}
END_TEST

START_TEST(test_cancel_inside_callback)
{
    struct fixture f = {0};
    struct gct_rec r;

    client_new(&f, py.unix_url);
    gct_rec_init(&r);
    r.cancel_on_message = true;
    {
        struct cws_error err;
        ck_assert_int_eq(cws_gclient_unary(f.client, PEER "Stream", NULL,
                                           (const uint8_t *)"100000 100", 10, &gct_handlers, &r,
                                           &r.call, &err),
                         0);
    }
    ck_assert(gct_run_until(f.base, &r.done, 5000));
    ck_assert_uint_eq(r.n_messages, 1);
    gct_run_for(f.base, 100);
    ck_assert_uint_eq(r.n_messages, 1); /* nothing after the cancel */
    gct_rec_clear(&r);
    /* The connection is still good. */
    unary(&f, PEER "Echo", "again", NULL, &r, 5000);
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    gct_rec_clear(&r);
    fixture_free(&f);
}
END_TEST

START_TEST(test_oversize)
{
    struct fixture f = {0};
    struct cws_gclient_config cfg = {.url = py.unix_url, .max_message = 1024 * 1024};
    uint8_t *big = calloc(1, 1024 * 1024 + 1);
    struct cws_gc_call *call = NULL;
    struct cws_error err;
    struct gct_rec r;

    client_new_cfg(&f, &cfg);
    gct_rec_init(&r);
    /* Sending: refused, nothing queued, the call goes on. */
    ck_assert_int_eq(
        cws_gclient_call_start(f.client, PEER "Bidi", NULL, &gct_handlers, &r, &call, &err), 0);
    ck_assert_int_eq(cws_gc_call_send(call, big, 1024 * 1024 + 1), -CWS_E_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(cws_gc_call_send(call, big, 1024 * 1024), 0);
    cws_gc_call_close_send(call);
    ck_assert(gct_run_until(f.base, &r.done, 5000));
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    ck_assert_uint_eq(r.bytes, 1024 * 1024);
    gct_rec_clear(&r);
    ck_assert_int_eq(cws_gclient_unary(f.client, PEER "Echo", NULL, big, 1024 * 1024 + 1,
                                       &gct_handlers, &r, NULL, &err),
                     -CWS_E_RESOURCE_EXHAUSTED);
    /* Receiving: the call ends RESOURCE_EXHAUSTED, the connection stays usable. */
    unary(&f, PEER "Big", "2097152", NULL, &r, 5000);
    ck_assert_int_eq(r.code, CWS_E_RESOURCE_EXHAUSTED);
    ck_assert(r.local);
    ck_assert_msg(strstr(r.message, "exceeds"), "%s", r.message);
    gct_rec_clear(&r);
    unary(&f, PEER "Big", "1048576", NULL, &r, 5000);
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    gct_rec_clear(&r);
    free(big);
    fixture_free(&f);
}
END_TEST

/* Pause after the first message, check nothing more arrives, resume, get the rest. */
START_TEST(test_pause_resume)
{
    struct fixture f = {0};
    struct cws_gclient_config cfg = {.url = py.unix_url, .stream_window = 256 * 1024};
    struct cws_error err;
    struct gct_rec r;

    client_new_cfg(&f, &cfg);
    gct_rec_init(&r);
    r.pause_after_first = true;
    ck_assert_int_eq(cws_gclient_unary(f.client, PEER "Stream", NULL, (const uint8_t *)"200 65536",
                                       9, &gct_handlers, &r, &r.call, &err),
                     0);
    while (r.n_messages == 0 && !r.done)
        event_base_loop(f.base, EVLOOP_ONCE);
    gct_run_for(f.base, 300);
    ck_assert_uint_eq(r.n_messages, 1);
    ck_assert(!r.done);
    cws_gc_call_pause_recv(r.call, false);
    ck_assert(gct_run_until(f.base, &r.done, 20000));
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    ck_assert_uint_eq(r.n_messages, 200);
    ck_assert_int_eq(r.last[3], 199);
    gct_rec_clear(&r);
    fixture_free(&f);
}
END_TEST

START_TEST(test_many_sequential_one_connection)
{
    struct fixture f = {0};
    struct cws_gclient_stats st;
    struct gct_rec r;

    client_new(&f, py.unix_url);
    for (int i = 0; i < 1000; i++) {
        unary(&f, PEER "Echo", "x", NULL, &r, 5000);
        ck_assert_msg(r.code == CWS_E_OK, "call %d: %s", i, r.message);
        gct_rec_clear(&r);
    }
    cws_gclient_get_stats(f.client, &st);
    ck_assert_uint_eq(st.connections, 1);
    ck_assert_uint_eq(st.connects, 1);
    ck_assert_uint_eq(st.calls_active, 0);
    fixture_free(&f);
}
END_TEST

START_TEST(test_free_with_calls)
{
    struct fixture f = {0};
    struct gct_rec a, b;
    struct cws_error err;

    client_new(&f, py.unix_url);
    gct_rec_init(&a);
    gct_rec_init(&b);
    ck_assert_int_eq(cws_gclient_unary(f.client, PEER "Hang", NULL, (const uint8_t *)"", 0,
                                       &gct_handlers, &a, NULL, &err),
                     0);
    gct_run_for(f.base, 100);
    ck_assert_int_eq(cws_gclient_unary(f.client, PEER "Hang", NULL, (const uint8_t *)"", 0,
                                       &gct_handlers, &b, NULL, &err),
                     0);
    cws_gclient_free(f.client);
    f.client = NULL;
    ck_assert(a.done && b.done);
    ck_assert_int_eq(a.code, CWS_E_CANCELLED);
    ck_assert_int_eq(b.code, CWS_E_CANCELLED);
    fixture_free(&f);
}
END_TEST

/* ---- pool: concurrency limits and GOAWAY ------------------------------------------------ */

static void concurrent_sleeps(const char *url, int n, unsigned expect_conns)
{
    struct fixture f = {0};
    struct cws_gclient_config cfg = {.url = url, .idle_timeout_ms = 300};
    struct gct_rec *recs = calloc((size_t)n, sizeof(*recs));
    struct cws_gclient_stats st;
    struct cws_error err;

    client_new_cfg(&f, &cfg);
    for (int i = 0; i < n; i++) {
        gct_rec_init(&recs[i]);
        ck_assert_int_eq(cws_gclient_unary(f.client, PEER "Sleep", NULL, (const uint8_t *)"500", 3,
                                           &gct_handlers, &recs[i], NULL, &err),
                         0);
    }
    ck_assert(gct_run_until_all(f.base, recs, (size_t)n, 20000));
    for (int i = 0; i < n; i++) {
        ck_assert_msg(recs[i].code == CWS_E_OK, "call %d: %s", i, recs[i].message);
        gct_rec_clear(&recs[i]);
    }
    cws_gclient_get_stats(f.client, &st);
    ck_assert_uint_eq(st.connects, expect_conns);
    gct_run_for(f.base, 600); /* past idle_timeout: an extra connection closes, one stays */
    cws_gclient_get_stats(f.client, &st);
    ck_assert_uint_eq(st.connections, 1);
    free(recs);
    fixture_free(&f);
}

START_TEST(test_200_streams_one_connection)
{
    concurrent_sleeps(py.unix_url, 200, 1);
}
END_TEST

START_TEST(test_200_streams_limit_100)
{
    static const char *const extra[] = {"--max-streams", "100", NULL};
    struct gct_peer p;

    ck_assert_int_eq(gct_python_peer_start(extra, &p), 0);
    concurrent_sleeps(p.unix_url, 200, 2);
    gct_peer_stop(&p);
}
END_TEST

START_TEST(test_goaway_in_flight_finish)
{
    static const char *const extra[] = {"--max-age-ms", "300", NULL};
    struct fixture f = {0};
    struct cws_gclient_stats st;
    struct gct_peer p;
    struct gct_rec slow, quick;
    struct cws_error err;

    ck_assert_int_eq(gct_python_peer_start(extra, &p), 0);
    client_new(&f, p.unix_url);
    gct_rec_init(&slow);
    ck_assert_int_eq(cws_gclient_unary(f.client, PEER "Sleep", NULL, (const uint8_t *)"1500", 4,
                                       &gct_handlers, &slow, NULL, &err),
                     0);
    gct_run_for(f.base, 800); /* the server's GOAWAY arrives meanwhile */
    cws_gclient_get_stats(f.client, &st);
    ck_assert_uint_ge(st.goaways, 1);
    unary(&f, PEER "Echo", "after goaway", NULL, &quick, 5000);
    ck_assert_msg(quick.code == CWS_E_OK, "%s", quick.message);
    ck_assert(gct_run_until(f.base, &slow.done, 5000));
    ck_assert_msg(slow.code == CWS_E_OK, "in-flight call: %s", slow.message);
    cws_gclient_get_stats(f.client, &st);
    ck_assert_uint_ge(st.connects, 2);
    gct_rec_clear(&slow);
    gct_rec_clear(&quick);
    fixture_free(&f);
    gct_peer_stop(&p);
}
END_TEST

/* ---- scripted nghttp2 peer -------------------------------------------------------------- */

struct sfix {
    struct fixture f;
    struct h2p *peer;
    char path[64];
    char url[80];
};

static void sfix_start(struct sfix *s, const struct h2p_config *pc,
                       const struct cws_gclient_config *cc)
{
    struct h2p_config c = *pc;
    struct cws_gclient_config cfg = *cc;

    memset(&s->f, 0, sizeof(s->f));
    s->f.base = event_base_new();
    snprintf(s->path, sizeof(s->path), "/tmp/gct-h2p-%d.sock", (int)getpid());
    snprintf(s->url, sizeof(s->url), "unix:%s", s->path);
    c.base = s->f.base;
    c.unix_path = s->path;
    ck_assert_int_eq(h2p_start(&c, &s->peer), 0);
    cfg.url = s->url;
    client_new_cfg(&s->f, &cfg);
}

static void sfix_free(struct sfix *s)
{
    cws_gclient_free(s->f.client);
    s->f.client = NULL;
    h2p_free(s->peer);
    fixture_free(&s->f);
}

START_TEST(test_goaway_refused_calls_retried)
{
    struct h2p_config pc = {.goaway_after = 5};
    struct cws_gclient_config cc = {0};
    struct cws_gclient_stats st;
    struct gct_rec recs[10];
    struct cws_error err;
    struct sfix s;

    sfix_start(&s, &pc, &cc);
    for (int i = 0; i < 10; i++) {
        gct_rec_init(&recs[i]);
        ck_assert_int_eq(cws_gclient_unary(s.f.client, "/peer/Echo", NULL, (const uint8_t *)"e", 1,
                                           &gct_handlers, &recs[i], NULL, &err),
                         0);
    }
    ck_assert(gct_run_until_all(s.f.base, recs, 10, 5000));
    for (int i = 0; i < 10; i++)
        ck_assert_msg(recs[i].code == CWS_E_OK, "call %d: %s", i, recs[i].message);
    cws_gclient_get_stats(s.f.client, &st);
    ck_assert_uint_eq(st.goaways, 1);
    ck_assert_uint_ge(st.retries, 1);
    ck_assert_uint_ge(h2p_stats(s.peer)->connections, 2);
    for (int i = 0; i < 10; i++)
        gct_rec_clear(&recs[i]);
    sfix_free(&s);
}
END_TEST

/* A server that ignores grpc-timeout: the client's own deadline ends the call. */
START_TEST(test_deadline_local)
{
    struct h2p_config pc = {0};
    struct cws_gclient_config cc = {0};
    struct cws_gc_call_opts opts = deadline_in(200);
    struct cws_error err;
    struct gct_rec r;
    struct sfix s;
    int64_t t0 = cws_gc_now_ms();

    sfix_start(&s, &pc, &cc);
    gct_rec_init(&r);
    ck_assert_int_eq(cws_gclient_unary(s.f.client, "/peer/Hang", &opts, (const uint8_t *)"", 0,
                                       &gct_handlers, &r, NULL, &err),
                     0);
    ck_assert(gct_run_until(s.f.base, &r.done, 3000));
    ck_assert_int_eq(r.code, CWS_E_DEADLINE_EXCEEDED);
    ck_assert(r.local);
    ck_assert_msg(r.done_ms - t0 >= 195 && r.done_ms - t0 < 400, "took %lld ms",
                  (long long)(r.done_ms - t0));
    gct_run_for(s.f.base, 50);
    ck_assert_uint_eq(h2p_stats(s.peer)->cancels, 1); /* the stream was reset */
    sfix_free(&s);
}
END_TEST

/* Refused by GOAWAY but not kept for a replay (replay_max): UNAVAILABLE, saying why. */
START_TEST(test_goaway_refused_not_replayable)
{
    struct h2p_config pc = {.goaway_after = 5};
    struct cws_gclient_config cc = {.replay_max = 16};
    static const uint8_t payload[100];
    struct gct_rec recs[10];
    struct cws_error err;
    struct sfix s;
    int ok = 0, refused = 0;

    sfix_start(&s, &pc, &cc);
    for (int i = 0; i < 10; i++) {
        gct_rec_init(&recs[i]);
        ck_assert_int_eq(cws_gclient_unary(s.f.client, "/peer/Echo", NULL, payload, sizeof(payload),
                                           &gct_handlers, &recs[i], NULL, &err),
                         0);
    }
    ck_assert(gct_run_until_all(s.f.base, recs, 10, 5000));
    ck_assert_msg(recs[0].code == CWS_E_OK, "%s", recs[0].message);
    for (int i = 0; i < 10; i++) {
        if (recs[i].code == CWS_E_OK) {
            ok++;
        } else {
            ck_assert_int_eq(recs[i].code, CWS_E_UNAVAILABLE);
            ck_assert_msg(strstr(recs[i].message, "GOAWAY"), "%s", recs[i].message);
            refused++;
        }
        gct_rec_clear(&recs[i]);
    }
    ck_assert_int_ge(refused, 1);
    sfix_free(&s);
}
END_TEST

/* The server restarts on the same socket: the next calls reconnect at once. */
START_TEST(test_reconnect_after_restart)
{
    struct h2p_config pc = {0};
    struct cws_gclient_config cc = {0};
    struct cws_gclient_stats st;
    struct gct_rec r;
    struct sfix s;

    sfix_start(&s, &pc, &cc);
    for (int round = 0; round < 3; round++) {
        struct h2p_config again = {.base = s.f.base, .unix_path = s.path};
        struct cws_error err;

        gct_rec_init(&r);
        ck_assert_int_eq(cws_gclient_unary(s.f.client, "/peer/Echo", NULL, (const uint8_t *)"r", 1,
                                           &gct_handlers, &r, NULL, &err),
                         0);
        ck_assert(gct_run_until(s.f.base, &r.done, 3000));
        ck_assert_msg(r.code == CWS_E_OK, "round %d: %s", round, r.message);
        gct_rec_clear(&r);
        h2p_free(s.peer);
        ck_assert_int_eq(h2p_start(&again, &s.peer), 0);
        if (round == 1)
            gct_run_for(s.f.base, 50); /* the client notices the EOF first */
        /* else: the next call races the EOF (written into a dead socket, retried) */
    }
    cws_gclient_get_stats(s.f.client, &st);
    ck_assert_uint_eq(st.connects, 3);
    sfix_free(&s);
}
END_TEST

START_TEST(test_refused_stream_retried)
{
    struct h2p_config pc = {.refuse_first = 2};
    struct cws_gclient_config cc = {0};
    struct cws_gclient_stats st;
    struct gct_rec r;
    struct cws_error err;
    struct sfix s;

    sfix_start(&s, &pc, &cc);
    gct_rec_init(&r);
    ck_assert_int_eq(cws_gclient_unary(s.f.client, "/peer/Echo", NULL, (const uint8_t *)"e", 1,
                                       &gct_handlers, &r, NULL, &err),
                     0);
    ck_assert(gct_run_until(s.f.base, &r.done, 5000));
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    cws_gclient_get_stats(s.f.client, &st);
    ck_assert_uint_eq(st.retries, 2);
    gct_rec_clear(&r);
    sfix_free(&s);
}
END_TEST

START_TEST(test_stalled_upload_no_spin)
{
    struct h2p_config pc = {0};
    struct cws_gclient_config cc = {.send_high_water = 256 * 1024};
    struct cws_gc_call *call = NULL;
    static uint8_t chunk[64 * 1024];
    struct cws_error err;
    struct gct_rec r;
    struct sfix s;
    double cpu0, cpu1;
    int rv = 0, sent = 0;

    sfix_start(&s, &pc, &cc);
    gct_rec_init(&r);
    ck_assert_int_eq(
        cws_gclient_call_start(s.f.client, "/peer/Sink", NULL, &gct_handlers, &r, &call, &err), 0);
    while (rv == 0 && sent < 1000) {
        rv = cws_gc_call_send(call, chunk, sizeof(chunk));
        sent++;
    }
    ck_assert_int_eq(rv, 1); /* high water reached */
    gct_run_for(s.f.base, 300);
    ck_assert_uint_le(h2p_stats(s.peer)->sink_bytes, 65535); /* the peer's window */
    cpu0 = gct_cpu_ms();
    gct_run_for(s.f.base, 1000);
    cpu1 = gct_cpu_ms();
    ck_assert_msg(cpu1 - cpu0 < 60, "%.1f ms of CPU in 1 s of stall", cpu1 - cpu0);
    ck_assert(!r.done);
    ck_assert_uint_eq(r.writable, 0);
    cws_gc_call_cancel(call);
    gct_run_for(s.f.base, 50);
    ck_assert_uint_eq(h2p_stats(s.peer)->cancels, 1);
    sfix_free(&s);
}
END_TEST

START_TEST(test_receive_backpressure_bounded)
{
    struct h2p_config pc = {0};
    struct cws_gclient_config cc = {.stream_window = 128 * 1024};
    struct cws_error err;
    struct gct_rec r;
    struct sfix s;
    uint64_t produced;

    sfix_start(&s, &pc, &cc);
    gct_rec_init(&r);
    r.pause_after_first = true;
    ck_assert_int_eq(cws_gclient_unary(s.f.client, "/peer/Firehose", NULL,
                                       (const uint8_t *)"1000 16384", 10, &gct_handlers, &r,
                                       &r.call, &err),
                     0);
    while (r.n_messages == 0 && !r.done)
        event_base_loop(s.f.base, EVLOOP_ONCE);
    gct_run_for(s.f.base, 300);
    produced = h2p_stats(s.peer)->firehose_bytes;
    /* The server could send one window more than what the call took (one message). */
    ck_assert_msg(produced <= 128 * 1024 + 2 * (16384 + 5), "server sent %llu bytes while paused",
                  (unsigned long long)produced);
    ck_assert_uint_eq(r.n_messages, 1);
    cws_gc_call_pause_recv(r.call, false);
    ck_assert(gct_run_until(s.f.base, &r.done, 10000));
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    ck_assert_uint_eq(r.n_messages, 1000);
    gct_rec_clear(&r);
    sfix_free(&s);
}
END_TEST

START_TEST(test_dead_peer_keepalive)
{
    struct h2p_config pc = {0};
    struct cws_gclient_config cc = {.keepalive_time_ms = 200, .keepalive_timeout_ms = 300};
    struct cws_error err;
    struct gct_rec hang, freeze;
    struct sfix s;
    int64_t t0;

    sfix_start(&s, &pc, &cc);
    gct_rec_init(&hang);
    gct_rec_init(&freeze);
    ck_assert_int_eq(cws_gclient_unary(s.f.client, "/peer/Hang", NULL, (const uint8_t *)"", 0,
                                       &gct_handlers, &hang, NULL, &err),
                     0);
    gct_run_for(s.f.base, 50);
    t0 = cws_gc_now_ms();
    ck_assert_int_eq(cws_gclient_unary(s.f.client, "/peer/Freeze", NULL, (const uint8_t *)"", 0,
                                       &gct_handlers, &freeze, NULL, &err),
                     0);
    ck_assert(gct_run_until(s.f.base, &hang.done, 3000));
    ck_assert_int_eq(hang.code, CWS_E_UNAVAILABLE);
    ck_assert_msg(strstr(hang.message, "PING"), "%s", hang.message);
    ck_assert_msg(hang.done_ms - t0 < 1200, "took %lld ms", (long long)(hang.done_ms - t0));
    ck_assert(gct_run_until(s.f.base, &freeze.done, 1000));
    ck_assert_int_eq(freeze.code, CWS_E_UNAVAILABLE);
    sfix_free(&s);
}
END_TEST

START_TEST(test_stale_connection_verified)
{
    struct h2p_config pc = {0};
    struct cws_gclient_config cc = {.keepalive_time_ms = 100, .keepalive_timeout_ms = 2000};
    struct cws_gclient_stats st;
    struct cws_error err;
    struct gct_rec r;
    struct sfix s;

    sfix_start(&s, &pc, &cc);
    for (int i = 0; i < 2; i++) {
        gct_rec_init(&r);
        ck_assert_int_eq(cws_gclient_unary(s.f.client, "/peer/Echo", NULL, (const uint8_t *)"v", 1,
                                           &gct_handlers, &r, NULL, &err),
                         0);
        ck_assert(gct_run_until(s.f.base, &r.done, 3000));
        ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
        gct_rec_clear(&r);
        gct_run_for(s.f.base, 250); /* silent past keepalive_time */
    }
    cws_gclient_get_stats(s.f.client, &st);
    ck_assert_uint_ge(st.pings, 1);
    ck_assert_uint_eq(st.connects, 1);
    sfix_free(&s);
}
END_TEST

/* ---- failures --------------------------------------------------------------------------- */

START_TEST(test_connection_loss)
{
    struct fixture f = {0};
    struct gct_peer p;
    struct gct_rec r;
    struct cws_error err;
    int64_t t0;

    ck_assert_int_eq(gct_python_peer_start(NULL, &p), 0);
    client_new(&f, p.unix_url);
    gct_rec_init(&r);
    ck_assert_int_eq(cws_gclient_unary(f.client, PEER "Hang", NULL, (const uint8_t *)"", 0,
                                       &gct_handlers, &r, NULL, &err),
                     0);
    gct_run_for(f.base, 200);
    t0 = cws_gc_now_ms();
    kill(p.pid, SIGKILL);
    ck_assert(gct_run_until(f.base, &r.done, 3000));
    ck_assert_int_eq(r.code, CWS_E_UNAVAILABLE);
    ck_assert(r.local);
    ck_assert(r.retryable);
    ck_assert_msg(strstr(r.message, "connection lost"), "%s", r.message);
    ck_assert_msg(r.done_ms - t0 < 500, "took %lld ms", (long long)(r.done_ms - t0));
    fixture_free(&f);
    gct_peer_stop(&p);
}
END_TEST

START_TEST(test_connect_refused)
{
    struct fixture f = {0};
    struct cws_gclient_config cfg = {.url = "unix:/nonexistent/cws-test.sock",
                                     .backoff_initial_ms = 300};
    struct cws_gc_call_opts wait = deadline_in(200);
    struct gct_rec r;
    int64_t t0 = cws_gc_now_ms();

    client_new_cfg(&f, &cfg);
    unary(&f, PEER "Echo", "x", NULL, &r, 3000);
    ck_assert_int_eq(r.code, CWS_E_UNAVAILABLE);
    ck_assert_msg(strstr(r.message, "/nonexistent/cws-test.sock: No such file"), "%s", r.message);
    ck_assert_msg(r.done_ms - t0 < 500, "took %lld ms", (long long)(r.done_ms - t0));
    gct_rec_clear(&r);
    /* During the backoff a call fails at once with the same reason. */
    unary(&f, PEER "Echo", "x", NULL, &r, 3000);
    ck_assert_int_eq(r.code, CWS_E_UNAVAILABLE);
    ck_assert_msg(strstr(r.message, "next attempt"), "%s", r.message);
    gct_rec_clear(&r);
    /* Waiting for ready ends at the deadline, saying why. */
    wait.wait_for_ready = true;
    unary(&f, PEER "Echo", "x", &wait, &r, 3000);
    ck_assert_int_eq(r.code, CWS_E_DEADLINE_EXCEEDED);
    ck_assert_msg(strstr(r.message, "cws-test.sock"), "%s", r.message);
    gct_rec_clear(&r);
    fixture_free(&f);
}
END_TEST

START_TEST(test_not_h2_server)
{
    /* A listening socket that accepts and says nothing: SETTINGS never come. */
    struct fixture f = {0};
    struct cws_gclient_config cfg = {.connect_timeout_ms = 300};
    char path[64], url[80];
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct gct_rec r;

    snprintf(path, sizeof(path), "/tmp/gct-silent-%d.sock", (int)getpid());
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    unlink(path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    snprintf(url, sizeof(url), "unix:%s", path);
    cfg.url = url;
    client_new_cfg(&f, &cfg);
    unary(&f, PEER "Echo", "x", NULL, &r, 3000);
    ck_assert_int_eq(r.code, CWS_E_UNAVAILABLE);
    ck_assert_msg(strstr(r.message, "SETTINGS"), "%s", r.message);
    gct_rec_clear(&r);
    fixture_free(&f);
    close(fd);
    unlink(path);
}
END_TEST

START_TEST(test_bad_config)
{
    static const char *const bad_urls[] = {
        "ftp://example.com",
        "http://example.com/v1",
        "example.com:443",
        "unix:relative/path",
        "https://user:pw@h:1",
        "http://h:1/?q=1",
        "",
    };
    struct event_base *base = event_base_new();
    struct cws_gclient *c = NULL;
    struct cws_error err;

    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        struct cws_gclient_config cfg = {.base = base, .url = bad_urls[i]};

        ck_assert_msg(cws_gclient_new(&cfg, &c, &err) == -CWS_E_INVALID_ARGUMENT, "%s accepted",
                      bad_urls[i]);
        ck_assert(!strstr(err.message, "pw@"));
    }
    {
        struct cws_gc_header bad_md[][1] = {{{"Authorization", "x"}},
                                            {{"content-type", "x"}},
                                            {{":path", "x"}},
                                            {{"x-ok", "line\nbreak"}}};

        for (size_t i = 0; i < 4; i++) {
            struct cws_gclient_config cfg = {
                .base = base, .url = "http://127.0.0.1:1", .metadata = bad_md[i], .n_metadata = 1};

            ck_assert_int_eq(cws_gclient_new(&cfg, &c, &err), -CWS_E_INVALID_ARGUMENT);
            ck_assert(!strstr(err.message, "line"));
        }
    }
    {
        struct cws_gclient_config cfg = {.base = base, .url = "unix:///tmp/x.sock"};
        struct gct_rec r;

        ck_assert_int_eq(cws_gclient_new(&cfg, &c, &err), 0);
        ck_assert_int_eq(cws_gclient_call_start(c, "no-slash", NULL, &gct_handlers, &r, NULL, &err),
                         -CWS_E_INVALID_ARGUMENT);
        cws_gclient_free(c);
    }
    cws_gclient_free(NULL);
    cws_gc_call_cancel(NULL);
    event_base_free(base);
}
END_TEST

/* ---- TLS -------------------------------------------------------------------------------- */

/* count messages of size bytes up a Bidi call and back, queued all at once. */
static void big_bidi(struct fixture *f, int count, size_t size)
{
    uint8_t *msg = malloc(size);
    struct cws_gc_call *call = NULL;
    struct cws_error err;
    struct gct_rec r;

    memset(msg, 0x5a, size);
    gct_rec_init(&r);
    ck_assert_int_eq(
        cws_gclient_call_start(f->client, PEER "Bidi", NULL, &gct_handlers, &r, &call, &err), 0);
    for (int i = 0; i < count; i++)
        ck_assert_int_ge(cws_gc_call_send(call, msg, size), 0);
    cws_gc_call_close_send(call);
    ck_assert(gct_run_until(f->base, &r.done, 30000));
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    ck_assert_uint_eq(r.n_messages, (size_t)count);
    ck_assert_uint_eq(r.bytes, (size_t)count * size);
    gct_rec_clear(&r);
    free(msg);
}

static char tls_dir[64];

/* A CA and a server certificate for localhost/127.0.0.1, made with the openssl tool. */
static int make_tls_files(void)
{
    char cmd[2048];

    snprintf(tls_dir, sizeof(tls_dir), "/tmp/gct-tls-%d", (int)getpid());
    mkdir(tls_dir, 0700);
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
             "-days 2 -subj /CN=cws-test-ca >/dev/null 2>&1 && "
             "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
             "-subj /CN=localhost >/dev/null 2>&1 && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out srv.pem -days 2 -extfile ext.cnf >/dev/null 2>&1 && "
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem "
             "-days 2 -subj /CN=other-ca >/dev/null 2>&1",
             tls_dir);
    return system(cmd) == 0 ? 0 : -1;
}

START_TEST(test_tls)
{
    char cert[128], key[128], ca[128], other[128], url[160];
    const char *extra[5];
    struct fixture f = {0};
    struct gct_peer p;
    struct gct_rec r;

    if (make_tls_files() < 0) {
        fprintf(stderr, "openssl tool unavailable: TLS test skipped\n");
        return;
    }
    snprintf(cert, sizeof(cert), "%s/srv.pem", tls_dir);
    snprintf(key, sizeof(key), "%s/srv.key", tls_dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", tls_dir);
    snprintf(other, sizeof(other), "%s/other.pem", tls_dir);
    extra[0] = "--tls-cert";
    extra[1] = cert;
    extra[2] = "--tls-key";
    extra[3] = key;
    extra[4] = NULL;
    ck_assert_int_eq(gct_python_peer_start(extra, &p), 0);
    snprintf(url, sizeof(url), "https://localhost:%s", strchr(p.tcp, ':') + 1);
    {
        struct cws_gclient_config cfg = {.url = url, .tls_ca_file = ca};

        client_new_cfg(&f, &cfg);
        unary(&f, PEER "Echo", "over tls", NULL, &r, 5000);
        ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
        ck_assert_mem_eq(r.last, "over tls", 8);
        gct_rec_clear(&r);
        unary(&f, PEER "Stream", "100 100000", NULL, &r, 10000);
        ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
        ck_assert_uint_eq(r.bytes, 100 * 100000);
        gct_rec_clear(&r);
        big_bidi(&f, 64, 256 * 1024); /* 16 MiB up and down: TLS writes retried on a full socket */
        fixture_free(&f);
    }
    {
        /* A server whose certificate the roots do not vouch for is refused. */
        struct cws_gclient_config cfg = {.url = url, .tls_ca_file = other};

        client_new_cfg(&f, &cfg);
        unary(&f, PEER "Echo", "x", NULL, &r, 5000);
        ck_assert_int_eq(r.code, CWS_E_UNAVAILABLE);
        ck_assert_msg(strstr(r.message, "certificate") || strstr(r.message, "SSL"), "%s",
                      r.message);
        gct_rec_clear(&r);
        fixture_free(&f);
    }
    gct_peer_stop(&p);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", tls_dir);
        ck_assert_int_eq(system(cmd), 0);
    }
}
END_TEST

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, c;

    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* http_proxy / https_proxy / no_proxy are honoured for TCP backends (CONNECT tunnels), never
 * for a Unix socket. */
START_TEST(test_proxy)
{
    char log[96], proxy_url[160], url[160], cert[128], key[128], ca[128];
    const char *proxy_args[] = {"--log", log, NULL};
    const char *tls_args[5];
    struct gct_peer proxy, tls;
    struct fixture f = {0};
    struct gct_rec r;

    snprintf(log, sizeof(log), "/tmp/gct-proxy-%d.log", (int)getpid());
    unlink(log);
    ck_assert_int_eq(gct_python_script_start("connect_proxy.py", proxy_args, &proxy), 0);
    snprintf(proxy_url, sizeof(proxy_url), "http://%s", proxy.tcp);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    setenv("http_proxy", proxy_url, 1);
    setenv("https_proxy", proxy_url, 1);

    client_new(&f, py.http_url);
    unary(&f, PEER "Echo", "via proxy", NULL, &r, 5000);
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    gct_rec_clear(&r);
    fixture_free(&f);
    ck_assert_int_eq(count_lines(log), 1);

    client_new(&f, py.unix_url);
    unary(&f, PEER "Echo", "local", NULL, &r, 5000);
    ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
    gct_rec_clear(&r);
    fixture_free(&f);
    ck_assert_int_eq(count_lines(log), 1);

    if (make_tls_files() == 0) {
        snprintf(cert, sizeof(cert), "%s/srv.pem", tls_dir);
        snprintf(key, sizeof(key), "%s/srv.key", tls_dir);
        snprintf(ca, sizeof(ca), "%s/ca.pem", tls_dir);
        tls_args[0] = "--tls-cert";
        tls_args[1] = cert;
        tls_args[2] = "--tls-key";
        tls_args[3] = key;
        tls_args[4] = NULL;
        ck_assert_int_eq(gct_python_peer_start(tls_args, &tls), 0);
        snprintf(url, sizeof(url), "https://localhost:%s", strchr(tls.tcp, ':') + 1);
        {
            struct cws_gclient_config cfg = {.url = url, .tls_ca_file = ca};

            client_new_cfg(&f, &cfg);
            unary(&f, PEER "Echo", "tls via proxy", NULL, &r, 5000);
            ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
            gct_rec_clear(&r);
            fixture_free(&f);
            ck_assert_int_eq(count_lines(log), 2);

            setenv("no_proxy", "localhost,127.0.0.1", 1);
            client_new_cfg(&f, &cfg);
            unary(&f, PEER "Echo", "tls direct", NULL, &r, 5000);
            ck_assert_msg(r.code == CWS_E_OK, "%s", r.message);
            gct_rec_clear(&r);
            fixture_free(&f);
            ck_assert_int_eq(count_lines(log), 2);
        }
        gct_peer_stop(&tls);
        snprintf(url, sizeof(url), "rm -rf %s", tls_dir);
        ck_assert_int_eq(system(url), 0);
    }
    gct_peer_stop(&proxy);
    unlink(log);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("grpc_client");
    TCase *basic = tcase_create("python_peer");
    TCase *pool = tcase_create("pool");
    TCase *scripted = tcase_create("scripted_peer");
    TCase *fail = tcase_create("failures");

    tcase_add_unchecked_fixture(basic, py_setup, py_teardown);
    tcase_set_timeout(basic, 60);
    tcase_add_test(basic, test_unary_unix);
    tcase_add_test(basic, test_unary_http);
    tcase_add_test(basic, test_error_details_trailers_only);
    tcase_add_test(basic, test_error_after_message);
    tcase_add_test(basic, test_deadline);
    tcase_add_test(basic, test_server_streaming);
    tcase_add_test(basic, test_bidi_pingpong);
    tcase_add_test(basic, test_half_close);
    tcase_add_test(basic, test_cancel_reaches_server);
    tcase_add_test(basic, test_cancel_inside_callback);
    tcase_add_test(basic, test_oversize);
    tcase_add_test(basic, test_pause_resume);
    tcase_add_test(basic, test_many_sequential_one_connection);
    tcase_add_test(basic, test_free_with_calls);
    tcase_add_test(basic, test_proxy);
    suite_add_tcase(s, basic);

    tcase_add_unchecked_fixture(pool, py_setup, py_teardown);
    tcase_set_timeout(pool, 60);
    tcase_add_test(pool, test_200_streams_one_connection);
    tcase_add_test(pool, test_200_streams_limit_100);
    tcase_add_test(pool, test_goaway_in_flight_finish);
    suite_add_tcase(s, pool);

    tcase_set_timeout(scripted, 30);
    tcase_add_test(scripted, test_goaway_refused_calls_retried);
    tcase_add_test(scripted, test_refused_stream_retried);
    tcase_add_test(scripted, test_deadline_local);
    tcase_add_test(scripted, test_goaway_refused_not_replayable);
    tcase_add_test(scripted, test_reconnect_after_restart);
    tcase_add_test(scripted, test_stalled_upload_no_spin);
    tcase_add_test(scripted, test_receive_backpressure_bounded);
    tcase_add_test(scripted, test_dead_peer_keepalive);
    tcase_add_test(scripted, test_stale_connection_verified);
    suite_add_tcase(s, scripted);

    tcase_set_timeout(fail, 60);
    tcase_add_test(fail, test_connection_loss);
    tcase_add_test(fail, test_connect_refused);
    tcase_add_test(fail, test_not_h2_server);
    tcase_add_test(fail, test_bad_config);
    tcase_add_test(fail, test_tls);
    suite_add_tcase(s, fail);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    cws_log_init("test_grpc_client");
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
