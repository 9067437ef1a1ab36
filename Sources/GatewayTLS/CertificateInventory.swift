import GatewayConfig

/// One place the configuration names a certificate file, and what the certificates in it are for.
public struct CertificateUse: Sendable, Hashable {
    /// The `role` label of `gateway certs` and `gateway_certificate_expiry_timestamp_seconds`.
    public enum Role: String, Sendable, Hashable {
        case server, clientCA = "client_ca", backendCA = "backend_ca", backendClient = "backend_client"
    }
    public var path: String
    public var role: Role
    /// The host block (its name as written) or the backend the file belongs to.
    public var owner: String
    public var location: SourceLocation
    /// Sent by the gateway in a handshake (server and backend client chains), not only trusted.
    public var presented: Bool { role == .server || role == .backendClient }
}

/// Every certificate file a configuration names: host certificates, client CAs, backend CAs and
/// backend client certificates (the system store, `ca system`, is not ours to report).
public enum CertificateInventory {
    public static func uses(_ config: GatewayConfiguration) -> [CertificateUse] {
        var uses: [CertificateUse] = []
        func add(_ u: CertificateUse) {
            if !uses.contains(where: { $0.path == u.path && $0.location == u.location && $0.owner == u.owner }) { uses.append(u) }
        }
        for h in config.hosts {
            for c in h.certificates { add(CertificateUse(path: c.certificate, role: .server, owner: h.displayName, location: c.location)) }
            if let ca = h.policy.clientCA {
                let at = h.directiveLocations["client_ca"] ?? config.tlsDefaultsLocations["client_ca"] ?? h.location
                add(CertificateUse(path: ca, role: .clientCA, owner: h.displayName, location: at))
            }
        }
        for b in config.backends {
            if let c = b.tls.clientCertificate {
                add(CertificateUse(path: c.certificate, role: .backendClient, owner: b.name, location: c.location))
            }
            if case .file(let ca) = b.tls.ca {
                add(CertificateUse(path: ca, role: .backendCA, owner: b.name, location: b.tls.directiveLocations["ca"] ?? b.location))
            }
        }
        return uses
    }

    /// Each use with every certificate of its file, files read once each. A file that cannot be
    /// read is left out (the load already refused it).
    public static func certificates(_ config: GatewayConfiguration) -> [(use: CertificateUse, certificate: CertificateInfo)] {
        var cache: [String: [CertificateInfo]] = [:]
        var out: [(CertificateUse, CertificateInfo)] = []
        for u in uses(config) {
            if cache[u.path] == nil { cache[u.path] = (try? CertificateInfo.load(pemFile: u.path)) ?? [] }
            for c in cache[u.path]! { out.append((u, c)) }
        }
        return out
    }
}
