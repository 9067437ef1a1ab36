import Glibc
import GatewayProxy

/// The three output formats of `gateway check` (SPEC §2, §10).
enum Reports {
    /// `FILE:LINE: severity: RULE: message`, the recommendation indented below, then a summary.
    static func text(_ findings: [Finding]) -> String {
        var lines: [String] = []
        for f in findings {
            lines.append("\(f.file):\(f.line): \(f.severity.rawValue): \(f.rule): \(f.message)")
            lines.append("    fix: \(f.recommendation)")
        }
        lines.append(summary(findings))
        return lines.joined(separator: "\n")
    }

    /// `3 findings: 1 critical, 2 high` or `no findings`.
    static func summary(_ findings: [Finding]) -> String {
        guard !findings.isEmpty else { return "no findings" }
        let counts = Severity.allCases.sorted(by: >).compactMap { s -> String? in
            let n = findings.filter { $0.severity == s }.count
            return n == 0 ? nil : "\(n) \(s.rawValue)"
        }
        return "\(findings.count) finding\(findings.count == 1 ? "" : "s"): " + counts.joined(separator: ", ")
    }

    /// SPEC §10: `{"findings": [{"rule", "severity", "file", "line", "message", "recommendation"}]}`.
    static func json(_ findings: [Finding]) -> String {
        JSONValue.object([("findings", .array(findings.map { f in
            .object([("rule", .string(f.rule)), ("severity", .string(f.severity.rawValue)), ("file", .string(f.file)),
                     ("line", .int(f.line)), ("message", .string(f.message)), ("recommendation", .string(f.recommendation))])
        }))]).rendered()
    }

    /// SARIF 2.1.0: every rule of the catalog in `tool.driver.rules`, one result per finding.
    static func sarif(_ findings: [Finding], toolVersion: String) -> String {
        let rules = RuleCatalog.all
        let driverRules: [JSONValue] = rules.map { r in
            .object([
                ("id", .string(r.id)),
                ("shortDescription", .object([("text", .string(r.title))])),
                ("fullDescription", .object([("text", .string(plain(r.trigger)))])),
                ("defaultConfiguration", .object([("level", .string(r.severity.sarifLevel))])),
                ("help", .object([("text", .string(plain(r.fix)))])),
                ("properties", .object([("severity", .string(r.severityText)), ("status", .string(RulesMarkdown.status(r)))])),
            ])
        }
        let results: [JSONValue] = findings.map { f in
            .object([
                ("ruleId", .string(f.rule)),
                ("ruleIndex", .int(rules.firstIndex { $0.id == f.rule } ?? 0)),
                ("level", .string(f.severity.sarifLevel)),
                ("message", .object([("text", .string(f.message))])),
                ("locations", .array([.object([("physicalLocation", .object([
                    ("artifactLocation", .object([("uri", .string(fileURI(f.file)))])),
                    ("region", .object([("startLine", .int(f.line))])),
                ]))])])),
                ("properties", .object([("severity", .string(f.severity.rawValue)), ("recommendation", .string(f.recommendation))])),
            ])
        }
        return JSONValue.object([
            ("$schema", .string("https://json.schemastore.org/sarif-2.1.0.json")),
            ("version", .string("2.1.0")),
            ("runs", .array([.object([
                ("tool", .object([("driver", .object([
                    ("name", .string("tls-gateway")),
                    ("version", .string(toolVersion)),
                    ("informationUri", .string(CheckCommand.informationURI)),
                    ("rules", .array(driverRules)),
                ]))])),
                ("results", .array(results)),
            ])])),
        ]).rendered()
    }

    /// Markdown backticks are noise in SARIF's plain-text fields.
    private static func plain(_ s: String) -> String { String(s.filter { $0 != "`" }) }

    /// `file:///abs/path`, percent-encoding what a URI path may not hold.
    static func fileURI(_ path: String) -> String {
        var absolute = path
        if !path.hasPrefix("/") {
            if let cwd = getcwd(nil, 0) {
                defer { free(cwd) }
                absolute = String(cString: cwd) + "/" + (path.hasPrefix("./") ? String(path.dropFirst(2)) : path)
            }
        }
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/!$&'()*+,;=:@".utf8)
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = Array("file://".utf8)
        for b in absolute.utf8 {
            if allowed.contains(b) { out.append(b) } else { out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 0xF)]] }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
