/* coreweave.sandbox.v1.SandboxService for cwsandbox-local: the shared state of the service
 * and the functions its RPC files use. The gRPC transport is server/grpc_server.h, the
 * sandboxes themselves runtime/runtime.h; this layer owns the sandbox records (state machine,
 * persistence, listing) and maps each RPC onto them. */
#ifndef CWS_LOCAL_SERVICE_H
#define CWS_LOCAL_SERVICE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "coreweave/sandbox/v1/sandbox.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "cws_error.h"
#include "grpc_server.h"
#include "runtime.h"

#define CWS_SVC_PREFIX "/coreweave.sandbox.v1.SandboxService/"

/* Largest file moved by the unary ReadFile/WriteFile; larger ones get FILE_TOO_LARGE so the
 * clients fall back to streaming over StreamExec, as they do with the real service. */
#define CWS_SVC_FILE_MAX (32u * 1024 * 1024)
/* Default per-stream output cap of unary Exec when max_output_bytes is 0. */
#define CWS_SVC_EXEC_OUTPUT_DEFAULT (16u * 1024 * 1024)
/* Page size of ListSandboxes when the request says 0, and the largest one honoured. */
#define CWS_SVC_PAGE_DEFAULT 500
#define CWS_SVC_PAGE_MAX     1000
/* gRPC status codes the service answers with (gRPC's numbering). */
enum {
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_NOT_FOUND = 5,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
};

/* The runner every local sandbox reports. */
#define CWS_SVC_RUNNER_ID "local"

typedef Coreweave__Sandbox__V1__Sandbox Sandbox;
typedef Coreweave__Sandbox__V1__SandboxSpec SandboxSpec;
typedef Coreweave__Sandbox__V1__SandboxStatus SandboxStatus;
typedef Coreweave__Sandbox__V1__State SandboxState;

struct svc;
struct lsb;

/* Called once when a sandbox leaves CREATING: running, or ended/failed (then err is set). */
typedef void (*lsb_ready_fn)(struct lsb *sb, const struct cws_error *err, void *ud);

struct lsb_waiter;
struct lsb_end_listener;

/* One sandbox record. */
struct lsb {
    struct svc *svc;
    char *id;
    char *request_id;
    char *notes;       /* runtime notes, part of state_reason */
    SandboxSpec *spec; /* as created; owned (protobuf-c unpacked copy) */
    SandboxState state;
    bool has_exit_code;
    int exit_code;
    char *state_reason;
    int64_t create_ns, start_ns, end_ns; /* CLOCK_REALTIME, 0 when not reached */
    int64_t stop_requested_ms;
    int32_t stop_grace_s;
    struct cws_rt_sandbox *rt;  /* NULL once ended */
    struct lsb_waiter *waiters; /* operations waiting for RUNNING */
    int busy;                   /* calls holding this record; it is not expired meanwhile */
    struct lsb_end_listener *end_listeners;
    struct lsb *next; /* in svc->sandboxes, newest first */
};

struct svc_options {
    const char *socket_path;
    const char *listen_addr;
    bool allow_remote;
    const char *token_file;
    const char *state_dir;
    const char *images_dir;
    const char *init_path;
    int64_t retention_s; /* how long ended sandboxes stay readable */
};

struct svc {
    struct event_base *base;
    struct svc_options opt;
    struct cws_rt *rt;
    struct cws_gsrv *gsrv;
    struct lsb *sandboxes;
    size_t n_sandboxes;
    char *records_dir;
    struct event *retention_timer;
};

/* ---- service.c: set-up ---- */
int svc_init(struct svc *svc, struct event_base *base, const struct svc_options *opt,
             const char *token, struct cws_error *err);
void svc_shutdown(struct svc *svc);
extern const struct cws_gmethod svc_methods[];
extern const size_t svc_n_methods;

/* ---- sandbox_store.c: records ---- */
struct lsb *lsb_find(struct svc *svc, const char *id);
struct lsb *lsb_find_request(struct svc *svc, const char *request_id);
/* Persist a record (atomic rename + fsync). Failures are logged, not fatal. */
void lsb_persist(struct lsb *sb);
/* Load every record of records_dir into svc->sandboxes. */
int lsb_load_all(struct svc *svc, struct cws_error *err);
/* Forget a record: unlink its file and free it. */
void lsb_forget(struct lsb *sb);
void lsb_free(struct lsb *sb);
/* A Sandbox message built from a record for a response or for persisting. It points into
 * the record: valid until the record changes; release with lsb_view_clear(). */
struct lsb_view {
    Sandbox msg;
    SandboxStatus status;
    Google__Protobuf__Timestamp create_time, start_time, end_time;
    Coreweave__Sandbox__V1__ServiceStatus **services;
};
int lsb_view_init(struct lsb *sb, struct lsb_view *v);
void lsb_view_clear(struct lsb_view *v);
bool lsb_is_terminal(const struct lsb *sb);
/* Deep copy of a spec (NULL: an empty spec); the caller frees it with
 * coreweave__sandbox__v1__sandbox_spec__free_unpacked(). NULL when out of memory. */
