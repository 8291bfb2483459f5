/* Blocking waits: poll the connections of the ops waited on and process them until the
 * condition holds or the deadline passes. A lost connection fails its ops, so a wait ends. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define SMALL_SET 8

int64_t cwsc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cwsc_left_ms(int64_t deadline_ms)
{
    if (deadline_ms < 0)
        return -1;
    int64_t left = deadline_ms - cwsc_now_ms();
    if (left <= 0)
        return 0;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

static bool all_done(cws_op *const *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!ops[i]->done)
            return false;
    return true;
}

/* The distinct clients of the ops still in flight, into clients[] (room for n). */
static size_t collect_clients(cws_op *const *ops, size_t n, cws_client **clients)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        cws_client *c = ops[i]->done ? NULL : ops[i]->client;
        size_t j = 0;
        while (c && j < k && clients[j] != c)
            j++;
        if (c && j == k)
            clients[k++] = c;
    }
    return k;
}

/* Fail the ops of broken connections; true when there was one (something changed). */
static bool settle_broken(cws_client **clients, size_t k)
{
    bool any = false;
    for (size_t i = 0; i < k; i++) {
        if (clients[i]->broken) {
            cwsc_client_fail_all(clients[i]);
            any = true;
        }
    }
    return any;
}

static int poll_and_process(cws_client **clients, struct pollfd *pfds, size_t k, int left,
                            struct cws_error *err)
{
    for (size_t i = 0; i < k; i++) {
        pfds[i].fd = clients[i]->fd;
        pfds[i].events = POLLIN | (cws_client_want_write(clients[i]) ? POLLOUT : 0);
        pfds[i].revents = 0;
    }
    int r = poll(pfds, (nfds_t)k, left);
    if (r < 0 && errno != EINTR)
        return cws_error_set(err, CWS_E_IO, "poll: %s", strerror(errno));
    for (size_t i = 0; r > 0 && i < k; i++)
        if (pfds[i].revents)
            cws_client_process(clients[i], NULL);
    return 0;
}

static void hold(cws_op *const *ops, size_t n, int delta)
{
    for (size_t i = 0; i < n; i++)
        ops[i]->waiters += delta;
}

static int wait_loop(cws_op *const *ops, size_t n, cwsc_pred_fn pred, const void *ud,
                     int64_t deadline, cws_client **clients, struct pollfd *pfds,
                     struct cws_error *err)
{
    for (;;) {
        if (pred ? pred(ud) : all_done(ops, n))
            return 0;
        size_t k = collect_clients(ops, n, clients);
        if (k == 0)
            return 0; /* nothing can change any more */
        if (settle_broken(clients, k))
            continue;
        int left = cwsc_left_ms(deadline);
        if (left == 0)
            return cws_error_set(err, CWS_E_DEADLINE_EXCEEDED,
                                 "still in flight when the wait's deadline passed");
        int r = poll_and_process(clients, pfds, k, left, err);
        if (r < 0)
            return r;
    }
}

int cwsc_wait(cws_op *const *ops, size_t n, cwsc_pred_fn pred, const void *ud, int timeout_ms,
              struct cws_error *err)
{
    cws_client *small_clients[SMALL_SET];
    struct pollfd small_pfds[SMALL_SET];
    cws_client **clients = small_clients;
    struct pollfd *pfds = small_pfds;
    int64_t deadline = timeout_ms < 0 ? -1 : cwsc_now_ms() + timeout_ms;

    if (n > SMALL_SET) {
        clients = calloc(n, sizeof(*clients));
        pfds = calloc(n, sizeof(*pfds));
        if (!clients || !pfds) {
            free(clients);
            free(pfds);
            return cws_error_set(err, CWS_E_NOMEM, NULL);
        }
    }
    hold(ops, n, 1);
    int r = wait_loop(ops, n, pred, ud, deadline, clients, pfds, err);
    hold(ops, n, -1);
    if (clients != small_clients) {
        free(clients);
        free(pfds);
    }
    return r;
}

static bool appears_after(cws_op *const *ops, size_t i, size_t n)
{
    for (size_t j = i + 1; j < n; j++)
        if (ops[j] == ops[i])
            return true;
    return false;
}

/* Free the ops that were let go while we held them (once each: a set may name one twice). */
static void release_freed(cws_op *const *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cws_op *op = ops[i];
        if (op->freed && op->done && op->waiters == 0 && !appears_after(ops, i, n))
            cwsc_op_destroy(op);
    }
}

static int check_set(cws_op *const *ops, size_t n, struct cws_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!ops[i])
            return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "ops[%zu] is NULL", i);
    return 0;
}

int cws_op_wait(cws_op *op, int timeout_ms, struct cws_error *err)
{
    if (!op)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "op is NULL");
    int r = cwsc_wait(&op, 1, NULL, NULL, timeout_ms, err);
    if (r == -CWS_E_DEADLINE_EXCEEDED && !op->done)
        cws_error_set(err, CWS_E_DEADLINE_EXCEEDED, "%s is still in flight after %d ms", op->method,
                      timeout_ms);
    else if (op->done)
        r = cwsc_op_outcome(op, err);
    release_freed(&op, 1);
    return r;
}

struct op_set {
    cws_op *const *ops;
    size_t n;
};

static bool any_done(const void *ud)
{
    const struct op_set *set = ud;
    for (size_t i = 0; i < set->n; i++)
        if (set->ops[i]->done)
            return true;
    return false;
}

int cws_op_wait_any(cws_op *const *ops, size_t n, int timeout_ms, size_t *ret_index,
                    struct cws_error *err)
{
    struct op_set set = {ops, n};
    if (!ops || n == 0)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "the set of ops is empty");
    int r = check_set(ops, n, err);
    if (r == 0)
        r = cwsc_wait(ops, n, any_done, &set, timeout_ms, err);
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (ops[i]->done) {
            if (ret_index)
                *ret_index = i;
            break;
        }
    }
    release_freed(ops, n);
    return r;
}

int cws_op_wait_all(cws_op *const *ops, size_t n, int timeout_ms, struct cws_error *err)
{
    if (n == 0)
        return 0;
    int r = ops ? check_set(ops, n, err)
                : cws_error_set(err, CWS_E_INVALID_ARGUMENT, "the set of ops is NULL");
    if (r == 0)
        r = cwsc_wait(ops, n, NULL, NULL, timeout_ms, err);
    release_freed(ops, n);
    return r;
}
