import Foundation
import Testing

/// HTTP/2 toward clients (SPEC §12) with real clients over real sockets: curl --http2, nghttp,
/// h2load, and the frame-level h2client.py for what those will not send.
@Suite(.serialized)
struct HTTP2Tests {
    @Test func curlGetsH2AndTheLogAndMetricsSaySo() throws {
        let s = try Stack()
        let admin = freePort()
        try s.startEcho()
        try s.startGateway(s.config(topExtra: "admin 127.0.0.1:\(admin);"))
        let h2 = try s.curl("/ok", ["--http2", "-v"])
        #expect(h2.out == "ok\n")
        #expect(h2.err.contains("ALPN: server accepted h2"), "\(h2.err)")
        #expect(h2.err.contains("< HTTP/2 200"))
        #expect(try s.curl("/ok", ["--http1.1"]).out == "ok\n")
        #expect(eventually { s.accessLog.count == 2 })
        let line = try #require(s.http2Lines.first, "\(s.gateway!.stdout)")
        #expect(line["stream"] as? Int == 1)
        #expect(line["status"] as? Int == 200)
        #expect(s.accessLog.contains { $0["protocol"] as? String == "HTTP/1.1" && $0["stream"] == nil })
        let m = MetricsPage(try Admin(port: admin).get("/metrics").body)
        #expect(m.sum("gateway_connections_total", ["protocol": "h2"]) == 1, "\(m.text)")
        #expect(m.sum("gateway_connections_total", ["protocol": "http/1.1"]) == 1)
        #expect(m.sum("gateway_requests_total") == 2)
    }

    /// ALPN is chosen per host after the ClientHello: `http2 off` on one host, and a TLS 1.2 CBC
    /// cipher (RFC 9113 Appendix A), give http/1.1 even to a client that offers h2 first.
    @Test func alpnPerHostAndCipher() throws {
        let s = try Stack()
        let admin = freePort()
        try s.startEcho()
        let cbc = "ciphers \"ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256\";"
        try s.startGateway(s.config(limits: "idle_timeout 10s;", topExtra: "admin 127.0.0.1:\(admin);",
                                    extraHosts: Stack.wildcardHost("legacy.example.test", "http2 off;") + Stack.wildcardHost("cbc.example.test", cbc)))
        func alpn(_ name: String, _ extra: [String] = []) throws -> String {
            let r = try run(["openssl", "s_client", "-connect", "127.0.0.1:\(s.gatewayPort)", "-servername", name,
                             "-alpn", "h2,http/1.1"] + extra, stdin: Data())
            return r.out.split(separator: "\n").first { $0.hasPrefix("ALPN protocol:") }.map(String.init) ?? "none: \(r.out.suffix(400))"
        }
        #expect(try alpn("legacy.example.test") == "ALPN protocol: http/1.1")
        #expect(try alpn("bar.example.test") == "ALPN protocol: h2", "the other hosts of the listener keep h2")
        #expect(try alpn("cbc.example.test", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"]) == "ALPN protocol: http/1.1")
        #expect(try alpn("cbc.example.test", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]) == "ALPN protocol: h2")
        let legacy = try s.curl("/ok", host: "legacy.example.test", ["--http2", "-v"])
        #expect(legacy.out == "ok\n")
        #expect(legacy.err.contains("ALPN: server accepted http/1.1"), "\(legacy.err)")
        let host = try Admin(port: admin).get("/hosts/legacy.example.test")
        let tls = (try JSONSerialization.jsonObject(with: Data(host.body.utf8)) as? [String: Any])?["tls"] as? [String: Any]
        #expect(tls?["http2"] as? Bool == false, "\(host.body)")
        #expect(policyTableCell(s.gateway!.stderr, host: "legacy.example.test", column: "http2") == "off")
    }

