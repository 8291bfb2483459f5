#!/usr/bin/python3
"""The gRPC server framework (local/server) against grpcio, a real independent gRPC client,
and curl for what grpcio cannot send (GET, a wrong content-type, a deadline it does not
enforce itself).

Run by CTest with CWS_GRPC_ECHO_SERVER set to the built grpc_echo_server. Needs Debian's
python3-grpcio: run with /usr/bin/python3. Exits 77 (skipped) only when grpc is not importable.
"""
import os
import queue
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

try:
    import grpc
except ImportError:
    print("SKIP: the grpc module is not importable by %s (install python3-grpcio)"
          % sys.executable)
    sys.exit(77)

from google.protobuf import any_pb2, duration_pb2

SERVER = os.environ.get("CWS_GRPC_ECHO_SERVER", "")
TOKEN = "t0ken-for-tests-\u00e9".encode().hex()
SVC = "/cws.test.Echo/"
MiB = 1024 * 1024
BIG_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer")


def perf(text):
    sys.stderr.write("PERF " + text + "\n")
    sys.stderr.flush()


def u32(n):
    return struct.pack(">I", n)


class EchoServer:
    """grpc_echo_server in a subprocess, listening on a Unix socket and 127.0.0.1."""

    def __init__(self, *args, unix=True, tcp="127.0.0.1:0"):
        self.dir = tempfile.mkdtemp(prefix="cws-gsrv-")
        self.sock = os.path.join(self.dir, "echo.sock") if unix else None
        self.stderr_path = os.path.join(self.dir, "stderr")
        cmd = [SERVER]
        if self.sock:
            cmd += ["--unix", self.sock]
        if tcp:
            cmd += ["--listen", tcp, "--token", TOKEN]
        cmd += list(args)
        self.stderr_file = open(self.stderr_path, "wb")
        self.terminated = False
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr_file)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"READY unix=(\S*) tcp=(\S*)", line)
        if not m:
            self.proc.wait(10)
            self.proc.stdout.close()
            self.stderr_file.close()
            text = self.stderr()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError("server did not start: %r %s" % (line, text))
        self.tcp = m.group(2)

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def terminate(self):
        if not self.terminated and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.terminated = True

    def stop(self):
        """SIGTERM, wait, and return (exit code, stderr)."""
        self.terminate()
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        self.stderr_file.close()
        text = self.stderr()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc, text

    def unix_channel(self, options=()):
        return grpc.insecure_channel("unix:" + self.sock, options=list(options))

    def tcp_channel(self, options=()):
        return grpc.insecure_channel(self.tcp, options=list(options))


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def auth(token=TOKEN):
    return [("authorization", "Bearer " + token)]


# --- protobuf by hand: google.rpc.Status and its details ----------------------------------

