"""DeleteSandbox (wire notes 3.5, §9 item 7, §10 DeleteSandbox) and PurgeSandboxes (§10)."""
import time
import unittest

import grpc

from cwsconf.case import (TERM_IGNORING, TERMINAL, T, ServerTestCase, list_all, new_request_id,
                          state_name, unique_tag)
from cwsconf.protos import pb


class DeleteSandboxTest(ServerTestCase):

    def test_response_has_sandbox_set(self):
        sid = self.create_trapped().sandbox_id
        resp = self.delete(sid, grace=10)
        self.assertTrue(resp.HasField("sandbox"), "no `sandbox` in DeleteSandboxResponse")
        self.assertEqual(resp.sandbox.sandbox_id, sid)
        self.assertIn(resp.sandbox.status.state, {pb.STATE_TERMINATING} | TERMINAL,
                      state_name(resp.sandbox.status.state))
        self.assertEqual(list(resp.file_system_snapshot_ids), [])
        self.wait_terminal(sid)

    def test_grace_0_kills_at_once(self):
        sid = self.create_trapped(TERM_IGNORING).sandbox_id
        t0 = time.monotonic()
        self.delete(sid, grace=0)
        end = self.wait_terminal(sid, timeout=T(10))
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, T(1.5), "grace 0 must be immediate; took %.2fs" % elapsed)
        self.assertEqual(end.status.state, pb.STATE_FAILED, end.status)
        self.assertEqual(end.status.exit_code, 137)

    def test_grace_period_is_honoured(self):
        sid = self.create_trapped(TERM_IGNORING).sandbox_id
        t0 = time.monotonic()
        self.delete(sid, grace=2)
        # TERMINATING for the whole grace period
        while time.monotonic() - t0 < 1.5:
            st = self.get(sid).status.state
            self.assertEqual(st, pb.STATE_TERMINATING,
                             "%s %.2fs into a 2 s grace" % (state_name(st), time.monotonic() - t0))
            time.sleep(0.1)
        end = self.wait_terminal(sid, timeout=T(10))
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, T(5.0), "not killed %.2fs after a 2 s grace" % elapsed)
        self.assertEqual(end.status.exit_code, 137)

    def test_term_respecting_main_does_not_wait_for_the_grace(self):
        sid = self.create_trapped().sandbox_id
        t0 = time.monotonic()
        self.delete(sid, grace=60)
        end = self.wait_terminal(sid, timeout=T(10))
        self.assertLess(time.monotonic() - t0, T(3.0))
        self.assertEqual(end.status.state, pb.STATE_COMPLETED, end.status)
        self.assertEqual(end.status.exit_code, 0)

    def test_allow_missing_on_unknown_id_is_ok_with_empty_response(self):
        resp = self.delete("no-such-sandbox-" + new_request_id()[:8], allow_missing=True)
        self.assertFalse(resp.HasField("sandbox"), "allow_missing on an absent sandbox must "
                         "return an EMPTY response (PY reads `sandbox` absent as 'already gone')")
        self.assertEqual(list(resp.file_system_snapshot_ids), [])
        self.assertEqual(resp.ByteSize(), 0)

    def test_unknown_id_without_allow_missing_not_found(self):
        self.expectRpcError(self.delete, "no-such-sandbox-" + new_request_id()[:8],
                            code=grpc.StatusCode.NOT_FOUND, reason="CWSANDBOX_SANDBOX_NOT_FOUND")

    def test_repeated_delete_is_ok(self):
        sid = self.create_trapped(TERM_IGNORING).sandbox_id
        first = self.delete(sid, grace=2)
        second = self.delete(sid, grace=2)   # while TERMINATING
        self.assertTrue(second.HasField("sandbox"))
        self.assertEqual(second.sandbox.sandbox_id, sid)
        self.assertEqual(first.sandbox.status.state, pb.STATE_TERMINATING)
        self.assertIn(second.sandbox.status.state, {pb.STATE_TERMINATING} | TERMINAL)
        third = self.delete(sid, grace=0)    # may shorten the grace
        self.assertTrue(third.HasField("sandbox"))
        end = self.wait_terminal(sid)
        fourth = self.delete(sid, grace=0)   # once terminal
        self.assertTrue(fourth.HasField("sandbox"))
        self.assertEqual(fourth.sandbox.sandbox_id, sid)
        self.assertEqual(fourth.sandbox.status.state, end.status.state)
        self.assertEqual(fourth.sandbox.status.exit_code, end.status.exit_code)
        also = self.delete(sid, grace=0, allow_missing=True)
        self.assertTrue(also.HasField("sandbox"), "allow_missing on an existing sandbox")

    def test_allow_missing_on_existing_sandbox_deletes_it(self):
        sid = self.create_trapped().sandbox_id
        resp = self.delete(sid, grace=5, allow_missing=True)
        self.assertTrue(resp.HasField("sandbox"))
        self.assertEqual(resp.sandbox.sandbox_id, sid)
        self.assertIn(self.wait_terminal(sid).status.state, TERMINAL)


