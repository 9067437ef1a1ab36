#!/usr/bin/env python3
"""Heap allocations per proxied keep-alive request, exactly: the gateway (and optionally nginx,
HAProxy or a baseline gateway build) under the count_malloc.so shim, the bench's configuration.

Method:
- The proxy runs with LD_PRELOAD=count_malloc.so (see count_malloc.c: per-thread counters, a
  reporter thread that writes the sums when asked); the origin and the client run without it.
- One TLS connection; W keep-alive requests to warm up (the upstream pool, OpenSSL's and the
  gateway's buffers, lazily built tables), then a snapshot, N requests, a snapshot, 2N requests,
  a snapshot. Each snapshot is taken while the client is idle and only once the counters have
  stopped moving (the proxy has finished the work of the last response).
- allocs per request = (snapshot delta) / requests. The N and 2N intervals must agree (within
  3 %: a proxy's count depends a little on how reads coalesce); if they do not, something is not
  per request (a pool growing, a timer) and the line says so.
- Last, a second of idleness: the allocations a proxy makes with no traffic (timers, the
  gateway's main-thread ticks), which should be 0 or nearly so.
- By caller: the shim also counts each new block or resize by the object holding the return
  address: libswiftCore.so for every Swift allocation (swift_slowAlloc), libssl.so.3 and
  libcrypto.so.3 for OpenSSL's (CRYPTO_malloc tail-calls malloc, so the object that called it
  shows), the executable for the gateway's C shims (and nginx's own code).
- Swift retains and releases: the same shim counts the calls of swift_retain, swift_release (and
  their _n, nonatomic and bridgeObject forms) on real objects that reach libswiftCore through the
  PLT, i.e. every one the program's own code makes, by caller (see count_malloc.c; the calls
  libswiftCore makes inside itself are not seen: callgrind_rr.py counts those too). Reported per
  request beside the allocations and checked for scaling like them. Allocations are also split
  into Swift's (caller libswiftCore.so) and OpenSSL's (libssl, libcrypto).
The client is a small Python ssl client (one request in flight, `Host: 127.0.0.1:PORT` like wrk)
that checks every status and body length. Back to back (the default), the next request can
arrive while the proxy is still finishing the previous one, and a count that depends on timing
moves a little between runs (the gateway's did by about 1 % before its pooled buffers);
--pace-us 1000 lets each request find the proxy idle.
"""
import argparse, json, os, re, shutil, socket, ssl, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench.d"))
import bench  # noqa: E402  (PKI, proxy configurations, process trees: the same as scripts/bench)

SHIM_SRC = os.path.join(HERE, "count_malloc.c")
PATHS = {"ka_small": ("/ok", 3), "ka_16k": ("/16k", 16384)}
FIELDS = ["allocs", "bytes", "frees", "reallocs", "retains", "releases", "retain_calls", "release_calls"]
SWIFT_LIBS = ("libswiftCore.so",)
OPENSSL_LIBS = ("libssl.so.3", "libcrypto.so.3")


def build_shim(out):
    bench.run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-Wl,-z,now", "-o", out, SHIM_SRC, "-ldl", "-lpthread"])
    return out


class Counters:
    """The shim's control directory: env() for the process to count, snapshot() to read it."""

    def __init__(self, shim, d):
        self.shim, self.dir, self.seq = shim, d, 0
        os.makedirs(d, exist_ok=True)

    def env(self, base=None):
        env = dict(base or os.environ)
        env["LD_PRELOAD"] = self.shim
        env["ALLOC_COUNT_DIR"] = self.dir
        return env

    def snapshot(self, pids, timeout=15):
        """{pid: totals} for every pid (each process under the shim answers on its own)."""
        self.seq += 1
        tag = f"s{self.seq}"
        open(os.path.join(self.dir, f"req.{tag}"), "w").close()
        out, end = {}, time.time() + timeout
        while len(out) < len(pids):
            for pid in pids:
                path = os.path.join(self.dir, f"{tag}.{pid}.json")
                if pid not in out and os.path.exists(path):
                    with open(path) as f:
                        out[pid] = json.load(f)
            if time.time() > end:
                missing = [p for p in pids if p not in out]
                raise RuntimeError(f"no allocation report from pid(s) {missing} (is the shim loaded? {self.dir})")
            time.sleep(0.01)
        return out


def delta(after, before):
    """Summed over the processes present in both; per thread for the one-line breakdown."""
    total = {k: 0 for k in FIELDS}
    threads, callers, rr_callers = {}, {}, {}
    for pid, a in after.items():
        b = before.get(pid)
        if b is None:
            continue
        for k in FIELDS:
            total[k] += a["total"][k] - b["total"][k]
        for lib, n in a["by_caller"].items():
            d = n - b["by_caller"].get(lib, 0)
            if d:
                callers[lib] = callers.get(lib, 0) + d
        for lib, n in a.get("rr_by_caller", {}).items():
            d = n - b.get("rr_by_caller", {}).get(lib, 0)
            if d:
                rr_callers[lib] = rr_callers.get(lib, 0) + d
        prev = {t["slot"]: t for t in b["threads"]}
        for t in a["threads"]:
            if t["reporter"]:
                continue
            p = prev.get(t["slot"], {"allocs": 0})
            d = t["allocs"] - p["allocs"]
            if d:
                threads[f"{pid}/{t['tid']}"] = d
    total["callers"] = callers
    total["rr_callers"] = rr_callers
    stable = all(s["stable"] for s in after.values())
    return total, threads, stable


