import Foundation
import Testing

/// Each backend's own TLS settings (SPEC §6), against gateway-echo origins started with
/// matching or mismatching settings.
@Suite(.serialized)
struct BackendTLSTests {
    /// The echo reply's `tls` object.
    static func echoTLS(_ out: String) throws -> [String: Any] {
        guard let o = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any],
              let t = o["tls"] as? [String: Any] else { throw HarnessError("not an echo reply: \(out.prefix(300))") }
        return t
    }

    static func status(_ s: Stack) throws -> String {
        try s.curl("/", ["-o", "/dev/null", "-w", "%{http_code}"]).out
    }

    static let clientCert = "certificate \(Repo.cert("gateway-client.pem")) \(Repo.cert("gateway-client.key"));"
    static let trust = "ca \(Repo.cert("backend-ca.pem")); server_name echo.internal.test;"

    @Test func tls11OnlyBackendIsRefusedUnderTheDefaultFloorAndAcceptedWhenAllowed() throws {
        let s = try Stack()
        try s.startEcho(extra: ["--min-version", "1.1", "--max-version", "1.1"])
        try s.startGateway()
        #expect(try Self.status(s) == "502")
        #expect(s.gateway!.stderr.contains("TLS handshake failed"), "\(s.gateway!.stderr)")
        s.gateway!.stop()
        try s.startGateway(s.config(backendTLS: "\(Self.trust) \(Self.clientCert) min_version TLSv1.1;"))
        let r = try s.curl("/")
        #expect(try Self.echoTLS(r.out)["version"] as? String == "TLSv1.1", "\(r.out) \(s.gateway!.stderr)")
    }

    @Test func backendCiphersAndSuitesAreTheBackendsOwn() throws {
        let s = try Stack()
        try s.startEcho()
        // The origin has an ECDSA certificate: an RSA-only TLS 1.2 cipher list cannot agree.
        try s.startGateway(s.config(backendTLS: "\(Self.trust) \(Self.clientCert) max_version TLSv1.2; ciphers ECDHE-RSA-AES128-GCM-SHA256;"))
        #expect(try Self.status(s) == "502")
        s.gateway!.stop()
        try s.startGateway(s.config(backendTLS: "\(Self.trust) \(Self.clientCert) max_version TLSv1.2; ciphers ECDHE-ECDSA-AES256-GCM-SHA384;"))
        #expect(try Self.echoTLS(try s.curl("/").out)["cipher"] as? String == "ECDHE-ECDSA-AES256-GCM-SHA384")
        s.gateway!.stop()
        try s.startGateway(s.config(backendTLS: "\(Self.trust) \(Self.clientCert) ciphersuites TLS_CHACHA20_POLY1305_SHA256;"))
        #expect(try Self.echoTLS(try s.curl("/").out)["cipher"] as? String == "TLS_CHACHA20_POLY1305_SHA256")
    }

    @Test func backendRequiringAClientCertificateGetsTheConfiguredOne() throws {
        let s = try Stack()
        try s.startEcho()   // requires a certificate from backend-ca
        try s.startGateway(s.config(backendTLS: Self.trust))
        #expect(try Self.status(s) == "502", "no client certificate configured")
        s.gateway!.stop()
        try s.startGateway()
        let t = try Self.echoTLS(try s.curl("/").out)
        #expect(t["client_cert_subject"] as? String == "CN=gateway-client")
    }

    @Test func encryptedClientKeyWithKeyPasswordFile() throws {
        let s = try Stack()
        let key = "\(s.dir)/client.key", pass = "\(s.dir)/pass"
        try "s3cret\n".write(toFile: pass, atomically: true, encoding: .utf8)
        chmod(pass, 0o600)
        let enc = try run(["openssl", "pkey", "-in", Repo.cert("gateway-client.key"), "-aes256", "-passout", "pass:s3cret", "-out", key])
        #expect(enc.status == 0, "\(enc.err)")
        chmod(key, 0o600)
        try s.startEcho()
        try s.startGateway(s.config(backendTLS: "\(Self.trust) certificate \(Repo.cert("gateway-client.pem")) \(key); key_password_file \(pass);"))
        let t = try Self.echoTLS(try s.curl("/").out)
        #expect(t["client_cert_subject"] as? String == "CN=gateway-client")
        #expect(!s.gateway!.stderr.contains("s3cret") && !s.gateway!.stdout.contains("s3cret"), "the password is never logged")
    }

    @Test func sessionsToTheBackendAreResumedUnlessTurnedOff() throws {
        let s = try Stack()
        try s.startEcho()
        // keepalive 0: every request needs a new backend connection, so resumption shows.
        try s.startGateway(s.config(backendExtra: "keepalive 0;"))
        _ = try s.curl("/")
        let second = try Self.echoTLS(try s.curl("/").out)
        #expect(second["resumed"] as? Bool == true, "\(second)")
        s.gateway!.stop()
        try s.startGateway(s.config(backendExtra: "keepalive 0;", backendTLS: "\(Self.trust) \(Self.clientCert) session_reuse off;"))
        _ = try s.curl("/")
        #expect(try Self.echoTLS(try s.curl("/").out)["resumed"] as? Bool == false)
    }

    @Test func idlePooledConnectionsCloseAfterKeepaliveTimeout() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(backendExtra: "keepalive_timeout 300ms;"))
        #expect(try Self.echoTLS(try s.curl("/").out)["resumed"] as? Bool == false, "first connection: full handshake")
        #expect(try Self.echoTLS(try s.curl("/").out)["resumed"] as? Bool == false, "right away: the same pooled connection")
        usleep(700_000)
        #expect(try Self.echoTLS(try s.curl("/").out)["resumed"] as? Bool == true, "after keepalive_timeout: a new, resumed connection")
    }

    @Test func ipLiteralBackendSendsNoSNIAndVerifiesTheIP() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(backendTLS: "ca \(Repo.cert("backend-ca.pem")); \(Self.clientCert)"))
        let t = try Self.echoTLS(try s.curl("/").out)
        #expect(t["sni"] is NSNull, "no SNI for an IP literal: \(t)")
    }

    @Test func verifyOffIsAcceptedAndWarnedAbout() throws {
        let s = try Stack()
        try s.startEcho(cert: "untrusted-echo")
        try s.startGateway(s.config(backendTLS: "ca \(Repo.cert("backend-ca.pem")); \(Self.clientCert) verify off;"))
        #expect(try Self.status(s) == "200")
        #expect(s.gateway!.stderr.contains("GW.Backend.Verify"), "\(s.gateway!.stderr)")
    }

    /// A client that reads a 200 MB response slowly: the gateway's memory stays bounded
    /// (backpressure), far below the body size.
    @Test func slowReaderKeepsGatewayMemoryBounded() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let pid = s.gateway!.process.processIdentifier
        let c = try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test")
        try c.send("GET /bytes/200000000 HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        var read = 0
        var peak = 0
        while read < 30_000_000 {
            read += try c.read(count: 1 << 20).count
            usleep(20_000)   // about 50 MB/s at most: slower than gateway and origin could go
            peak = max(peak, rssBytes(pid))
        }
        #expect(peak > 0)
        // A plain build peaks near 23 MB; broken backpressure would buffer hundreds of MB. Under
        // ASan its own overhead comes on top (Sanitizer.rssPeakSlack).
        let bound = (64 << 20) + Sanitizer.rssPeakSlack
        #expect(peak < bound, "gateway RSS \(peak) bytes while streaming 200 MB to a slow reader (bound \(bound))")
    }
}

func rssBytes(_ pid: Int32) -> Int {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) else { return 0 }
    return kb * 1024
}
