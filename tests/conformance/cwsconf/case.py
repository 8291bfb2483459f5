"""The unittest base class of the suite: one cwsandbox-local per test class.

setUpClass starts a server on a fresh temporary state directory; tearDownClass deletes every
sandbox, checks from the server that all of them reached a terminal state and are still
readable, stops the server with SIGTERM (exit status 0 expected) and checks from outside that
no process or mount of it is left (cwsconf.server.LocalServer.check_leaks). Any problem there
fails the class ("tearDownClass" error), with the tail of the server's log.

Timeouts are upper bounds for polling loops, never fixed sleeps. Slow builds (sanitizers) can
stretch them with CWS_CONFORMANCE_TIME_SCALE (e.g. 3); lower bounds are never scaled.
"""
import os
import sys
import time
import unittest
import uuid

import grpc

from . import procs
from .client import Client, RequestQueue, details
from .protos import pb
from .server import LocalServer

TIME_SCALE = float(os.environ.get("CWS_CONFORMANCE_TIME_SCALE", "1"))
# shared with child processes of a test (they inherit CWS_CONFORMANCE_RUN_ID)
RUN_ID = os.environ.get("CWS_CONFORMANCE_RUN_ID") or uuid.uuid4().hex[:10]
os.environ["CWS_CONFORMANCE_RUN_ID"] = RUN_ID
RUN_TAG = "cwsconf-" + RUN_ID          # on every sandbox the suite creates
RUN_ENV = "CWS_CONFORMANCE_RUN"        # in the environment of every sandbox and exec
RUN_MARK = "cwsconf-run-" + RUN_ID     # its value: found in /proc/PID/environ by the leak check

# The SDK's default keep-alive main command (wire notes 3.1, PY form).
KEEPALIVE = ["/bin/sh", "-c", 'trap "exit 0" TERM INT; sleep infinity & wait']
# A main command that ignores SIGTERM (the ignore disposition is inherited by `sleep`).
TERM_IGNORING = ["/bin/sh", "-c", 'trap "" TERM INT; while :; do sleep 0.1; done']


def with_marker(argv):
    """argv of a `/bin/sh -c SCRIPT` main command plus a unique $0, so that the process can be
    found in the host's /proc. Returns (argv, marker)."""
    marker = "cwsconf-main-" + uuid.uuid4().hex[:12]
    return list(argv) + [marker], marker


DEFAULT_IMAGE = "python:3.11"          # the SDKs' default; never present in our empty images dir
TERMINAL = frozenset({pb.STATE_COMPLETED, pb.STATE_FAILED, pb.STATE_TERMINATED})
STARTING = frozenset({pb.STATE_CREATING, pb.STATE_PENDING})


def T(seconds):
    """A generous upper bound, stretched by CWS_CONFORMANCE_TIME_SCALE."""
    return seconds * TIME_SCALE


def state_name(v):
    try:
        return pb.State.Name(v)
    except ValueError:
        return "UNKNOWN(%d)" % v


def ts_ns(ts):
    return ts.seconds * 1_000_000_000 + ts.nanos


def now_ns():
    return time.time_ns()


def new_request_id():
    return str(uuid.uuid4())


def unique_tag(label):
    return "%s-%s-%s" % (RUN_TAG, label, uuid.uuid4().hex[:6])


def make_spec(command=None, image=DEFAULT_IMAGE, tags=(), env=None, max_lifetime=None,
              files=None, working_dir=None):
    """A SandboxSpec shaped like the SDKs' (one container "main", primary_container "main")."""
    argv = list(command or KEEPALIVE)
    c = pb.Container(name="main", image=image, command=argv[0], args=argv[1:])
    c.environment_variables[RUN_ENV] = RUN_MARK
    for k, v in (env or {}).items():
        c.environment_variables[k] = v
    for path, content in (files or {}).items():
        c.files.add(path=path, content=content)
    if working_dir:
        c.working_dir = working_dir
    spec = pb.SandboxSpec(containers=[c], primary_container="main", tags=[RUN_TAG] + list(tags))
    if max_lifetime is not None:
        spec.max_lifetime_seconds = max_lifetime
    return spec


