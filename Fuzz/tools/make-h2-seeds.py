#!/usr/bin/env python3
"""Seeds for the h2frames fuzz target: what real HTTP/2 clients send after the connection
preface (the target adds the preface itself), made with the h2 and hyperframe packages
(pip install h2 hyperframe). Writes Fuzz/corpus/h2frames/NAME."""
import os
import h2.config
import h2.connection
from hyperframe.frame import (ContinuationFrame, HeadersFrame, PingFrame, RstStreamFrame,
                              SettingsFrame, WindowUpdateFrame)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus", "h2frames")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GET = [(":method", "GET"), (":scheme", "https"), (":authority", "api.example.test"), (":path", "/")]


def client():
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                                            normalize_outbound_headers=False))
    c.initiate_connection()
    return c


def body(c):
    data = c.data_to_send()
    assert data.startswith(PREFACE)
    return data[len(PREFACE):]


def seeds():
    c = client()
    c.send_headers(1, GET + [("user-agent", "seed")], end_stream=True)
    yield "get", body(c)

    c = client()
    c.send_headers(1, [(":method", "POST"), (":scheme", "https"), (":authority", "a"), (":path", "/up"),
                       ("content-length", "11")])
    c.send_data(1, b"hello world", end_stream=True)
    yield "post", body(c)

    c = client()
    c.send_headers(1, [(":method", "POST"), (":scheme", "https"), (":authority", "a"), (":path", "/svc/M"),
                       ("content-type", "application/grpc"), ("te", "trailers")])
    c.send_data(1, b"\x00\x00\x00\x00\x02hi")
    c.send_headers(1, [("x-checksum", "1")], end_stream=True)
    yield "grpc-trailers", body(c)

    c = client()
    for i in range(5):
        c.send_headers(1 + 2 * i, GET, end_stream=True)
    c.reset_stream(9)
    c.ping(b"12345678")
    c.increment_flow_control_window(100000)
    yield "multiplexed", body(c)

    # Raw frames a library would not send: CONTINUATION, a reset flood, malformed heads.
    enc = client().encoder
    block = enc.encode(GET + [("x-pad", "p" * 300)])
    parts = [block[i:i + 40] for i in range(0, len(block), 40)]
    raw = SettingsFrame().serialize() + HeadersFrame(1, data=parts[0]).serialize()
    for i, p in enumerate(parts[1:]):
        f = ContinuationFrame(1, data=p)
        if i == len(parts) - 2:
            f.flags.add("END_HEADERS")
        raw += f.serialize()
    yield "continuation", raw

    raw = SettingsFrame().serialize()
    for i in range(40):
        h = HeadersFrame(1 + 2 * i, data=enc.encode(GET))
        h.flags.add("END_HEADERS")
        raw += h.serialize() + RstStreamFrame(1 + 2 * i, error_code=8).serialize()
    yield "rapid-reset", raw

    raw = SettingsFrame().serialize()
    for i, extra in enumerate([[("connection", "close")], [("te", "gzip")], [("X-Up", "1")], [(":path", "/2")]]):
        h = HeadersFrame(1 + 2 * i, data=enc.encode(GET + extra))
        h.flags.add("END_HEADERS")
        h.flags.add("END_STREAM")
        raw += h.serialize()
    raw += PingFrame(0, opaque_data=b"abcdefgh").serialize() + WindowUpdateFrame(0, window_increment=1).serialize()
    yield "malformed", raw


os.makedirs(OUT, exist_ok=True)
for name, data in seeds():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    print(name, len(data))
