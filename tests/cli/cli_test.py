#!/usr/bin/python3
"""Tests of the cwsandbox CLI: the built binary, run as a real process against the real daemon
(started on demand by the library from $CWSANDBOXD, in a private XDG/HOME tree) and the real
local backend it starts ($CWSANDBOX_LOCAL_PATH).

    cli_test.py basic       usage, help, version, daemon, auth, errors, closed pipes
    cli_test.py sandboxes   everything that needs the daemon's sandbox methods
    cli_test.py sessions    session open/close/ls/show and sandboxes in sessions

Environment: CWS_CLI (the cwsandbox binary), CWSANDBOXD, CWSANDBOX_LOCAL_PATH.
Python standard library only.
"""
import datetime
import fcntl
import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest
import uuid

CLI = os.environ.get("CWS_CLI", "")
TIMEOUT = 120  # no single command may take longer: a hang fails the test

# Every command and subcommand: each must have help.
COMMANDS = [
    "run", "ls", "get", "exec", "sh", "logs", "cp", "files read", "files write", "stop",
    "delete", "purge", "session open", "session close", "session ls", "session show",
    "daemon status", "daemon start", "daemon stop", "auth status", "version", "help",
]
GROUPS = ["files", "session", "daemon", "auth"]
OFFICIAL_KEYS = ["sandbox_id", "status", "runner_id", "runner_group_id", "started_at"]


class Env:
    """A private home for one daemon: its socket, state and config live in a temporary tree."""

    def __init__(self, extra=None):
        daemon, local = os.environ["CWSANDBOXD"], os.environ["CWSANDBOX_LOCAL_PATH"]
        self.root = tempfile.mkdtemp(prefix="cwscli-")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CWSANDBOX_", "WANDB_", "XDG_"))}
        for d in ("run", "state", "config", "home"):
            os.makedirs(os.path.join(self.root, d), mode=0o700)
        env.update({
            "XDG_RUNTIME_DIR": os.path.join(self.root, "run"),
            "XDG_STATE_HOME": os.path.join(self.root, "state"),
            "XDG_CONFIG_HOME": os.path.join(self.root, "config"),
            "HOME": os.path.join(self.root, "home"),
            "CWSANDBOXD": daemon,
            "CWSANDBOX_LOCAL_PATH": local,
            "LC_ALL": "C.UTF-8",
        })
        env.update(extra or {})
        self.env = env

    def run(self, *args, input=None, timeout=TIMEOUT, check=None, env=None, **kw):
        """Run cwsandbox ARGS (in self.env, or env); returns the CompletedProcess (stdout and
        stderr as bytes)."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        if input is None and "stdin" not in kw:
            kw["stdin"] = subprocess.DEVNULL
        p = subprocess.run([CLI, *args], input=input, env=env or self.env, timeout=timeout, **kw)
        if check is not None and p.returncode != check:
            raise AssertionError("cwsandbox %s: exit %d, expected %d\nstdout: %r\nstderr: %r" % (
                " ".join(args), p.returncode, check, p.stdout, p.stderr))
        return p

    def out(self, *args, **kw):
        """Run, expect success, return stdout as text."""
        return self.run(*args, check=0, **kw).stdout.decode()

    def close(self):
        try:
            status = self.run("daemon", "status", "--no-start", "-o", "json")
            stopped = self.run("daemon", "stop", "--timeout", "60", timeout=90)
            if status.returncode == 0 and stopped.returncode != 0:
                # Not a cwsandboxd (the client library's test daemon): end it ourselves.
                os.kill(json.loads(status.stdout)["pid"], signal.SIGTERM)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def closed_pipe():
    """A pipe's write end whose read end is already closed."""
    r, w = os.pipe()
    os.close(r)
    return w


def run_in_pty(env, args, script, cols=80, rows=24, timeout=60):
    """Run cwsandbox ARGS on a new pseudo-terminal; script(fd, pid, read) drives it.
    Returns (exit status, termios of the terminal after the exit)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(CLI, [CLI, *args], env.env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read(until=None, secs=10.0):
        out, end = b"", time.time() + secs
        while time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                try:
                    d = os.read(fd, 65536)
                except OSError:
                    break
                if not d:
                    break
                out += d
                if until is not None and re.search(until, out):
                    break
        return out

    try:
        script(fd, pid, read)
        deadline = time.time() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.time() > deadline:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError("cwsandbox %s did not exit on its terminal" % args)
            read(secs=0.05)
        attrs = termios.tcgetattr(fd)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), attrs


def poll(predicate, secs, what):
    """predicate()'s first true value, asked every 0.1 s until secs have passed."""
    end = time.monotonic() + secs
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("%s: not in %g s" % (what, secs))
        time.sleep(0.1)


TERMINAL = ("completed", "failed", "terminated")
ORPHAN_GRACE_S = 5  # the daemon's default orphan_grace_s


def assert_usage_error(test, p, message):
    test.assertEqual(p.returncode, 2, p.stderr)
    err = p.stderr.decode()
    test.assertIn("Usage: cwsandbox", err)
    test.assertRegex(err, r"(?m)^Error: .+")
    test.assertIn(message, err)
    test.assertEqual(p.stdout, b"")


