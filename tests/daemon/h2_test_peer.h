/* A scripted HTTP/2 gRPC peer on nghttp2 (server side, default protections), run inside the
 * test's own libevent loop on a Unix socket, for what a real server will not do on demand.
 *
 * Methods (raw bytes):
 *   /peer/Echo      echo every message; OK at END_STREAM
 *   /peer/Sink      never gives back stream window: the client's upload stalls; counts bytes
 *   /peer/Firehose  request "COUNT SIZE": sends as fast as flow control allows; counts bytes
 *   /peer/Hang      never answers
 *   /peer/Freeze    stops reading every connection (a dead peer: PINGs go unanswered)
 */
#ifndef CWS_H2_TEST_PEER_H
#define CWS_H2_TEST_PEER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct h2p;

struct h2p_config {
    struct event_base *base;
    const char *unix_path;
    uint32_t max_streams;    /* SETTINGS_MAX_CONCURRENT_STREAMS; 0: 1000 */
    uint32_t initial_window; /* SETTINGS_INITIAL_WINDOW_SIZE; 0: 65535 */
    int goaway_after;        /* on the Nth request of a connection, GOAWAY(first stream) */
    int refuse_first;        /* RST_STREAM(REFUSED_STREAM) for this many requests */
};

struct h2p_stats {
    unsigned connections;
    unsigned requests;
    unsigned cancels;        /* RST_STREAM(CANCEL) received */
    int64_t last_cancel_ns;  /* CLOCK_MONOTONIC */
    uint64_t sink_bytes;     /* DATA received on Sink streams */
    uint64_t firehose_bytes; /* DATA handed to nghttp2 on Firehose streams */
    unsigned goaways_sent;
    unsigned refused;
};

int h2p_start(const struct h2p_config *cfg, struct h2p **ret);
void h2p_free(struct h2p *p);
const struct h2p_stats *h2p_stats(const struct h2p *p);

#endif
