#!/bin/sh
# The shared library exports its public API only: every dynamic symbol it defines starts with
# cws_ (none of the common/ internals such as cws_rpc_* or cws_socket_path), it has a versioned
# SONAME, and it needs no library but msgpack-c and libc (and the sanitizer runtimes in a
# sanitizer build).
# usage: check_exports.sh LIBRARY
set -eu
lib=$1
fail() { echo "check_exports: $*" >&2; exit 1; }

defined=$(nm -D --defined-only "$lib" | awk 'NF == 3 { print $3 }')
[ -n "$defined" ] || fail "no symbols in $lib"
foreign=$(printf '%s\n' "$defined" | grep -v '^cws_' || true)
[ -z "$foreign" ] || fail "symbols without the cws_ prefix: $foreign"

for internal in cws_rpc_decoder_new cws_rpc_pack_cstr cws_socket_path cws_runtime_dir_ensure \
    cws_strv_free cws_log_emit; do
    printf '%s\n' "$defined" | grep -qx "$internal" && fail "internal symbol exported: $internal"
done
for public in cws_client_connect cws_client_process cws_op_wait cws_op_wait_all \
    cws_sandbox_create cws_sandbox_config_new cws_exec cws_exec_write cws_file_read \
    cws_logs cws_session_open cws_errcode_name cws_error_clear; do
    printf '%s\n' "$defined" | grep -qx "$public" || fail "public symbol missing: $public"
done

soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libcwsandbox-client.so.0" ] || fail "SONAME is '$soname'"

needed=$(readelf -d "$lib" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
for n in $needed; do
    case "$n" in
    libmsgpackc.so.* | libmsgpack-c.so.* | libc.so.* | libasan.so.* | libubsan.so.*) ;;
    *) fail "unexpected dependency: $n" ;;
    esac
done
echo "check_exports: $(printf '%s\n' "$defined" | wc -l) symbols, all cws_; SONAME $soname;" \
    "needs" $needed