SandboxSpec *lsb_copy_spec(const SandboxSpec *spec);
/* Forget ended sandboxes older than the retention, removing their directories. */
void lsb_expire(struct svc *svc);

/* ---- sandbox_lifecycle.c: the state machine ---- */
/* Create a record for a validated request and start the sandbox. */
int lsb_create(struct svc *svc, const Coreweave__Sandbox__V1__CreateSandboxRequest *req,
               struct lsb **ret, struct cws_error *err);
/* Re-attach every non-terminal record after a restart. */
void lsb_attach_all(struct svc *svc);
/* Request a stop with a grace period (seconds). */
void lsb_stop(struct lsb *sb, int32_t grace_s);
/* Whether an operation can run in the sandbox now: 0 when it is RUNNING; 1 when it is still
 * being created, and fn will run once it is RUNNING or has failed to get there (with err
 * set then) unless the wait is cancelled with lsb_wait_cancel(*ret_waiter) first;
 * -CWS_E_FAILED_PRECONDITION (reason CWSANDBOX_SANDBOX_NOT_RUNNING) when it never will. */
int lsb_when_running(struct lsb *sb, lsb_ready_fn fn, void *ud, struct lsb_waiter **ret_waiter,
                     struct cws_error *err);
void lsb_wait_cancel(struct lsb_waiter *w);
/* Call fn when the sandbox ends (state already terminal, runtime handle still valid). NULL
 * when out of memory. The handle is invalid once fn ran. */
struct lsb_end_listener *lsb_on_end(struct lsb *sb, void (*fn)(struct lsb *sb, void *ud), void *ud);
void lsb_on_end_cancel(struct lsb_end_listener *l);

/* ---- method entry points (cws_gmethod.start) ---- */
#define SVC_START(name)                                                                            \
    int svc_start_##name(struct cws_gcall *call, void *server_ud,                                  \
                         struct cws_gcall_handlers *ret_handlers, void **ret_call_ud,              \
                         struct cws_gstatus *ret_status)
SVC_START(create_sandbox);
SVC_START(get_sandbox);
SVC_START(list_sandboxes);
SVC_START(delete_sandbox);
SVC_START(purge_sandboxes);
SVC_START(exec);
SVC_START(stream_exec);
SVC_START(stream_logs);
SVC_START(read_file);
SVC_START(write_file);
SVC_START(unimplemented);

/* ---- spec_validate.c ---- */
struct svc_violations {
    struct cws_gviolation v[32];
    char description[32][160];
    char field[32][96];
    size_t n;
};
/* Check a CreateSandboxRequest; fills violations (empty when valid). */
void svc_validate_create(const Coreweave__Sandbox__V1__CreateSandboxRequest *req,
                         struct svc_violations *out);

/* ---- rpc_status.c: answering errors ---- */
/* Finish with code, ErrorInfo reason (may be NULL) and optional metadata, printf message. */
void svc_fail(struct cws_gcall *call, int grpc_code, const char *reason,
              const char *const *metadata_kv, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void svc_fail_not_found(struct cws_gcall *call, const char *id);
void svc_fail_not_running(struct cws_gcall *call, const struct lsb *sb);
/* Finish with a struct cws_error (its reason as ErrorInfo). */
void svc_fail_error(struct cws_gcall *call, const struct cws_error *err,
                    const char *const *metadata_kv);
/* Look up a sandbox by id for an RPC: NULL after answering INVALID_ARGUMENT or NOT_FOUND. */
struct lsb *svc_sandbox_or_fail(struct svc *svc, struct cws_gcall *call, const char *id);

/* ---- rpc_unary.c: unary requests ---- */
/* A unary handler: req is the unpacked request (freed after the handler returns). */
typedef void (*svc_unary_fn)(struct svc *svc, struct cws_gcall *call, const ProtobufCMessage *req);
int svc_start_unary(struct cws_gcall *call, struct svc *svc, const ProtobufCMessageDescriptor *desc,
                    svc_unary_fn fn, struct cws_gcall_handlers *ret_handlers, void **ret_call_ud);

/* ---- env_vector.c ---- */
/* "KEY=VALUE" strings, NULL-terminated, from n protobuf map entries of strings (the env maps
 * of Container, ExecRequest, ExecStreamInit). The caller frees *ret with
 * svc_env_vector_free(). */
int svc_env_vector(void *const *entries, size_t n, char ***ret);
void svc_env_vector_free(char **v);

/* Time helpers */
int64_t svc_now_ns(void);
int64_t svc_monotonic_ms(void);

#endif
