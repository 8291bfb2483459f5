#!/usr/bin/python3
"""Latency and throughput of cwsandbox-local, measured from an independent gRPC client.

    /usr/bin/python3 tests/bench/bench_local.py [--server build/bin/cwsandbox-local]
        [--runs 200] [--burst 50] [--parallel 8] [--transport unix|tcp] [--json]

Starts its own cwsandbox-local (fresh temporary state directory, like the conformance harness
in tests/conformance/cwsconf), then measures, each over --runs calls:

  GetSandbox              no-op round trip: the baseline of client + transport overhead
  Exec `true`             unary Exec round trip
  StreamExec `true`       init + half-close until `exit` and the end of the call
  CreateSandbox RPC       the Create call alone
  create -> RUNNING       Create, then GetSandbox as fast as possible until the first RUNNING

and the throughput of a burst: --burst sandboxes created by --parallel client threads, as
Create calls accepted per second and sandboxes RUNNING per second. Prints p50/p99 (nearest
rank), mean, min and max in milliseconds. Use /usr/bin/python3 (Debian's python3-grpcio).
Run by hand, not by CTest; `cmake --build build --target bench_local` runs it with defaults.
"""
import argparse
import concurrent.futures as cf
import json
import math
import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))

import grpc  # noqa: E402

from cwsconf import case  # noqa: E402
from cwsconf.client import Client, RequestQueue, details  # noqa: E402
from cwsconf.protos import pb  # noqa: E402
from cwsconf.server import LocalServer  # noqa: E402

TERMINAL = case.TERMINAL


def pct(sorted_ms, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_ms:
        return float("nan")
    k = max(1, math.ceil(p / 100.0 * len(sorted_ms)))
    return sorted_ms[k - 1]


def summary(name, samples_s):
    ms = sorted(x * 1000.0 for x in samples_s)
    return {"operation": name, "n": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99),
            "mean_ms": sum(ms) / len(ms) if ms else float("nan"),
            "min_ms": ms[0] if ms else float("nan"), "max_ms": ms[-1] if ms else float("nan")}


FAILURES = {}