class KeepAlive:
    """One TLS connection, requests one at a time, every response checked."""

    def __init__(self, port, path, body_len):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="api.test")
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        self.body_len = body_len
        self.buf = bytearray()

    def get(self, n, pace_s=0.0):
        """n requests, each sent as soon as the previous response is in (or pace_s later)."""
        sock, buf, req, want = self.sock, self.buf, self.request, self.body_len
        length_re = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
        for _ in range(n):
            if pace_s:
                time.sleep(pace_s)
            sock.sendall(req)
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = bytes(buf[:end + 2])
                    m = length_re.search(head)
                    if not head.startswith(b"HTTP/1.1 200 ") or not m or int(m.group(1)) != want:
                        raise RuntimeError(f"unexpected response: {head[:300]!r}")
                    total = end + 4 + want
                    if len(buf) >= total:
                        del buf[:total]
                        break
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("the proxy closed the keep-alive connection")
                buf += chunk
        if buf:
            raise RuntimeError(f"{len(buf)} unexpected bytes after the responses")

    def close(self):
        self.sock.close()


def agree(a, b):
    """The counter is exact, but a proxy's own count per request may depend a little on timing
    (one read or two for a response, a buffer released when a read finds nothing): nginx's
    moves by up to 1 % for 16 KiB responses. Intervals that differ by more than 3 % (or
    0.05 allocs) mean something that is not per request (a pool growing, a timer)."""
    return abs(a - b) <= max(0.03 * max(a, b), 0.05)


def measure(counters, proc, port, scenario, requests, warmup, check=True, idle_s=1.0, pace_s=0.0):
    """Per-request deltas for intervals of N (and 2N) requests on one warmed-up connection."""
    path, body_len = PATHS[scenario]
    pids = bench.tree(proc.pid)
    c = KeepAlive(port, path, body_len)
    try:
        c.get(warmup)
        snaps = [counters.snapshot(pids)]
        intervals = [requests, 2 * requests] if check else [requests]
        runs = []
        for n in intervals:
            t0 = time.time()
            c.get(n, pace_s)
            wall = time.time() - t0
            snaps.append(counters.snapshot(pids))
            total, threads, stable = delta(snaps[-1], snaps[-2])
            callers = {lib: x / n for lib, x in total.pop("callers").items()}
            runs.append({"requests": n, "wall_s": wall, "stable": stable, "threads": threads,
                         "callers_per_req": callers,
                         "swift_allocs_per_req": sum(x for lib, x in callers.items() if lib in SWIFT_LIBS),
                         "openssl_allocs_per_req": sum(x for lib, x in callers.items() if lib in OPENSSL_LIBS),
                         "rr_callers_per_req": {lib: x / n for lib, x in total.pop("rr_callers").items()},
                         **{f"{k}_per_req": total[k] / n for k in FIELDS}, **{f"{k}_total": total[k] for k in FIELDS}})
        idle = None
        if idle_s:
            time.sleep(idle_s)
            total, _, _ = delta(counters.snapshot(pids), snaps[-1])
            idle = total["allocs"] / idle_s
    finally:
        c.close()
    first = runs[0]
    r = {k: first[k] for k in first if k.endswith("_per_req")}
    r.update(runs=runs, idle_allocs_per_s=idle,
             swift_allocs_per_req=first["swift_allocs_per_req"], openssl_allocs_per_req=first["openssl_allocs_per_req"],
             scales=all(agree(x["allocs_per_req"], first["allocs_per_req"])
                        and agree(x["retains_per_req"], first["retains_per_req"]) for x in runs))
    return r


