"""ListSandboxes: filters, terminal visibility and pagination (wire notes 3.4, §7, §9 item 6,
§10 ListSandboxes)."""
import unittest

import grpc

from cwsconf.case import TERMINAL, ServerTestCase, list_all, state_name, unique_tag
from cwsconf.protos import pb


class ListSandboxesTest(ServerTestCase):

    @classmethod
    def setUpFixture(cls):
        cls.base = unique_tag("list")
        cls.alpha = cls.base + "-a"
        cls.beta = cls.base + "-b"
        t = lambda *x: [cls.base] + list(x)  # noqa: E731
        # created together: Create returns at once, so they start in parallel
        cls.s1 = cls.create(tags=t(cls.alpha, cls.beta)).sandbox_id        # running
        cls.s2 = cls.create(tags=t(cls.alpha)).sandbox_id                  # running
        cls.s3 = cls.create(tags=t(cls.beta)).sandbox_id                   # running
        cls.s4 = cls.create(tags=t(cls.alpha, cls.beta),
                            command=["/bin/sh", "-c", "exit 0"]).sandbox_id  # COMPLETED
        cls.s5 = cls.create(tags=t(cls.alpha),
                            command=["/bin/sh", "-c", "exit 3"]).sandbox_id  # FAILED
        cls.page_tag = unique_tag("page")
        cls.paged = [cls.create(tags=[cls.page_tag]).sandbox_id for _ in range(5)]
        for sid in (cls.s1, cls.s2, cls.s3):
            cls.wait_running(sid)
        cls.assert_state(cls.wait_terminal(cls.s4), pb.STATE_COMPLETED)
        cls.assert_state(cls.wait_terminal(cls.s5), pb.STATE_FAILED)
        for sid in cls.paged:
            cls.wait_running(sid)

    @staticmethod
    def assert_state(sb, state):
        if sb.status.state != state:
            raise AssertionError("fixture sandbox %s is %s, want %s" % (
                sb.sandbox_id, state_name(sb.status.state), state_name(state)))

    def ids(self, **kw):
        return sorted(s.sandbox_id for s in list_all(self.client, **kw))

    def test_tags_are_anded(self):
        self.assertEqual(self.ids(tags=[self.alpha, self.beta]), [self.s1])
        self.assertEqual(self.ids(tags=[self.alpha]), sorted([self.s1, self.s2]))
        self.assertEqual(self.ids(tags=[self.beta, self.base]), sorted([self.s1, self.s3]))
        self.assertEqual(self.ids(tags=[self.alpha, self.beta + "-nope"]), [])

    def test_terminal_hidden_unless_show_terminated(self):
        self.assertEqual(self.ids(tags=[self.base]), sorted([self.s1, self.s2, self.s3]))
        self.assertEqual(self.ids(tags=[self.base], show_terminated=True),
                         sorted([self.s1, self.s2, self.s3, self.s4, self.s5]))
        self.assertEqual(self.ids(tags=[self.alpha, self.beta], show_terminated=True),
                         sorted([self.s1, self.s4]))

    def test_state_filter(self):
        self.assertEqual(self.ids(tags=[self.base], state=pb.STATE_RUNNING),
                         sorted([self.s1, self.s2, self.s3]))
        self.assertEqual(self.ids(tags=[self.base], state=pb.STATE_CREATING), [])
        self.assertEqual(self.ids(tags=[self.base], state=pb.STATE_RUNNING, show_terminated=True),
                         sorted([self.s1, self.s2, self.s3]))

    def test_terminal_state_filter_shows_terminal_without_show_terminated(self):
        self.assertEqual(self.ids(tags=[self.base], state=pb.STATE_COMPLETED), [self.s4])
        self.assertEqual(self.ids(tags=[self.base], state=pb.STATE_FAILED), [self.s5])

    def test_runner_ids_any(self):
        runner = self.get(self.s1).status.runner_id
        self.assertTrue(runner, "status.runner_id is empty, nothing to filter on")
        running = sorted([self.s1, self.s2, self.s3])
        self.assertEqual(self.ids(tags=[self.base], runner_ids=[runner]), running)
        self.assertEqual(self.ids(tags=[self.base], runner_ids=["no-such-runner", runner]), running)
        self.assertEqual(self.ids(tags=[self.base], runner_ids=["no-such-runner"]), [])

    def test_listed_sandboxes_are_complete(self):
        for sb in list_all(self.client, tags=[self.base], show_terminated=True):
            self.assertTrue(sb.sandbox_id)
            self.assertNotEqual(sb.status.state, pb.STATE_UNSPECIFIED)
            self.assertIn(self.base, list(sb.spec.tags))
            if sb.status.state in TERMINAL:
                self.assertTrue(sb.status.HasField("exit_code"), sb)

    def test_pagination_page_size_2(self):
        seen, tokens, token, pages = [], [], "", 0
        while True:
            pages += 1
            self.assertLessEqual(pages, 10, "pagination does not end")
            r = self.client.ListSandboxes(pb.ListSandboxesRequest(
                page_size=2, page_token=token, tags=[self.page_tag]))
            self.assertLessEqual(len(r.sandboxes), 2, "page_size 2 returned %d" % len(r.sandboxes))
            seen.extend(s.sandbox_id for s in r.sandboxes)
            token = r.next_page_token
            if not token:
                break
            self.assertNotIn(token, tokens, "a page token was repeated")
            tokens.append(token)
        self.assertEqual(sorted(seen), sorted(self.paged), "each sandbox exactly once")
        self.assertEqual(len(seen), len(set(seen)), "a sandbox was listed twice")
        self.assertGreaterEqual(len(tokens), 2, "5 sandboxes at 2 per page need 3 pages")

    def test_page_size_0_means_a_default_that_holds_5(self):
        r = self.client.ListSandboxes(pb.ListSandboxesRequest(tags=[self.page_tag]))
        self.assertEqual(sorted(s.sandbox_id for s in r.sandboxes), sorted(self.paged))
        self.assertEqual(r.next_page_token, "")

    def test_bad_page_token_invalid_argument(self):
        for bad in ("!!!", "not a page token"):
            self.expectRpcError(self.client.ListSandboxes,
                                pb.ListSandboxesRequest(page_token=bad, tags=[self.page_tag]),
                                code=grpc.StatusCode.INVALID_ARGUMENT)

    def test_no_match_is_an_empty_list(self):
        r = self.client.ListSandboxes(pb.ListSandboxesRequest(tags=[unique_tag("none")]))
        self.assertEqual(len(r.sandboxes), 0)
        self.assertEqual(r.next_page_token, "")


if __name__ == "__main__":
    unittest.main()
