"""StreamLogs (wire notes 4.2, §9 item 9, §10 StreamLogs): the main command's output."""
import time
import unittest

import grpc

from cwsconf.case import T, TERM_IGNORING, ServerTestCase, new_request_id, now_ns, ts_ns
from cwsconf.client import StreamReader
from cwsconf.protos import pb, timestamp_pb2

LINES = b"line1\nline2\nline3\n"
# main commands: print, then stay alive (exit 0 on SIGTERM, like the SDK's keep-alive)
PRINT_LINES = ["/bin/sh", "-c",
               'trap "exit 0" TERM INT; printf "line1\\nline2\\nline3\\n"; sleep infinity & wait']
PRINT_BOTH = ["/bin/sh", "-c",
              'trap "exit 0" TERM INT; printf "out1\\n"; printf "err1\\n" >&2; '
              'sleep infinity & wait']
# prints `early`, waits for /tmp/go, prints `late`
EARLY_LATE = ["/bin/sh", "-c",
              'trap "exit 0" TERM INT; printf "early\\n"; '
              'while [ ! -e /tmp/go ]; do sleep 0.02; done; printf "late\\n"; '
              'sleep infinity & wait']
# prints tick<N> each time /tmp/next appears
TICKER = ["/bin/sh", "-c",
          'trap "exit 0" TERM INT; i=0; while :; do if [ -e /tmp/next ]; then rm -f /tmp/next; '
          'i=$((i+1)); echo tick$i; fi; sleep 0.02; done']


def data_of(entries):
    return b"".join(e.data for e in entries if not e.HasField("error"))


def errors_of(entries):
    return [e.error for e in entries if e.HasField("error")]


