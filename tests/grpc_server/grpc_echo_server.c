/* A test server on the gRPC server framework: service cws.test.Echo with raw-byte messages.
 *
 *   Unary      echo the request
 *   Repeat     server streaming: request = count (u32 BE), size (u32 BE); sends count
 *              messages of size bytes, message i starting with i (u32 BE) and filled with
 *              i & 0xff, producing only while cws_gcall_send() allows (flow control)
 *   Bidi       echo every message; OK on half-close
 *   Fail       INVALID_ARGUMENT with ErrorInfo (reason, metadata) and BadRequest violations
 *   Refuse     refused in start(): NOT_FOUND with a reason
 *   LongFail   INVALID_ARGUMENT with a 100 000-byte message (700 "\u00e9" then "x"s) and a reason
 *   Upload     client streaming: the first message is a pause in ms (u32 BE); input is paused
 *              that long after it; replies "messages=M bytes=B" on half-close
 *   Hang       unary request = tag; never finishes; records how it ended
 *   CancelOf   request = tag; replies the code name its Hang call ended with, "LIVE" or ""
 *   Barrier    request = n (u32 BE); each call waits until n are waiting, then all finish
 *   Stats      replies "live=L blocked=B writable=W cancels=C"
 *   Contract   checks the API's return codes on itself; replies a report, "a", a
 *              google.protobuf.Duration{seconds: 7} and a max_message-sized message, then
 *              checks what must fail after finish; prints "CONTRACT DONE" (and "CONTRACT
 *              FAILED ..." for each broken rule) on stderr
 *
 * Prints "READY unix=<path> tcp=<host:port>" on stdout once listening; "CANCELLED <tag>
 * <why>" on stderr for each Hang call that ends; exits 0 on SIGTERM or SIGINT after freeing
 * the server (so that its shutdown path runs under the sanitizers).
 */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "google/protobuf/duration.pb-c.h"
#include "grpc_frame.h"
#include "grpc_server.h"
#include "log.h"

#define MAX_TAGS 4096
#define TAG_MAX  64

struct tag_record {
    char tag[TAG_MAX];
    const char *state; /* "LIVE" or a cws_errcode name */
};

static struct {
    struct event_base *base;
    struct tag_record tags[MAX_TAGS];
    size_t n_tags;
    struct cws_gcall *barrier[1024];
    size_t n_barrier;
    long long live, blocked, writable, cancels;
    const struct cws_gsrv_config *cfg;
} g;

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void send_text(struct cws_gcall *call, const char *text)
{
    cws_gcall_send(call, (const uint8_t *)text, strlen(text));
}

/* Counts live calls so the test can see that every call was released. */
static void live_cancel(struct cws_gcall *call, enum cws_errcode why, void *ud)
{
    g.live--;
    g.cancels++;
}

static void finish_ok(struct cws_gcall *call)
{
    g.live--;
    cws_gcall_finish(call, NULL);
}

/* --- Unary, Bidi ------------------------------------------------------------------------- */

static void echo_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    cws_gcall_send(call, data, len);
}

static void echo_half_close(struct cws_gcall *call, void *ud)
{
    finish_ok(call);
}

static int start_echo(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *h,
                      void **ret_ud, struct cws_gstatus *st)
{
    h->on_message = echo_message;
    h->on_half_close = echo_half_close;
    h->on_cancel = live_cancel;
    g.live++;
    return 0;
}

/* --- Repeat ------------------------------------------------------------------------------ */

struct repeat {
    uint32_t next, count, size;
    uint8_t *buf;
};

