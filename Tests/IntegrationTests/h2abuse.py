"""The abuse scenarios of h2client.py (SPEC §12 "Abuse"), one function each.

Every scenario opens a bystander connection and gets a 200 on it first, then abuses a second
connection until the gateway sends GOAWAY and closes it (or the flood is all sent), reading the
gateway's VmRSS as it goes, and finally asks the bystander for another 200. The result:
{"bystander": ..., "attack": ..., "rss_before_kb", "rss_peak_kb", "rss_after_kb"}.
"""
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, SettingsFrame

from h2conn import fresh, request, rss_kb

SCENARIOS = {}
BATCH = 200   # frames per write: big enough to arrive faster than the gateway answers


def abuse(fn):
    """Wraps an attack with the bystander before and after, and the RSS readings."""
    def run(args):
        bystander = fresh(args)
        request(bystander, 1, "/ok")
        before = rss_kb(args.pid)
        attack = fresh(args, ack=fn.__name__ != "too_many_streams")
        peak = [before]
        fn(args, attack, lambda: peak.append(rss_kb(args.pid)))
        attack.drain(timeout=10)
        peak.append(rss_kb(args.pid))
        request(bystander, 3, "/ok")
        return {"bystander": bystander.result(), "attack": attack.result(),
                "rss_before_kb": before, "rss_peak_kb": max(peak), "rss_after_kb": rss_kb(args.pid)}
    SCENARIOS[fn.__name__.replace("_", "-")] = run
    return fn


def flood(c, frames, sample):
    """Writes `frames` (bytes each) in batches without reading, until all are sent or the
    gateway stops reading or closes. "Stops reading": no write goes through for half a second.
    The gateway waits 1 s after a connection error for its GOAWAY to leave (it sits behind the
    ACKs this client has not read): a client that waited as long before it reads raced that
    close, and lost the GOAWAY to the RST once in a while."""
    c.sock.settimeout(0.5)
    for i in range(0, len(frames), BATCH):
        if not c.send(b"".join(frames[i:i + BATCH])):
            break
        sample()


def base(c, path="/ok"):
    return [(":method", "GET"), (":scheme", "https"), (":authority", c.sni), (":path", path)]


@abuse
def rapid_reset(args, c, sample):
    """CVE-2023-44487: streams opened and reset at once, far past the reset budget."""
    frames = []
    for i in range(args.count or 5000):
        sid = 1 + 2 * i
        c.stream(sid)
        frames.append(HeadersFrame(sid, data=c.enc.encode(base(c)), flags=["END_HEADERS", "END_STREAM"]).serialize()
                      + b"\x00\x00\x04\x03\x00" + sid.to_bytes(4, "big") + (8).to_bytes(4, "big"))
    flood(c, frames, sample)


@abuse
def continuation_flood(args, c, sample):
    """CVE-2024-28182: one header block cut into a hundred CONTINUATION frames."""
    block = c.enc.encode(base(c) + [(f"x-c{i}", "v") for i in range(100)])
    step = max(1, len(block) // 101)
    frames = [HeadersFrame(1, data=block[:step], flags=["END_STREAM"]).serialize()]
    frames += [ContinuationFrame(1, data=block[i:i + step]).serialize() for i in range(step, len(block), step)]
    flood(c, frames, sample)


@abuse
def header_block_flood(args, c, sample):
    """A few CONTINUATION frames carrying a header block over 4× max_header_size (--size)."""
    size = args.size or 16384
    fields = base(c) + [(f"x-f{i}", "v" * 12000) for i in range(5 * size // 12000 + 2)]
    block = c.enc.encode(fields, huffman=False)
    chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
    frames = [HeadersFrame(1, data=chunks[0], flags=["END_STREAM"]).serialize()]
    frames += [ContinuationFrame(1, data=ch).serialize() for ch in chunks[1:]]   # never END_HEADERS
    flood(c, frames, sample)


@abuse
def settings_flood(args, c, sample):
    """Thousands of SETTINGS, none of their ACKs read."""
    flood(c, [SettingsFrame(0).serialize()] * (args.count or 10000), sample)


@abuse
def ping_flood(args, c, sample):
    """Thousands of PINGs, none of their ACKs read."""
    flood(c, [PingFrame(0, opaque_data=b"12345678").serialize()] * (args.count or 10000), sample)


@abuse
def hpack_bomb(args, c, sample):
    """A 4 kB field put in the HPACK table once, then referenced a hundred times: a small block
    that decodes to far over the header list limit."""
    big = ("x-bomb", "a" * 4000)
    c.headers(1, base(c) + [big] * 100)
    sample()


@abuse
def backwards(args, c, sample):
    """Stream 5, then stream 3 (ids must increase, RFC 9113 §5.1.1)."""
    request(c, 5, "/ok")
    c.get(3, "/ok")
    sample()


@abuse
def too_many_streams(args, c, sample):
    """--count (http2_max_concurrent_streams) open streams plus two, before our SETTINGS ACK
    (REFUSED_STREAM for the extra), then one more after it (a connection error)."""
    n = args.count
    for i in range(n + 2):
        c.get(1 + 2 * i, "/upload", method="POST", end_stream=False)
    extra = [1 + 2 * n, 3 + 2 * n]
    c.until(lambda: all(c.stream(s)["reset"] is not None for s in extra))
    sample()
    c.send(SettingsFrame(0, flags=["ACK"]).serialize())
    c.get(5 + 2 * n, "/upload", method="POST", end_stream=False)
