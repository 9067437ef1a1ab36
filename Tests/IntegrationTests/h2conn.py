"""The connection of h2client.py, the frame-level HTTP/2 test client.

It speaks to the gateway over real TLS (ALPN h2, the dev CA, SNI) and writes every frame itself
with hyperframe + hpack, so it can send what a conforming library refuses to (upper-case names,
`connection`, streams going backwards, floods). One scenario per run, chosen by name; it prints
one JSON line (per connection: ALPN, streams with status/reset/body, GOAWAYs, ORIGIN entries,
frame types in order). Nothing here measures time: every wait is "until this frame arrives or
the connection closes", with a generous timeout.
"""
import hashlib
import socket
import ssl
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, ExtensionFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ORIGIN_TYPE = 0xC
CANCEL = 0x8
MAX_FRAME = 16384


class Conn:
    """One HTTP/2 connection: sends frames, reads and records every frame the gateway sends."""

    def __init__(self, args, sni=None):
        raw = socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout)
        ctx = ssl.create_default_context(cafile=args.ca)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        self.sni = sni or args.sni
        self.sock = ctx.wrap_socket(raw, server_hostname=self.sni)
        self.alpn = self.sock.selected_alpn_protocol()
        self.timeout = args.timeout
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.dec.max_header_list_size = 1 << 20
        self.buf = bytearray()
        self.streams, self.goaways, self.types = {}, [], []
        self.origin = None
        self.closed = False
        self.send_blocked = False
        self.send_failed = False
        self.auto_ack = True      # answer SETTINGS and PING (the floods turn this off)
        self.grant = True         # give flow-control credit back for every DATA frame
        self.block = None         # (stream id, bytes so far, END_STREAM) of a header block being read
        self.conn_window = 65535
        self.peer_initial = 65535
        self.peer_settings = {}
        self.settings_acks = 0
        self.ping_acks = 0

    # -- sending

    def send(self, data):
        """Writes bytes; a gateway that stopped reading (or closed) only marks the connection."""
        if self.closed or self.send_blocked or self.send_failed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except socket.timeout:
            self.send_blocked = True
        except (ssl.SSLError, OSError):
            self.send_failed = True   # what the gateway sent before it closed is still read
        return False

    def start(self, ack_settings=True):
        self.auto_ack = ack_settings
        s = SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 1 << 24, SettingsFrame.ENABLE_PUSH: 0})
        self.send(PREFACE + s.serialize() + WindowUpdateFrame(0, window_increment=1 << 30).serialize())

    def stream(self, sid):
        return self.streams.setdefault(sid, {"status": None, "reset": None, "ended": False, "body_len": 0,
                                             "headers": {}, "_sha": hashlib.sha256(), "_body": bytearray(),
                                             "window": self.peer_initial})

    def headers(self, sid, fields, end_stream=True, raw_block=None):
        """HEADERS (+ CONTINUATION for a block over one frame) with these fields, encoded as given."""
        self.stream(sid)
        block = raw_block if raw_block is not None else self.enc.encode(fields)
        chunks = [block[i:i + MAX_FRAME] for i in range(0, len(block), MAX_FRAME)] or [b""]
        out = bytearray()
        for i, c in enumerate(chunks):
            flags = (["END_HEADERS"] if i == len(chunks) - 1 else []) + (["END_STREAM"] if i == 0 and end_stream else [])
            frame = HeadersFrame(sid, data=c, flags=flags) if i == 0 else ContinuationFrame(sid, data=c, flags=flags)
            out += frame.serialize()
        self.send(bytes(out))

    def get(self, sid, path="/", authority=None, extra=(), method="GET", end_stream=True):
        fields = [(":method", method), (":scheme", "https"), (":authority", authority or self.sni), (":path", path)]
        self.headers(sid, fields + list(extra), end_stream=end_stream)

    def data(self, sid, payload, end_stream=True):
        """DATA within the gateway's flow-control windows; stops when the stream is answered or reset."""
        st, off = self.stream(sid), 0
        while off < len(payload) and not self.closed:
            if st["reset"] is not None or st["ended"]:
                return False
            n = min(MAX_FRAME, len(payload) - off, self.conn_window, st["window"])
            if n <= 0:
                if not self.read_one():
                    return False
                continue
            last = off + n == len(payload)
            self.send(DataFrame(sid, data=payload[off:off + n], flags=["END_STREAM"] if last and end_stream else []).serialize())
            self.conn_window -= n
            st["window"] -= n
            off += n
        if not payload and end_stream:
            self.send(DataFrame(sid, data=b"", flags=["END_STREAM"]).serialize())
        return off == len(payload)

    def rst(self, sid, code=CANCEL):
        self.send(RstStreamFrame(sid, error_code=code).serialize())

    # -- receiving

    def read_one(self, timeout=None):
        """Reads and handles one frame; False on timeout or once the connection is closed."""
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            if self.closed:
                return False
            self.sock.settimeout(timeout or self.timeout)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ssl.SSLError, OSError):
                chunk = b""
            if not chunk:
                self.closed = True
                return False
            self.buf += chunk
        frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]), strict=False)
        frame.parse_body(memoryview(self.buf[9:9 + length]))
        del self.buf[:9 + length]
        self.handle(frame, length)
        return True

    def handle(self, f, length):
        name = "ORIGIN" if isinstance(f, ExtensionFrame) and f.type == ORIGIN_TYPE else type(f).__name__.replace("Frame", "").upper()
        if len(self.types) < 200:
            self.types.append(name)
        if isinstance(f, SettingsFrame):
            if "ACK" in f.flags:
                self.settings_acks += 1
            else:
                self.peer_settings.update({str(k): v for k, v in f.settings.items()})
                new = f.settings.get(SettingsFrame.INITIAL_WINDOW_SIZE)
                if new is not None:
                    for st in self.streams.values():
                        st["window"] += new - self.peer_initial
                    self.peer_initial = new
                if self.auto_ack:
                    self.send(SettingsFrame(0, flags=["ACK"]).serialize())
        elif isinstance(f, PingFrame):
            if "ACK" in f.flags:
                self.ping_acks += 1
            elif self.auto_ack:
                self.send(PingFrame(0, opaque_data=f.opaque_data, flags=["ACK"]).serialize())
        elif isinstance(f, (HeadersFrame, ContinuationFrame)):
            if isinstance(f, HeadersFrame):
                self.block = (f.stream_id, bytearray(), "END_STREAM" in f.flags)
            self.block[1].extend(f.data)
            if "END_HEADERS" in f.flags:
                sid, block, end = self.block
                self.block = None
                st = self.stream(sid)
                for k, v in self.dec.decode(bytes(block)):
                    if k == ":status":
                        st["status"] = int(v)
                    else:
                        st["headers"][k] = v
                if end:
                    st["ended"] = True
        elif isinstance(f, DataFrame):
            st = self.stream(f.stream_id)
            st["body_len"] += len(f.data)
            st["_sha"].update(f.data)
            if len(st["_body"]) < 65536:
                st["_body"] += f.data
            if "END_STREAM" in f.flags:
                st["ended"] = True
            if self.grant and length > 0:
                out = WindowUpdateFrame(0, window_increment=length).serialize()
                if not st["ended"] and st["reset"] is None:
                    out += WindowUpdateFrame(f.stream_id, window_increment=length).serialize()
                self.send(out)
        elif isinstance(f, RstStreamFrame):
            self.stream(f.stream_id)["reset"] = f.error_code
        elif isinstance(f, GoAwayFrame):
            self.goaways.append({"code": f.error_code, "last_stream": f.last_stream_id,
                                 "debug": f.additional_data.decode("utf-8", "replace")})
        elif isinstance(f, WindowUpdateFrame):
            if f.stream_id == 0:
                self.conn_window += f.window_increment
            else:
                self.stream(f.stream_id)["window"] += f.window_increment
        elif name == "ORIGIN":
            body, self.origin = bytes(f.body), []
            while len(body) >= 2:
                n = int.from_bytes(body[:2], "big")
                self.origin.append(body[2:2 + n].decode())
                body = body[2 + n:]

    def until(self, done, timeout=None):
        """Reads frames until `done()` holds or the connection closes (or the timeout passes)."""
        end = time.monotonic() + (timeout or self.timeout)
        while not done() and not self.closed and time.monotonic() < end:
            self.read_one(timeout=max(0.05, end - time.monotonic()))
        return done()

    def answered(self, *sids):
        return lambda: all(self.stream(s)["ended"] or self.stream(s)["reset"] is not None for s in sids)

    def drain(self, timeout=None):
        """Reads until the gateway closes the connection."""
        self.until(lambda: False, timeout)

    def result(self):
        streams = {}
        for sid, st in sorted(self.streams.items()):
            r = {k: v for k, v in st.items() if not k.startswith("_") and k != "window"}
            r["sha256"] = st["_sha"].hexdigest()
            r["body"] = bytes(st["_body"][:4096]).decode("utf-8", "replace")
            streams[str(sid)] = r
        counts = {}
        for t in self.types:
            counts[t] = counts.get(t, 0) + 1
        return {"alpn": self.alpn, "streams": streams, "goaways": self.goaways, "origin": self.origin,
                "frames": self.types[:40], "counts": counts, "closed": self.closed, "send_blocked": self.send_blocked,
                "send_failed": self.send_failed,
                "settings": self.peer_settings, "settings_acks": self.settings_acks, "ping_acks": self.ping_acks}


def rss_kb(pid):
    if not pid:
        return 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pattern(n):
    """gateway-echo's /bytes/N body: byte i is i % 251."""
    return bytes(i % 251 for i in range(251)) * (n // 251) + bytes(range(n % 251))


def fresh(args, sni=None, ack=True):
    """A new connection that has sent its preface and SETTINGS."""
    c = Conn(args, sni)
    c.start(ack_settings=ack)
    return c


def request(c, sid, path="/", **kw):
    """A GET (or what **kw says) on stream `sid`, read until it is answered or reset."""
    c.get(sid, path, **kw)
    c.until(c.answered(sid))