static void repeat_free(struct repeat *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

static void repeat_produce(struct cws_gcall *call, struct repeat *r)
{
    while (r->next < r->count) {
        int rv;

        memset(r->buf, (int)(r->next & 0xff), r->size);
        if (r->size >= 4)
            put_u32(r->buf, r->next);
        rv = cws_gcall_send(call, r->buf, r->size);
        r->next++;
        if (rv < 0) {
            cws_gcall_finish_error(call, 13, "send failed: %d", rv);
            g.live--;
            repeat_free(r);
            return;
        }
        if (rv == 1) {
            g.blocked++;
            return;
        }
    }
    finish_ok(call);
    repeat_free(r);
}

static void repeat_writable(struct cws_gcall *call, void *ud)
{
    g.writable++;
    repeat_produce(call, ud);
}

static void repeat_cancel(struct cws_gcall *call, enum cws_errcode why, void *ud)
{
    live_cancel(call, why, ud);
    repeat_free(ud);
}

static void repeat_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    struct repeat *r = ud;

    if (len < 8) {
        cws_gcall_finish_error(call, 3, "Repeat wants count and size");
        g.live--;
        repeat_free(r);
        return;
    }
    r->count = get_u32(data);
    r->size = get_u32(data + 4);
    r->buf = malloc(r->size ? r->size : 1);
    repeat_produce(call, r);
}

static int start_repeat(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *h,
                        void **ret_ud, struct cws_gstatus *st)
{
    struct repeat *r = calloc(1, sizeof(*r));

    if (!r)
        return -CWS_E_NOMEM;
    h->on_message = repeat_message;
    h->on_writable = repeat_writable;
    h->on_cancel = repeat_cancel;
    *ret_ud = r;
    g.live++;
    return 0;
}

/* --- Fail, Refuse ------------------------------------------------------------------------ */

static void fail_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    static const char *const kv[] = {"filepath", "/tmp/a b", "size_bytes", "42", NULL};
    static const struct cws_gviolation violations[] = {
        {"spec.image", "must be set"},
        {"spec.cpu", "must be positive"},
    };
    struct cws_gstatus st = CWS_GSTATUS_INIT;

    st.grpc_code = 3;
    st.message = "bad request: \xe2\x9c\x93 100% done\nsecond line";
    st.reason = "CWSANDBOX_TEST_REASON";
    st.metadata_kv = kv;
    st.violations = violations;
    st.n_violations = 2;
    g.live--;
    cws_gcall_finish(call, &st);
}

static int start_fail(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *h,
                      void **ret_ud, struct cws_gstatus *st)
{
    h->on_message = fail_message;
    h->on_cancel = live_cancel;
    g.live++;
    return 0;
}

static void long_fail_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    struct cws_gstatus st = CWS_GSTATUS_INIT;
    size_t n = 100000;
    char *text = malloc(n + 1);

    for (size_t i = 0; i < n; i++)
        text[i] = i < 1400 ? (char)(i % 2 ? 0xa9 : 0xc3) : 'x';
    text[n] = '\0';
    st.grpc_code = 3;
    st.message = text;
    st.reason = "CWSANDBOX_TEST_REASON";
    g.live--;
    cws_gcall_finish(call, &st);
    free(text);
}

static int start_long_fail(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *h,
                           void **ret_ud, struct cws_gstatus *st)
{
    h->on_message = long_fail_message;
    h->on_cancel = live_cancel;
    g.live++;
    return 0;
}

static int start_refuse(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *h,
                        void **ret_ud, struct cws_gstatus *st)
{
    st->grpc_code = 5;
    st->message = "no such thing";
    st->reason = "CWSANDBOX_SANDBOX_NOT_FOUND";
    st->retry_delay_ms = 1500;
    return -CWS_E_NOT_FOUND;
}

/* --- Upload ------------------------------------------------------------------------------ */

struct upload {
    struct cws_gcall *call;
    struct event *timer;
    unsigned long long messages, bytes;
};

static void upload_free(struct upload *u)
{
    if (!u)
        return;
    if (u->timer)
        event_free(u->timer);
    free(u);
}

static void upload_resume(evutil_socket_t fd, short what, void *ud)
{
    struct upload *u = ud;

    cws_gcall_pause_input(u->call, false);
}

