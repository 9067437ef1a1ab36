import Foundation
import Testing
@testable import GatewayCheck
import GatewayTLS

@Suite struct CheckCertificateRuleTests {
    @Test func expiredYesterday() throws {
        let f = try CheckFixture()
        let old = try f.pki.leaf("old", sans: "DNS:a.test", days: -1)
        let text = f.config(certificate: "certificate \(old.cert) \(old.key);")
        let found = only("GW.Cert.Expired", try f.findings(text))
        #expect(found.count == 1)
        #expect(found.first?.severity == .critical)
        #expect(found.first?.line == line(of: "certificate", in: text))
        #expect(found.first?.message.contains("(1 day ago)") == true, "\(found)")
        #expect(only("GW.Cert.Expired", try f.findings(f.config())).isEmpty)
    }

    @Test func expiringIn10DaysIsHighIn20DaysMedium() throws {
        let f = try CheckFixture()
        for (days, severity) in [(10.0, Severity.high), (20.0, .medium)] {
            let c = try f.pki.leaf("in\(Int(days))", sans: "DNS:a.test", days: days)
            let text = f.config(certificate: "certificate \(c.cert) \(c.key);")
            let found = only("GW.Cert.Expiring", try f.findings(text))
            #expect(found.count == 1)
            #expect(found.first?.severity == severity)
            #expect(found.first?.line == line(of: "certificate", in: text))
            #expect(found.first?.message.contains("in \(Int(days) - 1) days") == true, "\(found)")
        }
        let c = try f.pki.leaf("in40", sans: "DNS:a.test", days: 40)
        #expect(try f.findings(f.config(certificate: "certificate \(c.cert) \(c.key);")).isEmpty)
    }

    /// Boundaries in seconds, with `now` pinned: 14 days exactly is medium, 30 days exactly is clean.
    @Test func expiryBoundaries() throws {
        let f = try CheckFixture()
        let notAfter = try CertificateInfo.load(pemFile: f.host.cert)[0].notAfter
        let day: Int64 = 86_400
        func severity(at now: Int64) throws -> (String, Severity)? {
            try f.findings(f.config(), now: now).first.map { ($0.rule, $0.severity) }
        }
        #expect(try severity(at: notAfter)! == ("GW.Cert.Expired", .critical))
        #expect(try severity(at: notAfter - 1)! == ("GW.Cert.Expiring", .high))
        #expect(try severity(at: notAfter - 14 * day + 1)! == ("GW.Cert.Expiring", .high))
        #expect(try severity(at: notAfter - 14 * day)! == ("GW.Cert.Expiring", .medium))
        #expect(try severity(at: notAfter - 30 * day + 1)! == ("GW.Cert.Expiring", .medium))
        #expect(try severity(at: notAfter - 30 * day) == nil)
    }

    /// Client CAs and backend CAs are judged for validity too, at their directive's line.
    @Test func expiredCAFilesAreReported() throws {
        let f = try CheckFixture()
        let old = try f.pki.leaf("old-ca", sans: "DNS:old-ca", days: -3)
        let text = f.config(hostExtra: "client_auth optional; client_ca \(old.cert);",
                            backendTLS: "tls {\n        ca \(old.cert);\n        certificate \(f.client.cert) \(f.client.key);\n    }")
        let found = only("GW.Cert.Expired", try f.findings(text))
        #expect(found.map(\.line).sorted() == [line(of: "client_ca", in: text), line(of: " ca \(old.cert)", in: text)])
    }

    @Test func rsa1024IsWeak() throws {
        let f = try CheckFixture()
        let weak = try f.pki.leaf("rsa1024", sans: "DNS:a.test", key: "rsa1024")
        let text = f.config(certificate: "certificate \(weak.cert) \(weak.key);")
        let found = only("GW.Cert.WeakKey", try f.findings(text))
        #expect(found.count == 1)
        #expect(found.first?.severity == .high)
        #expect(found.first?.line == line(of: "certificate", in: text))
        #expect(found.first?.message.contains("RSA 1024") == true, "\(found)")
        let strong = try f.pki.leaf("rsa2048", sans: "DNS:a.test", key: "rsa2048")
        #expect(try f.findings(f.config(certificate: "certificate \(strong.cert) \(strong.key);")).isEmpty)
    }

