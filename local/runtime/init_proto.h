/* What the runtime (server side) and cwsandbox-init agree on: the layout of a sandbox
 * directory, the start handshake and the msgpack-rpc methods of the init socket.
 *
 * Start handshake, over a SOCK_SEQPACKET pair whose init end is fd CWS_INIT_SYNC_FD:
 *   init -> server  "fail:<reason>"  setup failed; init records it and exits
 *   server -> init  "go"             the network is ready: start the main command
 *   init -> server  "running"        the main command was executed
 * The sandbox directory is fd CWS_INIT_DIR_FD; init reads CWS_SB_SPEC from it.
 *
 * Init socket (CWS_SB_INIT_SOCKET, one connection per exec), msgpack-rpc:
 *   server -> init  request      "exec" {argv, env?, cwd?, tty, cols, rows}
 *                   notification "stdin" {data}, "eof" {}, "resize" {cols, rows},
 *                                "signal" {signal}
 *   init -> server  notification "started" {pid}, "output" {fd, data}
 *                   response     {exit_code} once the process ended and its output was sent
 * Closing the connection kills the exec's process group.
 */
#ifndef CWS_INIT_PROTO_H
#define CWS_INIT_PROTO_H

#define CWS_INIT_SYNC_FD 3
#define CWS_INIT_DIR_FD  4

/* Files of <state_dir>/sandboxes/<id>/ */
#define CWS_SB_SPEC        "spec"      /* init's instructions (msgpack, init_spec.h) */
#define CWS_SB_META        "meta"      /* the runtime's own record (msgpack) */
#define CWS_SB_PID         "pid"       /* "<host pid of init> <start time in ticks>" */
#define CWS_SB_SLIRP_PID   "slirp.pid" /* the same for slirp4netns */
#define CWS_SB_LOG         "log"       /* the main command's output (logfile.h) */
#define CWS_SB_INIT_LOG    "init.log"  /* init's own diagnostics */
#define CWS_SB_SLIRP_LOG   "slirp.log"
#define CWS_SB_INIT_SOCKET "init.sock"
#define CWS_SB_SLIRP_SOCK  "slirp.sock"
#define CWS_SB_EXIT        "exit"  /* exit_record.h */
#define CWS_SB_STOP        "stop"  /* why the server stopped it */
#define CWS_SB_UPPER       "upper" /* overlay upper and work directories */
#define CWS_SB_WORK        "work"
#define CWS_SB_ROOT        "root"  /* mount point of the new root (inside init only) */
#define CWS_SB_HOSTS       "hosts" /* bound over /etc/hosts */
#define CWS_SB_RESOLV      "resolv.conf"

/* Sync messages. */
#define CWS_INIT_SYNC_GO      "go"
#define CWS_INIT_SYNC_RUNNING "running"
#define CWS_INIT_SYNC_FAIL    "fail:"
#define CWS_INIT_SYNC_MAX     1024

/* Methods of the init socket. */
#define CWS_INIT_M_EXEC    "exec"
#define CWS_INIT_N_STARTED "started"
#define CWS_INIT_N_OUTPUT  "output"
#define CWS_INIT_N_STDIN   "stdin"
#define CWS_INIT_N_EOF     "eof"
#define CWS_INIT_N_RESIZE  "resize"
#define CWS_INIT_N_SIGNAL  "signal"

/* Largest message either side sends; output and stdin travel in chunks far below it. */
#define CWS_INIT_MAX_MESSAGE (4u * 1024 * 1024)
/* Largest chunk of output or stdin in one message. */
#define CWS_INIT_CHUNK (64u * 1024)

#endif
