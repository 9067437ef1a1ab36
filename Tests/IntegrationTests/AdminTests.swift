import Foundation
import Testing

/// The admin endpoint (SPEC §7.1) against the real gateway: probes, token, pages, slow clients.
@Suite(.serialized)
struct AdminTests {
    /// api.example.test sets client_allow and groups; *.example.test has the defaults.
    @Test func probesPagesAndHostsOverTCP() throws {
        let s = try Stack()
        let port = freePort()
        try s.startEcho()
        try s.startGateway(s.config(hostExtra: """
            client_allow san_uri spiffe://example.test/*;
            client_allow san_dns Worker.Example.Test;
            groups P-256:X25519;
            """, topExtra: "admin 127.0.0.1:\(port);"))
        let a = Admin(port: port)
        #expect(try a.get("/healthz").code == 200)
        #expect(try a.get("/readyz").code == 200)
        let config = try a.get("/config")
        #expect(config.code == 200)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(config.body.utf8)) as? [String: Any])
        let hosts = try #require(json["hosts"] as? [[String: Any]])
        #expect(hosts.count == 2)
        #expect((json["backends"] as? [[String: Any]])?.first?["name"] as? String == "echo")
        #expect(!config.body.contains(".key"), "no key file, let alone key material: \(config.body)")
        #expect(!config.body.contains("PRIVATE"))
        let host = try a.get("/hosts/API.example.test")
        #expect(host.code == 200)
        let tls = try #require((try JSONSerialization.jsonObject(with: Data(host.body.utf8)) as? [String: Any])?["tls"] as? [String: Any])
        #expect(tls["client_auth"] as? String == "optional")
        #expect(tls["min_version"] as? String == "TLSv1.2")
        #expect(tls["client_allow"] as? [String] == ["san_uri spiffe://example.test/*", "san_dns worker.example.test"], "\(host.body)")
        #expect(tls["groups"] as? String == "P-256:X25519")
        #expect((hosts.first?["tls"] as? [String: Any])?["client_allow"] as? [String] == tls["client_allow"] as? [String], "/config shows the same")
        let wildcard = try a.get("/hosts/*.example.test")
        #expect(wildcard.code == 200)
        let defaults = try #require((try JSONSerialization.jsonObject(with: Data(wildcard.body.utf8)) as? [String: Any])?["tls"] as? [String: Any])
        #expect(defaults["client_allow"] as? [String] == [], "no client_allow: any verified certificate")
        #expect(defaults["groups"] as? String == "X25519:P-256:P-384", "the default groups")
        // The start-up table shows the same, column by column.
        let log = s.gateway!.stderr
        #expect(policyTableCell(log, host: "api.example.test", column: "client_allow") == "san_uri spiffe://example.test/*, san_dns worker.example.test", "\(log)")
        #expect(policyTableCell(log, host: "api.example.test", column: "groups") == "P-256:X25519")
        #expect(policyTableCell(log, host: "*.example.test", column: "client_allow") == "-")
        #expect(policyTableCell(log, host: "*.example.test", column: "groups") == "X25519:P-256:P-384")
        #expect(try a.get("/hosts/nope.test").code == 404)
        #expect(try a.get("/nope").code == 404)
        #expect(try a.get("/metrics", extra: ["-X", "POST"]).code == 405)
    }

    @Test func unixSocketAdmin() throws {
        let s = try Stack()
        let path = "\(s.dir)/admin.sock"
        try s.startEcho()
        try s.startGateway(s.config(topExtra: "admin unix:\(path);"))
        let a = Admin(unixPath: path)
        #expect(try a.get("/healthz").code == 200)
        let m = try a.get("/metrics")
        #expect(m.code == 200)
        #expect(m.body.contains("gateway_build_info{"))
    }

