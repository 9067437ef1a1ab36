#!/usr/bin/env python3
"""Cross-check of the shim's retain/release counts: Swift retain/release calls per proxied keep-alive
request as callgrind counts them (every call, from every object, libswiftCore's calls inside itself
included; NULL and negative arguments included, like count_malloc's retain_calls/release_calls).
  python3 scripts/allocs.d/callgrind_rr.py --gateway .build/release/gateway --echo .build/release/gateway-echo [-n 1000]
The gateway runs under valgrind --tool=callgrind from a `strip --strip-debug` copy (valgrind 3.19 cannot
read Swift's DWARF 5), behind gateway-echo, with scripts/bench's configuration; one TLS connection,
W warm-up requests, counters zeroed (callgrind_control -z), N requests, a dump (-d); the dump's call
counts into swift_retain, swift_release, their _n and bridgeObject forms, divided by N, by calling object.
Prints one line per (callee, calling object) and the totals. Slow (~30x): keep N around 1,000."""
import argparse, collections, glob, os, shutil, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench.d"))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import allocs  # noqa: E402

RETAINS = ("swift_retain", "swift_retain_n", "swift_bridgeObjectRetain", "swift_bridgeObjectRetain_n",
           "swift_nonatomic_retain", "swift_nonatomic_retain_n")
RELEASES = tuple(x.replace("etain", "elease").replace("Retain", "Release") for x in RETAINS)


def calls(path):
    """{(callee, calling object, calling function if in libswiftCore): calls} from an uncompressed dump."""
    out, ob, fn, cfn = collections.Counter(), None, None, None
    for line in open(path, errors="replace"):
        if line.startswith("ob="):
            ob = os.path.basename(line[3:].strip())
        elif line.startswith("fn="):
            fn = line[3:].strip()
        elif line.startswith("cfn="):
            cfn = line[4:].strip()
        elif line.startswith("calls=") and cfn in RETAINS + RELEASES:
            out[(cfn, ob, fn if ob.startswith("libswiftCore") else "")] += int(line.split()[0][6:])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--echo", required=True)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--path", default="/ok", choices=["/ok", "/16k"])
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gw-callgrind-")
    try:
        pki = f"{work}/pki"
        os.makedirs(pki)
        bench.make_pki(pki)
        gw = f"{work}/gateway"
        subprocess.run(["strip", "--strip-debug", "-o", gw, a.gateway], check=True)
        wrapper = f"{work}/vg-gateway"
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --dump-instr=no --compress-strings=no --compress-pos=no"
                    f" --callgrind-out-file={work}/cg.%p {gw} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        op = bench.free_port()
        origin = allocs.start_echo(a.echo, pki, op, work)
        port = bench.free_port()
        wait = bench.wait_port
        bench.wait_port = lambda port, proc, timeout=15: wait(port, proc, 180)   # valgrind starts slowly
        p = bench.start_proxy("gateway", work, pki, port, [op], "api", wrapper)
        try:
            c = allocs.KeepAlive(port, a.path, allocs.PATHS["ka_16k" if a.path == "/16k" else "ka_small"][1])
            c.get(a.warmup)
            time.sleep(1)
            subprocess.run(["callgrind_control", "-z", str(p.pid)], check=True, capture_output=True)
            c.get(a.n)
            time.sleep(1)
            subprocess.run(["callgrind_control", "-d", str(p.pid)], check=True, capture_output=True)
            c.close()
        finally:
            bench.stop(p)
            bench.stop(origin)
        dumps = glob.glob(f"{work}/cg.{p.pid}.1")
        if not dumps:
            sys.exit(f"no callgrind dump of pid {p.pid} in {work}")
        counts = calls(dumps[0])
        print(f"Swift retain/release calls per request (callgrind, {a.n} keep-alive requests of {a.path}, after {a.warmup}):")
        for (callee, ob, fn), n in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(f"  {n / a.n:8.2f}  {callee:28s} from {ob}{' ' + fn if fn else ''}")
        # bridgeObject forms tail-jump to swift_retain/release inside libswiftCore: callgrind shows both
        # calls; count the program's calls (those from outside libswiftCore) for the shim's comparison.
        outside = lambda names: sum(n for (callee, ob, _), n in counts.items() if callee in names and not ob.startswith("libswiftCore"))
        inside = lambda names: sum(n for (callee, ob, fn), n in counts.items()
                                   if callee in names and ob.startswith("libswiftCore") and "bridgeObject" not in fn)
        print(f"retain calls from outside libswiftCore: {outside(RETAINS) / a.n:.2f}, release calls: {outside(RELEASES) / a.n:.2f}"
              f" (compare count_malloc's retain_calls/release_calls); inside libswiftCore, not through a bridgeObject"
              f" form: {inside(RETAINS) / a.n:.2f} and {inside(RELEASES) / a.n:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