class ServerTestCase(unittest.TestCase):
    """Base class: a running server (cls.server) and a Unix-socket client (cls.client)."""

    server = None
    client = None
    _created = None
    _had_failure = False

    # ---- class fixture ----

    @classmethod
    def setUpClass(cls):
        cls._created = []
        cls._had_failure = False
        cls.server = LocalServer()
        try:
            cls.server.start()
            cls.client = Client(cls.server.unix_target)
        except BaseException:
            cls.server.cleanup(keep=True)
            raise
        try:
            cls.setUpFixture()
        except BaseException:
            # unittest does not call tearDownClass when setUpClass fails: do it here, so the
            # server is stopped and leaks are still looked for.
            cls._had_failure = True
            try:
                cls.tearDownClass()
            except AssertionError as e:
                sys.stderr.write("%s\n" % e)
            raise

    @classmethod
    def setUpFixture(cls):
        """Override to create what every test of the class shares (server already up)."""

    @classmethod
    def tearDownClass(cls):
        problems = []
        try:
            if cls.server.alive():
                problems += cls.delete_everything()
        except Exception as e:  # report, then still stop the server and look for leaks
            problems.append("cleanup through the API failed: %r" % (e,))
        finally:
            if cls.client is not None:
                cls.client.close()
                cls.client = None
            try:
                cls.server.stop(expect_status=0)
            except AssertionError as e:
                problems.append(str(e))
            problems += cls.server.check_leaks(RUN_MARK)
            keep = bool(problems) or cls._had_failure
            if keep:
                sys.stderr.write("\n%s: server directory kept: %s\n%s\n" % (
                    cls.__name__, cls.server.tmp, cls.server.log_tail(120)))
            cls.server.cleanup(keep=keep)
        if problems:
            raise AssertionError("%s: after deleting every sandbox and stopping the server:\n  %s"
                                 % (cls.__name__, "\n  ".join(problems)))

    @classmethod
    def delete_everything(cls, timeout=None):
        """Delete every sandbox of the server (grace 0), wait until all are terminal, and check
        that every sandbox this class created is still readable. Returns problems found."""
        problems = []
        c = cls.client
        everything = list_all(c, show_terminated=True)
        for sb in everything:
            if sb.status.state not in TERMINAL:
                try:
                    c.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sb.sandbox_id,
                                                            grace_period_seconds=0))
                except grpc.RpcError as e:
                    problems.append("DeleteSandbox(%s) failed: %r" % (sb.sandbox_id, details(e)))
        deadline = time.monotonic() + (timeout or T(20))
        while True:
            left = [sb for sb in list_all(c, show_terminated=True)
                    if sb.status.state not in TERMINAL]
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        for sb in left:
            problems.append("sandbox %s still %s %.0fs after DeleteSandbox(grace 0)"
                            % (sb.sandbox_id, state_name(sb.status.state), timeout or T(20)))
        for sid in cls._created:
            try:
                sb = c.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid))
                if sb.status.state not in TERMINAL and sid not in {x.sandbox_id for x in left}:
                    problems.append("GetSandbox(%s) says %s after everything was deleted"
                                    % (sid, state_name(sb.status.state)))
            except grpc.RpcError as e:
                problems.append("sandbox %s no longer readable at the end: %r" % (sid, details(e)))
        return problems

    def tearDown(self):
        # A crash is blamed on the test during which it happened, with the server's log.
        p = self.server.proc if self.server else None
        if p is not None and p.poll() is not None:
            self.fail("cwsandbox-local died during this test (exit status %s)\n%s"
                      % (p.returncode, self.server.log_tail()))

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            type(self)._had_failure = True
        return out

    # ---- sandboxes ----

    @classmethod
    def create(cls, spec=None, request_id=None, client=None, **spec_kw):
        """CreateSandbox; returns the response Sandbox and remembers the id."""
        spec = spec if spec is not None else make_spec(**spec_kw)
        req = pb.CreateSandboxRequest(sandbox=pb.Sandbox(spec=spec),
                                      request_id=request_id or new_request_id())
        sb = (client or cls.client).CreateSandbox(req)
        if sb.sandbox_id and sb.sandbox_id not in cls._created:
            cls._created.append(sb.sandbox_id)
        return sb

    @classmethod
    def get(cls, sid, client=None):
        return (client or cls.client).GetSandbox(pb.GetSandboxRequest(sandbox_id=sid))

    @classmethod
    def delete(cls, sid, grace=0, allow_missing=False, client=None):
        return (client or cls.client).DeleteSandbox(pb.DeleteSandboxRequest(
            sandbox_id=sid, grace_period_seconds=grace, allow_missing=allow_missing))

    @classmethod
    def wait_state(cls, sid, until, timeout, interval=0.02):
        """Poll GetSandbox until `until(sandbox)` (or state in the set `until`).
        Returns (sandbox, [states seen, in order, consecutive duplicates dropped])."""
        pred = until if callable(until) else (lambda sb: sb.status.state in until)
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            sb = cls.get(sid)
            if not seen or seen[-1] != sb.status.state:
                seen.append(sb.status.state)
            if pred(sb):
                return sb, seen
            if time.monotonic() >= deadline:
                raise AssertionError(
                    "sandbox %s: condition not reached within %.1fs; states seen %s; "
                    "state_reason %r" % (sid, timeout, [state_name(s) for s in seen],
                                         sb.status.state_reason))
            time.sleep(interval)

    @classmethod
    def wait_running(cls, sid, timeout=None):
        sb, seen = cls.wait_state(sid, {pb.STATE_RUNNING} | TERMINAL, timeout or T(20))
        if sb.status.state != pb.STATE_RUNNING:
            raise AssertionError("sandbox %s ended instead of running: %s exit_code=%s reason %r"
                                 % (sid, state_name(sb.status.state),
                                    sb.status.exit_code if sb.status.HasField("exit_code")
                                    else None, sb.status.state_reason))
        return sb

    @classmethod
    def wait_terminal(cls, sid, timeout=None):
        return cls.wait_state(sid, TERMINAL, timeout or T(20))[0]

    @classmethod
    def create_running(cls, **kw):
        sb = cls.create(**kw)
        return cls.wait_running(sb.sandbox_id)

    @classmethod
    def create_trapped(cls, command=None, **kw):
        """A running sandbox whose main shell (KEEPALIVE by default, or TERM_IGNORING) has
        already run its `trap`: RUNNING only says the command started, and a SIGTERM that
        arrives before the shell's trap would kill it with 143 and make the test flaky.
        Seen from outside: its SigCgt (trap cmd) or SigIgn (trap "") has SIGTERM."""
        command = command or KEEPALIVE
        argv, marker = with_marker(command)
        sb = cls.create_running(command=argv, **kw)
        field = "SigIgn" if 'trap ""' in command[2] else "SigCgt"
        if procs.wait_disposition(marker, 15, field, T(5)) is None:
            raise AssertionError("the main command of %s never installed its SIGTERM trap "
                                 "(process %s not found with it in %s)" % (sb.sandbox_id, marker,
                                                                          field))
        return sb

    def cleanup_delete(self, sid):
        """Delete sid (grace 0, errors ignored) when the current test ends."""
        def _d():
            try:
                self.delete(sid, grace=0, allow_missing=True)
            except grpc.RpcError:
                pass
        self.addCleanup(_d)

    # ---- commands ----

    @classmethod
    def exec(cls, sid, argv, env=None, max_output_bytes=0, timeout=None, client=None):
        e = {RUN_ENV: RUN_MARK}
        e.update(env or {})
        return (client or cls.client).Exec(
            pb.ExecRequest(sandbox_id=sid, command=list(argv), env=e,
                           max_output_bytes=max_output_bytes), timeout=timeout or T(30))

    @classmethod
    def sh(cls, sid, script, **kw):
        """Run /bin/sh -c script; fail unless it exits 0; returns stdout bytes."""
        r = cls.exec(sid, ["/bin/sh", "-c", script], **kw)
        if r.exit_code != 0:
            raise AssertionError("exec %r exited %d: stdout %r stderr %r"
                                 % (script, r.exit_code, r.stdout[:500], r.stderr[:500]))
        return r.stdout

    @classmethod
    def stream_exec(cls, sid, argv, tty=False, width=0, height=0, timeout=None, extra=(),
                    half_close=False, client=None, env=None):
        """Open a StreamExec call with init as the first request.
        Returns (RequestQueue, response call)."""
        e = {RUN_ENV: RUN_MARK}
        e.update(env or {})
        init = pb.ExecStreamRequest(init=pb.ExecStreamInit(
            sandbox_id=sid, command=list(argv), tty=tty, tty_width=width, tty_height=height,
            env=e))
        reqs = RequestQueue(init, *extra)
        if half_close:
            reqs.half_close()
        call = (client or cls.client).StreamExec(iter(reqs), timeout=timeout or T(60))
        return reqs, call

    # ---- assertions ----

    def assertRpcError(self, err, code, reason=None, metadata=None, domain="cwsandbox.com"):
        """err is a grpc.RpcError with `code`; with reason, an ErrorInfo{reason, domain} (and
        the given metadata items) in grpc-status-details-bin. Returns the ErrorDetails."""
        self.assertIsInstance(err, grpc.RpcError)
        d = details(err)
        self.assertEqual(d.code, code, "want %s, got %r" % (code.name, d))
        if d.status is not None:
            self.assertEqual(d.status.code, code.value[0],
                             "google.rpc.Status.code in grpc-status-details-bin disagrees with "
                             "grpc-status: %r" % (d,))
        if reason is not None:
            self.assertIsNotNone(d.status, "no grpc-status-details-bin trailer: %r" % (d,))
            self.assertEqual(d.reason, reason, "ErrorInfo reason: %r" % (d,))
            self.assertEqual(d.error_info.domain, domain, "ErrorInfo domain: %r" % (d,))
            for k, v in (metadata or {}).items():
                self.assertIn(k, d.error_info.metadata, "ErrorInfo metadata %r: %r" % (k, d))
                if v is not None:
                    self.assertEqual(d.error_info.metadata[k], v, "ErrorInfo metadata %r" % k)
        return d

    def expectRpcError(self, fn, *args, code, reason=None, metadata=None, **kw):
        """Call fn(*args, **kw), which must fail as assertRpcError describes."""
        with self.assertRaises(grpc.RpcError) as cm:
            r = fn(*args, **kw)
            if hasattr(r, "__iter__") and not isinstance(r, (bytes, str)):
                list(r)  # a streaming call: the error arrives while reading
        return self.assertRpcError(cm.exception, code, reason=reason, metadata=metadata)

    def assertGone(self, token, timeout, what="process"):
        left = procs.wait_gone(token, timeout)
        if left:
            self.fail("%s still alive %.1fs later:\n  %s"
                      % (what, timeout, "\n  ".join(procs.describe(p) for p in left)))