class StreamLogsTest(ServerTestCase):

    @classmethod
    def setUpFixture(cls):
        cls.lines = cls.create(command=PRINT_LINES).sandbox_id
        cls.both = cls.create(command=PRINT_BOTH).sandbox_id
        cls.quiet = cls.create().sandbox_id
        for sid in (cls.lines, cls.both, cls.quiet):
            cls.wait_running(sid)
        cls.wait_logs(cls.lines, lambda d: d == LINES)
        cls.wait_logs(cls.both, lambda d: len(d) == len(b"out1\nerr1\n"))

    # ---- helpers ----

    @classmethod
    def read_logs(cls, sid, timeout=None, **kw):
        """A non-follow StreamLogs to its end: (entries, None) or (entries, RpcError)."""
        call = cls.client.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, **kw),
                                     timeout=timeout or T(10))
        entries = []
        try:
            for e in call:
                entries.append(e)
        except grpc.RpcError as err:
            return entries, err
        return entries, None

    @classmethod
    def wait_logs(cls, sid, pred, timeout=None):
        deadline = time.monotonic() + (timeout or T(10))
        while True:
            entries, err = cls.read_logs(sid)
            if err is not None:
                raise AssertionError("StreamLogs failed: %s %s" % (err.code(), err.details()))
            if pred(data_of(entries)):
                return entries
            if time.monotonic() >= deadline:
                raise AssertionError("logs of %s never matched; last: %r" % (sid, data_of(entries)))
            time.sleep(0.05)

    def follow(self, sid, **kw):
        call = self.client.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, follow=True, **kw),
                                      timeout=T(60))
        reader = StreamReader(call)
        self.addCleanup(reader.cancel)
        return reader

    def assertOffsets(self, entries, start=0):
        """Stable non-empty log_session_id; next_log_offset = previous + len(data)."""
        data = [e for e in entries if not e.HasField("error")]
        self.assertTrue(data, "no data entries")
        sess = data[0].log_session_id
        self.assertTrue(sess, "empty log_session_id")
        off = start
        for e in data:
            self.assertEqual(e.log_session_id, sess, "log_session_id changed within a stream")
            off += len(e.data)
            self.assertEqual(e.next_log_offset, off,
                             "next_log_offset must be cumulative (+len(data) per entry)")
        return sess, off

    # ---- non-follow ----

    def test_non_follow_returns_existing_output_then_ok(self):
        t0 = time.monotonic()
        entries, err = self.read_logs(self.lines)
        self.assertIsNone(err, err and "%s %s" % (err.code(), err.details()))
        self.assertLess(time.monotonic() - t0, T(5), "a non-follow stream must end by itself")
        self.assertEqual(data_of(entries), LINES)
        self.assertEqual(errors_of(entries), [])
        self.assertOffsets(entries)

    def test_stderr_is_included(self):
        entries, err = self.read_logs(self.both)
        self.assertIsNone(err)
        self.assertEqual(sorted(data_of(entries).splitlines()), [b"err1", b"out1"])

    def test_keepalive_command_has_no_logs(self):
        entries, err = self.read_logs(self.quiet)
        self.assertIsNone(err)
        self.assertEqual(data_of(entries), b"")
        self.assertEqual(errors_of(entries), [])

    def test_tail_lines(self):
        for n, want in ((1, b"line3\n"), (2, b"line2\nline3\n"), (3, LINES), (10, LINES)):
            with self.subTest(tail_lines=n):
                entries, err = self.read_logs(self.lines, tail_lines=n)
                self.assertIsNone(err)
                self.assertEqual(data_of(entries), want)

    def test_since_time(self):
        sid = self.create(command=EARLY_LATE).sandbox_id
        self.cleanup_delete(sid)
        self.wait_running(sid)
        self.wait_logs(sid, lambda d: d == b"early\n")
        since = timestamp_pb2.Timestamp()
        since.FromNanoseconds(now_ns())   # after `early` was recorded, before `late` is printed
        self.sh(sid, "touch /tmp/go")
        self.wait_logs(sid, lambda d: d == b"early\nlate\n")
        entries, err = self.read_logs(sid, since_time=since)
        self.assertIsNone(err)
        self.assertEqual(data_of(entries), b"late\n")

    def test_timestamps_flag(self):
        entries, err = self.read_logs(self.lines, timestamps=True)
        self.assertIsNone(err)
        self.assertEqual(data_of(entries), LINES, "timestamps must not change the data")
        created = ts_ns(self.get(self.lines).status.create_time)
        last = 0
        for e in entries:
            self.assertTrue(e.HasField("timestamp"), "timestamps=true: entry without timestamp")
            t = ts_ns(e.timestamp)
            self.assertGreaterEqual(t, created - 1_000_000_000)
            self.assertLessEqual(t, now_ns() + 1_000_000_000)
            self.assertGreaterEqual(t, last, "timestamps go backwards")
            last = t
        entries, err = self.read_logs(self.lines, timestamps=False)
        self.assertIsNone(err)
        self.assertEqual(data_of(entries), LINES)
        self.assertFalse(any(e.HasField("timestamp") for e in entries),
                         "timestamps=false: entries carry a timestamp")

    # ---- follow ----

    def test_follow_streams_new_lines_as_printed(self):
        sid = self.create(command=TICKER).sandbox_id
        self.cleanup_delete(sid)
        self.wait_running(sid)
        reader = self.follow(sid)
        for i in (1, 2, 3):
            self.sh(sid, "touch /tmp/next")
            want = b"".join(b"tick%d\n" % k for k in range(1, i + 1))
            reader.until(lambda ms: data_of(ms) == want, T(5), repr(want))
            self.assertFalse(reader.done.is_set(), "follow stream ended: %s" % reader.status_text())
        self.assertOffsets(reader.messages)

    def test_follow_ends_with_ok_when_the_sandbox_ends(self):
        # Decision: a follow stream of a sandbox that ends is closed with OK after its last
        # output (PY finishes its reader on a clean end; a stream left open would hang it).
        sid = self.create(command=["/bin/sh", "-c", 'printf "a\\n"; '
                                   'while [ ! -e /tmp/go ]; do sleep 0.02; done; printf "b\\n"']
                          ).sandbox_id
        self.cleanup_delete(sid)
        self.wait_running(sid)
        reader = self.follow(sid)
        reader.until(lambda ms: data_of(ms) == b"a\n", T(5), "a")
        self.sh(sid, "touch /tmp/go")
        reader.drain(T(10))
        self.assertIsNone(reader.error, reader.status_text())
        self.assertEqual(data_of(reader.messages), b"a\nb\n")
        self.assertEqual(errors_of(reader.messages), [])

    def test_session_id_stable_and_offsets_cumulative(self):
        entries, err = self.read_logs(self.lines)
        self.assertIsNone(err)
        self.assertOffsets(entries)
        reader = self.follow(self.lines)
        reader.until(lambda ms: data_of(ms) == LINES, T(5), "the existing lines")
        self.assertOffsets(reader.messages)

    def test_resume_continues_without_duplicates(self):
        sid = self.create(command=["/bin/sh", "-c",
                                   'trap "exit 0" TERM INT; printf "a1\\na2\\na3\\n"; '
                                   'while [ ! -e /tmp/go ]; do sleep 0.02; done; '
                                   'printf "b1\\nb2\\n"; sleep infinity & wait']).sandbox_id
        self.cleanup_delete(sid)
        self.wait_running(sid)
        first = self.follow(sid)
        first.until(lambda ms: data_of(ms) == b"a1\na2\na3\n", T(5), "a1..a3")
        session, offset = self.assertOffsets(first.messages)
        self.assertEqual(offset, 9)
        first.cancel()
        self.sh(sid, "touch /tmp/go")
        self.wait_logs(sid, lambda d: d.endswith(b"b2\n"))
        second = self.follow(sid, resume_log_session_id=session, resume_log_offset=offset)
        second.until(lambda ms: data_of(ms).endswith(b"b2\n") or errors_of(ms), T(5), "b2")
        self.assertEqual(errors_of(second.messages), [])
        self.assertEqual(data_of(second.messages), b"b1\nb2\n",
                         "resume must neither repeat nor skip")
        self.assertOffsets(second.messages, start=offset)

    def test_unknown_resume_session_is_an_in_band_error(self):
        call = self.client.StreamLogs(pb.StreamLogsRequest(
            sandbox_id=self.lines, follow=True, resume_log_session_id="no-such-session-" +
            new_request_id()[:8], resume_log_offset=3), timeout=T(10))
        reader = StreamReader(call)
        self.addCleanup(reader.cancel)
        first = reader.next(T(5))
        self.assertIsNotNone(first, "stream ended without a message: %s" % reader.status_text())
        self.assertTrue(first.HasField("error"),
                        "first message must be an in-band error: %s" % first)
        self.assertEqual(first.error.code, "SESSION_NOT_FOUND")
        self.assertEqual(first.data, b"")
        # terminal problems are the last message; then the RPC itself ends OK
        reader.drain(T(5))
        self.assertEqual(len(reader.messages), 1, reader.messages)
        self.assertIsNone(reader.error, "an unknown session is not an RPC error: %s"
                          % reader.status_text())

    # ---- stopped sandboxes ----

    def test_follow_on_a_stopped_sandbox_is_not_running(self):
        sid = self.create_running(command=PRINT_LINES).sandbox_id
        self.delete(sid, grace=0)
        self.wait_terminal(sid)
        call = self.client.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, follow=True),
                                      timeout=T(10))
        with self.assertRaises(grpc.RpcError) as cm:
            list(call)
        self.assertRpcError(cm.exception, grpc.StatusCode.FAILED_PRECONDITION,
                            reason="CWSANDBOX_SANDBOX_NOT_RUNNING")

    def test_follow_on_a_terminating_sandbox_is_not_running(self):
        sid = self.create_trapped(TERM_IGNORING).sandbox_id
        self.delete(sid, grace=30)
        self.assertEqual(self.get(sid).status.state, pb.STATE_TERMINATING)
        call = self.client.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, follow=True),
                                      timeout=T(10))
        with self.assertRaises(grpc.RpcError) as cm:
            list(call)
        self.assertRpcError(cm.exception, grpc.StatusCode.FAILED_PRECONDITION,
                            reason="CWSANDBOX_SANDBOX_NOT_RUNNING")
        self.delete(sid, grace=0)

    def test_non_follow_on_a_stopped_sandbox_returns_its_output(self):
        # Decision: only follow is refused on a stopped sandbox (PY refuses follow only);
        # reading what a finished sandbox printed is the main use of `logs`.
        sid = self.create_running(command=PRINT_LINES).sandbox_id
        self.wait_logs(sid, lambda d: d == LINES)
        self.delete(sid, grace=0)
        self.wait_terminal(sid)
        entries, err = self.read_logs(sid)
        self.assertIsNone(err, err and "%s %s" % (err.code(), err.details()))
        self.assertEqual(data_of(entries), LINES)

    def test_unknown_sandbox_not_found(self):
        entries, err = self.read_logs("no-such-sandbox-" + new_request_id()[:8])
        self.assertIsNotNone(err, "StreamLogs of an unknown sandbox succeeded")
        self.assertRpcError(err, grpc.StatusCode.NOT_FOUND, reason="CWSANDBOX_SANDBOX_NOT_FOUND")


if __name__ == "__main__":
    unittest.main()