class PurgeSandboxesTest(ServerTestCase):

    def purge(self, **kw):
        return self.client.PurgeSandboxes(pb.PurgeSandboxesRequest(**kw))

    def test_dry_run_counts_and_stops_nothing(self):
        tag = unique_tag("purged")
        ids = [self.create(tags=[tag]).sandbox_id for _ in range(3)]
        for sid in ids:
            self.cleanup_delete(sid)
            self.wait_running(sid)
        r = self.purge(tags=[tag], dry_run=True)
        self.assertEqual(r.purge_count, 3)
        self.assertEqual(list(r.failed_sandbox_ids), [])
        for sid in ids:
            self.assertEqual(self.get(sid).status.state, pb.STATE_RUNNING,
                             "dry_run stopped a sandbox")

    def test_purge_by_tag_stops_matching_sandboxes_only(self):
        tag, other = unique_tag("purge"), unique_tag("keep")
        ids = [self.create(tags=[tag]).sandbox_id for _ in range(3)]
        both = self.create(tags=[tag, other]).sandbox_id
        keep = self.create(tags=[other]).sandbox_id
        self.cleanup_delete(keep)
        for sid in ids + [both, keep]:
            self.wait_running(sid)
        r = self.purge(tags=[tag])
        self.assertEqual(r.purge_count, 4)
        self.assertEqual(list(r.failed_sandbox_ids), [])
        self.assertEqual(list(r.retryable_failed_sandbox_ids), [])
        for sid in ids + [both]:
            self.assertIn(self.wait_terminal(sid).status.state, TERMINAL)
        self.assertEqual(self.get(keep).status.state, pb.STATE_RUNNING)
        self.assertEqual(list_all(self.client, tags=[tag]), [])
        # nothing left to purge
        self.assertEqual(self.purge(tags=[tag], dry_run=True).purge_count, 0)

    def test_purge_tags_are_anded(self):
        a, b = unique_tag("pa"), unique_tag("pb")
        only_a = self.create(tags=[a]).sandbox_id
        ab = self.create(tags=[a, b]).sandbox_id
        self.cleanup_delete(only_a)
        self.cleanup_delete(ab)
        self.wait_running(only_a)
        self.wait_running(ab)
        self.assertEqual(self.purge(tags=[a, b], dry_run=True).purge_count, 1)

    def test_neither_tags_nor_purge_all_invalid_argument(self):
        self.expectRpcError(self.purge, code=grpc.StatusCode.INVALID_ARGUMENT)
        self.expectRpcError(self.purge, dry_run=True, code=grpc.StatusCode.INVALID_ARGUMENT)

    def test_both_tags_and_purge_all_invalid_argument(self):
        self.expectRpcError(self.purge, tags=[unique_tag("x")], purge_all=True, dry_run=True,
                            code=grpc.StatusCode.INVALID_ARGUMENT)

    def test_request_id_unimplemented(self):
        # proto comment: a non-empty request_id on PurgeSandboxes is UNIMPLEMENTED
        self.expectRpcError(self.purge, tags=[unique_tag("x")], dry_run=True,
                            request_id=new_request_id(), code=grpc.StatusCode.UNIMPLEMENTED)


if __name__ == "__main__":
    unittest.main()
