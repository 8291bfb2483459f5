"""A SandboxService client on grpcio, written from the wire schema only (none of our C code).

Every RPC is a plain grpcio multi-callable built with channel.unary_unary / unary_stream /
stream_stream and the generated message classes, as any third-party client would do.
"""
import queue
import threading

import grpc

from .protos import error_details_pb2, pb, status_pb2

SERVICE = "/coreweave.sandbox.v1.SandboxService/"
MAX_MESSAGE = 100 * 1024 * 1024  # what both official SDKs set (wire notes 1.2)
DEFAULT_TIMEOUT = 30.0  # every unary call gets a deadline so a hung server fails, not hangs

# name -> (kind, request class, response class)
METHODS = {
    "CreateSandbox": ("uu", pb.CreateSandboxRequest, pb.Sandbox),
    "CreateSandboxFromTemplate": ("uu", pb.CreateSandboxFromTemplateRequest, pb.Sandbox),
    "GetSandbox": ("uu", pb.GetSandboxRequest, pb.Sandbox),
    "ListSandboxes": ("uu", pb.ListSandboxesRequest, pb.ListSandboxesResponse),
    "DeleteSandbox": ("uu", pb.DeleteSandboxRequest, pb.DeleteSandboxResponse),
    "PurgeSandboxes": ("uu", pb.PurgeSandboxesRequest, pb.PurgeSandboxesResponse),
    "Exec": ("uu", pb.ExecRequest, pb.ExecResponse),
    "StreamExec": ("ss", pb.ExecStreamRequest, pb.ExecStreamResponse),
    "StreamLogs": ("us", pb.StreamLogsRequest, pb.LogEntry),
    "WriteFile": ("uu", pb.WriteFileRequest, pb.WriteFileResponse),
    "ReadFile": ("uu", pb.ReadFileRequest, pb.ReadFileResponse),
    "CreateFileSystemSnapshot": ("uu", pb.CreateFileSystemSnapshotRequest, pb.FileSystemSnapshot),
    "GetFileSystemSnapshot": ("uu", pb.GetFileSystemSnapshotRequest, pb.FileSystemSnapshot),
    "ListFileSystemSnapshots": (
        "uu", pb.ListFileSystemSnapshotsRequest, pb.ListFileSystemSnapshotsResponse),
    "DeleteFileSystemSnapshot": (
        "uu", pb.DeleteFileSystemSnapshotRequest, pb.FileSystemSnapshot),
}


def channel_options(max_send=MAX_MESSAGE, max_receive=MAX_MESSAGE):
    return [
        ("grpc.max_send_message_length", max_send),
        ("grpc.max_receive_message_length", max_receive),
        # every test gets its own connection behaviour, never a shared subchannel
        ("grpc.use_local_subchannel_pool", 1),
    ]


class _Method:
    """A multi-callable that adds the client's default metadata and deadline."""

    def __init__(self, client, callable_, streaming_response):
        self._client = client
        self._callable = callable_
        self._streaming = streaming_response

    def __call__(self, request, timeout=None, metadata=None, **kw):
        md = list(self._client.metadata) + list(metadata or ())
        if timeout is None and not self._streaming:
            timeout = DEFAULT_TIMEOUT
        return self._callable(request, timeout=timeout, metadata=md or None, **kw)

    def with_call(self, request, timeout=None, metadata=None, **kw):
        md = list(self._client.metadata) + list(metadata or ())
        return self._callable.with_call(
            request, timeout=timeout or DEFAULT_TIMEOUT, metadata=md or None, **kw)


class Client:
    """Connect to `target` ("unix:/path" or "host:port"); `token` adds a Bearer header."""

    def __init__(self, target, token=None, max_send=MAX_MESSAGE, max_receive=MAX_MESSAGE):
        self.target = target
        self.channel = grpc.insecure_channel(target, options=channel_options(max_send, max_receive))
        self.metadata = [("authorization", "Bearer " + token)] if token is not None else []
        for name, (kind, req, resp) in METHODS.items():
            path = SERVICE + name
            if kind == "uu":
                c = self.channel.unary_unary(path, request_serializer=req.SerializeToString,
                                             response_deserializer=resp.FromString)
            elif kind == "us":
                c = self.channel.unary_stream(path, request_serializer=req.SerializeToString,
                                              response_deserializer=resp.FromString)
            else:
                c = self.channel.stream_stream(path, request_serializer=req.SerializeToString,
                                               response_deserializer=resp.FromString)
            setattr(self, name, _Method(self, c, kind != "uu"))

    def raw_unary(self, path, response_class=None):
        """A unary callable that sends raw bytes (for malformed requests / unknown methods)."""
        deser = response_class.FromString if response_class else (lambda b: b)
        c = self.channel.unary_unary(path, request_serializer=lambda b: b,
                                     response_deserializer=deser)
        return _Method(self, c, False)

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- error details (grpc-status-details-bin) ----

