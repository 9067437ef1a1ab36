#!/usr/bin/env python3
"""A real gRPC server (grpcio) for the integration tests (GRPCTests): the backend behind the gateway.

    grpcserver.py PORT [--cert certs/echo.internal.test.pem --key certs/echo.internal.test.key]

Listens on 127.0.0.1:PORT over TLS with the echo certificate (a client certificate is neither
asked for nor needed) and serves `test.Echo` with generic handlers on raw bytes, no protobuf:
the messages are the request and response bytes themselves, framed by gRPC as usual.

    Unary         echoes the request; initial metadata x-echo-initial: <request's x-test or
                  "none">, trailing metadata x-echo-trailing: done
    ServerStream  request "N": N messages msg-0 .. msg-(N-1)
    ClientStream  the requests joined with ","
    Bidi          each request upper-cased, sent as soon as it arrives
    Fail          request "CODE:MESSAGE": aborts with that status code and message
    Sleep         request "MS": sleeps MS milliseconds, answers "slept" (nothing if cancelled)

Prints `grpcserver ready 127.0.0.1:PORT` on stderr once listening. A call to any other method
is logged as {"method": "unknown", "path": ...}; every test.Echo call leaves one JSON line on
stdout when it ends: method, the request metadata it saw, how many messages and bytes
came in, and for Sleep whether the call was cancelled before the sleep was over (the gateway
resets the backend stream when grpc-timeout expires). Exits 0 on SIGTERM.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
CERTS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "certs")
# The largest message either way; the tests send 1 MiB (grpcio's default limit is 4 MiB).
MAX_MESSAGE = 16 * 1024 * 1024
log_lock = threading.Lock()


def log(method, context, **fields):
    line = {"method": method, "metadata": {k: v if isinstance(v, str) else v.hex() for k, v in context.invocation_metadata()}}
    line.update(fields)
    with log_lock:
        print(json.dumps(line, sort_keys=True), flush=True)


def status_code(number):
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN


def metadata(context, key):
    return next((v for k, v in context.invocation_metadata() if k == key), None)


def unary(request, context):
    context.send_initial_metadata((("x-echo-initial", metadata(context, "x-test") or "none"),))
    context.set_trailing_metadata((("x-echo-trailing", "done"),))
    log("Unary", context, messages=1, bytes=len(request))
    return request


def server_stream(request, context):
    n = int(request.decode())
    log("ServerStream", context, messages=1, bytes=len(request))
    for i in range(n):
        yield f"msg-{i}".encode()


def client_stream(requests, context):
    got = [r.decode() for r in requests]
    log("ClientStream", context, messages=len(got), bytes=sum(len(r) for r in got))
    return ",".join(got).encode()


def bidi(requests, context):
    n = 0
    for r in requests:
        n += 1
        yield r.upper()
    log("Bidi", context, messages=n)


def fail(request, context):
    code, _, message = request.decode().partition(":")
    log("Fail", context, messages=1, bytes=len(request))
    context.abort(status_code(int(code)), message)


def sleep(request, context):
    ms = int(request.decode())
    end = time.monotonic() + ms / 1000
    cancelled = False
    while time.monotonic() < end:
        if not context.is_active():
            cancelled = True
            break
        time.sleep(0.01)
    log("Sleep", context, messages=1, ms=ms, cancelled=cancelled)
    return b"slept"


HANDLERS = {
    "Unary": grpc.unary_unary_rpc_method_handler(unary),
    "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
    "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
    "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
}


class UnknownMethods(grpc.GenericRpcHandler):
    """Consulted after test.Echo: logs a call to any other method (grpcio then answers UNIMPLEMENTED)."""

    def service(self, details):
        with log_lock:
            print(json.dumps({"method": "unknown", "path": details.method}), flush=True)
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("port", type=int)
    p.add_argument("--cert", default=os.path.join(CERTS, "echo.internal.test.pem"))
    p.add_argument("--key", default=os.path.join(CERTS, "echo.internal.test.key"))
    args = p.parse_args()
    with open(args.key, "rb") as f:
        key = f.read()
    with open(args.cert, "rb") as f:
        cert = f.read()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                         handlers=[grpc.method_handlers_generic_handler("test.Echo", HANDLERS), UnknownMethods()],
                         options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                  ("grpc.max_send_message_length", MAX_MESSAGE),
                                  ("grpc.so_reuseport", 0)])
    address = f"127.0.0.1:{args.port}"
    if server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)])) != args.port:
        sys.exit(f"grpcserver: cannot listen on {address}")
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    # A parent may start us with SIGTERM blocked (under swift test it was: every stop waited for
    # the SIGKILL); the handler only runs once it is unblocked.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    print(f"grpcserver ready {address}", file=sys.stderr, flush=True)
    while not done.wait(0.2):
        pass
    server.stop(grace=None).wait()


if __name__ == "__main__":
    main()
