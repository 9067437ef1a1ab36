#!/usr/bin/env python3
"""A frame-level HTTP/2 client for the integration tests (HTTP2Tests, HTTP2AbuseTests).

    h2client.py --port P --ca certs/ca.pem --sni api.example.test SCENARIO [--pid GATEWAY_PID]

Runs one scripted scenario against the gateway and prints one JSON line: for each connection
it used, what h2conn.Conn.result() records (ALPN, streams: status, reset code, body length,
sha256 and head of body; GOAWAYs; ORIGIN entries; frame types in order). Scenarios that abuse
a connection also open a bystander connection first and use it again afterwards, and report
the gateway's peak VmRSS (kB) seen while flooding when --pid is given.
"""
import argparse
import hashlib
import json
import os
import signal
import sys
import time

from h2conn import fresh, pattern, request

SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__.replace("_", "-")] = fn
    return fn


# -- well-behaved clients


@scenario
def get(args):
    """One GET of --path."""
    c = fresh(args)
    request(c, 1, args.path)
    return {"conn": c.result()}


@scenario
def origin(args):
    """The frames the gateway sends first (SETTINGS, then ORIGIN), then one GET."""
    c = fresh(args)
    c.until(lambda: "ORIGIN" in c.types and "SETTINGS" in c.types, timeout=3)
    request(c, 1, "/ok")
    return {"conn": c.result()}


@scenario
def misdirected(args):
    """Streams for other names on one connection (SNI --sni): 421 where the policy differs."""
    c = fresh(args)
    names = args.names.split(",")
    for i, name in enumerate(names):
        c.get(1 + 2 * i, "/", authority=name)
    c.until(c.answered(*[1 + 2 * i for i in range(len(names))]))
    request(c, 1 + 2 * len(names), "/ok")   # the connection goes on
    return {"conn": c.result()}


@scenario
def upload(args):
    """3 MB POSTs, with content-length and without, within the gateway's flow-control windows."""
    c = fresh(args)
    body = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32)
    c.get(1, "/upload", method="POST", end_stream=False, extra=[("content-length", str(len(body)))])
    c.data(1, body)
    c.until(c.answered(1))
    c.get(3, "/upload", method="POST", end_stream=False)
    c.data(3, body)
    c.until(c.answered(3))
    return {"conn": c.result(), "sent_sha256": hashlib.sha256(body).hexdigest(), "sent_length": len(body)}


@scenario
def body_too_large(args):
    """Bodies over max_body_size (declared, then undeclared): 413 and a reset; then a GET."""
    c = fresh(args)
    big = b"x" * (args.size * 2)
    c.get(1, "/upload", method="POST", end_stream=False, extra=[("content-length", str(len(big)))])
    c.data(1, big)
    c.until(lambda: c.stream(1)["reset"] is not None or c.stream(1)["ended"])
    c.get(3, "/upload", method="POST", end_stream=False)
    c.data(3, big)
    c.until(lambda: c.stream(3)["reset"] is not None)
    request(c, 5, "/ok")
    return {"conn": c.result()}


@scenario
def limits(args):
    """On one connection: a header list over max_header_size (--size), too many fields (--count),
    a :path over max_uri_size (--uri), one over both limits, no route; a good request after each."""
    c = fresh(args)
    cases = [("/ok", [("x-big", "b" * (args.size + 100))]),
             ("/ok", [(f"x-h{i}", "1") for i in range(args.count + 5)]),
             ("/" + "a" * (args.uri + 50), []),
             ("/" + "a" * (args.size + 100), []),
             ("/nope", [])]
    sid = 1
    for path, extra in cases:
        request(c, sid, path, extra=extra)
        request(c, sid + 2, args.path)
        sid += 4
    return {"conn": c.result()}


@scenario
def malformed(args):
    """RFC 9113 §8 malformed requests, each followed by a good one on the same connection."""
    c = fresh(args)
    base = [(":method", "GET"), (":scheme", "https"), (":authority", c.sni), (":path", args.path)]
    cases = {
        "uppercase": base + [("X-Upper", "1")],
        "connection": base + [("connection", "keep-alive")],
        "transfer-encoding": base + [("transfer-encoding", "chunked")],
        "upgrade": base + [("upgrade", "websocket")],
        "te": base + [("te", "gzip")],
        "no-path": base[:3],
        "two-methods": base + [(":method", "POST")],
        "pseudo-after-regular": base[:3] + [("x-a", "1"), (":path", "/")],
        "content-length": None,
    }
    sids, sid = {}, 1
    for name, fields in cases.items():
        if fields is None:   # content-length says 10, the DATA carries 5
            c.headers(sid, [(":method", "POST")] + base[1:] + [("content-length", "10")], end_stream=False)
            c.data(sid, b"12345")
        else:
            c.headers(sid, fields)
        c.until(c.answered(sid))
        sids[name] = sid
        request(c, sid + 2, args.path)
        sid += 4
    return {"conn": c.result(), "cases": sids}


@scenario
def multiplex(args):
    """--count streams at once on one connection."""
    c = fresh(args)
    ids = [1 + 2 * i for i in range(args.count)]
    for sid in ids:
        c.get(sid, f"/bytes/{1000 + sid}")
    c.until(c.answered(*ids))
    ok = all(c.stream(s)["status"] == 200 and c.stream(s)["body_len"] == 1000 + s for s in ids)
    return {"conn": c.result(), "all_ok": ok}