static void upload_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    struct upload *u = ud;

    u->messages++;
    u->bytes += len;
    if (u->messages == 1 && len >= 4) {
        uint32_t ms = get_u32(data);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

        cws_gcall_pause_input(call, true);
        evtimer_add(u->timer, &tv);
    }
}

static void upload_half_close(struct cws_gcall *call, void *ud)
{
    struct upload *u = ud;
    char text[96];

    snprintf(text, sizeof(text), "messages=%llu bytes=%llu", u->messages, u->bytes);
    send_text(call, text);
    finish_ok(call);
    upload_free(u);
}

static void upload_cancel(struct cws_gcall *call, enum cws_errcode why, void *ud)
{
    live_cancel(call, why, ud);
    upload_free(ud);
}

static int start_upload(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *h,
                        void **ret_ud, struct cws_gstatus *st)
{
    struct upload *u = calloc(1, sizeof(*u));

    if (!u)
        return -CWS_E_NOMEM;
    u->call = call;
    u->timer = evtimer_new(g.base, upload_resume, u);
    h->on_message = upload_message;
    h->on_half_close = upload_half_close;
    h->on_cancel = upload_cancel;
    *ret_ud = u;
    g.live++;
    return 0;
}

/* --- Hang, CancelOf ---------------------------------------------------------------------- */

static struct tag_record *tag_find(const char *tag, size_t len)
{
    for (size_t i = g.n_tags; i > 0; i--) {
        struct tag_record *t = &g.tags[i - 1];

        if (strlen(t->tag) == len && memcmp(t->tag, tag, len) == 0)
            return t;
    }
    return NULL;
}

static void hang_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    struct tag_record *t = ud;

    if (len >= TAG_MAX)
        len = TAG_MAX - 1;
    memcpy(t->tag, data, len);
    t->tag[len] = '\0';
    t->state = "LIVE";
}

static void hang_cancel(struct cws_gcall *call, enum cws_errcode why, void *ud)
{
    struct tag_record *t = ud;

    live_cancel(call, why, ud);
    t->state = cws_errcode_name(why);
    fprintf(stderr, "CANCELLED %s %s\n", t->tag, t->state);
}

static int start_hang(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *h,
                      void **ret_ud, struct cws_gstatus *st)
{
    if (g.n_tags == MAX_TAGS) {
        st->grpc_code = 8;
        st->message = "too many Hang calls";
        return -CWS_E_RESOURCE_EXHAUSTED;
    }
    h->on_message = hang_message;
    h->on_cancel = hang_cancel;
    *ret_ud = &g.tags[g.n_tags++];
    g.live++;
    return 0;
}

static void cancel_of_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    const struct tag_record *t = tag_find((const char *)data, len);

    send_text(call, t && t->state ? t->state : "");
    finish_ok(call);
}

static int start_cancel_of(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *h,
                           void **ret_ud, struct cws_gstatus *st)
{
    h->on_message = cancel_of_message;
    h->on_cancel = live_cancel;
    g.live++;
    return 0;
}

/* --- Barrier, Stats ---------------------------------------------------------------------- */

static void barrier_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    uint32_t n = len >= 4 ? get_u32(data) : 1;
    char text[32];

    if (g.n_barrier == sizeof(g.barrier) / sizeof(g.barrier[0])) {
        cws_gcall_finish_error(call, 8, "barrier full");
        g.live--;
        return;
    }
    g.barrier[g.n_barrier++] = call;
    if (g.n_barrier < n)
        return;
    snprintf(text, sizeof(text), "%zu", g.n_barrier);
    for (size_t i = 0; i < g.n_barrier; i++) {
        send_text(g.barrier[i], text);
        finish_ok(g.barrier[i]);
    }
    g.n_barrier = 0;
}

static void barrier_cancel(struct cws_gcall *call, enum cws_errcode why, void *ud)
{
    live_cancel(call, why, ud);
    for (size_t i = 0; i < g.n_barrier; i++) {
        if (g.barrier[i] == call) {
            g.barrier[i] = g.barrier[--g.n_barrier];
            break;
        }
    }
}

