"""StreamExec (wire notes 4.1, §9 item 8, §10 StreamExec)."""
import hashlib
import os
import re
import time
import unittest

import grpc

from cwsconf import procs
from cwsconf.case import T, ServerTestCase, exec_stream_collect, new_request_id
from cwsconf.client import StreamReader
from cwsconf.protos import pb

OUT = pb.ExecStreamOutput


def stdin(data):
    return pb.ExecStreamRequest(stdin=data)


def close():
    return pb.ExecStreamRequest(close=pb.ExecStreamClose())


def resize(w, h):
    return pb.ExecStreamRequest(resize=pb.ExecStreamResize(width=w, height=h))


def kind(m):
    return m.WhichOneof("message")


def has_ready(ms):
    return len(ms) > 0


def has_end(ms):
    return any(kind(m) in ("exit", "error") for m in ms)


def outputs(ms, stream=None):
    return b"".join(m.output.data for m in ms
                    if kind(m) == "output" and (stream is None or m.output.stream == stream))


class StreamExecTest(ServerTestCase):

    @classmethod
    def setUpFixture(cls):
        cls.sid = cls.create_running().sandbox_id

    def open(self, argv, **kw):
        reqs, call = self.stream_exec(self.sid, argv, **kw)
        reader = StreamReader(call)
        self.addCleanup(reqs.half_close)   # never leave grpcio's request thread blocked
        self.addCleanup(reader.cancel)     # nor a call open after a failed assertion
        return reqs, reader

    def wait_ready(self, reader):
        ms = reader.until(has_ready, T(5), "the first response")
        self.assertEqual(kind(ms[0]), "ready", "the first response must be `ready`")

    def assertCleanExit(self, reader, code=0):
        """The stream ended with OK after exactly one `exit` (the last message), no `error`."""
        ms = reader.messages
        kinds = [kind(m) for m in ms]
        self.assertTrue(reader.done.is_set(), "stream still open")
        self.assertIsNone(reader.error, "RPC failed: %s" % reader.status_text())
        self.assertEqual(kinds[0], "ready", "first message")
        self.assertNotIn("error", kinds, [m.error for m in ms if kind(m) == "error"])
        self.assertEqual(kinds.count("exit"), 1, "exactly one exit: %s" % kinds)
        self.assertEqual(kinds[-1], "exit", "exit must be the last message")
        self.assertEqual(ms[-1].exit.exit_code, code)

    # ---- sequence ----

    def test_ready_first_output_by_stream_then_exactly_one_exit(self):
        reqs, call = self.stream_exec(
            self.sid, ["/bin/sh", "-c", "printf out; printf err >&2; printf more; exit 4"],
            half_close=True)
        r = exec_stream_collect(self, call, T(30))
        self.assertEqual(r["status"], grpc.StatusCode.OK, r["rpc_error"])
        self.assertEqual(r["kinds"][0], "ready")
        self.assertEqual(r["kinds"].count("exit"), 1, r["kinds"])
        self.assertEqual(r["kinds"][-1], "exit")
        self.assertEqual(r["errors"], [])
        self.assertEqual(r["stdout"], b"outmore")
        self.assertEqual(r["stderr"], b"err")
        self.assertEqual(r["other"], b"", "output with stream neither STDOUT nor STDERR")
        self.assertEqual(r["exits"][0].exit_code, 4)

    def test_half_close_right_after_init_does_not_kill(self):
        reqs, call = self.stream_exec(self.sid, ["/bin/sh", "-c", "sleep 0.3; echo done"],
                                      half_close=True)
        r = exec_stream_collect(self, call, T(30))
        self.assertEqual(r["status"], grpc.StatusCode.OK, r["rpc_error"])
        self.assertEqual(r["stdout"], b"done\n")
        self.assertEqual([e.exit_code for e in r["exits"]], [0])

    # ---- stdin ----

    def test_stdin_one_byte_frames(self):
        data = os.urandom(300)
        reqs, reader = self.open(["cat"])
        self.wait_ready(reader)
        for b in data:
            reqs.send(stdin(bytes([b])))
        reqs.send(close())
        reqs.half_close()
        reader.drain(T(30))
        self.assertCleanExit(reader)
        self.assertEqual(outputs(reader.messages, OUT.STREAM_STDOUT), data)

    def test_stdin_one_8mib_frame(self):
        data = os.urandom(8 * 1024 * 1024)
        reqs, reader = self.open(["sha256sum"])
        self.wait_ready(reader)
        reqs.send(stdin(data))
        reqs.half_close()
        reader.drain(T(60))
        self.assertCleanExit(reader)
        self.assertEqual(outputs(reader.messages, OUT.STREAM_STDOUT),
                         hashlib.sha256(data).hexdigest().encode() + b"  -\n")

    def test_full_duplex_8mib_through_cat_in_64kib_frames(self):
        # what the PY write fallback and read streams do: stdin and stdout both busy at once
        data = os.urandom(8 * 1024 * 1024)
        reqs, reader = self.open(["cat"], timeout=T(90))
        self.wait_ready(reader)
        for i in range(0, len(data), 64 * 1024):
            reqs.send(stdin(data[i:i + 64 * 1024]))
        reqs.send(close())
        reqs.half_close()
        reader.drain(T(60))
        self.assertCleanExit(reader)
        got = outputs(reader.messages, OUT.STREAM_STDOUT)
        self.assertEqual(len(got), len(data))
        self.assertTrue(got == data, "cat returned different bytes")

    def test_close_message_is_eof_while_request_stream_stays_open(self):
        reqs, reader = self.open(["cat"])
        self.wait_ready(reader)
        reqs.send(stdin(b"abc"))
        reqs.send(close())
        # no half-close: close{} alone must end cat
        reader.until(has_end, T(10), "exit after close{}")
        reqs.half_close()
        reader.drain(T(10))
        self.assertCleanExit(reader)
        self.assertEqual(outputs(reader.messages), b"abc")

    def test_bare_half_close_is_eof(self):
        reqs, reader = self.open(["cat"])
        self.wait_ready(reader)
        reqs.send(stdin(b"xyz"))
        reqs.half_close()
        reader.drain(T(10))
        self.assertCleanExit(reader)
        self.assertEqual(outputs(reader.messages), b"xyz")

    # ---- TTY ----

    def test_tty_size_and_resize(self):
        reqs, reader = self.open(["/bin/sh", "-c", "stty size; read x; stty size"],
                                 tty=True, width=100, height=30)
        self.wait_ready(reader)
        reader.until(lambda ms: b"30 100" in outputs(ms), T(10), "`stty size` = 30 100")
        reqs.send(resize(120, 40))
        reqs.send(stdin(b"go\r"))
        reader.until(has_end, T(10), "exit")
        reqs.half_close()
        reader.drain(T(10))
        self.assertCleanExit(reader)
        sizes = re.findall(rb"(\d+) (\d+)\r?\n", outputs(reader.messages))
        self.assertEqual(sizes, [(b"30", b"100"), (b"40", b"120")],
                         "stty size before and after resize: %r" % outputs(reader.messages))

    def test_tty_without_size_gets_a_usable_default(self):
        reqs, call = self.stream_exec(self.sid, ["/bin/sh", "-c", "stty size; test -t 0"],
                                      tty=True, half_close=True)
        r = exec_stream_collect(self, call, T(30))
        self.assertEqual(r["status"], grpc.StatusCode.OK, r["rpc_error"])
        self.assertEqual([e.exit_code for e in r["exits"]], [0], "stdin is not a terminal")
        out = r["stdout"] + r["stderr"] + r["other"]
        m = re.search(rb"(\d+) (\d+)", out)
        self.assertIsNotNone(m, out)
        self.assertGreater(int(m.group(1)), 0)
        self.assertGreater(int(m.group(2)), 0)

    # ---- cancellation ----

    def test_cancel_kills_the_process(self):
        marker = procs.new_sleep_marker()
        reqs, reader = self.open(["/bin/sh", "-c", "sleep %s; echo never" % marker])
        self.wait_ready(reader)
        self.assertTrue(procs.wait_present(marker, T(3)), "process never appeared")
        reader.cancel()
        self.assertGone(marker, T(5), "the StreamExec process, after the call was cancelled")

    def test_deadline_kills_the_process(self):
        marker = procs.new_sleep_marker()
        reqs, reader = self.open(["/bin/sh", "-c", "sleep %s; echo never" % marker], timeout=1.5)
        self.wait_ready(reader)
        self.assertTrue(procs.wait_present(marker, T(1.5)), "process never appeared")
        self.assertTrue(reader.wait_done(T(10)), "call still open after its deadline")
        self.assertIsNotNone(reader.error)
        self.assertEqual(reader.error.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertGone(marker, T(5), "the StreamExec process, after the call's deadline")

    def test_cancel_right_after_exit_is_tolerated(self):
        for _ in range(3):
            reqs, reader = self.open(["true"], half_close=True)
            reader.until(has_end, T(10), "exit")
            reader.cancel()
        r = self.exec(self.sid, ["echo", "alive"])
        self.assertEqual(r.stdout, b"alive\n")

    def test_many_short_execs_each_end_with_exactly_one_exit(self):
        # Races between a process's fast exit and the end of its stdin/outputs show up only
        # over many calls: 4 threads x 150 `true`, each must be exactly ready, exit 0.
        import concurrent.futures as cf
        from cwsconf.client import RequestQueue

        def one(_):
            reqs = RequestQueue(pb.ExecStreamRequest(init=pb.ExecStreamInit(
                sandbox_id=self.sid, command=["true"])))
            reqs.half_close()
            got = []
            for m in self.client.StreamExec(iter(reqs), timeout=T(30)):
                k = kind(m)
                got.append("exit %d" % m.exit.exit_code if k == "exit" else
                           "error %s %s" % (m.error.code, m.error.message) if k == "error" else k)
            return got

        with cf.ThreadPoolExecutor(4) as ex:
            results = list(ex.map(one, range(600)))
        bad = [r for r in results if r != ["ready", "exit 0"]]
        if bad:
            self.fail("%d of 600 calls did not send exactly ready, exit 0; e.g. %s"
                      % (len(bad), bad[:3]))

    # ---- errors ----

    def test_first_message_not_init_invalid_argument(self):
        for first in (stdin(b"x"), close(), resize(80, 24)):
            with self.subTest(first=kind(first)):
                from cwsconf.client import RequestQueue
                reqs = RequestQueue(first)
                reqs.half_close()
                self.expectRpcError(self.client.StreamExec, iter(reqs), timeout=T(10),
                                    code=grpc.StatusCode.INVALID_ARGUMENT)

    def test_empty_command_invalid_argument(self):
        reqs, call = self.stream_exec(self.sid, [], half_close=True, timeout=T(10))
        with self.assertRaises(grpc.RpcError) as cm:
            list(call)
        self.assertRpcError(cm.exception, grpc.StatusCode.INVALID_ARGUMENT)

    def test_unknown_sandbox_not_found(self):
        reqs, call = self.stream_exec("no-such-sandbox-" + new_request_id()[:8], ["true"],
                                      half_close=True, timeout=T(10))
        with self.assertRaises(grpc.RpcError) as cm:
            list(call)
        self.assertRpcError(cm.exception, grpc.StatusCode.NOT_FOUND,
                            reason="CWSANDBOX_SANDBOX_NOT_FOUND")

    # ---- volume ----

    def test_64mib_output_is_lossless_with_a_slow_reader(self):
        n = 64 * 1024 * 1024
        script = "seq 1 10000000 | head -c %d" % n
        want = self.sh(self.sid, script + " | sha256sum", timeout=T(60)).split()[0].decode()
        reqs, call = self.stream_exec(self.sid, ["/bin/sh", "-c", script], half_close=True,
                                      timeout=T(120))
        h, total, kinds, exits, errors, other = hashlib.sha256(), 0, [], [], [], 0
        next_pause = 1024 * 1024
        try:
            for m in call:
                k = kind(m)
                kinds.append(k)
                if k == "ready":
                    time.sleep(1.0)   # let the server's buffers fill: it must hold, not drop
                elif k == "output":
                    if m.output.stream != OUT.STREAM_STDOUT:
                        other += len(m.output.data)
                        continue
                    h.update(m.output.data)
                    total += len(m.output.data)
                    if total >= next_pause:
                        next_pause += 1024 * 1024
                        time.sleep(0.03)   # a slow reader: ~2 s extra over 64 MiB
                elif k == "exit":
                    exits.append(m.exit.exit_code)
                elif k == "error":
                    errors.append((m.error.code, m.error.message))
        except grpc.RpcError as e:
            self.fail("RPC failed after %d bytes: %s %s" % (total, e.code(), e.details()))
        self.assertEqual(errors, [], "the server reported lost output")
        self.assertEqual(other, 0, "bytes on a stream other than STDOUT")
        self.assertEqual(kinds[0], "ready")
        self.assertEqual(exits, [0])
        self.assertEqual(kinds[-1], "exit")
        self.assertEqual(total, n, "bytes received")
        self.assertEqual(h.hexdigest(), want, "content differs (reordered or corrupted)")


if __name__ == "__main__":
    unittest.main()
