/* Where cwsandbox keeps its socket, runtime files, state and configuration.
 *
 * Every lookup reads the environment at the time of the call, so a test or a program can
 * change it at any time. XDG variables that are unset, empty or relative are ignored: the
 * XDG Base Directory spec says relative paths are invalid.
 *
 * The path functions return 0 and store a malloc'ed string in *ret_path, which the caller
 * frees with free(); on failure they return -CWS_E_xxx, fill err (if not NULL) and leave
 * *ret_path untouched.
 */
#ifndef CWS_PATHS_H
#define CWS_PATHS_H

#include "cws_error.h"

/* The daemon's socket: $CWSANDBOX_SOCKET, else $XDG_RUNTIME_DIR/cwsandbox/cwsandboxd.sock,
 * else /tmp/cwsandbox-$UID/cwsandboxd.sock. The caller frees *ret_path. */
int cws_socket_path(char **ret_path, struct cws_error *err);

/* The runtime directory: $XDG_RUNTIME_DIR/cwsandbox, else /tmp/cwsandbox-$UID.
 * The caller frees *ret_path. */
int cws_runtime_dir(char **ret_path, struct cws_error *err);

/* The local backend's private socket: <runtime dir>/local.sock. The caller frees *ret_path. */
int cws_local_socket_path(char **ret_path, struct cws_error *err);

/* The state directory: $XDG_STATE_HOME/cwsandbox, else $HOME/.local/state/cwsandbox (with
 * the passwd entry's home directory when HOME is unset or empty). The caller frees *ret_path.
 * Fails with -CWS_E_FAILED_PRECONDITION when no home directory can be found. */
int cws_state_dir(char **ret_path, struct cws_error *err);

/* The config file: $XDG_CONFIG_HOME/cwsandbox/config, else $HOME/.config/cwsandbox/config
 * (HOME as for cws_state_dir). The caller frees *ret_path. */
int cws_config_path(char **ret_path, struct cws_error *err);

/* Make sure dir is a private directory, as tmux does for its socket directory: create it with
 * mode 0700 if missing (its parent must exist), then refuse it unless it is a directory (not a
 * symlink to one) owned by the effective uid with no group or other permission bits.
 * A directory this call creates gets exactly 0700 whatever the umask.
 * Returns 0, -CWS_E_FAILED_PRECONDITION (not a directory), -CWS_E_PERMISSION_DENIED (owner or
 * mode) or -CWS_E_IO (a system call failed); err's message names the path and the problem. */
int cws_runtime_dir_ensure(const char *dir, struct cws_error *err);

/* Make sure the state directory dir exists, creating it and its missing parents (mkdir -p;
 * new directories get mode 0700, as the XDG spec asks). An existing dir may be reached through
 * a symlink but must be a directory owned by the effective uid.
 * Returns 0, -CWS_E_FAILED_PRECONDITION, -CWS_E_PERMISSION_DENIED, -CWS_E_IO or
 * -CWS_E_NOMEM. */
int cws_state_dir_ensure(const char *dir, struct cws_error *err);

#endif
