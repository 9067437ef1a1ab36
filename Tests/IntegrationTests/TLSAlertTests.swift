import COpenSSL
import Foundation
import Testing
import TestSupport

/// SPEC §7.3 on the real binary: the alert a refused client reads (and reads, not a reset,
/// however much it is still sending), and the log line and metric of a connection a TLS error
/// ends after its handshake.
///   api.example.test  TLS 1.3 only, client certificate required
///   other.test        TLS 1.2 only, client certificate required
///   *.example.test    no client certificate
@Suite(.serialized)
struct TLSAlertTests {
    static func start(admin: UInt16? = nil) throws -> Stack {
        let s = try Stack()
        let c = Repo.certs
        try s.startGateway("""
            workers 1;
            error_log stderr info;
            access_log stdout json;
            \(admin.map { "admin 127.0.0.1:\($0);" } ?? "")
            listen 127.0.0.1:\(s.gatewayPort) { default_host api.example.test; unknown_sni reject; }
            host api.example.test {
                certificate \(c)/api.example.test.pem \(c)/api.example.test.key;
                min_version TLSv1.3;
                client_auth required;
                client_ca \(c)/clients-ca.pem;
                route / backend echo;
            }
            host other.test {
                certificate \(c)/other.test.pem \(c)/other.test.key;
                max_version TLSv1.2;
                client_auth required;
                client_ca \(c)/clients-ca.pem;
                route / backend echo;
            }
            host *.example.test {
                certificate \(c)/wildcard.example.test.pem \(c)/wildcard.example.test.key;
                route / backend echo;
            }
            backend echo {
                server https://127.0.0.1:\(s.echoPort);
                tls { ca \(c)/backend-ca.pem; server_name echo.internal.test; }
            }
            """)
        return s
    }

    /// Records the server never gets to read: 3 × 12 KiB, more than OpenSSL reads ahead, less
    /// than the 64 KiB the gateway drains.
    static let pipelined: [UInt8] = (0..<3).flatMap { _ in [23, 3, 3, 0x30, 0x00] + [UInt8](repeating: 0, count: 0x3000) }

    /// A client without a certificate sends its second flight and more records in one write
    /// (or still writes them, in pieces, when the alert comes): it must read the alert, then
    /// the server's EOF, every time. Before the lingering close, every try here ended in a reset.
    @Test(arguments: [("api.example.test", TLS1_3_VERSION, SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED),
                      ("other.test", TLS1_2_VERSION, SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE)])
    func aClientStillSendingReadsTheAlertNotAReset(_ name: String, _ version: Int32, _ alert: Int32) throws {
        let s = try Self.start()
        var problems: [String] = []
        for i in 0..<220 {
            let inPieces = i >= 200   // the last 20: the client is still writing when the alert comes
            do {
                let c = try MemoryBIOClient(port: s.gatewayPort, serverName: name, maxVersion: version)
                let flight = try c.secondFlight()
                if inPieces {
                    try c.send(flight)
                    for k in stride(from: 0, to: Self.pipelined.count, by: 4096) {
                        try c.send(Array(Self.pipelined[k..<min(k + 4096, Self.pipelined.count)]))
                        usleep(1000)
                    }
                } else {
                    try c.send(flight + Self.pipelined)
                }
                let answer = try c.receiveUntilEOF()
                let reasons = c.reasons(reading: answer)
                if !reasons.contains(alert) { problems.append("try \(i): no alert \(alert) in \(reasons) (\(answer.count) bytes)") }
                if version == TLS1_2_VERSION && ClientHelloBytes.plaintextAlerts(in: answer) != [AlertDescription.handshakeFailure] {
                    problems.append("try \(i): alerts \(ClientHelloBytes.plaintextAlerts(in: answer))")
                }
            } catch {
                problems.append("try \(i): \(error)")
            }
        }
        #expect(problems.isEmpty, "\(problems.count) of 220 tries: \(problems.prefix(5))")
        #expect(eventually { s.gateway!.stdout.components(separatedBy: #""reason":"certificate required""#).count - 1 == 220 })
        // A client with a certificate is served as before.
        let ok = try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test", certificate: (Repo.cert("client1.pem"), Repo.cert("client1.key")))
        try ok.send("GET /x HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n")
        #expect(ok.readAll().hasPrefix("HTTP/1.1 "))
    }

