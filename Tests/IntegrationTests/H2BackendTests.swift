import Foundation
import Testing

/// SPEC §12 "Toward backends", `protocol h2`: the gateway speaks HTTP/2 to gateway-echo (which
/// answers over HTTP/2 when offered h2 and says so in its JSON), for HTTP/2 and HTTP/1.1 clients
/// alike; trailers come back to both; many client streams share a few backend connections; a
/// backend that does not negotiate h2 is a 502 with its log line and metric.
@Suite(.serialized)
struct H2BackendTests {
    /// gateway-echo behind the default test config with backend `echo` made `protocol h2`.
    static func start(admin: UInt16? = nil) throws -> Stack {
        let s = try Stack()
        do {
            try s.startEcho()
            try s.startGateway(s.config(backendExtra: "protocol h2;", topExtra: admin.map { "admin 127.0.0.1:\($0);" } ?? ""))
        } catch {
            s.stop()
            throw error
        }
        return s
    }

    /// gateway-echo's /bytes/N body: byte i is i % 251.
    static func pattern(_ n: Int) -> Data { Data((0..<n).map { UInt8($0 % 251) }) }

    @Test func http2AndHTTP1ClientsReachAnH2Backend() throws {
        let s = try Self.start()
        defer { s.stop() }
        let body = Self.pattern(3_000_000)
        let file = "\(s.dir)/body.bin"
        try body.write(to: URL(fileURLWithPath: file))
        let sha = try sha256Hex(body)
        for proto in ["--http2", "--http1.1"] {
            let get = try s.curl("/echo/x?q=1", [proto])
            let e = try decodeEcho(get.out)
            #expect(get.out.hasPrefix("{\"protocol\": \"HTTP/2\", "), "\(proto): the backend answered over HTTP/2: \(get.out.prefix(300)) \(get.err)")
            #expect(e.method == "GET" && e.path == "/echo/x?q=1", "\(proto): \(e)")
            #expect(e.headers[":authority"] == "api.example.test:\(s.gatewayPort)", "\(proto): \(e.headers)")
            #expect(e.headers["x-forwarded-proto"] == "https" && e.headers["x-forwarded-for"] == "127.0.0.1"
                    && e.headers["x-forwarded-host"] == "api.example.test:\(s.gatewayPort)", "\(proto): \(e.headers)")
            #expect(e.headers["x-request-id"] != nil && e.headers["connection"] == nil && e.headers["keep-alive"] == nil
                    && e.headers["transfer-encoding"] == nil, "\(proto): \(e.headers)")
            // 3 MB up (with a length) and 3 MB down: flow control on both hops.
            let post = try decodeEcho(try s.curl("/echo", [proto, "--data-binary", "@\(file)"]).out)
            #expect(post.method == "POST" && post.body_length == body.count && post.body_sha256 == sha, "\(proto): \(post)")
            let down = try s.curl("/bytes/3000000", [proto])
            #expect(down.outData == body, "\(proto): \(down.outData.count) bytes \(down.err)")
        }
        // An HTTP/1.1 body of unknown length (chunked) becomes DATA frames.
        let chunked = try decodeEcho(try s.curl("/echo", ["--http1.1", "-H", "Transfer-Encoding: chunked", "--data-binary", "@\(file)"]).out)
        #expect(chunked.body_length == body.count && chunked.body_sha256 == sha, "\(chunked)")
        // Every exchange logged with its client protocol, 200, backend echo.
        #expect(eventually { s.accessLog.filter { $0["backend"] as? String == "echo" }.count == 7 }, "\(s.gateway!.stdout.suffix(3000))")
        let lines = s.accessLog.filter { $0["backend"] as? String == "echo" }
        #expect(lines.allSatisfy { $0["status"] as? Int == 200 }, "\(lines)")
        #expect(lines.filter { $0["protocol"] as? String == "HTTP/2" }.count == 3 && lines.filter { $0["protocol"] as? String == "HTTP/1.1" }.count == 4)
    }

    @Test func trailersReachBothKindsOfClient() throws {
        let s = try Self.start()
        defer { s.stop() }
        // HTTP/2: the backend's trailers arrive after the DATA, in a second HEADERS frame with END_STREAM.
        let n = try run(["nghttp", "-v", "-H", ":authority: api.example.test", "-H", "te: trailers",
                         "https://127.0.0.1:\(s.gatewayPort)/trailers"])
        #expect(n.status == 0, "\(n.err)")
        let data = try #require(n.out.range(of: "recv DATA frame"), "\(n.out)")
        let trailer = try #require(n.out.range(of: "x-echo-trailer: 1"), "\(n.out)")
        #expect(data.lowerBound < trailer.lowerBound, "\(n.out)")
        let headers = n.out.split(separator: "\n").filter { $0.contains("recv HEADERS frame") }
        #expect(headers.count == 2 && headers[1].contains("flags=0x05"), "\(n.out)")
        // `te: trailers` reaches the backend (its JSON lists it), and the answer ends with trailers.
        let te = try run(["nghttp", "-v", "-H", ":authority: api.example.test", "-H", "te: trailers",
                          "https://127.0.0.1:\(s.gatewayPort)/echo"])
        #expect(te.out.contains("\"te\": \"trailers\"") && te.out.contains("x-echo-trailer: 1"), "\(te.out)")
        // HTTP/1.1 with TE: trailers: a chunked answer, the trailer after the last chunk (curl --raw keeps the framing).
        let h1 = try s.curl("/trailers", ["--http1.1", "-v", "--raw", "-H", "TE: trailers"])
        #expect(h1.err.contains("< HTTP/1.1 200") && h1.err.lowercased().contains("< transfer-encoding: chunked"), "\(h1.err)")
        #expect(h1.out.contains("trailers follow\n") && h1.out.hasSuffix("0\r\nx-echo-trailer: 1\r\n\r\n"), "\(h1.out.debugDescription)")
    }

    /// 200 client streams at once (2 connections × 100) over backend connections of 128 streams each.
    @Test func manyConcurrentStreamsShareFewBackendConnections() throws {
        let admin = freePort()
        let s = try Self.start(admin: admin)
        defer { s.stop() }
        let load = try ServerProcess("/usr/bin/env", ["h2load", "-n", "1000", "-c", "2", "-m", "100", "--connect-to=127.0.0.1:\(s.gatewayPort)",
                                                      "https://api.example.test:\(s.gatewayPort)/ok"], dir: s.dir)
        defer { load.stop() }
        // The most gateway → echo connections open at once while the load runs (and right after).
        var most = 0
        let end = Date().addingTimeInterval(120)
        while load.process.isRunning && Date() < end {
            most = max(most, try Self.connections(to: s.echoPort))
            usleep(20_000)
        }
        most = max(most, try Self.connections(to: s.echoPort))
        #expect(load.waitForExit(timeout: 5) == 0, "\(load.stdout)\(load.stderr)")
        #expect(load.stdout.contains("1000 succeeded, 0 failed, 0 errored"), "\(load.stdout)")
        #expect(load.stdout.contains("status codes: 1000 2xx"), "\(load.stdout)")
        #expect(most >= 1 && most <= 4, "multiplexed: \(most) backend connections for 200 concurrent streams")
        let m = MetricsPage(try Admin(port: admin).get("/metrics").body)
        #expect(m.sum("gateway_requests_total", ["backend": "echo", "code": "200"]) == 1000, "\(m.text)")
        #expect(m.sum("gateway_backend_failures_total") == 0, "\(m.text)")
    }

    /// Established TCP connections toward 127.0.0.1:port (the gateway's side of them).
    static func connections(to port: UInt16) throws -> Int {
        let r = try run(["ss", "-Htn", "state", "established", "( dport = :\(port) )"])
        return r.out.split(separator: "\n").count
    }

    /// An HTTP/1.1-only TLS server (openssl s_server, no ALPN) as a `protocol h2` backend.
    @Test func aBackendThatDoesNotNegotiateH2Is502() throws {
        let admin = freePort(), port = freePort()
        let s = try Stack()
        defer { s.stop() }
        let plain = try ServerProcess("/usr/bin/env", ["openssl", "s_server", "-accept", "127.0.0.1:\(port)", "-www", "-quiet",
                                                       "-cert", Repo.cert("echo.internal.test.pem"), "-key", Repo.cert("echo.internal.test.key")],
                                      dir: s.dir)
        // Foundation's Process starts children with signals blocked: s_server would sit on SIGTERM
        // until stop()'s SIGKILL 5 s later, so it gets the SIGKILL at once.
        defer {
            plain.signal(SIGKILL)
            _ = plain.waitForExit(timeout: 5)
        }
        try plain.waitForPort(port)
        try s.startGateway(s.config(backendExtra: "protocol h2;\n    max_fails 0;", topExtra: "admin 127.0.0.1:\(admin);",
                                    server: "https://127.0.0.1:\(port)"))
        for proto in ["--http2", "--http1.1"] {
            let r = try s.curl("/ok", [proto, "-o", "/dev/null", "-w", "%{http_code}"])
            #expect(r.out == "502", "\(proto): \(r.out) \(r.err)")
        }
        #expect(eventually { s.gateway!.stderr.contains("backend did not negotiate h2") }, "\(s.gateway!.stderr.suffix(2000))")
        let m = MetricsPage(try Admin(port: admin).get("/metrics").body)
        #expect(m.sum("gateway_backend_failures_total", ["backend": "echo", "server": "127.0.0.1:\(port)", "reason": "protocol"]) == 2,
                "\(m.text)")
        #expect(plain.process.isRunning, "the TLS server is still up: the failure was the protocol, not the server")
    }
}
