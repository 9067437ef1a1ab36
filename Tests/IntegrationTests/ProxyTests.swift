import Foundation
import Testing

/// curl / openssl s_client / the project's TLS client → real gateway → real gateway-echo.
@Suite(.serialized)
struct ProxyTests {
    @Test func proxiesARequestAndSetsForwardingHeaders() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        // HTTP/1.1: a Connection header listing another field (HTTP/2 has no Connection header).
        let r = try s.curl("/echo/x?q=1", ["--http1.1", "-H", "X-Forwarded-For: 6.6.6.6", "-H", "X-Client-Cert-Subject: CN=forged",
                                           "-H", "X-Request-Id: abc-123", "-H", "Connection: keep-alive, X-Drop-Me", "-H", "X-Drop-Me: 1"])
        #expect(r.status == 0, "\(r.err)")
        let e = try decodeEcho(r.out)
        #expect(e.method == "GET")
        #expect(e.path == "/echo/x?q=1")
        #expect(e.headers["x-forwarded-for"] == "127.0.0.1")
        #expect(e.headers["x-forwarded-proto"] == "https")
        #expect(e.headers["x-forwarded-host"] == "api.example.test:\(s.gatewayPort)")
        #expect(e.headers["x-request-id"] == "abc-123")
        #expect(e.headers["x-client-cert-verify"] == "NONE")
        #expect(e.headers["x-client-cert-subject"] == nil)
        #expect(e.headers["x-drop-me"] == nil)
        #expect(e.headers["connection"] == nil)
        #expect(eventually { s.gateway!.stdout.contains("\"request_id\":\"abc-123\"") }, "\(s.gateway!.stdout)")
        #expect(!s.gateway!.stdout.contains("tls_handshake_failed"), "a port probe is not a handshake failure")
    }

    @Test func generatesARequestIdWhenTheClientsIsInvalid() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let e = try decodeEcho(try s.curl("/", ["-H", "X-Request-Id: bad id!"]).out)
        let id = try #require(e.headers["x-request-id"])
        #expect(id.count == 36 && id.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12], "\(id)")
    }

    @Test func clientCertificateHeaders() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let r = try s.curl("/", ["--cert", Repo.cert("client1.pem"), "--key", Repo.cert("client1.key")])
        let e = try decodeEcho(r.out)
        #expect(e.headers["x-client-cert-verify"] == "SUCCESS")
        #expect(e.headers["x-client-cert-subject"] == "CN=client1,O=Example")
        #expect(e.headers["x-client-cert-sha256"]?.count == 64)
        #expect(e.headers["x-client-cert-serial"]?.allSatisfy { $0.isHexDigit && !$0.isLowercase } == true)
    }

    @Test func hundredRequestsOnOneKeepAliveConnection() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let url = "https://api.example.test:\(s.gatewayPort)/echo"
        let r = try run(["curl", "-sS", "--cacert", Repo.cert("ca.pem"), "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1",
                         "-w", "%{http_code} %{num_connects}\\n"] + Array(repeating: [url, "-o", "/dev/null"], count: 100).flatMap { $0 })
        let lines = r.out.split(separator: "\n")
        #expect(lines.count == 100, "\(r.err)")
        #expect(lines.allSatisfy { $0.hasPrefix("200 ") })
        #expect(lines.filter { $0 == "200 1" }.count == 1, "exactly one new connection for 100 requests")
    }

    /// SPEC §12 `max_requests_per_connection`: the last allowed response says `Connection: close`.
    @Test func maxRequestsPerConnectionEndsTheConnection() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config().replacing("max_body_size 64m;", with: "max_body_size 64m; max_requests_per_connection 3;"))
        let url = "https://api.example.test:\(s.gatewayPort)/echo"
        let r = try run(["curl", "-sS", "--http1.1", "--cacert", Repo.cert("ca.pem"), "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1",
                         "-D", "-", "-w", "%{http_code} %{num_connects}\\n"] + Array(repeating: [url, "-o", "/dev/null"], count: 7).flatMap { $0 })
        let codes = r.out.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("200 ") }
        #expect(codes == ["200 1", "200 0", "200 0", "200 1", "200 0", "200 0", "200 1"], "\(r.out) \(r.err)")
        #expect(r.out.components(separatedBy: "Connection: close").count - 1 == 2, "the 3rd and 6th responses close")
    }

    @Test func uploadsArriveIntactWithContentLengthAndChunked() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        var bytes = [UInt8](repeating: 0, count: 5 * 1024 * 1024)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 9) }
        let data = Data(bytes)
        let file = "\(s.dir)/upload.bin"
        try data.write(to: URL(fileURLWithPath: file))
        let digest = try sha256Hex(data)
        let plain = try decodeEcho(try s.curl("/upload", ["--data-binary", "@\(file)", "-H", "Content-Type: application/octet-stream"]).out)
        #expect(plain.body_length == data.count)
        #expect(plain.body_sha256 == digest)
        let chunked = try decodeEcho(try s.curl("/upload", ["--data-binary", "@\(file)", "-H", "Transfer-Encoding: chunked"]).out)
        #expect(chunked.headers["transfer-encoding"] == "chunked")
        #expect(chunked.body_length == data.count)
        #expect(chunked.body_sha256 == digest)
    }

    @Test func largeDownloadArrivesIntact() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let n = 20_000_000
        // The origin's own bytes, fetched directly: the gateway must hand on exactly these.
        let direct = try run(["sh", "-c", "curl -sS --cacert \(Repo.cert("backend-ca.pem")) --cert \(Repo.cert("gateway-client.pem")) "
                              + "--key \(Repo.cert("gateway-client.key")) https://127.0.0.1:\(s.echoPort)/bytes/\(n) | sha256sum"])
        let expected = String(direct.out.prefix(64))
        #expect(expected.count == 64, "\(direct.err)")
        for path in ["/bytes/\(n)", "/chunked/\(n)", "/close/\(n)"] {
            let file = "\(s.dir)/download"
            let r = try s.curl(path, ["-o", file, "-w", "%{size_download}"])
            #expect(r.out == "\(n)", "\(path): \(r.err)")
            #expect(try run(["sha256sum", file]).out.hasPrefix(expected), "\(path) bytes differ")
        }
    }

    @Test func headRequestsAndStatusPassThrough() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let head = try s.curl("/bytes/1000", ["-I"])
        #expect(head.out.contains("content-length: 1000") || head.out.contains("Content-Length: 1000"), "\(head.out)")
        let status = try s.curl("/status/418", ["-o", "/dev/null", "-w", "%{http_code}"])
        #expect(status.out == "418")
    }

    @Test func certificateIsChosenBySNI() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        for (name, expected) in [("api.example.test", "CN = api.example.test"), ("foo.example.test", "*.example.test")] {
            let r = try run(["openssl", "s_client", "-connect", "127.0.0.1:\(s.gatewayPort)", "-servername", name,
                             "-CAfile", Repo.cert("ca.pem"), "-brief"], stdin: Data("Q\n".utf8))
            #expect((r.out + r.err).contains(expected), "\(name): \(r.err)")
            #expect((r.out + r.err).contains("Verification: OK"), "\(name): \(r.err)")
        }
        let wild = try s.curl("/", host: "foo.example.test")
        #expect(try decodeEcho(wild.out).method == "GET")
    }

    @Test func unknownSNIIsRejectedWithAnAlert() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let r = try run(["openssl", "s_client", "-connect", "127.0.0.1:\(s.gatewayPort)", "-servername", "nope.test",
                         "-CAfile", Repo.cert("ca.pem"), "-brief"], stdin: Data("Q\n".utf8))
        #expect(r.status != 0)
        #expect(r.err.contains("unrecognized name"), "\(r.err)")
        // Deeper than one label under the wildcard is unknown too.
        #expect(throws: (any Error).self) { try TLSTestClient(port: s.gatewayPort, serverName: "a.b.example.test") }
        #expect(eventually { s.gateway!.stdout.contains("\"event\":\"tls_handshake_failed\"") })
        #expect(s.gateway!.stdout.contains("\"sni\":\"nope.test\""))
        // The gateway is still serving.
        #expect(try decodeEcho(try s.curl("/").out).method == "GET")
    }

    @Test func noRouteIs404AndTheConnectionStaysUsable() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(routes: "route /only backend echo;"))
        let c = try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test")
        try c.send("GET /onlyx HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        #expect(try c.readResponse().status == 404)
        try c.send("GET /only/y HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        let ok = try c.readResponse()
        #expect(ok.status == 200)
        #expect(try decodeEcho(ok.body).path == "/only/y")
    }

    @Test func stripPrefix() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        #expect(try decodeEcho(try s.curl("/strip?q=1").out).path == "/?q=1")
        #expect(try decodeEcho(try s.curl("/strip/x").out).path == "/x")
    }

    @Test func untrustedBackendCertificateIs502WithTheReasonLogged() throws {
        let s = try Stack()
        try s.startEcho(cert: "untrusted-echo")
        try s.startGateway()
        let r = try s.curl("/", ["-w", "%{http_code}", "-o", "/dev/null"])
        #expect(r.out == "502")
        #expect(s.gateway!.stderr.contains("certificate verify failed"), "\(s.gateway!.stderr)")
    }

    @Test func hostnameMismatchIs502() throws {
        let s = try Stack()
        try s.startEcho()
        let c = Repo.certs
        try s.startGateway(s.config(backendTLS: "ca \(c)/backend-ca.pem; server_name wrong.internal.test; certificate \(c)/gateway-client.pem \(c)/gateway-client.key;"))
        let r = try s.curl("/", ["-w", "%{http_code}", "-o", "/dev/null"])
        #expect(r.out == "502")
        #expect(s.gateway!.stderr.contains("hostname mismatch"), "\(s.gateway!.stderr)")
    }

    @Test func backendDownIs502AndTheGatewayKeepsServing() throws {
        let s = try Stack()
        try s.startGateway()   // no echo started: connection refused
        let c = try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test")
        try c.send("GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        #expect(try c.readResponse().status == 502)
        try c.send("GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        #expect(try c.readResponse().status == 502, "the connection stays usable after a 502")
        #expect(s.gateway!.stderr.contains("backend_error"))
        try s.startEcho()
        #expect(try decodeEcho(try s.curl("/").out).method == "GET")
    }

    @Test func backendTimeoutIs504() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let r = try s.curl("/delay/5000", ["-w", "%{http_code}", "-o", "/dev/null"])
        #expect(r.out == "504")
        #expect(s.gateway!.stderr.contains("timed out"))
    }
}

/// Several large downloads at once on one worker: each connection gets a fair share of a
/// drive and must be continued without a new epoll event (a stall here used to last until
/// response_timeout).
@Suite(.serialized)
struct ConcurrentDownloadTests {
    @Test func concurrentLargeDownloadsAllComplete() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let n = 30_000_000
        let procs: [Process] = try (0..<4).map { i in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["curl", "-sS", "--max-time", "60", "--cacert", Repo.cert("ca.pem"),
                           "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1", "-o", "\(s.dir)/dl\(i)",
                           "https://api.example.test:\(s.gatewayPort)/bytes/\(n)"]
            try p.run()
            return p
        }
        for p in procs { p.waitUntilExit() }
        for i in 0..<4 {
            let size = (try FileManager.default.attributesOfItem(atPath: "\(s.dir)/dl\(i)")[.size] as? Int) ?? 0
            #expect(size == n, "download \(i): \(size) bytes")
        }
        #expect(!s.gateway!.stderr.contains("timed out"), "\(s.gateway!.stderr)")
    }
}