    @Test func multiplexedStreamsWithH2loadAndNghttp() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let load = try run(["h2load", "-n", "400", "-c", "2", "-m", "50", "--connect-to=127.0.0.1:\(s.gatewayPort)",
                            "https://api.example.test:\(s.gatewayPort)/ok"], timeout: 120)
        #expect(load.out.contains("400 succeeded, 0 failed, 0 errored"), "\(load.out)\(load.err)")
        #expect(load.out.contains("status codes: 400 2xx"), "\(load.out)")
        #expect(load.out.contains("Application protocol: h2"))
        // nghttp: several URIs on one connection (no SNI for an IP literal: the default host).
        let uris = ["/ok", "/bytes/70000", "/16k", "/status/204", "/echo?x=1"].map { "https://127.0.0.1:\(s.gatewayPort)\($0)" }
        let n = try run(["nghttp", "-nv", "-H", ":authority: api.example.test"] + uris)
        #expect(n.status == 0, "\(n.err)")
        #expect(n.out.components(separatedBy: ":status: 200").count - 1 == 4, "\(n.out.suffix(2000))")
        #expect(n.out.components(separatedBy: ":status: 204").count - 1 == 1)
        // Six connections in all (h2load's two, nghttp's one, each with its own streams).
        let multi = try H2Client.scenario(s, "multiplex", ["--count", "60"])
        #expect(multi["all_ok"] as? Bool == true, "\(H2Client.conn(multi))")
    }

    /// SPEC §12: the 421 rule per stream; the connection and its other streams go on.
    @Test func misdirectedStreamGets421Alone() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let r = try H2Client.scenario(s, "misdirected", sni: "foo.example.test", ["--names", "api.example.test,bar.example.test"])
        let c = H2Client.conn(r)
        #expect(c.status(1) == 421, "\(c)")
        #expect(c.status(3) == 200)
        #expect(try c.echo(3).headers["x-forwarded-host"] == "bar.example.test")
        #expect(c.status(5) == 200 && c.body(5) == "ok\n")
        #expect(c.goaways.isEmpty && !c.closed)
        #expect(eventually { s.http2Lines.count == 3 })
        #expect(s.http2Lines.contains { $0["stream"] as? Int == 1 && $0["status"] as? Int == 421 })
    }

    @Test func uploadsArriveIntactAndOversizeBodyIs413() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(limits: "idle_timeout 10s; max_body_size 4m;"))
        let up = try H2Client.scenario(s, "upload")
        let c = H2Client.conn(up)
        for id in [1, 3] {
            let e = try c.echo(id)
            #expect(e.method == "POST")
            #expect(e.body_length == up["sent_length"] as? Int)
            #expect(e.body_sha256 == up["sent_sha256"] as? String, "stream \(id)")
        }
        #expect(try c.echo(1).headers["content-length"] == "3145728")
        // curl -T - : a body of unknown length from stdin (no content-length on the stream).
        let data = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let r = try run(["curl", "-sS", "--http2", "--cacert", Repo.cert("ca.pem"), "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1",
                         "-T", "-", "https://api.example.test:\(s.gatewayPort)/upload"], stdin: data)
        let e = try decodeEcho(r.out)
        #expect(e.body_length == data.count)
        #expect(e.body_sha256 == (try sha256Hex(data)))

        s.gateway?.stop()
        try s.startGateway(s.config(limits: "idle_timeout 10s; max_body_size 1m;"))
        let big = H2Client.conn(try H2Client.scenario(s, "body-too-large", ["--size", String(1 << 20)]))
        for id in [1, 3] {
            #expect(big.status(id) == 413, "\(big)")
            #expect(big.reset(id) != nil, "stream \(id): 413, then the request stream is reset")
        }
        #expect(big.status(5) == 200, "the connection stays usable")
        #expect(big.goaways.isEmpty)
    }

    /// SPEC §12: 431/414/404 on the stream; none of them closes the connection.
    @Test func limitsAnswerOnTheStream() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(limits: "idle_timeout 10s; max_header_size 4k; max_headers 10; max_uri_size 200;", routes: "route /ok backend echo;"))
        let c = H2Client.conn(try H2Client.scenario(s, "limits", ["--path", "/ok", "--size", "4096", "--count", "10", "--uri", "200"]))
        #expect(c.status(1) == 431, "header list over max_header_size: \(c)")
        #expect(c.status(5) == 431, "more than max_headers fields")
        #expect(c.status(9) == 414, ":path over max_uri_size")
        #expect(c.status(13) == 414, "414 wins over 431 (SPEC §10), as on HTTP/1.1")
        #expect(c.status(17) == 404, "no route")
        for id in [3, 7, 11, 15, 19] { #expect(c.status(id) == 200, "stream \(id) after an error") }
        #expect(c.goaways.isEmpty && !c.closed)
    }

    /// RFC 9113 §8 malformed requests: RST_STREAM PROTOCOL_ERROR, never a backend, next stream served.
    @Test func malformedRequestsAreResetAndNeverProxied() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let r = try H2Client.scenario(s, "malformed", ["--path", "/echo"])
        let c = H2Client.conn(r)
        let cases = try #require(r["cases"] as? [String: Int])
        #expect(cases.count == 9)
        for (name, id) in cases {
            #expect(c.reset(id) == H2Code.protocolError, "\(name): \(c.stream(id))")
            #expect(c.status(id) == nil, "\(name)")
            #expect(c.status(id + 2) == 200, "\(name): the next stream")
        }
        #expect(c.goaways.isEmpty && !c.closed)
        #expect(eventually { s.http2Lines.count == cases.count })
        let proxied = Set(s.http2Lines.compactMap { $0["stream"] as? Int })
        #expect(proxied == Set(cases.values.map { $0 + 2 }), "only the good streams reached the backend")
    }

    /// RFC 8336 ORIGIN after SETTINGS: the connection's name first, then exactly the exact names
    /// the 421 rule lets it serve (same policy, covered by its certificate).
    @Test func originFrameListsWhatThe421RuleAllows() throws {
        let s = try Stack()
        try s.startEcho()
        let hosts = Stack.wildcardHost("a.example.test") + Stack.wildcardHost("b.example.test")
            + Stack.wildcardHost("c.example.test", "client_auth optional; client_ca \(Repo.certs)/clients-ca.pem;")
        try s.startGateway(s.config(limits: "idle_timeout 10s;", extraHosts: hosts))
        let c = H2Client.conn(try H2Client.scenario(s, "origin", sni: "b.example.test"))
        #expect(c.origin == ["https://b.example.test:\(s.gatewayPort)", "https://a.example.test:\(s.gatewayPort)"], "\(c)")
        let at = try #require(c.frames.firstIndex(of: "ORIGIN"))
        #expect(c.frames.first == "SETTINGS")
        #expect(c.frames[..<at].allSatisfy { $0 == "SETTINGS" }, "right after SETTINGS (ours, and the ACK of the client's): \(c.frames)")
        #expect(c.status(1) == 200)
        // api.example.test: its own certificate covers no other name.
        #expect(H2Client.conn(try H2Client.scenario(s, "origin")).origin == ["https://api.example.test:\(s.gatewayPort)"])

        s.gateway?.stop()
        try s.startGateway(s.config(limits: "idle_timeout 10s;", extraHosts: hosts)
            .replacingOccurrences(of: "unknown_sni reject;", with: "unknown_sni reject; public_port 443;"))
        let lb = H2Client.conn(try H2Client.scenario(s, "origin", sni: "a.example.test"))
        #expect(lb.origin == ["https://a.example.test", "https://b.example.test"], "\(lb)")
    }

    // MARK: - Lifecycle and client behaviour

    /// SIGTERM: GOAWAY with 2^31-1, then the final one with the last stream; the slow stream in
    /// flight completes 200, and the gateway exits 0.
    @Test func sigtermSendsTwoGoawaysAndLetsTheStreamFinish() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(limits: "idle_timeout 10s;", topExtra: "shutdown_timeout 20s;"))
        let g = try #require(s.gateway)
        let c = H2Client.conn(try H2Client.scenario(s, "shutdown", ["--path", "/delay/1500", "--pid", String(g.process.processIdentifier)]))
        #expect(c.status(1) == 200)
        #expect(c.status(3) == 200, "the stream in flight completes: \(c)")
        #expect(c.goaways == [.init(code: H2Code.noError, last: H2Code.maxStream), .init(code: H2Code.noError, last: 3)])
        #expect(c.closed)
        #expect(g.waitForExit(timeout: 20) == 0)
    }

    /// SPEC §7.2: a reload that changes the connection's host policy (its floor) sends the
    /// two-step GOAWAY; the slow stream in flight completes 200, then the connection closes.
    @Test func reloadThatChangesTheHostSendsGoawayAndLetsTheStreamFinish() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(limits: "idle_timeout 10s;", topExtra: "reload_on_change off;"))
        let g = try #require(s.gateway)
        try s.config(limits: "idle_timeout 10s;", hostExtra: "min_version TLSv1.3;", topExtra: "reload_on_change off;")
            .write(toFile: s.configPath, atomically: true, encoding: .utf8)
        let c = H2Client.conn(try H2Client.scenario(s, "shutdown", ["--path", "/delay/1500", "--pid", String(g.process.processIdentifier),
                                                                    "--signal", "HUP"]))
        #expect(c.status(3) == 200, "the stream in flight completes: \(c)")
        #expect(c.goaways == [.init(code: H2Code.noError, last: H2Code.maxStream), .init(code: H2Code.noError, last: 3)])
        #expect(c.closed)
        #expect(eventually(5) { g.stderr.contains(#""event":"reload_drained""#) && g.stderr.contains(#""host":"api.example.test""#) }, "\(g.stderr)")
        #expect(try s.curl("/ok", ["--http2"]).out == "ok\n", "new connections are served under the new policy")
    }

    /// `protocol h2` parses (SPEC §12) but the proxy does not speak HTTP/2 to backends yet: the
    /// configuration is refused where the directive stands, never served over HTTP/1.1 quietly.
    @Test func anH2BackendServesBothClientProtocols() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(backendExtra: "protocol h2;"))
        for proto in ["--http2", "--http1.1"] {
            let r = try s.curl("/echo?p=1", [proto, "--data-binary", "hello"])
            let reply = try decodeEcho(r.out)
            #expect(r.out.contains("\"protocol\": \"HTTP/2\""), "the backend is spoken to over HTTP/2: \(r.out)")
            #expect(reply.method == "POST" && reply.path == "/echo?p=1" && reply.body_length == 5)
            #expect(reply.headers[":authority"] == "api.example.test:\(s.gatewayPort)" && reply.headers["x-forwarded-proto"] == "https")
        }
    }

    @Test func idleConnectionGetsGoawayAndIsClosed() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(limits: "idle_timeout 1s;"))
        let c = H2Client.conn(try H2Client.scenario(s, "idle"))
        #expect(c.status(1) == 200)
        #expect(c.goaways == [.init(code: H2Code.noError, last: 1)], "\(c)")
        #expect(c.closed)
    }

    /// A connection the idle sweeps emptied (session memory, queues, stream timer) serves its
    /// next streams, and their deadlines still fire.
    @Test func aConnectionIdleSweptStillTimesItsStreamsOut() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(limits: "idle_timeout 10s;"))
        let c = H2Client.conn(try H2Client.scenario(s, "idle-then-timeout"))
        #expect(c.status(1) == 200)
        #expect(c.status(3) == 504, "response_timeout (3 s) answers a backend that takes 6 s: \(c)")
        #expect(c.status(5) == 200)
        #expect(c.goaways.isEmpty, "\(c)")
    }

    @Test func maxRequestsPerConnectionEndsWithGoaway() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(limits: "idle_timeout 10s; max_requests_per_connection 3;"))
        let c = H2Client.conn(try H2Client.scenario(s, "max-requests", ["--count", "5"]))
        #expect(c.streamIDs == [1, 3, 5], "\(c)")
        for id in [1, 3, 5] { #expect(c.status(id) == 200) }
        #expect(c.goaways.first == .init(code: H2Code.noError, last: H2Code.maxStream))
        #expect(c.goaways.last == .init(code: H2Code.noError, last: 5))
        #expect(c.closed)
    }

    /// A client that resets a large download mid-way: the stream goes, the next ones are whole.
    @Test func clientResetMidDownloadLeavesTheConnectionUsable() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let r = try H2Client.scenario(s, "reset-download")
        let c = H2Client.conn(r)
        #expect(c.status(1) == 200)
        #expect(r["download_ok"] as? Bool == true, "\(c)")
        #expect(c.status(5) == 200 && c.body(5) == "ok\n")
        #expect(c.goaways.isEmpty)
        #expect(try s.curl("/ok", ["--http2"]).out == "ok\n")
    }
}
