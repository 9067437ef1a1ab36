import Foundation
import Testing

/// `gateway check` through the real binary: exit codes, the JSON schema, SARIF read by a real
/// consumer (sarif-tools), and the repo's own gateway.conf.
@Suite struct CheckCommandTests {
    /// A configuration made from the dev PKI with one finding of each given kind, in its own directory.
    final class Case: @unchecked Sendable {
        let dir: String
        var path: String { "\(dir)/gateway.conf" }
        private(set) var text = ""

        init() throws {
            try Repo.requireCerts()
            dir = try makeTempDir()
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }

        /// `groupKey`: the host's key is a mode-0640 copy (GW.Key.Permissions, medium);
        /// `clientCert: false`: GW.Backend.ClientCert (low); `tls`: extra backend tls lines.
        func write(groupKey: Bool = false, clientCert: Bool = true, tls: String = "", top: String = "",
                   hostExtra: String = "", certificate: String? = nil) throws {
            let c = Repo.certs
            var key = "\(c)/api.example.test.key"
            if groupKey {
                key = "\(dir)/api.key"
                try? FileManager.default.removeItem(atPath: key)
                try FileManager.default.copyItem(atPath: "\(c)/api.example.test.key", toPath: key)
                chmod(key, 0o640)
            }
            text = """
            \(top)
            listen 127.0.0.1:8443;
            host api.example.test {
                \(certificate ?? "certificate \(c)/api.example.test.pem \(key);")
                route / backend echo;
                \(hostExtra)
            }
            backend echo {
                server https://127.0.0.1:9443;
                tls {
                    ca \(c)/backend-ca.pem;
                    \(clientCert ? "certificate \(c)/gateway-client.pem \(c)/gateway-client.key;" : "")
                    \(tls)
                }
            }
            """
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }

        func line(_ needle: String) -> Int {
            (text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains(needle) } ?? -2) + 1
        }

