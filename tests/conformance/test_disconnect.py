"""A client that dies (SIGKILL) in the middle of a StreamExec leaves no process behind
(wire notes §9 item 8: cancellation kills the process; a lost connection is a cancellation)."""
import os
import signal
import subprocess
import sys
import time
import unittest

from cwsconf import procs
from cwsconf.case import T, ServerTestCase

HERE = os.path.dirname(os.path.abspath(__file__))


class DisconnectTest(ServerTestCase):

    @classmethod
    def setUpFixture(cls):
        cls.sid = cls.create_running().sandbox_id

    def kill_client_mid_stream(self, target, token=None):
        marker = procs.new_sleep_marker()
        env = dict(os.environ, CWSCONF_MARKER=marker, PYTHONPATH=HERE, PYTHONDONTWRITEBYTECODE="1")
        if token:
            env["CWSCONF_TOKEN"] = token
        from cwsconf import protos
        env["CWS_CONFORMANCE_GEN_DIR"] = protos.GEN_DIR   # reuse the generated modules
        child = subprocess.Popen([sys.executable, "-m", "cwsconf.stream_exec_child", target,
                                  self.sid], stdout=subprocess.PIPE, env=env, cwd=HERE)
        self.addCleanup(lambda: child.poll() is None and (child.kill(), child.wait()))
        try:
            deadline = time.monotonic() + T(10)
            line = b""
            while time.monotonic() < deadline and child.poll() is None:
                import select
                r, _, _ = select.select([child.stdout], [], [], 0.1)
                if r:
                    line = child.stdout.readline()
                    break
            self.assertEqual(line.strip(), b"READY", "the child client never got `ready`")
            self.assertTrue(procs.wait_present(marker, T(3)),
                            "the exec'd process never appeared")
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        finally:
            child.stdout.close()
        self.assertGone(marker, T(10), "the StreamExec process of a SIGKILLed client")
        # and the server is fine
        self.assertEqual(self.sh(self.sid, "echo ok"), b"ok\n")

    def test_sigkilled_client_on_unix_socket_leaves_no_process(self):
        self.kill_client_mid_stream(self.server.unix_target)

    def test_sigkilled_client_on_tcp_leaves_no_process(self):
        self.assertIsNotNone(self.server.tcp, "READY said tcp=-")
        self.kill_client_mid_stream(self.server.tcp, token=self.server.token)


if __name__ == "__main__":
    unittest.main()
