import Foundation
import Testing

/// Backend fleets (SPEC §6): weights, least_conn, passive health, 502 → 503, 100-continue, HEAD.
@Suite(.serialized)
struct BackendTests {
    /// One more echo origin on its own port, named so replies say which server answered.
    static func startEcho(_ s: Stack, port: UInt16, name: String) throws -> ServerProcess {
        let e = try ServerProcess(try Repo.binary("gateway-echo"),
                                  ["--listen", "127.0.0.1:\(port)", "--cert", Repo.cert("echo.internal.test.pem"),
                                   "--key", Repo.cert("echo.internal.test.key"), "--name", name], dir: s.dir)
        try e.waitForPort(port)
        return e
    }

    /// The `server` field of each echo reply from `count` requests on one keep-alive connection.
    static func servers(_ s: Stack, count: Int, path: String = "/") throws -> [String] {
        let url = "https://api.example.test:\(s.gatewayPort)\(path)"
        let r = try run(["curl", "-sS", "--cacert", Repo.cert("ca.pem"), "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1",
                         "-w", "\n"] + Array(repeating: url, count: count))
        return r.out.split(separator: "\n").map { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])??["server"] as? String ?? "status:\(line.prefix(40))"
        }
    }

    static func config(_ s: Stack, servers: String, extra: String = "") -> String {
        s.config(backendExtra: extra, server: servers)
    }

    /// The default echo plus a second one named "b"; returns b's port and process.
    static func twoOrigins(_ s: Stack) throws -> (UInt16, ServerProcess) {
        let port = freePort()
        try s.startEcho()
        return (port, try startEcho(s, port: port, name: "b"))
    }

    @Test func weightsShareTraffic() throws {
        let s = try Stack()
        let (portB, b) = try Self.twoOrigins(s)
        defer { b.stop() }
        try s.startGateway(Self.config(s, servers: "https://127.0.0.1:\(s.echoPort) weight 3;\n    server https://127.0.0.1:\(portB) weight 1"))
        let got = try Self.servers(s, count: 40)
        #expect(got.filter { $0 == "echo" }.count == 30, "\(got)")
        #expect(got.filter { $0 == "b" }.count == 10, "\(got)")
    }

    @Test func leastConnAvoidsTheBusyServer() throws {
        let s = try Stack()
        let (portB, b) = try Self.twoOrigins(s)
        defer { b.stop() }
        try s.startGateway(Self.config(s, servers: "https://127.0.0.1:\(s.echoPort);\n    server https://127.0.0.1:\(portB)",
                                       extra: "balance least_conn;"))
        // One slow request holds a server; the quick ones that follow must all go to the other.
        let slow = Process()
        slow.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        slow.arguments = ["curl", "-sS", "-o", "\(s.dir)/slow.json", "--cacert", Repo.cert("ca.pem"),
                          "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1", "https://api.example.test:\(s.gatewayPort)/delay/1500"]
        try slow.run()
        usleep(400_000)
        let quick = try Self.servers(s, count: 4)
        slow.waitUntilExit()
        let slowServer = try decodeEchoServer(String(contentsOfFile: "\(s.dir)/slow.json", encoding: .utf8))
        #expect(quick.count == 4)
        #expect(quick.allSatisfy { $0 != slowServer }, "slow on \(slowServer), quick on \(quick)")
    }

    @Test func failingServerIsSkippedThenComesBack() throws {
        let s = try Stack()
        let portA = freePort()   // nothing listens there yet
        try s.startEcho()
        try s.startGateway(Self.config(s, servers: "https://127.0.0.1:\(portA);\n    server https://127.0.0.1:\(s.echoPort)",
                                       extra: "max_fails 1; fail_timeout 2s;"))
        let first = try Self.servers(s, count: 6)
        #expect(first == Array(repeating: "echo", count: 6), "retried on the other server, then only that one: \(first)")
        usleep(200_000)
        let connectErrors = s.gateway!.stderr.components(separatedBy: "connect to 127.0.0.1:\(portA) failed").count - 1
        #expect(connectErrors == 1, "the down server is not tried again within fail_timeout: \(s.gateway!.stderr)")
        #expect(s.gateway!.stderr.contains("backend_server_down"))
        let a = try Self.startEcho(s, port: portA, name: "a")
        defer { a.stop() }
        usleep(2_200_000)
        let later = try Self.servers(s, count: 4)
        #expect(later.contains("a"), "back after fail_timeout: \(later)")
    }

    @Test func onlyServerDownIs502Then503() throws {
        let s = try Stack()
        let port = freePort()
        try s.startGateway(Self.config(s, servers: "https://127.0.0.1:\(port)", extra: "max_fails 1; fail_timeout 10s;"))
        let url = "https://api.example.test:\(s.gatewayPort)/"
        let codes = try run(["curl", "-sS", "-w", "%{http_code}\n", "--cacert", Repo.cert("ca.pem"),
                             "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1",
                             url, "-o", "/dev/null", url, "-o", "/dev/null"]).out
        #expect(codes == "502\n503\n", "\(codes)")
    }

    @Test func webSocketIsTunnelledBothWays() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let c = try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test")
        try c.send("GET /chat HTTP/1.1\r\nHost: api.example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                   + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 101, "\(r.head)")
        #expect(r.head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "\(r.head)")
        #expect(r.head.lowercased().contains("upgrade: websocket") && r.head.lowercased().contains("connection: upgrade"))
        // A masked text frame "hello", then a 100 KB binary frame: both come back byte for byte.
        let hello: [UInt8] = [0x81, 0x85, 1, 2, 3, 4] + Array("hello".utf8).enumerated().map { $0.element ^ UInt8($0.offset % 4 + 1) }
        try c.send(Data(hello))
        #expect(try c.read(count: hello.count) == hello)
        let big = [UInt8](repeating: 0x5A, count: 100_000)
        try c.send(Data(big))
        #expect(try c.read(count: big.count) == big)
        #expect(eventually { s.gateway!.stdout.contains(#""path":"/chat","status":101"#) }, "\(s.gateway!.stdout)")
    }

    @Test func expectContinueAndHead() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let body = Data(repeating: 0x61, count: 300_000)
        try body.write(to: URL(fileURLWithPath: "\(s.dir)/body"))
        let r = try s.curl("/upload", ["--http1.1", "-H", "Expect: 100-continue", "--data-binary", "@\(s.dir)/body", "-v"])
        #expect(r.err.contains("HTTP/1.1 100 Continue"), "\(r.err)")
        let e = try decodeEcho(r.out)
        #expect(e.body_length == 300_000)
        #expect(e.body_sha256 == (try sha256Hex(body)))
        let head = try s.curl("/bytes/5000", ["-I", "-w", "%{size_download}"])
        #expect(head.out.lowercased().contains("content-length: 5000"))
        #expect(head.out.hasSuffix("0"), "HEAD: no body")
    }
}

