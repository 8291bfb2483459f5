#!/bin/sh
# Run an example in a private environment in which the library finds no daemon and starts
# DAEMON, check that it succeeds and prints EXPECTED, then stop the daemon it started.
# usage: run_example.sh DAEMON EXPECTED PROGRAM [ARGS...]
set -eu
daemon=$1
expected=$2
shift 2
root=$(mktemp -d /tmp/cwsc-example-XXXXXX)
mkdir -m 700 "$root/run" "$root/state" "$root/config" "$root/home"
sock="$root/run/cwsandbox/cwsandboxd.sock"

# Stop the daemons serving our socket (found by their --socket argument), then clean up.
cleanup() {
    for p in /proc/[0-9]*; do
        if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF "$sock"; then
            kill "${p#/proc/}" 2>/dev/null || true
        fi
    done
    sleep 0.3
    rm -rf "$root"
}
trap cleanup EXIT

status=0
env -u CWSANDBOX_SOCKET -u CWSANDBOX_SESSION -u NOTIFY_SOCKET -u CWSANDBOX_API_KEY \
    XDG_RUNTIME_DIR="$root/run" XDG_STATE_HOME="$root/state" XDG_CONFIG_HOME="$root/config" \
    HOME="$root/home" CWSANDBOXD="$daemon" "$@" >"$root/out" 2>&1 || status=$?
cat "$root/out"
if [ "$status" -ne 0 ]; then
    echo "run_example: $1 exited with $status" >&2
    [ -f "$sock.log" ] && { echo "--- daemon log:" >&2; tail -n 20 "$sock.log" >&2; }
    exit 1
fi
grep -qF -- "$expected" "$root/out" || { echo "run_example: no '$expected' in the output" >&2; exit 1; }
