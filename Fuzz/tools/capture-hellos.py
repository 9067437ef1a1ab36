#!/usr/bin/env python3
"""Captures real ClientHellos (the client's first flight, raw bytes) from curl, openssl
s_client and Python's ssl module into Fuzz/corpus/clienthello/, and their server_name
extension bodies into Fuzz/corpus/sni/. A listener reads what each client sends and
closes; the clients fail, which is expected. Run from the repository root."""
import os, socket, ssl, subprocess, threading, time

OUT_HELLO, OUT_SNI = "Fuzz/corpus/clienthello", "Fuzz/corpus/sni"

def listen():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0)); s.listen(4)
    return s

def capture(name, client):
    srv = listen(); port = srv.getsockname()[1]; got = {}
    def serve():
        try: c, _ = srv.accept()
        except OSError: return
        c.settimeout(1.0); data = b""
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk: break
                data += chunk
                if len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[3:5], "big"): break
        except socket.timeout: pass
        got["data"] = data; c.close()
    srv.settimeout(5)
    t = threading.Thread(target=serve, daemon=True); t.start()
    try: client(port)
    except Exception: pass
    t.join(5); srv.close()
    data = got.get("data", b"")
    if not data: print("no bytes from", name); return
    open(os.path.join(OUT_HELLO, name), "wb").write(data)
    sni = server_name(data)
    if sni is not None: open(os.path.join(OUT_SNI, name), "wb").write(sni)
    print(f"{name}: {len(data)} bytes, sni ext {None if sni is None else len(sni)}")

def server_name(rec):
    """The server_name extension body of a ClientHello record, or None."""
    try:
        h = rec[5:]; i = 4 + 2 + 32
        i += 1 + h[i]                                  # session id
        i += 2 + int.from_bytes(h[i:i+2], "big")       # cipher suites
        i += 1 + h[i]                                  # compression
        end = i + 2 + int.from_bytes(h[i:i+2], "big"); i += 2
        while i + 4 <= end:
            t, n = int.from_bytes(h[i:i+2], "big"), int.from_bytes(h[i+2:i+4], "big")
            if t == 0: return h[i+4:i+4+n]
            i += 4 + n
    except IndexError: pass
    return None

def run(cmd): subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5)

def curl(host, *opts):
    return lambda p: run(["curl", "-sk", "--max-time", "2", *opts, "--resolve", f"{host}:{p}:127.0.0.1", f"https://{host}:{p}/"])

def s_client(*opts):
    return lambda p: run(["openssl", "s_client", "-connect", f"127.0.0.1:{p}", *opts])

def python(host, minv=None, maxv=None):
    def go(p):
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        if minv: ctx.minimum_version = minv
        if maxv: ctx.maximum_version = maxv
        ctx.set_alpn_protocols(["http/1.1"])
        with socket.create_connection(("127.0.0.1", p), timeout=2) as s:
            ctx.wrap_socket(s, server_hostname=host)
    return go

if __name__ == "__main__":
    os.makedirs(OUT_HELLO, exist_ok=True); os.makedirs(OUT_SNI, exist_ok=True)
    capture("curl-api-tls13", curl("api.example.test"))
    capture("curl-foo-tls12", curl("foo.example.test", "--tlsv1.2", "--tls-max", "1.2"))
    capture("curl-other-tls13", curl("other.test", "--tlsv1.3"))
    capture("openssl-api", s_client("-servername", "api.example.test"))
    capture("openssl-nosni", s_client("-noservername"))
    capture("openssl-foo-tls12-ecdsa", s_client("-servername", "foo.example.test", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"))
    capture("openssl-unknown-sni", s_client("-servername", "unknown.test", "-tls1_3"))
    capture("openssl-other-tls1", s_client("-servername", "other.test", "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"))
    capture("openssl-api-rsa-sigalgs", s_client("-servername", "API.Example.Test.", "-sigalgs", "rsa_pss_rsae_sha256:rsa_pkcs1_sha256"))
    capture("python-api", python("api.example.test"))
    capture("python-foo-tls12", python("foo.example.test", maxv=ssl.TLSVersion.TLSv1_2))
    capture("python-wild-deep", python("a.b.example.test", minv=ssl.TLSVersion.TLSv1_3))