func decodeEchoServer(_ s: String) throws -> String {
    guard let o = try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], let name = o["server"] as? String else {
        throw HarnessError("not an echo reply: \(s.prefix(200))")
    }
    return name
}

/// gzip (SPEC §5): only when the host has `compress on`, the client accepts it, the type is
/// listed, the backend did not encode, and the body is long enough; it inflates to the origin's bytes.
@Suite(.serialized)
struct CompressionTests {
    @Test func gzipInflatesToTheOriginsBytes() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(hostExtra: "compress on; compress_min_length 100;"))
        let n = 3_000_000
        let direct = try run(["sh", "-c", "curl -sS --cacert \(Repo.cert("backend-ca.pem")) --cert \(Repo.cert("gateway-client.pem")) "
                              + "--key \(Repo.cert("gateway-client.key")) https://127.0.0.1:\(s.echoPort)/text/\(n) | sha256sum"]).out
        // Both codecs: HTTP/1.1 writes the head itself, HTTP/2 hands the backend's fields to
        // nghttp2 with Content-Length left behind and the two fields added.
        for (flag, status) in [("--http1.1", "http/1.1 200"), ("--http2", "http/2 200")] {
            let zipped = "\(s.dir)/body.gz"
            let r = try s.curl("/text/\(n)", [flag, "-H", "Accept-Encoding: gzip", "-D", "\(s.dir)/head", "-o", zipped, "-w", "%{size_download}"])
            let head = try String(contentsOfFile: "\(s.dir)/head", encoding: .utf8).lowercased()
            #expect(head.hasPrefix(status), "\(head)")
            #expect(head.contains("content-encoding: gzip"), "\(head)")
            #expect(head.contains("vary: accept-encoding"))
            #expect(!head.contains("content-length"))
            #expect((Int(r.out) ?? n) < n / 10, "compressed size \(r.out)")
            let inflated = try run(["sh", "-c", "gzip -dc \(zipped) | sha256sum"]).out
            #expect(inflated == direct, "inflated body differs from the origin's (\(flag))")
        }
    }

    @Test func noGzipWhenNotAcceptedNotListedOrTooShort() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(hostExtra: "compress on; compress_min_length 1000;"))
        func headers(_ path: String, _ extra: [String]) throws -> String {
            _ = try s.curl(path, extra + ["-D", "\(s.dir)/h", "-o", "/dev/null"])
            return try String(contentsOfFile: "\(s.dir)/h", encoding: .utf8).lowercased()
        }
        let notAccepted = try headers("/text/5000", [])
        #expect(!notAccepted.contains("content-encoding") && notAccepted.contains("content-length: 5000"))
        #expect(notAccepted.contains("vary: accept-encoding"), "a listed type varies on Accept-Encoding")
        #expect(!(try headers("/text/5000", ["-H", "Accept-Encoding: gzip;q=0"])).contains("content-encoding"))
        #expect(!(try headers("/bytes/5000", ["-H", "Accept-Encoding: gzip"])).contains("content-encoding"), "octet-stream is not listed")
        #expect(!(try headers("/text/500", ["-H", "Accept-Encoding: gzip"])).contains("content-encoding"), "under compress_min_length")
        #expect(try headers("/text/5000", ["-H", "Accept-Encoding: br, gzip"]).contains("content-encoding: gzip"))
    }
}

