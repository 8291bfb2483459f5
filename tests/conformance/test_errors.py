"""Protocol-level errors and authentication (wire notes §1.3, §5, §9 items 1, 2, 13, §10)."""
import unittest

import grpc

from cwsconf.case import (T, ServerTestCase, exec_stream_collect, list_all, make_spec,
                          new_request_id, unique_tag)
from cwsconf.client import SERVICE, Client, details
from cwsconf.protos import pb

TRUNCATED = b"\x0a\x64abc"        # field 1, length 100, but only 3 bytes follow
BAD_WIRE_TYPE = b"\x0f\x01"       # field 1 with wire type 7 (does not exist)


class ErrorsTest(ServerTestCase):

    @classmethod
    def setUpFixture(cls):
        cls.sid = cls.create_running().sandbox_id

    def assertServerHealthy(self):
        self.assertEqual(self.get(self.sid).status.state, pb.STATE_RUNNING)

    def test_malformed_protobuf_invalid_argument(self):
        ch = self.client.channel
        raw = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
        for method in ("GetSandbox", "CreateSandbox", "DeleteSandbox", "Exec", "ReadFile"):
            for body in (TRUNCATED, BAD_WIRE_TYPE):
                with self.subTest(method=method, body=body):
                    self.expectRpcError(ch.unary_unary(SERVICE + method, **raw), body,
                                        timeout=T(10), code=grpc.StatusCode.INVALID_ARGUMENT)
        with self.subTest(method="StreamLogs"):
            self.expectRpcError(ch.unary_stream(SERVICE + "StreamLogs", **raw), TRUNCATED,
                                timeout=T(10), code=grpc.StatusCode.INVALID_ARGUMENT)
        with self.subTest(method="StreamExec"):
            self.expectRpcError(ch.stream_stream(SERVICE + "StreamExec", **raw),
                                iter([TRUNCATED]), timeout=T(10),
                                code=grpc.StatusCode.INVALID_ARGUMENT)
        self.assertServerHealthy()

    def test_unknown_method_unimplemented(self):
        for path in (SERVICE + "NoSuchMethod", "/no.such.Service/GetSandbox",
                     "/coreweave.sandbox.v2.SandboxService/GetSandbox"):
            with self.subTest(path=path):
                self.expectRpcError(self.client.raw_unary(path), b"",
                                    code=grpc.StatusCode.UNIMPLEMENTED)
        self.assertServerHealthy()

    def test_create_from_template_unimplemented_with_message(self):
        req = pb.CreateSandboxFromTemplateRequest(template_id="tmpl", request_id=new_request_id())
        d = self.expectRpcError(self.client.CreateSandboxFromTemplate, req,
                                code=grpc.StatusCode.UNIMPLEMENTED)
        self.assertTrue(d.message.strip(), "UNIMPLEMENTED without a message")

    def test_snapshot_rpcs_unimplemented_with_message(self):
        calls = {
            "CreateFileSystemSnapshot": pb.CreateFileSystemSnapshotRequest(
                sandbox_id=self.sid, request_id=new_request_id()),
            "GetFileSystemSnapshot": pb.GetFileSystemSnapshotRequest(file_system_snapshot_id="s"),
            "ListFileSystemSnapshots": pb.ListFileSystemSnapshotsRequest(),
            "DeleteFileSystemSnapshot": pb.DeleteFileSystemSnapshotRequest(
                file_system_snapshot_id="s"),
        }
        for name, req in calls.items():
            with self.subTest(rpc=name):
                d = self.expectRpcError(getattr(self.client, name), req,
                                        code=grpc.StatusCode.UNIMPLEMENTED)
                self.assertTrue(d.message.strip(), "UNIMPLEMENTED without a message")

    def test_oversized_message_resource_exhausted(self):
        big = b"\0" * (101 * 1024 * 1024)
        with Client(self.server.unix_target, max_send=-1) as c:
            with self.assertRaises(grpc.RpcError) as cm:
                c.WriteFile(pb.WriteFileRequest(sandbox_id=self.sid, path="/tmp/oversized",
                                                content=big), timeout=T(60))
        self.assertRpcError(cm.exception, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertServerHealthy()
        r = self.exec(self.sid, ["test", "-e", "/tmp/oversized"])
        self.assertNotEqual(r.exit_code, 0, "an oversized WriteFile was written")

    # ---- CreateSandbox validation: INVALID_ARGUMENT with google.rpc.BadRequest ----

    def assertBadSpec(self, req, field_part, tag):
        d = self.expectRpcError(self.client.CreateSandbox, req,
                                code=grpc.StatusCode.INVALID_ARGUMENT)
        self.assertTrue(d.violations, "no BadRequest field violations: %r" % (d,))
        self.assertTrue(any(field_part in v.field for v in d.violations),
                        "no violation names %r: %r" % (field_part, d))
        for v in d.violations:
            self.assertTrue(v.description, "field violation without description: %r" % (d,))
        self.assertEqual(list_all(self.client, tags=[tag], show_terminated=True), [],
                         "a rejected spec created a sandbox")

    def test_no_containers_invalid_argument(self):
        tag = unique_tag("bad")
        spec = make_spec(tags=[tag])
        del spec.containers[:]
        spec.primary_container = ""
        self.assertBadSpec(pb.CreateSandboxRequest(sandbox=pb.Sandbox(spec=spec),
                                                   request_id=new_request_id()),
                           "containers", tag)

    def test_negative_max_lifetime_invalid_argument(self):
        tag = unique_tag("bad")
        spec = make_spec(tags=[tag], max_lifetime=-5)
        self.assertBadSpec(pb.CreateSandboxRequest(sandbox=pb.Sandbox(spec=spec),
                                                   request_id=new_request_id()),
                           "max_lifetime_seconds", tag)

    def test_missing_sandbox_invalid_argument(self):
        self.expectRpcError(self.client.CreateSandbox,
                            pb.CreateSandboxRequest(request_id=new_request_id()),
                            code=grpc.StatusCode.INVALID_ARGUMENT)

    def test_empty_sandbox_id_invalid_argument(self):
        self.expectRpcError(self.get, "", code=grpc.StatusCode.INVALID_ARGUMENT)


class AuthTest(ServerTestCase):
    """TCP calls need `authorization: Bearer <token file contents>`; the Unix socket does not."""

    def tcp(self, token):
        self.assertIsNotNone(self.server.tcp, "READY said tcp=-")
        c = Client(self.server.tcp, token=token)
        self.addCleanup(c.close)
        return c

    def list_req(self):
        return pb.ListSandboxesRequest(tags=[unique_tag("auth")])

    def test_ready_line_names_the_token_file(self):
        self.assertIsNotNone(self.server.ready_token_file, "READY said token_file=-")
        self.assertTrue(self.server.token, "the token file is empty")

    def test_tcp_without_token_unauthenticated(self):
        c = self.tcp(None)
        self.expectRpcError(c.ListSandboxes, self.list_req(), code=grpc.StatusCode.UNAUTHENTICATED)
        self.expectRpcError(c.GetSandbox, pb.GetSandboxRequest(sandbox_id="x"),
                            code=grpc.StatusCode.UNAUTHENTICATED)

    def test_tcp_wrong_token_unauthenticated(self):
        for bad in ("wrong-token", self.server.token + "x", self.server.token[:-1]):
            with self.subTest(token=bad):
                c = self.tcp(bad)
                self.expectRpcError(c.ListSandboxes, self.list_req(),
                                    code=grpc.StatusCode.UNAUTHENTICATED)

    def test_tcp_token_without_bearer_scheme_unauthenticated(self):
        c = self.tcp(None)
        c.metadata = [("authorization", self.server.token)]
        self.expectRpcError(c.ListSandboxes, self.list_req(), code=grpc.StatusCode.UNAUTHENTICATED)

    def test_tcp_streaming_without_token_unauthenticated(self):
        c = self.tcp(None)
        call = c.StreamLogs(pb.StreamLogsRequest(sandbox_id="x"), timeout=T(10))
        with self.assertRaises(grpc.RpcError) as cm:
            list(call)
        self.assertRpcError(cm.exception, grpc.StatusCode.UNAUTHENTICATED)

    def test_tcp_with_token_ok(self):
        c = self.tcp(self.server.token)
        r = c.ListSandboxes(self.list_req())
        self.assertEqual(len(r.sandboxes), 0)
        sb = self.create(client=c)
        self.cleanup_delete(sb.sandbox_id)
        self.wait_running(sb.sandbox_id)
        reqs, call = self.stream_exec(sb.sandbox_id, ["echo", "over tcp"], half_close=True,
                                      client=c)
        out = exec_stream_collect(self, call, T(30))
        self.assertEqual(out["status"], grpc.StatusCode.OK, out["rpc_error"] and
                         details(out["rpc_error"]))
        self.assertEqual(out["stdout"], b"over tcp\n")

    def test_unix_socket_without_token_ok(self):
        self.assertEqual(self.client.metadata, [])
        r = self.client.ListSandboxes(self.list_req())
        self.assertEqual(len(r.sandboxes), 0)


if __name__ == "__main__":
    unittest.main()