class BasicTests(unittest.TestCase):
    """What works with a daemon that only answers hello and daemon.status."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    # ---- usage errors ----

    def test_no_command_is_a_usage_error(self):
        p = self.env.run()
        self.assertEqual(p.returncode, 2)
        self.assertIn("Commands:", p.stderr.decode())

    def test_unknown_command(self):
        assert_usage_error(self, self.env.run("frobnicate"), "no such command: frobnicate")

    def test_unknown_subcommand(self):
        assert_usage_error(self, self.env.run("files", "erase"), "no such subcommand: erase")

    def test_group_without_subcommand(self):
        for group in GROUPS:
            p = self.env.run(group)
            self.assertEqual(p.returncode, 2, group)
            self.assertIn("Subcommands:", p.stderr.decode(), group)

    def test_unknown_options(self):
        for cmd in COMMANDS:
            if cmd == "help":
                continue
            p = self.env.run(*cmd.split(), "--no-such-flag")
            assert_usage_error(self, p, "no such option: --no-such-flag")

    def test_missing_and_extra_arguments(self):
        cases = [
            (["get"], "missing argument: SANDBOX_ID"),
            (["get", "a", "b"], "unexpected extra argument 'b'"),
            (["exec"], "missing arguments: SANDBOX_ID COMMAND"),
            (["exec", "sbx-1"], "missing argument: COMMAND"),
            (["sh"], "missing argument: SANDBOX_ID"),
            (["logs"], "missing argument: SANDBOX_ID"),
            (["cp"], "missing arguments: SRC DST"),
            (["cp", "a"], "missing argument: DST"),
            (["files", "read", "sbx-1"], "missing argument: REMOTE_PATH"),
            (["files", "write", "sbx-1"], "missing arguments: REMOTE_PATH LOCAL_PATH"),
            (["files", "write", "sbx-1", "/x"], "missing argument: LOCAL_PATH"),
            (["stop"], "missing argument: SANDBOX_ID"),
            (["delete"], "missing argument: SANDBOX_ID"),
            (["ls", "extra"], "unexpected extra argument 'extra'"),
            (["session", "close"], "missing argument: NAME"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                assert_usage_error(self, self.env.run(*args), message)

    def test_bad_values(self):
        cases = [
            (["ls", "-s", "sleeping"], "--status must be one of"),
            (["ls", "-o", "yaml"], "--output must be 'table' or 'json', not 'yaml'"),
            (["get", "sbx-1", "-o", "xml"], "--output must be"),
            (["logs", "sbx-1", "--tail", "-3"], "--tail must be an integer"),
            (["logs", "sbx-1", "--tail", "many"], "--tail must be an integer"),
            (["logs", "sbx-1", "--since", "yesterday"], "--since must be a time"),
            (["exec", "--timeout", "soon", "sbx-1", "true"], "--timeout must be"),
            (["exec", "--cwd", "relative", "sbx-1", "true"], "--cwd must be an absolute path"),
            (["exec", "-e", "NOVALUE", "sbx-1", "true"], "--env needs NAME=VALUE"),
            (["stop", "sbx-1", "--graceful-shutdown-seconds", "x"],
             "--graceful-shutdown-seconds must be"),
            (["run", "--env", "=x"], "--env needs NAME=VALUE"),
            (["run", "--lifetime", "forever"], "--lifetime must be"),
            (["run", "--gpu", "lots"], "--gpu COUNT[:TYPE] must be an integer"),
            (["run", "--mount-file", "nocolon"], "--mount-file needs LOCAL:/absolute/path"),
            (["run", "--mount-file", "/nonexistent/file:/x"], "cannot open /nonexistent/file"),
            (["run", "--rm"], "--rm needs a command"),
            (["run", "--rm", "-d", "--", "true"], "cannot go together"),
            (["run", "--cpu"], "option '--cpu' needs a value"),
            (["exec", "--cwd"], "option '--cwd' needs a value"),
            (["ls", "-s"], "option '-s' needs a value"),
            (["ls", "--all=yes"], "option '--all' takes no value"),
            (["ls", "-qZ"], "no such option: -Z"),
            (["cp", "a", "b"], "one of SRC and DST must be in a sandbox"),
            (["cp", "-", "-"], "one of SRC and DST must be in a sandbox"),
            (["cp", "sbx-1:relative", "x"], "must be absolute"),
            (["files", "write", "sbx-1", "/x", "/nonexistent/local"], "cannot read LOCAL_PATH"),
            (["purge"], "give at least one --tag"),
            (["purge", "--dry-run"], "give at least one --tag"),
            (["sh", "sbx-1", "--cmd", "'unbalanced"], "--cmd must be"),
            (["--socket"], "option '--socket' needs a value"),
            (["--bogus", "ls"], "no such option: --bogus"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                assert_usage_error(self, self.env.run(*args), message)

    # ---- help ----

    def test_help_for_every_command(self):
        for cmd in COMMANDS:
            words = cmd.split()
            for args in (["help", *words], [*words, "--help"], [*words, "-h"]):
                with self.subTest(args=args):
                    p = self.env.run(*args, check=0)
                    out = p.stdout.decode()
                    self.assertTrue(out.startswith("Usage: cwsandbox " + cmd), out)
                    self.assertIn("-h, --help" if cmd != "help" else "Usage", out)
                    self.assertEqual(p.stderr, b"")

    def test_help_lists_every_command(self):
        out = self.env.out("help")
        listed = re.findall(r"(?m)^  (\w+)  ", out.split("Commands:")[1])
        self.assertEqual(sorted(listed), sorted({c.split()[0] for c in COMMANDS}))
        for group in GROUPS:
            out = self.env.out("help", group)
            subs = re.findall(r"(?m)^  (\w+)  ", out.split("Subcommands:")[1])
            self.assertEqual(sorted(subs),
                             sorted(c.split()[1] for c in COMMANDS if c.startswith(group + " ")))

    def test_help_of_unknown_command(self):
        assert_usage_error(self, self.env.run("help", "nope"), "no such command: nope")

    def test_top_level_help(self):
        for args in (["--help"], ["-h"], ["help"]):
            out = self.env.out(*args)
            self.assertIn("Commands:", out)
            self.assertIn("--socket PATH", out)

    # ---- version ----

    def test_version_flag(self):
        self.assertRegex(self.env.out("--version"), r"^cwsandbox, version \d+\.\d+\.\d+\n$")

    def test_version_without_daemon(self):
        env = Env()  # fresh: no daemon runs there, and version must not start one
        try:
            out = env.out("version")
            self.assertRegex(out, r"(?m)^cwsandbox \d+\.\d+\.\d+$")
            self.assertRegex(out, r"(?m)^libcwsandbox-client \d+\.\d+\.\d+ \(protocol 1\)$")
            self.assertIn("cwsandboxd not running", out)
            self.assertFalse(os.path.exists(os.path.join(env.root, "run/cwsandbox/cwsandboxd.sock")))
            doc = json.loads(env.out("version", "-o", "json"))
            self.assertIsNone(doc["daemon"])
            self.assertEqual(doc["protocol"], 1)
        finally:
            env.close()

    def test_version_with_daemon(self):
        self.env.out("daemon", "start")
        self.assertRegex(self.env.out("version"), r"(?m)^cwsandboxd/\d+\.\d+\.\d+ \(protocol 1, pid \d+\)$")
        doc = json.loads(self.env.out("version", "-o", "json"))
        self.assertRegex(doc["daemon"], r"^cwsandboxd/")
        self.assertEqual(doc["daemon_protocol"], 1)

    # ---- daemon ----

    def test_daemon_status_table(self):
        out = self.env.out("daemon", "status")
        self.assertRegex(out, r"(?m)^Daemon +cwsandboxd/\S+ \(pid \d+, protocol 1\)$")
        self.assertRegex(out, r"(?m)^Backend +local ")
        self.assertRegex(out, r"(?m)^Auth +none \(source: none\)$")
        self.assertIn(os.path.join(self.env.root, "run/cwsandbox/cwsandboxd.sock"), out)

    def test_daemon_status_json(self):
        doc = json.loads(self.env.out("daemon", "status", "-o", "json"))
        self.assertIs(doc["running"], True)
        self.assertRegex(doc["daemon"], r"^cwsandboxd/\d")
        for key in ("pid", "uptime_ms", "clients", "sessions", "sandboxes", "calls_in_flight"):
            self.assertIsInstance(doc[key], int, key)
        self.assertGreaterEqual(doc["clients"], 1)
        self.assertEqual(doc["backend"]["kind"], "local")
        self.assertEqual(doc["auth"], {"strategy": "none", "source": "none"})
        self.assertEqual(doc["socket"], os.path.join(self.env.root, "run/cwsandbox/cwsandboxd.sock"))
        os.kill(doc["pid"], 0)  # that process exists

    def test_daemon_status_no_start_fails_without_daemon(self):
        env = Env()
        try:
            p = env.run("daemon", "status", "--no-start", check=1)
            self.assertRegex(p.stderr.decode(), r"^Error: .*cwsandboxd.*\n$")
            self.assertEqual(p.stdout, b"")
        finally:
            env.close()

    def test_daemon_start_stop(self):
        env = Env()
        try:
            out = env.out("daemon", "start")
            pid = int(re.search(r"pid (\d+)", out).group(1))
            os.kill(pid, 0)
            self.assertEqual(env.out("daemon", "stop"), "Stopped cwsandboxd (pid %d).\n" % pid)
            try:
                with open("/proc/%d/stat" % pid) as f:
                    state = f.read().rsplit(") ", 1)[1][0]
                self.assertEqual(state, "Z")  # gone, or a zombie waiting for its reaper
            except FileNotFoundError:
                pass
            self.assertEqual(env.out("daemon", "stop"), "cwsandboxd is not running.\n")
        finally:
            env.close()

    # ---- auth ----

    def test_auth_status(self):
        out = self.env.out("auth", "status")
        self.assertRegex(out, r"(?m)^Strategy +none$")
        self.assertRegex(out, r"(?m)^Source +none$")
        doc = json.loads(self.env.out("auth", "status", "-o", "json"))
        self.assertEqual((doc["strategy"], doc["source"], doc["backend"]), ("none", "none", "local"))

    def test_auth_status_never_shows_the_secret(self):
        secret = "sk-test-" + uuid.uuid4().hex
        env = Env({"CWSANDBOX_API_KEY": secret})
        try:
            for args in (["auth", "status"], ["auth", "status", "-o", "json"],
                         ["daemon", "status", "-o", "json"]):
                p = env.run(*args, check=0)
                self.assertNotIn(secret.encode(), p.stdout + p.stderr)
            doc = json.loads(env.out("auth", "status", "-o", "json"))
            self.assertEqual((doc["strategy"], doc["source"]), ("api_key", "CWSANDBOX_API_KEY"))
        finally:
            env.close()

    def test_json_escaping(self):
        # The socket path comes back in daemon status: quotes, backslash, control characters,
        # UTF-8 and a byte that is not UTF-8 must all give valid JSON.
        env = Env()
        try:
            weird = os.path.join(env.root.encode(), b'q"uote\\back\tslash\x01-\xc3\xa9\xe2\x98\x83-\xff')
            os.mkdir(weird, 0o700)
            sock = os.path.join(weird, b"d.sock")
            p = subprocess.run([CLI, b"--socket", sock, b"daemon", b"status", b"-o", b"json"],
                               env=env.env, capture_output=True, timeout=TIMEOUT)
            self.assertEqual((p.returncode, p.stderr), (0, b""))
            self.assertIn(b"\\u0001", p.stdout)
            doc = json.loads(p.stdout)
            self.assertEqual(doc["socket"], sock[:-7].decode(errors="replace") + "/d.sock")
            subprocess.run([CLI, b"--socket", sock, b"daemon", b"stop"], env=env.env,
                           capture_output=True, timeout=TIMEOUT)
        finally:
            env.close()

    # ---- failures ----

    def test_failing_call_is_error_and_exit_1(self):
        # Whether or not the daemon serves sandbox methods yet, this fails, with one line.
        p = self.env.run("get", "sbx-does-not-exist-" + uuid.uuid4().hex[:8], check=1)
        self.assertRegex(p.stderr.decode(), r"^Error: \S.*\n$")
        self.assertEqual(p.stdout, b"")

    def test_unreachable_socket(self):
        sock = os.path.join(self.env.root, "nowhere", "d.sock")
        p = self.env.run("--socket", sock, "daemon", "status", "--no-start", check=1)
        self.assertRegex(p.stderr.decode(), r"^Error: .+\n$")

    # ---- stdout closed under us ----

    def test_closed_stdout_is_a_quiet_success(self):
        self.env.out("daemon", "start")
        for args in (["help"], ["daemon", "status", "-o", "json"], ["version"],
                     ["auth", "status"], ["help", "run"]):
            w = closed_pipe()
            try:
                p = self.env.run(*args, stdout=w, timeout=20)
            finally:
                os.close(w)
            self.assertEqual(p.returncode, 0, args)
            self.assertEqual(p.stderr, b"", args)

    def test_pipe_to_head(self):
        # `set -o pipefail; cwsandbox help | head -1`: cwsandbox itself exits 0.
        p = subprocess.run(["/bin/bash", "-c", 'set -o pipefail; "$0" help | head -1', CLI],
                           env=self.env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20)
        self.assertEqual((p.returncode, p.stderr), (0, b""))
        self.assertEqual(p.stdout, b"Usage: cwsandbox [--socket PATH] COMMAND [ARGS]...\n")
        r, w = os.pipe()
        proc = subprocess.Popen([CLI, "help"], stdout=w, stderr=subprocess.PIPE, env=self.env.env)
        os.close(w)
        os.read(r, 10)
        os.close(r)
        _, err = proc.communicate(timeout=20)
        self.assertEqual((proc.returncode, err), (0, b""))


class SandboxTests(unittest.TestCase):
    """What needs the daemon's sandbox methods (label needs-sandboxes)."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.tag = "cli-test-" + uuid.uuid4().hex[:12]
        cls.id = cls.env.out("run", "--tag", cls.tag).strip()
        cls.daemon_pid = cls.daemon_status()["pid"]

    @classmethod
    def daemon_status(cls):
        return json.loads(cls.env.out("daemon", "status", "-o", "json"))

    @classmethod
    def tearDownClass(cls):
        try:
            # A daemon that died meanwhile was restarted by the next command: say so plainly.
            pid = cls.daemon_status()["pid"]
            cls.env.run("purge", "-t", cls.tag)
            if pid != cls.daemon_pid:
                raise AssertionError("cwsandboxd (pid %d) died during the tests and pid %d "
                                     "replaced it" % (cls.daemon_pid, pid))
        finally:
            cls.env.close()

    def exec_out(self, *cmd, **kw):
        return self.env.out("exec", self.id, "--", *cmd, **kw)

    # ---- run ----

    def test_run_prints_a_running_sandbox(self):
        sid = self.env.out("run", "--tag", self.tag).strip()
        self.assertRegex(sid, r"^sbx-[0-9a-z-]+$")
        doc = json.loads(self.env.out("get", sid, "-o", "json"))
        self.assertEqual(doc["sandbox_id"], sid)
        self.assertEqual(doc["status"], "running")
        self.assertIn(self.tag, doc["tags"])
        self.assertEqual(doc["owner"], "detached")

    def test_run_rm_propagates_the_exit_code(self):
        tag = "rm-" + uuid.uuid4().hex[:8]
        p = self.env.run("run", "--rm", "--tag", self.tag, "--tag", tag, "--",
                         "sh", "-c", "echo to-out; echo to-err >&2; exit 7")
        self.assertEqual(p.returncode, 7, p.stderr)
        self.assertIn(b"to-out\n", p.stdout)
        self.assertIn(b"to-err\n", p.stdout)  # the log holds both streams
        self.assertEqual(p.stderr, b"")
        self.assertEqual(json.loads(self.env.out("ls", "-t", tag, "-o", "json")), [])
        self.assertEqual(self.env.run("run", "--rm", "--tag", self.tag, "--", "true").returncode, 0)

    def test_run_attached_keeps_the_sandbox(self):
        tag = "kept-" + uuid.uuid4().hex[:8]
        p = self.env.run("run", "--tag", self.tag, "--tag", tag, "-e", "GREETING=hi there",
                         "--", "sh", "-c", 'echo "$GREETING"; exit 3')
        self.assertEqual((p.returncode, p.stdout), (3, b"hi there\n"))
        (sb,) = json.loads(self.env.out("ls", "-a", "-t", tag, "-o", "json"))
        self.assertEqual(sb["returncode"], 3)
        self.assertIn(sb["status"], ("completed", "failed"))

    def test_run_detached_with_command(self):
        sid = self.env.out("run", "-d", "--tag", self.tag, "--", "sh", "-c", "echo detached").strip()
        self.assertRegex(sid, r"^sbx-")
        self.assertIn("detached", self.wait_logs(sid, "detached"))

    def test_run_mount_file(self):
        local = os.path.join(self.env.root, "mounted.txt")
        with open(local, "w") as f:
            f.write("mounted content\n")
        p = self.env.run("run", "--rm", "--tag", self.tag, "--mount-file", local + ":/etc/cws-m.txt",
                         "--", "cat", "/etc/cws-m.txt", check=0)
        self.assertEqual(p.stdout, b"mounted content\n")

    def test_run_interrupted_removes_the_sandbox(self):
        tag = "int-" + uuid.uuid4().hex[:8]
        proc = subprocess.Popen([CLI, "run", "--rm", "--tag", self.tag, "--tag", tag, "--",
                                 "sleep", "300"], env=self.env.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.wait_for(lambda: json.loads(self.env.out("ls", "-t", tag, "-o", "json")))
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130)
        self.wait_for(lambda: not json.loads(self.env.out("ls", "-t", tag, "-o", "json")))

    def test_daemon_status_shows_an_orphan(self):
        tag = "orphan-" + uuid.uuid4().hex[:8]
        proc = subprocess.Popen([CLI, "run", "--rm", "--tag", self.tag, "--tag", tag, "--",
                                 "sleep", "100"], env=self.env.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            (sb,) = poll(lambda: json.loads(self.env.out("ls", "-t", tag, "-o", "json")), 60,
                         "the sandbox of run --rm")
        finally:
            proc.kill()
            proc.wait(timeout=30)
        sid = sb["sandbox_id"]
        killed = time.time()

        def reaped():
            doc = self.daemon_status()
            return [o for o in doc["orphans"] if o["sandbox_id"] == sid]
        (orphan,) = poll(reaped, ORPHAN_GRACE_S + 10, "%s in daemon status's orphans" % sid)
        self.assertEqual(orphan["reason"], "its client went away")
        reaped_at = datetime.datetime.fromisoformat(orphan["reaped_at"])
        self.assertEqual(reaped_at.utcoffset(), datetime.timedelta(0))
        self.assertLess(abs(reaped_at.timestamp() - killed), ORPHAN_GRACE_S + 10)
        table = self.env.out("daemon", "status")
        self.assertRegex(table, r"(?m)^Orphans +\d+ stopped(?: \(the last 20 below\))?, \d+ waiting$")
        self.assertRegex(table, r"(?m)^ +%s +stopped \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  "
                                r"its client went away$" % re.escape(sid))
        self.assertIn(json.loads(self.env.out("get", sid, "-o", "json"))["status"],
                      TERMINAL + ("terminating",))

    # ---- ls, get ----

    def test_ls_json(self):
        doc = json.loads(self.env.out("ls", "-o", "json"))
        self.assertIsInstance(doc, list)
        (mine,) = [s for s in doc if s["sandbox_id"] == self.id]
        for key in OFFICIAL_KEYS:
            self.assertIn(key, mine)
        self.assertEqual(mine["status"], "running")
        self.assertIsNone(mine["runner_group_id"])
        started = datetime.datetime.fromisoformat(mine["started_at"])
        self.assertEqual(started.utcoffset(), datetime.timedelta(0))
        self.assertLess(abs(time.time() - started.timestamp()), 3600)

    def test_ls_filters(self):
        ids = [s["sandbox_id"] for s in json.loads(self.env.out("ls", "-t", self.tag, "-o", "json"))]
        self.assertIn(self.id, ids)
        self.assertEqual(json.loads(self.env.out("ls", "-t", "no-such-tag-" + self.tag, "-o", "json")), [])
        self.assertIn(self.id, self.env.out("ls", "-q", "-s", "running").split())
        self.assertNotIn(self.id, self.env.out("ls", "-q", "-s", "completed").split())
        self.assertEqual(self.env.out("ls", "-t", "no-such-tag-" + self.tag), "No sandboxes found.\n")

    def test_ls_table(self):
        lines = self.env.out("ls", "-t", self.tag).splitlines()
        self.assertRegex(lines[0], r"^SANDBOX ID +STATUS +RUNNER +STARTED AT$")
        self.assertRegex(lines[1], r"^-+  -+  -+  -+$")
        row = [l for l in lines if l.startswith(self.id + " ")]
        self.assertEqual(len(row), 1)
        self.assertRegex(row[0], r" running .* \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")

    def test_get_json_fields(self):
        doc = json.loads(self.env.out("get", self.id, "-o", "json"))
        self.assertEqual(list(doc)[:6], OFFICIAL_KEYS + ["returncode"])
        self.assertIsNone(doc["returncode"])
        for key in ("created_at", "started_at"):
            datetime.datetime.fromisoformat(doc[key])
        out = self.env.out("get", self.id)
        self.assertRegex(out, r"(?m)^SANDBOX ID +%s$" % self.id)
        self.assertRegex(out, r"(?m)^STATUS +running$")
        self.assertRegex(out, r"(?m)^RETURNCODE +-$")

    def test_get_unknown_sandbox(self):
        p = self.env.run("get", "sbx-nope-" + uuid.uuid4().hex[:8], check=1)
        self.assertRegex(p.stderr.decode(), r"^Error: .*not found.*\n$")

    # ---- exec ----

    def test_exec_exit_code_and_streams(self):
        p = self.env.run("exec", self.id, "--", "sh", "-c", "echo out; echo err >&2; exit 42")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (42, b"out\n", b"err\n"))

    def test_exec_without_dashdash_and_command_options(self):
        self.assertEqual(self.env.out("exec", self.id, "ls", "-d", "/"), "/\n")
        self.assertEqual(self.env.out("exec", "-w", "/tmp", self.id, "pwd"), "/tmp\n")
        self.assertEqual(self.env.out("exec", self.id, "--cwd", "/usr", "--", "pwd"), "/usr\n")
        self.assertEqual(self.env.out("exec", "-e", "A=b c", self.id, "--", "sh", "-c", 'echo "$A"'),
                         "b c\n")

    def test_exec_official_timeout_short_form(self):
        # The official CLI's "-t SECS": a number and then a command.
        self.assertEqual(self.env.out("exec", self.id, "-t", "30", "echo", "hi"), "hi\n")

    def test_exec_timeout(self):
        start = time.time()
        p = self.env.run("exec", "--timeout", "1", self.id, "--", "sleep", "30", check=1)
        self.assertLess(time.time() - start, 20)
        self.assertTrue(p.stderr.startswith(b"Error: "), p.stderr)

    def test_exec_stdin(self):
        data = os.urandom(3 * 1024 * 1024 + 17)
        out = self.env.out("exec", "-i", self.id, "--", "sha256sum", input=data)
        self.assertEqual(out.split()[0], hashlib.sha256(data).hexdigest())
        self.assertEqual(self.env.out("exec", "-i", self.id, "--", "tr", "a-z", "A-Z", input=b"abc\n"),
                         "ABC\n")

    def test_exec_without_i_does_not_read_stdin(self):
        p = self.env.run("exec", self.id, "--", "cat", input=b"not for the command\n", check=0)
        self.assertEqual(p.stdout, b"")

    def test_exec_unknown_sandbox(self):
        p = self.env.run("exec", "sbx-nope-" + uuid.uuid4().hex[:8], "--", "true", check=1)
        self.assertTrue(p.stderr.startswith(b"Error: "))

    def remote_cmdlines(self):
        return self.exec_out("sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")

    def test_exec_interrupted(self):
        sleeper = "sleep %d" % (3000 + uuid.uuid4().int % 1000)
        proc = subprocess.Popen([CLI, "exec", self.id, "--", "sh", "-c",
                                 "echo started; " + sleeper + "; true"],
                                env=self.env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(proc.stdout.readline(), b"started\n")
        self.wait_for(lambda: sleeper in self.remote_cmdlines())
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        self.assertEqual((proc.returncode, err), (130, b""))
        self.wait_for(lambda: sleeper not in self.remote_cmdlines(), 30)

    def test_exec_closed_stdout(self):
        start = time.time()
        p = subprocess.run(["/bin/bash", "-c", 'set -o pipefail; "$0" exec "$1" -- yes | head -3',
                            CLI, self.id], env=self.env.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, b"y\ny\ny\n", b""))
        w = closed_pipe()
        try:
            p = self.env.run("exec", self.id, "--", "sh", "-c", "sleep 1; echo late", stdout=w,
                             timeout=30)
        finally:
            os.close(w)
        self.assertEqual((p.returncode, p.stderr), (0, b""))
        self.assertLess(time.time() - start, 30)

    def test_exec_tty(self):
        out = self.env.out("exec", "-t", self.id, "--", "sh", "-c", "test -t 1 && echo tty")
        self.assertEqual(out.replace("\r", ""), "tty\n")

    # ---- cp, files ----

    def sha_remote(self, path):
        return self.exec_out("sha256sum", path).split()[0]

    def test_cp_roundtrip_40mib(self):
        data = os.urandom(40 * 1024 * 1024)
        local = os.path.join(self.env.root, "big.bin")
        with open(local, "wb") as f:
            f.write(data)
        self.env.out("cp", local, self.id + ":/tmp/big.bin")
        self.assertEqual(self.sha_remote("/tmp/big.bin"), hashlib.sha256(data).hexdigest())
        back = os.path.join(self.env.root, "back.bin")
        self.env.out("cp", self.id + ":/tmp/big.bin", back)
        with open(back, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).digest(), hashlib.sha256(data).digest())
        self.assertEqual([n for n in os.listdir(self.env.root) if ".cwsandbox-" in n], [])

    def test_cp_stdin_stdout(self):
        data = os.urandom(5 * 1024 * 1024)
        self.env.out("cp", "-", self.id + ":/tmp/from-stdin", input=data)
        p = self.env.run("cp", self.id + ":/tmp/from-stdin", "-", check=0)
        self.assertEqual(hashlib.sha256(p.stdout).digest(), hashlib.sha256(data).digest())

    def test_cp_into_directories(self):
        local = os.path.join(self.env.root, "named.txt")
        with open(local, "w") as f:
            f.write("named\n")
        self.env.out("exec", self.id, "--", "mkdir", "-p", "/tmp/cpdir")
        self.env.out("cp", local, self.id + ":/tmp/cpdir/")
        self.assertEqual(self.exec_out("cat", "/tmp/cpdir/named.txt"), "named\n")
        d = os.path.join(self.env.root, "dl")
        os.mkdir(d)
        self.env.out("cp", self.id + ":/tmp/cpdir/named.txt", d)
        with open(os.path.join(d, "named.txt")) as f:
            self.assertEqual(f.read(), "named\n")

    def test_cp_missing_remote_file(self):
        dst = os.path.join(self.env.root, "never")
        p = self.env.run("cp", self.id + ":/no/such/file", dst, check=1)
        self.assertTrue(p.stderr.startswith(b"Error: "), p.stderr)
        self.assertFalse(os.path.exists(dst))
        self.assertEqual([n for n in os.listdir(self.env.root) if ".cwsandbox-" in n], [])

    def test_cp_keeps_local_file_on_failure(self):
        dst = os.path.join(self.env.root, "precious")
        with open(dst, "w") as f:
            f.write("keep me")
        self.env.run("cp", self.id + ":/no/such/file", dst, check=1)
        with open(dst) as f:
            self.assertEqual(f.read(), "keep me")

    def test_cp_progress_bar_on_a_terminal(self):
        local = os.path.join(self.env.root, "progress.bin")
        with open(local, "wb") as f:
            f.write(os.urandom(40 * 1024 * 1024))
        seen = []
        status, _ = run_in_pty(self.env, ["cp", local, self.id + ":/tmp/progress.bin"],
                               lambda fd, pid, read: seen.append(read(secs=30)))
        self.assertEqual(status, 0)
        self.assertIn(b"40.0 MiB", b"".join(seen))
        seen.clear()
        back = os.path.join(self.env.root, "progress.back")
        status, _ = run_in_pty(self.env, ["cp", self.id + ":/tmp/progress.bin", back],
                               lambda fd, pid, read: seen.append(read(secs=30)))
        self.assertEqual(status, 0)
        self.assertRegex(b"".join(seen), rb"progress\.bin +\d+\.\d MiB")
        self.assertEqual(os.path.getsize(back), 40 * 1024 * 1024)
        seen.clear()
        status, _ = run_in_pty(self.env, ["cp", "-q", local, self.id + ":/tmp/progress.bin"],
                               lambda fd, pid, read: seen.append(read(secs=30)))
        self.assertEqual((status, b"".join(seen)), (0, b""))

    def test_files_read_write(self):
        local = os.path.join(self.env.root, "fw.txt")
        with open(local, "wb") as f:
            f.write(b"files write\n")
        self.assertEqual(self.env.out("files", "write", self.id, "/tmp/fw.txt", local),
                         "Wrote 12 bytes to /tmp/fw.txt.\n")
        self.assertEqual(self.env.out("files", "read", self.id, "/tmp/fw.txt"), "files write\n")
        out = os.path.join(self.env.root, "fr.txt")
        self.env.out("files", "read", self.id, "/tmp/fw.txt", "-o", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"files write\n")
        p = self.env.run("files", "read", self.id, "/no/such/file", check=1)
        self.assertTrue(p.stderr.startswith(b"Error: "))

    # ---- logs ----

    def wait_for(self, predicate, secs=60):
        end = time.time() + secs
        while time.time() < end:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError("condition not met in %d s" % secs)

    def wait_logs(self, sid, text):
        return self.wait_for(lambda: (lambda o: o if text in o else None)(self.env.out("logs", sid)))

    def test_logs(self):
        sid = self.env.out("run", "-d", "--tag", self.tag, "--", "sh", "-c",
                           "echo one; echo two; echo three").strip()
        self.wait_logs(sid, "three")
        self.assertEqual(self.env.out("logs", sid), "one\ntwo\nthree\n")
        self.assertEqual(self.env.out("logs", sid, "--tail", "1"), "three\n")
        stamped = self.env.out("logs", sid, "--timestamps").splitlines()
        self.assertEqual(len(stamped), 3)
        for line, word in zip(stamped, ("one", "two", "three")):
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z %s$" % word)
        self.assertEqual(self.env.out("logs", sid, "--since", "2000-01-01"), "one\ntwo\nthree\n")

    def test_logs_follow_ends_with_the_sandbox(self):
        sid = self.env.out("run", "-d", "--tag", self.tag, "--", "sh", "-c",
                           "for i in 1 2 3; do echo tick $i; sleep 0.5; done").strip()
        out = self.env.out("logs", "-f", sid, timeout=60)
        self.assertEqual(out, "tick 1\ntick 2\ntick 3\n")

    def test_logs_follow_interrupted(self):
        proc = subprocess.Popen([CLI, "logs", "-f", self.id], env=self.env.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        self.assertEqual((proc.returncode, err), (130, b""))

    # ---- stop, delete, purge ----

    def test_stop_and_delete_missing_ok(self):
        missing = "sbx-missing-" + uuid.uuid4().hex[:8]
        for cmd in ("stop", "delete"):
            p = self.env.run(cmd, missing, check=1)
            self.assertTrue(p.stderr.startswith(b"Error: "), p.stderr)
            self.env.run(cmd, missing, "--missing-ok", check=0)
        self.assertEqual(self.env.out("stop", missing, "--missing-ok"),
                         "Sandbox %s is already missing.\n" % missing)

    def test_stop(self):
        sid = self.env.out("run", "--tag", self.tag).strip()
        self.assertEqual(self.env.out("stop", sid, "--graceful-shutdown-seconds", "2"),
                         "Stopped sandbox %s.\n" % sid)
        status = json.loads(self.env.out("get", sid, "-o", "json"))["status"]
        self.assertIn(status, ("completed", "failed", "terminated"))
        self.assertEqual(self.env.out("stop", sid, "-q", "--missing-ok"), "")

    def test_delete(self):
        sid = self.env.out("run", "--tag", self.tag).strip()
        self.assertEqual(self.env.out("delete", sid), "Deleted sandbox %s.\n" % sid)
        self.wait_for(lambda: sid not in self.env.out("ls", "-q").split())

    def test_purge(self):
        tag = "purge-" + uuid.uuid4().hex[:8]
        self.env.out("run", "--tag", self.tag, "--tag", tag)
        self.assertEqual(self.env.out("purge", "-t", tag, "--dry-run"), "Would purge 1 sandbox.\n")
        doc = json.loads(self.env.out("purge", "-t", tag, "--dry-run", "-o", "json"))
        self.assertEqual(doc, {"dry_run": True, "count": 1, "failed": []})
        self.assertEqual(self.env.out("purge", "-t", tag), "Purged 1 sandbox.\n")
        self.wait_for(lambda: not json.loads(self.env.out("ls", "-t", tag, "-o", "json")))

    # ---- sh ----

    def test_sh_on_a_terminal(self):
        def script(fd, pid, read):
            read(b"\\$ |# ", 15)
            os.write(fd, b"stty size\n")
            self.assertIn(b"30 100", read(b"30 100", 15))
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 132, 0, 0))
            time.sleep(0.5)
            os.write(fd, b"stty size\n")
            self.assertIn(b"40 132", read(b"40 132", 15))
            os.write(fd, b"exit 5\n")

        status, attrs = run_in_pty(self.env, ["sh", self.id, "--cmd", "/bin/sh -i"], script,
                                   cols=100, rows=30)
        self.assertEqual(status, 5)
        lflag = attrs[3]
        self.assertTrue(lflag & termios.ICANON and lflag & termios.ECHO, "terminal not restored")

    def test_sh_restores_the_terminal_on_sigterm(self):
        def script(fd, pid, read):
            read(b"\\$ |# ", 15)
            os.kill(pid, signal.SIGTERM)

        status, attrs = run_in_pty(self.env, ["sh", self.id, "--cmd", "/bin/sh -i"], script)
        self.assertEqual(status, 128 + signal.SIGTERM)
        self.assertTrue(attrs[3] & termios.ICANON and attrs[3] & termios.ECHO)

    def test_sh_needs_a_terminal(self):
        p = self.env.run("sh", self.id, check=1)
        self.assertIn(b"needs a terminal", p.stderr)


