"""Sandbox lifecycle: CreateSandbox, GetSandbox polling, DeleteSandbox, exit codes, lifetime.

Wire notes §8, §9 items 3-6, §10 (CreateSandbox, GetSandbox, DeleteSandbox).
"""
import time
import unittest

import grpc

from cwsconf.case import (DEFAULT_IMAGE, KEEPALIVE, STARTING, TERM_IGNORING, TERMINAL, T,
                          ServerTestCase, make_spec, new_request_id, now_ns, state_name, ts_ns,
                          unique_tag)
from cwsconf.protos import pb


class LifecycleTest(ServerTestCase):

    def test_create_returns_at_once_in_creating_with_id_and_spec_echo(self):
        tag = unique_tag("echo")
        spec = make_spec(tags=[tag], env={"GREETING": "hello"})
        t0 = time.monotonic()
        sb = self.create(spec=spec)
        elapsed = time.monotonic() - t0
        self.cleanup_delete(sb.sandbox_id)
        self.assertTrue(sb.sandbox_id, "CreateSandbox returned no sandbox_id")
        self.assertIn(sb.status.state, STARTING,
                      "CreateSandbox must return CREATING or PENDING, got %s"
                      % state_name(sb.status.state))
        self.assertLess(elapsed, T(2.0),
                        "CreateSandbox took %.2fs: it must return at once" % elapsed)
        self.assertTrue(sb.status.HasField("create_time"), "status.create_time not set")
        self.assertLessEqual(abs(ts_ns(sb.status.create_time) - now_ns()), 5_000_000_000,
                             "create_time is not about now")
        self.assertFalse(sb.status.HasField("exit_code"), "exit_code present on a new sandbox")
        # the spec is echoed
        self.assertEqual(len(sb.spec.containers), 1, sb.spec)
        c = sb.spec.containers[0]
        self.assertEqual(c.name, "main")
        self.assertEqual(c.image, DEFAULT_IMAGE)
        self.assertEqual(c.command, KEEPALIVE[0])
        self.assertEqual(list(c.args), KEEPALIVE[1:])
        self.assertEqual(c.environment_variables["GREETING"], "hello")
        self.assertEqual(sb.spec.primary_container, "main")
        self.assertIn(tag, list(sb.spec.tags))

    def test_get_reaches_running_with_start_time_never_unspecified(self):
        sb = self.create()
        self.cleanup_delete(sb.sandbox_id)
        run, seen = self.wait_state(sb.sandbox_id, {pb.STATE_RUNNING} | TERMINAL, T(20))
        self.assertEqual(run.status.state, pb.STATE_RUNNING,
                         "ended instead of running: %s" % run.status)
        self.assertNotIn(pb.STATE_UNSPECIFIED, seen, "UNSPECIFIED reported for a live sandbox")
        self.assertTrue(set(seen) <= STARTING | {pb.STATE_RUNNING},
                        "unexpected states before RUNNING: %s" % [state_name(s) for s in seen])
        self.assertEqual(run.sandbox_id, sb.sandbox_id)
        self.assertTrue(run.status.HasField("start_time"), "RUNNING without start_time")
        self.assertGreaterEqual(ts_ns(run.status.start_time), ts_ns(run.status.create_time))
        self.assertFalse(run.status.HasField("exit_code"), "exit_code present while running")
        self.assertFalse(run.status.HasField("end_time"), "end_time present while running")
        # no image directory for python:3.11: the host root is used, and state_reason says so
        self.assertIn("host", run.status.state_reason.lower(),
                      "state_reason should say the host root is used: %r" % run.status.state_reason)
        # keeps reporting RUNNING (never UNSPECIFIED) while alive
        for _ in range(5):
            again = self.get(sb.sandbox_id)
            self.assertEqual(again.status.state, pb.STATE_RUNNING)
            self.assertEqual(again.status.start_time, run.status.start_time)

    def test_delete_goes_terminating_then_completed_with_exit_0(self):
        # The SDK's default keep-alive command exits 0 on SIGTERM.
        sid = self.create_trapped().sandbox_id
        resp = self.delete(sid, grace=10)
        self.assertTrue(resp.HasField("sandbox"), "DeleteSandbox response has no sandbox")
        self.assertEqual(resp.sandbox.sandbox_id, sid)
        self.assertEqual(resp.sandbox.status.state, pb.STATE_TERMINATING,
                         "DeleteSandbox of a running sandbox should answer TERMINATING, got %s"
                         % state_name(resp.sandbox.status.state))
        t0 = time.monotonic()
        end, seen = self.wait_state(sid, TERMINAL, T(10))
        self.assertLess(time.monotonic() - t0, T(5),
                        "a TERM-respecting main should end well before the 10 s grace")
        self.assertTrue(set(seen) <= {pb.STATE_TERMINATING, pb.STATE_COMPLETED},
                        "states after delete: %s" % [state_name(s) for s in seen])
        self.assertEqual(end.status.state, pb.STATE_COMPLETED, end.status)
        self.assertTrue(end.status.HasField("exit_code"), "COMPLETED without exit_code")
        self.assertEqual(end.status.exit_code, 0)
        self.assertTrue(end.status.HasField("end_time"), "terminal without end_time")
        self.assertGreaterEqual(ts_ns(end.status.end_time), ts_ns(end.status.start_time))

    def test_main_exit_3_fails_with_exit_code_3(self):
        sb = self.create(command=["/bin/sh", "-c", "exit 3"])
        end, seen = self.wait_state(sb.sandbox_id, TERMINAL, T(20))
        self.assertNotIn(pb.STATE_UNSPECIFIED, seen)
        self.assertEqual(end.status.state, pb.STATE_FAILED, end.status)
        self.assertTrue(end.status.HasField("exit_code"), "FAILED without exit_code")
        self.assertEqual(end.status.exit_code, 3)
        self.assertTrue(end.status.HasField("end_time"))

    def test_main_exit_0_completes(self):
        sb = self.create(command=["/bin/sh", "-c", "exit 0"])
        end = self.wait_terminal(sb.sandbox_id)
        self.assertEqual(end.status.state, pb.STATE_COMPLETED, end.status)
        self.assertTrue(end.status.HasField("exit_code"), "COMPLETED without exit_code")
        self.assertEqual(end.status.exit_code, 0)

    def test_term_ignoring_main_is_killed_after_grace_with_137(self):
        sid = self.create_trapped(TERM_IGNORING).sandbox_id
        t0 = time.monotonic()
        resp = self.delete(sid, grace=1)
        self.assertEqual(resp.sandbox.status.state, pb.STATE_TERMINATING)
        end, seen = self.wait_state(sid, TERMINAL, T(10))
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.8, "killed after %.2fs, before the 1 s grace" % elapsed)
        self.assertLess(elapsed, T(4.0), "not killed %.2fs after a 1 s grace" % elapsed)
        self.assertTrue(set(seen) <= {pb.STATE_TERMINATING, pb.STATE_FAILED},
                        [state_name(s) for s in seen])
        self.assertEqual(end.status.state, pb.STATE_FAILED, end.status)
        self.assertTrue(end.status.HasField("exit_code"))
        self.assertEqual(end.status.exit_code, 137, "SIGKILL is 128+9")

    def test_deleted_sandbox_stays_readable(self):
        sid = self.create_running().sandbox_id
        self.delete(sid, grace=0)
        end = self.wait_terminal(sid)
        # the SDKs poll for a while after a stop; NOT_FOUND within ~2 s breaks them
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            again = self.get(sid)
            self.assertEqual(again.sandbox_id, sid)
            self.assertEqual(again.status.state, end.status.state)
            self.assertEqual(again.status.exit_code, end.status.exit_code)
            self.assertTrue(again.status.HasField("exit_code"))
            time.sleep(0.25)

    def test_max_lifetime_seconds_enforced(self):
        sb = self.create(max_lifetime=2)
        sid = sb.sandbox_id
        run = self.wait_running(sid)
        end = self.wait_terminal(sid, timeout=T(15))
        self.assertTrue(end.status.HasField("end_time"), "terminal without end_time")
        lived = (ts_ns(end.status.end_time) - ts_ns(run.status.start_time)) / 1e9
        self.assertGreaterEqual(lived, 1.5, "stopped after %.2fs, before its 2 s lifetime" % lived)
        self.assertLess(lived, T(6.0), "still alive %.2fs into a 2 s lifetime" % lived)
        self.assertIn(end.status.state, TERMINAL)
        self.assertTrue(end.status.HasField("exit_code"), "terminal without exit_code")
        self.assertTrue(end.status.state_reason, "state_reason should say why it was stopped")

    def test_container_without_image_uses_host_root(self):
        # Decision (wire notes 3.1/§10 name no image check; the runtime treats "" as the host
        # root): a container without image is accepted and runs on the host root.
        sb = self.create(image="")
        self.cleanup_delete(sb.sandbox_id)
        run = self.wait_running(sb.sandbox_id)
        self.assertEqual(self.sh(run.sandbox_id, "echo ok"), b"ok\n")

    def test_get_unknown_sandbox_not_found(self):
        self.expectRpcError(self.get, "no-such-sandbox-" + new_request_id()[:8],
                            code=grpc.StatusCode.NOT_FOUND, reason="CWSANDBOX_SANDBOX_NOT_FOUND")


if __name__ == "__main__":
    unittest.main()
