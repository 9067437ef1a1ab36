#!/usr/bin/env python3
"""A real gRPC client (grpcio) for the integration tests (GRPCTests): calls test.Echo of grpcserver.py.

    grpcclient.py --target HOST:PORT --ca FILE --authority NAME [--service S] [--metadata K=V ...] [--timeout S] COMMAND ...

    unary MSG            Unary with MSG
    unary-bytes N        Unary with N pattern bytes (the JSON gives length and sha256 both ways)
    server-stream N      ServerStream "N"
    client-stream a,b,c  ClientStream with the messages a, b, c
    bidi a,b,c           Bidi: sends a, waits for its answer, then b, ... (so the answers can
                         only come back if each message goes through the moment it is sent)
    fail CODE MSG        Fail "CODE:MSG"
    sleep MS             Sleep "MS" (with --timeout shorter than MS: the deadline)

The methods are /SERVICE/METHOD (--service, default test.Echo: another name reaches other
routes of the gateway). The channel verifies the server with --ca and the name --authority (ssl_target_name_override,
and :authority is NAME). Prints one JSON object: messages (text; null for one over 4 KiB),
digests (length and sha256 of each), code (name), code_number, details, initial_metadata,
trailing_metadata, elapsed (seconds). A non-OK status is a result, not a failure: exit 0.
"""
import argparse
import hashlib
import json
import queue
import sys
import time

import grpc

MAX_MESSAGE = 16 * 1024 * 1024


def pattern(n):
    return bytes(i % 251 for i in range(n))


def digest(b):
    return {"length": len(b), "sha256": hashlib.sha256(b).hexdigest()}


def metadata_dict(md):
    return {k: v if isinstance(v, str) else v.hex() for k, v in (md or ())}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--authority", required=True)
    p.add_argument("--service", default="test.Echo")
    p.add_argument("--metadata", action="append", default=[], help="K=V, sent with the call")
    p.add_argument("--timeout", type=float, default=30, help="the call's deadline in seconds")
    p.add_argument("command", choices=["unary", "unary-bytes", "server-stream", "client-stream", "bidi", "fail", "sleep"])
    p.add_argument("args", nargs="*")
    a = p.parse_args()
    with open(a.ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    options = [("grpc.ssl_target_name_override", a.authority), ("grpc.default_authority", a.authority),
               ("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE),
               ("grpc.enable_retries", 0)]
    md = tuple(tuple(kv.split("=", 1)) for kv in a.metadata)
    result = {}
    received = []
    channel = grpc.secure_channel(a.target, creds, options=options)
    start = time.monotonic()

    def finish(call):
        result.update(code=call.code().name, code_number=call.code().value[0], details=call.details() or "",
                      initial_metadata=metadata_dict(call.initial_metadata()),
                      trailing_metadata=metadata_dict(call.trailing_metadata()))

    try:
        if a.command in ("unary", "unary-bytes", "fail", "sleep"):
            method = {"unary": "Unary", "unary-bytes": "Unary", "fail": "Fail", "sleep": "Sleep"}[a.command]
            if a.command == "unary-bytes":
                request = pattern(int(a.args[0]))
                result["sent"] = digest(request)
            elif a.command == "fail":
                request = f"{a.args[0]}:{' '.join(a.args[1:])}".encode()
            else:
                request = " ".join(a.args).encode()
            stub = channel.unary_unary(f"/{a.service}/{method}")
            try:
                response, call = stub.with_call(request, timeout=a.timeout, metadata=md)
                received.append(response)
            except grpc.RpcError as e:
                call = e
            finish(call)
        elif a.command == "server-stream":
            call = channel.unary_stream(f"/{a.service}/ServerStream")(a.args[0].encode(), timeout=a.timeout, metadata=md)
            try:
                for m in call:
                    received.append(m)
            except grpc.RpcError:
                pass
            finish(call)
        elif a.command == "client-stream":
            stub = channel.stream_unary(f"/{a.service}/ClientStream")
            try:
                response, call = stub.with_call(iter([m.encode() for m in a.args[0].split(",")]), timeout=a.timeout, metadata=md)
                received.append(response)
            except grpc.RpcError as e:
                call = e
            finish(call)
        else:  # bidi: one message in flight at a time
            answers = queue.Queue()
            outgoing = [m.encode() for m in a.args[0].split(",")]

            def requests():
                for i, m in enumerate(outgoing):
                    if i > 0:
                        answers.get()   # the previous message's answer came back
                    yield m

            call = channel.stream_stream(f"/{a.service}/Bidi")(requests(), timeout=a.timeout, metadata=md)
            try:
                for m in call:
                    received.append(m)
                    answers.put(m)
            except grpc.RpcError:
                pass
            finish(call)
    finally:
        result["elapsed"] = round(time.monotonic() - start, 3)
        channel.close()
    result["messages"] = [m.decode("utf-8", "replace") if len(m) <= 4096 else None for m in received]
    result["digests"] = [digest(m) for m in received]
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
