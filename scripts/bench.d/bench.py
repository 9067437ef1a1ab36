#!/usr/bin/env python3
"""The gateway against nginx, same machine, same origin, same certificates, one worker each.

Method (why each choice):
- Placement: the proxy under test runs alone on CPU 0 (taskset); wrk and the HTTPS origin
  (an nginx serving /ok and /16k) share CPU 1. The proxy then has one well-defined core and
  its CPU time per request is the load-independent figure we compare.
- CPU: utime+stime of the proxy's whole process tree (nginx master + worker) read from
  /proc before and after each measured run: "requests per proxy CPU-second".
- TLS: wrk gets an OPENSSL_CONF pinning TLS 1.3, TLS_AES_128_GCM_SHA256 and X25519, so every
  proxy does the same crypto. wrk and h2load connect to https://api.test:PORT (--sni) inside a
  private mount namespace whose /etc/hosts maps api.test to 127.0.0.1, so they send SNI api.test
  and `Host: api.test` as ../shared/bench does, and each proxy selects its api.test host by SNI
  (until 2026-12 they connected to 127.0.0.1: no SNI, every proxy on its default-host path).
- Syscalls: counted with `perf stat -e raw_syscalls:sys_enter` over the proxy's tree in a separate
  untimed run after the timed one (same load, at most 3 s): a tracepoint costs per syscall, and
  while attached during the timed run it inflated the CPU of the proxy with more syscalls.
- Handshakes: wrk resumes sessions on reconnect; hs_full/hs_rsa LD_PRELOAD nosession.so so
  every "Connection: close" request is a full handshake; hs_resumed leaves wrk alone.
- Memory: mem_idle opens 1000 TLS connections, makes one keep-alive request on each and holds
  them; the proxy tree's RSS growth divided by 1000 (a delta, so fixed overhead cancels).
  mem_idle_h2: the same over HTTP/2 (ALPN h2, GET /ok on stream 1, SETTINGS acknowledged), with
  h2 on at each proxy's listener as in h2_small. --mem-conns N changes the 1000 for both.
- ka_jwt: ka_small with `Authorization: Bearer` an ES256 token; the gateway's api.test then has a
  `jwt { }` block and verifies every request (SPEC §13); the anchors pass the header unverified, so
  the ratio to them includes the verify. The summary adds the gateway's ka_jwt / ka_small CPU per
  request, per round: the verify's cost against the `openssl speed ecdsap256` bound.
- ka_2backends: the same keep-alive /ok load balanced over two origin servers (round robin);
  body_20m: 4 connections fetching a 20 MB body, reported as MB/s through the proxy.
- Alternation: each round runs every scenario for every proxy back to back, the order reversed
  every other round, each on a freshly started proxy; medians over rounds; ratio = gateway/anchor.
- Baseline: --baseline BIN adds a second gateway build as proxy `baseline` (same configuration),
  run in the same rounds as the others, so gateway/baseline is a per-round ratio like the rest;
  with the order reversed every other round, use an even number of rounds for that comparison.
- HTTP/2: h2_small and h2_1m run h2load (pinned to CPU 1 like wrk) against each proxy with h2
  enabled on its listener (nginx `listen ... ssl http2`, HAProxy `alpn h2,http/1.1`, the gateway's
  default `http2 on`); the HTTP/1.1 scenarios keep each proxy's h2 off, as before.
- Allocations: in round 1, ka_small and ka_16k also start each proxy once more under
  scripts/allocs.d/count_malloc.so (an LD_PRELOAD counter: exact, per thread) and count its heap
  allocations over --allocs-requests keep-alive requests on one warmed-up connection (a Python
  client outside the shim); not during the timed runs, so the CPU figures are not touched.
  --no-allocs skips it. scripts/allocs does the same at length (N and 2N, idle check).
"""
import argparse, json, os, re, resource, shutil, socket, ssl, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
CPUS = os.cpu_count() or 1
TICK = os.sysconf("SC_CLK_TCK")
SCENARIOS = ["ka_small", "ka_jwt", "ka_16k", "ka_2backends", "body_20m", "hs_full", "hs_resumed", "hs_rsa", "mem_idle", "mem_idle_h2",
             "h2_small", "h2_1m", "flood", "ka_10k", "h2_backend", "grpc_unary"]
# HTTP/2 scenarios (h2load): connections x concurrent streams, and the path. h2_small: 100 small
# requests in flight, within the 128 pooled upstream connections (no backend handshakes in the
# steady state); h2_1m: 4 x 4 streams of 1 MiB. The same shapes as ../shared/bench's h2 scenarios.
H2 = {"h2_small": (4, 25, "/ok"), "h2_1m": (4, 4, "/1m")}
# HTTP/2 end to end: h2load -> proxy -> gateway-echo over h2 (ALPN h2), 4 x 250 = 1,000 streams in
# flight. h2_backend: GET /ok; grpc_unary: a POST of one fixed gRPC frame to /pkg.Echo/Call with
# content-type application/grpc and te: trailers (gateway-echo answers it gRPC-style: the message
# back, then trailers with grpc-status 0). nginx 1.22 cannot proxy HTTP/2 to a backend: not run.
H2_BACKEND = {"h2_backend": (4, 250, "/ok"), "grpc_unary": (4, 250, "/pkg.Echo/Call")}
GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


class Skip(Exception):
    """A proxy that cannot run a scenario (said in the results, not an error)."""


def grpc_frame(path):
    """One gRPC message: flag 0 (not compressed), 4-byte length, a small protobuf (field 1, a string)."""
    msg = b"\x0a\x0bhello bench"
    with open(path, "wb") as f:
        f.write(b"\x00" + len(msg).to_bytes(4, "big") + msg)
    return path


def start_echo(echo_bin, work, pki, port):
    """gateway-echo as an h2-capable origin (HTTP/1.1 and h2 by ALPN), on CPU 1 like the nginx origin."""
    p = subprocess.Popen(pinned(1, [echo_bin, "--listen", f"127.0.0.1:{port}", "--cert", f"{pki}/backend.pem",
                                    "--key", f"{pki}/backend.key", "--name", "origin"]),
                         stdout=subprocess.DEVNULL, stderr=open(f"{work}/echo.stderr", "w"))
    wait_port(port, p)
    return p


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def pinned(cpu, cmd):
    return (["taskset", "-c", str(cpu)] + cmd) if CPUS > 1 and shutil.which("taskset") else cmd


# --instructions: each proxy runs under valgrind's callgrind and a scenario reports the
# instructions the proxy executed per request over a fixed number of h2load requests, instead of
# CPU time. Slow, but the count does not move with the host's load (CPU time here moves by tens
# of percent between minutes): the cross-check for a ratio the timed rounds leave unsettled.
CALLGRIND = {"on": False, "keep": None, "args": []}
PERF_KEEP = {"dir": None}   # --keep-perf
# The fixed loads: (h2load options, requests). HTTP/1.1 keep-alive runs on 4 connections like the
# h2 scenarios (wrk has no request count). Handshakes (h2load resumes no session) are wrk's, on 4
# connections for a fixed time instead (None, seconds): a count per request does not depend on it.
INSTR_LOADS = {"ka_small": (["--h1", "-c4"], 20000), "ka_16k": (["--h1", "-c4"], 5000),
               "h2_small": (["-c4", "-m25"], 20000), "h2_1m": (["-c4", "-m4"], 200),
               "h2_backend": (["-c4", "-m250"], 40000), "grpc_unary": (["-c4", "-m250"], 40000),
               "hs_full": (None, 20), "hs_resumed": (None, 20)}


