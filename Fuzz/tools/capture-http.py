#!/usr/bin/env python3
"""Seeds for the HTTP targets: real requests as curl and Python's http.client send them
(captured by a plain listener) into Fuzz/corpus/request/, and real responses of
gateway-echo (raw bytes over TLS) into Fuzz/corpus/response/. Also extracts the test
configurations of Tests/GatewayConfigTests into Fuzz/corpus/config/. Run from the
repository root after `swift build`."""
import http.client, os, re, socket, ssl, subprocess, threading, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def capture_request(name, client):
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0)); srv.listen(1); srv.settimeout(5); port = srv.getsockname()[1]; got = {}
    def serve():
        try: c, _ = srv.accept()
        except OSError: return
        c.settimeout(0.5); data = b""
        try:
            while chunk := c.recv(65536): data += chunk
        except socket.timeout: pass
        got["d"] = data; c.close()
    t = threading.Thread(target=serve, daemon=True); t.start()
    try: client(port)
    except Exception: pass
    t.join(5); srv.close()
    open(f"Fuzz/corpus/request/{name}", "wb").write(got.get("d", b""))

def curl(*args):
    return lambda p: subprocess.run(["curl", "-s", "--max-time", "1", *[a.replace("PORT", str(p)) for a in args]],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def pyclient(method, path, body=None, headers={}):
    def go(p):
        c = http.client.HTTPConnection("127.0.0.1", p, timeout=1); c.request(method, path, body=body, headers=headers); c.getresponse()
    return go

def responses():
    port = free_port()
    echo = subprocess.Popen([".build/debug/gateway-echo", "--listen", f"127.0.0.1:{port}",
                             "--cert", "certs/echo.internal.test.pem", "--key", "certs/echo.internal.test.key"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        ctx = ssl.create_default_context(cafile="certs/backend-ca.pem"); ctx.check_hostname = False
        for name, req in [("ok", "GET /ok"), ("json-echo", "POST /echo"), ("chunked", "GET /chunked/300"),
                          ("close", "GET /close/40"), ("status-404", "GET /status/404"), ("text", "GET /text/200"),
                          ("head", "HEAD /ok"), ("status-304", "GET /status/304"), ("bytes", "GET /bytes/64")]:
            with socket.create_connection(("127.0.0.1", port)) as s, ctx.wrap_socket(s, server_hostname="echo.internal.test") as t:
                body = b"hello" if req.startswith("POST") else b""
                t.sendall(f"{req} HTTP/1.1\r\nHost: echo\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
                data = b""
                t.settimeout(2)
                try:
                    while chunk := t.recv(65536): data += chunk
                except (socket.timeout, ssl.SSLError): pass
            open(f"Fuzz/corpus/response/{name}", "wb").write(data)
    finally:
        echo.terminate(); echo.wait()

def configs():
    text = open("Tests/GatewayConfigTests/ConfigLoaderTests.swift").read()
    for i, m in enumerate(re.findall(r'"""\n(.*?)\n\s*"""', text, re.S)):
        if "\\(" in m: continue   # interpolated: not a file as written
        lines = m.split("\n"); indent = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
        open(f"Fuzz/corpus/config/test-{i:02d}.conf", "w").write("\n".join(l[indent:] for l in lines) + "\n")

if __name__ == "__main__":
    for d in ("request", "response", "config"): os.makedirs(f"Fuzz/corpus/{d}", exist_ok=True)
    capture_request("curl-get", curl("http://api.example.test:PORT/echo?x=1", "--resolve", "api.example.test:PORT:127.0.0.1"))
    capture_request("curl-post-form", curl("-d", "a=1&b=2", "http://127.0.0.1:PORT/form"))
    capture_request("curl-post-chunked", curl("-H", "Transfer-Encoding: chunked", "--data-binary", "hello world", "http://127.0.0.1:PORT/up"))
    capture_request("curl-head-http10", curl("-I", "-0", "http://127.0.0.1:PORT/"))
    capture_request("curl-expect", curl("-H", "Expect: 100-continue", "--data-binary", "x" * 1100, "http://127.0.0.1:PORT/big"))
    capture_request("curl-websocket", curl("-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
                                           "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "http://127.0.0.1:PORT/ws"))
    capture_request("python-put", pyclient("PUT", "/x?y=%20", body=b"abc", headers={"X-Request-Id": "abc-123"}))
    capture_request("python-options", pyclient("OPTIONS", "*"))
    capture_request("python-absolute", pyclient("GET", "https://api.example.test/a/b", headers={"Accept-Encoding": "gzip;q=1, br;q=0"}))
    responses()
    configs()
