#!/usr/bin/python3
"""A gRPC peer (grpcio, raw bytes) that records the metadata of every call it receives.

Used by test_daemon_config: cwsandboxd is pointed at it with CWSANDBOX_BASE_URL and the test
checks which credential headers the daemon sent.

  /coreweave.sandbox.v1.SandboxService/GetSandbox  answers a hand-built Sandbox message:
      field 1 sandbox_id (the requested id), field 3 status {field 1 state = 2 (RUNNING)}
  any other method                                 recorded, then UNIMPLEMENTED

Each call is appended to --record as one JSON line, written and flushed before the answer:
  {"metadata": {"authorization": "Bearer ...", ...}, "method": "/pkg.Service/Method"}
(keys sorted, json.dumps' default separators). Prints "PORT <n>" once serving on
127.0.0.1:<n>; stops on SIGTERM or when stdin reaches end of file.

Run it with Debian's /usr/bin/python3, which has python3-grpcio.
"""
import argparse
import json
import signal
import sys
import threading
from concurrent import futures

import grpc

GET_SANDBOX = "/coreweave.sandbox.v1.SandboxService/GetSandbox"


def pb_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return pb_varint(field << 3 | 2) + pb_varint(len(data)) + data


def pb_int(field, v):
    return pb_varint(field << 3) + pb_varint(v)


def read_varint(buf, i):
    shift = value = 0
    while i < len(buf):
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i
    raise ValueError("truncated varint")


def first_string_field(buf, want):
    """The first length-delimited field `want` of a protobuf message, decoded; "" if none."""
    i = 0
    try:
        while i < len(buf):
            key, i = read_varint(buf, i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, i = read_varint(buf, i)
            elif wire == 2:
                n, i = read_varint(buf, i)
                if field == want:
                    return buf[i:i + n].decode("utf-8", "replace")
                i += n
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            else:
                break
    except ValueError:
        pass
    return ""


class Recorder(grpc.GenericRpcHandler):
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def record(self, method, context):
        md = {}
        for key, value in context.invocation_metadata():
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            md[key] = value if key not in md else md[key] + "," + value
        line = json.dumps({"method": method, "metadata": md}, sort_keys=True)
        with self.lock, open(self.path, "a") as f:
            f.write(line + "\n")
            f.flush()

    def service(self, details):
        method = details.method

        def unary(request, context):
            self.record(method, context)
            if method == GET_SANDBOX:
                sandbox_id = first_string_field(request, 1) or "sbx-recorded"
                return pb_bytes(1, sandbox_id) + pb_bytes(3, pb_int(1, 2))
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "record_peer: %s not served" % method)

        # Raw bytes both ways: no (de)serializers.
        return grpc.unary_unary_rpc_method_handler(unary)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", required=True, help="file to append JSON lines to")
    args = ap.parse_args()
    open(args.record, "a").close()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((Recorder(args.record),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("PORT %d" % port, flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait()
    server.stop(0)


if __name__ == "__main__":
    main()
