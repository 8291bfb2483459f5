"""Restart: SIGTERM stops cwsandbox-local with exit status 0 and leaves sandboxes running;
a new server on the same state directory re-attaches to them (DESIGN §5, last item)."""
import time
import unittest

from cwsconf import procs
from cwsconf.case import (RUN_TAG, T, TERMINAL, ServerTestCase, exec_stream_collect, list_all,
                          make_spec, new_request_id, state_name, ts_ns)
from cwsconf.client import Client
from cwsconf.protos import pb


class RestartTest(ServerTestCase):

    @classmethod
    def setUpFixture(cls):
        cls.a_marker = procs.new_sleep_marker(1000)
        cls.b_marker = procs.new_sleep_marker(3)
        # A keeps running across the restart; B ends (exit 5) while the server is down;
        # C ended (exit 6) before the restart; D is deleted after the restart.
        cls.a = cls.create(command=["/bin/sh", "-c", 'trap "exit 0" TERM INT; sleep %s & wait'
                                    % cls.a_marker]).sandbox_id
        cls.d = cls.create_trapped().sandbox_id   # exits 0 on SIGTERM (checked below)
        cls.c = cls.create(command=["/bin/sh", "-c", "exit 6"]).sandbox_id
        cls.rid = new_request_id()
        cls.e = cls.create(spec=make_spec(), request_id=cls.rid).sandbox_id
        cls.a_before = cls.wait_running(cls.a)
        cls.wait_running(cls.e)
        cls.c_before = cls.wait_terminal(cls.c)
        cls.b = cls.create(command=["/bin/sh", "-c", "sleep %s; exit 5" % cls.b_marker]
                           ).sandbox_id
        cls.wait_running(cls.b)

        cls.client.close()
        cls.stop_rc = cls.server.stop(expect_status=None)
        cls.stopped_at = time.time_ns()
        cls.a_alive_while_down = bool(procs.with_token_in_cmdline(cls.a_marker))
        cls.b_alive_at_stop = bool(procs.with_token_in_cmdline(cls.b_marker))
        cls.b_left = procs.wait_gone(cls.b_marker, T(10))
        cls.server.start()
        cls.client = Client(cls.server.unix_target)

    def test_sigterm_exits_0_and_leaves_sandboxes_running(self):
        self.assertEqual(self.stop_rc, 0, "exit status after SIGTERM")
        self.assertTrue(self.a_alive_while_down, "a running sandbox died with the server")

    def test_running_sandbox_is_still_running_and_exec_works(self):
        sb, seen = self.wait_state(self.a, {pb.STATE_RUNNING} | TERMINAL, T(10))
        self.assertEqual(seen, [pb.STATE_RUNNING], [state_name(s) for s in seen])
        self.assertEqual(sb.status.start_time, self.a_before.status.start_time)
        self.assertFalse(sb.status.HasField("exit_code"))
        self.assertEqual(self.sh(self.a, "echo after restart"), b"after restart\n")
        reqs, call = self.stream_exec(self.a, ["cat"], half_close=True)
        out = exec_stream_collect(self, call, T(30))
        self.assertEqual(out["kinds"][0], "ready")
        self.assertEqual([e.exit_code for e in out["exits"]], [0])

    def test_sandbox_that_ended_while_down_reports_its_exit_code(self):
        self.assertTrue(self.b_alive_at_stop, "precondition: B ended before the server stopped")
        self.assertEqual(self.b_left, [], "precondition: B did not end while the server was down")
        sb = self.wait_terminal(self.b, timeout=T(10))
        self.assertEqual(sb.status.state, pb.STATE_FAILED, sb.status)
        self.assertTrue(sb.status.HasField("exit_code"))
        self.assertEqual(sb.status.exit_code, 5)
        self.assertTrue(sb.status.HasField("end_time"))
        self.assertGreaterEqual(ts_ns(sb.status.end_time), ts_ns(sb.status.start_time))

    def test_sandbox_that_ended_before_is_still_readable(self):
        sb = self.get(self.c)
        self.assertEqual(sb.status.state, pb.STATE_FAILED)
        self.assertEqual(sb.status.exit_code, 6)
        self.assertEqual(sb.status.end_time, self.c_before.status.end_time)

    def test_list_after_restart(self):
        live = {s.sandbox_id for s in list_all(self.client, tags=[RUN_TAG])}
        self.assertTrue({self.a, self.e} <= live, live)   # (D may be deleted by another test)
        self.assertNotIn(self.b, live)
        self.assertNotIn(self.c, live)
        every = {s.sandbox_id for s in list_all(self.client, tags=[RUN_TAG], show_terminated=True)}
        self.assertTrue({self.a, self.b, self.c, self.d, self.e} <= every, every)

    def test_delete_after_restart(self):
        resp = self.delete(self.d, grace=10)
        self.assertTrue(resp.HasField("sandbox"))
        end = self.wait_terminal(self.d)
        self.assertEqual(end.status.state, pb.STATE_COMPLETED, end.status)
        self.assertEqual(end.status.exit_code, 0)

    def test_request_id_still_deduplicates_after_restart(self):
        again = self.create(spec=make_spec(), request_id=self.rid)
        self.assertEqual(again.sandbox_id, self.e)


if __name__ == "__main__":
    unittest.main()
