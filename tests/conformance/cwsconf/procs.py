"""What can be seen of sandbox processes from outside, through the host's /proc.

Sandbox processes live in their own PID namespaces, but they are still host processes with
host PIDs, so /proc shows them to a root test runner. Two ways of recognising ours:

- a *marker*: a unique token placed in a command line (e.g. `sleep 1000.123456789`, which
  GNU sleep accepts as a number) or in the environment of every sandbox and exec the suite
  starts (CWS_CONFORMANCE_RUN=<run id>);
- *references to the server's temporary directory*: a process whose cwd, root, executable
  or open files are under it, or which lives in another mount namespace whose mount table
  mentions it (an overlay's upperdir under <state_dir>/sandboxes/<id>/ shows in the mount
  options of every process inside that sandbox).

After every sandbox was deleted and the server stopped, any such process is a leak.
"""
import os
import random
import signal
import time


def new_sleep_marker(seconds=1000):
    """A unique duration for `sleep`, e.g. "1000.482913377": the token is the marker."""
    return "%d.%09d" % (seconds, random.randrange(10 ** 8, 10 ** 9))


def _pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def cmdline(pid):
    raw = _read("/proc/%d/cmdline" % pid)
    if not raw:
        return None
    return raw.rstrip(b"\0").split(b"\0")


def describe(pid):
    cl = cmdline(pid)
    stat = _read("/proc/%d/stat" % pid) or b""
    comm = stat[stat.find(b"(") + 1:stat.rfind(b")")].decode(errors="replace")
    state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3].decode(errors="replace")
    return "pid %d [%s %s] %s" % (pid, comm, state,
                                  b" ".join(cl).decode(errors="replace") if cl else "")


def with_token_in_cmdline(token, exclude=()):
    """PIDs whose command line contains token (bytes or str), excluding zombies' empty ones."""
    if isinstance(token, str):
        token = token.encode()
    me = os.getpid()
    found = []
    for pid in _pids():
        if pid == me or pid in exclude:
            continue
        raw = _read("/proc/%d/cmdline" % pid)
        if raw and token in raw:
            found.append(pid)
    return found


def wait_present(token, timeout, exclude=()):
    deadline = time.monotonic() + timeout
    while True:
        found = with_token_in_cmdline(token, exclude)
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.02)


def wait_gone(token, timeout, exclude=()):
    """Poll until no process carries token; returns what is left (empty on success)."""
    deadline = time.monotonic() + timeout
    while True:
        found = with_token_in_cmdline(token, exclude)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.02)


def signal_masks(pid):
    """{"SigIgn": mask, "SigCgt": mask, ...} from /proc/PID/status (bit N-1 is signal N)."""
    raw = _read("/proc/%d/status" % pid)
    out = {}
    for line in (raw or b"").decode(errors="replace").splitlines():
        k, _, v = line.partition(":")
        if k in ("SigIgn", "SigCgt", "SigBlk", "ShdPnd", "SigPnd"):
            out[k] = int(v.strip(), 16)
    return out


def wait_disposition(token, signum, field, timeout):
    """Wait until a process carrying token has signal signum in its `field` mask ("SigIgn" for
    `trap "" SIG`, "SigCgt" for `trap cmd SIG`): the shell has run its trap. Returns the pid
    or None."""
    deadline = time.monotonic() + timeout
    bit = 1 << (signum - 1)
    while True:
        for pid in with_token_in_cmdline(token):
            if signal_masks(pid).get(field, 0) & bit:
                return pid
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


def referencing(root, run_mark=None, exclude=()):
    """{pid: [why, ...]} for processes that belong to the server's directory `root`."""
    root = os.path.realpath(root)
    root_b = root.encode()
    mark_b = run_mark.encode() if run_mark else None
    my_mnt = _readlink("/proc/self/ns/mnt")
    me = os.getpid()
    result = {}
    for pid in _pids():
        if pid == me or pid in exclude:
            continue
        why = []
        raw = _read("/proc/%d/cmdline" % pid)
        if raw:
            if root_b in raw:
                why.append("cmdline")
            if mark_b and mark_b in raw:
                why.append("cmdline-mark")
        if mark_b:
            env = _read("/proc/%d/environ" % pid)
            if env and mark_b in env:
                why.append("environ")
        for link in ("cwd", "root", "exe"):
            t = _readlink("/proc/%d/%s" % (pid, link))
            if t and (t == root or t.startswith(root + "/")):
                why.append(link)
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            fds = []
        for fd in fds:
            t = _readlink("/proc/%d/fd/%s" % (pid, fd))
            if t and t.startswith(root + "/"):
                why.append("fd " + t)
                break
        mnt = _readlink("/proc/%d/ns/mnt" % pid)
        if mnt and mnt != my_mnt:
            mi = _read("/proc/%d/mountinfo" % pid)
            if mi and root_b in mi:
                why.append("mount namespace")
        if why:
            result[pid] = why
    return result


def mounts_under(root):
    """Mount points under root in this process's mount namespace."""
    root = os.path.realpath(root)
    out = []
    mi = _read("/proc/self/mountinfo") or b""
    for line in mi.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) > 4:
            mp = parts[4].replace("\\040", " ")
            if mp == root or mp.startswith(root + "/"):
                out.append(mp)
    return out


def kill(pids):
    """SIGKILL the given processes (which the caller identified as started by its server)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
