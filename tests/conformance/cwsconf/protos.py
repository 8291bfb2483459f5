"""Message classes generated from the project's .proto files with `protoc --python_out`.

Nothing generated is committed. The output goes to, in this order:
  - $CWS_CONFORMANCE_GEN_DIR when it already holds every module (CMake generates it there at
    build time, target cwsandbox_conformance_protos), or when it can be (re)generated there;
  - else a private temporary directory, generated at import time and removed at exit.

Exports: `pb` (coreweave.sandbox.v1 sandbox_pb2), `status_pb2`, `error_details_pb2`,
`timestamp_pb2`, and `ensure_generated(out_dir)` for the build step (python3 -m cwsconf.protos OUT).
"""
import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
PROTO_DIR = os.environ.get("CWS_PROTO_DIR") or os.path.join(REPO, "proto")
WKT_DIRS = ("/usr/include", "/usr/local/include")

PROTOS = (
    "coreweave/sandbox/v1/sandbox.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
)
MODULES = (
    "coreweave/sandbox/v1/sandbox_pb2.py",
    "google/rpc/status_pb2.py",
    "google/rpc/error_details_pb2.py",
)


def _protoc():
    exe = os.environ.get("PROTOC") or shutil.which("protoc") or "/usr/bin/protoc"
    if not os.path.exists(exe):
        raise RuntimeError("protoc not found: install protobuf-compiler")
    return exe


def _wkt_dir():
    for d in WKT_DIRS:
        if os.path.exists(os.path.join(d, "google", "protobuf", "timestamp.proto")):
            return d
    raise RuntimeError("google/protobuf/timestamp.proto not found: install libprotobuf-dev")


def _up_to_date(out_dir):
    try:
        newest_src = max(os.path.getmtime(os.path.join(PROTO_DIR, p)) for p in PROTOS)
        oldest_out = min(os.path.getmtime(os.path.join(out_dir, m)) for m in MODULES)
    except OSError:
        return False
    return oldest_out >= newest_src


def ensure_generated(out_dir, force=False):
    """Run protoc into out_dir unless every module there is newer than its .proto."""
    if not force and _up_to_date(out_dir):
        return out_dir
    os.makedirs(out_dir, exist_ok=True)
    # Generate into a sibling temporary directory and move the files in, so that a reader
    # running in parallel never imports a half-written module.
    tmp = tempfile.mkdtemp(prefix=".gen-", dir=out_dir)
    try:
        cmd = [_protoc(), "-I" + PROTO_DIR, "-I" + _wkt_dir(), "--python_out=" + tmp]
        cmd += [os.path.join(PROTO_DIR, p) for p in PROTOS]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("protoc failed (%s):\n%s" % (" ".join(cmd), r.stdout))
        for m in MODULES:
            dst = os.path.join(out_dir, m)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.replace(os.path.join(tmp, m), dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _choose_out_dir():
    wanted = os.environ.get("CWS_CONFORMANCE_GEN_DIR")
    if wanted:
        try:
            return ensure_generated(wanted)
        except OSError:
            pass  # read-only build tree or the like: fall back to a private directory
    tmp = tempfile.mkdtemp(prefix="cwsconf-gen-")
    atexit.register(shutil.rmtree, tmp, True)
    return ensure_generated(tmp)


if __name__ == "__main__":
    # Build step: python3 -m cwsconf.protos OUT_DIR (see tests/conformance/CMakeLists.txt).
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m cwsconf.protos OUT_DIR")
    print(ensure_generated(sys.argv[1], force=True))
    sys.exit(0)

GEN_DIR = _choose_out_dir()
if GEN_DIR not in sys.path:
    # `coreweave` and `google` are namespace packages (no __init__.py): the generated
    # google/rpc joins the system's google/protobuf portion.
    sys.path.insert(0, GEN_DIR)

pb = importlib.import_module("coreweave.sandbox.v1.sandbox_pb2")
status_pb2 = importlib.import_module("google.rpc.status_pb2")
error_details_pb2 = importlib.import_module("google.rpc.error_details_pb2")
from google.protobuf import timestamp_pb2  # noqa: E402,F401  (after sys.path is set)
