"""A client process for the disconnect tests: opens a StreamExec and waits to be killed.

    python3 -m cwsconf.stream_exec_child TARGET SANDBOX_ID  (marker in $CWSCONF_MARKER,
    token, if any, in $CWSCONF_TOKEN; the marker is not in our own argv on purpose)

Runs `/bin/sh -c "sleep <marker>; echo never"`, prints "READY" once the server sent `ready`,
then keeps reading until the parent SIGKILLs it.
"""
import os
import sys

from cwsconf.case import RUN_ENV, RUN_MARK
from cwsconf.client import Client, RequestQueue
from cwsconf.protos import pb


def main():
    target, sid = sys.argv[1], sys.argv[2]
    marker = os.environ["CWSCONF_MARKER"]
    c = Client(target, token=os.environ.get("CWSCONF_TOKEN"))
    init = pb.ExecStreamRequest(init=pb.ExecStreamInit(
        sandbox_id=sid, command=["/bin/sh", "-c", "sleep %s; echo never" % marker],
        env={RUN_ENV: RUN_MARK}))
    reqs = RequestQueue(init)   # the request stream stays open, like an interactive client
    call = c.StreamExec(iter(reqs))
    for m in call:
        if m.WhichOneof("message") == "ready":
            print("READY", flush=True)
    print("ENDED", flush=True)


if __name__ == "__main__":
    main()
