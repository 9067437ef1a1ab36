import Foundation
import TestSupport
import Testing
@testable import GatewayCheck
import GatewayConfig

/// One rule test's world: its own PKI, a configuration written from a clean baseline with one
/// thing changed, and the findings of `PolicyCheck` on it.
final class CheckFixture: Sendable {
    let pki: TestPKI
    let host: (cert: String, key: String)
    let client: (cert: String, key: String)

    init() throws {
        pki = try TestPKI()
        host = try pki.leaf("a.test", sans: "DNS:a.test")
        client = try pki.leaf("gateway-client", sans: "DNS:gateway-client")
    }

    deinit { pki.remove() }

    /// A configuration with no finding at all; each part can be replaced or extended.
    func config(top: String = "", defaults: String = "", names: String = "a.test", certificate: String? = nil,
                hostExtra: String = "", otherHosts: String = "", backendTLS: String? = nil, listen: String? = nil) -> String {
        """
        \(top)
        tls_defaults {
            \(defaults)
        }
        \(listen ?? "listen 127.0.0.1:8443;")
        host \(names) {
            \(certificate ?? "certificate \(host.cert) \(host.key);")
            route / backend b;
            \(hostExtra)
        }
        \(otherHosts)
        backend b {
            server https://127.0.0.1:9443;
            \(backendTLS ?? "tls {\n        certificate \(client.cert) \(client.key);\n    }")
        }
        """
    }

    /// Loads `text` as the gateway would (parse and validate) and runs every rule at `now`.
    func findings(_ text: String, now: Int64 = Int64(Date().timeIntervalSince1970)) throws -> [Finding] {
        let path = try pki.write(text)
        return PolicyCheck(config: try ConfigLoader.load(path: path), now: now).findings()
    }

    /// The load errors of `text` (empty if it loads).
    func loadErrors(_ text: String) throws -> [String] {
        let path = try pki.write(text)
        do { _ = try ConfigLoader.load(path: path); return [] } catch { return error.diagnostics.map(\.description) }
    }

    var configPath: String { pki.path("gateway.conf") }
}

/// The 1-based line of the first line of `text` containing `needle`.
func line(of needle: String, in text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> Int {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    guard let i = lines.firstIndex(where: { $0.contains(needle) }) else {
        Issue.record("\"\(needle)\" is not in the configuration", sourceLocation: sourceLocation)
        return -1
    }
    return i + 1
}

/// The findings of one rule.
func only(_ rule: String, _ findings: [Finding]) -> [Finding] { findings.filter { $0.rule == rule } }
