import Testing
@testable import GatewayCheck
import GatewayTLS

@Suite struct CheckNameRuleTests {
    @Test func everyNameOfAHostBlockIsChecked() throws {
        let f = try CheckFixture()
        let text = f.config(names: "a.test b.test")
        let found = only("GW.Cert.NameMismatch", try f.findings(text))
        #expect(found.count == 1)
        #expect(found.first?.severity == .high)
        #expect(found.first?.line == line(of: "certificate", in: text))
        #expect(found.first?.message.contains("does not cover b.test; it has SANs DNS:a.test") == true, "\(found)")
        #expect(only("GW.Cert.NameMismatch", try f.findings(f.config(names: "A.Test."))).isEmpty)
    }

    /// With an ECDSA and an RSA certificate, each must cover the names (the client's algorithms pick one).
    @Test func eachCertificateOfAHostIsChecked() throws {
        let f = try CheckFixture()
        let other = try f.pki.leaf("other", sans: "DNS:other.test", key: "rsa2048")
        let text = f.config(hostExtra: "certificate \(other.cert) \(other.key);")
        let found = only("GW.Cert.NameMismatch", try f.findings(text))
        #expect(found.map(\.line) == [line(of: "certificate \(other.cert)", in: text)])
    }

    @Test func noSubjectAltNameMeansNoMatch() throws {
        let f = try CheckFixture()
        // A SAN of another kind only: the CN (a.test) does not count.
        let c = try f.pki.leaf("cn-only", sans: "email:x@a.test", cn: "a.test")
        let found = only("GW.Cert.NameMismatch", try f.findings(f.config(certificate: "certificate \(c.cert) \(c.key);")))
        #expect(found.count == 1)
    }

    @Test func wildcardCertificates() throws {
        let f = try CheckFixture()
        let wild = try f.pki.leaf("wild", sans: "DNS:*.a.test")
        let cert = "certificate \(wild.cert) \(wild.key);"
        #expect(only("GW.Cert.NameMismatch", try f.findings(f.config(names: "x.a.test y.a.test *.a.test", certificate: cert))).isEmpty)
        for uncovered in ["a.test", "y.x.a.test"] {
            let found = only("GW.Cert.NameMismatch", try f.findings(f.config(names: "x.a.test \(uncovered)", certificate: cert)))
            #expect(found.first?.message.contains("does not cover \(uncovered);") == true, "\(uncovered): \(found)")
        }
        // A wildcard host name needs a wildcard SAN: an exact SAN covers one of its names only.
        let exact = try f.pki.leaf("exact", sans: "DNS:x.a.test")
        #expect(only("GW.Cert.NameMismatch", try f.findings(f.config(names: "*.a.test", certificate: "certificate \(exact.cert) \(exact.key);"))).count == 1)
    }

    @Test func rfc6125Matching() {
        #expect(NameMatching.sanCovers("*.a.test", "x.a.test"))
        #expect(!NameMatching.sanCovers("*.a.test", "a.test"))
        #expect(!NameMatching.sanCovers("*.a.test", "y.x.a.test"))
        #expect(NameMatching.sanCovers("*.a.test", "*.a.test"))
        #expect(!NameMatching.sanCovers("x.a.test", "*.a.test"))
        #expect(!NameMatching.sanCovers("f*.a.test", "foo.a.test"), "partial-label wildcard")
        #expect(!NameMatching.sanCovers("*.test", "a.test"), "too broad")
        #expect(!NameMatching.sanCovers("x.*.test", "x.a.test"))
        #expect(NameMatching.covers(dnsNames: ["X.A.Test."], ipAddresses: [], name: "x.a.test"))
        #expect(NameMatching.covers(dnsNames: [], ipAddresses: ["127.0.0.1"], name: "127.0.0.1"))
        #expect(!NameMatching.covers(dnsNames: ["127.0.0.1"], ipAddresses: [], name: "127.0.0.1"), "an IP needs an IP SAN")
        #expect(NameMatching.overlap("*.a.test", "x.a.test") == "x.a.test")
        #expect(NameMatching.overlap("*.a.test", "*.a.test") == "*.a.test")
        #expect(NameMatching.overlap("*.a.test", "a.test") == nil)
    }

    @Test func frontingHostsWithDifferentPolicies() throws {
        let f = try CheckFixture()
        let api = try f.pki.leaf("api", sans: "DNS:api.x.test")
        let wild = try f.pki.leaf("wildx", sans: "DNS:*.x.test")
        func text(_ apiPolicy: String) -> String {
            f.config(names: "api.x.test", certificate: "certificate \(api.cert) \(api.key);", hostExtra: apiPolicy,
                     otherHosts: "host *.x.test {\n    certificate \(wild.cert) \(wild.key);\n    route / backend b;\n}")
        }
        let different = text("min_version TLSv1.3;")
        let found = only("GW.Host.Fronting", try f.findings(different))
        #expect(found.count == 1)
        #expect(found.first?.severity == .medium)
        #expect(found.first?.line == line(of: "certificate \(wild.cert)", in: different))
        #expect(found.first?.message.contains("both cover api.x.test") == true, "\(found)")
        #expect(found.first?.message.contains("differ in min_version") == true)
        // Same policy: interchangeable, no 421, no finding.
        #expect(only("GW.Host.Fronting", try f.findings(text(""))).isEmpty)
        // Certificates that share no name: no finding whatever the policies.
        let b = try f.pki.leaf("b", sans: "DNS:b.test")
        let apart = f.config(hostExtra: "min_version TLSv1.3;",
                             otherHosts: "host b.test {\n    certificate \(b.cert) \(b.key);\n    route / backend b;\n}")
        #expect(only("GW.Host.Fronting", try f.findings(apart)).isEmpty)
    }
}