        func check(_ args: [String] = []) throws -> (status: Int32, out: String, err: String, outData: Data) {
            try run([try Repo.binary("gateway"), "check", "-c", path] + args)
        }
    }

    @Test func failOnBoundaries() throws {
        let c = try Case()
        try c.write(groupKey: true, clientCert: false)   // one medium, one low
        for (level, expected) in [("low", Int32(1)), ("medium", 1), ("high", 0), ("critical", 0)] {
            let r = try c.check(["--fail-on", level])
            #expect(r.status == expected, "--fail-on \(level): \(r.out)\(r.err)")
        }
        #expect(try c.check().status == 0, "default --fail-on is high")
        #expect(try c.check(["--format", "json", "--fail-on", "medium"]).status == 1, "the format does not change the exit code")

        try c.write(tls: "verify off;")                    // one critical
        #expect(try c.check().status == 1)
        #expect(try c.check(["--fail-on", "critical"]).status == 1)

        try c.write()                                      // clean
        #expect(try c.check(["--fail-on", "low"]).status == 0)

        #expect(try c.check(["--fail-on", "severe"]).status == 2, "a bad --fail-on is a usage error")
        try c.write(hostExtra: "min_verison TLSv1.2;")     // does not load
        for level in ["low", "critical"] {
            let r = try c.check(["--fail-on", level])
            #expect(r.status == 2)
            #expect(r.err.contains("\(c.path):\(c.line("min_verison")):"), "\(r.err)")
        }
    }

    /// Load-error rules stay load errors: exit 2 whatever --fail-on says, the rule named.
    @Test func loadErrorRulesExitTwo() throws {
        let c = try Case()
        try c.write(hostExtra: "client_auth required;")
        let r = try c.check(["--fail-on", "critical"])
        #expect(r.status == 2)
        #expect(r.err.contains("\(c.path):\(c.line("client_auth")):") && r.err.contains("GW.mTLS.NoCA"), "\(r.err)")
        #expect(r.out.isEmpty)
    }

    /// At a TLSv1.2 floor OpenSSL refuses a SHA-1 signed chain when the context is built: a load error.
    @Test func sha1ChainIsALoadErrorAtTLS12() throws {
        let c = try Case()
        let certs = Repo.certs
        _ = try run(["openssl", "req", "-new", "-key", "\(certs)/api.example.test.key", "-subj", "/CN=api.example.test",
                     "-out", "\(c.dir)/sha1.csr"])
        let signed = try run(["openssl", "x509", "-req", "-in", "\(c.dir)/sha1.csr", "-CA", "\(certs)/ca.pem", "-CAkey", "\(certs)/ca.key",
                              "-CAcreateserial", "-CAserial", "\(c.dir)/ca.srl", "-days", "30", "-sha1", "-out", "\(c.dir)/sha1.pem"])
        #expect(signed.status == 0, "\(signed.err)")
        try c.write(certificate: "certificate \(c.dir)/sha1.pem \(certs)/api.example.test.key;")
        let r = try c.check()
        #expect(r.status == 2)
        #expect(r.err.contains("ca md too weak"), "\(r.err)")
    }

    @Test func jsonSchemaIsExact() throws {
        let c = try Case()
        try c.write(groupKey: true, clientCert: false)
        let r = try c.check(["--format", "json"])
        #expect(r.status == 0)
        let top = try #require(try JSONSerialization.jsonObject(with: r.outData) as? [String: Any], "\(r.out)")
        #expect(Set(top.keys) == ["findings"])
        let findings = try #require(top["findings"] as? [[String: Any]])
        #expect(findings.count == 2)
        for f in findings {
            #expect(Set(f.keys) == ["rule", "severity", "file", "line", "message", "recommendation"])
            #expect(f["file"] as? String == c.path)
            #expect(f["line"] is Int && f["message"] is String && f["recommendation"] is String)
        }
        #expect(findings.map { $0["rule"] as? String } == ["GW.Key.Permissions", "GW.Backend.ClientCert"])
        #expect(findings.map { $0["severity"] as? String } == ["medium", "low"])
        #expect(findings.map { $0["line"] as? Int } == [c.line("certificate"), c.line("tls {")])

        try c.write()
        #expect(try c.check(["--format", "json"]).out == "{\n  \"findings\": []\n}\n")
    }

    @Test func textFormat() throws {
        let c = try Case()
        try c.write(groupKey: true, clientCert: false, tls: "verify off;")
        let r = try c.check()
        #expect(r.status == 1)
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("host ") == true, "the effective-policy table comes first: \(r.out)")
        let findingLines = lines.filter { $0.hasPrefix(c.path + ":") && $0.dropFirst(c.path.count + 1).first?.isNumber == true }
        #expect(findingLines == [
            "\(c.path):\(c.line("verify off")): critical: GW.Backend.Verify: backend \"echo\": certificate verification is off; anyone on the path can impersonate it",
            "\(c.path):\(c.line("certificate")): medium: GW.Key.Permissions: key file \(c.dir)/api.key of host api.example.test is readable by its group (mode 0640)",
            "\(c.path):\(c.line("tls {")): low: GW.Backend.ClientCert: backend \"echo\" gets no client certificate from the gateway",
        ])
        if let i = lines.firstIndex(of: findingLines[0]) { #expect(lines[i + 1].hasPrefix("    fix: Remove `verify off`")) }
        #expect(lines.contains("3 findings: 1 critical, 1 medium, 1 low"))
        #expect(lines.last == "\(c.path): configuration loads (1 hosts, 1 backends, 1 listeners)")
    }

    @Test func reposOwnConfigurationIsCleanAtHigh() throws {
        try Repo.requireCerts()
        let conf = Repo.root.appendingPathComponent("gateway.conf").path
        let r = try run([try Repo.binary("gateway"), "check", "-c", conf])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(!r.out.contains(": critical: ") && !r.out.contains(": high: "), "\(r.out)")
        let json = try run([try Repo.binary("gateway"), "check", "-c", conf, "--format", "json", "--fail-on", "high"])
        #expect(json.status == 0)
    }

    @Test func rulesMarkdownIsTheReadmeTable() throws {
        let r = try run([try Repo.binary("gateway"), "check", "--rules-markdown"])
        #expect(r.status == 0)
        let readme = try String(contentsOf: Repo.root.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains("<!-- rules:begin -->\n" + r.out + "<!-- rules:end -->"))
    }
}