class ErrorDetails:
    """The parsed rich error of a failed call."""

    def __init__(self, err):
        self.code = err.code()
        self.message = err.details() or ""
        self.status = None          # google.rpc.Status, when the trailer is present
        self.status_raw = None
        self.error_infos = []
        self.bad_requests = []
        self.retry_infos = []
        self.unknown_details = []
        md = err.trailing_metadata() or ()
        for key, value in md:
            if key == "grpc-status-details-bin":
                self.status_raw = value
                st = status_pb2.Status()
                st.ParseFromString(value)  # raises on garbage: a malformed trailer is a failure
                self.status = st
                for any_ in st.details:
                    for cls, bucket in ((error_details_pb2.ErrorInfo, self.error_infos),
                                        (error_details_pb2.BadRequest, self.bad_requests),
                                        (error_details_pb2.RetryInfo, self.retry_infos)):
                        if any_.Is(cls.DESCRIPTOR):
                            m = cls()
                            any_.Unpack(m)
                            bucket.append(m)
                            break
                    else:
                        self.unknown_details.append(any_.type_url)
                break

    @property
    def error_info(self):
        """The first ErrorInfo with a non-empty reason (what both SDKs use), or None."""
        for ei in self.error_infos:
            if ei.reason:
                return ei
        return None

    @property
    def reason(self):
        ei = self.error_info
        return ei.reason if ei else None

    @property
    def violations(self):
        return [v for br in self.bad_requests for v in br.field_violations]

    def __repr__(self):
        ei = self.error_info
        return "<%s %r reason=%s domain=%s metadata=%s violations=%s>" % (
            self.code.name, self.message, ei.reason if ei else None, ei.domain if ei else None,
            dict(ei.metadata) if ei else None,
            [(v.field, v.description) for v in self.violations])


def details(err):
    return ErrorDetails(err)


# ---- streaming helpers ----

_END = object()


class RequestQueue:
    """A request iterator for stream_stream calls that the test feeds as it goes.

    send(msg) queues one request; half_close() ends the iterator, which makes grpcio
    half-close the request stream (END_STREAM) without cancelling the call."""

    def __init__(self, *initial):
        self._q = queue.Queue()
        self._closed = False
        for m in initial:
            self.send(m)

    def send(self, msg):
        self._q.put(msg)

    def half_close(self):
        if not self._closed:
            self._closed = True
            self._q.put(_END)

    def __iter__(self):
        while True:
            item = self._q.get()
            if item is _END:
                return
            yield item


class StreamTimeout(AssertionError):
    pass


class StreamReader:
    """Reads a response stream on a background thread into a queue, so that a test can wait
    for a given message with a timeout while the call stays open.

    After the stream ends, `status` is grpc.StatusCode.OK or the grpc.RpcError."""

    def __init__(self, call):
        self.call = call
        self.messages = []
        self._q = queue.Queue()
        self.done = threading.Event()
        self.error = None
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        try:
            for m in self.call:
                self._q.put(m)
        except grpc.RpcError as e:
            self.error = e
        finally:
            self.done.set()
            self._q.put(_END)

    def next(self, timeout):
        """The next message, or None at the end of the stream; StreamTimeout after timeout."""
        try:
            m = self._q.get(timeout=timeout)
        except queue.Empty:
            raise StreamTimeout("no message within %.1fs" % timeout) from None
        if m is _END:
            self._q.put(_END)  # stay at the end for later calls
            return None
        self.messages.append(m)
        return m

    def until(self, predicate, timeout, what="the expected message"):
        """Read until predicate(all messages so far) is true; returns the messages."""
        import time
        deadline = time.monotonic() + timeout
        while not predicate(self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise StreamTimeout("timed out after %.1fs waiting for %s; got %d messages"
                                    % (timeout, what, len(self.messages)))
            try:
                m = self.next(min(left, 0.5))
            except StreamTimeout:
                continue
            if m is None and not predicate(self.messages):
                raise StreamTimeout("stream ended (%s) before %s; got %d messages"
                                    % (self.status_text(), what, len(self.messages)))
        return self.messages

    def drain(self, timeout):
        """Read to the end of the stream; returns all messages. StreamTimeout if it stays open."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StreamTimeout("stream still open after %.1fs (%d messages)"
                                    % (timeout, len(self.messages)))
            if self.next(left) is None:
                return self.messages

    def wait_done(self, timeout):
        return self.done.wait(timeout)

    def status_text(self):
        if not self.done.is_set():
            return "open"
        if self.error is None:
            return "OK"
        return "%s %r" % (self.error.code().name, self.error.details())

    def cancel(self):
        self.call.cancel()
        self.done.wait(5)
