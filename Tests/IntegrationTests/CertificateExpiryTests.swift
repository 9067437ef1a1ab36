import Foundation
import Testing
import TestSupport

/// Certificate expiry (SPEC §7, §10): warnings and errors in the log, the expiry metric and
/// `gateway certs`, with certificates made in the test's own PKI (10 days, 20 days, expired).
@Suite(.serialized)
struct CertificateExpiryTests {
    /// Hosts ten.test (10 days) and gone.test (expired an hour ago); a backend client certificate of 20 days.
    func setUp(_ pki: TestPKI, adminPort: UInt16, gatewayPort: UInt16, expired: Bool = true) throws -> String {
        let ten = try pki.leaf("ten", sans: "DNS:ten.test", days: 10)
        let twenty = try pki.leaf("twenty", sans: "DNS:client.test", days: 20)
        let gone = try pki.leaf("gone", sans: "DNS:gone.test", days: 0)
        return try pki.write("""
        workers 1;
        error_log stderr info;
        access_log off;
        admin 127.0.0.1:\(adminPort);
        listen 127.0.0.1:\(gatewayPort) { default_host ten.test; }
        host ten.test { certificate \(ten.cert) \(ten.key); route / backend b; }
        \(expired ? "host gone.test { certificate \(gone.cert) \(gone.key); route / backend b; }" : "")
        backend b {
            server https://127.0.0.1:9;
            tls { ca \(pki.path("ca.pem")); certificate \(twenty.cert) \(twenty.key); }
        }
        """)
    }

    @Test func warningsMetricAndCertsCommand() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let adminPort = freePort(), port = freePort()
        let conf = try setUp(pki, adminPort: adminPort, gatewayPort: port)
        let gw = try ServerProcess(try Repo.binary("gateway"), ["run", "-c", conf], dir: pki.dir)
        defer { gw.stop() }
        try gw.waitForPort(port)
        #expect(eventually { jsonLines(gw.stderr).contains { $0["event"] as? String == "certificate_expired" } }, "\(gw.stderr)")
        let lines = jsonLines(gw.stderr)
        func line(_ subject: String) -> [String: Any]? { lines.first { $0["subject"] as? String == subject } }
        let ten = try #require(line("CN=ten"))
        #expect(ten["event"] as? String == "certificate_expiring" && ten["level"] as? String == "warn")
        #expect(ten["window_days"] as? Int == 14 && ten["days_left"] as? Int == 9)
        #expect(ten["role"] as? String == "server" && ten["host"] as? String == "ten.test")
        let twenty = try #require(line("CN=twenty"))
        #expect(twenty["window_days"] as? Int == 30 && twenty["role"] as? String == "backend_client" && twenty["host"] as? String == "b")
        let gone = try #require(line("CN=gone"))
        #expect(gone["event"] as? String == "certificate_expired" && gone["level"] as? String == "error" && gone["days_left"] as? Int == -1)
        #expect(line("CN=check test CA") == nil, "a CA good for ten years is not worth a line")

        let m = MetricsPage(try Admin(port: adminPort).get("/metrics").body)
        let now = Date().timeIntervalSince1970
        let tenAt = m.sum("gateway_certificate_expiry_timestamp_seconds", ["role": "server", "host": "ten.test", "subject": "CN=ten"])
        #expect(abs(tenAt - (now + 10 * 86_400 - 3_600)) < 300, "\(tenAt)")
        let goneAt = m.sum("gateway_certificate_expiry_timestamp_seconds", ["role": "server", "host": "gone.test", "subject": "CN=gone"])
        #expect(abs(goneAt - (now - 3_600)) < 300)
        #expect(m.sum("gateway_certificate_expiry_timestamp_seconds", ["role": "backend_ca", "host": "b"]) > now + 3_000 * 86_400)

        // Reload: the warnings come again.
        gw.signal(SIGHUP)
        #expect(eventually { jsonLines(gw.stderr).filter { $0["subject"] as? String == "CN=ten" }.count == 2 })

        let certs = try run([try Repo.binary("gateway"), "certs", "-c", conf, "--format", "json"])
        #expect(certs.status == 1, "an expired certificate: exit 1")
        let doc = try #require(try JSONSerialization.jsonObject(with: certs.outData) as? [String: Any])
        let list = try #require(doc["certificates"] as? [[String: Any]])
        #expect(list.allSatisfy { Set($0.keys) == ["role", "host", "subject", "sans", "issuer", "key", "not_after", "days_left"] })
        func entry(_ subject: String) -> [String: Any]? { list.first { $0["subject"] as? String == subject } }
        #expect(entry("CN=ten")?["days_left"] as? Int == 9)
        #expect(entry("CN=twenty")?["days_left"] as? Int == 19)
        #expect(entry("CN=gone")?["days_left"] as? Int == -1)
        #expect(entry("CN=ten")?["sans"] as? [String] == ["DNS:ten.test"])
        #expect(entry("CN=ten")?["key"] as? String == "EC P-256")
        #expect(entry("CN=ten")?["issuer"] as? String == "CN=check test CA")
        let notAfter = try #require(entry("CN=ten")?["not_after"] as? String)
        #expect(abs((ISO8601DateFormatter().date(from: notAfter)?.timeIntervalSince1970 ?? 0) - tenAt) < 1, "JSON and metric agree")

        let text = try run([try Repo.binary("gateway"), "certs", "-c", conf])
        #expect(text.status == 1)
        #expect(text.out.hasPrefix("role") && text.out.contains("days_left"))
        #expect(text.out.split(separator: "\n").contains { $0.hasPrefix("server") && $0.contains("CN=gone") && $0.hasSuffix("-1") }, "\(text.out)")
    }

    @Test func certsExitCodeFollowsTheFirstWindow() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let conf = try setUp(pki, adminPort: freePort(), gatewayPort: freePort(), expired: false)
        let gw = try Repo.binary("gateway")
        #expect(try run([gw, "certs", "-c", conf]).status == 1, "10 days left is inside 30")
        #expect(try run([gw, "certs", "-c", conf, "--warn-days", "15,7"]).status == 1, "inside 15")
        #expect(try run([gw, "certs", "-c", conf, "--warn-days", "9,3"]).status == 0, "9 days 23 hours left: outside 9")
        #expect(try run([gw, "certs", "-c", conf, "--warn-days", "x"]).status == 2)
        #expect(try run([gw, "certs", "-c", "/nonexistent.conf"]).status == 2)
    }
}
