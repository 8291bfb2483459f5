#!/usr/bin/python3
"""An independent gRPC peer (grpcio, asyncio) for the daemon's gRPC client tests.

Service cws.test.Peer with raw-byte messages:
  Echo              unary: echo; initial metadata x-deadline-ms (time left, when a deadline
                    came with the call) and x-echo-<name> for each request x-test-<name>
  Sleep             unary: request = milliseconds (ASCII); initial metadata as Echo, then sleeps
  Fail              unary: aborts at once (trailers-only) with the status code in the request
                    (ASCII), ErrorInfo, RetryInfo 1.5 s and a BadRequest violation
  FailAfterMessage  server streaming: one message "partial", then FAILED_PRECONDITION
  Stream            server streaming: request "COUNT SIZE"; message i starts with i (u32 BE)
  Bidi              echo every message; OK at half-close
  Probe             bidi: first message = tag; echo; records when its request stream ends
                    (the client cancels it)
  CancelTime        unary: request = tag; CLOCK_MONOTONIC ns of that Probe's cancel, or ""
  Sink              client streaming: never reads its requests (the client's upload stalls)
  Big               unary: request = size (ASCII); replies that many bytes
  Hang              unary: never answers

Prints "READY unix=<path> tcp=127.0.0.1:<port>" once serving; stops on SIGTERM.
"""
import argparse
import asyncio
import signal
import struct
import sys
import time

import grpc

SERVICE = "cws.test.Peer"
cancel_times = {}


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


def any_msg(type_name, value):
    return pb_bytes(1, "type.googleapis.com/" + type_name) + pb_bytes(2, value)


def status_details(code, message):
    error_info = (pb_bytes(1, "CWSANDBOX_TEST_REASON") + pb_bytes(2, "cwsandbox.com") +
                  pb_bytes(3, pb_bytes(1, "filepath") + pb_bytes(2, "/tmp/a b")))
    retry_info = pb_bytes(1, pb_int(1, 1) + pb_int(2, 500000000))
    bad_request = pb_bytes(1, pb_bytes(1, "spec.image") + pb_bytes(2, "must be set"))
    return (pb_int(1, code) + pb_bytes(2, message) +
            pb_bytes(3, any_msg("google.rpc.ErrorInfo", error_info)) +
            pb_bytes(3, any_msg("google.rpc.RetryInfo", retry_info)) +
            pb_bytes(3, any_msg("google.rpc.BadRequest", bad_request)))


def common_metadata(context):
    md = []
    left = context.time_remaining()
    if left is not None:
        md.append(("x-deadline-ms", str(int(left * 1000))))
    for key, value in context.invocation_metadata():
        if key.startswith("x-test-"):
            md.append(("x-echo-" + key[len("x-test-"):], value))
        if key == "authorization":
            md.append(("x-saw-authorization", "yes"))
    return md


async def echo(request, context):
    await context.send_initial_metadata(common_metadata(context))
    return request


async def sleep(request, context):
    await context.send_initial_metadata(common_metadata(context))
    await asyncio.sleep(int(request or b"0") / 1000)
    return b"slept"


async def fail(request, context):
    code = int(request or b"3")
    await context.abort(grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == code)),
                        "failed as asked: 100% \u2713",
                        trailing_metadata=(("grpc-status-details-bin",
                                            status_details(code, "inner message")),))


async def fail_after_message(request, context):
    yield b"partial"
    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "after one message")


async def stream(request, context):
    count, size = (int(x) for x in request.split())
    for i in range(count):
        body = struct.pack(">I", i) + bytes([i & 0xFF]) * max(0, size - 4)
        yield body[:size] if size >= 4 else body[:size]


async def bidi(request_iterator, context):
    async for msg in request_iterator:
        yield msg


async def probe(request_iterator, context):
    # A cancel shows up either as CancelledError or, depending on grpcio's options, as the
    # request stream ending; the test never half-closes a Probe, so both mean the cancel.
    tag = None
    try:
        async for msg in request_iterator:
            if tag is None:
                tag = msg.decode()
            yield msg
    finally:
        if tag is not None:
            cancel_times.setdefault(tag, time.monotonic_ns())


async def cancel_time(request, context):
    t = cancel_times.get(request.decode())
    return str(t).encode() if t else b""


async def sink(request_iterator, context):
    await asyncio.sleep(3600)
    return b""


async def big(request, context):
    return b"x" * int(request)


async def hang(request, context):
    await asyncio.sleep(3600)
    return b""


def handlers():
    ident = None  # raw bytes both ways
    u = grpc.unary_unary_rpc_method_handler
    us = grpc.unary_stream_rpc_method_handler
    ss = grpc.stream_stream_rpc_method_handler
    su = grpc.stream_unary_rpc_method_handler
    table = {
        "Echo": u(echo, ident, ident),
        "Sleep": u(sleep, ident, ident),
        "Fail": u(fail, ident, ident),
        "FailAfterMessage": us(fail_after_message, ident, ident),
        "Stream": us(stream, ident, ident),
        "Bidi": ss(bidi, ident, ident),
        "Probe": ss(probe, ident, ident),
        "CancelTime": u(cancel_time, ident, ident),
        "Sink": su(sink, ident, ident),
        "Big": u(big, ident, ident),
        "Hang": u(hang, ident, ident),
    }
    return grpc.method_handlers_generic_handler(SERVICE, table)


async def serve(args):
    options = [
        ("grpc.max_receive_message_length", 200 * 1024 * 1024),
        ("grpc.max_send_message_length", 200 * 1024 * 1024),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 1),
        ("grpc.http2.max_ping_strikes", 0),
    ]
    if args.max_streams:
        options.append(("grpc.max_concurrent_streams", args.max_streams))
    if args.max_age_ms:
        options.append(("grpc.max_connection_age_ms", args.max_age_ms))
        options.append(("grpc.max_connection_age_grace_ms", 60000))
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((handlers(),))
    unix = ""
    if args.unix:
        server.add_insecure_port("unix:" + args.unix)
        unix = args.unix
    if args.tls_cert:
        with open(args.tls_key, "rb") as k, open(args.tls_cert, "rb") as c:
            creds = grpc.ssl_server_credentials(((k.read(), c.read()),))
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"READY unix={unix} tcp=127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await server.stop(0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--unix")
    p.add_argument("--max-streams", type=int, default=0)
    p.add_argument("--max-age-ms", type=int, default=0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
