"""CreateSandbox idempotency by request_id (wire notes §9 item 12, §10 CreateSandbox).

The PY SDK generates one request_id per Sandbox object and reuses it for repeated and
concurrent start() calls and after ambiguous failures, so a retry must never make a second
sandbox."""
import threading
import unittest

from cwsconf.case import ServerTestCase, list_all, make_spec, new_request_id, unique_tag
from cwsconf.protos import pb


class IdempotentCreateTest(ServerTestCase):

    def test_same_request_id_twice_gives_same_sandbox(self):
        tag = unique_tag("idem")
        spec = make_spec(tags=[tag])
        rid = new_request_id()
        a = self.create(spec=spec, request_id=rid)
        b = self.create(spec=spec, request_id=rid)
        self.cleanup_delete(a.sandbox_id)
        self.assertTrue(a.sandbox_id)
        self.assertEqual(a.sandbox_id, b.sandbox_id, "a repeated request_id made a second sandbox")
        found = list_all(self.client, tags=[tag], show_terminated=True)
        self.assertEqual([s.sandbox_id for s in found], [a.sandbox_id])
        # ... also once the sandbox runs
        self.wait_running(a.sandbox_id)
        c = self.create(spec=spec, request_id=rid)
        self.assertEqual(c.sandbox_id, a.sandbox_id)
        self.assertEqual(len(list_all(self.client, tags=[tag], show_terminated=True)), 1)

    def test_concurrent_creates_with_same_request_id_make_one_sandbox(self):
        tag = unique_tag("idemc")
        spec = make_spec(tags=[tag])
        rid = new_request_id()
        ids, errors = [], []
        lock = threading.Lock()

        def go():
            try:
                sb = self.create(spec=spec, request_id=rid)
                with lock:
                    ids.append(sb.sandbox_id)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(e)

        threads = [threading.Thread(target=go) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for sid in set(ids):
            self.cleanup_delete(sid)
        self.assertEqual(errors, [])
        self.assertEqual(len(ids), 6)
        self.assertEqual(len(set(ids)), 1, "concurrent creates with one request_id: %s" % ids)
        found = list_all(self.client, tags=[tag], show_terminated=True)
        self.assertEqual(len(found), 1, [s.sandbox_id for s in found])

    def test_different_request_ids_make_different_sandboxes(self):
        tag = unique_tag("idemd")
        spec = make_spec(tags=[tag])
        a = self.create(spec=spec, request_id=new_request_id())
        b = self.create(spec=spec, request_id=new_request_id())
        self.cleanup_delete(a.sandbox_id)
        self.cleanup_delete(b.sandbox_id)
        self.assertNotEqual(a.sandbox_id, b.sandbox_id)
        self.assertEqual(len(list_all(self.client, tags=[tag], show_terminated=True)), 2)

    def test_empty_request_id_is_not_deduplicated(self):
        # TS never retries and PY always sends one; an empty request_id is no key at all.
        tag = unique_tag("idemz")
        spec = make_spec(tags=[tag])
        req = pb.CreateSandboxRequest(sandbox=pb.Sandbox(spec=spec), request_id="")
        a = self.client.CreateSandbox(req)
        b = self.client.CreateSandbox(req)
        self._created.extend([a.sandbox_id, b.sandbox_id])
        self.cleanup_delete(a.sandbox_id)
        self.cleanup_delete(b.sandbox_id)
        self.assertNotEqual(a.sandbox_id, b.sandbox_id)


if __name__ == "__main__":
    unittest.main()
