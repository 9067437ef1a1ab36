import Testing
@testable import GatewayCheck

@Suite struct CheckBackendRuleTests {
    @Test func baselineHasNoFinding() throws {
        let f = try CheckFixture()
        let findings = try f.findings(f.config())
        #expect(findings.isEmpty, "\(findings)")
    }

    /// GW.Backend.HTTPS stays a load error (exit 2 in the CLI tests), naming the rule and the server line.
    @Test func httpBackendIsALoadError() throws {
        let f = try CheckFixture()
        let text = f.config().replacingOccurrences(of: "server https://", with: "server http://")
        let errors = try f.loadErrors(text)
        #expect(errors.count == 1)
        #expect(errors.first?.contains("\(f.configPath):\(line(of: "server http://", in: text)):") == true, "\(errors)")
        #expect(errors.first?.contains("GW.Backend.HTTPS") == true)
        #expect(try f.loadErrors(f.config()).isEmpty)
    }

    @Test func verifyOff() throws {
        let f = try CheckFixture()
        let text = f.config(backendTLS: "tls {\n        certificate \(f.client.cert) \(f.client.key);\n        verify off;\n    }")
        let found = only("GW.Backend.Verify", try f.findings(text))
        #expect(found.count == 1)
        #expect(found.first?.severity == .critical)
        #expect(found.first?.line == line(of: "verify off", in: text))
        #expect(found.first?.file == f.configPath)
        let on = f.config(backendTLS: "tls {\n        certificate \(f.client.cert) \(f.client.key);\n        verify on;\n    }")
        #expect(only("GW.Backend.Verify", try f.findings(on)).isEmpty)
    }

    @Test func backendFloorBelowTLS12() throws {
        let f = try CheckFixture()
        for version in ["TLSv1", "TLSv1.1"] {
            let text = f.config(backendTLS: "tls {\n        min_version \(version);\n        certificate \(f.client.cert) \(f.client.key);\n    }")
            let found = only("GW.Backend.MinTLS", try f.findings(text))
            #expect(found.count == 1)
            #expect(found.first?.severity == .high)
            #expect(found.first?.line == line(of: "min_version", in: text))
        }
        let ok = f.config(backendTLS: "tls {\n        min_version TLSv1.2;\n        certificate \(f.client.cert) \(f.client.key);\n    }")
        #expect(only("GW.Backend.MinTLS", try f.findings(ok)).isEmpty)
    }

    @Test func backendWithoutClientCertificate() throws {
        let f = try CheckFixture()
        let withTLS = f.config(backendTLS: "tls {\n        server_name b.test;\n    }")
        let found = only("GW.Backend.ClientCert", try f.findings(withTLS))
        #expect(found.count == 1)
        #expect(found.first?.severity == .low)
        #expect(found.first?.line == line(of: "tls {", in: withTLS))
        // No tls block at all: the backend line.
        let bare = f.config(backendTLS: "")
        #expect(only("GW.Backend.ClientCert", try f.findings(bare)).first?.line == line(of: "backend b {", in: bare))
        #expect(only("GW.Backend.ClientCert", try f.findings(f.config())).isEmpty)
    }
}
