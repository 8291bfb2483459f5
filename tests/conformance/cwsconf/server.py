"""Start and stop cwsandbox-local for a test class (or the bench).

A LocalServer owns a fresh temporary directory:
    <tmp>/state/     --state-dir
    <tmp>/images/    --images-dir (empty: every image falls back to the host root)
    <tmp>/s.sock     --socket
    <tmp>/token      --token-file (written by us, mode 0600, before the start)
    <tmp>/server.log stderr of every run, appended; <tmp>/server.out its stdout
and listens on --listen 127.0.0.1:0. start() waits for the one READY line with a deadline.
stop() sends SIGTERM and expects exit status 0. check_leaks() is the outside view of
"nothing leaked" after every sandbox was deleted (see procs.py).
"""
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

from . import procs

READY_RE = re.compile(r"^READY unix=(\S+) tcp=(\S+) token_file=(\S+)$")
START_TIMEOUT = float(os.environ.get("CWS_CONFORMANCE_START_TIMEOUT", "20"))
STOP_TIMEOUT = float(os.environ.get("CWS_CONFORMANCE_STOP_TIMEOUT", "15"))


def find_server_binary():
    """$CWSANDBOX_LOCAL_BIN, else the newest <repo>/build*/bin/cwsandbox-local."""
    env = os.environ.get("CWSANDBOX_LOCAL_BIN")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))
    best = None
    for d in os.listdir(repo):
        if d.startswith("build"):
            p = os.path.join(repo, d, "bin", "cwsandbox-local")
            if os.access(p, os.X_OK):
                if best is None or os.path.getmtime(p) > os.path.getmtime(best):
                    best = p
    return best


class ServerError(AssertionError):
    pass


class LocalServer:
    def __init__(self, binary=None, log_level=None, extra_args=()):
        self.binary = os.path.abspath(binary) if binary else find_server_binary()
        if not self.binary or not os.access(self.binary, os.X_OK):
            raise ServerError("cwsandbox-local not found: set CWSANDBOX_LOCAL_BIN "
                              "(or build the cwsandbox-local target)")
        self.log_level = log_level or os.environ.get("CWS_CONFORMANCE_LOG_LEVEL", "info")
        self.extra_args = list(extra_args)
        # Short, unique, under /tmp (which sandboxes do not share): the unique name makes
        # every reference to it in /proc attributable to this server.
        self.tmp = tempfile.mkdtemp(prefix="cwsconf-")
        self.state_dir = os.path.join(self.tmp, "state")
        self.images_dir = os.path.join(self.tmp, "images")
        self.socket_path = os.path.join(self.tmp, "s.sock")
        self.token_path = os.path.join(self.tmp, "token")
        self.log_path = os.path.join(self.tmp, "server.log")
        self.out_path = os.path.join(self.tmp, "server.out")
        os.makedirs(self.state_dir, mode=0o700)
        os.makedirs(self.images_dir)
        fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, secrets.token_hex(24).encode())
        os.close(fd)
        self.proc = None
        self.unix = None        # socket path from READY, or None
        self.tcp = None         # "127.0.0.1:PORT" from READY, or None
        self.token = None       # contents of the token file READY named
        self.ready_token_file = None
        self.starts = 0

    # ---- process ----

    def start(self):
        if self.proc is not None:
            raise ServerError("already running")
        args = [self.binary, "--socket", self.socket_path, "--listen", "127.0.0.1:0",
                "--token-file", self.token_path, "--state-dir", self.state_dir,
                "--images-dir", self.images_dir, "--log-level", self.log_level]
        args += self.extra_args
        # If this test process dies (CTest timeout, ^C), the server gets SIGTERM instead of
        # running on forever. setpriv execs the server, so the PID is the server's.
        setpriv = shutil.which("setpriv")
        launch = [setpriv, "--pdeathsig", "TERM", "--"] + args if setpriv else args
        out = open(self.out_path, "wb")  # truncated: READY is looked for in this run's output
        log = open(self.log_path, "ab")
        log.write(b"\n==== cwsandbox-local start #%d: %s\n" % (self.starts + 1,
                                                              " ".join(args).encode()))
        log.flush()
        try:
            self.proc = subprocess.Popen(launch, stdin=subprocess.DEVNULL, stdout=out, stderr=log,
                                         cwd=self.tmp, start_new_session=True)
        finally:
            out.close()
            log.close()
        self.starts += 1
        t0 = time.monotonic()
        line = None
        while time.monotonic() - t0 < START_TIMEOUT:
            with open(self.out_path, "rb") as f:
                data = f.read()
            if b"\n" in data:
                line = data.split(b"\n", 1)[0].decode(errors="replace")
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        if line is None:
            rc = self.proc.poll()
            self._kill()
            raise ServerError("no READY line within %.0fs (exit status %s)\n%s"
                              % (START_TIMEOUT, rc, self.log_tail()))
        m = READY_RE.match(line)
        if not m:
            self._kill()
            raise ServerError("first stdout line is not a READY line: %r\n%s"
                              % (line, self.log_tail()))
        self.ready_seconds = time.monotonic() - t0
        unix, tcp, token_file = m.groups()
        self.unix = None if unix == "-" else unix
        self.tcp = None if tcp == "-" else tcp
        self.ready_token_file = None if token_file == "-" else token_file
        self.token = None
        if self.ready_token_file:
            with open(self.ready_token_file) as f:
                self.token = f.read().strip()
        return self

    def stop(self, expect_status=0):
        """SIGTERM; wait for the exit; ServerError unless it exits with expect_status."""
        if self.proc is None:
            return None
        p = self.proc
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill()
            raise ServerError("cwsandbox-local did not exit within %.0fs of SIGTERM\n%s"
                              % (STOP_TIMEOUT, self.log_tail()))
        self.proc = None
        if expect_status is not None and rc != expect_status:
            raise ServerError("cwsandbox-local exited with status %s after SIGTERM (want %s)\n%s"
                              % (rc, expect_status, self.log_tail()))
        return rc

    def _kill(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    # ---- addresses ----

    @property
    def unix_target(self):
        return "unix:" + (self.unix or self.socket_path)

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "---- server log (last %d lines of %s) ----\n%s" % (
            lines, self.log_path, "\n".join(data[-lines:]))

    # ---- leaks ----

    def check_leaks(self, run_mark=None, wait=5.0):
        """After everything was deleted and the server stopped: the processes and mounts
        that still belong to this server's directory. Waits up to `wait` seconds for them to
        go, then SIGKILLs what is left (they are ours) and returns a description list."""
        deadline = time.monotonic() + wait
        while True:
            found = procs.referencing(self.tmp, run_mark)
            if not found or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        problems = ["leaked process %s (%s)" % (procs.describe(pid), ", ".join(why))
                    for pid, why in sorted(found.items())]
        procs.kill(found)
        for mp in procs.mounts_under(self.tmp):
            problems.append("leaked mount in the host namespace: %s" % mp)
        return problems

    def cleanup(self, keep=False):
        """Kill the server if still up and remove the directory, unless a mount is left under
        it (never recurse into a mount: it could be a bind of a host directory)."""
        self._kill()
        if keep or os.environ.get("CWS_CONFORMANCE_KEEP"):
            return False
        if procs.mounts_under(self.tmp):
            return False
        shutil.rmtree(self.tmp, ignore_errors=True)
        return True
