import Foundation
import Testing

/// `gateway check` for SPEC §11: the two load errors exit 2 with FILE:LINE:COL and the rule
/// named; a bad `groups` too; GW.Host.Groups is a finding.
@Suite struct EdgeCheckTests {
    typealias Case = CheckCommandTests.Case

    static func expectLoadError(_ c: Case, needle: String, column: Int, _ rule: String?, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try c.check(["--fail-on", "critical"])
        #expect(r.status == 2, "\(r.err)", sourceLocation: sourceLocation)
        #expect(r.err.contains("\(c.path):\(c.line(needle)):\(column): error:"), "\(r.err)", sourceLocation: sourceLocation)
        if let rule { #expect(r.err.contains(rule), "\(r.err)", sourceLocation: sourceLocation) }
        #expect(r.out.isEmpty, sourceLocation: sourceLocation)
    }

    @Test func proxyProtocolWithoutTrustedPeersExitsTwo() throws {
        let c = try Case()
        try c.write(top: "listen 127.0.0.1:8444 {\n    proxy_protocol on;\n}")
        try Self.expectLoadError(c, needle: "proxy_protocol on", column: 5, "GW.Listen.ProxyProtocolOpen")
        try c.write(top: "listen 127.0.0.1:8444 {\n    proxy_protocol on;\n    proxy_protocol_from 10.0.0.0/33;\n}")
        try Self.expectLoadError(c, needle: "proxy_protocol_from", column: 25, nil)
        try c.write(top: "listen 127.0.0.1:8444 {\n    proxy_protocol on;\n    proxy_protocol_from 10.0.0.0/8;\n}")
        #expect(try c.check().status == 0)
    }

    @Test func clientAllowWithoutClientAuthExitsTwo() throws {
        let c = try Case()
        try c.write(hostExtra: "client_allow san_uri spiffe://example.test/*;")
        try Self.expectLoadError(c, needle: "client_allow", column: 5, "GW.mTLS.AllowWithoutAuth")
        try c.write(hostExtra: "client_auth required;\n    client_ca \(Repo.cert("clients-ca.pem"));\n    client_allow spki_sha256 zz;")
        try Self.expectLoadError(c, needle: "client_allow", column: 30, nil)
    }

    @Test func unknownGroupExitsTwoAndWeakGroupsAreAFinding() throws {
        let c = try Case()
        try c.write(hostExtra: "groups X25519:nosuchgroup;")
        try Self.expectLoadError(c, needle: "groups", column: 12, nil)
        try c.write(hostExtra: "groups ffdhe2048;")
        let r = try c.check(["--format", "json", "--fail-on", "low"])
        #expect(r.status == 1, "\(r.out)\(r.err)")
        let top = try #require(try JSONSerialization.jsonObject(with: r.outData) as? [String: Any])
        let findings = try #require(top["findings"] as? [[String: Any]])
        let groups = findings.filter { $0["rule"] as? String == "GW.Host.Groups" }
        #expect(groups.count == 1)
        #expect(groups.first?["severity"] as? String == "low")
        #expect(groups.first?["line"] as? Int == c.line("groups ffdhe2048"))
        #expect((groups.first?["message"] as? String)?.contains("ffdhe2048 112-bit") == true, "\(groups)")
        try c.write(hostExtra: "groups ffdhe2048:P-384;")
        let ok = try c.check(["--format", "json", "--fail-on", "low"])
        #expect(!ok.out.contains("GW.Host.Groups"), "\(ok.out)")
    }
}