    /// The ClientHello as OpenSSL writes it, with its server_name extension rewritten: the alert
    /// on the wire and the reason in the log.
    @Test(arguments: [
        (ClientHelloBytes.serverName([(0, Array("foo.example.tes\u{0}t".utf8))]), AlertDescription.illegalParameter, "NUL byte in server name"),
        (ClientHelloBytes.serverName([(0, Array("foo.example.tes\u{7}t".utf8))]), AlertDescription.illegalParameter, "invalid byte in server name"),
        (ClientHelloBytes.serverName([(0, Array("foo.example.test".utf8)), (0, Array("bar.example.test".utf8))]),
         AlertDescription.illegalParameter, "two host_name entries"),
        ([0, 5, 0, 0, 1, 0x61, 0x78], AlertDescription.decodeError, "truncated server_name entry"),
    ] as [([UInt8], UInt8, String)])
    func refusedServerNameAlertOnTheWire(_ body: [UInt8], _ alert: UInt8, _ why: String) throws {
        let s = try Self.start()
        let c = try MemoryBIOClient(port: s.gatewayPort, serverName: "foo.example.test")
        _ = SSL_do_handshake(c.ssl)
        let hello = try #require(ClientHelloBytes.replacingServerName(in: c.pendingOutput(), with: body))
        try c.send(hello)
        let answer = try c.receiveUntilEOF()
        #expect(ClientHelloBytes.plaintextAlerts(in: answer) == [alert], "\(answer)")
        #expect(eventually { s.gateway!.stdout.contains(#""reason":"malformed server_name: \#(why)""#) }, "\(s.gateway!.stdout)")
    }

    /// After a completed handshake (no client certificate: *.example.test), the client sends one
    /// request record changed on the wire: a flipped ciphertext byte (bad_record_mac), a wrong
    /// record version. Each connection is logged as tls_connection_failed and counted by reason;
    /// a clean close and a reset after the handshake are neither.
    @Test func aTLSErrorAfterTheHandshakeIsLoggedAndCounted() throws {
        let admin = freePort()
        let s = try Self.start(admin: admin)
        func corrupted(_ version: Int32, _ change: (inout [UInt8]) -> Void) throws {
            let c = try MemoryBIOClient(port: s.gatewayPort, serverName: "foo.example.test", maxVersion: version)
            try c.handshake()
            var record = c.protect("GET / HTTP/1.1\r\nHost: foo.example.test\r\n\r\n")
            change(&record)
            try c.send(record)
            _ = try? c.receiveUntilEOF()   // the server's alert, then its close
        }
        try corrupted(TLS1_2_VERSION) { $0[$0.count - 1] ^= 1 }   // the GCM tag
        try corrupted(TLS1_2_VERSION) { $0[2] = 0x01 }
        try corrupted(TLS1_2_VERSION) { $0[2] = 0x01 }
        // A clean close (close_notify) and an abortive one (RST) after the handshake: no line.
        let clean = try MemoryBIOClient(port: s.gatewayPort, serverName: "foo.example.test")
        try clean.handshake()
        _ = SSL_shutdown(clean.ssl)
        try clean.send(clean.pendingOutput())
        _ = try? clean.receiveUntilEOF()
        do {
            let reset = try MemoryBIOClient(port: s.gatewayPort, serverName: "foo.example.test")
            try reset.handshake()
            var hard = linger(l_onoff: 1, l_linger: 0)
            setsockopt(reset.fd, SOL_SOCKET, SO_LINGER, &hard, socklen_t(MemoryLayout<linger>.size))
        }   // closed here: with SO_LINGER 0, a RST
        // A completed TLS 1.3 handshake last: once its line is there, every earlier connection's is too.
        try corrupted(TLS1_3_VERSION) { $0[$0.count - 1] ^= 1 }

        let mac = "decryption failed or bad record mac"
        #expect(eventually { s.gateway!.stdout.contains(#"\#(mac)"}"#) && s.gateway!.stdout.contains(#""reason":"bad record version"}"#) })
        let failed = jsonLines(s.gateway!.stdout).filter { $0["event"] as? String == "tls_connection_failed" }
        #expect(failed.count == 4, "\(s.gateway!.stdout)")
        #expect(failed.allSatisfy { $0["client"] as? String == "127.0.0.1" && $0["sni"] as? String == "foo.example.test" })
        #expect(failed.filter { $0["reason"] as? String == "bad record version" }.count == 2)
        #expect(failed.filter { ($0["reason"] as? String)?.hasSuffix(mac) == true }.count == 2, "\(failed)")
        #expect(!s.gateway!.stdout.contains("tls_handshake_failed"), "every handshake completed")

        let page = try Admin(port: admin).get("/metrics")
        let m = MetricsPage(page.body)
        #expect(m.sum("gateway_tls_connection_failures_total") == 4, "\(page.body)")
        #expect(m.sum("gateway_tls_connection_failures_total", ["host": "*.example.test", "reason": "bad record version"]) == 2)
        #expect(m.sum("gateway_tls_connection_failures_total", ["host": "*.example.test", "reason": mac]) == 1, "TLS 1.3's")
        #expect(page.body.contains("# TYPE gateway_tls_connection_failures_total counter"))
        try ensurePromtool()
        let check = try run(["promtool", "check", "metrics"], stdin: Data(page.body.utf8))
        #expect(check.status == 0, "\(check.out)\(check.err)")
    }
}