    @Test func tokenMatrix() throws {
        let s = try Stack()
        let port = freePort()
        let tokenFile = "\(s.dir)/token"
        try "s3cret-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        chmod(tokenFile, 0o600)
        try s.startEcho()
        try s.startGateway(s.config(topExtra: "admin 127.0.0.1:\(port); admin_token_file \(tokenFile);"))
        let a = Admin(port: port)
        for probe in ["/healthz", "/readyz"] {
            #expect(try a.get(probe).code == 200, "probes never need the token")
        }
        for path in ["/metrics", "/config", "/hosts/api.example.test"] {
            #expect(try a.get(path).code == 401, "\(path)")
            #expect(try a.get(path, token: "wrong").code == 401, "\(path)")
            #expect(try a.get(path, token: "s3cret-toke").code == 401, "a prefix of the token is not the token")
            #expect(try a.get(path, token: "s3cret-token").code == 200, "\(path)")
        }
        #expect(try a.get("/nope").code == 401, "unknown paths are not revealed without the token")
        #expect(!(try a.get("/config", token: "s3cret-token").body.contains("s3cret")), "the token is never shown")
        #expect(!s.gateway!.stderr.contains("s3cret"), "nor logged")
    }

    @Test func exposedAdminIsLoggedAsAnError() throws {
        let s = try Stack()
        let port = freePort()
        try s.startEcho()
        try s.startGateway(s.config(topExtra: "admin 0.0.0.0:\(port);"))
        #expect(eventually { jsonLines(s.gateway!.stderr).contains { $0["event"] as? String == "admin_exposed" && $0["level"] as? String == "error" } },
                "\(s.gateway!.stderr)")
        s.gateway!.signal(SIGHUP)
        #expect(eventually { jsonLines(s.gateway!.stderr).filter { $0["event"] as? String == "admin_exposed" }.count == 2 }, "logged at every load")
    }

    /// A client that opens the admin port and sends half a head holds neither the admin thread
    /// nor any worker: other admin requests and proxied requests go on.
    @Test func slowAdminClientStallsNothing() throws {
        let s = try Stack()
        let port = freePort()
        try s.startEcho()
        try s.startGateway(s.config(topExtra: "admin 127.0.0.1:\(port);"))
        var slow: [Int32] = []
        for _ in 0..<5 {
            let fd = try #require(connectLoopback(port))
            _ = "GET /metr".withCString { write(fd, $0, 9) }
            slow.append(fd)
        }
        defer { slow.forEach { close($0) } }
        let started = Date()
        #expect(try Admin(port: port).get("/healthz").code == 200)
        #expect(try s.curl("/ok").out == "ok\n")
        #expect(Date().timeIntervalSince(started) < 2)
        // The admin side gives a silent client 5 s, then closes it.
        var buf = [UInt8](repeating: 0, count: 16)
        var tv = timeval(tv_sec: 8, tv_usec: 0)
        setsockopt(slow[0], SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        #expect(read(slow[0], &buf, 16) == 0, "closed by the admin endpoint's head timeout")
    }

    /// SIGTERM with a slow request in flight: /readyz turns 503 at once, /healthz stays 200,
    /// the request still completes.
    @Test func readyzTurns503DuringDrain() throws {
        let s = try Stack()
        let port = freePort()
        try s.startEcho()
        try s.startGateway(s.config(topExtra: "admin 127.0.0.1:\(port);"))
        let a = Admin(port: port)
        #expect(try a.get("/readyz").code == 200)
        let slow = Process()
        slow.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let out = Pipe()
        slow.standardOutput = out
        // curl's trace shows when the request has gone out; the gateway needs a moment more to
        // read it (a connection whose request has not begun is closed by a drain, not served).
        let trace = NSTemporaryDirectory() + "readyz-\(UUID().uuidString).trace"
        defer { try? FileManager.default.removeItem(atPath: trace) }
        slow.arguments = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", Repo.cert("ca.pem"), "--trace-ascii", trace,
                          "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1", "https://api.example.test:\(s.gatewayPort)/delay/2500"]
        try slow.run()
        #expect(eventually(3) { (try? String(contentsOfFile: trace, encoding: .utf8))?.contains("GET /delay/2500") == true })
        usleep(300_000)
        s.gateway!.signal(SIGTERM)
        #expect(eventually(2) { (try? a.get("/readyz").code) == 503 })
        #expect(try a.get("/healthz").code == 200, "still running while it drains")
        slow.waitUntilExit()
        #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "200")
        #expect(s.gateway!.waitForExit(timeout: 10) == 0)
    }
}