def proxy_cmd(cmd, d):
    """A proxy's command line on CPU 0, under callgrind with --instructions."""
    if CALLGRIND["on"]:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/callgrind.out"] + CALLGRIND["args"] + cmd
    return pinned(0, cmd)


def count_instructions(proc, port, path, options, n, extra=(), nosession=None):
    """Instructions per request of the proxy (one process) over n h2load requests, after n / 20
    to warm up (options None: n seconds of wrk handshakes, after 3): the counters are zeroed
    before the measured load and dumped after it."""
    def load(count):
        if options is None:
            return wrk(port, path, count, close=True, nosession=nosession, conns=4, timeout=10)
        return h2load(port, path, extra=extra, options=[f"-n{count}"] + options)
    load(3 if options is None else max(n // 20, 20))
    subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=True)
    r = load(n)
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
    dump, end = f"{proc.cg_dir}/callgrind.out.1", time.time() + 30
    while not os.path.exists(dump) and time.time() < end:
        time.sleep(0.2)
    time.sleep(0.5)   # written whole
    try:
        with open(dump) as f:
            total = next(int(line.split()[1]) for line in f if line.startswith(("summary:", "totals:")))
    except (OSError, StopIteration):
        raise RuntimeError(f"callgrind wrote no counts for pid {proc.pid} within 30 s ({dump})") from None
    if CALLGRIND["keep"]:   # --keep-callgrind: the dump for callgrind_annotate, named by proxy and path
        os.makedirs(CALLGRIND["keep"], exist_ok=True)
        shutil.copy(dump, os.path.join(CALLGRIND["keep"], f"{os.path.basename(proc.cg_dir)}{path.replace('/', '_')}.out"))
    return {"requests": r["requests"], "errors": r["errors"],
            "instr_per_req": total / r["requests"] if r["requests"] else None}


def dwarf5(binary):
    """Whether any compile unit of `binary`'s debug information is DWARF 5."""
    out = subprocess.run(["readelf", "--debug-dump=info", binary], capture_output=True, text=True).stdout
    return re.search(r"^\s+Version:\s+5$", out, re.M) is not None


def work_with_pki(prefix):
    """A new scratch directory with the PKI of make_pki in its `pki`: (work, pki)."""
    work = tempfile.mkdtemp(prefix=prefix)
    pki = f"{work}/pki"
    os.makedirs(pki)
    make_pki(pki)
    return work, pki


def make_pki(d):
    """CA -> api.test (ECDSA P-256 and RSA-2048); backend CA -> backend.test (+ IP 127.0.0.1)."""
    def key(name, rsa=False):
        algo = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"] if rsa else ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        run(["openssl", "genpkey"] + algo + ["-out", f"{d}/{name}.key"])
        os.chmod(f"{d}/{name}.key", 0o600)

    def ca(name):
        key(name)
        run(["openssl", "req", "-new", "-x509", "-key", f"{d}/{name}.key", "-out", f"{d}/{name}.pem", "-days", "30",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE"])

    def leaf(name, issuer, san, rsa=False):
        key(name, rsa)
        run(["openssl", "req", "-new", "-key", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj", f"/CN={name}"])
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(f"basicConstraints=CA:FALSE\nsubjectAltName={san}\nextendedKeyUsage=serverAuth\n")
        run(["openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{issuer}.pem", "-CAkey", f"{d}/{issuer}.key",
             "-CAcreateserial", "-days", "30", "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.pem"])

    ca("ca")
    leaf("api", "ca", "DNS:api.test")
    leaf("api-rsa", "ca", "DNS:api.test", rsa=True)
    ca("backend-ca")
    leaf("backend", "backend-ca", "DNS:backend.test,IP:127.0.0.1")
    make_jwt(d)


def b64url(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(d):
    """ka_jwt: a P-256 key, its JWKS and one ES256 token (valid 30 days), with the openssl CLI only."""
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{d}/jwt.key"])
    spki = subprocess.run(["openssl", "pkey", "-in", f"{d}/jwt.key", "-pubout", "-outform", "DER"], check=True, capture_output=True).stdout
    point = spki[-65:]   # 04 || X || Y at the end of a P-256 SubjectPublicKeyInfo
    with open(f"{d}/jwks.json", "w") as f:
        json.dump({"keys": [{"kty": "EC", "crv": "P-256", "kid": "bench", "x": b64url(point[1:33]), "y": b64url(point[33:])}]}, f)
    head = b64url(json.dumps({"alg": "ES256", "kid": "bench", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"iss": "https://bench.test/", "aud": "bench", "sub": "bench", "exp": int(time.time()) + 30 * 86400}).encode())
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", f"{d}/jwt.key"], input=f"{head}.{body}".encode(),
                         check=True, capture_output=True).stdout
    # DER ECDSA-Sig-Value (SEQUENCE of two INTEGERs) -> JOSE's r || s, 32 bytes each.
    i, ints = 2 + (der[1] == 0x81), []
    for _ in range(2):
        n = der[i + 1]
        ints.append(der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0"))
        i += 2 + n
    with open(f"{d}/jwt.token", "w") as f:
        f.write(f"{head}.{body}.{b64url(ints[0] + ints[1])}")


def raise_nofile(want=1 << 18):
    """Room for 10,000-connection scenarios: our clients and the proxies we start inherit it
    (as root the hard limit can be raised too, up to fs.nr_open)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            want = min(want, int(f.read()))
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not open")


def nginx_conf(d, body):
    return f"""daemon off; master_process {"off" if CALLGRIND["on"] else "on"}; worker_processes 1; user root; pid {d}/nginx.pid;
error_log {d}/error.log warn; worker_rlimit_nofile 65535;
events {{ worker_connections 20000; }}
http {{
  access_log off; server_tokens off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  keepalive_timeout 300s; keepalive_requests 10000000;   # nginx closes every 1000 requests by default
{body}
}}
"""


def start_nginx(d, body, cpu, env=None):
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(nginx_conf(d, body))
    cmd = ["nginx", "-p", d, "-e", f"{d}/error.log", "-c", f"{d}/nginx.conf"]
    return subprocess.Popen(proxy_cmd(cmd, d) if cpu == 0 else pinned(cpu, cmd),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def start_origin(work, pki, port, name="origin"):
    d = f"{work}/{name}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/16k.bin", "wb") as f:
        f.write(b"x" * 16384)
    with open(f"{d}/20m.bin", "wb") as f:
        f.write(os.urandom(1 << 20) * 20)
    with open(f"{d}/1m.bin", "wb") as f:
        f.write(os.urandom(1 << 20))
    body = f"""  server {{
    listen 127.0.0.1:{port} ssl backlog=4096; server_name backend.test;
    ssl_certificate {pki}/backend.pem; ssl_certificate_key {pki}/backend.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:origin:4m;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;   # same upstream crypto for both proxies
    location = /16k {{ default_type application/octet-stream; alias {d}/16k.bin; }}
    location = /20m {{ default_type application/octet-stream; alias {d}/20m.bin; }}
    location = /1m {{ default_type application/octet-stream; alias {d}/1m.bin; }}
    location / {{ default_type text/plain; return 200 "ok\\n"; }}
  }}"""
    p = start_nginx(d, body, 1)
    wait_port(port, p)
    return p


def start_proxy(name, work, pki, port, origin_ports, cert, gateway_bin, env=None, h2=False, jwt=False, conns=0,
                backend_h2=False):
    """nginx, haproxy, or a gateway build (`gateway`, `baseline`: the binary gateway_bin).
    env: the proxy's environment (default: ours), e.g. with the allocation-counting shim.
    h2: the anchors offer HTTP/2 by ALPN (the gateway always does). jwt: the gateway verifies tokens (ka_jwt).
    conns: client connections the scenario holds at once (HAProxy's maxconn must exceed it).
    backend_h2: HTTP/2 to the origin too (HAProxy `alpn h2 proto h2`; the gateway `protocol h2`,
    SPEC section 12; nginx cannot: Skip)."""
    if backend_h2 and name == "nginx":
        raise Skip("nginx 1.22 cannot proxy HTTP/2 to a backend")
    d = tempfile.mkdtemp(prefix=f"{name}-", dir=work)
    if name == "nginx":
        servers = " ".join(f"server 127.0.0.1:{p};" for p in origin_ports)
        body = f"""  upstream origin {{ {servers} keepalive 128; keepalive_requests 10000000; keepalive_timeout 300s; }}
  server {{
    listen 127.0.0.1:{port} ssl{" http2" if h2 else ""}; server_name api.test;
    ssl_certificate {pki}/{cert}.pem; ssl_certificate_key {pki}/{cert}.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams 128;
    location / {{
      proxy_pass https://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_verify on; proxy_ssl_trusted_certificate {pki}/backend-ca.pem;
      proxy_ssl_server_name on; proxy_ssl_name backend.test; proxy_ssl_session_reuse on;
    }}
  }}"""
        p = start_nginx(d, body, 0, env)
    elif name == "haproxy":
        with open(f"{d}/cert.pem", "w") as f:
            f.write(open(f"{pki}/{cert}.pem").read() + open(f"{pki}/{cert}.key").read())
        servers = "\n    ".join(f"server b{i} 127.0.0.1:{p} ssl verify required ca-file {pki}/backend-ca.pem sni str(backend.test) verifyhost backend.test"
                                + (" alpn h2 proto h2" if backend_h2 else "")
                                for i, p in enumerate(origin_ports))
        with open(f"{d}/haproxy.cfg", "w") as f:
            f.write(f"""global
    nbthread 1
    {haproxy_limits(conns)}
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    http-reuse always
frontend fe
    bind 127.0.0.1:{port} ssl crt {d}/cert.pem alpn {"h2," if h2 else ""}http/1.1
    default_backend be
backend be
    {servers}
""")
        p = subprocess.Popen(proxy_cmd(["haproxy", "-db", "-f", f"{d}/haproxy.cfg"], d),
                             stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr", "w"), env=env)
    else:
        servers = "\n    ".join(f"server https://127.0.0.1:{p};" for p in origin_ports)
        proto_line = "\n    protocol h2;" if backend_h2 else ""   # SPEC section 12: ALPN h2 required toward the origin
        # The per-connection request limit is lifted as nginx's keepalive_requests is above
        # (h2load never reconnects after a GOAWAY; allocs counts on one connection).
        conf = f"""workers 1;
error_log stderr warn;
access_log off;
limits {{ idle_timeout 300s; max_connections 20000;{" max_requests_per_connection 100000000;" if knows_request_limit(gateway_bin) else ""} }}
listen 127.0.0.1:{port} {{ default_host api.test; unknown_sni default; }}
host api.test {{
    certificate {pki}/{cert}.pem {pki}/{cert}.key;
    route / backend origin;
    {f"jwt {{ issuer https://bench.test/; audience bench; jwks_file {pki}/jwks.json; }}" if jwt else ""}
}}
backend origin {{
    {servers}{proto_line}
    keepalive 128;
    tls {{ ca {pki}/backend-ca.pem; server_name backend.test; }}
}}
"""
        with open(f"{d}/gateway.conf", "w") as f:
            f.write(conf)
        if backend_h2:
            chk = subprocess.run([gateway_bin, "check", "-c", f"{d}/gateway.conf"], capture_output=True, text=True)
            if chk.returncode != 0 and "protocol" in chk.stdout + chk.stderr:
                raise Skip("this gateway build refuses `protocol h2` backends: "
                           + " ".join((chk.stdout + chk.stderr).split())[-200:])
        p = subprocess.Popen(proxy_cmd([gateway_bin, "run", "-c", f"{d}/gateway.conf"], d),
                             stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr", "w"), env=env)
    p.cg_dir = d
    wait_port(port, p, timeout=120 if CALLGRIND["on"] else 15)
    # Both must really proxy (and verify the origin) before we measure them.
    auth = ["-H", f"Authorization: Bearer {open(f'{pki}/jwt.token').read()}"] if jwt else []
    out = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}"] + auth + [f"https://127.0.0.1:{port}/ok"],
                         capture_output=True, text=True).stdout
    if out != "200":
        stop(p)
        raise RuntimeError(f"{name} does not answer GET /ok with 200 (got {out!r}); see {d}")
    return p


def haproxy_limits(conns):
    """HAProxy reserves two fds per connection (2 x maxconn + a margin) and refuses to start when
    RLIMIT_NOFILE cannot be raised that far. Where the hard limit is too low for the scenario's
    connections (20,000 in this container, which cannot raise it) maxconn is capped to what fits,
    with a warning: HAProxy then holds fewer connections than the scenario opens, and says so."""
    want = max(9000, conns + 100)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    fits = (hard - 300) // 2 if hard != resource.RLIM_INFINITY else want
    if want > fits:
        print(f"warning: HAProxy's maxconn capped to {fits} (the hard limit of open files is {hard}; it reserves 2 per"
              f" connection): fewer than the {conns} connections of this scenario", file=sys.stderr)
    return f"maxconn {min(want, fits)}"


_KNOWS = {}


def knows_request_limit(gateway_bin):
    """Whether this gateway build has `max_requests_per_connection` (a baseline may predate it)."""
    if gateway_bin not in _KNOWS:
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("limits { max_requests_per_connection 5; }\n")
        out = subprocess.run([gateway_bin, "check", "-c", f.name], capture_output=True, text=True)
        os.unlink(f.name)
        _KNOWS[gateway_bin] = "max_requests_per_connection" not in out.stdout + out.stderr
    return _KNOWS[gateway_bin]


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()


def tree(pid):
    """pid and every descendant (nginx master + worker)."""
    children = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(e))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        x = todo.pop()
        out.append(x)
        todo += children.get(x, [])
    return out


def cpu_seconds(pid):
    total = 0
    for x in tree(pid):
        try:
            with open(f"/proc/{x}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def rss_bytes(pid):
    total = 0
    for x in tree(pid):
        try:
            with open(f"/proc/{x}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


# SNI: wrk and h2load take the server name from the URL and send none for an IP literal
# (h2load 1.52 has no --sni), so with --sni NAME (default api.test) they connect to
# https://NAME:PORT inside a private mount namespace whose /etc/hosts maps NAME to 127.0.0.1
# (`unshare --mount` + a bind mount, as ../shared/bench does); wrk also sends `Host: NAME`.
# With --sni '' (or where unshare is not allowed) they connect to https://127.0.0.1:PORT: no SNI,
# and each proxy serves its default host.
SNI = {"name": "", "hosts": None}


def setup_sni(name, work):
    if not name:
        return
    hosts = f"{work}/hosts"
    with open(hosts, "w") as f:
        f.write(f"127.0.0.1 localhost\n127.0.0.1 {name}\n")
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && getent hosts "$1"', hosts, name],
                           capture_output=True, text=True)
    if probe.returncode != 0 or "127.0.0.1" not in probe.stdout:
        print(f"warning: cannot resolve {name} in a private mount namespace ({probe.stderr.strip()}); "
              "wrk and h2load connect to 127.0.0.1 without SNI", file=sys.stderr)
        return
    SNI.update(name=name, hosts=hosts)


def client(cmd, port, path):
    """A load generator's command line and URL: with SNI, run inside the namespace where NAME resolves."""
    if SNI["hosts"]:
        return (["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', SNI["hosts"]] + cmd
                + [f"https://{SNI['name']}:{port}{path}"])
    return cmd + [f"https://127.0.0.1:{port}{path}"]


def wrk(port, path, seconds, close=False, nosession=None, conns=50, headers=(), threads=1, timeout=None):
    env = dict(os.environ, OPENSSL_CONF=f"{HERE}/client-openssl.cnf")
    if nosession:
        env["LD_PRELOAD"] = nosession
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency"]
    if timeout:
        cmd += ["--timeout", f"{timeout}s"]
    if SNI["hosts"]:
        cmd += ["-H", f"Host: {SNI['name']}"]
    for h in headers:
        cmd += ["-H", h]
    if close:
        cmd += ["-H", "Connection: close"]
    p = subprocess.run(pinned(1, client(cmd, port, path)), capture_output=True, text=True, env=env)
    out = p.stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        raise RuntimeError(f"wrk printed no request count (exit {p.returncode}): {(out + p.stderr)[-500:]}")
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    return {"requests": int(m.group(1)),
            "p50_ms": float(p50.group(1)) * scale[p50.group(2)] if p50 else None,
            "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None,
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": (errors.group(1) if errors else "") + (f" non2xx {non2xx.group(1)}" if non2xx else "")}


def count_syscalls(proc, run_load):
    """Syscalls per request of the proxy's whole tree, counted by perf's raw_syscalls tracepoint over
    a separate, untimed run_load() (which returns its request count). A tracepoint costs a little
    per syscall, so it never runs during a timed run: a proxy that makes more syscalls would pay more."""
    if not shutil.which("perf"):
        return None
    pids = ",".join(str(x) for x in tree(proc.pid))
    fd, perf_out = tempfile.mkstemp(prefix="perf-", suffix=".txt")
    os.close(fd)
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", pids, "-o", perf_out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        requests = run_load()
    finally:
        perf.send_signal(2)
        perf.wait()
    m = re.search(r"^([\d.]+),", open(perf_out).read(), re.M)
    os.unlink(perf_out)
    return float(m.group(1)) / requests if m and requests else None


# Where a proxy's CPU goes, by the object its samples fall in: `perf report --sort dso` shares.
PROFILE_PARTS = (("kernel", ("[kernel.kallsyms]", "[vdso]")), ("openssl", ("libssl", "libcrypto")),
                 ("libc", ("libc.so", "ld-linux")), ("swift_runtime", ("libswift", "libFoundation", "libdispatch")),
                 ("nghttp2", ("libnghttp2",)))


def profile_split(proc, run_load):
    """Shares of the proxy tree's CPU samples (perf record, 1999 Hz; call graphs only when kept) over a separate,
    untimed run_load(): kernel, OpenSSL, libc, the Swift runtime, nghttp2, and the rest (the proxy's
    own code). Multiplied by the timed run's CPU per request they say where its microseconds go."""
    if not shutil.which("perf"):
        return None, None
    pids = ",".join(str(x) for x in tree(proc.pid))
    fd, data = tempfile.mkstemp(prefix="perf-", suffix=".data")
    os.close(fd)
    perf = subprocess.Popen(["perf", "record", "-F", "1999"] + (["-g"] if PERF_KEEP["dir"] else []) + ["-p", pids, "-o", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        run_load()
    finally:
        perf.send_signal(2)
        perf.wait()
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso", "--stdio", "-q", "-g", "none"],
                         capture_output=True, text=True).stdout
    kept = None
    if PERF_KEEP["dir"]:   # --keep-perf: for `perf report --sort dso,sym` (its path goes into the run's JSON line)
        kept = os.path.join(PERF_KEEP["dir"], os.path.basename(data))
        shutil.move(data, kept)
    else:
        os.unlink(data)
    split = {name: 0.0 for name, _ in PROFILE_PARTS}
    split["own"] = 0.0
    for line in rep.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
        if not m:
            continue
        share, dso = float(m.group(1)) / 100, m.group(2)
        part = next((name for name, keys in PROFILE_PARTS if any(k in dso for k in keys)), "own")
        split[part] += share
    return split, kept


def tcp_out_segments():
    """The host's TCP segments sent so far (/proc/net/snmp OutSegs). Over loopback a run's growth
    counts the segments of every side (client, proxy, origin); the proxy is what differs."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("OutSegs")])


def measure_wrk(proc, port, path, seconds, close=False, nosession=None, conns=50, syscalls=False, headers=(), profile=False):
    wrk(port, path, 2, close, nosession, conns, headers)          # warm-up: pools, caches, page faults
    s0, c0, t0 = tcp_out_segments(), cpu_seconds(proc.pid), time.time()
    r = wrk(port, path, seconds, close, nosession, conns, headers)
    cpu, wall = cpu_seconds(proc.pid) - c0, time.time() - t0
    r["segs_per_req"] = (tcp_out_segments() - s0) / r["requests"] if r["requests"] else None
    r.update(rps=r["requests"] / wall, proxy_cpu_s=cpu, proxy_cores=cpu / wall,
             req_per_cpu_s=r["requests"] / cpu if cpu > 0 else None,
             us_per_req=cpu / r["requests"] * 1e6 if r["requests"] else None)
    if syscalls:
        # After the timed run, on the same warmed-up proxy: the same load for a shorter while.
        r["syscalls_per_req"] = count_syscalls(proc, lambda: wrk(port, path, min(seconds, 3), close, nosession, conns,
                                                                   headers)["requests"])
    if profile and r["us_per_req"]:
        split, kept = profile_split(proc, lambda: wrk(port, path, min(seconds, 3), close, nosession, conns, headers))
        if split:
            r.update({f"us_{part}": share * r["us_per_req"] for part, share in split.items()})
        if kept:
            r["perf_data"] = kept
    return r


def h2load(port, path, seconds=None, conns=None, streams=None, extra=(), options=None):
    """options: instead of seconds, conns and streams (--instructions: a request count)."""
    env = dict(os.environ, OPENSSL_CONF=f"{HERE}/client-openssl.cnf")
    cmd = ["h2load"] + (options or [f"-c{conns}", f"-m{streams}", f"-D{seconds}"]) + list(extra)
    out = subprocess.run(pinned(1, client(cmd, port, path)), capture_output=True, text=True, env=env).stdout
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    if not m:
        raise RuntimeError(f"h2load printed no request count: {out[-500:]}")
    bad = max(0, int(m.group(3)) - int(codes.group(1) if codes else 0))
    return {"requests": int(m.group(3)), "errors": f"{m.group(4)} failed {m.group(5)} errored {bad} non2xx" if bad or int(m.group(4)) else ""}


def measure_h2load(proc, port, path, seconds, conns, streams, extra=(), origin_port=None, profile=False, origin_pid=None):
    """origin_port: also sample (every 0.2 s) the proxy's established connections to the origin
    during the timed run: the most seen (multiplexing: far fewer than conns x streams). origin_pid:
    also the origin's CPU per request in the timed run (it shares CPU 1 with h2load, so what a
    proxy makes it do per request bounds that proxy's throughput). Syscalls per request and
    (profile) the CPU split come from separate untimed runs, as for wrk."""
    import threading
    h2load(port, path, 2, conns, streams, extra)   # warm-up: pools, caches, page faults
    seen, done = [0], threading.Event()

    def sample():
        while not done.wait(0.2):
            seen[0] = max(seen[0], tcp_conns(origin_port, "dport"))
    t = threading.Thread(target=sample) if origin_port else None
    if t:
        t.start()
    o0 = cpu_seconds(origin_pid) if origin_pid else 0
    s0, c0, t0 = tcp_out_segments(), cpu_seconds(proc.pid), time.time()
    try:
        r = h2load(port, path, seconds, conns, streams, extra)
    finally:
        done.set()
        if t:
            t.join()
    cpu, wall = cpu_seconds(proc.pid) - c0, time.time() - t0
    r["segs_per_req"] = (tcp_out_segments() - s0) / r["requests"] if r["requests"] else None
    if origin_pid and r["requests"]:
        r["origin_us_per_req"] = (cpu_seconds(origin_pid) - o0) / r["requests"] * 1e6
    if origin_port:
        r.update(backend_conns_max=seen[0], streams_in_flight=conns * streams,
                 backend_conns_after=tcp_conns(origin_port, "dport"))
    r.update(rps=r["requests"] / wall, proxy_cpu_s=cpu, proxy_cores=cpu / wall,
             req_per_cpu_s=r["requests"] / cpu if cpu > 0 else None,
             us_per_req=cpu / r["requests"] * 1e6 if r["requests"] else None)
    again = lambda: h2load(port, path, min(seconds, 3), conns, streams, extra)["requests"]
    r["syscalls_per_req"] = count_syscalls(proc, again)
    if profile and r["us_per_req"]:
        split, kept = profile_split(proc, again)
        if split:
            r.update({f"us_{part}": share * r["us_per_req"] for part, share in split.items()})
        if kept:
            r["perf_data"] = kept
    return r


def mem_idle(proc, port, n, http2=False):
    """n TLS connections, one at a time, each held after one GET /ok; the proxy tree's RSS growth
    divided by n. http2 (mem_idle_h2): ALPN h2 and the request on stream 1 (the `h2` package),
    the client's SETTINGS ACK and the server's WINDOW_UPDATE exchanged before the connection is
    left idle."""
    time.sleep(0.3)
    before = rss_bytes(proc.pid)
    conns = []
    try:
        idle_connections(port, n, http2, conns)
        # Idle means idle for a while: the gateway gives an idle HTTP/2 connection's empty pages
        # back on its second once-a-second sweep that finds it idle (until 2026-12-06: 0.5 s).
        time.sleep(2.5)
        after = rss_bytes(proc.pid)
    finally:
        for s in conns:
            s.close()
    return {"bytes_per_conn": (after - before) / n, "rss_before": before, "rss_after": after}


def idle_connections(port, n, http2, conns):
    """Opens n TLS connections one at a time into `conns` (the caller closes them, also after a
    failure), each left idle after one GET /ok: mem_idle's, and scripts/idlemem's."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if http2:
        ctx.set_alpn_protocols(["h2"])
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="api.test")
        conns.append(s)
        if http2:
            h2_get_ok(s)
            continue
        s.sendall(b"GET /ok HTTP/1.1\r\nHost: api.test\r\n\r\n")
        data = b""
        while not data.endswith(b"ok\n"):
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("connection closed during mem_idle")
            data += chunk


def h2_get_ok(s):
    """GET /ok on stream 1 of a fresh HTTP/2 connection over the TLS socket `s`, to the end of
    the response; what the client owes afterwards (SETTINGS ACK) is sent, so the connection is
    idle on both sides."""
    import h2.config, h2.connection, h2.events
    if s.selected_alpn_protocol() != "h2":
        raise Skip(f"ALPN h2 not selected (got {s.selected_alpn_protocol()!r})")
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":scheme", "https"), (":authority", "api.test"), (":path", "/ok")],
                   end_stream=True)
    s.sendall(c.data_to_send())
    status, body, ended = None, b"", False
    while not ended:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed during mem_idle_h2")
        for e in c.receive_data(chunk):
            if isinstance(e, h2.events.ResponseReceived):
                status = dict(e.headers).get(b":status")
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                ended = True
        s.sendall(c.data_to_send())
    if status != b"200" or body != b"ok\n":
        raise RuntimeError(f"mem_idle_h2: GET /ok answered {status!r} {body[:60]!r}")


def tcp_conns(port, side="sport", accepted=False):
    """Established TCP connections on 127.0.0.1 with the given source (the proxy's side of client
    connections) or destination port (a proxy's connections to the origin). accepted: only those a
    process holds (`ss -p` names a user), not those still waiting in the kernel's accept queue."""
    out = subprocess.run(["ss", "-Htn" + ("p" if accepted else ""), "state", "established", f"( {side} = :{port} )"],
                         capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.strip() and (not accepted or "users:" in line))


def ka_scale(proc, port, args, origin_port):
    """ka_10k: keep-alive GET /ok over --scale-conns connections (wrk -t2, at least 15 s: wrk's
    10,000 handshakes alone take seconds, and their CPU is in the per-request figure), the proxy's
    RSS, the client connections it has accepted and its connections to the origin sampled every 0.5 s
    (wrk keeps a request in flight on every connection, so an HTTP/1.1 upstream needs up to one
    connection per request in flight: thousands, each a backend handshake); does every proxy keep
    serving (socket errors, non-2xx)? bytes_per_conn: RSS growth over the warmed-up proxy at the
    sample with the most connections, divided by the connections it held then."""
    import threading
    wrk(port, "/ok", 2)                               # warm-up with the usual 50 connections
    time.sleep(0.5)
    before = rss_bytes(proc.pid)
    peak = {"rss": before, "conns": 0, "rss_at_peak_conns": before, "upstream": 0}
    done = threading.Event()

    def sample():
        while not done.wait(0.5):
            n, r = tcp_conns(port, accepted=True), rss_bytes(proc.pid)
            peak["rss"] = max(peak["rss"], r)
            peak["upstream"] = max(peak["upstream"], tcp_conns(origin_port, "dport"))
            if n >= peak["conns"]:
                peak["conns"], peak["rss_at_peak_conns"] = n, r
    t = threading.Thread(target=sample)
    t.start()
    c0, t0 = cpu_seconds(proc.pid), time.time()
    try:
        # wrk's default 2 s timeout would count the slowest of 10,000 connections as errors.
        r = wrk(port, "/ok", max(args.duration, 15), conns=args.scale_conns, threads=2, timeout=10)
    finally:
        done.set()
        t.join()
    cpu, wall = cpu_seconds(proc.pid) - c0, time.time() - t0
    r.update(rps=r["requests"] / wall, proxy_cpu_s=cpu, proxy_cores=cpu / wall,
             req_per_cpu_s=r["requests"] / cpu if cpu > 0 else None,
             us_per_req=cpu / r["requests"] * 1e6 if r["requests"] else None,
             rss_before=before, rss_peak=peak["rss"], conns_established_max=peak["conns"], upstream_conns_max=peak["upstream"],
             bytes_per_conn=(peak["rss_at_peak_conns"] - before) / peak["conns"] if peak["conns"] else None,
             serving=r["requests"] > 0 and not r["errors"])
    if not r["requests"]:
        r["errors"] = (r["errors"] + " no request completed").strip()
    return r


def flood(proc, port, args):
    """flood.py (pinned to CPU 1 like wrk) against this proxy: N slow-loris + N silent connections."""
    cmd = [sys.executable, f"{HERE}/flood.py", "--port", str(port), "--pid", str(proc.pid), "--n", str(args.flood_conns),
           "--host", args.sni or "api.test", "--hold", str(args.flood_hold), "--after", str(args.flood_after)]
    out = subprocess.run(pinned(1, cmd), capture_output=True, text=True)
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"flood.py failed ({out.returncode}): {out.stderr[-800:]}")
    r = json.loads(lines[-1])
    fails = r["normal_fails"] + r["slow_failed"] + r["silent_failed"]
    r["errors"] = f"{r['normal_fails']} normal requests failed, {r['slow_failed'] + r['silent_failed']} flood connections not opened" \
        if fails else ""
    r["rss_before_mb"], r["rss_all_open_mb"], r["rss_after_mb"] = (r[k] / 1e6 for k in ("rss_before", "rss_all_open", "rss_after"))
    r["closed_by_proxy"] = r["slow_closed_by_proxy"] + r["silent_closed_by_proxy"]
    return r


ALLOC_SCENARIOS = ("ka_small", "ka_16k")


def binary(proxy, args):
    return {"gateway": args.gateway, "baseline": args.baseline}.get(proxy)


def run_h2_backend(name, proxy, args, work, pki):
    """h2_backend / grpc_unary: h2load -> proxy -> gateway-echo over h2; skipped where the proxy cannot."""
    port = free_port()
    conns, streams, path = H2_BACKEND[name]
    # --h2-rps: every proxy gets the same request rate (h2load's per-connection --rps), so each
    # wakes as often and batches as much; without it the faster proxy also batches more.
    extra = ["--rps", str(max(1, args.h2_rps // conns))] if args.h2_rps else []
    if name == "grpc_unary":
        extra += ["-d", args.grpc_frame] + [x for h in GRPC_HEADERS for x in ("-H", h)]
    try:
        p = start_proxy(proxy, work, pki, port, [args.echo_port], "api", binary(proxy, args), h2=True, backend_h2=True)
    except Skip as e:
        return {"skipped": str(e), "errors": ""}
    try:
        check = {}
        if name == "grpc_unary":
            # The trailers must come through: nghttp prints the response's header and trailer fields.
            out = subprocess.run(["nghttp", "-v", "-d", args.grpc_frame] + [x for h in GRPC_HEADERS for x in ("-H", h)]
                                 + [f"https://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=20).stdout
            check["grpc_status_0"] = "grpc-status: 0" in out
            if not check["grpc_status_0"]:
                raise RuntimeError(f"{proxy}: no `grpc-status: 0` trailer through the proxy: {out[-600:]}")
        if CALLGRIND["on"]:
            return count_instructions(p, port, path, *INSTR_LOADS[name], extra=extra)
        r = measure_h2load(p, port, path, args.duration, conns, streams, extra, origin_port=args.echo_port, profile=args.profile,
                           origin_pid=args.echo_pid)
        r.update(check)
        return r
    finally:
        stop(p)


def wrk_target(name, nosession):
    """A wrk scenario's path, whether each request closes its connection (hs_*), and the shim
    that keeps wrk from resuming sessions (full handshakes), as measure_wrk takes them."""
    return "/16k" if name == "ka_16k" else "/ok", name.startswith("hs_"), nosession if name in ("hs_full", "hs_rsa") else None


def run_scenario(name, proxy, args, work, pki, origin_ports, nosession, shim=None):
    if name in H2_BACKEND:
        return run_h2_backend(name, proxy, args, work, pki)
    port = free_port()
    cert = "api-rsa" if name == "hs_rsa" else "api"
    ports = origin_ports if name == "ka_2backends" else origin_ports[:1]
    jwt = name == "ka_jwt"
    conns = {"mem_idle": args.mem_conns, "mem_idle_h2": args.mem_conns, "flood": 2 * args.flood_conns + 10, "ka_10k": args.scale_conns}.get(name, 0)
    p = start_proxy(proxy, work, pki, port, ports, cert, binary(proxy, args), h2=name in H2 or name == "mem_idle_h2",
                    jwt=jwt and proxy not in ("nginx", "haproxy"), conns=conns)
    try:
        if CALLGRIND["on"]:
            options, n = INSTR_LOADS[name]
            path, _, no_resume = wrk_target(name, nosession)
            return count_instructions(p, port, H2[name][2] if name in H2 else path, options, n, nosession=no_resume)
        if name in H2:
            conns, streams, path = H2[name]
            return measure_h2load(p, port, path, args.duration, conns, streams, profile=args.profile)
        if name in ("mem_idle", "mem_idle_h2"):
            try:
                return mem_idle(p, port, args.mem_conns, http2=name == "mem_idle_h2")
            except Skip as e:
                return {"skipped": str(e), "errors": ""}
        if name == "flood":
            return flood(p, port, args)
        if name == "ka_10k":
            return ka_scale(p, port, args, ports[0])
        if name == "body_20m":
            r = measure_wrk(p, port, "/20m", args.duration, conns=4)
            r["mb_per_s"] = r["rps"] * 20 * 1.048576
            return r
        headers = [f"Authorization: Bearer {open(f'{pki}/jwt.token').read()}"] if jwt else []
        path, close, no_resume = wrk_target(name, nosession)
        r = measure_wrk(p, port, path, args.duration, close, no_resume,
                        syscalls=name.startswith("ka_"), headers=headers, profile=args.profile)
    finally:
        stop(p)
    if shim and name in ALLOC_SCENARIOS:
        r.update(count_allocs(name, proxy, args, work, pki, origin_ports[:1], shim))
    return r


# --slices: the timed scenarios one load generator can drive against every proxy in turn.
SLICED = ("ka_small", "ka_16k", "hs_full", "hs_resumed", "h2_small", "h2_1m")


def run_sliced(name, proxies, args, work, pki, origin_ports, nosession):
    """--slices N: every proxy of the round started at once (each idle while another is loaded),
    warmed up, then N turns of duration / N seconds each, the order rotating from turn to turn;
    CPU and requests summed per proxy. A round's ratio then comes from loads a few seconds apart
    instead of one block per proxy, so the host's speed, which drifts by tens of percent within a
    minute, weighs on every proxy alike. Timing only: syscalls, --profile and allocations come
    from a run without --slices."""
    piece = max(1, round(args.duration / args.slices))
    started = {}

    def load(port, seconds):
        if name in H2:
            conns, streams, path = H2[name]
            return h2load(port, path, seconds, conns, streams)
        path, close, no_resume = wrk_target(name, nosession)
        return wrk(port, path, seconds, close, no_resume)
    try:
        for proxy in proxies:
            port = free_port()
            started[proxy] = (start_proxy(proxy, work, pki, port, origin_ports[:1], "api", binary(proxy, args), h2=name in H2), port)
        for _, port in started.values():
            load(port, 2)   # warm-up: pools, caches, page faults
        acc = {proxy: {"requests": 0, "cpu": 0.0, "wall": 0.0, "errors": []} for proxy in proxies}
        for turn in range(args.slices):
            k = turn % len(proxies)
            for proxy in proxies[k:] + proxies[:k]:
                p, port = started[proxy]
                c0, t0 = cpu_seconds(p.pid), time.time()
                r = load(port, piece)
                a = acc[proxy]
                a["cpu"] += cpu_seconds(p.pid) - c0
                a["wall"] += time.time() - t0
                a["requests"] += r["requests"]
                if r["errors"]:
                    a["errors"].append(r["errors"])
        return {proxy: {"requests": a["requests"], "errors": " ".join(a["errors"]), "slices": args.slices,
                        "rps": a["requests"] / a["wall"], "proxy_cpu_s": a["cpu"], "proxy_cores": a["cpu"] / a["wall"],
                        "req_per_cpu_s": a["requests"] / a["cpu"] if a["cpu"] > 0 else None,
                        "us_per_req": a["cpu"] / a["requests"] * 1e6 if a["requests"] else None}
                for proxy, a in acc.items()}
    finally:
        for p, _ in started.values():
            stop(p)


def count_allocs(name, proxy, args, work, pki, origin_ports, shim):
    """Heap allocations per keep-alive request: a fresh proxy under the counting shim."""
    sys.path.insert(0, os.path.join(HERE, "..", "allocs.d"))
    import allocs
    counters = allocs.Counters(shim, tempfile.mkdtemp(prefix=f"count-{proxy}-", dir=work))
    port = free_port()
    p = start_proxy(proxy, work, pki, port, origin_ports, "api", binary(proxy, args), env=counters.env())
    try:
        a = allocs.measure(counters, p, port, name, args.allocs_requests, args.allocs_requests // 2, check=False, idle_s=0)
    finally:
        stop(p)
    return {"allocs_per_req": a["allocs_per_req"], "alloc_bytes_per_req": a["bytes_per_req"],
            "swift_allocs_per_req": a["swift_allocs_per_req"],
            "retains_releases_per_req": a["retains_per_req"] + a["releases_per_req"],
            "alloc_callers_per_req": a["runs"][0]["callers_per_req"]}   # in the raw runs only


def summarize(results, scenarios, proxies, args_after=30):
    """Medians over rounds, and the gateway's ratio to each anchor as the median of the
    per-round ratios (the VM's speed drifts between minutes; a round's proxies run back to back)."""
    def med(xs):
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    def fmt(x):
        return "-" if x is None else (f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}")

    def value(proxy, s, key, rnd=None):
        return med([r.get(key) for r in results if r["proxy"] == proxy and r["scenario"] == s and (rnd is None or r["round"] == rnd)])

    anchors = [p for p in proxies if p != "gateway"]
    head = "| scenario | metric | " + " | ".join(proxies) + " | " + " | ".join(f"gateway / {a} (per round)" for a in anchors) + " |"
    rows = [head, "|" + "---|" * (2 + len(proxies) + len(anchors))]
    rounds = sorted({r["round"] for r in results})
    for s in scenarios:
        if s == "mem_idle":
            metrics = [("bytes_per_conn", "bytes per idle TLS connection (lower is better)")]
        elif s == "mem_idle_h2":
            metrics = [("bytes_per_conn", "bytes per idle HTTP/2 connection (lower is better)")]
        elif s == "ka_10k":
            metrics = [("us_per_req", "proxy CPU µs per request (the connections' handshakes included)"), ("rps", "requests/s"),
                       ("p50_ms", "p50 latency ms"), ("p99_ms", "p99 latency ms"), ("non2xx", "non-2xx responses"),
                       ("conns_established_max", "client connections the proxy held (most seen)"),
                       ("upstream_conns_max", "its connections to the origin (most seen)"),
                       ("bytes_per_conn", "RSS growth per established connection, bytes")]
        elif s == "flood":
            metrics = [("bytes_per_conn", "RSS bytes per flood connection held (all open)"),
                       ("rss_before_mb", "RSS MB before"), ("rss_all_open_mb", "RSS MB, all flood connections open"),
                       ("rss_after_mb", f"RSS MB {args_after} s after the flood closed"),
                       ("after_over_before", "RSS after / before"),
                       ("p50_ms_before", "normal client p50 ms before (new TLS connection + GET)"),
                       ("p99_ms_before", "normal client p99 ms before"),
                       ("p50_ms_during", "normal client p50 ms during"), ("p99_ms_during", "normal client p99 ms during"),
                       ("normal_fails", "normal requests failed"),
                       ("held_at_end_of_hold", "flood connections still open at the end of the hold"),
                       ("closed_by_proxy", "flood connections the proxy closed")]
        elif s == "body_20m":
            metrics = [("mb_per_s", "MB/s through the proxy"), ("us_per_req", "proxy CPU µs per body")]
        else:
            metrics = [("instr_per_req", "instructions per request (callgrind, fixed h2load loads)"),
                       ("us_per_req", "proxy CPU µs per request (lower is better)"), ("rps", "requests/s"), ("p50_ms", "p50 latency ms")]
            if s.startswith("ka_") or s in H2 or s in H2_BACKEND:
                metrics += [("syscalls_per_req", "syscalls per request (perf)"),
                            ("segs_per_req", "TCP segments per request, every side (/proc/net/snmp)")]
            if any(r.get("us_kernel") is not None and r["scenario"] == s for r in results):   # --profile
                metrics += [(f"us_{part}", f"of the CPU µs: {part} (perf record, separate run)")
                            for part in [n for n, _ in PROFILE_PARTS] + ["own"]]
            if s in H2_BACKEND:
                metrics = [m for m in metrics if m[0] != "p50_ms"] + [
                    ("backend_conns_max", "proxy -> origin connections during the run (most seen; 1,000 streams in flight)"),
                    ("origin_us_per_req", "origin (gateway-echo) CPU µs per request, same run")]
            if s in ALLOC_SCENARIOS and any(r.get("allocs_per_req") is not None for r in results):
                metrics += [("allocs_per_req", "heap allocations per request (count_malloc, round 1)"),
                            ("swift_allocs_per_req", "of them Swift's (libswiftCore)"),
                            ("alloc_bytes_per_req", "heap bytes allocated per request"),
                            ("retains_releases_per_req", "Swift retains + releases per request (count_malloc)")]
        for key, label in metrics:
            if all(value(p, s, key) is None for p in proxies):
                continue   # nothing measured it (the timed rows under --instructions, latency under h2load)
            cells = [fmt(value(p, s, key)) for p in proxies]
            for a in anchors:
                per = []
                for rnd in rounds:
                    g, n = value("gateway", s, key, rnd), value(a, s, key, rnd)
                    if g is not None and n:
                        per.append(g / n)
                cells.append("-" if not per else f"{statistics.median(per):.2f} ({' / '.join(f'{x:.2f}' for x in per)})")
            rows.append(f"| {s} | {label} | " + " | ".join(cells) + " |")
    if "ka_jwt" in scenarios and "ka_small" in scenarios:
        per = [value("gateway", "ka_jwt", "us_per_req", rnd) / value("gateway", "ka_small", "us_per_req", rnd) for rnd in rounds
               if value("gateway", "ka_jwt", "us_per_req", rnd) and value("gateway", "ka_small", "us_per_req", rnd)]
        if per:
            rows.append(f"\ngateway ka_jwt / ka_small, proxy CPU per request: {statistics.median(per):.2f}"
                        f" ({' / '.join(f'{x:.2f}' for x in per)}); compare the difference with `openssl speed ecdsap256` (verify).")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--echo", help="the gateway-echo binary: the h2 origin of h2_backend and grpc_unary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--mem-conns", type=int, default=1000)
    ap.add_argument("--sni", default="api.test",
                    help="the name wrk and h2load connect to (SNI and Host; resolved to 127.0.0.1 in a private mount"
                         " namespace); '' connects to 127.0.0.1 without SNI, as before")
    ap.add_argument("--quick", action="store_true", help="1 round of 3 s runs")
    ap.add_argument("--scale-conns", type=int, default=10000, help="ka_10k: keep-alive connections (wrk -t2)")
    ap.add_argument("--flood-conns", type=int, default=2000, help="flood: N slow-loris + N silent connections")
    ap.add_argument("--flood-hold", type=float, default=15, help="flood: seconds of flood once all are open")
    ap.add_argument("--flood-after", type=float, default=30, help="flood: seconds after it before RSS is read again")
    ap.add_argument("--h2-rps", type=int, default=0,
                    help="h2_backend, grpc_unary: a fixed total request rate for every proxy (default: as fast as it goes)")
    ap.add_argument("--instructions", action="store_true",
                    help="instructions per request instead of CPU time: each proxy under valgrind's callgrind, fixed "
                         "h2load loads (ka_small, ka_16k, h2_small, h2_1m, h2_backend, grpc_unary); slow, and independent "
                         "of the host's load")
    ap.add_argument("--keep-callgrind", metavar="DIR", default=None,
                    help="--instructions: keep each count's callgrind dump in DIR (for callgrind_annotate)")
    ap.add_argument("--slices", type=int, default=1, metavar="N",
                    help=f"{', '.join(SLICED)}: all proxies started together and loaded in turn, N turns of "
                         "duration / N s each (the host's drift then weighs on all alike); timing only")
    ap.add_argument("--keep-perf", metavar="DIR", default=None,
                    help="--profile: keep each perf record in DIR (the run's JSON line names it) for perf report --sort dso,sym")
    ap.add_argument("--callgrind-args", default="", metavar="ARGS",
                    help="--instructions: more valgrind options, e.g. '--dump-instr=yes' or '--cache-sim=yes --branch-sim=yes'")
    ap.add_argument("--profile", action="store_true",
                    help="wrk scenarios (ka_*, hs_*): split each proxy's CPU per request into kernel, OpenSSL, libc, Swift runtime, "
                         "nghttp2 and its own code (perf record over a separate run)")
    ap.add_argument("--out", default=None, help="JSON lines of every run (default: a file under /tmp)")
    ap.add_argument("--proxies", default="gateway,nginx,haproxy",
                    help="which proxies (haproxy is skipped when not installed; `baseline` is added after"
                         " `gateway` by --baseline unless this names it)")
    ap.add_argument("--baseline", default=None, metavar="BIN",
                    help="a second gateway binary (e.g. the build before a change), shown as proxy `baseline`")
    ap.add_argument("--no-allocs", dest="allocs", action="store_false",
                    help="skip the allocation count of ka_small/ka_16k (round 1)")
    ap.add_argument("--allocs-requests", type=int, default=4000,
                    help="keep-alive requests counted per proxy and scenario (after half as many to warm up)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
    scenarios = [s for s in args.scenarios.split(",") if s]
    proxies = [p for p in args.proxies.split(",") if p and (p != "haproxy" or shutil.which("haproxy"))]
    if args.baseline:
        if not os.access(args.baseline, os.X_OK):
            sys.exit(f"--baseline {args.baseline}: not an executable")
        if "baseline" not in proxies:
            proxies.insert(proxies.index("gateway") + 1 if "gateway" in proxies else 0, "baseline")
    elif "baseline" in proxies:
        sys.exit("proxy `baseline` needs --baseline BIN")
    for s in scenarios:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s}; known: {', '.join(SCENARIOS)}")
    if args.instructions:
        if not shutil.which("valgrind"):
            sys.exit("--instructions needs valgrind")
        if [s for s in scenarios if s not in INSTR_LOADS]:
            print(f"--instructions: only {', '.join(s for s in scenarios if s in INSTR_LOADS) or 'none'} of those asked",
                  file=sys.stderr)
        scenarios = [s for s in scenarios if s in INSTR_LOADS]
        CALLGRIND.update(on=True, keep=args.keep_callgrind, args=args.callgrind_args.split())
        args.allocs, args.profile = False, False
    if args.keep_perf:
        os.makedirs(args.keep_perf, exist_ok=True)
        PERF_KEEP["dir"] = args.keep_perf
    if any(s in H2_BACKEND for s in scenarios) and not args.echo:
        sys.exit("h2_backend and grpc_unary need --echo BIN (gateway-echo, the h2 origin)")
    raise_nofile()

    work, pki = work_with_pki("gw-bench-")
    setup_sni(args.sni, work)
    if CALLGRIND["on"]:
        # valgrind 3.19 cannot read DWARF 5 (it gives up at start), which a few units of a Swift
        # release build have: such a gateway runs as a copy without its debug sections (the same
        # code). One built with -Xswiftc -dwarf-version=4 -Xcc -gdwarf-4 runs as it is, so that
        # callgrind_annotate can show source lines (--keep-callgrind).
        for attr in ("gateway", "baseline"):
            if getattr(args, attr) and dwarf5(getattr(args, attr)):
                copy = f"{work}/{attr}-nodebug"
                run(["objcopy", "--strip-debug", getattr(args, attr), copy])
                setattr(args, attr, copy)
    nosession = f"{work}/nosession.so"
    run(["gcc", "-O2", "-shared", "-fPIC", "-o", nosession, f"{HERE}/nosession.c", "-ldl"])
    shim = None
    if args.allocs and any(s in ALLOC_SCENARIOS for s in scenarios):
        shim = f"{work}/count_malloc.so"
        run(["gcc", "-O2", "-shared", "-fPIC", "-Wl,-z,now", "-o", shim, f"{HERE}/../allocs.d/count_malloc.c", "-ldl", "-lpthread"])
    origin_ports = [free_port(), free_port()]
    origins = [start_origin(work, pki, origin_ports[0]), start_origin(work, pki, origin_ports[1], "origin2")]
    if any(s in H2_BACKEND for s in scenarios):
        args.echo_port, args.grpc_frame = free_port(), grpc_frame(f"{work}/grpc.bin")
        origins.append(start_echo(args.echo, work, pki, args.echo_port))
        args.echo_pid = origins[-1].pid
    out_path = args.out or f"/tmp/gw-bench-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    results = []
    try:
        with open(out_path, "w") as out:
            for rnd in range(args.rounds):
                order = proxies if rnd % 2 == 0 else list(reversed(proxies))
                for s in scenarios:
                    sliced = run_sliced(s, order, args, work, pki, origin_ports, nosession) \
                        if args.slices > 1 and s in SLICED and not CALLGRIND["on"] else None
                    for proxy in order:
                        r = sliced[proxy] if sliced else \
                            run_scenario(s, proxy, args, work, pki, origin_ports, nosession, shim if rnd == 0 else None)
                        r.update(round=rnd + 1, scenario=s, proxy=proxy)
                        results.append(r)
                        out.write(json.dumps(r) + "\n")
                        out.flush()
                        brief = f"skipped: {r['skipped']}" if r.get("skipped") else \
                            f"{r['instr_per_req'] or 0:,.0f} instructions per request ({r['requests']} requests) {r['errors']}" \
                            if "instr_per_req" in r else \
                            f"{r['bytes_per_conn']:.0f} B/conn" if s in ("mem_idle", "mem_idle_h2") else \
                            (f"{(r['bytes_per_conn'] or 0):.0f} B/conn held, RSS {r['rss_before_mb']:.1f} -> {r['rss_all_open_mb']:.1f}"
                             f" -> {r['rss_after_mb']:.1f} MB, p99 {r['p99_ms_before']} -> {r['p99_ms_during']} ms,"
                             f" {r['closed_by_proxy']} closed by the proxy {r['errors']}") if s == "flood" else \
                            (f"{r['rps']:.0f} req/s, {r['conns_established_max']} conns ({r['upstream_conns_max']} upstream),"
                             f" {(r['bytes_per_conn'] or 0):.0f} B/conn,"
                             f" p99 {r['p99_ms']} ms, errors: {r['errors'] or 'none'}") if s == "ka_10k" else \
                            f"{r['rps']:.0f} req/s, {r['req_per_cpu_s'] or 0:.0f} req/CPU-s, cores {r['proxy_cores']:.2f} {r['errors']}"
                        if r.get("allocs_per_req") is not None:
                            brief += f" allocs/req {r['allocs_per_req']:.2f} retains+releases/req {r['retains_releases_per_req']:.2f}"
                        print(f"round {rnd + 1} {s:10s} {proxy:8s} {brief}", file=sys.stderr, flush=True)
    finally:
        for o in origins:
            stop(o)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.rounds} round(s) of " + ("fixed h2load loads under callgrind" if CALLGRIND["on"] else f"{args.duration} s")
          + ", one worker each, proxy pinned to CPU 0"
          f" ({CPUS} CPUs); medians. Raw runs: {out_path}\n")
    if args.baseline:
        print(f"baseline: {args.baseline}\n")
    print(summarize(results, scenarios, proxies, args.flood_after))


if __name__ == "__main__":
    main()
