#!/usr/bin/env python3
"""Connection flood against a running TLS proxy (scripts/bench's `flood` scenario), while a normal
client keeps making requests: N slow-loris TLS connections (handshake done, then a request head
trickled one header line a second, never finished) + N TCP connections that never send a
ClientHello. Prints one JSON line.
  flood.py --port P --pid PROXY_ROOT_PID --n 2000 [--host api.test] [--hold 10] [--after 30]
Phases: normal requests before (latency baseline) -> RSS before -> open the 2N connections
(at most --parallel opening at once) -> RSS with all open -> --hold seconds of flood with the
normal client running (latency during) -> we close every attacker still open -> --after seconds
-> RSS after. The proxy's RSS (its whole process tree) is also sampled every 0.25 s for the peak.
Normal requests: a new TLS connection each (handshake + GET /ok + Connection: close), one at a time,
so the latency includes getting accepted and handshaken while the flood holds the proxy's slots."""
import argparse, asyncio, json, os, ssl, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (process trees and RSS, as the other scenarios measure them)


def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.minimum_version = ssl.TLSVersion.TLSv1_3
    return c


async def normal_once(a, c):
    t = time.monotonic()
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", a.port, ssl=c, server_hostname=a.host), 10)
        w.write(f"GET /ok HTTP/1.1\r\nHost: {a.host}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(r.read(), 10)
        w.close()
        ok = data.startswith(b"HTTP/1.1 200")
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        ok = False
    return (time.monotonic() - t) * 1000, ok


async def normal_for(a, c, count=None, until=None):
    lat, fails = [], 0
    while (count is None or len(lat) + fails < count) and (until is None or time.monotonic() < until):
        ms, ok = await normal_once(a, c)
        if ok:
            lat.append(ms)
        else:
            fails += 1
        await asyncio.sleep(0.01)
    return lat, fails


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * q))], 2)


class Flood:
    def __init__(self, a):
        self.a, self.c = a, ctx()
        self.stop = asyncio.Event()
        self.gate = asyncio.Semaphore(a.parallel)
        self.st = {"slow_open": 0, "slow_failed": 0, "slow_closed_by_proxy": 0, "slow_answered": {},
                   "silent_open": 0, "silent_failed": 0, "silent_closed_by_proxy": 0}
        self.open_now = 0
        self.writers = []

    async def slow(self, i):
        a, st = self.a, self.st
        try:
            async with self.gate:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", a.port, ssl=self.c, server_hostname=a.host), 30)
                w.write(f"GET /slow/{i} HTTP/1.1\r\nHost: {a.host}\r\n".encode())
                await w.drain()
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            st["slow_failed"] += 1
            return
        st["slow_open"] += 1
        self.open_now += 1
        self.writers.append(w)
        try:
            while not self.stop.is_set():
                try:
                    d = await asyncio.wait_for(r.read(64), 1.0)
                except asyncio.TimeoutError:
                    w.write(b"X-Slow: 1\r\n")       # one more header line, the head never ends
                    await w.drain()
                    continue
                if self.stop.is_set():
                    break
                if d.startswith(b"HTTP/1."):
                    code = d[9:12].decode(errors="replace")
                    st["slow_answered"][code] = st["slow_answered"].get(code, 0) + 1
                st["slow_closed_by_proxy"] += 1
                break
        except (OSError, ssl.SSLError):
            if not self.stop.is_set():
                st["slow_closed_by_proxy"] += 1
        finally:
            self.open_now -= 1

    async def silent(self):
        st = self.st
        try:
            async with self.gate:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.a.port), 30)
        except (OSError, asyncio.TimeoutError):
            st["silent_failed"] += 1
            return
        st["silent_open"] += 1
        self.open_now += 1
        self.writers.append(w)
        try:
            stop = asyncio.ensure_future(self.stop.wait())
            read = asyncio.ensure_future(r.read(1))
            done, _ = await asyncio.wait({stop, read}, return_when=asyncio.FIRST_COMPLETED)
            if read in done and stop not in done and not self.stop.is_set():
                st["silent_closed_by_proxy"] += 1
            for f in (stop, read):
                f.cancel()
        except OSError:
            st["silent_closed_by_proxy"] += 1
        finally:
            self.open_now -= 1


async def main_async(a):
    c = ctx()
    rss = lambda: bench.rss_bytes(a.pid)
    peak = {"rss": 0}

    async def sampler():
        while True:
            peak["rss"] = max(peak["rss"], rss())
            await asyncio.sleep(0.25)

    base_lat, base_fails = await normal_for(a, c, count=a.normal)
    await asyncio.sleep(0.5)
    r0 = rss()
    f = Flood(a)
    sample = asyncio.ensure_future(sampler())
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(f.slow(i)) for i in range(a.n)] + [asyncio.ensure_future(f.silent()) for _ in range(a.n)]
    # All opened (or failed), or a minute: then the proxy holds what it will hold.
    while f.st["slow_open"] + f.st["slow_failed"] + f.st["silent_open"] + f.st["silent_failed"] < 2 * a.n \
            and time.monotonic() - t0 < 60:
        await asyncio.sleep(0.1)
    open_s = time.monotonic() - t0
    await asyncio.sleep(0.5)
    r1, held = rss(), f.open_now
    during_lat, during_fails = await normal_for(a, c, until=time.monotonic() + a.hold)
    held_end = f.open_now
    f.stop.set()
    for w in f.writers:
        try:
            w.transport.abort()
        except Exception:
            pass
    await asyncio.gather(*tasks, return_exceptions=True)
    sample.cancel()
    peak_rss = max(peak["rss"], r1)
    await asyncio.sleep(a.after)
    r2 = rss()
    after_lat, after_fails = await normal_for(a, c, count=a.normal)
    st = f.st
    return {
        "n": a.n, "open_s": round(open_s, 2), "held_when_all_open": held, "held_at_end_of_hold": held_end,
        "rss_before": r0, "rss_all_open": r1, "rss_peak": peak_rss, "rss_after": r2,
        "bytes_per_conn": (r1 - r0) / held if held else None,
        "peak_bytes_per_conn": (peak_rss - r0) / (2 * a.n),
        "after_over_before": r2 / r0 if r0 else None,
        "p50_ms_before": pct(base_lat, 0.5), "p99_ms_before": pct(base_lat, 0.99),
        "p50_ms_during": pct(during_lat, 0.5), "p99_ms_during": pct(during_lat, 0.99),
        "p50_ms_after": pct(after_lat, 0.5), "normal_requests_during": len(during_lat),
        "normal_fails": base_fails + during_fails + after_fails, **st,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="the proxy's root pid (its whole tree is measured)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--host", default="api.test")
    ap.add_argument("--hold", type=float, default=15, help="seconds of flood once all are open")
    ap.add_argument("--after", type=float, default=30, help="seconds after the flood before the last RSS reading")
    ap.add_argument("--normal", type=int, default=50, help="normal requests before and after")
    ap.add_argument("--parallel", type=int, default=200, help="connections being opened at once")
    a = ap.parse_args()
    print(json.dumps(asyncio.run(main_async(a))), flush=True)


if __name__ == "__main__":
    main()
