"""Unary Exec (wire notes 3.6, 4.3, §10 Exec)."""
import time
import unittest

import grpc

from cwsconf import procs
from cwsconf.case import T, ServerTestCase, new_request_id


class ExecTest(ServerTestCase):

    @classmethod
    def setUpFixture(cls):
        cls.sid = cls.create_running().sandbox_id

    def test_stdout_stderr_and_nonzero_exit_is_not_an_rpc_error(self):
        r = self.exec(self.sid, ["/bin/sh", "-c", "printf out; printf err >&2; exit 7"])
        self.assertEqual(r.stdout, b"out")
        self.assertEqual(r.stderr, b"err")
        self.assertEqual(r.exit_code, 7)
        self.assertFalse(r.stdout_truncated)
        self.assertFalse(r.stderr_truncated)

    def test_exit_0_and_binary_output(self):
        r = self.exec(self.sid, ["/bin/sh", "-c", r"printf '\000\001\377\n'"])
        self.assertEqual(r.exit_code, 0)
        self.assertEqual(r.stdout, b"\x00\x01\xff\n")
        self.assertEqual(r.stderr, b"")

    def test_argv_is_not_reparsed_by_a_shell(self):
        r = self.exec(self.sid, ["printf", "%s|", "a b", "$HOME", "'q'", ";"])
        self.assertEqual(r.stdout, b"a b|$HOME|'q'|;|")

    def test_env(self):
        r = self.exec(self.sid, ["/bin/sh", "-c", 'printf "%s" "$CWS_TEST_VAR"'],
                      env={"CWS_TEST_VAR": "v a l"})
        self.assertEqual(r.stdout, b"v a l")

    def test_max_output_bytes_truncates_each_stream_and_counts_bytes_produced(self):
        script = "head -c 1000 /dev/zero | tr '\\0' o; head -c 500 /dev/zero | tr '\\0' e >&2"
        r = self.exec(self.sid, ["/bin/sh", "-c", script], max_output_bytes=100)
        self.assertEqual(r.exit_code, 0)
        self.assertEqual(r.stdout, b"o" * 100)
        self.assertEqual(r.stderr, b"e" * 100)
        self.assertTrue(r.stdout_truncated)
        self.assertTrue(r.stderr_truncated)
        self.assertEqual(r.stdout_bytes_produced, 1000)
        self.assertEqual(r.stderr_bytes_produced, 500)

    def test_output_under_the_limit_is_not_truncated(self):
        r = self.exec(self.sid, ["/bin/sh", "-c", "printf 12345; printf ab >&2"],
                      max_output_bytes=100)
        self.assertEqual((r.stdout, r.stderr), (b"12345", b"ab"))
        self.assertFalse(r.stdout_truncated)
        self.assertFalse(r.stderr_truncated)
        self.assertEqual(r.stdout_bytes_produced, 5)
        self.assertEqual(r.stderr_bytes_produced, 2)

    def test_command_not_found_is_exit_127(self):
        r = self.exec(self.sid, ["/no/such/command"])
        self.assertEqual(r.exit_code, 127)

    def test_unknown_sandbox_not_found(self):
        self.expectRpcError(self.exec, "no-such-sandbox-" + new_request_id()[:8], ["true"],
                            code=grpc.StatusCode.NOT_FOUND, reason="CWSANDBOX_SANDBOX_NOT_FOUND")

    def test_empty_command_invalid_argument(self):
        self.expectRpcError(self.exec, self.sid, [], code=grpc.StatusCode.INVALID_ARGUMENT)

    def test_stopped_sandbox_failed_precondition(self):
        sid = self.create_running().sandbox_id
        self.delete(sid, grace=0)
        self.wait_terminal(sid)
        self.expectRpcError(self.exec, sid, ["true"], code=grpc.StatusCode.FAILED_PRECONDITION,
                            reason="CWSANDBOX_SANDBOX_NOT_RUNNING")

    def test_deadline_kills_the_process(self):
        import concurrent.futures as cf
        marker = procs.new_sleep_marker()
        t0 = time.monotonic()
        with cf.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(self.exec, self.sid, ["/bin/sh", "-c", "sleep %s; echo never" % marker],
                            timeout=1.5)
            self.assertTrue(procs.wait_present(marker, T(1.5)),
                            "the exec'd process never appeared in /proc")
            with self.assertRaises(grpc.RpcError) as cm:
                fut.result(T(10))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - t0, T(5))
        self.assertGone(marker, T(5), "the exec'd process, after its call's deadline")

    def test_concurrent_execs(self):
        import concurrent.futures as cf
        with cf.ThreadPoolExecutor(8) as ex:
            futs = [ex.submit(self.exec, self.sid, ["/bin/sh", "-c", "printf %d" % i])
                    for i in range(16)]
            out = [f.result() for f in futs]
        self.assertEqual([r.stdout for r in out], [b"%d" % i for i in range(16)])
        self.assertEqual({r.exit_code for r in out}, {0})


if __name__ == "__main__":
    unittest.main()