def fmt(x, digits=2):
    return "-" if x is None else f"{x:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gateway", required=True, help="the gateway binary")
    ap.add_argument("--echo", help="the gateway-echo binary (origin); needed for --origin echo")
    ap.add_argument("--baseline", help="a second gateway binary, shown as proxy `baseline`")
    ap.add_argument("--proxies", default="gateway",
                    help="gateway,baseline,nginx,haproxy (default: gateway; --baseline adds baseline after gateway)")
    ap.add_argument("--scenarios", default="ka_small,ka_16k")
    ap.add_argument("--requests", "-n", type=int, default=10000, help="N: requests per measured interval")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up requests (default: N)")
    ap.add_argument("--no-check", action="store_true", help="skip the 2N interval (scaling check) and the idle second")
    ap.add_argument("--origin", choices=["echo", "nginx"], default="echo",
                    help="gateway-echo (default) or the bench's nginx origin")
    ap.add_argument("--pace-us", type=int, default=0,
                    help="wait this long before each measured request, so that each one finds the proxy idle"
                         " (e.g. 1000; the count is then the same to the call; default: back to back)")
    ap.add_argument("--json", help="write the results as JSON to this file")
    args = ap.parse_args()
    warmup = args.requests if args.warmup is None else args.warmup
    proxies = [p for p in args.proxies.split(",") if p]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in PATHS:
            sys.exit(f"unknown scenario {s}; known: {', '.join(PATHS)}")
    if args.baseline and "baseline" not in proxies:
        proxies.insert(proxies.index("gateway") + 1 if "gateway" in proxies else 0, "baseline")
    if "baseline" in proxies and not args.baseline:
        sys.exit("proxy `baseline` needs --baseline BIN")
    for p in proxies:
        if p in ("nginx", "haproxy") and not shutil.which(p):
            sys.exit(f"{p} is not installed")
    binaries = {"gateway": args.gateway, "baseline": args.baseline}

    work, pki = bench.work_with_pki("gw-allocs-")
    shim = build_shim(f"{work}/count_malloc.so")
    origin_port = bench.free_port()
    if args.origin == "echo":
        if not args.echo:
            sys.exit("--origin echo needs --echo BIN")
        origin = bench.start_echo(args.echo, work, pki, origin_port)
    else:
        origin = bench.start_origin(work, pki, origin_port)
    results = []
    try:
        for s in scenarios:
            for proxy in proxies:
                counters = Counters(shim, tempfile.mkdtemp(prefix=f"count-{proxy}-", dir=work))
                port = bench.free_port()
                p = bench.start_proxy(proxy, work, pki, port, [origin_port], "api", binaries.get(proxy), env=counters.env())
                try:
                    r = measure(counters, p, port, s, args.requests, warmup, check=not args.no_check,
                                idle_s=0 if args.no_check else 1.0, pace_s=args.pace_us / 1e6)
                finally:
                    bench.stop(p)
                r.update(scenario=s, proxy=proxy)
                results.append(r)
                runs = " / ".join(f"{x['allocs_per_req']:.2f} ({x['requests']})" for x in r["runs"])
                rr = " / ".join(f"{x['retains_per_req']:.2f}+{x['releases_per_req']:.2f}" for x in r["runs"])
                print(f"{s:9s} {proxy:8s} allocs/req {runs}; bytes/req {r['bytes_per_req']:,.1f}; retains+releases/req {rr}"
                      f"{'' if r['scales'] else '  ** intervals disagree **'}", file=sys.stderr, flush=True)
    finally:
        bench.stop(origin)
        shutil.rmtree(work, ignore_errors=True)

    origin_name = "gateway-echo" if args.origin == "echo" else "nginx"
    print(f"\nHeap calls per proxied keep-alive request (LD_PRELOAD count_malloc.so; origin {origin_name};"
          f" one TLS connection, {warmup} warm-up requests, intervals of {args.requests}"
          f"{'' if args.no_check else f' and {2 * args.requests}'} requests"
          f"{f', each sent {args.pace_us} µs after the previous response' if args.pace_us else ', back to back'})\n")
    head = ["scenario", "proxy", "allocs/req", "of them Swift (libswiftCore)", "of them OpenSSL", "bytes/req", "frees/req",
            "reallocs/req", "Swift retains/req", "Swift releases/req", "retain + release calls/req (NULL and immortal included)"]
    if not args.no_check:
        head += [f"allocs/req over {2 * args.requests}", "idle allocs/s"]
    head += ["allocs + reallocs per request by immediate caller",
             "retains + releases per request by immediate caller",
             "threads allocating (pid/tid: allocs in the first interval)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        cells = [r["scenario"], r["proxy"], fmt(r["allocs_per_req"]), fmt(r["swift_allocs_per_req"]),
                 fmt(r["openssl_allocs_per_req"]), fmt(r["bytes_per_req"], 1), fmt(r["frees_per_req"]),
                 fmt(r["reallocs_per_req"]), fmt(r["retains_per_req"]), fmt(r["releases_per_req"]),
                 f'{fmt(r["retain_calls_per_req"])} + {fmt(r["release_calls_per_req"])}']
        if not args.no_check:
            cells += [fmt(r["runs"][-1]["allocs_per_req"]) + ("" if r["scales"] else " (disagrees)"), fmt(r["idle_allocs_per_s"], 1)]
        by = r["runs"][0]["callers_per_req"]
        cells.append(", ".join(f"{lib} {x:.2f}" for lib, x in sorted(by.items(), key=lambda kv: -kv[1])) or "none")
        rr_by = r["runs"][0]["rr_callers_per_req"]
        cells.append(", ".join(f"{lib} {x:.2f}" for lib, x in sorted(rr_by.items(), key=lambda kv: -kv[1])) or "none")
        th = r["runs"][0]["threads"]
        cells.append(", ".join(f"{k}: {v}" for k, v in sorted(th.items(), key=lambda kv: -kv[1])) or "none")
        print("| " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if not all(r["scales"] for r in results):
        print("\nwarning: the N and 2N intervals disagree for some line: not every allocation there is per request",
              file=sys.stderr)


if __name__ == "__main__":
    main()
