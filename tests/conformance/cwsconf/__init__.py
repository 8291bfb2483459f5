"""Helpers of the cwsandbox-local conformance suite (an independent gRPC client in Python).

protos   generates the message classes from proto/ with protoc and imports them
client   a SandboxService client on grpcio (unary/stream callables, error-detail parsing)
procs    looks at the host's /proc from outside (marker processes, leak detection)
server   starts and stops cwsandbox-local (READY line, SIGTERM, leak check)
case     the unittest base class: one server per test class, polling helpers
"""