def list_all(client, page_size=0, max_pages=100, **kw):
    """Every sandbox matching the filters, following next_page_token."""
    out, token, seen_tokens = [], "", set()
    for _ in range(max_pages):
        r = client.ListSandboxes(pb.ListSandboxesRequest(page_size=page_size, page_token=token,
                                                         **kw))
        out.extend(r.sandboxes)
        token = r.next_page_token
        if not token:
            return out
        if token in seen_tokens:
            raise AssertionError("ListSandboxes repeated page token %r" % token)
        seen_tokens.add(token)
    raise AssertionError("ListSandboxes: more than %d pages" % max_pages)


def exec_stream_collect(test, call, timeout):
    """Read a StreamExec response stream to its end. Returns dict with keys: kinds (list of
    oneof names in order), stdout, stderr, other (bytes of outputs with another stream value),
    exits (list of ExecStreamExit), errors (list of ExecStreamError), status (OK or the error)."""
    r = {"kinds": [], "stdout": b"", "stderr": b"", "other": b"", "exits": [], "errors": [],
         "status": grpc.StatusCode.OK, "rpc_error": None}
    deadline = time.monotonic() + timeout
    try:
        for m in call:
            kind = m.WhichOneof("message")
            r["kinds"].append(kind)
            if kind == "output":
                if m.output.stream == pb.ExecStreamOutput.STREAM_STDOUT:
                    r["stdout"] += m.output.data
                elif m.output.stream == pb.ExecStreamOutput.STREAM_STDERR:
                    r["stderr"] += m.output.data
                else:
                    r["other"] += m.output.data
            elif kind == "exit":
                r["exits"].append(m.exit)
            elif kind == "error":
                r["errors"].append(m.error)
            if time.monotonic() > deadline:
                call.cancel()
                test.fail("StreamExec still running after %.1fs" % timeout)
    except grpc.RpcError as e:
        r["status"] = e.code()
        r["rpc_error"] = e
    return r
