import Foundation
import Testing

/// `gateway check --format sarif` read by a real SARIF consumer: sarif-tools from PyPI.
@Suite struct CheckSARIFTests {
    /// `sarif` on PATH, else sarif-tools installed with pip, else with pip in a venv under .build
    /// (for a system Python that refuses pip installs, PEP 668); nil with the reason when all fail.
    static func sarifTool() -> (path: String?, reason: String) {
        func which() -> String? {
            guard let r = try? run(["sh", "-c", "command -v sarif"]), r.status == 0 else { return nil }
            let p = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
            return p.isEmpty ? nil : p
        }
        if let p = which() { return (p, "") }
        let venv = Repo.root.appendingPathComponent(".build/sarif-tools-venv").path
        if FileManager.default.isExecutableFile(atPath: "\(venv)/bin/sarif") { return ("\(venv)/bin/sarif", "") }
        let pip = try? run(["python3", "-m", "pip", "install", "--quiet", "sarif-tools"], timeout: 300)
        if let p = which() { return (p, "") }
        let inVenv = try? run(["sh", "-c", "python3 -m venv \"$0\" && \"$0/bin/pip\" install --quiet sarif-tools", venv], timeout: 300)
        if FileManager.default.isExecutableFile(atPath: "\(venv)/bin/sarif") { return ("\(venv)/bin/sarif", "") }
        func tail(_ r: (status: Int32, out: String, err: String, outData: Data)?) -> String {
            r.map { "exit \($0.status): \($0.err.split(separator: "\n").last ?? "")" } ?? "python3 not found"
        }
        return (nil, "SKIPPED: sarif-tools (PyPI) is not installed and could not be installed: "
                + "pip: \(tail(pip)); venv: \(tail(inVenv))")
    }

    @Test func sarifIsReadBySarifToolsWithRuleIdsAndLines() throws {
        let (tool, reason) = Self.sarifTool()
        guard let tool else { try Test.cancel(Comment(rawValue: reason)) }
        let c = try CheckCommandTests.Case()
        try c.write(groupKey: true, clientCert: false, tls: "verify off;", top: "admin 0.0.0.0:9901;")
        let r = try c.check(["--format", "sarif"])
        #expect(r.status == 1)
        let file = "\(c.dir)/check.sarif"
        try r.outData.write(to: URL(fileURLWithPath: file))

        let summary = try run([tool, "summary", file])
        #expect(summary.status == 0, "\(summary.out)\(summary.err)")
        #expect(summary.out.contains("error: 2"), "\(summary.out)")   // critical: Verify, Admin.Exposed
        #expect(summary.out.contains("warning: 1") && summary.out.contains("note: 1"), "\(summary.out)")
        // The consumer's own view of each result: rule, level, file URI, line.
        let csv = "\(c.dir)/check.csv"
        let export = try run([tool, "csv", file, "--output", csv])
        #expect(export.status == 0, "\(export.err)")
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(whereSeparator: \.isNewline).dropFirst()
        let uri = "file://" + c.path
        let seen = Set(rows.map { row -> String in
            let cells = row.split(separator: ",")
            return "\(cells[2])|\(cells[1])|\(cells[cells.count - 2])|\(cells[cells.count - 1])"
        })
        #expect(seen == [
            "GW.Admin.Exposed|error|\(uri)|\(c.line("admin 0.0.0.0"))",
            "GW.Backend.Verify|error|\(uri)|\(c.line("verify off"))",
            "GW.Key.Permissions|warning|\(uri)|\(c.line("certificate"))",
            "GW.Backend.ClientCert|note|\(uri)|\(c.line("tls {"))",
        ], "\(rows)")

        // The document itself: version, schema, every catalog rule with its level, results pointing into it.
        let doc = try #require(try JSONSerialization.jsonObject(with: r.outData) as? [String: Any])
        #expect(doc["version"] as? String == "2.1.0")
        #expect((doc["$schema"] as? String)?.contains("sarif-2.1.0") == true)
        let run0 = try #require((doc["runs"] as? [[String: Any]])?.first)
        let driver = try #require((run0["tool"] as? [String: Any])?["driver"] as? [String: Any])
        #expect(driver["name"] as? String == "tls-gateway")
        #expect(driver["version"] is String && driver["informationUri"] is String)
        let rules = try #require(driver["rules"] as? [[String: Any]])
        #expect(rules.count == 19)   // the catalog: SPEC §8 and §11, and GW.JWT.NoBinding (§13)
        let levels = Dictionary(uniqueKeysWithValues: rules.map {
            ($0["id"] as? String ?? "", ($0["defaultConfiguration"] as? [String: Any])?["level"] as? String ?? "")
        })
        #expect(levels["GW.JWT.NoBinding"] == "note", "low -> note")
        #expect(levels["GW.Backend.Verify"] == "error" && levels["GW.Key.Permissions"] == "warning"
                && levels["GW.Backend.ClientCert"] == "note" && levels["GW.Host.MinTLS"] == "error")
        for rule in rules {
            #expect((rule["shortDescription"] as? [String: Any])?["text"] is String)
            #expect((rule["help"] as? [String: Any])?["text"] is String)
        }
        let results = try #require(run0["results"] as? [[String: Any]])
        for result in results {
            let index = try #require(result["ruleIndex"] as? Int)
            #expect(rules[index]["id"] as? String == result["ruleId"] as? String)
            let location = try #require((result["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any])
            #expect((location["artifactLocation"] as? [String: Any])?["uri"] as? String == uri)
            #expect((location["region"] as? [String: Any])?["startLine"] is Int)
            #expect((result["message"] as? [String: Any])?["text"] is String)
        }
    }
}