static int start_barrier(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *h,
                         void **ret_ud, struct cws_gstatus *st)
{
    h->on_message = barrier_message;
    h->on_cancel = barrier_cancel;
    g.live++;
    return 0;
}

static void stats_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    char text[160];

    /* This call itself is not counted. */
    snprintf(text, sizeof(text), "live=%lld blocked=%lld writable=%lld cancels=%lld", g.live - 1,
             g.blocked, g.writable, g.cancels);
    send_text(call, text);
    finish_ok(call);
}

static int start_stats(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *h,
                       void **ret_ud, struct cws_gstatus *st)
{
    h->on_message = stats_message;
    h->on_cancel = live_cancel;
    g.live++;
    return 0;
}

/* --- Contract ---------------------------------------------------------------------------- */

/* A broken rule is reported on stderr, where the test looks for it. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fprintf(stderr, "CONTRACT FAILED %s\n", #cond);                                        \
    } while (0)

static void contract_writable(struct cws_gcall *call, void *ud)
{
    if (*(bool *)ud)
        fprintf(stderr, "CONTRACT FAILED on_writable() after finish\n");
}

/* What a finished call must refuse. */
/* What a finished call must refuse. */
static void contract_after_finish(struct cws_gcall *call)
{
    uint8_t byte = 0;

    CHECK(cws_gcall_finish(call, NULL) == -CWS_E_FAILED_PRECONDITION);
    CHECK(cws_gcall_finish_error(call, 13, "x") == -CWS_E_FAILED_PRECONDITION);
    CHECK(cws_gcall_send(call, &byte, 1) == -CWS_E_FAILED_PRECONDITION);
    cws_gcall_pause_input(call, true); /* ignored: nothing to check but that it is harmless */
    fprintf(stderr, "CONTRACT DONE\n");
}

static int64_t deadline_left_ms(const struct cws_gcall *call)
{
    int64_t deadline = cws_gcall_deadline_ms(call);
    struct timespec now;

    if (!deadline)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return deadline - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
}

static void contract_message(struct cws_gcall *call, const uint8_t *data, size_t len, void *ud)
{
    size_t max = g.cfg->max_message;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    uint8_t *big = calloc(1, max + 1);
    const char *x_test = cws_gcall_header(call, "x-test");
    char info[512];

    CHECK(big != NULL);
    CHECK(strcmp(cws_gcall_path(call), "/cws.test.Echo/Contract") == 0);
    CHECK(cws_gcall_header(call, "content-type") != NULL);
    CHECK(cws_gcall_header(call, "no-such-header") == NULL);
    CHECK(cws_gcall_send(NULL, big, 1) == -CWS_E_INVALID_ARGUMENT);
    CHECK(cws_gcall_send(call, NULL, 1) == -CWS_E_INVALID_ARGUMENT);
    CHECK(cws_gcall_send(call, big, max + 1) == -CWS_E_RESOURCE_EXHAUSTED);
    snprintf(info, sizeof(info), "peer=%s x-test=%s deadline_left=%lld", cws_gcall_peer(call),
             x_test ? x_test : "(none)", (long long)deadline_left_ms(call));
    CHECK(cws_gcall_send(call, (const uint8_t *)info, strlen(info)) == 0);
    CHECK(cws_gcall_send(call, (const uint8_t *)"a", 1) == 0);
    d.seconds = 7;
    CHECK(cws_gcall_send_pb(call, &d.base) == 0);
    /* Over out_high_water: the caller is told to stop producing. */
    CHECK(cws_gcall_send(call, big, max) == 1);
    free(big);
    g.live--;
    *(bool *)ud = true;
    CHECK(cws_gcall_finish(call, NULL) == 0);
    contract_after_finish(call);
}

static int start_contract(struct cws_gcall *call, void *server_ud, struct cws_gcall_handlers *h,
                          void **ret_ud, struct cws_gstatus *st)
{
    static bool finished;

    finished = false;
    h->on_message = contract_message;
    h->on_writable = contract_writable;
    h->on_cancel = live_cancel;
    *ret_ud = &finished;
    g.live++;
    return 0;
}