@scenario
def reset_download(args):
    """A client RST_STREAM in the middle of a large download, then more streams."""
    c = fresh(args)
    c.get(1, "/bytes/50000000")
    c.until(lambda: c.stream(1)["body_len"] >= 1 << 20)
    c.rst(1)
    c.get(3, "/bytes/1000000")
    c.until(c.answered(3))
    request(c, 5, "/ok")
    expected = hashlib.sha256(pattern(1000000)).hexdigest()
    return {"conn": c.result(), "download_ok": c.stream(3)["_sha"].hexdigest() == expected}


@scenario
def grpc_open(args):
    """A gRPC call (POST --path, application/grpc, te: trailers, grpc-timeout --grpc-timeout)
    whose request stays open after one message: only a timer can end it. Reports how long the
    answer took (the one measurement of time here: it tells which timer fired)."""
    c = fresh(args)
    extra = [("content-type", "application/grpc"), ("te", "trailers")]
    if args.grpc_timeout:
        extra.append(("grpc-timeout", args.grpc_timeout))
    start = time.monotonic()
    c.get(1, args.path, method="POST", end_stream=False, extra=extra)
    c.data(1, b"\0\0\0\0\x04open", end_stream=False)
    c.until(c.answered(1), timeout=args.timeout)
    return {"conn": c.result(), "elapsed": round(time.monotonic() - start, 3)}


@scenario
def grpc_staggered(args):
    """Open gRPC calls as grpc-open makes them, all at once on one connection, stream 1 + 2i with
    the i-th of the comma-separated --grpc-timeout values: when each was answered, in seconds
    from the start (the connection's one stream timer must fire for each at its own time)."""
    c = fresh(args)
    timeouts = args.grpc_timeout.split(",")
    ids = [1 + 2 * i for i in range(len(timeouts))]
    start = time.monotonic()
    for sid, t in zip(ids, timeouts):
        c.get(sid, args.path, method="POST", end_stream=False,
              extra=[("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", t)])
        c.data(sid, b"\0\0\0\0\x04open", end_stream=False)
    answered = {}
    while len(answered) < len(ids):
        if not c.until(lambda: any(c.answered(s)() for s in ids if s not in answered), timeout=args.timeout):
            break   # closed or timed out: the missing ones are reported as such
        for s in ids:
            if s not in answered and c.answered(s)():
                answered[s] = round(time.monotonic() - start, 3)
    return {"conn": c.result(), "answered_at": {str(s): answered.get(s) for s in ids}}


# -- lifecycle


@scenario
def shutdown(args):
    """A slow stream in flight, then SIGTERM (or --signal HUP, a reload that drains this host) to
    the gateway: two GOAWAYs, the stream completes."""
    c = fresh(args)
    request(c, 1, "/ok")
    c.get(3, args.path)
    time.sleep(0.5)   # the request reaches the backend; the order is not asserted, only the outcome
    os.kill(args.pid, getattr(signal, "SIG" + args.signal))
    c.until(c.answered(3), timeout=20)
    c.drain(timeout=10)
    return {"conn": c.result()}


@scenario
def idle(args):
    """One GET, then nothing until the gateway closes the connection."""
    c = fresh(args)
    request(c, 1, "/ok")
    c.drain(timeout=20)
    return {"conn": c.result()}


@scenario
def idle_then_timeout(args):
    """One GET, then quiet past two of the gateway's idle sweeps (it gives the connection's
    idle memory back, its stream timer too), then a stream the backend answers too late (504
    from response_timeout) and one more GET."""
    c = fresh(args)
    request(c, 1, "/ok")
    time.sleep(2.6)
    request(c, 3, "/delay/6000")
    request(c, 5, "/ok")
    return {"conn": c.result()}


@scenario
def max_requests(args):
    """Streams one after another until the gateway says GOAWAY and closes."""
    c = fresh(args)
    for i in range(args.count):
        if c.goaways or c.closed:
            break
        request(c, 1 + 2 * i, "/ok")
    c.drain(timeout=10)
    return {"conn": c.result()}


if __name__ == "__main__":
    import h2abuse
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS) + sorted(h2abuse.SCENARIOS))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--sni", default="api.example.test")
    p.add_argument("--path", default="/")
    p.add_argument("--names", default="")
    p.add_argument("--size", type=int, default=0, help="the limit under test (bytes)")
    p.add_argument("--uri", type=int, default=0, help="max_uri_size under test")
    p.add_argument("--count", type=int, default=0, help="a count limit under test, or how many")
    p.add_argument("--pid", type=int, default=0, help="the gateway's pid (SIGTERM, VmRSS)")
    p.add_argument("--signal", default="TERM", help="what `shutdown` sends the gateway: TERM or HUP")
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--grpc-timeout", default="", help="grpc-open: the grpc-timeout field (300m, 10S)")
    args = p.parse_args()
    fn = SCENARIOS.get(args.scenario) or h2abuse.SCENARIOS[args.scenario]
    print(json.dumps(fn(args)), flush=True)
