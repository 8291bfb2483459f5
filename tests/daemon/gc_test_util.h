/* Helpers for the gRPC client tests and benchmarks: a peer server process that announces
 * itself with "READY unix=<path> tcp=<host:port>", a recorder of one call's outcome, and a
 * way to run the loop until something happened. */
#ifndef CWS_GC_TEST_UTIL_H
#define CWS_GC_TEST_UTIL_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "grpc_client.h"

struct gct_peer {
    pid_t pid;
    char unix_path[256];
    char tcp[128];      /* "127.0.0.1:PORT", or "" */
    char unix_url[300]; /* "unix:<path>" */
    char http_url[160]; /* "http://<tcp>" */
};

/* Start argv (argv[0] a path) with stdout on a pipe and wait up to timeout_ms for its READY
 * line. Returns 0, or -1 with a message on stderr (the process is killed then). */
int gct_peer_start(char *const argv[], int timeout_ms, struct gct_peer *ret);

/* SIGTERM, wait up to 5 s, then SIGKILL. Accepts a zeroed peer. */
void gct_peer_stop(struct gct_peer *p);

/* The Python peer: "/usr/bin/python3 <dir>/grpc_client_peer.py --unix <tmp> [extra...]".
 * extra is NULL-terminated or NULL. */
int gct_python_peer_start(const char *const *extra, struct gct_peer *ret);

/* Another script of this directory: "/usr/bin/python3 <dir>/<script> [args...]". */
int gct_python_script_start(const char *script, const char *const *args, struct gct_peer *ret);

/* The directory of the test scripts. */
const char *gct_source_dir(void);

/* What one call produced; filled by gct_handlers. */
struct gct_rec {
    bool done;
    int64_t done_ms;
    bool got_headers;
    char headers[1024]; /* "name=value\n" lines, response headers */
    size_t n_messages;
    size_t bytes;
    uint8_t *last; /* copy of the last message */
    size_t last_len;
    uint8_t *first; /* copy of the first message */
    size_t first_len;
    bool pause_after_first; /* pause receiving after the first message */
    bool cancel_on_message;
    struct cws_gc_call *call;
    /* on_done */
    enum cws_errcode code;
    int grpc_code;
    char message[512];
    char reason[96];
    char domain[64];
    char md_filepath[64];
    int64_t retry_delay_ms;
    size_t n_violations;
    char violation0[128];
    bool local;
    bool trailers_only;
    bool retryable;
    unsigned writable;
};

extern const struct cws_gc_handlers gct_handlers;

void gct_rec_init(struct gct_rec *r);
void gct_rec_clear(struct gct_rec *r);

/* Value of a recorded response header, into buf; NULL when absent. */
const char *gct_rec_header(const struct gct_rec *r, const char *name, char *buf, size_t size);

/* Run base until *flag is true or timeout_ms passed. Returns true when the flag was set. */
bool gct_run_until(struct event_base *base, const bool *flag, int timeout_ms);

/* Run base until count recorders are done. */
bool gct_run_until_all(struct event_base *base, struct gct_rec *recs, size_t count, int timeout_ms);

/* Run base for ms milliseconds. */
void gct_run_for(struct event_base *base, int ms);

/* Process CPU time (user + system) in ms. */
double gct_cpu_ms(void);
double gct_cpu_ms_of(pid_t pid);

#endif
