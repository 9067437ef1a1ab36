import Foundation
import Testing
import TestSupport

/// SPEC §7.2 with real clients: a reload that changes a host's policy reaches its open
/// connections (an in-flight request is answered with `Connection: close`, an idle keep-alive
/// connection is closed), while another host's connections on the same listener go on, and a
/// reload with the same bytes drains nothing.
///   api.example.test  client_auth optional, a test CA, its CRL and a client_allow list; every
///                     client presents the certificate `reload-client` of that CA
///   *.example.test    no client authentication (reached as www.example.test)
@Suite(.serialized)
struct ReloadDrainTests {
    final class Setup: @unchecked Sendable {
        let s: Stack
        let pki: TestPKI
        let cert: (String, String)

        init() throws {
            s = try Stack()
            pki = try TestPKI()
            cert = try pki.leaf("reload-client", sans: "DNS:reload-client.test", cn: "reload-client")
            try pki.currentCRL()
            try s.startEcho()
            try s.startGateway(config())
        }

        /// The api host's policy lines as the test starts; a scenario changes one of them.
        static let apiPolicy = """
            min_version TLSv1.2;
            client_allow cn reload-client;
            client_allow cn spare;
        """

        /// The echo's delayed answer must outlast the reload: a generous response_timeout.
        /// The tests send SIGHUP themselves: no reload on the files' own changes.
        func config(api: String = apiPolicy, apiCiphers: String = "") -> String {
            s.config(topExtra: "reload_on_change off;").replacingOccurrences(of: "client_ca \(Repo.certs)/clients-ca.pem;", with: """
            client_ca \(pki.path("ca.pem"));
                crl \(pki.path("ca.crl"));
            \(api)
            \(apiCiphers)
            """).replacingOccurrences(of: "response_timeout 3s;", with: "response_timeout 30s;")
        }

        func api() throws -> TLSTestClient {
            try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test", certificate: cert)
        }

        func other() throws -> TLSTestClient {
            try TLSTestClient(port: s.gatewayPort, serverName: "www.example.test")
        }

        func drainedLines() -> [[String: Any]] {
            jsonLines(s.gateway!.stderr).filter { $0["event"] as? String == "reload_drained" }
        }

        deinit { s.stop(); pki.remove() }
    }

    static func get(_ c: TLSTestClient, _ path: String, host: String) throws -> (status: Int, head: String, body: String) {
        try c.send("GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\r\n")
        return try c.readResponse()
    }

    /// Opens the three connections, applies `change`, sends SIGHUP and checks what each sees.
    func drains(_ change: (Setup) throws -> Void) throws {
        let t = try Setup()
        let g = t.s.gateway!
        let idle = try t.api(), other = try t.other(), slow = try t.api()
        #expect(try Self.get(idle, "/ok", host: "api.example.test").status == 200)
        #expect(try Self.get(other, "/ok", host: "www.example.test").status == 200)
        // In flight during the reload: the echo answers after 4 s.
        try slow.send("GET /delay/4000 HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        usleep(300_000)
        try change(t)
        try ReloadTests.reload(g, to: 1)

        let answer = try slow.readResponse()
        #expect(answer.status == 200)
        #expect(answer.head.lowercased().contains("connection: close"), "the in-flight response says it closes: \(answer.head)")
        #expect(slow.closedWithin(5), "then the connection ends")
        #expect(idle.closedWithin(5), "an idle keep-alive connection of the changed host is closed")
        let kept = try Self.get(other, "/ok", host: "www.example.test")
        #expect(kept.status == 200 && !kept.head.lowercased().contains("connection: close"), "the other host's connection goes on")

        let lines = t.drainedLines()
        #expect(lines.count == 1, "one line, for the changed host only: \(lines)")
        #expect(lines.first?["host"] as? String == "api.example.test")
        #expect(lines.first?["connections"] as? Int == 2, "\(lines)")
    }

    @Test func raisedFloorDrainsTheHost() throws {
        try drains { t in
            try t.config(api: Setup.apiPolicy.replacingOccurrences(of: "min_version TLSv1.2;", with: "min_version TLSv1.3;"))
                .write(toFile: t.s.configPath, atomically: true, encoding: .utf8)
        }
    }

    @Test func removedClientAllowEntryDrainsTheHost() throws {
        try drains { t in
            try t.config(api: Setup.apiPolicy.replacingOccurrences(of: "client_allow cn reload-client;", with: ""))
                .write(toFile: t.s.configPath, atomically: true, encoding: .utf8)
        }
    }

    /// The configuration's bytes do not change: only the CRL file's content (same path).
    @Test func crlRewrittenInPlaceDrainsTheHost() throws {
        try drains { t in
            let before = try t.s.configPath.contentsAsString()
            _ = try t.pki.crl(revoking: "reload-client")
            #expect(try t.s.configPath.contentsAsString() == before)
        }
    }

    @Test func changedCiphersDrainTheHost() throws {
        try drains { t in
            try t.config(apiCiphers: "ciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384;")
                .write(toFile: t.s.configPath, atomically: true, encoding: .utf8)
        }
    }

    @Test func reloadWithTheSameBytesDrainsNothing() throws {
        let t = try Setup()
        let idle = try t.api(), other = try t.other()
        #expect(try Self.get(idle, "/ok", host: "api.example.test").status == 200)
        #expect(try Self.get(other, "/ok", host: "www.example.test").status == 200)
        try ReloadTests.reload(t.s.gateway!, to: 1)
        for (c, host) in [(idle, "api.example.test"), (other, "www.example.test")] {
            let r = try Self.get(c, "/ok", host: host)
            #expect(r.status == 200 && !r.head.lowercased().contains("connection: close"), "\(host): \(r.head)")
        }
        #expect(t.drainedLines().isEmpty, "\(t.drainedLines())")
    }
}

extension String {
    func contentsAsString() throws -> String { try String(contentsOfFile: self, encoding: .utf8) }
}