def timed(n, fn, name):
    """n timed calls of fn; a call that fails (RuntimeError, or an RPC error) is counted in
    FAILURES[name] and not timed, so one server error does not end the whole run."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            fn()
        except (RuntimeError, grpc.RpcError) as e:
            FAILURES.setdefault(name, []).append(str(e).splitlines()[0][:200])
            continue
        out.append(time.perf_counter() - t0)
    return out


def create_req(tag):
    spec = case.make_spec(tags=[tag])
    return pb.CreateSandboxRequest(sandbox=pb.Sandbox(spec=spec), request_id=case.new_request_id())


def wait_running(c, sid, timeout=60.0, interval=0.0):
    """Poll GetSandbox (back to back by default); returns when the first RUNNING is seen."""
    deadline = time.perf_counter() + timeout
    while True:
        sb = c.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid))
        st = sb.status.state
        if st == pb.STATE_RUNNING:
            return
        if st in TERMINAL:
            raise RuntimeError("sandbox %s ended: %s %r" % (sid, case.state_name(st),
                                                            sb.status.state_reason))
        if time.perf_counter() > deadline:
            raise RuntimeError("sandbox %s not RUNNING after %.0fs" % (sid, timeout))
        if interval:
            time.sleep(interval)


def stream_exec_true(c, sid):
    init = pb.ExecStreamRequest(init=pb.ExecStreamInit(sandbox_id=sid, command=["true"]))
    reqs = RequestQueue(init)
    reqs.half_close()
    kinds = []
    for m in c.StreamExec(iter(reqs), timeout=30):
        k = m.WhichOneof("message")
        kinds.append("exit %d" % m.exit.exit_code if k == "exit" else k)
    if kinds != ["ready", "exit 0"]:
        raise RuntimeError("StreamExec true: got %r (want ready, exit 0)" % kinds)


def delete_quietly(c, sid):
    try:
        c.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid, grace_period_seconds=0))
    except grpc.RpcError:
        pass


def run(args):
    server = LocalServer(binary=args.server)
    server.start()
    results, notes = [], []
    try:
        if args.transport == "tcp":
            c = Client(server.tcp, token=server.token)
        else:
            c = Client(server.unix_target)
        tag = case.unique_tag("bench")
        base = c.CreateSandbox(create_req(tag)).sandbox_id
        wait_running(c, base)
        get = pb.GetSandboxRequest(sandbox_id=base)
        ex = pb.ExecRequest(sandbox_id=base, command=["true"])
        for _ in range(10):  # warm-up: connection, server caches
            c.GetSandbox(get)
            c.Exec(ex)

        name = "GetSandbox (no-op baseline)"
        results.append(summary(name, timed(args.runs, lambda: c.GetSandbox(get), name)))

        def exec_true():
            r = c.Exec(ex)
            if r.exit_code != 0:
                raise RuntimeError("Exec true exited %d: %r" % (r.exit_code, r.stderr))
        name = "Exec `true` (unary)"
        results.append(summary(name, timed(args.runs, exec_true, name)))
        name = "StreamExec `true`"
        results.append(summary(name, timed(args.runs, lambda: stream_exec_true(c, base), name)))

        create_s, running_s = [], []
        with cf.ThreadPoolExecutor(2) as deleter:
            for _ in range(args.runs):
                t0 = time.perf_counter()
                sid = c.CreateSandbox(create_req(tag)).sandbox_id
                t1 = time.perf_counter()
                wait_running(c, sid)
                t2 = time.perf_counter()
                create_s.append(t1 - t0)
                running_s.append(t2 - t0)
                deleter.submit(delete_quietly, c, sid)   # keep few sandboxes alive at a time
        results.append(summary("CreateSandbox RPC", create_s))
        results.append(summary("create -> RUNNING", running_s))

        # burst throughput
        burst_tag = case.unique_tag("burst")
        ids = []
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(args.parallel) as pool:
            futs = [pool.submit(lambda: c.CreateSandbox(create_req(burst_tag)).sandbox_id)
                    for _ in range(args.burst)]
            for f in futs:
                ids.append(f.result())
            t_created = time.perf_counter() - t0
            list(pool.map(lambda sid: wait_running(c, sid, interval=0.005), ids))
        t_running = time.perf_counter() - t0
        throughput = {"burst": args.burst, "client_threads": args.parallel,
                      "creates_per_s": args.burst / t_created,
                      "running_per_s": args.burst / t_running,
                      "seconds_to_all_created": t_created, "seconds_to_all_running": t_running}

        # clean up: delete everything, wait until terminal
        for sb in case.list_all(c):
            delete_quietly(c, sb.sandbox_id)
        deadline = time.monotonic() + 60
        while case.list_all(c) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = case.list_all(c)
        if left:
            notes.append("%d sandboxes not terminal 60 s after deletion" % len(left))
        c.close()
    except grpc.RpcError as e:
        notes.append("RPC failed: %r" % (details(e),))
        raise
    finally:
        for name, errs in FAILURES.items():
            notes.append("%s: %d calls failed, e.g. %s" % (name, len(errs), errs[0]))
        try:
            server.stop(expect_status=0)
        except AssertionError as e:
            notes.append(str(e).splitlines()[0])
        notes += server.check_leaks(case.RUN_MARK)
        server.cleanup(keep=bool(notes))
    return server, results, throughput, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", help="cwsandbox-local binary (default: $CWSANDBOX_LOCAL_BIN, "
                    "else the newest build*/bin/cwsandbox-local)")
    ap.add_argument("--runs", type=int, default=200, help="samples per latency row (200)")
    ap.add_argument("--burst", type=int, default=50, help="sandboxes in the throughput burst (50)")
    ap.add_argument("--parallel", type=int, default=8, help="client threads for the burst (8)")
    ap.add_argument("--transport", choices=("unix", "tcp"), default="unix")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()

    server, results, tp, notes = run(args)
    if args.json:
        print(json.dumps({"server": server.binary, "transport": args.transport,
                          "latency": results, "throughput": tp, "notes": notes}, indent=2))
    else:
        print("cwsandbox-local bench: %s, %s transport, %d runs per row"
              % (server.binary, args.transport, args.runs))
        hdr = "%-30s %5s %9s %9s %9s %9s %9s" % ("operation", "n", "p50 ms", "p99 ms", "mean ms",
                                                  "min ms", "max ms")
        print(hdr)
        print("-" * len(hdr))
        for r in results:
            print("%-30s %5d %9.2f %9.2f %9.2f %9.2f %9.2f" % (
                r["operation"], r["n"], r["p50_ms"], r["p99_ms"], r["mean_ms"], r["min_ms"],
                r["max_ms"]))
        print("-" * len(hdr))
        print("burst of %d sandboxes, %d client threads: %.1f creates/s (all created in %.2f s), "
              "%.1f sandboxes RUNNING/s (all running in %.2f s)"
              % (tp["burst"], tp["client_threads"], tp["creates_per_s"],
                 tp["seconds_to_all_created"], tp["running_per_s"], tp["seconds_to_all_running"]))
        for n in notes:
            print("NOTE: %s" % n)
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())