/* --- main -------------------------------------------------------------------------------- */

static const struct cws_gmethod methods[] = {
    {"/cws.test.Echo/Unary", true, start_echo},
    {"/cws.test.Echo/Repeat", true, start_repeat},
    {"/cws.test.Echo/Bidi", false, start_echo},
    {"/cws.test.Echo/Fail", true, start_fail},
    {"/cws.test.Echo/Refuse", true, start_refuse},
    {"/cws.test.Echo/LongFail", true, start_long_fail},
    {"/cws.test.Echo/Upload", false, start_upload},
    {"/cws.test.Echo/Hang", true, start_hang},
    {"/cws.test.Echo/CancelOf", true, start_cancel_of},
    {"/cws.test.Echo/Barrier", true, start_barrier},
    {"/cws.test.Echo/Stats", true, start_stats},
    {"/cws.test.Echo/Contract", true, start_contract},
};

static void on_signal(evutil_socket_t sig, short what, void *ud)
{
    event_base_loopbreak(g.base);
}

static int usage(void)
{
    fprintf(stderr, "usage: grpc_echo_server [--unix PATH] [--listen HOST:PORT --token TOKEN] "
                    "[--allow-non-loopback] [--high-water BYTES] [--max-message BYTES]\n");
    return 2;
}

static int parse_args(int argc, char **argv, struct cws_gsrv_config *cfg)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--allow-non-loopback") == 0) {
            cfg->allow_non_loopback = true;
            continue;
        }
        if (!v)
            return usage();
        i++;
        if (strcmp(a, "--unix") == 0)
            cfg->unix_path = v;
        else if (strcmp(a, "--listen") == 0)
            cfg->listen_addr = v;
        else if (strcmp(a, "--token") == 0)
            cfg->token = v;
        else if (strcmp(a, "--high-water") == 0)
            cfg->out_high_water = strtoull(v, NULL, 10);
        else if (strcmp(a, "--max-message") == 0)
            cfg->max_message = strtoull(v, NULL, 10);
        else
            return usage();
    }
    return 0;
}

static void print_ready(const struct cws_gsrv_config *cfg, const struct cws_gsrv *srv)
{
    const char *colon = cfg->listen_addr ? strrchr(cfg->listen_addr, ':') : NULL;

    printf("READY unix=%s tcp=", cfg->unix_path ? cfg->unix_path : "");
    if (colon)
        printf("%.*s:%d", (int)(colon - cfg->listen_addr), cfg->listen_addr,
               cws_gsrv_tcp_port(srv));
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct cws_gsrv_config cfg = {.methods = methods,
                                  .n_methods = sizeof(methods) / sizeof(methods[0])};
    struct cws_gsrv *srv = NULL;
    struct event *sigterm, *sigint;
    struct cws_error err;

    cws_log_init("grpc_echo_server");
    signal(SIGPIPE, SIG_IGN);
    if (parse_args(argc, argv, &cfg) != 0)
        return 2;
    if (!cfg.max_message)
        cfg.max_message = CWS_GRPC_MAX_MESSAGE;
    g.cfg = &cfg;
    g.base = event_base_new();
    cfg.base = g.base;
    if (cws_gsrv_new(&cfg, &srv, &err) < 0) {
        fprintf(stderr, "error: %s\n", err.message);
        event_base_free(g.base);
        return 1;
    }
    sigterm = evsignal_new(g.base, SIGTERM, on_signal, NULL);
    sigint = evsignal_new(g.base, SIGINT, on_signal, NULL);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    print_ready(&cfg, srv);
    event_base_dispatch(g.base);
    cws_gsrv_free(srv);
    fprintf(stderr, "EXITING live=%lld\n", g.live);
    event_free(sigterm);
    event_free(sigint);
    /* A second signal while exiting must not turn a clean exit into a kill. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    event_base_free(g.base);
    return 0;
}
