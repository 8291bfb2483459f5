#!/bin/sh
# Install the cwsandbox-client component into a temporary prefix with `cmake --install`, then
# build programs against it the three ways a user would: pkg-config with the shared library,
# pkg-config --static, and find_package(cwsandbox-client). Each program is an example of
# examples/ and must link and start (it prints its usage when given --help).
# usage: check_install.sh BUILD_DIR SOURCE_DIR [EXTRA_CFLAGS]
set -eu
build=$1
src=$2
extra=${3:-}
tmp=$(mktemp -d /tmp/cwsc-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check_install: $*" >&2; exit 1; }

cmake --install "$build" --component cwsandbox-client --prefix "$tmp/prefix" >"$tmp/install.log"
libdir=$(ls -d "$tmp"/prefix/lib* | head -n 1)
for f in libcwsandbox-client.so.0 libcwsandbox-client.so libcwsandbox-client.a \
    pkgconfig/cwsandbox-client.pc cmake/cwsandbox-client/cwsandbox-clientConfig.cmake \
    cmake/cwsandbox-client/cwsandbox-clientConfigVersion.cmake; do
    [ -e "$libdir/$f" ] || fail "not installed: $f"
done
for h in cwsandbox.h client.h op.h config.h sandbox.h exec.h files.h logs.h session.h error.h; do
    [ -e "$tmp/prefix/include/cwsandbox/$h" ] || fail "header not installed: $h"
done

export PKG_CONFIG_PATH="$libdir/pkgconfig"
example="$src/examples/quickstart.c"
# shellcheck disable=SC2086,SC2046
cc -std=c11 -Wall -Werror $extra -o "$tmp/quick-shared" "$example" \
    $(pkg-config --cflags --libs cwsandbox-client) -Wl,-rpath,"$libdir"
"$tmp/quick-shared" --help >/dev/null || fail "the shared build does not run"
ldd "$tmp/quick-shared" | grep -q "$libdir/libcwsandbox-client.so.0" ||
    fail "the shared build does not use the installed library"
# shellcheck disable=SC2086,SC2046
cc -std=c11 -Wall -Werror $extra -o "$tmp/quick-static" "$example" \
    $(pkg-config --cflags cwsandbox-client) "$libdir/libcwsandbox-client.a" \
    $(pkg-config --static --libs-only-l cwsandbox-client | sed 's/-lcwsandbox-client//')
"$tmp/quick-static" --help >/dev/null || fail "the static build does not run"
ldd "$tmp/quick-static" | grep -q cwsandbox-client && fail "the static build is not static"

mkdir "$tmp/consumer"
cat >"$tmp/consumer/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(cwsandbox-client 0.1 REQUIRED)
add_executable(quick-cmake $example)
target_link_libraries(quick-cmake PRIVATE cwsandbox::cwsandbox-client)
add_executable(quick-cmake-static $example)
target_link_libraries(quick-cmake-static PRIVATE cwsandbox::cwsandbox-client-static)
CMAKE
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DCMAKE_C_FLAGS="$extra" -DCMAKE_EXE_LINKER_FLAGS="$extra" >"$tmp/consumer.log" 2>&1 ||
    { cat "$tmp/consumer.log"; fail "find_package(cwsandbox-client) failed"; }
cmake --build "$tmp/consumer/build" >>"$tmp/consumer.log" 2>&1 ||
    { cat "$tmp/consumer.log"; fail "the CMake consumer does not build"; }
"$tmp/consumer/build/quick-cmake" --help >/dev/null || fail "the CMake build does not run"
"$tmp/consumer/build/quick-cmake-static" --help >/dev/null ||
    fail "the static CMake build does not run"
echo "check_install: installed, and built with pkg-config (shared, static) and find_package"
