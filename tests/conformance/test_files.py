"""ReadFile / WriteFile (wire notes 3.7, §6, §9 item 10, §10 ReadFile/WriteFile)."""
import os
import secrets
import unittest

import grpc

from cwsconf.case import T, ServerTestCase, new_request_id
from cwsconf.protos import pb

FILE_REASONS = ("CWSANDBOX_FILE_NOT_FOUND", "CWSANDBOX_FILE_IO_FAILED")


class FilesTest(ServerTestCase):

    @classmethod
    def setUpFixture(cls):
        cls.sid = cls.create_running().sandbox_id

    def read(self, path, sid=None, timeout=None):
        return self.client.ReadFile(pb.ReadFileRequest(sandbox_id=sid or self.sid, path=path),
                                    timeout=timeout or T(60)).content

    def write(self, path, content, sid=None, timeout=None):
        return self.client.WriteFile(pb.WriteFileRequest(sandbox_id=sid or self.sid, path=path,
                                                         content=content),
                                     timeout=timeout or T(60))

    def read_error(self, path):
        with self.assertRaises(grpc.RpcError) as cm:
            got = self.read(path)
            self.fail("ReadFile(%s) returned %d bytes: %r" % (path, len(got), got[:80]))
        return cm.exception

    # ---- round trips ----

    def test_round_trip_and_visible_to_exec(self):
        data = bytes(range(256)) * 4
        resp = self.write("/tmp/rt.bin", data)
        self.assertEqual(resp.ByteSize(), 0, "WriteFileResponse is empty")
        self.assertEqual(self.read("/tmp/rt.bin"), data)
        self.assertEqual(self.sh(self.sid, "cat /tmp/rt.bin"), data)
        self.sh(self.sid, "printf 'from exec' > /tmp/fromexec")
        self.assertEqual(self.read("/tmp/fromexec"), b"from exec")

    def test_overwrite_replaces_content(self):
        self.write("/tmp/ow", b"a much longer first version\n")
        self.write("/tmp/ow", b"short\n")
        self.assertEqual(self.read("/tmp/ow"), b"short\n")

    def test_empty_content_makes_a_zero_byte_file(self):
        self.write("/tmp/empty", b"")
        self.assertEqual(self.sh(self.sid, "stat -c %s /tmp/empty"), b"0\n")
        self.assertEqual(self.read("/tmp/empty"), b"")
        self.write("/tmp/ow0", b"not empty")
        self.write("/tmp/ow0", b"")
        self.assertEqual(self.sh(self.sid, "stat -c %s /tmp/ow0"), b"0\n")

    def test_30mib_round_trip(self):
        data = os.urandom(30 * 1024 * 1024)
        self.write("/tmp/big30", data)
        self.assertEqual(self.sh(self.sid, "stat -c %s /tmp/big30"), b"%d\n" % len(data))
        got = self.read("/tmp/big30")
        self.assertEqual(len(got), len(data))
        self.assertTrue(got == data, "30 MiB came back different")

    # ---- errors ----

    def test_missing_file_not_found_with_filepath(self):
        err = self.read_error("/tmp/does-not-exist")
        self.assertRpcError(err, grpc.StatusCode.NOT_FOUND, reason="CWSANDBOX_FILE_NOT_FOUND",
                            metadata={"filepath": "/tmp/does-not-exist"})

    def test_write_into_missing_directory_is_a_file_error(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.write("/tmp/no/such/dir/f", b"x")
        d = self.assertRpcError(cm.exception, cm.exception.code())
        self.assertIn(d.reason, FILE_REASONS, "a missing parent: FILE_NOT_FOUND or FILE_IO_FAILED "
                      "reason (the SDKs map by reason): %r" % (d,))
        self.assertEqual(d.error_info.domain, "cwsandbox.com")
        self.assertEqual(d.error_info.metadata.get("filepath"), "/tmp/no/such/dir/f")

    def test_directory_is_directory(self):
        err = self.read_error("/tmp")
        d = self.assertRpcError(err, err.code(), reason="CWSANDBOX_FILE_IS_DIRECTORY",
                                metadata={"filepath": "/tmp"})
        self.assertNotEqual(d.code, grpc.StatusCode.OK)

    def test_read_too_large_reports_size_and_max(self):
        size = 200 * 1024 * 1024   # sparse: costs no disk, exceeds any unary cap (<100 MiB)
        self.sh(self.sid, "truncate -s %d /tmp/huge" % size)
        err = self.read_error("/tmp/huge")
        d = self.assertRpcError(err, err.code(), reason="CWSANDBOX_FILE_TOO_LARGE",
                                metadata={"size_bytes": str(size), "max_size_bytes": None,
                                          "filepath": "/tmp/huge"})
        mx = d.error_info.metadata["max_size_bytes"]
        self.assertTrue(mx.isdigit(), "max_size_bytes must be a decimal string: %r" % mx)
        mx = int(mx)
        self.assertGreaterEqual(mx, 30 * 1024 * 1024, "the unary cap is below 30 MiB")
        self.assertLess(mx, 100 * 1024 * 1024, "the unary cap must leave room for framing")
        # the boundary: max bytes are readable, max+1 are not
        self.sh(self.sid, "truncate -s %d /tmp/atmax; truncate -s %d /tmp/overmax" % (mx, mx + 1))
        self.assertEqual(len(self.read("/tmp/atmax")), mx)
        err = self.read_error("/tmp/overmax")
        self.assertRpcError(err, err.code(), reason="CWSANDBOX_FILE_TOO_LARGE",
                            metadata={"size_bytes": str(mx + 1), "max_size_bytes": str(mx)})
        self.sh(self.sid, "rm -f /tmp/huge /tmp/atmax /tmp/overmax")

    def test_write_over_the_cap_is_refused_with_file_too_large_or_resource_exhausted(self):
        self.sh(self.sid, "truncate -s 200M /tmp/probe")
        d = details_of(self.read_error("/tmp/probe"))
        self.sh(self.sid, "rm -f /tmp/probe")
        if d.reason != "CWSANDBOX_FILE_TOO_LARGE" or "max_size_bytes" not in d.error_info.metadata:
            self.fail("cannot learn the unary cap: %r" % (d,))
        mx = int(d.error_info.metadata["max_size_bytes"])
        if mx + 1 > 99 * 1024 * 1024:
            self.skipTest("cap %d leaves no room below the 100 MiB message limit" % mx)
        with self.assertRaises(grpc.RpcError) as cm:
            self.write("/tmp/toolarge", b"\0" * (mx + 1))
        d = self.assertRpcError(cm.exception, cm.exception.code())
        if d.code == grpc.StatusCode.RESOURCE_EXHAUSTED and d.reason is None:
            # the other accepted form (wire notes §6 step 3, §10 WriteFile): the SDKs fall
            # back to streaming only when the message says so
            self.assertIn("larger than max", d.message, d)
        else:
            self.assertEqual(d.reason, "CWSANDBOX_FILE_TOO_LARGE", d)
            self.assertEqual(d.error_info.metadata.get("size_bytes"), str(mx + 1))
            self.assertEqual(d.error_info.metadata.get("max_size_bytes"), str(mx))
        r = self.exec(self.sid, ["test", "-e", "/tmp/toolarge"])
        self.assertNotEqual(r.exit_code, 0, "a refused write left a file behind")

    def test_relative_or_empty_path_invalid_argument(self):
        for path in ("tmp/x", "x", ""):
            with self.subTest(path=path):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.read(path)
                self.assertRpcError(cm.exception, grpc.StatusCode.INVALID_ARGUMENT)
                with self.assertRaises(grpc.RpcError) as cm:
                    self.write(path, b"x")
                self.assertRpcError(cm.exception, grpc.StatusCode.INVALID_ARGUMENT)

    def test_unknown_sandbox_not_found(self):
        sid = "no-such-sandbox-" + new_request_id()[:8]
        with self.assertRaises(grpc.RpcError) as cm:
            self.read("/etc/hostname", sid=sid)
        self.assertRpcError(cm.exception, grpc.StatusCode.NOT_FOUND,
                            reason="CWSANDBOX_SANDBOX_NOT_FOUND")
        with self.assertRaises(grpc.RpcError) as cm:
            self.write("/tmp/x", b"x", sid=sid)
        self.assertRpcError(cm.exception, grpc.StatusCode.NOT_FOUND,
                            reason="CWSANDBOX_SANDBOX_NOT_FOUND")

    # ---- isolation ----

    def assertEscapeRefused(self, err, path):
        """Inside the sandbox the target does not exist: FILE_NOT_FOUND. Also accepted: a
        refusal of the escape (FILE_PERMISSION_DENIED), or INVALID_ARGUMENT for a path that
        itself contains "..". """
        d = details_of(err)
        if d.code == grpc.StatusCode.INVALID_ARGUMENT and ".." in path:
            return
        if d.reason == "CWSANDBOX_FILE_PERMISSION_DENIED":
            self.assertEqual(d.code, grpc.StatusCode.PERMISSION_DENIED, d)
            return
        self.assertRpcError(err, grpc.StatusCode.NOT_FOUND, reason="CWSANDBOX_FILE_NOT_FOUND")

    def test_symlink_inside_the_sandbox_is_followed(self):
        # DESIGN §5 / runtime: paths are resolved inside the sandbox's root, symlinks included
        self.sh(self.sid, "printf 'target data' > /tmp/sl-target; "
                "ln -sfn /tmp/sl-target /tmp/sl-abs; ln -sfn sl-target /tmp/sl-rel; "
                "mkdir -p /tmp/sl-dir; ln -sfn /tmp/sl-dir /tmp/sl-d")
        self.assertEqual(self.read("/tmp/sl-abs"), b"target data")
        self.assertEqual(self.read("/tmp/sl-rel"), b"target data")
        self.write("/tmp/sl-d/f", b"via a directory symlink")
        self.assertEqual(self.sh(self.sid, "cat /tmp/sl-dir/f"), b"via a directory symlink")

    def test_symlinks_do_not_expose_host_files(self):
        # A secret on the host, in the server's state directory (never visible inside).
        secret = b"host-secret-" + secrets.token_hex(16).encode()
        secret_path = os.path.join(self.server.state_dir,
                                   "conformance-secret-" + secrets.token_hex(4))
        with open(secret_path, "wb") as f:
            f.write(secret)
        self.addCleanup(os.unlink, secret_path)
        r = self.exec(self.sid, ["cat", secret_path])
        self.assertNotIn(secret, r.stdout, "the server's state directory is visible inside")
        ups = "../" * 12
        self.sh(self.sid, 'ln -sfn "%s" /tmp/l-abs; ln -sfn "%s%s" /tmp/l-rel; '
                'ln -sfn "%s" /tmp/l-up; ln -sfn /etc/shadow /tmp/l-shadow'
                % (secret_path, ups.rstrip("/"), secret_path, ups.rstrip("/")))
        for path in ("/tmp/l-abs", "/tmp/l-rel", "/tmp/l-up" + secret_path,
                     "/" + ups + secret_path.lstrip("/"), "/tmp/../../.." + secret_path):
            with self.subTest(path=path):
                try:
                    got = self.read(path)
                except grpc.RpcError as e:
                    self.assertEscapeRefused(e, path)
                else:
                    self.assertNotEqual(got, secret, "ReadFile(%s) returned a host file" % path)
                    self.fail("ReadFile(%s) returned %r; inside the sandbox it does not exist"
                              % (path, got[:80]))
        # /etc/shadow through a symlink: what the sandbox itself sees there (which may be a
        # regular file of the image, or hidden, e.g. /dev/null mounted over it), never the host's
        kind = self.exec(self.sid, ["stat", "-L", "-c", "%F", "/etc/shadow"]).stdout.strip()
        inside = self.exec(self.sid, ["cat", "/etc/shadow"])
        try:
            via_link = self.read("/tmp/l-shadow")
        except grpc.RpcError as e:
            via_link = None
            self.assertFalse(kind == b"regular file" and inside.exit_code == 0,
                             "the sandbox reads its /etc/shadow (a regular file) but ReadFile "
                             "through a symlink fails: %r" % details_of(e))
        if via_link is not None:
            self.assertEqual(inside.exit_code, 0)
            self.assertEqual(via_link, inside.stdout,
                             "ReadFile through a symlink differs from the sandbox's own view")
        try:
            with open("/etc/shadow", "rb") as f:
                host = f.read()
        except OSError:
            host = None
        if host and inside.stdout != host:
            self.assertNotEqual(via_link, host, "host /etc/shadow exposed")

    def test_special_file_error_carries_a_file_reason(self):
        # wire notes §9 item 10: file errors carry ErrorInfo with a FILE_* reason and filepath
        try:
            got = self.read("/dev/null")
        except grpc.RpcError as e:
            d = details_of(e)
            self.assertTrue(d.reason and d.reason.startswith("CWSANDBOX_FILE_"),
                            "file error without a CWSANDBOX_FILE_* reason: %r" % (d,))
            self.assertEqual(d.error_info.domain, "cwsandbox.com")
            self.assertEqual(d.error_info.metadata.get("filepath"), "/dev/null")
        else:
            self.assertEqual(got, b"")

    def test_writes_stay_inside_the_sandbox(self):
        name = "cwsconf-" + secrets.token_hex(6)
        host_target = os.path.join(self.server.tmp, name)       # /tmp/cwsconf-xxx/<name>
        self.addCleanup(lambda: os.path.exists(host_target) and os.unlink(host_target))
        self.addCleanup(lambda: os.path.exists("/etc/" + name) and os.unlink("/etc/" + name))
        # a plain write to a path that also exists on the host's root
        try:
            self.write("/etc/" + name, b"inside")
        except grpc.RpcError:
            pass   # a read-only /etc is acceptable; reaching the host's is not
        else:
            self.assertEqual(self.read("/etc/" + name), b"inside")
        self.assertFalse(os.path.exists("/etc/" + name), "WriteFile wrote to the host's /etc")
        # through a symlink pointing at a host path, and through ".."
        self.sh(self.sid, 'ln -sfn "%s" /tmp/w-abs; ln -sfn "%s%s" /tmp/w-rel'
                % (host_target, "../" * 12, host_target.lstrip("/")))
        for path in ("/tmp/w-abs", "/tmp/w-rel", "/tmp/../../../.." + host_target):
            with self.subTest(path=path):
                try:
                    self.write(path, b"escaped")
                except grpc.RpcError:
                    pass   # refusing is fine; writing inside the sandbox is fine too
                self.assertFalse(os.path.exists(host_target),
                                 "WriteFile(%s) created a file on the host" % path)


def details_of(e):
    from cwsconf.client import details
    return details(e)


if __name__ == "__main__":
    unittest.main()