    /// A SHA-1 chain loads only where the gateway runs OpenSSL at security level 0 (a floor below
    /// TLSv1.2); there check reports it. At TLSv1.2+ OpenSSL refuses it at load (CLI test: exit 2).
    @Test func sha1SignatureIsWeak() throws {
        let f = try CheckFixture()
        let sha1 = try f.pki.leaf("sha1", sans: "DNS:a.test", digest: "sha1")
        let text = f.config(certificate: "certificate \(sha1.cert) \(sha1.key);", hostExtra: "min_version TLSv1;")
        let found = only("GW.Cert.WeakKey", try f.findings(text))
        #expect(found.count == 1)
        #expect(found.first?.line == line(of: "certificate", in: text))
        #expect(found.first?.message.contains("SHA1") == true, "\(found)")
        #expect(only("GW.Cert.WeakKey", try f.findings(f.config(hostExtra: "min_version TLSv1;"))).isEmpty)
    }

    @Test func groupReadableKey() throws {
        let f = try CheckFixture()
        let c = try f.pki.leaf("group", sans: "DNS:a.test")
        chmod(c.key, 0o640)
        let text = f.config(certificate: "certificate \(c.cert) \(c.key);")
        let found = only("GW.Key.Permissions", try f.findings(text))
        #expect(found.count == 1)
        #expect(found.first?.severity == .medium)
        #expect(found.first?.line == line(of: "certificate", in: text))
        #expect(found.first?.message.contains("its group (mode 0640)") == true, "\(found)")
        #expect(only("GW.Key.Permissions", try f.findings(f.config())).isEmpty)

        // The backend's client key and the ticket key file are keys too.
        chmod(f.client.key, 0o640)
        try f.pki.write(String(repeating: "ab", count: 80) + "\n", as: "tickets.key", mode: 0o640)
        let more = f.config(defaults: "ticket_key_file tickets.key;")
        let lines = only("GW.Key.Permissions", try f.findings(more)).map(\.line).sorted()
        #expect(lines == [line(of: "ticket_key_file", in: more), line(of: "certificate \(f.client.cert)", in: more)].sorted())
    }

    /// World-readable: a load error unless allowed; allowed, it loads and is still reported.
    @Test func worldReadableKeyAllowedIsStillReported() throws {
        let f = try CheckFixture()
        let c = try f.pki.leaf("world", sans: "DNS:a.test")
        chmod(c.key, 0o644)
        let text = f.config(top: "allow_insecure_key_permissions on;", certificate: "certificate \(c.cert) \(c.key);")
        let found = only("GW.Key.Permissions", try f.findings(text))
        #expect(found.first?.message.contains("other users (mode 0644)") == true, "\(found)")
        #expect(try f.loadErrors(f.config(certificate: "certificate \(c.cert) \(c.key);")).first?.contains("GW.Key.Permissions") == true)
    }

    @Test func certificateInfoReadsEveryField() throws {
        let f = try CheckFixture()
        let c = try f.pki.leaf("info", sans: "DNS:a.test,DNS:*.b.test,IP:127.0.0.1,IP:::1,URI:spiffe://x.test/svc", days: 100, key: "rsa2048",
                               cn: "info")
        let chain = f.pki.path("chain.pem")
        try (String(contentsOfFile: c.cert, encoding: .utf8) + String(contentsOfFile: f.pki.path("ca.pem"), encoding: .utf8))
            .write(toFile: chain, atomically: true, encoding: .utf8)
        let certs = try CertificateInfo.load(pemFile: chain)
        #expect(certs.count == 2)
        let leaf = certs[0], ca = certs[1]
        #expect(leaf.subject == "CN=info")
        #expect(leaf.issuer == "CN=check test CA")
        #expect(leaf.subjectAltNames == [.dns("a.test"), .dns("*.b.test"), .ip("127.0.0.1"), .ip("::1"), .uri("spiffe://x.test/svc")])
        #expect(leaf.keyDescription == "RSA 2048")
        #expect(leaf.signatureAlgorithm == "ecdsa-with-SHA256")
        #expect(leaf.signatureDigest == "SHA256" && !leaf.signedWithSHA1)
        #expect(!leaf.isCA && !leaf.isSelfSigned)
        #expect(leaf.daysLeft(now: Int64(Date().timeIntervalSince1970)) == 99)
        #expect(ca.keyDescription == "EC P-256" && ca.isCA && ca.isSelfSigned)
        #expect(throws: TLSError.self) { try CertificateInfo.load(pemFile: c.key) }
        #expect(throws: TLSError.self) { try CertificateInfo.load(pemFile: f.pki.path("missing.pem")) }
    }
}