@Suite(.serialized)
struct ActiveHealthCheckTests {
    @Test func failingHealthCheckTakesAServerOutUntilItPasses() throws {
        let s = try Stack()
        let portA = freePort()
        try s.startEcho()
        var a: ServerProcess? = try ServerProcess(try Repo.binary("gateway-echo"),
            ["--listen", "127.0.0.1:\(portA)", "--cert", Repo.cert("echo.internal.test.pem"), "--key", Repo.cert("echo.internal.test.key"),
             "--name", "a", "--health-status", "503"], dir: s.dir)
        try a!.waitForPort(portA)
        defer { a?.stop() }
        try s.startGateway(BackendTests.config(s, servers: "https://127.0.0.1:\(portA);\n    server https://127.0.0.1:\(s.echoPort)",
                                               extra: "health_check /healthz interval 200ms timeout 1s;"))
        usleep(600_000)
        let first = try BackendTests.servers(s, count: 8)
        #expect(first == Array(repeating: "echo", count: 8), "a fails its check: \(first)")
        #expect(s.gateway!.stderr.contains("backend_health_failed"))
        // The same server passing its check comes back.
        a!.stop()
        a = try ServerProcess(try Repo.binary("gateway-echo"),
            ["--listen", "127.0.0.1:\(portA)", "--cert", Repo.cert("echo.internal.test.pem"), "--key", Repo.cert("echo.internal.test.key"),
             "--name", "a"], dir: s.dir)
        try a!.waitForPort(portA)
        usleep(700_000)
        let later = try BackendTests.servers(s, count: 8)
        #expect(later.contains("a"), "\(later)")
        #expect(s.gateway!.stderr.contains("backend_health_ok"))
    }
}
