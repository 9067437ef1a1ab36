import GatewayConfig
import GatewayTLS

/// Runs every active rule of `RuleCatalog` over a loaded configuration.
/// Certificates are read once each; `now` is a parameter so tests can pin it.
public struct PolicyCheck: Sendable {
    public let config: GatewayConfiguration
    public let now: Int64
    /// Every certificate file the configuration names, read with OpenSSL (a file that
    /// loaded for the gateway but cannot be parsed here is simply not judged).
    let certificates: [String: [CertificateInfo]]

    public init(config: GatewayConfiguration, now: Int64) {
        self.config = config
        self.now = now
        var certificates: [String: [CertificateInfo]] = [:]
        for use in Self.certificateUses(config) where certificates[use.path] == nil {
            certificates[use.path] = (try? CertificateInfo.load(pemFile: use.path)) ?? []
        }
        self.certificates = certificates
    }

    /// Every finding, worst first, then by file and line.
    public func findings() -> [Finding] {
        let all = backendFindings() + hostPolicyFindings() + topLevelFindings()
            + certificateFindings() + keyPermissionFindings() + nameFindings() + groupFindings() + jwtFindings()
        return all.sorted(by: Finding.reportOrder)
    }

    /// Where a policy field of `host` was set: its own block, else `tls_defaults`; nil = the built-in default.
    func policyLocation(_ field: String, of host: HostConfig) -> SourceLocation? {
        host.directiveLocations[field] ?? config.tlsDefaultsLocations[field]
    }

    /// "host a.test" or "hosts a.test, b.test" for a message.
    static func hostList(_ hosts: [HostConfig]) -> String {
        (hosts.count == 1 ? "host " : "hosts ") + hosts.map(\.displayName).joined(separator: ", ")
    }

    /// Groups hosts by where the field that concerns them stands (an inherited value is one
    /// finding at its `tls_defaults` line, not one per host), in configuration order.
    func grouped(_ hosts: [HostConfig], by field: String) -> [(location: SourceLocation, hosts: [HostConfig])] {
        var out: [(location: SourceLocation, hosts: [HostConfig])] = []
        for h in hosts {
            let at = policyLocation(field, of: h) ?? h.location
            if let i = out.firstIndex(where: { $0.location == at }) { out[i].hosts.append(h) } else { out.append((at, [h])) }
        }
        return out
    }
}
