#!/usr/bin/env python3
"""What an idle connection holds on the heap, block by block, named by its allocator's caller.

The gateway runs under live_blocks.c (LD_PRELOAD: every live malloc block, its size and the
return addresses of its allocation), the bench's configuration in front of a gateway-echo
origin. N TLS connections are opened one at a time and each is left idle after one GET /ok
(HTTP/1.1, or HTTP/2 with --h2: the `h2` package, as the bench's mem_idle_h2), then 2.5 s pass
(the gateway's idle sweeps give back what holds nothing), and the live blocks are written out;
the same is done once before the first connection. The difference, divided by N, is the live
heap per idle connection: requested bytes, without malloc's headers and rounding, without the
pages nghttp2 maps itself, and without fragmentation, which RSS (the bench's mem_idle) counts.
Blocks are grouped by size and by the first two frames outside malloc and the Swift runtime;
a group of about N blocks (or a multiple) is per connection. Names come from addr2line: inside a
library without debug symbols (OpenSSL's, nghttp2's) a name is the nearest exported symbol before
the address, a hint at the code rather than its function.

    scripts/idlemem [--conns 1000] [--h2 | --both] [--min-share 0.9]
"""
import argparse, collections, os, shutil, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench.d"))
import bench  # noqa: E402  (PKI, the proxy configuration, ports: the same as scripts/bench)

ALLOCATORS = ("libc.so", "libswiftCore.so", "live_blocks.so")


def build_shim(out):
    bench.run(["gcc", "-O1", "-Wall", "-shared", "-fPIC", "-o", out, os.path.join(HERE, "live_blocks.c"), "-ldl", "-lpthread"])
    return out


def dump(d, pid, timeout=60):
    """The live blocks of `pid` now: [(size, (frame, ...))]."""
    path = os.path.join(d, f"blocks-{pid}.txt")
    if os.path.exists(path):
        os.unlink(path)
    open(os.path.join(d, "trigger"), "w").close()
    end = time.time() + timeout
    while os.path.exists(os.path.join(d, "trigger")):
        if time.time() > end:
            raise RuntimeError(f"pid {pid} wrote no block list (is live_blocks.so loaded?)")
        time.sleep(0.1)
    with open(path) as f:
        return [(int(p[0]), tuple(p[1:])) for p in (line.split() for line in f) if p]


class Symbols:
    """OBJECT+OFFSET -> 'object: function' (addr2line, Swift names demangled), cached."""

    def __init__(self):
        self.cache = {}

    def resolve(self, frames):
        by_obj = collections.defaultdict(set)
        for f in frames:
            if f not in self.cache and "+" in f:
                obj, off = f.rsplit("+", 1)
                by_obj[obj].add(off)
        for obj, offs in by_obj.items():
            offs = sorted(offs)
            # The return address points after the call: one byte back is inside it.
            out = subprocess.run(["addr2line", "-f", "-e", obj] + [hex(int(o, 16) - 1) for o in offs],
                                 capture_output=True, text=True).stdout.split("\n")
            names = out[0::2]
            mangled = [n for n in names if n.startswith("$s")]
            demangled = {}
            if mangled and shutil.which("swift"):
                r = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(mangled),
                                   capture_output=True, text=True).stdout.split("\n")
                demangled = dict(zip(mangled, r))
            for off, name in zip(offs, names):
                self.cache[f"{obj}+{off}"] = f"{os.path.basename(obj)}: {demangled.get(name, name)}"
        for f in frames:
            self.cache.setdefault(f, f)

    def __getitem__(self, f):
        return self.cache[f]


def caller(frames):
    """The first two frames outside the allocators: who asked, and who asked them."""
    outside = [f for f in frames if not any(a in f.rsplit("+", 1)[0] for a in ALLOCATORS)]
    return tuple(outside[:2])


def per_connection(before, after, n, min_share):
    """Groups (size, caller) that grew by at least min_share * n blocks: [(blocks/conn, size, caller)]."""
    count = collections.Counter((size, caller(fr)) for size, fr in after)
    count.subtract((size, caller(fr)) for size, fr in before)
    return sorted(((c / n, size, who) for (size, who), c in count.items() if c >= min_share * n),
                  key=lambda r: -r[0] * r[1])


def measure(args, work, pki, shim, origin_port, http2):
    d = tempfile.mkdtemp(prefix="blocks-", dir=work)
    # OpenSSL's blocks as OpenSSL holds them: the block cache would keep freed ones live between
    # the two snapshots (and hand them to the next connection), mixing up what a connection holds.
    env = dict(os.environ, LD_PRELOAD=shim, LIVE_BLOCKS_DIR=d, GATEWAY_OPENSSL_BLOCK_CACHE="off")
    port = bench.free_port()
    p = bench.start_proxy("gateway", work, pki, port, [origin_port], "api", args.gateway, env=env)
    conns = []
    try:
        time.sleep(0.5)
        before = dump(d, p.pid)
        bench.idle_connections(port, args.conns, http2, conns)
        time.sleep(2.5)   # the gateway gives an idle HTTP/2 connection's memory back on its second idle sweep
        after = dump(d, p.pid)
    finally:
        for s in conns:
            s.close()
        bench.stop(p)
    return before, after


def report(name, before, after, n, min_share, symbols):
    total = (sum(s for s, _ in after) - sum(s for s, _ in before)) / n
    blocks = (len(after) - len(before)) / n
    rows = per_connection(before, after, n, min_share)
    symbols.resolve({f for _, _, who in rows for f in who})
    print(f"\n{name}: {total:,.0f} bytes in {blocks:.1f} live blocks per idle connection (requested sizes;"
          f" {n} connections)\n")
    print("| bytes/conn | blocks/conn | size | allocated by | called from |")
    print("|---|---|---|---|---|")
    shown = 0
    for per, size, who in rows:
        names = [symbols[f] for f in who] + ["", ""]
        print(f"| {per * size:,.0f} | {per:.2f} | {size:,} | {names[0][:90]} | {names[1][:90]} |")
        shown += per * size
    print(f"\n{shown:,.0f} of the {total:,.0f} bytes are in groups of at least {min_share:.0%} of a block per connection.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--echo", required=True, help="the gateway-echo binary (the origin)")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--h2", action="store_true", help="idle HTTP/2 connections instead of HTTP/1.1")
    ap.add_argument("--both", action="store_true", help="HTTP/1.1, then HTTP/2")
    ap.add_argument("--min-share", type=float, default=0.9,
                    help="show groups with at least this many blocks per connection (default 0.9)")
    args = ap.parse_args()
    protocols = [False, True] if args.both else [args.h2]
    work, pki = bench.work_with_pki("gw-idlemem-")
    shim = build_shim(f"{work}/live_blocks.so")
    origin_port = bench.free_port()
    origin = bench.start_echo(args.echo, work, pki, origin_port)
    symbols = Symbols()
    try:
        for http2 in protocols:
            before, after = measure(args, work, pki, shim, origin_port, http2)
            report("HTTP/2" if http2 else "HTTP/1.1", before, after, args.conns, args.min_share, symbols)
    finally:
        bench.stop(origin)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
