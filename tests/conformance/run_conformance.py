#!/usr/bin/python3
"""Run (or list) the cwsandbox-local conformance suite.

    /usr/bin/python3 tests/conformance/run_conformance.py [--server PATH] [--list] [-k PATTERN]
                                                         [test_module | module.Class.test ...]

With no names, every tests/conformance/test_*.py module is run. --list only imports the
suite (which generates the protobuf modules) and prints every test id: a dry check that
needs no server. The server binary is --server, else $CWSANDBOX_LOCAL_BIN, else the newest
<repo>/build*/bin/cwsandbox-local.

Environment: CWS_CONFORMANCE_GEN_DIR (where generated *_pb2.py live; default: a temporary
directory), CWS_CONFORMANCE_TIME_SCALE (stretch timeouts, e.g. 3 under sanitizers),
CWS_CONFORMANCE_LOG_LEVEL (server --log-level, default info), CWS_CONFORMANCE_KEEP=1 (keep
every server directory; they are always kept when a class fails).
Use /usr/bin/python3: it has Debian's python3-grpcio and python3-protobuf.
"""
import argparse
import os
import sys
import unittest

sys.dont_write_bytecode = True   # no __pycache__ in the source tree

HERE = os.path.dirname(os.path.abspath(__file__))


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", help="path of cwsandbox-local")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("-k", dest="patterns", action="append",
                    help="only tests whose id contains this substring (repeatable)")
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("-f", "--failfast", action="store_true")
    ap.add_argument("names", nargs="*", help="test modules, classes or methods")
    args = ap.parse_args()

    sys.path.insert(0, HERE)
    if args.server:
        os.environ["CWSANDBOX_LOCAL_BIN"] = os.path.abspath(args.server)
    try:
        import grpc  # noqa: F401
    except ImportError:
        sys.exit("grpc is not importable by %s: use /usr/bin/python3 with python3-grpcio"
                 % sys.executable)

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = ["*%s*" % p for p in args.patterns]
    if args.names:
        suite = loader.loadTestsFromNames(args.names)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    tests = list(iter_tests(suite))
    broken = [t for t in tests if t.__class__.__name__ in ("_FailedTest", "ModuleImportFailure")]

    if args.list:
        for t in tests:
            print(t.id())
        print("%d tests" % len(tests), file=sys.stderr)
        if broken:
            for t in broken:
                print("IMPORT FAILURE: %s" % t.id(), file=sys.stderr)
                try:
                    t.debug()
                except Exception as e:  # noqa: BLE001
                    print("  %s: %s" % (type(e).__name__, e), file=sys.stderr)
            return 1
        return 0

    from cwsconf.server import find_server_binary
    binary = find_server_binary()
    if not binary or not os.access(binary, os.X_OK):
        print("cwsandbox-local not found (use --server or CWSANDBOX_LOCAL_BIN)", file=sys.stderr)
        return 2
    print("conformance: server %s" % binary, file=sys.stderr)
    runner = unittest.TextTestRunner(verbosity=1 if args.quiet else 2, failfast=args.failfast,
                                     buffer=False)
    result = runner.run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
