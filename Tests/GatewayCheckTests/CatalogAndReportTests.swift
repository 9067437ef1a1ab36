import Foundation
import Testing
import GatewayProxy
@testable import GatewayCheck
import GatewayConfig

@Suite struct CheckCatalogTests {
    static let readmePath: String = {
        var u = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { u.deleteLastPathComponent() }
        return u.appendingPathComponent("README.md").path
    }()

    /// README.md's table is the catalog's: run scripts/rules-table after changing a rule.
    @Test func readmeRuleTableMatchesTheCatalog() throws {
        let readme = try String(contentsOfFile: Self.readmePath, encoding: .utf8)
        let current = try #require(RulesMarkdown.current(in: readme), "README.md has no \(RulesMarkdown.beginMarker) ... \(RulesMarkdown.endMarker)")
        #expect(current == RulesMarkdown.table(), "README.md's rule table is out of date: run scripts/rules-table")
        #expect(RulesMarkdown.splice(into: readme) == readme)
        // The section sits right after the command line section.
        let sections = readme.split(separator: "\n").filter { $0.hasPrefix("## ") }
        let i = try #require(sections.firstIndex(of: "## Command line"))
        #expect(sections[i + 1] == "## Policy rules (gateway check)")
    }

    @Test func everyRuleOfTheSpecIsInTheCatalog() {
        let ids = RuleCatalog.all.map(\.id)
        #expect(Set(ids).count == ids.count)
        #expect(ids == ["GW.Backend.HTTPS", "GW.Backend.Verify", "GW.Backend.MinTLS", "GW.Backend.ClientCert",
                        "GW.Host.MinTLS", "GW.Host.WeakCipher", "GW.mTLS.NoCA", "GW.Cert.Expired", "GW.Cert.Expiring",
                        "GW.Cert.NameMismatch", "GW.Cert.WeakKey", "GW.Key.Permissions", "GW.Admin.Exposed",
                        "GW.Listen.ProxyProtocolOpen", "GW.mTLS.AllowWithoutAuth", "GW.Host.Fronting",
                        "GW.Ticket.NoSharedKey", "GW.Host.Groups", "GW.JWT.NoBinding"])   // SPEC §13 adds the last
        let severities0 = Dictionary(uniqueKeysWithValues: RuleCatalog.all.map { ($0.id, $0.severity) })
        let pending = RuleCatalog.all.filter { if case .pending = $0.status { true } else { false } }.map(\.id)
        #expect(pending.isEmpty, "every directive a rule waited for exists")
        let loadErrors = RuleCatalog.all.filter { $0.status == .loadError }.map(\.id)
        #expect(loadErrors == ["GW.Backend.HTTPS", "GW.mTLS.NoCA", "GW.Listen.ProxyProtocolOpen", "GW.mTLS.AllowWithoutAuth"])
        #expect(severities0["GW.Host.Groups"] == .low && RuleCatalog.rule("GW.Host.Groups")?.status == .active)
        let severities = Dictionary(uniqueKeysWithValues: RuleCatalog.all.map { ($0.id, $0.severity) })
        #expect(severities["GW.Backend.ClientCert"] == .low && severities["GW.Key.Permissions"] == .medium
                && severities["GW.Admin.Exposed"] == .critical && severities["GW.Host.Fronting"] == .medium)
    }
}

@Suite struct CheckReportTests {
    static let findings = [
        Finding("GW.Backend.ClientCert", at: SourceLocation(file: "a.conf", line: 9, column: 1), "no client cert"),
        Finding("GW.Backend.Verify", at: SourceLocation(file: "a.conf", line: 12, column: 5), "verify \"off\""),
        Finding("GW.Host.MinTLS", at: SourceLocation(file: "a.conf", line: 3, column: 5), "TLSv1"),
        Finding("GW.Cert.Expiring", .medium, at: SourceLocation(file: "a.conf", line: 2, column: 5), "soon"),
    ].sorted(by: Finding.reportOrder)

    @Test func textIsSortedBySeverityThenLineWithASummary() {
        let lines = Reports.text(Self.findings).split(separator: "\n").map(String.init)
        #expect(lines == [
            "a.conf:12: critical: GW.Backend.Verify: verify \"off\"",
            "    fix: " + RuleCatalog.rule("GW.Backend.Verify")!.fix,
            "a.conf:3: high: GW.Host.MinTLS: TLSv1",
            "    fix: " + RuleCatalog.rule("GW.Host.MinTLS")!.fix,
            "a.conf:2: medium: GW.Cert.Expiring: soon",
            "    fix: " + RuleCatalog.rule("GW.Cert.Expiring")!.fix,
            "a.conf:9: low: GW.Backend.ClientCert: no client cert",
            "    fix: " + RuleCatalog.rule("GW.Backend.ClientCert")!.fix,
            "4 findings: 1 critical, 1 high, 1 medium, 1 low",
        ])
        #expect(Reports.text([]) == "no findings")
    }

    @Test func failOnThresholds() {
        let medium = [Self.findings[2]]
        #expect(medium[0].severity == .medium)
        #expect(CheckCommand.exitCode(medium, failOn: .low) == 1)
        #expect(CheckCommand.exitCode(medium, failOn: .medium) == 1)
        #expect(CheckCommand.exitCode(medium, failOn: .high) == 0)
        #expect(CheckCommand.exitCode([], failOn: .low) == 0)
    }

    @Test func jsonEscapesAndParses() throws {
        let json = Reports.json(Self.findings)
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let list = try #require(object?["findings"] as? [[String: Any]])
        #expect(list.count == 4)
        #expect(list[0]["message"] as? String == "verify \"off\"")
        #expect(JSONValue.quoted("a\u{1}\t\\") == #""a\u0001\t\\""#)
    }

    @Test func fileURIsAreAbsoluteAndEscaped() {
        #expect(Reports.fileURI("/etc/gw/my conf#1.conf") == "file:///etc/gw/my%20conf%231.conf")
        #expect(Reports.fileURI("x.conf").hasPrefix("file:///"))
        #expect(Reports.fileURI("x.conf").hasSuffix("/x.conf"))
    }
}