def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def pb_fields(buf):
    """(field number, value) of each field; length-delimited values as bytes."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = bytes(buf[i:i + n]), i + n
        else:
            raise ValueError("unexpected wire type %d" % wire)
        out.append((key >> 3, value))
    return out


def parse_status(blob):
    status = {"code": 0, "message": "", "details": []}
    for num, value in pb_fields(blob):
        if num == 1:
            status["code"] = value
        elif num == 2:
            status["message"] = value.decode()
        elif num == 3:
            any_msg = any_pb2.Any()
            any_msg.ParseFromString(value)
            status["details"].append((any_msg.type_url, any_msg.value))
    return status


def parse_error_info(blob):
    info = {"reason": "", "domain": "", "metadata": {}}
    for num, value in pb_fields(blob):
        if num == 1:
            info["reason"] = value.decode()
        elif num == 2:
            info["domain"] = value.decode()
        elif num == 3:
            entry = dict(pb_fields(value))
            info["metadata"][entry.get(1, b"").decode()] = entry.get(2, b"").decode()
    return info


def parse_bad_request(blob):
    violations = []
    for num, value in pb_fields(blob):
        if num == 1:
            v = dict(pb_fields(value))
            violations.append((v.get(1, b"").decode(), v.get(2, b"").decode()))
    return violations


def parse_retry_delay(blob):
    for num, value in pb_fields(blob):
        if num == 1:
            d = duration_pb2.Duration()
            d.ParseFromString(value)
            return d.ToMilliseconds()
    return None


def trailing(err, key):
    for k, v in err.trailing_metadata() or ():
        if k == key:
            return v
    return None


def curl_call(sock, path, body=b"", headers=(), method="POST", timeout=10):
    """One HTTP/2 request with curl; returns (http status, headers and trailers, body)."""
    cmd = ["curl", "-sS", "--http2-prior-knowledge", "--unix-socket", sock, "-D", "-",
           "-o", "/dev/null", "-X", method, "-m", str(timeout)]
    for h in headers:
        cmd += ["-H", h]
    if method == "POST":
        cmd += ["--data-binary", "@-"]
    cmd.append("http://localhost" + path)
    out = subprocess.run(cmd, input=body, capture_output=True, timeout=timeout + 5)
    text = out.stdout.decode(errors="replace")
    m = re.search(r"^HTTP/2 (\d+)", text, re.M)
    if not m:
        raise AssertionError("curl failed (%d): %s" % (out.returncode, out.stderr.decode()))
    fields = dict(re.findall(r"^([a-z0-9-]+): (.*?)\r?$", text, re.M))
    return int(m.group(1)), fields


class EchoTestCase(unittest.TestCase):
    """One server for the class; at the end it must exit cleanly with every call released."""

    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = EchoServer(*cls.server_args)
        cls.channel = cls.server.unix_channel(BIG_OPTIONS)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        rc, text = cls.server.stop()
        for mark in SANITIZER_MARKS:
            if mark in text:
                raise AssertionError("sanitizer report from the server:\n" + text[-20000:])
        if rc != 0 or "EXITING live=0" not in text:
            raise AssertionError("server exit %s, stderr:\n%s" % (rc, text[-5000:]))

    def unary(self, method, request=b"", channel=None, **kw):
        kw.setdefault("timeout", 30)
        return (channel or self.channel).unary_unary(SVC + method)(request, **kw)

    def stats(self):
        text = self.unary("Stats").decode()
        return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", text)}

    def cancel_state(self, tag):
        return self.unary("CancelOf", tag.encode()).decode()

    def wait_cancel_state(self, tag, timeout=5.0):
        """Poll until the Hang call of tag has ended; returns (state, seconds waited)."""
        start = time.monotonic()
        while True:
            state = self.cancel_state(tag)
            if state not in ("", "LIVE") or time.monotonic() - start > timeout:
                return state, time.monotonic() - start
            time.sleep(0.005)

    def wait_live(self, want, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.stats()["live"] != want and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(self.stats()["live"], want)

    def assert_rpc_error(self, code, fn, *args, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception


class TestUnary(EchoTestCase):
    def test_round_trip(self):
        self.assertEqual(self.unary("Unary", b"hello"), b"hello")
        self.assertEqual(self.unary("Unary", b""), b"")
        data = bytes(range(256)) * 41
        self.assertEqual(self.unary("Unary", data), data)

    def test_sequential_20000_calls(self):
        call = self.channel.unary_unary(SVC + "Unary")
        times = []
        cpu = cpu_seconds(self.server.proc.pid)
        start = time.perf_counter()
        for i in range(20000):
            payload = b"%d" % i
            t0 = time.perf_counter()
            got = call(payload, timeout=10)
            times.append(time.perf_counter() - t0)
            self.assertEqual(got, payload)
        total = time.perf_counter() - start
        cpu = cpu_seconds(self.server.proc.pid) - cpu
        times.sort()
        p50, p99 = times[len(times) // 2], times[len(times) * 99 // 100]
        perf("sequential unary (unix, grpcio client): 20000 calls in %.2f s = %.0f calls/s, "
             "p50 %.0f us, p99 %.0f us; server CPU %.1f us/call"
             % (total, 20000 / total, p50 * 1e6, p99 * 1e6, cpu / 20000 * 1e6))
        self.assertLess(p50, 0.005, "p50 round trip above the 5 ms target")

    def test_64_in_flight_20000_calls(self):
        call = self.channel.unary_unary(SVC + "Unary")
        slots = threading.Semaphore(64)
        lock = threading.Lock()
        failures, done = [], [0]

        def finished(fut, payload):
            try:
                if fut.result() != payload:
                    raise AssertionError("wrong reply")
            except Exception as e:  # noqa: BLE001 - counted and reported below
                with lock:
                    failures.append(repr(e))
            with lock:
                done[0] += 1
            slots.release()

        cpu = cpu_seconds(self.server.proc.pid)
        start = time.perf_counter()
        for i in range(20000):
            slots.acquire()
            payload = b"c%d" % i
            fut = call.future(payload, timeout=30)
            fut.add_done_callback(lambda f, p=payload: finished(f, p))
        for _ in range(64):
            slots.acquire()
        total = time.perf_counter() - start
        cpu = cpu_seconds(self.server.proc.pid) - cpu
        perf("64 in flight unary (unix, grpcio client): 20000 calls in %.2f s = %.0f calls/s; "
             "server CPU %.1f us/call" % (total, 20000 / total, cpu / 20000 * 1e6))
        self.assertEqual(done[0], 20000)
        self.assertEqual(failures, [])

    def test_sequential_tcp_with_token(self):
        ch = self.server.tcp_channel()
        try:
            call = ch.unary_unary(SVC + "Unary")
            times = []
            for i in range(5000):
                t0 = time.perf_counter()
                self.assertEqual(call(b"t%d" % i, timeout=10, metadata=auth()), b"t%d" % i)
                times.append(time.perf_counter() - t0)
        finally:
            ch.close()
        p50 = statistics.median(times)
        perf("sequential unary (TCP + token, grpcio client): 5000 calls, p50 %.0f us"
             % (p50 * 1e6))
        self.assertLess(p50, 0.005)

    def test_200_concurrent_streams_on_one_connection(self):
        barrier = self.channel.unary_unary(SVC + "Barrier")
        futures = [barrier.future(u32(200), timeout=30) for _ in range(200)]
        # Each call is held by the server until all 200 are open at once.
        self.assertEqual([f.result() for f in futures], [b"200"] * 200)

    def test_unknown_method(self):
        err = self.assert_rpc_error(grpc.StatusCode.UNIMPLEMENTED,
                                    self.channel.unary_unary("/x/y"), b"", timeout=10)
        self.assertEqual(err.details(), "unknown method /x/y")

    def test_unary_method_needs_exactly_one_message(self):
        call = self.channel.stream_unary(SVC + "Unary")
        err = self.assert_rpc_error(grpc.StatusCode.INVALID_ARGUMENT, call, iter([]), timeout=10)
        self.assertIn("got none", err.details())
        err = self.assert_rpc_error(grpc.StatusCode.INVALID_ARGUMENT, call, iter([b"a", b"b"]),
                                    timeout=10)
        self.assertIn("got more", err.details())
        self.wait_live(0)


class TestStreaming(EchoTestCase):
    def test_server_streaming(self):
        call = self.channel.unary_stream(SVC + "Repeat")
        got = list(call(u32(100) + u32(1000), timeout=30))
        self.assertEqual(len(got), 100)
        for i, m in enumerate(got):
            self.assertEqual(m, u32(i) + bytes([i & 0xFF]) * 996)
        self.assertEqual(list(call(u32(0) + u32(10), timeout=30)), [])

    def test_bidi_ping_pong(self):
        outbox = queue.Queue()

        def requests():
            while True:
                item = outbox.get()
                if item is None:
                    return
                yield item

        replies = self.channel.stream_stream(SVC + "Bidi")(requests(), timeout=30)
        start = time.perf_counter()
        for i in range(200):
            msg = b"ping %d" % i
            outbox.put(msg)
            self.assertEqual(next(replies), msg)  # k+1 is sent only after echo k arrived
        total = time.perf_counter() - start
        outbox.put(None)
        self.assertEqual(list(replies), [])
        self.assertEqual(replies.code(), grpc.StatusCode.OK)
        perf("bidi ping-pong (unix, grpcio client): %.0f us per round trip" % (total / 200 * 1e6))

    def test_half_close(self):
        bidi = self.channel.stream_stream(SVC + "Bidi")
        replies = bidi(iter([b"a", b"bb", b"ccc"]), timeout=30)
        self.assertEqual(list(replies), [b"a", b"bb", b"ccc"])
        self.assertEqual(replies.code(), grpc.StatusCode.OK)
        empty = bidi(iter([]), timeout=30)
        self.assertEqual(list(empty), [])
        self.assertEqual(empty.code(), grpc.StatusCode.OK)

    def test_outgoing_flow_control(self):
        before = self.stats()
        replies = self.channel.unary_stream(SVC + "Repeat")(u32(64) + u32(MiB), timeout=60)
        got = 0
        for i, m in enumerate(replies):
            if i < 10:
                time.sleep(0.05)  # a slow reader: the server must stop producing meanwhile
            self.assertEqual(len(m), MiB)
            self.assertEqual(m[:4], u32(i))
            self.assertEqual(m[-1], i & 0xFF)
            got += 1
        self.assertEqual(got, 64)
        after = self.stats()
        blocked = after["blocked"] - before["blocked"]
        writable = after["writable"] - before["writable"]
        self.assertGreater(blocked, 0, "cws_gcall_send() never reported a full queue")
        self.assertEqual(writable, blocked, "on_writable() must follow every full queue")

    def test_large_stream_tcp(self):
        """256 MiB in 1 MiB messages to a fast reader over TCP, where the socket may take
        everything nghttp2 produced in one write (the send loop must keep going)."""
        ch = self.server.tcp_channel(BIG_OPTIONS)
        try:
            start = time.perf_counter()
            replies = ch.unary_stream(SVC + "Repeat")(u32(256) + u32(MiB), timeout=60,
                                                      metadata=auth())
            n = 0
            for i, m in enumerate(replies):
                self.assertEqual((len(m), m[:4]), (MiB, u32(i)))
                n += 1
            total = time.perf_counter() - start
        finally:
            ch.close()
        self.assertEqual(n, 256)
        perf("server stream over TCP: 256 MiB in 1 MiB messages at %.0f MiB/s" % (256 / total))

    def test_incoming_flow_control_pause(self):
        """While the server holds input paused, HTTP/2 flow control must stop the client."""
        yielded = []

        def requests():
            yield u32(1500)  # the server pauses its input for 1.5 s after this message
            for i in range(128):
                yielded.append(time.monotonic())
                yield bytes([i]) * (64 * 1024)

        start = time.monotonic()
        fut = self.channel.stream_unary(SVC + "Upload").future(requests(), timeout=60)
        time.sleep(1.0)
        sent_while_paused = len(yielded)
        reply = fut.result()
        elapsed = time.monotonic() - start
        self.assertEqual(reply, b"messages=129 bytes=%d" % (4 + 128 * 64 * 1024))
        # 128 x 64 KiB = 8 MiB; the stream window is 1 MiB, plus what the client buffers.
        self.assertLess(sent_while_paused, 64, "the client was not stopped by flow control")
        self.assertGreaterEqual(elapsed, 1.4)
        perf("pause test: %d of 128 64-KiB messages left the client during a 1.5 s pause"
             % sent_while_paused)


class TestErrors(EchoTestCase):
    def test_error_with_details(self):
        err = self.assert_rpc_error(grpc.StatusCode.INVALID_ARGUMENT, self.unary, "Fail", b"")
        self.assertEqual(err.details(), "bad request: \u2713 100% done\nsecond line")
        blob = trailing(err, "grpc-status-details-bin")
        self.assertIsNotNone(blob, "no grpc-status-details-bin")
        status = parse_status(blob)
        self.assertEqual(status["code"], 3)
        self.assertEqual(status["message"], "bad request: \u2713 100% done\nsecond line")
        urls = [u for u, _ in status["details"]]
        self.assertEqual(urls, ["type.googleapis.com/google.rpc.ErrorInfo",
                                "type.googleapis.com/google.rpc.BadRequest"])
        info = parse_error_info(status["details"][0][1])
        self.assertEqual(info["reason"], "CWSANDBOX_TEST_REASON")
        self.assertEqual(info["domain"], "cwsandbox.com")
        self.assertEqual(info["metadata"], {"filepath": "/tmp/a b", "size_bytes": "42"})
        self.assertEqual(parse_bad_request(status["details"][1][1]),
                         [("spec.image", "must be set"), ("spec.cpu", "must be positive")])
        self.wait_live(0)

    def test_long_error_message_is_cut(self):
        # Whole, the message would push the trailers past grpcio's 8 KiB metadata limit.
        err = self.assert_rpc_error(grpc.StatusCode.INVALID_ARGUMENT, self.unary, "LongFail",
                                    b"")
        text = err.details()
        # Cut where its percent-encoded form reaches 2 KiB, between characters (an "\u00e9" is
        # 6 bytes encoded), and marked with an ellipsis.
        self.assertEqual(text, "\u00e9" * 339 + "\u2026")
        status = parse_status(trailing(err, "grpc-status-details-bin"))
        self.assertEqual(status["message"], text)
        self.assertEqual(parse_error_info(status["details"][0][1])["reason"],
                         "CWSANDBOX_TEST_REASON")

    def test_refused_in_start(self):
        err = self.assert_rpc_error(grpc.StatusCode.NOT_FOUND, self.unary, "Refuse", b"")
        self.assertEqual(err.details(), "no such thing")
        status = parse_status(trailing(err, "grpc-status-details-bin"))
        self.assertEqual(status["code"], 5)
        self.assertEqual(parse_error_info(status["details"][0][1])["reason"],
                         "CWSANDBOX_SANDBOX_NOT_FOUND")
        self.assertEqual(status["details"][1][0], "type.googleapis.com/google.rpc.RetryInfo")
        self.assertEqual(parse_retry_delay(status["details"][1][1]), 1500)

    def test_oversized_request(self):
        before = self.stats()
        big = b"\x01" * (101 * MiB)
        err = self.assert_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, self.unary, "Unary", big,
                                    timeout=60)
        self.assertIn("exceeds", err.details())
        del big
        self.assertEqual(self.unary("Unary", b"still here"), b"still here")
        self.wait_live(0)
        self.assertEqual(self.stats()["cancels"], before["cancels"] + 1,
                         "the handler was not told its call ended")

    def test_50_mib_round_trip(self):
        data = os.urandom(1024) * (50 * 1024)
        start = time.perf_counter()
        self.assertEqual(self.unary("Unary", data, timeout=120), data)
        perf("50 MiB unary echo: %.0f ms" % ((time.perf_counter() - start) * 1e3))

    def test_non_post_and_wrong_content_type(self):
        code, fields = curl_call(self.server.sock, SVC + "Unary", method="GET")
        self.assertEqual(code, 405)
        self.assertEqual(fields.get("grpc-status"), "12")
        # Empty body: curl 7.88 fails (error 92) when, as gRPC servers do, we answer early and
        # reset a request stream it is still sending.
        code, fields = curl_call(self.server.sock, SVC + "Unary", b"",
                                 headers=["content-type: text/plain"])
        self.assertEqual(code, 415)
        self.assertEqual(fields.get("grpc-status"), "3")
        self.assertIn("content-type", fields.get("grpc-message", ""))
        # A gRPC request without "te: trailers" (curl sends none) is served.
        code, fields = curl_call(self.server.sock, SVC + "Unary", b"\0\0\0\0\x02hi",
                                 headers=["content-type: application/grpc"])
        self.assertEqual((code, fields.get("grpc-status")), (200, "0"))


class TestAuth(EchoTestCase):
    def test_tcp_needs_token(self):
        ch = self.server.tcp_channel()
        try:
            err = self.assert_rpc_error(grpc.StatusCode.UNAUTHENTICATED, self.unary, "Unary",
                                        b"x", channel=ch)
            self.assertIn("authorization: Bearer", err.details())
            # ("Bearer " alone never reaches us: nghttp2 resets a value ending in a space.)
            for bad in (TOKEN + "x", TOKEN[:-1], "x", "x" * len(TOKEN)):
                err = self.assert_rpc_error(grpc.StatusCode.UNAUTHENTICATED, self.unary, "Unary",
                                            b"x", channel=ch, metadata=auth(bad))
                self.assertEqual(err.details(), "invalid bearer token")
            err = self.assert_rpc_error(grpc.StatusCode.UNAUTHENTICATED, self.unary, "Unary",
                                        b"x", channel=ch,
                                        metadata=[("authorization", "Basic " + TOKEN)])
            self.assertIn("Bearer", err.details())
            # Unauthenticated callers learn nothing about which methods exist.
            self.assert_rpc_error(grpc.StatusCode.UNAUTHENTICATED, self.unary, "Nope", b"x",
                                  channel=ch)
            self.assertEqual(self.unary("Unary", b"ok", channel=ch, metadata=auth()), b"ok")
            self.assertEqual(self.unary("Unary", b"ok", channel=ch,
                                        metadata=[("authorization", "bearer " + TOKEN)]), b"ok")
            self.assert_rpc_error(grpc.StatusCode.UNIMPLEMENTED, self.unary, "Nope", b"x",
                                  channel=ch, metadata=auth())
        finally:
            ch.close()

    def test_unix_needs_no_token(self):
        self.assertEqual(self.unary("Unary", b"no token"), b"no token")

    def test_unix_socket_is_private(self):
        self.assertEqual(os.stat(self.server.sock).st_mode & 0o777, 0o600)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to connect as another uid")
    def test_other_uid_is_closed(self):
        os.chmod(self.server.dir, 0o711)
        os.chmod(self.server.sock, 0o666)  # so that only SO_PEERCRED stands in the way
        try:
            script = ("import grpc,sys\n"
                      "ch=grpc.insecure_channel('unix:%s')\n"
                      "try:\n ch.unary_unary('%sUnary')(b'x',timeout=5)\n"
                      "except grpc.RpcError as e: print(e.code().name); sys.exit(0)\n"
                      "print('SERVED')\n" % (self.server.sock, SVC))
            out = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                 timeout=30, preexec_fn=lambda: os.setuid(65534))
            self.assertEqual(out.stdout.decode().strip(), "UNAVAILABLE", out.stderr.decode())
            self.assertIn("from uid 65534", self.server.stderr())
        finally:
            os.chmod(self.server.sock, 0o600)
            os.chmod(self.server.dir, 0o700)


class TestCancellation(EchoTestCase):
    def test_deadline(self):
        start = time.monotonic()
        self.assert_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, self.unary, "Hang", b"dl-1",
                              timeout=0.3)
        self.assertLess(time.monotonic() - start, 2.0)
        # grpcio resets the stream at its own deadline, which may reach the server first.
        state, _ = self.wait_cancel_state("dl-1")
        self.assertIn(state, ("DEADLINE_EXCEEDED", "CANCELLED"))

    def test_server_enforces_deadline(self):
        # curl does not enforce grpc-timeout: only the server's timer can end this call.
        start = time.monotonic()
        code, fields = curl_call(self.server.sock, SVC + "Hang", b"\0\0\0\0\x04dl-2",
                                 headers=["content-type: application/grpc",
                                          "grpc-timeout: 200m"])
        elapsed = time.monotonic() - start
        self.assertEqual((code, fields.get("grpc-status")), (200, "4"))
        self.assertGreaterEqual(elapsed, 0.19)
        self.assertLess(elapsed, 3.0)
        self.assertEqual(self.cancel_state("dl-2"), "DEADLINE_EXCEEDED")

    def test_client_cancel(self):
        fut = self.channel.unary_unary(SVC + "Hang").future(b"cancel-1", timeout=30)
        deadline = time.monotonic() + 5
        while self.cancel_state("cancel-1") != "LIVE" and time.monotonic() < deadline:
            time.sleep(0.005)
        self.assertEqual(self.cancel_state("cancel-1"), "LIVE")
        fut.cancel()
        state, waited = self.wait_cancel_state("cancel-1")
        self.assertEqual(state, "CANCELLED")
        self.assertLess(waited, 1.0)
        perf("client cancel seen by the server after %.1f ms" % (waited * 1e3))

    def test_client_killed_mid_stream(self):
        script = (
            "import grpc,struct,threading,time\n"
            "ch=grpc.insecure_channel('unix:%(sock)s')\n"
            "threading.Thread(target=lambda: ch.unary_unary('%(svc)sHang')(b'kill-1'),"
            "daemon=True).start()\n"
            "it=ch.unary_stream('%(svc)sRepeat')(struct.pack('>II',1000000,4096))\n"
            "next(it)\n"
            "print('STREAMING',flush=True)\n"
            "time.sleep(60)\n" % {"sock": self.server.sock, "svc": SVC})
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        try:
            self.assertEqual(proc.stdout.readline().strip(), b"STREAMING")
            deadline = time.monotonic() + 5
            while self.cancel_state("kill-1") != "LIVE" and time.monotonic() < deadline:
                time.sleep(0.005)
            self.assertEqual(self.cancel_state("kill-1"), "LIVE")
            self.assertGreaterEqual(self.stats()["live"], 2)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        state, _ = self.wait_cancel_state("kill-1")
        self.assertEqual(state, "CANCELLED")
        self.wait_live(0)  # the Repeat stream was cancelled and released too
        self.assertEqual(self.unary("Unary", b"others still served"), b"others still served")


class TestContract(EchoTestCase):
    """API return codes seen from inside a handler, and a server with small limits."""

    server_args = ("--max-message", str(MiB), "--high-water", "65536")

    def contract(self, channel, **kw):
        replies = channel.unary_stream(SVC + "Contract")(b"", **kw)
        got = list(replies)
        self.assertEqual(replies.code(), grpc.StatusCode.OK)
        self.assertEqual(len(got), 4)
        self.assertEqual(got[1], b"a")
        d = duration_pb2.Duration()
        d.ParseFromString(got[2])
        self.assertEqual(d.seconds, 7)
        self.assertEqual(got[3], bytes(MiB))
        text = self.server.stderr()
        self.assertIn("CONTRACT DONE", text)
        self.assertNotIn("CONTRACT FAILED", text)
        return dict(re.findall(r"([\w-]+)=(\S+)", got[0].decode()))

    def test_contract_unix(self):
        info = self.contract(self.channel, timeout=10, metadata=[("x-test", "hello")])
        self.assertEqual(info["peer"], "unix:uid=%d" % os.geteuid())
        self.assertEqual(info["x-test"], "hello")
        # grpcio rounds the timeout it sends up a little.
        self.assertTrue(8000 <= int(info["deadline_left"]) <= 10500, info)

    def test_contract_tcp(self):
        ch = self.server.tcp_channel(BIG_OPTIONS)
        try:
            info = self.contract(ch, metadata=auth())
        finally:
            ch.close()
        self.assertRegex(info["peer"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(info["x-test"], "(none)")
        self.assertEqual(info["deadline_left"], "-1")

    def test_configured_max_message(self):
        self.assertEqual(len(self.unary("Unary", bytes(MiB))), MiB)
        err = self.assert_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, self.unary, "Unary",
                                    bytes(MiB + 1))
        self.assertIn("exceeds the 1048576-byte limit", err.details())


class TestServerLifecycle(unittest.TestCase):
    def check_clean(self, rc, text):
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, text)
        self.assertEqual(rc, 0, text[-5000:])

    def test_shutdown_cancels_live_calls(self):
        server = EchoServer()
        ch = server.unix_channel()
        try:
            fut = ch.unary_unary(SVC + "Hang").future(b"shutdown-1", timeout=30)
            # Also live: a stream with queued output the client does not read, and an upload
            # whose input is paused with data held.
            stream = ch.unary_stream(SVC + "Repeat")(u32(1000000) + u32(4096), timeout=30)
            next(stream)
            upload = ch.stream_unary(SVC + "Upload").future(
                iter([u32(60000)] + [bytes(65536)] * 64), timeout=30)
            stats = ch.unary_unary(SVC + "Stats")
            deadline = time.monotonic() + 5
            while b"live=3 " not in stats(b"", timeout=5) and time.monotonic() < deadline:
                time.sleep(0.005)
            self.assertIn(b"live=3 ", stats(b"", timeout=5))
            cancel_of = ch.unary_unary(SVC + "CancelOf")
            deadline = time.monotonic() + 5
            while cancel_of(b"shutdown-1", timeout=5) != b"LIVE" and time.monotonic() < deadline:
                time.sleep(0.005)
            server.terminate()
            with self.assertRaises(grpc.RpcError) as cm:
                fut.result(timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            with self.assertRaises(grpc.RpcError):
                for _ in stream:
                    pass
            with self.assertRaises(grpc.RpcError):
                upload.result(timeout=10)
        finally:
            ch.close()
            rc, text = server.stop()
        self.check_clean(rc, text)
        self.assertIn("CANCELLED shutdown-1 UNAVAILABLE", text)
        self.assertIn("EXITING live=0", text)
        self.assertFalse(os.path.exists(server.sock), "the socket was not removed")

    def test_non_loopback_refused_without_flag(self):
        out = subprocess.run([SERVER, "--listen", "0.0.0.0:0", "--token", TOKEN],
                             capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 1)
        self.assertIn("refusing to listen on 0.0.0.0:0", out.stderr.decode())
        self.assertIn("not a loopback address", out.stderr.decode())

    def test_non_loopback_allowed_with_flag(self):
        server = EchoServer("--allow-non-loopback", unix=False, tcp="0.0.0.0:0")
        try:
            port = server.tcp.rsplit(":", 1)[1]
            ch = grpc.insecure_channel("127.0.0.1:" + port)
            self.assertEqual(ch.unary_unary(SVC + "Unary")(b"x", timeout=10, metadata=auth()),
                             b"x")
            ch.close()
        finally:
            rc, text = server.stop()
        self.check_clean(rc, text)
        self.assertIn("warn: listening on the non-loopback address 0.0.0.0", text)

    def test_tcp_without_token_refused(self):
        out = subprocess.run([SERVER, "--listen", "127.0.0.1:0"], capture_output=True,
                             timeout=30)
        self.assertEqual(out.returncode, 1)
        self.assertIn("needs a bearer token", out.stderr.decode())

    def test_stale_socket_replaced_live_one_kept(self):
        d = tempfile.mkdtemp(prefix="cws-gsrv-")
        try:
            path = os.path.join(d, "s.sock")
            stale = socket.socket(socket.AF_UNIX)
            stale.bind(path)
            stale.close()  # leaves the file behind, as a crashed server would
            proc = subprocess.Popen([SERVER, "--unix", path], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            self.assertTrue(proc.stdout.readline().startswith(b"READY"))
            second = subprocess.run([SERVER, "--unix", path], capture_output=True, timeout=30)
            self.assertEqual(second.returncode, 1)
            self.assertIn("another server is listening", second.stderr.decode())
            ch = grpc.insecure_channel("unix:" + path)
            self.assertEqual(ch.unary_unary(SVC + "Unary")(b"x", timeout=10), b"x")
            ch.close()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            self.check_clean(proc.returncode, err.decode())
            with open(os.path.join(d, "file"), "w"):
                pass
            notsock = subprocess.run([SERVER, "--unix", os.path.join(d, "file")],
                                     capture_output=True, timeout=30)
            self.assertEqual(notsock.returncode, 1)
            self.assertIn("is not a socket", notsock.stderr.decode())
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    if not SERVER or not os.access(SERVER, os.X_OK):
        print("CWS_GRPC_ECHO_SERVER must name the built grpc_echo_server")
        sys.exit(2)
    unittest.main()