class SessionTests(unittest.TestCase):
    """Sessions, and CWSANDBOX_SESSION shared by processes (label sessions)."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.tag = "cli-session-" + uuid.uuid4().hex[:12]

    @classmethod
    def tearDownClass(cls):
        try:
            cls.env.run("purge", "-t", cls.tag)
        finally:
            cls.env.close()

    def session_names(self):
        return [s["name"] for s in json.loads(self.env.out("session", "ls", "-o", "json"))]

    def test_open_run_show_close(self):
        name = "cli-s-" + uuid.uuid4().hex[:8]
        self.assertEqual(self.env.out("session", "open", name, "--idle-ttl", "10m"), name + "\n")
        self.assertIn(name, self.session_names())
        self.assertRegex(self.env.out("session", "ls"), r"(?m)^NAME +SANDBOXES +CLIENTS")
        sid = self.env.out("run", "--session", name, "--tag", self.tag).strip()
        sb = json.loads(self.env.out("get", sid, "-o", "json"))
        self.assertEqual((sb["session"], sb["owner"]), (name, "session"))
        doc = json.loads(self.env.out("session", "show", name, "-o", "json"))
        self.assertEqual(doc["name"], name)
        self.assertEqual(doc["sandboxes"], [sid])
        datetime.datetime.fromisoformat(doc["created_at"])
        self.assertRegex(self.env.out("session", "show", name), r"(?m)^SANDBOXES +%s$" % sid)
        # ls --session: only the session's sandboxes, not one with the same tag outside it.
        other = self.env.out("run", "-d", "--tag", self.tag).strip()
        self.assertEqual(self.env.out("ls", "--session", name, "-q").split(), [sid])
        (listed,) = json.loads(self.env.out("ls", "--session", name, "-o", "json"))
        self.assertEqual((listed["sandbox_id"], listed["session"]), (sid, name))
        self.assertIn(other, self.env.out("ls", "-t", self.tag, "-q").split())
        self.assertEqual(self.env.out("session", "close", name),
                         "Closed session %s (1 sandbox stopped).\n" % name)
        self.assertNotIn(name, self.session_names())
        self.assertNotIn(sid, self.env.out("ls", "-q").split())

    def test_environment_names_the_session(self):
        name = "cli-e-" + uuid.uuid4().hex[:8]
        self.env.out("session", "open", name)
        env = dict(self.env.env, CWSANDBOX_SESSION=name)
        sid = self.env.out("run", "--tag", self.tag, env=env).strip()
        self.assertEqual(json.loads(self.env.out("get", sid, "-o", "json"))["session"], name)
        self.assertEqual(json.loads(self.env.out("session", "show", "-o", "json", env=env))["name"],
                         name)
        self.assertIn("Closed session %s" % name, self.env.out("session", "close", env=env))

    # Two processes share one session by CWSANDBOX_SESSION: the first exits, the second still
    # uses its sandbox; closing the session stops all of them (the backend's view: `cwsandbox
    # get` asks it fresh).
    def test_processes_share_a_session_by_environment(self):
        name = "cli-p-" + uuid.uuid4().hex[:8]
        env = dict(self.env.env, CWSANDBOX_SESSION=name)
        # The first process: joins (and so opens) the session, creates a sandbox, exits.
        first = self.env.out("run", "--tag", self.tag, env=env).strip()
        sb = json.loads(self.env.out("get", first, "-o", "json"))
        self.assertEqual((sb["status"], sb["session"], sb["owner"]), ("running", name, "session"))
        self.assertEqual(json.loads(self.env.out("session", "show", name, "-o", "json"))["clients"], 0)
        # The second process stays connected while it uses the first one's sandbox.
        second = subprocess.Popen([CLI, "exec", "-i", first, "--", "cat"], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        try:
            second.stdin.write(b"still here\n")
            second.stdin.flush()
            self.assertEqual(second.stdout.readline(), b"still here\n")
            doc = json.loads(self.env.out("session", "show", name, "-o", "json"))
            self.assertEqual((doc["clients"], doc["sandboxes"]), (1, [first]))
            third = self.env.out("run", "-d", "--tag", self.tag, env=env).strip()
            self.assertEqual(sorted(json.loads(self.env.out("session", "show", name, "-o",
                                                            "json"))["sandboxes"]),
                             sorted([first, third]))
            self.assertEqual(self.env.out("session", "close", name),
                             "Closed session %s (2 sandboxes stopped).\n" % name)
            for sid in (first, third):
                self.assertIn(json.loads(self.env.out("get", sid, "-o", "json"))["status"],
                              TERMINAL, sid)
            # Its sandbox is gone: the second process's exec ends.
            second.stdin.close()
            second.wait(timeout=60)
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
            second.stdout.close()
            second.stderr.close()
        self.assertNotIn(name, self.session_names())

    def test_open_without_name_prints_the_chosen_one(self):
        name = self.env.out("session", "open").strip()
        self.assertTrue(name)
        self.assertIn(name, self.session_names())
        self.env.out("session", "close", name, "--keep-sandboxes")

    def test_unknown_session(self):
        p = self.env.run("session", "show", "no-such-session-" + uuid.uuid4().hex[:6], check=1)
        self.assertTrue(p.stderr.startswith(b"Error: "), p.stderr)


def main():
    suites = {"basic": BasicTests, "sandboxes": SandboxTests, "sessions": SessionTests}
    if len(sys.argv) < 2 or sys.argv[1] not in suites:
        sys.exit("usage: cli_test.py basic|sandboxes|sessions [unittest args]")
    if not CLI or not os.access(CLI, os.X_OK):
        sys.exit("CWS_CLI must name the cwsandbox binary")
    for var in ("CWSANDBOXD", "CWSANDBOX_LOCAL_PATH"):
        if not os.environ.get(var):
            sys.exit("%s must name the daemon's binary (and its local backend's)" % var)
    suite = suites[sys.argv[1]]
    unittest.main(defaultTest=suite.__name__, argv=[sys.argv[0], *sys.argv[2:]], verbosity=2)


if __name__ == "__main__":
    main()
