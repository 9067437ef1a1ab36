import Foundation
import Testing

/// `/metrics` after a known mix of requests: exact sums over both workers, then promtool.
@Suite(.serialized)
struct MetricsTests {
    @Test func sumsAreExactOverBothWorkersAndPromtoolAccepts() throws {
        let s = try Stack()
        let port = freePort()
        let deadPort = freePort()
        try s.startEcho()
        var text = s.config(topExtra: "admin 127.0.0.1:\(port);",
                            routes: "route /dead backend dead;\n    route / backend echo;")
        text = text.replacingOccurrences(of: "workers 1;", with: "workers 2;")
        text += "\nbackend dead { server https://127.0.0.1:\(deadPort); max_fails 0; tls { ca \(Repo.certs)/backend-ca.pem; } }\n"
        try s.startGateway(text)

        // 4 connections × 5 keep-alive requests = 20 × 200.
        let url = "https://api.example.test:\(s.gatewayPort)/ok"
        for _ in 0..<4 {
            let r = try run(["curl", "-sS", "--cacert", Repo.cert("ca.pem"), "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1",
                             "-w", "%{http_code}\\n"] + Array(repeating: [url, "-o", "/dev/null"], count: 5).flatMap { $0 })
            #expect(r.out.split(separator: "\n") == Array(repeating: "200", count: 5), "\(r.err)")
        }
        // 2 × 502 from a refused backend.
        for _ in 0..<2 { #expect(try s.curl("/dead", ["-o", "/dev/null", "-w", "%{http_code}"]).out == "502") }
        // 1 × 421: SNI foo.example.test asking for api.example.test.
        let c = try TLSTestClient(port: s.gatewayPort, serverName: "foo.example.test")
        try c.send("GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        #expect(try c.readResponse().status == 421)
        // 1 × 400 (framing lost): on the wildcard host.
        let bad = try TLSTestClient(port: s.gatewayPort, serverName: "bar.example.test")
        try bad.send("GET / HTTP/1.1\r\nHost: bar.example.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        #expect(try bad.readResponse().status == 400)

        let page = try Admin(port: port).get("/metrics")
        #expect(page.code == 200)
        let m = MetricsPage(page.body)
        #expect(m.sum("gateway_requests_total") == 24, "\(page.body)")
        #expect(m.sum("gateway_requests_total", ["host": "api.example.test", "backend": "echo", "code": "200"]) == 20)
        #expect(m.sum("gateway_requests_total", ["host": "api.example.test", "backend": "dead", "code": "502"]) == 2)
        #expect(m.sum("gateway_requests_total", ["host": "*.example.test", "code": "421"]) == 1, "host is the block's name as written")
        #expect(m.sum("gateway_requests_total", ["host": "*.example.test", "code": "400"]) == 1)
        #expect(m.sum("gateway_tls_misdirected_total", ["host": "*.example.test"]) == 1)
        #expect(m.sum("gateway_backend_failures_total", ["backend": "dead", "server": "127.0.0.1:\(deadPort)", "reason": "refused"]) == 2)
        #expect(m.sum("gateway_request_duration_seconds_count") == 24)
        #expect(m.sum("gateway_request_duration_seconds_bucket", ["le": "+Inf"]) == 24)
        // 4 curl connections + 2 for /dead + 2 test clients.
        #expect(m.sum("gateway_tls_handshakes_total") == 8)
        #expect(m.sum("gateway_tls_handshakes_total", ["host": "api.example.test", "version": "TLSv1.3", "resumed": "false"]) >= 1)
        #expect(m.sum("gateway_backend_up", ["backend": "echo"]) == 1)
        #expect(m.sum("gateway_build_info") == 1)
        #expect(m.sum("gateway_config_reloads_total", ["result": "success"]) == 0)

        // A handshake failure is counted with its reason.
        _ = try run(["openssl", "s_client", "-connect", "127.0.0.1:\(s.gatewayPort)", "-servername", "unknown.test"], stdin: Data())
        s.gateway!.signal(SIGHUP)
        #expect(eventually { s.gateway!.stderr.contains("\"trigger\":\"signal\"") })
        let after = MetricsPage(try Admin(port: port).get("/metrics").body)
        #expect(after.sum("gateway_tls_handshake_failures_total", ["reason": "unrecognized name"]) == 1, "\(after.text)")
        #expect(after.sum("gateway_config_reloads_total", ["result": "success"]) == 1)
        #expect(after.sum("gateway_requests_total") == 24, "counts survive a reload")

        try ensurePromtool()
        let check = try run(["promtool", "check", "metrics"], stdin: Data(after.text.utf8))
        #expect(check.status == 0, "\(check.out)\(check.err)")
    }
}

/// promtool comes from Debian's `prometheus` package; scripts/test installs it.
func ensurePromtool() throws {
    if (try? run(["which", "promtool"]).status) == 0 { return }
    throw HarnessError("promtool is not installed: scripts/test installs Debian's prometheus package")
}
